/*
 * executor.c: the current-thread executor behind ac_block_on, and the body of
 * the program entry point (ac__run_main).
 *
 * Shape (Tokio's current_thread scheduler): the executor owns a local run
 * queue that only its thread touches, an inject queue that other threads push
 * woken tasks into under a mutex, and a condition variable it sleeps on when
 * both are empty. ac_block_on wraps its future in a root task (task.c), queues
 * it, and runs tasks from the queues until the root completes. A scheduler
 * with spawned tasks adds tasks to the same queues; a multi-thread one
 * replaces this file and keeps task.c and the waker ABI.
 *
 * Why wakes are never lost: a waker marks the task NOTIFIED (one CAS) and, if
 * the task was idle, pushes it to a queue; only tasks popped from a queue are
 * polled. A task woken during its own poll is requeued locally by the poller.
 * A wake from another thread takes the mutex to push, and the executor checks
 * the inject queue under the same mutex before it waits, so the signal cannot
 * fall between its check and its sleep.
 *
 * Deadlock: a pending root task that is not queued and holds no reference
 * but its owner's can never be woken (no waker clone exists), so ac_block_on
 * returns AC_EDEADLK. The last clone's drop reaches the executor through the
 * release hook under the mutex, so a sleeping executor learns of it.
 *
 * Hot path (a future that wakes itself and returns pending, like ac_yield):
 * the wake only sets a thread-local flag (ac__task_poll) and, while no other
 * task is runnable, the task is polled again at once: no allocation, lock,
 * system call or atomic read-modify-write per round. With other tasks
 * runnable it goes to the back of the local queue (three CASes: wake, idle,
 * running). The inject queue is looked at through a relaxed atomic flag.
 */
#include "internal.h"

#include <pthread.h>
#include <stdio.h>

/* Every this many polls the inject queue is checked even while local work
 * remains, so remote wake-ups are not starved (Tokio's global_queue_interval). */
#define INJECT_INTERVAL 31

/* An intrusive FIFO of tasks linked through ac__task.queue_next. */
typedef struct queue {
    ac__task *head; /* next to run; NULL when empty */
    ac__task *tail; /* last pushed; meaningless when empty */
} queue;

typedef struct executor {
    ac__scheduler base;     /* hooks that tasks call; first, so tasks can point here */
    queue local;            /* runnable tasks; touched only by the executor thread */
    unsigned tick;          /* tasks polled so far, paces inject checks */
    pthread_mutex_t mu;     /* guards inject and parked */
    pthread_cond_t cv;      /* signalled on inject push and on orphaning release */
    queue inject;           /* tasks woken from other threads */
    atomic_bool has_inject; /* hint that inject is non-empty, read without mu */
    bool parked;            /* the executor thread is waiting on cv */
} executor;

/* What running one task from the queue came to. */
typedef enum run_result {
    RAN_PENDING,  /* still pending (requeued if it was woken meanwhile) */
    RAN_COMPLETE, /* returned READY, output written, frame dropped */
    RAN_CANCELLED /* torn down after an abort, frame dropped */
} run_result;

/* The executor running on this thread, if any: wakes from its own thread go
 * to the local queue without a lock. Nested ac_block_on calls stack. */
static _Thread_local executor *current;

static void push(queue *q, ac__task *task)
{
    task->queue_next = NULL;
    if (q->head)
        q->tail->queue_next = task;
    else
        q->head = task;
    q->tail = task;
}

static ac__task *pop(queue *q)
{
    ac__task *task = q->head;
    if (task)
        q->head = task->queue_next;
    return task;
}

/* Moves all of `from` to the end of `to`. */
static void splice(queue *to, queue *from)
{
    if (!from->head)
        return;
    if (to->head)
        to->tail->queue_next = from->head;
    else
        to->head = from->head;
    to->tail = from->tail;
    from->head = NULL;
}

/* ac__scheduler.schedule: takes over the caller's notified reference. */
static void schedule(ac__scheduler *sched, ac__task *task)
{
    executor *ex = (executor *)sched;
    if (current == ex) {
        push(&ex->local, task);
        return;
    }
    pthread_mutex_lock(&ex->mu);
    push(&ex->inject, task);
    atomic_store_explicit(&ex->has_inject, true, memory_order_relaxed);
    if (ex->parked)
        pthread_cond_signal(&ex->cv);
    pthread_mutex_unlock(&ex->mu);
}

/* ac__scheduler.release: the task can no longer be woken; make the executor
 * re-examine it. Dropping the reference under mu means the executor, which
 * reads the count under mu, sees either the old count and then our signal,
 * or the new count; and it cannot return (and destroy mu) before we unlock. */
static void release(ac__scheduler *sched, ac__task *task)
{
    executor *ex = (executor *)sched;
    pthread_mutex_lock(&ex->mu);
    ac__task_ref_dec_unchecked(task);
    if (ex->parked)
        pthread_cond_signal(&ex->cv);
    pthread_mutex_unlock(&ex->mu);
}

static ac__task *next_task(executor *ex)
{
    bool look = !ex->local.head || ++ex->tick % INJECT_INTERVAL == 0;
    if (look && atomic_load_explicit(&ex->has_inject, memory_order_relaxed)) {
        pthread_mutex_lock(&ex->mu);
        splice(&ex->local, &ex->inject);
        atomic_store_explicit(&ex->has_inject, false, memory_order_relaxed);
        pthread_mutex_unlock(&ex->mu);
    }
    return pop(&ex->local);
}

/* Whether the root task can never run again: not queued or about to be,
 * and no reference but the owner's (so no waker clone exists). */
static bool orphaned(ac__task *root)
{
    size_t s = ac__task_state(root);
    return !(s & (AC__TASK_NOTIFIED | AC__TASK_RUNNING | AC__TASK_COMPLETE)) &&
           ac__task_refs(s) == 1;
}

/* Sleeps until another thread queues a task (returns true, the tasks now in
 * the local queue) or the root is orphaned (returns false). */
static bool wait_for_work(executor *ex, ac__task *root)
{
    bool woken = true;
    pthread_mutex_lock(&ex->mu);
    for (;;) {
        if (ex->inject.head) {
            splice(&ex->local, &ex->inject);
            atomic_store_explicit(&ex->has_inject, false, memory_order_relaxed);
            break;
        }
        if (orphaned(root)) {
            woken = false;
            break;
        }
        ex->parked = true;
        pthread_cond_wait(&ex->cv, &ex->mu);
        ex->parked = false;
    }
    pthread_mutex_unlock(&ex->mu);
    return woken;
}

/* Drops a claimed task's future and completes it. The caller keeps whatever
 * reference it holds. */
static void tear_down(ac__task *task)
{
    task->vt->drop(task->frame);
    ac__task_transition_to_complete(task);
}

/* Runs one task popped from a queue; consumes the queue's reference. */
static run_result run(executor *ex, ac__task *task)
{
    switch (ac__task_transition_to_running(task)) {
    case AC__RUN_FAILED:
        ac__task_ref_dec(task);
        return RAN_PENDING;
    case AC__RUN_CANCELLED:
        tear_down(task);
        ac__task_ref_dec(task);
        return RAN_CANCELLED;
    case AC__RUN_SUCCESS:
        break;
    }

    for (;;) {
        bool self_woken;
        if (ac__task_poll(task, &self_woken) == AC_READY) {
            ac__task_transition_to_complete(task);
            /* The frame is in RETURNED state, so this only honours the ABI
             * rule that every frame is dropped; it is harmless and cheap. */
            task->vt->drop(task->frame);
            ac__task_ref_dec(task);
            return RAN_COMPLETE;
        }
        if (!self_woken)
            break;
        /* The future woke itself (ac_yield): poll it again at once, which
         * touches no shared state, while no other task waits for this
         * thread and no abort is pending. Otherwise record the wake, so
         * that transition_to_idle requeues the task behind the others or
         * reports the abort. Both checks are plain loads: a late view only
         * costs a round. */
        if (ex->local.head || atomic_load_explicit(&ex->has_inject, memory_order_relaxed) ||
            (atomic_load_explicit(&task->state, memory_order_relaxed) & AC__TASK_CANCELLED)) {
            ac__task_transition_to_notified_by_ref(task);
            break;
        }
    }

    switch (ac__task_transition_to_idle(task)) {
    case AC__IDLE_OK:
        ac__task_ref_dec(task);
        return RAN_PENDING;
    case AC__IDLE_OK_NOTIFIED:
        push(&ex->local, task); /* our reference becomes the queue entry's */
        return RAN_PENDING;
    case AC__IDLE_CANCELLED:
        tear_down(task);
        ac__task_ref_dec(task);
        return RAN_CANCELLED;
    }
    return RAN_PENDING;
}

/* Runs tasks until the root finishes. Returns 0, AC_ECANCELED, or AC_EDEADLK. */
static int run_until_complete(executor *ex, ac__task *root)
{
    for (;;) {
        ac__task *task = next_task(ex);
        if (!task) {
            if (wait_for_work(ex, root))
                continue;
            /* Orphaned: no one else holds a reference, so the claim cannot
             * race, but go through the transition like any teardown. */
            if (ac__task_transition_to_shutdown(root))
                tear_down(root);
            return AC_EDEADLK;
        }
        run_result r = run(ex, task);
        if (task == root && r != RAN_PENDING)
            return r == RAN_COMPLETE ? 0 : AC_ECANCELED;
    }
}

int ac_block_on(const ac_future_vt *vt, void *frame, void *out)
{
    if (!vt || !vt->poll || !vt->drop || !frame)
        return AC_EINVAL;
    if (!out && vt->out_size) {
        vt->drop(frame);
        return AC_EINVAL;
    }

    executor ex = {.base = {schedule, release}};
    atomic_init(&ex.has_inject, false);
    ac__task *root = ac__task_new(&ex.base, vt, frame, out);
    if (!root) {
        vt->drop(frame);
        return AC_ENOMEM;
    }
    pthread_mutex_init(&ex.mu, NULL);
    pthread_cond_init(&ex.cv, NULL);

    executor *outer = current;
    current = &ex;
    push(&ex.local, root); /* the notified reference from ac__task_new */
    int err = run_until_complete(&ex, root);
    current = outer;

    /* The root is complete, so wakers still held elsewhere will neither
     * schedule it nor call release: ex may go. The last one frees the task. */
    ac__task_ref_dec(root);
    pthread_cond_destroy(&ex.cv);
    pthread_mutex_destroy(&ex.mu);
    return err;
}

/* ======================================================================== */
/* Program entry                                                             */
/* ======================================================================== */

int ac__run_main(const ac_future_vt *vt, void (*init)(void *frame, int argc, char **argv),
                 int argc, char **argv)
{
    int result = 0;
    if (vt->out_size != 0 && vt->out_size != sizeof result) {
        fprintf(stderr, "asyncc: async_main: must return int or void, not a %zu-byte value\n",
                vt->out_size);
        return 1;
    }
    void *frame = ac_frame_alloc(vt);
    if (!frame) {
        fprintf(stderr, "asyncc: async_main: %s\n", ac_strerror(AC_ENOMEM));
        return 1;
    }
    init(frame, argc, argv);
    int err = ac_block_on(vt, frame, vt->out_size ? &result : NULL);
    ac_frame_free(vt, frame);
    if (err) {
        fprintf(stderr, "asyncc: async_main: %s\n", ac_strerror(err));
        return 1;
    }
    return result;
}

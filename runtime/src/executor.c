/*
 * executor.c: the current-thread executor behind ac_block_on (and behind the
 * block_on of a multi-thread runtime, whose calling thread drives only its
 * own future), and the body of the program entry point (ac__run_main).
 *
 * Shape (Tokio's current_thread scheduler): the executor owns a local run
 * queue that only its thread touches, an inject queue that other threads push
 * woken tasks into under a mutex, and a condition variable it sleeps on when
 * both are empty. ac_block_on wraps its future in a root task (task.c), queues
 * it, and runs tasks from the queues until the root completes. Only the root
 * is ever in these queues: tasks it spawns belong to the thread's runtime
 * (sched.c), whose workers run them.
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
    ac_runtime *rt;         /* runtime to report idleness to, or NULL */
    unsigned coop;          /* cooperative budget per poll */
    queue local;            /* runnable tasks; touched only by the executor thread */
    unsigned tick;          /* tasks polled so far, paces inject checks */
    pthread_mutex_t mu;     /* guards inject and parked */
    pthread_cond_t cv;      /* signalled on inject push and on orphaning release */
    queue inject;           /* tasks woken from other threads */
    atomic_bool has_inject; /* hint that inject is non-empty, read without mu */
    bool parked;            /* the executor thread is waiting on cv */
    bool idle;              /* counted idle for rt (guarded by mu); a waker makes it busy */
} executor;

/* What running one task from the queue came to. */
typedef enum run_result {
    RAN_PENDING,  /* still pending (requeued if it was woken meanwhile) */
    RAN_COMPLETE, /* returned READY, output written, frame dropped */
    RAN_CANCELLED, /* torn down after an abort, frame dropped */
    RAN_PANICKED  /* the poll called ac_panic; frame dropped */
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
    if (ex->idle) {
        /* Busy from now on, not from when it wakes up: a paused clock must
         * not jump while the woken thread is on its way. */
        ex->idle = false;
        ac__runtime_thread_busy(ex->rt);
    }
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
    if (ex->rt && !ex->inject.head) {
        ex->idle = true;
        ac__runtime_thread_idle(ex->rt);
    }
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
        /* Time (timer.c): outside any runtime no worker drives the timers,
         * so this thread does, Tokio current_thread style: it sleeps at most
         * until the next timer is due, then wakes the due ones (their wakes
         * land in the local queue); with a paused clock it jumps the clock to
         * the next timer instead, since nothing here can run before it. */
        int64_t timeout = -1;
        if (!ex->rt && !ac_runtime_current()) {
            pthread_mutex_unlock(&ex->mu); /* fire_due takes other locks */
            timeout = ac__time_park_timeout(true);
            if (timeout == 0)
                ac__time_fire_due();
            pthread_mutex_lock(&ex->mu);
            if (timeout == 0) {
                if (ex->local.head)
                    break;
                continue;
            }
            /* A remote wake or release while mu was free saw parked false
             * and signalled nobody: look again before sleeping. */
            if (ex->inject.head || orphaned(root))
                continue;
        }
        ex->parked = true;
        ac__cond_wait_until(&ex->cv, &ex->mu,
                            timeout < 0 ? UINT64_MAX
                                        : ac__clock_real_ns() + (uint64_t)timeout);
        ex->parked = false;
    }
    if (ex->idle) {
        ex->idle = false;
        ac__runtime_thread_busy(ex->rt);
    }
    pthread_mutex_unlock(&ex->mu);
    return woken;
}

/* Drops a claimed task's future and completes it. The caller keeps whatever
 * reference it holds. */
static void tear_down(ac__task *task)
{
    task->vt->drop(ac__task_frame(task));
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
        unsigned budget = ex->coop;
        ac_poll_t r = ac__task_poll_budget(task, &self_woken, &budget);
        ac__spawn_flush(); /* what the poll spawned starts now */
        if (r == AC_READY) {
            ac__task_transition_to_complete(task);
            /* The frame is in RETURNED state, so this only honours the ABI
             * rule that every frame is dropped; it is harmless and cheap. */
            task->vt->drop(ac__task_frame(task));
            ac__task_ref_dec(task);
            return RAN_COMPLETE;
        }
        if (r == AC__POLL_PANICKED) {
            tear_down(task); /* never polled again */
            ac__task_ref_dec(task);
            return RAN_PANICKED;
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

/* Runs tasks until the root finishes. Returns 0, AC_ECANCELED, AC_EPANIC or
 * AC_EDEADLK. */
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
            return r == RAN_COMPLETE ? 0 : r == RAN_PANICKED ? AC_EPANIC : AC_ECANCELED;
    }
}

int ac_block_on(const ac_future_vt *vt, void *frame, void *out)
{
    return ac__block_on_root(NULL, vt, frame, out);
}

int ac__block_on_root(ac_runtime *rt, const ac_future_vt *vt, void *frame, void *out)
{
    if (!vt || !vt->poll || !vt->drop || !frame)
        return AC_EINVAL;
    if (!out && vt->out_size) {
        vt->drop(frame);
        return AC_EINVAL;
    }

    /* Spawns from the root go to the runtime's shared queue, not to a worker
     * this thread may be (its queue would wait for us). */
    ac__thread_ctx ctx = ac__thread_ctx_enter(rt ? rt : ac_runtime_current());
    executor ex = {.base = {schedule, release}, .rt = rt, .coop = ac__coop_budget_current()};
    atomic_init(&ex.has_inject, false);
    ac__task *root = ac__task_new(&ex.base, vt, frame, out);
    if (!root) {
        vt->drop(frame);
        ac__thread_ctx_restore(ctx);
        return AC_ENOMEM;
    }
    if (rt)
        ac__runtime_thread_busy(rt);
    pthread_mutex_init(&ex.mu, NULL);
    pthread_cond_init(&ex.cv, NULL);

    executor *outer = current;
    current = &ex;
    push(&ex.local, root); /* the notified reference from ac__task_new */
    int err = run_until_complete(&ex, root);
    current = outer;
    if (rt)
        ac__runtime_thread_idle(rt);
    ac__thread_ctx_restore(ctx);

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
    ac_runtime *rt;
    int err = ac_runtime_new(NULL, &rt); /* the default multi-thread runtime */
    if (err) {
        fprintf(stderr, "asyncc: async_main: %s\n", ac_strerror(err));
        return 1;
    }
    void *frame = ac_frame_alloc(vt);
    if (!frame) {
        ac_runtime_free(rt);
        fprintf(stderr, "asyncc: async_main: %s\n", ac_strerror(AC_ENOMEM));
        return 1;
    }
    init(frame, argc, argv);
    err = ac_runtime_block_on(rt, vt, frame, vt->out_size ? &result : NULL);
    ac_frame_free(vt, frame);
    /* Tasks still running when async_main returns are cancelled (Tokio). */
    ac_runtime_free(rt);
    if (err) {
        fprintf(stderr, "asyncc: async_main: %s\n", ac_strerror(err));
        return 1;
    }
    return result;
}

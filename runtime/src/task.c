/*
 * task.c: the task object, its state word, and the wakers that point at it.
 *
 * The state word and its invariants are documented in internal.h. Every change
 * to it is one of the transition functions below: a compare-and-swap loop that
 * computes the next word from the current one and returns an outcome telling
 * the caller what it has become responsible for (polling, requeueing,
 * scheduling, freeing). This is Tokio's runtime/task/state.rs, cut down to the
 * bits this runtime uses, and it is what keeps wakers thread-safe without a
 * lock: a wake from any thread is one CAS, and the NOTIFIED bit guarantees that
 * a task sits in at most one run queue however many wakes race.
 *
 * Hot path: when a future wakes its own task by reference during its poll
 * (ac_yield), the wake runs on the polling thread, which looks at the task
 * again as soon as the poll returns. So ac__task_poll records such a wake in
 * a thread-local flag instead of the shared word, and a yield round costs no
 * atomic read-modify-write at all. Any other wake (from another thread, of
 * another task, or by value) is one CAS.
 *
 * Spawned tasks (ac__task_frame_new) are one slot of the current runtime's
 * slab (slab.c; plain malloc outside a runtime, where ac__spawn refuses
 * them): the header, the output slot that the JoinHandle points to, the
 * distance back to the header, and the frame:
 *
 *     task -> [ac__task, 48 bytes][output slot][pad][uint32_t][frame]
 *              handle = task + AC__TASK_HEADER       frame - frame[-1] -> task
 *
 * A trivial task (8-byte output, 16-byte frame) takes 80 bytes; one with an
 * int output and a frame of up to 72 bytes, 128 (two cache lines). The
 * header holds neither the frame's address nor the owner: the frame is at
 * ac__task_frame_at(vt) and the owner is the slab's runtime. A root task
 * (ac__task_new) is malloc'd, with its owner, frame and the caller's output
 * pointer after the header (ac__root_task).
 *
 * Panics: ac__task_poll_budget sets a jump buffer around the future's poll;
 * ac_panic prints its message and jumps back there, so the poll is abandoned
 * and the caller tears the task down. The jump buffer and the "task being
 * polled" are saved and restored around each poll, since ac_block_on may run
 * inside a poll. A worker arms one buffer for all its polls instead
 * (ac__task_poll_landing): with a sigsetjmp per poll, a yield round on a
 * worker took 16.0 ns instead of 14.5.
 */
#include "internal.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Refuse counts this large: a leak of clones in a loop, better caught early. */
#define MAX_REFS (SIZE_MAX >> (AC__TASK_REF_SHIFT + 1))

static const ac_waker_vtable task_waker_vtable;

/* The task whose future this thread is polling (NULL outside polls), and
 * whether that future woke its own task by reference during the poll. */
static _Thread_local ac__task *polled;
static _Thread_local bool polled_woken;
/* Where ac_panic jumps: the poll in progress on this thread, or NULL. */
static _Thread_local sigjmp_buf *panic_target;

static bool is_idle(size_t s) { return (s & (AC__TASK_RUNNING | AC__TASK_COMPLETE)) == 0; }

static void overflow(void)
{
    fputs("asyncc: task reference count overflow (waker clones leaked?)\n", stderr);
    abort();
}

/* Applies `next` if the word still equals *cur; on failure reloads *cur. */
static bool cas(ac__task *task, size_t *cur, size_t next)
{
    return atomic_compare_exchange_weak_explicit(&task->state, cur, next, memory_order_acq_rel,
                                                 memory_order_acquire);
}

_Static_assert(sizeof(ac__task) == 48, "a task header is 48 bytes (see internal.h)");

/* The scheduler that owns the task. */
static ac__scheduler *task_sched(const ac__task *task)
{
    if (task->kind == AC__TASK_ROOT)
        return ((const ac__root_task *)task)->sched;
    return ac__slab_sched(task);
}

/* Hands a notified reference to the task's scheduler, which queues it. */
static void submit(ac__task *task)
{
    ac__scheduler *sched = task_sched(task);
    sched->schedule(sched, task);
}

ac__task *ac__task_new(ac__scheduler *sched, const ac_future_vt *vt, void *frame, void *out)
{
    ac__root_task *root = malloc(sizeof *root);
    if (!root)
        return NULL;
    ac__task *task = &root->task;
    atomic_init(&task->state, AC__TASK_NOTIFIED | 2 * (size_t)AC__TASK_REF_ONE);
    task->queue_next = NULL;
    task->vt = vt;
    task->join_waker = (ac_waker){NULL, NULL};
    task->chunk_off = 0;
    task->kind = AC__TASK_ROOT;
    task->outcome = 0;
    task->slab_class = AC__SLAB_NONE;
    task->frame_off = 0;
    root->sched = sched;
    root->frame = frame;
    root->out = out;
    return task;
}

void *ac__task_frame_new(const ac_future_vt *vt)
{
    const char *name = vt->name ? vt->name : "<unknown>";
    if (vt->align & (vt->align - 1)) {
        fprintf(stderr, "asyncc: cannot spawn '%s': alignment %zu is not a power of two\n", name,
                vt->align);
        abort();
    }
    size_t align = ac__task_frame_align(vt);
    size_t frame_at = ac__task_frame_at(vt);
    size_t total = frame_at + vt->size;
    ac__task *task = NULL;
    if (vt->out_size < SIZE_MAX / 4 && vt->size < SIZE_MAX / 4) {
        /* From the runtime's slab; outside a runtime ac__spawn will refuse
         * the task, but the frame is still made (and freed) normally. */
        ac__slab_heap *heap = ac__runtime_heap();
        if (heap) {
            task = ac__slab_alloc(heap, total, align);
        } else if (!ac_runtime_current()) {
            void *block = NULL;
            if (align <= _Alignof(max_align_t))
                block = malloc(total);
            else if (posix_memalign(&block, align, total) != 0)
                block = NULL;
            if ((task = block)) {
                task->chunk_off = 0;
                task->slab_class = AC__SLAB_NONE;
            }
        }
    }
    if (!task) {
        fprintf(stderr, "asyncc: out of memory spawning a task for '%s' (%zu bytes)\n", name, total);
        abort();
    }
    char *frame = (char *)task + frame_at;
    atomic_init(&task->state, 0); /* set by ac__spawn */
    task->queue_next = NULL;
    task->vt = vt;
    task->join_waker = (ac_waker){NULL, NULL};
    task->kind = AC__TASK_SPAWNED;
    task->outcome = 0;
    task->frame_off = frame_at <= UINT8_MAX ? (uint8_t)frame_at : 0;
    ((uint32_t *)frame)[-1] = (uint32_t)frame_at;
    return frame;
}

void ac__task_dealloc(ac__task *task)
{
    if (task->slab_class == AC__SLAB_NONE)
        free(task);
    else
        ac__slab_free(task);
}

ac__run_outcome ac__task_transition_to_running(ac__task *task)
{
    size_t cur = atomic_load_explicit(&task->state, memory_order_acquire);
    for (;;) {
        if (!is_idle(cur) || !(cur & AC__TASK_NOTIFIED))
            return AC__RUN_FAILED;
        size_t next = (cur | AC__TASK_RUNNING) & ~(size_t)AC__TASK_NOTIFIED;
        if (cas(task, &cur, next))
            return (cur & AC__TASK_CANCELLED) ? AC__RUN_CANCELLED : AC__RUN_SUCCESS;
    }
}

ac__idle_outcome ac__task_transition_to_idle(ac__task *task)
{
    size_t cur = atomic_load_explicit(&task->state, memory_order_acquire);
    for (;;) {
        /* Stay RUNNING: the caller still owns the future and tears it down. */
        if (cur & AC__TASK_CANCELLED)
            return AC__IDLE_CANCELLED;
        /* NOTIFIED stays set when it is: the caller requeues the task, and
         * the bit tells concurrent wakers that it is already queued. */
        size_t next = cur & ~(size_t)AC__TASK_RUNNING;
        if (cur & AC__TASK_NOTIFIED) {
            if (cas(task, &cur, next))
                return AC__IDLE_OK_NOTIFIED;
            continue;
        }
        /* Idle, and the caller's reference goes in the same step, unless
         * it may be the last one but the owner's: ac__task_ref_dec then
         * lets the scheduler see the task orphaned. */
        if (ac__task_refs(cur) <= 2) {
            if (cas(task, &cur, next)) {
                ac__task_ref_dec(task);
                return AC__IDLE_OK;
            }
            continue;
        }
        if (cas(task, &cur, next - AC__TASK_REF_ONE))
            return AC__IDLE_OK;
    }
}

size_t ac__task_transition_to_complete(ac__task *task)
{
    size_t cur = atomic_load_explicit(&task->state, memory_order_acquire);
    while (!cas(task, &cur, (cur & ~(size_t)AC__TASK_RUNNING) | AC__TASK_COMPLETE))
        ;
    return cur;
}

bool ac__task_transition_to_complete_and_drop(ac__task *task, size_t n)
{
    size_t cur = atomic_load_explicit(&task->state, memory_order_acquire);
    for (;;) {
        if ((cur & AC__TASK_JOIN_WAKER) || !(cur & AC__TASK_JOIN_INTEREST))
            return false;
        size_t next = ((cur & ~(size_t)AC__TASK_RUNNING) | AC__TASK_COMPLETE) - n * AC__TASK_REF_ONE;
        if (cas(task, &cur, next))
            return true;
    }
}

bool ac__task_set_join_waker(ac__task *task)
{
    size_t cur = atomic_load_explicit(&task->state, memory_order_acquire);
    for (;;) {
        if (cur & AC__TASK_COMPLETE)
            return false;
        if (cas(task, &cur, cur | AC__TASK_JOIN_WAKER))
            return true;
    }
}

bool ac__task_unset_join_waker(ac__task *task)
{
    size_t cur = atomic_load_explicit(&task->state, memory_order_acquire);
    for (;;) {
        if (cur & AC__TASK_COMPLETE)
            return false;
        if (cas(task, &cur, cur & ~(size_t)AC__TASK_JOIN_WAKER))
            return true;
    }
}

size_t ac__task_unset_join_waker_after_complete(ac__task *task)
{
    return atomic_fetch_and_explicit(&task->state, ~(size_t)AC__TASK_JOIN_WAKER,
                                     memory_order_acq_rel);
}

size_t ac__task_transition_to_join_handle_dropped(ac__task *task)
{
    size_t cur = atomic_load_explicit(&task->state, memory_order_acquire);
    for (;;) {
        size_t next = cur & ~(size_t)AC__TASK_JOIN_INTEREST;
        /* Not complete: the slot comes back to us, and we empty it. Complete:
         * a completer that still has JOIN_WAKER set will see that the
         * interest is gone and drop the waker itself. */
        if (!(cur & AC__TASK_COMPLETE))
            next &= ~(size_t)AC__TASK_JOIN_WAKER;
        if (cas(task, &cur, next))
            return cur;
    }
}

bool ac__task_transition_to_shutdown(ac__task *task)
{
    size_t cur = atomic_load_explicit(&task->state, memory_order_acquire);
    for (;;) {
        if (cur & AC__TASK_COMPLETE)
            return false;
        bool claim = is_idle(cur);
        size_t next = cur | AC__TASK_CANCELLED | (claim ? AC__TASK_RUNNING : 0);
        if (cas(task, &cur, next))
            return claim;
    }
}

ac__notify_outcome ac__task_transition_to_notified_by_ref(ac__task *task)
{
    size_t cur = atomic_load_explicit(&task->state, memory_order_acquire);
    for (;;) {
        size_t next;
        ac__notify_outcome outcome;
        if (cur & (AC__TASK_COMPLETE | AC__TASK_NOTIFIED))
            return AC__NOTIFY_DO_NOTHING; /* nothing to add; no write at all */
        if (cur & AC__TASK_RUNNING) {
            /* The poller requeues it when its poll ends (transition_to_idle). */
            next = cur | AC__TASK_NOTIFIED;
            outcome = AC__NOTIFY_DO_NOTHING;
        } else {
            /* Idle: we queue it, and the queue entry needs its own reference. */
            if (ac__task_refs(cur) >= MAX_REFS)
                overflow();
            next = (cur | AC__TASK_NOTIFIED) + AC__TASK_REF_ONE;
            outcome = AC__NOTIFY_SUBMIT;
        }
        if (cas(task, &cur, next))
            return outcome;
    }
}

ac__notify_outcome ac__task_transition_to_notified_by_val(ac__task *task)
{
    size_t cur = atomic_load_explicit(&task->state, memory_order_acquire);
    for (;;) {
        size_t next;
        ac__notify_outcome outcome;
        if (cur & AC__TASK_RUNNING) {
            /* The poller holds a reference, so ours is not the last. */
            next = (cur | AC__TASK_NOTIFIED) - AC__TASK_REF_ONE;
            outcome = AC__NOTIFY_DO_NOTHING;
        } else if (cur & (AC__TASK_COMPLETE | AC__TASK_NOTIFIED)) {
            /* Complete, or already queued (the queue holds a reference, so an
             * idle notified task can never be orphaned by this drop). */
            next = cur - AC__TASK_REF_ONE;
            outcome = ac__task_refs(next) == 0 ? AC__NOTIFY_DEALLOC : AC__NOTIFY_DO_NOTHING;
        } else {
            /* Idle: our reference becomes the queue entry's. */
            next = cur | AC__TASK_NOTIFIED;
            outcome = AC__NOTIFY_SUBMIT;
        }
        if (cas(task, &cur, next))
            return outcome;
    }
}

ac__notify_outcome ac__task_transition_to_notified_and_cancel(ac__task *task)
{
    size_t cur = atomic_load_explicit(&task->state, memory_order_acquire);
    for (;;) {
        size_t next;
        ac__notify_outcome outcome = AC__NOTIFY_DO_NOTHING;
        if (cur & (AC__TASK_COMPLETE | AC__TASK_CANCELLED))
            return AC__NOTIFY_DO_NOTHING;
        if (cur & (AC__TASK_RUNNING | AC__TASK_NOTIFIED)) {
            /* The poller sees CANCELLED in transition_to_idle, or the queued
             * task sees it in transition_to_running. */
            next = cur | AC__TASK_NOTIFIED | AC__TASK_CANCELLED;
        } else {
            if (ac__task_refs(cur) >= MAX_REFS)
                overflow();
            next = (cur | AC__TASK_NOTIFIED | AC__TASK_CANCELLED) + AC__TASK_REF_ONE;
            outcome = AC__NOTIFY_SUBMIT;
        }
        if (cas(task, &cur, next))
            return outcome;
    }
}

void ac__task_ref_inc(ac__task *task)
{
    /* Relaxed, as for any reference count: the caller already holds a
     * reference, so the task cannot go away concurrently. */
    size_t prev = atomic_fetch_add_explicit(&task->state, AC__TASK_REF_ONE, memory_order_relaxed);
    if (ac__task_refs(prev) >= MAX_REFS)
        overflow();
}

void ac__task_ref_dec(ac__task *task)
{
    size_t cur = atomic_load_explicit(&task->state, memory_order_acquire);
    for (;;) {
        /*
         * Two references on an idle, un-notified task: ours and the owner's.
         * Once ours is gone nothing can ever wake the task, and its owner may
         * be asleep waiting for exactly that. The scheduler drops the
         * reference under its own lock so that it cannot miss this (and so
         * that it cannot free itself while we are still signalling it).
         */
        if (ac__task_refs(cur) == 2 && is_idle(cur) && !(cur & AC__TASK_NOTIFIED)) {
            ac__scheduler *sched = task_sched(task);
            sched->release(sched, task);
            return;
        }
        if (cas(task, &cur, cur - AC__TASK_REF_ONE)) {
            if (ac__task_refs(cur) == 1)
                ac__task_dealloc(task);
            return;
        }
    }
}

void ac__task_ref_dec_complete(ac__task *task, size_t n)
{
    size_t prev = atomic_fetch_sub_explicit(&task->state, n * AC__TASK_REF_ONE, memory_order_acq_rel);
    if (ac__task_refs(prev) == n)
        ac__task_dealloc(task);
}

void ac__task_ref_dec_unchecked(ac__task *task)
{
    size_t prev = atomic_fetch_sub_explicit(&task->state, AC__TASK_REF_ONE, memory_order_acq_rel);
    if (ac__task_refs(prev) < 2) {
        fputs("asyncc: internal error: unchecked release of a task's last reference\n", stderr);
        abort();
    }
}

ac_poll_t ac__task_poll_budget(ac__task *task, bool *self_woken, unsigned *budget)
{
    /* Save the outer poll's: ac_block_on may be called from inside a poll. */
    ac__task *outer = polled;
    bool outer_woken = polled_woken;
    sigjmp_buf *outer_target = panic_target;
    sigjmp_buf target;
    polled = task;
    polled_woken = false;

    ac_waker waker = {&task_waker_vtable, task};
    ac_context cx = {&waker, budget};
    ac_poll_t r;
    if (sigsetjmp(target, 0) == 0) {
        panic_target = &target;
        r = task->vt->poll(ac__task_frame(task), &cx, ac__task_out(task));
    } else {
        r = AC__POLL_PANICKED; /* ac_panic jumped here out of the poll */
    }

    *self_woken = polled_woken;
    polled = outer;
    polled_woken = outer_woken;
    panic_target = outer_target;
    return r;
}

ac_poll_t ac__task_poll_landing(ac__task *task, bool *self_woken, unsigned *budget,
                                sigjmp_buf *landing)
{
    ac__task *outer = polled;
    bool outer_woken = polled_woken;
    sigjmp_buf *outer_target = panic_target;
    polled = task;
    polled_woken = false;
    panic_target = landing;

    ac_waker waker = {&task_waker_vtable, task};
    ac_context cx = {&waker, budget};
    ac_poll_t r = task->vt->poll(ac__task_frame(task), &cx, ac__task_out(task));

    *self_woken = polled_woken;
    polled = outer;
    polled_woken = outer_woken;
    panic_target = outer_target;
    return r;
}

ac__task *ac__task_poll_abandoned(void)
{
    /* The landing is outside any poll (see internal.h): nothing to restore
     * but the empty state. */
    ac__task *task = polled;
    polled = NULL;
    polled_woken = false;
    panic_target = NULL;
    return task;
}

ac_poll_t ac__task_poll(ac__task *task, bool *self_woken)
{
    unsigned budget = ac__coop_budget_current();
    return ac__task_poll_budget(task, self_woken, &budget);
}

_Noreturn void ac_panic(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt ? fmt : "(null)", ap);
    va_end(ap);
    if (!panic_target) {
        fprintf(stderr, "asyncc: panicked outside a task: %s\n", msg);
        abort();
    }
    fprintf(stderr, "asyncc: task panicked: %s\n", msg);
    siglongjmp(*panic_target, 1);
}

/*
 * A wake from outside the task's runtime: a thread that is not one of the
 * threads running its tasks (a foreign thread, a blocking-pool thread, a
 * block_on thread of a multi-thread runtime) queues the task and then wakes
 * a thread of the runtime. Once queued, the task can run, block_on return
 * and the runtime be freed while this thread is still in the runtime's
 * queue or parker. Such a wake is counted in the task's slab from before
 * its transition (the caller's reference keeps the slab) to after the
 * submit, and ac_runtime_free waits until none is counted. Returns the
 * slab to exit, or NULL for a wake that needs no count.
 */
static ac__slab *outside_enter(const ac__task *task)
{
    if (task->kind != AC__TASK_SPAWNED || ac__runtime_is_own_thread(ac__slab_sched(task)))
        return NULL;
    return ac__slab_outside_enter(task);
}

static void outside_exit(ac__slab *s)
{
    if (s)
        ac__slab_outside_exit(s);
}

/* A wake by reference of a task that is not being polled by this thread. */
static __attribute__((noinline)) void wake_other_by_ref(ac__task *task)
{
    ac__slab *outside = outside_enter(task);
    if (ac__task_transition_to_notified_by_ref(task) == AC__NOTIFY_SUBMIT)
        submit(task);
    outside_exit(outside);
}

void ac__task_wake_by_ref(ac__task *task)
{
    /* The poller of this task is this thread, and it looks at the flag when
     * the poll returns: nothing else needs to know. */
    if (task == polled) {
        polled_woken = true;
        return;
    }
    wake_other_by_ref(task);
}

void ac__task_abort(ac__task *task)
{
    ac__slab *outside = outside_enter(task);
    if (ac__task_transition_to_notified_and_cancel(task) == AC__NOTIFY_SUBMIT)
        submit(task);
    outside_exit(outside);
}

/* ======================================================================== */
/* Wakers: data is the task; each clone holds one reference.                 */
/* ======================================================================== */

static ac__task *as_task(const void *data) { return (ac__task *)(uintptr_t)data; }

static ac_waker waker_clone(const void *data)
{
    ac__task_ref_inc(as_task(data));
    return (ac_waker){&task_waker_vtable, data};
}

static void waker_wake(const void *data)
{
    ac__task *task = as_task(data);
    /* Entered while our reference holds the slab. After a submit the task
     * may be gone, but the slab stays until we exit: a runtime's slab is
     * closed after the wait for us. A closed slab goes with its last task,
     * so we exit before freeing that. */
    ac__slab *outside = outside_enter(task);
    switch (ac__task_transition_to_notified_by_val(task)) {
    case AC__NOTIFY_SUBMIT:
        submit(task);
        break;
    case AC__NOTIFY_DEALLOC:
        outside_exit(outside);
        ac__task_dealloc(task);
        return;
    case AC__NOTIFY_DO_NOTHING:
        break;
    }
    outside_exit(outside);
}

static void waker_wake_by_ref(const void *data) { ac__task_wake_by_ref(as_task(data)); }

static void waker_drop(const void *data) { ac__task_ref_dec(as_task(data)); }

static const ac_waker_vtable task_waker_vtable = {
    waker_clone,
    waker_wake,
    waker_wake_by_ref,
    waker_drop,
};

ac_waker ac__task_waker(ac__task *task) { return (ac_waker){&task_waker_vtable, task}; }

/* ======================================================================== */
/* The no-op waker                                                           */
/* ======================================================================== */

static const ac_waker_vtable noop_waker_vtable;

static ac_waker noop_clone(const void *data) { return (ac_waker){&noop_waker_vtable, data}; }

static void noop(const void *data) { (void)data; }

static const ac_waker_vtable noop_waker_vtable = {noop_clone, noop, noop, noop};

static const ac_waker noop_waker = {&noop_waker_vtable, NULL};

const ac_waker *ac_waker_noop(void) { return &noop_waker; }

/*
 * internal.h: declarations shared between the files of runtime/src (and the
 * runtime's own unit tests). Nothing here is ABI: generated code and user
 * programs only see asyncc.h.
 *
 * Sections: tasks and the interface a scheduler gives them (task.c); program
 * entry (executor.c).
 */
#ifndef ASYNCC_INTERNAL_H
#define ASYNCC_INTERNAL_H

#ifndef ASYNCC_RUNTIME_INTERNAL
#define ASYNCC_RUNTIME_INTERNAL 1
#endif
#include "../include/asyncc.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

/* ======================================================================== */
/* Tasks (task.c)                                                            */
/* ======================================================================== */

/*
 * A task is a future plus the bookkeeping a scheduler needs to poll it when it
 * is woken. Its `state` is one atomic word, modelled on Tokio's
 * runtime/task/state.rs:
 *
 *   bit 0  RUNNING    a scheduler thread owns the future: it is polling it, or
 *                     tearing it down. Only that thread touches the frame.
 *   bit 1  COMPLETE   the future returned READY or was torn down. Terminal:
 *                     wakes do nothing, the future is never polled again.
 *   bit 2  NOTIFIED   woken since its last poll began. An idle NOTIFIED task is
 *                     in a run queue (or its waker is about to put it in one);
 *                     a RUNNING one is requeued when the poll ends.
 *   bit 3  CANCELLED  abort was requested; the next poll is replaced by
 *                     teardown.
 *   bits 4-5          reserved for JoinHandle interest and join waker.
 *   bits 6..          reference count.
 *
 * References: the owner (the scheduler that created the task) holds one until
 * the task is complete; every queue entry holds one ("the notified
 * reference", which the poll consumes); every waker clone holds one. The waker
 * that a poll receives in its context is borrowed and holds none.
 *
 * The word changes only through the ac__task_transition_* functions and the
 * reference functions below, each one compare-and-swap loop whose outcome tells
 * the caller what it now has to do. No lock is taken on any of these paths.
 */
enum {
    AC__TASK_RUNNING = 1u << 0,
    AC__TASK_COMPLETE = 1u << 1,
    AC__TASK_NOTIFIED = 1u << 2,
    AC__TASK_CANCELLED = 1u << 3,
    AC__TASK_REF_SHIFT = 6,
    AC__TASK_REF_ONE = 1u << AC__TASK_REF_SHIFT
};

typedef struct ac__task ac__task;
typedef struct ac__scheduler ac__scheduler;

/*
 * What a task needs from the scheduler that owns it. A scheduler embeds this
 * as its first member. Both hooks may be called from any thread.
 */
struct ac__scheduler {
    /* The task was woken while idle: queue it so it is polled. Takes over
     * one reference (the notified reference) from the caller. */
    void (*schedule)(ac__scheduler *sched, ac__task *task);
    /* The caller is dropping a reference that would leave the idle,
     * un-notified task with only its owner's reference: nothing can wake it
     * any more. The hook must drop that reference itself (with
     * ac__task_ref_dec_unchecked), under whatever lock makes the owner notice
     * without missing it. */
    void (*release)(ac__scheduler *sched, ac__task *task);
};

struct ac__task {
    _Atomic size_t state;   /* the word described above */
    ac__scheduler *sched;   /* owner; valid while the task is not COMPLETE */
    ac__task *queue_next;   /* run queue link, owned by the queue that holds the task */
    const ac_future_vt *vt; /* the future's type */
    void *frame;            /* the future's frame (not owned by the task) */
    void *out;              /* where READY output is written; NULL for void */
};

/* Outcome of ac__task_transition_to_running. */
typedef enum ac__run_outcome {
    AC__RUN_SUCCESS,   /* caller owns the future and polls it */
    AC__RUN_CANCELLED, /* caller owns the future and must tear it down */
    AC__RUN_FAILED     /* running elsewhere or complete: just drop the notified reference */
} ac__run_outcome;

/* Outcome of ac__task_transition_to_idle. */
typedef enum ac__idle_outcome {
    AC__IDLE_OK,          /* idle now; caller drops its notified reference */
    AC__IDLE_OK_NOTIFIED, /* woken during the poll: caller requeues it (keeping its reference) */
    AC__IDLE_CANCELLED    /* abort requested: caller still owns it and must tear it down */
} ac__idle_outcome;

/* Outcome of the ac__task_transition_to_notified_* functions. */
typedef enum ac__notify_outcome {
    AC__NOTIFY_DO_NOTHING, /* already queued, running, or complete */
    AC__NOTIFY_SUBMIT,     /* caller holds a new notified reference: schedule the task */
    AC__NOTIFY_DEALLOC     /* caller dropped the last reference: free the task */
} ac__notify_outcome;

/*
 * Returns a new task for the future (vt, frame) owned by `sched`, in state
 * NOTIFIED with two references: the owner's and the notified one for the
 * run queue that the caller must put it in. The task borrows frame and out.
 * Returns NULL when memory is exhausted.
 */
ac__task *ac__task_new(ac__scheduler *sched, const ac_future_vt *vt, void *frame, void *out);

/* NOTIFIED -> RUNNING, before a poll; consumes nothing. */
ac__run_outcome ac__task_transition_to_running(ac__task *task);
/* RUNNING -> idle, after a poll returned PENDING. */
ac__idle_outcome ac__task_transition_to_idle(ac__task *task);
/* RUNNING -> COMPLETE, after a poll returned READY or the future was torn down. */
void ac__task_transition_to_complete(ac__task *task);
/* Marks the task CANCELLED and, if it is idle, claims it (sets RUNNING) so the
 * caller can tear it down: returns true then. Returns false when it is running
 * elsewhere (that thread sees CANCELLED) or already complete. */
bool ac__task_transition_to_shutdown(ac__task *task);
/* A wake through a borrowed reference. */
ac__notify_outcome ac__task_transition_to_notified_by_ref(ac__task *task);
/* A wake that consumes the caller's reference; SUBMIT hands it to the queue. */
ac__notify_outcome ac__task_transition_to_notified_by_val(ac__task *task);
/* An abort request (JoinHandle::abort in Tokio): sets CANCELLED, and NOTIFIED
 * so that an idle task is queued and torn down by its scheduler. */
ac__notify_outcome ac__task_transition_to_notified_and_cancel(ac__task *task);

/* Takes a reference. Aborts the process if the count would overflow. */
void ac__task_ref_inc(ac__task *task);
/* Drops a reference: frees the task when it was the last one, and calls
 * sched->release instead when it would orphan an idle task (see above). */
void ac__task_ref_dec(ac__task *task);
/* Drops a reference that is not the last one, without the orphan check;
 * only for ac__scheduler.release implementations. */
void ac__task_ref_dec_unchecked(ac__task *task);

/*
 * Polls the future of a task the caller has claimed (transition_to_running)
 * once, with the task's waker in the context. A wake by reference of this
 * task from this thread during the poll (a future rescheduling itself, like
 * ac_yield) is not recorded in the state word but reported in *self_woken;
 * the caller must then poll again or record it with
 * ac__task_transition_to_notified_by_ref before transition_to_idle. Every
 * other wake is recorded in the state word as usual.
 */
ac_poll_t ac__task_poll(ac__task *task, bool *self_woken);

/* Wakes the task as a waker would (schedules it if idle), without consuming a
 * reference; the caller must hold one. */
void ac__task_wake_by_ref(ac__task *task);
/* Requests that the task be torn down instead of polled again; harmless on a
 * complete task. The caller must hold a reference. */
void ac__task_abort(ac__task *task);

/* A borrowed waker for the task (holds no reference), for a poll's context. */
ac_waker ac__task_waker(ac__task *task);

/* Snapshot of the state word, for schedulers' checks and tests. */
static inline size_t ac__task_state(ac__task *task)
{
    return atomic_load_explicit(&task->state, memory_order_acquire);
}
/* Reference count in a state snapshot. */
static inline size_t ac__task_refs(size_t state) { return state >> AC__TASK_REF_SHIFT; }

/* ======================================================================== */
/* Program entry (executor.c)                                                */
/* ======================================================================== */

/*
 * What main.c's main() does, separate so it can be tested: allocates a frame
 * for vt, calls init(frame, argc, argv), runs it with ac_block_on, frees the
 * frame and returns the future's int output (0 for a void future). On any
 * failure prints "asyncc: async_main: <reason>" to stderr and returns 1.
 */
int ac__run_main(const ac_future_vt *vt, void (*init)(void *frame, int argc, char **argv),
                 int argc, char **argv);

#endif /* ASYNCC_INTERNAL_H */

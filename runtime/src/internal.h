/*
 * internal.h: declarations shared between the files of runtime/src (and the
 * runtime's own unit tests). Nothing here is ABI: generated code and user
 * programs only see asyncc.h.
 *
 * Sections: tasks and the interface a scheduler gives them (task.c); program
 * entry (executor.c); runtimes: the scheduler and the interface drivers use
 * (sched.c); time: clock (clock.c), wheel and driver (timer.c); blocking work
 * (blocking.c).
 */
#ifndef ASYNCC_INTERNAL_H
#define ASYNCC_INTERNAL_H

#ifndef ASYNCC_RUNTIME_INTERNAL
#define ASYNCC_RUNTIME_INTERNAL 1
#endif
#include "../include/asyncc.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
 *   bit 4  JOIN_INTEREST  a JoinHandle exists (spawned tasks): it will read
 *                     the output, and holds a reference.
 *   bit 5  JOIN_WAKER the join_waker field holds the waker of the task that
 *                     awaits the handle, and belongs to the task side; while
 *                     clear it belongs to the handle side (Tokio's rules).
 *   bits 6..          reference count.
 *
 * References: the owner (the scheduler that created the task) holds one until
 * the task is complete; every queue entry holds one ("the notified
 * reference", which the poll consumes); every waker clone holds one; a
 * JoinHandle holds one. The waker that a poll receives in its context is
 * borrowed and holds none.
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
    AC__TASK_JOIN_INTEREST = 1u << 4,
    AC__TASK_JOIN_WAKER = 1u << 5,
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

/* What kind of task: how it completes and who frees what. */
enum {
    AC__TASK_ROOT = 0,   /* a block_on's future: frame and out belong to the caller */
    AC__TASK_SPAWNED = 1 /* ac__spawn: frame and output slot are part of the task's memory */
};

/* ac__task.slab_class of memory that is not a small slot of a slab (slab.c). */
enum {
    AC__SLAB_LARGE = 254, /* a slab chunk of its own (big or over-aligned task) */
    AC__SLAB_NONE = 255   /* malloc: a root (ac__task_new), or a frame made outside a runtime */
};

/*
 * 48 bytes, so that a small spawned task (the header, a small output slot
 * and a frame of up to 72 bytes) fits two cache lines. The owner and the
 * frame's address are not stored: a spawned task's owner is its slab's
 * runtime (ac__slab_sched) and its frame lies frame_off bytes on, or for a
 * big output slot at the distance its type gives (ac__task_frame); a root
 * keeps both in ac__root_task. The fields from chunk_off on belong to
 * the memory allocator (slab.c) and stay valid while the slot is free; a
 * free slot reuses the words after `state` as links.
 */
struct ac__task {
    _Atomic size_t state;   /* the word described above */
    ac__task *queue_next;   /* run queue link, owned by the queue that holds the task */
    const ac_future_vt *vt; /* the future's type */
    ac_waker join_waker;    /* spawned: the joiner's waker (see JOIN_WAKER); vtable NULL: none */
    uint32_t chunk_off;     /* bytes from the slab chunk holding the task to the task */
    uint8_t kind;           /* AC__TASK_ROOT or AC__TASK_SPAWNED */
    int8_t outcome;         /* 0, AC_ECANCELED or AC_EPANIC; written before COMPLETE is set */
    uint8_t slab_class;     /* size class in the slab, or AC__SLAB_LARGE / AC__SLAB_NONE */
    uint8_t frame_off;      /* spawned: ac__task_frame_at(vt) if below 256, else 0; root: 0 */
};

/* A root task: where its READY output goes (spawned tasks write to their
 * output slot, the JoinHandle). */
typedef struct ac__root_task {
    ac__task task;         /* first */
    ac__scheduler *sched;  /* owner */
    void *frame;           /* the future's frame (the caller's) */
    void *out;             /* the caller's output, NULL for void */
} ac__root_task;

/* Bytes from a spawned task's header to its output slot (the JoinHandle). */
#define AC__TASK_HEADER ((sizeof(ac__task) + 15) & ~(size_t)15)

/* The task of a JoinHandle. */
static inline ac__task *ac__task_of_handle(void *h) { return (ac__task *)((char *)h - AC__TASK_HEADER); }
/* The JoinHandle (output slot) of a spawned task. */
static inline void *ac__task_handle(ac__task *task) { return (char *)task + AC__TASK_HEADER; }
/* A spawned task's alignment: its frame's, and at least the 4-byte distance
 * before the frame's. Then the bytes from the task's header to its frame:
 * after the output slot and that distance (ac__task_of_frame). */
static inline size_t ac__task_frame_align(const ac_future_vt *vt)
{
    return vt->align < _Alignof(uint32_t) ? _Alignof(uint32_t) : vt->align;
}
static inline size_t ac__task_frame_at(const ac_future_vt *vt)
{
    size_t align = ac__task_frame_align(vt);
    return (AC__TASK_HEADER + vt->out_size + sizeof(uint32_t) + align - 1) & ~(align - 1);
}
/* The spawned task whose frame came from ac__task_frame_new: the distance
 * back to it is stored right before the frame. */
static inline ac__task *ac__task_of_frame(void *frame)
{
    return (ac__task *)((char *)frame - ((uint32_t *)frame)[-1]);
}
/* The future's frame: at frame_off, which every poll reads, unless the
 * output slot is too big for a byte to span or the task is a root. */
static inline void *ac__task_frame(ac__task *task)
{
    if (task->frame_off)
        return (char *)task + task->frame_off;
    if (task->kind == AC__TASK_ROOT)
        return ((ac__root_task *)task)->frame;
    return (char *)task + ac__task_frame_at(task->vt);
}
/* Starts loading the task's first two cache lines (its header, then its
 * output slot and, for small futures, its frame) for writing, ahead of a
 * run or a reuse: with many tasks in flight each one is cold otherwise. */
static inline void ac__task_prefetch(const void *task)
{
    __builtin_prefetch(task, 1);
    __builtin_prefetch((const char *)task + 64, 1);
}
/* Where the task's READY output is written: NULL for a void future. */
static inline void *ac__task_out(ac__task *task)
{
    if (task->kind == AC__TASK_ROOT)
        return ((ac__root_task *)task)->out;
    return task->vt->out_size ? ac__task_handle(task) : NULL;
}

/* Outcome of ac__task_transition_to_running. */
typedef enum ac__run_outcome {
    AC__RUN_SUCCESS,   /* caller owns the future and polls it */
    AC__RUN_CANCELLED, /* caller owns the future and must tear it down */
    AC__RUN_FAILED     /* running elsewhere or complete: just drop the notified reference */
} ac__run_outcome;

/* Outcome of ac__task_transition_to_idle. */
typedef enum ac__idle_outcome {
    AC__IDLE_OK,          /* idle now, and the caller's notified reference is dropped */
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
/* RUNNING -> idle, after a poll returned PENDING; on AC__IDLE_OK it also
 * drops the caller's notified reference (one atomic step instead of two). */
ac__idle_outcome ac__task_transition_to_idle(ac__task *task);
/* RUNNING -> COMPLETE, after a poll returned READY or the future was torn
 * down. Returns the word before, whose JOIN_INTEREST and JOIN_WAKER tell the
 * caller whether to wake a joiner (the slot is then the caller's to read). */
size_t ac__task_transition_to_complete(ac__task *task);
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

/* The fast completion of a spawned task: RUNNING -> COMPLETE and drop n
 * references in one step, when a JoinHandle exists (it keeps the task) and
 * no joiner waits (nothing to wake). Returns false, changing nothing,
 * otherwise. */
bool ac__task_transition_to_complete_and_drop(ac__task *task, size_t n);
/* JoinHandle side: sets JOIN_WAKER after storing join_waker, handing the slot
 * to the task side. Returns false, changing nothing, if the task completed. */
bool ac__task_set_join_waker(ac__task *task);
/* JoinHandle side: clears JOIN_WAKER to take the slot back (to replace the
 * waker). Returns false, changing nothing, if the task completed. */
bool ac__task_unset_join_waker(ac__task *task);
/* Task side, after waking the joiner on completion: clears JOIN_WAKER and
 * returns the word before; without JOIN_INTEREST in it the handle is gone
 * and the caller drops the waker. */
size_t ac__task_unset_join_waker_after_complete(ac__task *task);
/* The JoinHandle is dropped: clears JOIN_INTEREST and, if the task has not
 * completed, JOIN_WAKER (the slot returns to the handle side, which drops
 * the waker in it). Returns the word before. */
size_t ac__task_transition_to_join_handle_dropped(ac__task *task);

/* Takes a reference. Aborts the process if the count would overflow. */
void ac__task_ref_inc(ac__task *task);
/* Drops a reference: frees the task when it was the last one, and calls
 * sched->release instead when it would orphan an idle task (see above). */
void ac__task_ref_dec(ac__task *task);
/* Drops a reference that is not the last one, without the orphan check;
 * only for ac__scheduler.release implementations. */
void ac__task_ref_dec_unchecked(ac__task *task);
/* Drops n references of a COMPLETE task (no orphan check is needed): frees
 * it when they were the last. */
void ac__task_ref_dec_complete(ac__task *task, size_t n);
/* Frees a task's memory: a spawned task's slot goes back to its slab, a
 * root (or a frame made outside a runtime) to free(). */
void ac__task_dealloc(ac__task *task);

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
/* ac__task_poll's third outcome: the poll called ac_panic, which abandoned
 * it; the caller drops the frame and never polls the task again. */
#define AC__POLL_PANICKED ((ac_poll_t)2)
/* ac__task_poll with the context's cooperative budget at *budget (shared by
 * the polls of one scheduler turn), and catching ac_panic: returns AC_READY,
 * AC_PENDING or AC__POLL_PANICKED. ac__task_poll is this with a fresh budget
 * of ac__coop_budget_current() units. */
ac_poll_t ac__task_poll_budget(ac__task *task, bool *self_woken, unsigned *budget);
/*
 * ac__task_poll_budget without a jump buffer of its own, for a thread that
 * polls many tasks from one loop (a worker): setting one up per poll cost a
 * tenth of a yield round. The caller has armed `landing` with sigsetjmp in a
 * frame that outlives the poll and that is not itself inside a poll. An
 * ac_panic in the poll jumps there (so this call never returns); the landing
 * code then calls ac__task_poll_abandoned, which returns the panicked task
 * (still RUNNING: the caller drops its frame and completes it) and resets
 * the thread's poll state. Returns AC_READY or AC_PENDING otherwise.
 */
ac_poll_t ac__task_poll_landing(ac__task *task, bool *self_woken, unsigned *budget,
                                sigjmp_buf *landing);
ac__task *ac__task_poll_abandoned(void);

/* Wakes the task as a waker would (schedules it if idle), without consuming a
 * reference; the caller must hold one. */
void ac__task_wake_by_ref(ac__task *task);
/* Requests that the task be torn down instead of polled again; harmless on a
 * complete task. The caller must hold a reference. */
void ac__task_abort(ac__task *task);

/* A borrowed waker for the task (holds no reference), for a poll's context. */
ac_waker ac__task_waker(ac__task *task);

/* The state word of a free slab slot (slab.c): every bit set, which the
 * reference limit of task.c keeps any task's state from reaching. A handle
 * whose task's state reads this was consumed already. */
#define AC__SLOT_FREE (~(size_t)0)

/* Snapshot of the state word, for schedulers' checks and tests. */
static inline size_t ac__task_state(ac__task *task)
{
    return atomic_load_explicit(&task->state, memory_order_acquire);
}
/* Reference count in a state snapshot. */
static inline size_t ac__task_refs(size_t state) { return state >> AC__TASK_REF_SHIFT; }

/* ======================================================================== */
/* Task memory (slab.c)                                                      */
/* ======================================================================== */

/*
 * A runtime's spawned tasks live in its slab: chunks carved into slots by
 * size class, recycled through per-thread heaps (free lists that only their
 * thread touches) and the slab's central lists (under its lock). Walking
 * the chunks finds every task, which is how shutdown finds the tasks it
 * must cancel. See slab.c.
 */
typedef struct ac__slab ac__slab;
typedef struct ac__slab_heap ac__slab_heap;

/* A new, empty slab whose tasks `sched` owns (the runtime's; NULL in tests
 * of the slab alone), or NULL when memory is exhausted. */
ac__slab *ac__slab_new(ac__scheduler *sched);
/* The owner of a spawned task: its slab's scheduler (NULL for memory that
 * is not a slab's). */
ac__scheduler *ac__slab_sched(const ac__task *task);
/* Frees every chunk without a live task and the heaps; the slab itself goes
 * with the last chunk that still holds a task (referenced from outside the
 * runtime), when that task is freed. No heap of the slab may be in use. */
void ac__slab_close(ac__slab *s);
/* Wakes in flight from threads outside the runtime (task.c): a thread that
 * wakes one of the slab's tasks while holding a reference to it enters
 * (which returns the task's slab) and exits when it no longer touches the
 * runtime; ac_runtime_free waits until none is in flight before it frees
 * the runtime. The slab outlives the runtime while a task is referenced,
 * and is not closed while one is in flight. */
ac__slab *ac__slab_outside_enter(const ac__task *task);
void ac__slab_outside_exit(ac__slab *s);
void ac__slab_wait_outside(ac__slab *s);
/* A heap of the slab for the calling thread's exclusive use, until it is
 * released; NULL when memory is exhausted. */
ac__slab_heap *ac__slab_heap_claim(ac__slab *s);
/* Gives a claimed heap back (its free slots go to the slab). NULL: nothing. */
void ac__slab_heap_release(ac__slab_heap *h);
/* The calling thread's heap (NULL: none), and setting it; frees on this
 * thread of tasks of that heap's slab go to it. */
ac__slab_heap *ac__slab_heap_current(void);
void ac__slab_heap_set(ac__slab_heap *h);
/* The slab of the calling thread's heap (NULL: none), for a quick check. */
extern _Thread_local ac__slab *ac__tls_heap_slab;
/* Memory for a spawned task of `size` bytes (header included) aligned to
 * `align`, from the caller's heap h; chunk_off and slab_class are set, the
 * rest is the caller's to fill. NULL when memory is exhausted. */
ac__task *ac__slab_alloc(ac__slab_heap *h, size_t size, size_t align);
/* Frees a task's memory (slab_class is not AC__SLAB_NONE), on any thread. */
void ac__slab_free(ac__task *task);
/* Calls fn for every spawned task of the slab, under the slab's lock: fn
 * must not allocate or free tasks. The runtime's threads must be stopped. */
void ac__slab_each(ac__slab *s, void (*fn)(ac__task *task, void *arg), void *arg);
/* Huge-page regions mapped by all slabs now (for tests). */
size_t ac__slab_regions_mapped(void);

/* The calling thread's heap for spawning on the current runtime (sched.c):
 * claims one if the thread has none for it. NULL outside a runtime or when
 * memory is exhausted. */
ac__slab_heap *ac__runtime_heap(void);

/* ======================================================================== */
/* Program entry (executor.c)                                                */
/* ======================================================================== */

/*
 * What main.c's main() does, separate so it can be tested: builds the default
 * (multi-thread) runtime, allocates a frame for vt, calls init(frame, argc,
 * argv), runs it with ac_runtime_block_on, frees the frame and the runtime
 * (cancelling tasks still running) and returns the future's int output (0
 * for a void future). On any failure prints "asyncc: async_main: <reason>"
 * to stderr and returns 1.
 */
int ac__run_main(const ac_future_vt *vt, void (*init)(void *frame, int argc, char **argv),
                 int argc, char **argv);

/* ======================================================================== */
/* Runtimes (sched.c)                                                        */
/* ======================================================================== */

/*
 * The time driver's hooks. A runtime calls them from one thread at a time
 * (the worker that holds the driver, Tokio-style): a worker about to park
 * with nothing to run takes the driver if no other worker has it, sleeps at
 * most next_deadline_ns() real nanoseconds (-1: until woken), then calls
 * fire_due(), whose wakes queue the timers' tasks on that worker. Busy
 * workers also call fire_due every 61 scheduler ticks when next_deadline_ns
 * says 0, so that timers fire while every worker is busy. A current-thread
 * runtime does the same on the thread inside block_on.
 */
typedef struct ac__driver {
    int64_t (*next_deadline_ns)(void *ctx); /* ns until the earliest deadline; 0: due; -1: none */
    void (*fire_due)(void *ctx);            /* wakes expired timers */
    void *ctx;                              /* passed to both */
} ac__driver;

/* Installs the driver (NULL removes it); rt keeps the pointer, so *d must
 * outlive rt. ac_runtime_new installs ac__time_driver when the program links
 * timer.c. */
void ac__runtime_set_driver(ac_runtime *rt, const ac__driver *d);
/* Makes the thread parked with the driver recompute its timeout (or, when
 * none is parked with it, wakes an idle worker): for a timer registered
 * earlier than the earliest one so far, or work arriving from a thread
 * outside the runtime. Any thread; cheap when nobody sleeps. */
void ac__runtime_unpark_one(ac_runtime *rt);
/* Whether every thread of the runtime is idle: all workers parked and no
 * block_on thread running a poll, so that nothing can happen before a timer
 * fires (a paused clock may then jump to the next deadline). When the last
 * thread goes idle the runtime wakes the thread parked with the driver so
 * that it asks again. */
int ac__runtime_all_idle(ac_runtime *rt);

/* The default worker count (cpus.c): the CPUs in the calling thread's
 * affinity mask (else the online ones), lowered to the process's cgroup
 * CPU quota, rounded up, if it has one. */
long ac__usable_cpus(void);
/* The cgroup CPU quota of this process in whole CPUs (rounded up; the
 * smallest on the way up its cgroup hierarchies, v1 or v2), or 0 if none is
 * found. `prefix` goes before every path it reads ("" for the real ones;
 * tests point it at a made-up tree). */
long ac__cgroup_cpu_limit(const char *prefix);

/* The configuration a runtime was built with (defaults resolved). */
const ac_runtime_config *ac__runtime_config(ac_runtime *rt);
/* Tests only: ring overflow segments rt has queued so far, and how many of
 * them it had to malloc (the others were reused). */
void ac__runtime_seg_counts(ac_runtime *rt, size_t *queued, size_t *allocated);
/* Tests only: when set, called by a wake from outside a runtime after it has
 * queued the task and before it wakes a thread of the runtime. */
extern void (*ac__test_after_outside_queue)(void);
/* Whether the calling thread is one of the threads that run the tasks of
 * the runtime whose scheduler is `sched` (a worker, or the thread driving
 * a current-thread runtime). Compares pointers only: sched may be freed. */
bool ac__runtime_is_own_thread(const ac__scheduler *sched);

/* The calling thread's runtime context: saved and restored around a
 * block_on, which makes the thread a non-worker thread of `rt`. */
typedef struct ac__thread_ctx {
    ac_runtime *rt;      /* ac_runtime_current() */
    void *worker;        /* the worker or current-thread core this thread drives, or NULL */
    ac__slab_heap *heap; /* the thread's task heap (slab.c) */
    void *spawner;       /* the ring its spawns go to (sched.c), or NULL */
} ac__thread_ctx;
/* Sets (rt, no worker) as the thread's context and returns the previous one. */
ac__thread_ctx ac__thread_ctx_enter(ac_runtime *rt);
void ac__thread_ctx_restore(ac__thread_ctx prev);
/* Publishes the spawns this thread has batched (sched.c: a thread outside
 * the workers publishes its spawns in batches); executor.c calls it after
 * every poll. Cheap when there are none. */
void ac__spawn_flush(void);
/* The coop budget per poll of the current runtime, or 128 without one. */
unsigned ac__coop_budget_current(void);
/* A block_on thread of rt (executor.c) starts or stops being idle, for
 * ac__runtime_all_idle. */
void ac__runtime_thread_idle(ac_runtime *rt);
void ac__runtime_thread_busy(ac_runtime *rt);

/*
 * ac_block_on's engine (executor.c), for a multi-thread runtime's block_on:
 * runs the root future on this thread with rt as its runtime context (NULL:
 * keep the thread's runtime, as ac_block_on does) and counts the thread's
 * idleness for rt.
 */
int ac__block_on_root(ac_runtime *rt, const ac_future_vt *vt, void *frame, void *out);

/* ======================================================================== */
/* Locks for hot paths (lock.c)                                              */
/* ======================================================================== */

/*
 * A mutex for short critical sections taken on every task's hot path (a
 * timer wheel's, once per sleep registered). Taking and releasing it
 * uncontended is one compare-and-swap and one exchange, inline; a
 * pthread_mutex_t measured 15-25 ns more per first poll of a sleeping task
 * (in the workers' CPU, medians of 41 runs). A contended taker spins a
 * little, then sleeps on a futex (Drepper's "Futexes Are Tricky", mutex 2):
 * a long hold does not burn the waiter's CPU. Not recursive.
 */
typedef struct ac__lock {
    _Atomic int state; /* 0 free, 1 held, 2 held and a taker may sleep */
} ac__lock;

#define AC__LOCK_INIT {0}

void ac__lock_contended(ac__lock *l);
void ac__lock_wake(ac__lock *l);

static inline void ac__lock_take(ac__lock *l)
{
    int free_ = 0;
    if (!atomic_compare_exchange_strong_explicit(&l->state, &free_, 1, memory_order_acquire,
                                                 memory_order_relaxed))
        ac__lock_contended(l);
}

static inline void ac__lock_give(ac__lock *l)
{
    if (atomic_exchange_explicit(&l->state, 0, memory_order_release) == 2)
        ac__lock_wake(l);
}

/* ======================================================================== */
/* Time: the runtime clock (clock.c)                                         */
/* ======================================================================== */

/* The runtime clock in ns (ac_now_ms() * 1e6 plus the sub-ms part); honours
 * pause. */
uint64_t ac__clock_now_ns(void);
/* A reading of the runtime clock for computing a deadline: never behind the
 * clock, and at most 3 us ahead of it (clock.c: a thread reuses its last
 * reading for 2 us where the time-stamp counter allows); the clock itself
 * while paused. */
uint64_t ac__clock_deadline_ns(void);
/* Whether deadline readings use the counter (for tests). */
bool ac__clock_deadline_is_fast(void);
/* The real monotonic clock (CLOCK_MONOTONIC) in ns, for waits on real time. */
uint64_t ac__clock_real_ns(void);
/* Whether the clock is paused. */
bool ac__clock_paused(void);
/* A runtime built with start_paused is built (pause) or freed (unpause):
 * the clock is paused while any such runtime lives, and runs again after
 * the last one unless it was paused before the first (clock.c). */
void ac__clock_runtime_pause(void);
void ac__clock_runtime_unpause(void);
/* Whether a paused clock may jump to the next timer when the executor is
 * idle: paused, and no blocking call in flight (Tokio's inhibit). */
bool ac__clock_can_auto_advance(void);
/* Auto-advance: moves a paused clock forward to ms if it is behind. */
void ac__clock_advance_to_ms(uint64_t ms);
/* Counts a blocking call in flight (inhibit) or finished (allow). */
void ac__clock_inhibit_auto_advance(void);
void ac__clock_allow_auto_advance(void);
/*
 * Waits on cv (mu held, as pthread_cond_wait) until signalled or until the
 * real monotonic clock reads deadline_ns (UINT64_MAX: no deadline). Returns
 * true when the deadline has passed. Spurious returns are possible.
 */
bool ac__cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, uint64_t deadline_ns);

/* ======================================================================== */
/* Time: the timer wheel and the time driver (timer.c)                       */
/* ======================================================================== */

/*
 * A hierarchical timing wheel at millisecond resolution (Tokio's
 * time/wheel): level L has 64 slots of 64^L ms each, so 6 levels cover 2^36
 * ms (795 days); later deadlines wait in the top level and are looked at
 * once per rotation. A timer goes to the level at which its deadline and
 * the wheel's time first differ, into the slot of its deadline there; when
 * the wheel reaches a slot of level L > 0, the slot's timers move down
 * (cascade), and at level 0 they expire. Insertion, cancellation and
 * expiry are O(1); finding the next expiration is O(levels) with one
 * 64-bit occupancy word per level.
 *
 * Timers are the ac__timer nodes inside timer futures' frames, linked into
 * circular lists: a slot's list, or the expired list where timers wait to be
 * woken. A level-0 slot holds timers of one millisecond, which all expire
 * together: its list is woken where it is (`due`), in SLOT state, so that
 * expiry walks those nodes once. Everything, nodes included, is guarded by
 * mu, except node->state, which is also read without it (atomically) by the
 * future that owns the node: FIRED is stored last, once the wheel no longer
 * touches the node.
 *
 * Cascading without a pause: moving a slot's timers down when the wheel
 * reaches it would walk all of them at that moment, while timers due then
 * wait (with a million sleeps of 0-10 s, those due at 4096 ms fired ~32 ms
 * late). So for levels 1 to AC__WHEEL_STAGED, the slot the wheel reaches
 * next is sorted ahead of time into a stage: lower levels of its own, laid
 * out as the wheel's will be at the slot's start. A timer for that slot
 * goes straight into the stage once the slot's own list is empty; the
 * timers linked before are moved there in batches as the wheel advances,
 * paced to finish in time (timer.c, stage_some). At the slot's start each
 * stage list replaces the wheel's empty list of the same place, which
 * touches no node.
 */
enum {
    AC__TIMER_IDLE = 0,    /* not linked */
    AC__TIMER_SLOT = 1,    /* in levels[level].slots[slot] */
    AC__TIMER_EXPIRED = 2, /* in the expired list, its waker not yet woken */
    AC__TIMER_FIRED = 3    /* unlinked by expiry; its waker was taken to be woken */
};

#define AC__WHEEL_LEVELS 6
#define AC__WHEEL_SLOTS 64
#define AC__WHEEL_STAGED 4 /* levels 1..4 sort their next slot ahead (the top one laps) */

/* Slots of one level: an occupancy word and circular lists of timers. */
typedef struct ac__wheel_level {
    uint64_t occupied;                 /* bit s set: slots[s] is not empty */
    ac__timer *slots[AC__WHEEL_SLOTS]; /* circular lists of timers */
    union {
        uint32_t n[AC__WHEEL_SLOTS];     /* levels > 0: the lists' lengths */
        uint32_t early[AC__WHEEL_SLOTS]; /* level 0: the least `early` of a list's
                                          * timers, so that the slot's time less
                                          * that many us is when all are due */
    };
} ac__wheel_level;

/* The timers of a staged level L's next slot, placed as they will be at
 * that slot's start (in levels 0..L-1). The slot's occupied bit in the
 * wheel stays set while it or its stage holds a timer. */
typedef struct ac__wheel_stage {
    size_t count;                             /* timers in the stage */
    uint64_t paced;                           /* 1 + the wheel's time that `owed` is for */
    size_t owed;                              /* timers still to move into it in that ms */
    ac__wheel_level levels[AC__WHEEL_STAGED]; /* [0, L) used */
} ac__wheel_stage;

typedef struct ac__wheel {
    ac__lock mu;          /* guards the wheel and the linked nodes */
    uint64_t elapsed;     /* everything due at or before this time has expired */
    bool ahead;           /* elapsed is a level-0 slot fired before its ms began
                           * (every timer in it was due): see ac__wheel_advance_ns */
    ac__timer *ahead_list; /* timers for that ms linked meanwhile, woken once
                            * the clock reaches it (their `slot` is 64) */
    size_t count;         /* timers linked (in a slot, a stage, or expired) */
    ac__timer *expired;   /* expired timers, deadline order, to be woken */
    ac__timer **due;      /* a level-0 slot whose timers are all due, being woken
                           * in place (its occupied bit is clear), or NULL */
    uint64_t removals;    /* nodes unlinked by a cancel or popped to be woken,
                           * so far (a walk of the due list that let go of
                           * the lock tells from it whether its place may be
                           * gone) */
    ac__wheel_level levels[AC__WHEEL_LEVELS];
    /* stage[L - 1], for level L: see ac__wheel_stage */
    ac__wheel_stage stage[AC__WHEEL_STAGED];
} ac__wheel;

/* Outcome of ac__wheel_insert. */
typedef enum ac__insert_outcome {
    AC__INSERT_LINKED,      /* linked; will be woken when due */
    AC__INSERT_DUE          /* already due (when <= elapsed): not linked, waker not cloned */
} ac__insert_outcome;

/* Initialises an empty wheel whose time is now (ms). */
void ac__wheel_init(ac__wheel *w, uint64_t now);
/* Destroys an empty wheel (aborts if a timer is still linked). */
void ac__wheel_destroy(ac__wheel *w);
/*
 * Links the unlinked node t to expire at `when`, keeping a clone of waker.
 * `now` is the caller's current time, which an empty wheel catches up with
 * (so a fresh burst of timers lands in low levels).
 */
ac__insert_outcome ac__wheel_insert(ac__wheel *w, ac__timer *t, uint64_t when, uint64_t now,
                                    const ac_waker *waker);
/* Unlinks t if it is linked and releases its waker; returns whether it was.
 * On a fired or idle node it does nothing. Afterwards t is IDLE or FIRED. */
bool ac__wheel_cancel(ac__wheel *w, ac__timer *t);
/*
 * For a re-poll of the future that owns the linked-or-fired node t: returns
 * true if t has fired (nothing left linked). Otherwise makes waker the one
 * woken, replacing a clone of another task's waker, and returns false.
 */
bool ac__wheel_refresh(ac__wheel *w, ac__timer *t, const ac_waker *waker);
/* The time at which the wheel next has work (the start of the next occupied
 * slot; a timer at level > 0 may only cascade then), or UINT64_MAX if no
 * timer is linked. Expired timers not yet woken make it `elapsed`. */
uint64_t ac__wheel_next_expiration(ac__wheel *w);
/* When, in ns, a thread parked for the wheel should wake to advance it:
 * ac__wheel_next_expiration, but with a level-0 slot due at the latest
 * deadline of its timers (see ac__wheel_advance_ns), and 0 while expired
 * timers wait to be woken; or earlier, the time by which an advance should
 * start sorting a slot's timers into its stage, so that it finishes before
 * the slot is due (the real clock's park wakes then; a paused clock jumps
 * straight to the expiration). UINT64_MAX: no timer. */
uint64_t ac__wheel_next_wake_ns(ac__wheel *w);
/*
 * Advances the wheel to `now` (no effect if it is already there): every
 * timer due at or before now is unlinked and its waker woken, on the
 * calling thread, in deadline order (ties: in insertion order). Wakers are
 * woken outside the lock, in batches. Returns the number of timers woken.
 */
size_t ac__wheel_advance(ac__wheel *w, uint64_t now);
/*
 * As ac__wheel_advance to the ms that holds now_ns, and then, if the next
 * slot is a level-0 one (the next ms) whose timers are all due by now_ns
 * (each node's deadline is `when` less `early` us), fires that slot too,
 * before its ms begins. The wheel's time is then that ms (`ahead`): a timer
 * registered meanwhile for that same ms, which may not be due yet, is kept
 * (ahead_list) until an advance reaches the ms, instead of being refused as
 * due.
 */
size_t ac__wheel_advance_ns(ac__wheel *w, uint64_t now_ns);
/* Timers linked now. */
size_t ac__wheel_count(ac__wheel *w);

/* Timers linked now in the process's wheels, which the timer futures use. */
size_t ac__time_count(void);
/*
 * For a thread that is about to park: how many real ns it may sleep before
 * calling ac__time_fire_due (-1: no timer, sleep until woken; 0: call it
 * now). `idle` says that nothing in the executor can run, so that a
 * paused clock may auto-advance: it then jumps to the next expiration and 0
 * is returned. With a paused clock that may not advance, -1.
 */
int64_t ac__time_park_timeout(bool idle);
/* Wakes every timer due at the runtime clock's current time. */
void ac__time_fire_due(void);
/* The time driver for a runtime: ac__runtime_set_driver(rt, &ac__time_driver). */
extern const ac__driver ac__time_driver;

/* ======================================================================== */
/* Blocking work (blocking.c)                                                */
/* ======================================================================== */

/* A runtime's blocking pool (Tokio's blocking spawner), built with its
 * config's max_blocking_threads and blocking_keep_alive_ms. Calls made from
 * the runtime's threads (and from its pool's) go to it. */
typedef struct ac__pool ac__pool;
/* A new pool, no threads yet; NULL if out of memory. */
ac__pool *ac__pool_new(unsigned max_threads, unsigned keep_alive_ms);
/* The runtime lets go of its pool: its threads that are not inside a call's
 * fn exit and are joined; those inside fn finish it, run what is still
 * queued, and exit detached. The last of them frees the pool. NULL is
 * ignored. */
void ac__pool_free(ac__pool *p);
/* rt's pool, or NULL when the program does not link blocking work (sched.c). */
ac__pool *ac__runtime_blocking_pool(ac_runtime *rt);

/* The default pool, for calls made outside every runtime: waits for its idle
 * threads to exit and joins every thread that has exited (the atexit
 * handler, callable from tests). Threads still running a call are left
 * alone. */
void ac__blocking_pool_shutdown(void);

/* Threads of the calling thread's pool idle right now (blocking.c; for tests). */
unsigned ac__blocking_pool_idle(void);
/* Threads of every pool and dedicated ones, created and not yet joined, nor
 * exited detached (for tests). */
unsigned ac__blocking_threads_alive(void);

#endif /* ASYNCC_INTERNAL_H */

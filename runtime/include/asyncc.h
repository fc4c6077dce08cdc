/*
 * asyncc.h: the one public header of asyncc.
 *
 * A `.ac` file includes this header. It has two readings:
 *
 *  - The sync reading (default): `async(T)` is `T` and `await(e)` is `(e)`, so a
 *    `.ac` file compiles as an ordinary sequential C program and editors, clangd
 *    and clang-tidy see plain C. Runtime futures such as ac_yield() are plain
 *    functions that do the sequential equivalent. Under clang, `async(T)` also
 *    carries an `annotate("asyncc.async")` attribute: this is how the translator
 *    (through libclang) recognises async functions declared in other headers.
 *
 *  - The lowered reading (ASYNCC_LOWERED defined, as asyncc's output does): the
 *    Future ABI below, used by generated state machines and by the executor.
 *
 * Sections: error codes; the Future ABI (poll, context, waker, cooperative
 * budget); the executor; runtimes (builder, block_on); tasks (spawn, handles,
 * join, panic); JoinSet; runtime futures; time; blocking work; frame arena;
 * sync reading.
 */
#ifndef ASYNCC_H
#define ASYNCC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================================================== */
/* Error codes                                                               */
/* ======================================================================== */

/* Runtime calls return 0 or one of these negative codes. X(name, value, text). */
#define AC_ERRNO_MAP(X)                                                        \
    X(AC_ENOMEM, -1, "out of memory")                                          \
    X(AC_EINVAL, -2, "invalid argument")                                       \
    X(AC_EDEADLK, -3, "future is pending and nothing can wake it")             \
    X(AC_ECANCELED, -4, "operation was cancelled")                             \
    X(AC_EBUSY, -5, "resource busy")                                           \
    X(AC_EAGAIN, -6, "resource temporarily unavailable")                       \
    X(AC_ETIMEDOUT, -7, "operation timed out")                                 \
    X(AC_ECLOSED, -8, "channel or object closed")                              \
    X(AC_EPANIC, -9, "task panicked")                                          \
    X(AC_ESHUTDOWN, -10, "runtime is shut down")

enum {
#define AC__ERR_ENUM(name, value, text) name = value,
    AC_ERRNO_MAP(AC__ERR_ENUM)
#undef AC__ERR_ENUM
};

/* Returns a static string describing `err` (0 or an AC_E* code); never NULL.
 * (The sync reading, which links no library, has its own inline copy.) */
#if defined(ASYNCC_LOWERED) || defined(ASYNCC_RUNTIME_INTERNAL)
const char *ac_strerror(int err);
#else
static inline const char *ac_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
#define AC__ERR_CASE(name, value, text)                                        \
    case value:                                                                \
        return text;
        AC_ERRNO_MAP(AC__ERR_CASE)
#undef AC__ERR_CASE
    default:
        return "unknown error";
    }
}
#endif

/* Frames of runtime futures. They are visible in both readings: a complete
 * `struct NAME__frame` is how the translator knows it may embed NAME's frame
 * by value instead of allocating it (docs/runtime-abi.md). */
struct ac_yield__frame {
    uint8_t state; /* 0 not yet yielded, 1 yielded (next poll is ready) */
};

/* The frame of an await of a JoinHandle (ac_join__init/__poll/__drop, in the
 * lowered reading): embedded by value in the awaiting frame. */
struct ac_join__frame {
    void *handle;  /* the JoinHandle being awaited; NULL once consumed */
    int *err;      /* receives 0 or the join error; NULL: a failed task panics the awaiter */
    uint8_t state; /* 0 unresumed, 1 returned, 3 waiting for the task */
};

/* The frame of await(ac_joinset_next(set, out, err)) (ac_joinset_next__init/
 * __poll/__drop in the lowered reading; a plain function in the sync
 * reading): embedded by value in the awaiting frame. */
struct ac_joinset_next__frame {
    void *set;     /* the JoinSet (struct ac_joinset *) */
    void *out;     /* receives the task's output; NULL: discarded */
    int *err;      /* receives 0 or the join error; NULL: a failed task panics the awaiter */
    uint8_t state; /* 0 unresumed, 1 returned, 3 waiting for a task to complete */
};

/* ------------------------------------------------------------------------ */
/* Frames of the time and blocking futures (docs/runtime-abi.md, "Time" and  */
/* "Blocking work"). Their fields belong to the runtime.                     */
/* ------------------------------------------------------------------------ */

/* Missed-tick policies of ac_interval_new (Tokio's MissedTickBehavior). A
 * tick is missed when it completes more than 5 ms after its scheduled time. */
enum {
    AC_TICK_BURST = 0, /* keep the schedule: missed ticks complete at once, one per await */
    AC_TICK_DELAY = 1, /* restart the schedule: the next tick is one period after now */
    AC_TICK_SKIP = 2   /* drop missed ticks: the next tick is the next one of the schedule after now */
};

typedef struct ac_interval ac_interval;               /* a periodic timer (ac_interval_new) */
typedef struct ac_blocking_handle ac_blocking_handle; /* a running blocking call */

/* The node by which a pending timer is linked into the runtime's timer wheel.
 * It lives inside the frame of each timer future, so a timer costs no
 * allocation and cancelling it is an unlink. */
typedef struct ac__timer {
    struct ac__timer *next;   /* next in its wheel slot or expired list (circular) */
    struct ac__timer *prev;   /* previous in that list */
    uint64_t when;            /* deadline on the runtime clock, in ms */
    const void *waker_vtable; /* registered waker (an ac_waker) while linked: vtable */
    const void *waker_data;   /* ... and data */
    uint8_t state;            /* idle, in a slot, expired, fired; read atomically */
    uint8_t level;            /* wheel level of its slot, while in a slot */
    uint8_t slot;             /* slot within that level */
    uint8_t shard;            /* which of the process's wheels it is linked in */
    uint16_t lead;            /* ms from a clock reading taken when armed to `when`
                                 (so when - lead has passed); UINT16_MAX: none */
    uint16_t early;           /* us by which the deadline precedes `when`, which is
                                 rounded up to a whole ms (0-999) */
} ac__timer;

struct ac_sleep__frame {
    ac__timer timer; /* deadline and wheel link */
    uint8_t state;   /* AC_STATE_UNRESUMED, _RETURNED, or AC_STATE_FIRST: waiting */
};

struct ac_sleep_until__frame {
    ac__timer timer; /* deadline and wheel link */
    uint8_t state;   /* as in ac_sleep__frame */
};

struct ac_interval_tick__frame {
    ac__timer timer;        /* the tick's scheduled time and wheel link */
    struct ac_interval *iv; /* the interval that this tick advances */
    uint8_t state;          /* as in ac_sleep__frame */
};

struct ac_deadline__frame {
    ac__timer timer; /* deadline and wheel link */
    uint64_t start;  /* runtime clock at init, ms */
    uint8_t state;   /* armed, expired or dropped */
};

struct ac_blocking__frame {
    void *(*fn)(void *);            /* the blocking function */
    void *arg;                      /* its argument */
    struct ac_blocking_handle *job; /* the submitted call, after the first poll */
    uint8_t state;                  /* AC_STATE_UNRESUMED, _RETURNED, or AC_STATE_FIRST: running */
};

struct ac_blocking_join__frame {
    struct ac_blocking_handle *h; /* the awaited call; released when ready or dropped */
    uint8_t state;                /* AC_STATE_UNRESUMED, _RETURNED, or AC_STATE_FIRST: waiting */
};

/* When the tick after one scheduled at `scheduled` and completed at `now` is
 * due, under a missed-tick policy (shared by both readings). On time means
 * at most 5 ms late, as in Tokio, so that ordinary timer latency does not
 * count as a missed tick. */
static inline uint64_t ac__interval_next(uint64_t scheduled, uint64_t now, uint64_t period,
                                         int policy)
{
    if (policy == AC_TICK_BURST || now <= scheduled + 5)
        return scheduled + period;
    if (policy == AC_TICK_DELAY)
        return now + period;
    return now + period - (now - scheduled) % period; /* AC_TICK_SKIP */
}

#if defined(ASYNCC_LOWERED) || defined(ASYNCC_RUNTIME_INTERNAL)

/* ======================================================================== */
/* The Future ABI (docs/runtime-abi.md)                                      */
/* ======================================================================== */

/* What one poll of a future returns. */
typedef enum ac_poll { AC_PENDING = 0, AC_READY = 1 } ac_poll_t;

/* Reserved frame states; suspend points are numbered from AC_STATE_FIRST. */
enum {
    AC_STATE_UNRESUMED = 0, /* created, never polled */
    AC_STATE_RETURNED = 1,  /* completed (or dropped); polling again traps */
    AC_STATE_POISONED = 2,  /* a poll was abandoned midway; polling traps */
    AC_STATE_FIRST = 3      /* first await's suspend state */
};

typedef struct ac_waker ac_waker;

/* How a waker is cloned, woken and released; like Rust's RawWakerVTable. */
typedef struct ac_waker_vtable {
    ac_waker (*clone)(const void *data);  /* a new reference to the same task */
    void (*wake)(const void *data);       /* wake and release this reference */
    void (*wake_by_ref)(const void *data);/* wake, keep this reference */
    void (*drop)(const void *data);       /* release this reference */
} ac_waker_vtable;

/* A handle that makes its task be polled again. Wakers are small values. */
struct ac_waker {
    const ac_waker_vtable *vtable; /* operations; never NULL in a live waker */
    const void *data;              /* task (or other) pointer owned per vtable */
};

/* Passed to every poll. The waker is borrowed for the duration of the poll.
 * A future that makes a context for a child (a combinator with a waker of
 * its own) copies every field and replaces only `waker`. */
typedef struct ac_context {
    const ac_waker *waker; /* wakes the task that is polling */
    unsigned *budget;      /* the task's cooperative budget (ac_coop_consume); NULL: unlimited */
} ac_context;

/*
 * A future type's operations. Every async function NAME exports
 * `const ac_future_vt NAME__vt` and `void NAME__init(void *frame, params...)`.
 *  - poll writes the output through `out` (ignored for void futures) exactly
 *    once, when it returns AC_READY, and leaves the frame in RETURNED state;
 *  - drop releases whatever the frame holds at its current state; dropping a
 *    returned or unresumed frame is harmless. Neither frees the frame memory.
 */
typedef struct ac_future_vt {
    size_t size;                                             /* frame bytes */
    size_t align;                                            /* frame alignment */
    size_t out_size;                                         /* output bytes (0: void) */
    ac_poll_t (*poll)(void *frame, ac_context *cx, void *out); /* one poll */
    void (*drop)(void *frame);                               /* release frame contents */
    const char *name;                                        /* for diagnostics */
} ac_future_vt;

/* Clones a waker; the caller owns the result and must wake or drop it. */
static inline ac_waker ac_waker_clone(const ac_waker *w) { return w->vtable->clone(w->data); }
/* Wakes the task and releases this waker reference. */
static inline void ac_waker_wake(ac_waker w) { w.vtable->wake(w.data); }
/* Wakes the task; the caller keeps its reference. */
static inline void ac_waker_wake_by_ref(const ac_waker *w) { w->vtable->wake_by_ref(w->data); }
/* Releases a waker reference without waking. */
static inline void ac_waker_drop(ac_waker w) { w.vtable->drop(w.data); }

/*
 * Cooperative budget (Tokio's coop). Each time a task is polled it gets a
 * budget of units (ac_runtime_config.coop_budget, 128 by default), shared by
 * everything that poll runs. A runtime future that is about to return READY
 * without having waited (a join of a finished task, a channel with a message
 * ready) first calls ac_coop_consume:
 *
 *     if (!ac_coop_consume(cx)) {
 *         ac_waker_wake_by_ref(cx->waker);
 *         return AC_PENDING;   // state unchanged: the next poll retries
 *     }
 *
 * It returns 1 and uses one unit while budget remains, and 0 once it is
 * exhausted; the future must then wake its own task and return pending, so
 * that a task that always finds its futures ready still goes back to the
 * scheduler and cannot starve the others. A context without a budget
 * (cx->budget NULL, as in `ac_context cx = {&waker}`) never runs out.
 */
static inline int ac_coop_consume(ac_context *cx)
{
    if (!cx->budget)
        return 1;
    if (*cx->budget == 0)
        return 0;
    --*cx->budget;
    return 1;
}

/* Returns a waker that does nothing when woken, cloned or dropped, for polling
 * a future by hand (tests, or a caller that re-polls unconditionally). The
 * waker is static: never NULL, nothing to release. */
const ac_waker *ac_waker_noop(void);

/* Traps: a generated poll function was resumed in a state it cannot resume
 * (returned: "resumed after completion"; poisoned; or out of range). */
_Noreturn void ac__bad_resume(const char *fn, unsigned state);
/* Traps: control reached the end of a non-void async function. */
_Noreturn void ac__no_return(const char *fn);
/* For generated code: ac__keep(ac_f->ac_clN, (T){...}) copies a compound
 * literal that must outlive a suspension into its frame field and is that
 * field (an lvalue of the literal's type). Variadic: the literal's commas. */
#define ac__keep(field, ...)                                                   \
    (*(__typeof__(field) *)__builtin_memcpy((void *)&(field), &(__VA_ARGS__), sizeof(field)))
/* For generated code: ac__hold(ac_f->ac_clN, f(x)) is the same for a call's
 * struct result, a temporary whose array member is used across an await. */
#define ac__hold(field, ...)                                                   \
    (*({                                                                       \
        __typeof__(field) ac__v = (__VA_ARGS__);                               \
        __builtin_memcpy((void *)&(field), &ac__v, sizeof(field));             \
        &(field);                                                              \
    }))

/* ======================================================================== */
/* Frame arena: storage for futures whose frame size is only known at run    */
/* time (awaits across files). Per-thread size-class free lists, so steady   */
/* state awaits do not call malloc.                                          */
/* ======================================================================== */

/* Returns storage of vt->size bytes aligned to vt->align (0 means 1), or NULL
 * when memory is exhausted or vt->align is not a power of two. The caller owns
 * it and returns it with ac_frame_free, with the same vt, on any thread. */
void *ac_frame_alloc(const ac_future_vt *vt);
/* ac_frame_alloc for generated code (awaits across files, ac_box): a poll
 * function has no way to report allocation failure, so, like Rust's
 * allocation of a boxed future, this ends the process with a message naming
 * the future when memory is exhausted. Never returns NULL. */
void *ac__frame_new(const ac_future_vt *vt);
/* Returns storage from ac_frame_alloc(vt) to the arena (the calling thread's
 * cache, or the system). NULL is ignored. Does not drop the frame. */
void ac_frame_free(const ac_future_vt *vt, void *frame);

/* ======================================================================== */
/* Executor                                                                  */
/* ======================================================================== */

/*
 * Runs the future in `frame` (already initialised, of type vt) to completion
 * on the calling thread and writes its output to `out` (may be NULL for void).
 * The caller keeps the frame memory; its contents are dropped (vt->drop)
 * before returning, whatever the result. While the future is pending and a
 * clone of its waker exists, the thread sleeps until a wake (from any thread).
 * Returns 0 once the output is written, or:
 *   AC_EDEADLK  the future is pending, not woken, and no clone of its waker
 *               is left, so it can never finish;
 *   AC_EINVAL   vt, vt->poll, vt->drop or frame is NULL (nothing dropped), or
 *               out is NULL for a future with output (frame dropped);
 *   AC_ENOMEM   the task could not be allocated (frame dropped);
 *   AC_ECANCELED the task was aborted by the runtime (frame dropped).
 * May be called from inside a poll (it then blocks that poll's thread).
 */
int ac_block_on(const ac_future_vt *vt, void *frame, void *out);

/* ======================================================================== */
/* Runtimes (sched.c; docs/runtime-abi.md, "Runtimes")                       */
/* ======================================================================== */

/* A runtime: the scheduler that runs spawned tasks (worker threads, run
 * queues), entered from plain C with ac_runtime_block_on. Opaque. */
typedef struct ac_runtime ac_runtime;

/* Runtime flavours. */
enum {
    AC_RUNTIME_MULTI_THREAD = 0,  /* work-stealing worker threads (default) */
    AC_RUNTIME_CURRENT_THREAD = 1 /* every task runs on the thread inside block_on */
};

/* How to build a runtime. Start from ac_runtime_config_init's defaults. */
typedef struct ac_runtime_config {
    int flavor;                      /* AC_RUNTIME_MULTI_THREAD (0, default) or AC_RUNTIME_CURRENT_THREAD */
    unsigned workers;                /* worker threads (multi-thread); 0: one per usable CPU */
    const char *thread_name;         /* name of worker threads; NULL: "asyncc-worker" */
    size_t thread_stack_size;        /* worker stack bytes; 0: the system default */
    unsigned max_blocking_threads;   /* its blocking pool's size limit (512) */
    unsigned blocking_keep_alive_ms; /* idle blocking threads exit after this (10000) */
    unsigned coop_budget;            /* units per task poll, see ac_coop_consume (128) */
    int start_paused;                /* non-zero: the clock is paused while it lives (timer tests) */
} ac_runtime_config;

/* Fills *c with the defaults shown above. */
void ac_runtime_config_init(ac_runtime_config *c);

/*
 * Builds a runtime from *c (NULL: the defaults) and stores it in *out; a
 * multi-thread runtime's workers are running (and idle) when this returns.
 * The caller owns the runtime and frees it with ac_runtime_free. Returns 0,
 * or AC_EINVAL (out NULL, unknown flavor, coop_budget 0, more than 1024
 * workers, a stack size the system refuses), AC_ENOMEM, or AC_EAGAIN (a
 * worker thread could not be started); *out is untouched on failure.
 */
int ac_runtime_new(const ac_runtime_config *c, ac_runtime **out);

/*
 * Runs the future in `frame` (initialised, of type vt) to completion on the
 * calling thread and writes its output to `out` (NULL for a void future),
 * with rt as the current runtime, so that the future and everything it
 * spawns run on rt: on a multi-thread runtime the workers run spawned tasks
 * while this thread drives the given future; on a current-thread runtime
 * this thread runs them all, and only while some block_on is running. The
 * caller keeps the frame memory; its contents are dropped before returning.
 * Returns what ac_block_on returns (0, AC_EDEADLK, AC_EINVAL, AC_ENOMEM,
 * AC_ECANCELED, AC_EPANIC), and AC_EBUSY (frame dropped) when rt is a
 * current-thread runtime that is already inside a block_on, or when the
 * calling thread runs a runtime's tasks: a task (or a current-thread root
 * future) may not block its thread on a runtime, which could then wait for
 * work only that thread can do (Tokio panics there). Await the future
 * instead, or enter the runtime from ac_spawn_blocking's thread.
 */
int ac_runtime_block_on(ac_runtime *rt, const ac_future_vt *vt, void *frame, void *out);

/*
 * Shuts the runtime down and frees it: worker threads stop (a poll in
 * progress finishes first) and are joined, then every task that has not
 * completed is cancelled and its drop function runs (on the calling thread;
 * a spawn from such a drop is cancelled at once), the handles that were
 * never joined or detached are released, and all the runtime's memory is
 * freed. Must not be called from inside the runtime (a task or block_on of
 * rt), nor while another thread may still use a JoinHandle of rt's tasks.
 * Other threads may go on waking rt's tasks: a wake in progress is waited
 * for, a later one does nothing, and a waker kept past the free keeps its
 * task's memory until dropped. NULL is ignored.
 */
void ac_runtime_free(ac_runtime *rt);

/* The runtime of the calling thread: the one whose task or block_on it is
 * running, or NULL. Not owned by the caller. */
ac_runtime *ac_runtime_current(void);

/* ======================================================================== */
/* Tasks: spawn, JoinHandles, join, panic (sched.c, task.c)                  */
/* ======================================================================== */

/*
 * A spawned task is one allocation: a header, an output slot of vt->out_size
 * bytes (16-aligned) and the future's frame. Generated code spawns
 * `NAME(args)` as
 *
 *     void *fr = ac__task_frame_new(&NAME__vt);
 *     NAME__init(fr, args);
 *     T *h = ac__spawn(fr);
 *
 * ac__task_frame_new returns the frame (never NULL: out of memory ends the
 * process with a message naming the future, like ac__frame_new); the memory
 * belongs to the task, and ac__spawn must follow.
 */
void *ac__task_frame_new(const ac_future_vt *vt);

/*
 * Schedules the task whose frame came from ac__task_frame_new (and was
 * initialised) on the current runtime, and returns its JoinHandle: a pointer
 * to the task's output slot, typed T * by the translator for a future of
 * output T. The slot is written when the task completes; read it only through
 * a join. Ends the process with "ac_spawn called outside a runtime" when the
 * thread has no current runtime. On a runtime that is shutting down the task
 * is cancelled at once (its join reports AC_ECANCELED).
 *
 * The handle holds the task's memory: every handle must be consumed exactly
 * once, by awaiting it (ac_join) or by ac_handle_detach. C has no destructor
 * to drop a handle for you: a handle that is never joined or detached keeps
 * the task's memory until the runtime is freed. Handles are invalid after
 * their runtime is freed. A handle used after it was consumed (joined
 * twice, say) is a use after free; the handle functions and ac_join
 * report it ("asyncc: ac_join of a JoinHandle that was already joined or
 * detached") and abort while no new task has taken the memory, which is
 * not guaranteed.
 */
void *ac__spawn(void *frame);

/* Requests cancellation (Tokio's JoinHandle::abort): a task that has not
 * completed is torn down instead of being polled again, at its next
 * suspension; its drop function runs and its join reports AC_ECANCELED. A task
 * whose poll returns ready first completes normally. Does not consume the
 * handle. Returns 0, or AC_EINVAL for a NULL handle. */
int ac_handle_abort(void *h);

/* Returns 1 when the task has completed (with output, cancelled or panicked),
 * 0 otherwise (also for NULL). Does not consume the handle. */
int ac_handle_is_finished(void *h);

/* Drops the handle without waiting (Tokio drops a JoinHandle): the task keeps
 * running, its output is discarded, its memory is freed when it completes.
 * Consumes the handle. NULL is ignored. */
void ac_handle_detach(void *h);

/*
 * await(h) on a JoinHandle, as an embeddable future (struct ac_join__frame,
 * visible in both readings). ac_join__init takes over the handle (joining
 * consumes it) and `err` (may be NULL). The poll is ready when the task has
 * completed: it copies the task's output (vt->out_size bytes) to `out` (NULL
 * discards it) and sets *err to 0; a task that was aborted or panicked gives
 * *err = AC_ECANCELED or AC_EPANIC and a zero-filled *out instead, or, when
 * err is NULL, makes the awaiting task panic (like Rust's unwrap). A ready
 * join uses one unit of the cooperative budget. Dropping an unfinished join
 * detaches the handle. ac_join__vt wraps the same functions for type-erased
 * use (out_size 0: its `out` must hold the awaited task's output).
 */
static inline void ac_join__init(struct ac_join__frame *f, void *h, int *err)
{
    f->handle = h;
    f->err = err;
    f->state = AC_STATE_UNRESUMED;
}
ac_poll_t ac_join__poll(struct ac_join__frame *f, ac_context *cx, void *out);
void ac_join__drop(struct ac_join__frame *f);
extern const ac_future_vt ac_join__vt;

/*
 * Panics the current task (Rust's panic!): prints "asyncc: task panicked:
 * <message>" (printf-style) to stderr and abandons the poll in progress with
 * a longjmp: the task is never polled again, its drop function runs, and its
 * join reports AC_EPANIC (ac_runtime_block_on and ac_block_on return
 * AC_EPANIC for their own future). The process and the other tasks go on. C
 * has no unwinding: locks the poll held stay held, and memory it allocated
 * without recording it in the frame leaks. Outside any task's poll it prints
 * "asyncc: panicked outside a task: <message>" and aborts.
 */
_Noreturn void ac_panic(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ======================================================================== */
/* JoinSet (joinset.c; docs/runtime-abi.md, "JoinSet")                       */
/* ======================================================================== */

/*
 * A JoinSet (tokio::task::JoinSet) owns a collection of spawned tasks and
 * hands their outputs back in completion order. Declared `ac_joinset(T) set
 * = ac_joinset_new();`: ac_joinset(T) is `T *`, so the translator can check
 * that what ac_joinset_spawn(set, f(x)) spawns yields T. The object behind
 * the pointer is an opaque struct ac_joinset.
 *
 * The set's own calls (spawn, next, len, abort_all, free) are made by one
 * task or thread at a time, its owner (Rust's &mut JoinSet); its tasks
 * complete on any thread. A set must be freed before its runtime, and must
 * outlive every ac_joinset_next future on it.
 */
struct ac_joinset;

/* Returns a new empty set, owned by the caller, who frees it with
 * ac_joinset_free. Never NULL: out of memory ends the process. */
void *ac_joinset_new(void);

/*
 * For generated code: ac_joinset_spawn(set, NAME(args)) is
 *
 *     void *fr = ac__task_frame_new(&NAME__vt);
 *     NAME__init(fr, args);
 *     ac__joinset_spawn(set, fr);
 *
 * which spawns the task on the current runtime (as ac__spawn, whose rules
 * apply) and adds it to the set, which owns its JoinHandle. Out of memory
 * ends the process.
 */
void ac__joinset_spawn(void *set, void *frame);

/* The number of tasks in the set: spawned into it and not yet returned by
 * ac_joinset_next (finished or not). 0 for NULL. */
size_t ac_joinset_len(void *set);

/* Aborts every task in the set (ac_handle_abort on each). They stay in the
 * set: ac_joinset_next returns each of them with AC_ECANCELED, except a task
 * that completed first, which returns its output as usual (Tokio's
 * abort_all). NULL is ignored. */
void ac_joinset_abort_all(void *set);

/* Drops the set (Tokio drops a JoinSet): aborts the tasks still in it and
 * gives up their handles, so each is torn down (its drop function runs, on
 * a worker) at its next suspension and its output is discarded; frees the
 * set. Memory still shared with running tasks is freed when they finish. A
 * pending ac_joinset_next future on the set must be dropped first. NULL is
 * ignored. */
void ac_joinset_free(void *set);

/*
 * await(ac_joinset_next(set, out, err)) yields 1 when a task of the set has
 * completed, having removed it from the set: its output (vt->out_size bytes)
 * is copied to `out` (NULL discards it; NULL for void tasks) and *err (err
 * may be NULL) is set to 0, or for an aborted or panicked task to
 * AC_ECANCELED or AC_EPANIC with *out zero-filled; with err NULL such a task
 * makes the awaiting task panic instead, as ac_join does. It yields 0, at
 * once, when the set is empty. Tasks are returned in the order they
 * completed. While no task has completed the future is pending, and the
 * completion of one wakes it. A ready result spends one unit of the
 * cooperative budget. Dropping a pending next removes nothing from the set.
 * ac_joinset_next__vt wraps the same functions for type-erased use.
 */
static inline void ac_joinset_next__init(struct ac_joinset_next__frame *f, void *set, void *out,
                                         int *err)
{
    f->set = set;
    f->out = out;
    f->err = err;
    f->state = AC_STATE_UNRESUMED;
}
ac_poll_t ac_joinset_next__poll(struct ac_joinset_next__frame *f, ac_context *cx, int *out);
void ac_joinset_next__drop(struct ac_joinset_next__frame *f);
extern const ac_future_vt ac_joinset_next__vt;

/* ======================================================================== */
/* Runtime futures                                                           */
/* ======================================================================== */

/* ac_yield(): pending once, waking itself; then ready (tokio::task::yield_now).
 * Its frame (struct ac_yield__frame, above) is public so that awaiting frames
 * embed it by value. */
static inline void ac_yield__init(struct ac_yield__frame *f) { f->state = 0; }
static inline ac_poll_t ac_yield__poll(struct ac_yield__frame *f, ac_context *cx, void *out)
{
    (void)out;
    if (f->state == 0) {
        f->state = 1;
        ac_waker_wake_by_ref(cx->waker);
        return AC_PENDING;
    }
    return AC_READY;
}
static inline void ac_yield__drop(struct ac_yield__frame *f) { (void)f; }
extern const ac_future_vt ac_yield__vt;

/* ======================================================================== */
/* Time (clock.c, timer.c; docs/runtime-abi.md, "Time")                      */
/* ======================================================================== */

/*
 * The runtime clock: monotonic milliseconds since the first use of the clock
 * in this process. Every deadline below is a value of this clock. It can be
 * paused (Tokio's time::pause / start_paused): then it only moves by
 * ac_time_advance, or, when the executor has nothing to run and no blocking
 * call is in flight, by jumping to the next timer's deadline (auto-advance).
 * The clock is process-wide; these functions may be called from any thread.
 */
uint64_t ac_now_ms(void);
/* Freezes the clock at its current value. Pausing a paused clock does nothing. */
void ac_time_pause(void);
/* Lets a paused clock run again, from the value it was paused at. */
void ac_time_resume(void);
/* Moves the clock forward by ms (paused or not) and wakes, on the calling
 * thread, every timer that is due at the new time. */
void ac_time_advance(uint64_t ms);

/* await(ac_sleep(ms)): completes ms milliseconds after the future was
 * created (never earlier; 0 completes at the first poll). A pending sleep
 * holds one timer; dropping it unregisters the timer. */
void ac_sleep__init(struct ac_sleep__frame *f, uint64_t ms);
ac_poll_t ac_sleep__poll(struct ac_sleep__frame *f, ac_context *cx, void *out);
void ac_sleep__drop(struct ac_sleep__frame *f);
extern const ac_future_vt ac_sleep__vt;

/* await(ac_sleep_until(deadline_ms)): completes once ac_now_ms() >= deadline_ms. */
void ac_sleep_until__init(struct ac_sleep_until__frame *f, uint64_t deadline_ms);
ac_poll_t ac_sleep_until__poll(struct ac_sleep_until__frame *f, ac_context *cx, void *out);
void ac_sleep_until__drop(struct ac_sleep_until__frame *f);
extern const ac_future_vt ac_sleep_until__vt;

/*
 * A periodic timer (tokio::time::interval). Returns a new interval whose
 * first tick is due now and then every period_ms, with a missed-tick policy
 * AC_TICK_*; the caller owns it and frees it with ac_interval_free. Returns
 * NULL when period_ms is 0, the policy is unknown, or memory is exhausted.
 * One task at a time awaits its ticks.
 */
ac_interval *ac_interval_new(uint64_t period_ms, int missed_tick_policy);
/* Frees an interval (NULL is ignored). No tick of it may be pending. */
void ac_interval_free(ac_interval *iv);
/* await(ac_interval_tick(iv)): completes at the next tick and yields its
 * scheduled time (ms). Dropping a pending tick leaves the interval as it was. */
void ac_interval_tick__init(struct ac_interval_tick__frame *f, ac_interval *iv);
ac_poll_t ac_interval_tick__poll(struct ac_interval_tick__frame *f, ac_context *cx, uint64_t *out);
void ac_interval_tick__drop(struct ac_interval_tick__frame *f);
extern const ac_future_vt ac_interval_tick__vt;

/*
 * The runtime half of await(ac_timeout(ms, f(x), &out)): a deadline that
 * generated code races against the inner future (docs/runtime-abi.md shows
 * the lowering). init starts the deadline ms from now; expired returns 1 once
 * it has passed and otherwise 0, having registered (or refreshed) the waker
 * of cx to be woken then; elapsed_ms is the time since init; drop unregisters
 * the timer (needed on every exit, also when the inner future won).
 */
void ac_deadline__init(struct ac_deadline__frame *f, uint64_t ms);
int ac_deadline__expired(struct ac_deadline__frame *f, ac_context *cx);
uint64_t ac_deadline__elapsed_ms(const struct ac_deadline__frame *f);
void ac_deadline__drop(struct ac_deadline__frame *f);

/* ======================================================================== */
/* Blocking work (blocking.c; docs/runtime-abi.md, "Blocking work")          */
/* ======================================================================== */

/*
 * await(ac_blocking(fn, arg)) yields fn(arg), run on a thread of the blocking
 * pool so that the awaiting task's worker stays free (tokio::task::
 * spawn_blocking). The pool is the current runtime's (each runtime has its
 * own, sized by its config), or, from a thread outside every runtime, the
 * process's default pool. fn is submitted at the first poll; the task is woken from
 * the pool thread when it returns. Dropping the future while fn runs
 * detaches the call: fn still finishes, and its result is discarded (so a
 * result that owns memory leaks). If the call cannot be submitted (no memory
 * or no thread), fn runs on the polling thread instead.
 */
void ac_blocking__init(struct ac_blocking__frame *f, void *(*fn)(void *), void *arg);
ac_poll_t ac_blocking__poll(struct ac_blocking__frame *f, ac_context *cx, void **out);
void ac_blocking__drop(struct ac_blocking__frame *f);
extern const ac_future_vt ac_blocking__vt;

/*
 * Starts fn(arg) on the blocking pool now and returns its handle, which the
 * caller awaits once with ac_blocking_join (or gives up with
 * ac_blocking_detach). Returns NULL, without calling fn, when memory is
 * exhausted. If the pool has no thread and none can be created, fn runs on
 * the calling thread before this returns.
 */
ac_blocking_handle *ac_spawn_blocking(void *(*fn)(void *), void *arg);
/*
 * Like ac_spawn_blocking, but fn runs on a new thread of its own, outside the
 * pool: for work that blocks for a long time or forever (a loop reading a
 * device), which would otherwise hold a pool thread and keep a paused clock
 * from auto-advancing. The thread ends when fn returns. Returns NULL, without
 * calling fn, when memory is exhausted or the thread cannot be created.
 */
ac_blocking_handle *ac_spawn_thread(void *(*fn)(void *), void *arg);
/* await(ac_blocking_join(h)) yields the result of the call behind h and
 * releases h. Dropping the future before then detaches the call. A NULL h
 * yields NULL at once. */
void ac_blocking_join__init(struct ac_blocking_join__frame *f, ac_blocking_handle *h);
ac_poll_t ac_blocking_join__poll(struct ac_blocking_join__frame *f, ac_context *cx, void **out);
void ac_blocking_join__drop(struct ac_blocking_join__frame *f);
extern const ac_future_vt ac_blocking_join__vt;
/* Gives up a handle that will not be joined: the call finishes on its own and
 * its result is discarded. NULL is ignored. */
void ac_blocking_detach(ac_blocking_handle *h);

/*
 * Sets the calling thread's pool's maximum number of threads (default 512;
 * calls beyond it wait in a queue) and how long an idle pool thread lives
 * before it exits (default 10000 ms). Takes effect for the threads' next
 * wait. The pool is the one ac_blocking would use from this thread: the
 * current runtime's (built from its config's max_blocking_threads and
 * blocking_keep_alive_ms), or outside every runtime the default pool.
 * Returns 0, or AC_EINVAL when max_threads is 0.
 */
int ac_blocking_pool_configure(unsigned max_threads, unsigned keep_alive_ms);
/* The number of threads of the calling thread's pool (as above) alive now,
 * busy or idle (not ac_spawn_thread's). */
unsigned ac_blocking_pool_threads(void);

#else /* !ASYNCC_LOWERED: the sync reading */

/* ======================================================================== */
/* Sync reading                                                              */
/* ======================================================================== */

#if defined(__clang__)
#define async(T) __attribute__((annotate("asyncc.async"))) T
#else
#define async(T) T
#endif
#define await(e) (e)
/* ac_blocks(T) f(params); declares f, returning T, as blocking: asyncc
 * warns when an async function calls it (as it does for sleep or read),
 * suggesting the blocking pool. Written like async(T) so every C parser,
 * tree-sitter included, reads it as a type. */
#if defined(__clang__)
#define ac_blocks(T) __attribute__((annotate("asyncc.blocking"))) T
#else
#define ac_blocks(T) T
#endif
/* await(ac_box(f(x))): f's frame lives in the frame arena instead of inside
 * the awaiting frame, which is what lets async functions recurse (Rust's
 * Box::pin). Read sequentially, it is just the call. */
#define ac_box(e) (e)

/* Tasks, read sequentially (GNU C: statement expressions, typeof,
 * __builtin_choose_expr). ac_spawn(f(x)) runs the future to completion at
 * once and keeps its result in a heap box, which the handle points to;
 * ac_join returns the result (nothing to wait for) and frees the box. The
 * translator gives the same expressions their concurrent meaning. */
#include <stdlib.h>
#define ac_handle(T) T *
#define AC__IS_VOID(e) __builtin_types_compatible_p(__typeof__(e), void)
#define AC__VALUE(e) __builtin_choose_expr(AC__IS_VOID(e), ((e), (char)0), (e))
#define ac_spawn(e)                                                            \
    ({                                                                         \
        __typeof__(AC__VALUE(e)) *ac__h = malloc(sizeof *ac__h);               \
        if (!ac__h)                                                            \
            abort();                                                           \
        __typeof__(AC__VALUE(e)) ac__v = AC__VALUE(e); /* no assignment: a */  \
        __builtin_memcpy(ac__h, &ac__v, sizeof ac__v); /* const member */      \
        (__typeof__(__builtin_choose_expr(AC__IS_VOID(e), (void *)0, ac__h)))ac__h; \
    })
static inline void ac__sync_join(void *box, int *err)
{
    if (err)
        *err = 0;
    free(box);
}
#define AC__PTR_IS_VOID(h) __builtin_types_compatible_p(__typeof__(h), void *)
#define AC__RESULT_T(h)                                                        \
    __typeof__(*(__typeof__(__builtin_choose_expr(AC__PTR_IS_VOID(h), (char *)0, (h))))0)
#define ac_join(h, errp)                                                       \
    __builtin_choose_expr(AC__PTR_IS_VOID(h), ac__sync_join((void *)(h), (errp)), ({ \
        AC__RESULT_T(h) *ac__jp = (AC__RESULT_T(h) *)(h);                      \
        AC__RESULT_T(h) ac__jv = *ac__jp;                                      \
        ac__sync_join(ac__jp, (errp));                                         \
        ac__jv;                                                                \
    }))
/* A panic read sequentially has no task to end: it ends the program. */
#include <stdarg.h>
#include <stdio.h>
__attribute__((format(printf, 1, 2))) static inline _Noreturn void ac_panic(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("asyncc: panicked: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

/* A sequentially run task has finished before anyone can abort it. */
static inline int ac_handle_abort(void *h) { (void)h; return 0; }
static inline int ac_handle_is_finished(void *h) { (void)h; return 1; }
static inline void ac_handle_detach(void *h) { free(h); }

/* JoinSet, read sequentially. ac_joinset_spawn(set, f(x)) runs the future
 * to completion at once (as ac_spawn does) and appends a box holding its
 * result to the set's FIFO queue, so tasks "complete" in spawn order;
 * ac_joinset_next takes the oldest box, copies its result to out (NULL
 * discards it) and frees it. Nothing is cancelled or panics: *err is always
 * 0, and ac_joinset_abort_all does nothing, since every task has finished
 * (an abort after completion keeps the output, as in Tokio). */
#include <string.h>
#define ac_joinset(T) T *
struct ac__sync_joinset_box {
    struct ac__sync_joinset_box *next; /* the next younger result */
    size_t size;                       /* bytes of value; 0 for a void task */
    unsigned char value[];             /* the result */
};
struct ac_joinset {
    struct ac__sync_joinset_box *head; /* the oldest result, returned next */
    struct ac__sync_joinset_box *tail; /* the youngest */
    size_t len;                        /* results queued */
};
static inline void *ac_joinset_new(void)
{
    struct ac_joinset *s = (struct ac_joinset *)calloc(1, sizeof *s);
    if (!s)
        abort();
    return s;
}
static inline void ac__sync_joinset_push(void *set, const void *value, size_t size)
{
    struct ac_joinset *s = (struct ac_joinset *)set;
    struct ac__sync_joinset_box *b =
        (struct ac__sync_joinset_box *)malloc(sizeof *b + size);
    if (!b)
        abort();
    b->next = NULL;
    b->size = size;
    if (size)
        memcpy(b->value, value, size);
    if (s->tail)
        s->tail->next = b;
    else
        s->head = b;
    s->tail = b;
    s->len++;
}
/* The pointer initialisation makes a future whose output is not the set's T
 * a warning (an error with -Werror), as for ac_handle(T); ac_joinset(void)
 * takes any future and keeps nothing of a void one. */
#define ac_joinset_spawn(set, e)                                               \
    ({                                                                         \
        __typeof__(AC__VALUE(e)) ac__jsv = AC__VALUE(e);                       \
        __typeof__(set) ac__jst = &ac__jsv;                                    \
        (void)ac__jst;                                                         \
        ac__sync_joinset_push((set), &ac__jsv, AC__IS_VOID(e) ? 0 : sizeof ac__jsv); \
    })
static inline async(int) ac_joinset_next(void *set, void *out, int *err)
{
    struct ac_joinset *s = (struct ac_joinset *)set;
    struct ac__sync_joinset_box *b = s ? s->head : NULL;
    if (!b)
        return 0;
    s->head = b->next;
    if (!s->head)
        s->tail = NULL;
    s->len--;
    if (out && b->size)
        memcpy(out, b->value, b->size);
    if (err)
        *err = 0;
    free(b);
    return 1;
}
static inline size_t ac_joinset_len(void *set)
{
    return set ? ((struct ac_joinset *)set)->len : 0;
}
static inline void ac_joinset_abort_all(void *set) { (void)set; }
static inline void ac_joinset_free(void *set)
{
    struct ac_joinset *s = (struct ac_joinset *)set;
    if (!s)
        return;
    while (s->head) {
        struct ac__sync_joinset_box *b = s->head;
        s->head = b->next;
        free(b);
    }
    free(s);
}

/* await(ac_timeout(ms, f(x), &out)), read sequentially: nothing runs
 * concurrently, so the future always finishes first; the value is 0. */
#define ac_timeout(ms, e, p) ((void)(ms), AC__STORE(p, e), 0)

/* Joins, read sequentially: await(ac_all(&a, f(x), &b, g(y))) runs the
 * futures one after another, storing each result through its pointer (NULL
 * for a void future); ac_try_all stops at the first negative int result and
 * yields it (0 if none). Up to 8 pairs in this reading. */
#define AC__STORE(p, e)                                                        \
    __builtin_choose_expr(AC__IS_VOID(e), (void)(e), ({                        \
        /* initialised, then copied: a struct with a const member */         \
        __typeof__(AC__VALUE(e)) ac__v = AC__VALUE(e);                         \
        __builtin_memcpy((p), &ac__v, sizeof ac__v);                           \
        (void)0;                                                               \
    }))
#define AC__NARGS(...) AC__NARGS_(__VA_ARGS__, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1)
#define AC__NARGS_(_1, _2, _3, _4, _5, _6, _7, _8, _9, _10, _11, _12, _13, _14, _15, _16, N, ...) N
#define AC__CAT(a, b) AC__CAT_(a, b)
#define AC__CAT_(a, b) a##b
#define AC__ALL_2(p, e) AC__STORE(p, e)
#define AC__ALL_4(p, e, ...) AC__STORE(p, e), AC__ALL_2(__VA_ARGS__)
#define AC__ALL_6(p, e, ...) AC__STORE(p, e), AC__ALL_4(__VA_ARGS__)
#define AC__ALL_8(p, e, ...) AC__STORE(p, e), AC__ALL_6(__VA_ARGS__)
#define AC__ALL_10(p, e, ...) AC__STORE(p, e), AC__ALL_8(__VA_ARGS__)
#define AC__ALL_12(p, e, ...) AC__STORE(p, e), AC__ALL_10(__VA_ARGS__)
#define AC__ALL_14(p, e, ...) AC__STORE(p, e), AC__ALL_12(__VA_ARGS__)
#define AC__ALL_16(p, e, ...) AC__STORE(p, e), AC__ALL_14(__VA_ARGS__)
#define ac_all(...) (AC__CAT(AC__ALL_, AC__NARGS(__VA_ARGS__))(__VA_ARGS__), (void)0)
#define AC__TRY_2(p, e)                                                        \
    if (!ac__r) {                                                              \
        AC__STORE(p, e);                                                       \
        if (*(int *)(p) < 0)                                                   \
            ac__r = *(int *)(p);                                               \
    }
#define AC__TRY_4(p, e, ...) AC__TRY_2(p, e) AC__TRY_2(__VA_ARGS__)
#define AC__TRY_6(p, e, ...) AC__TRY_2(p, e) AC__TRY_4(__VA_ARGS__)
#define AC__TRY_8(p, e, ...) AC__TRY_2(p, e) AC__TRY_6(__VA_ARGS__)
#define AC__TRY_10(p, e, ...) AC__TRY_2(p, e) AC__TRY_8(__VA_ARGS__)
#define AC__TRY_12(p, e, ...) AC__TRY_2(p, e) AC__TRY_10(__VA_ARGS__)
#define AC__TRY_14(p, e, ...) AC__TRY_2(p, e) AC__TRY_12(__VA_ARGS__)
#define AC__TRY_16(p, e, ...) AC__TRY_2(p, e) AC__TRY_14(__VA_ARGS__)
#define ac_try_all(...)                                                        \
    ({                                                                         \
        int ac__r = 0;                                                         \
        AC__CAT(AC__TRY_, AC__NARGS(__VA_ARGS__))(__VA_ARGS__) ac__r;          \
    })

/* Runtime futures, read sequentially. */
/* async(void) marks it, for libclang, as an awaitable runtime future. */
static inline async(void) ac_yield(void) {}

/* Time, read sequentially. Each translation unit has its own emulation of
 * the runtime clock: ms since its first use, paused and advanced like the
 * real one. ac_sleep really sleeps, except on a paused clock, which it
 * advances instead: a sequential program is idle while it sleeps, so this is
 * the runtime's auto-advance, and the output matches asyncc's build. */
#include <stdlib.h>
#include <time.h>
#if !defined(CLOCK_MONOTONIC)
#include <threads.h> /* strict ISO C, without POSIX: thrd_sleep */
#endif

struct ac__sync_clock {
    int started;    /* origin is set */
    int paused;     /* ac_time_pause called and not resumed */
    uint64_t origin; /* real ns at the first use */
    int64_t offset; /* clock = real - origin + offset, while running (ns) */
    uint64_t frozen; /* the clock while paused (ns) */
};

static inline struct ac__sync_clock *ac__sync_clock(void)
{
    static struct ac__sync_clock c;
    return &c;
}

static inline uint64_t ac__sync_real_ns(void)
{
    struct timespec ts;
#if defined(CLOCK_MONOTONIC)
    clock_gettime(CLOCK_MONOTONIC, &ts);
#else
    timespec_get(&ts, TIME_UTC);
#endif
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t ac__sync_now_ns(void)
{
    struct ac__sync_clock *c = ac__sync_clock();
    uint64_t real = ac__sync_real_ns();
    if (!c->started) {
        c->started = 1;
        c->origin = real;
    }
    if (c->paused)
        return c->frozen;
    return real - c->origin + (uint64_t)c->offset;
}

/* Sleeps (or, paused, advances the clock) until the clock reads deadline_ns. */
static inline void ac__sync_sleep_until_ns(uint64_t deadline_ns)
{
    struct ac__sync_clock *c = ac__sync_clock();
    for (;;) {
        uint64_t now = ac__sync_now_ns();
        if (now >= deadline_ns)
            return;
        if (c->paused) {
            c->frozen = deadline_ns;
            return;
        }
        uint64_t ns = deadline_ns - now;
        struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
#if defined(CLOCK_MONOTONIC)
        nanosleep(&ts, NULL); /* an interrupted sleep goes round again */
#else
        thrd_sleep(&ts, NULL);
#endif
    }
}

static inline uint64_t ac_now_ms(void) { return ac__sync_now_ns() / 1000000u; }
static inline void ac_time_pause(void)
{
    struct ac__sync_clock *c = ac__sync_clock();
    if (!c->paused) {
        /* On a whole ms, rounded up, as the runtime's clock does. */
        c->frozen = (ac__sync_now_ns() + 999999u) / 1000000u * 1000000u;
        c->paused = 1;
    }
}
static inline void ac_time_resume(void)
{
    struct ac__sync_clock *c = ac__sync_clock();
    if (c->paused) {
        c->paused = 0;
        c->offset = 0;
        c->offset = (int64_t)(c->frozen - ac__sync_now_ns());
    }
}
static inline void ac_time_advance(uint64_t ms)
{
    struct ac__sync_clock *c = ac__sync_clock();
    ac__sync_now_ns(); /* sets the origin */
    if (c->paused)
        c->frozen += ms * 1000000u;
    else
        c->offset += (int64_t)(ms * 1000000u);
}
static inline async(void) ac_sleep(uint64_t ms)
{
    ac__sync_sleep_until_ns(ac__sync_now_ns() + ms * 1000000u);
}
static inline async(void) ac_sleep_until(uint64_t deadline_ms)
{
    ac__sync_sleep_until_ns(deadline_ms * 1000000u);
}

struct ac_interval {
    uint64_t next;   /* the next tick's scheduled time (ms) */
    uint64_t period; /* ms between ticks */
    int policy;      /* AC_TICK_* */
};
static inline ac_interval *ac_interval_new(uint64_t period_ms, int missed_tick_policy)
{
    if (period_ms == 0 || missed_tick_policy < AC_TICK_BURST || missed_tick_policy > AC_TICK_SKIP)
        return NULL;
    ac_interval *iv = (ac_interval *)malloc(sizeof *iv);
    if (!iv)
        return NULL;
    iv->next = ac_now_ms();
    iv->period = period_ms;
    iv->policy = missed_tick_policy;
    return iv;
}
static inline void ac_interval_free(ac_interval *iv) { free(iv); }
static inline async(uint64_t) ac_interval_tick(ac_interval *iv)
{
    uint64_t when = iv->next;
    ac__sync_sleep_until_ns(when * 1000000u);
    iv->next = ac__interval_next(when, ac_now_ms(), iv->period, iv->policy);
    return when;
}

/* Blocking work, read sequentially: the call runs where it is made (at the
 * await, or for ac_spawn_blocking and ac_spawn_thread at the spawn). */
struct ac_blocking_handle {
    void *result; /* what the call returned */
};
static inline async(void *) ac_blocking(void *(*fn)(void *), void *arg) { return fn(arg); }
static inline ac_blocking_handle *ac_spawn_blocking(void *(*fn)(void *), void *arg)
{
    ac_blocking_handle *h = (ac_blocking_handle *)malloc(sizeof *h);
    if (h)
        h->result = fn(arg);
    return h;
}
static inline ac_blocking_handle *ac_spawn_thread(void *(*fn)(void *), void *arg)
{
    return ac_spawn_blocking(fn, arg);
}
static inline async(void *) ac_blocking_join(ac_blocking_handle *h)
{
    void *result = h ? h->result : NULL;
    free(h);
    return result;
}
static inline void ac_blocking_detach(ac_blocking_handle *h) { free(h); }
static inline int ac_blocking_pool_configure(unsigned max_threads, unsigned keep_alive_ms)
{
    (void)keep_alive_ms;
    return max_threads ? 0 : AC_EINVAL;
}
static inline unsigned ac_blocking_pool_threads(void) { return 0; }

#ifndef ASYNCC_NO_MAIN
/* The sync build's entry point: run async_main sequentially. A program with
 * its own main() overrides this weak definition. */
extern int async_main(int argc, char **argv) __attribute__((weak));
__attribute__((weak)) int main(int argc, char **argv)
{
    return async_main ? async_main(argc, argv) : 0;
}
#endif

#endif /* ASYNCC_LOWERED */

/* Lowered reading: a use of async()/await() that asyncc did not translate (for
 * example in a header's declaration) declares or calls nothing async. */
#if defined(ASYNCC_LOWERED)
#define async(T) T
#define ac_blocks(T) T
/* A JoinHandle of a task whose future yields T: it points at the task's
 * output slot, so the handle's type carries T. */
#define ac_handle(T) T *
/* A JoinSet of tasks whose futures yield T (struct ac_joinset behind it). */
#define ac_joinset(T) T *
/* An await() left in the output is one the translator never saw: in text
 * that an #include brings into an async function, or in a macro from a
 * header. It cannot suspend anything, so it stops the compile, saying so
 * (without this it was an implicit declaration and a link error). */
#define await(e)                                                               \
    (sizeof(struct {                                                           \
         _Static_assert(0, "await() in code that asyncc did not translate (an " \
                           "#include in an async function, or a macro from a " \
                           "header): write the await in the .ac file");        \
         int ac_x;                                                             \
     }),                                                                       \
     (e))
#endif

#ifdef __cplusplus
}
#endif

#endif /* ASYNCC_H */

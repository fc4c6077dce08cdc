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
 * Sections: error codes; the Future ABI (poll, context, waker); the executor;
 * runtime futures; frame arena; sync reading.
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

/* Returns a static string describing `err` (0 or an AC_E* code); never NULL. */
const char *ac_strerror(int err);

/* Frames of runtime futures. They are visible in both readings: a complete
 * `struct NAME__frame` is how the translator knows it may embed NAME's frame
 * by value instead of allocating it (docs/runtime-abi.md). */
struct ac_yield__frame {
    uint8_t state; /* 0 not yet yielded, 1 yielded (next poll is ready) */
};

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

/* Passed to every poll. The waker is borrowed for the duration of the poll. */
typedef struct ac_context {
    const ac_waker *waker; /* wakes the task that is polling */
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

/* Returns a waker that does nothing when woken, cloned or dropped, for polling
 * a future by hand (tests, or a caller that re-polls unconditionally). The
 * waker is static: never NULL, nothing to release. */
const ac_waker *ac_waker_noop(void);

/* Traps: a generated poll function was resumed in a state it cannot resume
 * (returned: "resumed after completion"; poisoned; or out of range). */
_Noreturn void ac__bad_resume(const char *fn, unsigned state);
/* Traps: control reached the end of a non-void async function. */
_Noreturn void ac__no_return(const char *fn);

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
        *ac__h = AC__VALUE(e);                                                 \
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
/* A sequentially run task has finished before anyone can abort it. */
static inline int ac_handle_abort(void *h) { (void)h; return 0; }
static inline int ac_handle_is_finished(void *h) { (void)h; return 1; }
static inline void ac_handle_detach(void *h) { free(h); }

/* Joins, read sequentially: await(ac_all(&a, f(x), &b, g(y))) runs the
 * futures one after another, storing each result through its pointer (NULL
 * for a void future); ac_try_all stops at the first negative int result and
 * yields it (0 if none). Up to 8 pairs in this reading. */
#define AC__STORE(p, e)                                                        \
    __builtin_choose_expr(AC__IS_VOID(e), (void)(e),                           \
                          (void)(*(__typeof__(AC__VALUE(e)) *)(p) = AC__VALUE(e)))
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
#endif

#ifdef __cplusplus
}
#endif

#endif /* ASYNCC_H */

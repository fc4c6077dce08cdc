/*
 * blocking.c: the blocking pool (tokio::task::spawn_blocking) and dedicated
 * threads for long blocking work.
 *
 * A call (ac_blocking_handle) is a heap record: fn, arg, and, once fn has
 * returned, its result. The pool runs queued calls on threads it creates
 * on demand, up to max_threads (default 512); beyond that calls wait in the
 * FIFO queue. A thread that finds the queue empty waits up to keep_alive_ms
 * (default 10 s) for more work and then exits, so an idle program holds no
 * pool threads. Handing a call to an idle thread is Tokio's protocol: the
 * submitter moves one thread from `idle` to `notified` and signals; a woken
 * thread that finds `notified` non-zero takes that role, so a call never
 * waits for a thread that is already counted on to take it, and no more
 * threads are created than calls need.
 *
 * The awaiting side (ac_blocking, ac_blocking_join) keeps a clone of its
 * waker in the record; the pool thread that finishes the call stores the
 * result, marks it done (the last write, after which the joiner may free the
 * record) and wakes the clone. A joiner that goes away first (drop,
 * ac_blocking_detach) marks the record detached, and the pool thread frees
 * it. One mutex guards the pool and every record's waker and flags; `done`
 * is also read without it.
 *
 * Pool calls inhibit the paused clock's auto-advance while in flight
 * (clock.c), as in Tokio, so a test with a paused clock does not jump time
 * while blocking work that it awaits is still running. Dedicated threads
 * (ac_spawn_thread) do not: they are for work that may never end.
 *
 * Threads are joinable, and an exited thread is joined by the next spawn or
 * by ac__blocking_pool_shutdown, which runs at exit: it makes every thread
 * that is not inside a call's fn exit (idle ones, and ones between calls or
 * just past one) and joins them, so a program that has finished its
 * blocking work exits clean under valgrind. Threads inside fn are not waited
 * for, since fn may never return (in_fn counts them).
 */
#include "internal.h"

#include <pthread.h>
#include <stdlib.h>

struct ac_blocking_handle {
    struct ac_blocking_handle *next; /* queue link */
    void *(*fn)(void *);             /* the call */
    void *arg;                       /* its argument */
    void *result;                    /* what fn returned, once done */
    ac_waker waker;                  /* the joining task's waker, if has_waker */
    bool has_waker;                  /* a waker clone is held */
    bool detached;                   /* no one will join: the pool frees it when done */
    bool inhibits;                   /* counted among the clock's auto-advance inhibitors */
    uint8_t done;                    /* fn returned; read atomically without the lock */
};

typedef struct ac_blocking_handle job;

/* A thread, kept to be joined once it has exited. */
typedef struct worker {
    pthread_t thread;    /* to join */
    struct worker *next; /* in the exited list */
    job *only;           /* a dedicated thread's one call; NULL for pool threads */
} worker;

static struct {
    pthread_mutex_t mu;     /* guards all of this and the records' flags and wakers */
    pthread_cond_t work;    /* idle pool threads wait here for calls */
    pthread_cond_t gone;    /* broadcast when a thread exits */
    job *head, *tail;       /* queued calls, FIFO */
    unsigned threads;       /* pool threads alive, busy or idle */
    unsigned idle;          /* of those, waiting for work and not notified */
    unsigned notified;      /* signalled for a queued call, not yet awake */
    unsigned dedicated;     /* ac_spawn_thread threads alive */
    unsigned in_fn;         /* threads (of both kinds) inside a call's fn */
    unsigned max_threads;   /* pool size limit */
    unsigned keep_alive_ms; /* how long an idle thread waits before exiting */
    worker *exited;         /* exited threads not yet joined */
    bool shutdown;          /* ac__blocking_pool_shutdown is running */
} pool = {
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .work = PTHREAD_COND_INITIALIZER,
    .gone = PTHREAD_COND_INITIALIZER,
    .max_threads = 512,
    .keep_alive_ms = 10000,
};

static pthread_once_t atexit_once = PTHREAD_ONCE_INIT;

static void shutdown_at_exit(void) { ac__blocking_pool_shutdown(); }
static void register_atexit(void) { atexit(shutdown_at_exit); }

/* Joins and frees a list of exited threads; call without the lock. */
static void join_all(worker *w)
{
    while (w) {
        worker *next = w->next;
        pthread_join(w->thread, NULL);
        free(w);
        w = next;
    }
}

/* Takes the exited threads (lock held) for join_all. */
static worker *take_exited(void)
{
    worker *w = pool.exited;
    pool.exited = NULL;
    return w;
}

/* Records that the calling thread is exiting (lock held). */
static void exiting(worker *self)
{
    self->next = pool.exited;
    pool.exited = self;
    pthread_cond_broadcast(&pool.gone);
}

static job *pop(void)
{
    job *j = pool.head;
    if (j)
        pool.head = j->next;
    return j;
}

static void push(job *j)
{
    j->next = NULL;
    if (pool.head)
        pool.tail->next = j;
    else
        pool.head = j;
    pool.tail = j;
}

/* Stores fn's result and wakes the joiner, or frees a detached record.
 * `own_thread`: called by the pool or dedicated thread that ran fn, which
 * now leaves fn (see in_fn). */
static void complete(job *j, void *result, bool own_thread)
{
    /* Before the wake: a task that is woken, runs, and parks again must not
     * find the clock still inhibited, as nothing would wake it afterwards. */
    if (j->inhibits)
        ac__clock_allow_auto_advance();
    pthread_mutex_lock(&pool.mu);
    j->result = result;
    bool wake = j->has_waker, detached = j->detached;
    ac_waker w = j->waker;
    j->has_waker = false;
    /* The last write: a joiner that sees it may free the record. */
    __atomic_store_n(&j->done, 1, __ATOMIC_RELEASE);
    if (own_thread) {
        pool.in_fn--;
        pthread_cond_broadcast(&pool.gone); /* shutdown now waits for this thread */
    }
    pthread_mutex_unlock(&pool.mu);
    if (wake)
        ac_waker_wake(w);
    if (detached)
        free(j);
}

/* Runs a call on the calling thread, outside the pool (no thread could be
 * created). */
static void run_here(job *j) { complete(j, j->fn(j->arg), false); }

static void *pool_main(void *arg)
{
    worker *self = arg;
    pthread_mutex_lock(&pool.mu);
    for (;;) {
        job *j = pop();
        if (j) {
            pool.in_fn++;
            if (pool.shutdown)
                pthread_cond_broadcast(&pool.gone); /* one fewer to wait for */
            pthread_mutex_unlock(&pool.mu);
            complete(j, j->fn(j->arg), true);
            pthread_mutex_lock(&pool.mu);
            continue;
        }
        if (pool.shutdown || pool.threads > pool.max_threads)
            break;
        /* Idle: wait for a call, at most keep_alive_ms (re-read on every
         * wake-up, since ac_blocking_pool_configure may change it). */
        pool.idle++;
        uint64_t idle_since = ac__clock_real_ns();
        bool leave = false;
        for (;;) {
            uint64_t deadline = idle_since + (uint64_t)pool.keep_alive_ms * 1000000u;
            ac__cond_wait_until(&pool.work, &pool.mu, deadline);
            if (pool.notified) {
                pool.notified--; /* the submitter already took us off idle */
                break;
            }
            if (pool.shutdown || pool.threads > pool.max_threads ||
                ac__clock_real_ns() >= idle_since + (uint64_t)pool.keep_alive_ms * 1000000u) {
                pool.idle--;
                leave = true;
                break;
            }
        }
        if (leave)
            break;
    }
    pool.threads--;
    exiting(self);
    pthread_mutex_unlock(&pool.mu);
    return NULL;
}

static void *dedicated_main(void *arg)
{
    worker *self = arg;
    complete(self->only, self->only->fn(self->only->arg), true);
    pthread_mutex_lock(&pool.mu);
    pool.dedicated--;
    exiting(self);
    pthread_mutex_unlock(&pool.mu);
    return NULL;
}

static job *new_job(void *(*fn)(void *), void *arg)
{
    job *j = calloc(1, sizeof *j);
    if (j) {
        j->fn = fn;
        j->arg = arg;
    }
    return j;
}

/* Queues j for the pool, creating a thread if none is free and the limit
 * allows. With no thread at all (none could be created), the calling thread
 * runs the queue itself. */
static void submit(job *j)
{
    j->inhibits = true;
    ac__clock_inhibit_auto_advance();
    bool spawn = false;
    pthread_mutex_lock(&pool.mu);
    push(j);
    if (pool.idle > 0) {
        pool.idle--;
        pool.notified++;
        pthread_cond_signal(&pool.work);
    } else if (pool.threads < pool.max_threads) {
        pool.threads++;
        spawn = true;
    }
    worker *reap = take_exited();
    pthread_mutex_unlock(&pool.mu);
    join_all(reap);
    if (!spawn)
        return;

    pthread_once(&atexit_once, register_atexit);
    worker *w = calloc(1, sizeof *w);
    if (w && pthread_create(&w->thread, NULL, pool_main, w) == 0)
        return;
    free(w);
    pthread_mutex_lock(&pool.mu);
    pool.threads--;
    while (pool.threads == 0 && (j = pop())) {
        pthread_mutex_unlock(&pool.mu);
        run_here(j);
        pthread_mutex_lock(&pool.mu);
    }
    pthread_mutex_unlock(&pool.mu);
}

/* Polls a call for its joiner: true with *out set (the record freed) once
 * it is done; otherwise registers waker to be woken then. */
static bool join_poll(job *j, const ac_waker *waker, void **out)
{
    bool done = __atomic_load_n(&j->done, __ATOMIC_ACQUIRE);
    bool drop_old = false;
    ac_waker old;
    if (!done) {
        pthread_mutex_lock(&pool.mu);
        done = __atomic_load_n(&j->done, __ATOMIC_RELAXED);
        if (!done) {
            if (!j->has_waker) {
                j->waker = ac_waker_clone(waker);
                j->has_waker = true;
            } else if (j->waker.data != waker->data || j->waker.vtable != waker->vtable) {
                old = j->waker;
                drop_old = true;
                j->waker = ac_waker_clone(waker);
            }
        }
        pthread_mutex_unlock(&pool.mu);
    }
    if (drop_old)
        ac_waker_drop(old);
    if (!done)
        return false;
    if (out)
        *out = j->result;
    free(j);
    return true;
}

/* The joiner gives the record up: free it if done, else let the pool. */
static void release(job *j)
{
    bool drop_old = false;
    ac_waker old;
    pthread_mutex_lock(&pool.mu);
    bool done = __atomic_load_n(&j->done, __ATOMIC_RELAXED);
    if (!done) {
        j->detached = true;
        if (j->has_waker) {
            old = j->waker;
            drop_old = true;
            j->has_waker = false;
        }
    }
    pthread_mutex_unlock(&pool.mu);
    if (drop_old)
        ac_waker_drop(old);
    if (done)
        free(j);
}

/* ======================================================================== */
/* Public API                                                                */
/* ======================================================================== */

ac_blocking_handle *ac_spawn_blocking(void *(*fn)(void *), void *arg)
{
    job *j = new_job(fn, arg);
    if (j)
        submit(j);
    return j;
}

ac_blocking_handle *ac_spawn_thread(void *(*fn)(void *), void *arg)
{
    job *j = new_job(fn, arg);
    worker *w = calloc(1, sizeof *w);
    if (!j || !w) {
        free(j);
        free(w);
        return NULL;
    }
    w->only = j;
    pthread_once(&atexit_once, register_atexit);
    pthread_mutex_lock(&pool.mu);
    pool.dedicated++;
    pool.in_fn++; /* from the start: the thread exists to run fn */
    worker *reap = take_exited();
    pthread_mutex_unlock(&pool.mu);
    join_all(reap);
    if (pthread_create(&w->thread, NULL, dedicated_main, w) != 0) {
        pthread_mutex_lock(&pool.mu);
        pool.dedicated--;
        pool.in_fn--;
        pthread_mutex_unlock(&pool.mu);
        free(w);
        free(j);
        return NULL;
    }
    return j;
}

void ac_blocking_detach(ac_blocking_handle *h)
{
    if (h)
        release(h);
}

int ac_blocking_pool_configure(unsigned max_threads, unsigned keep_alive_ms)
{
    if (max_threads == 0)
        return AC_EINVAL;
    pthread_mutex_lock(&pool.mu);
    pool.max_threads = max_threads;
    pool.keep_alive_ms = keep_alive_ms;
    pthread_cond_broadcast(&pool.work); /* idle threads re-read both */
    pthread_mutex_unlock(&pool.mu);
    return 0;
}

/* Pool threads waiting for work (tests use it: a thread that has just
 * published a result is not idle yet, so a call made right after a join
 * may legitimately start a new thread). */
unsigned ac__blocking_pool_idle(void)
{
    pthread_mutex_lock(&pool.mu);
    unsigned n = pool.idle;
    pthread_mutex_unlock(&pool.mu);
    return n;
}

unsigned ac_blocking_pool_threads(void)
{
    pthread_mutex_lock(&pool.mu);
    unsigned n = pool.threads;
    pthread_mutex_unlock(&pool.mu);
    return n;
}

void ac__blocking_pool_shutdown(void)
{
    pthread_mutex_lock(&pool.mu);
    pool.shutdown = true;
    pthread_cond_broadcast(&pool.work);
    /* Every thread not inside a call's fn exits promptly (idle ones are
     * woken; one between calls sees `shutdown`, or enters fn and is no
     * longer waited for). */
    while (pool.threads + pool.dedicated > pool.in_fn)
        pthread_cond_wait(&pool.gone, &pool.mu);
    worker *reap = take_exited();
    pool.shutdown = false; /* usable again, e.g. by a later test */
    pthread_mutex_unlock(&pool.mu);
    join_all(reap);
}

/* ---- ac_blocking_join ---------------------------------------------------- */

void ac_blocking_join__init(struct ac_blocking_join__frame *f, ac_blocking_handle *h)
{
    f->h = h;
    f->state = AC_STATE_UNRESUMED;
}

ac_poll_t ac_blocking_join__poll(struct ac_blocking_join__frame *f, ac_context *cx, void **out)
{
    if (f->state != AC_STATE_UNRESUMED && f->state != AC_STATE_FIRST)
        ac__bad_resume("ac_blocking_join", f->state);
    /* Ready without waiting (a call that finished before the first poll):
     * spend budget, as every runtime future that is ready at once does. */
    if (f->state == AC_STATE_UNRESUMED && (!f->h || __atomic_load_n(&f->h->done, __ATOMIC_ACQUIRE)) &&
        !ac_coop_consume(cx)) {
        ac_waker_wake_by_ref(cx->waker);
        return AC_PENDING;
    }
    if (!f->h) {
        if (out)
            *out = NULL;
    } else if (join_poll(f->h, cx->waker, out)) {
        f->h = NULL;
    } else {
        f->state = AC_STATE_FIRST;
        return AC_PENDING;
    }
    f->state = AC_STATE_RETURNED;
    return AC_READY;
}

/* The future owns the handle from init on, so dropping it unpolled
 * detaches the call too (as dropping a JoinHandle does). */
void ac_blocking_join__drop(struct ac_blocking_join__frame *f)
{
    if (f->state != AC_STATE_RETURNED && f->h)
        release(f->h);
    f->h = NULL;
    f->state = AC_STATE_RETURNED;
}

static ac_poll_t join_vpoll(void *f, ac_context *cx, void *out)
{
    return ac_blocking_join__poll(f, cx, out);
}
static void join_vdrop(void *f) { ac_blocking_join__drop(f); }

const ac_future_vt ac_blocking_join__vt = {
    sizeof(struct ac_blocking_join__frame), _Alignof(struct ac_blocking_join__frame),
    sizeof(void *), join_vpoll, join_vdrop, "ac_blocking_join",
};

/* ---- ac_blocking --------------------------------------------------------- */

void ac_blocking__init(struct ac_blocking__frame *f, void *(*fn)(void *), void *arg)
{
    f->fn = fn;
    f->arg = arg;
    f->job = NULL;
    f->state = AC_STATE_UNRESUMED;
}

ac_poll_t ac_blocking__poll(struct ac_blocking__frame *f, ac_context *cx, void **out)
{
    switch (f->state) {
    case AC_STATE_UNRESUMED:
        f->job = ac_spawn_blocking(f->fn, f->arg);
        if (!f->job) {
            /* No memory for the record: a poll cannot fail, so block here. */
            void *r = f->fn(f->arg);
            if (out)
                *out = r;
            break;
        }
        f->state = AC_STATE_FIRST;
        /* fall through */
    case AC_STATE_FIRST:
        if (!join_poll(f->job, cx->waker, out))
            return AC_PENDING;
        f->job = NULL;
        break;
    default:
        ac__bad_resume("ac_blocking", f->state);
    }
    f->state = AC_STATE_RETURNED;
    return AC_READY;
}

void ac_blocking__drop(struct ac_blocking__frame *f)
{
    if (f->state == AC_STATE_FIRST && f->job)
        release(f->job);
    f->job = NULL;
    f->state = AC_STATE_RETURNED;
}

static ac_poll_t blocking_vpoll(void *f, ac_context *cx, void *out)
{
    return ac_blocking__poll(f, cx, out);
}
static void blocking_vdrop(void *f) { ac_blocking__drop(f); }

const ac_future_vt ac_blocking__vt = {
    sizeof(struct ac_blocking__frame), _Alignof(struct ac_blocking__frame), sizeof(void *),
    blocking_vpoll, blocking_vdrop, "ac_blocking",
};

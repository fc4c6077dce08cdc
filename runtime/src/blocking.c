/*
 * blocking.c: the blocking pool (tokio::task::spawn_blocking) and dedicated
 * threads for long blocking work.
 *
 * Every runtime has a pool of its own, sized by its config
 * (max_blocking_threads, blocking_keep_alive_ms), as each Tokio runtime has
 * its blocking spawner. A call goes to the pool of the runtime the calling
 * thread is in (a worker, or inside a block_on), else to the pool of the
 * pool thread making it, else to the process's default pool, which
 * ac_blocking_pool_configure sets up for code outside every runtime.
 *
 * A call (ac_blocking_handle) is a heap record: fn, arg, and, once fn has
 * returned, its result. A pool runs queued calls on threads it creates
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
 * it. A pool's mutex guards it and its records' wakers and flags; `done`
 * is also read without it.
 *
 * Pool calls inhibit the paused clock's auto-advance while in flight
 * (clock.c), as in Tokio, so a test with a paused clock does not jump time
 * while blocking work that it awaits is still running. Dedicated threads
 * (ac_spawn_thread) do not: they are for work that may never end.
 *
 * Threads are joinable, and an exited thread is joined by the next spawn, or
 * when its pool shuts: ac_runtime_free for a runtime's pool, the atexit
 * handler (ac__blocking_pool_shutdown) for the default one. Shutting makes
 * every thread that is not inside a call's fn exit (idle ones, and ones
 * between calls or just past one) and joins them, so a program that has
 * finished its blocking work exits clean under valgrind. Threads inside fn
 * are not waited for, since fn may never return (in_fn counts them; Tokio's
 * Runtime drop would wait). A runtime's pool outlives its runtime while
 * such a thread, or a record not yet joined, holds a reference to it: the
 * thread runs what is still queued, exits detached, and the last reference
 * frees the pool.
 */
#include "internal.h"

#include <pthread.h>
#include <stdlib.h>

/* A pool: Tokio's blocking spawner. Each runtime has its own, built with
 * its config; calls made outside every runtime go to the process's default
 * pool, which also hosts ac_spawn_thread's threads. */
typedef struct ac__pool pool;

struct ac_blocking_handle {
    struct ac_blocking_handle *next; /* queue link */
    pool *pool;                      /* whose lock guards the fields below; a reference */
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
    pool *pool;          /* the pool it belongs to (a reference) */
    job *only;           /* a dedicated thread's one call; NULL for pool threads */
} worker;

struct ac__pool {
    pthread_mutex_t mu;     /* guards all of this and the records' flags and wakers */
    pthread_cond_t work;    /* idle pool threads wait here for calls */
    pthread_cond_t gone;    /* broadcast when a thread exits or leaves fn */
    job *head, *tail;       /* queued calls, FIFO */
    unsigned threads;       /* pool threads alive, busy or idle */
    unsigned idle;          /* of those, waiting for work and not notified */
    unsigned notified;      /* signalled for a queued call, not yet awake */
    unsigned dedicated;     /* ac_spawn_thread threads alive (default pool only) */
    unsigned in_fn;         /* threads (of both kinds) inside a call's fn */
    unsigned max_threads;   /* pool size limit */
    unsigned keep_alive_ms; /* how long an idle thread waits before exiting */
    worker *exited;         /* exited threads not yet joined */
    bool shutdown;          /* threads exit once the queue is empty (see shut) */
    bool orphaned;          /* its runtime is gone: exiting threads detach themselves */
    /* The runtime's one, each record's and each thread's: the last one to
     * let go frees a runtime's pool. Not counted for the default pool. */
    atomic_uint refs;
};

static pool default_pool = {
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .work = PTHREAD_COND_INITIALIZER,
    .gone = PTHREAD_COND_INITIALIZER,
    .max_threads = 512,
    .keep_alive_ms = 10000,
};

/* The pool a pool thread belongs to: its own calls to ac_spawn_blocking go
 * there too, as a Tokio blocking thread's do to its runtime's. */
static _Thread_local pool *own_pool;

static pthread_once_t atexit_once = PTHREAD_ONCE_INIT;

/* Threads of every pool, created and not yet joined or detached (for tests). */
static atomic_uint live_threads;

static void shutdown_at_exit(void) { ac__blocking_pool_shutdown(); }
static void register_atexit(void) { atexit(shutdown_at_exit); }

/* References count only for runtimes' pools: the default one is static. */
static void pool_ref(pool *p)
{
    if (p != &default_pool)
        atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
}

/* Lets go of a reference; the last one frees a runtime's pool. Call
 * without its lock, and touch p no more. */
static void pool_unref(pool *p)
{
    if (p == &default_pool || atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) != 1)
        return;
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->gone);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/* The pool a call made by this thread goes to: that of the runtime the
 * thread is in (a worker, or inside a block_on), else a pool thread's own,
 * else the default one. */
static pool *current_pool(void)
{
    ac_runtime *rt = ac_runtime_current();
    pool *p = rt ? ac__runtime_blocking_pool(rt) : NULL;
    if (!p)
        p = own_pool;
    return p ? p : &default_pool;
}

/* Frees a record whose call is done and that no one joins. */
static void free_job(job *j)
{
    pool *p = j->pool;
    free(j);
    pool_unref(p);
}

/* Joins and frees a list of exited threads; call without the lock. */
static void join_all(worker *w)
{
    while (w) {
        worker *next = w->next;
        pthread_join(w->thread, NULL);
        atomic_fetch_sub(&live_threads, 1);
        pool_unref(w->pool);
        free(w);
        w = next;
    }
}

/* Takes the exited threads (lock held) for join_all. */
static worker *take_exited(pool *p)
{
    worker *w = p->exited;
    p->exited = NULL;
    return w;
}

/* Records that the calling thread is exiting (lock held): it waits to be
 * joined, or, once its pool is orphaned and no one will join it, detaches
 * itself and returns true (the caller frees self). */
static bool exiting(worker *self)
{
    pool *p = self->pool;
    pthread_cond_broadcast(&p->gone);
    if (p->orphaned) {
        pthread_detach(pthread_self());
        atomic_fetch_sub(&live_threads, 1);
        return true;
    }
    self->next = p->exited;
    p->exited = self;
    return false;
}

static job *pop(pool *p)
{
    job *j = p->head;
    if (j)
        p->head = j->next;
    return j;
}

static void push(pool *p, job *j)
{
    j->next = NULL;
    if (p->head)
        p->tail->next = j;
    else
        p->head = j;
    p->tail = j;
}

/* Stores fn's result and wakes the joiner, or frees a detached record.
 * `own_thread`: called by the pool or dedicated thread that ran fn, which
 * now leaves fn (see in_fn). */
static void complete(job *j, void *result, bool own_thread)
{
    pool *p = j->pool;
    /* Before the wake: a task that is woken, runs, and parks again must not
     * find the clock still inhibited, as nothing would wake it afterwards. */
    if (j->inhibits)
        ac__clock_allow_auto_advance();
    pthread_mutex_lock(&p->mu);
    j->result = result;
    bool wake = j->has_waker, detached = j->detached;
    ac_waker w = j->waker;
    j->has_waker = false;
    /* The last write: a joiner that sees it may free the record. */
    __atomic_store_n(&j->done, 1, __ATOMIC_RELEASE);
    if (own_thread) {
        p->in_fn--;
        pthread_cond_broadcast(&p->gone); /* shutdown now waits for this thread */
    }
    pthread_mutex_unlock(&p->mu);
    if (wake)
        ac_waker_wake(w);
    if (detached)
        free_job(j);
}

/* Runs a call on the calling thread, outside the pool (no thread could be
 * created). */
static void run_here(job *j) { complete(j, j->fn(j->arg), false); }

static void *pool_main(void *arg)
{
    worker *self = arg;
    pool *p = self->pool;
    own_pool = p;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        job *j = pop(p);
        if (j) {
            p->in_fn++;
            if (p->shutdown)
                pthread_cond_broadcast(&p->gone); /* one fewer to wait for */
            pthread_mutex_unlock(&p->mu);
            complete(j, j->fn(j->arg), true);
            pthread_mutex_lock(&p->mu);
            continue;
        }
        if (p->shutdown || p->threads > p->max_threads)
            break;
        /* Idle: wait for a call, at most keep_alive_ms (re-read on every
         * wake-up, since ac_blocking_pool_configure may change it). */
        p->idle++;
        uint64_t idle_since = ac__clock_real_ns();
        bool leave = false;
        for (;;) {
            uint64_t deadline = idle_since + (uint64_t)p->keep_alive_ms * 1000000u;
            ac__cond_wait_until(&p->work, &p->mu, deadline);
            if (p->notified) {
                p->notified--; /* the submitter already took us off idle */
                break;
            }
            if (p->shutdown || p->threads > p->max_threads ||
                ac__clock_real_ns() >= idle_since + (uint64_t)p->keep_alive_ms * 1000000u) {
                p->idle--;
                leave = true;
                break;
            }
        }
        if (leave)
            break;
    }
    p->threads--;
    bool alone = exiting(self);
    pthread_mutex_unlock(&p->mu);
    if (alone) {
        free(self);
        pool_unref(p);
    }
    return NULL;
}

static void *dedicated_main(void *arg)
{
    worker *self = arg;
    pool *p = self->pool;
    complete(self->only, self->only->fn(self->only->arg), true);
    pthread_mutex_lock(&p->mu);
    p->dedicated--;
    exiting(self); /* the default pool is never orphaned */
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* A record for a call on pool p, holding a reference to it. */
static job *new_job(pool *p, void *(*fn)(void *), void *arg)
{
    job *j = calloc(1, sizeof *j);
    if (j) {
        j->pool = p;
        j->fn = fn;
        j->arg = arg;
        pool_ref(p);
    }
    return j;
}

/* Queues j for its pool, creating a thread if none is free and the limit
 * allows. With no thread at all (none could be created), the calling thread
 * runs the queue itself. */
static void submit(job *j)
{
    pool *p = j->pool;
    j->inhibits = true;
    ac__clock_inhibit_auto_advance();
    bool spawn = false;
    pthread_mutex_lock(&p->mu);
    push(p, j);
    if (p->idle > 0) {
        p->idle--;
        p->notified++;
        pthread_cond_signal(&p->work);
    } else if (p->threads < p->max_threads) {
        p->threads++;
        spawn = true;
    }
    worker *reap = take_exited(p);
    pthread_mutex_unlock(&p->mu);
    join_all(reap);
    if (!spawn)
        return;

    pthread_once(&atexit_once, register_atexit);
    worker *w = calloc(1, sizeof *w);
    if (w) {
        w->pool = p;
        pool_ref(p); /* before the thread can exit and let go */
        atomic_fetch_add(&live_threads, 1);
        if (pthread_create(&w->thread, NULL, pool_main, w) == 0)
            return;
        atomic_fetch_sub(&live_threads, 1);
        pool_unref(p); /* j's reference keeps p */
    }
    free(w);
    pthread_mutex_lock(&p->mu);
    p->threads--;
    while (p->threads == 0 && (j = pop(p))) {
        pthread_mutex_unlock(&p->mu);
        run_here(j);
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
}

/* Polls a call for its joiner: true with *out set (the record freed) once
 * it is done; otherwise registers waker to be woken then. */
static bool join_poll(job *j, const ac_waker *waker, void **out)
{
    pool *p = j->pool;
    bool done = __atomic_load_n(&j->done, __ATOMIC_ACQUIRE);
    bool drop_old = false;
    ac_waker old;
    if (!done) {
        pthread_mutex_lock(&p->mu);
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
        pthread_mutex_unlock(&p->mu);
    }
    if (drop_old)
        ac_waker_drop(old);
    if (!done)
        return false;
    if (out)
        *out = j->result;
    free_job(j);
    return true;
}

/* The joiner gives the record up: free it if done, else let the pool. */
static void release(job *j)
{
    pool *p = j->pool;
    bool drop_old = false;
    ac_waker old;
    pthread_mutex_lock(&p->mu);
    bool done = __atomic_load_n(&j->done, __ATOMIC_RELAXED);
    if (!done) {
        j->detached = true;
        if (j->has_waker) {
            old = j->waker;
            drop_old = true;
            j->has_waker = false;
        }
    }
    pthread_mutex_unlock(&p->mu);
    if (drop_old)
        ac_waker_drop(old);
    if (done)
        free_job(j);
}

/* Makes every thread of p that is not inside a call's fn exit, and joins
 * it with every thread that exited before. Queued calls still run: a
 * thread takes the next one before it looks at `shutdown`. `orphan`: p's
 * runtime is going away, and threads still inside fn will detach
 * themselves when they exit; otherwise p is usable again afterwards. */
static void shut(pool *p, bool orphan)
{
    pthread_mutex_lock(&p->mu);
    p->shutdown = true;
    pthread_cond_broadcast(&p->work);
    /* Every thread not inside a call's fn exits promptly (idle ones are
     * woken; one between calls sees `shutdown`, or enters fn and is no
     * longer waited for). */
    while (p->threads + p->dedicated > p->in_fn)
        pthread_cond_wait(&p->gone, &p->mu);
    worker *reap = take_exited(p);
    /* In the same hold: a thread that leaves fn after it either finds
     * the pool open again or knows that no one will join it. */
    if (orphan)
        p->orphaned = true;
    else
        p->shutdown = false;
    pthread_mutex_unlock(&p->mu);
    join_all(reap);
}

/* ======================================================================== */
/* Runtimes' pools                                                           */
/* ======================================================================== */

ac__pool *ac__pool_new(unsigned max_threads, unsigned keep_alive_ms)
{
    pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    if (pthread_mutex_init(&p->mu, NULL) != 0) {
        free(p);
        return NULL;
    }
    if (pthread_cond_init(&p->work, NULL) != 0) {
        pthread_mutex_destroy(&p->mu);
        free(p);
        return NULL;
    }
    if (pthread_cond_init(&p->gone, NULL) != 0) {
        pthread_cond_destroy(&p->work);
        pthread_mutex_destroy(&p->mu);
        free(p);
        return NULL;
    }
    p->max_threads = max_threads;
    p->keep_alive_ms = keep_alive_ms;
    atomic_init(&p->refs, 1);
    return p;
}

void ac__pool_free(ac__pool *p)
{
    if (!p)
        return;
    /* Threads still inside fn run the rest of the queue and then exit on
     * their own, detached; the last reference frees p. */
    shut(p, true);
    pool_unref(p);
}

/* ======================================================================== */
/* Public API                                                                */
/* ======================================================================== */

ac_blocking_handle *ac_spawn_blocking(void *(*fn)(void *), void *arg)
{
    job *j = new_job(current_pool(), fn, arg);
    if (j)
        submit(j);
    return j;
}

ac_blocking_handle *ac_spawn_thread(void *(*fn)(void *), void *arg)
{
    pool *p = &default_pool;
    job *j = new_job(p, fn, arg);
    worker *w = calloc(1, sizeof *w);
    if (!j || !w) {
        if (j)
            free_job(j);
        free(w);
        return NULL;
    }
    w->only = j;
    w->pool = p;
    pool_ref(p);
    pthread_once(&atexit_once, register_atexit);
    atomic_fetch_add(&live_threads, 1);
    pthread_mutex_lock(&p->mu);
    p->dedicated++;
    p->in_fn++; /* from the start: the thread exists to run fn */
    worker *reap = take_exited(p);
    pthread_mutex_unlock(&p->mu);
    join_all(reap);
    if (pthread_create(&w->thread, NULL, dedicated_main, w) != 0) {
        pthread_mutex_lock(&p->mu);
        p->dedicated--;
        p->in_fn--;
        pthread_mutex_unlock(&p->mu);
        atomic_fetch_sub(&live_threads, 1);
        free(w);
        pool_unref(p);
        free_job(j);
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
    pool *p = current_pool();
    pthread_mutex_lock(&p->mu);
    p->max_threads = max_threads;
    p->keep_alive_ms = keep_alive_ms;
    pthread_cond_broadcast(&p->work); /* idle threads re-read both */
    pthread_mutex_unlock(&p->mu);
    return 0;
}

/* Pool threads waiting for work (tests use it: a thread that has just
 * published a result is not idle yet, so a call made right after a join
 * may legitimately start a new thread). */
unsigned ac__blocking_pool_idle(void)
{
    pool *p = current_pool();
    pthread_mutex_lock(&p->mu);
    unsigned n = p->idle;
    pthread_mutex_unlock(&p->mu);
    return n;
}

unsigned ac__blocking_threads_alive(void) { return atomic_load(&live_threads); }

unsigned ac_blocking_pool_threads(void)
{
    pool *p = current_pool();
    pthread_mutex_lock(&p->mu);
    unsigned n = p->threads;
    pthread_mutex_unlock(&p->mu);
    return n;
}

void ac__blocking_pool_shutdown(void) { shut(&default_pool, false); }

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

/*
 * runtime_blocking.c: the blocking pool (ac_blocking, ac_spawn_blocking,
 * ac_blocking_join), dedicated threads (ac_spawn_thread), and how blocking
 * calls hold back the paused clock's auto-advance.
 *
 * Blocking functions here wait at a gate that the test opens, so that the
 * tests know, without timing, how many calls are running. The only real
 * waiting is for a condition to become true (a thread to start, the pool to
 * shrink), with a generous limit; nothing asserts how long anything took.
 */
#define ASYNCC_RUNTIME_INTERNAL 1
#include <asyncc.h>

#include "../../runtime/src/internal.h"

#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

/* Blocking calls wait here until the test opens it. */
typedef struct gate {
    pthread_mutex_t mu; /* guards the fields below */
    pthread_cond_t cv;  /* broadcast on every change */
    bool open;          /* calls may return */
    int started;        /* calls that reached the gate */
    int finished;       /* calls that passed it */
} gate;

static gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, 0, 0};

static void *wait_at_gate(void *arg)
{
    pthread_mutex_lock(&g.mu);
    g.started++;
    pthread_cond_broadcast(&g.cv);
    while (!g.open)
        pthread_cond_wait(&g.cv, &g.mu);
    g.finished++;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    return arg;
}

static void open_gate(void)
{
    pthread_mutex_lock(&g.mu);
    g.open = true;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
}

/* Waits (up to 10 s) until *field >= n; returns whether it got there. */
static bool gate_reaches(int *field, int n)
{
    struct timespec limit;
    clock_gettime(CLOCK_REALTIME, &limit);
    limit.tv_sec += 10;
    pthread_mutex_lock(&g.mu);
    while (*field < n && pthread_cond_timedwait(&g.cv, &g.mu, &limit) == 0) {
    }
    bool ok = *field >= n;
    pthread_mutex_unlock(&g.mu);
    return ok;
}

static int gate_count(int *field)
{
    pthread_mutex_lock(&g.mu);
    int n = *field;
    pthread_mutex_unlock(&g.mu);
    return n;
}

/* Polls cond every millisecond for up to 10 s; returns whether it held. */
static bool eventually(bool (*cond)(void))
{
    for (int i = 0; i < 10000; i++) {
        if (cond())
            return true;
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    return cond();
}

static pthread_t ran_on; /* set by whoami */
static void *whoami(void *arg)
{
    ran_on = pthread_self();
    return arg;
}

static void *square(void *arg)
{
    uintptr_t n = (uintptr_t)arg;
    return (void *)(n * n);
}

/* Awaits a handle with ac_block_on and returns the call's result. */
static void *join(ac_blocking_handle *h)
{
    struct ac_blocking_join__frame f;
    ac_blocking_join__init(&f, h);
    void *r = (void *)-1;
    ck_assert_int_eq(ac_block_on(&ac_blocking_join__vt, &f, &r), 0);
    return r;
}

/* A waker that records which thread woke it. */
typedef struct recorder {
    pthread_mutex_t mu;  /* guards the fields below */
    pthread_cond_t cv;   /* broadcast on a wake */
    int clones, wakes, drops; /* operations done */
    pthread_t woken_by;  /* thread of the last wake */
} recorder;

static const ac_waker_vtable recorder_vtable;
static ac_waker rec_clone(const void *d)
{
    recorder *r = (recorder *)d;
    pthread_mutex_lock(&r->mu);
    r->clones++;
    pthread_mutex_unlock(&r->mu);
    return (ac_waker){&recorder_vtable, d};
}
static void rec_wake(const void *d)
{
    recorder *r = (recorder *)d;
    pthread_mutex_lock(&r->mu);
    r->wakes++;
    r->woken_by = pthread_self();
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}
static void rec_drop(const void *d)
{
    recorder *r = (recorder *)d;
    pthread_mutex_lock(&r->mu);
    r->drops++;
    pthread_mutex_unlock(&r->mu);
}
static const ac_waker_vtable recorder_vtable = {rec_clone, rec_wake, rec_wake, rec_drop};

/* Every test starts with a closed gate and the pool's defaults (this also
 * matters when Check runs the tests in one process, CK_FORK=no). */
static void setup(void)
{
    pthread_mutex_lock(&g.mu);
    g.open = false;
    g.started = g.finished = 0;
    pthread_mutex_unlock(&g.mu);
    ac_blocking_pool_configure(512, 10000);
    ac_time_resume();
}

static bool pool_is_empty(void) { return ac_blocking_pool_threads() == 0; }
static bool one_idle(void) { return ac__blocking_pool_idle() == 1; }
static bool clock_may_advance(void) { return ac__clock_can_auto_advance(); }

/* ------------------------------------------------------------------------ */
/* The await form: ac_blocking                                               */
/* ------------------------------------------------------------------------ */

START_TEST(blocking_call_runs_on_a_pool_thread_and_yields_its_result)
{
    struct ac_blocking__frame f;
    ac_blocking__init(&f, whoami, (void *)0x1234);
    void *r = NULL;
    ck_assert_int_eq(ac_block_on(&ac_blocking__vt, &f, &r), 0);
    ck_assert_ptr_eq(r, (void *)0x1234);
    ck_assert(!pthread_equal(ran_on, pthread_self()));
    ck_assert_uint_eq(ac_blocking_pool_threads(), 1);
}
END_TEST

START_TEST(blocking_call_wakes_the_awaiting_task_from_the_pool_thread)
{
    recorder rec = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    ac_waker wk = {&recorder_vtable, &rec};
    ac_context cx = {.waker = &wk};
    struct ac_blocking__frame f;
    ac_blocking__init(&f, wait_at_gate, (void *)7);
    void *r = NULL;
    ck_assert_int_eq(ac_blocking__poll(&f, &cx, &r), AC_PENDING); /* submitted */
    ck_assert(gate_reaches(&g.started, 1));
    ck_assert_int_eq(ac_blocking__poll(&f, &cx, &r), AC_PENDING); /* spurious */
    ck_assert_int_eq(rec.clones, 1);                                /* same waker: one clone */
    open_gate();
    pthread_mutex_lock(&rec.mu);
    while (rec.wakes == 0)
        pthread_cond_wait(&rec.cv, &rec.mu);
    pthread_t by = rec.woken_by;
    pthread_mutex_unlock(&rec.mu);
    ck_assert(!pthread_equal(by, pthread_self()));
    ck_assert_int_eq(ac_blocking__poll(&f, &cx, &r), AC_READY);
    ck_assert_ptr_eq(r, (void *)7);
    ck_assert_int_eq(rec.clones, rec.wakes + rec.drops);
}
END_TEST

START_TEST(dropping_an_in_flight_blocking_call_detaches_it)
{
    ac_time_pause();
    recorder rec = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    ac_waker wk = {&recorder_vtable, &rec};
    ac_context cx = {.waker = &wk};
    struct ac_blocking__frame f;
    ac_blocking__init(&f, wait_at_gate, NULL);
    void *r;
    ck_assert_int_eq(ac_blocking__poll(&f, &cx, &r), AC_PENDING);
    ck_assert(gate_reaches(&g.started, 1));
    ck_assert(!ac__clock_can_auto_advance()); /* in flight: the clock holds still */
    ac_blocking__drop(&f);
    ck_assert_int_eq(rec.drops, 1); /* the waker clone came back */
    open_gate();
    ck_assert(gate_reaches(&g.finished, 1)); /* the call still ran to the end */
    ck_assert(eventually(clock_may_advance));
    ck_assert_int_eq(rec.wakes, 0);
    /* The record is freed by the pool thread: valgrind shows no leak. */
}
END_TEST

/* ------------------------------------------------------------------------ */
/* ac_spawn_blocking, ac_spawn_thread, ac_blocking_join                      */
/* ------------------------------------------------------------------------ */

START_TEST(spawn_blocking_starts_at_once_and_join_yields_the_result)
{
    ac_blocking_handle *h = ac_spawn_blocking(wait_at_gate, (void *)99);
    ck_assert_ptr_nonnull(h);
    ck_assert(gate_reaches(&g.started, 1)); /* running before anything awaits it */
    open_gate();
    ck_assert_ptr_eq(join(h), (void *)99);
}
END_TEST

START_TEST(join_of_a_finished_call_is_ready_at_once)
{
    ac_time_pause(); /* clock_may_advance then tells when no call is in flight */
    ac_blocking_handle *h = ac_spawn_blocking(wait_at_gate, (void *)5);
    open_gate();
    ck_assert(gate_reaches(&g.finished, 1));
    ck_assert(eventually(clock_may_advance)); /* completion has run */
    ac_context cx = {.waker = ac_waker_noop()};
    struct ac_blocking_join__frame f;
    ac_blocking_join__init(&f, h);
    void *r = NULL;
    ck_assert_int_eq(ac_blocking_join__poll(&f, &cx, &r), AC_READY);
    ck_assert_ptr_eq(r, (void *)5);
}
END_TEST

START_TEST(detached_calls_are_freed_whether_running_or_finished)
{
    ac_time_pause(); /* clock_may_advance then tells when no call is in flight */
    ac_blocking_handle *running = ac_spawn_blocking(wait_at_gate, NULL);
    ck_assert(gate_reaches(&g.started, 1));
    ac_blocking_detach(running);
    open_gate();
    ck_assert(gate_reaches(&g.finished, 1));
    ac_blocking_handle *finished = ac_spawn_blocking(square, (void *)3);
    ck_assert(eventually(clock_may_advance));
    ac_blocking_detach(finished);
    ac_blocking_detach(NULL);
    /* valgrind shows no leak. */
}
END_TEST

START_TEST(dropping_an_unpolled_join_detaches_the_call)
{
    ac_time_pause();
    ac_blocking_handle *h = ac_spawn_blocking(wait_at_gate, NULL);
    struct ac_blocking_join__frame f;
    ac_blocking_join__init(&f, h);
    ac_blocking_join__drop(&f); /* the future owned h */
    ac_blocking_join__drop(&f); /* twice: harmless */
    open_gate();
    ck_assert(gate_reaches(&g.finished, 1));
    ck_assert(eventually(clock_may_advance)); /* finished, and freed by the pool */
}
END_TEST

START_TEST(join_of_a_null_handle_yields_null)
{
    ck_assert_ptr_null(join(NULL));
}
END_TEST

static void *pool_size_inside(void *arg)
{
    (void)arg;
    return (void *)(uintptr_t)ac_blocking_pool_threads();
}

START_TEST(spawn_thread_runs_on_a_dedicated_thread_outside_the_pool)
{
    ac_blocking_handle *h = ac_spawn_thread(pool_size_inside, NULL);
    ck_assert_ptr_nonnull(h);
    ck_assert_ptr_eq(join(h), (void *)0); /* no pool thread ran it */
    ac_blocking_handle *w = ac_spawn_thread(whoami, (void *)3);
    ck_assert_ptr_eq(join(w), (void *)3);
    ck_assert(!pthread_equal(ran_on, pthread_self()));
    ck_assert_uint_eq(ac_blocking_pool_threads(), 0);
}
END_TEST

START_TEST(spawn_thread_does_not_hold_back_the_paused_clock)
{
    ac_time_pause();
    ac_blocking_handle *h = ac_spawn_thread(wait_at_gate, NULL);
    ck_assert(gate_reaches(&g.started, 1));
    ck_assert(ac__clock_can_auto_advance());
    open_gate();
    join(h);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Pool size                                                                 */
/* ------------------------------------------------------------------------ */

START_TEST(pool_grows_to_its_maximum_and_queues_the_rest)
{
    ck_assert_int_eq(ac_blocking_pool_configure(4, 60000), 0);
    ac_blocking_handle *h[8];
    for (int i = 0; i < 8; i++)
        ck_assert_ptr_nonnull(h[i] = ac_spawn_blocking(wait_at_gate, (void *)(uintptr_t)i));
    ck_assert(gate_reaches(&g.started, 4));
    ck_assert_uint_eq(ac_blocking_pool_threads(), 4);
    /* Four threads are held at the gate, so no fifth call can have started. */
    ck_assert_int_eq(gate_count(&g.started), 4);
    open_gate();
    for (int i = 0; i < 8; i++)
        ck_assert_ptr_eq(join(h[i]), (void *)(uintptr_t)i);
    ck_assert_int_eq(gate_count(&g.finished), 8);
    ck_assert_uint_eq(ac_blocking_pool_threads(), 4);
}
END_TEST

START_TEST(pool_reaps_idle_threads_after_the_keep_alive)
{
    ck_assert_int_eq(ac_blocking_pool_configure(4, 50), 0);
    ac_blocking_handle *h[4];
    for (int i = 0; i < 4; i++)
        h[i] = ac_spawn_blocking(wait_at_gate, NULL);
    ck_assert(gate_reaches(&g.started, 4));
    ck_assert_uint_eq(ac_blocking_pool_threads(), 4);
    open_gate();
    for (int i = 0; i < 4; i++)
        join(h[i]);
    ck_assert(eventually(pool_is_empty));
    /* And the pool grows again on demand. */
    ck_assert_ptr_eq(join(ac_spawn_blocking(square, (void *)6)), (void *)36);
}
END_TEST

START_TEST(pool_reuses_an_idle_thread_within_the_keep_alive)
{
    ck_assert_int_eq(ac_blocking_pool_configure(512, 60000), 0);
    join(ac_spawn_blocking(whoami, NULL));
    pthread_t first = ran_on;
    /* The thread publishes the result before it goes back to waiting. */
    ck_assert(eventually(one_idle));
    join(ac_spawn_blocking(whoami, NULL));
    ck_assert(pthread_equal(first, ran_on));
    ck_assert_uint_eq(ac_blocking_pool_threads(), 1);
}
END_TEST

START_TEST(lowering_the_maximum_retires_surplus_idle_threads)
{
    ck_assert_int_eq(ac_blocking_pool_configure(3, 60000), 0);
    ac_blocking_handle *h[3];
    for (int i = 0; i < 3; i++)
        h[i] = ac_spawn_blocking(wait_at_gate, NULL);
    ck_assert(gate_reaches(&g.started, 3));
    open_gate();
    for (int i = 0; i < 3; i++)
        join(h[i]);
    ck_assert_int_eq(ac_blocking_pool_configure(1, 60000), 0);
    for (int i = 0; i < 10000 && ac_blocking_pool_threads() > 1; i++) {
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    ck_assert_uint_eq(ac_blocking_pool_threads(), 1);
}
END_TEST

START_TEST(pool_configure_rejects_zero_threads)
{
    ck_assert_int_eq(ac_blocking_pool_configure(0, 100), AC_EINVAL);
}
END_TEST

START_TEST(many_calls_through_a_small_pool_all_complete)
{
    enum { N = 500 };
    ck_assert_int_eq(ac_blocking_pool_configure(3, 60000), 0);
    ac_blocking_handle *h[N];
    for (uintptr_t i = 0; i < N; i++)
        ck_assert_ptr_nonnull(h[i] = ac_spawn_blocking(square, (void *)i));
    for (uintptr_t i = 0; i < N; i++)
        ck_assert_ptr_eq(join(h[i]), (void *)(i * i));
    ck_assert_uint_le(ac_blocking_pool_threads(), 3);
}
END_TEST

START_TEST(pool_shutdown_joins_idle_threads)
{
    ck_assert_int_eq(ac_blocking_pool_configure(8, 60000), 0);
    ac_blocking_handle *h[3];
    for (int i = 0; i < 3; i++)
        h[i] = ac_spawn_blocking(wait_at_gate, NULL);
    ck_assert(gate_reaches(&g.started, 3));
    open_gate();
    for (int i = 0; i < 3; i++)
        join(h[i]);
    ac__blocking_pool_shutdown();
    ck_assert_uint_eq(ac_blocking_pool_threads(), 0);
    ck_assert_ptr_eq(join(ac_spawn_blocking(square, (void *)2)), (void *)4); /* usable again */
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Runtimes' pools                                                           */
/* ------------------------------------------------------------------------ */

/* A future whose one poll calls fn(arg): runs plain C inside a runtime. */
typedef struct call_frame {
    void (*fn)(void *);
    void *arg;
} call_frame;
static ac_poll_t call_vpoll(void *f, ac_context *cx, void *out)
{
    (void)cx;
    (void)out;
    call_frame *c = f;
    c->fn(c->arg);
    return AC_READY;
}
static void call_vdrop(void *f) { (void)f; }
static const ac_future_vt call__vt = {sizeof(call_frame), _Alignof(call_frame), 0, call_vpoll, call_vdrop,
                                      "call"};

static void run_in(ac_runtime *rt, void (*fn)(void *), void *arg)
{
    call_frame f = {fn, arg};
    ck_assert_int_eq(ac_runtime_block_on(rt, &call__vt, &f, NULL), 0);
}

static ac_runtime *runtime_with_pool(unsigned max_threads)
{
    ac_runtime_config c;
    ac_runtime_config_init(&c);
    c.workers = 1;
    c.max_blocking_threads = max_threads;
    c.blocking_keep_alive_ms = 60000;
    ac_runtime *rt = NULL;
    ck_assert_int_eq(ac_runtime_new(&c, &rt), 0);
    return rt;
}

/* Gate calls started from inside a runtime, and what its pool had then. */
typedef struct gate_calls {
    int n;                   /* calls to start */
    ac_blocking_handle *h[8]; /* their handles */
    unsigned threads;        /* the pool's threads right after */
} gate_calls;

static void start_gate_calls(void *arg)
{
    gate_calls *c = arg;
    for (int i = 0; i < c->n; i++)
        ck_assert_ptr_nonnull(c->h[i] = ac_spawn_blocking(wait_at_gate, (void *)(intptr_t)(i + 1)));
    c->threads = ac_blocking_pool_threads();
}

static void read_pool_threads(void *arg) { *(unsigned *)arg = ac_blocking_pool_threads(); }

START_TEST(each_runtime_has_a_pool_of_its_own_size)
{
    /* Built in this order, with one pool for the process the second's
     * limit would have been the first's too. */
    ac_runtime *small = runtime_with_pool(1), *big = runtime_with_pool(4);
    gate_calls a = {.n = 3}, b = {.n = 4};
    run_in(small, start_gate_calls, &a);
    run_in(big, start_gate_calls, &b);
    ck_assert_uint_eq(a.threads, 1); /* the other two calls wait in its queue */
    ck_assert_uint_eq(b.threads, 4);
    ck_assert(gate_reaches(&g.started, 5));
    ck_assert_uint_eq(ac_blocking_pool_threads(), 0); /* outside: the default pool, unused */
    open_gate();
    for (int i = 0; i < a.n; i++)
        ck_assert_ptr_eq(join(a.h[i]), (void *)(intptr_t)(i + 1));
    for (int i = 0; i < b.n; i++)
        ck_assert_ptr_eq(join(b.h[i]), (void *)(intptr_t)(i + 1));
    unsigned threads = 0;
    run_in(small, read_pool_threads, &threads);
    ck_assert_uint_eq(threads, 1);
    ac_runtime_free(small);
    ac_runtime_free(big);
}
END_TEST

static void *pool_threads_here(void *arg)
{
    (void)arg;
    return (void *)(uintptr_t)ac_blocking_pool_threads();
}

static void start_pool_threads_here(void *arg)
{
    *(ac_blocking_handle **)arg = ac_spawn_blocking(pool_threads_here, NULL);
}

START_TEST(a_pool_thread_counts_as_inside_its_runtime)
{
    /* Two idle threads in the default pool, none in the runtime's. */
    ac_blocking_handle *h[2];
    for (int i = 0; i < 2; i++)
        h[i] = ac_spawn_blocking(wait_at_gate, NULL);
    ck_assert(gate_reaches(&g.started, 2));
    open_gate();
    for (int i = 0; i < 2; i++)
        join(h[i]);
    ac_runtime *rt = runtime_with_pool(4);
    ac_blocking_handle *mine = NULL;
    run_in(rt, start_pool_threads_here, &mine);
    ck_assert_ptr_eq(join(mine), (void *)1); /* its pool: the one thread running it */
    ck_assert_uint_eq(ac_blocking_pool_threads(), 2);
    ac_runtime_free(rt);
}
END_TEST

START_TEST(runtime_free_joins_its_idle_pool_threads)
{
    unsigned before = ac__blocking_threads_alive();
    ac_runtime *rt = runtime_with_pool(8);
    gate_calls c = {.n = 3};
    run_in(rt, start_gate_calls, &c);
    ck_assert(gate_reaches(&g.started, 3));
    open_gate();
    for (int i = 0; i < c.n; i++)
        join(c.h[i]);
    ck_assert_uint_eq(ac__blocking_threads_alive(), before + 3);
    ac_runtime_free(rt);
    /* Idle for less than the 60 s keep-alive, but gone with their runtime. */
    ck_assert_uint_eq(ac__blocking_threads_alive(), before);
}
END_TEST

static unsigned threads_before;
static bool back_to_threads_before(void) { return ac__blocking_threads_alive() == threads_before; }

START_TEST(runtime_free_leaves_a_call_in_flight_to_finish)
{
    threads_before = ac__blocking_threads_alive();
    ac_runtime *rt = runtime_with_pool(1);
    gate_calls c = {.n = 3}; /* one running, two queued behind it */
    run_in(rt, start_gate_calls, &c);
    ck_assert(gate_reaches(&g.started, 1));
    ac_blocking_detach(c.h[2]);
    ac_runtime_free(rt); /* returns with the call still at the gate */
    ck_assert_int_eq(gate_count(&g.finished), 0);
    open_gate();
    /* The queued calls still run; their results outlive the runtime. */
    for (int i = 0; i < 2; i++)
        ck_assert_ptr_eq(join(c.h[i]), (void *)(intptr_t)(i + 1));
    ck_assert(gate_reaches(&g.finished, 3));
    /* The pool thread exits on its own, the pool freed with it. */
    ck_assert(eventually(back_to_threads_before));
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Blocking calls and the paused clock                                       */
/* ------------------------------------------------------------------------ */

/*
 * async(int) blocking_within(uint64_t limit_ms, void **out)
 * {
 *     return await(ac_timeout(limit_ms, ac_blocking(wait_at_gate, (void *)1), out));
 * }
 * lowered as docs/runtime-abi.md ("Time", ac_timeout) describes.
 */
struct blocking_within__frame {
    uint64_t limit_ms;                   /* parameter */
    void **out;                          /* parameter */
    struct ac_deadline__frame ac_dl3;    /* the deadline of the await */
    struct ac_blocking__frame ac_aw3;    /* its inner future */
    uint8_t ac_state;
};

static ac_poll_t blocking_within__poll(struct blocking_within__frame *ac_f, ac_context *ac_cx,
                                       int *ac_out)
{
    switch (ac_f->ac_state) {
    case AC_STATE_UNRESUMED:
        ac_deadline__init(&ac_f->ac_dl3, ac_f->limit_ms);
        ac_blocking__init(&ac_f->ac_aw3, wait_at_gate, (void *)1);
        ac_f->ac_state = AC_STATE_FIRST;
        break;
    case AC_STATE_FIRST:
        break;
    default:
        ac__bad_resume("blocking_within", ac_f->ac_state);
    }
    if (ac_blocking__poll(&ac_f->ac_aw3, ac_cx, ac_f->out) == AC_READY) {
        ac_deadline__drop(&ac_f->ac_dl3);
        *ac_out = 0;
    } else if (ac_deadline__expired(&ac_f->ac_dl3, ac_cx)) {
        ac_blocking__drop(&ac_f->ac_aw3);
        ac_deadline__drop(&ac_f->ac_dl3);
        *ac_out = AC_ETIMEDOUT;
    } else {
        return AC_PENDING;
    }
    ac_f->ac_state = AC_STATE_RETURNED;
    return AC_READY;
}

static void blocking_within__drop(struct blocking_within__frame *ac_f)
{
    if (ac_f->ac_state == AC_STATE_FIRST) {
        ac_blocking__drop(&ac_f->ac_aw3);
        ac_deadline__drop(&ac_f->ac_dl3);
    }
    ac_f->ac_state = AC_STATE_RETURNED;
}

static ac_poll_t blocking_within_vpoll(void *f, ac_context *cx, void *out)
{
    return blocking_within__poll(f, cx, out);
}
static void blocking_within_vdrop(void *f) { blocking_within__drop(f); }
static const ac_future_vt blocking_within__vt = {
    sizeof(struct blocking_within__frame), _Alignof(struct blocking_within__frame), sizeof(int),
    blocking_within_vpoll, blocking_within_vdrop, "blocking_within",
};

static void *open_gate_later(void *arg)
{
    (void)arg;
    gate_reaches(&g.started, 1);
    struct timespec ms = {0, 20 * 1000000};
    nanosleep(&ms, NULL); /* let the executor park first, if it is going to */
    open_gate();
    return NULL;
}

START_TEST(paused_clock_does_not_jump_past_a_blocking_call_in_flight)
{
    ac_time_pause();
    uint64_t t0 = ac_now_ms();
    pthread_t opener;
    ck_assert_int_eq(pthread_create(&opener, NULL, open_gate_later, NULL), 0);
    void *result = NULL;
    struct blocking_within__frame f = {.limit_ms = 1000, .out = &result};
    int err = -1;
    ck_assert_int_eq(ac_block_on(&blocking_within__vt, &f, &err), 0);
    pthread_join(opener, NULL);
    ck_assert_int_eq(err, 0); /* the call won: time did not jump to the deadline */
    ck_assert_ptr_eq(result, (void *)1);
    ck_assert_uint_eq(ac_now_ms(), t0);
    ck_assert_uint_eq(ac__time_count(), 0);
}
END_TEST

/* ------------------------------------------------------------------------ */

static Suite *blocking_suite(void)
{
    Suite *s = suite_create("runtime_blocking");

    TCase *await = tcase_create("await");
    tcase_add_checked_fixture(await, setup, NULL);
    tcase_set_timeout(await, 30);
    tcase_add_test(await, blocking_call_runs_on_a_pool_thread_and_yields_its_result);
    tcase_add_test(await, blocking_call_wakes_the_awaiting_task_from_the_pool_thread);
    tcase_add_test(await, dropping_an_in_flight_blocking_call_detaches_it);
    suite_add_tcase(s, await);

    TCase *handles = tcase_create("handles");
    tcase_add_checked_fixture(handles, setup, NULL);
    tcase_set_timeout(handles, 30);
    tcase_add_test(handles, spawn_blocking_starts_at_once_and_join_yields_the_result);
    tcase_add_test(handles, join_of_a_finished_call_is_ready_at_once);
    tcase_add_test(handles, detached_calls_are_freed_whether_running_or_finished);
    tcase_add_test(handles, dropping_an_unpolled_join_detaches_the_call);
    tcase_add_test(handles, join_of_a_null_handle_yields_null);
    tcase_add_test(handles, spawn_thread_runs_on_a_dedicated_thread_outside_the_pool);
    tcase_add_test(handles, spawn_thread_does_not_hold_back_the_paused_clock);
    suite_add_tcase(s, handles);

    TCase *pool = tcase_create("pool");
    tcase_add_checked_fixture(pool, setup, NULL);
    tcase_set_timeout(pool, 60);
    tcase_add_test(pool, pool_grows_to_its_maximum_and_queues_the_rest);
    tcase_add_test(pool, pool_reaps_idle_threads_after_the_keep_alive);
    tcase_add_test(pool, pool_reuses_an_idle_thread_within_the_keep_alive);
    tcase_add_test(pool, lowering_the_maximum_retires_surplus_idle_threads);
    tcase_add_test(pool, pool_configure_rejects_zero_threads);
    tcase_add_test(pool, many_calls_through_a_small_pool_all_complete);
    tcase_add_test(pool, pool_shutdown_joins_idle_threads);
    suite_add_tcase(s, pool);

    TCase *runtimes = tcase_create("runtimes");
    tcase_add_checked_fixture(runtimes, setup, NULL);
    tcase_set_timeout(runtimes, 30);
    tcase_add_test(runtimes, each_runtime_has_a_pool_of_its_own_size);
    tcase_add_test(runtimes, a_pool_thread_counts_as_inside_its_runtime);
    tcase_add_test(runtimes, runtime_free_joins_its_idle_pool_threads);
    tcase_add_test(runtimes, runtime_free_leaves_a_call_in_flight_to_finish);
    suite_add_tcase(s, runtimes);

    TCase *clock = tcase_create("clock");
    tcase_add_checked_fixture(clock, setup, NULL);
    tcase_set_timeout(clock, 30);
    tcase_add_test(clock, paused_clock_does_not_jump_past_a_blocking_call_in_flight);
    suite_add_tcase(s, clock);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(blocking_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

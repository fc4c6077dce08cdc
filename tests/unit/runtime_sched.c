/*
 * runtime_sched.c: runtimes and their schedulers (sched.c): the builder,
 * block_on on both flavours, many tasks on two workers, work stealing, the
 * bounded LIFO slot, the cooperative budget, wakes from foreign threads, the
 * start order of a burst of spawns, the reuse of ring overflow segments,
 * shutdown (also racing with a wake from outside), the driver hooks, and a
 * million spawned tasks.
 *
 * Futures are lowered by hand (docs/runtime-abi.md). A root `script` runs a
 * test's body, a switch on `step`, with an embedded join frame. Nothing here
 * asserts a timing: where a test waits for another thread, it waits for an
 * event, with a generous bound that only a hang would reach.
 */
#define _GNU_SOURCE /* pthread_getname_np */
#define ASYNCC_RUNTIME_INTERNAL 1
#include <asyncc.h>

#include "../../runtime/src/internal.h"

#include <check.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include "value_future.h"

/* ------------------------------------------------------------------------ */
/* Helpers and futures (value_future.h has the value future)                */
/* ------------------------------------------------------------------------ */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static counters cnt; /* each test runs in its own process */

static int *spawn_vt(const ac_future_vt *vt, int v, int yields, counters *c)
{
    void *fr = ac__task_frame_new(vt);
    value__init(fr, v, yields, c);
    return ac__spawn(fr);
}

/* async(void) never(counters *c): pending forever; with keep, it keeps a
 * waker clone in *keep (released by its drop), else none. */
typedef struct never_frame {
    unsigned ac_state; /* 0 unresumed, 1 returned, 3 waiting */
    counters *c;       /* parameter */
    ac_waker kept;     /* the clone, when keeping */
    bool keep;         /* parameter */
} never_frame;

static ac_poll_t never_poll(void *frame, ac_context *cx, void *out)
{
    never_frame *f = frame;
    (void)out;
    atomic_fetch_add(&f->c->polls, 1);
    if (f->keep && f->ac_state != AC_STATE_FIRST)
        f->kept = ac_waker_clone(cx->waker);
    f->ac_state = AC_STATE_FIRST;
    return AC_PENDING;
}

static void never_drop(void *frame)
{
    never_frame *f = frame;
    atomic_fetch_add(&f->c->drops, 1);
    if (f->keep && f->ac_state == AC_STATE_FIRST)
        ac_waker_drop(f->kept);
    f->ac_state = AC_STATE_RETURNED;
}

static const ac_future_vt never_vt = {
    sizeof(never_frame), _Alignof(never_frame), 0, never_poll, never_drop, "never",
};

static void *spawn_never(bool keep, counters *c)
{
    never_frame *f = ac__task_frame_new(&never_vt);
    memset(f, 0, sizeof *f);
    f->c = c;
    f->keep = keep;
    return ac__spawn(f);
}

/* Root futures: the body is the test's code. */
typedef struct script script;
typedef ac_poll_t (*body_fn)(script *s, ac_context *cx, int *out);

struct script {
    unsigned ac_state;          /* 0 unresumed, 1 returned, 3 running */
    body_fn body;               /* the test's code */
    int step;                   /* where the body resumes */
    struct ac_join__frame join; /* an await of a handle; handle NULL when idle */
    int err;                    /* the join's error */
    int value;                  /* the join's output */
    long i;                     /* a loop counter */
    long sum;                   /* an accumulator */
    void *p;                    /* test data */
};

static ac_poll_t script_poll(void *frame, ac_context *cx, void *out)
{
    script *s = frame;
    s->ac_state = AC_STATE_FIRST;
    ac_poll_t r = s->body(s, cx, out);
    if (r == AC_READY)
        s->ac_state = AC_STATE_RETURNED;
    return r;
}

static void script_drop(void *frame)
{
    script *s = frame;
    if (s->join.handle)
        ac_join__drop(&s->join);
    s->ac_state = AC_STATE_RETURNED;
}

static const ac_future_vt script_vt = {
    sizeof(script), _Alignof(script), sizeof(int), script_poll, script_drop, "script",
};

static ac_runtime *new_runtime(int flavor, unsigned workers)
{
    ac_runtime_config c;
    ac_runtime_config_init(&c);
    c.flavor = flavor;
    c.workers = workers;
    ac_runtime *rt = NULL;
    ck_assert_int_eq(ac_runtime_new(&c, &rt), 0);
    ck_assert_ptr_nonnull(rt);
    return rt;
}

static int block_on_script(ac_runtime *rt, body_fn body, script *s, void *p, int *out)
{
    memset(s, 0, sizeof *s);
    s->body = body;
    s->p = p;
    return ac_runtime_block_on(rt, &script_vt, s, out);
}

static int run_script(int flavor, unsigned workers, body_fn body, script *s, void *p, int *out)
{
    ac_runtime *rt = new_runtime(flavor, workers);
    int err = block_on_script(rt, body, s, p, out);
    ac_runtime_free(rt);
    return err;
}

/* Waits (yielding the task) until *flag is at least n. */
#define AWAIT_AT_LEAST(flag, n)                                                \
    do {                                                                       \
        if (atomic_load(flag) < (n)) {                                         \
            ac_waker_wake_by_ref(cx->waker);                                   \
            return AC_PENDING;                                                 \
        }                                                                      \
    } while (0)

/* A body's last step: awaits hs[s->i], ..., hs[n - 1] in order (s->i from
 * 0), adding their outputs to s->sum, and sets *out: 0, or -1 if a task
 * failed or task i's output was not i & mask. */
static ac_poll_t join_all(script *s, ac_context *cx, int **hs, long n, long mask, int *out)
{
    for (; s->i < n; s->i++) {
        if (!s->join.handle)
            ac_join__init(&s->join, hs[s->i], &s->err);
        if (ac_join__poll(&s->join, cx, &s->value) == AC_PENDING)
            return AC_PENDING;
        if (s->err || s->value != (int)(s->i & mask))
            return *out = -1, AC_READY;
        s->sum += s->value;
    }
    *out = 0;
    return AC_READY;
}

/* ------------------------------------------------------------------------ */
/* Builder and block_on                                                     */
/* ------------------------------------------------------------------------ */

START_TEST(config_init_sets_the_documented_defaults)
{
    ac_runtime_config c;
    memset(&c, 0xab, sizeof c);
    ac_runtime_config_init(&c);
    ck_assert_int_eq(c.flavor, AC_RUNTIME_MULTI_THREAD);
    ck_assert_uint_eq(c.workers, 0);
    ck_assert_ptr_null(c.thread_name);
    ck_assert_uint_eq(c.thread_stack_size, 0);
    ck_assert_uint_eq(c.max_blocking_threads, 512);
    ck_assert_uint_eq(c.blocking_keep_alive_ms, 10000);
    ck_assert_uint_eq(c.coop_budget, 128);
    ck_assert_int_eq(c.start_paused, 0);
}
END_TEST

START_TEST(runtime_new_rejects_invalid_configurations)
{
    ac_runtime *rt = NULL;
    ac_runtime_config c;
    ck_assert_int_eq(ac_runtime_new(NULL, NULL), AC_EINVAL);
    ac_runtime_config_init(&c);
    c.flavor = 7;
    ck_assert_int_eq(ac_runtime_new(&c, &rt), AC_EINVAL);
    ac_runtime_config_init(&c);
    c.coop_budget = 0;
    ck_assert_int_eq(ac_runtime_new(&c, &rt), AC_EINVAL);
    ac_runtime_config_init(&c);
    c.workers = 5000;
    ck_assert_int_eq(ac_runtime_new(&c, &rt), AC_EINVAL);
    ac_runtime_config_init(&c);
    c.max_blocking_threads = 0;
    ck_assert_int_eq(ac_runtime_new(&c, &rt), AC_EINVAL);
    ac_runtime_config_init(&c);
    c.thread_stack_size = 1; /* below PTHREAD_STACK_MIN */
    ck_assert_int_eq(ac_runtime_new(&c, &rt), AC_EINVAL);
    ck_assert_ptr_null(rt);
    /* Defaults: one worker per core; freeing an idle runtime is fine. */
    ck_assert_int_eq(ac_runtime_new(NULL, &rt), 0);
    ac_runtime_free(rt);
    ac_runtime_free(NULL);
}
END_TEST

static ac_poll_t current_body(script *s, ac_context *cx, int *out)
{
    ck_assert_ptr_eq(ac_runtime_current(), s->p);
    switch (s->step) {
    case 0:
        s->step = 1;
        ac_waker_wake_by_ref(cx->waker);
        return AC_PENDING;
    case 1:
        *out = 42;
        return AC_READY;
    }
    ac__bad_resume("script", (unsigned)s->step);
}

START_TEST(block_on_runs_the_future_with_the_runtime_current_on_both_flavours)
{
    for (int flavor = 0; flavor <= 1; flavor++) {
        ac_runtime *rt = new_runtime(flavor, 2);
        for (int round = 0; round < 3; round++) { /* a runtime can be entered again */
            script s;
            int out = 0;
            ck_assert_int_eq(block_on_script(rt, current_body, &s, rt, &out), 0);
            ck_assert_int_eq(out, 42);
            ck_assert_ptr_null(ac_runtime_current());
        }
        ac_runtime_free(rt);
    }
}
END_TEST

START_TEST(block_on_reports_a_future_nothing_can_wake_on_both_flavours)
{
    for (int flavor = 0; flavor <= 1; flavor++) {
        ac_runtime *rt = new_runtime(flavor, 2);
        never_frame f;
        memset(&f, 0, sizeof f);
        f.c = &cnt;
        ck_assert_int_eq(ac_runtime_block_on(rt, &never_vt, &f, NULL), AC_EDEADLK);
        ck_assert_int_eq(ac_runtime_block_on(rt, &never_vt, NULL, NULL), AC_EINVAL);
        ck_assert_int_eq(ac_runtime_block_on(NULL, &never_vt, &f, NULL), AC_EINVAL);
        ac_runtime_free(rt);
    }
    ck_assert_int_eq(atomic_load(&cnt.drops), 2);
}
END_TEST

static ac_runtime *nested_rt;
static int nested_result;

static ac_poll_t nested_poll(void *frame, ac_context *cx, void *out)
{
    value_frame *f = frame;
    (void)cx;
    value_frame inner;
    value__init(&inner, 1, 0, &cnt);
    int v = 0;
    nested_result = ac_runtime_block_on(nested_rt, &plain_value_vt, &inner, &v);
    f->ac_state = AC_STATE_RETURNED;
    *(int *)out = 0;
    return AC_READY;
}

static const ac_future_vt nested_vt = {
    sizeof(value_frame), _Alignof(value_frame), sizeof(int), nested_poll, frame_drop, "nested",
};

static ac_poll_t nested_body(script *s, ac_context *cx, int *out)
{
    switch (s->step) {
    case 0: {
        void *fr = ac__task_frame_new(&nested_vt);
        value__init(fr, 0, 0, &cnt);
        ac_join__init(&s->join, ac__spawn(fr), &s->err);
        s->step = 1;
    }
        /* fallthrough */
    case 1:
        if (ac_join__poll(&s->join, cx, &s->value) == AC_PENDING)
            return AC_PENDING;
        *out = 0;
        return AC_READY;
    }
    ac__bad_resume("script", (unsigned)s->step);
}

/* A body's steps that spawn a task of type vt (a value_frame, v) and await
 * its handle into s->value and s->err. */
static ac_poll_t spawn_one_and_join(script *s, ac_context *cx, const ac_future_vt *vt, int v)
{
    switch (s->step) {
    case 0:
        ac_join__init(&s->join, spawn_vt(vt, v, 0, &cnt), &s->err);
        s->step = 1;
        /* fallthrough */
    case 1:
        return ac_join__poll(&s->join, cx, &s->value);
    }
    ac__bad_resume("script", (unsigned)s->step);
}

/* A body that spawns a value task and returns its output (5): it needs the
 * runtime's threads to finish. */
static ac_poll_t spawn_and_join_body(script *s, ac_context *cx, int *out)
{
    if (spawn_one_and_join(s, cx, &value_vt, 5) == AC_PENDING)
        return AC_PENDING;
    *out = s->value;
    return AC_READY;
}

/* Enters nested_rt with spawn_and_join_body, keeping what
 * ac_runtime_block_on returned (nested_result) and wrote (nested_out). */
static int nested_out;

static void enter_nested(void)
{
    script inner;
    nested_out = -1;
    nested_result = block_on_script(nested_rt, spawn_and_join_body, &inner, NULL, &nested_out);
}

/* A root body that enters nested_rt from the block_on thread. */
static ac_poll_t nested_root_body(script *s, ac_context *cx, int *out)
{
    (void)s, (void)cx;
    enter_nested();
    *out = 0;
    return AC_READY;
}

/* A task's poll that enters nested_rt from the task's thread. */
static ac_poll_t nesting_task_poll(void *frame, ac_context *cx, void *out)
{
    value_frame *f = frame;
    (void)cx;
    enter_nested();
    f->ac_state = AC_STATE_RETURNED;
    *(int *)out = 0;
    return AC_READY;
}

static const ac_future_vt nesting_task_vt = {
    sizeof(value_frame), _Alignof(value_frame), sizeof(int), nesting_task_poll, frame_drop,
    "nesting_task",
};

/* The root: runs one nesting task to completion; returns its join error. */
static ac_poll_t nesting_body(script *s, ac_context *cx, int *out)
{
    if (spawn_one_and_join(s, cx, &nesting_task_vt, 0) == AC_PENDING)
        return AC_PENDING;
    *out = s->err;
    return AC_READY;
}

/* A task that blocks its worker on a future needing that worker would hang
 * (with one worker, always): refused, as Tokio refuses by panicking. */
START_TEST(block_on_from_a_worker_of_its_own_runtime_is_busy)
{
    ac_runtime *rt = new_runtime(AC_RUNTIME_MULTI_THREAD, 1);
    nested_rt = rt;
    script s;
    int out = -1;
    ck_assert_int_eq(block_on_script(rt, nesting_body, &s, NULL, &out), 0);
    ck_assert_int_eq(out, 0); /* the nesting task completed */
    ck_assert_int_eq(nested_result, AC_EBUSY);
    ck_assert_int_eq(nested_out, -1);
    /* The runtime is still usable from outside. */
    ck_assert_int_eq(block_on_script(rt, spawn_and_join_body, &s, NULL, &out), 0);
    ck_assert_int_eq(out, 5);
    ac_runtime_free(rt);
}
END_TEST

/* Entering another runtime is refused too, as in Tokio (its future could
 * wait on a task of the first): from a task of either flavour, and from a
 * current-thread root future, which runs on the thread that runs the tasks. */
START_TEST(block_on_of_another_runtime_from_a_task_is_busy)
{
    struct {
        int flavor;
        body_fn body;
    } cases[] = {
        {AC_RUNTIME_MULTI_THREAD, nesting_body},
        {AC_RUNTIME_CURRENT_THREAD, nesting_body},
        {AC_RUNTIME_CURRENT_THREAD, nested_root_body},
    };
    for (int i = 0; i < 3; i++) {
        ac_runtime *outer = new_runtime(cases[i].flavor, 1);
        nested_rt = new_runtime(AC_RUNTIME_MULTI_THREAD, 1);
        script s;
        int out = -1;
        nested_result = 1;
        ck_assert_int_eq(block_on_script(outer, cases[i].body, &s, NULL, &out), 0);
        ck_assert_int_eq(out, 0);
        ck_assert_int_eq(nested_result, AC_EBUSY);
        ck_assert_int_eq(nested_out, -1);
        ac_runtime_free(nested_rt);
        ac_runtime_free(outer);
    }
}
END_TEST

/* What a task does instead: enters the runtime from a blocking-pool thread,
 * which runs no tasks. */
static void *enter_nested_rt(void *arg)
{
    (void)arg;
    enter_nested();
    return NULL;
}

static struct ac_blocking_join__frame blocking_entry;

static ac_poll_t blocking_entry_body(script *s, ac_context *cx, int *out)
{
    void *r;
    switch (s->step) {
    case 0:
        ac_blocking_join__init(&blocking_entry, ac_spawn_blocking(enter_nested_rt, NULL));
        s->step = 1;
        /* fallthrough */
    case 1:
        if (ac_blocking_join__poll(&blocking_entry, cx, &r) == AC_PENDING)
            return AC_PENDING;
        *out = 0;
        return AC_READY;
    }
    ac__bad_resume("script", (unsigned)s->step);
}

/* Threads that run no tasks may enter a runtime, even the one they are
 * in: a blocking-pool thread, and the thread inside a multi-thread block_on,
 * which is not a worker (its root future blocks only itself). */
START_TEST(block_on_from_a_thread_that_runs_no_tasks_runs)
{
    body_fn bodies[] = {blocking_entry_body, nested_root_body};
    for (int i = 0; i < 2; i++) {
        nested_rt = new_runtime(AC_RUNTIME_MULTI_THREAD, 1);
        script s;
        int out = -1;
        nested_result = 1;
        ck_assert_int_eq(block_on_script(nested_rt, bodies[i], &s, NULL, &out), 0);
        ck_assert_int_eq(nested_result, 0);
        ck_assert_int_eq(nested_out, 5);
        ac_runtime_free(nested_rt);
    }
}
END_TEST

START_TEST(block_on_of_a_current_thread_runtime_already_running_is_busy)
{
    nested_rt = new_runtime(AC_RUNTIME_CURRENT_THREAD, 0);
    script s;
    int out = -1;
    ck_assert_int_eq(block_on_script(nested_rt, nested_body, &s, NULL, &out), 0);
    ck_assert_int_eq(nested_result, AC_EBUSY);
    ac_runtime_free(nested_rt);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Many tasks, stealing, LIFO, coop                                         */
/* ------------------------------------------------------------------------ */

static ac_poll_t hundred_body(script *s, ac_context *cx, int *out)
{
    int **hs = s->p;
    switch (s->step) {
    case 0:
        for (int i = 0; i < 100; i++)
            hs[i] = spawn_vt(&value_vt, i, 100, &cnt);
        s->step = 1;
        for (s->i = 0; s->i < 100; s->i++) {
            ac_join__init(&s->join, hs[s->i], &s->err);
            /* fallthrough */
    case 1:
            if (ac_join__poll(&s->join, cx, &s->value) == AC_PENDING)
                return AC_PENDING;
            ck_assert_int_eq(s->err, 0);
            s->sum += s->value;
        }
        *out = (int)s->sum;
        return AC_READY;
    }
    ac__bad_resume("script", (unsigned)s->step);
}

START_TEST(hundred_tasks_yielding_a_hundred_times_all_complete_on_two_workers)
{
    int *hs[100];
    script s;
    int out = 0;
    ck_assert_int_eq(run_script(AC_RUNTIME_MULTI_THREAD, 2, hundred_body, &s, hs, &out), 0);
    ck_assert_int_eq(out, 99 * 100 / 2);
    ck_assert_int_eq(atomic_load(&cnt.polls), 100 * 101);
    ck_assert_int_eq(atomic_load(&cnt.done), 100);
    ck_assert_int_eq(atomic_load(&cnt.drops), 100);
}
END_TEST

/* Worker threads carry the configured name, and 1 ns of timer slack (so
 * that the driver's timed sleeps end on time); the caller's thread keeps
 * its own slack. */
static char seen_name[32];
static int seen_slack;

static ac_poll_t name_poll(void *frame, ac_context *cx, void *out)
{
    (void)frame, (void)cx;
    pthread_getname_np(pthread_self(), seen_name, sizeof seen_name);
    seen_slack = prctl(PR_GET_TIMERSLACK, 0UL, 0UL, 0UL, 0UL);
    *(int *)out = 0;
    return AC_READY;
}

static const ac_future_vt name_vt = {
    sizeof(value_frame), _Alignof(value_frame), sizeof(int), name_poll, frame_drop, "name",
};

static ac_poll_t name_body(script *s, ac_context *cx, int *out)
{
    switch (s->step) {
    case 0:
        ac_join__init(&s->join, spawn_vt(&name_vt, 0, 0, &cnt), &s->err);
        s->step = 1;
        /* fallthrough */
    case 1:
        if (ac_join__poll(&s->join, cx, &s->value) == AC_PENDING)
            return AC_PENDING;
        *out = 0;
        return AC_READY;
    }
    ac__bad_resume("script", (unsigned)s->step);
}

START_TEST(worker_threads_carry_the_configured_name_and_no_timer_slack)
{
    int own_slack = prctl(PR_GET_TIMERSLACK, 0UL, 0UL, 0UL, 0UL);
    ac_runtime_config c;
    ac_runtime_config_init(&c);
    c.workers = 1;
    c.thread_stack_size = 1 << 20;
    char name[] = "sched-test-worker-long";
    c.thread_name = name;
    ac_runtime *rt;
    ck_assert_int_eq(ac_runtime_new(&c, &rt), 0);
    memset(name, 0, sizeof name); /* the runtime keeps its own copy */
    script s;
    int out = -1;
    ck_assert_int_eq(block_on_script(rt, name_body, &s, NULL, &out), 0);
    ck_assert_str_eq(seen_name, "sched-test-work"); /* 15 characters */
    ck_assert_int_eq(seen_slack, 1);
    ck_assert_int_eq(prctl(PR_GET_TIMERSLACK, 0UL, 0UL, 0UL, 0UL), own_slack);
    ck_assert_int_gt(own_slack, 1);
    ac_runtime_free(rt);
    ck_assert_int_eq(run_script(AC_RUNTIME_MULTI_THREAD, 1, name_body, &s, NULL, &out), 0);
    ck_assert_str_eq(seen_name, "asyncc-worker");
}
END_TEST

/*
 * Stealing: a spawner task spawns 100 short tasks, then a spinner, on its
 * own worker: the short ones wait in that worker's ring and the spinner
 * takes the LIFO slot, then spins without yielding until all of them have
 * completed (at most 10 s). Only the other worker, stealing from the ring,
 * can complete them.
 */
static atomic_int spinner_saw_all;

static ac_poll_t spinner_poll(void *frame, ac_context *cx, void *out)
{
    value_frame *f = frame;
    (void)cx;
    double until = now_s() + 10;
    while (atomic_load(&cnt.done) < 100 && now_s() < until)
        ;
    atomic_store(&spinner_saw_all, atomic_load(&cnt.done) == 100);
    f->ac_state = AC_STATE_RETURNED;
    *(int *)out = 0;
    return AC_READY;
}

static const ac_future_vt spinner_vt = {
    sizeof(value_frame), _Alignof(value_frame), sizeof(int), spinner_poll, frame_drop, "spinner",
};

static ac_poll_t spawner_poll(void *frame, ac_context *cx, void *out)
{
    value_frame *f = frame;
    (void)cx;
    for (int i = 0; i < 100; i++)
        ac_handle_detach(spawn_vt(&value_vt, i, 3, &cnt));
    ac_handle_detach(spawn_vt(&spinner_vt, 0, 0, &cnt));
    f->ac_state = AC_STATE_RETURNED;
    *(int *)out = 0;
    return AC_READY;
}

static const ac_future_vt spawner_vt = {
    sizeof(value_frame), _Alignof(value_frame), sizeof(int), spawner_poll, frame_drop, "spawner",
};

static ac_poll_t steal_body(script *s, ac_context *cx, int *out)
{
    switch (s->step) {
    case 0:
        ac_handle_detach(spawn_vt(&spawner_vt, 0, 0, &cnt));
        s->step = 1;
        /* fallthrough */
    case 1:
        if (!atomic_load(&spinner_saw_all) && atomic_load(&cnt.done) < 100) {
            sched_yield();
            ac_waker_wake_by_ref(cx->waker);
            return AC_PENDING;
        }
        *out = 0;
        return AC_READY;
    }
    ac__bad_resume("script", (unsigned)s->step);
}

START_TEST(a_worker_blocked_in_a_long_poll_does_not_stop_the_others)
{
    ac_runtime *rt = new_runtime(AC_RUNTIME_MULTI_THREAD, 2);
    script s;
    int out = -1;
    ck_assert_int_eq(block_on_script(rt, steal_body, &s, NULL, &out), 0);
    ac_runtime_free(rt); /* joins the workers: the spinner has finished */
    ck_assert_int_eq(atomic_load(&spinner_saw_all), 1);
}
END_TEST

/*
 * LIFO: on one worker, A and B wake each other forever, each wake putting
 * the other in the LIFO slot. A task C spawned from outside must still run:
 * C ends the game.
 */
typedef struct game {
    ac_waker a, b;        /* each player's waker, once it has played */
    bool has_a, has_b;    /* which are set (the worker is the only player) */
    atomic_long rounds;   /* wakes passed */
    atomic_int over;      /* set by C */
} game;

static game the_game;

static ac_poll_t player_poll(void *frame, ac_context *cx, void *out)
{
    value_frame *f = frame; /* v: 0 is A, 1 is B */
    (void)out;
    game *g = &the_game;
    if (atomic_load(&g->over)) {
        f->ac_state = AC_STATE_RETURNED;
        return AC_READY;
    }
    ac_waker *mine = f->v ? &g->b : &g->a, *theirs = f->v ? &g->a : &g->b;
    bool *has_mine = f->v ? &g->has_b : &g->has_a, *has_theirs = f->v ? &g->has_a : &g->has_b;
    if (*has_mine)
        ac_waker_drop(*mine);
    *mine = ac_waker_clone(cx->waker);
    *has_mine = true;
    if (*has_theirs) {
        *has_theirs = false;
        atomic_fetch_add(&g->rounds, 1);
        ac_waker_wake(*theirs);
    }
    f->ac_state = AC_STATE_FIRST;
    return AC_PENDING;
}

static void player_drop(void *frame) { ((value_frame *)frame)->ac_state = AC_STATE_RETURNED; }

static const ac_future_vt player_vt = {
    sizeof(value_frame), _Alignof(value_frame), 0, player_poll, player_drop, "player",
};

static ac_poll_t ender_poll(void *frame, ac_context *cx, void *out)
{
    (void)frame, (void)cx, (void)out;
    atomic_store(&the_game.over, 1);
    return AC_READY;
}

static const ac_future_vt ender_vt = {
    sizeof(value_frame), _Alignof(value_frame), 0, ender_poll, player_drop, "ender",
};

static ac_poll_t lifo_body(script *s, ac_context *cx, int *out)
{
    switch (s->step) {
    case 0:
        ac_handle_detach(spawn_vt(&player_vt, 0, 0, &cnt));
        ac_handle_detach(spawn_vt(&player_vt, 1, 0, &cnt));
        s->step = 1;
        /* fallthrough */
    case 1:
        if (atomic_load(&the_game.rounds) < 1000) {
            sched_yield();
            ac_waker_wake_by_ref(cx->waker);
            return AC_PENDING;
        }
        s->sum = atomic_load(&the_game.rounds);
        ac_join__init(&s->join, spawn_vt(&ender_vt, 0, 0, &cnt), &s->err);
        s->step = 2;
        /* fallthrough */
    case 2:
        if (ac_join__poll(&s->join, cx, NULL) == AC_PENDING)
            return AC_PENDING;
        *out = (int)(atomic_load(&the_game.rounds) - s->sum);
        return AC_READY;
    }
    ac__bad_resume("script", (unsigned)s->step);
}

START_TEST(a_ping_pong_pair_in_the_lifo_slot_cannot_starve_a_third_task)
{
    ac_runtime *rt = new_runtime(AC_RUNTIME_MULTI_THREAD, 1);
    script s;
    int rounds_before_c = -1;
    ck_assert_int_eq(block_on_script(rt, lifo_body, &s, NULL, &rounds_before_c), 0);
    ac_runtime_free(rt); /* the players' wakers are given back when they are cancelled */
    /* C waited behind a bounded number of rounds (the inject queue is looked
     * at every 61 turns of at most 3 LIFO polls each). */
    ck_assert_int_lt(rounds_before_c, 100000);
}
END_TEST

/* A task that always finds its work ready: only the budget makes it yield. */
static atomic_int stop_busy;
static atomic_int busy_first_run; /* units spent before the first exhaustion */

static ac_poll_t busy_poll(void *frame, ac_context *cx, void *out)
{
    value_frame *f = frame;
    int spent = 0;
    while (!atomic_load(&stop_busy)) {
        if (!ac_coop_consume(cx)) {
            if (atomic_load(&busy_first_run) == 0)
                atomic_store(&busy_first_run, spent);
            atomic_fetch_add(&cnt.yields, 1);
            ac_waker_wake_by_ref(cx->waker);
            return AC_PENDING;
        }
        spent++;
    }
    f->ac_state = AC_STATE_RETURNED;
    *(int *)out = 0;
    return AC_READY;
}

static const ac_future_vt busy_vt = {
    sizeof(value_frame), _Alignof(value_frame), sizeof(int), busy_poll, frame_drop, "busy",
};

static ac_poll_t stopper_poll(void *frame, ac_context *cx, void *out)
{
    (void)frame, (void)cx;
    atomic_store(&stop_busy, 1);
    *(int *)out = 0;
    return AC_READY;
}

static const ac_future_vt stopper_vt = {
    sizeof(value_frame), _Alignof(value_frame), sizeof(int), stopper_poll, frame_drop, "stopper",
};

static ac_poll_t coop_body(script *s, ac_context *cx, int *out)
{
    switch (s->step) {
    case 0:
        ac_join__init(&s->join, spawn_vt(&busy_vt, 0, 0, &cnt), &s->err);
        ac_handle_detach(spawn_vt(&stopper_vt, 0, 0, &cnt)); /* queued behind busy */
        s->step = 1;
        /* fallthrough */
    case 1:
        if (ac_join__poll(&s->join, cx, &s->value) == AC_PENDING)
            return AC_PENDING;
        *out = 0;
        return AC_READY;
    }
    ac__bad_resume("script", (unsigned)s->step);
}

START_TEST(the_coop_budget_makes_a_task_that_never_waits_yield)
{
    ac_runtime_config c;
    ac_runtime_config_init(&c);
    c.flavor = AC_RUNTIME_CURRENT_THREAD;
    c.coop_budget = 10;
    ac_runtime *rt;
    ck_assert_int_eq(ac_runtime_new(&c, &rt), 0);
    script s;
    int out = -1;
    ck_assert_int_eq(block_on_script(rt, coop_body, &s, NULL, &out), 0);
    ac_runtime_free(rt);
    ck_assert_int_eq(atomic_load(&busy_first_run), 10);
    ck_assert_int_ge(atomic_load(&cnt.yields), 1);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Wakes from foreign threads                                               */
/* ------------------------------------------------------------------------ */

/*
 * Four threads outside the runtime each play ping-pong with one task: on
 * every poll the task hands a waker clone to its thread, which wakes it at
 * once, racing with the workers' way to sleep. 25,000 rounds each: 100,000
 * wakes, and a lost one would hang the test.
 */
enum { FOREIGN = 4, FOREIGN_ROUNDS = 25000 };

typedef struct mailbox {
    pthread_mutex_t mu; /* guards the fields below */
    pthread_cond_t cv;  /* signalled when full or done changes */
    ac_waker waker;     /* the clone handed over */
    bool full;          /* waker holds a clone not yet taken */
    bool done;          /* no more clones will come */
    long woken;         /* wakes sent */
} mailbox;

static mailbox boxes[FOREIGN];

static void *foreign_main(void *arg)
{
    mailbox *box = arg;
    pthread_mutex_lock(&box->mu);
    for (;;) {
        while (!box->full && !box->done)
            pthread_cond_wait(&box->cv, &box->mu);
        if (!box->full)
            break;
        ac_waker w = box->waker;
        box->full = false;
        box->woken++;
        pthread_mutex_unlock(&box->mu);
        if (box->woken % 2)
            ac_waker_wake(w);
        else {
            ac_waker_wake_by_ref(&w);
            ac_waker_drop(w);
        }
        pthread_mutex_lock(&box->mu);
    }
    pthread_mutex_unlock(&box->mu);
    return NULL;
}

static ac_poll_t pinger_poll(void *frame, ac_context *cx, void *out)
{
    value_frame *f = frame; /* v: the mailbox; yields: rounds left */
    mailbox *box = &boxes[f->v];
    if (f->yields-- == 0) {
        pthread_mutex_lock(&box->mu);
        box->done = true;
        pthread_cond_signal(&box->cv);
        pthread_mutex_unlock(&box->mu);
        f->ac_state = AC_STATE_RETURNED;
        *(int *)out = f->v;
        return AC_READY;
    }
    pthread_mutex_lock(&box->mu);
    ck_assert(!box->full);
    box->waker = ac_waker_clone(cx->waker);
    box->full = true;
    pthread_cond_signal(&box->cv);
    pthread_mutex_unlock(&box->mu);
    f->ac_state = AC_STATE_FIRST;
    return AC_PENDING;
}

static const ac_future_vt pinger_vt = {
    sizeof(value_frame), _Alignof(value_frame), sizeof(int), pinger_poll, frame_drop, "pinger",
};

static ac_poll_t foreign_body(script *s, ac_context *cx, int *out)
{
    int **hs = s->p;
    switch (s->step) {
    case 0:
        for (int i = 0; i < FOREIGN; i++)
            hs[i] = spawn_vt(&pinger_vt, i, FOREIGN_ROUNDS, &cnt);
        s->step = 1;
        /* fallthrough */
    case 1:
        return join_all(s, cx, hs, FOREIGN, -1, out);
    }
    ac__bad_resume("script", (unsigned)s->step);
}

START_TEST(wakes_from_foreign_threads_are_not_lost)
{
    for (int flavor = 0; flavor <= 1; flavor++) {
        pthread_t th[FOREIGN];
        for (int i = 0; i < FOREIGN; i++) {
            boxes[i] = (mailbox){.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
            ck_assert_int_eq(pthread_create(&th[i], NULL, foreign_main, &boxes[i]), 0);
        }
        int *hs[FOREIGN];
        script s;
        int out = -1;
        ck_assert_int_eq(run_script(flavor, 2, foreign_body, &s, hs, &out), 0);
        long total = 0;
        for (int i = 0; i < FOREIGN; i++) {
            pthread_join(th[i], NULL);
            total += boxes[i].woken;
        }
        ck_assert_int_eq(total, FOREIGN * FOREIGN_ROUNDS);
    }
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Shutdown                                                                 */
/* ------------------------------------------------------------------------ */

/* async(void) spawn_in_drop(): pending forever; its drop spawns a task
 * (cancelled at once: the runtime is shutting down) and detaches it. */
static atomic_int drop_spawn_err = 1;

static void spawn_in_drop_drop(void *frame)
{
    never_drop(frame);
    never_frame *f = frame;
    int *h = spawn_vt(&value_vt, 1, 0, f->c);
    struct ac_join__frame j;
    int err = 1, v = -1;
    ac_join__init(&j, h, &err);
    ac_context cx = {.waker = ac_waker_noop()};
    /* Cancelled already: ready at once. (No ck_assert here: see below.) */
    atomic_store(&drop_spawn_err, ac_join__poll(&j, &cx, &v) == AC_READY ? err : 1);
}

static const ac_future_vt spawn_in_drop_vt = {
    sizeof(never_frame), _Alignof(never_frame), 0, never_poll, spawn_in_drop_drop, "spawn_in_drop",
};

/* Leaves the runtime with tasks in every state, then returns. */
static ac_poll_t leave_tasks_body(script *s, ac_context *cx, int *out)
{
    switch (s->step) {
    case 0:
        ac_handle_detach(spawn_never(true, &cnt));  /* waiting, waker kept, detached */
        (void)spawn_never(false, &cnt);             /* orphaned, handle never consumed */
        (void)spawn_vt(&value_vt, 5, 0, &cnt);    /* completes; handle never consumed */
        ac_handle_detach(spawn_vt(&value_vt, 6, 1000000000, &cnt)); /* yields forever */
        {
            never_frame *f = ac__task_frame_new(&spawn_in_drop_vt);
            memset(f, 0, sizeof *f);
            f->c = &cnt;
            ac_handle_detach(ac__spawn(f));
        }
        s->step = 1;
        /* fallthrough */
    case 1:
        AWAIT_AT_LEAST(&cnt.polls, 6); /* each has run at least once */
        (void)spawn_vt(&value_vt, 7, 0, &cnt); /* queued, never polled */
        *out = 0;
        return AC_READY;
    }
    ac__bad_resume("script", (unsigned)s->step);
}

START_TEST(shutdown_cancels_remaining_tasks_and_runs_their_drops)
{
    for (int flavor = 0; flavor <= 1; flavor++) {
        memset(&cnt, 0, sizeof cnt);
        atomic_store(&drop_spawn_err, 1);
        ac_runtime *rt = new_runtime(flavor, 2);
        script s;
        int out = -1;
        ck_assert_int_eq(block_on_script(rt, leave_tasks_body, &s, NULL, &out), 0);
        ac_runtime_free(rt);
        /* Six futures and the one spawned by a drop: one drop each (the
         * completed one at completion, the unpolled one without a poll). */
        ck_assert_int_eq(atomic_load(&cnt.drops), 7);
        ck_assert_int_eq(atomic_load(&drop_spawn_err), AC_ECANCELED);
    }
}
END_TEST

START_TEST(shutdown_frees_the_memory_of_every_task)
{
    /* The current-thread runtime allocates everything on this thread, so
     * glibc's main-arena statistics see it all. They count the blocks that
     * glibc keeps cached for reuse as in use, so the first rounds settle
     * that cache; then a round must give back exactly what it took. */
    for (int round = 0; round < 24; round++) {
        /* No ck_assert in between: Check allocates for its own bookkeeping. */
        ac_runtime_config c;
        ac_runtime_config_init(&c);
        c.flavor = AC_RUNTIME_CURRENT_THREAD;
        ac_runtime *rt = NULL;
        script s;
        int out = -1;
        struct mallinfo2 before = mallinfo2();
        int made = ac_runtime_new(&c, &rt);
        int ran = made ? made : block_on_script(rt, leave_tasks_body, &s, NULL, &out);
        ac_runtime_free(rt);
        struct mallinfo2 after = mallinfo2();
        ck_assert_int_eq(made, 0);
        ck_assert_int_eq(ran, 0);
        if (round >= 20)
            ck_assert_uint_eq(after.uordblks, before.uordblks);
    }
}
END_TEST

/* A task that keeps a clone of its own waker where the runtime cannot see
 * it, as a leaf future with a bug, or a foreign library, might. */
static ac_waker outliving;

static ac_poll_t outlive_poll(void *frame, ac_context *cx, void *out)
{
    value_frame *f = frame;
    outliving = ac_waker_clone(cx->waker);
    f->ac_state = AC_STATE_RETURNED;
    *(int *)out = f->v;
    return AC_READY;
}

static const ac_future_vt outlive_vt = {
    sizeof(value_frame), _Alignof(value_frame), sizeof(int), outlive_poll, frame_drop, "outlive",
};

static ac_poll_t outlive_body(script *s, ac_context *cx, int *out)
{
    switch (s->step) {
    case 0:
        /* Neighbours in the same slab chunk, one joined and one not. */
        ac_join__init(&s->join, spawn_vt(&plain_value_vt, 1, 0, &cnt), &s->err);
        (void)spawn_vt(&plain_value_vt, 2, 0, &cnt);
        ac_handle_detach(spawn_vt(&outlive_vt, 3, 0, &cnt));
        s->step = 1;
        /* fallthrough */
    case 1:
        if (ac_join__poll(&s->join, cx, &s->value) == AC_PENDING)
            return AC_PENDING;
        *out = s->value;
        return AC_READY;
    }
    ac__bad_resume("script", (unsigned)s->step);
}

START_TEST(a_waker_kept_past_shutdown_frees_its_task_when_dropped)
{
    /* As in the test above, the current-thread runtime keeps all of it on
     * this thread for glibc's statistics; the waker is dropped after the
     * runtime is freed, and only then is everything given back. */
    for (int round = 0; round < 24; round++) {
        int flavor = round < 4 ? AC_RUNTIME_MULTI_THREAD : AC_RUNTIME_CURRENT_THREAD;
        ac_runtime_config c;
        ac_runtime_config_init(&c);
        c.flavor = flavor;
        c.workers = 2;
        ac_runtime *rt = NULL;
        script s;
        int out = -1;
        outliving = (ac_waker){NULL, NULL};
        struct mallinfo2 before = mallinfo2();
        int made = ac_runtime_new(&c, &rt);
        int ran = made ? made : block_on_script(rt, outlive_body, &s, NULL, &out);
        ac_runtime_free(rt);
        bool kept = outliving.vtable != NULL;
        /* Waking a completed task does nothing; the drop frees it. */
        if (kept) {
            ac_waker_wake_by_ref(&outliving);
            ac_waker_drop(outliving);
        }
        struct mallinfo2 after = mallinfo2();
        ck_assert_int_eq(made, 0);
        ck_assert_int_eq(ran, 0);
        ck_assert_int_eq(out, 1);
        ck_assert(kept);
        if (round >= 20)
            ck_assert_uint_eq(after.uordblks, before.uordblks);
    }
}
END_TEST

/*
 * A wake from outside the runtime is still in the runtime after it has
 * queued the task: it wakes the runtime's thread next. Here it sleeps in
 * between (the test hook), while the runtime's thread, which never parks,
 * takes the task, runs it, finishes block_on and frees the runtime.
 * ac_runtime_free must wait for the wake to be done with the runtime; it
 * used to free it under the waking thread (which TSan caught, rarely, in
 * wakes_from_foreign_threads_are_not_lost).
 */
static ac_waker late_waker;          /* the task's waker, for the foreign thread */
static atomic_bool late_waker_ready; /* late_waker is set */
static pthread_t late_waking_thread;
static double late_sleep_end;        /* when the hook's sleep (in the wake) ended */

static void sleep_after_queueing(void)
{
    if (pthread_equal(pthread_self(), late_waking_thread)) {
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
        late_sleep_end = now_s();
    }
}

static void *late_waking_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&late_waker_ready))
        sched_yield();
    ac_waker_wake(late_waker);
    return NULL;
}

/* async(int) woken_once(): pending with its waker published, then ready. */
static ac_poll_t woken_once_poll(void *frame, ac_context *cx, void *out)
{
    value_frame *f = frame;
    if (f->ac_state == AC_STATE_UNRESUMED) {
        f->ac_state = AC_STATE_FIRST;
        late_waker = ac_waker_clone(cx->waker);
        atomic_store(&late_waker_ready, true);
        return AC_PENDING;
    }
    f->ac_state = AC_STATE_RETURNED;
    *(int *)out = f->v;
    return AC_READY;
}

static const ac_future_vt woken_once_vt = {
    sizeof(value_frame), _Alignof(value_frame), sizeof(int), woken_once_poll, frame_drop, "woken_once",
};

/* Spawns woken_once and yields (never parks) until it has finished. */
static ac_poll_t late_wake_body(script *s, ac_context *cx, int *out)
{
    switch (s->step) {
    case 0:
        s->p = spawn_vt(&woken_once_vt, 7, 0, &cnt);
        s->step = 1;
        /* fallthrough */
    case 1:
        if (!ac_handle_is_finished(s->p)) {
            ac_waker_wake_by_ref(cx->waker);
            return AC_PENDING;
        }
        ac_join__init(&s->join, s->p, &s->err);
        s->step = 2;
        /* fallthrough */
    case 2:
        if (ac_join__poll(&s->join, cx, &s->value) == AC_PENDING)
            return AC_PENDING;
        *out = s->err ? -1 : s->value;
        return AC_READY;
    }
    ac__bad_resume("script", (unsigned)s->step);
}

START_TEST(freeing_a_runtime_waits_for_a_wake_from_outside_to_leave_it)
{
    ck_assert_int_eq(pthread_create(&late_waking_thread, NULL, late_waking_main, NULL), 0);
    ac__test_after_outside_queue = sleep_after_queueing;
    script s;
    int out = -1;
    ck_assert_int_eq(run_script(AC_RUNTIME_CURRENT_THREAD, 0, late_wake_body, &s, NULL, &out), 0);
    /* Not whether ac_waker_wake has returned: the thread may not have
     * noted that yet when the free, which waited for the wake to leave the
     * runtime, returns (a rare failure of this test's first version). */
    bool done_when_freed = late_sleep_end > 0;
    ac__test_after_outside_queue = NULL;
    pthread_join(late_waking_thread, NULL);
    ck_assert_int_eq(out, 7);
    ck_assert(done_when_freed);
}
END_TEST

/* The same for a wake of a current-thread block_on's root: block_on must
 * not return while the wake is still in the runtime, which its caller may
 * free at once. A spawned task that keeps yielding keeps the runtime's
 * thread from parking, so it finds the queued root by itself. */
static ac_poll_t yield_forever_poll(void *frame, ac_context *cx, void *out)
{
    (void)frame;
    (void)out;
    ac_waker_wake_by_ref(cx->waker);
    return AC_PENDING;
}

static const ac_future_vt yield_forever_vt = {
    sizeof(value_frame), _Alignof(value_frame), sizeof(int), yield_forever_poll, frame_drop,
    "yield_forever",
};

static ac_poll_t late_root_body(script *s, ac_context *cx, int *out)
{
    switch (s->step) {
    case 0:
        ac_handle_detach(spawn_vt(&yield_forever_vt, 0, 0, &cnt));
        late_waker = ac_waker_clone(cx->waker);
        s->step = 1;
        atomic_store(&late_waker_ready, true);
        return AC_PENDING;
    case 1:
        *out = 9;
        return AC_READY;
    }
    ac__bad_resume("script", (unsigned)s->step);
}

START_TEST(block_on_returns_after_a_wake_of_its_root_from_outside_has_left)
{
    ck_assert_int_eq(pthread_create(&late_waking_thread, NULL, late_waking_main, NULL), 0);
    ac__test_after_outside_queue = sleep_after_queueing;
    ac_runtime *rt = new_runtime(AC_RUNTIME_CURRENT_THREAD, 0);
    script s;
    int out = -1;
    ck_assert_int_eq(block_on_script(rt, late_root_body, &s, NULL, &out), 0);
    double returned = now_s();
    ac_runtime_free(rt);
    ac__test_after_outside_queue = NULL;
    pthread_join(late_waking_thread, NULL);
    ck_assert_int_eq(out, 9);
    ck_assert(late_sleep_end > 0 && returned >= late_sleep_end);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* The driver hooks                                                         */
/* ------------------------------------------------------------------------ */

/* A stand-in for the time driver: one timer, armed by a future. */
typedef struct fake_driver {
    pthread_mutex_t mu;   /* guards the fields below */
    double deadline;      /* when the armed timer is due (now_s clock) */
    bool armed;           /* a waker waits for fire_due */
    ac_waker waker;       /* that waker */
    atomic_int asked;     /* next_deadline_ns calls */
    atomic_int fired;     /* fire_due calls that woke the waker */
    atomic_int idle_seen; /* next_deadline_ns calls that saw ac__runtime_all_idle */
} fake_driver;

static fake_driver fake = {.mu = PTHREAD_MUTEX_INITIALIZER};

static int64_t fake_next(void *ctx)
{
    fake_driver *d = ctx;
    atomic_fetch_add(&d->asked, 1);
    ac_runtime *rt = ac_runtime_current();
    ck_assert_ptr_nonnull(rt);
    if (ac__runtime_all_idle(rt))
        atomic_fetch_add(&d->idle_seen, 1);
    pthread_mutex_lock(&d->mu);
    int64_t r = -1;
    if (d->armed) {
        double left = d->deadline - now_s();
        r = left <= 0 ? 0 : (int64_t)(left * 1e9) + 1;
    }
    pthread_mutex_unlock(&d->mu);
    return r;
}

static void fake_fire(void *ctx)
{
    fake_driver *d = ctx;
    pthread_mutex_lock(&d->mu);
    bool wake = d->armed && now_s() >= d->deadline;
    ac_waker w = d->waker;
    if (wake)
        d->armed = false;
    pthread_mutex_unlock(&d->mu);
    if (wake) {
        atomic_fetch_add(&d->fired, 1);
        ac_waker_wake(w);
    }
}

static const ac__driver fake_hooks = {fake_next, fake_fire, &fake};

/* async(int) fake_sleep(int ms): arms the fake timer, ready once fired. */
static ac_poll_t fake_sleep_poll(void *frame, ac_context *cx, void *out)
{
    value_frame *f = frame;
    if (f->ac_state == AC_STATE_FIRST) {
        pthread_mutex_lock(&fake.mu);
        bool armed = fake.armed;
        pthread_mutex_unlock(&fake.mu);
        if (!armed) {
            f->ac_state = AC_STATE_RETURNED;
            *(int *)out = 1;
            return AC_READY;
        }
        return AC_PENDING;
    }
    pthread_mutex_lock(&fake.mu);
    fake.deadline = now_s() + f->v / 1000.0;
    fake.waker = ac_waker_clone(cx->waker);
    fake.armed = true;
    pthread_mutex_unlock(&fake.mu);
    f->ac_state = AC_STATE_FIRST;
    ac__runtime_unpark_one(ac_runtime_current()); /* an earlier deadline */
    return AC_PENDING;
}

static const ac_future_vt fake_sleep_vt = {
    sizeof(value_frame), _Alignof(value_frame), sizeof(int), fake_sleep_poll, frame_drop,
    "fake_sleep",
};

static ac_poll_t sleep_body(script *s, ac_context *cx, int *out)
{
    switch (s->step) {
    case 0:
        ac_join__init(&s->join, spawn_vt(&fake_sleep_vt, 20, 0, &cnt), &s->err);
        s->step = 1;
        /* fallthrough */
    case 1:
        if (ac_join__poll(&s->join, cx, &s->value) == AC_PENDING)
            return AC_PENDING;
        *out = s->value;
        return AC_READY;
    }
    ac__bad_resume("script", (unsigned)s->step);
}

START_TEST(a_parked_thread_holding_the_driver_wakes_for_its_deadline_and_fires)
{
    for (int flavor = 0; flavor <= 1; flavor++) {
        atomic_store(&fake.fired, 0);
        ac_runtime *rt = new_runtime(flavor, 2);
        ac__runtime_set_driver(rt, &fake_hooks);
        script s;
        int out = -1;
        /* Nothing but the driver can wake the sleeping task. */
        ck_assert_int_eq(block_on_script(rt, sleep_body, &s, NULL, &out), 0);
        ck_assert_int_eq(out, 1);
        ck_assert_int_eq(atomic_load(&fake.fired), 1);
        ac__runtime_set_driver(rt, NULL);
        ac_runtime_free(rt);
    }
}
END_TEST

START_TEST(an_idle_runtime_says_so_to_its_driver)
{
    atomic_store(&fake.idle_seen, 0);
    ac_runtime *rt = new_runtime(AC_RUNTIME_MULTI_THREAD, 2);
    ac__runtime_set_driver(rt, &fake_hooks);
    /* Both workers go to sleep; the last one wakes the driver's holder,
     * which asks again and sees an idle runtime. */
    double until = now_s() + 10;
    while (atomic_load(&fake.idle_seen) == 0 && now_s() < until)
        sched_yield();
    ck_assert_int_ge(atomic_load(&fake.idle_seen), 1);
    ck_assert_int_eq(ac__runtime_all_idle(rt), 1);
    /* unpark_one makes the holder ask again. */
    int asked = atomic_load(&fake.asked);
    ac__runtime_unpark_one(rt);
    until = now_s() + 10;
    while (atomic_load(&fake.asked) == asked && now_s() < until)
        sched_yield();
    ck_assert_int_gt(atomic_load(&fake.asked), asked);
    ac__runtime_set_driver(rt, NULL);
    ac_runtime_free(rt);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Stress                                                                   */
/* ------------------------------------------------------------------------ */

enum { MILLION = 1000000 };

static ac_poll_t million_body(script *s, ac_context *cx, int *out)
{
    int **hs = s->p;
    switch (s->step) {
    case 0:
        for (int i = 0; i < MILLION; i++)
            hs[i] = spawn_vt(&plain_value_vt, i & 0xffff, 0, &cnt);
        s->step = 1;
        /* fallthrough */
    case 1:
        return join_all(s, cx, hs, MILLION, 0xffff, out);
    }
    ac__bad_resume("script", (unsigned)s->step);
}

enum { SPAWNING_THREADS = 24, PER_THREAD = 3000 };

/* Spawns PER_THREAD tasks (some yielding), then joins them all. */
static ac_poll_t per_thread_body(script *s, ac_context *cx, int *out)
{
    int **hs = s->p;
    switch (s->step) {
    case 0:
        for (int i = 0; i < PER_THREAD; i++)
            hs[i] = spawn_vt(&plain_value_vt, i, i % 3, &cnt);
        s->step = 1;
        /* fallthrough */
    case 1:
        return join_all(s, cx, hs, PER_THREAD, -1, out);
    }
    ac__bad_resume("script", (unsigned)s->step);
}

static atomic_int gate_held;  /* the gate task holds the worker */
static atomic_bool gate_open; /* it may return */

/* async(int) gate(void): holds its worker until gate_open; returns 0. */
static ac_poll_t gate_poll(void *frame, ac_context *cx, void *out)
{
    value_frame *f = frame;
    (void)cx;
    atomic_store(&gate_held, 1);
    while (!atomic_load(&gate_open))
        sched_yield();
    f->ac_state = AC_STATE_RETURNED;
    *(int *)out = 0;
    return AC_READY;
}

static const ac_future_vt gate_vt = {
    sizeof(value_frame), _Alignof(value_frame), sizeof(int), gate_poll, frame_drop, "gate",
};

/*
 * Start order: a burst of spawns from a block_on thread, faster than two
 * workers can start them (each first poll spins a while), overflows the
 * thread's spawner ring into the inject queue. The tasks must still start
 * in about the order they were spawned. Counted against their spawn order,
 * with BURST_LATE (two rings) of slack: tasks started early (after fewer
 * tasks than were spawned before them; 2523-3564 of 20,000 when the workers
 * took a ring before its overflow, 0-7 since), and tasks started late (then
 * 10677-14453, since 0-784). A worker preempted while it holds a run of
 * tasks (up to half a ring) starts that run late, so the bound on late
 * starts is loose; no preemption makes one start early by more than the
 * runs that two workers hold.
 *
 * Then the same burst of tasks that, once started, wake themselves
 * REWAKES times, so that the workers keep pushing to their own rings while
 * the burst goes on (as a worker does that fires the timers of the burst's
 * first tasks). A worker's look at the inject queue every GLOBAL_INTERVAL
 * ticks used to take a fair share into its ring, filling it, so that its
 * next push moved the ring's older half to the back of the inject queue,
 * behind the rest of the burst: of 20,000, 10,900-14,900 started early and
 * 2,500-4,700 late (8 runs). Since that look takes one task, as Tokio's
 * does: 0 early, 0-608 late (18 runs).
 *
 * Then the plain burst on one worker (so that no steal reorders it), with
 * every TRIGGER_EVERY-th task waking PARKED tasks that wait beside it, all
 * at once (as the worker that fires a ms of timers does). That overflows
 * the worker's ring, which holds tasks of the burst it took: the ring's
 * older half used to go to the back of the inject queue, behind the rest of
 * the burst, to start thousands of places late (346-1,081 of 20,000 more
 * than two rings late, 8 runs). A worker's overflow now goes ahead of the
 * spawner's: none late (8 runs alone, 12 two at a time).
 *
 * Last, as when the spawning thread runs far ahead of a worker that is
 * preempted (the plain burst above, under load: 92-104 late in 2 of 30 runs
 * beside three busy loops; none in 30 since): the worker is held by a gate
 * task while the first HELD_FIRST tasks are spawned; it takes half a ring of
 * them, and the first, a trigger, overflows its ring twice; task 2 holds the
 * worker again while the rest of the burst is queued; task 10, a trigger,
 * overflows the ring once more, with tasks 11-127 in its older half. Two of a
 * worker's overflow segments could go ahead of the spawners' in a row, and
 * the third went to the back of the queue, behind the whole burst: 116 of
 * those tasks started more than two rings late (the same every run). The
 * workers' overflow now has a list of its own that goes first, with a turn
 * for the spawners' list after every two of its segments: none late.
 */
enum {
    BURST = 20000,
    BURST_FIRST = 64,
    BURST_LATE = 2 * 256,
    REWAKES = 2,
    PARKED = 300,
    TRIGGER_EVERY = 250,
    HELD_FIRST = 200
};

static int *start_order;        /* start_order[i]: how many tasks started before task i */
static atomic_int started;      /* tasks started so far */
static int burst_rewakes;       /* the `yields` of the burst's tasks */
static bool burst_triggers;     /* every TRIGGER_EVERY-th task wakes the parked ones */
static bool burst_held;         /* the scenario with gates, above */
static atomic_int parked_ready; /* parked tasks that keep a waker */
static atomic_int gate2_held;   /* held: task 2 holds the worker */
static atomic_bool gate2_open;  /* it may go on */

/* async(int) parked(int v): keeps its waker in parked_waker[v - BURST] and
 * waits, until parked_stop; returns v. */
static pthread_mutex_t parked_mu = PTHREAD_MUTEX_INITIALIZER;
static ac_waker parked_waker[PARKED]; /* vtable NULL: none yet */
static atomic_bool parked_stop;

static ac_poll_t parked_poll(void *frame, ac_context *cx, void *out)
{
    value_frame *f = frame;
    if (atomic_load(&parked_stop)) {
        f->ac_state = AC_STATE_RETURNED;
        *(int *)out = f->v;
        return AC_READY;
    }
    pthread_mutex_lock(&parked_mu);
    ac_waker *kept = &parked_waker[f->v - BURST];
    if (kept->vtable)
        ac_waker_drop(*kept);
    else
        atomic_fetch_add(&parked_ready, 1);
    *kept = ac_waker_clone(cx->waker);
    pthread_mutex_unlock(&parked_mu);
    f->ac_state = AC_STATE_FIRST;
    return AC_PENDING;
}

static const ac_future_vt parked_vt = {
    sizeof(value_frame), _Alignof(value_frame), sizeof(int), parked_poll, frame_drop, "parked",
};

static void wake_parked(void)
{
    pthread_mutex_lock(&parked_mu);
    for (int k = 0; k < PARKED; k++)
        if (parked_waker[k].vtable)
            ac_waker_wake_by_ref(&parked_waker[k]);
    pthread_mutex_unlock(&parked_mu);
}

/* async(int) starter(int i, long rewakes): records when it started, spins,
 * wakes itself `rewakes` times, returns i. */
static ac_poll_t starter_poll(void *frame, ac_context *cx, void *out)
{
    value_frame *f = frame;
    if (f->ac_state == AC_STATE_UNRESUMED) {
        start_order[f->v] = atomic_fetch_add(&started, 1);
        for (volatile int spin = 0; spin < 400; spin++) {
        }
        if (burst_held && f->v == 2) {
            atomic_store(&gate2_held, 1);
            while (!atomic_load(&gate2_open))
                sched_yield();
        }
        if (burst_triggers && (f->v % TRIGGER_EVERY == TRIGGER_EVERY - 1 ||
                               (burst_held && (f->v == 0 || f->v == 10))))
            wake_parked();
        f->ac_state = AC_STATE_FIRST;
    }
    if (f->yields > 0) {
        f->yields--;
        ac_waker_wake_by_ref(cx->waker);
        return AC_PENDING;
    }
    f->ac_state = AC_STATE_RETURNED;
    *(int *)out = f->v;
    return AC_READY;
}

static const ac_future_vt starter_vt = {
    sizeof(value_frame), _Alignof(value_frame), sizeof(int), starter_poll, frame_drop, "starter",
};

static ac_poll_t burst_body(script *s, ac_context *cx, int *out)
{
    int **hs = s->p;
    switch (s->step) {
    case 0:
        if (burst_triggers)
            for (int k = 0; k < PARKED; k++)
                hs[BURST + k] = spawn_vt(&parked_vt, BURST + k, 0, &cnt);
        s->step = 1;
        /* fallthrough */
    case 1:
        if (burst_held) {
            /* Once every parked task waits, the gate holds the worker. */
            AWAIT_AT_LEAST(&parked_ready, PARKED);
            ac_handle_detach(spawn_vt(&gate_vt, 0, 0, &cnt));
        }
        s->step = 2;
        /* fallthrough */
    case 2:
        if (burst_held)
            AWAIT_AT_LEAST(&gate_held, 1);
        /* A first few, then the rest once a worker is at work on them, so
         * that the workers start tasks while the burst goes on; held, the
         * rest once task 2 holds the worker. */
        for (int i = 0; i < (burst_held ? HELD_FIRST : BURST_FIRST); i++)
            hs[i] = spawn_vt(&starter_vt, i, burst_rewakes, &cnt);
        if (burst_held) {
            ac__spawn_flush();
            atomic_store(&gate_open, true);
        }
        s->step = 3;
        /* fallthrough */
    case 3:
        AWAIT_AT_LEAST(burst_held ? &gate2_held : &started, 1);
        for (int i = burst_held ? HELD_FIRST : BURST_FIRST; i < BURST; i++)
            hs[i] = spawn_vt(&starter_vt, i, burst_rewakes, &cnt);
        if (burst_held) {
            ac__spawn_flush();
            atomic_store(&gate2_open, true);
        }
        s->step = 4;
        /* fallthrough */
    case 4:
        if (join_all(s, cx, hs, BURST, -1, out) == AC_PENDING)
            return AC_PENDING;
        if (*out || !burst_triggers)
            return AC_READY;
        atomic_store(&parked_stop, true);
        wake_parked();
        s->step = 5;
        /* fallthrough */
    case 5:
        return join_all(s, cx, hs, BURST + PARKED, -1, out);
    }
    ac__bad_resume("script", (unsigned)s->step);
}

/* Runs the burst on `workers` workers; checks how many tasks started early
 * and late. */
static void check_burst(unsigned workers, int rewakes, bool triggers, bool held, int late_limit)
{
    int **hs = malloc((BURST + PARKED) * sizeof *hs);
    start_order = malloc(BURST * sizeof *start_order);
    ck_assert_ptr_nonnull(hs);
    ck_assert_ptr_nonnull(start_order);
    burst_rewakes = rewakes;
    burst_triggers = triggers;
    burst_held = held;
    script s;
    int out = -1;
    ck_assert_int_eq(run_script(AC_RUNTIME_MULTI_THREAD, workers, burst_body, &s, hs, &out), 0);
    ck_assert_int_eq(out, 0);
    ck_assert_int_eq(atomic_load(&started), BURST);
    int late = 0, early = 0;
    for (int i = 0; i < BURST; i++) {
        late += start_order[i] > i + BURST_LATE;
        early += start_order[i] + BURST_LATE < i;
    }
    printf("burst of %d spawns waking themselves %d times%s%s: %d started more than %d places "
           "early, %d late\n",
           BURST, rewakes, triggers ? ", some waking 300 others" : "",
           held ? ", queued while the worker is held" : "", early, BURST_LATE, late);
    fflush(stdout);
    ck_assert_int_lt(early, BURST / 100);
    ck_assert_int_lt(late, late_limit);
    free(start_order);
    free(hs);
}

START_TEST(a_burst_of_spawns_from_outside_starts_in_about_spawn_order)
{
    check_burst(2, 0, false, false, BURST / 4);
}
END_TEST

START_TEST(a_burst_of_spawns_that_wake_themselves_starts_in_about_spawn_order)
{
    check_burst(2, REWAKES, false, false, BURST / 10);
}
END_TEST

START_TEST(a_burst_of_spawns_that_overflow_worker_rings_starts_in_about_spawn_order)
{
    check_burst(1, 0, true, false, BURST / 200);
}
END_TEST

START_TEST(a_burst_queued_while_its_worker_is_held_starts_in_about_spawn_order)
{
    check_burst(1, 0, true, true, BURST / 200);
}
END_TEST

/*
 * Spawns from outside are not held back for ever by a worker whose ring
 * overflows all the time: while the only worker is held in a task that
 * waits for a gate, the block_on thread spawns a flood task and then
 * OUTSIDE tasks (two rings' worth: some stay in its spawner ring, some go
 * to the inject queue's segments), and opens the gate; the flood spawns
 * FLOOD_FANOUT children a round, so that its ring overflows twice a round.
 * The outside tasks start while the flood goes on (all by round 497 of
 * FLOOD_ROUNDS). They did not before, and do not if the spawner rings' turn
 * every GLOBAL_INTERVAL ticks goes to the segments (which the flood keeps
 * full): then they start only once it has ended. (The flood's ring never
 * empties, so the worker takes from the segments only on those turns; the
 * next test covers the turns among the segments.)
 */
enum { FLOOD_FANOUT = 300, FLOOD_ROUNDS = 3000, OUTSIDE = 600 };

static atomic_int outside_started; /* OUTSIDE tasks that have started */
static int outside_mark;           /* the start that outside_rounds_then is taken at */
static atomic_int *busy_rounds;    /* the rounds of the flood or the pulse so far */
static int outside_rounds_then;    /* *busy_rounds at the outside_mark-th start */
static atomic_int flood_rounds;    /* rounds of the flood so far */

/* async(int) outside(int v): notes its start; returns v. */
static ac_poll_t outside_poll(void *frame, ac_context *cx, void *out)
{
    value_frame *f = frame;
    (void)cx;
    if (atomic_fetch_add(&outside_started, 1) + 1 == outside_mark)
        outside_rounds_then = atomic_load(busy_rounds);
    f->ac_state = AC_STATE_RETURNED;
    *(int *)out = f->v;
    return AC_READY;
}

static const ac_future_vt outside_vt = {
    sizeof(value_frame), _Alignof(value_frame), sizeof(int), outside_poll, frame_drop, "outside",
};

/* async(int) flood(void): FLOOD_ROUNDS rounds of FLOOD_FANOUT detached
 * value(0) children, waking itself after each; returns 0. */
static ac_poll_t flood_poll(void *frame, ac_context *cx, void *out)
{
    value_frame *f = frame;
    if (atomic_load(&flood_rounds) == FLOOD_ROUNDS) {
        f->ac_state = AC_STATE_RETURNED;
        *(int *)out = 0;
        return AC_READY;
    }
    for (int k = 0; k < FLOOD_FANOUT; k++)
        ac_handle_detach(spawn_vt(&value_vt, 0, 0, &cnt));
    atomic_fetch_add(&flood_rounds, 1);
    ac_waker_wake_by_ref(cx->waker);
    return AC_PENDING;
}

static const ac_future_vt flood_vt = {
    sizeof(value_frame), _Alignof(value_frame), sizeof(int), flood_poll, frame_drop, "flood",
};

static const ac_future_vt *busy_of; /* the flood or the pulse */
static bool busy_gates;             /* the busy task holds the worker itself */

/* The block_on body of the flood and pulse tests: while the only worker is
 * held by the gate (a gate task, or the busy task's own), spawns the busy
 * task (hs[OUTSIDE]) and the OUTSIDE tasks, then opens the gate and joins
 * them all. */
static ac_poll_t outside_body(script *s, ac_context *cx, int *out)
{
    int **hs = s->p;
    switch (s->step) {
    case 0:
        if (busy_gates)
            hs[OUTSIDE] = spawn_vt(busy_of, 0, 0, &cnt);
        else
            ac_handle_detach(spawn_vt(&gate_vt, 0, 0, &cnt));
        s->step = 1;
        /* fallthrough */
    case 1:
        AWAIT_AT_LEAST(&gate_held, 1);
        if (!busy_gates)
            hs[OUTSIDE] = spawn_vt(busy_of, 0, 0, &cnt);
        for (int i = 0; i < OUTSIDE; i++)
            hs[i] = spawn_vt(&outside_vt, i, 0, &cnt);
        ac__spawn_flush();
        atomic_store(&gate_open, true);
        s->step = 2;
        /* fallthrough */
    case 2:
        if (join_all(s, cx, hs, OUTSIDE, -1, out) == AC_PENDING)
            return AC_PENDING;
        if (*out)
            return AC_READY;
        if (!s->join.handle)
            ac_join__init(&s->join, hs[OUTSIDE], &s->err);
        if (ac_join__poll(&s->join, cx, &s->value) == AC_PENDING)
            return AC_PENDING;
        *out = s->err ? -1 : s->value;
        return AC_READY;
    }
    ac__bad_resume("script", (unsigned)s->step);
}

START_TEST(a_worker_that_keeps_overflowing_does_not_hold_back_spawns_from_outside)
{
    int *hs[OUTSIDE + 1];
    script s;
    int out = -1;
    busy_of = &flood_vt;
    busy_rounds = &flood_rounds;
    outside_mark = OUTSIDE;
    ck_assert_int_eq(run_script(AC_RUNTIME_MULTI_THREAD, 1, outside_body, &s, hs, &out), 0);
    ck_assert_int_eq(out, 0);
    printf("flood: the last of %d spawns from outside started after %d of %d rounds\n", OUTSIDE,
           outside_rounds_then, FLOOD_ROUNDS);
    fflush(stdout);
    ck_assert_int_eq(atomic_load(&outside_started), OUTSIDE);
    ck_assert_int_lt(outside_rounds_then, FLOOD_ROUNDS / 2);
}
END_TEST

/*
 * The spawners' overflow gets a turn among the segments: a pulse task
 * spawns PULSE_FANOUT children a round, which overflow its worker's ring
 * two or three times, and waits for the last of them, so that the ring
 * empties between rounds and the worker takes from the segments. While the
 * first child of the first round holds the only worker, the block_on thread
 * spawns OUTSIDE tasks, of which the older ones go to the inject queue's
 * segments. With the workers' segments always first, those started only at
 * the pace of the every-GLOBAL_INTERVAL-ticks look (the first half ring of
 * them by round 28 of PULSE_ROUNDS, every run); after every FRONT_RUN_MAX
 * of the workers' segments one of the spawners' goes: by round 1 (2 with
 * the single queue before).
 */
enum { PULSE_FANOUT = 600, PULSE_ROUNDS = 100, PULSE_FIRST = 128 /* half a ring */ };

static atomic_int pulse_rounds; /* rounds begun */
static atomic_int pulse_left;   /* children of this round still to run */
static ac_waker pulse_waker;    /* the pulse task's, for the last child */

/* async(int) pulse_child(int v): child v of a round; the first of the first
 * round holds its worker like the gate; the last to run wakes the pulse. */
static ac_poll_t pulse_child_poll(void *frame, ac_context *cx, void *out)
{
    value_frame *f = frame;
    (void)cx;
    if (f->v == 0 && atomic_load(&pulse_rounds) == 1)
        gate_poll(frame, cx, out);
    if (atomic_fetch_sub(&pulse_left, 1) == 1)
        ac_waker_wake(pulse_waker);
    f->ac_state = AC_STATE_RETURNED;
    *(int *)out = f->v;
    return AC_READY;
}

static const ac_future_vt pulse_child_vt = {
    sizeof(value_frame), _Alignof(value_frame), sizeof(int), pulse_child_poll, frame_drop,
    "pulse_child",
};

/* async(int) pulse(void): PULSE_ROUNDS rounds of PULSE_FANOUT detached
 * children, each round once the last one has run; returns 0. */
static ac_poll_t pulse_poll(void *frame, ac_context *cx, void *out)
{
    value_frame *f = frame;
    if (atomic_load(&pulse_rounds) == PULSE_ROUNDS) {
        f->ac_state = AC_STATE_RETURNED;
        *(int *)out = 0;
        return AC_READY;
    }
    pulse_waker = ac_waker_clone(cx->waker);
    atomic_store(&pulse_left, PULSE_FANOUT);
    atomic_fetch_add(&pulse_rounds, 1);
    for (int k = 0; k < PULSE_FANOUT; k++)
        ac_handle_detach(spawn_vt(&pulse_child_vt, k, 0, &cnt));
    return AC_PENDING;
}

static const ac_future_vt pulse_vt = {
    sizeof(value_frame), _Alignof(value_frame), sizeof(int), pulse_poll, frame_drop, "pulse",
};

START_TEST(a_worker_whose_ring_overflows_every_round_leaves_the_spawners_overflow_a_turn)
{
    int *hs[OUTSIDE + 1];
    script s;
    int out = -1;
    busy_of = &pulse_vt;
    busy_gates = true;
    busy_rounds = &pulse_rounds;
    outside_mark = PULSE_FIRST;
    ck_assert_int_eq(run_script(AC_RUNTIME_MULTI_THREAD, 1, outside_body, &s, hs, &out), 0);
    ck_assert_int_eq(out, 0);
    printf("pulse: the first %d of %d spawns from outside started by round %d of %d\n",
           PULSE_FIRST, OUTSIDE, outside_rounds_then, PULSE_ROUNDS);
    fflush(stdout);
    ck_assert_int_eq(atomic_load(&outside_started), OUTSIDE);
    ck_assert_int_le(outside_rounds_then, 10);
}
END_TEST

/*
 * Ring overflow segments go round: while the only worker is held by a gate
 * task, the block_on thread spawns RECYCLE_SPAWNS tasks, which fill its
 * spawner ring and overflow it into the inject queue (six segments of 129
 * tasks), then opens the gate and joins them all; RECYCLE_ROUNDS times in
 * one runtime. The worker empties the segments; the next rounds reuse them.
 * Before, each of the 300 segments was malloc'd by the block_on thread and
 * freed by the worker, under the lock of the block_on thread's arena.
 */
enum { RECYCLE_SPAWNS = 1000, RECYCLE_ROUNDS = 50 };

static int recycle_rounds; /* rounds done */

static ac_poll_t recycle_body(script *s, ac_context *cx, int *out)
{
    int **hs = s->p;
    for (;;) {
        switch (s->step) {
        case 0:
            /* The last round's gate task, if any, has returned: its worker
             * ran the tasks joined since. */
            atomic_store(&gate_held, 0);
            atomic_store(&gate_open, false);
            ac_handle_detach(spawn_vt(&gate_vt, 0, 0, &cnt));
            s->step = 1;
            /* fallthrough */
        case 1:
            AWAIT_AT_LEAST(&gate_held, 1);
            for (int i = 0; i < RECYCLE_SPAWNS; i++)
                hs[i] = spawn_vt(&value_vt, i, 0, &cnt);
            ac__spawn_flush();
            atomic_store(&gate_open, true);
            s->i = 0;
            s->step = 2;
            /* fallthrough */
        case 2:
            if (join_all(s, cx, hs, RECYCLE_SPAWNS, -1, out) == AC_PENDING)
                return AC_PENDING;
            if (*out || ++recycle_rounds == RECYCLE_ROUNDS)
                return AC_READY;
            s->step = 0;
            break;
        default:
            ac__bad_resume("script", (unsigned)s->step);
        }
    }
}

START_TEST(ring_overflow_segments_are_reused_not_allocated_each_time)
{
    static int *hs[RECYCLE_SPAWNS];
    script s;
    int out = -1;
    size_t queued, allocated;
    ac_runtime *rt = new_runtime(AC_RUNTIME_MULTI_THREAD, 1);
    ck_assert_int_eq(block_on_script(rt, recycle_body, &s, hs, &out), 0);
    ck_assert_int_eq(out, 0);
    ac__runtime_seg_counts(rt, &queued, &allocated);
    ac_runtime_free(rt);
    printf("segments: %zu queued in %d rounds, %zu of them allocated\n", queued, RECYCLE_ROUNDS,
           allocated);
    fflush(stdout);
    /* Every round overflows (the ring holds 256 tasks)... */
    ck_assert_uint_ge(queued, (size_t)RECYCLE_ROUNDS * 5);
    /* ...and only the first round allocates its segments, and the second
     * the spare that the block_on thread keeps from then on (6 + 1). */
    ck_assert_uint_le(allocated, 2 * queued / RECYCLE_ROUNDS + 1);
}
END_TEST

typedef struct spawning_thread {
    ac_runtime *rt;            /* shared by all */
    pthread_barrier_t *start;  /* so that they spawn at the same time */
    int result;                /* block_on's error, or the body's -1 */
} spawning_thread;

static void *spawning_thread_main(void *arg)
{
    spawning_thread *t = arg;
    int **hs = malloc(PER_THREAD * sizeof *hs);
    script s;
    int out = -1;
    pthread_barrier_wait(t->start);
    int err = hs ? block_on_script(t->rt, per_thread_body, &s, hs, &out) : AC_ENOMEM;
    t->result = err ? err : out;
    free(hs);
    return NULL;
}

START_TEST(more_block_on_threads_than_spawner_rings_spawn_and_join_at_once)
{
    /* Each thread spawning in the runtime gets a ring of its own while there
     * are rings (16), and the inject queue beyond: all of them must work at
     * once, and the rings be reused by the next round of threads. */
    ac_runtime *rt = new_runtime(AC_RUNTIME_MULTI_THREAD, 2);
    for (int round = 0; round < 2; round++) {
        pthread_barrier_t start;
        pthread_barrier_init(&start, NULL, SPAWNING_THREADS);
        spawning_thread ts[SPAWNING_THREADS];
        pthread_t ids[SPAWNING_THREADS];
        for (int i = 0; i < SPAWNING_THREADS; i++) {
            ts[i] = (spawning_thread){rt, &start, 1};
            ck_assert_int_eq(pthread_create(&ids[i], NULL, spawning_thread_main, &ts[i]), 0);
        }
        for (int i = 0; i < SPAWNING_THREADS; i++) {
            pthread_join(ids[i], NULL);
            ck_assert_int_eq(ts[i].result, 0);
        }
        pthread_barrier_destroy(&start);
    }
    ac_runtime_free(rt);
}
END_TEST

START_TEST(a_million_spawned_tasks_are_all_joined)
{
    int **hs = malloc(MILLION * sizeof *hs);
    ck_assert_ptr_nonnull(hs);
    script s;
    int out = -1;
    double t0 = now_s();
    ck_assert_int_eq(run_script(AC_RUNTIME_MULTI_THREAD, 2, million_body, &s, hs, &out), 0);
    double t = now_s() - t0;
    ck_assert_int_eq(out, 0);
    long expect = (long)(MILLION / 65536) * (65535L * 65536 / 2);
    for (long i = (long)(MILLION / 65536) * 65536; i < MILLION; i++)
        expect += i & 0xffff;
    ck_assert_int_eq(s.sum, expect);
    free(hs);
    /* Information only: tests never assert timings. */
    printf("spawn+join of 1,000,000 tasks on 2 workers: %.0f ns/task\n", t * 1e9 / MILLION);
}
END_TEST

static Suite *sched_suite(void)
{
    Suite *s = suite_create("runtime_sched");

    TCase *tc = tcase_create("runtime");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, config_init_sets_the_documented_defaults);
    tcase_add_test(tc, runtime_new_rejects_invalid_configurations);
    tcase_add_test(tc, block_on_runs_the_future_with_the_runtime_current_on_both_flavours);
    tcase_add_test(tc, block_on_reports_a_future_nothing_can_wake_on_both_flavours);
    tcase_add_test(tc, block_on_of_a_current_thread_runtime_already_running_is_busy);
    tcase_add_test(tc, block_on_from_a_worker_of_its_own_runtime_is_busy);
    tcase_add_test(tc, block_on_of_another_runtime_from_a_task_is_busy);
    tcase_add_test(tc, block_on_from_a_thread_that_runs_no_tasks_runs);
    tcase_add_test(tc, worker_threads_carry_the_configured_name_and_no_timer_slack);
    suite_add_tcase(s, tc);

    tc = tcase_create("scheduling");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, hundred_tasks_yielding_a_hundred_times_all_complete_on_two_workers);
    tcase_add_test(tc, a_worker_blocked_in_a_long_poll_does_not_stop_the_others);
    tcase_add_test(tc, a_ping_pong_pair_in_the_lifo_slot_cannot_starve_a_third_task);
    tcase_add_test(tc, the_coop_budget_makes_a_task_that_never_waits_yield);
    tcase_add_test(tc, wakes_from_foreign_threads_are_not_lost);
    tcase_add_test(tc, a_burst_of_spawns_from_outside_starts_in_about_spawn_order);
    tcase_add_test(tc, a_burst_of_spawns_that_wake_themselves_starts_in_about_spawn_order);
    tcase_add_test(tc, a_burst_of_spawns_that_overflow_worker_rings_starts_in_about_spawn_order);
    tcase_add_test(tc, a_burst_queued_while_its_worker_is_held_starts_in_about_spawn_order);
    tcase_add_test(tc, a_worker_that_keeps_overflowing_does_not_hold_back_spawns_from_outside);
    tcase_add_test(tc, a_worker_whose_ring_overflows_every_round_leaves_the_spawners_overflow_a_turn);
    tcase_add_test(tc, ring_overflow_segments_are_reused_not_allocated_each_time);
    suite_add_tcase(s, tc);

    tc = tcase_create("shutdown");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, shutdown_cancels_remaining_tasks_and_runs_their_drops);
    tcase_add_test(tc, shutdown_frees_the_memory_of_every_task);
    tcase_add_test(tc, a_waker_kept_past_shutdown_frees_its_task_when_dropped);
    tcase_add_test(tc, freeing_a_runtime_waits_for_a_wake_from_outside_to_leave_it);
    tcase_add_test(tc, block_on_returns_after_a_wake_of_its_root_from_outside_has_left);
    suite_add_tcase(s, tc);

    tc = tcase_create("driver");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, a_parked_thread_holding_the_driver_wakes_for_its_deadline_and_fires);
    tcase_add_test(tc, an_idle_runtime_says_so_to_its_driver);
    suite_add_tcase(s, tc);

    tc = tcase_create("stress");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, a_million_spawned_tasks_are_all_joined);
    tcase_add_test(tc, more_block_on_threads_than_spawner_rings_spawn_and_join_at_once);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(sched_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

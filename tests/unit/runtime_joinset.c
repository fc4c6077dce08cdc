/*
 * runtime_joinset.c: JoinSet (joinset.c): results in completion order, len,
 * an empty set, abort_all, freeing a set with running tasks, panics, the
 * waker of a pending next, the cooperative budget, and ten thousand tasks on
 * two workers.
 *
 * The futures are lowered by hand as docs/runtime-abi.md describes. A test's
 * async code is a `script`: a root future whose poll runs the test's body, a
 * switch on `step` that resumes where the last poll returned pending, with an
 * embedded ac_joinset_next frame, as generated code embeds it. Spawned
 * futures count their polls, completions and drops in shared counters.
 * Timing is never asserted: orders come from yield counts on a
 * current-thread runtime or from sleeps on a paused clock, and waits for
 * another thread wait for an event.
 */
#define ASYNCC_RUNTIME_INTERNAL 1
#include <asyncc.h>

#include "../../runtime/src/internal.h"

#include <check.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "value_future.h"

/* ------------------------------------------------------------------------ */
/* Futures (value_future.h has the value future)                            */
/* ------------------------------------------------------------------------ */

static counters cnt;  /* each test runs in its own process */
static counters busy; /* tasks that yield for ever, where a test needs them apart */

/* async(void) nothing(long yields): the same without output. */
static const ac_future_vt nothing_vt = {
    sizeof(value_frame), _Alignof(value_frame), 0, value_poll, value_drop, "nothing",
};

/* What generated code does for `ac_joinset_spawn(set, value(v, yields))`. */
static void spawn_value(void *set, int v, long yields)
{
    void *fr = ac__task_frame_new(&value_vt);
    value__init(fr, v, yields, &cnt);
    ac__joinset_spawn(set, fr);
}

/* async(int) boom(int v, int yields): yields, then panics. */
static ac_poll_t boom_poll(void *frame, ac_context *cx, void *out)
{
    value_frame *f = frame;
    (void)out;
    atomic_fetch_add(&f->c->polls, 1);
    f->ac_state = AC_STATE_FIRST;
    if (f->yields-- > 0) {
        ac_waker_wake_by_ref(cx->waker);
        return AC_PENDING;
    }
    ac_panic("boom %d", f->v);
}

static const ac_future_vt boom_vt = {
    sizeof(value_frame), _Alignof(value_frame), sizeof(int), boom_poll, value_drop, "boom",
};

/* async(void) never(): pending forever, keeping no waker (nothing can wake
 * it; only an abort or the runtime's shutdown ends it). */
static ac_poll_t never_poll(void *frame, ac_context *cx, void *out)
{
    value_frame *f = frame;
    (void)cx;
    (void)out;
    atomic_fetch_add(&f->c->polls, 1);
    f->ac_state = AC_STATE_FIRST;
    return AC_PENDING;
}

static const ac_future_vt never_vt = {
    sizeof(value_frame), _Alignof(value_frame), sizeof(int), never_poll, value_drop, "never",
};

static void spawn_vt(void *set, const ac_future_vt *vt, int v, long yields)
{
    void *fr = ac__task_frame_new(vt);
    value__init(fr, v, yields, &cnt);
    ac__joinset_spawn(set, fr);
}

/* async(int) nap(int v, uint64_t ms): sleeps ms on the runtime clock, then
 * returns v; an embedded ac_sleep, as generated code embeds it. */
typedef struct nap_frame {
    struct ac_sleep__frame sleep; /* the awaited sleep; live in state 3 */
    int v;                        /* parameter */
    uint64_t ms;                  /* parameter */
    unsigned ac_state;            /* 0 unresumed, 1 returned, 3 sleeping */
} nap_frame;

static ac_poll_t nap_poll(void *frame, ac_context *cx, void *out)
{
    nap_frame *f = frame;
    if (f->ac_state == AC_STATE_UNRESUMED) {
        ac_sleep__init(&f->sleep, f->ms);
        f->ac_state = AC_STATE_FIRST;
    }
    if (ac_sleep__poll(&f->sleep, cx, NULL) == AC_PENDING)
        return AC_PENDING;
    f->ac_state = AC_STATE_RETURNED;
    *(int *)out = f->v;
    atomic_fetch_add(&cnt.done, 1);
    return AC_READY;
}

static void nap_drop(void *frame)
{
    nap_frame *f = frame;
    if (f->ac_state == AC_STATE_FIRST)
        ac_sleep__drop(&f->sleep);
    atomic_fetch_add(&cnt.drops, 1);
    f->ac_state = AC_STATE_RETURNED;
}

static const ac_future_vt nap_vt = {
    sizeof(nap_frame), _Alignof(nap_frame), sizeof(int), nap_poll, nap_drop, "nap",
};

static void spawn_nap(void *set, int v, uint64_t ms)
{
    nap_frame *f = ac__task_frame_new(&nap_vt);
    f->v = v;
    f->ms = ms;
    f->ac_state = AC_STATE_UNRESUMED;
    ac__joinset_spawn(set, f);
}

/* A one-waiter event, set from any thread (docs/runtime-abi.md's example). */
typedef struct signal_ {
    pthread_mutex_t mu; /* guards the fields below */
    bool set;           /* the event happened */
    bool waiting;       /* waker holds a clone */
    ac_waker waker;     /* the waiter's waker */
} signal_;

static signal_ sig = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void signal_set(signal_ *s)
{
    pthread_mutex_lock(&s->mu);
    s->set = true;
    bool wake = s->waiting;
    ac_waker w = s->waker;
    s->waiting = false;
    pthread_mutex_unlock(&s->mu);
    if (wake)
        ac_waker_wake(w);
}

/* async(int) wait(int v): returns v once `sig` is set; keeps a waker clone
 * in the signal while pending, released by its drop. */
static ac_poll_t wait_poll(void *frame, ac_context *cx, void *out)
{
    value_frame *f = frame;
    atomic_fetch_add(&f->c->polls, 1);
    pthread_mutex_lock(&sig.mu);
    if (sig.set) {
        pthread_mutex_unlock(&sig.mu);
        f->ac_state = AC_STATE_RETURNED;
        *(int *)out = f->v;
        atomic_fetch_add(&f->c->done, 1);
        return AC_READY;
    }
    if (sig.waiting)
        ac_waker_drop(sig.waker);
    sig.waker = ac_waker_clone(cx->waker);
    sig.waiting = true;
    pthread_mutex_unlock(&sig.mu);
    f->ac_state = AC_STATE_FIRST;
    return AC_PENDING;
}

static void wait_drop(void *frame)
{
    value_frame *f = frame;
    atomic_fetch_add(&f->c->drops, 1);
    if (f->ac_state == AC_STATE_FIRST) {
        pthread_mutex_lock(&sig.mu);
        if (sig.waiting)
            ac_waker_drop(sig.waker);
        sig.waiting = false;
        pthread_mutex_unlock(&sig.mu);
    }
    f->ac_state = AC_STATE_RETURNED;
}

static const ac_future_vt wait_vt = {
    sizeof(value_frame), _Alignof(value_frame), sizeof(int), wait_poll, wait_drop, "wait",
};

/* ------------------------------------------------------------------------ */
/* Scripts: root futures whose poll is a test's body                        */
/* ------------------------------------------------------------------------ */

typedef struct script script;
typedef ac_poll_t (*body_fn)(script *s, ac_context *cx, int *out);

struct script {
    unsigned ac_state;                   /* 0 unresumed, 1 returned, 3 running */
    body_fn body;                        /* the test's code */
    int step;                            /* where the body resumes */
    void *set;                           /* the test's JoinSet */
    struct ac_joinset_next__frame next;  /* an await of ac_joinset_next */
    struct ac_sleep__frame sleep;        /* an await of ac_sleep */
    bool sleeping;                       /* sleep is initialised and not finished */
    bool next_live;                      /* next is initialised and not finished */
    int got;                             /* next's output: 1 a task, 0 empty */
    int value;                           /* the task's output */
    int err;                             /* its join error */
    atomic_int polls;                    /* times polled (read by other threads) */
    atomic_bool waiting;                 /* parked in a pending next (for a signaller) */
    long i;                              /* a loop counter */
    long sum;                            /* an accumulator */
    int order[16];                       /* outputs in the order next returned them */
    int errs[16];                        /* their errors */
    void *p;                             /* test data */
};

static ac_poll_t script_poll(void *frame, ac_context *cx, void *out)
{
    script *s = frame;
    atomic_fetch_add(&s->polls, 1);
    s->ac_state = AC_STATE_FIRST;
    ac_poll_t r = s->body(s, cx, out);
    if (r == AC_READY)
        s->ac_state = AC_STATE_RETURNED;
    return r;
}

static void script_drop(void *frame)
{
    script *s = frame;
    if (s->next_live)
        ac_joinset_next__drop(&s->next);
    if (s->sleeping)
        ac_sleep__drop(&s->sleep);
    s->next_live = s->sleeping = false;
    s->ac_state = AC_STATE_RETURNED;
}

static const ac_future_vt script_vt = {
    sizeof(script), _Alignof(script), sizeof(int), script_poll, script_drop, "script",
};

/* await(ac_joinset_next(s->set, &s->value, &s->err)), started by next_start
 * and then polled by next_poll until ready; the result is in s->got. */
static void next_start(script *s)
{
    s->value = -1;
    s->err = 1;
    ac_joinset_next__init(&s->next, s->set, &s->value, &s->err);
    s->next_live = true;
}

static ac_poll_t next_poll(script *s, ac_context *cx)
{
    ac_poll_t r = ac_joinset_next__poll(&s->next, cx, &s->got);
    if (r == AC_READY)
        s->next_live = false;
    return r;
}

static ac_runtime *new_runtime(int flavor, int paused)
{
    ac_runtime_config c;
    ac_runtime_config_init(&c);
    c.flavor = flavor;
    c.workers = 2;
    c.start_paused = paused;
    ac_runtime *rt = NULL;
    ck_assert_int_eq(ac_runtime_new(&c, &rt), 0);
    return rt;
}

/* Runs body as the root future of a fresh runtime and frees the runtime;
 * returns block_on's result, the output in *out. */
static int run_script(int flavor, int paused, body_fn body, script *s, void *p, int *out)
{
    ac_runtime *rt = new_runtime(flavor, paused);
    memset(s, 0, sizeof *s);
    s->body = body;
    s->p = p;
    int err = ac_runtime_block_on(rt, &script_vt, s, out);
    ac_runtime_free(rt);
    return err;
}

static const char *flavor_name(int flavor)
{
    return flavor == AC_RUNTIME_MULTI_THREAD ? "multi-thread" : "current-thread";
}

/*
 * The body most tests share: creates the set, calls the test's `spawn`
 * (s->p), sleeps root_nap ms (0: not at all), then awaits next until the set
 * is empty, recording each output and error in order[] and errs[] (the
 * first 16) and their count in s->i; frees the set and returns the sum of
 * the outputs.
 */
typedef void (*spawn_fn)(script *s);

static uint64_t root_nap;

static ac_poll_t drain_body(script *s, ac_context *cx, int *out)
{
    switch (s->step) {
    case 0:
        s->set = ac_joinset_new();
        ((spawn_fn)s->p)(s);
        ac_sleep__init(&s->sleep, root_nap);
        s->sleeping = true;
        s->step = 2;
        /* fallthrough */
    case 2:
        if (ac_sleep__poll(&s->sleep, cx, NULL) == AC_PENDING)
            return AC_PENDING;
        s->sleeping = false;
        s->step = 1;
        for (;;) {
            next_start(s);
            /* fallthrough */
    case 1:
            if (next_poll(s, cx) == AC_PENDING)
                return AC_PENDING;
            if (!s->got)
                break;
            if (s->i < 16) {
                s->order[s->i] = s->value;
                s->errs[s->i] = s->err;
            }
            s->i++;
            s->sum += s->value;
        }
        ck_assert_uint_eq(ac_joinset_len(s->set), 0);
        ac_joinset_free(s->set);
        *out = (int)s->sum;
        return AC_READY;
    }
    ac__bad_resume("script", (unsigned)s->step);
}

/* ------------------------------------------------------------------------ */
/* Completion order, len, the empty set                                     */
/* ------------------------------------------------------------------------ */

/* On a current-thread runtime tasks that yield take turns, so the one with
 * the fewest yields completes first. */
static const long yields_of[5] = {40, 10, 30, 0, 20};

static void spawn_by_yields(script *s)
{
    for (int i = 0; i < 5; i++)
        spawn_value(s->set, i, yields_of[i]);
}

START_TEST(next_returns_results_in_completion_order_of_yields)
{
    memset(&cnt, 0, sizeof cnt);
    script s;
    int sum = -1;
    ck_assert_int_eq(run_script(AC_RUNTIME_CURRENT_THREAD, 0, drain_body, &s,
                                (void *)spawn_by_yields, &sum),
                     0);
    ck_assert_int_eq(s.i, 5);
    const int want[5] = {3, 1, 4, 2, 0}; /* by yields: 0, 10, 20, 30, 40 */
    for (int k = 0; k < 5; k++) {
        ck_assert_int_eq(s.order[k], want[k]);
        ck_assert_int_eq(s.errs[k], 0);
    }
    ck_assert_int_eq(sum, 0 + 1 + 2 + 3 + 4);
    ck_assert_int_eq(atomic_load(&cnt.drops), 5);
}
END_TEST

/* On a paused clock the task with the shortest sleep completes first, on
 * either runtime: the clock only jumps to the next timer when every thread
 * is idle, so each completion is handled before the next timer fires. The
 * root sleeps longer than any task before it calls next, so all six wait
 * in the set's ready queue, which must keep them in completion order. */
static const uint64_t naps_of[6] = {50, 10, 40, 60, 30, 20};

static void spawn_by_naps(script *s)
{
    for (int i = 0; i < 6; i++)
        spawn_nap(s->set, i, naps_of[i]);
}

START_TEST(next_returns_results_in_completion_order_of_sleeps)
{
    for (int flavor = 0; flavor <= 1; flavor++) {
        memset(&cnt, 0, sizeof cnt);
        script s;
        int sum = -1;
        uint64_t t0 = ac_now_ms();
        root_nap = 100;
        ck_assert_int_eq(run_script(flavor, 1, drain_body, &s, (void *)spawn_by_naps, &sum), 0);
        ck_assert_msg(s.i == 6, "%s: %ld results", flavor_name(flavor), s.i);
        const int want[6] = {1, 5, 4, 2, 0, 3}; /* by ms: 10, 20, 30, 40, 50, 60 */
        for (int k = 0; k < 6; k++)
            ck_assert_msg(s.order[k] == want[k] && s.errs[k] == 0, "%s: result %d is task %d",
                          flavor_name(flavor), k, s.order[k]);
        ck_assert_uint_ge(ac_now_ms(), t0 + 100);
        ck_assert_int_eq(atomic_load(&cnt.drops), 6);
    }
}
END_TEST

static ac_poll_t len_body(script *s, ac_context *cx, int *out)
{
    switch (s->step) {
    case 0:
        s->set = ac_joinset_new();
        ck_assert_uint_eq(ac_joinset_len(s->set), 0);
        for (int i = 0; i < 4; i++) {
            spawn_value(s->set, i, i);
            ck_assert_uint_eq(ac_joinset_len(s->set), (size_t)i + 1);
        }
        s->step = 1;
        for (s->i = 4; s->i > 0; s->i--) {
            next_start(s);
            /* fallthrough */
    case 1:
            if (next_poll(s, cx) == AC_PENDING) {
                /* Waiting counts the tasks still running. */
                ck_assert_uint_eq(ac_joinset_len(s->set), (size_t)s->i);
                return AC_PENDING;
            }
            ck_assert_int_eq(s->got, 1);
            ck_assert_uint_eq(ac_joinset_len(s->set), (size_t)s->i - 1);
        }
        next_start(s);
        ck_assert_int_eq(next_poll(s, cx), AC_READY);
        ck_assert_int_eq(s->got, 0);
        ac_joinset_free(s->set);
        *out = 0;
        return AC_READY;
    }
    ac__bad_resume("script", (unsigned)s->step);
}

START_TEST(len_counts_down_as_next_returns_tasks)
{
    for (int flavor = 0; flavor <= 1; flavor++) {
        memset(&cnt, 0, sizeof cnt);
        script s;
        int out = -1;
        ck_assert_int_eq(run_script(flavor, 0, len_body, &s, NULL, &out), 0);
        ck_assert_int_eq(atomic_load(&cnt.done), 4);
    }
}
END_TEST

START_TEST(next_on_an_empty_set_returns_zero_at_once)
{
    /* By hand, outside any runtime: an empty set needs no task. */
    void *set = ac_joinset_new();
    ck_assert_uint_eq(ac_joinset_len(set), 0);
    struct ac_joinset_next__frame f;
    int value = 7, err = 7, got = -1;
    ac_context cx = {.waker = ac_waker_noop()};
    ac_joinset_next__init(&f, set, &value, &err);
    ck_assert_int_eq(ac_joinset_next__poll(&f, &cx, &got), AC_READY);
    ck_assert_int_eq(got, 0);
    ck_assert_int_eq(value, 7); /* untouched */
    ck_assert_int_eq(err, 7);
    ac_joinset_next__drop(&f); /* harmless after ready */

    /* Through the vtable, as type-erased code runs it. */
    ac_joinset_next__init(&f, set, NULL, NULL);
    got = -1;
    ck_assert_int_eq(ac_block_on(&ac_joinset_next__vt, &f, &got), 0);
    ck_assert_int_eq(got, 0);
    ac_joinset_abort_all(set); /* nothing to abort */
    ac_joinset_free(set);

    /* NULL reads as an empty set everywhere. */
    ck_assert_uint_eq(ac_joinset_len(NULL), 0);
    ac_joinset_abort_all(NULL);
    ac_joinset_free(NULL);
    ac_joinset_next__init(&f, NULL, NULL, NULL);
    got = -1;
    ck_assert_int_eq(ac_joinset_next__poll(&f, &cx, &got), AC_READY);
    ck_assert_int_eq(got, 0);
}
END_TEST

static void spawn_nothings(script *s)
{
    for (int i = 0; i < 3; i++) {
        void *fr = ac__task_frame_new(&nothing_vt);
        value__init(fr, i, i, &cnt);
        ac__joinset_spawn(s->set, fr);
    }
}

START_TEST(void_tasks_are_returned_with_a_null_out)
{
    for (int flavor = 0; flavor <= 1; flavor++) {
        memset(&cnt, 0, sizeof cnt);
        script s;
        int sum = -1;
        ck_assert_int_eq(run_script(flavor, 0, drain_body, &s, (void *)spawn_nothings, &sum), 0);
        ck_assert_int_eq(s.i, 3);
        for (int k = 0; k < 3; k++) {
            ck_assert_int_eq(s.errs[k], 0);
            ck_assert_int_eq(s.order[k], -1); /* nothing written: out_size is 0 */
        }
        ck_assert_int_eq(atomic_load(&cnt.done), 3);
    }
}
END_TEST

/* ------------------------------------------------------------------------ */
/* abort_all and free                                                        */
/* ------------------------------------------------------------------------ */

/* One task completes, three never do; then abort_all. */
static ac_poll_t abort_all_body(script *s, ac_context *cx, int *out)
{
    switch (s->step) {
    case 0:
        s->set = ac_joinset_new();
        spawn_value(s->set, 7, 0);
        for (int i = 0; i < 3; i++)
            spawn_vt(s->set, &never_vt, 100 + i, 0);
        s->step = 1;
        /* fallthrough */
    case 1:
        /* The first result is the finished task's: the others never finish. */
        next_start(s);
        s->step = 2;
        /* fallthrough */
    case 2:
        if (next_poll(s, cx) == AC_PENDING)
            return AC_PENDING;
        ck_assert_int_eq(s->got, 1);
        ck_assert_int_eq(s->value, 7);
        ck_assert_int_eq(s->err, 0);
        ck_assert_uint_eq(ac_joinset_len(s->set), 3);
        ac_joinset_abort_all(s->set);
        ck_assert_uint_eq(ac_joinset_len(s->set), 3); /* aborted tasks stay in the set */
        s->step = 3;
        for (s->i = 0;; s->i++) {
            next_start(s);
            /* fallthrough */
    case 3:
            if (next_poll(s, cx) == AC_PENDING)
                return AC_PENDING;
            if (!s->got)
                break;
            ck_assert_int_eq(s->err, AC_ECANCELED);
            ck_assert_int_eq(s->value, 0); /* zero-filled */
        }
        ck_assert_int_eq(s->i, 3);
        ac_joinset_free(s->set);
        *out = 0;
        return AC_READY;
    }
    ac__bad_resume("script", (unsigned)s->step);
}

START_TEST(abort_all_makes_unfinished_tasks_report_cancelled)
{
    for (int flavor = 0; flavor <= 1; flavor++) {
        memset(&cnt, 0, sizeof cnt);
        script s;
        int out = -1;
        ck_assert_int_eq(run_script(flavor, 0, abort_all_body, &s, NULL, &out), 0);
        /* Each drop ran once: after ready, or at the abort. */
        ck_assert_int_eq(atomic_load(&cnt.drops), 4);
        ck_assert_int_eq(atomic_load(&cnt.done), 1);
    }
}
END_TEST

/* abort_all after a task completed, before next took it: it keeps its output. */
static ac_poll_t abort_after_completion_body(script *s, ac_context *cx, int *out)
{
    switch (s->step) {
    case 0:
        s->set = ac_joinset_new();
        spawn_value(s->set, 9, 0);
        s->step = 1;
        /* fallthrough */
    case 1:
        /* Yield until the task has completed (on a current-thread runtime
         * its drop and its completion come in the same turn). */
        if (atomic_load(&cnt.drops) < 1) {
            ac_waker_wake_by_ref(cx->waker);
            return AC_PENDING;
        }
        ac_joinset_abort_all(s->set);
        next_start(s);
        s->step = 2;
        /* fallthrough */
    case 2:
        if (next_poll(s, cx) == AC_PENDING)
            return AC_PENDING;
        ck_assert_int_eq(s->got, 1);
        *out = s->value;
        ac_joinset_free(s->set);
        return AC_READY;
    }
    ac__bad_resume("script", (unsigned)s->step);
}

START_TEST(abort_after_completion_keeps_the_output)
{
    memset(&cnt, 0, sizeof cnt);
    script s;
    int out = -1;
    ck_assert_int_eq(run_script(AC_RUNTIME_CURRENT_THREAD, 0, abort_after_completion_body, &s, NULL,
                                &out),
                     0);
    ck_assert_int_eq(out, 9);
    ck_assert_int_eq(s.err, 0);
}
END_TEST

/*
 * The set is freed while its tasks run: four never finish (idle, no waker),
 * one waits for a signal that never comes (a waker clone kept), two are
 * busy yielding for ever. Each is torn down and its drop runs, once; the
 * root then waits for the drops.
 */
static ac_poll_t free_running_body(script *s, ac_context *cx, int *out)
{
    switch (s->step) {
    case 0:
        s->set = ac_joinset_new();
        for (int i = 0; i < 4; i++)
            spawn_vt(s->set, &never_vt, i, 0);
        spawn_vt(s->set, &wait_vt, 4, 0);
        for (int i = 5; i < 7; i++) {
            void *fr = ac__task_frame_new(&value_vt);
            value__init(fr, i, 1L << 40, &busy);
            ac__joinset_spawn(s->set, fr);
        }
        s->step = 1;
        /* fallthrough */
    case 1:
        /* Let every task start: the five that wait are polled once each. */
        if (atomic_load(&cnt.polls) < 5 || atomic_load(&busy.polls) < 2) {
            ac_waker_wake_by_ref(cx->waker);
            return AC_PENDING;
        }
        ck_assert_uint_eq(ac_joinset_len(s->set), 7);
        ac_joinset_free(s->set);
        s->set = NULL;
        s->step = 2;
        /* fallthrough */
    case 2:
        if (atomic_load(&cnt.drops) < 5 || atomic_load(&busy.drops) < 2) {
            ac_waker_wake_by_ref(cx->waker);
            return AC_PENDING;
        }
        *out = 0;
        return AC_READY;
    }
    ac__bad_resume("script", (unsigned)s->step);
}

START_TEST(free_with_running_tasks_aborts_them_and_runs_their_drops)
{
    for (int flavor = 0; flavor <= 1; flavor++) {
        memset(&cnt, 0, sizeof cnt);
        memset(&busy, 0, sizeof busy);
        script s;
        int out = -1;
        ck_assert_int_eq(run_script(flavor, 0, free_running_body, &s, NULL, &out), 0);
        /* Not one more at shutdown. */
        ck_assert_int_eq(atomic_load(&cnt.drops), 5);
        ck_assert_int_eq(atomic_load(&busy.drops), 2);
        ck_assert_int_eq(atomic_load(&cnt.done) + atomic_load(&busy.done), 0);
        ck_assert(!sig.waiting); /* the waiting task's drop released its waker */
    }
}
END_TEST

/* Sets freed while their tasks complete on the workers: completion and the
 * free race on every task. Each task's drop runs exactly once. */
enum { RACE_ROUNDS = 200, RACE_TASKS = 32 };

static ac_poll_t free_race_body(script *s, ac_context *cx, int *out)
{
    switch (s->step) {
    case 0:
        for (s->i = 0; s->i < RACE_ROUNDS; s->i++) {
            s->set = ac_joinset_new();
            for (int k = 0; k < RACE_TASKS; k++)
                spawn_value(s->set, k, k % 4);
            s->step = 1;
            ac_waker_wake_by_ref(cx->waker);
            return AC_PENDING; /* publishes the spawns; the workers start */
    case 1:
            if (s->i % 2) {
                /* Take some results first: the rest are freed with the set. */
                next_start(s);
                s->step = 2;
                /* fallthrough */
    case 2:
                if (next_poll(s, cx) == AC_PENDING)
                    return AC_PENDING;
                ck_assert_int_eq(s->got, 1);
            }
            ac_joinset_free(s->set);
            s->set = NULL;
        }
        s->step = 3;
        /* fallthrough */
    case 3:
        if (atomic_load(&cnt.drops) < RACE_ROUNDS * RACE_TASKS) {
            ac_waker_wake_by_ref(cx->waker);
            return AC_PENDING;
        }
        *out = 0;
        return AC_READY;
    }
    ac__bad_resume("script", (unsigned)s->step);
}

START_TEST(free_racing_with_completions_drops_every_task_once)
{
    memset(&cnt, 0, sizeof cnt);
    script s;
    int out = -1;
    ck_assert_int_eq(run_script(AC_RUNTIME_MULTI_THREAD, 0, free_race_body, &s, NULL, &out), 0);
    ck_assert_int_eq(atomic_load(&cnt.drops), RACE_ROUNDS * RACE_TASKS);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Panics                                                                   */
/* ------------------------------------------------------------------------ */

/* Points stderr at a temporary file; stderr_text() returns what was written. */
static FILE *captured;

static void capture_stderr(void)
{
    captured = tmpfile();
    ck_assert_ptr_nonnull(captured);
    fflush(stderr);
    ck_assert_int_ne(dup2(fileno(captured), STDERR_FILENO), -1);
}

static const char *stderr_text(void)
{
    static char buf[1024];
    fflush(stderr);
    rewind(captured);
    size_t n = fread(buf, 1, sizeof buf - 1, captured);
    buf[n] = '\0';
    return buf;
}

static void spawn_boom_and_values(script *s)
{
    spawn_vt(s->set, &boom_vt, 1, 2);
    spawn_value(s->set, 5, 5);
    spawn_value(s->set, 6, 0);
}

START_TEST(panicking_task_is_reported_as_panicked)
{
    capture_stderr();
    for (int flavor = 0; flavor <= 1; flavor++) {
        memset(&cnt, 0, sizeof cnt);
        script s;
        int sum = -1;
        ck_assert_int_eq(
            run_script(flavor, 0, drain_body, &s, (void *)spawn_boom_and_values, &sum), 0);
        ck_assert_int_eq(s.i, 3);
        ck_assert_int_eq(sum, 5 + 6 + 0); /* the panicked task's output is zero-filled */
        int panicked = 0;
        for (int k = 0; k < 3; k++) {
            if (s.errs[k] == AC_EPANIC) {
                panicked++;
                ck_assert_int_eq(s.order[k], 0);
            } else {
                ck_assert_int_eq(s.errs[k], 0);
            }
        }
        ck_assert_int_eq(panicked, 1);
        if (flavor == AC_RUNTIME_CURRENT_THREAD) {
            /* Completion order: 6 (no yield), boom (2 yields), 5 (5 yields). */
            ck_assert_int_eq(s.order[0], 6);
            ck_assert_int_eq(s.errs[1], AC_EPANIC);
            ck_assert_int_eq(s.order[2], 5);
        }
        ck_assert_int_eq(atomic_load(&cnt.drops), 3);
    }
    ck_assert_ptr_nonnull(strstr(stderr_text(), "asyncc: task panicked: boom 1"));
}
END_TEST

static ac_poll_t unwrap_body(script *s, ac_context *cx, int *out)
{
    switch (s->step) {
    case 0:
        s->set = ac_joinset_new();
        spawn_vt(s->set, &boom_vt, 2, 0);
        ac_joinset_next__init(&s->next, s->set, &s->value, NULL);
        s->next_live = true;
        s->step = 1;
        /* fallthrough */
    case 1:
        if (next_poll(s, cx) == AC_PENDING)
            return AC_PENDING;
        *out = 0; /* not reached: the failed task panics this one */
        return AC_READY;
    }
    ac__bad_resume("script", (unsigned)s->step);
}

START_TEST(next_without_err_panics_the_awaiter_of_a_failed_task)
{
    capture_stderr();
    for (int flavor = 0; flavor <= 1; flavor++) {
        memset(&cnt, 0, sizeof cnt);
        script s;
        int out = -1;
        ck_assert_int_eq(run_script(flavor, 0, unwrap_body, &s, NULL, &out), AC_EPANIC);
        ck_assert_uint_eq(ac_joinset_len(s.set), 0); /* the task was taken out */
        ac_joinset_free(s.set);
    }
    ck_assert_ptr_nonnull(strstr(stderr_text(), "task 'boom' of a JoinSet panicked"));
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Wakers                                                                   */
/* ------------------------------------------------------------------------ */

/* One task waits for a signal that another thread sets once the root is
 * parked in next: the completion wakes the root, which is polled twice in
 * all (no busy polling). */
static ac_poll_t wake_body(script *s, ac_context *cx, int *out)
{
    switch (s->step) {
    case 0:
        s->set = ac_joinset_new();
        spawn_vt(s->set, &wait_vt, 33, 0);
        next_start(s);
        s->step = 1;
        /* fallthrough */
    case 1:
        if (next_poll(s, cx) == AC_PENDING) {
            atomic_store(&s->waiting, true);
            return AC_PENDING;
        }
        ck_assert_int_eq(s->got, 1);
        ck_assert_int_eq(s->err, 0);
        ac_joinset_free(s->set);
        *out = s->value;
        return AC_READY;
    }
    ac__bad_resume("script", (unsigned)s->step);
}

static void *signaller(void *arg)
{
    script *s = arg;
    while (!atomic_load(&s->waiting))
        sched_yield();
    signal_set(&sig);
    return NULL;
}

START_TEST(completion_wakes_a_pending_next_without_busy_polling)
{
    for (int flavor = 0; flavor <= 1; flavor++) {
        memset(&cnt, 0, sizeof cnt);
        sig.set = false;
        ac_runtime *rt = new_runtime(flavor, 0);
        script s;
        memset(&s, 0, sizeof s);
        s.body = wake_body;
        pthread_t t;
        ck_assert_int_eq(pthread_create(&t, NULL, signaller, &s), 0);
        int out = -1;
        ck_assert_int_eq(ac_runtime_block_on(rt, &script_vt, &s, &out), 0);
        pthread_join(t, NULL);
        ac_runtime_free(rt);
        ck_assert_int_eq(out, 33);
        ck_assert_msg(atomic_load(&s.polls) == 2, "%s: root polled %d times", flavor_name(flavor),
                      atomic_load(&s.polls));
    }
}
END_TEST

/* A pending next that is dropped gives its waker back: the root then holds
 * nothing that could wake it, and block_on reports the deadlock instead of
 * sleeping for ever. */
static ac_poll_t drop_next_body(script *s, ac_context *cx, int *out)
{
    (void)out;
    switch (s->step) {
    case 0:
        s->set = ac_joinset_new();
        spawn_vt(s->set, &never_vt, 0, 0);
        next_start(s);
        ck_assert_int_eq(next_poll(s, cx), AC_PENDING);
        ac_joinset_next__drop(&s->next);
        s->next_live = false;
        s->step = 1;
        return AC_PENDING; /* nothing will wake this */
    }
    ac__bad_resume("script", (unsigned)s->step);
}

START_TEST(dropping_a_pending_next_releases_its_waker)
{
    for (int flavor = 0; flavor <= 1; flavor++) {
        memset(&cnt, 0, sizeof cnt);
        ac_runtime *rt = new_runtime(flavor, 0);
        script s;
        memset(&s, 0, sizeof s);
        s.body = drop_next_body;
        int out = -1;
        ck_assert_int_eq(ac_runtime_block_on(rt, &script_vt, &s, &out), AC_EDEADLK);
        ck_assert_uint_eq(ac_joinset_len(s.set), 1);
        ac_joinset_free(s.set); /* before the runtime, whose handles it holds */
        ac_runtime_free(rt);
        ck_assert_int_eq(atomic_load(&cnt.drops), 1);
    }
}
END_TEST

/* 300 results ready at once: a loop of nexts spends the budget (128 per
 * poll) and yields, so it takes the root at least three polls. */
static ac_poll_t budget_body(script *s, ac_context *cx, int *out)
{
    switch (s->step) {
    case 0:
        s->set = ac_joinset_new();
        for (int i = 0; i < 300; i++)
            spawn_value(s->set, 1, 0);
        s->step = 1;
        /* fallthrough */
    case 1:
        if (atomic_load(&cnt.drops) < 300) {
            ac_waker_wake_by_ref(cx->waker);
            return AC_PENDING;
        }
        s->p = (void *)(intptr_t)atomic_load(&s->polls);
        s->step = 2;
        for (;;) {
            next_start(s);
            /* fallthrough */
    case 2:
            if (next_poll(s, cx) == AC_PENDING)
                return AC_PENDING;
            if (!s->got)
                break;
            s->sum += s->value;
        }
        ac_joinset_free(s->set);
        *out = atomic_load(&s->polls) - (int)(intptr_t)s->p;
        return AC_READY;
    }
    ac__bad_resume("script", (unsigned)s->step);
}

START_TEST(ready_results_spend_the_coop_budget_and_yield)
{
    for (int flavor = 0; flavor <= 1; flavor++) {
        memset(&cnt, 0, sizeof cnt);
        script s;
        int polls = -1;
        ck_assert_int_eq(run_script(flavor, 0, budget_body, &s, NULL, &polls), 0);
        ck_assert_int_eq(s.sum, 300);
        /* polls counts those after the first of the loop. */
        ck_assert_int_ge(polls + 1, (300 + 127) / 128);
    }
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Many tasks                                                               */
/* ------------------------------------------------------------------------ */

enum { MANY = 10000 };

/* Spawns MANY tasks into a set and joins them all, checking that each
 * output comes back exactly once; returns the count. */
typedef struct many_frame {
    unsigned ac_state;                  /* 0 unresumed, 1 returned, 3 waiting */
    void *set;                          /* the set */
    struct ac_joinset_next__frame next; /* the await of next */
    int got;                            /* next's output */
    int value;                          /* the task's */
    int err;                            /* its error */
    int count;                          /* results so far */
    unsigned char *seen;                /* seen[v]: v came back */
} many_frame;

static ac_poll_t many_poll(void *frame, ac_context *cx, void *out)
{
    many_frame *f = frame;
    if (f->ac_state == AC_STATE_UNRESUMED) {
        f->set = ac_joinset_new();
        f->seen = calloc(MANY, 1);
        for (int i = 0; i < MANY; i++)
            spawn_value(f->set, i, i % 3);
        ck_assert_uint_eq(ac_joinset_len(f->set), MANY);
        f->ac_state = AC_STATE_FIRST;
        ac_joinset_next__init(&f->next, f->set, &f->value, &f->err);
    }
    for (;;) {
        if (ac_joinset_next__poll(&f->next, cx, &f->got) == AC_PENDING)
            return AC_PENDING;
        if (!f->got)
            break;
        ck_assert_int_eq(f->err, 0);
        ck_assert(f->value >= 0 && f->value < MANY && !f->seen[f->value]);
        f->seen[f->value] = 1;
        f->count++;
        ac_joinset_next__init(&f->next, f->set, &f->value, &f->err);
    }
    ck_assert_uint_eq(ac_joinset_len(f->set), 0);
    ac_joinset_free(f->set);
    free(f->seen);
    f->ac_state = AC_STATE_RETURNED;
    *(int *)out = f->count;
    return AC_READY;
}

static void many_drop(void *frame)
{
    many_frame *f = frame;
    if (f->ac_state == AC_STATE_FIRST)
        ac_joinset_next__drop(&f->next);
    f->ac_state = AC_STATE_RETURNED;
}

static const ac_future_vt many_vt = {
    sizeof(many_frame), _Alignof(many_frame), sizeof(int), many_poll, many_drop, "many",
};

START_TEST(ten_thousand_tasks_in_one_set_on_two_workers_are_all_joined)
{
    /* The set's owner is the block_on thread: its spawns are published in
     * batches, and the two workers complete them. */
    memset(&cnt, 0, sizeof cnt);
    ac_runtime *rt = new_runtime(AC_RUNTIME_MULTI_THREAD, 0);
    many_frame f = {0};
    int count = -1;
    ck_assert_int_eq(ac_runtime_block_on(rt, &many_vt, &f, &count), 0);
    ck_assert_int_eq(count, MANY);
    ck_assert_int_eq(atomic_load(&cnt.drops), MANY);
    ac_runtime_free(rt);
}
END_TEST

/* The root spawns a `many` task and joins it. */
static ac_poll_t owner_task_body(script *s, ac_context *cx, int *out)
{
    struct ac_join__frame *join = s->p;
    switch (s->step) {
    case 0: {
        many_frame *fr = ac__task_frame_new(&many_vt);
        memset(fr, 0, sizeof *fr);
        ac_join__init(join, ac__spawn(fr), &s->err);
        s->step = 1;
    }
        /* fallthrough */
    case 1:
        if (ac_join__poll(join, cx, out) == AC_PENDING)
            return AC_PENDING;
        ck_assert_int_eq(s->err, 0);
        return AC_READY;
    }
    ac__bad_resume("script", (unsigned)s->step);
}

START_TEST(ten_thousand_tasks_in_a_set_owned_by_a_task_are_all_joined)
{
    /* The set's owner is a task on a worker: its spawns go to that worker's
     * queues, the other worker steals them, and some complete before
     * ac__joinset_spawn has installed the set's waker. */
    memset(&cnt, 0, sizeof cnt);
    struct ac_join__frame join;
    script s;
    int count = -1;
    ck_assert_int_eq(run_script(AC_RUNTIME_MULTI_THREAD, 0, owner_task_body, &s, &join, &count), 0);
    ck_assert_int_eq(count, MANY);
    ck_assert_int_eq(atomic_load(&cnt.drops), MANY);
}
END_TEST

/* ------------------------------------------------------------------------ */

static Suite *joinset_suite(void)
{
    Suite *s = suite_create("runtime_joinset");

    TCase *tc = tcase_create("next");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, next_returns_results_in_completion_order_of_yields);
    tcase_add_test(tc, next_returns_results_in_completion_order_of_sleeps);
    tcase_add_test(tc, len_counts_down_as_next_returns_tasks);
    tcase_add_test(tc, next_on_an_empty_set_returns_zero_at_once);
    tcase_add_test(tc, void_tasks_are_returned_with_a_null_out);
    tcase_add_test(tc, completion_wakes_a_pending_next_without_busy_polling);
    tcase_add_test(tc, dropping_a_pending_next_releases_its_waker);
    tcase_add_test(tc, ready_results_spend_the_coop_budget_and_yield);
    suite_add_tcase(s, tc);

    tc = tcase_create("abort_and_free");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, abort_all_makes_unfinished_tasks_report_cancelled);
    tcase_add_test(tc, abort_after_completion_keeps_the_output);
    tcase_add_test(tc, free_with_running_tasks_aborts_them_and_runs_their_drops);
    tcase_add_test(tc, free_racing_with_completions_drops_every_task_once);
    suite_add_tcase(s, tc);

    tc = tcase_create("panics");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, panicking_task_is_reported_as_panicked);
    tcase_add_test(tc, next_without_err_panics_the_awaiter_of_a_failed_task);
    suite_add_tcase(s, tc);

    tc = tcase_create("many");
    tcase_set_timeout(tc, 120); /* valgrind and TSAN are slow */
    tcase_add_test(tc, ten_thousand_tasks_in_one_set_on_two_workers_are_all_joined);
    tcase_add_test(tc, ten_thousand_tasks_in_a_set_owned_by_a_task_are_all_joined);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(joinset_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/*
 * runtime_spawn.c: spawned tasks and their JoinHandles (sched.c, task.c):
 * spawn and join, abort, is_finished, detach, panics, the join waker, and the
 * cooperative budget of ready joins.
 *
 * The futures are lowered by hand as docs/runtime-abi.md describes. A test's
 * async code is a `script`: a root future whose poll runs the test's body,
 * a switch on `step` that resumes where the last poll returned pending, with
 * an embedded join frame, as generated code embeds ac_join__frame. Spawned
 * futures count their polls and drops in shared counters.
 */
#define ASYNCC_RUNTIME_INTERNAL 1
#include <asyncc.h>

#include "../../runtime/src/internal.h"

#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "value_future.h"

/* ------------------------------------------------------------------------ */
/* Futures (value_future.h has the value future)                            */
/* ------------------------------------------------------------------------ */

/* What generated code does for `ac_spawn(value(v, yields, c))`. */
static int *spawn_value(int v, int yields, counters *c)
{
    void *fr = ac__task_frame_new(&value_vt);
    value__init(fr, v, yields, c);
    return ac__spawn(fr);
}

/* A one-waiter event, set from any thread (docs/runtime-abi.md's example). */
typedef struct signal_ {
    pthread_mutex_t mu; /* guards the fields below */
    bool set;           /* the event happened */
    bool waiting;       /* waker holds a clone */
    ac_waker waker;     /* the waiter's waker */
} signal_;

#define SIGNAL_INIT {.mu = PTHREAD_MUTEX_INITIALIZER}

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

/* async(int) wait(signal_ *s, int v): returns v once s is set. */
typedef struct wait_frame {
    unsigned ac_state; /* 0 unresumed, 1 returned, 3 waiting */
    signal_ *s;        /* parameter */
    int v;             /* parameter */
    counters *c;       /* parameter */
} wait_frame;

static void wait__init(void *frame, signal_ *s, int v, counters *c)
{
    wait_frame *f = frame;
    f->ac_state = AC_STATE_UNRESUMED;
    f->s = s;
    f->v = v;
    f->c = c;
}

static ac_poll_t wait_poll(void *frame, ac_context *cx, void *out)
{
    wait_frame *f = frame;
    atomic_fetch_add(&f->c->polls, 1);
    pthread_mutex_lock(&f->s->mu);
    if (f->s->set) {
        pthread_mutex_unlock(&f->s->mu);
        f->ac_state = AC_STATE_RETURNED;
        *(int *)out = f->v;
        atomic_fetch_add(&f->c->done, 1);
        return AC_READY;
    }
    if (f->s->waiting)
        ac_waker_drop(f->s->waker);
    f->s->waker = ac_waker_clone(cx->waker);
    f->s->waiting = true;
    pthread_mutex_unlock(&f->s->mu);
    f->ac_state = AC_STATE_FIRST;
    return AC_PENDING;
}

static void wait_drop(void *frame)
{
    wait_frame *f = frame;
    atomic_fetch_add(&f->c->drops, 1);
    if (f->ac_state == AC_STATE_FIRST) {
        pthread_mutex_lock(&f->s->mu);
        if (f->s->waiting)
            ac_waker_drop(f->s->waker);
        f->s->waiting = false;
        pthread_mutex_unlock(&f->s->mu);
    }
    f->ac_state = AC_STATE_RETURNED;
}

static const ac_future_vt wait_vt = {
    sizeof(wait_frame), _Alignof(wait_frame), sizeof(int), wait_poll, wait_drop, "wait",
};

static int *spawn_wait(signal_ *s, int v, counters *c)
{
    void *fr = ac__task_frame_new(&wait_vt);
    wait__init(fr, s, v, c);
    return ac__spawn(fr);
}

/* async(int) boom(int when): yields `when` times, then panics. */
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

/* A future with a large output and an over-aligned frame. */
typedef struct big_out {
    long words[8]; /* 64 bytes of output */
} big_out;

typedef struct big_frame {
    _Alignas(64) unsigned ac_state; /* 0 unresumed, 1 returned */
    long seed;                      /* parameter */
} big_frame;

static ac_poll_t big_poll(void *frame, ac_context *cx, void *out)
{
    big_frame *f = frame;
    (void)cx;
    ck_assert_uint_eq((uintptr_t)frame % 64, 0);
    big_out *o = out;
    for (int i = 0; i < 8; i++)
        o->words[i] = f->seed + i;
    f->ac_state = AC_STATE_RETURNED;
    return AC_READY;
}

static void big_drop(void *frame) { ((big_frame *)frame)->ac_state = AC_STATE_RETURNED; }

static const ac_future_vt big_vt = {
    sizeof(big_frame), _Alignof(big_frame), sizeof(big_out), big_poll, big_drop, "big",
};

/* ------------------------------------------------------------------------ */
/* Scripts: root futures whose poll is a test's body                        */
/* ------------------------------------------------------------------------ */

typedef struct script script;
typedef ac_poll_t (*body_fn)(script *s, ac_context *cx, int *out);

struct script {
    unsigned ac_state;          /* 0 unresumed, 1 returned, 3 running */
    body_fn body;               /* the test's code */
    int step;                   /* where the body resumes */
    int *h;                     /* a JoinHandle */
    struct ac_join__frame join; /* an await of a handle; handle NULL when idle */
    int err;                    /* the join's error */
    int value;                  /* the join's output */
    int polls;                  /* times polled */
    long i;                     /* a loop counter */
    void *p;                    /* test data */
};

static ac_poll_t script_poll(void *frame, ac_context *cx, void *out)
{
    script *s = frame;
    s->polls++;
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

/* Starts awaiting h; the body then calls join_poll until it is ready. */
static void join_start(script *s, int *h)
{
    ac_join__init(&s->join, h, &s->err);
}

static ac_poll_t join_poll(script *s, ac_context *cx)
{
    return ac_join__poll(&s->join, cx, &s->value);
}

static ac_runtime *new_runtime(int flavor, unsigned workers)
{
    ac_runtime_config c;
    ac_runtime_config_init(&c);
    c.flavor = flavor;
    c.workers = workers;
    ac_runtime *rt = NULL;
    ck_assert_int_eq(ac_runtime_new(&c, &rt), 0);
    return rt;
}

/* Runs body as the root future of a fresh runtime; returns block_on's
 * result, the output in *out. */
static int run_script_on(int flavor, unsigned workers, body_fn body, script *s, void *p, int *out)
{
    ac_runtime *rt = new_runtime(flavor, workers);
    memset(s, 0, sizeof *s);
    s->body = body;
    s->p = p;
    int err = ac_runtime_block_on(rt, &script_vt, s, out);
    ac_runtime_free(rt);
    return err;
}

/* run_script_on two workers (a multi-thread runtime's). */
static int run_script(int flavor, body_fn body, script *s, void *p, int *out)
{
    return run_script_on(flavor, 2, body, s, p, out);
}

static counters cnt; /* reset by each test (each runs in its own process) */

/* ------------------------------------------------------------------------ */
/* Spawn and join                                                           */
/* ------------------------------------------------------------------------ */

static ac_poll_t spawn_join_body(script *s, ac_context *cx, int *out)
{
    switch (s->step) {
    case 0:
        join_start(s, spawn_value(42, 3, &cnt));
        s->step = 1;
        /* fallthrough */
    case 1:
        if (join_poll(s, cx) == AC_PENDING)
            return AC_PENDING;
        *out = s->value;
        return AC_READY;
    }
    ac__bad_resume("script", (unsigned)s->step);
}

START_TEST(spawn_then_join_returns_the_output)
{
    for (int flavor = 0; flavor <= 1; flavor++) {
        memset(&cnt, 0, sizeof cnt);
        script s;
        int out = 0;
        ck_assert_int_eq(run_script(flavor, spawn_join_body, &s, NULL, &out), 0);
        ck_assert_int_eq(out, 42);
        ck_assert_int_eq(s.err, 0);
        ck_assert_int_eq(atomic_load(&cnt.polls), 4);
        ck_assert_int_eq(atomic_load(&cnt.drops), 1); /* the ABI's drop after ready */
        ck_assert_ptr_null(s.join.handle);             /* consumed */
    }
}
END_TEST

/* Spawns `n` tasks, records their threads, joins them all. */
static pthread_t task_threads[64];

static ac_poll_t thread_poll(void *frame, ac_context *cx, void *out)
{
    value_frame *f = frame;
    (void)cx;
    task_threads[f->v] = pthread_self();
    *(int *)out = f->v;
    f->ac_state = AC_STATE_RETURNED;
    return AC_READY;
}

static const ac_future_vt thread_vt = {
    sizeof(value_frame), _Alignof(value_frame), sizeof(int), thread_poll, value_drop, "thread",
};

static ac_poll_t threads_body(script *s, ac_context *cx, int *out)
{
    int **hs = s->p;
    switch (s->step) {
    case 0:
        for (int i = 0; i < 64; i++) {
            void *fr = ac__task_frame_new(&thread_vt);
            value__init(fr, i, 0, &cnt);
            hs[i] = ac__spawn(fr);
        }
        s->step = 1;
        for (s->i = 0; s->i < 64; s->i++) {
            join_start(s, hs[s->i]);
            /* fallthrough */
    case 1:
            if (join_poll(s, cx) == AC_PENDING)
                return AC_PENDING;
            ck_assert_int_eq(s->value, (int)s->i);
        }
        *out = 0;
        return AC_READY;
    }
    ac__bad_resume("script", (unsigned)s->step);
}

START_TEST(current_thread_runtime_runs_tasks_on_the_calling_thread)
{
    int *hs[64];
    script s;
    int out = -1;
    ck_assert_int_eq(run_script(AC_RUNTIME_CURRENT_THREAD, threads_body, &s, hs, &out), 0);
    for (int i = 0; i < 64; i++)
        ck_assert(pthread_equal(task_threads[i], pthread_self()));
}
END_TEST

START_TEST(multi_thread_runtime_runs_tasks_on_worker_threads)
{
    int *hs[64];
    script s;
    int out = -1;
    ck_assert_int_eq(run_script(AC_RUNTIME_MULTI_THREAD, threads_body, &s, hs, &out), 0);
    for (int i = 0; i < 64; i++)
        ck_assert(!pthread_equal(task_threads[i], pthread_self()));
}
END_TEST

static ac_poll_t big_body(script *s, ac_context *cx, int *out)
{
    big_out *got = s->p;
    switch (s->step) {
    case 0: {
        void *fr = ac__task_frame_new(&big_vt);
        ck_assert_uint_eq((uintptr_t)fr % 64, 0);
        ((big_frame *)fr)->ac_state = AC_STATE_UNRESUMED;
        ((big_frame *)fr)->seed = 1000;
        void *h = ac__spawn(fr);
        ck_assert_uint_eq((uintptr_t)h % 16, 0);
        ac_join__init(&s->join, h, &s->err);
        s->step = 1;
    }
        /* fallthrough */
    case 1:
        if (ac_join__poll(&s->join, cx, got) == AC_PENDING)
            return AC_PENDING;
        *out = 0;
        return AC_READY;
    }
    ac__bad_resume("script", (unsigned)s->step);
}

START_TEST(join_copies_a_large_output_of_an_over_aligned_future)
{
    big_out got;
    memset(&got, 0, sizeof got);
    script s;
    int out = -1;
    ck_assert_int_eq(run_script(AC_RUNTIME_MULTI_THREAD, big_body, &s, &got, &out), 0);
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(got.words[i], 1000 + i);
}
END_TEST

/* A task joins a task that another task completes: wakes cross workers. */
static ac_poll_t middle_poll(void *frame, ac_context *cx, void *out)
{
    script *s = frame; /* reuses the script frame as a spawned future */
    switch (s->step) {
    case 0:
        join_start(s, spawn_value(5, 10, &cnt));
        s->step = 1;
        /* fallthrough */
    case 1:
        if (join_poll(s, cx) == AC_PENDING)
            return AC_PENDING;
        *(int *)out = s->value * 2;
        s->ac_state = AC_STATE_RETURNED;
        return AC_READY;
    }
    ac__bad_resume("middle", (unsigned)s->step);
}

static const ac_future_vt middle_vt = {
    sizeof(script), _Alignof(script), sizeof(int), middle_poll, script_drop, "middle",
};

static ac_poll_t chain_body(script *s, ac_context *cx, int *out)
{
    int **hs = s->p;
    switch (s->step) {
    case 0:
        for (int i = 0; i < 50; i++) {
            void *fr = ac__task_frame_new(&middle_vt);
            memset(fr, 0, sizeof(script));
            hs[i] = ac__spawn(fr);
        }
        s->step = 1;
        for (s->i = 0; s->i < 50; s->i++) {
            join_start(s, hs[s->i]);
            /* fallthrough */
    case 1:
            if (join_poll(s, cx) == AC_PENDING)
                return AC_PENDING;
            ck_assert_int_eq(s->err, 0);
            ck_assert_int_eq(s->value, 10);
        }
        *out = 0;
        return AC_READY;
    }
    ac__bad_resume("script", (unsigned)s->step);
}

START_TEST(tasks_join_tasks_that_run_on_other_workers)
{
    int *hs[50];
    for (int flavor = 0; flavor <= 1; flavor++) {
        script s;
        int out = -1;
        ck_assert_int_eq(run_script(flavor, chain_body, &s, hs, &out), 0);
    }
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Abort, is_finished, detach                                               */
/* ------------------------------------------------------------------------ */

static ac_poll_t abort_unstarted_body(script *s, ac_context *cx, int *out)
{
    switch (s->step) {
    case 0:
        /* Current-thread: the task cannot run before we return pending. */
        s->h = spawn_value(7, 0, &cnt);
        ck_assert_int_eq(ac_handle_abort(s->h), 0);
        ck_assert_int_eq(ac_handle_abort(s->h), 0); /* twice is harmless */
        join_start(s, s->h);
        s->step = 1;
        /* fallthrough */
    case 1:
        if (join_poll(s, cx) == AC_PENDING)
            return AC_PENDING;
        *out = s->value;
        return AC_READY;
    }
    ac__bad_resume("script", (unsigned)s->step);
}

START_TEST(abort_before_the_task_runs_cancels_it_and_runs_its_drop)
{
    memset(&cnt, 0, sizeof cnt);
    script s;
    int out = -1;
    ck_assert_int_eq(run_script(AC_RUNTIME_CURRENT_THREAD, abort_unstarted_body, &s, NULL, &out), 0);
    ck_assert_int_eq(s.err, AC_ECANCELED);
    ck_assert_int_eq(out, 0); /* zero-filled */
    ck_assert_int_eq(atomic_load(&cnt.polls), 0);
    ck_assert_int_eq(atomic_load(&cnt.drops), 1);
}
END_TEST

static ac_poll_t abort_pending_body(script *s, ac_context *cx, int *out)
{
    signal_ *never = s->p;
    switch (s->step) {
    case 0:
        s->h = spawn_wait(never, 1, &cnt);
        s->step = 1;
        /* fallthrough */
    case 1:
        /* Let the task reach its suspension point first. */
        if (atomic_load(&cnt.polls) == 0) {
            ac_waker_wake_by_ref(cx->waker);
            return AC_PENDING;
        }
        ck_assert_int_eq(ac_handle_is_finished(s->h), 0);
        ck_assert_int_eq(ac_handle_abort(s->h), 0);
        join_start(s, s->h);
        s->step = 2;
        /* fallthrough */
    case 2:
        if (join_poll(s, cx) == AC_PENDING)
            return AC_PENDING;
        *out = 0;
        return AC_READY;
    }
    ac__bad_resume("script", (unsigned)s->step);
}

START_TEST(abort_of_a_pending_task_cancels_it_at_its_suspension)
{
    for (int flavor = 0; flavor <= 1; flavor++) {
        memset(&cnt, 0, sizeof cnt);
        signal_ never = SIGNAL_INIT;
        script s;
        int out = -1;
        ck_assert_int_eq(run_script(flavor, abort_pending_body, &s, &never, &out), 0);
        ck_assert_int_eq(s.err, AC_ECANCELED);
        ck_assert_int_eq(atomic_load(&cnt.polls), 1);
        ck_assert_int_eq(atomic_load(&cnt.drops), 1);
        ck_assert(!never.waiting); /* the drop gave the waker back */
    }
}
END_TEST

static ac_poll_t abort_finished_body(script *s, ac_context *cx, int *out)
{
    switch (s->step) {
    case 0:
        s->h = spawn_value(9, 2, &cnt);
        s->step = 1;
        /* fallthrough */
    case 1:
        if (!ac_handle_is_finished(s->h)) {
            ac_waker_wake_by_ref(cx->waker);
            return AC_PENDING;
        }
        ck_assert_int_eq(ac_handle_abort(s->h), 0); /* too late: harmless */
        join_start(s, s->h);
        s->step = 2;
        /* fallthrough */
    case 2:
        if (join_poll(s, cx) == AC_PENDING)
            return AC_PENDING;
        *out = s->value;
        return AC_READY;
    }
    ac__bad_resume("script", (unsigned)s->step);
}

START_TEST(abort_after_completion_keeps_the_output)
{
    for (int flavor = 0; flavor <= 1; flavor++) {
        memset(&cnt, 0, sizeof cnt);
        script s;
        int out = -1;
        ck_assert_int_eq(run_script(flavor, abort_finished_body, &s, NULL, &out), 0);
        ck_assert_int_eq(s.err, 0);
        ck_assert_int_eq(out, 9);
    }
}
END_TEST

static ac_poll_t is_finished_body(script *s, ac_context *cx, int *out)
{
    signal_ *sig = s->p;
    switch (s->step) {
    case 0:
        s->h = spawn_wait(sig, 3, &cnt);
        s->step = 1;
        /* fallthrough */
    case 1:
        if (atomic_load(&cnt.polls) == 0) {
            ac_waker_wake_by_ref(cx->waker);
            return AC_PENDING;
        }
        ck_assert_int_eq(ac_handle_is_finished(s->h), 0);
        signal_set(sig);
        s->step = 2;
        /* fallthrough */
    case 2:
        if (!ac_handle_is_finished(s->h)) {
            ac_waker_wake_by_ref(cx->waker);
            return AC_PENDING;
        }
        join_start(s, s->h);
        s->step = 3;
        /* fallthrough */
    case 3:
        if (join_poll(s, cx) == AC_PENDING)
            return AC_PENDING;
        *out = s->value;
        return AC_READY;
    }
    ac__bad_resume("script", (unsigned)s->step);
}

START_TEST(is_finished_turns_true_when_the_task_completes)
{
    for (int flavor = 0; flavor <= 1; flavor++) {
        memset(&cnt, 0, sizeof cnt);
        signal_ sig = SIGNAL_INIT;
        script s;
        int out = -1;
        ck_assert_int_eq(run_script(flavor, is_finished_body, &s, &sig, &out), 0);
        ck_assert_int_eq(out, 3);
        ck_assert_int_eq(ac_handle_is_finished(NULL), 0);
        ck_assert_int_eq(ac_handle_abort(NULL), AC_EINVAL);
        ac_handle_detach(NULL);
    }
}
END_TEST

static ac_poll_t detach_body(script *s, ac_context *cx, int *out)
{
    switch (s->step) {
    case 0:
        ac_handle_detach(spawn_value(1, 20, &cnt));
        s->step = 1;
        /* fallthrough */
    case 1:
        if (atomic_load(&cnt.done) == 0) {
            ac_waker_wake_by_ref(cx->waker);
            return AC_PENDING;
        }
        *out = 0;
        return AC_READY;
    }
    ac__bad_resume("script", (unsigned)s->step);
}

START_TEST(detached_task_keeps_running_to_completion)
{
    for (int flavor = 0; flavor <= 1; flavor++) {
        memset(&cnt, 0, sizeof cnt);
        script s;
        int out = -1;
        ck_assert_int_eq(run_script(flavor, detach_body, &s, NULL, &out), 0);
        ck_assert_int_eq(atomic_load(&cnt.polls), 21);
        ck_assert_int_eq(atomic_load(&cnt.done), 1);
    }
}
END_TEST

static ac_poll_t drop_join_body(script *s, ac_context *cx, int *out)
{
    signal_ *sig = s->p;
    switch (s->step) {
    case 0:
        join_start(s, spawn_wait(sig, 4, &cnt));
        s->step = 1;
        /* fallthrough */
    case 1:
        ck_assert_int_eq(join_poll(s, cx), AC_PENDING); /* leaves our waker with the task */
        ac_join__drop(&s->join);                         /* gives up: detaches */
        ck_assert_ptr_null(s->join.handle);
        signal_set(sig);
        s->step = 2;
        /* fallthrough */
    case 2:
        if (atomic_load(&cnt.done) == 0) {
            ac_waker_wake_by_ref(cx->waker);
            return AC_PENDING;
        }
        *out = 0;
        return AC_READY;
    }
    ac__bad_resume("script", (unsigned)s->step);
}

START_TEST(dropping_a_join_in_progress_detaches_the_task)
{
    for (int flavor = 0; flavor <= 1; flavor++) {
        memset(&cnt, 0, sizeof cnt);
        signal_ sig = SIGNAL_INIT;
        script s;
        int out = -1;
        ck_assert_int_eq(run_script(flavor, drop_join_body, &s, &sig, &out), 0);
        ck_assert_int_eq(atomic_load(&cnt.done), 1);
    }
}
END_TEST

/* A waker that counts, for polling a join by hand. */
typedef struct probe {
    atomic_int clones, wakes, drops; /* operations seen */
} probe;

static const ac_waker_vtable probe_vtable;
static ac_waker probe_clone(const void *d)
{
    atomic_fetch_add(&((probe *)(uintptr_t)d)->clones, 1);
    return (ac_waker){&probe_vtable, d};
}
static void probe_wake(const void *d)
{
    atomic_fetch_add(&((probe *)(uintptr_t)d)->wakes, 1);
    atomic_fetch_add(&((probe *)(uintptr_t)d)->drops, 1);
}
static void probe_wake_by_ref(const void *d) { atomic_fetch_add(&((probe *)(uintptr_t)d)->wakes, 1); }
static void probe_drop(const void *d) { atomic_fetch_add(&((probe *)(uintptr_t)d)->drops, 1); }
static const ac_waker_vtable probe_vtable = {probe_clone, probe_wake, probe_wake_by_ref, probe_drop};

typedef struct rewaker_data {
    signal_ sig; /* what the task waits for */
    probe a, b;  /* the two wakers' counts */
} rewaker_data;

static ac_poll_t rewaker_body(script *s, ac_context *cx, int *out)
{
    rewaker_data *d = s->p;
    (void)cx;
    ac_waker wa = {&probe_vtable, &d->a}, wb = {&probe_vtable, &d->b};
    ac_context ca = {.waker = &wa}, cb = {.waker = &wb};
    struct ac_join__frame j;
    int err = -1, v = -1;
    ac_join__init(&j, spawn_wait(&d->sig, 8, &cnt), &err);
    ck_assert_int_eq(ac_join__poll(&j, &ca, &v), AC_PENDING);
    ck_assert_int_eq(ac_join__poll(&j, &ca, &v), AC_PENDING); /* same waker: kept */
    ck_assert_int_eq(atomic_load(&d->a.clones), 1);
    ck_assert_int_eq(ac_join__poll(&j, &cb, &v), AC_PENDING); /* another: replaced */
    ck_assert_int_eq(atomic_load(&d->a.drops), 1);
    signal_set(&d->sig);
    while (!ac_handle_is_finished(j.handle))
        sched_yield();
    ck_assert_int_eq(atomic_load(&d->a.wakes), 0);
    ck_assert_int_eq(ac_join__poll(&j, &cb, &v), AC_READY);
    ck_assert_int_eq(v, 8);
    ck_assert_int_eq(err, 0);
    *out = 0;
    return AC_READY;
}

START_TEST(join_wakes_the_waker_of_its_latest_poll)
{
    memset(&cnt, 0, sizeof cnt);
    rewaker_data d = {SIGNAL_INIT, {0}, {0}};
    script s;
    int out = -1;
    ck_assert_int_eq(run_script(AC_RUNTIME_MULTI_THREAD, rewaker_body, &s, &d, &out), 0);
    ck_assert_int_eq(atomic_load(&d.b.wakes), 1);
    /* Every clone given back. */
    ck_assert_int_eq(atomic_load(&d.a.clones), atomic_load(&d.a.drops));
    ck_assert_int_eq(atomic_load(&d.b.clones), atomic_load(&d.b.drops));
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Cooperative budget                                                       */
/* ------------------------------------------------------------------------ */

static ac_poll_t ready_joins_body(script *s, ac_context *cx, int *out)
{
    int **hs = s->p;
    switch (s->step) {
    case 0:
        for (int i = 0; i < 1000; i++)
            hs[i] = spawn_value(i, 0, &cnt);
        s->step = 1;
        /* fallthrough */
    case 1:
        if (atomic_load(&cnt.done) < 1000) {
            ac_waker_wake_by_ref(cx->waker);
            return AC_PENDING;
        }
        s->polls = 0; /* from here on, every join is ready at once */
        s->step = 2;
        for (s->i = 0; s->i < 1000; s->i++) {
            join_start(s, hs[s->i]);
            /* fallthrough */
    case 2:
            if (join_poll(s, cx) == AC_PENDING)
                return AC_PENDING;
            ck_assert_int_eq(s->value, (int)s->i);
        }
        *out = s->polls;
        return AC_READY;
    }
    ac__bad_resume("script", (unsigned)s->step);
}

START_TEST(ready_joins_spend_the_coop_budget_and_yield)
{
    int *hs[1000];
    for (int flavor = 0; flavor <= 1; flavor++) {
        memset(&cnt, 0, sizeof cnt);
        script s;
        int polls = 0;
        ck_assert_int_eq(run_script(flavor, ready_joins_body, &s, hs, &polls), 0);
        /* 1000 ready joins with 128 units per poll take at least 8 polls;
         * the count starts after the first of them. */
        ck_assert_int_ge(polls + 1, (1000 + 127) / 128);
    }
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

static ac_poll_t panic_join_body(script *s, ac_context *cx, int *out)
{
    switch (s->step) {
    case 0: {
        void *fr = ac__task_frame_new(&boom_vt);
        value__init(fr, 17, 2, &cnt);
        join_start(s, ac__spawn(fr));
        s->step = 1;
    }
        /* fallthrough */
    case 1:
        if (join_poll(s, cx) == AC_PENDING)
            return AC_PENDING;
        *out = s->value;
        return AC_READY;
    }
    ac__bad_resume("script", (unsigned)s->step);
}

START_TEST(panic_in_a_task_is_reported_to_its_join_and_the_process_survives)
{
    for (int flavor = 0; flavor <= 1; flavor++) {
        memset(&cnt, 0, sizeof cnt);
        capture_stderr();
        script s;
        int out = -1;
        ck_assert_int_eq(run_script(flavor, panic_join_body, &s, NULL, &out), 0);
        ck_assert_int_eq(s.err, AC_EPANIC);
        ck_assert_int_eq(out, 0);
        ck_assert_int_eq(atomic_load(&cnt.polls), 3);
        ck_assert_int_eq(atomic_load(&cnt.drops), 1);
        ck_assert_str_eq(stderr_text(), "asyncc: task panicked: boom 17\n");
    }
}
END_TEST

/* A future that spawns a value task (its value: this future's v), leaves
 * the handle in `child_handle`, and panics in the same poll. On a worker the
 * child sits in that worker's LIFO slot when the panic abandons the turn. */
static int *child_handle;

static ac_poll_t spawn_then_boom_poll(void *frame, ac_context *cx, void *out)
{
    (void)cx, (void)out;
    value_frame *f = frame;
    atomic_fetch_add(&f->c->polls, 1);
    void *fr = ac__task_frame_new(&value_vt);
    value__init(fr, f->v, 0, f->c);
    child_handle = ac__spawn(fr);
    ac_panic("after spawning %d", f->v);
}

static const ac_future_vt spawn_then_boom_vt = {
    sizeof(value_frame), _Alignof(value_frame), sizeof(int), spawn_then_boom_poll, value_drop,
    "spawn_then_boom",
};

enum { PANIC_ROUNDS = 200 };

static ac_poll_t panics_in_a_row_body(script *s, ac_context *cx, int *out)
{
    switch (s->step) {
    case 0:
        for (s->i = 0; s->i < PANIC_ROUNDS; s->i++) {
            {
                void *fr = ac__task_frame_new(&spawn_then_boom_vt);
                value__init(fr, (int)s->i, 0, &cnt);
                join_start(s, ac__spawn(fr));
            }
            s->step = 1;
            /* fallthrough */
    case 1:
            if (join_poll(s, cx) == AC_PENDING)
                return AC_PENDING;
            ck_assert_int_eq(s->err, AC_EPANIC);
            join_start(s, child_handle);
            s->step = 2;
            /* fallthrough */
    case 2:
            if (join_poll(s, cx) == AC_PENDING)
                return AC_PENDING;
            ck_assert_int_eq(s->err, 0);
            ck_assert_int_eq(s->value, (int)s->i);
        }
        *out = 0;
        return AC_READY;
    }
    ac__bad_resume("script", (unsigned)s->step);
}

START_TEST(worker_survives_panics_and_runs_what_the_panicking_poll_spawned)
{
    /* One worker, so that each child is in the panicking worker's LIFO slot
     * (which no other worker may take): it must still run. Both flavors. */
    for (int flavor = 0; flavor <= 1; flavor++) {
        memset(&cnt, 0, sizeof cnt);
        capture_stderr();
        script s;
        int out = -1;
        ck_assert_int_eq(run_script_on(flavor, 1, panics_in_a_row_body, &s, NULL, &out), 0);
        ck_assert_int_eq(out, 0);
        ck_assert_int_eq(atomic_load(&cnt.done), PANIC_ROUNDS);     /* the children */
        ck_assert_int_eq(atomic_load(&cnt.drops), 2 * PANIC_ROUNDS); /* each future once */
        ck_assert_int_eq(atomic_load(&cnt.polls), 2 * PANIC_ROUNDS);
        ck_assert(strstr(stderr_text(), "asyncc: task panicked: after spawning 0\n") != NULL);
    }
}
END_TEST

static ac_poll_t unwrap_body(script *s, ac_context *cx, int *out)
{
    switch (s->step) {
    case 0: {
        void *fr = ac__task_frame_new(&boom_vt);
        value__init(fr, 3, 0, &cnt);
        ac_join__init(&s->join, ac__spawn(fr), NULL); /* no err: unwrap */
        s->step = 1;
    }
        /* fallthrough */
    case 1:
        if (ac_join__poll(&s->join, cx, &s->value) == AC_PENDING)
            return AC_PENDING;
        *out = 1; /* not reached */
        return AC_READY;
    }
    ac__bad_resume("script", (unsigned)s->step);
}

START_TEST(join_without_error_pointer_panics_the_joiner_of_a_failed_task)
{
    for (int flavor = 0; flavor <= 1; flavor++) {
        capture_stderr();
        script s;
        int out = -1;
        ck_assert_int_eq(run_script(flavor, unwrap_body, &s, NULL, &out), AC_EPANIC);
        ck_assert_int_eq(out, -1);
        ck_assert_str_eq(stderr_text(), "asyncc: task panicked: boom 3\n"
                                        "asyncc: task panicked: joined task 'boom' panicked\n");
    }
}
END_TEST

START_TEST(panic_in_the_block_on_future_returns_epanic)
{
    capture_stderr();
    value_frame f;
    int out = -1;
    value__init(&f, 5, 1, &cnt);
    ck_assert_int_eq(ac_block_on(&boom_vt, &f, &out), AC_EPANIC);
    for (int flavor = 0; flavor <= 1; flavor++) {
        ac_runtime *rt = new_runtime(flavor, 2);
        value__init(&f, 5, 1, &cnt);
        ck_assert_int_eq(ac_runtime_block_on(rt, &boom_vt, &f, &out), AC_EPANIC);
        ac_runtime_free(rt);
    }
    ck_assert_int_eq(atomic_load(&cnt.drops), 3);
    ck_assert_int_eq(out, -1);
    ck_assert_str_eq(stderr_text(), "asyncc: task panicked: boom 5\n"
                                    "asyncc: task panicked: boom 5\n"
                                    "asyncc: task panicked: boom 5\n");
}
END_TEST

/* Runs fn in a child with stderr on a pipe; returns what it printed and
 * checks that it died of SIGABRT. */
static const char *run_aborting(void (*fn)(void))
{
    static char buf[512];
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    ck_assert_int_ne(pid, -1);
    if (pid == 0) {
        dup2(fds[1], STDERR_FILENO);
        close(fds[0]);
        close(fds[1]);
        fn();
        _exit(0);
    }
    close(fds[1]);
    size_t len = 0;
    ssize_t n;
    while (len < sizeof buf - 1 && (n = read(fds[0], buf + len, sizeof buf - 1 - len)) > 0)
        len += (size_t)n;
    buf[len] = '\0';
    close(fds[0]);
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFSIGNALED(status));
    ck_assert_int_eq(WTERMSIG(status), SIGABRT);
    return buf;
}

static void panic_here(void) { ac_panic("no task %d", 1); }

static void spawn_here(void)
{
    void *fr = ac__task_frame_new(&value_vt);
    value__init(fr, 1, 0, &cnt);
    ac__spawn(fr);
}

/* Joins a task's handle, then joins (mode 0), detaches (1), aborts (2) or
 * asks is_finished (3) of the same handle, whose slot is free by then. */
static int reuse_mode;

static ac_poll_t join_twice_body(script *s, ac_context *cx, int *out)
{
    switch (s->step) {
    case 0:
        s->h = spawn_value(5, 1, &cnt);
        join_start(s, s->h);
        s->step = 1;
        /* fallthrough */
    case 1:
        if (join_poll(s, cx) == AC_PENDING)
            return AC_PENDING;
        if (reuse_mode == 1)
            ac_handle_detach(s->h);
        else if (reuse_mode == 2)
            ac_handle_abort(s->h);
        else if (reuse_mode == 3)
            (void)ac_handle_is_finished(s->h);
        join_start(s, s->h);
        s->step = 2;
        /* fallthrough */
    case 2:
        if (join_poll(s, cx) == AC_PENDING)
            return AC_PENDING;
        *out = s->value;
        return AC_READY;
    }
    ac__bad_resume("script", (unsigned)s->step);
}

static void join_twice_here(void)
{
    script s;
    int out = 0;
    run_script(AC_RUNTIME_CURRENT_THREAD, join_twice_body, &s, NULL, &out);
}

START_TEST(a_handle_used_after_its_join_aborts_with_a_message)
{
    static const char *const what[] = {"ac_join", "ac_handle_detach", "ac_handle_abort",
                                       "ac_handle_is_finished"};
    for (reuse_mode = 0; reuse_mode < 4; reuse_mode++) {
        char want[128];
        snprintf(want, sizeof want,
                 "asyncc: %s of a JoinHandle that was already joined or detached\n",
                 what[reuse_mode]);
        ck_assert_str_eq(run_aborting(join_twice_here), want);
    }
}
END_TEST

START_TEST(panic_outside_a_task_aborts_with_its_message)
{
    ck_assert_str_eq(run_aborting(panic_here), "asyncc: panicked outside a task: no task 1\n");
}
END_TEST

START_TEST(spawn_outside_a_runtime_aborts)
{
    ck_assert_str_eq(run_aborting(spawn_here), "asyncc: ac_spawn called outside a runtime\n");
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Wakes                                                                    */
/* ------------------------------------------------------------------------ */

/* async(int) stash(): keeps two waker clones in `stashed` and completes. */
static ac_waker stashed[2];

static ac_poll_t stash_poll(void *frame, ac_context *cx, void *out)
{
    value_frame *f = frame;
    stashed[0] = ac_waker_clone(cx->waker);
    stashed[1] = ac_waker_clone(cx->waker);
    ac_waker_wake_by_ref(cx->waker); /* woken during its last poll */
    f->ac_state = AC_STATE_RETURNED;
    *(int *)out = 11;
    return AC_READY;
}

static const ac_future_vt stash_vt = {
    sizeof(value_frame), _Alignof(value_frame), sizeof(int), stash_poll, value_drop, "stash",
};

static ac_poll_t stash_body(script *s, ac_context *cx, int *out)
{
    switch (s->step) {
    case 0: {
        void *fr = ac__task_frame_new(&stash_vt);
        value__init(fr, 0, 0, &cnt);
        join_start(s, ac__spawn(fr));
        s->step = 1;
    }
        /* fallthrough */
    case 1:
        if (join_poll(s, cx) == AC_PENDING)
            return AC_PENDING;
        /* The task is complete and its handle consumed: the clones keep its
         * memory; waking them does nothing, twice or not. */
        ac_waker_wake_by_ref(&stashed[0]);
        ac_waker_wake_by_ref(&stashed[0]);
        ac_waker_wake(stashed[0]);
        ac_waker_drop(stashed[1]); /* the last reference: frees the task */
        *out = s->value;
        return AC_READY;
    }
    ac__bad_resume("script", (unsigned)s->step);
}

START_TEST(wake_after_complete_and_double_wake_are_harmless)
{
    for (int flavor = 0; flavor <= 1; flavor++) {
        memset(&cnt, 0, sizeof cnt);
        script s;
        int out = -1;
        ck_assert_int_eq(run_script(flavor, stash_body, &s, NULL, &out), 0);
        ck_assert_int_eq(out, 11);
        ck_assert_int_eq(atomic_load(&cnt.drops), 1);
    }
}
END_TEST

static Suite *spawn_suite(void)
{
    Suite *s = suite_create("runtime_spawn");

    TCase *tc = tcase_create("spawn_and_join");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, spawn_then_join_returns_the_output);
    tcase_add_test(tc, current_thread_runtime_runs_tasks_on_the_calling_thread);
    tcase_add_test(tc, multi_thread_runtime_runs_tasks_on_worker_threads);
    tcase_add_test(tc, join_copies_a_large_output_of_an_over_aligned_future);
    tcase_add_test(tc, tasks_join_tasks_that_run_on_other_workers);
    tcase_add_test(tc, join_wakes_the_waker_of_its_latest_poll);
    tcase_add_test(tc, ready_joins_spend_the_coop_budget_and_yield);
    tcase_add_test(tc, wake_after_complete_and_double_wake_are_harmless);
    suite_add_tcase(s, tc);

    tc = tcase_create("handles");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, abort_before_the_task_runs_cancels_it_and_runs_its_drop);
    tcase_add_test(tc, abort_of_a_pending_task_cancels_it_at_its_suspension);
    tcase_add_test(tc, abort_after_completion_keeps_the_output);
    tcase_add_test(tc, is_finished_turns_true_when_the_task_completes);
    tcase_add_test(tc, detached_task_keeps_running_to_completion);
    tcase_add_test(tc, dropping_a_join_in_progress_detaches_the_task);
    suite_add_tcase(s, tc);

    tc = tcase_create("panics");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, panic_in_a_task_is_reported_to_its_join_and_the_process_survives);
    tcase_add_test(tc, worker_survives_panics_and_runs_what_the_panicking_poll_spawned);
    tcase_add_test(tc, join_without_error_pointer_panics_the_joiner_of_a_failed_task);
    tcase_add_test(tc, panic_in_the_block_on_future_returns_epanic);
    tcase_add_test(tc, panic_outside_a_task_aborts_with_its_message);
    tcase_add_test(tc, spawn_outside_a_runtime_aborts);
    tcase_add_test(tc, a_handle_used_after_its_join_aborts_with_a_message);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(spawn_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

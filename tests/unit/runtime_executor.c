/*
 * runtime_executor.c: ac_block_on, the current-thread executor, and the
 * wakers it hands to futures.
 *
 * The futures here are lowered by hand the way asyncc lowers async functions
 * (docs/runtime-abi.md): a frame whose first field is ac_state, a poll that
 * switches on it, a drop, and an ac_future_vt. Each frame also counts its
 * polls and drops so that tests can check what the executor did. The tests
 * own the frames (on their stacks), as ac_block_on's callers do.
 */
#define ASYNCC_RUNTIME_INTERNAL 1
#include <asyncc.h>

#include "../../runtime/src/internal.h"

#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Gives another thread time to get somewhere (e.g. the executor to park).
 * Only makes interesting interleavings likely; no test depends on timing. */
static void pause_briefly(void)
{
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------------------ */
/* A probe future: what it does on each poll is chosen by `mode`.           */
/* ------------------------------------------------------------------------ */

typedef enum mode {
    READY_NOW,        /* ready with 42 at once */
    SELF_WAKE,        /* wake_by_ref + pending `rounds` times, then ready */
    NEVER,            /* pending, never woken */
    CLONE_DROP,       /* clone the waker, drop the clone, pending */
    DOUBLE_WAKE,      /* two clones woken by value plus a wake_by_ref, once */
    REMOTE_WAKE,      /* a thread wakes a clone later */
    REMOTE_DROP,      /* a thread drops a clone later, never waking */
    STASH_AND_FINISH, /* keep a clone in `stash` and finish at once */
    ABORT_REMOTE,     /* a thread aborts the task through a clone */
    ABORT_SELF,       /* the poll aborts its own task, then returns pending */
    YIELD_FOREVER_ABORTED, /* wake_by_ref + pending forever; a thread aborts it */
} mode;

typedef struct probe_frame {
    unsigned ac_state; /* 0 unresumed, 1 returned, 3 suspended */
    mode mode;         /* behaviour, see above */
    int rounds;        /* SELF_WAKE: pending polls before ready */
    int polls;         /* times polled */
    int drops;         /* times dropped */
    pthread_t helper;  /* REMOTE_*, ABORT_REMOTE: the helper thread */
    bool helper_started; /* helper must be joined */
    ac_waker stash;    /* STASH_AND_FINISH: the kept clone; helpers' clone */
} probe_frame;

static void *wake_later(void *arg)
{
    probe_frame *f = arg;
    pause_briefly();
    ac_waker_wake(f->stash);
    return NULL;
}

static void *drop_later(void *arg)
{
    probe_frame *f = arg;
    pause_briefly();
    ac_waker_drop(f->stash);
    return NULL;
}

static void *abort_later(void *arg)
{
    probe_frame *f = arg;
    pause_briefly();
    ac__task_abort((ac__task *)(uintptr_t)f->stash.data);
    ac_waker_drop(f->stash);
    return NULL;
}

static void start_helper(probe_frame *f, ac_context *cx, void *(*fn)(void *))
{
    f->stash = ac_waker_clone(cx->waker);
    ck_assert_int_eq(pthread_create(&f->helper, NULL, fn, f), 0);
    f->helper_started = true;
}

static ac_poll_t probe_poll(void *frame, ac_context *cx, void *out)
{
    probe_frame *f = frame;
    f->polls++;
    if (f->ac_state == AC_STATE_RETURNED)
        ac__bad_resume("probe", f->ac_state);
    bool first = f->ac_state == AC_STATE_UNRESUMED;
    f->ac_state = AC_STATE_FIRST;

    switch (f->mode) {
    case READY_NOW:
        break;
    case SELF_WAKE:
        if (f->rounds-- > 0) {
            ac_waker_wake_by_ref(cx->waker);
            return AC_PENDING;
        }
        break;
    case NEVER:
        return AC_PENDING;
    case CLONE_DROP:
        ac_waker_drop(ac_waker_clone(cx->waker));
        return AC_PENDING;
    case DOUBLE_WAKE:
        if (first) {
            ac_waker a = ac_waker_clone(cx->waker);
            ac_waker b = ac_waker_clone(cx->waker);
            ac_waker_wake(a);
            ac_waker_wake(b);
            ac_waker_wake_by_ref(cx->waker);
            return AC_PENDING;
        }
        break;
    case REMOTE_WAKE:
        if (first) {
            start_helper(f, cx, wake_later);
            return AC_PENDING;
        }
        break;
    case REMOTE_DROP:
        if (first)
            start_helper(f, cx, drop_later);
        return AC_PENDING;
    case STASH_AND_FINISH:
        f->stash = ac_waker_clone(cx->waker);
        break;
    case ABORT_REMOTE:
        if (first)
            start_helper(f, cx, abort_later);
        return AC_PENDING;
    case ABORT_SELF:
        ac__task_abort((ac__task *)(uintptr_t)cx->waker->data);
        return AC_PENDING;
    case YIELD_FOREVER_ABORTED:
        if (first)
            start_helper(f, cx, abort_later);
        ac_waker_wake_by_ref(cx->waker);
        return AC_PENDING;
    }
    f->ac_state = AC_STATE_RETURNED;
    *(int *)out = 42;
    return AC_READY;
}

static void probe_drop(void *frame)
{
    probe_frame *f = frame;
    f->drops++;
    f->ac_state = AC_STATE_RETURNED;
}

static const ac_future_vt probe_vt = {
    sizeof(probe_frame), _Alignof(probe_frame), sizeof(int), probe_poll, probe_drop, "probe",
};

static probe_frame probe(mode m)
{
    probe_frame f;
    memset(&f, 0, sizeof f);
    f.mode = m;
    return f;
}

static void join_helper(probe_frame *f)
{
    if (f->helper_started)
        ck_assert_int_eq(pthread_join(f->helper, NULL), 0);
}

/* ------------------------------------------------------------------------ */
/* Completion                                                               */
/* ------------------------------------------------------------------------ */

START_TEST(block_on_returns_output_of_ready_future)
{
    probe_frame f = probe(READY_NOW);
    int out = -1;
    ck_assert_int_eq(ac_block_on(&probe_vt, &f, &out), 0);
    ck_assert_int_eq(out, 42);
    ck_assert_int_eq(f.polls, 1);
}
END_TEST

START_TEST(block_on_drops_frame_before_returning)
{
    probe_frame f = probe(SELF_WAKE);
    f.rounds = 3;
    int out = 0;
    ck_assert_int_eq(ac_block_on(&probe_vt, &f, &out), 0);
    ck_assert_int_eq(f.drops, 1);
}
END_TEST

START_TEST(self_wake_is_polled_again_until_ready)
{
    probe_frame f = probe(SELF_WAKE);
    f.rounds = 1000;
    int out = 0;
    ck_assert_int_eq(ac_block_on(&probe_vt, &f, &out), 0);
    ck_assert_int_eq(out, 42);
    ck_assert_int_eq(f.polls, 1001);
}
END_TEST

START_TEST(void_future_accepts_null_out)
{
    /* The same probe, typed as void: out is NULL and must not be written. */
    static const ac_future_vt void_vt = {
        sizeof(probe_frame), _Alignof(probe_frame), 0, probe_poll, probe_drop, "probe_void",
    };
    probe_frame f = probe(NEVER);
    /* NEVER never writes out, so NULL is safe to pass; it deadlocks instead. */
    ck_assert_int_eq(ac_block_on(&void_vt, &f, NULL), AC_EDEADLK);
    ck_assert_int_eq(f.drops, 1);
}
END_TEST

START_TEST(null_out_for_valued_future_is_invalid_and_drops_frame)
{
    probe_frame f = probe(READY_NOW);
    ck_assert_int_eq(ac_block_on(&probe_vt, &f, NULL), AC_EINVAL);
    ck_assert_int_eq(f.polls, 0);
    ck_assert_int_eq(f.drops, 1);
}
END_TEST

START_TEST(null_vtable_or_frame_is_invalid)
{
    probe_frame f = probe(READY_NOW);
    int out = 0;
    ck_assert_int_eq(ac_block_on(NULL, &f, &out), AC_EINVAL);
    ck_assert_int_eq(ac_block_on(&probe_vt, NULL, &out), AC_EINVAL);
    ck_assert_int_eq(f.drops, 0);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Deadlock                                                                 */
/* ------------------------------------------------------------------------ */

START_TEST(pending_without_waker_is_deadlock)
{
    probe_frame f = probe(NEVER);
    int out = 0;
    ck_assert_int_eq(ac_block_on(&probe_vt, &f, &out), AC_EDEADLK);
    ck_assert_int_eq(f.polls, 1);
    ck_assert_int_eq(f.drops, 1);
}
END_TEST

START_TEST(dropped_waker_clone_is_deadlock)
{
    probe_frame f = probe(CLONE_DROP);
    int out = 0;
    ck_assert_int_eq(ac_block_on(&probe_vt, &f, &out), AC_EDEADLK);
    ck_assert_int_eq(f.polls, 1);
    ck_assert_int_eq(f.drops, 1);
}
END_TEST

START_TEST(waker_dropped_on_other_thread_is_deadlock)
{
    /* The executor parks while the clone exists and must be told when the
     * other thread drops it without waking. */
    probe_frame f = probe(REMOTE_DROP);
    int out = 0;
    ck_assert_int_eq(ac_block_on(&probe_vt, &f, &out), AC_EDEADLK);
    join_helper(&f);
    ck_assert_int_eq(f.polls, 1);
    ck_assert_int_eq(f.drops, 1);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Wakes                                                                    */
/* ------------------------------------------------------------------------ */

START_TEST(wake_from_other_thread_is_not_lost)
{
    probe_frame f = probe(REMOTE_WAKE);
    int out = 0;
    ck_assert_int_eq(ac_block_on(&probe_vt, &f, &out), 0);
    join_helper(&f);
    ck_assert_int_eq(out, 42);
    ck_assert_int_eq(f.polls, 2);
    ck_assert_int_eq(f.drops, 1);
}
END_TEST

START_TEST(double_wake_is_harmless)
{
    /* Three wakes before the poll ends make one more poll, not three. */
    probe_frame f = probe(DOUBLE_WAKE);
    int out = 0;
    ck_assert_int_eq(ac_block_on(&probe_vt, &f, &out), 0);
    ck_assert_int_eq(f.polls, 2);
    ck_assert_int_eq(out, 42);
}
END_TEST

START_TEST(wake_after_complete_is_harmless)
{
    probe_frame f = probe(STASH_AND_FINISH);
    int out = 0;
    ck_assert_int_eq(ac_block_on(&probe_vt, &f, &out), 0);
    /* The executor is gone; the clone keeps the task alive until released. */
    ac_waker_wake_by_ref(&f.stash);
    ac_waker kept = ac_waker_clone(&f.stash);
    ac_waker_wake(f.stash);
    ac_waker_drop(kept); /* the last reference: frees the task */
    ck_assert_int_eq(f.polls, 1);
    ck_assert_int_eq(f.drops, 1);
}
END_TEST

static void *drop_stash(void *arg)
{
    ac_waker_wake(*(ac_waker *)arg);
    return NULL;
}

START_TEST(waker_released_on_other_thread_after_complete_frees_task)
{
    probe_frame f = probe(STASH_AND_FINISH);
    int out = 0;
    ck_assert_int_eq(ac_block_on(&probe_vt, &f, &out), 0);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, drop_stash, &f.stash), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
}
END_TEST

/*
 * Ping-pong: on every poll the future hands a waker clone to a helper thread,
 * which wakes it at once, racing the executor's way to its condition variable.
 * A lost wake shows up as a hang (the tcase timeout) or as AC_EDEADLK.
 */
typedef struct mailbox {
    pthread_mutex_t mu;   /* guards the fields below */
    pthread_cond_t cv;    /* signalled when `full` or `done` changes */
    ac_waker waker;       /* the clone handed over */
    bool full;            /* waker holds a clone not yet taken */
    bool done;            /* no more clones will come */
    bool by_ref;          /* wake by reference then drop, instead of by value */
} mailbox;

typedef struct pingpong_frame {
    unsigned ac_state; /* 0 unresumed, 1 returned, 3 waiting */
    mailbox *box;      /* where clones go */
    int rounds;        /* pending polls left */
} pingpong_frame;

static void *pong(void *arg)
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
        pthread_mutex_unlock(&box->mu);
        if (box->by_ref) {
            ac_waker_wake_by_ref(&w);
            ac_waker_drop(w);
        } else {
            ac_waker_wake(w);
        }
        pthread_mutex_lock(&box->mu);
    }
    pthread_mutex_unlock(&box->mu);
    return NULL;
}

static ac_poll_t pingpong_poll(void *frame, ac_context *cx, void *out)
{
    pingpong_frame *f = frame;
    (void)out;
    if (f->rounds-- == 0) {
        f->ac_state = AC_STATE_RETURNED;
        return AC_READY;
    }
    f->ac_state = AC_STATE_FIRST;
    pthread_mutex_lock(&f->box->mu);
    ck_assert(!f->box->full); /* only one wake per poll was outstanding */
    f->box->waker = ac_waker_clone(cx->waker);
    f->box->full = true;
    pthread_cond_signal(&f->box->cv);
    pthread_mutex_unlock(&f->box->mu);
    return AC_PENDING;
}

static void pingpong_drop(void *frame) { (void)frame; }

static const ac_future_vt pingpong_vt = {
    sizeof(pingpong_frame), _Alignof(pingpong_frame), 0, pingpong_poll, pingpong_drop, "pingpong",
};

static void run_pingpong(bool by_ref)
{
    mailbox box = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .by_ref = by_ref};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, pong, &box), 0);
    pingpong_frame f = {AC_STATE_UNRESUMED, &box, 20000};
    ck_assert_int_eq(ac_block_on(&pingpong_vt, &f, NULL), 0);
    ck_assert_int_eq(f.rounds, -1);
    pthread_mutex_lock(&box.mu);
    box.done = true;
    pthread_cond_signal(&box.cv);
    pthread_mutex_unlock(&box.mu);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
}

START_TEST(remote_wakes_racing_with_parking_are_not_lost)
{
    run_pingpong(false);
}
END_TEST

START_TEST(remote_wakes_by_ref_racing_with_parking_are_not_lost)
{
    run_pingpong(true);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Nesting and cancellation                                                 */
/* ------------------------------------------------------------------------ */

typedef struct outer_frame {
    unsigned ac_state; /* 0 unresumed, 1 returned */
    int inner_result;  /* what the nested ac_block_on returned */
} outer_frame;

static ac_poll_t outer_poll(void *frame, ac_context *cx, void *out)
{
    outer_frame *f = frame;
    (void)cx;
    probe_frame inner = probe(SELF_WAKE);
    inner.rounds = 5;
    int v = 0;
    f->inner_result = ac_block_on(&probe_vt, &inner, &v);
    f->ac_state = AC_STATE_RETURNED;
    *(int *)out = v + 1;
    return AC_READY;
}

static void outer_drop(void *frame) { (void)frame; }

START_TEST(block_on_inside_a_poll_runs_the_inner_future)
{
    static const ac_future_vt outer_vt = {
        sizeof(outer_frame), _Alignof(outer_frame), sizeof(int), outer_poll, outer_drop, "outer",
    };
    outer_frame f = {0, -1};
    int out = 0;
    ck_assert_int_eq(ac_block_on(&outer_vt, &f, &out), 0);
    ck_assert_int_eq(f.inner_result, 0);
    ck_assert_int_eq(out, 43);
}
END_TEST

/*
 * An outer future that, in its first poll, runs an inner future with a
 * nested ac_block_on and returns pending, relying on a wake that happens
 * around the nested run: either it wakes itself before the nested call, or
 * the inner future wakes the outer task's waker. Either wake must survive
 * the nested executor and make the outer poll again.
 */
typedef struct waking_inner_frame {
    unsigned ac_state;         /* 0 unresumed, 1 returned */
    const ac_waker *outer;     /* the outer poll's borrowed waker */
} waking_inner_frame;

static ac_poll_t waking_inner_poll(void *frame, ac_context *cx, void *out)
{
    waking_inner_frame *f = frame;
    (void)cx, (void)out;
    ac_waker_wake_by_ref(f->outer);
    f->ac_state = AC_STATE_RETURNED;
    return AC_READY;
}

static const ac_future_vt waking_inner_vt = {
    sizeof(waking_inner_frame), _Alignof(waking_inner_frame), 0, waking_inner_poll, outer_drop,
    "waking_inner",
};

typedef struct nest_frame {
    unsigned ac_state; /* 0 unresumed, 1 returned, 3 after the nested run */
    bool inner_wakes;  /* the inner future wakes us, rather than we ourselves */
    int polls;         /* times polled */
} nest_frame;

static ac_poll_t nest_poll(void *frame, ac_context *cx, void *out)
{
    nest_frame *f = frame;
    (void)out;
    f->polls++;
    if (f->ac_state == AC_STATE_FIRST) {
        f->ac_state = AC_STATE_RETURNED;
        return AC_READY;
    }
    if (!f->inner_wakes)
        ac_waker_wake_by_ref(cx->waker);
    waking_inner_frame inner = {0, f->inner_wakes ? cx->waker : ac_waker_noop()};
    ck_assert_int_eq(ac_block_on(&waking_inner_vt, &inner, NULL), 0);
    f->ac_state = AC_STATE_FIRST;
    return AC_PENDING;
}

static const ac_future_vt nest_vt = {
    sizeof(nest_frame), _Alignof(nest_frame), 0, nest_poll, outer_drop, "nest",
};

START_TEST(self_wake_before_nested_block_on_is_kept)
{
    nest_frame f = {0, false, 0};
    ck_assert_int_eq(ac_block_on(&nest_vt, &f, NULL), 0);
    ck_assert_int_eq(f.polls, 2);
}
END_TEST

START_TEST(wake_of_outer_task_from_nested_block_on_is_kept)
{
    nest_frame f = {0, true, 0};
    ck_assert_int_eq(ac_block_on(&nest_vt, &f, NULL), 0);
    ck_assert_int_eq(f.polls, 2);
}
END_TEST

START_TEST(abort_from_other_thread_cancels_and_drops_frame)
{
    probe_frame f = probe(ABORT_REMOTE);
    int out = -1;
    ck_assert_int_eq(ac_block_on(&probe_vt, &f, &out), AC_ECANCELED);
    join_helper(&f);
    ck_assert_int_eq(f.polls, 1);
    ck_assert_int_eq(f.drops, 1);
    ck_assert_int_eq(out, -1);
}
END_TEST

START_TEST(abort_during_poll_cancels_when_the_poll_ends)
{
    probe_frame f = probe(ABORT_SELF);
    int out = -1;
    ck_assert_int_eq(ac_block_on(&probe_vt, &f, &out), AC_ECANCELED);
    ck_assert_int_eq(f.polls, 1);
    ck_assert_int_eq(f.drops, 1);
}
END_TEST

START_TEST(abort_of_future_that_keeps_waking_itself_is_not_starved)
{
    /* Self-wakes are repolled without touching the state word; the abort
     * must still be seen. */
    probe_frame f = probe(YIELD_FOREVER_ABORTED);
    int out = -1;
    ck_assert_int_eq(ac_block_on(&probe_vt, &f, &out), AC_ECANCELED);
    join_helper(&f);
    ck_assert_int_ge(f.polls, 1);
    ck_assert_int_eq(f.drops, 1);
}
END_TEST

static Suite *executor_suite(void)
{
    Suite *s = suite_create("runtime_executor");

    TCase *tc = tcase_create("completion");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, block_on_returns_output_of_ready_future);
    tcase_add_test(tc, block_on_drops_frame_before_returning);
    tcase_add_test(tc, self_wake_is_polled_again_until_ready);
    tcase_add_test(tc, void_future_accepts_null_out);
    tcase_add_test(tc, null_out_for_valued_future_is_invalid_and_drops_frame);
    tcase_add_test(tc, null_vtable_or_frame_is_invalid);
    suite_add_tcase(s, tc);

    tc = tcase_create("deadlock");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, pending_without_waker_is_deadlock);
    tcase_add_test(tc, dropped_waker_clone_is_deadlock);
    tcase_add_test(tc, waker_dropped_on_other_thread_is_deadlock);
    suite_add_tcase(s, tc);

    tc = tcase_create("wakes");
    tcase_set_timeout(tc, 60); /* the ping-pong runs are slow under valgrind */
    tcase_add_test(tc, wake_from_other_thread_is_not_lost);
    tcase_add_test(tc, double_wake_is_harmless);
    tcase_add_test(tc, wake_after_complete_is_harmless);
    tcase_add_test(tc, waker_released_on_other_thread_after_complete_frees_task);
    tcase_add_test(tc, remote_wakes_racing_with_parking_are_not_lost);
    tcase_add_test(tc, remote_wakes_by_ref_racing_with_parking_are_not_lost);
    suite_add_tcase(s, tc);

    tc = tcase_create("nesting_and_cancellation");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, block_on_inside_a_poll_runs_the_inner_future);
    tcase_add_test(tc, self_wake_before_nested_block_on_is_kept);
    tcase_add_test(tc, wake_of_outer_task_from_nested_block_on_is_kept);
    tcase_add_test(tc, abort_from_other_thread_cancels_and_drops_frame);
    tcase_add_test(tc, abort_during_poll_cancels_when_the_poll_ends);
    tcase_add_test(tc, abort_of_future_that_keeps_waking_itself_is_not_starved);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(executor_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

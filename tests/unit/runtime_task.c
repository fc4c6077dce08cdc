/*
 * runtime_task.c: the task state word (runtime/src/task.c), driven directly
 * through its transition functions and wakers with a recording scheduler in
 * place of the executor. The executor's own behaviour is in
 * runtime_executor.c; here each test checks one rule of the state machine.
 */
#define ASYNCC_RUNTIME_INTERNAL 1
#include <asyncc.h>

#include "../../runtime/src/internal.h"

#include <check.h>
#include <pthread.h>
#include <stdlib.h>

/* A scheduler that only records what tasks ask of it. */
typedef struct recorder {
    ac__scheduler base;    /* the hooks; first, as the ABI of ac__scheduler asks */
    atomic_int scheduled;  /* schedule calls (each handed us a reference) */
    atomic_int released;   /* release calls */
} recorder;

static void record_schedule(ac__scheduler *s, ac__task *t)
{
    (void)t;
    atomic_fetch_add(&((recorder *)s)->scheduled, 1);
}

static void record_release(ac__scheduler *s, ac__task *t)
{
    atomic_fetch_add(&((recorder *)s)->released, 1);
    ac__task_ref_dec_unchecked(t);
}

static ac_poll_t never_poll(void *frame, ac_context *cx, void *out)
{
    (void)frame, (void)cx, (void)out;
    return AC_PENDING;
}

static void never_drop(void *frame) { (void)frame; }

static const ac_future_vt never_vt = {1, 1, 0, never_poll, never_drop, "never"};
static char never_frame;

static recorder rec;

static ac__task *new_task(void)
{
    rec = (recorder){.base = {record_schedule, record_release}};
    ac__task *t = ac__task_new(&rec.base, &never_vt, &never_frame, NULL);
    ck_assert_ptr_nonnull(t);
    return t;
}

static size_t refs(ac__task *t) { return ac__task_refs(ac__task_state(t)); }
static bool has(ac__task *t, unsigned bit) { return (ac__task_state(t) & bit) != 0; }

/* Runs a fresh task's first poll to pending with no wake, as the executor
 * would (transition_to_idle drops the queue's reference). Leaves the owner's only, plus
 * `clones` waker clones taken during the poll (returned in ws). */
static ac__task *idle_task(ac_waker *ws, int clones)
{
    ac__task *t = new_task();
    ck_assert_int_eq(ac__task_transition_to_running(t), AC__RUN_SUCCESS);
    ac_waker w = ac__task_waker(t);
    for (int i = 0; i < clones; i++)
        ws[i] = ac_waker_clone(&w);
    ck_assert_int_eq(ac__task_transition_to_idle(t), AC__IDLE_OK);
    return t;
}

/* Completes a task the way the executor does and drops the owner reference. */
static void finish(ac__task *t)
{
    if (!has(t, AC__TASK_RUNNING)) {
        ck_assert(has(t, AC__TASK_NOTIFIED));
        ck_assert_int_eq(ac__task_transition_to_running(t), AC__RUN_SUCCESS);
        ac__task_ref_dec(t); /* the queue's reference, consumed by the poll */
    }
    ac__task_transition_to_complete(t);
    ac__task_ref_dec(t); /* the owner's; frees the task if it was the last */
}

START_TEST(new_task_is_notified_with_owner_and_queue_references)
{
    ac__task *t = new_task();
    ck_assert_uint_eq(ac__task_state(t), AC__TASK_NOTIFIED | 2 * AC__TASK_REF_ONE);
    ck_assert_int_eq(ac__task_transition_to_running(t), AC__RUN_SUCCESS);
    ac__task_transition_to_complete(t);
    ac__task_ref_dec(t);
    ac__task_ref_dec(t);
}
END_TEST

START_TEST(transition_to_running_clears_notified)
{
    ac__task *t = new_task();
    ck_assert_int_eq(ac__task_transition_to_running(t), AC__RUN_SUCCESS);
    ck_assert(has(t, AC__TASK_RUNNING));
    ck_assert(!has(t, AC__TASK_NOTIFIED));
    /* Not notified any more, and running: a second claim fails. */
    ck_assert_int_eq(ac__task_transition_to_running(t), AC__RUN_FAILED);
    ac__task_ref_dec(t);
    finish(t);
}
END_TEST

START_TEST(wake_during_poll_does_not_schedule_but_requeues_at_idle)
{
    ac__task *t = new_task();
    ck_assert_int_eq(ac__task_transition_to_running(t), AC__RUN_SUCCESS);
    ac_waker w = ac__task_waker(t);
    ac_waker_wake_by_ref(&w);
    ac_waker_wake_by_ref(&w);
    ck_assert_int_eq(atomic_load(&rec.scheduled), 0);
    ck_assert(has(t, AC__TASK_NOTIFIED));
    ck_assert_uint_eq(refs(t), 2); /* a wake by reference takes none */
    ck_assert_int_eq(ac__task_transition_to_idle(t), AC__IDLE_OK_NOTIFIED);
    ck_assert(has(t, AC__TASK_NOTIFIED)); /* so that it counts as queued */
    ck_assert(!has(t, AC__TASK_RUNNING));
    finish(t);
}
END_TEST

START_TEST(wake_while_idle_schedules_exactly_once)
{
    ac_waker ws[1];
    ac__task *t = idle_task(ws, 1);
    ck_assert_uint_eq(refs(t), 2);
    ac_waker_wake_by_ref(&ws[0]);
    ac_waker_wake_by_ref(&ws[0]);
    ck_assert_int_eq(atomic_load(&rec.scheduled), 1);
    ck_assert_uint_eq(refs(t), 3); /* the queue's reference was added */
    ac_waker_drop(ws[0]);
    finish(t);
}
END_TEST

START_TEST(wake_by_value_hands_its_reference_to_the_queue)
{
    ac_waker ws[2];
    ac__task *t = idle_task(ws, 2);
    ck_assert_uint_eq(refs(t), 3);
    ac_waker_wake(ws[0]);
    ck_assert_int_eq(atomic_load(&rec.scheduled), 1);
    ck_assert_uint_eq(refs(t), 3);
    ac_waker_wake(ws[1]); /* already queued: only its reference goes */
    ck_assert_int_eq(atomic_load(&rec.scheduled), 1);
    ck_assert_uint_eq(refs(t), 2);
    finish(t);
}
END_TEST

START_TEST(wake_after_complete_does_nothing)
{
    ac_waker ws[2];
    ac__task *t = idle_task(ws, 2);
    ck_assert_int_eq(ac__task_transition_to_shutdown(t), true);
    ac__task_transition_to_complete(t);
    size_t before = ac__task_state(t);
    ac_waker_wake_by_ref(&ws[0]);
    ck_assert_uint_eq(ac__task_state(t), before);
    ac__task_ref_dec(t); /* the owner's */
    ac_waker_wake(ws[0]);
    ck_assert_int_eq(atomic_load(&rec.scheduled), 0);
    ck_assert_int_eq(atomic_load(&rec.released), 0);
    ck_assert_uint_eq(refs(t), 1);
    ac_waker_wake(ws[1]); /* the last reference: the task is freed */
}
END_TEST

START_TEST(dropping_last_waker_of_idle_task_calls_release)
{
    ac_waker ws[1];
    ac__task *t = idle_task(ws, 1);
    ck_assert_int_eq(atomic_load(&rec.released), 0);
    ac_waker_drop(ws[0]);
    ck_assert_int_eq(atomic_load(&rec.released), 1);
    ck_assert_uint_eq(refs(t), 1);
    ck_assert_int_eq(ac__task_transition_to_shutdown(t), true);
    finish(t);
}
END_TEST

START_TEST(dropping_queue_reference_of_idle_task_calls_release)
{
    /* The executor's own drop after a pending poll with no waker kept. */
    ac__task *t = new_task();
    ck_assert_int_eq(ac__task_transition_to_running(t), AC__RUN_SUCCESS);
    ck_assert_int_eq(ac__task_transition_to_idle(t), AC__IDLE_OK);
    ck_assert_int_eq(atomic_load(&rec.released), 1);
    ck_assert_uint_eq(refs(t), 1);
    ck_assert_int_eq(ac__task_transition_to_shutdown(t), true);
    finish(t);
}
END_TEST

START_TEST(idle_with_waker_kept_drops_queue_reference_without_release)
{
    /* A waker kept by the poll (a timer's, say) keeps the task reachable:
     * transition_to_idle drops the queue's reference in the same step, and
     * the scheduler hears nothing. */
    ac_waker ws[1];
    ac__task *t = idle_task(ws, 1);
    ck_assert_uint_eq(refs(t), 2); /* owner, ws[0] */
    ck_assert(!has(t, AC__TASK_RUNNING));
    ck_assert(!has(t, AC__TASK_NOTIFIED));
    ck_assert_int_eq(atomic_load(&rec.released), 0);
    ac_waker_wake(ws[0]);
    ck_assert_int_eq(atomic_load(&rec.scheduled), 1);
    finish(t);
}
END_TEST

START_TEST(dropping_waker_of_queued_or_running_task_does_not_release)
{
    ac_waker ws[2];
    ac__task *t = idle_task(ws, 2);
    ac_waker_wake(ws[0]); /* queued: owner + queue + ws[1] */
    ac_waker_drop(ws[1]);
    ck_assert_int_eq(atomic_load(&rec.released), 0);
    ck_assert_int_eq(ac__task_transition_to_running(t), AC__RUN_SUCCESS);
    ac_waker borrowed = ac__task_waker(t);
    ac_waker_drop(ac_waker_clone(&borrowed)); /* while running */
    ck_assert_int_eq(atomic_load(&rec.released), 0);
    ac__task_ref_dec(t); /* queue reference */
    finish(t);
}
END_TEST

START_TEST(abort_of_idle_task_schedules_it_cancelled)
{
    ac_waker ws[1];
    ac__task *t = idle_task(ws, 1);
    ac__task_abort(t);
    ck_assert_int_eq(atomic_load(&rec.scheduled), 1);
    ac__task_abort(t); /* again: nothing more */
    ck_assert_int_eq(atomic_load(&rec.scheduled), 1);
    ck_assert_int_eq(ac__task_transition_to_running(t), AC__RUN_CANCELLED);
    ac__task_ref_dec(t);
    ac_waker_drop(ws[0]);
    finish(t);
}
END_TEST

START_TEST(abort_during_poll_is_reported_at_idle)
{
    ac__task *t = new_task();
    ck_assert_int_eq(ac__task_transition_to_running(t), AC__RUN_SUCCESS);
    ac__task_abort(t);
    ck_assert_int_eq(atomic_load(&rec.scheduled), 0);
    ck_assert_int_eq(ac__task_transition_to_idle(t), AC__IDLE_CANCELLED);
    ck_assert(has(t, AC__TASK_RUNNING)); /* the poller still owns it */
    ac__task_ref_dec(t);
    finish(t);
}
END_TEST

START_TEST(abort_after_complete_does_nothing)
{
    ac__task *t = new_task();
    ck_assert_int_eq(ac__task_transition_to_running(t), AC__RUN_SUCCESS);
    ac__task_transition_to_complete(t);
    ac__task_abort(t);
    ck_assert(!has(t, AC__TASK_CANCELLED));
    ck_assert_int_eq(ac__task_transition_to_shutdown(t), false);
    ac__task_ref_dec(t);
    ac__task_ref_dec(t);
}
END_TEST

START_TEST(shutdown_of_running_task_only_marks_it_cancelled)
{
    ac__task *t = new_task();
    ck_assert_int_eq(ac__task_transition_to_running(t), AC__RUN_SUCCESS);
    ck_assert_int_eq(ac__task_transition_to_shutdown(t), false);
    ck_assert(has(t, AC__TASK_CANCELLED));
    ck_assert_int_eq(ac__task_transition_to_idle(t), AC__IDLE_CANCELLED);
    ac__task_ref_dec(t);
    finish(t);
}
END_TEST

START_TEST(clone_and_drop_balance_the_reference_count)
{
    ac_waker ws[1];
    ac__task *t = idle_task(ws, 1);
    ac_waker clones[100];
    for (int i = 0; i < 100; i++)
        clones[i] = ac_waker_clone(&ws[0]);
    ck_assert_uint_eq(refs(t), 102);
    for (int i = 0; i < 100; i++)
        ac_waker_drop(clones[i]);
    ck_assert_uint_eq(refs(t), 2);
    ck_assert_int_eq(atomic_load(&rec.released), 0);
    ac_waker_wake(ws[0]);
    finish(t);
}
END_TEST

/* Many threads waking one idle task at once: exactly one schedules it. */
typedef struct racer {
    ac__task *task;               /* the task under test */
    pthread_barrier_t *start;     /* lines the threads up */
} racer;

static void *race_wakes(void *arg)
{
    racer *r = arg;
    ac_waker borrowed = ac__task_waker(r->task);
    ac_waker w = ac_waker_clone(&borrowed);
    pthread_barrier_wait(r->start);
    for (int i = 0; i < 100; i++) {
        ac_waker_wake_by_ref(&w);
        ac_waker c = ac_waker_clone(&w);
        ac_waker_wake(c);
    }
    ac_waker_drop(w);
    return NULL;
}

START_TEST(concurrent_wakes_schedule_an_idle_task_once)
{
    enum { THREADS = 4, ROUNDS = 300 };
    ac_waker ws[1];
    ac__task *t = idle_task(ws, 1); /* ws[0] keeps the task from being orphaned */
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, THREADS);
    for (int round = 1; round <= ROUNDS; round++) {
        pthread_t th[THREADS];
        racer r = {t, &start};
        for (int i = 0; i < THREADS; i++)
            ck_assert_int_eq(pthread_create(&th[i], NULL, race_wakes, &r), 0);
        for (int i = 0; i < THREADS; i++)
            pthread_join(th[i], NULL);
        ck_assert_int_eq(atomic_load(&rec.scheduled), round);
        ck_assert_uint_eq(refs(t), 3); /* owner, ws[0], the queue */
        /* Poll it to pending again, as the executor would. */
        ck_assert_int_eq(ac__task_transition_to_running(t), AC__RUN_SUCCESS);
        ck_assert_int_eq(ac__task_transition_to_idle(t), AC__IDLE_OK);
    }
    pthread_barrier_destroy(&start);
    ac_waker_wake(ws[0]);
    finish(t);
}
END_TEST

/* A future whose poll runs `on_poll` with its context. */
static void (*on_poll)(ac_context *cx);
static ac__task *other; /* a second task for on_poll to wake */

static ac_poll_t hook_poll(void *frame, ac_context *cx, void *out)
{
    (void)frame, (void)out;
    on_poll(cx);
    return AC_PENDING;
}

static const ac_future_vt hook_vt = {1, 1, 0, hook_poll, never_drop, "hook"};

static void wake_self_twice(ac_context *cx)
{
    ac_waker_wake_by_ref(cx->waker);
    ac_waker_wake_by_ref(cx->waker);
}

static void wake_self_by_value(ac_context *cx) { ac_waker_wake(ac_waker_clone(cx->waker)); }

static void *wake_from_thread(void *arg)
{
    ac_waker_wake_by_ref((ac_waker *)arg);
    return NULL;
}

static void wake_self_from_other_thread(ac_context *cx)
{
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, wake_from_thread, (void *)cx->waker), 0);
    pthread_join(th, NULL);
}

static void wake_other_task(ac_context *cx)
{
    (void)cx;
    ac__task_wake_by_ref(other);
}

/* Polls a fresh task once with `fn` as its body; returns the task, still
 * RUNNING, and the self-woken flag in *woken. */
static ac__task *poll_once(void (*fn)(ac_context *), bool *woken)
{
    rec = (recorder){.base = {record_schedule, record_release}};
    on_poll = fn;
    ac__task *t = ac__task_new(&rec.base, &hook_vt, &never_frame, NULL);
    ck_assert_int_eq(ac__task_transition_to_running(t), AC__RUN_SUCCESS);
    ck_assert_int_eq(ac__task_poll(t, woken), AC_PENDING);
    return t;
}

START_TEST(self_wake_during_poll_is_reported_not_recorded)
{
    bool woken = false;
    ac__task *t = poll_once(wake_self_twice, &woken);
    ck_assert(woken);
    ck_assert(!has(t, AC__TASK_NOTIFIED));
    /* The caller records it when it will not poll again at once. */
    ac__task_transition_to_notified_by_ref(t);
    ck_assert_int_eq(ac__task_transition_to_idle(t), AC__IDLE_OK_NOTIFIED);
    finish(t);
}
END_TEST

START_TEST(self_wake_by_value_is_recorded)
{
    bool woken = true;
    ac__task *t = poll_once(wake_self_by_value, &woken);
    ck_assert(!woken);
    ck_assert(has(t, AC__TASK_NOTIFIED));
    ck_assert_uint_eq(refs(t), 2);
    ck_assert_int_eq(ac__task_transition_to_idle(t), AC__IDLE_OK_NOTIFIED);
    finish(t);
}
END_TEST

START_TEST(wake_from_other_thread_during_poll_is_recorded)
{
    bool woken = true;
    ac__task *t = poll_once(wake_self_from_other_thread, &woken);
    ck_assert(!woken);
    ck_assert(has(t, AC__TASK_NOTIFIED));
    ck_assert_int_eq(ac__task_transition_to_idle(t), AC__IDLE_OK_NOTIFIED);
    finish(t);
}
END_TEST

START_TEST(wake_of_another_task_during_poll_schedules_it)
{
    ac_waker ws[1];
    other = idle_task(ws, 1);
    bool woken = true;
    ac__task *t = poll_once(wake_other_task, &woken); /* (both use `rec`) */
    ck_assert(!woken);
    ck_assert(!has(t, AC__TASK_NOTIFIED));
    ck_assert(has(other, AC__TASK_NOTIFIED));
    ck_assert_int_eq(atomic_load(&rec.scheduled), 1);
    ck_assert_int_eq(ac__task_transition_to_idle(t), AC__IDLE_OK);
    ck_assert_int_eq(ac__task_transition_to_shutdown(t), true);
    finish(t);
    ac_waker_drop(ws[0]);
    finish(other);
}
END_TEST

START_TEST(noop_waker_does_nothing)
{
    const ac_waker *w = ac_waker_noop();
    ck_assert_ptr_nonnull(w);
    ac_waker c = ac_waker_clone(w);
    ck_assert_ptr_eq(c.vtable, w->vtable);
    ac_waker_wake_by_ref(w);
    ac_waker_wake(c);
    ac_waker_drop(ac_waker_clone(w));
}
END_TEST

/* ------------------------------------------------------------------------ */
/* The layout of a spawned task                                              */
/* ------------------------------------------------------------------------ */

static ac_poll_t no_poll(void *f, ac_context *cx, void *out)
{
    (void)f, (void)cx, (void)out;
    return AC_PENDING;
}
static void no_drop(void *f) { (void)f; }

START_TEST(spawned_task_layout_finds_frame_task_and_handle_from_each_other)
{
    /* Outside a runtime ac__task_frame_new mallocs the task (ac__spawn would
     * refuse it); the layout is the same as in a slab. */
    static const size_t outs[] = {0, 1, 4, 8, 24, 64, 100, 300}; /* 300: no frame_off */
    static const size_t aligns[] = {0, 1, 2, 4, 8, 16, 64};
    for (size_t i = 0; i < sizeof outs / sizeof *outs; i++) {
        for (size_t j = 0; j < sizeof aligns / sizeof *aligns; j++) {
            size_t align = aligns[j] ? aligns[j] : 1;
            ac_future_vt vt = {align * 3, aligns[j], outs[i], no_poll, no_drop, "layout"};
            char *frame = ac__task_frame_new(&vt);
            ac__task *t = ac__task_of_frame(frame);
            ck_assert_ptr_eq(ac__task_frame(t), frame);
            ck_assert_uint_eq((uintptr_t)frame % align, 0);
            /* The output slot (the handle) ends before the stored distance. */
            char *handle = ac__task_handle(t);
            ck_assert_ptr_eq(ac__task_of_handle(handle), t);
            ck_assert_uint_eq((uintptr_t)handle % 16, 0);
            ck_assert((size_t)(frame - handle) >= outs[i] + sizeof(uint32_t));
            ck_assert_uint_eq((size_t)(frame - (char *)t), ac__task_frame_at(&vt));
            size_t at = ac__task_frame_at(&vt);
            ck_assert_uint_eq(t->frame_off, at <= 255 ? at : 0);
            ac__task_dealloc(t);
        }
    }
    /* The common small task: an int output and a 72-byte frame take two
     * cache lines. */
    ac_future_vt small = {72, 8, sizeof(int), no_poll, no_drop, "small"};
    ck_assert_uint_eq(ac__task_frame_at(&small) + small.size, 128);
}
END_TEST

static Suite *task_suite(void)
{
    Suite *s = suite_create("runtime_task");

    TCase *tc = tcase_create("transitions");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, new_task_is_notified_with_owner_and_queue_references);
    tcase_add_test(tc, transition_to_running_clears_notified);
    tcase_add_test(tc, wake_during_poll_does_not_schedule_but_requeues_at_idle);
    tcase_add_test(tc, wake_while_idle_schedules_exactly_once);
    tcase_add_test(tc, wake_by_value_hands_its_reference_to_the_queue);
    tcase_add_test(tc, wake_after_complete_does_nothing);
    tcase_add_test(tc, abort_of_idle_task_schedules_it_cancelled);
    tcase_add_test(tc, abort_during_poll_is_reported_at_idle);
    tcase_add_test(tc, abort_after_complete_does_nothing);
    tcase_add_test(tc, shutdown_of_running_task_only_marks_it_cancelled);
    tcase_add_test(tc, noop_waker_does_nothing);
    suite_add_tcase(s, tc);

    tc = tcase_create("polling");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, self_wake_during_poll_is_reported_not_recorded);
    tcase_add_test(tc, self_wake_by_value_is_recorded);
    tcase_add_test(tc, wake_from_other_thread_during_poll_is_recorded);
    tcase_add_test(tc, wake_of_another_task_during_poll_schedules_it);
    suite_add_tcase(s, tc);

    tc = tcase_create("references");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, dropping_last_waker_of_idle_task_calls_release);
    tcase_add_test(tc, dropping_queue_reference_of_idle_task_calls_release);
    tcase_add_test(tc, idle_with_waker_kept_drops_queue_reference_without_release);
    tcase_add_test(tc, dropping_waker_of_queued_or_running_task_does_not_release);
    tcase_add_test(tc, clone_and_drop_balance_the_reference_count);
    suite_add_tcase(s, tc);

    tc = tcase_create("layout");
    tcase_add_test(tc, spawned_task_layout_finds_frame_task_and_handle_from_each_other);
    suite_add_tcase(s, tc);

    tc = tcase_create("concurrency");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, concurrent_wakes_schedule_an_idle_task_once);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(task_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/*
 * runtime_joinset_sync.c: the sync reading of JoinSet (asyncc.h without
 * ASYNCC_LOWERED), in which a `.ac` file is an ordinary sequential C
 * program: ac_joinset_spawn runs the future at once and queues its result,
 * ac_joinset_next takes the results back in FIFO (spawn) order.
 *
 * This file is written in the dialect, as a `.ac` file would be, and
 * compiled as plain C, which is what the sync reading is for.
 */
#define ASYNCC_NO_MAIN 1 /* Check's main below, not the sync reading's */
#include <asyncc.h>

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int ran; /* what the void task did */

static async(int) square(int x)
{
    await(ac_yield());
    return x * x;
}

static async(void) touch(int x)
{
    ran += x;
}

struct record {
    long id;        /* a number */
    double score;   /* another */
    char name[24];  /* and text: 40 bytes of output in all */
};

static async(struct record) lookup(long id)
{
    struct record r = {id, id / 2.0, ""};
    snprintf(r.name, sizeof r.name, "record-%ld", id);
    return r;
}

START_TEST(sync_next_returns_results_in_spawn_order)
{
    ac_joinset(int) set = ac_joinset_new();
    for (int i = 1; i <= 5; i++)
        ac_joinset_spawn(set, square(i));
    ck_assert_uint_eq(ac_joinset_len(set), 5);
    int v = -1, err = 1, k = 1;
    while (await(ac_joinset_next(set, &v, &err))) {
        ck_assert_int_eq(v, k * k);
        ck_assert_int_eq(err, 0);
        ck_assert_uint_eq(ac_joinset_len(set), (size_t)(5 - k));
        k++;
    }
    ck_assert_int_eq(k, 6);
    ck_assert_uint_eq(ac_joinset_len(set), 0);
    ac_joinset_free(set);
}
END_TEST

START_TEST(sync_spawn_runs_the_future_at_once)
{
    ran = 0;
    ac_joinset(void) set = ac_joinset_new();
    ac_joinset_spawn(set, touch(3));
    ck_assert_int_eq(ran, 3); /* before anything is awaited */
    ac_joinset_spawn(set, touch(4));
    ck_assert_int_eq(ran, 7);
    ck_assert_uint_eq(ac_joinset_len(set), 2);
    int err = 1;
    ck_assert_int_eq(await(ac_joinset_next(set, NULL, &err)), 1);
    ck_assert_int_eq(err, 0);
    ck_assert_int_eq(await(ac_joinset_next(set, NULL, NULL)), 1);
    ck_assert_int_eq(await(ac_joinset_next(set, NULL, NULL)), 0);
    ac_joinset_free(set);
}
END_TEST

START_TEST(sync_void_set_takes_any_future_and_discards_outputs)
{
    ran = 0;
    ac_joinset(void) set = ac_joinset_new();
    ac_joinset_spawn(set, square(9));
    ac_joinset_spawn(set, touch(1));
    ck_assert_uint_eq(ac_joinset_len(set), 2);
    int n = 0;
    while (await(ac_joinset_next(set, NULL, NULL)))
        n++;
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(ran, 1);
    ac_joinset_free(set);
}
END_TEST

START_TEST(sync_struct_outputs_are_copied_whole)
{
    ac_joinset(struct record) set = ac_joinset_new();
    ac_joinset_spawn(set, lookup(7));
    ac_joinset_spawn(set, lookup(8));
    struct record r;
    memset(&r, 0, sizeof r);
    ck_assert_int_eq(await(ac_joinset_next(set, &r, NULL)), 1);
    ck_assert_int_eq(r.id, 7);
    ck_assert_double_eq(r.score, 3.5);
    ck_assert_str_eq(r.name, "record-7");
    ck_assert_int_eq(await(ac_joinset_next(set, &r, NULL)), 1);
    ck_assert_str_eq(r.name, "record-8");
    ck_assert_int_eq(await(ac_joinset_next(set, &r, NULL)), 0);
    ac_joinset_free(set);
}
END_TEST

START_TEST(sync_abort_all_keeps_the_finished_results)
{
    ac_joinset(int) set = ac_joinset_new();
    ac_joinset_spawn(set, square(2));
    ac_joinset_spawn(set, square(3));
    ac_joinset_abort_all(set); /* every task has finished already */
    ck_assert_uint_eq(ac_joinset_len(set), 2);
    int v = 0, err = 1;
    ck_assert_int_eq(await(ac_joinset_next(set, &v, &err)), 1);
    ck_assert_int_eq(v, 4);
    ck_assert_int_eq(err, 0);
    ck_assert_int_eq(await(ac_joinset_next(set, &v, &err)), 1);
    ck_assert_int_eq(v, 9);
    ac_joinset_free(set);
}
END_TEST

START_TEST(sync_next_on_an_empty_set_returns_zero)
{
    ac_joinset(int) set = ac_joinset_new();
    int v = 5, err = 5;
    ck_assert_int_eq(await(ac_joinset_next(set, &v, &err)), 0);
    ck_assert_int_eq(v, 5); /* untouched */
    ck_assert_int_eq(err, 5);
    ac_joinset_free(set);
    ck_assert_int_eq(await(ac_joinset_next(NULL, &v, &err)), 0);
    ck_assert_uint_eq(ac_joinset_len(NULL), 0);
    ac_joinset_abort_all(NULL);
    ac_joinset_free(NULL);
}
END_TEST

START_TEST(sync_free_releases_results_never_taken)
{
    /* Under valgrind: no leak. */
    ac_joinset(struct record) set = ac_joinset_new();
    for (long i = 0; i < 100; i++)
        ac_joinset_spawn(set, lookup(i));
    struct record r;
    ck_assert_int_eq(await(ac_joinset_next(set, &r, NULL)), 1);
    ck_assert_int_eq(r.id, 0);
    ac_joinset_free(set);
}
END_TEST

static Suite *joinset_sync_suite(void)
{
    Suite *s = suite_create("runtime_joinset_sync");
    TCase *tc = tcase_create("sync_reading");
    tcase_add_test(tc, sync_next_returns_results_in_spawn_order);
    tcase_add_test(tc, sync_spawn_runs_the_future_at_once);
    tcase_add_test(tc, sync_void_set_takes_any_future_and_discards_outputs);
    tcase_add_test(tc, sync_struct_outputs_are_copied_whole);
    tcase_add_test(tc, sync_abort_all_keeps_the_finished_results);
    tcase_add_test(tc, sync_next_on_an_empty_set_returns_zero);
    tcase_add_test(tc, sync_free_releases_results_never_taken);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(joinset_sync_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

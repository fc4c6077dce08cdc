/*
 * runtime_slab.c: the task slab (slab.c) driven directly: allocation from a
 * heap, frees on the owning thread and on others, the walk over live tasks,
 * close with tasks still referenced, and the huge-page regions a slab maps
 * once it has grown past REGION_AFTER (256 KiB) of small chunks.
 *
 * A "task" here is only the slot: the tests write a state word with one
 * reference, which is what ac__slab_each looks for, and a pattern in the
 * rest of the slot, which must survive until the slot is freed.
 */
#define ASYNCC_RUNTIME_INTERNAL 1
#include <asyncc.h>

#include "../../runtime/src/internal.h"

#include <check.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SLOT 160                      /* bytes per test task, a sleeping task's size */
#define MIB ((size_t)1 << 20)

/* Allocates a slot from h and marks it as a live task holding `tag`. */
static ac__task *alloc_task(ac__slab_heap *h, uint32_t tag)
{
    ac__task *t = ac__slab_alloc(h, SLOT, 16);
    ck_assert_ptr_nonnull(t);
    atomic_store(&t->state, AC__TASK_REF_ONE);
    memset((char *)t + sizeof *t, (int)(tag & 0xff), SLOT - sizeof *t);
    return t;
}

/* Whether the slot still holds what alloc_task wrote. */
static bool intact(const ac__task *t, uint32_t tag)
{
    const unsigned char *p = (const unsigned char *)t + sizeof *t;
    for (size_t i = 0; i < SLOT - sizeof *t; i++)
        if (p[i] != (tag & 0xff))
            return false;
    return true;
}

/* A new slab and a heap of it claimed for this thread. */
static ac__slab *new_slab(ac__slab_heap **h)
{
    ac__slab *s = ac__slab_new(NULL);
    ck_assert_ptr_nonnull(s);
    *h = ac__slab_heap_claim(s);
    ck_assert_ptr_nonnull(*h);
    return s;
}

/* n tasks from h, tagged with their index, in a malloc'd array. */
static ac__task **alloc_tasks(ac__slab_heap *h, int n)
{
    ac__task **t = malloc((size_t)n * sizeof *t);
    ck_assert_ptr_nonnull(t);
    for (int i = 0; i < n; i++)
        t[i] = alloc_task(h, (uint32_t)i);
    return t;
}

/* Frees tasks [from, to) of t, with h as this thread's heap (NULL: none). */
static void free_tasks(ac__slab_heap *h, ac__task **t, int from, int to)
{
    ac__slab_heap_set(h);
    for (int i = from; i < to; i++) {
        ck_assert(intact(t[i], (uint32_t)i));
        ac__slab_free(t[i]);
    }
    ac__slab_heap_set(NULL);
}

static void count_task(ac__task *t, void *arg)
{
    (void)t;
    (*(size_t *)arg)++;
}

START_TEST(slab_small_program_maps_no_region)
{
    size_t before = ac__slab_regions_mapped();
    ac__slab_heap *h;
    ac__slab *s = new_slab(&h);
    enum { N = 1000 }; /* 160 KB: below the threshold */
    ac__task **t = alloc_tasks(h, N);
    ck_assert_uint_eq(ac__slab_regions_mapped(), before);
    free_tasks(h, t, 0, N);
    ac__slab_heap_release(h);
    ac__slab_close(s);
    free(t);
}
END_TEST

START_TEST(slab_burst_beyond_threshold_comes_from_regions_and_walks_and_frees)
{
    size_t before = ac__slab_regions_mapped();
    ac__slab_heap *h;
    ac__slab *s = new_slab(&h);
    enum { N = 60000 }; /* 9.6 MB of slots */
    ac__task **t = alloc_tasks(h, N);
    /* 256 KiB from malloc, the rest (9.3 MB) from 2 MiB regions: 5. */
    size_t mapped = ac__slab_regions_mapped() - before;
    ck_assert_uint_ge(mapped, 4);
    ck_assert_uint_le(mapped, 5);
    /* Tasks in regions lie in huge-page-aligned blocks: the last one's
     * block holds many of the tasks allocated just before it. */
    uintptr_t block = (uintptr_t)t[N - 1] & ~(uintptr_t)(2 * MIB - 1);
    int same = 0;
    for (int i = N - 1000; i < N; i++)
        same += ((uintptr_t)t[i] & ~(uintptr_t)(2 * MIB - 1)) == block;
    ck_assert_int_ge(same, 500);
    size_t walked = 0;
    ac__slab_each(s, count_task, &walked);
    ck_assert_uint_eq(walked, N);
    /* Freed on this thread (to the heap), then on none (to the central list). */
    free_tasks(h, t, 0, N / 2);
    free_tasks(NULL, t, N / 2, N);
    walked = 0;
    ac__slab_each(s, count_task, &walked);
    ck_assert_uint_eq(walked, 0);
    /* Reuse: the same number again takes no new region. */
    free(t);
    t = alloc_tasks(h, N);
    ck_assert_uint_eq(ac__slab_regions_mapped() - before, mapped);
    free_tasks(h, t, 0, N);
    ac__slab_heap_release(h);
    ac__slab_close(s);
    ck_assert_uint_eq(ac__slab_regions_mapped(), before);
    free(t);
}
END_TEST

START_TEST(slab_close_keeps_a_region_until_its_last_live_task_is_freed)
{
    size_t before = ac__slab_regions_mapped();
    ac__slab_heap *h;
    ac__slab *s = new_slab(&h);
    enum { N = 30000 }; /* 4.8 MB: past the threshold */
    ac__task **t = alloc_tasks(h, N);
    ck_assert_uint_gt(ac__slab_regions_mapped(), before);
    /* Everything but the last task (in a region) and the first (malloc'd)
     * is freed; then the slab is closed with those two still referenced. */
    free_tasks(h, t, 1, N - 1);
    ac__slab_heap_release(h);
    ac__slab_close(s);
    ck_assert_uint_eq(ac__slab_regions_mapped(), before + 1);
    free_tasks(NULL, t, N - 1, N); /* still mapped, intact */
    ck_assert_uint_eq(ac__slab_regions_mapped(), before);
    free_tasks(NULL, t, 0, 1); /* the slab goes with it */
    free(t);
}
END_TEST

/* Frees from another thread while the owner allocates. */
typedef struct freer {
    ac__task **t;
    int n;
} freer;

static void *free_all(void *arg)
{
    freer *f = arg;
    for (int i = 0; i < f->n; i++)
        ac__slab_free(f->t[i]);
    return NULL;
}

START_TEST(slab_frees_from_another_thread_during_a_burst_lose_nothing)
{
    ac__slab_heap *h;
    ac__slab *s = new_slab(&h);
    enum { N = 40000 };
    ac__task **old = alloc_tasks(h, N);
    pthread_t th;
    freer f = {old, N};
    ck_assert_int_eq(pthread_create(&th, NULL, free_all, &f), 0);
    ac__task **t = alloc_tasks(h, N);
    pthread_join(th, NULL);
    size_t walked = 0;
    ac__slab_each(s, count_task, &walked);
    ck_assert_uint_eq(walked, N);
    free_tasks(NULL, t, 0, N);
    ac__slab_heap_release(h);
    ac__slab_close(s);
    free(t);
    free(old);
}
END_TEST

static Suite *slab_suite(void)
{
    Suite *s = suite_create("runtime_slab");
    TCase *tc = tcase_create("slab");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, slab_small_program_maps_no_region);
    tcase_add_test(tc, slab_burst_beyond_threshold_comes_from_regions_and_walks_and_frees);
    tcase_add_test(tc, slab_close_keeps_a_region_until_its_last_live_task_is_freed);
    tcase_add_test(tc, slab_frees_from_another_thread_during_a_burst_lose_nothing);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(slab_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/*
 * runtime_yield.c: ac_yield(), both as the header's embeddable typed
 * functions and through ac_yield__vt, and a chain of nested futures that
 * yields, lowered by hand the way asyncc lowers awaits of embedded callees.
 */
#define ASYNCC_RUNTIME_INTERNAL 1
#include <asyncc.h>

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

/* A waker that counts its operations, to watch what a future does with it. */
typedef struct counts {
    int clones, wakes, wakes_by_ref, drops; /* calls of each operation */
} counts;

static const ac_waker_vtable counting_vtable;

static ac_waker count_clone(const void *d)
{
    ((counts *)d)->clones++;
    return (ac_waker){&counting_vtable, d};
}
static void count_wake(const void *d) { ((counts *)d)->wakes++; }
static void count_wake_by_ref(const void *d) { ((counts *)d)->wakes_by_ref++; }
static void count_drop(const void *d) { ((counts *)d)->drops++; }

static const ac_waker_vtable counting_vtable = {count_clone, count_wake, count_wake_by_ref,
                                                count_drop};

START_TEST(yield_is_pending_once_then_ready)
{
    counts n = {0};
    ac_waker w = {&counting_vtable, &n};
    ac_context cx = {.waker = &w};
    struct ac_yield__frame f;
    ac_yield__init(&f);
    ck_assert_int_eq(ac_yield__poll(&f, &cx, NULL), AC_PENDING);
    ck_assert_int_eq(n.wakes_by_ref, 1); /* it asks to be polled again */
    ck_assert_int_eq(ac_yield__poll(&f, &cx, NULL), AC_READY);
    ck_assert_int_eq(n.wakes_by_ref, 1);
    ck_assert_int_eq(n.clones + n.wakes + n.drops, 0); /* the waker stays borrowed */
    ac_yield__drop(&f);
}
END_TEST

START_TEST(yield_vtable_describes_its_frame)
{
    ck_assert_uint_eq(ac_yield__vt.size, sizeof(struct ac_yield__frame));
    ck_assert_uint_eq(ac_yield__vt.align, _Alignof(struct ac_yield__frame));
    ck_assert_uint_eq(ac_yield__vt.out_size, 0);
    ck_assert_str_eq(ac_yield__vt.name, "ac_yield");
}
END_TEST

START_TEST(yield_through_vtable_is_pending_once_then_ready)
{
    struct ac_yield__frame f;
    ac_yield__init(&f);
    ac_context cx = {.waker = ac_waker_noop()};
    ck_assert_int_eq(ac_yield__vt.poll(&f, &cx, NULL), AC_PENDING);
    ck_assert_int_eq(ac_yield__vt.poll(&f, &cx, NULL), AC_READY);
    ac_yield__vt.drop(&f);
}
END_TEST

START_TEST(block_on_of_yield_completes)
{
    void *f = ac_frame_alloc(&ac_yield__vt);
    ck_assert_ptr_nonnull(f);
    ac_yield__init(f);
    ck_assert_int_eq(ac_block_on(&ac_yield__vt, f, NULL), 0);
    ac_frame_free(&ac_yield__vt, f);
}
END_TEST

/*
 * The chain, as asyncc would lower it:
 *
 *   async(int) level0(int n) { for (int i = 0; i < n; i++) await(ac_yield()); return n; }
 *   async(int) levelK(int n) { return await(level{K-1}(n)) + 1; }   for K = 1..9
 */
struct level0__frame {
    unsigned ac_state;              /* 0 unresumed, 1 returned, 2 poisoned, 3 in the await */
    int n;                          /* parameter */
    int i;                          /* live across the await */
    struct ac_yield__frame ac_aw0;  /* the awaited yield, embedded */
};

static void level0__init(struct level0__frame *f, int n)
{
    f->ac_state = AC_STATE_UNRESUMED;
    f->n = n;
}

static ac_poll_t level0__poll(struct level0__frame *ac_f, ac_context *ac_cx, int *ac_out)
{
    switch (ac_f->ac_state) {
    case AC_STATE_UNRESUMED:
        break;
    case AC_STATE_FIRST:
        goto ac_resume_3;
    default:
        ac__bad_resume("level0", ac_f->ac_state);
    }
    for (ac_f->i = 0; ac_f->i < ac_f->n; ac_f->i++) {
        ac_yield__init(&ac_f->ac_aw0);
        ac_f->ac_state = AC_STATE_FIRST;
    ac_resume_3:
        if (ac_yield__poll(&ac_f->ac_aw0, ac_cx, NULL) == AC_PENDING)
            return AC_PENDING;
        ac_yield__drop(&ac_f->ac_aw0);
    }
    ac_f->ac_state = AC_STATE_RETURNED;
    *ac_out = ac_f->n;
    return AC_READY;
}

static void level0__drop(struct level0__frame *ac_f)
{
    if (ac_f->ac_state == AC_STATE_FIRST)
        ac_yield__drop(&ac_f->ac_aw0);
    ac_f->ac_state = AC_STATE_RETURNED;
}

/* Levels 1..9 differ only in the callee they embed. */
#define LEVEL(K, INNER)                                                                            \
    struct level##K##__frame {                                                                     \
        unsigned ac_state;               /* 0, 1, 2, or 3 in the await */                          \
        int n;                           /* parameter */                                           \
        struct INNER##__frame ac_aw0;    /* the awaited callee, embedded */                        \
    };                                                                                             \
    static void level##K##__init(struct level##K##__frame *f, int n)                               \
    {                                                                                              \
        f->ac_state = AC_STATE_UNRESUMED;                                                          \
        f->n = n;                                                                                  \
    }                                                                                              \
    static ac_poll_t level##K##__poll(struct level##K##__frame *ac_f, ac_context *ac_cx,           \
                                      int *ac_out)                                                 \
    {                                                                                              \
        int ac_t0;                                                                                 \
        switch (ac_f->ac_state) {                                                                  \
        case AC_STATE_UNRESUMED:                                                                   \
            INNER##__init(&ac_f->ac_aw0, ac_f->n);                                                 \
            ac_f->ac_state = AC_STATE_FIRST;                                                       \
            break;                                                                                 \
        case AC_STATE_FIRST:                                                                       \
            break;                                                                                 \
        default:                                                                                   \
            ac__bad_resume("level" #K, ac_f->ac_state);                                            \
        }                                                                                          \
        if (INNER##__poll(&ac_f->ac_aw0, ac_cx, &ac_t0) == AC_PENDING)                             \
            return AC_PENDING;                                                                     \
        INNER##__drop(&ac_f->ac_aw0);                                                              \
        ac_f->ac_state = AC_STATE_RETURNED;                                                        \
        *ac_out = ac_t0 + 1;                                                                       \
        return AC_READY;                                                                           \
    }                                                                                              \
    static void level##K##__drop(struct level##K##__frame *ac_f)                                   \
    {                                                                                              \
        if (ac_f->ac_state == AC_STATE_FIRST)                                                      \
            INNER##__drop(&ac_f->ac_aw0);                                                          \
        ac_f->ac_state = AC_STATE_RETURNED;                                                        \
    }

LEVEL(1, level0)
LEVEL(2, level1)
LEVEL(3, level2)
LEVEL(4, level3)
LEVEL(5, level4)
LEVEL(6, level5)
LEVEL(7, level6)
LEVEL(8, level7)
LEVEL(9, level8)

/* The exported, type-erased face of level9, as asyncc emits for every async
 * function (NAME__vt); this is what ac_block_on sees. */
static ac_poll_t level9_vt_poll(void *frame, ac_context *cx, void *out)
{
    return level9__poll(frame, cx, out);
}
static void level9_vt_drop(void *frame) { level9__drop(frame); }
static const ac_future_vt level9__vt = {
    sizeof(struct level9__frame), _Alignof(struct level9__frame), sizeof(int),
    level9_vt_poll,               level9_vt_drop,                 "level9",
};

START_TEST(chain_of_ten_nested_futures_yields_and_completes)
{
    struct level9__frame f;
    level9__init(&f, 10000);
    int out = 0;
    ck_assert_int_eq(ac_block_on(&level9__vt, &f, &out), 0);
    ck_assert_int_eq(out, 10000 + 9);
    ck_assert_uint_eq(f.ac_state, AC_STATE_RETURNED);
}
END_TEST

START_TEST(chain_polled_by_hand_is_pending_once_per_yield)
{
    struct level9__frame f;
    level9__init(&f, 3);
    counts n = {0};
    ac_waker w = {&counting_vtable, &n};
    ac_context cx = {.waker = &w};
    int out = 0, pendings = 0;
    while (level9__poll(&f, &cx, &out) == AC_PENDING)
        pendings++;
    ck_assert_int_eq(pendings, 3);
    ck_assert_int_eq(n.wakes_by_ref, 3);
    ck_assert_int_eq(out, 12);
}
END_TEST

START_TEST(dropping_suspended_chain_releases_it)
{
    struct level9__frame f;
    level9__init(&f, 5);
    ac_context cx = {.waker = ac_waker_noop()};
    int out = 0;
    ck_assert_int_eq(level9__poll(&f, &cx, &out), AC_PENDING);
    level9__drop(&f);
    ck_assert_uint_eq(f.ac_state, AC_STATE_RETURNED);
    ck_assert_uint_eq(f.ac_aw0.ac_state, AC_STATE_RETURNED); /* the child too */
}
END_TEST

START_TEST(resuming_a_returned_chain_traps)
{
    struct level9__frame f;
    level9__init(&f, 0);
    ac_context cx = {.waker = ac_waker_noop()};
    int out = 0;
    ck_assert_int_eq(level9__poll(&f, &cx, &out), AC_READY);
    /* The message itself is checked in runtime_panic.c; keep the log quiet. */
    ck_assert_ptr_nonnull(freopen("/dev/null", "w", stderr));
    level9__poll(&f, &cx, &out); /* raises SIGABRT */
}
END_TEST

static Suite *yield_suite(void)
{
    Suite *s = suite_create("runtime_yield");
    TCase *tc = tcase_create("yield");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, yield_is_pending_once_then_ready);
    tcase_add_test(tc, yield_vtable_describes_its_frame);
    tcase_add_test(tc, yield_through_vtable_is_pending_once_then_ready);
    tcase_add_test(tc, block_on_of_yield_completes);
    tcase_add_test(tc, chain_of_ten_nested_futures_yields_and_completes);
    tcase_add_test(tc, chain_polled_by_hand_is_pending_once_per_yield);
    tcase_add_test(tc, dropping_suspended_chain_releases_it);
    tcase_add_test_raise_signal(tc, resuming_a_returned_chain_traps, SIGABRT);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(yield_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/*
 * runtime_lock.c: ac__lock (lock.c), the futex mutex of the timer wheel:
 * mutual exclusion among threads that spin and threads that sleep, and a
 * taker that sleeps behind a long hold being woken by the release.
 */
#define ASYNCC_RUNTIME_INTERNAL 1
#include <asyncc.h>

#include "../../runtime/src/internal.h"

#include <check.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

static void sleep_us(long us)
{
    struct timespec ts = {0, us * 1000};
    nanosleep(&ts, NULL);
}

/* Threads adding to a plain counter under one lock; every HOLD_EVERY-th
 * hold lasts long enough that the others give up spinning and sleep. */
enum { THREADS = 4, ROUNDS = 20000, HOLD_EVERY = 2000 };

typedef struct shared {
    ac__lock lock;    /* guards count */
    long count;       /* incremented under the lock, not atomically */
    _Atomic int slept; /* takers seen asleep (the state was 2) */
} shared;

static void *add(void *arg)
{
    shared *sh = arg;
    for (int i = 0; i < ROUNDS; i++) {
        ac__lock_take(&sh->lock);
        long c = sh->count;
        if (i % HOLD_EVERY == 0) {
            sleep_us(300);
            if (atomic_load(&sh->lock.state) == 2)
                atomic_fetch_add(&sh->slept, 1);
        }
        sh->count = c + 1;
        ac__lock_give(&sh->lock);
    }
    return NULL;
}

START_TEST(lock_excludes_spinning_and_sleeping_takers)
{
    shared sh = {.lock = AC__LOCK_INIT};
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, add, &sh), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    ck_assert_int_eq(sh.count, (long)THREADS * ROUNDS);
    ck_assert_int_eq(atomic_load(&sh.lock.state), 0);
    /* The long holds did make takers sleep (else the futex path went untested). */
    ck_assert_int_gt(atomic_load(&sh.slept), 0);
}
END_TEST

typedef struct taker {
    ac__lock *lock;
    _Atomic int got; /* 1 once it holds the lock */
} taker;

static void *take_once(void *arg)
{
    taker *t = arg;
    ac__lock_take(t->lock);
    atomic_store(&t->got, 1);
    ac__lock_give(t->lock);
    return NULL;
}

START_TEST(a_taker_asleep_behind_a_long_hold_is_woken_by_the_release)
{
    ac__lock lock = AC__LOCK_INIT;
    ac__lock_take(&lock);
    taker t = {&lock, 0};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, take_once, &t), 0);
    /* It spins about a microsecond, then marks the lock and sleeps. */
    for (int i = 0; i < 5000 && atomic_load(&lock.state) != 2; i++)
        sleep_us(200);
    ck_assert_int_eq(atomic_load(&lock.state), 2);
    ck_assert_int_eq(atomic_load(&t.got), 0);
    ac__lock_give(&lock);
    pthread_join(th, NULL);
    ck_assert_int_eq(atomic_load(&t.got), 1);
    ck_assert_int_eq(atomic_load(&lock.state), 0);
}
END_TEST

static Suite *lock_suite(void)
{
    Suite *s = suite_create("runtime_lock");
    TCase *tc = tcase_create("lock");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, lock_excludes_spinning_and_sleeping_takers);
    tcase_add_test(tc, a_taker_asleep_behind_a_long_hold_is_woken_by_the_release);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(lock_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

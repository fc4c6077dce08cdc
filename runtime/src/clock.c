/*
 * clock.c: the runtime clock, its pause (Tokio's time::pause, advance and
 * start_paused), and timed waits on the real clock.
 *
 * The clock reads CLOCK_MONOTONIC, as ns since the first reading in the
 * process, plus an offset; ac_now_ms is that in whole ms. Paused, it reads
 * a frozen value instead (a whole ms), which moves only by ac_time_advance
 * and by auto-advance: an executor with nothing to run, about to park until
 * the next timer, jumps the clock to that timer instead (timer.c,
 * ac__time_park_timeout). Auto-advance is inhibited while a blocking call
 * is in flight, whose completion would otherwise race with the jump.
 * Resuming continues from the frozen value, so the clock never goes back.
 *
 * Readers take no lock: the state is a few atomics, which pause, resume and
 * advance change under a mutex. A reading that races with one of those
 * returns the value from just before or just after it.
 */
#define _GNU_SOURCE /* pthread_cond_clockwait */
#include "internal.h"

#include <pthread.h>
#include <time.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER; /* serialises changes */
static _Atomic uint64_t origin;     /* real ns of the first reading; 0: not yet */
static _Atomic int64_t offset;      /* while running: clock = real - origin + offset */
static _Atomic uint64_t frozen;     /* while paused: the clock */
static atomic_bool paused;          /* ac_time_pause in force */
static atomic_uint inhibitors;      /* blocking calls in flight */

uint64_t ac__clock_real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ns since the first reading, on the real clock. The origin is known
 * before the reading is taken: a reading taken first could be older than
 * the origin another thread sets meanwhile, and the difference would wrap
 * to about 2^64 (a sleep then lands 584 years away). */
static uint64_t real_elapsed_ns(void)
{
    uint64_t o = atomic_load_explicit(&origin, memory_order_acquire);
    if (o == 0) {
        uint64_t first = ac__clock_real_ns(), expected = 0;
        o = atomic_compare_exchange_strong(&origin, &expected, first) ? first : expected;
    }
    return ac__clock_real_ns() - o;
}

uint64_t ac__clock_now_ns(void)
{
    if (atomic_load_explicit(&paused, memory_order_acquire))
        return atomic_load_explicit(&frozen, memory_order_relaxed);
    return real_elapsed_ns() + (uint64_t)atomic_load_explicit(&offset, memory_order_relaxed);
}

uint64_t ac_now_ms(void) { return ac__clock_now_ns() / 1000000u; }

bool ac__clock_paused(void) { return atomic_load_explicit(&paused, memory_order_acquire); }

void ac_time_pause(void)
{
    pthread_mutex_lock(&mu);
    if (!atomic_load_explicit(&paused, memory_order_relaxed)) {
        /* Frozen on a whole ms (rounded up: the clock never goes back), so
         * that paused time is exact: sleep(ms) then takes exactly ms, in
         * this build and in the sync reading. */
        uint64_t now = ac__clock_now_ns();
        atomic_store_explicit(&frozen, (now + 999999u) / 1000000u * 1000000u, memory_order_relaxed);
        atomic_store_explicit(&paused, true, memory_order_release);
    }
    pthread_mutex_unlock(&mu);
}

void ac_time_resume(void)
{
    pthread_mutex_lock(&mu);
    if (atomic_load_explicit(&paused, memory_order_relaxed)) {
        uint64_t f = atomic_load_explicit(&frozen, memory_order_relaxed);
        atomic_store_explicit(&offset, (int64_t)(f - real_elapsed_ns()), memory_order_relaxed);
        atomic_store_explicit(&paused, false, memory_order_release);
    }
    pthread_mutex_unlock(&mu);
}

void ac_time_advance(uint64_t ms)
{
    uint64_t ns = ms * 1000000u;
    pthread_mutex_lock(&mu);
    if (atomic_load_explicit(&paused, memory_order_relaxed))
        atomic_fetch_add_explicit(&frozen, ns, memory_order_relaxed);
    else
        atomic_fetch_add_explicit(&offset, (int64_t)ns, memory_order_relaxed);
    pthread_mutex_unlock(&mu);
    /* The timers that are now due would otherwise wait for whichever thread
     * next parks; tests rely on advance waking them at once. */
    ac__time_fire_due();
}

void ac__clock_advance_to_ms(uint64_t ms)
{
    uint64_t ns = ms * 1000000u;
    pthread_mutex_lock(&mu);
    if (atomic_load_explicit(&paused, memory_order_relaxed) &&
        atomic_load_explicit(&frozen, memory_order_relaxed) < ns)
        atomic_store_explicit(&frozen, ns, memory_order_relaxed);
    pthread_mutex_unlock(&mu);
}

bool ac__clock_can_auto_advance(void)
{
    return atomic_load_explicit(&paused, memory_order_acquire) &&
           atomic_load_explicit(&inhibitors, memory_order_acquire) == 0;
}

void ac__clock_inhibit_auto_advance(void)
{
    atomic_fetch_add_explicit(&inhibitors, 1, memory_order_acq_rel);
}

void ac__clock_allow_auto_advance(void)
{
    atomic_fetch_sub_explicit(&inhibitors, 1, memory_order_acq_rel);
}

bool ac__cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu_held, uint64_t deadline_ns)
{
    if (deadline_ns == UINT64_MAX) {
        pthread_cond_wait(cv, mu_held);
        return false;
    }
    if (ac__clock_real_ns() >= deadline_ns)
        return true;
    struct timespec abs = {(time_t)(deadline_ns / 1000000000u), (long)(deadline_ns % 1000000000u)};
    pthread_cond_clockwait(cv, mu_held, CLOCK_MONOTONIC, &abs);
    return ac__clock_real_ns() >= deadline_ns;
}

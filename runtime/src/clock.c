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
 *
 * Deadlines (ac__clock_deadline_ns) need no exact reading, only one that is
 * not behind the clock: a deadline computed from it is never early. A sleep
 * registered by every first poll of a burst of tasks read the clock each
 * time (30 ns here, a quarter of such a poll), so a thread keeps its last
 * reading and the time-stamp counter value taken just before it, and for
 * the next WINDOW_NS answers that reading plus WINDOW_NS + SLACK_NS: the
 * clock cannot have moved further, as long as the counter runs at no less
 * than half the rate measured against CLOCK_MONOTONIC over the first
 * millisecond of deadline readings (it is constant) and the threads'
 * counters agree (what the kernel checked before choosing it as
 * clocksource). Past the window, or when the counter went back, or the
 * clock was resumed or advanced since (`epoch`), it reads the clock. This
 * only runs where the processor says its counter is invariant and the
 * kernel's clocksource is "tsc"; elsewhere, and while paused, a deadline
 * reading is the clock.
 */
#define _GNU_SOURCE /* pthread_cond_clockwait */
#include "internal.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#if defined(__x86_64__)
#include <cpuid.h>
#include <x86intrin.h>
#endif

#define WINDOW_NS 2000u     /* how long a thread's reading serves deadlines */
#define SLACK_NS 1000u      /* added for a counter read early by out-of-order execution */
#define CALIBRATE_NS 1000000u /* the counter's rate is measured over this much clock */
#define MAX_SAMPLE_TICKS 100000u /* a calibration pair read further apart is retried */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER; /* serialises changes */
static _Atomic uint64_t origin;     /* real ns of the first reading; 0: not yet */
static _Atomic int64_t offset;      /* while running: clock = real - origin + offset */
static _Atomic uint64_t frozen;     /* while paused: the clock */
static atomic_bool paused;          /* ac_time_pause in force */
static atomic_uint inhibitors;      /* blocking calls in flight */
static atomic_uint epoch;           /* counts resumes and advances (deadline readings) */
static unsigned paused_runtimes;    /* live runtimes built with start_paused (under mu) */
static bool runtimes_paused;        /* they paused the clock: the last one resumes it (under mu) */

/* The time-stamp counter's state for deadline readings. */
enum { TSC_UNKNOWN, TSC_UNUSABLE, TSC_CALIBRATING, TSC_USABLE };
static _Atomic int tsc_state;           /* TSC_*: set once, then only moves on */
static _Atomic uint64_t cal_tsc;        /* counter at the calibration's first reading */
static _Atomic uint64_t cal_ns;         /* ... and that reading */
static _Atomic uint64_t window_ticks;   /* WINDOW_NS in ticks at half the measured rate */
/* A thread's last clock reading for deadlines, the counter just before it,
 * and the epoch it belongs to. */
static _Thread_local uint64_t last_ns, last_tsc;
static _Thread_local unsigned last_epoch;

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

#if defined(__x86_64__)
/* Whether the counter can serve: invariant (cpuid), and the kernel's
 * clocksource, which it only keeps on the counter if the CPUs' agree. */
static bool tsc_usable(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(0x80000007, &a, &b, &c, &d) || !(d & (1u << 8)))
        return false;
    FILE *f = fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "r");
    char name[32] = "";
    if (!f)
        return false;
    bool ok = fgets(name, sizeof name, f) && strcmp(name, "tsc\n") == 0;
    fclose(f);
    return ok;
}

/* The counter and the real clock read together: false if the thread was
 * held up between the counter's two reads (the pair would be loose). */
static bool sample(uint64_t *tsc, uint64_t *real)
{
    uint64_t a = __rdtsc();
    uint64_t r = ac__clock_real_ns();
    uint64_t b = __rdtsc();
    if (b - a > MAX_SAMPLE_TICKS)
        return false;
    *tsc = a;
    *real = r;
    return true;
}

/* Moves the counter's calibration on, from a thread that read the clock
 * for a deadline: decides whether the counter can serve, then measures its
 * rate against the real clock (not the runtime clock, which pause and
 * advance move) over CALIBRATE_NS. */
static void calibrate(void)
{
    int s = atomic_load_explicit(&tsc_state, memory_order_acquire);
    if (s == TSC_UNKNOWN) {
        int expected = TSC_UNKNOWN;
        if (!atomic_compare_exchange_strong(&tsc_state, &expected, TSC_CALIBRATING))
            return; /* another thread is deciding */
        uint64_t tsc, real;
        if (!tsc_usable()) {
            atomic_store(&tsc_state, TSC_UNUSABLE);
        } else if (!sample(&tsc, &real)) {
            atomic_store(&tsc_state, TSC_UNKNOWN); /* try again at the next reading */
        } else {
            atomic_store(&cal_tsc, tsc);
            atomic_store(&cal_ns, real);
        }
        return;
    }
    if (s != TSC_CALIBRATING)
        return;
    /* cal_ns is stored after cal_tsc: seeing it set, we see both. */
    uint64_t n0 = atomic_load(&cal_ns);
    uint64_t t0 = atomic_load(&cal_tsc);
    uint64_t tsc, real;
    if (n0 == 0 || !sample(&tsc, &real) || real < n0 + CALIBRATE_NS || tsc <= t0)
        return;
    uint64_t w = (uint64_t)((unsigned __int128)(tsc - t0) * WINDOW_NS / (2 * (real - n0)));
    if (w == 0) {
        atomic_store(&tsc_state, TSC_UNUSABLE);
        return;
    }
    atomic_store(&window_ticks, w);
    atomic_store_explicit(&tsc_state, TSC_USABLE, memory_order_release);
}

uint64_t ac__clock_deadline_ns(void)
{
    if (atomic_load_explicit(&paused, memory_order_acquire))
        return atomic_load_explicit(&frozen, memory_order_relaxed);
    unsigned e = atomic_load_explicit(&epoch, memory_order_acquire);
    uint64_t tsc = __rdtsc();
    if (atomic_load_explicit(&tsc_state, memory_order_acquire) == TSC_USABLE && last_ns &&
        e == last_epoch && tsc - last_tsc < atomic_load_explicit(&window_ticks, memory_order_relaxed))
        return last_ns + WINDOW_NS + SLACK_NS;
    uint64_t ns = ac__clock_now_ns();
    last_ns = ns;
    last_tsc = tsc;
    last_epoch = e;
    int st = atomic_load_explicit(&tsc_state, memory_order_relaxed);
    if (st == TSC_UNKNOWN || st == TSC_CALIBRATING)
        calibrate();
    return ns;
}

bool ac__clock_deadline_is_fast(void) { return atomic_load(&tsc_state) == TSC_USABLE; }
#else
uint64_t ac__clock_deadline_ns(void) { return ac__clock_now_ns(); }
bool ac__clock_deadline_is_fast(void) { return false; }
#endif

bool ac__clock_paused(void) { return atomic_load_explicit(&paused, memory_order_acquire); }

/* Pauses the clock unless it is paused; returns whether it did. Under mu. */
static bool pause_locked(void)
{
    if (atomic_load_explicit(&paused, memory_order_relaxed))
        return false;
    /* Frozen on a whole ms (rounded up: the clock never goes back), so that
     * paused time is exact: sleep(ms) then takes exactly ms, in this build
     * and in the sync reading. */
    uint64_t now = ac__clock_now_ns();
    atomic_store_explicit(&frozen, (now + 999999u) / 1000000u * 1000000u, memory_order_relaxed);
    atomic_store_explicit(&paused, true, memory_order_release);
    return true;
}

/* Lets a paused clock run on from its frozen value. Under mu. */
static void resume_locked(void)
{
    if (!atomic_load_explicit(&paused, memory_order_relaxed))
        return;
    uint64_t f = atomic_load_explicit(&frozen, memory_order_relaxed);
    atomic_store_explicit(&offset, (int64_t)(f - real_elapsed_ns()), memory_order_relaxed);
    atomic_fetch_add(&epoch, 1);
    atomic_store_explicit(&paused, false, memory_order_release);
}

void ac_time_pause(void)
{
    pthread_mutex_lock(&mu);
    pause_locked();
    pthread_mutex_unlock(&mu);
}

void ac_time_resume(void)
{
    pthread_mutex_lock(&mu);
    resume_locked();
    pthread_mutex_unlock(&mu);
}

/*
 * start_paused belongs to a runtime, as in Tokio, but the clock is the
 * process's: a runtime built paused pauses it, and freeing the last live
 * one resumes it, so that a runtime built afterwards (the next test in the
 * same process) runs on real time. A clock that was paused already when
 * they came (ac_time_pause) is left paused.
 */
void ac__clock_runtime_pause(void)
{
    pthread_mutex_lock(&mu);
    paused_runtimes++;
    if (pause_locked())
        runtimes_paused = true;
    pthread_mutex_unlock(&mu);
}

void ac__clock_runtime_unpause(void)
{
    pthread_mutex_lock(&mu);
    if (--paused_runtimes == 0 && runtimes_paused) {
        runtimes_paused = false;
        resume_locked();
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
    atomic_fetch_add(&epoch, 1);
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

/*
 * runtime_timer.c: the timer wheel (driven directly with a virtual time), the
 * runtime clock and its pause, the time futures (ac_sleep, ac_sleep_until,
 * ac_interval_tick, the deadline behind ac_timeout), and the time driver
 * under ac_block_on and under a runtime (sched.c).
 *
 * No test sleeps to prove timing: the wheel tests pass their own `now`, the
 * future tests pause the runtime clock and move it with ac_time_advance
 * (which wakes due timers on the calling thread) or let ac_block_on
 * auto-advance it. Futures are polled by hand with probe wakers that count
 * what is done with them and log the order of wakes.
 */
#define ASYNCC_RUNTIME_INTERNAL 1
#include <asyncc.h>

#include "../../runtime/src/internal.h"

#include <check.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Probe wakers                                                              */
/* ------------------------------------------------------------------------ */

/* What a test knows about one timer: its waker's data. */
typedef struct probe {
    uint64_t when;           /* the deadline the test gave it */
    uint64_t fired_at;       /* virtual time of its wake (wheel tests) */
    atomic_int clones;       /* waker clones made */
    atomic_int wakes;        /* wakes by value (each releases a clone) */
    atomic_int wakes_by_ref; /* wakes by reference */
    atomic_int drops;        /* clones released without a wake */
} probe;

/* Wakes in order, for the ordering tests (wakes happen on the test thread). */
static probe **wake_log;
static size_t wake_log_len, wake_log_cap;
/* The virtual time the current wheel advance goes to, stamped on wakes. */
static uint64_t virtual_now;

static void log_wake(probe *p)
{
    p->fired_at = virtual_now;
    if (wake_log_len == wake_log_cap) {
        wake_log_cap = wake_log_cap ? 2 * wake_log_cap : 1024;
        wake_log = realloc(wake_log, wake_log_cap * sizeof *wake_log);
        ck_assert_ptr_nonnull(wake_log);
    }
    wake_log[wake_log_len++] = p;
}

static void reset_wake_log(void)
{
    free(wake_log);
    wake_log = NULL;
    wake_log_len = wake_log_cap = 0;
}

static const ac_waker_vtable probe_vtable;

static ac_waker probe_clone(const void *d)
{
    atomic_fetch_add(&((probe *)d)->clones, 1);
    return (ac_waker){&probe_vtable, d};
}
static void probe_wake(const void *d)
{
    atomic_fetch_add(&((probe *)d)->wakes, 1);
    log_wake((probe *)d);
}
static void probe_wake_by_ref(const void *d) { atomic_fetch_add(&((probe *)d)->wakes_by_ref, 1); }
static void probe_drop(const void *d) { atomic_fetch_add(&((probe *)d)->drops, 1); }

static const ac_waker_vtable probe_vtable = {probe_clone, probe_wake, probe_wake_by_ref, probe_drop};

static ac_waker probe_waker(probe *p) { return (ac_waker){&probe_vtable, p}; }

/* Clones of the probe's waker not yet given back. */
static int outstanding(probe *p) { return p->clones - p->wakes - p->drops; }

/* A thread-safe waker that only counts wakes, for the concurrency test. */
static atomic_long counted_wakes;
static const ac_waker_vtable count_vtable;
static ac_waker count_clone(const void *d) { return (ac_waker){&count_vtable, d}; }
static void count_wake(const void *d)
{
    (void)d;
    atomic_fetch_add(&counted_wakes, 1);
}
static void count_nothing(const void *d) { (void)d; }
static const ac_waker_vtable count_vtable = {count_clone, count_wake, count_wake, count_nothing};

/* Deterministic random numbers (xorshift), so failures reproduce. */
static uint64_t rng_state = 88172645463325252ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Advances a test wheel to t, stamping wakes with t. */
static size_t advance(ac__wheel *w, uint64_t t)
{
    virtual_now = t;
    return ac__wheel_advance(w, t);
}

/* Advances a test wheel to now_ns, to the ns, stamping wakes with now_ns. */
static size_t advance_ns(ac__wheel *w, uint64_t now_ns)
{
    virtual_now = now_ns;
    return ac__wheel_advance_ns(w, now_ns);
}

static uint8_t timer_state(const ac__timer *t) { return __atomic_load_n(&t->state, __ATOMIC_ACQUIRE); }

/* ------------------------------------------------------------------------ */
/* The wheel                                                                 */
/* ------------------------------------------------------------------------ */

START_TEST(wheel_places_timers_at_every_level_and_fires_each_exactly_on_time)
{
    ac__wheel w;
    ac__wheel_init(&w, 0);
    /* The level is the 6-bit group in which deadline and wheel time first
     * differ; beyond 2^36 ms everything shares the top level. (Slot 2 of
     * each level: slot 1 is the next one, sorted ahead into its stage.) */
    const uint64_t when[] = {1, 2 * 64, 2 * 4096, 2ull << 18, 2ull << 24, 1ull << 30, 1ull << 40};
    const unsigned level[] = {0, 1, 2, 3, 4, 5, 5};
    enum { N = sizeof when / sizeof when[0] };
    ac__timer t[N];
    probe p[N];
    memset(t, 0, sizeof t);
    memset(p, 0, sizeof p);
    for (int i = 0; i < N; i++) {
        ac_waker wk = probe_waker(&p[i]);
        ck_assert_int_ne(ac__wheel_insert(&w, &t[i], when[i], 0, &wk), AC__INSERT_DUE);
        ck_assert_uint_eq(t[i].level, level[i]);
        ck_assert_uint_eq(timer_state(&t[i]), AC__TIMER_SLOT);
    }
    ck_assert_uint_eq(ac__wheel_count(&w), N);
    for (int i = 0; i < N; i++) {
        ck_assert_uint_eq(advance(&w, when[i] - 1), 0); /* not a ms early */
        ck_assert_int_eq(p[i].wakes, 0);
        ck_assert_uint_eq(advance(&w, when[i]), 1);
        ck_assert_int_eq(p[i].wakes, 1);
        ck_assert_uint_eq(p[i].fired_at, when[i]);
        ck_assert_uint_eq(timer_state(&t[i]), AC__TIMER_FIRED);
        ck_assert_int_eq(outstanding(&p[i]), 0);
    }
    ck_assert_uint_eq(ac__wheel_count(&w), 0);
    ck_assert_uint_eq(ac__wheel_next_expiration(&w), UINT64_MAX);
    ac__wheel_destroy(&w);
    reset_wake_log();
}
END_TEST

START_TEST(wheel_cascades_a_timer_down_level_by_level)
{
    ac__wheel w;
    ac__wheel_init(&w, 0);
    ac__timer t = {0};
    probe p = {0};
    ac_waker wk = probe_waker(&p);
    /* Level 2, slot 2: not the next slot, so not sorted ahead; and the
     * wheel jumps to it, so it cascades when reached. */
    const uint64_t when = 2 * 4096 + 3 * 64 + 5;
    ac__wheel_insert(&w, &t, when, 0, &wk);
    ck_assert_uint_eq(t.level, 2);
    ck_assert_uint_eq(t.slot, 2);
    /* The wheel next has work at the start of that slot, not at `when`. */
    ck_assert_uint_eq(ac__wheel_next_expiration(&w), 2 * 4096);

    ck_assert_uint_eq(advance(&w, 2 * 4096), 0); /* cascades to level 1 */
    ck_assert_uint_eq(t.level, 1);
    ck_assert_uint_eq(t.slot, 3);
    ck_assert_uint_eq(ac__wheel_next_expiration(&w), 2 * 4096 + 3 * 64);

    ck_assert_uint_eq(advance(&w, 2 * 4096 + 3 * 64), 0); /* to level 0 */
    ck_assert_uint_eq(t.level, 0);
    ck_assert_uint_eq(t.slot, 5);
    ck_assert_uint_eq(ac__wheel_next_expiration(&w), when);

    ck_assert_uint_eq(advance(&w, when - 1), 0);
    ck_assert_uint_eq(advance(&w, when), 1);
    ck_assert_uint_eq(p.fired_at, when);
    ac__wheel_destroy(&w);
    reset_wake_log();
}
END_TEST

/* A stage holds its nodes at the level and slot they will have in the wheel
 * once it reaches the stage's slot; a node in the wheel itself is due within
 * the current slot of the level above it. */
/* n wheel nodes and a probe for each, zeroed, for the tests of many timers. */
static void alloc_timers(int n, ac__timer **t, probe **p)
{
    *t = calloc((size_t)n, sizeof **t);
    *p = calloc((size_t)n, sizeof **p);
    ck_assert(*t && *p);
}

/* The end of such a test: destroys the wheel, frees the nodes, the probes
 * and the wake log. */
static void free_timers(ac__wheel *w, ac__timer *t, probe *p)
{
    ac__wheel_destroy(w);
    free(t);
    free(p);
    reset_wake_log();
}

static bool all_at_level(const ac__timer *t, int n, unsigned level)
{
    for (int i = 0; i < n; i++)
        if (t[i].level != level)
            return false;
    return true;
}

/* The count a level keeps of each slot's timers is the slot's list length
 * (above level 0), in the wheel and in its stages. */
static void check_level_counts(const ac__wheel_level *lv)
{
    for (unsigned s = 0; s < AC__WHEEL_SLOTS; s++) {
        uint32_t n = 0;
        ac__timer *head = lv->slots[s], *t = head;
        if (t)
            do {
                n++;
                t = t->next;
            } while (t != head);
        ck_assert_uint_eq(lv->n[s], n);
    }
}

static void check_slot_counts(const ac__wheel *w)
{
    for (unsigned l = 1; l < AC__WHEEL_LEVELS; l++)
        check_level_counts(&w->levels[l]);
    for (unsigned L = 2; L <= AC__WHEEL_STAGED; L++)
        for (unsigned l = 1; l < L; l++)
            check_level_counts(&w->stage[L - 1].levels[l]);
}

START_TEST(wheel_sorts_the_next_slot_ahead_so_reaching_it_moves_no_timer)
{
    ac__wheel w;
    ac__wheel_init(&w, 0);
    ac__timer a = {0}, b = {0};
    probe pa = {0}, pb = {0};
    ac_waker wa = probe_waker(&pa), wb = probe_waker(&pb);
    /* Level 2's next slot (4096-8191): straight into its stage, at the
     * level-1 slot it will have at 4096. */
    const uint64_t when_a = 4096 + 3 * 64 + 5;
    ac__wheel_insert(&w, &a, when_a, 0, &wa);
    ck_assert_uint_eq(a.level, 1);
    ck_assert_uint_eq(a.slot, 3);
    ck_assert_uint_eq(ac__wheel_next_expiration(&w), 4096); /* the slot's start */
    /* Level 2's slot after it: in the wheel until the wheel enters 4096. */
    const uint64_t when_b = 2 * 4096 + 7;
    ac__wheel_insert(&w, &b, when_b, 0, &wb);
    ck_assert_uint_eq(b.level, 2);
    ck_assert_uint_eq(b.slot, 2);

    ck_assert_uint_eq(advance(&w, 4095), 0);
    ck_assert_uint_eq(b.level, 2);
    ck_assert_uint_eq(advance(&w, 4096), 0);
    ck_assert_uint_eq(a.level, 1); /* reached: the stage's list became the wheel's */
    ck_assert_uint_eq(a.slot, 3);
    ck_assert_uint_eq(b.level, 0); /* now the next slot: staged at once */
    ck_assert_uint_eq(b.slot, 7);
    ck_assert_uint_eq(ac__wheel_next_expiration(&w), 4096 + 3 * 64);

    ck_assert_uint_eq(advance(&w, 4096 + 3 * 64), 0);
    ck_assert_uint_eq(a.level, 0);
    ck_assert_uint_eq(advance(&w, when_a - 1), 0);
    ck_assert_uint_eq(advance(&w, when_a), 1);
    ck_assert_uint_eq(pa.fired_at, when_a);
    ck_assert_uint_eq(advance(&w, when_b - 1), 0);
    ck_assert_uint_eq(advance(&w, when_b), 1);
    ck_assert_uint_eq(pb.fired_at, when_b);
    ck_assert_uint_eq(ac__wheel_count(&w), 0);
    ac__wheel_destroy(&w);
    reset_wake_log();
}
END_TEST

/* Links n timers into level-1 slot 3 (192-255 ms) and plays a thread
 * parked until ac__wheel_next_wake_ns that advances the wheel when it wakes:
 * every timer is in its final place (level 0) before the wheel reaches 192,
 * and all fire in that slot. Returns the wake-ups it took before 192. */
static int stage_while_idle(int n)
{
    ac__wheel w;
    ac__wheel_init(&w, 0);
    ac__timer *t = calloc((size_t)n, sizeof *t);
    ck_assert_ptr_nonnull(t);
    ac_waker wk = {&count_vtable, NULL};
    for (int i = 0; i < n; i++)
        ac__wheel_insert(&w, &t[i], 192 + rnd() % 64, 0, &wk);
    ck_assert(all_at_level(t, n, 1));
    /* Staging starts when the wheel enters the slot before (128). */
    ck_assert_uint_eq(ac__wheel_next_expiration(&w), 192);
    ck_assert_uint_eq(ac__wheel_next_wake_ns(&w), 128 * 1000000ull);
    uint64_t wake;
    int wakes = 0;
    while ((wake = ac__wheel_next_wake_ns(&w)) < 192 * 1000000ull) {
        ck_assert_uint_eq(advance_ns(&w, wake), 0);
        wakes++;
    }
    ck_assert(all_at_level(t, n, 0));
    ck_assert_uint_eq(wake, 192 * 1000000ull);
    atomic_store(&counted_wakes, 0);
    for (uint64_t now = 192; now < 256; now++)
        advance(&w, now);
    ck_assert_int_eq(atomic_load(&counted_wakes), n);
    ck_assert_uint_eq(ac__wheel_next_wake_ns(&w), UINT64_MAX);
    ac__wheel_destroy(&w);
    free(t);
    return wakes;
}

START_TEST(wheel_an_idle_driver_wakes_early_enough_to_stage_a_slot_before_it_is_due)
{
    /* 3,000 timers: 128 (STAGE_QUOTA) a ms, one wake-up per ms of staging. */
    ck_assert_int_eq(stage_while_idle(3000), (3000 + 127) / 128);
}
END_TEST

START_TEST(wheel_an_idle_driver_stages_a_crowded_slot_at_its_share_per_ms)
{
    /* 20,000 timers: more than 128 a ms for the 64 ms before the slot; each
     * ms moves its share of the rest, and all are in place in time. */
    ck_assert_int_le(stage_while_idle(20000), 64);
}
END_TEST

START_TEST(wheel_timers_of_one_ms_fire_in_insertion_order_across_staging)
{
    /* Timers of one ms (200, in level-1 slot 3): 300 linked long before
     * their slot is next, more than one advance stages; 10 while it is being
     * staged (after the unstaged ones); 10 once it is (into the stage). */
    enum { EARLY = 300, DURING = 10, LATE = 10, N = EARLY + DURING + LATE };
    ac__wheel w;
    ac__wheel_init(&w, 0);
    ac__timer *t;
    probe *p;
    alloc_timers(N, &t, &p);
    for (int i = 0; i < N; i++) {
        if (i == EARLY) {
            ck_assert_uint_eq(advance(&w, 130), 0); /* slot 3 is next: staging starts */
            ck_assert(!all_at_level(t, EARLY, 0) && t[0].level == 0);
        }
        if (i == EARLY + DURING) {
            while (!all_at_level(t, EARLY + DURING, 0))
                advance(&w, w.elapsed + 1);
        }
        p[i].when = 200;
        ac_waker wk = probe_waker(&p[i]);
        ck_assert_int_eq(ac__wheel_insert(&w, &t[i], 200, w.elapsed, &wk), AC__INSERT_LINKED);
    }
    ck_assert(all_at_level(t, N, 0));
    ck_assert_uint_eq(advance(&w, 199), 0);
    ck_assert_uint_eq(advance(&w, 200), N);
    for (int i = 0; i < N; i++)
        ck_assert_ptr_eq(wake_log[i], &p[i]);
    free_timers(&w, t, p);
}
END_TEST

/* Links n timers with probes into level-1 slot 3, the one due at 192 + i
 * % spread, then advances the wheel into the slot before (130): one advance
 * stages 128 of them, the rest stay in the slot's own list. */
static void link_half_staged(ac__wheel *w, ac__timer *t, probe *p, int n, unsigned spread)
{
    ac__wheel_init(w, 0);
    for (int i = 0; i < n; i++) {
        p[i].when = 192 + (uint64_t)((unsigned)i % spread);
        ac_waker wk = probe_waker(&p[i]);
        ac__wheel_insert(w, &t[i], p[i].when, 0, &wk);
    }
    ck_assert_uint_eq(advance(w, 130), 0);
    ck_assert(!all_at_level(t, n, 0) && t[0].level == 0);
}

START_TEST(wheel_a_slot_reached_half_staged_fires_its_first_ms_in_insertion_order)
{
    /* 300 timers due at 192, the start of the slot; the wheel jumps there:
     * the staged ones are due in place and the rest, walked then, join
     * them after. */
    enum { N = 300 };
    ac__wheel w;
    ac__timer *t;
    probe *p;
    alloc_timers(N, &t, &p);
    link_half_staged(&w, t, p, N, 1);
    ck_assert_uint_eq(advance(&w, 192), N);
    for (int i = 0; i < N; i++)
        ck_assert_ptr_eq(wake_log[i], &p[i]);
    ck_assert_uint_eq(ac__wheel_count(&w), 0);
    free_timers(&w, t, p);
}
END_TEST

START_TEST(wheel_cancelling_the_unstaged_rest_of_a_slot_keeps_its_staged_timers)
{
    /* 300 timers over the slot's 64 ms, half staged; the ones still in
     * the slot's own list are cancelled. The staged ones fire on time, and
     * then nothing is left. */
    enum { N = 300 };
    ac__wheel w;
    ac__timer *t;
    probe *p;
    alloc_timers(N, &t, &p);
    link_half_staged(&w, t, p, N, 64);
    int staged = 0;
    for (int i = 0; i < N; i++) {
        if (t[i].level == 0)
            staged++;
        else
            ck_assert(ac__wheel_cancel(&w, &t[i]));
    }
    ck_assert_int_gt(staged, 0);
    ck_assert_int_lt(staged, N);
    ck_assert_uint_eq(ac__wheel_count(&w), (size_t)staged);
    ck_assert_uint_eq(ac__wheel_next_expiration(&w), 192);
    for (uint64_t now = 131; now < 256; now++)
        advance(&w, now);
    ck_assert_uint_eq(wake_log_len, (size_t)staged);
    for (int i = 0; i < N; i++) {
        if (p[i].wakes)
            ck_assert_uint_eq(p[i].fired_at, p[i].when);
        ck_assert_int_eq(outstanding(&p[i]), 0);
    }
    ck_assert_uint_eq(ac__wheel_count(&w), 0);
    free_timers(&w, t, p);
}
END_TEST

/* For the model checks: picks `tries` of the first `linked` timers at random
 * and cancels those still in a slot, marking them in `cancelled`; returns
 * how many it cancelled. */
static int cancel_some(ac__wheel *w, ac__timer *t, bool *cancelled, int linked, int tries)
{
    int n = 0;
    for (int k = 0; k < tries && linked; k++) {
        int i = (int)(rnd() % (uint64_t)linked);
        if (!cancelled[i] && timer_state(&t[i]) == AC__TIMER_SLOT) {
            ck_assert(ac__wheel_cancel(w, &t[i]));
            cancelled[i] = true;
            n++;
        }
    }
    return n;
}

START_TEST(wheel_random_inserts_cancels_and_advances_fire_each_live_timer_once_in_order)
{
    /* A model check: timers over four levels, linked and cancelled at random
     * while the wheel advances by 1-40 ms steps (some land in stages, some
     * are staged a few at a time, some slots are jumped to and cascade).
     * Every timer not cancelled fires once, at the first advance at or
     * after its deadline, in deadline order, ties in insertion order. */
    enum { N = 30000, HORIZON = 300000 };
    ac__wheel w;
    ac__wheel_init(&w, 0);
    ac__timer *t;
    probe *p;
    alloc_timers(N, &t, &p);
    bool *cancelled = calloc(N, sizeof *cancelled);
    uint64_t *seq = calloc(N, sizeof *seq);
    ck_assert(cancelled && seq);
    uint64_t now = 0, prev = 0;
    int linked = 0, live = 0;
    while (linked < N || ac__wheel_count(&w)) {
        for (int k = 0; k < 200 && linked < N; k++, linked++) {
            uint64_t span = (uint64_t[]){64, 4096, 262144, HORIZON}[rnd() % 4];
            p[linked].when = now + 1 + rnd() % span;
            seq[linked] = (uint64_t)linked;
            ac_waker wk = probe_waker(&p[linked]);
            ck_assert_int_eq(ac__wheel_insert(&w, &t[linked], p[linked].when, now, &wk),
                             AC__INSERT_LINKED);
            live++;
        }
        live -= cancel_some(&w, t, cancelled, linked, 60);
        size_t before = wake_log_len;
        prev = now;
        now += 1 + rnd() % 40;
        advance(&w, now);
        for (size_t k = before; k < wake_log_len; k++) {
            probe *q = wake_log[k];
            ck_assert_uint_gt(q->when, prev); /* not early, not a step late */
            ck_assert_uint_le(q->when, now);
        }
        live -= (int)(wake_log_len - before);
        ck_assert_uint_eq(ac__wheel_count(&w), (size_t)live);
        if (now % 97 == 0)
            check_slot_counts(&w);
    }
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(p[i].wakes, cancelled[i] ? 0 : 1);
        ck_assert_int_eq(outstanding(&p[i]), 0);
    }
    for (size_t k = 1; k < wake_log_len; k++) {
        probe *a = wake_log[k - 1], *b = wake_log[k];
        ck_assert_uint_le(a->when, b->when);
        if (a->when == b->when)
            ck_assert_uint_lt(seq[a - p], seq[b - p]);
    }
    for (int l = 0; l < AC__WHEEL_LEVELS; l++)
        ck_assert_uint_eq(w.levels[l].occupied, 0);
    for (int s = 0; s < AC__WHEEL_STAGED; s++)
        ck_assert_uint_eq(w.stage[s].count, 0);
    check_slot_counts(&w);
    free(cancelled);
    free(seq);
    free_timers(&w, t, p);
}
END_TEST

START_TEST(wheel_timer_beyond_the_top_level_laps_until_due)
{
    ac__wheel w;
    ac__wheel_init(&w, 1000);
    ac__timer t = {0};
    probe p = {0};
    ac_waker wk = probe_waker(&p);
    const uint64_t when = 1000 + (1ull << 36) * 3 + 12345;
    ac__wheel_insert(&w, &t, when, 1000, &wk);
    ck_assert_uint_eq(t.level, AC__WHEEL_LEVELS - 1);
    ck_assert_uint_eq(advance(&w, when - 1), 0);
    ck_assert_uint_eq(ac__wheel_count(&w), 1);
    ck_assert_uint_eq(advance(&w, when), 1);
    ck_assert_uint_eq(p.fired_at, when);
    ac__wheel_destroy(&w);
    reset_wake_log();
}
END_TEST

START_TEST(wheel_timer_a_lap_away_does_not_hide_an_earlier_top_level_timer)
{
    /* Both at level 5: `far` wraps into the wheel's current top-level slot,
     * `near` sits in the next one and is due first. */
    ac__wheel w;
    ac__wheel_init(&w, 5);
    ac__timer far = {0}, near = {0};
    probe pf = {0}, pn = {0};
    ac_waker wf = probe_waker(&pf), wn = probe_waker(&pn);
    ac__wheel_insert(&w, &far, (1ull << 36) + 7, 5, &wf);
    ac__wheel_insert(&w, &near, 1ull << 30, 5, &wn);
    ck_assert_uint_eq(far.level, 5);
    ck_assert_uint_eq(far.slot, 0);
    ck_assert_uint_eq(near.slot, 1);
    ck_assert_uint_eq(ac__wheel_next_expiration(&w), 1ull << 30);
    ck_assert_uint_eq(advance(&w, 1ull << 30), 1);
    ck_assert_int_eq(pn.wakes, 1);
    ck_assert_uint_eq(advance(&w, (1ull << 36) + 6), 0);
    ck_assert_uint_eq(advance(&w, (1ull << 36) + 7), 1);
    ck_assert_int_eq(pf.wakes, 1);
    ac__wheel_destroy(&w);
    reset_wake_log();
}
END_TEST

START_TEST(wheel_refuses_a_timer_that_is_already_due)
{
    ac__wheel w;
    ac__wheel_init(&w, 500);
    ac__timer t = {0};
    probe p = {0};
    ac_waker wk = probe_waker(&p);
    ck_assert_int_eq(ac__wheel_insert(&w, &t, 500, 500, &wk), AC__INSERT_DUE);
    ck_assert_int_eq(ac__wheel_insert(&w, &t, 3, 500, &wk), AC__INSERT_DUE);
    ck_assert_int_eq(p.clones, 0); /* nothing kept */
    ck_assert_uint_eq(timer_state(&t), AC__TIMER_IDLE);
    ck_assert_uint_eq(ac__wheel_count(&w), 0);
    ac__wheel_destroy(&w);
}
END_TEST

START_TEST(wheel_fires_a_level_0_slot_once_the_latest_deadline_in_it_has_passed)
{
    /* A node's deadline is its `when` (a whole ms, rounded up) less `early`
     * us: the slot of 10 ms holding timers due at 9.3 and 9.7 ms is all due
     * at 9.7 ms, not at 10. */
    ac__wheel w;
    ac__wheel_init(&w, 0);
    ac__timer a = {.early = 700}, b = {.early = 300}, c = {.early = 900};
    probe pa = {0}, pb = {0}, pc = {0};
    ac_waker wa = probe_waker(&pa), wb = probe_waker(&pb), wc = probe_waker(&pc);
    ck_assert_int_eq(ac__wheel_insert(&w, &a, 10, 0, &wa), AC__INSERT_LINKED);
    ck_assert_int_eq(ac__wheel_insert(&w, &b, 10, 0, &wb), AC__INSERT_LINKED);
    ck_assert_int_eq(ac__wheel_insert(&w, &c, 11, 0, &wc), AC__INSERT_LINKED);
    ck_assert_uint_eq(ac__wheel_next_expiration(&w), 10);
    ck_assert_uint_eq(ac__wheel_next_wake_ns(&w), 9700000);
    ck_assert_uint_eq(advance_ns(&w, 9699999), 0);
    ck_assert_uint_eq(advance_ns(&w, 9700000), 2);
    ck_assert_uint_eq(pa.fired_at, 9700000);
    ck_assert_uint_eq(pb.fired_at, 9700000);
    ck_assert(w.ahead); /* its time is 10 ms, ahead of the clock */
    ck_assert_uint_eq(ac__wheel_next_wake_ns(&w), 10100000); /* c: 11 ms less 900 us */
    ck_assert_uint_eq(advance_ns(&w, 10099999), 0);
    ck_assert(!w.ahead);
    ck_assert_uint_eq(advance_ns(&w, 10100000), 1);
    /* ac__wheel_advance goes by whole ms, as ever: 12 ms fires at 12. */
    ac__timer d = {.early = 500};
    probe pd = {0};
    ac_waker wd = probe_waker(&pd);
    ck_assert_int_eq(ac__wheel_insert(&w, &d, 12, 11, &wd), AC__INSERT_LINKED);
    ck_assert_uint_eq(advance(&w, 11), 0);
    ck_assert_uint_eq(advance(&w, 12), 1);
    ck_assert_int_eq(outstanding(&pa) + outstanding(&pb) + outstanding(&pc) + outstanding(&pd), 0);
    ac__wheel_destroy(&w);
    reset_wake_log();
}
END_TEST

START_TEST(wheel_fires_the_first_ms_of_a_level_1_slot_at_that_ms)
{
    /* 64 ms may be where a level-1 slot cascades: the wheel's time does not
     * go there before the clock does, whatever the deadlines in it. */
    ac__wheel w;
    ac__wheel_init(&w, 0);
    ac__timer a = {.early = 900}, b = {.early = 900};
    probe pa = {0}, pb = {0};
    ac_waker wa = probe_waker(&pa), wb = probe_waker(&pb);
    ck_assert_int_eq(ac__wheel_insert(&w, &a, 63, 0, &wa), AC__INSERT_LINKED);
    ck_assert_uint_eq(advance_ns(&w, 62100000), 1); /* 63 ms less 900 us */
    ck_assert_int_eq(ac__wheel_insert(&w, &b, 64, 62, &wb), AC__INSERT_LINKED);
    ck_assert_uint_eq(ac__wheel_next_wake_ns(&w), 64000000);
    ck_assert_uint_eq(advance_ns(&w, 63999999), 0);
    ck_assert_uint_eq(advance_ns(&w, 64000000), 1);
    ac__wheel_destroy(&w);
    reset_wake_log();
}
END_TEST

START_TEST(wheel_keeps_a_timer_for_the_ms_it_fired_early_until_the_clock_reaches_it)
{
    /* At 9.7 ms the wheel has fired the slot of 10 ms, so its time is 10. A
     * timer for 10 ms registered then (a sleep_until(10), due at 10.0) is
     * not due yet: it waits for an advance to 10 ms, and is woken before
     * the timers of 11 ms, in insertion order with the others like it. A
     * timer for 9 ms is due. */
    ac__wheel w;
    ac__wheel_init(&w, 0);
    ac__timer a = {.early = 300}, b = {0}, c = {0}, d = {0}, late = {0}, cancelled = {0};
    probe pa = {0}, pb = {0}, pc = {0}, pd = {0}, pl = {0}, px = {0};
    ac_waker wa = probe_waker(&pa), wb = probe_waker(&pb), wc = probe_waker(&pc),
             wd = probe_waker(&pd), wl = probe_waker(&pl), wx = probe_waker(&px);
    ck_assert_int_eq(ac__wheel_insert(&w, &a, 10, 0, &wa), AC__INSERT_LINKED);
    ck_assert_int_eq(ac__wheel_insert(&w, &d, 11, 0, &wd), AC__INSERT_LINKED);
    ck_assert_uint_eq(advance_ns(&w, 9700000), 1);
    ck_assert(w.ahead);
    ck_assert_int_eq(ac__wheel_insert(&w, &late, 9, 9, &wl), AC__INSERT_DUE);
    ck_assert_int_eq(ac__wheel_insert(&w, &b, 10, 9, &wb), AC__INSERT_LINKED);
    ck_assert_int_eq(ac__wheel_insert(&w, &cancelled, 10, 9, &wx), AC__INSERT_LINKED);
    ck_assert_int_eq(ac__wheel_insert(&w, &c, 10, 9, &wc), AC__INSERT_LINKED);
    ck_assert(ac__wheel_cancel(&w, &cancelled));
    ck_assert_int_eq(outstanding(&px), 0);
    ck_assert_uint_eq(ac__wheel_count(&w), 3);
    ck_assert_uint_eq(ac__wheel_next_expiration(&w), 10);
    ck_assert_uint_eq(ac__wheel_next_wake_ns(&w), 10000000);
    ck_assert_uint_eq(advance_ns(&w, 9999999), 0);
    size_t before = wake_log_len;
    ck_assert_uint_eq(advance_ns(&w, 11000000), 3);
    ck_assert_ptr_eq(wake_log[before], &pb);
    ck_assert_ptr_eq(wake_log[before + 1], &pc);
    ck_assert_ptr_eq(wake_log[before + 2], &pd);
    /* Once the clock is there, a timer for the wheel's time is due. */
    ck_assert_int_eq(ac__wheel_insert(&w, &late, 11, 11, &wl), AC__INSERT_DUE);
    /* The last of the ahead list can be cancelled while it is woken. */
    ac__timer e = {.early = 100}, f = {0};
    probe pe = {0}, pf = {0};
    ac_waker we = probe_waker(&pe), wf = probe_waker(&pf);
    ck_assert_int_eq(ac__wheel_insert(&w, &e, 13, 11, &we), AC__INSERT_LINKED);
    ck_assert_uint_eq(advance_ns(&w, 12900000), 1);
    ck_assert_int_eq(ac__wheel_insert(&w, &f, 13, 12, &wf), AC__INSERT_LINKED);
    ck_assert(ac__wheel_cancel(&w, &f));
    ck_assert_ptr_null(w.ahead_list);
    ck_assert_uint_eq(ac__wheel_next_wake_ns(&w), UINT64_MAX);
    ck_assert_uint_eq(advance_ns(&w, 13000000), 0);
    ck_assert_int_eq(outstanding(&pa) + outstanding(&pb) + outstanding(&pc) + outstanding(&pd) +
                         outstanding(&pe) + outstanding(&pf),
                     0);
    ac__wheel_destroy(&w);
    reset_wake_log();
}
END_TEST

START_TEST(wheel_random_deadlines_to_the_us_fire_after_each_deadline_and_within_its_ms)
{
    /* A model check on the ns clock: deadlines anywhere in a ms over four
     * levels, cancels, and advances by 1-3000 us. Every timer not cancelled
     * fires once, never before its deadline (`when` less `early` us), and
     * no later than the first advance that reaches its ms, also one linked
     * for a ms that the wheel had fired early; wakes are in order of
     * `when`. */
    enum { N = 20000 };
    ac__wheel w;
    ac__wheel_init(&w, 0);
    ac__timer *t;
    probe *p;
    alloc_timers(N, &t, &p);
    bool *cancelled = calloc(N, sizeof *cancelled), *ahead = calloc(N, sizeof *ahead);
    ck_assert(cancelled && ahead);
    uint64_t now_ns = 0, prev_ns = 0, early_fires = 0;
    int linked = 0, live = 0;
    while (linked < N || ac__wheel_count(&w)) {
        for (int k = 0; k < 40 && linked < N; k++, linked++) {
            uint64_t span = (uint64_t[]){3, 64, 4096, 70000}[rnd() % 4];
            uint64_t now = now_ns / 1000000;
            /* Now and then a deadline on a whole ms just after the clock,
             * as sleep_until and interval ticks have. */
            bool whole = rnd() % 8 == 0;
            p[linked].when = now + 1 + (whole ? 0 : rnd() % span);
            t[linked].early = whole ? 0 : (uint16_t)(rnd() % 1000);
            ahead[linked] = w.ahead && p[linked].when == w.elapsed;
            ac_waker wk = probe_waker(&p[linked]);
            ck_assert_int_eq(ac__wheel_insert(&w, &t[linked], p[linked].when, now, &wk),
                             AC__INSERT_LINKED);
            live++;
        }
        live -= cancel_some(&w, t, cancelled, linked, 10);
        size_t before = wake_log_len;
        prev_ns = now_ns;
        now_ns += 1000 + rnd() % 3000000;
        advance_ns(&w, now_ns);
        for (size_t k = before; k < wake_log_len; k++) {
            probe *q = wake_log[k];
            size_t i = (size_t)(q - p);
            uint64_t deadline = q->when * 1000000 - (uint64_t)t[i].early * 1000;
            ck_assert_uint_ge(now_ns, deadline); /* never early */
            ck_assert_uint_lt(prev_ns / 1000000, q->when); /* the last advance was before its ms */
            if (now_ns / 1000000 < q->when)
                early_fires++;
        }
        live -= (int)(wake_log_len - before);
        ck_assert_uint_eq(ac__wheel_count(&w), (size_t)live);
    }
    ck_assert_uint_gt(early_fires, 0); /* the test saw slots fire before their ms */
    int linked_ahead = 0;
    for (int i = 0; i < N; i++)
        linked_ahead += ahead[i];
    ck_assert_int_gt(linked_ahead, 0); /* and timers linked for a ms fired early */
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(p[i].wakes, cancelled[i] ? 0 : 1);
        ck_assert_int_eq(outstanding(&p[i]), 0);
    }
    for (size_t k = 1; k < wake_log_len; k++)
        ck_assert_uint_le(wake_log[k - 1]->when, wake_log[k]->when);
    free(cancelled);
    free(ahead);
    free_timers(&w, t, p);
}
END_TEST

START_TEST(wheel_fires_timers_in_deadline_order_then_insertion_order)
{
    enum { N = 5000 };
    ac__wheel w;
    ac__wheel_init(&w, 0);
    ac__timer *t;
    probe *p;
    alloc_timers(N, &t, &p);
    for (int i = 0; i < N; i++) {
        /* Deadlines across three levels, with many ties. */
        p[i].when = 1 + rnd() % 20000;
        ac_waker wk = probe_waker(&p[i]);
        ac__wheel_insert(&w, &t[i], p[i].when, 0, &wk);
    }
    ck_assert_uint_eq(advance(&w, 20000), N); /* one jump over all of them */
    ck_assert_uint_eq(wake_log_len, N);
    for (size_t i = 1; i < wake_log_len; i++) {
        ck_assert_uint_le(wake_log[i - 1]->when, wake_log[i]->when);
        if (wake_log[i - 1]->when == wake_log[i]->when)
            ck_assert((uintptr_t)wake_log[i - 1] < (uintptr_t)wake_log[i]); /* p[] is insertion order */
    }
    free_timers(&w, t, p);
}
END_TEST

START_TEST(wheel_cancel_unlinks_the_timer_and_releases_its_waker)
{
    ac__wheel w;
    ac__wheel_init(&w, 0);
    ac__timer t[3] = {{0}};
    probe p[3] = {{0}};
    for (int i = 0; i < 3; i++) {
        ac_waker wk = probe_waker(&p[i]);
        ac__wheel_insert(&w, &t[i], 10, 0, &wk); /* one slot */
    }
    ck_assert(ac__wheel_cancel(&w, &t[1]));
    ck_assert_uint_eq(timer_state(&t[1]), AC__TIMER_IDLE);
    ck_assert_int_eq(p[1].drops, 1);
    ck_assert_int_eq(outstanding(&p[1]), 0);
    ck_assert(!ac__wheel_cancel(&w, &t[1])); /* twice: nothing to do */
    ck_assert_uint_eq(ac__wheel_count(&w), 2);

    ck_assert_uint_eq(advance(&w, 10), 2);
    ck_assert_int_eq(p[0].wakes, 1);
    ck_assert_int_eq(p[1].wakes, 0);
    ck_assert_int_eq(p[2].wakes, 1);
    /* Cancelling a fired timer does nothing: its waker went to the wake. */
    ck_assert(!ac__wheel_cancel(&w, &t[0]));
    ck_assert_int_eq(p[0].drops, 0);
    ck_assert_uint_eq(ac__wheel_next_expiration(&w), UINT64_MAX);
    ac__wheel_destroy(&w);
    reset_wake_log();
}
END_TEST

/* For the next test: a waker whose wake cancels timers [cancel_from, DUE_N)
 * of the wheel under test, from outside the wheel's lock, as a woken task
 * may drop another task's sleep, and records what the wheel says is next. */
enum { DUE_N = 100 };
static struct {
    ac__wheel *w;
    ac__timer *t;
    int cancel_from;
    int cancelled;
    uint64_t next_after; /* ac__wheel_next_expiration after the cancels */
} in_wake;

/* A cancelled node is its owner's again, as a dropped frame's memory is
 * reused: its links are overwritten, which a wheel that still followed them
 * would crash on. */
#define POISON ((ac__timer *)(uintptr_t)0xdbdbdbdbdbdbdbdbu)

static void cancelling_wake(const void *d)
{
    probe_wake(d);
    for (int i = in_wake.cancel_from; i < DUE_N; i++) {
        if (ac__wheel_cancel(in_wake.w, &in_wake.t[i])) {
            in_wake.cancelled++;
            in_wake.t[i].next = in_wake.t[i].prev = POISON;
        }
    }
    in_wake.next_after = ac__wheel_next_expiration(in_wake.w);
}
static const ac_waker_vtable cancelling_vtable;
static ac_waker cancelling_clone(const void *d)
{
    probe_clone(d);
    return (ac_waker){&cancelling_vtable, d};
}
static const ac_waker_vtable cancelling_vtable = {cancelling_clone, cancelling_wake,
                                                  probe_wake_by_ref, probe_drop};

START_TEST(wheel_timers_of_a_due_millisecond_can_be_cancelled_while_it_is_woken)
{
    /* DUE_N timers in one level-0 slot expire together and are woken in
     * batches, the wheel's lock released between them. The first wake
     * cancels timers the wheel has not reached yet (among them the node the
     * wheel's second walker, from the tail, stands on): they are never
     * woken, their wakers are released, and the slot serves later timers. In the
     * second round the cancels empty the slot, and nothing is due any more. */
    for (int round = 0; round < 2; round++) {
        ac__wheel w;
        ac__wheel_init(&w, 0);
        ac__timer t[DUE_N] = {{0}};
        probe p[DUE_N] = {{0}};
        int from = round == 0 ? 50 : 32; /* 32: every timer after the first batch */
        in_wake.w = &w;
        in_wake.t = t;
        in_wake.cancel_from = from;
        in_wake.cancelled = 0;
        for (int i = 0; i < DUE_N; i++) {
            ac_waker wk = probe_waker(&p[i]);
            if (i == 0)
                wk.vtable = &cancelling_vtable;
            ck_assert_int_eq(ac__wheel_insert(&w, &t[i], 10, 0, &wk), AC__INSERT_LINKED);
        }
        ck_assert_uint_eq(advance(&w, 10), (size_t)from);
        ck_assert_int_eq(in_wake.cancelled, DUE_N - from);
        /* Round 0: the rest of the slot is still due then; round 1: nothing. */
        ck_assert_uint_eq(in_wake.next_after, round == 0 ? 10 : UINT64_MAX);
        for (int i = 0; i < DUE_N; i++) {
            ck_assert_int_eq(p[i].wakes, i < from);
            ck_assert_int_eq(p[i].drops, i >= from);
            ck_assert_uint_eq(timer_state(&t[i]), i < from ? AC__TIMER_FIRED : AC__TIMER_IDLE);
            ck_assert_int_eq(outstanding(&p[i]), 0);
        }
        ck_assert_uint_eq(ac__wheel_count(&w), 0);
        ck_assert_uint_eq(ac__wheel_next_expiration(&w), UINT64_MAX);
        /* The same slot (10) a lap later: down from level 1 at 64, due at 74. */
        ac__timer later = {0};
        probe q = {0};
        ac_waker wk = probe_waker(&q);
        ck_assert_int_eq(ac__wheel_insert(&w, &later, 74, 10, &wk), AC__INSERT_LINKED);
        ck_assert_uint_eq(advance(&w, 73), 0);
        ck_assert_uint_eq(advance(&w, 74), 1);
        ck_assert_uint_eq(q.fired_at, 74);
        ac__wheel_destroy(&w);
        reset_wake_log();
    }
}
END_TEST

START_TEST(wheel_cancel_of_the_last_timer_in_a_slot_clears_the_slot)
{
    ac__wheel w;
    ac__wheel_init(&w, 0);
    ac__timer a = {0}, b = {0};
    probe p = {0};
    ac_waker wk = probe_waker(&p);
    ac__wheel_insert(&w, &a, 7, 0, &wk);
    ac__wheel_insert(&w, &b, 9000, 0, &wk);
    ck_assert_uint_eq(ac__wheel_next_expiration(&w), 7);
    ac__wheel_cancel(&w, &a);
    ck_assert_uint_eq(w.levels[0].occupied, 0);
    ck_assert_uint_eq(ac__wheel_next_expiration(&w), 8192); /* b's level-2 slot */
    ac__wheel_cancel(&w, &b);
    ck_assert_uint_eq(ac__wheel_next_expiration(&w), UINT64_MAX);
    ck_assert_int_eq(outstanding(&p), 0);
    ac__wheel_destroy(&w);
}
END_TEST

START_TEST(wheel_refresh_replaces_the_waker_of_another_task)
{
    ac__wheel w;
    ac__wheel_init(&w, 0);
    ac__timer t = {0};
    probe first = {0}, second = {0};
    ac_waker a = probe_waker(&first), b = probe_waker(&second);
    ac__wheel_insert(&w, &t, 5, 0, &a);
    ck_assert(!ac__wheel_refresh(&w, &t, &a)); /* same waker: kept as it is */
    ck_assert_int_eq(first.clones, 1);
    ck_assert(!ac__wheel_refresh(&w, &t, &b));
    ck_assert_int_eq(first.drops, 1);
    ck_assert_int_eq(second.clones, 1);
    advance(&w, 5);
    ck_assert_int_eq(first.wakes, 0);
    ck_assert_int_eq(second.wakes, 1);
    ck_assert(ac__wheel_refresh(&w, &t, &b)); /* fired */
    ac__wheel_destroy(&w);
    reset_wake_log();
}
END_TEST

START_TEST(wheel_holds_a_million_pending_timers_and_cancelling_them_returns_all_memory)
{
    enum { N = 1000000 };
    struct mallinfo2 before = mallinfo2();
    ac__wheel *w = malloc(sizeof *w);
    ac__timer *t = calloc(N, sizeof *t);
    ck_assert_ptr_nonnull(w);
    ck_assert_ptr_nonnull(t);
    ac__wheel_init(w, 0);
    ac_waker wk = {&count_vtable, NULL};
    for (int i = 0; i < N; i++)
        ac__wheel_insert(w, &t[i], 1 + rnd() % (1ull << 32), 0, &wk);
    ck_assert_uint_eq(ac__wheel_count(w), N);
    /* A timer is its node: the wheel allocated nothing for them. */
    ck_assert_uint_le(mallinfo2().uordblks, before.uordblks + sizeof *w + N * sizeof *t + 4096);
    for (int i = N - 1; i >= 0; i -= 2) /* cancel in an order unlike insertion */
        ck_assert(ac__wheel_cancel(w, &t[i]));
    for (int i = 0; i < N; i += 2)
        ck_assert(ac__wheel_cancel(w, &t[i]));
    ck_assert_uint_eq(ac__wheel_count(w), 0);
    ck_assert_uint_eq(ac__wheel_next_expiration(w), UINT64_MAX);
    for (int l = 0; l < AC__WHEEL_LEVELS; l++)
        ck_assert_uint_eq(w->levels[l].occupied, 0);
    ac__wheel_destroy(w);
    free(t);
    free(w);
    ck_assert_uint_eq(mallinfo2().uordblks, before.uordblks);
}
END_TEST

START_TEST(wheel_fires_100000_random_timers_each_on_its_millisecond_in_order)
{
    enum { N = 100000 };
    ac__wheel w;
    ac__wheel_init(&w, 0);
    ac__timer *t;
    probe *p;
    alloc_timers(N, &t, &p);
    for (int i = 0; i < N; i++) {
        p[i].when = 1 + rnd() % 100; /* 0-100 ms from now (0: due, refused) */
        ac_waker wk = probe_waker(&p[i]);
        ac__wheel_insert(&w, &t[i], p[i].when, 0, &wk);
    }
    size_t fired = 0;
    for (uint64_t now = 1; now <= 101; now++) /* the virtual clock ticks */
        fired += advance(&w, now);
    ck_assert_uint_eq(fired, N);
    ck_assert_uint_eq(wake_log_len, N);
    for (int i = 0; i < N; i++)
        ck_assert_uint_eq(p[i].fired_at, p[i].when);
    for (size_t i = 1; i < wake_log_len; i++)
        ck_assert_uint_le(wake_log[i - 1]->when, wake_log[i]->when);
    ck_assert_uint_eq(ac__wheel_count(&w), 0);
    free_timers(&w, t, p);
}
END_TEST

/* Registration from several threads while another advances the wheel. */
typedef struct inserter {
    ac__wheel *w;     /* the shared wheel */
    ac__timer *t;     /* this thread's timers */
    int n;            /* how many */
    atomic_ulong *now;/* the advancing thread's time */
} inserter;

static void *insert_many(void *arg)
{
    inserter *in = arg;
    ac_waker wk = {&count_vtable, NULL};
    uint64_t seed = (uintptr_t)in->t;
    for (int i = 0; i < in->n; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t now = atomic_load(in->now);
        if (ac__wheel_insert(in->w, &in->t[i], now + 1 + (seed >> 33) % 300, now, &wk) ==
            AC__INSERT_DUE)
            atomic_fetch_add(&counted_wakes, 1); /* counts as fired at once */
        if (i % 3 == 0 && ac__wheel_cancel(in->w, &in->t[i]))
            atomic_fetch_add(&counted_wakes, 1); /* counts as fired: it will not be */
    }
    return NULL;
}

START_TEST(wheel_registration_from_many_threads_while_advancing_fires_each_timer_once)
{
    enum { THREADS = 4, PER = 20000 };
    ac__wheel w;
    ac__wheel_init(&w, 0);
    atomic_ulong now = 0;
    atomic_store(&counted_wakes, 0);
    ac__timer *t = calloc((size_t)THREADS * PER, sizeof *t);
    ck_assert_ptr_nonnull(t);
    pthread_t th[THREADS];
    inserter in[THREADS];
    for (int i = 0; i < THREADS; i++) {
        in[i] = (inserter){&w, t + (size_t)i * PER, PER, &now};
        ck_assert_int_eq(pthread_create(&th[i], NULL, insert_many, &in[i]), 0);
    }
    /* Advance while they insert, then until everything has fired. */
    while (atomic_load(&counted_wakes) < THREADS * PER) {
        uint64_t n = atomic_load(&now) + 1;
        ac__wheel_advance(&w, n);
        atomic_store(&now, n);
        if (n > 100000000)
            ck_abort_msg("timers did not all fire");
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    ck_assert_int_eq(atomic_load(&counted_wakes), THREADS * PER);
    ck_assert_uint_eq(ac__wheel_count(&w), 0);
    ac__wheel_destroy(&w);
    free(t);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* The runtime clock                                                         */
/* ------------------------------------------------------------------------ */

/* The first clock readings of a process, taken by many threads at once. */
enum { FIRST_READERS = 16 };
static pthread_barrier_t first_go;
static uint64_t first_read[FIRST_READERS];

static void *read_clock_first(void *arg)
{
    pthread_barrier_wait(&first_go);
    first_read[(intptr_t)arg] = ac__clock_now_ns();
    return NULL;
}

START_TEST(first_clock_readings_from_many_threads_at_once_are_near_zero)
{
    /* The clock counts from the process's first reading. A thread that read
     * the real clock just before another thread's first reading became the
     * origin got a negative time, shown as about 2^64 ns: a sleep taken then
     * landed 584 years away, and its wheel with it (the runtime hung). The
     * race needs fresh processes: each child reads for the first time. */
    for (int trial = 0; trial < 1000; trial++) {
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            pthread_t th[FIRST_READERS];
            pthread_barrier_init(&first_go, NULL, FIRST_READERS);
            for (intptr_t i = 0; i < FIRST_READERS; i++)
                pthread_create(&th[i], NULL, read_clock_first, (void *)i);
            for (int i = 0; i < FIRST_READERS; i++)
                pthread_join(th[i], NULL);
            for (int i = 0; i < FIRST_READERS; i++)
                if (first_read[i] > 1000000000u) { /* 1 s */
                    fprintf(stderr, "reader %d: %llu\n", i, (unsigned long long)first_read[i]);
                    _exit(1);
                }
            _exit(0);
        }
        int status = 0;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                      "trial %d: a first reading was not near 0", trial);
    }
}
END_TEST

START_TEST(paused_clock_stands_still_and_moves_only_by_advance)
{
    ac_time_resume();
    while (ac__clock_now_ns() % 1000000u == 0) /* be inside a ms */
        ;
    ac_time_pause();
    /* Frozen on a whole ms, so that paused durations are exact. */
    ck_assert_uint_eq(ac__clock_now_ns() % 1000000u, 0);
    uint64_t t0 = ac_now_ms();
    ck_assert_uint_eq(ac_now_ms(), t0);
    ac_time_advance(250);
    ck_assert_uint_eq(ac_now_ms(), t0 + 250);
    ac_time_pause(); /* again: no effect */
    ck_assert_uint_eq(ac_now_ms(), t0 + 250);
}
END_TEST

START_TEST(resumed_clock_continues_from_the_paused_value)
{
    ac_time_pause();
    uint64_t t0 = ac_now_ms();
    ac_time_advance(100000); /* far ahead of the real clock */
    ac_time_resume();
    uint64_t t1 = ac_now_ms();
    ck_assert_uint_ge(t1, t0 + 100000);
    ck_assert_uint_lt(t1, t0 + 100000 + 60000); /* runs on from there, not from real time */
    ck_assert_uint_ge(ac_now_ms(), t1);         /* and never goes back */
}
END_TEST

START_TEST(advance_moves_a_running_clock_forward)
{
    ac_time_resume();
    uint64_t t0 = ac_now_ms();
    ac_time_advance(5000);
    ck_assert_uint_ge(ac_now_ms(), t0 + 5000);
}
END_TEST

/* Reads deadline readings between two clock readings until the clock has
 * moved `ns` on: each must lie between the clock before it and 3 us past
 * the clock after it (clock.c's window plus slack). Returns how many. */
static long deadline_readings_within_bounds(uint64_t ns)
{
    long n = 0;
    uint64_t end = ac__clock_now_ns() + ns;
    for (;;) {
        uint64_t before = ac__clock_now_ns();
        uint64_t d = ac__clock_deadline_ns();
        uint64_t after = ac__clock_now_ns();
        ck_assert_uint_le(before, d);
        ck_assert_uint_le(d, after + 3000);
        n++;
        if (after >= end)
            return n;
    }
}

static void *deadline_reader(void *arg)
{
    (void)arg;
    deadline_readings_within_bounds(20000000); /* 20 ms */
    return NULL;
}

START_TEST(deadline_readings_are_never_behind_the_clock_and_at_most_3_us_ahead)
{
    /* A deadline computed from a reading behind the clock would fire early.
     * Four threads at once, past the counter's calibration (1 ms). */
    ac_time_resume();
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, deadline_reader, NULL), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    /* On a machine whose clocksource is the counter the fast path was on
     * for most of those readings; elsewhere they all read the clock. */
    FILE *f = fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "r");
    char name[32] = "";
    if (f) {
        if (!fgets(name, sizeof name, f))
            name[0] = '\0';
        fclose(f);
    }
#if defined(__x86_64__)
    if (strcmp(name, "tsc\n") == 0)
        ck_assert(ac__clock_deadline_is_fast());
#endif
}
END_TEST

START_TEST(deadline_readings_follow_pause_resume_and_advance_at_once)
{
    /* Paused, a deadline reading is the frozen clock, exactly (paused sleeps
     * are exact); resumed or advanced, a thread's last reading no longer
     * serves, though the counter says it is fresh. */
    ac_time_resume();
    deadline_readings_within_bounds(2000000); /* calibrated, where it can be */
    uint64_t d0 = ac__clock_deadline_ns();
    ac_time_advance(7);
    uint64_t now = ac__clock_now_ns();
    uint64_t d1 = ac__clock_deadline_ns();
    ck_assert_uint_ge(d1, now);
    ck_assert_uint_ge(d1, d0 + 7000000);
    ac_time_pause();
    ck_assert_uint_eq(ac__clock_deadline_ns(), ac__clock_now_ns());
    ac_time_advance(3);
    ck_assert_uint_eq(ac__clock_deadline_ns(), ac__clock_now_ns());
    ac_time_resume();
    now = ac__clock_now_ns();
    ck_assert_uint_ge(ac__clock_deadline_ns(), now);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Sleep                                                                     */
/* ------------------------------------------------------------------------ */

static size_t global_timers(void) { return ac__time_count(); }

START_TEST(sleep_is_pending_until_the_clock_reaches_its_deadline)
{
    ac_time_pause();
    probe p = {0};
    ac_waker wk = probe_waker(&p);
    ac_context cx = {.waker = &wk};
    struct ac_sleep__frame f;
    ac_sleep__init(&f, 100);
    ck_assert_int_eq(ac_sleep__poll(&f, &cx, NULL), AC_PENDING);
    ck_assert_uint_eq(global_timers(), 1);
    ac_time_advance(99);
    ck_assert_int_eq(p.wakes, 0);
    ck_assert_int_eq(ac_sleep__poll(&f, &cx, NULL), AC_PENDING); /* a spurious poll */
    ac_time_advance(1);
    ck_assert_int_eq(p.wakes, 1); /* woken by the advance */
    ck_assert_int_eq(ac_sleep__poll(&f, &cx, NULL), AC_READY);
    ck_assert_uint_eq(f.state, AC_STATE_RETURNED);
    ck_assert_uint_eq(global_timers(), 0);
    ck_assert_int_eq(outstanding(&p), 0);
    ac_sleep__drop(&f); /* harmless after ready */
    reset_wake_log();
}
END_TEST

START_TEST(sleep_of_zero_is_ready_at_the_first_poll)
{
    ac_time_pause();
    probe p = {0};
    ac_waker wk = probe_waker(&p);
    ac_context cx = {.waker = &wk};
    struct ac_sleep__frame f;
    ac_sleep__init(&f, 0);
    ck_assert_int_eq(ac_sleep__poll(&f, &cx, NULL), AC_READY);
    ck_assert_int_eq(p.clones, 0);
}
END_TEST

START_TEST(sleep_ready_at_once_spends_coop_budget)
{
    ac_time_pause();
    probe p = {0};
    ac_waker wk = probe_waker(&p);
    unsigned budget = 0; /* exhausted */
    ac_context cx = {.waker = &wk, .budget = &budget};
    struct ac_sleep__frame f;
    ac_sleep__init(&f, 0);
    ck_assert_int_eq(ac_sleep__poll(&f, &cx, NULL), AC_PENDING);
    ck_assert_int_eq(p.wakes_by_ref, 1); /* asks to be polled again */
    budget = 1;
    ck_assert_int_eq(ac_sleep__poll(&f, &cx, NULL), AC_READY);
    ck_assert_uint_eq(budget, 0);
}
END_TEST

START_TEST(dropping_a_pending_sleep_unregisters_its_timer)
{
    ac_time_pause();
    probe p = {0};
    ac_waker wk = probe_waker(&p);
    ac_context cx = {.waker = &wk};
    struct ac_sleep__frame f;
    ac_sleep__init(&f, 30);
    ck_assert_int_eq(ac_sleep__poll(&f, &cx, NULL), AC_PENDING);
    ck_assert_uint_eq(global_timers(), 1);
    ac_sleep__drop(&f);
    ck_assert_uint_eq(global_timers(), 0);
    ck_assert_int_eq(outstanding(&p), 0); /* the clone went back */
    ac_time_advance(1000);
    ck_assert_int_eq(p.wakes, 0);
}
END_TEST

START_TEST(sleep_repolled_by_another_task_wakes_that_task)
{
    ac_time_pause();
    probe a = {0}, b = {0};
    ac_waker wa = probe_waker(&a), wb = probe_waker(&b);
    ac_context cxa = {.waker = &wa}, cxb = {.waker = &wb};
    struct ac_sleep__frame f;
    ac_sleep__init(&f, 10);
    ck_assert_int_eq(ac_sleep__poll(&f, &cxa, NULL), AC_PENDING);
    ck_assert_int_eq(ac_sleep__poll(&f, &cxb, NULL), AC_PENDING);
    ck_assert_int_eq(outstanding(&a), 0);
    ac_time_advance(10);
    ck_assert_int_eq(a.wakes, 0);
    ck_assert_int_eq(b.wakes, 1);
    ck_assert_int_eq(ac_sleep__poll(&f, &cxb, NULL), AC_READY);
    reset_wake_log();
}
END_TEST

START_TEST(sleep_polled_after_its_deadline_completes_even_if_not_yet_fired)
{
    /* An executor that never parks may not have fired the timer yet; the
     * sleep notices its deadline by itself and unregisters. */
    ac_time_pause();
    probe p = {0};
    ac_waker wk = probe_waker(&p);
    ac_context cx = {.waker = &wk};
    struct ac_sleep__frame f;
    ac_sleep__init(&f, 10);
    ck_assert_int_eq(ac_sleep__poll(&f, &cx, NULL), AC_PENDING);
    ac__clock_advance_to_ms(ac_now_ms() + 10); /* moves the clock, fires nothing */
    ck_assert_int_eq(ac_sleep__poll(&f, &cx, NULL), AC_READY);
    ck_assert_uint_eq(global_timers(), 0);
    ck_assert_int_eq(outstanding(&p), 0);
    ck_assert_int_eq(p.wakes, 0);
}
END_TEST

START_TEST(sleep_first_polled_after_its_deadline_completes_by_the_next_advance)
{
    /* The first poll compares with the clock reading the deadline came
     * from, not a new one: a deadline that passed in between is found due
     * by the wheel's next advance, never missed, never early. */
    ac_time_pause();
    probe p = {0};
    ac_waker wk = probe_waker(&p);
    ac_context cx = {.waker = &wk};
    struct ac_sleep__frame f;
    uint64_t t0 = ac_now_ms();
    ac_sleep__init(&f, 10);
    ck_assert_uint_lt(f.timer.lead, UINT16_MAX); /* it kept its reading */
    ac__clock_advance_to_ms(t0 + 25); /* moves the clock, fires nothing */
    if (ac_sleep__poll(&f, &cx, NULL) == AC_PENDING) {
        ac__time_fire_due();
        ck_assert_int_eq(p.wakes, 1);
        ck_assert_int_eq(ac_sleep__poll(&f, &cx, NULL), AC_READY);
    }
    ck_assert_uint_eq(global_timers(), 0);
    ck_assert_int_eq(outstanding(&p), 0);
    reset_wake_log();
}
END_TEST

/* One thread's part of the shard test: starts sleeps[i] on its own thread. */
typedef struct starter {
    struct ac_sleep__frame *f;
    probe *p;
    uint64_t ms;
} starter;

static void *start_sleep(void *arg)
{
    starter *st = arg;
    ac_waker wk = probe_waker(st->p);
    ac_context cx = {.waker = &wk};
    ac_sleep__init(st->f, st->ms);
    ck_assert_int_eq(ac_sleep__poll(st->f, &cx, NULL), AC_PENDING);
    return NULL;
}

START_TEST(sleeps_registered_on_different_threads_use_different_wheels)
{
    enum { T = 4 };
    ac_time_pause();
    struct ac_sleep__frame f[2 * T];
    probe p[2 * T];
    memset(p, 0, sizeof p);
    pthread_t th[T];
    starter st[2 * T];
    /* Round 1: one sleep per new thread; each new thread gets its own wheel. */
    for (int i = 0; i < T; i++) {
        st[i] = (starter){&f[i], &p[i], 10};
        ck_assert_int_eq(pthread_create(&th[i], NULL, start_sleep, &st[i]), 0);
        pthread_join(th[i], NULL);
    }
    for (int i = 0; i < T; i++)
        for (int j = 0; j < i; j++)
            ck_assert_uint_ne(f[i].timer.shard, f[j].timer.shard);
    ck_assert_uint_eq(global_timers(), T);
    ac_time_advance(10); /* fires every wheel */
    for (int i = 0; i < T; i++) {
        ck_assert_int_eq(p[i].wakes, 1);
        ac_waker wk = probe_waker(&p[i]);
        ac_context cx = {.waker = &wk};
        ck_assert_int_eq(ac_sleep__poll(&f[i], &cx, NULL), AC_READY);
    }
    /* Round 2: registered on other threads, dropped here: each leaves the
     * wheel it is in. */
    for (int i = T; i < 2 * T; i++) {
        st[i] = (starter){&f[i], &p[i], 1000};
        ck_assert_int_eq(pthread_create(&th[i - T], NULL, start_sleep, &st[i]), 0);
        pthread_join(th[i - T], NULL);
    }
    ck_assert_uint_eq(global_timers(), T);
    for (int i = T; i < 2 * T; i++)
        ac_sleep__drop(&f[i]);
    ck_assert_uint_eq(global_timers(), 0);
    for (int i = 0; i < 2 * T; i++)
        ck_assert_int_eq(outstanding(&p[i]), 0);
    reset_wake_log();
}
END_TEST

START_TEST(sleep_until_completes_when_the_clock_reaches_the_deadline)
{
    ac_time_pause();
    probe p = {0};
    ac_waker wk = probe_waker(&p);
    ac_context cx = {.waker = &wk};
    uint64_t deadline = ac_now_ms() + 42;
    struct ac_sleep_until__frame f;
    ac_sleep_until__init(&f, deadline);
    ck_assert_int_eq(ac_sleep_until__poll(&f, &cx, NULL), AC_PENDING);
    ac_time_advance(41);
    ck_assert_int_eq(ac_sleep_until__poll(&f, &cx, NULL), AC_PENDING);
    ac_time_advance(1);
    ck_assert_int_eq(p.wakes, 1);
    ck_assert_int_eq(ac_sleep_until__poll(&f, &cx, NULL), AC_READY);
    ck_assert_uint_eq(ac_now_ms(), deadline);

    ac_sleep_until__init(&f, deadline - 1); /* in the past */
    ck_assert_int_eq(ac_sleep_until__poll(&f, &cx, NULL), AC_READY);
    reset_wake_log();
}
END_TEST

START_TEST(sleep_forever_stays_pending_and_drops_cleanly)
{
    ac_time_pause();
    probe p = {0};
    ac_waker wk = probe_waker(&p);
    ac_context cx = {.waker = &wk};
    struct ac_sleep_until__frame f;
    ac_sleep_until__init(&f, UINT64_MAX);
    ck_assert_int_eq(ac_sleep_until__poll(&f, &cx, NULL), AC_PENDING);
    ac_time_advance(1000ull * 3600 * 24 * 365); /* a year */
    ck_assert_int_eq(ac_sleep_until__poll(&f, &cx, NULL), AC_PENDING);
    ac_sleep_until__drop(&f);
    ck_assert_uint_eq(global_timers(), 0);
    ck_assert_int_eq(outstanding(&p), 0);
}
END_TEST

START_TEST(sleep_vtables_describe_their_frames)
{
    ck_assert_uint_eq(ac_sleep__vt.size, sizeof(struct ac_sleep__frame));
    ck_assert_uint_eq(ac_sleep__vt.out_size, 0);
    ck_assert_str_eq(ac_sleep__vt.name, "ac_sleep");
    ck_assert_uint_eq(ac_sleep_until__vt.size, sizeof(struct ac_sleep_until__frame));
    ck_assert_uint_eq(ac_interval_tick__vt.out_size, sizeof(uint64_t));
    /* Per timer: the frame and nothing else. */
    ck_assert_uint_le(sizeof(struct ac_sleep__frame), 56);
}
END_TEST

START_TEST(sleep_resumed_after_completion_traps)
{
    ac_time_pause();
    ac_context cx = {.waker = ac_waker_noop()};
    struct ac_sleep__frame f;
    ac_sleep__init(&f, 0);
    ck_assert_int_eq(ac_sleep__poll(&f, &cx, NULL), AC_READY);
    ck_assert_ptr_nonnull(freopen("/dev/null", "w", stderr));
    ac_sleep__poll(&f, &cx, NULL); /* raises SIGABRT */
}
END_TEST

START_TEST(sleeps_100000_random_fire_in_deadline_order_on_the_virtual_clock)
{
    enum { N = 100000 };
    ac_time_pause();
    uint64_t t0 = ac_now_ms();
    struct ac_sleep__frame *f = calloc(N, sizeof *f);
    probe *p = calloc(N, sizeof *p);
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(p);
    for (int i = 0; i < N; i++) {
        uint64_t ms = rnd() % 101; /* 0-100 ms */
        p[i].when = t0 + ms;
        ac_sleep__init(&f[i], ms);
        ac_waker wk = probe_waker(&p[i]);
        ac_context cx = {.waker = &wk};
        ac_poll_t r = ac_sleep__poll(&f[i], &cx, NULL);
        ck_assert_int_eq(r, ms == 0 ? AC_READY : AC_PENDING);
    }
    for (int ms = 1; ms <= 100; ms++) {
        virtual_now = t0 + ms;
        ac_time_advance(1);
    }
    for (int i = 0; i < N; i++) {
        if (p[i].when == t0)
            continue;
        ck_assert_int_eq(p[i].wakes, 1);
        ck_assert_uint_eq(p[i].fired_at, p[i].when);
        ac_waker wk = probe_waker(&p[i]);
        ac_context cx = {.waker = &wk};
        ck_assert_int_eq(ac_sleep__poll(&f[i], &cx, NULL), AC_READY);
    }
    for (size_t i = 1; i < wake_log_len; i++)
        ck_assert_uint_le(wake_log[i - 1]->when, wake_log[i]->when);
    ck_assert_uint_eq(global_timers(), 0);
    free(f);
    free(p);
    reset_wake_log();
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Interval                                                                  */
/* ------------------------------------------------------------------------ */

/* Polls a new tick future once with the probe's waker. */
static ac_poll_t tick_once(struct ac_interval_tick__frame *f, ac_interval *iv, probe *p,
                           uint64_t *out)
{
    ac_interval_tick__init(f, iv);
    ac_waker wk = probe_waker(p);
    ac_context cx = {.waker = &wk};
    return ac_interval_tick__poll(f, &cx, out);
}

static ac_poll_t tick_again(struct ac_interval_tick__frame *f, probe *p, uint64_t *out)
{
    ac_waker wk = probe_waker(p);
    ac_context cx = {.waker = &wk};
    return ac_interval_tick__poll(f, &cx, out);
}

START_TEST(interval_first_tick_is_immediate_then_one_per_period)
{
    ac_time_pause();
    uint64_t t0 = ac_now_ms();
    ac_interval *iv = ac_interval_new(10, AC_TICK_BURST);
    ck_assert_ptr_nonnull(iv);
    probe p = {0};
    struct ac_interval_tick__frame f;
    uint64_t at = 0;
    ck_assert_int_eq(tick_once(&f, iv, &p, &at), AC_READY);
    ck_assert_uint_eq(at, t0);
    for (int k = 1; k <= 3; k++) {
        ck_assert_int_eq(tick_once(&f, iv, &p, &at), AC_PENDING);
        ac_time_advance(9);
        ck_assert_int_eq(tick_again(&f, &p, &at), AC_PENDING);
        ac_time_advance(1);
        ck_assert_int_eq(tick_again(&f, &p, &at), AC_READY);
        ck_assert_uint_eq(at, t0 + 10 * (uint64_t)k);
    }
    ac_interval_free(iv);
    reset_wake_log();
}
END_TEST

START_TEST(interval_burst_completes_missed_ticks_at_once_to_catch_up)
{
    ac_time_pause();
    uint64_t t0 = ac_now_ms();
    ac_interval *iv = ac_interval_new(10, AC_TICK_BURST);
    probe p = {0};
    struct ac_interval_tick__frame f;
    uint64_t at;
    tick_once(&f, iv, &p, &at); /* t0 */
    ac_time_advance(35);        /* ticks at 10, 20, 30 missed */
    for (uint64_t k = 1; k <= 3; k++) {
        ck_assert_int_eq(tick_once(&f, iv, &p, &at), AC_READY);
        ck_assert_uint_eq(at, t0 + 10 * k);
    }
    ck_assert_int_eq(tick_once(&f, iv, &p, &at), AC_PENDING); /* 40: the schedule is kept */
    ac_time_advance(5);
    ck_assert_int_eq(tick_again(&f, &p, &at), AC_READY);
    ck_assert_uint_eq(at, t0 + 40);
    ac_interval_free(iv);
    reset_wake_log();
}
END_TEST

START_TEST(interval_delay_restarts_the_schedule_from_a_late_tick)
{
    ac_time_pause();
    uint64_t t0 = ac_now_ms();
    ac_interval *iv = ac_interval_new(10, AC_TICK_DELAY);
    probe p = {0};
    struct ac_interval_tick__frame f;
    uint64_t at;
    tick_once(&f, iv, &p, &at);
    ac_time_advance(35);
    ck_assert_int_eq(tick_once(&f, iv, &p, &at), AC_READY);
    ck_assert_uint_eq(at, t0 + 10); /* the missed tick, late */
    ck_assert_int_eq(tick_once(&f, iv, &p, &at), AC_PENDING);
    ac_time_advance(9);
    ck_assert_int_eq(tick_again(&f, &p, &at), AC_PENDING);
    ac_time_advance(1);
    ck_assert_int_eq(tick_again(&f, &p, &at), AC_READY);
    ck_assert_uint_eq(at, t0 + 45); /* a period after it completed */
    ac_interval_free(iv);
    reset_wake_log();
}
END_TEST

START_TEST(interval_skip_drops_missed_ticks_and_keeps_the_phase)
{
    ac_time_pause();
    uint64_t t0 = ac_now_ms();
    ac_interval *iv = ac_interval_new(10, AC_TICK_SKIP);
    probe p = {0};
    struct ac_interval_tick__frame f;
    uint64_t at;
    tick_once(&f, iv, &p, &at);
    ac_time_advance(35);
    ck_assert_int_eq(tick_once(&f, iv, &p, &at), AC_READY);
    ck_assert_uint_eq(at, t0 + 10);
    ck_assert_int_eq(tick_once(&f, iv, &p, &at), AC_PENDING);
    ac_time_advance(5);
    ck_assert_int_eq(tick_again(&f, &p, &at), AC_READY);
    ck_assert_uint_eq(at, t0 + 40); /* 20 and 30 skipped, on the original grid */
    ac_interval_free(iv);
    reset_wake_log();
}
END_TEST

START_TEST(interval_tick_late_by_at_most_5_ms_is_not_missed)
{
    ck_assert_uint_eq(ac__interval_next(100, 105, 10, AC_TICK_DELAY), 110);
    ck_assert_uint_eq(ac__interval_next(100, 106, 10, AC_TICK_DELAY), 116);
    ck_assert_uint_eq(ac__interval_next(100, 105, 10, AC_TICK_SKIP), 110);
    ck_assert_uint_eq(ac__interval_next(100, 131, 10, AC_TICK_SKIP), 140);
    ck_assert_uint_eq(ac__interval_next(100, 131, 10, AC_TICK_BURST), 110);
}
END_TEST

START_TEST(interval_tick_dropped_while_pending_leaves_the_schedule_unchanged)
{
    ac_time_pause();
    uint64_t t0 = ac_now_ms();
    ac_interval *iv = ac_interval_new(10, AC_TICK_BURST);
    probe p = {0};
    struct ac_interval_tick__frame f;
    uint64_t at;
    tick_once(&f, iv, &p, &at);
    ck_assert_int_eq(tick_once(&f, iv, &p, &at), AC_PENDING);
    ac_interval_tick__drop(&f);
    ck_assert_uint_eq(global_timers(), 0);
    ck_assert_int_eq(outstanding(&p), 0);
    ac_time_advance(10);
    ck_assert_int_eq(tick_once(&f, iv, &p, &at), AC_READY);
    ck_assert_uint_eq(at, t0 + 10);
    ac_interval_free(iv);
}
END_TEST

START_TEST(interval_new_rejects_a_zero_period_and_unknown_policies)
{
    ck_assert_ptr_null(ac_interval_new(0, AC_TICK_BURST));
    ck_assert_ptr_null(ac_interval_new(10, -1));
    ck_assert_ptr_null(ac_interval_new(10, 3));
    ac_interval_free(NULL);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Deadline, and ac_timeout lowered by hand as docs/runtime-abi.md shows     */
/* ------------------------------------------------------------------------ */

START_TEST(deadline_expires_once_its_time_has_passed)
{
    ac_time_pause();
    probe p = {0};
    ac_waker wk = probe_waker(&p);
    ac_context cx = {.waker = &wk};
    struct ac_deadline__frame d;
    ac_deadline__init(&d, 50);
    ck_assert_int_eq(ac_deadline__expired(&d, &cx), 0);
    ck_assert_uint_eq(global_timers(), 1);
    ac_time_advance(20);
    ck_assert_uint_eq(ac_deadline__elapsed_ms(&d), 20);
    ck_assert_int_eq(ac_deadline__expired(&d, &cx), 0);
    ac_time_advance(30);
    ck_assert_int_eq(p.wakes, 1);
    ck_assert_int_eq(ac_deadline__expired(&d, &cx), 1);
    ck_assert_int_eq(ac_deadline__expired(&d, &cx), 1); /* stays expired */
    ck_assert_uint_eq(ac_deadline__elapsed_ms(&d), 50);
    ck_assert_uint_eq(global_timers(), 0);
    ac_deadline__drop(&d);
    reset_wake_log();
}
END_TEST

START_TEST(deadline_dropped_before_expiry_unregisters_its_timer)
{
    ac_time_pause();
    probe p = {0};
    ac_waker wk = probe_waker(&p);
    ac_context cx = {.waker = &wk};
    struct ac_deadline__frame d;
    ac_deadline__init(&d, 50);
    ck_assert_int_eq(ac_deadline__expired(&d, &cx), 0);
    ac_deadline__drop(&d);
    ck_assert_uint_eq(global_timers(), 0);
    ck_assert_int_eq(outstanding(&p), 0);
}
END_TEST

/*
 * async(int) sleep_within(uint64_t inner_ms, uint64_t limit_ms, uint64_t *elapsed)
 * {
 *     return await(ac_timeout(limit_ms, ac_sleep(inner_ms), NULL));
 * }
 * lowered as docs/runtime-abi.md ("Time", ac_timeout) describes.
 */
struct sleep_within__frame {
    uint64_t inner_ms, limit_ms;       /* parameters */
    uint64_t *elapsed;                 /* parameter: receives the deadline's elapsed time */
    struct ac_deadline__frame ac_dl3;  /* the deadline of the await in state 3 */
    struct ac_sleep__frame ac_aw3;     /* the inner future of that await */
    unsigned drops;                    /* test probe: times the inner sleep was dropped */
    uint8_t ac_state;
};

static void sleep_within__init(void *frame, uint64_t inner_ms, uint64_t limit_ms, uint64_t *elapsed)
{
    struct sleep_within__frame *f = frame;
    f->inner_ms = inner_ms;
    f->limit_ms = limit_ms;
    f->elapsed = elapsed;
    f->drops = 0;
    f->ac_state = AC_STATE_UNRESUMED;
}

static ac_poll_t sleep_within__poll(struct sleep_within__frame *ac_f, ac_context *ac_cx, int *ac_out)
{
    int ac_t0;
    switch (ac_f->ac_state) {
    case AC_STATE_UNRESUMED:
        break;
    case AC_STATE_FIRST:
        goto ac_resume_3;
    default:
        ac__bad_resume("sleep_within", ac_f->ac_state);
    }
    ac_deadline__init(&ac_f->ac_dl3, ac_f->limit_ms);
    ac_sleep__init(&ac_f->ac_aw3, ac_f->inner_ms);
    ac_f->ac_state = AC_STATE_FIRST;
ac_resume_3:
    if (ac_sleep__poll(&ac_f->ac_aw3, ac_cx, NULL) == AC_READY) {
        ac_deadline__drop(&ac_f->ac_dl3);
        ac_t0 = 0;
    } else if (ac_deadline__expired(&ac_f->ac_dl3, ac_cx)) {
        *ac_f->elapsed = ac_deadline__elapsed_ms(&ac_f->ac_dl3);
        ac_sleep__drop(&ac_f->ac_aw3);
        ac_f->drops++;
        ac_deadline__drop(&ac_f->ac_dl3);
        ac_t0 = AC_ETIMEDOUT;
    } else {
        return AC_PENDING;
    }
    *ac_out = ac_t0;
    ac_f->ac_state = AC_STATE_RETURNED;
    return AC_READY;
}

static void sleep_within__drop(struct sleep_within__frame *ac_f)
{
    if (ac_f->ac_state == AC_STATE_FIRST) {
        ac_sleep__drop(&ac_f->ac_aw3);
        ac_deadline__drop(&ac_f->ac_dl3);
    }
    ac_f->ac_state = AC_STATE_RETURNED;
}

static ac_poll_t sleep_within_vpoll(void *f, ac_context *cx, void *out)
{
    return sleep_within__poll(f, cx, out);
}
static void sleep_within_vdrop(void *f) { sleep_within__drop(f); }
static const ac_future_vt sleep_within__vt = {
    sizeof(struct sleep_within__frame), _Alignof(struct sleep_within__frame), sizeof(int),
    sleep_within_vpoll, sleep_within_vdrop, "sleep_within",
};

START_TEST(timeout_returns_the_inner_result_when_it_finishes_first)
{
    ac_time_pause();
    probe p = {0};
    ac_waker wk = probe_waker(&p);
    ac_context cx = {.waker = &wk};
    struct sleep_within__frame f;
    uint64_t elapsed = 0;
    int out = -1;
    sleep_within__init(&f, 30, 100, &elapsed);
    ck_assert_int_eq(sleep_within__poll(&f, &cx, &out), AC_PENDING);
    ck_assert_uint_eq(global_timers(), 2);
    ac_time_advance(30);
    ck_assert_int_eq(sleep_within__poll(&f, &cx, &out), AC_READY);
    ck_assert_int_eq(out, 0);
    ck_assert_uint_eq(global_timers(), 0); /* the deadline was unregistered too */
    ck_assert_int_eq(outstanding(&p), 0);
    reset_wake_log();
}
END_TEST

START_TEST(timeout_cancels_the_inner_future_and_reports_elapsed)
{
    ac_time_pause();
    probe p = {0};
    ac_waker wk = probe_waker(&p);
    ac_context cx = {.waker = &wk};
    struct sleep_within__frame f;
    uint64_t elapsed = 0;
    int out = -1;
    sleep_within__init(&f, 500, 100, &elapsed);
    ck_assert_int_eq(sleep_within__poll(&f, &cx, &out), AC_PENDING);
    ac_time_advance(100);
    ck_assert_int_eq(sleep_within__poll(&f, &cx, &out), AC_READY);
    ck_assert_int_eq(out, AC_ETIMEDOUT);
    ck_assert_uint_eq(elapsed, 100);
    ck_assert_uint_eq(f.drops, 1);
    ck_assert_uint_eq(global_timers(), 0); /* the inner sleep's timer is gone */
    ck_assert_int_eq(outstanding(&p), 0);
    reset_wake_log();
}
END_TEST

START_TEST(dropping_a_pending_timeout_unregisters_both_timers)
{
    ac_time_pause();
    ac_context cx = {.waker = ac_waker_noop()};
    struct sleep_within__frame f;
    uint64_t elapsed = 0;
    int out;
    sleep_within__init(&f, 500, 100, &elapsed);
    ck_assert_int_eq(sleep_within__poll(&f, &cx, &out), AC_PENDING);
    sleep_within__drop(&f);
    ck_assert_uint_eq(global_timers(), 0);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* The driver under ac_block_on                                              */
/* ------------------------------------------------------------------------ */

START_TEST(block_on_with_paused_clock_auto_advances_to_the_timeout)
{
    ac_time_pause();
    uint64_t t0 = ac_now_ms();
    struct sleep_within__frame f;
    uint64_t elapsed = 0;
    int out = -1;
    sleep_within__init(&f, 3600 * 1000, 250, &elapsed); /* an hour, within 250 ms */
    ck_assert_int_eq(ac_block_on(&sleep_within__vt, &f, &out), 0);
    ck_assert_int_eq(out, AC_ETIMEDOUT);
    ck_assert_uint_eq(elapsed, 250);
    ck_assert_uint_eq(ac_now_ms(), t0 + 250); /* jumped exactly there */
    ck_assert_uint_eq(global_timers(), 0);
}
END_TEST

START_TEST(block_on_with_paused_clock_auto_advances_through_a_long_sleep)
{
    ac_time_pause();
    uint64_t t0 = ac_now_ms();
    struct ac_sleep__frame f;
    ac_sleep__init(&f, 10ull * 24 * 3600 * 1000); /* ten days: level 5 of the wheel */
    ck_assert_int_eq(ac_block_on(&ac_sleep__vt, &f, NULL), 0);
    ck_assert_uint_eq(ac_now_ms(), t0 + 10ull * 24 * 3600 * 1000);
}
END_TEST

START_TEST(block_on_sleep_on_the_real_clock_parks_until_the_deadline)
{
    ac_time_resume();
    uint64_t t0 = ac_now_ms();
    struct sleep_within__frame f;
    uint64_t elapsed = 0;
    int out = -1;
    sleep_within__init(&f, 20, 10000, &elapsed);
    ck_assert_int_eq(ac_block_on(&sleep_within__vt, &f, &out), 0);
    ck_assert_int_eq(out, 0);
    ck_assert_uint_ge(ac_now_ms(), t0 + 20); /* never early */
    ck_assert_uint_eq(global_timers(), 0);
}
END_TEST

/* The same through a runtime (sched.c), which gets the driver as
 * ac__time_driver: its workers (multi-thread) or its block_on thread
 * (current-thread) park with it. */
static ac_runtime *new_runtime(int flavor, int start_paused, unsigned workers)
{
    ac_runtime_config c;
    ac_runtime_config_init(&c);
    c.flavor = flavor;
    c.workers = workers;
    c.start_paused = start_paused;
    ac_runtime *rt = NULL;
    ck_assert_int_eq(ac_runtime_new(&c, &rt), 0);
    return rt;
}

START_TEST(current_thread_runtime_started_paused_auto_advances_to_the_timeout)
{
    ac_runtime *rt = new_runtime(AC_RUNTIME_CURRENT_THREAD, 1, 2);
    uint64_t t0 = ac_now_ms();
    struct sleep_within__frame f;
    uint64_t elapsed = 0;
    int out = -1;
    sleep_within__init(&f, 3600 * 1000, 250, &elapsed);
    ck_assert_int_eq(ac_runtime_block_on(rt, &sleep_within__vt, &f, &out), 0);
    ck_assert_int_eq(out, AC_ETIMEDOUT);
    ck_assert_uint_eq(elapsed, 250);
    ck_assert_uint_eq(ac_now_ms(), t0 + 250);
    ck_assert_uint_eq(global_timers(), 0);
    ac_runtime_free(rt);
}
END_TEST

START_TEST(multi_thread_runtime_fires_a_timer_on_the_real_clock)
{
    ac_time_resume();
    ac_runtime *rt = new_runtime(AC_RUNTIME_MULTI_THREAD, 0, 2);
    uint64_t t0 = ac_now_ms();
    struct sleep_within__frame f;
    uint64_t elapsed = 0;
    int out = -1;
    sleep_within__init(&f, 20, 10000, &elapsed);
    ck_assert_int_eq(ac_runtime_block_on(rt, &sleep_within__vt, &f, &out), 0);
    ck_assert_int_eq(out, 0);
    ck_assert_uint_ge(ac_now_ms(), t0 + 20);
    ck_assert_uint_eq(global_timers(), 0);
    ac_runtime_free(rt);
}
END_TEST

/* Real ms that a 20 ms sleep takes on a new runtime of `flavor`, which is
 * freed again. */
static double real_ms_of_a_20_ms_sleep(int flavor)
{
    ac_runtime *rt = new_runtime(flavor, 0, 2);
    struct sleep_within__frame f;
    uint64_t elapsed = 0;
    int out = -1;
    sleep_within__init(&f, 20, 10000, &elapsed);
    uint64_t t0 = ac__clock_real_ns();
    ck_assert_int_eq(ac_runtime_block_on(rt, &sleep_within__vt, &f, &out), 0);
    uint64_t t1 = ac__clock_real_ns();
    ck_assert_int_eq(out, 0);
    ac_runtime_free(rt);
    return (double)(t1 - t0) / 1e6;
}

START_TEST(freeing_a_runtime_started_paused_lets_the_next_runtime_sleep_on_real_time)
{
    /* start_paused is the runtime's, as in Tokio: a runtime built after it
     * in the same process (the next test of a suite that does not fork) must
     * not find the clock paused, where every sleep would jump ahead at once. */
    for (int flavor = 0; flavor <= 1; flavor++) {
        ac_time_resume();
        ac_runtime *rt = new_runtime(flavor, 1, 2);
        ck_assert(ac__clock_paused());
        ac_runtime_free(rt);
        ck_assert(!ac__clock_paused());
        for (int next = 0; next <= 1; next++) {
            double ms = real_ms_of_a_20_ms_sleep(next);
            ck_assert_msg(ms >= 20.0, "flavor %d then %d: the sleep took %.3f real ms", flavor,
                          next, ms);
        }
    }
}
END_TEST

START_TEST(the_clock_stays_paused_while_any_runtime_started_paused_is_alive)
{
    ac_time_resume();
    ac_runtime *a = new_runtime(AC_RUNTIME_MULTI_THREAD, 1, 2);
    ac_runtime *b = new_runtime(AC_RUNTIME_CURRENT_THREAD, 1, 0);
    ac_runtime *c = new_runtime(AC_RUNTIME_CURRENT_THREAD, 0, 0); /* not paused: no say */
    ac_runtime_free(c);
    ck_assert(ac__clock_paused());
    ac_runtime_free(a);
    ck_assert(ac__clock_paused()); /* b still runs on it */
    uint64_t t0 = ac_now_ms();
    ac_time_advance(40);
    ck_assert_uint_eq(ac_now_ms(), t0 + 40);
    ac_runtime_free(b);
    ck_assert(!ac__clock_paused());
    ck_assert_uint_ge(ac_now_ms(), t0 + 40); /* runs on from where it stood */
}
END_TEST

START_TEST(a_runtime_started_paused_that_fails_to_start_leaves_the_clock_running)
{
    ac_time_resume();
    ac_runtime_config c;
    ac_runtime_config_init(&c);
    c.workers = 2;
    c.start_paused = 1;
    c.thread_stack_size = (size_t)1 << 46; /* 64 TiB: no thread gets that */
    ac_runtime *rt = NULL;
    ck_assert_int_eq(ac_runtime_new(&c, &rt), AC_EAGAIN);
    ck_assert_ptr_null(rt);
    ck_assert(!ac__clock_paused());
}
END_TEST

START_TEST(a_clock_paused_before_a_runtime_started_paused_stays_paused_after_it)
{
    ac_time_pause(); /* the program's own pause, not the runtime's */
    ac_runtime *rt = new_runtime(AC_RUNTIME_MULTI_THREAD, 1, 2);
    ac_runtime_free(rt);
    ck_assert(ac__clock_paused());
    ac_time_resume();
    ck_assert(!ac__clock_paused());
}
END_TEST

START_TEST(park_timeout_is_the_time_to_the_deadline_to_the_nanosecond)
{
    /* Whole ms rounded up made every timer up to 1 ms late. */
    ac_time_resume();
    probe p = {0};
    ac_waker wk = probe_waker(&p);
    ac_context cx = {.waker = &wk};
    struct ac_sleep__frame f;
    ac_sleep__init(&f, 500);
    ck_assert_int_eq(ac_sleep__poll(&f, &cx, NULL), AC_PENDING);
    uint64_t due_ns = f.timer.when * 1000000u;
    uint64_t before = ac__clock_now_ns();
    int64_t timeout = ac__time_park_timeout(false);
    uint64_t after = ac__clock_now_ns();
    ck_assert_int_gt(timeout, 0);
    /* The wake-up lands on a whole ms of the clock (the wheel's next slot,
     * which for a timer 500 ms away is where it cascades), at or before the
     * deadline: some whole ms lies in [before, after] + timeout. */
    uint64_t lo = before + (uint64_t)timeout, hi = after + (uint64_t)timeout;
    ck_assert_uint_le(lo, due_ns);
    ck_assert_uint_ge(hi / 1000000u * 1000000u, lo);
    ac_sleep__drop(&f);
    ck_assert_uint_eq(global_timers(), 0);
}
END_TEST

/*
 * async(int) short_after_long(void): registers an hour-long sleep, waits
 * 50 ms (so that the worker holding the driver fires that and goes back to
 * sleep towards the hour), then registers a 20 ms sleep with a probe's
 * waker and spins (yielding) until the probe is woken. The spinning keeps
 * the block_on thread busy, so nothing but that registration can make the
 * driver look again before the hour: without its unpark the test hangs
 * (and times out).
 */
struct short_after_long__frame {
    struct ac_sleep__frame hour, first, second;
    probe p; /* the second sleep's waker */
    uint8_t ac_state;
};

static ac_poll_t short_after_long_vpoll(void *frame, ac_context *cx, void *out)
{
    struct short_after_long__frame *f = frame;
    switch (f->ac_state) {
    case AC_STATE_UNRESUMED:
        ac_sleep__init(&f->hour, 3600 * 1000);
        ck_assert_int_eq(ac_sleep__poll(&f->hour, cx, NULL), AC_PENDING);
        ac_sleep__init(&f->first, 50);
        f->ac_state = AC_STATE_FIRST;
        /* fall through */
    case AC_STATE_FIRST:
        if (ac_sleep__poll(&f->first, cx, NULL) == AC_PENDING)
            return AC_PENDING;
        ac_sleep__init(&f->second, 20);
        ac_waker wk = probe_waker(&f->p);
        ac_context pcx = {.waker = &wk};
        ck_assert_int_eq(ac_sleep__poll(&f->second, &pcx, NULL), AC_PENDING);
        f->ac_state = AC_STATE_FIRST + 1;
        /* fall through */
    default:
        if (atomic_load(&f->p.wakes) == 0) {
            ac_waker_wake_by_ref(cx->waker); /* spin: stay busy */
            return AC_PENDING;
        }
    }
    ac_waker wk = probe_waker(&f->p);
    ac_context pcx = {.waker = &wk};
    ck_assert_int_eq(ac_sleep__poll(&f->second, &pcx, NULL), AC_READY);
    ac_sleep__drop(&f->hour);
    *(int *)out = 1;
    f->ac_state = AC_STATE_RETURNED;
    return AC_READY;
}

static void short_after_long_vdrop(void *frame)
{
    struct short_after_long__frame *f = frame;
    if (f->ac_state != AC_STATE_RETURNED) {
        ac_sleep__drop(&f->hour);
        ac_sleep__drop(&f->first);
        if (f->ac_state > AC_STATE_FIRST)
            ac_sleep__drop(&f->second);
    }
    f->ac_state = AC_STATE_RETURNED;
}

static const ac_future_vt short_after_long__vt = {
    sizeof(struct short_after_long__frame), _Alignof(struct short_after_long__frame), sizeof(int),
    short_after_long_vpoll, short_after_long_vdrop, "short_after_long",
};

START_TEST(a_timer_earlier_than_the_sleeping_drivers_deadline_unparks_it)
{
    ac_time_resume();
    ac_runtime *rt = new_runtime(AC_RUNTIME_MULTI_THREAD, 0, 2);
    uint64_t t0 = ac_now_ms();
    struct short_after_long__frame f = {.ac_state = AC_STATE_UNRESUMED};
    int out = 0;
    ck_assert_int_eq(ac_runtime_block_on(rt, &short_after_long__vt, &f, &out), 0);
    ck_assert_int_eq(out, 1);
    ck_assert_uint_ge(ac_now_ms(), t0 + 70); /* never early */
    ck_assert_uint_eq(global_timers(), 0);
    ac_runtime_free(rt);
    reset_wake_log();
}
END_TEST

/*
 * A paused clock on a multi-thread runtime with more workers than cores:
 * tasks each sleep three times and check that every sleep ends at exactly
 * its deadline. The clock may only jump when every thread is idle; a worker
 * that fires timers and gives the driver back before it counts itself busy
 * lets the next worker see an idle runtime and jump 1 ms past the tasks it
 * just woke. That race was found by tests/programs/paused_stress.ac (about
 * 1 run in 10 with three copies running at once); this test hit it in 5
 * runs of 30 under the same load (0 of 30 with the fix) but not on an idle
 * machine, so it is a stress test of the paused clock on many workers more
 * than a reproducer.
 */
enum { STRESS_TASKS = 400, STRESS_ROUNDS = 40 };
static atomic_int stress_exact, stress_done;

typedef struct stress_sleeper {
    struct ac_sleep__frame s;
    uint64_t ms, start;
    int step;
    uint8_t ac_state;
} stress_sleeper;

/* The sleep of step 1, 2 or 3: ms, ms / 2, then 1 ms. */
static uint64_t stress_sleep_ms(const stress_sleeper *f)
{
    return f->step == 1 ? f->ms : f->step == 2 ? f->ms / 2 : 1;
}

static ac_poll_t stress_sleeper_poll(void *frame, ac_context *cx, void *out)
{
    stress_sleeper *f = frame;
    for (;;) {
        if (f->step > 0) {
            if (ac_sleep__poll(&f->s, cx, NULL) == AC_PENDING)
                return AC_PENDING;
            if (ac_now_ms() == f->start + stress_sleep_ms(f))
                atomic_fetch_add(&stress_exact, 1);
        }
        if (f->step == 3)
            break;
        f->step++;
        f->start = ac_now_ms();
        ac_sleep__init(&f->s, stress_sleep_ms(f));
    }
    atomic_fetch_add(&stress_done, 1);
    *(int *)out = 0;
    f->ac_state = AC_STATE_RETURNED;
    return AC_READY;
}

static void stress_sleeper_drop(void *frame)
{
    stress_sleeper *f = frame;
    if (f->step > 0 && f->ac_state != AC_STATE_RETURNED)
        ac_sleep__drop(&f->s);
    f->ac_state = AC_STATE_RETURNED;
}

static const ac_future_vt stress_sleeper__vt = {
    sizeof(stress_sleeper), _Alignof(stress_sleeper), sizeof(int),
    stress_sleeper_poll, stress_sleeper_drop, "stress_sleeper",
};

/* The root: per round, spawns the sleepers (detached) and sleeps past the
 * longest of them; every one must be done by then, every sleep exact. */
typedef struct stress_root {
    struct ac_sleep__frame s;
    int round;
    uint64_t t0, longest;
    uint8_t ac_state;
} stress_root;

static ac_poll_t stress_root_poll(void *frame, ac_context *cx, void *out)
{
    stress_root *f = frame;
    for (;;) {
        if (f->ac_state == AC_STATE_FIRST) {
            if (ac_sleep__poll(&f->s, cx, NULL) == AC_PENDING)
                return AC_PENDING;
            ck_assert_int_eq(atomic_load(&stress_done), (f->round + 1) * STRESS_TASKS);
            ck_assert_uint_eq(ac_now_ms(), f->t0 + f->longest + 1);
            f->round++;
        }
        if (f->round == STRESS_ROUNDS)
            break;
        f->t0 = ac_now_ms();
        f->longest = 0;
        for (int i = 0; i < STRESS_TASKS; i++) {
            stress_sleeper *t = ac__task_frame_new(&stress_sleeper__vt);
            *t = (stress_sleeper){.ms = (uint64_t)((i * 37 + f->round * 11) % 200)};
            t->ac_state = AC_STATE_UNRESUMED;
            uint64_t total = t->ms + t->ms / 2 + 1;
            if (total > f->longest)
                f->longest = total;
            ac_handle_detach(ac__spawn(t));
        }
        ac_sleep__init(&f->s, f->longest + 1);
        f->ac_state = AC_STATE_FIRST;
    }
    *(int *)out = 0;
    f->ac_state = AC_STATE_RETURNED;
    return AC_READY;
}

static void stress_root_drop(void *frame)
{
    stress_root *f = frame;
    if (f->ac_state == AC_STATE_FIRST)
        ac_sleep__drop(&f->s);
    f->ac_state = AC_STATE_RETURNED;
}

static const ac_future_vt stress_root__vt = {
    sizeof(stress_root), _Alignof(stress_root), sizeof(int),
    stress_root_poll, stress_root_drop, "stress_root",
};

START_TEST(paused_clock_on_eight_workers_wakes_every_sleep_at_its_exact_deadline)
{
    /* More workers than cores: workers are preempted anywhere. */
    ac_runtime *rt = new_runtime(AC_RUNTIME_MULTI_THREAD, 1, 8);
    stress_root root = {.ac_state = AC_STATE_UNRESUMED};
    int out = -1;
    ck_assert_int_eq(ac_runtime_block_on(rt, &stress_root__vt, &root, &out), 0);
    ck_assert_int_eq(out, 0);
    ck_assert_int_eq(atomic_load(&stress_done), STRESS_ROUNDS * STRESS_TASKS);
    ck_assert_int_eq(atomic_load(&stress_exact), 3 * STRESS_ROUNDS * STRESS_TASKS);
    ck_assert_uint_eq(global_timers(), 0);
    ac_runtime_free(rt);
}
END_TEST

/* ------------------------------------------------------------------------ */

static Suite *timer_suite(void)
{
    Suite *s = suite_create("runtime_timer");

    TCase *wheel = tcase_create("wheel");
    tcase_set_timeout(wheel, 60);
    tcase_add_test(wheel, wheel_places_timers_at_every_level_and_fires_each_exactly_on_time);
    tcase_add_test(wheel, wheel_cascades_a_timer_down_level_by_level);
    tcase_add_test(wheel, wheel_sorts_the_next_slot_ahead_so_reaching_it_moves_no_timer);
    tcase_add_test(wheel, wheel_an_idle_driver_wakes_early_enough_to_stage_a_slot_before_it_is_due);
    tcase_add_test(wheel, wheel_fires_a_level_0_slot_once_the_latest_deadline_in_it_has_passed);
    tcase_add_test(wheel, wheel_fires_the_first_ms_of_a_level_1_slot_at_that_ms);
    tcase_add_test(wheel, wheel_keeps_a_timer_for_the_ms_it_fired_early_until_the_clock_reaches_it);
    tcase_add_test(wheel, wheel_random_deadlines_to_the_us_fire_after_each_deadline_and_within_its_ms);
    tcase_add_test(wheel, wheel_an_idle_driver_stages_a_crowded_slot_at_its_share_per_ms);
    tcase_add_test(wheel, wheel_timers_of_one_ms_fire_in_insertion_order_across_staging);
    tcase_add_test(wheel, wheel_a_slot_reached_half_staged_fires_its_first_ms_in_insertion_order);
    tcase_add_test(wheel, wheel_cancelling_the_unstaged_rest_of_a_slot_keeps_its_staged_timers);
    tcase_add_test(wheel, wheel_random_inserts_cancels_and_advances_fire_each_live_timer_once_in_order);
    tcase_add_test(wheel, wheel_timer_beyond_the_top_level_laps_until_due);
    tcase_add_test(wheel, wheel_timer_a_lap_away_does_not_hide_an_earlier_top_level_timer);
    tcase_add_test(wheel, wheel_refuses_a_timer_that_is_already_due);
    tcase_add_test(wheel, wheel_fires_timers_in_deadline_order_then_insertion_order);
    tcase_add_test(wheel, wheel_cancel_unlinks_the_timer_and_releases_its_waker);
    tcase_add_test(wheel, wheel_cancel_of_the_last_timer_in_a_slot_clears_the_slot);
    tcase_add_test(wheel, wheel_timers_of_a_due_millisecond_can_be_cancelled_while_it_is_woken);
    tcase_add_test(wheel, wheel_refresh_replaces_the_waker_of_another_task);
    tcase_add_test(wheel, wheel_holds_a_million_pending_timers_and_cancelling_them_returns_all_memory);
    tcase_add_test(wheel, wheel_fires_100000_random_timers_each_on_its_millisecond_in_order);
    tcase_add_test(wheel, wheel_registration_from_many_threads_while_advancing_fires_each_timer_once);
    suite_add_tcase(s, wheel);

    TCase *clock = tcase_create("clock");
    tcase_set_timeout(clock, 30);
    tcase_add_test(clock, first_clock_readings_from_many_threads_at_once_are_near_zero);
    tcase_add_test(clock, paused_clock_stands_still_and_moves_only_by_advance);
    tcase_add_test(clock, resumed_clock_continues_from_the_paused_value);
    tcase_add_test(clock, advance_moves_a_running_clock_forward);
    tcase_add_test(clock, deadline_readings_are_never_behind_the_clock_and_at_most_3_us_ahead);
    tcase_add_test(clock, deadline_readings_follow_pause_resume_and_advance_at_once);
    suite_add_tcase(s, clock);

    TCase *sleep = tcase_create("sleep");
    tcase_set_timeout(sleep, 60);
    tcase_add_test(sleep, sleep_is_pending_until_the_clock_reaches_its_deadline);
    tcase_add_test(sleep, sleep_of_zero_is_ready_at_the_first_poll);
    tcase_add_test(sleep, sleep_ready_at_once_spends_coop_budget);
    tcase_add_test(sleep, dropping_a_pending_sleep_unregisters_its_timer);
    tcase_add_test(sleep, sleep_repolled_by_another_task_wakes_that_task);
    tcase_add_test(sleep, sleep_polled_after_its_deadline_completes_even_if_not_yet_fired);
    tcase_add_test(sleep, sleep_first_polled_after_its_deadline_completes_by_the_next_advance);
    tcase_add_test(sleep, sleeps_registered_on_different_threads_use_different_wheels);
    tcase_add_test(sleep, sleep_until_completes_when_the_clock_reaches_the_deadline);
    tcase_add_test(sleep, sleep_forever_stays_pending_and_drops_cleanly);
    tcase_add_test(sleep, sleep_vtables_describe_their_frames);
    tcase_add_test_raise_signal(sleep, sleep_resumed_after_completion_traps, SIGABRT);
    tcase_add_test(sleep, sleeps_100000_random_fire_in_deadline_order_on_the_virtual_clock);
    suite_add_tcase(s, sleep);

    TCase *interval = tcase_create("interval");
    tcase_set_timeout(interval, 30);
    tcase_add_test(interval, interval_first_tick_is_immediate_then_one_per_period);
    tcase_add_test(interval, interval_burst_completes_missed_ticks_at_once_to_catch_up);
    tcase_add_test(interval, interval_delay_restarts_the_schedule_from_a_late_tick);
    tcase_add_test(interval, interval_skip_drops_missed_ticks_and_keeps_the_phase);
    tcase_add_test(interval, interval_tick_late_by_at_most_5_ms_is_not_missed);
    tcase_add_test(interval, interval_tick_dropped_while_pending_leaves_the_schedule_unchanged);
    tcase_add_test(interval, interval_new_rejects_a_zero_period_and_unknown_policies);
    suite_add_tcase(s, interval);

    TCase *deadline = tcase_create("deadline");
    tcase_set_timeout(deadline, 30);
    tcase_add_test(deadline, deadline_expires_once_its_time_has_passed);
    tcase_add_test(deadline, deadline_dropped_before_expiry_unregisters_its_timer);
    tcase_add_test(deadline, timeout_returns_the_inner_result_when_it_finishes_first);
    tcase_add_test(deadline, timeout_cancels_the_inner_future_and_reports_elapsed);
    tcase_add_test(deadline, dropping_a_pending_timeout_unregisters_both_timers);
    suite_add_tcase(s, deadline);

    TCase *driver = tcase_create("driver");
    tcase_set_timeout(driver, 30);
    tcase_add_test(driver, block_on_with_paused_clock_auto_advances_to_the_timeout);
    tcase_add_test(driver, block_on_with_paused_clock_auto_advances_through_a_long_sleep);
    tcase_add_test(driver, block_on_sleep_on_the_real_clock_parks_until_the_deadline);
    tcase_add_test(driver, current_thread_runtime_started_paused_auto_advances_to_the_timeout);
    tcase_add_test(driver, multi_thread_runtime_fires_a_timer_on_the_real_clock);
    tcase_add_test(driver, freeing_a_runtime_started_paused_lets_the_next_runtime_sleep_on_real_time);
    tcase_add_test(driver, the_clock_stays_paused_while_any_runtime_started_paused_is_alive);
    tcase_add_test(driver, a_runtime_started_paused_that_fails_to_start_leaves_the_clock_running);
    tcase_add_test(driver, a_clock_paused_before_a_runtime_started_paused_stays_paused_after_it);
    tcase_add_test(driver, park_timeout_is_the_time_to_the_deadline_to_the_nanosecond);
    tcase_add_test(driver, a_timer_earlier_than_the_sleeping_drivers_deadline_unparks_it);
    tcase_add_test(driver, paused_clock_on_eight_workers_wakes_every_sleep_at_its_exact_deadline);
    suite_add_tcase(s, driver);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(timer_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

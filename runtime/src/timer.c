/*
 * timer.c: the timer wheel, the time driver, and the time futures (ac_sleep,
 * ac_sleep_until, ac_interval_tick, and the deadline behind ac_timeout).
 *
 * The wheel (internal.h describes it) is Tokio's time/wheel: 6 levels of 64
 * slots at 1 ms resolution, an occupancy word per level, and cascading of a
 * higher-level slot's timers into lower levels when the wheel's time reaches
 * it. Timers are the ac__timer nodes that the futures embed in their frames:
 * registering one links the node, cancelling unlinks it, and nothing is
 * allocated for either. One lock (an ac__lock) guards a wheel; wakers are
 * woken outside it, in batches, so a wake that takes an executor's lock
 * never nests in ours.
 *
 * Node life: a future sets `when` and links the node (IDLE -> SLOT), keeping
 * a clone of its waker in it. When the wheel reaches `when`, the node moves
 * to the expired list (EXPIRED); whoever advances the wheel then takes the
 * waker out, stores FIRED (the last write to the node) and wakes it. The
 * owning future reads the state without the lock: FIRED means the wheel
 * will never touch the node again, so the frame may complete or be freed.
 * Dropping a linked node unlinks it and releases the waker (back to IDLE).
 *
 * The time driver: the process's wheels (SHARDS of them, one per
 * registering thread in turn) on the runtime clock (clock.c). A thread
 * about to park asks
 * ac__time_park_timeout how long it may sleep and calls ac__time_fire_due
 * when it wakes; with a paused clock and an idle executor the clock jumps to
 * the next expiration instead (auto-advance). ac_block_on outside any
 * runtime does this in its park (executor.c); runtimes (sched.c) get the
 * same two calls as an ac__driver (ac__time_driver). A timer registered
 * earlier than the wake-up the driver's thread is waiting for unparks it
 * (ac__runtime_unpark_one on the registering thread's runtime).
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>

#define SLOT_BITS 6
#define SLOT_MASK ((uint64_t)AC__WHEEL_SLOTS - 1)
/* Deadlines at least this far after the wheel's time share the top level. */
#define MAX_DURATION ((uint64_t)1 << (SLOT_BITS * AC__WHEEL_LEVELS))
/* Wakers taken out per lock hold while advancing. */
#define BATCH 32
/* Timers moved into a stage per level per lock hold (about 20 us of cache
 * misses); see stage_some. */
#define STAGE_QUOTA 128
/* Timer futures treat later deadlines as this far away (30 years, Tokio's
 * far_future), so that a paused clock auto-advancing to a sleep "forever"
 * takes a few laps of the top level, not 2^28. */
#define FAR_FUTURE_MS ((uint64_t)30 * 365 * 24 * 3600 * 1000)
#define NS_PER_MS 1000000u
/* The most a node's `early` can say: its deadline lies in its ms. */
#define EARLY_MAX 999u
/* A node's `slot` while it is in the wheel's ahead list (link_ahead). */
#define AHEAD_SLOT AC__WHEEL_SLOTS

/* ======================================================================== */
/* Nodes and lists                                                           */
/* ======================================================================== */

static uint8_t load_state(const ac__timer *t) { return __atomic_load_n(&t->state, __ATOMIC_ACQUIRE); }
static void store_state(ac__timer *t, uint8_t s) { __atomic_store_n(&t->state, s, __ATOMIC_RELEASE); }

static ac_waker node_waker(const ac__timer *t)
{
    return (ac_waker){(const ac_waker_vtable *)t->waker_vtable, t->waker_data};
}

static void set_node_waker(ac__timer *t, ac_waker w)
{
    t->waker_vtable = w.vtable;
    t->waker_data = w.data;
}

/* Appends t to the circular list at *head. */
static void list_push(ac__timer **head, ac__timer *t)
{
    ac__timer *h = *head;
    if (!h) {
        t->next = t->prev = t;
        *head = t;
        return;
    }
    t->prev = h->prev;
    t->next = h;
    h->prev->next = t;
    h->prev = t;
}

static void list_remove(ac__timer **head, ac__timer *t)
{
    if (t->next == t) {
        *head = NULL;
    } else {
        t->prev->next = t->next;
        t->next->prev = t->prev;
        if (*head == t)
            *head = t->next;
    }
    t->next = t->prev = NULL;
}

static ac__timer *list_pop(ac__timer **head)
{
    ac__timer *t = *head;
    if (t)
        list_remove(head, t);
    return t;
}

/* ======================================================================== */
/* The wheel                                                                 */
/* ======================================================================== */

/* A slot due for processing. */
typedef struct expiration {
    unsigned level, slot; /* which slot */
    uint64_t deadline;    /* the wheel's time when it is processed: the slot's start */
} expiration;

/* The level at which a timer due at `when` goes, when the wheel is at
 * `elapsed`: the 6-bit group in which the two first differ. */
static unsigned level_for(uint64_t elapsed, uint64_t when)
{
    uint64_t masked = (elapsed ^ when) | SLOT_MASK;
    if (masked >= MAX_DURATION)
        masked = MAX_DURATION - 1;
    unsigned significant = 63u - (unsigned)__builtin_clzll(masked);
    return significant / SLOT_BITS;
}

/* The slot of time `t` at `level`. */
static unsigned slot_at(uint64_t t, unsigned level) { return (unsigned)((t >> (level * SLOT_BITS)) & SLOT_MASK); }

/* The start of the level-`level` slot after the one `elapsed` is in. */
static uint64_t next_start(uint64_t elapsed, unsigned level)
{
    unsigned shift = level * SLOT_BITS;
    return ((elapsed >> shift) + 1) << shift;
}

/* The start of `slot` of `level` in that level's rotation holding `elapsed`. */
static uint64_t slot_start(uint64_t elapsed, unsigned level, unsigned slot)
{
    unsigned shift = level * SLOT_BITS;
    return (elapsed & ~(((uint64_t)1 << (shift + SLOT_BITS)) - 1)) + ((uint64_t)slot << shift);
}

/* The slot of `level` that the wheel reaches next; 0 when that is the
 * first of the next higher slot, whose timers are a level up. */
static unsigned next_slot(const ac__wheel *w, unsigned level)
{
    return (slot_at(w->elapsed, level) + 1) & (unsigned)SLOT_MASK;
}

static bool staged_level(unsigned level) { return level >= 1 && level <= AC__WHEEL_STAGED; }

static void push_slot(ac__wheel_level *lv, unsigned level, unsigned slot, ac__timer *t)
{
    t->level = (uint8_t)level;
    t->slot = (uint8_t)slot;
    if (level)
        lv->n[slot]++;
    else if (!lv->slots[slot] || t->early < lv->early[slot])
        lv->early[slot] = t->early;
    list_push(&lv->slots[slot], t);
    lv->occupied |= (uint64_t)1 << slot;
}

/* Puts t, due in level L's next slot, where the wheel will have it at that
 * slot's start. */
static void stage_link(ac__wheel *w, unsigned L, ac__timer *t)
{
    uint64_t start = next_start(w->elapsed, L);
    unsigned level = level_for(start, t->when); /* below L: t is due within L's slot */
    push_slot(&w->stage[L - 1].levels[level], level, slot_at(t->when, level), t);
    w->stage[L - 1].count++;
}

/* Links t (its `when` later than the wheel's time) where it belongs: its
 * level and slot, or the stage of that slot when it is the level's next
 * and its own list is empty (once it is, everything linked before has been
 * staged, so timers of one ms keep their insertion order). */
static void link_slot(ac__wheel *w, ac__timer *t)
{
    unsigned level = level_for(w->elapsed, t->when);
    unsigned slot = slot_at(t->when, level);
    ac__wheel_level *lv = &w->levels[level];
    if (staged_level(level) && slot == next_slot(w, level) && !lv->slots[slot]) {
        stage_link(w, level, t);
        lv->occupied |= (uint64_t)1 << slot;
    } else {
        push_slot(lv, level, slot, t);
    }
    store_state(t, AC__TIMER_SLOT);
}

/* Links t, due in the ms that an early advance has made the wheel's time
 * (w->ahead) and so perhaps not due yet, into the wheel's ahead list, which
 * is woken once the clock reaches that ms (before the next ms's slot). */
static void link_ahead(ac__wheel *w, ac__timer *t)
{
    t->level = 0;
    t->slot = AHEAD_SLOT;
    list_push(&w->ahead_list, t);
    store_state(t, AC__TIMER_SLOT);
}

/* Which stage holds the node t (in state SLOT), 1..AC__WHEEL_STAGED, or 0
 * when it is in the wheel's own levels. A wheel node at level l is due
 * within the wheel's current level-(l+1) slot; a staged one is due within
 * the next slot of its stage's level, which no lower stage reaches. */
static unsigned stage_of(const ac__wheel *w, const ac__timer *t)
{
    for (unsigned L = AC__WHEEL_STAGED; L > t->level; L--)
        if (t->when >= next_start(w->elapsed, L))
            return L;
    return 0;
}

/* Unlinks a node in state SLOT or EXPIRED (the caller sets the new state). */
static void unlink_node(ac__wheel *w, ac__timer *t)
{
    w->removals++;
    if (load_state(t) == AC__TIMER_EXPIRED) {
        list_remove(&w->expired, t);
        w->count--;
        return;
    }
    if (t->slot == AHEAD_SLOT) {
        list_remove(&w->ahead_list, t);
        w->count--;
        if (!w->ahead_list && w->due == &w->ahead_list)
            w->due = NULL;
        return;
    }
    unsigned L = stage_of(w, t);
    ac__wheel_level *lv = L ? &w->stage[L - 1].levels[t->level] : &w->levels[t->level];
    ac__timer **slot = &lv->slots[t->slot];
    list_remove(slot, t);
    if (t->level)
        lv->n[t->slot]--;
    w->count--;
    /* A staged level's next slot stays occupied while it or its stage holds
     * a timer. */
    if (L) {
        if (!*slot)
            lv->occupied &= ~((uint64_t)1 << t->slot);
        unsigned s = next_slot(w, L);
        if (--w->stage[L - 1].count == 0 && !w->levels[L].slots[s])
            w->levels[L].occupied &= ~((uint64_t)1 << s);
        return;
    }
    if (!*slot) {
        bool staging = staged_level(t->level) && t->slot == next_slot(w, t->level) &&
                       w->stage[t->level - 1].count;
        if (!staging)
            lv->occupied &= ~((uint64_t)1 << t->slot);
        if (w->due == slot)
            w->due = NULL;
    }
}

/* Moves timers of each staged level's next slot into its stage, oldest
 * first: STAGE_QUOTA a call, and in the first call of each ms of the
 * wheel's time at least the remaining timers' share of the ms left before
 * the slot, so that an idle wheel advanced once a ms is done in time.
 * Returns true if some of that share is left; the caller lets go of the
 * lock and calls again. */
static bool stage_some(ac__wheel *w)
{
    bool more = false;
    for (unsigned L = 1; L <= AC__WHEEL_STAGED; L++) {
        unsigned s = next_slot(w, L);
        uint32_t *n = &w->levels[L].n[s];
        if (s == 0 || *n == 0)
            continue;
        ac__wheel_stage *st = &w->stage[L - 1];
        if (st->paced != w->elapsed + 1) {
            uint64_t left = next_start(w->elapsed, L) - w->elapsed; /* ms, >= 1 */
            st->paced = w->elapsed + 1;
            st->owed = (size_t)((*n + left - 1) / left);
        }
        ac__timer **head = &w->levels[L].slots[s];
        for (unsigned k = 0; k < STAGE_QUOTA && *head; k++, (*n)--) {
            stage_link(w, L, list_pop(head)); /* the slot's occupied bit stays set */
            if (st->owed)
                st->owed--;
        }
        if (st->owed && *head)
            more = true;
    }
    return more;
}

/* The wheel reaches level L's next slot: its stage's lists become the
 * wheel's (whose lower levels are empty by then: everything in them was due
 * earlier). Nothing in them is touched; a level-0 list at the slot's start
 * is due now. */
static void unstage(ac__wheel *w, unsigned L)
{
    for (unsigned level = 0; level < L; level++) {
        ac__wheel_level *from = &w->stage[L - 1].levels[level], *to = &w->levels[level];
        for (uint64_t occ = from->occupied; occ; occ &= occ - 1) {
            unsigned s = (unsigned)__builtin_ctzll(occ);
            to->slots[s] = from->slots[s];
            to->n[s] = from->n[s];
            from->slots[s] = NULL;
            from->n[s] = 0;
        }
        to->occupied |= from->occupied;
        from->occupied = 0;
    }
    w->stage[L - 1].count = 0;
    unsigned now = slot_at(w->elapsed, 0);
    if (w->levels[0].occupied & ((uint64_t)1 << now)) {
        w->levels[0].occupied &= ~((uint64_t)1 << now);
        w->due = &w->levels[0].slots[now];
    }
}

/* The next slot to process, the earliest first: levels are searched from 0
 * because a timer at level L is due before the start of the wheel's next
 * level-(L+1) slot, so lower levels always expire first. */
static bool next_expiration(const ac__wheel *w, expiration *e)
{
    for (unsigned level = 0; level < AC__WHEEL_LEVELS; level++) {
        uint64_t occupied = w->levels[level].occupied;
        if (!occupied)
            continue;
        /* Search from the slot after the current one, round to the current
         * one last. Only the top level can hold timers at or behind the
         * current slot: its slots form a ring that also holds deadlines more
         * than a rotation away, and those are due a lap later. (Searching
         * from the current slot, as Tokio's formula does, would let such a
         * timer hide earlier ones in the slots after it.) */
        unsigned first = next_slot(w, level);
        uint64_t rotated = first ? (occupied >> first) | (occupied << (64 - first)) : occupied;
        unsigned slot = ((unsigned)__builtin_ctzll(rotated) + first) & (unsigned)SLOT_MASK;
        uint64_t deadline = slot_start(w->elapsed, level, slot);
        if (deadline <= w->elapsed)
            deadline += (uint64_t)1 << ((level + 1) * SLOT_BITS); /* a rotation later */
        e->level = level;
        e->slot = slot;
        e->deadline = deadline;
        return true;
    }
    return false;
}

static uint64_t ms_to_ns(uint64_t ms) { return ms > UINT64_MAX / NS_PER_MS ? UINT64_MAX : ms * NS_PER_MS; }

/* When the timers of expiration e are all due, in ns: a level-0 slot's
 * when the latest of its deadlines has passed (its ms less the least
 * `early` of its nodes; one that left may leave it smaller: later, never
 * early),
 * any other at its start. Not for the first ms of a level-1 slot, where a
 * higher level's slot may start (none is at level 0 then, but the wheel's
 * time must not pass a slot that has not cascaded). */
static uint64_t fire_ns(const ac__wheel *w, const expiration *e)
{
    uint64_t at = ms_to_ns(e->deadline);
    if (e->level == 0 && (e->deadline & SLOT_MASK) != 0)
        at -= (uint64_t)w->levels[0].early[e->slot] * 1000u;
    return at;
}

/* Processes a slot: its timers that are due expire, the others cascade to
 * the level their deadline now needs. The whole list is taken first, since a
 * timer more than a rotation away goes back into the same slot. A level-0
 * slot's timers are all due at its time (it covers one millisecond in the
 * wheel's current 64): the slot becomes `due` and its nodes are not touched
 * until they are woken. No timer joins it meanwhile: one due at the wheel's
 * time is refused (AC__INSERT_DUE), a later one goes to another slot. A
 * staged level's slot first takes its stage's lists (unstage); what is left
 * in its own list was linked after the last of them was staged, and is
 * walked as an unstaged slot is. */
static void process(ac__wheel *w, const expiration *e)
{
    if (e->level == 0) {
        w->levels[0].occupied &= ~((uint64_t)1 << e->slot);
        w->elapsed = e->deadline;
        w->due = &w->levels[0].slots[e->slot];
        return;
    }
    ac__timer *list = w->levels[e->level].slots[e->slot];
    w->levels[e->level].slots[e->slot] = NULL;
    w->levels[e->level].occupied &= ~((uint64_t)1 << e->slot);
    w->levels[e->level].n[e->slot] = 0;
    bool staged = staged_level(e->level) && w->stage[e->level - 1].count;
    w->elapsed = e->deadline;
    if (staged)
        unstage(w, e->level);
    ac__timer *t;
    while ((t = list_pop(&list))) {
        if (t->when <= e->deadline && w->due) {
            /* After the staged timers of this ms, which are due in place. */
            t->level = 0;
            t->slot = (uint8_t)slot_at(e->deadline, 0);
            list_push(w->due, t);
        } else if (t->when <= e->deadline) {
            list_push(&w->expired, t);
            store_state(t, AC__TIMER_EXPIRED);
        } else {
            link_slot(w, t);
        }
    }
}

void ac__wheel_init(ac__wheel *w, uint64_t now)
{
    *w = (ac__wheel){.mu = AC__LOCK_INIT, .elapsed = now};
}

void ac__wheel_destroy(ac__wheel *w)
{
    if (w->count) {
        fprintf(stderr, "asyncc: timer wheel destroyed with %zu timers linked\n", w->count);
        abort();
    }
}

ac__insert_outcome ac__wheel_insert(ac__wheel *w, ac__timer *t, uint64_t when, uint64_t now,
                                    const ac_waker *waker)
{
    ac__lock_take(&w->mu);
    if (w->count == 0 && now > w->elapsed) {
        w->elapsed = now; /* nothing to expire in between: catch up */
        w->ahead = false;
    }
    if (when < w->elapsed || (when == w->elapsed && !w->ahead)) {
        ac__lock_give(&w->mu);
        return AC__INSERT_DUE;
    }
    t->when = when;
    if (t->early > EARLY_MAX)
        t->early = EARLY_MAX;
    set_node_waker(t, ac_waker_clone(waker)); /* a CAS on the task, no lock */
    if (when == w->elapsed)
        link_ahead(w, t);
    else
        link_slot(w, t);
    w->count++;
    ac__lock_give(&w->mu);
    return AC__INSERT_LINKED;
}

bool ac__wheel_cancel(ac__wheel *w, ac__timer *t)
{
    /* IDLE and FIRED are final for everyone but the owner, who is calling. */
    uint8_t s = load_state(t);
    if (s == AC__TIMER_IDLE || s == AC__TIMER_FIRED)
        return false;
    bool linked = false;
    ac_waker old;
    ac__lock_take(&w->mu);
    s = load_state(t);
    if (s == AC__TIMER_SLOT || s == AC__TIMER_EXPIRED) {
        unlink_node(w, t);
        old = node_waker(t);
        store_state(t, AC__TIMER_IDLE);
        linked = true;
    }
    ac__lock_give(&w->mu);
    if (linked)
        ac_waker_drop(old); /* may take an executor's lock: not under ours */
    return linked;
}

bool ac__wheel_refresh(ac__wheel *w, ac__timer *t, const ac_waker *waker)
{
    uint8_t s = load_state(t);
    if (s == AC__TIMER_FIRED || s == AC__TIMER_IDLE)
        return true;
    /* Only the owner (this poll) writes the waker fields: no lock to compare. */
    if (t->waker_data == waker->data && t->waker_vtable == waker->vtable)
        return false;
    bool replaced = false;
    ac_waker old;
    ac__lock_take(&w->mu);
    s = load_state(t);
    if (s == AC__TIMER_SLOT || s == AC__TIMER_EXPIRED) {
        old = node_waker(t);
        set_node_waker(t, ac_waker_clone(waker));
        replaced = true;
    }
    ac__lock_give(&w->mu);
    if (replaced)
        ac_waker_drop(old);
    return !replaced;
}

static uint64_t next_expiration_locked(const ac__wheel *w)
{
    expiration e;
    return w->expired || w->due || w->ahead_list ? w->elapsed
           : next_expiration(w, &e) ? e.deadline
                                    : UINT64_MAX;
}

uint64_t ac__wheel_next_expiration(ac__wheel *w)
{
    ac__lock_take(&w->mu);
    uint64_t r = next_expiration_locked(w);
    ac__lock_give(&w->mu);
    return r;
}

/* The time (ms) by which an advance should start staging a slot (see
 * ac__wheel_next_wake_ns), or UINT64_MAX. */
static uint64_t staging_wake_locked(const ac__wheel *w)
{
    uint64_t r = UINT64_MAX;
    for (unsigned L = 1; L <= AC__WHEEL_STAGED; L++) {
        unsigned next = next_slot(w, L);
        if (next == 0)
            continue; /* the next slot's timers are a level up */
        uint64_t wake;
        if (w->levels[L].slots[next]) {
            wake = w->elapsed + 1; /* staging: each ms moves its share */
        } else {
            /* The first later slot with timers becomes the next one (and
             * starts staging) when the wheel enters the slot before it. */
            uint64_t later = w->levels[L].occupied & ~(((uint64_t)2 << next) - 1);
            if (!later)
                continue;
            wake = slot_start(w->elapsed, L, (unsigned)__builtin_ctzll(later) - 1);
        }
        if (wake < r)
            r = wake;
    }
    return r;
}

uint64_t ac__wheel_next_wake_ns(ac__wheel *w)
{
    expiration e;
    ac__lock_take(&w->mu);
    uint64_t r = w->expired || w->due      ? 0
                 : w->ahead_list          ? ms_to_ns(w->elapsed)
                 : next_expiration(w, &e) ? fire_ns(w, &e)
                                          : UINT64_MAX;
    uint64_t stage = ms_to_ns(staging_wake_locked(w));
    ac__lock_give(&w->mu);
    return stage < r ? stage : r;
}

static void wake_all(ac_waker *batch, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ac_waker_wake(batch[i]);
}

/*
 * Waking a due list is one cache miss per node, one after another: a node's
 * successor is known only once the node is loaded (100,000 sleeping tasks:
 * 150 ns a timer, most of it that load). A second walker goes from the
 * list's tail toward its head, one node per pop, loading what the pops will
 * reach, so that two chains of misses overlap instead of one. It starts
 * again from the tail when the due list changed or something else took a
 * node out of it while the lock was let go (its place may be gone), and
 * stops where it meets the pops.
 */
typedef struct back_walk {
    ac__timer **of;    /* the due list it walks; NULL: none yet */
    ac__timer *at;     /* its place, a node in that list; NULL: done */
    uint64_t removals; /* w->removals as it expects it */
} back_walk;

/* After a pop from *w->due: one step of b. */
static void walk_back(ac__wheel *w, back_walk *b)
{
    ac__timer *head = *w->due;
    if (b->of != w->due || b->removals != w->removals) {
        b->of = w->due;
        b->removals = w->removals;
        b->at = head ? head->prev : NULL; /* the tail */
    } else if (b->at == head) {
        b->at = NULL; /* met */
    } else if (b->at) {
        b->at = b->at->prev; /* NULL once the pops took it */
    }
    if (b->at)
        __builtin_prefetch(b->at, 1); /* the line of its `next`; `prev` is loaded */
}

/* ac__wheel_advance to the ms `now`; if early, also the next ms's level-0
 * slot when all its timers are due by now_ns. */
static size_t advance_to(ac__wheel *w, uint64_t now, uint64_t now_ns, bool early)
{
    ac_waker batch[BATCH];
    size_t n = 0, woken = 0;
    back_walk back = {0};
    ac__lock_take(&w->mu);
    if (w->ahead && w->elapsed <= now)
        w->ahead = false; /* the clock has reached the ms fired early */
    for (;;) {
        ac__timer *t = list_pop(&w->expired);
        if (!t && w->due) {
            if ((t = list_pop(w->due))) {
                back.removals++;
                walk_back(w, &back);
            } else {
                w->due = NULL; /* woken through: its slot is free again */
                back.of = NULL;
            }
        }
        if (t) {
            w->removals++;
            /* The waker's data is usually a task whose state word the wake
             * changes: start loading it while the next nodes are found. */
            __builtin_prefetch(t->waker_data, 1);
            batch[n++] = node_waker(t);
            w->count--;
            store_state(t, AC__TIMER_FIRED); /* the last touch of the node */
            if (n == BATCH) {
                ac__lock_give(&w->mu);
                wake_all(batch, n);
                woken += n;
                n = 0;
                ac__lock_take(&w->mu);
            }
            continue;
        }
        /* All expired and due timers are woken before the next slot is
         * processed, which keeps the wakes in deadline order; so are those
         * linked ahead, once the clock has reached their ms. */
        if (w->ahead_list && !w->ahead) {
            w->due = &w->ahead_list;
            continue;
        }
        expiration e;
        if (!next_expiration(w, &e))
            break;
        if (e.deadline > now) {
            /* The next ms (fire_ns is later than the ms before its slot),
             * if its timers are all due: its wakes need not wait for it. */
            if (!early || e.level != 0 || fire_ns(w, &e) > now_ns)
                break;
            w->ahead = true;
        }
        process(w, &e);
    }
    if (now > w->elapsed)
        w->elapsed = now;
    bool staging = stage_some(w);
    ac__lock_give(&w->mu);
    wake_all(batch, n);
    while (staging) {
        ac__lock_take(&w->mu);
        staging = stage_some(w);
        ac__lock_give(&w->mu);
    }
    return woken + n;
}

size_t ac__wheel_advance(ac__wheel *w, uint64_t now) { return advance_to(w, now, 0, false); }

size_t ac__wheel_advance_ns(ac__wheel *w, uint64_t now_ns)
{
    return advance_to(w, now_ns / NS_PER_MS, now_ns, true);
}

size_t ac__wheel_count(ac__wheel *w)
{
    ac__lock_take(&w->mu);
    size_t n = w->count;
    ac__lock_give(&w->mu);
    return n;
}

/* ======================================================================== */
/* The time driver                                                           */
/* ======================================================================== */

/* The process's wheels, SHARDS of them, so that threads registering timers
 * at the same time do not contend for one lock (Tokio shards its wheel per
 * worker the same way). A thread links its timers into the wheel it was
 * given at its first registration, round robin; a node remembers its wheel
 * for cancellation. Their time starts at 0, where the runtime clock does.
 * Only the wheels handed out so far (`used`) are looked at by the driver. */
#define SHARDS 8

typedef struct shard {
    _Alignas(64) ac__wheel w; /* a cache line of its own for each lock */
} shard;

#define SHARD_INIT {.w = {.mu = AC__LOCK_INIT}}
static shard shards[SHARDS] = {SHARD_INIT, SHARD_INIT, SHARD_INIT, SHARD_INIT,
                               SHARD_INIT, SHARD_INIT, SHARD_INIT, SHARD_INIT};
_Static_assert(SHARDS == 8, "one initialiser per shard");

static atomic_uint next_shard; /* the shard the next new thread gets */
static atomic_uint used;       /* bit i set: shards[i] was handed out */
static _Thread_local int my_shard = -1;

/* The wake-up time of the thread parked with the driver: a timer linked
 * earlier than it must unpark that thread. UINT64_MAX while the driver
 * computes its sleep (every registration then unparks, so none is missed)
 * and when it does not sleep on a timer. See ac__time_park_timeout. */
static _Atomic uint64_t next_wake = UINT64_MAX;

/* The calling thread's wheel. */
static unsigned this_shard(void)
{
    if (my_shard < 0) {
        my_shard = (int)(atomic_fetch_add_explicit(&next_shard, 1, memory_order_relaxed) % SHARDS);
        atomic_fetch_or(&used, 1u << my_shard);
    }
    return (unsigned)my_shard;
}

static ac__wheel *wheel_of(const ac__timer *t) { return &shards[t->shard].w; }

size_t ac__time_count(void)
{
    size_t n = 0;
    for (unsigned i = 0; i < SHARDS; i++)
        n += ac__wheel_count(&shards[i].w);
    return n;
}

/* The earliest time at which any wheel has a timer due (`ns`: or timers
 * to stage, in ns, ac__wheel_next_wake_ns; else in ms), or UINT64_MAX. */
static uint64_t earliest_work(bool ns)
{
    uint64_t next = UINT64_MAX;
    unsigned u = atomic_load(&used);
    while (u) {
        unsigned i = (unsigned)__builtin_ctz(u);
        u &= u - 1;
        ac__wheel *w = &shards[i].w;
        uint64_t e = ns ? ac__wheel_next_wake_ns(w) : ac__wheel_next_expiration(w);
        if (e < next)
            next = e;
    }
    return next;
}

int64_t ac__time_park_timeout(bool idle)
{
    /* From here on every registration unparks, until the sleep is known:
     * a timer linked into a wheel after the scan below has looked at it is
     * seen by its registrar, never lost. */
    atomic_store(&next_wake, UINT64_MAX);
    /* A paused clock jumps to expirations; staging is for real time. */
    bool paused = ac__clock_paused();
    uint64_t next = earliest_work(!paused);
    if (next == UINT64_MAX)
        return -1;
    if (paused) {
        /* Real time does not move a paused clock: sleeping on it is
         * pointless. Idle, it jumps to the next expiration; otherwise it
         * waits for a wake (or an ac_time_advance). */
        if (!idle || !ac__clock_can_auto_advance())
            return -1;
        ac__clock_advance_to_ms(next);
        return 0;
    }
    /* next is in ns: a level-0 slot is due once its latest deadline has
     * passed, which may be before its ms. */
    uint64_t now = ac__clock_now_ns();
    if (next <= now)
        return 0;
    int64_t timeout = next - now > (uint64_t)INT32_MAX * NS_PER_MS
                          ? (int64_t)INT32_MAX * NS_PER_MS /* far away: wake up once in a while anyway */
                          : (int64_t)(next - now);
    /* Sleeping until next: a registration for an earlier ms unparks us (one
     * for the ms of next may make its slot due later: we wake, find it so,
     * and sleep again). If one came since the store above, it has unparked
     * us already. */
    uint64_t expected = UINT64_MAX;
    atomic_compare_exchange_strong(&next_wake, &expected, next / NS_PER_MS + (next % NS_PER_MS != 0));
    return timeout;
}

void ac__time_fire_due(void)
{
    uint64_t now = ac__clock_now_ns();
    unsigned u = atomic_load(&used);
    while (u) {
        unsigned i = (unsigned)__builtin_ctz(u);
        u &= u - 1;
        ac__wheel_advance_ns(&shards[i].w, now);
    }
}

static int64_t driver_next_deadline(void *ctx)
{
    (void)ctx;
    bool idle = false;
    if (ac__clock_paused()) {
        ac_runtime *rt = ac_runtime_current(); /* the parking worker's */
        idle = rt && ac__runtime_all_idle(rt);
    }
    return ac__time_park_timeout(idle);
}

static void driver_fire_due(void *ctx)
{
    (void)ctx;
    ac__time_fire_due();
}

const ac__driver ac__time_driver = {driver_next_deadline, driver_fire_due, NULL};

/* A timer due at `when` was linked: if that is earlier than the parked
 * driver's wake-up, lower the wake-up and unpark it to recompute. */
static void note_deadline(uint64_t when)
{
    uint64_t wake = atomic_load(&next_wake);
    if (when >= wake)
        return;
    while (when < wake && !atomic_compare_exchange_weak(&next_wake, &wake, when))
        ;
    ac_runtime *rt = ac_runtime_current();
    if (rt)
        ac__runtime_unpark_one(rt);
}

/* ======================================================================== */
/* Timer futures                                                             */
/* ======================================================================== */

/* `lead` of a node whose deadline came from no clock reading, or from one
 * more than 65 s before it. */
#define LEAD_UNKNOWN UINT16_MAX

static void timer_init(ac__timer *t, uint64_t when)
{
    t->next = t->prev = NULL;
    t->when = when;
    t->waker_vtable = t->waker_data = NULL;
    t->state = AC__TIMER_IDLE;
    t->level = t->slot = t->shard = 0;
    t->lead = LEAD_UNKNOWN;
    t->early = 0;
}

/* Initialises t to be due ms after now_ns (a reading of the runtime clock),
 * rounded up to a whole ms so that the timer never completes early (0 ms:
 * due at once), with `early` the whole us by which the deadline itself
 * comes before that (so the wheel may fire it then), and remembers the
 * reading for timer_start; saturates. */
static void timer_init_after(ac__timer *t, uint64_t now_ns, uint64_t ms)
{
    uint64_t whole = now_ns / NS_PER_MS, part = now_ns % NS_PER_MS;
    if (ms >= UINT64_MAX - whole - 1) {
        timer_init(t, UINT64_MAX);
        return;
    }
    timer_init(t, ms == 0 ? whole : whole + ms + (part ? 1 : 0));
    if (ms != 0 && part)
        t->early = (uint16_t)((NS_PER_MS - part) / 1000u);
    if (t->when - whole < LEAD_UNKNOWN)
        t->lead = (uint16_t)(t->when - whole);
}

/* Starts the idle node t, whose `when` is set, for the waker: returns true,
 * with nothing registered, when it is already due. The time it compares
 * with is the reading the deadline came from, when there is one: a clock
 * read costs as much as the rest of a registration, and a node whose
 * deadline has passed since then is due in the wheel, which fires it at its
 * next advance (the registration unparks the driver for it). */
static bool timer_start(ac__timer *t, const ac_waker *waker)
{
    uint64_t now = t->lead != LEAD_UNKNOWN ? t->when - t->lead : ac_now_ms();
    if (t->when <= now)
        return true;
    if (t->when - now > FAR_FUTURE_MS) {
        t->when = now + FAR_FUTURE_MS;
        t->early = 0;
    }
    t->shard = (uint8_t)this_shard();
    if (ac__wheel_insert(wheel_of(t), t, t->when, now, waker) == AC__INSERT_DUE)
        return true;
    note_deadline(t->when);
    return false;
}

/* A later poll of a started node: returns true, with nothing registered,
 * once it has fired or its deadline has passed (an executor that is never
 * idle may not have fired it yet: this keeps such a timer on time). */
static bool timer_poll(ac__timer *t, const ac_waker *waker)
{
    if (ac__wheel_refresh(wheel_of(t), t, waker))
        return true;
    if (t->when <= ac_now_ms()) {
        ac__wheel_cancel(wheel_of(t), t);
        return true;
    }
    return false;
}

static void timer_stop(ac__timer *t) { ac__wheel_cancel(wheel_of(t), t); }

/* ---- ac_sleep, ac_sleep_until ------------------------------------------- */

/* Shared poll: both frames are a node and a state. */
static ac_poll_t sleep_poll(ac__timer *t, uint8_t *state, ac_context *cx, const char *name)
{
    switch (*state) {
    case AC_STATE_UNRESUMED:
        if (!timer_start(t, cx->waker)) {
            *state = AC_STATE_FIRST;
            return AC_PENDING;
        }
        /* Ready without waiting (sleep(0), a late interval): spend budget,
         * so that a loop of such awaits still lets other tasks run. */
        if (!ac_coop_consume(cx)) {
            ac_waker_wake_by_ref(cx->waker);
            return AC_PENDING; /* nothing registered; the next poll retries */
        }
        break;
    case AC_STATE_FIRST:
        if (!timer_poll(t, cx->waker))
            return AC_PENDING;
        break;
    default:
        ac__bad_resume(name, *state);
    }
    *state = AC_STATE_RETURNED;
    return AC_READY;
}

void ac_sleep__init(struct ac_sleep__frame *f, uint64_t ms)
{
    timer_init_after(&f->timer, ac__clock_deadline_ns(), ms);
    f->state = AC_STATE_UNRESUMED;
}

ac_poll_t ac_sleep__poll(struct ac_sleep__frame *f, ac_context *cx, void *out)
{
    (void)out;
    return sleep_poll(&f->timer, &f->state, cx, "ac_sleep");
}

void ac_sleep__drop(struct ac_sleep__frame *f)
{
    if (f->state == AC_STATE_FIRST)
        timer_stop(&f->timer);
    f->state = AC_STATE_RETURNED;
}

static ac_poll_t sleep_vpoll(void *f, ac_context *cx, void *out) { return ac_sleep__poll(f, cx, out); }
static void sleep_vdrop(void *f) { ac_sleep__drop(f); }

const ac_future_vt ac_sleep__vt = {
    sizeof(struct ac_sleep__frame), _Alignof(struct ac_sleep__frame), 0,
    sleep_vpoll, sleep_vdrop, "ac_sleep",
};

void ac_sleep_until__init(struct ac_sleep_until__frame *f, uint64_t deadline_ms)
{
    timer_init(&f->timer, deadline_ms);
    f->state = AC_STATE_UNRESUMED;
}

ac_poll_t ac_sleep_until__poll(struct ac_sleep_until__frame *f, ac_context *cx, void *out)
{
    (void)out;
    return sleep_poll(&f->timer, &f->state, cx, "ac_sleep_until");
}

void ac_sleep_until__drop(struct ac_sleep_until__frame *f)
{
    if (f->state == AC_STATE_FIRST)
        timer_stop(&f->timer);
    f->state = AC_STATE_RETURNED;
}

static ac_poll_t sleep_until_vpoll(void *f, ac_context *cx, void *out)
{
    return ac_sleep_until__poll(f, cx, out);
}
static void sleep_until_vdrop(void *f) { ac_sleep_until__drop(f); }

const ac_future_vt ac_sleep_until__vt = {
    sizeof(struct ac_sleep_until__frame), _Alignof(struct ac_sleep_until__frame), 0,
    sleep_until_vpoll, sleep_until_vdrop, "ac_sleep_until",
};

/* ---- ac_interval -------------------------------------------------------- */

struct ac_interval {
    uint64_t next;   /* the next tick's scheduled time (ms) */
    uint64_t period; /* ms between ticks */
    int policy;      /* AC_TICK_* */
};

ac_interval *ac_interval_new(uint64_t period_ms, int missed_tick_policy)
{
    if (period_ms == 0 || missed_tick_policy < AC_TICK_BURST || missed_tick_policy > AC_TICK_SKIP)
        return NULL;
    ac_interval *iv = malloc(sizeof *iv);
    if (!iv)
        return NULL;
    iv->next = ac_now_ms();
    iv->period = period_ms;
    iv->policy = missed_tick_policy;
    return iv;
}

void ac_interval_free(ac_interval *iv) { free(iv); }

void ac_interval_tick__init(struct ac_interval_tick__frame *f, ac_interval *iv)
{
    timer_init(&f->timer, 0);
    f->iv = iv;
    f->state = AC_STATE_UNRESUMED;
}

ac_poll_t ac_interval_tick__poll(struct ac_interval_tick__frame *f, ac_context *cx, uint64_t *out)
{
    /* The tick is only taken from the interval when it completes, so a
     * dropped tick future leaves the schedule as it was. */
    if (f->state == AC_STATE_UNRESUMED)
        f->timer.when = f->iv->next;
    if (sleep_poll(&f->timer, &f->state, cx, "ac_interval_tick") == AC_PENDING)
        return AC_PENDING;
    ac_interval *iv = f->iv;
    iv->next = ac__interval_next(f->timer.when, ac_now_ms(), iv->period, iv->policy);
    *out = f->timer.when;
    return AC_READY;
}

void ac_interval_tick__drop(struct ac_interval_tick__frame *f)
{
    if (f->state == AC_STATE_FIRST)
        timer_stop(&f->timer);
    f->state = AC_STATE_RETURNED;
}

static ac_poll_t interval_tick_vpoll(void *f, ac_context *cx, void *out)
{
    return ac_interval_tick__poll(f, cx, out);
}
static void interval_tick_vdrop(void *f) { ac_interval_tick__drop(f); }

const ac_future_vt ac_interval_tick__vt = {
    sizeof(struct ac_interval_tick__frame), _Alignof(struct ac_interval_tick__frame),
    sizeof(uint64_t), interval_tick_vpoll, interval_tick_vdrop, "ac_interval_tick",
};

/* ---- The deadline of ac_timeout ----------------------------------------- */

/* States: AC_STATE_UNRESUMED (armed, not registered), AC_STATE_FIRST
 * (registered), AC_STATE_RETURNED (expired, or dropped). */

void ac_deadline__init(struct ac_deadline__frame *f, uint64_t ms)
{
    uint64_t now = ac__clock_deadline_ns();
    f->start = now / 1000000u;
    timer_init_after(&f->timer, now, ms);
    f->state = AC_STATE_UNRESUMED;
}

int ac_deadline__expired(struct ac_deadline__frame *f, ac_context *cx)
{
    switch (f->state) {
    case AC_STATE_UNRESUMED:
        if (!timer_start(&f->timer, cx->waker)) {
            f->state = AC_STATE_FIRST;
            return 0;
        }
        break;
    case AC_STATE_FIRST:
        if (!timer_poll(&f->timer, cx->waker))
            return 0;
        break;
    default:
        break;
    }
    f->state = AC_STATE_RETURNED;
    return 1;
}

uint64_t ac_deadline__elapsed_ms(const struct ac_deadline__frame *f)
{
    uint64_t now = ac_now_ms();
    return now > f->start ? now - f->start : 0;
}

void ac_deadline__drop(struct ac_deadline__frame *f)
{
    if (f->state == AC_STATE_FIRST)
        timer_stop(&f->timer);
    f->state = AC_STATE_RETURNED;
}

/*
 * value_future.h: a hand-written future for the runtime's unit tests, shaped
 * as the translator would lower `async(int) value(int v, long yields)`: it
 * yields `yields` times (waking itself), then returns v, and counts its
 * polls, pending polls, drops and completions in the counters it is given
 * (value_vt), or counts nothing (plain_value_vt, for stress tests where
 * shared counters would be most of the work). Other test futures build on
 * its frame; frame_drop is the drop of one that counts nothing. Included by
 * runtime_spawn.c, runtime_joinset.c and runtime_sched.c.
 */
#ifndef ASYNCC_TESTS_VALUE_FUTURE_H
#define ASYNCC_TESTS_VALUE_FUTURE_H

#include <stdatomic.h>

typedef struct counters {
    atomic_int polls;   /* polls of the futures sharing these counters */
    atomic_int drops;   /* their drops */
    atomic_int done;    /* those that returned ready */
    atomic_long yields; /* their pending polls */
} counters;

typedef struct value_frame {
    unsigned ac_state; /* 0 unresumed, 1 returned, 3 yielding */
    int v;             /* parameter */
    long yields;       /* parameter: yields left */
    counters *c;       /* parameter: where to count */
} value_frame;

static void value__init(void *frame, int v, long yields, counters *c)
{
    value_frame *f = frame;
    f->ac_state = AC_STATE_UNRESUMED;
    f->v = v;
    f->yields = yields;
    f->c = c;
}

/* One poll of value, counting nothing. */
static inline ac_poll_t value_step(value_frame *f, ac_context *cx, void *out)
{
    if (f->ac_state == AC_STATE_RETURNED)
        ac__bad_resume("value", f->ac_state);
    f->ac_state = AC_STATE_FIRST;
    if (f->yields-- > 0) {
        ac_waker_wake_by_ref(cx->waker);
        return AC_PENDING;
    }
    f->ac_state = AC_STATE_RETURNED;
    if (out) /* NULL for a void reading of the frame (runtime_joinset's nothing_vt) */
        *(int *)out = f->v;
    return AC_READY;
}

static ac_poll_t value_poll(void *frame, ac_context *cx, void *out)
{
    value_frame *f = frame;
    atomic_fetch_add(&f->c->polls, 1);
    ac_poll_t r = value_step(f, cx, out);
    if (r == AC_READY)
        atomic_fetch_add(&f->c->done, 1);
    else
        atomic_fetch_add(&f->c->yields, 1);
    return r;
}

static void value_drop(void *frame)
{
    value_frame *f = frame;
    atomic_fetch_add(&f->c->drops, 1);
    f->ac_state = AC_STATE_RETURNED;
}

static inline ac_poll_t plain_value_poll(void *frame, ac_context *cx, void *out)
{
    return value_step(frame, cx, out);
}

static inline void frame_drop(void *frame) { ((value_frame *)frame)->ac_state = AC_STATE_RETURNED; }

static const ac_future_vt value_vt = {
    sizeof(value_frame), _Alignof(value_frame), sizeof(int), value_poll, value_drop, "value",
};
static const ac_future_vt plain_value_vt __attribute__((unused)) = {
    sizeof(value_frame), _Alignof(value_frame), sizeof(int), plain_value_poll, frame_drop, "value",
};

#endif

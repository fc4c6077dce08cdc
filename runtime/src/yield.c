/*
 * yield.c: the type-erased vtable of ac_yield(), for code that reaches it
 * through ac_future_vt (an executor, or a test) rather than embedding
 * struct ac_yield__frame and calling the header's typed inline functions.
 */
#include "internal.h"

static ac_poll_t yield_poll(void *frame, ac_context *cx, void *out)
{
    return ac_yield__poll(frame, cx, out);
}

static void yield_drop(void *frame) { ac_yield__drop(frame); }

const ac_future_vt ac_yield__vt = {
    .size = sizeof(struct ac_yield__frame),
    .align = _Alignof(struct ac_yield__frame),
    .out_size = 0,
    .poll = yield_poll,
    .drop = yield_drop,
    .name = "ac_yield",
};

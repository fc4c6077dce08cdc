/*
 * yield_chain_hand.c: bench/yield_chain.ac written by hand as C state machines
 * on the Future ABI (docs/design.md, "Generated-code conventions"). It is the
 * yardstick asyncc's output is measured against, so it is what a careful C
 * programmer would write:
 *
 *  - each level's frame embeds its callee's frame by value (f1 contains f2, ...,
 *    f10 contains a struct ac_yield__frame), so a round allocates nothing;
 *  - the state is one byte, resumed through a switch;
 *  - levels call each other's typed poll functions directly (static, so the
 *    compiler may inline them); the only indirect call is the executor's poll
 *    of the outermost future through its ac_future_vt.
 *
 * f10 awaits ac_yield() and returns 1; f9..f1 each return await of the next.
 * The `rounds` future plays the part of async_main's timed loop: it awaits f1()
 * ROUNDS times and sums the results.
 *
 * Usage: yield_chain_hand [ROUNDS]. Prints `bench yield_chain_hand NS ns/round`:
 * the best (minimum) of REPS runs of ROUNDS rounds, each run one ac_block_on
 * timed with CLOCK_MONOTONIC.
 *
 * Build: cc -O2 -Iruntime/include -DASYNCC_LOWERED bench/yield_chain_hand.c
 *        build/lib/libasyncc.a -pthread
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime under -std=c11 */

#include <asyncc.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define DEFAULT_ROUNDS 1000000
#define REPS 5

/* Frame states: the reserved AC_STATE_UNRESUMED and AC_STATE_RETURNED, and
 * AC_STATE_FIRST while suspended in the one await each function has. */

/* ------------------------------------------------------------------------ */
/* f10: await(ac_yield()); return 1;                                         */
/* ------------------------------------------------------------------------ */

struct f10__frame {
    uint8_t state;                /* AC_STATE_*; FIRST: awaiting yield */
    struct ac_yield__frame yield; /* the awaited ac_yield() */
};

static void f10__init(struct f10__frame *f) { f->state = AC_STATE_UNRESUMED; }

static ac_poll_t f10__poll(struct f10__frame *f, ac_context *cx, int *out)
{
    switch (f->state) {
    case AC_STATE_UNRESUMED:
        ac_yield__init(&f->yield);
        f->state = AC_STATE_FIRST;
        /* fall through */
    case AC_STATE_FIRST:
        if (ac_yield__poll(&f->yield, cx, NULL) == AC_PENDING)
            return AC_PENDING;
        f->state = AC_STATE_RETURNED;
        *out = 1;
        return AC_READY;
    default:
        ac__bad_resume("f10", f->state);
    }
}

static void f10__drop(struct f10__frame *f)
{
    if (f->state == AC_STATE_FIRST)
        ac_yield__drop(&f->yield);
    f->state = AC_STATE_RETURNED;
}

/* ------------------------------------------------------------------------ */
/* f9 .. f1: return await(next());                                           */
/* The callee writes its output straight into ours: it does so only when it  */
/* is ready, which is exactly when we are.                                   */
/* ------------------------------------------------------------------------ */

struct f9__frame {
    uint8_t state;         /* AC_STATE_*; FIRST: awaiting f10 */
    struct f10__frame f10; /* the awaited f10() */
};

static void f9__init(struct f9__frame *f) { f->state = AC_STATE_UNRESUMED; }

static ac_poll_t f9__poll(struct f9__frame *f, ac_context *cx, int *out)
{
    switch (f->state) {
    case AC_STATE_UNRESUMED:
        f10__init(&f->f10);
        f->state = AC_STATE_FIRST;
        /* fall through */
    case AC_STATE_FIRST:
        if (f10__poll(&f->f10, cx, out) == AC_PENDING)
            return AC_PENDING;
        f->state = AC_STATE_RETURNED;
        return AC_READY;
    default:
        ac__bad_resume("f9", f->state);
    }
}

static void f9__drop(struct f9__frame *f)
{
    if (f->state == AC_STATE_FIRST)
        f10__drop(&f->f10);
    f->state = AC_STATE_RETURNED;
}

struct f8__frame {
    uint8_t state;       /* AC_STATE_*; FIRST: awaiting f9 */
    struct f9__frame f9; /* the awaited f9() */
};

static void f8__init(struct f8__frame *f) { f->state = AC_STATE_UNRESUMED; }

static ac_poll_t f8__poll(struct f8__frame *f, ac_context *cx, int *out)
{
    switch (f->state) {
    case AC_STATE_UNRESUMED:
        f9__init(&f->f9);
        f->state = AC_STATE_FIRST;
        /* fall through */
    case AC_STATE_FIRST:
        if (f9__poll(&f->f9, cx, out) == AC_PENDING)
            return AC_PENDING;
        f->state = AC_STATE_RETURNED;
        return AC_READY;
    default:
        ac__bad_resume("f8", f->state);
    }
}

static void f8__drop(struct f8__frame *f)
{
    if (f->state == AC_STATE_FIRST)
        f9__drop(&f->f9);
    f->state = AC_STATE_RETURNED;
}

struct f7__frame {
    uint8_t state;       /* AC_STATE_*; FIRST: awaiting f8 */
    struct f8__frame f8; /* the awaited f8() */
};

static void f7__init(struct f7__frame *f) { f->state = AC_STATE_UNRESUMED; }

static ac_poll_t f7__poll(struct f7__frame *f, ac_context *cx, int *out)
{
    switch (f->state) {
    case AC_STATE_UNRESUMED:
        f8__init(&f->f8);
        f->state = AC_STATE_FIRST;
        /* fall through */
    case AC_STATE_FIRST:
        if (f8__poll(&f->f8, cx, out) == AC_PENDING)
            return AC_PENDING;
        f->state = AC_STATE_RETURNED;
        return AC_READY;
    default:
        ac__bad_resume("f7", f->state);
    }
}

static void f7__drop(struct f7__frame *f)
{
    if (f->state == AC_STATE_FIRST)
        f8__drop(&f->f8);
    f->state = AC_STATE_RETURNED;
}

struct f6__frame {
    uint8_t state;       /* AC_STATE_*; FIRST: awaiting f7 */
    struct f7__frame f7; /* the awaited f7() */
};

static void f6__init(struct f6__frame *f) { f->state = AC_STATE_UNRESUMED; }

static ac_poll_t f6__poll(struct f6__frame *f, ac_context *cx, int *out)
{
    switch (f->state) {
    case AC_STATE_UNRESUMED:
        f7__init(&f->f7);
        f->state = AC_STATE_FIRST;
        /* fall through */
    case AC_STATE_FIRST:
        if (f7__poll(&f->f7, cx, out) == AC_PENDING)
            return AC_PENDING;
        f->state = AC_STATE_RETURNED;
        return AC_READY;
    default:
        ac__bad_resume("f6", f->state);
    }
}

static void f6__drop(struct f6__frame *f)
{
    if (f->state == AC_STATE_FIRST)
        f7__drop(&f->f7);
    f->state = AC_STATE_RETURNED;
}

struct f5__frame {
    uint8_t state;       /* AC_STATE_*; FIRST: awaiting f6 */
    struct f6__frame f6; /* the awaited f6() */
};

static void f5__init(struct f5__frame *f) { f->state = AC_STATE_UNRESUMED; }

static ac_poll_t f5__poll(struct f5__frame *f, ac_context *cx, int *out)
{
    switch (f->state) {
    case AC_STATE_UNRESUMED:
        f6__init(&f->f6);
        f->state = AC_STATE_FIRST;
        /* fall through */
    case AC_STATE_FIRST:
        if (f6__poll(&f->f6, cx, out) == AC_PENDING)
            return AC_PENDING;
        f->state = AC_STATE_RETURNED;
        return AC_READY;
    default:
        ac__bad_resume("f5", f->state);
    }
}

static void f5__drop(struct f5__frame *f)
{
    if (f->state == AC_STATE_FIRST)
        f6__drop(&f->f6);
    f->state = AC_STATE_RETURNED;
}

struct f4__frame {
    uint8_t state;       /* AC_STATE_*; FIRST: awaiting f5 */
    struct f5__frame f5; /* the awaited f5() */
};

static void f4__init(struct f4__frame *f) { f->state = AC_STATE_UNRESUMED; }

static ac_poll_t f4__poll(struct f4__frame *f, ac_context *cx, int *out)
{
    switch (f->state) {
    case AC_STATE_UNRESUMED:
        f5__init(&f->f5);
        f->state = AC_STATE_FIRST;
        /* fall through */
    case AC_STATE_FIRST:
        if (f5__poll(&f->f5, cx, out) == AC_PENDING)
            return AC_PENDING;
        f->state = AC_STATE_RETURNED;
        return AC_READY;
    default:
        ac__bad_resume("f4", f->state);
    }
}

static void f4__drop(struct f4__frame *f)
{
    if (f->state == AC_STATE_FIRST)
        f5__drop(&f->f5);
    f->state = AC_STATE_RETURNED;
}

struct f3__frame {
    uint8_t state;       /* AC_STATE_*; FIRST: awaiting f4 */
    struct f4__frame f4; /* the awaited f4() */
};

static void f3__init(struct f3__frame *f) { f->state = AC_STATE_UNRESUMED; }

static ac_poll_t f3__poll(struct f3__frame *f, ac_context *cx, int *out)
{
    switch (f->state) {
    case AC_STATE_UNRESUMED:
        f4__init(&f->f4);
        f->state = AC_STATE_FIRST;
        /* fall through */
    case AC_STATE_FIRST:
        if (f4__poll(&f->f4, cx, out) == AC_PENDING)
            return AC_PENDING;
        f->state = AC_STATE_RETURNED;
        return AC_READY;
    default:
        ac__bad_resume("f3", f->state);
    }
}

static void f3__drop(struct f3__frame *f)
{
    if (f->state == AC_STATE_FIRST)
        f4__drop(&f->f4);
    f->state = AC_STATE_RETURNED;
}

struct f2__frame {
    uint8_t state;       /* AC_STATE_*; FIRST: awaiting f3 */
    struct f3__frame f3; /* the awaited f3() */
};

static void f2__init(struct f2__frame *f) { f->state = AC_STATE_UNRESUMED; }

static ac_poll_t f2__poll(struct f2__frame *f, ac_context *cx, int *out)
{
    switch (f->state) {
    case AC_STATE_UNRESUMED:
        f3__init(&f->f3);
        f->state = AC_STATE_FIRST;
        /* fall through */
    case AC_STATE_FIRST:
        if (f3__poll(&f->f3, cx, out) == AC_PENDING)
            return AC_PENDING;
        f->state = AC_STATE_RETURNED;
        return AC_READY;
    default:
        ac__bad_resume("f2", f->state);
    }
}

static void f2__drop(struct f2__frame *f)
{
    if (f->state == AC_STATE_FIRST)
        f3__drop(&f->f3);
    f->state = AC_STATE_RETURNED;
}

struct f1__frame {
    uint8_t state;       /* AC_STATE_*; FIRST: awaiting f2 */
    struct f2__frame f2; /* the awaited f2() */
};

static void f1__init(struct f1__frame *f) { f->state = AC_STATE_UNRESUMED; }

static ac_poll_t f1__poll(struct f1__frame *f, ac_context *cx, int *out)
{
    switch (f->state) {
    case AC_STATE_UNRESUMED:
        f2__init(&f->f2);
        f->state = AC_STATE_FIRST;
        /* fall through */
    case AC_STATE_FIRST:
        if (f2__poll(&f->f2, cx, out) == AC_PENDING)
            return AC_PENDING;
        f->state = AC_STATE_RETURNED;
        return AC_READY;
    default:
        ac__bad_resume("f1", f->state);
    }
}

static void f1__drop(struct f1__frame *f)
{
    if (f->state == AC_STATE_FIRST)
        f2__drop(&f->f2);
    f->state = AC_STATE_RETURNED;
}

/* ------------------------------------------------------------------------ */
/* rounds: uint64_t sum = 0;                                                 */
/*         for (uint64_t i = 0; i < n; i++) sum += await(f1());              */
/*         return sum;                                                       */
/* ------------------------------------------------------------------------ */

struct rounds__frame {
    uint8_t state;       /* AC_STATE_*; FIRST: awaiting f1 */
    uint64_t n;          /* parameter: rounds to run */
    uint64_t i;          /* rounds completed */
    uint64_t sum;        /* sum of f1's results */
    struct f1__frame f1; /* the awaited f1() of round i */
};

static void rounds__init(struct rounds__frame *f, uint64_t n)
{
    f->n = n;
    f->state = AC_STATE_UNRESUMED;
}

static ac_poll_t rounds__poll(struct rounds__frame *f, ac_context *cx, uint64_t *out)
{
    int v;

    switch (f->state) {
    case AC_STATE_UNRESUMED:
        f->sum = 0;
        f->i = 0;
        break;
    case AC_STATE_FIRST:
        goto resume_f1;
    default:
        ac__bad_resume("rounds", f->state);
    }
    for (; f->i < f->n; f->i++) {
        f1__init(&f->f1);
        f->state = AC_STATE_FIRST;
    resume_f1:
        if (f1__poll(&f->f1, cx, &v) == AC_PENDING)
            return AC_PENDING;
        f->sum += (uint64_t)v;
    }
    f->state = AC_STATE_RETURNED;
    *out = f->sum;
    return AC_READY;
}

static void rounds__drop(struct rounds__frame *f)
{
    if (f->state == AC_STATE_FIRST)
        f1__drop(&f->f1);
    f->state = AC_STATE_RETURNED;
}

/* The type-erased entry points the executor calls through rounds__vt. */
static ac_poll_t rounds__poll_erased(void *frame, ac_context *cx, void *out)
{
    return rounds__poll(frame, cx, out);
}

static void rounds__drop_erased(void *frame) { rounds__drop(frame); }

static const ac_future_vt rounds__vt = {
    .size = sizeof(struct rounds__frame),
    .align = _Alignof(struct rounds__frame),
    .out_size = sizeof(uint64_t),
    .poll = rounds__poll_erased,
    .drop = rounds__drop_erased,
    .name = "rounds",
};

/* ------------------------------------------------------------------------ */
/* Driver                                                                    */
/* ------------------------------------------------------------------------ */

/* Monotonic time in nanoseconds. */
static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    uint64_t rounds = argc > 1 ? strtoull(argv[1], NULL, 10) : DEFAULT_ROUNDS;
    uint64_t best = UINT64_MAX;

    if (rounds == 0)
        rounds = 1;
    for (int rep = 0; rep < REPS; rep++) {
        struct rounds__frame frame;
        uint64_t sum = 0;

        rounds__init(&frame, rounds);
        uint64_t t0 = now_ns();
        int err = ac_block_on(&rounds__vt, &frame, &sum);
        uint64_t dt = now_ns() - t0;
        if (err != 0) {
            printf("# warning: yield_chain_hand: ac_block_on: %s\n", ac_strerror(err));
            return 1;
        }
        if (sum != rounds)
            printf("# warning: yield_chain_hand: sum %" PRIu64 ", expected %" PRIu64 "\n",
                   sum, rounds);
        if (dt < best)
            best = dt;
    }
    printf("bench yield_chain_hand %.2f ns/round\n", (double)best / (double)rounds);
    return 0;
}

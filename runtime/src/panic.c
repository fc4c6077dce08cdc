/*
 * panic.c: the traps that generated poll functions call when the ABI is
 * broken at run time. They print one line naming the async function and abort,
 * so the mistake stops the program where it happened (rustc's "`async fn`
 * resumed after completion") instead of corrupting a frame.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>

/* Generated code always passes its function's name; be safe anyway. */
static const char *name_or_unknown(const char *fn) { return fn ? fn : "<unknown>"; }

_Noreturn void ac__bad_resume(const char *fn, unsigned state)
{
    fn = name_or_unknown(fn);
    if (state == AC_STATE_RETURNED)
        fprintf(stderr, "asyncc: async function '%s' resumed after completion\n", fn);
    else if (state == AC_STATE_POISONED)
        fprintf(stderr, "asyncc: async function '%s' resumed after it was poisoned\n", fn);
    else
        fprintf(stderr, "asyncc: async function '%s' resumed in invalid state %u\n", fn, state);
    abort();
}

_Noreturn void ac__no_return(const char *fn)
{
    fprintf(stderr, "asyncc: reached the end of non-void async function '%s'\n",
            name_or_unknown(fn));
    abort();
}

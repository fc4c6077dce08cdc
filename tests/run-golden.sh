#!/bin/bash
# run-golden.sh: golden tests of the translator.
#
# For every tests/golden/<topic>/<name>.ac (or only the .ac files given as
# arguments), from the repository root:
#   1. `$ASYNCC <name>.ac -o OUT.c`        must match <name>.expected.c, and
#      its #line directives must map every line copied from the source to
#      that line (tests/tools/linecheck.awk)
#   2. `$ASYNCC --emit=states <name>.ac`   must match <name>.expected.states
#   3. `$ASYNCC cc <name>.ac -o PROG`, run: stdout must match
#      <name>.expected.stdout and the exit status must be 0.
#
# With BLESS=1, steps 1 and 2 write the expected files instead of comparing,
# and <name>.expected.stdout is rewritten from the program built through the
# header's sync reading (never from asyncc's build); step 3 still compares.
#
# Environment: see tests/lib.sh (ASYNCC, BUILD, CC, JOBS, TIMEOUT, BLESS).
# Last line: `golden: N passed, N failed`; exit status 1 if any case failed.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Checks one golden program; prints failures; returns 0 if it passed.
golden_case() {
    local ac=$1 base=${1%.ac} ok=0 status
    local t=$CASE_TMP

    # 1. The translation.
    if ! "$ASYNCC" "$ac" -o "$t/out.c" 2> "$t/translate.err"; then
        fail "$ac: asyncc $ac -o OUT.c failed"
        show "$t/translate.err"
        ok=1
    elif [ -n "$BLESS" ]; then
        cp "$t/out.c" "$base.expected.c"
    elif [ ! -f "$base.expected.c" ]; then
        fail "$ac: $base.expected.c is missing (make bless writes it)"
        ok=1
    elif ! cmp -s "$base.expected.c" "$t/out.c"; then
        fail "$ac: translation differs from $base.expected.c"
        show_diff "$base.expected.c" "$t/out.c"
        ok=1
    fi
    if [ -f "$t/out.c" ] && ! awk -v SRCPATH="$ac" -f "$ROOT/tests/tools/linecheck.awk" \
        "$ac" "$t/out.c" > "$t/lines" 2>&1; then
        fail "$ac: #line maps source lines to the wrong lines"
        show "$t/lines"
        ok=1
    fi

    # 2. The state machines.
    if ! "$ASYNCC" --emit=states "$ac" > "$t/states" 2> "$t/states.err"; then
        fail "$ac: asyncc --emit=states $ac failed"
        show "$t/states.err"
        ok=1
    elif [ -n "$BLESS" ]; then
        cp "$t/states" "$base.expected.states"
    elif [ ! -f "$base.expected.states" ]; then
        fail "$ac: $base.expected.states is missing (make bless writes it)"
        ok=1
    elif ! cmp -s "$base.expected.states" "$t/states"; then
        fail "$ac: --emit=states output differs from $base.expected.states"
        show_diff "$base.expected.states" "$t/states"
        ok=1
    fi

    # 3. The program's output. Blessing takes it from the sync reading.
    if [ -n "$BLESS" ]; then
        if ! sync_build "$ac" "$t/sync" "$t/sync.log"; then
            fail "$ac: the sync build failed, $base.expected.stdout not written"
            show "$t/sync.log"
            return 1
        fi
        status=0
        run_prog "$t/sync" "$t/sync.out" || status=$?
        if [ "$status" -ne 0 ]; then
            fail "$ac: the sync build $(describe_status "$status"), $base.expected.stdout not written"
            return 1
        fi
        cp "$t/sync.out" "$base.expected.stdout"
    fi
    if [ ! -f "$base.expected.stdout" ]; then
        fail "$ac: $base.expected.stdout is missing (make bless writes it from the sync build)"
        return 1
    fi
    # Generated code must compile warning-free under the usual strict flags.
    if ! "$ASYNCC" cc -Wall -Wextra -Werror "$ac" -o "$t/prog" > "$t/cc.log" 2>&1; then
        fail "$ac: asyncc cc $ac -o PROG failed"
        show "$t/cc.log"
        return 1
    fi
    status=0
    run_prog "$t/prog" "$t/prog.out" || status=$?
    if [ "$status" -ne 0 ]; then
        fail "$ac: the program $(describe_status "$status"), expected exit status 0"
        [ -s "$t/prog.out.err" ] && show "$t/prog.out.err"
        ok=1
    fi
    if ! cmp -s "$base.expected.stdout" "$t/prog.out"; then
        fail "$ac: program output differs from $base.expected.stdout"
        show_diff "$base.expected.stdout" "$t/prog.out"
        ok=1
    fi
    return "$ok"
}

if [ $# -gt 0 ]; then
    cases=("$@")
else
    mapfile -t cases < <(find tests/golden -name '*.ac' | LC_ALL=C sort)
fi
require_asyncc golden "${#cases[@]}"
run_cases golden_case "${cases[@]}"
finish golden

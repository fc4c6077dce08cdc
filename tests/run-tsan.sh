#!/bin/bash
# run-tsan.sh: translated programs under ThreadSanitizer. The runtime's own
# tests run under TSan in `make check-tsan`; this runs the dialect's
# programs the same way, where tasks, joins, JoinSets, timeouts, blocking
# calls and panics meet on the multi-thread runtime: every sample (exit 0,
# no report) and every tests/programs one (also its expected.stdout), built
# with clang -fsanitize=thread against the runtime built the same way
# ($TSAN_LIB, which `make check-tsan` builds first).
#
# Usage: run-tsan.sh [FILE.ac]... (default: all the cases above).
# Environment: see tests/lib.sh; TSAN_LIB (default build/tsan/lib/libasyncc.a).
# Last line: `tsan: N passed, N failed`.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TSAN_LIB=${TSAN_LIB:-$ROOT/build/tsan/lib/libasyncc.a}
export TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1"

# tsan_case SRC[:EXPECTED]: builds SRC with TSan and runs it; it must exit 0
# with no report, and print EXPECTED if one is given.
tsan_case() {
    CC=clang san_case "$TSAN_LIB" "-O1 -g -fsanitize=thread" 'WARNING: ThreadSanitizer' \
        "ThreadSanitizer" "$1"
}

require_asyncc tsan 1
if [ ! -f "$TSAN_LIB" ]; then
    fail "no runtime built with TSan at $TSAN_LIB (make check-tsan builds it)"
    FAILED=1
    finish tsan
fi
cases=()
if [ $# -gt 0 ]; then
    for f in "$@"; do
        if [ -f "${f%.ac}.expected.stdout" ]; then cases+=("$f:${f%.ac}.expected.stdout"); else cases+=("$f"); fi
    done
else
    for f in samples/*.ac; do
        cases+=("$f")
    done
    for f in tests/programs/*.ac; do
        cases+=("$f:${f%.ac}.expected.stdout")
    done
fi
run_cases tsan_case "${cases[@]}"
finish tsan

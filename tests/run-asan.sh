#!/bin/bash
# run-asan.sh: translated programs under AddressSanitizer and UBSan, with
# ASan's stack-use-after-return detection on. That finds the bug a
# translator of this kind is prone to: an object left in the poll
# function's stack frame (a compound literal, a temporary) while a pointer
# to it lives on across a suspension, which the poll function's return
# frees. The output is often right by luck; valgrind reports only some of
# these reads, ASan reports each one.
#
# The runtime is built with the same sanitizers into $BUILD/asan (through
# the Makefile), and `asyncc cc` links it (ASYNCC_LIB). Cases: every golden
# program (its expected.stdout), every tests/programs one (its
# expected.stdout), every sample, every tests/multifile program (its
# expected.stdout), and random programs (ASAN_RANDOM seeds, default 40,
# from 1), which must exit 0 with no report. Leak checking is
# left to valgrind (run-multifile.sh): LeakSanitizer needs ptrace, which
# some machines forbid.
#
# And the other way round: each tests/asan-reports/<name>.ac is a program
# with a use after free of a task's memory, which the runtime's slab
# poisons under ASan (runtime/src/slab.c); it must end with ASan's report of
# the kind its first line names ("use-after-poison" unless
# <name>.expected.report says otherwise).
#
# Usage: run-asan.sh [FILE.ac | DIR]... (default: all the cases above).
# Environment: see tests/lib.sh; ASAN_RANDOM. Last line: `asan: N passed,
# N failed`.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SAN_FLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer"
ASAN_BUILD=$BUILD/asan
ASAN_LIB=$ASAN_BUILD/lib/libasyncc.a
export ASAN_OPTIONS=detect_stack_use_after_return=1:detect_leaks=0:abort_on_error=0:exitcode=70
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:exitcode=71
RANDPROG=$BUILD/tests/randprog

# asan_case SRC[:EXPECTED]: builds SRC (a .ac file, or a directory of them,
# a tests/multifile program) with the sanitizers and runs it; it must exit
# 0, report nothing, and print EXPECTED if one is given.
asan_case() {
    san_case "$ASAN_LIB" "-O1 -g $SAN_FLAGS" 'ERROR: AddressSanitizer\|runtime error:' \
        "the sanitizers" "$1"
}

# asan_report_case SRC: builds SRC like asan_case; running it must end
# with exit status 70 and ASan's report of the expected kind.
asan_report_case() {
    local src=$1 t=$CASE_TMP status=0 kind=use-after-poison
    [ -f "${src%.ac}.expected.report" ] && read -r kind < "${src%.ac}.expected.report"
    san_build "$ASAN_LIB" "-O1 -g $SAN_FLAGS" "the sanitizers" "$src" || return 1
    timeout -k 2 "$TIMEOUT" "$t/prog" > "$t/stdout" 2> "$t/stderr" < /dev/null || status=$?
    if [ "$status" -ne 70 ] || ! grep -q "ERROR: AddressSanitizer: $kind" "$t/stderr"; then
        fail "$src: $(describe_status "$status"), without ASan's $kind report"
        show "$t/stderr"
        return 1
    fi
    return 0
}

require_asyncc asan 1
if ! make --no-print-directory -s BUILD="$ASAN_BUILD" \
    CFLAGS="-std=gnu11 -Wall -Wextra -Werror -O1 -g $SAN_FLAGS" "$ASAN_LIB" > "$TMP/lib.log" 2>&1; then
    fail "the runtime does not build with the sanitizers"
    show "$TMP/lib.log"
    FAILED=1
    finish asan
fi

cases=()
if [ $# -gt 0 ]; then
    for f in "$@"; do
        f=${f%/}
        if [ -d "$f" ] && [ -f "$f/expected.stdout" ]; then
            cases+=("$f:$f/expected.stdout")
        elif [ -f "${f%.ac}.expected.stdout" ]; then
            cases+=("$f:${f%.ac}.expected.stdout")
        else
            cases+=("$f")
        fi
    done
    reports=()
    for c in "${cases[@]}"; do
        case $c in */asan-reports/*) reports+=("${c%%:*}") ;; esac
    done
    kept=()
    for c in "${cases[@]}"; do
        case $c in */asan-reports/*) ;; *) kept+=("$c") ;; esac
    done
    [ ${#kept[@]} -gt 0 ] && run_cases asan_case "${kept[@]}"
    [ ${#reports[@]} -gt 0 ] && run_cases asan_report_case "${reports[@]}"
    finish asan
fi
for f in tests/golden/*/*.ac tests/programs/*.ac; do
    cases+=("$f:${f%.ac}.expected.stdout")
done
for f in samples/*.ac; do
    cases+=("$f")
done
for d in tests/multifile/*/; do
    cases+=("${d%/}:${d}expected.stdout")
done
if [ -x "$RANDPROG" ]; then
    mkdir -p "$TMP/random"
    for ((seed = 1; seed <= ${ASAN_RANDOM:-40}; seed++)); do
        "$RANDPROG" "$seed" > "$TMP/random/seed-$seed.ac" && cases+=("$TMP/random/seed-$seed.ac")
    done
fi
run_cases asan_case "${cases[@]}"
run_cases asan_report_case tests/asan-reports/*.ac
finish asan

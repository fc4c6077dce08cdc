#!/bin/bash
# run-programs.sh: programs whose meaning is concurrent, so the sync reading
# is no oracle for them (timeouts that fire, aborted and panicking tasks,
# tasks interleaving on a paused clock). Each tests/programs/<name>.ac is
# built with `asyncc cc`, run, and must exit 0 printing exactly
# <name>.expected.stdout. With BLESS=1 the output is written there instead.
#
# The programs of `make bench` (bench/*.ac), which make check does not run,
# are built the same way here; those that take a count run with a small
# one and must print their `bench` lines under the asyncc build's names (no
# `_sync`, which the sync reading's figures carry). timers_late, whose
# sleeps take seconds whatever the count, is only built.
#
# Environment: see tests/lib.sh. Last line: `programs: N passed, N failed`.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

programs_case() {
    local ac=$1 base=${1%.ac} t=$CASE_TMP status=0
    local name
    name=$(basename "$base")
    if ! "$ASYNCC" cc -Wall -Wextra -Werror "$ac" -o "$t/$name" > "$t/build.log" 2>&1; then
        fail "$ac: asyncc cc failed"
        show "$t/build.log"
        return 1
    fi
    timeout -k 2 "$TIMEOUT" "$t/$name" > "$t/stdout" 2> "$t/stderr" || status=$?
    if [ "$status" -ne 0 ]; then
        fail "$ac: exited with status $status"
        show "$t/stderr"
        return 1
    fi
    [ -n "$BLESS" ] && cp "$t/stdout" "$base.expected.stdout"
    if [ ! -f "$base.expected.stdout" ]; then
        fail "$ac: $base.expected.stdout is missing (make bless writes it)"
        return 1
    fi
    if ! cmp -s "$base.expected.stdout" "$t/stdout"; then
        fail "$ac: stdout differs from $base.expected.stdout"
        show_diff "$base.expected.stdout" "$t/stdout"
        return 1
    fi
    return 0
}

bench_case() {
    local ac=$1 t=$CASE_TMP status=0 name
    name=$(basename "${ac%.ac}")
    if ! "$ASYNCC" cc -O2 -Wall -Wextra -Werror "$ac" -o "$t/$name" > "$t/build.log" 2>&1; then
        fail "$ac: asyncc cc failed"
        show "$t/build.log"
        return 1
    fi
    case $name in
    spawn_join | timers_100k | yield_chain | yield_chain_mt) ;;
    *) return 0 ;;
    esac
    timeout -k 2 "$TIMEOUT" "$t/$name" 100 > "$t/stdout" 2> "$t/stderr" || status=$?
    if [ "$status" -ne 0 ]; then
        fail "$ac: exited with status $status"
        show "$t/stderr"
        return 1
    fi
    if ! grep -Eq '^bench [a-z0-9_]+ ' "$t/stdout" || grep -q '^bench [a-z0-9_]*_sync ' "$t/stdout"; then
        fail "$ac: no bench line under the asyncc build's name"
        show "$t/stdout"
        return 1
    fi
    return 0
}

any_case() {
    case $1 in
    bench/* | */bench/*) bench_case "$1" ;;
    *) programs_case "$1" ;;
    esac
}

if [ $# -gt 0 ]; then
    cases=("$@")
else
    mapfile -t cases < <({
        find tests/programs -name '*.ac'
        find bench -maxdepth 1 -name '*.ac'
    } | LC_ALL=C sort)
fi
require_asyncc programs "${#cases[@]}"
run_cases any_case "${cases[@]}"
finish programs

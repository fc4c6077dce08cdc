#!/bin/bash
# run-programs.sh: programs whose meaning is concurrent, so the sync reading
# is no oracle for them (timeouts that fire, aborted and panicking tasks,
# tasks interleaving on a paused clock). Each tests/programs/<name>.ac is
# built with `asyncc cc`, run, and must exit 0 printing exactly
# <name>.expected.stdout. With BLESS=1 the output is written there instead.
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

if [ $# -gt 0 ]; then
    cases=("$@")
else
    mapfile -t cases < <(find tests/programs -name '*.ac' | LC_ALL=C sort)
fi
require_asyncc programs "${#cases[@]}"
run_cases programs_case "${cases[@]}"
finish programs

#!/bin/bash
# run-errors.sh: the translator must reject every tests/errors/<name>.ac.
#
# For each case (or the .ac files given as arguments), from the repository
# root, `$ASYNCC tests/errors/<name>.ac -o TMP/<name>.c` must
#   - exit with a non-zero status that is not a crash (1..125),
#   - leave no output file behind,
#   - print exactly <name>.expected.stderr on stderr.
# With BLESS=1 the stderr is written to <name>.expected.stderr instead of
# compared (the exit status and the output file are still checked).
#
# Environment: see tests/lib.sh (ASYNCC, BUILD, JOBS, BLESS).
# Last line: `errors: N passed, N failed`; exit status 1 if any case failed.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

errors_case() {
    local ac=$1 base=${1%.ac} t=$CASE_TMP status=0 ok=0
    local name
    name=$(basename "$base")
    timeout -k 2 "$TIMEOUT" "$ASYNCC" "$ac" -o "$t/$name.c" > "$t/stdout" 2> "$t/stderr" || status=$?
    if [ "$status" -eq 0 ]; then
        fail "$ac: accepted, but it must be rejected"
        ok=1
    elif [ "$status" -gt 125 ] || [ "$status" -eq 124 ]; then
        fail "$ac: asyncc $(describe_status "$status")"
        ok=1
    fi
    if [ -e "$t/$name.c" ]; then
        fail "$ac: an output file was left behind after the error"
        ok=1
    fi
    if [ -n "$BLESS" ]; then
        # Only a clean rejection is worth keeping as the expectation.
        [ "$ok" -eq 0 ] && cp "$t/stderr" "$base.expected.stderr"
    elif [ ! -f "$base.expected.stderr" ]; then
        fail "$ac: $base.expected.stderr is missing (make bless writes it)"
        show "$t/stderr"
        ok=1
    elif ! cmp -s "$base.expected.stderr" "$t/stderr"; then
        fail "$ac: stderr differs from $base.expected.stderr"
        show_diff "$base.expected.stderr" "$t/stderr"
        ok=1
    fi
    return "$ok"
}

if [ $# -gt 0 ]; then
    cases=("$@")
else
    mapfile -t cases < <(find tests/errors -name '*.ac' | LC_ALL=C sort)
fi
require_asyncc errors "${#cases[@]}"
run_cases errors_case "${cases[@]}"
finish errors

#!/bin/bash
# run-diagnostics.sh: the safety net's diagnostics (docs/diagnostics.md).
#
# For each tests/diagnostics/<name>.ac (or the .ac files given), from the
# repository root, `$ASYNCC [FLAGS] tests/diagnostics/<name>.ac -o TMP/<name>.c`
# runs with FLAGS from <name>.flags when it exists, and must
#   - print exactly <name>.expected.stderr on stderr;
#   - exit 1 and leave no output file if that stderr holds an error, or
#     exit 0 and write the output file if it holds only warnings (or nothing:
#     the near misses, which must stay silent).
# With BLESS=1 the stderr is written to <name>.expected.stderr instead.
#
# Environment: see tests/lib.sh. Last line: `diagnostics: N passed, N failed`.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

diagnostics_case() {
    local ac=$1 base=${1%.ac} t=$CASE_TMP status=0 ok=0 flags=()
    local name
    name=$(basename "$base")
    [ -f "$base.flags" ] && read -r -a flags < "$base.flags"
    timeout -k 2 "$TIMEOUT" "$ASYNCC" "${flags[@]}" "$ac" -o "$t/$name.c" > "$t/stdout" 2> "$t/stderr" || status=$?
    if [ "$status" -gt 125 ] || [ "$status" -eq 124 ]; then
        fail "$ac: asyncc $(describe_status "$status")"
        return 1
    fi
    local expected=$base.expected.stderr
    [ -n "$BLESS" ] && cp "$t/stderr" "$expected"
    if [ ! -f "$expected" ]; then
        fail "$ac: $expected is missing (make bless writes it)"
        show "$t/stderr"
        return 1
    fi
    if ! cmp -s "$expected" "$t/stderr"; then
        fail "$ac: stderr differs from $expected"
        show_diff "$expected" "$t/stderr"
        ok=1
    fi
    if grep -q ': error: ' "$expected"; then
        [ "$status" -eq 1 ] || { fail "$ac: expected exit 1 (an error), got $status"; ok=1; }
        [ -e "$t/$name.c" ] && { fail "$ac: an output file was left behind after the error"; ok=1; }
    else
        [ "$status" -eq 0 ] || { fail "$ac: expected exit 0 (warnings only), got $status"; ok=1; }
        [ -e "$t/$name.c" ] || { fail "$ac: no output file written"; ok=1; }
    fi
    return "$ok"
}

if [ $# -gt 0 ]; then
    cases=("$@")
else
    mapfile -t cases < <(find tests/diagnostics -name '*.ac' | LC_ALL=C sort)
fi
require_asyncc diagnostics "${#cases[@]}"
run_cases diagnostics_case "${cases[@]}"
finish diagnostics

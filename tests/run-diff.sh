#!/bin/bash
# run-diff.sh: differential test of every sample and golden program.
#
# Each program (samples/*.ac, tests/golden/**/*.ac, or the .ac files given as
# arguments) is built twice, through the header's sync reading
# (`$CC -x c -Iruntime/include X.ac`) and through `$ASYNCC cc X.ac`. Both are
# run without arguments under a timeout; their stdout and exit status must be
# equal.
#
# Environment: see tests/lib.sh (ASYNCC, BUILD, CC, JOBS, TIMEOUT).
# Last line: `diff: N passed, N failed`; exit status 1 if any case failed.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

diff_case() {
    local ac=$1 t=$CASE_TMP sync_status=0 async_status=0 ok=0
    if ! sync_build "$ac" "$t/sync" "$t/sync.log"; then
        fail "$ac: the sync build failed (the program itself is wrong)"
        show "$t/sync.log"
        return 1
    fi
    if ! "$ASYNCC" cc "$ac" -o "$t/async" > "$t/cc.log" 2>&1; then
        fail "$ac: asyncc cc $ac -o PROG failed"
        show "$t/cc.log"
        return 1
    fi
    run_prog "$t/sync" "$t/sync.out" || sync_status=$?
    run_prog "$t/async" "$t/async.out" || async_status=$?
    if [ "$sync_status" -ne "$async_status" ]; then
        fail "$ac: sync build: $(describe_status "$sync_status"), asyncc build: $(describe_status "$async_status")"
        [ -s "$t/async.out.err" ] && show "$t/async.out.err"
        ok=1
    fi
    if ! cmp -s "$t/sync.out" "$t/async.out"; then
        fail "$ac: stdout differs (--- sync build, +++ asyncc build)"
        cp "$t/sync.out" "$t/sync-build"
        show_diff "$t/sync-build" "$t/async.out"
        ok=1
    fi
    return "$ok"
}

if [ $# -gt 0 ]; then
    cases=("$@")
else
    mapfile -t cases < <({ find samples -name '*.ac'; find tests/golden -name '*.ac'; } | LC_ALL=C sort)
fi
require_asyncc diff "${#cases[@]}"
run_cases diff_case "${cases[@]}"
finish diff

#!/usr/bin/env bash
#
# run-checks.sh: runs test programs one after another, keeps going after a
# failure, and ends with one total line 'N passed, N failed'.
#
#   scripts/run-checks.sh ITEM...
#
# An ITEM ending in .sh is a test runner script (tests/run-*.sh), run with bash;
# any other ITEM is a Check unit-test binary. Each item's output is shown as it
# runs and kept in $BUILD/test-logs/NAME.log.
#
# Counting:
#  - a unit binary counts its Check tests: the sum of every
#    'NN%: Checks: C, Failures: F, Errors: E' line (passed C-F-E, failed F+E);
#  - a runner counts what its last 'N passed, N failed' line says;
#  - an item whose output has no such line counts as one test, passed when it
#    exits 0; an item that exits non-zero although it reported no failure
#    (a crash, a leak report, a timeout) adds one failure.
#
# Environment: BUILD (the build directory, for logs), ASYNCC (passed on to the
# runners), UNIT_TIMEOUT and RUNNER_TIMEOUT (seconds per item; defaults 300 and
# 900), BLESS (passed on to the runners).
# Exit status: 0 when nothing failed, 1 otherwise.
set -uo pipefail

BUILD=${BUILD:-build}
UNIT_TIMEOUT=${UNIT_TIMEOUT:-300}
RUNNER_TIMEOUT=${RUNNER_TIMEOUT:-900}
LOGDIR=$BUILD/test-logs
mkdir -p "$LOGDIR"

total_pass=0
total_fail=0
summary=()

run_item() { # ITEM
    local item=$1 name kind limit log status pass=0 fail=0 counted=0
    name=$(basename "$item")
    log=$LOGDIR/${name%.sh}.log
    if [[ $item == *.sh ]]; then
        kind=runner
        limit=$RUNNER_TIMEOUT
    else
        kind=unit
        limit=$UNIT_TIMEOUT
    fi
    echo "=== $kind $name"
    if [ ! -e "$item" ]; then
        echo "$item was not built"
        total_fail=$((total_fail + 1))
        summary+=("  FAIL $kind $name (not built)")
        return
    fi
    if [ $kind = runner ]; then
        timeout -k 10 "$limit" bash "$item" </dev/null 2>&1 | tee "$log"
    else
        timeout -k 10 "$limit" "$item" </dev/null 2>&1 | tee "$log"
    fi
    status=${PIPESTATUS[0]}

    if [ $kind = unit ]; then
        # Check prints one such line per suite runner; add them up.
        local c f e
        while read -r c f e; do
            pass=$((pass + c - f - e))
            fail=$((fail + f + e))
            counted=1
        done < <(sed -n 's/^[0-9]*%: Checks: \([0-9]*\), Failures: \([0-9]*\), Errors: \([0-9]*\).*/\1 \2 \3/p' "$log")
    else
        local line
        line=$(sed -n -E 's/^([A-Za-z0-9_.-]+: )?([0-9]+) passed, ([0-9]+) failed.*/\2 \3/p' "$log" | tail -n 1)
        if [ -n "$line" ]; then
            read -r pass fail <<<"$line"
            counted=1
        fi
    fi

    local note=""
    if [ "$status" = 124 ] || [ "$status" = 137 ]; then
        note=" (timed out after ${limit}s)"
    elif [ "$status" != 0 ]; then
        note=" (exit status $status)"
    fi
    if [ $counted = 0 ]; then
        if [ "$status" = 0 ]; then pass=1; else fail=1; fi
    elif [ "$status" != 0 ] && [ "$fail" = 0 ]; then
        fail=1
    fi

    total_pass=$((total_pass + pass))
    total_fail=$((total_fail + fail))
    if [ "$fail" = 0 ]; then
        summary+=("  ok   $kind $name ($pass passed)")
    else
        summary+=("  FAIL $kind $name ($pass passed, $fail failing)$note; log: $log")
    fi
}

for item in "$@"; do
    run_item "$item"
done

echo "=== summary"
if [ $# = 0 ]; then
    echo "  no test programs or runners found"
fi
for line in "${summary[@]}"; do
    echo "$line"
done
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" = 0 ]

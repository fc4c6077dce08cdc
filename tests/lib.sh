# tests/lib.sh: what the tests/run-*.sh runners share. Source it, do not run it.
#
# On being sourced it
#   - cds to the repository root (so asyncc sees stable, relative file names),
#   - sets defaults for the environment the Makefile passes:
#       ASYNCC   the translator              (default build/bin/asyncc)
#       BUILD    the build directory         (default build)
#       CC       compiler for sync builds    (default cc)
#       JOBS     cases run in parallel       (default 2)
#       TIMEOUT  seconds per program run     (default 20)
#       DIFF_LINES  lines of diff shown per mismatch (default 200)
#   - makes a private temporary directory $TMP, removed on exit.
#
# A runner defines a function that checks one case, prints nothing when the
# case passes and a "FAIL ..." line plus details when it does not, and returns
# 0 or 1; then it calls run_cases FUNCTION CASE... and finish NAME.

set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 2

BUILD=${BUILD:-$ROOT/build}
ASYNCC=${ASYNCC:-$BUILD/bin/asyncc}
CC=${CC:-cc}
JOBS=${JOBS:-2}
TIMEOUT=${TIMEOUT:-20}
DIFF_LINES=${DIFF_LINES:-200}
BLESS=${BLESS:-}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/asyncc-tests.XXXXXX") || exit 2
trap 'rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM

PASSED=0
FAILED=0

# Prints a failure headline.
fail() {
    printf 'FAIL %s\n' "$*"
}

# Prints a file indented, at most DIFF_LINES lines of it.
show() {
    local n
    n=$(wc -l < "$1")
    sed -n "1,${DIFF_LINES}p" "$1" | sed 's/^/    /'
    if [ "$n" -gt "$DIFF_LINES" ]; then
        printf '    ... (%d more lines)\n' $((n - DIFF_LINES))
    fi
}

# show_diff EXPECTED ACTUAL: a unified diff, cut at DIFF_LINES lines.
show_diff() {
    local out=${CASE_TMP:-$TMP}/show_diff.out
    diff -u --label "$1" --label "actual" "$1" "$2" > "$out" 2>&1
    show "$out"
    rm -f "$out"
}

# require_asyncc NAME COUNT: if the translator is missing, reports every one of
# COUNT cases as failed and exits.
require_asyncc() {
    if [ ! -x "$ASYNCC" ]; then
        printf '%s: the translator %s does not exist or is not executable (run make)\n' "$1" "$ASYNCC"
        printf '%s: 0 passed, %d failed\n' "$1" "$2"
        exit 1
    fi
}

# sync_build SRC PROG LOG: builds SRC through the header's sync reading.
sync_build() {
    "$CC" -x c -Iruntime/include "$1" -o "$2" > "$3" 2>&1
}

# run_prog PROG OUT: runs PROG with no arguments under the timeout, stdout to
# OUT (stderr to OUT.err); returns its exit status (124: timed out).
run_prog() {
    local status=0
    timeout -k 2 "$TIMEOUT" "$1" > "$2" 2> "$2.err" < /dev/null || status=$?
    return "$status"
}

# describe_status N: words for an exit status.
describe_status() {
    if [ "$1" -eq 124 ]; then
        printf 'timed out after %ss' "$TIMEOUT"
    elif [ "$1" -gt 128 ]; then
        printf 'killed by signal %d (%s)' $(($1 - 128)) "$(kill -l $(($1 - 128)) 2> /dev/null || echo '?')"
    else
        printf 'exit status %d' "$1"
    fi
}

# san_build LIB CFLAGS WHAT SRC: builds SRC (a .ac file, or a directory of
# them, a tests/multifile program) with `asyncc cc CFLAGS` against the
# runtime library LIB into $CASE_TMP/prog; on failure says so, naming the
# sanitizers WHAT, and returns 1.
san_build() {
    local lib=$1 cflags=$2 what=$3 src=$4 t=$CASE_TMP srcs
    if [ -d "$src" ]; then srcs=("$src"/*.ac -I"$src"); else srcs=("$src"); fi
    # shellcheck disable=SC2086 # cflags is a list of flags
    if ! ASYNCC_LIB=$lib "$ASYNCC" cc $cflags -Isamples "${srcs[@]}" -o "$t/prog" \
        > "$t/build.log" 2>&1; then
        fail "$src: asyncc cc with $what failed"
        show "$t/build.log"
        return 1
    fi
}

# san_case LIB CFLAGS REPORT WHAT SRC[:EXPECTED]: builds SRC (san_build),
# runs it, and requires exit 0, no line of stderr matching REPORT (grep),
# and EXPECTED's text on stdout when given. Uses $CASE_TMP.
san_case() {
    local lib=$1 cflags=$2 report=$3 what=$4 src=${5%%:*} expected=${5#*:} t=$CASE_TMP status=0
    [ "$expected" = "$5" ] && expected=
    san_build "$lib" "$cflags" "$what" "$src" || return 1
    timeout -k 2 "$TIMEOUT" "$t/prog" > "$t/stdout" 2> "$t/stderr" < /dev/null || status=$?
    if [ "$status" -ne 0 ] || grep -q "$report" "$t/stderr"; then
        fail "$src: $(describe_status "$status") under $what"
        show "$t/stderr"
        return 1
    fi
    if [ -n "$expected" ] && ! cmp -s "$expected" "$t/stdout"; then
        fail "$src: stdout differs from $expected"
        show_diff "$expected" "$t/stdout"
        return 1
    fi
    return 0
}

# Case bookkeeping for run_cases: logs are printed in case order as soon as
# every earlier case has finished.
_NCASES=0
_NEXT_PRINT=0

_flush_done() {
    while [ "$_NEXT_PRINT" -lt "$_NCASES" ] && [ -f "$TMP/status.$_NEXT_PRINT" ]; do
        cat "$TMP/log.$_NEXT_PRINT"
        if [ "$(cat "$TMP/status.$_NEXT_PRINT")" = 0 ]; then
            PASSED=$((PASSED + 1))
        else
            FAILED=$((FAILED + 1))
        fi
        rm -f "$TMP/log.$_NEXT_PRINT" "$TMP/status.$_NEXT_PRINT"
        _NEXT_PRINT=$((_NEXT_PRINT + 1))
    done
}

# run_cases FUNCTION CASE...: runs FUNCTION CASE for every case, JOBS at a
# time, each with its own scratch directory in $CASE_TMP, and counts passes
# and failures.
run_cases() {
    local fn=$1 item status
    shift
    for item in "$@"; do
        while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do
            wait -n 2> /dev/null || true
            _flush_done
        done
        (
            CASE_TMP="$TMP/case.$_NCASES"
            mkdir -p "$CASE_TMP"
            status=0
            "$fn" "$item" > "$TMP/log.$_NCASES" 2>&1 || status=1
            rm -rf "$CASE_TMP"
            echo "$status" > "$TMP/status.$_NCASES.tmp"
            mv "$TMP/status.$_NCASES.tmp" "$TMP/status.$_NCASES"
        ) &
        _NCASES=$((_NCASES + 1))
        _flush_done
    done
    wait
    _flush_done
}

# finish NAME: prints the summary line and exits 1 if anything failed.
finish() {
    printf '%s: %d passed, %d failed\n' "$1" "$PASSED" "$FAILED"
    [ "$FAILED" -eq 0 ]
    exit
}

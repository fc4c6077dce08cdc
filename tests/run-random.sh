#!/bin/bash
# run-random.sh: differential test on random programs from tests/gen/randprog.
#
# For seeds FIRST..FIRST+COUNT-1, `$BUILD/tests/randprog SEED` writes a random
# async program; it is built through the header's sync reading and
# translated by `$ASYNCC` (whose output `$ASYNCC cc` then builds), both are
# run, and their stdout and exit status must be equal; the translation's
# #line directives must map every line copied from the source to that line
# (tests/tools/linecheck.awk).
# A failing program is kept as $BUILD/random-failures/seed-SEED.ac, with the
# two outputs and asyncc's messages next to it.
#
# Usage: tests/run-random.sh [COUNT [FIRST]]
# Environment: RANDOM_COUNT (default 300), RANDOM_FIRST (default 1), and see
# tests/lib.sh (ASYNCC, BUILD, CC, JOBS, TIMEOUT).
# Last line: `random: N passed, N failed`; exit status 1 if any seed failed.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

COUNT=${1:-${RANDOM_COUNT:-300}}
FIRST=${2:-${RANDOM_FIRST:-1}}
RANDPROG=$BUILD/tests/randprog
FAILDIR=$BUILD/random-failures

# Keeps the failing program and what is known about the failure.
keep() {
    local seed=$1 t=$2
    mkdir -p "$FAILDIR"
    cp "$t/prog.ac" "$FAILDIR/seed-$seed.ac"
    for f in sync.out async.out cc.log; do
        [ -f "$t/$f" ] && cp "$t/$f" "$FAILDIR/seed-$seed.$f"
    done
    printf '    kept as %s\n' "${FAILDIR#"$ROOT"/}/seed-$seed.ac"
    printf '    reproduce: %s %s > prog.ac\n' "$RANDPROG" "$seed"
}

random_case() {
    local seed=$1 t=$CASE_TMP sync_status=0 async_status=0
    if ! "$RANDPROG" "$seed" > "$t/prog.ac" 2> "$t/gen.err"; then
        fail "seed $seed: randprog failed"
        show "$t/gen.err"
        return 1
    fi
    if ! sync_build "$t/prog.ac" "$t/sync" "$t/sync.log"; then
        fail "seed $seed: the sync build failed (a generator bug)"
        show "$t/sync.log"
        keep "$seed" "$t"
        return 1
    fi
    if ! "$ASYNCC" "$t/prog.ac" -o "$t/prog.c" > "$t/cc.log" 2>&1; then
        fail "seed $seed: asyncc failed"
        show "$t/cc.log"
        keep "$seed" "$t"
        return 1
    fi
    if ! awk -v SRCPATH="$t/prog.ac" -f "$ROOT/tests/tools/linecheck.awk" "$t/prog.ac" \
        "$t/prog.c" > "$t/lines" 2>&1; then
        fail "seed $seed: #line maps source lines to the wrong lines"
        show "$t/lines"
        keep "$seed" "$t"
        return 1
    fi
    # The translation above, built the way `asyncc cc` builds a program
    # (translating it again would only repeat the work).
    if ! "$ASYNCC" cc "$t/prog.c" -o "$t/async" > "$t/cc.log" 2>&1; then
        fail "seed $seed: asyncc cc of the translation failed"
        show "$t/cc.log"
        keep "$seed" "$t"
        return 1
    fi
    run_prog "$t/sync" "$t/sync.out" || sync_status=$?
    run_prog "$t/async" "$t/async.out" || async_status=$?
    if [ "$sync_status" -ne "$async_status" ] || ! cmp -s "$t/sync.out" "$t/async.out"; then
        fail "seed $seed: sync build: $(describe_status "$sync_status"), asyncc build: $(describe_status "$async_status")"
        if ! cmp -s "$t/sync.out" "$t/async.out"; then
            cp "$t/sync.out" "$t/sync-build"
            show_diff "$t/sync-build" "$t/async.out"
        fi
        keep "$seed" "$t"
        return 1
    fi
    return 0
}

case "$COUNT$FIRST" in
*[!0-9]*)
    echo "usage: tests/run-random.sh [COUNT [FIRST]]" >&2
    exit 2
    ;;
esac
if [ ! -x "$RANDPROG" ]; then
    printf 'random: the generator %s does not exist (run make)\n' "$RANDPROG"
    printf 'random: 0 passed, %d failed\n' "$COUNT"
    exit 1
fi
require_asyncc random "$COUNT"
mapfile -t seeds < <(seq "$FIRST" $((FIRST + COUNT - 1)))
run_cases random_case "${seeds[@]}"
finish random

#!/bin/bash
# run.sh: builds and runs asyncc's benchmarks (bench/README.md).
#
# Usage: bench/run.sh   (`make bench` runs it with ASYNCC and BUILD set)
#
# Environment:
#   ASYNCC  the translator            (default $BUILD/bin/asyncc)
#   BUILD   the build directory       (default <repo>/build); the runtime is
#           $BUILD/lib/libasyncc.a and everything built here goes to $BUILD/bench
#   CC      C compiler for hand-written C and translated output (default cc)
#   CLANG   the clang that translate_ratio compares against (default clang)
#
# Prints one `bench NAME VALUE UNIT` line per figure and `#` comment lines.
# Never asserts on figures. A part that cannot be built or run prints
# `# error: ...` and the rest still runs; the exit status is then 1. A program
# that computes a wrong value prints `# warning: ...`.
set -u
export LC_ALL=C

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
ASYNCC=${ASYNCC:-$BUILD/bin/asyncc}
CC=${CC:-cc}
CLANG=${CLANG:-clang}
LIB=$BUILD/lib/libasyncc.a
INC=$ROOT/runtime/include
OUT=$BUILD/bench
TIMEOUT=120    # seconds any one benchmark process may take
CHAIN_RUNS=3   # interleaved process runs per yield-chain program
TRANSLATE_RUNS=5

status=0

error() {
    echo "# error: $*"
    status=1
}

# build NAME CMD...: runs CMD with its output in $OUT/NAME.log. On failure
# prints an error with the first lines of the log and returns 1.
build() {
    local name=$1 log=$OUT/$1.log
    shift
    if "$@" >"$log" 2>&1; then
        return 0
    fi
    error "$name: build failed: $*"
    head -n 8 "$log" | sed 's/^/#   /'
    return 1
}

# run NAME CMD...: runs CMD with its output in $OUT/NAME.out and passes its
# comment lines through. Returns CMD's exit status (124 on timeout).
run() {
    local name=$1 out=$OUT/$1.out rc
    shift
    timeout "$TIMEOUT" "$@" >"$out" 2>&1
    rc=$?
    grep '^#' "$out"
    return $rc
}

# figure NAME FILE: the value of `bench NAME VALUE UNIT` in FILE, or nothing.
figure() {
    awk -v name="$1" '$1 == "bench" && $2 == name { print $3; exit }' "$2"
}

# minimum VALUE...: the smallest of the numbers given.
minimum() {
    printf '%s\n' "$@" | sort -g | head -n 1
}

mkdir -p "$OUT" || {
    error "cannot create $OUT"
    exit 1
}

have_asyncc=1
have_lib=1
if [ ! -x "$ASYNCC" ]; then
    error "translator not found: $ASYNCC (the .ac benchmarks are skipped)"
    have_asyncc=0
fi
if [ ! -f "$LIB" ]; then
    error "runtime library not found: $LIB (the linked benchmarks are skipped)"
    have_lib=0
fi

# ------------------------------------------------------------------------
# yield_chain: ns per round of a 10-deep await chain ending in ac_yield(),
# asyncc's output against the hand-written state machine. Each program prints
# the best of 5 timed repetitions; the programs run CHAIN_RUNS times,
# alternating, and the best (minimum) of all is reported.
# ------------------------------------------------------------------------

hand_ok=0
asyncc_ok=0
if [ $have_lib = 1 ]; then
    build yield_chain_hand "$CC" -O2 -I"$INC" -DASYNCC_LOWERED "$ROOT/bench/yield_chain_hand.c" \
        "$LIB" -pthread -o "$OUT/yield_chain_hand" && hand_ok=1
fi
if [ $have_asyncc = 1 ]; then
    build yield_chain_asyncc "$ASYNCC" cc -O2 -I"$INC" "$ROOT/bench/yield_chain.ac" \
        -o "$OUT/yield_chain_asyncc" && asyncc_ok=1
fi

hand_ns=()
asyncc_ns=()
for ((r = 0; r < CHAIN_RUNS; r++)); do
    for side in hand asyncc; do
        okvar=${side}_ok
        [ "${!okvar}" = 1 ] || continue
        name=yield_chain_$side
        run "$name" "$OUT/$name"
        rc=$?
        v=$(figure "$name" "$OUT/$name.out")
        if [ $rc != 0 ] || [ -z "$v" ]; then
            error "$name: exit status $rc, no figure (see $OUT/$name.out)"
            eval "${side}_ok=0"
            continue
        fi
        if [ $side = hand ]; then hand_ns+=("$v"); else asyncc_ns+=("$v"); fi
    done
done
if [ $asyncc_ok = 1 ]; then
    a=$(minimum "${asyncc_ns[@]}")
    echo "bench yield_chain_asyncc $a ns/round"
fi
if [ $hand_ok = 1 ]; then
    h=$(minimum "${hand_ns[@]}")
    echo "bench yield_chain_hand $h ns/round"
fi
if [ $asyncc_ok = 1 ] && [ $hand_ok = 1 ]; then
    awk -v a="$a" -v h="$h" 'BEGIN {
        if (h > 0) printf "bench yield_chain_ratio %.2f x\n", a / h
        else print "# error: yield_chain_hand measured 0 ns/round"
    }'
    echo "# yield_chain_ratio target <= 1.2"
fi

# ------------------------------------------------------------------------
# frame_size_{a,b,c}: bytes of three futures (NAME__vt.size), read by
# bench/frame_size.c linked with the translated file. Each .ac is also built as
# a program that checks its function's result.
# ------------------------------------------------------------------------

echo "# rust 1.95: 48 280 24"
echo "# frame_size targets: each no larger than rust, frame_size_a <= 40"
if [ $have_asyncc = 1 ]; then
    for s in a b c; do
        src=$ROOT/bench/frame_$s.ac
        name=frame_size_$s
        if build "$name" "$ASYNCC" "$src" -o "$OUT/frame_$s.c" &&
            build "$name" "$CC" -O2 -I"$INC" -c "$OUT/frame_$s.c" -o "$OUT/frame_$s.o" &&
            [ $have_lib = 1 ] &&
            build "$name" "$CC" -O2 -I"$INC" -DASYNCC_LOWERED -DFRAME_VT="f${s}__vt" \
                -DFIGURE="$name" "$ROOT/bench/frame_size.c" "$OUT/frame_$s.o" "$LIB" \
                -pthread -o "$OUT/$name"; then
            run "$name" "$OUT/$name"
            rc=$?
            v=$(figure "$name" "$OUT/$name.out")
            if [ $rc = 0 ] && [ -n "$v" ]; then
                echo "bench $name $v bytes"
            else
                error "$name: exit status $rc, no figure (see $OUT/$name.out)"
            fi
        fi
        # The program's own check of the value f$s computes.
        [ $have_lib = 1 ] || continue
        if build "frame_$s" "$ASYNCC" cc -O2 -I"$INC" "$src" -o "$OUT/frame_$s"; then
            run "frame_$s" "$OUT/frame_$s"
            rc=$?
            if [ $rc != 0 ]; then
                echo "# warning: frame_$s: exit status $rc (f$s returned a wrong value or failed)"
            fi
        fi
    done
fi

# ------------------------------------------------------------------------
# translate_ratio: wall time of `asyncc gen.ac -o gen.c` against
# `clang -fsyntax-only` of the same ~5,000-line file; best (minimum) of
# TRANSLATE_RUNS runs each, interleaved.
# ------------------------------------------------------------------------

gen=$OUT/gen.ac
if ! "$ROOT/bench/gen_translate.sh" >"$gen"; then
    error "translate: bench/gen_translate.sh failed"
elif [ $have_asyncc = 1 ]; then
    t_asyncc=()
    t_clang=()
    ok=1
    : >"$OUT/translate.log"
    for ((r = 0; r < TRANSLATE_RUNS && ok; r++)); do
        t0=$EPOCHREALTIME
        "$ASYNCC" "$gen" -o "$OUT/gen.c" >>"$OUT/translate.log" 2>&1 || ok=0
        t1=$EPOCHREALTIME
        "$CLANG" -fsyntax-only -x c -I"$INC" "$gen" >/dev/null 2>&1 || ok=0
        t2=$EPOCHREALTIME
        t_asyncc+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) * 1000 }')")
        t_clang+=("$(awk -v a="$t1" -v b="$t2" 'BEGIN { printf "%.1f", (b - a) * 1000 }')")
    done
    if [ $ok = 0 ]; then
        error "translate: asyncc or $CLANG failed on $gen (see $OUT/translate.log)"
        head -n 8 "$OUT/translate.log" | sed 's/^/#   /'
    else
        ta=$(minimum "${t_asyncc[@]}")
        tc=$(minimum "${t_clang[@]}")
        echo "# translate: $(wc -l <"$gen") lines"
        echo "bench translate_asyncc_ms $ta ms"
        echo "bench translate_clang_ms $tc ms"
        awk -v a="$ta" -v c="$tc" 'BEGIN { printf "bench translate_ratio %.2f x\n", a / c }'
        echo "# translate_ratio target <= 2"
        if ! "$CC" -fsyntax-only -I"$INC" "$OUT/gen.c" >"$OUT/translate_check.log" 2>&1; then
            echo "# warning: translate: the translated gen.c does not compile" \
                "(see $OUT/translate_check.log)"
        fi
    fi
fi

exit $status

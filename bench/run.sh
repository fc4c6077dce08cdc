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
#   CARGO   the cargo that builds the Tokio peer (default /usr/bin/cargo, Debian's,
#           else cargo on PATH); RUSTC its rustc (default the rustc beside it)
#   GO      the go that builds the Go peer (default /usr/bin/go, Debian's
#           golang-go, else go on PATH)
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
TASK_RUNS=3    # interleaved process runs per side of spawn_join and yield_chain_mt
TIMER_RUNS=5   # interleaved process runs per side of timers_100k
LATE_RUNS=3    # interleaved process runs per side of timers_late (about 6 s each)
REGISTRY=/usr/share/cargo/registry # Debian's Rust crates (librust-*-dev)

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

# median VALUE...: the middle one of the numbers given (the lower middle one
# of an even count).
median() {
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

# append ARRAY NAME FILE: appends to ARRAY the value of every
# `rep NAME VALUE UNIT` line in FILE (the task benchmarks print one per
# repetition).
append() {
    local -n arr=$1
    local v
    for v in $(awk -v name="$2" '$1 == "rep" && $2 == name { print $3 }' "$3"); do
        arr+=("$v")
    done
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

# ------------------------------------------------------------------------
# Tasks (issue 3): spawn_join, yield_chain_mt and timers_100k on asyncc's
# default multi-thread runtime, beside the same programs on Tokio
# (bench/peers/tokio, built offline from Debian's librust-tokio-dev when it
# is installed). Every program prints one `rep NAME VALUE UNIT` line per
# timed repetition; the processes run alternately, asyncc then Tokio, and
# each timing figure is the best (minimum) of all repetitions of its side,
# with the median in a comment. timers_100k times one run per process (the
# RSS is the process's peak), and its RSS figure is the median of the
# processes.
# ------------------------------------------------------------------------

echo "# tasks: $(nproc) cores; asyncc and tokio each on their default multi-thread runtime (one worker per core)"
declare -A task_ok=()
for p in spawn_join yield_chain_mt timers_100k timers_late sleep_turn; do
    task_ok[$p]=0
    if [ $have_asyncc = 1 ] && [ $have_lib = 1 ]; then
        build "$p" "$ASYNCC" cc -O2 -I"$INC" "$ROOT/bench/$p.ac" -o "$OUT/$p" && task_ok[$p]=1
    fi
done

# The Tokio peer. The crate is copied into $OUT/tokio_peer, so that Cargo.lock
# and target/ never land in the source tree, and built with a CARGO_HOME of
# its own whose only source is Debian's registry directory, offline.
tokio_ok=0
tokio_dir=$OUT/tokio_peer
if [ -z "${CARGO:-}" ]; then
    if [ -x /usr/bin/cargo ]; then CARGO=/usr/bin/cargo; else CARGO=cargo; fi
fi
if [ -z "${RUSTC:-}" ]; then
    RUSTC=$(dirname "$(command -v "$CARGO" 2>/dev/null || echo /x)")/rustc
    [ -x "$RUSTC" ] || RUSTC=rustc
fi
if ! compgen -G "$REGISTRY/tokio-1.*" >/dev/null; then
    echo "# tokio: skipped: no tokio crate in $REGISTRY" \
        "(apt-get install librust-tokio-dev cargo, to measure it beside asyncc)"
elif ! command -v "$CARGO" >/dev/null 2>&1; then
    echo "# tokio: skipped: $CARGO not found (apt-get install cargo)"
else
    rm -rf "$tokio_dir/src"
    mkdir -p "$tokio_dir/cargo-home"
    cp -Rp "$ROOT/bench/peers/tokio" "$tokio_dir/src"
    printf '%s\n' '[source.crates-io]' 'replace-with = "debian"' '[source.debian]' \
        "directory = \"$REGISTRY\"" '[net]' 'offline = true' >"$tokio_dir/cargo-home/config.toml"
    if build tokio_peer env CARGO_HOME="$tokio_dir/cargo-home" RUSTC="$RUSTC" "$CARGO" build \
        --release --offline --manifest-path "$tokio_dir/src/Cargo.toml" \
        --target-dir "$tokio_dir/target"; then
        tokio_ok=1
        tokio_version=$(awk '$0 == "name = \"tokio\"" { getline; gsub(/[^0-9.]/, ""); print; exit }' \
            "$tokio_dir/src/Cargo.lock")
        echo "# tokio: ${tokio_version:-?} from $REGISTRY, built offline (release profile) by" \
            "$("$CARGO" --version 2>/dev/null), $("$RUSTC" --version 2>/dev/null)"
    fi
fi
TOKIO=$tokio_dir/target/release/tokio_peer

# The Go peer (bench/peers/go), for the Go figures issue 3 quotes: one file,
# no module, built with a GOCACHE and GOPATH of its own under $OUT.
go_ok=0
go_dir=$OUT/go_peer
GO=${GO:-}
if [ -z "$GO" ]; then
    if [ -x /usr/bin/go ]; then GO=/usr/bin/go; else GO=go; fi
fi
if ! command -v "$GO" >/dev/null 2>&1; then
    echo "# go: skipped: $GO not found (apt-get install golang-go, to measure it beside asyncc)"
else
    mkdir -p "$go_dir"
    if build go_peer env GOCACHE="$go_dir/cache" GOPATH="$go_dir/path" GO111MODULE=off \
        GOFLAGS= "$GO" build -o "$go_dir/go_peer" "$ROOT/bench/peers/go/main.go"; then
        go_ok=1
        echo "# go: $("$GO" version 2>/dev/null)"
    fi
fi
GOPEER=$go_dir/go_peer

# task_run OKVAR ARRAY NAME LOG CMD...: runs CMD once, as `run LOG CMD...`, and
# appends the values of its `rep NAME` lines to ARRAY. If it fails or prints
# none, prints an error and sets the variable OKVAR to 0; nothing runs while
# OKVAR is not 1.
task_run() {
    local -n okref=$1
    local arr=$2 name=$3 log=$4 rc
    shift 4
    [ "$okref" = 1 ] || return 0
    run "$log" "$@"
    rc=$?
    if [ $rc != 0 ] || ! grep -q "^rep $name " "$OUT/$log.out"; then
        error "$log: exit status $rc, no figure (see $OUT/$log.out)"
        okref=0
        return 0
    fi
    append "$arr" "$name" "$OUT/$log.out"
}

# task_report NAME UNIT FORMAT STAT ASYNCC_OK ARRAY_ASYNCC ARRAY_TOKIO: prints
# one figure: STAT (minimum or median) of each side that ran, as NAME and
# NAME_tokio, the ratio asyncc / tokio when both did, and a comment with the
# medians.
task_report() {
    local name=$1 unit=$2 fmt=$3 stat=$4 a_ok=$5
    local -n a_vals=$6 t_vals=$7
    local a='' t='' notes=''
    if [ "$a_ok" = 1 ] && [ ${#a_vals[@]} -gt 0 ]; then
        a=$($stat "${a_vals[@]}")
        printf "bench %s $fmt %s\n" "$name" "$a" "$unit"
        notes="asyncc median $(median "${a_vals[@]}") of ${#a_vals[@]}"
    fi
    if [ $tokio_ok = 1 ] && [ ${#t_vals[@]} -gt 0 ]; then
        t=$($stat "${t_vals[@]}")
        printf "bench %s_tokio $fmt %s\n" "$name" "$t" "$unit"
        notes="${notes:+$notes, }tokio median $(median "${t_vals[@]}") of ${#t_vals[@]}"
    fi
    if [ -n "$a" ] && [ -n "$t" ]; then
        awk -v a="$a" -v t="$t" -v n="$name" 'BEGIN {
            if (t > 0) printf "bench %s_ratio %.2f x\n", n, a / t
            else printf "# error: %s_tokio measured 0\n", n
        }'
    fi
    [ -n "$notes" ] && echo "# $name $unit: $notes"
}

# go_report NAME UNIT FORMAT STAT ARRAY_ASYNCC ARRAY_GO: prints NAME_go (STAT of
# the Go side) and the ratio asyncc / go, when both sides ran.
go_report() {
    local name=$1 unit=$2 fmt=$3 stat=$4
    local -n a_vals=$5 g_vals=$6
    [ $go_ok = 1 ] && [ ${#g_vals[@]} -gt 0 ] || return 0
    local g
    g=$($stat "${g_vals[@]}")
    printf "bench %s_go $fmt %s\n" "$name" "$g" "$unit"
    echo "# $name $unit: go median $(median "${g_vals[@]}") of ${#g_vals[@]}"
    if [ ${#a_vals[@]} -gt 0 ]; then
        awk -v a="$($stat "${a_vals[@]}")" -v g="$g" -v n="$name" 'BEGIN {
            if (g > 0) printf "bench %s_go_ratio %.2f x\n", n, a / g
            else printf "# error: %s_go measured 0\n", n
        }'
    fi
}

sj_asyncc=() sj_tokio=() ym_asyncc=() ym_tokio=()
tw_asyncc=() tw_tokio=() tr_asyncc=() tr_tokio=()
sj_go=() tw_go=() tr_go=()
for ((r = 0; r < TASK_RUNS; r++)); do
    task_run 'task_ok[spawn_join]' sj_asyncc spawn_join spawn_join "$OUT/spawn_join"
    task_run tokio_ok sj_tokio spawn_join_tokio spawn_join_tokio "$TOKIO" spawn_join
    task_run go_ok sj_go spawn_join_go spawn_join_go "$GOPEER" spawn_join
done
for ((r = 0; r < TASK_RUNS; r++)); do
    task_run 'task_ok[yield_chain_mt]' ym_asyncc yield_chain_mt yield_chain_mt \
        "$OUT/yield_chain_mt"
    task_run tokio_ok ym_tokio yield_chain_mt_tokio yield_chain_mt_tokio "$TOKIO" yield_chain_mt
done
for ((r = 0; r < TIMER_RUNS; r++)); do
    task_run 'task_ok[timers_100k]' tw_asyncc timers_100k_wall timers_100k "$OUT/timers_100k"
    [ "${task_ok[timers_100k]}" = 1 ] && append tr_asyncc timers_100k_rss "$OUT/timers_100k.out"
    task_run tokio_ok tw_tokio timers_100k_wall_tokio timers_100k_tokio "$TOKIO" timers
    [ $tokio_ok = 1 ] && append tr_tokio timers_100k_rss_tokio "$OUT/timers_100k_tokio.out"
    task_run go_ok tw_go timers_100k_wall_go timers_100k_go "$GOPEER" timers
    [ $go_ok = 1 ] && append tr_go timers_100k_rss_go "$OUT/timers_100k_go.out"
done
lm_asyncc=() lm_tokio=() lp_asyncc=() lp_tokio=()
for ((r = 0; r < LATE_RUNS; r++)); do
    task_run 'task_ok[timers_late]' lm_asyncc timers_late_max timers_late "$OUT/timers_late"
    [ "${task_ok[timers_late]}" = 1 ] && append lp_asyncc timers_late_p999 "$OUT/timers_late.out"
    task_run tokio_ok lm_tokio timers_late_max_tokio timers_late_tokio "$TOKIO" timers_late
    [ $tokio_ok = 1 ] && append lp_tokio timers_late_p999_tokio "$OUT/timers_late_tokio.out"
done
st_asyncc=() st_tokio=()
task_run 'task_ok[sleep_turn]' st_asyncc sleep_turn sleep_turn "$OUT/sleep_turn"
task_run tokio_ok st_tokio sleep_turn_tokio sleep_turn_tokio "$TOKIO" sleep_turn

task_report spawn_join ns/task %.1f minimum "${task_ok[spawn_join]}" sj_asyncc sj_tokio
go_report spawn_join ns/task %.1f minimum sj_asyncc sj_go
echo "# spawn_join target: ratio <= 0.6, and below go 1.19's 155 ns/task" \
    "(issue 3, where tokio 1.24 measured 255 ns/task)"
task_report yield_chain_mt ns/round %.2f minimum "${task_ok[yield_chain_mt]}" ym_asyncc ym_tokio
echo "# yield_chain_mt: no target (issue 3: tokio 1.24 measured 161 ns/round)"
task_report timers_100k_wall ms %.1f minimum "${task_ok[timers_100k]}" tw_asyncc tw_tokio
task_report timers_100k_rss KiB %d median "${task_ok[timers_100k]}" tr_asyncc tr_tokio
go_report timers_100k_wall ms %.1f minimum tw_asyncc tw_go
go_report timers_100k_rss KiB %d median tr_asyncc tr_go
echo "# timers_100k targets: wall <= 110 ms, rss below tokio's" \
    "(issue 3: tokio 1.24 measured 189 ms and 141 MB)"
task_report timers_late_max ms %.2f minimum "${task_ok[timers_late]}" lm_asyncc lm_tokio
task_report timers_late_p999 ms %.2f minimum "${task_ok[timers_late]}" lp_asyncc lp_tokio
echo "# timers_late: no target (issue 3: a million pending timers is fine)"
task_report sleep_turn ms %.3f minimum "${task_ok[sleep_turn]}" st_asyncc st_tokio
echo "# sleep_turn: no target; 1.000 ms is the floor (a sleep never ends early)"

exit $status

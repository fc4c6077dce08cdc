#!/usr/bin/env bash
# Programs of several .ac files: awaits across files go through the Future ABI
# (NAME__vt, NAME__init, frames from the arena) and recursion through
# ac_box. Each directory under tests/multifile/ holds one program; it is
# built through the sync reading and through `asyncc cc`, and both must print
# the expected output, the asyncc build also under valgrind with no leak.
# It is also built the way a Makefile does: `asyncc cc -c` on the sources
# without -o must leave NAME.o for each NAME.ac, as cc does, and say nothing,
# and `asyncc cc *.o` links them.
set -u
cd "$(dirname "$0")/.." || exit 1
ASYNCC=${ASYNCC:-build/bin/asyncc}
ASYNCC=$(realpath "$ASYNCC")
CC=${CC:-cc}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0

check() { # name, command...
    local name=$1; shift
    if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL $name"; fi
}

for dir in tests/multifile/*/; do
    name=$(basename "$dir")
    srcs=("$dir"*.ac)
    expected="$dir/expected.stdout"
    check "$name: sync build" "$CC" -x c -Iruntime/include -I"$dir" "${srcs[@]}" -o "$tmp/$name.sync"
    check "$name: asyncc build" "$ASYNCC" cc -I"$dir" "${srcs[@]}" -o "$tmp/$name.async"
    check "$name: sync output" bash -c "timeout 20 '$tmp/$name.sync' | diff -u '$expected' -"
    check "$name: asyncc output" bash -c "timeout 20 '$tmp/$name.async' | diff -u '$expected' -"
    objs="$tmp/$name.objs"
    mkdir -p "$objs"
    abs=()
    for s in "${srcs[@]}"; do abs+=("$(realpath "$s")"); done
    check "$name: asyncc cc -c leaves NAME.o and no warning" bash -c "
        cd '$objs' && '$ASYNCC' cc -c -I'$(realpath "$dir")' ${abs[*]@Q} 2> cc.err &&
        [ ! -s cc.err ] && for s in ${srcs[*]@Q}; do b=\${s##*/}; [ -f \"\${b%.ac}.o\" ] || exit 1; done"
    check "$name: asyncc cc links the objects" bash -c "'$ASYNCC' cc '$objs'/*.o -o '$objs/prog' &&
        timeout 20 '$objs/prog' | diff -u '$expected' -"
    if command -v valgrind >/dev/null; then
        check "$name: valgrind" timeout 120 valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect \
            --error-exitcode=99 "$tmp/$name.async" >/dev/null
    fi
done
echo "multifile: $pass passed, $fail failed"
[ "$fail" -eq 0 ]

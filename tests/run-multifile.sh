#!/usr/bin/env bash
# Programs of several .ac files: awaits across files go through the Future ABI
# (NAME__vt, NAME__init, frames from the arena) and recursion through
# ac_box. Each directory under tests/multifile/ holds one program; it is
# built through the sync reading and through `asyncc cc`, and both must print
# the expected output, the asyncc build also under valgrind with no leak.
set -u
cd "$(dirname "$0")/.." || exit 1
ASYNCC=${ASYNCC:-build/bin/asyncc}
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
    if command -v valgrind >/dev/null; then
        check "$name: valgrind" timeout 120 valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect \
            --error-exitcode=99 "$tmp/$name.async" >/dev/null
    fi
done
echo "multifile: $pass passed, $fail failed"
[ "$fail" -eq 0 ]

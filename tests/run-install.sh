#!/bin/bash
# run-install.sh: `make install PREFIX=...` installs the translator, the
# runtime library, the header and a pkg-config file that work from there:
# the installed asyncc finds its own header and library, `asyncc cc` builds
# a sample, and a translated file compiles and links with the flags
# `pkg-config --cflags --libs asyncc` gives. Also: a missing dependency is
# reported in one line naming the command that installs it.
#
# Environment: see tests/lib.sh. Last line: `install: N passed, N failed`.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

prefix=$TMP/prefix
check() { # description, command...
    local what=$1; shift
    if "$@" > "$TMP/log" 2>&1; then
        PASSED=$((PASSED + 1))
    else
        FAILED=$((FAILED + 1))
        fail "install: $what"
        show "$TMP/log"
    fi
}

check "make install" make --no-print-directory -s install PREFIX="$prefix" BUILD="$BUILD"
for f in bin/asyncc lib/libasyncc.a include/asyncc.h lib/pkgconfig/asyncc.pc; do
    check "$f is installed" test -f "$prefix/$f"
done
check "installed asyncc cc builds and runs hello" bash -c \
    "'$prefix/bin/asyncc' cc samples/hello.ac -o '$TMP/hello' && '$TMP/hello' | grep -q 'each one awaited'"
check "pkg-config flags compile a translated file" bash -c \
    "'$prefix/bin/asyncc' samples/hello.ac -o '$TMP/hello.c' &&
     PKG_CONFIG_PATH='$prefix/lib/pkgconfig' $CC '$TMP/hello.c' -o '$TMP/hello2' \
         \$(PKG_CONFIG_PATH='$prefix/lib/pkgconfig' pkg-config --cflags --libs asyncc) &&
     '$TMP/hello2' | grep -q 'each one awaited'"
# A missing dependency stops the build before any compiler runs, with one
# line naming the command that installs it.
check "a missing dependency gives one clear message" bash -c \
    "! make --no-print-directory -s LLVM=/nonexistent BUILD='$TMP/nodeps' all > '$TMP/deps.log' 2>&1 &&
     [ \$(grep -c '^asyncc: missing' '$TMP/deps.log') -eq 1 ] &&
     grep -q \"run 'make deps' or 'apt-get install libclang-dev'\" '$TMP/deps.log' &&
     [ ! -e '$TMP/nodeps/bin/asyncc' ]"
finish install

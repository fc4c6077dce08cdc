#!/usr/bin/env bash
#
# deps.sh: the one place that knows asyncc's build and test dependencies.
#
#   scripts/deps.sh check GROUP...   report what is missing, exit 1 if anything is
#   scripts/deps.sh install          install whatever is missing, then check all
#
# Groups (what each kind of make target needs):
#   build    C compiler, libtree-sitter-dev, libclang-dev, tree-sitter-c from npm
#   test     pkg-config and check (the unit-test framework); clang and its
#            ThreadSanitizer runtime (libclang-rt-14-dev), for make check-tsan
#   runners  valgrind (used by the tests/run-*.sh runners)
#
# Every dependency comes from a Debian package, except the tree-sitter C grammar,
# which comes from npm at the version pinned by package.json/package-lock.json and
# is installed with 'npm ci --ignore-scripts' so that no install script runs.
#
# A missing dependency is reported as one line naming the command that installs
# it, e.g.
#   asyncc: missing libclang-dev (clang-c/Index.h); run 'make deps' or 'apt-get install libclang-dev'
#
# Environment: CC (default cc), LLVM (default /usr/lib/llvm-14), the same
# variables the Makefile passes.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CC=${CC:-cc}
read -r -a CC_CMD <<<"$CC" # CC may carry words, e.g. "ccache gcc"
LLVM=${LLVM:-/usr/lib/llvm-14}
TS_DIR=$ROOT/node_modules/tree-sitter-c

# The grammar version pinned by package.json (package-lock.json pins the rest).
ts_c_version() {
    sed -n 's/.*"tree-sitter-c": *"\([^"]*\)".*/\1/p' "$ROOT/package.json" | head -n 1
}

# The version of the grammar installed in node_modules, or nothing.
ts_c_installed() {
    [ -f "$TS_DIR/package.json" ] || return 0
    sed -n 's/^  "version": *"\([^"]*\)".*/\1/p' "$TS_DIR/package.json" | head -n 1
}

# The Debian package that provides libclang for $LLVM.
libclang_pkg() {
    case $LLVM in
    /usr/lib/llvm-14 | /usr/lib/llvm-14/) echo libclang-dev ;;
    /usr/lib/llvm-[0-9]*) echo "libclang-${LLVM#/usr/lib/llvm-}-dev" | tr -d / ;;
    *) echo libclang-dev ;;
    esac
}

MISSING_APT=()  # Debian packages to install
MISSING_NPM=0   # 1 when 'npm ci' is needed
MESSAGES=()     # one line per missing dependency

missing_apt() { # PACKAGE WHAT
    MISSING_APT+=("$1")
    MESSAGES+=("asyncc: missing $1 ($2); run 'make deps' or 'apt-get install $1'")
}

has_header() { # HEADER: does $CC find it on its default include path?
    printf '#include <%s>\n' "$1" | "${CC_CMD[@]}" -E -x c - >/dev/null 2>&1
}

has_lib() { # NAME: does $CC find libNAME.so on its default library path?
    [ "$("${CC_CMD[@]}" -print-file-name="lib$1.so")" != "lib$1.so" ]
}

check_build() {
    if ! command -v "${CC_CMD[0]:-cc}" >/dev/null 2>&1; then
        missing_apt build-essential "C compiler '$CC'"
        return # the remaining probes need the compiler
    fi
    if ! has_header tree_sitter/api.h; then
        missing_apt libtree-sitter-dev "tree_sitter/api.h"
    elif ! has_lib tree-sitter; then
        missing_apt libtree-sitter-dev "libtree-sitter.so"
    fi
    local where=""
    [ "${LLVM%/}" = /usr/lib/llvm-14 ] || where="; looked in LLVM=$LLVM"
    if [ ! -f "$LLVM/include/clang-c/Index.h" ]; then
        missing_apt "$(libclang_pkg)" "clang-c/Index.h$where"
    elif [ ! -e "$LLVM/lib/libclang.so" ]; then
        missing_apt "$(libclang_pkg)" "libclang.so$where"
    fi
    local want have
    want=$(ts_c_version)
    have=$(ts_c_installed)
    if [ ! -f "$TS_DIR/src/parser.c" ] || [ "$have" != "$want" ]; then
        MISSING_NPM=1
        if [ -z "$have" ]; then
            MESSAGES+=("asyncc: missing tree-sitter-c $want (node_modules/tree-sitter-c/src/parser.c); run 'make deps' or 'npm ci --ignore-scripts'")
        else
            MESSAGES+=("asyncc: node_modules has tree-sitter-c $have, need $want; run 'make deps' or 'npm ci --ignore-scripts'")
        fi
    fi
}

check_test() {
    if ! command -v pkg-config >/dev/null 2>&1; then
        missing_apt pkg-config "pkg-config"
        has_header check.h || missing_apt check "check.h"
    elif ! pkg-config --exists check; then
        missing_apt check "check.pc"
    fi
    if ! command -v clang >/dev/null 2>&1; then
        missing_apt clang "clang, for make check-tsan"
    elif [ ! -e "$(clang --print-runtime-dir 2>/dev/null)/libclang_rt.tsan-$(uname -m).a" ]; then
        missing_apt libclang-rt-14-dev "clang's ThreadSanitizer runtime, for make check-tsan"
    fi
}

check_runners() {
    if ! command -v valgrind >/dev/null 2>&1; then
        missing_apt valgrind "valgrind"
    fi
}

check_groups() { # GROUP...
    MISSING_APT=()
    MISSING_NPM=0
    MESSAGES=()
    local g
    for g in "$@"; do
        case $g in
        build) check_build ;;
        test) check_test ;;
        runners) check_runners ;;
        *) echo "deps.sh: unknown group '$g'" >&2; exit 2 ;;
        esac
    done
}

report() {
    local m
    for m in "${MESSAGES[@]}"; do
        echo "$m" >&2
    done
}

do_check() {
    check_groups "$@"
    if [ ${#MESSAGES[@]} -gt 0 ]; then
        report
        exit 1
    fi
}

# How to run a command as root: directly when we are root, else through sudo.
SUDO=()
root_or_sudo() { # PACKAGE...
    if [ "$(id -u)" != 0 ]; then
        if ! command -v sudo >/dev/null 2>&1; then
            echo "asyncc: installing $* needs root and there is no sudo; as root run 'apt-get update && apt-get install $*'" >&2
            exit 1
        fi
        SUDO=(sudo)
    fi
}

do_install() {
    check_groups build test runners
    local pkgs=("${MISSING_APT[@]}")
    if [ "$MISSING_NPM" = 1 ]; then
        command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
        command -v npm >/dev/null 2>&1 || pkgs+=(npm)
    fi
    if [ ${#pkgs[@]} -gt 0 ]; then
        # Sort and drop duplicates (pkg-config may be listed once per group).
        mapfile -t pkgs < <(printf '%s\n' "${pkgs[@]}" | sort -u)
        root_or_sudo "${pkgs[@]}"
        echo "asyncc: installing Debian packages: ${pkgs[*]}"
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -q --no-install-recommends "${pkgs[@]}"
    fi
    if [ "$MISSING_NPM" = 1 ]; then
        echo "asyncc: installing tree-sitter-c $(ts_c_version) with 'npm ci --ignore-scripts'"
        (cd "$ROOT" && npm ci --ignore-scripts --no-audit --no-fund)
    fi
    do_check build test runners
    echo "asyncc: all dependencies present"
}

case ${1:-} in
check) shift; do_check "$@" ;;
install) do_install ;;
*) echo "usage: $0 check GROUP... | install" >&2; exit 2 ;;
esac

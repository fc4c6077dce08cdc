#!/bin/bash
# run-cli.sh: asyncc's command line. Misuse gets one clear message and the
# documented status, never a crash or a half-written file: usage errors exit
# 2 (no input, an unknown option, an option missing its argument, two
# inputs, `asyncc cc` with no files), a file that cannot be read or written
# exits 1 with `asyncc: error: cannot ...`; --help and --version exit 0;
# `-o -` is standard output. An await the translator never saw stops the
# C compile with a message naming it.
#
# Environment: see tests/lib.sh. Last line: `cli: N passed, N failed`.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# expect DESCRIPTION STATUS PATTERN ARGS...: asyncc ARGS exits STATUS and
# prints a line matching PATTERN (grep -E) on stdout or stderr.
expect() {
    local what=$1 want=$2 pattern=$3 status=0
    shift 3
    timeout -k 2 "$TIMEOUT" "$ASYNCC" "$@" > "$TMP/out" 2>&1 || status=$?
    if [ "$status" != "$want" ]; then
        FAILED=$((FAILED + 1))
        fail "cli: $what: exit status $status, expected $want"
        show "$TMP/out"
    elif ! grep -Eq -- "$pattern" "$TMP/out"; then
        FAILED=$((FAILED + 1))
        fail "cli: $what: no line matching '$pattern'"
        show "$TMP/out"
    else
        PASSED=$((PASSED + 1))
    fi
}

hello=$ROOT/samples/hello.ac
expect "--help" 0 '^usage: asyncc IN.ac -o OUT.c' --help
expect "--version" 0 '^asyncc [0-9]' --version
expect "no arguments" 2 '^usage: ' 
expect "no -o" 2 '^usage: ' "$hello"
expect "unknown option" 2 "^asyncc: error: unknown option '--frobnicate'" "$hello" --frobnicate -o "$TMP/x.c"
expect "-I without its directory" 2 '^asyncc: error: -I needs an argument' "$hello" -o "$TMP/x.c" -I
expect "-o without its file" 2 '^asyncc: error: -o needs a file name' "$hello" -o
expect "two inputs" 2 "^asyncc: error: more than one input file" "$hello" "$hello" -o "$TMP/x.c"
expect "a missing input" 1 '^asyncc: error: cannot open .*nosuch\.ac: No such file' "$TMP/nosuch.ac" -o "$TMP/x.c"
expect "a directory as input" 1 '^asyncc: error: cannot read ' "$TMP" -o "$TMP/x.c"
expect "an output in a missing directory" 1 '^asyncc: error: cannot write .*: No such file' \
    "$hello" -o "$TMP/nodir/x.c"
expect "a directory as output" 1 '^asyncc: error: cannot write .*: Is a directory' "$hello" -o "$TMP"
expect "asyncc cc without files" 2 '^asyncc: error: no input files' cc
expect "asyncc cc with a missing input" 1 '^asyncc: error: cannot open ' cc "$TMP/nosuch.ac" -o "$TMP/p"
expect "-o - writes the translation to standard output" 0 '^static ac_poll_t greet__poll' \
    "$hello" -o -
# An await the translator never sees (in text an #include brings into an
# async function) stops the C compile with a message that says so; it was an
# implicit declaration and a link error.
printf 'case 1: out = await(val(5)); break;\n' > "$TMP/aw.inc"
cat > "$TMP/inc.ac" << 'EOF_AC'
#include <asyncc.h>
static async(int) val(int v) { await(ac_yield()); return v; }
async(int) async_main(int argc, char **argv)
{
    (void)argv;
    int out = 0;
    switch (argc) {
#include "aw.inc"
    }
    return out;
}
EOF_AC
expect "an untranslated await stops the compile" 1 'await\(\) in code that asyncc did not translate' \
    cc "$TMP/inc.ac" -o "$TMP/p"

left=
for f in "$TMP"/nodir "$TMP"/p "$TMP"/x.c ./-; do
    [ -e "$f" ] && left="$left $f"
done
if [ -n "$left" ]; then
    FAILED=$((FAILED + 1))
    fail "cli: a run left a file behind:$left"
else
    PASSED=$((PASSED + 1))
fi
finish cli

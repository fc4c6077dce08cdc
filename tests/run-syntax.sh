#!/bin/bash
# run-syntax.sh: every .ac file in the repository must parse with tree-sitter-c
# without ERROR or MISSING nodes (the grammar asyncc's parse pass uses).
#
# Files: `git ls-files '*.ac'` plus untracked .ac files under samples/, tests/
# and bench/, except tests/errors/syntax* (broken on purpose), files named
# *grammar_gaps* (valid C the stock grammar rejects, which compiler/gaps.c
# masks for asyncc's parse) and anything in node_modules/ or build/. If the
# random program generator is built, the programs for seeds 1..20 are
# checked too.
#
# Environment: BUILD (the checker is $BUILD/tests/ts_syntax_check).
# Last line: `syntax: N passed, N failed`; exit status 1 if any file failed.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CHECK=$BUILD/tests/ts_syntax_check
RANDPROG=$BUILD/tests/randprog

mapfile -t files < <(
    {
        git ls-files -- '*.ac' 2> /dev/null
        find samples tests bench -name '*.ac' 2> /dev/null
    } | grep -v -e '^tests/errors/syntax' -e 'grammar_gaps' -e '^node_modules/' -e '/node_modules/' -e '^build/' |
        LC_ALL=C sort -u
)
if [ -x "$RANDPROG" ]; then
    mkdir -p "$TMP/random"
    for seed in $(seq 1 20); do
        "$RANDPROG" "$seed" > "$TMP/random/seed-$seed.ac" && files+=("$TMP/random/seed-$seed.ac")
    done
fi

if [ ! -x "$CHECK" ]; then
    printf 'syntax: the checker %s does not exist (run make)\n' "$CHECK"
    printf 'syntax: 0 passed, %d failed\n' "${#files[@]}"
    exit 1
fi

for f in "${files[@]}"; do
    [ -f "$f" ] || continue   # tracked but deleted in the work tree
    if "$CHECK" "$f" > "$TMP/out" 2>&1; then
        PASSED=$((PASSED + 1))
    else
        FAILED=$((FAILED + 1))
        fail "$f: tree-sitter-c reports syntax errors"
        show "$TMP/out"
    fi
done
finish syntax

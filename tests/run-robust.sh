#!/bin/bash
# run-robust.sh: the translator must survive hostile input.
#
# Inputs (all generated into a temporary directory, deterministically):
#   - random bytes (a fixed-seed generator), with and without NUL bytes;
#   - "token soup": random sequences of C and asyncc tokens, bare and inside
#     an async function;
#   - prefixes of every golden program cut at several points;
#   - golden programs with a line deleted, duplicated or swapped, or one
#     character deleted;
#   - binary data (the start of the asyncc executable), an empty file, a file
#     with only comments, CRLF line endings, a UTF-8 byte order mark, a NUL
#     byte inside a valid program;
#   - 10,000 nested parentheses, 2,000 nested blocks (bare, and each with a
#     local live across its own await), loops nested 30 deep around an
#     await, a 20,000-term expression, a 1 MB line of statements and a 1 MB
#     string literal.
# Each run of `$ASYNCC IN.ac -o OUT.c` (some also with --emit=states, the
# deep ones also with the shell's stack limited to 1 MiB, which the passes'
# threads do not depend on) is limited to TIMEOUT seconds. It passes if the exit status is 0, or 1 with
# `error:` on stderr and no output file; a crash (signal), a timeout or any
# other status fails.
# Failing inputs are kept in $BUILD/robust-failures/.
#
# Environment: see tests/lib.sh (ASYNCC, BUILD, JOBS, TIMEOUT).
# Last line: `robust: N passed, N failed`; exit status 1 if any run failed.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

IN=$TMP/in
FAILDIR=$BUILD/robust-failures
mkdir -p "$IN"
cases=()

# ------------------------------------------------------------------------
# Input generators
# ------------------------------------------------------------------------

# A fixed-seed linear congruential generator: `rnd` leaves a number in
# 0..8388607 in REPLY. Seed it by assigning RNG.
RNG=1
rnd() {
    RNG=$(((RNG * 1103515245 + 12345) & 0x7fffffff))
    REPLY=$((RNG >> 8))
}

# add MODE FILE: queues a run; MODE is `c` (translate) or `states`.
add() {
    cases+=("$1:$2")
}

# random_bytes SEED SIZE NONUL FILE: SIZE random bytes; no NUL bytes if NONUL.
random_bytes() {
    local i fmt='' hex b
    RNG=$1
    for ((i = 0; i < $2; i++)); do
        rnd
        b=$((REPLY & 255))
        if [ "$3" = 1 ] && [ "$b" -eq 0 ]; then
            b=32
        fi
        printf -v hex '\\x%02x' "$b"
        fmt+=$hex
    done
    printf "$fmt" > "$4"
}

SOUP=('async(int)' 'async(void)' 'async(struct s)' 'async(' 'await(' 'await'
    'ac_yield()' '(' ')' '(' ')' '{' '}' '{' '}' '[' ']' ';' ';' ';' ',' '='
    '+' '-' '*' '/' '%' '&' '&&' '||' '!' '~' '?' ':' '<' '>>=' '->' '.' '++'
    '...' 'if' 'else' 'for' 'while' 'do' 'switch' 'case 1:' 'default:'
    'break;' 'continue;' 'goto L;' 'L:' 'return' 'int' 'unsigned' 'char'
    'long' 'void' 'struct s' 'union u' 'enum e' 'typedef' 'static' 'const'
    'volatile' 'sizeof' 'x' 'y' 'f' 'g' 'async_main' 'argc' 'argv' '0' '1'
    '42' '0x7fffffff' '"str"' "'c'" '"unterminated' '/* c */' '/* open'
    '// line' $'\n' $'\n#include <asyncc.h>\n' $'\n#define M(a) await(a)\n'
    $'\n#if 1\n' $'\n#endif\n' 'M(' 'char buf[x];' 'alloca(4)' '__attribute__((x))'
    'async(int) h(void) { return await(h()); }')

# token_soup SEED COUNT WRAP FILE: COUNT random tokens; if WRAP, inside the
# body of an async function after a valid prelude.
token_soup() {
    local i text=''
    RNG=$1
    if [ "$3" = 1 ]; then
        text=$'#include <asyncc.h>\nstatic async(int) f(int a) { await(ac_yield()); return a; }\nasync(int) async_main(int argc, char **argv)\n{\n'
    fi
    for ((i = 0; i < $2; i++)); do
        rnd
        text+="${SOUP[REPLY % ${#SOUP[@]}]} "
    done
    [ "$3" = 1 ] && text+=$'\n}\n'
    printf '%s' "$text" > "$4"
}

# repeat N STRING: STRING N times, in REPLY.
repeat() {
    local s=$2 out=''
    local n=$1
    while [ "$n" -gt 0 ]; do
        if [ $((n & 1)) -eq 1 ]; then
            out+=$s
        fi
        s+=$s
        n=$((n >> 1))
    done
    REPLY=$out
}

PRELUDE=$'#include <asyncc.h>\nstatic async(int) val(int v)\n{\n    await(ac_yield());\n    return v;\n}\n\n'

mapfile -t goldens < <(find tests/golden -name '*.ac' | LC_ALL=C sort)

# Random bytes and token soup.
for seed in 1 2 3 4 5 6 7 8; do
    random_bytes "$seed" $((seed * 500)) 0 "$IN/bytes-$seed.ac"
    add c "$IN/bytes-$seed.ac"
done
for seed in 9 10 11 12; do
    random_bytes "$seed" 2000 1 "$IN/bytes-nonul-$seed.ac"
    add c "$IN/bytes-nonul-$seed.ac"
done
for seed in $(seq 1 12); do
    token_soup "$seed" 300 0 "$IN/soup-$seed.ac"
    add c "$IN/soup-$seed.ac"
    token_soup $((seed + 100)) 120 1 "$IN/soup-fn-$seed.ac"
    add c "$IN/soup-fn-$seed.ac"
done

# Prefixes of every golden program.
for g in "${goldens[@]}"; do
    size=$(wc -c < "$g")
    name=$(echo "${g#tests/golden/}" | tr / -)
    name=${name%.ac}
    for frac in 1 3 4 5 7; do
        cut=$((size * frac / 8))
        head -c "$cut" "$g" > "$IN/prefix-$name-$frac.ac"
        add c "$IN/prefix-$name-$frac.ac"
    done
    head -c $((size - 2)) "$g" > "$IN/prefix-$name-end.ac"
    add c "$IN/prefix-$name-end.ac"
done

# Mutated golden programs.
RNG=4242
for i in $(seq 1 24); do
    rnd
    g=${goldens[REPLY % ${#goldens[@]}]}
    lines=$(wc -l < "$g")
    size=$(wc -c < "$g")
    rnd
    k=$((REPLY % lines + 1))
    rnd
    m=$((REPLY % lines + 1))
    out=$IN/mutant-$i.ac
    case $((i % 4)) in
    0) awk -v k="$k" 'NR != k' "$g" > "$out" ;;
    1) awk -v k="$k" '{ print } NR == k { print }' "$g" > "$out" ;;
    2) awk -v k="$k" -v m="$m" '{ l[NR] = $0 } END { t = l[k]; l[k] = l[m]; l[m] = t; for (i = 1; i <= NR; i++) print l[i] }' "$g" > "$out" ;;
    3)
        rnd
        pos=$((REPLY % size))
        { head -c "$pos" "$g"; tail -c +$((pos + 2)) "$g"; } > "$out"
        ;;
    esac
    add c "$out"
done

# Odd files.
: > "$IN/empty.ac"
add c "$IN/empty.ac"
add states "$IN/empty.ac"
printf '/* only a comment */\n// and another\n' > "$IN/comments.ac"
add c "$IN/comments.ac"
printf '#include <asyncc.h>' > "$IN/include-only-no-newline.ac"
add c "$IN/include-only-no-newline.ac"
if [ -f "$ASYNCC" ]; then
    head -c 65536 "$ASYNCC" > "$IN/binary-executable.ac"
    add c "$IN/binary-executable.ac"
fi
sed 's/$/\r/' samples/hello.ac > "$IN/crlf.ac"
add c "$IN/crlf.ac"
add states "$IN/crlf.ac"
{ printf '\xef\xbb\xbf'; cat samples/hello.ac; } > "$IN/bom.ac"
add c "$IN/bom.ac"
{ head -c 300 samples/hello.ac; printf '\0'; tail -c +301 samples/hello.ac; } > "$IN/nul-inside.ac"
add c "$IN/nul-inside.ac"
{ printf '%s' "$PRELUDE"; printf 'async(int) async_main(int argc, char **argv)\n{\n    (void)argv;\n    /* \xff\xfe invalid UTF-8 \xc3\x28 */\n    const char *s = "\xe2\x82";\n    (void)s;\n    return await(val(argc)) - 1;\n}\n'; } > "$IN/invalid-utf8.ac"
add c "$IN/invalid-utf8.ac"

# Deep nesting.
repeat 10000 '('
open=$REPLY
repeat 10000 ')'
close=$REPLY
printf '%sasync(int) async_main(int argc, char **argv)\n{\n    (void)argv;\n    int x = %sawait(val(argc))%s;\n    return x - 1;\n}\n' \
    "$PRELUDE" "$open" "$close" > "$IN/parens-10000.ac"
add c "$IN/parens-10000.ac"
add small-stack "$IN/parens-10000.ac"
add states "$IN/parens-10000.ac"

repeat 2000 '{ '
open=$REPLY
repeat 2000 '} '
close=$REPLY
printf '%sasync(int) async_main(int argc, char **argv)\n{\n    (void)argv;\n    %sawait(ac_yield());%s\n    return argc - 1;\n}\n' \
    "$PRELUDE" "$open" "$close" > "$IN/blocks-2000.ac"
add c "$IN/blocks-2000.ac"
add states "$IN/blocks-2000.ac"

{
    printf '%sasync(int) async_main(int argc, char **argv)\n{\n    (void)argv;\n    int total = 0;\n' "$PRELUDE"
    for ((i = 0; i < 2000; i++)); do
        printf '{ int v%d = argc + %d; await(ac_yield());\n' "$i" "$i"
    done
    for ((i = 1999; i >= 0; i--)); do
        printf 'total += v%d; }\n' "$i"
    done
    printf '    return total == 0;\n}\n'
} > "$IN/blocks-2000-live.ac"
add c "$IN/blocks-2000-live.ac"

# Loops nested 30 deep (for, while and do in turn) around an await: the
# analyses that carry a set round a loop (the lock check, and the transitions
# of --emit=states) must not walk a body 3^depth times.
{
    printf '%sasync(int) async_main(int argc, char **argv)\n{\n    (void)argv;\n    int s = 0;\n' "$PRELUDE"
    for ((i = 0; i < 30; i++)); do
        case $((i % 3)) in
        0) printf 'for (int i%d = 0; i%d < argc; i%d++) {\n' "$i" "$i" "$i" ;;
        1) printf 'while (s < argc + %d) {\n' "$i" ;;
        2) printf 'do {\n' ;;
        esac
    done
    printf 's += await(val(argc));\n'
    for ((i = 29; i >= 0; i--)); do
        if [ $((i % 3)) = 2 ]; then printf '} while (s < %d);\n' "$i"; else printf '}\n'; fi
    done
    printf '    return s == 0;\n}\n'
} > "$IN/loops-30.ac"
add c "$IN/loops-30.ac"
add states "$IN/loops-30.ac"

repeat 20000 'argc + '
printf '%sasync(int) async_main(int argc, char **argv)\n{\n    (void)argv;\n    int x = %sawait(val(argc));\n    return x == 0;\n}\n' \
    "$PRELUDE" "$REPLY" > "$IN/long-expression.ac"
add c "$IN/long-expression.ac"
add small-stack "$IN/long-expression.ac"

repeat 1000 'x += 1; '
chunk=$REPLY
repeat 100 "${chunk}await(ac_yield()); "
printf '%sasync(int) async_main(int argc, char **argv)\n{\n    (void)argv;\n    int x = argc;\n    %s\n    return x == 0;\n}\n' \
    "$PRELUDE" "$REPLY" > "$IN/huge-line.ac"
add c "$IN/huge-line.ac"
add states "$IN/huge-line.ac"

repeat 1048576 'a'
printf '%sasync(int) async_main(int argc, char **argv)\n{\n    (void)argv;\n    const char *s = "%s";\n    await(ac_yield());\n    return s[argc] != 97;\n}\n' \
    "$PRELUDE" "$REPLY" > "$IN/huge-string.ac"
add c "$IN/huge-string.ac"
unset open close chunk REPLY

# ------------------------------------------------------------------------
# Running
# ------------------------------------------------------------------------

# Keeps a failing input.
keep() {
    mkdir -p "$FAILDIR"
    cp "$1" "$FAILDIR/"
    printf '    input kept as %s\n' "${FAILDIR#"$ROOT"/}/$(basename "$1")"
}

robust_case() {
    local mode=${1%%:*} in=${1#*:} t=$CASE_TMP status=0
    local what="asyncc ${in#"$TMP"/}"
    if [ "$mode" = states ]; then
        what="asyncc --emit=states ${in#"$TMP"/}"
        timeout -k 2 "$TIMEOUT" "$ASYNCC" --emit=states "$in" > "$t/stdout" 2> "$t/stderr" || status=$?
    elif [ "$mode" = small-stack ]; then
        what="asyncc ${in#"$TMP"/} (ulimit -s 1024)"
        (ulimit -s 1024 && exec timeout -k 2 "$TIMEOUT" "$ASYNCC" "$in" -o "$t/out.c") \
            > "$t/stdout" 2> "$t/stderr" || status=$?
    else
        timeout -k 2 "$TIMEOUT" "$ASYNCC" "$in" -o "$t/out.c" > "$t/stdout" 2> "$t/stderr" || status=$?
    fi
    case $status in
    0) return 0 ;;
    1)
        if ! grep -q 'error:' "$t/stderr"; then
            fail "$what: exit status 1 without an \`error:\` message"
        elif [ -e "$t/out.c" ]; then
            fail "$what: rejected, but the output file was left behind"
        else
            return 0
        fi
        ;;
    *)
        fail "$what: $(describe_status "$status")"
        ;;
    esac
    head -c 4000 "$t/stderr" > "$t/stderr.head"
    show "$t/stderr.head"
    keep "$in"
    return 1
}

require_asyncc robust "${#cases[@]}"
run_cases robust_case "${cases[@]}"
finish robust

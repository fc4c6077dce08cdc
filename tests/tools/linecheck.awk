# linecheck.awk: checks the #line mapping of a translation against its source.
#
#   awk -v SRCPATH=FILE.ac -f tests/tools/linecheck.awk FILE.ac FILE.c
#
# SRCPATH is the path as the translation's #line directives spell it. Every
# output line that the #line directives map into SRCPATH, and whose text is
# that of a line occurring exactly once in the source, must be mapped to that
# line; a mismatch is printed as `FILE.ac:LINE: output line N is mapped to
# line M: TEXT` and the exit status is 1. A line the lowering writes itself
# may equal some unique source line by chance: it is told apart by being
# made of words of the line it is mapped to, or of the line the last #line
# named (the statement it comes from; the lowering's own lines are counted
# onward from there): `} else {` for `} else if (c) {`, `unsigned t0 = 0u;`
# split off `unsigned t0 = 0u, t1 = 0u;`; by being an `if (...)` that lowers
# a ?:, && or || of those lines; or by being a line of the state machine's
# own (GENERATED).
function trim(s) { sub(/^[ \t]+/, "", s); sub(/[ \t\r]+$/, "", s); return s }
# Whether every word (identifier or number) of a occurs in b.
function words_within(a, b,    wa, wb, n, m, i, have) {
    n = split(a, wa, /[^A-Za-z0-9_]+/)
    m = split(b, wb, /[^A-Za-z0-9_]+/)
    for (i = 1; i <= m; i++) have[wb[i]] = 1
    for (i = 1; i <= n; i++) if (wa[i] != "" && !(wa[i] in have)) return 0
    return 1
}
BEGIN { GENERATED["default:"] = 1; GENERATED["for (;;) {"] = 1; GENERATED["} else {"] = 1 }
FNR == NR { t = trim($0); src[FNR] = t; count[t]++; where[t] = FNR; next }
/^#line [0-9]+ "/ {
    p = $0
    sub(/^#line [0-9]+ "/, "", p)
    sub(/"$/, "", p)
    mapped = (p == SRCPATH)
    cur = dirline = $2
    next
}
mapped {
    t = trim($0)
    if (length(t) >= 8 && (t in count) && count[t] == 1 && where[t] != cur &&
        !(t in GENERATED) && !words_within(t, src[cur]) && !words_within(t, src[dirline]) &&
        !(t ~ /^if \(/ && (src[cur] src[dirline]) ~ /[?]|&&|[|][|]/)) {
        printf "%s:%d: output line %d is mapped to line %d: %s\n", SRCPATH, where[t], FNR, cur, t
        bad++
    }
    cur++
}
END { exit bad > 0 }

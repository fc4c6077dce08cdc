/*
 * gaps.c: C that the stock tree-sitter-c grammar cannot parse, made
 * parseable.
 *
 * Input: the source bytes of one `.ac` file.
 * Output: a copy of the same length, for tree-sitter only, in which each
 * construct below is rewritten byte for byte into C the grammar knows, and
 * the spans of what later passes look at (GapSpans: blanked attributes,
 * computed gotos, statement macros). Everything else reads the
 * original bytes: a node's range in the tree is a range of the original
 * text, so the output copies what the user wrote (`_Thread_local`, not what
 * the parser saw), and libclang parses the original file.
 * Invariants: only whole tokens outside comments, string and character
 * literals and preprocessor lines change; newlines never move.
 *
 * tree-sitter-c 0.23.6 (the newest ABI-14 grammar, see README) rejects, in
 * valid C:
 *  - `_Thread_local` (C11; it knows `thread_local` and `__thread`): read as
 *    `__thread`.
 *  - `_Atomic(T)`, the type specifier form (C11; it knows the qualifier
 *    `_Atomic T`): read as a macro type `_Atomix(T)`, the shape `async(T)`
 *    has.
 *  - `_Complex`, `_Imaginary`, `__complex__`, `__complex` (C99, GNU): read as
 *    the qualifier `volatile`, which stands where they may; <complex.h>'s
 *    macros `complex` and `imaginary` next to `float`, `double` or `long`
 *    (and not where a variable of that name would be) as the qualifiers
 *    of their lengths, `_Atomic` and `_Noreturn`; GNU's `__const`,
 *    `__const__`, `__volatile__` and `__signed` as qualifiers of their
 *    lengths (gnu_keywords); `__real__` and
 *    `__imag__` (GNU) as a unary `*`, which may be assigned through.
 *  - type arguments of `va_arg`, `__builtin_va_arg`, `__builtin_offsetof`
 *    and `__builtin_types_compatible_p` (the grammar takes a lone word there,
 *    not `char *`; `offsetof` it knows): read as `0`. Nothing in a type
 *    name is translated, so the translator need not see it.
 *  - `case LO ... HI:` (GNU case ranges): read as `case LO + HI:`.
 *  - `__attribute__((...))` after a declarator (`int x __attribute__((
 *    aligned(16)));`; the grammar takes attributes before the type and after
 *    a function's parameters only): blanked, and its span recorded, so that
 *    the frame field of a variable that lives across an await keeps it
 *    (layout.c), but for a cleanup, which the copy that runs it keeps
 *    (lower.c).
 *  - an attribute standing as a statement (`__attribute__((fallthrough));`,
 *    or after a label): read as a comment before the `;`, which the
 *    lowering copies where it stands.
 *  - computed goto, `goto *p;` (GNU): read as the expression statement
 *    `*p;`, its `goto` recorded, so that parse.c refuses it inside an async
 *    function (the lowering cannot see where it jumps) and the rest of the
 *    file keeps it.
 *  - `_Pragma("...")` (C99), which the grammar takes nowhere: read as a
 *    comment of its length, so that the lowering copies it where it stands,
 *    as it does a comment or a `#pragma` line.
 *  - a macro call standing as a statement without a `;` (`X(CASE)` that
 *    expands to cases, before a `}`, a directive or a statement keyword):
 *    read as a comment, which the lowering copies where it stands, and
 *    recorded, so that parse.c refuses one inside an async function (the
 *    translator cannot see what it expands to).
 *  - typeof of an expression around one variable, `typeof(*p)`,
 *    `typeof(p->next)` (the grammar wants a type there): masked down to
 *    the variable, `typeof( p)`, which it reads as typeof of a name.
 *  - an unnamed bit-field, `unsigned : 4;` (the grammar wants a name):
 *    its `: 4` blanked, leaving a field without a declarator, which it
 *    takes. Only the declaration's sole field: in a list (`a : 3, : 0`)
 *    it still does not parse.
 * `_BitInt(N)` (C23), and GNU's `__volatile` and `__signed__`, still do
 * not parse; the error points at them.
 */
#include "compiler.h"

#include <string.h>

typedef struct Lexer {
    const char *s; /* the original text */
    char *out;     /* the copy being masked */
    uint32_t n;    /* bytes */
    uint32_t i;    /* the next byte to read */
} Lexer;

static bool is_ident_start(char c) { return c_ident_char(c) && !(c >= '0' && c <= '9'); }

/* Blanks out[from, to) but its newlines; `first`, if not 0, goes in its first byte. */
static void blank(Lexer *lx, uint32_t from, uint32_t to, char first)
{
    for (uint32_t k = from; k < to; k++)
        if (lx->s[k] != '\n')
            lx->out[k] = ' ';
    if (first && from < to)
        lx->out[from] = first;
}

/* Turns out[from, to) (at least 4 bytes) into a comment, its newlines
 * kept: the lowering copies a comment node, which holds the original text,
 * where it stands. */
static void as_comment(Lexer *lx, uint32_t from, uint32_t to)
{
    blank(lx, from, to, '/');
    lx->out[from + 1] = '*';
    lx->out[to - 2] = '*';
    lx->out[to - 1] = '/';
}

/* Writes `with` over the word at `at` (of length len >= strlen(with)),
 * padding with spaces. */
static void rewrite(Lexer *lx, uint32_t at, uint32_t len, const char *with)
{
    size_t w = strlen(with);
    memcpy(lx->out + at, with, w);
    memset(lx->out + at + w, ' ', len - w);
}

/* Skips whitespace, comments and backslash-newlines from lx->i. */
static void skip_space(Lexer *lx)
{
    while (lx->i < lx->n) {
        char c = lx->s[lx->i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
            lx->i++;
        } else if (c == '\\' && lx->i + 1 < lx->n && lx->s[lx->i + 1] == '\n') {
            lx->i += 2;
        } else if (c == '/' && lx->i + 1 < lx->n && lx->s[lx->i + 1] == '/') {
            while (lx->i < lx->n && lx->s[lx->i] != '\n')
                lx->i += lx->s[lx->i] == '\\' && lx->i + 1 < lx->n ? 2 : 1;
        } else if (c == '/' && lx->i + 1 < lx->n && lx->s[lx->i + 1] == '*') {
            const char *end = strstr(lx->s + lx->i + 2, "*/");
            lx->i = end ? (uint32_t)(end - lx->s) + 2 : lx->n;
        } else {
            return;
        }
    }
}

/* Whether byte `at` begins its line but for blanks (a preprocessor line's `#`). */
static bool at_line_start(const Lexer *lx, uint32_t at)
{
    while (at > 0 && (lx->s[at - 1] == ' ' || lx->s[at - 1] == '\t'))
        at--;
    return at == 0 || lx->s[at - 1] == '\n';
}

/* Where a comment starting at `at` ends (past its end), in text[0, len). */
static uint32_t comment_end(const char *text, uint32_t len, uint32_t at)
{
    if (text[at + 1] == '/') {
        while (at < len && text[at] != '\n')
            at += text[at] == '\\' && at + 1 < len ? 2 : 1;
        return at;
    }
    const char *end = strstr(text + at + 2, "*/");
    return end ? (uint32_t)(end - text) + 2 : len;
}

/* Token kinds the masker tells apart. */
typedef enum Tok { T_END, T_WORD, T_OPEN, T_CLOSE, T_COMMA, T_COLON, T_ELLIPSIS, T_BRACKET_CLOSE, T_OTHER } Tok;

/* Reads the next token; its start and end are left in *from and lx->i. */
static Tok next(Lexer *lx, uint32_t *from)
{
    for (;;) {
        skip_space(lx);
        *from = lx->i;
        if (lx->i >= lx->n)
            return T_END;
        char c = lx->s[lx->i];
        if (c == '#' && at_line_start(lx, lx->i)) {
            /* A directive, to its unescaped newline: left as it is (the
             * grammar keeps macro bodies as text). A comment in it may span
             * lines; the newline after the comment still ends it. */
            while (lx->i < lx->n && lx->s[lx->i] != '\n') {
                if (lx->s[lx->i] == '/' && lx->i + 1 < lx->n && lx->s[lx->i + 1] == '*') {
                    lx->i = comment_end(lx->s, lx->n, lx->i);
                    continue;
                }
                lx->i += lx->s[lx->i] == '\\' && lx->i + 1 < lx->n ? 2 : 1;
            }
            continue;
        }
        if (is_ident_start(c)) {
            while (lx->i < lx->n && c_ident_char(lx->s[lx->i]))
                lx->i++;
            return T_WORD;
        }
        if (c == '"' || c == '\'') {
            for (lx->i++; lx->i < lx->n && lx->s[lx->i] != c && lx->s[lx->i] != '\n'; lx->i++)
                if (lx->s[lx->i] == '\\' && lx->i + 1 < lx->n)
                    lx->i++;
            if (lx->i < lx->n && lx->s[lx->i] == c)
                lx->i++;
            return T_OTHER;
        }
        if ((c >= '0' && c <= '9') || (c == '.' && lx->i + 1 < lx->n && lx->s[lx->i + 1] >= '0' && lx->s[lx->i + 1] <= '9')) {
            /* A preprocessing number: digits, letters, dots, and signs after an exponent. */
            for (lx->i++; lx->i < lx->n; lx->i++) {
                char d = lx->s[lx->i];
                if ((d == '+' || d == '-') && strchr("eEpP", lx->s[lx->i - 1]))
                    continue;
                if (!c_ident_char(d) && d != '.')
                    break;
            }
            return T_OTHER;
        }
        lx->i++;
        switch (c) {
        case '(': return T_OPEN;
        case ')': return T_CLOSE;
        case ',': return T_COMMA;
        case ':': return T_COLON;
        case ']': return T_BRACKET_CLOSE;
        case '.':
            if (lx->i + 1 < lx->n && lx->s[lx->i] == '.' && lx->s[lx->i + 1] == '.') {
                lx->i += 2;
                return T_ELLIPSIS;
            }
            return T_OTHER;
        default: return T_OTHER;
        }
    }
}

/* Whether the word starting at `from` is w (all of it). */
static bool word_is(const Lexer *lx, uint32_t from, const char *w)
{
    size_t len = strlen(w);
    return from + len <= lx->n && memcmp(lx->s + from, w, len) == 0 &&
           (from + len == lx->n || !c_ident_char(lx->s[from + len]));
}

/* Whether the word at `from` (just read; `prev`: the word before it, or
 * UINT32_MAX) is <complex.h>'s `complex` or `imaginary` (macros for
 * _Complex and _Imaginary): it stands next to `float`, `double` or `long`
 * in a type, and no declarator follows it where one would if it were a
 * variable's name (`double complex;`, `double complex = 1.0;` in a file
 * without <complex.h>). */
static bool complex_macro(Lexer *lx, uint32_t from, uint32_t prev)
{
    if (!word_is(lx, from, "complex") && !word_is(lx, from, "imaginary"))
        return false;
    static const char *const floats[] = {"float", "double", "long"};
    uint32_t save = lx->i, at;
    Tok t = next(lx, &at);
    bool before = false, after = false;
    for (size_t k = 0; k < sizeof floats / sizeof *floats; k++) {
        before |= prev != UINT32_MAX && word_is(lx, prev, floats[k]);
        after |= t == T_WORD && word_is(lx, at, floats[k]);
    }
    bool declarator_follows = t == T_WORD || t == T_OPEN || t == T_CLOSE ||
                              (t == T_OTHER && lx->s[at] == '*');
    lx->i = save;
    return after || (before && declarator_follows);
}

/* GNU's alternate spellings of qualifiers and `signed` that the grammar
 * does not know, each with a qualifier it knows of the same length (there
 * is none of 10 bytes for `__volatile` and `__signed__`). */
static const char *const gnu_keywords[][2] = {
    {"__const", "_Atomic"},
    {"__const__", "_Noreturn"},
    {"__volatile__", "__restrict__"},
    {"__signed", "restrict"},
};

/* Rewrites the word at `from` (wlen bytes) if it is one of gnu_keywords;
 * returns whether it was. */
static bool gnu_keyword(Lexer *lx, uint32_t from, uint32_t wlen)
{
    for (size_t k = 0; k < sizeof gnu_keywords / sizeof *gnu_keywords; k++)
        if (word_is(lx, from, gnu_keywords[k][0])) {
            rewrite(lx, from, wlen, gnu_keywords[k][1]);
            return true;
        }
    return false;
}

/* After `typeof`, `__typeof__` or `__typeof` (just read, `(` next): an
 * operand that is an expression around one variable (`*p`, `p->next`,
 * `a[0]`, `&x`), which the grammar cannot read as a type, is masked down
 * to that variable's name, which it reads as typeof(x) (the translator
 * then renames it, and copies the rest of the operand as written). An
 * operand with a keyword, another name, or nothing but the name is left as
 * it is. Nothing is consumed. */
static bool is_keyword(const Lexer *lx, uint32_t from);

static void mask_typeof_operand(Lexer *lx)
{
    uint32_t save = lx->i, at, open = 0, name = 0, name_end = 0, close = 0;
    int depth = 0, names = 0;
    bool other = false, member = false;
    Tok t;
    while ((t = next(lx, &at)) != T_END) {
        if (t == T_OPEN && depth++ == 0) {
            open = at;
            continue;
        }
        if (t == T_CLOSE && --depth == 0) {
            close = at;
            break;
        }
        if (t == T_WORD && !member) {
            if (is_keyword(lx, at))
                names = 2; /* a type, a cast, sizeof: leave it */
            name = at;
            name_end = lx->i;
            names++;
        } else {
            other = true;
        }
        /* A name after `.` or `->` is a member, not a variable. */
        member = t == T_OTHER && (lx->s[at] == '.' || (lx->s[at] == '>' && at > 0 && lx->s[at - 1] == '-'));
    }
    lx->i = save;
    if (t == T_END || names != 1 || !other)
        return;
    for (uint32_t k = open + 1; k < close; k++)
        if ((k < name || k >= name_end) && lx->s[k] != '\n')
            lx->out[k] = ' ';
}

/* Whether the next token (not consumed) is `(`. */
static bool open_follows(Lexer *lx)
{
    uint32_t save = lx->i, from;
    bool open = next(lx, &from) == T_OPEN;
    lx->i = save;
    return open;
}

/* After the word of a builtin that takes type arguments, with `(` next:
 * blanks to `0` each argument whose bit is set in `types` (bit 0: the
 * first). */
static void mask_type_args(Lexer *lx, unsigned types)
{
    uint32_t from;
    next(lx, &from); /* ( */
    int depth = 0, arg = 0;
    uint32_t start = UINT32_MAX, end = 0;
    for (;;) {
        Tok t = next(lx, &from);
        if (t == T_END)
            return;
        if (depth == 0 && (t == T_COMMA || t == T_CLOSE)) {
            if ((types >> arg & 1) && start != UINT32_MAX)
                blank(lx, start, end, '0');
            if (t == T_CLOSE)
                return;
            arg++;
            start = UINT32_MAX;
            continue;
        }
        depth += t == T_OPEN ? 1 : t == T_CLOSE ? -1 : 0;
        if (start == UINT32_MAX)
            start = from;
        end = lx->i;
    }
}

/* With `(` next: reads through the matching `)`; returns the end. */
static uint32_t skip_parens(Lexer *lx)
{
    int depth = 0;
    uint32_t at;
    Tok t;
    do {
        t = next(lx, &at);
        depth += t == T_OPEN ? 1 : t == T_CLOSE ? -1 : 0;
    } while (t != T_END && depth > 0);
    return lx->i;
}

/* Words that begin a statement. */
static const char *const statement_words[] = {
    "case", "default", "return", "if", "for", "while", "do", "switch", "break", "continue",
    "goto", NULL,
};

/* Whether what follows lx->i cannot continue a statement that ended there
 * without a `;`: a `}`, a directive, the end, or a word that begins a
 * statement. (A type macro, `T(x) name;`, is followed by a name.) */
static bool statement_cannot_go_on(Lexer *lx)
{
    uint32_t save = lx->i, from;
    skip_space(lx);
    bool ends = lx->i >= lx->n || lx->s[lx->i] == '}' ||
                (lx->s[lx->i] == '#' && at_line_start(lx, lx->i));
    if (!ends && next(lx, &from) == T_WORD)
        for (int k = 0; statement_words[k] && !ends; k++)
            ends = word_is(lx, from, statement_words[k]);
    lx->i = save;
    return ends;
}

/* Words after which `__attribute__` is not after a declarator. */
static const char *const keywords[] = {
    "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else",
    "enum", "extern", "float", "for", "goto", "if", "inline", "int", "long", "register",
    "restrict", "return", "short", "signed", "sizeof", "static", "struct", "switch",
    "typedef", "union", "unsigned", "void", "volatile", "while", "_Bool", "_Noreturn",
    "_Atomic", "_Thread_local", "__thread", "__inline", "__inline__", "__restrict",
    "__restrict__", "__extension__", "bool", NULL,
};

static bool is_keyword(const Lexer *lx, uint32_t from)
{
    for (int k = 0; keywords[k]; k++)
        if (word_is(lx, from, keywords[k]))
            return true;
    return false;
}

/* Records [from, to) on spans. */
static void record(Vec *spans, uint32_t from, uint32_t to)
{
    uint32_t *span = xmalloc(2 * sizeof *span);
    span[0] = from;
    span[1] = to;
    vec_push(spans, span);
}

/* Whether only blanks or a comment stand between at and the end of its line. */
static bool ends_line(Lexer *lx, uint32_t at)
{
    uint32_t save = lx->i;
    lx->i = at;
    while (lx->i < lx->n && (lx->s[lx->i] == ' ' || lx->s[lx->i] == '\t'))
        lx->i++;
    if (lx->i + 1 < lx->n && lx->s[lx->i] == '/' && (lx->s[lx->i + 1] == '/' || lx->s[lx->i + 1] == '*'))
        skip_space(lx); /* a comment, to its end (and past the newline) */
    bool ends = lx->i >= lx->n || lx->s[lx->i] == '\n' || lx->s[lx->i] == '\r' ||
                (lx->i > at && lx->s[lx->i - 1] == '\n');
    lx->i = save;
    return ends;
}

/* The word at `from`, at the start of a statement on a line of its own, is a
 * macro call without a `;` that nothing can continue: masks it as a
 * comment and returns true (lx->i past its `)`); else changes nothing. */
static bool statement_macro(Lexer *lx, uint32_t from, GapSpans *out)
{
    if (is_keyword(lx, from) || !at_line_start(lx, from) || !open_follows(lx))
        return false;
    uint32_t save = lx->i, end = skip_parens(lx);
    if (end - from < 4 || !ends_line(lx, end) || !statement_cannot_go_on(lx)) {
        lx->i = save;
        return false;
    }
    as_comment(lx, from, end);
    record(&out->macros, from, end);
    return true;
}

/* Whether the word at `at` is `struct` or `union`. */
static bool struct_word(const Lexer *lx, uint32_t at)
{
    return word_is(lx, at, "struct") || word_is(lx, at, "union");
}

/* Type words a bit-field may be declared with, after which a `:` means the
 * field has no name. */
static const char *const bit_field_types[] = {
    "char", "short", "int", "long", "signed", "unsigned", "_Bool", "bool", "int8_t", "int16_t",
    "int32_t", "int64_t", "uint8_t", "uint16_t", "uint32_t", "uint64_t", "size_t", NULL,
};

/* At a field's `:` (lx->i past it), after the word at `last`: if the
 * field has no name (`unsigned : 4;`: the word is a type, or the field's
 * only word, or a tag after `enum`), blanks the `:` and its width up to the
 * `;` and returns true, leaving lx->i at the `;`. A list (`a : 3, : 0`) is
 * left alone. */
static bool unnamed_bit_field(Lexer *lx, uint32_t last, int words, uint32_t before_last)
{
    uint32_t colon = lx->i - 1, save = lx->i, at;
    bool type = words == 1 || (words > 1 && word_is(lx, before_last, "enum"));
    for (int k = 0; bit_field_types[k] && !type; k++)
        type = word_is(lx, last, bit_field_types[k]);
    if (!type)
        return false;
    int depth = 0;
    for (Tok t; (t = next(lx, &at)) != T_END;) {
        if (depth == 0 && (t == T_COMMA || (t == T_OTHER && lx->s[at] == '}')))
            break;
        if (depth == 0 && t == T_OTHER && lx->s[at] == ';') {
            blank(lx, colon, at, 0);
            lx->i = at;
            return true;
        }
        depth += t == T_OPEN ? 1 : t == T_CLOSE ? -1 : 0;
    }
    lx->i = save;
    return false;
}

char *gaps_mask(const char *text, uint32_t len, GapSpans *out)
{
    Lexer lx = {text, xmalloc((size_t)len + 1), len, 0};
    memcpy(lx.out, text, len);
    lx.out[len] = '\0';
    Tok prev = T_OTHER;   /* the last token's kind */
    uint32_t prev_from = 0; /* and start (the word, when it is one) */
    uint32_t prev_end = 0;
    bool in_case = false; /* between `case` and its `:` */
    int depth = 0;        /* parentheses, for in_case */
    Tok prev2 = T_OTHER;  /* the token before prev */
    uint32_t prev2_from = 0;
    /* What each open brace opens: 'b' a block, 'i' an initialiser (after
     * `=`, or inside one after `,` or `{`), 'r' a struct or union's fields;
     * deeper than MAX_BRACES count as blocks. */
    enum { MAX_BRACES = 256 };
    char brace_kind[MAX_BRACES];
    int braces = 0;
    int field_words = 0;     /* words of the field declaration being read */
    uint32_t before_last = 0; /* the word before its last, if field_words > 1 */
    uint32_t from;
    Tok t;
    for (; (t = next(&lx, &from)) != T_END;
         prev2 = prev, prev2_from = prev_from, prev = t, prev_from = from,
         prev_end = lx.i) {
        char kind = braces > 0 && braces <= MAX_BRACES ? brace_kind[braces - 1] : 'b';
        bool in_init = kind == 'i';
        if (kind == 'r' && t == T_WORD) {
            if (++field_words > 1)
                before_last = prev_from;
        } else if (kind == 'r' && t == T_OTHER && lx.i == from + 1 && text[from] == ';') {
            field_words = 0;
        }
        bool stmt_start = prev == T_COLON || (prev == T_OTHER && prev_end == prev_from + 1 &&
                                              (text[prev_from] == ';' || text[prev_from] == '}' ||
                                               (text[prev_from] == '{' && !in_init)));
        if (t == T_OTHER && lx.i == from + 1 && (text[from] == '{' || text[from] == '}')) {
            field_words = 0;
            if (text[from] == '}') {
                braces -= braces > 0;
            } else {
                bool init = (prev == T_OTHER && prev_end == prev_from + 1 && text[prev_from] == '=') ||
                            (in_init && (prev == T_COMMA || (prev == T_OTHER && text[prev_from] == '{')));
                /* `struct {` or `struct tag {` */
                bool rec = prev == T_WORD &&
                           (struct_word(&lx, prev_from) || (prev2 == T_WORD && struct_word(&lx, prev2_from)));
                if (braces < MAX_BRACES)
                    brace_kind[braces] = init ? 'i' : rec ? 'r' : 'b';
                braces++;
            }
        } else if (t == T_WORD && stmt_start && text[from] != '_' && statement_macro(&lx, from, out)) {
            t = T_CLOSE;
        } else if (t == T_OPEN) {
            depth++;
        } else if (t == T_CLOSE) {
            depth--;
        } else if (t == T_COLON && kind == 'r' && depth == 0 && prev == T_WORD &&
                   unnamed_bit_field(&lx, prev_from, field_words, before_last)) {
            t = T_OTHER;
        } else if (t == T_COLON && in_case && depth == 0) {
            in_case = false;
        } else if (t == T_ELLIPSIS && in_case && depth == 0) {
            rewrite(&lx, from, 3, "+");
        } else if (t == T_WORD && text[from] == 'g' && word_is(&lx, from, "goto")) {
            uint32_t save = lx.i, at;
            if (next(&lx, &at) == T_OTHER && text[at] == '*') {
                blank(&lx, from, save, 0);
                record(&out->gotos, from, save);
            }
            lx.i = save;
        } else if (t == T_WORD && (text[from] == 'c' || text[from] == 'i') &&
                   complex_macro(&lx, from, prev == T_WORD ? prev_from : UINT32_MAX)) {
            rewrite(&lx, from, lx.i - from, text[from] == 'c' ? "_Atomic" : "_Noreturn");
        } else if (t == T_WORD && (text[from] == 't' || text[from] == '_') &&
                   (word_is(&lx, from, "typeof") || word_is(&lx, from, "__typeof__") ||
                    word_is(&lx, from, "__typeof")) &&
                   open_follows(&lx)) {
            mask_typeof_operand(&lx);
        } else if (t == T_WORD && text[from] == 'c' && word_is(&lx, from, "case")) {
            in_case = true;
            depth = 0;
        } else if (t == T_WORD && text[from] == 'v' && word_is(&lx, from, "va_arg") && open_follows(&lx)) {
            mask_type_args(&lx, 2);
        } else if (t == T_WORD && text[from] == '_') {
            uint32_t wlen = lx.i - from;
            if (word_is(&lx, from, "_Thread_local")) {
                rewrite(&lx, from, wlen, "__thread");
            } else if (word_is(&lx, from, "_Complex") || word_is(&lx, from, "_Imaginary") ||
                       word_is(&lx, from, "__complex__") || word_is(&lx, from, "__complex")) {
                rewrite(&lx, from, wlen, "volatile");
            } else if (gnu_keyword(&lx, from, wlen)) {
                /* rewritten by gnu_keyword */
            } else if (word_is(&lx, from, "__real__") || word_is(&lx, from, "__imag__")) {
                rewrite(&lx, from, wlen, "*");
            } else if (word_is(&lx, from, "_Atomic") && open_follows(&lx)) {
                rewrite(&lx, from, wlen, "_Atomix");
            } else if (word_is(&lx, from, "_Pragma") && open_follows(&lx)) {
                /* As a comment, which the lowering copies where it stands. */
                as_comment(&lx, from, skip_parens(&lx));
            } else if (word_is(&lx, from, "__builtin_va_arg") && open_follows(&lx)) {
                mask_type_args(&lx, 2);
            } else if (word_is(&lx, from, "__builtin_offsetof") && open_follows(&lx)) {
                mask_type_args(&lx, 1);
            } else if (word_is(&lx, from, "__builtin_types_compatible_p") && open_follows(&lx)) {
                mask_type_args(&lx, 3);
            } else if ((word_is(&lx, from, "__attribute__") || word_is(&lx, from, "__attribute")) &&
                       open_follows(&lx)) {
                /* After a declarator: a `]`, a word that is no keyword, or
                 * an attribute blanked already (`x __attribute__((a))
                 * __attribute__((b))`). */
                bool after = prev == T_BRACKET_CLOSE ||
                             (prev == T_WORD && !is_keyword(&lx, prev_from)) ||
                             (out->attrs.len && ((uint32_t *)out->attrs.items[out->attrs.len - 1])[1] == prev_end);
                /* A statement of its own (`__attribute__((fallthrough));`,
                 * a label's): read as a comment before an empty statement,
                 * which the lowering copies where it stands. */
                if (!after && stmt_start) {
                    uint32_t end = skip_parens(&lx), semi;
                    uint32_t save = lx.i;
                    bool alone = next(&lx, &semi) == T_OTHER && text[semi] == ';';
                    lx.i = save;
                    if (alone && end - from >= 4)
                        as_comment(&lx, from, end);
                    t = T_CLOSE;
                    continue;
                }
                if (!after)
                    continue;
                blank(&lx, from, skip_parens(&lx), 0);
                record(&out->attrs, from, lx.i);
                t = T_CLOSE;
            } else if (stmt_start && statement_macro(&lx, from, out)) {
                t = T_CLOSE;
            }
        }
    }
    return lx.out;
}

/* A conditional directive line of the file. */
typedef struct Cond {
    uint32_t at, end; /* the line, from its '#' to its newline */
    int group;        /* which #if ... #endif it belongs to */
} Cond;

void gaps_keep_active(char *text, uint32_t len, const Vec *inactive)
{
    /* The conditional directives, grouped by #if ... #endif. A group that
     * tests ASYNCC_LOWERED is kept whole: clang reads the sync reading,
     * where it is not defined, but the translation is compiled with it. */
    Lexer lx = {text, text, len, 0};
    Vec conds = {0};
    int *stack = NULL, depth = 0, groups = 0;
    bool *keep = NULL;
    static const char *const opens[] = {"if", "ifdef", "ifndef", NULL};
    static const char *const others[] = {"elif", "elifdef", "elifndef", "else", "endif", NULL};
    for (;;) {
        skip_space(&lx);
        if (lx.i >= lx.n)
            break;
        uint32_t at = lx.i;
        if (text[at] != '#' || !at_line_start(&lx, at)) {
            uint32_t from;
            next(&lx, &from);
            continue;
        }
        uint32_t w = at + 1;
        while (w < len && (text[w] == ' ' || text[w] == '\t'))
            w++;
        int kind = 0; /* 1 opens a group, 2 continues or ends one */
        for (const char *const *c = opens; *c && !kind; c++)
            kind = word_is(&lx, w, *c) ? 1 : 0;
        for (const char *const *c = others; *c && !kind; c++)
            kind = word_is(&lx, w, *c) ? 2 : 0;
        /* The directive runs to its unescaped newline, past comments (a
         * comment's own newlines included, not the one after it). */
        bool lowered = false;
        while (lx.i < lx.n && text[lx.i] != '\n') {
            if (text[lx.i] == '/' && lx.i + 1 < lx.n && (text[lx.i + 1] == '*' || text[lx.i + 1] == '/')) {
                lx.i = comment_end(text, len, lx.i);
                continue;
            }
            if (word_is(&lx, lx.i, "ASYNCC_LOWERED") && (lx.i == 0 || !c_ident_char(text[lx.i - 1])))
                lowered = true;
            lx.i += text[lx.i] == '\\' && lx.i + 1 < lx.n ? 2 : 1;
        }
        if (!kind)
            continue;
        if (kind == 1) {
            stack = xrealloc(stack, (size_t)(depth + 1) * sizeof *stack);
            keep = xrealloc(keep, (size_t)(groups + 1) * sizeof *keep);
            keep[groups] = false;
            stack[depth++] = groups++;
        }
        if (depth == 0)
            continue; /* an #endif without its #if: clang has said so */
        int g = stack[depth - 1];
        keep[g] |= lowered && !word_is(&lx, w, "else") && !word_is(&lx, w, "endif");
        Cond *c = xmalloc(sizeof *c);
        *c = (Cond){at, lx.i, g};
        vec_push(&conds, c);
        if (word_is(&lx, w, "endif"))
            depth--;
    }
    /* A group's span: from its first directive to the end of its last. */
    for (int i = 0; i < inactive->len; i++) {
        const uint32_t *r = inactive->items[i];
        bool kept = false;
        for (int k = 0; k < conds.len && !kept; k++) {
            const Cond *open = conds.items[k];
            if (!keep[open->group])
                continue;
            for (int m = conds.len - 1; m >= k && !kept; m--) {
                const Cond *close = conds.items[m];
                kept = close->group == open->group && r[0] >= open->at && r[0] < close->end;
            }
        }
        if (!kept)
            blank(&lx, r[0], r[1] < len ? r[1] : len, 0);
    }
    for (int k = 0; k < conds.len; k++) {
        const Cond *c = conds.items[k];
        if (!keep[c->group])
            blank(&lx, c->at, c->end, 0);
        free(conds.items[k]);
    }
    free(conds.items);
    free(stack);
    free(keep);
}

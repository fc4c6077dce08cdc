/*
 * sema.c: semantics (libclang).
 *
 * Input: the source bytes and the user's -I/-D/-std flags. libclang parses the
 * header's sync reading, in which `async(T)` is `T` carrying the attribute
 * annotate("asyncc.async") and `await(e)` is `(e)`: ordinary C.
 * Output: a Sema with
 *  - every function declared async anywhere in the translation unit (headers
 *    included), with its result and parameter types: how an await of a
 *    function declared in another file is typed;
 *  - which such functions expose a complete `struct NAME__frame` (their frame
 *    can be embedded by value, as asyncc.h does for ac_yield);
 *  - for the bodies of the file's async functions: the type (spelling, size,
 *    alignment, variably-modified or not) of each variable by the byte offset
 *    of its name, and of each conditional expression, compound literal, call
 *    and member access by where it starts.
 * Rejects: anything clang reports as an error; those diagnostics are printed
 * in asyncc's format and translation stops.
 */
#include "compiler.h"

#include <clang-c/Index.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* `end` of conditional-expression entries; UINT32_MAX marks variables. */
#define COND_KEY (UINT32_MAX - 1)

/* `end` of expression entries: the outermost expression starting there. */
#define EXPR_KEY (UINT32_MAX - 2)

/* `end` of compound literal, call and member access entries. */
#define LITERAL_KEY (UINT32_MAX - 3)
#define CALL_KEY (UINT32_MAX - 4)
#define MEMBER_KEY (UINT32_MAX - 5)

typedef struct RangeType {
    uint32_t start, end; /* where it starts in the main file; a *_KEY kind */
    uint32_t seq;        /* visiting order: outer expressions come first */
    bool have_info;      /* info computed (lazily: most are never asked) */
    CXType type;         /* its type */
    TypeInfo info;       /* its type, described */
} RangeType;

struct Sema {
    CXIndex index;          /* libclang index */
    CXTranslationUnit tu;   /* the parsed sync reading */
    Unit *unit;             /* the unit being translated */
    Vec ext;                /* ExtFn* */
    Vec frames;             /* FrameInfo*: complete struct NAME__frame types */
    Vec blocking;           /* char*: functions declared ac_blocks(T) */
    Vec decls;              /* SemaDecl*: variables declared in function bodies */
    Vec jumps;              /* SemaJump*: returns and continues from macros */
    Vec refs;               /* SemaRef*: uses of locals from macro bodies */
    Vec uses;               /* SemaRef*: the other names resolved (in the file) */
    Vec inactive;           /* uint32_t[2]: code the preprocessor skipped */
    Vec spelled;            /* SemaSpelled*: macro arguments made strings or pasted */
    Vec macros;             /* MacroDef*: function-like macro definitions seen so far */
    RangeType *ranges;      /* expression and variable types */
    size_t nranges, cap;    /* used, allocated */
    bool sorted;            /* ranges sorted by start */
    CXFile main_file;       /* the translated file, in tu */
    Vec includes;           /* Inclusion*: files #included, with where in the file */
    const char *cur_fn;     /* the async function whose body visit_body is in */
    Vec func_names;         /* char*: async functions whose bodies use __func__ & co */
    Vec cleanups;           /* uint32_t*: where variables with a cleanup attribute are named */
};

/* A file the translation unit includes, and the byte of the #include
 * directive in the translated file that brought it in (directly or through
 * other headers). */
typedef struct Inclusion {
    CXFile file;
    uint32_t at;
} Inclusion;

typedef struct FrameInfo {
    char *fn;        /* NAME of struct NAME__frame */
    int64_t size;    /* sizeof */
    int64_t align;   /* alignof */
} FrameInfo;

static char *take(CXString s)
{
    char *r = xstrdup(clang_getCString(s) ? clang_getCString(s) : "");
    clang_disposeString(s);
    return r;
}

static bool const_member(CXType t);

static enum CXVisitorResult const_field(CXCursor field, CXClientData data)
{
    CXType ft = clang_getCursorType(field);
    if (clang_isConstQualifiedType(ft) || const_member(ft)) {
        *(bool *)data = true;
        return CXVisit_Break;
    }
    return CXVisit_Continue;
}

/* Whether an object of type t has a const member somewhere (a struct or
 * union with a const field, in a nested one, or an array of such): C then
 * refuses to assign it as a whole, though it may be initialised. */
static bool const_member(CXType t)
{
    t = clang_getCanonicalType(t);
    while (t.kind == CXType_ConstantArray || t.kind == CXType_IncompleteArray)
        t = clang_getCanonicalType(clang_getArrayElementType(t));
    if (t.kind != CXType_Record)
        return false;
    bool found = false;
    clang_Type_visitFields(t, const_field, &found);
    return found;
}

static TypeInfo type_info(CXType t)
{
    TypeInfo ti;
    ti.spelling = take(clang_getTypeSpelling(t));
    ti.canonical = take(clang_getTypeSpelling(clang_getCanonicalType(t)));
    long long sz = clang_Type_getSizeOf(t), al = clang_Type_getAlignOf(t);
    ti.size = sz < 0 ? -1 : sz;
    ti.align = al < 0 ? -1 : al;
    ti.vla = clang_getCanonicalType(t).kind == CXType_VariableArray;
    ti.const_member = const_member(t);
    /* An array of VLAs, or a pointer is fine; only the object itself matters. */
    return ti;
}

static void add_range(Sema *s, uint32_t start, uint32_t end, CXType t)
{
    if (s->nranges == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 256;
        s->ranges = xrealloc(s->ranges, s->cap * sizeof *s->ranges);
    }
    s->ranges[s->nranges] = (RangeType){.start = start, .end = end, .seq = (uint32_t)s->nranges,
                                        .type = t};
    s->nranges++;
    s->sorted = false;
}

/* The byte offset in the translated file of `loc`: where a macro argument
 * was written, or where a macro was expanded (await(...) is a macro in the
 * sync reading, so much of an async body is macro arguments). */
static bool offset_in_main(Sema *s, CXSourceLocation loc, uint32_t *off)
{
    CXFile f;
    unsigned o;
    clang_getFileLocation(loc, &f, NULL, NULL, &o);
    if (!f || !s->main_file || !clang_File_isEqual(f, s->main_file))
        return false;
    *off = o;
    return true;
}

bool sema_is_blocking(Sema *s, const char *name)
{
    for (int i = 0; i < s->blocking.len; i++)
        if (strcmp(s->blocking.items[i], name) == 0)
            return true;
    return false;
}

/* Records types inside an async function's body. */
typedef struct Annotations {
    bool async;    /* annotate("asyncc.async") */
    bool blocking; /* annotate("asyncc.blocking") */
} Annotations;

static enum CXChildVisitResult find_annotate(CXCursor c, CXCursor parent, CXClientData data)
{
    (void)parent;
    Annotations *a = data;
    if (clang_getCursorKind(c) == CXCursor_AnnotateAttr) {
        char *s = take(clang_getCursorSpelling(c));
        if (strcmp(s, "asyncc.async") == 0)
            a->async = true;
        else if (strcmp(s, "asyncc.blocking") == 0)
            a->blocking = true;
        free(s);
    }
    return CXChildVisit_Continue;
}

static Annotations annotations(CXCursor c)
{
    Annotations a = {0};
    clang_visitChildren(c, find_annotate, &a);
    return a;
}

static void record_async(Sema *s, CXCursor c);

/* Whether the file has the identifier or keyword `word` at byte `at`. */
static bool spelled_at(Sema *s, uint32_t at, const char *word)
{
    const Source *src = &s->unit->src;
    size_t n = strlen(word);
    if (at > src->len || src->len - at < n || memcmp(src->text + at, word, n) != 0)
        return false;
    char next = at + n < src->len ? src->text[at + n] : ' ';
    return !(next == '_' || (next >= 'a' && next <= 'z') || (next >= 'A' && next <= 'Z') ||
             (next >= '0' && next <= '9'));
}

static void note_inclusion(CXFile file, CXSourceLocation *stack, unsigned len, CXClientData data)
{
    Sema *s = data;
    uint32_t at;
    if (len > 0 && offset_in_main(s, stack[len - 1], &at)) {
        Inclusion *inc = xmalloc(sizeof *inc);
        inc->file = file;
        inc->at = at;
        vec_push(&s->includes, inc);
    }
}

/* Where the translated file includes `file` (the #include's byte), or
 * UINT32_MAX. */
static uint32_t inclusion_of(Sema *s, CXFile file)
{
    for (int i = 0; i < s->includes.len; i++) {
        const Inclusion *inc = s->includes.items[i];
        if (clang_File_isEqual(inc->file, file))
            return inc->at;
    }
    return UINT32_MAX;
}

/* A use c, in text that an #include inside a function of the file brings
 * in (an X-macro table of cases, say), of ref, a local variable of that
 * function declared at byte decl: recorded in refs, at the #include, with
 * the included file's name, since the translator cannot rename it there. */
static void record_included_use(Sema *s, CXCursor c, CXCursor ref, uint32_t decl)
{
    CXFile f;
    clang_getFileLocation(clang_getCursorLocation(c), &f, NULL, NULL, NULL);
    uint32_t at = f ? inclusion_of(s, f) : UINT32_MAX;
    if (at == UINT32_MAX)
        return;
    SemaRef *r = xcalloc(1, sizeof *r);
    r->name = take(clang_getCursorSpelling(ref));
    r->decl = decl;
    r->expanded = at;
    r->file = take(clang_getFileName(f));
    vec_push(&s->refs, r);
}

/* __func__, __FUNCTION__ and __PRETTY_FUNCTION__ (assert's message uses
 * the last) reach libclang as a string literal of the function's name,
 * located at the name or at the macro that holds it, where the file has no
 * string. Such a use in an async function's body would read the poll
 * function's name after the translation: noted for the emitter
 * (sema_uses_function_name). A literal "NAME" that a macro brings in looks
 * the same; it only costs three #defines. Returns whether c was one. */
static bool function_name_literal(Sema *s, CXCursor c)
{
    if (!s->cur_fn)
        return false;
    char *lit = take(clang_getCursorSpelling(c));
    size_t n = strlen(s->cur_fn);
    bool named = strlen(lit) == n + 2 && lit[0] == '"' && !strncmp(lit + 1, s->cur_fn, n);
    free(lit);
    uint32_t at;
    if (!named || !offset_in_main(s, clang_getCursorLocation(c), &at) ||
        (at < s->unit->src.len && strchr("\"LuU", s->unit->src.text[at])))
        return false;
    if (!sema_uses_function_name(s, s->cur_fn))
        vec_push(&s->func_names, xstrdup(s->cur_fn));
    return true;
}

bool sema_var_cleanup(Sema *s, uint32_t at)
{
    for (int i = 0; s && i < s->cleanups.len; i++)
        if (*(uint32_t *)s->cleanups.items[i] == at)
            return true;
    return false;
}

bool sema_uses_function_name(Sema *s, const char *fn)
{
    for (int i = 0; i < s->func_names.len; i++)
        if (strcmp(s->func_names.items[i], fn) == 0)
            return true;
    return false;
}

static bool token_is(CXTranslationUnit tu, CXToken t, const char *s);

/* Whether toks[0, n) hold the attribute name cleanup (or __cleanup__)
 * followed by `(`, starting among the first `max` tokens (0: anywhere). */
static bool names_cleanup(CXTranslationUnit tu, const CXToken *toks, unsigned n, unsigned max)
{
    for (unsigned i = 0; i + 1 < n && (!max || i < max); i++)
        if ((token_is(tu, toks[i], "cleanup") || token_is(tu, toks[i], "__cleanup__")) &&
            token_is(tu, toks[i + 1], "("))
            return true;
    return false;
}

/* An attribute that libclang does not expose is visited as an
 * UnexposedAttr, whose extent runs from the attribute's name where it is
 * spelled to the declaration: whether that name is cleanup. When a macro
 * defined in another file brings the attribute in (as glib's g_autoptr(T)
 * does), the extent spans two files and has no tokens: the macro's
 * definition then tells. */
static enum CXChildVisitResult find_cleanup(CXCursor c, CXCursor parent, CXClientData data)
{
    (void)parent;
    bool *found = data;
    if (clang_getCursorKind(c) != CXCursor_UnexposedAttr)
        return CXChildVisit_Continue;
    CXTranslationUnit tu = clang_Cursor_getTranslationUnit(c);
    CXSourceRange extent = clang_getCursorExtent(c);
    CXToken *toks;
    unsigned n;
    clang_tokenize(tu, extent, &toks, &n);
    if (n) {
        *found = names_cleanup(tu, toks, n, 1);
    } else {
        CXCursor use = clang_getCursor(tu, clang_getRangeStart(extent));
        CXCursor def = clang_getCursorKind(use) == CXCursor_MacroExpansion ? clang_getCursorReferenced(use)
                       : clang_getCursorKind(use) == CXCursor_MacroDefinition ? use
                                                                              : clang_getNullCursor();
        if (clang_getCursorKind(def) == CXCursor_MacroDefinition) {
            CXToken *dt;
            unsigned dn;
            clang_tokenize(tu, clang_getCursorExtent(def), &dt, &dn);
            *found = names_cleanup(tu, dt, dn, 0);
            clang_disposeTokens(tu, dt, dn);
        }
    }
    clang_disposeTokens(tu, toks, n);
    return *found ? CXChildVisit_Break : CXChildVisit_Continue;
}

static enum CXChildVisitResult visit_body(CXCursor c, CXCursor parent, CXClientData data)
{
    (void)parent;
    Sema *s = data;
    enum CXCursorKind k = clang_getCursorKind(c);
    if (k == CXCursor_FunctionDecl) {
        /* A prototype inside a body: `async(int) g(void);` */
        if (annotations(c).async)
            record_async(s, c);
        return CXChildVisit_Continue;
    }
    if (k == CXCursor_VarDecl || k == CXCursor_ParmDecl) {
        uint32_t off;
        bool in_file = offset_in_main(s, clang_getCursorLocation(c), &off);
        if (in_file)
            add_range(s, off, UINT32_MAX, clang_getCursorType(c));
        bool cleanup = false;
        if (in_file && k == CXCursor_VarDecl)
            clang_visitChildren(c, find_cleanup, &cleanup);
        if (cleanup) {
            uint32_t *at = xmalloc(sizeof *at);
            *at = off;
            vec_push(&s->cleanups, at);
        }
        CXFile f;
        unsigned exp;
        clang_getExpansionLocation(clang_getCursorLocation(c), &f, NULL, NULL, &exp);
        enum CX_StorageClass sc = clang_Cursor_getStorageClass(c);
        bool automatic = sc != CX_SC_Static && sc != CX_SC_Extern; /* a frame would keep it */
        if (k == CXCursor_VarDecl && automatic && f && s->main_file &&
            clang_File_isEqual(f, s->main_file)) {
            SemaDecl *d = xcalloc(1, sizeof *d);
            d->name = take(clang_getCursorSpelling(c));
            d->at = in_file ? off : UINT32_MAX;
            d->expanded = exp;
            d->macro = d->at != exp || !spelled_at(s, exp, d->name);
            vec_push(&s->decls, d);
        }
    } else if (k == CXCursor_ReturnStmt || k == CXCursor_ContinueStmt) {
        /* From a macro when the file does not have the keyword where the
         * statement was expanded (libclang's spelling location of a macro
         * body's token is the expansion's too). */
        CXFile ef;
        unsigned eo;
        clang_getExpansionLocation(clang_getCursorLocation(c), &ef, NULL, NULL, &eo);
        const char *word = k == CXCursor_ReturnStmt ? "return" : "continue";
        if (ef && s->main_file && clang_File_isEqual(ef, s->main_file) &&
            !spelled_at(s, eo, word)) {
            SemaJump *j = xcalloc(1, sizeof *j);
            j->is_return = k == CXCursor_ReturnStmt;
            j->expanded = eo;
            vec_push(&s->jumps, j);
        }
    } else if (k == CXCursor_StringLiteral && function_name_literal(s, c)) {
        /* recorded by function_name_literal */
    } else if (k == CXCursor_DeclRefExpr) {
        /* A name clang resolved. A local's that the file does not have where
         * clang found it is a macro body's (a macro argument's is in the
         * file, where the translator sees and renames it), or an included
         * file's; any other name written in the file is kept for
         * check_names_agree, with decl UINT32_MAX when it is not a local
         * variable (an enumerator, a function, a global). */
        CXCursor ref = clang_getCursorReferenced(c);
        enum CXCursorKind rk = clang_getCursorKind(ref);
        bool local = (rk == CXCursor_VarDecl || rk == CXCursor_ParmDecl) &&
                     clang_getCursorKind(clang_getCursorSemanticParent(ref)) == CXCursor_FunctionDecl;
        uint32_t at, decl = UINT32_MAX;
        bool in_file = offset_in_main(s, clang_getCursorLocation(c), &at);
        if (!in_file && local && offset_in_main(s, clang_getCursorLocation(ref), &decl)) {
            record_included_use(s, c, ref, decl);
        } else if (in_file && (!local || offset_in_main(s, clang_getCursorLocation(ref), &decl))) {
            char *name = take(clang_getCursorSpelling(ref));
            bool spelled = spelled_at(s, at, name);
            if (local || spelled) {
                SemaRef *r = xcalloc(1, sizeof *r);
                r->name = name;
                r->decl = local ? decl : UINT32_MAX;
                r->expanded = at;
                vec_push(spelled ? &s->uses : &s->refs, r);
            } else {
                free(name);
            }
        }
    } else if (k == CXCursor_ConditionalOperator) {
        /* Keyed by where it starts: its end may lie inside an await()
         * macro expansion, which has no offset in the file. No two
         * conditionals start at the same byte. */
        CXSourceRange r = clang_getCursorExtent(c);
        uint32_t a;
        if (offset_in_main(s, clang_getRangeStart(r), &a))
            add_range(s, a, COND_KEY, clang_getCursorType(c));
    }
    if (clang_isExpression(k)) {
        CXSourceRange r = clang_getCursorExtent(c);
        uint32_t a;
        if (offset_in_main(s, clang_getRangeStart(r), &a)) {
            add_range(s, a, EXPR_KEY, clang_getCursorType(c));
            if (k == CXCursor_CompoundLiteralExpr)
                add_range(s, a, LITERAL_KEY, clang_getCursorType(c));
            else if (k == CXCursor_CallExpr)
                add_range(s, a, CALL_KEY, clang_getCursorType(c));
            else if (k == CXCursor_MemberRefExpr)
                add_range(s, a, MEMBER_KEY, clang_getCursorType(c));
        }
    }
    return CXChildVisit_Recurse;
}

static void record_async(Sema *s, CXCursor c)
{
        char *name = take(clang_getCursorSpelling(c));
        bool in_main = clang_Location_isFromMainFile(clang_getCursorLocation(c));
        if (!sema_ext_fn(s, name)) {
            ExtFn *e = xcalloc(1, sizeof *e);
            e->name = name;
            CXType ft = clang_getCursorType(c);
            CXType rt = clang_getResultType(ft);
            e->ret_type = take(clang_getTypeSpelling(rt));
            e->ret_void = rt.kind == CXType_Void;
            e->ret_const_member = const_member(rt);
            long long sz = clang_Type_getSizeOf(rt), al = clang_Type_getAlignOf(rt);
            e->ret_size = sz < 0 ? -1 : sz;
            e->ret_align = al < 0 ? -1 : al;
            int n = clang_getNumArgTypes(ft);
            for (int i = 0; i < n; i++)
                vec_push(&e->param_types, take(clang_getTypeSpelling(clang_getArgType(ft, (unsigned)i))));
            e->from_file = in_main;
            vec_push(&s->ext, e);
        } else {
            free(name);
        }
}

/* The spelling of token t, owned by the caller. */
static char *token_text(CXTranslationUnit tu, CXToken t) { return take(clang_getTokenSpelling(tu, t)); }

static bool token_is(CXTranslationUnit tu, CXToken t, const char *s)
{
    CXString x = clang_getTokenSpelling(tu, t);
    bool eq = strcmp(clang_getCString(x), s) == 0;
    clang_disposeString(x);
    return eq;
}

enum { MAX_PARAMS = 64, MAX_FORWARD = 8 };

/* What a function-like macro's body does with each parameter. */
typedef struct MacroProf {
    unsigned np;                    /* parameters (`...` is __VA_ARGS__, last) */
    char *params[MAX_PARAMS];       /* their names */
    int uses[MAX_PARAMS];           /* times evaluated, as far as the body shows */
    bool conditional[MAX_PARAMS];   /* some use may be skipped */
    unsigned char how[MAX_PARAMS];  /* 1: made a string, 2: pasted, 4: passed on to a macro
                                       that makes a string of it (after expanding it) */
} MacroProf;

static void prof_free(MacroProf *mp)
{
    for (unsigned p = 0; p < mp->np; p++)
        free(mp->params[p]);
}

/* A function-like macro definition seen so far. */
typedef struct MacroDef {
    char *name;
    CXCursor def;
} MacroDef;

/* The function-like macro named like token t (the latest definition), or a
 * null cursor. */
static CXCursor macro_named(Sema *s, CXToken t)
{
    char *name = token_text(s->tu, t);
    CXCursor found = clang_getNullCursor();
    for (int i = s->macros.len - 1; i >= 0 && clang_Cursor_isNull(found); i--) {
        const MacroDef *m = s->macros.items[i];
        if (strcmp(m->name, name) == 0)
            found = m->def;
    }
    free(name);
    return found;
}

/* The parameter of mp that argument `arg` goes to, or mp->np. */
static unsigned param_of_arg(const MacroProf *mp, unsigned arg)
{
    if (arg < mp->np)
        return arg;
    return mp->np && !strcmp(mp->params[mp->np - 1], "__VA_ARGS__") ? mp->np - 1 : mp->np;
}

/*
 * Reads macro definition `def` into *mp: its parameters, and how often and
 * how its body uses each. A use inside the argument of another
 * function-like macro the body calls (`#define LOG(...) LOG_AT(1,
 * __VA_ARGS__)`) counts as that macro uses its parameter, to MAX_FORWARD
 * levels. After a ?, &&, ||, `for`, or the condition of an if, while or
 * switch, uses are conditional: the body may skip them. Uses inside
 * sizeof(...), _Alignof(...) or typeof(...) do not count: they are never
 * evaluated.
 */
static void macro_profile(Sema *s, CXCursor def, int depth, MacroProf *mp)
{
    memset(mp, 0, sizeof *mp);
    CXToken *dt;
    unsigned dn;
    clang_tokenize(s->tu, clang_getCursorExtent(def), &dt, &dn);
    unsigned i = 2; /* NAME ( params ) body */
    for (; i < dn && !token_is(s->tu, dt[i], ")"); i++)
        if (!token_is(s->tu, dt[i], ",") && mp->np < MAX_PARAMS)
            mp->params[mp->np++] = token_is(s->tu, dt[i], "...") ? xstrdup("__VA_ARGS__")
                                                                  : token_text(s->tu, dt[i]);
    /* After one of these, what follows may be skipped. The condition of an
     * `if`, `while` or `switch` is evaluated, so only what comes after its
     * `)` is; the operand of sizeof, _Alignof or typeof in parentheses is
     * never evaluated, so uses there do not count. */
    static const char *const maybe[] = {"?", "&&", "||", "for", "_Generic", NULL};
    static const char *const guards[] = {"if", "while", "switch", NULL};
    static const char *const unevaluated[] = {"sizeof", "_Alignof", "typeof", "__typeof__", NULL};
    bool cond_seen = false;
    unsigned cond_after = 0; /* a guard's `)`: from there on, cond_seen */
    for (unsigned b = i + 1; b < dn; b++) {
        if (cond_after && b > cond_after)
            cond_seen = true;
        for (const char *const *m = maybe; *m && !cond_seen; m++)
            cond_seen = token_is(s->tu, dt[b], *m);
        bool guard = false, skip = false;
        for (const char *const *m = guards; *m && !guard; m++)
            guard = token_is(s->tu, dt[b], *m);
        for (const char *const *m = unevaluated; *m && !skip && !guard; m++)
            skip = token_is(s->tu, dt[b], *m);
        if ((guard || skip) && b + 1 < dn && token_is(s->tu, dt[b + 1], "(")) {
            unsigned level = 0, t = b + 1;
            for (; t < dn; t++) {
                if (token_is(s->tu, dt[t], "("))
                    level++;
                else if (token_is(s->tu, dt[t], ")") && --level == 0)
                    break;
            }
            if (skip) {
                b = t; /* uses in it are never evaluated */
                continue;
            }
            if (!cond_after || t > cond_after)
                cond_after = t;
        } else if (guard || skip) {
            cond_seen = true; /* `sizeof x`: not followed */
        }
        bool hash = token_is(s->tu, dt[b], "#"), paste = token_is(s->tu, dt[b], "##");
        for (unsigned p = 0; p < mp->np && (hash || paste); p++) {
            if (b + 1 < dn && token_is(s->tu, dt[b + 1], mp->params[p]))
                mp->how[p] |= paste ? 2 : 1;
            if (paste && b > i + 1 && token_is(s->tu, dt[b - 1], mp->params[p]))
                mp->how[p] |= 2;
        }
        if (hash || paste)
            continue;
        /* A call of another function-like macro: its arguments count as it
         * uses them. */
        CXCursor inner = depth < MAX_FORWARD && b + 1 < dn && token_is(s->tu, dt[b + 1], "(") &&
                                 clang_getTokenKind(dt[b]) == CXToken_Identifier
                             ? macro_named(s, dt[b])
                             : clang_getNullCursor();
        if (!clang_Cursor_isNull(inner)) {
            MacroProf ip;
            macro_profile(s, inner, depth + 1, &ip);
            unsigned arg = 0, level = 0, t = b + 2;
            for (; t < dn; t++) {
                bool open = token_is(s->tu, dt[t], "("), close = token_is(s->tu, dt[t], ")");
                if (close && level == 0)
                    break;
                if (open)
                    level++;
                else if (close)
                    level--;
                else if (level == 0 && token_is(s->tu, dt[t], ","))
                    arg++;
                else {
                    unsigned q = param_of_arg(&ip, arg);
                    for (unsigned p = 0; p < mp->np; p++)
                        if (q < ip.np && token_is(s->tu, dt[t], mp->params[p])) {
                            /* Its evaluations; and its strings, as a mark of
                             * their own: an argument passed on is
                             * macro-expanded first, so what the inner macro
                             * makes a string of (or pastes) is that
                             * expansion, not the argument's spelling. */
                            mp->uses[p] += ip.uses[q];
                            mp->conditional[p] |= cond_seen || ip.conditional[q];
                            if (ip.how[q] & 5)
                                mp->how[p] |= 4;
                        }
                }
            }
            prof_free(&ip);
            b = t; /* past the call's `)` */
            continue;
        }
        for (unsigned p = 0; p < mp->np; p++)
            if (token_is(s->tu, dt[b], mp->params[p]) && !token_is(s->tu, dt[b - 1], "#") &&
                !token_is(s->tu, dt[b - 1], "##") && !(b + 1 < dn && token_is(s->tu, dt[b + 1], "##"))) {
                mp->uses[p]++;
                mp->conditional[p] |= cond_seen;
            }
    }
    clang_disposeTokens(s->tu, dt, dn);
}

/* A use of a function-like macro in the file (a macro expansion cursor):
 * records the arguments whose parameter the macro's body makes a string of
 * (`#p`), pastes (`p ## q`), or does not evaluate exactly once. */
/* Whether the argument for parameter p needs a look: the body makes a
 * string of it, pastes it, or does not evaluate it exactly once. */
static bool noteworthy(const MacroProf *mp, unsigned p)
{
    return mp->how[p] || mp->uses[p] != 1 || mp->conditional[p];
}

static void record_spelled(Sema *s, CXCursor use)
{
    CXCursor def = clang_getCursorReferenced(use);
    if (clang_getCursorKind(def) != CXCursor_MacroDefinition || !clang_Cursor_isMacroFunctionLike(def))
        return;
    MacroProf mp;
    macro_profile(s, def, 0, &mp);
    bool any = false;
    for (unsigned p = 0; p < mp.np; p++)
        any |= noteworthy(&mp, p);
    if (!any) {
        prof_free(&mp);
        return;
    }
    /* NAME ( arg , arg ) at the use: split at the top-level commas */
    CXToken *ut;
    unsigned un;
    clang_tokenize(s->tu, clang_getCursorExtent(use), &ut, &un);
    char *name = un ? token_text(s->tu, ut[0]) : xstrdup("?");
    unsigned arg = 0, depth = 0, first = 2;
    for (unsigned t = 2; t < un; t++) {
        bool open = token_is(s->tu, ut[t], "("), close = token_is(s->tu, ut[t], ")");
        bool comma = token_is(s->tu, ut[t], ",");
        if (open)
            depth++;
        if ((close && depth == 0) || (comma && depth == 0)) {
            unsigned p = param_of_arg(&mp, arg);
            if (p < mp.np && noteworthy(&mp, p) && t > first) {
                unsigned a, b;
                clang_getFileLocation(clang_getRangeStart(clang_getTokenExtent(s->tu, ut[first])),
                                      NULL, NULL, NULL, &a);
                clang_getFileLocation(clang_getRangeEnd(clang_getTokenExtent(s->tu, ut[t - 1])),
                                      NULL, NULL, NULL, &b);
                SemaSpelled *sp = xcalloc(1, sizeof *sp);
                sp->from = a;
                sp->to = b;
                sp->stringified = mp.how[p] & 1;
                sp->forwarded = mp.how[p] & 4;
                sp->pasted = mp.how[p] & 2;
                sp->uses = mp.uses[p];
                sp->conditional = mp.conditional[p];
                sp->macro = xstrdup(name);
                vec_push(&s->spelled, sp);
            }
            arg++;
            first = t + 1;
            if (close)
                break;
        } else if (close) {
            depth--;
        }
    }
    free(name);
    clang_disposeTokens(s->tu, ut, un);
    prof_free(&mp);
}

static enum CXChildVisitResult visit_top(CXCursor c, CXCursor parent, CXClientData data)
{
    (void)parent;
    Sema *s = data;
    enum CXCursorKind k = clang_getCursorKind(c);
    Annotations an = k == CXCursor_FunctionDecl ? annotations(c) : (Annotations){0};
    if (an.blocking) {
        char *name = take(clang_getCursorSpelling(c));
        if (sema_is_blocking(s, name))
            free(name);
        else
            vec_push(&s->blocking, name);
    }
    if (k == CXCursor_MacroDefinition && clang_Cursor_isMacroFunctionLike(c)) {
        MacroDef *d = xmalloc(sizeof *d);
        d->name = take(clang_getCursorSpelling(c));
        d->def = c;
        vec_push(&s->macros, d);
    } else if (k == CXCursor_MacroExpansion && clang_Location_isFromMainFile(clang_getCursorLocation(c))) {
        record_spelled(s, c);
    } else if (k == CXCursor_FunctionDecl && an.async) {
        bool in_main = clang_Location_isFromMainFile(clang_getCursorLocation(c));
        record_async(s, c);
        if (in_main && clang_isCursorDefinition(c)) {
            char *name = take(clang_getCursorSpelling(c));
            s->cur_fn = name;
            clang_visitChildren(c, visit_body, s);
            s->cur_fn = NULL;
            free(name);
        }
    } else if (k == CXCursor_StructDecl && clang_isCursorDefinition(c)) {
        char *name = take(clang_getCursorSpelling(c));
        size_t n = strlen(name);
        if (n > 7 && strcmp(name + n - 7, "__frame") == 0) {
            FrameInfo *fi = xcalloc(1, sizeof *fi);
            fi->fn = xstrndup(name, n - 7);
            CXType t = clang_getCursorType(c);
            fi->size = clang_Type_getSizeOf(t);
            fi->align = clang_Type_getAlignOf(t);
            vec_push(&s->frames, fi);
        }
        free(name);
    }
    return CXChildVisit_Continue;
}

/* Prints one clang diagnostic in asyncc's format. */
static void report(Sema *s, CXDiagnostic d)
{
    CXSourceLocation loc = clang_getDiagnosticLocation(d);
    char *msg = take(clang_getDiagnosticSpelling(d));
    uint32_t off;
    if (offset_in_main(s, loc, &off)) {
        diag_error(&s->unit->src, off, "%s", msg);
    } else {
        CXFile f;
        unsigned line, col;
        clang_getSpellingLocation(loc, &f, &line, &col, NULL);
        char *path = f ? take(clang_getFileName(f)) : xstrdup(s->unit->src.path);
        diag_fatal("%s:%u:%u: %s", path, line, col, msg);
        free(path);
    }
    free(msg);
}

/* The end of the line holding byte `at` (its '\n', or the text's end),
 * past backslash-newline continuations. */
static uint32_t logical_line_end(const Source *src, uint32_t at)
{
    while (at < src->len) {
        if (src->text[at] == '\n' && !(at > 0 && src->text[at - 1] == '\\'))
            return at;
        at++;
    }
    return at;
}

/* Code the preprocessor skipped in the file (`#ifdef X` when X is not
 * defined): what lies between the line of the directive that opens a
 * skipped block and the line of the one that closes it. */
static void record_inactive(Sema *s)
{
    if (!s->main_file)
        return;
    const Source *src = &s->unit->src;
    CXSourceRangeList *l = clang_getSkippedRanges(s->tu, s->main_file);
    for (unsigned i = 0; l && i < l->count; i++) {
        unsigned a, b;
        clang_getFileLocation(clang_getRangeStart(l->ranges[i]), NULL, NULL, NULL, &a);
        clang_getFileLocation(clang_getRangeEnd(l->ranges[i]), NULL, NULL, NULL, &b);
        if (a >= b || b > src->len)
            continue;
        uint32_t from = logical_line_end(src, a);
        uint32_t to = b;
        while (to > from && src->text[to - 1] != '\n')
            to--;
        if (from < to) {
            uint32_t *r = xmalloc(2 * sizeof *r);
            r[0] = from;
            r[1] = to;
            vec_push(&s->inactive, r);
        }
    }
    if (l)
        clang_disposeSourceRangeList(l);
}

Sema *sema_run(Unit *u, const char *const *args, int nargs, const char *include_dir)
{
    Sema *s = xcalloc(1, sizeof *s);
    s->unit = u;
    s->index = clang_createIndex(0, 0);

    Vec argv = {0};
    vec_push(&argv, "-xc");
    char *inc = xasprintf("-I%s", include_dir);
    vec_push(&argv, inc);
    for (int i = 0; i < nargs; i++)
        vec_push(&argv, (void *)args[i]);

    struct CXUnsavedFile unsaved = {u->src.path, u->src.text, u->src.len};
    enum CXErrorCode rc = clang_parseTranslationUnit2(
        s->index, u->src.path, (const char *const *)argv.items, argv.len, &unsaved, 1,
        CXTranslationUnit_KeepGoing | CXTranslationUnit_DetailedPreprocessingRecord, &s->tu);
    free(inc);
    free(argv.items);
    if (rc != CXError_Success || !s->tu) {
        diag_fatal("%s: libclang could not parse the file (error %d)", u->src.path, (int)rc);
        sema_free(s);
        return NULL;
    }

    s->main_file = clang_getFile(s->tu, u->src.path);
    unsigned nd = clang_getNumDiagnostics(s->tu);
    int errors = 0;
    for (unsigned i = 0; i < nd && errors < 20; i++) {
        CXDiagnostic d = clang_getDiagnostic(s->tu, i);
        if (clang_getDiagnosticSeverity(d) >= CXDiagnostic_Error) {
            report(s, d);
            errors++;
        }
        clang_disposeDiagnostic(d);
    }
    if (errors) {
        sema_free(s);
        return NULL;
    }
    record_inactive(s);
    clang_getInclusions(s->tu, note_inclusion, s);
    clang_visitChildren(clang_getTranslationUnitCursor(s->tu), visit_top, s);
    for (int i = 0; i < s->ext.len; i++) {
        ExtFn *e = s->ext.items[i];
        for (int j = 0; j < s->frames.len; j++) {
            FrameInfo *fi = s->frames.items[j];
            if (strcmp(fi->fn, e->name) == 0 && fi->size > 0) {
                e->embeddable = true;
                e->size = (uint64_t)fi->size;
                e->align = (uint64_t)fi->align;
            }
        }
    }
    return s;
}

void sema_free(Sema *s)
{
    if (!s)
        return;
    if (s->tu)
        clang_disposeTranslationUnit(s->tu);
    clang_disposeIndex(s->index);
    free(s->ranges);
    for (int i = 0; i < s->decls.len; i++) {
        SemaDecl *d = s->decls.items[i];
        free(d->name);
        free(d);
    }
    free(s->decls.items);
    for (int i = 0; i < s->jumps.len; i++)
        free(s->jumps.items[i]);
    free(s->jumps.items);
    for (int k = 0; k < 2; k++) {
        Vec *v = k ? &s->uses : &s->refs;
        for (int i = 0; i < v->len; i++) {
            SemaRef *r = v->items[i];
            free(r->name);
            free(r->file);
            free(r);
        }
        free(v->items);
    }
    for (int i = 0; i < s->inactive.len; i++)
        free(s->inactive.items[i]);
    free(s->inactive.items);
    for (int i = 0; i < s->spelled.len; i++) {
        SemaSpelled *sp = s->spelled.items[i];
        free(sp->macro);
        free(sp);
    }
    free(s->spelled.items);
    for (int i = 0; i < s->macros.len; i++) {
        MacroDef *d = s->macros.items[i];
        free(d->name);
        free(d);
    }
    free(s->macros.items);
    for (int i = 0; i < s->includes.len; i++)
        free(s->includes.items[i]);
    free(s->includes.items);
    for (int i = 0; i < s->func_names.len; i++)
        free(s->func_names.items[i]);
    free(s->func_names.items);
    for (int i = 0; i < s->cleanups.len; i++)
        free(s->cleanups.items[i]);
    free(s->cleanups.items);
    free(s);
}

const Vec *sema_decls(Sema *s) { return &s->decls; }

const Vec *sema_macro_jumps(Sema *s) { return &s->jumps; }

const Vec *sema_macro_refs(Sema *s) { return &s->refs; }

const Vec *sema_names(Sema *s) { return &s->uses; }

const Vec *sema_inactive(Sema *s) { return &s->inactive; }

const Vec *sema_spelled_args(Sema *s) { return &s->spelled; }

bool sema_frame(Sema *s, const char *name, int64_t *size, int64_t *align)
{
    for (int i = 0; i < s->frames.len; i++) {
        FrameInfo *fi = s->frames.items[i];
        if (strcmp(fi->fn, name) == 0 && fi->size > 0) {
            *size = fi->size;
            *align = fi->align;
            return true;
        }
    }
    return false;
}

ExtFn *sema_ext_fn(Sema *s, const char *name)
{
    for (int i = 0; i < s->ext.len; i++) {
        ExtFn *e = s->ext.items[i];
        if (strcmp(e->name, name) == 0)
            return e;
    }
    return NULL;
}

static int cmp_range(const void *a, const void *b)
{
    const RangeType *x = a, *y = b;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static const TypeInfo *lookup(Sema *s, uint32_t start, uint32_t end)
{
    if (!s->sorted) {
        qsort(s->ranges, s->nranges, sizeof *s->ranges, cmp_range);
        s->sorted = true;

    }
    size_t lo = 0, hi = s->nranges;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (s->ranges[mid].start < start)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = lo; i < s->nranges && s->ranges[i].start == start; i++) {
        RangeType *r = &s->ranges[i];
        if (r->end != end)
            continue;
        if (!r->have_info) {
            r->info = type_info(r->type);
            r->have_info = true;
        }
        return &r->info;
    }
    return NULL;
}

const TypeInfo *sema_cond_type(Sema *s, uint32_t start) { return lookup(s, start, COND_KEY); }

const TypeInfo *sema_expr_type(Sema *s, uint32_t start) { return lookup(s, start, EXPR_KEY); }

const TypeInfo *sema_var_type(Sema *s, uint32_t start) { return lookup(s, start, UINT32_MAX); }

const TypeInfo *sema_literal_type(Sema *s, uint32_t start) { return lookup(s, start, LITERAL_KEY); }

const TypeInfo *sema_call_type(Sema *s, uint32_t start) { return lookup(s, start, CALL_KEY); }

const TypeInfo *sema_member_type(Sema *s, uint32_t start) { return lookup(s, start, MEMBER_KEY); }


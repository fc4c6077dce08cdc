/*
 * compiler.h: the translator's one internal header, a section per pass in
 * pipeline order (see docs/design.md): util, diag, parse, sema, liveness,
 * lower, layout, emit. Compiler-internal types are CamelCase so they never look
 * like runtime API; functions shared across passes carry their pass's name.
 */
#ifndef ASYNCC_COMPILER_H
#define ASYNCC_COMPILER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <tree_sitter/api.h>

/* ======================================================================== */
/* util.c: growable buffers, vectors, allocation that cannot fail            */
/* ======================================================================== */

typedef struct Buf {
    char *data; /* NUL-terminated contents (NULL while empty) */
    size_t len; /* bytes used, excluding the NUL */
    size_t cap; /* bytes allocated */
} Buf;

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Whether c may continue a C identifier (GNU C allows `$`). */
bool c_ident_char(char c);

void buf_putn(Buf *b, const char *s, size_t n);
void buf_puts(Buf *b, const char *s);
void buf_putc(Buf *b, char c);
void buf_printf(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_free(Buf *b);
/* Cuts the contents back to their first len bytes (len <= b->len). */
void buf_truncate(Buf *b, size_t len);
/* Returns the contents (owned by the caller) and resets the buffer. */
char *buf_take(Buf *b);

/* A vector of pointers. */
typedef struct Vec {
    void **items; /* elements */
    int len;      /* number used */
    int cap;      /* number allocated */
} Vec;

void vec_push(Vec *v, void *item);

/* A set of small integers (await states), as a growable bit set. */
typedef struct StateSet {
    uint64_t *bits; /* bit i set: state i is a member */
    int words;      /* words allocated */
} StateSet;

void set_add(StateSet *s, int i);
bool set_has(const StateSet *s, int i);
bool set_disjoint(const StateSet *a, const StateSet *b);
bool set_empty(const StateSet *s);
void set_union(StateSet *into, const StateSet *from);

/* A map from tree-sitter node identity (TSNode.id) to a pointer. */
typedef struct NodeMap {
    const void **keys; /* node ids; NULL marks an empty slot */
    void **vals;       /* values */
    size_t cap;        /* slots, a power of two */
    size_t len;        /* slots used */
} NodeMap;

void nodemap_put(NodeMap *m, TSNode n, void *val);
void *nodemap_get(const NodeMap *m, TSNode n);
void nodemap_free(NodeMap *m);

/*
 * Node types, compared by grammar symbol. Asking a node's type is the
 * translator's commonest question; as a string compare it took about a
 * tenth of the passes after libclang. SYM_IS(s, "name") is whether grammar
 * symbol s is named `name` (a string literal), as ts_language_symbol_name
 * says; each use keeps a cache of the answer per symbol, so a symbol's name
 * is compared once per use (a GNU statement expression holds each cache; the
 * translator is built as gnu11). The caches are not locked: tree walks run
 * on one thread.
 */
#define SYM_CACHE 512 /* symbols below this are cached (tree-sitter-c 0.23.6 has 363) */
/* Whether symbol s is named one of the NULL-terminated `names`; cache[s]
 * keeps the answer for that list (0 unknown, 1 no, 2 yes). */
bool sym_in(TSSymbol s, const char *const *names, uint8_t cache[SYM_CACHE]);
#define SYM_IS(s, name)                                                                            \
    __extension__({                                                                                \
        static uint8_t sym_cache_[SYM_CACHE];                                                      \
        TSSymbol sym_ = (s);                                                                       \
        sym_ < SYM_CACHE && sym_cache_[sym_]                                                       \
            ? sym_cache_[sym_] == 2                                                                \
            : sym_in(sym_, (const char *const[]){"" name, NULL}, sym_cache_);                      \
    })
/* Whether node n's type is `name` (ts_node_type(n) equals it). */
#define type_is(n, name) SYM_IS(ts_node_symbol(n), name)
/* The field id of field `name` of the C grammar (0 if there is none), and
 * child_by_field(n, "name"): ts_node_child_by_field_name without the
 * search of the grammar's field names at every call (each use keeps the id,
 * like SYM_IS). */
TSFieldId field_id(const char *name);
#define FIELD_ID(name)                                                                             \
    __extension__({                                                                                \
        static TSFieldId field_id_;                                                                \
        if (!field_id_)                                                                            \
            field_id_ = field_id("" name);                                                         \
        field_id_;                                                                                 \
    })
#define child_by_field(n, name) ts_node_child_by_field_id((n), FIELD_ID(name))
/* A preorder walk of the subtree a cursor was made on: moves the cursor to
 * the next node, into the current one's children if `descend`, else past
 * them. Returns false when the walk is over. */
bool cursor_advance(TSTreeCursor *c, bool descend);

/* ======================================================================== */
/* diag.c: every diagnostic goes through here                                */
/* ======================================================================== */

/* The input file being translated. */
typedef struct Source {
    const char *path; /* as given on the command line */
    const char *text; /* contents, NUL-terminated */
    uint32_t len;     /* bytes, excluding the NUL */
} Source;

/* Prints `path:line:col: error: msg`, the source line and a caret under byte
 * `offset` of `src`, and counts the error. */
void diag_error(const Source *src, uint32_t offset, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void diag_warning(const Source *src, uint32_t offset, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A `note:` line attached to the previous diagnostic. */
void diag_note(const Source *src, uint32_t offset, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* An error with no source position (`asyncc: error: ...`). */
void diag_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int diag_error_count(void);
/* The errors reported by the calling thread so far. */
int diag_thread_error_count(void);
/* Forgets n errors this thread reported (whose messages were captured and
 * dropped), so that they fail nothing. */
void diag_discard_errors(int n);
/* -Werror: warnings are reported and counted as errors. */
extern bool diag_werror;
/* True if a comment `asyncc: allow(KIND)` (or `allow(all)`) on the line of
 * `offset` or the line before silences diagnostics of that kind there. */
bool diag_allowed(const Source *src, uint32_t offset, const char *kind);
/* A safety-net diagnostic of `kind` (the name `asyncc: allow(...)` takes):
 * unless silenced, prints a warning (an error if `error` or -Werror) with
 * the kind in brackets and a one-line `hint:`. Returns true if it counted as
 * an error. */
bool diag_check(const Source *src, uint32_t offset, bool error, const char *kind,
                const char *hint, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* Sends this thread's diagnostics to `into` (NULL: back to stderr). */
void diag_capture(Buf *into);
/* 1-based line and column of `offset` in `src`. */
void diag_position(const Source *src, uint32_t offset, int *line, int *col);

/* ======================================================================== */
/* parse.c: tree-sitter syntax                                               */
/* ======================================================================== */

typedef struct AsyncFn AsyncFn;
typedef struct Await Await;
typedef struct Var Var;

/* One `await(call)` inside an async function. */
struct Await {
    TSNode node;      /* the `await(...)` call_expression */
    TSNode call;      /* its argument: the call creating the future */
    TSNode anchor;    /* innermost enclosing statement */
    char *callee;     /* name of the awaited async function */
    bool boxed;       /* `await(ac_box(f(...)))`: frame on the arena, not embedded */
    int state;        /* suspend state number (AC_STATE_FIRST + index) */
    AsyncFn *target;  /* the callee when defined in this file, else NULL */
    struct ExtFn *ext;/* the callee when declared elsewhere, else NULL */
    int join;         /* 0; 1 await(ac_all(...)); 2 ac_try_all(...); 3 ac_timeout(...) */
    TSNode limit;     /* for ac_timeout: the milliseconds expression */
    Vec arms;         /* for joins: Await* of each future, in order */
    Vec outs;         /* for joins: TSNode* of each arm's output pointer */
};

/* One `ac_spawn(call)`: the call's future becomes a task. */
typedef struct Spawn {
    TSNode node;      /* the ac_spawn(...) call_expression */
    TSNode call;      /* its argument: the call creating the future */
    char *callee;     /* name of the spawned async function */
    AsyncFn *target;  /* the callee when defined in this file, else NULL */
    struct ExtFn *ext;/* the callee when declared elsewhere, else NULL */
    TSNode set;       /* ac_joinset_spawn(set, call): the set; null for ac_spawn */
} Spawn;

/* A variable of an async function: a parameter or a local. */
struct Var {
    char *name;        /* as spelled in the source */
    char *field;       /* frame field name when hoisted (unique in the frame) */
    TSNode ident;      /* the declarator's identifier */
    TSNode decl;       /* the declaration or parameter_declaration */
    TSNode declarator; /* the (init_)declarator within decl */
    TSNode scope;      /* the node whose extent is the variable's scope */
    uint32_t live_from;/* byte offset where the variable's value starts to matter */
    bool is_param;     /* a parameter of the async function */
    bool is_static;    /* static or extern storage: never hoisted */
    bool addr_taken;   /* `&v` appears, or v is an array */
    bool hoisted;      /* lives in the frame */
    bool not_variable; /* an enumerator's name, which hides variables: no refs */
    /* Hoisted, with a type declared inside the function, which the frame at
     * file scope cannot name: the type name (`struct point`, `pair *`) that
     * the body, where the type is in scope, reaches the variable's raw frame
     * storage through. NULL otherwise. */
    char *local_type;
    /* A cleanup attribute (__attribute__((cleanup(f)))): the translator
     * runs it where the variable's scope ends, when the variable is kept
     * in the frame (lower.c), and from the drop of a frame suspended in its
     * scope (emit.c). It counts as live across every await in its scope. */
    bool cleanup;
    char *cleanup_call; /* when hoisted: the statement that runs it (lower.c) */
    StateSet live;     /* await states across which it is live (+0 for params) */
    Vec refs;          /* TSNode* of every identifier referring to it */
};

/* A compound literal `(T){...}` in an async function: an unnamed object that
 * lives until its block ends, so one whose block goes on past an await is
 * kept in the frame (liveness.c, layout.c, lower.c). */
typedef struct Literal {
    TSNode node;       /* the compound_literal_expression, or the call (see `call`) */
    TSNode scope;      /* the node whose extent is its lifetime's */
    StateSet live;     /* await states across which it lives */
    char *field;       /* frame field name when kept (ac_clN), else NULL */
    bool call;         /* a plain call's struct result whose array member is used:
                        * C keeps it, a temporary, to the end of the statement */
} Literal;

/* An async function defined or declared in the translated file. */
struct AsyncFn {
    char *name;       /* function name */
    TSNode node;      /* function_definition or declaration */
    TSNode body;      /* compound_statement (definitions only) */
    TSNode params;    /* parameter_list */
    char *ret_type;   /* the T of async(T), as spelled */
    bool ret_void;    /* T is void */
    bool is_def;      /* has a body in this file */
    bool is_static;   /* declared static */
    Vec awaits;       /* Await*, in source order */
    Vec spawns;       /* Spawn*, in source order */
    Vec vars;         /* Var*, parameters first, then locals in source order */
    Vec literals;     /* Literal*, in source order */
    NodeMap refs;     /* identifier node -> Var* it resolves to */
    /* Statements in which a frame variable is reached through a #define of
     * its own name, since a macro makes a string of its name there
     * (liveness.c, lower.c): TSNode* statement, Var*, in pairs. */
    Vec by_define;
    bool has_goto;    /* the body contains goto (liveness is more conservative) */
    int nstates;      /* AC_STATE_FIRST + number of awaits */
    /* set by later passes */
    struct Frame *frame; /* layout of the frame (layout.c) */
    char *poll_text;     /* lowered poll function body (lower.c) */
    Vec temps;           /* Temp* created by lowering (lower.c) */
    int cycle_mark;      /* cycle detection state (liveness.c) */
    uint64_t size;       /* frame size in bytes (layout.c) */
    uint64_t align;      /* frame alignment (layout.c) */
};

/* Spans of what gaps.c masked for the parse that later passes look at. */
typedef struct GapSpans {
    Vec attrs;  /* attributes after declarators, blanked */
    Vec gotos;  /* the `goto` of computed gotos (`goto *p;`), blanked */
    Vec macros; /* macro calls standing as statements without a `;`
                   (`X_MACRO(CASE)` before a `}` or a directive), read as comments */
} GapSpans;

typedef struct Unit {
    Source src;       /* the input */
    TSParser *parser; /* owns tree */
    TSTree *tree;     /* syntax tree of src */
    TSNode root;      /* translation_unit */
    Vec fns;          /* AsyncFn*, in source order (definitions and prototypes) */
    Vec stray_awaits; /* TSNode* of awaits outside any async function */
    Vec spawn_calls;  /* TSNode* of every ac_spawn(...) call */
    TSNode *calls;    /* every call_expression, in tree order (parse_unit's walk) */
    int ncalls;       /* how many */
    struct Sema *sema;/* semantic facts (sema.c) */
    NodeMap parents;  /* node -> TSNode* of its parent (ts_node_parent walks
                         down from the root each call, too slow to use often) */
    Vec parent_chunks;/* TSNode arrays holding the parents */
    NodeMap stmt_of;  /* memo for parse_statement_of: node -> TSNode* */
    NodeMap block_decls; /* memo for parse_names_local: compound_statement ->
                            Vec* of its declarations' TSNode*, in order */
    char *line_path;  /* src.path escaped for a #line string literal */
    char *parse_text; /* what tree-sitter parsed: src.text with its gaps masked (gaps.c) */
    GapSpans gaps;    /* what gaps.c masked in parse_text */
} Unit;

/* ======================================================================== */
/* gaps.c: C the stock grammar cannot parse                                  */
/* ======================================================================== */

/* A copy of text (len bytes, NUL-terminated, owned by the caller) for
 * tree-sitter, in which the valid C that tree-sitter-c rejects is rewritten
 * byte for byte into C it parses; the spans of some of what it masked are
 * pushed on out's lists (malloc'd uint32_t[2]: start, end), in source
 * order. Cannot fail. */
char *gaps_mask(const char *text, uint32_t len, GapSpans *out);
/* Blanks (newlines kept) in text[0, len) the code in `inactive` (uint32_t[2]
 * ranges, sema_inactive) and every conditional directive line (#if,
 * #ifdef, #ifndef, #elif, #else, #endif...), so that what is left is the
 * configuration clang saw, in place; except an #if ... #endif that tests
 * ASYNCC_LOWERED, kept whole with what it skipped: clang reads the sync
 * reading, the translation is compiled with ASYNCC_LOWERED defined. */
void gaps_keep_active(char *text, uint32_t len, const Vec *inactive);

/* Parses src; returns false (after reporting) on syntax errors. */
bool parse_unit(Unit *u);
/* 1 if the queries of grammar/async.scm find the same async functions and
 * awaits as parse_unit's walk, 0 if not, -1 if the query does not compile
 * (used by the unit tests: the queries are the constructs' specification). */
int parse_query_agrees(Unit *u);
/* The parent of n (null at the root), from the map built by parse_unit. */
TSNode parse_parent(const Unit *u, TSNode n);
/* The innermost statement (or declaration) containing expression node n, or
 * n itself if it is one; memoized, so it stays linear on deep expressions. */
TSNode parse_statement_of(Unit *u, TSNode n);
/* True if n is a statement node (expression_statement, declaration, if...). */
bool parse_is_statement(TSNode n);
/* The source text of n, owned by the caller. */
char *parse_text(const Unit *u, TSNode n);
/* True if n is `await(...)`. */
bool parse_is_await(const Unit *u, TSNode n);
/* True if n is a call to the identifier `name`. */
bool parse_is_call_to(const Unit *u, TSNode n, const char *name);
/* True if n is a while, for or do statement. */
bool parse_is_loop(TSNode n);
/* True if the word n is typeof, __typeof__ or __typeof. */
bool parse_is_typeof(const Unit *u, TSNode n);
/* True if the type specifier `type` (may be null) leaves the type to the
 * compiler: typeof(...), __typeof__(...) or __auto_type. */
bool parse_is_inferred_type(Unit *u, TSNode type);
/* The name of the macro used at byte `at` (where clang expanded it), or
 * "this macro". Owned by the caller. */
char *parse_macro_name_at(const Unit *u, uint32_t at);
/* The tag of a struct, union or enum specifier: its name, or for an unnamed
 * one `ac_type_LINE_COL` (where it starts), which lowering writes into the
 * definition of a type declared in an async function when a variable of it
 * is kept in the frame (liveness.c, lower.c). Owned by the caller. */
char *parse_type_tag(const Unit *u, TSNode type);
/* True if the identifier or field node n spells `s`. */
bool parse_eq(const Unit *u, TSNode n, const char *s);
/* The async function definition whose body holds byte `at`, or NULL. */
AsyncFn *parse_fn_containing(const Unit *u, uint32_t at);
/* Finds the async function with this name (definition preferred), or NULL. */
AsyncFn *parse_find_fn(const Unit *u, const char *name);
/* True if n, a child of a declaration or parameter, is one of its declarators
 * (tree-sitter 0.20's ts_node_field_name_for_child is unreliable, so this
 * goes by node type). */
bool parse_is_declarator(TSNode n);
/* The identifier naming the variable declared by a declarator, or a null node. */
TSNode parse_declarator_ident(TSNode declarator);
/* Whether the identifier `ident`, used in an expression, names a variable
 * or parameter in scope there (a declaration before it in an enclosing
 * block or for, or a parameter of the enclosing function): a function of the
 * same name is then hidden. */
bool parse_names_local(Unit *u, TSNode ident);
/* The attributes of the variable that `declarator` (a child of `decl`)
 * declares which gaps.c blanked for the parse: those after the declaration's
 * specifiers and those after this declarator. Pushes their spans
 * (uint32_t[2], owned by the Unit) on out. */
void parse_masked_attrs(const Unit *u, TSNode decl, TSNode declarator, Vec *out);
/* Whether node inner lies within node outer's bytes (or is it). */
bool parse_node_within(TSNode inner, TSNode outer);
/* Whether the variable has the GNU attribute `name` (such as "cleanup"),
 * written before its type or after its declarator. */
bool parse_var_has_attr(const Unit *u, TSNode decl, TSNode declarator, const char *name);

/* ======================================================================== */
/* sema.c: libclang semantics                                                */
/* ======================================================================== */

/* An async function known from a header (or declared in the file) that is
 * not defined in this file. */
typedef struct ExtFn {
    char *name;       /* function name */
    char *ret_type;   /* result type spelling */
    bool ret_void;    /* result is void */
    bool ret_const_member; /* result has a const member: stored by memcpy */
    Vec param_types;  /* char* spellings of parameter types */
    bool embeddable;  /* a complete struct NAME__frame is visible */
    uint64_t size;    /* sizeof(struct NAME__frame) when embeddable */
    uint64_t align;   /* its alignment */
    bool from_file;   /* declared in the translated file itself */
    int64_t ret_size; /* sizeof the result, -1 if void or unknown */
    int64_t ret_align;/* alignof the result, -1 if void or unknown */
} ExtFn;

/* An automatic variable declared in a function body, as clang sees it. */
typedef struct SemaDecl {
    char *name;        /* its name */
    uint32_t at;       /* the name's offset in the file, UINT32_MAX if not in it */
    uint32_t expanded; /* where the declaration was expanded: `at`, or the use of
                        * the macro that declares it */
    bool macro;        /* a macro declares it */
} SemaDecl;

/* A `return` or `continue` written inside a macro, as clang sees it: the
 * translator, which reads the text before expansion, does not. */
typedef struct SemaJump {
    bool is_return;    /* return; else continue */
    uint32_t expanded; /* where the macro holding it was used */
} SemaJump;

/* A use of a function's local variable or parameter written inside a
 * macro's body, as clang sees it (the translator does not). */
typedef struct SemaRef {
    char *name;        /* the variable's name */
    uint32_t decl;     /* where the variable's name is declared in the file */
    uint32_t expanded; /* where the macro holding the use was used, or the
                          #include that brought in the file holding it */
    char *file;        /* that included file, or NULL for a macro's use */
} SemaRef;

/* A macro argument, where a function-like macro is used in the file, that
 * the macro turns into a string (`#x`), pastes (`x ## y`), or evaluates
 * other than once (its parameter appears `uses` times in the body). */
typedef struct SemaSpelled {
    uint32_t from, to; /* the argument's bytes */
    bool stringified;  /* made a string */
    bool forwarded;    /* passed on to a macro that makes a string of it */
    bool pasted;       /* pasted */
    int uses;          /* plain appearances of its parameter in the body */
    bool conditional;  /* one of them follows a ?:, &&, ||, if, loop or sizeof */
    char *macro;       /* the macro's name */
} SemaSpelled;

/* Type facts for a range of the source. */
typedef struct TypeInfo {
    char *spelling;   /* the type as clang spells it */
    char *canonical;  /* the same with typedefs and typeof resolved */
    int64_t size;     /* sizeof, or -1 if unknown or incomplete */
    int64_t align;    /* alignof, or -1 */
    bool vla;         /* a variably modified type */
    bool const_member;/* a struct or union with a const member: not assignable */
} TypeInfo;

typedef struct Sema Sema;

/* Parses the sync reading with libclang. Returns NULL after reporting clang's
 * errors. `args` are the user's -I/-D/-std flags. */
Sema *sema_run(Unit *u, const char *const *args, int nargs, const char *include_dir);
void sema_free(Sema *s);
/* The async function `name` declared outside this file's definitions, or NULL. */
ExtFn *sema_ext_fn(Sema *s, const char *name);
/* Type of the outermost expression starting at byte `start`, or NULL. */
const TypeInfo *sema_expr_type(Sema *s, uint32_t start);
/* Type of the conditional expression (?:) starting at byte `start`, or NULL. */
const TypeInfo *sema_cond_type(Sema *s, uint32_t start);
/* sizeof and alignof a complete `struct NAME__frame` in the translation
 * unit; false if there is none. */
bool sema_frame(Sema *s, const char *name, int64_t *size, int64_t *align);
/* True if `name` is declared ac_blocks(T) (annotate("asyncc.blocking")). */
bool sema_is_blocking(Sema *s, const char *name);
/* Type of the variable whose name starts at byte `start`, or NULL. */
const TypeInfo *sema_var_type(Sema *s, uint32_t start);
/* Whether the variable whose name starts at byte `at` has a cleanup
 * attribute, written in the file or brought in by a macro. */
bool sema_var_cleanup(Sema *s, uint32_t at);
/* Whether the body of async function fn uses __func__, __FUNCTION__ or
 * __PRETTY_FUNCTION__ (also through a macro, as assert does). */
bool sema_uses_function_name(Sema *s, const char *fn);
/* Every automatic variable (not static, not extern) clang found declared in
 * a function body of the file, in visiting order (SemaDecl *). */
const Vec *sema_decls(Sema *s);
/* Every return and continue statement that a macro used in a function body
 * of the file brings in (SemaJump *). */
const Vec *sema_macro_jumps(Sema *s);
/* Every use of a local variable or parameter that a macro's body, used in a
 * function body of the file, brings in (SemaRef *). */
const Vec *sema_macro_refs(Sema *s);
/* Every other name clang resolved in a function body of the file, written
 * where clang found it (`expanded`, SemaRef *): a use of a local variable or
 * parameter, or with `decl` UINT32_MAX of something else (an enumerator, a
 * function, a global). */
const Vec *sema_names(Sema *s);
/* The file's code that the preprocessor skipped, as uint32_t[2] byte ranges
 * (start, end) between the lines of the directives around it. */
const Vec *sema_inactive(Sema *s);
/* Every argument, in a use of a function-like macro in the file, that the
 * macro makes a string of, pastes, or does not use exactly once
 * (SemaSpelled *). */
const Vec *sema_spelled_args(Sema *s);
/* Type of the compound literal starting at byte `start`, or NULL. */
const TypeInfo *sema_literal_type(Sema *s, uint32_t start);
/* Type of the outermost function call starting at byte `start`, or NULL. */
const TypeInfo *sema_call_type(Sema *s, uint32_t start);
/* Type of the outermost member access (`.` or `->`) starting at byte
 * `start`, or NULL. */
const TypeInfo *sema_member_type(Sema *s, uint32_t start);

/* ======================================================================== */
/* liveness.c: scopes, name resolution, live-across-await sets, checks       */
/* ======================================================================== */

/* Resolves names and computes which variables live across which awaits for
 * every async function of u; reports rejected constructs. Returns false on
 * error. */
bool liveness_run(Unit *u);
/* Reports every await outside an async function; returns how many. */
int liveness_report_strays(Unit *u);
/* Whether n, of type ti, is a one-dimensional array that is only indexed
 * for a value (`a[i]`, not `&a[i]`, `a[i].f` or `a[i][j]`): it decays to a
 * pointer that nothing keeps. */
bool liveness_indexed_for_value(Unit *u, TSNode n, const TypeInfo *ti);
/* For --emit=states: an array of fn->nstates sets, entry s holding the states
 * (1 for returned) that can come next after resuming from s. Caller frees. */
StateSet *flow_successors(Unit *u, AsyncFn *fn);

/* ======================================================================== */
/* check.c: the safety net (unawaited futures, blocking calls, locks held    */
/* across awaits, spawned futures borrowing locals)                          */
/* ======================================================================== */

/* Reports the safety-net diagnostics; false if any counted as an error. */
bool check_run(Unit *u);

/* ======================================================================== */
/* lower.c: async function body -> poll function body                        */
/* ======================================================================== */

/* A temporary introduced by lowering (an await's value, a short-circuit
 * result). Lives in the poll function unless live across a later await. */
typedef struct Temp {
    int id;         /* ac_tID */
    char *type;     /* C type spelling */
    StateSet live;  /* await states it is live across (empty: poll-local) */
    int64_t size;   /* sizeof, -1 if unknown */
    int64_t align;  /* alignof, -1 if unknown */
    uint32_t from;  /* source byte where its storage starts being needed */
    uint32_t to;    /* source byte where it stops (end of its statement) */
} Temp;

/* Lowers fn's body into fn->poll_text and fn->temps. */
bool lower_fn(Unit *u, AsyncFn *fn);
/* C statements that drop the future of `arm` held in frame slot `slot`. */
char *lower_drop_arm(Await *arm, const char *slot);
/* `type name` as a declaration, using __typeof__ for abstract types that
 * cannot take a name on the right (function pointers, arrays). */
char *lower_declare(const char *type, const char *name);

/* ======================================================================== */
/* layout.c: frame slots grouped by disjoint liveness                        */
/* ======================================================================== */

typedef enum SlotKind { SLOT_PARAM, SLOT_LOCAL, SLOT_TEMP, SLOT_AWAIT } SlotKind;

typedef struct Slot {
    SlotKind kind;    /* what it holds */
    char *name;       /* field name */
    char *decl;       /* field declaration text, without the trailing ';' */
    const char *what; /* human description for --emit=states */
    StateSet live;    /* states in which it holds a value */
    int64_t size;     /* bytes */
    int64_t align;    /* alignment */
    int64_t offset;   /* offset in the frame (computed) */
    int line;         /* source line it comes from */
    uint32_t from;    /* source bytes [from, to) over which its storage is */
    uint32_t to;      /* needed; slots with disjoint ranges may overlap */
} Slot;

/* Slots that share storage: pairwise disjoint live sets. */
typedef struct SlotGroup {
    Vec slots;     /* Slot* */
    int64_t size;  /* max member size */
    int64_t align; /* max member alignment */
} SlotGroup;

typedef struct Frame {
    Vec slots;        /* Slot*, in creation order */
    Vec groups;       /* SlotGroup*, in emission order */
    const char *state_type; /* uint8_t, uint16_t or uint32_t */
    int64_t size;     /* computed sizeof */
    int64_t align;    /* computed alignof */
    int64_t state_offset; /* offset of ac_state */
} Frame;

/* Groups fn's slots (parameters, hoisted locals, frame temporaries, awaited
 * futures) and computes offsets; needs callees laid out first. */
void layout_fn(Unit *u, AsyncFn *fn);

/* ======================================================================== */
/* emit.c: the output file and --emit=states                                */
/* ======================================================================== */

/* Writes the translated file to out (owned by caller). */
void emit_unit(Unit *u, Buf *out);
/* Writes the state-machine description of every async function. */
void emit_states(Unit *u, Buf *out);

#endif /* ASYNCC_COMPILER_H */

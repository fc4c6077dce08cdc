/*
 * randprog: writes a random asyncc program to stdout.
 *
 * Usage: randprog SEED
 *
 * The same SEED always gives the same program (the generator has its own
 * PRNG and never asks the C library for randomness). The program is meant to
 * be built twice, through the header's sync reading and through asyncc, and
 * both builds must print the same thing.
 *
 * Shape of a program:
 *   - a few async functions f0..fN-1. fi may await fj only when j > i, so the
 *     call graph is a DAG (asyncc rejects recursion). Each returns unsigned,
 *     struct rs or void, takes some unsigned parameters, maybe a struct rs and
 *     maybe an `unsigned *out` it writes through;
 *   - bodies are random nestings of for/while/do loops with small constant
 *     trip counts, if/else, switch with fallthrough and break, forward gotos,
 *     bounded backward gotos, gotos out of loops, break/continue, early
 *     returns, blocks declaring (and shadowing) locals, arrays, struct
 *     values, pointers to locals, static and const locals, and awaits almost
 *     anywhere an expression may be: operands of && || ?: and the comma
 *     operator, call arguments, initialisers, loop headers, switch heads;
 *   - every function mixes values into the global checksum g_sum and calls
 *     trace() now and then; async_main awaits every function and prints the
 *     checksum.
 *
 * Rules that keep the program deterministic and free of undefined behaviour:
 *   - all arithmetic is on unsigned; comparisons and logical operators are
 *     cast to unsigned; shift counts are masked to 0..15; divisors are `| 1u`;
 *     array indices are taken modulo the length;
 *   - "effectful" expressions (awaits, which touch g_sum, calls of mixr(),
 *     comma assignments to temporaries) never appear in two operands that C
 *     leaves unsequenced or indeterminately sequenced (arithmetic operands,
 *     call arguments, initialiser lists, subscript and assigned value); only
 *     && || ?: and the comma operator may hold several;
 *   - pure expressions never read g_sum or comma temporaries, and a callee
 *     that writes through a pointer is only awaited as a whole statement, so
 *     no pure operand can observe a callee's writes in an unspecified order;
 *   - every variable is initialised at its declaration; a forward goto only
 *     skips over a block, so it never skips a declaration that is used later;
 *   - loop counters are never written by loop bodies and every loop has a
 *     constant bound; a cost bound on each function (calls weighed by the
 *     callee's own bound and the enclosing trip counts) keeps run time small.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Randomness                                                               */
/* ------------------------------------------------------------------------ */

static uint64_t rng_state; /* splitmix64 state */

static uint64_t rnd64(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* A number in [0, n); 0 when n is 0. */
static unsigned rnd(unsigned n)
{
    return n ? (unsigned)(rnd64() % n) : 0;
}

/* True with probability pct percent. */
static int chance(unsigned pct)
{
    return rnd(100) < pct;
}

/* ------------------------------------------------------------------------ */
/* Text buffers                                                             */
/* ------------------------------------------------------------------------ */

typedef struct {
    char *p;    /* NUL-terminated text; NULL while empty */
    size_t len; /* bytes used, without the NUL */
    size_t cap; /* bytes allocated */
} Buf;

/* Appends printf-style text to b; exits on out-of-memory. */
static void bput(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bput(Buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        abort();
    if (b->len + (size_t)n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (b->len + (size_t)n + 1 > cap)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            fprintf(stderr, "randprog: out of memory\n");
            exit(2);
        }
        b->p = p;
        b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* Appends four spaces per indentation level. */
static void indent(Buf *b, int level)
{
    for (int i = 0; i < level; i++)
        bput(b, "    ");
}

static void bfree(Buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* ------------------------------------------------------------------------ */
/* Program model                                                            */
/* ------------------------------------------------------------------------ */

enum { MAX_FNS = 8, MAX_VARS = 256, MAX_LABELS = 64, STRUCT_LEN = 3 };

/* Upper bound on the work one call of a function may do (see Ctx.cost). */
enum { FN_BUDGET = 1500, MAIN_BUDGET = 6000 };

typedef enum { RET_U, RET_S, RET_VOID } RetKind;

/* One async function's signature and cost bound. */
typedef struct {
    RetKind ret;        /* what its future yields */
    int nu;             /* number of unsigned parameters p0.. */
    int has_s;          /* takes `struct rs ps` after the unsigned ones */
    int has_ptr;        /* takes `unsigned *out` first */
    int is_static;      /* declared static */
    unsigned long cost; /* bound on the work of one call, callees included */
} Fn;

typedef enum { V_U, V_S, V_ARR, V_PTR } VarKind;

/* A variable visible at the current point of a body. */
typedef struct {
    char name[16]; /* C identifier */
    VarKind kind;  /* unsigned, struct rs, unsigned[len], unsigned * */
    int len;       /* array length (V_ARR) */
    int readonly;  /* loop counters and const locals: never assigned */
    int noaddr;    /* volatile: never the target of an `unsigned *` */
    int hidden;    /* its name is being redeclared: not readable now */
    int depth;     /* block depth of the declaration */
} Var;

static Fn fns[MAX_FNS]; /* the program's async functions */
static int nfns;        /* how many */

/* The state of the body being generated. */
typedef struct {
    int fn;                   /* index in fns, or -1 for async_main */
    Var vars[MAX_VARS];       /* declared variables, innermost last */
    int nvars;                /* how many */
    int depth;                /* current block depth; the body is depth 1 */
    int loops;                /* enclosing loops (continue is allowed) */
    int breakables;           /* enclosing loops and switches (break) */
    int exits[MAX_LABELS];    /* labels just after enclosing loops */
    int nexits;               /* how many */
    unsigned long mult;       /* how often the current point runs per call */
    unsigned long cost;       /* work bound accumulated so far */
    unsigned long budget;     /* the bound cost must stay under */
    int ntemps;               /* comma temporaries t0.. used */
    int nlabels;              /* labels L0.. used */
    int ncounters;            /* loop counters used */
    int stmts_left;           /* statements still to generate */
} Ctx;

static int site_counter; /* distinct trace() site numbers, program-wide */

/* ------------------------------------------------------------------------ */
/* Variables and scopes                                                     */
/* ------------------------------------------------------------------------ */

static Var *add_var(Ctx *c, const char *name, VarKind kind, int len, int readonly)
{
    if (c->nvars == MAX_VARS) {
        fprintf(stderr, "randprog: too many variables\n");
        exit(2);
    }
    Var *v = &c->vars[c->nvars++];
    snprintf(v->name, sizeof v->name, "%s", name);
    v->kind = kind;
    v->len = len;
    v->readonly = readonly;
    v->noaddr = 0;
    v->hidden = 0;
    v->depth = c->depth;
    return v;
}

static void enter_block(Ctx *c)
{
    c->depth++;
}

static void leave_block(Ctx *c)
{
    c->depth--;
    while (c->nvars > 0 && c->vars[c->nvars - 1].depth > c->depth)
        c->nvars--;
}

/* True if v is hidden by a later variable of the same name. */
static int shadowed(const Ctx *c, int v)
{
    for (int i = v + 1; i < c->nvars; i++)
        if (strcmp(c->vars[i].name, c->vars[v].name) == 0)
            return 1;
    return 0;
}

/* Picks a random visible variable of the given kind, writable (and so a
 * possible pointer target) if asked; returns NULL if there is none. */
static const Var *pick_var(const Ctx *c, VarKind kind, int writable)
{
    int cand[MAX_VARS], n = 0;
    for (int i = 0; i < c->nvars; i++) {
        const Var *v = &c->vars[i];
        if (v->kind != kind || v->hidden || (writable && (v->readonly || v->noaddr)) || shadowed(c, i))
            continue;
        cand[n++] = i;
    }
    return n ? &c->vars[cand[rnd((unsigned)n)]] : NULL;
}

/* True if a variable named `name` is declared in the current block. */
static int declared_here(const Ctx *c, const char *name)
{
    for (int i = 0; i < c->nvars; i++)
        if (c->vars[i].depth == c->depth && strcmp(c->vars[i].name, name) == 0)
            return 1;
    return 0;
}

/* Chooses a name for a new local of a kind: from a small pool, so that inner
 * blocks often shadow outer names, but never one already declared in this
 * block. Writes it to out; returns 0 if the pool is exhausted here. */
static int new_name(const Ctx *c, VarKind kind, char *out, size_t size)
{
    static const char *const prefix[] = {"x", "s", "a", "q"};
    static const int pool[] = {6, 3, 3, 3};
    /* In nested blocks, sometimes shadow the scratch variable, a parameter
     * or a static local. */
    if (c->depth > 1 && chance(15)) {
        static const char *const outer[] = {"w", "p0", "p1", "st0", "ps", "out"};
        int k = kind == V_U ? (int)rnd(4) : kind == V_S ? 4 : kind == V_PTR ? 5 : -1;
        if (k >= 0 && !declared_here(c, outer[k])) {
            snprintf(out, size, "%s", outer[k]);
            return 1;
        }
    }
    int start = (int)rnd((unsigned)pool[kind]);
    for (int k = 0; k < pool[kind]; k++) {
        snprintf(out, size, "%s%d", prefix[kind], (start + k) % pool[kind]);
        if (!declared_here(c, out))
            return 1;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Expressions                                                              */
/* ------------------------------------------------------------------------ */

static int gen_expr(Ctx *c, Buf *b, int depth, int allow_eff);
static int gen_sexpr(Ctx *c, Buf *b, int depth, int allow_eff);

/* True if the current point can afford `work` more units of cost. */
static int affordable(const Ctx *c, unsigned long work)
{
    return c->cost + c->mult * work <= c->budget;
}

static void spend(Ctx *c, unsigned long work)
{
    c->cost += c->mult * work;
}

/* Picks a callee for an await from the current function: one that returns
 * `ret` (or any kind if ret < 0), with or without a pointer parameter as
 * asked, and whose cost fits. Returns its index or -1. */
static int pick_callee(const Ctx *c, int ret, int ptr_ok)
{
    int cand[MAX_FNS], n = 0;
    for (int j = c->fn + 1; j < nfns; j++) {
        if (ret >= 0 && (int)fns[j].ret != ret)
            continue;
        if (fns[j].has_ptr && !ptr_ok)
            continue;
        if (!affordable(c, fns[j].cost + 1))
            continue;
        cand[n++] = j;
    }
    return n ? cand[rnd((unsigned)n)] : -1;
}

/* Writes a pointer to a writable unsigned lvalue, for an `unsigned *`
 * argument or initialiser. Always succeeds: there is always a pointer target
 * (the function's scratch variable `w` is one). */
static void gen_pointer(Ctx *c, Buf *b)
{
    for (int tries = 0; tries < 8; tries++) {
        const Var *v;
        switch (rnd(4)) {
        case 0:
            if ((v = pick_var(c, V_U, 1))) {
                bput(b, "&%s", v->name);
                return;
            }
            break;
        case 1:
            if ((v = pick_var(c, V_ARR, 1))) {
                bput(b, "&%s[%u]", v->name, rnd((unsigned)v->len));
                return;
            }
            break;
        case 2:
            if ((v = pick_var(c, V_S, 1))) {
                if (chance(50))
                    bput(b, "&%s.a", v->name);
                else
                    bput(b, "&%s.v[%u]", v->name, rnd(STRUCT_LEN));
                return;
            }
            break;
        default:
            if ((v = pick_var(c, V_PTR, 0))) {
                bput(b, "%s", v->name);
                return;
            }
            break;
        }
    }
    bput(b, "&w");
}

/* Writes the argument list of a call to fns[j] (without parentheses).
 * Returns whether an argument has an effect; at most one does. */
static int gen_args(Ctx *c, Buf *b, int j, int depth, int allow_eff)
{
    int eff = 0, first = 1;
    if (fns[j].has_ptr) {
        gen_pointer(c, b);
        first = 0;
    }
    for (int k = 0; k < fns[j].nu; k++) {
        if (!first)
            bput(b, ", ");
        first = 0;
        eff |= gen_expr(c, b, depth, allow_eff && !eff && chance(60));
    }
    if (fns[j].has_s) {
        if (!first)
            bput(b, ", ");
        eff |= gen_sexpr(c, b, depth, allow_eff && !eff);
    }
    return eff;
}

/* Writes a pure leaf: a literal or a read of a visible variable. */
static void gen_leaf(Ctx *c, Buf *b)
{
    const Var *v;
    switch (rnd(8)) {
    case 0:
    case 1:
        break;
    case 2:
        if ((v = pick_var(c, V_S, 0))) {
            if (chance(50))
                bput(b, "%s.%c", v->name, chance(50) ? 'a' : 'b');
            else
                bput(b, "%s.v[%u]", v->name, rnd(STRUCT_LEN));
            return;
        }
        break;
    case 3:
        if ((v = pick_var(c, V_ARR, 0))) {
            bput(b, "%s[%u]", v->name, rnd((unsigned)v->len));
            return;
        }
        break;
    case 4:
        if ((v = pick_var(c, V_PTR, 0))) {
            bput(b, "*%s", v->name);
            return;
        }
        break;
    default:
        if ((v = pick_var(c, V_U, 0))) {
            bput(b, "%s", v->name);
            return;
        }
        break;
    }
    if (chance(70))
        bput(b, "%uu", rnd(20));
    else
        bput(b, "%uu", (unsigned)rnd64());
}

/* Writes an expression with an effect (it awaits, or changes g_sum or a
 * temporary). Falls back to a yield when no callee is affordable. */
static void gen_eff(Ctx *c, Buf *b, int depth)
{
    int j;
    switch (rnd(10)) {
    case 0:
    case 1:
    case 2:
        if ((j = pick_callee(c, RET_U, 0)) >= 0) {
            spend(c, fns[j].cost + 1);
            bput(b, "await(f%d(", j);
            gen_args(c, b, j, depth - 1, 1);
            bput(b, "))");
            return;
        }
        break;
    case 3:
        if ((j = pick_callee(c, RET_S, 0)) >= 0) {
            spend(c, fns[j].cost + 1);
            bput(b, "await(f%d(", j);
            gen_args(c, b, j, depth - 1, 1);
            if (chance(50))
                bput(b, ")).%c", chance(50) ? 'a' : 'b');
            else
                bput(b, ")).v[%u]", rnd(STRUCT_LEN));
            return;
        }
        break;
    case 4:
        if ((j = pick_callee(c, RET_VOID, 0)) >= 0) {
            spend(c, fns[j].cost + 1);
            bput(b, "(await(f%d(", j);
            gen_args(c, b, j, depth - 1, 1);
            bput(b, ")), ");
            gen_expr(c, b, depth - 1, 1);
            bput(b, ")");
            return;
        }
        break;
    case 5: {
        int t = c->ntemps++;
        bput(b, "(t%d = ", t);
        gen_expr(c, b, depth - 1, 1);
        bput(b, ", (t%d %s ", t, chance(50) ? "+" : "^");
        gen_expr(c, b, depth - 1, 1);
        bput(b, "))");
        return;
    }
    case 6:
        bput(b, "mixr(");
        gen_expr(c, b, depth - 1, 1);
        bput(b, ")");
        return;
    default:
        break;
    }
    spend(c, 1);
    bput(b, "(await(ac_yield()), ");
    gen_expr(c, b, depth - 1, 1);
    bput(b, ")");
}

static bool type_like(const char *text);

/* Writes the left operand of a binary operator, as gen_expr. A parenthesis
 * whose text could also be a type name, as in `(a * (await(f()), b)) && c`,
 * is read by the C grammar as a cast of `&&c` (or of `-c`, `*c`...), and
 * asyncc rejects the await it then cannot see: such an operand is written
 * `((...) | 0u)`, the same value, followed by an operator that cannot be
 * unary. */
static int gen_left(Ctx *c, Buf *b, int depth, int allow_eff)
{
    Buf t = {0};
    int eff = gen_expr(c, &t, depth, allow_eff);
    const char *text = t.p ? t.p : "";
    if (text[0] == '(' && type_like(text))
        bput(b, "(%s | 0u)", text);
    else
        bput(b, "%s", text);
    bfree(&t);
    return eff;
}

/*
 * Writes an unsigned expression of at most `depth` levels. If allow_eff is 0
 * the expression is pure. Returns whether it has an effect.
 */
static int gen_expr(Ctx *c, Buf *b, int depth, int allow_eff)
{
    static const char *const arith[] = {"+", "-", "*", "^", "|", "&"};
    static const char *const cmp[] = {"<", "<=", "==", "!=", ">"};
    if (depth <= 0 || chance(20)) {
        gen_leaf(c, b);
        return 0;
    }
    if (allow_eff && chance(35)) {
        gen_eff(c, b, depth);
        return 1;
    }
    int e1, e2, e3, left;
    switch (rnd(12)) {
    case 0:
        bput(b, "(%s", chance(50) ? "~" : "-");
        e1 = gen_expr(c, b, depth - 1, allow_eff);
        bput(b, ")");
        return e1;
    case 1:
    case 2:
    case 3:
        /* Unsequenced operands: at most one side may have an effect. */
        left = allow_eff && chance(50);
        bput(b, "(");
        e1 = gen_left(c, b, depth - 1, left);
        bput(b, " %s ", arith[rnd(6)]);
        e2 = gen_expr(c, b, depth - 1, allow_eff && !e1);
        bput(b, ")");
        return e1 | e2;
    case 4:
        left = allow_eff && chance(50);
        bput(b, "(");
        e1 = gen_left(c, b, depth - 1, left);
        if (chance(50)) {
            bput(b, " %s (", chance(50) ? "<<" : ">>");
            e2 = gen_expr(c, b, depth - 1, allow_eff && !e1);
            bput(b, " & 15u))");
        } else {
            bput(b, " %s (", chance(50) ? "/" : "%");
            e2 = gen_expr(c, b, depth - 1, allow_eff && !e1);
            bput(b, " | 1u))");
        }
        return e1 | e2;
    case 5:
        left = allow_eff && chance(50);
        bput(b, "(unsigned)(");
        e1 = gen_expr(c, b, depth - 1, left);
        bput(b, " %s ", cmp[rnd(5)]);
        e2 = gen_expr(c, b, depth - 1, allow_eff && !e1);
        bput(b, ")");
        return e1 | e2;
    case 6:
        left = allow_eff && chance(50);
        bput(b, "hsh(");
        e1 = gen_expr(c, b, depth - 1, left);
        bput(b, ", ");
        e2 = gen_expr(c, b, depth - 1, allow_eff && !e1);
        bput(b, ")");
        return e1 | e2;
    case 7:
    case 8:
        /* && and || sequence their operands: both may have effects. */
        bput(b, "(unsigned)(");
        e1 = gen_left(c, b, depth - 1, allow_eff);
        bput(b, " %s ", chance(50) ? "&&" : "||");
        e2 = gen_expr(c, b, depth - 1, allow_eff);
        bput(b, ")");
        return e1 | e2;
    case 9:
        bput(b, "(");
        e1 = gen_expr(c, b, depth - 1, allow_eff);
        bput(b, " ? ");
        e2 = gen_expr(c, b, depth - 1, allow_eff);
        bput(b, " : ");
        e3 = gen_expr(c, b, depth - 1, allow_eff);
        bput(b, ")");
        return e1 | e2 | e3;
    case 10:
        bput(b, "(unsigned)!");
        return gen_expr(c, b, depth - 1, allow_eff);
    default: {
        /* An array element with a computed index. */
        const Var *v = pick_var(c, V_ARR, 0);
        if (!v) {
            gen_leaf(c, b);
            return 0;
        }
        bput(b, "%s[(", v->name);
        e1 = gen_expr(c, b, depth - 1, allow_eff);
        bput(b, ") %% %du]", v->len);
        return e1;
    }
    }
}

/* Writes a braced initialiser or compound-literal body for struct rs. */
static int gen_struct_init(Ctx *c, Buf *b, int depth, int allow_eff)
{
    int eff = 0;
    bput(b, "{");
    eff |= gen_expr(c, b, depth, allow_eff && chance(40));
    bput(b, ", ");
    eff |= gen_expr(c, b, depth, allow_eff && !eff && chance(40));
    bput(b, ", {");
    for (int k = 0; k < STRUCT_LEN; k++) {
        if (k)
            bput(b, ", ");
        eff |= gen_expr(c, b, depth, allow_eff && !eff && chance(30));
    }
    bput(b, "}}");
    return eff;
}

/* Writes an expression of type struct rs. Returns whether it has an effect. */
static int gen_sexpr(Ctx *c, Buf *b, int depth, int allow_eff)
{
    const Var *v;
    int j, e1, e2, e3;
    switch (rnd(5)) {
    case 0:
        if (allow_eff && depth > 0 && (j = pick_callee(c, RET_S, 0)) >= 0) {
            spend(c, fns[j].cost + 1);
            bput(b, "await(f%d(", j);
            gen_args(c, b, j, depth - 1, 1);
            bput(b, "))");
            return 1;
        }
        break;
    case 1:
        if (depth > 0) {
            bput(b, "(");
            e1 = gen_expr(c, b, depth - 1, allow_eff);
            bput(b, " ? ");
            e2 = gen_sexpr(c, b, depth - 1, allow_eff);
            bput(b, " : ");
            e3 = gen_sexpr(c, b, depth - 1, allow_eff);
            bput(b, ")");
            return e1 | e2 | e3;
        }
        break;
    case 2:
    case 3:
        if ((v = pick_var(c, V_S, 0))) {
            bput(b, "%s", v->name);
            return 0;
        }
        break;
    default:
        break;
    }
    bput(b, "(struct rs)");
    return gen_struct_init(c, b, depth > 0 ? depth - 1 : 0, allow_eff);
}

/* ------------------------------------------------------------------------ */
/* Statements                                                               */
/* ------------------------------------------------------------------------ */

static void gen_block_body(Ctx *c, Buf *b, int level, int nstmts);
static void gen_stmt(Ctx *c, Buf *b, int level);

/* Expression depth for the current statement: smaller in deep nesting. */
static int edepth(const Ctx *c)
{
    return 1 + (int)rnd(c->depth > 3 ? 2 : 3);
}

/* Writes `return ...;` for the current function's result kind. */
static void gen_return_value(Ctx *c, Buf *b)
{
    if (c->fn < 0) {
        bput(b, "return 0;\n");
        return;
    }
    switch (fns[c->fn].ret) {
    case RET_U:
        bput(b, "return ");
        gen_expr(c, b, edepth(c), 1);
        bput(b, ";\n");
        break;
    case RET_S:
        bput(b, "return ");
        gen_sexpr(c, b, edepth(c), 1);
        bput(b, ";\n");
        break;
    case RET_VOID:
        bput(b, "return;\n");
        break;
    }
}

/* Hides (or shows again) every variable called `name`: in C a declarator's
 * name is in scope in its own initialiser, so the initialiser must not read
 * any variable of that name. */
static void hide_name(Ctx *c, const char *name, int hidden)
{
    for (int i = 0; i < c->nvars; i++)
        if (strcmp(c->vars[i].name, name) == 0)
            c->vars[i].hidden = hidden;
}

/* Writes a declaration of a new local and adds it to the scope. */
static void gen_decl(Ctx *c, Buf *b, int level)
{
    char name[16];
    unsigned k = rnd(10);
    VarKind kind = k < 5 ? V_U : k < 7 ? V_S : k < 9 ? V_ARR : V_PTR;
    if (!new_name(c, kind, name, sizeof name)) {
        kind = V_U;
        snprintf(name, sizeof name, "y%d", c->ncounters++);
    }
    hide_name(c, name, 1);
    indent(b, level);
    int is_const = 0, is_volatile = 0, len = 0;
    switch (kind) {
    case V_U:
        /* `w` is the fallback assignment and pointer target: keep it plain. */
        is_const = strcmp(name, "w") != 0 && chance(15);
        is_volatile = strcmp(name, "w") != 0 && !is_const && chance(5);
        bput(b, "%sunsigned %s = ", is_const ? "const " : is_volatile ? "volatile " : "", name);
        gen_expr(c, b, edepth(c), 1);
        break;
    case V_S:
        bput(b, "struct rs %s = ", name);
        if (chance(50))
            gen_struct_init(c, b, edepth(c) - 1, 1);
        else
            gen_sexpr(c, b, edepth(c), 1);
        break;
    case V_ARR: {
        /* Initialiser elements are indeterminately sequenced: one effect. */
        int given, eff = 0;
        len = 2 + (int)rnd(4);
        given = 1 + (int)rnd((unsigned)len);
        bput(b, "unsigned %s[%d] = {", name, len);
        for (int i = 0; i < given; i++) {
            if (i)
                bput(b, ", ");
            eff |= gen_expr(c, b, edepth(c) - 1, !eff && chance(40));
        }
        bput(b, "}");
        break;
    }
    case V_PTR:
        bput(b, "unsigned *%s = ", name);
        gen_pointer(c, b);
        break;
    }
    bput(b, ";\n");
    hide_name(c, name, 0);
    Var *v = add_var(c, name, kind, len, is_const);
    v->noaddr = is_volatile;
}

/* Writes an assignment to a writable lvalue. */
static void gen_assign(Ctx *c, Buf *b, int level)
{
    static const char *const ops[] = {"=", "+=", "-=", "*=", "^=", "|="};
    const char *op = ops[rnd(6)];
    const Var *v;
    indent(b, level);
    switch (rnd(5)) {
    case 0:
        if ((v = pick_var(c, V_ARR, 1))) {
            /* Index and value are unsequenced: one effect at most. */
            int left = chance(40);
            bput(b, "%s[(", v->name);
            int e = gen_expr(c, b, edepth(c) - 1, left);
            bput(b, ") %% %du] %s ", v->len, op);
            gen_expr(c, b, edepth(c), !e);
            bput(b, ";\n");
            return;
        }
        break;
    case 1:
        if ((v = pick_var(c, V_S, 1))) {
            if (chance(25)) {
                bput(b, "%s = ", v->name);
                gen_sexpr(c, b, edepth(c), 1);
            } else if (chance(50)) {
                bput(b, "%s.%c %s ", v->name, chance(50) ? 'a' : 'b', op);
                gen_expr(c, b, edepth(c), 1);
            } else {
                bput(b, "%s.v[%u] %s ", v->name, rnd(STRUCT_LEN), op);
                gen_expr(c, b, edepth(c), 1);
            }
            bput(b, ";\n");
            return;
        }
        break;
    case 2:
        if ((v = pick_var(c, V_PTR, 0))) {
            bput(b, "*%s %s ", v->name, op);
            gen_expr(c, b, edepth(c), 1);
            bput(b, ";\n");
            return;
        }
        break;
    default:
        break;
    }
    v = pick_var(c, V_U, 1);
    bput(b, "%s %s ", v ? v->name : "w", op);
    gen_expr(c, b, edepth(c), 1);
    bput(b, ";\n");
}

/* Writes `await(fj(...));` for any affordable callee, or a yield. */
/* Whether text could also be read as C type names and abstract
 * declarators: identifiers, '*', parentheses, commas, and brackets (with
 * anything in them: an array declarator's size) only. */
static bool type_like(const char *text)
{
    bool start = true; /* at the start of a token */
    int brackets = 0;
    for (const char *p = text; *p; p++) {
        if (*p == '[') {
            brackets++;
        } else if (*p == ']') {
            brackets--;
        } else if (brackets > 0) {
            continue;
        } else if (isalpha((unsigned char)*p) || *p == '_') {
            start = false;
        } else if (isdigit((unsigned char)*p)) {
            if (start)
                return false; /* a number: not a type */
        } else if (strchr(" *(),", *p)) {
            start = true;
        } else {
            return false;
        }
    }
    return true;
}

/* Writes `await(fj(ARGS))SUFFIX;` with arguments from gen_args. A bare one
 * (its value unused) whose arguments also parse as a declarator, as in
 * `await(f((w * (x, w))));`, is read as a type by the C grammar (asyncc
 * rejects it and says to write (void)): it gets the (void). */
static void gen_await_stmt(Ctx *c, Buf *b, int j, int depth, int allow_eff, bool bare,
                           const char *suffix)
{
    Buf args = {0};
    gen_args(c, &args, j, depth, allow_eff);
    const char *a = args.p ? args.p : "";
    bput(b, "%sawait(f%d(%s))%s;\n", bare && type_like(a) ? "(void)" : "", j, a, suffix);
    bfree(&args);
}

static void gen_call_stmt(Ctx *c, Buf *b, int level)
{
    int j = pick_callee(c, -1, 1);
    indent(b, level);
    if (j < 0) {
        spend(c, 1);
        bput(b, "await(ac_yield());\n");
        return;
    }
    spend(c, fns[j].cost + 1);
    /* Not for a callee that writes through a pointer: in `x += await(f(&x))`
     * the read of x and the callee's write are indeterminately sequenced. */
    bool bare = true;
    if (fns[j].ret == RET_U && !fns[j].has_ptr && chance(40)) {
        const Var *v = pick_var(c, V_U, 1);
        bput(b, "%s %s ", v ? v->name : "w", chance(50) ? "=" : "+=");
        bare = false;
    }
    gen_await_stmt(c, b, j, edepth(c), 1, bare, "");
}

/* Writes `{ ... }` with its own scope (a shadowing opportunity). */
static void gen_braced(Ctx *c, Buf *b, int level, int nstmts)
{
    bput(b, "{\n");
    enter_block(c);
    gen_block_body(c, b, level + 1, nstmts);
    leave_block(c);
    indent(b, level);
    bput(b, "}");
}

/* Number of statements for a nested block. */
static int nested_len(const Ctx *c)
{
    int n = 1 + (int)rnd(c->depth > 3 ? 2 : 4);
    return n < c->stmts_left ? n : (c->stmts_left > 0 ? c->stmts_left : 1);
}

static void gen_for(Ctx *c, Buf *b, int level)
{
    int n = 1 + (int)rnd(4), i = c->ncounters++;
    int exit_label = chance(30) ? c->nlabels++ : -1;
    unsigned long saved = c->mult;
    indent(b, level);
    enter_block(c);
    c->mult *= (unsigned long)n + 1;
    bput(b, "for (unsigned i%d = ", i);
    if (chance(30)) {
        bput(b, "(");
        gen_expr(c, b, 2, 1);
        bput(b, ") %% 2u");
    } else {
        bput(b, "0u");
    }
    bput(b, "; i%d < %du", i, n);
    if (chance(35)) {
        bput(b, " && ");
        gen_expr(c, b, 2, 1);
    }
    bput(b, "; ");
    switch (rnd(4)) {
    case 0:
        bput(b, "i%d++, await(ac_yield())", i);
        break;
    case 1:
        bput(b, "i%d += 1u + (", i);
        gen_expr(c, b, 2, 1);
        bput(b, ") %% 2u");
        break;
    default:
        bput(b, "i%d++", i);
        break;
    }
    bput(b, ") ");
    char name[16];
    snprintf(name, sizeof name, "i%d", i);
    add_var(c, name, V_U, 0, 1);
    c->loops++;
    c->breakables++;
    if (exit_label >= 0)
        c->exits[c->nexits++] = exit_label;
    gen_braced(c, b, level, nested_len(c));
    bput(b, "\n");
    if (exit_label >= 0)
        c->nexits--;
    c->loops--;
    c->breakables--;
    leave_block(c);
    c->mult = saved;
    if (exit_label >= 0) {
        indent(b, level);
        bput(b, "L%d:;\n", exit_label);
    }
}

static void gen_while(Ctx *c, Buf *b, int level)
{
    int n = 1 + (int)rnd(4), w = c->ncounters++, is_do = chance(40);
    unsigned long saved = c->mult;
    char name[16];
    snprintf(name, sizeof name, "w%d", w);
    indent(b, level);
    bput(b, "{\n");
    enter_block(c);
    indent(b, level + 1);
    bput(b, "unsigned w%d = %du;\n", w, n);
    add_var(c, name, V_U, 0, 1);
    c->mult *= (unsigned long)n + 1;
    indent(b, level + 1);
    Buf cond = {0};
    bput(&cond, "w%d > 0u", w);
    if (chance(60)) {
        bput(&cond, " && ");
        gen_expr(c, &cond, 2, 1);
    }
    if (is_do)
        bput(b, "do {\n");
    else
        bput(b, "while (%s) {\n", cond.p);
    enter_block(c);
    indent(b, level + 2);
    bput(b, "w%d--;\n", w);
    c->loops++;
    c->breakables++;
    gen_block_body(c, b, level + 2, nested_len(c));
    c->loops--;
    c->breakables--;
    leave_block(c);
    indent(b, level + 1);
    if (is_do)
        bput(b, "} while (%s);\n", cond.p);
    else
        bput(b, "}\n");
    bfree(&cond);
    leave_block(c);
    c->mult = saved;
    indent(b, level);
    bput(b, "}\n");
}

static void gen_switch(Ctx *c, Buf *b, int level)
{
    int ncases = 2 + (int)rnd(3);
    indent(b, level);
    bput(b, "switch ((");
    gen_expr(c, b, edepth(c), 1);
    bput(b, ") %% %du) {\n", ncases + 1);
    c->breakables++;
    int has_default = chance(70);
    for (int k = 0; k < ncases; k++) {
        indent(b, level);
        if (has_default && k == ncases - 1)
            bput(b, "default:\n");
        else
            bput(b, "case %du:\n", k);
        indent(b, level + 1);
        gen_braced(c, b, level + 1, nested_len(c));
        bput(b, "\n");
        if (chance(65)) {
            indent(b, level + 1);
            bput(b, "break;\n");
        } else {
            indent(b, level + 1);
            bput(b, "/* fall through */\n");
        }
    }
    c->breakables--;
    indent(b, level);
    bput(b, "}\n");
}

/* A forward goto over a block: `if (e) goto L; { ... } L:;` */
static void gen_goto_forward(Ctx *c, Buf *b, int level)
{
    int l = c->nlabels++;
    indent(b, level);
    bput(b, "if (");
    gen_expr(c, b, edepth(c), 1);
    bput(b, ")\n");
    indent(b, level + 1);
    bput(b, "goto L%d;\n", l);
    indent(b, level);
    gen_braced(c, b, level, nested_len(c));
    bput(b, "\n");
    indent(b, level);
    bput(b, "L%d:;\n", l);
}

/* A bounded backward goto: a counter, a label, a block, a conditional jump
 * back. */
static void gen_goto_backward(Ctx *c, Buf *b, int level)
{
    int l = c->nlabels++, g = c->ncounters++, n = 1 + (int)rnd(3);
    unsigned long saved = c->mult;
    char name[16];
    snprintf(name, sizeof name, "g%d", g);
    indent(b, level);
    bput(b, "{\n");
    enter_block(c);
    indent(b, level + 1);
    bput(b, "unsigned g%d = %du;\n", g, n);
    add_var(c, name, V_U, 0, 1);
    c->mult *= (unsigned long)n + 1;
    indent(b, level);
    bput(b, "L%d:\n", l);
    indent(b, level + 1);
    gen_braced(c, b, level + 1, nested_len(c));
    bput(b, "\n");
    indent(b, level + 1);
    bput(b, "if (g%d > 0u", g);
    if (chance(40)) {
        bput(b, " && ");
        gen_expr(c, b, 2, 1);
    }
    bput(b, ") {\n");
    indent(b, level + 2);
    bput(b, "g%d--;\n", g);
    indent(b, level + 2);
    bput(b, "goto L%d;\n", l);
    indent(b, level + 1);
    bput(b, "}\n");
    leave_block(c);
    c->mult = saved;
    indent(b, level);
    bput(b, "}\n");
}

/* `if (e) { ...; return v; }` */
static void gen_early_return(Ctx *c, Buf *b, int level)
{
    indent(b, level);
    bput(b, "if ((");
    gen_expr(c, b, edepth(c), 1);
    bput(b, ") %% 3u == 0u) {\n");
    indent(b, level + 1);
    bput(b, "trace(%du, ", site_counter++);
    gen_expr(c, b, 1, 0);
    bput(b, ");\n");
    indent(b, level + 1);
    gen_return_value(c, b);
    indent(b, level);
    bput(b, "}\n");
}

static void gen_if(Ctx *c, Buf *b, int level)
{
    indent(b, level);
    bput(b, "if (");
    gen_expr(c, b, edepth(c), 1);
    bput(b, ") ");
    gen_braced(c, b, level, nested_len(c));
    if (chance(50)) {
        bput(b, " else ");
        if (chance(30)) {
            bput(b, "if (");
            gen_expr(c, b, edepth(c), 1);
            bput(b, ") ");
            gen_braced(c, b, level, nested_len(c));
            bput(b, " else ");
        }
        gen_braced(c, b, level, nested_len(c));
    }
    bput(b, "\n");
}

/* Writes one statement (possibly compound) at indentation `level`. */
static void gen_stmt(Ctx *c, Buf *b, int level)
{
    c->stmts_left--;
    spend(c, 1);
    int nest_ok = c->depth < 5 && c->stmts_left > 1 && c->mult < 200;
    for (;;) {
        unsigned k = rnd(100);
        if (k < 14) {
            gen_decl(c, b, level);
        } else if (k < 26) {
            gen_assign(c, b, level);
        } else if (k < 36) {
            gen_call_stmt(c, b, level);
        } else if (k < 41) {
            indent(b, level);
            spend(c, 1);
            bput(b, "await(ac_yield());\n");
        } else if (k < 46) {
            indent(b, level);
            Buf e = {0};
            gen_expr(c, &e, edepth(c), 1);
            /* `mix(mixr((p0 * i1)));` is read as a type too (see
             * gen_call_stmt). */
            const char *et = e.p ? e.p : "";
            bput(b, "%smix(%s);\n", type_like(et) && strchr(et, '(') ? "(void)" : "", et);
            bfree(&e);
        } else if (k < 50) {
            indent(b, level);
            bput(b, "trace(%du, ", site_counter++);
            gen_expr(c, b, edepth(c), 1);
            bput(b, ");\n");
        } else if (k < 53) {
            const Var *v = pick_var(c, V_U, 1);
            if (!v)
                continue;
            indent(b, level);
            bput(b, "%s ^= g_sum;\n", v->name);
        } else if (k < 60) {
            if (!nest_ok)
                continue;
            gen_if(c, b, level);
        } else if (k < 67) {
            if (!nest_ok)
                continue;
            gen_for(c, b, level);
        } else if (k < 72) {
            if (!nest_ok)
                continue;
            gen_while(c, b, level);
        } else if (k < 77) {
            if (!nest_ok)
                continue;
            gen_switch(c, b, level);
        } else if (k < 80) {
            if (!nest_ok)
                continue;
            gen_goto_forward(c, b, level);
        } else if (k < 83) {
            if (!nest_ok)
                continue;
            gen_goto_backward(c, b, level);
        } else if (k < 87) {
            if (!nest_ok)
                continue;
            indent(b, level);
            gen_braced(c, b, level, nested_len(c));
            bput(b, "\n");
        } else if (k < 91) {
            if (c->depth < 2 || c->fn < 0)
                continue;
            gen_early_return(c, b, level);
        } else if (k < 94) {
            if (!c->breakables)
                continue;
            indent(b, level);
            bput(b, "if (");
            gen_expr(c, b, 2, 1);
            bput(b, ")\n");
            indent(b, level + 1);
            bput(b, "break;\n");
        } else if (k < 97) {
            if (!c->loops)
                continue;
            indent(b, level);
            bput(b, "if (");
            gen_expr(c, b, 2, 1);
            bput(b, ")\n");
            indent(b, level + 1);
            bput(b, "continue;\n");
        } else {
            if (!c->nexits)
                continue;
            indent(b, level);
            bput(b, "if (");
            gen_expr(c, b, 2, 1);
            bput(b, ")\n");
            indent(b, level + 1);
            bput(b, "goto L%d;\n", c->exits[rnd((unsigned)c->nexits)]);
        }
        return;
    }
}

/* Writes nstmts statements, then mixes what the block declared. */
static void gen_block_body(Ctx *c, Buf *b, int level, int nstmts)
{
    int first = c->nvars;
    for (int i = 0; i < nstmts; i++)
        gen_stmt(c, b, level);
    /* Mix one of this block's own unsigned variables, if any. */
    for (int i = c->nvars - 1; i >= first; i--) {
        if (c->vars[i].depth == c->depth && c->vars[i].kind == V_U && !shadowed(c, i)) {
            indent(b, level);
            bput(b, "mix(%s);\n", c->vars[i].name);
            break;
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Functions and the program                                                */
/* ------------------------------------------------------------------------ */

static const char *ret_type(RetKind r)
{
    return r == RET_U ? "unsigned" : r == RET_S ? "struct rs" : "void";
}

/* Writes fns[j]'s declarator: `static async(T) fj(params)`. */
static void gen_signature(Buf *b, int j)
{
    const Fn *f = &fns[j];
    int first = 1;
    bput(b, "%sasync(%s) f%d(", f->is_static ? "static " : "", ret_type(f->ret), j);
    if (f->has_ptr) {
        bput(b, "unsigned *out");
        first = 0;
    }
    for (int k = 0; k < f->nu; k++) {
        bput(b, "%sunsigned p%d", first ? "" : ", ", k);
        first = 0;
    }
    if (f->has_s) {
        bput(b, "%sstruct rs ps", first ? "" : ", ");
        first = 0;
    }
    if (first)
        bput(b, "void");
    bput(b, ")");
}

/* Generates the definition of fns[j] (or async_main for j < 0) into out and
 * returns the cost bound of one call. */
static unsigned long gen_function(Buf *out, int j)
{
    static Ctx ctx; /* large; one at a time */
    Ctx *c = &ctx;
    memset(c, 0, sizeof *c);
    c->fn = j;
    c->depth = 1;
    c->mult = 1;
    c->budget = j < 0 ? MAIN_BUDGET : FN_BUDGET;
    c->stmts_left = j < 0 ? 10 + (int)rnd(8) : 8 + (int)rnd(20);

    Buf body = {0};
    add_var(c, "w", V_U, 0, 0);
    if (j >= 0) {
        const Fn *f = &fns[j];
        if (f->has_ptr)
            add_var(c, "out", V_PTR, 0, 0);
        for (int k = 0; k < f->nu; k++) {
            char name[16];
            snprintf(name, sizeof name, "p%d", k);
            add_var(c, name, V_U, 0, 0);
        }
        if (f->has_s)
            add_var(c, "ps", V_S, 0, 0);
    }
    int nstatic = chance(30) ? 1 + (int)rnd(2) : 0;
    for (int k = 0; k < nstatic; k++) {
        char name[16];
        snprintf(name, sizeof name, "st%d", k);
        add_var(c, name, V_U, 0, 0);
        indent(&body, 1);
        bput(&body, "static unsigned st%d = %uu;\n", k, rnd(1000));
    }

    /* async_main first awaits every function once, so all of them run. */
    if (j < 0) {
        for (int k = 0; k < nfns; k++) {
            c->budget += fns[k].cost + 1;
            spend(c, fns[k].cost + 1);
            indent(&body, 1);
            bool bare = true;
            if (fns[k].ret == RET_U && !fns[k].has_ptr) {
                bput(&body, "w += ");
                bare = false;
            } else if (fns[k].ret == RET_S && !fns[k].has_ptr) {
                bput(&body, "w ^= ");
                bare = false;
            }
            gen_await_stmt(c, &body, k, 2, 0, bare,
                           fns[k].ret == RET_S && !fns[k].has_ptr ? ".a" : "");
        }
    }
    while (c->stmts_left > 0)
        gen_stmt(c, &body, 1);
    indent(&body, 1);
    bput(&body, "mix(w);\n");
    indent(&body, 1);
    if (j >= 0)
        bput(&body, "trace(%du, w);\n", site_counter++);
    else
        bput(&body, "printf(\"checksum %%08x w %%08x lines %%u\\n\", g_sum, w, g_lines);\n");
    indent(&body, 1);
    gen_return_value(c, &body);

    if (j < 0)
        bput(out, "async(int) async_main(int argc, char **argv)\n{\n");
    else {
        gen_signature(out, j);
        bput(out, "\n{\n");
    }
    if (j < 0) {
        indent(out, 1);
        bput(out, "(void)argc;\n");
        indent(out, 1);
        bput(out, "(void)argv;\n");
    }
    indent(out, 1);
    bput(out, "unsigned w = %uu;\n", rnd(100));
    if (c->ntemps) {
        indent(out, 1);
        bput(out, "unsigned t0 = 0u");
        for (int t = 1; t < c->ntemps; t++)
            bput(out, ", t%d = 0u", t);
        bput(out, ";\n");
    }
    bput(out, "%s", body.p ? body.p : "");
    bput(out, "}\n\n");
    bfree(&body);
    return c->cost;
}

static const char prelude[] =
    "#include <asyncc.h>\n"
    "#include <stdio.h>\n"
    "\n"
    "struct rs {\n"
    "    unsigned a;\n"
    "    unsigned b;\n"
    "    unsigned v[3];\n"
    "};\n"
    "\n"
    "static unsigned g_sum = 2166136261u;\n"
    "static unsigned g_lines;\n"
    "\n"
    "static void mix(unsigned v)\n"
    "{\n"
    "    g_sum = (g_sum ^ v) * 16777619u;\n"
    "}\n"
    "\n"
    "static unsigned mixr(unsigned v)\n"
    "{\n"
    "    mix(v + 1u);\n"
    "    return v * 2654435761u;\n"
    "}\n"
    "\n"
    "static unsigned hsh(unsigned a, unsigned b)\n"
    "{\n"
    "    return (a * 31u) ^ (b + 0x9e3779b9u);\n"
    "}\n"
    "\n"
    "static void trace(unsigned site, unsigned v)\n"
    "{\n"
    "    mix(site);\n"
    "    mix(v);\n"
    "    if (g_lines++ < 60u)\n"
    "        printf(\"site %u: %08x\\n\", site, v);\n"
    "}\n"
    "\n";

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s SEED\n", argv[0]);
        return 2;
    }
    char *end;
    unsigned long long seed = strtoull(argv[1], &end, 10);
    if (*argv[1] == '\0' || *end != '\0') {
        fprintf(stderr, "%s: SEED must be a decimal number\n", argv[0]);
        return 2;
    }
    rng_state = seed * 0x2545f4914f6cdd1dull + 1;

    nfns = 3 + (int)rnd(MAX_FNS - 2);
    for (int j = 0; j < nfns; j++) {
        Fn *f = &fns[j];
        unsigned k = rnd(10);
        f->ret = k < 6 ? RET_U : k < 8 ? RET_S : RET_VOID;
        f->nu = (int)rnd(4);
        f->has_s = chance(25);
        f->has_ptr = chance(20);
        f->is_static = chance(60);
    }

    /* Callees first: fj may only await fk with k > j. */
    Buf defs[MAX_FNS] = {{0}};
    for (int j = nfns - 1; j >= 0; j--)
        fns[j].cost = gen_function(&defs[j], j) + 1;
    Buf mainb = {0};
    gen_function(&mainb, -1);

    Buf prog = {0};
    bput(&prog, "/* randprog %llu: %d async functions */\n", seed, nfns);
    bput(&prog, "%s", prelude);
    /* Prototypes for everything, then definitions in a shuffled order. */
    for (int j = 0; j < nfns; j++) {
        gen_signature(&prog, j);
        bput(&prog, ";\n");
    }
    bput(&prog, "\n");
    int order[MAX_FNS];
    for (int j = 0; j < nfns; j++)
        order[j] = j;
    for (int j = nfns - 1; j > 0; j--) {
        int k = (int)rnd((unsigned)j + 1), t = order[j];
        order[j] = order[k];
        order[k] = t;
    }
    for (int j = 0; j < nfns; j++)
        bput(&prog, "%s", defs[order[j]].p);
    bput(&prog, "%s", mainb.p);
    fwrite(prog.p, 1, prog.len, stdout);

    for (int j = 0; j < nfns; j++)
        bfree(&defs[j]);
    bfree(&mainb);
    bfree(&prog);
    return ferror(stdout) ? 1 : 0;
}

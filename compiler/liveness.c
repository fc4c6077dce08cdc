/*
 * liveness.c: scopes, name resolution and what lives across each await.
 *
 * Input: a parsed Unit with its Sema.
 * Output, for every async function definition:
 *  - each await resolved to its callee (same-file AsyncFn, or ExtFn declared
 *    async elsewhere) and numbered with its suspend state (AC_STATE_FIRST + its
 *    index in source order);
 *  - every parameter and local as a Var, every identifier that refers to one
 *    recorded in fn->refs (C's scoping: innermost declaration in scope wins, a
 *    name is in scope from its declarator on);
 *  - for each Var the set of await states across which its value may be
 *    needed, and whether it is hoisted into the frame (parameters always are,
 *    static and extern locals never are);
 *  - the state transition relation used by --emit=states (flow_*).
 * The liveness rule is deliberately conservative and textual: a variable is
 * live across an await A in its scope when it is referred to at or after the
 * start of A's statement (but for inside A's own call, whose arguments are
 * read before A suspends), or A and a reference share a loop that lies
 * within the variable's scope, or its address is taken (arrays count) or it
 * has a cleanup attribute, or the function uses goto and the variable is
 * referred to anywhere in its scope.
 * Rejects: await outside an async function or of something not async; await
 * in an unevaluated operand (sizeof, _Alignof, typeof); a variable-length
 * array in scope of an await; alloca() memory held across an await;
 * recursion cycles among same-file async functions (unless boxed).
 */
#include "compiler.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- name resolution ---------------------------------------------------- */

typedef struct Walk {
    Unit *u;
    AsyncFn *fn;
    Vec visible; /* Var*, innermost last */
    TSNode scope;/* current scope node */
} Walk;

static Var *new_var(Walk *w, TSNode ident, TSNode decl, TSNode declarator, bool is_param)
{
    Var *v = xcalloc(1, sizeof *v);
    v->name = parse_text(w->u, ident);
    v->ident = ident;
    v->decl = decl;
    v->declarator = declarator;
    v->scope = w->scope;
    v->is_param = is_param;
    v->live_from = is_param ? ts_node_start_byte(w->fn->body) : ts_node_end_byte(declarator);
    for (TSNode d = declarator; !ts_node_is_null(d) && !type_is(d, "identifier");) {
        if (type_is(d, "array_declarator"))
            v->addr_taken = true; /* an array decays to a pointer to itself */
        TSNode inner = child_by_field(d, "declarator");
        if (ts_node_is_null(inner) && ts_node_named_child_count(d) > 0)
            inner = ts_node_named_child(d, 0);
        d = inner;
    }
    for (uint32_t i = 0; i < ts_node_child_count(decl); i++) {
        TSNode c = ts_node_child(decl, i);
        if (type_is(c, "storage_class_specifier") &&
            (parse_eq(w->u, c, "static") || parse_eq(w->u, c, "extern")))
            v->is_static = true;
    }
    v->cleanup = !is_param && !v->is_static &&
                 (parse_var_has_attr(w->u, decl, declarator, "cleanup") ||
                  sema_var_cleanup(w->u->sema, ts_node_start_byte(ident)));
    vec_push(&w->fn->vars, v);
    vec_push(&w->visible, v);
    return v;
}

static Var *resolve(Walk *w, TSNode ident)
{
    for (int i = w->visible.len - 1; i >= 0; i--) {
        Var *v = w->visible.items[i];
        if (parse_eq(w->u, ident, v->name))
            return v;
    }
    return NULL;
}

static void walk(Walk *w, TSNode n);
static void walk_except(Walk *w, TSNode n, TSNode skip);
static TSNode object_use(Unit *u, TSNode n, char *kind);

/* `ac_handle(int) *p = ...;` is a declaration to C but tree-sitter (like any
 * parser without the macro's definition) reads a multiplication; the
 * variable would go unseen, so this is rejected with the typedef fix. */
static bool misparsed_declaration(Unit *u, TSNode stmt)
{
    TSNode e = ts_node_named_child_count(stmt) ? ts_node_named_child(stmt, 0) : (TSNode){0};
    if (!ts_node_is_null(e) && type_is(e, "assignment_expression"))
        e = child_by_field(e, "left");
    if (ts_node_is_null(e) || !type_is(e, "binary_expression") ||
        !parse_eq(u, child_by_field(e, "operator"), "*"))
        return false;
    TSNode l = child_by_field(e, "left");
    return parse_is_call_to(u, l, "ac_handle") || parse_is_call_to(u, l, "ac_joinset") ||
           parse_is_call_to(u, l, "async");
}

static void walk_children(Walk *w, TSNode n)
{
    uint32_t count = ts_node_child_count(n);
    for (uint32_t i = 0; i < count; i++)
        walk(w, ts_node_child(n, i));
}

/* The variable whose storage `&e` exposes (`&x`, `&x.f`, `&x[i]`), if any. */
static void mark_address_taken(Walk *w, TSNode e)
{
    for (;;) {
        if (type_is(e, "parenthesized_expression") && ts_node_named_child_count(e) > 0)
            e = ts_node_named_child(e, 0);
        else if (type_is(e, "field_expression") || type_is(e, "subscript_expression"))
            e = child_by_field(e, "argument");
        else
            break;
        if (ts_node_is_null(e))
            return;
    }
    if (type_is(e, "identifier")) {
        Var *v = resolve(w, e);
        if (v)
            v->addr_taken = true;
    }
}

/* Records the identifier n as a reference if it names a variable in scope. */
static __attribute__((noinline)) void add_ref(Walk *w, TSNode n)
{
    Var *v = resolve(w, n);
    if (v && !v->not_variable) {
        TSNode *p = xmalloc(sizeof *p);
        *p = n;
        vec_push(&v->refs, p);
        nodemap_put(&w->fn->refs, n, v);
    }
}

/* Whether the type_identifier n is the whole operand of a typeof, where C
 * reads a variable's name as an expression. The grammar sees a type name
 * there: `typeof(x) y;` is a macro type specifier around a type descriptor,
 * and the cast `(typeof(x))e` a type `typeof` with a function declarator
 * whose one parameter is x. */
static __attribute__((noinline)) bool typeof_operand(Unit *u, TSNode n)
{
    TSNode p = parse_parent(u, n);
    if (ts_node_is_null(p) || ts_node_named_child_count(p) != 1)
        return false;
    TSNode g = parse_parent(u, p);
    if (ts_node_is_null(g))
        return false;
    if (type_is(p, "type_descriptor"))
        return type_is(g, "macro_type_specifier") && parse_is_typeof(u, child_by_field(g, "name"));
    if (!type_is(p, "parameter_declaration") || !type_is(g, "parameter_list") ||
        ts_node_named_child_count(g) != 1)
        return false;
    TSNode f = parse_parent(u, g);
    TSNode d = ts_node_is_null(f) ? f : parse_parent(u, f);
    if (ts_node_is_null(d) || !type_is(f, "abstract_function_declarator") ||
        !type_is(d, "type_descriptor"))
        return false;
    TSNode t = child_by_field(d, "type");
    return type_is(t, "type_identifier") && parse_is_typeof(u, t);
}

/* Walks the sizes of the array declarators in a typedef's declarator d,
 * not those of the parameters of a function type (their own scope). */
static __attribute__((noinline)) void walk_array_sizes(Walk *w, TSNode d)
{
    while (!ts_node_is_null(d)) {
        if (type_is(d, "array_declarator")) {
            TSNode size = child_by_field(d, "size");
            if (!ts_node_is_null(size))
                walk(w, size);
        }
        d = child_by_field(d, "declarator");
    }
}

/* The helpers below stay out of line: walk recurses as deep as the tree
 * (20,000 levels for a long sum), so its own frame must stay small. */

/* `int (*fp)(int n)`: a prototype's parameter name declares an object of its
 * own, not a reference to a variable n. */
static __attribute__((noinline)) void walk_parameter(Walk *w, TSNode n)
{
    TSNode d = child_by_field(n, "declarator");
    TSNode id = ts_node_is_null(d) ? d : parse_declarator_ident(d);
    for (uint32_t i = 0; i < ts_node_child_count(n); i++) {
        TSNode c = ts_node_child(n, i);
        if (ts_node_eq(c, d) && !ts_node_is_null(id))
            walk_except(w, c, id);
        else
            walk(w, c);
    }
}

/* A compound literal: an unnamed object of the current scope. */
static __attribute__((noinline)) void walk_literal(Walk *w, TSNode n)
{
    Literal *lit = xcalloc(1, sizeof *lit);
    lit->node = n;
    lit->scope = w->scope;
    vec_push(&w->fn->literals, lit);
    walk_children(w, n);
}

/* `make().buf`, a plain call's struct result with an array member that
 * decays to a pointer: C gives the result a temporary object that lives to
 * the end of the full expression (C11 6.2.4p8), which an await in the
 * statement outlasts. Recorded like a compound literal whose block is the
 * statement. */
static __attribute__((noinline)) void walk_member(Walk *w, TSNode n)
{
    const TypeInfo *mt = parse_eq(w->u, child_by_field(n, "operator"), ".")
                             ? sema_member_type(w->u->sema, ts_node_start_byte(n))
                             : NULL;
    if (mt && strchr(mt->canonical, '[') && !liveness_indexed_for_value(w->u, n, mt)) {
        TSNode obj = child_by_field(n, "argument");
        while (!ts_node_is_null(obj) && type_is(obj, "parenthesized_expression"))
            obj = ts_node_named_child(obj, 0);
        if (!ts_node_is_null(obj) && type_is(obj, "call_expression") &&
            !parse_is_await(w->u, obj)) {
            Literal *lit = xcalloc(1, sizeof *lit);
            lit->node = obj;
            lit->scope = parse_statement_of(w->u, n);
            lit->call = true;
            vec_push(&w->fn->literals, lit);
        } else {
            /* `int *p = s.buf;`: the array member decays to a pointer into
             * the variable s, as `&s.buf[0]` would. */
            mark_address_taken(w, n);
        }
    }
    walk_children(w, n);
}

static void walk_except(Walk *w, TSNode n, TSNode skip)
{
    if (ts_node_eq(n, skip))
        return;
    if (type_is(n, "identifier") || type_is(n, "parameter_declaration")) {
        walk(w, n);
        return;
    }
    uint32_t count = ts_node_child_count(n);
    for (uint32_t i = 0; i < count; i++)
        walk_except(w, ts_node_child(n, i), skip);
}

static void walk_declaration(Walk *w, TSNode n)
{
    uint32_t count = ts_node_child_count(n);
    for (uint32_t i = 0; i < count; i++) {
        TSNode c = ts_node_child(n, i);
        if (!parse_is_declarator(c)) {
            walk(w, c); /* specifiers: typeof(x), struct bodies, attributes */
            continue;
        }
        TSNode d = c, value = {0};
        if (type_is(c, "init_declarator")) {
            d = child_by_field(c, "declarator");
            value = child_by_field(c, "value");
        }
        TSNode ident = parse_declarator_ident(d);
        if (!ts_node_is_null(ident)) {
            /* Array sizes are evaluated before the name is in scope; the
             * name itself is the new variable, not a reference to an outer
             * one it shadows. */
            walk_except(w, d, ident);
            Var *v = new_var(w, ident, n, c, false);
            (void)v;
        }
        if (!ts_node_is_null(value))
            walk(w, value);
    }
}

/* Makes `name` (an enumerator or a typedef name) hide the variables of the
 * same name to the end of the current scope. */
static void hide(Walk *w, TSNode name)
{
    Var *e = xcalloc(1, sizeof *e);
    e->name = parse_text(w->u, name);
    e->ident = name;
    e->not_variable = true;
    vec_push(&w->visible, e);
}

/* The name a typedef's declarator d defines (`T`, or `fn_t` in
 * `(*fn_t)(void)`), or a null node. */
static TSNode typedef_name(TSNode d)
{
    while (!ts_node_is_null(d) && !type_is(d, "type_identifier"))
        d = !ts_node_is_null(child_by_field(d, "declarator")) ? child_by_field(d, "declarator")
            : type_is(d, "parenthesized_declarator") && ts_node_named_child_count(d)
                ? ts_node_named_child(d, 0)
                : (TSNode){0};
    return d;
}

/* Hides the name a typedef's declarator d defines. */
static void hide_type_name(Walk *w, TSNode d)
{
    d = typedef_name(d);
    if (!ts_node_is_null(d))
        hide(w, d);
}

static void walk(Walk *w, TSNode n)
{
    TSSymbol t = ts_node_symbol(n);
    if (SYM_IS(t, "compound_statement") || SYM_IS(t, "for_statement")) {
        int mark = w->visible.len;
        TSNode outer = w->scope;
        w->scope = n;
        walk_children(w, n);
        w->scope = outer;
        w->visible.len = mark;
    } else if (SYM_IS(t, "declaration")) {
        walk_declaration(w, n);
    } else if (SYM_IS(t, "enumerator")) {
        /* `enum { N = N + 1 }`: the value sees an outer N; from here on,
         * to the end of the scope, N is the enumerator. */
        TSNode value = child_by_field(n, "value");
        if (!ts_node_is_null(value))
            walk(w, value);
        TSNode name = child_by_field(n, "name");
        if (!ts_node_is_null(name))
            hide(w, name);
    } else if (SYM_IS(t, "identifier")) {
        add_ref(w, n);
    } else if (SYM_IS(t, "compound_literal_expression")) {
        walk_literal(w, n);
    } else if (SYM_IS(t, "field_expression")) {
        walk_member(w, n);
    } else if (SYM_IS(t, "parameter_declaration")) {
        walk_parameter(w, n);
    } else if (SYM_IS(t, "type_identifier") && typeof_operand(w->u, n)) {
        add_ref(w, n); /* typeof(x): x is a variable when one is in scope */
    } else if (SYM_IS(t, "pointer_expression")) {
        TSNode op = child_by_field(n, "operator");
        if (!ts_node_is_null(op) && parse_eq(w->u, op, "&"))
            mark_address_taken(w, child_by_field(n, "argument"));
        walk_children(w, n);
    } else if (SYM_IS(t, "expression_statement") && misparsed_declaration(w->u, n)) {
        diag_error(&w->u->src, ts_node_start_byte(n),
                   "C parsers read 'macro(T) *name' as a multiplication: declare the pointer "
                   "through a typedef (typedef ac_handle(int) int_handle; int_handle *name)");
        walk_children(w, n);
    } else if (SYM_IS(t, "goto_statement")) {
        w->fn->has_goto = true;
    } else if (SYM_IS(t, "labeled_statement")) {
        TSNode label = child_by_field(n, "label");
        if (!ts_node_is_null(label) && ts_node_end_byte(label) - ts_node_start_byte(label) > 3 &&
            !memcmp(w->u->src.text + ts_node_start_byte(label), "ac_", 3))
            diag_error(&w->u->src, ts_node_start_byte(label),
                       "names starting with 'ac_' are reserved for generated code in async "
                       "functions");
        walk_children(w, n);
    } else if (SYM_IS(t, "type_definition")) {
        /* Variables it names are in its type (`typedef __typeof__(x) *xp;`)
         * and its array sizes (`typedef char buf[sizeof n];`); the names it
         * defines hide variables of the same name to the end of the scope
         * (`sizeof(T)`). */
        TSNode type = child_by_field(n, "type");
        if (!ts_node_is_null(type))
            walk(w, type);
        for (uint32_t i = 0; i < ts_node_child_count(n); i++) {
            TSNode d = ts_node_child(n, i);
            if (ts_node_eq(d, type) || !ts_node_is_named(d))
                continue;
            walk_array_sizes(w, d);
            hide_type_name(w, d);
        }
    } else if (SYM_IS(t, "field_identifier") || SYM_IS(t, "statement_identifier") ||
               SYM_IS(t, "type_identifier")) {
        /* no variable references */
    } else {
        walk_children(w, n);
    }
}

static void resolve_names(Unit *u, AsyncFn *fn)
{
    Walk w = {.u = u, .fn = fn, .scope = fn->body};
    for (uint32_t i = 0; i < ts_node_named_child_count(fn->params); i++) {
        TSNode p = ts_node_named_child(fn->params, i);
        if (!type_is(p, "parameter_declaration"))
            continue;
        TSNode d = child_by_field(p, "declarator");
        TSNode ident = parse_declarator_ident(d);
        if (ts_node_is_null(ident)) {
            if (!ts_node_is_null(d) || !parse_eq(u, child_by_field(p, "type"), "void"))
                diag_error(&u->src, ts_node_start_byte(p),
                           "parameters of async functions need names (they are stored in the frame)");
            continue;
        }
        new_var(&w, ident, p, d, true);
    }
    walk(&w, fn->body);
    free(w.visible.items);
}

/* ---- awaits --------------------------------------------------------------- */

/* The future ac_join(handle, err) yields the handle's pointee: its type is
 * known only from clang's type of the handle expression. */
static ExtFn *join_future(Unit *u, Await *aw)
{
    TSNode args = child_by_field(aw->call, "arguments");
    if (ts_node_named_child_count(args) != 2) {
        diag_error(&u->src, ts_node_start_byte(aw->call),
                   "ac_join() takes the handle and an int * for the error (or NULL)");
        return NULL;
    }
    TSNode h = ts_node_named_child(args, 0);
    const TypeInfo *ti = sema_expr_type(u->sema, ts_node_start_byte(h));
    /* canonical: a typedef of a handle type is still a pointer */
    size_t n = ti ? strlen(ti->canonical) : 0;
    if (!ti || n < 2 || ti->canonical[n - 1] != '*') {
        diag_error(&u->src, ts_node_start_byte(h),
                   "ac_join() needs a task handle, declared ac_handle(T) and set by ac_spawn()");
        return NULL;
    }
    ExtFn *e = xcalloc(1, sizeof *e);
    e->name = xstrdup("ac_join");
    /* Only the last '*' is the handle's: `int **` yields `int *`. */
    n--;
    while (n > 0 && ti->canonical[n - 1] == ' ')
        n--;
    e->ret_type = xstrndup(ti->canonical, n);
    e->ret_void = strcmp(e->ret_type, "void") == 0;
    e->ret_size = e->ret_align = -1;
    int64_t size, align;
    e->embeddable = sema_frame(u->sema, "ac_join", &size, &align);
    e->size = e->embeddable ? (uint64_t)size : 0;
    e->align = e->embeddable ? (uint64_t)align : 0;
    return e;
}

static bool resolve_spawns(Unit *u, AsyncFn *fn)
{
    bool ok = true;
    for (int i = 0; i < u->spawn_calls.len; i++) {
        TSNode n = *(TSNode *)u->spawn_calls.items[i];
        if (ts_node_start_byte(n) < ts_node_start_byte(fn->body) ||
            ts_node_end_byte(n) > ts_node_end_byte(fn->body))
            continue;
        TSNode args = child_by_field(n, "arguments");
        bool in_set = parse_is_call_to(u, n, "ac_joinset_spawn");
        uint32_t want = in_set ? 2 : 1;
        TSNode call = ts_node_named_child_count(args) == want ? ts_node_named_child(args, want - 1)
                                                             : (TSNode){0};
        TSNode f = ts_node_is_null(call) || !type_is(call, "call_expression")
                       ? (TSNode){0}
                       : child_by_field(call, "function");
        if (ts_node_is_null(f) || !type_is(f, "identifier")) {
            diag_error(&u->src, ts_node_start_byte(n),
                       in_set ? "ac_joinset_spawn() takes the set and a call to an async function, "
                                "as in ac_joinset_spawn(set, f(x))"
                              : "ac_spawn() needs a call to an async function, as in ac_spawn(f(x))");
            ok = false;
            continue;
        }
        Spawn *sp = xcalloc(1, sizeof *sp);
        sp->node = n;
        sp->call = call;
        if (in_set)
            sp->set = ts_node_named_child(args, 0);
        sp->callee = parse_text(u, f);
        AsyncFn *target = parse_find_fn(u, sp->callee);
        if (target && target->is_def) {
            sp->target = target;
        } else if ((sp->ext = sema_ext_fn(u->sema, sp->callee)) == NULL) {
            diag_error(&u->src, ts_node_start_byte(call),
                       "'%s' is not an async function; ac_spawn() needs a future", sp->callee);
            ok = false;
            continue;
        }
        vec_push(&fn->spawns, sp);
    }
    return ok;
}

static bool resolve_one(Unit *u, Await *aw);

static bool resolve_awaits(Unit *u, AsyncFn *fn)
{
    bool ok = resolve_spawns(u, fn);
    for (int i = 0; i < fn->awaits.len; i++) {
        Await *aw = fn->awaits.items[i];
        aw->state = 3 + i;
        for (int j = 0; j < aw->arms.len; j++) {
            Await *arm = aw->arms.items[j];
            arm->state = aw->state;
            ok &= resolve_one(u, arm);
        }
        if (!aw->join)
            ok &= resolve_one(u, aw);
        for (TSNode p = parse_parent(u, aw->node); !ts_node_is_null(p) && !ts_node_eq(p, fn->body);
             p = parse_parent(u, p)) {
            TSSymbol t = ts_node_symbol(p);
            if (SYM_IS(t, "sizeof_expression") || SYM_IS(t, "alignof_expression") ||
                SYM_IS(t, "offsetof_expression") || SYM_IS(t, "generic_expression") ||
                (SYM_IS(t, "macro_type_specifier"))) {
                if (SYM_IS(t, "generic_expression"))
                    diag_error(&u->src, ts_node_start_byte(aw->node),
                               "await() inside _Generic is not supported: only the selected "
                               "association is evaluated (await before the _Generic)");
                else
                    diag_error(&u->src, ts_node_start_byte(aw->node),
                               "await() in an operand that is never evaluated (sizeof, _Alignof "
                               "or typeof)");
                ok = false;
                break;
            }
        }
    }
    fn->nstates = 3 + fn->awaits.len;
    return ok;
}

/* Finds what an await (or one future of a join) awaits. */
static bool resolve_one(Unit *u, Await *aw)
{
    AsyncFn *target = parse_find_fn(u, aw->callee);
    if (!strcmp(aw->callee, "ac_join")) {
        aw->ext = join_future(u, aw);
        return aw->ext != NULL;
    }
    if (target && target->is_def) {
        aw->target = target;
        return true;
    }
    if ((aw->ext = sema_ext_fn(u->sema, aw->callee)) != NULL)
        return true;
    diag_error(&u->src, ts_node_start_byte(aw->call),
               "'%s' is not an async function; await() needs a future, from a function "
               "declared async(T)",
               aw->callee);
    return false;
}


/* ---- liveness ------------------------------------------------------------- */

static uint32_t scope_end(Var *v) { return ts_node_end_byte(v->scope); }

static bool live_at(Unit *u, AsyncFn *fn, Var *v, Await *aw)
{
    uint32_t at = ts_node_start_byte(aw->node);
    if (at < v->live_from || at >= scope_end(v))
        return false;
    if (v->addr_taken || v->cleanup)
        return true; /* its storage, or its cleanup's read at the scope's end */
    /* A reference from the await's statement on is read after the await,
     * since lowering evaluates awaits before the rest of their statement;
     * except one in the await's own operand, the call whose arguments make
     * the future before it suspends. */
    uint32_t anchor = ts_node_start_byte(aw->anchor), aw_end = ts_node_end_byte(aw->node);
    for (int i = 0; i < v->refs.len; i++) {
        TSNode r = *(TSNode *)v->refs.items[i];
        uint32_t rs = ts_node_start_byte(r);
        if (fn->has_goto || (rs >= anchor && !(rs >= at && rs < aw_end)))
            return true;
    }
    /* A loop around the await, inside the variable's scope, carries values
     * from one iteration's references to the next iteration's await. */
    for (TSNode p = parse_parent(u, aw->node); !ts_node_is_null(p); p = parse_parent(u, p)) {
        if (!parse_node_within(p, v->scope))
            break; /* a loop around the declaration starts the variable anew */
        if (!parse_is_loop(p))
            continue;
        for (int i = 0; i < v->refs.len; i++)
            if (parse_node_within(*(TSNode *)v->refs.items[i], p))
                return true;
    }
    return false;
}

/* What the value of n (in parentheses, perhaps) is used by: the nearest
 * ancestor that is not a parenthesized_expression. Null unless n is the
 * operand of a unary `&` or the object of `.`, `->` or `[]` (the `argument`
 * of those nodes); *kind says which: '&', '.' (also `->`) or '['. */
static TSNode object_use(Unit *u, TSNode n, char *kind)
{
    TSNode c = n, p = parse_parent(u, n);
    while (!ts_node_is_null(p) && type_is(p, "parenthesized_expression")) {
        c = p;
        p = parse_parent(u, p);
    }
    if (ts_node_is_null(p) || !ts_node_eq(child_by_field(p, "argument"), c))
        return (TSNode){0};
    if (type_is(p, "pointer_expression") && parse_eq(u, child_by_field(p, "operator"), "&"))
        *kind = '&';
    else if (type_is(p, "field_expression"))
        *kind = '.';
    else if (type_is(p, "subscript_expression"))
        *kind = '[';
    else
        return (TSNode){0};
    return p;
}

/* Whether n, of type ti, is a one-dimensional array that is only indexed
 * for a value (`a[i]`, not `&a[i]`, `a[i].f` or `a[i][j]`): it decays to a
 * pointer that nothing keeps. */
bool liveness_indexed_for_value(Unit *u, TSNode n, const TypeInfo *ti)
{
    const char *br = strchr(ti->canonical, '[');
    char kind = 0, outer = 0;
    TSNode p = object_use(u, n, &kind);
    return br && !strchr(br + 1, '[') && kind == '[' && ts_node_is_null(object_use(u, p, &outer));
}

/* Whether the program can hold the address of a compound literal's object:
 * it is the operand of `&` or the object of `.`, `->` or `[]`, or it is an
 * array, which decays to a pointer; except a one-dimensional array only
 * indexed for a value (`(int[]){1, 2, 3}[i]`). Otherwise its value is read
 * at once. A literal clang did not type stays where it is. */
static bool literal_addressed(Unit *u, Literal *lit)
{
    if (lit->call)
        return true; /* recorded because its array member decays */
    const TypeInfo *ti = sema_literal_type(u->sema, ts_node_start_byte(lit->node));
    if (!ti || liveness_indexed_for_value(u, lit->node, ti))
        return false;
    char kind = 0;
    return strchr(ti->canonical, '[') || !ts_node_is_null(object_use(u, lit->node, &kind));
}

static void compute_liveness(Unit *u, AsyncFn *fn)
{
    for (int i = 0; i < fn->vars.len; i++) {
        Var *v = fn->vars.items[i];
        if (v->is_static)
            continue;
        if (v->is_param)
            set_add(&v->live, 0);
        for (int j = 0; j < fn->awaits.len; j++) {
            Await *aw = fn->awaits.items[j];
            if (live_at(u, fn, v, aw))
                set_add(&v->live, aw->state);
        }
        v->hoisted = v->is_param || !set_empty(&v->live);
        if (!v->hoisted)
            continue;
        /* A field name unique in this frame: shadowed names get a suffix. */
        char *name = xstrdup(v->name);
        for (int n = 1;; n++) {
            bool clash = false;
            for (int k = 0; k < i && !clash; k++) {
                Var *o = fn->vars.items[k];
                clash = o->hoisted && o->field && strcmp(o->field, name) == 0;
            }
            if (!clash)
                break;
            free(name);
            name = xasprintf("%s_%d", v->name, n);
        }
        v->field = name;
    }
    /* A compound literal's object exists from its evaluation to the end of
     * its block. One whose address can be taken (an array, which decays;
     * `&(T){...}`; a member or element of it) may be used through that
     * address anywhere in the block, so it is kept when an await comes
     * after it in the block, or awaits a callee it is passed to
     * (`await(f(&(struct opts){...}))`, which holds the address while it
     * is suspended). An await in its own initialiser runs before it
     * exists. */
    int kept = 0;
    for (int i = 0; i < fn->literals.len; i++) {
        Literal *lit = fn->literals.items[i];
        if (!literal_addressed(u, lit))
            continue;
        uint32_t ls = ts_node_start_byte(lit->node), le = ts_node_end_byte(lit->node);
        for (int j = 0; j < fn->awaits.len; j++) {
            Await *aw = fn->awaits.items[j];
            uint32_t as = ts_node_start_byte(aw->node), ae = ts_node_end_byte(aw->node);
            bool after = as >= le && as < ts_node_end_byte(lit->scope);
            bool around = as <= ls && ae >= le;
            if (after || around)
                set_add(&lit->live, aw->state);
        }
        if (!set_empty(&lit->live))
            lit->field = xasprintf("ac_cl%d", ++kept);
    }
    (void)u;
}


/* The first await of fn in [from, to), or NULL (fn->awaits is in source
 * order). */
static Await *first_await_in(AsyncFn *fn, uint32_t from, uint32_t to)
{
    for (int j = 0; j < fn->awaits.len; j++) {
        Await *aw = fn->awaits.items[j];
        uint32_t at = ts_node_start_byte(aw->node);
        if (at >= from && at < to)
            return aw;
    }
    return NULL;
}

/* The first await in v's scope after its declaration, or NULL. */
static Await *await_in_scope(AsyncFn *fn, Var *v) { return first_await_in(fn, v->live_from, scope_end(v)); }

/* Whether byte `at` lies inside fn's body (its braces excluded). */
static bool in_body(const AsyncFn *fn, uint32_t at)
{
    return at > ts_node_start_byte(fn->body) && at < ts_node_end_byte(fn->body);
}

/* A place in the source and the variable there (its declaration, or a
 * reference to it), for sorted lookups: a walk down the tree for each would
 * take as long as the tree is deep. */
typedef struct RefAt {
    uint32_t at;
    Var *v;
} RefAt;

static int cmp_ref_at(const void *a, const void *b)
{
    uint32_t x = ((const RefAt *)a)->at, y = ((const RefAt *)b)->at;
    return x < y ? -1 : x > y;
}

/* fn's variables by where their names are declared, sorted (*n of them). */
static RefAt *vars_by_place(AsyncFn *fn, size_t *n)
{
    RefAt *a = xmalloc(((size_t)fn->vars.len + 1) * sizeof *a);
    for (int i = 0; i < fn->vars.len; i++)
        a[i] = (RefAt){ts_node_start_byte(((Var *)fn->vars.items[i])->ident), fn->vars.items[i]};
    *n = (size_t)fn->vars.len;
    qsort(a, *n, sizeof *a, cmp_ref_at);
    return a;
}

/* The variable in a sorted RefAt array at byte `at`, or NULL. */
static Var *var_at(const RefAt *a, size_t n, uint32_t at)
{
    RefAt key = {at, NULL};
    const RefAt *hit = bsearch(&key, a, n, sizeof *a, cmp_ref_at);
    return hit ? hit->v : NULL;
}


/* Whether identifier node `ref`, in [.., scope), must outlive an await:
 * it comes after `first` (the first await after the declaration), or a
 * loop inside the scope holds both it and an await. */
static bool used_across(Unit *u, AsyncFn *fn, TSNode ref, TSNode scope, Await *first)
{
    if (ts_node_start_byte(ref) > ts_node_start_byte(first->node))
        return true;
    for (TSNode p = parse_parent(u, ref); !ts_node_is_null(p) && !ts_node_eq(p, scope);
         p = parse_parent(u, p))
        if (parse_is_loop(p) && first_await_in(fn, ts_node_start_byte(p), ts_node_end_byte(p)))
            return true;
    return false;
}

/* Whether statement n begins with a call of typeof, __typeof__ or
 * __typeof: how the grammar reads `__typeof__(q) *qp = &q;`. */
static bool starts_with_typeof(Unit *u, TSNode n)
{
    TSNode first = ts_node_descendant_for_byte_range(n, ts_node_start_byte(n), ts_node_start_byte(n));
    TSNode call = parse_parent(u, first);
    return type_is(first, "identifier") && parse_is_typeof(u, first) && !ts_node_is_null(call) &&
           type_is(call, "call_expression") && ts_node_eq(child_by_field(call, "function"), first);
}

/*
 * A variable that clang sees declared in fn's body but the translator does
 * not: one declared by a macro (the translator reads the text before
 * expansion), or a declaration that tree-sitter's grammar, which does not
 * know typedef names, reads as an expression (`box (*mk)(void) = f;` is a
 * call of `box`). Such a variable stays a C local of the poll function,
 * which is fine until it must outlive an await: then say so, rather than
 * read it uninitialised after the resume.
 */
static void check_unseen_decls(Unit *u, AsyncFn *fn)
{
    const Vec *decls = sema_decls(u->sema);
    size_t nvars;
    RefAt *vars = vars_by_place(fn, &nvars);
    for (int i = 0; i < decls->len; i++) {
        const SemaDecl *d = decls->items[i];
        if (!in_body(fn, d->expanded))
            continue;
        if (var_at(vars, nvars, d->at))
            continue;
        TSNode at = ts_node_descendant_for_byte_range(ts_tree_root_node(u->tree), d->expanded,
                                                      d->expanded);
        TSNode stmt = parse_statement_of(u, at), scope = parse_parent(u, stmt);
        if (ts_node_is_null(stmt) || ts_node_is_null(scope))
            continue;
        Await *first = first_await_in(fn, ts_node_end_byte(stmt), ts_node_end_byte(scope));
        if (!first)
            continue;
        /* Its uses, by name, in the rest of its scope. */
        TSNode use = {0};
        TSTreeCursor c = ts_tree_cursor_new(scope);
        for (bool more = true; more && ts_node_is_null(use); more = cursor_advance(&c, true)) {
            TSNode n = ts_tree_cursor_current_node(&c);
            if (ts_node_start_byte(n) >= ts_node_end_byte(stmt) && type_is(n, "identifier") &&
                parse_eq(u, n, d->name) && used_across(u, fn, n, scope, first))
                use = n;
        }
        ts_tree_cursor_delete(&c);
        if (ts_node_is_null(use))
            continue;
        if (d->macro)
            diag_error(&u->src, d->expanded,
                       "'%s' is declared by a macro, and used after an await: the translator "
                       "reads the function before macros are expanded, so it cannot keep '%s' "
                       "in the frame (declare it in the function's own text)",
                       d->name, d->name);
        else if (starts_with_typeof(u, stmt))
            diag_error(&u->src, d->at,
                       "the C grammar reads the declaration of '%s' as an expression "
                       "('__typeof__(...)' followed by '*' or '(' reads as a call), so the "
                       "translator cannot keep '%s' in the frame across an await (name its type "
                       "with a typedef: 'typedef __typeof__(...) *%s_t; %s_t %s = ...;')",
                       d->name, d->name, d->name, d->name, d->name);
        else
            diag_error(&u->src, d->at,
                       "the C grammar reads the declaration of '%s' as an expression (a typedef "
                       "name followed by '(' reads as a call), so the translator cannot keep '%s' "
                       "in the frame across an await (name its type with a typedef: "
                       "'typedef T (*fn_t)(...); fn_t %s = ...;')",
                       d->name, d->name, d->name);
        diag_note(&u->src, ts_node_start_byte(first->node), "the await is here");
        diag_note(&u->src, ts_node_start_byte(use), "'%s' is used here, which runs after the await",
                  d->name);
    }
    free(vars);
}

/*
 * A `return` that a macro brings into fn (`#define CHECK(c) if (!(c))
 * return -1`): the translator reads the text before expansion, so it cannot
 * turn it into the future's completion, and it would leave the poll function
 * with its value as a poll result. Say so where the macro is used.
 */
static void check_macro_returns(Unit *u, AsyncFn *fn)
{
    const Vec *jumps = sema_macro_jumps(u->sema);
    for (int i = 0; i < jumps->len; i++) {
        const SemaJump *j = jumps->items[i];
        if (!j->is_return || !in_body(fn, j->expanded))
            continue;
        char *name = parse_macro_name_at(u, j->expanded);
        diag_error(&u->src, j->expanded,
                   "'%s' returns from the async function '%s' inside its expansion: the "
                   "translator reads the function before macros are expanded, so that return "
                   "would leave the poll function instead of completing the future (write the "
                   "return in the function's own text: if (...) return ...;)",
                   name, fn->name);
        free(name);
    }
}

/*
 * A macro whose body uses a variable of fn by name (`#define SHOW()
 * printf("%d", count)`): the translator renames the uses it reads, and it
 * reads the function before macros are expanded. When the variable is kept
 * in the frame, the macro's use would name nothing after the translation
 * (or a global of the same name). Say so where the macro is used.
 */
static void check_macro_refs(Unit *u, AsyncFn *fn)
{
    const Vec *refs = sema_macro_refs(u->sema);
    size_t nvars;
    RefAt *vars = vars_by_place(fn, &nvars);
    for (int i = 0; i < refs->len; i++) {
        const SemaRef *r = refs->items[i];
        if (!in_body(fn, r->expanded))
            continue;
        Var *v = var_at(vars, nvars, r->decl);
        if (!v || !v->hoisted)
            continue;
        if (r->file) {
            bool told = false; /* once per #include and variable */
            for (int j = 0; j < i && !told; j++) {
                const SemaRef *q = refs->items[j];
                told = q->file && q->expanded == r->expanded && q->decl == r->decl;
            }
            if (told)
                continue;
            diag_error(&u->src, r->expanded,
                       "the file included here, '%s', uses '%s', and '%s' is kept in the frame "
                       "(%s); the translator cannot rename a use in an included file (keep the "
                       "#include in a plain function, or use a local that does not live across "
                       "an await there)",
                       r->file, r->name, r->name,
                       v->is_param ? "a parameter" : "it lives across an await");
            diag_note(&u->src, ts_node_start_byte(v->ident), "'%s' is declared here", r->name);
            continue;
        }
        char *name = parse_macro_name_at(u, r->expanded);
        diag_error(&u->src, r->expanded,
                   "'%s' uses '%s' inside its expansion, and '%s' is kept in the frame (%s); the "
                   "translator reads the function before macros are expanded, so it cannot "
                   "rename that use (pass '%s' to the macro as an argument)",
                   name, r->name, r->name,
                   v->is_param ? "a parameter" : "it lives across an await", r->name);
        diag_note(&u->src, ts_node_start_byte(v->ident), "'%s' is declared here", r->name);
        free(name);
    }
    free(vars);
}


/*
 * The translator resolves names on tree-sitter's tree, which does not know
 * typedef names and reads the text before the preprocessor; clang resolves
 * them for real. Where the two disagree about a use of a variable kept in
 * the frame, the translation would read or write the wrong object (or none):
 * say so instead. (A variable the translator does not see declared at all
 * is check_unseen_decls' business.)
 */
/* Whether byte `at` lies in a macro argument that the macro pastes. */
static bool in_pasted_arg(Unit *u, uint32_t at)
{
    const Vec *args = sema_spelled_args(u->sema);
    for (int i = 0; i < args->len; i++) {
        const SemaSpelled *a = args->items[i];
        if (a->pasted && at >= a->from && at < a->to)
            return true;
    }
    return false;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}


static void check_names_agree(Unit *u, AsyncFn *fn)
{
    const Vec *uses = sema_names(u->sema);
    /* Where clang resolved a name in the body, sorted, for the other way
     * round below; and the translator's references by where they start
     * (no walks down the tree, which a deep expression makes long). */
    uint32_t *named = xmalloc(((size_t)uses->len + 1) * sizeof *named);
    size_t nnamed = 0, nrefs = 0;
    for (int i = 0; i < uses->len; i++) {
        const SemaRef *r = uses->items[i];
        if (in_body(fn, r->expanded))
            named[nnamed++] = r->expanded;
    }
    qsort(named, nnamed, sizeof *named, cmp_u32);
    for (int i = 0; i < fn->vars.len; i++)
        nrefs += (size_t)((Var *)fn->vars.items[i])->refs.len;
    RefAt *refs = xmalloc((nrefs + 1) * sizeof *refs);
    nrefs = 0;
    for (int i = 0; i < fn->vars.len; i++) {
        Var *v = fn->vars.items[i];
        for (int j = 0; j < v->refs.len; j++)
            refs[nrefs++] = (RefAt){ts_node_start_byte(*(TSNode *)v->refs.items[j]), v};
    }
    qsort(refs, nrefs, sizeof *refs, cmp_ref_at);
    size_t nvars;
    RefAt *vars = vars_by_place(fn, &nvars);
    /* A use the translator renames into the frame that clang does not read
     * as a name at all (a type's name, say, that hides the variable). */
    for (size_t i = 0; i < nrefs; i++) {
        Var *v = refs[i].v;
        uint32_t at = refs[i].at;
        if (!v->hoisted || bsearch(&at, named, nnamed, sizeof *named, cmp_u32) || in_pasted_arg(u, at))
            continue; /* a paste is spelled_args' to report */
        TSNode ref = ts_node_descendant_for_byte_range(ts_tree_root_node(u->tree), at, at + 1);
        if (type_is(ref, "type_identifier"))
            continue; /* typeof(x), which clang's visit does not show */
        int line, col;
        diag_position(&u->src, ts_node_start_byte(v->ident), &line, &col);
        diag_error(&u->src, at,
                   "the translator's C grammar reads this '%s' as the variable declared on "
                   "line %d, which is kept in the frame, but clang does not read it as a "
                   "variable here (rename one of them)",
                   v->name, line);
    }
    free(named);
    for (int i = 0; i < uses->len; i++) {
        const SemaRef *r = uses->items[i];
        if (!in_body(fn, r->expanded))
            continue;
        Var *cv = r->decl == UINT32_MAX ? NULL : var_at(vars, nvars, r->decl);
        if (!cv && r->decl != UINT32_MAX)
            continue;
        Var *tv = var_at(refs, nrefs, r->expanded);
        if (tv == cv || !((tv && tv->hoisted) || (cv && cv->hoisted)))
            continue;
        int line = 0, col, tline = 0, tcol;
        if (cv)
            diag_position(&u->src, ts_node_start_byte(cv->ident), &line, &col);
        if (tv)
            diag_position(&u->src, ts_node_start_byte(tv->ident), &tline, &tcol);
        if (!cv) {
            diag_error(&u->src, r->expanded,
                       "clang reads this '%s' as something other than a variable of the "
                       "function (an enumerator, a function or a global), but the translator's "
                       "C grammar as the variable declared on line %d, which is kept in the "
                       "frame, so the translation would use that variable (rename one of them)",
                       r->name, tline);
        } else if (tv) {
            diag_error(&u->src, r->expanded,
                       "clang reads this '%s' as the one declared on line %d, but the "
                       "translator's C grammar as the one on line %d; one of them is kept in the "
                       "frame, so the translation would use the wrong one (rename one of them)",
                       r->name, line, tline);
        } else {
            diag_error(&u->src, r->expanded,
                       "clang reads this '%s' as the variable declared on line %d, which is kept "
                       "in the frame, but the translator's C grammar does not read it as a "
                       "variable, so it would not reach the frame (write the statement so that it "
                       "parses as an expression, e.g. with parentheses or a cast to void)",
                       r->name, line);
        }
    }
    free(refs);
    free(vars);
}

/*
 * A frame variable in the argument of a macro that makes a string of it
 * (`#define SHOW(v) printf(#v " = %d\n", v)`, assert): renamed to its frame
 * field, the string would read `ac_f->count`. In the statement holding the
 * use, the variable is reached instead through `#define count (ac_f->count)`
 * (lower.c), so the argument keeps its spelling. Not when the statement
 * also names a member `count` (the #define would rename it) or declares the
 * variable: then the string changes, and a warning says so. A pasted
 * argument (`v ## _x`) cannot work renamed: an error.
 */
static void spelled_args(Unit *u, AsyncFn *fn)
{
    const Vec *args = sema_spelled_args(u->sema);
    for (int i = 0; i < args->len; i++) {
        const SemaSpelled *a = args->items[i];
        if (!in_body(fn, a->from) || !in_body(fn, a->to))
            continue;
        /* An await in it runs once, where the translator hoists it. */
        for (int j = 0; j < fn->awaits.len; j++) {
            Await *aw = fn->awaits.items[j];
            uint32_t at = ts_node_start_byte(aw->node);
            if (at < a->from || at >= a->to)
                continue;
            if (a->uses != 1 || a->pasted || a->conditional)
                diag_error(&u->src, at,
                           "'%s' %s, but an await in it runs once, before the statement "
                           "(await into a variable first, and pass that)",
                           a->macro,
                           a->pasted        ? "pastes its argument"
                           : a->uses == 0   ? "does not evaluate its argument"
                           : a->uses > 1    ? "may evaluate its argument more than once"
                                            : "may not evaluate its argument (it follows a ?, "
                                              "&&, ||, or the condition of an if or a loop, in "
                                              "the macro)");
            else if (a->stringified)
                diag_warning(&u->src, at,
                             "'%s' makes a string of its argument, and the await in it runs "
                             "before the statement: the string will read its result's temporary",
                             a->macro);
            break;
        }
        if (!a->stringified && !a->pasted && !a->forwarded)
            continue;
        for (int j = 0; j < fn->vars.len; j++) {
            Var *v = fn->vars.items[j];
            if (!v->hoisted)
                continue;
            for (int k = 0; k < v->refs.len; k++) {
                TSNode ref = *(TSNode *)v->refs.items[k];
                if (ts_node_start_byte(ref) < a->from || ts_node_end_byte(ref) > a->to)
                    continue;
                if (a->pasted) {
                    diag_error(&u->src, ts_node_start_byte(ref),
                               "'%s' pastes its argument (##), and '%s' is kept in the frame: "
                               "renamed, the paste would make another name (copy '%s' to a local "
                               "that lives only in this statement, and pass that)",
                               a->macro, v->name, v->name);
                    continue;
                }
                if (a->forwarded)
                    diag_warning(&u->src, ts_node_start_byte(ref),
                                 "'%s' passes its argument on to a macro that makes a string of "
                                 "it, and '%s' is kept in the frame: the argument is expanded "
                                 "before it is passed on, so that string will read '%sac_f->%s%s'",
                                 a->macro, v->name, a->stringified ? "(" : "", v->field,
                                 a->stringified ? ")" : "");
                if (!a->stringified)
                    continue;
                TSNode stmt = parse_statement_of(u, ref);
                bool member = ts_node_eq(stmt, v->decl);
                TSTreeCursor c = ts_tree_cursor_new(stmt);
                do {
                    TSNode n = ts_tree_cursor_current_node(&c);
                    member |= type_is(n, "field_identifier") && parse_eq(u, n, v->name);
                } while (!member && cursor_advance(&c, true));
                ts_tree_cursor_delete(&c);
                if (member) {
                    diag_warning(&u->src, ts_node_start_byte(ref),
                                 "'%s' makes a string of its argument, and '%s' is kept in the "
                                 "frame: the string will read 'ac_f->%s'",
                                 a->macro, v->name, v->field);
                    continue;
                }
                bool known = false;
                for (int m = 0; m + 1 < fn->by_define.len && !known; m += 2)
                    known = ts_node_eq(*(TSNode *)fn->by_define.items[m], stmt) &&
                            fn->by_define.items[m + 1] == v;
                if (!known) {
                    TSNode *sp = xmalloc(sizeof *sp);
                    *sp = stmt;
                    vec_push(&fn->by_define, sp);
                    vec_push(&fn->by_define, v);
                }
            }
        }
    }
}

static void check_vla_alloca(Unit *u, AsyncFn *fn)
{
    for (int i = 0; i < fn->vars.len; i++) {
        Var *v = fn->vars.items[i];
        const TypeInfo *ti = sema_var_type(u->sema, ts_node_start_byte(v->ident));
        Await *aw = ti && ti->vla ? await_in_scope(fn, v) : NULL;
        if (aw) {
            diag_error(&u->src, ts_node_start_byte(v->ident),
                       "variable-length array '%s' is in scope of an await; a suspended "
                       "frame cannot hold it (give it a constant size or allocate it)",
                       v->name);
            diag_note(&u->src, ts_node_start_byte(aw->node), "the await is here");
        }
    }
    /* alloca memory belongs to the poll call that made it: it is gone once
     * the function suspends, so no variable holding it may live across. */
    TSTreeCursor c = ts_tree_cursor_new(fn->body);
    for (;;) {
        TSNode n = ts_tree_cursor_current_node(&c);
        if (parse_is_call_to(u, n, "alloca") || parse_is_call_to(u, n, "__builtin_alloca")) {
            TSNode p = parse_parent(u, n);
            while (!ts_node_is_null(p) &&
                   (type_is(p, "cast_expression") || type_is(p, "parenthesized_expression")))
                p = parse_parent(u, p);
            Var *v = NULL;
            if (!ts_node_is_null(p) && type_is(p, "init_declarator")) {
                TSNode id = parse_declarator_ident(child_by_field(p, "declarator"));
                for (int i = 0; i < fn->vars.len && !ts_node_is_null(id); i++)
                    if (ts_node_eq(((Var *)fn->vars.items[i])->ident, id))
                        v = fn->vars.items[i];
            } else if (!ts_node_is_null(p) && type_is(p, "assignment_expression")) {
                v = nodemap_get(&fn->refs, child_by_field(p, "left"));
            }
            if (v && v->hoisted)
                diag_error(&u->src, ts_node_start_byte(n),
                           "alloca() memory held in '%s' across an await; it is freed when the "
                           "function suspends (use malloc, or a fixed-size array)",
                           v->name);
        }
        if (!cursor_advance(&c, true))
            break;
    }
    ts_tree_cursor_delete(&c);
}

/* Whether a typedef (tag NULL) or a struct, union or enum tag (tag
 * "struct_specifier" etc.) spelled name[0..len) is declared in fn's body
 * before byte `before`. */
static bool declared_in_body(Unit *u, AsyncFn *fn, uint32_t before, const char *name, size_t len,
                             const char *tag)
{
    TSTreeCursor c = ts_tree_cursor_new(fn->body);
    bool found = false;
    for (;;) {
        TSNode n = ts_tree_cursor_current_node(&c);
        if (ts_node_start_byte(n) >= before)
            break;
        TSSymbol nt = ts_node_symbol(n);
        TSNode d = {0};
        if (!tag && SYM_IS(nt, "type_definition"))
            d = typedef_name(child_by_field(n, "declarator"));
        else if (tag && !strcmp(ts_node_type(n), tag) && !ts_node_is_null(child_by_field(n, "body")))
            d = child_by_field(n, "name");
        found = !ts_node_is_null(d) && ts_node_end_byte(d) - ts_node_start_byte(d) == len &&
                !memcmp(u->src.text + ts_node_start_byte(d), name, len);
        if (found || !cursor_advance(&c, true))
            break;
    }
    ts_tree_cursor_delete(&c);
    return found;
}

/* Whether a type specifier, or a name that may be a typedef name (an
 * identifier: tree-sitter reads `sizeof(pair)` and `_Alignas(pair)` as
 * expressions), names a type declared inside the function, which a frame
 * declared at file scope cannot name. */
static bool local_type(Unit *u, AsyncFn *fn, TSNode type)
{
    TSSymbol t = ts_node_symbol(type);
    bool tagged = SYM_IS(t, "struct_specifier") || SYM_IS(t, "union_specifier") ||
                  SYM_IS(t, "enum_specifier");
    bool named = SYM_IS(t, "type_identifier") || SYM_IS(t, "identifier");
    if (tagged && ts_node_named_child_count(type) > 0 &&
        !ts_node_is_null(child_by_field(type, "body")))
        return true; /* defined right here, in the declaration */
    TSNode name = tagged ? child_by_field(type, "name") : (named ? type : (TSNode){0});
    if (ts_node_is_null(name))
        return false;
    return declared_in_body(u, fn, ts_node_start_byte(type), u->src.text + ts_node_start_byte(name),
                            ts_node_end_byte(name) - ts_node_start_byte(name),
                            tagged ? ts_node_type(type) : NULL);
}

/* Whether clang's spelling of a type names one declared in fn's body
 * before byte `before`: a tag after struct, union or enum, or another name
 * (a typedef; keywords are declared nowhere). */
static bool spelling_names_local(Unit *u, AsyncFn *fn, uint32_t before, const char *spelling)
{
    const char *tag = NULL;
    for (const char *p = spelling; *p;) {
        if (!(isalpha((unsigned char)*p) || *p == '_')) {
            p++;
            continue;
        }
        const char *q = p;
        while (isalnum((unsigned char)*q) || *q == '_')
            q++;
        size_t len = (size_t)(q - p);
        const char *kind = len == 6 && !memcmp(p, "struct", 6) ? "struct_specifier"
                           : len == 5 && !memcmp(p, "union", 5) ? "union_specifier"
                           : len == 4 && !memcmp(p, "enum", 4)  ? "enum_specifier"
                                                                : NULL;
        if (!kind && declared_in_body(u, fn, before, p, len, tag))
            return true;
        tag = kind;
        p = q;
    }
    return false;
}

/* The type name of v, whose type is declared inside the function: its
 * specifiers without storage class or _Alignas (a type defined right there
 * by its tag alone, generated for an unnamed one), and its declarator
 * without the name. */
static char *local_type_name(Unit *u, Var *v)
{
    Buf b = {0};
    for (uint32_t i = 0; i < ts_node_child_count(v->decl); i++) {
        TSNode c = ts_node_child(v->decl, i);
        if (parse_is_declarator(c))
            break;
        if (type_is(c, "storage_class_specifier") || type_is(c, "comment") ||
            (type_is(c, "type_qualifier") && ts_node_named_child_count(c) &&
             type_is(ts_node_named_child(c, 0), "alignas_qualifier")))
            continue; /* _Alignas belongs to the object, not its type */
        if (!ts_node_is_null(child_by_field(c, "body"))) {
            char *kw = parse_text(u, ts_node_child(c, 0)), *tag = parse_type_tag(u, c);
            buf_printf(&b, "%s %s", kw, tag); /* `struct`, `union` or `enum`, then the tag */
            free(kw);
            free(tag);
        } else {
            buf_putn(&b, u->src.text + ts_node_start_byte(c), ts_node_end_byte(c) - ts_node_start_byte(c));
        }
        buf_putc(&b, ' ');
    }
    TSNode d = v->declarator;
    if (type_is(d, "init_declarator"))
        d = child_by_field(d, "declarator");
    /* The declarator's text around the name; `pair ps[][2] = {...}` takes
     * its outer length from clang. */
    uint32_t from = ts_node_start_byte(d), name = ts_node_start_byte(v->ident),
             after = ts_node_end_byte(v->ident), to = ts_node_end_byte(d);
    buf_putn(&b, u->src.text + from, name - from);
    if (to - after >= 2 && !memcmp(u->src.text + after, "[]", 2)) {
        const TypeInfo *ti = sema_var_type(u->sema, ts_node_start_byte(v->ident));
        const char *br = ti ? strchr(ti->spelling, '[') : NULL;
        buf_printf(&b, "[%ld]", br ? strtol(br + 1, NULL, 10) : 0L);
        after += 2;
    }
    buf_putn(&b, u->src.text + after, to - after);
    /* No trailing blank: the name sits in casts and __typeof__. */
    while (b.len && b.data[b.len - 1] == ' ')
        b.data[--b.len] = 0;
    return buf_take(&b);
}

/* Whether v's declaration names a type declared inside the function
 * anywhere but in its initialiser: in its type specifier (`pair p`), its
 * declarator (`int (*f)(pair)`, `char b[sizeof(pair)]`) or a qualifier
 * (`_Alignas(pair)`). */
static bool mentions_local_type(Unit *u, AsyncFn *fn, Var *v)
{
    TSNode type = child_by_field(v->decl, "type");
    if (!ts_node_is_null(type) && local_type(u, fn, type))
        return true;
    bool found = false;
    for (uint32_t i = 0; i < ts_node_child_count(v->decl) && !found; i++) {
        TSNode c = ts_node_child(v->decl, i);
        if (parse_is_declarator(c) && !ts_node_eq(c, v->declarator))
            continue; /* another variable's, in `pair a, *b;` */
        if (type_is(c, "init_declarator"))
            c = child_by_field(c, "declarator");
        TSTreeCursor k = ts_tree_cursor_new(c);
        do {
            TSNode n = ts_tree_cursor_current_node(&k);
            TSSymbol t = ts_node_symbol(n);
            if (ts_node_eq(n, v->ident) || ts_node_eq(n, type) ||
                !(SYM_IS(t, "type_identifier") || SYM_IS(t, "identifier") ||
                  SYM_IS(t, "struct_specifier") || SYM_IS(t, "union_specifier") ||
                  SYM_IS(t, "enum_specifier")))
                continue;
            found = local_type(u, fn, n);
        } while (!found && cursor_advance(&k, true));
        ts_tree_cursor_delete(&k);
    }
    return found;
}

static void frame_types(Unit *u, AsyncFn *fn)
{
    for (int i = 0; i < fn->vars.len; i++) {
        Var *v = fn->vars.items[i];
        if (!v->hoisted || v->is_param)
            continue;
        const TypeInfo *ti;
        if (mentions_local_type(u, fn, v)) {
            v->local_type = local_type_name(u, v);
        } else if (parse_is_inferred_type(u, child_by_field(v->decl, "type")) &&
                   (ti = sema_var_type(u->sema, ts_node_start_byte(v->ident)))) {
            /* `__typeof__(pt) p2`, `__auto_type p3 = pt`: the frame needs a
             * name for the type, clang's; one declared in the function is
             * for the body only, where it is in scope. */
            if (strstr(ti->canonical, "(unnamed") || strstr(ti->canonical, "(anonymous"))
                diag_error(&u->src, ts_node_start_byte(v->ident),
                           "'%s' lives across an await and its type, inferred from an unnamed "
                           "struct, union or enum, has no name that its frame field can use "
                           "(give the type a tag or a typedef name)",
                           v->name);
            else if (spelling_names_local(u, fn, ts_node_start_byte(v->decl), ti->canonical))
                v->local_type = xstrdup(ti->canonical);
        }
        if (strncmp(v->name, "ac_", 3) == 0)
            diag_error(&u->src, ts_node_start_byte(v->ident),
                       "names starting with 'ac_' are reserved for generated code in async "
                       "functions");
    }
}

/* A variable with a cleanup attribute kept in the frame: lowering runs the
 * cleanup at the exits of its scope that the function's text shows, and
 * the frame's drop runs it in the states in its scope, on a copy of the
 * variable declared as written (lower.c). Refused where that cannot be
 * done: a copy of an array cannot be initialised, the drop function at
 * file scope cannot name a type declared in the function, the scope of a
 * for's declaration goes on through the loop's step, and a continue that a
 * macro brings in would leave the scope unseen. */
static void check_cleanups(Unit *u, AsyncFn *fn)
{
    for (int i = 0; i < fn->vars.len; i++) {
        Var *v = fn->vars.items[i];
        if (!v->cleanup || !v->hoisted)
            continue;
        Await *aw = await_in_scope(fn, v);
        const char *why = NULL, *fix = NULL;
        TSNode d = v->declarator;
        if (type_is(d, "init_declarator"))
            d = child_by_field(d, "declarator");
        for (TSNode x = d; !ts_node_is_null(x) && !type_is(x, "identifier") && !why;
             x = ts_node_named_child_count(x) ? ts_node_named_child(x, 0) : (TSNode){0})
            if (type_is(x, "array_declarator")) {
                why = "it is an array, which a copy cannot be initialised from";
                fix = "wrap the array in a struct";
            }
        if (!why && v->local_type) {
            why = "its type is declared in the function, where the frame's drop function cannot "
                  "name it";
            fix = "declare the type at file scope";
        }
        if (!why && type_is(v->scope, "for_statement")) {
            why = "it is declared in a for statement's header, a scope that goes on through the "
                  "loop's step";
            fix = "declare it in a block around the loop";
        }
        if (why) {
            diag_error(&u->src, ts_node_start_byte(v->ident),
                       "'%s' has a cleanup attribute and is in scope of an await, but %s (%s, or "
                       "release it by hand)",
                       v->name, why, fix);
            if (aw)
                diag_note(&u->src, ts_node_start_byte(aw->node), "the await is here");
            continue;
        }
        const Vec *jumps = sema_macro_jumps(u->sema);
        for (int k = 0; k < jumps->len; k++) {
            const SemaJump *j = jumps->items[k];
            if (j->is_return || j->expanded < v->live_from || j->expanded >= scope_end(v))
                continue;
            TSNode loop = ts_node_descendant_for_byte_range(u->root, j->expanded, j->expanded);
            while (!ts_node_is_null(loop) && !parse_is_loop(loop))
                loop = parse_parent(u, loop);
            if (ts_node_is_null(loop) || !parse_node_within(v->scope, loop))
                continue; /* the loop is inside the scope */
            char *name = parse_macro_name_at(u, j->expanded);
            diag_error(&u->src, j->expanded,
                       "'%s' continues a loop inside its expansion, in the scope of '%s', whose "
                       "cleanup the translator runs at the exits it reads, before macros are "
                       "expanded (write the continue in the function's own text)",
                       name, v->name);
            free(name);
        }
    }
}

/* ---- recursion ------------------------------------------------------------ */

static bool find_cycle(Unit *u, AsyncFn *fn, Vec *path)
{
    if (fn->cycle_mark == 2)
        return false;
    if (fn->cycle_mark == 1) {
        /* path[0] is the root; path[i]->target is the function entered by
         * the i-th await taken. The cycle starts where fn was entered. */
        int entry = 0;
        while (((Await *)path->items[entry])->target != fn)
            entry++;
        Buf b = {0};
        buf_puts(&b, fn->name);
        for (int i = entry + 1; i < path->len; i++)
            buf_printf(&b, " -> %s", ((Await *)path->items[i])->callee);
        Await *closing = path->items[path->len - 1];
        diag_error(&u->src, ts_node_start_byte(closing->node),
                   "recursive async functions: %s; a frame cannot contain itself (box the "
                   "recursive awaits: await(ac_box(%s(...))))",
                   b.data, closing->callee);
        buf_free(&b);
        return true;
    }
    fn->cycle_mark = 1;
    for (int i = 0; i < fn->awaits.len; i++) {
        Await *outer = fn->awaits.items[i];
        int n = outer->join ? outer->arms.len : 1;
        for (int j = 0; j < n; j++) {
            Await *aw = outer->join ? outer->arms.items[j] : outer;
            if (!aw->target || aw->boxed)
                continue;
            vec_push(path, aw);
            if (find_cycle(u, aw->target, path))
                return true;
            path->len--;
        }
    }
    fn->cycle_mark = 2;
    return false;
}

int liveness_report_strays(Unit *u)
{
    for (int i = 0; i < u->stray_awaits.len; i++) {
        TSNode n = *(TSNode *)u->stray_awaits.items[i];
        diag_error(&u->src, ts_node_start_byte(n),
                   "await() outside an async function (declare the function async(T))");
    }
    int spawns = 0;
    for (int i = 0; i < u->spawn_calls.len; i++) {
        TSNode n = *(TSNode *)u->spawn_calls.items[i];
        if (!parse_fn_containing(u, ts_node_start_byte(n))) {
            diag_error(&u->src, ts_node_start_byte(n),
                       "%s() outside an async function: spawn from async code (enter it "
                       "with ac_runtime_block_on or async_main)",
                       parse_is_call_to(u, n, "ac_spawn") ? "ac_spawn" : "ac_joinset_spawn");
            spawns++;
        }
    }
    return u->stray_awaits.len + spawns;
}

bool liveness_run(Unit *u)
{
    if (liveness_report_strays(u))
        return false;
    for (int i = 0; i < u->fns.len; i++) {
        AsyncFn *fn = u->fns.items[i];
        if (!fn->is_def)
            continue;
        if (!resolve_awaits(u, fn))
            continue;
        resolve_names(u, fn);
        compute_liveness(u, fn);
        check_vla_alloca(u, fn);
        check_unseen_decls(u, fn);
        check_macro_returns(u, fn);
        check_macro_refs(u, fn);
        check_names_agree(u, fn);
        spelled_args(u, fn);
        frame_types(u, fn);
        check_cleanups(u, fn);
        for (int j = 0; j < fn->vars.len; j++) {
            Var *v = fn->vars.items[j];
            if ((v->is_param || !v->hoisted) && strncmp(v->name, "ac_", 3) == 0)
                diag_error(&u->src, ts_node_start_byte(v->ident),
                           "names starting with 'ac_' are reserved for generated code in async "
                           "functions");
        }
    }
    if (diag_error_count())
        return false;
    for (int i = 0; i < u->fns.len; i++) {
        AsyncFn *fn = u->fns.items[i];
        if (!fn->is_def || fn->cycle_mark)
            continue;
        Vec path = {0};
        Await root = {.target = fn, .callee = fn->name};
        vec_push(&path, &root);
        bool cyc = find_cycle(u, fn, &path);
        free(path.items);
        if (cyc)
            return false;
    }
    return diag_error_count() == 0;
}

/* ---- transitions (for --emit=states) ---------------------------------------- */

/*
 * Which suspend states (or 1, returned) can follow each state: a walk over the
 * body in the order lowering evaluates awaits, carrying the set of states the
 * code at hand may have been resumed from. Each pass walks the body once;
 * the states that come round a loop or arrive by goto are kept for the next
 * pass, and passes go on until none adds a transition or a state to a loop
 * head or a label.
 */
typedef struct Flow {
    Unit *u;
    AsyncFn *fn;
    StateSet *succ;  /* succ[s]: states reachable from s */
    StateSet *brk;   /* where `break` carries its states */
    StateSet *cont;  /* where `continue` carries its states */
    Vec labels;      /* FlowLabel* */
    bool changed;    /* a transition, a label's or a loop head's state was added this pass */
    NodeMap heads;   /* loop body -> StateSet* of the states reaching its head */
    Vec head_sets;   /* those StateSets, to free */
} Flow;

typedef struct FlowLabel {
    char *name;      /* label name */
    StateSet in;     /* states arriving by goto */
} FlowLabel;

static void edges(Flow *F, const StateSet *from, int to)
{
    for (int w = 0; w < from->words; w++)
        for (int b = 0; b < 64; b++)
            if (from->bits[w] >> b & 1 && !set_has(&F->succ[w * 64 + b], to)) {
                set_add(&F->succ[w * 64 + b], to);
                F->changed = true;
            }
}

static StateSet set_copy(const StateSet *s)
{
    StateSet r = {0};
    set_union(&r, s);
    return r;
}

/* Whether a and b have the same members. */
static bool set_equal(const StateSet *a, const StateSet *b)
{
    int n = a->words > b->words ? a->words : b->words;
    for (int w = 0; w < n; w++)
        if ((w < a->words ? a->bits[w] : 0) != (w < b->words ? b->bits[w] : 0))
            return false;
    return true;
}

static StateSet single(int s)
{
    StateSet r = {0};
    set_add(&r, s);
    return r;
}

static bool contains_await(Flow *F, TSNode n)
{
    for (int i = 0; i < F->fn->awaits.len; i++)
        if (parse_node_within(((Await *)F->fn->awaits.items[i])->node, n))
            return true;
    return false;
}

static Await *await_at(Flow *F, TSNode n)
{
    for (int i = 0; i < F->fn->awaits.len; i++) {
        Await *aw = F->fn->awaits.items[i];
        if (ts_node_eq(aw->node, n))
            return aw;
    }
    return NULL;
}

static StateSet flow_expr(Flow *F, TSNode n, StateSet in)
{
    if (ts_node_is_null(n) || !contains_await(F, n))
        return in;
    Await *aw = await_at(F, n);
    if (aw) {
        StateSet s = flow_expr(F, child_by_field(aw->call, "arguments"), in);
        edges(F, &s, aw->state);
        free(s.bits);
        return single(aw->state);
    }
    if (type_is(n, "binary_expression")) {
        TSNode op = child_by_field(n, "operator");
        if (parse_eq(F->u, op, "&&") || parse_eq(F->u, op, "||")) {
            StateSet l = flow_expr(F, child_by_field(n, "left"), in);
            StateSet r = flow_expr(F, child_by_field(n, "right"), set_copy(&l));
            set_union(&r, &l);
            free(l.bits);
            return r;
        }
    }
    if (type_is(n, "conditional_expression")) {
        StateSet c = flow_expr(F, child_by_field(n, "condition"), in);
        StateSet a = flow_expr(F, child_by_field(n, "consequence"), set_copy(&c));
        StateSet b = flow_expr(F, child_by_field(n, "alternative"), c);
        set_union(&a, &b);
        free(b.bits);
        return a;
    }
    for (uint32_t i = 0; i < ts_node_child_count(n); i++)
        in = flow_expr(F, ts_node_child(n, i), in);
    return in;
}

static FlowLabel *label(Flow *F, TSNode ident)
{
    for (int i = 0; i < F->labels.len; i++) {
        FlowLabel *l = F->labels.items[i];
        if (parse_eq(F->u, ident, l->name))
            return l;
    }
    FlowLabel *l = xcalloc(1, sizeof *l);
    l->name = parse_text(F->u, ident);
    vec_push(&F->labels, l);
    return l;
}

static StateSet flow_stmt(Flow *F, TSNode n, StateSet in);

static StateSet flow_loop(Flow *F, TSNode cond, TSNode body, TSNode step, bool test_first,
                          StateSet in)
{
    /* One round per pass: the states that come round the loop are kept in
     * its head set (F->heads) for the next pass, which flow_successors runs
     * until nothing grows. Walking the body again within the pass would
     * cost 3^depth walks for nested loops. */
    StateSet *saved = nodemap_get(&F->heads, body);
    if (!saved) {
        saved = xcalloc(1, sizeof *saved);
        nodemap_put(&F->heads, body, saved);
        vec_push(&F->head_sets, saved);
    }
    StateSet *ob = F->brk, *oc = F->cont;
    StateSet brk = {0}, cont = {0}, head = set_copy(saved), exit = {0};
    set_union(&head, &in);
    StateSet c = test_first ? flow_expr(F, cond, set_copy(&head)) : set_copy(&head);
    F->brk = &brk;
    F->cont = &cont;
    StateSet out = flow_stmt(F, body, set_copy(&c));
    set_union(&out, &cont);
    if (!test_first) {
        StateSet t = flow_expr(F, cond, out);
        out = t;
        set_union(&exit, &out);
    } else {
        set_union(&exit, &c);
        out = flow_expr(F, step, out);
    }
    set_union(&head, &out);
    if (!set_equal(saved, &head)) {
        set_union(saved, &head);
        F->changed = true; /* another pass carries the new states round */
    }
    free(c.bits);
    free(out.bits);
    F->brk = ob;
    F->cont = oc;
    if (test_first && ts_node_is_null(cond))
        exit = (StateSet){0}; /* for (;;) leaves only by break */
    set_union(&exit, &brk);
    free(brk.bits);
    free(cont.bits);
    free(head.bits);
    free(in.bits);
    return exit;
}

static StateSet flow_stmt(Flow *F, TSNode n, StateSet in)
{
    if (ts_node_is_null(n))
        return in;
    TSSymbol t = ts_node_symbol(n);
    if (SYM_IS(t, "return_statement")) {
        StateSet s = ts_node_named_child_count(n) ? flow_expr(F, ts_node_named_child(n, 0), in) : in;
        edges(F, &s, 1);
        free(s.bits);
        return (StateSet){0};
    }
    if (SYM_IS(t, "break_statement")) {
        if (F->brk)
            set_union(F->brk, &in);
        free(in.bits);
        return (StateSet){0};
    }
    if (SYM_IS(t, "continue_statement")) {
        if (F->cont)
            set_union(F->cont, &in);
        free(in.bits);
        return (StateSet){0};
    }
    if (SYM_IS(t, "goto_statement")) {
        FlowLabel *l = label(F, child_by_field(n, "label"));
        StateSet before = set_copy(&l->in);
        set_union(&l->in, &in);
        F->changed |= !set_equal(&before, &l->in);
        free(before.bits);
        free(in.bits);
        return (StateSet){0};
    }
    if (SYM_IS(t, "labeled_statement")) {
        FlowLabel *l = label(F, child_by_field(n, "label"));
        set_union(&in, &l->in);
        for (uint32_t i = 0; i < ts_node_named_child_count(n); i++) {
            TSNode c = ts_node_named_child(n, i);
            if (!type_is(c, "statement_identifier"))
                in = flow_stmt(F, c, in);
        }
        return in;
    }
    if (SYM_IS(t, "if_statement")) {
        StateSet c = flow_expr(F, child_by_field(n, "condition"), in);
        StateSet a = flow_stmt(F, child_by_field(n, "consequence"), set_copy(&c));
        TSNode alt = child_by_field(n, "alternative");
        StateSet b = ts_node_is_null(alt) ? c : flow_stmt(F, alt, c);
        set_union(&a, &b);
        free(b.bits);
        return a;
    }
    if (SYM_IS(t, "while_statement"))
        return flow_loop(F, child_by_field(n, "condition"),
                         child_by_field(n, "body"), (TSNode){0}, true, in);
    if (SYM_IS(t, "do_statement"))
        return flow_loop(F, child_by_field(n, "condition"),
                         child_by_field(n, "body"), (TSNode){0}, false, in);
    if (SYM_IS(t, "for_statement")) {
        TSNode init = child_by_field(n, "initializer");
        in = type_is(init.id ? init : n, "declaration") ? flow_stmt(F, init, in) : flow_expr(F, init, in);
        return flow_loop(F, child_by_field(n, "condition"),
                         child_by_field(n, "body"),
                         child_by_field(n, "update"), true, in);
    }
    if (SYM_IS(t, "switch_statement")) {
        StateSet c = flow_expr(F, child_by_field(n, "condition"), in);
        TSNode body = child_by_field(n, "body");
        StateSet *ob = F->brk, brk = {0}, cur = {0};
        F->brk = &brk;
        bool has_default = false;
        for (uint32_t i = 0; i < ts_node_named_child_count(body); i++) {
            TSNode k = ts_node_named_child(body, i);
            if (type_is(k, "case_statement")) {
                set_union(&cur, &c);
                if (ts_node_is_null(child_by_field(k, "value")))
                    has_default = true;
                for (uint32_t j = 0; j < ts_node_named_child_count(k); j++) {
                    TSNode s = ts_node_named_child(k, j);
                    if (ts_node_eq(s, child_by_field(k, "value")))
                        continue;
                    cur = flow_stmt(F, s, cur);
                }
            } else {
                cur = flow_stmt(F, k, cur);
            }
        }
        F->brk = ob;
        set_union(&cur, &brk);
        if (!has_default)
            set_union(&cur, &c);
        free(brk.bits);
        free(c.bits);
        return cur;
    }
    if (SYM_IS(t, "expression_statement") || SYM_IS(t, "declaration"))
        return flow_expr(F, n, in);
    /* compound statements, preprocessor blocks, case bodies: in order */
    for (uint32_t i = 0; i < ts_node_named_child_count(n); i++)
        in = flow_stmt(F, ts_node_named_child(n, i), in);
    return in;
}

StateSet *flow_successors(Unit *u, AsyncFn *fn)
{
    Flow F = {.u = u, .fn = fn};
    F.succ = xcalloc((size_t)fn->nstates, sizeof *F.succ);
    /* Passes until one adds nothing. Each pass that goes on has added a
     * state to a set (a transition, a label's, a loop head's) and the sets
     * are bounded by the states, so this ends. */
    for (int pass = 0;; pass++) {
        F.changed = false;
        StateSet end = flow_stmt(&F, fn->body, single(0));
        edges(&F, &end, 1);
        free(end.bits);
        if (!F.changed && pass > 0)
            break;
    }
    for (int i = 0; i < F.labels.len; i++) {
        FlowLabel *l = F.labels.items[i];
        free(l->name);
        free(l->in.bits);
        free(l);
    }
    free(F.labels.items);
    for (int i = 0; i < F.head_sets.len; i++) {
        StateSet *h = F.head_sets.items[i];
        free(h->bits);
        free(h);
    }
    free(F.head_sets.items);
    nodemap_free(&F.heads);
    return F.succ;
}

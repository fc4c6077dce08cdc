/*
 * check.c: the safety net — async mistakes Rust rejects, caught in C.
 *
 * Input: a Unit after liveness (names resolved, awaits numbered).
 * Output: diagnostics, each with a kind that `asyncc: allow(KIND)` in a
 * comment on the line (or the line before) silences, and a one-line hint:
 *  - unawaited (warning): an async function called outside await(),
 *    ac_box() or ac_spawn(): the future is created and dropped, its body
 *    never runs. Used as a value it is an error: a future is not a T.
 *  - blocking (warning): a call in an async function that blocks the worker
 *    thread (documented list in docs/diagnostics.md, extended by
 *    declaring a function `ac_blocks(T) name(params);`).
 *  - lock-across-await (error): a pthread mutex, rwlock or spinlock held
 *    at an await on some path: another task on the same worker that takes
 *    the lock deadlocks it, and a task resumed on another worker unlocks
 *    from the wrong thread (Rust rejects both through Send).
 *  - spawn-borrow (error): a future passed to ac_spawn captures the address
 *    of a local, or a pointer parameter whose pointee may not outlive the
 *    spawning frame (Rust's 'static rule for spawned tasks).
 *  - handle-type (error): a task's handle declared ac_handle(U) for a
 *    future that yields T != U.
 * Recursion cycles and await outside async functions are rejected by
 * liveness.c. With -Werror, warnings count as errors.
 */
#include "compiler.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Calls that take a future (a call to an async function) as an argument. */
static const char *const future_takers[] = {"await",   "ac_box",     "ac_spawn", "ac_joinset_spawn",
                                            "ac_timeout", "ac_all", "ac_try_all", NULL};

static bool is_async_name(Unit *u, TSNode ident)
{
    char *name = parse_text(u, ident);
    bool yes = parse_find_fn(u, name) != NULL || sema_ext_fn(u->sema, name) != NULL;
    free(name);
    return yes;
}

static TSNode callee_ident(TSNode call)
{
    TSNode f = child_by_field(call, "function");
    return !ts_node_is_null(f) && type_is(f, "identifier") ? f : (TSNode){0};
}

/* The call_expression whose argument list directly holds n, if any. */
static TSNode call_taking(Unit *u, TSNode n)
{
    TSNode p = parse_parent(u, n);
    if (ts_node_is_null(p) || !type_is(p, "argument_list"))
        return (TSNode){0};
    return parse_parent(u, p);
}

static bool taken_as_future(Unit *u, TSNode call)
{
    TSNode outer = call_taking(u, call);
    if (ts_node_is_null(outer))
        return false;
    for (int i = 0; future_takers[i]; i++)
        if (parse_is_call_to(u, outer, future_takers[i]))
            return true;
    return false;
}

/* ---- unawaited futures ------------------------------------------------------ */

static void check_unawaited(Unit *u, TSNode call)
{
    TSNode f = callee_ident(call);
    if (ts_node_is_null(f) || !is_async_name(u, f) || taken_as_future(u, call) ||
        parse_names_local(u, f))
        return;
    char *name = parse_text(u, f);
    TSNode p = parse_parent(u, call);
    if (!ts_node_is_null(p) && type_is(p, "cast_expression")) {
        /* (void)f(x); discards the value explicitly: still a statement */
        char *cast = parse_text(u, child_by_field(p, "type"));
        if (strcmp(cast, "void") == 0)
            p = parse_parent(u, p);
        free(cast);
    }
    bool statement = !ts_node_is_null(p) && type_is(p, "expression_statement");
    char *hint = xasprintf("await it, await(%s(...)), or run it as a task, ac_spawn(%s(...))", name,
                           name);
    if (statement)
        diag_check(&u->src, ts_node_start_byte(call), false, "unawaited", hint,
                   "the future of '%s' is never awaited; futures do nothing unless awaited", name);
    else
        diag_check(&u->src, ts_node_start_byte(call), true, "unawaited", hint,
                   "the value of '%s(...)' is a future, not its result; await it", name);
    free(hint);
    free(name);
}

/* ---- blocking calls ----------------------------------------------------------- */

typedef struct Blocking {
    const char *name; /* function */
    const char *hint; /* what to do instead */
} Blocking;

static const char pool[] = "run it on the blocking pool: await(ac_blocking(fn, arg))";
static const Blocking blocking[] = {
    {"sleep", "suspend instead: await(ac_sleep(ms))"},
    {"usleep", "suspend instead: await(ac_sleep(ms))"},
    {"nanosleep", "suspend instead: await(ac_sleep(ms))"},
    {"clock_nanosleep", "suspend instead: await(ac_sleep(ms))"},
    {"read", pool}, {"write", pool}, {"pread", pool}, {"pwrite", pool}, {"readv", pool},
    {"writev", pool}, {"recv", pool}, {"send", pool}, {"recvfrom", pool}, {"sendto", pool},
    {"recvmsg", pool}, {"sendmsg", pool}, {"accept", pool}, {"accept4", pool},
    {"connect", pool}, {"fread", pool}, {"fgets", pool}, {"fgetc", pool}, {"getc", pool},
    {"getchar", pool}, {"getline", pool}, {"getdelim", pool}, {"scanf", pool},
    {"fscanf", pool}, {"gets", pool}, {"fopen", pool}, {"fflush", pool}, {"fsync", pool},
    {"fdatasync", pool}, {"flock", pool}, {"lockf", pool}, {"system", pool}, {"popen", pool},
    {"pclose", pool}, {"wait", pool}, {"waitpid", pool}, {"waitid", pool},
    {"pthread_join", pool}, {"pthread_cond_wait", pool}, {"pthread_cond_timedwait", pool},
    {"sem_wait", pool}, {"sem_timedwait", pool}, {"getaddrinfo", pool},
    {"gethostbyname", pool}, {"getnameinfo", pool}, {"poll", pool}, {"ppoll", pool},
    {"select", pool}, {"pselect", pool}, {"epoll_wait", pool}, {"msgrcv", pool},
    {"msgsnd", pool}, {"mq_receive", pool}, {"mq_send", pool}, {"sigwait", pool},
    {"pause", pool},
    {NULL, NULL},
};

/* recv/send with MSG_DONTWAIT in their flags do not block. */
static bool dontwait(Unit *u, TSNode call)
{
    TSNode args = child_by_field(call, "arguments");
    char *t = parse_text(u, args);
    bool yes = strstr(t, "MSG_DONTWAIT") != NULL;
    free(t);
    return yes;
}

static void check_blocking(Unit *u, TSNode call)
{
    TSNode f = callee_ident(call);
    if (ts_node_is_null(f))
        return;
    char *name = parse_text(u, f);
    const char *hint = NULL;
    for (int i = 0; blocking[i].name && !hint; i++)
        if (strcmp(blocking[i].name, name) == 0)
            hint = blocking[i].hint;
    if (!hint && sema_is_blocking(u->sema, name))
        hint = pool;
    if (hint && !(hint == pool && dontwait(u, call)))
        diag_check(&u->src, ts_node_start_byte(call), false, "blocking", hint,
                   "'%s' blocks the worker thread, and every task on it, inside an async "
                   "function",
                   name);
    free(name);
}

/* ---- spawned futures must own what they point to ------------------------------- */

/* Whether the member access p, on a local (`s.buf`, `s.in.buf`: `.` all
 * the way), names an array that decays to a pointer into the local, where
 * p and the accesses after it leave off: not indexed for a value, not
 * followed by `->` into memory of its own. */
static bool member_array_decays(Unit *u, TSNode p)
{
    if (!type_is(p, "field_expression") || !parse_eq(u, child_by_field(p, "operator"), "."))
        return false;
    for (;;) {
        TSNode up = parse_parent(u, p);
        if (ts_node_is_null(up) || !type_is(up, "field_expression") ||
            !ts_node_eq(child_by_field(up, "argument"), p) ||
            !parse_eq(u, child_by_field(up, "operator"), "."))
            break;
        p = up;
    }
    const TypeInfo *mt = sema_member_type(u->sema, ts_node_start_byte(p));
    return mt && strchr(mt->canonical, '[') && !strstr(mt->canonical, "(*") &&
           !liveness_indexed_for_value(u, p, mt);
}

static void check_spawn_arg(Unit *u, AsyncFn *fn, TSNode spawn, TSNode arg)
{
    /* Walk the argument for &local, local arrays and pointer parameters;
     * not into calls of plain functions, whose arguments are used up before
     * the task starts (`f(next(&seed))` captures next's result, not &seed). */
    TSTreeCursor c = ts_tree_cursor_new(arg);
    for (;;) {
        TSNode n = ts_tree_cursor_current_node(&c);
        if (type_is(n, "call_expression")) {
            if (ts_node_eq(n, arg) || !cursor_advance(&c, false))
                break;
            continue;
        }
        Var *v = NULL;
        const char *why = NULL;
        TSNode literal = {0}; /* a compound literal whose address is captured */
        if (type_is(n, "pointer_expression") &&
            parse_eq(u, child_by_field(n, "operator"), "&")) {
            TSNode e = child_by_field(n, "argument");
            while (!ts_node_is_null(e) && (type_is(e, "field_expression") ||
                                           type_is(e, "subscript_expression") ||
                                           type_is(e, "parenthesized_expression")))
                e = type_is(e, "parenthesized_expression") ? ts_node_named_child(e, 0)
                                                           : child_by_field(e, "argument");
            if (!ts_node_is_null(e) && type_is(e, "identifier") && fn &&
                (v = nodemap_get(&fn->refs, e)) != NULL && !v->is_static)
                why = "the address of";
            else if (!ts_node_is_null(e) && type_is(e, "compound_literal_expression"))
                literal = e;
        } else if (type_is(n, "compound_literal_expression")) {
            /* An array literal decays to a pointer into itself. */
            const TypeInfo *ti = sema_literal_type(u->sema, ts_node_start_byte(n));
            TSNode p = parse_parent(u, n);
            bool read = !ts_node_is_null(p) && type_is(p, "subscript_expression") &&
                        ts_node_eq(child_by_field(p, "argument"), n);
            if (ti && strchr(ti->canonical, '[') && !read)
                literal = n;
        } else if (type_is(n, "identifier") && fn && (v = nodemap_get(&fn->refs, n)) != NULL &&
                   !v->is_static) {
            const TypeInfo *ti = sema_var_type(u->sema, ts_node_start_byte(v->ident));
            const char *sp = ti ? ti->spelling : "";
            /* `arr[i]` and `s.f` read a value; only the bare name decays to a
             * pointer into the frame. */
            TSNode p = parse_parent(u, n);
            bool read = !ts_node_is_null(p) &&
                        ((type_is(p, "subscript_expression") || type_is(p, "field_expression")) &&
                         ts_node_eq(child_by_field(p, "argument"), n));
            if (read && !v->is_param && member_array_decays(u, p))
                why = "an array member of";
            else if (read)
                ;
            else if (!v->is_param && strchr(sp, '[') && !strchr(sp, '*'))
                why = "the array";
            else if (v->is_param && (strchr(sp, '*') || strchr(sp, '[')))
                why = "the pointer parameter";
        }
        if (!ts_node_is_null(literal)) {
            diag_check(&u->src, ts_node_start_byte(n), true, "spawn-borrow",
                       "pass ownership instead: copy it into memory the task frees (malloc), "
                       "or pass it by value",
                       "a spawned task may outlive this frame, but its future captures the "
                       "address of a compound literal, which lives only until its block ends");
            if (!cursor_advance(&c, false))
                break;
            continue;
        }
        if (why) {
            char *hint = xasprintf("pass ownership instead: copy '%s' into memory the task frees "
                                   "(malloc), or pass it by value",
                                   v->name);
            diag_check(&u->src, ts_node_start_byte(n), true, "spawn-borrow", hint,
                       "a spawned task may outlive this frame, but its future captures %s "
                       "'%s'",
                       why, v->name);
            free(hint);
        }
        if (!cursor_advance(&c, true))
            break;
    }
    ts_tree_cursor_delete(&c);
    (void)spawn;
}

static void check_spawn(Unit *u, AsyncFn *fn, TSNode call)
{
    bool spawn = parse_is_call_to(u, call, "ac_spawn");
    bool set_spawn = parse_is_call_to(u, call, "ac_joinset_spawn");
    if (!spawn && !set_spawn)
        return;
    TSNode args = child_by_field(call, "arguments");
    uint32_t n = ts_node_named_child_count(args);
    if (n == 0)
        return;
    TSNode fut = ts_node_named_child(args, n - 1);
    if (!type_is(fut, "call_expression"))
        return;
    TSNode fargs = child_by_field(fut, "arguments");
    for (uint32_t i = 0; i < ts_node_named_child_count(fargs); i++)
        check_spawn_arg(u, fn, call, ts_node_named_child(fargs, i));
}

/* ---- typed handles -------------------------------------------------------------- */

/* clang's spelling of a pointer to the type clang spells t: `int *` for
 * `int`, `char **` for `char *`. Owned by the caller. */
static char *pointer_to(const char *t)
{
    size_t n = strlen(t);
    return xasprintf(n && t[n - 1] == '*' ? "%s*" : "%s *", t);
}

/* `ac_handle(long) h = ac_spawn(f())` where f yields int: joining would read
 * a long out of an int slot. C only warns about the pointer conversion; it
 * is an error here, as in Rust. */
static void check_set_type(Unit *u, Spawn *sp)
{
    const TypeInfo *set = sema_expr_type(u->sema, ts_node_start_byte(sp->set));
    const TypeInfo *out = sema_expr_type(u->sema, ts_node_start_byte(sp->call));
    if (!set || !out || strchr(out->canonical, '('))
        return;
    char *want = pointer_to(out->canonical);
    if (strcmp(set->canonical, want) != 0 && strcmp(set->canonical, "void *") != 0)
        diag_check(&u->src, ts_node_start_byte(sp->node), true, "handle-type",
                   "declare the set ac_joinset(T) with the T its tasks yield",
                   "the task yields '%s', but the set has type '%s'", out->spelling, set->spelling);
    free(want);
}

static void check_handle_type(Unit *u, AsyncFn *fn, Spawn *sp)
{
    if (!ts_node_is_null(sp->set)) {
        check_set_type(u, sp);
        return;
    }
    TSNode p = parse_parent(u, sp->node), target = {0};
    if (ts_node_is_null(p))
        return;
    if (type_is(p, "init_declarator"))
        target = parse_declarator_ident(child_by_field(p, "declarator"));
    else if (type_is(p, "assignment_expression") &&
             parse_eq(u, child_by_field(p, "operator"), "="))
        target = child_by_field(p, "left");
    if (ts_node_is_null(target) || !type_is(target, "identifier"))
        return;
    Var *v = nodemap_get(&fn->refs, target);
    for (int i = 0; !v && i < fn->vars.len; i++)
        if (ts_node_eq(((Var *)fn->vars.items[i])->ident, target))
            v = fn->vars.items[i];
    const TypeInfo *hv = v ? sema_var_type(u->sema, ts_node_start_byte(v->ident)) : NULL;
    const TypeInfo *out = sema_expr_type(u->sema, ts_node_start_byte(sp->call));
    if (!hv || !out || strchr(out->canonical, '('))
        return;
    char *want = pointer_to(out->canonical);
    if (strcmp(hv->canonical, want) != 0)
        diag_check(&u->src, ts_node_start_byte(sp->node), true, "handle-type",
                   "declare the handle ac_handle(T) with the T the spawned function yields",
                   "the task yields '%s', but its handle '%s' has type '%s'", out->spelling,
                   v->name, hv->spelling);
    free(want);
}

/* ---- locks held across an await ------------------------------------------------ */

/* The set of lock expressions held, as normalised text (`&m` -> `m`). */
typedef struct Held {
    Vec keys; /* char* */
} Held;

typedef struct LockWalk {
    Unit *u;
    AsyncFn *fn;
    Held *brk, *cont;  /* held sets reaching break / continue */
    Vec labels;        /* LockLabel* */
    NodeMap reported;  /* await nodes already reported */
    bool changed;      /* a label's set grew this round */
} LockWalk;

typedef struct LockLabel {
    char *name;   /* label */
    Held in;      /* held sets arriving by goto */
} LockLabel;

static bool held_has(const Held *h, const char *k)
{
    for (int i = 0; i < h->keys.len; i++)
        if (strcmp(h->keys.items[i], k) == 0)
            return true;
    return false;
}

static bool held_add(Held *h, const char *k)
{
    if (held_has(h, k))
        return false;
    vec_push(&h->keys, xstrdup(k));
    return true;
}

static void held_remove(Held *h, const char *k)
{
    for (int i = 0; i < h->keys.len; i++)
        if (strcmp(h->keys.items[i], k) == 0) {
            free(h->keys.items[i]);
            h->keys.items[i] = h->keys.items[--h->keys.len];
            return;
        }
}

static bool held_union(Held *into, const Held *from)
{
    bool grew = false;
    for (int i = 0; i < from->keys.len; i++)
        grew |= held_add(into, from->keys.items[i]);
    return grew;
}

/* Whether a and b hold the same locks. */
static bool held_equal(const Held *a, const Held *b)
{
    if (a->keys.len != b->keys.len)
        return false;
    for (int i = 0; i < a->keys.len; i++)
        if (!held_has(b, a->keys.items[i]))
            return false;
    return true;
}

static Held held_copy(const Held *h)
{
    Held c = {0};
    held_union(&c, h);
    return c;
}

static void held_free(Held *h)
{
    for (int i = 0; i < h->keys.len; i++)
        free(h->keys.items[i]);
    free(h->keys.items);
    *h = (Held){0};
}

static const char *const lock_fns[] = {"pthread_mutex_lock", "pthread_mutex_trylock",
                                       "pthread_mutex_timedlock", "pthread_rwlock_rdlock",
                                       "pthread_rwlock_wrlock", "pthread_rwlock_tryrdlock",
                                       "pthread_rwlock_trywrlock", "pthread_spin_lock",
                                       "pthread_spin_trylock", NULL};
static const char *const unlock_fns[] = {"pthread_mutex_unlock", "pthread_rwlock_unlock",
                                         "pthread_spin_unlock", NULL};

/* `&m`, `& m`, `(&m)` all name lock `m`. */
static char *lock_key(Unit *u, TSNode call)
{
    TSNode args = child_by_field(call, "arguments");
    if (ts_node_named_child_count(args) == 0)
        return NULL;
    char *t = parse_text(u, ts_node_named_child(args, 0));
    char *k = xmalloc(strlen(t) + 1), *o = k;
    for (char *p = t; *p; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '(' && *p != ')' && *p != '&')
            *o++ = *p;
    *o = 0;
    free(t);
    return k;
}

static bool call_in(Unit *u, TSNode call, const char *const *names)
{
    for (int i = 0; names[i]; i++)
        if (parse_is_call_to(u, call, names[i]))
            return true;
    return false;
}

static void lk_expr(LockWalk *W, TSNode n, Held *h);

static void lk_children(LockWalk *W, TSNode n, Held *h)
{
    TSTreeCursor c = ts_tree_cursor_new(n);
    if (ts_tree_cursor_goto_first_child(&c)) {
        do
            lk_expr(W, ts_tree_cursor_current_node(&c), h);
        while (ts_tree_cursor_goto_next_sibling(&c));
    }
    ts_tree_cursor_delete(&c);
}

static void report_await(LockWalk *W, TSNode aw, const Held *h)
{
    if (nodemap_get(&W->reported, aw))
        return;
    nodemap_put(&W->reported, aw, (void *)1);
    char *hint = xasprintf("unlock '%s' before the await, or use an async lock that is held "
                           "across awaits safely",
                           (char *)h->keys.items[0]);
    diag_check(&W->u->src, ts_node_start_byte(aw), true, "lock-across-await", hint,
               "'%s' is locked across this await: another task on this worker that takes it "
               "deadlocks, and the task may resume on a different thread to unlock it",
               (char *)h->keys.items[0]);
    free(hint);
}

static void lk_expr(LockWalk *W, TSNode n, Held *h)
{
    if (ts_node_is_null(n))
        return;
    if (type_is(n, "call_expression")) {
        lk_children(W, n, h); /* arguments first */
        if (parse_is_await(W->u, n)) {
            if (h->keys.len)
                report_await(W, n, h);
        } else if (call_in(W->u, n, lock_fns) || call_in(W->u, n, unlock_fns)) {
            char *k = lock_key(W->u, n);
            if (k && call_in(W->u, n, lock_fns))
                held_add(h, k);
            else if (k)
                held_remove(h, k);
            free(k);
        }
        return;
    }
    if (type_is(n, "binary_expression")) {
        TSNode op = child_by_field(n, "operator");
        if (parse_eq(W->u, op, "&&") || parse_eq(W->u, op, "||")) {
            lk_expr(W, child_by_field(n, "left"), h);
            Held r = held_copy(h);
            lk_expr(W, child_by_field(n, "right"), &r);
            held_union(h, &r);
            held_free(&r);
            return;
        }
    }
    if (type_is(n, "conditional_expression")) {
        lk_expr(W, child_by_field(n, "condition"), h);
        Held a = held_copy(h);
        lk_expr(W, child_by_field(n, "consequence"), &a);
        lk_expr(W, child_by_field(n, "alternative"), h);
        held_union(h, &a);
        held_free(&a);
        return;
    }
    lk_children(W, n, h);
}

static LockLabel *lk_label(LockWalk *W, TSNode ident)
{
    for (int i = 0; i < W->labels.len; i++) {
        LockLabel *l = W->labels.items[i];
        if (parse_eq(W->u, ident, l->name))
            return l;
    }
    LockLabel *l = xcalloc(1, sizeof *l);
    l->name = parse_text(W->u, ident);
    vec_push(&W->labels, l);
    return l;
}

static void lk_stmt(LockWalk *W, TSNode n, Held *h);

static void lk_loop(LockWalk *W, TSNode cond, TSNode body, TSNode step, bool test_first, Held *h)
{
    Held *ob = W->brk, *oc = W->cont;
    Held brk = {0}, cont = {0};
    for (int round = 0; round < 3; round++) {
        /* A round that ends where it started (the locks held, those reaching
         * break and continue, the labels' sets) is a fixed point: another
         * would walk the same sets to the same result. Stopping there keeps
         * nested loops from costing 3^depth walks. */
        Held start = held_copy(h);
        int brk_len = brk.keys.len, cont_len = cont.keys.len;
        bool outer_changed = W->changed;
        W->changed = false;
        if (test_first)
            lk_expr(W, cond, h);
        W->brk = &brk;
        W->cont = &cont;
        Held in = held_copy(h);
        lk_stmt(W, body, &in);
        held_union(&in, &cont);
        if (!test_first)
            lk_expr(W, cond, &in);
        else
            lk_expr(W, step, &in);
        held_union(h, &in);
        held_free(&in);
        bool fixed = held_equal(&start, h) && brk.keys.len == brk_len &&
                     cont.keys.len == cont_len && !W->changed;
        W->changed |= outer_changed;
        held_free(&start);
        if (fixed)
            break;
    }
    W->brk = ob;
    W->cont = oc;
    held_union(h, &brk);
    held_free(&brk);
    held_free(&cont);
}

static void lk_stmt(LockWalk *W, TSNode n, Held *h)
{
    if (ts_node_is_null(n))
        return;
    TSSymbol t = ts_node_symbol(n);
    if (SYM_IS(t, "return_statement")) {
        lk_children(W, n, h);
        held_free(h);
        return;
    }
    if (SYM_IS(t, "break_statement") || SYM_IS(t, "continue_statement")) {
        Held *to = SYM_IS(t, "break_statement") ? W->brk : W->cont;
        if (to)
            held_union(to, h);
        held_free(h);
        return;
    }
    if (SYM_IS(t, "goto_statement")) {
        LockLabel *l = lk_label(W, child_by_field(n, "label"));
        W->changed |= held_union(&l->in, h);
        held_free(h);
        return;
    }
    if (SYM_IS(t, "labeled_statement")) {
        LockLabel *l = lk_label(W, child_by_field(n, "label"));
        held_union(h, &l->in);
        for (uint32_t i = 0; i < ts_node_named_child_count(n); i++) {
            TSNode c = ts_node_named_child(n, i);
            if (!type_is(c, "statement_identifier"))
                lk_stmt(W, c, h);
        }
        return;
    }
    if (SYM_IS(t, "if_statement")) {
        lk_expr(W, child_by_field(n, "condition"), h);
        Held a = held_copy(h);
        lk_stmt(W, child_by_field(n, "consequence"), &a);
        TSNode alt = child_by_field(n, "alternative");
        if (!ts_node_is_null(alt))
            lk_stmt(W, alt, h);
        held_union(h, &a);
        held_free(&a);
        return;
    }
    if (SYM_IS(t, "while_statement")) {
        lk_loop(W, child_by_field(n, "condition"),
                child_by_field(n, "body"), (TSNode){0}, true, h);
        return;
    }
    if (SYM_IS(t, "do_statement")) {
        lk_loop(W, child_by_field(n, "condition"),
                child_by_field(n, "body"), (TSNode){0}, false, h);
        return;
    }
    if (SYM_IS(t, "for_statement")) {
        TSNode init = child_by_field(n, "initializer");
        if (!ts_node_is_null(init))
            lk_expr(W, init, h);
        lk_loop(W, child_by_field(n, "condition"),
                child_by_field(n, "body"),
                child_by_field(n, "update"), true, h);
        return;
    }
    if (SYM_IS(t, "switch_statement")) {
        lk_expr(W, child_by_field(n, "condition"), h);
        Held *ob = W->brk, brk = {0}, entry = held_copy(h), cur = {0};
        W->brk = &brk;
        TSNode body = child_by_field(n, "body");
        for (uint32_t i = 0; i < ts_node_named_child_count(body); i++) {
            TSNode k = ts_node_named_child(body, i);
            if (type_is(k, "case_statement")) {
                held_union(&cur, &entry);
                TSNode value = child_by_field(k, "value");
                for (uint32_t j = 0; j < ts_node_named_child_count(k); j++) {
                    TSNode s = ts_node_named_child(k, j);
                    if (!ts_node_eq(s, value))
                        lk_stmt(W, s, &cur);
                }
            } else {
                lk_stmt(W, k, &cur);
            }
        }
        W->brk = ob;
        held_union(h, &cur);
        held_union(h, &brk);
        held_free(&brk);
        held_free(&cur);
        held_free(&entry);
        return;
    }
    if (SYM_IS(t, "expression_statement") || SYM_IS(t, "declaration")) {
        lk_expr(W, n, h);
        return;
    }
    for (uint32_t i = 0; i < ts_node_named_child_count(n); i++)
        lk_stmt(W, ts_node_named_child(n, i), h);
}

static void check_locks(Unit *u, AsyncFn *fn)
{
    LockWalk W = {.u = u, .fn = fn};
    for (int round = 0; round < 10; round++) {
        W.changed = false;
        Held h = {0};
        lk_stmt(&W, fn->body, &h);
        held_free(&h);
        if (!W.changed)
            break;
    }
    for (int i = 0; i < W.labels.len; i++) {
        LockLabel *l = W.labels.items[i];
        free(l->name);
        held_free(&l->in);
        free(l);
    }
    free(W.labels.items);
    nodemap_free(&W.reported);
}

/* ---- driver -------------------------------------------------------------------- */

bool check_run(Unit *u)
{
    int before = diag_error_count();
    /* The calls and the functions are both in source order: one pass. */
    int next_fn = 0;
    for (int i = 0; i < u->ncalls; i++) {
        TSNode n = u->calls[i];
        uint32_t at = ts_node_start_byte(n);
        AsyncFn *fn = NULL;
        for (; next_fn < u->fns.len; next_fn++) {
            AsyncFn *f = u->fns.items[next_fn];
            if (f->is_def && at < ts_node_end_byte(f->body)) {
                if (at >= ts_node_start_byte(f->body))
                    fn = f;
                break;
            }
        }
        check_unawaited(u, n);
        check_spawn(u, fn, n);
        if (fn)
            check_blocking(u, n);
    }
    for (int i = 0; i < u->fns.len; i++) {
        AsyncFn *f = u->fns.items[i];
        if (f->is_def && f->awaits.len)
            check_locks(u, f);
        for (int j = 0; f->is_def && j < f->spawns.len; j++)
            check_handle_type(u, f, f->spawns.items[j]);
    }
    return diag_error_count() == before;
}

/*
 * lower.c: an async function's body becomes the body of its poll function.
 *
 * Input: an AsyncFn with resolved awaits and liveness (liveness.c).
 * Output: fn->poll_text, the poll function's body: temporaries, a dispatch
 * switch on ac_f->ac_state that jumps to the resume label of the await the
 * frame is suspended at, then the user's statements with
 *  - each await(f(args)) expanded in place into: construct f's future in its
 *    frame slot, record the suspend state, `ac_resume_N:` label, poll it and
 *    return AC_PENDING while it is pending, mark the frame poisoned (no
 *    await in flight: see mark_poisoned), take its value into a temporary;
 *  - awaits inside expressions hoisted into statements before the
 *    expression, in evaluation order; `&&`, `||` and `?:` with an await in a
 *    conditionally evaluated operand become if statements and `,` a statement
 *    sequence, so short-circuiting and sequencing are kept; operands C leaves
 *    unsequenced are evaluated after the awaits they stand beside;
 *  - a loop whose condition or step awaits becomes `for (;;)` with the
 *    condition as statements and `continue` as a goto to the step;
 *  - variables that live across an await renamed to frame fields
 *    (`ac_f->x`), their declarations turned into assignments;
 *  - `return v` into writing *ac_out, marking the frame returned, AC_READY.
 * Everything else (loops, switch, goto, labels, comments) is kept as written,
 * because resuming by goto into the original structure is valid C as long
 * as nothing that lives across the jump is a C local: that is what hoisting
 * guarantees, and why a VLA in scope of an await is rejected earlier.
 * Invariant: temporaries are written as placeholders (\1id\2) while lowering
 * and become `ac_tN` (poll-local) or `ac_f->ac_tN` (live across a later
 * await) once all their live states are known.
 */
#include "compiler.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct Lower {
    Unit *u;
    AsyncFn *fn;
    Buf out;          /* poll body being written */
    NodeMap touched;  /* nodes whose subtree needs more than a verbatim copy */
    NodeMap has_await;/* nodes whose subtree contains an await */
    NodeMap repl;     /* expression node -> its lowered text */
    NodeMap literals; /* compound literal node -> its Literal, when kept in the frame */
    NodeMap awaits;   /* await node -> Await* */
    NodeMap spawns;   /* ac_spawn node -> Spawn* */
    Vec pending;      /* Temp* whose value is still to be used in this statement */
    const char *cont; /* label `continue` must jump to, NULL for a plain continue */
    bool cont_used;   /* a continue jumped to `cont` (else its label is not emitted) */
    int labels;       /* counter for ac_next_N labels */
    int line;         /* source line the next output line corresponds to */
    size_t synced;    /* out.len when `line` was last brought up to date */
    /* The last `#line` emitted, while nothing has replaced it: */
    bool directive_open;  /* there is one */
    size_t directive;     /* where it starts in out */
    size_t directive_end; /* where it ends: nothing follows it while out.len is this */
    int line_before;      /* `line` before it */
    Vec defined;          /* Var* reached through a #define of their name now (by_define) */
    NodeMap exits;        /* break, continue and goto statements that leave the scope of
                             a variable with a cleanup: the cleanups to run before
                             them (char*, owned; jump_cleanups) */
    const ExtFn *self;    /* the function as clang declares it, or NULL (emit_return) */
} Lower;

static bool touched(Lower *L, TSNode n) { return nodemap_get(&L->touched, n) != NULL; }
static bool has_await(Lower *L, TSNode n) { return nodemap_get(&L->has_await, n) != NULL; }

static void mark_up(Lower *L, NodeMap *m, TSNode n)
{
    for (; !ts_node_is_null(n); n = parse_parent(L->u, n)) {
        if (nodemap_get(m, n))
            return;
        nodemap_put(m, n, (void *)1);
        if (ts_node_eq(n, L->fn->body))
            return;
    }
}

static void mark_returns_and_continues(Lower *L, TSNode n)
{
    /* Iterative walk over the body. */
    TSTreeCursor c = ts_tree_cursor_new(n);
    for (;;) {
        TSNode cur = ts_tree_cursor_current_node(&c);
        if (type_is(cur, "return_statement") || type_is(cur, "continue_statement"))
            mark_up(L, &L->touched, cur);
        if (!cursor_advance(&c, true))
            break;
    }
    ts_tree_cursor_delete(&c);
}

/* ---- output ---------------------------------------------------------------- */

static void put(Lower *L, const char *s) { buf_puts(&L->out, s); }

static int source_line(Lower *L, TSNode n)
{
    (void)L;
    return (int)ts_node_start_point(n).row + 1;
}

/* Whether the output ends with a `#line` that nothing follows. */
static bool ends_with_directive(Lower *L)
{
    return L->directive_open && L->directive_end == L->out.len;
}

/* Brings `line` up to date with what was written since the last look. */
static void count_lines(Lower *L)
{
    for (size_t i = L->synced; i < L->out.len; i++)
        if (L->out.data[i] == '\n')
            L->line++;
    L->synced = L->out.len;
}

/* Emits `#line` so that the next output line maps to source line `line`
 * (replacing a `#line` that nothing has followed yet). */
static void sync_line(Lower *L, int line)
{
    if (ends_with_directive(L)) {
        buf_truncate(&L->out, L->directive); /* nothing followed the last one: drop it */
        L->synced = L->out.len;
        L->line = L->line_before;
    }
    L->directive_open = false;
    count_lines(L);
    if (L->line == line)
        return;
    if (L->out.len && L->out.data[L->out.len - 1] != '\n') {
        put(L, "\n");
        L->line++;
        L->synced = L->out.len;
    }
    L->line_before = L->line;
    L->directive = L->out.len;
    buf_printf(&L->out, "#line %d \"%s\"\n", line, L->u->line_path);
    L->synced = L->directive_end = L->out.len;
    L->line = line;
    L->directive_open = true;
}

/* Indentation of the source line holding n, reused for generated lines. */
static char *indent_of(Lower *L, TSNode n)
{
    uint32_t s = ts_node_start_byte(n);
    uint32_t b = s - ts_node_start_point(n).column; /* tree-sitter counts bytes */
    uint32_t e = b;
    while (e < s && (L->u->src.text[e] == ' ' || L->u->src.text[e] == '\t'))
        e++;
    return xstrndup(L->u->src.text + b, e - b);
}

/* Starts an output line with n's indentation, unless n continues the
 * line the output is in (as after lower_block's `if (...) `). */
static void indent_line(Lower *L, TSNode n)
{
    if (L->out.len && L->out.data[L->out.len - 1] != '\n')
        return;
    char *ind = indent_of(L, n);
    put(L, ind);
    free(ind);
}

/* ---- rendering ------------------------------------------------------------- */

static void render_into(Lower *L, TSNode n, Buf *b);
static void render_children(Lower *L, TSNode n, Buf *b);

/* ac_spawn(f(args)): a task allocation holding f's frame, initialised, then
 * scheduled; the handle points at the task's output slot, typed T *. */
static void render_spawn(Lower *L, Spawn *sp, Buf *b)
{
    const char *ret = sp->target ? sp->target->ret_type : sp->ext->ret_type;
    bool is_void = sp->target ? sp->target->ret_void : sp->ext->ret_void;
    buf_printf(b, "({ void *ac_sp = ac__task_frame_new(&%s__vt); %s__init(ac_sp", sp->callee,
               sp->callee);
    TSNode args = child_by_field(sp->call, "arguments");
    for (uint32_t i = 0; i < ts_node_named_child_count(args); i++) {
        TSNode a = ts_node_named_child(args, i);
        if (type_is(a, "comment"))
            continue;
        buf_puts(b, ", ");
        render_into(L, a, b);
    }
    if (!ts_node_is_null(sp->set)) {
        buf_puts(b, "); ac__joinset_spawn(");
        render_into(L, sp->set, b);
        buf_puts(b, ", ac_sp); })");
    } else if (is_void) {
        buf_puts(b, "); (void *)ac__spawn(ac_sp); })");
    } else {
        buf_printf(b, "); (__typeof__(%s) *)ac__spawn(ac_sp); })", ret);
    }
}

/* How the body reaches frame variable v: `ac_f->x`, or through a cast to
 * its type when that is declared in the function (v->local_type). */
static void frame_access(const Var *v, Buf *b)
{
    if (v->local_type && strpbrk(v->local_type, "[("))
        buf_printf(b, "(*(__typeof__(%s) *)ac_f->%s)", v->local_type, v->field);
    else if (v->local_type) /* `struct point *` makes `struct point **` */
        buf_printf(b, "(*(%s%s*)ac_f->%s)", v->local_type,
                   v->local_type[strlen(v->local_type) - 1] == '*' ? "" : " ", v->field);
    else
        buf_printf(b, "ac_f->%s", v->field);
}

static void render_into(Lower *L, TSNode n, Buf *b)
{
    const char *r = nodemap_get(&L->repl, n);
    if (r) {
        buf_puts(b, r);
        return;
    }
    Spawn *sp = nodemap_get(&L->spawns, n);
    if (sp) {
        render_spawn(L, sp, b);
        return;
    }
    Literal *lit = nodemap_get(&L->literals, n);
    if (lit) {
        /* A compound literal that outlives a suspension: its object is the
         * frame field, which the literal initialises (C's own evaluation
         * makes it anew each time too); ac__keep (asyncc.h) is that field,
         * an lvalue of the literal's type. */
        buf_printf(b, "%s(ac_f->%s, ", lit->call ? "ac__hold" : "ac__keep", lit->field);
        render_children(L, n, b);
        buf_putc(b, ')');
        return;
    }
    uint32_t s = ts_node_start_byte(n), e = ts_node_end_byte(n);
    if (!touched(L, n)) {
        buf_putn(b, L->u->src.text + s, e - s);
        return;
    }
    if (type_is(n, "identifier") || type_is(n, "type_identifier")) { /* typeof(x) */
        Var *v = nodemap_get(&L->fn->refs, n);
        bool defined = false;
        for (int i = 0; v && i < L->defined.len; i++)
            defined |= L->defined.items[i] == v;
        if (v && v->hoisted && !defined) {
            frame_access(v, b);
            return;
        }
    }
    render_children(L, n, b);
}

/* n's text with each child rendered. */
static void render_children(Lower *L, TSNode n, Buf *b)
{
    uint32_t pos = ts_node_start_byte(n);
    for (uint32_t i = 0; i < ts_node_child_count(n); i++) {
        TSNode c = ts_node_child(n, i);
        buf_putn(b, L->u->src.text + pos, ts_node_start_byte(c) - pos);
        render_into(L, c, b);
        pos = ts_node_end_byte(c);
    }
    buf_putn(b, L->u->src.text + pos, ts_node_end_byte(n) - pos);
}

static char *render(Lower *L, TSNode n)
{
    Buf b = {0};
    render_into(L, n, &b);
    return buf_take(&b);
}

/* ---- temporaries ------------------------------------------------------------ */

static bool is_statement_type(TSNode n);

/* A temporary for the value of node `at`; its storage is needed from `at`
 * until its statement ends. */
static Temp *new_temp(Lower *L, TSNode at, const char *type, int64_t size, int64_t align)
{
    Temp *t = xcalloc(1, sizeof *t);
    t->from = ts_node_start_byte(at);
    t->to = ts_node_end_byte(parse_statement_of(L->u, at));
    t->id = L->fn->temps.len + 1;
    t->type = xstrdup(type);
    t->size = size;
    t->align = align;
    vec_push(&L->fn->temps, t);
    return t;
}

static char *temp_ref(Temp *t) { return xasprintf("\001%d\002", t->id); }

/* After an await completes: the frame holds no future in flight until the
 * next await stores its state, and the completed future's slot may be
 * reused by then (layout.c overlaps it). A poll that stops midway (ac_panic
 * jumps out of it) leaves this state behind, so the drop that follows
 * releases nothing of an await that is over, where the await's own state
 * would have it drop that slot again (a boxed frame freed twice). */
static void mark_poisoned(Lower *L, const char *ind)
{
    buf_printf(&L->out, "%sac_f->ac_state = AC_STATE_POISONED;\n", ind);
}

/* ---- expressions ------------------------------------------------------------- */

static char *lower_expr(Lower *L, TSNode n);
static void hoist(Lower *L, TSNode n);

static const char *callee_ret_type(Await *aw, bool *is_void, int64_t *size, int64_t *align,
                                   Sema *sema)
{
    const char *type = aw->target ? aw->target->ret_type : aw->ext->ret_type;
    *is_void = aw->target ? aw->target->ret_void : aw->ext->ret_void;
    ExtFn *e = aw->ext ? aw->ext : sema_ext_fn(sema, aw->callee);
    *size = e ? e->ret_size : -1;
    *align = e ? e->ret_align : -1;
    return type;
}

/* Lowers the arguments of `call` in order; returns them as ", a, b" (""
 * for none), ready to follow the frame argument of an init call. */
static char *lower_call_args(Lower *L, TSNode call)
{
    TSNode args = child_by_field(call, "arguments");
    Buf a = {0};
    for (uint32_t i = 0; i < ts_node_named_child_count(args); i++) {
        TSNode arg = ts_node_named_child(args, i);
        if (type_is(arg, "comment"))
            continue;
        char *s = lower_expr(L, arg);
        buf_printf(&a, ", %s", s);
        free(s);
    }
    return buf_take(&a);
}

/* The code that drops the future of one arm of a join (or of an await). */
char *lower_drop_arm(Await *arm, const char *slot)
{
    bool embed = !arm->boxed && (arm->target || arm->ext->embeddable);
    if (embed)
        return xasprintf("%s__drop(&ac_f->%s);", arm->callee, slot);
    return xasprintf("%s__vt.drop(ac_f->%s); ac_frame_free(&%s__vt, ac_f->%s);", arm->callee, slot,
                     arm->callee, slot);
}

/* await(ac_all(&a, f(x), &b, g(y))): every future is constructed, then all
 * are polled in turn at one suspend state until each is ready (a bit per
 * future records which), so they run concurrently within this task. With
 * ac_try_all, each future yields an int and the first negative one ends the
 * join: the others are dropped (cancelled) and it is the await's value;
 * otherwise the value is 0. */
static char *lower_timeout(Lower *L, Await *aw);

static char *lower_join(Lower *L, Await *aw)
{
    if (aw->join == 3)
        return lower_timeout(L, aw);
    int st = aw->state, n = aw->arms.len;
    char **outs = xcalloc((size_t)n, sizeof *outs), **args = xcalloc((size_t)n, sizeof *args);
    for (int i = 0; i < n; i++) {
        Await *arm = aw->arms.items[i];
        outs[i] = lower_expr(L, *(TSNode *)aw->outs.items[i]);
        args[i] = lower_call_args(L, arm->call);
    }
    for (int i = 0; i < L->pending.len; i++)
        set_add(&((Temp *)L->pending.items[i])->live, st);
    Temp *t = aw->join == 2 ? new_temp(L, aw->node, "int", 4, 4) : NULL;
    char *tr = t ? temp_ref(t) : NULL;
    char *ind = indent_of(L, aw->node);
    sync_line(L, source_line(L, aw->node));
    unsigned all = n == 32 ? 0xffffffffu : (1u << n) - 1;
    for (int i = 0; i < n; i++) {
        Await *arm = aw->arms.items[i];
        bool embed = !arm->boxed && (arm->target || arm->ext->embeddable);
        if (embed)
            buf_printf(&L->out, "%s%s__init(&ac_f->ac_aw%d_%d%s);\n", ind, arm->callee, st, i, args[i]);
        else
            buf_printf(&L->out, "%sac_f->ac_aw%d_%d = ac__frame_new(&%s__vt);\n%s%s__init(ac_f->ac_aw%d_%d%s);\n",
                       ind, st, i, arm->callee, ind, arm->callee, st, i, args[i]);
        buf_printf(&L->out, "%sac_f->ac_out%d_%d = %s;\n", ind, st, i, outs[i]);
    }
    buf_printf(&L->out, "%sac_f->ac_done%d = 0;\n%sac_f->ac_state = %d;\nac_resume_%d:\n", ind, st,
               ind, st, st);
    for (int i = 0; i < n; i++) {
        Await *arm = aw->arms.items[i];
        bool embed = !arm->boxed && (arm->target || arm->ext->embeddable);
        char *poll = embed ? xasprintf("%s__poll(&ac_f->ac_aw%d_%d, ac_cx, ac_f->ac_out%d_%d)",
                                       arm->callee, st, i, st, i)
                           : xasprintf("%s__vt.poll(ac_f->ac_aw%d_%d, ac_cx, ac_f->ac_out%d_%d)",
                                       arm->callee, st, i, st, i);
        buf_printf(&L->out, "%sif (!(ac_f->ac_done%d & %uu) && %s == AC_READY) {\n", ind, st, 1u << i,
                   poll);
        buf_printf(&L->out, "%s    ac_f->ac_done%d |= %uu;\n", ind, st, 1u << i);
        if (!embed)
            buf_printf(&L->out, "%s    ac_frame_free(&%s__vt, ac_f->ac_aw%d_%d);\n", ind,
                       arm->callee, st, i);
        if (t) {
            buf_printf(&L->out, "%s    if (*(int *)ac_f->ac_out%d_%d < 0) {\n", ind, st, i);
            buf_printf(&L->out, "%s        %s = *(int *)ac_f->ac_out%d_%d;\n", ind, tr, st, i);
            for (int j = 0; j < n; j++) {
                if (j == i)
                    continue;
                char *slot = xasprintf("ac_aw%d_%d", st, j);
                char *drop = lower_drop_arm(aw->arms.items[j], slot);
                buf_printf(&L->out, "%s        if (!(ac_f->ac_done%d & %uu))\n%s            %s\n", ind,
                           st, 1u << j, ind, drop);
                free(drop);
                free(slot);
            }
            buf_printf(&L->out, "%s        goto ac_joined_%d;\n%s    }\n", ind, st, ind);
        }
        buf_printf(&L->out, "%s}\n", ind);
        free(poll);
    }
    buf_printf(&L->out, "%sif (ac_f->ac_done%d != %uu)\n%s    return AC_PENDING;\n", ind, st, all, ind);
    if (t)
        buf_printf(&L->out, "%s%s = 0;\nac_joined_%d:;\n", ind, tr, st);
    mark_poisoned(L, ind);
    for (int i = 0; i < n; i++) {
        free(outs[i]);
        free(args[i]);
    }
    free(outs);
    free(args);
    free(ind);
    if (!t)
        return xstrdup("((void)0)");
    vec_push(&L->pending, t);
    return tr;
}

/* await(ac_timeout(ms, f(x), &out)): f's future raced against a deadline
 * (the runtime's ac_deadline future); if the deadline passes first the
 * future is dropped (cancelled) and the value is AC_ETIMEDOUT, else 0. */
static char *lower_timeout(Lower *L, Await *aw)
{
    int st = aw->state;
    Await *arm = aw->arms.items[0];
    char *limit = lower_expr(L, aw->limit);
    char *out = lower_expr(L, *(TSNode *)aw->outs.items[0]);
    char *args = lower_call_args(L, arm->call);
    for (int i = 0; i < L->pending.len; i++)
        set_add(&((Temp *)L->pending.items[i])->live, st);
    Temp *t = new_temp(L, aw->node, "int", 4, 4);
    char *tr = temp_ref(t);
    char *ind = indent_of(L, aw->node);
    sync_line(L, source_line(L, aw->node));
    bool embed = !arm->boxed && (arm->target || arm->ext->embeddable);
    if (embed)
        buf_printf(&L->out, "%s%s__init(&ac_f->ac_aw%d_0%s);\n", ind, arm->callee, st, args);
    else
        buf_printf(&L->out, "%sac_f->ac_aw%d_0 = ac__frame_new(&%s__vt);\n%s%s__init(ac_f->ac_aw%d_0%s);\n",
                   ind, st, arm->callee, ind, arm->callee, st, args);
    buf_printf(&L->out, "%sac_f->ac_out%d_0 = %s;\n", ind, st, out);
    buf_printf(&L->out, "%sac_deadline__init(&ac_f->ac_dl%d, %s);\n", ind, st, limit);
    buf_printf(&L->out, "%sac_f->ac_done%d = 0;\n%sac_f->ac_state = %d;\nac_resume_%d:\n", ind, st,
               ind, st, st);
    char *poll = embed ? xasprintf("%s__poll(&ac_f->ac_aw%d_0, ac_cx, ac_f->ac_out%d_0)", arm->callee, st, st)
                       : xasprintf("%s__vt.poll(ac_f->ac_aw%d_0, ac_cx, ac_f->ac_out%d_0)", arm->callee, st, st);
    char *slot = xasprintf("ac_aw%d_0", st);
    char *drop = lower_drop_arm(arm, slot);
    buf_printf(&L->out, "%sif (%s == AC_READY) {\n", ind, poll);
    buf_printf(&L->out, "%s    ac_f->ac_done%d = 1u;\n", ind, st);
    if (!embed)
        buf_printf(&L->out, "%s    ac_frame_free(&%s__vt, ac_f->ac_aw%d_0);\n", ind, arm->callee, st);
    buf_printf(&L->out, "%s    %s = 0;\n", ind, tr);
    buf_printf(&L->out, "%s} else if (ac_deadline__expired(&ac_f->ac_dl%d, ac_cx)) {\n", ind, st);
    buf_printf(&L->out, "%s    %s\n%s    ac_f->ac_done%d = 1u;\n", ind, drop, ind, st);
    buf_printf(&L->out, "%s    %s = AC_ETIMEDOUT;\n", ind, tr);
    buf_printf(&L->out, "%s} else {\n%s    return AC_PENDING;\n%s}\n", ind, ind, ind);
    buf_printf(&L->out, "%sac_deadline__drop(&ac_f->ac_dl%d);\n", ind, st);
    mark_poisoned(L, ind);
    free(poll);
    free(slot);
    free(drop);
    free(limit);
    free(out);
    free(ind);
    free(args);
    vec_push(&L->pending, t);
    return tr;
}

/* Expands one await; returns the expression standing for its value. */
static char *lower_await(Lower *L, Await *aw)
{
    if (aw->join)
        return lower_join(L, aw);
    char *argtext = lower_call_args(L, aw->call);

    bool is_void;
    int64_t size, align;
    const char *type = callee_ret_type(aw, &is_void, &size, &align, L->u->sema);
    Temp *t = is_void ? NULL : new_temp(L, aw->node, type, size, align);
    char *out = t ? xasprintf("&%s", temp_ref(t)) : xstrdup("NULL");
    const char *name = aw->callee;
    int st = aw->state;
    bool embed = !aw->boxed && (aw->target || aw->ext->embeddable);

    /* Values computed earlier in this statement survive this suspension. */
    for (int i = 0; i < L->pending.len; i++)
        set_add(&((Temp *)L->pending.items[i])->live, st);

    char *ind = indent_of(L, aw->node);
    int line = source_line(L, aw->node);
    sync_line(L, line);
    if (embed) {
        buf_printf(&L->out, "%s%s__init(&ac_f->ac_aw%d%s);\n", ind, name, st, argtext);
        buf_printf(&L->out, "%sac_f->ac_state = %d;\n", ind, st);
        buf_printf(&L->out, "ac_resume_%d:\n", st);
        buf_printf(&L->out, "%sif (%s__poll(&ac_f->ac_aw%d, ac_cx, %s) == AC_PENDING)\n", ind, name,
                   st, out);
        buf_printf(&L->out, "%s    return AC_PENDING;\n", ind);
        mark_poisoned(L, ind);
    } else {
        buf_printf(&L->out, "%sac_f->ac_aw%d = ac__frame_new(&%s__vt);\n", ind, st, name);
        buf_printf(&L->out, "%s%s__init(ac_f->ac_aw%d%s);\n", ind, name, st, argtext);
        buf_printf(&L->out, "%sac_f->ac_state = %d;\n", ind, st);
        buf_printf(&L->out, "ac_resume_%d:\n", st);
        buf_printf(&L->out, "%sif (%s__vt.poll(ac_f->ac_aw%d, ac_cx, %s) == AC_PENDING)\n", ind, name,
                   st, out);
        buf_printf(&L->out, "%s    return AC_PENDING;\n", ind);
        buf_printf(&L->out, "%sac_frame_free(&%s__vt, ac_f->ac_aw%d);\n", ind, name, st);
        mark_poisoned(L, ind);
    }
    free(ind);
    free(out);
    free(argtext);
    if (!t)
        return xstrdup("((void)0)");
    vec_push(&L->pending, t);
    return temp_ref(t);
}

/* Lowers an await, or an operator whose operands must stay sequenced
 * (&&, ||, ?:, comma) around an await, into statements; returns the text
 * standing for its value, or NULL if n is none of these. */
static char *lower_special(Lower *L, TSNode n)
{
    Await *aw = nodemap_get(&L->awaits, n);
    if (aw)
        return lower_await(L, aw);

    char *ind = indent_of(L, n);
    /* The lines written here, between the operands' own, are the
     * operator's: under its line, not counted on from an await's. */
    int line = source_line(L, n);
    if (type_is(n, "binary_expression")) {
        TSNode op = child_by_field(n, "operator");
        TSNode left = child_by_field(n, "left");
        TSNode right = child_by_field(n, "right");
        bool and = parse_eq(L->u, op, "&&"), or = parse_eq(L->u, op, "||");
        if ((and || or) && has_await(L, right)) {
            char *l = lower_expr(L, left);
            Temp *t = new_temp(L, n, "int", 4, 4);
            char *tr = temp_ref(t);
            sync_line(L, line);
            buf_printf(&L->out, "%s%s = (%s) != 0;\n", ind, tr, l);
            buf_printf(&L->out, "%sif (%s%s) {\n", ind, and ? "" : "!", tr);
            int mark = L->pending.len;
            char *r = lower_expr(L, right);
            sync_line(L, line);
            buf_printf(&L->out, "%s%s = (%s) != 0;\n%s}\n", ind, tr, r, ind);
            L->pending.len = mark; /* the right operand's values are used up */
            vec_push(&L->pending, t);
            free(l);
            free(r);
            free(ind);
            return tr;
        }
    } else if (type_is(n, "conditional_expression")) {
        TSNode cond = child_by_field(n, "condition");
        TSNode cons = child_by_field(n, "consequence");
        TSNode alt = child_by_field(n, "alternative");
        if (!ts_node_is_null(cons) && (has_await(L, cons) || has_await(L, alt))) {
            const TypeInfo *ti = sema_cond_type(L->u->sema, ts_node_start_byte(n));
            char *c = lower_expr(L, cond);
            bool is_void = ti && strcmp(ti->spelling, "void") == 0;
            Temp *t = NULL;
            char *tr = NULL;
            if (!is_void) {
                const char *type = ti ? ti->spelling : NULL;
                if (!type) {
                    /* Not expected: clang types every conditional. */
                    diag_error(&L->u->src, ts_node_start_byte(n),
                               "cannot tell the type of this conditional expression; assign "
                               "its arms to a variable first");
                    type = "int";
                }
                t = new_temp(L, n, type, ti ? ti->size : -1, ti ? ti->align : -1);
                tr = temp_ref(t);
            }
            sync_line(L, line);
            buf_printf(&L->out, "%sif (%s) {\n", ind, c);
            int mark = L->pending.len;
            char *a = lower_expr(L, cons);
            sync_line(L, line);
            if (t)
                buf_printf(&L->out, "%s%s = %s;\n", ind, tr, a);
            else
                buf_printf(&L->out, "%s%s;\n", ind, a);
            buf_printf(&L->out, "%s} else {\n", ind);
            L->pending.len = mark; /* each arm's values are used up in it */
            char *b = lower_expr(L, alt);
            sync_line(L, line);
            if (t)
                buf_printf(&L->out, "%s%s = %s;\n%s}\n", ind, tr, b, ind);
            else
                buf_printf(&L->out, "%s%s;\n%s}\n", ind, b, ind);
            L->pending.len = mark;
            if (t)
                vec_push(&L->pending, t);
            free(a);
            free(b);
            free(c);
            free(ind);
            return t ? tr : xstrdup("((void)0)");
        }
    } else if (type_is(n, "comma_expression")) {
        TSNode left = child_by_field(n, "left");
        TSNode right = child_by_field(n, "right");
        char *l = lower_expr(L, left);
        sync_line(L, line);
        buf_printf(&L->out, "%s(void)(%s);\n", ind, l);
        free(l);
        free(ind);
        return lower_expr(L, right);
    }
    free(ind);
    return NULL;
}

/* Emits the statements n's awaits need, in evaluation order, recording in
 * L->repl the text that stands for each lowered part. Operands that C leaves
 * unsequenced are hoisted left to right; the rest of n is evaluated after,
 * when the caller renders it (each node is rendered once: no quadratic
 * copying of long expressions). */
static void hoist(Lower *L, TSNode n)
{
    if (!has_await(L, n))
        return;
    char *s = lower_special(L, n);
    if (s) {
        nodemap_put(&L->repl, n, s);
        return;
    }
    TSTreeCursor c = ts_tree_cursor_new(n);
    if (ts_tree_cursor_goto_first_child(&c)) {
        do
            hoist(L, ts_tree_cursor_current_node(&c));
        while (ts_tree_cursor_goto_next_sibling(&c));
    }
    ts_tree_cursor_delete(&c);
}

static char *lower_expr(Lower *L, TSNode n)
{
    hoist(L, n);
    return render(L, n);
}

/* ---- statements --------------------------------------------------------------- */

static void lower_stmt(Lower *L, TSNode n);

static Var *var_of_ident(Lower *L, TSNode ident)
{
    for (int i = 0; i < L->fn->vars.len; i++) {
        Var *v = L->fn->vars.items[i];
        if (ts_node_eq(v->ident, ident))
            return v;
    }
    return NULL;
}

/* For declarator child c of a declaration: its declarator proper (*d), its
 * initializer (*value, or a null node) and the variable it declares (NULL
 * for a function declarator). */
static Var *declared_var(Lower *L, TSNode c, TSNode *d, TSNode *value)
{
    *d = c;
    *value = (TSNode){0};
    if (type_is(c, "init_declarator")) {
        *d = child_by_field(c, "declarator");
        *value = child_by_field(c, "value");
    }
    TSNode ident = parse_declarator_ident(*d);
    return ts_node_is_null(ident) ? NULL : var_of_ident(L, ident);
}

/* ---- cleanup attributes --------------------------------------------------- */

static char *specifiers(Lower *L, TSNode decl);
static bool ends_in_jump(TSNode n);

/* The statement that runs the cleanup of v (hoisted, v->cleanup) as C would
 * at the end of its scope: a block declaring a copy of v as v is declared,
 * attributes and all, from the frame field, so that the copy's scope ends
 * at once and the C compiler calls the cleanup with its address. Written as
 * `{ char *ac_cl __attribute__((cleanup(release))) = ac_f->buf; }`. */
static char *cleanup_call(Lower *L, Var *v)
{
    TSNode d = v->declarator, value;
    declared_var(L, v->declarator, &d, &value);
    nodemap_put(&L->repl, v->ident, "ac_cl");
    mark_up(L, &L->touched, v->ident);
    char *spec;
    if (parse_is_inferred_type(L->u, child_by_field(v->decl, "type"))) {
        /* typeof(n) may name a C local of the poll function, which the
         * drop function does not have: the field's type stands in. */
        Buf sb = {0};
        for (uint32_t i = 0; i < ts_node_child_count(v->decl); i++) {
            TSNode c = ts_node_child(v->decl, i);
            if (parse_is_declarator(c))
                break;
            if (type_is(c, "attribute_specifier") || type_is(c, "type_qualifier")) {
                render_into(L, c, &sb);
                buf_putc(&sb, ' ');
            }
        }
        buf_puts(&sb, "__typeof__(");
        frame_access(v, &sb);
        buf_puts(&sb, ")");
        spec = buf_take(&sb);
    } else {
        spec = specifiers(L, v->decl);
    }
    char *dt = render(L, d);
    nodemap_put(&L->repl, v->ident, NULL);
    Buf b = {0};
    buf_printf(&b, "{ %s %s", spec, dt);
    /* Attributes gaps.c hid from the parse that the specifiers' text does
     * not hold: between the type and the declarator, and after it. */
    uint32_t specs_end = ts_node_start_byte(v->decl);
    for (uint32_t i = 0; i < ts_node_child_count(v->decl); i++) {
        TSNode c = ts_node_child(v->decl, i);
        if (parse_is_declarator(c))
            break;
        specs_end = ts_node_end_byte(c);
    }
    Vec attrs = {0};
    parse_masked_attrs(L->u, v->decl, v->declarator, &attrs);
    for (int i = 0; i < attrs.len; i++) {
        uint32_t *span = attrs.items[i];
        if (span[0] >= specs_end)
            buf_printf(&b, " %.*s", (int)(span[1] - span[0]), L->u->src.text + span[0]);
    }
    free(attrs.items);
    buf_puts(&b, " = ");
    frame_access(v, &b);
    buf_puts(&b, "; }");
    free(spec);
    free(dt);
    return buf_take(&b);
}

/* Whether v, with a cleanup, is in scope at node n: n lies in its scope,
 * after its declaration. */
static bool cleanup_in_scope(const Var *v, TSNode n)
{
    return v->cleanup_call && parse_node_within(n, v->scope) && ts_node_start_byte(n) >= v->live_from;
}

/* Appends, innermost first, the cleanups of the variables in scope at the
 * jump n that its target leaves: `target` is the loop or switch a break or
 * continue leaves, or the labeled statement a goto goes to; a null target
 * (a return) leaves them all. */
static void jump_cleanups(Lower *L, TSNode n, TSNode target, bool is_goto, Buf *b)
{
    for (int i = L->fn->vars.len - 1; i >= 0; i--) {
        Var *v = L->fn->vars.items[i];
        if (!cleanup_in_scope(v, n))
            continue;
        bool left = ts_node_is_null(target) ||
                    (is_goto ? !cleanup_in_scope(v, target)
                             : parse_node_within(v->scope, target) && !ts_node_eq(v->scope, target));
        if (left)
            buf_printf(b, "%s ", v->cleanup_call);
    }
}

/* Appends, innermost first, the cleanups of the variables whose scope is
 * the block `block`, for its end. */
static void block_cleanups(Lower *L, TSNode block, Buf *b)
{
    if (ends_in_jump(block))
        return;
    for (int i = L->fn->vars.len - 1; i >= 0; i--) {
        Var *v = L->fn->vars.items[i];
        if (v->cleanup_call && ts_node_eq(v->scope, block))
            buf_printf(b, "%s ", v->cleanup_call);
    }
}

/* The last named child of n that is not a comment, or a null node. */
static TSNode last_statement(TSNode n)
{
    for (int i = (int)ts_node_named_child_count(n) - 1; i >= 0; i--) {
        TSNode c = ts_node_named_child(n, (uint32_t)i);
        if (!type_is(c, "comment"))
            return c;
    }
    return (TSNode){0};
}

/* Whether control cannot fall off the end of statement n, as far as its
 * text shows: it ends in a jump (an if with an else: both branches do).
 * A block's end after such a statement is not reached, and cleanups there
 * would read to the C compiler as a case falling through. */
static bool ends_in_jump(TSNode n)
{
    if (ts_node_is_null(n))
        return false;
    if (type_is(n, "break_statement") || type_is(n, "continue_statement") ||
        type_is(n, "return_statement") || type_is(n, "goto_statement"))
        return true;
    if (type_is(n, "compound_statement"))
        return ends_in_jump(last_statement(n));
    if (type_is(n, "if_statement")) {
        TSNode alt = child_by_field(n, "alternative");
        return !ts_node_is_null(alt) && ends_in_jump(child_by_field(n, "consequence")) &&
               ends_in_jump(last_statement(alt));
    }
    return false;
}

/* What the break, continue or goto n goes to: the innermost loop (or, for
 * a break, switch) around it, or the statement its label names. */
static TSNode jump_target(Lower *L, TSNode n)
{
    if (type_is(n, "goto_statement")) {
        TSNode label = child_by_field(n, "label");
        TSTreeCursor c = ts_tree_cursor_new(L->fn->body);
        TSNode found = {0};
        for (bool more = true; more && ts_node_is_null(found);) {
            TSNode cur = ts_tree_cursor_current_node(&c);
            if (type_is(cur, "labeled_statement")) {
                TSNode l = child_by_field(cur, "label");
                uint32_t len = ts_node_end_byte(l) - ts_node_start_byte(l);
                if (len == ts_node_end_byte(label) - ts_node_start_byte(label) &&
                    !memcmp(L->u->src.text + ts_node_start_byte(l),
                            L->u->src.text + ts_node_start_byte(label), len))
                    found = cur;
            }
            more = cursor_advance(&c, true);
        }
        ts_tree_cursor_delete(&c);
        return found;
    }
    bool brk = type_is(n, "break_statement");
    for (TSNode p = parse_parent(L->u, n); !ts_node_is_null(p); p = parse_parent(L->u, p)) {
        if (parse_is_loop(p) || (brk && type_is(p, "switch_statement")))
            return p;
        if (ts_node_eq(p, L->fn->body))
            break;
    }
    return (TSNode){0};
}

static void emit_return(Lower *L, TSNode n, const char *value, const char *ind)
{
    const ExtFn *self = L->self;
    /* Cleanups run after the value is taken, as C runs them. */
    Buf cl = {0};
    jump_cleanups(L, n, (TSNode){0}, false, &cl);
    const char *c = cl.data ? cl.data : "";
    if (value && !L->fn->ret_void && self && self->ret_const_member)
        /* A struct with a const member is initialised, not assigned. */
        buf_printf(&L->out,
                   "%s{ __typeof__(*ac_out) ac_r = %s; __builtin_memcpy(ac_out, &ac_r, sizeof *ac_out); "
                   "%sac_f->ac_state = AC_STATE_RETURNED; return AC_READY; }\n",
                   ind, value, c);
    else if (value && !L->fn->ret_void)
        buf_printf(&L->out, "%s{ *ac_out = %s; %sac_f->ac_state = AC_STATE_RETURNED; return AC_READY; }\n",
                   ind, value, c);
    else if (value)
        buf_printf(&L->out, "%s{ (void)(%s); %sac_f->ac_state = AC_STATE_RETURNED; return AC_READY; }\n",
                   ind, value, c);
    else
        buf_printf(&L->out, "%s{ %sac_f->ac_state = AC_STATE_RETURNED; return AC_READY; }\n", ind, c);
    buf_free(&cl);
}

/* The declaration's specifiers (everything before its first declarator),
 * rendered: `typeof(x)` names a frame variable as ac_f->x. */
static char *specifiers(Lower *L, TSNode decl)
{
    Buf b = {0};
    uint32_t pos = ts_node_start_byte(decl);
    for (uint32_t i = 0; i < ts_node_child_count(decl); i++) {
        TSNode c = ts_node_child(decl, i);
        if (parse_is_declarator(c))
            break;
        buf_putn(&b, L->u->src.text + pos, ts_node_start_byte(c) - pos);
        render_into(L, c, &b);
        pos = ts_node_end_byte(c);
    }
    return buf_take(&b);
}

/* A declaration that defines a type (`struct point { int x, y; } pt`) and
 * a variable of it kept in the frame: the definition stays where it was, as
 * a declaration of its own (an unnamed type gets the tag parse_type_tag
 * makes, for the frame's casts to name it); the returned specifiers name the
 * type by its tag alone. NULL when n is not such a declaration. */
static char *split_type_definition(Lower *L, TSNode n, const char *ind)
{
    TSNode type = child_by_field(n, "type");
    if (ts_node_is_null(type) || ts_node_is_null(child_by_field(type, "body")))
        return NULL;
    Var *local = NULL;
    for (uint32_t i = 0; i < ts_node_child_count(n) && !local; i++) {
        TSNode c = ts_node_child(n, i), d, value;
        Var *v = parse_is_declarator(c) ? declared_var(L, c, &d, &value) : NULL;
        if (v && v->hoisted && v->local_type)
            local = v;
    }
    if (!local)
        return NULL;
    /* The definition, with its generated tag if it has none. */
    char *tag = parse_type_tag(L->u, type);
    Buf def = {0};
    render_children(L, type, &def);
    if (ts_node_is_null(child_by_field(type, "name"))) {
        TSNode kw = ts_node_child(type, 0);
        uint32_t at = ts_node_end_byte(kw) - ts_node_start_byte(kw);
        char *rest = xstrdup(def.data + at);
        def.len = at;
        buf_printf(&def, " %s%s", tag, rest);
        free(rest);
    }
    buf_printf(&L->out, "%s%s;\n", ind, def.data);
    buf_free(&def);
    Buf b = {0};
    uint32_t pos = ts_node_start_byte(n);
    for (uint32_t i = 0; i < ts_node_child_count(n); i++) {
        TSNode c = ts_node_child(n, i);
        if (parse_is_declarator(c))
            break;
        buf_putn(&b, L->u->src.text + pos, ts_node_start_byte(c) - pos);
        if (ts_node_eq(c, type)) {
            char *k = parse_text(L->u, ts_node_child(type, 0));
            buf_printf(&b, "%s %s", k, tag);
            free(k);
        } else {
            render_into(L, c, &b);
        }
        pos = ts_node_end_byte(c);
    }
    free(tag);
    return buf_take(&b);
}

static void lower_declaration(Lower *L, TSNode n)
{
    char *ind = indent_of(L, n);
    char *spec = split_type_definition(L, n, ind);
    for (uint32_t i = 0; i < ts_node_child_count(n); i++) {
        TSNode c = ts_node_child(n, i), d, value;
        if (!parse_is_declarator(c))
            continue;
        Var *v = declared_var(L, c, &d, &value);
        char *val = ts_node_is_null(value) ? NULL : lower_expr(L, value);
        sync_line(L, source_line(L, c));
        if (v && v->hoisted) {
            if (!val)
                continue;
            const TypeInfo *ti = sema_var_type(L->u->sema, ts_node_start_byte(v->ident));
            if (type_is(value, "initializer_list") || type_is(d, "array_declarator") || v->local_type ||
                (ti && ti->const_member)) {
                /* Aggregates, and structs with a const member (which C
                 * initialises but does not assign): initialise a C object
                 * the usual way, then copy. */
                nodemap_put(&L->repl, v->ident, "ac_init");
                mark_up(L, &L->touched, v->ident);
                char *dt = render(L, d);
                if (!spec)
                    spec = specifiers(L, n);
                buf_printf(&L->out, "%s{ %s %s = %s; __builtin_memcpy(&ac_f->%s, &ac_init, sizeof ac_f->%s); }\n",
                           ind, spec, dt, val, v->field, v->field);
                free(dt);
            } else {
                buf_printf(&L->out, "%sac_f->%s = %s;\n", ind, v->field, val);
            }
        } else {
            if (!spec)
                spec = specifiers(L, n);
            char *dtext = render(L, d);
            if (val)
                buf_printf(&L->out, "%s%s %s = %s;\n", ind, spec, dtext, val);
            else
                buf_printf(&L->out, "%s%s %s;\n", ind, spec, dtext);
            free(dtext);
        }
        free(val);
    }
    free(spec);
    free(ind);
}

/* Node types lowered as statements besides parse's statements (the ones an
 * await's statement can be). */
static const char *const more_stmt_types[] = {
    "break_statement", "continue_statement", "preproc_if", "preproc_ifdef", "preproc_else",
    "preproc_elif", "preproc_elifdef", "attributed_statement", "type_definition", NULL,
};

static bool is_statement_type(TSNode n)
{
    static uint8_t cache[SYM_CACHE];
    return parse_is_statement(n) || sym_in(ts_node_symbol(n), more_stmt_types, cache);
}

/*
 * Copies the source text [from, to) that follows a lowered statement ending
 * on source line `line`; the output is at the start of a line. Blank space
 * up to and including line breaks is skipped (the lowered text ended the
 * line already), then the output line is mapped to where the text resumes:
 * the rest of the statement's own line (`await(f()); x++;`), or the line
 * after it. With nothing left to copy, the mapping is left to what comes
 * next when that is lowered text (which maps itself), or the parent's text.
 */
static void resume_after(Lower *L, uint32_t from, uint32_t to, int line, bool raw_next)
{
    const char *text = L->u->src.text;
    uint32_t p = from, start = from;
    while (p < to && (text[p] == ' ' || text[p] == '\t' || text[p] == '\r' || text[p] == '\n')) {
        if (text[p] == '\n') {
            line++;
            start = p + 1;
        }
        p++;
    }
    if (start == to && !raw_next)
        return;
    sync_line(L, line);
    buf_putn(&L->out, text + start, to - start);
}

/* After lowered text that ended a line: if that line maps to source line
 * `line`, takes its line break back so that the source goes on after it
 * (`} break;`), and returns true. */
static bool continue_line(Lower *L, int line)
{
    if (ends_with_directive(L))
        return false;
    count_lines(L);
    if (L->line - 1 != line || !L->out.len || L->out.data[L->out.len - 1] != '\n')
        return false;
    buf_truncate(&L->out, L->out.len - 1);
    L->synced = L->out.len;
    L->line--;
    return true;
}

/* Copies n's text, lowering statement children and rendering the rest. A
 * lowered child starts and ends lines of its own; what follows it on its
 * line goes on the next output line, under a `#line`. */
static void lower_generic(Lower *L, TSNode n)
{
    uint32_t pos = ts_node_start_byte(n);
    sync_line(L, source_line(L, n));
    indent_line(L, n);
    int after = 0; /* source line a lowered child ended on, 0: none */
    for (uint32_t i = 0; i < ts_node_child_count(n); i++) {
        TSNode c = ts_node_child(n, i);
        uint32_t gap = ts_node_start_byte(c) - pos;
        bool lower = touched(L, c) && is_statement_type(c);
        if (lower) {
            /* lower_stmt indents its own lines: keep the gap's line breaks
             * (they keep output lines in step with the source), not the
             * indentation after the last one. */
            while (gap > 0 && (L->u->src.text[pos + gap - 1] == ' ' ||
                               L->u->src.text[pos + gap - 1] == '\t'))
                gap--;
        }
        if (after)
            resume_after(L, pos, pos + gap, after, !lower);
        else
            buf_putn(&L->out, L->u->src.text + pos, gap);
        after = 0;
        if (!lower && i + 1 == ts_node_child_count(n) && type_is(n, "compound_statement")) {
            /* Falling off the end of the block leaves the scope of its
             * variables: their cleanups go before the `}`. */
            Buf cl = {0};
            block_cleanups(L, n, &cl);
            if (cl.data)
                buf_puts(&L->out, cl.data);
            buf_free(&cl);
        }
        if (lower) {
            /* A lowered statement starts a line of its own, but for a `{`
             * that goes on with `else {` or `case 1: {`. */
            if (L->out.len && L->out.data[L->out.len - 1] != '\n' &&
                !type_is(c, "compound_statement"))
                put(L, "\n");
            lower_stmt(L, c); /* ends with a line break */
            after = (int)ts_node_end_point(c).row + 1;
            if (continue_line(L, after))
                after = 0;
        } else {
            render_into(L, c, &L->out);
        }
        pos = ts_node_end_byte(c);
    }
    if (after)
        resume_after(L, pos, ts_node_end_byte(n), after, false);
    else
        buf_putn(&L->out, L->u->src.text + pos, ts_node_end_byte(n) - pos);
    if (L->out.len && L->out.data[L->out.len - 1] != '\n')
        put(L, "\n");
}

static TSNode paren_inner(TSNode p)
{
    return ts_node_named_child_count(p) ? ts_node_named_child(p, 0) : p;
}

/* Every declarator of decl declares a hoisted variable with at most a scalar
 * initializer: the declaration can become a comma expression of assignments. */
static bool all_hoisted_scalars(Lower *L, TSNode decl)
{
    for (uint32_t i = 0; i < ts_node_child_count(decl); i++) {
        TSNode c = ts_node_child(decl, i), d, value;
        if (!parse_is_declarator(c))
            continue;
        Var *v = declared_var(L, c, &d, &value);
        if (!v || !v->hoisted || v->local_type || type_is(d, "array_declarator") ||
            (!ts_node_is_null(value) && type_is(value, "initializer_list")))
            return false;
    }
    return true;
}

/* `int i = 0, j = n;` (all hoisted) as `ac_f->i = 0, ac_f->j = ac_f->n;`. */
static void hoisted_init_text(Lower *L, TSNode decl, Buf *b)
{
    bool first = true;
    for (uint32_t i = 0; i < ts_node_child_count(decl); i++) {
        TSNode c = ts_node_child(decl, i);
        if (!parse_is_declarator(c) || !type_is(c, "init_declarator"))
            continue;
        Var *v = var_of_ident(L, parse_declarator_ident(child_by_field(c, "declarator")));
        buf_printf(b, "%sac_f->%s = ", first ? "" : ", ", v->field);
        render_into(L, child_by_field(c, "value"), b);
        first = false;
    }
    buf_putc(b, ';');
}

/* A branch or loop body: braced, so that what lowering adds stays inside. */
/* The statement header before it (`if (c)`, `else`, `while (c)`) is left
 * open on its line, so a compound body's `{` continues it. */
static void lower_block(Lower *L, TSNode s, const char *ind)
{
    if (type_is(s, "compound_statement")) {
        if (L->out.len && L->out.data[L->out.len - 1] != '\n')
            put(L, " ");
        lower_stmt(L, s);
        return;
    }
    put(L, " {\n");
    lower_stmt(L, s);
    buf_printf(&L->out, "%s}\n", ind);
}

/* The loop a `continue` at node n belongs to: the innermost enclosing one. */
static TSNode loop_of(Lower *L, TSNode n)
{
    for (TSNode p = parse_parent(L->u, n); !ts_node_is_null(p); p = parse_parent(L->u, p))
        if (parse_is_loop(p))
            return p;
    return (TSNode){0};
}

/* A loop whose continue must jump to a label (its step or condition is
 * lowered into its body): a `continue` that a macro brings into it would go
 * to the top of the rewritten loop and skip them. Say so where the macro is
 * used. */
static void check_macro_continues(Lower *L, TSNode body)
{
    const Vec *jumps = sema_macro_jumps(L->u->sema);
    TSNode loop = parse_parent(L->u, body);
    for (int i = 0; i < jumps->len; i++) {
        const SemaJump *j = jumps->items[i];
        if (j->is_return || j->expanded < ts_node_start_byte(body) ||
            j->expanded >= ts_node_end_byte(body))
            continue;
        TSNode at = ts_node_descendant_for_byte_range(ts_tree_root_node(L->u->tree), j->expanded,
                                                      j->expanded);
        if (!ts_node_eq(loop_of(L, at), loop))
            continue;
        char *name = parse_macro_name_at(L->u, j->expanded);
        diag_error(&L->u->src, j->expanded,
                   "'%s' continues the loop inside its expansion; the translator rewrites this "
                   "loop around its awaits, and a continue it cannot see (it reads the function "
                   "before macros are expanded) would skip the loop's %s (write the continue in "
                   "the function's own text: if (...) continue;)",
                   name, type_is(loop, "for_statement") ? "step and condition" : "condition");
        free(name);
    }
}

/* Lowers a loop body whose continue jumps to label `cont` (NULL: a plain
 * continue); returns whether any continue used the label. */
static bool lower_body(Lower *L, TSNode body, const char *cont, const char *ind)
{
    if (cont)
        check_macro_continues(L, body);
    const char *outer = L->cont;
    bool outer_used = L->cont_used;
    L->cont = cont;
    L->cont_used = false;
    lower_block(L, body, ind);
    bool used = L->cont_used;
    L->cont = outer;
    L->cont_used = outer_used;
    return used;
}

static void lower_stmt_here(Lower *L, TSNode n);

/*
 * Lowers statement n. Frame variables that a macro in it makes a string of
 * (fn->by_define) are reached, in n, through a #define of their own name,
 * so that the argument keeps its spelling: `#define count (ac_f->count)`
 * before n, `#undef count` after. A macro is not expanded again inside its
 * own expansion, so `ac_f->count` stays a member access.
 */
static void lower_stmt(Lower *L, TSNode n)
{
    int mark = L->defined.len;
    const Vec *bd = &L->fn->by_define;
    for (int i = 0; i + 1 < bd->len; i += 2) {
        if (!ts_node_eq(*(TSNode *)bd->items[i], n))
            continue;
        Var *v = bd->items[i + 1];
        Buf access = {0};
        frame_access(v, &access);
        if (L->out.len && L->out.data[L->out.len - 1] != '\n')
            put(L, "\n");
        buf_printf(&L->out, "#define %s (%s)\n", v->name, access.data);
        buf_free(&access);
        vec_push(&L->defined, v);
    }
    lower_stmt_here(L, n);
    for (int i = L->defined.len - 1; i >= mark; i--) {
        if (L->out.len && L->out.data[L->out.len - 1] != '\n')
            put(L, "\n");
        buf_printf(&L->out, "#undef %s\n", ((Var *)L->defined.items[i])->name);
    }
    L->defined.len = mark;
}

static void lower_stmt_here(Lower *L, TSNode n)
{
    if (!touched(L, n)) {
        sync_line(L, source_line(L, n));
        indent_line(L, n);
        render_into(L, n, &L->out);
        put(L, "\n");
        return;
    }
    int mark = L->pending.len;
    char *ind = indent_of(L, n);
    TSSymbol t = ts_node_symbol(n);
    sync_line(L, source_line(L, n));

    if (SYM_IS(t, "expression_statement")) {
        TSNode e = ts_node_named_child(n, 0);
        char *s = lower_expr(L, e);
        sync_line(L, source_line(L, n)); /* after the awaits' expansions */
        if (nodemap_get(&L->awaits, e)) {
            /* `await(f());` alone: its value is discarded. */
            if (s[0] == '\001')
                buf_printf(&L->out, "%s(void)%s;\n", ind, s);
        } else {
            buf_printf(&L->out, "%s%s;\n", ind, s);
        }
        free(s);
    } else if (SYM_IS(t, "declaration")) {
        lower_declaration(L, n);
    } else if (SYM_IS(t, "return_statement")) {
        TSNode e = ts_node_named_child_count(n) ? ts_node_named_child(n, 0) : (TSNode){0};
        char *s = ts_node_is_null(e) ? NULL : lower_expr(L, e);
        sync_line(L, source_line(L, n));
        emit_return(L, n, s, ind);
        free(s);
    } else if ((SYM_IS(t, "break_statement") || SYM_IS(t, "continue_statement") ||
                SYM_IS(t, "goto_statement")) &&
               nodemap_get(&L->exits, n)) {
        /* Leaves the scope of variables with a cleanup: run them first, on
         * the jump's line (a jump that is a statement's whole body stands
         * in braces that lower_block gave it). */
        char *jump = SYM_IS(t, "continue_statement") && L->cont ? xasprintf("goto %s;", L->cont)
                                                                : render(L, n);
        if (SYM_IS(t, "continue_statement") && L->cont)
            L->cont_used = true;
        buf_printf(&L->out, "%s%s%s\n", ind, (const char *)nodemap_get(&L->exits, n), jump);
        free(jump);
    } else if (SYM_IS(t, "continue_statement") && L->cont) {
        buf_printf(&L->out, "%sgoto %s;\n", ind, L->cont);
        L->cont_used = true;
    } else if (SYM_IS(t, "if_statement")) {
        TSNode cond = paren_inner(child_by_field(n, "condition"));
        TSNode cons = child_by_field(n, "consequence");
        TSNode alt = child_by_field(n, "alternative");
        char *c = lower_expr(L, cond);
        L->pending.len = mark;
        sync_line(L, source_line(L, n)); /* after the condition's awaits */
        buf_printf(&L->out, "%sif (%s)", ind, c);
        lower_block(L, cons, ind);
        if (!ts_node_is_null(alt)) {
            TSNode s = ts_node_named_child(alt, 0);
            for (uint32_t i = 0; i < ts_node_named_child_count(alt); i++)
                if (!type_is(ts_node_named_child(alt, i), "comment"))
                    s = ts_node_named_child(alt, i);
            /* `} else` stays on one line when it is on one in the source. */
            if (continue_line(L, source_line(L, alt))) {
                put(L, " else");
            } else {
                sync_line(L, source_line(L, alt));
                buf_printf(&L->out, "%selse", ind);
            }
            lower_block(L, s, ind);
        }
        free(c);
    } else if (SYM_IS(t, "while_statement")) {
        TSNode cond = paren_inner(child_by_field(n, "condition"));
        TSNode body = child_by_field(n, "body");
        if (has_await(L, cond)) {
            buf_printf(&L->out, "%sfor (;;) {\n", ind);
            char *c = lower_expr(L, cond);
            L->pending.len = mark;
            buf_printf(&L->out, "%sif (!(%s))\n%s    break;\n", ind, c, ind);
            free(c);
            lower_body(L, body, NULL, ind);
            buf_printf(&L->out, "%s}\n", ind);
        } else {
            char *c = render(L, cond);
            buf_printf(&L->out, "%swhile (%s)", ind, c);
            free(c);
            lower_body(L, body, NULL, ind);
        }
    } else if (SYM_IS(t, "do_statement")) {
        TSNode cond = paren_inner(child_by_field(n, "condition"));
        TSNode body = child_by_field(n, "body");
        if (has_await(L, cond)) {
            char *next = xasprintf("ac_next_%d", ++L->labels);
            buf_printf(&L->out, "%sfor (;;) {\n", ind);
            if (lower_body(L, body, next, ind))
                buf_printf(&L->out, "%s:;\n", next);
            sync_line(L, source_line(L, cond)); /* back up to the `} while (...)` line */
            char *c = lower_expr(L, cond);
            L->pending.len = mark;
            buf_printf(&L->out, "%sif (!(%s))\n%s    break;\n%s}\n", ind, c, ind, ind);
            free(c);
            free(next);
        } else {
            buf_printf(&L->out, "%sdo", ind);
            lower_body(L, body, NULL, ind);
            char *c = render(L, cond);
            buf_printf(&L->out, "%swhile (%s);\n", ind, c);
            free(c);
        }
    } else if (SYM_IS(t, "for_statement")) {
        TSNode init = child_by_field(n, "initializer");
        TSNode cond = child_by_field(n, "condition");
        TSNode step = child_by_field(n, "update");
        TSNode body = child_by_field(n, "body");
        bool init_hoisted = !ts_node_is_null(init) && type_is(init, "declaration") &&
                            touched(L, init) && !has_await(L, init) && all_hoisted_scalars(L, init);
        bool rewrite = (!ts_node_is_null(init) && touched(L, init) && !init_hoisted) ||
                       (!ts_node_is_null(cond) && has_await(L, cond)) ||
                       (!ts_node_is_null(step) && has_await(L, step));
        if (rewrite) {
            char *next = xasprintf("ac_next_%d", ++L->labels);
            buf_printf(&L->out, "%s{\n", ind);
            if (!ts_node_is_null(init)) {
                if (type_is(init, "declaration")) {
                    lower_declaration(L, init);
                } else {
                    char *s = lower_expr(L, init);
                    buf_printf(&L->out, "%s%s;\n", ind, s);
                    free(s);
                }
                L->pending.len = mark;
            }
            buf_printf(&L->out, "%sfor (;;) {\n", ind);
            if (!ts_node_is_null(cond)) {
                char *c = lower_expr(L, cond);
                L->pending.len = mark;
                buf_printf(&L->out, "%sif (!(%s))\n%s    break;\n", ind, c, ind);
                free(c);
            }
            if (lower_body(L, body, next, ind))
                buf_printf(&L->out, "%s:;\n", next);
            if (!ts_node_is_null(step)) {
                sync_line(L, source_line(L, step)); /* back up to the `for (...)` line */
                char *s = lower_expr(L, step);
                L->pending.len = mark;
                buf_printf(&L->out, "%s%s;\n", ind, s);
                free(s);
            }
            buf_printf(&L->out, "%s}\n%s}\n", ind, ind);
            free(next);
        } else {
            /* Header as written (with renamed variables), body lowered. */
            uint32_t hs = ts_node_start_byte(n);
            Buf h = {0};
            uint32_t pos = hs;
            for (uint32_t i = 0; i < ts_node_child_count(n); i++) {
                TSNode c = ts_node_child(n, i);
                if (ts_node_eq(c, body))
                    break;
                buf_putn(&h, L->u->src.text + pos, ts_node_start_byte(c) - pos);
                if (ts_node_eq(c, init) && init_hoisted)
                    hoisted_init_text(L, c, &h);
                else
                    render_into(L, c, &h);
                pos = ts_node_end_byte(c);
            }
            buf_printf(&L->out, "%s%s", ind, h.data);
            buf_free(&h);
            lower_body(L, body, NULL, ind);
        }
    } else if (SYM_IS(t, "switch_statement")) {
        TSNode cond = paren_inner(child_by_field(n, "condition"));
        TSNode body = child_by_field(n, "body");
        char *c = lower_expr(L, cond);
        L->pending.len = mark;
        buf_printf(&L->out, "%sswitch (%s)", ind, c);
        free(c);
        lower_block(L, body, ind);
    } else {
        lower_generic(L, n);
    }
    L->pending.len = mark;
    free(ind);
}

/* ---- the poll function ----------------------------------------------------------- */

static void replace_temps(AsyncFn *fn, char *text, Buf *out)
{
    for (char *p = text; *p; p++) {
        if (*p != '\001') {
            buf_putc(out, *p);
            continue;
        }
        int id = (int)strtol(p + 1, &p, 10);
        Temp *t = fn->temps.items[id - 1];
        buf_printf(out, set_empty(&t->live) ? "ac_t%d" : "ac_f->ac_t%d", id);
    }
}

/* A declaration of `name` with type `type` (which may need typeof when it is
 * a function pointer or array type written abstractly). */
char *lower_declare(const char *type, const char *name)
{
    if (strpbrk(type, "([") != NULL)
        return xasprintf("__typeof__(%s) %s", type, name);
    size_t n = strlen(type);
    return xasprintf("%s%s%s", type, n && type[n - 1] == '*' ? "" : " ", name);
}

bool lower_fn(Unit *u, AsyncFn *fn)
{
    Lower L = {.u = u, .fn = fn, .self = u->sema ? sema_ext_fn(u->sema, fn->name) : NULL};
    for (int i = 0; i < fn->awaits.len; i++) {
        Await *aw = fn->awaits.items[i];
        nodemap_put(&L.awaits, aw->node, aw);
        mark_up(&L, &L.has_await, aw->node);
        mark_up(&L, &L.touched, aw->node);
    }
    for (int i = 0; i < fn->spawns.len; i++) {
        Spawn *sp = fn->spawns.items[i];
        nodemap_put(&L.spawns, sp->node, sp);
        mark_up(&L, &L.touched, sp->node);
    }
    for (int i = 0; i < fn->literals.len; i++) {
        Literal *lit = fn->literals.items[i];
        if (!lit->field)
            continue;
        nodemap_put(&L.literals, lit->node, lit);
        mark_up(&L, &L.touched, lit->node);
    }
    for (int i = 0; i < fn->vars.len; i++) {
        Var *v = fn->vars.items[i];
        if (!v->hoisted)
            continue;
        if (!v->is_param)
            mark_up(&L, &L.touched, v->decl);
        for (int j = 0; j < v->refs.len; j++)
            mark_up(&L, &L.touched, *(TSNode *)v->refs.items[j]);
    }
    mark_returns_and_continues(&L, fn->body);
    bool cleanups = false;
    for (int i = 0; i < fn->vars.len; i++) {
        Var *v = fn->vars.items[i];
        if (v->hoisted && v->cleanup) {
            v->cleanup_call = cleanup_call(&L, v);
            cleanups = true;
        }
    }
    if (cleanups) {
        /* Jumps out of such a scope are lowered with the cleanups before them. */
        TSTreeCursor c = ts_tree_cursor_new(fn->body);
        for (bool more = true; more; more = cursor_advance(&c, true)) {
            TSNode n = ts_tree_cursor_current_node(&c);
            if (!type_is(n, "break_statement") && !type_is(n, "continue_statement") &&
                !type_is(n, "goto_statement"))
                continue;
            Buf cl = {0};
            jump_cleanups(&L, n, jump_target(&L, n), type_is(n, "goto_statement"), &cl);
            if (cl.data) {
                nodemap_put(&L.exits, n, buf_take(&cl));
                mark_up(&L, &L.touched, n);
            }
            buf_free(&cl);
        }
        ts_tree_cursor_delete(&c);
    }

    L.line = -1;
    /* The body's statements, without its braces (the poll function has its own). */
    uint32_t nchild = ts_node_child_count(fn->body);
    for (uint32_t i = 1; i + 1 < nchild; i++) {
        TSNode c = ts_node_child(fn->body, i);
        if (ts_node_is_named(c)) {
            lower_stmt(&L, c);
        } else {
            /* `;` after a tag-only declaration such as `enum e { A };` */
            if (L.out.len && L.out.data[L.out.len - 1] == '\n')
                buf_truncate(&L.out, L.out.len - 1);
            render_into(&L, c, &L.out);
            put(&L, "\n");
        }
    }

    /* The end of the body leaves the scope of its own variables. */
    Buf cl = {0};
    block_cleanups(&L, fn->body, &cl);
    if (cl.data) {
        if (L.out.len && L.out.data[L.out.len - 1] != '\n')
            put(&L, "\n");
        buf_truncate(&cl, cl.len - 1); /* the space after the last */
        buf_printf(&L.out, "    %s\n", cl.data);
    }
    buf_free(&cl);

    Buf poll = {0};
    buf_puts(&poll, "{\n");
    if (!fn->awaits.len)
        buf_puts(&poll, "    (void)ac_cx;\n");
    if (fn->ret_void)
        buf_puts(&poll, "    (void)ac_out;\n");
    for (int i = 0; i < fn->temps.len; i++) {
        Temp *t = fn->temps.items[i];
        if (!set_empty(&t->live))
            continue;
        char *name = xasprintf("ac_t%d", t->id);
        char *d = lower_declare(t->type, name);
        buf_printf(&poll, "    %s;\n", d);
        free(d);
        free(name);
    }
    buf_puts(&poll, "    switch (ac_f->ac_state) {\n    case AC_STATE_UNRESUMED:\n        break;\n");
    for (int i = 0; i < fn->awaits.len; i++) {
        Await *aw = fn->awaits.items[i];
        buf_printf(&poll, "    case %d:\n        goto ac_resume_%d;\n", aw->state, aw->state);
    }
    buf_printf(&poll, "    default:\n        ac__bad_resume(\"%s\", ac_f->ac_state);\n    }\n", fn->name);
    replace_temps(fn, L.out.data ? L.out.data : "", &poll);
    if (L.out.len && L.out.data[L.out.len - 1] != '\n')
        buf_putc(&poll, '\n');
    if (fn->ret_void)
        buf_puts(&poll, "    ac_f->ac_state = AC_STATE_RETURNED;\n    return AC_READY;\n}\n");
    else
        buf_printf(&poll, "    ac__no_return(\"%s\");\n}\n", fn->name);
    fn->poll_text = buf_take(&poll);

    buf_free(&L.out);
    nodemap_free(&L.touched);
    nodemap_free(&L.has_await);
    nodemap_free(&L.repl);
    free(L.defined.items);
    nodemap_free(&L.literals);
    nodemap_free(&L.awaits);
    nodemap_free(&L.spawns);
    for (size_t i = 0; i < L.exits.cap; i++)
        if (L.exits.keys && L.exits.keys[i])
            free(L.exits.vals[i]);
    nodemap_free(&L.exits);
    free(L.pending.items);
    return true;
}

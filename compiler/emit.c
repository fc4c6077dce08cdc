/*
 * emit.c: the output file and the --emit=states report.
 *
 * Input: a Unit whose async functions are lowered and laid out.
 * Output: the translated C file. Text outside async functions is copied byte
 * for byte; each async function (and each prototype of one) is replaced by
 * generated code, followed by a `#line` that puts the rest of the file back
 * on its own source lines. For a function F:
 *   struct F__frame            its frame (layout.c)
 *   F__init(void *, params)    stores the parameters; runs nothing (lazy)
 *   F__poll(frame, cx, out)    the state machine (lower.c)
 *   F__drop(frame)             releases what the current state holds
 *   F__vt                      size, alignment, type-erased poll and drop
 * A frame embeds the frames of the same-file functions it awaits, so their
 * definitions are emitted first (recursion without ac_box is rejected
 * earlier, so this order exists). Output is deterministic: it depends only
 * on the input bytes and flags.
 */
#include "compiler.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct Emit {
    Unit *u;
    Buf *out;
    NodeMap done;    /* AsyncFn* (by node) whose frame struct is emitted */
    Vec ext_done;    /* ExtFn* whose declarations are emitted */
} Emit;

static bool frame_emitted(Emit *e, AsyncFn *fn) { return nodemap_get(&e->done, fn->node) != NULL; }

static int line_of(TSNode n) { return (int)ts_node_start_point(n).row + 1; }
static int end_line_of(TSNode n) { return (int)ts_node_end_point(n).row + 1; }

/* The parameter list's text without its parentheses, or "" for (void)/(). */
static char *params_inner(Unit *u, AsyncFn *fn)
{
    char *t = parse_text(u, fn->params);
    size_t n = strlen(t);
    char *inner = xstrndup(t + 1, n >= 2 ? n - 2 : 0);
    free(t);
    char *p = inner;
    while (*p == ' ' || *p == '\t' || *p == '\n')
        p++;
    if (*p == 0 || strcmp(p, "void") == 0) {
        free(inner);
        return xstrdup("");
    }
    return inner;
}

static char *out_param(AsyncFn *fn)
{
    if (fn->ret_void)
        return xstrdup("void *ac_out");
    return lower_declare(fn->ret_type, "*ac_out");
}

static const char *storage(AsyncFn *fn) { return fn->is_static ? "static " : ""; }

static void emit_frame(Emit *e, AsyncFn *fn);

static void emit_ext_decls(Emit *e, ExtFn *x)
{
    for (int i = 0; i < e->ext_done.len; i++)
        if (e->ext_done.items[i] == x)
            return;
    vec_push(&e->ext_done, x);
    Buf *o = e->out;
    buf_printf(o, "/* %s: async function defined elsewhere (Future ABI) */\n", x->name);
    buf_printf(o, "extern const ac_future_vt %s__vt;\n", x->name);
    buf_printf(o, "void %s__init(void *ac_frame", x->name);
    for (int i = 0; i < x->param_types.len; i++)
        buf_printf(o, ", %s", (char *)x->param_types.items[i]);
    buf_puts(o, ");\n");
}

/* Declarations every awaited callee needs before fn's frame and poll. */
static void emit_callees(Emit *e, AsyncFn *fn)
{
    for (int i = 0; i < fn->awaits.len; i++) {
        Await *outer = fn->awaits.items[i];
        for (int j = 0; j < outer->arms.len; j++) {
            Await *arm = outer->arms.items[j];
            if (arm->target)
                emit_frame(e, arm->target);
            else if (arm->boxed || !arm->ext->embeddable)
                emit_ext_decls(e, arm->ext);
        }
        if (outer->join)
            continue;
        Await *aw = outer;
        if (aw->target)
            emit_frame(e, aw->target);
        else if ((aw->boxed || !aw->ext->embeddable) && strcmp(aw->callee, "ac_join") != 0)
            emit_ext_decls(e, aw->ext);
    }
    for (int i = 0; i < fn->spawns.len; i++) {
        Spawn *sp = fn->spawns.items[i];
        if (sp->target)
            emit_frame(e, sp->target);
        else if (!sp->ext->embeddable)
            emit_ext_decls(e, sp->ext);
    }
}

static void describe_states(Buf *o, const StateSet *s)
{
    bool first = true;
    for (int w = 0; w < s->words; w++)
        for (int b = 0; b < 64; b++)
            if (s->bits[w] >> b & 1) {
                buf_printf(o, "%s%d", first ? "" : " ", w * 64 + b);
                first = false;
            }
}

/* struct F__frame and the prototypes of F's functions. */
static void emit_frame(Emit *e, AsyncFn *fn)
{
    if (frame_emitted(e, fn))
        return;
    nodemap_put(&e->done, fn->node, fn);
    emit_callees(e, fn);
    Unit *u = e->u;
    Buf *o = e->out;
    Frame *f = fn->frame;
    buf_printf(o, "#line %d \"%s\"\n", line_of(fn->node), u->line_path);
    buf_printf(o, "/* %s: frame of its state machine (%lld bytes; asyncc --emit=states) */\n",
               fn->name, (long long)f->size);
    buf_printf(o, "struct %s__frame {\n", fn->name);
    for (int g = 0; g < f->groups.len; g++) {
        SlotGroup *grp = f->groups.items[g];
        bool un = grp->slots.len > 1;
        if (un)
            buf_puts(o, "    union {\n");
        for (int k = 0; k < grp->slots.len; k++) {
            Slot *s = grp->slots.items[k];
            buf_printf(o, "%s    %s; /* %s", un ? "    " : "", s->decl, s->what);
            if (s->line)
                buf_printf(o, ", line %d", s->line);
            buf_puts(o, "; live in states ");
            describe_states(o, &s->live);
            buf_puts(o, " */\n");
        }
        if (un)
            buf_puts(o, "    };\n");
    }
    buf_printf(o, "    %s ac_state; /* 0 unresumed, 1 returned, 2 poisoned, 3.. suspended */\n",
               f->state_type);
    buf_puts(o, "};\n");
    char *params = params_inner(u, fn);
    char *outp = out_param(fn);
    const char *unused = fn->is_static ? " __attribute__((unused))" : "";
    buf_printf(o, "%svoid %s__init(void *ac_frame%s%s)%s;\n", storage(fn), fn->name,
               *params ? ", " : "", params, unused);
    buf_printf(o, "static ac_poll_t %s__poll(struct %s__frame *ac_f, ac_context *ac_cx, %s);\n",
               fn->name, fn->name, outp);
    buf_printf(o, "static void %s__drop(struct %s__frame *ac_f);\n", fn->name, fn->name);
    buf_printf(o, "%sconst ac_future_vt %s__vt%s;\n", fn->is_static ? "static " : "extern ",
               fn->name, unused);
    free(params);
    free(outp);
}

static void emit_function(Emit *e, AsyncFn *fn)
{
    Unit *u = e->u;
    Buf *o = e->out;
    emit_frame(e, fn);
    char *params = params_inner(u, fn);
    char *outp = out_param(fn);
    const char *unused = fn->is_static ? " __attribute__((unused))" : "";

    /* Generated scaffolding is attributed to the function's first line. */
    buf_printf(o, "#line %d \"%s\"\n", line_of(fn->node), u->line_path);
    buf_printf(o, "%svoid %s__init(void *ac_frame%s%s)\n{\n", storage(fn), fn->name,
               *params ? ", " : "", params);
    buf_printf(o, "    struct %s__frame *ac_f = ac_frame;\n", fn->name);
    for (int i = 0; i < fn->vars.len; i++) {
        Var *v = fn->vars.items[i];
        if (!v->is_param)
            continue;
        const TypeInfo *ti = u->sema ? sema_var_type(u->sema, ts_node_start_byte(v->ident)) : NULL;
        if (ti && ti->const_member) /* not assignable as a whole */
            buf_printf(o, "    __builtin_memcpy(&ac_f->%s, &%s, sizeof ac_f->%s);\n", v->field,
                       v->name, v->field);
        else
            buf_printf(o, "    ac_f->%s = %s;\n", v->field, v->name);
    }
    buf_puts(o, "    ac_f->ac_state = AC_STATE_UNRESUMED;\n}\n\n");

    /* The body reads its own name (__func__, or assert's message): the
     * async function's, as in the sync reading, not the poll function's. */
    static const char *const names[] = {"__func__", "__FUNCTION__", "__PRETTY_FUNCTION__"};
    bool named = u->sema && sema_uses_function_name(u->sema, fn->name);
    for (size_t i = 0; named && i < sizeof names / sizeof *names; i++)
        buf_printf(o, "#define %s \"%s\"\n", names[i], fn->name);
    buf_printf(o, "#line %d \"%s\"\n", line_of(fn->node), u->line_path);
    buf_printf(o, "static ac_poll_t %s__poll(struct %s__frame *ac_f, ac_context *ac_cx, %s)\n",
               fn->name, fn->name, outp);
    buf_puts(o, fn->poll_text);
    for (size_t i = 0; named && i < sizeof names / sizeof *names; i++)
        buf_printf(o, "#undef %s\n", names[i]);

    buf_printf(o, "#line %d \"%s\"\n", line_of(fn->node), u->line_path);
    buf_printf(o, "static void %s__drop(struct %s__frame *ac_f)\n{\n", fn->name, fn->name);
    buf_puts(o, "    switch (ac_f->ac_state) {\n");
    for (int i = 0; i < fn->awaits.len; i++) {
        Await *aw = fn->awaits.items[i];
        buf_printf(o, "    case %d:\n", aw->state);
        for (int j = 0; j < aw->arms.len; j++) {
            char *slot = xasprintf("ac_aw%d_%d", aw->state, j);
            char *drop = lower_drop_arm(aw->arms.items[j], slot);
            buf_printf(o, "        if (!(ac_f->ac_done%d & %uu))\n            %s\n", aw->state, 1u << j,
                       drop);
            free(drop);
            free(slot);
        }
        if (aw->join == 3)
            buf_printf(o, "        ac_deadline__drop(&ac_f->ac_dl%d);\n", aw->state);
        bool embed = !aw->join && !aw->boxed && (aw->target || aw->ext->embeddable);
        if (aw->join) {
            /* the arms, above */
        } else if (embed) {
            buf_printf(o, "        %s__drop(&ac_f->ac_aw%d);\n", aw->callee, aw->state);
        } else {
            buf_printf(o, "        %s__vt.drop(ac_f->ac_aw%d);\n", aw->callee, aw->state);
            buf_printf(o, "        ac_frame_free(&%s__vt, ac_f->ac_aw%d);\n", aw->callee, aw->state);
        }
        /* Then, innermost first, the cleanups of the variables in scope
         * here, as leaving their scopes would run them. */
        for (int j = fn->vars.len - 1; j >= 0; j--) {
            Var *v = fn->vars.items[j];
            if (v->cleanup_call && set_has(&v->live, aw->state))
                buf_printf(o, "        %s\n", v->cleanup_call);
        }
        buf_puts(o, "        break;\n");
    }
    buf_puts(o, "    default:\n        break;\n    }\n    ac_f->ac_state = AC_STATE_RETURNED;\n}\n\n");

    buf_printf(o, "__attribute__((unused)) static ac_poll_t %s__vpoll(void *f, ac_context *cx, void *out)\n",
               fn->name);
    buf_printf(o, "{\n    return %s__poll(f, cx, out);\n}\n\n", fn->name);
    buf_printf(o, "__attribute__((unused)) static void %s__vdrop(void *f)\n{\n    %s__drop(f);\n}\n\n",
               fn->name, fn->name);
    /* NAME(...) called outside await() creates the future and drops it
     * unpolled, as in Rust; asyncc warns about such calls (check.c). */
    char *head = xasprintf("%s(%s)", fn->name, *params ? params : "void");
    char *decl = lower_declare(fn->ret_void ? "void" : fn->ret_type, head);
    buf_printf(o, "%s%s%s\n{\n", fn->is_static ? "__attribute__((unused)) " : "", storage(fn), decl);
    free(head);
    free(decl);
    buf_printf(o, "    struct %s__frame ac_fr;\n    %s__init(&ac_fr", fn->name, fn->name);
    for (int i = 0; i < fn->vars.len; i++) {
        Var *v = fn->vars.items[i];
        if (v->is_param)
            buf_printf(o, ", %s", v->name);
    }
    buf_printf(o, ");\n    %s__drop(&ac_fr);\n", fn->name);
    if (!fn->ret_void) {
        char *r = lower_declare(fn->ret_type, "ac_r");
        buf_printf(o, "    %s;\n    __builtin_memset(&ac_r, 0, sizeof ac_r);\n    return ac_r;\n", r);
        free(r);
    }
    buf_puts(o, "}\n\n");
    buf_printf(o, "%sconst ac_future_vt %s__vt%s = {\n", storage(fn), fn->name, unused);
    buf_printf(o, "    sizeof(struct %s__frame), _Alignof(struct %s__frame), %s, %s__vpoll, %s__vdrop, \"%s\",\n};\n",
               fn->name, fn->name, fn->ret_void ? "0" : xasprintf("sizeof(%s)", fn->ret_type),
               fn->name, fn->name, fn->name);
    free(params);
    free(outp);
}

void emit_unit(Unit *u, Buf *out)
{
    Emit e = {.u = u, .out = out};
    buf_puts(out, "/* Generated by asyncc. Edit the source named in the #line below, not this file. */\n");
    buf_puts(out, "#define ASYNCC_LOWERED 1\n#include <asyncc.h>\n");
    buf_printf(out, "#line 1 \"%s\"\n", u->line_path);
    uint32_t pos = 0;
    for (int i = 0; i < u->fns.len; i++) {
        AsyncFn *fn = u->fns.items[i];
        uint32_t s = ts_node_start_byte(fn->node), end = ts_node_end_byte(fn->node);
        if (s < pos)
            continue; /* nested declaration already inside emitted text */
        /* A prototype inside a function body is copied (its text is valid). */
        if (!fn->is_def && !ts_node_eq(parse_parent(u, fn->node), u->root))
            continue;
        buf_putn(out, u->src.text + pos, s - pos);
        if (buf_putc(out, '\n'), fn->is_def) {
            emit_function(&e, fn);
        } else {
            AsyncFn *def = parse_find_fn(u, fn->name);
            if (def && def->is_def) {
                emit_frame(&e, def);
            } else {
                ExtFn *x = sema_ext_fn(u->sema, fn->name);
                if (x)
                    emit_ext_decls(&e, x);
            }
            /* The prototype itself stays: in the lowered reading it declares
             * the function that creates and drops the future. */
            buf_printf(out, "#line %d \"%s\"\n", line_of(fn->node), u->line_path);
            buf_putn(out, u->src.text + s, end - s);
            buf_putc(out, '\n');
        }
        buf_printf(out, "#line %d \"%s\"\n", end_line_of(fn->node), u->line_path);
        pos = end;
    }
    buf_putn(out, u->src.text + pos, u->src.len - pos);
    /* `#pragma asyncc allow(...)` is for asyncc only: the C compiler would
     * warn about an unknown pragma, so it becomes a comment. */
    if (strstr(out->data, "#pragma asyncc")) {
        Buf b = {0};
        for (size_t i = 0; i < out->len; i++) {
            size_t j = i;
            while (j > 0 && (out->data[j - 1] == ' ' || out->data[j - 1] == '\t'))
                j--;
            if (i + 14 <= out->len && memcmp(out->data + i, "#pragma asyncc", 14) == 0 &&
                (j == 0 || out->data[j - 1] == '\n'))
                buf_puts(&b, "// ");
            buf_putc(&b, out->data[i]);
        }
        buf_free(out);
        *out = b;
    }
    nodemap_free(&e.done);
    free(e.ext_done.items);
}

/* ---- --emit=states ---------------------------------------------------------- */

static const char *slot_kind(SlotKind k)
{
    switch (k) {
    case SLOT_PARAM:
        return "parameter";
    case SLOT_LOCAL:
        return "local";
    case SLOT_TEMP:
        return "temporary";
    case SLOT_AWAIT:
        return "future";
    }
    return "?";
}

void emit_states(Unit *u, Buf *o)
{
    for (int i = 0; i < u->fns.len; i++) {
        AsyncFn *fn = u->fns.items[i];
        if (!fn->is_def)
            continue;
        Frame *f = fn->frame;
        buf_printf(o, "async function %s -> %s  (%s:%d)\n", fn->name, fn->ret_type, u->src.path,
                   line_of(fn->node));
        buf_puts(o, "  states:\n");
        StateSet *succ = flow_successors(u, fn);
        for (int s = 0; s < fn->nstates; s++) {
            if (s == 1 || s == 2)
                continue;
            if (s == 0) {
                buf_printf(o, "    %-3d unresumed", 0);
            } else {
                Await *aw = fn->awaits.items[s - 3];
                if (aw->join) {
                    buf_printf(o, "    %-3d await %s(", s, aw->callee);
                    for (int j = 0; j < aw->arms.len; j++)
                        buf_printf(o, "%s%s()", j ? ", " : "", ((Await *)aw->arms.items[j])->callee);
                    buf_printf(o, ") at line %d", line_of(aw->node));
                } else {
                    char *call = parse_text(u, child_by_field(aw->call, "function"));
                    buf_printf(o, "    %-3d await %s%s() at line %d", s, aw->boxed ? "boxed " : "", call,
                               line_of(aw->node));
                    free(call);
                }
            }
            buf_puts(o, " -> ");
            bool first = true;
            for (int t = 0; t < fn->nstates; t++)
                if (set_has(&succ[s], t)) {
                    buf_printf(o, "%s%s", first ? "" : ", ",
                               t == 1 ? "returned" : xasprintf("%d", t));
                    first = false;
                }
            if (first)
                buf_puts(o, "(never resumes)");
            buf_puts(o, "\n");
        }
        buf_puts(o, "    1   returned\n    2   poisoned\n");
        buf_printf(o, "  frame: struct %s__frame, %lld bytes, align %lld\n", fn->name,
                   (long long)f->size, (long long)f->align);
        buf_puts(o, "    offset  size  slot              kind        line  live in states\n");
        for (int g = 0; g < f->groups.len; g++) {
            SlotGroup *grp = f->groups.items[g];
            for (int k = 0; k < grp->slots.len; k++) {
                Slot *s = grp->slots.items[k];
                buf_printf(o, "    %6lld  %4lld  %-16s  %-10s  %4d  ", (long long)s->offset,
                           (long long)s->size, s->name, slot_kind(s->kind), s->line);
                describe_states(o, &s->live);
                buf_puts(o, grp->slots.len > 1 ? "  (shares storage)\n" : "\n");
            }
        }
        buf_printf(o, "    %6lld  %4d  %-16s  %-10s\n", (long long)f->state_offset,
                   (int)(strcmp(f->state_type, "uint8_t") == 0 ? 1 : strcmp(f->state_type, "uint16_t") == 0 ? 2 : 4),
                   "ac_state", "state");
        buf_puts(o, "\n");
        free(succ);
    }
}

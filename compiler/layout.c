/*
 * layout.c: the frame of one async function.
 *
 * Input: an AsyncFn after liveness and lowering (hoisted variables, frame
 * temporaries, awaits), its callees already laid out.
 * Output: fn->frame: slots (parameters, hoisted locals, temporaries live
 * across an await, one slot per await holding the awaited future) grouped so
 * that slots whose storage is never needed at the same time share bytes (an
 * anonymous union), as rustc overlaps the fields of different suspension
 * variants; offsets and total size as the C compiler will lay them out.
 * Overlap rule: each slot has the source range over which its storage is
 * needed (a variable: from its declaration to its last reference, stretched
 * over any enclosing loop inside its scope, or its whole scope if its address
 * is taken or the function uses goto; an awaited future: the await itself; a
 * temporary: from its await to the end of its statement). Slots with
 * disjoint ranges are never needed together and may share storage.
 * Groups are placed by decreasing alignment, the state field last, so padding
 * stays small.
 */
#include "compiler.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Renders a variable's declarator as a field declarator named `field`. */
static void field_declarator(Unit *u, Var *v, TSNode d, Buf *b)
{
    if (type_is(d, "identifier")) {
        buf_puts(b, v->field);
        return;
    }
    if (type_is(d, "array_declarator")) {
        TSNode inner = child_by_field(d, "declarator");
        if (type_is(inner, "identifier")) {
            if (v->is_param) {
                /* An array parameter is a pointer. */
                buf_printf(b, "(*%s)", v->field);
                return;
            }
            if (ts_node_is_null(child_by_field(d, "size"))) {
                /* `char s[] = "..."`: the size comes from the initializer. */
                const TypeInfo *ti = sema_var_type(u->sema, ts_node_start_byte(v->ident));
                const char *br = ti ? strchr(ti->spelling, '[') : NULL;
                long n = br ? strtol(br + 1, NULL, 10) : 0;
                buf_printf(b, "%s[%ld]", v->field, n);
                return;
            }
        }
    }
    uint32_t pos = ts_node_start_byte(d);
    for (uint32_t i = 0; i < ts_node_child_count(d); i++) {
        TSNode c = ts_node_child(d, i);
        buf_putn(b, u->src.text + pos, ts_node_start_byte(c) - pos);
        pos = ts_node_end_byte(c);
        if (type_is(d, "pointer_declarator") && type_is(c, "type_qualifier") &&
            type_is(child_by_field(d, "declarator"), "identifier"))
            continue; /* `int *const p`: the frame field itself is assignable (a
                         qualifier next to the name is the variable's own) */
        if (ts_node_eq(c, child_by_field(d, "declarator")) ||
            (type_is(d, "parenthesized_declarator") && ts_node_is_named(c)))
            field_declarator(u, v, c, b);
        else
            buf_putn(b, u->src.text + ts_node_start_byte(c),
                     ts_node_end_byte(c) - ts_node_start_byte(c));
    }
    buf_putn(b, u->src.text + pos, ts_node_end_byte(d) - pos);
}

/* Whether an enumerator named like `name` is declared in fn's body. */
static bool local_enumerator(Unit *u, AsyncFn *fn, TSNode name)
{
    TSTreeCursor c = ts_tree_cursor_new(fn->body);
    bool found = false;
    do {
        TSNode n = ts_tree_cursor_current_node(&c);
        if (type_is(n, "enumerator")) {
            char *e = parse_text(u, child_by_field(n, "name"));
            found = parse_eq(u, name, e);
            free(e);
        }
    } while (!found && cursor_advance(&c, true));
    ts_tree_cursor_delete(&c);
    return found;
}

/* Whether the declarator d (of v) names, in an array size, something
 * declared in the function: a variable (`char b[sizeof n]`) or an
 * enumerator (`enum { N = 4 }; char b[N]`), which the frame, declared at
 * file scope, cannot see. */
static bool names_locals(Unit *u, AsyncFn *fn, Var *v, TSNode d)
{
    TSTreeCursor c = ts_tree_cursor_new(d);
    bool found = false;
    do {
        TSNode n = ts_tree_cursor_current_node(&c);
        if (ts_node_eq(n, v->ident) || !(type_is(n, "identifier") || type_is(n, "type_identifier")))
            continue;
        found = nodemap_get(&fn->refs, n) != NULL ||
                (type_is(n, "identifier") && local_enumerator(u, fn, n));
    } while (!found && cursor_advance(&c, true));
    ts_tree_cursor_delete(&c);
    return found;
}

/* clang's spelling of a type without the const that qualifies the object
 * itself (the frame assigns the variable when initialised): every const of
 * a type with no pointer in it (`const int`, `const int[3]`, whose
 * elements' const is the array's), else the one right after the last `*`
 * (`int *const`, `int (*const)(int)`). Owned by the caller. */
static char *drop_top_const(const char *t)
{
    char *r = xstrdup(t);
    char *star = strrchr(r, '*');
    for (char *p = star ? star + 1 : r; (p = strstr(p, "const")) != NULL;) {
        bool word = (p == r || !c_ident_char(p[-1])) && !c_ident_char(p[5]);
        /* behind a pointer, only the const that comes right after it */
        bool top = !star || strspn(star + 1, " ") == (size_t)(p - (star + 1));
        if (!word || !top) {
            p += 5;
            continue;
        }
        memmove(p, p + 5 + (p[5] == ' '), strlen(p + 5 + (p[5] == ' ')) + 1);
    }
    size_t n = strlen(r);
    while (n && r[n - 1] == ' ')
        r[--n] = 0;
    return r;
}

/* Whether n is the qualifier const (or GNU's __const, __const__). */
static bool is_const(Unit *u, TSNode n)
{
    return type_is(n, "type_qualifier") &&
           (parse_eq(u, n, "const") || parse_eq(u, n, "__const") || parse_eq(u, n, "__const__"));
}

/* An attribute written after a declarator, text[from, to), without its
 * cleanup(f) (or __cleanup__(f)) item, which a struct field must not have;
 * NULL when nothing else is left. Owned by the caller. */
static char *without_cleanup(const char *text, uint32_t from, uint32_t to)
{
    char *a = xstrndup(text + from, to - from);
    for (char *p = a; (p = strstr(p, "cleanup")) != NULL;) {
        char *start = p, *end = p + strlen("cleanup");
        if (start - a >= 2 && !strncmp(start - 2, "__", 2) && !strncmp(end, "__", 2)) {
            start -= 2;
            end += 2;
        }
        if ((start > a && c_ident_char(start[-1])) || c_ident_char(*end)) {
            p = end;
            continue;
        }
        while (*end == ' ' || *end == '\t')
            end++;
        int depth = 0;
        do {
            if (*end == '(')
                depth++;
            else if (*end == ')')
                depth--;
        } while (*end && *end++ && depth > 0);
        /* One comma goes with it: the one after it, else the one before. */
        char *q = end;
        while (*q == ' ' || *q == '\t')
            q++;
        if (*q == ',') {
            end = q + 1;
            while (*end == ' ' || *end == '\t')
                end++;
        } else {
            char *b = start;
            while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
                b--;
            if (b > a && b[-1] == ',')
                start = b - 1;
        }
        memmove(start, end, strlen(end) + 1);
        p = start;
    }
    /* `__attribute__(( ))` with nothing inside is dropped. */
    const char *open = strstr(a, "((");
    bool empty = open != NULL;
    for (const char *q = open ? open + 2 : a; empty && *q && strncmp(q, "))", 2); q++)
        empty = *q == ' ' || *q == '\t';
    if (empty) {
        free(a);
        return NULL;
    }
    return a;
}

/* The attributes after a hoisted variable's declarator, as its field
 * keeps them (a cleanup item left out), each after a space. */
static void field_attrs(Unit *u, const Var *v, const Vec *attrs, Buf *b)
{
    for (int i = 0; i < attrs->len; i++) {
        uint32_t *span = attrs->items[i];
        char *a = v->cleanup ? without_cleanup(u->src.text, span[0], span[1])
                             : xstrndup(u->src.text + span[0], span[1] - span[0]);
        if (a)
            buf_printf(b, " %s", a);
        free(a);
    }
}

/* The frame field declaration for a hoisted variable: its type as written,
 * without storage class, and without a top-level const (the frame is
 * assigned to when the variable is initialised), then the attributes that
 * stood after its declarator (attrs: source spans, parse_masked_attrs). A
 * type declared in the function gets bytes of its size and `align`. */
static char *var_field_decl(Unit *u, AsyncFn *fn, Var *v, const Vec *attrs, int64_t align)
{
    /* typeof(local) and __auto_type name nothing at file scope, nor does an
     * array size made of the function's names: use the type clang worked
     * out. */
    if (v->local_type) {
        /* Raw storage of the type's size and alignment, which the body
         * reaches through v->local_type (lower.c). */
        const TypeInfo *ti = sema_var_type(u->sema, ts_node_start_byte(v->ident));
        if (ti && ti->size > 0 && align > 0)
            return xasprintf("_Alignas(%lld) unsigned char %s[%lld]", (long long)align, v->field,
                             (long long)ti->size);
    }
    TSNode type = child_by_field(v->decl, "type");
    /* A cleanup attribute stays with the variable (lower.c runs it): a
     * struct field must not have one, so the field takes clang's type,
     * without the attributes or macros (`g_autoptr(T)`) that carry it. */
    bool inferred = v->cleanup || parse_is_inferred_type(u, type);
    TSNode d = v->declarator;
    if (type_is(d, "init_declarator"))
        d = child_by_field(d, "declarator");
    if (!inferred && !v->is_param)
        inferred = names_locals(u, fn, v, d);
    const TypeInfo *ti = inferred ? sema_var_type(u->sema, ts_node_start_byte(v->ident)) : NULL;
    if (ti) {
        char *type = drop_top_const(ti->canonical);
        char *decl = lower_declare(type, v->field);
        free(type);
        if (!v->cleanup)
            return decl;
        Buf b = {0};
        buf_puts(&b, decl);
        free(decl);
        field_attrs(u, v, attrs, &b);
        return buf_take(&b);
    }
    /* A const in the specifiers qualifies the variable itself only when no
     * pointer (or array parameter, which is one) stands between. */
    bool pointer = type_is(d, "pointer_declarator") ||
                   (v->is_param && type_is(d, "array_declarator"));
    Buf b = {0};
    for (uint32_t i = 0; i < ts_node_child_count(v->decl); i++) {
        TSNode c = ts_node_child(v->decl, i);
        if (parse_is_declarator(c))
            break;
        if (type_is(c, "storage_class_specifier") || type_is(c, "comment"))
            continue;
        if (!pointer && is_const(u, c))
            continue;
        if (!pointer && type_is(c, "sized_type_specifier")) {
            /* `long const x`, `unsigned const x`: the grammar puts the
             * qualifier inside the sized type. */
            uint32_t pos = ts_node_start_byte(c), end = ts_node_end_byte(c);
            for (uint32_t k = 0; k < ts_node_child_count(c); k++) {
                TSNode q = ts_node_child(c, k);
                if (!is_const(u, q))
                    continue;
                buf_putn(&b, u->src.text + pos, ts_node_start_byte(q) - pos);
                pos = ts_node_end_byte(q);
                while (pos < end && (u->src.text[pos] == ' ' || u->src.text[pos] == '\t'))
                    pos++;
            }
            buf_putn(&b, u->src.text + pos, end - pos);
            while (b.len && b.data[b.len - 1] == ' ')
                b.data[--b.len] = 0;
            buf_putc(&b, ' ');
            continue;
        }
        char *t = parse_text(u, c);
        buf_printf(&b, "%s ", t);
        free(t);
    }
    field_declarator(u, v, d, &b);
    field_attrs(u, v, attrs, &b);
    return buf_take(&b);
}

static void var_range(Unit *u, AsyncFn *fn, Var *v, uint32_t *from, uint32_t *to)
{
    uint32_t start = v->is_param ? 0 : ts_node_start_byte(v->decl);
    uint32_t end = v->is_param ? ts_node_start_byte(fn->body) : v->live_from;
    if (v->addr_taken || v->cleanup || fn->has_goto) {
        *from = start;
        *to = ts_node_end_byte(v->scope);
        return;
    }
    for (int i = 0; i < v->refs.len; i++) {
        TSNode r = *(TSNode *)v->refs.items[i];
        /* Lowering evaluates awaits before the rest of their statement, so
         * a reference is needed until its whole statement is done. */
        TSNode stmt = parse_statement_of(u, r);
        if (ts_node_end_byte(stmt) > end)
            end = ts_node_end_byte(stmt);
        for (TSNode p = stmt; !ts_node_is_null(p); p = parse_parent(u, p)) {
            if (!parse_node_within(p, v->scope))
                break;
            if (parse_is_loop(p) && ts_node_end_byte(p) > end)
                end = ts_node_end_byte(p);
        }
    }
    *from = start;
    *to = end;
}

static Slot *add_slot(Frame *f, SlotKind kind, char *name, char *decl, int64_t size,
                      int64_t align, int line)
{
    Slot *s = xcalloc(1, sizeof *s);
    s->kind = kind;
    s->name = name;
    s->decl = decl;
    s->size = size > 0 ? size : 8;
    s->align = align > 0 ? align : 8;
    s->line = line;
    vec_push(&f->slots, s);
    return s;
}

static int64_t align_up(int64_t x, int64_t a) { return (x + a - 1) / a * a; }

/* A join holds every future at once, an output pointer for each and the
 * bits of the ones that are done; all are needed during the join only. */
static void layout_join(Unit *u, Frame *f, Await *aw)
{
    int line = (int)ts_node_start_point(aw->node).row + 1;
    for (int i = 0; i < aw->arms.len; i++) {
        Await *arm = aw->arms.items[i];
        char *name = xasprintf("ac_aw%d_%d", aw->state, i);
        Slot *s;
        if (!arm->boxed && arm->target) {
            if (!arm->target->frame)
                layout_fn(u, arm->target);
            s = add_slot(f, SLOT_AWAIT, name, xasprintf("struct %s__frame %s", arm->callee, name),
                         arm->target->frame->size, arm->target->frame->align, line);
        } else if (!arm->boxed && arm->ext->embeddable) {
            s = add_slot(f, SLOT_AWAIT, name, xasprintf("struct %s__frame %s", arm->callee, name),
                         (int64_t)arm->ext->size, (int64_t)arm->ext->align, line);
        } else {
            s = add_slot(f, SLOT_AWAIT, name, xasprintf("void *%s", name), 8, 8, line);
        }
        s->what = "joined future";
        char *out = xasprintf("ac_out%d_%d", aw->state, i);
        Slot *o = add_slot(f, SLOT_TEMP, out, xasprintf("void *%s", out), 8, 8, line);
        o->what = "output pointer";
        Slot *both[] = {s, o};
        for (int k = 0; k < 2; k++) {
            set_add(&both[k]->live, aw->state);
            both[k]->from = ts_node_start_byte(aw->node);
            both[k]->to = ts_node_end_byte(aw->node);
        }
    }
    if (aw->join == 3) {
        /* the deadline raced against the future */
        int64_t size = 64, align = 8;
        sema_frame(u->sema, "ac_deadline", &size, &align);
        char *dl = xasprintf("ac_dl%d", aw->state);
        Slot *s = add_slot(f, SLOT_AWAIT, dl, xasprintf("struct ac_deadline__frame %s", dl), size,
                           align, line);
        s->what = "deadline";
        set_add(&s->live, aw->state);
        s->from = ts_node_start_byte(aw->node);
        s->to = ts_node_end_byte(aw->node);
    }
    char *done = xasprintf("ac_done%d", aw->state);
    Slot *d = add_slot(f, SLOT_TEMP, done, xasprintf("uint32_t %s", done), 4, 4, line);
    d->what = "futures done";
    set_add(&d->live, aw->state);
    d->from = ts_node_start_byte(aw->node);
    d->to = ts_node_end_byte(aw->node);
}

/* The number in the first parentheses after `word` in the source bytes
 * [from, to) (`_Alignas(16)`, `aligned(16)`); 0 without `word`, and -1
 * when what follows it is not a plain number (`_Alignas(2 * 8)`,
 * `aligned(LINE)`, `_Alignas(pair)`, a bare `aligned`). */
static long number_in_parens(Unit *u, uint32_t from, uint32_t to, const char *word)
{
    char *t = xstrndup(u->src.text + from, to - from);
    const char *at = strstr(t, word);
    const char *open = at ? strchr(at, '(') : NULL;
    char *end = NULL;
    long n = open ? strtol(open + 1, &end, 0) : 0;
    while (end && (*end == ' ' || *end == '\t' || *end == '\n'))
        end++;
    if (at && (!end || *end != ')' || n <= 0))
        n = -1;
    free(t);
    return n;
}

void layout_fn(Unit *u, AsyncFn *fn)
{
    Frame *f = xcalloc(1, sizeof *f);
    fn->frame = f;

    for (int i = 0; i < fn->vars.len; i++) {
        Var *v = fn->vars.items[i];
        if (!v->hoisted)
            continue;
        const TypeInfo *ti = sema_var_type(u->sema, ts_node_start_byte(v->ident));
        int64_t size = ti ? ti->size : -1, align = ti ? ti->align : -1;
        if (v->is_param && ti && strchr(ti->spelling, '['))
            size = align = (int64_t)sizeof(void *); /* an array parameter is a pointer */
        /* The first alignment written other than as a number, if any. */
        uint32_t unread = UINT32_MAX;
        for (uint32_t k = 0; k < ts_node_child_count(v->decl); k++) {
            /* _Alignas(N) in the declaration raises the field's alignment. */
            TSNode q = ts_node_child(v->decl, k);
            if (type_is(q, "type_qualifier") && ts_node_named_child_count(q) &&
                type_is(ts_node_named_child(q, 0), "alignas_qualifier")) {
                TSNode a = ts_node_named_child(q, 0);
                long n = number_in_parens(u, ts_node_start_byte(a), ts_node_end_byte(a), "");
                if (n > align)
                    align = n;
                if (n < 0 && unread == UINT32_MAX)
                    unread = ts_node_start_byte(a);
            }
        }
        /* So does aligned(N) among the attributes after the declarator,
         * which the parse did not see (gaps.c); the field keeps them. */
        Vec attrs = {0};
        parse_masked_attrs(u, v->decl, v->declarator, &attrs);
        for (int k = 0; k < attrs.len; k++) {
            uint32_t *span = attrs.items[k];
            long n = number_in_parens(u, span[0], span[1], "aligned");
            if (n > align)
                align = n;
            if (n < 0 && unread == UINT32_MAX)
                unread = span[0];
        }
        /* Bytes standing in for a type declared in the function carry the
         * alignment as a number; one written as a type or a name is kept
         * as written elsewhere, but cannot be read here. */
        if (v->local_type && unread != UINT32_MAX)
            diag_error(&u->src, unread,
                       "'%s' lives across an await and its declaration names a type declared "
                       "in the function, so the frame holds it as bytes, whose alignment must "
                       "be a number (write _Alignas(N), or declare the type at file scope)",
                       v->name);
        Slot *s = add_slot(f, v->is_param ? SLOT_PARAM : SLOT_LOCAL, xstrdup(v->field),
                           var_field_decl(u, fn, v, &attrs, align), size, align,
                           (int)ts_node_start_point(v->ident).row + 1);
        free(attrs.items);
        s->what = v->is_param ? "parameter" : "local";
        set_union(&s->live, &v->live);
        var_range(u, fn, v, &s->from, &s->to);
    }
    for (int i = 0; i < fn->literals.len; i++) {
        Literal *lit = fn->literals.items[i];
        uint32_t at = ts_node_start_byte(lit->node);
        const TypeInfo *ti = lit->call ? sema_call_type(u->sema, at) : sema_literal_type(u->sema, at);
        if (!lit->field || !ti)
            continue;
        Slot *s = add_slot(f, SLOT_LOCAL, xstrdup(lit->field),
                           lower_declare(ti->canonical, lit->field), ti->size, ti->align,
                           (int)ts_node_start_point(lit->node).row + 1);
        s->what = lit->call ? "call result" : "compound literal";
        set_union(&s->live, &lit->live);
        s->from = ts_node_start_byte(lit->node);
        s->to = ts_node_end_byte(lit->scope);
    }
    for (int i = 0; i < fn->temps.len; i++) {
        Temp *t = fn->temps.items[i];
        if (set_empty(&t->live))
            continue;
        char *name = xasprintf("ac_t%d", t->id);
        Slot *s = add_slot(f, SLOT_TEMP, name, lower_declare(t->type, name), t->size, t->align, 0);
        s->what = "temporary";
        set_union(&s->live, &t->live);
        s->from = t->from;
        s->to = t->to;
    }
    for (int i = 0; i < fn->awaits.len; i++) {
        Await *aw = fn->awaits.items[i];
        if (aw->join) {
            layout_join(u, f, aw);
            continue;
        }
        char *name = xasprintf("ac_aw%d", aw->state);
        int line = (int)ts_node_start_point(aw->node).row + 1;
        Slot *s;
        if (!aw->boxed && aw->target) {
            if (!aw->target->frame)
                layout_fn(u, aw->target);
            s = add_slot(f, SLOT_AWAIT, name, xasprintf("struct %s__frame %s", aw->callee, name),
                         aw->target->frame->size, aw->target->frame->align, line);
        } else if (!aw->boxed && aw->ext->embeddable) {
            s = add_slot(f, SLOT_AWAIT, name, xasprintf("struct %s__frame %s", aw->callee, name),
                         (int64_t)aw->ext->size, (int64_t)aw->ext->align, line);
        } else {
            s = add_slot(f, SLOT_AWAIT, name, xasprintf("void *%s", name), 8, 8, line);
        }
        s->what = "awaited future";
        set_add(&s->live, aw->state);
        s->from = ts_node_start_byte(aw->node);
        s->to = ts_node_end_byte(aw->node);
    }

    /* Greedy grouping, largest slots first: a slot joins the first group
     * none of whose members it overlaps in time. */
    Vec order = {0};
    for (int i = 0; i < f->slots.len; i++)
        vec_push(&order, f->slots.items[i]);
    for (int i = 1; i < order.len; i++)
        for (int j = i; j > 0 && ((Slot *)order.items[j])->size > ((Slot *)order.items[j - 1])->size; j--) {
            void *t = order.items[j];
            order.items[j] = order.items[j - 1];
            order.items[j - 1] = t;
        }
    for (int i = 0; i < order.len; i++) {
        Slot *s = order.items[i];
        SlotGroup *home = NULL;
        for (int g = 0; g < f->groups.len && !home; g++) {
            SlotGroup *grp = f->groups.items[g];
            bool ok = true;
            for (int k = 0; k < grp->slots.len && ok; k++) {
                Slot *o = grp->slots.items[k];
                ok = s->to <= o->from || o->to <= s->from;
            }
            if (ok)
                home = grp;
        }
        if (!home) {
            home = xcalloc(1, sizeof *home);
            vec_push(&f->groups, home);
        }
        vec_push(&home->slots, s);
        if (s->size > home->size)
            home->size = s->size;
        if (s->align > home->align)
            home->align = s->align;
    }
    free(order.items);
    /* Members of a group in creation order, groups by alignment (stable). */
    for (int g = 0; g < f->groups.len; g++) {
        SlotGroup *grp = f->groups.items[g];
        for (int i = 1; i < grp->slots.len; i++)
            for (int j = i; j > 0; j--) {
                Slot *a = grp->slots.items[j - 1], *b = grp->slots.items[j];
                int ia = 0, ib = 0;
                for (int k = 0; k < f->slots.len; k++) {
                    if (f->slots.items[k] == a)
                        ia = k;
                    if (f->slots.items[k] == b)
                        ib = k;
                }
                if (ia < ib)
                    break;
                grp->slots.items[j - 1] = b;
                grp->slots.items[j] = a;
            }
    }
    for (int i = 1; i < f->groups.len; i++)
        for (int j = i; j > 0 && ((SlotGroup *)f->groups.items[j])->align >
                                     ((SlotGroup *)f->groups.items[j - 1])->align; j--) {
            void *t = f->groups.items[j];
            f->groups.items[j] = f->groups.items[j - 1];
            f->groups.items[j - 1] = t;
        }

    int64_t state_size = fn->nstates <= 256 ? 1 : fn->nstates <= 65536 ? 2 : 4;
    f->state_type = state_size == 1 ? "uint8_t" : state_size == 2 ? "uint16_t" : "uint32_t";
    int64_t off = 0, align = state_size;
    for (int g = 0; g < f->groups.len; g++) {
        SlotGroup *grp = f->groups.items[g];
        off = align_up(off, grp->align);
        for (int k = 0; k < grp->slots.len; k++)
            ((Slot *)grp->slots.items[k])->offset = off;
        /* A union's size is rounded up to its alignment; a lone field's is not. */
        off += grp->slots.len > 1 ? align_up(grp->size, grp->align) : grp->size;
        if (grp->align > align)
            align = grp->align;
    }
    off = align_up(off, state_size);
    f->state_offset = off;
    off += state_size;
    f->size = align_up(off, align);
    f->align = align;
}

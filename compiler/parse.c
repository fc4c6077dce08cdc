/*
 * parse.c: syntax (tree-sitter).
 *
 * Input: the source bytes of one `.ac` file.
 * Output: a Unit with the tree-sitter tree and, in source order, every async
 * function the file defines or declares (`async(T) name(params) {...}` or
 * `...;`), each with its awaits (`await(call)`) and the awaits that stand
 * outside any async function.
 * Invariants: the tree has no ERROR or MISSING node (else the file is
 * rejected, pointing at the first bad node); every Await's `call` is a
 * call_expression; awaits are in source order.
 * Rejects: syntax the C grammar cannot parse, `await` with other than one
 * argument or whose argument is not a call, async functions whose result
 * type is not wholly inside `async(...)`.
 *
 * The dialect's constructs are found with the queries in grammar/async.scm,
 * compiled into the binary. tree-sitter's C library does not evaluate query
 * predicates, so the keyword captures are compared here.
 */
#include "compiler.h"

#include <ctype.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const TSLanguage *tree_sitter_c(void);

/* grammar/async.scm, embedded at build time (the build runs from the top). */
__asm__(".pushsection .rodata\n"
        ".global asyncc_query_scm\n"
        "asyncc_query_scm:\n"
        ".incbin \"grammar/async.scm\"\n"
        ".byte 0\n"
        ".popsection\n");
extern const char asyncc_query_scm[];

char *parse_text(const Unit *u, TSNode n)
{
    uint32_t s = ts_node_start_byte(n), e = ts_node_end_byte(n);
    return xstrndup(u->src.text + s, e - s);
}

bool parse_is_loop(TSNode n)
{
    return type_is(n, "while_statement") || type_is(n, "for_statement") || type_is(n, "do_statement");
}

bool parse_is_typeof(const Unit *u, TSNode name)
{
    return parse_eq(u, name, "typeof") || parse_eq(u, name, "__typeof__") ||
           parse_eq(u, name, "__typeof");
}

bool parse_is_inferred_type(Unit *u, TSNode type)
{
    if (ts_node_is_null(type))
        return false;
    if (type_is(type, "macro_type_specifier"))
        return parse_is_typeof(u, child_by_field(type, "name"));
    return type_is(type, "type_identifier") && parse_eq(u, type, "__auto_type");
}

char *parse_macro_name_at(const Unit *u, uint32_t at)
{
    TSNode n = ts_node_descendant_for_byte_range(ts_tree_root_node(u->tree), at, at);
    return type_is(n, "identifier") ? parse_text(u, n) : xstrdup("this macro");
}

char *parse_type_tag(const Unit *u, TSNode type)
{
    TSNode tag = child_by_field(type, "name");
    if (!ts_node_is_null(tag))
        return parse_text(u, tag);
    TSPoint at = ts_node_start_point(type);
    return xasprintf("ac_type_%u_%u", at.row + 1, at.column + 1);
}

bool parse_eq(const Unit *u, TSNode n, const char *s)
{
    uint32_t a = ts_node_start_byte(n), b = ts_node_end_byte(n);
    size_t len = strlen(s);
    return b - a == len && memcmp(u->src.text + a, s, len) == 0;
}

bool parse_is_call_to(const Unit *u, TSNode n, const char *name)
{
    if (ts_node_is_null(n) || !type_is(n, "call_expression"))
        return false;
    TSNode f = child_by_field(n, "function");
    return !ts_node_is_null(f) && type_is(f, "identifier") &&
           parse_eq(u, f, name);
}

bool parse_is_await(const Unit *u, TSNode n) { return parse_is_call_to(u, n, "await"); }

AsyncFn *parse_find_fn(const Unit *u, const char *name)
{
    AsyncFn *found = NULL;
    for (int i = 0; i < u->fns.len; i++) {
        AsyncFn *fn = u->fns.items[i];
        if (strcmp(fn->name, name) == 0 && (!found || fn->is_def))
            found = fn;
    }
    return found;
}

bool parse_is_declarator(TSNode n)
{
    static const char *const types[] = {
        "identifier", "init_declarator", "pointer_declarator", "array_declarator",
        "function_declarator", "parenthesized_declarator", "attributed_declarator", NULL,
    };
    static uint8_t cache[SYM_CACHE];
    return sym_in(ts_node_symbol(n), types, cache);
}

TSNode parse_declarator_ident(TSNode d)
{
    while (!ts_node_is_null(d)) {
        TSSymbol t = ts_node_symbol(d);
        if (SYM_IS(t, "identifier"))
            return d;
        TSNode inner;
        if (SYM_IS(t, "function_declarator")) {
            /* `f(int)` declares a function; `(*f)(int)` a pointer to one. */
            inner = child_by_field(d, "declarator");
            if (ts_node_is_null(inner) || type_is(inner, "identifier"))
                return (TSNode){0};
            d = inner;
            continue;
        }
        inner = child_by_field(d, "declarator");
        if (ts_node_is_null(inner)) {
            /* parenthesized_declarator has no field name for its child */
            if (SYM_IS(t, "parenthesized_declarator") && ts_node_named_child_count(d) > 0)
                inner = ts_node_named_child(d, 0);
            else
                return (TSNode){0};
        }
        d = inner;
    }
    return d;
}

TSNode parse_statement_of(Unit *u, TSNode n)
{
    Vec path = {0};
    TSNode found = n;
    for (TSNode p = n; !ts_node_is_null(p); p = parse_parent(u, p)) {
        TSNode *memo = nodemap_get(&u->stmt_of, p);
        if (memo) {
            found = *memo;
            break;
        }
        if (parse_is_statement(p)) {
            found = p;
            break;
        }
        TSNode *slot = xmalloc(sizeof *slot);
        *slot = p;
        vec_push(&path, slot);
        found = p;
    }
    for (int i = 0; i < path.len; i++) {
        TSNode *slot = path.items[i];
        TSNode key = *slot;
        *slot = found;
        nodemap_put(&u->stmt_of, key, slot);
    }
    free(path.items);
    return found;
}

TSNode parse_parent(const Unit *u, TSNode n)
{
    TSNode *p = nodemap_get(&u->parents, n);
    return p ? *p : (TSNode){0};
}

/* The first ERROR or MISSING node in n's subtree (depth-first), or a null node.
 * Iterative, so a deeply nested input cannot exhaust the stack. */
static TSNode first_error(TSNode root)
{
    if (!ts_node_has_error(root))
        return (TSNode){0};
    TSTreeCursor c = ts_tree_cursor_new(root);
    TSNode found = {0};
    for (;;) {
        TSNode n = ts_tree_cursor_current_node(&c);
        if (type_is(n, "ERROR") || ts_node_is_missing(n)) {
            found = n;
            break;
        }
        if (!cursor_advance(&c, ts_node_has_error(n)))
            break;
    }
    ts_tree_cursor_delete(&c);
    return found;
}

/* The statements an await can be in (lower.c lowers these and a few more
 * kinds as statements). */
static const char *const statement_types[] = {
    "expression_statement", "declaration", "return_statement", "if_statement",
    "while_statement", "do_statement", "for_statement", "switch_statement",
    "compound_statement", "labeled_statement", "case_statement", "goto_statement",
    NULL,
};

bool parse_is_statement(TSNode n)
{
    static uint8_t cache[SYM_CACHE];
    return sym_in(ts_node_symbol(n), statement_types, cache);
}

AsyncFn *parse_fn_containing(const Unit *u, uint32_t at)
{
    for (int i = 0; i < u->fns.len; i++) {
        AsyncFn *fn = u->fns.items[i];
        if (fn->is_def && ts_node_start_byte(fn->body) <= at && at < ts_node_end_byte(fn->body))
            return fn;
    }
    return NULL;
}

static void add_fn(Unit *u, TSNode node, TSNode type, TSNode name, TSNode params, TSNode body,
                   bool is_def)
{
    AsyncFn *fn = xcalloc(1, sizeof *fn);
    fn->name = parse_text(u, name);
    fn->node = node;
    fn->params = params;
    fn->body = body;
    fn->is_def = is_def;
    fn->ret_type = parse_text(u, type);
    fn->ret_void = strcmp(fn->ret_type, "void") == 0;
    for (uint32_t i = 0; i < ts_node_child_count(node); i++) {
        TSNode c = ts_node_child(node, i);
        if (type_is(c, "storage_class_specifier") && parse_eq(u, c, "static"))
            fn->is_static = true;
    }
    vec_push(&u->fns, fn);
}

/* Checks the shape of `await(...)` and records it in its function. */
static void add_await(Unit *u, TSNode call)
{
    uint32_t at = ts_node_start_byte(call);
    AsyncFn *fn = parse_fn_containing(u, at);
    if (!fn) {
        TSNode *p = xmalloc(sizeof *p);
        *p = call;
        vec_push(&u->stray_awaits, p);
        return;
    }
    TSNode args = child_by_field(call, "arguments");
    TSNode arg = {0};
    int n = 0;
    for (uint32_t i = 0; i < ts_node_named_child_count(args); i++) {
        TSNode c = ts_node_named_child(args, i);
        if (type_is(c, "comment"))
            continue;
        arg = c;
        n++;
    }
    if (n != 1) {
        diag_error(&u->src, at, "await() takes exactly one argument, the future to await");
        return;
    }
    Await *aw = xcalloc(1, sizeof *aw);
    aw->node = call;
    aw->call = arg;
    bool timeout = parse_is_call_to(u, arg, "ac_timeout");
    if (parse_is_call_to(u, arg, "ac_all") || parse_is_call_to(u, arg, "ac_try_all") || timeout) {
        /* await(ac_all(&a, f(x), &b, g(y))): the futures run concurrently in
         * this task; each result goes through its pointer. ac_timeout(ms,
         * f(x), &out) is a join of one future with a deadline. */
        aw->join = timeout ? 3 : parse_is_call_to(u, arg, "ac_all") ? 1 : 2;
        aw->callee = xstrdup(timeout ? "ac_timeout" : aw->join == 1 ? "ac_all" : "ac_try_all");
        TSNode jargs = child_by_field(arg, "arguments");
        uint32_t n = ts_node_named_child_count(jargs);
        bool ok = timeout ? n == 3 : n >= 2 && n % 2 == 0 && n <= 64;
        if (timeout && ok)
            aw->limit = ts_node_named_child(jargs, 0);
        for (uint32_t i = timeout ? 1 : 0; ok && i < n; i += 2) {
            TSNode out = ts_node_named_child(jargs, timeout ? i + 1 : i);
            TSNode fut = ts_node_named_child(jargs, timeout ? i : i + 1);
            Await *arm = xcalloc(1, sizeof *arm);
            arm->node = fut;
            arm->call = fut;
            if (parse_is_call_to(u, fut, "ac_box")) {
                TSNode bargs = child_by_field(fut, "arguments");
                arm->boxed = true;
                arm->call = ts_node_named_child_count(bargs) == 1 ? ts_node_named_child(bargs, 0)
                                                                 : (TSNode){0};
            }
            TSNode f = ts_node_is_null(arm->call) || !type_is(arm->call, "call_expression")
                           ? (TSNode){0}
                           : child_by_field(arm->call, "function");
            if (ts_node_is_null(f) || !type_is(f, "identifier")) {
                diag_error(&u->src, ts_node_start_byte(fut),
                           "%s() takes pairs of an output pointer and a call to an async function",
                           aw->callee);
                free(arm);
                ok = false;
                break;
            }
            arm->callee = parse_text(u, f);
            arm->anchor = aw->anchor;
            TSNode *o = xmalloc(sizeof *o);
            *o = out;
            vec_push(&aw->outs, o);
            vec_push(&aw->arms, arm);
        }
        if (!ok) {
            if (timeout && n != 3)
                diag_error(&u->src, ts_node_start_byte(arg),
                           "ac_timeout() takes the milliseconds, the future and an output "
                           "pointer (NULL for a void future)");
            else if (!timeout && (n < 2 || n % 2 || n > 64))
                diag_error(&u->src, ts_node_start_byte(arg),
                           "%s() takes 1 to 32 pairs: an output pointer (NULL for a void "
                           "future), then the future",
                           aw->callee);
            free(aw);
            return;
        }
        for (TSNode p = parse_parent(u, call); !ts_node_is_null(p); p = parse_parent(u, p))
            if (parse_is_statement(p)) {
                aw->anchor = p;
                break;
            }
        for (int i = 0; i < aw->arms.len; i++)
            ((Await *)aw->arms.items[i])->anchor = aw->anchor;
        vec_push(&fn->awaits, aw);
        return;
    }
    if (parse_is_call_to(u, arg, "ac_box")) {
        TSNode bargs = child_by_field(arg, "arguments");
        aw->boxed = true;
        aw->call = ts_node_named_child_count(bargs) == 1 ? ts_node_named_child(bargs, 0)
                                                         : (TSNode){0};
    }
    TSNode f = ts_node_is_null(aw->call) ? aw->call
                                         : child_by_field(aw->call, "function");
    if (ts_node_is_null(aw->call) || !type_is(aw->call, "call_expression") ||
        !type_is(f, "identifier")) {
        diag_error(&u->src, ts_node_start_byte(arg),
                   "await() needs a call to an async function, as in await(f(x))");
        free(aw);
        return;
    }
    aw->callee = parse_text(u, f);
    for (TSNode p = parse_parent(u, call); !ts_node_is_null(p); p = parse_parent(u, p))
        if (parse_is_statement(p)) {
            aw->anchor = p;
            break;
        }
    vec_push(&fn->awaits, aw);
}

/*
 * A call statement whose argument also parses as an abstract declarator,
 * `f(g((a * b)));` or `await(f((w * (x, w))));`, is read by tree-sitter's C
 * grammar as the type `f(T)` standing alone in the block. Nothing is wrong
 * in the source, but inside an async function the translator would miss an
 * await there and leave the frame's variables in it unrenamed (silently
 * using a global of the same name, if there is one): say so, with the fix.
 * Outside async functions the text is copied as it is, which is right.
 */
static void check_read_as_type(Unit *u, TSNode n)
{
    TSNode name = child_by_field(n, "name");
    bool await = parse_eq(u, name, "await");
    if (!await && !parse_fn_containing(u, ts_node_start_byte(n)))
        return;
    char *callee = parse_text(u, name);
    diag_error(&u->src, ts_node_start_byte(n),
               "the C grammar reads this statement as a type, '%s(T)', not as a call (its "
               "argument also parses as a declarator); write '(void)%s(...);'%s so that it "
               "parses as an expression",
               callee, callee, await ? " or use the value," : "");
    free(callee);
}

/* Where in text[0, n) the first call of one of `names` (an identifier
 * followed by '('), outside comments and string and character literals,
 * starts; n if none. */
static size_t find_call(const char *text, size_t n, const char *const *names)
{
    for (size_t i = 0; i < n;) {
        char ch = text[i];
        if (ch == '"' || ch == '\'') {
            for (i++; i < n && text[i] != ch; i++)
                if (text[i] == '\\')
                    i++;
            i++;
        } else if (ch == '/' && i + 1 < n && text[i + 1] == '*') {
            const char *end = i + 2 < n ? strstr(text + i + 2, "*/") : NULL;
            i = end && (size_t)(end - text) < n ? (size_t)(end - text) + 2 : n;
        } else if (ch == '/' && i + 1 < n && text[i + 1] == '/') {
            while (i < n && text[i] != '\n')
                i++;
        } else if (isalpha((unsigned char)ch) || ch == '_') {
            size_t start = i;
            while (i < n && (isalnum((unsigned char)text[i]) || text[i] == '_'))
                i++;
            size_t j = i;
            while (j < n && (text[j] == ' ' || text[j] == '\t' || text[j] == '\\' ||
                             text[j] == '\n' || text[j] == '\r'))
                j++;
            for (const char *const *nm = names; *nm; nm++)
                if (j < n && text[j] == '(' && i - start == strlen(*nm) &&
                    !memcmp(text + start, *nm, i - start))
                    return start;
        } else {
            i++;
        }
    }
    return n;
}

/* A macro whose body awaits or spawns: the translator reads the source
 * before the preprocessor, so where the macro is used it would see neither
 * (and call the awaited future unawaited, or leave `await` in C). */
static void check_macro_body(Unit *u, TSNode value)
{
    static const char *const dialect[] = {"await", "ac_spawn", "ac_joinset_spawn", NULL};
    if (ts_node_is_null(value))
        return;
    uint32_t s = ts_node_start_byte(value), e = ts_node_end_byte(value);
    size_t at = find_call(u->src.text + s, e - s, dialect);
    if (at == e - s)
        return;
    char *name = xstrndup(u->src.text + s + at, strcspn(u->src.text + s + at, " \t\\\r\n("));
    diag_error(&u->src, s + (uint32_t)at,
               "%s() inside a macro definition: the translator reads async functions before "
               "macros are expanded, so it would not see it; write %s(...) where the macro is "
               "used (the macro may still build the call: await(FETCH(x)))",
               name, name);
    free(name);
}

/* Whether the named ancestors on stack (TSNode *, innermost last) include
 * a statement read as a type, which check_read_as_type reports. */
static bool in_statement_read_as_type(const Vec *stack)
{
    for (int i = stack->len - 1; i > 0; i--)
        if (type_is(*(TSNode *)stack->items[i], "macro_type_specifier") &&
            type_is(*(TSNode *)stack->items[i - 1], "compound_statement"))
            return true;
    return false;
}

/* Whether a declarator child of `decl` declares `name`. */
static bool declares(const Unit *u, TSNode decl, const char *name)
{
    for (uint32_t i = 0; i < ts_node_child_count(decl); i++) {
        TSNode d = ts_node_child(decl, i);
        if (!parse_is_declarator(d))
            continue;
        TSNode id = parse_declarator_ident(d);
        if (!ts_node_is_null(id) && parse_eq(u, id, name))
            return true;
    }
    return false;
}

/* The declarations standing in a block, in order, listed once per block (a
 * long function's every call would otherwise walk its block again). */
static Vec *block_declarations(Unit *u, TSNode block)
{
    Vec *decls = nodemap_get(&u->block_decls, block);
    if (decls)
        return decls;
    decls = xcalloc(1, sizeof *decls);
    TSTreeCursor c = ts_tree_cursor_new(block);
    for (bool more = ts_tree_cursor_goto_first_child(&c); more; more = ts_tree_cursor_goto_next_sibling(&c)) {
        TSNode d = ts_tree_cursor_current_node(&c);
        if (type_is(d, "declaration")) {
            TSNode *keep = xmalloc(sizeof *keep);
            *keep = d;
            vec_push(decls, keep);
        }
    }
    ts_tree_cursor_delete(&c);
    nodemap_put(&u->block_decls, block, decls);
    return decls;
}

bool parse_names_local(Unit *u, TSNode ident)
{
    char *name = parse_text(u, ident);
    uint32_t at = ts_node_start_byte(ident);
    bool found = false;
    for (TSNode p = parse_parent(u, ident); !found && !ts_node_is_null(p); p = parse_parent(u, p)) {
        if (type_is(p, "compound_statement")) {
            Vec *decls = block_declarations(u, p);
            for (int i = 0; i < decls->len && !found; i++) {
                TSNode d = *(TSNode *)decls->items[i];
                if (ts_node_end_byte(d) > at)
                    break;
                found = declares(u, d, name);
            }
        } else if (type_is(p, "for_statement")) {
            TSNode init = child_by_field(p, "initializer");
            found = !ts_node_is_null(init) && type_is(init, "declaration") && declares(u, init, name);
        } else if (type_is(p, "function_definition")) {
            TSNode d = child_by_field(p, "declarator");
            while (!ts_node_is_null(d) && !type_is(d, "function_declarator"))
                d = child_by_field(d, "declarator");
            TSNode params = ts_node_is_null(d) ? d : child_by_field(d, "parameters");
            for (uint32_t i = 0; !ts_node_is_null(params) && i < ts_node_named_child_count(params) && !found; i++) {
                TSNode prm = ts_node_named_child(params, i);
                found = type_is(prm, "parameter_declaration") && declares(u, prm, name);
            }
            break;
        }
    }
    free(name);
    return found;
}

void parse_masked_attrs(const Unit *u, TSNode decl, TSNode declarator, Vec *out)
{
    uint32_t specs_end = ts_node_start_byte(declarator);
    for (uint32_t i = 0; i < ts_node_child_count(decl); i++) {
        TSNode c = ts_node_child(decl, i);
        if (parse_is_declarator(c)) {
            specs_end = ts_node_start_byte(c);
            break;
        }
    }
    /* Its own: up to the `,` or `;` after it. */
    TSNode after = ts_node_next_sibling(declarator);
    uint32_t own_end = ts_node_is_null(after) ? ts_node_end_byte(decl) : ts_node_start_byte(after);
    /* The spans are in source order: the first at or after decl, by halves. */
    const Vec *all = &u->gaps.attrs;
    int lo = 0, hi = all->len;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (((uint32_t *)all->items[mid])[0] < ts_node_start_byte(decl))
            lo = mid + 1;
        else
            hi = mid;
    }
    for (int i = lo; i < all->len; i++) {
        uint32_t *span = all->items[i];
        if (span[0] >= own_end)
            break;
        if (span[1] <= specs_end || (span[0] >= ts_node_start_byte(declarator) && span[1] <= own_end))
            vec_push(out, span);
    }
}

/* Whether text[from, to) holds `name` or `__name__` as a word. */
static bool names_attr(const char *text, uint32_t from, uint32_t to, const char *name)
{
    size_t len = strlen(name);
    for (uint32_t i = from; i + len <= to; i++) {
        if (memcmp(text + i, name, len) != 0)
            continue;
        uint32_t a = i, b = i + (uint32_t)len;
        if (a >= from + 2 && b + 2 <= to && memcmp(text + a - 2, "__", 2) == 0 &&
            memcmp(text + b, "__", 2) == 0) {
            a -= 2;
            b += 2;
        }
        if ((a == from || !c_ident_char(text[a - 1])) && (b == to || !c_ident_char(text[b])))
            return true;
    }
    return false;
}

bool parse_node_within(TSNode inner, TSNode outer)
{
    return ts_node_start_byte(outer) <= ts_node_start_byte(inner) &&
           ts_node_end_byte(inner) <= ts_node_end_byte(outer);
}

bool parse_var_has_attr(const Unit *u, TSNode decl, TSNode declarator, const char *name)
{
    for (uint32_t i = 0; i < ts_node_child_count(decl); i++) {
        TSNode c = ts_node_child(decl, i);
        if (parse_is_declarator(c))
            break;
        if (type_is(c, "attribute_specifier") &&
            names_attr(u->src.text, ts_node_start_byte(c), ts_node_end_byte(c), name))
            return true;
    }
    Vec spans = {0};
    parse_masked_attrs(u, decl, declarator, &spans);
    bool found = false;
    for (int i = 0; i < spans.len && !found; i++) {
        uint32_t *span = spans.items[i];
        found = names_attr(u->src.text, span[0], span[1], name);
    }
    free(spans.items);
    return found;
}

/* Reports `message` at each span (uint32_t[2]) that lies in an async
 * function's body. */
static void refuse_in_async(Unit *u, const Vec *spans, const char *message)
{
    for (int i = 0; i < spans->len; i++) {
        uint32_t *span = spans->items[i];
        if (parse_fn_containing(u, span[0]))
            diag_error(&u->src, span[0], "%s", message);
    }
}

bool parse_unit(Unit *u)
{
    Buf lp = {0};
    for (const char *p = u->src.path; *p; p++) {
        if (*p == '"' || *p == '\\')
            buf_putc(&lp, '\\');
        buf_putc(&lp, *p);
    }
    u->line_path = buf_take(&lp);
    u->parser = ts_parser_new();
    ts_parser_set_language(u->parser, tree_sitter_c());
    /* Node ranges index the original text too: the masked copy has the same
     * length and newlines. */
    u->parse_text = gaps_mask(u->src.text, u->src.len, &u->gaps);
    u->tree = ts_parser_parse_string(u->parser, NULL, u->parse_text, u->src.len);
    if (!u->tree) {
        diag_fatal("%s: tree-sitter could not parse the file", u->src.path);
        return false;
    }
    u->root = ts_tree_root_node(u->tree);
    TSNode bad = first_error(u->root);
    if (!ts_node_is_null(bad)) {
        if (ts_node_is_missing(bad))
            diag_error(&u->src, ts_node_start_byte(bad), "syntax error: expected '%s'",
                       ts_node_type(bad));
        else
            diag_error(&u->src, ts_node_start_byte(bad), "syntax error");
        return false;
    }

    /* One walk records each named node's parent and finds the shapes of
     * grammar/async.scm by hand: running the queries costs more than the
     * rest of the translation (parse_query_agrees checks, in the unit
     * tests, that both find the same). */
    enum { CHUNK = 4096 };
    TSNode *chunk = NULL;
    int used = CHUNK;
    Vec stack = {0}; /* TSNode* of the named ancestors, innermost last */
    Vec depth = {0}; /* for each cursor level: stack.len before it */
    Vec as_types = {0}; /* macro_type_specifier nodes in statement position */
    TSTreeCursor c = ts_tree_cursor_new(u->root);
    for (;;) {
        TSNode n = ts_tree_cursor_current_node(&c);
        TSSymbol t = ts_node_symbol(n);
        bool named = ts_node_is_named(n);
        if (named && stack.len)
            nodemap_put(&u->parents, n, stack.items[stack.len - 1]);
        if (SYM_IS(t, "call_expression")) {
            if ((u->ncalls & (u->ncalls - 1)) == 0) /* 0, 1, 2, 4...: full */
                u->calls = xrealloc(u->calls, (size_t)(u->ncalls ? 2 * u->ncalls : 1) * sizeof *u->calls);
            u->calls[u->ncalls++] = n;
        }
        if (SYM_IS(t, "function_definition") || SYM_IS(t, "declaration")) {
            TSNode type = child_by_field(n, "type");
            TSNode d = child_by_field(n, "declarator");
            if (!ts_node_is_null(type) && type_is(type, "macro_type_specifier") &&
                parse_eq(u, child_by_field(type, "name"), "async") &&
                !ts_node_is_null(d) && type_is(d, "function_declarator")) {
                TSNode name = child_by_field(d, "declarator");
                TSNode params = child_by_field(d, "parameters");
                TSNode body = child_by_field(n, "body");
                TSNode ttype = child_by_field(type, "type");
                bool def = SYM_IS(t, "function_definition");
                int ndecl = 0;
                for (uint32_t i = 0; i < ts_node_child_count(n); i++)
                    ndecl += parse_is_declarator(ts_node_child(n, i));
                bool variadic = false;
                for (uint32_t i = 0; i < ts_node_named_child_count(params); i++)
                    variadic |= type_is(ts_node_named_child(params, i), "variadic_parameter");
                if (ndecl > 1)
                    diag_error(&u->src, ts_node_start_byte(n),
                               "declare one async function per declaration");
                else if (variadic)
                    diag_error(&u->src, ts_node_start_byte(params),
                               "async functions cannot be variadic: the frame stores each "
                               "parameter, and '...' has no type to store");
                else if (type_is(name, "identifier") && (!def || !ts_node_is_null(body)))
                    add_fn(u, n, ttype, name, params, body, def);
            } else if (!ts_node_is_null(type) && type_is(type, "macro_type_specifier") &&
                       parse_eq(u, child_by_field(type, "name"), "async") &&
                       !ts_node_is_null(d) && !type_is(d, "identifier") &&
                       !type_is(d, "init_declarator")) {
                diag_error(&u->src, ts_node_start_byte(d),
                           "write the whole result type inside async(...), as in async(int *) f(void)");
            }
        } else if (SYM_IS(t, "preproc_def") || SYM_IS(t, "preproc_function_def")) {
            check_macro_body(u, child_by_field(n, "value"));
        } else if (SYM_IS(t, "macro_type_specifier") && stack.len &&
                   type_is(*(TSNode *)stack.items[stack.len - 1], "compound_statement")) {
            /* A statement read as a type (see below): checked once the
             * async functions are known. */
            TSNode *p = xmalloc(sizeof *p);
            *p = n;
            vec_push(&as_types, p);
        } else if (SYM_IS(t, "type_identifier") && parse_eq(u, n, "await") &&
                   !in_statement_read_as_type(&stack)) {
            /* `(a * (await(f()), b)) && c`: the parenthesis is read as a
             * cast to a type with `await` in it (and `&& c` as the address
             * of a label). await is never a type: the await was misread. */
            diag_error(&u->src, ts_node_start_byte(n),
                       "the C grammar reads the expression around this await as a type (a cast "
                       "or a declaration: identifiers, '*' and parentheses can be either), so "
                       "the await would be missed; await into a variable first "
                       "(T v = await(...);) or start the operand with something that is not a "
                       "type, such as a number");
        }
        if (ts_tree_cursor_goto_first_child(&c)) {
            vec_push(&depth, (void *)(intptr_t)stack.len);
            if (named) {
                if (used == CHUNK) {
                    chunk = xmalloc(CHUNK * sizeof *chunk);
                    vec_push(&u->parent_chunks, chunk);
                    used = 0;
                }
                chunk[used] = n;
                vec_push(&stack, &chunk[used++]);
            }
            continue;
        }
        while (!ts_tree_cursor_goto_next_sibling(&c)) {
            if (!ts_tree_cursor_goto_parent(&c))
                goto walked;
            stack.len = (int)(intptr_t)depth.items[--depth.len];
        }
    }
walked:
    ts_tree_cursor_delete(&c);
    free(stack.items);
    free(depth.items);
    /* The awaits and spawns among the calls, now that the async functions
     * are known. */
    for (int i = 0; i < u->ncalls; i++) {
        TSNode n = u->calls[i];
        if (parse_is_await(u, n)) {
            add_await(u, n);
        } else if (parse_is_call_to(u, n, "ac_spawn") || parse_is_call_to(u, n, "ac_joinset_spawn")) {
            TSNode *p = xmalloc(sizeof *p);
            *p = n;
            vec_push(&u->spawn_calls, p);
        }
    }
    for (int i = 0; i < as_types.len; i++) {
        check_read_as_type(u, *(TSNode *)as_types.items[i]);
        free(as_types.items[i]);
    }
    free(as_types.items);
    /* A computed goto jumps where the lowering cannot see, and a macro
     * standing as a statement hides what it expands to (gaps.c). */
    refuse_in_async(u, &u->gaps.gotos,
                    "computed goto ('goto *') is not supported in an async function: the "
                    "translator cannot tell where it jumps (use a switch, or move the dispatch "
                    "into a plain function)");
    refuse_in_async(u, &u->gaps.macros,
                    "a macro call standing as a statement without ';' is not supported in an "
                    "async function: the translator cannot see what it expands to (end it with "
                    "';' if it is a statement, or move it into a plain function)");
    return diag_error_count() == 0;
}

int parse_query_agrees(Unit *u)
{
    uint32_t err_off = 0;
    TSQueryError err_type = TSQueryErrorNone;
    TSQuery *q = ts_query_new(tree_sitter_c(), asyncc_query_scm,
                              (uint32_t)strlen(asyncc_query_scm), &err_off, &err_type);
    if (!q)
        return -1;
    TSQueryCursor *qc = ts_query_cursor_new();
    int fns = 0, awaits = 0;
    ts_query_cursor_exec(qc, q, u->root);
    TSQueryMatch m;
    while (ts_query_cursor_next_match(qc, &m)) {
        TSNode kw = {0};
        bool is_await = false;
        for (uint16_t i = 0; i < m.capture_count; i++) {
            uint32_t len;
            const char *cap = ts_query_capture_name_for_id(q, m.captures[i].index, &len);
            if (!strcmp(cap, "async.kw") || !strcmp(cap, "await.kw"))
                kw = m.captures[i].node;
            if (!strcmp(cap, "await.call"))
                is_await = true;
        }
        if (is_await && parse_eq(u, kw, "await"))
            awaits++;
        else if (!is_await && parse_eq(u, kw, "async"))
            fns++;
    }
    ts_query_cursor_delete(qc);
    ts_query_delete(q);
    int mine = u->stray_awaits.len;
    for (int i = 0; i < u->fns.len; i++)
        mine += ((AsyncFn *)u->fns.items[i])->awaits.len;
    return fns == u->fns.len && awaits == mine;
}

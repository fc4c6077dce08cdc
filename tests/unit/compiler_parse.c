/*
 * compiler_parse.c: the syntax pass (compiler/parse.c).
 *
 * Each test parses an in-memory `.ac` text with parse_unit alone (no libclang)
 * and checks the async functions and awaits it finds, the errors it reports
 * (captured with diag_capture and compared as text), and that the walk in
 * parse_unit agrees with the queries of grammar/async.scm. Fork mode keeps
 * diag_error_count(), which is per process, at zero for each test.
 */
#include "compiler.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A parsed unit and what parsing printed. */
typedef struct Parsed {
    Unit u;    /* the unit; u.src.text points into the test's string */
    bool ok;   /* parse_unit's result */
    Buf diags; /* its diagnostics */
} Parsed;

static Parsed *parse(const char *text)
{
    Parsed *p = xcalloc(1, sizeof *p);
    p->u.src.path = "t.ac";
    p->u.src.text = text;
    p->u.src.len = (uint32_t)strlen(text);
    diag_capture(&p->diags);
    p->ok = parse_unit(&p->u);
    diag_capture(NULL);
    return p;
}

static AsyncFn *fn_at(Parsed *p, int i)
{
    ck_assert_int_gt(p->u.fns.len, i);
    return p->u.fns.items[i];
}

static Await *await_at(AsyncFn *fn, int i)
{
    ck_assert_int_gt(fn->awaits.len, i);
    return fn->awaits.items[i];
}

static char *text_of(Parsed *p, TSNode n) { return parse_text(&p->u, n); }

/* ---- async functions -------------------------------------------------------- */

START_TEST(async_definition_is_found_with_result_type_text)
{
    Parsed *p = parse("int plain(void) { return 0; }\n"
                      "async(const char *) greeting(int lang, char **names)\n"
                      "{\n"
                      "    return names[lang];\n"
                      "}\n");
    ck_assert(p->ok);
    ck_assert_int_eq(p->u.fns.len, 1);
    AsyncFn *fn = fn_at(p, 0);
    ck_assert_str_eq(fn->name, "greeting");
    ck_assert_str_eq(fn->ret_type, "const char *");
    ck_assert(!fn->ret_void);
    ck_assert(fn->is_def);
    ck_assert(!fn->is_static);
    ck_assert(!ts_node_is_null(fn->body));
    ck_assert_str_eq(ts_node_type(fn->body), "compound_statement");
    char *params = text_of(p, fn->params);
    ck_assert_str_eq(params, "(int lang, char **names)");
    ck_assert_int_eq(fn->awaits.len, 0);
}
END_TEST

START_TEST(static_async_definition_has_static_flag)
{
    Parsed *p = parse("static async(int) counter(void) { return 1; }\n"
                      "async(int) other(void) { return 2; }\n");
    ck_assert(p->ok);
    ck_assert_int_eq(p->u.fns.len, 2);
    ck_assert_str_eq(fn_at(p, 0)->name, "counter");
    ck_assert(fn_at(p, 0)->is_static);
    ck_assert_str_eq(fn_at(p, 1)->name, "other");
    ck_assert(!fn_at(p, 1)->is_static);
}
END_TEST

START_TEST(async_prototype_is_found_without_body)
{
    Parsed *p = parse("async(unsigned long) fetch(int id, const char *key);\n"
                      "static async(void) tick(void);\n");
    ck_assert(p->ok);
    ck_assert_int_eq(p->u.fns.len, 2);
    AsyncFn *fetch = fn_at(p, 0);
    ck_assert_str_eq(fetch->name, "fetch");
    ck_assert_str_eq(fetch->ret_type, "unsigned long");
    ck_assert(!fetch->is_def);
    ck_assert(ts_node_is_null(fetch->body));
    ck_assert_str_eq(ts_node_type(fetch->node), "declaration");
    AsyncFn *tick = fn_at(p, 1);
    ck_assert_str_eq(tick->ret_type, "void");
    ck_assert(tick->ret_void);
    ck_assert(tick->is_static);
    ck_assert(!tick->is_def);
}
END_TEST

START_TEST(functions_are_listed_in_source_order_and_found_by_name)
{
    Parsed *p = parse("async(int) b(void);\n"
                      "async(int) a(void) { return 1; }\n"
                      "async(int) b(void) { return 2; }\n");
    ck_assert(p->ok);
    ck_assert_int_eq(p->u.fns.len, 3);
    ck_assert_str_eq(fn_at(p, 0)->name, "b");
    ck_assert(!fn_at(p, 0)->is_def);
    ck_assert_str_eq(fn_at(p, 1)->name, "a");
    ck_assert_str_eq(fn_at(p, 2)->name, "b");
    /* The definition is preferred over the earlier prototype. */
    ck_assert_ptr_eq(parse_find_fn(&p->u, "b"), fn_at(p, 2));
    ck_assert_ptr_eq(parse_find_fn(&p->u, "a"), fn_at(p, 1));
    ck_assert_ptr_null(parse_find_fn(&p->u, "c"));
}
END_TEST

START_TEST(prototype_of_several_async_functions_is_rejected)
{
    /* One declaration declaring several async functions would need one
     * frame each from a single node: asyncc asks for one per declaration
     * rather than silently keeping only the first. */
    Parsed *p = parse("async(int) first(void), second(int n);\n");
    ck_assert(!p->ok);
    ck_assert_int_eq(p->u.fns.len, 0);
}
END_TEST

START_TEST(async_in_comments_and_strings_is_not_a_function)
{
    Parsed *p = parse("/* async(int) f(void) { return await(g()); } */\n"
                      "// async(int) h(void);\n"
                      "const char *s = \"async(int) k(void); await(g())\";\n");
    ck_assert(p->ok);
    ck_assert_int_eq(p->u.fns.len, 0);
    ck_assert_int_eq(p->u.stray_awaits.len, 0);
}
END_TEST

START_TEST(result_type_outside_async_is_rejected)
{
    Parsed *p = parse("async(int) *f(void);\n");
    ck_assert(!p->ok);
    ck_assert_str_eq(p->diags.data,
                     "t.ac:1:12: error: write the whole result type inside async(...), as in "
                     "async(int *) f(void)\n"
                     "  async(int) *f(void);\n"
                     "             ^\n");
}
END_TEST

/* ---- awaits ------------------------------------------------------------------ */

START_TEST(awaits_are_in_source_order_with_their_callees)
{
    Parsed *p = parse("async(int) f(int n)\n"
                      "{\n"
                      "    int a = await(first(n));\n"
                      "    if (a)\n"
                      "        await(second());\n"
                      "    return await(third(a, n));\n"
                      "}\n");
    ck_assert(p->ok);
    AsyncFn *fn = fn_at(p, 0);
    ck_assert_int_eq(fn->awaits.len, 3);
    ck_assert_str_eq(await_at(fn, 0)->callee, "first");
    ck_assert_str_eq(await_at(fn, 1)->callee, "second");
    ck_assert_str_eq(await_at(fn, 2)->callee, "third");
    for (int i = 1; i < 3; i++)
        ck_assert_uint_lt(ts_node_start_byte(await_at(fn, i - 1)->node),
                          ts_node_start_byte(await_at(fn, i)->node));
    /* `call` is the awaited call, `node` the whole await(...). */
    ck_assert_str_eq(text_of(p, await_at(fn, 2)->call), "third(a, n)");
    ck_assert_str_eq(text_of(p, await_at(fn, 2)->node), "await(third(a, n))");
    /* The anchor is the innermost statement. */
    ck_assert_str_eq(ts_node_type(await_at(fn, 0)->anchor), "declaration");
    ck_assert_str_eq(ts_node_type(await_at(fn, 1)->anchor), "expression_statement");
    ck_assert_str_eq(ts_node_type(await_at(fn, 2)->anchor), "return_statement");
}
END_TEST

START_TEST(await_in_call_argument_is_found)
{
    Parsed *p = parse("async(int) f(void)\n"
                      "{\n"
                      "    return printf(\"%d %d\\n\", 1, await(value(2)));\n"
                      "}\n");
    ck_assert(p->ok);
    AsyncFn *fn = fn_at(p, 0);
    ck_assert_int_eq(fn->awaits.len, 1);
    ck_assert_str_eq(await_at(fn, 0)->callee, "value");
    ck_assert_str_eq(ts_node_type(await_at(fn, 0)->anchor), "return_statement");
}
END_TEST

START_TEST(nested_awaits_are_both_found_outer_first)
{
    Parsed *p = parse("async(int) f(void)\n"
                      "{\n"
                      "    return await(outer(await(inner())));\n"
                      "}\n");
    ck_assert(p->ok);
    AsyncFn *fn = fn_at(p, 0);
    ck_assert_int_eq(fn->awaits.len, 2);
    ck_assert_str_eq(await_at(fn, 0)->callee, "outer");
    ck_assert_str_eq(await_at(fn, 1)->callee, "inner");
}
END_TEST

START_TEST(await_in_loop_condition_is_anchored_at_the_loop)
{
    Parsed *p = parse("async(int) f(void)\n"
                      "{\n"
                      "    while (await(more()))\n"
                      "        ;\n"
                      "    for (int i = 0; i < await(limit()); i++) {}\n"
                      "    return 0;\n"
                      "}\n");
    ck_assert(p->ok);
    AsyncFn *fn = fn_at(p, 0);
    ck_assert_int_eq(fn->awaits.len, 2);
    ck_assert_str_eq(ts_node_type(await_at(fn, 0)->anchor), "while_statement");
    ck_assert_str_eq(ts_node_type(await_at(fn, 1)->anchor), "for_statement");
}
END_TEST

START_TEST(boxed_await_names_the_inner_callee)
{
    Parsed *p = parse("async(int) f(int n)\n"
                      "{\n"
                      "    return n ? await(ac_box(f(n - 1))) : 0;\n"
                      "}\n");
    ck_assert(p->ok);
    AsyncFn *fn = fn_at(p, 0);
    ck_assert_int_eq(fn->awaits.len, 1);
    Await *aw = await_at(fn, 0);
    ck_assert(aw->boxed);
    ck_assert_str_eq(aw->callee, "f");
    ck_assert_str_eq(text_of(p, aw->call), "f(n - 1)");
}
END_TEST

START_TEST(awaits_outside_async_functions_are_collected_as_stray)
{
    Parsed *p = parse("int sync(void)\n"
                      "{\n"
                      "    return await(g());\n"
                      "}\n"
                      "async(int) f(void) { return await(g()); }\n"
                      "int x = sizeof(await(g()));\n");
    ck_assert(p->ok); /* rejected later, by liveness_run */
    ck_assert_int_eq(p->u.stray_awaits.len, 2);
    TSNode first = *(TSNode *)p->u.stray_awaits.items[0];
    TSNode second = *(TSNode *)p->u.stray_awaits.items[1];
    ck_assert_uint_eq(ts_node_start_point(first).row, 2);
    ck_assert_uint_eq(ts_node_start_point(second).row, 5);
    ck_assert_int_eq(fn_at(p, 0)->awaits.len, 1);
}
END_TEST

START_TEST(await_of_a_prototype_is_stray)
{
    /* A prototype has no body for the await to belong to. */
    Parsed *p = parse("async(int) g(void);\n"
                      "async(int) f(int x[sizeof await(g())]);\n");
    ck_assert_int_eq(p->u.fns.len, 2);
    ck_assert_int_eq(p->u.stray_awaits.len, 1);
}
END_TEST

START_TEST(await_with_no_argument_is_rejected)
{
    Parsed *p = parse("async(int) f(void)\n"
                      "{\n"
                      "    return await();\n"
                      "}\n");
    ck_assert(!p->ok);
    ck_assert_str_eq(p->diags.data,
                     "t.ac:3:12: error: await() takes exactly one argument, the future to await\n"
                     "      return await();\n"
                     "             ^\n");
    ck_assert_int_eq(fn_at(p, 0)->awaits.len, 0);
}
END_TEST

START_TEST(await_with_two_arguments_is_rejected)
{
    Parsed *p = parse("async(int) f(void)\n"
                      "{\n"
                      "    return await(g(), h());\n"
                      "}\n");
    ck_assert(!p->ok);
    ck_assert_str_eq(p->diags.data,
                     "t.ac:3:12: error: await() takes exactly one argument, the future to await\n"
                     "      return await(g(), h());\n"
                     "             ^\n");
    ck_assert_int_eq(diag_error_count(), 1);
}
END_TEST

START_TEST(await_of_a_comment_only_is_rejected)
{
    Parsed *p = parse("async(int) f(void) { return await(/* nothing */); }\n");
    ck_assert(!p->ok);
    ck_assert_ptr_nonnull(strstr(p->diags.data, "t.ac:1:29: error: await() takes exactly one argument"));
}
END_TEST

START_TEST(await_of_a_constant_is_rejected)
{
    Parsed *p = parse("async(int) f(void)\n"
                      "{\n"
                      "    return await(3);\n"
                      "}\n");
    ck_assert(!p->ok);
    ck_assert_str_eq(p->diags.data,
                     "t.ac:3:18: error: await() needs a call to an async function, as in await(f(x))\n"
                     "      return await(3);\n"
                     "                   ^\n");
    ck_assert_int_eq(fn_at(p, 0)->awaits.len, 0);
}
END_TEST

START_TEST(await_of_a_call_through_a_pointer_is_rejected)
{
    Parsed *p = parse("async(int) f(int (*g)(void)) { return await((*g)()); }\n");
    ck_assert(!p->ok);
    ck_assert_ptr_nonnull(
        strstr(p->diags.data, "error: await() needs a call to an async function"));
}
END_TEST

START_TEST(await_of_an_empty_box_is_rejected)
{
    Parsed *p = parse("async(int) f(void) { return await(ac_box()); }\n");
    ck_assert(!p->ok);
    ck_assert_ptr_nonnull(strstr(p->diags.data,
                                 "t.ac:1:35: error: await() needs a call to an async function"));
}
END_TEST

/* ---- syntax errors ------------------------------------------------------------ */

/* The column of the diagnostic in `diags` ("t.ac:LINE:COL: ..."), after checking
 * that the caret under the quoted line stands in that column. */
static int reported_column(const char *diags, int want_line)
{
    int line = 0, col = 0;
    ck_assert_int_eq(sscanf(diags, "t.ac:%d:%d:", &line, &col), 2);
    ck_assert_int_eq(line, want_line);
    const char *caret = strrchr(diags, '^');
    ck_assert_ptr_nonnull(caret);
    const char *bol = caret;
    while (bol > diags && bol[-1] != '\n')
        bol--;
    ck_assert_int_eq((int)(caret - bol), 2 + col - 1);
    return col;
}

START_TEST(syntax_error_is_reported_with_position)
{
    Parsed *p = parse("#include <asyncc.h>\n"
                      "async(int) f(void)\n"
                      "{\n"
                      "    int x = 1 +* ;\n"
                      "    return x;\n"
                      "}\n");
    ck_assert(!p->ok);
    ck_assert_int_eq(diag_error_count(), 1);
    ck_assert_ptr_nonnull(strstr(p->diags.data, ": error: syntax error"));
    ck_assert_ptr_nonnull(strstr(p->diags.data, "\n      int x = 1 +* ;\n"));
    /* Within `1 +* ;`, on line 4. */
    int col = reported_column(p->diags.data, 4);
    ck_assert_int_ge(col, 13);
    ck_assert_int_le(col, 18);
}
END_TEST

START_TEST(missing_token_is_named)
{
    Parsed *p = parse("async(int) f(void)\n"
                      "{\n"
                      "    return 1\n"
                      "}\n");
    ck_assert(!p->ok);
    ck_assert_str_eq(p->diags.data, "t.ac:3:13: error: syntax error: expected ';'\n"
                                    "      return 1\n"
                                    "              ^\n");
}
END_TEST

START_TEST(unterminated_await_is_a_syntax_error_on_its_line)
{
    Parsed *p = parse("async(int) f(void)\n"
                      "{\n"
                      "    return await(g()\n"
                      "}\n");
    ck_assert(!p->ok);
    ck_assert_ptr_nonnull(strstr(p->diags.data, ": error: syntax error"));
    int col = reported_column(p->diags.data, 3);
    ck_assert_int_ge(col, 5);
    ck_assert_int_le(col, 21);
}
END_TEST

START_TEST(first_of_several_syntax_errors_is_the_one_reported)
{
    Parsed *p = parse("int a = ;\n"
                      "int b = ;\n");
    ck_assert(!p->ok);
    ck_assert_int_eq(diag_error_count(), 1);
    ck_assert_ptr_nonnull(strstr(p->diags.data, ": error: syntax error"));
    ck_assert_ptr_null(strstr(p->diags.data, "int b"));
    int col = reported_column(p->diags.data, 1); /* between `=` and `;` */
    ck_assert_int_ge(col, 8);
    ck_assert_int_le(col, 9);
}
END_TEST

START_TEST(unclosed_body_is_a_syntax_error)
{
    Parsed *p = parse("async(int) f(void)\n{\n    return 1;\n");
    ck_assert(!p->ok);
    ck_assert_ptr_nonnull(strstr(p->diags.data, "error: syntax error"));
}
END_TEST

/* ---- helpers ----------------------------------------------------------------- */

START_TEST(parents_are_recorded_for_named_nodes)
{
    Parsed *p = parse("async(int) f(int n) { return await(g(n)) + 1; }\n");
    ck_assert(p->ok);
    Await *aw = await_at(fn_at(p, 0), 0);
    TSNode parent = parse_parent(&p->u, aw->node);
    ck_assert_str_eq(ts_node_type(parent), "binary_expression");
    ck_assert(ts_node_eq(parse_parent(&p->u, aw->call), ts_node_child_by_field_name(aw->node, "arguments", 9)));
    ck_assert(ts_node_is_null(parse_parent(&p->u, p->u.root)));
    ck_assert(parse_is_await(&p->u, aw->node));
    ck_assert(!parse_is_await(&p->u, aw->call));
    ck_assert(parse_is_call_to(&p->u, aw->call, "g"));
}
END_TEST

START_TEST(declarator_identifier_is_found_through_pointers_and_arrays)
{
    Parsed *p = parse("int *(*table[3])(void), (*fp)(int), fn(int);\n");
    ck_assert(p->ok);
    TSNode decl = ts_node_named_child(p->u.root, 0);
    const char *want[] = {"table", "fp", NULL};
    int found = 0;
    for (uint32_t i = 0; i < ts_node_child_count(decl); i++) {
        TSNode c = ts_node_child(decl, i);
        if (!parse_is_declarator(c) || !strcmp(ts_node_type(c), "primitive_type"))
            continue;
        TSNode id = parse_declarator_ident(c);
        if (found < 2) {
            ck_assert(!ts_node_is_null(id));
            ck_assert(parse_eq(&p->u, id, want[found]));
        } else {
            /* `fn(int)` declares a function, not a variable. */
            ck_assert(ts_node_is_null(id));
        }
        found++;
    }
    ck_assert_int_eq(found, 3);
}
END_TEST

START_TEST(statement_of_an_expression_is_its_innermost_statement)
{
    Parsed *p = parse("async(int) f(int n)\n"
                      "{\n"
                      "    for (int i = 0; i < await(g(n + 1)); i++)\n"
                      "        n = h(n * 2);\n"
                      "    return n;\n"
                      "}\n");
    ck_assert(p->ok);
    Await *aw = await_at(fn_at(p, 0), 0);
    /* An await in a loop header belongs to the loop. */
    TSNode arg = ts_node_named_child(ts_node_child_by_field_name(aw->call, "arguments", 9), 0);
    ck_assert_str_eq(text_of(p, arg), "n + 1");
    TSNode st = parse_statement_of(&p->u, arg);
    ck_assert_str_eq(ts_node_type(st), "for_statement");
    ck_assert(ts_node_eq(st, aw->anchor));
    /* Asked again (now from the memo), and for a node inside the same statement. */
    ck_assert(ts_node_eq(parse_statement_of(&p->u, arg), st));
    ck_assert(ts_node_eq(parse_statement_of(&p->u, aw->node), st));
    /* The loop body's own statement, and a statement is its own. */
    TSNode body = ts_node_child_by_field_name(st, "body", 4);
    ck_assert_str_eq(ts_node_type(body), "expression_statement");
    TSNode call = ts_node_child_by_field_name(ts_node_named_child(body, 0), "right", 5);
    ck_assert_str_eq(text_of(p, call), "h(n * 2)");
    ck_assert(ts_node_eq(parse_statement_of(&p->u, call), body));
    ck_assert(ts_node_eq(parse_statement_of(&p->u, body), body));
    ck_assert(parse_is_statement(body));
    ck_assert(parse_is_statement(fn_at(p, 0)->body));
    ck_assert(!parse_is_statement(call));
}
END_TEST

/* ---- the queries of grammar/async.scm agree with the walk ---------------------- */

static void assert_query_agrees(const char *text)
{
    Parsed *p = parse(text);
    ck_assert_msg(p->ok, "parse failed: %.2000s", p->diags.data ? p->diags.data : "");
    ck_assert_int_eq(parse_query_agrees(&p->u), 1);
}

START_TEST(query_agrees_on_definitions_and_prototypes)
{
    assert_query_agrees("async(int) g(int);\n"
                        "static async(void) h(void);\n"
                        "async(int) f(int x) { return await(g(x)); }\n"
                        "static async(void) h(void) { await(ac_yield()); }\n");
}
END_TEST

START_TEST(query_agrees_on_nested_awaits)
{
    assert_query_agrees("async(int) f(void)\n"
                        "{\n"
                        "    int a = await(outer(await(mid(await(inner())))));\n"
                        "    return a && await(g()) ? await(h()) : (await(k()), 0);\n"
                        "}\n");
}
END_TEST

START_TEST(query_agrees_on_stray_and_boxed_awaits)
{
    assert_query_agrees("int sync(void) { return await(g()); }\n"
                        "async(int) f(int n) { return n ? await(ac_box(f(n - 1))) : 0; }\n");
}
END_TEST

START_TEST(query_agrees_on_a_file_without_async_code)
{
    assert_query_agrees("#include <stdio.h>\nint main(void) { puts(\"async(int)\"); return 0; }\n");
}
END_TEST

START_TEST(query_agrees_on_the_samples)
{
    const char *files[] = {"samples/hello.ac", "bench/frame_a.ac", "bench/frame_b.ac",
                           "bench/frame_c.ac"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        FILE *f = fopen(files[i], "rb");
        ck_assert_msg(f != NULL, "cannot open %s (tests run from the repository root)", files[i]);
        Buf b = {0};
        char chunk[4096];
        size_t n;
        while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
            buf_putn(&b, chunk, n);
        fclose(f);
        Parsed *p = parse(b.data);
        ck_assert(p->ok);
        ck_assert_int_gt(p->u.fns.len, 0);
        ck_assert_int_eq(parse_query_agrees(&p->u), 1);
    }
}
END_TEST

START_TEST(query_disagrees_when_the_walk_misses_something)
{
    /* The check can fail: forget a function and it says so. */
    Parsed *p = parse("async(int) f(void) { return await(g()); }\n");
    ck_assert(p->ok);
    ck_assert_int_eq(parse_query_agrees(&p->u), 1);
    p->u.fns.len = 0;
    ck_assert_int_eq(parse_query_agrees(&p->u), 0);
}
END_TEST

/* ---- node types by symbol (compiler.h) ---------------------------------------- */

const TSLanguage *tree_sitter_c(void);

START_TEST(symbol_names_agree_with_the_grammar_for_every_symbol)
{
    static const char *const names[] = {
        "call_expression", "identifier", "type_identifier", "field_identifier",
        "statement_identifier", "expression_statement", "declaration", "ERROR", "comment",
    };
    const TSLanguage *lang = tree_sitter_c();
    uint32_t count = ts_language_symbol_count(lang);
    ck_assert_uint_le(count, SYM_CACHE); /* else the caches only cover part */
    size_t n = sizeof names / sizeof *names;
    for (size_t k = 0; k < n; k++) {
        /* names[k] alone, then with the next name: a list of two */
        const char *const one[] = {names[k], NULL};
        const char *const two[] = {names[k], names[(k + 1) % n], NULL};
        uint8_t cache1[SYM_CACHE] = {0}, cache2[SYM_CACHE] = {0};
        for (int pass = 0; pass < 2; pass++) { /* the second pass answers from the cache */
            for (uint32_t s = 0; s <= count; s++) {
                TSSymbol sym = s == count ? (TSSymbol)-1 /* ERROR */ : (TSSymbol)s;
                const char *name = ts_language_symbol_name(lang, sym);
                bool want = strcmp(name, one[0]) == 0;
                ck_assert_msg(sym_in(sym, one, cache1) == want, "symbol %u, %s, pass %d",
                              (unsigned)sym, one[0], pass);
                want = want || strcmp(name, two[1]) == 0;
                ck_assert_msg(sym_in(sym, two, cache2) == want, "symbol %u, %s or %s, pass %d",
                              (unsigned)sym, two[0], two[1], pass);
            }
        }
    }
}
END_TEST

START_TEST(type_is_agrees_with_node_type_on_every_node)
{
    /* Aliased nodes (type_identifier, field_identifier are identifiers
     * renamed by the grammar) and an ERROR node included. */
    Parsed *p = parse("typedef struct s { int x; } T;\n"
                      "static T t;\n"
                      "int f(T *q) { lbl: q->x = g(1, h()); goto lbl; }\n"
                      "int e = ) ;\n");
    ck_assert(!p->ok);
    int seen[4] = {0};
    TSTreeCursor c = ts_tree_cursor_new(p->u.root);
    for (;;) {
        TSNode n = ts_tree_cursor_current_node(&c);
        const char *t = ts_node_type(n);
        ck_assert_int_eq(type_is(n, "identifier"), strcmp(t, "identifier") == 0);
        ck_assert_int_eq(type_is(n, "type_identifier"), strcmp(t, "type_identifier") == 0);
        ck_assert_int_eq(type_is(n, "field_identifier"), strcmp(t, "field_identifier") == 0);
        ck_assert_int_eq(type_is(n, "ERROR"), strcmp(t, "ERROR") == 0);
        seen[0] += type_is(n, "identifier");
        seen[1] += type_is(n, "type_identifier");
        seen[2] += type_is(n, "field_identifier");
        seen[3] += type_is(n, "ERROR");
        if (ts_tree_cursor_goto_first_child(&c))
            continue;
        while (!ts_tree_cursor_goto_next_sibling(&c))
            if (!ts_tree_cursor_goto_parent(&c))
                goto walked;
    }
walked:
    ts_tree_cursor_delete(&c);
    for (int i = 0; i < 4; i++)
        ck_assert_int_gt(seen[i], 0);
}
END_TEST

START_TEST(calls_are_recorded_in_source_order)
{
    Parsed *p = parse("int a = 1;\n"
                      "int f(void) { return g(h(1), k()) + m(); }\n"
                      "async(int) n(void) { return await(f()); }\n");
    ck_assert(p->ok);
    static const char *const want[] = {"g(h(1), k())", "h(1)", "k()", "m()", "await(f())", "f()"};
    ck_assert_int_eq(p->u.ncalls, 6);
    for (int i = 0; i < p->u.ncalls; i++)
        ck_assert_str_eq(text_of(p, p->u.calls[i]), want[i]);
}
END_TEST

/* ---- C the stock grammar rejects (gaps.c) ------------------------------------ */

/* The spans of computed gotos and statement macros the last masks_to
 * recorded. */
static Vec last_gotos, last_macros;

/* Checks that gaps_mask turns text into want (NULL: text unchanged), which
 * keeps its length and newlines; returns the attribute spans it recorded
 * (the gotos' are left in last_gotos). */
static Vec masks_to(const char *text, const char *want)
{
    GapSpans gaps = {0};
    uint32_t len = (uint32_t)strlen(text);
    char *m = gaps_mask(text, len, &gaps);
    ck_assert_str_eq(m, want ? want : text);
    for (uint32_t i = 0; i < len; i++)
        ck_assert_int_eq(text[i] == '\n', m[i] == '\n');
    free(m);
    last_gotos = gaps.gotos;
    last_macros = gaps.macros;
    return gaps.attrs;
}

START_TEST(grammar_gaps_are_rewritten_in_place)
{
    Vec attrs = masks_to("static _Thread_local int a;\n"
                         "static _Atomic(long) b;\n"
                         "double _Complex c;\n"
                         "int d(double _Complex z) { __real__ z = 1; return __imag__ z; }\n"
                         "int e(int x) { switch (x) { case 1 ... 3: return 1; } return 0; }\n"
                         "int f(va_list ap) { return *va_arg(ap, int (*)[2])[0]; }\n"
                         "void g(void **p) { goto *p[0]; goto out; out:; }\n"
                         "_Pragma(\"once\") int h;\n"
                         "int k(int x) { switch (x) { case 1: x++; __attribute__((fallthrough)); case 2:; } }\n"
                         "struct r { unsigned a : 3; unsigned : 0; int :4; char c[2 ? 1 : 2]; };\n",
                         "static __thread      int a;\n"
                         "static _Atomix(long) b;\n"
                         "double volatile c;\n"
                         "int d(double volatile z) { *        z = 1; return *        z; }\n"
                         "int e(int x) { switch (x) { case 1 +   3: return 1; } return 0; }\n"
                         "int f(va_list ap) { return *va_arg(ap, 0         )[0]; }\n"
                         "void g(void **p) {      *p[0]; goto out; out:; }\n"
                         "/*           */ int h;\n"
                         "int k(int x) { switch (x) { case 1: x++; /*                        */; case 2:; } }\n"
                         "struct r { unsigned a : 3; unsigned    ; int   ; char c[2 ? 1 : 2]; };\n");
    ck_assert_int_eq(attrs.len, 0);
    ck_assert_int_eq(last_gotos.len, 1); /* goto *p[0], not goto out */
}
END_TEST

/* <complex.h>'s macros next to a floating type, in every order and use;
 * a variable named complex (no <complex.h>) is left as it is. */
START_TEST(complex_h_macros_are_read_as_qualifiers)
{
    masks_to("double complex z; complex float w; long double complex *p;\n"
             "double f(double complex a) { return sizeof(float complex) + (double complex)1; }\n"
             "float imaginary i;\n",
             "double _Atomic z; _Atomic float w; long double _Atomic *p;\n"
             "double f(double _Atomic a) { return sizeof(float _Atomic) + (double _Atomic)1; }\n"
             "float _Noreturn i;\n");
    masks_to("double complex; double complex = 1.0; double complex, x; float complex[4];\n"
             "int g(void) { complex = 2; return complex + imaginary; }\n",
             NULL);
}
END_TEST

/* typeof of an expression around one variable, masked down to it; other
 * operands left alone. */
START_TEST(typeof_of_an_expression_is_masked_to_its_variable)
{
    masks_to("void f(int *a, struct n *p) { typeof(*a) t; __typeof__(p->next) m; typeof(a[0]) z; }\n",
             "void f(int *a, struct n *p) { typeof( a) t; __typeof__(p      ) m; typeof(a   ) z; }\n");
    masks_to("void g(int x, int y) { typeof(x) a; typeof(int) b; typeof(struct n *) c;\n"
             "    typeof(x + y) d; typeof(*(int *)x) e; typeof(sizeof x) f; }\n",
             NULL);
}
END_TEST

/* GNU's alternate keywords, each as a qualifier of its length. */
START_TEST(gnu_alternate_keywords_are_read_as_qualifiers)
{
    masks_to("__const int a; __const__ char *b; __volatile__ int c; __signed int d;\n"
             "int *__volatile__ e; const int __const_x; int __signed_y;\n",
             "_Atomic int a; _Noreturn char *b; __restrict__ int c; restrict int d;\n"
             "int *__restrict__ e; const int __const_x; int __signed_y;\n");
}
END_TEST

START_TEST(grammar_gaps_leave_comments_strings_and_directives_alone)
{
    Vec attrs = masks_to("/* _Thread_local 1 ... 2 */ // _Complex\n"
                         "const char *s = \"_Atomic(int) case 1 ... 2:\", c = '\\'';\n"
                         "#define TL _Thread_local __attribute__((x))\n"
                         "int g(int n, ...);\n"
                         "int a[] = { [0 ... 2] = 1 };\n"
                         "_Atomic int q;\n",
                         NULL);
    ck_assert_int_eq(attrs.len, 0);
    ck_assert_int_eq(last_gotos.len, 0);
}
END_TEST

START_TEST(a_macro_standing_as_a_statement_is_read_as_a_comment)
{
    Vec attrs = masks_to("const char *name(int c)\n"
                         "{\n"
                         "    switch (c) {\n"
                         "        COLORS(NAME_CASE)\n"
                         "#undef NAME_CASE\n"
                         "    }\n"
                         "    LOG(c)\n"
                         "}\n"
                         "int t[] = {\n"
                         "    ROW(1)\n"
                         "};\n"
                         "void g(void) {\n"
                         "    ac_handle(int) h;\n"
                         "    f(1) + 2;\n"
                         "    SPAWN(1)\n"
                         "    return;\n"
                         "}\n",
                         "const char *name(int c)\n"
                         "{\n"
                         "    switch (c) {\n"
                         "        /*             */\n"
                         "#undef NAME_CASE\n"
                         "    }\n"
                         "    /*  */\n"
                         "}\n"
                         "int t[] = {\n"
                         "    ROW(1)\n"
                         "};\n"
                         "void g(void) {\n"
                         "    ac_handle(int) h;\n"
                         "    f(1) + 2;\n"
                         "    /*    */\n"
                         "    return;\n"
                         "}\n");
    ck_assert_int_eq(attrs.len, 0);
    ck_assert_int_eq(last_macros.len, 3);
}
END_TEST

START_TEST(attributes_after_declarators_are_blanked_and_recorded)
{
    const char *text = "int x __attribute__((aligned(16))) = 1, y;\n"
                       "int a[2] __attribute__((unused)) __attribute__((used));\n"
                       "__attribute__((unused)) static int b;\n"
                       "void f(void) __attribute__((cold));\n";
    Vec attrs = masks_to(text, "int x                              = 1, y;\n"
                               "int a[2]                                              ;\n"
                               "__attribute__((unused)) static int b;\n"
                               "void f(void) __attribute__((cold));\n");
    ck_assert_int_eq(attrs.len, 3);
    static const char *const want[] = {"__attribute__((aligned(16)))", "__attribute__((unused))",
                                       "__attribute__((used))"};
    for (int i = 0; i < 3; i++) {
        uint32_t *span = attrs.items[i];
        ck_assert_uint_eq(span[1] - span[0], strlen(want[i]));
        ck_assert(strncmp(text + span[0], want[i], span[1] - span[0]) == 0);
    }
}
END_TEST

START_TEST(grammar_gaps_parse_and_keep_the_original_text)
{
    Parsed *p = parse("static _Thread_local int n;\n"
                      "async(int) f(int k) { _Atomic(int) c = k; int w __attribute__((aligned(8))) = k;\n"
                      "    switch (k) { case 1 ... 2: c++; }\n"
                      "    return await(g(c)) + w + n; }\n");
    ck_assert_msg(p->ok, "%s", p->diags.data ? p->diags.data : "");
    Await *aw = await_at(fn_at(p, 0), 0);
    ck_assert_str_eq(text_of(p, aw->call), "g(c)");
    /* The tree's nodes span the original bytes. */
    TSNode decl = ts_node_named_child(p->u.root, 0);
    ck_assert_str_eq(text_of(p, decl), "static _Thread_local int n;");
}
END_TEST

static Suite *parse_suite(void)
{
    Suite *s = suite_create("compiler_parse");
    TCase *tc = tcase_create("functions");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, async_definition_is_found_with_result_type_text);
    tcase_add_test(tc, static_async_definition_has_static_flag);
    tcase_add_test(tc, async_prototype_is_found_without_body);
    tcase_add_test(tc, functions_are_listed_in_source_order_and_found_by_name);
    tcase_add_test(tc, prototype_of_several_async_functions_is_rejected);
    tcase_add_test(tc, async_in_comments_and_strings_is_not_a_function);
    tcase_add_test(tc, result_type_outside_async_is_rejected);
    suite_add_tcase(s, tc);

    tc = tcase_create("awaits");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, awaits_are_in_source_order_with_their_callees);
    tcase_add_test(tc, await_in_call_argument_is_found);
    tcase_add_test(tc, nested_awaits_are_both_found_outer_first);
    tcase_add_test(tc, await_in_loop_condition_is_anchored_at_the_loop);
    tcase_add_test(tc, boxed_await_names_the_inner_callee);
    tcase_add_test(tc, awaits_outside_async_functions_are_collected_as_stray);
    tcase_add_test(tc, await_of_a_prototype_is_stray);
    tcase_add_test(tc, await_with_no_argument_is_rejected);
    tcase_add_test(tc, await_with_two_arguments_is_rejected);
    tcase_add_test(tc, await_of_a_comment_only_is_rejected);
    tcase_add_test(tc, await_of_a_constant_is_rejected);
    tcase_add_test(tc, await_of_a_call_through_a_pointer_is_rejected);
    tcase_add_test(tc, await_of_an_empty_box_is_rejected);
    suite_add_tcase(s, tc);

    tc = tcase_create("syntax");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, syntax_error_is_reported_with_position);
    tcase_add_test(tc, missing_token_is_named);
    tcase_add_test(tc, unterminated_await_is_a_syntax_error_on_its_line);
    tcase_add_test(tc, first_of_several_syntax_errors_is_the_one_reported);
    tcase_add_test(tc, unclosed_body_is_a_syntax_error);
    tcase_add_test(tc, parents_are_recorded_for_named_nodes);
    tcase_add_test(tc, statement_of_an_expression_is_its_innermost_statement);
    tcase_add_test(tc, declarator_identifier_is_found_through_pointers_and_arrays);
    tcase_add_test(tc, symbol_names_agree_with_the_grammar_for_every_symbol);
    tcase_add_test(tc, type_is_agrees_with_node_type_on_every_node);
    tcase_add_test(tc, calls_are_recorded_in_source_order);
    tcase_add_test(tc, grammar_gaps_are_rewritten_in_place);
    tcase_add_test(tc, complex_h_macros_are_read_as_qualifiers);
    tcase_add_test(tc, gnu_alternate_keywords_are_read_as_qualifiers);
    tcase_add_test(tc, typeof_of_an_expression_is_masked_to_its_variable);
    tcase_add_test(tc, grammar_gaps_leave_comments_strings_and_directives_alone);
    tcase_add_test(tc, attributes_after_declarators_are_blanked_and_recorded);
    tcase_add_test(tc, a_macro_standing_as_a_statement_is_read_as_a_comment);
    tcase_add_test(tc, grammar_gaps_parse_and_keep_the_original_text);
    suite_add_tcase(s, tc);

    tc = tcase_create("queries");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, query_agrees_on_definitions_and_prototypes);
    tcase_add_test(tc, query_agrees_on_nested_awaits);
    tcase_add_test(tc, query_agrees_on_stray_and_boxed_awaits);
    tcase_add_test(tc, query_agrees_on_a_file_without_async_code);
    tcase_add_test(tc, query_agrees_on_the_samples);
    tcase_add_test(tc, query_disagrees_when_the_walk_misses_something);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    if (access("samples/hello.ac", R_OK) != 0) {
        fprintf(stderr, "compiler_parse: run from the repository root (samples/hello.ac not "
                        "found)\n");
        return EXIT_FAILURE;
    }
    SRunner *sr = srunner_create(parse_suite());
    srunner_set_fork_status(sr, CK_FORK); /* diag_error_count() is per process */
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

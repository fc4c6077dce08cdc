/*
 * compiler_lower.c: async function bodies become poll function bodies
 * (compiler/lower.c).
 *
 * Each test runs sema_run (with runtime/include, so the tests run from the
 * repository root), parse_unit, liveness_run and lower_fn on an in-memory
 * `.ac` text, as compiler/main.c's translate() does, and checks the text of
 * fn->poll_text: exact lines where the shape is the specification (the await
 * expansion, returns), and the order of fragments where it is evaluation
 * order that matters. Fork mode keeps diag_error_count(), which is per
 * process, at zero for each test.
 */
#include "compiler.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A unit after lowering. */
typedef struct Lowered {
    Unit u;    /* the unit */
    bool ok;   /* every pass succeeded */
    Buf diags; /* their diagnostics */
} Lowered;

static Lowered *lower(const char *text)
{
    Lowered *l = xcalloc(1, sizeof *l);
    l->u.src.path = "t.ac";
    l->u.src.text = text;
    l->u.src.len = (uint32_t)strlen(text);
    diag_capture(&l->diags);
    l->u.sema = sema_run(&l->u, NULL, 0, "runtime/include");
    l->ok = l->u.sema && parse_unit(&l->u) && liveness_run(&l->u);
    if (l->ok)
        for (int i = 0; i < l->u.fns.len; i++) {
            AsyncFn *fn = l->u.fns.items[i];
            if (fn->is_def)
                l->ok = lower_fn(&l->u, fn) && l->ok;
        }
    diag_capture(NULL);
    ck_assert_msg(l->ok, "translation failed:\n%.2000s", l->diags.data ? l->diags.data : "");
    return l;
}

/* The poll body of `name`. */
static const char *poll_of(Lowered *l, const char *name)
{
    AsyncFn *fn = parse_find_fn(&l->u, name);
    ck_assert_msg(fn && fn->poll_text, "no lowered async function %s", name);
    return fn->poll_text;
}

/* Where `what` first occurs in `text`, failing the test if it does not. */
static const char *find(const char *text, const char *what)
{
    const char *p = strstr(text, what);
    ck_assert_msg(p != NULL, "expected\n%s\nin\n%.2000s", what, text);
    return p;
}

/* Where `what` first occurs in `text` after `from`. */
static const char *find_after(const char *text, const char *from, const char *what)
{
    return find(find(text, from) + strlen(from), what);
}

static int count(const char *text, const char *what)
{
    int n = 0;
    for (const char *p = strstr(text, what); p; p = strstr(p + 1, what))
        n++;
    return n;
}

/* Asserts that the fragments occur in this order. */
static void assert_in_order(const char *text, const char *const *frags, int n)
{
    const char *at = text;
    for (int i = 0; i < n; i++) {
        const char *p = strstr(at, frags[i]);
        ck_assert_msg(p != NULL, "expected\n%s\nafter\n%s\nin\n%.2000s", frags[i],
                      i ? frags[i - 1] : "the start", text);
        at = p + strlen(frags[i]);
    }
}

#define ORDER(text, ...)                                                                        \
    do {                                                                                        \
        const char *const frags_[] = {__VA_ARGS__};                                             \
        assert_in_order(text, frags_, (int)(sizeof frags_ / sizeof *frags_));                  \
    } while (0)

static const char leaf[] = "#include <asyncc.h>\n"
                           "static async(int) leaf(void) { await(ac_yield()); return 1; }\n";

static char *with_leaf(const char *body) { return xasprintf("%s%s", leaf, body); }

/* ---- awaits --------------------------------------------------------------------- */

START_TEST(await_expansion_contains_init_state_resume_label_and_poll)
{
    Lowered *l = lower(with_leaf("async(int) f(void)\n"
                                 "{\n"
                                 "    int x = await(leaf());\n"
                                 "    return x;\n"
                                 "}\n"));
    const char *p = poll_of(l, "f");
    find(p, "    leaf__init(&ac_f->ac_aw3);\n"
            "    ac_f->ac_state = 3;\n"
            "ac_resume_3:\n"
            "    if (leaf__poll(&ac_f->ac_aw3, ac_cx, &ac_t1) == AC_PENDING)\n"
            "        return AC_PENDING;\n");
    /* Resuming in state 3 jumps to the label; anything else traps. */
    find(p, "    switch (ac_f->ac_state) {\n"
            "    case AC_STATE_UNRESUMED:\n"
            "        break;\n"
            "    case 3:\n"
            "        goto ac_resume_3;\n"
            "    default:\n"
            "        ac__bad_resume(\"f\", ac_f->ac_state);\n"
            "    }\n");
    /* The value is used after the poll: its temporary is poll-local. */
    find(p, "    int ac_t1;\n");
    find_after(p, "return AC_PENDING;\n", "ac_t1");
}
END_TEST

START_TEST(await_arguments_are_passed_to_init_with_hoisted_names)
{
    Lowered *l = lower("#include <asyncc.h>\n"
                       "static async(int) add(int a, int b) { return a + b; }\n"
                       "async(int) f(int n)\n"
                       "{\n"
                       "    int k = 2;\n"
                       "    int r = await(add(n, k * 3));\n"
                       "    return r + k;\n"
                       "}\n");
    find(poll_of(l, "f"), "add__init(&ac_f->ac_aw3, ac_f->n, ac_f->k * 3);\n");
}
END_TEST

START_TEST(await_of_a_function_from_another_file_goes_through_its_vtable)
{
    Lowered *l = lower("#include <asyncc.h>\n"
                       "async(long) remote(int key);\n"
                       "async(long) f(void)\n"
                       "{\n"
                       "    return await(remote(7));\n"
                       "}\n");
    find(poll_of(l, "f"), "    ac_f->ac_aw3 = ac__frame_new(&remote__vt);\n"
                          "    remote__init(ac_f->ac_aw3, 7);\n"
                          "    ac_f->ac_state = 3;\n"
                          "ac_resume_3:\n"
                          "    if (remote__vt.poll(ac_f->ac_aw3, ac_cx, &ac_t1) == AC_PENDING)\n"
                          "        return AC_PENDING;\n"
                          "    ac_frame_free(&remote__vt, ac_f->ac_aw3);\n");
    find(poll_of(l, "f"), "    long ac_t1;\n");
}
END_TEST

START_TEST(boxed_await_allocates_the_frame_even_for_a_same_file_callee)
{
    Lowered *l = lower("#include <asyncc.h>\n"
                       "async(int) down(int n)\n"
                       "{\n"
                       "    return n ? await(ac_box(down(n - 1))) : 0;\n"
                       "}\n");
    const char *p = poll_of(l, "down");
    find(p, "ac_f->ac_aw3 = ac__frame_new(&down__vt);\n");
    find(p, "down__init(ac_f->ac_aw3, ac_f->n - 1);\n");
    find(p, "ac_frame_free(&down__vt, ac_f->ac_aw3);\n");
}
END_TEST

START_TEST(discarded_await_value_is_cast_to_void_and_void_await_has_no_temporary)
{
    Lowered *l = lower(with_leaf("async(void) f(void)\n"
                                 "{\n"
                                 "    await(leaf());\n"
                                 "    await(ac_yield());\n"
                                 "}\n"));
    const char *p = poll_of(l, "f");
    find(p, "    (void)ac_t1;\n");
    find(p, "if (ac_yield__poll(&ac_f->ac_aw4, ac_cx, NULL) == AC_PENDING)");
    ck_assert_ptr_null(strstr(p, "ac_t2"));
}
END_TEST

START_TEST(nested_awaits_run_inner_first)
{
    Lowered *l = lower("#include <asyncc.h>\n"
                       "static async(int) inner(void) { return 1; }\n"
                       "static async(int) outer(int v) { return v + 1; }\n"
                       "async(int) f(void)\n"
                       "{\n"
                       "    return await(outer(await(inner())));\n"
                       "}\n");
    /* States follow source order (outer 3, inner 4); evaluation is inside out. */
    ORDER(poll_of(l, "f"), "inner__init(&ac_f->ac_aw4);", "ac_resume_4:",
          "outer__init(&ac_f->ac_aw3, ", "ac_resume_3:", "*ac_out = ");
}
END_TEST

START_TEST(temporary_live_across_a_later_await_is_a_frame_field)
{
    Lowered *l = lower(with_leaf("async(int) f(void)\n"
                                 "{\n"
                                 "    return await(leaf()) + await(leaf());\n"
                                 "}\n"));
    AsyncFn *fn = parse_find_fn(&l->u, "f");
    ck_assert_int_eq(fn->temps.len, 2);
    Temp *t1 = fn->temps.items[0], *t2 = fn->temps.items[1];
    ck_assert(set_has(&t1->live, 4));
    ck_assert(set_empty(&t2->live));
    ck_assert_str_eq(t1->type, "int");
    const char *p = poll_of(l, "f");
    find(p, "if (leaf__poll(&ac_f->ac_aw3, ac_cx, &ac_f->ac_t1) == AC_PENDING)");
    find(p, "{ *ac_out = ac_f->ac_t1 + ac_t2; ");
    ck_assert_ptr_null(strstr(p, "    int ac_t1;"));
    find(p, "    int ac_t2;\n");
}
END_TEST

START_TEST(unsequenced_operands_are_evaluated_after_the_awaits_beside_them)
{
    Lowered *l = lower(with_leaf("int g(int);\n"
                                 "async(int) f(void)\n"
                                 "{\n"
                                 "    return g(1) + await(leaf());\n"
                                 "}\n"));
    ORDER(poll_of(l, "f"), "ac_resume_3:", "{ *ac_out = g(1) + ac_t1; ");
}
END_TEST

/* ---- sequenced operators ----------------------------------------------------------- */

START_TEST(and_with_await_on_the_right_produces_an_if)
{
    Lowered *l = lower(with_leaf("int g(int);\n"
                                 "async(int) f(int n)\n"
                                 "{\n"
                                 "    int ok = g(n) && await(leaf());\n"
                                 "    return ok;\n"
                                 "}\n"));
    const char *p = poll_of(l, "f");
    /* The await runs only when the left operand is true. */
    ORDER(p, "    ac_t1 = (g(ac_f->n)) != 0;\n"
             "    if (ac_t1) {\n",
          "    leaf__init(&ac_f->ac_aw3);\n", "ac_resume_3:\n",
          "    ac_t1 = (ac_t2) != 0;\n"
          "    }\n",
          "ok = ac_t1;\n");
}
END_TEST

START_TEST(or_with_await_on_the_right_tests_the_negation)
{
    Lowered *l = lower(with_leaf("async(int) f(int n)\n"
                                 "{\n"
                                 "    if (n || await(leaf()))\n"
                                 "        return 1;\n"
                                 "    return 0;\n"
                                 "}\n"));
    ORDER(poll_of(l, "f"), "ac_t1 = (ac_f->n) != 0;\n", "if (!ac_t1) {\n", "ac_resume_3:",
          "ac_t1 = (ac_t2) != 0;\n", "if (ac_t1)");
}
END_TEST

START_TEST(and_with_await_only_on_the_left_needs_no_if)
{
    Lowered *l = lower(with_leaf("async(int) f(int n)\n"
                                 "{\n"
                                 "    return await(leaf()) && n;\n"
                                 "}\n"));
    const char *p = poll_of(l, "f");
    find(p, "{ *ac_out = ac_t1 && ac_f->n; ");
    ck_assert_int_eq(count(p, "if ("), 1); /* only the poll's own */
}
END_TEST

START_TEST(conditional_with_await_in_an_arm_becomes_if_else)
{
    Lowered *l = lower(with_leaf("async(double) f(int n)\n"
                                 "{\n"
                                 "    return n ? 0.5 : await(leaf());\n"
                                 "}\n"));
    const char *p = poll_of(l, "f");
    /* The conditional's type is clang's: double, not the await's int. */
    find(p, "    double ac_t1;\n");
    ORDER(p, "if (ac_f->n) {\n", "ac_t1 = 0.5;\n", "} else {\n", "ac_resume_3:",
          "ac_t1 = ac_t2;\n", "}\n", "*ac_out = ac_t1;");
}
END_TEST

START_TEST(comma_operator_keeps_order)
{
    Lowered *l = lower(with_leaf("int g(int);\n"
                                 "async(int) f(void)\n"
                                 "{\n"
                                 "    int r = (g(1), await(leaf()), g(2));\n"
                                 "    return r;\n"
                                 "}\n"));
    ORDER(poll_of(l, "f"), "(void)(g(1));\n", "leaf__init(&ac_f->ac_aw3);", "ac_resume_3:",
          "(void)(ac_t1);\n", "g(2)");
}
END_TEST

/* ---- statements -------------------------------------------------------------------- */

START_TEST(do_while_with_await_in_condition_turns_continue_into_goto)
{
    Lowered *l = lower(with_leaf("int g(int);\n"
                                 "async(int) f(int n)\n"
                                 "{\n"
                                 "    do {\n"
                                 "        if (g(n))\n"
                                 "            continue;\n"
                                 "        n--;\n"
                                 "    } while (await(leaf()) && n > 0);\n"
                                 "    return n;\n"
                                 "}\n"));
    const char *p = poll_of(l, "f");
    ck_assert_ptr_null(strstr(p, "continue;"));
    ck_assert_ptr_null(strstr(p, "do {"));
    /* continue must still evaluate the condition (with its await). */
    ORDER(p, "for (;;) {", "goto ac_next_1;", "ac_f->n--;", "ac_next_1:;", "ac_resume_3:",
          "if (!(ac_t1 && ac_f->n > 0))\n", "break;");
}
END_TEST

START_TEST(while_with_await_in_condition_evaluates_it_each_iteration)
{
    Lowered *l = lower(with_leaf("async(int) f(void)\n"
                                 "{\n"
                                 "    int n = 0;\n"
                                 "    while (await(leaf()) > n)\n"
                                 "        n++;\n"
                                 "    return n;\n"
                                 "}\n"));
    const char *p = poll_of(l, "f");
    ck_assert_ptr_null(strstr(p, "while"));
    ORDER(p, "for (;;) {", "ac_resume_3:", "if (!(ac_t1 > ac_f->n))\n", "break;", "ac_f->n++;");
}
END_TEST

START_TEST(for_with_await_in_condition_runs_the_step_on_continue)
{
    Lowered *l = lower(with_leaf("int g(int);\n"
                                 "async(int) f(void)\n"
                                 "{\n"
                                 "    int s = 0;\n"
                                 "    for (int i = 0; i < await(leaf()); i++) {\n"
                                 "        if (g(i))\n"
                                 "            continue;\n"
                                 "        s += i;\n"
                                 "    }\n"
                                 "    return s;\n"
                                 "}\n"));
    const char *p = poll_of(l, "f");
    ck_assert_ptr_null(strstr(p, "continue;"));
    ORDER(p, "ac_f->i = 0;\n", "for (;;) {\n", "ac_resume_3:", "if (!(ac_f->i < ac_t1))\n",
          "goto ac_next_1;", "ac_f->s += ac_f->i;", "ac_next_1:;\n", "ac_f->i++;\n");
}
END_TEST

START_TEST(loop_without_await_in_its_header_is_kept_as_written)
{
    Lowered *l = lower(with_leaf("async(int) f(void)\n"
                                 "{\n"
                                 "    int s = 0;\n"
                                 "    for (int i = 0; i < 3; i++) {\n"
                                 "        if (i == 1)\n"
                                 "            continue;\n"
                                 "        s += await(leaf());\n"
                                 "    }\n"
                                 "    return s;\n"
                                 "}\n"));
    const char *p = poll_of(l, "f");
    find(p, "for (ac_f->i = 0; ac_f->i < 3; ac_f->i++) {");
    find(p, "continue;");
    ck_assert_ptr_null(strstr(p, "ac_next_"));
}
END_TEST

START_TEST(returns_write_ac_out)
{
    Lowered *l = lower(with_leaf("async(int) f(int n)\n"
                                 "{\n"
                                 "    int x = await(leaf());\n"
                                 "    if (n)\n"
                                 "        return x + 1;\n"
                                 "    return 0;\n"
                                 "}\n"));
    const char *p = poll_of(l, "f");
    /* x is not needed across an await: it stays a C local. */
    find(p, "    int x = ac_t1;\n");
    find(p, "{ *ac_out = x + 1; ac_f->ac_state = AC_STATE_RETURNED; return AC_READY; }");
    find(p, "{ *ac_out = 0; ac_f->ac_state = AC_STATE_RETURNED; return AC_READY; }");
    /* Falling off the end of a non-void function is a bug the runtime reports. */
    find(p, "    ac__no_return(\"f\");\n}\n");
}
END_TEST

START_TEST(void_function_returns_ready_and_may_fall_off_the_end)
{
    Lowered *l = lower(with_leaf("void g(void);\n"
                                 "async(void) f(int n)\n"
                                 "{\n"
                                 "    if (n)\n"
                                 "        return;\n"
                                 "    if (n > 1)\n"
                                 "        return g();\n"
                                 "    await(leaf());\n"
                                 "}\n"));
    const char *p = poll_of(l, "f");
    find(p, "{ ac_f->ac_state = AC_STATE_RETURNED; return AC_READY; }");
    find(p, "{ (void)(g()); ac_f->ac_state = AC_STATE_RETURNED; return AC_READY; }");
    ck_assert_ptr_null(strstr(p, "ac_out ="));
    ck_assert_ptr_null(strstr(p, "ac__no_return"));
    const char *end = "    ac_f->ac_state = AC_STATE_RETURNED;\n    return AC_READY;\n}\n";
    ck_assert_str_eq(p + strlen(p) - strlen(end), end);
}
END_TEST

START_TEST(hoisted_declaration_becomes_an_assignment)
{
    Lowered *l = lower(with_leaf("int g(int);\n"
                                 "async(int) f(void)\n"
                                 "{\n"
                                 "    int kept = 5, local = 6;\n"
                                 "    int pair[2] = {1, 2};\n"
                                 "    g(local);\n"
                                 "    await(leaf());\n"
                                 "    return kept + pair[1];\n"
                                 "}\n"));
    const char *p = poll_of(l, "f");
    find(p, "    ac_f->kept = 5;\n");
    find(p, "    int local = 6;\n");
    find(p, "g(local);");
    /* An aggregate is initialised as a C object, then copied. */
    find(p, "{ int ac_init[2] = {1, 2}; __builtin_memcpy(&ac_f->pair, &ac_init, sizeof "
            "ac_f->pair); }");
    find(p, "*ac_out = ac_f->kept + ac_f->pair[1];");
}
END_TEST

START_TEST(code_without_awaits_is_copied_with_its_comments)
{
    Lowered *l = lower("#include <asyncc.h>\n"
                       "int g(int);\n"
                       "async(int) f(int n)\n"
                       "{\n"
                       "    /* a comment kept as written */\n"
                       "    int local = g(n) * 2; // and this one\n"
                       "    return local;\n"
                       "}\n");
    const char *p = poll_of(l, "f");
    find(p, "    (void)ac_cx;\n"); /* no await: the context is unused */
    find(p, "    /* a comment kept as written */\n");
    find(p, "    int local = g(ac_f->n) * 2;");
    find(p, "// and this one");
}
END_TEST

/* The source line the C compiler assigns to the line of `text` holding
 * `what`, following the #line directives before it (0 if none). */
static int mapped_line(const char *text, const char *what)
{
    const char *at = find(text, what);
    int line = 0;
    for (const char *p = text; p < at; p++) {
        if ((p == text || p[-1] == '\n') && strncmp(p, "#line ", 6) == 0) {
            line = atoi(p + 6);
            p = strchr(p, '\n');
            if (!p || p >= at)
                break;
            continue;
        }
        if (*p == '\n' && line)
            line++;
    }
    return line;
}

START_TEST(line_directives_map_back_to_the_source)
{
    Lowered *l = lower(with_leaf("int g(int);\n"
                                 "async(int) f(void)\n"   /* line 4 */
                                 "{\n"
                                 "    int x = 1;\n"         /* line 6 */
                                 "\n"
                                 "    x += await(leaf());\n" /* line 8 */
                                 "    g(x);\n"
                                 "    int y = await(leaf());\n"
                                 "    return x + y;\n"      /* line 11 */
                                 "}\n"));
    const char *p = poll_of(l, "f");
    ck_assert_int_eq(mapped_line(p, "ac_f->x = 1;"), 6);
    ck_assert_int_eq(mapped_line(p, "leaf__init(&ac_f->ac_aw3)"), 8);
    ck_assert_int_eq(mapped_line(p, "int y = ac_t2;"), 10);
    ck_assert_int_eq(mapped_line(p, "*ac_out = "), 11);
    /* What follows an await's expansion in its statement is still its line. */
    ck_assert_int_eq(mapped_line(p, "ac_f->x += ac_t1;"), 8);
    ck_assert_int_eq(mapped_line(p, "g(ac_f->x);"), 9);
}
END_TEST

START_TEST(declare_uses_typeof_for_abstract_function_pointers_and_arrays)
{
    char *a = lower_declare("int", "ac_t1");
    ck_assert_str_eq(a, "int ac_t1");
    char *b = lower_declare("const char *", "ac_t2");
    ck_assert_str_eq(b, "const char *ac_t2");
    char *c = lower_declare("int (*)(void)", "ac_t3");
    ck_assert_str_eq(c, "__typeof__(int (*)(void)) ac_t3");
    char *d = lower_declare("char[4]", "ac_t4");
    ck_assert_str_eq(d, "__typeof__(char[4]) ac_t4");
}
END_TEST

static Suite *lower_suite(void)
{
    Suite *s = suite_create("compiler_lower");
    TCase *tc = tcase_create("awaits");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, await_expansion_contains_init_state_resume_label_and_poll);
    tcase_add_test(tc, await_arguments_are_passed_to_init_with_hoisted_names);
    tcase_add_test(tc, await_of_a_function_from_another_file_goes_through_its_vtable);
    tcase_add_test(tc, boxed_await_allocates_the_frame_even_for_a_same_file_callee);
    tcase_add_test(tc, discarded_await_value_is_cast_to_void_and_void_await_has_no_temporary);
    tcase_add_test(tc, nested_awaits_run_inner_first);
    tcase_add_test(tc, temporary_live_across_a_later_await_is_a_frame_field);
    tcase_add_test(tc, unsequenced_operands_are_evaluated_after_the_awaits_beside_them);
    suite_add_tcase(s, tc);

    tc = tcase_create("operators");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, and_with_await_on_the_right_produces_an_if);
    tcase_add_test(tc, or_with_await_on_the_right_tests_the_negation);
    tcase_add_test(tc, and_with_await_only_on_the_left_needs_no_if);
    tcase_add_test(tc, conditional_with_await_in_an_arm_becomes_if_else);
    tcase_add_test(tc, comma_operator_keeps_order);
    suite_add_tcase(s, tc);

    tc = tcase_create("statements");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, do_while_with_await_in_condition_turns_continue_into_goto);
    tcase_add_test(tc, while_with_await_in_condition_evaluates_it_each_iteration);
    tcase_add_test(tc, for_with_await_in_condition_runs_the_step_on_continue);
    tcase_add_test(tc, loop_without_await_in_its_header_is_kept_as_written);
    tcase_add_test(tc, returns_write_ac_out);
    tcase_add_test(tc, void_function_returns_ready_and_may_fall_off_the_end);
    tcase_add_test(tc, hoisted_declaration_becomes_an_assignment);
    tcase_add_test(tc, code_without_awaits_is_copied_with_its_comments);
    tcase_add_test(tc, line_directives_map_back_to_the_source);
    tcase_add_test(tc, declare_uses_typeof_for_abstract_function_pointers_and_arrays);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    if (access("runtime/include/asyncc.h", R_OK) != 0) {
        fprintf(stderr, "compiler_lower: run from the repository root "
                        "(runtime/include/asyncc.h not found)\n");
        return EXIT_FAILURE;
    }
    SRunner *sr = srunner_create(lower_suite());
    srunner_set_fork_status(sr, CK_FORK); /* diag_error_count() is per process */
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

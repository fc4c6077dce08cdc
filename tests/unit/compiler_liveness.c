/*
 * compiler_liveness.c: scopes, hoisting and rejected constructs
 * (compiler/liveness.c).
 *
 * Each test runs sema_run (with runtime/include, so the tests run from the
 * repository root), parse_unit and liveness_run on an in-memory `.ac` text, as
 * compiler/main.c's translate() does, and checks which variables are hoisted
 * into the frame, across which await states they are live, their field names,
 * and the errors (captured with diag_capture and compared as text). Fork mode
 * keeps diag_error_count(), which is per process, at zero for each test.
 */
#include "compiler.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A unit after liveness and what the passes printed. */
typedef struct Analysed {
    Unit u;    /* the unit; u.src.text points into the test's string */
    bool ok;   /* every pass up to liveness_run succeeded */
    Buf diags; /* their diagnostics */
} Analysed;

static Analysed *analyse(const char *text)
{
    Analysed *a = xcalloc(1, sizeof *a);
    a->u.src.path = "t.ac";
    a->u.src.text = text;
    a->u.src.len = (uint32_t)strlen(text);
    diag_capture(&a->diags);
    a->u.sema = sema_run(&a->u, NULL, 0, "runtime/include");
    a->ok = a->u.sema && parse_unit(&a->u) && liveness_run(&a->u);
    diag_capture(NULL);
    return a;
}

/* Runs the passes and insists that they succeed. */
static Analysed *analyse_ok(const char *text)
{
    Analysed *a = analyse(text);
    ck_assert_msg(a->ok, "translation failed:\n%.2000s", a->diags.data ? a->diags.data : "");
    return a;
}

static AsyncFn *fn_named(Analysed *a, const char *name)
{
    AsyncFn *fn = parse_find_fn(&a->u, name);
    ck_assert_msg(fn != NULL, "no async function %s", name);
    return fn;
}

/* The n-th variable (0 = first) of fn spelled `name`. */
static Var *var_nth(AsyncFn *fn, const char *name, int n)
{
    for (int i = 0; i < fn->vars.len; i++) {
        Var *v = fn->vars.items[i];
        if (strcmp(v->name, name) == 0 && n-- == 0)
            return v;
    }
    ck_abort_msg("no variable %s in %s", name, fn->name);
    return NULL;
}

static Var *var(AsyncFn *fn, const char *name) { return var_nth(fn, name, 0); }

/* The states of s as text, e.g. "0 3 4". */
static char *states(const StateSet *s)
{
    Buf b = {0};
    for (int i = 0; i < s->words * 64; i++)
        if (set_has(s, i))
            buf_printf(&b, "%s%d", b.len ? " " : "", i);
    return b.data ? buf_take(&b) : xstrdup("");
}

static void assert_local(Var *v)
{
    ck_assert_msg(!v->hoisted, "%s is hoisted (live in %s)", v->name, states(&v->live));
    ck_assert_ptr_null(v->field);
    ck_assert_str_eq(states(&v->live), "");
}

static void assert_hoisted(Var *v, const char *field, const char *live)
{
    ck_assert_msg(v->hoisted, "%s is not hoisted", v->name);
    ck_assert_str_eq(v->field, field);
    ck_assert_str_eq(states(&v->live), live);
}

/* ---- what is hoisted ------------------------------------------------------------- */

START_TEST(parameters_are_always_hoisted_and_live_in_state_0)
{
    Analysed *a = analyse_ok("#include <asyncc.h>\n"
                             "async(int) f(int used, int unused, char *p)\n"
                             "{\n"
                             "    return used;\n"
                             "}\n");
    AsyncFn *fn = fn_named(a, "f");
    ck_assert_int_eq(fn->vars.len, 3);
    assert_hoisted(var(fn, "used"), "used", "0");
    assert_hoisted(var(fn, "unused"), "unused", "0");
    assert_hoisted(var(fn, "p"), "p", "0");
    ck_assert(var(fn, "p")->is_param);
    ck_assert_int_eq(fn->nstates, 3);
}
END_TEST

START_TEST(parameter_used_after_an_await_is_live_in_its_state)
{
    Analysed *a = analyse_ok("#include <asyncc.h>\n"
                             "async(int) f(int early, int late)\n"
                             "{\n"
                             "    int x = early;\n"
                             "    await(ac_yield());\n"
                             "    return x + late;\n"
                             "}\n");
    AsyncFn *fn = fn_named(a, "f");
    assert_hoisted(var(fn, "early"), "early", "0");
    assert_hoisted(var(fn, "late"), "late", "0 3");
    assert_hoisted(var(fn, "x"), "x", "3");
}
END_TEST

START_TEST(argument_read_only_by_the_await_it_makes_is_not_live_across_it)
{
    /* The call in an await makes the future, reading its arguments, before
     * the await suspends; a reference there is not a use after it. Nested
     * awaits run first: an argument of the outer call is read after the
     * inner await. */
    Analysed *a = analyse_ok("#include <asyncc.h>\n"
                             "static async(int) id(int v) { await(ac_yield()); return v; }\n"
                             "static async(int) two(int v, int w) { await(ac_yield()); return v + w; }\n"
                             "async(int) f(int p)\n"
                             "{\n"
                             "    int once = p * 2;\n"
                             "    int r = await(id(once));\n"
                             "    int outer = r + 1;\n"
                             "    r += await(two(outer, await(id(r))));\n"
                             "    return r;\n"
                             "}\n");
    AsyncFn *fn = fn_named(a, "f");
    assert_local(var(fn, "once"));
    assert_hoisted(var(fn, "p"), "p", "0");
    /* outer: read by two() after id(r) (state 5) completes, not after two (4). */
    assert_hoisted(var(fn, "outer"), "outer", "5");
    /* r: read after both, by `r +=` and `return r`. */
    assert_hoisted(var(fn, "r"), "r", "4 5");
}
END_TEST

START_TEST(local_used_only_before_await_stays_in_poll_function)
{
    Analysed *a = analyse_ok("#include <asyncc.h>\n"
                             "int g(int);\n"
                             "async(int) f(int n)\n"
                             "{\n"
                             "    int before = n * 2;\n"
                             "    g(before);\n"
                             "    await(ac_yield());\n"
                             "    return 0;\n"
                             "}\n");
    AsyncFn *fn = fn_named(a, "f");
    ck_assert_int_eq(fn->vars.len, 2);
    assert_local(var(fn, "before"));
    ck_assert(!var(fn, "before")->is_param);
}
END_TEST

START_TEST(local_used_after_await_is_hoisted_with_that_state)
{
    Analysed *a = analyse_ok("#include <asyncc.h>\n"
                             "async(int) f(void)\n"
                             "{\n"
                             "    int total = 1;\n"
                             "    await(ac_yield());\n"
                             "    total += 2;\n"
                             "    await(ac_yield());\n"
                             "    await(ac_yield());\n"
                             "    return total;\n"
                             "}\n");
    AsyncFn *fn = fn_named(a, "f");
    ck_assert_int_eq(fn->nstates, 6);
    assert_hoisted(var(fn, "total"), "total", "3 4 5");
}
END_TEST

START_TEST(local_dead_after_an_await_is_not_live_at_later_ones)
{
    Analysed *a = analyse_ok("#include <asyncc.h>\n"
                             "async(int) f(void)\n"
                             "{\n"
                             "    int t = 1;\n"
                             "    await(ac_yield());\n"
                             "    int r = t;\n"
                             "    await(ac_yield());\n"
                             "    return r;\n"
                             "}\n");
    AsyncFn *fn = fn_named(a, "f");
    assert_hoisted(var(fn, "t"), "t", "3");
    assert_hoisted(var(fn, "r"), "r", "4");
}
END_TEST

START_TEST(local_read_in_the_awaiting_statement_is_live_across_it)
{
    /* Lowering evaluates the await before the rest of its statement. */
    Analysed *a = analyse_ok("#include <asyncc.h>\n"
                             "static async(int) one(void) { return 1; }\n"
                             "async(int) f(void)\n"
                             "{\n"
                             "    int k = 5;\n"
                             "    return k + await(one());\n"
                             "}\n");
    assert_hoisted(var(fn_named(a, "f"), "k"), "k", "3");
}
END_TEST

START_TEST(address_taken_local_is_hoisted)
{
    Analysed *a = analyse_ok("#include <asyncc.h>\n"
                             "void keep(int *);\n"
                             "async(int) f(void)\n"
                             "{\n"
                             "    int x = 1, y = 2;\n"
                             "    keep(&x);\n"
                             "    keep(&y);\n"
                             "    await(ac_yield());\n"
                             "    return 0;\n"
                             "}\n");
    AsyncFn *fn = fn_named(a, "f");
    /* Whoever holds &x may use it after the await, so x stays put. */
    Var *x = var(fn, "x");
    ck_assert(x->addr_taken);
    assert_hoisted(x, "x", "3");
    assert_hoisted(var(fn, "y"), "y", "3");
}
END_TEST

START_TEST(address_of_a_member_or_element_takes_the_variables_address)
{
    Analysed *a = analyse_ok("#include <asyncc.h>\n"
                             "struct s { int f; };\n"
                             "void keep(int *);\n"
                             "async(int) f(void)\n"
                             "{\n"
                             "    struct s st = {0};\n"
                             "    struct s list[2] = {{0}};\n"
                             "    int plain = 3;\n"
                             "    keep(&(st.f));\n"
                             "    keep(&list[1].f);\n"
                             "    keep((int *)0 + plain);\n"
                             "    await(ac_yield());\n"
                             "    return 0;\n"
                             "}\n");
    AsyncFn *fn = fn_named(a, "f");
    ck_assert(var(fn, "st")->addr_taken);
    ck_assert(var(fn, "list")->addr_taken);
    ck_assert(!var(fn, "plain")->addr_taken);
    assert_hoisted(var(fn, "st"), "st", "3");
    assert_local(var(fn, "plain"));
}
END_TEST

START_TEST(array_local_counts_as_address_taken)
{
    Analysed *a = analyse_ok("#include <asyncc.h>\n"
                             "#include <string.h>\n"
                             "async(int) f(void)\n"
                             "{\n"
                             "    char buf[8];\n"
                             "    strcpy(buf, \"hi\");\n"
                             "    await(ac_yield());\n"
                             "    return 0;\n"
                             "}\n");
    Var *buf = var(fn_named(a, "f"), "buf");
    ck_assert(buf->addr_taken);
    assert_hoisted(buf, "buf", "3");
}
END_TEST

START_TEST(local_declared_after_an_await_is_not_live_at_it)
{
    Analysed *a = analyse_ok("#include <asyncc.h>\n"
                             "async(int) f(void)\n"
                             "{\n"
                             "    await(ac_yield());\n"
                             "    int after = 4;\n"
                             "    int *p = &after;\n"
                             "    return *p;\n"
                             "}\n");
    AsyncFn *fn = fn_named(a, "f");
    assert_local(var(fn, "after"));
    assert_local(var(fn, "p"));
}
END_TEST

START_TEST(loop_carried_variable_is_hoisted)
{
    /* `sum` is read only before the await in the text, but the next iteration
     * reads what this one wrote. */
    Analysed *a = analyse_ok("#include <asyncc.h>\n"
                             "int use(int);\n"
                             "async(void) f(int n)\n"
                             "{\n"
                             "    int sum = 0;\n"
                             "    int once = 7;\n"
                             "    use(once);\n"
                             "    while (n-- > 0) {\n"
                             "        sum = use(sum);\n"
                             "        await(ac_yield());\n"
                             "    }\n"
                             "}\n");
    AsyncFn *fn = fn_named(a, "f");
    assert_hoisted(var(fn, "sum"), "sum", "3");
    assert_local(var(fn, "once"));
}
END_TEST

START_TEST(variable_declared_in_the_loop_body_before_the_await_stays_local)
{
    /* Each iteration starts it anew: nothing carries over the await. */
    Analysed *a = analyse_ok("#include <asyncc.h>\n"
                             "int use(int);\n"
                             "async(void) f(int n)\n"
                             "{\n"
                             "    while (n-- > 0) {\n"
                             "        int fresh = n * 2;\n"
                             "        use(fresh);\n"
                             "        await(ac_yield());\n"
                             "    }\n"
                             "}\n");
    assert_local(var(fn_named(a, "f"), "fresh"));
}
END_TEST

START_TEST(for_header_variable_is_hoisted_when_loop_body_awaits)
{
    Analysed *a = analyse_ok("#include <asyncc.h>\n"
                             "async(void) f(void)\n"
                             "{\n"
                             "    for (int i = 0; i < 3; i++)\n"
                             "        await(ac_yield());\n"
                             "    for (int j = 0; j < 3; j++)\n"
                             "        ;\n"
                             "    await(ac_yield());\n"
                             "}\n");
    AsyncFn *fn = fn_named(a, "f");
    assert_hoisted(var(fn, "i"), "i", "3");
    assert_local(var(fn, "j"));
}
END_TEST

START_TEST(shadowed_locals_get_distinct_field_names)
{
    Analysed *a = analyse_ok("#include <asyncc.h>\n"
                             "async(int) f(int x)\n"
                             "{\n"
                             "    int r = x;\n"
                             "    {\n"
                             "        int x = 2;\n"
                             "        await(ac_yield());\n"
                             "        r += x;\n"
                             "        {\n"
                             "            int x = 3;\n"
                             "            await(ac_yield());\n"
                             "            r += x;\n"
                             "        }\n"
                             "    }\n"
                             "    return r + x;\n"
                             "}\n");
    AsyncFn *fn = fn_named(a, "f");
    Var *x0 = var_nth(fn, "x", 0), *x1 = var_nth(fn, "x", 1), *x2 = var_nth(fn, "x", 2);
    ck_assert(x0->is_param);
    assert_hoisted(x0, "x", "0 3 4");
    assert_hoisted(x1, "x_1", "3");
    assert_hoisted(x2, "x_2", "4");
    /* Every reference resolves to the innermost declaration in scope. */
    ck_assert_int_eq(x0->refs.len, 2); /* `r = x` and `r + x` */
    ck_assert_int_eq(x1->refs.len, 1);
    ck_assert_int_eq(x2->refs.len, 1);
    TSNode last = *(TSNode *)x0->refs.items[1];
    ck_assert_ptr_eq(nodemap_get(&fn->refs, last), x0);
    ck_assert_uint_eq(ts_node_start_point(last).row, 14);
}
END_TEST

START_TEST(name_is_in_scope_from_its_declarator_on)
{
    Analysed *a = analyse_ok("#include <asyncc.h>\n"
                             "int v = 10;\n"
                             "int use(int);\n"
                             "async(int) f(void)\n"
                             "{\n"
                             "    use(v);\n"
                             "    int v = 1;\n"
                             "    await(ac_yield());\n"
                             "    return v;\n"
                             "}\n");
    AsyncFn *fn = fn_named(a, "f");
    Var *v = var(fn, "v");
    ck_assert_int_eq(v->refs.len, 1); /* `use(v)` names the global */
    ck_assert_uint_eq(ts_node_start_point(*(TSNode *)v->refs.items[0]).row, 8);
    assert_hoisted(v, "v", "3");
}
END_TEST

START_TEST(shadowing_declaration_is_not_a_reference_to_the_outer_variable)
{
    Analysed *a = analyse_ok("#include <asyncc.h>\n"
                             "int use(int);\n"
                             "async(int) f(void)\n"
                             "{\n"
                             "    int x = 1;\n"
                             "    use(x);\n"
                             "    await(ac_yield());\n"
                             "    {\n"
                             "        int *x = 0, y[sizeof x];\n"
                             "        return x == 0 && y[0];\n"
                             "    }\n"
                             "}\n");
    AsyncFn *fn = fn_named(a, "f");
    Var *outer = var_nth(fn, "x", 0), *inner = var_nth(fn, "x", 1);
    ck_assert_int_eq(outer->refs.len, 1); /* use(x) only */
    assert_local(outer);
    /* `sizeof x` in the next declarator already means the inner x. */
    ck_assert_int_eq(inner->refs.len, 2);
    assert_local(inner);
}
END_TEST

START_TEST(static_locals_are_never_hoisted)
{
    Analysed *a = analyse_ok("#include <asyncc.h>\n"
                             "async(int) f(void)\n"
                             "{\n"
                             "    static int calls;\n"
                             "    extern int shared;\n"
                             "    calls++;\n"
                             "    await(ac_yield());\n"
                             "    return calls + shared + *&calls;\n"
                             "}\n");
    AsyncFn *fn = fn_named(a, "f");
    Var *calls = var(fn, "calls"), *shared = var(fn, "shared");
    ck_assert(calls->is_static);
    ck_assert(shared->is_static);
    assert_local(calls);
    assert_local(shared);
}
END_TEST

START_TEST(goto_makes_variables_live_at_every_await_in_their_scope)
{
    Analysed *a = analyse_ok("#include <asyncc.h>\n"
                             "int use(int);\n"
                             "async(int) f(int n)\n"
                             "{\n"
                             "    int tries = 0;\n"
                             "again:\n"
                             "    tries = use(tries);\n"
                             "    await(ac_yield());\n"
                             "    if (n-- > 0)\n"
                             "        goto again;\n"
                             "    return 0;\n"
                             "}\n");
    AsyncFn *fn = fn_named(a, "f");
    ck_assert(fn->has_goto);
    assert_hoisted(var(fn, "tries"), "tries", "3");
}
END_TEST

/* ---- awaits ---------------------------------------------------------------------- */

START_TEST(awaits_are_numbered_from_state_3_and_resolved_to_their_callees)
{
    Analysed *a = analyse_ok("#include <asyncc.h>\n"
                             "async(long) far_away(int);\n"
                             "static async(int) near(void) { return 1; }\n"
                             "async(long) f(void)\n"
                             "{\n"
                             "    await(ac_yield());\n"
                             "    int n = await(near());\n"
                             "    return await(far_away(n));\n"
                             "}\n");
    AsyncFn *fn = fn_named(a, "f");
    ck_assert_int_eq(fn->awaits.len, 3);
    ck_assert_int_eq(fn->nstates, 6);
    Await *y = fn->awaits.items[0], *n = fn->awaits.items[1], *far = fn->awaits.items[2];
    ck_assert_int_eq(y->state, 3);
    ck_assert_int_eq(n->state, 4);
    ck_assert_int_eq(far->state, 5);
    ck_assert_ptr_null(y->target);
    ck_assert_ptr_nonnull(y->ext);
    ck_assert(y->ext->embeddable);
    ck_assert_ptr_eq(n->target, fn_named(a, "near"));
    ck_assert_ptr_null(n->ext);
    ck_assert_ptr_null(far->target);
    ck_assert_ptr_nonnull(far->ext);
    ck_assert(!far->ext->embeddable);
    ck_assert_str_eq(far->ext->ret_type, "long");
}
END_TEST

START_TEST(await_of_a_plain_function_is_rejected)
{
    Analysed *a = analyse("#include <asyncc.h>\n"
                          "int plain(void);\n"
                          "async(int) f(void)\n"
                          "{\n"
                          "    return await(plain());\n"
                          "}\n");
    ck_assert(!a->ok);
    ck_assert_str_eq(a->diags.data,
                     "t.ac:5:18: error: 'plain' is not an async function; await() needs a future, "
                     "from a function declared async(T)\n"
                     "      return await(plain());\n"
                     "                   ^\n");
}
END_TEST

START_TEST(await_in_sizeof_is_rejected)
{
    Analysed *a = analyse("#include <asyncc.h>\n"
                          "static async(int) one(void) { return 1; }\n"
                          "async(int) f(void)\n"
                          "{\n"
                          "    return (int)sizeof(await(one()));\n"
                          "}\n");
    ck_assert(!a->ok);
    ck_assert_str_eq(a->diags.data,
                     "t.ac:5:24: error: await() in an operand that is never evaluated (sizeof, "
                     "_Alignof or typeof)\n"
                     "      return (int)sizeof(await(one()));\n"
                     "                         ^\n");
}
END_TEST

START_TEST(await_outside_an_async_function_is_rejected)
{
    Analysed *a = analyse("#include <asyncc.h>\n"
                          "static async(int) one(void) { return 1; }\n"
                          "int sync(void)\n"
                          "{\n"
                          "    return await(one());\n"
                          "}\n");
    ck_assert(!a->ok);
    ck_assert_str_eq(a->diags.data,
                     "t.ac:5:12: error: await() outside an async function (declare the function "
                     "async(T))\n"
                     "      return await(one());\n"
                     "             ^\n");
}
END_TEST

START_TEST(stray_awaits_are_each_reported_and_counted)
{
    const char *text = "#include <asyncc.h>\n"
                       "static async(int) one(void) { return 1; }\n"
                       "int a(void) { return await(one()); }\n"
                       "int b(void) { return await(one()) + await(one()); }\n";
    Analysed *a = xcalloc(1, sizeof *a);
    a->u.src.path = "t.ac";
    a->u.src.text = text;
    a->u.src.len = (uint32_t)strlen(text);
    ck_assert(parse_unit(&a->u)); /* no sema needed to find them */
    diag_capture(&a->diags);
    ck_assert_int_eq(liveness_report_strays(&a->u), 3);
    diag_capture(NULL);
    ck_assert_int_eq(diag_error_count(), 3);
    ck_assert_ptr_nonnull(strstr(a->diags.data, "t.ac:3:22: error: await() outside an async"));
    ck_assert_ptr_nonnull(strstr(a->diags.data, "t.ac:4:22: error: await() outside an async"));
    ck_assert_ptr_nonnull(strstr(a->diags.data, "t.ac:4:37: error: await() outside an async"));
}
END_TEST

/* ---- rejected storage -------------------------------------------------------------- */

START_TEST(vla_in_scope_of_await_is_an_error)
{
    Analysed *a = analyse("#include <asyncc.h>\n"
                          "async(int) f(int n)\n"
                          "{\n"
                          "    int buf[n];\n"
                          "    buf[0] = 1;\n"
                          "    await(ac_yield());\n"
                          "    return 0;\n"
                          "}\n");
    ck_assert(!a->ok);
    ck_assert_int_eq(diag_error_count(), 1);
    ck_assert_str_eq(a->diags.data,
                     "t.ac:4:9: error: variable-length array 'buf' is in scope of an await; a "
                     "suspended frame cannot hold it (give it a constant size or allocate it)\n"
                     "      int buf[n];\n"
                     "          ^\n"
                     "t.ac:6:5: note: the await is here\n"
                     "      await(ac_yield());\n"
                     "      ^\n");
}
END_TEST

START_TEST(vla_whose_scope_ends_before_the_await_is_accepted)
{
    Analysed *a = analyse_ok("#include <asyncc.h>\n"
                             "async(int) f(int n)\n"
                             "{\n"
                             "    {\n"
                             "        int buf[n];\n"
                             "        buf[0] = 1;\n"
                             "    }\n"
                             "    await(ac_yield());\n"
                             "    return 0;\n"
                             "}\n");
    assert_local(var(fn_named(a, "f"), "buf"));
}
END_TEST

START_TEST(alloca_held_across_await_is_an_error)
{
    Analysed *a = analyse("#include <asyncc.h>\n"
                          "#include <alloca.h>\n"
                          "#include <string.h>\n"
                          "async(int) f(int n)\n"
                          "{\n"
                          "    char *p = alloca(n);\n"
                          "    char *q;\n"
                          "    q = (char *)alloca(n);\n"
                          "    await(ac_yield());\n"
                          "    return p[0] + q[0];\n"
                          "}\n");
    ck_assert(!a->ok);
    ck_assert_int_eq(diag_error_count(), 2);
    ck_assert_str_eq(a->diags.data,
                     "t.ac:6:15: error: alloca() memory held in 'p' across an await; it is freed "
                     "when the function suspends (use malloc, or a fixed-size array)\n"
                     "      char *p = alloca(n);\n"
                     "                ^\n"
                     "t.ac:8:17: error: alloca() memory held in 'q' across an await; it is freed "
                     "when the function suspends (use malloc, or a fixed-size array)\n"
                     "      q = (char *)alloca(n);\n"
                     "                  ^\n");
}
END_TEST

START_TEST(alloca_used_only_before_await_is_accepted)
{
    Analysed *a = analyse_ok("#include <asyncc.h>\n"
                             "#include <alloca.h>\n"
                             "#include <string.h>\n"
                             "async(int) f(int n)\n"
                             "{\n"
                             "    char *p = alloca(n);\n"
                             "    memset(p, 0, n);\n"
                             "    await(ac_yield());\n"
                             "    return 0;\n"
                             "}\n");
    assert_local(var(fn_named(a, "f"), "p"));
}
END_TEST

START_TEST(variadic_async_function_is_rejected)
{
    /* The frame holds the parameters; `...` cannot be stored, and va_start
     * in the poll function would not compile. */
    Analysed *a = analyse("#include <asyncc.h>\n"
                          "#include <stdarg.h>\n"
                          "async(int) sum(int n, ...)\n"
                          "{\n"
                          "    va_list ap;\n"
                          "    va_start(ap, n);\n"
                          "    int v = va_arg(ap, int);\n"
                          "    va_end(ap);\n"
                          "    return v;\n"
                          "}\n");
    ck_assert_msg(!a->ok, "a variadic async function was accepted");
    ck_assert_ptr_nonnull(strstr(a->diags.data, "t.ac:3:"));
}
END_TEST

/* ---- recursion ---------------------------------------------------------------------- */

START_TEST(direct_recursion_is_reported_with_its_path)
{
    Analysed *a = analyse("#include <asyncc.h>\n"
                          "async(int) count(int n)\n"
                          "{\n"
                          "    return n ? await(count(n - 1)) + 1 : 0;\n"
                          "}\n");
    ck_assert(!a->ok);
    ck_assert_str_eq(a->diags.data,
                     "t.ac:4:16: error: recursive async functions: count -> count; a frame "
                     "cannot contain itself (box the recursive awaits: await(ac_box(count(...))))\n"
                     "      return n ? await(count(n - 1)) + 1 : 0;\n"
                     "                 ^\n");
}
END_TEST

START_TEST(recursion_cycle_is_reported_with_its_path)
{
    Analysed *a = analyse("#include <asyncc.h>\n"
                          "async(int) ping(int n);\n"
                          "async(int) pang(int n);\n"
                          "async(int) top(void) { return await(ping(3)); }\n"
                          "async(int) pong(int n) { return await(pang(n)); }\n"
                          "async(int) pang(int n) { return n ? await(ping(n - 1)) : 0; }\n"
                          "async(int) ping(int n) { return await(pong(n)); }\n");
    ck_assert(!a->ok);
    ck_assert_int_eq(diag_error_count(), 1);
    /* The cycle, not the path into it from top. */
    ck_assert_ptr_nonnull(strstr(a->diags.data, "t.ac:6:37: error: recursive async functions: "
                                                "ping -> pong -> pang -> ping; "));
    ck_assert_ptr_nonnull(strstr(a->diags.data, "await(ac_box(ping(...)))"));
}
END_TEST

START_TEST(ac_box_breaks_the_cycle)
{
    Analysed *a = analyse_ok("#include <asyncc.h>\n"
                             "async(int) odd(int n);\n"
                             "async(int) even(int n) { return n ? await(ac_box(odd(n - 1))) : 1; }\n"
                             "async(int) odd(int n) { return n ? await(even(n - 1)) : 0; }\n"
                             "async(int) self(int n) { return n ? await(ac_box(self(n - 1))) : 0; }\n");
    Await *aw = fn_named(a, "even")->awaits.items[0];
    ck_assert(aw->boxed);
    ck_assert_ptr_eq(aw->target, fn_named(a, "odd"));
    ck_assert(((Await *)fn_named(a, "self")->awaits.items[0])->boxed);
}
END_TEST

/* ---- transitions ------------------------------------------------------------------------ */

START_TEST(flow_successors_follow_branches_and_loops)
{
    Analysed *a = analyse_ok("#include <asyncc.h>\n"
                             "async(int) f(int n)\n"
                             "{\n"
                             "    if (n)\n"
                             "        await(ac_yield());\n"          /* 3 */
                             "    while (n-- > 0)\n"
                             "        await(ac_yield());\n"          /* 4 */
                             "    return 0;\n"
                             "}\n");
    AsyncFn *fn = fn_named(a, "f");
    StateSet *succ = flow_successors(&a->u, fn);
    ck_assert_str_eq(states(&succ[0]), "1 3 4"); /* 1: returned */
    ck_assert_str_eq(states(&succ[3]), "1 4");
    ck_assert_str_eq(states(&succ[4]), "1 4");
    free(succ);
}
END_TEST

static Suite *liveness_suite(void)
{
    Suite *s = suite_create("compiler_liveness");
    TCase *tc = tcase_create("hoisting");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, parameters_are_always_hoisted_and_live_in_state_0);
    tcase_add_test(tc, parameter_used_after_an_await_is_live_in_its_state);
    tcase_add_test(tc, argument_read_only_by_the_await_it_makes_is_not_live_across_it);
    tcase_add_test(tc, local_used_only_before_await_stays_in_poll_function);
    tcase_add_test(tc, local_used_after_await_is_hoisted_with_that_state);
    tcase_add_test(tc, local_dead_after_an_await_is_not_live_at_later_ones);
    tcase_add_test(tc, local_read_in_the_awaiting_statement_is_live_across_it);
    tcase_add_test(tc, address_taken_local_is_hoisted);
    tcase_add_test(tc, address_of_a_member_or_element_takes_the_variables_address);
    tcase_add_test(tc, array_local_counts_as_address_taken);
    tcase_add_test(tc, local_declared_after_an_await_is_not_live_at_it);
    tcase_add_test(tc, loop_carried_variable_is_hoisted);
    tcase_add_test(tc, variable_declared_in_the_loop_body_before_the_await_stays_local);
    tcase_add_test(tc, for_header_variable_is_hoisted_when_loop_body_awaits);
    tcase_add_test(tc, shadowed_locals_get_distinct_field_names);
    tcase_add_test(tc, name_is_in_scope_from_its_declarator_on);
    tcase_add_test(tc, shadowing_declaration_is_not_a_reference_to_the_outer_variable);
    tcase_add_test(tc, static_locals_are_never_hoisted);
    tcase_add_test(tc, goto_makes_variables_live_at_every_await_in_their_scope);
    suite_add_tcase(s, tc);

    tc = tcase_create("awaits");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, awaits_are_numbered_from_state_3_and_resolved_to_their_callees);
    tcase_add_test(tc, await_of_a_plain_function_is_rejected);
    tcase_add_test(tc, await_in_sizeof_is_rejected);
    tcase_add_test(tc, await_outside_an_async_function_is_rejected);
    tcase_add_test(tc, stray_awaits_are_each_reported_and_counted);
    tcase_add_test(tc, flow_successors_follow_branches_and_loops);
    suite_add_tcase(s, tc);

    tc = tcase_create("rejected");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, vla_in_scope_of_await_is_an_error);
    tcase_add_test(tc, vla_whose_scope_ends_before_the_await_is_accepted);
    tcase_add_test(tc, alloca_held_across_await_is_an_error);
    tcase_add_test(tc, alloca_used_only_before_await_is_accepted);
    tcase_add_test(tc, variadic_async_function_is_rejected);
    tcase_add_test(tc, direct_recursion_is_reported_with_its_path);
    tcase_add_test(tc, recursion_cycle_is_reported_with_its_path);
    tcase_add_test(tc, ac_box_breaks_the_cycle);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    if (access("runtime/include/asyncc.h", R_OK) != 0) {
        fprintf(stderr, "compiler_liveness: run from the repository root "
                        "(runtime/include/asyncc.h not found)\n");
        return EXIT_FAILURE;
    }
    SRunner *sr = srunner_create(liveness_suite());
    srunner_set_fork_status(sr, CK_FORK); /* diag_error_count() is per process */
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

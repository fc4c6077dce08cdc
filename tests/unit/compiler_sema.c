/*
 * compiler_sema.c: the libclang pass (compiler/sema.c).
 *
 * Each test hands an in-memory `.ac` text to sema_run (libclang reads it as an
 * unsaved file named t.ac, through the header's sync reading) with
 * runtime/include as the include directory, so the tests run from the
 * repository root. Headers a test needs are written to a fresh directory
 * under /tmp and passed with -I. Diagnostics are captured and compared as
 * text; fork mode keeps diag_error_count(), which is per process, at zero for
 * each test.
 */
#include "compiler.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A unit read by sema_run and what it printed. */
typedef struct Analysed {
    Unit u;    /* the unit; u.src.text points into the test's string */
    Sema *s;   /* sema_run's result */
    Buf diags; /* its diagnostics */
} Analysed;

static Analysed *analyse_with(const char *text, const char *const *args, int nargs)
{
    Analysed *a = xcalloc(1, sizeof *a);
    a->u.src.path = "t.ac";
    a->u.src.text = text;
    a->u.src.len = (uint32_t)strlen(text);
    diag_capture(&a->diags);
    a->s = sema_run(&a->u, args, nargs, "runtime/include");
    diag_capture(NULL);
    a->u.sema = a->s;
    return a;
}

static Analysed *analyse(const char *text) { return analyse_with(text, NULL, 0); }

/* Byte offset of the first occurrence of `what` in `text` (which must hold it). */
static uint32_t offset_of(const char *text, const char *what)
{
    const char *p = strstr(text, what);
    ck_assert_msg(p != NULL, "'%s' is not in the test input", what);
    return (uint32_t)(p - text);
}

/* A fresh directory under /tmp for the test's headers, and files in it. */
static char tmpdir[64];

static void make_tmpdir(void)
{
    strcpy(tmpdir, "/tmp/asyncc-sema-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static char *write_tmp(const char *name, const char *text)
{
    char *path = xasprintf("%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
    return path;
}

static void remove_tmp(const char *name)
{
    char *path = xasprintf("%s/%s", tmpdir, name);
    unlink(path);
    free(path);
}

/* ---- async functions from headers ------------------------------------------- */

START_TEST(header_async_function_is_found_with_result_and_parameter_types)
{
    make_tmpdir();
    write_tmp("store.h", "#include <asyncc.h>\n"
                         "struct item { int id; double weight; };\n"
                         "async(long) store_fetch(int id, const char *key, struct item *out);\n"
                         "long store_plain(int id);\n");
    char *inc = xasprintf("-I%s", tmpdir);
    const char *args[] = {inc};
    Analysed *a = analyse_with("#include \"store.h\"\n"
                               "async(long) twice(int id)\n"
                               "{\n"
                               "    return await(store_fetch(id, \"k\", 0)) * 2;\n"
                               "}\n",
                               args, 1);
    remove_tmp("store.h");
    rmdir(tmpdir);
    ck_assert_msg(a->s != NULL, "sema failed: %.2000s", a->diags.data);
    ck_assert_ptr_null(a->diags.data);
    ExtFn *e = sema_ext_fn(a->s, "store_fetch");
    ck_assert_ptr_nonnull(e);
    ck_assert_str_eq(e->name, "store_fetch");
    ck_assert_str_eq(e->ret_type, "long");
    ck_assert(!e->ret_void);
    ck_assert_int_eq(e->ret_size, 8);
    ck_assert_int_eq(e->ret_align, 8);
    ck_assert_int_eq(e->param_types.len, 3);
    ck_assert_str_eq(e->param_types.items[0], "int");
    ck_assert_str_eq(e->param_types.items[1], "const char *");
    ck_assert_str_eq(e->param_types.items[2], "struct item *");
    ck_assert(!e->from_file);
    ck_assert(!e->embeddable); /* no struct store_fetch__frame is visible */
    /* A function without async(T) is not an async function. */
    ck_assert_ptr_null(sema_ext_fn(a->s, "store_plain"));
    ck_assert_ptr_null(sema_ext_fn(a->s, "no_such_function"));
}
END_TEST

START_TEST(header_frame_struct_makes_the_function_embeddable)
{
    make_tmpdir();
    write_tmp("fut.h", "#include <asyncc.h>\n"
                       "struct tick__frame { double when; char state; };\n"
                       "async(void) tick(double when);\n");
    char *inc = xasprintf("-I%s", tmpdir);
    const char *args[] = {inc};
    Analysed *a = analyse_with("#include <fut.h>\n"
                               "async(int) f(void) { await(tick(1.0)); return 0; }\n",
                               args, 1);
    remove_tmp("fut.h");
    rmdir(tmpdir);
    ck_assert_ptr_nonnull(a->s);
    ExtFn *e = sema_ext_fn(a->s, "tick");
    ck_assert_ptr_nonnull(e);
    ck_assert(e->ret_void);
    ck_assert_int_eq(e->ret_size, -1);
    ck_assert(e->embeddable);
    ck_assert_uint_eq(e->size, 16);
    ck_assert_uint_eq(e->align, 8);
}
END_TEST

START_TEST(ac_yield_is_embeddable_with_its_frame_size)
{
    Analysed *a = analyse("#include <asyncc.h>\n"
                          "async(int) f(void) { await(ac_yield()); return 1; }\n");
    ck_assert_ptr_nonnull(a->s);
    ExtFn *y = sema_ext_fn(a->s, "ac_yield");
    ck_assert_ptr_nonnull(y);
    ck_assert(y->ret_void);
    ck_assert_str_eq(y->ret_type, "void");
    ck_assert_int_eq(y->param_types.len, 0);
    ck_assert(!y->from_file);
    ck_assert(y->embeddable);
    ck_assert_uint_eq(y->size, 1); /* struct ac_yield__frame { uint8_t state; } */
    ck_assert_uint_eq(y->align, 1);
}
END_TEST

START_TEST(async_functions_of_the_file_are_marked_from_file)
{
    Analysed *a = analyse("#include <asyncc.h>\n"
                          "async(char) later(short s);\n"
                          "static async(int *) mine(int *p, unsigned n) { return p + n; }\n");
    ck_assert_ptr_nonnull(a->s);
    ExtFn *later = sema_ext_fn(a->s, "later");
    ck_assert_ptr_nonnull(later);
    ck_assert(later->from_file);
    ck_assert_str_eq(later->ret_type, "char");
    ck_assert_int_eq(later->ret_size, 1);
    ck_assert_str_eq(later->param_types.items[0], "short");
    ExtFn *mine = sema_ext_fn(a->s, "mine");
    ck_assert_ptr_nonnull(mine);
    ck_assert(mine->from_file);
    ck_assert_str_eq(mine->ret_type, "int *");
    ck_assert_int_eq(mine->param_types.len, 2);
    ck_assert_str_eq(mine->param_types.items[1], "unsigned int");
}
END_TEST

START_TEST(block_scope_async_prototype_is_found)
{
    Analysed *a = analyse("#include <asyncc.h>\n"
                          "async(int) f(void)\n"
                          "{\n"
                          "    async(short) inner_decl(int k);\n"
                          "    return await(inner_decl(1));\n"
                          "}\n");
    ck_assert_ptr_nonnull(a->s);
    ExtFn *e = sema_ext_fn(a->s, "inner_decl");
    ck_assert_ptr_nonnull(e);
    ck_assert_str_eq(e->ret_type, "short");
    ck_assert_int_eq(e->param_types.len, 1);
}
END_TEST

START_TEST(struct_result_has_its_size_and_alignment)
{
    Analysed *a = analyse("#include <asyncc.h>\n"
                          "struct pair { short a; long long b; };\n"
                          "async(struct pair) make(void);\n");
    ck_assert_ptr_nonnull(a->s);
    ExtFn *e = sema_ext_fn(a->s, "make");
    ck_assert_ptr_nonnull(e);
    ck_assert_str_eq(e->ret_type, "struct pair");
    ck_assert_int_eq(e->ret_size, 16);
    ck_assert_int_eq(e->ret_align, 8);
}
END_TEST

/* ---- clang's errors ------------------------------------------------------------ */

START_TEST(clang_error_is_reported_and_sema_run_returns_null)
{
    Analysed *a = analyse("#include <asyncc.h>\n"
                          "async(int) f(void)\n"
                          "{\n"
                          "    return nope + 1;\n"
                          "}\n");
    ck_assert_ptr_null(a->s);
    ck_assert_int_eq(diag_error_count(), 1);
    ck_assert_str_eq(a->diags.data, "t.ac:4:12: error: use of undeclared identifier 'nope'\n"
                                    "      return nope + 1;\n"
                                    "             ^\n");
}
END_TEST

START_TEST(every_clang_error_is_reported_in_order)
{
    Analysed *a = analyse("int a = x;\n"
                          "int b = y;\n");
    ck_assert_ptr_null(a->s);
    ck_assert_int_eq(diag_error_count(), 2);
    const char *x = strstr(a->diags.data, "t.ac:1:9: error: use of undeclared identifier 'x'");
    const char *y = strstr(a->diags.data, "t.ac:2:9: error: use of undeclared identifier 'y'");
    ck_assert_ptr_nonnull(x);
    ck_assert_ptr_nonnull(y);
    ck_assert(x < y);
}
END_TEST

START_TEST(clang_warnings_do_not_stop_translation)
{
    Analysed *a = analyse("#include <asyncc.h>\n"
                          "#warning \"just a warning\"\n"
                          "async(int) f(void) { int unused; return 0; }\n");
    ck_assert_ptr_nonnull(a->s);
    ck_assert_int_eq(diag_error_count(), 0);
}
END_TEST

START_TEST(error_in_a_header_names_the_header)
{
    make_tmpdir();
    char *path = write_tmp("bad.h", "int ok;\nint broken = missing_thing;\n");
    char *inc = xasprintf("-I%s", tmpdir);
    const char *args[] = {inc};
    Analysed *a = analyse_with("#include \"bad.h\"\nint main(void) { return 0; }\n", args, 1);
    remove_tmp("bad.h");
    rmdir(tmpdir);
    ck_assert_ptr_null(a->s);
    char *want = xasprintf("asyncc: error: %s:2:14: use of undeclared identifier 'missing_thing'\n",
                           path);
    ck_assert_str_eq(a->diags.data, want);
}
END_TEST

START_TEST(missing_include_is_an_error)
{
    Analysed *a = analyse("#include <no_such_header_for_asyncc.h>\nint x;\n");
    ck_assert_ptr_null(a->s);
    ck_assert_ptr_nonnull(
        strstr(a->diags.data, "t.ac:1:10: error: 'no_such_header_for_asyncc.h' file not found"));
}
END_TEST

START_TEST(user_flags_reach_clang)
{
    const char *text = "#if !WANTED\n#error \"WANTED is not set\"\n#endif\nint x;\n";
    Analysed *without = analyse(text);
    ck_assert_ptr_null(without->s);
    ck_assert_ptr_nonnull(strstr(without->diags.data, "t.ac:2:2: error: \"WANTED is not set\""));
    const char *args[] = {"-DWANTED=1"};
    Analysed *with = analyse_with(text, args, 1);
    ck_assert_ptr_nonnull(with->s);
    ck_assert_ptr_null(with->diags.data);
}
END_TEST

/* ---- types in async bodies -------------------------------------------------------- */

START_TEST(char_array_has_type_char_4)
{
    const char *text = "#include <asyncc.h>\n"
                       "async(int) f(void)\n"
                       "{\n"
                       "    char word[4] = \"abc\";\n"
                       "    return word[0];\n"
                       "}\n";
    Analysed *a = analyse(text);
    ck_assert_ptr_nonnull(a->s);
    const TypeInfo *ti = sema_var_type(a->s, offset_of(text, "word["));
    ck_assert_ptr_nonnull(ti);
    ck_assert_str_eq(ti->spelling, "char[4]");
    ck_assert_int_eq(ti->size, 4);
    ck_assert_int_eq(ti->align, 1);
    ck_assert(!ti->vla);
}
END_TEST

START_TEST(unsized_array_takes_its_size_from_the_initializer)
{
    const char *text = "#include <asyncc.h>\n"
                       "async(int) f(void)\n"
                       "{\n"
                       "    char greeting[] = \"hello\";\n"
                       "    int squares[] = {0, 1, 4, 9};\n"
                       "    return greeting[0] + squares[1];\n"
                       "}\n";
    Analysed *a = analyse(text);
    ck_assert_ptr_nonnull(a->s);
    const TypeInfo *g = sema_var_type(a->s, offset_of(text, "greeting[]"));
    ck_assert_ptr_nonnull(g);
    ck_assert_str_eq(g->spelling, "char[6]");
    ck_assert_int_eq(g->size, 6);
    const TypeInfo *sq = sema_var_type(a->s, offset_of(text, "squares[]"));
    ck_assert_ptr_nonnull(sq);
    ck_assert_str_eq(sq->spelling, "int[4]");
    ck_assert_int_eq(sq->size, 16);
    ck_assert_int_eq(sq->align, 4);
}
END_TEST

START_TEST(parameters_and_locals_have_their_types)
{
    const char *text = "#include <asyncc.h>\n"
                       "#include <stdint.h>\n"
                       "typedef struct { uint16_t a; uint64_t b; } rec;\n"
                       "async(int) f(const char *name, uint8_t flag)\n"
                       "{\n"
                       "    rec r = {0};\n"
                       "    double d = 1.5;\n"
                       "    return name[0] + flag + (int)r.b + (int)d;\n"
                       "}\n";
    Analysed *a = analyse(text);
    ck_assert_ptr_nonnull(a->s);
    const TypeInfo *name = sema_var_type(a->s, offset_of(text, "name,"));
    ck_assert_ptr_nonnull(name);
    ck_assert_str_eq(name->spelling, "const char *");
    ck_assert_int_eq(name->size, 8);
    const TypeInfo *flag = sema_var_type(a->s, offset_of(text, "flag)"));
    ck_assert_ptr_nonnull(flag);
    ck_assert_str_eq(flag->spelling, "uint8_t");
    ck_assert_int_eq(flag->size, 1);
    const TypeInfo *r = sema_var_type(a->s, offset_of(text, "r = "));
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(r->spelling, "rec");
    ck_assert_int_eq(r->size, 16);
    ck_assert_int_eq(r->align, 8);
    const TypeInfo *d = sema_var_type(a->s, offset_of(text, "d = "));
    ck_assert_ptr_nonnull(d);
    ck_assert_str_eq(d->spelling, "double");
    /* An offset that starts no variable has no type. */
    ck_assert_ptr_null(sema_var_type(a->s, offset_of(text, "= 1.5")));
}
END_TEST

START_TEST(variable_length_array_is_marked_vla)
{
    const char *text = "#include <asyncc.h>\n"
                       "async(int) f(int n)\n"
                       "{\n"
                       "    int vla[n];\n"
                       "    int (*pvla)[n] = &vla;\n"
                       "    int fixed[3];\n"
                       "    vla[0] = fixed[0] = 0;\n"
                       "    return (*pvla)[0];\n"
                       "}\n";
    Analysed *a = analyse(text);
    ck_assert_ptr_nonnull(a->s);
    const TypeInfo *vla = sema_var_type(a->s, offset_of(text, "vla[n]"));
    ck_assert_ptr_nonnull(vla);
    ck_assert(vla->vla);
    /* A pointer to a VLA is an ordinary pointer-sized object. */
    const TypeInfo *p = sema_var_type(a->s, offset_of(text, "pvla)"));
    ck_assert_ptr_nonnull(p);
    ck_assert(!p->vla);
    const TypeInfo *fixed = sema_var_type(a->s, offset_of(text, "fixed[3]"));
    ck_assert_ptr_nonnull(fixed);
    ck_assert(!fixed->vla);
}
END_TEST

START_TEST(locals_of_ordinary_functions_are_not_recorded)
{
    const char *text = "#include <asyncc.h>\n"
                       "int plain(void) { int in_plain = 1; return in_plain; }\n"
                       "async(int) f(void) { int in_async = 2; return in_async; }\n";
    Analysed *a = analyse(text);
    ck_assert_ptr_nonnull(a->s);
    ck_assert_ptr_null(sema_var_type(a->s, offset_of(text, "in_plain =")));
    ck_assert_ptr_nonnull(sema_var_type(a->s, offset_of(text, "in_async =")));
}
END_TEST

START_TEST(conditional_expression_has_its_type_by_its_start)
{
    const char *text = "#include <asyncc.h>\n"
                       "static async(int) one(void) { return 1; }\n"
                       "async(double) f(int n)\n"
                       "{\n"
                       "    double a = n ? 1 : 2.5;\n"
                       "    long b = n > 1 ? 0 : await(one());\n"
                       "    return a + b;\n"
                       "}\n";
    Analysed *a = analyse(text);
    ck_assert_ptr_nonnull(a->s);
    uint32_t start = offset_of(text, "n ? 1");
    const TypeInfo *ti = sema_cond_type(a->s, start);
    ck_assert_ptr_nonnull(ti);
    ck_assert_str_eq(ti->spelling, "double");
    ck_assert_int_eq(ti->size, 8);
    ck_assert_ptr_null(sema_cond_type(a->s, start + 1));
    /* Its end lies inside the await() macro of the sync reading. */
    const TypeInfo *tb = sema_cond_type(a->s, offset_of(text, "n > 1 ?"));
    ck_assert_ptr_nonnull(tb);
    ck_assert_str_eq(tb->spelling, "int");
    /* A variable's entry is not a conditional's. */
    ck_assert_ptr_null(sema_cond_type(a->s, offset_of(text, "a = n")));
}
END_TEST

static Suite *sema_suite(void)
{
    Suite *s = suite_create("compiler_sema");
    TCase *tc = tcase_create("async functions");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, header_async_function_is_found_with_result_and_parameter_types);
    tcase_add_test(tc, header_frame_struct_makes_the_function_embeddable);
    tcase_add_test(tc, ac_yield_is_embeddable_with_its_frame_size);
    tcase_add_test(tc, async_functions_of_the_file_are_marked_from_file);
    tcase_add_test(tc, block_scope_async_prototype_is_found);
    tcase_add_test(tc, struct_result_has_its_size_and_alignment);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, clang_error_is_reported_and_sema_run_returns_null);
    tcase_add_test(tc, every_clang_error_is_reported_in_order);
    tcase_add_test(tc, clang_warnings_do_not_stop_translation);
    tcase_add_test(tc, error_in_a_header_names_the_header);
    tcase_add_test(tc, missing_include_is_an_error);
    tcase_add_test(tc, user_flags_reach_clang);
    suite_add_tcase(s, tc);

    tc = tcase_create("types");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, char_array_has_type_char_4);
    tcase_add_test(tc, unsized_array_takes_its_size_from_the_initializer);
    tcase_add_test(tc, parameters_and_locals_have_their_types);
    tcase_add_test(tc, variable_length_array_is_marked_vla);
    tcase_add_test(tc, locals_of_ordinary_functions_are_not_recorded);
    tcase_add_test(tc, conditional_expression_has_its_type_by_its_start);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    if (access("runtime/include/asyncc.h", R_OK) != 0) {
        fprintf(stderr, "compiler_sema: run from the repository root (runtime/include/asyncc.h "
                        "not found)\n");
        return EXIT_FAILURE;
    }
    SRunner *sr = srunner_create(sema_suite());
    srunner_set_fork_status(sr, CK_FORK); /* diag_error_count() is per process */
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/*
 * compiler_emit.c: the output file and --emit=states (compiler/emit.c).
 *
 * Each test runs every pass on an in-memory `.ac` text, as compiler/main.c's
 * translate() does (sema_run with runtime/include, so the tests run from the
 * repository root), and checks the emitted text: non-async text copied byte
 * for byte, #line directives that put it back on its source lines, the
 * generated declarations, deterministic bytes, and the state report. Some
 * tests compile the output with the C compiler ($CC, default cc). Fork mode
 * keeps diag_error_count(), which is per process, at zero for each test.
 */
#include "compiler.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* A translated unit. */
typedef struct Translated {
    Unit u;    /* the unit */
    bool ok;   /* every pass succeeded */
    Buf diags; /* their diagnostics */
    char *out; /* emit_unit's text */
} Translated;

static Translated *translate(const char *text)
{
    Translated *t = xcalloc(1, sizeof *t);
    t->u.src.path = "t.ac";
    t->u.src.text = text;
    t->u.src.len = (uint32_t)strlen(text);
    diag_capture(&t->diags);
    t->u.sema = sema_run(&t->u, NULL, 0, "runtime/include");
    t->ok = t->u.sema && parse_unit(&t->u) && liveness_run(&t->u);
    if (t->ok) {
        for (int i = 0; i < t->u.fns.len; i++) {
            AsyncFn *fn = t->u.fns.items[i];
            if (fn->is_def)
                lower_fn(&t->u, fn);
        }
        for (int i = 0; i < t->u.fns.len; i++) {
            AsyncFn *fn = t->u.fns.items[i];
            if (fn->is_def && !fn->frame)
                layout_fn(&t->u, fn);
        }
        t->ok = diag_error_count() == 0;
    }
    diag_capture(NULL);
    ck_assert_msg(t->ok, "translation failed:\n%.2000s", t->diags.data ? t->diags.data : "");
    Buf out = {0};
    emit_unit(&t->u, &out);
    t->out = buf_take(&out);
    return t;
}

static char *states_of(Translated *t)
{
    Buf out = {0};
    emit_states(&t->u, &out);
    return buf_take(&out);
}

static const char *find(const char *text, const char *what)
{
    const char *p = strstr(text, what);
    ck_assert_msg(p != NULL, "expected\n%s\nin\n%.2000s", what, text);
    return p;
}

static int count(const char *text, const char *what)
{
    int n = 0;
    for (const char *p = strstr(text, what); p; p = strstr(p + 1, what))
        n++;
    return n;
}

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

/* Runs the C compiler on `text`; returns its exit status and its messages. */
static int compile(const char *text, Buf *errors)
{
    const char *cc = getenv("CC");
    char errpath[] = "/tmp/asyncc-emit-XXXXXX";
    int fd = mkstemp(errpath);
    ck_assert_int_ge(fd, 0);
    close(fd);
    char *cmd = xasprintf("%s -std=gnu11 -Wall -fsyntax-only -x c -Iruntime/include - 2>%s",
                          cc && *cc ? cc : "cc", errpath);
    FILE *p = popen(cmd, "w");
    ck_assert_ptr_nonnull(p);
    fputs(text, p);
    int status = pclose(p);
    FILE *f = fopen(errpath, "r");
    char chunk[4096];
    size_t n;
    while (f && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_putn(errors, chunk, n);
    if (f)
        fclose(f);
    unlink(errpath);
    free(cmd);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void assert_compiles(const char *text)
{
    Buf errors = {0};
    int status = compile(text, &errors);
    ck_assert_msg(status == 0, "the translation does not compile (status %d):\n%.2000s", status,
                  errors.data ? errors.data : "");
}

/* A file mixing plain C (comments, macros, tabs, odd spacing) and async code. */
static const char mixed[] =
    "/* header comment */\n"                                                  /* 1 */
    "#include <asyncc.h>\n"                                                   /* 2 */
    "#define TWICE(x) ((x) * 2)\n"                                            /* 3 */
    "int   plain_before(int a)   { return TWICE(a); }\t/* tab */\n"          /* 4 */
    "async(int) later(int v);\n"                                              /* 5 */
    "static async(int) first(void) { return await(later(1)); } int between = 3;\n" /* 6 */
    "// line comment between\n"                                               /* 7 */
    "async(int) later(int v)\n"                                               /* 8 */
    "{\n"                                                                     /* 9 */
    "    await(ac_yield());\n"                                                /* 10 */
    "    return v;\n"                                                         /* 11 */
    "}\n"                                                                     /* 12 */
    "async(long) elsewhere(const char *s, int n);\n"                          /* 13 */
    "async(long) user(void) { return await(elsewhere(\"x\", 2)); }\n"         /* 14 */
    "int plain_after(void)\n"                                                 /* 15 */
    "{\n"                                                                     /* 16 */
    "    return between;\n"                                                   /* 17 */
    "}\n";                                                                    /* 18 */

/* ---- the translated file ------------------------------------------------------------ */

START_TEST(non_async_text_is_copied_byte_identical)
{
    Translated *t = translate(mixed);
    /* Every stretch of text outside the async functions and prototypes
     * appears verbatim, in order. */
    const char *at = t->out;
    uint32_t pos = 0;
    int stretches = 0;
    for (int i = 0; i <= t->u.fns.len; i++) {
        uint32_t end = t->u.src.len;
        if (i < t->u.fns.len)
            end = ts_node_start_byte(((AsyncFn *)t->u.fns.items[i])->node);
        char *chunk = xstrndup(mixed + pos, end - pos);
        const char *p = strstr(at, chunk);
        ck_assert_msg(p != NULL, "not copied verbatim (or out of order):\n[%.500s]\nin\n%.2000s",
                      chunk, t->out);
        at = p + strlen(chunk);
        if (i < t->u.fns.len)
            pos = ts_node_end_byte(((AsyncFn *)t->u.fns.items[i])->node);
        stretches++;
        free(chunk);
    }
    ck_assert_int_eq(stretches, 6);
    /* Spot checks of what that covers. */
    find(t->out, "/* header comment */\n#include <asyncc.h>\n#define TWICE(x) ((x) * 2)\n"
                 "int   plain_before(int a)   { return TWICE(a); }\t/* tab */\n");
    find(t->out, " int between = 3;\n// line comment between\n");
    find(t->out, "int plain_after(void)\n{\n    return between;\n}\n");
    /* The file ends as the input does. */
    const char *tail = "}\n";
    ck_assert_str_eq(t->out + strlen(t->out) - strlen(tail), tail);
}
END_TEST

START_TEST(file_without_async_code_is_copied_after_the_header)
{
    const char *text = "#include <stdio.h>\n"
                       "/* await(x) in a comment */\n"
                       "int main(void) { puts(\"async(int) f(void);\"); return 0; }\n";
    Translated *t = translate(text);
    char *want = xasprintf("/* Generated by asyncc. Edit the source named in the #line below, not this file. */\n"
                           "#define ASYNCC_LOWERED 1\n"
                           "#include <asyncc.h>\n"
                           "#line 1 \"t.ac\"\n"
                           "%s",
                           text);
    ck_assert_str_eq(t->out, want);
}
END_TEST

START_TEST(output_selects_the_lowered_reading_first)
{
    Translated *t = translate(mixed);
    const char *head = "/* Generated by asyncc. Edit the source named in the #line below, not this file. */\n"
                       "#define ASYNCC_LOWERED 1\n"
                       "#include <asyncc.h>\n"
                       "#line 1 \"t.ac\"\n"
                       "/* header comment */\n";
    ck_assert_int_eq(strncmp(t->out, head, strlen(head)), 0);
}
END_TEST

START_TEST(line_directives_put_copied_text_back_on_its_source_lines)
{
    Translated *t = translate(mixed);
    find(t->out, "#line 1 \"t.ac\"\n");
    ck_assert_int_eq(mapped_line(t->out, "/* header comment */"), 1);
    ck_assert_int_eq(mapped_line(t->out, "int   plain_before"), 4);
    ck_assert_int_eq(mapped_line(t->out, " int between = 3;"), 6);
    ck_assert_int_eq(mapped_line(t->out, "// line comment between"), 7);
    ck_assert_int_eq(mapped_line(t->out, "int plain_after(void)"), 15);
    ck_assert_int_eq(mapped_line(t->out, "    return between;"), 17);
    /* Generated code points at the function it comes from. */
    ck_assert_int_eq(mapped_line(t->out, "struct first__frame {"), 7); /* after `#line 6` + comment */
    ck_assert_int_eq(mapped_line(t->out, "later__init(&ac_f->ac_aw3, 1);"), 6);
    ck_assert_int_eq(mapped_line(t->out, "ac_yield__init(&ac_f->ac_aw3);"), 10);
}
END_TEST

/* The file names of the `#line` directives in `text`, unescaped as the C
 * preprocessor reads them, each followed by a newline. */
static char *line_directive_names(const char *text)
{
    Buf names = {0};
    for (const char *p = strstr(text, "\n#line "); p; p = strstr(p + 1, "\n#line ")) {
        const char *q = strchr(p + 1, '"');
        const char *eol = strchr(p + 1, '\n');
        ck_assert_msg(q && q < eol, "#line without a file name");
        for (q++; q < eol && *q != '"'; q++) {
            if (*q == '\\' && q + 1 < eol)
                q++;
            buf_putc(&names, *q);
        }
        ck_assert_msg(q < eol && q + 1 == eol, "#line directive does not end after its file name");
        buf_putc(&names, '\n');
    }
    return buf_take(&names);
}

START_TEST(line_directives_escape_the_file_name)
{
    const char *text = "#include <asyncc.h>\n"
                       "async(int) f(void) { await(ac_yield()); return 1; }\n";
    Translated *t = xcalloc(1, sizeof *t);
    t->u.src.path = "odd \"dir\\name/t.ac";
    t->u.src.text = text;
    t->u.src.len = (uint32_t)strlen(text);
    t->u.sema = sema_run(&t->u, NULL, 0, "runtime/include");
    ck_assert(t->u.sema && parse_unit(&t->u) && liveness_run(&t->u));
    AsyncFn *fn = t->u.fns.items[0];
    lower_fn(&t->u, fn);
    layout_fn(&t->u, fn);
    Buf out = {0};
    emit_unit(&t->u, &out);
    char *names = line_directive_names(out.data);
    ck_assert_int_gt((int)strlen(names), 0);
    for (char *line = strtok(names, "\n"); line; line = strtok(NULL, "\n"))
        ck_assert_str_eq(line, t->u.src.path);
}
END_TEST

START_TEST(output_is_deterministic)
{
    Translated *a = translate(mixed);
    Translated *b = translate(mixed);
    ck_assert_str_eq(a->out, b->out);
    char *sa = states_of(a), *sb = states_of(b);
    ck_assert_str_eq(sa, sb);
}
END_TEST

START_TEST(translation_compiles)
{
    Translated *t = translate(mixed);
    assert_compiles(t->out);
}
END_TEST

/* ---- generated declarations ----------------------------------------------------------- */

START_TEST(callee_frame_is_emitted_once_before_the_caller_that_embeds_it)
{
    Translated *t = translate(mixed);
    ck_assert_int_eq(count(t->out, "struct later__frame {"), 1);
    ck_assert_int_eq(count(t->out, "struct first__frame {"), 1);
    /* first embeds later's frame, and later is defined after first. */
    ck_assert(find(t->out, "struct later__frame {") < find(t->out, "struct first__frame {"));
    find(t->out, "    struct later__frame ac_aw3; /* awaited future, line 6; live in states 3 */\n");
    /* The prototype on line 5 is where later's frame goes. */
    ck_assert(find(t->out, "struct later__frame {") < find(t->out, " int between = 3;"));
    ck_assert_int_eq(count(t->out, "void later__init(void *ac_frame, int v)\n{"), 1);
}
END_TEST

START_TEST(function_from_elsewhere_is_declared_through_its_vtable)
{
    Translated *t = translate(mixed);
    find(t->out, "/* elsewhere: async function defined elsewhere (Future ABI) */\n"
                 "extern const ac_future_vt elsewhere__vt;\n"
                 "void elsewhere__init(void *ac_frame, const char *, int);\n");
    ck_assert_int_eq(count(t->out, "extern const ac_future_vt elsewhere__vt;"), 1);
    find(t->out, "        elsewhere__vt.drop(ac_f->ac_aw3);\n"
                 "        ac_frame_free(&elsewhere__vt, ac_f->ac_aw3);\n");
}
END_TEST

START_TEST(frame_init_poll_drop_and_vtable_follow_the_abi)
{
    Translated *t = translate("#include <asyncc.h>\n"
                              "async(long) sum(int a, const char *b)\n"
                              "{\n"
                              "    await(ac_yield());\n"
                              "    return a + b[0];\n"
                              "}\n");
    find(t->out, "/* sum: frame of its state machine (16 bytes; asyncc --emit=states) */\n"
                 "struct sum__frame {\n"
                 "    const char *b; /* parameter, line 2; live in states 0 3 */\n"
                 "    int a; /* parameter, line 2; live in states 0 3 */\n"
                 "    struct ac_yield__frame ac_aw3; /* awaited future, line 4; live in states 3 */\n"
                 "    uint8_t ac_state; /* 0 unresumed, 1 returned, 2 poisoned, 3.. suspended */\n"
                 "};\n"
                 "void sum__init(void *ac_frame, int a, const char *b);\n"
                 "static ac_poll_t sum__poll(struct sum__frame *ac_f, ac_context *ac_cx, long *ac_out);\n"
                 "static void sum__drop(struct sum__frame *ac_f);\n"
                 "extern const ac_future_vt sum__vt;\n");
    /* init stores the parameters and runs no user code. */
    find(t->out, "void sum__init(void *ac_frame, int a, const char *b)\n"
                 "{\n"
                 "    struct sum__frame *ac_f = ac_frame;\n"
                 "    ac_f->a = a;\n"
                 "    ac_f->b = b;\n"
                 "    ac_f->ac_state = AC_STATE_UNRESUMED;\n"
                 "}\n");
    find(t->out, "static void sum__drop(struct sum__frame *ac_f)\n"
                 "{\n"
                 "    switch (ac_f->ac_state) {\n"
                 "    case 3:\n"
                 "        ac_yield__drop(&ac_f->ac_aw3);\n"
                 "        break;\n"
                 "    default:\n"
                 "        break;\n"
                 "    }\n"
                 "    ac_f->ac_state = AC_STATE_RETURNED;\n"
                 "}\n");
    find(t->out, "const ac_future_vt sum__vt = {\n"
                 "    sizeof(struct sum__frame), _Alignof(struct sum__frame), sizeof(long), "
                 "sum__vpoll, sum__vdrop, \"sum\",\n"
                 "};\n");
    assert_compiles(t->out);
}
END_TEST

START_TEST(static_async_function_has_static_symbols)
{
    Translated *t = translate("#include <asyncc.h>\n"
                              "static async(void) quiet(void) { await(ac_yield()); }\n");
    find(t->out, "static void quiet__init(void *ac_frame) __attribute__((unused));\n");
    find(t->out, "static const ac_future_vt quiet__vt __attribute__((unused));\n");
    find(t->out, "static const ac_future_vt quiet__vt __attribute__((unused)) = {\n"
                 "    sizeof(struct quiet__frame), _Alignof(struct quiet__frame), 0, ");
    find(t->out, "static ac_poll_t quiet__poll(struct quiet__frame *ac_f, ac_context *ac_cx, "
                 "void *ac_out)\n");
    ck_assert_ptr_null(strstr(t->out, "extern const ac_future_vt quiet__vt"));
    assert_compiles(t->out);
}
END_TEST

START_TEST(prototype_inside_a_body_is_copied)
{
    Translated *t = translate("#include <asyncc.h>\n"
                              "int plain(void)\n"
                              "{\n"
                              "    async(int) inner(void);\n"
                              "    return 0;\n"
                              "}\n");
    find(t->out, "int plain(void)\n{\n    async(int) inner(void);\n    return 0;\n}\n");
    assert_compiles(t->out);
}
END_TEST

START_TEST(comment_in_the_result_type_does_not_break_the_output)
{
    /* The result type's text is quoted in a generated comment. */
    Translated *t = translate("#include <asyncc.h>\n"
                              "async(unsigned /* u */ long) f(void) { await(ac_yield()); return 1; }\n");
    assert_compiles(t->out);
}
END_TEST

/* ---- --emit=states --------------------------------------------------------------------- */

START_TEST(emit_states_lists_states_transitions_and_frame_slots)
{
    Translated *t = translate("#include <asyncc.h>\n"
                              "static async(int) word(int i)\n"
                              "{\n"
                              "    await(ac_yield());\n"
                              "    return i;\n"
                              "}\n"
                              "async(int) greet(int lang, const char *name)\n"
                              "{\n"
                              "    int w = await(word(lang));\n"
                              "    await(ac_yield());\n"
                              "    return w + name[0];\n"
                              "}\n");
    char *s = states_of(t);
    find(s, "async function greet -> int  (t.ac:7)\n"
            "  states:\n"
            "    0   unresumed -> 3\n"
            "    3   await word() at line 9 -> 4\n"
            "    4   await ac_yield() at line 10 -> returned\n"
            "    1   returned\n"
            "    2   poisoned\n"
            "  frame: struct greet__frame, 32 bytes, align 8\n"
            "    offset  size  slot              kind        line  live in states\n"
            "         0     8  name              parameter      7  0 3 4\n"
            "         8     8  ac_aw3            future         9  3  (shares storage)\n"
            "         8     1  ac_aw4            future        10  4  (shares storage)\n"
            "        16     4  lang              parameter      7  0\n"
            "        20     4  w                 local          9  4\n"
            "        24     1  ac_state          state     \n"
            "\n");
    find(s, "async function word -> int  (t.ac:2)\n");
    ck_assert(find(s, "async function word") < find(s, "async function greet"));
}
END_TEST

START_TEST(emit_states_shows_loops_and_states_that_never_resume)
{
    Translated *t = translate("#include <asyncc.h>\n"
                              "async(int) spin(int n)\n"
                              "{\n"
                              "    for (int i = 0; i < n; i++)\n"
                              "        await(ac_yield());\n"
                              "    await(ac_box(spin(0)));\n"
                              "    for (;;)\n"
                              "        ;\n"
                              "}\n");
    char *s = states_of(t);
    find(s, "    0   unresumed -> 3, 4\n"
            "    3   await ac_yield() at line 5 -> 3, 4\n"
            "    4   await boxed spin() at line 6 -> (never resumes)\n");
}
END_TEST

static Suite *emit_suite(void)
{
    Suite *s = suite_create("compiler_emit");
    TCase *tc = tcase_create("file");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, non_async_text_is_copied_byte_identical);
    tcase_add_test(tc, file_without_async_code_is_copied_after_the_header);
    tcase_add_test(tc, output_selects_the_lowered_reading_first);
    tcase_add_test(tc, line_directives_put_copied_text_back_on_its_source_lines);
    tcase_add_test(tc, line_directives_escape_the_file_name);
    tcase_add_test(tc, output_is_deterministic);
    tcase_add_test(tc, translation_compiles);
    suite_add_tcase(s, tc);

    tc = tcase_create("declarations");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, callee_frame_is_emitted_once_before_the_caller_that_embeds_it);
    tcase_add_test(tc, function_from_elsewhere_is_declared_through_its_vtable);
    tcase_add_test(tc, frame_init_poll_drop_and_vtable_follow_the_abi);
    tcase_add_test(tc, static_async_function_has_static_symbols);
    tcase_add_test(tc, prototype_inside_a_body_is_copied);
    tcase_add_test(tc, comment_in_the_result_type_does_not_break_the_output);
    suite_add_tcase(s, tc);

    tc = tcase_create("states");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, emit_states_lists_states_transitions_and_frame_slots);
    tcase_add_test(tc, emit_states_shows_loops_and_states_that_never_resume);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    if (access("runtime/include/asyncc.h", R_OK) != 0) {
        fprintf(stderr, "compiler_emit: run from the repository root "
                        "(runtime/include/asyncc.h not found)\n");
        return EXIT_FAILURE;
    }
    SRunner *sr = srunner_create(emit_suite());
    srunner_set_fork_status(sr, CK_FORK); /* diag_error_count() is per process */
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

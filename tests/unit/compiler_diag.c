/*
 * compiler_diag.c: the one diagnostic printer (compiler/diag.c).
 *
 * Every diagnostic reads `path:line:col: kind: message`, then the source line
 * and a caret under the column, each indented by two spaces. Diagnostics are
 * captured into a buffer (diag_capture) and compared as text. The error count
 * is global to the process, so these tests rely on Check's fork mode: each
 * test starts from zero.
 */
#include "compiler.h"

#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static Source source(const char *text)
{
    return (Source){.path = "t.ac", .text = text, .len = (uint32_t)strlen(text)};
}

/* Byte offset of the first occurrence of `what` in `text` (which must hold it). */
static uint32_t offset_of(const char *text, const char *what)
{
    const char *p = strstr(text, what);
    ck_assert_msg(p != NULL, "'%s' is not in the test input", what);
    return (uint32_t)(p - text);
}

START_TEST(diagnostic_has_line_col_and_caret)
{
    const char *text = "int a;\n  int b = x;\nint c;\n";
    Source src = source(text);
    Buf b = {0};
    diag_capture(&b);
    diag_error(&src, offset_of(text, "x;"), "use of '%s'", "x");
    diag_capture(NULL);
    ck_assert_str_eq(b.data, "t.ac:2:11: error: use of 'x'\n"
                             "    int b = x;\n"
                             "            ^\n");
}
END_TEST

START_TEST(error_at_start_of_file_is_line_1_col_1)
{
    const char *text = "bad\nrest\n";
    Source src = source(text);
    Buf b = {0};
    diag_capture(&b);
    diag_error(&src, 0, "here");
    diag_capture(NULL);
    ck_assert_str_eq(b.data, "t.ac:1:1: error: here\n  bad\n  ^\n");
}
END_TEST

START_TEST(error_on_last_line_without_newline_quotes_it)
{
    const char *text = "int a;\nint b";
    Source src = source(text);
    Buf b = {0};
    diag_capture(&b);
    diag_error(&src, offset_of(text, "b"), "no semicolon");
    diag_capture(NULL);
    ck_assert_str_eq(b.data, "t.ac:2:5: error: no semicolon\n  int b\n      ^\n");
}
END_TEST

START_TEST(offset_past_the_end_points_at_end_of_last_line)
{
    const char *text = "ab\ncd";
    Source src = source(text);
    int line = 0, col = 0;
    diag_position(&src, 1000, &line, &col);
    ck_assert_int_eq(line, 2);
    ck_assert_int_eq(col, 3);
    Buf b = {0};
    diag_capture(&b);
    diag_error(&src, 1000, "eof");
    diag_capture(NULL);
    ck_assert_str_eq(b.data, "t.ac:2:3: error: eof\n  cd\n    ^\n");
}
END_TEST

START_TEST(position_counts_lines_and_byte_columns_from_1)
{
    const char *text = "a\n\nxyz\n";
    Source src = source(text);
    int line, col;
    diag_position(&src, 0, &line, &col);
    ck_assert_int_eq(line, 1);
    ck_assert_int_eq(col, 1);
    diag_position(&src, 1, &line, &col); /* the first '\n' belongs to line 1 */
    ck_assert_int_eq(line, 1);
    ck_assert_int_eq(col, 2);
    diag_position(&src, 2, &line, &col); /* the empty line */
    ck_assert_int_eq(line, 2);
    ck_assert_int_eq(col, 1);
    diag_position(&src, 5, &line, &col); /* 'z' */
    ck_assert_int_eq(line, 3);
    ck_assert_int_eq(col, 3);
}
END_TEST

START_TEST(tabs_are_kept_so_the_caret_lines_up)
{
    const char *text = "\tint\tv = w;\n";
    Source src = source(text);
    Buf b = {0};
    diag_capture(&b);
    diag_error(&src, offset_of(text, "w"), "tab");
    diag_capture(NULL);
    /* Column counts bytes: the two tabs are one column each. */
    ck_assert_str_eq(b.data, "t.ac:1:10: error: tab\n"
                             "  \tint\tv = w;\n"
                             "  \t   \t    ^\n");
}
END_TEST

START_TEST(control_bytes_in_the_quoted_line_show_as_question_marks)
{
    const char *text = "a\033[31mb = c;\n";
    Source src = source(text);
    Buf b = {0};
    diag_capture(&b);
    diag_error(&src, offset_of(text, "c;"), "ctl");
    diag_capture(NULL);
    ck_assert_str_eq(b.data, "t.ac:1:11: error: ctl\n  a?[31mb = c;\n            ^\n");
}
END_TEST

START_TEST(long_line_is_quoted_up_to_200_bytes)
{
    char text[600];
    memset(text, 'x', 500);
    memcpy(text + 10, "err", 3);
    text[500] = '\n';
    text[501] = 0;
    Source src = source(text);
    Buf b = {0};
    diag_capture(&b);
    diag_error(&src, 10, "long");
    diag_capture(NULL);
    const char *quoted = strchr(b.data, '\n') + 1;
    const char *eol = strchr(quoted, '\n');
    ck_assert_int_eq((int)(eol - quoted), 2 + 200);
    ck_assert_str_eq(eol + 1, "            ^\n");
}
END_TEST

START_TEST(caret_far_into_a_long_line_is_shown_in_a_window_around_it)
{
    char text[600];
    memset(text, 'x', 500);
    memcpy(text + 300, "err", 3);
    text[500] = '\n';
    text[501] = 0;
    Source src = source(text);
    Buf b = {0};
    diag_capture(&b);
    diag_error(&src, 300, "far");
    diag_capture(NULL);
    /* The position is the real one; the quote starts 100 bytes before it. */
    const char *head = "t.ac:1:301: error: far\n";
    ck_assert_int_eq(strncmp(b.data, head, strlen(head)), 0);
    const char *quoted = b.data + strlen(head);
    const char *eol = strchr(quoted, '\n');
    ck_assert_int_eq((int)(eol - quoted), 2 + 200);
    ck_assert_int_eq(strncmp(quoted + 2 + 100, "err", 3), 0);
    char caret[128];
    memset(caret, ' ', 2 + 100);
    strcpy(caret + 2 + 100, "^\n");
    ck_assert_str_eq(eol + 1, caret);
}
END_TEST

START_TEST(long_message_keeps_its_lines_when_captured)
{
    /* clang's messages quote identifiers, which may be long. */
    char name[1100];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = 0;
    const char *text = "int x;\n";
    Source src = source(text);
    Buf b = {0};
    diag_capture(&b);
    diag_error(&src, 4, "use of undeclared identifier '%s'", name);
    diag_capture(NULL);
    /* Truncated or not, a diagnostic is three lines: position and message,
     * the quoted source line, the caret. */
    char *second = strchr(b.data, '\n');
    ck_assert_ptr_nonnull(second);
    ck_assert_str_eq(second, "\n  int x;\n      ^\n");
}
END_TEST

START_TEST(warning_and_note_are_labelled_and_not_counted)
{
    const char *text = "int x;\n";
    Source src = source(text);
    Buf b = {0};
    diag_capture(&b);
    diag_warning(&src, 4, "w %d", 1);
    diag_note(&src, 0, "n %d", 2);
    diag_capture(NULL);
    ck_assert_int_eq(diag_error_count(), 0);
    ck_assert_str_eq(b.data, "t.ac:1:5: warning: w 1\n  int x;\n      ^\n"
                             "t.ac:1:1: note: n 2\n  int x;\n  ^\n");
}
END_TEST

START_TEST(errors_are_counted)
{
    const char *text = "int x;\n";
    Source src = source(text);
    Buf b = {0};
    diag_capture(&b);
    ck_assert_int_eq(diag_error_count(), 0);
    diag_error(&src, 0, "one");
    ck_assert_int_eq(diag_error_count(), 1);
    diag_error(&src, 0, "two");
    diag_fatal("three");
    diag_capture(NULL);
    ck_assert_int_eq(diag_error_count(), 3);
}
END_TEST

START_TEST(fatal_error_has_no_position)
{
    Buf b = {0};
    diag_capture(&b);
    diag_fatal("cannot open %s", "nowhere.ac");
    diag_capture(NULL);
    ck_assert_str_eq(b.data, "asyncc: error: cannot open nowhere.ac\n");
}
END_TEST

START_TEST(diagnostics_go_to_stderr_when_not_captured)
{
    /* Point stderr at a temporary file, report, and read the file back. */
    FILE *tmp = tmpfile();
    ck_assert_ptr_nonnull(tmp);
    fflush(stderr);
    int saved = dup(2);
    ck_assert_int_ge(saved, 0);
    ck_assert_int_eq(dup2(fileno(tmp), 2), 2);
    Buf b = {0};
    diag_capture(&b);
    diag_capture(NULL); /* capturing and stopping again restores stderr */
    const char *text = "x\n";
    Source src = source(text);
    diag_error(&src, 0, "to stderr");
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    ck_assert_ptr_null(b.data);
    char got[256] = {0};
    rewind(tmp);
    size_t n = fread(got, 1, sizeof got - 1, tmp);
    fclose(tmp);
    got[n] = 0;
    ck_assert_str_eq(got, "t.ac:1:1: error: to stderr\n  x\n  ^\n");
}
END_TEST

typedef struct ThreadArg {
    const Source *src; /* what to report on */
    Buf buf;           /* the thread's own capture */
} ThreadArg;

static void *report_on_thread(void *p)
{
    ThreadArg *a = p;
    diag_capture(&a->buf);
    diag_error(a->src, 0, "from the thread");
    diag_capture(NULL);
    return NULL;
}

START_TEST(capture_is_per_thread)
{
    const char *text = "x\n";
    Source src = source(text);
    Buf mine = {0};
    diag_capture(&mine);
    ThreadArg a = {.src = &src};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, report_on_thread, &a), 0);
    pthread_join(th, NULL);
    diag_error(&src, 0, "from main");
    diag_capture(NULL);
    ck_assert_str_eq(a.buf.data, "t.ac:1:1: error: from the thread\n  x\n  ^\n");
    ck_assert_str_eq(mine.data, "t.ac:1:1: error: from main\n  x\n  ^\n");
    ck_assert_int_eq(diag_error_count(), 2); /* the count is shared by all threads */
}
END_TEST

static Suite *diag_suite(void)
{
    Suite *s = suite_create("compiler_diag");
    TCase *tc = tcase_create("diag");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, diagnostic_has_line_col_and_caret);
    tcase_add_test(tc, error_at_start_of_file_is_line_1_col_1);
    tcase_add_test(tc, error_on_last_line_without_newline_quotes_it);
    tcase_add_test(tc, offset_past_the_end_points_at_end_of_last_line);
    tcase_add_test(tc, position_counts_lines_and_byte_columns_from_1);
    tcase_add_test(tc, tabs_are_kept_so_the_caret_lines_up);
    tcase_add_test(tc, control_bytes_in_the_quoted_line_show_as_question_marks);
    tcase_add_test(tc, long_line_is_quoted_up_to_200_bytes);
    tcase_add_test(tc, caret_far_into_a_long_line_is_shown_in_a_window_around_it);
    tcase_add_test(tc, long_message_keeps_its_lines_when_captured);
    tcase_add_test(tc, warning_and_note_are_labelled_and_not_counted);
    tcase_add_test(tc, errors_are_counted);
    tcase_add_test(tc, fatal_error_has_no_position);
    tcase_add_test(tc, diagnostics_go_to_stderr_when_not_captured);
    tcase_add_test(tc, capture_is_per_thread);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(diag_suite());
    srunner_set_fork_status(sr, CK_FORK); /* diag_error_count() is per process */
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

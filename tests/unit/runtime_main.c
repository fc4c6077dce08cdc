/*
 * runtime_main.c: the program entry point. libasyncc's main() (main.c) is
 * only `return ac__run_main(&async_main__vt, async_main__init, argc, argv);`,
 * and this binary has its own main(), so the tests call ac__run_main with
 * hand-lowered async_main futures and check the exit value and stderr.
 */
#define ASYNCC_RUNTIME_INTERNAL 1
#include <asyncc.h>

#include "../../runtime/src/internal.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * async(int) async_main(int argc, char **argv)
 * {
 *     await(ac_yield());
 *     return argc * 10 + (int)strlen(argv[argc - 1]);
 * }
 * The frame is over-aligned and large so that it comes from the arena's
 * uncached path; `deadlock` makes the await never wake (for the error path).
 */
struct main__frame {
    _Alignas(64) unsigned ac_state; /* 0 unresumed, 1 returned, 3 in the await */
    int argc;                       /* parameter */
    char **argv;                    /* parameter */
    struct ac_yield__frame ac_aw0;  /* the awaited yield */
    char big[2000];                 /* makes the frame larger than the arena caches */
};

static bool deadlock; /* poll returns pending without waking */

static void main__init(void *frame, int argc, char **argv)
{
    struct main__frame *f = frame;
    f->ac_state = AC_STATE_UNRESUMED;
    f->argc = argc;
    f->argv = argv;
}

static ac_poll_t main__poll(void *frame, ac_context *cx, void *out)
{
    struct main__frame *f = frame;
    switch (f->ac_state) {
    case AC_STATE_UNRESUMED:
        if (deadlock) {
            f->ac_state = AC_STATE_FIRST;
            return AC_PENDING;
        }
        ac_yield__init(&f->ac_aw0);
        f->ac_state = AC_STATE_FIRST;
        /* fallthrough */
    case AC_STATE_FIRST:
        if (ac_yield__poll(&f->ac_aw0, cx, NULL) == AC_PENDING)
            return AC_PENDING;
        break;
    default:
        ac__bad_resume("async_main", f->ac_state);
    }
    f->ac_state = AC_STATE_RETURNED;
    if (out)
        *(int *)out = f->argc * 10 + (int)strlen(f->argv[f->argc - 1]);
    return AC_READY;
}

static void main__drop(void *frame) { ((struct main__frame *)frame)->ac_state = AC_STATE_RETURNED; }

static const ac_future_vt int_main_vt = {
    sizeof(struct main__frame), _Alignof(struct main__frame), sizeof(int), main__poll, main__drop,
    "async_main",
};
static const ac_future_vt void_main_vt = {
    sizeof(struct main__frame), _Alignof(struct main__frame), 0, main__poll, main__drop,
    "async_main",
};
static const ac_future_vt long_main_vt = {
    sizeof(struct main__frame), _Alignof(struct main__frame), 2 * sizeof(int), main__poll,
    main__drop, "async_main",
};

/* Points stderr at a temporary file; stderr_text() returns what was written
 * and closes the file (stderr stays pointed at it, which is fine in a test). */
static FILE *captured;

static void capture_stderr(void)
{
    captured = tmpfile();
    ck_assert_ptr_nonnull(captured);
    fflush(stderr);
    ck_assert_int_ne(dup2(fileno(captured), STDERR_FILENO), -1);
}

static const char *stderr_text(void)
{
    static char buf[512];
    fflush(stderr);
    rewind(captured);
    size_t n = fread(buf, 1, sizeof buf - 1, captured);
    buf[n] = '\0';
    fclose(captured);
    return buf;
}

static char *args[] = {"prog", "hello", NULL};

START_TEST(run_main_returns_the_int_output_of_async_main)
{
    ck_assert_int_eq(ac__run_main(&int_main_vt, main__init, 2, args), 2 * 10 + 5);
}
END_TEST

START_TEST(run_main_of_void_async_main_returns_zero)
{
    ck_assert_int_eq(ac__run_main(&void_main_vt, main__init, 2, args), 0);
}
END_TEST

START_TEST(run_main_reports_deadlock_and_returns_one)
{
    deadlock = true;
    capture_stderr();
    ck_assert_int_eq(ac__run_main(&int_main_vt, main__init, 2, args), 1);
    ck_assert_str_eq(stderr_text(),
                     "asyncc: async_main: future is pending and nothing can wake it\n");
    deadlock = false;
}
END_TEST

START_TEST(run_main_rejects_output_that_is_not_int)
{
    capture_stderr();
    ck_assert_int_eq(ac__run_main(&long_main_vt, main__init, 2, args), 1);
    ck_assert_ptr_nonnull(strstr(stderr_text(), "asyncc: async_main: must return int or void"));
}
END_TEST

static Suite *main_suite(void)
{
    Suite *s = suite_create("runtime_main");
    TCase *tc = tcase_create("entry");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, run_main_returns_the_int_output_of_async_main);
    tcase_add_test(tc, run_main_of_void_async_main_returns_zero);
    tcase_add_test(tc, run_main_reports_deadlock_and_returns_one);
    tcase_add_test(tc, run_main_rejects_output_that_is_not_int);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(main_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

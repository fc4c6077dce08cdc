/*
 * runtime_panic.c: the traps generated code calls when a frame is resumed
 * in a state it cannot resume, or a non-void async function falls off its
 * end. Each must print its one-line message to stderr and abort; the tests
 * run the trap in a child process and read what it printed.
 */
#define ASYNCC_RUNTIME_INTERNAL 1
#include <asyncc.h>

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef enum trap { BAD_RESUME, NO_RETURN } trap;

/* Runs the trap in a child with stderr on a pipe; returns what the child
 * wrote (static buffer) and checks that it died of SIGABRT. */
static const char *run_trap(trap which, const char *fn, unsigned state)
{
    static char buf[512];
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    ck_assert_int_ne(pid, -1);
    if (pid == 0) {
        dup2(fds[1], STDERR_FILENO);
        close(fds[0]);
        close(fds[1]);
        if (which == BAD_RESUME)
            ac__bad_resume(fn, state);
        ac__no_return(fn);
    }
    close(fds[1]);
    size_t len = 0;
    ssize_t n;
    while (len < sizeof buf - 1 && (n = read(fds[0], buf + len, sizeof buf - 1 - len)) > 0)
        len += (size_t)n;
    buf[len] = '\0';
    close(fds[0]);
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFSIGNALED(status));
    ck_assert_int_eq(WTERMSIG(status), SIGABRT);
    return buf;
}

START_TEST(resume_after_completion_aborts_with_message)
{
    ck_assert_str_eq(run_trap(BAD_RESUME, "fetch", AC_STATE_RETURNED),
                     "asyncc: async function 'fetch' resumed after completion\n");
}
END_TEST

START_TEST(resume_after_poison_aborts_with_message)
{
    ck_assert_str_eq(run_trap(BAD_RESUME, "fetch", AC_STATE_POISONED),
                     "asyncc: async function 'fetch' resumed after it was poisoned\n");
}
END_TEST

START_TEST(resume_in_unknown_state_aborts_with_message)
{
    ck_assert_str_eq(run_trap(BAD_RESUME, "fetch", 77),
                     "asyncc: async function 'fetch' resumed in invalid state 77\n");
}
END_TEST

START_TEST(missing_return_aborts_with_message)
{
    ck_assert_str_eq(run_trap(NO_RETURN, "compute", 0),
                     "asyncc: reached the end of non-void async function 'compute'\n");
}
END_TEST

START_TEST(trap_without_function_name_still_reports)
{
    ck_assert_str_eq(run_trap(BAD_RESUME, NULL, AC_STATE_RETURNED),
                     "asyncc: async function '<unknown>' resumed after completion\n");
}
END_TEST

START_TEST(bad_resume_raises_sigabrt)
{
    ck_assert_ptr_nonnull(freopen("/dev/null", "w", stderr));
    ac__bad_resume("f", AC_STATE_RETURNED);
}
END_TEST

static Suite *panic_suite(void)
{
    Suite *s = suite_create("runtime_panic");
    TCase *tc = tcase_create("traps");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, resume_after_completion_aborts_with_message);
    tcase_add_test(tc, resume_after_poison_aborts_with_message);
    tcase_add_test(tc, resume_in_unknown_state_aborts_with_message);
    tcase_add_test(tc, missing_return_aborts_with_message);
    tcase_add_test(tc, trap_without_function_name_still_reports);
    tcase_add_test_raise_signal(tc, bad_resume_raises_sigabrt, SIGABRT);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(panic_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

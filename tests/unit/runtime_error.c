/*
 * runtime_error.c: the error code table and ac_strerror.
 */
#define ASYNCC_RUNTIME_INTERNAL 1
#include <asyncc.h>

#include <check.h>
#include <stdlib.h>
#include <string.h>

START_TEST(strerror_gives_the_table_text_of_every_code)
{
#define CHECK_TEXT(name, value, text) ck_assert_str_eq(ac_strerror(name), text);
    AC_ERRNO_MAP(CHECK_TEXT)
#undef CHECK_TEXT
}
END_TEST

START_TEST(error_codes_are_negative_and_distinct)
{
    static const int codes[] = {
#define LIST(name, value, text) name,
        AC_ERRNO_MAP(LIST)
#undef LIST
    };
    size_t n = sizeof codes / sizeof *codes;
    for (size_t i = 0; i < n; i++) {
        ck_assert_int_lt(codes[i], 0);
        for (size_t j = i + 1; j < n; j++)
            ck_assert_int_ne(codes[i], codes[j]);
    }
}
END_TEST

START_TEST(strerror_of_zero_is_success)
{
    ck_assert_str_eq(ac_strerror(0), "success");
}
END_TEST

START_TEST(strerror_of_unknown_code_is_not_null)
{
    ck_assert_str_eq(ac_strerror(-9999), "unknown error");
    ck_assert_str_eq(ac_strerror(5), "unknown error");
}
END_TEST

static Suite *error_suite(void)
{
    Suite *s = suite_create("runtime_error");
    TCase *tc = tcase_create("strerror");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, strerror_gives_the_table_text_of_every_code);
    tcase_add_test(tc, error_codes_are_negative_and_distinct);
    tcase_add_test(tc, strerror_of_zero_is_success);
    tcase_add_test(tc, strerror_of_unknown_code_is_not_null);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(error_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

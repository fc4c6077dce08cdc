/*
 * runtime_arena.c: ac_frame_alloc / ac_frame_free, the per-thread frame
 * cache. Leaks (in particular of the caches of exited threads) are checked by
 * running this binary under valgrind; the tests here check what is visible
 * from outside: alignment, reuse, and that frames cross threads.
 */
#define ASYNCC_RUNTIME_INTERNAL 1
#include <asyncc.h>

#include <check.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* A vtable that only describes a frame's shape; the arena reads no more. */
static ac_future_vt shape(size_t size, size_t align)
{
    return (ac_future_vt){size, align, 0, NULL, NULL, "shape"};
}

START_TEST(arena_reuses_freed_frames)
{
    ac_future_vt vt = shape(40, 8);
    void *a = ac_frame_alloc(&vt);
    ck_assert_ptr_nonnull(a);
    ac_frame_free(&vt, a);
    void *b = ac_frame_alloc(&vt);
    ck_assert_ptr_eq(a, b);
    ac_frame_free(&vt, b);
}
END_TEST

START_TEST(arena_reuses_frames_across_sizes_of_one_class)
{
    /* 33..48 bytes share a 16-byte class, so an await of a differently sized
     * future of that class still reuses the block. */
    ac_future_vt small = shape(33, 4), big = shape(48, 16);
    void *a = ac_frame_alloc(&small);
    ac_frame_free(&small, a);
    void *b = ac_frame_alloc(&big);
    ck_assert_ptr_eq(a, b);
    memset(b, 0xab, 48);
    ac_frame_free(&big, b);
}
END_TEST

START_TEST(arena_keeps_size_classes_apart)
{
    ac_future_vt small = shape(16, 8), big = shape(200, 8);
    void *a = ac_frame_alloc(&small);
    ac_frame_free(&small, a);
    void *b = ac_frame_alloc(&big);
    ck_assert_ptr_ne(a, b); /* a is still cached for 16-byte frames */
    memset(b, 0, 200);
    ac_frame_free(&big, b);
    ck_assert_ptr_eq(ac_frame_alloc(&small), a);
    ac_frame_free(&small, a);
}
END_TEST

START_TEST(arena_frames_are_last_in_first_out)
{
    ac_future_vt vt = shape(100, 8);
    void *p[8];
    for (int i = 0; i < 8; i++)
        p[i] = ac_frame_alloc(&vt);
    for (int i = 0; i < 8; i++)
        ac_frame_free(&vt, p[i]);
    for (int i = 7; i >= 0; i--)
        ck_assert_ptr_eq(ac_frame_alloc(&vt), p[i]);
    for (int i = 0; i < 8; i++)
        ac_frame_free(&vt, p[i]);
}
END_TEST

START_TEST(arena_honours_alignment)
{
    static const size_t aligns[] = {0, 1, 2, 4, 8, 16, 32, 64, 128, 4096};
    static const size_t sizes[] = {0, 1, 15, 16, 17, 100, 1023, 1024, 1025, 5000};
    for (size_t i = 0; i < sizeof aligns / sizeof *aligns; i++) {
        for (size_t j = 0; j < sizeof sizes / sizeof *sizes; j++) {
            ac_future_vt vt = shape(sizes[j], aligns[i]);
            size_t align = aligns[i] ? aligns[i] : 1;
            /* Twice, so the second comes from the cache when cached. */
            for (int k = 0; k < 2; k++) {
                unsigned char *p = ac_frame_alloc(&vt);
                ck_assert_ptr_nonnull(p);
                ck_assert_uint_eq((uintptr_t)p % align, 0);
                memset(p, 0x5a, sizes[j]); /* valgrind checks the bounds */
                ac_frame_free(&vt, p);
            }
        }
    }
}
END_TEST

START_TEST(arena_serves_large_frames)
{
    ac_future_vt vt = shape(1 << 20, 64);
    char *p = ac_frame_alloc(&vt);
    ck_assert_ptr_nonnull(p);
    p[0] = 1;
    p[(1 << 20) - 1] = 2;
    ac_frame_free(&vt, p);
}
END_TEST

START_TEST(arena_rejects_alignment_not_a_power_of_two)
{
    ac_future_vt vt = shape(32, 24);
    ck_assert_ptr_null(ac_frame_alloc(&vt));
}
END_TEST

START_TEST(arena_returns_null_when_memory_is_exhausted)
{
    ac_future_vt vt = shape((size_t)1 << 62, 8);
    ck_assert_ptr_null(ac_frame_alloc(&vt));
    vt = shape((size_t)1 << 62, 4096);
    ck_assert_ptr_null(ac_frame_alloc(&vt));
}
END_TEST

START_TEST(arena_free_of_null_is_ignored)
{
    ac_future_vt vt = shape(64, 8);
    ac_frame_free(&vt, NULL);
}
END_TEST

START_TEST(arena_cache_per_class_is_bounded)
{
    /* Free many more frames than a class caches: most must go back to
     * malloc. mallinfo2 reports nothing useful under valgrind (zero), in
     * which case this only exercises the path and valgrind checks leaks. */
    enum { N = 2000, SIZE = 1000 };
    ac_future_vt vt = shape(SIZE, 8);
    void **p = malloc(N * sizeof *p);
    for (int i = 0; i < N; i++)
        p[i] = ac_frame_alloc(&vt);
    size_t held = mallinfo2().uordblks;
    for (int i = 0; i < N; i++)
        ac_frame_free(&vt, p[i]);
    size_t after = mallinfo2().uordblks;
    if (held != 0)
        ck_assert_uint_ge(held - after, (size_t)(N - 256) * SIZE);
    free(p);
}
END_TEST

START_TEST(frame_new_returns_an_aligned_frame)
{
    ac_future_vt vt = shape(48, 32);
    void *p = ac__frame_new(&vt);
    ck_assert_uint_eq((uintptr_t)p % 32, 0);
    ac_frame_free(&vt, p);
}
END_TEST

START_TEST(frame_new_aborts_naming_the_future_when_memory_is_exhausted)
{
    /* In a child of our own, so the message can be read and so that the
     * test also works without Check's fork mode. */
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    ck_assert_int_ne(pid, -1);
    if (pid == 0) {
        dup2(fds[1], STDERR_FILENO);
        ac_future_vt vt = shape((size_t)1 << 62, 8);
        ac__frame_new(&vt);
        _exit(0); /* not reached */
    }
    close(fds[1]);
    char buf[256];
    size_t len = 0;
    ssize_t n;
    while (len < sizeof buf - 1 && (n = read(fds[0], buf + len, sizeof buf - 1 - len)) > 0)
        len += (size_t)n;
    buf[len] = '\0';
    close(fds[0]);
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
    ck_assert_str_eq(buf, "asyncc: out of memory for the frame of 'shape' (4611686018427387904 bytes)\n");
}
END_TEST

static void *alloc_some(void *arg)
{
    ac_future_vt vt = shape(64, 8);
    void *p = ac_frame_alloc(&vt);
    if (arg) {
        *(void **)arg = p; /* handed to the caller's thread */
        return NULL;
    }
    /* Leave frames of several classes cached when the thread exits. */
    for (size_t size = 16; size <= 1024; size += 16) {
        ac_future_vt v = shape(size, 8);
        void *q[4];
        for (int i = 0; i < 4; i++)
            q[i] = ac_frame_alloc(&v);
        for (int i = 0; i < 4; i++)
            ac_frame_free(&v, q[i]);
    }
    ac_frame_free(&vt, p);
    return NULL;
}

START_TEST(arena_frames_can_be_freed_on_another_thread)
{
    ac_future_vt vt = shape(64, 8);
    void *p = NULL;
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, alloc_some, &p), 0);
    pthread_join(t, NULL);
    ck_assert_ptr_nonnull(p);
    ac_frame_free(&vt, p);
    ck_assert_ptr_eq(ac_frame_alloc(&vt), p); /* now in this thread's cache */
    ac_frame_free(&vt, p);
}
END_TEST

START_TEST(arena_cache_of_exited_thread_is_released)
{
    /* One malloc arena for all threads, so that mallinfo2 (which reports
     * the main arena) sees the threads' blocks. */
    mallopt(M_ARENA_MAX, 1);
    size_t before = mallinfo2().uordblks;
    for (int i = 0; i < 8; i++) {
        pthread_t t;
        ck_assert_int_eq(pthread_create(&t, NULL, alloc_some, NULL), 0);
        pthread_join(t, NULL);
    }
    size_t after = mallinfo2().uordblks;
    /* Each thread cached 4 blocks of every class (about 130 KiB); none may
     * survive it. Thread stacks are not malloc'd, so a small slack covers
     * glibc's own bookkeeping. */
    if (before != 0)
        ck_assert_uint_lt(after, before + 16 * 1024);
}
END_TEST

static Suite *arena_suite(void)
{
    Suite *s = suite_create("runtime_arena");
    TCase *tc = tcase_create("arena");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, arena_reuses_freed_frames);
    tcase_add_test(tc, arena_reuses_frames_across_sizes_of_one_class);
    tcase_add_test(tc, arena_keeps_size_classes_apart);
    tcase_add_test(tc, arena_frames_are_last_in_first_out);
    tcase_add_test(tc, arena_honours_alignment);
    tcase_add_test(tc, arena_serves_large_frames);
    tcase_add_test(tc, arena_rejects_alignment_not_a_power_of_two);
    tcase_add_test(tc, arena_returns_null_when_memory_is_exhausted);
    tcase_add_test(tc, arena_free_of_null_is_ignored);
    tcase_add_test(tc, frame_new_returns_an_aligned_frame);
    tcase_add_test(tc, frame_new_aborts_naming_the_future_when_memory_is_exhausted);
    tcase_add_test(tc, arena_cache_per_class_is_bounded);
    tcase_add_test(tc, arena_frames_can_be_freed_on_another_thread);
    tcase_add_test(tc, arena_cache_of_exited_thread_is_released);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(arena_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/*
 * runtime_cpus.c: the default worker count (cpus.c). The cgroup quota is
 * read from made-up /proc and cgroup trees under a temporary directory, as
 * the kernel lays them out for cgroup v2, v1, a container that sees its own
 * cgroup as a mount's root, and a hybrid system; the affinity part is
 * checked on the real thread.
 */
#define _GNU_SOURCE /* sched_setaffinity */
#define ASYNCC_RUNTIME_INTERNAL 1
#include <asyncc.h>

#include "../../runtime/src/internal.h"

#include <check.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char top[64]; /* the made-up root: every path below goes under it */

static void make_top(void)
{
    strcpy(top, "/tmp/asyncc-cpus-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(top));
}

/* Writes `text` to top/path, making the directories on the way. */
static void put(const char *path, const char *text)
{
    char full[512];
    snprintf(full, sizeof full, "%s%s", top, path);
    for (char *p = full + strlen(top) + 1; (p = strchr(p, '/')); p++) {
        *p = '\0';
        ck_assert(mkdir(full, 0755) == 0 || access(full, F_OK) == 0);
        *p = '/';
    }
    FILE *f = fopen(full, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static void remove_top(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", top);
    ck_assert_int_eq(system(cmd), 0);
}

#define MOUNT_V2 "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"

START_TEST(v2_quota_is_the_smallest_on_the_way_up_rounded_up)
{
    make_top();
    put("/proc/self/cgroup", "0::/kubepods/pod1/ctr\n");
    put("/proc/self/mountinfo", "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n" MOUNT_V2);
    put("/sys/fs/cgroup/kubepods/pod1/ctr/cpu.max", "max 100000\n");
    put("/sys/fs/cgroup/kubepods/pod1/cpu.max", "250000 100000\n"); /* 2.5: 3 CPUs */
    put("/sys/fs/cgroup/kubepods/cpu.max", "800000 100000\n");
    ck_assert_int_eq(ac__cgroup_cpu_limit(top), 3);
    put("/sys/fs/cgroup/kubepods/pod1/ctr/cpu.max", "50000 100000\n"); /* half a CPU: 1 */
    ck_assert_int_eq(ac__cgroup_cpu_limit(top), 1);
    remove_top();
}
END_TEST

START_TEST(v2_without_a_quota_anywhere_is_no_limit)
{
    make_top();
    put("/proc/self/cgroup", "0::/user.slice/session-1.scope\n");
    put("/proc/self/mountinfo", MOUNT_V2);
    put("/sys/fs/cgroup/user.slice/session-1.scope/cpu.max", "max 100000\n");
    put("/sys/fs/cgroup/user.slice/cpu.max", "max 100000\n");
    ck_assert_int_eq(ac__cgroup_cpu_limit(top), 0);
    remove_top();
}
END_TEST

START_TEST(v2_in_a_cgroup_namespace_reads_the_mount_itself)
{
    /* docker --cpus=2 with a private cgroup namespace: the container's
     * cgroup is "/" and the mount shows it at /sys/fs/cgroup. */
    make_top();
    put("/proc/self/cgroup", "0::/\n");
    put("/proc/self/mountinfo", MOUNT_V2);
    put("/sys/fs/cgroup/cpu.max", "200000 100000\n");
    ck_assert_int_eq(ac__cgroup_cpu_limit(top), 2);
    remove_top();
}
END_TEST

START_TEST(v1_quota_comes_from_the_hierarchy_with_the_cpu_controller)
{
    make_top();
    put("/proc/self/cgroup", "5:memory:/job\n"
                             "4:cpu,cpuacct:/job/task\n"
                             "3:cpuset:/\n"
                             "0::/\n");
    put("/proc/self/mountinfo",
        "31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755\n"
        "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
        "33 31 0:30 / /sys/fs/cgroup/cpuset rw - cgroup cgroup rw,cpuset\n"
        "34 31 0:31 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
        "35 31 0:32 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n");
    put("/sys/fs/cgroup/cpu,cpuacct/job/task/cpu.cfs_quota_us", "-1\n");
    put("/sys/fs/cgroup/cpu,cpuacct/job/task/cpu.cfs_period_us", "100000\n");
    put("/sys/fs/cgroup/cpu,cpuacct/job/cpu.cfs_quota_us", "150000\n");
    put("/sys/fs/cgroup/cpu,cpuacct/job/cpu.cfs_period_us", "100000\n");
    put("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "-1\n");
    put("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n");
    /* Another controller's hierarchy does not count. (The unified tree of a
     * hybrid system has no cpu.max: the cpu controller is v1's.) */
    put("/sys/fs/cgroup/cpuset/cpu.cfs_quota_us", "100000\n");
    put("/sys/fs/cgroup/cpuset/cpu.cfs_period_us", "100000\n");
    put("/sys/fs/cgroup/unified/cgroup.controllers", "\n");
    ck_assert_int_eq(ac__cgroup_cpu_limit(top), 2);
    remove_top();
}
END_TEST

START_TEST(v1_mount_rooted_at_the_containers_cgroup_reads_from_there_up)
{
    /* A container without a cgroup namespace: /proc/self/cgroup names the
     * host's path, and the mount shows only that cgroup. */
    make_top();
    put("/proc/self/cgroup", "2:cpu,cpuacct:/docker/abc\n");
    put("/proc/self/mountinfo",
        "40 31 0:29 /docker/abc /sys/fs/cgroup/cpu,cpuacct ro - cgroup cgroup rw,cpu,cpuacct\n");
    put("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "400000\n");
    put("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n");
    ck_assert_int_eq(ac__cgroup_cpu_limit(top), 4);
    /* A cgroup outside what the mount shows is not guessed at. */
    put("/proc/self/cgroup", "2:cpu,cpuacct:/other\n");
    ck_assert_int_eq(ac__cgroup_cpu_limit(top), 0);
    remove_top();
}
END_TEST

START_TEST(missing_or_malformed_files_mean_no_limit)
{
    make_top();
    ck_assert_int_eq(ac__cgroup_cpu_limit(top), 0); /* no /proc at all */
    put("/proc/self/cgroup", "0::/a\n");
    ck_assert_int_eq(ac__cgroup_cpu_limit(top), 0); /* no mountinfo */
    put("/proc/self/mountinfo", "garbage\n" MOUNT_V2);
    ck_assert_int_eq(ac__cgroup_cpu_limit(top), 0); /* no cpu.max */
    put("/sys/fs/cgroup/a/cpu.max", "lots 100000\n");
    ck_assert_int_eq(ac__cgroup_cpu_limit(top), 0);
    put("/sys/fs/cgroup/a/cpu.max", "100000 0\n");
    ck_assert_int_eq(ac__cgroup_cpu_limit(top), 0);
    put("/sys/fs/cgroup/a/cpu.max", "100000 100000\n");
    ck_assert_int_eq(ac__cgroup_cpu_limit(top), 1);
    remove_top();
}
END_TEST

/* Workers of a default runtime built on this thread. */
static int default_workers(void)
{
    ac_runtime *rt;
    ck_assert_int_eq(ac_runtime_new(NULL, &rt), 0);
    int n = (int)ac__runtime_config(rt)->workers;
    ac_runtime_free(rt);
    return n;
}

START_TEST(default_workers_are_one_per_cpu_the_thread_may_run_on)
{
    /* The affinity mask, not the online count: under taskset or a cpuset
     * a worker per online CPU would only take turns. (This process's own
     * cgroup quota, if it has one, lowers both counts alike.) */
    long quota = ac__cgroup_cpu_limit("");
    cpu_set_t all, one;
    ck_assert_int_eq(sched_getaffinity(0, sizeof all, &all), 0);
    long expect = CPU_COUNT(&all);
    if (quota && quota < expect)
        expect = quota;
    ck_assert_int_eq(default_workers(), expect);
    ck_assert_int_eq(ac__usable_cpus(), expect);
    int first = 0;
    while (!CPU_ISSET(first, &all))
        first++;
    CPU_ZERO(&one);
    CPU_SET(first, &one);
    ck_assert_int_eq(sched_setaffinity(0, sizeof one, &one), 0);
    ck_assert_int_eq(default_workers(), 1);
    ck_assert_int_eq(sched_setaffinity(0, sizeof all, &all), 0);
}
END_TEST

static Suite *cpus_suite(void)
{
    Suite *s = suite_create("runtime_cpus");
    TCase *tc = tcase_create("quota");
    tcase_add_test(tc, v2_quota_is_the_smallest_on_the_way_up_rounded_up);
    tcase_add_test(tc, v2_without_a_quota_anywhere_is_no_limit);
    tcase_add_test(tc, v2_in_a_cgroup_namespace_reads_the_mount_itself);
    tcase_add_test(tc, v1_quota_comes_from_the_hierarchy_with_the_cpu_controller);
    tcase_add_test(tc, v1_mount_rooted_at_the_containers_cgroup_reads_from_there_up);
    tcase_add_test(tc, missing_or_malformed_files_mean_no_limit);
    suite_add_tcase(s, tc);
    tc = tcase_create("workers");
    tcase_add_test(tc, default_workers_are_one_per_cpu_the_thread_may_run_on);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(cpus_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

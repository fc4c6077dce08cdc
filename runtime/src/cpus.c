/*
 * cpus.c: how many CPUs a runtime's default worker count may use.
 *
 * Two limits count, as Tokio's default (num_cpus) counts them:
 *  - the calling thread's affinity mask, which taskset and container
 *    cpusets narrow (sched_getaffinity);
 *  - the process's cgroup CPU quota, which `docker --cpus`, Kubernetes CPU
 *    limits and systemd's CPUQuota set: quota / period CPUs' worth of time
 *    per period, rounded up. More workers than that only burn the quota
 *    sooner, and then the whole cgroup waits for the next period.
 *
 * A quota is found as the kernel applies it: the process's cgroup
 * (/proc/self/cgroup) in a hierarchy with the cpu controller, mounted where
 * /proc/self/mountinfo says, and every ancestor up to that mount's root;
 * the smallest quota on the way counts. cgroup v2 keeps it in cpu.max
 * ("QUOTA PERIOD", or "max PERIOD" for none), v1 in cpu.cfs_quota_us (-1
 * for none) and cpu.cfs_period_us. Anything missing or unreadable means no
 * quota: the count is a hint, never a reason to fail.
 */
#define _GNU_SOURCE /* CPU_ALLOC, getline */
#include "internal.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PATH_BYTES 1024 /* longer paths are taken to have no quota */

/* Whether the comma-separated list `list` (length n) holds `word`. */
static bool list_has(const char *list, size_t n, const char *word)
{
    size_t w = strlen(word);
    for (const char *p = list, *end = list + n; p < end;) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        size_t len = comma ? (size_t)(comma - p) : (size_t)(end - p);
        if (len == w && memcmp(p, word, w) == 0)
            return true;
        p += len + 1;
    }
    return false;
}

/* Opens prefix/dir/name for reading; NULL if the path is too long or the
 * file cannot be opened. */
static FILE *open_in(const char *prefix, const char *dir, const char *name)
{
    char full[PATH_BYTES];
    if ((size_t)snprintf(full, sizeof full, "%s%s/%s", prefix, dir, name) >= sizeof full)
        return NULL;
    return fopen(full, "re");
}

/* Reads the first line of prefix/dir/name into buf; false if there is none. */
static bool read_line(const char *prefix, const char *dir, const char *name, char *buf,
                      size_t size)
{
    FILE *f = open_in(prefix, dir, name);
    if (!f)
        return false;
    bool ok = fgets(buf, (int)size, f) != NULL;
    fclose(f);
    return ok;
}

/* The tighter of two quotas, 0 meaning none. */
static long tighter(long a, long b) { return a && (!b || a < b) ? a : b; }

/* The quota of one cgroup directory in CPUs (rounded up), or 0: none. */
static long dir_quota(const char *prefix, const char *dir, bool v2)
{
    char line[128];
    long long quota, period;
    if (v2) {
        if (!read_line(prefix, dir, "cpu.max", line, sizeof line) ||
            sscanf(line, "%lld %lld", &quota, &period) != 2) /* "max ...": none */
            return 0;
    } else {
        if (!read_line(prefix, dir, "cpu.cfs_quota_us", line, sizeof line) ||
            sscanf(line, "%lld", &quota) != 1 ||
            !read_line(prefix, dir, "cpu.cfs_period_us", line, sizeof line) ||
            sscanf(line, "%lld", &period) != 1)
            return 0;
    }
    if (quota <= 0 || period <= 0)
        return 0;
    long long cpus = (quota + period - 1) / period;
    return cpus > 0x7fffffff ? 0x7fffffff : (long)cpus;
}

/* The smallest quota from the cgroup `cgpath` of the hierarchy mounted at
 * `mnt` (which shows the hierarchy from `root` down) up to that root, or 0. */
static long walk_quota(const char *prefix, const char *mnt, const char *root, const char *cgpath,
                       bool v2)
{
    size_t rootlen = strcmp(root, "/") == 0 ? 0 : strlen(root);
    if (strncmp(cgpath, root, rootlen) != 0 || (cgpath[rootlen] != '/' && cgpath[rootlen]))
        return 0; /* the cgroup lies outside what this mount shows */
    char dir[PATH_BYTES];
    if ((size_t)snprintf(dir, sizeof dir, "%s%s", mnt, cgpath + rootlen) >= sizeof dir)
        return 0;
    size_t mntlen = strlen(mnt);
    long best = 0;
    for (;;) {
        size_t len = strlen(dir);
        while (len > mntlen && dir[len - 1] == '/') /* "/sys/fs/cgroup/": the mount itself */
            dir[--len] = '\0';
        best = tighter(best, dir_quota(prefix, dir, v2));
        if (len <= mntlen)
            return best;
        char *slash = strrchr(dir + mntlen, '/');
        if (!slash)
            return best;
        *slash = '\0';
    }
}

/* The process's cgroup paths from /proc/self/cgroup: cg[0] in the v1
 * hierarchy that has the cpu controller, cg[1] in the v2 one; have[i] says
 * which were found. */
static void own_cgroups(const char *prefix, char cg[2][PATH_BYTES], bool have[2])
{
    have[0] = have[1] = false;
    FILE *f = open_in(prefix, "/proc/self", "cgroup");
    if (!f)
        return;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        /* ID:CONTROLLERS:PATH; v2's line is 0 with no controllers. */
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        size_t ncontrollers = (size_t)(c2 - c1 - 1);
        int v2 = ncontrollers == 0 && strncmp(line, "0:", 2) == 0;
        if (have[v2] || (!v2 && !list_has(c1 + 1, ncontrollers, "cpu")))
            continue;
        char *path = c2 + 1;
        path[strcspn(path, "\n")] = '\0';
        if (strlen(path) < PATH_BYTES) {
            strcpy(cg[v2], path);
            have[v2] = true;
        }
    }
    free(line);
    fclose(f);
}

long ac__cgroup_cpu_limit(const char *prefix)
{
    char cg[2][PATH_BYTES];
    bool have[2];
    own_cgroups(prefix, cg, have);
    if (!have[0] && !have[1])
        return 0;
    FILE *f = open_in(prefix, "/proc/self", "mountinfo");
    if (!f)
        return 0;
    char *line = NULL;
    size_t cap = 0;
    long best = 0;
    while (getline(&line, &cap, f) > 0) {
        /* ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS */
        char root[PATH_BYTES], mnt[PATH_BYTES];
        if (sscanf(line, "%*s %*s %*s %1023s %1023s", root, mnt) != 2)
            continue;
        char *dash = strstr(line, " - ");
        if (!dash)
            continue;
        char fstype[32], source[PATH_BYTES], super[PATH_BYTES];
        int fields = sscanf(dash + 3, "%31s %1023s %1023s", fstype, source, super);
        bool v2 = fields >= 1 && strcmp(fstype, "cgroup2") == 0;
        bool v1 = fields == 3 && strcmp(fstype, "cgroup") == 0 && list_has(super, strlen(super), "cpu");
        if ((v2 && have[1]) || (v1 && have[0])) {
            /* Mount fields escape spaces as \040; such paths are not ours to guess. */
            if (strchr(root, '\\') || strchr(mnt, '\\'))
                continue;
            best = tighter(best, walk_quota(prefix, mnt, root, cg[v2], v2));
        }
    }
    free(line);
    fclose(f);
    return best;
}

long ac__usable_cpus(void)
{
    long n = 0;
    for (size_t ncpus = CPU_SETSIZE; ncpus <= (size_t)1 << 20; ncpus *= 2) {
        cpu_set_t *set = CPU_ALLOC(ncpus);
        if (!set)
            break;
        size_t size = CPU_ALLOC_SIZE(ncpus);
        int rc = sched_getaffinity(0, size, set);
        int err = errno;
        if (rc == 0)
            n = CPU_COUNT_S(size, set);
        CPU_FREE(set);
        if (rc == 0 || err != EINVAL) /* EINVAL: the kernel's mask is larger than ours */
            break;
    }
    if (n < 1)
        n = sysconf(_SC_NPROCESSORS_ONLN);
    long quota = ac__cgroup_cpu_limit("");
    return quota && quota < n ? quota : n;
}

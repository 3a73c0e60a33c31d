/*
 * cgroup.c - CPUs from the cgroup CPU quota (see cgroup.h).
 *
 * A container's CPU limit is a quota of CPU time per period, not a set of
 * CPUs: a 2-CPU pod on a 64-core node sees 64 CPUs online. Every level of
 * the cgroup path may set a quota; the tightest one applies.
 */
#define _GNU_SOURCE
#include "cgroup.h"

#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ceil(quota / period), or 0 for no quota. */
static long quota_cpus(long long quota, long long period)
{
    if (quota <= 0 || period <= 0)
        return 0;
    long long n = (quota + period - 1) / period;
    return n > INT_MAX ? INT_MAX : (long)n;
}

/* cgroup v2 cpu.max: "max 100000" or "200000 100000". */
static long read_v2(const char *dir)
{
    char path[PATH_MAX + 16], quota[32];
    long long period = 0;
    snprintf(path, sizeof(path), "%s/cpu.max", dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    int n = fscanf(f, "%31s %lld", quota, &period);
    fclose(f);
    if (n < 1 || strcmp(quota, "max") == 0)
        return 0;
    if (n < 2)
        period = 100000; /* the kernel's default period */
    char *end;
    long long q = strtoll(quota, &end, 10);
    return *end ? 0 : quota_cpus(q, period);
}

static long long read_ll(const char *dir, const char *name)
{
    char path[PATH_MAX + 32];
    long long v = 0;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    if (fscanf(f, "%lld", &v) != 1)
        v = 0;
    fclose(f);
    return v;
}

/* cgroup v1: cpu.cfs_quota_us (-1: none) over cpu.cfs_period_us. */
static long read_v1(const char *dir)
{
    return quota_cpus(read_ll(dir, "cpu.cfs_quota_us"), read_ll(dir, "cpu.cfs_period_us"));
}

static int is_dir(const char *path)
{
    return access(path, X_OK) == 0;
}

/* The tightest quota from base+path up to base. */
static long walk(const char *base, const char *path, long (*read)(const char *))
{
    char dir[PATH_MAX];
    int n = snprintf(dir, sizeof(dir), "%s%s", base, strcmp(path, "/") == 0 ? "" : path);
    if (n < 0 || (size_t)n >= sizeof(dir) || !is_dir(dir))
        snprintf(dir, sizeof(dir), "%s", base); /* not mounted as named: our own root */
    size_t base_len = strlen(base);
    long best = 0;
    for (;;) {
        long q = read(dir);
        if (q > 0 && (best == 0 || q < best))
            best = q;
        char *slash = strrchr(dir, '/');
        if (strlen(dir) <= base_len || !slash || (size_t)(slash - dir) < base_len)
            break;
        *slash = '\0';
    }
    return best;
}

/* Whether a v1 controller list ("cpu,cpuacct") names cpu. */
static int names_cpu(const char *list)
{
    char copy[256];
    snprintf(copy, sizeof(copy), "%s", list);
    char *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
        if (strcmp(t, "cpu") == 0)
            return 1;
    return 0;
}

int cgroup_cpu_quota(const char *root, const char *proc_cgroup)
{
    FILE *f = fopen(proc_cgroup, "r");
    if (!f)
        return 0;
    char line[PATH_MAX + 256];
    char v2_path[PATH_MAX] = "", v1_path[PATH_MAX] = "", v1_ctl[256] = "";
    int have_v2 = 0, have_v1 = 0;
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        *c1 = *c2 = '\0';
        const char *ctl = c1 + 1, *path = c2 + 1;
        if (path[0] != '/')
            continue;
        if (strcmp(line, "0") == 0 && ctl[0] == '\0') {
            snprintf(v2_path, sizeof(v2_path), "%s", path);
            have_v2 = 1;
        } else if (names_cpu(ctl)) {
            snprintf(v1_ctl, sizeof(v1_ctl), "%s", ctl);
            snprintf(v1_path, sizeof(v1_path), "%s", path);
            have_v1 = 1;
        }
    }
    fclose(f);
    char base[PATH_MAX];
    if (have_v1) { /* v1, or hybrid with the cpu controller on v1 */
        const char *mounts[] = {v1_ctl, "cpu,cpuacct", "cpuacct,cpu", "cpu"};
        for (size_t i = 0; i < sizeof(mounts) / sizeof(mounts[0]); i++) {
            snprintf(base, sizeof(base), "%s/%s", root, mounts[i]);
            if (is_dir(base))
                return (int)walk(base, v1_path, read_v1);
        }
        return 0;
    }
    if (have_v2) {
        snprintf(base, sizeof(base), "%s", root);
        return (int)walk(base, v2_path, read_v2);
    }
    return 0;
}

int cgroup_pick_cpus(int quota, long online, int affinity, int cap)
{
    long n = LONG_MAX;
    if (quota > 0 && quota < n)
        n = quota;
    if (online > 0 && online < n)
        n = online;
    if (affinity > 0 && affinity < n)
        n = affinity;
    if (n == LONG_MAX)
        n = 1;
    if (cap > 0 && n > cap)
        n = cap;
    return n < 1 ? 1 : (int)n;
}

int cgroup_affinity_cpus(void)
{
    /* Sized for any machine: a fixed cpu_set_t holds 1,024 CPUs only. */
    for (int ncpu = 1024; ncpu <= (1 << 20); ncpu *= 2) {
        cpu_set_t *set = CPU_ALLOC(ncpu);
        if (!set)
            return 0;
        size_t size = CPU_ALLOC_SIZE(ncpu);
        CPU_ZERO_S(size, set);
        if (sched_getaffinity(0, size, set) == 0) {
            int n = CPU_COUNT_S(size, set);
            CPU_FREE(set);
            return n;
        }
        CPU_FREE(set);
    }
    return 0;
}

int cgroup_default_threads(int cap)
{
    return cgroup_pick_cpus(cgroup_cpu_quota("/sys/fs/cgroup", "/proc/self/cgroup"),
                            sysconf(_SC_NPROCESSORS_ONLN), cgroup_affinity_cpus(), cap);
}

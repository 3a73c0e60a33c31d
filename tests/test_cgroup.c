/* test_cgroup.c - CPUs from the cgroup CPU quota, against fixture trees
 * written here: cgroup v2 (cpu.max, nested limits, a cgroup namespace
 * root, "max"), v1 (cfs_quota_us / cfs_period_us, -1), hybrid, nothing
 * readable; and the choice among quota, online CPUs and affinity with a
 * cap (a machine with more CPUs than worker slots must still start). */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "cgroup.h"

static char root[64];

/* Writes root/rel (creating its directories) with `text`. */
static void put(const char *rel, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", root, rel);
    for (char *p = path + strlen(root) + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(path, 0755);
            *p = '/';
        }
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int quota(void)
{
    char proc[512];
    snprintf(proc, sizeof(proc), "%s/proc-self-cgroup", root);
    char fs[512];
    snprintf(fs, sizeof(fs), "%s/sys-fs-cgroup", root);
    return cgroup_cpu_quota(fs, proc);
}

static int setup(void **state)
{
    (void)state;
    snprintf(root, sizeof(root), "/tmp/finops-cgroup-XXXXXX");
    assert_non_null(mkdtemp(root));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    return system(cmd);
}

static void test_v2(void **state)
{
    (void)state;
    put("proc-self-cgroup", "0::/kubepods/pod1/ctr\n");
    put("sys-fs-cgroup/cgroup.controllers", "cpu memory\n");
    put("sys-fs-cgroup/kubepods/pod1/ctr/cpu.max", "150000 100000\n");
    assert_int_equal(quota(), 2); /* 1.5 CPUs, rounded up */
    put("sys-fs-cgroup/kubepods/pod1/ctr/cpu.max", "max 100000\n");
    assert_int_equal(quota(), 0);
    put("sys-fs-cgroup/kubepods/cpu.max", "400000 100000\n"); /* a parent's limit applies */
    assert_int_equal(quota(), 4);
    put("sys-fs-cgroup/kubepods/pod1/ctr/cpu.max", "50000 100000\n"); /* the tightest wins */
    assert_int_equal(quota(), 1);
    put("sys-fs-cgroup/kubepods/pod1/ctr/cpu.max", "200000\n"); /* default period */
    assert_int_equal(quota(), 2);
    put("sys-fs-cgroup/kubepods/pod1/ctr/cpu.max", "garbage 100000\n");
    assert_int_equal(quota(), 4);
}

static void test_v2_namespace_root(void **state)
{
    (void)state;
    /* In a cgroup namespace the process is at "/" and its own cgroup is
     * the mount's root; a host path not present under the mount falls
     * back to the root too. */
    put("proc-self-cgroup", "0::/\n");
    put("sys-fs-cgroup/cpu.max", "300000 100000\n");
    assert_int_equal(quota(), 3);
    put("proc-self-cgroup", "0::/system.slice/not-mounted-here\n");
    assert_int_equal(quota(), 3);
}

static void test_v1(void **state)
{
    (void)state;
    put("proc-self-cgroup", "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n"
                            "1:name=systemd:/docker/abc\n");
    put("sys-fs-cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "250000\n");
    put("sys-fs-cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n");
    assert_int_equal(quota(), 3);
    put("sys-fs-cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "-1\n");
    assert_int_equal(quota(), 0);
    /* hybrid: the cpu controller on v1 is the one that limits */
    put("proc-self-cgroup", "4:cpu,cpuacct:/docker/abc\n0::/docker/abc\n");
    put("sys-fs-cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "100000\n");
    put("sys-fs-cgroup/docker/abc/cpu.max", "max 100000\n");
    assert_int_equal(quota(), 1);
}

static void test_nothing_readable(void **state)
{
    (void)state;
    assert_int_equal(cgroup_cpu_quota("/nonexistent", "/nonexistent/cgroup"), 0);
    put("proc-self-cgroup", "");
    assert_int_equal(quota(), 0);
}

static void test_pick(void **state)
{
    (void)state;
    assert_int_equal(cgroup_pick_cpus(2, 64, 64, 256), 2);     /* a 2-CPU pod, 64-core node */
    assert_int_equal(cgroup_pick_cpus(0, 8, 8, 256), 8);       /* no quota */
    assert_int_equal(cgroup_pick_cpus(0, 8, 3, 256), 3);       /* taskset */
    assert_int_equal(cgroup_pick_cpus(5, 4, 0, 256), 4);       /* quota above the CPUs */
    assert_int_equal(cgroup_pick_cpus(0, 300, 300, 256), 256); /* more CPUs than slots */
    assert_int_equal(cgroup_pick_cpus(0, 0, 0, 256), 1);       /* nothing known */
    assert_int_equal(cgroup_pick_cpus(0, -1, 0, 0), 1);
    int here = cgroup_default_threads(256);
    assert_true(here >= 1 && here <= sysconf(_SC_NPROCESSORS_ONLN));
    assert_true(cgroup_affinity_cpus() >= 1);
    print_message("this machine: %d default threads (quota %d, affinity %d, online %ld)\n", here,
                  cgroup_cpu_quota("/sys/fs/cgroup", "/proc/self/cgroup"), cgroup_affinity_cpus(),
                  sysconf(_SC_NPROCESSORS_ONLN));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_v2, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v2_namespace_root, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nothing_readable, setup, teardown),
        cmocka_unit_test(test_pick),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

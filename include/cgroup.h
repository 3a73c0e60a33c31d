/*
 * cgroup.h - how many CPUs this process may really use: the cgroup CPU
 * quota (v2 cpu.max, v1 cpu.cfs_quota_us / cpu.cfs_period_us), the CPUs
 * online and the process's CPU affinity, whichever is smallest.
 *
 * Thread-safety: no shared state; call from any thread.
 */
#ifndef AI_FINOPS_CGROUP_H
#define AI_FINOPS_CGROUP_H

/*
 * The CPUs the tightest CPU quota on this process's cgroup path allows,
 * ceil(quota / period), or 0 when no quota is set or none can be read.
 * `root` is where the cgroup file systems are mounted (/sys/fs/cgroup) and
 * `proc_cgroup` the process's cgroup list (/proc/self/cgroup); both are
 * parameters so tests can point them at fixture files.
 */
int cgroup_cpu_quota(const char *root, const char *proc_cgroup);

/* min(quota when > 0, online when > 0, affinity when > 0), at least 1 and
 * at most cap. */
int cgroup_pick_cpus(int quota, long online, int affinity, int cap);

/* CPUs online, from sched_getaffinity (any number of CPUs), or 0. */
int cgroup_affinity_cpus(void);

/* The default worker thread count: cgroup_pick_cpus over this process's
 * /sys/fs/cgroup quota, _SC_NPROCESSORS_ONLN and its affinity. */
int cgroup_default_threads(int cap);

#endif

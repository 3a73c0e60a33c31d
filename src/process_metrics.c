/*
 * process_metrics.c - process_* metrics from /proc/self (see header).
 *
 * Names and meanings follow the Prometheus client libraries so existing
 * dashboards and alerts work unchanged.
 * Thread-safety: no shared state; any thread.
 */
#include "process_metrics.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

int64_t process_start_time_ms(void)
{
    /* Field 22 of /proc/self/stat is the start time in clock ticks after
     * boot; boot time comes from /proc/stat's btime. */
    unsigned long long start_ticks = 0, btime = 0;
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    if (f) {
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        buf[n] = '\0';
        fclose(f);
        char *p = strrchr(buf, ')');
        if (p) {
            /* after ")": state is field 3, so starttime is the 20th token */
            int field = 2;
            for (char *tok = strtok(p + 1, " "); tok; tok = strtok(NULL, " "))
                if (++field == 22) {
                    start_ticks = strtoull(tok, NULL, 10);
                    break;
                }
        }
    }
    f = fopen("/proc/stat", "r");
    if (f) {
        while (fgets(buf, sizeof(buf), f))
            if (sscanf(buf, "btime %llu", &btime) == 1)
                break;
        fclose(f);
    }
    long hz = sysconf(_SC_CLK_TCK);
    if (!btime || hz <= 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000;
    }
    return (int64_t)btime * 1000 + (int64_t)(start_ticks * 1000 / (unsigned long long)hz);
}

static long count_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory stream's own fd */
}

void process_metrics_render(struct dynbuf *b, enum expo_format fmt, int64_t start_ms)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
                 ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
    expo_family(b, fmt, "process_cpu_seconds", "counter",
                "Total user and system CPU time spent in seconds.");
    dynbuf_append_str(b, "process_cpu_seconds_total");
    expo_value_double(b, cpu);

    unsigned long long vsize_pages = 0, rss_pages = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%llu %llu", &vsize_pages, &rss_pages) != 2)
            vsize_pages = rss_pages = 0;
        fclose(f);
    }
    unsigned long long page = (unsigned long long)sysconf(_SC_PAGESIZE);
    expo_family(b, fmt, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
    dynbuf_append_str(b, "process_resident_memory_bytes");
    expo_value_u64(b, rss_pages * page);
    expo_family(b, fmt, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
    dynbuf_append_str(b, "process_virtual_memory_bytes");
    expo_value_u64(b, vsize_pages * page);

    long fds = count_open_fds();
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    expo_family(b, fmt, "process_open_fds", "gauge", "Number of open file descriptors.");
    dynbuf_append_str(b, "process_open_fds");
    expo_value_u64(b, fds < 0 ? 0 : (uint64_t)fds);
    expo_family(b, fmt, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
    dynbuf_append_str(b, "process_max_fds");
    expo_value_u64(b, (uint64_t)rl.rlim_cur);

    expo_family(b, fmt, "process_start_time_seconds", "gauge",
                "Start time of the process since unix epoch in seconds.");
    dynbuf_append_str(b, "process_start_time_seconds");
    expo_value_epoch_ms(b, start_ms);
}

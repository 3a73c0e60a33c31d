/*
 * bench_common.h - shared helpers for the benchmarks: a monotonic clock,
 * medians, and a deterministic generator of realistic cost events (the
 * same shape ai-finops-loadgen produces: skewed teams/projects, LLM calls
 * with token counts, GPU jobs).
 */
#ifndef AI_FINOPS_BENCH_COMMON_H
#define AI_FINOPS_BENCH_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <math.h>

static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static inline double bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), bench_cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static inline uint64_t bench_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Zipf-like: index i chosen with weight ~ 1/(i+1). */
static inline int bench_skewed(uint64_t *s, int n)
{
    double u = (double)(bench_rand(s) % 1000000) / 1000000.0;
    double x = exp(u * log((double)n + 1)) - 1; /* inverse of log-uniform */
    int i = (int)x;
    return i < n ? i : n - 1;
}

/* Writes one realistic event into out (NUL-terminated); returns length. */
static inline size_t bench_event(uint64_t *s, char *out, size_t cap)
{
    static const char *const teams[] = {"ml-platform", "search-ranking", "recsys", "fraud",
                                        "ads",         "assistant",      "vision", "speech",
                                        "data-eng",    "research",       "growth", "support-ai"};
    static const char *const models[][2] = {{"openai", "gpt-4o"},
                                            {"openai", "gpt-4o-mini"},
                                            {"anthropic", "claude-sonnet-4-5"},
                                            {"anthropic", "claude-haiku-4-5"},
                                            {"google", "gemini-2.5-flash"},
                                            {"google", "gemini-2.5-pro"}};
    static const char *const instances[][2] = {{"p5.48xlarge", "nvidia-h100-80gb"},
                                               {"p4d.24xlarge", "nvidia-a100-40gb"},
                                               {"g5.xlarge", "nvidia-a10g-24gb"},
                                               {"g6e.12xlarge", "nvidia-l40s-48gb"}};
    int team = bench_skewed(s, 12);
    int project = bench_skewed(s, 8);
    uint64_t id = bench_rand(s);
    if (bench_rand(s) % 10 < 8) {
        int m = (int)(bench_rand(s) % 6);
        uint64_t in = 50 + bench_rand(s) % 20000, outt = 10 + bench_rand(s) % 4000;
        uint64_t nanos = in * 2500 + outt * 10000;
        return (size_t)snprintf(
            out, cap,
            "{\"event_id\":\"%016llx\",\"timestamp\":\"2026-11-23T10:%02d:%02d.%03dZ\","
            "\"team\":\"%s\",\"project\":\"%s-proj-%d\",\"source\":\"%s-api\","
            "\"provider\":\"%s\",\"model\":\"%s\",\"input_tokens\":%llu,"
            "\"output_tokens\":%llu,\"cost_usd\":%llu.%09llu}",
            (unsigned long long)id, (int)(id % 60), (int)(id / 60 % 60), (int)(id % 1000),
            teams[team], teams[team], project, models[m][0], models[m][0], models[m][1],
            (unsigned long long)in, (unsigned long long)outt,
            (unsigned long long)(nanos / 1000000000ULL),
            (unsigned long long)(nanos % 1000000000ULL));
    }
    int i = (int)(bench_rand(s) % 4);
    uint64_t gpus = 1 + bench_rand(s) % 8, ms = 1000 + bench_rand(s) % 3600000;
    uint64_t nanos = gpus * ms * 1000;
    return (size_t)snprintf(
        out, cap,
        "{\"event_id\":\"%016llx\",\"timestamp\":1795428000,\"team\":\"%s\","
        "\"project\":\"%s-proj-%d\",\"source\":\"gpu-training\",\"instance_type\":\"%s\","
        "\"gpu_type\":\"%s\",\"gpu_count\":%llu,\"duration_seconds\":%llu.%03llu,"
        "\"cost_usd\":%llu.%09llu}",
        (unsigned long long)id, teams[team], teams[team], project, instances[i][0], instances[i][1],
        (unsigned long long)gpus, (unsigned long long)(ms / 1000), (unsigned long long)(ms % 1000),
        (unsigned long long)(nanos / 1000000000ULL), (unsigned long long)(nanos % 1000000000ULL));
}

#endif

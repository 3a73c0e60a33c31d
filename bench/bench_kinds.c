/*
 * bench_kinds.c - CPU per event of the exporter's ingest path (decode,
 * price, count) for each kind of message of issue 13, side by side with
 * today's cost events, in one run: native cost events, cost events in the
 * OpenAI and Anthropic response shapes (the built-in mappings), GPU
 * utilization samples (native and DCGM-shaped, 10% of them repeating or
 * overlapping an earlier interval) and FOCUS rows. Messages come from the
 * load generator (tools/loadgen), so they are the realistic ones the
 * end-to-end tests use. One thread; the figure is that thread's CPU time
 * (CLOCK_THREAD_CPUTIME_ID) per message, so it is events/s per core
 * however busy the machine is. Medians over ROUNDS rounds, each on fresh
 * messages (GPU intervals move on; a replayed round would be all
 * duplicates). Not a test.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_common.h"
#include "config.h"
#include "ingest.h"
#include "loadgen.h"
#include "metrics.h"
#include "pricing.h"

#define PER_ROUND 100000
#define ROUNDS    5

struct corpus {
    char *data;
    size_t *off, *len;
    size_t n, bytes;
};

static double thread_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void fill(struct loadgen *g, struct corpus *c)
{
    struct loadgen_event e;
    size_t cap = (size_t)PER_ROUND * 400;
    c->data = malloc(cap);
    c->off = malloc(PER_ROUND * sizeof(size_t));
    c->len = malloc(PER_ROUND * sizeof(size_t));
    if (!c->data || !c->off || !c->len)
        abort();
    c->n = c->bytes = 0;
    while (c->n < PER_ROUND) {
        loadgen_next(g, LOADGEN_VIRTUAL_TIME, &e);
        if (c->bytes + e.len > cap) {
            cap *= 2;
            if (!(c->data = realloc(c->data, cap)))
                abort();
        }
        memcpy(c->data + c->bytes, e.data, e.len);
        c->off[c->n] = c->bytes;
        c->len[c->n++] = e.len;
        c->bytes += e.len;
    }
}

static void corpus_free(struct corpus *c)
{
    free(c->data);
    free(c->off);
    free(c->len);
}

static const struct kind_case {
    const char *name;
    enum event_kind kind;
    enum loadgen_profile profile;
    const char *input_kind; /* events.input_kind */
    double dup_ratio;
} cases[] = {
    {"cost (today's events)", EVENT_KIND_COST, LOADGEN_PROFILE_NONE, "cost", 0},
    {"cost, OpenAI shape", EVENT_KIND_COST, LOADGEN_PROFILE_OPENAI, "cost:openai", 0},
    {"cost, Anthropic shape", EVENT_KIND_COST, LOADGEN_PROFILE_ANTHROPIC, "cost:anthropic", 0},
    {"gpu_utilization", EVENT_KIND_GPU_UTILIZATION, LOADGEN_PROFILE_NONE, "gpu_utilization", 0.1},
    {"gpu_utilization, DCGM shape", EVENT_KIND_GPU_UTILIZATION, LOADGEN_PROFILE_DCGM,
     "gpu_utilization:dcgm", 0.1},
    {"focus", EVENT_KIND_FOCUS, LOADGEN_PROFILE_NONE, "focus", 0},
};

int main(void)
{
    char llm[4096], gpu[4096], types[4096], err[512] = "";
    snprintf(llm, sizeof(llm), "%s/llm.yaml", price_table_bundled_dir());
    snprintf(gpu, sizeof(gpu), "%s/gpu.yaml", price_table_bundled_dir());
    snprintf(types, sizeof(types), "%s/tests/data/prices/gpu-types.yaml", FINOPS_SOURCE_DIR);
    const char *paths[] = {llm, gpu, types};
    struct price_table *prices = NULL;
    if (price_table_load(&prices, paths, 3, err, sizeof(err))) {
        fprintf(stderr, "bench_kinds: %s\n", err);
        return 1;
    }
    printf("bench_kinds: ingest (decode + price + count) per message, 1 thread, thread CPU time, "
           "median of %d rounds of %d fresh messages\n",
           ROUNDS, PER_ROUND);
    double cost_ns = 0;
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        const struct kind_case *kc = &cases[k];
        struct loadgen_options o;
        struct loadgen *g = NULL;
        loadgen_options_defaults(&o);
        o.kind = kc->kind;
        o.profile = kc->profile;
        o.dup_ratio = kc->dup_ratio;
        o.gpu_nodes = 64; /* 512 GPUs or so */
        if (loadgen_new(&g, prices, &o, err, sizeof(err))) {
            fprintf(stderr, "bench_kinds: %s: %s\n", kc->name, err);
            return 1;
        }
        struct exporter_config cfg;
        config_init_defaults(&cfg);
        free(cfg.events_input_kind);
        cfg.events_input_kind = strdup(kc->input_kind);
        struct metrics *m = metrics_new(&cfg);
        struct ingest *in = ingest_new(&cfg, m, prices);
        if (!m || !in) {
            fprintf(stderr, "bench_kinds: %s: ingest_new failed\n", kc->name);
            return 1;
        }
        struct ingest_worker *w = ingest_worker_new(in);
        /* the Kafka input's sharded registry, as in bench_ingest */
        ingest_worker_set_shard(w, "t-0", 3);
        ingest_worker_set_input(w, ingest_input_for_file(in));
        double per[ROUNDS];
        size_t bytes = 0;
        for (int r = -1; r < ROUNDS; r++) { /* round -1 warms: series, arenas */
            struct corpus c;
            fill(g, &c);
            double t0 = thread_cpu();
            for (size_t i = 0; i < c.n; i++) {
                enum reject_reason rr = ingest_process(w, c.data + c.off[i], c.len[i]);
                if (rr != REJECT_NONE) {
                    fprintf(stderr, "bench_kinds: %s: a message was rejected (%s): %.*s\n",
                            kc->name, reject_reason_name(rr), (int)c.len[i], c.data + c.off[i]);
                    return 1;
                }
            }
            double dt = thread_cpu() - t0;
            if (r >= 0) {
                per[r] = dt / (double)c.n;
                bytes += c.bytes;
            }
            corpus_free(&c);
        }
        double ns = bench_median(per, ROUNDS) * 1e9;
        if (k == 0)
            cost_ns = ns;
        printf("  %-28s %4.0f bytes avg  %9.0f events/s per core  (%5.0f ns CPU/event, %.2fx "
               "cost)\n",
               kc->name, (double)bytes / (ROUNDS * PER_ROUND), 1e9 / ns, ns, ns / cost_ns);
        ingest_worker_free(w);
        ingest_free(in);
        metrics_free(m);
        config_free(&cfg);
        loadgen_free(g);
    }
    price_table_free(prices);
    return 0;
}

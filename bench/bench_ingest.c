/*
 * bench_ingest.c - decode+add events/s on one core, on realistic events,
 * for the exporter's path (the strict single-pass decoder, lock-free
 * counters) side by side with a baseline of the straightforward design
 * (cJSON with malloc per node, cJSON_GetObjectItem lookups, cJSON_Delete,
 * and a mutex around the counter add, as prometheus-client-c does).
 * Prints medians over several rounds and the ratio. Not a test.
 */
#include <math.h>
#include <pthread.h>

#include <cjson/cJSON.h>

#include "bench_common.h"
#include "counter_table.h"
#include "ingest.h"
#include "metrics.h"
#include "money.h"

#define EVENTS 1000000
#define ROUNDS 5

struct corpus {
    char *data;
    size_t *offsets;
    size_t *lengths;
    size_t count;
    size_t bytes;
};

static struct corpus make_corpus(size_t n)
{
    struct corpus c = {malloc(n * 512), malloc(n * sizeof(size_t)), malloc(n * sizeof(size_t)), n,
                       0};
    uint64_t seed = 0x1234567;
    for (size_t i = 0; i < n; i++) {
        c.offsets[i] = c.bytes;
        c.lengths[i] = bench_event(&seed, c.data + c.bytes, 512);
        c.bytes += c.lengths[i];
    }
    return c;
}

static double run_exporter(struct ingest_worker *w, const struct corpus *c)
{
    double t0 = bench_now();
    for (size_t i = 0; i < c->count; i++)
        if (ingest_process(w, c->data + c->offsets[i], c->lengths[i]) != REJECT_NONE)
            abort();
    return bench_now() - t0;
}

static double run_baseline(struct counter_table *t, pthread_mutex_t *lock, const struct corpus *c)
{
    double t0 = bench_now();
    for (size_t i = 0; i < c->count; i++) {
        cJSON *root = cJSON_ParseWithLength(c->data + c->offsets[i], c->lengths[i]);
        if (!root)
            abort();
        const cJSON *team = cJSON_GetObjectItemCaseSensitive(root, "team");
        const cJSON *project = cJSON_GetObjectItemCaseSensitive(root, "project");
        const cJSON *source = cJSON_GetObjectItemCaseSensitive(root, "source");
        const cJSON *cost = cJSON_GetObjectItemCaseSensitive(root, "cost_usd");
        uint64_t nanos = 0;
        money_from_double(cost->valuedouble, UINT64_MAX / 2, &nanos);
        struct label_value v[3] = {{team->valuestring, (uint32_t)strlen(team->valuestring)},
                                   {project->valuestring, (uint32_t)strlen(project->valuestring)},
                                   {source->valuestring, (uint32_t)strlen(source->valuestring)}};
        pthread_mutex_lock(lock);
        counter_table_add(t, v, nanos);
        pthread_mutex_unlock(lock);
        cJSON_Delete(root);
    }
    return bench_now() - t0;
}

int main(void)
{
    struct corpus c = make_corpus(EVENTS);
    struct exporter_config cfg;
    config_init_defaults(&cfg);
    struct metrics *m = metrics_new(&cfg);
    struct ingest *in = ingest_new(&cfg, m, NULL);
    struct ingest_worker *w = ingest_worker_new(in);
    /* the Kafka input's sharded registry: every event also names its shard */
    ingest_worker_set_shard(w, "ai-costs-0", strlen("ai-costs-0"));
    const char *names[] = {"team", "project", "source"};
    struct counter_table *baseline_table = counter_table_new(names, 3, 100000, NULL);
    pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

    double exporter[ROUNDS], baseline[ROUNDS];
    run_exporter(w, &c); /* warm: series created, arena sized */
    run_baseline(baseline_table, &lock, &c);
    for (int r = 0; r < ROUNDS; r++) {
        exporter[r] = run_exporter(w, &c);
        baseline[r] = run_baseline(baseline_table, &lock, &c);
    }
    double e = bench_median(exporter, ROUNDS), b = bench_median(baseline, ROUNDS);
    printf("bench_ingest: %d realistic events (%.0f bytes avg), 1 thread, median of %d rounds\n",
           EVENTS, (double)c.bytes / EVENTS, ROUNDS);
    printf("  exporter (strict decoder + validation + lock-free add, 3 families): %10.0f events/s  "
           "(%.0f ns/event)\n",
           EVENTS / e, e / EVENTS * 1e9);
    printf("  baseline (malloc cJSON + GetObjectItem + mutex add, cost only):  %10.0f events/s  "
           "(%.0f ns/event)\n",
           EVENTS / b, b / EVENTS * 1e9);
    printf("  ratio exporter/baseline: %.2fx\n", b / e);

    ingest_worker_free(w);
    ingest_free(in);
    metrics_free(m);
    counter_table_free(baseline_table);
    config_free(&cfg);
    free(c.data);
    free(c.offsets);
    free(c.lengths);
    return 0;
}

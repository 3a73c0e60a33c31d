/*
 * bench_render.c - scrape cost: time to render 10k and 100k series of the
 * cost family (text format, the three labels of realistic length), time to
 * gzip that output, and bytes of memory per series beyond the label
 * strings. Medians of several rounds. Not a test.
 */
#include <malloc.h>
#include <zlib.h>

#include "bench_common.h"
#include "counter_table.h"
#include "dynbuf.h"
#include "ingest.h"
#include "metrics.h"

#define ROUNDS 7

static double gzip_time(const char *data, size_t len, size_t *out_len)
{
    uLongf cap = compressBound(len) + 64;
    unsigned char *out = malloc(cap);
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    double t0 = bench_now();
    deflateInit2(&zs, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
    zs.next_in = (Bytef *)data;
    zs.avail_in = (uInt)len;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    deflate(&zs, Z_FINISH);
    deflateEnd(&zs);
    double t = bench_now() - t0;
    *out_len = cap - zs.avail_out;
    free(out);
    return t;
}

static void one_size(size_t series)
{
    struct exporter_config cfg;
    config_init_defaults(&cfg);
    cfg.counters_max_series = (int64_t)series;
    cfg.input = strdup("-"); /* the file input's registry: 3 cost labels, live values */
    cfg.counters_new_series_hold_ms = 0;
    size_t heap_before = mallinfo2().uordblks;
    struct metrics *m = metrics_new(&cfg);
    struct counter_table *t = metrics_cost_table(m);
    size_t label_bytes = 0;
    char team[64], project[64], source[64];
    for (size_t i = 0; i < series; i++) {
        int tl = snprintf(team, sizeof(team), "team-%zu", i % 40);
        int pl = snprintf(project, sizeof(project), "project-%zu-inference", i);
        int sl = snprintf(source, sizeof(source), "%s", i % 3 ? "openai-api" : "gpu-training");
        struct label_value v[3] = {
            {team, (uint32_t)tl}, {project, (uint32_t)pl}, {source, (uint32_t)sl}};
        counter_table_add(t, v, 1000000000ULL * i + 123456789);
        label_bytes += (size_t)(tl + pl + sl);
    }
    size_t heap_after = mallinfo2().uordblks;
    /* The slot array and list are calloc'd (mmap'd when large), so count
     * them from the table's own accounting plus the heap growth. */
    size_t table_bytes = counter_table_memory_bytes(t);
    double render[ROUNDS], gz[ROUNDS];
    size_t out_len = 0, gz_len = 0;
    struct dynbuf b;
    for (int r = 0; r < ROUNDS; r++) {
        dynbuf_init(&b, 1u << 30);
        double t0 = bench_now();
        metrics_render(m, EXPO_TEXT, &b);
        render[r] = bench_now() - t0;
        out_len = b.len;
        gz[r] = gzip_time(b.data, b.len, &gz_len);
        dynbuf_free(&b);
    }
    printf("  %6zu series: render %7.2f ms (%zu bytes), gzip -1 %7.2f ms (%zu bytes), "
           "render+gzip %7.2f ms\n",
           series, bench_median(render, ROUNDS) * 1e3, out_len, bench_median(gz, ROUNDS) * 1e3,
           gz_len, (bench_median(render, ROUNDS) + bench_median(gz, ROUNDS)) * 1e3);
    printf("           memory: %.1f bytes/series accounted by the table beyond label strings "
           "(heap growth incl. malloc overhead: %.1f bytes/series)\n",
           (double)(table_bytes - label_bytes) / (double)series,
           (double)(heap_after - heap_before) / (double)series);
    metrics_free(m);
    config_free(&cfg);
}

int main(void)
{
    printf("bench_render: cost family, text format, median of %d rounds\n", ROUNDS);
    one_size(10000);
    one_size(100000);
    return 0;
}

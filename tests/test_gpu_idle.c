/* test_gpu_idle.c - GPU samples and FOCUS rows in the registry (docs/gpu.md):
 * each GPU's intervals counted once (repeats and overlaps clipped exactly,
 * an older sample counted 0 and deduplicated), allocated seconds and idle
 * dollars exact, gauges set only by samples that advance and dropped after
 * the silence without touching a counter, the mark table never overflowing
 * (too_many_gpus), a restored mark being what the next sample is clipped
 * against, and FOCUS credits in their own counter, never decrementing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ingest.h"
#include "metrics.h"
#include "metrics_internal.h"
#include "pricing.h"

#define S          1000000000ULL
#define T0         (1764806400ULL * S) /* 2025-12-04T00:00:00Z */
#define RECEIPT_MS 1764806500000LL

struct fixture {
    struct exporter_config cfg;
    struct metrics *metrics;
    struct metrics_worker *w;
};

static int setup_with(void **state, int64_t max_series, const char *input)
{
    static struct fixture f;
    memset(&f, 0, sizeof(f));
    f.cfg.input = (char *)input;
    f.cfg.counters_max_series = max_series;
    f.cfg.gpu_utilization_silence_seconds = 300;
    f.metrics = metrics_new(&f.cfg);
    f.w = f.metrics ? metrics_worker_new(f.metrics) : NULL;
    if (f.w && !input)
        metrics_worker_set_shard(f.w, "gpu-0", 5);
    *state = &f;
    return f.w ? 0 : -1;
}

static int setup(void **state)
{
    return setup_with(state, 1000, "-");
}

static int setup_small(void **state)
{
    return setup_with(state, 2, "-");
}

static int setup_sharded_small(void **state)
{
    return setup_with(state, 2, NULL);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    metrics_free(f->metrics);
    return 0;
}

static struct label_value lv(const char *s)
{
    return (struct label_value){s, (uint32_t)strlen(s)};
}

static struct gpu_sample sample(const char *node, const char *gpu, uint64_t end, uint64_t interval,
                                uint64_t util_ppb)
{
    return (struct gpu_sample){.team = lv("ml"),
                               .project = lv("train"),
                               .node = lv(node),
                               .gpu = lv(gpu),
                               .gpu_type = lv("nvidia-h100"),
                               .instance_type = lv("i8"),
                               .utilization_ppb = util_ppb,
                               .has_memory = true,
                               .memory_used_bytes = 1 << 30,
                               .end_unix_nanos = end,
                               .interval_nanos = interval};
}

/* i8 of tests/data/prices/golden.yaml: $98.32 per hour for 8 GPUs. */
static const struct gpu_rate rate_i8 = {98320000000ULL, 8};

/* What ingest does after the price: mark, then counters. Returns the
 * nanoseconds counted. */
static uint64_t feed(struct fixture *f, struct gpu_sample s, int64_t receipt_ms)
{
    uint64_t counted = 12345, idle = 0;
    assert_int_equal(metrics_gpu_mark(f->w, &s, &counted), REJECT_NONE);
    assert_int_equal(gpu_idle_cost(&rate_i8, counted, s.utilization_ppb, &idle), 0);
    metrics_record_gpu_sample(f->w, &s, counted, idle, receipt_ms);
    return counted;
}

static char *render_at(struct fixture *f, int64_t now_ms, struct dynbuf *b)
{
    dynbuf_init(b, 1 << 24);
    assert_int_equal(metrics_render_at(f->metrics, EXPO_TEXT, now_ms, b), 0);
    return b->data;
}

/* The block of lines from "# HELP <name>" up to the next "# HELP". */
static void assert_family(const char *text, const char *name, const char *want)
{
    char head[256];
    snprintf(head, sizeof(head), "# HELP %s ", name);
    const char *start = strstr(text, head);
    assert_non_null(start);
    const char *end = strstr(start + 1, "# HELP ");
    size_t len = end ? (size_t)(end - start) : strlen(start);
    if (strlen(want) != len || memcmp(start, want, len) != 0)
        fail_msg("family %s:\n--- got ---\n%.*s--- want ---\n%s", name, (int)len, start, want);
}

static void assert_line(const char *text, const char *line, bool present)
{
    char want[512];
    snprintf(want, sizeof(want), "\n%s\n", line);
    if ((strstr(text, want) != NULL) != present) {
        fputs(text, stderr); /* cmocka cuts long messages */
        fail_msg("%s: %s", present ? "missing" : "unexpected", line);
    }
}

static void test_intervals_counted_once(void **state)
{
    struct fixture *f = *state;
    /* [T0, T0+60) at 25%: 60 s, idle 45 s x $12.29/3600 = $0.153625 */
    assert_int_equal(feed(f, sample("n1", "0", T0 + 60 * S, 60 * S, 250000000), RECEIPT_MS),
                     60 * S);
    /* the same interval again (a replay), another utilization: nothing */
    assert_int_equal(feed(f, sample("n1", "0", T0 + 60 * S, 60 * S, 900000000), RECEIPT_MS), 0);
    /* [T0+30, T0+90) overlaps by 30 s: only [T0+60, T0+90) counts, 50% idle:
     * 15 s x 12.29/3600 = 0.051208333.. -> 51208333 nanos */
    assert_int_equal(feed(f, sample("n1", "0", T0 + 90 * S, 60 * S, 500000000), RECEIPT_MS),
                     30 * S);
    /* an older sample [T0, T0+30): counted 0, its 99% does not set the gauge */
    assert_int_equal(feed(f, sample("n1", "0", T0 + 30 * S, 30 * S, 990000000), RECEIPT_MS), 0);
    /* a gap, then [T0+140, T0+200) fully idle: 60 s x 12.29/3600 = 0.204833.. */
    assert_int_equal(feed(f, sample("n1", "0", T0 + 200 * S, 60 * S, 0), RECEIPT_MS), 60 * S);
    /* one nanosecond past the mark, with sub-microsecond intervals:
     * 1.4 us rounds to 1 micro-GPU-second, 0.5 us up to 1 */
    assert_int_equal(feed(f, sample("n1", "0", T0 + 200 * S + 1400, 60 * S, 0), RECEIPT_MS), 1400);
    assert_int_equal(feed(f, sample("n1", "0", T0 + 200 * S + 1900, 500, 0), RECEIPT_MS), 500);
    /* another GPU is independent */
    assert_int_equal(feed(f, sample("n1", "1", T0 + 60 * S, 60 * S, 1000000000), RECEIPT_MS),
                     60 * S);

    struct dynbuf b;
    char *text = render_at(f, RECEIPT_MS + 1, &b);
    /* 60+30+60 s + 1 + 1 micro-GPU-seconds on n1/0, 60 s on n1/1 */
    assert_line(text,
                "ai_finops_gpu_allocated_seconds_total{team=\"ml\",project=\"train\","
                "gpu_type=\"nvidia-h100\"} 210.000002",
                true);
    /* 153625000 + 51208333 (rounded once) + 204833333 + 4.8 -> 5 + 1.7 -> 2
     * nanos; the fully busy n1/1 adds 0 */
    assert_line(text,
                "ai_finops_gpu_idle_cost_dollars_total{team=\"ml\",project=\"train\","
                "gpu_type=\"nvidia-h100\"} 0.409666673",
                true);
    assert_line(text, "ai_finops_gpu_samples_deduplicated_total 2", true);
    assert_line(text,
                "ai_finops_gpu_utilization_ratio{team=\"ml\",project=\"train\",node=\"n1\","
                "gpu=\"0\"} 0",
                true);
    assert_line(text,
                "ai_finops_gpu_utilization_ratio{team=\"ml\",project=\"train\",node=\"n1\","
                "gpu=\"1\"} 1",
                true);
    assert_line(text,
                "ai_finops_gpu_memory_used_bytes{team=\"ml\",project=\"train\",node=\"n1\","
                "gpu=\"0\"} 1073741824",
                true);
    /* the freshness gauge: the newest sample's end */
    assert_line(text, "ai_finops_last_event_timestamp_seconds 1764806600.000", true);
    /* the marks are state, not a metric */
    assert_null(strstr(text, "ai_finops_gpu_interval_mark_total"));
    assert_line(text, "ai_finops_series{metric=\"ai_finops_gpu_interval_mark\"} 2", true);
    assert_line(text, "ai_finops_events_total{outcome=\"accepted\"} 8", true);
    dynbuf_free(&b);
}

static void test_silence_drops_gauges_only(void **state)
{
    struct fixture *f = *state;
    feed(f, sample("n1", "0", T0 + 60 * S, 60 * S, 250000000), RECEIPT_MS);
    feed(f, sample("n2", "0", T0 + 60 * S, 60 * S, 750000000), RECEIPT_MS + 1000);
    struct dynbuf b;
    const char *n1 = "ai_finops_gpu_utilization_ratio{team=\"ml\",project=\"train\",node=\"n1\","
                     "gpu=\"0\"} 0.25";
    const char *n2 = "ai_finops_gpu_utilization_ratio{team=\"ml\",project=\"train\",node=\"n2\","
                     "gpu=\"0\"} 0.75";
    const char *alloc = "ai_finops_gpu_allocated_seconds_total{team=\"ml\",project=\"train\","
                        "gpu_type=\"nvidia-h100\"} 120";
    char *text = render_at(f, RECEIPT_MS + 299999, &b);
    assert_line(text, n1, true);
    assert_line(text, n2, true);
    assert_line(text, alloc, true);
    dynbuf_free(&b);
    /* 300 s of silence for n1 (receipt clock), 299 s for n2 */
    text = render_at(f, RECEIPT_MS + 300000, &b);
    assert_line(text, n1, false);
    assert_null(strstr(text, "node=\"n1\""));
    assert_line(text, n2, true);
    assert_line(text, alloc, true);
    dynbuf_free(&b);
}

static void test_mark_table_full(void **state)
{
    struct fixture *f = *state;
    feed(f, sample("n1", "0", T0 + 60 * S, 60 * S, 0), RECEIPT_MS);
    feed(f, sample("n1", "1", T0 + 60 * S, 60 * S, 0), RECEIPT_MS);
    struct gpu_sample third = sample("n2", "0", T0 + 60 * S, 60 * S, 0);
    uint64_t counted = 777;
    assert_int_equal(metrics_gpu_mark(f->w, &third, &counted), REJECT_TOO_MANY_GPUS);
    assert_int_equal(counted, 777); /* untouched */
    /* known GPUs go on */
    assert_int_equal(feed(f, sample("n1", "0", T0 + 120 * S, 60 * S, 0), RECEIPT_MS), 60 * S);
    struct counter_table *marks = metrics_table(f->metrics, METRIC_FAMILY_GPU_MARK);
    assert_int_equal(counter_table_series_count(marks), 2);
    assert_int_equal(counter_table_overflow_adds(marks), 0);
}

struct find {
    const char *label0;
    uint64_t live;
    int found;
};

static int find_live(const struct counter_view *v, void *ctx)
{
    struct find *q = ctx;
    if (v->labels[0].len == strlen(q->label0) &&
        memcmp(v->labels[0].ptr, q->label0, v->labels[0].len) == 0) {
        q->live = v->live;
        q->found++;
    }
    return 0;
}

static uint64_t live_of(struct fixture *f, enum metric_family family, const char *label0)
{
    struct find q = {label0, 0, 0};
    counter_table_foreach_all(metrics_table(f->metrics, family), find_live, &q);
    assert_int_equal(q.found, 1);
    return q.live;
}

/* Sharded (Kafka): the mark is a series of a checkpointed table; what a
 * restore sets (counter_series_set_live, as checkpoint.c's apply_record
 * does) is what the next sample is clipped against. */
static void test_sharded_marks_restore(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(feed(f, sample("n1", "0", T0 + 60 * S, 60 * S, 0), RECEIPT_MS), 60 * S);
    assert_int_equal(live_of(f, METRIC_FAMILY_GPU_MARK, "n1"), T0 + 60 * S);
    assert_int_equal(live_of(f, METRIC_FAMILY_GPU_ALLOCATED, "ml"), 60000000);
    /* a restore from a checkpoint taken at T0+90 */
    struct label_value v[3] = {lv("n1"), lv("0"), lv("gpu-0")};
    struct counter_series *mark =
        counter_table_get(metrics_table(f->metrics, METRIC_FAMILY_GPU_MARK), v);
    counter_series_set_live(mark, T0 + 90 * S);
    /* replayed: [T0+30, T0+90) was counted before the checkpoint */
    assert_int_equal(feed(f, sample("n1", "0", T0 + 90 * S, 60 * S, 0), RECEIPT_MS), 0);
    assert_int_equal(feed(f, sample("n1", "0", T0 + 120 * S, 60 * S, 0), RECEIPT_MS), 30 * S);
    assert_int_equal(live_of(f, METRIC_FAMILY_GPU_MARK, "n1"), T0 + 120 * S);
    /* full at 2 series: too_many_gpus, no per-shard overflow series made */
    feed(f, sample("n1", "1", T0 + 60 * S, 60 * S, 0), RECEIPT_MS);
    struct gpu_sample third = sample("n2", "0", T0 + 60 * S, 60 * S, 0);
    uint64_t counted;
    assert_int_equal(metrics_gpu_mark(f->w, &third, &counted), REJECT_TOO_MANY_GPUS);
    struct counter_table *marks = metrics_table(f->metrics, METRIC_FAMILY_GPU_MARK);
    assert_int_equal(counter_table_overflow_adds(marks), 0);
    struct find q = {"__overflow__", 0, 0};
    counter_table_foreach_all(marks, find_live, &q);
    assert_int_equal(q.found, 0);
}

static struct focus_row row(const char *category, int64_t amount_nanos)
{
    return (struct focus_row){.team = lv("ml"),
                              .project = lv("train"),
                              .provider = lv("AWS"),
                              .service = lv("Amazon EC2"),
                              .charge_category = lv(category),
                              .sub_account = lv("prod"),
                              .resource_id = lv("i-1"),
                              .amount_nanos = amount_nanos,
                              .has_timestamp = true,
                              .timestamp_ms = 1764720000000LL};
}

static void test_focus_credits(void **state)
{
    struct fixture *f = *state;
    struct focus_row r = row("Usage", 12340000000LL);
    metrics_record_focus_row(f->w, &r);
    r = row("Usage", 1);
    metrics_record_focus_row(f->w, &r);
    r = row("Credit", -3000000000LL);
    metrics_record_focus_row(f->w, &r);
    r = row("Credit", -500000001LL);
    metrics_record_focus_row(f->w, &r);
    r = row("Tax", 0);
    metrics_record_focus_row(f->w, &r);
    struct dynbuf b;
    char *text = render_at(f, RECEIPT_MS, &b);
    assert_family(text, "ai_finops_cloud_cost_dollars_total",
                  "# HELP ai_finops_cloud_cost_dollars_total Cloud bill cost from FOCUS rows "
                  "(amounts >= 0).\n"
                  "# TYPE ai_finops_cloud_cost_dollars_total counter\n"
                  "ai_finops_cloud_cost_dollars_total{team=\"ml\",project=\"train\","
                  "provider=\"AWS\",service=\"Amazon EC2\",charge_category=\"Usage\","
                  "sub_account=\"prod\"} 12.340000001\n"
                  "ai_finops_cloud_cost_dollars_total{team=\"ml\",project=\"train\","
                  "provider=\"AWS\",service=\"Amazon EC2\",charge_category=\"Tax\","
                  "sub_account=\"prod\"} 0\n");
    assert_family(text, "ai_finops_credit_dollars_total",
                  "# HELP ai_finops_credit_dollars_total Credits and refunds from FOCUS rows "
                  "(|negative amounts|).\n"
                  "# TYPE ai_finops_credit_dollars_total counter\n"
                  "ai_finops_credit_dollars_total{team=\"ml\",project=\"train\","
                  "provider=\"AWS\",service=\"Amazon EC2\",charge_category=\"Credit\","
                  "sub_account=\"prod\"} 3.500000001\n");
    assert_line(text, "ai_finops_last_event_timestamp_seconds 1764720000.000", true);
    assert_line(text, "ai_finops_events_total{outcome=\"accepted\"} 5", true);
    dynbuf_free(&b);
}

/* ---- through ingest: JSON lines of one --input kind -------------------- */

struct ingest_fixture {
    struct exporter_config cfg;
    struct price_table *prices;
    struct metrics *metrics;
    struct ingest *ingest;
    struct ingest_worker *w;
};

static int setup_ingest(void **state, const char *input_kind)
{
    static struct ingest_fixture f;
    memset(&f, 0, sizeof(f));
    f.cfg.input = "-";
    f.cfg.counters_max_series = 1000;
    f.cfg.events_max_bytes = 65536;
    f.cfg.events_max_cost_nanos = 100LL * 1000000000LL; /* $100 */
    f.cfg.events_max_label_bytes = 128;
    f.cfg.events_max_depth = 16;
    f.cfg.events_unattributed_label = "unattributed";
    f.cfg.events_input_kind = (char *)input_kind;
    f.cfg.gpu_utilization_silence_seconds = 300;
    f.cfg.focus_effective_cost = true;
    char golden[4096], err[512] = "";
    snprintf(golden, sizeof(golden), "%s/tests/data/prices/golden.yaml", FINOPS_SOURCE_DIR);
    const char *paths[] = {golden};
    if (price_table_load(&f.prices, paths, 1, err, sizeof(err)))
        fail_msg("prices: %s", err);
    f.metrics = metrics_new(&f.cfg);
    f.ingest = ingest_new(&f.cfg, f.metrics, f.prices);
    f.w = f.ingest ? ingest_worker_new(f.ingest) : NULL;
    if (f.w)
        ingest_worker_set_input(f.w, ingest_input_for_file(f.ingest));
    *state = &f;
    return f.w ? 0 : -1;
}

static int setup_gpu_lines(void **state)
{
    return setup_ingest(state, "gpu_utilization");
}

static int setup_focus_lines(void **state)
{
    return setup_ingest(state, "focus");
}

static int teardown_ingest(void **state)
{
    struct ingest_fixture *f = *state;
    ingest_worker_free(f->w);
    ingest_free(f->ingest);
    metrics_free(f->metrics);
    price_table_free(f->prices);
    return 0;
}

static void line(struct ingest_fixture *f, const char *json, enum reject_reason want)
{
    enum reject_reason got = ingest_process(f->w, json, strlen(json));
    if (got != want)
        fail_msg("%s: got %s, want %s", json, reject_reason_name(got), reject_reason_name(want));
}

static char *scrape(struct ingest_fixture *f, struct dynbuf *b)
{
    dynbuf_init(b, 1 << 24);
    assert_int_equal(metrics_render(f->metrics, EXPO_TEXT, b), 0);
    return b->data;
}

#define GPU_LINE(end, interval, node, gpu, inst, util)                                             \
    "{\"timestamp\":" end ",\"interval_seconds\":" interval ",\"node\":\"" node                    \
    "\",\"gpu\":\"" gpu "\",\"instance_type\":\"" inst                                             \
    "\",\"gpu_type\":\"g\",\"team\":\"ml\",\"project\":"                                           \
    "\"train\"," util ",\"memory_used_bytes\":1024}"

/* Price first, then the mark, then counters: an unpriced sample or one
 * whose interval could cost more than max_cost_usd changes no mark. */
static void test_ingest_gpu_lines(void **state)
{
    struct ingest_fixture *f = *state;
    /* T0+60 = 1764806460: [T0, T0+60) at 25% on i8 -> 153625000 nanos */
    line(f, GPU_LINE("1764806460", "60", "n1", "0", "i8", "\"utilization\":0.25"), REJECT_NONE);
    line(f, GPU_LINE("1764806460", "60", "n1", "0", "i8", "\"utilization\":0.25"), REJECT_NONE);
    /* no price for instance "nope" nor gpu_type "g": nothing changes */
    line(f, GPU_LINE("1764806520", "60", "n1", "0", "nope", "\"utilization\":0"), REJECT_UNPRICED);
    /* so [T0+60, T0+120) still counts in full: 60 s idle -> 204833333 */
    line(f, GPU_LINE("1764806520", "60", "n1", "0", "i8", "\"utilization\":0"), REJECT_NONE);
    /* i1 ($1.006/h, 1 GPU), 50% as a percent: 60 s x 0.5 -> 8383333 */
    line(f, GPU_LINE("1764806460", "60", "n1", "1", "i1", "\"utilization_percent\":50"),
         REJECT_NONE);
    /* a day on i8 fully idle would cost $294.96 > max $100: invalid_cost,
     * and n1/2's mark stays untouched (the next sample counts in full) */
    line(f, GPU_LINE("1764806460", "86400", "n1", "2", "i8", "\"utilization\":0"),
         REJECT_INVALID_COST);
    line(f, GPU_LINE("1764806460", "60", "n1", "2", "i8", "\"utilization\":1"), REJECT_NONE);
    line(f,
         GPU_LINE("1764806460", "60", "n1", "3", "i8",
                  "\"utilization\":0.5,\"utilization_percent\":50"),
         REJECT_INVALID_UTILIZATION);
    struct dynbuf b;
    char *text = scrape(f, &b);
    /* 60 + 60 (n1/0) + 60 (n1/1) + 60 (n1/2) GPU-seconds */
    assert_line(text,
                "ai_finops_gpu_allocated_seconds_total{team=\"ml\",project=\"train\","
                "gpu_type=\"g\"} 240",
                true);
    /* 153625000 + 204833333 + 8383333 + 0 */
    assert_line(text,
                "ai_finops_gpu_idle_cost_dollars_total{team=\"ml\",project=\"train\","
                "gpu_type=\"g\"} 0.366841666",
                true);
    assert_line(text, "ai_finops_gpu_samples_deduplicated_total 1", true);
    assert_line(text, "ai_finops_series{metric=\"ai_finops_gpu_interval_mark\"} 3", true);
    assert_line(text,
                "ai_finops_gpu_utilization_ratio{team=\"ml\",project=\"train\",node=\"n1\","
                "gpu=\"1\"} 0.5",
                true);
    assert_line(text, "ai_finops_events_total{outcome=\"accepted\"} 5", true);
    assert_line(text, "ai_finops_events_rejected_total{reason=\"unpriced\"} 1", true);
    assert_line(text, "ai_finops_events_rejected_total{reason=\"invalid_cost\"} 1", true);
    assert_line(text, "ai_finops_events_rejected_total{reason=\"invalid_utilization\"} 1", true);
    dynbuf_free(&b);
}

#define FOCUS_LINE(effective, currency)                                                            \
    "{\"BilledCost\":\"12.34\",\"EffectiveCost\":" effective ",\"BillingCurrency\":\"" currency    \
    "\",\"ChargeCategory\":\"Usage\",\"ServiceName\":\"Amazon EC2\",\"ProviderName\":\"AWS\","     \
    "\"SubAccountName\":\"prod-ml\",\"ResourceId\":\"i-0abc\",\"ChargePeriodStart\":"              \
    "\"2026-11-23T00:00:00Z\",\"Tags\":{\"team\":\"ml\",\"project\":\"train\"}}"

static void test_ingest_focus_lines(void **state)
{
    struct ingest_fixture *f = *state;
    line(f, FOCUS_LINE("\"10.1\"", "USD"), REJECT_NONE);
    line(f, FOCUS_LINE("0.000000001", "USD"), REJECT_NONE);
    line(f, FOCUS_LINE("\"-2.5\"", "USD"), REJECT_NONE);
    line(f, FOCUS_LINE("-0.25", "USD"), REJECT_NONE);
    line(f, FOCUS_LINE("\"10.1\"", "EUR"), REJECT_INVALID_CURRENCY);
    line(f, FOCUS_LINE("\"-100.000000001\"", "USD"), REJECT_INVALID_COST);
    struct dynbuf b;
    char *text = scrape(f, &b);
    const char *labels = "{team=\"ml\",project=\"train\",provider=\"AWS\",service=\"Amazon EC2\","
                         "charge_category=\"Usage\",sub_account=\"prod-ml\"}";
    char want[512];
    snprintf(want, sizeof(want), "ai_finops_cloud_cost_dollars_total%s 10.100000001", labels);
    assert_line(text, want, true);
    snprintf(want, sizeof(want), "ai_finops_credit_dollars_total%s 2.75", labels);
    assert_line(text, want, true);
    assert_line(text, "ai_finops_last_event_timestamp_seconds 1795392000.000", true);
    assert_line(text, "ai_finops_events_rejected_total{reason=\"invalid_currency\"} 1", true);
    dynbuf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_intervals_counted_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_silence_drops_gauges_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mark_table_full, setup_small, teardown),
        cmocka_unit_test_setup_teardown(test_sharded_marks_restore, setup_sharded_small, teardown),
        cmocka_unit_test_setup_teardown(test_focus_credits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ingest_gpu_lines, setup_gpu_lines, teardown_ingest),
        cmocka_unit_test_setup_teardown(test_ingest_focus_lines, setup_focus_lines,
                                        teardown_ingest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

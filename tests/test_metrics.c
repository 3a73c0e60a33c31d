/* test_metrics.c - the registry: events in through ingest, a golden render
 * of the labeled families, outcome counters, OpenMetrics extras, overflow
 * accounting, the file input's hold on new series and outcome counters,
 * and the Kafka input's sharded registry (shard label, outcome tables,
 * served only once published). */
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

struct fixture {
    struct exporter_config cfg;
    struct metrics *metrics;
    struct ingest *ingest;
    struct ingest_worker *worker;
};

static char *extra[] = {"environment"};

/* input "-": the file input's unsharded registry; NULL: Kafka's sharded one */
static int setup_with(void **state, int64_t max_series, const char *input, int64_t hold_ms)
{
    static struct fixture f;
    memset(&f, 0, sizeof(f));
    f.cfg.input = (char *)input;
    f.cfg.counters_max_series = max_series;
    f.cfg.counters_new_series_hold_ms = hold_ms;
    f.cfg.events_max_bytes = 65536;
    f.cfg.events_max_cost_nanos = 1000000LL * 1000000000LL;
    f.cfg.events_max_label_bytes = 128;
    f.cfg.events_max_depth = 16;
    f.cfg.events_unattributed_label = "unattributed";
    f.cfg.events_extra_labels.items = extra;
    f.cfg.events_extra_labels.count = 1;
    f.metrics = metrics_new(&f.cfg);
    f.ingest = ingest_new(&f.cfg, f.metrics, NULL);
    f.worker = ingest_worker_new(f.ingest);
    *state = &f;
    return f.worker ? 0 : -1;
}

static int setup(void **state)
{
    return setup_with(state, 1000, "-", 0);
}

static int setup_small(void **state)
{
    return setup_with(state, 2, "-", 0);
}

static int setup_hold(void **state)
{
    return setup_with(state, 1000, "-", 1000);
}

static int setup_sharded(void **state)
{
    return setup_with(state, 1000, NULL, 0);
}

static int setup_sharded_small(void **state)
{
    return setup_with(state, 2, NULL, 0);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    ingest_worker_free(f->worker);
    ingest_free(f->ingest);
    metrics_free(f->metrics);
    return 0;
}

static void feed(struct fixture *f, const char *json, enum reject_reason want)
{
    assert_int_equal(ingest_process(f->worker, json, strlen(json)), want);
}

static char *render(struct fixture *f, enum expo_format fmt, struct dynbuf *b)
{
    dynbuf_init(b, 1 << 24);
    assert_int_equal(metrics_render(f->metrics, fmt, b), 0);
    return b->data;
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

static void test_golden_text(void **state)
{
    struct fixture *f = *state;
    feed(f,
         "{\"team\":\"ml\",\"project\":\"chat\",\"source\":\"openai-api\",\"provider\":\"openai\","
         "\"model\":\"gpt-4o\",\"cost_usd\":0.5,\"input_tokens\":1000,\"output_tokens\":20,"
         "\"labels\":{\"environment\":\"prod\"}}",
         REJECT_NONE);
    feed(f,
         "{\"team\":\"ml\",\"project\":\"chat\",\"source\":\"openai-api\",\"provider\":\"openai\","
         "\"model\":\"gpt-4o\",\"cost_usd\":0.000000001,\"input_tokens\":5,"
         "\"labels\":{\"environment\":\"prod\"}}",
         REJECT_NONE);
    feed(f,
         "{\"team\":\"r\\\"&d\",\"project\":\"a\\\\b\\nc\",\"source\":\"gpu-training\","
         "\"instance_type\":\"p5.48xlarge\",\"gpu_type\":\"nvidia-h100-80gb\",\"gpu_count\":8,"
         "\"duration_seconds\":0.5,\"cost_usd\":12}",
         REJECT_NONE);
    feed(f, "{\"cost_usd\":-1}", REJECT_INVALID_COST);
    feed(f, "{\"team\":\"x\"}", REJECT_UNPRICED);
    feed(f, "nope", REJECT_INVALID_JSON);

    struct dynbuf b;
    char *text = render(f, EXPO_TEXT, &b);
    assert_family(text, "ai_finops_cost_dollars_total",
                  "# HELP ai_finops_cost_dollars_total AI spend in US dollars, exact to the "
                  "nano-dollar.\n"
                  "# TYPE ai_finops_cost_dollars_total counter\n"
                  "ai_finops_cost_dollars_total{team=\"ml\",project=\"chat\",source=\"openai-api\","
                  "environment=\"prod\"} 0.500000001\n"
                  "ai_finops_cost_dollars_total{team=\"r\\\"&d\",project=\"a\\\\b\\nc\","
                  "source=\"gpu-training\",environment=\"\"} 12\n");
    assert_family(text, "ai_finops_tokens_total",
                  "# HELP ai_finops_tokens_total LLM/API tokens by kind (input, cached_input, "
                  "cache_write, output).\n"
                  "# TYPE ai_finops_tokens_total counter\n"
                  "ai_finops_tokens_total{team=\"ml\",project=\"chat\",provider=\"openai\","
                  "model=\"gpt-4o\",kind=\"input\"} 1005\n"
                  "ai_finops_tokens_total{team=\"ml\",project=\"chat\",provider=\"openai\","
                  "model=\"gpt-4o\",kind=\"output\"} 20\n");
    assert_family(text, "ai_finops_gpu_seconds_total",
                  "# HELP ai_finops_gpu_seconds_total GPU-seconds used (gpu_count times "
                  "duration_seconds).\n"
                  "# TYPE ai_finops_gpu_seconds_total counter\n"
                  "ai_finops_gpu_seconds_total{team=\"r\\\"&d\",project=\"a\\\\b\\nc\","
                  "instance_type=\"p5.48xlarge\",gpu_type=\"nvidia-h100-80gb\"} 4\n");
    assert_non_null(strstr(text, "ai_finops_events_total{outcome=\"accepted\"} 3\n"));
    assert_non_null(strstr(text, "ai_finops_events_total{outcome=\"rejected\"} 3\n"));
    assert_non_null(strstr(text, "ai_finops_events_rejected_total{reason=\"invalid_cost\"} 1\n"));
    assert_non_null(strstr(text, "ai_finops_events_rejected_total{reason=\"unpriced\"} 1\n"));
    assert_non_null(strstr(text, "ai_finops_events_rejected_total{reason=\"too_deep\"} 0\n"));
    assert_non_null(strstr(text, "ai_finops_series{metric=\"ai_finops_cost_dollars_total\"} 2\n"));
    assert_non_null(strstr(text, "ai_finops_exporter_build_info{version=\""));
    assert_non_null(strstr(text, "\nprocess_resident_memory_bytes "));
    assert_non_null(strstr(text, "\nprocess_cpu_seconds_total "));
    assert_null(strstr(text, "# EOF"));
    assert_null(strstr(text, "_created"));
    dynbuf_free(&b);
}

static void test_openmetrics(void **state)
{
    struct fixture *f = *state;
    feed(f, "{\"team\":\"a\",\"project\":\"b\",\"source\":\"c\",\"cost_usd\":1.25}", REJECT_NONE);
    struct dynbuf b;
    char *text = render(f, EXPO_OPENMETRICS, &b);
    assert_non_null(strstr(text, "# TYPE ai_finops_cost_dollars counter\n"));
    assert_non_null(strstr(text, "ai_finops_cost_dollars_total{team=\"a\",project=\"b\","
                                 "source=\"c\",environment=\"\"} 1.25\n"
                                 "ai_finops_cost_dollars_created{team=\"a\",project=\"b\","
                                 "source=\"c\",environment=\"\"} "));
    assert_non_null(strstr(text, "# TYPE ai_finops_exporter_build info\n"));
    size_t len = strlen(text);
    assert_true(len > 6);
    assert_string_equal(text + len - 6, "# EOF\n");
    dynbuf_free(&b);
}

static void test_overflow_keeps_totals(void **state)
{
    struct fixture *f = *state;
    char json[256];
    for (int i = 0; i < 5; i++) {
        snprintf(json, sizeof(json), "{\"team\":\"t%d\",\"project\":\"p\",\"cost_usd\":%d}", i,
                 i + 1);
        feed(f, json, REJECT_NONE);
    }
    struct dynbuf b;
    char *text = render(f, EXPO_TEXT, &b);
    assert_non_null(strstr(text, "ai_finops_cost_dollars_total{team=\"__overflow__\","
                                 "project=\"__overflow__\",source=\"__overflow__\","
                                 "environment=\"__overflow__\"} 12\n"));
    assert_non_null(strstr(
        text, "ai_finops_series_overflow_total{metric=\"ai_finops_cost_dollars_total\"} 3\n"));
    assert_non_null(strstr(text, "ai_finops_series{metric=\"ai_finops_cost_dollars_total\"} 2\n"));
    dynbuf_free(&b);
}

static int created_of(const struct counter_view *v, void *ctx)
{
    *(int64_t *)ctx = v->created_ms;
    return 1;
}

static int series_of_view(const struct counter_view *v, void *ctx)
{
    *(struct counter_series **)ctx = v->series;
    return 1;
}

static struct counter_series *first_series(struct counter_table *t)
{
    struct counter_series *s = NULL;
    counter_table_foreach_all(t, series_of_view, &s);
    return s;
}

/* The value of the cost series of (team, project) as a text render shows
 * it, or -1 when it is not shown. */
static long long cost_shown(const char *text, const char *team)
{
    char head[128];
    snprintf(head, sizeof(head), "ai_finops_cost_dollars_total{team=\"%s\",", team);
    const char *p = strstr(text, head);
    if (!p)
        return -1;
    p = strchr(p, '}');
    return p ? atoll(p + 2) : -1;
}

/* The file input: a new series reads 0 until its creation + hold, the
 * outcome counters until the process start + hold; then the values. */
static void test_file_input_hold(void **state)
{
    struct fixture *f = *state;
    assert_false(metrics_sharded(f->metrics));
    assert_null(metrics_table(f->metrics, METRIC_FAMILY_EVENTS));
    assert_null(metrics_table(f->metrics, METRIC_FAMILY_REJECTED));
    feed(f, "{\"team\":\"a\",\"project\":\"b\",\"source\":\"c\",\"cost_usd\":3}", REJECT_NONE);
    feed(f, "nope", REJECT_INVALID_JSON);

    struct label_value labels[] = {{"a", 1}, {"b", 1}, {"c", 1}, {"", 0}};
    struct counter_table *cost = metrics_cost_table(f->metrics);
    int64_t created = 0;
    counter_table_foreach_all(cost, created_of, &created);
    assert_true(created > 0);
    assert_ptr_equal(counter_table_get(cost, labels), first_series(cost));

    struct dynbuf b;
    char *text = render_at(f, created + 999, &b);
    assert_int_equal(cost_shown(text, "a"), 0);
    dynbuf_free(&b);
    text = render_at(f, created + 1000, &b);
    assert_int_equal(cost_shown(text, "a"), 3);
    dynbuf_free(&b);

    int64_t start = metrics_start_ms(f->metrics);
    text = render_at(f, start + 999, &b);
    assert_non_null(strstr(text, "ai_finops_events_total{outcome=\"accepted\"} 0\n"));
    assert_non_null(strstr(text, "ai_finops_events_total{outcome=\"rejected\"} 0\n"));
    assert_non_null(strstr(text, "ai_finops_events_rejected_total{reason=\"invalid_json\"} 0\n"));
    dynbuf_free(&b);
    text = render_at(f, start + 1000, &b);
    assert_non_null(strstr(text, "ai_finops_events_total{outcome=\"accepted\"} 1\n"));
    assert_non_null(strstr(text, "ai_finops_events_total{outcome=\"rejected\"} 1\n"));
    assert_non_null(strstr(text, "ai_finops_events_rejected_total{reason=\"invalid_json\"} 1\n"));
    dynbuf_free(&b);
    /* the live totals are not held */
    struct metrics_totals t;
    metrics_totals(f->metrics, &t);
    assert_int_equal(t.accepted, 1);
    assert_int_equal(t.rejected, 1);
}

/* A stand-in for the Kafka checkpointer: publishes every series' live
 * value, no hold. */
static int publish_live(const struct counter_view *v, void *ctx)
{
    (void)ctx;
    counter_series_publish(v->series, v->live, 0);
    return 0;
}

static void publish_all(struct metrics *m)
{
    for (int i = 0; i < METRIC_FAMILY_COUNT; i++)
        if (metrics_table(m, (enum metric_family)i))
            counter_table_foreach_all(metrics_table(m, (enum metric_family)i), publish_live, NULL);
}

static void set_shard(struct fixture *f, const char *shard)
{
    ingest_worker_set_shard(f->worker, shard, strlen(shard));
}

/* The Kafka input: every event-fed family ends with the shard label, the
 * outcome counters are tables too, and readers see only what was
 * published. */
static void test_sharded_render(void **state)
{
    struct fixture *f = *state;
    assert_true(metrics_sharded(f->metrics));
    set_shard(f, "costs-0");
    feed(f,
         "{\"team\":\"ml\",\"project\":\"chat\",\"source\":\"s\",\"provider\":\"openai\","
         "\"model\":\"gpt-4o\",\"cost_usd\":0.5,\"input_tokens\":10,"
         "\"labels\":{\"environment\":\"prod\"}}",
         REJECT_NONE);
    feed(f, "nope", REJECT_INVALID_JSON);
    set_shard(f, "costs-1");
    feed(f,
         "{\"team\":\"ml\",\"project\":\"chat\",\"source\":\"s\",\"cost_usd\":0.25,"
         "\"instance_type\":\"p5.48xlarge\",\"gpu_type\":\"h100\",\"gpu_count\":2,"
         "\"duration_seconds\":3,\"labels\":{\"environment\":\"prod\"}}",
         REJECT_NONE);
    feed(f, "{\"team\":\"x\"}", REJECT_UNPRICED);
    set_shard(f, "costs-0"); /* back: the same series as before */
    feed(f,
         "{\"team\":\"ml\",\"project\":\"chat\",\"source\":\"s\",\"cost_usd\":0.000000001,"
         "\"labels\":{\"environment\":\"prod\"}}",
         REJECT_NONE);

    /* nothing published yet: no series shown, the live totals exact */
    struct dynbuf b;
    char *text = render(f, EXPO_TEXT, &b);
    assert_null(strstr(text, "ai_finops_cost_dollars_total{"));
    assert_null(strstr(text, "ai_finops_events_total{"));
    assert_non_null(strstr(text, "# HELP ai_finops_events_total Events decoded, by outcome.\n"));
    dynbuf_free(&b);
    struct metrics_totals t;
    metrics_totals(f->metrics, &t);
    assert_int_equal(t.accepted, 3);
    assert_int_equal(t.rejected, 2);
    assert_int_equal(t.rejected_by_reason[REJECT_INVALID_JSON], 1);
    assert_int_equal(t.rejected_by_reason[REJECT_UNPRICED], 1);

    publish_all(f->metrics);
    text = render(f, EXPO_TEXT, &b);
    assert_family(text, "ai_finops_cost_dollars_total",
                  "# HELP ai_finops_cost_dollars_total AI spend in US dollars, exact to the "
                  "nano-dollar.\n"
                  "# TYPE ai_finops_cost_dollars_total counter\n"
                  "ai_finops_cost_dollars_total{team=\"ml\",project=\"chat\",source=\"s\","
                  "environment=\"prod\",shard=\"costs-0\"} 0.500000001\n"
                  "ai_finops_cost_dollars_total{team=\"ml\",project=\"chat\",source=\"s\","
                  "environment=\"prod\",shard=\"costs-1\"} 0.25\n");
    assert_non_null(strstr(text, "ai_finops_tokens_total{team=\"ml\",project=\"chat\","
                                 "provider=\"openai\",model=\"gpt-4o\",kind=\"input\","
                                 "shard=\"costs-0\"} 10\n"));
    assert_non_null(strstr(text, "ai_finops_gpu_seconds_total{team=\"ml\",project=\"chat\","
                                 "instance_type=\"p5.48xlarge\",gpu_type=\"h100\","
                                 "shard=\"costs-1\"} 6\n"));
    assert_family(text, "ai_finops_events_total",
                  "# HELP ai_finops_events_total Events decoded, by outcome.\n"
                  "# TYPE ai_finops_events_total counter\n"
                  "ai_finops_events_total{outcome=\"accepted\",shard=\"costs-0\"} 2\n"
                  "ai_finops_events_total{outcome=\"rejected\",shard=\"costs-0\"} 1\n"
                  "ai_finops_events_total{outcome=\"accepted\",shard=\"costs-1\"} 1\n"
                  "ai_finops_events_total{outcome=\"rejected\",shard=\"costs-1\"} 1\n");
    assert_family(text, "ai_finops_events_rejected_total",
                  "# HELP ai_finops_events_rejected_total Rejected events, by reason (each also "
                  "goes to the dead-letter topic).\n"
                  "# TYPE ai_finops_events_rejected_total counter\n"
                  "ai_finops_events_rejected_total{reason=\"invalid_json\",shard=\"costs-0\"} 1\n"
                  "ai_finops_events_rejected_total{reason=\"unpriced\",shard=\"costs-1\"} 1\n");
    assert_non_null(strstr(text, "ai_finops_series{metric=\"ai_finops_events_total\"} 4\n"));
    assert_non_null(
        strstr(text, "ai_finops_series{metric=\"ai_finops_events_rejected_total\"} 2\n"));
    assert_non_null(strstr(
        text, "ai_finops_series_overflow_total{metric=\"ai_finops_events_rejected_total\"} 0\n"));
    dynbuf_free(&b);

    /* more events are served only once published again */
    feed(f, "{\"team\":\"ml\",\"project\":\"chat\",\"source\":\"s\",\"cost_usd\":1}", REJECT_NONE);
    text = render(f, EXPO_TEXT, &b);
    assert_non_null(
        strstr(text, "ai_finops_events_total{outcome=\"accepted\",shard=\"costs-0\"} 2\n"));
    dynbuf_free(&b);
    publish_all(f->metrics);
    text = render(f, EXPO_TEXT, &b);
    assert_non_null(
        strstr(text, "ai_finops_events_total{outcome=\"accepted\",shard=\"costs-0\"} 3\n"));
    dynbuf_free(&b);
}

/* Past counters.max_series each shard keeps its own overflow series. */
static void test_sharded_overflow_per_shard(void **state)
{
    struct fixture *f = *state;
    char json[256];
    for (int i = 0; i < 6; i++) {
        set_shard(f, i % 2 ? "t-1" : "t-0");
        snprintf(json, sizeof(json), "{\"team\":\"t%d\",\"project\":\"p\",\"cost_usd\":%d}", i,
                 i + 1);
        feed(f, json, REJECT_NONE);
    }
    publish_all(f->metrics);
    struct dynbuf b;
    char *text = render(f, EXPO_TEXT, &b);
    /* t0 (t-0) and t1 (t-1) fit; t2, t4 overflow in t-0, t3, t5 in t-1 */
    assert_non_null(strstr(text, "ai_finops_cost_dollars_total{team=\"__overflow__\","
                                 "project=\"__overflow__\",source=\"__overflow__\","
                                 "environment=\"__overflow__\",shard=\"t-0\"} 8\n"));
    assert_non_null(strstr(text, "ai_finops_cost_dollars_total{team=\"__overflow__\","
                                 "project=\"__overflow__\",source=\"__overflow__\","
                                 "environment=\"__overflow__\",shard=\"t-1\"} 10\n"));
    assert_non_null(strstr(
        text, "ai_finops_series_overflow_total{metric=\"ai_finops_cost_dollars_total\"} 4\n"));
    assert_non_null(strstr(text, "ai_finops_series{metric=\"ai_finops_cost_dollars_total\"} 2\n"));
    dynbuf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_golden_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_openmetrics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overflow_keeps_totals, setup_small, teardown),
        cmocka_unit_test_setup_teardown(test_file_input_hold, setup_hold, teardown),
        cmocka_unit_test_setup_teardown(test_sharded_render, setup_sharded, teardown),
        cmocka_unit_test_setup_teardown(test_sharded_overflow_per_shard, setup_sharded_small,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_metrics.c - the registry: events in through ingest, a golden render
 * of the labeled families, outcome counters, OpenMetrics extras, and
 * overflow accounting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "ingest.h"
#include "metrics.h"

struct fixture {
    struct exporter_config cfg;
    struct metrics *metrics;
    struct ingest *ingest;
    struct ingest_worker *worker;
};

static char *extra[] = {"environment"};

static int setup_with(void **state, int64_t max_series)
{
    static struct fixture f;
    memset(&f, 0, sizeof(f));
    f.cfg.counters_max_series = max_series;
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
    return setup_with(state, 1000);
}

static int setup_small(void **state)
{
    return setup_with(state, 2);
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
    assert_int_equal(metrics_render(f->metrics, fmt, 0, b, NULL), 0);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_golden_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_openmetrics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overflow_keeps_totals, setup_small, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

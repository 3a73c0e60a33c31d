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

struct held_one {
    enum metric_family family;
    uint64_t hash;
};

static bool holds_one(const void *ctx, enum metric_family family, uint64_t hash)
{
    const struct held_one *h = ctx;
    return h->family == family && h->hash == hash;
}

/* Replaying an event a previous owner counted adds it only to the held
 * series and counts no outcome. */
static void test_replay_adds_only_held_series(void **state)
{
    struct fixture *f = *state;
    const char *ev = "{\"team\":\"ml\",\"project\":\"chat\",\"source\":\"openai\","
                     "\"labels\":{\"environment\":\"prod\"},\"cost_usd\":1.5,"
                     "\"provider\":\"openai\",\"model\":\"gpt-4o\",\"input_tokens\":100}";
    struct label_value cost_labels[] = {{"ml", 2}, {"chat", 4}, {"openai", 6}, {"prod", 4}};
    struct held_one held = {METRIC_FAMILY_COST,
                            counter_table_hash(metrics_cost_table(f->metrics), cost_labels)};
    struct series_filter filter = {holds_one, &held};
    assert_int_equal(ingest_replay(f->worker, ev, strlen(ev), &filter), REJECT_NONE);
    assert_int_equal(ingest_replay(f->worker, "{", 1, &filter), REJECT_INVALID_JSON);

    struct dynbuf b;
    char *text = render(f, EXPO_TEXT, &b);
    assert_non_null(strstr(text, "ai_finops_cost_dollars_total{team=\"ml\",project=\"chat\","
                                 "source=\"openai\",environment=\"prod\"} 1.5\n"));
    assert_null(strstr(text, "ai_finops_tokens_total{"));
    assert_non_null(strstr(text, "ai_finops_events_total{outcome=\"accepted\"} 0\n"));
    assert_non_null(strstr(text, "ai_finops_events_total{outcome=\"rejected\"} 0\n"));
    dynbuf_free(&b);

    /* holding the tokens series instead adds the tokens only */
    struct label_value token_labels[] = {
        {"ml", 2}, {"chat", 4}, {"openai", 6}, {"gpt-4o", 6}, {"input", 5}};
    /* the hash is of the label values only: any 5-label table computes it */
    static const char *const five[] = {"a", "b", "c", "d", "e"};
    struct counter_table *shape = counter_table_new(five, 5, 1);
    assert_non_null(shape);
    held.family = METRIC_FAMILY_TOKENS;
    held.hash = counter_table_hash(shape, token_labels);
    counter_table_free(shape);
    assert_int_equal(ingest_replay(f->worker, ev, strlen(ev), &filter), REJECT_NONE);
    text = render(f, EXPO_TEXT, &b);
    assert_non_null(strstr(text, "ai_finops_tokens_total{team=\"ml\",project=\"chat\","
                                 "provider=\"openai\",model=\"gpt-4o\",kind=\"input\"} 100\n"));
    assert_non_null(strstr(text, "source=\"openai\",environment=\"prod\"} 1.5\n"));
    dynbuf_free(&b);
}

struct sightings {
    struct first_sight seen[16];
    size_t n;
    size_t unknown;
    int counters_read;
};

static void on_sight(void *ctx, const struct first_sight *fs)
{
    struct sightings *s = ctx;
    if (!fs->known)
        s->unknown++;
    else if (s->n < 16)
        s->seen[s->n++] = *fs;
}

static void on_read(void *ctx)
{
    ((struct sightings *)ctx)->counters_read++;
}

/* A scrape names each series it shows first by family and hash, once per
 * viewer, and says when it has read every counter. */
static void test_first_sights_named(void **state)
{
    struct fixture *f = *state;
    counter_table_set_origin(3, 42);
    feed(f,
         "{\"team\":\"ml\",\"project\":\"chat\",\"source\":\"s\",\"cost_usd\":1,"
         "\"provider\":\"p\",\"model\":\"m\",\"output_tokens\":7}",
         REJECT_NONE);
    counter_table_set_origin(0, 0);
    struct sightings s = {0};
    struct scrape_observer obs = {on_sight, on_read, &s};
    struct dynbuf b;
    dynbuf_init(&b, 1 << 24);
    assert_int_equal(metrics_render(f->metrics, EXPO_TEXT, 1u, &b, &obs), 0);
    dynbuf_free(&b);
    assert_int_equal(s.n, 2);       /* the cost series and the output-tokens series */
    assert_int_equal(s.unknown, 1); /* the outcome counters */
    assert_int_equal(s.counters_read, 1);
    struct label_value cost_labels[] = {{"ml", 2}, {"chat", 4}, {"s", 1}, {"", 0}};
    assert_int_equal(s.seen[0].family, METRIC_FAMILY_COST);
    assert_int_equal(s.seen[0].hash,
                     counter_table_hash(metrics_cost_table(f->metrics), cost_labels));
    assert_int_equal(s.seen[0].origin, 3);
    assert_int_equal(s.seen[0].origin_offset, 42);
    assert_int_equal(s.seen[1].family, METRIC_FAMILY_TOKENS);

    memset(&s, 0, sizeof(s));
    dynbuf_init(&b, 1 << 24);
    assert_int_equal(metrics_render(f->metrics, EXPO_TEXT, 1u, &b, &obs), 0);
    dynbuf_free(&b);
    assert_int_equal(s.n, 0);
    assert_int_equal(s.unknown, 0);
    assert_int_equal(s.counters_read, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_golden_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_openmetrics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overflow_keeps_totals, setup_small, teardown),
        cmocka_unit_test_setup_teardown(test_replay_adds_only_held_series, setup, teardown),
        cmocka_unit_test_setup_teardown(test_first_sights_named, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

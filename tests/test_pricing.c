/* test_pricing.c - golden cases computed by hand (tests/data/prices/
 * golden.yaml has round prices for that), the rounding rule at the last
 * nano-dollar, overflow, unknown models, table overrides, the bundled
 * tables and where an installed program finds them, and pricing inside the ingest path (priced
 * events, preference, mismatches). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "ingest.h"
#include "metrics.h"
#include "pricing.h"

static struct price_table *load_fixture(const char *extra)
{
    char golden[4096], more[4096];
    snprintf(golden, sizeof(golden), "%s/tests/data/prices/golden.yaml", FINOPS_SOURCE_DIR);
    snprintf(more, sizeof(more), "%s/tests/data/prices/%s", FINOPS_SOURCE_DIR, extra ? extra : "");
    const char *paths[] = {golden, more};
    struct price_table *t = NULL;
    char err[512] = "";
    int rc = price_table_load(&t, paths, extra ? 2 : 1, err, sizeof(err));
    if (rc)
        fail_msg("load: %s", err);
    return t;
}

static struct label_value lv(const char *s)
{
    return (struct label_value){s, (uint32_t)strlen(s)};
}

struct llm_case {
    const char *model;
    uint64_t tokens[TOKEN_KIND_COUNT]; /* input, cached_input, cache_write, output */
    int rc;
    uint64_t nanos;
    const char *why;
};

/* Prices per million tokens -> per token: 2.50 -> 2500 nanos, 1.25 -> 1250,
 * 3.125 -> 3125, 10.00 -> 10000, 0.075 -> 75, 0.30 -> 300; "tiny" costs
 * 0.000001 and 0.000003 nano-dollars per token, so rounding shows. */
static const struct llm_case llm_cases[] = {
    {"m1", {1000000, 0, 0, 0}, 0, 2500000000ULL, "one million input tokens = the list price"},
    {"m1", {1, 0, 0, 0}, 0, 2500, "one input token"},
    {"m1", {0, 0, 0, 1}, 0, 10000, "one output token"},
    {"m1", {0, 1, 0, 0}, 0, 1250, "one cached input token"},
    {"m1", {0, 0, 1, 0}, 0, 3125, "one cache-write token"},
    {"m1", {1200, 300, 100, 450}, 0, 8187500, "all four kinds: 3e6+375e3+312.5e3+4.5e6"},
    {"m1", {0, 0, 0, 0}, 0, 0, "no tokens cost nothing"},
    {"m2", {1, 0, 0, 0}, 0, 75, "sub-cent price per token"},
    {"m2", {0, 0, 0, 1}, 0, 300, "output of m2"},
    {"m2", {123456789012ULL, 0, 0, 0}, 0, 9259259175900ULL, "123,456,789,012 x 75"},
    {"m1", {1000000000000ULL, 0, 0, 0}, 0, 2500000000000000ULL, "10^12 tokens = $2.5M"},
    {"tiny", {1, 0, 0, 0}, 0, 0, "0.000001 nano rounds down to 0"},
    {"tiny", {499999, 0, 0, 0}, 0, 0, "0.499999 nano rounds down"},
    {"tiny", {500000, 0, 0, 0}, 0, 1, "exactly half a nano rounds up"},
    {"tiny", {1500000, 0, 0, 0}, 0, 2, "1.5 nano rounds up to 2"},
    {"tiny", {0, 0, 0, 166667}, 0, 1, "0.500001 nano rounds up"},
    {"tiny", {0, 0, 0, 166666}, 0, 0, "0.499998 nano rounds down"},
    {"tiny", {250000, 0, 0, 83334}, 0, 1, "0.25 + 0.250002: rounded once, on the sum"},
    {"m1", {9007199254740991ULL, 0, 0, 0}, -ERANGE, 0, "2^53-1 tokens overflow 64-bit nanos"},
    {"m2", {0, 1, 0, 0}, -ENOENT, 0, "m2 has no cached-input price"},
    {"M1", {1, 0, 0, 0}, -ENOENT, 0, "model names are case-sensitive"},
    {"unknown", {1, 0, 0, 0}, -ENOENT, 0, "unknown model"},
};

static void test_llm_golden(void **state)
{
    (void)state;
    struct price_table *t = load_fixture(NULL);
    for (size_t i = 0; i < sizeof(llm_cases) / sizeof(llm_cases[0]); i++) {
        const struct llm_case *c = &llm_cases[i];
        uint64_t nanos = 0;
        int rc = price_table_llm_cost(t, lv("t"), lv(c->model), c->tokens, &nanos);
        if (rc != c->rc || (rc == 0 && nanos != c->nanos))
            fail_msg("case %zu (%s): rc %d nanos %llu, want rc %d nanos %llu", i, c->why, rc,
                     (unsigned long long)nanos, c->rc, (unsigned long long)c->nanos);
    }
    uint64_t nanos;
    uint64_t one[TOKEN_KIND_COUNT] = {1, 0, 0, 0};
    assert_int_equal(price_table_llm_cost(t, lv("other"), lv("m1"), one, &nanos), -ENOENT);
    price_table_free(t);
}

struct gpu_case {
    const char *instance;
    uint64_t gpus;
    uint64_t duration_nanos;
    int rc;
    uint64_t nanos;
    const char *why;
};

static const struct gpu_case gpu_cases[] = {
    {"i8", 8, 3600000000000ULL, 0, 98320000000ULL, "whole instance for an hour = list price"},
    {"i8", 1, 3600000000000ULL, 0, 12290000000ULL, "one of 8 GPUs for an hour"},
    {"i8", 1, 1000000000ULL, 0, 3413889, "one GPU-second: 3,413,888.89 rounds up"},
    {"i1", 1, 500000000ULL, 0, 139722, "half a second: 139,722.22 rounds down"},
    {"i3", 2, 5400000000ULL, 0, 1000000, "2 x 5.4 s / 10800 s = exactly $0.001"},
    {"i3", 1, 16200, 0, 2, "16.2 us = 1.5 nano: a tie rounds up"},
    {"i3", 1, 1, 0, 0, "one nanosecond rounds to 0"},
    {"i8", 0, 3600000000000ULL, 0, 0, "zero GPUs cost nothing"},
    {"nope", 1, 1000000000ULL, -ENOENT, 0, "unknown instance type"},
};

static void test_gpu_type_golden(void **state)
{
    (void)state;
    struct price_table *t = load_fixture(NULL);
    uint64_t nanos = 0;
    /* 4 GPUs x 90 min at $2.50 per GPU-hour = $15 */
    assert_int_equal(price_table_gpu_type_cost(t, lv("onprem-h100"), 4, 5400000000000ULL, &nanos),
                     0);
    assert_int_equal(nanos, 15000000000ULL);
    /* 1 GPU x 1 ms = 2.5/3600/1000 $ = 694.44 nanos -> 694 */
    assert_int_equal(price_table_gpu_type_cost(t, lv("onprem-h100"), 1, 1000000ULL, &nanos), 0);
    assert_int_equal(nanos, 694);
    assert_int_equal(price_table_gpu_type_cost(t, lv("onprem-a100"), 1, 1000000ULL, &nanos),
                     -ENOENT);
    price_table_free(t);
}

static void test_gpu_golden(void **state)
{
    (void)state;
    struct price_table *t = load_fixture(NULL);
    for (size_t i = 0; i < sizeof(gpu_cases) / sizeof(gpu_cases[0]); i++) {
        const struct gpu_case *c = &gpu_cases[i];
        uint64_t nanos = 0;
        int rc = price_table_gpu_cost(t, lv(c->instance), c->gpus, c->duration_nanos, &nanos);
        if (rc != c->rc || (rc == 0 && nanos != c->nanos))
            fail_msg("case %zu (%s): rc %d nanos %llu, want rc %d nanos %llu", i, c->why, rc,
                     (unsigned long long)nanos, c->rc, (unsigned long long)c->nanos);
    }
    price_table_free(t);
}

/* Idle cost = counted x (1 - utilization) x per-GPU-second price, one
 * rounding (half up); expected values computed with exact fractions. */
static void test_gpu_idle_golden(void **state)
{
    (void)state;
    struct price_table *t = load_fixture(NULL);
    struct {
        const char *instance, *gpu_type;
        uint64_t counted_nanos, util_ppb;
        int rc;
        uint64_t nanos;
        const char *why;
    } cases[] = {
        {"i8", "g", 60000000000ULL, 250000000, 0, 153625000,
         "60 s at 25% on 1/8 of $98.32/h: 45 s x $12.29/3600"},
        {"i3", "g", 1000000000ULL, 0, 0, 92593, "1 s idle of $1/h / 3 GPUs = 92592.59 -> 92593"},
        {"i3", "g", 5400, 0, 0, 1, "5.4 us idle = exactly 0.5 nano: a tie rounds up"},
        {"i3", "g", 5399, 0, 0, 0, "5.399 us = 0.4999 nano rounds down"},
        {"i1", "g", 60000000000ULL, 123456789, 0, 14696708,
         "one rounding: 440901235133/30000 = 14696707.84 -> 14696708"},
        {"i8", "g", 60000000000ULL, 1000000000ULL, 0, 0, "fully busy: no idle cost"},
        {"nope", "onprem-h100", 3600000000000ULL, 600000000, 0, 1000000000ULL,
         "no instance price: the gpu_type's $2.50 per GPU-hour, 40% idle for 1 h = $1"},
        {"i1", "onprem-h100", 3600000000000ULL, 0, 0, 1006000000ULL,
         "the instance type's price wins over the gpu_type's"},
        {"nope", "onprem-a100", 1000000000ULL, 0, -ENOENT, 0, "no price at all: unpriced"},
        {"i1", "g", 1000000000ULL, 1000000001ULL, -EINVAL, 0, "utilization above 1"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint64_t nanos = 0;
        int rc = price_table_gpu_idle_cost(t, lv(cases[i].instance), lv(cases[i].gpu_type),
                                           cases[i].counted_nanos, cases[i].util_ppb, &nanos);
        if (rc != cases[i].rc || (rc == 0 && nanos != cases[i].nanos))
            fail_msg("case %zu (%s): rc %d nanos %llu, want rc %d nanos %llu", i, cases[i].why, rc,
                     (unsigned long long)nanos, cases[i].rc, (unsigned long long)cases[i].nanos);
    }
    struct gpu_rate rate;
    assert_int_equal(price_table_gpu_rate(t, lv("i8"), lv("onprem-h100"), &rate), 0);
    assert_int_equal(rate.gpus, 8);
    assert_int_equal(rate.per_hour_nanos, 98320000000ULL);
    /* a day at $1M per GPU-hour is exact; a product past 128 bits is
     * refused (the quotient alone can never pass 64 bits: 2^128 / 3.6e21) */
    uint64_t nanos;
    rate = (struct gpu_rate){1000000000000000ULL, 1};
    assert_int_equal(gpu_idle_cost(&rate, 86400000000000ULL, 0, &nanos), 0);
    assert_int_equal(nanos, 24000000000000000ULL);
    rate = (struct gpu_rate){UINT64_MAX, 1};
    assert_int_equal(gpu_idle_cost(&rate, 86400000000000ULL, 0, &nanos), -ERANGE);
    price_table_free(t);
}

static void test_override_and_errors(void **state)
{
    (void)state;
    struct price_table *t = load_fixture("override.yaml");
    uint64_t nanos, one_in[TOKEN_KIND_COUNT] = {1, 0, 0, 0}, one_cached[TOKEN_KIND_COUNT] = {0, 1};
    assert_int_equal(price_table_llm_cost(t, lv("t"), lv("m1"), one_in, &nanos), 0);
    assert_int_equal(nanos, 3000); /* the later file wins, whole entry */
    assert_int_equal(price_table_llm_cost(t, lv("t"), lv("m1"), one_cached, &nanos), -ENOENT);
    assert_int_equal(price_table_llm_cost(t, lv("t"), lv("new"), one_in, &nanos), 0);
    assert_int_equal(nanos, 1000);
    assert_int_equal(price_table_llm_count(t), 4);
    price_table_free(t);

    char bad[4096], err[512] = "";
    snprintf(bad, sizeof(bad), "%s/tests/data/prices/bad.yaml", FINOPS_SOURCE_DIR);
    const char *paths[] = {bad};
    assert_int_equal(price_table_load(&t, paths, 1, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "bad.yaml:4:12: 'input' must be a decimal price"));
    const char *missing[] = {"/nonexistent/prices.yaml"};
    assert_int_equal(price_table_load(&t, missing, 1, err, sizeof(err)), -ENOENT);
}

static void test_bundled_tables(void **state)
{
    (void)state;
    char llm[4096], gpu[4096], err[512] = "";
    snprintf(llm, sizeof(llm), "%s/llm.yaml", price_table_bundled_dir());
    snprintf(gpu, sizeof(gpu), "%s/gpu.yaml", price_table_bundled_dir());
    const char *paths[] = {llm, gpu};
    struct price_table *t = NULL;
    if (price_table_load(&t, paths, 2, err, sizeof(err)))
        fail_msg("%s", err);
    assert_true(price_table_llm_count(t) >= 20);
    assert_true(price_table_gpu_count(t) >= 15);
    /* gpt-4o at 2.50 / 10.00 per million: 1000 in + 1000 out = $0.0125 */
    uint64_t nanos, tokens[TOKEN_KIND_COUNT] = {1000, 0, 0, 1000};
    assert_int_equal(price_table_llm_cost(t, lv("openai"), lv("gpt-4o"), tokens, &nanos), 0);
    assert_int_equal(nanos, 12500000);
    /* p5.48xlarge at $55.04/h for 8 GPUs: 8 GPUs x 30 min = $27.52 */
    assert_int_equal(price_table_gpu_cost(t, lv("p5.48xlarge"), 8, 1800000000000ULL, &nanos), 0);
    assert_int_equal(nanos, 27520000000ULL);
    struct dynbuf b;
    dynbuf_init(&b, 1 << 22);
    price_table_render(t, &b, EXPO_TEXT);
    assert_non_null(strstr(
        b.data, "ai_finops_price_dollars{provider=\"openai\",model=\"gpt-4o\",kind=\"input\"} "
                "0.0000025\n"));
    assert_non_null(strstr(b.data, "ai_finops_gpu_price_dollars_per_hour{cloud=\"aws\","
                                   "instance_type=\"p5.48xlarge\",gpu_type=\"nvidia-h100-80gb\"} "
                                   "55.04\n"));
    dynbuf_free(&b);
    price_table_free(t);
}

/* An installed prefix (bin/ beside share/ai-finops-exporter/prices/) is
 * found from the program's own path; anything else falls back to the
 * compiled-in source tree; FINOPS_PRICES_DIR overrides both. */
static void test_locate_installed_tables(void **state)
{
    (void)state;
    char prefix[] = "/tmp/finops-prefix-XXXXXX", path[4096], exe[4096], buf[4096];
    assert_non_null(mkdtemp(prefix));
    const char *dirs[] = {"bin", "share", "share/ai-finops-exporter",
                          "share/ai-finops-exporter/prices"};
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", prefix, dirs[i]);
        assert_int_equal(mkdir(path, 0755), 0);
    }
    snprintf(exe, sizeof(exe), "%s/bin/ai-finops-exporter", prefix);
    /* no tables in the prefix yet: the source tree's */
    assert_string_equal(price_table_locate_dir(exe, buf, sizeof(buf)), FINOPS_PRICES_DIR);
    assert_string_equal(price_table_locate_dir(NULL, buf, sizeof(buf)), FINOPS_PRICES_DIR);

    char llm[4096 + 16];
    snprintf(llm, sizeof(llm), "%s/share/ai-finops-exporter/prices/llm.yaml", prefix);
    FILE *f = fopen(llm, "w");
    assert_non_null(f);
    fputs("models:\n  - {provider: acme, model: m1, input: \"1.00\", output: \"2.00\"}\n", f);
    fclose(f);
    char dir[4096], shorter[16];
    snprintf(dir, sizeof(dir), "%s", price_table_locate_dir(exe, buf, sizeof(buf)));
    snprintf(path, sizeof(path), "%s/bin/../share/ai-finops-exporter/prices", prefix);
    assert_string_equal(dir, path);
    /* a buffer too short for the path is never truncated into a wrong one */
    assert_string_equal(price_table_locate_dir(exe, shorter, sizeof(shorter)), FINOPS_PRICES_DIR);

    /* the located tables load and price */
    snprintf(llm, sizeof(llm), "%s/llm.yaml", dir);
    const char *paths[] = {llm};
    struct price_table *t = NULL;
    char err[512] = "";
    if (price_table_load(&t, paths, 1, err, sizeof(err)))
        fail_msg("%s", err);
    uint64_t nanos, tokens[TOKEN_KIND_COUNT] = {1000000, 0, 0, 1000000};
    assert_int_equal(price_table_llm_cost(t, lv("acme"), lv("m1"), tokens, &nanos), 0);
    assert_int_equal(nanos, 3000000000ULL);
    price_table_free(t);

    /* this test program is not installed: the source tree, unless overridden */
    assert_string_equal(price_table_bundled_dir(), FINOPS_PRICES_DIR);
    assert_int_equal(setenv("FINOPS_PRICES_DIR", dir, 1), 0);
    assert_string_equal(price_table_bundled_dir(), dir);
    assert_int_equal(unsetenv("FINOPS_PRICES_DIR"), 0);
    assert_string_equal(price_table_bundled_dir(), FINOPS_PRICES_DIR);

    unlink(llm);
    for (size_t i = sizeof(dirs) / sizeof(dirs[0]); i-- > 0;) {
        snprintf(path, sizeof(path), "%s/%s", prefix, dirs[i]);
        rmdir(path);
    }
    rmdir(prefix);
}

static void test_ingest_prices_events(void **state)
{
    (void)state;
    struct price_table *t = load_fixture(NULL);
    struct exporter_config cfg;
    config_init_defaults(&cfg);
    cfg.pricing_mismatch_tolerance_ppm = 10000; /* 1% */
    cfg.input = strdup("-"); /* the file input's registry: live values, no shard label */
    cfg.counters_new_series_hold_ms = 0;
    struct metrics *m = metrics_new(&cfg);
    struct ingest *in = ingest_new(&cfg, m, t);
    struct ingest_worker *w = ingest_worker_new(in);
    const char *events[] = {
        /* priced from usage: 1200 x 2500 + 450 x 10000 = 7,500,000 */
        "{\"team\":\"a\",\"project\":\"p\",\"source\":\"s\",\"provider\":\"t\",\"model\":\"m1\","
        "\"input_tokens\":1200,\"output_tokens\":450}",
        /* cost wins, within tolerance: 0.0075 vs 0.0075 */
        "{\"team\":\"a\",\"project\":\"p\",\"source\":\"s\",\"provider\":\"t\",\"model\":\"m1\","
        "\"input_tokens\":1200,\"output_tokens\":450,\"cost_usd\":0.0075}",
        /* cost wins, 2x the table: counted as a mismatch */
        "{\"team\":\"a\",\"project\":\"p\",\"source\":\"s\",\"provider\":\"t\",\"model\":\"m1\","
        "\"input_tokens\":1200,\"output_tokens\":450,\"cost_usd\":0.015}",
        /* GPU priced: i3, 2 GPUs x 5.4 s = $0.001 */
        "{\"team\":\"a\",\"project\":\"p\",\"source\":\"s\",\"instance_type\":\"i3\","
        "\"gpu_count\":2,\"duration_seconds\":5.4}",
        /* unknown instance type, priced by its configured GPU type: $15 */
        "{\"team\":\"a\",\"project\":\"p\",\"source\":\"s\",\"instance_type\":\"rack7\","
        "\"gpu_type\":\"onprem-h100\",\"gpu_count\":4,\"duration_seconds\":5400}",
        /* unknown model, no cost: unpriced */
        "{\"team\":\"a\",\"project\":\"p\",\"source\":\"s\",\"provider\":\"t\",\"model\":\"zz\","
        "\"input_tokens\":5}",
    };
    enum reject_reason want[] = {REJECT_NONE, REJECT_NONE, REJECT_NONE,
                                 REJECT_NONE, REJECT_NONE, REJECT_UNPRICED};
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(ingest_process(w, events[i], strlen(events[i])), want[i]);
    struct dynbuf b;
    dynbuf_init(&b, 1 << 22);
    assert_int_equal(metrics_render(m, EXPO_TEXT, &b), 0);
    /* 0.0075 + 0.0075 + 0.015 + 0.001 + 15 */
    assert_non_null(strstr(
        b.data, "ai_finops_cost_dollars_total{team=\"a\",project=\"p\",source=\"s\"} 15.031\n"));
    assert_non_null(
        strstr(b.data, "ai_finops_pricing_mismatch_total{provider=\"t\",model=\"m1\"} 1\n"));
    dynbuf_free(&b);
    ingest_worker_free(w);
    ingest_free(in);
    metrics_free(m);

    /* pricing.prefer: table replaces the event's 0.015 by 0.0075 */
    cfg.pricing_prefer = PRICE_PREFER_TABLE;
    m = metrics_new(&cfg);
    in = ingest_new(&cfg, m, t);
    w = ingest_worker_new(in);
    assert_int_equal(ingest_process(w, events[2], strlen(events[2])), REJECT_NONE);
    dynbuf_init(&b, 1 << 22);
    metrics_render(m, EXPO_TEXT, &b);
    assert_non_null(strstr(
        b.data, "ai_finops_cost_dollars_total{team=\"a\",project=\"p\",source=\"s\"} 0.0075\n"));
    dynbuf_free(&b);
    ingest_worker_free(w);
    ingest_free(in);
    metrics_free(m);
    config_free(&cfg);
    price_table_free(t);
}

/* events.max_cost_usd bounds the counted cost however it was obtained: a
 * priced cost above it is rejected as invalid_cost (counted like any
 * reject, so the Kafka input dead-letters it), and nothing is added. */
static void test_ingest_priced_cost_limit(void **state)
{
    (void)state;
    struct price_table *t = load_fixture(NULL);
    struct exporter_config cfg;
    config_init_defaults(&cfg);
    cfg.input = strdup("-");
    cfg.counters_new_series_hold_ms = 0;
    cfg.events_max_tokens = 9007199254740992LL; /* only the cost limit applies */
    struct metrics *m = metrics_new(&cfg);
    struct ingest *in = ingest_new(&cfg, m, t);
    struct ingest_worker *w = ingest_worker_new(in);
    static const struct {
        const char *json;
        enum reject_reason want;
    } cases[] = {
        /* m1 output: $10 per 1M tokens. 1e12 tokens would add $10M. */
        {"{\"team\":\"a\",\"provider\":\"t\",\"model\":\"m1\",\"output_tokens\":1e12}",
         REJECT_INVALID_COST},
        /* exactly the default limit, $1,000,000: counted */
        {"{\"team\":\"a\",\"provider\":\"t\",\"model\":\"m1\",\"output_tokens\":100000000000}",
         REJECT_NONE},
        /* one token more: $1,000,000.00001 */
        {"{\"team\":\"a\",\"provider\":\"t\",\"model\":\"m1\",\"output_tokens\":100000000001}",
         REJECT_INVALID_COST},
        /* beyond 64 bits of nano-dollars */
        {"{\"team\":\"a\",\"provider\":\"t\",\"model\":\"m1\",\"output_tokens\":9007199254740992}",
         REJECT_INVALID_COST},
        /* its own cost is within the limit and counted; the table's is not
         * (a mismatch) */
        {"{\"team\":\"a\",\"provider\":\"t\",\"model\":\"m1\",\"output_tokens\":1e12,"
         "\"cost_usd\":2}",
         REJECT_NONE},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        enum reject_reason got = ingest_process(w, cases[i].json, strlen(cases[i].json));
        if (got != cases[i].want)
            fail_msg("%s: got %s, want %s", cases[i].json, reject_reason_name(got),
                     reject_reason_name(cases[i].want));
    }
    struct metrics_totals totals;
    metrics_totals(m, &totals);
    assert_int_equal(totals.rejected_by_reason[REJECT_INVALID_COST], 3);
    assert_int_equal(totals.accepted, 2);
    struct dynbuf b;
    dynbuf_init(&b, 1 << 22);
    assert_int_equal(metrics_render(m, EXPO_TEXT, &b), 0);
    assert_non_null(strstr(b.data,
                           "ai_finops_cost_dollars_total{team=\"a\",project=\"unattributed\","
                           "source=\"unknown\"} 1000002\n"));
    assert_non_null(
        strstr(b.data, "ai_finops_pricing_mismatch_total{provider=\"t\",model=\"m1\"} 1\n"));
    dynbuf_free(&b);
    ingest_worker_free(w);
    ingest_free(in);
    metrics_free(m);

    /* GPU usage, a lower limit, and pricing.prefer: table, which counts the
     * table's price and so checks it. */
    cfg.events_max_cost_nanos = 10LL * 1000000000LL; /* $10 */
    const char *gpu = "{\"team\":\"a\",\"instance_type\":\"rack7\",\"gpu_type\":\"onprem-h100\","
                      "\"gpu_count\":4,\"duration_seconds\":5400}"; /* $15 */
    const char *gpu_own =
        "{\"team\":\"a\",\"instance_type\":\"rack7\",\"gpu_type\":\"onprem-h100\","
        "\"gpu_count\":4,\"duration_seconds\":5400,\"cost_usd\":1}";
    for (int prefer_table = 0; prefer_table < 2; prefer_table++) {
        cfg.pricing_prefer = prefer_table ? PRICE_PREFER_TABLE : cfg.pricing_prefer;
        m = metrics_new(&cfg);
        in = ingest_new(&cfg, m, t);
        w = ingest_worker_new(in);
        assert_int_equal(ingest_process(w, gpu, strlen(gpu)), REJECT_INVALID_COST);
        assert_int_equal(ingest_process(w, gpu_own, strlen(gpu_own)),
                         prefer_table ? REJECT_INVALID_COST : REJECT_NONE);
        metrics_totals(m, &totals);
        assert_int_equal(totals.rejected_by_reason[REJECT_INVALID_COST], prefer_table ? 2 : 1);
        ingest_worker_free(w);
        ingest_free(in);
        metrics_free(m);
    }
    config_free(&cfg);
    price_table_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llm_golden),
        cmocka_unit_test(test_gpu_golden),
        cmocka_unit_test(test_gpu_type_golden),
        cmocka_unit_test(test_gpu_idle_golden),
        cmocka_unit_test(test_override_and_errors),
        cmocka_unit_test(test_bundled_tables),
        cmocka_unit_test(test_ingest_prices_events),
        cmocka_unit_test(test_ingest_priced_cost_limit),
        cmocka_unit_test(test_locate_installed_tables),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_loadgen.c - the load generator against the project's own decoder
 * and pricing: same seed -> same bytes; every good event decodes and
 * prices to exactly what the generator accounted; every defect is
 * rejected for exactly its reason; the Zipf skew, spikes, the daily
 * schedule and the totals JSON. Uses the bundled price tables. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "loadgen.h"
#include "money.h"
#include "pricing.h"

static struct price_table *prices;

static int load_bundled(void **state)
{
    char llm[4096], gpu[4096], err[512] = "";
    (void)state;
    snprintf(llm, sizeof(llm), "%s/llm.yaml", price_table_bundled_dir());
    snprintf(gpu, sizeof(gpu), "%s/gpu.yaml", price_table_bundled_dir());
    const char *paths[] = {llm, gpu};
    if (price_table_load(&prices, paths, 2, err, sizeof(err)) != 0) {
        fprintf(stderr, "price tables: %s\n", err);
        return -1;
    }
    return 0;
}

static int free_bundled(void **state)
{
    (void)state;
    price_table_free(prices);
    return 0;
}

static struct loadgen *make(uint64_t seed, double usage_only, double bad)
{
    struct loadgen_options o;
    struct loadgen *g = NULL;
    char err[256] = "";
    loadgen_options_defaults(&o);
    o.seed = seed;
    o.usage_only_ratio = usage_only;
    o.bad_ratio = bad;
    if (loadgen_new(&g, prices, &o, err, sizeof(err)) != 0)
        fail_msg("loadgen_new: %s", err);
    return g;
}

static struct event_decoder *default_decoder(void)
{
    /* The contract's defaults (docs/events.md). */
    static const struct event_limits limits = {
        .max_bytes = 65536,
        .max_cost_nanos = 1000000ULL * NANOS_PER_UNIT,
        .max_label_bytes = 128,
        .max_depth = 16,
        .unattributed_label = "unattributed",
    };
    struct event_decoder *d = event_decoder_new(&limits);
    assert_non_null(d);
    return d;
}

static bool lv_eq(struct label_value v, const char *s)
{
    return v.len == strlen(s) && memcmp(v.ptr, s, v.len) == 0;
}

/* What the exporter does with a decoded event (src/ingest.c): the table's
 * price of its usage, or -ENOENT when it has none or some is unpriced. */
static int table_cost(const struct event *ev, uint64_t *cost)
{
    bool has_tokens = false;
    uint64_t llm = 0, gpu = 0;
    for (int k = 0; k < TOKEN_KIND_COUNT; k++)
        has_tokens |= ev->tokens[k] != 0;
    bool has_gpu = ev->has_gpu && ev->gpu_count && ev->duration_nanos;
    if (!has_tokens && !has_gpu)
        return -ENOENT;
    if (has_tokens && price_table_llm_cost(prices, ev->provider, ev->model, ev->tokens, &llm))
        return -ENOENT;
    if (has_gpu &&
        price_table_gpu_cost(prices, ev->instance_type, ev->gpu_count, ev->duration_nanos, &gpu))
        return -ENOENT;
    *cost = llm + gpu;
    return 0;
}

static void same_seed_same_bytes(void **state)
{
    (void)state;
    struct loadgen *a = make(42, 0.5, 0.01), *b = make(42, 0.5, 0.01), *c = make(43, 0.5, 0.01);
    struct loadgen_event ea, eb, ec;
    size_t differ = 0;
    for (int i = 0; i < 10000; i++) {
        loadgen_next(a, LOADGEN_VIRTUAL_TIME, &ea);
        loadgen_next(b, LOADGEN_VIRTUAL_TIME, &eb);
        loadgen_next(c, LOADGEN_VIRTUAL_TIME, &ec);
        assert_int_equal(ea.len, eb.len);
        assert_memory_equal(ea.data, eb.data, ea.len);
        assert_int_equal(ea.key_len, eb.key_len);
        assert_memory_equal(ea.key, eb.key, ea.key_len);
        assert_memory_equal(&ea.contrib, &eb.contrib, sizeof(ea.contrib));
        differ += ea.len != ec.len || memcmp(ea.data, ec.data, ea.len) != 0;
    }
    assert_true(differ > 9900); /* another seed, another stream */
    loadgen_free(a);
    loadgen_free(b);
    loadgen_free(c);
}

static void good_events_decode_and_price_exactly(void **state)
{
    (void)state;
    struct loadgen *g = make(7, 0.5, 0);
    struct event_decoder *d = default_decoder();
    struct loadgen_event e;
    struct event ev;
    size_t with_cost = 0, gpu_jobs = 0, cached = 0, writes = 0;
    for (int i = 0; i < 100000; i++) {
        loadgen_next(g, LOADGEN_VIRTUAL_TIME, &e);
        const struct loadgen_contrib *c = &e.contrib;
        assert_int_equal(c->reason, REJECT_NONE);
        assert_int_equal(e.bad_kind, -1);
        enum reject_reason r = event_decode(d, e.data, e.len, &ev);
        if (r != REJECT_NONE)
            fail_msg("event %d rejected (%s): %.*s", i, reject_reason_name(r), (int)e.len, e.data);
        /* labels: the catalogue's names, and the key is team/project */
        assert_true(lv_eq(ev.team, loadgen_project_team(g, c->project)));
        assert_true(lv_eq(ev.project, loadgen_project_name(g, c->project)));
        assert_true(lv_eq(ev.source, loadgen_source_name(g, c->source)));
        assert_int_equal(e.key_len, ev.team.len + 1 + ev.project.len);
        assert_memory_equal(e.key, ev.team.ptr, ev.team.len);
        assert_int_equal(e.key[ev.team.len], '/');
        /* usage */
        if (c->is_gpu) {
            const struct gpu_price *p = loadgen_instance(g, c->item);
            gpu_jobs++;
            assert_true(ev.has_gpu);
            assert_true(lv_eq(ev.instance_type, p->instance_type));
            assert_true(lv_eq(ev.gpu_type, p->gpu_type));
            assert_in_range(ev.gpu_count, 1, p->gpus);
            assert_int_equal(ev.duration_nanos % 1000000, 0); /* at most 3 decimals */
            assert_int_equal(ev.gpu_count * ev.duration_nanos, c->gpu_nanoseconds);
            for (int k = 0; k < TOKEN_KIND_COUNT; k++)
                assert_int_equal(ev.tokens[k], 0);
        } else {
            const struct llm_price *p = loadgen_model(g, c->item);
            assert_false(ev.has_gpu);
            assert_true(lv_eq(ev.provider, p->provider));
            assert_true(lv_eq(ev.model, p->model));
            assert_in_range(ev.tokens[TOKEN_INPUT], 50, 20000);
            assert_in_range(ev.tokens[TOKEN_OUTPUT], 10, 4000);
            for (int k = 0; k < TOKEN_KIND_COUNT; k++) {
                assert_int_equal(ev.tokens[k], c->tokens[k]);
                if (ev.tokens[k])
                    assert_int_not_equal(p->per_million_nanos[k], PRICE_NONE);
            }
            cached += ev.tokens[TOKEN_CACHED_INPUT] != 0;
            writes += ev.tokens[TOKEN_CACHE_WRITE] != 0;
            assert_int_equal(c->gpu_nanoseconds, 0);
        }
        /* money: the table's price, and cost_usd (when sent) says the same */
        uint64_t priced = 0;
        assert_int_equal(table_cost(&ev, &priced), 0);
        assert_int_equal(priced, c->cost_nanos);
        assert_true(c->cost_nanos > 0);
        assert_int_equal(ev.has_cost, e.has_cost);
        if (ev.has_cost) {
            with_cost++;
            assert_int_equal(ev.cost_nanos, c->cost_nanos);
        }
        assert_true(ev.has_timestamp);
    }
    /* the mix is as designed: about half priced by the sender */
    assert_in_range(with_cost, 48500, 51500);
    assert_in_range(gpu_jobs, 2000, 20000);
    assert_true(cached > 10000 && writes > 1000);
    event_decoder_free(d);
    loadgen_free(g);
}

static void every_defect_is_rejected_for_its_reason(void **state)
{
    (void)state;
    struct loadgen *g = make(9, 0.5, 1.0);
    struct event_decoder *d = default_decoder();
    size_t kinds = loadgen_bad_kind_count();
    size_t *seen = calloc(kinds, sizeof(size_t));
    struct loadgen_event e;
    struct event ev;
    assert_true(kinds >= 50);
    for (size_t i = 0; i < kinds * 40; i++) {
        loadgen_next(g, LOADGEN_VIRTUAL_TIME, &e);
        assert_in_range(e.bad_kind, 0, kinds - 1);
        enum reject_reason want = loadgen_bad_kind_reason((size_t)e.bad_kind);
        assert_int_equal(e.contrib.reason, want);
        enum reject_reason got = event_decode(d, e.data, e.len, &ev);
        uint64_t cost;
        if (got == REJECT_NONE && !ev.has_cost && table_cost(&ev, &cost) != 0)
            got = REJECT_UNPRICED;
        if (got != want)
            fail_msg("%s: want %s, got %s: %.*s", loadgen_bad_kind_name((size_t)e.bad_kind),
                     reject_reason_name(want), reject_reason_name(got),
                     (int)(e.len > 400 ? 400 : e.len), e.data);
        seen[e.bad_kind]++;
    }
    /* every kind, and every reason of the contract, comes up */
    bool reasons[REJECT_REASON_COUNT] = {false};
    for (size_t k = 0; k < kinds; k++) {
        assert_int_equal(seen[k], 40);
        reasons[loadgen_bad_kind_reason(k)] = true;
    }
    for (int r = REJECT_NONE + 1; r < REJECT_REASON_COUNT; r++)
        if (r != REJECT_DUPLICATE_FIELD || reasons[r])
            assert_true(reasons[r]);
    free(seen);
    event_decoder_free(d);
    loadgen_free(g);
}

static void zipf_skew_is_as_designed(void **state)
{
    (void)state;
    struct loadgen *g = make(11, 0.5, 0);
    size_t np = loadgen_project_count(g), nt = loadgen_team_count(g);
    const size_t n = 400000;
    size_t *per_project = calloc(np, sizeof(size_t)), *per_team = calloc(nt, sizeof(size_t));
    struct loadgen_event e;
    assert_in_range(nt, 25, 35);
    assert_in_range(np, 90, 110);
    for (size_t i = 0; i < n; i++) {
        loadgen_next(g, LOADGEN_VIRTUAL_TIME, &e);
        per_project[e.contrib.project]++;
        per_team[loadgen_project_team_index(g, e.contrib.project)]++;
    }
    double share_sum = 0;
    for (size_t p = 0; p < np; p++) {
        double want = loadgen_project_share(g, p) * (double)n;
        double sigma = sqrt(want);
        share_sum += loadgen_project_share(g, p);
        if (fabs((double)per_project[p] - want) > 6 * sigma + 5)
            fail_msg("project %zu: %zu events, designed %.0f", p, per_project[p], want);
    }
    assert_true(fabs(share_sum - 1) < 1e-9);
    /* Zipf s=1 over 30 teams: the top team has 1/H(30) ~ 25%, the second
     * half of that, the last ~0.8%. */
    assert_in_range(per_team[0], n * 23 / 100, n * 27 / 100);
    assert_in_range(per_team[1], n * 115 / 1000, n * 135 / 1000);
    assert_true(per_team[nt - 1] < n / 50);
    for (size_t t = 1; t < 5; t++)
        assert_true(per_team[t] < per_team[t - 1]);
    free(per_project);
    free(per_team);
    loadgen_free(g);
}

static int project_of(const struct loadgen *g, const char *team, const char *name)
{
    for (size_t i = 0; i < loadgen_project_count(g); i++)
        if (strcmp(loadgen_project_team(g, i), team) == 0 &&
            strcmp(loadgen_project_name(g, i), name) == 0)
            return (int)i;
    return -1;
}

static void spikes_multiply_share_and_usage(void **state)
{
    (void)state;
    struct loadgen_options o;
    struct loadgen *g = NULL;
    char err[256];
    loadgen_options_defaults(&o);
    o.rate = 1000; /* schedule second 10 = event 10000 */
    assert_int_equal(loadgen_spike_parse("fraud/txn-scoring@10:20", &o.spikes[0], err, sizeof(err)),
                     0);
    assert_int_equal(
        loadgen_spike_parse("devex/docs-qa@10:5:usage", &o.spikes[1], err, sizeof(err)), 0);
    o.spike_count = 2;
    assert_int_equal(o.spikes[0].multiplier_milli, 20000);
    assert_int_equal(o.spikes[1].mode, LOADGEN_SPIKE_USAGE);
    assert_int_equal(loadgen_new(&g, prices, &o, err, sizeof(err)), 0);
    int fraud = project_of(g, "fraud", "txn-scoring"), docs = project_of(g, "devex", "docs-qa");
    assert_true(fraud >= 0 && docs >= 0);
    size_t before = 0, after = 0;
    uint64_t tokens_before = 0, tokens_after = 0, llm_before = 0, llm_after = 0;
    struct loadgen_event e;
    for (int i = 0; i < 200000; i++) {
        loadgen_next(g, LOADGEN_VIRTUAL_TIME, &e);
        bool late = i >= 10000;
        if (i < 10000)
            assert_true(e.schedule_ns < 10000000000ULL);
        else
            assert_true(e.schedule_ns >= 10000000000ULL);
        if (e.contrib.project == fraud)
            late ? after++ : before++;
        if (e.contrib.project == docs && !e.contrib.is_gpu) {
            *(late ? &tokens_after : &tokens_before) += e.contrib.tokens[TOKEN_INPUT];
            late ? llm_after++ : llm_before++;
        }
    }
    double share_before = (double)before / 10000, share_after = (double)after / 190000;
    double designed = loadgen_project_share(g, (size_t)fraud);
    double want = designed * 20 / (1 + designed * 19);
    assert_true(share_before < designed * 3 + 0.01);
    assert_true(fabs(share_after - want) < want * 0.1);
    /* usage x5: mean input tokens per call grows about five-fold */
    double mean_before = (double)tokens_before / (double)llm_before;
    double mean_after = (double)tokens_after / (double)llm_after;
    assert_true(mean_after > mean_before * 3 && mean_after < mean_before * 8);
    loadgen_free(g);

    /* malformed spikes and unknown targets are refused with a message */
    struct loadgen_spike s;
    assert_int_equal(loadgen_spike_parse("fraud@10:2", &s, err, sizeof(err)), -EINVAL);
    assert_int_equal(loadgen_spike_parse("fraud/x@-1:2", &s, err, sizeof(err)), -EINVAL);
    assert_int_equal(loadgen_spike_parse("fraud/x@1:0", &s, err, sizeof(err)), -EINVAL);
    assert_int_equal(loadgen_spike_parse("fraud/x@1:1.0001", &s, err, sizeof(err)), -EINVAL);
    assert_int_equal(loadgen_spike_parse("fraud/x@1:2:loud", &s, err, sizeof(err)), -EINVAL);
    assert_int_equal(loadgen_spike_parse("fraud/x@1:2.5:both", &s, err, sizeof(err)), 0);
    loadgen_options_defaults(&o);
    o.spikes[0] = s;
    o.spike_count = 1;
    assert_int_equal(loadgen_new(&g, prices, &o, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "fraud/x"));
}

static void daily_schedule_follows_the_sine(void **state)
{
    (void)state;
    struct loadgen_options o;
    struct loadgen *g = NULL;
    char err[256];
    loadgen_options_defaults(&o);
    o.rate = 100;
    o.shape = LOADGEN_SHAPE_DAILY;
    o.day_seconds = 1000;
    o.day_amplitude = 0.8;
    assert_int_equal(loadgen_new(&g, prices, &o, err, sizeof(err)), 0);
    /* one period holds rate x period events; the first tenth (quiet) far
     * fewer than the middle tenth (busy) */
    size_t first = 0, middle = 0;
    uint64_t last = 0;
    struct loadgen_event e;
    for (int i = 0; i < 100000; i++) {
        loadgen_next(g, LOADGEN_VIRTUAL_TIME, &e);
        assert_true(e.schedule_ns >= last);
        last = e.schedule_ns;
        if (e.schedule_ns < 100000000000ULL)
            first++;
        else if (e.schedule_ns >= 450000000000ULL && e.schedule_ns < 550000000000ULL)
            middle++;
    }
    /* event 99999 comes 1/(rate (1 - A)) = 50 ms before the period ends */
    assert_true(llabs((long long)last - 999950000000LL) < 1000000LL);
    assert_true(middle > 5 * first);
    /* the cumulative count is exact: N(t) = rate (t - A/w sin(w t)) */
    double t = 250, w = 2 * M_PI / 1000, n = 100 * (t - 0.8 / w * sin(w * t));
    loadgen_free(g);
    assert_int_equal(loadgen_new(&g, prices, &o, err, sizeof(err)), 0);
    for (uint64_t i = 0; i < (uint64_t)ceil(n); i++)
        loadgen_next(g, LOADGEN_VIRTUAL_TIME, &e);
    assert_true(fabs((double)loadgen_schedule_ns(g) / 1e9 - t) < 0.05);
    loadgen_free(g);
}

static void virtual_clock_stamps_events(void **state)
{
    (void)state;
    struct loadgen *g = make(1, 0.5, 0);
    struct event_decoder *d = default_decoder();
    struct loadgen_event e;
    struct event ev;
    for (int i = 0; i < 3000; i++) {
        loadgen_next(g, LOADGEN_VIRTUAL_TIME, &e);
        assert_int_equal(event_decode(d, e.data, e.len, &ev), REJECT_NONE);
        /* nominal 1000 events/s from 2026-11-23T00:00:00Z */
        assert_int_equal(ev.timestamp_ms, 1795392000000LL + i);
    }
    loadgen_next(g, 1795400000123LL, &e);
    char text[4096];
    assert_true(e.len < sizeof(text));
    memcpy(text, e.data, e.len);
    text[e.len] = '\0';
    assert_non_null(strstr(text, "\"timestamp\":\"2026-11-23T02:13:20.123Z\""));
    event_decoder_free(d);
    loadgen_free(g);
}

static uint64_t json_u64(const cJSON *item)
{
    /* the totals carry integers as raw literals */
    assert_true(cJSON_IsRaw(item) || cJSON_IsNumber(item));
    return cJSON_IsRaw(item) ? strtoull(item->valuestring, NULL, 10) : (uint64_t)item->valuedouble;
}

static void totals_add_up(void **state)
{
    (void)state;
    struct loadgen *g = make(5, 0.5, 0.05);
    struct loadgen_totals *t = loadgen_totals_new(g);
    struct loadgen_event e;
    uint64_t cost = 0, bad = 0, gpu = 0, tokens = 0;
    assert_non_null(t);
    for (int i = 0; i < 20000; i++) {
        loadgen_next(g, LOADGEN_VIRTUAL_TIME, &e);
        loadgen_totals_add(t, &e.contrib);
        cost += e.contrib.cost_nanos;
        bad += e.contrib.reason != REJECT_NONE;
        gpu += e.contrib.gpu_nanoseconds;
        for (int k = 0; k < TOKEN_KIND_COUNT; k++)
            tokens += e.contrib.tokens[k];
    }
    cJSON *j = loadgen_totals_to_json(t);
    assert_non_null(j);
    const cJSON *events = cJSON_GetObjectItem(j, "events");
    assert_int_equal(json_u64(cJSON_GetObjectItem(events, "produced")), 20000);
    assert_int_equal(json_u64(cJSON_GetObjectItem(events, "bad")), bad);
    assert_int_equal(json_u64(cJSON_GetObjectItem(events, "valid")), 20000 - bad);
    uint64_t sum = 0, rejected = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, cJSON_GetObjectItem(j, "cost_nanos"))
    {
        const cJSON *labels = cJSON_GetObjectItem(item, "labels");
        assert_non_null(cJSON_GetObjectItem(labels, "team"));
        assert_non_null(cJSON_GetObjectItem(labels, "project"));
        assert_non_null(cJSON_GetObjectItem(labels, "source"));
        sum += json_u64(cJSON_GetObjectItem(item, "value"));
    }
    assert_int_equal(sum, cost);
    assert_int_equal(loadgen_totals_cost_nanos(t), cost);
    sum = 0;
    cJSON_ArrayForEach(item, cJSON_GetObjectItem(j, "gpu_nanoseconds")) sum +=
        json_u64(cJSON_GetObjectItem(item, "value"));
    assert_int_equal(sum, gpu);
    sum = 0;
    cJSON_ArrayForEach(item, cJSON_GetObjectItem(j, "tokens"))
    {
        assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(item, "labels")), 5);
        sum += json_u64(cJSON_GetObjectItem(item, "value"));
    }
    assert_int_equal(sum, tokens);
    cJSON_ArrayForEach(item, cJSON_GetObjectItem(j, "rejected")) rejected += json_u64(item);
    assert_int_equal(rejected, bad);
    /* the printed text keeps big integers exact */
    char *text = cJSON_PrintUnformatted(j);
    assert_non_null(strstr(text, "\"produced\":20000"));
    free(text);
    cJSON_Delete(j);
    loadgen_totals_free(t);
    loadgen_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(same_seed_same_bytes),
        cmocka_unit_test(good_events_decode_and_price_exactly),
        cmocka_unit_test(every_defect_is_rejected_for_its_reason),
        cmocka_unit_test(zipf_skew_is_as_designed),
        cmocka_unit_test(spikes_multiply_share_and_usage),
        cmocka_unit_test(daily_schedule_follows_the_sine),
        cmocka_unit_test(virtual_clock_stamps_events),
        cmocka_unit_test(totals_add_up),
    };
    return cmocka_run_group_tests(tests, load_bundled, free_bundled);
}

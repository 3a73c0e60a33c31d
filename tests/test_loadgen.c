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
    char llm[4096], gpu[4096], types[4096], err[512] = "";
    (void)state;
    snprintf(llm, sizeof(llm), "%s/llm.yaml", price_table_bundled_dir());
    snprintf(gpu, sizeof(gpu), "%s/gpu.yaml", price_table_bundled_dir());
    /* per-GPU-hour prices for on-prem nodes and DCGM model names */
    const char *src = getenv("FINOPS_SOURCE_DIR");
    snprintf(types, sizeof(types), "%s/tests/data/prices/gpu-types.yaml", src ? src : ".");
    const char *paths[] = {llm, gpu, types};
    if (price_table_load(&prices, paths, 3, err, sizeof(err)) != 0) {
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
        .focus_effective_cost = true, /* focus.cost_column: effective */
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

static void kinds_defects_rejected(bool reasons[REJECT_REASON_COUNT]);

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
    /* the other kinds' and profiles' defects, each decoded by its kind's
     * decoder (and built-in mapping) */
    kinds_defects_rejected(reasons);
    for (int r = REJECT_NONE + 1; r < REJECT_REASON_COUNT; r++)
        /* too_many_gpus is the exporter's state (a full mark table), not
         * a defect of a message */
        if (r != REJECT_TOO_MANY_GPUS && !reasons[r])
            fail_msg("no defect is rejected as %s", reject_reason_name((enum reject_reason)r));
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

/* ---- the other kinds: GPU samples, FOCUS rows, provider shapes ---------- */

static struct loadgen *make_kind(enum event_kind kind, enum loadgen_profile profile, uint64_t seed,
                                 double bad, double dup)
{
    struct loadgen_options o;
    struct loadgen *g = NULL;
    char err[256] = "";
    loadgen_options_defaults(&o);
    o.kind = kind;
    o.profile = profile;
    o.seed = seed;
    o.bad_ratio = bad;
    o.dup_ratio = dup;
    o.gpu_nodes = 12;
    if (loadgen_new(&g, prices, &o, err, sizeof(err)) != 0)
        fail_msg("loadgen_new: %s", err);
    return g;
}

static const struct {
    enum event_kind kind;
    enum loadgen_profile profile;
} kind_cases[] = {
    {EVENT_KIND_GPU_UTILIZATION, LOADGEN_PROFILE_NONE},
    {EVENT_KIND_GPU_UTILIZATION, LOADGEN_PROFILE_DCGM},
    {EVENT_KIND_FOCUS, LOADGEN_PROFILE_NONE},
    {EVENT_KIND_COST, LOADGEN_PROFILE_OPENAI},
    {EVENT_KIND_COST, LOADGEN_PROFILE_ANTHROPIC},
};
#define KIND_CASES (sizeof(kind_cases) / sizeof(kind_cases[0]))

/* What the exporter does with a message of the kind (src/ingest.c): decode,
 * then unpriced when its usage has no price. */
static enum reject_reason decode_kind(struct event_decoder *d, enum event_kind kind,
                                      const struct field_mapping *m, const char *buf, size_t len)
{
    enum reject_reason r;
    if (kind == EVENT_KIND_GPU_UTILIZATION) {
        struct gpu_sample s;
        struct gpu_rate rate;
        r = gpu_sample_decode(d, m, buf, len, &s);
        if (r == REJECT_NONE && price_table_gpu_rate(prices, s.instance_type, s.gpu_type, &rate))
            r = REJECT_UNPRICED;
    } else if (kind == EVENT_KIND_FOCUS) {
        struct focus_row row;
        r = focus_row_decode(d, m, buf, len, &row);
    } else {
        struct event ev;
        uint64_t cost;
        r = event_decode_mapped(d, m, buf, len, &ev);
        if (r == REJECT_NONE && !ev.has_cost && table_cost(&ev, &cost) != 0)
            r = REJECT_UNPRICED;
    }
    return r;
}

static void kinds_defects_rejected(bool reasons[REJECT_REASON_COUNT])
{
    struct event_decoder *d = default_decoder();
    for (size_t kc = 0; kc < KIND_CASES; kc++) {
        enum event_kind kind = kind_cases[kc].kind;
        enum loadgen_profile profile = kind_cases[kc].profile;
        struct loadgen *g = make_kind(kind, profile, 9, 1.0, 0);
        struct field_mapping *m = NULL;
        if (profile != LOADGEN_PROFILE_NONE) {
            enum event_kind mk;
            char err[256] = "";
            const struct string_map *fields =
                field_mapping_builtin(loadgen_profile_name(profile), &mk);
            assert_non_null(fields);
            assert_int_equal(mk, kind);
            if (!(m = field_mapping_compile(kind, fields, err, sizeof(err))))
                fail_msg("%s: %s", loadgen_profile_name(profile), err);
        }
        size_t n = loadgen_defect_count(g);
        size_t *seen = calloc(n, sizeof(size_t));
        struct loadgen_event e;
        assert_non_null(seen);
        for (size_t i = 0; i < n * 20; i++) {
            loadgen_next(g, LOADGEN_VIRTUAL_TIME, &e);
            assert_in_range(e.bad_kind, 0, n - 1);
            enum reject_reason want = loadgen_defect_reason(g, (size_t)e.bad_kind);
            assert_int_equal(e.contrib.reason, want);
            enum reject_reason got = decode_kind(d, kind, m, e.data, e.len);
            if (got != want)
                fail_msg("%s/%s %s: want %s, got %s: %.*s", loadgen_kind_name(kind),
                         loadgen_profile_name(profile), loadgen_defect_name(g, (size_t)e.bad_kind),
                         reject_reason_name(want), reject_reason_name(got),
                         (int)(e.len > 400 ? 400 : e.len), e.data);
            seen[e.bad_kind]++;
        }
        for (size_t k = 0; k < n; k++) {
            assert_int_equal(seen[k], 20);
            reasons[loadgen_defect_reason(g, k)] = true;
        }
        free(seen);
        field_mapping_free(m);
        loadgen_free(g);
    }
    event_decoder_free(d);
}

/* Every good message of every kind decodes with its kind's decoder (and
 * the built-in mapping of its profile), and prices. */
static void kinds_good_messages_decode(void **state)
{
    (void)state;
    struct event_decoder *d = default_decoder();
    for (size_t kc = 0; kc < KIND_CASES; kc++) {
        enum event_kind kind = kind_cases[kc].kind;
        enum loadgen_profile profile = kind_cases[kc].profile;
        struct loadgen *g = make_kind(kind, profile, 31, 0, 0.2);
        struct field_mapping *m = NULL;
        if (profile != LOADGEN_PROFILE_NONE) {
            enum event_kind mk;
            char err[256] = "";
            m = field_mapping_compile(
                kind, field_mapping_builtin(loadgen_profile_name(profile), &mk), err, sizeof(err));
            assert_non_null(m);
        }
        struct loadgen_event e;
        for (int i = 0; i < 20000; i++) {
            loadgen_next(g, LOADGEN_VIRTUAL_TIME, &e);
            assert_int_equal(e.bad_kind, -1);
            enum reject_reason got = decode_kind(d, kind, m, e.data, e.len);
            if (got != REJECT_NONE)
                fail_msg("%s/%s: rejected (%s): %.*s", loadgen_kind_name(kind),
                         loadgen_profile_name(profile), reject_reason_name(got), (int)e.len,
                         e.data);
        }
        field_mapping_free(m);
        loadgen_free(g);
    }
    event_decoder_free(d);
}

static void kinds_same_seed_same_bytes(void **state)
{
    (void)state;
    for (size_t kc = 0; kc < KIND_CASES; kc++) {
        struct loadgen *a = make_kind(kind_cases[kc].kind, kind_cases[kc].profile, 42, 0.02, 0.1);
        struct loadgen *b = make_kind(kind_cases[kc].kind, kind_cases[kc].profile, 42, 0.02, 0.1);
        struct loadgen *c = make_kind(kind_cases[kc].kind, kind_cases[kc].profile, 43, 0.02, 0.1);
        struct loadgen_event ea, eb, ec;
        size_t differ = 0;
        for (int i = 0; i < 5000; i++) {
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
        assert_true(differ > 4500);
        loadgen_free(a);
        loadgen_free(b);
        loadgen_free(c);
    }
}

/* A series table keyed by its labels' values joined with '|' (no label
 * value of the generator holds '|'). */
struct series_map {
    size_t n;
    char key[4096][200];
    uint64_t value[4096];
};

static uint64_t *series_at(struct series_map *m, const char *const *values, size_t nv)
{
    char key[200];
    size_t len = 0;
    for (size_t i = 0; i < nv; i++)
        len += (size_t)snprintf(key + len, sizeof(key) - len, "%s|", values[i]);
    assert_true(len < sizeof(key) - 1);
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->key[i], key) == 0)
            return &m->value[i];
    assert_true(m->n < 4096);
    strcpy(m->key[m->n], key);
    m->value[m->n] = 0;
    return &m->value[m->n++];
}

/* The totals JSON array `name` as a series map. */
static void series_from_totals(const cJSON *totals, const char *name, const char *const *labels,
                               size_t nl, struct series_map *out)
{
    const cJSON *item;
    out->n = 0;
    cJSON_ArrayForEach(item, cJSON_GetObjectItem(totals, name))
    {
        const char *v[8];
        const cJSON *lab = cJSON_GetObjectItem(item, "labels");
        assert_int_equal(cJSON_GetArraySize(lab), nl);
        for (size_t i = 0; i < nl; i++) {
            v[i] = cJSON_GetStringValue(cJSON_GetObjectItem(lab, labels[i]));
            assert_non_null(v[i]);
        }
        uint64_t *slot = series_at(out, v, nl);
        *slot += json_u64(cJSON_GetObjectItem(item, "value"));
    }
}

/* Exact comparison: same series, same integers (a series absent on one
 * side counts as 0 there). */
static void assert_series_equal(const char *what, struct series_map *a, struct series_map *b)
{
    size_t nonzero = 0;
    for (size_t i = 0; i < a->n; i++) {
        uint64_t other = 0;
        for (size_t j = 0; j < b->n; j++)
            if (strcmp(a->key[i], b->key[j]) == 0)
                other = b->value[j];
        if (a->value[i] != other)
            fail_msg("%s {%s}: recomputed %llu, totals %llu", what, a->key[i],
                     (unsigned long long)a->value[i], (unsigned long long)other);
        nonzero += a->value[i] != 0;
    }
    for (size_t j = 0; j < b->n; j++) {
        bool found = false;
        for (size_t i = 0; i < a->n && !found; i++)
            found = strcmp(a->key[i], b->key[j]) == 0;
        if (!found && b->value[j] != 0)
            fail_msg("%s {%s}: totals %llu, not recomputed", what, b->key[j],
                     (unsigned long long)b->value[j]);
    }
    assert_true(nonzero > 0);
}

/* The raw text of a top-level member's value in a JSONL line (the
 * generator writes no ',' or '}' inside the values read this way). */
static bool raw_member(const char *line, const char *key, char *out, size_t cap)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    const char *p = strstr(line, pat);
    if (!p)
        return false;
    p += strlen(pat);
    size_t n = strcspn(p, ",}");
    if (*p == '"') {
        p++;
        n = strcspn(p, "\"");
    }
    assert_true(n < cap);
    memcpy(out, p, n);
    out[n] = '\0';
    return true;
}

/* A decimal's value x 1e9 (the text's sign in *negative). */
static uint64_t decimal_nanos(const char *text, bool *negative)
{
    uint64_t v = 0;
    bool neg = text[0] == '-';
    if (negative)
        *negative = neg;
    assert_int_equal(money_parse_decimal(text + neg, strlen(text + neg), &v), 0);
    return v;
}

struct gpu_mark {
    char key[100];
    uint64_t mark;
};

/* Recomputes the GPU families from the emitted JSONL only: each GPU's
 * mark, the clip, micro-GPU-seconds rounded half up, and the idle cost
 * with one 128-bit rounding at the table's per-GPU price. */
static void recompute_gpu(char **lines, size_t n, bool dcgm, struct series_map *alloc,
                          struct series_map *idle, uint64_t *dedup)
{
    static struct gpu_mark marks[4096];
    size_t nmarks = 0;
    alloc->n = idle->n = 0;
    *dedup = 0;
    for (size_t i = 0; i < n; i++) {
        const char *line = lines[i];
        char node[80], gpu[16], ts[40], interval[32], util[32], gtype[80], inst[80], team[200],
            project[200];
        assert_true(raw_member(line, dcgm ? "Hostname" : "node", node, sizeof(node)));
        assert_true(raw_member(line, "gpu", gpu, sizeof(gpu)));
        assert_true(raw_member(line, "timestamp", ts, sizeof(ts)));
        assert_true(raw_member(line, "interval_seconds", interval, sizeof(interval)));
        assert_true(raw_member(line, dcgm ? "modelName" : "gpu_type", gtype, sizeof(gtype)));
        bool has_inst = raw_member(line, "instance_type", inst, sizeof(inst));
        uint64_t ppb;
        if (dcgm) {
            assert_true(raw_member(line, "DCGM_FI_DEV_GPU_UTIL", util, sizeof(util)));
            ppb = decimal_nanos(util, NULL) / 100;
        } else if (raw_member(line, "utilization_percent", util, sizeof(util))) {
            ppb = decimal_nanos(util, NULL) / 100;
        } else {
            assert_true(raw_member(line, "utilization", util, sizeof(util)));
            ppb = decimal_nanos(util, NULL);
        }
        assert_true(ppb <= 1000000000ULL);
        if (dcgm || !raw_member(line, "team", team, sizeof(team))) {
            strcpy(team, "unattributed");
            assert_true(raw_member(line, "namespace", project, sizeof(project)));
        } else {
            assert_true(raw_member(line, "project", project, sizeof(project)));
        }
        int64_t end_ms;
        assert_int_equal(parse_rfc3339(ts, strlen(ts), &end_ms), 0);
        uint64_t end = (uint64_t)end_ms * 1000000ULL, len = decimal_nanos(interval, NULL);
        char key[100];
        snprintf(key, sizeof(key), "%s/%s", node, gpu);
        struct gpu_mark *m = NULL;
        for (size_t k = 0; k < nmarks && !m; k++)
            if (strcmp(marks[k].key, key) == 0)
                m = &marks[k];
        if (!m) {
            assert_true(nmarks < 4096);
            m = &marks[nmarks++];
            strcpy(m->key, key);
            m->mark = 0;
        }
        if (end <= m->mark) {
            (*dedup)++;
            continue;
        }
        uint64_t from = end - len > m->mark ? end - len : m->mark, counted = end - from;
        m->mark = end;
        /* the per-GPU price: the instance's hourly price / its GPUs, else
         * the gpu_type's per-GPU-hour price */
        uint64_t per_hour = 0, gpus = 1;
        for (size_t k = 0; has_inst && k < price_table_gpu_count(prices); k++) {
            const struct gpu_price *gp = price_table_gpu_at(prices, k);
            if (strcmp(gp->instance_type, inst) == 0) {
                per_hour = gp->per_hour_nanos;
                gpus = gp->gpus;
            }
        }
        for (size_t k = 0; !per_hour && k < price_table_gpu_type_count(prices); k++) {
            const struct gpu_type_price *tp = price_table_gpu_type_at(prices, k);
            if (strcmp(tp->gpu_type, gtype) == 0)
                per_hour = tp->per_gpu_hour_nanos;
        }
        assert_true(per_hour > 0);
        unsigned __int128 num = (unsigned __int128)counted * (1000000000ULL - ppb) * per_hour;
        unsigned __int128 den = (unsigned __int128)gpus * 3600u * 1000000000ULL * 1000000000ULL;
        uint64_t cost = (uint64_t)(num / den) + ((num % den) * 2 >= den);
        const char *v[] = {team, project, gtype};
        *series_at(alloc, v, 3) += (counted + 500) / 1000;
        *series_at(idle, v, 3) += cost;
    }
}

/* Runs a generator, keeps the good messages' text, and returns the totals. */
static cJSON *run_kind(struct loadgen *g, size_t n, char ***lines_out, size_t *good_out,
                       size_t *bad_out)
{
    struct loadgen_totals *t = loadgen_totals_new(g);
    struct loadgen_event e;
    char **lines = calloc(n, sizeof(char *));
    size_t good = 0, bad = 0;
    assert_non_null(t);
    assert_non_null(lines);
    for (size_t i = 0; i < n; i++) {
        loadgen_next(g, LOADGEN_VIRTUAL_TIME, &e);
        loadgen_totals_add(t, &e.contrib);
        if (e.bad_kind >= 0) {
            bad++;
            continue;
        }
        lines[good] = malloc(e.len + 1);
        assert_non_null(lines[good]);
        memcpy(lines[good], e.data, e.len);
        lines[good++][e.len] = '\0';
    }
    cJSON *j = loadgen_totals_to_json(t);
    assert_non_null(j);
    const cJSON *events = cJSON_GetObjectItem(j, "events");
    assert_int_equal(json_u64(cJSON_GetObjectItem(events, "valid")), good);
    assert_int_equal(json_u64(cJSON_GetObjectItem(events, "bad")), bad);
    loadgen_totals_free(t);
    *lines_out = lines;
    *good_out = good;
    if (bad_out)
        *bad_out = bad;
    return j;
}

static void free_lines(char **lines, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(lines[i]);
    free(lines);
}

static struct series_map sm_a, sm_b;

static void gpu_totals_match_a_recomputation(void **state)
{
    (void)state;
    static const char *const gl[] = {"team", "project", "gpu_type"};
    for (int dcgm = 0; dcgm < 2; dcgm++) {
        struct loadgen *g =
            make_kind(EVENT_KIND_GPU_UTILIZATION,
                      dcgm ? LOADGEN_PROFILE_DCGM : LOADGEN_PROFILE_NONE, 17, 0.02, 0.2);
        char **lines;
        size_t good;
        cJSON *j = run_kind(g, 30000, &lines, &good, NULL);
        uint64_t dedup = 0;
        static struct series_map idle;
        recompute_gpu(lines, good, dcgm, &sm_a, &idle, &dedup);
        series_from_totals(j, "gpu_allocated_micros", gl, 3, &sm_b);
        assert_series_equal("gpu_allocated_micros", &sm_a, &sm_b);
        series_from_totals(j, "gpu_idle_cost_nanos", gl, 3, &sm_b);
        assert_series_equal("gpu_idle_cost_nanos", &idle, &sm_b);
        const cJSON *samples = cJSON_GetObjectItem(j, "gpu_samples");
        assert_int_equal(json_u64(cJSON_GetObjectItem(samples, "deduplicated")), dedup);
        assert_int_equal(json_u64(cJSON_GetObjectItem(samples, "counted")) + dedup, good);
        /* the dups: about 20% of the good samples, a third of them
         * overlaps that still count half an interval */
        assert_in_range(dedup, good / 10, good / 5);
        /* an idle GPU costs money: some series cost more than nothing */
        free_lines(lines, good);
        cJSON_Delete(j);
        loadgen_free(g);
    }
}

static void focus_totals_match_a_recomputation(void **state)
{
    (void)state;
    static const char *const fl[] = {"team",    "project",         "provider",
                                     "service", "charge_category", "sub_account"};
    for (int billed = 0; billed < 2; billed++) {
        struct loadgen_options o;
        struct loadgen *g = NULL;
        char err[256] = "";
        loadgen_options_defaults(&o);
        o.kind = EVENT_KIND_FOCUS;
        o.seed = 23;
        o.bad_ratio = 0.02;
        o.focus_billed = billed;
        assert_int_equal(loadgen_new(&g, prices, &o, err, sizeof(err)), 0);
        char **lines;
        size_t good;
        cJSON *j = run_kind(g, 20000, &lines, &good, NULL);
        static struct series_map credit, cat_seen;
        sm_a.n = credit.n = cat_seen.n = 0;
        size_t different = 0, negative = 0;
        for (size_t i = 0; i < good; i++) {
            char bc[48], ec[48], v[6][200];
            const char *fields[] = {"ProviderName", "ServiceName", "ChargeCategory",
                                    "SubAccountName"};
            assert_true(raw_member(lines[i], "BilledCost", bc, sizeof(bc)));
            assert_true(raw_member(lines[i], "EffectiveCost", ec, sizeof(ec)));
            different += strcmp(bc, ec) != 0;
            cJSON *row = cJSON_Parse(lines[i]);
            assert_non_null(row);
            const cJSON *tags = cJSON_GetObjectItem(row, "Tags");
            const char *team = cJSON_GetStringValue(cJSON_GetObjectItem(tags, "team"));
            const char *project = cJSON_GetStringValue(cJSON_GetObjectItem(tags, "project"));
            snprintf(v[0], 200, "%s", team ? team : "unattributed");
            snprintf(v[1], 200, "%s", project ? project : "unattributed");
            for (int f = 0; f < 4; f++)
                snprintf(v[2 + (f == 0   ? 0
                                : f == 1 ? 1
                                : f == 2 ? 2
                                         : 3)],
                         200, "%s", cJSON_GetStringValue(cJSON_GetObjectItem(row, fields[f])));
            assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(row, "BillingCurrency")),
                                "USD");
            cJSON_Delete(row);
            bool neg;
            uint64_t amount = decimal_nanos(billed ? bc : ec, &neg);
            const char *vv[] = {v[0], v[1], v[2], v[3], v[4], v[5]};
            const char *cat[] = {v[4]};
            *series_at(&cat_seen, cat, 1) += 1;
            if (neg && amount) {
                negative++;
                *series_at(&credit, vv, 6) += amount;
            } else {
                *series_at(&sm_a, vv, 6) += amount;
            }
        }
        series_from_totals(j, "cloud_cost_nanos", fl, 6, &sm_b);
        assert_series_equal("cloud_cost_nanos", &sm_a, &sm_b);
        series_from_totals(j, "credit_nanos", fl, 6, &sm_b);
        assert_series_equal("credit_nanos", &credit, &sm_b);
        /* the mix: every category, credits, both columns present and often different */
        assert_int_equal(cat_seen.n, 5);
        assert_true(negative > good / 50);
        assert_true(different > good / 3);
        free_lines(lines, good);
        cJSON_Delete(j);
        loadgen_free(g);
    }
}

static void provider_totals_match_a_recomputation(void **state)
{
    (void)state;
    static const char *const cl[] = {"team", "project", "source"};
    for (int anthropic = 0; anthropic < 2; anthropic++) {
        struct loadgen *g =
            make_kind(EVENT_KIND_COST,
                      anthropic ? LOADGEN_PROFILE_ANTHROPIC : LOADGEN_PROFILE_OPENAI, 29, 0.02, 0);
        char **lines;
        size_t good;
        cJSON *j = run_kind(g, 20000, &lines, &good, NULL);
        sm_a.n = 0;
        for (size_t i = 0; i < good; i++) {
            cJSON *m = cJSON_Parse(lines[i]);
            assert_non_null(m);
            const cJSON *u = cJSON_GetObjectItem(m, "usage"),
                        *md = cJSON_GetObjectItem(m, "metadata");
            uint64_t tokens[TOKEN_KIND_COUNT] = {0};
#define U(name) ((uint64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(u, name)))
            if (anthropic) {
                tokens[TOKEN_INPUT] = U("input_tokens");
                tokens[TOKEN_CACHED_INPUT] = U("cache_read_input_tokens");
                tokens[TOKEN_CACHE_WRITE] = U("cache_creation_input_tokens");
                tokens[TOKEN_OUTPUT] = U("output_tokens");
            } else {
                const cJSON *det = cJSON_GetObjectItem(u, "prompt_tokens_details");
                uint64_t cached =
                    det ? (uint64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(det, "cached_tokens"))
                        : 0;
                tokens[TOKEN_INPUT] = U("prompt_tokens") - cached;
                tokens[TOKEN_CACHED_INPUT] = cached;
                tokens[TOKEN_OUTPUT] = U("completion_tokens");
            }
#undef U
            const char *model = cJSON_GetStringValue(cJSON_GetObjectItem(m, "model"));
            const char *provider = anthropic ? "anthropic" : "openai";
            uint64_t cost = 0;
            assert_int_equal(
                price_table_llm_cost(prices, (struct label_value){provider, strlen(provider)},
                                     (struct label_value){model, strlen(model)}, tokens, &cost),
                0);
            /* the built-in profiles' source is "<provider>-api" */
            const char *v[] = {cJSON_GetStringValue(cJSON_GetObjectItem(md, "team")),
                               cJSON_GetStringValue(cJSON_GetObjectItem(md, "project")),
                               anthropic ? "anthropic-api" : "openai-api"};
            *series_at(&sm_a, v, 3) += cost;
            cJSON_Delete(m);
        }
        series_from_totals(j, "cost_nanos", cl, 3, &sm_b);
        assert_series_equal("cost_nanos", &sm_a, &sm_b);
        free_lines(lines, good);
        cJSON_Delete(j);
        loadgen_free(g);
    }
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
        cmocka_unit_test(kinds_same_seed_same_bytes),
        cmocka_unit_test(kinds_good_messages_decode),
        cmocka_unit_test(gpu_totals_match_a_recomputation),
        cmocka_unit_test(focus_totals_match_a_recomputation),
        cmocka_unit_test(provider_totals_match_a_recomputation),
    };
    return cmocka_run_group_tests(tests, load_bundled, free_bundled);
}

/*
 * test_event_kinds.c - the kinds of event_kinds.h: golden GPU samples and
 * FOCUS rows -> exact decoded values, each built-in profile's real-looking
 * message -> exact fields, every bad sample/row -> its reason, JSON
 * pointer edge cases (~0 ~1, arrays, missing, wrong type, duplicates, a
 * negative difference), mapping compile errors, and no allocation per
 * message once the decoder is warm.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../src/decode/decode_internal.h"
#include "event_kinds.h"

/* 2026-12-01T00:00:00Z: timestamps up to a day later are accepted. */
static int64_t fixed_now_ms(void)
{
    return 1796083200000LL;
}

static char *ns_keys[] = {(char *)"ml-training", (char *)"bad"};
static char *ns_values[] = {(char *)"ml-platform/llm-pretrain", (char *)"noslash"};
static const struct string_map ns_teams = {ns_keys, ns_values, 2};
static const char *const extra_names[] = {"environment"};

static struct event_decoder *new_decoder(bool effective, const char *team_tag)
{
    struct event_limits limits = {
        .max_bytes = 65536,
        .max_cost_nanos = 1000000ULL * 1000000000ULL,
        .max_label_bytes = 128,
        .max_depth = 16,
        .unattributed_label = "unattributed",
        .extra_label_count = 1,
        .extra_label_names = extra_names,
        .now_ms = fixed_now_ms,
        .gpu_namespace_teams = &ns_teams,
        .focus_effective_cost = effective,
        .focus_team_tag = team_tag,
        .focus_project_tag = NULL,
    };
    return event_decoder_new(&limits);
}

static int setup(void **state)
{
    *state = new_decoder(true, NULL);
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    event_decoder_free(*state);
    return 0;
}

static void assert_label(struct label_value v, const char *want)
{
    char got[256];
    snprintf(got, sizeof(got), "%.*s", (int)v.len, v.ptr);
    assert_string_equal(got, want);
}

static enum reject_reason gpu(void **state, const struct field_mapping *m, const char *json,
                              struct gpu_sample *out)
{
    return gpu_sample_decode(*state, m, json, strlen(json), out);
}

static enum reject_reason focus(void **state, const struct field_mapping *m, const char *json,
                                struct focus_row *out)
{
    return focus_row_decode(*state, m, json, strlen(json), out);
}

/* ---- kinds ---------------------------------------------------------------- */

static void test_kind_names(void **state)
{
    (void)state;
    for (int k = 0; k < EVENT_KIND_COUNT; k++) {
        const char *n = event_kind_name((enum event_kind)k);
        assert_int_equal(event_kind_parse(n, strlen(n)), k);
    }
    assert_string_equal(event_kind_name(EVENT_KIND_GPU_UTILIZATION), "gpu_utilization");
    assert_int_equal(event_kind_parse("gpu", 3), -1);
    assert_int_equal(event_kind_parse("costs", 5), -1);
    assert_int_equal(event_kind_parse("focus:x", 5), EVENT_KIND_FOCUS);
    assert_string_equal(event_kind_name(EVENT_KIND_COUNT), "unknown");
}

/* ---- GPU samples ------------------------------------------------------------ */

static void test_gpu_golden_ratio(void **state)
{
    struct gpu_sample g;
    const char *json =
        "{\"timestamp\":\"2026-11-23T10:00:15Z\",\"interval_seconds\":15,"
        "\"node\":\"gpu-node-7\",\"gpu\":\"3\",\"gpu_type\":\"H100\",\"instance_type\":"
        "\"p5.48xlarge\",\"team\":\"ml-platform\",\"project\":\"llm-pretrain\","
        "\"namespace\":\"ml-training\",\"pod\":\"trainer-0\",\"utilization\":0.875,"
        "\"memory_used_bytes\":42949672960}";
    assert_int_equal(gpu(state, NULL, json, &g), REJECT_NONE);
    assert_int_equal(g.end_unix_nanos, 1795428015000000000ULL);
    assert_int_equal(g.interval_nanos, 15000000000ULL);
    assert_int_equal(g.utilization_ppb, 875000000ULL);
    assert_true(g.has_memory);
    assert_int_equal(g.memory_used_bytes, 42949672960ULL);
    assert_label(g.node, "gpu-node-7");
    assert_label(g.gpu, "3");
    assert_label(g.gpu_type, "H100");
    assert_label(g.instance_type, "p5.48xlarge");
    assert_label(g.team, "ml-platform");
    assert_label(g.project, "llm-pretrain");
}

static void test_gpu_golden_percent_epoch(void **state)
{
    struct gpu_sample g;
    /* Epoch seconds with a fraction, an integer GPU id, percent with
     * decimals, MiB of memory, 9 decimals of interval. */
    const char *json = "{\"timestamp\":1795428015.123456789,\"interval_seconds\":0.000000001,"
                       "\"node\":\"n1\",\"gpu\":12,\"utilization_percent\":87.6543219,"
                       "\"memory_used_mib\":40960}";
    assert_int_equal(gpu(state, NULL, json, &g), REJECT_NONE);
    assert_int_equal(g.end_unix_nanos, 1795428015123456789ULL);
    assert_int_equal(g.interval_nanos, 1ULL);
    assert_int_equal(g.utilization_ppb, 876543219ULL);
    assert_int_equal(g.memory_used_bytes, 40960ULL << 20);
    assert_label(g.gpu, "12");
    assert_label(g.gpu_type, "unknown");
    assert_label(g.instance_type, "unknown");
    assert_label(g.team, "unattributed");
    assert_label(g.project, "unattributed");
    assert_false(gpu(state, NULL,
                     "{\"timestamp\":1795428015,\"interval_seconds\":86400,\"node\":\"n\","
                     "\"gpu\":\"0\",\"utilization\":0}",
                     &g));
    assert_int_equal(g.interval_nanos, GPU_SAMPLE_MAX_INTERVAL_NANOS);
    assert_int_equal(g.utilization_ppb, 0);
    assert_false(g.has_memory);
    assert_false(gpu(state, NULL,
                     "{\"timestamp\":1795428015,\"interval_seconds\":1,\"node\":\"n\","
                     "\"gpu\":\"0\",\"utilization_percent\":100}",
                     &g));
    assert_int_equal(g.utilization_ppb, UTIL_PPB_ONE);
}

static void test_gpu_team_fallback(void **state)
{
    struct gpu_sample g;
#define HEAD                                                                                       \
    "{\"timestamp\":1795428015,\"interval_seconds\":15,\"node\":\"n\",\"gpu\":\"0\","              \
    "\"utilization\":0.5,"
    /* The namespace maps to team/project (gpu.namespace_teams). */
    assert_false(gpu(state, NULL, HEAD "\"namespace\":\"ml-training\"}", &g));
    assert_label(g.team, "ml-platform");
    assert_label(g.project, "llm-pretrain");
    /* The sample's own project wins over the map's. */
    assert_false(gpu(state, NULL, HEAD "\"namespace\":\"ml-training\",\"project\":\"p\"}", &g));
    assert_label(g.team, "ml-platform");
    assert_label(g.project, "p");
    /* The sample's team wins over the map. */
    assert_false(gpu(state, NULL, HEAD "\"namespace\":\"ml-training\",\"team\":\"t\"}", &g));
    assert_label(g.team, "t");
    assert_label(g.project, "unattributed");
    /* An unmapped namespace: unattributed, the namespace as project. */
    assert_false(gpu(state, NULL, HEAD "\"namespace\":\"batch\",\"pod\":\"job-1\"}", &g));
    assert_label(g.team, "unattributed");
    assert_label(g.project, "batch");
    /* Empty strings are as absent. */
    assert_false(gpu(state, NULL, HEAD "\"team\":\"\",\"namespace\":\"\"}", &g));
    assert_label(g.team, "unattributed");
    assert_label(g.project, "unattributed");
#undef HEAD
}

struct bad_case {
    const char *json;
    enum reject_reason reason;
};

#define G  "{\"timestamp\":1795428015,\"node\":\"n\",\"gpu\":\"0\","
#define GI G "\"interval_seconds\":15,"

static const struct bad_case bad_samples[] = {
    {"", REJECT_INVALID_JSON},
    {"[1]", REJECT_NOT_OBJECT},
    {"{} {}", REJECT_TRAILING_DATA},
    {"{\"a\":[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]}", REJECT_TOO_DEEP},
    {GI "\"utilization\":0.5", REJECT_INVALID_JSON},
    {GI "\"utilization\":0.5,\"x\":\"\xff\"}", REJECT_INVALID_JSON},
    {GI "\"utilization\":0.5,\"pod\":\"\xff\"}", REJECT_INVALID_LABEL},
    {GI "\"utilization\":0.5,\"node\":\"m\"}", REJECT_DUPLICATE_FIELD},
    {GI "\"utilization\":\"0.5\"}", REJECT_WRONG_TYPE},
    {GI "\"utilization\":0.5,\"gpu_type\":7}", REJECT_WRONG_TYPE},
    {"{\"timestamp\":1795428015,\"node\":\"n\",\"gpu\":1.5,\"interval_seconds\":15,"
     "\"utilization\":0.5}",
     REJECT_WRONG_TYPE},
    {"{\"timestamp\":1795428015,\"node\":\"n\",\"gpu\":-1,\"interval_seconds\":15,"
     "\"utilization\":0.5}",
     REJECT_WRONG_TYPE},
    {GI "\"utilization\":0.5,\"team\":\"__overflow__\"}", REJECT_INVALID_LABEL},
    {GI "\"utilization\":1.000000001}", REJECT_INVALID_UTILIZATION},
    {GI "\"utilization\":-0.1}", REJECT_INVALID_UTILIZATION},
    {GI "\"utilization\":-0}", REJECT_INVALID_UTILIZATION},
    {GI "\"utilization_percent\":100.00001}", REJECT_INVALID_UTILIZATION},
    {GI "\"utilization\":0.5,\"utilization_percent\":50}", REJECT_INVALID_UTILIZATION},
    {GI "\"memory_used_bytes\":1}", REJECT_MISSING_FIELD},
    {G "\"utilization\":0.5}", REJECT_INVALID_INTERVAL},
    {G "\"interval_seconds\":0,\"utilization\":0.5}", REJECT_INVALID_INTERVAL},
    {G "\"interval_seconds\":-15,\"utilization\":0.5}", REJECT_INVALID_INTERVAL},
    {G "\"interval_seconds\":86400.000000001,\"utilization\":0.5}", REJECT_INVALID_INTERVAL},
    {G "\"interval_seconds\":0.0000000001,\"utilization\":0.5}", REJECT_INVALID_INTERVAL},
    {G "\"interval_seconds\":null,\"utilization\":0.5}", REJECT_INVALID_INTERVAL},
    {"{\"node\":\"n\",\"gpu\":\"0\",\"interval_seconds\":15,\"utilization\":0.5}",
     REJECT_MISSING_FIELD},
    {"{\"timestamp\":1795428015,\"gpu\":\"0\",\"interval_seconds\":15,\"utilization\":0.5}",
     REJECT_MISSING_FIELD},
    {"{\"timestamp\":1795428015,\"node\":\"n\",\"interval_seconds\":15,\"utilization\":0.5}",
     REJECT_MISSING_FIELD},
    {"{\"timestamp\":1795428015,\"node\":\"\",\"gpu\":\"0\",\"interval_seconds\":15,"
     "\"utilization\":0.5}",
     REJECT_MISSING_FIELD},
    {"{\"timestamp\":\"yesterday\",\"node\":\"n\",\"gpu\":\"0\",\"interval_seconds\":15,"
     "\"utilization\":0.5}",
     REJECT_INVALID_TIMESTAMP},
    {"{\"timestamp\":1795428015000,\"node\":\"n\",\"gpu\":\"0\",\"interval_seconds\":15,"
     "\"utilization\":0.5}",
     REJECT_INVALID_TIMESTAMP},
    {"{\"timestamp\":\"2027-01-01T00:00:00Z\",\"node\":\"n\",\"gpu\":\"0\","
     "\"interval_seconds\":15,\"utilization\":0.5}",
     REJECT_INVALID_TIMESTAMP},
    {GI "\"utilization\":0.5,\"memory_used_bytes\":1.5}", REJECT_INVALID_USAGE},
    {GI "\"utilization\":0.5,\"memory_used_bytes\":9007199254740993}", REJECT_INVALID_USAGE},
    {GI "\"utilization\":0.5,\"memory_used_bytes\":1,\"memory_used_mib\":1}", REJECT_INVALID_USAGE},
};

static void test_gpu_bad_samples(void **state)
{
    for (size_t i = 0; i < sizeof bad_samples / sizeof bad_samples[0]; i++) {
        struct gpu_sample g;
        enum reject_reason got = gpu(state, NULL, bad_samples[i].json, &g);
        if (got != bad_samples[i].reason)
            fail_msg("case %zu %s: got %s, want %s", i, bad_samples[i].json,
                     reject_reason_name(got), reject_reason_name(bad_samples[i].reason));
    }
}

/* ---- FOCUS rows -------------------------------------------------------------- */

static const char focus_row_json[] =
    "{\"BillingAccountId\":\"123456789012\",\"BillingCurrency\":\"USD\","
    "\"BillingPeriodStart\":\"2026-11-01T00:00:00Z\",\"ChargeCategory\":\"Usage\","
    "\"ChargePeriodStart\":\"2026-11-23T10:00:00Z\",\"ChargePeriodEnd\":\"2026-11-23T11:00:00Z\","
    "\"BilledCost\":\"98.3200000000\",\"EffectiveCost\":63.125,\"ListCost\":98.32,"
    "\"ProviderName\":\"AWS\",\"ServiceName\":\"Amazon Elastic Compute Cloud\","
    "\"SubAccountName\":\"ml-prod\",\"ResourceId\":\"arn:aws:ec2:us-east-1:123456789012:"
    "instance/i-0abc\",\"Tags\":{\"team\":\"ml-platform\",\"project\":\"llm-pretrain\","
    "\"owner\":\"x\",\"cost-center\":42}}";

static void test_focus_golden(void **state)
{
    struct focus_row f;
    assert_int_equal(focus(state, NULL, focus_row_json, &f), REJECT_NONE);
    assert_int_equal(f.amount_nanos, 63125000000LL); /* EffectiveCost */
    assert_label(f.team, "ml-platform");
    assert_label(f.project, "llm-pretrain");
    assert_label(f.provider, "AWS");
    assert_label(f.service, "Amazon Elastic Compute Cloud");
    assert_label(f.charge_category, "Usage");
    assert_label(f.sub_account, "ml-prod");
    assert_label(f.resource_id, "arn:aws:ec2:us-east-1:123456789012:instance/i-0abc");
    assert_true(f.has_timestamp);
    assert_int_equal(f.timestamp_ms, 1795428000000LL);

    /* BilledCost, as a decimal string, with a team tag of another name. */
    struct event_decoder *billed = new_decoder(false, "owner");
    assert_non_null(billed);
    assert_int_equal(focus_row_decode(billed, NULL, focus_row_json, strlen(focus_row_json), &f),
                     REJECT_NONE);
    assert_int_equal(f.amount_nanos, 98320000000LL);
    assert_label(f.team, "x");
    assert_label(f.project, "llm-pretrain");
    /* A credit: negative, and a minimal row's defaults. */
    const char *credit = "{\"ChargeCategory\":\"Credit\",\"BilledCost\":-12.000000001}";
    assert_int_equal(focus_row_decode(billed, NULL, credit, strlen(credit), &f), REJECT_NONE);
    assert_int_equal(f.amount_nanos, -12000000001LL);
    assert_label(f.team, "unattributed");
    assert_label(f.project, "unattributed");
    assert_label(f.provider, "unknown");
    assert_label(f.service, "unknown");
    assert_label(f.sub_account, "unknown");
    assert_int_equal(f.resource_id.len, 0);
    assert_false(f.has_timestamp);
    event_decoder_free(billed);
}

#define F "{\"ChargeCategory\":\"Usage\","

static const struct bad_case bad_rows[] = {
    {F "\"EffectiveCost\":1,\"BillingCurrency\":\"EUR\"}", REJECT_INVALID_CURRENCY},
    {F "\"EffectiveCost\":1,\"BillingCurrency\":\"usd\"}", REJECT_INVALID_CURRENCY},
    {F "\"EffectiveCost\":1,\"BillingCurrency\":1}", REJECT_WRONG_TYPE},
    {F "\"BilledCost\":1}", REJECT_MISSING_FIELD},
    {F "\"EffectiveCost\":null}", REJECT_MISSING_FIELD},
    {"{\"EffectiveCost\":1}", REJECT_MISSING_FIELD},
    {"{\"EffectiveCost\":1,\"ChargeCategory\":\"\"}", REJECT_MISSING_FIELD},
    {F "\"EffectiveCost\":1000000.000000001}", REJECT_INVALID_COST},
    {F "\"EffectiveCost\":-1000000.000000001}", REJECT_INVALID_COST},
    {F "\"EffectiveCost\":\"12,5\"}", REJECT_INVALID_COST},
    {F "\"EffectiveCost\":\" 12\"}", REJECT_INVALID_COST},
    {F "\"EffectiveCost\":\"\"}", REJECT_INVALID_COST},
    {F "\"EffectiveCost\":1,\"BilledCost\":\"x\"}", REJECT_INVALID_COST},
    {F "\"EffectiveCost\":true}", REJECT_WRONG_TYPE},
    {F "\"EffectiveCost\":1,\"Tags\":[]}", REJECT_WRONG_TYPE},
    {F "\"EffectiveCost\":1,\"Tags\":{\"team\":7}}", REJECT_WRONG_TYPE},
    {F "\"EffectiveCost\":1,\"Tags\":{\"team\":\"a\",\"team\":\"b\"}}", REJECT_DUPLICATE_FIELD},
    {F "\"EffectiveCost\":1,\"Tags\":{\"team\":\"\xc0\xaf\"}}", REJECT_INVALID_LABEL},
    {F "\"EffectiveCost\":1,\"Tags\":{\"other\":\"\xc0\xaf\"}}", REJECT_INVALID_JSON},
    {F "\"EffectiveCost\":1,\"ServiceName\":\"\xed\xa0\x80\"}", REJECT_INVALID_LABEL},
    {F "\"EffectiveCost\":1,\"ChargePeriodStart\":\"2026-13-01T00:00:00Z\"}",
     REJECT_INVALID_TIMESTAMP},
    {F "\"EffectiveCost\":1,\"ChargeCategory\":\"Tax\"}", REJECT_DUPLICATE_FIELD},
    {F "\"EffectiveCost\":1,\"ResourceId\":5}", REJECT_WRONG_TYPE},
};

static void test_focus_bad_rows(void **state)
{
    for (size_t i = 0; i < sizeof bad_rows / sizeof bad_rows[0]; i++) {
        struct focus_row f;
        enum reject_reason got = focus(state, NULL, bad_rows[i].json, &f);
        if (got != bad_rows[i].reason)
            fail_msg("case %zu %s: got %s, want %s", i, bad_rows[i].json, reject_reason_name(got),
                     reject_reason_name(bad_rows[i].reason));
    }
}

/* ---- built-in profiles ----------------------------------------------------------- */

static struct field_mapping *builtin(const char *name, enum event_kind want)
{
    enum event_kind kind;
    char err[256];
    const struct string_map *fields = field_mapping_builtin(name, &kind);
    assert_non_null(fields);
    assert_int_equal(kind, want);
    struct field_mapping *m = field_mapping_compile(kind, fields, err, sizeof err);
    if (!m)
        fail_msg("%s: %s", name, err);
    assert_int_equal(field_mapping_kind(m), want);
    return m;
}

/* A Chat Completions response body with the request's metadata. */
static const char openai_json[] =
    "{\"id\":\"chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG\",\"object\":\"chat.completion\","
    "\"created\":1795428000,\"model\":\"gpt-4o-2024-08-06\",\"choices\":[{\"index\":0,"
    "\"message\":{\"role\":\"assistant\",\"content\":\"Hello! How can I help?\","
    "\"refusal\":null},\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":"
    "{\"prompt_tokens\":1117,\"completion_tokens\":46,\"total_tokens\":1163,"
    "\"prompt_tokens_details\":{\"cached_tokens\":1024,\"audio_tokens\":0},"
    "\"completion_tokens_details\":{\"reasoning_tokens\":0,\"audio_tokens\":0,"
    "\"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}},"
    "\"service_tier\":\"default\",\"system_fingerprint\":\"fp_6b68a8204b\","
    "\"metadata\":{\"team\":\"search\",\"project\":\"answers\"}}";

static void test_profile_openai(void **state)
{
    struct field_mapping *m = builtin("openai", EVENT_KIND_COST);
    struct event ev;
    assert_int_equal(event_decode_mapped(*state, m, openai_json, strlen(openai_json), &ev),
                     REJECT_NONE);
    assert_int_equal(ev.tokens[TOKEN_INPUT], 93); /* 1117 - 1024 */
    assert_int_equal(ev.tokens[TOKEN_CACHED_INPUT], 1024);
    assert_int_equal(ev.tokens[TOKEN_CACHE_WRITE], 0);
    assert_int_equal(ev.tokens[TOKEN_OUTPUT], 46);
    assert_true(ev.has_timestamp);
    assert_int_equal(ev.timestamp_ms, 1795428000000LL);
    assert_false(ev.has_cost);
    assert_false(ev.has_gpu);
    assert_label(ev.model, "gpt-4o-2024-08-06");
    assert_label(ev.provider, "openai");
    assert_label(ev.source, "openai-api");
    assert_label(ev.team, "search");
    assert_label(ev.project, "answers");
    assert_label(ev.instance_type, "unknown");
    /* Without cached tokens (no prompt_tokens_details): all input. */
    const char *plain = "{\"id\":\"c\",\"created\":1795428000,\"model\":\"gpt-4o-mini\","
                        "\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":2}}";
    assert_int_equal(event_decode_mapped(*state, m, plain, strlen(plain), &ev), REJECT_NONE);
    assert_int_equal(ev.tokens[TOKEN_INPUT], 10);
    assert_int_equal(ev.tokens[TOKEN_CACHED_INPUT], 0);
    assert_label(ev.team, "unattributed");
    /* More cached than prompt tokens: a negative difference. */
    const char *neg = "{\"model\":\"m\",\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":2,"
                      "\"prompt_tokens_details\":{\"cached_tokens\":11}}}";
    assert_int_equal(event_decode_mapped(*state, m, neg, strlen(neg), &ev), REJECT_INVALID_TOKENS);
    field_mapping_free(m);
}

/* A Messages API response with the caller's team/project metadata. */
static const char anthropic_json[] =
    "{\"id\":\"msg_013Zva2CMHLNnXjNJJKqJ2EF\",\"type\":\"message\",\"role\":\"assistant\","
    "\"model\":\"claude-sonnet-4-5-20250929\",\"content\":[{\"type\":\"text\",\"text\":"
    "\"Hi! My name is Claude.\"}],\"stop_reason\":\"end_turn\",\"stop_sequence\":null,"
    "\"usage\":{\"input_tokens\":2095,\"cache_creation_input_tokens\":2051,"
    "\"cache_read_input_tokens\":14530,\"output_tokens\":503,\"service_tier\":\"standard\"},"
    "\"metadata\":{\"team\":\"support\",\"project\":\"triage-bot\"}}";

static void test_profile_anthropic(void **state)
{
    struct field_mapping *m = builtin("anthropic", EVENT_KIND_COST);
    struct event ev;
    assert_int_equal(event_decode_mapped(*state, m, anthropic_json, strlen(anthropic_json), &ev),
                     REJECT_NONE);
    assert_int_equal(ev.tokens[TOKEN_INPUT], 2095);
    assert_int_equal(ev.tokens[TOKEN_CACHED_INPUT], 14530);
    assert_int_equal(ev.tokens[TOKEN_CACHE_WRITE], 2051);
    assert_int_equal(ev.tokens[TOKEN_OUTPUT], 503);
    assert_false(ev.has_timestamp);
    assert_label(ev.model, "claude-sonnet-4-5-20250929");
    assert_label(ev.provider, "anthropic");
    assert_label(ev.source, "anthropic-api");
    assert_label(ev.team, "support");
    assert_label(ev.project, "triage-bot");
    field_mapping_free(m);
}

/* A DCGM-exporter-like sample, one GPU, as a collector ships it. */
static const char dcgm_json[] =
    "{\"timestamp\":\"2026-11-23T10:00:15.000Z\",\"interval_seconds\":15,"
    "\"Hostname\":\"gpu-node-7\",\"gpu\":\"3\",\"UUID\":\"GPU-5fd4d1b2-8e3a-4c51-9a6e-"
    "2f1b0c9d7e11\",\"device\":\"nvidia3\",\"modelName\":\"NVIDIA H100 80GB HBM3\","
    "\"namespace\":\"ml-training\",\"pod\":\"trainer-0\",\"container\":\"pytorch\","
    "\"DCGM_FI_DEV_GPU_UTIL\":87,\"DCGM_FI_DEV_FB_USED\":40960,\"DCGM_FI_DEV_FB_FREE\":40550,"
    "\"DCGM_FI_DEV_POWER_USAGE\":612.5}";

static void test_profile_dcgm(void **state)
{
    struct field_mapping *m = builtin("dcgm", EVENT_KIND_GPU_UTILIZATION);
    struct gpu_sample g;
    assert_int_equal(gpu(state, m, dcgm_json, &g), REJECT_NONE);
    assert_int_equal(g.end_unix_nanos, 1795428015000000000ULL);
    assert_int_equal(g.interval_nanos, 15000000000ULL);
    assert_int_equal(g.utilization_ppb, 870000000ULL);
    assert_int_equal(g.memory_used_bytes, 40960ULL * 1048576ULL);
    assert_label(g.node, "gpu-node-7");
    assert_label(g.gpu, "3");
    assert_label(g.gpu_type, "NVIDIA H100 80GB HBM3");
    assert_label(g.team, "ml-platform"); /* gpu.namespace_teams */
    assert_label(g.project, "llm-pretrain");
    /* The profile is for GPU samples: not a FOCUS row nor a cost event. */
    struct focus_row f;
    struct event ev;
    assert_int_equal(focus(state, m, "{}", &f), REJECT_WRONG_TYPE);
    assert_int_equal(event_decode_mapped(*state, m, "{}", 2, &ev), REJECT_WRONG_TYPE);
    field_mapping_free(m);
    assert_null(field_mapping_builtin("openai2", NULL));
}

/* ---- pointers and expressions ------------------------------------------------------ */

static struct field_mapping *compile(enum event_kind kind, const char *const *kv, size_t n,
                                     char *err, size_t errlen)
{
    char *keys[32], *values[32];
    for (size_t i = 0; i < n; i++) {
        keys[i] = (char *)kv[2 * i];
        values[i] = (char *)kv[2 * i + 1];
    }
    struct string_map map = {keys, values, n};
    return field_mapping_compile(kind, &map, err, errlen);
}

static void test_pointer_edge_cases(void **state)
{
    static const char *const kv[] = {
        "model",
        "/a~1b/c~0d", /* key "a/b", then "c~d" */
        "input_tokens",
        "/items/1/n", /* array index */
        "output_tokens",
        "/u/x - /u/y", /* difference */
        "cached_input_tokens",
        "/u/x + /u/z", /* sum, z missing counts 0 */
        "cost_usd",
        "=0.25", /* a literal number */
        "provider",
        "=acme", /* a literal string */
        "team",
        "/", /* the key "" */
        "project",
        "/items/01", /* not an index: absent */
        "gpu_type",
        "/deep/0/0/name",
    };
    char err[256];
    struct field_mapping *m =
        compile(EVENT_KIND_COST, kv, sizeof kv / sizeof kv[0] / 2, err, sizeof err);
    if (!m)
        fail_msg("%s", err);
    struct event ev;
    const char *ok =
        "{\"a/b\":{\"c~d\":\"m-1\",\"c~0d\":\"wrong\"},\"items\":[{\"n\":1},{\"n\":7}],"
        "\"u\":{\"x\":10,\"y\":4},\"\":\"root-team\","
        "\"deep\":[[{\"name\":\"A100\"}]]}";
    assert_int_equal(event_decode_mapped(*state, m, ok, strlen(ok), &ev), REJECT_NONE);
    assert_label(ev.model, "m-1");
    assert_int_equal(ev.tokens[TOKEN_INPUT], 7);
    assert_int_equal(ev.tokens[TOKEN_OUTPUT], 6);
    assert_int_equal(ev.tokens[TOKEN_CACHED_INPUT], 10);
    assert_true(ev.has_cost);
    assert_int_equal(ev.cost_nanos, 250000000ULL);
    assert_label(ev.provider, "acme");
    assert_label(ev.team, "root-team");
    assert_label(ev.project, "unattributed");
    assert_label(ev.gpu_type, "A100");

    static const struct bad_case cases[] = {
        /* Missing everywhere: absent, not an error. */
        {"{}", REJECT_NONE},
        /* The index past the end: absent. */
        {"{\"items\":[{\"n\":1}]}", REJECT_NONE},
        /* A scalar on the way is the wrong type; a null is absent. */
        {"{\"items\":5}", REJECT_WRONG_TYPE},
        {"{\"items\":null}", REJECT_NONE},
        {"{\"items\":[null,null]}", REJECT_NONE},
        /* The wrong type at the end. */
        {"{\"items\":[{},{\"n\":\"7\"}]}", REJECT_WRONG_TYPE},
        {"{\"a/b\":{\"c~d\":5}}", REJECT_WRONG_TYPE},
        /* A negative difference is the field's invalid reason. */
        {"{\"u\":{\"x\":4,\"y\":10}}", REJECT_INVALID_TOKENS},
        /* Missing left side: absent; missing right side: 0. */
        {"{\"u\":{\"y\":10}}", REJECT_NONE},
        {"{\"u\":{\"x\":1.5}}", REJECT_INVALID_TOKENS},
        {"{\"u\":{\"x\":1,\"y\":\"1\"}}", REJECT_WRONG_TYPE},
        /* A key twice on the way. */
        {"{\"u\":{\"x\":1},\"u\":{\"x\":2}}", REJECT_DUPLICATE_FIELD},
        {"{\"items\":[{\"n\":1},{\"n\":2,\"n\":3}]}", REJECT_DUPLICATE_FIELD},
        /* Strict JSON everywhere, mapped or not. */
        {"{\"items\":[1,]}", REJECT_INVALID_JSON},
        {"{\"z\":\"\xff\"}", REJECT_INVALID_JSON},
        {"{\"a/b\":{\"c~d\":\"\xff\"}}", REJECT_INVALID_LABEL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        enum reject_reason got =
            event_decode_mapped(*state, m, cases[i].json, strlen(cases[i].json), &ev);
        if (got != cases[i].reason)
            fail_msg("case %zu %s: got %s, want %s", i, cases[i].json, reject_reason_name(got),
                     reject_reason_name(cases[i].reason));
    }
    /* Missing left side of the difference: the field is absent. */
    assert_int_equal(event_decode_mapped(*state, m, "{\"u\":{\"y\":10}}", 14, &ev), REJECT_NONE);
    assert_int_equal(ev.tokens[TOKEN_OUTPUT], 0);
    field_mapping_free(m);

    /* The "labels" object through a pointer: extra labels as event.c. */
    static const char *const lkv[] = {"labels", "/meta/labels", "cost_usd", "/c"};
    m = compile(EVENT_KIND_COST, lkv, 2, err, sizeof err);
    assert_non_null(m);
    const char *lab = "{\"c\":1,\"meta\":{\"labels\":{\"environment\":\"prod\",\"x\":\"y\"}}}";
    assert_int_equal(event_decode_mapped(*state, m, lab, strlen(lab), &ev), REJECT_NONE);
    assert_label(ev.extra[0], "prod");
    const char *bad = "{\"c\":1,\"meta\":{\"labels\":{\"environment\":1}}}";
    assert_int_equal(event_decode_mapped(*state, m, bad, strlen(bad), &ev), REJECT_WRONG_TYPE);
    field_mapping_free(m);

    /* NULL mapping: the native cost decoder. */
    assert_int_equal(event_decode_mapped(*state, NULL, "{\"cost_usd\":1}", 14, &ev), REJECT_NONE);
    assert_int_equal(ev.cost_nanos, 1000000000ULL);
}

static void test_compile_errors(void **state)
{
    (void)state;
    char err[256];
    static const struct {
        enum event_kind kind;
        const char *field, *source, *error;
    } cases[] = {
        {EVENT_KIND_COST, "modle", "/model",
         "modle: not a field of cost events (see docs/events.md)"},
        {EVENT_KIND_GPU_UTILIZATION, "input_tokens", "/x",
         "input_tokens: not a field of gpu_utilization events (see docs/events.md)"},
        {EVENT_KIND_COST, "model", "model",
         "model: 'model' is not a source: write \"/json/pointer\", \"/a - /b\", \"/a + /b\" or "
         "\"=literal\""},
        {EVENT_KIND_COST, "model", "/a~2",
         "model: '/a~2': '~' must be followed by 0 (for ~) or 1 (for /) in a JSON pointer"},
        {EVENT_KIND_COST, "model", "/a~",
         "model: '/a~': '~' must be followed by 0 (for ~) or 1 "
         "(for /) in a JSON pointer"},
        {EVENT_KIND_COST, "model", "/a - /b",
         "model: '/a - /b': a sum or difference only fits a non-negative numeric field"},
        {EVENT_KIND_FOCUS, "BilledCost", "/a - /b",
         "BilledCost: '/a - /b': a sum or difference only fits a non-negative numeric field"},
        {EVENT_KIND_COST, "input_tokens", "/a - /b + /c",
         "input_tokens: '/a - /b + /c': at most one + or - per source"},
        {EVENT_KIND_COST, "input_tokens", "=ten",
         "input_tokens: 'ten' is not a number, and the field is numeric"},
        {EVENT_KIND_COST, "labels", "=x", "labels: an object field cannot be a literal"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *kv[] = {cases[i].field, cases[i].source};
        struct field_mapping *m = compile(cases[i].kind, kv, 1, err, sizeof err);
        if (m)
            fail_msg("case %zu compiled", i);
        assert_string_equal(err, cases[i].error);
    }
    assert_true(field_mapping_field_known("utilization_percent"));
    assert_true(field_mapping_field_known("EffectiveCost"));
    assert_true(field_mapping_field_known("cache_write_tokens"));
    assert_false(field_mapping_field_known("effectivecost"));
    assert_int_equal(field_mapping_check_source("/a/b - /c", err, sizeof err), 0);
    assert_int_equal(field_mapping_check_source("=", err, sizeof err), 0);
    assert_int_equal(field_mapping_check_source("a/b", err, sizeof err), -EINVAL);
    assert_int_equal(field_mapping_check_source("/x~9", err, sizeof err), -EINVAL);
}

/* Once warm, decoding allocates nothing: the token array stays put. */
static void test_no_allocation_when_warm(void **state)
{
    struct event_decoder *d = *state;
    struct gpu_sample g;
    struct focus_row f;
    assert_int_equal(focus(state, NULL, focus_row_json, &f), REJECT_NONE);
    assert_int_equal(gpu(state, NULL, dcgm_json, &g), REJECT_MISSING_FIELD);
    const struct jtok *tok = d->doc.tok;
    size_t cap = d->doc.cap, grows = d->doc.grows;
    assert_true(grows > 0);
    assert_non_null(tok);
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(focus(state, NULL, focus_row_json, &f), REJECT_NONE);
        assert_int_equal(gpu(state, NULL, dcgm_json, &g), REJECT_MISSING_FIELD);
    }
    assert_int_equal(d->doc.grows, grows);
    assert_ptr_equal(d->doc.tok, tok);
    assert_int_equal(d->doc.cap, cap);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kind_names),
        cmocka_unit_test_setup_teardown(test_gpu_golden_ratio, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gpu_golden_percent_epoch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gpu_team_fallback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gpu_bad_samples, setup, teardown),
        cmocka_unit_test_setup_teardown(test_focus_golden, setup, teardown),
        cmocka_unit_test_setup_teardown(test_focus_bad_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_profile_openai, setup, teardown),
        cmocka_unit_test_setup_teardown(test_profile_anthropic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_profile_dcgm, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pointer_edge_cases, setup, teardown),
        cmocka_unit_test(test_compile_errors),
        cmocka_unit_test_setup_teardown(test_no_allocation_when_warm, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

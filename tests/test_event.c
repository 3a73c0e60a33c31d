/* test_event.c - event decoding: a full valid event, defaults, extra labels,
 * and every reject reason with the exact input that triggers it. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "event.h"
#include "event_kinds.h"

static const char *const extra_names[] = {"environment", "cost_center"};

static struct event_decoder *new_decoder(void)
{
    struct event_limits limits = {
        .max_bytes = 65536,
        .max_cost_nanos = 1000000ULL * 1000000000ULL,
        .max_label_bytes = 128,
        .max_depth = 16,
        .unattributed_label = "unattributed",
        .extra_label_count = 2,
        .extra_label_names = extra_names,
    };
    return event_decoder_new(&limits);
}

static int setup(void **state)
{
    *state = new_decoder();
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    event_decoder_free(*state);
    return 0;
}

static enum reject_reason decode(void **state, const char *json, struct event *ev)
{
    return event_decode(*state, json, strlen(json), ev);
}

static void assert_label(struct label_value v, const char *want)
{
    char got[256];
    snprintf(got, sizeof(got), "%.*s", (int)v.len, v.ptr);
    assert_string_equal(got, want);
}

static void test_full_event(void **state)
{
    struct event ev;
    const char *json =
        "{\"event_id\":\"e1\",\"timestamp\":\"2026-11-23T10:00:00.250Z\",\"team\":\"ml\","
        "\"project\":\"chat\",\"source\":\"openai-api\",\"provider\":\"openai\","
        "\"model\":\"gpt-4o\",\"cost_usd\":0.012345678,\"input_tokens\":1200,"
        "\"cached_input_tokens\":300,\"cache_write_tokens\":0,\"output_tokens\":450,"
        "\"request_id\":\"r\",\"labels\":{\"environment\":\"prod\",\"other\":\"x\"},"
        "\"unknown_field\":[1,{\"a\":null}]}";
    assert_int_equal(decode(state, json, &ev), REJECT_NONE);
    assert_label(ev.team, "ml");
    assert_label(ev.project, "chat");
    assert_label(ev.source, "openai-api");
    assert_label(ev.provider, "openai");
    assert_label(ev.model, "gpt-4o");
    assert_true(ev.has_cost);
    assert_int_equal(ev.cost_nanos, 12345678);
    assert_int_equal(ev.tokens[TOKEN_INPUT], 1200);
    assert_int_equal(ev.tokens[TOKEN_CACHED_INPUT], 300);
    assert_int_equal(ev.tokens[TOKEN_CACHE_WRITE], 0);
    assert_int_equal(ev.tokens[TOKEN_OUTPUT], 450);
    assert_label(ev.extra[0], "prod");
    assert_int_equal(ev.extra[1].len, 0);
    assert_true(ev.has_timestamp);
    assert_int_equal(ev.timestamp_ms, 1795428000250LL);
    assert_false(ev.has_gpu);
}

static void test_gpu_event(void **state)
{
    struct event ev;
    assert_int_equal(decode(state,
                            "{\"team\":\"research\",\"project\":\"llm-pretrain\","
                            "\"source\":\"gpu-training\",\"instance_type\":\"p5.48xlarge\","
                            "\"gpu_type\":\"nvidia-h100-80gb\",\"gpu_count\":8,"
                            "\"duration_seconds\":3600.125,\"cost_usd\":55.04,"
                            "\"timestamp\":1795428000}",
                            &ev),
                     REJECT_NONE);
    assert_true(ev.has_gpu);
    assert_int_equal(ev.gpu_count, 8);
    assert_int_equal(ev.duration_nanos, 3600125000000ULL);
    assert_int_equal(ev.cost_nanos, 55040000000ULL);
    assert_int_equal(ev.timestamp_ms, 1795428000000LL);
    assert_label(ev.instance_type, "p5.48xlarge");
}

static void test_defaults(void **state)
{
    struct event ev;
    assert_int_equal(decode(state, "{\"cost_usd\":1,\"team\":\"\",\"project\":null}", &ev),
                     REJECT_NONE);
    assert_label(ev.team, "unattributed");
    assert_label(ev.project, "unattributed");
    assert_label(ev.source, "unknown");
    assert_label(ev.provider, "unknown");
    assert_label(ev.gpu_type, "unknown");
}

static void test_no_cost_decodes_without_cost(void **state)
{
    struct event ev;
    assert_int_equal(decode(state, "{\"team\":\"a\",\"input_tokens\":5}", &ev), REJECT_NONE);
    assert_false(ev.has_cost);
}

static void test_whitespace_around_is_fine(void **state)
{
    struct event ev;
    assert_int_equal(decode(state, "  {\"cost_usd\":2}\r\n", &ev), REJECT_NONE);
    assert_int_equal(ev.cost_nanos, 2000000000ULL);
}

static void test_not_nul_terminated(void **state)
{
    struct event ev;
    char buf[32];
    memcpy(buf, "{\"cost_usd\":7}XXXXXXXXXX", 24);
    assert_int_equal(event_decode(*state, buf, 14, &ev), REJECT_NONE);
    assert_int_equal(ev.cost_nanos, 7000000000ULL);
}

struct reject_case {
    const char *json;
    enum reject_reason reason;
};

static const struct reject_case reject_cases[] = {
    {"", REJECT_INVALID_JSON},
    {"{\"cost_usd\":1", REJECT_INVALID_JSON},
    {"{cost_usd:1}", REJECT_INVALID_JSON},
    {"{\"cost_usd\":01}", REJECT_INVALID_JSON},
    {"{\"cost_usd\":1.}", REJECT_INVALID_JSON},
    {"{\"cost_usd\":-}", REJECT_INVALID_JSON},
    {"{\"cost_usd\":1e}", REJECT_INVALID_JSON},
    {"{\"cost_usd\":.5}", REJECT_INVALID_JSON},
    {"{\"cost_usd\":1,\"team\":\"\\ud800\"}", REJECT_INVALID_JSON},
    {"[1,2]", REJECT_NOT_OBJECT},
    {"\"text\"", REJECT_NOT_OBJECT},
    {"42", REJECT_NOT_OBJECT},
    {"null", REJECT_NOT_OBJECT},
    {"{\"cost_usd\":1} x", REJECT_TRAILING_DATA},
    {"{\"cost_usd\":1}{\"cost_usd\":1}", REJECT_TRAILING_DATA},
    {"{\"a\":[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]}", REJECT_TOO_DEEP},
    {"{\"team\":1,\"cost_usd\":1}", REJECT_WRONG_TYPE},
    {"{\"cost_usd\":\"12\"}", REJECT_WRONG_TYPE},
    {"{\"cost_usd\":true}", REJECT_WRONG_TYPE},
    {"{\"cost_usd\":1,\"input_tokens\":\"5\"}", REJECT_WRONG_TYPE},
    {"{\"cost_usd\":1,\"labels\":[]}", REJECT_WRONG_TYPE},
    {"{\"cost_usd\":1,\"labels\":{\"environment\":3}}", REJECT_WRONG_TYPE},
    {"{\"cost_usd\":1,\"event_id\":5}", REJECT_WRONG_TYPE},
    {"{\"cost_usd\":1,\"timestamp\":[]}", REJECT_WRONG_TYPE},
    {"{\"cost_usd\":1,\"duration_seconds\":\"5\"}", REJECT_WRONG_TYPE},
    {"{\"cost_usd\":1,\"cost_usd\":1000}", REJECT_DUPLICATE_FIELD},
    {"{\"team\":\"a\",\"cost_usd\":1,\"team\":\"b\"}", REJECT_DUPLICATE_FIELD},
    {"{\"cost_usd\":-1}", REJECT_INVALID_COST},
    {"{\"cost_usd\":-0.0}", REJECT_INVALID_COST},
    {"{\"cost_usd\":1e400}", REJECT_INVALID_COST},
    {"{\"cost_usd\":2000000}", REJECT_INVALID_COST},
    {"{\"cost_usd\":1000000.000000001}", REJECT_INVALID_COST},
    {"{\"cost_usd\":1,\"input_tokens\":1.5}", REJECT_INVALID_TOKENS},
    {"{\"cost_usd\":1,\"output_tokens\":-3}", REJECT_INVALID_TOKENS},
    {"{\"cost_usd\":1,\"cached_input_tokens\":1e300}", REJECT_INVALID_TOKENS},
    {"{\"cost_usd\":1,\"gpu_count\":-1}", REJECT_INVALID_USAGE},
    {"{\"cost_usd\":1,\"gpu_count\":2.5}", REJECT_INVALID_USAGE},
    {"{\"cost_usd\":1,\"duration_seconds\":-5}", REJECT_INVALID_USAGE},
    {"{\"cost_usd\":1,\"duration_seconds\":1e300}", REJECT_INVALID_USAGE},
    {"{\"cost_usd\":1,\"team\":\"\xff\xfe\"}", REJECT_INVALID_LABEL},
    {"{\"cost_usd\":1,\"project\":\"\xc0\xaf\"}", REJECT_INVALID_LABEL},
    {"{\"cost_usd\":1,\"model\":\"\xed\xa0\x80\"}", REJECT_INVALID_LABEL},
    {"{\"cost_usd\":1,\"team\":\"__overflow__\"}", REJECT_INVALID_LABEL},
    {"{\"cost_usd\":1,\"labels\":{\"environment\":\"\xe2\x82\"}}", REJECT_INVALID_LABEL},
    {"{\"cost_usd\":1,\"timestamp\":\"yesterday\"}", REJECT_INVALID_TIMESTAMP},
    {"{\"cost_usd\":1,\"timestamp\":\"2026-02-30T00:00:00Z\"}", REJECT_INVALID_TIMESTAMP},
    {"{\"cost_usd\":1,\"timestamp\":\"2026-11-23T10:00:00\"}", REJECT_INVALID_TIMESTAMP},
    {"{\"cost_usd\":1,\"timestamp\":1795428000000}", REJECT_INVALID_TIMESTAMP},
    {"{\"cost_usd\":1,\"timestamp\":-1}", REJECT_INVALID_TIMESTAMP},
};

static void test_reject_reasons(void **state)
{
    for (size_t i = 0; i < sizeof(reject_cases) / sizeof(reject_cases[0]); i++) {
        struct event ev;
        enum reject_reason got = decode(state, reject_cases[i].json, &ev);
        if (got != reject_cases[i].reason)
            fail_msg("case %zu %s: got %s, want %s", i, reject_cases[i].json,
                     reject_reason_name(got), reject_reason_name(reject_cases[i].reason));
    }
}

/* The reasons of the other kinds (event_kinds.h), decoded with our field
 * names; tests/test_event_kinds.c has the full tables. */
struct kind_reject_case {
    enum event_kind kind;
    const char *json;
    enum reject_reason reason;
};

#define GPU_OK_HEAD "{\"timestamp\":\"2026-11-23T10:00:15Z\",\"node\":\"n1\",\"gpu\":\"0\","
#define FOCUS_HEAD  "{\"ChargeCategory\":\"Usage\",\"ServiceName\":\"Amazon EC2\","

static const struct kind_reject_case kind_reject_cases[] = {
    {EVENT_KIND_GPU_UTILIZATION, GPU_OK_HEAD "\"interval_seconds\":15}", REJECT_MISSING_FIELD},
    {EVENT_KIND_GPU_UTILIZATION,
     "{\"node\":\"n1\",\"gpu\":\"0\",\"interval_seconds\":15,\"utilization\":0.5}",
     REJECT_MISSING_FIELD},
    {EVENT_KIND_GPU_UTILIZATION, GPU_OK_HEAD "\"interval_seconds\":15,\"utilization\":1.5}",
     REJECT_INVALID_UTILIZATION},
    {EVENT_KIND_GPU_UTILIZATION,
     GPU_OK_HEAD "\"interval_seconds\":15,\"utilization\":0.5,\"utilization_percent\":50}",
     REJECT_INVALID_UTILIZATION},
    {EVENT_KIND_GPU_UTILIZATION,
     GPU_OK_HEAD "\"interval_seconds\":15,\"utilization_percent\":100.5}",
     REJECT_INVALID_UTILIZATION},
    {EVENT_KIND_GPU_UTILIZATION, GPU_OK_HEAD "\"utilization\":0.5}", REJECT_INVALID_INTERVAL},
    {EVENT_KIND_GPU_UTILIZATION, GPU_OK_HEAD "\"interval_seconds\":0,\"utilization\":0.5}",
     REJECT_INVALID_INTERVAL},
    {EVENT_KIND_GPU_UTILIZATION, GPU_OK_HEAD "\"interval_seconds\":86401,\"utilization\":0.5}",
     REJECT_INVALID_INTERVAL},
    {EVENT_KIND_FOCUS, FOCUS_HEAD "\"BilledCost\":1.25,\"BillingCurrency\":\"EUR\"}",
     REJECT_INVALID_CURRENCY},
    {EVENT_KIND_FOCUS, "{\"BilledCost\":1.25}", REJECT_MISSING_FIELD},
    /* These decoders count BilledCost (limits.focus_effective_cost false). */
    {EVENT_KIND_FOCUS, FOCUS_HEAD "\"EffectiveCost\":1.25}", REJECT_MISSING_FIELD},
};

static enum reject_reason decode_kind(void **state, enum event_kind kind, const char *json)
{
    struct gpu_sample g;
    struct focus_row f;
    if (kind == EVENT_KIND_GPU_UTILIZATION)
        return gpu_sample_decode(*state, NULL, json, strlen(json), &g);
    return focus_row_decode(*state, NULL, json, strlen(json), &f);
}

static void test_kind_reject_reasons(void **state)
{
    for (size_t i = 0; i < sizeof(kind_reject_cases) / sizeof(kind_reject_cases[0]); i++) {
        const struct kind_reject_case *c = &kind_reject_cases[i];
        enum reject_reason got = decode_kind(state, c->kind, c->json);
        if (got != c->reason)
            fail_msg("%s case %zu %s: got %s, want %s", event_kind_name(c->kind), i, c->json,
                     reject_reason_name(got), reject_reason_name(c->reason));
    }
}

static void test_every_reason_is_covered(void **state)
{
    (void)state;
    /* Each reason except none/too_large/unpriced/too_many_gpus (decided by
     * the ingest, or tested separately) appears in one of the tables. */
    for (int r = 1; r < REJECT_REASON_COUNT; r++) {
        if (r == REJECT_TOO_LARGE || r == REJECT_UNPRICED || r == REJECT_TOO_MANY_GPUS)
            continue;
        bool found = false;
        for (size_t i = 0; i < sizeof(reject_cases) / sizeof(reject_cases[0]); i++)
            found |= reject_cases[i].reason == (enum reject_reason)r;
        for (size_t i = 0; i < sizeof(kind_reject_cases) / sizeof(kind_reject_cases[0]); i++)
            found |= kind_reject_cases[i].reason == (enum reject_reason)r;
        if (!found)
            fail_msg("no test case for %s", reject_reason_name((enum reject_reason)r));
    }
}

static void test_too_large(void **state)
{
    struct event ev;
    size_t len = 70000;
    char *big = malloc(len + 1);
    memset(big, ' ', len);
    memcpy(big, "{\"cost_usd\":1,\"team\":\"", 22);
    big[len - 2] = '"';
    big[len - 1] = '}';
    big[len] = '\0';
    assert_int_equal(event_decode(*state, big, len, &ev), REJECT_TOO_LARGE);
    free(big);
}

static void test_label_length_limit(void **state)
{
    struct event ev;
    char json[512];
    char label[200];
    memset(label, 'a', 128);
    label[128] = '\0';
    snprintf(json, sizeof(json), "{\"cost_usd\":1,\"team\":\"%s\"}", label);
    assert_int_equal(decode(state, json, &ev), REJECT_NONE);
    memset(label, 'a', 129);
    label[129] = '\0';
    snprintf(json, sizeof(json), "{\"cost_usd\":1,\"team\":\"%s\"}", label);
    assert_int_equal(decode(state, json, &ev), REJECT_INVALID_LABEL);
}

static void test_large_valid_event_and_reuse(void **state)
{
    /* An event bigger than the arena's first chunk, then a normal one: the
     * arena must grow and shrink back without losing the second. */
    struct event ev;
    size_t n = 3000;
    char *json = malloc(n * 8 + 64);
    char *p = json + sprintf(json, "{\"cost_usd\":3,\"junk\":[");
    for (size_t i = 0; i < n; i++)
        p += sprintf(p, "%s1", i ? "," : "");
    strcpy(p, "]}");
    assert_int_equal(decode(state, json, &ev), REJECT_NONE);
    assert_int_equal(ev.cost_nanos, 3000000000ULL);
    free(json);
    assert_int_equal(decode(state, "{\"cost_usd\":4,\"team\":\"t\"}", &ev), REJECT_NONE);
    assert_label(ev.team, "t");
}

static void test_utf8_and_escapes(void **state)
{
    struct event ev;
    assert_int_equal(decode(state,
                            "{\"cost_usd\":1,\"team\":\"\\u00e9quipe\",\"project\":"
                            "\"a\\\"b\\\\c\\nd\",\"source\":\"\xf0\x9f\x9a\x80\"}",
                            &ev),
                     REJECT_NONE);
    assert_label(ev.team, "\xc3\xa9quipe");
    assert_label(ev.project, "a\"b\\c\nd");
    assert_true(utf8_valid("\xf4\x8f\xbf\xbf", 4));
    assert_false(utf8_valid("\xf4\x90\x80\x80", 4));
    assert_false(utf8_valid("\xe0\x80\x80", 3));
    assert_false(utf8_valid("\xc3", 1));
}

static void test_rfc3339(void **state)
{
    (void)state;
    int64_t ms;
    assert_int_equal(parse_rfc3339("1970-01-01T00:00:00Z", 20, &ms), 0);
    assert_int_equal(ms, 0);
    assert_int_equal(parse_rfc3339("2024-02-29T12:00:00+02:00", 25, &ms), 0);
    assert_int_equal(ms, 1709200800000LL);
    assert_int_equal(parse_rfc3339("2023-02-29T12:00:00Z", 20, &ms), -EINVAL);
    assert_int_equal(parse_rfc3339("2026-11-23T10:00:00.123456Z", 27, &ms), 0);
    assert_int_equal(ms % 1000, 123);
}

/* The producers' shape "YYYY-MM-DDTHH:MM:SS.mmmZ" has a fast path; every
 * other shape takes the general one. */
static void test_rfc3339_shapes(void **state)
{
    (void)state;
    static const struct {
        const char *ts;
        int rc;
        int64_t ms;
    } cases[] = {
        {"2026-11-23T00:00:00.000Z", 0, 1795392000000LL},
        {"2026-11-23T10:00:00.250Z", 0, 1795428000250LL},
        {"2026-11-23t10:00:00.250z", 0, 1795428000250LL},
        {"2026-11-23T10:00:00.25Z", 0, 1795428000250LL},
        {"2026-11-23T10:00:00.2500Z", 0, 1795428000250LL},
        {"2026-11-23T10:00:00.250+01:00", 0, 1795424400250LL},
        {"2026-11-23T10:00:00Z", 0, 1795428000000LL},
        {"2024-02-29T23:59:60.999Z", 0, 1709251200999LL},
        {"0000-01-01T00:00:00.000Z", 0, -62167219200000LL},
        {"9999-12-31T23:59:59.999Z", 0, 253402300799999LL},
        {"2023-02-29T00:00:00.000Z", -EINVAL, 0},
        {"2026-13-01T00:00:00.000Z", -EINVAL, 0},
        {"2026-00-01T00:00:00.000Z", -EINVAL, 0},
        {"2026-04-31T00:00:00.000Z", -EINVAL, 0},
        {"2026-11-00T00:00:00.000Z", -EINVAL, 0},
        {"2026-11-23T24:00:00.000Z", -EINVAL, 0},
        {"2026-11-23T10:60:00.000Z", -EINVAL, 0},
        {"2026-11-23T10:00:61.000Z", -EINVAL, 0},
        {"2026-11-23T10:00:00.000+", -EINVAL, 0},
        {"2026-11-23T10:00:00.0000", -EINVAL, 0},
        {"2026-11-23 10:00:00.000Z", -EINVAL, 0},
        {"2026-11-23T10:00:00,000Z", -EINVAL, 0},
        {"2026-11-23T10:00:00.000ZZ", -EINVAL, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t ms = 0;
        int rc = parse_rfc3339(cases[i].ts, strlen(cases[i].ts), &ms);
        if (rc != cases[i].rc || (rc == 0 && ms != cases[i].ms))
            fail_msg("%s: got %d %lld", cases[i].ts, rc, (long long)ms);
    }
    /* Every byte of the fast shape replaced by bytes around the digits and
     * separators: the fast path must agree with the general one, which
     * takes the same text with a lowercase 't' or 'z'. */
    static const unsigned char subst[] = {'/', '0', '1', '2',  '5',  '9',  ':',  '-',  '.',
                                          'T', 'Z', ' ', 0x00, 0x7f, 0x80, 0xf9, 0xfa, 0xff};
    for (size_t pos = 0; pos < 24; pos++) {
        for (size_t k = 0; k < sizeof(subst); k++) {
            char fast[24], slow[24];
            memcpy(fast, "2024-02-29T23:59:59.999Z", 24);
            fast[pos] = (char)subst[k];
            memcpy(slow, fast, 24);
            if (pos != 10)
                slow[10] = 't';
            else if (pos != 23)
                slow[23] = 'z';
            int64_t a = 1, b = 2;
            int ra = parse_rfc3339(fast, 24, &a), rb = parse_rfc3339(slow, 24, &b);
            if (ra != rb || (ra == 0 && a != b))
                fail_msg("byte %zu = 0x%02x: %d %lld vs %d %lld", pos, subst[k], ra, (long long)a,
                         rb, (long long)b);
        }
    }
}

/* ---- strict single-pass decoder: grammar, exact amounts, strings ---- */

static struct event_decoder *decoder_with(uint64_t max_cost_nanos, size_t max_bytes, int depth)
{
    struct event_limits limits = {
        .max_bytes = max_bytes,
        .max_cost_nanos = max_cost_nanos,
        .max_label_bytes = 128,
        .max_depth = depth,
        .unattributed_label = "unattributed",
        .extra_label_count = 2,
        .extra_label_names = extra_names,
    };
    return event_decoder_new(&limits);
}

struct cost_case {
    const char *text;
    uint64_t nanos;
};

static void test_cost_exponents_and_rounding(void **state)
{
    /* Exact decimal arithmetic: the exponent moves the decimal point, and
     * past the 9th decimal the amount rounds to nearest, ties away from 0. */
    static const struct cost_case cases[] = {
        {"1e2", 100000000000ULL},
        {"1E+2", 100000000000ULL},
        {"0.5e1", 5000000000ULL},
        {"1.5e-9", 2},
        {"2.5E-10", 0},
        {"1.5E-3", 1500000},
        {"0.0000000005", 1},
        {"0.0000000015", 2},
        {"0.0000000004999999999999999999", 0},
        {"0.12345678949999", 123456789},
        {"0.1234567895", 123456790},
        {"1.9999999995", 2000000000},
        {"0.9999999994", 999999999},
        {"1e-400", 0},
        {"0e999999999999999999999", 0},
        {"0.0", 0},
        {"0", 0},
        {"123456.000000001", 123456000000001ULL},
        {"1000000", 1000000000000000ULL},
        {"1000000.0000000001", 1000000000000000ULL}, /* rounds to the max */
        {"100000000000000000000e-14", 1000000000000000ULL},
        {"0.000000000000000000000000000000000000000000000000000000000000000000000000000000001e81",
         1000000000},
    };
    char json[256];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct event ev;
        snprintf(json, sizeof(json), "{\"cost_usd\":%s}", cases[i].text);
        enum reject_reason r = decode(state, json, &ev);
        if (r != REJECT_NONE || !ev.has_cost || ev.cost_nanos != cases[i].nanos)
            fail_msg("cost %s: got %s %llu, want %llu", cases[i].text, reject_reason_name(r),
                     (unsigned long long)ev.cost_nanos, (unsigned long long)cases[i].nanos);
    }
}

static void test_cost_beyond_double_exactness(void **state)
{
    (void)state;
    /* The 4,000,000 limit of the double path is gone: only max_cost_nanos
     * bounds a cost, and every nano-dollar is exact up to it. */
    struct event_decoder *d = decoder_with(10000000000ULL * 1000000000ULL, 65536, 16);
    assert_non_null(d);
    struct event ev;
    const char *json = "{\"cost_usd\":9876543210.123456789}";
    assert_int_equal(event_decode(d, json, strlen(json), &ev), REJECT_NONE);
    assert_true(ev.cost_nanos == 9876543210123456789ULL);
    json = "{\"cost_usd\":4503599.627370497}"; /* 2^52 + 1 nanos: not a double */
    assert_int_equal(event_decode(d, json, strlen(json), &ev), REJECT_NONE);
    assert_true(ev.cost_nanos == 4503599627370497ULL);
    json = "{\"cost_usd\":10000000000.000000001}";
    assert_int_equal(event_decode(d, json, strlen(json), &ev), REJECT_INVALID_COST);
    json = "{\"cost_usd\":18446744073.709551615}"; /* UINT64_MAX nanos */
    assert_int_equal(event_decode(d, json, strlen(json), &ev), REJECT_INVALID_COST);
    json = "{\"cost_usd\":18446744073.7095516155}"; /* rounds past UINT64_MAX */
    assert_int_equal(event_decode(d, json, strlen(json), &ev), REJECT_INVALID_COST);
    json = "{\"cost_usd\":99999999999999999999}";
    assert_int_equal(event_decode(d, json, strlen(json), &ev), REJECT_INVALID_COST);
    event_decoder_free(d);
}

static void test_long_digit_strings(void **state)
{
    struct event ev;
    char json[1024];
    char digits[401];
    memset(digits, '9', 400);
    digits[400] = '\0';
    snprintf(json, sizeof(json), "{\"cost_usd\":%s}", digits);
    assert_int_equal(decode(state, json, &ev), REJECT_INVALID_COST);
    snprintf(json, sizeof(json), "{\"cost_usd\":1,\"input_tokens\":%s}", digits);
    assert_int_equal(decode(state, json, &ev), REJECT_INVALID_TOKENS);
    snprintf(json, sizeof(json), "{\"cost_usd\":1,\"duration_seconds\":%s}", digits);
    assert_int_equal(decode(state, json, &ev), REJECT_INVALID_USAGE);
    snprintf(json, sizeof(json), "{\"cost_usd\":1,\"timestamp\":%s}", digits);
    assert_int_equal(decode(state, json, &ev), REJECT_INVALID_TIMESTAMP);
    /* Valid JSON in an unknown field is just skipped. */
    snprintf(json, sizeof(json), "{\"cost_usd\":1,\"other\":%s.%se-%s}", digits, digits + 200,
             digits + 390);
    assert_int_equal(decode(state, json, &ev), REJECT_NONE);
    /* 400 fraction digits: many leading zeros, then a tail that rounds. */
    memset(digits, '0', 400);
    digits[399] = '7';
    snprintf(json, sizeof(json), "{\"cost_usd\":0.%s}", digits);
    assert_int_equal(decode(state, json, &ev), REJECT_NONE);
    assert_int_equal(ev.cost_nanos, 0);
    snprintf(json, sizeof(json), "{\"cost_usd\":0.%se390}", digits);
    assert_int_equal(decode(state, json, &ev), REJECT_NONE);
    assert_int_equal(ev.cost_nanos, 1); /* 0.7 nanos */
    snprintf(json, sizeof(json), "{\"cost_usd\":0.%se391}", digits);
    assert_int_equal(decode(state, json, &ev), REJECT_NONE);
    assert_int_equal(ev.cost_nanos, 7);
    snprintf(json, sizeof(json), "{\"cost_usd\":1.%s}", digits);
    assert_int_equal(decode(state, json, &ev), REJECT_NONE);
    assert_int_equal(ev.cost_nanos, 1000000000);
}

/* Amounts are computed while the number is read when it has at most 19
 * digits, no exponent and no digit past the scale; each side of those
 * limits must give the exact value. */
static void test_amount_fast_path_limits(void **state)
{
    (void)state;
    struct event_decoder *d = decoder_with(UINT64_MAX, 65536, 16);
    assert_non_null(d);
    static const struct {
        const char *text;
        enum reject_reason reason;
        uint64_t nanos;
    } cases[] = {
        {"9999999999.999999999", REJECT_NONE, 9999999999999999999ULL},  /* 19 digits */
        {"1999999999.9999999999", REJECT_NONE, 2000000000000000000ULL}, /* 20, rounds */
        {"18446744073.709551615", REJECT_NONE, UINT64_MAX},             /* 20 */
        {"18446744073.709551616", REJECT_INVALID_COST, 0},
        {"18446744073.7095516154", REJECT_NONE, UINT64_MAX},
        {"18446744073.7095516155", REJECT_INVALID_COST, 0},
        {"99999999999", REJECT_INVALID_COST, 0},
        {"0.1e1", REJECT_NONE, 1000000000},
        {"0.1E0", REJECT_NONE, 100000000},
        {"0.123456789", REJECT_NONE, 123456789},
        {"0.1234567891", REJECT_NONE, 123456789},
        {"0.1234567895", REJECT_NONE, 123456790},
        {"0.0000000000", REJECT_NONE, 0},
        {"00", REJECT_INVALID_JSON, 0},
        {"0.000000001", REJECT_NONE, 1},
        {"1.", REJECT_INVALID_JSON, 0},
    };
    char json[128];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct event ev;
        int n = snprintf(json, sizeof(json), "{\"cost_usd\":%s}", cases[i].text);
        enum reject_reason got = event_decode(d, json, (size_t)n, &ev);
        if (got != cases[i].reason || (got == REJECT_NONE && ev.cost_nanos != cases[i].nanos))
            fail_msg("cost %s: got %s %llu", cases[i].text, reject_reason_name(got),
                     (unsigned long long)ev.cost_nanos);
    }
    /* Token counts: 16, 17, 19, 20 and 21 digits against the 2^53 cap. */
    static const struct {
        const char *text;
        enum reject_reason reason;
        uint64_t count;
    } counts[] = {
        {"9007199254740992", REJECT_NONE, 9007199254740992ULL},
        {"9007199254740993", REJECT_INVALID_TOKENS, 0},
        {"9007199254740992.0", REJECT_NONE, 9007199254740992ULL},
        {"90071992547409920e-1", REJECT_NONE, 9007199254740992ULL},
        {"1000000000000000000", REJECT_INVALID_TOKENS, 0},
        {"18446744073709551615", REJECT_INVALID_TOKENS, 0},
        {"184467440737095516160", REJECT_INVALID_TOKENS, 0},
        {"0", REJECT_NONE, 0},
        {"5.0", REJECT_NONE, 5},
        {"5.5", REJECT_INVALID_TOKENS, 0},
    };
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
        struct event ev;
        int n =
            snprintf(json, sizeof(json), "{\"cost_usd\":1,\"input_tokens\":%s}", counts[i].text);
        enum reject_reason got = event_decode(d, json, (size_t)n, &ev);
        if (got != counts[i].reason ||
            (got == REJECT_NONE && ev.tokens[TOKEN_INPUT] != counts[i].count))
            fail_msg("tokens %s: got %s %llu", counts[i].text, reject_reason_name(got),
                     (unsigned long long)ev.tokens[TOKEN_INPUT]);
    }
    event_decoder_free(d);
}

enum count_field { TOKENS, GPUS, DURATION };

static void test_counts_and_usage(void **state)
{
    /* Counts accept exactly integral literals (1.0, 1e3) and nothing with a
     * minus sign; duration is an amount like cost, up to 4,000,000 s. */
    static const struct {
        const char *json;
        enum reject_reason reason;
        enum count_field field;
        uint64_t value;
    } cases[] = {
        {"{\"cost_usd\":1,\"input_tokens\":1.0}", REJECT_NONE, TOKENS, 1},
        {"{\"cost_usd\":1,\"input_tokens\":1e3}", REJECT_NONE, TOKENS, 1000},
        {"{\"cost_usd\":1,\"input_tokens\":1.5e1}", REJECT_NONE, TOKENS, 15},
        {"{\"cost_usd\":1,\"input_tokens\":12000e-3}", REJECT_NONE, TOKENS, 12},
        {"{\"cost_usd\":1,\"input_tokens\":0e5}", REJECT_NONE, TOKENS, 0},
        {"{\"cost_usd\":1,\"input_tokens\":9007199254740992}", REJECT_NONE, TOKENS,
         9007199254740992ULL},
        {"{\"cost_usd\":1,\"input_tokens\":15e-1}", REJECT_INVALID_TOKENS, TOKENS, 0},
        {"{\"cost_usd\":1,\"input_tokens\":1e-400}", REJECT_INVALID_TOKENS, TOKENS, 0},
        {"{\"cost_usd\":1,\"input_tokens\":-0}", REJECT_INVALID_TOKENS, TOKENS, 0},
        {"{\"cost_usd\":1,\"input_tokens\":9007199254740993}", REJECT_INVALID_TOKENS, TOKENS, 0},
        {"{\"cost_usd\":1,\"input_tokens\":9007199254740992.5}", REJECT_INVALID_TOKENS, TOKENS, 0},
        {"{\"cost_usd\":1,\"input_tokens\":1.0000000000000000000001}", REJECT_INVALID_TOKENS,
         TOKENS, 0},
        {"{\"cost_usd\":1,\"gpu_count\":8.0,\"duration_seconds\":1}", REJECT_NONE, GPUS, 8},
        {"{\"cost_usd\":1,\"gpu_count\":1e6,\"duration_seconds\":1}", REJECT_NONE, GPUS, 1000000},
        {"{\"cost_usd\":1,\"gpu_count\":1000001}", REJECT_INVALID_USAGE, GPUS, 0},
        {"{\"cost_usd\":1,\"gpu_count\":-0}", REJECT_INVALID_USAGE, GPUS, 0},
        {"{\"cost_usd\":1,\"gpu_count\":1,\"duration_seconds\":3.6e3}", REJECT_NONE, DURATION,
         3600000000000ULL},
        {"{\"cost_usd\":1,\"gpu_count\":1,\"duration_seconds\":4000000}", REJECT_NONE, DURATION,
         4000000000000000ULL},
        {"{\"cost_usd\":1,\"gpu_count\":1,\"duration_seconds\":0.0000000015}", REJECT_NONE,
         DURATION, 2},
        {"{\"cost_usd\":1,\"duration_seconds\":4000000.000000001}", REJECT_INVALID_USAGE, DURATION,
         0},
        {"{\"cost_usd\":1,\"duration_seconds\":-0}", REJECT_INVALID_USAGE, DURATION, 0},
        {"{\"cost_usd\":1,\"duration_seconds\":-0.0}", REJECT_INVALID_USAGE, DURATION, 0},
        /* gpu-nanoseconds overflow 64 bits */
        {"{\"cost_usd\":1,\"gpu_count\":1000000,\"duration_seconds\":4000000}",
         REJECT_INVALID_USAGE, GPUS, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct event ev;
        enum reject_reason got = decode(state, cases[i].json, &ev);
        if (got != cases[i].reason)
            fail_msg("%s: got %s, want %s", cases[i].json, reject_reason_name(got),
                     reject_reason_name(cases[i].reason));
        if (got != REJECT_NONE)
            continue;
        uint64_t value = cases[i].field == TOKENS ? ev.tokens[TOKEN_INPUT]
                         : cases[i].field == GPUS ? ev.gpu_count
                                                  : ev.duration_nanos;
        if (value != cases[i].value)
            fail_msg("%s: got %llu, want %llu", cases[i].json, (unsigned long long)value,
                     (unsigned long long)cases[i].value);
    }
}

static void test_negative_zero_cost(void **state)
{
    struct event ev;
    assert_int_equal(decode(state, "{\"cost_usd\":-0}", &ev), REJECT_INVALID_COST);
    assert_int_equal(decode(state, "{\"cost_usd\":-0e5}", &ev), REJECT_INVALID_COST);
    assert_int_equal(decode(state, "{\"cost_usd\":-1e-400}", &ev), REJECT_INVALID_COST);
    assert_int_equal(decode(state, "{\"cost_usd\":-0.000}", &ev), REJECT_INVALID_COST);
}

static void test_epoch_timestamps(void **state)
{
    static const struct {
        const char *ts;
        enum reject_reason reason;
        int64_t ms;
    } cases[] = {
        {"1795428000.5", REJECT_NONE, 1795428000500LL},
        {"1.7954280005e9", REJECT_NONE, 1795428000500LL},
        /* The window: from 2000-01-01 to now + 1 day (test_timestamp_window). */
        {"946684800", REJECT_NONE, 946684800000LL},
        {"946684800.0005", REJECT_NONE, 946684800001LL},
        {"946684799.9995", REJECT_NONE, 946684800000LL},
        {"946684799.9994999", REJECT_INVALID_TIMESTAMP, 0},
        {"4102444800", REJECT_INVALID_TIMESTAMP, 0},
        {"0.0005", REJECT_INVALID_TIMESTAMP, 0},
        {"-0", REJECT_INVALID_TIMESTAMP, 0},
        {"0", REJECT_INVALID_TIMESTAMP, 0},
        {"4102444800.001", REJECT_INVALID_TIMESTAMP, 0},
        {"-0.001", REJECT_INVALID_TIMESTAMP, 0},
        {"1e400", REJECT_INVALID_TIMESTAMP, 0},
        {"\"2026-11-23T10:00:00\\u002e5Z\"", REJECT_NONE, 1795428000500LL},
    };
    char json[128];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct event ev;
        snprintf(json, sizeof(json), "{\"cost_usd\":1,\"timestamp\":%s}", cases[i].ts);
        enum reject_reason got = decode(state, json, &ev);
        if (got != cases[i].reason || (got == REJECT_NONE && ev.timestamp_ms != cases[i].ms))
            fail_msg("%s: got %s %lld", cases[i].ts, reject_reason_name(got),
                     (long long)ev.timestamp_ms);
    }
}

static void test_surrogate_pairs(void **state)
{
    struct event ev;
    assert_int_equal(decode(state,
                            "{\"cost_usd\":1,\"team\":\"\\ud83d\\ude80\",\"project\":"
                            "\"x\\uD83D\\uDE80y\",\"source\":\"\\udbff\\udfff\"}",
                            &ev),
                     REJECT_NONE);
    assert_label(ev.team, "\xf0\x9f\x9a\x80");
    assert_label(ev.project, "x\xf0\x9f\x9a\x80y");
    assert_label(ev.source, "\xf4\x8f\xbf\xbf");
    static const char *const lone[] = {
        "{\"cost_usd\":1,\"team\":\"\\udc00\"}",
        "{\"cost_usd\":1,\"team\":\"\\ud800\\u0041\"}",
        "{\"cost_usd\":1,\"team\":\"\\ud800x\"}",
        "{\"cost_usd\":1,\"team\":\"\\ud83d\\ud83d\"}",
        "{\"cost_usd\":1,\"team\":\"\\ud83d\\n\"}",
        "{\"cost_usd\":1,\"team\":\"\\ud83d\\u\"}",
        "{\"cost_usd\":1,\"event_id\":\"\\ud800\"}",
        "{\"cost_usd\":1,\"other\":[\"\\udfff\"]}",
        "{\"cost_usd\":1,\"\\ud800\":1}",
    };
    for (size_t i = 0; i < sizeof(lone) / sizeof(lone[0]); i++)
        if (decode(state, lone[i], &ev) != REJECT_INVALID_JSON)
            fail_msg("lone surrogate accepted: %s", lone[i]);
}

static void test_string_escapes_and_control_chars(void **state)
{
    struct event ev;
    assert_int_equal(decode(state,
                            "{\"cost_usd\":1,\"team\":\"a\\/b\\b\\f\\r\\t\",\"project\":"
                            "\"\\u0041\\u00e9\\u20ac\"}",
                            &ev),
                     REJECT_NONE);
    assert_label(ev.team, "a/b\b\f\r\t");
    assert_label(ev.project, "A\xc3\xa9\xe2\x82\xac");
    static const char *const bad[] = {
        "{\"cost_usd\":1,\"team\":\"a\x01\"}",   "{\"cost_usd\":1,\"team\":\"a\tb\"}",
        "{\"cost_usd\":1,\"team\":\"a\nb\"}",    "{\"cost_usd\":1,\"event_id\":\"\x1f\"}",
        "{\"cost_usd\":1,\"other\":\"\x1f\"}",   "{\"cost_usd\":1,\"te\x02\":1}",
        "{\"cost_usd\":1,\"team\":\"\\x41\"}",   "{\"cost_usd\":1,\"team\":\"\\U00e9\"}",
        "{\"cost_usd\":1,\"team\":\"\\u00g9\"}", "{\"cost_usd\":1,\"team\":\"\\u12\"}",
        "{\"cost_usd\":1,\"team\":\"\\'\"}",     "{\"cost_usd\":1,\"team\":\"abc",
        "{\"cost_usd\":1,\"team\":\"abc\\",      "{\"cost_usd\":1,\"team\":\"abc\\\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (decode(state, bad[i], &ev) != REJECT_INVALID_JSON)
            fail_msg("accepted bad string: %s", bad[i]);
    /* A raw control character after the end of a NUL-free prefix: the
     * length, not a NUL, ends the buffer. */
    char raw[] = "{\"cost_usd\":1,\"team\":\"ab\0\"}";
    assert_int_equal(event_decode(*state, raw, sizeof(raw) - 1, &ev), REJECT_INVALID_JSON);
    /* DEL (0x7f) is not a control character for JSON. */
    assert_int_equal(decode(state, "{\"cost_usd\":1,\"team\":\"a\x7f\"}", &ev), REJECT_NONE);
}

static void test_escaped_nul(void **state)
{
    /* "\u0000" is valid JSON, but a label value with a NUL would be cut
     * short by C consumers: invalid_label there, accepted elsewhere. */
    struct event ev;
    assert_int_equal(decode(state, "{\"cost_usd\":1,\"team\":\"a\\u0000b\"}", &ev),
                     REJECT_INVALID_LABEL);
    assert_int_equal(
        decode(state, "{\"cost_usd\":1,\"labels\":{\"environment\":\"\\u0000\"}}", &ev),
        REJECT_INVALID_LABEL);
    assert_int_equal(decode(state, "{\"cost_usd\":1,\"event_id\":\"\\u0000\"}", &ev), REJECT_NONE);
    assert_int_equal(decode(state, "{\"cost_usd\":1,\"other\":[\"\\u0000\"]}", &ev), REJECT_NONE);
    /* A key is compared whole: "team\u0000" is not "team". */
    assert_int_equal(decode(state, "{\"cost_usd\":1,\"team\\u0000\":\"x\"}", &ev), REJECT_NONE);
    assert_label(ev.team, "unattributed");
    assert_int_equal(decode(state, "{\"cost_usd\":1,\"cost_usd\\u0000\":\"x\"}", &ev), REJECT_NONE);
    assert_int_equal(ev.cost_nanos, 1000000000);
}

static void test_escaped_keys(void **state)
{
    struct event ev;
    assert_int_equal(decode(state,
                            "{\"cost\\u005fusd\":2,\"\\u0074eam\":\"ml\",\"labels\":{"
                            "\"env\\u0069ronment\":\"prod\"},\"\\u0070roject\":\"p\\u0021\"}",
                            &ev),
                     REJECT_NONE);
    assert_int_equal(ev.cost_nanos, 2000000000);
    assert_label(ev.team, "ml");
    assert_label(ev.project, "p!");
    assert_label(ev.extra[0], "prod");
    assert_int_equal(decode(state, "{\"cost_usd\":1,\"cost\\u005Fusd\":2}", &ev),
                     REJECT_DUPLICATE_FIELD);
    assert_int_equal(decode(state, "{\"cost_usd\":1,\"Team\":5}", &ev), REJECT_NONE);
}

static void test_many_escaped_strings_keep_their_values(void **state)
{
    /* Escaped values live in the decoder's scratch: each kept one must
     * survive the unescaping of the keys and values after it. */
    struct event ev;
    assert_int_equal(
        decode(
            state,
            "{\"t\\u0065am\":\"\\u00e9a\",\"x\":\"\\u0041\\u0041\\u0041\\u0041\",\"projec\\u0074\":"
            "\"b\\u00e9\",\"source\":\"c\\n\",\"ignored\":{\"k\\u0041\":\"v\\u0042\"},"
            "\"model\":\"\\\"m\\\"\",\"labels\":{\"\\u0063ost_center\":\"c\\u00e7\","
            "\"environment\":\"e\\u00e8\"},\"provider\":\"p\",\"cost_usd\":1}",
            &ev),
        REJECT_NONE);
    assert_label(ev.team, "\xc3\xa9"
                          "a");
    assert_label(ev.project, "b\xc3\xa9");
    assert_label(ev.source, "c\n");
    assert_label(ev.model, "\"m\"");
    assert_label(ev.provider, "p");
    assert_label(ev.extra[0], "e\xc3\xa8");
    assert_label(ev.extra[1], "c\xc3\xa7");
}

static void test_scratch_never_overflows(void **state)
{
    (void)state;
    /* A small max_bytes and an event that is nothing but escapes: the
     * scratch is sized from max_bytes (ASan checks the bound). */
    struct event_decoder *d = decoder_with(1000000000000000ULL, 96, 16);
    assert_non_null(d);
    struct event ev;
    const char *json = "{\"team\":\"\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n"
                       "\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\\n\",\"cost_usd\":1}";
    assert_int_equal(strlen(json), 96);
    assert_int_equal(event_decode(d, json, strlen(json), &ev), REJECT_NONE);
    assert_int_equal(ev.team.len, 36);
    /* The same with every byte of the limit used by escaped label values. */
    json =
        "{\"team\":\"\\u00e9\\u00e9\\u00e9\\u00e9\",\"project\":\"\\t\\t\\t\\t\\t\\t\",\"source\":"
        "\"\\ud83d\\ude80\\ud83d\\ude80\"}";
    assert_true(strlen(json) <= 96);
    assert_int_equal(event_decode(d, json, strlen(json), &ev), REJECT_NONE);
    assert_int_equal(ev.team.len, 8);
    assert_int_equal(ev.project.len, 6);
    assert_int_equal(ev.source.len, 8);
    event_decoder_free(d);
}

static void test_whitespace_variants(void **state)
{
    struct event ev;
    assert_int_equal(decode(state,
                            " \t\r\n{ \"cost_usd\" :\t1 ,\n\"team\"\r:\"a\" , \"x\" : [ 1 , { } ,"
                            " [ ] ] }\n\t ",
                            &ev),
                     REJECT_NONE);
    assert_label(ev.team, "a");
    /* A UTF-8 byte order mark is ignored at the start only. */
    assert_int_equal(decode(state, "\xef\xbb\xbf{\"cost_usd\":1}", &ev), REJECT_NONE);
    assert_int_equal(decode(state, " \xef\xbb\xbf{\"cost_usd\":1}", &ev), REJECT_INVALID_JSON);
    assert_int_equal(decode(state, "{\xef\xbb\xbf\"cost_usd\":1}", &ev), REJECT_INVALID_JSON);
    static const char *const bad[] = {
        "\f{\"cost_usd\":1}",
        "\v{\"cost_usd\":1}",
        "{\"cost_usd\":\f1}",
        "{\"cost_usd\":1\x01}",
        "\xc2\xa0{\"cost_usd\":1}",
        "{\"cost_usd\"\x1f:1}",
        "{\"x\":[1,\x0b 2],\"cost_usd\":1}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (decode(state, bad[i], &ev) != REJECT_INVALID_JSON)
            fail_msg("case %zu: non-JSON whitespace accepted", i);
    char nul_ws[] = "{\"cost_usd\":1,\0\"team\":\"a\"}";
    assert_int_equal(event_decode(*state, nul_ws, sizeof(nul_ws) - 1, &ev), REJECT_INVALID_JSON);
    /* Trailing non-JSON whitespace is trailing data, as before. */
    assert_int_equal(decode(state, "{\"cost_usd\":1}\f", &ev), REJECT_TRAILING_DATA);
}

static void test_strict_grammar(void **state)
{
    static const char *const bad[] = {
        "{\"cost_usd\":+1}",
        "{\"cost_usd\":1.e5}",
        "{\"cost_usd\":01.5}",
        "{\"cost_usd\":-01}",
        "{\"cost_usd\":00}",
        "{\"cost_usd\":0x10}",
        "{\"cost_usd\":1e+}",
        "{\"cost_usd\":1E-}",
        "{\"cost_usd\":-.5}",
        "{\"cost_usd\":1.5.3}",
        "{\"cost_usd\":- 1}",
        "{\"cost_usd\":Infinity}",
        "{\"cost_usd\":NaN}",
        "{\"cost_usd\":1,}",
        "{,}",
        "{\"a\":1 \"b\":2}",
        "{\"a\":[1,]}",
        "{\"a\":[,1]}",
        "{\"a\"}",
        "{\"a\":}",
        "{\"a\" 1}",
        "{'a':1}",
        "{\"a\":tru}",
        "{\"a\":nul}",
        "{\"a\":True}",
        "{\"a\":nulll}",
        "{\"a\":falsey}",
        "{\"a\":{\"b\":1,}}",
        "{\"a\":{\"b\"}}",
        "{\"a\":{1:2}}",
        "{\"a\":[1 2]}",
        "{\"a\":[1}",
        "{\"a\":{]}",
        "{\"team\":\"a\"",
        "{\"team\":",
        "{",
        "{\"a\":1",
        "   ",
        "\xef\xbb\xbf",
        "{\"labels\":{\"environment\":\"a\",}}",
        "{\"labels\":{\"x\"}}",
        "{\"labels\":{",
        "{\"cost_usd\":1e}",
        "{\"a\":\"\\u00",
        "{\"cost_usd\":-}",
        "{\"cost_usd\":1.5e+-3}",
        "{\"cost_usd\":1,\"x\":-a}",
        /* not UTF-8 (RFC 8259 8.1): keys, event_id and any other string */
        "{\"cost_usd\":0.0125,\"event_id\":\"\xff\xfe\"}",
        "{\"cost_usd\":1,\"\xff\":\"x\"}",
    };
    struct event ev;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        enum reject_reason got = decode(state, bad[i], &ev);
        if (got != REJECT_INVALID_JSON)
            fail_msg("%s: got %s, want invalid_json", bad[i], reject_reason_name(got));
    }
    static const char *const good[] = {
        "{\"cost_usd\":1,\"x\":-0.0e-0}",
        "{\"cost_usd\":1,\"x\":[true,false,null,{},[],\"\",0,-1.5E+3,{\"a\":{\"b\":[]}}]}",
        "{\"cost_usd\":1,\"\":\"\"}",
        "{}",
        "{\"cost_usd\":0.0125,\"event_id\":\"\xc3\xa9\xf0\x9f\x9a\x80\"}",
        "{\"cost_usd\":1,\"\xc3\xa9\":\"x\"}",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        enum reject_reason got = decode(state, good[i], &ev);
        if (got != REJECT_NONE)
            fail_msg("%s: got %s, want none", good[i], reject_reason_name(got));
    }
}

static void test_deep_nesting_in_ignored_field(void **state)
{
    struct event ev;
    char json[256];
    /* The top-level object is depth 1: 15 more levels are fine, 16 not. */
    for (int levels = 14; levels <= 17; levels++) {
        char *p = json + sprintf(json, "{\"cost_usd\":1,\"x\":");
        for (int i = 0; i < levels; i++)
            p += sprintf(p, i % 2 ? "{\"k\":" : "[");
        p += sprintf(p, "1");
        for (int i = levels - 1; i >= 0; i--)
            p += sprintf(p, i % 2 ? "}" : "]");
        strcpy(p, "}");
        enum reject_reason want = levels <= 15 ? REJECT_NONE : REJECT_TOO_DEEP;
        enum reject_reason got = decode(state, json, &ev);
        if (got != want)
            fail_msg("%d levels: got %s", levels, reject_reason_name(got));
    }
    /* labels is depth 2; its values nest further. */
    assert_int_equal(
        decode(state, "{\"cost_usd\":1,\"labels\":{\"x\":[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]}}", &ev),
        REJECT_TOO_DEEP);
    struct event_decoder *d = decoder_with(1000000000000000ULL, 65536, 1);
    const char *flat = "{\"cost_usd\":1,\"team\":\"a\"}";
    assert_int_equal(event_decode(d, flat, strlen(flat), &ev), REJECT_NONE);
    const char *labels = "{\"cost_usd\":1,\"labels\":{}}";
    assert_int_equal(event_decode(d, labels, strlen(labels), &ev), REJECT_TOO_DEEP);
    event_decoder_free(d);
    /* Deep nesting far past any stack: rejected at the limit, iteratively. */
    d = decoder_with(1000000000000000ULL, 1 << 20, 1 << 20);
    size_t n = 200000;
    char *big = malloc(2 * n + 64);
    char *p = big + sprintf(big, "{\"cost_usd\":1,\"x\":");
    memset(p, '[', n);
    memset(p + n, ']', n);
    strcpy(p + 2 * n, "}");
    assert_int_equal(event_decode(d, big, strlen(big), &ev), REJECT_NONE);
    event_decoder_free(d);
    free(big);
}

static void test_reason_precedence(void **state)
{
    static const struct reject_case cases[] = {
        /* Syntax and depth outrank any field error before them. */
        {"{\"cost_usd\":-1,\"a\":[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]}", REJECT_TOO_DEEP},
        {"{\"cost_usd\":-1,\"a\":01}", REJECT_INVALID_JSON},
        {"{\"team\":1,\"a\":tru}", REJECT_INVALID_JSON},
        {"{\"cost_usd\":-1} x", REJECT_TRAILING_DATA},
        {"{\"cost_usd\":1,\"cost_usd\":1,\"a\":\"\x01\"}", REJECT_INVALID_JSON},
        /* As with the old prescan: too_deep / bad numbers anywhere first. */
        {"{\"a\" 1,\"b\":[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]}", REJECT_TOO_DEEP},
        {"{\"a\":01,\"b\":[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]}", REJECT_INVALID_JSON},
        {"{\"cost_usd\":1} 01", REJECT_INVALID_JSON},
        {"{\"cost_usd\":1} [[[[[[[[[[[[[[[[[", REJECT_TOO_DEEP},
        {"[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]", REJECT_TOO_DEEP},
        {"[1] [", REJECT_TRAILING_DATA},
        {"{\"a\":1}}", REJECT_TRAILING_DATA},
        {"[01]", REJECT_INVALID_JSON},
        {"[1,", REJECT_INVALID_JSON},
        {"\"a\x01\"", REJECT_INVALID_JSON},
        /* Field errors: the first in member order. */
        {"{\"cost_usd\":-1,\"team\":1}", REJECT_INVALID_COST},
        {"{\"team\":1,\"cost_usd\":-1}", REJECT_WRONG_TYPE},
        {"{\"labels\":{\"environment\":null},\"cost_usd\":-1}", REJECT_WRONG_TYPE},
        {"{\"labels\":{\"other\":[1]},\"cost_usd\":-1}", REJECT_WRONG_TYPE},
        {"{\"cost_usd\":null,\"cost_usd\":1}", REJECT_DUPLICATE_FIELD},
        {"{\"gpu_count\":\"1\",\"gpu_count\":1}", REJECT_WRONG_TYPE},
        {"{\"labels\":null,\"labels\":{}}", REJECT_DUPLICATE_FIELD},
        {"{\"cost_usd\":1,\"request_id\":{}}", REJECT_WRONG_TYPE},
        {"{\"cost_usd\":1,\"timestamp\":true}", REJECT_WRONG_TYPE},
        {"{\"cost_usd\":1,\"model\":[\"a\"]}", REJECT_WRONG_TYPE},
        {"{\"cost_usd\":{\"a\":1}}", REJECT_WRONG_TYPE},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct event ev;
        enum reject_reason got = decode(state, cases[i].json, &ev);
        if (got != cases[i].reason)
            fail_msg("case %zu %s: got %s, want %s", i, cases[i].json, reject_reason_name(got),
                     reject_reason_name(cases[i].reason));
    }
}

static void test_labels_object(void **state)
{
    struct event ev;
    assert_int_equal(decode(state,
                            "{\"cost_usd\":1,\"labels\":{\"environment\":\"a\",\"environment\":"
                            "\"b\",\"cost_center\":\"\",\"x\":\"y\"}}",
                            &ev),
                     REJECT_NONE);
    assert_label(ev.extra[0], "b"); /* a repeated key: the last wins, as before */
    assert_int_equal(ev.extra[1].len, 0);
    assert_int_equal(decode(state, "{\"cost_usd\":1,\"labels\":null}", &ev), REJECT_NONE);
    assert_int_equal(decode(state, "{\"cost_usd\":1,\"labels\":{ }}", &ev), REJECT_NONE);
    assert_int_equal(decode(state, "{\"cost_usd\":1,\"labels\":{\"x\":1}}", &ev),
                     REJECT_WRONG_TYPE);
    assert_int_equal(
        decode(state, "{\"cost_usd\":1,\"labels\":{\"environment\":\"__overflow__\"}}", &ev),
        REJECT_INVALID_LABEL);
}

/* Decodes text from a buffer of exactly its length (so a sanitizer sees
 * any read past it) and checks the reason and, if accepted, the team. */
static void check_exact(void **state, const char *text, size_t len, enum reject_reason want,
                        const char *team)
{
    char *buf = malloc(len);
    assert_non_null(buf);
    memcpy(buf, text, len);
    struct event ev;
    enum reject_reason got = event_decode(*state, buf, len, &ev);
    if (got != want)
        fail_msg("%s, want %s: %.*s", reject_reason_name(got), reject_reason_name(want), (int)len,
                 text);
    if (want == REJECT_NONE)
        assert_label(ev.team, team);
    free(buf);
}

/* The string scan steps over 8 or 16 bytes at a time: a closing quote,
 * backslash, control byte or non-ASCII byte at every offset from the
 * string's start, with the string far from the end of the text and as its
 * last bytes (where the scan cannot take whole steps). */
static void test_string_scan_offsets(void **state)
{
    static const char *const tails[] = {"}", ",\"cost_usd\":1,\"other\":\"xxxxxxxxxxxxxxxx\"}"};
    for (size_t t = 0; t < 2; t++) {
        for (size_t k = 0; k <= 40; k++) {
            char a[64], text[256], want[128];
            memset(a, 'a', k);
            a[k] = '\0';
            /* Quote at offset k. */
            int n = snprintf(text, sizeof(text), "{\"team\":\"%s\"%s", a, tails[t]);
            check_exact(state, text, (size_t)n, REJECT_NONE, k ? a : "unattributed");
            /* Escape at offset k, then more plain bytes. */
            n = snprintf(text, sizeof(text), "{\"team\":\"%s\\nbcdefghijklmnopq\"%s", a, tails[t]);
            snprintf(want, sizeof(want), "%s\nbcdefghijklmnopq", a);
            check_exact(state, text, (size_t)n, REJECT_NONE, want);
            /* Invalid UTF-8 before an escape further on. */
            n = snprintf(text, sizeof(text),
                         "{\"team\":\"%s\xff"
                         "bcdefghijklmnopq\\n\"%s",
                         a, tails[t]);
            check_exact(state, text, (size_t)n, REJECT_INVALID_LABEL, NULL);
            /* A control byte at offset k. */
            n = snprintf(text, sizeof(text),
                         "{\"team\":\"%s\x01"
                         "bcdefghijklmnopq\"%s",
                         a, tails[t]);
            check_exact(state, text, (size_t)n, REJECT_INVALID_JSON, NULL);
            /* Non-ASCII at offset k: valid, then invalid UTF-8. */
            n = snprintf(text, sizeof(text),
                         "{\"team\":\"%s\xc3\xa9"
                         "bcdefghijklmnopq\"%s",
                         a, tails[t]);
            snprintf(want, sizeof(want),
                     "%s\xc3\xa9"
                     "bcdefghijklmnopq",
                     a);
            check_exact(state, text, (size_t)n, REJECT_NONE, want);
            n = snprintf(text, sizeof(text),
                         "{\"team\":\"%s\x80"
                         "bcdefghijklmnopq\"%s",
                         a, tails[t]);
            check_exact(state, text, (size_t)n, REJECT_INVALID_LABEL, NULL);
            /* Invalid UTF-8 as the string's last byte, right before the
             * quote, and non-ASCII bytes right after it (another string's,
             * not this one's). */
            n = snprintf(text, sizeof(text), "{\"team\":\"%s\xff\"%s", a, tails[t]);
            check_exact(state, text, (size_t)n, REJECT_INVALID_LABEL, NULL);
            n = snprintf(text, sizeof(text), "{\"team\":\"%s\",\"x\":\"\xff\xff\"%s", a, tails[t]);
            check_exact(state, text, (size_t)n, REJECT_INVALID_JSON, NULL);
            n = snprintf(text, sizeof(text), "{\"team\":\"%s\",\"x\":\"\xc3\xa9\"%s", a, tails[t]);
            check_exact(state, text, (size_t)n, REJECT_NONE, k ? a : "unattributed");
            /* Unterminated at every length. */
            n = snprintf(text, sizeof(text), "{\"cost_usd\":1,\"team\":\"%s", a);
            check_exact(state, text, (size_t)n, REJECT_INVALID_JSON, NULL);
        }
    }
}

static void test_utf8_valid_fast_path(void **state)
{
    (void)state;
    char s[64];
    memset(s, 'a', sizeof(s));
    assert_true(utf8_valid(s, sizeof(s)));
    assert_true(utf8_valid(s, 0));
    /* An invalid byte at every offset, and a valid 2-byte sequence split
     * across an 8-byte boundary. */
    for (size_t i = 0; i < sizeof(s); i++) {
        memset(s, 'a', sizeof(s));
        s[i] = (char)0xff;
        assert_false(utf8_valid(s, sizeof(s)));
        assert_true(utf8_valid(s, i));
        if (i + 1 < sizeof(s)) {
            s[i] = (char)0xc3;
            s[i + 1] = (char)0xa9;
            assert_true(utf8_valid(s, sizeof(s)));
            assert_false(utf8_valid(s, i + 1)); /* truncated */
        }
    }
    assert_false(utf8_valid("aaaaaaaa\xed\xa0\x80", 11));     /* surrogate */
    assert_false(utf8_valid("aaaaaaaa\xf0\x80\x80\x80", 12)); /* overlong */
    assert_true(utf8_valid("aaaaaaaa\xf0\x9f\x9a\x80", 12));
}

/* Invalid UTF-8 is rejected wherever it is: a label value as invalid_label,
 * any other string (keys at every level, event_id, request_id, values of
 * unknown fields and ignored labels) as invalid_json. Each broken sequence
 * kind: a stray continuation byte, an overlong form, a surrogate, a
 * truncated sequence, a code point above U+10FFFF, 0xff. */
/* format with its '@' replaced by bytes. */
static void subst(char *out, size_t len, const char *format, const char *bytes)
{
    const char *at = strchr(format, '@');
    assert_non_null(at);
    int n = snprintf(out, len, "%.*s%s%s", (int)(at - format), format, bytes, at + 1);
    assert_true(n > 0 && (size_t)n < len);
}

static void test_utf8_everywhere(void **state)
{
    static const char *const bad_seq[] = {"\x80",     "\xc0\x80",         "\xed\xa0\x80",
                                          "\xe2\x82", "\xf4\x90\x80\x80", "\xff"};
    static const struct {
        const char *format; /* @: the bytes */
        enum reject_reason reason;
    } places[] = {
        {"{\"cost_usd\":1,\"event_id\":\"id-@\"}", REJECT_INVALID_JSON},
        {"{\"cost_usd\":1,\"request_id\":\"@\"}", REJECT_INVALID_JSON},
        {"{\"cost_usd\":1,\"te@am\":\"x\"}", REJECT_INVALID_JSON},
        {"{\"@\":1,\"cost_usd\":1}", REJECT_INVALID_JSON},
        {"{\"cost_usd\":1,\"x\":{\"k@\":1}}", REJECT_INVALID_JSON},
        {"{\"cost_usd\":1,\"x\":[\"a\",\"@\"]}", REJECT_INVALID_JSON},
        {"{\"cost_usd\":1,\"labels\":{\"env@\":\"x\"}}", REJECT_INVALID_JSON},
        {"{\"cost_usd\":1,\"labels\":{\"other\":\"@\"}}", REJECT_INVALID_JSON},
        {"{\"cost_usd\":1,\"event_id\":\"a\\n@\"}", REJECT_INVALID_JSON}, /* escaped too */
        /* a syntax error wins over a field error before it */
        {"{\"cost_usd\":-1,\"event_id\":\"@\"}", REJECT_INVALID_JSON},
        {"{\"cost_usd\":1,\"team\":\"@\"}", REJECT_INVALID_LABEL},
        {"{\"cost_usd\":1,\"labels\":{\"environment\":\"@\"}}", REJECT_INVALID_LABEL},
        {"{\"cost_usd\":1,\"timestamp\":\"@\"}", REJECT_INVALID_JSON},
    };
    char json[256];
    struct event ev;
    for (size_t p = 0; p < sizeof(places) / sizeof(places[0]); p++) {
        for (size_t b = 0; b < sizeof(bad_seq) / sizeof(bad_seq[0]); b++) {
            subst(json, sizeof(json), places[p].format, bad_seq[b]);
            enum reject_reason got = decode(state, json, &ev);
            if (got != places[p].reason)
                fail_msg("%s: got %s, want %s", json, reject_reason_name(got),
                         reject_reason_name(places[p].reason));
        }
        /* The same place with valid UTF-8 (2, 3 and 4 bytes) is accepted,
         * except the timestamp. */
        subst(json, sizeof(json), places[p].format, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x9a\x80");
        enum reject_reason want = strstr(places[p].format, "timestamp") ? REJECT_INVALID_TIMESTAMP
                                  : strstr(places[p].format, "-1")      ? REJECT_INVALID_COST
                                                                        : REJECT_NONE;
        enum reject_reason got = decode(state, json, &ev);
        if (got != want)
            fail_msg("%s: got %s, want %s", json, reject_reason_name(got),
                     reject_reason_name(want));
    }
    /* Escapes always encode valid UTF-8. */
    assert_int_equal(decode(state, "{\"cost_usd\":1,\"event_id\":\"\\u00e9\\ud83d\\ude80\"}", &ev),
                     REJECT_NONE);
}

static int64_t fake_now;
static int64_t fake_clock(void)
{
    return fake_now;
}

/* Timestamps are accepted from 2000-01-01T00:00:00Z to the clock plus
 * max_future_ms; the clock is re-read when a timestamp passes the bound. */
static void test_timestamp_window(void **state)
{
    (void)state;
    fake_now = 1795428000000LL; /* 2026-11-23T10:00:00Z */
    struct event_limits limits = {
        .max_bytes = 4096,
        .max_cost_nanos = 1000000000ULL,
        .max_label_bytes = 128,
        .max_depth = 16,
        .unattributed_label = "unattributed",
        .max_future_ms = 3600000, /* 1 h */
        .now_ms = fake_clock,
    };
    struct event_decoder *d = event_decoder_new(&limits);
    assert_non_null(d);
    static const struct {
        const char *ts;
        enum reject_reason reason;
    } cases[] = {
        {"\"2026-11-23T11:00:00Z\"", REJECT_NONE}, /* now + 1 h */
        {"\"2026-11-23T11:00:00.001Z\"", REJECT_INVALID_TIMESTAMP},
        {"\"2026-11-23T12:00:00+01:00\"", REJECT_NONE}, /* the same instant */
        {"\"2026-11-23T12:00:01+01:00\"", REJECT_INVALID_TIMESTAMP},
        {"\"9999-12-31T23:59:59Z\"", REJECT_INVALID_TIMESTAMP},
        {"\"2100-01-01T00:00:00Z\"", REJECT_INVALID_TIMESTAMP},
        {"\"2000-01-01T00:00:00Z\"", REJECT_NONE},
        {"\"1999-12-31T23:59:59.999Z\"", REJECT_INVALID_TIMESTAMP},
        {"\"2000-01-01T00:30:00+01:00\"", REJECT_INVALID_TIMESTAMP}, /* 1999-12-31T23:30Z */
        {"\"0000-01-01T00:00:00Z\"", REJECT_INVALID_TIMESTAMP},
        {"1795431600", REJECT_NONE}, /* epoch seconds, now + 1 h */
        {"1795431600.001", REJECT_INVALID_TIMESTAMP},
        {"946684800", REJECT_NONE},
        {"946684799.999", REJECT_INVALID_TIMESTAMP},
    };
    char json[128];
    struct event ev;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int n = snprintf(json, sizeof(json), "{\"cost_usd\":1,\"timestamp\":%s}", cases[i].ts);
        enum reject_reason got = event_decode(d, json, (size_t)n, &ev);
        if (got != cases[i].reason)
            fail_msg("%s: got %s, want %s", cases[i].ts, reject_reason_name(got),
                     reject_reason_name(cases[i].reason));
    }
    /* A rejected event counts nothing, so the freshness gauge stays put. */
    const char *late = "{\"cost_usd\":1,\"timestamp\":\"2026-11-24T10:00:00Z\"}";
    assert_int_equal(event_decode(d, late, strlen(late), &ev), REJECT_INVALID_TIMESTAMP);
    /* A day later the same timestamp is within the window. */
    fake_now += 86400000;
    assert_int_equal(event_decode(d, late, strlen(late), &ev), REJECT_NONE);
    assert_int_equal(ev.timestamp_ms, 1795514400000LL);
    event_decoder_free(d);
}

/* Per-event caps on quantities (events.max_tokens, events.max_gpu_seconds),
 * and GPU usage counted in micro-GPU-seconds rounded half up. */
static void test_quantity_caps(void **state)
{
    (void)state;
    struct event_limits limits = {
        .max_bytes = 4096,
        .max_cost_nanos = 1000000000ULL,
        .max_label_bytes = 128,
        .max_depth = 16,
        .unattributed_label = "unattributed",
        .max_tokens = 1000,
        .max_gpu_nanos = 3600ULL * 1000000000ULL, /* 1 GPU-hour */
    };
    struct event_decoder *d = event_decoder_new(&limits);
    assert_non_null(d);
    static const struct {
        const char *json;
        enum reject_reason reason;
        uint64_t gpu_micros;
    } cases[] = {
        {"{\"cost_usd\":1,\"output_tokens\":1000}", REJECT_NONE, 0},
        {"{\"cost_usd\":1,\"output_tokens\":1001}", REJECT_INVALID_TOKENS, 0},
        {"{\"cost_usd\":1,\"input_tokens\":1e3,\"cached_input_tokens\":1e12}",
         REJECT_INVALID_TOKENS, 0},
        {"{\"cost_usd\":1,\"cache_write_tokens\":1000.0000001}", REJECT_INVALID_TOKENS, 0},
        {"{\"cost_usd\":1,\"gpu_count\":2,\"duration_seconds\":1800}", REJECT_NONE, 3600000000ULL},
        {"{\"cost_usd\":1,\"gpu_count\":2,\"duration_seconds\":1800.0000000004}", REJECT_NONE,
         3600000000ULL}, /* the cap applies to the rounded duration: 1800 s */
        {"{\"cost_usd\":1,\"gpu_count\":2,\"duration_seconds\":1800.0000000005}",
         REJECT_INVALID_USAGE, 0}, /* rounds to 1800.000000001 s */
        {"{\"cost_usd\":1,\"gpu_count\":2,\"duration_seconds\":1800.000000001}",
         REJECT_INVALID_USAGE, 0},
        {"{\"cost_usd\":1,\"gpu_count\":1000000,\"duration_seconds\":4000000}",
         REJECT_INVALID_USAGE, 0},
        {"{\"cost_usd\":1,\"gpu_count\":3,\"duration_seconds\":0.0000005}", REJECT_NONE, 2},
        {"{\"cost_usd\":1,\"gpu_count\":1,\"duration_seconds\":0.000000499}", REJECT_NONE, 0},
        {"{\"cost_usd\":1,\"gpu_count\":1,\"duration_seconds\":0.0000005}", REJECT_NONE, 1},
        {"{\"cost_usd\":1,\"gpu_count\":8,\"duration_seconds\":3.000001}", REJECT_NONE, 24000008},
    };
    struct event ev;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        enum reject_reason got = event_decode(d, cases[i].json, strlen(cases[i].json), &ev);
        if (got != cases[i].reason || (got == REJECT_NONE && ev.gpu_micros != cases[i].gpu_micros))
            fail_msg("%s: got %s %llu", cases[i].json, reject_reason_name(got),
                     (unsigned long long)ev.gpu_micros);
    }
    event_decoder_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_full_event, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gpu_event, setup, teardown),
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_cost_decodes_without_cost, setup, teardown),
        cmocka_unit_test_setup_teardown(test_whitespace_around_is_fine, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_nul_terminated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reject_reasons, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kind_reject_reasons, setup, teardown),
        cmocka_unit_test(test_every_reason_is_covered),
        cmocka_unit_test_setup_teardown(test_too_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_label_length_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_valid_event_and_reuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_utf8_and_escapes, setup, teardown),
        cmocka_unit_test(test_rfc3339),
        cmocka_unit_test(test_rfc3339_shapes),
        cmocka_unit_test_setup_teardown(test_cost_exponents_and_rounding, setup, teardown),
        cmocka_unit_test(test_cost_beyond_double_exactness),
        cmocka_unit_test_setup_teardown(test_long_digit_strings, setup, teardown),
        cmocka_unit_test(test_amount_fast_path_limits),
        cmocka_unit_test_setup_teardown(test_counts_and_usage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_negative_zero_cost, setup, teardown),
        cmocka_unit_test_setup_teardown(test_epoch_timestamps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_surrogate_pairs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_string_escapes_and_control_chars, setup, teardown),
        cmocka_unit_test_setup_teardown(test_escaped_nul, setup, teardown),
        cmocka_unit_test_setup_teardown(test_escaped_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_escaped_strings_keep_their_values, setup,
                                        teardown),
        cmocka_unit_test(test_scratch_never_overflows),
        cmocka_unit_test_setup_teardown(test_whitespace_variants, setup, teardown),
        cmocka_unit_test_setup_teardown(test_strict_grammar, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deep_nesting_in_ignored_field, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reason_precedence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_labels_object, setup, teardown),
        cmocka_unit_test(test_utf8_valid_fast_path),
        cmocka_unit_test_setup_teardown(test_string_scan_offsets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_utf8_everywhere, setup, teardown),
        cmocka_unit_test(test_timestamp_window),
        cmocka_unit_test(test_quantity_caps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

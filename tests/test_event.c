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

static void test_every_reason_is_covered(void **state)
{
    (void)state;
    /* Each reason except none/too_large/unpriced (decided elsewhere or
     * tested separately) appears in the table above. */
    for (int r = 1; r < REJECT_REASON_COUNT; r++) {
        if (r == REJECT_TOO_LARGE || r == REJECT_UNPRICED)
            continue;
        bool found = false;
        for (size_t i = 0; i < sizeof(reject_cases) / sizeof(reject_cases[0]); i++)
            found |= reject_cases[i].reason == (enum reject_reason)r;
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
        cmocka_unit_test(test_every_reason_is_covered),
        cmocka_unit_test_setup_teardown(test_too_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_label_length_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_valid_event_and_reuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_utf8_and_escapes, setup, teardown),
        cmocka_unit_test(test_rfc3339),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

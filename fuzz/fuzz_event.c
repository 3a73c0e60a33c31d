/*
 * fuzz_event.c - libFuzzer target for the event decoder, the parser of
 * every byte that arrives from Kafka or a file, checked differentially
 * against cJSON as an oracle.
 *
 * Beyond "never crash", for every input:
 *  - accepted: the labels are valid UTF-8 within the length limit and never
 *    the reserved overflow value, the amounts are within their bounds, and
 *    cJSON parses the same bytes to an object (with only whitespace after
 *    it) whose fields agree: labels byte-equal to cJSON's strings after the
 *    defaults, token and GPU counts equal, cost and duration equal to the
 *    nano-unit nearest cJSON's double (exactly, unless that double is too
 *    close to a rounding tie to tell), timestamps equal.
 *  - a field error (wrong_type, invalid_cost, ...), not_object: our parser
 *    found valid JSON, so cJSON must parse it completely too.
 *  - invalid_json: if cJSON parses the whole input, the input must use one
 *    of cJSON's known leniencies (see scan()); conversely an accepted input
 *    or one with a field error must use none of them.
 *  - invalid UTF-8 (cJSON takes any bytes in strings): a text that is not
 *    valid UTF-8 is never accepted, and is rejected as invalid_json unless
 *    a label value was found invalid (invalid_label) first; accepted
 *    timestamps are within 2000-01-01 .. now + 1 day, token counts within
 *    events.max_tokens, GPU usage within events.max_gpu_seconds and its
 *    micro-GPU-seconds the product rounded half up.
 * The only valid JSON cJSON rejects: a number token longer than 63 bytes
 * (cJSON copies at most 63 bytes of a number before strtod), and a UTF-8
 * byte order mark in a buffer shorter than 5 bytes (which it then fails to
 * skip, e.g. BOM + "1").
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <time.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "money.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_BYTES     65536
#define MAX_COST      (1000000ULL * NANOS_PER_UNIT)
#define MAX_TOKENS    1000000000ULL
#define MAX_GPU_NANOS (1000000000ULL * NANOS_PER_UNIT)

static void check_label(struct label_value v)
{
    if (v.len == 0 || v.len > 128 || !utf8_valid(v.ptr, v.len))
        abort();
    if (v.len == 12 && memcmp(v.ptr, COUNTER_OVERFLOW_VALUE, 12) == 0)
        abort();
    if (memchr(v.ptr, '\0', v.len))
        abort();
}

/* What cJSON does differently from RFC 8259 that shows in the bytes. */
struct scan {
    bool lenient;     /* something cJSON accepts and JSON does not */
    bool cjson_fails; /* valid JSON cJSON rejects: a number token longer
                       * than 63 bytes, or a BOM in fewer than 5 bytes */
    bool escaped_nul; /* "\u0000": cJSON's C strings end there */
    bool bad_utf8;    /* the bytes are not UTF-8 (outside strings too) */
};

static bool is_hex(uint8_t c)
{
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

static bool is_num(uint8_t c)
{
    return (c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-';
}

/*
 * A lexer that knows where strings are. cJSON's leniencies: any byte up to
 * 0x20 (NUL included) as whitespace; raw control bytes inside strings; a
 * "\u" escape whose 4 characters are not all hex (parsed as U+0000); and
 * strtod's number grammar: leading zeros ("01", "-00.5"), a '.' without
 * digits after it ("1.", "1.e5") or before it ("-.5").
 */
static struct scan scan(const uint8_t *s, size_t n)
{
    struct scan r = {false, false, false, !utf8_valid((const char *)s, n)};
    /* cJSON skips a byte order mark only in a buffer of 5 bytes or more. */
    if (n < 5 && n >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0)
        r.cjson_fails = true;
    bool in_string = false;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        if (in_string) {
            if (c == '"') {
                in_string = false;
            } else if (c == '\\' && i + 1 < n) {
                if (s[i + 1] == 'u') {
                    bool hex = i + 6 <= n;
                    for (size_t k = 2; hex && k < 6; k++)
                        hex = is_hex(s[i + k]);
                    if (!hex)
                        r.lenient = true;
                    else if (memcmp(s + i + 2, "0000", 4) == 0)
                        r.escaped_nul = true;
                }
                i++;
            } else if (c < 0x20) {
                r.lenient = true;
            }
            continue;
        }
        if (c == '"') {
            in_string = true;
        } else if (c < 0x20 && c != ' ' && c != '\t' && c != '\n' && c != '\r') {
            r.lenient = true;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            size_t j = i;
            if (s[j] == '-')
                j++;
            if (j < n && s[j] == '.')
                r.lenient = true;
            if (j + 1 < n && s[j] == '0' && s[j + 1] >= '0' && s[j + 1] <= '9')
                r.lenient = true;
            while (j < n && s[j] >= '0' && s[j] <= '9')
                j++;
            if (j < n && s[j] == '.' && (j + 1 >= n || s[j + 1] < '0' || s[j + 1] > '9'))
                r.lenient = true;
            size_t k = i;
            while (k < n && is_num(s[k]))
                k++;
            if (k - i > 63)
                r.cjson_fails = true;
            i = k - 1;
        }
    }
    return r;
}

static bool only_ws(const char *p, const char *end)
{
    for (; p < end; p++)
        if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
            return false;
    return true;
}

static const cJSON *member(const cJSON *root, const char *name)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, name);
    return cJSON_IsNull(item) ? NULL : item; /* null means absent */
}

static void expect_label(struct label_value got, const cJSON *item, const char *fallback)
{
    const char *want = fallback;
    if (item) {
        if (!cJSON_IsString(item))
            abort();
        if (item->valuestring[0])
            want = item->valuestring;
    }
    if (got.len != strlen(want) || memcmp(got.ptr, want, got.len) != 0)
        abort();
}

/*
 * nanos must be the nano-unit nearest v. cJSON's strtod is correctly
 * rounded, so v * 1e9 is within e of the literal's exact scaled value;
 * unless that is within e of a tie, rounding either gives the same integer.
 * (Ties and near-ties: our exact decimal rounding may differ by one.)
 */
static void expect_amount(uint64_t nanos, const cJSON *item)
{
    if (!cJSON_IsNumber(item))
        abort();
    double v = item->valuedouble;
    if (!isfinite(v) || v < 0)
        abort();
    long double scaled = (long double)v * 1e9L;
    long double nearest = roundl(scaled);
    long double e = scaled * 0x1p-52L + 1e-9L;
    long double from_tie = fabsl(scaled - floorl(scaled) - 0.5L);
    long double diff = (long double)nanos - nearest;
    if (from_tie > e ? diff != 0 : fabsl(diff) > 1)
        abort();
}

static void expect_count(uint64_t got, const cJSON *item)
{
    if (!item) {
        if (got != 0)
            abort();
        return;
    }
    /* Accepted counts are integers <= 2^53: exact in a double. */
    if (!cJSON_IsNumber(item) || item->valuedouble != (double)got)
        abort();
}

static void compare(const struct event *ev, const cJSON *root)
{
    expect_label(ev->team, member(root, "team"), "unattributed");
    expect_label(ev->project, member(root, "project"), "unattributed");
    expect_label(ev->source, member(root, "source"), "unknown");
    expect_label(ev->provider, member(root, "provider"), "unknown");
    expect_label(ev->model, member(root, "model"), "unknown");
    expect_label(ev->instance_type, member(root, "instance_type"), "unknown");
    expect_label(ev->gpu_type, member(root, "gpu_type"), "unknown");

    const cJSON *labels = member(root, "labels");
    const cJSON *env = NULL;
    if (labels && !cJSON_IsObject(labels))
        abort();
    for (const cJSON *l = labels ? labels->child : NULL; l; l = l->next) {
        if (!cJSON_IsString(l))
            abort();
        if (strcmp(l->string, "environment") == 0)
            env = l; /* the last one wins */
    }
    if (env) {
        if (ev->extra[0].len != strlen(env->valuestring) ||
            memcmp(ev->extra[0].ptr, env->valuestring, ev->extra[0].len) != 0)
            abort();
    } else if (ev->extra[0].len != 0) {
        abort();
    }

    const cJSON *cost = member(root, "cost_usd");
    if (ev->has_cost != (cost != NULL))
        abort();
    if (cost)
        expect_amount(ev->cost_nanos, cost);

    static const char *const token_fields[TOKEN_KIND_COUNT] = {
        "input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens"};
    for (int k = 0; k < TOKEN_KIND_COUNT; k++)
        expect_count(ev->tokens[k], member(root, token_fields[k]));

    const cJSON *count = member(root, "gpu_count");
    const cJSON *duration = member(root, "duration_seconds");
    expect_count(ev->gpu_count, count);
    if (duration)
        expect_amount(ev->duration_nanos, duration);
    else if (ev->duration_nanos)
        abort();
    if (ev->has_gpu != (count && duration))
        abort();

    const cJSON *ts = member(root, "timestamp");
    if (ev->has_timestamp != (ts != NULL))
        abort();
    if (cJSON_IsString(ts)) {
        int64_t ms;
        if (parse_rfc3339(ts->valuestring, strlen(ts->valuestring), &ms) || ms != ev->timestamp_ms)
            abort();
    } else if (ts) {
        if (!cJSON_IsNumber(ts))
            abort();
        long double want = roundl((long double)ts->valuedouble * 1000.0L);
        if (fabsl(want - (long double)ev->timestamp_ms) > 1)
            abort();
    }
    const cJSON *id = member(root, "event_id"), *req = member(root, "request_id");
    if ((id && !cJSON_IsString(id)) || (req && !cJSON_IsString(req)))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct event_decoder *decoder;
    static const char *const extra[] = {"environment"};
    if (!decoder) {
        struct event_limits limits = {
            .max_bytes = MAX_BYTES,
            .max_cost_nanos = MAX_COST,
            .max_label_bytes = 128,
            .max_depth = 16,
            .unattributed_label = "unattributed",
            .extra_label_count = 1,
            .extra_label_names = extra,
            .max_tokens = MAX_TOKENS,
            .max_gpu_nanos = MAX_GPU_NANOS,
            .max_future_ms = 86400000,
        };
        decoder = event_decoder_new(&limits);
        if (!decoder)
            abort();
    }
    struct event ev;
    const char *text = (const char *)data;
    enum reject_reason reason = event_decode(decoder, text, size, &ev);
    if (reason == REJECT_NONE) {
        check_label(ev.team);
        check_label(ev.project);
        check_label(ev.source);
        check_label(ev.provider);
        check_label(ev.model);
        check_label(ev.instance_type);
        check_label(ev.gpu_type);
        if (ev.extra[0].len)
            check_label(ev.extra[0]);
        if (ev.has_cost && ev.cost_nanos > MAX_COST)
            abort();
        if (ev.duration_nanos > MONEY_EXACT_MAX_UNITS * NANOS_PER_UNIT)
            abort();
        for (int k = 0; k < TOKEN_KIND_COUNT; k++)
            if (ev.tokens[k] > MAX_TOKENS)
                abort();
        if (ev.gpu_count > EVENT_MAX_GPU_COUNT)
            abort();
        if (ev.has_gpu) {
            unsigned __int128 product = (unsigned __int128)ev.gpu_count * ev.duration_nanos;
            if (product > MAX_GPU_NANOS || ev.gpu_micros != (uint64_t)((product + 500) / 1000))
                abort();
        } else if (ev.gpu_micros) {
            abort();
        }
        if (ev.has_timestamp && (ev.timestamp_ms < EVENT_MIN_TIMESTAMP_MS ||
                                 ev.timestamp_ms > ((int64_t)time(NULL) + 86400 + 1) * 1000))
            abort();
        if (scan(data, size).bad_utf8)
            abort();
    }
    if (size == 0 || size > MAX_BYTES || reason == REJECT_TOO_DEEP)
        return 0;

    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, size, &end, 0);
    bool whole = root && only_ws(end, text + size);
    struct scan sc = scan(data, size);
    switch (reason) {
    case REJECT_INVALID_JSON:
        if (whole && !sc.lenient && !sc.bad_utf8)
            abort();
        break;
    case REJECT_TRAILING_DATA:
        if (!root && !sc.cjson_fails)
            abort();
        if (whole)
            abort();
        break;
    case REJECT_NOT_OBJECT:
        if (!whole ? !sc.cjson_fails : cJSON_IsObject(root))
            abort();
        if (sc.lenient || sc.bad_utf8)
            abort();
        break;
    case REJECT_NONE:
        /* Strictly valid JSON never matches a leniency: this catches our
         * decoder growing one that cJSON shares (e.g. "01"). */
        if (sc.lenient)
            abort();
        if (!whole) {
            if (!sc.cjson_fails)
                abort();
            break;
        }
        if (!cJSON_IsObject(root))
            abort();
        if (!sc.escaped_nul) /* else cJSON's keys and strings are cut short */
            compare(&ev, root);
        break;
    default:
        /* A field error: the text itself was valid JSON, and an object. */
        if (!whole ? !sc.cjson_fails : !cJSON_IsObject(root))
            abort();
        if (sc.lenient)
            abort();
        /* Invalid UTF-8 outside a label value is a syntax error, which
         * wins over any field error. */
        if (sc.bad_utf8 && reason != REJECT_INVALID_LABEL)
            abort();
        break;
    }
    cJSON_Delete(root);
    return 0;
}

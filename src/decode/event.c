/*
 * event.c - JSON cost event decoding and validation (see event.h).
 *
 * Job: turn the bytes of one message into a struct event, or into exactly
 * one reject reason, fast enough that decoding is not the bottleneck of a
 * core (the decoder runs once per event, millions of times a second).
 *
 * Design: a hand-rolled, strict RFC 8259 parser specialised for the event
 * object, in one pass over the bytes with no allocation per event:
 *  - The top-level object's members are dispatched on the key as they are
 *    read (switch on length, then memcmp), and each known value is checked
 *    and converted in place. Unknown values are skipped by an iterative
 *    validator (skip_value) that enforces the grammar and the depth limit
 *    without recursion, so a hostile max_depth cannot exhaust the stack.
 *  - Strings are scanned 16 bytes at a time (SSE2, the x86-64 baseline;
 *    elsewhere 8 at a time, SWAR) for '"', '\\' and control bytes, jumping
 *    to the first one found. A string without escapes is returned as a
 *    pointer into the input; one with escapes is unescaped into the
 *    decoder's scratch buffer, which is sized from max_bytes at creation:
 *    an unescaped string is never longer than its source text, so all
 *    strings of an event fit.
 *  - Numbers are never converted through a double. Their text is split into
 *    integer digits, fraction digits and a decimal exponent, and amounts are
 *    computed from the digits by moving the decimal point (decimal_to_fixed):
 *    exact for every literal, "1e3" and "1.5E-3" included, with rounding to
 *    the nearest unit (ties away from zero) only past the 9th decimal.
 *
 * Choices where JSON or the contract leave room (docs/events.md):
 *  - Whitespace is only space, tab, CR, LF. A UTF-8 byte order mark at the
 *    very start is skipped (RFC 8259 section 8.1 allows ignoring it; cJSON and
 *    the previous decoder did too).
 *  - Every string must be valid UTF-8 (RFC 8259 section 8.1): a label value
 *    that is not is invalid_label (a field error), any other string (keys,
 *    event_id, timestamp, unknown fields, nested values) invalid_json (the
 *    text is not JSON). Strings of ASCII bytes, nearly all of them, cost nothing more:
 *    the string scanner already knows whether a byte >= 0x80 was seen.
 *  - Timestamps must lie between 2000-01-01T00:00:00Z and the wall clock
 *    plus limits.max_future_ms, so one "9999-..." event cannot pin the
 *    freshness gauge. The clock is read only when a timestamp passes the
 *    bound cached from the last reading (about once per max_future_ms).
 *  - "\u0000" is valid JSON and accepted anywhere except in a label value,
 *    where it is invalid_label: C consumers (and the old cJSON-based decoder)
 *    would silently truncate the value at the NUL, merging distinct series.
 *    Keys are compared with their full unescaped length, so "team\u0000x" is
 *    an unknown field, not "team".
 *  - Amounts (cost_usd, duration_seconds, token counts, gpu_count) reject a
 *    minus sign outright, "-0" included: a negative amount is a producer bug
 *    however small. Counts accept any exactly integral literal ("1.0",
 *    "1e3", "15e-1" is not). An epoch timestamp keeps its value range rule
 *    (0 to 4102444800 s), so "-0" is 1970 there.
 *  - Range checks apply to the rounded amount ("1000000.0000000001" is
 *    within a max of 1000000).
 *
 * Precedence of reasons (kept from the previous decoder, which ran a depth
 * and number-grammar prescan, then cJSON, then the field checks): too_large,
 * then too_deep / invalid_json in byte order, then trailing_data, then
 * not_object, then the first field error in member order. The parser stops
 * at the first syntax error; because a field error found earlier must not
 * win over a later syntax error, field errors are recorded as "pending" and
 * the rest of the text is still validated. On the (rare) syntax-error and
 * trailing-data paths, the old prescan is run over the whole buffer so a
 * too_deep further on still wins, exactly as before.
 *
 * Thread-safety: a decoder (and its scratch) belongs to one thread; distinct
 * decoders run concurrently. utf8_valid and parse_rfc3339 are pure.
 */
#include "event.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "decode_internal.h"
#include "money.h"
#include "unaligned.h"

static int64_t real_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Whether a timestamp is in the accepted window (see the header comment). */
static bool timestamp_in_window(struct event_decoder *d, int64_t ms)
{
    if (ms < EVENT_MIN_TIMESTAMP_MS)
        return false;
    if (ms <= d->future_bound_ms)
        return true;
    d->future_bound_ms = d->limits.now_ms() + d->limits.max_future_ms;
    return ms <= d->future_bound_ms;
}

static const char *const reason_names[REJECT_REASON_COUNT] = {
    [REJECT_NONE] = "none",
    [REJECT_INVALID_JSON] = "invalid_json",
    [REJECT_NOT_OBJECT] = "not_object",
    [REJECT_TRAILING_DATA] = "trailing_data",
    [REJECT_TOO_LARGE] = "too_large",
    [REJECT_TOO_DEEP] = "too_deep",
    [REJECT_WRONG_TYPE] = "wrong_type",
    [REJECT_DUPLICATE_FIELD] = "duplicate_field",
    [REJECT_INVALID_COST] = "invalid_cost",
    [REJECT_INVALID_TOKENS] = "invalid_tokens",
    [REJECT_INVALID_USAGE] = "invalid_usage",
    [REJECT_INVALID_LABEL] = "invalid_label",
    [REJECT_INVALID_TIMESTAMP] = "invalid_timestamp",
    [REJECT_UNPRICED] = "unpriced",
    [REJECT_MISSING_FIELD] = "missing_field",
    [REJECT_INVALID_UTILIZATION] = "invalid_utilization",
    [REJECT_INVALID_INTERVAL] = "invalid_interval",
    [REJECT_INVALID_CURRENCY] = "invalid_currency",
    [REJECT_TOO_MANY_GPUS] = "too_many_gpus",
};

const char *reject_reason_name(enum reject_reason reason)
{
    return (unsigned)reason < REJECT_REASON_COUNT ? reason_names[reason] : "unknown";
}

static const char *const token_kind_names[TOKEN_KIND_COUNT] = {"input", "cached_input",
                                                               "cache_write", "output"};

const char *token_kind_name(enum token_kind kind)
{
    return (unsigned)kind < TOKEN_KIND_COUNT ? token_kind_names[kind] : "unknown";
}

struct event_decoder *event_decoder_new(const struct event_limits *limits)
{
    if (limits->extra_label_count > EVENT_MAX_EXTRA_LABELS || limits->max_bytes > SIZE_MAX / 2)
        return NULL;
    struct event_decoder *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    d->limits = *limits;
    if (!d->limits.max_tokens || d->limits.max_tokens > EVENT_MAX_TOKENS)
        d->limits.max_tokens = EVENT_MAX_TOKENS;
    if (!d->limits.max_gpu_nanos)
        d->limits.max_gpu_nanos = UINT64_MAX;
    if (d->limits.max_future_ms <= 0)
        d->limits.max_future_ms = 86400000;
    if (!d->limits.now_ms)
        d->limits.now_ms = real_now_ms;
    d->future_bound_ms = d->limits.now_ms() + d->limits.max_future_ms;
    d->unattributed_len = strlen(limits->unattributed_label);
    for (size_t i = 0; i < limits->extra_label_count; i++)
        d->extra_len[i] = strlen(limits->extra_label_names[i]);
    d->max_depth = limits->max_depth;
    /* Unescaped output never exceeds the input consumed, and an event is at
     * most max_bytes: the slack only guards against an off-by-one here. */
    d->scratch = malloc(limits->max_bytes + 16);
    /* Each nesting level takes at least one byte, so depth is bounded by
     * both the limit and the event size. */
    size_t nest = limits->max_depth > 0 ? (size_t)limits->max_depth : 0;
    if (nest > limits->max_bytes)
        nest = limits->max_bytes;
    d->nest = malloc(nest + 2);
    if (!d->scratch || !d->nest || decode_kinds_init(d) != 0) {
        event_decoder_free(d);
        return NULL;
    }
    return d;
}

void event_decoder_free(struct event_decoder *d)
{
    if (!d)
        return;
    decode_kinds_free(d);
    free(d->scratch);
    free(d->nest);
    free(d);
}

/* ---- byte-level helpers -------------------------------------------------- */

#define ONES  0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

#ifndef __SSE2__ /* else skip_plain uses SSE2 */
/* Non-zero iff one of the 8 bytes is '"', '\\' or below 0x20. Each term is
 * the exact "has a zero byte" / "has a byte < n" test from Bit Twiddling
 * Hacks. A term may also flag bytes above a true hit (the borrow runs up),
 * never below one, so the lowest flag of the three is the first special
 * byte: on a little-endian load that is the lowest set bit. */
static inline uint64_t string_specials(uint64_t w)
{
    uint64_t q = w ^ (ONES * '"');
    uint64_t b = w ^ (ONES * '\\');
    return (((q - ONES) & ~q) | ((b - ONES) & ~b) | ((w - ONES * 0x20) & ~w)) & HIGHS;
}
#endif

bool utf8_valid(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        /* Label values are nearly always ASCII: skip 8 bytes per step. */
        if (len - i >= 8 && !(load64(str + i) & HIGHS)) {
            i += 8;
            continue;
        }
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        uint32_t cp;
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (len - i <= n) /* truncated sequence */
            return false;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += n + 1;
    }
    return true;
}

static int parse_digits(const char *s, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -EINVAL;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * days_from_civil), so no timegm()/TZ dependency on the hot path. */
static int64_t days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* The fields of an RFC 3339 timestamp, before their ranges are checked. */
struct civil_time {
    int year, month, day, hour, minute, second, ms, offset_min;
};

/* The shape producers send, "YYYY-MM-DDTHH:MM:SS.mmmZ", checked with three
 * word compares and split without loops. False for any other text, which
 * the general parser then takes (so nothing here may reject). */
static bool rfc3339_common(const char *s, size_t len, struct civil_time *t)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    /* Per word: the separators' bytes, a mask of them, and of the digits. */
    static const uint64_t sep[3] = {0x2d00002d00000000ULL, 0x00003a0000540000ULL,
                                    0x5a0000002e00003aULL};
    static const uint64_t sep_mask[3] = {0xff0000ff00000000ULL, 0x0000ff0000ff0000ULL,
                                         0xff000000ff0000ffULL};
    if (len != 24)
        return false;
    uint64_t bad = 0;
    for (int i = 0; i < 3; i++) {
        uint64_t w = load64(s + 8 * i), digits = ~sep_mask[i];
        /* A digit's high nibble is 3, before and after adding 6; a carry out
         * of a byte only comes from one that fails either test itself. */
        uint64_t nibbles = (w & ONES * 0xf0) | ((w + ONES * 0x06) & ONES * 0xf0) >> 4;
        bad |= ((w ^ sep[i]) & sep_mask[i]) | ((nibbles ^ ONES * 0x33) & digits);
    }
    if (bad)
        return false;
#define D(i) (s[i] - '0')
    t->year = D(0) * 1000 + D(1) * 100 + D(2) * 10 + D(3);
    t->month = D(5) * 10 + D(6);
    t->day = D(8) * 10 + D(9);
    t->hour = D(11) * 10 + D(12);
    t->minute = D(14) * 10 + D(15);
    t->second = D(17) * 10 + D(18);
    t->ms = D(20) * 100 + D(21) * 10 + D(22);
#undef D
    t->offset_min = 0;
    return true;
#else
    (void)s, (void)len, (void)t;
    return false;
#endif
}

/* Any RFC 3339 text this parser accepts, split into fields. */
static int rfc3339_general(const char *s, size_t len, struct civil_time *t)
{
    if (len < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' ||
        s[16] != ':')
        return -EINVAL;
    if (parse_digits(s, 4, &t->year) || parse_digits(s + 5, 2, &t->month) ||
        parse_digits(s + 8, 2, &t->day) || parse_digits(s + 11, 2, &t->hour) ||
        parse_digits(s + 14, 2, &t->minute) || parse_digits(s + 17, 2, &t->second))
        return -EINVAL;
    size_t i = 19;
    t->ms = 0;
    if (i < len && s[i] == '.') {
        size_t digits = 0;
        for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++, digits++)
            if (digits < 3)
                t->ms = t->ms * 10 + (s[i] - '0');
        if (digits == 0)
            return -EINVAL;
        for (; digits < 3; digits++)
            t->ms *= 10;
    }
    t->offset_min = 0;
    if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i + 6 == len && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
        int oh, om;
        if (parse_digits(s + i + 1, 2, &oh) || parse_digits(s + i + 4, 2, &om) || oh > 23 ||
            om > 59)
            return -EINVAL;
        t->offset_min = (oh * 60 + om) * (s[i] == '+' ? 1 : -1);
        i += 6;
    } else {
        return -EINVAL;
    }
    return i == len ? 0 : -EINVAL;
}

int parse_rfc3339(const char *s, size_t len, int64_t *epoch_ms)
{
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    struct civil_time t;
    if (!rfc3339_common(s, len, &t) && rfc3339_general(s, len, &t))
        return -EINVAL;
    if (t.month < 1 || t.month > 12 || t.day < 1 || t.day > mdays[t.month - 1] || t.hour > 23 ||
        t.minute > 59 || t.second > 60)
        return -EINVAL;
    bool leap = (t.year % 4 == 0 && t.year % 100 != 0) || t.year % 400 == 0;
    if (t.month == 2 && t.day == 29 && !leap)
        return -EINVAL;
    int64_t secs = days_from_civil(t.year, t.month, t.day) * 86400 + t.hour * 3600 + t.minute * 60 +
                   t.second - (int64_t)t.offset_min * 60;
    *epoch_ms = secs * 1000 + t.ms;
    return 0;
}

/* ---- the previous decoder's prescan, for the error paths only ------------ */

/* Length of a JSON number (RFC 8259 grammar) at s, or 0 if malformed. */
static size_t json_number_length(const char *s, const char *end)
{
    const char *p = s;
    if (p < end && *p == '-')
        p++;
    if (p < end && *p == '0') {
        p++;
    } else if (p < end && *p >= '1' && *p <= '9') {
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    } else {
        return 0;
    }
    if (p < end && *p == '.') {
        const char *digits = ++p;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
        if (p == digits)
            return 0;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        const char *digits = p;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
        if (p == digits)
            return 0;
    }
    return (size_t)(p - s);
}

static bool number_char(char c)
{
    return (c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-';
}

/*
 * The first of "nesting deeper than limit" (too_deep) and "malformed number"
 * (invalid_json) in byte order, ignoring string contents, or REJECT_NONE.
 * The previous decoder ran this before parsing; it is now only consulted
 * once the text is known to be invalid or to have trailing bytes, to keep
 * which reason such a text gets unchanged.
 */
static enum reject_reason prescan(const char *buf, size_t len, long limit)
{
    long depth = 0;
    bool in_string = false;
    const char *end = buf + len;
    for (const char *p = buf; p < end; p++) {
        char c = *p;
        if (in_string) {
            if (c == '\\') {
                if (++p == end)
                    break;
            } else if (c == '"') {
                in_string = false;
            }
            continue;
        }
        if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > limit)
                return REJECT_TOO_DEEP;
        } else if (c == ']' || c == '}') {
            depth--;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            size_t n = json_number_length(p, end);
            if (n == 0 || (p + n < end && number_char(p[n])))
                return REJECT_INVALID_JSON;
            p += n - 1;
        }
    }
    return REJECT_NONE;
}

/* ---- tokens --------------------------------------------------------------- */

/* struct parser, jstr (a decoded string: ptr is into the input, or, when
 * escaped, into the scratch past `used`, where it stays only if the caller
 * commits it) and jnum are in decode_internal.h. */

static inline bool is_ws(char c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

static inline const char *skip_ws(const char *p, const char *end)
{
    /* Compact events have no whitespace: one compare says so. */
    if (p < end && (unsigned char)*p > ' ')
        return p;
    while (p < end && is_ws(*p))
        p++;
    return p;
}

static inline bool is_digit(char c)
{
    return (unsigned char)(c - '0') < 10;
}

static int hex4(const char *p, uint32_t *out)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char c = (unsigned char)p[i];
        uint32_t d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
            d = (c | 0x20) - 'a' + 10;
        else
            return -EINVAL;
        v = v << 4 | d;
    }
    *out = v;
    return 0;
}

static char *utf8_put(char *o, uint32_t cp)
{
    if (cp < 0x80) {
        *o++ = (char)cp;
    } else if (cp < 0x800) {
        *o++ = (char)(0xc0 | cp >> 6);
        *o++ = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        *o++ = (char)(0xe0 | cp >> 12);
        *o++ = (char)(0x80 | (cp >> 6 & 0x3f));
        *o++ = (char)(0x80 | (cp & 0x3f));
    } else {
        *o++ = (char)(0xf0 | cp >> 18);
        *o++ = (char)(0x80 | (cp >> 12 & 0x3f));
        *o++ = (char)(0x80 | (cp >> 6 & 0x3f));
        *o++ = (char)(0x80 | (cp & 0x3f));
    }
    return o;
}

/* Slow path of parse_string once a backslash is met at p: unescapes the
 * whole string into the scratch. */
static enum reject_reason unescape_string(struct parser *ps, const char *start, const char **pp,
                                          uint64_t high, struct jstr *s)
{
    const char *p = *pp, *end = ps->end;
    char *out = ps->scratch + ps->used;
    size_t n = (size_t)(p - start);
    memcpy(out, start, n);
    char *o = out + n;
    bool nul = false;
    for (;;) {
        if (p == end)
            return REJECT_INVALID_JSON;
        unsigned char c = (unsigned char)*p;
        if (c == '"')
            break;
        if (c < 0x20)
            return REJECT_INVALID_JSON;
        if (c != '\\') {
            high |= c;
            *o++ = (char)c;
            p++;
            continue;
        }
        if (end - p < 2)
            return REJECT_INVALID_JSON;
        switch (p[1]) {
        case '"':
        case '\\':
        case '/':
            *o++ = p[1];
            break;
        case 'b':
            *o++ = '\b';
            break;
        case 'f':
            *o++ = '\f';
            break;
        case 'n':
            *o++ = '\n';
            break;
        case 'r':
            *o++ = '\r';
            break;
        case 't':
            *o++ = '\t';
            break;
        case 'u': {
            uint32_t cp, lo;
            if (end - p < 6 || hex4(p + 2, &cp))
                return REJECT_INVALID_JSON;
            p += 6;
            if (cp >= 0xdc00 && cp <= 0xdfff) /* low surrogate first */
                return REJECT_INVALID_JSON;
            if (cp >= 0xd800 && cp <= 0xdbff) {
                /* A high surrogate must be followed by an escaped low one;
                 * anything else would encode an invalid code point. */
                if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, &lo) || lo < 0xdc00 ||
                    lo > 0xdfff)
                    return REJECT_INVALID_JSON;
                p += 6;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            nul |= cp == 0;
            o = utf8_put(o, cp);
            continue;
        }
        default:
            return REJECT_INVALID_JSON;
        }
        p += 2;
    }
    s->ptr = out;
    s->len = (size_t)(o - out);
    s->high = (high & HIGHS) != 0;
    s->nul = nul;
    s->escaped = true;
    *pp = p + 1;
    return REJECT_NONE;
}

/* Skips the plain bytes of a string from p, accumulating them into *high
 * (whose 0x80 bits tell whether any was non-ASCII). Returns the first '"',
 * '\\' or control byte, or a point close to the end from where the byte
 * loop finds it. Only bytes of the string may reach *high: the bytes past
 * the special one in the same vector or word are not the string's. */
static inline const char *skip_plain(const char *p, const char *end, uint64_t *high)
{
#ifdef __SSE2__
    /* x86-64 baseline: 16 bytes a step, the positions as bit masks. The
     * last 15 bytes of a text are left to the byte loop (rare: a string
     * there is at most the last value of an event). */
    const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\');
    const __m128i ctl = _mm_set1_epi8(0x1f);
    unsigned nonascii = 0;
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        __m128i sp = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)),
                                  _mm_cmpeq_epi8(_mm_max_epu8(v, ctl), ctl));
        unsigned special = (unsigned)_mm_movemask_epi8(sp);
        if (special) {
            nonascii |= (unsigned)_mm_movemask_epi8(v) & ((special & -special) - 1);
            p += __builtin_ctz(special);
            break;
        }
        nonascii |= (unsigned)_mm_movemask_epi8(v);
        p += 16;
    }
    if (nonascii)
        *high |= HIGHS;
#else
    while (end - p >= 8) {
        uint64_t w = load64(p);
        uint64_t special = string_specials(w);
        if (special) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            *high |= w & ((special & -special) - 1);
            p += __builtin_ctzll(special) / 8;
#endif
            break;
        }
        *high |= w;
        p += 8;
    }
#endif
    return p;
}

/* A string without escapes, [start, quote): it points into the input. */
static inline enum reject_reason plain_string(const char *start, const char *quote, const char **pp,
                                              uint64_t high, struct jstr *s)
{
    s->ptr = start;
    s->len = (size_t)(quote - start);
    s->high = (high & HIGHS) != 0;
    s->nul = false;
    s->escaped = false;
    *pp = quote + 1;
    return REJECT_NONE;
}

/* The rest of a string from p, where skip_plain stopped short of a closing
 * quote: near the end of the text, at a backslash or at a control byte. */
static enum reject_reason string_rest(struct parser *ps, const char *start, const char *p,
                                      const char **pp, uint64_t high, struct jstr *s)
    __attribute__((noinline));
static enum reject_reason string_rest(struct parser *ps, const char *start, const char *p,
                                      const char **pp, uint64_t high, struct jstr *s)
{
    const char *end = ps->end;
    for (;; p++) {
        if (p == end)
            return REJECT_INVALID_JSON;
        unsigned char c = (unsigned char)*p;
        if (c == '"')
            break;
        if (c == '\\') {
            *pp = p;
            return unescape_string(ps, start, pp, high, s);
        }
        if (c < 0x20)
            return REJECT_INVALID_JSON;
        high |= c;
    }
    return plain_string(start, p, pp, high, s);
}

/* Parses a string whose opening quote is just before *pp; leaves *pp after
 * the closing quote. Inline only up to the common end: a closing quote with
 * no escape before it. */
static inline enum reject_reason parse_string(struct parser *ps, const char **pp, struct jstr *s)
{
    const char *start = *pp, *end = ps->end;
    uint64_t high = 0;
    const char *p = skip_plain(start, end, &high);
    if (p == end || *p != '"')
        return string_rest(ps, start, p, pp, high, s);
    return plain_string(start, p, pp, high, s);
}

/* parse_string for a string that is not a label value: one that is not
 * valid UTF-8 makes the text invalid JSON (RFC 8259 section 8.1). Only a
 * string with a byte >= 0x80 is checked. */
static inline enum reject_reason parse_text(struct parser *ps, const char **pp, struct jstr *s)
{
    enum reject_reason r = parse_string(ps, pp, s);
    if (r == REJECT_NONE && s->high && !utf8_valid(s->ptr, s->len))
        return REJECT_INVALID_JSON;
    return r;
}

/* Parses an RFC 8259 number starting at *pp ('-' or a digit). */
static inline enum reject_reason parse_number(struct parser *ps, const char **pp, struct jnum *n)
{
    const char *p = *pp, *end = ps->end;
    n->neg = *p == '-';
    if (n->neg)
        p++;
    n->int_p = p;
    /* The digits' value is gathered on the way (it wraps past 19 digits,
     * where nothing reads it), so amounts need not read them again. */
    uint64_t v = 0;
    if (p < end && *p == '0') {
        p++;
    } else if (p < end && *p >= '1' && *p <= '9') {
        for (; p < end && is_digit(*p); p++)
            v = v * 10 + (uint64_t)(*p - '0');
    } else {
        return REJECT_INVALID_JSON;
    }
    n->n_int = (size_t)(p - n->int_p);
    n->frac_p = p;
    n->n_frac = 0;
    if (p < end && *p == '.') {
        n->frac_p = ++p;
        for (; p < end && is_digit(*p); p++)
            v = v * 10 + (uint64_t)(*p - '0');
        n->n_frac = (size_t)(p - n->frac_p);
        if (n->n_frac == 0)
            return REJECT_INVALID_JSON;
    }
    n->digits = v;
    n->exp = 0;
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        bool neg = false;
        if (p < end && (*p == '+' || *p == '-'))
            neg = *p++ == '-';
        const char *digits = p;
        int64_t e = 0;
        for (; p < end && is_digit(*p); p++)
            if (e < 1000000000000LL) /* saturate: far past any meaningful shift */
                e = e * 10 + (*p - '0');
        if (p == digits)
            return REJECT_INVALID_JSON;
        n->exp = neg ? -e : e;
    }
    *pp = p;
    return REJECT_NONE;
}

static inline unsigned num_digit(const struct jnum *n, size_t i)
{
    return (unsigned)((i < n->n_int ? n->int_p[i] : n->frac_p[i - n->n_int]) - '0');
}

/* decimal_to_fixed for any number: the digits form one sequence, the
 * exponent only moves the decimal point, the digits left of it form the
 * integer, and the first digit right of it decides the rounding. */
static int decimal_to_fixed_general(const struct jnum *n, int scale, uint64_t max, uint64_t *out,
                                    bool *exact, bool *nonzero) __attribute__((noinline));
static int decimal_to_fixed_general(const struct jnum *n, int scale, uint64_t max, uint64_t *out,
                                    bool *exact, bool *nonzero)
{
    size_t total = n->n_int + n->n_frac;
    size_t first = 0;
    while (first < total && num_digit(n, first) == 0)
        first++;
    if (nonzero)
        *nonzero = first < total;
    if (first == total) {
        *out = 0;
        if (exact)
            *exact = true;
        return 0;
    }
    /* Digits [first, point) of the sequence are the integer part of the
     * scaled value; keep is how many significant digits that is. */
    int64_t point = (int64_t)n->n_int + n->exp + scale;
    int64_t keep = point - (int64_t)first;
    if (keep > 20) /* at least 10^20 > UINT64_MAX */
        return -ERANGE;
    uint64_t v = 0;
    for (int64_t k = 0; k < keep; k++) {
        size_t i = first + (size_t)k;
        unsigned d = i < total ? num_digit(n, i) : 0;
        if (v > (UINT64_MAX - d) / 10)
            return -ERANGE;
        v = v * 10 + d;
    }
    bool inexact;
    if (keep < 0) {
        /* The first dropped digit is a leading zero: rounds down, and a
         * non-zero digit was dropped. */
        inexact = true;
    } else {
        size_t i = first + (size_t)keep;
        inexact = false;
        if (i < total && num_digit(n, i) >= 5) {
            if (v == UINT64_MAX)
                return -ERANGE;
            v++;
            inexact = true;
        } else if (exact) {
            for (; i < total && !inexact; i++)
                inexact = num_digit(n, i) != 0;
        }
    }
    if (v > max)
        return -ERANGE;
    if (exact)
        *exact = !inexact;
    *out = v;
    return 0;
}

/*
 * The magnitude of n times 10^scale, rounded to the nearest integer with
 * ties away from zero, computed on the decimal digits (no floating point).
 * Returns 0, or -ERANGE above max (after rounding). *exact (if given) tells
 * whether no non-zero digit was rounded away; *nonzero whether the value is
 * not zero.
 */
static inline int decimal_to_fixed(const struct jnum *n, int scale, uint64_t max, uint64_t *out,
                                   bool *exact, bool *nonzero)
{
    static const uint64_t pow10[] = {1,      10,      100,      1000,      10000,
                                     100000, 1000000, 10000000, 100000000, 1000000000};
    /* Fast path, nearly every real amount ("0.0125", "1200"): no exponent,
     * no digit past the scale, and below 10^19 so nothing can overflow
     * (parse_number has the digits' value, as there are at most 19). */
    if (n->exp != 0 || n->n_frac > (size_t)scale || n->n_int + (size_t)scale > 19 || scale > 9)
        return decimal_to_fixed_general(n, scale, max, out, exact, nonzero);
    uint64_t v = n->digits * pow10[(size_t)scale - n->n_frac];
    if (nonzero)
        *nonzero = v != 0;
    if (v > max)
        return -ERANGE;
    if (exact)
        *exact = true;
    *out = v;
    return 0;
}

static inline bool match_literal(const char *p, const char *end, const char *lit, size_t n)
{
    return (size_t)(end - p) >= n && memcmp(p, lit, n) == 0;
}

/* Validates a string, number or literal at *pp (before the end). */
static enum reject_reason skip_scalar(struct parser *ps, const char **pp)
{
    const char *p = *pp, *end = ps->end;
    struct jstr s;
    struct jnum n;
    switch (*p) {
    case '"':
        *pp = p + 1;
        return parse_text(ps, pp, &s);
    case 't':
        if (!match_literal(p, end, "true", 4))
            return REJECT_INVALID_JSON;
        *pp = p + 4;
        return REJECT_NONE;
    case 'f':
        if (!match_literal(p, end, "false", 5))
            return REJECT_INVALID_JSON;
        *pp = p + 5;
        return REJECT_NONE;
    case 'n':
        if (!match_literal(p, end, "null", 4))
            return REJECT_INVALID_JSON;
        *pp = p + 4;
        return REJECT_NONE;
    default:
        if (*p != '-' && !is_digit(*p))
            return REJECT_INVALID_JSON;
        return parse_number(ps, pp, &n);
    }
}

/* At a member key (*pp, not whitespace): validates "key" ws ':' ws. */
static enum reject_reason skip_key(struct parser *ps, const char **pp)
{
    const char *p = *pp, *end = ps->end;
    struct jstr s;
    if (p == end || *p != '"')
        return REJECT_INVALID_JSON;
    p++;
    if (parse_text(ps, &p, &s))
        return REJECT_INVALID_JSON;
    p = skip_ws(p, end);
    if (p == end || *p != ':')
        return REJECT_INVALID_JSON;
    *pp = skip_ws(p + 1, end);
    return REJECT_NONE;
}

/*
 * Validates one value starting at *pp (a non-whitespace byte or the end),
 * held by a container at `depth`; leaves *pp just after it. Iterative, with
 * the open containers' kinds in ps->nest, so the depth limit rather than
 * the C stack bounds the nesting.
 */
static enum reject_reason skip_value(struct parser *ps, const char **pp, long depth)
{
    const char *p = *pp, *end = ps->end;
    const long base = depth;
    enum reject_reason r;
    for (;;) {
        /* A value starts at p. */
        if (p == end)
            return REJECT_INVALID_JSON;
        char c = *p;
        if (c == '[' || c == '{') {
            if (++depth > ps->max_depth)
                return REJECT_TOO_DEEP;
            ps->nest[depth] = (uint8_t)c;
            p = skip_ws(p + 1, end);
            if (p == end)
                return REJECT_INVALID_JSON;
            if (*p == (c == '[' ? ']' : '}')) {
                p++;
                depth--;
            } else if (c == '[') {
                continue;
            } else {
                if ((r = skip_key(ps, &p)))
                    return r;
                continue;
            }
        } else {
            if ((r = skip_scalar(ps, &p)))
                return r;
        }
        /* A value ended at p: close containers, or go to the next element. */
        for (;;) {
            if (depth == base) {
                *pp = p;
                return REJECT_NONE;
            }
            p = skip_ws(p, end);
            if (p == end)
                return REJECT_INVALID_JSON;
            bool object = ps->nest[depth] == '{';
            if (*p == (object ? '}' : ']')) {
                p++;
                depth--;
                continue;
            }
            if (*p != ',')
                return REJECT_INVALID_JSON;
            p = skip_ws(p + 1, end);
            if (object && (r = skip_key(ps, &p)))
                return r;
            break;
        }
    }
}

/* ---- fields --------------------------------------------------------------- */

enum field {
    F_TEAM,
    F_PROJECT,
    F_SOURCE,
    F_PROVIDER,
    F_MODEL,
    F_INSTANCE_TYPE,
    F_GPU_TYPE,
    F_COST,
    F_INPUT_TOKENS,
    F_CACHED_INPUT_TOKENS,
    F_CACHE_WRITE_TOKENS,
    F_OUTPUT_TOKENS,
    F_GPU_COUNT,
    F_DURATION,
    F_TIMESTAMP,
    F_EVENT_ID,
    F_REQUEST_ID,
    F_LABELS,
    F_UNKNOWN
};

#define KEY_IS(lit) (memcmp(k, lit, sizeof(lit) - 1) == 0)

/* The field a (fully unescaped) key names: the length alone leaves at most
 * four candidates, told apart by the first byte, then one memcmp. */
static inline enum field field_of(const char *k, size_t n)
{
    switch (n) {
    case 4:
        return KEY_IS("team") ? F_TEAM : F_UNKNOWN;
    case 5:
        return KEY_IS("model") ? F_MODEL : F_UNKNOWN;
    case 6:
        if (k[0] == 's')
            return KEY_IS("source") ? F_SOURCE : F_UNKNOWN;
        return KEY_IS("labels") ? F_LABELS : F_UNKNOWN;
    case 7:
        return KEY_IS("project") ? F_PROJECT : F_UNKNOWN;
    case 8:
        switch (k[0]) {
        case 'c':
            return KEY_IS("cost_usd") ? F_COST : F_UNKNOWN;
        case 'p':
            return KEY_IS("provider") ? F_PROVIDER : F_UNKNOWN;
        case 'g':
            return KEY_IS("gpu_type") ? F_GPU_TYPE : F_UNKNOWN;
        case 'e':
            return KEY_IS("event_id") ? F_EVENT_ID : F_UNKNOWN;
        }
        return F_UNKNOWN;
    case 9:
        if (k[0] == 't')
            return KEY_IS("timestamp") ? F_TIMESTAMP : F_UNKNOWN;
        return KEY_IS("gpu_count") ? F_GPU_COUNT : F_UNKNOWN;
    case 10:
        return KEY_IS("request_id") ? F_REQUEST_ID : F_UNKNOWN;
    case 12:
        return KEY_IS("input_tokens") ? F_INPUT_TOKENS : F_UNKNOWN;
    case 13:
        if (k[0] == 'i')
            return KEY_IS("instance_type") ? F_INSTANCE_TYPE : F_UNKNOWN;
        return KEY_IS("output_tokens") ? F_OUTPUT_TOKENS : F_UNKNOWN;
    case 16:
        return KEY_IS("duration_seconds") ? F_DURATION : F_UNKNOWN;
    case 18:
        return KEY_IS("cache_write_tokens") ? F_CACHE_WRITE_TOKENS : F_UNKNOWN;
    case 19:
        return KEY_IS("cached_input_tokens") ? F_CACHED_INPUT_TOKENS : F_UNKNOWN;
    }
    return F_UNKNOWN;
}

/* Decoding state of one event besides the struct event itself. */
struct members {
    enum reject_reason pending; /* first field error, reported if the text is valid */
    uint32_t seen;
    bool has_count, has_duration;
};

static inline enum reject_reason check_label(const struct event_decoder *d, const struct jstr *s)
{
    if (s->len > d->limits.max_label_bytes || s->nul || (s->high && !utf8_valid(s->ptr, s->len)))
        return REJECT_INVALID_LABEL;
    /* Reserved for the counter tables' overflow series: accepting it from
     * an event would let two series share one label set. */
    if (s->len == sizeof(COUNTER_OVERFLOW_VALUE) - 1 &&
        memcmp(s->ptr, COUNTER_OVERFLOW_VALUE, s->len) == 0)
        return REJECT_INVALID_LABEL;
    return REJECT_NONE;
}

static inline void keep_string(struct parser *ps, const struct jstr *s, struct label_value *out)
{
    if (s->escaped)
        ps->used += s->len; /* commit: later strings go after it */
    out->ptr = s->ptr;
    out->len = (uint32_t)s->len;
}

/* A value of a known field that is not of the expected kind: null means
 * absent; anything else is wrong_type, but is still validated. */
static enum reject_reason other_value(struct parser *ps, const char **pp, struct members *m)
{
    if (match_literal(*pp, ps->end, "null", 4)) {
        *pp += 4;
        return REJECT_NONE;
    }
    m->pending = REJECT_WRONG_TYPE;
    return skip_value(ps, pp, 1);
}

/* The "labels" object at *pp ('{', depth 2): every member must be a string;
 * those named in limits.extra_label_names become ev->extra[]. */
static enum reject_reason take_labels(const struct event_decoder *d, struct parser *ps,
                                      const char **pp, struct event *ev, struct members *m)
{
    const char *p = *pp, *end = ps->end;
    enum reject_reason r;
    if (2 > ps->max_depth)
        return REJECT_TOO_DEEP;
    p = skip_ws(p + 1, end);
    if (p == end)
        return REJECT_INVALID_JSON;
    if (*p == '}') {
        *pp = p + 1;
        return REJECT_NONE;
    }
    for (;;) {
        struct jstr key, val;
        if (*p != '"')
            return REJECT_INVALID_JSON;
        p++;
        if ((r = parse_text(ps, &p, &key)))
            return r;
        /* Match before the value's unescaping may reuse the key's scratch. */
        uint32_t match = 0;
        for (size_t i = 0; i < d->limits.extra_label_count; i++)
            if (key.len == d->extra_len[i] &&
                memcmp(key.ptr, d->limits.extra_label_names[i], key.len) == 0)
                match |= 1u << i;
        p = skip_ws(p, end);
        if (p == end || *p != ':')
            return REJECT_INVALID_JSON;
        p = skip_ws(p + 1, end);
        if (p == end)
            return REJECT_INVALID_JSON;
        if (m->pending) {
            if ((r = skip_value(ps, &p, 2)))
                return r;
        } else if (*p == '"') {
            p++;
            if ((r = parse_string(ps, &p, &val)))
                return r;
            if (!match && val.high && !utf8_valid(val.ptr, val.len))
                return REJECT_INVALID_JSON;
            if (match) {
                m->pending = check_label(d, &val);
                if (!m->pending) {
                    struct label_value lv;
                    keep_string(ps, &val, &lv);
                    for (size_t i = 0; i < d->limits.extra_label_count; i++)
                        if (match & (1u << i))
                            ev->extra[i] = lv; /* a repeated key: the last wins */
                }
            }
        } else {
            m->pending = REJECT_WRONG_TYPE;
            if ((r = skip_value(ps, &p, 2)))
                return r;
        }
        p = skip_ws(p, end);
        if (p == end)
            return REJECT_INVALID_JSON;
        if (*p == '}') {
            *pp = p + 1;
            return REJECT_NONE;
        }
        if (*p != ',')
            return REJECT_INVALID_JSON;
        p = skip_ws(p + 1, end);
        if (p == end)
            return REJECT_INVALID_JSON;
    }
}

/* An amount: a non-negative number (no minus sign at all) scaled by
 * 10^scale and at most max; integral says fractions are not allowed. */
static inline bool take_amount(const struct jnum *n, int scale, uint64_t max, bool integral,
                               uint64_t *out)
{
    bool exact;
    if (n->neg)
        return false;
    if (decimal_to_fixed(n, scale, max, out, integral ? &exact : NULL, NULL))
        return false;
    return !integral || exact;
}

static struct label_value *label_slot(struct event *ev, enum field f)
{
    switch (f) {
    case F_TEAM:
        return &ev->team;
    case F_PROJECT:
        return &ev->project;
    case F_SOURCE:
        return &ev->source;
    case F_PROVIDER:
        return &ev->provider;
    case F_MODEL:
        return &ev->model;
    case F_INSTANCE_TYPE:
        return &ev->instance_type;
    default:
        return &ev->gpu_type;
    }
}

/* The value at *pp (not whitespace, not the end) of a member naming field
 * f. Returns a syntax reason; a field error goes to m->pending. */
static enum reject_reason take_member(struct event_decoder *d, struct parser *ps, const char **pp,
                                      enum field f, struct event *ev, struct members *m)
{
    const char *p = *pp;
    enum reject_reason r;
    struct jstr s;
    struct jnum n;
    if (f == F_UNKNOWN)
        return skip_value(ps, pp, 1);
    /* Two values for one field would make the money ambiguous. */
    if (m->seen & (1u << f)) {
        m->pending = REJECT_DUPLICATE_FIELD;
        return skip_value(ps, pp, 1);
    }
    m->seen |= 1u << f;
    bool number = *p == '-' || is_digit(*p);
    switch (f) {
    case F_TEAM:
    case F_PROJECT:
    case F_SOURCE:
    case F_PROVIDER:
    case F_MODEL:
    case F_INSTANCE_TYPE:
    case F_GPU_TYPE:
        if (*p != '"')
            return other_value(ps, pp, m);
        *pp = p + 1;
        if ((r = parse_string(ps, pp, &s)))
            return r;
        if ((m->pending = check_label(d, &s)) == REJECT_NONE)
            keep_string(ps, &s, label_slot(ev, f));
        return REJECT_NONE;
    case F_COST:
        if (!number)
            return other_value(ps, pp, m);
        if ((r = parse_number(ps, pp, &n)))
            return r;
        if (!take_amount(&n, 9, d->limits.max_cost_nanos, false, &ev->cost_nanos))
            m->pending = REJECT_INVALID_COST;
        ev->has_cost = true;
        return REJECT_NONE;
    case F_INPUT_TOKENS:
    case F_CACHED_INPUT_TOKENS:
    case F_CACHE_WRITE_TOKENS:
    case F_OUTPUT_TOKENS:
        if (!number)
            return other_value(ps, pp, m);
        if ((r = parse_number(ps, pp, &n)))
            return r;
        if (!take_amount(&n, 0, d->limits.max_tokens, true, &ev->tokens[f - F_INPUT_TOKENS]))
            m->pending = REJECT_INVALID_TOKENS;
        return REJECT_NONE;
    case F_GPU_COUNT:
        if (!number)
            return other_value(ps, pp, m);
        if ((r = parse_number(ps, pp, &n)))
            return r;
        if (!take_amount(&n, 0, EVENT_MAX_GPU_COUNT, true, &ev->gpu_count))
            m->pending = REJECT_INVALID_USAGE;
        m->has_count = true;
        return REJECT_NONE;
    case F_DURATION:
        if (!number)
            return other_value(ps, pp, m);
        if ((r = parse_number(ps, pp, &n)))
            return r;
        /* The usage bound, kept from when amounts went through a double. */
        if (!take_amount(&n, 9, MONEY_EXACT_MAX_UNITS * NANOS_PER_UNIT, false, &ev->duration_nanos))
            m->pending = REJECT_INVALID_USAGE;
        m->has_duration = true;
        return REJECT_NONE;
    case F_TIMESTAMP:
        if (*p == '"') {
            *pp = p + 1;
            if ((r = parse_text(ps, pp, &s)))
                return r;
            if (parse_rfc3339(s.ptr, s.len, &ev->timestamp_ms) ||
                !timestamp_in_window(d, ev->timestamp_ms))
                m->pending = REJECT_INVALID_TIMESTAMP;
        } else if (number) {
            if ((r = parse_number(ps, pp, &n)))
                return r;
            /* Epoch seconds from 1970 up to 2100: anything else is a unit
             * mix-up (milliseconds) or garbage. Milliseconds are rounded
             * half away from zero, like llround() was. */
            uint64_t ms;
            bool nonzero;
            if (decimal_to_fixed(&n, 3, 4102444800000ULL, &ms, NULL, &nonzero) ||
                (n.neg && nonzero) || !timestamp_in_window(d, (int64_t)ms))
                m->pending = REJECT_INVALID_TIMESTAMP;
            else
                ev->timestamp_ms = (int64_t)ms;
        } else {
            return other_value(ps, pp, m);
        }
        ev->has_timestamp = true;
        return REJECT_NONE;
    case F_EVENT_ID:
    case F_REQUEST_ID:
        if (*p != '"')
            return other_value(ps, pp, m);
        *pp = p + 1;
        return parse_text(ps, pp, &s);
    case F_LABELS:
        if (*p != '{')
            return other_value(ps, pp, m);
        return take_labels(d, ps, pp, ev, m);
    case F_UNKNOWN:
        break;
    }
    return REJECT_NONE;
}

static inline void default_label(struct label_value *v, const char *fallback, size_t len)
{
    if (v->len == 0) {
        v->ptr = fallback;
        v->len = (uint32_t)len;
    }
}

static inline enum reject_reason finish_event(const struct event_decoder *d, struct event *ev,
                                              bool has_count, bool has_duration)
{
    default_label(&ev->team, d->limits.unattributed_label, d->unattributed_len);
    default_label(&ev->project, d->limits.unattributed_label, d->unattributed_len);
    default_label(&ev->source, "unknown", 7);
    default_label(&ev->provider, "unknown", 7);
    default_label(&ev->model, "unknown", 7);
    default_label(&ev->instance_type, "unknown", 7);
    default_label(&ev->gpu_type, "unknown", 7);
    ev->has_gpu = has_count && has_duration;
    if (ev->has_gpu) {
        uint64_t product;
        if (__builtin_mul_overflow(ev->gpu_count, ev->duration_nanos, &product) ||
            product > d->limits.max_gpu_nanos)
            return REJECT_INVALID_USAGE;
        /* Counted in micro-GPU-seconds, rounded half up (event.h). */
        ev->gpu_micros = product / EVENT_GPU_NANOS_PER_COUNTED +
                         (product % EVENT_GPU_NANOS_PER_COUNTED >= EVENT_GPU_NANOS_PER_COUNTED / 2);
    }
    return REJECT_NONE;
}

/* The reason of a text found invalid: the prescan's (too_deep or a bad
 * number earlier in the text) if it has one, as before; else invalid_json. */
static enum reject_reason syntax_reason(const struct event_decoder *d, const char *buf, size_t len)
{
    enum reject_reason r = prescan(buf, len, d->max_depth);
    return r ? r : REJECT_INVALID_JSON;
}

enum reject_reason event_decode(struct event_decoder *d, const char *buf, size_t len,
                                struct event *ev)
{
    memset(ev, 0, sizeof(*ev));
    if (len > d->limits.max_bytes)
        return REJECT_TOO_LARGE;
    struct parser ps = {.end = buf + len,
                        .scratch = d->scratch,
                        .used = 0,
                        .nest = d->nest,
                        .max_depth = d->max_depth};
    const char *p = buf, *end = buf + len;
    enum reject_reason r;
    if (len >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0)
        p += 3;
    p = skip_ws(p, end);
    if (p == end)
        return REJECT_INVALID_JSON;

    if (*p != '{') {
        /* Valid JSON that is not an object is not_object, once it is known
         * to be valid and alone. */
        if ((r = skip_value(&ps, &p, 0)))
            return r == REJECT_TOO_DEEP ? r : syntax_reason(d, buf, len);
        if (skip_ws(p, end) != end)
            goto trailing;
        return REJECT_NOT_OBJECT;
    }

    struct members m = {REJECT_NONE, 0, false, false};
    if (1 > ps.max_depth)
        return REJECT_TOO_DEEP;
    p = skip_ws(p + 1, end);
    if (p == end)
        goto syntax;
    if (*p != '}') {
        for (;;) {
            struct jstr key;
            if (*p != '"')
                goto syntax;
            p++;
            if ((r = parse_text(&ps, &p, &key)))
                goto syntax;
            p = skip_ws(p, end);
            if (p == end || *p != ':')
                goto syntax;
            p = skip_ws(p + 1, end);
            if (p == end)
                goto syntax;
            if (m.pending)
                r = skip_value(&ps, &p, 1);
            else
                r = take_member(d, &ps, &p, field_of(key.ptr, key.len), ev, &m);
            if (r == REJECT_TOO_DEEP)
                return r; /* no syntax error before it: the prescan agrees */
            if (r)
                goto syntax;
            p = skip_ws(p, end);
            if (p == end)
                goto syntax;
            if (*p == '}')
                break;
            if (*p != ',')
                goto syntax;
            p = skip_ws(p + 1, end);
            if (p == end)
                goto syntax;
        }
    }
    if (skip_ws(p + 1, end) != end)
        goto trailing;
    if (m.pending)
        return m.pending;
    return finish_event(d, ev, m.has_count, m.has_duration);

syntax:
    return syntax_reason(d, buf, len);
trailing:
    /* The prescan covered trailing bytes too: a bad number or deep nesting
     * there was reported as such. */
    r = prescan(buf, len, d->max_depth);
    return r ? r : REJECT_TRAILING_DATA;
}

/* ---- the scanners for the other decoders (decode_internal.h) ------------- */

enum reject_reason decode_string(struct parser *ps, const char **pp, struct jstr *s)
{
    return parse_string(ps, pp, s);
}

enum reject_reason decode_number(struct parser *ps, const char **pp, struct jnum *n)
{
    return parse_number(ps, pp, n);
}

int decode_fixed(const struct jnum *n, int scale, uint64_t max, uint64_t *out, bool *exact,
                 bool *nonzero)
{
    return decimal_to_fixed(n, scale, max, out, exact, nonzero);
}

bool decode_timestamp_in_window(struct event_decoder *d, int64_t ms)
{
    return timestamp_in_window(d, ms);
}

enum reject_reason decode_check_label(const struct event_decoder *d, const char *ptr, size_t len,
                                      bool high, bool nul)
{
    struct jstr s = {.ptr = ptr, .len = len, .high = high, .nul = nul, .escaped = false};
    return check_label(d, &s);
}

enum reject_reason decode_syntax_reason(const struct event_decoder *d, const char *buf, size_t len)
{
    return syntax_reason(d, buf, len);
}

enum reject_reason decode_trailing_reason(const struct event_decoder *d, const char *buf,
                                          size_t len)
{
    enum reject_reason r = prescan(buf, len, d->max_depth);
    return r ? r : REJECT_TRAILING_DATA;
}

enum reject_reason decode_event_finish(const struct event_decoder *d, struct event *ev,
                                       bool has_count, bool has_duration)
{
    return finish_event(d, ev, has_count, has_duration);
}

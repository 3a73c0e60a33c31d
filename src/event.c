/*
 * event.c - JSON cost event decoding and validation (see event.h).
 *
 * Pipeline for one message: size check, a byte scan for nesting depth
 * (cJSON's own limit is 1000 and recursive), cJSON parse from the thread's
 * arena, a trailing-data check, then one pass over the object's members
 * dispatching on the key. cJSON is lenient where we must not be (invalid
 * UTF-8, 1e400 parsed as inf, trailing bytes), so those are checked here.
 * Thread-safety: a decoder per thread; the cJSON hooks are process-wide and
 * installed once, and they route to the calling thread's active arena.
 */
#include "event.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "money.h"

/* ---- per-thread bump arena behind cJSON's hooks ------------------------ */

struct arena_chunk {
    struct arena_chunk *next;
    size_t size;
    size_t used;
    max_align_t data[];
};

struct arena {
    struct arena_chunk *first; /* kept across resets */
    struct arena_chunk *current;
};

static _Thread_local struct arena *active_arena;
static pthread_once_t hooks_once = PTHREAD_ONCE_INIT;

static struct arena_chunk *chunk_new(size_t size)
{
    struct arena_chunk *c = malloc(sizeof(*c) + size);
    if (!c)
        return NULL;
    c->next = NULL;
    c->size = size;
    c->used = 0;
    return c;
}

static void *arena_alloc(struct arena *a, size_t size)
{
    size = (size + 15) & ~(size_t)15;
    struct arena_chunk *c = a->current;
    if (c->used + size > c->size) {
        /* Rare: a large event. Chain a chunk big enough; freed at reset. */
        size_t chunk_size = c->size * 2 > size ? c->size * 2 : size;
        struct arena_chunk *next = chunk_new(chunk_size);
        if (!next)
            return NULL;
        c->next = next;
        a->current = c = next;
    }
    void *p = (char *)c->data + c->used;
    c->used += size;
    return p;
}

static void arena_reset(struct arena *a)
{
    struct arena_chunk *c = a->first->next;
    while (c) {
        struct arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->first->next = NULL;
    a->first->used = 0;
    a->current = a->first;
}

static void *hook_malloc(size_t size)
{
    return active_arena ? arena_alloc(active_arena, size) : malloc(size);
}

static void hook_free(void *p)
{
    /* Arena memory is released wholesale at reset; cJSON frees partial
     * trees on parse errors, which must be a no-op then. */
    if (!active_arena)
        free(p);
}

static void install_hooks(void)
{
    cJSON_Hooks hooks = {.malloc_fn = hook_malloc, .free_fn = hook_free};
    cJSON_InitHooks(&hooks);
}

/* ---- decoder ----------------------------------------------------------- */

struct event_decoder {
    struct event_limits limits;
    struct arena arena;
};

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
    if (limits->extra_label_count > EVENT_MAX_EXTRA_LABELS)
        return NULL;
    pthread_once(&hooks_once, install_hooks);
    struct event_decoder *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    d->limits = *limits;
    /* Sized for a typical event's tree many times over, so the hot path
     * never chains a chunk. */
    d->arena.first = chunk_new(64 * 1024);
    if (!d->arena.first) {
        free(d);
        return NULL;
    }
    d->arena.current = d->arena.first;
    return d;
}

void event_decoder_free(struct event_decoder *d)
{
    if (!d)
        return;
    arena_reset(&d->arena);
    free(d->arena.first);
    free(d);
}

bool utf8_valid(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
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

int parse_rfc3339(const char *s, size_t len, int64_t *epoch_ms)
{
    int year, month, day, hour, minute, second, ms = 0;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (len < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' ||
        s[16] != ':')
        return -EINVAL;
    if (parse_digits(s, 4, &year) || parse_digits(s + 5, 2, &month) ||
        parse_digits(s + 8, 2, &day) || parse_digits(s + 11, 2, &hour) ||
        parse_digits(s + 14, 2, &minute) || parse_digits(s + 17, 2, &second))
        return -EINVAL;
    if (month < 1 || month > 12 || day < 1 || day > mdays[month - 1] || hour > 23 || minute > 59 ||
        second > 60)
        return -EINVAL;
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (month == 2 && day == 29 && !leap)
        return -EINVAL;
    size_t i = 19;
    if (i < len && s[i] == '.') {
        size_t digits = 0;
        for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++, digits++)
            if (digits < 3)
                ms = ms * 10 + (s[i] - '0');
        if (digits == 0)
            return -EINVAL;
        for (; digits < 3; digits++)
            ms *= 10;
    }
    int offset_min = 0;
    if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i + 6 == len && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
        int oh, om;
        if (parse_digits(s + i + 1, 2, &oh) || parse_digits(s + i + 4, 2, &om) || oh > 23 ||
            om > 59)
            return -EINVAL;
        offset_min = (oh * 60 + om) * (s[i] == '+' ? 1 : -1);
        i += 6;
    } else {
        return -EINVAL;
    }
    if (i != len)
        return -EINVAL;
    int64_t secs = days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second -
                   (int64_t)offset_min * 60;
    *epoch_ms = secs * 1000 + ms;
    return 0;
}

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
 * One pass over the bytes outside strings before cJSON sees them: nesting
 * deeper than limit is too_deep (cJSON recurses up to 1000 levels), and a
 * number cJSON would take but JSON forbids ("01", "1.", "-") is invalid.
 */
static enum reject_reason prescan(const char *buf, size_t len, int limit)
{
    int depth = 0;
    bool in_string = false;
    const char *end = buf + len;
    for (const char *p = buf; p < end; p++) {
        char c = *p;
        if (in_string) {
            if (c == '\\')
                p++;
            else if (c == '"')
                in_string = false;
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

static const struct {
    const char *name;
    enum field field;
} field_names[] = {
    {"team", F_TEAM},
    {"project", F_PROJECT},
    {"source", F_SOURCE},
    {"provider", F_PROVIDER},
    {"model", F_MODEL},
    {"instance_type", F_INSTANCE_TYPE},
    {"gpu_type", F_GPU_TYPE},
    {"cost_usd", F_COST},
    {"input_tokens", F_INPUT_TOKENS},
    {"cached_input_tokens", F_CACHED_INPUT_TOKENS},
    {"cache_write_tokens", F_CACHE_WRITE_TOKENS},
    {"output_tokens", F_OUTPUT_TOKENS},
    {"gpu_count", F_GPU_COUNT},
    {"duration_seconds", F_DURATION},
    {"timestamp", F_TIMESTAMP},
    {"event_id", F_EVENT_ID},
    {"request_id", F_REQUEST_ID},
    {"labels", F_LABELS},
};

static enum field field_of(const char *key)
{
    /* 18 short names: a first-byte filter before strcmp is cheaper than a
     * hash and keeps the table readable. */
    for (size_t i = 0; i < sizeof(field_names) / sizeof(field_names[0]); i++)
        if (field_names[i].name[0] == key[0] && strcmp(field_names[i].name, key) == 0)
            return field_names[i].field;
    return F_UNKNOWN;
}

static enum reject_reason take_label(const struct event_decoder *d, const cJSON *item,
                                     struct label_value *out)
{
    if (cJSON_IsNull(item))
        return REJECT_NONE;
    if (!cJSON_IsString(item))
        return REJECT_WRONG_TYPE;
    size_t len = strlen(item->valuestring);
    if (len > d->limits.max_label_bytes || !utf8_valid(item->valuestring, len))
        return REJECT_INVALID_LABEL;
    /* Reserved for the counter tables' overflow series: accepting it from
     * an event would let two series share one label set. */
    if (len == sizeof(COUNTER_OVERFLOW_VALUE) - 1 &&
        memcmp(item->valuestring, COUNTER_OVERFLOW_VALUE, len) == 0)
        return REJECT_INVALID_LABEL;
    out->ptr = item->valuestring;
    out->len = (uint32_t)len;
    return REJECT_NONE;
}

/* A JSON number that is a non-negative integer no larger than max. */
static enum reject_reason take_count(const cJSON *item, uint64_t max, uint64_t *out,
                                     enum reject_reason invalid)
{
    if (cJSON_IsNull(item))
        return REJECT_NONE;
    if (!cJSON_IsNumber(item))
        return REJECT_WRONG_TYPE;
    double v = item->valuedouble;
    if (!isfinite(v) || v < 0 || v != floor(v) || v > (double)max)
        return invalid;
    *out = (uint64_t)v;
    return REJECT_NONE;
}

static enum reject_reason take_labels_object(const struct event_decoder *d, const cJSON *obj,
                                             struct event *ev)
{
    if (cJSON_IsNull(obj))
        return REJECT_NONE;
    if (!cJSON_IsObject(obj))
        return REJECT_WRONG_TYPE;
    for (const cJSON *item = obj->child; item; item = item->next) {
        if (!cJSON_IsString(item))
            return REJECT_WRONG_TYPE;
        for (size_t i = 0; i < d->limits.extra_label_count; i++) {
            if (strcmp(item->string, d->limits.extra_label_names[i]) != 0)
                continue;
            enum reject_reason r = take_label(d, item, &ev->extra[i]);
            if (r)
                return r;
        }
    }
    return REJECT_NONE;
}

static enum reject_reason take_timestamp(const cJSON *item, struct event *ev)
{
    if (cJSON_IsNull(item))
        return REJECT_NONE;
    if (cJSON_IsString(item)) {
        if (parse_rfc3339(item->valuestring, strlen(item->valuestring), &ev->timestamp_ms))
            return REJECT_INVALID_TIMESTAMP;
    } else if (cJSON_IsNumber(item)) {
        double v = item->valuedouble;
        /* Epoch seconds from 1970 up to 2100: anything else is a unit
         * mix-up (milliseconds) or garbage. */
        if (!isfinite(v) || v < 0 || v > 4102444800.0)
            return REJECT_INVALID_TIMESTAMP;
        ev->timestamp_ms = (int64_t)llround(v * 1000.0);
    } else {
        return REJECT_WRONG_TYPE;
    }
    ev->has_timestamp = true;
    return REJECT_NONE;
}

static enum reject_reason take_field(const struct event_decoder *d, enum field f, const cJSON *item,
                                     struct event *ev, bool *has_count, bool *has_duration)
{
    switch (f) {
    case F_TEAM:
        return take_label(d, item, &ev->team);
    case F_PROJECT:
        return take_label(d, item, &ev->project);
    case F_SOURCE:
        return take_label(d, item, &ev->source);
    case F_PROVIDER:
        return take_label(d, item, &ev->provider);
    case F_MODEL:
        return take_label(d, item, &ev->model);
    case F_INSTANCE_TYPE:
        return take_label(d, item, &ev->instance_type);
    case F_GPU_TYPE:
        return take_label(d, item, &ev->gpu_type);
    case F_COST:
        if (cJSON_IsNull(item))
            return REJECT_NONE;
        if (!cJSON_IsNumber(item))
            return REJECT_WRONG_TYPE;
        if (money_from_double(item->valuedouble, d->limits.max_cost_nanos, &ev->cost_nanos))
            return REJECT_INVALID_COST;
        ev->has_cost = true;
        return REJECT_NONE;
    case F_INPUT_TOKENS:
    case F_CACHED_INPUT_TOKENS:
    case F_CACHE_WRITE_TOKENS:
    case F_OUTPUT_TOKENS:
        return take_count(item, EVENT_MAX_TOKENS, &ev->tokens[f - F_INPUT_TOKENS],
                          REJECT_INVALID_TOKENS);
    case F_GPU_COUNT:
        *has_count = !cJSON_IsNull(item);
        return take_count(item, EVENT_MAX_GPU_COUNT, &ev->gpu_count, REJECT_INVALID_USAGE);
    case F_DURATION:
        if (cJSON_IsNull(item))
            return REJECT_NONE;
        if (!cJSON_IsNumber(item))
            return REJECT_WRONG_TYPE;
        if (money_from_double(item->valuedouble, MONEY_EXACT_MAX_UNITS * NANOS_PER_UNIT,
                              &ev->duration_nanos))
            return REJECT_INVALID_USAGE;
        *has_duration = true;
        return REJECT_NONE;
    case F_TIMESTAMP:
        return take_timestamp(item, ev);
    case F_EVENT_ID:
    case F_REQUEST_ID:
        return cJSON_IsString(item) || cJSON_IsNull(item) ? REJECT_NONE : REJECT_WRONG_TYPE;
    case F_LABELS:
        return take_labels_object(d, item, ev);
    case F_UNKNOWN:
        break;
    }
    return REJECT_NONE;
}

static void default_label(struct label_value *v, const char *fallback)
{
    if (v->len == 0) {
        v->ptr = fallback;
        v->len = (uint32_t)strlen(fallback);
    }
}

static bool only_whitespace(const char *p, const char *end)
{
    for (; p < end; p++)
        if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
            return false;
    return true;
}

enum reject_reason event_decode(struct event_decoder *d, const char *buf, size_t len,
                                struct event *ev)
{
    enum reject_reason reason = REJECT_NONE;
    memset(ev, 0, sizeof(*ev));
    if (len > d->limits.max_bytes)
        return REJECT_TOO_LARGE;
    reason = prescan(buf, len, d->limits.max_depth);
    if (reason)
        return reason;

    arena_reset(&d->arena);
    active_arena = &d->arena;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(buf, len, &end, false);
    active_arena = NULL;

    if (!root) {
        reason = REJECT_INVALID_JSON;
        goto out;
    }
    if (end && !only_whitespace(end, buf + len)) {
        reason = REJECT_TRAILING_DATA;
        goto out;
    }
    if (!cJSON_IsObject(root)) {
        reason = REJECT_NOT_OBJECT;
        goto out;
    }
    uint32_t seen = 0;
    bool has_count = false, has_duration = false;
    for (const cJSON *item = root->child; item; item = item->next) {
        enum field f = field_of(item->string);
        if (f != F_UNKNOWN) {
            /* Two values for one field would make the money ambiguous. */
            if (seen & (1u << f)) {
                reason = REJECT_DUPLICATE_FIELD;
                goto out;
            }
            seen |= 1u << f;
        }
        reason = take_field(d, f, item, ev, &has_count, &has_duration);
        if (reason)
            goto out;
    }
    default_label(&ev->team, d->limits.unattributed_label);
    default_label(&ev->project, d->limits.unattributed_label);
    default_label(&ev->source, "unknown");
    default_label(&ev->provider, "unknown");
    default_label(&ev->model, "unknown");
    default_label(&ev->instance_type, "unknown");
    default_label(&ev->gpu_type, "unknown");
    ev->has_gpu = has_count && has_duration;
    if (ev->has_gpu) {
        uint64_t product;
        if (__builtin_mul_overflow(ev->gpu_count, ev->duration_nanos, &product))
            reason = REJECT_INVALID_USAGE;
    }
out:
    /* The tree lives in the arena: nothing to free; strings stay valid
     * until the next decode resets the arena. */
    return reason;
}

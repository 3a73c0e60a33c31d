/*
 * fuzz_expo.c - libFuzzer target for the exposition: series generated from
 * the fuzz input (label values with escapes, quotes, newlines, control
 * bytes, any UTF-8; amounts up to the per-event cap) are added through the
 * real path (metrics_record_event into the counter tables) and rendered by
 * the real render (metrics_render, text format or OpenMetrics). The output
 * is then read back by the strict parser below, written for this target
 * and sharing no code with the renderer: every line must be a well-formed
 * comment or sample, and the cost, token and GPU families must hold exactly
 * the series that were added - same label sets, same exact values (the
 * model sums in 128 bits and saturates like the counters).
 *
 * Input: byte 0 picks the format; then records of
 *   family (1 byte) | amount (8 bytes, little endian) | label values,
 * each label value a length byte (mod 48) and that many bytes. A value that
 * the event decoder would never let through (not UTF-8, a NUL, empty,
 * "__overflow__") makes the input uninteresting (return 0).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "dynbuf.h"
#include "event.h"
#include "expo.h"
#include "metrics.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_RECORDS  300
#define MAX_LABELS   5  /* of our families */
#define VALUE_MAX    47 /* generated label values */
#define PARSE_LABELS 16 /* any family's */
#define PARSE_VALUE  1024

enum fam { F_COST, F_TOKENS, F_GPU, F_COUNT };
static const char *const sample_names[F_COUNT] = {
    "ai_finops_cost_dollars_total", "ai_finops_tokens_total", "ai_finops_gpu_seconds_total"};
static const unsigned decimals[F_COUNT] = {9, 0, 6};
static const size_t label_counts[F_COUNT] = {3, 5, 4};
static const char *const label_names[F_COUNT][MAX_LABELS] = {
    {"team", "project", "source"},
    {"team", "project", "provider", "model", "kind"},
    {"team", "project", "instance_type", "gpu_type"}};
static const char *const kinds[TOKEN_KIND_COUNT] = {"input", "cached_input", "cache_write",
                                                    "output"};

/* One expected series: its family, label values (NUL-free, so kept as
 * length + bytes), and the exact sum. */
struct want {
    enum fam fam;
    size_t len[MAX_LABELS];
    char val[MAX_LABELS][VALUE_MAX + 1];
    unsigned __int128 sum;
    bool seen;
};

static struct want wants[MAX_RECORDS * 2];
static size_t want_count;

/* An index of wants by family and label values. A linear search made each
 * input quadratic in its series (add, then look up every sample line): a
 * fifth of all the fuzzer's time went there. Open addressing, emptied per
 * input; a slot holds a want's index + 1. */
#define WANT_SLOTS 2048 /* a power of two above 2 x MAX_RECORDS * 2 */
static uint16_t want_slots[WANT_SLOTS];
_Static_assert(WANT_SLOTS > MAX_RECORDS * 2, "a probe must always reach an empty slot");

static uint32_t want_hash(enum fam fam, const size_t *len, const char *const *val)
{
    uint32_t h = 2166136261u ^ (uint32_t)fam; /* FNV-1a */
    for (size_t l = 0; l < label_counts[fam]; l++) {
        h = (h ^ (uint32_t)len[l]) * 16777619u;
        for (size_t i = 0; i < len[l]; i++)
            h = (h ^ (uint8_t)val[l][i]) * 16777619u;
    }
    return h;
}

/* The want with these labels, or NULL; *slot_out (if given) receives the
 * slot where it is or would go. */
static struct want *find_want_slot(enum fam fam, const size_t *len, const char *const *val,
                                   size_t *slot_out)
{
    for (size_t s = want_hash(fam, len, val) & (WANT_SLOTS - 1);; s = (s + 1) & (WANT_SLOTS - 1)) {
        if (!want_slots[s]) {
            if (slot_out)
                *slot_out = s;
            return NULL;
        }
        struct want *w = &wants[want_slots[s] - 1];
        if (w->fam != fam)
            continue;
        bool same = true;
        for (size_t l = 0; l < label_counts[fam] && same; l++)
            same = w->len[l] == len[l] && memcmp(w->val[l], val[l], len[l]) == 0;
        if (same)
            return w;
    }
}

static struct want *find_want(enum fam fam, const size_t *len, const char *const *val)
{
    return find_want_slot(fam, len, val, NULL);
}

static void add_want(enum fam fam, const struct label_value *lv, uint64_t amount)
{
    size_t len[MAX_LABELS] = {0};
    const char *val[MAX_LABELS] = {0};
    for (size_t l = 0; l < label_counts[fam]; l++) {
        len[l] = lv[l].len;
        val[l] = lv[l].ptr;
    }
    size_t slot;
    struct want *w = find_want_slot(fam, len, val, &slot);
    if (!w) {
        w = &wants[want_count++];
        want_slots[slot] = (uint16_t)want_count;
        memset(w, 0, sizeof(*w));
        w->fam = fam;
        for (size_t l = 0; l < label_counts[fam]; l++) {
            w->len[l] = len[l];
            memcpy(w->val[l], val[l], len[l]);
        }
    }
    w->sum += amount;
}

/* ---- the independent parser --------------------------------------------- */

static bool name_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
}

static bool name_char(char c)
{
    return name_start(c) || (c >= '0' && c <= '9');
}

/* A metric or label name at p: returns its end, or NULL. */
static const char *read_name(const char *p, const char *end, bool label)
{
    if (p == end || !name_start(*p) || (label && *p == ':'))
        return NULL;
    for (p++; p < end && name_char(*p) && !(label && *p == ':'); p++)
        ;
    return p;
}

/* An exact non-negative decimal "digits[.digits]" in units of
 * 10^-scale; false if it is anything else or has more decimals. */
static bool read_value(const char *p, const char *end, unsigned scale, unsigned __int128 *out)
{
    unsigned __int128 v = 0;
    const char *start = p;
    for (; p < end && *p >= '0' && *p <= '9'; p++)
        v = v * 10 + (unsigned)(*p - '0');
    if (p == start || (p - start > 1 && *start == '0'))
        return false;
    unsigned frac = 0;
    if (p < end && *p == '.') {
        p++;
        const char *digits = p;
        for (; p < end && *p >= '0' && *p <= '9'; p++, frac++)
            v = v * 10 + (unsigned)(*p - '0');
        if (p == digits || p[-1] == '0') /* the renderer drops trailing zeros */
            return false;
    }
    if (p != end || frac > scale)
        return false;
    for (; frac < scale; frac++)
        v *= 10;
    *out = v;
    return true;
}

struct parsed {
    size_t count;
    size_t len[PARSE_LABELS];
    const char *name[PARSE_LABELS];
    size_t name_len[PARSE_LABELS];
    char val[PARSE_LABELS][PARSE_VALUE];
};

/* The {...} at p: label pairs with their values unescaped. Returns the end
 * or NULL. */
static const char *read_labels(const char *p, const char *end, struct parsed *out)
{
    out->count = 0;
    if (p == end || *p != '{')
        return p;
    p++;
    if (p < end && *p == '}')
        return p + 1;
    for (;;) {
        const char *n = p;
        p = read_name(p, end, true);
        if (!p || p == end || *p != '=' || ++p == end || *p != '"')
            return NULL;
        if (out->count == PARSE_LABELS)
            return NULL;
        size_t i = out->count++;
        out->name[i] = n;
        out->name_len[i] = (size_t)(p - 1 - n);
        size_t len = 0;
        for (p++;; p++) {
            if (p == end || *p == '\n')
                return NULL;
            char c = *p;
            if (c == '"')
                break;
            if (c == '\\') {
                if (++p == end)
                    return NULL;
                c = *p == 'n' ? '\n' : *p == '\\' ? '\\' : *p == '"' ? '"' : 0;
                if (!c)
                    return NULL;
            }
            if (len == PARSE_VALUE)
                return NULL;
            out->val[i][len++] = c;
        }
        out->len[i] = len;
        p++;
        if (p < end && *p == '}')
            return p + 1;
        if (p == end || *p != ',')
            return NULL;
        p++;
    }
}

/* Checks one line [p, end) (no newline); counts samples of our families. */
static void check_line(const char *p, const char *end, bool openmetrics, bool *eof)
{
    if (*eof) /* nothing may follow "# EOF" */
        abort();
    if (p < end && *p == '#') {
        if (end - p == 5 && memcmp(p, "# EOF", 5) == 0) {
            if (!openmetrics)
                abort();
            *eof = true;
            return;
        }
        if (end - p < 7 || (memcmp(p, "# HELP ", 7) && memcmp(p, "# TYPE ", 7)))
            abort();
        const char *n = read_name(p + 7, end, false);
        if (!n || (n < end && *n != ' '))
            abort();
        return;
    }
    const char *n = read_name(p, end, false);
    if (!n)
        abort();
    static struct parsed lab;
    const char *q = read_labels(n, end, &lab);
    if (!q || q == end || *q != ' ')
        abort();
    q++;
    int fam = -1;
    for (int f = 0; f < F_COUNT; f++)
        if ((size_t)(n - p) == strlen(sample_names[f]) && memcmp(p, sample_names[f], n - p) == 0)
            fam = f;
    if (fam < 0) {
        /* Another family: a value without spaces (a number, +Inf, NaN) and
         * an optional timestamp; no more checks. */
        if (q == end || memchr(q, '"', (size_t)(end - q)))
            abort();
        return;
    }
    unsigned __int128 value;
    if (!read_value(q, end, decimals[fam], &value))
        abort();
    if (lab.count != label_counts[fam])
        abort();
    for (size_t l = 0; l < lab.count; l++)
        if (lab.name_len[l] != strlen(label_names[fam][l]) ||
            memcmp(lab.name[l], label_names[fam][l], lab.name_len[l]))
            abort();
    const char *vals[MAX_LABELS] = {0};
    for (size_t l = 0; l < lab.count; l++)
        vals[l] = lab.val[l];
    struct want *w = find_want((enum fam)fam, lab.len, vals);
    if (!w || w->seen) /* a series never added, or shown twice */
        abort();
    w->seen = true;
    unsigned __int128 expect = w->sum < COUNTER_SATURATED ? w->sum : COUNTER_SATURATED;
    if (value != expect)
        abort();
}

/* ---- the target ----------------------------------------------------------- */

static bool usable(const uint8_t *p, size_t len)
{
    if (len == 0 || !utf8_valid((const char *)p, len) || memchr(p, 0, len))
        return false;
    return !(len == 12 && memcmp(p, COUNTER_OVERFLOW_VALUE, 12) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct exporter_config cfg;
    static bool init;
    if (!init) {
        config_init_defaults(&cfg);
        cfg.input = strdup("-"); /* live values, no shard label */
        cfg.counters_new_series_hold_ms = 0;
        cfg.counters_max_series = 4 * MAX_RECORDS; /* never the overflow series */
        init = true;
    }
    if (size < 1)
        return 0;
    bool openmetrics = data[0] & 1;
    size_t pos = 1;
    want_count = 0;
    memset(want_slots, 0, sizeof(want_slots));
    struct event events[MAX_RECORDS];
    enum fam fams[MAX_RECORDS];
    size_t n = 0;
    while (n < MAX_RECORDS && size - pos >= 9) {
        enum fam fam = (enum fam)(data[pos] % F_COUNT);
        uint8_t kind = (uint8_t)(data[pos] / F_COUNT % TOKEN_KIND_COUNT);
        uint64_t amount;
        memcpy(&amount, data + pos + 1, 8);
        amount &= (1ULL << 54) - 1; /* the contract: each delta is below 2^54 */
        if (data[pos] & 0x80)
            amount = (1ULL << 54) - 1; /* reach saturation in a few hundred adds */
        pos += 9;
        struct label_value lv[MAX_LABELS] = {{0}};
        size_t want_labels = fam == F_TOKENS ? 4 : label_counts[fam];
        for (size_t l = 0; l < want_labels; l++) {
            if (pos >= size)
                return 0;
            size_t len = data[pos++] % (VALUE_MAX + 1);
            if (size - pos < len || !usable(data + pos, len))
                return 0;
            lv[l] = (struct label_value){(const char *)data + pos, (uint32_t)len};
            pos += len;
        }
        struct event *ev = &events[n];
        memset(ev, 0, sizeof(*ev));
        static const struct label_value unknown = {"unknown", 7};
        ev->team = lv[0];
        ev->project = lv[1];
        ev->source = ev->provider = ev->model = ev->instance_type = ev->gpu_type = unknown;
        if (fam == F_COST) {
            ev->source = lv[2];
            ev->cost_nanos = amount;
        } else if (fam == F_TOKENS) {
            ev->provider = lv[2];
            ev->model = lv[3];
            ev->tokens[kind] = amount;
            lv[4] = (struct label_value){kinds[kind], (uint32_t)strlen(kinds[kind])};
        } else {
            ev->instance_type = lv[2];
            ev->gpu_type = lv[3];
            ev->has_gpu = true;
            ev->gpu_count = 1;
            ev->duration_nanos = 1;
            ev->gpu_micros = amount;
        }
        fams[n++] = fam;
        /* What metrics_record_event adds: the cost series of every event
         * (a $0 one too), tokens and GPU only when there are some. */
        struct label_value cost_lv[3] = {ev->team, ev->project, ev->source};
        add_want(F_COST, cost_lv, ev->cost_nanos);
        if (fam == F_TOKENS && amount)
            add_want(F_TOKENS, lv, amount);
        if (fam == F_GPU)
            add_want(F_GPU, lv, amount);
    }
    (void)fams;

    struct metrics *m = metrics_new(&cfg);
    struct metrics_worker *w = m ? metrics_worker_new(m) : NULL;
    if (!w)
        abort();
    for (size_t i = 0; i < n; i++)
        metrics_record_event(w, &events[i]);
    struct dynbuf b;
    dynbuf_init(&b, 64u << 20);
    if (metrics_render(m, openmetrics ? EXPO_OPENMETRICS : EXPO_TEXT, &b) != 0)
        abort();

    bool eof = false;
    const char *p = b.data, *end = b.data + b.len;
    if (b.len == 0 || end[-1] != '\n')
        abort();
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        check_line(p, nl, openmetrics, &eof);
        p = nl + 1;
    }
    if (openmetrics != eof)
        abort();
    for (size_t i = 0; i < want_count; i++)
        if (!wants[i].seen) /* added but not shown */
            abort();
    dynbuf_free(&b);
    metrics_free(m);
    return 0;
}

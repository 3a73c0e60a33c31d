/*
 * mapping.c - event kinds, field mappings and the JSON pointer engine
 * (event_kinds.h, docs/events.md "Field mappings").
 *
 * Job: read our fields of a kind from any JSON shape. A message is parsed
 * once, strictly (event.c's scanners: RFC 8259, UTF-8, depth, size), into
 * the decoder's token array: one token per value in document order, each
 * knowing where its subtree ends, so a pointer lookup skips whole values.
 * Each field of the kind is then read through its compiled source (an RFC
 * 6901 pointer, a sum or difference of two, or a literal) and checked by
 * the same rules as the native field. The kinds without a single-pass
 * decoder (GPU samples, FOCUS rows) use this path with the identity
 * mapping ("/field"), so both ways of reading a kind share every rule.
 *
 * Precedence of reasons: too_large, then syntax (too_deep / invalid_json as
 * event.c, trailing_data, not_object), then a string that is not UTF-8 and
 * not a label (invalid_json), then the first field error in the order of
 * the kind's field table. A pointer that meets a key twice on its way is
 * duplicate_field (which value was meant is unknowable).
 *
 * Thread-safety: a field_mapping is immutable once compiled and may be
 * shared; the token array belongs to its decoder (one thread). It grows to
 * the largest message seen and is then reused: no malloc per event once
 * warm.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode_internal.h"
#include "money.h"

/* ---- kinds --------------------------------------------------------------- */

static const char *const kind_names[EVENT_KIND_COUNT] = {"cost", "gpu_utilization", "focus"};

const char *event_kind_name(enum event_kind kind)
{
    return (unsigned)kind < EVENT_KIND_COUNT ? kind_names[kind] : "unknown";
}

int event_kind_parse(const char *s, size_t len)
{
    for (int k = 0; k < EVENT_KIND_COUNT; k++)
        if (strlen(kind_names[k]) == len && memcmp(kind_names[k], s, len) == 0)
            return k;
    return -1;
}

/* ---- the fields of each kind --------------------------------------------- */

enum ftype {
    FT_LABEL,  /* a label value (string) */
    FT_GPU_ID, /* a label value, or a non-negative integer kept as its text */
    FT_TEXT,   /* a string that is not a label (ids, currency) */
    FT_UNUM,   /* a non-negative number at `scale` decimals */
    FT_SNUM,   /* a signed amount of dollars, number or decimal string */
    FT_TIME,   /* RFC 3339 string or epoch seconds */
    FT_OBJECT, /* an object (labels, Tags) */
};

enum fmax {
    MX_NONE,
    MX_COST,
    MX_TOKENS,
    MX_GPUS,
    MX_DURATION,
    MX_INTERVAL,
    MX_UTIL,
    MX_MEM,
    MX_MIB
};

struct field_def {
    const char *name;
    uint8_t type; /* enum ftype */
    int8_t scale; /* FT_UNUM */
    bool exact;   /* FT_UNUM: no non-zero digit past the scale */
    uint8_t max;  /* enum fmax */
    uint8_t bad;  /* the reason for a bad value */
};

#define LABEL(n)                                                                                   \
    {                                                                                              \
        n, FT_LABEL, 0, false, MX_NONE, REJECT_INVALID_LABEL                                       \
    }

static const struct field_def cost_fields[CF_COUNT] = {
    [CF_TEAM] = LABEL("team"),
    [CF_PROJECT] = LABEL("project"),
    [CF_SOURCE] = LABEL("source"),
    [CF_PROVIDER] = LABEL("provider"),
    [CF_MODEL] = LABEL("model"),
    [CF_INSTANCE_TYPE] = LABEL("instance_type"),
    [CF_GPU_TYPE] = LABEL("gpu_type"),
    [CF_COST] = {"cost_usd", FT_UNUM, 9, false, MX_COST, REJECT_INVALID_COST},
    [CF_INPUT_TOKENS] = {"input_tokens", FT_UNUM, 0, true, MX_TOKENS, REJECT_INVALID_TOKENS},
    [CF_CACHED_INPUT_TOKENS] = {"cached_input_tokens", FT_UNUM, 0, true, MX_TOKENS,
                                REJECT_INVALID_TOKENS},
    [CF_CACHE_WRITE_TOKENS] = {"cache_write_tokens", FT_UNUM, 0, true, MX_TOKENS,
                               REJECT_INVALID_TOKENS},
    [CF_OUTPUT_TOKENS] = {"output_tokens", FT_UNUM, 0, true, MX_TOKENS, REJECT_INVALID_TOKENS},
    [CF_GPU_COUNT] = {"gpu_count", FT_UNUM, 0, true, MX_GPUS, REJECT_INVALID_USAGE},
    [CF_DURATION] = {"duration_seconds", FT_UNUM, 9, false, MX_DURATION, REJECT_INVALID_USAGE},
    [CF_TIMESTAMP] = {"timestamp", FT_TIME, 0, false, MX_NONE, REJECT_INVALID_TIMESTAMP},
    [CF_EVENT_ID] = {"event_id", FT_TEXT, 0, false, MX_NONE, REJECT_WRONG_TYPE},
    [CF_REQUEST_ID] = {"request_id", FT_TEXT, 0, false, MX_NONE, REJECT_WRONG_TYPE},
    [CF_LABELS] = {"labels", FT_OBJECT, 0, false, MX_NONE, REJECT_WRONG_TYPE},
};

static const struct field_def gpu_fields[GF_COUNT] = {
    [GF_TIMESTAMP] = {"timestamp", FT_TIME, 0, false, MX_NONE, REJECT_INVALID_TIMESTAMP},
    [GF_INTERVAL] = {"interval_seconds", FT_UNUM, 9, true, MX_INTERVAL, REJECT_INVALID_INTERVAL},
    [GF_NODE] = LABEL("node"),
    [GF_GPU] = {"gpu", FT_GPU_ID, 0, false, MX_NONE, REJECT_INVALID_LABEL},
    [GF_GPU_TYPE] = LABEL("gpu_type"),
    [GF_INSTANCE_TYPE] = LABEL("instance_type"),
    [GF_TEAM] = LABEL("team"),
    [GF_PROJECT] = LABEL("project"),
    [GF_NAMESPACE] = LABEL("namespace"),
    [GF_POD] = LABEL("pod"),
    [GF_UTILIZATION] = {"utilization", FT_UNUM, 9, false, MX_UTIL, REJECT_INVALID_UTILIZATION},
    [GF_UTILIZATION_PERCENT] = {"utilization_percent", FT_UNUM, 7, false, MX_UTIL,
                                REJECT_INVALID_UTILIZATION},
    [GF_MEMORY_BYTES] = {"memory_used_bytes", FT_UNUM, 0, true, MX_MEM, REJECT_INVALID_USAGE},
    [GF_MEMORY_MIB] = {"memory_used_mib", FT_UNUM, 0, true, MX_MIB, REJECT_INVALID_USAGE},
};

static const struct field_def focus_fields[FF_COUNT] = {
    [FF_BILLED_COST] = {"BilledCost", FT_SNUM, 9, false, MX_COST, REJECT_INVALID_COST},
    [FF_EFFECTIVE_COST] = {"EffectiveCost", FT_SNUM, 9, false, MX_COST, REJECT_INVALID_COST},
    [FF_CURRENCY] = {"BillingCurrency", FT_TEXT, 0, false, MX_NONE, REJECT_INVALID_CURRENCY},
    [FF_CHARGE_CATEGORY] = LABEL("ChargeCategory"),
    [FF_SERVICE] = LABEL("ServiceName"),
    [FF_PROVIDER] = LABEL("ProviderName"),
    [FF_SUB_ACCOUNT] = LABEL("SubAccountName"),
    [FF_RESOURCE_ID] = {"ResourceId", FT_TEXT, 0, false, MX_NONE, REJECT_WRONG_TYPE},
    [FF_PERIOD_START] = {"ChargePeriodStart", FT_TIME, 0, false, MX_NONE, REJECT_INVALID_TIMESTAMP},
    [FF_TAGS] = {"Tags", FT_OBJECT, 0, false, MX_NONE, REJECT_WRONG_TYPE},
};

static const struct field_def *const kind_fields[EVENT_KIND_COUNT] = {cost_fields, gpu_fields,
                                                                      focus_fields};
static const size_t kind_nfields[EVENT_KIND_COUNT] = {CF_COUNT, GF_COUNT, FF_COUNT};

static int field_index(enum event_kind kind, const char *name)
{
    for (size_t i = 0; i < kind_nfields[kind]; i++)
        if (strcmp(kind_fields[kind][i].name, name) == 0)
            return (int)i;
    return -1;
}

bool field_mapping_field_known(const char *name)
{
    for (int k = 0; k < EVENT_KIND_COUNT; k++)
        if (field_index((enum event_kind)k, name) >= 0)
            return true;
    return false;
}

/* ---- compiled sources ------------------------------------------------------ */

struct jseg {
    char *name; /* unescaped reference token (~0 ~1 resolved) */
    size_t len;
    long index; /* as an array index, or -1 if it is not one */
};

struct jptr {
    struct jseg *seg;
    size_t n;
};

enum src_type { SRC_NONE, SRC_PTR, SRC_SUM, SRC_DIFF, SRC_LIT };

struct source {
    uint8_t type;     /* enum src_type */
    struct jptr a, b; /* SRC_PTR: a; SRC_SUM/SRC_DIFF: a + b, a - b */
    char *lit_text;   /* SRC_LIT: owned */
    struct jtok lit;  /* SRC_LIT: the literal as a value token */
};

struct field_mapping {
    enum event_kind kind;
    struct source src[KIND_MAX_FIELDS];
};

static void jptr_free(struct jptr *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->seg[i].name);
    free(p->seg);
    memset(p, 0, sizeof *p);
}

/* Parses an RFC 6901 pointer of n bytes at s (starting with '/'). */
static int jptr_parse(const char *s, size_t n, struct jptr *out, char *msg, size_t mlen)
{
    memset(out, 0, sizeof *out);
    if (n == 0 || s[0] != '/')
        return snprintf(msg, mlen, "'%.*s' is not a JSON pointer (it must start with '/')", (int)n,
                        s),
               -EINVAL;
    size_t i = 1;
    for (;;) {
        size_t start = i;
        while (i < n && s[i] != '/')
            i++;
        struct jseg *grown = realloc(out->seg, (out->n + 1) * sizeof *grown);
        char *name = malloc(i - start + 1);
        if (!grown || !name) {
            free(name);
            if (grown)
                out->seg = grown;
            jptr_free(out);
            snprintf(msg, mlen, "out of memory");
            return -ENOMEM;
        }
        out->seg = grown;
        size_t len = 0;
        for (size_t k = start; k < i; k++) {
            if (s[k] != '~') {
                name[len++] = s[k];
            } else if (k + 1 < i && (s[k + 1] == '0' || s[k + 1] == '1')) {
                name[len++] = s[k + 1] == '0' ? '~' : '/';
                k++;
            } else {
                free(name);
                jptr_free(out);
                snprintf(msg, mlen,
                         "'%.*s': '~' must be followed by 0 (for ~) or 1 (for /) in a JSON "
                         "pointer",
                         (int)n, s);
                return -EINVAL;
            }
        }
        name[len] = '\0';
        long index = -1;
        /* RFC 6901: an array index is 0 or digits without a leading zero. */
        if (len > 0 && len <= 9 && (len == 1 || name[0] != '0')) {
            index = 0;
            for (size_t k = 0; k < len && index >= 0; k++)
                index = name[k] >= '0' && name[k] <= '9' ? index * 10 + (name[k] - '0') : -1;
        }
        out->seg[out->n++] = (struct jseg){name, len, index};
        if (i >= n)
            return 0;
        i++; /* past '/' */
    }
}

static void source_free(struct source *s)
{
    jptr_free(&s->a);
    jptr_free(&s->b);
    free(s->lit_text);
    memset(s, 0, sizeof *s);
}

/* Whether s[0..n) is exactly one JSON number. */
static bool number_text(const char *s, size_t n)
{
    struct parser ps = {.end = s + n};
    struct jnum num;
    const char *p = s;
    if (n == 0 || (*p != '-' && (*p < '0' || *p > '9')))
        return false;
    return decode_number(&ps, &p, &num) == REJECT_NONE && p == s + n;
}

/* Finds " + /" or " - /" (the operators of an expression). */
static const char *find_operator(const char *s)
{
    for (const char *p = s; (p = strchr(p, ' ')) != NULL; p++)
        if ((p[1] == '+' || p[1] == '-') && p[2] == ' ' && p[3] == '/')
            return p;
    return NULL;
}

/* Compiles a source; def NULL checks the syntax only (config load). */
static int source_compile(const char *text, const struct field_def *def, struct source *out,
                          char *msg, size_t mlen)
{
    memset(out, 0, sizeof *out);
    if (text[0] == '=') {
        const char *lit = text + 1;
        size_t n = strlen(lit);
        bool num = number_text(lit, n);
        if (def && def->type == FT_OBJECT)
            return snprintf(msg, mlen, "an object field cannot be a literal"), -EINVAL;
        if (def && (def->type == FT_UNUM || def->type == FT_SNUM) && !num)
            return snprintf(msg, mlen, "'%s' is not a number, and the field is numeric", lit),
                   -EINVAL;
        if (!(out->lit_text = strdup(lit)))
            return snprintf(msg, mlen, "out of memory"), -ENOMEM;
        out->type = SRC_LIT;
        out->lit.ptr = out->lit_text;
        out->lit.len = (uint32_t)n;
        out->lit.end = 1;
        /* Labels and texts take the literal as a string, numbers (and an
         * epoch timestamp) as a number. */
        bool as_number =
            def && (def->type == FT_UNUM || def->type == FT_SNUM || (def->type == FT_TIME && num));
        out->lit.type = as_number ? JT_NUMBER : JT_STRING;
        if (!as_number && !utf8_valid(lit, n))
            return source_free(out), snprintf(msg, mlen, "the literal is not UTF-8"), -EINVAL;
        return 0;
    }
    if (text[0] != '/')
        return snprintf(msg, mlen,
                        "'%s' is not a source: write \"/json/pointer\", \"/a - /b\", \"/a + /b\" "
                        "or \"=literal\"",
                        text),
               -EINVAL;
    const char *op = find_operator(text);
    int rc;
    if (!op) {
        out->type = SRC_PTR;
        if ((rc = jptr_parse(text, strlen(text), &out->a, msg, mlen)) != 0)
            out->type = SRC_NONE;
        return rc;
    }
    if (def && def->type != FT_UNUM)
        return snprintf(msg, mlen,
                        "'%s': a sum or difference only fits a non-negative numeric "
                        "field",
                        text),
               -EINVAL;
    if (find_operator(op + 3))
        return snprintf(msg, mlen, "'%s': at most one + or - per source", text), -EINVAL;
    out->type = op[1] == '+' ? SRC_SUM : SRC_DIFF;
    if ((rc = jptr_parse(text, (size_t)(op - text), &out->a, msg, mlen)) != 0 ||
        (rc = jptr_parse(op + 3, strlen(op + 3), &out->b, msg, mlen)) != 0) {
        source_free(out);
        return rc;
    }
    return 0;
}

int field_mapping_check_source(const char *source, char *errbuf, size_t errlen)
{
    struct source s;
    int rc = source_compile(source, NULL, &s, errbuf, errlen);
    source_free(&s);
    return rc;
}

void field_mapping_free(struct field_mapping *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < KIND_MAX_FIELDS; i++)
        source_free(&m->src[i]);
    free(m);
}

enum event_kind field_mapping_kind(const struct field_mapping *m)
{
    return m->kind;
}

struct field_mapping *field_mapping_compile(enum event_kind kind, const struct string_map *fields,
                                            char *errbuf, size_t errlen)
{
    char msg[384];
    if ((unsigned)kind >= EVENT_KIND_COUNT) {
        snprintf(errbuf, errlen, "unknown event kind");
        return NULL;
    }
    struct field_mapping *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    m->kind = kind;
    for (size_t i = 0; i < fields->count; i++) {
        int f = field_index(kind, fields->keys[i]);
        if (f < 0) {
            snprintf(errbuf, errlen, "%s: not a field of %s events (see docs/events.md)",
                     fields->keys[i], event_kind_name(kind));
            goto fail;
        }
        source_free(&m->src[f]);
        if (source_compile(fields->values[i], &kind_fields[kind][f], &m->src[f], msg, sizeof msg) !=
            0) {
            snprintf(errbuf, errlen, "%s: %s", fields->keys[i], msg);
            goto fail;
        }
    }
    return m;
fail:
    field_mapping_free(m);
    return NULL;
}

/* ---- built-in profiles ----------------------------------------------------- */

/* String literals as the char * of struct string_map, never written to. */
#define S(x) ((char *)(x))

static char *openai_keys[] = {S("model"),         S("input_tokens"), S("cached_input_tokens"),
                              S("output_tokens"), S("timestamp"),    S("event_id"),
                              S("team"),          S("project"),      S("provider"),
                              S("source")};
static char *openai_values[] = {S("/model"),
                                S("/usage/prompt_tokens - /usage/prompt_tokens_details/"
                                  "cached_tokens"),
                                S("/usage/prompt_tokens_details/cached_tokens"),
                                S("/usage/completion_tokens"),
                                S("/created"),
                                S("/id"),
                                S("/metadata/team"),
                                S("/metadata/project"),
                                S("=openai"),
                                S("=openai-api")};
static char *anthropic_keys[] = {S("model"),
                                 S("input_tokens"),
                                 S("cached_input_tokens"),
                                 S("cache_write_tokens"),
                                 S("output_tokens"),
                                 S("event_id"),
                                 S("team"),
                                 S("project"),
                                 S("provider"),
                                 S("source")};
static char *anthropic_values[] = {S("/model"),
                                   S("/usage/input_tokens"),
                                   S("/usage/cache_read_input_tokens"),
                                   S("/usage/cache_creation_input_tokens"),
                                   S("/usage/output_tokens"),
                                   S("/id"),
                                   S("/metadata/team"),
                                   S("/metadata/project"),
                                   S("=anthropic"),
                                   S("=anthropic-api")};
static char *dcgm_keys[] = {
    S("timestamp"),           S("interval_seconds"), S("node"),      S("gpu"), S("gpu_type"),
    S("utilization_percent"), S("memory_used_mib"),  S("namespace"), S("pod")};
static char *dcgm_values[] = {S("/timestamp"),
                              S("/interval_seconds"),
                              S("/Hostname"),
                              S("/gpu"),
                              S("/modelName"),
                              S("/DCGM_FI_DEV_GPU_UTIL"),
                              S("/DCGM_FI_DEV_FB_USED"),
                              S("/namespace"),
                              S("/pod")};

#define N(a) (sizeof(a) / sizeof((a)[0]))
_Static_assert(N(openai_keys) == N(openai_values), "openai profile");
_Static_assert(N(anthropic_keys) == N(anthropic_values), "anthropic profile");
_Static_assert(N(dcgm_keys) == N(dcgm_values), "dcgm profile");

static const struct {
    const char *name;
    enum event_kind kind;
    struct string_map map;
} builtins[] = {
    {"openai", EVENT_KIND_COST, {openai_keys, openai_values, N(openai_keys)}},
    {"anthropic", EVENT_KIND_COST, {anthropic_keys, anthropic_values, N(anthropic_keys)}},
    {"dcgm", EVENT_KIND_GPU_UTILIZATION, {dcgm_keys, dcgm_values, N(dcgm_keys)}},
};

const struct string_map *field_mapping_builtin(const char *name, enum event_kind *kind)
{
    for (size_t i = 0; i < N(builtins); i++)
        if (strcmp(builtins[i].name, name) == 0) {
            if (kind)
                *kind = builtins[i].kind;
            return &builtins[i].map;
        }
    return NULL;
}

/* ---- the decoder's kind state ----------------------------------------------- */

int decode_kinds_init(struct event_decoder *d)
{
    char *keys[KIND_MAX_FIELDS], *values[KIND_MAX_FIELDS];
    char buf[KIND_MAX_FIELDS][32];
    char err[256];
    size_t depth = d->limits.max_depth > 0 ? (size_t)d->limits.max_depth : 0;
    if (depth > d->limits.max_bytes)
        depth = d->limits.max_bytes;
    if (!(d->doc.open = malloc((depth + 2) * sizeof *d->doc.open)))
        return -ENOMEM;
    for (int k = EVENT_KIND_GPU_UTILIZATION; k < EVENT_KIND_COUNT; k++) {
        size_t n = kind_nfields[k];
        for (size_t i = 0; i < n; i++) {
            snprintf(buf[i], sizeof buf[i], "/%s", kind_fields[k][i].name);
            keys[i] = (char *)kind_fields[k][i].name;
            values[i] = buf[i];
        }
        struct string_map map = {keys, values, n};
        if (!(d->native[k] = field_mapping_compile((enum event_kind)k, &map, err, sizeof err)))
            return -ENOMEM;
    }
    return 0;
}

void decode_kinds_free(struct event_decoder *d)
{
    for (int k = 0; k < EVENT_KIND_COUNT; k++)
        field_mapping_free(d->native[k]);
    free(d->doc.tok);
    free(d->doc.open);
}

/* ---- the token tree ---------------------------------------------------------- */

static inline bool ws(char c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

static inline const char *skip_ws(const char *p, const char *end)
{
    while (p < end && ws(*p))
        p++;
    return p;
}

/* A new token; NULL when the array cannot grow (treated as too_large). */
static struct jtok *push(struct json_doc *doc)
{
    if (doc->count == doc->cap) {
        size_t cap = doc->cap ? doc->cap * 2 : 256;
        struct jtok *grown = realloc(doc->tok, cap * sizeof *grown);
        if (!grown)
            return NULL;
        doc->tok = grown;
        doc->cap = cap;
        doc->grows++;
    }
    struct jtok *t = &doc->tok[doc->count++];
    memset(t, 0, sizeof *t);
    return t;
}

/* A string token at *pp (after its opening quote); keys must be UTF-8. */
static enum reject_reason string_token(struct parser *ps, const char **pp, struct jtok *t, bool key)
{
    struct jstr s;
    enum reject_reason r = decode_string(ps, pp, &s);
    if (r)
        return r;
    if (s.escaped)
        ps->used += s.len; /* every string of the tree stays */
    if (key && s.high && !utf8_valid(s.ptr, s.len))
        return REJECT_INVALID_JSON;
    t->type = JT_STRING;
    t->ptr = s.ptr;
    t->len = (uint32_t)s.len;
    t->flags = (uint8_t)((s.high && !key ? JT_HIGH : 0) | (s.nul ? JT_NUL : 0));
    return REJECT_NONE;
}

/* "key" ws ':' ws at *pp (not whitespace). */
static enum reject_reason key_token(struct json_doc *doc, struct parser *ps, const char **pp)
{
    const char *p = *pp;
    if (p == ps->end || *p != '"')
        return REJECT_INVALID_JSON;
    p++;
    struct jtok *t = push(doc);
    if (!t)
        return REJECT_TOO_LARGE;
    enum reject_reason r = string_token(ps, &p, t, true);
    if (r)
        return r;
    t->end = (uint32_t)doc->count;
    p = skip_ws(p, ps->end);
    if (p == ps->end || *p != ':')
        return REJECT_INVALID_JSON;
    *pp = skip_ws(p + 1, ps->end);
    return REJECT_NONE;
}

static enum reject_reason doc_parse(struct event_decoder *d, const char *buf, size_t len)
{
    struct json_doc *doc = &d->doc;
    doc->count = 0;
    if (len > d->limits.max_bytes)
        return REJECT_TOO_LARGE;
    struct parser ps = {.end = buf + len,
                        .scratch = d->scratch,
                        .used = 0,
                        .nest = d->nest,
                        .max_depth = d->max_depth};
    const char *p = buf, *end = buf + len;
    enum reject_reason r;
    long depth = 0;
    if (len >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0)
        p += 3;
    p = skip_ws(p, end);
    for (;;) {
        /* A value starts at p. */
        if (p == end)
            goto syntax;
        struct jtok *t = push(doc);
        if (!t)
            return REJECT_TOO_LARGE;
        uint32_t idx = (uint32_t)(doc->count - 1);
        char c = *p;
        if (c == '{' || c == '[') {
            if (++depth > d->max_depth)
                return REJECT_TOO_DEEP; /* no syntax error before it: the prescan agrees */
            t->type = c == '{' ? JT_OBJECT : JT_ARRAY;
            t->ptr = p;
            doc->open[depth] = idx;
            p = skip_ws(p + 1, end);
            if (p == end)
                goto syntax;
            if (*p == (c == '{' ? '}' : ']')) {
                p++;
                doc->tok[idx].end = (uint32_t)doc->count;
                depth--;
            } else {
                if (c == '{' && (r = key_token(doc, &ps, &p)))
                    goto fail;
                continue;
            }
        } else {
            const char *start = p;
            if (c == '"') {
                p++;
                if ((r = string_token(&ps, &p, t, false)))
                    goto fail;
            } else if (c == 't' && end - p >= 4 && memcmp(p, "true", 4) == 0) {
                t->type = JT_TRUE;
                p += 4;
            } else if (c == 'f' && end - p >= 5 && memcmp(p, "false", 5) == 0) {
                t->type = JT_FALSE;
                p += 5;
            } else if (c == 'n' && end - p >= 4 && memcmp(p, "null", 4) == 0) {
                t->type = JT_NULL;
                p += 4;
            } else if (c == '-' || (c >= '0' && c <= '9')) {
                struct jnum n;
                if (decode_number(&ps, &p, &n))
                    goto syntax;
                t->type = JT_NUMBER;
                t->ptr = start;
                t->len = (uint32_t)(p - start);
            } else {
                goto syntax;
            }
            doc->tok[idx].end = idx + 1;
        }
        /* A value ended at p: close containers, or go to the next one. */
        for (;;) {
            if (depth == 0)
                goto done;
            p = skip_ws(p, end);
            if (p == end)
                goto syntax;
            struct jtok *open = &doc->tok[doc->open[depth]];
            bool object = open->type == JT_OBJECT;
            if (*p == (object ? '}' : ']')) {
                p++;
                open->end = (uint32_t)doc->count;
                depth--;
                continue;
            }
            if (*p != ',')
                goto syntax;
            p = skip_ws(p + 1, end);
            if (object && (r = key_token(doc, &ps, &p)))
                goto fail;
            break;
        }
    }
done:
    if (skip_ws(p, end) != end || doc->tok[0].type != JT_OBJECT) {
        /* Valid JSON followed by more, or not an object: a string that is
         * not UTF-8 makes it no JSON at all (as event.c, where the prescan
         * still has the first word; here even a label's string counts, as
         * which strings are labels is only known for an object). */
        for (size_t i = 0; i < doc->count; i++)
            if ((doc->tok[i].flags & JT_HIGH) && !utf8_valid(doc->tok[i].ptr, doc->tok[i].len))
                return decode_syntax_reason(d, buf, len);
        if (skip_ws(p, end) != end)
            return decode_trailing_reason(d, buf, len);
        return REJECT_NOT_OBJECT;
    }
    return REJECT_NONE;
fail:
    if (r == REJECT_TOO_LARGE || r == REJECT_TOO_DEEP)
        return r;
syntax:
    return decode_syntax_reason(d, buf, len);
}

/* The member of object token obj named key: its value's index, -1 when
 * absent, -2 when the key is there twice. */
static long member(const struct json_doc *doc, uint32_t obj, const char *key, size_t len)
{
    long found = -1;
    for (uint32_t i = obj + 1; i < doc->tok[obj].end; i = doc->tok[i + 1].end) {
        const struct jtok *k = &doc->tok[i];
        if (k->len == len && memcmp(k->ptr, key, len) == 0) {
            if (found >= 0)
                return -2;
            found = (long)i + 1;
        }
    }
    return found;
}

#define LOOKUP_ABSENT -1
#define LOOKUP_DUP    -2
#define LOOKUP_TYPE   -3

/* The value at pointer p: its index, or LOOKUP_*. A null on the way (or at
 * the end) is absent; a scalar on the way is the wrong type. */
static long lookup(const struct json_doc *doc, const struct jptr *p)
{
    uint32_t cur = 0;
    for (size_t s = 0; s < p->n; s++) {
        const struct jtok *t = &doc->tok[cur];
        const struct jseg *seg = &p->seg[s];
        if (t->type == JT_OBJECT) {
            long v = member(doc, cur, seg->name, seg->len);
            if (v < 0)
                return v;
            cur = (uint32_t)v;
        } else if (t->type == JT_ARRAY) {
            if (seg->index < 0)
                return LOOKUP_ABSENT;
            uint32_t i = cur + 1;
            for (long k = 0; k < seg->index && i < t->end; k++)
                i = doc->tok[i].end;
            if (i >= t->end)
                return LOOKUP_ABSENT;
            cur = i;
        } else if (t->type == JT_NULL) {
            return LOOKUP_ABSENT;
        } else {
            return LOOKUP_TYPE;
        }
    }
    return doc->tok[cur].type == JT_NULL ? LOOKUP_ABSENT : (long)cur;
}

long decode_member_string(struct event_decoder *d, uint32_t obj, const char *key, size_t len)
{
    long v = member(&d->doc, obj, key, len);
    if (v < 0)
        return v;
    struct jtok *t = &d->doc.tok[v];
    if (t->type == JT_NULL)
        return -1;
    if (t->type != JT_STRING)
        return -3;
    return v;
}

/* ---- fields --------------------------------------------------------------- */

static uint64_t field_max(const struct event_decoder *d, uint8_t max)
{
    switch (max) {
    case MX_COST:
        return d->limits.max_cost_nanos;
    case MX_TOKENS:
        return d->limits.max_tokens;
    case MX_GPUS:
        return EVENT_MAX_GPU_COUNT;
    case MX_DURATION:
        return MONEY_EXACT_MAX_UNITS * NANOS_PER_UNIT;
    case MX_INTERVAL:
        return GPU_SAMPLE_MAX_INTERVAL_NANOS;
    case MX_UTIL:
        return UTIL_PPB_ONE;
    case MX_MEM:
        return EVENT_MAX_TOKENS; /* 2^53: exact as a Prometheus float */
    case MX_MIB:
        return EVENT_MAX_TOKENS >> 20;
    default:
        return UINT64_MAX;
    }
}

/* The number of a token's text (a number, or for FT_SNUM a string). */
static bool token_number(const struct jtok *t, struct jnum *n)
{
    struct parser ps = {.end = t->ptr + t->len};
    const char *p = t->ptr;
    if (t->len == 0 || (*p != '-' && (*p < '0' || *p > '9')))
        return false;
    return decode_number(&ps, &p, n) == REJECT_NONE && p == t->ptr + t->len;
}

/* A non-negative number token at the field's scale; false if invalid. */
static bool unsigned_value(const struct field_def *def, uint64_t max, const struct jtok *t,
                           uint64_t *out)
{
    struct jnum n;
    bool exact;
    if (!token_number(t, &n) || n.neg)
        return false;
    if (decode_fixed(&n, def->scale, max, out, &exact, NULL))
        return false;
    return !def->exact || exact;
}

/* The token of a pointer or literal source, NULL if absent. */
static enum reject_reason source_token(struct event_decoder *d, const struct source *src,
                                       const struct jptr *p, struct jtok **out)
{
    *out = NULL;
    if (src->type == SRC_LIT) {
        *out = (struct jtok *)&src->lit; /* never written: literals carry no flags */
        return REJECT_NONE;
    }
    long i = lookup(&d->doc, p);
    if (i == LOOKUP_DUP)
        return REJECT_DUPLICATE_FIELD;
    if (i == LOOKUP_TYPE)
        return REJECT_WRONG_TYPE;
    if (i >= 0)
        *out = &d->doc.tok[i];
    return REJECT_NONE;
}

static enum reject_reason label_value(struct event_decoder *d, const struct field_def *def,
                                      struct jtok *t, struct fval *v)
{
    if (t->type == JT_NUMBER && def->type == FT_GPU_ID) {
        struct jnum n;
        if (!token_number(t, &n) || n.neg || n.n_frac || n.exp)
            return REJECT_WRONG_TYPE;
    } else if (t->type != JT_STRING) {
        return REJECT_WRONG_TYPE;
    }
    /* Mark tokens of the message (a literal is the mapping's, shared). */
    if (t >= d->doc.tok && t < d->doc.tok + d->doc.count)
        t->flags |= JT_LABEL;
    enum reject_reason r =
        decode_check_label(d, t->ptr, t->len, (t->flags & JT_HIGH) != 0, (t->flags & JT_NUL) != 0);
    if (r)
        return r;
    v->present = true;
    v->str.ptr = t->ptr;
    v->str.len = t->len;
    return REJECT_NONE;
}

static enum reject_reason time_value(struct event_decoder *d, const struct jtok *t, struct fval *v)
{
    if (t->type == JT_STRING) {
        int64_t ms;
        if (parse_rfc3339(t->ptr, t->len, &ms) || !decode_timestamp_in_window(d, ms))
            return REJECT_INVALID_TIMESTAMP;
        v->ms = ms;
        v->ns = (uint64_t)ms * 1000000u;
    } else if (t->type == JT_NUMBER) {
        struct jnum n;
        uint64_t ms, ns;
        bool nonzero;
        /* Epoch seconds from 1970 up to 2100, as event.c. */
        if (!token_number(t, &n) || decode_fixed(&n, 3, 4102444800000ULL, &ms, NULL, &nonzero) ||
            (n.neg && nonzero) || !decode_timestamp_in_window(d, (int64_t)ms) ||
            decode_fixed(&n, 9, 4102444800000000000ULL, &ns, NULL, NULL))
            return REJECT_INVALID_TIMESTAMP;
        v->ms = (int64_t)ms;
        v->ns = ns;
    } else {
        return REJECT_WRONG_TYPE;
    }
    v->present = true;
    return REJECT_NONE;
}

static enum reject_reason resolve(struct event_decoder *d, const struct field_def *def,
                                  const struct source *src, struct fval *v)
{
    struct jtok *t, *u;
    enum reject_reason r;
    memset(v, 0, sizeof *v);
    if (src->type == SRC_NONE)
        return REJECT_NONE;
    if ((r = source_token(d, src, &src->a, &t)))
        return r;
    if (src->type == SRC_SUM || src->type == SRC_DIFF) {
        /* A missing left side: the field is absent; a missing right side
         * counts 0. Each side is checked as the field would be. */
        if ((r = source_token(d, src, &src->b, &u)))
            return r;
        if (!t)
            return REJECT_NONE;
        uint64_t a, b = 0;
        if (t->type != JT_NUMBER || (u && u->type != JT_NUMBER))
            return REJECT_WRONG_TYPE;
        if (!unsigned_value(def, UINT64_MAX, t, &a) ||
            (u && !unsigned_value(def, UINT64_MAX, u, &b)))
            return def->bad;
        if (src->type == SRC_SUM ? __builtin_add_overflow(a, b, &v->u)
                                 : __builtin_sub_overflow(a, b, &v->u))
            return def->bad; /* a negative difference is a bad value */
        if (v->u > field_max(d, def->max))
            return def->bad;
        v->present = true;
        return REJECT_NONE;
    }
    if (!t)
        return REJECT_NONE;
    switch ((enum ftype)def->type) {
    case FT_LABEL:
    case FT_GPU_ID:
        return label_value(d, def, t, v);
    case FT_TEXT:
        if (t->type != JT_STRING)
            return REJECT_WRONG_TYPE;
        v->present = true;
        v->str.ptr = t->ptr;
        v->str.len = t->len;
        return REJECT_NONE;
    case FT_UNUM:
        if (t->type != JT_NUMBER)
            return REJECT_WRONG_TYPE;
        if (!unsigned_value(def, field_max(d, def->max), t, &v->u))
            return def->bad;
        v->present = true;
        return REJECT_NONE;
    case FT_SNUM: {
        struct jnum n;
        uint64_t mag;
        if (t->type != JT_NUMBER && t->type != JT_STRING)
            return REJECT_WRONG_TYPE;
        if (!token_number(t, &n) || decode_fixed(&n, 9, field_max(d, def->max), &mag, NULL, NULL))
            return def->bad;
        v->s = n.neg ? -(int64_t)mag : (int64_t)mag;
        v->present = true;
        return REJECT_NONE;
    }
    case FT_TIME:
        return time_value(d, t, v);
    case FT_OBJECT:
        if (t->type != JT_OBJECT)
            return REJECT_WRONG_TYPE;
        v->tok = (uint32_t)(t - d->doc.tok);
        v->present = true;
        return REJECT_NONE;
    }
    return REJECT_NONE;
}

enum reject_reason decode_mapped_fields(struct event_decoder *d, const struct field_mapping *m,
                                        const char *buf, size_t len, struct fval *vals)
{
    enum reject_reason r = doc_parse(d, buf, len), first = REJECT_NONE;
    if (r)
        return r;
    const struct field_def *defs = kind_fields[m->kind];
    for (size_t i = 0; i < kind_nfields[m->kind]; i++) {
        r = resolve(d, &defs[i], &m->src[i], &vals[i]);
        if (r && !first)
            first = r;
    }
    /* The extra labels of a cost event's "labels" object are labels
     * (event_decode_mapped reads them after this). */
    if (m->kind == EVENT_KIND_COST && vals[CF_LABELS].present) {
        struct json_doc *doc = &d->doc;
        uint32_t obj = vals[CF_LABELS].tok;
        for (uint32_t i = obj + 1; i < doc->tok[obj].end; i = doc->tok[i + 1].end)
            for (size_t e = 0; e < d->limits.extra_label_count; e++)
                if (doc->tok[i].len == d->extra_len[e] &&
                    memcmp(doc->tok[i].ptr, d->limits.extra_label_names[e], d->extra_len[e]) == 0)
                    doc->tok[i + 1].flags |= JT_LABEL;
    }
    /* FOCUS Tags holding team and project are labels (focus_row.c reads
     * them); a value of another type is its error there. */
    if (m->kind == EVENT_KIND_FOCUS && vals[FF_TAGS].present) {
        const char *tags[2] = {d->limits.focus_team_tag ? d->limits.focus_team_tag : "team",
                               d->limits.focus_project_tag ? d->limits.focus_project_tag
                                                           : "project"};
        for (int k = 0; k < 2; k++) {
            long t = member(&d->doc, vals[FF_TAGS].tok, tags[k], strlen(tags[k]));
            if (t >= 0)
                d->doc.tok[t].flags |= JT_LABEL;
        }
    }
    /* Strings that are not labels must be UTF-8 (RFC 8259 section 8.1):
     * invalid_json, which wins over any field error as in event.c. */
    for (size_t i = 0; i < d->doc.count; i++) {
        const struct jtok *t = &d->doc.tok[i];
        if ((t->flags & (JT_HIGH | JT_LABEL)) == JT_HIGH && !utf8_valid(t->ptr, t->len))
            return REJECT_INVALID_JSON;
    }
    return first;
}

/* ---- cost events through a mapping ------------------------------------------ */

static void put_label(struct label_value *out, const struct fval *v)
{
    if (v->present)
        *out = v->str;
}

/* The extra labels from the "labels" object: every member a string (else
 * wrong_type), a repeated key's last value wins, as event.c. */
static enum reject_reason take_labels(struct event_decoder *d, uint32_t obj, struct event *ev)
{
    struct json_doc *doc = &d->doc;
    for (uint32_t i = obj + 1; i < doc->tok[obj].end; i = doc->tok[i + 1].end) {
        const struct jtok *k = &doc->tok[i];
        struct jtok *v = &doc->tok[i + 1];
        if (v->type != JT_STRING)
            return REJECT_WRONG_TYPE;
        for (size_t e = 0; e < d->limits.extra_label_count; e++) {
            if (k->len != d->extra_len[e] ||
                memcmp(k->ptr, d->limits.extra_label_names[e], k->len) != 0)
                continue;
            v->flags |= JT_LABEL;
            enum reject_reason r = decode_check_label(d, v->ptr, v->len, (v->flags & JT_HIGH) != 0,
                                                      (v->flags & JT_NUL) != 0);
            if (r)
                return r;
            ev->extra[e].ptr = v->ptr;
            ev->extra[e].len = v->len;
        }
    }
    return REJECT_NONE;
}

enum reject_reason event_decode_mapped(struct event_decoder *d, const struct field_mapping *m,
                                       const char *buf, size_t len, struct event *ev)
{
    struct fval v[CF_COUNT];
    if (!m)
        return event_decode(d, buf, len, ev);
    memset(ev, 0, sizeof *ev);
    if (m->kind != EVENT_KIND_COST)
        return REJECT_WRONG_TYPE;
    enum reject_reason r = decode_mapped_fields(d, m, buf, len, v);
    if (!r && v[CF_LABELS].present)
        r = take_labels(d, v[CF_LABELS].tok, ev);
    if (r)
        return r;
    put_label(&ev->team, &v[CF_TEAM]);
    put_label(&ev->project, &v[CF_PROJECT]);
    put_label(&ev->source, &v[CF_SOURCE]);
    put_label(&ev->provider, &v[CF_PROVIDER]);
    put_label(&ev->model, &v[CF_MODEL]);
    put_label(&ev->instance_type, &v[CF_INSTANCE_TYPE]);
    put_label(&ev->gpu_type, &v[CF_GPU_TYPE]);
    ev->has_cost = v[CF_COST].present;
    ev->cost_nanos = v[CF_COST].u;
    for (int k = 0; k < TOKEN_KIND_COUNT; k++)
        ev->tokens[k] = v[CF_INPUT_TOKENS + k].u;
    ev->gpu_count = v[CF_GPU_COUNT].u;
    ev->duration_nanos = v[CF_DURATION].u;
    ev->has_timestamp = v[CF_TIMESTAMP].present;
    ev->timestamp_ms = v[CF_TIMESTAMP].ms;
    return decode_event_finish(d, ev, v[CF_GPU_COUNT].present, v[CF_DURATION].present);
}

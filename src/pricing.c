/*
 * pricing.c - price tables and integer pricing (see pricing.h).
 *
 * Tables are read with libyaml's document API (so errors carry line and
 * column); decimal price strings become integer nano-dollars exactly. Two
 * open-addressing hash tables (xxh3 over the key bytes) make a lookup one
 * hash and usually one compare, so pricing costs little on the hot path.
 * A cost is Σ tokens × price in 128-bit integers, rounded once.
 * Thread-safety: immutable after price_table_load; any thread may read.
 */
#include "pricing.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
/* Inlined: keys are short; see counter_table.c. */
#define XXH_INLINE_ALL
#include <xxhash.h>
#include <yaml.h>

#include "money.h"

#ifndef FINOPS_PRICES_DIR
#define FINOPS_PRICES_DIR "data/prices"
#endif

struct price_table {
    struct llm_price *llm;
    size_t llm_count, llm_cap;
    struct gpu_price *gpu;
    size_t gpu_count, gpu_cap;
    struct gpu_type_price *by_type; /* few entries: searched linearly */
    size_t by_type_count, by_type_cap;
    struct index_slot *llm_index, *gpu_index;
    size_t llm_mask, gpu_mask;
};

/* An index slot carries its key's hash and lengths, so a lookup compares
 * the strings of the one entry that matches them (once per priced event). */
struct index_slot {
    uint64_t hash;
    uint32_t entry;      /* index + 1 into llm / gpu; 0 is empty */
    uint32_t len1, len2; /* provider and model, or instance_type and 0 */
};

/* An installed program finds its tables relative to itself (so a prefix
 * can move, as in the container image); a build run in place finds them in
 * the source tree it was built from. */
#define INSTALLED_PRICES_SUBDIR "share/ai-finops-exporter/prices"

const char *price_table_locate_dir(const char *exe_path, char *buf, size_t len)
{
    const char *slash = exe_path ? strrchr(exe_path, '/') : NULL;
    if (slash && len) {
        int n = snprintf(buf, len, "%.*s/../" INSTALLED_PRICES_SUBDIR "/llm.yaml",
                         (int)(slash - exe_path), exe_path);
        if (n > 0 && (size_t)n < len && access(buf, R_OK) == 0) {
            buf[n - strlen("/llm.yaml")] = '\0';
            return buf;
        }
    }
    return FINOPS_PRICES_DIR;
}

static char located_dir[4096];
static const char *located;
static pthread_once_t locate_once = PTHREAD_ONCE_INIT;

static void locate_bundled(void)
{
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    exe[n > 0 ? n : 0] = '\0';
    located = price_table_locate_dir(n > 0 ? exe : NULL, located_dir, sizeof(located_dir));
}

const char *price_table_bundled_dir(void)
{
    const char *env = getenv("FINOPS_PRICES_DIR");
    if (env && *env)
        return env;
    pthread_once(&locate_once, locate_bundled);
    return located;
}

/* ---- lookup ------------------------------------------------------------ */

static uint64_t llm_key_hash(const char *provider, size_t plen, const char *model, size_t mlen)
{
    return XXH3_64bits_withSeed(model, mlen, XXH3_64bits(provider, plen));
}

static bool str_eq(const char *s, const char *p, size_t len)
{
    return strncmp(s, p, len) == 0 && s[len] == '\0';
}

static const struct llm_price *find_llm(const struct price_table *t, const char *provider,
                                        size_t plen, const char *model, size_t mlen)
{
    if (!t->llm_index)
        return NULL;
    uint64_t hash = llm_key_hash(provider, plen, model, mlen);
    for (size_t i = hash & t->llm_mask;; i = (i + 1) & t->llm_mask) {
        const struct index_slot *slot = &t->llm_index[i];
        if (!slot->entry)
            return NULL;
        const struct llm_price *p = &t->llm[slot->entry - 1];
        if (slot->hash == hash && slot->len1 == plen && slot->len2 == mlen &&
            memcmp(p->provider, provider, plen) == 0 && memcmp(p->model, model, mlen) == 0)
            return p;
    }
}

static const struct gpu_price *find_gpu(const struct price_table *t, const char *type, size_t len)
{
    if (!t->gpu_index)
        return NULL;
    uint64_t hash = XXH3_64bits(type, len);
    for (size_t i = hash & t->gpu_mask;; i = (i + 1) & t->gpu_mask) {
        const struct index_slot *slot = &t->gpu_index[i];
        if (!slot->entry)
            return NULL;
        const struct gpu_price *p = &t->gpu[slot->entry - 1];
        if (slot->hash == hash && slot->len1 == len && memcmp(p->instance_type, type, len) == 0)
            return p;
    }
}

static void index_put(struct index_slot *index, size_t mask, uint64_t hash, size_t entry,
                      size_t len1, size_t len2)
{
    size_t i = hash & mask;
    while (index[i].entry)
        i = (i + 1) & mask;
    index[i] = (struct index_slot){hash, (uint32_t)entry + 1, (uint32_t)len1, (uint32_t)len2};
}

static int build_index(struct price_table *t)
{
    size_t cap = 16;
    while (cap < t->llm_count * 4)
        cap *= 2;
    t->llm_index = calloc(cap, sizeof(*t->llm_index));
    t->llm_mask = cap - 1;
    cap = 16;
    while (cap < t->gpu_count * 4)
        cap *= 2;
    t->gpu_index = calloc(cap, sizeof(*t->gpu_index));
    t->gpu_mask = cap - 1;
    if (!t->llm_index || !t->gpu_index)
        return -ENOMEM;
    for (size_t k = 0; k < t->llm_count; k++) {
        const struct llm_price *p = &t->llm[k];
        size_t plen = strlen(p->provider), mlen = strlen(p->model);
        index_put(t->llm_index, t->llm_mask, llm_key_hash(p->provider, plen, p->model, mlen), k,
                  plen, mlen);
    }
    for (size_t k = 0; k < t->gpu_count; k++) {
        const struct gpu_price *p = &t->gpu[k];
        size_t len = strlen(p->instance_type);
        index_put(t->gpu_index, t->gpu_mask, XXH3_64bits(p->instance_type, len), k, len, 0);
    }
    return 0;
}

/* ---- arithmetic -------------------------------------------------------- */

/* num / den rounded to nearest, ties up; -ERANGE if it exceeds 64 bits. */
static int divide_round(unsigned __int128 num, unsigned __int128 den, uint64_t *out)
{
    unsigned __int128 q = num / den, r = num % den;
    if (r >= den - r)
        q++;
    if (q > UINT64_MAX)
        return -ERANGE;
    *out = (uint64_t)q;
    return 0;
}

int price_table_llm_cost(const struct price_table *t, struct label_value provider,
                         struct label_value model, const uint64_t tokens[TOKEN_KIND_COUNT],
                         uint64_t *cost_nanos)
{
    const struct llm_price *p = find_llm(t, provider.ptr, provider.len, model.ptr, model.len);
    if (!p)
        return -ENOENT;
    unsigned __int128 sum = 0;
    for (int k = 0; k < TOKEN_KIND_COUNT; k++) {
        if (!tokens[k])
            continue;
        if (p->per_million_nanos[k] == PRICE_NONE)
            return -ENOENT;
        sum += (unsigned __int128)tokens[k] * (uint64_t)p->per_million_nanos[k];
    }
    return divide_round(sum, 1000000, cost_nanos);
}

int price_table_gpu_cost(const struct price_table *t, struct label_value instance_type,
                         uint64_t gpu_count, uint64_t duration_nanos, uint64_t *cost_nanos)
{
    const struct gpu_price *p = find_gpu(t, instance_type.ptr, instance_type.len);
    if (!p)
        return -ENOENT;
    /* per GPU-second = per_hour / (gpus * 3600); duration is in 1e-9 s. */
    unsigned __int128 num =
        (unsigned __int128)gpu_count * duration_nanos * (unsigned __int128)p->per_hour_nanos;
    unsigned __int128 den = (unsigned __int128)p->gpus * 3600u * NANOS_PER_UNIT;
    return divide_round(num, den, cost_nanos);
}

int price_table_gpu_type_cost(const struct price_table *t, struct label_value gpu_type,
                              uint64_t gpu_count, uint64_t duration_nanos, uint64_t *cost_nanos)
{
    for (size_t i = 0; i < t->by_type_count; i++) {
        const struct gpu_type_price *p = &t->by_type[i];
        if (!str_eq(p->gpu_type, gpu_type.ptr, gpu_type.len))
            continue;
        unsigned __int128 num = (unsigned __int128)gpu_count * duration_nanos *
                                (unsigned __int128)p->per_gpu_hour_nanos;
        return divide_round(num, (unsigned __int128)3600u * NANOS_PER_UNIT, cost_nanos);
    }
    return -ENOENT;
}

int price_table_gpu_rate(const struct price_table *t, struct label_value instance_type,
                         struct label_value gpu_type, struct gpu_rate *rate)
{
    const struct gpu_price *p = find_gpu(t, instance_type.ptr, instance_type.len);
    if (p) {
        *rate = (struct gpu_rate){p->per_hour_nanos, p->gpus};
        return 0;
    }
    for (size_t i = 0; i < t->by_type_count; i++) {
        const struct gpu_type_price *g = &t->by_type[i];
        if (str_eq(g->gpu_type, gpu_type.ptr, gpu_type.len)) {
            *rate = (struct gpu_rate){g->per_gpu_hour_nanos, 1};
            return 0;
        }
    }
    return -ENOENT;
}

int gpu_idle_cost(const struct gpu_rate *rate, uint64_t counted_nanos, uint64_t util_ppb,
                  uint64_t *cost_nanos)
{
    if (util_ppb > 1000000000ULL || rate->gpus == 0)
        return -EINVAL;
    /* counted <= 8.64e13 ns and the idle share <= 1e9 fit 77 bits; the
     * price could push the product past 128 bits, so it is checked. */
    unsigned __int128 num = (unsigned __int128)counted_nanos * (1000000000ULL - util_ppb);
    if (__builtin_mul_overflow(num, (unsigned __int128)rate->per_hour_nanos, &num))
        return -ERANGE;
    unsigned __int128 den = (unsigned __int128)rate->gpus * 3600u * NANOS_PER_UNIT * 1000000000ULL;
    return divide_round(num, den, cost_nanos);
}

int price_table_gpu_idle_cost(const struct price_table *t, struct label_value instance_type,
                              struct label_value gpu_type, uint64_t counted_nanos,
                              uint64_t util_ppb, uint64_t *cost_nanos)
{
    struct gpu_rate rate;
    int rc = price_table_gpu_rate(t, instance_type, gpu_type, &rate);
    return rc ? rc : gpu_idle_cost(&rate, counted_nanos, util_ppb, cost_nanos);
}

size_t price_table_llm_count(const struct price_table *t)
{
    return t->llm_count;
}

const struct llm_price *price_table_llm_at(const struct price_table *t, size_t i)
{
    return i < t->llm_count ? &t->llm[i] : NULL;
}

size_t price_table_gpu_count(const struct price_table *t)
{
    return t->gpu_count;
}

const struct gpu_price *price_table_gpu_at(const struct price_table *t, size_t i)
{
    return i < t->gpu_count ? &t->gpu[i] : NULL;
}

size_t price_table_gpu_type_count(const struct price_table *t)
{
    return t->by_type_count;
}

const struct gpu_type_price *price_table_gpu_type_at(const struct price_table *t, size_t i)
{
    return i < t->by_type_count ? &t->by_type[i] : NULL;
}

/* ---- loading ----------------------------------------------------------- */

struct loader {
    struct price_table *t;
    const char *path;
    yaml_document_t *doc;
    char *err;
    size_t errlen;
};

static int fail(struct loader *l, yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct loader *l, yaml_node_t *n, const char *fmt, ...)
{
    int k = snprintf(l->err, l->errlen, "%s:%zu:%zu: ", l->path, n ? n->start_mark.line + 1 : 1,
                     n ? n->start_mark.column + 1 : 1);
    if (k >= 0 && (size_t)k < l->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(l->err + k, l->errlen - (size_t)k, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

static const char *text_of(yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static yaml_node_t *map_get(struct loader *l, yaml_node_t *map, const char *key)
{
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        const char *k = text_of(yaml_document_get_node(l->doc, p->key));
        if (k && strcmp(k, key) == 0)
            return yaml_document_get_node(l->doc, p->value);
    }
    return NULL;
}

static int need_string(struct loader *l, yaml_node_t *entry, const char *key, char **out)
{
    yaml_node_t *v = map_get(l, entry, key);
    const char *s = text_of(v);
    if (!s || !*s || !utf8_valid(s, strlen(s)))
        return fail(l, v ? v : entry, "'%s' must be a non-empty UTF-8 string", key);
    *out = strdup(s);
    return *out ? 0 : -ENOMEM;
}

static int optional_string(struct loader *l, yaml_node_t *entry, const char *key, char **out)
{
    const char *s = text_of(map_get(l, entry, key));
    if (s && !utf8_valid(s, strlen(s)))
        return fail(l, entry, "'%s' must be UTF-8", key);
    *out = strdup(s ? s : "");
    return *out ? 0 : -ENOMEM;
}

static int price_of(struct loader *l, yaml_node_t *entry, const char *key, bool required,
                    int64_t *out)
{
    yaml_node_t *v = map_get(l, entry, key);
    const char *s = text_of(v);
    uint64_t nanos;
    if (!v) {
        if (required)
            return fail(l, entry, "'%s' is required", key);
        *out = PRICE_NONE;
        return 0;
    }
    if (!s || money_parse_decimal(s, strlen(s), &nanos) || nanos > (uint64_t)INT64_MAX)
        return fail(l, v, "'%s' must be a decimal price in USD (e.g. \"2.50\"), at most 9 decimals",
                    key);
    *out = (int64_t)nanos;
    return 0;
}

static void llm_free(struct llm_price *p)
{
    free(p->provider);
    free(p->model);
    free(p->as_of);
    free(p->source);
}

static void gpu_free(struct gpu_price *p)
{
    free(p->cloud);
    free(p->region);
    free(p->instance_type);
    free(p->gpu_type);
    free(p->as_of);
    free(p->source);
}

static int add_llm(struct loader *l, yaml_node_t *entry)
{
    static const char *const kinds[TOKEN_KIND_COUNT] = {"input", "cached_input", "cache_write",
                                                        "output"};
    struct llm_price p = {0};
    int rc;
    if (entry->type != YAML_MAPPING_NODE)
        return fail(l, entry, "each model must be a mapping");
    if ((rc = need_string(l, entry, "provider", &p.provider)) ||
        (rc = need_string(l, entry, "model", &p.model)) ||
        (rc = optional_string(l, entry, "as_of", &p.as_of)) ||
        (rc = optional_string(l, entry, "source", &p.source)))
        goto fail;
    for (int k = 0; k < TOKEN_KIND_COUNT; k++)
        if ((rc = price_of(l, entry, kinds[k], k == TOKEN_INPUT || k == TOKEN_OUTPUT,
                           &p.per_million_nanos[k])))
            goto fail;
    for (size_t i = 0; i < l->t->llm_count; i++) {
        struct llm_price *old = &l->t->llm[i];
        if (strcmp(old->provider, p.provider) == 0 && strcmp(old->model, p.model) == 0) {
            llm_free(old); /* a later file overrides */
            *old = p;
            return 0;
        }
    }
    if (l->t->llm_count == l->t->llm_cap) {
        size_t cap = l->t->llm_cap ? l->t->llm_cap * 2 : 64;
        struct llm_price *grown = realloc(l->t->llm, cap * sizeof(*grown));
        if (!grown) {
            rc = -ENOMEM;
            goto fail;
        }
        l->t->llm = grown;
        l->t->llm_cap = cap;
    }
    l->t->llm[l->t->llm_count++] = p;
    return 0;
fail:
    llm_free(&p);
    return rc;
}

static int add_gpu(struct loader *l, yaml_node_t *entry)
{
    struct gpu_price p = {0};
    int64_t per_hour;
    int rc;
    if (entry->type != YAML_MAPPING_NODE)
        return fail(l, entry, "each instance must be a mapping");
    if ((rc = need_string(l, entry, "instance_type", &p.instance_type)) ||
        (rc = optional_string(l, entry, "cloud", &p.cloud)) ||
        (rc = optional_string(l, entry, "region", &p.region)) ||
        (rc = optional_string(l, entry, "gpu_type", &p.gpu_type)) ||
        (rc = optional_string(l, entry, "as_of", &p.as_of)) ||
        (rc = optional_string(l, entry, "source", &p.source)) ||
        (rc = price_of(l, entry, "usd_per_hour", true, &per_hour)))
        goto fail;
    p.per_hour_nanos = (uint64_t)per_hour;
    yaml_node_t *gpus = map_get(l, entry, "gpus");
    const char *g = text_of(gpus);
    char *end = NULL;
    long n = g ? strtol(g, &end, 10) : 0;
    if (!g || *end || n < 1 || n > 1024) {
        rc = fail(l, gpus ? gpus : entry, "'gpus' must be an integer from 1 to 1024");
        goto fail;
    }
    p.gpus = (uint32_t)n;
    for (size_t i = 0; i < l->t->gpu_count; i++) {
        struct gpu_price *old = &l->t->gpu[i];
        if (strcmp(old->instance_type, p.instance_type) == 0) {
            gpu_free(old);
            *old = p;
            return 0;
        }
    }
    if (l->t->gpu_count == l->t->gpu_cap) {
        size_t cap = l->t->gpu_cap ? l->t->gpu_cap * 2 : 32;
        struct gpu_price *grown = realloc(l->t->gpu, cap * sizeof(*grown));
        if (!grown) {
            rc = -ENOMEM;
            goto fail;
        }
        l->t->gpu = grown;
        l->t->gpu_cap = cap;
    }
    l->t->gpu[l->t->gpu_count++] = p;
    return 0;
fail:
    gpu_free(&p);
    return rc;
}

static void gpu_type_free(struct gpu_type_price *p)
{
    free(p->gpu_type);
    free(p->as_of);
    free(p->source);
}

static int add_gpu_type(struct loader *l, yaml_node_t *entry)
{
    struct gpu_type_price p = {0};
    int64_t per_hour;
    int rc;
    if (entry->type != YAML_MAPPING_NODE)
        return fail(l, entry, "each gpu type must be a mapping");
    if ((rc = need_string(l, entry, "gpu_type", &p.gpu_type)) ||
        (rc = optional_string(l, entry, "as_of", &p.as_of)) ||
        (rc = optional_string(l, entry, "source", &p.source)) ||
        (rc = price_of(l, entry, "usd_per_gpu_hour", true, &per_hour)))
        goto fail;
    p.per_gpu_hour_nanos = (uint64_t)per_hour;
    for (size_t i = 0; i < l->t->by_type_count; i++) {
        struct gpu_type_price *old = &l->t->by_type[i];
        if (strcmp(old->gpu_type, p.gpu_type) == 0) {
            gpu_type_free(old);
            *old = p;
            return 0;
        }
    }
    if (l->t->by_type_count == l->t->by_type_cap) {
        size_t cap = l->t->by_type_cap ? l->t->by_type_cap * 2 : 8;
        struct gpu_type_price *grown = realloc(l->t->by_type, cap * sizeof(*grown));
        if (!grown) {
            rc = -ENOMEM;
            goto fail;
        }
        l->t->by_type = grown;
        l->t->by_type_cap = cap;
    }
    l->t->by_type[l->t->by_type_count++] = p;
    return 0;
fail:
    gpu_type_free(&p);
    return rc;
}

static int load_list(struct loader *l, yaml_node_t *root, const char *key,
                     int (*add)(struct loader *, yaml_node_t *))
{
    yaml_node_t *list = map_get(l, root, key);
    if (!list)
        return 0;
    if (list->type != YAML_SEQUENCE_NODE)
        return fail(l, list, "'%s' must be a list", key);
    for (yaml_node_item_t *it = list->data.sequence.items.start; it < list->data.sequence.items.top;
         it++) {
        int rc = add(l, yaml_document_get_node(l->doc, *it));
        if (rc)
            return rc;
    }
    return 0;
}

static int load_one(struct price_table *t, const char *path, char *errbuf, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        int rc = -errno;
        snprintf(errbuf, errlen, "%s: cannot read price table: %s", path, strerror(errno));
        return rc;
    }
    yaml_parser_t parser;
    yaml_document_t doc;
    struct loader l = {t, path, &doc, errbuf, errlen};
    int rc = 0;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_file(&parser, f);
    if (!yaml_parser_load(&parser, &doc)) {
        snprintf(errbuf, errlen, "%s:%zu:%zu: YAML syntax error: %s", path,
                 parser.problem_mark.line + 1, parser.problem_mark.column + 1,
                 parser.problem ? parser.problem : "invalid document");
        yaml_parser_delete(&parser);
        fclose(f);
        return -EINVAL;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root || root->type != YAML_MAPPING_NODE)
        rc = fail(&l, root,
                  "a price table is a mapping with 'models', 'instances' and/or 'gpu_types'");
    if (!rc)
        rc = load_list(&l, root, "models", add_llm);
    if (!rc)
        rc = load_list(&l, root, "instances", add_gpu);
    if (!rc)
        rc = load_list(&l, root, "gpu_types", add_gpu_type);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    fclose(f);
    return rc;
}

void price_table_free(struct price_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->llm_count; i++)
        llm_free(&t->llm[i]);
    for (size_t i = 0; i < t->gpu_count; i++)
        gpu_free(&t->gpu[i]);
    for (size_t i = 0; i < t->by_type_count; i++)
        gpu_type_free(&t->by_type[i]);
    free(t->by_type);
    free(t->llm);
    free(t->gpu);
    free(t->llm_index);
    free(t->gpu_index);
    free(t);
}

int price_table_load(struct price_table **out, const char *const *paths, size_t count, char *errbuf,
                     size_t errlen)
{
    struct price_table *t = calloc(1, sizeof(*t));
    int rc = 0;
    if (!t)
        return -ENOMEM;
    for (size_t i = 0; i < count && !rc; i++)
        rc = load_one(t, paths[i], errbuf, errlen);
    if (!rc)
        rc = build_index(t);
    if (rc) {
        price_table_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

/* ---- exposition -------------------------------------------------------- */

/* nanos per million tokens as exact dollars per token: 15 decimals. */
static void value_per_token(struct dynbuf *b, int64_t per_million_nanos)
{
    uint64_t v = (uint64_t)per_million_nanos;
    char frac[16];
    uint64_t whole = v / 1000000000000000ULL, rest = v % 1000000000000000ULL;
    for (int i = 14; i >= 0; i--) {
        frac[i] = (char)('0' + rest % 10);
        rest /= 10;
    }
    int keep = 15;
    while (keep > 0 && frac[keep - 1] == '0')
        keep--;
    dynbuf_printf(b, " %llu%s%.*s\n", (unsigned long long)whole, keep ? "." : "", keep, frac);
}

void price_table_render(const struct price_table *t, struct dynbuf *b, enum expo_format fmt)
{
    static const char *const llm_names[] = {"provider", "model", "kind"};
    static const char *const gpu_names[] = {"cloud", "instance_type", "gpu_type"};
    expo_family(b, fmt, "ai_finops_price_dollars", "gauge",
                "Effective LLM/API price in USD per token, by kind (from the price tables).");
    for (size_t i = 0; i < t->llm_count; i++) {
        const struct llm_price *p = &t->llm[i];
        for (int k = 0; k < TOKEN_KIND_COUNT; k++) {
            if (p->per_million_nanos[k] == PRICE_NONE)
                continue;
            const char *kind = token_kind_name((enum token_kind)k);
            struct label_value v[3] = {{p->provider, (uint32_t)strlen(p->provider)},
                                       {p->model, (uint32_t)strlen(p->model)},
                                       {kind, (uint32_t)strlen(kind)}};
            dynbuf_append_str(b, "ai_finops_price_dollars");
            expo_labels(b, llm_names, v, 3);
            value_per_token(b, p->per_million_nanos[k]);
        }
    }
    expo_family(b, fmt, "ai_finops_gpu_price_dollars_per_hour", "gauge",
                "Effective on-demand price of a GPU instance in USD per hour.");
    for (size_t i = 0; i < t->gpu_count; i++) {
        const struct gpu_price *p = &t->gpu[i];
        struct label_value v[3] = {{p->cloud, (uint32_t)strlen(p->cloud)},
                                   {p->instance_type, (uint32_t)strlen(p->instance_type)},
                                   {p->gpu_type, (uint32_t)strlen(p->gpu_type)}};
        dynbuf_append_str(b, "ai_finops_gpu_price_dollars_per_hour");
        expo_labels(b, gpu_names, v, 3);
        expo_value_nanos(b, p->per_hour_nanos);
    }
    static const char *const type_names[] = {"gpu_type"};
    expo_family(b, fmt, "ai_finops_gpu_type_price_dollars_per_hour", "gauge",
                "Configured price of one GPU of a model in USD per hour (used when the "
                "instance type has no price).");
    for (size_t i = 0; i < t->by_type_count; i++) {
        const struct gpu_type_price *p = &t->by_type[i];
        struct label_value v = {p->gpu_type, (uint32_t)strlen(p->gpu_type)};
        dynbuf_append_str(b, "ai_finops_gpu_type_price_dollars_per_hour");
        expo_labels(b, type_names, &v, 1);
        expo_value_nanos(b, p->per_gpu_hour_nanos);
    }
}

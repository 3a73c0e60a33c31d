/*
 * loadgen_kinds.c - the load generator's other kinds of message
 * (docs/loadgen.md "Kinds"): GPU utilization samples from a fleet of nodes,
 * FOCUS cloud-billing rows, and cost events in the OpenAI / Anthropic
 * response shapes, each with its exact contribution to the totals.
 *
 * Design: the fleet (nodes x GPUs, instance types from the price table,
 * who runs on which GPU, how busy each GPU is) and the billing accounts
 * are drawn once from a fixed structure seed, like the catalogue; --seed
 * drives the stream. A GPU reports every LOADGEN_GPU_PERIOD_MS (plus a
 * jitter), its interval being the time since its previous report, so the
 * fleet's intervals tile time; --dup-ratio adds repeats and overlaps of an
 * earlier interval. The totals (lg_kinds_totals_*) clip each delivered
 * sample against the GPU's mark exactly as the exporter must (count only
 * [max(start, mark), end)), and price idle time with their own 128-bit
 * arithmetic from the table's per_hour_nanos / gpus (or a gpu_types
 * per-GPU-hour price): one rounding, halves up.
 * Thread-safety: one thread, like the generator that owns it.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loadgen_internal.h"
#include "money.h"

#define UNATTRIBUTED "unattributed" /* events.unattributed_label's default */
#define NANOS        1000000000ULL

/* ---- writing helpers ---------------------------------------------------- */

static inline char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

#define PUT_LIT(p, lit) put((p), (lit), sizeof(lit) - 1)

static inline char *put_cstr(char *p, const char *s)
{
    return put(p, s, strlen(s));
}

static inline char *put_str(char *p, const char *s)
{
    *p++ = '"';
    p = put_cstr(p, s);
    *p++ = '"';
    return p;
}

static inline char *put_u64(char *p, uint64_t v)
{
    return p + format_u64(v, p);
}

static char *put_hex(char *p, uint64_t v, int digits)
{
    static const char hex[] = "0123456789abcdef";
    for (int i = digits - 1; i >= 0; i--) {
        p[i] = hex[v & 15];
        v >>= 4;
    }
    return p + digits;
}

static inline char *put2(char *p, unsigned v)
{
    p[0] = (char)('0' + v / 10);
    p[1] = (char)('0' + v % 10);
    return p + 2;
}

/* "YYYY-MM-DDTHH:MM:SS.mmmZ" (Howard Hinnant's civil_from_days). */
static char *put_rfc3339(char *p, int64_t ms)
{
    int64_t second = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
    unsigned milli = (unsigned)(ms - second * 1000);
    int64_t days = second >= 0 ? second / 86400 : (second - 86399) / 86400;
    int64_t sod = second - days * 86400;
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = yoe + era * 400;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t d = doy - (153 * mp + 2) / 5 + 1;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;
    y += m <= 2;
    *p++ = '"';
    p = put2(p, (unsigned)(y / 100 % 100));
    p = put2(p, (unsigned)(y % 100));
    *p++ = '-';
    p = put2(p, (unsigned)m);
    *p++ = '-';
    p = put2(p, (unsigned)d);
    *p++ = 'T';
    p = put2(p, (unsigned)(sod / 3600));
    *p++ = ':';
    p = put2(p, (unsigned)(sod / 60 % 60));
    *p++ = ':';
    p = put2(p, (unsigned)(sod % 60));
    *p++ = '.';
    *p++ = (char)('0' + milli / 100);
    p = put2(p, milli % 100);
    return PUT_LIT(p, "Z\"");
}

/* A signed nano-dollar amount as an exact decimal. */
static char *put_amount(char *p, int64_t nanos, bool as_string)
{
    if (as_string)
        *p++ = '"';
    if (nanos < 0)
        *p++ = '-';
    p += money_format(nanos < 0 ? (uint64_t)(-nanos) : (uint64_t)nanos, p);
    if (as_string)
        *p++ = '"';
    return p;
}

/* log-uniform integers from 64 geometric buckets (libm only at setup) */
struct lgu {
    uint64_t bound[65];
};

static void lgu_init(struct lgu *l, uint64_t lo, uint64_t hi)
{
    double ratio = log((double)hi / (double)lo);
    l->bound[0] = lo;
    for (int k = 1; k < 64; k++) {
        uint64_t b = (uint64_t)llround((double)lo * exp(ratio * k / 64));
        l->bound[k] = b < l->bound[k - 1] ? l->bound[k - 1] : b;
    }
    l->bound[64] = hi + 1;
}

static inline uint64_t lgu_draw(struct rng *r, const struct lgu *l)
{
    uint64_t k = rng_below(r, 64);
    uint64_t lo = l->bound[k], hi = l->bound[k + 1];
    return hi > lo + 1 ? rng_range(r, lo, hi - 1) : lo;
}

/* ---- defects ------------------------------------------------------------ */

enum kop {
    K_REPLACE,  /* the field's value becomes raw (added when absent) */
    K_OMIT,     /* the field is left out */
    K_TWICE,    /* the field is written again, value raw, at the end */
    K_EXTRA,    /* ",raw" before the closing brace */
    K_TRUNCATE, /* last byte dropped */
    K_WRAP,     /* [object] */
    K_SUFFIX,   /* raw after the object */
    K_PAD,      /* padded with an unknown field to 65,537 bytes */
    K_UNPRICED, /* names no price table knows */
};

struct kdefect {
    const char *name;
    enum reject_reason reason;
    uint8_t op;
    uint8_t field;
    const char *raw;
};

#define DEEP17 "\"extra\":[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]"

/* Defects any JSON kind shares (the strict parser's). */
#define COMMON_DEFECTS                                                                             \
    {"invalid_json:truncated", REJECT_INVALID_JSON, K_TRUNCATE, 0, NULL},                          \
        {"not_object:array", REJECT_NOT_OBJECT, K_WRAP, 0, NULL},                                  \
        {"trailing_data:word", REJECT_TRAILING_DATA, K_SUFFIX, 0, " x"},                           \
        {"too_large:65537", REJECT_TOO_LARGE, K_PAD, 0, NULL},                                     \
    {                                                                                              \
        "too_deep:arrays_17", REJECT_TOO_DEEP, K_EXTRA, 0, DEEP17                                  \
    }

/* GPU sample fields, in the order written. */
enum gfld {
    G_NONE,
    G_TS,
    G_INTERVAL,
    G_NODE,
    G_GPU,
    G_GPU_TYPE,
    G_INSTANCE,
    G_TEAM,
    G_PROJECT,
    G_NAMESPACE,
    G_POD,
    G_UTIL,
    G_MEM,
    G_COUNT
};

static const char *const gkey_native[G_COUNT] = {
    [G_TS] = "timestamp", [G_INTERVAL] = "interval_seconds", [G_NODE] = "node",
    [G_GPU] = "gpu",      [G_GPU_TYPE] = "gpu_type",         [G_INSTANCE] = "instance_type",
    [G_TEAM] = "team",    [G_PROJECT] = "project",           [G_NAMESPACE] = "namespace",
    [G_POD] = "pod",      [G_UTIL] = "utilization",          [G_MEM] = "memory_used_bytes",
};

/* DCGM-exporter's label and field names (docs/events.md, profile dcgm). */
static const char *const gkey_dcgm[G_COUNT] = {
    [G_TS] = "timestamp", [G_INTERVAL] = "interval_seconds", [G_NODE] = "Hostname",
    [G_GPU] = "gpu",      [G_GPU_TYPE] = "modelName",        [G_INSTANCE] = "instance_type",
    [G_TEAM] = "team",    [G_PROJECT] = "project",           [G_NAMESPACE] = "namespace",
    [G_POD] = "pod",      [G_UTIL] = "DCGM_FI_DEV_GPU_UTIL", [G_MEM] = "DCGM_FI_DEV_FB_USED",
};

static const struct kdefect gpu_defects[] = {
    COMMON_DEFECTS,
    {"duplicate_field:node", REJECT_DUPLICATE_FIELD, K_TWICE, G_NODE, "\"gpu-node-999\""},
    {"wrong_type:node_number", REJECT_WRONG_TYPE, K_REPLACE, G_NODE, "5"},
    {"wrong_type:utilization_string", REJECT_WRONG_TYPE, K_REPLACE, G_UTIL, "\"0.5\""},
    {"missing_field:node", REJECT_MISSING_FIELD, K_OMIT, G_NODE, NULL},
    {"missing_field:gpu", REJECT_MISSING_FIELD, K_OMIT, G_GPU, NULL},
    {"missing_field:utilization", REJECT_MISSING_FIELD, K_OMIT, G_UTIL, NULL},
    {"missing_field:timestamp", REJECT_MISSING_FIELD, K_OMIT, G_TS, NULL},
    {"invalid_utilization:above_one", REJECT_INVALID_UTILIZATION, K_REPLACE, G_UTIL, "1.5"},
    {"invalid_utilization:negative", REJECT_INVALID_UTILIZATION, K_REPLACE, G_UTIL, "-0.1"},
    {"invalid_utilization:both_forms", REJECT_INVALID_UTILIZATION, K_EXTRA, 0,
     "\"utilization_percent\":50"},
    {"invalid_interval:zero", REJECT_INVALID_INTERVAL, K_REPLACE, G_INTERVAL, "0"},
    {"invalid_interval:negative", REJECT_INVALID_INTERVAL, K_REPLACE, G_INTERVAL, "-60"},
    {"invalid_interval:above_one_day", REJECT_INVALID_INTERVAL, K_REPLACE, G_INTERVAL, "86400.001"},
    {"invalid_timestamp:word", REJECT_INVALID_TIMESTAMP, K_REPLACE, G_TS, "\"yesterday\""},
    {"invalid_label:node_utf8", REJECT_INVALID_LABEL, K_REPLACE, G_NODE, "\"gpu-\xff\xfe\""},
    {"unpriced:unknown_instance_and_type", REJECT_UNPRICED, K_UNPRICED, 0, NULL},
};

/* The DCGM shape: percent utilization, its own names; "both forms" has no
 * meaning there. */
static const struct kdefect dcgm_defects[] = {
    COMMON_DEFECTS,
    {"wrong_type:node_number", REJECT_WRONG_TYPE, K_REPLACE, G_NODE, "5"},
    {"wrong_type:utilization_string", REJECT_WRONG_TYPE, K_REPLACE, G_UTIL, "\"50\""},
    {"missing_field:node", REJECT_MISSING_FIELD, K_OMIT, G_NODE, NULL},
    {"missing_field:utilization", REJECT_MISSING_FIELD, K_OMIT, G_UTIL, NULL},
    {"invalid_utilization:above_100", REJECT_INVALID_UTILIZATION, K_REPLACE, G_UTIL, "101"},
    {"invalid_interval:zero", REJECT_INVALID_INTERVAL, K_REPLACE, G_INTERVAL, "0"},
    {"invalid_timestamp:word", REJECT_INVALID_TIMESTAMP, K_REPLACE, G_TS, "\"yesterday\""},
    {"invalid_label:node_utf8", REJECT_INVALID_LABEL, K_REPLACE, G_NODE, "\"gpu-\xff\xfe\""},
    {"unpriced:unknown_instance_and_type", REJECT_UNPRICED, K_UNPRICED, 0, NULL},
};

/* FOCUS row fields, in the order written. */
enum ffld {
    F_NONE,
    F_BILLED,
    F_EFFECTIVE,
    F_CURRENCY,
    F_CATEGORY,
    F_SERVICE,
    F_PROVIDER,
    F_ACCOUNT,
    F_RESOURCE,
    F_START,
    F_END,
    F_TAGS,
    F_COUNT
};

static const char *const fkey[F_COUNT] = {
    [F_BILLED] = "BilledCost",
    [F_EFFECTIVE] = "EffectiveCost",
    [F_CURRENCY] = "BillingCurrency",
    [F_CATEGORY] = "ChargeCategory",
    [F_SERVICE] = "ServiceName",
    [F_PROVIDER] = "ProviderName",
    [F_ACCOUNT] = "SubAccountName",
    [F_RESOURCE] = "ResourceId",
    [F_START] = "ChargePeriodStart",
    [F_END] = "ChargePeriodEnd",
    [F_TAGS] = "Tags",
};

/* F_BILLED / F_EFFECTIVE in these entries mean "the counted column" and
 * are swapped for focus.cost_column: billed. */
static const struct kdefect focus_defects[] = {
    COMMON_DEFECTS,
    {"duplicate_field:cost_column", REJECT_DUPLICATE_FIELD, K_TWICE, F_EFFECTIVE, "1"},
    {"wrong_type:tags_string", REJECT_WRONG_TYPE, K_REPLACE, F_TAGS, "\"team=ads\""},
    {"wrong_type:category_number", REJECT_WRONG_TYPE, K_REPLACE, F_CATEGORY, "3"},
    {"missing_field:charge_category", REJECT_MISSING_FIELD, K_OMIT, F_CATEGORY, NULL},
    {"missing_field:cost_column", REJECT_MISSING_FIELD, K_OMIT, F_EFFECTIVE, NULL},
    {"invalid_currency:eur", REJECT_INVALID_CURRENCY, K_REPLACE, F_CURRENCY, "\"EUR\""},
    {"invalid_cost:too_big", REJECT_INVALID_COST, K_REPLACE, F_EFFECTIVE, "2000000"},
    {"invalid_cost:too_negative", REJECT_INVALID_COST, K_REPLACE, F_EFFECTIVE, "-2000000"},
    {"invalid_timestamp:word", REJECT_INVALID_TIMESTAMP, K_REPLACE, F_START, "\"yesterday\""},
    {"invalid_label:service_utf8", REJECT_INVALID_LABEL, K_REPLACE, F_SERVICE,
     "\"Amazon \xff\xfe\""},
};

/* OpenAI / Anthropic response bodies: the model and the first token count. */
enum ofld { O_NONE, O_MODEL, O_TOKENS };

static const struct kdefect provider_defects[] = {
    COMMON_DEFECTS,
    {"wrong_type:tokens_string", REJECT_WRONG_TYPE, K_REPLACE, O_TOKENS, "\"100\""},
    {"invalid_tokens:fraction", REJECT_INVALID_TOKENS, K_REPLACE, O_TOKENS, "1.5"},
    {"unpriced:unknown_model", REJECT_UNPRICED, K_UNPRICED, 0, NULL},
};

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

/* ---- the fleet ---------------------------------------------------------- */

enum util_profile { U_IDLE, U_LOW, U_MID, U_BUSY };

struct lg_gpu {
    uint16_t node;
    uint8_t id;
    uint8_t util;     /* enum util_profile */
    int32_t project;  /* catalogue index, or -1: only a namespace */
    uint16_t ns;      /* namespace index (namespace-only GPUs) */
    uint32_t series;  /* index of {team,project,gpu_type} in the totals */
    uint64_t mem_mib; /* memory size */
    bool emitted;
    int64_t last_end_ms; /* of its newest fresh sample */
    char key[48];        /* "node/gpu", the Kafka key */
    uint32_t key_len;
    char pod[96];
};

struct lg_node {
    char name[24];
    const struct gpu_price *inst;        /* NULL: on-prem, priced by gpu_type */
    const struct gpu_type_price *tprice; /* on-prem */
    const char *gpu_type;                /* as written (table name, or DCGM modelName) */
    uint32_t gpus;
    uint16_t type_index; /* into lg_kinds.gpu_types */
};

static const char *const namespaces[] = {"batch-jobs", "shared-notebooks", "ray-cluster",
                                         "kubeflow"};
#define NS_COUNT COUNT_OF(namespaces)

/* ---- FOCUS catalogue ---------------------------------------------------- */

enum { PROV_AWS, PROV_AZURE, PROV_GCP, PROV_COUNT };
static const char *const providers[PROV_COUNT] = {"AWS", "Microsoft", "Google Cloud"};
#define SVC_COUNT 5
static const char *const services[PROV_COUNT][SVC_COUNT] = {
    {"Amazon Elastic Compute Cloud", "Amazon Simple Storage Service", "Amazon SageMaker",
     "Amazon Bedrock", "AWS Support"},
    {"Virtual Machines", "Storage", "Azure Machine Learning", "Azure OpenAI Service",
     "Microsoft Defender for Cloud"},
    {"Compute Engine", "Cloud Storage", "Vertex AI", "BigQuery", "Cloud Logging"},
};
#define ACC_COUNT 4
static const char *const accounts[PROV_COUNT][ACC_COUNT] = {
    {"aws-prod-ml", "aws-research", "aws-shared-services", "aws-sandbox"},
    {"azure-prod", "azure-ai-platform", "azure-dev", "azure-data"},
    {"gcp-ml-prod", "gcp-analytics", "gcp-dev", "gcp-vertex"},
};
enum { CAT_USAGE, CAT_PURCHASE, CAT_TAX, CAT_CREDIT, CAT_ADJUSTMENT, CAT_COUNT };
static const char *const categories[CAT_COUNT] = {"Usage", "Purchase", "Tax", "Credit",
                                                  "Adjustment"};

/* ---- the generator ------------------------------------------------------ */

struct lg_kinds {
    const struct loadgen *g;
    const struct price_table *prices;
    struct loadgen_options opt;
    struct rng rng;
    enum event_kind kind;
    enum loadgen_profile profile;
    const struct kdefect *defects;
    size_t defect_count;
    uint64_t bad, dup, nbad;
    const char *const *gkey;

    /* project pick (Zipf, from the catalogue's designed shares) */
    size_t project_count;
    uint64_t *cum;
    uint64_t cum_total;
    char *pkeys; /* "team/project" per project, 300 bytes each */

    /* GPU fleet */
    struct lg_node *nodes;
    size_t node_count;
    struct lg_gpu *gpus;
    size_t gpu_count;
    const char **gpu_types; /* distinct gpu_type labels */
    size_t gpu_type_count;
    uint64_t fresh; /* fresh samples written */

    /* FOCUS */
    uint8_t *project_provider;
    struct lgu usage_micros, purchase_micros;

    /* OpenAI / Anthropic */
    uint16_t *models; /* the provider's priced models (generator indices) */
    size_t model_count;
    uint16_t api_source; /* "<provider>-api": the built-in profiles' source */
    struct lgu input, output, cached, cache_write;
};

static int kerr(char *errbuf, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int kerr(char *errbuf, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (errbuf && errlen)
        vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

static uint64_t mem_mib_of(const char *gpu_type)
{
    /* "nvidia-h100-80gb" -> 80 GiB; else 16 GiB */
    const char *gb = strstr(gpu_type, "gb");
    if (!gb)
        gb = strstr(gpu_type, "GB");
    if (gb && gb > gpu_type) {
        const char *d = gb;
        while (d > gpu_type && d[-1] >= '0' && d[-1] <= '9')
            d--;
        if (d < gb)
            return strtoull(d, NULL, 10) * 1024;
    }
    return 16 * 1024;
}

static int type_index(struct lg_kinds *k, const char *name, uint16_t *out)
{
    for (size_t i = 0; i < k->gpu_type_count; i++)
        if (strcmp(k->gpu_types[i], name) == 0) {
            *out = (uint16_t)i;
            return 0;
        }
    const char **grown = realloc(k->gpu_types, (k->gpu_type_count + 1) * sizeof(*grown));
    if (!grown)
        return -ENOMEM;
    k->gpu_types = grown;
    k->gpu_types[k->gpu_type_count] = name;
    *out = (uint16_t)k->gpu_type_count++;
    return 0;
}

static bool gpu_heavy_team(const char *team)
{
    return strcmp(team, "ml-platform") == 0 || strcmp(team, "research") == 0 ||
           strcmp(team, "vision") == 0 || strcmp(team, "voice") == 0;
}

static int build_fleet(struct lg_kinds *k, struct rng *s)
{
    const struct price_table *pt = k->prices;
    size_t ni = price_table_gpu_count(pt), nt = price_table_gpu_type_count(pt);
    /* Mostly 8-GPU training/inference nodes, some single-GPU ones. */
    const struct gpu_price **multi = calloc(ni + 1, sizeof(*multi));
    const struct gpu_price **single = calloc(ni + 1, sizeof(*single));
    size_t nm = 0, ns = 0;
    if (!multi || !single)
        return free(multi), free(single), -ENOMEM;
    for (size_t i = 0; i < ni; i++) {
        const struct gpu_price *p = price_table_gpu_at(pt, i);
        if (p->gpus < 1 || p->gpus > 16 || !p->per_hour_nanos || strlen(p->instance_type) > 64 ||
            strlen(p->gpu_type) > 64)
            continue;
        if (p->gpus >= 4)
            multi[nm++] = p;
        else
            single[ns++] = p;
    }
    if ((!nm && !ns && !nt) || (k->profile == LOADGEN_PROFILE_DCGM && !nt)) {
        free(multi);
        free(single);
        return -ENOENT;
    }
    k->node_count = k->opt.gpu_nodes ? k->opt.gpu_nodes : 16;
    k->nodes = calloc(k->node_count, sizeof(*k->nodes));
    if (!k->nodes)
        return free(multi), free(single), -ENOMEM;
    size_t total = 0;
    for (size_t n = 0; n < k->node_count; n++) {
        struct lg_node *node = &k->nodes[n];
        snprintf(node->name, sizeof(node->name), "gpu-node-%03u", (unsigned)(n + 1) % 10000u);
        uint64_t r = rng_below(s, 100);
        bool dcgm = k->profile == LOADGEN_PROFILE_DCGM;
        if (dcgm || (nt && (r < 12 || (!nm && !ns)))) {
            /* On-prem, or DCGM (whose gpu_type is its modelName and which
             * names no instance type): a per-GPU price by GPU model. */
            node->tprice = price_table_gpu_type_at(pt, (size_t)rng_below(s, nt));
            node->gpus = 8;
            node->gpu_type = node->tprice->gpu_type;
        } else {
            bool one = ns && (!nm || r >= 80);
            node->inst = one ? single[rng_below(s, ns)] : multi[rng_below(s, nm)];
            node->gpus = node->inst->gpus;
            node->gpu_type = node->inst->gpu_type;
        }
        if (type_index(k, node->gpu_type, &node->type_index))
            return free(multi), free(single), -ENOMEM;
        total += node->gpus;
    }
    free(multi);
    free(single);
    k->gpus = calloc(total, sizeof(*k->gpus));
    if (!k->gpus)
        return -ENOMEM;
    /* GPU-heavy teams' projects get most GPUs. */
    size_t heavy[64], nh = 0;
    for (size_t p = 0; p < k->project_count && nh < 64; p++)
        if (gpu_heavy_team(loadgen_project_team(k->g, p)))
            heavy[nh++] = p;
    for (size_t n = 0; n < k->node_count; n++) {
        struct lg_node *node = &k->nodes[n];
        /* Half the multi-GPU nodes run one job on all GPUs (training). */
        bool whole = node->gpus > 1 && rng_below(s, 2) == 0;
        int32_t whole_project = -1;
        for (uint32_t i = 0; i < node->gpus; i++) {
            struct lg_gpu *gp = &k->gpus[k->gpu_count];
            gp->node = (uint16_t)n;
            gp->id = (uint8_t)i;
            int32_t proj;
            if (whole && i > 0) {
                proj = whole_project;
            } else {
                uint64_t a = rng_below(s, 100);
                if (a < 20)
                    proj = -1; /* only namespace/pod: attributed by config or unattributed */
                else if (a < 75 && nh)
                    proj = (int32_t)heavy[rng_below(s, nh)];
                else
                    proj = (int32_t)rng_below(s, k->project_count);
                whole_project = proj;
            }
            if (k->profile == LOADGEN_PROFILE_DCGM)
                proj = -1; /* DCGM samples carry namespace/pod, not team/project */
            gp->project = proj;
            gp->ns = (uint16_t)rng_below(s, NS_COUNT);
            uint64_t u = rng_below(s, 100);
            gp->util = whole ? (u < 10   ? U_IDLE
                                : u < 25 ? U_MID
                                         : U_BUSY)
                             : (u < 20   ? U_IDLE
                                : u < 45 ? U_LOW
                                : u < 75 ? U_MID
                                         : U_BUSY);
            if (whole && i > 0)
                gp->util = k->gpus[k->gpu_count - i].util;
            gp->mem_mib = mem_mib_of(node->gpu_type);
            uint32_t attrib = proj >= 0 ? (uint32_t)proj : (uint32_t)(k->project_count + gp->ns);
            gp->series = attrib * 256u + node->type_index;
            int kl = snprintf(gp->key, sizeof(gp->key), "%s/%u", node->name, i);
            gp->key_len = (uint32_t)kl;
            snprintf(gp->pod, sizeof(gp->pod), "%s-%05x",
                     proj >= 0 ? loadgen_project_name(k->g, (size_t)proj) : namespaces[gp->ns],
                     (unsigned)rng_below(s, 0xfffff));
            k->gpu_count++;
        }
    }
    return 0;
}

static uint16_t pick_project(struct lg_kinds *k)
{
    uint64_t u = rng_below(&k->rng, k->cum_total);
    size_t lo = 0, hi = k->project_count - 1;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (k->cum[mid] > u)
            hi = mid;
        else
            lo = mid + 1;
    }
    return (uint16_t)lo;
}

int lg_kinds_new(const struct loadgen *g, const struct price_table *prices,
                 const struct loadgen_options *opt, struct lg_kinds **out, char *errbuf,
                 size_t errlen)
{
    int rc = -ENOMEM;
    struct lg_kinds *k = calloc(1, sizeof(*k));
    if (!k)
        return -ENOMEM;
    k->g = g;
    k->prices = prices;
    k->opt = *opt;
    k->kind = opt->kind;
    k->profile = opt->profile;
    bool cost_profile =
        opt->profile == LOADGEN_PROFILE_OPENAI || opt->profile == LOADGEN_PROFILE_ANTHROPIC;
    if ((opt->kind == EVENT_KIND_COST && !cost_profile) ||
        (opt->kind != EVENT_KIND_COST && cost_profile) ||
        (opt->profile == LOADGEN_PROFILE_DCGM && opt->kind != EVENT_KIND_GPU_UTILIZATION) ||
        (opt->kind == EVENT_KIND_FOCUS && opt->profile != LOADGEN_PROFILE_NONE)) {
        rc = kerr(errbuf, errlen,
                  "--profile %s does not suit --kind %s (openai, anthropic: cost; dcgm: "
                  "gpu_utilization; focus: none)",
                  loadgen_profile_name(opt->profile), loadgen_kind_name(opt->kind));
        goto fail;
    }
    if (!(opt->dup_ratio >= 0 && opt->dup_ratio <= 1)) {
        rc = kerr(errbuf, errlen, "--dup-ratio must be between 0 and 1");
        goto fail;
    }
    if (opt->gpu_nodes > 4096) {
        rc = kerr(errbuf, errlen, "--gpu-nodes must be at most 4096");
        goto fail;
    }
    k->project_count = loadgen_project_count(g);
    k->cum = calloc(k->project_count, sizeof(*k->cum));
    k->pkeys = calloc(k->project_count, 300);
    if (!k->cum || !k->pkeys)
        goto fail;
    for (size_t p = 0; p < k->project_count; p++) {
        k->cum_total += (uint64_t)(loadgen_project_share(g, p) * 1099511627776.0) + 1;
        k->cum[p] = k->cum_total;
        snprintf(k->pkeys + p * 300, 300, "%s/%s", loadgen_project_team(g, p),
                 loadgen_project_name(g, p));
    }
    struct rng s;
    rng_seed(&s, 20261204ULL); /* structure: the same series for every --seed */
    switch (opt->kind) {
    case EVENT_KIND_GPU_UTILIZATION:
        k->gkey = opt->profile == LOADGEN_PROFILE_DCGM ? gkey_dcgm : gkey_native;
        k->defects = opt->profile == LOADGEN_PROFILE_DCGM ? dcgm_defects : gpu_defects;
        k->defect_count =
            opt->profile == LOADGEN_PROFILE_DCGM ? COUNT_OF(dcgm_defects) : COUNT_OF(gpu_defects);
        if ((rc = build_fleet(k, &s))) {
            if (rc == -ENOENT)
                rc = kerr(errbuf, errlen,
                          opt->profile == LOADGEN_PROFILE_DCGM
                              ? "DCGM samples are priced by modelName: --prices needs a file "
                                "with gpu_types (e.g. tests/data/prices/gpu-types.yaml)"
                              : "the price tables hold no GPU instance or gpu_types price");
            goto fail;
        }
        if (k->gpu_type_count > 256) {
            rc = kerr(errbuf, errlen, "at most 256 GPU types");
            goto fail;
        }
        break;
    case EVENT_KIND_FOCUS:
        k->defects = focus_defects;
        k->defect_count = COUNT_OF(focus_defects);
        k->project_provider = calloc(k->project_count, 1);
        if (!k->project_provider)
            goto fail;
        for (size_t p = 0; p < k->project_count; p++) {
            uint64_t r = rng_below(&s, 10);
            k->project_provider[p] = (uint8_t)(r < 6 ? PROV_AWS : r < 8 ? PROV_AZURE : PROV_GCP);
        }
        lgu_init(&k->usage_micros, 100, 2000000000ULL);               /* $0.0001 .. $2,000 */
        lgu_init(&k->purchase_micros, 1000000000ULL, 50000000000ULL); /* $1,000 .. $50,000 */
        break;
    default: {
        const char *want = opt->profile == LOADGEN_PROFILE_OPENAI ? "openai" : "anthropic";
        k->defects = provider_defects;
        k->defect_count = COUNT_OF(provider_defects);
        size_t nm = loadgen_model_count(g);
        k->models = calloc(nm ? nm : 1, sizeof(*k->models));
        if (!k->models)
            goto fail;
        for (size_t i = 0; i < nm; i++) {
            const struct llm_price *m = loadgen_model(g, i);
            if (strcmp(m->provider, want) == 0)
                k->models[k->model_count++] = (uint16_t)i;
        }
        if (!k->model_count) {
            rc = kerr(errbuf, errlen, "the price tables hold no %s model", want);
            goto fail;
        }
        /* The built-in profiles set source to "<provider>-api". */
        char api[32];
        snprintf(api, sizeof(api), "%s-api", want);
        k->api_source = UINT16_MAX;
        for (size_t i = 0; loadgen_source_name(g, i); i++)
            if (strcmp(loadgen_source_name(g, i), api) == 0)
                k->api_source = (uint16_t)i;
        if (k->api_source == UINT16_MAX) {
            rc = kerr(errbuf, errlen, "internal: no '%s' source", api);
            goto fail;
        }
        lgu_init(&k->input, 100, 12000);
        lgu_init(&k->output, 20, 2500);
        lgu_init(&k->cached, 64, 8000);
        lgu_init(&k->cache_write, 256, 8000);
        break;
    }
    }
    k->bad = chance_threshold(opt->bad_ratio);
    k->dup = chance_threshold(opt->dup_ratio);
    rng_seed(&k->rng, opt->seed ^ 0x6b696e6473ULL);
    *out = k;
    return 0;
fail:
    lg_kinds_free(k);
    return rc;
}

void lg_kinds_free(struct lg_kinds *k)
{
    if (!k)
        return;
    free(k->cum);
    free(k->pkeys);
    free(k->nodes);
    free(k->gpus);
    free(k->gpu_types);
    free(k->project_provider);
    free(k->models);
    free(k);
}

size_t lg_kinds_defect_count(const struct lg_kinds *k)
{
    return k->defect_count;
}

const char *lg_kinds_defect_name(const struct lg_kinds *k, size_t i)
{
    return i < k->defect_count ? k->defects[i].name : NULL;
}

enum reject_reason lg_kinds_defect_reason(const struct lg_kinds *k, size_t i)
{
    return i < k->defect_count ? k->defects[i].reason : REJECT_NONE;
}

size_t lg_kinds_gpu_count(const struct lg_kinds *k)
{
    return k->gpu_count;
}

const char *lg_kinds_gpu_node(const struct lg_kinds *k, size_t i)
{
    return i < k->gpu_count ? k->nodes[k->gpus[i].node].name : NULL;
}

const char *lg_kinds_gpu_id(const struct lg_kinds *k, size_t i)
{
    static const char *const ids[] = {"0", "1", "2",  "3",  "4",  "5",  "6",  "7",
                                      "8", "9", "10", "11", "12", "13", "14", "15"};
    return i < k->gpu_count ? ids[k->gpus[i].id] : NULL;
}

/* ---- whole-message defects ---------------------------------------------- */

/* Applies a defect that works on the finished object. */
static size_t finish(char *start, size_t len, const struct kdefect *bk)
{
    if (!bk)
        return len;
    switch ((enum kop)bk->op) {
    case K_TRUNCATE:
        return len - 1;
    case K_WRAP:
        memmove(start + 1, start, len);
        start[0] = '[';
        start[len + 1] = ']';
        return len + 2;
    case K_SUFFIX:
        memcpy(start + len, bk->raw, strlen(bk->raw));
        return len + strlen(bk->raw);
    case K_PAD: {
        static const char note[] = ",\"note\":\"";
        size_t pad = 65537 - (len - 1) - (sizeof(note) - 1) - 2;
        char *p = start + len - 1;
        p = PUT_LIT(p, ",\"note\":\"");
        memset(p, 'x', pad);
        p += pad;
        p = PUT_LIT(p, "\"}");
        return (size_t)(p - start);
    }
    default:
        return len;
    }
}

/* A field: key and value unless the defect replaces or omits it. */
#define KFIELD(f, key, write_value)                                                                \
    do {                                                                                           \
        if (bk && bk->field == (f) && bk->op == K_OMIT)                                            \
            break;                                                                                 \
        if (!first)                                                                                \
            *p++ = ',';                                                                            \
        first = false;                                                                             \
        *p++ = '"';                                                                                \
        p = put_cstr(p, key);                                                                      \
        p = PUT_LIT(p, "\":");                                                                     \
        if (bk && bk->field == (f) && bk->op == K_REPLACE)                                         \
            p = put_cstr(p, bk->raw);                                                              \
        else {                                                                                     \
            write_value;                                                                           \
        }                                                                                          \
    } while (0)

/* The end of an object: a repeated field or extra member, then '}'. */
static char *close_object(char *p, const struct kdefect *bk, const char *twice_key)
{
    if (bk && bk->op == K_TWICE) {
        p = PUT_LIT(p, ",\"");
        p = put_cstr(p, twice_key);
        p = PUT_LIT(p, "\":");
        p = put_cstr(p, bk->raw);
    }
    if (bk && bk->op == K_EXTRA) {
        *p++ = ',';
        p = put_cstr(p, bk->raw);
    }
    *p++ = '}';
    return p;
}

/* ---- GPU samples -------------------------------------------------------- */

struct gdraft {
    struct lg_gpu *gpu;
    int64_t end_ms, interval_ms;
    uint32_t util4; /* utilization in 1e-4 */
    bool percent;   /* native: utilization_percent instead of utilization */
    uint64_t mem_mib;
};

static uint32_t draw_util4(struct lg_kinds *k, const struct lg_gpu *gp)
{
    uint32_t u;
    switch (gp->util) {
    case U_IDLE:
        u = rng_below(&k->rng, 4) == 0 ? (uint32_t)rng_below(&k->rng, 200) : 0;
        break;
    case U_LOW:
        u = (uint32_t)rng_range(&k->rng, 100, 3000);
        break;
    case U_MID:
        u = (uint32_t)rng_range(&k->rng, 3000, 7500);
        break;
    default:
        u = (uint32_t)rng_range(&k->rng, 8500, 10000);
        break;
    }
    if (k->profile == LOADGEN_PROFILE_DCGM)
        u -= u % 100; /* DCGM_FI_DEV_GPU_UTIL is a whole percent */
    return u;
}

static size_t write_gpu(struct lg_kinds *k, char *start, const struct gdraft *d,
                        const struct kdefect *bk)
{
    const struct lg_gpu *gp = d->gpu;
    const struct lg_node *node = &k->nodes[gp->node];
    const char *const *key = k->gkey;
    bool dcgm = k->profile == LOADGEN_PROFILE_DCGM;
    bool unpriced = bk && bk->op == K_UNPRICED;
    bool first = true;
    char *p = start;
    *p++ = '{';
    KFIELD(G_TS, key[G_TS], p = put_rfc3339(p, d->end_ms));
    KFIELD(G_INTERVAL, key[G_INTERVAL], p += money_format_scaled((uint64_t)d->interval_ms, 3, p));
    KFIELD(G_NODE, key[G_NODE], p = put_str(p, node->name));
    KFIELD(G_GPU, key[G_GPU], p = put_str(p, lg_kinds_gpu_id(k, (size_t)(gp - k->gpus))));
    if (dcgm) {
        p = PUT_LIT(p, ",\"UUID\":\"GPU-");
        p = put_hex(p, 0x5eed0000u + (uint64_t)(gp - k->gpus) * 2654435761u, 8);
        p = PUT_LIT(p, "-4f3a-9c1e-");
        p = put_hex(p, (uint64_t)(gp - k->gpus), 12);
        *p++ = '"';
        first = false;
    }
    KFIELD(G_GPU_TYPE, key[G_GPU_TYPE], p = put_str(p, unpriced ? "acme-gpu-x1" : node->gpu_type));
    if ((node->inst || unpriced) && !dcgm)
        KFIELD(G_INSTANCE, key[G_INSTANCE],
               p = put_str(p, unpriced ? "onprem-dgx-h100-rack7" : node->inst->instance_type));
    if (gp->project >= 0 && !dcgm) {
        KFIELD(G_TEAM, key[G_TEAM],
               p = put_str(p, loadgen_project_team(k->g, (size_t)gp->project)));
        KFIELD(G_PROJECT, key[G_PROJECT],
               p = put_str(p, loadgen_project_name(k->g, (size_t)gp->project)));
    }
    KFIELD(G_NAMESPACE, key[G_NAMESPACE],
           p = put_str(p, gp->project >= 0 && !dcgm
                              ? loadgen_project_name(k->g, (size_t)gp->project)
                              : namespaces[gp->ns]));
    KFIELD(G_POD, key[G_POD], p = put_str(p, gp->pod));
    if (dcgm)
        KFIELD(G_UTIL, key[G_UTIL], p = put_u64(p, d->util4 / 100));
    else if (d->percent)
        KFIELD(G_UTIL, "utilization_percent", p += money_format_scaled(d->util4, 2, p));
    else
        KFIELD(G_UTIL, key[G_UTIL], p += money_format_scaled(d->util4, 4, p));
    if (dcgm)
        KFIELD(G_MEM, key[G_MEM], p = put_u64(p, d->mem_mib));
    else
        KFIELD(G_MEM, key[G_MEM], p = put_u64(p, d->mem_mib * 1048576));
    p = close_object(p, bk, bk && bk->op == K_TWICE ? key[bk->field] : "");
    return finish(start, (size_t)(p - start), bk);
}

static void next_gpu(struct lg_kinds *k, char *buf, struct loadgen_event *ev)
{
    struct gdraft d = {0};
    const struct kdefect *bk = NULL;
    struct loadgen_contrib *c = &ev->contrib;
    bool any = k->fresh > 0;
    if (k->bad && rng_chance(&k->rng, k->bad)) {
        bk = &k->defects[k->nbad++ % k->defect_count];
        /* A sample of some GPU one period after its newest; nothing in
         * the generator's state moves (a rejected sample changes none). */
        d.gpu = &k->gpus[rng_below(&k->rng, k->gpu_count)];
        d.end_ms = (d.gpu->emitted ? d.gpu->last_end_ms : k->opt.start_ms) + LOADGEN_GPU_PERIOD_MS;
        d.interval_ms = LOADGEN_GPU_PERIOD_MS;
    } else if (any && k->dup && rng_chance(&k->rng, k->dup)) {
        /* Repeat, overlap or replay an earlier interval of a GPU that has
         * reported: the totals count what is new exactly once. */
        uint64_t seen = k->fresh < k->gpu_count ? k->fresh : k->gpu_count;
        d.gpu = &k->gpus[rng_below(&k->rng, seen)];
        int64_t last = d.gpu->last_end_ms;
        switch (rng_below(&k->rng, 3)) {
        case 0: /* the same interval again (an agent's retry) */
            d.end_ms = last;
            d.interval_ms = LOADGEN_GPU_PERIOD_MS;
            break;
        case 1: /* half new, half already counted */
            d.end_ms = last + LOADGEN_GPU_PERIOD_MS / 2;
            d.interval_ms = LOADGEN_GPU_PERIOD_MS;
            d.gpu->last_end_ms = d.end_ms;
            break;
        default: /* an older interval, replayed late */
            d.end_ms = last - LOADGEN_GPU_PERIOD_MS;
            d.interval_ms = LOADGEN_GPU_PERIOD_MS;
            break;
        }
    } else {
        d.gpu = &k->gpus[k->fresh % k->gpu_count];
        uint64_t tick = k->fresh / k->gpu_count;
        int64_t due = k->opt.start_ms + (int64_t)(tick + 1) * LOADGEN_GPU_PERIOD_MS +
                      (int64_t)rng_below(&k->rng, 1000);
        int64_t prev = d.gpu->emitted ? d.gpu->last_end_ms : due - LOADGEN_GPU_PERIOD_MS;
        if (due <= prev) /* after an overlap the next report still moves on */
            due = prev + 1;
        d.end_ms = due;
        d.interval_ms = due - prev;
        d.gpu->last_end_ms = due;
        d.gpu->emitted = true;
        k->fresh++;
    }
    d.util4 = draw_util4(k, d.gpu);
    d.percent = k->profile == LOADGEN_PROFILE_NONE && rng_below(&k->rng, 10) < 3;
    /* The utilization defects are written against the ratio form (1.5 is
     * a valid percent, and a second form would be a duplicate). */
    if (bk)
        d.percent = false;
    d.mem_mib = d.gpu->util == U_IDLE
                    ? rng_below(&k->rng, 512)
                    : d.gpu->mem_mib / 4 + rng_below(&k->rng, d.gpu->mem_mib * 3 / 4);
    ev->len = write_gpu(k, buf, &d, bk);
    ev->key = d.gpu->key;
    ev->key_len = d.gpu->key_len;
    c->kind = EVENT_KIND_GPU_UTILIZATION;
    if (bk) {
        c->reason = (uint8_t)bk->reason;
        ev->bad_kind = (int)(bk - k->defects);
        return;
    }
    c->reason = REJECT_NONE;
    c->gpu = (uint32_t)(d.gpu - k->gpus);
    c->util_ppb = d.util4 * 100000u;
    c->end_ns = (uint64_t)d.end_ms * 1000000u;
    c->interval_ns = (uint64_t)d.interval_ms * 1000000u;
    ev->bad_kind = -1;
}

/* ---- FOCUS rows --------------------------------------------------------- */

static size_t write_focus(struct lg_kinds *k, char *start, int64_t ts_ms, size_t project,
                          bool tagged, unsigned prov, unsigned svc, unsigned acc, unsigned cat,
                          int64_t billed, int64_t effective, const struct kdefect *bk)
{
    char *p = start;
    bool first = true;
    bool str = rng_below(&k->rng, 2) == 0; /* decimal strings or JSON numbers */
    int64_t hour = ts_ms - ts_ms % 3600000;
    /* The defect table names EffectiveCost for "the counted column". */
    struct kdefect swapped;
    if (bk && k->opt.focus_billed && (bk->field == F_EFFECTIVE)) {
        swapped = *bk;
        swapped.field = F_BILLED;
        bk = &swapped;
    }
    *p++ = '{';
    KFIELD(F_BILLED, fkey[F_BILLED], p = put_amount(p, billed, str));
    KFIELD(F_EFFECTIVE, fkey[F_EFFECTIVE], p = put_amount(p, effective, str));
    KFIELD(F_CURRENCY, fkey[F_CURRENCY], p = PUT_LIT(p, "\"USD\""));
    KFIELD(F_CATEGORY, fkey[F_CATEGORY], p = put_str(p, categories[cat]));
    KFIELD(F_SERVICE, fkey[F_SERVICE], p = put_str(p, services[prov][svc]));
    KFIELD(F_PROVIDER, fkey[F_PROVIDER], p = put_str(p, providers[prov]));
    KFIELD(F_ACCOUNT, fkey[F_ACCOUNT], p = put_str(p, accounts[prov][acc]));
    KFIELD(F_RESOURCE, fkey[F_RESOURCE], {
        p = PUT_LIT(p, "\"res-");
        p = put_hex(p, rng_next(&k->rng), 12);
        *p++ = '"';
    });
    KFIELD(F_START, fkey[F_START], p = put_rfc3339(p, hour));
    KFIELD(F_END, fkey[F_END], p = put_rfc3339(p, hour + 3600000));
    KFIELD(F_TAGS, fkey[F_TAGS], {
        *p++ = '{';
        if (tagged) {
            p = PUT_LIT(p, "\"team\":");
            p = put_str(p, loadgen_project_team(k->g, project));
            p = PUT_LIT(p, ",\"project\":");
            p = put_str(p, loadgen_project_name(k->g, project));
            p = PUT_LIT(p, ",\"env\":\"prod\"");
        } else {
            p = PUT_LIT(p, "\"env\":\"shared\"");
        }
        *p++ = '}';
    });
    p = close_object(p, bk, bk && bk->op == K_TWICE ? fkey[bk->field] : "");
    return finish(start, (size_t)(p - start), bk);
}

static void next_focus(struct lg_kinds *k, int64_t ts_ms, char *buf, struct loadgen_event *ev)
{
    struct loadgen_contrib *c = &ev->contrib;
    const struct kdefect *bk = NULL;
    if (k->bad && rng_chance(&k->rng, k->bad))
        bk = &k->defects[k->nbad++ % k->defect_count];
    size_t project = pick_project(k);
    bool tagged = rng_below(&k->rng, 100) < 90;
    unsigned prov = k->project_provider[project];
    unsigned svc = (unsigned)rng_below(&k->rng, SVC_COUNT);
    unsigned acc = (unsigned)(loadgen_project_team_index(k->g, project) % ACC_COUNT);
    uint64_t r = rng_below(&k->rng, 100);
    unsigned cat = r < 78   ? CAT_USAGE
                   : r < 83 ? CAT_PURCHASE
                   : r < 91 ? CAT_TAX
                   : r < 97 ? CAT_CREDIT
                            : CAT_ADJUSTMENT;
    int64_t billed, effective;
    int64_t sub = (int64_t)rng_below(&k->rng, 1000); /* nano-dollar digits */
    switch (cat) {
    case CAT_USAGE:
        billed = (int64_t)lgu_draw(&k->rng, &k->usage_micros) * 1000 + sub;
        /* 60% covered by a commitment: EffectiveCost 55-99% of BilledCost */
        effective = rng_below(&k->rng, 10) < 6
                        ? billed / 100 * (int64_t)rng_range(&k->rng, 55, 99) + sub / 7
                        : billed;
        break;
    case CAT_PURCHASE: /* an upfront commitment: amortised into usage, 0 effective */
        billed = (int64_t)lgu_draw(&k->rng, &k->purchase_micros) * 1000;
        effective = 0;
        break;
    case CAT_TAX:
        billed = effective = (int64_t)lgu_draw(&k->rng, &k->usage_micros) * 70 + sub;
        break;
    case CAT_CREDIT:
        billed = -((int64_t)lgu_draw(&k->rng, &k->usage_micros) * 500 + sub);
        effective = billed / 10 * 9;
        break;
    default: /* corrections both ways */
        billed = (int64_t)lgu_draw(&k->rng, &k->usage_micros) * 100 + sub;
        if (rng_below(&k->rng, 2))
            billed = -billed;
        effective = billed;
        break;
    }
    ev->len =
        write_focus(k, buf, ts_ms, project, tagged, prov, svc, acc, cat, billed, effective, bk);
    ev->key = k->pkeys + project * 300;
    ev->key_len = strlen(ev->key);
    c->kind = EVENT_KIND_FOCUS;
    c->project = (uint16_t)project;
    if (bk) {
        c->reason = (uint8_t)bk->reason;
        ev->bad_kind = (int)(bk - k->defects);
        return;
    }
    c->reason = REJECT_NONE;
    uint32_t attrib = tagged ? (uint32_t)project : (uint32_t)k->project_count;
    c->series =
        (((attrib * PROV_COUNT + prov) * SVC_COUNT + svc) * ACC_COUNT + acc) * CAT_COUNT + cat;
    c->amount_nanos = k->opt.focus_billed ? billed : effective;
    ev->bad_kind = -1;
}

/* ---- OpenAI / Anthropic response bodies --------------------------------- */

static void next_provider(struct lg_kinds *k, int64_t ts_ms, char *buf, struct loadgen_event *ev)
{
    struct loadgen_contrib *c = &ev->contrib;
    const struct kdefect *bk = NULL;
    if (k->bad && rng_chance(&k->rng, k->bad))
        bk = &k->defects[k->nbad++ % k->defect_count];
    size_t project = pick_project(k);
    uint16_t mi = k->models[rng_below(&k->rng, k->model_count)];
    const struct llm_price *m = loadgen_model(k->g, mi);
    uint64_t tokens[TOKEN_KIND_COUNT] = {0};
    tokens[TOKEN_INPUT] = lgu_draw(&k->rng, &k->input);
    tokens[TOKEN_OUTPUT] = lgu_draw(&k->rng, &k->output);
    if (m->per_million_nanos[TOKEN_CACHED_INPUT] != PRICE_NONE && rng_below(&k->rng, 100) < 35)
        tokens[TOKEN_CACHED_INPUT] = lgu_draw(&k->rng, &k->cached);
    if (k->profile == LOADGEN_PROFILE_ANTHROPIC &&
        m->per_million_nanos[TOKEN_CACHE_WRITE] != PRICE_NONE && rng_below(&k->rng, 100) < 12)
        tokens[TOKEN_CACHE_WRITE] = lgu_draw(&k->rng, &k->cache_write);
    const char *model = bk && bk->op == K_UNPRICED ? "acme-internal-llm-v3" : m->model;
    uint64_t id = rng_next(&k->rng);
    char *p = buf;
    bool first = true;
    *p++ = '{';
    if (k->profile == LOADGEN_PROFILE_OPENAI) {
        p = PUT_LIT(p, "\"id\":\"chatcmpl-");
        p = put_hex(p, id, 16);
        p = PUT_LIT(p, "\",\"object\":\"chat.completion\",\"created\":");
        p = put_u64(p, (uint64_t)(ts_ms / 1000));
        first = false;
        KFIELD(O_MODEL, "model", p = put_str(p, model));
        p = PUT_LIT(p, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
                       "\"content\":\"Here is the summary you asked for.\"},"
                       "\"finish_reason\":\"stop\"}],\"usage\":{");
        first = true;
        /* prompt_tokens includes the cached ones; the mapping subtracts */
        KFIELD(O_TOKENS, "prompt_tokens",
               p = put_u64(p, tokens[TOKEN_INPUT] + tokens[TOKEN_CACHED_INPUT]));
        p = PUT_LIT(p, ",\"completion_tokens\":");
        p = put_u64(p, tokens[TOKEN_OUTPUT]);
        p = PUT_LIT(p, ",\"total_tokens\":");
        p = put_u64(p, tokens[TOKEN_INPUT] + tokens[TOKEN_CACHED_INPUT] + tokens[TOKEN_OUTPUT]);
        if (tokens[TOKEN_CACHED_INPUT]) {
            p = PUT_LIT(p, ",\"prompt_tokens_details\":{\"cached_tokens\":");
            p = put_u64(p, tokens[TOKEN_CACHED_INPUT]);
            *p++ = '}';
        }
        *p++ = '}';
    } else {
        p = PUT_LIT(p, "\"id\":\"msg_");
        p = put_hex(p, id, 16);
        p = PUT_LIT(p, "\",\"type\":\"message\",\"role\":\"assistant\"");
        first = false;
        KFIELD(O_MODEL, "model", p = put_str(p, model));
        p = PUT_LIT(p, ",\"content\":[{\"type\":\"text\",\"text\":\"Done: three issues found.\"}],"
                       "\"stop_reason\":\"end_turn\",\"usage\":{");
        first = true;
        KFIELD(O_TOKENS, "input_tokens", p = put_u64(p, tokens[TOKEN_INPUT]));
        p = PUT_LIT(p, ",\"cache_creation_input_tokens\":");
        p = put_u64(p, tokens[TOKEN_CACHE_WRITE]);
        p = PUT_LIT(p, ",\"cache_read_input_tokens\":");
        p = put_u64(p, tokens[TOKEN_CACHED_INPUT]);
        p = PUT_LIT(p, ",\"output_tokens\":");
        p = put_u64(p, tokens[TOKEN_OUTPUT]);
        *p++ = '}';
    }
    p = PUT_LIT(p, ",\"metadata\":{\"team\":");
    p = put_str(p, loadgen_project_team(k->g, project));
    p = PUT_LIT(p, ",\"project\":");
    p = put_str(p, loadgen_project_name(k->g, project));
    *p++ = '}';
    p = close_object(p, bk, "");
    ev->len = finish(buf, (size_t)(p - buf), bk);
    ev->key = k->pkeys + project * 300;
    ev->key_len = strlen(ev->key);
    ev->has_cost = false;
    c->kind = EVENT_KIND_COST;
    c->project = (uint16_t)project;
    if (bk) {
        c->reason = (uint8_t)bk->reason;
        ev->bad_kind = (int)(bk - k->defects);
        return;
    }
    uint64_t cost = 0;
    struct label_value pv = {m->provider, strlen(m->provider)}, mv = {m->model, strlen(m->model)};
    /* Cannot fail: only the provider's priced models and priced kinds. */
    if (price_table_llm_cost(k->prices, pv, mv, tokens, &cost) != 0)
        cost = 0;
    c->reason = REJECT_NONE;
    c->source = k->api_source;
    c->item = mi;
    for (int t = 0; t < TOKEN_KIND_COUNT; t++)
        c->tokens[t] = (uint32_t)tokens[t];
    c->cost_nanos = cost;
    ev->bad_kind = -1;
}

void lg_kinds_next(struct lg_kinds *k, int64_t timestamp_ms, char *buf, struct loadgen_event *ev)
{
    ev->has_cost = false;
    if (k->kind == EVENT_KIND_GPU_UTILIZATION)
        next_gpu(k, buf, ev);
    else if (k->kind == EVENT_KIND_FOCUS)
        next_focus(k, timestamp_ms, buf, ev);
    else
        next_provider(k, timestamp_ms, buf, ev);
    ev->data = buf;
}

/* ---- totals ------------------------------------------------------------- */

struct lg_kinds_totals {
    const struct lg_kinds *k;
    uint64_t *mark_ns; /* per GPU: end of the newest interval counted */
    size_t series_count;
    uint64_t *allocated_micros, *idle_nanos; /* per {team,project,gpu_type} */
    uint8_t *gpu_seen;
    uint64_t counted, deduplicated;
    size_t focus_count;
    uint64_t *cloud, *credit; /* per FOCUS series */
    uint8_t *cloud_seen, *credit_seen;
};

struct lg_kinds_totals *lg_kinds_totals_new(const struct lg_kinds *k)
{
    struct lg_kinds_totals *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->k = k;
    t->series_count = (k->project_count + NS_COUNT) * 256u;
    t->focus_count = (k->project_count + 1) * PROV_COUNT * SVC_COUNT * ACC_COUNT * CAT_COUNT;
    t->mark_ns = calloc(k->gpu_count ? k->gpu_count : 1, sizeof(uint64_t));
    t->allocated_micros = calloc(t->series_count, sizeof(uint64_t));
    t->idle_nanos = calloc(t->series_count, sizeof(uint64_t));
    t->gpu_seen = calloc(t->series_count, 1);
    t->cloud = calloc(t->focus_count, sizeof(uint64_t));
    t->credit = calloc(t->focus_count, sizeof(uint64_t));
    t->cloud_seen = calloc(t->focus_count, 1);
    t->credit_seen = calloc(t->focus_count, 1);
    if (!t->mark_ns || !t->allocated_micros || !t->idle_nanos || !t->gpu_seen || !t->cloud ||
        !t->credit || !t->cloud_seen || !t->credit_seen) {
        lg_kinds_totals_free(t);
        return NULL;
    }
    return t;
}

void lg_kinds_totals_free(struct lg_kinds_totals *t)
{
    if (!t)
        return;
    free(t->mark_ns);
    free(t->allocated_micros);
    free(t->idle_nanos);
    free(t->gpu_seen);
    free(t->cloud);
    free(t->credit);
    free(t->cloud_seen);
    free(t->credit_seen);
    free(t);
}

/* round(num / den), halves up: the pricing engine's one rounding. */
static uint64_t div_round_half_up(unsigned __int128 num, unsigned __int128 den)
{
    unsigned __int128 q = num / den, r = num % den;
    if (r * 2 >= den)
        q++;
    return (uint64_t)q;
}

void lg_kinds_totals_add(struct lg_kinds_totals *t, const struct loadgen_contrib *c)
{
    const struct lg_kinds *k = t->k;
    if (c->kind == EVENT_KIND_FOCUS) {
        if (c->amount_nanos >= 0) {
            t->cloud[c->series] += (uint64_t)c->amount_nanos;
            t->cloud_seen[c->series] = 1;
        } else {
            t->credit[c->series] += (uint64_t)(-c->amount_nanos);
            t->credit_seen[c->series] = 1;
        }
        return;
    }
    if (c->kind != EVENT_KIND_GPU_UTILIZATION || c->gpu >= k->gpu_count)
        return;
    /* The dedup rule: only [max(start, mark), end) counts, then the mark
     * moves to the newest end. */
    uint64_t end = c->end_ns, start = end - c->interval_ns, *mark = &t->mark_ns[c->gpu];
    if (end <= *mark) {
        t->deduplicated++;
        return;
    }
    uint64_t from = start > *mark ? start : *mark;
    uint64_t counted = end - from;
    *mark = end;
    t->counted++;
    const struct lg_gpu *gp = &k->gpus[c->gpu];
    const struct lg_node *node = &k->nodes[gp->node];
    t->allocated_micros[gp->series] += (counted + 500) / 1000;
    /* idle = counted_ns x (1 - util) x per-GPU-second price, in nano-dollars:
     * counted x (1e9 - ppb) x per_hour / (gpus x 3600 x 1e9 x 1e9) */
    unsigned __int128 num = (unsigned __int128)counted * (NANOS - c->util_ppb);
    unsigned __int128 den = (unsigned __int128)3600u * NANOS * NANOS;
    if (node->inst) {
        num *= node->inst->per_hour_nanos;
        den *= node->inst->gpus;
    } else {
        num *= node->tprice->per_gpu_hour_nanos;
    }
    t->idle_nanos[gp->series] += div_round_half_up(num, den);
    t->gpu_seen[gp->series] = 1;
}

uint64_t lg_kinds_totals_deduplicated(const struct lg_kinds_totals *t)
{
    return t->deduplicated;
}

bool lg_kinds_totals_json(const struct lg_kinds_totals *t, cJSON *root)
{
    static const char *const gnames[] = {"team", "project", "gpu_type"};
    static const char *const fnames[] = {"team",    "project",         "provider",
                                         "service", "charge_category", "sub_account"};
    const struct lg_kinds *k = t->k;
    if (k->kind == EVENT_KIND_GPU_UTILIZATION) {
        cJSON *alloc = cJSON_AddArrayToObject(root, "gpu_allocated_micros");
        cJSON *idle = cJSON_AddArrayToObject(root, "gpu_idle_cost_nanos");
        cJSON *samples = cJSON_AddObjectToObject(root, "gpu_samples");
        if (!alloc || !idle || !samples || !lg_json_add_u64(samples, "counted", t->counted) ||
            !lg_json_add_u64(samples, "deduplicated", t->deduplicated))
            return false;
        for (size_t s = 0; s < t->series_count; s++) {
            if (!t->gpu_seen[s])
                continue;
            size_t attrib = s / 256, type = s % 256;
            const char *v[3];
            if (attrib < k->project_count) {
                v[0] = loadgen_project_team(k->g, attrib);
                v[1] = loadgen_project_name(k->g, attrib);
            } else {
                v[0] = UNATTRIBUTED;
                v[1] = namespaces[attrib - k->project_count];
            }
            v[2] = k->gpu_types[type];
            if (!lg_json_add_series(alloc, gnames, v, 3, t->allocated_micros[s]) ||
                !lg_json_add_series(idle, gnames, v, 3, t->idle_nanos[s]))
                return false;
        }
    }
    if (k->kind == EVENT_KIND_FOCUS) {
        cJSON *cloud = cJSON_AddArrayToObject(root, "cloud_cost_nanos");
        cJSON *credit = cJSON_AddArrayToObject(root, "credit_nanos");
        if (!cloud || !credit)
            return false;
        for (size_t s = 0; s < t->focus_count; s++) {
            if (!t->cloud_seen[s] && !t->credit_seen[s])
                continue;
            size_t x = s;
            size_t cat = x % CAT_COUNT;
            x /= CAT_COUNT;
            size_t acc = x % ACC_COUNT;
            x /= ACC_COUNT;
            size_t svc = x % SVC_COUNT;
            x /= SVC_COUNT;
            size_t prov = x % PROV_COUNT;
            size_t attrib = x / PROV_COUNT;
            const char *v[6] = {
                attrib < k->project_count ? loadgen_project_team(k->g, attrib) : UNATTRIBUTED,
                attrib < k->project_count ? loadgen_project_name(k->g, attrib) : UNATTRIBUTED,
                providers[prov],
                services[prov][svc],
                categories[cat],
                accounts[prov][acc]};
            if (t->cloud_seen[s] && !lg_json_add_series(cloud, fnames, v, 6, t->cloud[s]))
                return false;
            if (t->credit_seen[s] && !lg_json_add_series(credit, fnames, v, 6, t->credit[s]))
                return false;
        }
    }
    return true;
}

/*
 * loadgen.c - deterministic generator of realistic cost events (see loadgen.h).
 *
 * Design: the catalogue (which project uses which models and instances, how
 * often it runs GPU jobs) is drawn once from a FIXED structure seed, so the
 * set of series is the same for every --seed; --seed only drives the
 * event stream (xoshiro256**). Distributions avoid libm on the hot path:
 * Zipf picks are integer cumulative weights with a binary search, and
 * "log-uniform" sizes are 64 geometric buckets computed once, uniform
 * within a bucket. Events are written with memcpy/format_u64/money_format
 * into one buffer; a defect is applied while writing (replace/add a
 * field's raw text, prepend, append) or after (truncate, wrap, pad...).
 * Thread-safety: a generator and a totals object belong to one thread.
 */
#include "loadgen.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loadgen_internal.h"
#include "money.h"

/* The PRNG (xoshiro256**) and chance thresholds are in loadgen_internal.h. */

/* ---- log-uniform sizes without libm on the hot path --------------------- */

#define LOGU_BUCKETS 64

struct logu {
    uint64_t bound[LOGU_BUCKETS + 1]; /* bucket k is [bound[k], bound[k+1]) */
};

static void logu_init(struct logu *l, uint64_t lo, uint64_t hi)
{
    double ratio = log((double)hi / (double)lo);
    l->bound[0] = lo;
    for (int k = 1; k < LOGU_BUCKETS; k++) {
        uint64_t b = (uint64_t)llround((double)lo * exp(ratio * k / LOGU_BUCKETS));
        l->bound[k] = b < l->bound[k - 1] ? l->bound[k - 1] : b;
    }
    l->bound[LOGU_BUCKETS] = hi + 1;
}

static inline uint64_t logu_draw(struct rng *r, const struct logu *l)
{
    uint64_t k = rng_below(r, LOGU_BUCKETS);
    uint64_t lo = l->bound[k], hi = l->bound[k + 1];
    return hi > lo + 1 ? rng_range(r, lo, hi - 1) : lo;
}

/* ---- the fixed catalogue ------------------------------------------------ */

/* Teams in Zipf rank order, each with its projects in rank order. Names are
 * JSON-safe as written (no quote, backslash or control character) and hold
 * no '/', which separates team and project in the message key. */
static const struct {
    const char *team;
    const char *projects[7];
} catalogue[] = {
    {"ml-platform",
     {"training-infra", "inference-gateway", "eval-harness", "feature-store", "model-registry",
      "embeddings"}},
    {"llm-platform",
     {"prompt-gateway", "rag-service", "agent-runtime", "fine-tune-service", "guardrails"}},
    {"search-ranking",
     {"semantic-search", "learning-to-rank", "query-understanding", "spell-correct"}},
    {"recsys", {"home-feed", "two-tower-retrieval", "similar-items", "notifications-ranker"}},
    {"support-automation", {"reply-drafts", "ticket-router", "kb-summarizer", "voice-agent"}},
    {"research",
     {"pretraining-7b", "rlhf-experiments", "long-context-eval", "tokenizer-lab", "distillation"}},
    {"ads", {"ctr-prediction", "creative-gen", "bid-optimizer", "brand-safety"}},
    {"fraud", {"txn-scoring", "account-takeover", "chargeback-triage"}},
    {"growth", {"onboarding-copilot", "churn-prediction", "referral-gen", "ab-test-analyst"}},
    {"devex", {"code-review-bot", "test-generation", "docs-qa", "ci-triage"}},
    {"vision", {"ocr-pipeline", "image-gen", "defect-detection"}},
    {"trust-safety",
     {"content-moderation", "spam-detection", "image-moderation", "appeals-assistant"}},
    {"marketplace", {"listing-enrichment", "image-captioning", "price-suggest"}},
    {"data-eng", {"sql-copilot", "pii-redaction", "schema-inference", "catalog-tagger"}},
    {"payments", {"invoice-parsing", "dispute-assistant", "reconciliation"}},
    {"risk", {"kyc-docs", "sanctions-screening", "credit-memos"}},
    {"voice", {"asr-finetune", "tts-service", "call-summaries"}},
    {"customer-insights", {"review-mining", "survey-clustering", "nps-themes"}},
    {"security", {"phishing-triage", "code-scanning", "log-summarizer"}},
    {"legal-ai", {"contract-review", "ediscovery", "policy-qa"}},
    {"mobile", {"smart-compose", "on-device-distill", "photo-tags"}},
    {"web", {"chat-widget", "site-search", "seo-briefs"}},
    {"pricing", {"demand-forecast", "dynamic-pricing"}},
    {"logistics", {"eta-model", "route-optimizer", "warehouse-vision"}},
    {"maps", {"poi-extraction", "geocoder-llm"}},
    {"finance-analytics", {"earnings-summaries", "forecast-narratives", "expense-audit"}},
    {"sre", {"alert-dedup", "postmortem-writer", "runbook-agent", "capacity-planner"}},
    {"hr-tools", {"resume-screening", "interview-notes"}},
    {"équipe-données", {"analyse-qualité", "tableau-de-bord"}},
    {"localization", {"translation-memory", "ja-研究"}},
};
#define TEAM_COUNT (sizeof(catalogue) / sizeof(catalogue[0]))

/* Teams whose projects run GPU jobs often. */
static bool gpu_heavy(const char *team)
{
    return strcmp(team, "ml-platform") == 0 || strcmp(team, "research") == 0 ||
           strcmp(team, "vision") == 0 || strcmp(team, "voice") == 0;
}

/* The structure of the catalogue is drawn from this seed, never --seed, so
 * every run has the same series. */
#define STRUCTURE_SEED 20261123ULL

enum gpu_source { GPU_INFERENCE, GPU_BATCH, GPU_TRAINING, GPU_NOTEBOOKS, GPU_SOURCE_COUNT };
static const char *const gpu_source_names[GPU_SOURCE_COUNT] = {"gpu-inference", "gpu-batch",
                                                               "gpu-training", "notebooks"};
/* Cumulative per mille: 70% inference, 18% batch, 9% training, 3% notebooks. */
static const uint16_t gpu_source_cum[GPU_SOURCE_COUNT] = {700, 880, 970, 1000};

enum model_class { CLASS_SMALL, CLASS_MEDIUM, CLASS_LARGE, CLASS_COUNT };

struct lg_model {
    const struct llm_price *price;
    uint32_t provider_len, model_len;
    uint16_t source, alt_source; /* alt == source when the provider has no alternative */
    uint8_t klass;
};

struct lg_instance {
    const struct gpu_price *price;
    uint32_t type_len, gpu_type_len;
};

#define PROJECT_MAX_MODELS    3
#define PROJECT_MAX_INSTANCES 2

struct lg_project {
    const char *team, *name;
    uint32_t team_len, name_len;
    uint16_t team_index;
    const char *key;
    uint32_t key_len;
    uint64_t weight; /* current (spikes change it) */
    uint64_t base_weight;
    uint16_t models[PROJECT_MAX_MODELS];
    uint8_t model_count;
    uint16_t instances[PROJECT_MAX_INSTANCES];
    uint8_t instance_count;
    uint64_t gpu_threshold;
    uint32_t usage_milli; /* spike usage multiplier, 1000 = none */
};

/* ---- defects ------------------------------------------------------------ */

enum fld {
    FLD_NONE,
    FLD_TIMESTAMP,
    FLD_TEAM,
    FLD_PROJECT,
    FLD_SOURCE,
    FLD_PROVIDER,
    FLD_MODEL,
    FLD_INPUT,
    FLD_CACHED,
    FLD_WRITE,
    FLD_OUTPUT,
    FLD_INSTANCE,
    FLD_GPU_TYPE,
    FLD_GPU_COUNT,
    FLD_DURATION,
    FLD_COST,
    FLD_LABELS,
    FLD_COUNT
};

/* Each key with the comma that precedes it (event_id always comes first). */
static const char *const fld_key[FLD_COUNT] = {
    [FLD_TIMESTAMP] = ",\"timestamp\":",
    [FLD_TEAM] = ",\"team\":",
    [FLD_PROJECT] = ",\"project\":",
    [FLD_SOURCE] = ",\"source\":",
    [FLD_PROVIDER] = ",\"provider\":",
    [FLD_MODEL] = ",\"model\":",
    [FLD_INPUT] = ",\"input_tokens\":",
    [FLD_CACHED] = ",\"cached_input_tokens\":",
    [FLD_WRITE] = ",\"cache_write_tokens\":",
    [FLD_OUTPUT] = ",\"output_tokens\":",
    [FLD_INSTANCE] = ",\"instance_type\":",
    [FLD_GPU_TYPE] = ",\"gpu_type\":",
    [FLD_GPU_COUNT] = ",\"gpu_count\":",
    [FLD_DURATION] = ",\"duration_seconds\":",
    [FLD_COST] = ",\"cost_usd\":",
    [FLD_LABELS] = ",\"labels\":",
};

enum op {
    OP_REPLACE,        /* field's value becomes raw (added when absent) */
    OP_REPLACE_REPEAT, /* field's value becomes a string of `size` copies of raw[0] */
    OP_APPEND,         /* ",raw" before the closing brace */
    OP_PREPEND,        /* "raw," after the opening brace */
    OP_TRUNCATE,       /* last byte dropped */
    OP_SUFFIX,         /* raw after the object */
    OP_WRAP,           /* [object] */
    OP_WHOLE,          /* the message is raw */
    OP_PAD,            /* an unknown string field pads the message to `size` bytes */
    OP_UNPRICED_MODEL, /* usage-only, with a model no table knows */
    OP_UNPRICED_INSTANCE,
    OP_UNPRICED_KIND, /* usage-only, cache writes on a model without that price */
};

enum base { BASE_ANY = 0, BASE_LLM = 1, BASE_GPU = 2, BASE_KIND = 3, BASE_COST = 4 };

struct bad_kind {
    const char *name;
    enum reject_reason reason;
    uint8_t base;
    uint8_t op;
    uint8_t field;
    const char *raw;
    uint32_t size;
};

#define DEEP_ARRAYS_17  "\"extra\":[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]"
#define OBJ5            "{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":"
#define END5            "}}}}}"
#define DEEP_OBJECTS_30 "\"extra\":" OBJ5 OBJ5 OBJ5 OBJ5 OBJ5 OBJ5 "1" END5 END5 END5 END5 END5 END5

/* Every defect the contract distinguishes, each alone in an otherwise
 * valid event. Raw invalid UTF-8 is written as bytes on purpose. */
static const struct bad_kind bad_kinds[] = {
    {"invalid_json:truncated", REJECT_INVALID_JSON, BASE_ANY, OP_TRUNCATE, 0, NULL, 0},
    {"invalid_json:trailing_comma", REJECT_INVALID_JSON, BASE_ANY, OP_APPEND, 0, "", 0},
    {"invalid_json:nan_cost", REJECT_INVALID_JSON, BASE_ANY, OP_REPLACE, FLD_COST, "NaN", 0},
    {"invalid_json:leading_zero", REJECT_INVALID_JSON, BASE_ANY, OP_REPLACE, FLD_COST, "01", 0},
    {"invalid_json:lone_surrogate", REJECT_INVALID_JSON, BASE_ANY, OP_REPLACE, FLD_TEAM,
     "\"ml-\\ud800x\"", 0},
    {"invalid_json:garbage", REJECT_INVALID_JSON, BASE_ANY, OP_WHOLE, 0, "this is not json", 0},
    {"invalid_json:unterminated_string", REJECT_INVALID_JSON, BASE_ANY, OP_WHOLE, 0,
     "{\"team\":\"ads", 0},
    {"not_object:array", REJECT_NOT_OBJECT, BASE_ANY, OP_WRAP, 0, NULL, 0},
    {"not_object:number", REJECT_NOT_OBJECT, BASE_ANY, OP_WHOLE, 0, "42", 0},
    {"not_object:string", REJECT_NOT_OBJECT, BASE_ANY, OP_WHOLE, 0, "\"cost_usd\"", 0},
    {"not_object:null", REJECT_NOT_OBJECT, BASE_ANY, OP_WHOLE, 0, "null", 0},
    {"trailing_data:word", REJECT_TRAILING_DATA, BASE_ANY, OP_SUFFIX, 0, " x", 0},
    {"trailing_data:object", REJECT_TRAILING_DATA, BASE_ANY, OP_SUFFIX, 0, "{\"a\":1}", 0},
    {"trailing_data:bracket", REJECT_TRAILING_DATA, BASE_ANY, OP_SUFFIX, 0, "]", 0},
    {"too_large:65537", REJECT_TOO_LARGE, BASE_ANY, OP_PAD, 0, NULL, 65537},
    {"too_large:200000", REJECT_TOO_LARGE, BASE_ANY, OP_PAD, 0, NULL, 200000},
    {"too_deep:arrays_17", REJECT_TOO_DEEP, BASE_ANY, OP_APPEND, 0, DEEP_ARRAYS_17, 0},
    {"too_deep:objects_31", REJECT_TOO_DEEP, BASE_ANY, OP_APPEND, 0, DEEP_OBJECTS_30, 0},
    {"wrong_type:cost_string", REJECT_WRONG_TYPE, BASE_ANY, OP_REPLACE, FLD_COST, "\"12\"", 0},
    {"wrong_type:team_number", REJECT_WRONG_TYPE, BASE_ANY, OP_REPLACE, FLD_TEAM, "5", 0},
    {"wrong_type:project_bool", REJECT_WRONG_TYPE, BASE_ANY, OP_REPLACE, FLD_PROJECT, "true", 0},
    {"wrong_type:source_object", REJECT_WRONG_TYPE, BASE_ANY, OP_REPLACE, FLD_SOURCE,
     "{\"name\":\"openai-api\"}", 0},
    {"wrong_type:model_array", REJECT_WRONG_TYPE, BASE_LLM, OP_REPLACE, FLD_MODEL, "[\"gpt-4o\"]",
     0},
    {"wrong_type:tokens_string", REJECT_WRONG_TYPE, BASE_LLM, OP_REPLACE, FLD_INPUT, "\"100\"", 0},
    {"wrong_type:labels_string", REJECT_WRONG_TYPE, BASE_ANY, OP_REPLACE, FLD_LABELS,
     "\"env=prod\"", 0},
    {"wrong_type:gpu_count_string", REJECT_WRONG_TYPE, BASE_GPU, OP_REPLACE, FLD_GPU_COUNT, "\"8\"",
     0},
    {"wrong_type:duration_string", REJECT_WRONG_TYPE, BASE_GPU, OP_REPLACE, FLD_DURATION,
     "\"3600\"", 0},
    {"wrong_type:timestamp_bool", REJECT_WRONG_TYPE, BASE_ANY, OP_REPLACE, FLD_TIMESTAMP, "true",
     0},
    {"duplicate_field:cost", REJECT_DUPLICATE_FIELD, BASE_ANY | BASE_COST, OP_APPEND, 0,
     "\"cost_usd\":1000", 0},
    {"duplicate_field:team", REJECT_DUPLICATE_FIELD, BASE_ANY, OP_PREPEND, 0, "\"team\":\"ads\"",
     0},
    {"duplicate_field:input_tokens", REJECT_DUPLICATE_FIELD, BASE_LLM, OP_APPEND, 0,
     "\"input_tokens\":1", 0},
    {"invalid_cost:negative", REJECT_INVALID_COST, BASE_ANY, OP_REPLACE, FLD_COST, "-1", 0},
    {"invalid_cost:negative_nano", REJECT_INVALID_COST, BASE_ANY, OP_REPLACE, FLD_COST,
     "-0.000000001", 0},
    {"invalid_cost:negative_zero", REJECT_INVALID_COST, BASE_ANY, OP_REPLACE, FLD_COST, "-0", 0},
    {"invalid_cost:infinite", REJECT_INVALID_COST, BASE_ANY, OP_REPLACE, FLD_COST, "1e400", 0},
    {"invalid_cost:too_big", REJECT_INVALID_COST, BASE_ANY, OP_REPLACE, FLD_COST, "2000000", 0},
    {"invalid_cost:max_plus_nano", REJECT_INVALID_COST, BASE_ANY, OP_REPLACE, FLD_COST,
     "1000000.000000001", 0},
    {"invalid_tokens:fraction", REJECT_INVALID_TOKENS, BASE_LLM, OP_REPLACE, FLD_INPUT, "1.5", 0},
    {"invalid_tokens:negative", REJECT_INVALID_TOKENS, BASE_LLM, OP_REPLACE, FLD_INPUT, "-3", 0},
    {"invalid_tokens:output_negative", REJECT_INVALID_TOKENS, BASE_LLM, OP_REPLACE, FLD_OUTPUT,
     "-1", 0},
    {"invalid_tokens:cached_fraction", REJECT_INVALID_TOKENS, BASE_LLM, OP_REPLACE, FLD_CACHED,
     "2.5", 0},
    {"invalid_tokens:above_2p53", REJECT_INVALID_TOKENS, BASE_LLM, OP_REPLACE, FLD_INPUT,
     "9007199254740994", 0},
    {"invalid_usage:gpu_count_negative", REJECT_INVALID_USAGE, BASE_GPU, OP_REPLACE, FLD_GPU_COUNT,
     "-1", 0},
    {"invalid_usage:gpu_count_fraction", REJECT_INVALID_USAGE, BASE_GPU, OP_REPLACE, FLD_GPU_COUNT,
     "1.5", 0},
    {"invalid_usage:gpu_count_too_big", REJECT_INVALID_USAGE, BASE_GPU, OP_REPLACE, FLD_GPU_COUNT,
     "1000001", 0},
    {"invalid_usage:duration_negative", REJECT_INVALID_USAGE, BASE_GPU, OP_REPLACE, FLD_DURATION,
     "-5", 0},
    {"invalid_usage:duration_too_long", REJECT_INVALID_USAGE, BASE_GPU, OP_REPLACE, FLD_DURATION,
     "4000000.001", 0},
    {"invalid_label:utf8_ff", REJECT_INVALID_LABEL, BASE_ANY, OP_REPLACE, FLD_TEAM,
     "\"ml-\xff\xfe\"", 0},
    {"invalid_label:utf8_overlong", REJECT_INVALID_LABEL, BASE_ANY, OP_REPLACE, FLD_PROJECT,
     "\"over\xc0\xaf"
     "long\"",
     0},
    {"invalid_label:utf8_truncated", REJECT_INVALID_LABEL, BASE_ANY, OP_REPLACE, FLD_SOURCE,
     "\"caf\xc3\"", 0},
    {"invalid_label:utf8_surrogate", REJECT_INVALID_LABEL, BASE_LLM, OP_REPLACE, FLD_MODEL,
     "\"gpt-\xed\xa0\x80\"", 0},
    {"invalid_label:utf8_gpu_type", REJECT_INVALID_LABEL, BASE_GPU, OP_REPLACE, FLD_GPU_TYPE,
     "\"h100-\x80\"", 0},
    {"invalid_label:team_200_bytes", REJECT_INVALID_LABEL, BASE_ANY, OP_REPLACE_REPEAT, FLD_TEAM,
     "t", 200},
    {"invalid_label:project_129_bytes", REJECT_INVALID_LABEL, BASE_ANY, OP_REPLACE_REPEAT,
     FLD_PROJECT, "p", 129},
    {"invalid_label:reserved_overflow", REJECT_INVALID_LABEL, BASE_ANY, OP_REPLACE, FLD_PROJECT,
     "\"__overflow__\"", 0},
    {"invalid_timestamp:word", REJECT_INVALID_TIMESTAMP, BASE_ANY, OP_REPLACE, FLD_TIMESTAMP,
     "\"yesterday\"", 0},
    {"invalid_timestamp:month_13", REJECT_INVALID_TIMESTAMP, BASE_ANY, OP_REPLACE, FLD_TIMESTAMP,
     "\"2025-13-01T00:00:00Z\"", 0},
    {"invalid_timestamp:hour_25", REJECT_INVALID_TIMESTAMP, BASE_ANY, OP_REPLACE, FLD_TIMESTAMP,
     "\"2025-11-23T25:00:00Z\"", 0},
    {"invalid_timestamp:no_offset", REJECT_INVALID_TIMESTAMP, BASE_ANY, OP_REPLACE, FLD_TIMESTAMP,
     "\"2025-11-23T10:00:00\"", 0},
    {"invalid_timestamp:feb_30", REJECT_INVALID_TIMESTAMP, BASE_ANY, OP_REPLACE, FLD_TIMESTAMP,
     "\"2025-02-30T12:00:00Z\"", 0},
    {"invalid_timestamp:epoch_millis", REJECT_INVALID_TIMESTAMP, BASE_ANY, OP_REPLACE,
     FLD_TIMESTAMP, "1763892000000", 0},
    {"invalid_timestamp:negative_epoch", REJECT_INVALID_TIMESTAMP, BASE_ANY, OP_REPLACE,
     FLD_TIMESTAMP, "-1", 0},
    {"unpriced:unknown_model", REJECT_UNPRICED, BASE_LLM, OP_UNPRICED_MODEL, 0, NULL, 0},
    {"unpriced:unknown_instance", REJECT_UNPRICED, BASE_GPU, OP_UNPRICED_INSTANCE, 0, NULL, 0},
    {"unpriced:kind_without_price", REJECT_UNPRICED, BASE_KIND, OP_UNPRICED_KIND, 0, NULL, 0},
};
#define BAD_KIND_COUNT (sizeof(bad_kinds) / sizeof(bad_kinds[0]))

/* Usage no price table knows: without cost_usd it stays unpriced. */
#define UNKNOWN_PROVIDER "acme-labs"
#define UNKNOWN_MODEL    "acme-internal-llm-v3"
#define UNKNOWN_INSTANCE "onprem-dgx-h100-rack7"

static const char *const environments[] = {"prod", "staging", "dev"};

/* ---- the generator ------------------------------------------------------ */

struct loadgen {
    const struct price_table *prices;
    struct rng rng;
    struct loadgen_options opt;

    struct lg_model *models;
    size_t model_count;
    struct lg_instance *instances;
    size_t instance_count;
    struct lg_project *projects;
    size_t project_count;
    uint64_t *project_cum; /* cumulative weights for the Zipf pick */
    uint64_t weight_total;
    char *keys; /* every project's "team/project", back to back */
    char **sources;
    size_t source_count;
    uint16_t gpu_sources[GPU_SOURCE_COUNT];
    int kindless_model; /* a model without a cache-write price, or -1 */

    struct logu input[CLASS_COUNT], output[CLASS_COUNT], cached, cache_write;
    struct logu gpu_ms[GPU_SOURCE_COUNT];
    uint64_t usage_only, bad, alt_source, labels;

    uint64_t index, nbad;
    uint64_t schedule_ns; /* of event `index` */
    double schedule_s;
    size_t next_spike;
    struct loadgen_spike spikes[LOADGEN_MAX_SPIKES];
    uint16_t spike_project[LOADGEN_MAX_SPIKES];

    int64_t ts_second; /* the second ts_prefix spells */
    char ts_prefix[20];
    char *buf;
    struct lg_kinds *kinds; /* --kind gpu_utilization/focus, or a --profile */
};

void loadgen_options_defaults(struct loadgen_options *opt)
{
    memset(opt, 0, sizeof(*opt));
    opt->seed = 1;
    opt->usage_only_ratio = 0.5;
    opt->shape = LOADGEN_SHAPE_STEADY;
    opt->day_seconds = 86400;
    opt->day_amplitude = 0.5;
    opt->start_ms = 1795392000000LL; /* 2026-11-23T00:00:00Z */
}

static int errf(char *errbuf, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int errf(char *errbuf, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (errbuf && errlen)
        vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

int loadgen_spike_parse(const char *text, struct loadgen_spike *out, char *errbuf, size_t errlen)
{
    static const char *const usage = "expected TEAM/PROJECT@SECONDS:MULTIPLIER[:share|usage|both]";
    memset(out, 0, sizeof(*out));
    const char *at = strrchr(text, '@');
    if (!at || at == text || (size_t)(at - text) >= sizeof(out->target) ||
        !memchr(text, '/', (size_t)(at - text)))
        return errf(errbuf, errlen, "--spike '%s': %s", text, usage);
    memcpy(out->target, text, (size_t)(at - text));
    char *end = NULL;
    errno = 0;
    out->at_seconds = strtod(at + 1, &end);
    if (errno || end == at + 1 || *end != ':' || !isfinite(out->at_seconds) || out->at_seconds < 0)
        return errf(errbuf, errlen, "--spike '%s': SECONDS must be a number >= 0; %s", text, usage);
    const char *mult = end + 1;
    const char *colon = strchr(mult, ':');
    size_t mlen = colon ? (size_t)(colon - mult) : strlen(mult);
    uint64_t nanos = 0;
    if (money_parse_decimal(mult, mlen, &nanos) || nanos % 1000000 != 0 || nanos < 1000000 ||
        nanos > 1000ULL * NANOS_PER_UNIT)
        return errf(errbuf, errlen,
                    "--spike '%s': MULTIPLIER must be a decimal from 0.001 to 1000 with at most "
                    "3 decimals; %s",
                    text, usage);
    out->multiplier_milli = (uint32_t)(nanos / 1000000);
    out->mode = LOADGEN_SPIKE_SHARE;
    if (colon) {
        if (strcmp(colon + 1, "share") == 0)
            out->mode = LOADGEN_SPIKE_SHARE;
        else if (strcmp(colon + 1, "usage") == 0)
            out->mode = LOADGEN_SPIKE_USAGE;
        else if (strcmp(colon + 1, "both") == 0)
            out->mode = LOADGEN_SPIKE_BOTH;
        else
            return errf(errbuf, errlen, "--spike '%s': mode must be share, usage or both", text);
    }
    return 0;
}

/* A name we can write between quotes as is and use as a label value. */
static bool label_safe(const char *s, size_t *len)
{
    size_t n = strlen(s);
    if (n == 0 || n > 128 || !utf8_valid(s, n))
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == '"' || s[i] == '\\')
            return false;
    *len = n;
    return true;
}

static int source_index(struct loadgen *g, const char *name, uint16_t *out)
{
    for (size_t i = 0; i < g->source_count; i++)
        if (strcmp(g->sources[i], name) == 0) {
            *out = (uint16_t)i;
            return 0;
        }
    if (g->source_count >= UINT16_MAX)
        return -ENOMEM;
    char **grown = realloc(g->sources, (g->source_count + 1) * sizeof(*grown));
    if (!grown)
        return -ENOMEM;
    g->sources = grown;
    if (!(g->sources[g->source_count] = strdup(name)))
        return -ENOMEM;
    *out = (uint16_t)g->source_count++;
    return 0;
}

/* The provider's API is its own source; some calls go through a cloud
 * reseller instead, as real bills show. */
static const char *alternative_source(const char *provider)
{
    if (strcmp(provider, "openai") == 0)
        return "azure-openai";
    if (strcmp(provider, "anthropic") == 0)
        return "aws-bedrock";
    if (strcmp(provider, "google") == 0)
        return "vertex-ai";
    return NULL;
}

static unsigned provider_popularity(const char *provider)
{
    if (strcmp(provider, "openai") == 0)
        return 40;
    if (strcmp(provider, "anthropic") == 0)
        return 30;
    if (strcmp(provider, "google") == 0)
        return 15;
    return 5;
}

static int build_models(struct loadgen *g)
{
    size_t n = price_table_llm_count(g->prices);
    g->models = calloc(n ? n : 1, sizeof(*g->models));
    if (!g->models)
        return -ENOMEM;
    g->kindless_model = -1;
    for (size_t i = 0; i < n && g->model_count < UINT16_MAX; i++) {
        const struct llm_price *p = price_table_llm_at(g->prices, i);
        struct lg_model *m = &g->models[g->model_count];
        size_t plen, mlen;
        char source[160];
        /* input and output are required by the loader; be safe anyway. */
        if (!label_safe(p->provider, &plen) || !label_safe(p->model, &mlen) || plen > 120 ||
            p->per_million_nanos[TOKEN_INPUT] < 0 || p->per_million_nanos[TOKEN_OUTPUT] < 0)
            continue;
        m->price = p;
        m->provider_len = (uint32_t)plen;
        m->model_len = (uint32_t)mlen;
        snprintf(source, sizeof(source), "%s-api", p->provider);
        const char *alt = alternative_source(p->provider);
        if (source_index(g, source, &m->source) ||
            source_index(g, alt ? alt : source, &m->alt_source))
            return -ENOMEM;
        int64_t in = p->per_million_nanos[TOKEN_INPUT];
        m->klass = in >= 2500000000LL  ? CLASS_LARGE
                   : in >= 500000000LL ? CLASS_MEDIUM
                                       : CLASS_SMALL;
        if (g->kindless_model < 0 && p->per_million_nanos[TOKEN_CACHE_WRITE] == PRICE_NONE)
            g->kindless_model = (int)g->model_count;
        g->model_count++;
    }
    return 0;
}

static int build_instances(struct loadgen *g)
{
    size_t n = price_table_gpu_count(g->prices);
    g->instances = calloc(n ? n : 1, sizeof(*g->instances));
    if (!g->instances)
        return -ENOMEM;
    for (size_t i = 0; i < n && g->instance_count < UINT16_MAX; i++) {
        const struct gpu_price *p = price_table_gpu_at(g->prices, i);
        struct lg_instance *in = &g->instances[g->instance_count];
        size_t tlen, glen;
        if (!label_safe(p->instance_type, &tlen) || !label_safe(p->gpu_type, &glen) || p->gpus < 1)
            continue;
        in->price = p;
        in->type_len = (uint32_t)tlen;
        in->gpu_type_len = (uint32_t)glen;
        g->instance_count++;
    }
    return 0;
}

static uint16_t pick_model_for_structure(struct loadgen *g, struct rng *r)
{
    uint64_t total = 0;
    for (size_t i = 0; i < g->model_count; i++)
        total += provider_popularity(g->models[i].price->provider);
    /* Weight per model = its provider's popularity / the provider's model
     * count would need a second pass; popularity per model is close enough
     * and keeps big providers' many models from dominating less. */
    uint64_t u = rng_below(r, total);
    for (size_t i = 0; i < g->model_count; i++) {
        uint64_t w = provider_popularity(g->models[i].price->provider);
        if (u < w)
            return (uint16_t)i;
        u -= w;
    }
    return 0;
}

static void rebuild_cumulative(struct loadgen *g)
{
    uint64_t acc = 0;
    for (size_t i = 0; i < g->project_count; i++) {
        acc += g->projects[i].weight;
        g->project_cum[i] = acc;
    }
    g->weight_total = acc;
}

static int build_projects(struct loadgen *g)
{
    size_t n = 0, key_bytes = 0;
    for (size_t t = 0; t < TEAM_COUNT; t++)
        for (size_t p = 0; p < 7 && catalogue[t].projects[p]; p++) {
            n++;
            key_bytes += strlen(catalogue[t].team) + 1 + strlen(catalogue[t].projects[p]) + 1;
        }
    g->projects = calloc(n, sizeof(*g->projects));
    g->project_cum = calloc(n, sizeof(*g->project_cum));
    g->keys = malloc(key_bytes);
    if (!g->projects || !g->project_cum || !g->keys)
        return -ENOMEM;

    struct rng structure;
    rng_seed(&structure, STRUCTURE_SEED);
    static const uint64_t gpu_ppm[] = {0, 0, 5000, 10000, 20000, 50000};
    double harmonic_teams = 0;
    for (size_t t = 0; t < TEAM_COUNT; t++)
        harmonic_teams += 1.0 / (double)(t + 1);
    char *k = g->keys;
    for (size_t t = 0; t < TEAM_COUNT; t++) {
        size_t np = 0;
        double harmonic = 0;
        while (np < 7 && catalogue[t].projects[np])
            harmonic += 1.0 / (double)(++np);
        for (size_t q = 0; q < np; q++) {
            struct lg_project *p = &g->projects[g->project_count];
            p->team = catalogue[t].team;
            p->name = catalogue[t].projects[q];
            p->team_len = (uint32_t)strlen(p->team);
            p->name_len = (uint32_t)strlen(p->name);
            p->team_index = (uint16_t)t;
            p->key = k;
            memcpy(k, p->team, p->team_len);
            k[p->team_len] = '/';
            memcpy(k + p->team_len + 1, p->name, p->name_len);
            p->key_len = p->team_len + 1 + p->name_len;
            k[p->key_len] = '\0';
            k += p->key_len + 1;
            /* Zipf (s = 1) over teams, and over projects within a team:
             * plain IEEE divisions and sums, identical on every platform. */
            double share =
                (1.0 / (double)(t + 1) / harmonic_teams) * (1.0 / (double)(q + 1) / harmonic);
            p->base_weight = p->weight = (uint64_t)(share * 1099511627776.0) + 1; /* 2^40 */
            p->usage_milli = 1000;
            /* 1-3 models and 1-2 instances per project, fixed by structure. */
            p->model_count = (uint8_t)(1 + rng_below(&structure, PROJECT_MAX_MODELS));
            for (uint8_t m = 0; m < p->model_count; m++) {
                uint16_t pick = pick_model_for_structure(g, &structure);
                bool dup = false;
                for (uint8_t j = 0; j < m; j++)
                    dup |= p->models[j] == pick;
                if (dup) {
                    p->model_count = m;
                    break;
                }
                p->models[m] = pick;
            }
            if (g->instance_count) {
                p->instance_count = (uint8_t)(1 + rng_below(&structure, PROJECT_MAX_INSTANCES));
                for (uint8_t m = 0; m < p->instance_count; m++)
                    p->instances[m] = (uint16_t)rng_below(&structure, g->instance_count);
                if (p->instance_count == 2 && p->instances[0] == p->instances[1])
                    p->instance_count = 1;
                uint64_t ppm = gpu_ppm[rng_below(&structure, sizeof(gpu_ppm) / sizeof(*gpu_ppm))];
                if (gpu_heavy(p->team) && ppm < 100000)
                    ppm = 100000 + 50000 * rng_below(&structure, 4);
                p->gpu_threshold = chance_threshold((double)ppm / 1e6);
            }
            g->project_count++;
        }
    }
    rebuild_cumulative(g);
    return 0;
}

static int find_project(const struct loadgen *g, const char *key)
{
    for (size_t i = 0; i < g->project_count; i++)
        if (strcmp(g->projects[i].key, key) == 0)
            return (int)i;
    return -1;
}

static int compare_spikes(const void *a, const void *b)
{
    const struct loadgen_spike *x = a, *y = b;
    return (x->at_seconds > y->at_seconds) - (x->at_seconds < y->at_seconds);
}

static double schedule_seconds(const struct loadgen *g, uint64_t i, double previous);

int loadgen_new(struct loadgen **out, const struct price_table *prices,
                const struct loadgen_options *opt, char *errbuf, size_t errlen)
{
    int rc;
    struct loadgen *g = calloc(1, sizeof(*g));
    if (!g)
        return -ENOMEM;
    g->prices = prices;
    g->opt = *opt;
    if (!(opt->usage_only_ratio >= 0 && opt->usage_only_ratio <= 1) ||
        !(opt->bad_ratio >= 0 && opt->bad_ratio <= 1)) {
        rc = errf(errbuf, errlen, "ratios must be between 0 and 1");
        goto fail;
    }
    if (!(opt->rate >= 0 && isfinite(opt->rate)) || !(opt->day_seconds > 0) ||
        !(opt->day_amplitude >= 0 && opt->day_amplitude <= 0.95)) {
        rc = errf(errbuf, errlen,
                  "rate must be >= 0, day seconds > 0 and day amplitude from 0 to 0.95");
        goto fail;
    }
    if (opt->rate <= 0)
        g->opt.rate = LOADGEN_NOMINAL_RATE;
    if (opt->spike_count > LOADGEN_MAX_SPIKES) {
        rc = errf(errbuf, errlen, "at most %d spikes", LOADGEN_MAX_SPIKES);
        goto fail;
    }
    g->buf = malloc(LOADGEN_EVENT_BUFFER_BYTES);
    if (!g->buf || (rc = build_models(g)) || (rc = build_instances(g))) {
        rc = -ENOMEM;
        goto fail;
    }
    if (!g->model_count) {
        rc = errf(errbuf, errlen,
                  "the price tables hold no usable model (provider, model, "
                  "input and output prices)");
        goto fail;
    }
    for (int i = 0; i < GPU_SOURCE_COUNT; i++)
        if (source_index(g, gpu_source_names[i], &g->gpu_sources[i])) {
            rc = -ENOMEM;
            goto fail;
        }
    if ((rc = build_projects(g)))
        goto fail;

    memcpy(g->spikes, opt->spikes, opt->spike_count * sizeof(*g->spikes));
    qsort(g->spikes, opt->spike_count, sizeof(*g->spikes), compare_spikes);
    for (size_t i = 0; i < opt->spike_count; i++) {
        int p = find_project(g, g->spikes[i].target);
        if (p < 0) {
            rc = errf(errbuf, errlen,
                      "--spike: unknown team/project '%s' (--list-projects shows "
                      "them)",
                      g->spikes[i].target);
            goto fail;
        }
        g->spike_project[i] = (uint16_t)p;
    }

    /* Token counts by model class: bigger models get longer prompts. */
    static const uint64_t in_range[CLASS_COUNT][2] = {{50, 6000}, {100, 12000}, {200, 20000}};
    static const uint64_t out_range[CLASS_COUNT][2] = {{10, 1500}, {20, 2500}, {50, 4000}};
    for (int c = 0; c < CLASS_COUNT; c++) {
        logu_init(&g->input[c], in_range[c][0], in_range[c][1]);
        logu_init(&g->output[c], out_range[c][0], out_range[c][1]);
    }
    logu_init(&g->cached, 64, 20000);
    logu_init(&g->cache_write, 256, 20000);
    /* GPU usage is metered in slices (ms): inference requests, batch
     * steps, and up to an hour of a training job or notebook at a time. */
    logu_init(&g->gpu_ms[GPU_INFERENCE], 50, 30000);
    logu_init(&g->gpu_ms[GPU_BATCH], 1000, 3600000);
    logu_init(&g->gpu_ms[GPU_TRAINING], 60000, 3600000);
    logu_init(&g->gpu_ms[GPU_NOTEBOOKS], 60000, 3600000);
    g->usage_only = chance_threshold(opt->usage_only_ratio);
    g->bad = chance_threshold(opt->bad_ratio);
    g->alt_source = chance_threshold(0.15);
    g->labels = chance_threshold(0.3);

    rng_seed(&g->rng, opt->seed);
    g->ts_second = INT64_MIN;
    g->schedule_s = 0;
    g->schedule_ns = 0;
    if ((opt->kind != EVENT_KIND_COST || opt->profile != LOADGEN_PROFILE_NONE) &&
        (rc = lg_kinds_new(g, prices, opt, &g->kinds, errbuf, errlen)))
        goto fail;
    *out = g;
    return 0;
fail:
    loadgen_free(g);
    return rc;
}

void loadgen_free(struct loadgen *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < g->source_count; i++)
        free(g->sources[i]);
    free(g->sources);
    free(g->models);
    free(g->instances);
    free(g->projects);
    free(g->project_cum);
    free(g->keys);
    free(g->buf);
    lg_kinds_free(g->kinds);
    free(g);
}

/* ---- schedule ----------------------------------------------------------- */

/* Cumulative events by time t of the daily shape: the integral of
 * rate * (1 - A cos(w t)). */
static double daily_cumulative(const struct loadgen *g, double t)
{
    double w = 2 * M_PI / g->opt.day_seconds, a = g->opt.day_amplitude;
    return g->opt.rate * (t - a / w * sin(w * t));
}

/* Time of event i: i / rate, or the daily shape's cumulative inverted by
 * Newton's method inside a bracket (the cumulative is increasing with a
 * slope of at least rate * (1 - A), so the bracket is cheap to state). */
static double schedule_seconds(const struct loadgen *g, uint64_t i, double previous)
{
    double n = (double)i, rate = g->opt.rate;
    if (g->opt.shape == LOADGEN_SHAPE_STEADY || g->opt.day_amplitude == 0)
        return n / rate;
    double a = g->opt.day_amplitude, w = 2 * M_PI / g->opt.day_seconds;
    double lo = previous, hi = previous + (n - daily_cumulative(g, previous)) / (rate * (1 - a));
    double t = previous;
    for (int k = 0; k < 100 && hi - lo > 1e-12 * (1 + hi); k++) {
        double f = daily_cumulative(g, t) - n;
        if (f < 0)
            lo = t;
        else
            hi = t;
        double next = t - f / (rate * (1 - a * cos(w * t)));
        t = next > lo && next < hi ? next : (lo + hi) / 2;
        if (fabs(f) < 1e-9)
            break;
    }
    return t;
}

uint64_t loadgen_schedule_ns(const struct loadgen *g)
{
    return g->schedule_ns;
}

static void apply_spikes(struct loadgen *g)
{
    bool reweigh = false;
    while (g->next_spike < g->opt.spike_count &&
           g->schedule_s >= g->spikes[g->next_spike].at_seconds) {
        const struct loadgen_spike *s = &g->spikes[g->next_spike];
        struct lg_project *p = &g->projects[g->spike_project[g->next_spike]];
        if (s->mode != LOADGEN_SPIKE_USAGE) {
            /* 128-bit: a weight near 2^40 times 10^6 would overflow. */
            unsigned __int128 w = (unsigned __int128)p->weight * s->multiplier_milli / 1000;
            p->weight = w < 1 ? 1 : w > (1ULL << 52) ? (1ULL << 52) : (uint64_t)w;
            reweigh = true;
        }
        if (s->mode != LOADGEN_SPIKE_SHARE) {
            uint64_t u = (uint64_t)p->usage_milli * s->multiplier_milli / 1000;
            p->usage_milli = (uint32_t)(u < 1 ? 1 : u > 1000000 ? 1000000 : u);
        }
        g->next_spike++;
    }
    if (reweigh)
        rebuild_cumulative(g);
}

/* ---- drafting an event -------------------------------------------------- */

struct draft {
    uint16_t project;
    bool gpu;
    uint16_t item, source;
    uint64_t tokens[TOKEN_KIND_COUNT];
    uint32_t gpu_count;
    uint64_t duration_ns;
    bool has_cost;
    uint64_t cost;
    int env; /* -1: no labels object */
    uint64_t event_id;
    /* the unpriced defects override the names */
    const char *provider, *model, *instance_type;
    uint32_t provider_len, model_len, instance_len;
};

static uint16_t pick_project(struct loadgen *g)
{
    uint64_t u = rng_below(&g->rng, g->weight_total);
    size_t lo = 0, hi = g->project_count - 1;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (g->project_cum[mid] > u)
            hi = mid;
        else
            lo = mid + 1;
    }
    return (uint16_t)lo;
}

static uint64_t scale(uint64_t v, uint32_t milli, uint64_t min, uint64_t max)
{
    if (milli == 1000)
        return v;
    uint64_t s = v * milli / 1000;
    return s < min ? min : s > max ? max : s;
}

static void draft_llm(struct loadgen *g, struct draft *d, const struct lg_project *p)
{
    static const uint8_t pick3[] = {0, 0, 0, 0, 0, 0, 1, 1, 1, 2}; /* 60/30/10 */
    static const uint8_t pick2[] = {0, 0, 0, 0, 0, 0, 0, 1, 1, 1}; /* 70/30 */
    uint64_t r = rng_below(&g->rng, 10);
    uint8_t which = p->model_count == 3 ? pick3[r] : p->model_count == 2 ? pick2[r] : 0;
    const struct lg_model *m = &g->models[p->models[which]];
    const int64_t *price = m->price->per_million_nanos;
    d->gpu = false;
    d->item = p->models[which];
    d->source = rng_chance(&g->rng, g->alt_source) ? m->alt_source : m->source;
    d->provider = m->price->provider;
    d->provider_len = m->provider_len;
    d->model = m->price->model;
    d->model_len = m->model_len;
    uint32_t u = p->usage_milli;
    d->tokens[TOKEN_INPUT] = scale(logu_draw(&g->rng, &g->input[m->klass]), u, 1, 100000000);
    d->tokens[TOKEN_OUTPUT] = scale(logu_draw(&g->rng, &g->output[m->klass]), u, 1, 100000000);
    /* Only kinds the model has a price for, so usage-only events price. */
    if (price[TOKEN_CACHED_INPUT] != PRICE_NONE && rng_below(&g->rng, 100) < 35)
        d->tokens[TOKEN_CACHED_INPUT] = scale(logu_draw(&g->rng, &g->cached), u, 1, 100000000);
    if (price[TOKEN_CACHE_WRITE] != PRICE_NONE && rng_below(&g->rng, 100) < 12)
        d->tokens[TOKEN_CACHE_WRITE] = scale(logu_draw(&g->rng, &g->cache_write), u, 1, 100000000);
}

static void draft_gpu(struct loadgen *g, struct draft *d, const struct lg_project *p)
{
    uint16_t which = p->instance_count > 1 ? (uint16_t)rng_below(&g->rng, p->instance_count) : 0;
    const struct lg_instance *in = &g->instances[p->instances[which]];
    uint64_t r = rng_below(&g->rng, 1000);
    int src = 0;
    while (r >= gpu_source_cum[src])
        src++;
    d->gpu = true;
    d->item = p->instances[which];
    d->source = g->gpu_sources[src];
    d->instance_type = in->price->instance_type;
    d->instance_len = in->type_len;
    uint32_t gpus = in->price->gpus;
    d->gpu_count = src == GPU_TRAINING    ? gpus
                   : src == GPU_NOTEBOOKS ? 1
                                          : (uint32_t)rng_range(&g->rng, 1, gpus);
    /* Milliseconds, so the duration has at most 3 decimals; a spike's
     * multiplier keeps it under 1000 hours, far below the contract's cap. */
    uint64_t ms = scale(logu_draw(&g->rng, &g->gpu_ms[src]), p->usage_milli, 1, 3600000000ULL);
    d->duration_ns = ms * 1000000;
}

static void price_draft(struct loadgen *g, struct draft *d)
{
    struct label_value a, b;
    int rc;
    if (d->gpu) {
        a = (struct label_value){d->instance_type, d->instance_len};
        rc = price_table_gpu_cost(g->prices, a, d->gpu_count, d->duration_ns, &d->cost);
    } else {
        a = (struct label_value){d->provider, d->provider_len};
        b = (struct label_value){d->model, d->model_len};
        rc = price_table_llm_cost(g->prices, a, b, d->tokens, &d->cost);
    }
    /* Cannot fail: only catalogue entries and kinds they price are drawn,
     * and the amounts are far from 64-bit overflow. */
    if (rc)
        d->cost = 0;
}

/* One event's usage: `base` forces an LLM call, a GPU job or a cost. */
static void draft_event(struct loadgen *g, struct draft *d, unsigned base)
{
    memset(d, 0, sizeof(*d));
    d->project = pick_project(g);
    const struct lg_project *p = &g->projects[d->project];
    d->event_id = rng_next(&g->rng);
    bool gpu = (base & 3) == BASE_GPU ? p->instance_count > 0
               : (base & 3) == BASE_ANY
                   ? p->instance_count > 0 && rng_chance(&g->rng, p->gpu_threshold)
                   : false;
    if (gpu)
        draft_gpu(g, d, p);
    else
        draft_llm(g, d, p);
    price_draft(g, d);
    d->has_cost = (base & BASE_COST) || !rng_chance(&g->rng, g->usage_only);
    d->env = rng_chance(&g->rng, g->labels) ? (int)rng_below(&g->rng, 3) : -1;
}

/* ---- writing ------------------------------------------------------------ */

static inline char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

#define PUT_LIT(p, lit) put((p), (lit), sizeof(lit) - 1)

static inline char *put_str(char *p, const char *s, size_t n)
{
    *p++ = '"';
    p = put(p, s, n);
    *p++ = '"';
    return p;
}

static inline char *put_u64(char *p, uint64_t v)
{
    return p + format_u64(v, p);
}

static char *put_hex16(char *p, uint64_t v)
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 15; i >= 0; i--) {
        p[i] = hex[v & 15];
        v >>= 4;
    }
    return p + 16;
}

static inline char *put2(char *p, unsigned v)
{
    p[0] = (char)('0' + v / 10);
    p[1] = (char)('0' + v % 10);
    return p + 2;
}

/* "YYYY-MM-DDTHH:MM:SS" of an epoch second (Howard Hinnant's
 * civil_from_days), rebuilt only when the second changes. */
static void timestamp_prefix(struct loadgen *g, int64_t second)
{
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
    char *p = g->ts_prefix;
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
    put2(p, (unsigned)(sod % 60));
    g->ts_second = second;
}

static char *put_timestamp(struct loadgen *g, char *p, int64_t ms)
{
    int64_t second = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
    unsigned milli = (unsigned)(ms - second * 1000);
    if (second != g->ts_second)
        timestamp_prefix(g, second);
    *p++ = '"';
    p = put(p, g->ts_prefix, 19);
    *p++ = '.';
    *p++ = (char)('0' + milli / 100);
    p = put2(p, milli % 100);
    return PUT_LIT(p, "Z\"");
}

static char *put_replacement(char *p, const struct bad_kind *bk)
{
    if (bk->op == OP_REPLACE_REPEAT) {
        *p++ = '"';
        memset(p, bk->raw[0], bk->size);
        p += bk->size;
        *p++ = '"';
        return p;
    }
    return put(p, bk->raw, strlen(bk->raw));
}

/* Writes the draft as JSON; `bk` (or NULL) is the one defect to put in. */
static size_t write_event(struct loadgen *g, char *const start, const struct draft *d,
                          int64_t ts_ms, const struct bad_kind *bk)
{
    char *p = start;
    const struct lg_project *proj = &g->projects[d->project];
    enum fld rep = bk && (bk->op == OP_REPLACE || bk->op == OP_REPLACE_REPEAT) ? (enum fld)bk->field
                                                                               : FLD_NONE;
    bool replaced = false;

    *p++ = '{';
    if (bk && bk->op == OP_PREPEND) {
        p = put(p, bk->raw, strlen(bk->raw));
        *p++ = ',';
    }
    p = PUT_LIT(p, "\"event_id\":\"");
    p = put_hex16(p, d->event_id);
    *p++ = '"';

/* A field written normally unless the defect replaces its value. */
#define FIELD(f, write_value)                                                                      \
    do {                                                                                           \
        p = put(p, fld_key[f], strlen(fld_key[f]));                                                \
        if (rep == (f)) {                                                                          \
            p = put_replacement(p, bk);                                                            \
            replaced = true;                                                                       \
        } else {                                                                                   \
            write_value;                                                                           \
        }                                                                                          \
    } while (0)

    FIELD(FLD_TIMESTAMP, p = put_timestamp(g, p, ts_ms));
    FIELD(FLD_TEAM, p = put_str(p, proj->team, proj->team_len));
    FIELD(FLD_PROJECT, p = put_str(p, proj->name, proj->name_len));
    FIELD(FLD_SOURCE, {
        const char *s = g->sources[d->source];
        p = put_str(p, s, strlen(s));
    });
    if (!d->gpu) {
        FIELD(FLD_PROVIDER, p = put_str(p, d->provider, d->provider_len));
        FIELD(FLD_MODEL, p = put_str(p, d->model, d->model_len));
        FIELD(FLD_INPUT, p = put_u64(p, d->tokens[TOKEN_INPUT]));
        if (d->tokens[TOKEN_CACHED_INPUT] || rep == FLD_CACHED)
            FIELD(FLD_CACHED, p = put_u64(p, d->tokens[TOKEN_CACHED_INPUT]));
        if (d->tokens[TOKEN_CACHE_WRITE] || rep == FLD_WRITE)
            FIELD(FLD_WRITE, p = put_u64(p, d->tokens[TOKEN_CACHE_WRITE]));
        FIELD(FLD_OUTPUT, p = put_u64(p, d->tokens[TOKEN_OUTPUT]));
    } else {
        const struct lg_instance *in = &g->instances[d->item];
        FIELD(FLD_INSTANCE, p = put_str(p, d->instance_type, d->instance_len));
        FIELD(FLD_GPU_TYPE, p = put_str(p, in->price->gpu_type, in->gpu_type_len));
        FIELD(FLD_GPU_COUNT, p = put_u64(p, d->gpu_count));
        FIELD(FLD_DURATION, p += money_format(d->duration_ns, p));
    }
    if (d->has_cost || rep == FLD_COST)
        FIELD(FLD_COST, p += money_format(d->cost, p));
    if (d->env >= 0 || rep == FLD_LABELS)
        FIELD(FLD_LABELS, {
            p = PUT_LIT(p, "{\"environment\":\"");
            p = put(p, environments[d->env], strlen(environments[d->env]));
            p = PUT_LIT(p, "\"}");
        });
#undef FIELD
    if (rep != FLD_NONE && !replaced) {
        p = put(p, fld_key[rep], strlen(fld_key[rep]));
        p = put_replacement(p, bk);
    }
    if (bk && bk->op == OP_APPEND) {
        *p++ = ',';
        p = put(p, bk->raw, strlen(bk->raw));
    }
    *p++ = '}';
    size_t len = (size_t)(p - start);
    if (!bk)
        return len;

    switch ((enum op)bk->op) {
    case OP_TRUNCATE:
        len--;
        break;
    case OP_SUFFIX:
        p = put(p, bk->raw, strlen(bk->raw));
        len = (size_t)(p - start);
        break;
    case OP_WRAP:
        memmove(start + 1, start, len);
        start[0] = '[';
        start[len + 1] = ']';
        len += 2;
        break;
    case OP_WHOLE:
        len = strlen(bk->raw);
        memcpy(start, bk->raw, len);
        break;
    case OP_PAD: {
        /* {...,"note":"xxxx"} of exactly bk->size bytes */
        static const char note[] = ",\"note\":\"";
        size_t pad = bk->size - (len - 1) - (sizeof(note) - 1) - 2;
        p = start + len - 1;
        p = PUT_LIT(p, ",\"note\":\"");
        memset(p, 'x', pad);
        p += pad;
        p = PUT_LIT(p, "\"}");
        len = (size_t)(p - start);
        break;
    }
    default:
        break;
    }
    return len;
}

/* ---- the next event ----------------------------------------------------- */

/* Turns the drafted usage into the defect's: usage-only, and unknown to
 * every price table (or priced except for one token kind). */
static void make_unpriced(struct loadgen *g, struct draft *d, enum op op)
{
    d->has_cost = false;
    if (op == OP_UNPRICED_INSTANCE && d->gpu) {
        d->instance_type = UNKNOWN_INSTANCE;
        d->instance_len = sizeof(UNKNOWN_INSTANCE) - 1;
        return;
    }
    if (op == OP_UNPRICED_KIND && !d->gpu && g->kindless_model >= 0) {
        const struct lg_model *m = &g->models[g->kindless_model];
        d->provider = m->price->provider;
        d->provider_len = m->provider_len;
        d->model = m->price->model;
        d->model_len = m->model_len;
        d->tokens[TOKEN_CACHE_WRITE] = 1000;
        return;
    }
    if (d->gpu) { /* no instance table at all: fall back to an LLM call */
        d->gpu = false;
        d->item = g->projects[d->project].models[0];
    }
    d->provider = UNKNOWN_PROVIDER;
    d->provider_len = sizeof(UNKNOWN_PROVIDER) - 1;
    d->model = UNKNOWN_MODEL;
    d->model_len = sizeof(UNKNOWN_MODEL) - 1;
    if (!d->tokens[TOKEN_INPUT])
        d->tokens[TOKEN_INPUT] = 100;
}

void loadgen_next_to(struct loadgen *g, int64_t timestamp_ms, char *buf, struct loadgen_event *ev)
{
    struct draft d;
    if (g->next_spike < g->opt.spike_count && g->schedule_s >= g->spikes[g->next_spike].at_seconds)
        apply_spikes(g);
    int64_t ts = timestamp_ms == LOADGEN_VIRTUAL_TIME
                     ? g->opt.start_ms + (int64_t)(g->schedule_ns / 1000000)
                     : timestamp_ms;
    memset(&ev->contrib, 0, sizeof(ev->contrib));
    ev->index = g->index;
    ev->schedule_ns = g->schedule_ns;
    if (g->kinds) {
        lg_kinds_next(g->kinds, ts, buf, ev);
    } else if (g->bad && rng_chance(&g->rng, g->bad)) {
        /* Cycling (not drawing) the kinds covers every one in small runs. */
        size_t k = (size_t)(g->nbad++ % BAD_KIND_COUNT);
        const struct bad_kind *bk = &bad_kinds[k];
        unsigned base = (bk->base & 3) == BASE_KIND ? BASE_LLM : bk->base;
        draft_event(g, &d, base);
        if (bk->op >= OP_UNPRICED_MODEL)
            make_unpriced(g, &d, (enum op)bk->op);
        ev->len = write_event(g, buf, &d, ts, bk);
        ev->contrib.reason = (uint8_t)bk->reason;
        ev->contrib.project = d.project;
        ev->bad_kind = (int)k;
        ev->has_cost = false;
    } else {
        draft_event(g, &d, BASE_ANY);
        ev->len = write_event(g, buf, &d, ts, NULL);
        struct loadgen_contrib *c = &ev->contrib;
        c->reason = REJECT_NONE;
        c->is_gpu = d.gpu;
        c->source = d.source;
        c->project = d.project;
        c->item = d.item;
        for (int k = 0; k < TOKEN_KIND_COUNT; k++)
            c->tokens[k] = (uint32_t)d.tokens[k];
        c->cost_nanos = d.cost;
        c->gpu_nanoseconds = d.gpu ? d.gpu_count * d.duration_ns : 0;
        ev->bad_kind = -1;
        ev->has_cost = d.has_cost;
    }
    if (!g->kinds) {
        ev->data = buf;
        ev->key = g->projects[d.project].key;
        ev->key_len = g->projects[d.project].key_len;
    }
    g->index++;
    g->schedule_s = schedule_seconds(g, g->index, g->schedule_s);
    g->schedule_ns = (uint64_t)llround(g->schedule_s * 1e9);
}

void loadgen_next(struct loadgen *g, int64_t timestamp_ms, struct loadgen_event *ev)
{
    loadgen_next_to(g, timestamp_ms, g->buf, ev);
}

/* ---- catalogue accessors ------------------------------------------------ */

size_t loadgen_project_count(const struct loadgen *g)
{
    return g->project_count;
}

const char *loadgen_project_team(const struct loadgen *g, size_t i)
{
    return g->projects[i].team;
}

const char *loadgen_project_name(const struct loadgen *g, size_t i)
{
    return g->projects[i].name;
}

double loadgen_project_share(const struct loadgen *g, size_t i)
{
    uint64_t total = 0;
    for (size_t k = 0; k < g->project_count; k++)
        total += g->projects[k].base_weight;
    return (double)g->projects[i].base_weight / (double)total;
}

size_t loadgen_team_count(const struct loadgen *g)
{
    (void)g;
    return TEAM_COUNT;
}

size_t loadgen_project_team_index(const struct loadgen *g, size_t i)
{
    return g->projects[i].team_index;
}

const char *loadgen_source_name(const struct loadgen *g, size_t i)
{
    return i < g->source_count ? g->sources[i] : NULL;
}

size_t loadgen_model_count(const struct loadgen *g)
{
    return g->model_count;
}

const struct llm_price *loadgen_model(const struct loadgen *g, size_t i)
{
    return i < g->model_count ? g->models[i].price : NULL;
}

size_t loadgen_instance_count(const struct loadgen *g)
{
    return g->instance_count;
}

const struct gpu_price *loadgen_instance(const struct loadgen *g, size_t i)
{
    return i < g->instance_count ? g->instances[i].price : NULL;
}

size_t loadgen_bad_kind_count(void)
{
    return BAD_KIND_COUNT;
}

const char *loadgen_bad_kind_name(size_t i)
{
    return i < BAD_KIND_COUNT ? bad_kinds[i].name : NULL;
}

enum reject_reason loadgen_bad_kind_reason(size_t i)
{
    return i < BAD_KIND_COUNT ? bad_kinds[i].reason : REJECT_NONE;
}

size_t loadgen_defect_count(const struct loadgen *g)
{
    return g->kinds ? lg_kinds_defect_count(g->kinds) : BAD_KIND_COUNT;
}

const char *loadgen_defect_name(const struct loadgen *g, size_t i)
{
    return g->kinds ? lg_kinds_defect_name(g->kinds, i) : loadgen_bad_kind_name(i);
}

enum reject_reason loadgen_defect_reason(const struct loadgen *g, size_t i)
{
    return g->kinds ? lg_kinds_defect_reason(g->kinds, i) : loadgen_bad_kind_reason(i);
}

size_t loadgen_gpu_count(const struct loadgen *g)
{
    return g->kinds ? lg_kinds_gpu_count(g->kinds) : 0;
}

const char *loadgen_gpu_node(const struct loadgen *g, size_t i)
{
    return g->kinds ? lg_kinds_gpu_node(g->kinds, i) : NULL;
}

const char *loadgen_gpu_id(const struct loadgen *g, size_t i)
{
    return g->kinds ? lg_kinds_gpu_id(g->kinds, i) : NULL;
}

/* The loadgen's own copy of event_kind_name/parse (event_kinds.h), so the
 * generator does not link the decoders. */
static const char *const kind_names[EVENT_KIND_COUNT] = {"cost", "gpu_utilization", "focus"};

const char *loadgen_kind_name(enum event_kind k)
{
    return (unsigned)k < EVENT_KIND_COUNT ? kind_names[k] : "?";
}

int loadgen_kind_parse(const char *s)
{
    for (int i = 0; i < EVENT_KIND_COUNT; i++)
        if (strcmp(s, kind_names[i]) == 0)
            return i;
    return -1;
}

static const char *const profile_names[LOADGEN_PROFILE_COUNT] = {"none", "openai", "anthropic",
                                                                 "dcgm"};

const char *loadgen_profile_name(enum loadgen_profile p)
{
    return (unsigned)p < LOADGEN_PROFILE_COUNT ? profile_names[p] : "?";
}

int loadgen_profile_parse(const char *s)
{
    for (int i = 0; i < LOADGEN_PROFILE_COUNT; i++)
        if (strcmp(s, profile_names[i]) == 0)
            return i;
    return -1;
}

/* ---- totals ------------------------------------------------------------- */

struct loadgen_totals {
    const struct loadgen *g;
    uint64_t valid, bad, cost_all;
    uint64_t rejected[REJECT_REASON_COUNT];
    uint64_t *cost;     /* [project][source] */
    uint64_t *tokens;   /* [project][model][kind] */
    uint64_t *gpu;      /* [project][instance] */
    uint8_t *cost_seen; /* a 0-cost event still creates its series */
    uint8_t *gpu_seen;
    struct lg_kinds_totals *kinds; /* GPU samples and FOCUS rows */
};

struct loadgen_totals *loadgen_totals_new(const struct loadgen *g)
{
    struct loadgen_totals *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    size_t np = g->project_count;
    t->g = g;
    t->cost = calloc(np * g->source_count, sizeof(uint64_t));
    t->cost_seen = calloc(np * g->source_count, 1);
    t->tokens = calloc(np * g->model_count * TOKEN_KIND_COUNT, sizeof(uint64_t));
    t->gpu = calloc(np * (g->instance_count ? g->instance_count : 1), sizeof(uint64_t));
    t->gpu_seen = calloc(np * (g->instance_count ? g->instance_count : 1), 1);
    if (g->kinds && !(t->kinds = lg_kinds_totals_new(g->kinds))) {
        loadgen_totals_free(t);
        return NULL;
    }
    if (!t->cost || !t->cost_seen || !t->tokens || !t->gpu || !t->gpu_seen) {
        loadgen_totals_free(t);
        return NULL;
    }
    return t;
}

void loadgen_totals_free(struct loadgen_totals *t)
{
    if (!t)
        return;
    free(t->cost);
    free(t->cost_seen);
    free(t->tokens);
    free(t->gpu);
    free(t->gpu_seen);
    lg_kinds_totals_free(t->kinds);
    free(t);
}

void loadgen_totals_add(struct loadgen_totals *t, const struct loadgen_contrib *c)
{
    const struct loadgen *g = t->g;
    if (c->reason != REJECT_NONE) {
        t->bad++;
        t->rejected[c->reason < REJECT_REASON_COUNT ? c->reason : 0]++;
        return;
    }
    t->valid++;
    if (c->kind != EVENT_KIND_COST) {
        if (t->kinds)
            lg_kinds_totals_add(t->kinds, c);
        return;
    }
    size_t cs = (size_t)c->project * g->source_count + c->source;
    t->cost[cs] += c->cost_nanos;
    t->cost_seen[cs] = 1;
    t->cost_all += c->cost_nanos;
    if (c->is_gpu) {
        size_t gi = (size_t)c->project * g->instance_count + c->item;
        t->gpu[gi] += c->gpu_nanoseconds;
        t->gpu_seen[gi] = 1;
    } else {
        uint64_t *tk =
            &t->tokens[((size_t)c->project * g->model_count + c->item) * TOKEN_KIND_COUNT];
        for (int k = 0; k < TOKEN_KIND_COUNT; k++)
            tk[k] += c->tokens[k];
    }
}

uint64_t loadgen_totals_events(const struct loadgen_totals *t)
{
    return t->valid + t->bad;
}

uint64_t loadgen_totals_bad(const struct loadgen_totals *t)
{
    return t->bad;
}

uint64_t loadgen_totals_cost_nanos(const struct loadgen_totals *t)
{
    return t->cost_all;
}

uint64_t loadgen_totals_gpu_deduplicated(const struct loadgen_totals *t)
{
    return t->kinds ? lg_kinds_totals_deduplicated(t->kinds) : 0;
}

/* Integers go in as raw literals: cJSON numbers are doubles, exact only
 * up to 2^53, and GPU nanoseconds pass that in minutes at full speed. */
bool lg_json_add_u64(cJSON *obj, const char *name, uint64_t v)
{
    char num[24];
    num[format_u64(v, num)] = '\0';
    return cJSON_AddRawToObject(obj, name, num) != NULL;
}

bool lg_json_add_series(cJSON *array, const char *const *names, const char *const *values, size_t n,
                        uint64_t value)
{
    cJSON *item = cJSON_CreateObject();
    if (!item || !cJSON_AddItemToArray(array, item))
        return (cJSON_Delete(item), false);
    cJSON *labels = cJSON_AddObjectToObject(item, "labels");
    if (!labels)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!cJSON_AddStringToObject(labels, names[i], values[i]))
            return false;
    return lg_json_add_u64(item, "value", value);
}

cJSON *loadgen_totals_to_json(const struct loadgen_totals *t)
{
    static const char *const cost_names[] = {"team", "project", "source"};
    static const char *const token_names[] = {"team", "project", "provider", "model", "kind"};
    static const char *const gpu_names[] = {"team", "project", "instance_type", "gpu_type"};
    const struct loadgen *g = t->g;
    bool ok = true;
    cJSON *root = cJSON_CreateObject();
    cJSON *events = root ? cJSON_AddObjectToObject(root, "events") : NULL;
    cJSON *rejected = root ? cJSON_AddObjectToObject(root, "rejected") : NULL;
    cJSON *cost = root ? cJSON_AddArrayToObject(root, "cost_nanos") : NULL;
    cJSON *tokens = root ? cJSON_AddArrayToObject(root, "tokens") : NULL;
    cJSON *gpu = root ? cJSON_AddArrayToObject(root, "gpu_nanoseconds") : NULL;
    if (!events || !rejected || !cost || !tokens || !gpu)
        goto fail;
    ok = lg_json_add_u64(events, "produced", t->valid + t->bad) &&
         lg_json_add_u64(events, "valid", t->valid) && lg_json_add_u64(events, "bad", t->bad);
    for (int r = REJECT_NONE + 1; ok && r < REJECT_REASON_COUNT; r++)
        if (t->rejected[r])
            ok = lg_json_add_u64(rejected, reject_reason_name((enum reject_reason)r),
                                 t->rejected[r]);
    for (size_t p = 0; ok && p < g->project_count; p++) {
        const struct lg_project *pr = &g->projects[p];
        for (size_t s = 0; ok && s < g->source_count; s++) {
            size_t i = p * g->source_count + s;
            const char *v[] = {pr->team, pr->name, g->sources[s]};
            if (t->cost_seen[i])
                ok = lg_json_add_series(cost, cost_names, v, 3, t->cost[i]);
        }
        for (size_t m = 0; ok && m < g->model_count; m++)
            for (int k = 0; ok && k < TOKEN_KIND_COUNT; k++) {
                uint64_t n = t->tokens[(p * g->model_count + m) * TOKEN_KIND_COUNT + (size_t)k];
                const struct llm_price *lp = g->models[m].price;
                const char *v[] = {pr->team, pr->name, lp->provider, lp->model,
                                   token_kind_name((enum token_kind)k)};
                if (n)
                    ok = lg_json_add_series(tokens, token_names, v, 5, n);
            }
        for (size_t m = 0; ok && m < g->instance_count; m++) {
            size_t i = p * g->instance_count + m;
            const struct gpu_price *gp = g->instances[m].price;
            const char *v[] = {pr->team, pr->name, gp->instance_type, gp->gpu_type};
            if (t->gpu_seen[i])
                ok = lg_json_add_series(gpu, gpu_names, v, 4, t->gpu[i]);
        }
    }
    if (ok && t->kinds)
        ok = lg_kinds_totals_json(t->kinds, root);
    if (ok)
        return root;
fail:
    cJSON_Delete(root);
    return NULL;
}

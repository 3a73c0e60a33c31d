/*
 * event.h - decoding and validating one JSON cost event (contract v1, see
 * docs/events.md) into a struct event whose strings point into the decoder.
 *
 * A strict single-pass RFC 8259 decoder specialised for the event object:
 * no allocation per event, amounts parsed from their decimal text into
 * integer nano-units (no floating point), cJSON kept as the fuzzing oracle.
 * Every defect maps to one reject reason; nothing is half-applied.
 *
 * Thread-safety: an event_decoder belongs to one thread; distinct decoders
 * may run concurrently. An event's strings stay valid until the next
 * event_decode() on the same decoder.
 */
#ifndef AI_FINOPS_EVENT_H
#define AI_FINOPS_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "counter_table.h"

enum reject_reason {
    REJECT_NONE = 0,
    REJECT_INVALID_JSON,
    REJECT_NOT_OBJECT,
    REJECT_TRAILING_DATA,
    REJECT_TOO_LARGE,
    REJECT_TOO_DEEP,
    REJECT_WRONG_TYPE,
    REJECT_DUPLICATE_FIELD,
    REJECT_INVALID_COST,
    REJECT_INVALID_TOKENS,
    REJECT_INVALID_USAGE,
    REJECT_INVALID_LABEL,
    REJECT_INVALID_TIMESTAMP,
    REJECT_UNPRICED,
    /* Added for the event kinds of event_kinds.h (keep the order: the
     * dead-letter header and the loadgen name them). */
    REJECT_MISSING_FIELD,       /* a required field of the kind is absent */
    REJECT_INVALID_UTILIZATION, /* outside 0..1 / 0..100, or both forms given */
    REJECT_INVALID_INTERVAL,    /* interval missing, <= 0 or above one day */
    REJECT_INVALID_CURRENCY,    /* a FOCUS row not billed in USD */
    REJECT_TOO_MANY_GPUS,       /* no room left for this GPU's interval state */
    REJECT_REASON_COUNT
};

/* The label value of a reason, e.g. "invalid_json". */
const char *reject_reason_name(enum reject_reason reason);

enum token_kind {
    TOKEN_INPUT,
    TOKEN_CACHED_INPUT,
    TOKEN_CACHE_WRITE,
    TOKEN_OUTPUT,
    TOKEN_KIND_COUNT
};
const char *token_kind_name(enum token_kind kind);

#define EVENT_MAX_EXTRA_LABELS 8
/* JSON numbers above this are not exact integers in a double: the largest
 * events.max_tokens allowed. */
#define EVENT_MAX_TOKENS    9007199254740992ULL /* 2^53 */
#define EVENT_MAX_GPU_COUNT 1000000ULL
/* GPU-seconds are counted in micro-GPU-seconds (docs/events.md, "Counter
 * horizons"): nano-units in 64 bits would wrap after 21 days of 10,000 GPUs. */
#define EVENT_GPU_NANOS_PER_COUNTED 1000ULL
/* Timestamps before 2000-01-01T00:00:00Z are rejected (invalid_timestamp). */
#define EVENT_MIN_TIMESTAMP_MS 946684800000LL

struct event_limits {
    size_t max_bytes;
    uint64_t max_cost_nanos;
    size_t max_label_bytes;
    int max_depth;
    const char *unattributed_label; /* for a missing or empty team/project */
    size_t extra_label_count;
    const char *const *extra_label_names; /* keys of "labels" kept as labels */
    /* Per-event quantity caps (0: the built-in maxima, EVENT_MAX_TOKENS and
     * EVENT_MAX_GPU_COUNT x 4,000,000 s). */
    uint64_t max_tokens;     /* each token kind */
    uint64_t max_gpu_nanos;  /* gpu_count x duration_seconds, in 1e-9 GPU-s */
    int64_t max_future_ms;   /* a timestamp may be this far ahead of the clock (0: 1 day) */
    int64_t (*now_ms)(void); /* the wall clock, ms since the epoch (NULL: the real one) */
    /* Kinds other than cost (event_kinds.h); NULL/0/false: defaults. */
    const struct string_map *gpu_namespace_teams; /* namespace -> "team/project" */
    bool focus_effective_cost;                     /* EffectiveCost, else BilledCost */
    const char *focus_team_tag;                    /* Tags key of the team ("team") */
    const char *focus_project_tag;                 /* Tags key of the project ("project") */
};

struct event {
    struct label_value team, project, source;
    struct label_value provider, model, instance_type, gpu_type;
    struct label_value extra[EVENT_MAX_EXTRA_LABELS]; /* "" when absent */
    bool has_cost;
    uint64_t cost_nanos;
    uint64_t tokens[TOKEN_KIND_COUNT];
    bool has_gpu; /* gpu_count and duration_seconds both present */
    uint64_t gpu_count;
    uint64_t duration_nanos;
    uint64_t gpu_micros; /* gpu_count x duration in 1e-6 GPU-s, rounded half up */
    bool has_timestamp;
    int64_t timestamp_ms;
};

struct event_decoder;

/* limits are copied except the strings, which must outlive the decoder. */
struct event_decoder *event_decoder_new(const struct event_limits *limits);
void event_decoder_free(struct event_decoder *decoder);

/* Decodes buf[0..len) (need not be NUL-terminated). Returns REJECT_NONE and
 * fills *event, or the reason the event is rejected. Never crashes on any
 * input. An event without cost_usd decodes fine: the caller prices it. */
enum reject_reason event_decode(struct event_decoder *decoder, const char *buf, size_t len,
                                struct event *event);

/* Usage that can be priced or counted: some tokens, or GPUs for a time. */
static inline bool event_has_tokens(const struct event *ev)
{
    for (int k = 0; k < TOKEN_KIND_COUNT; k++)
        if (ev->tokens[k])
            return true;
    return false;
}

static inline bool event_has_gpu_usage(const struct event *ev)
{
    return ev->has_gpu && ev->gpu_count && ev->duration_nanos;
}

/* Checks UTF-8 validity (no overlongs, no surrogates, max U+10FFFF). */
bool utf8_valid(const char *s, size_t len);

/* Parses RFC 3339 ("2026-11-23T10:00:00.5Z", "...+02:00") to epoch ms. */
int parse_rfc3339(const char *s, size_t len, int64_t *epoch_ms);

#endif

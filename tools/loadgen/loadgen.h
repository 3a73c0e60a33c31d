/*
 * loadgen.h - the event generator behind ai-finops-loadgen: a seeded state
 * that writes realistic cost events (contract v1, docs/events.md) one at a
 * time into its own buffer, each with its exact contribution to the
 * counters the exporter will show, plus the totals those contributions add
 * up to (printed as JSON, the shape of gen_events.py --totals). With
 * options.kind / options.profile it writes GPU utilization samples, FOCUS
 * rows or provider-shaped cost events instead (loadgen_kinds.c).
 *
 * Design: a fixed catalogue (~30 teams, 100 projects, Zipf-skewed) crossed
 * with the PRICED models and instances of a price table; events are
 * formatted with hand-rolled appenders (no printf), costs come from the
 * pricing API, and malformed events carry exactly one defect each so their
 * reject reason is known. Same options and seed give the same bytes.
 * Thread-safety: a loadgen and a loadgen_totals belong to one thread.
 */
#ifndef AI_FINOPS_LOADGEN_H
#define AI_FINOPS_LOADGEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "event.h"
#include "event_kinds.h"
#include "pricing.h"

#define LOADGEN_MAX_SPIKES 16
/* The virtual clock's rate when the producer is not throttled (--rate 0). */
#define LOADGEN_NOMINAL_RATE 1000.0
/* Pass as loadgen_next()'s timestamp to stamp events with the virtual clock. */
#define LOADGEN_VIRTUAL_TIME INT64_MIN
/* Largest event written (the too_large defects), and the room
 * loadgen_next_to() needs (the writer checks no bound on the hot path). */
#define LOADGEN_MAX_EVENT_BYTES    200000
#define LOADGEN_EVENT_BUFFER_BYTES (LOADGEN_MAX_EVENT_BYTES + 4096)

enum loadgen_shape {
    LOADGEN_SHAPE_STEADY, /* events i/rate seconds apart */
    LOADGEN_SHAPE_DAILY,  /* rate(t) = rate * (1 - amplitude * cos(2 pi t / day_seconds)) */
};

enum loadgen_spike_mode {
    LOADGEN_SPIKE_SHARE, /* the project's selection weight is multiplied */
    LOADGEN_SPIKE_USAGE, /* its events' tokens and GPU durations are multiplied */
    LOADGEN_SPIKE_BOTH,
};

struct loadgen_spike {
    char target[260];          /* "team/project", as in the message key */
    double at_seconds;         /* on the schedule clock (see loadgen_schedule_ns) */
    uint32_t multiplier_milli; /* 1000 = x1; 1 .. 1,000,000 */
    enum loadgen_spike_mode mode;
};

/* --profile: write the message in a provider's own shape, which the exporter
 * maps with its built-in profile of the same name (docs/events.md). */
enum loadgen_profile {
    LOADGEN_PROFILE_NONE,      /* our field names */
    LOADGEN_PROFILE_OPENAI,    /* cost: a Chat Completions response body */
    LOADGEN_PROFILE_ANTHROPIC, /* cost: a Messages response body */
    LOADGEN_PROFILE_DCGM,      /* gpu_utilization: a DCGM-exporter-like sample */
    LOADGEN_PROFILE_COUNT
};
/* "openai", ...; loadgen_profile_parse returns -1 if unknown ("none" is 0). */
const char *loadgen_profile_name(enum loadgen_profile p);
int loadgen_profile_parse(const char *s);
/* "cost", "gpu_utilization", "focus"; -1 if unknown. */
const char *loadgen_kind_name(enum event_kind k);
int loadgen_kind_parse(const char *s);

/* A GPU node of the fleet reports each GPU every this many seconds. */
#define LOADGEN_GPU_PERIOD_MS 60000

struct loadgen_options {
    enum event_kind kind;         /* --kind (default cost) */
    enum loadgen_profile profile; /* --profile; must suit the kind */
    double dup_ratio;             /* GPU samples: share repeating/overlapping an earlier interval */
    uint32_t gpu_nodes;           /* GPU fleet size (default 16 nodes) */
    bool focus_billed;            /* totals count BilledCost (focus.cost_column: billed) */
    uint64_t seed;
    double usage_only_ratio; /* share of good events without cost_usd (--priced-ratio) */
    double bad_ratio;        /* share of malformed events */
    double rate;             /* schedule rate in events/s; <= 0: LOADGEN_NOMINAL_RATE */
    enum loadgen_shape shape;
    double day_seconds;   /* period of the daily shape */
    double day_amplitude; /* 0 <= amplitude < 1 */
    int64_t start_ms;     /* virtual clock origin, epoch milliseconds */
    size_t spike_count;
    struct loadgen_spike spikes[LOADGEN_MAX_SPIKES];
};

/* Defaults: seed 1, usage-only 0.5, no bad events, steady, day 86400 s,
 * amplitude 0.5, start 2026-11-23T00:00:00Z, no spikes. */
void loadgen_options_defaults(struct loadgen_options *opt);

/* Parses "team/project@SECONDS:MULTIPLIER[:share|usage|both]" into *out.
 * Returns 0, or -EINVAL with a message in errbuf. */
int loadgen_spike_parse(const char *text, struct loadgen_spike *out, char *errbuf, size_t errlen);

/* What one event adds to the exporter's counters once delivered: a good
 * event's cost, tokens and GPU time (indices into the generator's
 * catalogue), or a bad event's reject reason. */
struct loadgen_contrib {
    uint8_t kind;    /* enum event_kind of the message */
    uint8_t reason;  /* enum reject_reason; REJECT_NONE for a good event */
    uint8_t is_gpu;  /* good event: GPU job (instance) rather than LLM call (model) */
    uint16_t source; /* good event: index of its source label */
    uint16_t project;
    uint16_t item; /* good event: model index (LLM) or instance index (GPU) */
    uint32_t tokens[TOKEN_KIND_COUNT];
    uint64_t cost_nanos;
    uint64_t gpu_nanoseconds; /* gpu_count x duration in ns */
    /* GPU sample: which GPU of the fleet, its interval [end - interval, end)
     * and utilization; the totals clip it against the GPU's mark. */
    uint32_t gpu;
    uint32_t util_ppb;
    uint64_t end_ns, interval_ns;
    /* FOCUS row: its series and signed amount in nano-dollars. */
    uint32_t series;
    int64_t amount_nanos;
};

struct loadgen_event {
    const char *data; /* the JSON message, no newline; valid until the next call */
    size_t len;
    const char *key; /* "team/project", the Kafka message key */
    size_t key_len;
    bool has_cost; /* a good event that carries cost_usd */
    int bad_kind;  /* -1, or the index of the defect (loadgen_bad_kind_name) */
    uint64_t index;
    uint64_t schedule_ns;
    struct loadgen_contrib contrib;
};

struct loadgen;

/*
 * Builds the catalogue from the table's priced models and instances (the
 * table must outlive the generator) and seeds the generator. Returns 0, or
 * -EINVAL with a message in errbuf (no usable model, unknown spike target,
 * bad option values), or -ENOMEM.
 */
int loadgen_new(struct loadgen **out, const struct price_table *prices,
                const struct loadgen_options *opt, char *errbuf, size_t errlen);
void loadgen_free(struct loadgen *g);

/* The schedule time of the next event in ns since the first: i/rate for
 * the steady shape, the daily shape's inverse cumulative rate otherwise.
 * Spikes start, --duration ends and the throttle paces by this clock. */
uint64_t loadgen_schedule_ns(const struct loadgen *g);

/* Writes the next event into the generator's buffer. timestamp_ms is the
 * event's time in epoch ms, or LOADGEN_VIRTUAL_TIME for start_ms + its
 * schedule time. */
void loadgen_next(struct loadgen *g, int64_t timestamp_ms, struct loadgen_event *ev);
/* The same, written into buf (LOADGEN_EVENT_BUFFER_BYTES free), so a
 * caller batching messages saves a copy. */
void loadgen_next_to(struct loadgen *g, int64_t timestamp_ms, char *buf, struct loadgen_event *ev);

/* Catalogue, for listings and tests. */
size_t loadgen_project_count(const struct loadgen *g);
const char *loadgen_project_team(const struct loadgen *g, size_t i);
const char *loadgen_project_name(const struct loadgen *g, size_t i);
/* The designed share of good events of project i (before any spike). */
double loadgen_project_share(const struct loadgen *g, size_t i);
size_t loadgen_team_count(const struct loadgen *g);
size_t loadgen_project_team_index(const struct loadgen *g, size_t i);
const char *loadgen_source_name(const struct loadgen *g, size_t i);
size_t loadgen_model_count(const struct loadgen *g);
const struct llm_price *loadgen_model(const struct loadgen *g, size_t i);
size_t loadgen_instance_count(const struct loadgen *g);
const struct gpu_price *loadgen_instance(const struct loadgen *g, size_t i);
/* Names the defects that --bad-ratio cycles through, e.g. "invalid_cost:negative". */
size_t loadgen_bad_kind_count(void);
const char *loadgen_bad_kind_name(size_t i);
enum reject_reason loadgen_bad_kind_reason(size_t i);
/* The defects of this generator's kind and profile, which ev->bad_kind
 * indexes (native cost events: the three functions above). */
size_t loadgen_defect_count(const struct loadgen *g);
const char *loadgen_defect_name(const struct loadgen *g, size_t i);
enum reject_reason loadgen_defect_reason(const struct loadgen *g, size_t i);
/* GPU fleet (--kind gpu_utilization): how many GPUs, and GPU i's node
 * and id (the Kafka key is "node/gpu"); 0 / NULL for other kinds. */
size_t loadgen_gpu_count(const struct loadgen *g);
const char *loadgen_gpu_node(const struct loadgen *g, size_t i);
const char *loadgen_gpu_id(const struct loadgen *g, size_t i);

/* Exact totals of delivered events, per series. Holds a pointer to g. */
struct loadgen_totals;
struct loadgen_totals *loadgen_totals_new(const struct loadgen *g);
void loadgen_totals_free(struct loadgen_totals *t);
void loadgen_totals_add(struct loadgen_totals *t, const struct loadgen_contrib *c);
uint64_t loadgen_totals_events(const struct loadgen_totals *t);
uint64_t loadgen_totals_bad(const struct loadgen_totals *t);
uint64_t loadgen_totals_cost_nanos(const struct loadgen_totals *t); /* all series */
/* GPU samples that counted nothing (their interval was already counted). */
uint64_t loadgen_totals_gpu_deduplicated(const struct loadgen_totals *t);

/*
 * {"events":{"produced":N,"valid":N,"bad":N},"rejected":{reason:N},
 *  "cost_nanos":[{"labels":{team,project,source},"value":N}],
 *  "tokens":[{"labels":{team,project,provider,model,kind},"value":N}],
 *  "gpu_nanoseconds":[{"labels":{team,project,instance_type,gpu_type},"value":N}],
 *  and with --kind gpu_utilization / focus:
 *  "gpu_allocated_micros":[{"labels":{team,project,gpu_type},"value":N}],
 *  "gpu_idle_cost_nanos":[same labels], "gpu_samples":{"counted":N,"deduplicated":N},
 *  "cloud_cost_nanos":[{"labels":{team,project,provider,service,charge_category,
 *  sub_account},"value":N}], "credit_nanos":[same labels]}
 * Integers are written as exact JSON literals (never through a double).
 * Caller frees with cJSON_Delete; NULL on allocation failure.
 */
cJSON *loadgen_totals_to_json(const struct loadgen_totals *t);

#endif

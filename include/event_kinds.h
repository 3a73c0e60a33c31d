/*
 * event_kinds.h - the three kinds of input message (docs/events.md): cost
 * events (event.h), GPU utilization samples and FOCUS cloud-billing rows,
 * and field mappings that let a producer keep its own JSON shape (an
 * OpenAI or Anthropic usage object, a DCGM-exporter-like sample).
 *
 * A topic (or the --input file) has one kind and optionally one mapping
 * profile (config: events.topic_kinds, events.input_kind, events.mappings).
 * Without a profile a message uses our field names and the native strict
 * decoders run; with one, the message is parsed once into the decoder's
 * arena (no per-event malloc once warm) and each of our fields is read
 * from its JSON pointer (RFC 6901), a sum/difference of two pointers, or a
 * literal, then validated exactly as the native field would be.
 *
 * Thread-safety: a field_mapping is immutable after field_mapping_compile
 * and may be shared by threads; decoding uses the caller's event_decoder
 * (one per thread), and a decoded struct's strings stay valid until the
 * next decode on that decoder.
 */
#ifndef AI_FINOPS_EVENT_KINDS_H
#define AI_FINOPS_EVENT_KINDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "event.h"

enum event_kind { EVENT_KIND_COST, EVENT_KIND_GPU_UTILIZATION, EVENT_KIND_FOCUS, EVENT_KIND_COUNT };

/* "cost", "gpu_utilization", "focus"; event_kind_parse returns -1 if unknown. */
const char *event_kind_name(enum event_kind kind);
int event_kind_parse(const char *s, size_t len);

/* Parts per billion: utilization 0..1 is held as 0..UTIL_PPB_ONE. */
#define UTIL_PPB_ONE 1000000000ULL
/* A sample covers at most one day. */
#define GPU_SAMPLE_MAX_INTERVAL_NANOS (86400ULL * 1000000000ULL)

/*
 * One GPU's utilization over the interval that ends at its timestamp.
 * team/project come from the sample, else from gpu.namespace_teams by
 * namespace, else the unattributed label (project: the namespace if any).
 */
struct gpu_sample {
    struct label_value team, project;
    struct label_value node, gpu;     /* required: which GPU */
    struct label_value gpu_type;      /* "unknown" when absent */
    struct label_value instance_type; /* "unknown" when absent */
    uint64_t utilization_ppb;         /* 0..UTIL_PPB_ONE */
    bool has_memory;
    uint64_t memory_used_bytes;
    uint64_t end_unix_nanos; /* the timestamp */
    uint64_t interval_nanos; /* > 0, <= GPU_SAMPLE_MAX_INTERVAL_NANOS */
};

/*
 * One FOCUS 1.x cost row. The amount is the column events.focus_cost_column
 * names (BilledCost or EffectiveCost), in nano-dollars, signed: negative
 * amounts are credits and refunds. BillingCurrency must be USD.
 */
struct focus_row {
    struct label_value team, project; /* from Tags by focus.team_tag / focus.project_tag */
    struct label_value provider;      /* ProviderName ("unknown" when absent) */
    struct label_value service;       /* ServiceName */
    struct label_value
        charge_category;            /* ChargeCategory: Usage, Purchase, Tax, Credit, Adjustment */
    struct label_value sub_account; /* SubAccountName ("unknown" when absent) */
    struct label_value resource_id; /* ResourceId: carried, not a label */
    int64_t amount_nanos;           /* |amount| <= events.max_cost_usd */
    bool has_timestamp;
    int64_t timestamp_ms; /* ChargePeriodStart */
};

struct field_mapping;

/*
 * Compiles a mapping profile for kind: fields maps our field name (as in
 * docs/events.md for that kind, e.g. "input_tokens", "utilization") to
 * "/json/pointer", "/a - /b", "/a + /b" or "=literal". Returns NULL with
 * "field: message" in errbuf for an unknown field or a bad source.
 */
struct field_mapping *field_mapping_compile(enum event_kind kind, const struct string_map *fields,
                                            char *errbuf, size_t errlen);
void field_mapping_free(struct field_mapping *m);
/* Config-time checks that need no kind: whether name is a field of some
 * kind, and whether source is well-formed (0, or -EINVAL with a message). */
bool field_mapping_field_known(const char *name);
int field_mapping_check_source(const char *source, char *errbuf, size_t errlen);
enum event_kind field_mapping_kind(const struct field_mapping *m);

/* The built-in profiles ("openai", "anthropic", "dcgm"), NULL if none by
 * that name; an events.mappings entry of the same name replaces one. */
const struct string_map *field_mapping_builtin(const char *name, enum event_kind *kind);

/* mapping NULL: our field names (event_decode for cost events). */
enum reject_reason event_decode_mapped(struct event_decoder *d, const struct field_mapping *m,
                                       const char *buf, size_t len, struct event *out);
enum reject_reason gpu_sample_decode(struct event_decoder *d, const struct field_mapping *m,
                                     const char *buf, size_t len, struct gpu_sample *out);
enum reject_reason focus_row_decode(struct event_decoder *d, const struct field_mapping *m,
                                    const char *buf, size_t len, struct focus_row *out);

#endif

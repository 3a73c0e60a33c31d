/*
 * metrics.h - the exporter's metric registry: the labeled counter families
 * (cost, tokens, GPU-seconds; GPU allocation, idle cost, cloud cost and
 * credits of the other event kinds), event outcome counters, the GPU
 * gauges (gauge_table.h: live, never checkpointed), self-metrics, and the
 * render of all of them for one scrape. The GPU interval marks are a
 * counter table too (checkpointed with the rest) but never rendered.
 *
 * Writers (ingest workers) each own a metrics_worker slot for their outcome
 * counters, so the per-event accepted/rejected counts touch no shared cache
 * line; a scrape sums the slots. Other modules (the Kafka source, pricing)
 * add their own families through collectors.
 *
 * Sharded registries (the Kafka input, docs/delivery.md): every counter
 * fed by events, the outcome counters included, is a series of a counter
 * table whose last label is `shard` ("<topic>-<partition>"), so each series
 * belongs to one input partition and can be checkpointed and moved with
 * it; the tables are checkpointed (readers see what the Kafka checkpointer
 * published). A worker says which shard its next events come from with
 * metrics_worker_set_shard. Unsharded registries (file input) keep the
 * outcome counts in the worker slots and show live values, each new series
 * (and the outcome counters after start) at 0 for counters.new_series_hold_ms.
 *
 * Thread-safety: metrics_record_* and metrics_worker_* are thread-safe
 * (lock-free); metrics_render runs on the scrape thread; metrics_new,
 * metrics_add_collector and metrics_free run on the main thread before
 * workers start / after they stop.
 */
#ifndef AI_FINOPS_METRICS_H
#define AI_FINOPS_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "dynbuf.h"
#include "event.h"
#include "event_kinds.h"
#include "expo.h"

struct metrics;
struct metrics_worker;

/* Sharded when cfg has no file input (cfg->input NULL: the Kafka input). */
struct metrics *metrics_new(const struct exporter_config *cfg);
void metrics_free(struct metrics *m);

/* A slot for one ingest thread; returns NULL when all slots are taken. */
struct metrics_worker *metrics_worker_new(struct metrics *m);

/* Adds an accepted event's cost, tokens and GPU-seconds, then counts it as
 * accepted. Worker thread only (the slot is its own). */
void metrics_record_event(struct metrics_worker *w, const struct event *ev);
/* Counts an event whose cost_usd disagrees with the price table, by
 * provider/model (GPU events: provider "gpu", model = instance_type). */
void metrics_record_mismatch(struct metrics_worker *w, const struct event *ev);
/* Counts a rejected event. Worker thread only. */
void metrics_record_reject(struct metrics_worker *w, enum reject_reason reason);

/*
 * GPU utilization samples (docs/gpu.md). metrics_gpu_mark advances the
 * GPU's interval mark (the end of the newest interval counted, ns since
 * the epoch; CAS-max) to the sample's end and sets *counted_nanos to the
 * part of [end - interval, end) after the old mark (0: a repeat or an
 * older sample). REJECT_TOO_MANY_GPUS when the mark table has no room
 * (nothing changed); never uses an overflow series. Worker thread only.
 */
enum reject_reason metrics_gpu_mark(struct metrics_worker *w, const struct gpu_sample *s,
                                    uint64_t *counted_nanos);
/* Counts an accepted sample: allocated micro-GPU-seconds (counted_nanos
 * rounded half up) and the idle cost, the gauges at receipt_ms (wall
 * clock) when it advanced the mark; counted_nanos 0 is counted as
 * deduplicated instead. Worker thread only. */
void metrics_record_gpu_sample(struct metrics_worker *w, const struct gpu_sample *s,
                               uint64_t counted_nanos, uint64_t idle_cost_nanos,
                               int64_t receipt_ms);
/* Counts an accepted FOCUS row: amount >= 0 to the cloud cost family,
 * |amount| of a negative one to the credit family. Worker thread only. */
void metrics_record_focus_row(struct metrics_worker *w, const struct focus_row *r);

/* Sharded registries: the shard (label value, copied) the worker's next
 * records go to, until the next call. Cheap when unchanged (compares the
 * bytes); call per message. Worker thread only. */
void metrics_worker_set_shard(struct metrics_worker *w, const char *shard, size_t len);
bool metrics_sharded(const struct metrics *m);

struct metrics_totals {
    uint64_t accepted;
    uint64_t rejected;
    uint64_t rejected_by_reason[REJECT_REASON_COUNT];
    int64_t last_event_ms;
};
/* Sums the worker slots. Thread-safe. */
void metrics_totals(const struct metrics *m, struct metrics_totals *out);

/* A collector appends its own families to a scrape (scrape thread). */
typedef void (*metrics_collector_fn)(struct dynbuf *b, enum expo_format fmt, void *ctx);
int metrics_add_collector(struct metrics *m, metrics_collector_fn fn, void *ctx);

/* The labeled families, in render order (keep the numbers: a checkpoint
 * names a series' family by it). EVENTS and REJECTED exist only in sharded
 * registries (labels outcome/reason, then shard); unsharded ones count
 * outcomes in the worker slots. */
enum metric_family {
    METRIC_FAMILY_COST = 0,
    METRIC_FAMILY_TOKENS = 1,
    METRIC_FAMILY_GPU = 2,
    METRIC_FAMILY_MISMATCH = 3,
    METRIC_FAMILY_EVENTS = 4,
    METRIC_FAMILY_REJECTED = 5,
    /* Event kinds (event_kinds.h): */
    METRIC_FAMILY_GPU_ALLOCATED = 6, /* {team,project,gpu_type}, micro-GPU-seconds */
    METRIC_FAMILY_GPU_IDLE_COST = 7, /* {team,project,gpu_type}, nano-dollars */
    METRIC_FAMILY_CLOUD_COST = 8, /* {team,project,provider,service,charge_category,sub_account} */
    METRIC_FAMILY_CREDIT = 9,     /* same labels, |negative amounts| */
    METRIC_FAMILY_GPU_MARK = 10,  /* {node,gpu}: interval state, never rendered */
    METRIC_FAMILY_COUNT
};

/* A family's table, or NULL (EVENTS/REJECTED when unsharded). */
struct counter_table *metrics_table(struct metrics *m, enum metric_family family);

/* Renders every family (wall clock now for the holds). Returns 0 or
 * -ENOMEM (render cap reached). Scrape thread only. */
int metrics_render(struct metrics *m, enum expo_format fmt, struct dynbuf *out);

/* For tests and benchmarks. */
struct counter_table *metrics_cost_table(struct metrics *m);

#endif

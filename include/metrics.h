/*
 * metrics.h - the exporter's metric registry: the labeled counter families
 * (cost, tokens, GPU-seconds), event outcome counters, self-metrics, and the
 * render of all of them for one scrape.
 *
 * Writers (ingest workers) each own a metrics_worker slot for their outcome
 * counters, so the per-event accepted/rejected counts touch no shared cache
 * line; a scrape sums the slots. Other modules (the Kafka source, pricing)
 * add their own families through collectors.
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
#include "expo.h"

struct metrics;
struct metrics_worker;

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

/*
 * The viewer bit of a scraper: with kafka.commit_replicas empty every
 * scrape is one viewer (bit 0); otherwise replica i of that list is bit i
 * and any other scraper shares bit 31. Scrape thread.
 */
uint32_t metrics_viewer_for(const struct metrics *m, const char *replica);

/* The labeled families, as named in commit metadata (keep the numbers). */
enum metric_family {
    METRIC_FAMILY_COST = 0,
    METRIC_FAMILY_TOKENS = 1,
    METRIC_FAMILY_GPU = 2,
    METRIC_FAMILY_MISMATCH = 3,
    METRIC_FAMILY_COUNT
};

/* A series shown as 0 because the viewer had not seen it: its increments
 * are not visible to increase() yet. */
struct first_sight {
    bool known; /* false for the outcome counters and overflow series: no identity */
    bool spread;
    enum metric_family family;
    uint64_t hash;   /* counter_table_hash of its labels */
    uint32_t origin; /* see counter_table_set_origin; 0 when unknown */
    int64_t origin_offset;
};

/* Told, during a render, of each first sight, and when every counter has
 * been read (the rest of the render reads none). Either may be NULL. */
struct scrape_observer {
    void (*first_sight)(void *ctx, const struct first_sight *fs);
    void (*counters_read)(void *ctx);
    void *ctx;
};

/* Which series a replayed event may add to (see metrics_replay_event). */
struct series_filter {
    bool (*holds)(const void *ctx, enum metric_family family, uint64_t hash);
    const void *ctx;
};

/*
 * Adds an accepted event again, but only to the series `held` names, and
 * counts no outcome: for an event a previous owner already counted where
 * scrapes had shown all but the held series (see docs/delivery.md).
 * mismatch says whether its cost disagreed with the table. Worker thread
 * only.
 */
void metrics_replay_event(struct metrics_worker *w, const struct event *ev, bool mismatch,
                          const struct series_filter *held);

/* A fingerprint of the families' label names: series hashes from a
 * process with other labels (events.extra_labels) mean other series. */
uint64_t metrics_schema_hash(const struct metrics *m);

/* Renders every family for a viewer (see counter_table_foreach; 0 shows
 * real values even to a first reader). observer may be NULL. Returns 0 or
 * -ENOMEM (render cap reached). Scrape thread only. */
int metrics_render(struct metrics *m, enum expo_format fmt, uint32_t viewer, struct dynbuf *out,
                   const struct scrape_observer *observer);

/*
 * The same render, for a scrape whose first sights must count only if it
 * reaches its reader: new series are shown as 0 but not recorded as seen;
 * *staged (caller frees with metrics_sights_free, also on error) remembers
 * them, and metrics_sights_record records them once the response was sent
 * completely. A scrape that fails or times out then shows them as 0
 * again. Returns 0, -ENOMEM (render cap, or no memory for *staged: then
 * *staged is NULL). Scrapes only, one at a time.
 */
struct metrics_sights;
int metrics_render_staged(struct metrics *m, enum expo_format fmt, uint32_t viewer,
                          struct dynbuf *out, const struct scrape_observer *observer,
                          struct metrics_sights **staged);
void metrics_sights_record(struct metrics *m, const struct metrics_sights *staged, uint32_t viewer);
void metrics_sights_free(struct metrics_sights *staged);

/* For tests and benchmarks. */
struct counter_table *metrics_cost_table(struct metrics *m);

#endif

/*
 * gauge_table.h - live GPU gauges: per {team,project,node,gpu}, the last
 * utilization (parts per billion) and memory used, and when (receipt wall
 * clock) they were last set. Not checkpointed: a gauge is what a GPU does
 * now, so a restart simply waits for the next sample.
 *
 * A series not set for silence_ms is no longer shown, and its room can be
 * taken by a new GPU: at most max_series are held, so state stays bounded
 * however many GPUs come and go.
 *
 * Setting an existing series takes no lock (a probe and three relaxed
 * stores inside an epoch: see gauge_table.c); a new series takes the
 * table's mutex. Thread-safety: gauge_table_set with a gauge_writer owned by
 * the calling thread; gauge_table_foreach takes the mutex (scrape thread);
 * new/free/writer_new on the main thread with no writer running.
 */
#ifndef AI_FINOPS_GAUGE_TABLE_H
#define AI_FINOPS_GAUGE_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "counter_table.h"

#define GAUGE_LABELS    4 /* team, project, node, gpu */
#define GAUGE_NO_MEMORY UINT64_MAX

struct gauge_table;
struct gauge_writer;

/* NULL on allocation failure or max_series 0. max_writers bounds
 * gauge_writer_new. */
struct gauge_table *gauge_table_new(size_t max_series, int64_t silence_ms, size_t max_writers);
void gauge_table_free(struct gauge_table *t);

/* One per writing thread; NULL when max_writers are taken. */
struct gauge_writer *gauge_writer_new(struct gauge_table *t);

/* Sets the series' gauges (memory GAUGE_NO_MEMORY: not reported) at
 * now_ms. Returns false when the series is new and there is no room (the
 * table is full of series heard from within silence_ms). */
bool gauge_table_set(struct gauge_writer *w, const struct label_value labels[GAUGE_LABELS],
                     uint64_t util_ppb, uint64_t memory_bytes, int64_t now_ms);

struct gauge_view {
    struct label_value labels[GAUGE_LABELS];
    uint64_t util_ppb;
    uint64_t memory_bytes; /* GAUGE_NO_MEMORY: not reported */
    int64_t updated_ms;
};
/* Calls visit for each series set within silence_ms before now_ms. */
typedef void (*gauge_visit_fn)(const struct gauge_view *v, void *ctx);
void gauge_table_foreach(struct gauge_table *t, int64_t now_ms, gauge_visit_fn visit, void *ctx);

/* Series held (shown or silent but not yet reclaimed), and new series
 * turned away for lack of room. */
size_t gauge_table_count(struct gauge_table *t);
uint64_t gauge_table_dropped(struct gauge_table *t);

#endif

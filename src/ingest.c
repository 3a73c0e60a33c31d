/*
 * ingest.c - one event's data path: decode -> price -> add (see ingest.h).
 *
 * Pricing is the step between decode and add: an event without cost_usd is
 * rejected as "unpriced" until a price table knows its usage.
 * Thread-safety: one ingest_worker per thread; struct ingest is read-only.
 */
#include "ingest.h"

#include <stdlib.h>

struct ingest {
    struct event_limits limits;
    struct metrics *metrics;
};

struct ingest_worker {
    struct ingest *ingest;
    struct event_decoder *decoder;
    struct metrics_worker *slot;
};

struct ingest *ingest_new(const struct exporter_config *cfg, struct metrics *metrics)
{
    struct ingest *in = calloc(1, sizeof(*in));
    if (!in)
        return NULL;
    in->limits = (struct event_limits){
        .max_bytes = (size_t)cfg->events_max_bytes,
        .max_cost_nanos = (uint64_t)cfg->events_max_cost_nanos,
        .max_label_bytes = (size_t)cfg->events_max_label_bytes,
        .max_depth = (int)cfg->events_max_depth,
        .unattributed_label = cfg->events_unattributed_label,
        .extra_label_count = cfg->events_extra_labels.count,
        .extra_label_names = (const char *const *)cfg->events_extra_labels.items,
    };
    in->metrics = metrics;
    return in;
}

void ingest_free(struct ingest *in)
{
    free(in);
}

struct ingest_worker *ingest_worker_new(struct ingest *in)
{
    struct ingest_worker *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->ingest = in;
    w->decoder = event_decoder_new(&in->limits);
    w->slot = metrics_worker_new(in->metrics);
    if (!w->decoder || !w->slot) {
        ingest_worker_free(w);
        return NULL;
    }
    return w;
}

void ingest_worker_free(struct ingest_worker *w)
{
    if (!w)
        return;
    event_decoder_free(w->decoder);
    free(w); /* the metrics slot belongs to the registry */
}

enum reject_reason ingest_process(struct ingest_worker *w, const char *buf, size_t len)
{
    struct event ev;
    enum reject_reason reason = event_decode(w->decoder, buf, len, &ev);
    if (reason == REJECT_NONE && !ev.has_cost)
        reason = REJECT_UNPRICED;
    if (reason != REJECT_NONE) {
        metrics_record_reject(w->slot, reason);
        return reason;
    }
    metrics_record_event(w->slot, &ev);
    return REJECT_NONE;
}

/*
 * ingest.c - one event's data path: decode -> price -> add (see ingest.h).
 *
 * Pricing is the step between decode and add: an event without cost_usd is
 * priced from its usage, or rejected as "unpriced" when the tables don't
 * know it. An event with both is checked against the table: the event's
 * cost wins unless pricing.prefer says table, and a disagreement beyond
 * the tolerance is counted per model. events.max_cost_usd bounds the cost
 * that is counted, whether the event carried it or the table priced it: a
 * priced cost above it (or beyond 64 bits) is rejected as invalid_cost.
 * Thread-safety: one ingest_worker per thread; struct ingest is read-only.
 */
#include "ingest.h"

#include <errno.h>
#include <stdlib.h>

#include "pricing.h"

struct ingest {
    struct event_limits limits;
    struct metrics *metrics;
    const struct price_table *prices;
    bool prefer_table;
    uint64_t tolerance_ppm;
};

struct ingest_worker {
    struct ingest *ingest;
    struct event_decoder *decoder;
    struct metrics_worker *slot;
};

struct ingest *ingest_new(const struct exporter_config *cfg, struct metrics *metrics,
                          const struct price_table *prices)
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
        .max_tokens = (uint64_t)cfg->events_max_tokens,
        .max_gpu_nanos = (uint64_t)cfg->events_max_gpu_seconds * 1000000000ULL,
        .max_future_ms = cfg->events_max_future_seconds * 1000,
    };
    in->metrics = metrics;
    in->prices = prices;
    in->prefer_table = cfg->pricing_prefer == PRICE_PREFER_TABLE;
    in->tolerance_ppm = (uint64_t)cfg->pricing_mismatch_tolerance_ppm;
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

/* The table's cost of the event's usage: 0 when priced, -ENOENT when it
 * has no usage or some of it has no price, -ERANGE when the cost does not
 * fit 64 bits of nano-dollars (then it is above any max_cost_usd). */
static int table_cost(const struct price_table *prices, const struct event *ev, uint64_t *cost)
{
    uint64_t llm = 0, gpu = 0;
    bool has_tokens = event_has_tokens(ev);
    bool has_gpu = event_has_gpu_usage(ev);
    if (!prices || (!has_tokens && !has_gpu))
        return -ENOENT;
    int rc;
    if (has_tokens &&
        (rc = price_table_llm_cost(prices, ev->provider, ev->model, ev->tokens, &llm)))
        return rc;
    /* The instance type's price first; a configured per-GPU price of the
     * GPU model covers GPUs bought otherwise (on-prem, reservations). */
    if (has_gpu) {
        rc = price_table_gpu_cost(prices, ev->instance_type, ev->gpu_count, ev->duration_nanos,
                                  &gpu);
        if (rc == -ENOENT)
            rc = price_table_gpu_type_cost(prices, ev->gpu_type, ev->gpu_count, ev->duration_nanos,
                                           &gpu);
        if (rc)
            return rc;
    }
    if (__builtin_add_overflow(llm, gpu, cost))
        return -ERANGE;
    return 0;
}

static bool disagrees(uint64_t event_cost, uint64_t table, uint64_t tolerance_ppm)
{
    uint64_t diff = event_cost > table ? event_cost - table : table - event_cost;
    return (unsigned __int128)diff * 1000000u > (unsigned __int128)table * tolerance_ppm;
}

/* Decodes and prices one message into *ev; *mismatch says whether its
 * own cost disagreed with the table. Counts nothing. */
static enum reject_reason decode_and_price(struct ingest_worker *w, const char *buf, size_t len,
                                           struct event *ev, bool *mismatch)
{
    const struct ingest *in = w->ingest;
    *mismatch = false;
    enum reject_reason reason = event_decode(w->decoder, buf, len, ev);
    if (reason != REJECT_NONE)
        return reason;
    uint64_t priced;
    int rc = table_cost(in->prices, ev, &priced);
    bool known = rc == 0;
    if (rc == -ERANGE) { /* beyond 64 bits: far above any max_cost_usd */
        if (!ev->has_cost || in->prefer_table)
            return REJECT_INVALID_COST;
        *mismatch = true; /* the event's own cost is counted */
    }
    if (!ev->has_cost && !known)
        return REJECT_UNPRICED;
    if (!ev->has_cost) {
        ev->cost_nanos = priced;
        ev->has_cost = true;
    } else if (known) {
        *mismatch = disagrees(ev->cost_nanos, priced, in->tolerance_ppm);
        if (in->prefer_table)
            ev->cost_nanos = priced;
    }
    /* The decoder checked a given cost_usd; a priced one is checked here. */
    if (ev->cost_nanos > in->limits.max_cost_nanos)
        return REJECT_INVALID_COST;
    return REJECT_NONE;
}

enum reject_reason ingest_process(struct ingest_worker *w, const char *buf, size_t len)
{
    struct event ev;
    bool mismatch;
    enum reject_reason reason = decode_and_price(w, buf, len, &ev, &mismatch);
    if (reason != REJECT_NONE) {
        metrics_record_reject(w->slot, reason);
        return reason;
    }
    if (mismatch)
        metrics_record_mismatch(w->slot, &ev);
    metrics_record_event(w->slot, &ev);
    return REJECT_NONE;
}

void ingest_worker_set_shard(struct ingest_worker *w, const char *shard, size_t len)
{
    metrics_worker_set_shard(w->slot, shard, len);
}

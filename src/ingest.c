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
 * The other kinds (event_kinds.h) take their own branch after decode: a
 * GPU sample is priced first (no price: nothing changes), then its
 * interval is clipped against the GPU's mark, then counted (docs/gpu.md);
 * a FOCUS row goes to the cloud cost or the credit counter.
 * Thread-safety: one ingest_worker per thread; struct ingest is read-only.
 */
#include "ingest.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "event_kinds.h"
#include "log.h"
#include "pricing.h"

struct ingest_input {
    enum event_kind kind;
    struct field_mapping *mapping; /* NULL: our field names */
    char *topic;                   /* events.topic_kinds' key; NULL for the others */
};

struct ingest {
    struct event_limits limits;
    struct ingest_input cost_input; /* a topic no config names */
    struct ingest_input file_input; /* events.input_kind */
    struct ingest_input *topics;    /* one per events.topic_kinds entry */
    size_t topic_count;
    struct metrics *metrics;
    const struct price_table *prices;
    bool prefer_table;
    uint64_t tolerance_ppm;
};

struct ingest_worker {
    struct ingest *ingest;
    const struct ingest_input *input;
    struct event_decoder *decoder;
    struct metrics_worker *slot;
};

/* "KIND" or "KIND:PROFILE" (NULL: cost) into *out, compiling the
 * profile: an events.mappings entry of that name, else the built-in one.
 * Returns 0 or -EINVAL with a message in err. */
static int resolve_input(const struct exporter_config *cfg, const char *spec,
                         struct ingest_input *out, char *err, size_t errlen)
{
    *out = (struct ingest_input){.kind = EVENT_KIND_COST};
    if (!spec)
        return 0;
    const char *colon = strchr(spec, ':');
    size_t kind_len = colon ? (size_t)(colon - spec) : strlen(spec);
    int kind = event_kind_parse(spec, kind_len);
    if (kind < 0) {
        snprintf(err, errlen, "'%s': unknown kind (cost, gpu_utilization, focus)", spec);
        return -EINVAL;
    }
    out->kind = (enum event_kind)kind;
    if (!colon)
        return 0;
    const char *profile = colon + 1;
    const struct string_map *fields = NULL;
    for (size_t i = 0; i < cfg->events_mappings.count; i++)
        if (strcmp(cfg->events_mappings.names[i], profile) == 0)
            fields = &cfg->events_mappings.fields[i];
    if (!fields) {
        enum event_kind builtin_kind;
        fields = field_mapping_builtin(profile, &builtin_kind);
        if (!fields) {
            snprintf(err, errlen, "'%s': no mapping profile '%s' (events.mappings or a built-in)",
                     spec, profile);
            return -EINVAL;
        }
        if (builtin_kind != out->kind) {
            snprintf(err, errlen, "'%s': the built-in profile '%s' is for %s events", spec, profile,
                     event_kind_name(builtin_kind));
            return -EINVAL;
        }
    }
    char why[256] = "";
    out->mapping = field_mapping_compile(out->kind, fields, why, sizeof(why));
    if (!out->mapping) {
        snprintf(err, errlen, "'%s': profile '%s': %s", spec, profile, why);
        return -EINVAL;
    }
    return 0;
}

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
        .gpu_namespace_teams = &cfg->gpu_namespace_teams,
        .focus_effective_cost = cfg->focus_effective_cost,
        .focus_team_tag = cfg->focus_team_tag ? cfg->focus_team_tag : "team",
        .focus_project_tag = cfg->focus_project_tag ? cfg->focus_project_tag : "project",
    };
    in->metrics = metrics;
    in->prices = prices;
    in->prefer_table = cfg->pricing_prefer == PRICE_PREFER_TABLE;
    in->tolerance_ppm = (uint64_t)cfg->pricing_mismatch_tolerance_ppm;
    in->cost_input.kind = EVENT_KIND_COST;
    char err[512] = "out of memory";
    if (resolve_input(cfg, cfg->events_input_kind, &in->file_input, err, sizeof(err))) {
        log_error("bad events.input_kind", "error", err, NULL);
        goto fail;
    }
    size_t n = cfg->events_topic_kinds.count;
    in->topics = n ? calloc(n, sizeof(*in->topics)) : NULL;
    if (n && !in->topics)
        goto fail;
    for (size_t i = 0; i < n; i++, in->topic_count++) {
        struct ingest_input *t = &in->topics[i];
        if (resolve_input(cfg, cfg->events_topic_kinds.values[i], t, err, sizeof(err)) ||
            !(t->topic = strdup(cfg->events_topic_kinds.keys[i]))) {
            log_error("bad events.topic_kinds entry", "topic", cfg->events_topic_kinds.keys[i],
                      "error", err, NULL);
            if (t->mapping)
                field_mapping_free(t->mapping);
            goto fail;
        }
    }
    return in;
fail:
    ingest_free(in);
    return NULL;
}

void ingest_free(struct ingest *in)
{
    if (!in)
        return;
    for (size_t i = 0; i < in->topic_count; i++) {
        if (in->topics[i].mapping)
            field_mapping_free(in->topics[i].mapping);
        free(in->topics[i].topic);
    }
    free(in->topics);
    if (in->file_input.mapping)
        field_mapping_free(in->file_input.mapping);
    free(in);
}

const struct ingest_input *ingest_input_for_topic(const struct ingest *in, const char *topic)
{
    for (size_t i = 0; i < in->topic_count; i++)
        if (strcmp(in->topics[i].topic, topic) == 0)
            return &in->topics[i];
    return NULL; /* cost, our field names */
}

const struct ingest_input *ingest_input_for_file(const struct ingest *in)
{
    return &in->file_input;
}

void ingest_worker_set_input(struct ingest_worker *w, const struct ingest_input *input)
{
    w->input = input ? input : &w->ingest->cost_input;
}

struct ingest_worker *ingest_worker_new(struct ingest *in)
{
    struct ingest_worker *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->ingest = in;
    w->input = &in->cost_input;
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
    enum reject_reason reason = event_decode_mapped(w->decoder, w->input->mapping, buf, len, ev);
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

static int64_t receipt_ms(const struct ingest *in)
{
    if (in->limits.now_ms)
        return in->limits.now_ms();
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Price, then mark, then counters: a sample with no price (or a cost no
 * interval of it may reach) changes no state at all. */
static enum reject_reason process_gpu(struct ingest_worker *w, const char *buf, size_t len)
{
    const struct ingest *in = w->ingest;
    struct gpu_sample s;
    enum reject_reason reason = gpu_sample_decode(w->decoder, w->input->mapping, buf, len, &s);
    if (reason != REJECT_NONE)
        return reason;
    if (s.end_unix_nanos >= COUNTER_SATURATED) /* year 2262: the decoder bounds it first */
        return REJECT_INVALID_TIMESTAMP;
    struct gpu_rate rate;
    if (!in->prices || price_table_gpu_rate(in->prices, s.instance_type, s.gpu_type, &rate))
        return REJECT_UNPRICED;
    /* The whole interval's idle cost bounds any clipped part of it. */
    uint64_t idle;
    if (gpu_idle_cost(&rate, s.interval_nanos, s.utilization_ppb, &idle) ||
        idle > in->limits.max_cost_nanos)
        return REJECT_INVALID_COST;
    uint64_t counted;
    reason = metrics_gpu_mark(w->slot, &s, &counted);
    if (reason != REJECT_NONE)
        return reason;
    if (counted != s.interval_nanos && gpu_idle_cost(&rate, counted, s.utilization_ppb, &idle))
        idle = 0; /* cannot fail: counted <= the interval priced above */
    metrics_record_gpu_sample(w->slot, &s, counted, idle, receipt_ms(in));
    return REJECT_NONE;
}

static enum reject_reason process_focus(struct ingest_worker *w, const char *buf, size_t len)
{
    struct focus_row r;
    enum reject_reason reason = focus_row_decode(w->decoder, w->input->mapping, buf, len, &r);
    if (reason != REJECT_NONE)
        return reason;
    uint64_t amount = r.amount_nanos < 0 ? 0 - (uint64_t)r.amount_nanos : (uint64_t)r.amount_nanos;
    if (amount > w->ingest->limits.max_cost_nanos)
        return REJECT_INVALID_COST;
    metrics_record_focus_row(w->slot, &r);
    return REJECT_NONE;
}

enum reject_reason ingest_process(struct ingest_worker *w, const char *buf, size_t len)
{
    if (w->input->kind != EVENT_KIND_COST) {
        enum reject_reason reason = w->input->kind == EVENT_KIND_GPU_UTILIZATION
                                        ? process_gpu(w, buf, len)
                                        : process_focus(w, buf, len);
        if (reason != REJECT_NONE)
            metrics_record_reject(w->slot, reason);
        return reason;
    }
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

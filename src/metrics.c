/*
 * metrics.c - the metric registry and scrape render (see metrics.h).
 *
 * Counter tables hold the labeled money and usage; unsharded registries
 * keep the outcome counters in per-worker, cache-line-aligned slots, while
 * sharded ones (the Kafka input) count outcomes in two more tables, so
 * they are checkpointed and move with their shard like every other series.
 * A sharded worker caches its shard's label value, hash and outcome series:
 * an accepted event costs one series add more than its usage, and no
 * lookup while the shard stays the same.
 * The render walks each table with a visitor that writes one sample per
 * series, so each family is contiguous and no series appears twice (a
 * table never holds a label set twice, and its overflow series has a value
 * no real label can take: "__overflow__" is written by the table, never
 * accepted from events - see ingest, which maps it away).
 * Thread-safety: see the header.
 */
#include "metrics.h"

#include <errno.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <librdkafka/rdkafka.h>
#include <microhttpd.h>
#include <yaml.h>

#include "gauge_table.h"
#include "metrics_internal.h"
#include "money.h"
#include "process_metrics.h"

#define METRICS_MAX_WORKERS    256
#define METRICS_MAX_COLLECTORS 16
/* A shard label value: a topic name (at most 249 bytes), '-', a partition
 * number (at most 10 digits). */
#define METRICS_SHARD_MAX 264

struct metrics_worker {
    alignas(64) struct metrics *registry;
    /* unsharded registries: the outcome counts; relaxed atomics, only this
     * worker writes them and scrapes need atomicity */
    _Atomic uint64_t accepted;
    _Atomic uint64_t rejected[REJECT_REASON_COUNT];
    _Atomic int64_t last_event_ms; /* newest event timestamp seen */
    /* sharded registries, this worker's thread only: the current shard and
     * its outcome series (NULL until first needed) */
    struct label_value shard;
    uint64_t shard_hash;
    struct counter_series *accepted_series;
    struct counter_series *rejected_series; /* events{outcome="rejected"} */
    struct counter_series *reason_series[REJECT_REASON_COUNT];
    char shard_buf[METRICS_SHARD_MAX];
    struct gauge_writer *gauges;
    _Atomic uint64_t deduplicated; /* GPU samples that counted nothing */
};

struct collector {
    metrics_collector_fn fn;
    void *ctx;
};

struct metrics {
    struct counter_table *tables[METRIC_FAMILY_COUNT]; /* EVENTS/REJECTED: sharded only */
    struct gauge_table *gauges;                        /* GPU utilization and memory, live */
    bool sharded;
    size_t extra_label_count;
    uint64_t token_kind_hashes[TOKEN_KIND_COUNT]; /* label_hash of token_kind_labels */
    uint64_t outcome_hashes[2];                   /* "accepted", "rejected" */
    struct metrics_worker *workers;               /* METRICS_MAX_WORKERS slots */
    _Atomic size_t worker_count;
    struct collector collectors[METRICS_MAX_COLLECTORS];
    size_t collector_count;
    int64_t start_ms;
    int64_t hold_ms; /* unsharded: the outcome counters read 0 until start + hold */
};

static const char *const token_labels[] = {"team", "project", "provider", "model", "kind", "shard"};
static const char *const gpu_labels[] = {"team", "project", "instance_type", "gpu_type", "shard"};
static const char *const mismatch_labels[] = {"provider", "model", "shard"};
static const char *const events_labels[] = {"outcome", "shard"};
static const char *const rejected_labels[] = {"reason", "shard"};
static const char *const gpu_alloc_labels[] = {"team", "project", "gpu_type", "shard"};
static const char *const cloud_labels[] = {
    "team", "project", "provider", "service", "charge_category", "sub_account", "shard"};
static const char *const mark_labels[] = {"node", "gpu", "shard"};
static const char *const gauge_labels[GAUGE_LABELS] = {"team", "project", "node", "gpu"};
/* A gauge is dropped after gpu.utilization_silence_seconds; 0 (a config
 * without the option) means the documented default. */
#define DEFAULT_SILENCE_SECONDS 300

#define LV(s)                                                                                      \
    {                                                                                              \
        s, sizeof(s) - 1                                                                           \
    }
/* The kind label of ai_finops_tokens_total, by enum token_kind. */
static const struct label_value token_kind_labels[TOKEN_KIND_COUNT] = {
    LV("input"), LV("cached_input"), LV("cache_write"), LV("output")};
static const struct label_value outcome_labels[2] = {LV("accepted"), LV("rejected")};

struct metrics *metrics_new(const struct exporter_config *cfg)
{
    struct metrics *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    size_t max = (size_t)cfg->counters_max_series;
    /* Kafka: each series is one partition's, checkpointed and served from
     * the checkpoint; file input: live values, new series held at 0. */
    m->sharded = cfg->input == NULL;
    size_t sh = m->sharded ? 1 : 0;
    struct counter_table_options opt = {.checkpointed = m->sharded,
                                        .sharded = m->sharded,
                                        .hold_ms =
                                            m->sharded ? 0 : cfg->counters_new_series_hold_ms};
    const char *cost_labels[3 + EVENT_MAX_EXTRA_LABELS + 1] = {"team", "project", "source"};
    m->extra_label_count = cfg->events_extra_labels.count;
    if (m->extra_label_count > EVENT_MAX_EXTRA_LABELS)
        goto fail;
    for (size_t i = 0; i < m->extra_label_count; i++)
        cost_labels[3 + i] = cfg->events_extra_labels.items[i];
    cost_labels[3 + m->extra_label_count] = "shard";
    m->tables[METRIC_FAMILY_COST] =
        counter_table_new(cost_labels, 3 + m->extra_label_count + sh, max, &opt);
    m->tables[METRIC_FAMILY_TOKENS] = counter_table_new(token_labels, 5 + sh, max, &opt);
    m->tables[METRIC_FAMILY_GPU] = counter_table_new(gpu_labels, 4 + sh, max, &opt);
    m->tables[METRIC_FAMILY_MISMATCH] = counter_table_new(mismatch_labels, 2 + sh, max, &opt);
    if (m->sharded) {
        m->tables[METRIC_FAMILY_EVENTS] = counter_table_new(events_labels, 2, max, &opt);
        m->tables[METRIC_FAMILY_REJECTED] = counter_table_new(rejected_labels, 2, max, &opt);
        if (!m->tables[METRIC_FAMILY_EVENTS] || !m->tables[METRIC_FAMILY_REJECTED])
            goto fail;
    }
    m->tables[METRIC_FAMILY_GPU_ALLOCATED] = counter_table_new(gpu_alloc_labels, 3 + sh, max, &opt);
    m->tables[METRIC_FAMILY_GPU_IDLE_COST] = counter_table_new(gpu_alloc_labels, 3 + sh, max, &opt);
    m->tables[METRIC_FAMILY_CLOUD_COST] = counter_table_new(cloud_labels, 6 + sh, max, &opt);
    m->tables[METRIC_FAMILY_CREDIT] = counter_table_new(cloud_labels, 6 + sh, max, &opt);
    m->tables[METRIC_FAMILY_GPU_MARK] = counter_table_new(mark_labels, 2 + sh, max, &opt);
    for (int f = METRIC_FAMILY_GPU_ALLOCATED; f <= METRIC_FAMILY_GPU_MARK; f++)
        if (!m->tables[f])
            goto fail;
    int64_t silence = cfg->gpu_utilization_silence_seconds > 0
                          ? cfg->gpu_utilization_silence_seconds
                          : DEFAULT_SILENCE_SECONDS;
    m->gauges = gauge_table_new(max, silence * 1000, METRICS_MAX_WORKERS);
    if (!m->gauges)
        goto fail;
    m->workers = aligned_alloc(64, sizeof(struct metrics_worker) * METRICS_MAX_WORKERS);
    if (!m->tables[METRIC_FAMILY_COST] || !m->tables[METRIC_FAMILY_TOKENS] ||
        !m->tables[METRIC_FAMILY_GPU] || !m->tables[METRIC_FAMILY_MISMATCH] || !m->workers)
        goto fail;
    memset(m->workers, 0, sizeof(struct metrics_worker) * METRICS_MAX_WORKERS);
    for (int k = 0; k < TOKEN_KIND_COUNT; k++)
        m->token_kind_hashes[k] = label_hash(token_kind_labels[k].ptr, token_kind_labels[k].len);
    for (int k = 0; k < 2; k++)
        m->outcome_hashes[k] = label_hash(outcome_labels[k].ptr, outcome_labels[k].len);
    m->start_ms = process_start_time_ms();
    m->hold_ms = m->sharded ? 0 : cfg->counters_new_series_hold_ms;
    return m;
fail:
    metrics_free(m);
    return NULL;
}

void metrics_free(struct metrics *m)
{
    if (!m)
        return;
    for (size_t f = 0; f < METRIC_FAMILY_COUNT; f++)
        counter_table_free(m->tables[f]);
    gauge_table_free(m->gauges);
    free(m->workers);
    free(m);
}

struct metrics_worker *metrics_worker_new(struct metrics *m)
{
    size_t i = atomic_fetch_add_explicit(&m->worker_count, 1, memory_order_relaxed);
    if (i >= METRICS_MAX_WORKERS)
        return NULL;
    struct metrics_worker *w = &m->workers[i];
    w->registry = m;
    w->gauges = gauge_writer_new(m->gauges);
    if (!w->gauges)
        return NULL;
    w->shard = (struct label_value){w->shard_buf, 0};
    w->shard_hash = label_hash("", 0);
    return w;
}

bool metrics_sharded(const struct metrics *m)
{
    return m->sharded;
}

void metrics_worker_set_shard(struct metrics_worker *w, const char *shard, size_t len)
{
    if (!w->registry->sharded)
        return;
    if (len > METRICS_SHARD_MAX) /* longer than Kafka allows: never happens */
        len = METRICS_SHARD_MAX;
    if (len == w->shard.len && memcmp(w->shard_buf, shard, len) == 0)
        return;
    memcpy(w->shard_buf, shard, len);
    w->shard.len = (uint32_t)len;
    w->shard_hash = label_hash(w->shard_buf, len);
    w->accepted_series = NULL;
    w->rejected_series = NULL;
    memset(w->reason_series, 0, sizeof(w->reason_series));
}

struct counter_table *metrics_table(struct metrics *m, enum metric_family family)
{
    return (unsigned)family < METRIC_FAMILY_COUNT ? m->tables[family] : NULL;
}

struct counter_table *metrics_cost_table(struct metrics *m)
{
    return m->tables[METRIC_FAMILY_COST];
}

/* One family's series for labels[] (with their label_hash in hashes[]);
 * the table's label count says whether the trailing shard is one. */
static struct counter_series *series_of(struct counter_table *t, const struct label_value *labels,
                                        const uint64_t *hashes)
{
    uint64_t hash = label_set_hash(hashes, counter_table_label_count(t));
    return counter_table_get_hashed(t, labels, hash);
}

/* Adds the event's cost, tokens and GPU-seconds to their series. Each
 * label value is hashed once for all the families that carry it (an LLM
 * event looks up to five series). Every label array ends with the shard,
 * which only a sharded table reads. */
static void add_usage(struct metrics_worker *w, const struct event *ev)
{
    struct metrics *m = w->registry;
    struct label_value labels[3 + EVENT_MAX_EXTRA_LABELS + 1] = {ev->team, ev->project, ev->source};
    uint64_t hashes[3 + EVENT_MAX_EXTRA_LABELS + 1];
    uint64_t team = label_hash(ev->team.ptr, ev->team.len);
    uint64_t project = label_hash(ev->project.ptr, ev->project.len);
    hashes[0] = team;
    hashes[1] = project;
    hashes[2] = label_hash(ev->source.ptr, ev->source.len);
    size_t n = 3 + m->extra_label_count;
    for (size_t i = 3; i < n; i++) {
        labels[i] = ev->extra[i - 3];
        hashes[i] = label_hash(labels[i].ptr, labels[i].len);
    }
    labels[n] = w->shard;
    hashes[n] = w->shard_hash;
    /* a $0 event still shows its series */
    counter_series_add(series_of(m->tables[METRIC_FAMILY_COST], labels, hashes), ev->cost_nanos);

    if (event_has_tokens(ev)) {
        struct label_value tl[6] = {ev->team, ev->project, ev->provider, ev->model, {0}, w->shard};
        uint64_t th[6] = {team,
                          project,
                          label_hash(ev->provider.ptr, ev->provider.len),
                          label_hash(ev->model.ptr, ev->model.len),
                          0,
                          w->shard_hash};
        for (int k = 0; k < TOKEN_KIND_COUNT; k++) {
            if (!ev->tokens[k])
                continue;
            tl[4] = token_kind_labels[k];
            th[4] = m->token_kind_hashes[k];
            counter_series_add(series_of(m->tables[METRIC_FAMILY_TOKENS], tl, th), ev->tokens[k]);
        }
    }
    if (event_has_gpu_usage(ev)) {
        struct label_value gl[5] = {ev->team, ev->project, ev->instance_type, ev->gpu_type,
                                    w->shard};
        uint64_t gh[5] = {team, project, label_hash(ev->instance_type.ptr, ev->instance_type.len),
                          label_hash(ev->gpu_type.ptr, ev->gpu_type.len), w->shard_hash};
        counter_series_add(series_of(m->tables[METRIC_FAMILY_GPU], gl, gh), ev->gpu_micros);
    }
}

/* The worker's shard's series of an outcome table (EVENTS or REJECTED)
 * for the label value v. */
static struct counter_series *outcome_series(struct metrics_worker *w, enum metric_family family,
                                             struct label_value v, uint64_t v_hash)
{
    struct label_value labels[2] = {v, w->shard};
    uint64_t hashes[2] = {v_hash, w->shard_hash};
    return series_of(w->registry->tables[family], labels, hashes);
}

/* Counts an accepted message of any kind; timestamp_ms (if has) feeds the
 * freshness gauge. */
static void count_accepted(struct metrics_worker *w, bool has_timestamp, int64_t timestamp_ms)
{
    /* relaxed: only this thread writes the slot; scrapes need atomicity. */
    if (has_timestamp &&
        timestamp_ms > atomic_load_explicit(&w->last_event_ms, memory_order_relaxed))
        atomic_store_explicit(&w->last_event_ms, timestamp_ms, memory_order_relaxed);
    if (!w->registry->sharded) {
        atomic_fetch_add_explicit(&w->accepted, 1, memory_order_relaxed);
        return;
    }
    if (!w->accepted_series)
        w->accepted_series = outcome_series(w, METRIC_FAMILY_EVENTS, outcome_labels[0],
                                            w->registry->outcome_hashes[0]);
    counter_series_add(w->accepted_series, 1);
}

void metrics_record_event(struct metrics_worker *w, const struct event *ev)
{
    add_usage(w, ev);
    count_accepted(w, ev->has_timestamp, ev->timestamp_ms);
}

enum reject_reason metrics_gpu_mark(struct metrics_worker *w, const struct gpu_sample *s,
                                    uint64_t *counted_nanos)
{
    struct label_value v[3] = {s->node, s->gpu, w->shard};
    uint64_t h[3] = {label_hash(v[0].ptr, v[0].len), label_hash(v[1].ptr, v[1].len), w->shard_hash};
    struct counter_table *t = w->registry->tables[METRIC_FAMILY_GPU_MARK];
    /* Never the overflow series: GPUs sharing one mark would swallow each
     * other's intervals. */
    struct counter_series *mark =
        counter_table_get_bounded(t, v, label_set_hash(h, counter_table_label_count(t)));
    if (!mark)
        return REJECT_TOO_MANY_GPUS;
    uint64_t end = s->end_unix_nanos;
    uint64_t start = end > s->interval_nanos ? end - s->interval_nanos : 0;
    uint64_t old = counter_series_raise(mark, end);
    *counted_nanos = old >= end ? 0 : end - (old > start ? old : start);
    return REJECT_NONE;
}

void metrics_record_gpu_sample(struct metrics_worker *w, const struct gpu_sample *s,
                               uint64_t counted_nanos, uint64_t idle_cost_nanos, int64_t receipt_ms)
{
    struct metrics *m = w->registry;
    if (counted_nanos) {
        struct label_value gl[4] = {s->team, s->project, s->gpu_type, w->shard};
        uint64_t gh[4] = {label_hash(s->team.ptr, s->team.len),
                          label_hash(s->project.ptr, s->project.len),
                          label_hash(s->gpu_type.ptr, s->gpu_type.len), w->shard_hash};
        /* micro-GPU-seconds, rounded half up per sample like
         * ai_finops_gpu_seconds */
        counter_series_add(series_of(m->tables[METRIC_FAMILY_GPU_ALLOCATED], gl, gh),
                           (counted_nanos + 500) / 1000);
        counter_series_add(series_of(m->tables[METRIC_FAMILY_GPU_IDLE_COST], gl, gh),
                           idle_cost_nanos);
        struct label_value labels[GAUGE_LABELS] = {s->team, s->project, s->node, s->gpu};
        gauge_table_set(w->gauges, labels, s->utilization_ppb,
                        s->has_memory ? s->memory_used_bytes : GAUGE_NO_MEMORY, receipt_ms);
    } else {
        atomic_fetch_add_explicit(&w->deduplicated, 1, memory_order_relaxed);
    }
    count_accepted(w, true, (int64_t)(s->end_unix_nanos / 1000000));
}

void metrics_record_focus_row(struct metrics_worker *w, const struct focus_row *r)
{
    struct metrics *m = w->registry;
    struct label_value v[7] = {
        r->team, r->project, r->provider, r->service, r->charge_category, r->sub_account, w->shard};
    uint64_t h[7];
    for (int i = 0; i < 6; i++)
        h[i] = label_hash(v[i].ptr, v[i].len);
    h[6] = w->shard_hash;
    /* A credit never decrements: it has its own counter. */
    bool credit = r->amount_nanos < 0;
    uint64_t amount = credit ? 0 - (uint64_t)r->amount_nanos : (uint64_t)r->amount_nanos;
    counter_series_add(
        series_of(m->tables[credit ? METRIC_FAMILY_CREDIT : METRIC_FAMILY_CLOUD_COST], v, h),
        amount);
    count_accepted(w, r->has_timestamp, r->timestamp_ms);
}

void metrics_record_mismatch(struct metrics_worker *w, const struct event *ev)
{
    struct label_value v[3] = {ev->provider, ev->model, w->shard};
    if (!event_has_tokens(ev))
        v[0] = (struct label_value){"gpu", 3}, v[1] = ev->instance_type;
    uint64_t h[3] = {label_hash(v[0].ptr, v[0].len), label_hash(v[1].ptr, v[1].len), w->shard_hash};
    counter_series_add(series_of(w->registry->tables[METRIC_FAMILY_MISMATCH], v, h), 1);
}

void metrics_record_reject(struct metrics_worker *w, enum reject_reason reason)
{
    if ((unsigned)reason >= REJECT_REASON_COUNT)
        reason = REJECT_INVALID_JSON;
    if (!w->registry->sharded) {
        atomic_fetch_add_explicit(&w->rejected[reason], 1, memory_order_relaxed);
        return;
    }
    if (!w->rejected_series)
        w->rejected_series = outcome_series(w, METRIC_FAMILY_EVENTS, outcome_labels[1],
                                            w->registry->outcome_hashes[1]);
    if (!w->reason_series[reason]) {
        const char *name = reject_reason_name(reason);
        struct label_value v = {name, (uint32_t)strlen(name)};
        w->reason_series[reason] =
            outcome_series(w, METRIC_FAMILY_REJECTED, v, label_hash(v.ptr, v.len));
    }
    counter_series_add(w->rejected_series, 1);
    counter_series_add(w->reason_series[reason], 1);
}

static bool label_is(const struct label_value *v, const char *s)
{
    size_t n = strlen(s);
    return v->len == n && memcmp(v->ptr, s, n) == 0;
}

static int sum_outcomes(const struct counter_view *v, void *ctx)
{
    struct metrics_totals *out = ctx;
    if (label_is(&v->labels[0], "accepted"))
        out->accepted += v->live;
    else if (label_is(&v->labels[0], "rejected"))
        out->rejected += v->live;
    return 0;
}

static int sum_reasons(const struct counter_view *v, void *ctx)
{
    struct metrics_totals *out = ctx;
    for (int r = 0; r < REJECT_REASON_COUNT; r++)
        if (label_is(&v->labels[0], reject_reason_name((enum reject_reason)r)))
            out->rejected_by_reason[r] += v->live;
    return 0;
}

void metrics_totals(const struct metrics *m, struct metrics_totals *out)
{
    memset(out, 0, sizeof(*out));
    size_t n = atomic_load_explicit(&((struct metrics *)m)->worker_count, memory_order_relaxed);
    if (n > METRICS_MAX_WORKERS)
        n = METRICS_MAX_WORKERS;
    for (size_t i = 0; i < n; i++) {
        struct metrics_worker *w = &m->workers[i];
        out->accepted += atomic_load_explicit(&w->accepted, memory_order_relaxed);
        int64_t last = atomic_load_explicit(&w->last_event_ms, memory_order_relaxed);
        if (last > out->last_event_ms)
            out->last_event_ms = last;
        for (int r = 0; r < REJECT_REASON_COUNT; r++) {
            uint64_t v = atomic_load_explicit(&w->rejected[r], memory_order_relaxed);
            out->rejected_by_reason[r] += v;
            out->rejected += v;
        }
    }
    if (m->sharded) { /* the slots counted nothing: the live values do */
        counter_table_foreach_all(m->tables[METRIC_FAMILY_EVENTS], sum_outcomes, out);
        counter_table_foreach_all(m->tables[METRIC_FAMILY_REJECTED], sum_reasons, out);
    }
}

int metrics_add_collector(struct metrics *m, metrics_collector_fn fn, void *ctx)
{
    if (m->collector_count >= METRICS_MAX_COLLECTORS)
        return -ENOSPC;
    m->collectors[m->collector_count++] = (struct collector){fn, ctx};
    return 0;
}

struct series_render {
    struct dynbuf *b;
    enum expo_format fmt;
    const char *sample;  /* e.g. "ai_finops_cost_dollars_total" */
    const char *created; /* e.g. "ai_finops_cost_dollars_created" */
    const char *const *names;
    size_t label_count;
    unsigned decimals; /* value is in units of 10^-decimals, rendered as an exact decimal */
};

static int render_series(const struct counter_view *v, void *ctx)
{
    struct series_render *r = ctx;
    dynbuf_append_str(r->b, r->sample);
    expo_labels(r->b, r->names, v->labels, r->label_count);
    if (r->decimals) {
        char text[MONEY_FORMAT_MAX + 2];
        text[0] = ' ';
        size_t n = 1 + money_format_scaled(v->value, r->decimals, text + 1);
        text[n++] = '\n';
        dynbuf_append(r->b, text, n);
    } else {
        expo_value_u64(r->b, v->value);
    }
    if (r->fmt == EXPO_OPENMETRICS) {
        dynbuf_append_str(r->b, r->created);
        expo_labels(r->b, r->names, v->labels, r->label_count);
        expo_value_epoch_ms(r->b, v->created_ms);
    }
    return r->b->error;
}

/* The labeled families, by enum metric_family. The sample names are
 * spelled out so a scrape builds none of them. */
#define FAMILY(base) base, base "_total", base "_created"
static const struct table_family {
    const char *base, *total, *created;
    const char *help;
    unsigned decimals; /* the counters' unit is 10^-decimals (0: whole numbers) */
} table_families[] = {
    {FAMILY("ai_finops_cost_dollars"), "AI spend in US dollars, exact to the nano-dollar.", 9},
    {FAMILY("ai_finops_tokens"),
     "LLM/API tokens by kind (input, cached_input, cache_write, output).", 0},
    /* micro-GPU-seconds: 64 bits last 29 years at 10,000 GPUs (docs/events.md) */
    {FAMILY("ai_finops_gpu_seconds"), "GPU-seconds used (gpu_count times duration_seconds).", 6},
    {FAMILY("ai_finops_pricing_mismatch"),
     "Events whose cost_usd differs from the price table by more than "
     "pricing.mismatch_tolerance_ppm (GPU events: provider=\"gpu\", model=instance_type).",
     0},
    {FAMILY("ai_finops_events"), "Events decoded, by outcome.", 0},
    {FAMILY("ai_finops_events_rejected"),
     "Rejected events, by reason (each also goes to the dead-letter topic).", 0},
    /* The event kinds' families (event_kinds.h); a NULL table is skipped. */
    {FAMILY("ai_finops_gpu_allocated_seconds"),
     "GPU-seconds covered by utilization samples, each interval counted once.", 6},
    {FAMILY("ai_finops_gpu_idle_cost_dollars"),
     "Money paid for GPUs that did nothing: interval x (1 - utilization) x per-GPU-second price.",
     9},
    {FAMILY("ai_finops_cloud_cost_dollars"), "Cloud bill cost from FOCUS rows (amounts >= 0).", 9},
    {FAMILY("ai_finops_credit_dollars"),
     "Credits and refunds from FOCUS rows (|negative amounts|).", 9},
    {FAMILY("ai_finops_gpu_interval_mark"), "Never rendered: per-GPU interval state.", 0},
};
#define FAMILY_COUNT (sizeof(table_families) / sizeof(table_families[0]))
_Static_assert(FAMILY_COUNT == METRIC_FAMILY_COUNT, "one table_families entry per metric_family");

static void render_table(struct dynbuf *b, enum expo_format fmt, int64_t now_ms,
                         const struct counter_table *t, const struct table_family *f)
{
    const char *names[COUNTER_TABLE_MAX_LABELS];
    size_t n = counter_table_label_count(t);
    for (size_t i = 0; i < n; i++)
        names[i] = counter_table_label_name(t, i);
    struct series_render r = {b, fmt, f->total, f->created, names, n, f->decimals};
    expo_family(b, fmt, f->base, "counter", f->help);
    counter_table_foreach(t, now_ms, render_series, &r);
}

static void render_one_label(struct dynbuf *b, const char *sample, const char *name,
                             const char *value)
{
    struct label_value v = {value, (uint32_t)strlen(value)};
    dynbuf_append_str(b, sample);
    expo_labels(b, &name, &v, 1);
}

/* An unsharded registry's outcome counters, from the worker slots. */
static void render_slot_outcomes(struct metrics *m, struct dynbuf *b, enum expo_format fmt,
                                 int64_t now_ms, const struct metrics_totals *live)
{
    struct metrics_totals totals = *live;
    /* Like a new series, they read 0 for the hold after start, so that
     * increase() counts the events of the first scrape's interval. */
    if (m->hold_ms > 0 && now_ms < m->start_ms + m->hold_ms)
        memset(&totals, 0, sizeof(totals));
    const struct table_family *f = &table_families[METRIC_FAMILY_EVENTS];
    expo_family(b, fmt, f->base, "counter", f->help);
    render_one_label(b, f->total, "outcome", "accepted");
    expo_value_u64(b, totals.accepted);
    render_one_label(b, f->total, "outcome", "rejected");
    expo_value_u64(b, totals.rejected);

    f = &table_families[METRIC_FAMILY_REJECTED];
    expo_family(b, fmt, f->base, "counter", f->help);
    for (int r = 1; r < REJECT_REASON_COUNT; r++) {
        render_one_label(b, f->total, "reason", reject_reason_name((enum reject_reason)r));
        expo_value_u64(b, totals.rejected_by_reason[r]);
    }
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int metrics_render(struct metrics *m, enum expo_format fmt, struct dynbuf *b)
{
    return metrics_render_at(m, fmt, wall_ms(), b);
}

/* The newest event timestamp over the worker slots. */
static int64_t last_event_ms(const struct metrics *m)
{
    size_t n = atomic_load_explicit(&((struct metrics *)m)->worker_count, memory_order_relaxed);
    int64_t newest = 0;
    for (size_t i = 0; i < n && i < METRICS_MAX_WORKERS; i++) {
        int64_t last = atomic_load_explicit(&m->workers[i].last_event_ms, memory_order_relaxed);
        if (last > newest)
            newest = last;
    }
    return newest;
}

struct gauge_render {
    struct dynbuf *b;
    const char *sample;
    bool memory;
};

static void render_gauge(const struct gauge_view *v, void *ctx)
{
    struct gauge_render *r = ctx;
    if (r->memory && v->memory_bytes == GAUGE_NO_MEMORY)
        return;
    dynbuf_append_str(r->b, r->sample);
    expo_labels(r->b, gauge_labels, v->labels, GAUGE_LABELS);
    if (r->memory) {
        expo_value_u64(r->b, v->memory_bytes);
        return;
    }
    char text[MONEY_FORMAT_MAX + 2];
    text[0] = ' ';
    size_t n = 1 + money_format_scaled(v->util_ppb, 9, text + 1); /* exact ratio */
    text[n++] = '\n';
    dynbuf_append(r->b, text, n);
}

/* The GPU gauges (live, no shard label) and the sample counters kept in
 * the worker slots. */
static void render_gpu(struct metrics *m, struct dynbuf *b, enum expo_format fmt, int64_t now_ms)
{
    expo_family(b, fmt, "ai_finops_gpu_utilization_ratio", "gauge",
                "GPU utilization (0-1) of the last sample, dropped after "
                "gpu.utilization_silence_seconds without one.");
    struct gauge_render r = {b, "ai_finops_gpu_utilization_ratio", false};
    gauge_table_foreach(m->gauges, now_ms, render_gauge, &r);
    expo_family(b, fmt, "ai_finops_gpu_memory_used_bytes", "gauge",
                "GPU memory used, from the last sample that reported it.");
    r = (struct gauge_render){b, "ai_finops_gpu_memory_used_bytes", true};
    gauge_table_foreach(m->gauges, now_ms, render_gauge, &r);

    uint64_t dedup = 0;
    size_t n = atomic_load_explicit(&m->worker_count, memory_order_relaxed);
    for (size_t i = 0; i < n && i < METRICS_MAX_WORKERS; i++)
        dedup += atomic_load_explicit(&m->workers[i].deduplicated, memory_order_relaxed);
    expo_family(b, fmt, "ai_finops_gpu_samples_deduplicated", "counter",
                "GPU samples accepted that counted nothing: their interval ended at or before "
                "the newest one counted for that GPU (a repeat or an older sample).");
    dynbuf_append_str(b, "ai_finops_gpu_samples_deduplicated_total");
    expo_value_u64(b, dedup);
    expo_family(b, fmt, "ai_finops_gpu_utilization_series_dropped", "counter",
                "New GPUs whose gauges were not kept: counters.max_series GPUs were all heard "
                "from within the silence.");
    dynbuf_append_str(b, "ai_finops_gpu_utilization_series_dropped_total");
    expo_value_u64(b, gauge_table_dropped(m->gauges));
}

int metrics_render_at(struct metrics *m, enum expo_format fmt, int64_t now_ms, struct dynbuf *b)
{
    for (size_t i = 0; i < FAMILY_COUNT; i++)
        if (m->tables[i] && i != METRIC_FAMILY_GPU_MARK) /* state, not a metric */
            render_table(b, fmt, now_ms, m->tables[i], &table_families[i]);
    render_gpu(m, b, fmt, now_ms);
    /* Sharded registries render their outcome counters as tables above;
     * only the slots' counts need summing, and only without shards (a
     * scrape walks no series just for totals). */
    if (!m->sharded) {
        struct metrics_totals totals;
        metrics_totals(m, &totals);
        render_slot_outcomes(m, b, fmt, now_ms, &totals);
    }

    expo_family(b, fmt, "ai_finops_last_event_timestamp_seconds", "gauge",
                "Newest event timestamp seen (from the events' timestamp field), epoch seconds; "
                "0 before any.");
    dynbuf_append_str(b, "ai_finops_last_event_timestamp_seconds");
    expo_value_epoch_ms(b, last_event_ms(m));

    expo_family(b, fmt, "ai_finops_series", "gauge",
                "Label sets held per metric family (the overflow series excluded).");
    for (size_t i = 0; i < FAMILY_COUNT; i++) {
        if (!m->tables[i])
            continue;
        /* the marks: how many GPUs the interval state holds (of max_series) */
        render_one_label(b, "ai_finops_series", "metric",
                         i == METRIC_FAMILY_GPU_MARK ? table_families[i].base
                                                     : table_families[i].total);
        expo_value_u64(b, counter_table_series_count(m->tables[i]));
    }
    render_one_label(b, "ai_finops_series", "metric", "ai_finops_gpu_utilization_ratio");
    expo_value_u64(b, gauge_table_count(m->gauges));
    expo_family(b, fmt, "ai_finops_series_overflow", "counter",
                "Increments sent to the __overflow__ series because the family reached "
                "counters.max_series.");
    for (size_t i = 0; i < FAMILY_COUNT; i++) {
        if (!m->tables[i] || i == METRIC_FAMILY_GPU_MARK) /* never overflows */
            continue;
        render_one_label(b, "ai_finops_series_overflow_total", "metric", table_families[i].total);
        expo_value_u64(b, counter_table_overflow_adds(m->tables[i]));
    }

    expo_family(b, fmt, "ai_finops_exporter_build", "info",
                "Build information of the running exporter.");
    dynbuf_printf(b,
                  "ai_finops_exporter_build_info{version=\"%s\",librdkafka=\"%s\","
                  "cjson=\"%s\",libmicrohttpd=\"%s\",libyaml=\"%s\"} 1\n",
                  FINOPS_VERSION, rd_kafka_version_str(), cJSON_Version(), MHD_get_version(),
                  yaml_get_version_string());

    for (size_t i = 0; i < m->collector_count; i++)
        m->collectors[i].fn(b, fmt, m->collectors[i].ctx);
    process_metrics_render(b, fmt, m->start_ms);
    expo_finish(b, fmt);
    return b->error;
}

int64_t metrics_start_ms(const struct metrics *m)
{
    return m->start_ms;
}

/*
 * metrics.c - the metric registry and scrape render (see metrics.h).
 *
 * Three counter tables hold the labeled money and usage; outcome counters
 * live in per-worker, cache-line-aligned slots. The render walks each table
 * with a visitor that writes one sample per series, so each family is
 * contiguous and no series appears twice (a table never holds a label set
 * twice, and its overflow series has a value no real label can take:
 * "__overflow__" is written by the table, never accepted from events - see
 * ingest, which maps it away).
 * Thread-safety: see the header.
 */
#include "metrics.h"

#include <errno.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <librdkafka/rdkafka.h>
#include <microhttpd.h>
#include <yaml.h>

#include "process_metrics.h"

/* Changes whenever counter_table_hash does (2: label_set_hash of per-value
 * hashes; 1 was a seed-chained XXH3). */
#define SERIES_HASH_VERSION "series-hash-2"

#define METRICS_MAX_WORKERS    256
#define METRICS_MAX_COLLECTORS 16

struct metrics_worker {
    alignas(64) struct metrics *registry;
    _Atomic uint64_t accepted;
    _Atomic uint64_t rejected[REJECT_REASON_COUNT];
    _Atomic int64_t last_event_ms; /* newest event timestamp seen */
};

struct collector {
    metrics_collector_fn fn;
    void *ctx;
};

struct metrics {
    struct counter_table *cost;
    struct counter_table *tokens;
    struct counter_table *gpu;
    struct counter_table *mismatch;
    size_t extra_label_count;
    uint64_t token_kind_hashes[TOKEN_KIND_COUNT]; /* label_hash of token_kind_labels */
    struct metrics_worker *workers;               /* METRICS_MAX_WORKERS slots */
    _Atomic size_t worker_count;
    struct collector collectors[METRICS_MAX_COLLECTORS];
    size_t collector_count;
    int64_t start_ms;
    const struct string_list *replicas;
    /* viewer bits that have seen the outcome counters; scrapes only (one
     * at a time) */
    uint32_t outcomes_shown_to;
};

static const char *const token_labels[] = {"team", "project", "provider", "model", "kind"};
static const char *const gpu_labels[] = {"team", "project", "instance_type", "gpu_type"};
static const char *const mismatch_labels[] = {"provider", "model"};

#define LV(s)                                                                                      \
    {                                                                                              \
        s, sizeof(s) - 1                                                                           \
    }
/* The kind label of ai_finops_tokens_total, by enum token_kind. */
static const struct label_value token_kind_labels[TOKEN_KIND_COUNT] = {
    LV("input"), LV("cached_input"), LV("cache_write"), LV("output")};

struct metrics *metrics_new(const struct exporter_config *cfg)
{
    struct metrics *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    size_t max = (size_t)cfg->counters_max_series;
    const char *cost_labels[3 + EVENT_MAX_EXTRA_LABELS] = {"team", "project", "source"};
    m->extra_label_count = cfg->events_extra_labels.count;
    if (m->extra_label_count > EVENT_MAX_EXTRA_LABELS)
        goto fail;
    for (size_t i = 0; i < m->extra_label_count; i++)
        cost_labels[3 + i] = cfg->events_extra_labels.items[i];
    m->cost = counter_table_new(cost_labels, 3 + m->extra_label_count, max);
    m->tokens = counter_table_new(token_labels, 5, max);
    m->gpu = counter_table_new(gpu_labels, 4, max);
    m->mismatch = counter_table_new(mismatch_labels, 2, max);
    m->workers = aligned_alloc(64, sizeof(struct metrics_worker) * METRICS_MAX_WORKERS);
    if (!m->cost || !m->tokens || !m->gpu || !m->mismatch || !m->workers)
        goto fail;
    memset(m->workers, 0, sizeof(struct metrics_worker) * METRICS_MAX_WORKERS);
    for (int k = 0; k < TOKEN_KIND_COUNT; k++)
        m->token_kind_hashes[k] = label_hash(token_kind_labels[k].ptr, token_kind_labels[k].len);
    m->start_ms = process_start_time_ms();
    m->replicas = &cfg->kafka_commit_replicas;
    return m;
fail:
    metrics_free(m);
    return NULL;
}

void metrics_free(struct metrics *m)
{
    if (!m)
        return;
    counter_table_free(m->cost);
    counter_table_free(m->tokens);
    counter_table_free(m->gpu);
    counter_table_free(m->mismatch);
    free(m->workers);
    free(m);
}

struct metrics_worker *metrics_worker_new(struct metrics *m)
{
    size_t i = atomic_fetch_add_explicit(&m->worker_count, 1, memory_order_relaxed);
    if (i >= METRICS_MAX_WORKERS)
        return NULL;
    m->workers[i].registry = m;
    return &m->workers[i];
}

struct counter_table *metrics_cost_table(struct metrics *m)
{
    return m->cost;
}

/* One family's series for labels[] (with their label_hash in hashes[]),
 * or NULL when `held` is given and does not name it. */
static struct counter_series *series_of(struct counter_table *t, enum metric_family family,
                                        const struct label_value *labels, const uint64_t *hashes,
                                        const struct series_filter *held)
{
    uint64_t hash = label_set_hash(hashes, counter_table_label_count(t));
    if (held && !held->holds(held->ctx, family, hash))
        return NULL;
    return counter_table_get_hashed(t, labels, hash);
}

/* Adds the event's cost, tokens and GPU-seconds to their series (only to
 * those `held` names, when given). Each label value is hashed once for
 * all the families that carry it (an LLM event looks up to five series). */
static void add_usage(struct metrics *m, const struct event *ev, const struct series_filter *held)
{
    struct label_value labels[3 + EVENT_MAX_EXTRA_LABELS] = {ev->team, ev->project, ev->source};
    uint64_t hashes[3 + EVENT_MAX_EXTRA_LABELS];
    uint64_t team = label_hash(ev->team.ptr, ev->team.len);
    uint64_t project = label_hash(ev->project.ptr, ev->project.len);
    hashes[0] = team;
    hashes[1] = project;
    hashes[2] = label_hash(ev->source.ptr, ev->source.len);
    for (size_t i = 0; i < m->extra_label_count; i++) {
        labels[3 + i] = ev->extra[i];
        hashes[3 + i] = label_hash(ev->extra[i].ptr, ev->extra[i].len);
    }
    struct counter_series *s = series_of(m->cost, METRIC_FAMILY_COST, labels, hashes, held);
    if (s)
        counter_series_add(s, ev->cost_nanos); /* a $0 event still shows its series */

    if (event_has_tokens(ev)) {
        struct label_value tl[5] = {ev->team, ev->project, ev->provider, ev->model};
        uint64_t th[5] = {team, project, label_hash(ev->provider.ptr, ev->provider.len),
                          label_hash(ev->model.ptr, ev->model.len)};
        for (int k = 0; k < TOKEN_KIND_COUNT; k++) {
            if (!ev->tokens[k])
                continue;
            tl[4] = token_kind_labels[k];
            th[4] = m->token_kind_hashes[k];
            if ((s = series_of(m->tokens, METRIC_FAMILY_TOKENS, tl, th, held)))
                counter_series_add(s, ev->tokens[k]);
        }
    }
    if (event_has_gpu_usage(ev)) {
        struct label_value gl[4] = {ev->team, ev->project, ev->instance_type, ev->gpu_type};
        uint64_t gh[4] = {team, project, label_hash(ev->instance_type.ptr, ev->instance_type.len),
                          label_hash(ev->gpu_type.ptr, ev->gpu_type.len)};
        if ((s = series_of(m->gpu, METRIC_FAMILY_GPU, gl, gh, held)))
            counter_series_add(s, ev->gpu_count * ev->duration_nanos);
    }
}

static void mismatch_labels_of(const struct event *ev, struct label_value v[2])
{
    v[0] = ev->provider;
    v[1] = ev->model;
    if (!event_has_tokens(ev))
        v[0] = (struct label_value){"gpu", 3}, v[1] = ev->instance_type;
}

void metrics_record_event(struct metrics_worker *w, const struct event *ev)
{
    add_usage(w->registry, ev, NULL);
    /* relaxed: only this thread writes the slot; scrapes need atomicity. */
    if (ev->has_timestamp &&
        ev->timestamp_ms > atomic_load_explicit(&w->last_event_ms, memory_order_relaxed))
        atomic_store_explicit(&w->last_event_ms, ev->timestamp_ms, memory_order_relaxed);
    atomic_fetch_add_explicit(&w->accepted, 1, memory_order_relaxed);
}

void metrics_replay_event(struct metrics_worker *w, const struct event *ev, bool mismatch,
                          const struct series_filter *held)
{
    struct metrics *m = w->registry;
    add_usage(m, ev, held);
    if (!mismatch)
        return;
    struct label_value v[2];
    mismatch_labels_of(ev, v);
    uint64_t h[2] = {label_hash(v[0].ptr, v[0].len), label_hash(v[1].ptr, v[1].len)};
    struct counter_series *s = series_of(m->mismatch, METRIC_FAMILY_MISMATCH, v, h, held);
    if (s)
        counter_series_add(s, 1);
}

void metrics_record_mismatch(struct metrics_worker *w, const struct event *ev)
{
    struct label_value v[2];
    mismatch_labels_of(ev, v);
    counter_table_add(w->registry->mismatch, v, 1);
}

void metrics_record_reject(struct metrics_worker *w, enum reject_reason reason)
{
    if ((unsigned)reason >= REJECT_REASON_COUNT)
        reason = REJECT_INVALID_JSON;
    atomic_fetch_add_explicit(&w->rejected[reason], 1, memory_order_relaxed);
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
    bool nanos; /* value is nano-units, rendered as an exact decimal */
    enum metric_family family;
    const struct scrape_observer *sink;
    struct metrics_sights *staged; /* NULL: first sights recorded at once */
    uint32_t viewer;
};

/* The first sights of one scrape, recorded only when it completes (see
 * metrics_render_staged). */
struct metrics_sights {
    struct counter_series **series;
    size_t count, cap;
    bool outcomes;  /* the outcome counters were shown as 0 */
    bool overflown; /* out of memory: recorded at once instead */
};

static void stage_sight(struct metrics_sights *st, struct counter_series *s, uint32_t viewer)
{
    if (!st->overflown && st->count == st->cap) {
        size_t cap = st->cap ? st->cap * 2 : 64;
        struct counter_series **grown = realloc(st->series, cap * sizeof(*grown));
        if (grown) {
            st->series = grown;
            st->cap = cap;
        } else {
            st->overflown = true;
        }
    }
    /* Without memory to remember it, record it now: at worst this scrape's
     * failure hides that first sight, as before staging existed. */
    if (st->overflown)
        counter_table_mark_shown(s, viewer);
    else
        st->series[st->count++] = s;
}

static int render_series(const struct counter_view *v, void *ctx)
{
    struct series_render *r = ctx;
    if (v->first_sight && r->staged)
        stage_sight(r->staged, v->series, r->viewer);
    if (v->first_sight && r->sink && r->sink->first_sight) {
        struct first_sight fs = {.known = !v->overflow,
                                 .spread = v->spread,
                                 .family = r->family,
                                 .hash = v->hash,
                                 .origin = v->overflow ? 0 : v->origin,
                                 .origin_offset = v->origin_offset};
        r->sink->first_sight(r->sink->ctx, &fs);
    }
    dynbuf_append_str(r->b, r->sample);
    expo_labels(r->b, r->names, v->labels, r->label_count);
    if (r->nanos)
        expo_value_nanos(r->b, v->value);
    else
        expo_value_u64(r->b, v->value);
    if (r->fmt == EXPO_OPENMETRICS) {
        dynbuf_append_str(r->b, r->created);
        expo_labels(r->b, r->names, v->labels, r->label_count);
        expo_value_epoch_ms(r->b, v->created_ms);
    }
    return r->b->error;
}

/* The labeled families, in render order; the table of each is
 * family_table() below. The sample names are spelled out so a scrape
 * builds none of them. */
#define FAMILY(base) base, base "_total", base "_created"
static const struct table_family {
    const char *base, *total, *created;
    const char *help;
    bool nanos;
} table_families[] = {
    {FAMILY("ai_finops_cost_dollars"), "AI spend in US dollars, exact to the nano-dollar.", true},
    {FAMILY("ai_finops_tokens"),
     "LLM/API tokens by kind (input, cached_input, cache_write, output).", false},
    {FAMILY("ai_finops_gpu_seconds"), "GPU-seconds used (gpu_count times duration_seconds).", true},
    {FAMILY("ai_finops_pricing_mismatch"),
     "Events whose cost_usd differs from the price table by more than "
     "pricing.mismatch_tolerance_ppm (GPU events: provider=\"gpu\", model=instance_type).",
     false},
};
#define FAMILY_COUNT (sizeof(table_families) / sizeof(table_families[0]))
_Static_assert(FAMILY_COUNT == METRIC_FAMILY_COUNT, "one table_families entry per metric_family");

static const struct counter_table *family_table(const struct metrics *m, size_t i)
{
    const struct counter_table *tables[FAMILY_COUNT] = {
        [METRIC_FAMILY_COST] = m->cost,
        [METRIC_FAMILY_TOKENS] = m->tokens,
        [METRIC_FAMILY_GPU] = m->gpu,
        [METRIC_FAMILY_MISMATCH] = m->mismatch,
    };
    return tables[i];
}

uint64_t metrics_schema_hash(const struct metrics *m)
{
    /* FNV-1a over the series hash's version, then every family's label
     * names, in order, NUL-separated: a claim names series by hash, so a
     * process that hashes label sets otherwise must not read it. */
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const char *c = SERIES_HASH_VERSION;; c++) {
        h = (h ^ (unsigned char)*c) * 0x100000001b3ULL;
        if (!*c)
            break;
    }
    for (size_t f = 0; f < METRIC_FAMILY_COUNT; f++) {
        const struct counter_table *t = family_table(m, f);
        for (size_t i = 0; i < counter_table_label_count(t); i++) {
            for (const char *c = counter_table_label_name(t, i);; c++) {
                h = (h ^ (unsigned char)*c) * 0x100000001b3ULL;
                if (!*c)
                    break;
            }
        }
        h = (h ^ 0xff) * 0x100000001b3ULL;
    }
    return h;
}

static void render_table(struct dynbuf *b, enum expo_format fmt, uint32_t viewer,
                         const struct counter_table *t, const struct table_family *f,
                         enum metric_family family, const struct scrape_observer *sink,
                         struct metrics_sights *staged)
{
    const char *names[COUNTER_TABLE_MAX_LABELS];
    size_t n = counter_table_label_count(t);
    for (size_t i = 0; i < n; i++)
        names[i] = counter_table_label_name(t, i);
    struct series_render r = {b,        fmt,    f->total, f->created, names, n,
                              f->nanos, family, sink,     staged,     viewer};
    expo_family(b, fmt, f->base, "counter", f->help);
    if (staged)
        counter_table_foreach_peek(t, viewer, render_series, &r);
    else
        counter_table_foreach(t, viewer, render_series, &r);
}

static void render_one_label(struct dynbuf *b, const char *sample, const char *name,
                             const char *value)
{
    struct label_value v = {value, (uint32_t)strlen(value)};
    dynbuf_append_str(b, sample);
    expo_labels(b, &name, &v, 1);
}

uint32_t metrics_viewer_for(const struct metrics *m, const char *replica)
{
    if (m->replicas->count == 0)
        return 1u;
    for (size_t i = 0; replica && i < m->replicas->count && i < 31; i++)
        if (strcmp(m->replicas->items[i], replica) == 0)
            return 1u << i;
    return 1u << 31;
}

static int render(struct metrics *m, enum expo_format fmt, uint32_t viewer, struct dynbuf *b,
                  const struct scrape_observer *sink, struct metrics_sights *staged);

int metrics_render(struct metrics *m, enum expo_format fmt, uint32_t viewer, struct dynbuf *b,
                   const struct scrape_observer *sink)
{
    return render(m, fmt, viewer, b, sink, NULL);
}

int metrics_render_staged(struct metrics *m, enum expo_format fmt, uint32_t viewer,
                          struct dynbuf *b, const struct scrape_observer *sink,
                          struct metrics_sights **staged)
{
    *staged = calloc(1, sizeof(**staged));
    if (!*staged)
        return -ENOMEM;
    return render(m, fmt, viewer, b, sink, *staged);
}

void metrics_sights_record(struct metrics *m, const struct metrics_sights *st, uint32_t viewer)
{
    if (!st || !viewer)
        return;
    for (size_t i = 0; i < st->count; i++)
        counter_table_mark_shown(st->series[i], viewer);
    if (st->outcomes)
        m->outcomes_shown_to |= viewer;
}

void metrics_sights_free(struct metrics_sights *st)
{
    if (!st)
        return;
    free(st->series);
    free(st);
}

static int render(struct metrics *m, enum expo_format fmt, uint32_t viewer, struct dynbuf *b,
                  const struct scrape_observer *sink, struct metrics_sights *staged)
{
    for (size_t i = 0; i < FAMILY_COUNT; i++)
        render_table(b, fmt, viewer, family_table(m, i), &table_families[i], (enum metric_family)i,
                     sink, staged);

    struct metrics_totals totals;
    metrics_totals(m, &totals);
    /* The outcome counters follow the same first-sight rule as the
     * labeled families, so increase() over them equals what was consumed. */
    if (viewer && !(m->outcomes_shown_to & viewer)) {
        if (staged)
            staged->outcomes = true;
        else
            m->outcomes_shown_to |= viewer;
        memset(&totals, 0, sizeof(totals));
        if (sink && sink->first_sight) /* every partition's events so far */
            sink->first_sight(sink->ctx, &(struct first_sight){.known = false});
    }
    if (sink && sink->counters_read)
        sink->counters_read(sink->ctx);
    expo_family(b, fmt, "ai_finops_events", "counter", "Events decoded, by outcome.");
    render_one_label(b, "ai_finops_events_total", "outcome", "accepted");
    expo_value_u64(b, totals.accepted);
    render_one_label(b, "ai_finops_events_total", "outcome", "rejected");
    expo_value_u64(b, totals.rejected);

    expo_family(b, fmt, "ai_finops_events_rejected", "counter",
                "Rejected events, by reason (each also goes to the dead-letter topic).");
    for (int r = 1; r < REJECT_REASON_COUNT; r++) {
        render_one_label(b, "ai_finops_events_rejected_total", "reason",
                         reject_reason_name((enum reject_reason)r));
        expo_value_u64(b, totals.rejected_by_reason[r]);
    }

    expo_family(b, fmt, "ai_finops_last_event_timestamp_seconds", "gauge",
                "Newest event timestamp seen (from the events' timestamp field), epoch seconds; "
                "0 before any.");
    dynbuf_append_str(b, "ai_finops_last_event_timestamp_seconds");
    expo_value_epoch_ms(b, totals.last_event_ms);

    expo_family(b, fmt, "ai_finops_series", "gauge",
                "Label sets held per metric family (the overflow series excluded).");
    for (size_t i = 0; i < FAMILY_COUNT; i++) {
        render_one_label(b, "ai_finops_series", "metric", table_families[i].total);
        expo_value_u64(b, counter_table_series_count(family_table(m, i)));
    }
    expo_family(b, fmt, "ai_finops_series_overflow", "counter",
                "Increments sent to the __overflow__ series because the family reached "
                "counters.max_series.");
    for (size_t i = 0; i < FAMILY_COUNT; i++) {
        render_one_label(b, "ai_finops_series_overflow_total", "metric", table_families[i].total);
        expo_value_u64(b, counter_table_overflow_adds(family_table(m, i)));
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

/*
 * kafka_source.c - the Kafka input: one librdkafka consumer (one group
 * member, cooperative-sticky) whose partitions are spread over N worker
 * threads, each feeding its own ingest worker, with offsets committed only
 * for what Prometheus has seen.
 *
 * Threads: each partition's fetch queue is forwarded to one worker's queue
 * (worker 0's is the consumer queue, so worker 0 also serves the group
 * callbacks: rebalance, commits, statistics). One member per process means
 * partitions never move between this process's own threads through the
 * group, and a rebalance only happens when processes come or go.
 *
 * Delivery design (docs/delivery.md):
 *  - Each (topic, partition) has one process-wide state: `applied`, the
 *    highest offset added to the counters. A message at or below it is a
 *    redelivery and is skipped (librdkafka 2.0.2 can redeliver around
 *    rebalances), so a partition moving between our threads never counts
 *    twice.
 *  - A scrape snapshots every partition's `applied` before it renders
 *    (acquire: the counters then hold at least those events). When the
 *    scrape was sent completely, its snapshot becomes observed, except
 *    below the creating offset of any series it showed for the first time
 *    (as 0, see counter_table_foreach): each series remembers the
 *    partition and offset of the event that created it. The commit is the minimum over the required
 * viewers, never past a dead letter not yet acknowledged, and is sent at once (and again when a
 * dead letter is acknowledged).
 *  - Rejected messages go byte for byte to the dead-letter topic with
 *    headers naming the reason and where they came from.
 * Thread-safety: workers own their queues and ingest workers; the HTTP
 * thread runs the scrape hooks and the collector; `registry_lock` guards
 * the partition list, snapshots and ownership, never taken on the
 * per-message path. `freeze_lock` serializes freezing the workers (a
 * scrape's cut, a revocation).
 * Lock order: freeze_lock, then registry_lock, then a partition's dlq_lock.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <librdkafka/rdkafka.h>
#include <xxhash.h>

#include "commit_claim.h"
#include "log.h"
#include "source.h"

#define MAX_VIEWERS    32
#define MAX_SNAPSHOTS  16
#define POLL_MS        100
#define BATCH_MAX      1024 /* messages applied per pass through the scrape gate */
#define FREEZE_WAIT_MS 1000

struct partition_state {
    char *topic;
    int32_t partition;
    uint32_t index;          /* in the registry; index + 1 is its counter origin */
    _Atomic int64_t applied; /* highest offset applied, -1 for none */
    /* HTTP thread, under registry_lock: */
    int64_t last_done[MAX_VIEWERS];   /* from the viewer's latest completed scrape */
    int64_t observed_by[MAX_VIEWERS]; /* every event up to here observed by the viewer */
    /* every event up to here observed by the viewer except in the series
     * its latest scrape showed first (viewer_claim): the claim's upto - 1 */
    int64_t claim_upto[MAX_VIEWERS];
    _Atomic int64_t committed; /* next offset committed, -1 for none */
    int64_t sent_offset;       /* the last commit sent, -1 for none or to resend */
    uint64_t sent_digest;      /* and a hash of its claim text (0: none) */
    int worker;                /* the worker it is forwarded to; -1 when not assigned */
    _Atomic bool assigned;     /* checked by workers inside the gate */
    /* The previous owner's claim, read from the committed metadata at
     * assignment: messages below inherited.upto were counted by it and are
     * replayed into its held series only. Written by the owning consumer
     * thread under registry_lock; read by that thread without it. */
    struct commit_claim inherited;
    char *inherited_text;
    size_t inherited_len;
    /* dead letters not yet acknowledged, in offset order */
    pthread_mutex_t dlq_lock;
    int64_t *dlq_pending;
    size_t dlq_count, dlq_cap;
};

struct snapshot {
    uint64_t scrape_id;
    uint32_t viewer;
    size_t count;
    int64_t *applied;            /* indexed like the registry at snapshot time */
    int64_t *first_shown;        /* lowest origin offset of a series first shown */
    bool unknown_first;          /* a series of unknown origin was first shown */
    bool spread_first;           /* a series fed by several partitions was first shown */
    bool unfrozen;               /* rendered while appliers ran on: claims nothing */
    struct first_sight *sighted; /* every first-shown series with an identity */
    size_t sighted_count, sighted_cap;
};

/* The series a viewer's latest completed scrape showed first: what commits
 * name as held (see commit_claim.h). HTTP thread, under registry_lock. */
struct viewer_claim {
    uint64_t scrape_id;
    struct first_sight *sighted;
    size_t sighted_count, sighted_cap;
};

struct consumer {
    struct kafka_source *source;
    rd_kafka_queue_t *queue; /* its partitions' messages (worker 0: the consumer queue) */
    int partitions;          /* assigned to it; under registry_lock */
    struct ingest_worker *worker;
    pthread_t thread;
    bool started;
    int index;
    /* this thread's lookup cache: last partition seen */
    rd_kafka_topic_t *cache_rkt;
    int32_t cache_partition;
    struct partition_state *cache_state;
    _Atomic bool applying; /* inside the gate: see gate_enter */
};

struct dlq_ref {
    struct partition_state *state;
    int64_t offset;
    char reason[32];
};

/* The ref reaches the delivery callback (dead-letter thread) through
 * librdkafka's queues, a hand-over ThreadSanitizer cannot see in that
 * uninstrumented library: tell it. Nothing in other builds. */
#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#define HANDOVER_RELEASE(ref) __tsan_release(ref)
#define HANDOVER_ACQUIRE(ref) __tsan_acquire(ref)
#else
#define HANDOVER_RELEASE(ref) ((void)(ref))
#define HANDOVER_ACQUIRE(ref) ((void)(ref))
#endif

struct kafka_source {
    struct event_source base; /* first: the interface pointer is this */
    const struct exporter_config *cfg;
    struct ingest *ingest;
    rd_kafka_t *rk;             /* the group member */
    struct consumer *consumers; /* the workers */
    int consumer_count;
    _Atomic bool broker_up;
    _Atomic int assigned;
    rd_kafka_t *dlq; /* NULL when dead-lettering is off */
    pthread_t dlq_thread;
    bool dlq_thread_started;
    uint32_t required_viewers;
    atomic_bool stop;
    atomic_bool shutting_down;
    bool gated;         /* scrape commit mode: scrapes pause applying (gate_enter) */
    atomic_bool frozen; /* a scrape takes its cut, or partitions are revoked */
    bool freeze_held;   /* HTTP thread: this scrape froze the appliers */
    pthread_mutex_t freeze_lock;

    pthread_mutex_t registry_lock;
    struct partition_state **parts;
    size_t part_count, part_cap;
    struct snapshot snapshots[MAX_SNAPSHOTS];
    size_t snapshot_next;
    struct snapshot *rendering; /* the scrape now rendering (HTTP thread) */
    struct viewer_claim viewer_claims[MAX_VIEWERS];
    uint64_t schema; /* metrics_schema_hash */

    _Atomic uint64_t rebalances, commits, commit_failures, duplicates, dlq_produced, dlq_failures,
        replayed, claims_cut;
    atomic_bool dlq_acked; /* a letter was acknowledged since the last commit */
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- partition registry ------------------------------------------------ */

/* Caller holds registry_lock. */
static struct partition_state *registry_find(struct kafka_source *ks, const char *topic,
                                             int32_t partition, bool create)
{
    for (size_t i = 0; i < ks->part_count; i++)
        if (ks->parts[i]->partition == partition && strcmp(ks->parts[i]->topic, topic) == 0)
            return ks->parts[i];
    if (!create)
        return NULL;
    if (ks->part_count == ks->part_cap) {
        size_t cap = ks->part_cap ? ks->part_cap * 2 : 64;
        struct partition_state **parts = realloc(ks->parts, cap * sizeof(*parts));
        if (!parts)
            return NULL;
        ks->parts = parts;
        ks->part_cap = cap;
    }
    struct partition_state *p = calloc(1, sizeof(*p));
    if (!p || !(p->topic = strdup(topic))) {
        free(p);
        return NULL;
    }
    p->partition = partition;
    p->index = (uint32_t)ks->part_count;
    atomic_init(&p->applied, -1);
    atomic_init(&p->committed, -1);
    p->worker = -1;
    for (int v = 0; v < MAX_VIEWERS; v++)
        p->last_done[v] = p->observed_by[v] = p->claim_upto[v] = -1;
    p->sent_offset = -1;
    pthread_mutex_init(&p->dlq_lock, NULL);
    ks->parts[ks->part_count++] = p;
    return p;
}

static void partition_free(struct partition_state *p)
{
    commit_claim_clear(&p->inherited);
    free(p->inherited_text);
    pthread_mutex_destroy(&p->dlq_lock);
    free(p->dlq_pending);
    free(p->topic);
    free(p);
}

/* The offset to commit: one past the last event every required viewer has
 * seen (or, in periodic mode, past the last applied), held below the
 * oldest unacknowledged dead letter. Caller holds registry_lock. */
static int64_t commit_target(struct kafka_source *ks, struct partition_state *p, bool applied_all)
{
    int64_t upto = atomic_load_explicit(&p->applied, memory_order_acquire);
    if (!applied_all) {
        for (int v = 0; v < MAX_VIEWERS; v++)
            if ((ks->required_viewers & (1u << v)) && p->observed_by[v] < upto)
                upto = p->observed_by[v];
    }
    pthread_mutex_lock(&p->dlq_lock);
    if (p->dlq_count && p->dlq_pending[0] - 1 < upto)
        upto = p->dlq_pending[0] - 1;
    pthread_mutex_unlock(&p->dlq_lock);
    return upto + 1;
}

/* What one partition's commit sends: the offset, and a claim about the
 * offsets past it (see commit_claim.h). */
struct commit_plan {
    int64_t offset;
    char *meta; /* malloc'd claim text, NULL for none */
    size_t meta_len;
};

static int compare_sighted_id(const void *a, const void *b)
{
    const struct first_sight *x = a, *y = b;
    if (x->family != y->family)
        return x->family < y->family ? -1 : 1;
    return x->hash < y->hash ? -1 : x->hash > y->hash;
}

static int compare_sighted_offset(const void *a, const void *b)
{
    const struct first_sight *x = a, *y = b;
    return x->origin_offset < y->origin_offset ? -1 : x->origin_offset > y->origin_offset;
}

static int compare_offset(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* A first-shown series whose events may sit on any partition: several fed
 * it, or its origin is unknown. */
static bool sighted_everywhere(const struct first_sight *f)
{
    return f->spread || f->origin == 0;
}

/* Does a first-shown series hold back events of partition p? Its own
 * partition's, and any partition's when several fed it. */
static bool sighted_concerns(const struct first_sight *f, const struct partition_state *p,
                             int64_t upto)
{
    if (sighted_everywhere(f))
        return true;
    return f->origin == p->index + 1 && f->origin_offset < upto;
}

/* Every series the required viewers' latest scrapes showed first, one
 * entry each, sorted by identity; *n is set. NULL when there are none or
 * memory ran out (*n 0). Built once per commit round. Caller holds
 * registry_lock. */
static struct first_sight *sighted_union(struct kafka_source *ks, size_t *n)
{
    size_t total = 0, count = 0;
    for (int v = 0; v < MAX_VIEWERS; v++)
        if (ks->required_viewers & (1u << v))
            total += ks->viewer_claims[v].sighted_count;
    struct first_sight *all = total ? malloc(total * sizeof(*all)) : NULL;
    for (int v = 0; all && v < MAX_VIEWERS; v++) {
        const struct viewer_claim *vc = &ks->viewer_claims[v];
        if (ks->required_viewers & (1u << v)) {
            memcpy(all + count, vc->sighted, vc->sighted_count * sizeof(*all));
            count += vc->sighted_count;
        }
    }
    if (count)
        qsort(all, count, sizeof(*all), compare_sighted_id);
    size_t unique = 0;
    for (size_t i = 0; i < count; i++)
        if (!unique || compare_sighted_id(&all[unique - 1], &all[i]) != 0)
            all[unique++] = all[i];
    *n = all ? unique : 0;
    return all;
}

static bool sighted_has(const struct first_sight *all, size_t n, unsigned family, uint64_t hash)
{
    struct first_sight key = {.family = (enum metric_family)family, .hash = hash};
    return n && bsearch(&key, all, n, sizeof(key), compare_sighted_id) != NULL;
}

/* A claim under construction: segments with their own held arrays. */
struct claim_draft {
    struct claim_segment segs[COMMIT_CLAIM_MAX_SEGMENTS];
    size_t count;
    int64_t *letters;
    size_t n_letters;
};

static void draft_free(struct claim_draft *d)
{
    for (size_t i = 0; i < d->count; i++)
        free(d->segs[i].held);
    free(d->letters);
}

static size_t draft_len(const struct claim_draft *d)
{
    return commit_claim_encoded_len(d->letters, d->n_letters, d->segs, d->count);
}

/*
 * The previous owner's segments past `from`, each narrowed to the series
 * this process has not shown yet once every required viewer's latest
 * scrape covered the whole segment (this process re-added those series'
 * events; the others it skipped, as the previous owner's scrapes had shown
 * them). Returns false on allocation failure.
 */
static bool draft_inherited(struct claim_draft *d, const struct partition_state *p, int64_t from,
                            int64_t covered, const struct first_sight *all, size_t n_all)
{
    for (size_t i = 0; i < p->inherited.segment_count; i++) {
        const struct claim_segment *in = &p->inherited.segments[i];
        if (in->upto <= from)
            continue;
        struct claim_segment *out = &d->segs[d->count++];
        out->upto = in->upto;
        out->held = in->held_count ? malloc(in->held_count * sizeof(*out->held)) : NULL;
        if (in->held_count && !out->held)
            return false;
        for (size_t k = 0; k < in->held_count; k++)
            if (covered < in->upto || sighted_has(all, n_all, in->held[k].family, in->held[k].hash))
                out->held[out->held_count++] = in->held[k];
    }
    return true;
}

/*
 * This process's own segment [from, upto): every increment its required
 * viewers' latest scrapes showed, except in the series they showed first.
 * Those concerning p are held: p's own by creating offset, and any fed by
 * several partitions. When the text would exceed max_bytes, the segment
 * ends before the creating offset of the first series left out (their
 * events all come later). Returns false on allocation failure.
 */
static bool draft_own(struct kafka_source *ks, struct claim_draft *d,
                      const struct partition_state *p, int64_t from, int64_t upto,
                      const struct first_sight *all, size_t n_all, size_t max_bytes)
{
    struct first_sight *held = n_all ? malloc(n_all * sizeof(*held)) : NULL;
    if (n_all && !held)
        return false;
    size_t n = 0, fixed = 0;
    for (size_t i = 0; i < n_all; i++)
        if (sighted_concerns(&all[i], p, upto))
            held[n++] = all[i];
    for (size_t i = 0; i < n; i++)
        if (sighted_everywhere(&held[i])) {
            struct first_sight tmp = held[fixed];
            held[fixed++] = held[i];
            held[i] = tmp;
        }
    if (n > fixed)
        qsort(held + fixed, n - fixed, sizeof(*held), compare_sighted_offset);
    struct claim_segment *seg = &d->segs[d->count++];
    seg->upto = upto;
    seg->held = n ? malloc(n * sizeof(*seg->held)) : NULL;
    if (n && !seg->held) {
        free(held);
        return false;
    }
    for (size_t i = 0; i < n; i++)
        seg->held[i] = (struct claim_series){(uint8_t)held[i].family, held[i].hash};
    seg->held_count = n;
    bool cut = false;
    while (draft_len(d) > max_bytes && seg->held_count > fixed) {
        cut = true;
        seg->upto = held[--seg->held_count].origin_offset;
    }
    /* Too big even with only the series held on every partition: the
     * segment is dropped, a cut to nothing. */
    bool too_big = draft_len(d) > max_bytes;
    if (cut || too_big) /* relaxed: a statistic */
        atomic_fetch_add_explicit(&ks->claims_cut, 1, memory_order_relaxed);
    if (seg->upto <= from || too_big) {
        free(seg->held);
        d->count--;
    }
    free(held);
    return true;
}

/*
 * Adds to plan the claim the required viewers' latest scrapes support (see
 * commit_claim.h), within kafka.commit_metadata_max_bytes. While this
 * process is still inside its predecessor's claim, the claim is that one,
 * narrowed, followed by this process's own segment. Caller holds
 * registry_lock.
 */
static void plan_claim(struct kafka_source *ks, struct partition_state *p,
                       const struct first_sight *all, size_t n_all, struct commit_plan *plan)
{
    size_t max_bytes = (size_t)ks->cfg->kafka_commit_metadata_max_bytes;
    int64_t covered = INT64_MAX; /* every required viewer's latest cut reaches below this */
    for (int v = 0; v < MAX_VIEWERS; v++)
        if ((ks->required_viewers & (1u << v)) && p->claim_upto[v] + 1 < covered)
            covered = p->claim_upto[v] + 1;
    bool inside = p->inherited_text && plan->offset < p->inherited.upto;
    if (max_bytes == 0 || (!inside && covered <= plan->offset))
        return;
    struct claim_draft d = {.count = 0};
    int64_t own_from = inside ? p->inherited.upto : plan->offset;
    int64_t applied = atomic_load_explicit(&p->applied, memory_order_relaxed);
    if (inside && !draft_inherited(&d, p, plan->offset, covered, all, n_all))
        goto out;
    /* Dead letters past the offset not yet acknowledged: ours, and the
     * predecessor's this process has not re-read yet. */
    pthread_mutex_lock(&p->dlq_lock);
    size_t cap = p->dlq_count + (inside ? p->inherited.dead_letter_count : 0);
    d.letters = cap ? malloc(cap * sizeof(int64_t)) : NULL;
    for (size_t i = 0; d.letters && i < p->dlq_count; i++)
        if (p->dlq_pending[i] >= plan->offset)
            d.letters[d.n_letters++] = p->dlq_pending[i];
    pthread_mutex_unlock(&p->dlq_lock);
    if (cap && !d.letters)
        goto out;
    for (size_t i = 0; inside && i < p->inherited.dead_letter_count; i++) {
        int64_t o = p->inherited.dead_letters[i];
        if (o >= plan->offset && o > applied)
            d.letters[d.n_letters++] = o;
    }
    if (d.n_letters)
        qsort(d.letters, d.n_letters, sizeof(int64_t), compare_offset);
    if (covered > own_from && d.count < COMMIT_CLAIM_MAX_SEGMENTS &&
        !draft_own(ks, &d, p, own_from, covered, all, n_all, max_bytes))
        goto out;
    if (d.count == 0)
        goto out;
    /* letters past the claim are not its business */
    int64_t end = d.segs[d.count - 1].upto;
    while (d.n_letters && d.letters[d.n_letters - 1] >= end)
        d.n_letters--;
    size_t len = draft_len(&d);
    if (len > max_bytes)
        goto out; /* the predecessor's claim alone no longer fits: plan_commit re-sends it */
    char *text = malloc(len);
    struct commit_claim claim = {.schema = ks->schema,
                                 .segments = d.segs,
                                 .segment_count = d.count,
                                 .dead_letters = d.letters,
                                 .dead_letter_count = d.n_letters};
    int written = text ? commit_claim_encode(&claim, text, len) : -ENOMEM;
    if (written < 0) {
        free(text);
        goto out;
    }
    plan->meta = text;
    plan->meta_len = (size_t)written;
out:
    draft_free(&d);
}

/* Does this commit carry claims of its own? Not when it commits all that
 * was applied (revocation, periodic mode). */
static bool claims_apply(const struct kafka_source *ks, bool applied_all)
{
    return !applied_all && ks->cfg->kafka_commit_mode == COMMIT_MODE_SCRAPE;
}

/* Caller holds registry_lock. all/n_all: sighted_union. Returns false
 * when there is nothing new to send for p. */
static bool plan_commit(struct kafka_source *ks, struct partition_state *p, bool applied_all,
                        const struct first_sight *all, size_t n_all, struct commit_plan *plan)
{
    *plan = (struct commit_plan){.offset = commit_target(ks, p, applied_all)};
    if (plan->offset < 0 || plan->offset < atomic_load(&p->committed) ||
        plan->offset < p->sent_offset)
        return false;
    bool inside = p->inherited_text && plan->offset < p->inherited.upto;
    if (claims_apply(ks, applied_all))
        plan_claim(ks, p, all, n_all, plan);
    /* Offset 0 alone says nothing (a partition starts there), but with a
     * claim it says what scrapes saw: the first scrape of a new partition
     * first-shows series its offset-0 event created, so its commit is
     * offset 0 plus a claim. Skipping it let a crash before the next
     * scrape re-count outcomes that scrape had shown. */
    if (plan->offset == 0 && !plan->meta && !inside)
        return false;
    if (inside && !plan->meta) {
        /* No claim of our own could be made (a revocation commits what it
         * applied, or it did not fit): the predecessor's claim still
         * describes the offsets past ours. */
        plan->meta = malloc(p->inherited_len);
        if (plan->meta) {
            memcpy(plan->meta, p->inherited_text, p->inherited_len);
            plan->meta_len = p->inherited_len;
        }
    }
    uint64_t digest = plan->meta ? XXH3_64bits(plan->meta, plan->meta_len) : 0;
    if (plan->offset == p->sent_offset && digest == p->sent_digest) {
        free(plan->meta);
        return false;
    }
    p->sent_offset = plan->offset;
    p->sent_digest = digest;
    return true;
}

/*
 * Commits every owned partition whose plan changed. async from the HTTP
 * thread (a commit right after the scrape shrinks the window in which a
 * crash would make a new owner re-read what Prometheus already has); sync
 * from rebalance and shutdown. Caller holds registry_lock.
 */
static void commit_owned(struct kafka_source *ks, const rd_kafka_topic_partition_list_t *only,
                         bool applied_all, bool async)
{
    rd_kafka_topic_partition_list_t *list = NULL;
    size_t n_all = 0;
    struct first_sight *all = claims_apply(ks, applied_all) ? sighted_union(ks, &n_all) : NULL;
    for (size_t i = 0; i < ks->part_count; i++) {
        struct partition_state *p = ks->parts[i];
        struct commit_plan plan;
        if (p->worker < 0 ||
            (only && !rd_kafka_topic_partition_list_find(only, p->topic, p->partition)) ||
            !plan_commit(ks, p, applied_all, all, n_all, &plan))
            continue;
        if (!list)
            list = rd_kafka_topic_partition_list_new(8);
        rd_kafka_topic_partition_t *tp =
            rd_kafka_topic_partition_list_add(list, p->topic, p->partition);
        tp->offset = plan.offset;
        /* the list owns it now and frees it */
        tp->metadata = plan.meta;
        tp->metadata_size = plan.meta_len;
    }
    free(all);
    if (!list)
        return;
    rd_kafka_resp_err_t err = rd_kafka_commit(ks->rk, list, async ? 1 : 0);
    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
        atomic_fetch_add(&ks->commit_failures, 1);
        log_warn("offset commit failed", "error", rd_kafka_err2str(err), NULL);
        for (int i = 0; i < list->cnt; i++) {
            struct partition_state *p =
                registry_find(ks, list->elems[i].topic, list->elems[i].partition, false);
            if (p)
                p->sent_offset = -1; /* send again next time */
        }
    } else if (!async) {
        for (int i = 0; i < list->cnt; i++) {
            struct partition_state *p =
                registry_find(ks, list->elems[i].topic, list->elems[i].partition, false);
            if (p && list->elems[i].err == 0)
                atomic_store(&p->committed, list->elems[i].offset);
        }
        atomic_fetch_add(&ks->commits, 1);
    }
    rd_kafka_topic_partition_list_destroy(list);
}

/* ---- the gate ------------------------------------------------------------
 *
 * Two things must see the workers stopped between two messages:
 *  - a scrape, from its snapshot until it has read every counter: its
 *    offsets and the values it renders must be one cut, or an event
 *    applied in between would be shown yet not covered by the commit, and
 *    a crash would count it twice (the pause lasts as long as reading the
 *    counters, about 1.3 ms per 10,000 series);
 *  - a revocation, between committing what was applied and handing the
 *    partitions back: no worker may apply one more of their messages.
 * Workers pass the gate once per batch (a seq_cst store and load: the
 * Dekker pattern against the freezer's store to `frozen` and load of
 * `applying`) and check `frozen` between messages (a relaxed load).
 */

static void gate_enter(struct kafka_source *ks, struct consumer *c)
{
    for (;;) {
        atomic_store(&c->applying, true);
        if (!atomic_load(&ks->frozen))
            return;
        atomic_store_explicit(&c->applying, false, memory_order_release);
        while (atomic_load_explicit(&ks->frozen, memory_order_acquire) &&
               !atomic_load_explicit(&ks->stop, memory_order_relaxed))
            sched_yield();
    }
}

static void gate_leave(struct consumer *c)
{
    /* release: the freezer that sees false sees everything applied */
    atomic_store_explicit(&c->applying, false, memory_order_release);
}

/*
 * Stops every worker at the gate and holds freeze_lock until
 * thaw_appliers. Returns false when a worker did not stop within
 * FREEZE_WAIT_MS (blocked on a full dead-letter queue); the caller then
 * goes on without the guarantee. Any thread except a worker inside the
 * gate (the rebalance callback leaves it first).
 */
static bool freeze_appliers(struct kafka_source *ks)
{
    pthread_mutex_lock(&ks->freeze_lock);
    atomic_store(&ks->frozen, true);
    int64_t deadline = now_ms() + FREEZE_WAIT_MS;
    for (int i = 0; i < ks->consumer_count; i++)
        while (atomic_load(&ks->consumers[i].applying)) {
            if (now_ms() > deadline) {
                log_warn("a worker did not pause within a second; going on without it", NULL);
                return false;
            }
            sched_yield();
        }
    return true;
}

static void thaw_appliers(struct kafka_source *ks)
{
    atomic_store_explicit(&ks->frozen, false, memory_order_release);
    pthread_mutex_unlock(&ks->freeze_lock);
}

/* ---- librdkafka callbacks (consumer threads) ----------------------------- */

static void offset_commit_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                             rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
    struct kafka_source *ks = opaque;
    (void)rk;
    if (err == RD_KAFKA_RESP_ERR__NO_OFFSET)
        return;
    if (err) {
        atomic_fetch_add(&ks->commit_failures, 1);
        log_warn("offset commit failed", "error", rd_kafka_err2str(err), NULL);
    } else {
        atomic_fetch_add(&ks->commits, 1);
    }
    pthread_mutex_lock(&ks->registry_lock);
    for (int i = 0; offsets && i < offsets->cnt; i++) {
        struct partition_state *p =
            registry_find(ks, offsets->elems[i].topic, offsets->elems[i].partition, false);
        if (!p)
            continue;
        if (err || offsets->elems[i].err)
            p->sent_offset = -1; /* send again at the next chance */
        else if (offsets->elems[i].offset > atomic_load(&p->committed))
            atomic_store(&p->committed, offsets->elems[i].offset);
    }
    pthread_mutex_unlock(&ks->registry_lock);
}

/*
 * Takes over the claim of the partition's previous owner from the
 * committed offset's metadata (tp, read at assignment; NULL when that
 * failed). Consumer thread, under registry_lock.
 */
static void inherit_claim(struct kafka_source *ks, struct partition_state *p,
                          const rd_kafka_topic_partition_t *tp)
{
    commit_claim_clear(&p->inherited);
    free(p->inherited_text);
    p->inherited_text = NULL;
    p->inherited_len = 0;
    p->sent_offset = -1;
    if (!tp || tp->err || tp->offset < 0)
        return;
    atomic_store(&p->committed, tp->offset);
    if (!tp->metadata || !tp->metadata_size)
        return;
    char partition[16], upto[24], held[24];
    snprintf(partition, sizeof(partition), "%d", p->partition);
    struct commit_claim claim;
    int rc = commit_claim_decode(tp->metadata, tp->metadata_size, &claim);
    if (rc == -ENOENT)
        return;
    if (rc) {
        log_warn("unreadable commit metadata ignored; events after the committed offset are "
                 "counted again",
                 "topic", p->topic, "partition", partition, NULL);
        return;
    }
    if (claim.schema != ks->schema) {
        log_warn("commit claim from a process with other labels (events.extra_labels) or "
                 "another version's series hash ignored; "
                 "events after the committed offset are counted again",
                 "topic", p->topic, "partition", partition, NULL);
        commit_claim_clear(&claim);
        return;
    }
    p->inherited_text = malloc(tp->metadata_size);
    if (claim.upto <= tp->offset || !p->inherited_text) {
        free(p->inherited_text);
        p->inherited_text = NULL;
        commit_claim_clear(&claim);
        return;
    }
    memcpy(p->inherited_text, tp->metadata, tp->metadata_size);
    p->inherited_len = tp->metadata_size;
    p->inherited = claim;
    snprintf(upto, sizeof(upto), "%lld", (long long)claim.upto);
    size_t held_count = 0;
    for (size_t i = 0; i < claim.segment_count; i++)
        held_count += claim.segments[i].held_count;
    snprintf(held, sizeof(held), "%zu", held_count);
    log_info("resuming under the previous owner's claim: offsets below upto are added to its "
             "held series only",
             "topic", p->topic, "partition", partition, "upto", upto, "held_series", held, NULL);
}

/* The worker with the fewest partitions. Caller holds registry_lock. */
static int pick_worker(struct kafka_source *ks)
{
    int best = 0;
    for (int i = 1; i < ks->consumer_count; i++)
        if (ks->consumers[i].partitions < ks->consumers[best].partitions)
            best = i;
    return best;
}

/* Routes a partition's messages to worker w's queue; before the partition
 * is assigned, so its first message already goes there (librdkafka keeps
 * an application's forwarding when it starts fetching). */
static void route_partition(struct kafka_source *ks, const char *topic, int32_t partition, int w)
{
    rd_kafka_queue_t *q = rd_kafka_queue_get_partition(ks->rk, topic, partition);
    if (!q) {
        log_error("no queue for partition", "topic", topic, NULL);
        return;
    }
    rd_kafka_queue_forward(q, ks->consumers[w].queue);
    rd_kafka_queue_destroy(q);
}

/* Assign: read the committed offsets with their metadata (the previous
 * owner's claim decides how the first messages count), route each
 * partition to a worker, then assign. Revoke: stop every worker, commit,
 * hand back, let them go on. Runs on worker 0 (the consumer queue's
 * poller), outside the gate. */
static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    struct kafka_source *ks = opaque;
    struct consumer *self = &ks->consumers[0];
    bool cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    bool assign = err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS;
    /* Called from a poll inside an applying batch: a scrape must not wait
     * for the round trips below, and the revocation freezes the workers. */
    bool was_applying = atomic_load_explicit(&self->applying, memory_order_relaxed);
    if (was_applying)
        gate_leave(self);
    atomic_fetch_add(&ks->rebalances, 1);

    rd_kafka_topic_partition_list_t *committed = NULL;
    if (assign) {
        committed = rd_kafka_topic_partition_list_copy(parts);
        rd_kafka_resp_err_t cerr = rd_kafka_committed(rk, committed, 10000);
        if (cerr) {
            log_warn("cannot read committed offsets; a previous owner's claim is ignored", "error",
                     rd_kafka_err2str(cerr), NULL);
            rd_kafka_topic_partition_list_destroy(committed);
            committed = NULL;
        }
        pthread_mutex_lock(&ks->registry_lock);
        for (int i = 0; i < parts->cnt; i++) {
            const char *topic = parts->elems[i].topic;
            int32_t partition = parts->elems[i].partition;
            struct partition_state *p = registry_find(ks, topic, partition, true);
            if (!p)
                continue;
            inherit_claim(
                ks, p,
                committed ? rd_kafka_topic_partition_list_find(committed, topic, partition) : NULL);
            p->worker = pick_worker(ks);
            ks->consumers[p->worker].partitions++;
            route_partition(ks, topic, partition, p->worker);
            atomic_store(&p->assigned, true);
        }
        atomic_fetch_add(&ks->assigned, parts->cnt);
        pthread_mutex_unlock(&ks->registry_lock);
        if (committed)
            rd_kafka_topic_partition_list_destroy(committed);
    }

    if (!assign) {
        freeze_appliers(ks); /* on a timeout: a worker stuck on a dead letter, go on */
        pthread_mutex_lock(&ks->registry_lock);
        /*
         * Revoked while we keep running: commit everything applied, since
         * this process keeps serving those counters and a new owner must
         * not add them again. At shutdown only what scrapes observed is
         * committed (the rest dies with the process and must be re-read).
         */
        bool applied_all =
            !atomic_load(&ks->shutting_down) || ks->cfg->kafka_commit_mode == COMMIT_MODE_PERIODIC;
        if (!rd_kafka_assignment_lost(rk))
            commit_owned(ks, parts, applied_all, false);
        for (int i = 0; i < parts->cnt; i++) {
            struct partition_state *p =
                registry_find(ks, parts->elems[i].topic, parts->elems[i].partition, false);
            if (!p || p->worker < 0)
                continue;
            atomic_store(&p->assigned, false);
            ks->consumers[p->worker].partitions--;
            p->worker = -1;
        }
        atomic_fetch_sub(&ks->assigned, parts->cnt);
        pthread_mutex_unlock(&ks->registry_lock);
    }

    if (cooperative) {
        rd_kafka_error_t *error = assign ? rd_kafka_incremental_assign(rk, parts)
                                         : rd_kafka_incremental_unassign(rk, parts);
        if (error) {
            log_error("partition assignment failed", "error", rd_kafka_error_string(error), NULL);
            rd_kafka_error_destroy(error);
        }
    } else {
        rd_kafka_resp_err_t aerr = rd_kafka_assign(rk, assign ? parts : NULL);
        if (aerr)
            log_error("partition assignment failed", "error", rd_kafka_err2str(aerr), NULL);
    }
    if (!assign)
        thaw_appliers(ks);
    char n[16];
    snprintf(n, sizeof(n), "%d", parts->cnt);
    log_info(assign ? "partitions assigned" : "partitions revoked", "count", n, NULL);
    if (was_applying)
        gate_enter(ks, self);
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    struct kafka_source *ks = opaque;
    (void)rk;
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
        atomic_store(&ks->broker_up, false);
    log_warn("kafka", "error", rd_kafka_err2name((rd_kafka_resp_err_t)err), "detail", reason, NULL);
}

/* Broker state from librdkafka's statistics JSON: up when any real broker
 * (nodeid >= 0) is in state UP. */
static int stats_cb(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
    struct kafka_source *ks = opaque;
    (void)rk;
    cJSON *root = cJSON_ParseWithLength(json, len);
    bool up = false;
    const cJSON *brokers = cJSON_GetObjectItemCaseSensitive(root, "brokers");
    for (const cJSON *b = brokers ? brokers->child : NULL; b; b = b->next) {
        const cJSON *state = cJSON_GetObjectItemCaseSensitive(b, "state");
        const cJSON *nodeid = cJSON_GetObjectItemCaseSensitive(b, "nodeid");
        if (cJSON_IsString(state) && strcmp(state->valuestring, "UP") == 0 &&
            cJSON_IsNumber(nodeid) && nodeid->valuedouble >= 0)
            up = true;
    }
    cJSON_Delete(root);
    atomic_store(&ks->broker_up, up);
    return 0; /* librdkafka frees json */
}

/* ---- dead letters -------------------------------------------------------- */

static void dlq_remove(struct partition_state *p, int64_t offset)
{
    pthread_mutex_lock(&p->dlq_lock);
    for (size_t i = 0; i < p->dlq_count; i++) {
        if (p->dlq_pending[i] != offset)
            continue;
        memmove(&p->dlq_pending[i], &p->dlq_pending[i + 1],
                (p->dlq_count - i - 1) * sizeof(int64_t));
        p->dlq_count--;
        break;
    }
    pthread_mutex_unlock(&p->dlq_lock);
}

/* block: wait for room when the producer queue is full (the DLQ thread
 * keeps polling); not from the delivery callback, which runs on that very
 * thread. */
static int dlq_produce(struct kafka_source *ks, struct dlq_ref *ref, const void *payload,
                       size_t len, const void *key, size_t key_len, bool block)
{
    char partition[16], offset[24];
    snprintf(partition, sizeof(partition), "%d", ref->state->partition);
    snprintf(offset, sizeof(offset), "%lld", (long long)ref->offset);
    const char *topic = ref->state->topic;
    /* last read of *ref on this thread before the callback may free it */
    HANDOVER_RELEASE(ref);
    rd_kafka_resp_err_t err = rd_kafka_producev(
        ks->dlq, RD_KAFKA_V_TOPIC(ks->cfg->kafka_dlq_topic),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY | (block ? RD_KAFKA_MSG_F_BLOCK : 0)),
        RD_KAFKA_V_VALUE((void *)payload, len), RD_KAFKA_V_KEY((void *)key, key_len),
        RD_KAFKA_V_HEADER("ai_finops_reason", ref->reason, -1),
        RD_KAFKA_V_HEADER("ai_finops_source_topic", topic, -1),
        RD_KAFKA_V_HEADER("ai_finops_source_partition", partition, -1),
        RD_KAFKA_V_HEADER("ai_finops_source_offset", offset, -1), RD_KAFKA_V_OPAQUE(ref),
        RD_KAFKA_V_END);
    return err ? -EIO : 0;
}

static void dlq_delivery_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct kafka_source *ks = opaque;
    struct dlq_ref *ref = m->_private;
    (void)rk;
    HANDOVER_ACQUIRE(ref);
    if (m->err) {
        /* Keep the offset pending (it is never committed) and try again:
         * losing a dead letter would lose the event. */
        atomic_fetch_add(&ks->dlq_failures, 1);
        log_warn("dead letter not delivered; retrying", "error", rd_kafka_err2str(m->err), NULL);
        if (!atomic_load(&ks->stop) &&
            dlq_produce(ks, ref, m->payload, m->len, m->key, m->key_len, false) == 0)
            return;
    } else {
        atomic_fetch_add(&ks->dlq_produced, 1);
        dlq_remove(ref->state, ref->offset);
        atomic_store(&ks->dlq_acked, true);
    }
    free(ref);
}

static void *dlq_poll_main(void *arg)
{
    struct kafka_source *ks = arg;
    while (!atomic_load(&ks->stop)) {
        rd_kafka_poll(ks->dlq, POLL_MS);
        /* An acknowledged letter may release offsets a scrape already
         * observed: commit them now rather than at the next scrape, which
         * would leave them open to a double count after a crash. Once per
         * poll batch, not per letter. */
        if (atomic_exchange(&ks->dlq_acked, false) &&
            ks->cfg->kafka_commit_mode == COMMIT_MODE_SCRAPE && !atomic_load(&ks->shutting_down)) {
            pthread_mutex_lock(&ks->registry_lock);
            commit_owned(ks, NULL, false, true);
            pthread_mutex_unlock(&ks->registry_lock);
        }
    }
    return NULL;
}

/* Consumer thread: registers the pending dead letter, then sends it. */
static void dead_letter(struct kafka_source *ks, struct partition_state *p,
                        const rd_kafka_message_t *m, enum reject_reason reason)
{
    struct dlq_ref *ref = calloc(1, sizeof(*ref));
    if (!ref)
        goto fail;
    ref->state = p;
    ref->offset = m->offset;
    snprintf(ref->reason, sizeof(ref->reason), "%s", reject_reason_name(reason));
    pthread_mutex_lock(&p->dlq_lock);
    if (p->dlq_count == p->dlq_cap) {
        size_t cap = p->dlq_cap ? p->dlq_cap * 2 : 16;
        int64_t *pending = realloc(p->dlq_pending, cap * sizeof(int64_t));
        if (!pending) {
            pthread_mutex_unlock(&p->dlq_lock);
            free(ref);
            goto fail;
        }
        p->dlq_pending = pending;
        p->dlq_cap = cap;
    }
    p->dlq_pending[p->dlq_count++] = m->offset;
    pthread_mutex_unlock(&p->dlq_lock);
    if (dlq_produce(ks, ref, m->payload, m->len, m->key, m->key_len, true) == 0)
        return;
    /* The offset stays pending, so it is never committed: the next owner
     * re-reads this event and tries again. Nothing is lost. */
    free(ref);
    atomic_fetch_add(&ks->dlq_failures, 1);
    log_error("cannot queue dead letter; its offset stays uncommitted", "topic", p->topic, NULL);
    return;
fail:
    atomic_fetch_add(&ks->dlq_failures, 1);
    log_error("out of memory queueing a dead letter", "topic", p->topic, NULL);
}

/* ---- consumer threads -------------------------------------------------- */

static struct partition_state *state_for(struct consumer *c, const rd_kafka_message_t *m)
{
    if (c->cache_state && c->cache_rkt == m->rkt && c->cache_partition == m->partition)
        return c->cache_state;
    struct kafka_source *ks = c->source;
    pthread_mutex_lock(&ks->registry_lock);
    struct partition_state *p = registry_find(ks, rd_kafka_topic_name(m->rkt), m->partition, true);
    pthread_mutex_unlock(&ks->registry_lock);
    c->cache_rkt = m->rkt;
    c->cache_partition = m->partition;
    c->cache_state = p;
    return p;
}

static bool claim_holds(const void *ctx, enum metric_family family, uint64_t hash)
{
    return claim_segment_holds(ctx, (unsigned)family, hash);
}

static void handle_message(struct consumer *c, rd_kafka_message_t *m)
{
    struct kafka_source *ks = c->source;
    if (m->err) {
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            log_warn("consume error", "error", rd_kafka_message_errstr(m), NULL);
        return;
    }
    /* a load first: this line is shared by the workers */
    if (!atomic_load_explicit(&ks->broker_up, memory_order_relaxed))
        atomic_store_explicit(&ks->broker_up, true, memory_order_relaxed);
    struct partition_state *p = state_for(c, m);
    /* A message of a partition revoked while this worker held it: the
     * revocation committed without it, so the next owner counts it. */
    if (!p || !atomic_load_explicit(&p->assigned, memory_order_relaxed))
        return;
    if (m->offset <= atomic_load_explicit(&p->applied, memory_order_relaxed)) {
        atomic_fetch_add_explicit(&ks->duplicates, 1, memory_order_relaxed);
        return;
    }
    /* Series this event creates remember it, so a scrape that first shows
     * them knows which offsets it did not make visible yet. */
    counter_table_set_origin(p->index + 1, m->offset);
    const char *payload = m->payload ? m->payload : "";
    size_t len = m->payload ? m->len : 0;
    if (m->offset < p->inherited.upto) {
        /* Counted by the previous owner, and seen by scrapes except in its
         * held series: add it to those only, and re-send its dead letter
         * only if that was never acknowledged. */
        struct series_filter held = {claim_holds, commit_claim_segment(&p->inherited, m->offset)};
        enum reject_reason reason = ingest_replay(c->worker, payload, len, &held);
        if (reason != REJECT_NONE && ks->dlq && commit_claim_dead_letter(&p->inherited, m->offset))
            dead_letter(ks, p, m, reason);
        atomic_fetch_add_explicit(&ks->replayed, 1, memory_order_relaxed);
        atomic_store_explicit(&p->applied, m->offset, memory_order_release);
        return;
    }
    enum reject_reason reason = ingest_process(c->worker, payload, len);
    if (reason != REJECT_NONE && ks->dlq)
        dead_letter(ks, p, m, reason);
    /* release: a scrape that reads this offset (acquire) then sees the
     * counter increments and the pending dead letter made above. */
    atomic_store_explicit(&p->applied, m->offset, memory_order_release);
}

/* Worker 0 polls the consumer queue, which also serves the group's
 * callbacks; the others their own queues. */
static rd_kafka_message_t *next_message(struct consumer *c, int timeout_ms)
{
    return c->index == 0 ? rd_kafka_consumer_poll(c->source->rk, timeout_ms)
                         : rd_kafka_consume_queue(c->queue, timeout_ms);
}

static void *consumer_main(void *arg)
{
    struct consumer *c = arg;
    struct kafka_source *ks = c->source;
    int64_t next_periodic = now_ms() + ks->cfg->kafka_commit_interval_ms;
    while (!atomic_load_explicit(&ks->stop, memory_order_relaxed)) {
        /* Without waiting first: a poll with a timeout reads the clock
         * several times per message in librdkafka 2.0.2 (about a tenth of
         * the CPU while draining). */
        rd_kafka_message_t *m = next_message(c, 0);
        if (!m)
            m = next_message(c, POLL_MS);
        if (m) {
            /* A batch through the gate; a freezing scrape waits at most
             * one message. */
            int n = 0;
            gate_enter(ks, c);
            do {
                handle_message(c, m);
                rd_kafka_message_destroy(m);
            } while (!atomic_load_explicit(&ks->frozen, memory_order_relaxed) && ++n < BATCH_MAX &&
                     (m = next_message(c, 0)) != NULL);
            gate_leave(c);
        }
        if (c->index == 0 && ks->cfg->kafka_commit_mode == COMMIT_MODE_PERIODIC &&
            now_ms() >= next_periodic) {
            pthread_mutex_lock(&ks->registry_lock);
            commit_owned(ks, NULL, true, true);
            pthread_mutex_unlock(&ks->registry_lock);
            next_periodic = now_ms() + ks->cfg->kafka_commit_interval_ms;
        }
    }
    return NULL;
}

/* ---- scrape hooks (HTTP thread) ---------------------------------------- */

static void ks_scrape_started(struct event_source *src, uint64_t scrape_id, uint32_t viewer)
{
    struct kafka_source *ks = (struct kafka_source *)src;
    /* before registry_lock: an applier in a rebalance callback may wait for it */
    bool frozen = true;
    if (ks->gated) {
        ks->freeze_held = true;
        frozen = freeze_appliers(ks);
    }
    pthread_mutex_lock(&ks->registry_lock);
    struct snapshot *s = &ks->snapshots[ks->snapshot_next++ % MAX_SNAPSHOTS];
    size_t n = ks->part_count + 1;
    int64_t *applied = realloc(s->applied, n * sizeof(int64_t));
    if (applied)
        s->applied = applied;
    int64_t *first = realloc(s->first_shown, n * sizeof(int64_t));
    if (first)
        s->first_shown = first;
    ks->rendering = NULL;
    s->scrape_id = 0;
    if (applied && first) {
        s->scrape_id = scrape_id;
        s->viewer = viewer;
        s->count = ks->part_count;
        s->unknown_first = false;
        s->spread_first = false;
        s->unfrozen = !frozen;
        s->sighted_count = 0;
        for (size_t i = 0; i < ks->part_count; i++) {
            /* acquire: pairs with the consumer's release store, so the
             * render that follows includes every increment up to here. */
            s->applied[i] = atomic_load_explicit(&ks->parts[i]->applied, memory_order_acquire);
            s->first_shown[i] = INT64_MAX;
        }
        ks->rendering = s;
    }
    pthread_mutex_unlock(&ks->registry_lock);
}

/* During the render that follows ks_scrape_started (same HTTP thread, so
 * `rendering` needs no lock). */
static void ks_scrape_first_sight(struct event_source *src, const struct first_sight *fs)
{
    struct kafka_source *ks = (struct kafka_source *)src;
    struct snapshot *s = ks->rendering;
    if (!s)
        return;
    if (!fs->known) {
        s->unknown_first = true;
        return;
    }
    if (s->sighted_count == s->sighted_cap) {
        size_t cap = s->sighted_cap ? s->sighted_cap * 2 : 64;
        struct first_sight *grown = realloc(s->sighted, cap * sizeof(*grown));
        if (!grown) {
            s->unknown_first = true; /* cannot name it: claim nothing */
            return;
        }
        s->sighted = grown;
        s->sighted_cap = cap;
    }
    s->sighted[s->sighted_count++] = *fs;
    if (sighted_everywhere(fs))
        s->spread_first = true;
    else if (fs->origin - 1 < s->count && fs->origin_offset < s->first_shown[fs->origin - 1])
        s->first_shown[fs->origin - 1] = fs->origin_offset;
    /* a partition registered after the snapshot is not committed by it */
}

/* Ends the scrape's freeze (HTTP thread). */
static void end_scrape_freeze(struct kafka_source *ks)
{
    if (!ks->freeze_held)
        return;
    ks->freeze_held = false;
    thaw_appliers(ks);
}

static void ks_scrape_counters_read(struct event_source *src)
{
    end_scrape_freeze((struct kafka_source *)src);
}

static void ks_scrape_completed(struct event_source *src, uint64_t scrape_id, uint32_t viewer)
{
    struct kafka_source *ks = (struct kafka_source *)src;
    end_scrape_freeze(ks); /* in case the render never said it had read the counters */
    int v = __builtin_ctz(viewer);
    pthread_mutex_lock(&ks->registry_lock);
    for (size_t k = 0; k < MAX_SNAPSHOTS; k++) {
        struct snapshot *s = &ks->snapshots[k];
        if (s->scrape_id != scrape_id || !s->applied)
            continue;
        if (ks->rendering == s)
            ks->rendering = NULL;
        struct viewer_claim *vc = &ks->viewer_claims[v];
        bool newest = s->scrape_id > vc->scrape_id;
        for (size_t i = 0; i < s->count; i++) {
            struct partition_state *p = ks->parts[i];
            /*
             * Everything in the snapshot is visible to increase() now,
             * except events in series this scrape showed for the first
             * time (as 0): those series were created by this partition at
             * first_shown or later. A series of unknown origin, or fed by
             * several partitions, falls back to the previous completed
             * snapshot, whose events were all in series this viewer had
             * already been shown.
             */
            int64_t seen = s->applied[i];
            if (newest) /* the claim: all of it but the first-shown series */
                p->claim_upto[v] =
                    s->unknown_first || s->unfrozen ? p->last_done[v] : s->applied[i];
            if (s->unknown_first || s->spread_first)
                seen = p->last_done[v];
            else if (s->first_shown[i] != INT64_MAX && s->first_shown[i] - 1 < seen)
                seen = s->first_shown[i] - 1;
            if (seen > p->observed_by[v])
                p->observed_by[v] = seen;
            if (s->applied[i] > p->last_done[v])
                p->last_done[v] = s->applied[i];
        }
        if (newest) {
            /* swap: the snapshot's list becomes the viewer's, and the
             * viewer's old buffer is reused by a later snapshot */
            struct first_sight *sighted = vc->sighted;
            size_t cap = vc->sighted_cap;
            vc->sighted = s->sighted;
            vc->sighted_cap = s->sighted_cap;
            vc->sighted_count = s->sighted_count;
            vc->scrape_id = s->scrape_id;
            s->sighted = sighted;
            s->sighted_cap = cap;
            s->sighted_count = 0;
        }
        s->scrape_id = 0;
        break;
    }
    if (ks->cfg->kafka_commit_mode == COMMIT_MODE_SCRAPE && !atomic_load(&ks->shutting_down))
        commit_owned(ks, NULL, false, true);
    pthread_mutex_unlock(&ks->registry_lock);
}

/* ---- self-metrics (HTTP thread) ---------------------------------------- */

static void render_counter(struct dynbuf *b, enum expo_format fmt, const char *base,
                           const char *help, uint64_t value)
{
    expo_family(b, fmt, base, "counter", help);
    dynbuf_printf(b, "%s_total", base);
    expo_value_u64(b, value);
}

static void collect(struct dynbuf *b, enum expo_format fmt, void *ctx)
{
    struct kafka_source *ks = ctx;
    int assigned = atomic_load(&ks->assigned);
    int up = atomic_load(&ks->broker_up);
    expo_family(b, fmt, "ai_finops_kafka_assigned_partitions", "gauge",
                "Partitions assigned to this process's consumers.");
    dynbuf_append_str(b, "ai_finops_kafka_assigned_partitions");
    expo_value_u64(b, (uint64_t)(assigned < 0 ? 0 : assigned));
    expo_family(b, fmt, "ai_finops_kafka_broker_up", "gauge",
                "1 when a consumer is connected to a Kafka broker.");
    dynbuf_append_str(b, "ai_finops_kafka_broker_up");
    expo_value_u64(b, (uint64_t)up);
    render_counter(b, fmt, "ai_finops_kafka_rebalances", "Rebalance events (assign and revoke).",
                   atomic_load(&ks->rebalances));
    render_counter(b, fmt, "ai_finops_kafka_commits", "Successful offset commits.",
                   atomic_load(&ks->commits));
    render_counter(b, fmt, "ai_finops_kafka_commit_failures", "Failed offset commits.",
                   atomic_load(&ks->commit_failures));
    render_counter(b, fmt, "ai_finops_kafka_duplicates_skipped",
                   "Redelivered messages at or below the partition's applied offset, skipped.",
                   atomic_load(&ks->duplicates));
    render_counter(b, fmt, "ai_finops_kafka_claim_replayed",
                   "Re-read messages a previous owner had counted, added only to the series its "
                   "commit claim held (docs/delivery.md).",
                   atomic_load(&ks->replayed));
    render_counter(b, fmt, "ai_finops_kafka_claims_cut",
                   "Commit claims shortened to fit kafka.commit_metadata_max_bytes (a crash then "
                   "re-counts the events past the cut).",
                   atomic_load(&ks->claims_cut));
    render_counter(b, fmt, "ai_finops_dlq_produced", "Dead letters acknowledged by the broker.",
                   atomic_load(&ks->dlq_produced));
    render_counter(b, fmt, "ai_finops_dlq_failures",
                   "Dead letters that failed to send (retried; their offsets stay uncommitted).",
                   atomic_load(&ks->dlq_failures));

    pthread_mutex_lock(&ks->registry_lock);
    static const char *const names[] = {"topic", "partition"};
    const char *families[][2] = {
        {"ai_finops_kafka_consumer_lag", "Messages behind the partition's high watermark."},
        {"ai_finops_kafka_applied_offset", "Highest offset added to the counters."},
        {"ai_finops_kafka_committed_offset", "Next offset committed for the group."},
        {"ai_finops_dlq_pending", "Dead letters not yet acknowledged."},
    };
    for (int f = 0; f < 4; f++) {
        expo_family(b, fmt, families[f][0], "gauge", families[f][1]);
        for (size_t i = 0; i < ks->part_count; i++) {
            struct partition_state *p = ks->parts[i];
            if (p->worker < 0)
                continue;
            int64_t applied = atomic_load(&p->applied), value = 0;
            if (f == 0) {
                int64_t lo = 0, hi = 0;
                if (rd_kafka_get_watermark_offsets(ks->rk, p->topic, p->partition, &lo, &hi) == 0 &&
                    hi > 0) {
                    int64_t next = applied >= 0 ? applied + 1 : lo;
                    value = hi > next ? hi - next : 0;
                }
            } else if (f == 1) {
                value = applied;
            } else if (f == 2) {
                value = atomic_load(&p->committed);
            } else {
                pthread_mutex_lock(&p->dlq_lock);
                value = (int64_t)p->dlq_count;
                pthread_mutex_unlock(&p->dlq_lock);
            }
            char part[16];
            snprintf(part, sizeof(part), "%d", p->partition);
            struct label_value lv[2] = {{p->topic, (uint32_t)strlen(p->topic)},
                                        {part, (uint32_t)strlen(part)}};
            dynbuf_append_str(b, families[f][0]);
            expo_labels(b, names, lv, 2);
            dynbuf_printf(b, " %lld\n", (long long)value);
        }
    }
    pthread_mutex_unlock(&ks->registry_lock);
}

/* ---- lifecycle (main thread) ------------------------------------------- */

static int set_conf(rd_kafka_conf_t *conf, const char *key, const char *value, char *errbuf,
                    size_t errlen)
{
    char err[512];
    if (rd_kafka_conf_set(conf, key, value, err, sizeof(err)) == RD_KAFKA_CONF_OK)
        return 0;
    snprintf(errbuf, errlen, "kafka property '%s': %s (fix kafka.properties in the config)", key,
             err);
    return -EINVAL;
}

static void rdkafka_log(const rd_kafka_t *rk, int level, const char *facility, const char *buf)
{
    (void)rk;
    /* syslog levels: 0-3 error, 4 warning, 5-6 info, 7 debug */
    enum log_level l = level <= 3   ? LOG_LEVEL_ERROR
                       : level == 4 ? LOG_LEVEL_WARN
                       : level <= 6 ? LOG_LEVEL_INFO
                                    : LOG_LEVEL_DEBUG;
    log_write(l, "librdkafka", "facility", facility, "detail", buf, NULL);
}

/* Our defaults first, so kafka.properties can override them. */
/*
 * kafka.properties go to both clients (the consumer and the dead-letter
 * producer) except keys only the other type reads, which librdkafka would
 * warn about at start (CONFWARN). Prefixes end in '.'.
 */
static bool property_applies(const char *key, rd_kafka_type_t type)
{
    static const char *const consumer_only[] = {"group.",
                                                "session.timeout.ms",
                                                "heartbeat.interval.ms",
                                                "partition.assignment.strategy",
                                                "auto.offset.reset",
                                                "enable.auto.commit",
                                                "auto.commit.interval.ms",
                                                "enable.auto.offset.store",
                                                "queued.",
                                                "fetch.",
                                                "max.poll.interval.ms",
                                                "max.partition.fetch.bytes",
                                                "isolation.level",
                                                "check.crcs",
                                                "enable.partition.eof",
                                                "coordinator.query.interval.ms",
                                                "consume.callback.max.messages",
                                                "offset.store.",
                                                NULL};
    static const char *const producer_only[] = {"acks",
                                                "request.required.acks",
                                                "linger.ms",
                                                "queue.buffering.",
                                                "batch.",
                                                "compression.",
                                                "message.timeout.ms",
                                                "delivery.timeout.ms",
                                                "enable.idempotence",
                                                "transactional.id",
                                                "transaction.timeout.ms",
                                                "retries",
                                                "message.send.max.retries",
                                                "retry.backoff.ms",
                                                "partitioner",
                                                "sticky.partitioning.linger.ms",
                                                "enable.gapless.guarantee",
                                                "request.timeout.ms",
                                                "message.copy.max.bytes",
                                                NULL};
    const char *const *other = type == RD_KAFKA_PRODUCER ? consumer_only : producer_only;
    for (size_t i = 0; other[i]; i++) {
        size_t n = strlen(other[i]);
        if (other[i][n - 1] == '.' ? strncmp(key, other[i], n) == 0 : strcmp(key, other[i]) == 0)
            return false;
    }
    return true;
}

static rd_kafka_conf_t *base_conf(const struct exporter_config *cfg, rd_kafka_type_t type,
                                  const char *const *defaults, char *errbuf, size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, rdkafka_log);
    if (set_conf(conf, "bootstrap.servers", cfg->kafka_brokers, errbuf, errlen))
        goto fail;
    for (size_t i = 0; defaults && defaults[i]; i += 2)
        if (set_conf(conf, defaults[i], defaults[i + 1], errbuf, errlen))
            goto fail;
    for (size_t i = 0; i < cfg->kafka_properties.count; i++)
        if (property_applies(cfg->kafka_properties.keys[i], type) &&
            set_conf(conf, cfg->kafka_properties.keys[i], cfg->kafka_properties.values[i], errbuf,
                     errlen))
            goto fail;
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

/* The one group member. Subscribed by subscribe() once the workers'
 * queues exist. */
static int member_init(struct kafka_source *ks, char *errbuf, size_t errlen)
{
    const struct exporter_config *cfg = ks->cfg;
    /* librdkafka before 2.2 stops fetching for a fixed second whenever the
     * consumer queue holds queued.min.messages: at the default 100,000 a
     * consumer that drains a backlog at over a million events/s idles most
     * of each second. A deeper queue (bounded in bytes) keeps it fed. */
    static const char *const defaults[] = {"auto.offset.reset",
                                           "earliest",
                                           "statistics.interval.ms",
                                           "1000",
                                           "queued.min.messages",
                                           "2000000",
                                           "queued.max.messages.kbytes",
                                           "524288",
                                           NULL};
    rd_kafka_conf_t *conf = base_conf(cfg, RD_KAFKA_CONSUMER, defaults, errbuf, errlen);
    if (!conf)
        return -EINVAL;
    /* Ours, applied after the user's properties: the delivery guarantees
     * depend on them. */
    if (set_conf(conf, "group.id", cfg->kafka_group_id, errbuf, errlen) ||
        set_conf(conf, "client.id", "ai-finops-exporter", errbuf, errlen) ||
        set_conf(conf, "enable.auto.commit", "false", errbuf, errlen) ||
        set_conf(conf, "enable.auto.offset.store", "false", errbuf, errlen) ||
        set_conf(conf, "partition.assignment.strategy", "cooperative-sticky", errbuf, errlen)) {
        rd_kafka_conf_destroy(conf);
        return -EINVAL;
    }
    rd_kafka_conf_set_opaque(conf, ks);
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_conf_set_offset_commit_cb(conf, offset_commit_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    rd_kafka_conf_set_stats_cb(conf, stats_cb);
    char err[512];
    ks->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    if (!ks->rk) {
        snprintf(errbuf, errlen, "cannot create Kafka consumer: %s", err);
        return -EINVAL; /* rd_kafka_new destroyed conf */
    }
    rd_kafka_poll_set_consumer(ks->rk);
    return 0;
}

static int worker_init(struct kafka_source *ks, struct consumer *c)
{
    c->queue = c->index == 0 ? rd_kafka_queue_get_consumer(ks->rk) : rd_kafka_queue_new(ks->rk);
    c->worker = ingest_worker_new(ks->ingest);
    return c->queue && c->worker ? 0 : -ENOMEM;
}

static int subscribe(struct kafka_source *ks, char *errbuf, size_t errlen)
{
    const struct exporter_config *cfg = ks->cfg;
    rd_kafka_topic_partition_list_t *topics =
        rd_kafka_topic_partition_list_new((int)cfg->kafka_topics.count);
    for (size_t i = 0; i < cfg->kafka_topics.count; i++)
        rd_kafka_topic_partition_list_add(topics, cfg->kafka_topics.items[i],
                                          RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t serr = rd_kafka_subscribe(ks->rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (serr) {
        snprintf(errbuf, errlen, "cannot subscribe: %s", rd_kafka_err2str(serr));
        return -EINVAL;
    }
    return 0;
}

static int dlq_init(struct kafka_source *ks, char *errbuf, size_t errlen)
{
    /* No idempotence: acquiring a producer id delays the first letter by
     * most of a second, and every unacknowledged letter holds back its
     * partition's commit. Dead letters are at-least-once anyway. */
    static const char *const defaults[] = {"linger.ms", "5", "acks", "all", NULL};
    rd_kafka_conf_t *conf = base_conf(ks->cfg, RD_KAFKA_PRODUCER, defaults, errbuf, errlen);
    if (!conf)
        return -EINVAL;
    rd_kafka_conf_set_opaque(conf, ks);
    rd_kafka_conf_set_dr_msg_cb(conf, dlq_delivery_cb);
    char err[512];
    ks->dlq = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!ks->dlq) {
        snprintf(errbuf, errlen, "cannot create dead-letter producer: %s", err);
        return -EINVAL;
    }
    return 0;
}

/* Learns the dead-letter topic's leader before consuming: otherwise the
 * first letter waits for a metadata round (most of a second), and every
 * offset behind it stays uncommitted that long. Not fatal: letters still
 * go out once the broker answers. */
static void dlq_warm_up(struct kafka_source *ks)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(ks->dlq, ks->cfg->kafka_dlq_topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err =
        rkt ? rd_kafka_metadata(ks->dlq, 0, rkt, &md, 5000) : RD_KAFKA_RESP_ERR__FAIL;
    if (err)
        log_warn("dead-letter topic metadata not available yet", "topic", ks->cfg->kafka_dlq_topic,
                 "error", rd_kafka_err2str(err), NULL);
    else if (md->topic_cnt == 1 && md->topics[0].err)
        log_warn("dead-letter topic problem", "topic", ks->cfg->kafka_dlq_topic, "error",
                 rd_kafka_err2str(md->topics[0].err), NULL);
    if (md)
        rd_kafka_metadata_destroy(md);
    if (rkt)
        rd_kafka_topic_destroy(rkt);
}

static int ks_start(struct event_source *src, char *errbuf, size_t errlen)
{
    struct kafka_source *ks = (struct kafka_source *)src;
    if (ks->dlq) {
        dlq_warm_up(ks);
        int rc = pthread_create(&ks->dlq_thread, NULL, dlq_poll_main, ks);
        if (rc) {
            snprintf(errbuf, errlen, "cannot start dead-letter thread: %s", strerror(rc));
            return -rc;
        }
        ks->dlq_thread_started = true;
    }
    for (int i = 0; i < ks->consumer_count; i++) {
        int rc = pthread_create(&ks->consumers[i].thread, NULL, consumer_main, &ks->consumers[i]);
        if (rc) {
            snprintf(errbuf, errlen, "cannot start consumer thread: %s", strerror(rc));
            return -rc;
        }
        ks->consumers[i].started = true;
    }
    return 0;
}

/* All applied events observed by every required viewer, and no dead
 * letter pending? Caller holds registry_lock. */
static bool all_observed(struct kafka_source *ks)
{
    for (size_t i = 0; i < ks->part_count; i++) {
        struct partition_state *p = ks->parts[i];
        if (p->worker < 0)
            continue;
        if (commit_target(ks, p, false) <= atomic_load(&p->applied))
            return false;
    }
    return true;
}

static void ks_stop(struct event_source *src)
{
    struct kafka_source *ks = (struct kafka_source *)src;
    if (atomic_exchange(&ks->shutting_down, true))
        return;
    /* 1. Stop consuming; nothing new is applied from here on. */
    atomic_store(&ks->stop, true);
    for (int i = 0; i < ks->consumer_count; i++)
        if (ks->consumers[i].started) {
            pthread_join(ks->consumers[i].thread, NULL);
            ks->consumers[i].started = false;
        }
    /* 2. Keep serving scrapes until Prometheus has seen everything applied
     * (or the wait runs out), while dead letters drain. */
    if (ks->dlq) {
        if (ks->dlq_thread_started) {
            pthread_join(ks->dlq_thread, NULL);
            ks->dlq_thread_started = false;
        }
    }
    int64_t deadline = now_ms() + ks->cfg->kafka_shutdown_scrape_wait_ms;
    bool done = ks->cfg->kafka_commit_mode == COMMIT_MODE_PERIODIC;
    while (!done && now_ms() < deadline) {
        if (ks->dlq)
            rd_kafka_poll(ks->dlq, 0);
        pthread_mutex_lock(&ks->registry_lock);
        done = all_observed(ks);
        pthread_mutex_unlock(&ks->registry_lock);
        if (!done)
            usleep(50 * 1000);
    }
    if (!done)
        log_warn("shutdown: not every applied event was scraped in time; the rest will be "
                 "re-read by the next owner",
                 NULL);
    if (ks->dlq)
        rd_kafka_flush(ks->dlq, 5000);
    /* 3. Commit what was observed (everything applied, in periodic mode),
     * then leave the group; the revoke callback commits the same. */
    pthread_mutex_lock(&ks->registry_lock);
    commit_owned(ks, NULL, ks->cfg->kafka_commit_mode == COMMIT_MODE_PERIODIC, false);
    pthread_mutex_unlock(&ks->registry_lock);
    if (ks->rk)
        rd_kafka_consumer_close(ks->rk);
    log_info("kafka consumer closed", NULL);
}

static bool ks_ready(struct event_source *src)
{
    struct kafka_source *ks = (struct kafka_source *)src;
    if (atomic_load(&ks->shutting_down))
        return false;
    return atomic_load(&ks->broker_up) && atomic_load(&ks->assigned) > 0;
}

static void ks_free_memory(struct kafka_source *ks)
{
    for (size_t i = 0; i < ks->part_count; i++)
        partition_free(ks->parts[i]);
    free(ks->parts);
    for (int k = 0; k < MAX_SNAPSHOTS; k++) {
        free(ks->snapshots[k].applied);
        free(ks->snapshots[k].first_shown);
        free(ks->snapshots[k].sighted);
    }
    for (int v = 0; v < MAX_VIEWERS; v++)
        free(ks->viewer_claims[v].sighted);
    free(ks->consumers);
    pthread_mutex_destroy(&ks->registry_lock);
    pthread_mutex_destroy(&ks->freeze_lock);
    free(ks);
}

/* Destroys the librdkafka handles and workers, then frees everything. */
static void ks_release(struct kafka_source *ks)
{
    for (int i = 0; ks->consumers && i < ks->consumer_count; i++) {
        if (ks->consumers[i].queue)
            rd_kafka_queue_destroy(ks->consumers[i].queue);
        ingest_worker_free(ks->consumers[i].worker);
    }
    if (ks->rk)
        rd_kafka_destroy(ks->rk);
    if (ks->dlq)
        rd_kafka_destroy(ks->dlq);
    ks_free_memory(ks);
}

/* Call after the HTTP server stopped: the collector reads this state. */
static void ks_destroy(struct event_source *src)
{
    struct kafka_source *ks = (struct kafka_source *)src;
    if (!ks)
        return;
    ks_stop(src);
    pthread_mutex_lock(&ks->registry_lock);
    for (size_t i = 0; i < ks->part_count; i++)
        ks->parts[i]->worker = -1; /* the collector must not touch the closed handle */
    pthread_mutex_unlock(&ks->registry_lock);
    ks_release(ks);
}

static const struct event_source_ops kafka_source_ops = {
    .name = "kafka",
    .start = ks_start,
    .stop = ks_stop,
    .ready = ks_ready,
    .destroy = ks_destroy,
    .scrape_started = ks_scrape_started,
    .scrape_first_sight = ks_scrape_first_sight,
    .scrape_counters_read = ks_scrape_counters_read,
    .scrape_completed = ks_scrape_completed,
};

struct event_source *kafka_source_new(const struct exporter_config *cfg, struct ingest *ingest,
                                      struct metrics *metrics, char *errbuf, size_t errlen)
{
    struct kafka_source *ks = calloc(1, sizeof(*ks));
    if (!ks) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    ks->base.ops = &kafka_source_ops;
    ks->cfg = cfg;
    ks->ingest = ingest;
    ks->schema = metrics_schema_hash(metrics);
    ks->gated = cfg->kafka_commit_mode == COMMIT_MODE_SCRAPE;
    pthread_mutex_init(&ks->registry_lock, NULL);
    pthread_mutex_init(&ks->freeze_lock, NULL);
    size_t replicas = cfg->kafka_commit_replicas.count;
    ks->required_viewers = replicas ? (replicas >= 31 ? 0x7fffffffu : (1u << replicas) - 1) : 1u;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    ks->consumer_count =
        cfg->kafka_threads > 0 ? (int)cfg->kafka_threads : (int)(cores > 0 ? cores : 1);
    ks->consumers = calloc((size_t)ks->consumer_count, sizeof(*ks->consumers));
    if (!ks->consumers) {
        snprintf(errbuf, errlen, "out of memory");
        goto fail;
    }
    if (cfg->kafka_dlq_topic && cfg->kafka_dlq_topic[0] && dlq_init(ks, errbuf, errlen))
        goto fail;
    if (member_init(ks, errbuf, errlen))
        goto fail;
    for (int i = 0; i < ks->consumer_count; i++) {
        ks->consumers[i].source = ks;
        ks->consumers[i].index = i;
        if (worker_init(ks, &ks->consumers[i])) {
            snprintf(errbuf, errlen, "out of memory");
            goto fail;
        }
    }
    if (subscribe(ks, errbuf, errlen))
        goto fail;
    if (metrics_add_collector(metrics, collect, ks)) {
        snprintf(errbuf, errlen, "too many metric collectors");
        goto fail;
    }
    return &ks->base;
fail:
    ks_release(ks);
    return NULL;
}

/*
 * ledger.c - what each partition has applied, what scrapes showed and what
 * may be committed: the partition registry, scrape snapshots, viewer
 * claims, commit planning (offset and claim, see commit_claim.h) and the
 * commit itself, plus the scrape hooks that feed it (docs/delivery.md).
 *
 * A scrape snapshots every partition's `applied` before it renders
 * (acquire: the counters then hold at least those events). When the scrape
 * was sent completely, its snapshot becomes observed, except below the
 * creating offset of any series it showed for the first time (as 0, see
 * counter_table_foreach): each series remembers the partition and offset
 * of the event that created it. The commit is the minimum over the
 * required viewers, never past a dead letter not yet acknowledged, and is
 * sent at once (and again when a dead letter is acknowledged).
 *
 * The ledger_* functions are plain functions over struct ledger (no
 * broker, no threads): tests/test_kafka_ledger.c drives them directly.
 * Threads: the scrape thread (scrape hooks, commits after a scrape), worker
 * 0 (assignment, revocation, periodic commits, commit results), the
 * dead-letter thread (commits after an acknowledged letter), the main
 * thread (shutdown). Every ledger_* function but init, free and
 * snapshot_sight runs under registry_lock; commit_target and plan_claim
 * take a partition's dlq_lock inside it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "kafka_internal.h"
#include "log.h"

void ledger_init(struct ledger *l, uint32_t required_viewers, bool claims, size_t claim_max_bytes,
                 uint64_t schema)
{
    l->required_viewers = required_viewers;
    l->claims = claims;
    l->claim_max_bytes = claim_max_bytes;
    l->schema = schema;
    pthread_mutex_init(&l->registry_lock, NULL);
}

/* ---- partition registry ------------------------------------------------ */

/* Caller holds registry_lock. */
struct partition_state *ledger_find(struct ledger *l, const char *topic, int32_t partition,
                                    bool create)
{
    for (size_t i = 0; i < l->part_count; i++)
        if (l->parts[i]->partition == partition && strcmp(l->parts[i]->topic, topic) == 0)
            return l->parts[i];
    if (!create)
        return NULL;
    if (l->part_count == l->part_cap) {
        size_t cap = l->part_cap ? l->part_cap * 2 : 64;
        struct partition_state **parts = realloc(l->parts, cap * sizeof(*parts));
        if (!parts)
            return NULL;
        l->parts = parts;
        l->part_cap = cap;
    }
    struct partition_state *p = calloc(1, sizeof(*p));
    if (!p || !(p->topic = strdup(topic))) {
        free(p);
        return NULL;
    }
    p->partition = partition;
    p->index = (uint32_t)l->part_count;
    atomic_init(&p->applied, -1);
    atomic_init(&p->committed, -1);
    p->worker = -1;
    for (int v = 0; v < MAX_VIEWERS; v++)
        p->last_done[v] = p->observed_by[v] = p->claim_upto[v] = -1;
    p->sent_offset = -1;
    pthread_mutex_init(&p->dlq_lock, NULL);
    l->parts[l->part_count++] = p;
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

void ledger_free(struct ledger *l)
{
    for (size_t i = 0; i < l->part_count; i++)
        partition_free(l->parts[i]);
    free(l->parts);
    for (int k = 0; k < MAX_SNAPSHOTS; k++) {
        free(l->snapshots[k].applied);
        free(l->snapshots[k].first_shown);
        free(l->snapshots[k].sighted);
    }
    for (int v = 0; v < MAX_VIEWERS; v++)
        free(l->viewer_claims[v].sighted);
    pthread_mutex_destroy(&l->registry_lock);
}

/* The offset to commit: one past the last event every required viewer has
 * seen (or, in periodic mode, past the last applied), held below the
 * oldest unacknowledged dead letter. Caller holds registry_lock. */
int64_t ledger_commit_target(struct ledger *l, struct partition_state *p, bool applied_all)
{
    int64_t upto = atomic_load_explicit(&p->applied, memory_order_acquire);
    if (!applied_all) {
        for (int v = 0; v < MAX_VIEWERS; v++)
            if ((l->required_viewers & (1u << v)) && p->observed_by[v] < upto)
                upto = p->observed_by[v];
    }
    pthread_mutex_lock(&p->dlq_lock);
    if (p->dlq_count && p->dlq_pending[0] - 1 < upto)
        upto = p->dlq_pending[0] - 1;
    pthread_mutex_unlock(&p->dlq_lock);
    return upto + 1;
}

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
struct first_sight *ledger_sighted_union(struct ledger *l, size_t *n)
{
    size_t total = 0, count = 0;
    for (int v = 0; v < MAX_VIEWERS; v++)
        if (l->required_viewers & (1u << v))
            total += l->viewer_claims[v].sighted_count;
    struct first_sight *all = total ? malloc(total * sizeof(*all)) : NULL;
    for (int v = 0; all && v < MAX_VIEWERS; v++) {
        const struct viewer_claim *vc = &l->viewer_claims[v];
        if (l->required_viewers & (1u << v)) {
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
static bool draft_own(struct ledger *l, struct claim_draft *d, const struct partition_state *p,
                      int64_t from, int64_t upto, const struct first_sight *all, size_t n_all,
                      size_t max_bytes)
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
        atomic_fetch_add_explicit(&l->claims_cut, 1, memory_order_relaxed);
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
static void plan_claim(struct ledger *l, struct partition_state *p, const struct first_sight *all,
                       size_t n_all, struct commit_plan *plan)
{
    size_t max_bytes = l->claim_max_bytes;
    int64_t covered = INT64_MAX; /* every required viewer's latest cut reaches below this */
    for (int v = 0; v < MAX_VIEWERS; v++)
        if ((l->required_viewers & (1u << v)) && p->claim_upto[v] + 1 < covered)
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
        !draft_own(l, &d, p, own_from, covered, all, n_all, max_bytes))
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
    struct commit_claim claim = {.schema = l->schema,
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
static bool claims_apply(const struct ledger *l, bool applied_all)
{
    return !applied_all && l->claims;
}

/* Caller holds registry_lock. all/n_all: sighted_union. Returns false
 * when there is nothing new to send for p. */
bool ledger_plan_commit(struct ledger *l, struct partition_state *p, bool applied_all,
                        const struct first_sight *all, size_t n_all, struct commit_plan *plan)
{
    *plan = (struct commit_plan){.offset = ledger_commit_target(l, p, applied_all)};
    if (plan->offset < 0 || plan->offset < atomic_load(&p->committed) ||
        plan->offset < p->sent_offset)
        return false;
    bool inside = p->inherited_text && plan->offset < p->inherited.upto;
    if (claims_apply(l, applied_all))
        plan_claim(l, p, all, n_all, plan);
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
 * The commit list: every owned partition (of `only`, when given) whose
 * plan changed since the last one sent; NULL when there is none. The list
 * owns the claim texts. Caller holds registry_lock.
 */
rd_kafka_topic_partition_list_t *
ledger_commit_list(struct ledger *l, const rd_kafka_topic_partition_list_t *only, bool applied_all)
{
    rd_kafka_topic_partition_list_t *list = NULL;
    size_t n_all = 0;
    struct first_sight *all = claims_apply(l, applied_all) ? ledger_sighted_union(l, &n_all) : NULL;
    for (size_t i = 0; i < l->part_count; i++) {
        struct partition_state *p = l->parts[i];
        struct commit_plan plan;
        if (p->worker < 0 ||
            (only && !rd_kafka_topic_partition_list_find(only, p->topic, p->partition)) ||
            !ledger_plan_commit(l, p, applied_all, all, n_all, &plan))
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
    return list;
}

/* A commit of list failed as a whole: send it again next time. Caller
 * holds registry_lock. */
void ledger_commit_failed(struct ledger *l, const rd_kafka_topic_partition_list_t *list,
                          rd_kafka_resp_err_t err)
{
    for (int i = 0; i < list->cnt; i++) {
        struct partition_state *p =
            ledger_find(l, list->elems[i].topic, list->elems[i].partition, false);
        if (p)
            p->sent_offset = -1; /* send again next time */
        ledger_metadata_refused(l, &list->elems[i], err);
    }
}

/*
 * The broker refuses a commit whose metadata exceeds its
 * offset.metadata.max.bytes, and re-sending the same claim would fail for
 * ever (every commit lost until a restart re-counts everything since the
 * last good one). So a refused claim halves the claim budget: claims are
 * cut to fit (counted in claims_cut, with the window docs/delivery.md
 * states), and after at most log2(kafka.commit_metadata_max_bytes)
 * refusals a commit carries no claim at all, which every broker accepts.
 * Caller holds registry_lock.
 */
void ledger_metadata_refused(struct ledger *l, const rd_kafka_topic_partition_t *tp,
                             rd_kafka_resp_err_t err)
{
    if ((tp->err ? tp->err : err) != RD_KAFKA_RESP_ERR_OFFSET_METADATA_TOO_LARGE)
        return;
    size_t sent = tp->metadata_size;
    size_t limit = sent / 2 < l->claim_max_bytes ? sent / 2 : l->claim_max_bytes / 2;
    if (limit < CLAIM_MIN_BYTES)
        limit = 0;
    if (limit == l->claim_max_bytes)
        return;
    char was[24], now[24];
    snprintf(was, sizeof(was), "%zu", l->claim_max_bytes);
    snprintf(now, sizeof(now), "%zu", limit);
    log_warn("the broker refused a commit's claim as too large; claims are now shorter (set the "
             "brokers' offset.metadata.max.bytes to kafka.commit_metadata_max_bytes)",
             "was_bytes", was, "now_bytes", now, NULL);
    l->claim_max_bytes = limit;
}

/* A synchronous commit of list returned: the offsets without an error
 * are committed. Caller holds registry_lock. */
void ledger_commit_stored(struct ledger *l, const rd_kafka_topic_partition_list_t *list)
{
    for (int i = 0; i < list->cnt; i++) {
        struct partition_state *p =
            ledger_find(l, list->elems[i].topic, list->elems[i].partition, false);
        if (p && list->elems[i].err == 0)
            atomic_store(&p->committed, list->elems[i].offset);
        else if (p)
            p->sent_offset = -1; /* send again next time */
        ledger_metadata_refused(l, &list->elems[i], RD_KAFKA_RESP_ERR_NO_ERROR);
    }
}

/* An asynchronous commit's result (offset_commit_cb, worker 0). Caller
 * holds registry_lock. */
void ledger_commit_acked(struct ledger *l, const rd_kafka_topic_partition_list_t *offsets,
                         rd_kafka_resp_err_t err)
{
    for (int i = 0; offsets && i < offsets->cnt; i++) {
        struct partition_state *p =
            ledger_find(l, offsets->elems[i].topic, offsets->elems[i].partition, false);
        ledger_metadata_refused(l, &offsets->elems[i], err);
        if (!p)
            continue;
        if (err || offsets->elems[i].err)
            p->sent_offset = -1; /* send again at the next chance */
        else if (offsets->elems[i].offset > atomic_load(&p->committed))
            atomic_store(&p->committed, offsets->elems[i].offset);
    }
}

/*
 * Commits every owned partition whose plan changed. async from the HTTP
 * thread (a commit right after the scrape shrinks the window in which a
 * crash would make a new owner re-read what Prometheus already has); sync
 * from rebalance and shutdown. Caller holds registry_lock.
 */
void kafka_commit_owned(struct kafka_source *ks, const rd_kafka_topic_partition_list_t *only,
                        bool applied_all, bool async)
{
    rd_kafka_topic_partition_list_t *list = ledger_commit_list(&ks->ledger, only, applied_all);
    if (!list)
        return;
    rd_kafka_resp_err_t err = rd_kafka_commit(ks->rk, list, async ? 1 : 0);
    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
        atomic_fetch_add(&ks->commit_failures, 1);
        log_warn("offset commit failed", "error", rd_kafka_err2str(err), NULL);
        ledger_commit_failed(&ks->ledger, list, err);
    } else if (!async) {
        ledger_commit_stored(&ks->ledger, list);
        atomic_fetch_add(&ks->commits, 1);
    }
    rd_kafka_topic_partition_list_destroy(list);
}

/*
 * Takes over the claim of the partition's previous owner from the
 * committed offset's metadata (tp, read at assignment; NULL when that
 * failed). Consumer thread, under registry_lock.
 */
void ledger_inherit(struct ledger *l, struct partition_state *p,
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
    if (claim.schema != l->schema) {
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

/* All applied events observed by every required viewer, and no dead
 * letter pending? Caller holds registry_lock. */
bool ledger_all_observed(struct ledger *l)
{
    for (size_t i = 0; i < l->part_count; i++) {
        struct partition_state *p = l->parts[i];
        if (p->worker < 0)
            continue;
        if (ledger_commit_target(l, p, false) <= atomic_load(&p->applied))
            return false;
    }
    return true;
}

/* ---- scrape snapshots ---------------------------------------------------- */

/* A scrape's cut: every partition's applied offset, before it renders
 * (frozen: the appliers were stopped for it). Caller holds registry_lock. */
void ledger_snapshot_begin(struct ledger *l, uint64_t scrape_id, uint32_t viewer, bool frozen)
{
    struct snapshot *s = &l->snapshots[l->snapshot_next++ % MAX_SNAPSHOTS];
    size_t n = l->part_count + 1;
    int64_t *applied = realloc(s->applied, n * sizeof(int64_t));
    if (applied)
        s->applied = applied;
    int64_t *first = realloc(s->first_shown, n * sizeof(int64_t));
    if (first)
        s->first_shown = first;
    l->rendering = NULL;
    s->scrape_id = 0;
    if (applied && first) {
        s->scrape_id = scrape_id;
        s->viewer = viewer;
        s->count = l->part_count;
        s->unknown_first = false;
        s->spread_first = false;
        s->unfrozen = !frozen;
        s->sighted_count = 0;
        for (size_t i = 0; i < l->part_count; i++) {
            /* acquire: pairs with the consumer's release store, so the
             * render that follows includes every increment up to here. */
            s->applied[i] = atomic_load_explicit(&l->parts[i]->applied, memory_order_acquire);
            s->first_shown[i] = INT64_MAX;
        }
        l->rendering = s;
    }
}

/* A series the rendering scrape shows first. During the render that
 * follows ledger_snapshot_begin, on the same (HTTP) thread, so `rendering`
 * needs no lock. */
void ledger_snapshot_sight(struct ledger *l, const struct first_sight *fs)
{
    struct snapshot *s = l->rendering;
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

/* The scrape was sent completely: what its viewer has observed, and the
 * claim its first-shown series make. Caller holds registry_lock. */
void ledger_snapshot_done(struct ledger *l, uint64_t scrape_id, uint32_t viewer)
{
    int v = __builtin_ctz(viewer);
    for (size_t k = 0; k < MAX_SNAPSHOTS; k++) {
        struct snapshot *s = &l->snapshots[k];
        if (s->scrape_id != scrape_id || !s->applied)
            continue;
        if (l->rendering == s)
            l->rendering = NULL;
        struct viewer_claim *vc = &l->viewer_claims[v];
        bool newest = s->scrape_id > vc->scrape_id;
        for (size_t i = 0; i < s->count; i++) {
            struct partition_state *p = l->parts[i];
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
}

/* ---- scrape hooks (scrape thread) ---------------------------------------- */

void kafka_scrape_started(struct event_source *src, uint64_t scrape_id, uint32_t viewer)
{
    struct kafka_source *ks = (struct kafka_source *)src;
    /* before registry_lock: an applier in a rebalance callback may wait for it */
    bool frozen = true;
    if (ks->gated) {
        ks->freeze_held = true;
        frozen = kafka_freeze_appliers(ks);
    }
    pthread_mutex_lock(&ks->ledger.registry_lock);
    ledger_snapshot_begin(&ks->ledger, scrape_id, viewer, frozen);
    pthread_mutex_unlock(&ks->ledger.registry_lock);
}

void kafka_scrape_first_sight(struct event_source *src, const struct first_sight *fs)
{
    ledger_snapshot_sight(&((struct kafka_source *)src)->ledger, fs);
}

/* Ends the scrape's freeze (scrape thread). */
static void end_scrape_freeze(struct kafka_source *ks)
{
    if (!ks->freeze_held)
        return;
    ks->freeze_held = false;
    kafka_thaw_appliers(ks);
}

void kafka_scrape_counters_read(struct event_source *src)
{
    end_scrape_freeze((struct kafka_source *)src);
}

void kafka_scrape_completed(struct event_source *src, uint64_t scrape_id, uint32_t viewer)
{
    struct kafka_source *ks = (struct kafka_source *)src;
    end_scrape_freeze(ks); /* in case the render never said it had read the counters */
    pthread_mutex_lock(&ks->ledger.registry_lock);
    ledger_snapshot_done(&ks->ledger, scrape_id, viewer);
    if (ks->cfg->kafka_commit_mode == COMMIT_MODE_SCRAPE && !atomic_load(&ks->shutting_down))
        kafka_commit_owned(ks, NULL, false, true);
    pthread_mutex_unlock(&ks->ledger.registry_lock);
}

/*
 * gauge_table.c - live GPU gauges (see gauge_table.h).
 *
 * Design: an open-addressing array of series pointers (linear probing,
 * capacity a power of two >= 2 * max_series) that never changes while
 * published. Reclaiming silent series builds a new array holding only the
 * series heard from recently and publishes it; the old array and the
 * silent series are retired, and freed once no writer can still hold
 * them: epoch-based reclamation. A writer announces the global epoch in
 * its own cache line while it probes and stores (seq_cst, so the
 * reclaimer's check and the writer's probe are ordered one way or the
 * other) and clears it after; whatever was retired at epoch E is freed
 * when every writer is outside or announced an epoch after E (it loaded
 * the epoch after the retirement, so it probes the new array).
 * The mutex covers inserts, sweeps, reclamation and the render; writers
 * updating an existing series never take it. A GPU that speaks again just
 * as its silent series is swept loses that one update (the next sample
 * makes a new series): a gauge, not a counter.
 * Lock order: only t->lock; nothing is called under it that locks.
 * Thread-safety: see the header.
 */
#include "gauge_table.h"

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* A full table of live series sweeps again at most this often. */
#define SWEEP_RETRY_MS 1000

struct gauge_series {
    uint64_t hash;
    _Atomic uint64_t util_ppb;
    _Atomic uint64_t memory_bytes;
    _Atomic int64_t updated_ms;
    struct gauge_series *retired_next; /* under the lock */
    uint64_t retired_epoch;
    uint16_t lens[GAUGE_LABELS];
    char bytes[]; /* the label values, in order */
};

struct gauge_slots {
    size_t mask;
    struct gauge_slots *retired_next; /* under the lock */
    uint64_t retired_epoch;
    _Atomic(struct gauge_series *) s[];
};

struct gauge_writer {
    alignas(64) _Atomic uint64_t active; /* 0: outside; else the epoch seen */
    struct gauge_table *table;
};

struct gauge_table {
    _Atomic(struct gauge_slots *) slots;
    size_t max_series;
    int64_t silence_ms;
    _Atomic uint64_t epoch; /* starts at 1: 0 means a writer is outside */
    struct gauge_writer *writers;
    size_t max_writers;
    _Atomic size_t writer_count;
    pthread_mutex_t lock;
    _Atomic size_t count;
    _Atomic uint64_t dropped;
    int64_t next_sweep_ms; /* under the lock */
    struct gauge_series *retired_series;
    struct gauge_slots *retired_slots;
};

static struct gauge_slots *slots_new(size_t cap)
{
    struct gauge_slots *sl = calloc(1, sizeof(*sl) + cap * sizeof(sl->s[0]));
    if (sl)
        sl->mask = cap - 1;
    return sl;
}

struct gauge_table *gauge_table_new(size_t max_series, int64_t silence_ms, size_t max_writers)
{
    if (max_series == 0 || max_writers == 0)
        return NULL;
    struct gauge_table *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    size_t cap = 16;
    while (cap < max_series * 2)
        cap *= 2;
    t->max_series = max_series;
    t->silence_ms = silence_ms;
    t->max_writers = max_writers;
    atomic_init(&t->epoch, 1);
    pthread_mutex_init(&t->lock, NULL);
    t->writers = aligned_alloc(64, sizeof(struct gauge_writer) * max_writers);
    struct gauge_slots *sl = slots_new(cap);
    if (!t->writers || !sl) {
        free(sl);
        gauge_table_free(t);
        return NULL;
    }
    memset(t->writers, 0, sizeof(struct gauge_writer) * max_writers);
    atomic_init(&t->slots, sl);
    return t;
}

void gauge_table_free(struct gauge_table *t)
{
    if (!t)
        return;
    struct gauge_slots *sl = atomic_load_explicit(&t->slots, memory_order_relaxed);
    if (sl) {
        for (size_t i = 0; i <= sl->mask; i++)
            free(atomic_load_explicit(&sl->s[i], memory_order_relaxed));
        free(sl);
    }
    while (t->retired_series) {
        struct gauge_series *next = t->retired_series->retired_next;
        free(t->retired_series);
        t->retired_series = next;
    }
    while (t->retired_slots) {
        struct gauge_slots *next = t->retired_slots->retired_next;
        free(t->retired_slots);
        t->retired_slots = next;
    }
    free(t->writers);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

struct gauge_writer *gauge_writer_new(struct gauge_table *t)
{
    size_t i = atomic_fetch_add_explicit(&t->writer_count, 1, memory_order_relaxed);
    if (i >= t->max_writers)
        return NULL;
    t->writers[i].table = t;
    return &t->writers[i];
}

static uint64_t labels_hash(const struct label_value *labels)
{
    uint64_t h[GAUGE_LABELS];
    for (size_t i = 0; i < GAUGE_LABELS; i++)
        h[i] = label_hash(labels[i].ptr, labels[i].len);
    return label_set_hash(h, GAUGE_LABELS);
}

static bool matches(const struct gauge_series *s, uint64_t hash, const struct label_value *labels)
{
    if (s->hash != hash)
        return false;
    const char *p = s->bytes;
    for (size_t i = 0; i < GAUGE_LABELS; i++) {
        if (s->lens[i] != labels[i].len ||
            (labels[i].len && memcmp(p, labels[i].ptr, labels[i].len)))
            return false;
        p += labels[i].len;
    }
    return true;
}

/* The series for labels, or NULL with *empty the first empty slot of its
 * probe path. The array is at most half full, so an empty slot exists. */
static struct gauge_series *probe(struct gauge_slots *sl, uint64_t hash,
                                  const struct label_value *labels, size_t *empty)
{
    for (size_t i = hash & sl->mask;; i = (i + 1) & sl->mask) {
        /* acquire: pairs with the release store of an insert, so the
         * series' label bytes are visible once its pointer is. */
        struct gauge_series *s = atomic_load_explicit(&sl->s[i], memory_order_acquire);
        if (!s) {
            *empty = i;
            return NULL;
        }
        if (matches(s, hash, labels))
            return s;
    }
}

static void store_values(struct gauge_series *s, uint64_t util_ppb, uint64_t memory_bytes,
                         int64_t now_ms)
{
    /* relaxed: each is one gauge reading; a scrape that mixes one
     * sample's utilization with the next's memory shows two real values. */
    atomic_store_explicit(&s->util_ppb, util_ppb, memory_order_relaxed);
    atomic_store_explicit(&s->memory_bytes, memory_bytes, memory_order_relaxed);
    atomic_store_explicit(&s->updated_ms, now_ms, memory_order_relaxed);
}

/* Frees what was retired before every writer's announced epoch. Under
 * the lock. */
static void reclaim(struct gauge_table *t)
{
    if (!t->retired_series && !t->retired_slots)
        return;
    uint64_t oldest = UINT64_MAX;
    size_t n = atomic_load_explicit(&t->writer_count, memory_order_relaxed);
    if (n > t->max_writers)
        n = t->max_writers;
    for (size_t i = 0; i < n; i++) {
        /* seq_cst: ordered after our retirement's epoch increment. */
        uint64_t a = atomic_load(&t->writers[i].active);
        if (a && a < oldest)
            oldest = a;
    }
    struct gauge_series **ps = &t->retired_series;
    while (*ps) {
        struct gauge_series *s = *ps;
        if (s->retired_epoch < oldest) {
            *ps = s->retired_next;
            free(s);
        } else {
            ps = &s->retired_next;
        }
    }
    struct gauge_slots **pl = &t->retired_slots;
    while (*pl) {
        struct gauge_slots *sl = *pl;
        if (sl->retired_epoch < oldest) {
            *pl = sl->retired_next;
            free(sl);
        } else {
            pl = &sl->retired_next;
        }
    }
}

/* Publishes an array without the silent series and retires them with the
 * old array. Under the lock. Returns how many were dropped. */
static size_t sweep(struct gauge_table *t, int64_t now_ms)
{
    struct gauge_slots *old = atomic_load_explicit(&t->slots, memory_order_relaxed);
    struct gauge_slots *sl = slots_new(old->mask + 1);
    if (!sl)
        return 0;
    struct gauge_series *dropped = NULL;
    size_t silent = 0;
    for (size_t i = 0; i <= old->mask; i++) {
        struct gauge_series *s = atomic_load_explicit(&old->s[i], memory_order_relaxed);
        if (!s)
            continue;
        if (now_ms - atomic_load_explicit(&s->updated_ms, memory_order_relaxed) >= t->silence_ms) {
            s->retired_next = dropped;
            dropped = s;
            silent++;
            continue;
        }
        size_t j = s->hash & sl->mask;
        while (atomic_load_explicit(&sl->s[j], memory_order_relaxed))
            j = (j + 1) & sl->mask;
        atomic_init(&sl->s[j], s);
    }
    if (!silent) {
        free(sl);
        return 0;
    }
    /* seq_cst: the new array is in place before the epoch moves on, so a
     * writer that announces the new epoch probes the new array. */
    atomic_store(&t->slots, sl);
    uint64_t e = atomic_fetch_add(&t->epoch, 1);
    old->retired_epoch = e;
    old->retired_next = t->retired_slots;
    t->retired_slots = old;
    while (dropped) {
        struct gauge_series *next = dropped->retired_next;
        dropped->retired_epoch = e;
        dropped->retired_next = t->retired_series;
        t->retired_series = dropped;
        dropped = next;
    }
    atomic_fetch_sub_explicit(&t->count, silent, memory_order_relaxed);
    return silent;
}

static bool insert(struct gauge_table *t, uint64_t hash, const struct label_value *labels,
                   uint64_t util_ppb, uint64_t memory_bytes, int64_t now_ms)
{
    bool ok = false;
    pthread_mutex_lock(&t->lock);
    reclaim(t);
    size_t empty;
    struct gauge_slots *sl = atomic_load_explicit(&t->slots, memory_order_relaxed);
    struct gauge_series *s = probe(sl, hash, labels, &empty);
    if (s) { /* another writer made it meanwhile */
        store_values(s, util_ppb, memory_bytes, now_ms);
        ok = true;
        goto out;
    }
    if (atomic_load_explicit(&t->count, memory_order_relaxed) >= t->max_series &&
        now_ms >= t->next_sweep_ms) {
        t->next_sweep_ms = sweep(t, now_ms) ? 0 : now_ms + SWEEP_RETRY_MS;
        sl = atomic_load_explicit(&t->slots, memory_order_relaxed);
        probe(sl, hash, labels, &empty);
    }
    if (atomic_load_explicit(&t->count, memory_order_relaxed) >= t->max_series)
        goto out;
    size_t bytes = 0;
    for (size_t i = 0; i < GAUGE_LABELS; i++)
        bytes += labels[i].len;
    s = calloc(1, sizeof(*s) + bytes);
    if (!s)
        goto out;
    s->hash = hash;
    char *p = s->bytes;
    for (size_t i = 0; i < GAUGE_LABELS; i++) {
        s->lens[i] = (uint16_t)labels[i].len;
        if (labels[i].len)
            memcpy(p, labels[i].ptr, labels[i].len);
        p += labels[i].len;
    }
    store_values(s, util_ppb, memory_bytes, now_ms);
    /* release: a writer that loads the pointer sees the series filled. */
    atomic_store_explicit(&sl->s[empty], s, memory_order_release);
    atomic_fetch_add_explicit(&t->count, 1, memory_order_relaxed);
    ok = true;
out:
    if (!ok)
        atomic_fetch_add_explicit(&t->dropped, 1, memory_order_relaxed);
    pthread_mutex_unlock(&t->lock);
    return ok;
}

bool gauge_table_set(struct gauge_writer *w, const struct label_value labels[GAUGE_LABELS],
                     uint64_t util_ppb, uint64_t memory_bytes, int64_t now_ms)
{
    struct gauge_table *t = w->table;
    for (size_t i = 0; i < GAUGE_LABELS; i++)
        if (labels[i].len > UINT16_MAX)
            return false;
    uint64_t hash = labels_hash(labels);
    /* seq_cst store then fence: the announcement is ordered before the
     * array load below in the single total order the reclaimer's epoch
     * increment and its reading of `active` are in. */
    atomic_store(&w->active, atomic_load(&t->epoch));
    atomic_thread_fence(memory_order_seq_cst);
    size_t empty;
    struct gauge_series *s =
        probe(atomic_load_explicit(&t->slots, memory_order_acquire), hash, labels, &empty);
    if (s)
        store_values(s, util_ppb, memory_bytes, now_ms);
    /* release: our reads of the series happen before a reclaimer sees 0. */
    atomic_store_explicit(&w->active, 0, memory_order_release);
    return s ? true : insert(t, hash, labels, util_ppb, memory_bytes, now_ms);
}

void gauge_table_foreach(struct gauge_table *t, int64_t now_ms, gauge_visit_fn visit, void *ctx)
{
    pthread_mutex_lock(&t->lock);
    reclaim(t);
    struct gauge_slots *sl = atomic_load_explicit(&t->slots, memory_order_relaxed);
    for (size_t i = 0; i <= sl->mask; i++) {
        struct gauge_series *s = atomic_load_explicit(&sl->s[i], memory_order_acquire);
        if (!s)
            continue;
        struct gauge_view v;
        v.updated_ms = atomic_load_explicit(&s->updated_ms, memory_order_relaxed);
        if (now_ms - v.updated_ms >= t->silence_ms)
            continue;
        v.util_ppb = atomic_load_explicit(&s->util_ppb, memory_order_relaxed);
        v.memory_bytes = atomic_load_explicit(&s->memory_bytes, memory_order_relaxed);
        const char *p = s->bytes;
        for (size_t k = 0; k < GAUGE_LABELS; k++) {
            v.labels[k] = (struct label_value){p, s->lens[k]};
            p += s->lens[k];
        }
        visit(&v, ctx);
    }
    pthread_mutex_unlock(&t->lock);
}

size_t gauge_table_count(struct gauge_table *t)
{
    return atomic_load_explicit(&t->count, memory_order_relaxed);
}

uint64_t gauge_table_dropped(struct gauge_table *t)
{
    return atomic_load_explicit(&t->dropped, memory_order_relaxed);
}

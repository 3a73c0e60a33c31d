/*
 * counter_table.c - lock-free-read labeled counters (see counter_table.h).
 *
 * Design: a fixed-capacity open-addressing table (linear probing, capacity
 * a power of two >= 2 * max_series, so it never resizes and never moves a
 * series) of pointers to series. A series is one allocation: header, label
 * lengths, then the label bytes. Publication order on insert: fill the
 * series, store it in the creation list, bump the list count (release), then
 * store it in its slot (release). Lookups load slots with acquire, so a
 * thread that sees a pointer sees the filled series.
 * Overflow series never enter the hash table: the table-wide one is made
 * with the table, a sharded table's per-shard ones go on an append-only
 * list; both are reached only through the insert path, under the lock, so
 * an overflowing label set costs a lock per lookup (as it always did).
 * What readers see is one atomic per series, hold_until_ms: INT64_MAX
 * hides it, otherwise it reads 0 before that instant.
 * Lock order: only one lock, table->insert_lock; nothing is called under it
 * that could take another.
 * Thread-safety: see the header.
 */
#include "counter_table.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
/* Inlined: label values are short, and a call into the shared library
 * cost more than hashing them (several lookups per event). */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "unaligned.h"

#define HIDDEN INT64_MAX

struct counter_series {
    _Atomic uint64_t value; /* live: what writers added */
    uint64_t hash;
    int64_t created_ms;
    _Atomic uint64_t served;       /* checkpointed tables: what readers see */
    _Atomic int64_t hold_until_ms; /* HIDDEN, or reads 0 before this */
    /* the checkpointer's (see the header); atomic because a scrape's
     * metrics_totals walks every series with foreach_all too */
    _Atomic uint64_t checkpointed;
    _Atomic bool checkpointed_ever;
    uint32_t key_len; /* total label bytes */
    uint16_t lens[];  /* label_count lengths, then the label bytes */
};

/* A sharded table's per-shard overflow series, in creation order. */
struct overflow_node {
    struct counter_series *series;
    _Atomic(struct overflow_node *) next;
};

struct counter_table {
    size_t label_count;
    char *label_names[COUNTER_TABLE_MAX_LABELS];
    size_t max_series;
    size_t mask;
    bool checkpointed;
    bool sharded;
    int64_t hold_ms;
    _Atomic(struct counter_series *) *slots;
    struct counter_series **list; /* creation order, max_series entries */
    _Atomic size_t count;
    _Atomic uint64_t overflow_adds;
    _Atomic size_t bytes;
    /* all labels "__overflow__"; in a sharded table only the fallback when
     * a shard's own overflow series cannot be made */
    struct counter_series *overflow;
    _Atomic bool overflow_used;
    _Atomic(struct overflow_node *) shard_overflows; /* sharded tables */
    struct overflow_node *shard_overflows_tail;      /* under insert_lock */
    pthread_mutex_t insert_lock;
};

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t label_hash(const char *ptr, size_t len)
{
    return XXH3_64bits(ptr, len);
}

uint64_t label_set_hash(const uint64_t *value_hashes, size_t count)
{
    /* Per value: xor, rotate, multiply by an odd constant, all bijections
     * of h, so one differing value always changes the result; the rotate
     * and multiply make the fold order-sensitive. Splitmix64's finalizer
     * then spreads every input bit over the bits the table masks with. */
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ count;
    for (size_t i = 0; i < count; i++) {
        h ^= value_hashes[i];
        h = (h << 27 | h >> 37) * 0xbf58476d1ce4e5b9ULL;
    }
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 31;
    return h;
}

static uint64_t hash_labels(const struct label_value *values, size_t n)
{
    uint64_t hashes[COUNTER_TABLE_MAX_LABELS];
    for (size_t i = 0; i < n; i++)
        hashes[i] = label_hash(values[i].ptr, values[i].len);
    return label_set_hash(hashes, n);
}

static const char *series_bytes(const struct counter_table *t, const struct counter_series *s)
{
    return (const char *)&s->lens[t->label_count];
}

/* memcmp(a, b, n) == 0 for the short label values of a lookup, inline: a
 * call per label cost more than the compare. Overlapping word loads cover
 * the tail; never reads outside either buffer. */
static inline bool bytes_equal(const char *a, const char *b, size_t n)
{
    if (n >= 8) {
        for (size_t i = 0; i + 8 < n; i += 8)
            if (load64(a + i) != load64(b + i))
                return false;
        return load64(a + n - 8) == load64(b + n - 8);
    }
    if (n >= 4)
        return load32(a) == load32(b) && load32(a + n - 4) == load32(b + n - 4);
    /* 1 to 3 bytes: indexes 0, n/2 and n-1 cover them all */
    return n == 0 || (a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1]);
}

static bool series_matches(const struct counter_table *t, const struct counter_series *s,
                           uint64_t hash, const struct label_value *values)
{
    if (s->hash != hash)
        return false;
    const char *p = series_bytes(t, s);
    for (size_t i = 0; i < t->label_count; i++) {
        /* len 0 may come with a NULL ptr, which bytes_equal never reads */
        if (s->lens[i] != values[i].len || !bytes_equal(p, values[i].ptr, values[i].len))
            return false;
        p += values[i].len;
    }
    return true;
}

/* Where a new series' hold starts: a plain table's new series reads 0 for
 * hold_ms; a checkpointed table's is hidden until published. */
static int64_t initial_hold(const struct counter_table *t, int64_t created_ms)
{
    if (t->checkpointed)
        return HIDDEN;
    return t->hold_ms > 0 ? created_ms + t->hold_ms : 0;
}

static struct counter_series *series_new(const struct counter_table *t, uint64_t hash,
                                         const struct label_value *values)
{
    size_t key_len = 0;
    for (size_t i = 0; i < t->label_count; i++) {
        if (values[i].len > UINT16_MAX)
            return NULL;
        key_len += values[i].len;
    }
    size_t size = sizeof(struct counter_series) + t->label_count * sizeof(uint16_t) + key_len;
    struct counter_series *s = malloc(size);
    if (!s)
        return NULL;
    atomic_init(&s->value, 0);
    atomic_init(&s->served, 0);
    s->hash = hash;
    s->created_ms = wall_ms();
    atomic_init(&s->hold_until_ms, initial_hold(t, s->created_ms));
    atomic_init(&s->checkpointed, 0);
    atomic_init(&s->checkpointed_ever, false);
    s->key_len = (uint32_t)key_len;
    char *p = (char *)&s->lens[t->label_count];
    for (size_t i = 0; i < t->label_count; i++) {
        s->lens[i] = (uint16_t)values[i].len;
        if (values[i].len)
            memcpy(p, values[i].ptr, values[i].len);
        p += values[i].len;
    }
    return s;
}

static size_t series_size(const struct counter_table *t, const struct counter_series *s)
{
    return sizeof(*s) + t->label_count * sizeof(uint16_t) + s->key_len;
}

static const struct label_value overflow_value = {COUNTER_OVERFLOW_VALUE,
                                                  sizeof(COUNTER_OVERFLOW_VALUE) - 1};

static bool is_overflow_value(const struct label_value *v)
{
    return v->len == overflow_value.len && memcmp(v->ptr, overflow_value.ptr, v->len) == 0;
}

struct counter_table *counter_table_new(const char *const *label_names, size_t label_count,
                                        size_t max_series,
                                        const struct counter_table_options *options)
{
    if (label_count == 0 || label_count > COUNTER_TABLE_MAX_LABELS || max_series == 0)
        return NULL;
    struct counter_table *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->label_count = label_count;
    t->max_series = max_series;
    if (options) {
        t->checkpointed = options->checkpointed;
        t->sharded = options->sharded;
        t->hold_ms = options->hold_ms > 0 ? options->hold_ms : 0;
    }
    pthread_mutex_init(&t->insert_lock, NULL);
    for (size_t i = 0; i < label_count; i++) {
        t->label_names[i] = strdup(label_names[i]);
        if (!t->label_names[i])
            goto fail;
    }
    size_t cap = 16;
    while (cap < max_series * 2)
        cap *= 2;
    t->mask = cap - 1;
    /* calloc of a large array is mmap'd zero pages: untouched slots cost no
     * resident memory. */
    t->slots = calloc(cap, sizeof(*t->slots));
    t->list = calloc(max_series, sizeof(*t->list));
    if (!t->slots || !t->list)
        goto fail;
    struct label_value overflow[COUNTER_TABLE_MAX_LABELS];
    for (size_t i = 0; i < label_count; i++)
        overflow[i] = overflow_value;
    t->overflow = series_new(t, hash_labels(overflow, label_count), overflow);
    if (!t->overflow)
        goto fail;
    atomic_init(&t->bytes, cap * sizeof(*t->slots) + max_series * sizeof(*t->list) +
                               series_size(t, t->overflow));
    return t;
fail:
    counter_table_free(t);
    return NULL;
}

void counter_table_free(struct counter_table *t)
{
    if (!t)
        return;
    size_t n = atomic_load_explicit(&t->count, memory_order_acquire);
    for (size_t i = 0; i < n; i++)
        free(t->list[i]);
    struct overflow_node *o = atomic_load_explicit(&t->shard_overflows, memory_order_acquire);
    while (o) {
        struct overflow_node *next = atomic_load_explicit(&o->next, memory_order_acquire);
        free(o->series);
        free(o);
        o = next;
    }
    free(t->list);
    free(t->slots);
    free(t->overflow);
    for (size_t i = 0; i < t->label_count; i++)
        free(t->label_names[i]);
    pthread_mutex_destroy(&t->insert_lock);
    free(t);
}

/* Returns the matching series, or NULL with *empty_slot set to the index of
 * the first empty slot on the probe path. */
static struct counter_series *probe(struct counter_table *t, uint64_t hash,
                                    const struct label_value *values, size_t *empty_slot)
{
    for (size_t i = hash & t->mask;; i = (i + 1) & t->mask) {
        /* acquire: pairs with the release store in insert, so the series'
         * fields are visible once its pointer is. */
        struct counter_series *s = atomic_load_explicit(&t->slots[i], memory_order_acquire);
        if (!s) {
            *empty_slot = i;
            return NULL;
        }
        if (series_matches(t, s, hash, values))
            return s;
    }
}

/* The table-wide overflow series, started (created_ms, a plain table's
 * hold) by its first use. Caller holds insert_lock. */
static struct counter_series *table_overflow(struct counter_table *t)
{
    if (!atomic_load_explicit(&t->overflow_used, memory_order_relaxed)) {
        t->overflow->created_ms = wall_ms();
        atomic_store_explicit(&t->overflow->hold_until_ms, initial_hold(t, t->overflow->created_ms),
                              memory_order_relaxed);
        /* release: a reader that sees it used sees created_ms and the hold. */
        atomic_store_explicit(&t->overflow_used, true, memory_order_release);
    }
    return t->overflow;
}

/* The overflow series of values' shard (its last label) in a sharded
 * table, made on first use even past max_series so each shard's total
 * stays exact; the table-wide one when memory runs out. Caller holds
 * insert_lock. */
static struct counter_series *shard_overflow(struct counter_table *t,
                                             const struct label_value *values)
{
    const struct label_value *shard = &values[t->label_count - 1];
    if (is_overflow_value(shard)) /* that label set is the table-wide one */
        return table_overflow(t);
    struct overflow_node *o = atomic_load_explicit(&t->shard_overflows, memory_order_relaxed);
    for (; o; o = atomic_load_explicit(&o->next, memory_order_relaxed)) {
        struct counter_series *s = o->series;
        const char *p = series_bytes(t, s) + s->key_len - s->lens[t->label_count - 1];
        if (s->lens[t->label_count - 1] == shard->len && memcmp(p, shard->ptr, shard->len) == 0)
            return s;
    }
    struct label_value labels[COUNTER_TABLE_MAX_LABELS];
    for (size_t i = 0; i + 1 < t->label_count; i++)
        labels[i] = overflow_value;
    labels[t->label_count - 1] = *shard;
    struct counter_series *s = series_new(t, hash_labels(labels, t->label_count), labels);
    o = malloc(sizeof(*o));
    if (!s || !o) {
        free(s);
        free(o);
        return table_overflow(t);
    }
    o->series = s;
    atomic_init(&o->next, NULL);
    /* release: a reader that reaches the node sees it and its series filled. */
    if (t->shard_overflows_tail)
        atomic_store_explicit(&t->shard_overflows_tail->next, o, memory_order_release);
    else
        atomic_store_explicit(&t->shard_overflows, o, memory_order_release);
    t->shard_overflows_tail = o;
    atomic_fetch_add_explicit(&t->bytes, sizeof(*o) + series_size(t, s), memory_order_relaxed);
    return s;
}

/* Whether values name an overflow series itself (every label, or every
 * label but a sharded table's shard, "__overflow__"): a restore looks it
 * up by its labels, and it must not become a second, ordinary series. */
static bool names_overflow(const struct counter_table *t, const struct label_value *values)
{
    size_t n = t->sharded ? t->label_count - 1 : t->label_count;
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_overflow_value(&values[i]))
            return false;
    return true;
}

static struct counter_series *overflow_for(struct counter_table *t,
                                           const struct label_value *values)
{
    return t->sharded ? shard_overflow(t, values) : table_overflow(t);
}

/* The rare path of a lookup: creates the series, or returns the overflow
 * series when the table is full (or memory runs out), counting that. */
static struct counter_series *insert(struct counter_table *t, uint64_t hash,
                                     const struct label_value *values, bool bounded)
{
    struct counter_series *s;
    size_t slot;
    pthread_mutex_lock(&t->insert_lock);
    /* Another writer may have inserted this label set since our probe. */
    s = probe(t, hash, values, &slot);
    if (s)
        goto out;
    if (names_overflow(t, values)) {
        s = bounded ? NULL : overflow_for(t, values);
        goto out;
    }
    size_t n = atomic_load_explicit(&t->count, memory_order_relaxed);
    s = n < t->max_series ? series_new(t, hash, values) : NULL;
    if (!s && bounded)
        goto out;
    if (!s) {
        /* relaxed: a statistic, ordered with nothing. */
        atomic_fetch_add_explicit(&t->overflow_adds, 1, memory_order_relaxed);
        s = overflow_for(t, values);
        goto out;
    }
    t->list[n] = s;
    /* release: a renderer that reads count sees list[n] filled. */
    atomic_store_explicit(&t->count, n + 1, memory_order_release);
    /* release: a lookup that loads this slot sees the series filled. */
    atomic_store_explicit(&t->slots[slot], s, memory_order_release);
    atomic_fetch_add_explicit(&t->bytes, series_size(t, s), memory_order_relaxed);
out:
    pthread_mutex_unlock(&t->insert_lock);
    return s;
}

uint64_t counter_table_hash(const struct counter_table *t, const struct label_value *values)
{
    return hash_labels(values, t->label_count);
}

struct counter_series *counter_table_get_hashed(struct counter_table *t,
                                                const struct label_value *values, uint64_t hash)
{
    size_t slot;
    struct counter_series *s = probe(t, hash, values, &slot);
    return s ? s : insert(t, hash, values, false);
}

struct counter_series *counter_table_get_bounded(struct counter_table *t,
                                                 const struct label_value *values, uint64_t hash)
{
    size_t slot;
    struct counter_series *s = probe(t, hash, values, &slot);
    return s ? s : insert(t, hash, values, true);
}

struct counter_series *counter_table_get(struct counter_table *t, const struct label_value *values)
{
    return counter_table_get_hashed(t, values, hash_labels(values, t->label_count));
}

/* A live value at or past COUNTER_SATURATED reads as COUNTER_SATURATED. */
static inline uint64_t saturated(uint64_t v)
{
    return v < COUNTER_SATURATED ? v : COUNTER_SATURATED;
}

/*
 * Saturation (counter_table.h): the add is still one relaxed atomic add (a
 * fetch_add whose old value is checked). The writer that takes the value
 * to COUNTER_SATURATED or past stores COUNTER_SATURATED back; writers
 * racing with that store each add at most one delta more and store it
 * again, so with deltas below 2^54 (the per-event caps) and a few hundred
 * threads the value stays far below 2^64: it can never wrap, and readers
 * (who clamp) see it stop at COUNTER_SATURATED.
 */
void counter_series_add(struct counter_series *series, uint64_t delta)
{
    uint64_t old = atomic_fetch_add_explicit(&series->value, delta, memory_order_relaxed), sum;
    if (__builtin_expect(__builtin_add_overflow(old, delta, &sum) || sum >= COUNTER_SATURATED, 0))
        atomic_store_explicit(&series->value, COUNTER_SATURATED, memory_order_relaxed);
}

uint64_t counter_series_raise(struct counter_series *series, uint64_t v)
{
    /* relaxed: the value orders no other memory; whoever reads it with the
     * counters (a checkpoint, a restore) has stopped the writers first. */
    uint64_t old = atomic_load_explicit(&series->value, memory_order_relaxed);
    while (old < v && !atomic_compare_exchange_weak_explicit(
                          &series->value, &old, v, memory_order_relaxed, memory_order_relaxed))
        ;
    return old;
}

uint64_t counter_series_live(const struct counter_series *series)
{
    return saturated(
        atomic_load_explicit(&((struct counter_series *)series)->value, memory_order_relaxed));
}

void counter_series_publish(struct counter_series *series, uint64_t served, int64_t hold_until_ms)
{
    if (hold_until_ms == HIDDEN) /* a hold that never ends still shows the series */
        hold_until_ms = HIDDEN - 1;
    atomic_store_explicit(&series->served, saturated(served), memory_order_relaxed);
    /* release: a reader that sees the series shown sees at least this
     * served value (never a previous owner's older one). */
    atomic_store_explicit(&series->hold_until_ms, hold_until_ms, memory_order_release);
}

void counter_series_hide(struct counter_series *series)
{
    /* relaxed: hiding publishes nothing a reader then reads. */
    atomic_store_explicit(&series->hold_until_ms, HIDDEN, memory_order_relaxed);
}

void counter_series_set_live(struct counter_series *series, uint64_t live)
{
    atomic_store_explicit(&series->value, saturated(live), memory_order_relaxed);
}

void counter_series_set_checkpointed(struct counter_series *series, uint64_t value)
{
    atomic_store_explicit(&series->checkpointed, value, memory_order_relaxed);
    atomic_store_explicit(&series->checkpointed_ever, true, memory_order_relaxed);
}

void counter_table_add(struct counter_table *t, const struct label_value *values, uint64_t delta)
{
    counter_series_add(counter_table_get(t, values), delta);
}

size_t counter_table_label_count(const struct counter_table *t)
{
    return t->label_count;
}

const char *counter_table_label_name(const struct counter_table *t, size_t i)
{
    return i < t->label_count ? t->label_names[i] : NULL;
}

size_t counter_table_series_count(const struct counter_table *t)
{
    return atomic_load_explicit(&((struct counter_table *)t)->count, memory_order_acquire);
}

uint64_t counter_table_overflow_adds(const struct counter_table *t)
{
    return atomic_load_explicit(&((struct counter_table *)t)->overflow_adds, memory_order_relaxed);
}

size_t counter_table_memory_bytes(const struct counter_table *t)
{
    return atomic_load_explicit(&((struct counter_table *)t)->bytes, memory_order_relaxed);
}

static void fill_labels(const struct counter_table *t, struct counter_series *s,
                        struct counter_view *view)
{
    const char *p = series_bytes(t, s);
    for (size_t i = 0; i < t->label_count; i++) {
        view->labels[i].ptr = p;
        view->labels[i].len = s->lens[i];
        p += s->lens[i];
    }
    view->created_ms = s->created_ms;
    view->hash = s->hash;
    view->series = s;
}

/* Calls visit for each series: the listed ones, each shard's overflow
 * series, then the table-wide one if it was ever used. */
typedef int (*series_fn)(const struct counter_table *t, struct counter_series *s, bool overflow,
                         void *arg);

static int walk(const struct counter_table *t, series_fn fn, void *arg)
{
    /* acquire: pairs with the release in insert, so list[0..n) is filled. */
    size_t n = atomic_load_explicit(&((struct counter_table *)t)->count, memory_order_acquire);
    for (size_t i = 0; i < n; i++) {
        int rc = fn(t, t->list[i], false, arg);
        if (rc)
            return rc;
    }
    /* acquire: pairs with the release in shard_overflow. */
    struct overflow_node *o =
        atomic_load_explicit(&((struct counter_table *)t)->shard_overflows, memory_order_acquire);
    for (; o; o = atomic_load_explicit(&o->next, memory_order_acquire)) {
        int rc = fn(t, o->series, true, arg);
        if (rc)
            return rc;
    }
    /* acquire: pairs with the release in table_overflow. */
    if (!atomic_load_explicit(&((struct counter_table *)t)->overflow_used, memory_order_acquire))
        return 0;
    return fn(t, t->overflow, true, arg);
}

struct walk_args {
    counter_visit_fn visit;
    void *ctx;
    int64_t now_ms;
    struct counter_view view;
};

static int show_one(const struct counter_table *t, struct counter_series *s, bool overflow,
                    void *arg)
{
    struct walk_args *a = arg;
    /* acquire: pairs with the release in counter_series_publish. */
    int64_t hold = atomic_load_explicit(&s->hold_until_ms, memory_order_acquire);
    if (hold == HIDDEN)
        return 0;
    fill_labels(t, s, &a->view);
    a->view.overflow = overflow;
    a->view.value = 0;
    if (a->now_ms >= hold)
        a->view.value = t->checkpointed
                            ? atomic_load_explicit(&s->served, memory_order_relaxed)
                            : saturated(atomic_load_explicit(&s->value, memory_order_relaxed));
    return a->visit(&a->view, a->ctx);
}

int counter_table_foreach(const struct counter_table *t, int64_t now_ms, counter_visit_fn visit,
                          void *ctx)
{
    struct walk_args a = {.visit = visit, .ctx = ctx, .now_ms = now_ms};
    return walk(t, show_one, &a);
}

static int report_one(const struct counter_table *t, struct counter_series *s, bool overflow,
                      void *arg)
{
    struct walk_args *a = arg;
    struct counter_view *v = &a->view;
    fill_labels(t, s, v);
    v->overflow = overflow;
    v->live = saturated(atomic_load_explicit(&s->value, memory_order_relaxed));
    v->value = v->live;
    v->checkpointed = atomic_load_explicit(&s->checkpointed, memory_order_relaxed);
    v->checkpointed_ever = atomic_load_explicit(&s->checkpointed_ever, memory_order_relaxed);
    v->hold_until_ms = atomic_load_explicit(&s->hold_until_ms, memory_order_acquire);
    v->shown = v->hold_until_ms != HIDDEN;
    return a->visit(v, a->ctx);
}

int counter_table_foreach_all(const struct counter_table *t, counter_visit_fn visit, void *ctx)
{
    struct walk_args a = {.visit = visit, .ctx = ctx};
    return walk(t, report_one, &a);
}

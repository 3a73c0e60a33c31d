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

struct counter_series {
    _Atomic uint64_t value;
    uint64_t hash;
    int64_t created_ms;
    _Atomic uint32_t shown_to; /* viewer bits that have seen this series */
    _Atomic bool spread;       /* also added to from another origin than its creator's */
    uint32_t key_len;          /* total label bytes */
    uint32_t origin;           /* who created it, see counter_table_set_origin */
    int64_t origin_offset;
    uint16_t lens[]; /* label_count lengths, then the label bytes */
};

struct counter_table {
    size_t label_count;
    char *label_names[COUNTER_TABLE_MAX_LABELS];
    size_t max_series;
    size_t mask;
    _Atomic(struct counter_series *) *slots;
    struct counter_series **list; /* creation order, max_series entries */
    _Atomic size_t count;
    _Atomic uint64_t overflow_adds;
    _Atomic size_t bytes;
    struct counter_series *overflow;
    pthread_mutex_t insert_lock;
};

static _Thread_local uint32_t current_origin;
static _Thread_local int64_t current_origin_offset;

void counter_table_set_origin(uint32_t origin, int64_t offset)
{
    current_origin = origin;
    current_origin_offset = offset;
}

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
    atomic_init(&s->shown_to, 0);
    atomic_init(&s->spread, false);
    s->origin = current_origin;
    s->origin_offset = current_origin_offset;
    s->hash = hash;
    s->created_ms = wall_ms();
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

struct counter_table *counter_table_new(const char *const *label_names, size_t label_count,
                                        size_t max_series)
{
    if (label_count == 0 || label_count > COUNTER_TABLE_MAX_LABELS || max_series == 0)
        return NULL;
    struct counter_table *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->label_count = label_count;
    t->max_series = max_series;
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
        overflow[i] =
            (struct label_value){COUNTER_OVERFLOW_VALUE, (uint32_t)strlen(COUNTER_OVERFLOW_VALUE)};
    t->overflow = series_new(t, 0, overflow);
    if (!t->overflow)
        goto fail;
    atomic_init(&t->bytes, cap * sizeof(*t->slots) + max_series * sizeof(*t->list));
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

static struct counter_series *insert(struct counter_table *t, uint64_t hash,
                                     const struct label_value *values)
{
    struct counter_series *s;
    size_t slot;
    pthread_mutex_lock(&t->insert_lock);
    /* Another writer may have inserted this label set since our probe. */
    s = probe(t, hash, values, &slot);
    if (s)
        goto out;
    size_t n = atomic_load_explicit(&t->count, memory_order_relaxed);
    if (n >= t->max_series) {
        s = NULL;
        goto out;
    }
    s = series_new(t, hash, values);
    if (!s)
        goto out;
    t->list[n] = s;
    /* release: a renderer that reads count sees list[n] filled. */
    atomic_store_explicit(&t->count, n + 1, memory_order_release);
    /* release: a lookup that loads this slot sees the series filled. */
    atomic_store_explicit(&t->slots[slot], s, memory_order_release);
    atomic_fetch_add_explicit(&t->bytes,
                              sizeof(*s) + t->label_count * sizeof(uint16_t) + s->key_len,
                              memory_order_relaxed);
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
    if (!s)
        s = insert(t, hash, values);
    if (s && s->origin != current_origin &&
        !atomic_load_explicit(&s->spread, memory_order_relaxed)) {
        /* relaxed: a sticky flag read by scrapes; its ordering with the
         * increments is given by the partition offsets' release/acquire. */
        atomic_store_explicit(&s->spread, true, memory_order_relaxed);
    }
    if (!s) {
        /* relaxed: a statistic, ordered with nothing. */
        atomic_fetch_add_explicit(&t->overflow_adds, 1, memory_order_relaxed);
        s = t->overflow;
    }
    return s;
}

struct counter_series *counter_table_get(struct counter_table *t, const struct label_value *values)
{
    return counter_table_get_hashed(t, values, hash_labels(values, t->label_count));
}

void counter_series_add(struct counter_series *series, uint64_t delta)
{
    atomic_fetch_add_explicit(&series->value, delta, memory_order_relaxed);
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

static void fill_view(const struct counter_table *t, struct counter_series *s, uint32_t viewer,
                      bool mark, struct counter_view *view)
{
    const char *p = series_bytes(t, s);
    for (size_t i = 0; i < t->label_count; i++) {
        view->labels[i].ptr = p;
        view->labels[i].len = s->lens[i];
        p += s->lens[i];
    }
    view->value = atomic_load_explicit(&s->value, memory_order_relaxed);
    view->created_ms = s->created_ms;
    view->first_sight = false;
    view->origin = s->origin;
    view->origin_offset = s->origin_offset;
    view->hash = s->hash;
    view->spread = atomic_load_explicit(&s->spread, memory_order_relaxed);
    view->series = s;
    /* relaxed: the bits are read and set by scrapes only, which the HTTP
     * server runs one at a time. The plain load first keeps the common
     * case (already shown) free of an RMW. */
    if (viewer && !(atomic_load_explicit(&s->shown_to, memory_order_relaxed) & viewer)) {
        if (mark)
            atomic_fetch_or_explicit(&s->shown_to, viewer, memory_order_relaxed);
        view->value = 0;
        view->first_sight = true;
    }
}

void counter_table_mark_shown(struct counter_series *s, uint32_t viewer)
{
    atomic_fetch_or_explicit(&s->shown_to, viewer, memory_order_relaxed);
}

static int visit_all(const struct counter_table *t, uint32_t viewer, bool mark,
                     counter_visit_fn visit, void *ctx)
{
    struct counter_view view;
    /* acquire: pairs with the release in insert, so list[0..n) is filled. */
    size_t n = atomic_load_explicit(&((struct counter_table *)t)->count, memory_order_acquire);
    view.overflow = false;
    for (size_t i = 0; i < n; i++) {
        fill_view(t, t->list[i], viewer, mark, &view);
        int rc = visit(&view, ctx);
        if (rc)
            return rc;
    }
    if (counter_table_overflow_adds(t) == 0)
        return 0;
    fill_view(t, t->overflow, viewer, mark, &view);
    view.overflow = true;
    return visit(&view, ctx);
}

int counter_table_foreach(const struct counter_table *t, uint32_t viewer, counter_visit_fn visit,
                          void *ctx)
{
    return visit_all(t, viewer, true, visit, ctx);
}

int counter_table_foreach_peek(const struct counter_table *t, uint32_t viewer,
                               counter_visit_fn visit, void *ctx)
{
    return visit_all(t, viewer, false, visit, ctx);
}

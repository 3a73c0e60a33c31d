/* test_counter_table.c - the labeled counter table: lookups, label
 * boundaries, the series cap and overflow (per shard in a sharded table),
 * what readers are shown (a plain table's hold, a checkpointed table's
 * hide/publish/hold, driven by the now_ms passed in), the checkpointer's
 * view of every series, and multi-threaded stress tests whose exact sums
 * are checked (run under TSan by the sanitizer build). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "counter_table.h"

static const char *const names2[] = {"team", "project"};

/* A wall clock for tables without a hold (any instant shows the values). */
#define NOW ((int64_t)1700000000000)

static struct label_value lv(const char *s)
{
    return (struct label_value){s, (uint32_t)strlen(s)};
}

struct collected {
    size_t n;
    char keys[64][64];
    uint64_t values[64];
    bool overflow[64];
};

static int collect(const struct counter_view *v, void *ctx)
{
    struct collected *c = ctx;
    snprintf(c->keys[c->n], sizeof(c->keys[0]), "%.*s|%.*s", (int)v->labels[0].len,
             v->labels[0].ptr, (int)v->labels[1].len, v->labels[1].ptr);
    c->values[c->n] = v->value;
    c->overflow[c->n] = v->overflow;
    c->n++;
    return 0;
}

static void test_add_and_lookup(void **state)
{
    (void)state;
    struct counter_table *t = counter_table_new(names2, 2, 100, NULL);
    assert_non_null(t);
    struct label_value a[] = {lv("ml"), lv("chat")};
    struct label_value b[] = {lv("ml"), lv("search")};
    counter_table_add(t, a, 5);
    counter_table_add(t, b, 7);
    counter_table_add(t, a, 10);
    assert_ptr_equal(counter_table_get(t, a), counter_table_get(t, a));
    assert_int_equal(counter_table_series_count(t), 2);
    struct collected c = {0};
    counter_table_foreach(t, NOW, collect, &c);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.keys[0], "ml|chat");
    assert_int_equal(c.values[0], 15);
    assert_string_equal(c.keys[1], "ml|search");
    assert_int_equal(c.values[1], 7);
    counter_table_free(t);
}

static void test_label_boundaries_distinct(void **state)
{
    (void)state;
    /* ("ab","c") and ("a","bc") concatenate to the same bytes. */
    struct counter_table *t = counter_table_new(names2, 2, 100, NULL);
    struct label_value x[] = {lv("ab"), lv("c")};
    struct label_value y[] = {lv("a"), lv("bc")};
    struct label_value z[] = {lv(""), lv("abc")};
    counter_table_add(t, x, 1);
    counter_table_add(t, y, 2);
    counter_table_add(t, z, 4);
    assert_int_equal(counter_table_series_count(t), 3);
    struct collected c = {0};
    counter_table_foreach(t, NOW, collect, &c);
    assert_int_equal(c.values[0] + c.values[1] * 10 + c.values[2] * 100, 1 + 20 + 400);
    counter_table_free(t);
}

static void test_cap_and_overflow(void **state)
{
    (void)state;
    struct counter_table *t = counter_table_new(names2, 2, 3, NULL);
    char team[16];
    uint64_t total = 0;
    for (int i = 0; i < 10; i++) {
        snprintf(team, sizeof(team), "t%d", i);
        struct label_value v[] = {lv(team), lv("p")};
        counter_table_add(t, v, (uint64_t)(i + 1));
        total += (uint64_t)(i + 1);
    }
    /* An existing series still takes increments past the cap. */
    struct label_value first[] = {lv("t0"), lv("p")};
    counter_table_add(t, first, 100);
    total += 100;
    assert_int_equal(counter_table_series_count(t), 3);
    assert_int_equal(counter_table_overflow_adds(t), 7);
    struct collected c = {0};
    counter_table_foreach(t, NOW, collect, &c);
    assert_int_equal(c.n, 4);
    assert_true(c.overflow[3]);
    assert_string_equal(c.keys[3], "__overflow__|__overflow__");
    assert_int_equal(c.values[3], 4 + 5 + 6 + 7 + 8 + 9 + 10);
    uint64_t sum = 0;
    for (size_t i = 0; i < c.n; i++)
        sum += c.values[i];
    assert_int_equal(sum, total);
    counter_table_free(t);
}

static void test_no_overflow_series_when_unused(void **state)
{
    (void)state;
    struct counter_table *t = counter_table_new(names2, 2, 3, NULL);
    struct label_value v[] = {lv("a"), lv("b")};
    counter_table_add(t, v, 1);
    struct collected c = {0};
    counter_table_foreach(t, NOW, collect, &c);
    assert_int_equal(c.n, 1);
    counter_table_free(t);
}

/* Callers that look several tables up with the same values hash each value
 * once (label_hash) and combine (label_set_hash): the same hash and the same
 * series as counter_table_get. */
static void test_hashed_lookup(void **state)
{
    (void)state;
    struct counter_table *t = counter_table_new(names2, 2, 10, NULL);
    struct label_value a[] = {lv("ml"), lv("chat")}, swapped[] = {lv("chat"), lv("ml")};
    struct label_value split1[] = {lv("ab"), lv("c")}, split2[] = {lv("a"), lv("bc")};
    uint64_t ha[] = {label_hash("ml", 2), label_hash("chat", 4)};
    assert_int_equal(label_set_hash(ha, 2), counter_table_hash(t, a));
    struct counter_series *s = counter_table_get_hashed(t, a, label_set_hash(ha, 2));
    assert_ptr_equal(s, counter_table_get(t, a));
    assert_int_equal(counter_table_series_count(t), 1);
    /* order and the split between values are part of the identity */
    assert_int_not_equal(counter_table_hash(t, swapped), counter_table_hash(t, a));
    assert_int_not_equal(counter_table_hash(t, split1), counter_table_hash(t, split2));
    /* an empty value is a value: ("", "x") is not ("x", "") nor ("x") */
    struct label_value e1[] = {lv(""), lv("x")}, e2[] = {lv("x"), lv("")};
    assert_int_not_equal(counter_table_hash(t, e1), counter_table_hash(t, e2));
    uint64_t hx = label_hash("x", 1);
    assert_int_not_equal(label_set_hash(&hx, 1), counter_table_hash(t, e2));
    counter_table_free(t);

    /* Checkpoints name series by this hash across processes and versions,
     * so this known answer is pinned: a change breaks every restore. */
    const char *const names3[] = {"team", "project", "source"};
    struct counter_table *c = counter_table_new(names3, 3, 10, NULL);
    struct label_value v[] = {lv("ml-platform"), lv("chat"), lv("openai-api")};
    assert_int_equal(counter_table_hash(c, v), 0x261e13391574ffdbULL);
    counter_table_free(c);
}

/* Label bytes are compared whenever the hashes agree. Forcing one hash
 * onto two label sets that differ in a single byte, at every position of
 * values 1 to 24 bytes long, must still give two series. */
static void test_equal_hash_different_bytes(void **state)
{
    (void)state;
    const char *const one[] = {"v"};
    for (size_t len = 1; len <= 24; len++) {
        for (size_t at = 0; at < len; at++) {
            struct counter_table *t = counter_table_new(one, 1, 4, NULL);
            char a[32], b[32];
            memset(a, 'x', len);
            memcpy(b, a, len);
            b[at] = 'y';
            struct label_value va[] = {{a, (uint32_t)len}}, vb[] = {{b, (uint32_t)len}};
            uint64_t h = counter_table_hash(t, va);
            struct counter_series *sa = counter_table_get_hashed(t, va, h);
            assert_ptr_equal(counter_table_get_hashed(t, va, h), sa);
            assert_ptr_not_equal(counter_table_get_hashed(t, vb, h), sa);
            assert_int_equal(counter_table_series_count(t), 2);
            counter_table_free(t);
        }
    }
}

/* One series' view, found by its first label. */
struct found {
    const char *first;
    size_t n; /* visits that matched */
    struct counter_view view;
    size_t total; /* visits */
};

static int find_visit(const struct counter_view *v, void *ctx)
{
    struct found *f = ctx;
    f->total++;
    if (v->labels[0].len == strlen(f->first) &&
        memcmp(v->labels[0].ptr, f->first, v->labels[0].len) == 0) {
        f->n++;
        f->view = *v;
    }
    return 0;
}

static struct found shown(const struct counter_table *t, int64_t now, const char *first)
{
    struct found f = {.first = first};
    counter_table_foreach(t, now, find_visit, &f);
    return f;
}

static struct found reported(const struct counter_table *t, const char *first)
{
    struct found f = {.first = first};
    counter_table_foreach_all(t, find_visit, &f);
    return f;
}

/* A plain table shows a new series as 0 until created + hold_ms, then its
 * live value; the instant is the caller's now_ms. */
static void test_plain_hold(void **state)
{
    (void)state;
    struct counter_table_options opt = {.hold_ms = 1000};
    struct counter_table *t = counter_table_new(names2, 2, 10, &opt);
    struct label_value v[] = {lv("a"), lv("b")};
    counter_table_add(t, v, 5);
    struct found f = shown(t, NOW, "a");
    assert_int_equal(f.n, 1);
    int64_t created = f.view.created_ms;
    assert_true(created > 0);
    f = shown(t, created + 999, "a");
    assert_int_equal(f.n, 1);
    assert_int_equal(f.view.value, 0);
    f = shown(t, created + 1000, "a");
    assert_int_equal(f.view.value, 5);
    counter_table_add(t, v, 2);
    assert_int_equal(shown(t, created + 5000, "a").view.value, 7);
    /* who reads, and how often, does not matter: the clock does */
    assert_int_equal(shown(t, created + 999, "a").view.value, 0);
    counter_table_free(t);

    /* no hold (options NULL or hold 0): the value at once, at any instant */
    t = counter_table_new(names2, 2, 10, NULL);
    counter_table_add(t, v, 5);
    assert_int_equal(shown(t, 0, "a").view.value, 5);
    counter_table_free(t);
}

/* A plain table's overflow series is shown once something went to it,
 * held like a new series from that first add. */
static void test_plain_overflow_hold(void **state)
{
    (void)state;
    struct counter_table_options opt = {.hold_ms = 1000};
    struct counter_table *t = counter_table_new(names2, 2, 1, &opt);
    struct label_value a[] = {lv("a"), lv("b")}, c[] = {lv("c"), lv("d")};
    counter_table_add(t, a, 1);
    assert_int_equal(shown(t, INT64_MAX, "__overflow__").n, 0);
    counter_table_add(t, c, 9);
    struct found f = shown(t, INT64_MAX, "__overflow__");
    assert_int_equal(f.n, 1);
    assert_true(f.view.overflow);
    assert_int_equal(f.view.value, 9);
    int64_t first_add = f.view.created_ms;
    assert_true(first_add >= shown(t, NOW, "a").view.created_ms);
    assert_int_equal(shown(t, first_add + 999, "__overflow__").view.value, 0);
    assert_int_equal(shown(t, first_add + 1000, "__overflow__").view.value, 9);
    counter_table_free(t);
}

/* A checkpointed table hides a series until it is published, then shows
 * the published value (not the live one), as 0 until hold_until. */
static void test_checkpointed_hide_publish_hold(void **state)
{
    (void)state;
    struct counter_table_options opt = {.checkpointed = true, .hold_ms = 1000};
    struct counter_table *t = counter_table_new(names2, 2, 10, &opt);
    struct label_value v[] = {lv("a"), lv("b")};
    struct counter_series *s = counter_table_get(t, v);
    counter_series_add(s, 5);
    assert_int_equal(counter_series_live(s), 5);
    struct found f = shown(t, INT64_MAX, "a");
    assert_int_equal(f.total, 0); /* hidden: hold_ms plays no part */

    const int64_t hold = NOW + 35000;
    counter_series_publish(s, 3, hold);
    f = shown(t, hold - 1, "a");
    assert_int_equal(f.n, 1);
    assert_int_equal(f.view.value, 0);
    assert_int_equal(shown(t, hold, "a").view.value, 3);
    counter_series_add(s, 100); /* live moves on, readers see the published value */
    assert_int_equal(shown(t, hold, "a").view.value, 3);
    counter_series_publish(s, 105, hold);
    assert_int_equal(shown(t, hold, "a").view.value, 105);
    assert_int_equal(shown(t, hold - 1, "a").view.value, 0);

    counter_series_hide(s);
    assert_int_equal(shown(t, INT64_MAX, "a").total, 0);
    counter_series_publish(s, 105, 0); /* 0: no hold */
    assert_int_equal(shown(t, 0, "a").view.value, 105);
    /* a hold that never ends is a hold, not a hide */
    counter_series_publish(s, 105, INT64_MAX);
    f = shown(t, INT64_MAX - 2, "a");
    assert_int_equal(f.n, 1);
    assert_int_equal(f.view.value, 0);
    counter_table_free(t);
}

/* The checkpointer sees every series, shown or not, with its live value
 * and its own bookkeeping. */
static void test_foreach_all_raw(void **state)
{
    (void)state;
    struct counter_table_options opt = {.checkpointed = true};
    struct counter_table *t = counter_table_new(names2, 2, 10, &opt);
    struct label_value a[] = {lv("a"), lv("x")}, b[] = {lv("b"), lv("x")};
    struct counter_series *sa = counter_table_get(t, a), *sb = counter_table_get(t, b);
    counter_series_add(sa, 7);
    counter_series_add(sb, 11);
    counter_series_publish(sb, 4, NOW + 10);

    struct found f = reported(t, "a");
    assert_int_equal(f.total, 2);
    assert_int_equal(f.n, 1);
    assert_int_equal(f.view.value, 7);
    assert_int_equal(f.view.live, 7);
    assert_false(f.view.shown);
    assert_int_equal(f.view.hold_until_ms, INT64_MAX);
    assert_false(f.view.checkpointed_ever);
    assert_false(f.view.overflow);
    assert_ptr_equal(f.view.series, sa);
    assert_int_equal(f.view.hash, counter_table_hash(t, a));

    f = reported(t, "b");
    assert_int_equal(f.view.value, 11); /* live, not the published 4 */
    assert_int_equal(f.view.live, 11);
    assert_true(f.view.shown);
    assert_int_equal(f.view.hold_until_ms, NOW + 10);

    counter_series_set_checkpointed(sa, 0); /* a checkpoint that held 0 still counts */
    counter_series_set_checkpointed(sb, 11);
    counter_series_set_live(sb, 20); /* a restore */
    f = reported(t, "a");
    assert_true(f.view.checkpointed_ever);
    assert_int_equal(f.view.checkpointed, 0);
    f = reported(t, "b");
    assert_true(f.view.checkpointed_ever);
    assert_int_equal(f.view.checkpointed, 11);
    assert_int_equal(f.view.live, 20);
    assert_int_equal(counter_series_live(sb), 20);
    assert_int_equal(shown(t, NOW + 10, "b").view.value, 4); /* readers: still published */
    counter_table_free(t);
}

struct shard_sums {
    uint64_t value[4];  /* by shard s0..s3 */
    size_t overflow[4]; /* overflow series seen per shard */
    size_t n;
    bool bad_label;
};

static int shard_visit(const struct counter_view *v, void *ctx)
{
    struct shard_sums *s = ctx;
    const struct label_value *shard = &v->labels[1];
    if (shard->len != 2 || shard->ptr[0] != 's' || shard->ptr[1] < '0' || shard->ptr[1] > '3') {
        s->bad_label = true;
        return 0;
    }
    int i = shard->ptr[1] - '0';
    s->value[i] += v->value;
    if (v->overflow) {
        s->overflow[i]++;
        if (v->labels[0].len != strlen(COUNTER_OVERFLOW_VALUE) ||
            memcmp(v->labels[0].ptr, COUNTER_OVERFLOW_VALUE, v->labels[0].len) != 0)
            s->bad_label = true;
    }
    s->n++;
    return 0;
}

/* Past max_series a sharded table sends a new label set to its shard's
 * own overflow series (every label "__overflow__" but the shard), made
 * even past the cap, so each shard's total stays exact. */
static void test_sharded_overflow_keeps_shard(void **state)
{
    (void)state;
    static const char *const names[] = {"team", "shard"};
    struct counter_table_options opt = {.sharded = true};
    struct counter_table *t = counter_table_new(names, 2, 2, &opt);
    struct label_value a0[] = {lv("a"), lv("s0")}, b0[] = {lv("b"), lv("s0")};
    struct label_value c0[] = {lv("c"), lv("s0")}, d1[] = {lv("d"), lv("s1")};
    struct label_value e1[] = {lv("e"), lv("s1")}, f2[] = {lv("f"), lv("s2")};
    counter_table_add(t, a0, 1);
    counter_table_add(t, b0, 2);
    counter_table_add(t, c0, 4);  /* past the cap: __overflow__/s0 */
    counter_table_add(t, d1, 8);  /* __overflow__/s1, created past the cap */
    counter_table_add(t, e1, 16); /* the same __overflow__/s1 */
    counter_table_add(t, c0, 32);
    counter_table_add(t, f2, 64);
    counter_table_add(t, a0, 128); /* an existing series still takes adds */
    assert_int_equal(counter_table_series_count(t), 2);
    assert_int_equal(counter_table_overflow_adds(t), 5);
    struct shard_sums sums = {0};
    counter_table_foreach(t, NOW, shard_visit, &sums);
    assert_false(sums.bad_label);
    assert_int_equal(sums.n, 2 + 3);
    assert_int_equal(sums.value[0], 1 + 2 + 4 + 32 + 128);
    assert_int_equal(sums.value[1], 8 + 16);
    assert_int_equal(sums.value[2], 64);
    assert_int_equal(sums.overflow[0], 1);
    assert_int_equal(sums.overflow[1], 1);
    assert_int_equal(sums.overflow[2], 1);

    /* a restore finds an overflow series by its labels: the same series,
     * not a new ordinary one, and no overflow add counted */
    struct label_value o1[] = {lv(COUNTER_OVERFLOW_VALUE), lv("s1")};
    struct counter_series *s = counter_table_get(t, o1);
    assert_int_equal(counter_series_live(s), 8 + 16);
    assert_int_equal(counter_table_overflow_adds(t), 5);
    struct found f = reported(t, COUNTER_OVERFLOW_VALUE);
    assert_int_equal(f.n, 3);
    assert_true(f.view.overflow);
    assert_int_equal(f.view.hash, counter_table_hash(t, f.view.labels));
    counter_table_free(t);

    /* the same in a plain, unsharded table: one table-wide overflow series */
    t = counter_table_new(names2, 2, 1, NULL);
    counter_table_add(t, a0, 1);
    counter_table_add(t, c0, 2);
    struct label_value oo[] = {lv(COUNTER_OVERFLOW_VALUE), lv(COUNTER_OVERFLOW_VALUE)};
    assert_int_equal(counter_series_live(counter_table_get(t, oo)), 2);
    assert_int_equal(counter_table_series_count(t), 1);
    assert_int_equal(counter_table_overflow_adds(t), 1);
    counter_table_free(t);
}

/* A checkpointed, sharded table's overflow series are hidden until
 * published, like any series, and the checkpointer sees them. */
static void test_sharded_checkpointed_overflow(void **state)
{
    (void)state;
    static const char *const names[] = {"team", "shard"};
    struct counter_table_options opt = {.checkpointed = true, .sharded = true};
    struct counter_table *t = counter_table_new(names, 2, 1, &opt);
    struct label_value a0[] = {lv("a"), lv("s0")}, b3[] = {lv("b"), lv("s3")};
    counter_table_add(t, a0, 1);
    counter_table_add(t, b3, 5);
    assert_int_equal(shown(t, NOW, COUNTER_OVERFLOW_VALUE).total, 0);
    struct found f = reported(t, COUNTER_OVERFLOW_VALUE);
    assert_int_equal(f.n, 1);
    assert_true(f.view.overflow);
    assert_false(f.view.shown);
    assert_int_equal(f.view.live, 5);
    assert_int_equal(f.view.labels[1].len, 2);
    assert_memory_equal(f.view.labels[1].ptr, "s3", 2);
    counter_series_publish(f.view.series, 5, 0);
    f = shown(t, NOW, COUNTER_OVERFLOW_VALUE);
    assert_int_equal(f.n, 1);
    assert_int_equal(f.view.value, 5);
    counter_table_free(t);
}

#define STRESS_THREADS 4
#define STRESS_KEYS    500
#define STRESS_ROUNDS  200

struct stress_arg {
    struct counter_table *table;
    int id;
};

static void *stress_writer(void *p)
{
    struct stress_arg *a = p;
    char team[32], project[32];
    for (int r = 0; r < STRESS_ROUNDS; r++) {
        for (int k = 0; k < STRESS_KEYS; k++) {
            /* Each thread walks the keys in a different order so inserts
             * of the same new key race. */
            int key = (k * (a->id * 2 + 1) + r) % STRESS_KEYS;
            snprintf(team, sizeof(team), "team-%d", key % 37);
            snprintf(project, sizeof(project), "project-%d", key);
            struct label_value v[] = {lv(team), lv(project)};
            counter_table_add(a->table, v, (uint64_t)key + 1);
        }
    }
    return NULL;
}

struct reader_arg {
    struct counter_table *table;
    volatile int *stop;
    size_t scans;
};

static int count_visit(const struct counter_view *v, void *ctx)
{
    size_t *n = ctx;
    (*n) += v->labels[0].len > 0;
    return 0;
}

static void *stress_reader(void *p)
{
    struct reader_arg *a = p;
    while (!__atomic_load_n(a->stop, __ATOMIC_ACQUIRE)) {
        size_t n = 0;
        counter_table_foreach(a->table, NOW, count_visit, &n);
        a->scans++;
    }
    return NULL;
}

struct sum_acc {
    uint64_t sum;
    size_t n;
};

static int sum_visit(const struct counter_view *v, void *ctx)
{
    struct sum_acc *acc = ctx;
    /* project-K must hold exactly (K+1) * rounds * threads */
    char project[32];
    snprintf(project, sizeof(project), "%.*s", (int)v->labels[1].len, v->labels[1].ptr);
    int k = atoi(project + strlen("project-"));
    if (v->value != (uint64_t)(k + 1) * STRESS_ROUNDS * STRESS_THREADS)
        fail_msg("series project-%d holds %llu", k, (unsigned long long)v->value);
    acc->sum += v->value;
    acc->n++;
    return 0;
}

static void test_concurrent_exact_sums(void **state)
{
    (void)state;
    struct counter_table *t = counter_table_new(names2, 2, 100000, NULL);
    pthread_t writers[STRESS_THREADS], reader;
    struct stress_arg args[STRESS_THREADS];
    volatile int stop = 0;
    struct reader_arg ra = {t, &stop, 0};
    pthread_create(&reader, NULL, stress_reader, &ra);
    for (int i = 0; i < STRESS_THREADS; i++) {
        args[i] = (struct stress_arg){t, i};
        pthread_create(&writers[i], NULL, stress_writer, &args[i]);
    }
    for (int i = 0; i < STRESS_THREADS; i++)
        pthread_join(writers[i], NULL);
    __atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
    pthread_join(reader, NULL);

    assert_int_equal(counter_table_series_count(t), STRESS_KEYS);
    assert_int_equal(counter_table_overflow_adds(t), 0);
    uint64_t expect = 0;
    for (int k = 0; k < STRESS_KEYS; k++)
        expect += (uint64_t)(k + 1) * STRESS_ROUNDS * STRESS_THREADS;
    struct sum_acc acc = {0, 0};
    counter_table_foreach(t, NOW, sum_visit, &acc);
    assert_int_equal(acc.n, STRESS_KEYS);
    assert_int_equal(acc.sum, expect);
    counter_table_free(t);
}

/* Writers on a checkpointed, sharded table past its cap, a checkpointer
 * publishing what changed, and a reader, all at once: after a last
 * checkpoint readers see each shard's exact total. */
#define SHARDS 4

struct cp_arg {
    struct counter_table *table;
    volatile int *stop;
    size_t rounds;
};

static int checkpoint_visit(const struct counter_view *v, void *ctx)
{
    (void)ctx;
    if (!v->checkpointed_ever || v->live != v->checkpointed) {
        counter_series_set_checkpointed(v->series, v->live);
        counter_series_publish(v->series, v->live, 0);
    }
    return 0;
}

static void *checkpointer(void *p)
{
    struct cp_arg *a = p;
    while (!__atomic_load_n(a->stop, __ATOMIC_ACQUIRE)) {
        counter_table_foreach_all(a->table, checkpoint_visit, NULL);
        a->rounds++;
    }
    return NULL;
}

static void *sharded_writer(void *p)
{
    struct stress_arg *a = p;
    char team[32], shard[8];
    for (int r = 0; r < STRESS_ROUNDS / 4; r++) {
        for (int k = 0; k < STRESS_KEYS; k++) {
            int key = (k * (a->id * 2 + 1) + r) % STRESS_KEYS;
            snprintf(team, sizeof(team), "team-%d", key);
            snprintf(shard, sizeof(shard), "s%d", key % SHARDS);
            struct label_value v[] = {lv(team), lv(shard)};
            counter_table_add(a->table, v, (uint64_t)key + 1);
        }
    }
    return NULL;
}

static void *sharded_reader(void *p)
{
    struct reader_arg *a = p;
    while (!__atomic_load_n(a->stop, __ATOMIC_ACQUIRE)) {
        struct shard_sums sums = {0};
        counter_table_foreach(a->table, NOW, shard_visit, &sums);
        a->scans++;
    }
    return NULL;
}

static void test_concurrent_checkpointed_shards(void **state)
{
    (void)state;
    static const char *const names[] = {"team", "shard"};
    struct counter_table_options opt = {.checkpointed = true, .sharded = true};
    /* half the label sets fit; the rest land in their shard's overflow */
    struct counter_table *t = counter_table_new(names, 2, STRESS_KEYS / 2, &opt);
    pthread_t writers[STRESS_THREADS], reader, cp;
    struct stress_arg args[STRESS_THREADS];
    volatile int stop = 0;
    struct reader_arg ra = {t, &stop, 0};
    struct cp_arg ca = {t, &stop, 0};
    pthread_create(&reader, NULL, sharded_reader, &ra);
    pthread_create(&cp, NULL, checkpointer, &ca);
    for (int i = 0; i < STRESS_THREADS; i++) {
        args[i] = (struct stress_arg){t, i};
        pthread_create(&writers[i], NULL, sharded_writer, &args[i]);
    }
    for (int i = 0; i < STRESS_THREADS; i++)
        pthread_join(writers[i], NULL);
    __atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
    pthread_join(reader, NULL);
    pthread_join(cp, NULL);
    counter_table_foreach_all(t, checkpoint_visit, NULL); /* the last checkpoint */

    uint64_t expect[SHARDS] = {0};
    for (int k = 0; k < STRESS_KEYS; k++)
        expect[k % SHARDS] += (uint64_t)(k + 1) * (STRESS_ROUNDS / 4) * STRESS_THREADS;
    struct shard_sums sums = {0};
    counter_table_foreach(t, NOW, shard_visit, &sums);
    assert_false(sums.bad_label);
    assert_int_equal(sums.n, STRESS_KEYS / 2 + SHARDS);
    for (int i = 0; i < SHARDS; i++) {
        assert_int_equal(sums.value[i], expect[i]);
        assert_int_equal(sums.overflow[i], 1);
    }
    counter_table_free(t);
}

/* Saturation: a series that reaches COUNTER_SATURATED (2^63) stays there:
 * it never wraps and never goes backwards, in the live value, the reader's
 * view (plain and checkpointed) and what a restore sets. */
static void test_saturation(void **state)
{
    (void)state;
    struct counter_table *t = counter_table_new(names2, 2, 100, NULL);
    assert_non_null(t);
    struct label_value a[] = {lv("ml"), lv("chat")};
    struct counter_series *s = counter_table_get(t, a);
    const uint64_t step = (1ULL << 54) - 1; /* the largest delta allowed */
    uint64_t sum = 0, last = 0;
    /* 1100 x (2^54 - 1) is past 2^64: without saturation the sum would
     * wrap (to about 76 x 2^54), and the reader's clamp could not hide it. */
    for (int i = 0; i < 1100; i++) {
        counter_series_add(s, step);
        sum = sum + step < sum ? UINT64_MAX : sum + step;
        uint64_t live = counter_series_live(s);
        assert_true(live >= last); /* never backwards */
        assert_int_equal(live, sum < COUNTER_SATURATED ? sum : COUNTER_SATURATED);
        last = live;
    }
    assert_int_equal(counter_series_live(s), COUNTER_SATURATED);
    /* the value just below the limit is exact, the limit itself sticks */
    struct label_value b[] = {lv("ml"), lv("edge")};
    struct counter_series *e = counter_table_get(t, b);
    counter_series_set_live(e, COUNTER_SATURATED - 2);
    counter_series_add(e, 1);
    assert_int_equal(counter_series_live(e), COUNTER_SATURATED - 1);
    counter_series_add(e, 1);
    assert_int_equal(counter_series_live(e), COUNTER_SATURATED);
    counter_series_add(e, 0);
    counter_series_add(e, step);
    assert_int_equal(counter_series_live(e), COUNTER_SATURATED);
    struct collected c = {0};
    counter_table_foreach(t, NOW, collect, &c);
    assert_int_equal(c.n, 2);
    assert_int_equal(c.values[0], COUNTER_SATURATED);
    assert_int_equal(c.values[1], COUNTER_SATURATED);
    /* a restore of a larger (corrupt) value reads as the limit */
    counter_series_set_live(e, UINT64_MAX);
    assert_int_equal(counter_series_live(e), COUNTER_SATURATED);
    counter_table_free(t);

    /* checkpointed: the served value is clamped as well */
    struct counter_table_options opt = {.checkpointed = true};
    t = counter_table_new(names2, 2, 100, &opt);
    assert_non_null(t);
    s = counter_table_get(t, a);
    counter_series_publish(s, UINT64_MAX, 0);
    memset(&c, 0, sizeof(c));
    counter_table_foreach(t, NOW, collect, &c);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.values[0], COUNTER_SATURATED);
    counter_table_free(t);
}

/* Many threads adding the largest delta past the limit at once: the value
 * ends at exactly COUNTER_SATURATED (a wrap would leave it small). */
struct sat_arg {
    struct counter_series *s;
};

static void *sat_worker(void *p)
{
    struct sat_arg *a = p;
    /* 8 x 1200 adds: a wrapped sum would be about 384 x 2^54, below 2^63 */
    for (int i = 0; i < 1200; i++)
        counter_series_add(a->s, (1ULL << 54) - 1);
    return NULL;
}

static void test_saturation_concurrent(void **state)
{
    (void)state;
    struct counter_table *t = counter_table_new(names2, 2, 100, NULL);
    assert_non_null(t);
    struct label_value a[] = {lv("ml"), lv("chat")};
    struct sat_arg arg = {counter_table_get(t, a)};
    pthread_t th[8];
    for (int i = 0; i < 8; i++)
        assert_int_equal(pthread_create(&th[i], NULL, sat_worker, &arg), 0);
    for (int i = 0; i < 8; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(counter_series_live(arg.s), COUNTER_SATURATED);
    counter_table_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_and_lookup),
        cmocka_unit_test(test_label_boundaries_distinct),
        cmocka_unit_test(test_cap_and_overflow),
        cmocka_unit_test(test_no_overflow_series_when_unused),
        cmocka_unit_test(test_plain_hold),
        cmocka_unit_test(test_plain_overflow_hold),
        cmocka_unit_test(test_checkpointed_hide_publish_hold),
        cmocka_unit_test(test_foreach_all_raw),
        cmocka_unit_test(test_sharded_overflow_keeps_shard),
        cmocka_unit_test(test_sharded_checkpointed_overflow),
        cmocka_unit_test(test_hashed_lookup),
        cmocka_unit_test(test_equal_hash_different_bytes),
        cmocka_unit_test(test_concurrent_exact_sums),
        cmocka_unit_test(test_concurrent_checkpointed_shards),
        cmocka_unit_test(test_saturation),
        cmocka_unit_test(test_saturation_concurrent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

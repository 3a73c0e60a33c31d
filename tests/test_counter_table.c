/* test_counter_table.c - the labeled counter table: lookups, label
 * boundaries, the series cap and overflow, and a multi-threaded stress test
 * whose exact sums are checked (run under TSan by the sanitizer build). */
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
    struct counter_table *t = counter_table_new(names2, 2, 100);
    assert_non_null(t);
    struct label_value a[] = {lv("ml"), lv("chat")};
    struct label_value b[] = {lv("ml"), lv("search")};
    counter_table_add(t, a, 5);
    counter_table_add(t, b, 7);
    counter_table_add(t, a, 10);
    assert_ptr_equal(counter_table_get(t, a), counter_table_get(t, a));
    assert_int_equal(counter_table_series_count(t), 2);
    struct collected c = {0};
    counter_table_foreach(t, 0, collect, &c);
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
    struct counter_table *t = counter_table_new(names2, 2, 100);
    struct label_value x[] = {lv("ab"), lv("c")};
    struct label_value y[] = {lv("a"), lv("bc")};
    struct label_value z[] = {lv(""), lv("abc")};
    counter_table_add(t, x, 1);
    counter_table_add(t, y, 2);
    counter_table_add(t, z, 4);
    assert_int_equal(counter_table_series_count(t), 3);
    struct collected c = {0};
    counter_table_foreach(t, 0, collect, &c);
    assert_int_equal(c.values[0] + c.values[1] * 10 + c.values[2] * 100, 1 + 20 + 400);
    counter_table_free(t);
}

static void test_cap_and_overflow(void **state)
{
    (void)state;
    struct counter_table *t = counter_table_new(names2, 2, 3);
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
    counter_table_foreach(t, 0, collect, &c);
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
    struct counter_table *t = counter_table_new(names2, 2, 3);
    struct label_value v[] = {lv("a"), lv("b")};
    counter_table_add(t, v, 1);
    struct collected c = {0};
    counter_table_foreach(t, 0, collect, &c);
    assert_int_equal(c.n, 1);
    counter_table_free(t);
}

static void test_first_read_per_viewer_is_zero(void **state)
{
    (void)state;
    struct counter_table *t = counter_table_new(names2, 2, 10);
    struct label_value v[] = {lv("a"), lv("b")};
    counter_table_add(t, v, 5);
    struct collected c = {0};
    counter_table_foreach(t, 1u, collect, &c); /* viewer 1, first read */
    counter_table_foreach(t, 1u, collect, &c); /* viewer 1, second read */
    counter_table_foreach(t, 2u, collect, &c); /* viewer 2, first read */
    counter_table_foreach(t, 0, collect, &c);  /* no viewer: always the value */
    assert_int_equal(c.n, 4);
    assert_int_equal(c.values[0], 0);
    assert_int_equal(c.values[1], 5);
    assert_int_equal(c.values[2], 0);
    assert_int_equal(c.values[3], 5);
    /* a series created later is new to viewer 1 again */
    struct label_value w[] = {lv("c"), lv("d")};
    counter_table_add(t, w, 7);
    c.n = 0;
    counter_table_foreach(t, 1u, collect, &c);
    assert_int_equal(c.n, 2);
    assert_int_equal(c.values[0], 5);
    assert_int_equal(c.values[1], 0);
    counter_table_free(t);
}

static int origin_visit(const struct counter_view *v, void *ctx)
{
    struct counter_view *out = ctx;
    out[v->labels[0].ptr[0] - 'a'] = *v;
    return 0;
}

/* Each series remembers the partition and offset that created it, its
 * identity hash, and whether another partition fed it later: what a scrape
 * needs to say which offsets a first sight held back. */
static void test_origin_spread_and_hash(void **state)
{
    (void)state;
    struct counter_table *t = counter_table_new(names2, 2, 10);
    struct label_value a[] = {lv("a"), lv("x")}, b[] = {lv("b"), lv("x")};
    counter_table_set_origin(1, 10);
    counter_table_add(t, a, 1);
    counter_table_set_origin(2, 5);
    counter_table_add(t, b, 1);
    counter_table_add(t, b, 1); /* same partition again: not spread */
    struct counter_view views[2];
    counter_table_foreach(t, 1u, origin_visit, views);
    assert_int_equal(views[0].origin, 1);
    assert_int_equal(views[0].origin_offset, 10);
    assert_false(views[0].spread);
    assert_int_equal(views[1].origin, 2);
    assert_int_equal(views[1].origin_offset, 5);
    assert_false(views[1].spread);
    assert_int_equal(views[0].hash, counter_table_hash(t, a));
    assert_int_equal(views[1].hash, counter_table_hash(t, b));
    assert_int_not_equal(views[0].hash, views[1].hash);

    counter_table_add(t, a, 1); /* partition 2 now feeds a */
    counter_table_foreach(t, 1u, origin_visit, views);
    assert_true(views[0].spread);
    assert_false(views[1].spread);
    assert_int_equal(views[0].origin, 1); /* the creator is kept */
    assert_int_equal(views[0].value, 2);

    /* the hash is of the values alone, so another table with the same
     * label values agrees (a restarted process recomputes it) */
    struct counter_table *u = counter_table_new(names2, 2, 10);
    assert_int_equal(counter_table_hash(u, a), counter_table_hash(t, a));
    counter_table_free(u);
    counter_table_set_origin(0, 0);
    counter_table_free(t);
}

/* Callers that look several tables up with the same values hash each value
 * once (label_hash) and combine (label_set_hash): the same hash and the same
 * series as counter_table_get. */
static void test_hashed_lookup(void **state)
{
    (void)state;
    struct counter_table *t = counter_table_new(names2, 2, 10);
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

    /* Commit claims name series by this hash across processes and
     * versions: a change must also change SERIES_HASH_VERSION (metrics.c),
     * so this known answer is pinned. */
    const char *const names3[] = {"team", "project", "source"};
    struct counter_table *c = counter_table_new(names3, 3, 10);
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
            struct counter_table *t = counter_table_new(one, 1, 4);
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
        counter_table_foreach(a->table, 0, count_visit, &n);
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
    struct counter_table *t = counter_table_new(names2, 2, 100000);
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
    counter_table_foreach(t, 0, sum_visit, &acc);
    assert_int_equal(acc.n, STRESS_KEYS);
    assert_int_equal(acc.sum, expect);
    counter_table_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_and_lookup),
        cmocka_unit_test(test_label_boundaries_distinct),
        cmocka_unit_test(test_cap_and_overflow),
        cmocka_unit_test(test_no_overflow_series_when_unused),
        cmocka_unit_test(test_first_read_per_viewer_is_zero),
        cmocka_unit_test(test_origin_spread_and_hash),
        cmocka_unit_test(test_hashed_lookup),
        cmocka_unit_test(test_equal_hash_different_bytes),
        cmocka_unit_test(test_concurrent_exact_sums),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

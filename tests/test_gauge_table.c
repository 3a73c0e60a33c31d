/* test_gauge_table.c - the live GPU gauges: a series shown until its
 * silence ends, its room taken by a new GPU only once silent, new GPUs
 * turned away (and counted) while the table is full of live ones, and
 * writers racing a sweeping inserter and a reader (run under TSan/ASan:
 * the epoch reclamation must free nothing a writer still probes). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "gauge_table.h"

static struct label_value lv(const char *s)
{
    return (struct label_value){s, (uint32_t)strlen(s)};
}

static void labels_of(struct label_value out[GAUGE_LABELS], const char *node, const char *gpu)
{
    out[0] = lv("team");
    out[1] = lv("proj");
    out[2] = lv(node);
    out[3] = lv(gpu);
}

struct seen {
    size_t count;
    char keys[16][64];
    uint64_t util[16], mem[16];
};

static void collect(const struct gauge_view *v, void *ctx)
{
    struct seen *s = ctx;
    if (s->count < 16) {
        snprintf(s->keys[s->count], sizeof(s->keys[0]), "%.*s/%.*s", (int)v->labels[2].len,
                 v->labels[2].ptr, (int)v->labels[3].len, v->labels[3].ptr);
        s->util[s->count] = v->util_ppb;
        s->mem[s->count] = v->memory_bytes;
    }
    s->count++;
}

static struct seen scan(struct gauge_table *t, int64_t now_ms)
{
    struct seen s = {0};
    gauge_table_foreach(t, now_ms, collect, &s);
    return s;
}

/* The index of node/gpu in s (the walk is in slot order), or fails. */
static size_t find(const struct seen *s, const char *key)
{
    for (size_t i = 0; i < s->count && i < 16; i++)
        if (strcmp(s->keys[i], key) == 0)
            return i;
    fail_msg("no gauge %s", key);
    return 0;
}

static void test_silence_and_reuse(void **state)
{
    (void)state;
    struct gauge_table *t = gauge_table_new(2, 300000, 4);
    struct gauge_writer *w = gauge_writer_new(t);
    struct label_value l[GAUGE_LABELS];
    labels_of(l, "n1", "0");
    assert_true(gauge_table_set(w, l, 250000000, 1024, 1000));
    labels_of(l, "n1", "1");
    assert_true(gauge_table_set(w, l, 500000000, GAUGE_NO_MEMORY, 2000));
    struct seen s = scan(t, 1000 + 299999);
    assert_int_equal(s.count, 2);
    size_t i = find(&s, "n1/0");
    assert_int_equal(s.util[i], 250000000);
    assert_int_equal(s.mem[i], 1024);
    assert_int_equal(s.util[find(&s, "n1/1")], 500000000);
    /* n1/0 silent for exactly 300 s: no longer shown, n1/1 still is */
    s = scan(t, 1000 + 300000);
    assert_int_equal(s.count, 1);
    assert_string_equal(s.keys[0], "n1/1");
    assert_int_equal(s.mem[0], GAUGE_NO_MEMORY);
    /* full (2 of 2), nothing silent at 2500: a third GPU is turned away */
    labels_of(l, "n2", "0");
    assert_false(gauge_table_set(w, l, 1, 1, 2500));
    assert_int_equal(gauge_table_dropped(t), 1);
    /* an existing series is updated whatever the fill */
    labels_of(l, "n1", "1");
    assert_true(gauge_table_set(w, l, 600000000, 7, 301000));
    /* at 301000 n1/0 is silent: its room goes to n2/0 */
    labels_of(l, "n2", "0");
    assert_true(gauge_table_set(w, l, 1, 1, 301000));
    assert_int_equal(gauge_table_count(t), 2);
    s = scan(t, 301001);
    assert_int_equal(s.count, 2);
    assert_int_equal(s.util[find(&s, "n1/1")], 600000000);
    assert_int_equal(s.mem[find(&s, "n2/0")], 1);
    /* n1/0 comes back: a new series, room from nothing silent -> dropped */
    labels_of(l, "n1", "0");
    assert_false(gauge_table_set(w, l, 1, 1, 301002));
    assert_int_equal(gauge_table_dropped(t), 2);
    gauge_table_free(t);
}

#define WRITERS 3
#define ROUNDS  20000

struct race {
    struct gauge_table *t;
    struct gauge_writer *w;
    int id;
};

static void *writer_main(void *arg)
{
    struct race *r = arg;
    char node[32], gpu[32];
    struct label_value l[GAUGE_LABELS];
    for (int i = 0; i < ROUNDS; i++) {
        /* a few stable GPUs and a churn of new ones: inserts, sweeps and
         * reclamation run while others probe and store */
        snprintf(node, sizeof(node), "n%d", r->id);
        snprintf(gpu, sizeof(gpu), "%d", i % 4 == 0 ? i : i % 2);
        labels_of(l, node, gpu);
        /* the clock: i ms; churned series fall silent 5 ms later */
        gauge_table_set(r->w, l, (uint64_t)i, (uint64_t)i, i);
    }
    return NULL;
}

static void test_writers_race_sweeps(void **state)
{
    (void)state;
    /* 3 x 2 stable series and a churn of new ones in room for 8, silence
     * 5 ms: a full table sweeps the churned ones out again and again */
    struct gauge_table *t = gauge_table_new(8, 5, WRITERS);
    struct race r[WRITERS];
    pthread_t th[WRITERS];
    for (int i = 0; i < WRITERS; i++) {
        r[i] = (struct race){t, gauge_writer_new(t), i};
        assert_non_null(r[i].w);
        assert_int_equal(pthread_create(&th[i], NULL, writer_main, &r[i]), 0);
    }
    for (int i = 0; i < 200; i++)
        scan(t, i * 100);
    for (int i = 0; i < WRITERS; i++)
        pthread_join(th[i], NULL);
    assert_true(gauge_table_count(t) <= 8);
    assert_null(gauge_writer_new(t)); /* max_writers taken */
    gauge_table_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_silence_and_reuse),
        cmocka_unit_test(test_writers_race_sweeps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_kafka_ledger.c - the Kafka commit planning (src/kafka/ledger.c)
 * without a broker: which offset a partition commits after scrapes, the
 * claim it carries (its exact text), the claim cut at
 * kafka.commit_metadata_max_bytes, dead letters holding a commit back, a
 * predecessor's claim re-sent, and which partitions a commit lists. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kafka_internal.h"
#include "log.h"

#define SCHEMA 0x5eedULL

static struct ledger *ledger_new(uint32_t viewers, size_t max_bytes)
{
    struct ledger *l = calloc(1, sizeof(*l));
    assert_non_null(l);
    ledger_init(l, viewers, true, max_bytes, SCHEMA);
    return l;
}

static void ledger_delete(struct ledger *l)
{
    ledger_free(l);
    free(l);
}

/* A partition this process owns, applied up to `applied`. */
static struct partition_state *owned(struct ledger *l, const char *topic, int32_t partition,
                                     int64_t applied)
{
    struct partition_state *p = ledger_find(l, topic, partition, true);
    assert_non_null(p);
    p->worker = 0;
    atomic_store(&p->assigned, true);
    atomic_store(&p->applied, applied);
    return p;
}

/* A series first shown by a scrape, created by p's event at offset. */
static struct first_sight sight_of(const struct partition_state *p, unsigned family, uint64_t hash,
                                   int64_t offset)
{
    return (struct first_sight){.known = true,
                                .family = (enum metric_family)family,
                                .hash = hash,
                                .origin = p->index + 1,
                                .origin_offset = offset};
}

/* One complete, frozen scrape by viewer (a bit) showing `n` series first. */
static void scrape(struct ledger *l, uint64_t id, uint32_t viewer, const struct first_sight *fs,
                   size_t n)
{
    ledger_snapshot_begin(l, id, viewer, true);
    for (size_t i = 0; i < n; i++)
        ledger_snapshot_sight(l, &fs[i]);
    ledger_snapshot_done(l, id, viewer);
}

/* plan_commit as commit_owned calls it. Returns whether p sends. */
static bool plan(struct ledger *l, struct partition_state *p, bool applied_all,
                 struct commit_plan *out)
{
    size_t n_all = 0;
    struct first_sight *all = ledger_sighted_union(l, &n_all);
    bool send = ledger_plan_commit(l, p, applied_all, all, n_all, out);
    free(all);
    return send;
}

static char *encode(const struct commit_claim *c)
{
    size_t len = commit_claim_encoded_len(c->dead_letters, c->dead_letter_count, c->segments,
                                          c->segment_count);
    char *s = calloc(1, len + 1);
    assert_non_null(s);
    assert_int_equal(commit_claim_encode(c, s, len), (int)len);
    return s;
}

/* The plan carries exactly the claim want (schema SCHEMA); frees it. */
static void assert_claim(struct commit_plan *pl, struct claim_segment *segs, size_t n_segs,
                         int64_t *letters, size_t n_letters)
{
    struct commit_claim want = {.schema = SCHEMA,
                                .segments = segs,
                                .segment_count = n_segs,
                                .dead_letters = letters,
                                .dead_letter_count = n_letters};
    char *expected = encode(&want);
    assert_non_null(pl->meta);
    char *got = strndup(pl->meta, pl->meta_len);
    assert_non_null(got);
    assert_string_equal(got, expected);
    free(got);
    free(expected);
    free(pl->meta);
    pl->meta = NULL;
}

/* A dead letter of p not yet acknowledged. */
static void pending_letter(struct partition_state *p, int64_t offset)
{
    p->dlq_pending = malloc(sizeof(int64_t));
    assert_non_null(p->dlq_pending);
    p->dlq_pending[0] = offset;
    p->dlq_count = p->dlq_cap = 1;
}

/* Nothing scraped, nothing committed; then the scrape's cut, once. */
static void test_commit_follows_scrapes(void **state)
{
    (void)state;
    struct ledger *l = ledger_new(1u, 4096);
    struct partition_state *p = owned(l, "costs", 0, 99);
    struct commit_plan pl;
    assert_false(plan(l, p, false, &pl)); /* offset 0 and no claim says nothing */

    scrape(l, 1, 1u, NULL, 0);
    assert_true(plan(l, p, false, &pl));
    assert_int_equal(pl.offset, 100);
    assert_null(pl.meta);                 /* everything below 100 was seen: nothing to claim */
    assert_false(plan(l, p, false, &pl)); /* the same plan is not sent twice */

    atomic_store(&p->applied, 149); /* applied, not scraped yet */
    assert_false(plan(l, p, false, &pl));
    assert_true(plan(l, p, true, &pl)); /* a revocation commits all it applied */
    assert_int_equal(pl.offset, 150);
    assert_null(pl.meta);
    ledger_delete(l);
}

/* Two required viewers: the commit is the lower of their cuts. */
static void test_commit_waits_for_every_viewer(void **state)
{
    (void)state;
    struct ledger *l = ledger_new(3u, 4096);
    struct partition_state *p = owned(l, "costs", 0, 49);
    struct commit_plan pl;
    scrape(l, 1, 2u, NULL, 0); /* viewer 2 sees up to 49 */
    assert_false(plan(l, p, false, &pl));
    atomic_store(&p->applied, 99);
    scrape(l, 2, 1u, NULL, 0); /* viewer 1 up to 99 */
    assert_true(plan(l, p, false, &pl));
    assert_int_equal(pl.offset, 50);
    free(pl.meta);
    ledger_delete(l);
}

/* A series shown first (as 0) holds its partition's commit at its
 * creating offset, and the claim names it as held up to the cut. A
 * series of another partition holds nothing here. */
static void test_first_shown_series_is_held(void **state)
{
    (void)state;
    struct ledger *l = ledger_new(1u, 4096);
    struct partition_state *p = owned(l, "costs", 0, 99);
    struct partition_state *q = owned(l, "costs", 1, 9);
    struct first_sight fs[] = {sight_of(p, 1, 0xabcULL, 40), sight_of(q, 2, 0xdefULL, 5)};
    scrape(l, 1, 1u, fs, 2);

    struct commit_plan pl;
    assert_true(plan(l, p, false, &pl));
    assert_int_equal(pl.offset, 40);
    struct claim_series held = {1, 0xabcULL};
    assert_claim(&pl, &(struct claim_segment){100, &held, 1}, 1, NULL, 0);

    assert_true(plan(l, q, false, &pl));
    assert_int_equal(pl.offset, 5);
    held = (struct claim_series){2, 0xdefULL};
    assert_claim(&pl, &(struct claim_segment){10, &held, 1}, 1, NULL, 0);
    ledger_delete(l);
}

/* An unacknowledged dead letter: no commit passes it, and the claim
 * lists it. */
static void test_dead_letter_holds_commit(void **state)
{
    (void)state;
    struct ledger *l = ledger_new(1u, 4096);
    struct partition_state *p = owned(l, "costs", 0, 99);
    pending_letter(p, 30);
    scrape(l, 1, 1u, NULL, 0);

    struct commit_plan pl;
    assert_true(plan(l, p, false, &pl));
    assert_int_equal(pl.offset, 30);
    int64_t letter = 30;
    assert_claim(&pl, &(struct claim_segment){100, NULL, 0}, 1, &letter, 1);
    ledger_delete(l);
}

/* 20 series first shown at offsets 10, 20, ... 200: a claim with only 5
 * of them fits exactly max_bytes, so it holds 10..50 and ends before 60,
 * the first series left out; a byte less holds 4 and ends before 50.
 * Either cut is counted. */
static void cut_case(size_t held_fit, bool one_less)
{
    enum { N = 20 };
    struct claim_series want_held[N];
    for (int i = 0; i < N; i++)
        want_held[i] = (struct claim_series){(uint8_t)(i % 4), 0x1000u + (uint64_t)i};
    struct claim_segment five = {(int64_t)(held_fit + 1) * 10, want_held, held_fit};
    size_t max_bytes = commit_claim_encoded_len(NULL, 0, &five, 1) - (one_less ? 1 : 0);

    struct ledger *l = ledger_new(1u, max_bytes);
    struct partition_state *p = owned(l, "costs", 0, 299);
    struct first_sight fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = sight_of(p, want_held[i].family, want_held[i].hash, (int64_t)(i + 1) * 10);
    scrape(l, 1, 1u, fs, N);

    struct commit_plan pl;
    assert_true(plan(l, p, false, &pl));
    assert_int_equal(pl.offset, 10);
    assert_true(pl.meta_len <= max_bytes);
    size_t kept = one_less ? held_fit - 1 : held_fit;
    assert_claim(&pl, &(struct claim_segment){(int64_t)(kept + 1) * 10, want_held, kept}, 1, NULL,
                 0);
    assert_int_equal(atomic_load(&l->claims_cut), 1);
    ledger_delete(l);
}

static void test_claim_cut_at_metadata_limit(void **state)
{
    (void)state;
    cut_case(5, false);
    cut_case(5, true);
}

/* Smaller than a claim holding nothing (here a dead letter at 30 and a
 * series first shown at 40): no claim, the offset alone, and the cut is
 * counted. A claim over the broker's limit would fail every commit. */
static void test_claim_dropped_when_nothing_fits(void **state)
{
    (void)state;
    struct ledger *l = ledger_new(1u, 8);
    struct partition_state *p = owned(l, "costs", 0, 99);
    pending_letter(p, 30);
    struct first_sight fs = sight_of(p, 0, 7, 40);
    scrape(l, 1, 1u, &fs, 1);
    struct commit_plan pl;
    assert_true(plan(l, p, false, &pl));
    assert_int_equal(pl.offset, 30);
    assert_null(pl.meta);
    assert_int_equal(atomic_load(&l->claims_cut), 1);
    ledger_delete(l);
}

/* The broker refuses a claim over its offset.metadata.max.bytes: each
 * refusal halves the claim budget, so commits get through again (a claim
 * re-sent unchanged would fail for ever); other errors leave it alone. */
static void test_refused_claim_shrinks(void **state)
{
    (void)state;
    struct ledger *l = ledger_new(1u, 4096);
    struct partition_state *p = owned(l, "costs", 0, 999);
    struct first_sight fs[40];
    for (size_t i = 0; i < 40; i++)
        fs[i] = sight_of(p, 0, 1000 + i, (int64_t)(10 + i));
    scrape(l, 1, 1u, fs, 40);
    rd_kafka_topic_partition_list_t *list = ledger_commit_list(l, NULL, false);
    assert_non_null(list);
    assert_int_equal(list->cnt, 1);
    size_t sent = list->elems[0].metadata_size;
    assert_true(sent > 2 * CLAIM_MIN_BYTES);

    list->elems[0].err = RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS;
    ledger_commit_acked(l, list, RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(l->claim_max_bytes, 4096);

    list->elems[0].err = RD_KAFKA_RESP_ERR_OFFSET_METADATA_TOO_LARGE;
    ledger_commit_acked(l, list, RD_KAFKA_RESP_ERR_OFFSET_METADATA_TOO_LARGE);
    rd_kafka_topic_partition_list_destroy(list);
    assert_int_equal(l->claim_max_bytes, sent / 2);
    assert_int_equal(p->sent_offset, -1);

    /* refused again and again: down to no claim, which any broker takes */
    for (int round = 0; round < 16 && l->claim_max_bytes; round++) {
        list = ledger_commit_list(l, NULL, false);
        assert_non_null(list);
        assert_true(list->elems[0].metadata_size <= l->claim_max_bytes);
        /* a failed rd_kafka_commit: the error is the request's, not written
         * into the caller's list */
        ledger_commit_failed(l, list, RD_KAFKA_RESP_ERR_OFFSET_METADATA_TOO_LARGE);
        rd_kafka_topic_partition_list_destroy(list);
    }
    assert_int_equal(l->claim_max_bytes, 0);
    struct commit_plan pl;
    assert_true(plan(l, p, false, &pl));
    assert_null(pl.meta);
    assert_true(atomic_load(&l->claims_cut) >= 1);
    ledger_delete(l);
}

/* The previous owner's claim, read at assignment: a revocation inside it
 * re-sends it byte for byte; one of another label schema is ignored. */
static void test_inherited_claim_resent(void **state)
{
    (void)state;
    struct claim_series held = {3, 0x77ULL};
    struct claim_segment seg = {50, &held, 1};
    struct commit_claim theirs = {.schema = SCHEMA, .segments = &seg, .segment_count = 1};
    char *text = encode(&theirs);
    rd_kafka_topic_partition_list_t *committed = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_t *tp = rd_kafka_topic_partition_list_add(committed, "costs", 0);
    tp->offset = 10;
    tp->metadata = strdup(text);
    tp->metadata_size = strlen(text);

    struct ledger *l = ledger_new(1u, 4096);
    struct partition_state *p = owned(l, "costs", 0, 29);
    ledger_inherit(l, p, tp);
    assert_int_equal(atomic_load(&p->committed), 10);
    assert_int_equal(p->inherited.upto, 50);
    struct commit_plan pl;
    assert_true(plan(l, p, true, &pl));
    assert_int_equal(pl.offset, 30);
    assert_claim(&pl, &seg, 1, NULL, 0); /* theirs, byte for byte */
    ledger_delete(l);

    l = ledger_new(1u, 4096);
    l->schema = SCHEMA + 1; /* other extra_labels */
    p = owned(l, "costs", 0, 29);
    ledger_inherit(l, p, tp);
    assert_null(p->inherited_text);
    assert_true(plan(l, p, true, &pl));
    assert_int_equal(pl.offset, 30);
    assert_null(pl.meta);
    ledger_delete(l);
    rd_kafka_topic_partition_list_destroy(committed);
    free(text);
}

/* The commit list: owned partitions only, `only` respected; a failed
 * commit is planned again, a stored one raises `committed`. */
static void test_commit_list(void **state)
{
    (void)state;
    struct ledger *l = ledger_new(1u, 4096);
    struct partition_state *a = owned(l, "costs", 0, 99);
    struct partition_state *b = owned(l, "costs", 1, 19);
    struct partition_state *gone = owned(l, "costs", 2, 9);
    gone->worker = -1; /* revoked */
    scrape(l, 1, 1u, NULL, 0);

    rd_kafka_topic_partition_list_t *only = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(only, "costs", 1);
    rd_kafka_topic_partition_list_t *list = ledger_commit_list(l, only, false);
    assert_non_null(list);
    assert_int_equal(list->cnt, 1);
    assert_int_equal(list->elems[0].partition, 1);
    assert_int_equal(list->elems[0].offset, 20);
    rd_kafka_topic_partition_list_destroy(list);
    rd_kafka_topic_partition_list_destroy(only);

    list = ledger_commit_list(l, NULL, false);
    assert_non_null(list);
    assert_int_equal(list->cnt, 1); /* b's plan was sent already; gone is not ours */
    assert_int_equal(list->elems[0].partition, 0);
    assert_int_equal(list->elems[0].offset, 100);
    ledger_commit_failed(l, list, RD_KAFKA_RESP_ERR__TRANSPORT);
    rd_kafka_topic_partition_list_destroy(list);

    list = ledger_commit_list(l, NULL, false); /* the failed one again */
    assert_non_null(list);
    assert_int_equal(list->cnt, 1);
    assert_int_equal(list->elems[0].offset, 100);
    ledger_commit_stored(l, list);
    rd_kafka_topic_partition_list_destroy(list);
    assert_int_equal(atomic_load(&a->committed), 100);
    assert_null(ledger_commit_list(l, NULL, false)); /* nothing new */

    /* an asynchronous commit of b failed: b is planned again */
    rd_kafka_topic_partition_list_t *acked = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(acked, "costs", 1)->offset = 20;
    ledger_commit_acked(l, acked, RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS);
    list = ledger_commit_list(l, NULL, false);
    assert_non_null(list);
    assert_int_equal(list->cnt, 1);
    assert_int_equal(list->elems[0].partition, 1);
    rd_kafka_topic_partition_list_destroy(list);
    ledger_commit_acked(l, acked, RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(atomic_load(&b->committed), 20);
    rd_kafka_topic_partition_list_destroy(acked);
    ledger_delete(l);
}

int main(void)
{
    log_setup(LOG_LEVEL_ERROR, LOG_FORMAT_LOGFMT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_commit_follows_scrapes),
        cmocka_unit_test(test_commit_waits_for_every_viewer),
        cmocka_unit_test(test_first_shown_series_is_held),
        cmocka_unit_test(test_dead_letter_holds_commit),
        cmocka_unit_test(test_claim_cut_at_metadata_limit),
        cmocka_unit_test(test_claim_dropped_when_nothing_fits),
        cmocka_unit_test(test_inherited_claim_resent),
        cmocka_unit_test(test_refused_claim_shrinks),
        cmocka_unit_test(test_commit_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

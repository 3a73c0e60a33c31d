/* test_kafka_state.c - the state topic's records (src/kafka/state.c):
 * exact round trips, which state partition a shard lives in, and refusal
 * of records that are not ours or are damaged. No broker. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "kafka_internal.h"
#include "metrics.h"

#define LV(s)                                                                                      \
    {                                                                                              \
        s, sizeof(s) - 1                                                                           \
    }

static void test_series_round_trip(void **state)
{
    (void)state;
    struct label_value labels[3] = {LV("ml"), LV("chat"), LV("")};
    char key[512], value[16];
    size_t n = state_series_key(key, sizeof(key), "ai-costs-3", 10, 1, labels, 3);
    assert_true(n > 0);
    state_series_value(value, UINT64_MAX - 1, 1733300000123);
    struct state_record r;
    assert_int_equal(state_decode(key, n, value, 16, &r), 0);
    assert_false(r.position);
    assert_int_equal(r.shard_len, 10);
    assert_memory_equal(r.shard, "ai-costs-3", 10);
    assert_int_equal(r.family, 1);
    assert_int_equal(r.label_count, 3);
    assert_int_equal(r.labels[0].len, 2);
    assert_memory_equal(r.labels[1].ptr, "chat", 4);
    assert_int_equal(r.labels[2].len, 0);
    assert_true(r.value == UINT64_MAX - 1); /* every bit survives */
    assert_true(r.hold_until_ms == 1733300000123);
    /* a label value with a NUL byte is just bytes */
    struct label_value odd[1] = {{"a\0b", 3}};
    n = state_series_key(key, sizeof(key), "t-0", 3, 0, odd, 1);
    assert_int_equal(state_decode(key, n, value, 16, &r), 0);
    assert_int_equal(r.labels[0].len, 3);
    assert_memory_equal(r.labels[0].ptr, "a\0b", 3);
}

/* The event kinds' families (metrics.h 6..10) use the same records: the
 * widest (FOCUS, six labels before the shard) and the GPU interval mark,
 * whose value is nanoseconds since the epoch. */
static void test_kind_families_round_trip(void **state)
{
    (void)state;
    struct label_value focus[6] = {LV("ml"),         LV("train"),  LV("AWS"),
                                   LV("Amazon EC2"), LV("Credit"), LV("prod-ml")};
    char key[512], value[16];
    size_t n =
        state_series_key(key, sizeof(key), "focus-rows-0", 12, METRIC_FAMILY_CREDIT, focus, 6);
    state_series_value(value, 3500000001ULL, 0);
    struct state_record r;
    assert_int_equal(state_decode(key, n, value, 16, &r), 0);
    assert_int_equal(r.family, METRIC_FAMILY_CREDIT);
    assert_int_equal(r.label_count, 6);
    assert_memory_equal(r.labels[3].ptr, "Amazon EC2", 10);
    assert_memory_equal(r.labels[5].ptr, "prod-ml", 7);
    assert_true(r.value == 3500000001ULL);
    struct label_value mark[2] = {LV("gpu-node-007"), LV("3")};
    n = state_series_key(key, sizeof(key), "gpu-utilization-events-2", 24, METRIC_FAMILY_GPU_MARK,
                         mark, 2);
    state_series_value(value, 1764806460123456789ULL, 0);
    assert_int_equal(state_decode(key, n, value, 16, &r), 0);
    assert_int_equal(r.family, METRIC_FAMILY_GPU_MARK);
    assert_int_equal(r.label_count, 2);
    assert_memory_equal(r.labels[0].ptr, "gpu-node-007", 12);
    assert_true(r.value == 1764806460123456789ULL);
}

static void test_position_round_trip(void **state)
{
    (void)state;
    char key[64], value[8];
    size_t n = state_position_key(key, sizeof(key), "ai-api-costs-12", 15);
    state_position_value(value, 9007199254740993LL);
    struct state_record r;
    assert_int_equal(state_decode(key, n, value, 8, &r), 0);
    assert_true(r.position);
    assert_true(r.next_offset == 9007199254740993LL);
    assert_memory_equal(r.shard, "ai-api-costs-12", 15);
    /* a series key and a position key of one shard never collide */
    struct label_value none[1];
    char skey[64];
    size_t sn = state_series_key(skey, sizeof(skey), "ai-api-costs-12", 15, 0, none, 0);
    assert_false(sn == n && memcmp(skey, key, n) == 0);
}

static void test_refuses_damage(void **state)
{
    (void)state;
    struct label_value labels[2] = {LV("team"), LV("proj")};
    char key[128], value[16] = {0};
    size_t n = state_series_key(key, sizeof(key), "t-1", 3, 0, labels, 2);
    struct state_record r;
    for (size_t cut = 0; cut < n; cut++) /* every truncation */
        assert_int_equal(state_decode(key, cut, value, 16, &r), -EINVAL);
    assert_int_equal(state_decode(key, n, value, 15, &r), -EINVAL); /* short value */
    char longer[129];
    memcpy(longer, key, n);
    longer[n] = 'x'; /* trailing bytes */
    assert_int_equal(state_decode(longer, n + 1, value, 16, &r), -EINVAL);
    key[0] = 'X'; /* not ours */
    assert_int_equal(state_decode(key, n, value, 16, &r), -EINVAL);
    char pkey[32], pval[8];
    size_t pn = state_position_key(pkey, sizeof(pkey), "t-1", 3);
    state_position_value(pval, -5); /* a negative position */
    assert_int_equal(state_decode(pkey, pn, pval, 8, &r), -EINVAL);
    /* does not fit: 0, never a partial key */
    assert_int_equal(state_series_key(key, 12, "t-1", 3, 0, labels, 2), 0);
}

static void test_partition_of(void **state)
{
    (void)state;
    /* stable across processes and versions: FNV-1a 32 of the shard name */
    assert_int_equal(state_partition_of("", 0, 10), (int32_t)(2166136261u % 10));
    assert_int_equal(state_partition_of("a", 1, 1000), (int32_t)(0xe40c292cu % 1000));
    int seen[10] = {0};
    char shard[SHARD_MAX];
    for (int p = 0; p < 100; p++) {
        size_t n = state_shard_name(shard, "ai-costs", p);
        int32_t sp = state_partition_of(shard, n, 10);
        assert_true(sp >= 0 && sp < 10);
        seen[sp]++;
    }
    for (int i = 0; i < 10; i++)
        assert_true(seen[i] > 0); /* 100 shards reach every state partition */
    assert_int_equal(state_shard_name(shard, "ai-costs", 7), 10);
    assert_string_equal(shard, "ai-costs-7");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_series_round_trip),   cmocka_unit_test(test_kind_families_round_trip),
        cmocka_unit_test(test_position_round_trip), cmocka_unit_test(test_refuses_damage),
        cmocka_unit_test(test_partition_of),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_commit_claim.c - the commit-metadata claim: its exact text, round
 * trips, planned lengths, lookups, and rejection of malformed or foreign
 * metadata (it comes from the broker, written by anyone in the group). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "commit_claim.h"

static void test_exact_text(void **state)
{
    (void)state;
    struct claim_series held[] = {{1, 0}, {0, UINT64_MAX}, {3, 0x0123456789abcdefULL}};
    int64_t letters[] = {7, 12};
    struct claim_segment seg = {1500, held, 3};
    struct commit_claim c = {.schema = 0xfeedfacecafebeefULL,
                             .segments = &seg,
                             .segment_count = 1,
                             .dead_letters = letters,
                             .dead_letter_count = 2};
    char buf[256];
    int n = commit_claim_encode(&c, buf, sizeof(buf));
    /* UINT64_MAX: top char carries 4 bits (P = 15), then ten '_' (63). */
    const char *want = "aife1;u=1500;s=feedfacecafebeef;d=7,12;h="
                       "1AAAAAAAAAAA"
                       "0P__________"
                       "3AEjRWeJq83v";
    assert_int_equal(n, (int)strlen(want));
    assert_memory_equal(buf, want, (size_t)n);
    assert_int_equal(commit_claim_encoded_len(letters, 2, &seg, 1), strlen(want));
}

static void test_round_trip_and_lookup(void **state)
{
    (void)state;
    enum { N = 300 };
    struct claim_series held[N];
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (int i = 0; i < N; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        held[i] = (struct claim_series){(uint8_t)(i % 4), x};
    }
    struct claim_segment seg = {INT64_MAX, held, N};
    struct commit_claim c = {.schema = 42, .segments = &seg, .segment_count = 1};
    size_t len = commit_claim_encoded_len(NULL, 0, &seg, 1);
    char *buf = malloc(len);
    assert_non_null(buf);
    assert_int_equal(commit_claim_encode(&c, buf, len - 1), -ENOSPC);
    assert_int_equal(commit_claim_encode(&c, buf, len), (int)len);

    struct commit_claim d;
    assert_int_equal(commit_claim_decode(buf, len, &d), 0);
    assert_int_equal(d.upto, INT64_MAX);
    assert_int_equal(d.schema, 42);
    assert_int_equal(d.segment_count, 1);
    assert_int_equal(d.segments[0].held_count, N);
    assert_int_equal(d.dead_letter_count, 0);
    for (int i = 0; i < N; i++) {
        assert_true(commit_claim_holds(&d, 0, held[i].family, held[i].hash));
        /* the same hash in another family is another series */
        assert_false(commit_claim_holds(&d, 0, (held[i].family + 1) % 4, held[i].hash));
        assert_false(commit_claim_holds(&d, 0, held[i].family, held[i].hash ^ 1));
    }
    assert_false(commit_claim_holds(&d, 0, 12, held[0].hash));
    assert_false(commit_claim_dead_letter(&d, 0));
    commit_claim_clear(&d);
    free(buf);
}

static void test_dead_letters(void **state)
{
    (void)state;
    const char *text = "aife1;u=100;s=0000000000000000;d=0,5,99;h=";
    struct commit_claim d;
    assert_int_equal(commit_claim_decode(text, strlen(text), &d), 0);
    assert_int_equal(d.dead_letter_count, 3);
    assert_true(commit_claim_dead_letter(&d, 0));
    assert_true(commit_claim_dead_letter(&d, 5));
    assert_true(commit_claim_dead_letter(&d, 99));
    assert_false(commit_claim_dead_letter(&d, 6));
    assert_false(commit_claim_holds(&d, 0, 0, 0));
    commit_claim_clear(&d);
}

/* A successor inside its predecessor's claim commits the old segment,
 * then its own: each offset is judged by the segment that covers it. */
static void test_segments(void **state)
{
    (void)state;
    struct claim_series first[] = {{0, 11}, {1, 12}}, second[] = {{0, 21}};
    struct claim_segment segs[] = {{100, first, 2}, {250, NULL, 0}, {400, second, 1}};
    int64_t letters[] = {120, 399};
    struct commit_claim c = {.schema = 7,
                             .segments = segs,
                             .segment_count = 3,
                             .dead_letters = letters,
                             .dead_letter_count = 2};
    char buf[256];
    int n = commit_claim_encode(&c, buf, sizeof(buf));
    const char *want = "aife1;u=100;s=0000000000000007;d=120,399;h=0AAAAAAAAAAL1AAAAAAAAAAM"
                       ";u=250;h=;u=400;h=0AAAAAAAAAAV";
    assert_int_equal(n, (int)strlen(want));
    assert_memory_equal(buf, want, (size_t)n);
    assert_int_equal(commit_claim_encoded_len(letters, 2, segs, 3), strlen(want));

    struct commit_claim d;
    assert_int_equal(commit_claim_decode(buf, (size_t)n, &d), 0);
    assert_int_equal(d.upto, 400);
    assert_int_equal(d.segment_count, 3);
    assert_true(commit_claim_holds(&d, 0, 0, 11));
    assert_true(commit_claim_holds(&d, 99, 1, 12));
    assert_false(commit_claim_holds(&d, 100, 0, 11)); /* the second segment holds nothing */
    assert_false(commit_claim_holds(&d, 249, 0, 21));
    assert_true(commit_claim_holds(&d, 250, 0, 21));
    assert_true(commit_claim_holds(&d, 399, 0, 21));
    assert_false(commit_claim_holds(&d, 400, 0, 21)); /* past the claim */
    assert_null(commit_claim_segment(&d, 400));
    assert_true(commit_claim_dead_letter(&d, 399));
    commit_claim_clear(&d);

    static const char *const bad[] = {
        "aife1;u=100;s=0000000000000007;d=;h=;u=100;h=", /* not ascending */
        "aife1;u=100;s=0000000000000007;d=;h=;u=90;h=",
        "aife1;u=100;s=0000000000000007;d=;h=;u=200", /* no held list */
        "aife1;u=100;s=0000000000000007;d=;h=;x=200;h=",
        "aife1;u=1;s=0000000000000000;d=;h=;u=2;h=;u=3;h=;u=4;h=;u=5;h=;u=6;h=;u=7;h=;u=8;h=;u=9;h="
        ";u=10;h=;u=11;h=;u=12;h=;u=13;h=;u=14;h=;u=15;h=;u=16;h=;u=17;h=", /* 17 segments */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct commit_claim e;
        if (commit_claim_decode(bad[i], strlen(bad[i]), &e) != -EINVAL)
            fail_msg("accepted: %s", bad[i]);
    }
}

static void test_not_a_claim(void **state)
{
    (void)state;
    struct commit_claim d;
    assert_int_equal(commit_claim_decode("", 0, &d), -ENOENT);
    assert_int_equal(commit_claim_decode(NULL, 0, &d), -ENOENT);
    assert_int_equal(commit_claim_decode("some other client", 17, &d), -ENOENT);
    assert_int_equal(commit_claim_decode("aife2;u=1", 9, &d), -ENOENT);
}

static void test_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "aife1;",
        "aife1;u=;s=0000000000000000;d=;h=",
        "aife1;u=01;s=0000000000000000;d=;h=",                  /* leading zero */
        "aife1;u=-1;s=0000000000000000;d=;h=",                  /* negative */
        "aife1;u=9223372036854775808;s=0000000000000000;d=;h=", /* > INT64_MAX */
        "aife1;u=5;s=000000000000000;d=;h=",                    /* short schema */
        "aife1;u=5;s=000000000000000G;d=;h=",
        "aife1;u=5;s=0000000000000000;d=3,3;h=", /* not ascending */
        "aife1;u=5;s=0000000000000000;d=4,3;h=",
        "aife1;u=5;s=0000000000000000;d=3,;h=",
        "aife1;u=5;s=0000000000000000;d=,3;h=",
        "aife1;u=5;s=0000000000000000;d=;h=0AAAAAAAAAA",   /* short entry */
        "aife1;u=5;s=0000000000000000;d=;h=0QAAAAAAAAAA",  /* 65th bit set */
        "aife1;u=5;s=0000000000000000;d=;h=xAAAAAAAAAAA",  /* family not a digit */
        "aife1;u=5;s=0000000000000000;d=;h=0AAAAAAAAAA=",  /* not base64url */
        "aife1;u=5;s=0000000000000000;d=;h=0AAAAAAAAAAA;", /* trailing bytes */
        "aife1;u=5;s=0000000000000000;h=",                 /* missing field */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct commit_claim d;
        int rc = commit_claim_decode(bad[i], strlen(bad[i]), &d);
        if (rc != -EINVAL)
            fail_msg("accepted or misjudged (%d): %s", rc, bad[i]);
        assert_null(d.segments);
        assert_null(d.dead_letters);
    }
    /* a NUL inside the text is malformed, not the end */
    const char nul[] = "aife1;u=5;s=0000000000000000;d=;h=0AAAAA\0AAAAA";
    struct commit_claim d;
    assert_int_equal(commit_claim_decode(nul, sizeof(nul) - 1, &d), -EINVAL);
}

static void test_encode_rejects(void **state)
{
    (void)state;
    char buf[128];
    struct claim_series held = {10, 1};
    struct claim_segment seg = {5, &held, 1};
    struct commit_claim c = {.segments = &seg, .segment_count = 1};
    assert_int_equal(commit_claim_encode(&c, buf, sizeof(buf)), -EINVAL);
    int64_t letters[] = {4, 2};
    struct claim_segment empty = {5, NULL, 0};
    struct commit_claim d = {
        .segments = &empty, .segment_count = 1, .dead_letters = letters, .dead_letter_count = 2};
    assert_int_equal(commit_claim_encode(&d, buf, sizeof(buf)), -EINVAL);
    struct claim_segment negative = {-1, NULL, 0};
    struct commit_claim e = {.segments = &negative, .segment_count = 1};
    assert_int_equal(commit_claim_encode(&e, buf, sizeof(buf)), -EINVAL);
    struct commit_claim none = {.segment_count = 0};
    assert_int_equal(commit_claim_encode(&none, buf, sizeof(buf)), -EINVAL);
    struct claim_segment backwards[] = {{9, NULL, 0}, {9, NULL, 0}};
    struct commit_claim f = {.segments = backwards, .segment_count = 2};
    assert_int_equal(commit_claim_encode(&f, buf, sizeof(buf)), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_text),     cmocka_unit_test(test_round_trip_and_lookup),
        cmocka_unit_test(test_dead_letters),   cmocka_unit_test(test_segments),
        cmocka_unit_test(test_not_a_claim),    cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_encode_rejects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

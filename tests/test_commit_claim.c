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
    struct commit_claim c = {.upto = 1500,
                             .schema = 0xfeedfacecafebeefULL,
                             .held = held,
                             .held_count = 3,
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
    assert_int_equal(commit_claim_encoded_len(1500, letters, 2, 3), strlen(want));
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
    struct commit_claim c = {.upto = INT64_MAX, .schema = 42, .held = held, .held_count = N};
    size_t len = commit_claim_encoded_len(c.upto, NULL, 0, N);
    char *buf = malloc(len);
    assert_non_null(buf);
    assert_int_equal(commit_claim_encode(&c, buf, len - 1), -ENOSPC);
    assert_int_equal(commit_claim_encode(&c, buf, len), (int)len);

    struct commit_claim d;
    assert_int_equal(commit_claim_decode(buf, len, &d), 0);
    assert_int_equal(d.upto, INT64_MAX);
    assert_int_equal(d.schema, 42);
    assert_int_equal(d.held_count, N);
    assert_int_equal(d.dead_letter_count, 0);
    for (int i = 0; i < N; i++) {
        assert_true(commit_claim_holds(&d, held[i].family, held[i].hash));
        /* the same hash in another family is another series */
        assert_false(commit_claim_holds(&d, (held[i].family + 1) % 4, held[i].hash));
        assert_false(commit_claim_holds(&d, held[i].family, held[i].hash ^ 1));
    }
    assert_false(commit_claim_holds(&d, 12, held[0].hash));
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
    assert_false(commit_claim_holds(&d, 0, 0));
    commit_claim_clear(&d);
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
        assert_null(d.held);
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
    struct commit_claim c = {.upto = 5, .held = &held, .held_count = 1};
    assert_int_equal(commit_claim_encode(&c, buf, sizeof(buf)), -EINVAL);
    int64_t letters[] = {4, 2};
    struct commit_claim d = {.upto = 5, .dead_letters = letters, .dead_letter_count = 2};
    assert_int_equal(commit_claim_encode(&d, buf, sizeof(buf)), -EINVAL);
    struct commit_claim e = {.upto = -1};
    assert_int_equal(commit_claim_encode(&e, buf, sizeof(buf)), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_text),   cmocka_unit_test(test_round_trip_and_lookup),
        cmocka_unit_test(test_dead_letters), cmocka_unit_test(test_not_a_claim),
        cmocka_unit_test(test_malformed),    cmocka_unit_test(test_encode_rejects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

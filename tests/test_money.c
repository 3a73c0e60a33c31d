/* test_money.c - exact fixed-point conversions: double -> nanos, decimal
 * parsing, and formatting, including the edges of the exact range. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <math.h>

#include "money.h"

static uint64_t from_literal(const char *literal)
{
    uint64_t nanos = UINT64_MAX;
    assert_int_equal(money_from_double(strtod(literal, NULL), UINT64_MAX / 2, &nanos), 0);
    return nanos;
}

static void test_from_double_exact(void **state)
{
    (void)state;
    assert_int_equal(from_literal("0"), 0);
    assert_int_equal(from_literal("0.1"), 100000000);
    assert_int_equal(from_literal("0.000000001"), 1);
    assert_int_equal(from_literal("123.000000001"), 123000000001ULL);
    assert_int_equal(from_literal("999999.999999999"), 999999999999999ULL);
    assert_int_equal(from_literal("3999999.999999999"), 3999999999999999ULL);
    assert_int_equal(from_literal("0.3"), 300000000);
    assert_int_equal(from_literal("2.675"), 2675000000ULL);
    /* more than 9 decimals rounds to the nearest nano */
    assert_int_equal(from_literal("0.0000000014"), 1);
    assert_int_equal(from_literal("0.0000000016"), 2);
}

static void test_from_double_exhaustive_sample(void **state)
{
    (void)state;
    /* Every 9-decimal literal in the exact range must round-trip; sample
     * widely spread values with a fixed LCG so a failure is reproducible. */
    uint64_t x = 88172645463325252ULL;
    for (int i = 0; i < 2000000; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        uint64_t nanos = (x >> 11) % (MONEY_EXACT_MAX_UNITS * NANOS_PER_UNIT + 1);
        char text[64];
        snprintf(text, sizeof(text), "%llu.%09llu", (unsigned long long)(nanos / NANOS_PER_UNIT),
                 (unsigned long long)(nanos % NANOS_PER_UNIT));
        uint64_t got;
        assert_int_equal(money_from_double(strtod(text, NULL), UINT64_MAX / 2, &got), 0);
        if (got != nanos)
            fail_msg("%s -> %llu", text, (unsigned long long)got);
    }
}

static void test_from_double_rejects(void **state)
{
    (void)state;
    uint64_t n;
    assert_int_equal(money_from_double(-0.5, 1000, &n), -EDOM);
    assert_int_equal(money_from_double(-0.0, 1000, &n), -EDOM);
    assert_int_equal(money_from_double(INFINITY, 1000, &n), -EDOM);
    assert_int_equal(money_from_double(NAN, 1000, &n), -EDOM);
    assert_int_equal(money_from_double(strtod("1e400", NULL), 1000, &n), -EDOM);
    assert_int_equal(money_from_double(1.000000001, 1000000000, &n), -ERANGE);
    assert_int_equal(money_from_double(1.0, 1000000000, &n), 0);
    assert_int_equal(n, 1000000000);
}

static void test_parse_decimal(void **state)
{
    (void)state;
    uint64_t n;
    assert_int_equal(money_parse_decimal("12", 2, &n), 0);
    assert_int_equal(n, 12000000000ULL);
    assert_int_equal(money_parse_decimal("0.000000001", 11, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(money_parse_decimal("1.0000000001", 12, &n), -EINVAL);
    assert_int_equal(money_parse_decimal("1.", 2, &n), -EINVAL);
    assert_int_equal(money_parse_decimal(".5", 2, &n), -EINVAL);
    assert_int_equal(money_parse_decimal("-1", 2, &n), -EINVAL);
    assert_int_equal(money_parse_decimal("1e3", 3, &n), -EINVAL);
    assert_int_equal(money_parse_decimal("", 0, &n), -EINVAL);
    assert_int_equal(money_parse_decimal("18446744073", 11, &n), 0);
    assert_int_equal(money_parse_decimal("18446744074", 11, &n), -ERANGE);
}

static void check_format(uint64_t nanos, const char *want)
{
    char buf[MONEY_FORMAT_MAX + 1];
    size_t n = money_format(nanos, buf);
    buf[n] = '\0';
    assert_string_equal(buf, want);
}

static void test_format(void **state)
{
    (void)state;
    check_format(0, "0");
    check_format(1, "0.000000001");
    check_format(5000000000ULL, "5");
    check_format(500000000ULL, "0.5");
    check_format(123000000001ULL, "123.000000001");
    check_format(UINT64_MAX, "18446744073.709551615");
    char buf[24];
    buf[format_u64(UINT64_MAX, buf)] = '\0';
    assert_string_equal(buf, "18446744073709551615");
}

static void check_scaled(uint64_t v, unsigned decimals, const char *want)
{
    char buf[MONEY_FORMAT_MAX + 1];
    size_t n = money_format_scaled(v, decimals, buf);
    assert_true(n <= MONEY_FORMAT_MAX);
    buf[n] = '\0';
    assert_string_equal(buf, want);
}

/* The GPU-seconds unit (micro) and the saturation limit, rendered exactly. */
static void test_format_scaled(void **state)
{
    (void)state;
    check_scaled(0, 6, "0");
    check_scaled(1, 6, "0.000001");
    check_scaled(3600000000ULL, 6, "3600");
    check_scaled(24000008ULL, 6, "24.000008");
    check_scaled(1ULL << 63, 6, "9223372036854.775808");
    check_scaled(1ULL << 63, 9, "9223372036.854775808");
    check_scaled(UINT64_MAX, 6, "18446744073709.551615");
    check_scaled(UINT64_MAX, 9, "18446744073.709551615");
    check_scaled(10, 1, "1");
    check_scaled(15, 1, "1.5");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_from_double_exact),
        cmocka_unit_test(test_from_double_exhaustive_sample),
        cmocka_unit_test(test_from_double_rejects),
        cmocka_unit_test(test_parse_decimal),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_format_scaled),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_expo.c - exposition primitives: escaping, exact values, family
 * headers in both formats, and Accept negotiation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "expo.h"

static void test_escape(void **state)
{
    (void)state;
    struct dynbuf b;
    dynbuf_init(&b, 1 << 20);
    const char *names[] = {"team", "project"};
    struct label_value values[] = {{"a\\b\"c\nd", 7}, {"\xc3\xa9t\xc3\xa9", 5}};
    dynbuf_append_str(&b, "x_total");
    expo_labels(&b, names, values, 2);
    expo_value_nanos(&b, 123000000001ULL);
    assert_int_equal(b.error, 0);
    assert_string_equal(b.data, "x_total{team=\"a\\\\b\\\"c\\nd\",project=\"\xc3\xa9t\xc3\xa9\"} "
                                "123.000000001\n");
    dynbuf_free(&b);
}

static void test_family_headers(void **state)
{
    (void)state;
    struct dynbuf b;
    dynbuf_init(&b, 1 << 20);
    expo_family(&b, EXPO_TEXT, "ai_finops_cost_dollars", "counter", "Spend \\ in\nUSD.");
    assert_string_equal(b.data, "# HELP ai_finops_cost_dollars_total Spend \\\\ in\\nUSD.\n"
                                "# TYPE ai_finops_cost_dollars_total counter\n");
    dynbuf_reset(&b);
    expo_family(&b, EXPO_OPENMETRICS, "ai_finops_cost_dollars", "counter", "Spend \"x\".");
    assert_string_equal(b.data, "# HELP ai_finops_cost_dollars Spend \\\"x\\\".\n"
                                "# TYPE ai_finops_cost_dollars counter\n");
    dynbuf_reset(&b);
    expo_family(&b, EXPO_TEXT, "x_build", "info", "B.");
    assert_string_equal(b.data, "# HELP x_build_info B.\n# TYPE x_build_info gauge\n");
    dynbuf_reset(&b);
    expo_family(&b, EXPO_OPENMETRICS, "x_build", "info", "B.");
    assert_string_equal(b.data, "# HELP x_build B.\n# TYPE x_build info\n");
    dynbuf_reset(&b);
    expo_value_epoch_ms(&b, 1795428000250LL);
    expo_finish(&b, EXPO_OPENMETRICS);
    assert_string_equal(b.data, " 1795428000.250\n# EOF\n");
    dynbuf_free(&b);
}

static void test_negotiate(void **state)
{
    (void)state;
    assert_int_equal(expo_negotiate(NULL), EXPO_TEXT);
    assert_int_equal(expo_negotiate("text/plain"), EXPO_TEXT);
    assert_int_equal(expo_negotiate("application/openmetrics-text;version=1.0.0;q=0.5,text/"
                                    "plain;version=0.0.4;q=0.3,*/*;q=0.1"),
                     EXPO_OPENMETRICS);
    assert_int_equal(expo_negotiate("application/openmetrics-text;q=0,text/plain"), EXPO_TEXT);
}

static void test_dynbuf_cap(void **state)
{
    (void)state;
    struct dynbuf b;
    dynbuf_init(&b, 10);
    assert_int_equal(dynbuf_append_str(&b, "0123456789"), 0);
    assert_int_not_equal(dynbuf_append_char(&b, 'x'), 0);
    /* a failed buffer stays failed */
    dynbuf_append_str(&b, "");
    assert_int_not_equal(b.error, 0);
    assert_int_equal(b.len, 10);
    dynbuf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_family_headers),
        cmocka_unit_test(test_negotiate),
        cmocka_unit_test(test_dynbuf_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_process_metrics.c - the standard process_* families with plausible
 * values read from /proc. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "process_metrics.h"

static double value_of(const char *text, const char *sample)
{
    char key[128];
    snprintf(key, sizeof(key), "\n%s ", sample);
    const char *p = strstr(text, key);
    if (!p)
        fail_msg("no sample %s", sample);
    return strtod(p + strlen(key), NULL);
}

static void test_process_metrics(void **state)
{
    (void)state;
    struct dynbuf b;
    dynbuf_init(&b, 1 << 20);
    int64_t start = process_start_time_ms();
    process_metrics_render(&b, EXPO_TEXT, start);
    assert_int_equal(b.error, 0);
    assert_non_null(strstr(b.data, "# TYPE process_cpu_seconds_total counter\n"));
    assert_true(value_of(b.data, "process_resident_memory_bytes") > 1024 * 1024 / 2);
    assert_true(value_of(b.data, "process_virtual_memory_bytes") >=
                value_of(b.data, "process_resident_memory_bytes"));
    assert_true(value_of(b.data, "process_open_fds") >= 3);
    assert_true(value_of(b.data, "process_max_fds") >= value_of(b.data, "process_open_fds"));
    double started = value_of(b.data, "process_start_time_seconds");
    double now = (double)time(NULL);
    assert_true(started <= now + 1 && started > now - 3600);
    assert_true(value_of(b.data, "process_cpu_seconds_total") >= 0);
    dynbuf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_process_metrics)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}

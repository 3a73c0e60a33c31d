/* test_log.c - log lines in logfmt and JSON: quoting and escaping of
 * values, level filtering, and one line per call. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "log.h"

/* Runs fn with stderr redirected to a temp file; returns what it wrote. */
static char *capture(void (*fn)(void))
{
    char path[] = "/tmp/finops-log-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    fn();
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    static char buf[8192];
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    close(fd);
    unlink(path);
    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

static void write_logfmt(void)
{
    log_setup(LOG_LEVEL_INFO, LOG_FORMAT_LOGFMT);
    log_debug("hidden", NULL);
    log_info("consumer started", "topic", "ai-costs", "note", "has \"quotes\" and\nnewline",
             "empty", "", NULL);
}

static void test_logfmt(void **state)
{
    (void)state;
    char *out = capture(write_logfmt);
    assert_null(strstr(out, "hidden"));
    assert_non_null(strstr(out, " level=info msg=\"consumer started\" topic=ai-costs "
                                "note=\"has \\\"quotes\\\" and\\nnewline\" empty=\"\"\n"));
    assert_true(strncmp(out, "ts=", 3) == 0);
    assert_non_null(strchr(out, '\n'));
    assert_null(strchr(strchr(out, '\n') + 1, '\n')); /* exactly one line */
}

static void write_json(void)
{
    log_setup(LOG_LEVEL_WARN, LOG_FORMAT_JSON);
    log_info("hidden", NULL);
    log_warn("lag high", "partition", "3", "ctl", "a\tb", NULL);
}

static void test_json(void **state)
{
    (void)state;
    char *out = capture(write_json);
    assert_null(strstr(out, "hidden"));
    assert_true(strncmp(out, "{\"ts\":\"", 7) == 0);
    assert_non_null(strstr(out, ",\"level\":\"warn\",\"msg\":\"lag high\",\"partition\":\"3\","
                                "\"ctl\":\"a\\u0009b\"}\n"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_logfmt),
        cmocka_unit_test(test_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

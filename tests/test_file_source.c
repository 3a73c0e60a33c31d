/* test_file_source.c - JSONL input: blank lines skipped, CRLF and a
 * trailing line without newline accepted, an event of exactly max_bytes
 * (without its newline) accepted and one byte more rejected, and a missing
 * file handled without a crash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "source.h"

static void write_event_of_size(FILE *f, size_t size, const char *newline)
{
    const char *head = "{\"team\":\"t\",\"project\":\"p\",\"cost_usd\":1,\"pad\":\"";
    size_t fixed = strlen(head) + 2; /* closing "} */
    fputs(head, f);
    for (size_t i = fixed; i < size; i++)
        fputc('x', f);
    fputs("\"}", f);
    fputs(newline, f);
}

static void wait_for(struct metrics *m, uint64_t events)
{
    struct metrics_totals t;
    for (int i = 0; i < 1000; i++) {
        metrics_totals(m, &t);
        if (t.accepted + t.rejected >= events)
            return;
        usleep(10000);
    }
}

static void test_file_input(void **state)
{
    (void)state;
    char path[] = "/tmp/finops-input-XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    fputs("{\"team\":\"a\",\"project\":\"b\",\"cost_usd\":1.5}\n\n   \n", f);
    fputs("{\"team\":\"a\",\"project\":\"b\",\"cost_usd\":2}\r\n", f);
    fputs("not json\n", f);
    write_event_of_size(f, 65536, "\n");
    write_event_of_size(f, 65537, "\n");
    fputs("{\"team\":\"a\",\"project\":\"b\",\"cost_usd\":0.25}", f); /* no final newline */
    fclose(f);

    struct exporter_config cfg;
    config_init_defaults(&cfg);
    cfg.input = strdup(path);
    struct metrics *m = metrics_new(&cfg);
    struct ingest *in = ingest_new(&cfg, m, NULL);
    struct event_source *src = file_source_new(&cfg, in, m);
    char err[256];
    assert_int_equal(src->ops->start(src, err, sizeof(err)), 0);
    assert_true(src->ops->ready(src));
    wait_for(m, 6);
    struct metrics_totals t;
    metrics_totals(m, &t);
    assert_int_equal(t.accepted, 4);
    assert_int_equal(t.rejected, 2);
    assert_int_equal(t.rejected_by_reason[REJECT_INVALID_JSON], 1);
    assert_int_equal(t.rejected_by_reason[REJECT_TOO_LARGE], 1);
    src->ops->destroy(src);
    ingest_free(in);
    metrics_free(m);
    config_free(&cfg);
    unlink(path);
}

static void test_missing_file(void **state)
{
    (void)state;
    struct exporter_config cfg;
    config_init_defaults(&cfg);
    cfg.input = strdup("/nonexistent/events.jsonl");
    struct metrics *m = metrics_new(&cfg);
    struct ingest *in = ingest_new(&cfg, m, NULL);
    struct event_source *src = file_source_new(&cfg, in, m);
    char err[256];
    assert_int_equal(src->ops->start(src, err, sizeof(err)), 0);
    src->ops->destroy(src); /* joins the reader, which logged the error */
    struct metrics_totals t;
    metrics_totals(m, &t);
    assert_int_equal(t.accepted + t.rejected, 0);
    ingest_free(in);
    metrics_free(m);
    config_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_file_input),
        cmocka_unit_test(test_missing_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

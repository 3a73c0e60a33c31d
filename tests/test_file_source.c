/* test_file_source.c - JSONL input: blank lines skipped, CRLF and a
 * trailing line without newline accepted, an event of exactly max_bytes
 * (without its newline) accepted and one byte more rejected; lines far
 * longer than max_bytes (a 256 MiB line, /dev/zero) rejected as too_large
 * with memory flat; a read error stops the source (not ready, counted);
 * a missing input or a directory refused at creation; a FIFO with no
 * writer or an idle writer stopped promptly. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "dynbuf.h"
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

/* Waits (generously: 60 s) for `events` events to be counted. */
static void wait_for(struct metrics *m, uint64_t events)
{
    struct metrics_totals t;
    for (int i = 0; i < 6000; i++) {
        metrics_totals(m, &t);
        if (t.accepted + t.rejected >= events)
            return;
        usleep(10000);
    }
}

/* A field of /proc/self/status or /proc/self/io, in its own unit. */
static uint64_t proc_value(const char *file, const char *key)
{
    FILE *f = fopen(file, "r");
    char line[256];
    uint64_t v = 0;
    size_t n = strlen(key);
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, key, n) == 0 && line[n] == ':')
            v = strtoull(line + n + 1, NULL, 10);
    if (f)
        fclose(f);
    return v;
}

struct fixture {
    struct exporter_config cfg;
    struct metrics *m;
    struct ingest *in;
    struct event_source *src;
    char err[256];
};

/* Creates the source on `path`; NULL source with fx->err on failure. */
static void fixture_open(struct fixture *fx, const char *path)
{
    config_init_defaults(&fx->cfg);
    fx->cfg.input = strdup(path);
    fx->m = metrics_new(&fx->cfg);
    fx->in = ingest_new(&fx->cfg, fx->m, NULL);
    fx->err[0] = '\0';
    fx->src = file_source_new(&fx->cfg, fx->in, fx->m, fx->err, sizeof(fx->err));
}

static void fixture_close(struct fixture *fx)
{
    if (fx->src)
        fx->src->ops->destroy(fx->src);
    ingest_free(fx->in);
    metrics_free(fx->m);
    config_free(&fx->cfg);
}

static void start(struct fixture *fx)
{
    assert_non_null(fx->src);
    assert_int_equal(fx->src->ops->start(fx->src, fx->err, sizeof(fx->err)), 0);
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
    write_event_of_size(f, 65536, "\r\n");
    write_event_of_size(f, 65537, "\n");
    write_event_of_size(f, 65538, "\n"); /* fills the line buffer exactly */
    write_event_of_size(f, 65539, "\n"); /* one byte past it */
    write_event_of_size(f, 5 << 20, "\n");
    for (int i = 0; i < 100000; i++) /* a blank line longer than the buffer */
        fputc(' ', f);
    fputc('\n', f);
    fputs("{\"team\":\"a\",\"project\":\"b\",\"cost_usd\":0.25}", f); /* no final newline */
    fclose(f);

    struct fixture fx;
    fixture_open(&fx, path);
    start(&fx);
    assert_true(fx.src->ops->ready(fx.src));
    wait_for(fx.m, 10);
    struct metrics_totals t;
    metrics_totals(fx.m, &t);
    assert_int_equal(t.accepted, 5);
    assert_int_equal(t.rejected, 5);
    assert_int_equal(t.rejected_by_reason[REJECT_INVALID_JSON], 1);
    assert_int_equal(t.rejected_by_reason[REJECT_TOO_LARGE], 4);
    fixture_close(&fx);
    unlink(path);
}

static void test_unusable_inputs(void **state)
{
    (void)state;
    struct fixture fx;
    fixture_open(&fx, "/nonexistent/events.jsonl");
    assert_null(fx.src);
    assert_string_equal(fx.err,
                        "cannot open --input /nonexistent/events.jsonl: No such file or directory");
    fixture_close(&fx);
    assert_int_equal(file_source_check("/nonexistent/events.jsonl", fx.err, sizeof(fx.err)),
                     -ENOENT);

    fixture_open(&fx, "/tmp");
    assert_null(fx.src);
    assert_string_equal(fx.err, "--input /tmp is a directory; give a JSONL file, a FIFO or -");
    fixture_close(&fx);
    assert_int_equal(file_source_check("/tmp", fx.err, sizeof(fx.err)), -EISDIR);
    assert_int_equal(file_source_check("-", fx.err, sizeof(fx.err)), 0);

    if (geteuid() != 0) { /* root reads anything; the daemon test covers it as nobody */
        char path[] = "/tmp/finops-input-XXXXXX";
        close(mkstemp(path));
        chmod(path, 0);
        fixture_open(&fx, path);
        assert_null(fx.src);
        assert_non_null(strstr(fx.err, "Permission denied"));
        fixture_close(&fx);
        unlink(path);
    }
}

/* A 256 MiB line (a sparse file of zero bytes), then an event: the line
 * is one too_large rejection and the peak RSS barely moves. */
static void test_huge_line_memory_flat(void **state)
{
    (void)state;
    char path[] = "/tmp/finops-input-XXXXXX";
    int fd = mkstemp(path);
    const off_t huge = (off_t)256 << 20;
    assert_int_equal(ftruncate(fd, huge), 0);
    const char *ev = "\n{\"team\":\"a\",\"project\":\"b\",\"cost_usd\":1}\n";
    assert_int_equal(pwrite(fd, ev, strlen(ev), huge), (ssize_t)strlen(ev));
    close(fd);

    struct fixture fx;
    fixture_open(&fx, path);
    uint64_t hwm_before = proc_value("/proc/self/status", "VmHWM");
    start(&fx);
    wait_for(fx.m, 2);
    uint64_t hwm_after = proc_value("/proc/self/status", "VmHWM");
    struct metrics_totals t;
    metrics_totals(fx.m, &t);
    assert_int_equal(t.accepted, 1);
    assert_int_equal(t.rejected_by_reason[REJECT_TOO_LARGE], 1);
    print_message("256 MiB line: peak RSS %llu kB -> %llu kB\n", (unsigned long long)hwm_before,
                  (unsigned long long)hwm_after);
    assert_true(hwm_after - hwm_before < 16 * 1024); /* kB */
    fixture_close(&fx);
    unlink(path);
}

/* /dev/zero is one endless line: reading 512 MiB of it keeps the peak RSS
 * flat, and stop() still returns while it reads. */
static void test_dev_zero(void **state)
{
    (void)state;
    struct fixture fx;
    fixture_open(&fx, "/dev/zero");
    uint64_t hwm_before = proc_value("/proc/self/status", "VmHWM");
    uint64_t read_before = proc_value("/proc/self/io", "rchar");
    start(&fx);
    for (int i = 0; i < 12000; i++) { /* up to 120 s */
        if (proc_value("/proc/self/io", "rchar") - read_before >= (512u << 20))
            break;
        usleep(10000);
    }
    uint64_t got = proc_value("/proc/self/io", "rchar") - read_before;
    uint64_t hwm_after = proc_value("/proc/self/status", "VmHWM");
    print_message("/dev/zero: %llu MiB read, peak RSS %llu kB -> %llu kB\n",
                  (unsigned long long)(got >> 20), (unsigned long long)hwm_before,
                  (unsigned long long)hwm_after);
    assert_true(got >= (512u << 20));
    assert_true(hwm_after - hwm_before < 16 * 1024);
    fx.src->ops->stop(fx.src);
    fixture_close(&fx);
}

/* /proc/self/mem reads fail with EIO at offset 0: the source stops,
 * reports not ready and counts the error; nothing is counted as events. */
static void test_read_error(void **state)
{
    (void)state;
    struct fixture fx;
    fixture_open(&fx, "/proc/self/mem");
    start(&fx);
    for (int i = 0; i < 6000 && fx.src->ops->ready(fx.src); i++)
        usleep(10000);
    assert_false(fx.src->ops->ready(fx.src));
    struct dynbuf b;
    dynbuf_init(&b, 1 << 20);
    assert_int_equal(metrics_render(fx.m, EXPO_TEXT, &b), 0);
    assert_false(b.error);
    dynbuf_append(&b, "", 1);
    assert_non_null(strstr(b.data, "\nai_finops_input_read_errors_total 1\n"));
    dynbuf_free(&b);
    struct metrics_totals t;
    metrics_totals(fx.m, &t);
    assert_int_equal(t.accepted + t.rejected, 0);
    fixture_close(&fx);
}

/* A FIFO with no writer, then one with an idle writer: stop() returns
 * (ctest's timeout would catch a hang) and what was written is counted. */
static void test_fifo(void **state)
{
    (void)state;
    char dir[] = "/tmp/finops-fifo-XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/in", dir);
    assert_int_equal(mkfifo(path, 0600), 0);

    struct fixture fx;
    fixture_open(&fx, path); /* no writer: must not block */
    start(&fx);
    assert_true(fx.src->ops->ready(fx.src));
    fx.src->ops->stop(fx.src);
    fixture_close(&fx);

    fixture_open(&fx, path);
    start(&fx);
    int w = open(path, O_WRONLY);
    assert_true(w >= 0);
    const char *ev = "{\"team\":\"a\",\"project\":\"b\",\"cost_usd\":1}\n";
    assert_int_equal(write(w, ev, strlen(ev)), (ssize_t)strlen(ev));
    wait_for(fx.m, 1);
    struct metrics_totals t;
    metrics_totals(fx.m, &t);
    assert_int_equal(t.accepted, 1);
    fx.src->ops->stop(fx.src); /* the writer is still open and idle */
    close(w);
    fixture_close(&fx);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_file_input),
        cmocka_unit_test(test_unusable_inputs),
        cmocka_unit_test(test_huge_line_memory_flat),
        cmocka_unit_test(test_dev_zero),
        cmocka_unit_test(test_read_error),
        cmocka_unit_test(test_fifo),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

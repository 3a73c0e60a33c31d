/*
 * file_source.c - JSONL events from a file, a FIFO or stdin (see source.h).
 *
 * One reader thread reads 64 KiB chunks with read(2) into a fixed buffer
 * and assembles lines in a second fixed buffer of events.max_bytes + 2
 * bytes: a longer line is not stored; its remaining bytes are skipped up
 * to the next newline and it counts as one too_large event. So memory
 * does not depend on the input (a 256 MiB line or /dev/zero read as one
 * endless line cost the same two buffers).
 *
 * The reader waits in poll() on the input and on a pipe that stop() writes
 * to, so a FIFO with an idle writer, or with none yet, does not hold up
 * shutdown. A read error is an error: logged, counted in
 * ai_finops_input_read_errors_total, and the source stops and reports not
 * ready. End of input (end of file, the last FIFO writer gone) is logged
 * and the daemon keeps serving.
 *
 * Thread-safety: new/start/stop/destroy on the main thread; ready() and
 * the collector from any thread.
 */
#define _GNU_SOURCE /* pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dynbuf.h"
#include "expo.h"
#include "log.h"
#include "source.h"

#define CHUNK_BYTES (64 * 1024)

struct file_source {
    struct event_source base; /* first: the interface pointer is this */
    char *path;
    int fd;
    bool is_stdin;
    int wake[2]; /* stop() writes to wake[1] */
    struct ingest_worker *worker;
    char *chunk;     /* CHUNK_BYTES */
    char *line;      /* line_cap bytes */
    size_t line_cap; /* events.max_bytes + 2: room for a CR and one byte too many */
    pthread_t thread;
    atomic_bool started; /* read by ready() on an HTTP thread */
    atomic_bool failed;  /* a read error stopped the source */
    atomic_uint_fast64_t read_errors;
};

static bool blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
            return false;
    return true;
}

/* The line being assembled. */
struct line_state {
    size_t len;    /* bytes stored */
    bool overflow; /* more than line_cap bytes: the rest is skipped */
    bool nonblank; /* a skipped byte was not blank */
    uint64_t events, rejected;
};

static void line_append(struct file_source *fs, struct line_state *ls, const char *p, size_t n)
{
    if (!ls->overflow) {
        size_t room = fs->line_cap - ls->len;
        size_t take = n < room ? n : room;
        memcpy(fs->line + ls->len, p, take);
        ls->len += take;
        if (take == n)
            return;
        ls->overflow = true;
        p += take;
        n -= take;
    }
    if (!ls->nonblank && !blank(p, n))
        ls->nonblank = true;
}

static void line_end(struct file_source *fs, struct line_state *ls)
{
    size_t n = ls->len;
    if (!ls->overflow) {
        /* The event is the line without its terminator: the size limit
         * and the bytes a dead letter would carry exclude it. */
        while (n > 0 && (fs->line[n - 1] == '\n' || fs->line[n - 1] == '\r'))
            n--;
    }
    if (!blank(fs->line, n) || ls->nonblank) {
        ls->events++;
        /* An overflowed line is passed truncated to max_bytes + 2 bytes:
         * longer than events.max_bytes, so it is counted as too_large
         * before anything reads its content. */
        if (ingest_process(fs->worker, fs->line, n) != REJECT_NONE)
            ls->rejected++;
    }
    ls->len = 0;
    ls->overflow = ls->nonblank = false;
}

static void *reader_main(void *arg)
{
    struct file_source *fs = arg;
    struct line_state ls = {0};
    struct pollfd pfd[2] = {{.fd = fs->fd, .events = POLLIN},
                            {.fd = fs->wake[0], .events = POLLIN}};
    const char *how = "end of input; still serving metrics";
    for (;;) {
        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            how = NULL;
            log_error("error waiting for input", "path", fs->path, "error", strerror(errno), NULL);
            break;
        }
        if (pfd[1].revents) {
            how = "input stopped";
            break;
        }
        if (!pfd[0].revents)
            continue;
        ssize_t got = read(fs->fd, fs->chunk, CHUNK_BYTES);
        if (got < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            how = NULL;
            log_error("error reading input; the input is stopped and /readyz fails", "path",
                      fs->path, "error", strerror(errno), NULL);
            break;
        }
        if (got == 0) {
            if (ls.len || ls.overflow)
                line_end(fs, &ls); /* a last line without a newline */
            break;
        }
        const char *p = fs->chunk, *end = fs->chunk + got;
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            line_append(fs, &ls, p, (size_t)((nl ? nl : end) - p));
            if (!nl)
                break;
            line_end(fs, &ls);
            p = nl + 1;
        }
    }
    if (!how) {
        atomic_fetch_add(&fs->read_errors, 1);
        atomic_store(&fs->failed, true);
        how = "input failed";
    }
    char ev_text[24], rej_text[24];
    snprintf(ev_text, sizeof(ev_text), "%llu", (unsigned long long)ls.events);
    snprintf(rej_text, sizeof(rej_text), "%llu", (unsigned long long)ls.rejected);
    log_info(how, "path", fs->path, "events", ev_text, "rejected", rej_text, NULL);
    return NULL;
}

static int fs_start(struct event_source *src, char *errbuf, size_t errlen)
{
    struct file_source *fs = (struct file_source *)src;
    int rc = pthread_create(&fs->thread, NULL, reader_main, fs);
    if (rc) {
        snprintf(errbuf, errlen, "cannot start input thread: %s", strerror(rc));
        return -rc;
    }
    atomic_store(&fs->started, true);
    return 0;
}

static void fs_stop(struct event_source *src)
{
    struct file_source *fs = (struct file_source *)src;
    if (!atomic_load(&fs->started))
        return;
    /* The reader polls this pipe with its input: it stops after the chunk
     * in hand, whether or not the input ever delivers another byte. */
    ssize_t w;
    do
        w = write(fs->wake[1], "x", 1);
    while (w < 0 && errno == EINTR);
    pthread_join(fs->thread, NULL);
    atomic_store(&fs->started, false);
}

static bool fs_ready(struct event_source *src)
{
    struct file_source *fs = (struct file_source *)src;
    return atomic_load(&fs->started) && !atomic_load(&fs->failed);
}

static void fs_destroy(struct event_source *src)
{
    struct file_source *fs = (struct file_source *)src;
    if (!fs)
        return;
    fs_stop(src);
    ingest_worker_free(fs->worker);
    if (fs->fd >= 0 && !fs->is_stdin)
        close(fs->fd);
    for (int i = 0; i < 2; i++)
        if (fs->wake[i] >= 0)
            close(fs->wake[i]);
    free(fs->chunk);
    free(fs->line);
    free(fs->path);
    free(fs);
}

static void fs_collect(struct dynbuf *b, enum expo_format fmt, void *ctx)
{
    struct file_source *fs = ctx;
    expo_family(b, fmt, "ai_finops_input_read_errors", "counter",
                "Read errors that stopped the --input source (it then reports not ready).");
    dynbuf_append_str(b, "ai_finops_input_read_errors_total");
    expo_value_u64(b, (uint64_t)atomic_load(&fs->read_errors));
}

static const struct event_source_ops file_source_ops = {
    .name = "file",
    .start = fs_start,
    .stop = fs_stop,
    .ready = fs_ready,
    .destroy = fs_destroy,
};

/* Opens the input without blocking (a FIFO with no writer yet would block
 * open(2)) and refuses what cannot be read as lines. Returns the fd or a
 * negative errno with errbuf set. */
static int open_input(const char *path, char *errbuf, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        int e = errno;
        snprintf(errbuf, errlen, "cannot open --input %s: %s", path, strerror(e));
        return -e;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        snprintf(errbuf, errlen, "cannot stat --input %s: %s", path, strerror(e));
        close(fd);
        return -e;
    }
    if (S_ISDIR(st.st_mode)) {
        snprintf(errbuf, errlen, "--input %s is a directory; give a JSONL file, a FIFO or -", path);
        close(fd);
        return -EISDIR;
    }
    return fd;
}

int file_source_check(const char *path, char *errbuf, size_t errlen)
{
    if (strcmp(path, "-") == 0)
        return 0;
    int fd = open_input(path, errbuf, errlen);
    if (fd < 0)
        return fd;
    close(fd);
    return 0;
}

struct event_source *file_source_new(const struct exporter_config *cfg, struct ingest *ingest,
                                     struct metrics *metrics, char *errbuf, size_t errlen)
{
    struct file_source *fs = calloc(1, sizeof(*fs));
    if (!fs) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    fs->base.ops = &file_source_ops;
    fs->fd = fs->wake[0] = fs->wake[1] = -1;
    fs->path = strdup(cfg->input);
    fs->line_cap = (size_t)cfg->events_max_bytes + 2;
    fs->chunk = malloc(CHUNK_BYTES);
    fs->line = malloc(fs->line_cap);
    fs->worker = ingest_worker_new(ingest);
    if (fs->worker) /* events.input_kind */
        ingest_worker_set_input(fs->worker, ingest_input_for_file(ingest));
    if (!fs->path || !fs->chunk || !fs->line || !fs->worker) {
        snprintf(errbuf, errlen, "out of memory");
        goto fail;
    }
    fs->is_stdin = strcmp(fs->path, "-") == 0;
    fs->fd = fs->is_stdin ? STDIN_FILENO : open_input(fs->path, errbuf, errlen);
    if (fs->fd < 0)
        goto fail;
    if (pipe2(fs->wake, O_CLOEXEC) != 0) {
        snprintf(errbuf, errlen, "cannot create a pipe: %s", strerror(errno));
        goto fail;
    }
    if (metrics && metrics_add_collector(metrics, fs_collect, fs)) {
        snprintf(errbuf, errlen, "too many metric collectors");
        goto fail;
    }
    return &fs->base;
fail:
    fs_destroy(&fs->base);
    return NULL;
}

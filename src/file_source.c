/*
 * file_source.c - JSONL events from a file or stdin (see source.h).
 *
 * One reader thread: getline() grows one buffer to the longest line seen
 * (an oversized event still has to be read to be skipped and counted as
 * too_large), and each non-blank line goes through ingest_process().
 * Thread-safety: start/stop on the main thread; ready() from any thread.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "source.h"

struct file_source {
    struct event_source base; /* first: the interface pointer is this */
    char *path;
    struct ingest *ingest;
    struct ingest_worker *worker;
    pthread_t thread;
    atomic_bool started; /* read by ready() on an HTTP thread */
    atomic_bool stop;
    atomic_bool done;
};

static bool blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
            return false;
    return true;
}

static void *reader_main(void *arg)
{
    struct file_source *fs = arg;
    bool is_stdin = strcmp(fs->path, "-") == 0;
    FILE *f = is_stdin ? stdin : fopen(fs->path, "rb");
    char *line = NULL;
    size_t cap = 0;
    uint64_t events = 0, rejected = 0;
    if (!f) {
        log_error("cannot open input", "path", fs->path, "error", strerror(errno), NULL);
        goto out;
    }
    ssize_t n;
    while (!atomic_load_explicit(&fs->stop, memory_order_relaxed) &&
           (n = getline(&line, &cap, f)) >= 0) {
        /* The event is the line without its terminator: the size limit
         * and the bytes a dead letter would carry exclude it. */
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            n--;
        if (blank(line, (size_t)n))
            continue;
        events++;
        if (ingest_process(fs->worker, line, (size_t)n) != REJECT_NONE)
            rejected++;
    }
    if (ferror(f))
        log_error("error reading input", "path", fs->path, "error", strerror(errno), NULL);
    char ev_text[24], rej_text[24];
    snprintf(ev_text, sizeof(ev_text), "%llu", (unsigned long long)events);
    snprintf(rej_text, sizeof(rej_text), "%llu", (unsigned long long)rejected);
    log_info("end of input; still serving metrics", "path", fs->path, "events", ev_text, "rejected",
             rej_text, NULL);
out:
    free(line);
    if (f && !is_stdin)
        fclose(f);
    atomic_store(&fs->done, true);
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
    atomic_store(&fs->stop, true);
    /* A reader blocked on stdin would never see the flag: unblock it. */
    if (strcmp(fs->path, "-") == 0 && !atomic_load(&fs->done))
        pthread_cancel(fs->thread);
    pthread_join(fs->thread, NULL);
    atomic_store(&fs->started, false);
}

static bool fs_ready(struct event_source *src)
{
    struct file_source *fs = (struct file_source *)src;
    return atomic_load(&fs->started);
}

static void fs_destroy(struct event_source *src)
{
    struct file_source *fs = (struct file_source *)src;
    if (!fs)
        return;
    fs_stop(src);
    ingest_worker_free(fs->worker);
    free(fs->path);
    free(fs);
}

static const struct event_source_ops file_source_ops = {
    .name = "file",
    .start = fs_start,
    .stop = fs_stop,
    .ready = fs_ready,
    .destroy = fs_destroy,
};

struct event_source *file_source_new(const struct exporter_config *cfg, struct ingest *ingest,
                                     struct metrics *metrics)
{
    (void)metrics;
    struct file_source *fs = calloc(1, sizeof(*fs));
    if (!fs)
        return NULL;
    fs->base.ops = &file_source_ops;
    fs->path = strdup(cfg->input);
    fs->ingest = ingest;
    fs->worker = ingest_worker_new(ingest);
    if (!fs->path || !fs->worker) {
        fs_destroy(&fs->base);
        return NULL;
    }
    return &fs->base;
}

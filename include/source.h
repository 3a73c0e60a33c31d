/*
 * source.h - the input side: anything that delivers event messages to the
 * ingest path (a JSONL file or stdin now, a Kafka consumer group later)
 * implements this small interface, and main.c drives it without knowing
 * which it is.
 *
 * Thread-safety: start/stop/destroy are called by the main thread; ready()
 * is called by the HTTP thread (for /readyz) and must be thread-safe.
 */
#ifndef AI_FINOPS_SOURCE_H
#define AI_FINOPS_SOURCE_H

#include <stdbool.h>

#include "config.h"
#include "ingest.h"
#include "metrics.h"

struct event_source;

struct event_source_ops {
    const char *name;
    /* Starts the source's threads. Returns 0 or a negative errno. */
    int (*start)(struct event_source *src, char *errbuf, size_t errlen);
    /* Asks the threads to finish and joins them. */
    void (*stop)(struct event_source *src);
    bool (*ready)(struct event_source *src);
    void (*destroy)(struct event_source *src);
};

struct event_source {
    const struct event_source_ops *ops;
};

/* JSONL from a file, a FIFO, or stdin for "-". One thread; blank lines are
 * skipped; a line longer than events.max_bytes is skipped and counted as
 * too_large (memory stays two fixed buffers); at end of input the thread
 * ends and the daemon keeps serving; a read error stops the source (not
 * ready, counted). The input is opened here: NULL with errbuf set when it
 * is missing, unreadable or a directory. stop() returns promptly even
 * while the input delivers nothing (an idle FIFO). With metrics non-NULL
 * the source registers ai_finops_input_read_errors_total. */
struct event_source *file_source_new(const struct exporter_config *cfg, struct ingest *ingest,
                                     struct metrics *metrics, char *errbuf, size_t errlen);

/* Whether `path` would open as an input ("-" always does): 0, or a
 * negative errno with errbuf saying why (--check-config). */
int file_source_check(const char *path, char *errbuf, size_t errlen);

/* Kafka consumer group (see src/kafka/). NULL with errbuf set on a
 * configuration error. */
struct event_source *kafka_source_new(const struct exporter_config *cfg, struct ingest *ingest,
                                      struct metrics *metrics, char *errbuf, size_t errlen);

#endif

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

/* JSONL from a file, or stdin for "-". One thread; blank lines are skipped;
 * at end of input the thread ends and the daemon keeps serving. */
struct event_source *file_source_new(const struct exporter_config *cfg, struct ingest *ingest,
                                     struct metrics *metrics);

/* Kafka consumer group (see src/kafka/). NULL with errbuf set on a
 * configuration error. */
struct event_source *kafka_source_new(const struct exporter_config *cfg, struct ingest *ingest,
                                      struct metrics *metrics, char *errbuf, size_t errlen);

#endif

/*
 * ingest.h - the per-event data path shared by every input: decode, price,
 * add to counters. Sources (file, Kafka) hand each message's bytes to an
 * ingest_worker and learn its outcome (to dead-letter rejected ones).
 *
 * The path takes no lock, logs nothing and allocates nothing per event once
 * warm (the decoder's arena and the counter tables' series are reused).
 * Thread-safety: struct ingest is shared and read-only after ingest_new;
 * each ingest_worker belongs to one thread.
 */
#ifndef AI_FINOPS_INGEST_H
#define AI_FINOPS_INGEST_H

#include <stddef.h>

#include "config.h"
#include "event.h"
#include "metrics.h"

struct ingest;
struct ingest_worker;

struct price_table;

/* prices may be NULL (then every event needs cost_usd); it must outlive
 * the ingest. */
struct ingest *ingest_new(const struct exporter_config *cfg, struct metrics *metrics,
                          const struct price_table *prices);
void ingest_free(struct ingest *in);

/* Main thread, before the worker's thread starts using it. NULL on failure. */
struct ingest_worker *ingest_worker_new(struct ingest *in);
void ingest_worker_free(struct ingest_worker *w);

/* Processes one message and counts its outcome. Returns REJECT_NONE when it
 * was added, else the reason it was rejected (nothing was added). */
enum reject_reason ingest_process(struct ingest_worker *w, const char *buf, size_t len);

/*
 * What a source's messages are (event_kinds.h): a kind and its mapping
 * profile, resolved once at ingest_new from events.topic_kinds /
 * events.input_kind / events.mappings. NULL for a topic no config names
 * means the default (cost, our field names). Owned by the ingest.
 */
struct ingest_input;
const struct ingest_input *ingest_input_for_topic(const struct ingest *in, const char *topic);
const struct ingest_input *ingest_input_for_file(const struct ingest *in);
/* The input the worker's next messages are (cheap: a pointer store; call
 * per message or per partition change). Worker thread only. */
void ingest_worker_set_input(struct ingest_worker *w, const struct ingest_input *input);

/* Sharded registries (the Kafka input): the shard ("<topic>-<partition>")
 * the worker's next events count in; see metrics_worker_set_shard. */
void ingest_worker_set_shard(struct ingest_worker *w, const char *shard, size_t len);

#endif

/*
 * kafka_internal.h - the Kafka input's shared state (src/kafka/), seen
 * only by its own files and by tests/test_kafka_state.c; the daemon knows
 * it through kafka_source_new (source.h). docs/delivery.md has the design.
 *
 * Threads: the main thread creates, starts, stops and frees it; N workers
 * consume (worker 0 also serves the group's callbacks: rebalance, errors,
 * statistics); the checkpoint thread writes checkpoints; the scrape thread
 * runs the collector.
 * Locks, in this order: ckpt_lock (a checkpoint in progress, or a
 * revocation), then freeze_lock (the workers stopped between messages),
 * then registry_lock (the partition list), then a partition's dlq_lock
 * (its dead letters not yet checkpointed). registry_lock is also taken on
 * the per-message path, by state_for (consumer.c), whenever a worker's
 * message is of another partition than its previous one.
 */
#ifndef AI_FINOPS_KAFKA_INTERNAL_H
#define AI_FINOPS_KAFKA_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "source.h"

struct ingest_input;

#define POLL_MS 100
/* "<topic>-<partition>": a topic name is at most 249 bytes. */
#define SHARD_MAX 272

/* A rejected message waiting for the checkpoint that writes it to the
 * dead-letter topic together with the offsets past it. */
struct dead_letter {
    struct partition_state *state; /* where it came from */
    int64_t offset;
    char reason[32];
    void *key;
    size_t key_len;
    void *payload;
    size_t len;
};

struct dead_letters {
    struct dead_letter *items;
    size_t count, cap;
    size_t bytes; /* payload + key bytes held */
};

struct partition_state {
    char *topic;
    int32_t partition;
    char shard[SHARD_MAX]; /* the `shard` label value: "<topic>-<partition>" */
    size_t shard_len;
    const struct ingest_input *input; /* its topic's kind and mapping; set once, at creation */
    int32_t state_partition;          /* where its checkpoint records live */
    _Atomic int64_t applied;          /* highest offset applied, -1 for none */
    /* next offset of the last durable checkpoint, -1 for none; written by
     * the checkpointer and the restore, read by the collector */
    _Atomic int64_t checkpointed;
    int worker;            /* the worker it is forwarded to; -1 when not assigned */
    _Atomic bool assigned; /* checked by workers per message */
    /* rejected messages not yet checkpointed, in offset order */
    pthread_mutex_t dlq_lock;
    struct dead_letters letters;
    _Atomic size_t letter_bytes; /* letters.bytes, for the workers' unlocked check */
};

struct consumer {
    struct kafka_source *source;
    rd_kafka_queue_t *queue; /* its partitions' messages (worker 0: the consumer queue) */
    int partitions;          /* assigned to it; under registry_lock */
    struct ingest_worker *worker;
    pthread_t thread;
    bool started;
    int index;
    /* this thread's lookup cache: last partition seen */
    rd_kafka_topic_t *cache_rkt;
    int32_t cache_partition;
    struct partition_state *cache_state;
    struct partition_state *shard_state; /* the shard its ingest worker counts in */
    _Atomic bool applying;               /* inside the gate: see gate_enter */
};

struct kafka_source {
    struct event_source base; /* first: the interface pointer is this */
    const struct exporter_config *cfg;
    struct ingest *ingest;
    struct metrics *metrics;
    rd_kafka_t *rk;             /* the group member */
    struct consumer *consumers; /* the workers */
    int consumer_count;
    _Atomic bool broker_up;
    _Atomic int assigned;
    atomic_bool stop;
    atomic_bool shutting_down;
    atomic_bool frozen; /* the checkpointer takes its cut */
    pthread_mutex_t freeze_lock;

    /* the partition registry: partitions are never freed before the
     * source, so workers may cache pointers */
    pthread_mutex_t registry_lock;
    struct partition_state **parts;
    size_t part_count, part_cap;

    /* checkpoint.c */
    rd_kafka_t *txn;                 /* the transactional producer */
    rd_kafka_t *restore_committed;   /* read_committed reader of the state topic */
    rd_kafka_t *restore_uncommitted; /* for the state partitions' high watermarks */
    char transactional_id[256];
    atomic_bool txn_ready;       /* init_transactions done */
    atomic_bool txn_fatal;       /* fenced: the daemon stops */
    atomic_bool txn_broken;      /* fatal otherwise: a new producer replaces it */
    atomic_bool ckpt_stop;       /* the checkpoint thread ends */
    atomic_int state_partitions; /* of kafka.state_topic; 0 until known */
    pthread_mutex_t ckpt_lock;   /* one checkpoint, restore or revocation at a time */
    pthread_mutex_t ckpt_wake_lock;
    pthread_cond_t ckpt_wake;
    pthread_t ckpt_thread;
    bool ckpt_thread_started;
    struct dead_letters carried; /* letters of a failed checkpoint, sent with the next */
    int fenced_streak;           /* fatal "fenced" errors since the last checkpoint */
    int64_t dlq_missing_logged_ms;
    size_t dlq_max_bytes;         /* a worker waits while its partition holds more */
    _Atomic int64_t served_at_ms; /* wall clock of the last published checkpoint */

    _Atomic uint64_t rebalances, duplicates, checkpoints, checkpoint_failures, checkpoint_records,
        restored_series, dlq_produced;
    _Atomic uint64_t checkpoint_us_total; /* wall time spent in successful checkpoints */
};

/* ---- state.c: checkpoint records (pure functions) ------------------------
 *
 * A series record: key "AIFS1" | u16 shard length | shard | u8 family |
 * u8 label count | (u16 length | bytes) per label but the shard; value
 * u64 value | i64 hold_until_ms (big-endian). A position record: key
 * "AIFP1" | u16 shard length | shard; value i64 next offset. */

#define STATE_LABELS_MAX 16
struct state_record {
    bool position; /* a position record, else a series record */
    const char *shard;
    size_t shard_len;
    unsigned family;
    size_t label_count;
    struct label_value labels[STATE_LABELS_MAX];
    uint64_t value;
    int64_t hold_until_ms;
    int64_t next_offset;
};

/* Encodes into buf (cap bytes); returns the key length, or 0 if it does
 * not fit or a label is longer than 65535 bytes. */
size_t state_series_key(char *buf, size_t cap, const char *shard, size_t shard_len, unsigned family,
                        const struct label_value *labels, size_t label_count);
size_t state_position_key(char *buf, size_t cap, const char *shard, size_t shard_len);
/* 16 bytes for a series, 8 for a position. */
void state_series_value(char out[16], uint64_t value, int64_t hold_until_ms);
void state_position_value(char out[8], int64_t next_offset);
/* Decodes a record; labels point into key. Returns 0, or -EINVAL for a
 * record that is not ours or is damaged. */
int state_decode(const void *key, size_t key_len, const void *value, size_t value_len,
                 struct state_record *out);
/* FNV-1a 32 of a shard name: stable across processes and versions. */
uint32_t state_shard_hash(const char *shard, size_t shard_len);
/* Which state partition holds a shard's records: FNV-1a of the shard mod
 * partitions (stable across processes and versions). */
int32_t state_partition_of(const char *shard, size_t shard_len, int partitions);
/* "<topic>-<partition>" into out (SHARD_MAX); returns its length. */
size_t state_shard_name(char out[SHARD_MAX], const char *topic, int32_t partition);

/* ---- consumer.c ------------------------------------------------------------ */

/* Stops every worker between two messages (waits as long as it takes,
 * unless the source stops: then returns false) and holds freeze_lock
 * until kafka_thaw_appliers. */
bool kafka_freeze_appliers(struct kafka_source *ks);
void kafka_thaw_appliers(struct kafka_source *ks);
/* Caller holds registry_lock. */
struct partition_state *kafka_partition(struct kafka_source *ks, const char *topic,
                                        int32_t partition, bool create);

/* ---- checkpoint.c: the transactional producer and restore ----------------- */

int kafka_checkpoint_init(struct kafka_source *ks, char *errbuf, size_t errlen);
int kafka_checkpoint_start(struct kafka_source *ks, char *errbuf, size_t errlen);
/* Stops the checkpoint thread, then writes a last checkpoint within
 * timeout_ms (main thread, workers stopped). */
void kafka_checkpoint_stop(struct kafka_source *ks, int timeout_ms);
void kafka_checkpoint_free(struct kafka_source *ks);
/* Rebalance callback: restores the assigned partitions' series from their
 * last checkpoint and sets each element's offset to its restored position
 * (RD_KAFKA_OFFSET_INVALID when it has none). Returns false when the
 * source stopped before the restore finished. */
bool kafka_restore(struct kafka_source *ks, rd_kafka_topic_partition_list_t *parts);
/* Rebalance callback, under ckpt_lock: hides the revoked partitions'
 * series (another process serves them from now on). */
void kafka_hide_revoked(struct kafka_source *ks, const rd_kafka_topic_partition_list_t *parts);

/* ---- dlq.c: dead letters ----------------------------------------------- */

/* Worker: keeps a copy of the rejected message for the next checkpoint. */
void kafka_dead_letter(struct kafka_source *ks, struct partition_state *p,
                       const rd_kafka_message_t *m, enum reject_reason reason);
/* Worker, outside the gate: waits while p holds more than dlq_max_bytes
 * of letters (a checkpoint takes them), until the source stops. */
void kafka_dead_letters_wait(struct kafka_source *ks, struct partition_state *p);
/* Moves p's letters to the end of to (checkpointer, workers frozen). */
void kafka_dead_letters_take(struct partition_state *p, struct dead_letters *to);
/* Drops the letters of partitions no longer assigned (their new owner
 * re-reads and re-rejects them), then produces the rest within the open
 * transaction. Returns 0 or a librdkafka error. */
rd_kafka_resp_err_t kafka_dead_letters_produce(struct kafka_source *ks,
                                               struct dead_letters *letters, int64_t deadline_ms);
/* CLOCK_MONOTONIC milliseconds. */
int64_t kafka_now_ms(void);
void kafka_dead_letters_clear(struct dead_letters *l);

/* ---- conf.c: librdkafka configuration ------------------------------------ */

int kafka_set_conf(rd_kafka_conf_t *conf, const char *key, const char *value, char *errbuf,
                   size_t errlen);
rd_kafka_conf_t *kafka_base_conf(const struct exporter_config *cfg, rd_kafka_type_t type,
                                 const char *const *defaults, char *errbuf, size_t errlen);

/* ---- collector.c: self-metrics (scrape thread) ------------------------------ */

void kafka_collect(struct dynbuf *b, enum expo_format fmt, void *ctx);

#endif

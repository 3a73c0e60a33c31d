/*
 * kafka_internal.h - the Kafka input's shared state (src/kafka/), seen
 * only by its own files and by tests/test_kafka_ledger.c; the daemon knows
 * it through kafka_source_new (source.h).
 *
 * Threads: the main thread creates, starts, stops and frees it; N workers
 * consume (worker 0 also serves the group's callbacks); the scrape thread
 * runs the scrape hooks and the collector; the dead-letter thread serves
 * the producer's delivery reports (each file says which functions run
 * where).
 * Locks, in this order: freeze_lock (consumer.c: a scrape's cut or a
 * revocation), then registry_lock (struct ledger: the partition list,
 * snapshots, viewer claims and commit plans), then a partition's dlq_lock
 * (its pending dead letters). registry_lock is also taken on the
 * per-message path, by state_for (consumer.c) whenever a worker's message
 * is of another partition than its previous one.
 */
#ifndef AI_FINOPS_KAFKA_INTERNAL_H
#define AI_FINOPS_KAFKA_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "commit_claim.h"
#include "source.h"

#define MAX_VIEWERS   32
#define MAX_SNAPSHOTS 16
#define POLL_MS       100

struct partition_state {
    char *topic;
    int32_t partition;
    uint32_t index;          /* in the registry; index + 1 is its counter origin */
    _Atomic int64_t applied; /* highest offset applied, -1 for none */
    /* scrape thread (and commits from other threads), under registry_lock: */
    int64_t last_done[MAX_VIEWERS];   /* from the viewer's latest completed scrape */
    int64_t observed_by[MAX_VIEWERS]; /* every event up to here observed by the viewer */
    /* every event up to here observed by the viewer except in the series
     * its latest scrape showed first (viewer_claim): the claim's upto - 1 */
    int64_t claim_upto[MAX_VIEWERS];
    _Atomic int64_t committed; /* next offset committed, -1 for none */
    int64_t sent_offset;       /* the last commit sent, -1 for none or to resend */
    uint64_t sent_digest;      /* and a hash of its claim text (0: none) */
    int worker;                /* the worker it is forwarded to; -1 when not assigned */
    _Atomic bool assigned;     /* checked by workers inside the gate */
    /* The previous owner's claim, read from the committed metadata at
     * assignment: messages below inherited.upto were counted by it and are
     * replayed into its held series only. Written by the owning consumer
     * thread under registry_lock; read by that thread without it. */
    struct commit_claim inherited;
    char *inherited_text;
    size_t inherited_len;
    /* dead letters not yet acknowledged, in offset order */
    pthread_mutex_t dlq_lock;
    int64_t *dlq_pending;
    size_t dlq_count, dlq_cap;
};

struct snapshot {
    uint64_t scrape_id;
    uint32_t viewer;
    size_t count;
    int64_t *applied;            /* indexed like the registry at snapshot time */
    int64_t *first_shown;        /* lowest origin offset of a series first shown */
    bool unknown_first;          /* a series of unknown origin was first shown */
    bool spread_first;           /* a series fed by several partitions was first shown */
    bool unfrozen;               /* rendered while appliers ran on: claims nothing */
    struct first_sight *sighted; /* every first-shown series with an identity */
    size_t sighted_count, sighted_cap;
};

/* The series a viewer's latest completed scrape showed first: what commits
 * name as held (see commit_claim.h). scrape thread, under registry_lock. */
struct viewer_claim {
    uint64_t scrape_id;
    struct first_sight *sighted;
    size_t sighted_count, sighted_cap;
};

/* What was applied, shown and committed, per partition: the state the
 * commit planning reads (ledger.c). Fixed fields are set by ledger_init;
 * the rest is under registry_lock. */
struct ledger {
    uint32_t required_viewers; /* a bit per kafka.commit_replicas viewer */
    bool claims;               /* kafka.commit_mode scrape: commits carry claims */
    size_t claim_max_bytes;    /* kafka.commit_metadata_max_bytes, 0: no claims */
    uint64_t schema;           /* metrics_schema_hash */
    pthread_mutex_t registry_lock;
    struct partition_state **parts;
    size_t part_count, part_cap;
    struct snapshot snapshots[MAX_SNAPSHOTS];
    size_t snapshot_next;
    struct snapshot *rendering; /* the scrape now rendering (scrape thread) */
    struct viewer_claim viewer_claims[MAX_VIEWERS];
    _Atomic uint64_t claims_cut; /* claims shortened to fit claim_max_bytes */
};

/* What one partition's commit sends: the offset, and a claim about the
 * offsets past it (see commit_claim.h). */
struct commit_plan {
    int64_t offset;
    char *meta; /* malloc'd claim text, NULL for none */
    size_t meta_len;
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
    _Atomic bool applying; /* inside the gate: see gate_enter */
};

struct dlq_ref {
    struct partition_state *state;
    int64_t offset;
    char reason[32];
};

struct kafka_source {
    struct event_source base; /* first: the interface pointer is this */
    const struct exporter_config *cfg;
    struct ingest *ingest;
    rd_kafka_t *rk;             /* the group member */
    struct consumer *consumers; /* the workers */
    int consumer_count;
    _Atomic bool broker_up;
    _Atomic int assigned;
    rd_kafka_t *dlq; /* NULL when dead-lettering is off */
    pthread_t dlq_thread;
    bool dlq_thread_started;
    atomic_bool stop;
    atomic_bool shutting_down;
    bool gated;         /* scrape commit mode: scrapes pause applying (gate_enter) */
    atomic_bool frozen; /* a scrape takes its cut, or partitions are revoked */
    bool freeze_held;   /* scrape thread: this scrape froze the appliers */
    pthread_mutex_t freeze_lock;

    struct ledger ledger;

    _Atomic uint64_t rebalances, commits, commit_failures, duplicates, dlq_produced, dlq_failures,
        replayed;
    atomic_bool dlq_acked; /* a letter was acknowledged since the last commit */
};

/* ---- ledger.c: partition registry, scrape snapshots, commit planning ---- */

void ledger_init(struct ledger *l, uint32_t required_viewers, bool claims, size_t claim_max_bytes,
                 uint64_t schema);
/* Frees the partitions, snapshots and claims; no other thread may run. */
void ledger_free(struct ledger *l);

/* The rest: caller holds registry_lock (a test driving one ledger alone
 * may skip it). */
struct partition_state *ledger_find(struct ledger *l, const char *topic, int32_t partition,
                                    bool create);
void ledger_inherit(struct ledger *l, struct partition_state *p,
                    const rd_kafka_topic_partition_t *tp);
int64_t ledger_commit_target(struct ledger *l, struct partition_state *p, bool applied_all);
struct first_sight *ledger_sighted_union(struct ledger *l, size_t *n);
bool ledger_plan_commit(struct ledger *l, struct partition_state *p, bool applied_all,
                        const struct first_sight *all, size_t n_all, struct commit_plan *plan);
rd_kafka_topic_partition_list_t *
ledger_commit_list(struct ledger *l, const rd_kafka_topic_partition_list_t *only, bool applied_all);
void ledger_commit_failed(struct ledger *l, const rd_kafka_topic_partition_list_t *list,
                          rd_kafka_resp_err_t err);
/* Below this many bytes a claim is not worth sending: no claims at all. */
#define CLAIM_MIN_BYTES 64
/* A commit's claim refused as too large (tp's error, else err): halves the
 * claim budget. Caller holds registry_lock. */
void ledger_metadata_refused(struct ledger *l, const rd_kafka_topic_partition_t *tp,
                             rd_kafka_resp_err_t err);
void ledger_commit_stored(struct ledger *l, const rd_kafka_topic_partition_list_t *list);
void ledger_commit_acked(struct ledger *l, const rd_kafka_topic_partition_list_t *offsets,
                         rd_kafka_resp_err_t err);
bool ledger_all_observed(struct ledger *l);
void ledger_snapshot_begin(struct ledger *l, uint64_t scrape_id, uint32_t viewer, bool frozen);
void ledger_snapshot_sight(struct ledger *l, const struct first_sight *fs);
void ledger_snapshot_done(struct ledger *l, uint64_t scrape_id, uint32_t viewer);

/* Commits every owned partition whose plan changed. Caller holds
 * registry_lock. */
void kafka_commit_owned(struct kafka_source *ks, const rd_kafka_topic_partition_list_t *only,
                        bool applied_all, bool async);
/* The event_source scrape hooks (scrape thread). */
void kafka_scrape_started(struct event_source *src, uint64_t scrape_id, uint32_t viewer);
void kafka_scrape_first_sight(struct event_source *src, const struct first_sight *fs);
void kafka_scrape_counters_read(struct event_source *src);
void kafka_scrape_completed(struct event_source *src, uint64_t scrape_id, uint32_t viewer);

/* ---- consumer.c ---------------------------------------------------------- */

bool kafka_freeze_appliers(struct kafka_source *ks);
void kafka_thaw_appliers(struct kafka_source *ks);

/* ---- dlq.c: the dead-letter producer ------------------------------------- */

int kafka_dlq_init(struct kafka_source *ks, char *errbuf, size_t errlen);
/* Warms up and starts the dead-letter thread (main thread). */
void kafka_dlq_drain(struct kafka_source *ks, int timeout_ms);
int kafka_dlq_start(struct kafka_source *ks, char *errbuf, size_t errlen);
void kafka_dead_letter(struct kafka_source *ks, struct partition_state *p,
                       const rd_kafka_message_t *m, enum reject_reason reason);

/* ---- conf.c: librdkafka configuration ------------------------------------ */

int kafka_set_conf(rd_kafka_conf_t *conf, const char *key, const char *value, char *errbuf,
                   size_t errlen);
rd_kafka_conf_t *kafka_base_conf(const struct exporter_config *cfg, rd_kafka_type_t type,
                                 const char *const *defaults, char *errbuf, size_t errlen);

/* ---- collector.c: self-metrics (scrape thread) ------------------------------ */

void kafka_collect(struct dynbuf *b, enum expo_format fmt, void *ctx);

#endif

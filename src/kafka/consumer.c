/*
 * consumer.c - the Kafka input: one librdkafka consumer (one group
 * member, cooperative-sticky) whose partitions are spread over N worker
 * threads, each feeding its own ingest worker, with offsets committed only
 * for what Prometheus has seen (ledger.c plans the commits, dlq.c sends
 * rejected messages on, conf.c configures the clients, collector.c serves
 * the self-metrics; docs/delivery.md has the design).
 *
 * Threads: each partition's fetch queue is forwarded to one worker's queue
 * (worker 0's is the consumer queue, so worker 0 also serves the group
 * callbacks: rebalance, commits, errors, statistics). One member per
 * process means partitions never move between this process's own threads
 * through the group, and a rebalance only happens when processes come or
 * go. The main thread creates, starts, stops and frees the source.
 *
 * Delivery: each (topic, partition) has one process-wide state whose
 * `applied` is the highest offset added to the counters; a message at or
 * below it is a redelivery and is skipped (librdkafka 2.0.2 can redeliver
 * around rebalances), so a partition moving between our threads never
 * counts twice. Scrapes and revocations stop the workers between two
 * messages through the gate below.
 * Locks (order: freeze_lock, registry_lock, a partition's dlq_lock):
 * freeze_lock serializes freezing the workers (a scrape's cut, a
 * revocation); registry_lock is taken by workers in state_for whenever a
 * message is of another partition than the worker's previous one, by
 * worker 0 for rebalances, commit results and periodic commits, and by
 * the main thread at shutdown.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <librdkafka/rdkafka.h>

#include "kafka_internal.h"
#include "log.h"

#define BATCH_MAX      1024 /* messages applied per pass through the scrape gate */
#define FREEZE_WAIT_MS 1000

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the gate ------------------------------------------------------------
 *
 * Two things must see the workers stopped between two messages:
 *  - a scrape, from its snapshot until it has read every counter: its
 *    offsets and the values it renders must be one cut, or an event
 *    applied in between would be shown yet not covered by the commit, and
 *    a crash would count it twice (the pause lasts as long as reading the
 *    counters, about 1.3 ms per 10,000 series);
 *  - a revocation, between committing what was applied and handing the
 *    partitions back: no worker may apply one more of their messages.
 * Workers pass the gate once per batch (a seq_cst store and load: the
 * Dekker pattern against the freezer's store to `frozen` and load of
 * `applying`) and check `frozen` between messages (a relaxed load).
 */

static void gate_enter(struct kafka_source *ks, struct consumer *c)
{
    for (;;) {
        atomic_store(&c->applying, true);
        if (!atomic_load(&ks->frozen))
            return;
        atomic_store_explicit(&c->applying, false, memory_order_release);
        while (atomic_load_explicit(&ks->frozen, memory_order_acquire) &&
               !atomic_load_explicit(&ks->stop, memory_order_relaxed))
            sched_yield();
    }
}

static void gate_leave(struct consumer *c)
{
    /* release: the freezer that sees false sees everything applied */
    atomic_store_explicit(&c->applying, false, memory_order_release);
}

/*
 * Stops every worker at the gate and holds freeze_lock until
 * thaw_appliers. Returns false when a worker did not stop within
 * FREEZE_WAIT_MS (blocked on a full dead-letter queue); the caller then
 * goes on without the guarantee. Any thread except a worker inside the
 * gate (the rebalance callback leaves it first).
 */
bool kafka_freeze_appliers(struct kafka_source *ks)
{
    pthread_mutex_lock(&ks->freeze_lock);
    atomic_store(&ks->frozen, true);
    int64_t deadline = now_ms() + FREEZE_WAIT_MS;
    for (int i = 0; i < ks->consumer_count; i++)
        while (atomic_load(&ks->consumers[i].applying)) {
            if (now_ms() > deadline) {
                log_warn("a worker did not pause within a second; going on without it", NULL);
                return false;
            }
            sched_yield();
        }
    return true;
}

void kafka_thaw_appliers(struct kafka_source *ks)
{
    atomic_store_explicit(&ks->frozen, false, memory_order_release);
    pthread_mutex_unlock(&ks->freeze_lock);
}

/* ---- librdkafka callbacks (consumer threads) ----------------------------- */

static void offset_commit_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                             rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
    struct kafka_source *ks = opaque;
    (void)rk;
    if (err == RD_KAFKA_RESP_ERR__NO_OFFSET)
        return;
    if (err) {
        atomic_fetch_add(&ks->commit_failures, 1);
        log_warn("offset commit failed", "error", rd_kafka_err2str(err), NULL);
    } else {
        atomic_fetch_add(&ks->commits, 1);
    }
    pthread_mutex_lock(&ks->ledger.registry_lock);
    ledger_commit_acked(&ks->ledger, offsets, err);
    pthread_mutex_unlock(&ks->ledger.registry_lock);
}

/* The worker with the fewest partitions. Caller holds registry_lock. */
static int pick_worker(struct kafka_source *ks)
{
    int best = 0;
    for (int i = 1; i < ks->consumer_count; i++)
        if (ks->consumers[i].partitions < ks->consumers[best].partitions)
            best = i;
    return best;
}

/* Routes a partition's messages to worker w's queue; before the partition
 * is assigned, so its first message already goes there (librdkafka keeps
 * an application's forwarding when it starts fetching). */
static void route_partition(struct kafka_source *ks, const char *topic, int32_t partition, int w)
{
    rd_kafka_queue_t *q = rd_kafka_queue_get_partition(ks->rk, topic, partition);
    if (!q) {
        log_error("no queue for partition", "topic", topic, NULL);
        return;
    }
    rd_kafka_queue_forward(q, ks->consumers[w].queue);
    rd_kafka_queue_destroy(q);
}

/* Assign: read the committed offsets with their metadata (the previous
 * owner's claim decides how the first messages count), route each
 * partition to a worker, then assign. Revoke: stop every worker, commit,
 * hand back, let them go on. Runs on worker 0 (the consumer queue's
 * poller), outside the gate. */
static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    struct kafka_source *ks = opaque;
    struct consumer *self = &ks->consumers[0];
    bool cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    bool assign = err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS;
    /* Called from a poll inside an applying batch: a scrape must not wait
     * for the round trips below, and the revocation freezes the workers. */
    bool was_applying = atomic_load_explicit(&self->applying, memory_order_relaxed);
    if (was_applying)
        gate_leave(self);
    atomic_fetch_add(&ks->rebalances, 1);

    rd_kafka_topic_partition_list_t *committed = NULL;
    if (assign) {
        committed = rd_kafka_topic_partition_list_copy(parts);
        rd_kafka_resp_err_t cerr = rd_kafka_committed(rk, committed, 10000);
        if (cerr) {
            log_warn("cannot read committed offsets; a previous owner's claim is ignored", "error",
                     rd_kafka_err2str(cerr), NULL);
            rd_kafka_topic_partition_list_destroy(committed);
            committed = NULL;
        }
        pthread_mutex_lock(&ks->ledger.registry_lock);
        for (int i = 0; i < parts->cnt; i++) {
            const char *topic = parts->elems[i].topic;
            int32_t partition = parts->elems[i].partition;
            struct partition_state *p = ledger_find(&ks->ledger, topic, partition, true);
            if (!p)
                continue;
            ledger_inherit(
                &ks->ledger, p,
                committed ? rd_kafka_topic_partition_list_find(committed, topic, partition) : NULL);
            p->worker = pick_worker(ks);
            ks->consumers[p->worker].partitions++;
            route_partition(ks, topic, partition, p->worker);
            atomic_store(&p->assigned, true);
        }
        atomic_fetch_add(&ks->assigned, parts->cnt);
        pthread_mutex_unlock(&ks->ledger.registry_lock);
        if (committed)
            rd_kafka_topic_partition_list_destroy(committed);
    }

    if (!assign) {
        kafka_freeze_appliers(ks); /* on a timeout: a worker stuck on a dead letter, go on */
        pthread_mutex_lock(&ks->ledger.registry_lock);
        /*
         * Revoked while we keep running: commit everything applied, since
         * this process keeps serving those counters and a new owner must
         * not add them again. At shutdown only what scrapes observed is
         * committed (the rest dies with the process and must be re-read).
         */
        bool applied_all =
            !atomic_load(&ks->shutting_down) || ks->cfg->kafka_commit_mode == COMMIT_MODE_PERIODIC;
        if (!rd_kafka_assignment_lost(rk))
            kafka_commit_owned(ks, parts, applied_all, false);
        for (int i = 0; i < parts->cnt; i++) {
            struct partition_state *p =
                ledger_find(&ks->ledger, parts->elems[i].topic, parts->elems[i].partition, false);
            if (!p || p->worker < 0)
                continue;
            atomic_store(&p->assigned, false);
            ks->consumers[p->worker].partitions--;
            p->worker = -1;
        }
        atomic_fetch_sub(&ks->assigned, parts->cnt);
        pthread_mutex_unlock(&ks->ledger.registry_lock);
    }

    if (cooperative) {
        rd_kafka_error_t *error = assign ? rd_kafka_incremental_assign(rk, parts)
                                         : rd_kafka_incremental_unassign(rk, parts);
        if (error) {
            log_error("partition assignment failed", "error", rd_kafka_error_string(error), NULL);
            rd_kafka_error_destroy(error);
        }
    } else {
        rd_kafka_resp_err_t aerr = rd_kafka_assign(rk, assign ? parts : NULL);
        if (aerr)
            log_error("partition assignment failed", "error", rd_kafka_err2str(aerr), NULL);
    }
    if (!assign)
        kafka_thaw_appliers(ks);
    char n[16];
    snprintf(n, sizeof(n), "%d", parts->cnt);
    log_info(assign ? "partitions assigned" : "partitions revoked", "count", n, NULL);
    if (was_applying)
        gate_enter(ks, self);
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    struct kafka_source *ks = opaque;
    (void)rk;
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
        atomic_store(&ks->broker_up, false);
    log_warn("kafka", "error", rd_kafka_err2name((rd_kafka_resp_err_t)err), "detail", reason, NULL);
}

/* Broker state from librdkafka's statistics JSON: up when any real broker
 * (nodeid >= 0) is in state UP. */
static int stats_cb(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
    struct kafka_source *ks = opaque;
    (void)rk;
    cJSON *root = cJSON_ParseWithLength(json, len);
    bool up = false;
    const cJSON *brokers = cJSON_GetObjectItemCaseSensitive(root, "brokers");
    for (const cJSON *b = brokers ? brokers->child : NULL; b; b = b->next) {
        const cJSON *state = cJSON_GetObjectItemCaseSensitive(b, "state");
        const cJSON *nodeid = cJSON_GetObjectItemCaseSensitive(b, "nodeid");
        if (cJSON_IsString(state) && strcmp(state->valuestring, "UP") == 0 &&
            cJSON_IsNumber(nodeid) && nodeid->valuedouble >= 0)
            up = true;
    }
    cJSON_Delete(root);
    atomic_store(&ks->broker_up, up);
    return 0; /* librdkafka frees json */
}

/* ---- consumer threads -------------------------------------------------- */

static struct partition_state *state_for(struct consumer *c, const rd_kafka_message_t *m)
{
    if (c->cache_state && c->cache_rkt == m->rkt && c->cache_partition == m->partition)
        return c->cache_state;
    struct kafka_source *ks = c->source;
    pthread_mutex_lock(&ks->ledger.registry_lock);
    struct partition_state *p =
        ledger_find(&ks->ledger, rd_kafka_topic_name(m->rkt), m->partition, true);
    pthread_mutex_unlock(&ks->ledger.registry_lock);
    c->cache_rkt = m->rkt;
    c->cache_partition = m->partition;
    c->cache_state = p;
    return p;
}

static bool claim_holds(const void *ctx, enum metric_family family, uint64_t hash)
{
    return claim_segment_holds(ctx, (unsigned)family, hash);
}

static void handle_message(struct consumer *c, rd_kafka_message_t *m)
{
    struct kafka_source *ks = c->source;
    if (m->err) {
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            log_warn("consume error", "error", rd_kafka_message_errstr(m), NULL);
        return;
    }
    /* a load first: this line is shared by the workers */
    if (!atomic_load_explicit(&ks->broker_up, memory_order_relaxed))
        atomic_store_explicit(&ks->broker_up, true, memory_order_relaxed);
    struct partition_state *p = state_for(c, m);
    /* A message of a partition revoked while this worker held it: the
     * revocation committed without it, so the next owner counts it. */
    if (!p || !atomic_load_explicit(&p->assigned, memory_order_relaxed))
        return;
    if (m->offset <= atomic_load_explicit(&p->applied, memory_order_relaxed)) {
        atomic_fetch_add_explicit(&ks->duplicates, 1, memory_order_relaxed);
        return;
    }
    /* Series this event creates remember it, so a scrape that first shows
     * them knows which offsets it did not make visible yet. */
    counter_table_set_origin(p->index + 1, m->offset);
    const char *payload = m->payload ? m->payload : "";
    size_t len = m->payload ? m->len : 0;
    if (m->offset < p->inherited.upto) {
        /* Counted by the previous owner, and seen by scrapes except in its
         * held series: add it to those only, and re-send its dead letter
         * only if that was never acknowledged. */
        struct series_filter held = {claim_holds, commit_claim_segment(&p->inherited, m->offset)};
        enum reject_reason reason = ingest_replay(c->worker, payload, len, &held);
        if (reason != REJECT_NONE && ks->dlq && commit_claim_dead_letter(&p->inherited, m->offset))
            kafka_dead_letter(ks, p, m, reason);
        atomic_fetch_add_explicit(&ks->replayed, 1, memory_order_relaxed);
        atomic_store_explicit(&p->applied, m->offset, memory_order_release);
        return;
    }
    enum reject_reason reason = ingest_process(c->worker, payload, len);
    if (reason != REJECT_NONE && ks->dlq)
        kafka_dead_letter(ks, p, m, reason);
    /* release: a scrape that reads this offset (acquire) then sees the
     * counter increments and the pending dead letter made above. */
    atomic_store_explicit(&p->applied, m->offset, memory_order_release);
}

/* Worker 0 polls the consumer queue, which also serves the group's
 * callbacks; the others their own queues. */
static rd_kafka_message_t *next_message(struct consumer *c, int timeout_ms)
{
    return c->index == 0 ? rd_kafka_consumer_poll(c->source->rk, timeout_ms)
                         : rd_kafka_consume_queue(c->queue, timeout_ms);
}

static void *consumer_main(void *arg)
{
    struct consumer *c = arg;
    struct kafka_source *ks = c->source;
    int64_t next_periodic = now_ms() + ks->cfg->kafka_commit_interval_ms;
    while (!atomic_load_explicit(&ks->stop, memory_order_relaxed)) {
        /* Without waiting first: a poll with a timeout reads the clock
         * several times per message in librdkafka 2.0.2 (about a tenth of
         * the CPU while draining). */
        rd_kafka_message_t *m = next_message(c, 0);
        if (!m)
            m = next_message(c, POLL_MS);
        if (m) {
            /* A batch through the gate; a freezing scrape waits at most
             * one message. */
            int n = 0;
            gate_enter(ks, c);
            do {
                handle_message(c, m);
                rd_kafka_message_destroy(m);
            } while (!atomic_load_explicit(&ks->frozen, memory_order_relaxed) && ++n < BATCH_MAX &&
                     (m = next_message(c, 0)) != NULL);
            gate_leave(c);
        }
        if (c->index == 0 && ks->cfg->kafka_commit_mode == COMMIT_MODE_PERIODIC &&
            now_ms() >= next_periodic) {
            pthread_mutex_lock(&ks->ledger.registry_lock);
            kafka_commit_owned(ks, NULL, true, true);
            pthread_mutex_unlock(&ks->ledger.registry_lock);
            next_periodic = now_ms() + ks->cfg->kafka_commit_interval_ms;
        }
    }
    return NULL;
}

/* ---- lifecycle (main thread) ------------------------------------------- */

/* The one group member. Subscribed by subscribe() once the workers'
 * queues exist. */
static int member_init(struct kafka_source *ks, char *errbuf, size_t errlen)
{
    const struct exporter_config *cfg = ks->cfg;
    /* librdkafka before 2.2 stops fetching for a fixed second whenever the
     * consumer queue holds queued.min.messages: at the default 100,000 a
     * consumer that drains a backlog at over a million events/s idles most
     * of each second. A deeper queue (bounded in bytes) keeps it fed. */
    static const char *const defaults[] = {"auto.offset.reset",
                                           "earliest",
                                           "statistics.interval.ms",
                                           "1000",
                                           "queued.min.messages",
                                           "2000000",
                                           "queued.max.messages.kbytes",
                                           "524288",
                                           NULL};
    rd_kafka_conf_t *conf = kafka_base_conf(cfg, RD_KAFKA_CONSUMER, defaults, errbuf, errlen);
    if (!conf)
        return -EINVAL;
    /* Ours, applied after the user's properties: the delivery guarantees
     * depend on them. */
    if (kafka_set_conf(conf, "group.id", cfg->kafka_group_id, errbuf, errlen) ||
        kafka_set_conf(conf, "client.id", "ai-finops-exporter", errbuf, errlen) ||
        kafka_set_conf(conf, "enable.auto.commit", "false", errbuf, errlen) ||
        kafka_set_conf(conf, "enable.auto.offset.store", "false", errbuf, errlen) ||
        kafka_set_conf(conf, "partition.assignment.strategy", "cooperative-sticky", errbuf,
                       errlen)) {
        rd_kafka_conf_destroy(conf);
        return -EINVAL;
    }
    rd_kafka_conf_set_opaque(conf, ks);
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_conf_set_offset_commit_cb(conf, offset_commit_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    rd_kafka_conf_set_stats_cb(conf, stats_cb);
    char err[512];
    ks->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    if (!ks->rk) {
        snprintf(errbuf, errlen, "cannot create Kafka consumer: %s", err);
        return -EINVAL; /* rd_kafka_new destroyed conf */
    }
    rd_kafka_poll_set_consumer(ks->rk);
    return 0;
}

static int worker_init(struct kafka_source *ks, struct consumer *c)
{
    c->queue = c->index == 0 ? rd_kafka_queue_get_consumer(ks->rk) : rd_kafka_queue_new(ks->rk);
    c->worker = ingest_worker_new(ks->ingest);
    return c->queue && c->worker ? 0 : -ENOMEM;
}

static int subscribe(struct kafka_source *ks, char *errbuf, size_t errlen)
{
    const struct exporter_config *cfg = ks->cfg;
    rd_kafka_topic_partition_list_t *topics =
        rd_kafka_topic_partition_list_new((int)cfg->kafka_topics.count);
    for (size_t i = 0; i < cfg->kafka_topics.count; i++)
        rd_kafka_topic_partition_list_add(topics, cfg->kafka_topics.items[i],
                                          RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t serr = rd_kafka_subscribe(ks->rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (serr) {
        snprintf(errbuf, errlen, "cannot subscribe: %s", rd_kafka_err2str(serr));
        return -EINVAL;
    }
    return 0;
}

static int ks_start(struct event_source *src, char *errbuf, size_t errlen)
{
    struct kafka_source *ks = (struct kafka_source *)src;
    if (ks->dlq) {
        int rc = kafka_dlq_start(ks, errbuf, errlen);
        if (rc)
            return rc;
    }
    for (int i = 0; i < ks->consumer_count; i++) {
        int rc = pthread_create(&ks->consumers[i].thread, NULL, consumer_main, &ks->consumers[i]);
        if (rc) {
            snprintf(errbuf, errlen, "cannot start consumer thread: %s", strerror(rc));
            return -rc;
        }
        ks->consumers[i].started = true;
    }
    return 0;
}

static void ks_stop(struct event_source *src)
{
    struct kafka_source *ks = (struct kafka_source *)src;
    if (atomic_exchange(&ks->shutting_down, true))
        return;
    /* 1. Stop consuming; nothing new is applied from here on. */
    atomic_store(&ks->stop, true);
    for (int i = 0; i < ks->consumer_count; i++)
        if (ks->consumers[i].started) {
            pthread_join(ks->consumers[i].thread, NULL);
            ks->consumers[i].started = false;
        }
    /* 2. Keep serving scrapes until Prometheus has seen everything applied
     * (or the wait runs out), while dead letters drain. */
    if (ks->dlq) {
        if (ks->dlq_thread_started) {
            pthread_join(ks->dlq_thread, NULL);
            ks->dlq_thread_started = false;
        }
    }
    int64_t deadline = now_ms() + ks->cfg->kafka_shutdown_scrape_wait_ms;
    bool done = ks->cfg->kafka_commit_mode == COMMIT_MODE_PERIODIC;
    while (!done && now_ms() < deadline) {
        if (ks->dlq)
            rd_kafka_poll(ks->dlq, 0);
        pthread_mutex_lock(&ks->ledger.registry_lock);
        done = ledger_all_observed(&ks->ledger);
        pthread_mutex_unlock(&ks->ledger.registry_lock);
        if (!done)
            usleep(50 * 1000);
    }
    if (!done)
        log_warn("shutdown: not every applied event was scraped in time; the rest will be "
                 "re-read by the next owner",
                 NULL);
    if (ks->dlq)
        kafka_dlq_drain(ks, 5000);
    /* 3. Commit what was observed (everything applied, in periodic mode),
     * then leave the group; the revoke callback commits the same. */
    pthread_mutex_lock(&ks->ledger.registry_lock);
    kafka_commit_owned(ks, NULL, ks->cfg->kafka_commit_mode == COMMIT_MODE_PERIODIC, false);
    pthread_mutex_unlock(&ks->ledger.registry_lock);
    if (ks->rk)
        rd_kafka_consumer_close(ks->rk);
    log_info("kafka consumer closed", NULL);
}

static bool ks_ready(struct event_source *src)
{
    struct kafka_source *ks = (struct kafka_source *)src;
    if (atomic_load(&ks->shutting_down))
        return false;
    return atomic_load(&ks->broker_up) && atomic_load(&ks->assigned) > 0;
}

static void ks_free_memory(struct kafka_source *ks)
{
    ledger_free(&ks->ledger);
    free(ks->consumers);
    pthread_mutex_destroy(&ks->freeze_lock);
    free(ks);
}

/* Destroys the librdkafka handles and workers, then frees everything. */
static void ks_release(struct kafka_source *ks)
{
    for (int i = 0; ks->consumers && i < ks->consumer_count; i++) {
        if (ks->consumers[i].queue)
            rd_kafka_queue_destroy(ks->consumers[i].queue);
        ingest_worker_free(ks->consumers[i].worker);
    }
    if (ks->rk)
        rd_kafka_destroy(ks->rk);
    if (ks->dlq)
        rd_kafka_destroy(ks->dlq);
    ks_free_memory(ks);
}

/* Call after the HTTP server stopped: the collector reads this state. */
static void ks_destroy(struct event_source *src)
{
    struct kafka_source *ks = (struct kafka_source *)src;
    if (!ks)
        return;
    ks_stop(src);
    pthread_mutex_lock(&ks->ledger.registry_lock);
    for (size_t i = 0; i < ks->ledger.part_count; i++)
        ks->ledger.parts[i]->worker = -1; /* the collector must not touch the closed handle */
    pthread_mutex_unlock(&ks->ledger.registry_lock);
    ks_release(ks);
}

static const struct event_source_ops kafka_source_ops = {
    .name = "kafka",
    .start = ks_start,
    .stop = ks_stop,
    .ready = ks_ready,
    .destroy = ks_destroy,
    .scrape_started = kafka_scrape_started,
    .scrape_first_sight = kafka_scrape_first_sight,
    .scrape_counters_read = kafka_scrape_counters_read,
    .scrape_completed = kafka_scrape_completed,
};

struct event_source *kafka_source_new(const struct exporter_config *cfg, struct ingest *ingest,
                                      struct metrics *metrics, char *errbuf, size_t errlen)
{
    struct kafka_source *ks = calloc(1, sizeof(*ks));
    if (!ks) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    ks->base.ops = &kafka_source_ops;
    ks->cfg = cfg;
    ks->ingest = ingest;
    ks->gated = cfg->kafka_commit_mode == COMMIT_MODE_SCRAPE;
    pthread_mutex_init(&ks->freeze_lock, NULL);
    size_t replicas = cfg->kafka_commit_replicas.count;
    ledger_init(&ks->ledger, replicas ? (replicas >= 31 ? 0x7fffffffu : (1u << replicas) - 1) : 1u,
                cfg->kafka_commit_mode == COMMIT_MODE_SCRAPE,
                (size_t)cfg->kafka_commit_metadata_max_bytes, metrics_schema_hash(metrics));
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    ks->consumer_count =
        cfg->kafka_threads > 0 ? (int)cfg->kafka_threads : (int)(cores > 0 ? cores : 1);
    ks->consumers = calloc((size_t)ks->consumer_count, sizeof(*ks->consumers));
    if (!ks->consumers) {
        snprintf(errbuf, errlen, "out of memory");
        goto fail;
    }
    if (cfg->kafka_dlq_topic && cfg->kafka_dlq_topic[0] && kafka_dlq_init(ks, errbuf, errlen))
        goto fail;
    if (member_init(ks, errbuf, errlen))
        goto fail;
    for (int i = 0; i < ks->consumer_count; i++) {
        ks->consumers[i].source = ks;
        ks->consumers[i].index = i;
        if (worker_init(ks, &ks->consumers[i])) {
            snprintf(errbuf, errlen, "out of memory");
            goto fail;
        }
    }
    if (subscribe(ks, errbuf, errlen))
        goto fail;
    if (metrics_add_collector(metrics, kafka_collect, ks)) {
        snprintf(errbuf, errlen, "too many metric collectors");
        goto fail;
    }
    return &ks->base;
fail:
    ks_release(ks);
    return NULL;
}

/*
 * consumer.c - the Kafka input: one librdkafka consumer (one group
 * member, cooperative-sticky) whose partitions are spread over N worker
 * threads, each feeding its own ingest worker. Each partition's events
 * count in its own shard of series, and what readers see is only what a
 * durable checkpoint holds (checkpoint.c writes checkpoints and restores
 * them, dlq.c keeps rejected messages for them, conf.c configures the
 * clients, collector.c serves the self-metrics; docs/delivery.md has the
 * design).
 *
 * Threads: each partition's fetch queue is forwarded to one worker's queue
 * (worker 0's is the consumer queue, so worker 0 also serves the group
 * callbacks: rebalance, errors, statistics). One member per process means
 * partitions never move between this process's own threads through the
 * group. The main thread creates, starts, stops and frees the source.
 *
 * Delivery: each (topic, partition) has one process-wide state whose
 * `applied` is the highest offset added to the counters; a message at or
 * below it is a redelivery and is skipped (librdkafka 2.0.2 can redeliver
 * around rebalances). A checkpoint stops the workers between two messages
 * through the gate below, so the offsets and values it notes are one cut.
 * Locks: see kafka_internal.h.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cgroup.h"
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <librdkafka/rdkafka.h>

#include "kafka_internal.h"
#include "log.h"

#define BATCH_MAX 1024 /* messages applied per pass through the gate */

/* ---- the gate ------------------------------------------------------------
 *
 * A checkpoint must see the workers stopped between two messages while it
 * notes each partition's applied offset and reads the counters: they must
 * be one cut, or an event applied in between would be in the values but
 * not below the offset (counted twice after a restore) or the reverse
 * (lost). The pause lasts as long as reading the counters.
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

bool kafka_freeze_appliers(struct kafka_source *ks)
{
    pthread_mutex_lock(&ks->freeze_lock);
    atomic_store(&ks->frozen, true);
    for (int i = 0; i < ks->consumer_count; i++)
        while (atomic_load(&ks->consumers[i].applying)) {
            if (atomic_load(&ks->stop)) {
                kafka_thaw_appliers(ks);
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

struct partition_state *kafka_partition(struct kafka_source *ks, const char *topic,
                                        int32_t partition, bool create)
{
    for (size_t i = 0; i < ks->part_count; i++) {
        struct partition_state *p = ks->parts[i];
        if (p->partition == partition && strcmp(p->topic, topic) == 0)
            return p;
    }
    if (!create)
        return NULL;
    if (ks->part_count == ks->part_cap) {
        size_t cap = ks->part_cap ? ks->part_cap * 2 : 16;
        struct partition_state **grown = realloc(ks->parts, cap * sizeof(*grown));
        if (!grown)
            return NULL;
        ks->parts = grown;
        ks->part_cap = cap;
    }
    struct partition_state *p = calloc(1, sizeof(*p));
    if (!p || !(p->topic = strdup(topic))) {
        free(p);
        return NULL;
    }
    p->partition = partition;
    p->shard_len = state_shard_name(p->shard, topic, partition);
    /* by exact topic name, also for a pattern-subscribed topic (else cost) */
    p->input = ks->ingest ? ingest_input_for_topic(ks->ingest, topic) : NULL;
    atomic_init(&p->applied, -1);
    atomic_init(&p->checkpointed, -1);
    p->worker = -1;
    pthread_mutex_init(&p->dlq_lock, NULL);
    ks->parts[ks->part_count++] = p;
    return p;
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

/* Assign: restore the partitions' series and positions from their last
 * checkpoint, route each to a worker, then assign from the restored
 * positions. Revoke (or lost): hide their series at once, since another
 * process serves them from now on; nothing needs committing, what was not
 * checkpointed is read again by the next owner. Runs on worker 0 (the
 * consumer queue's poller) outside the gate, or on the main thread at
 * close. */
static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    struct kafka_source *ks = opaque;
    struct consumer *self = &ks->consumers[0];
    bool cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    bool assign = err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS;
    /* Called from a poll inside an applying batch: a checkpoint must not
     * wait for the round trips below. */
    bool was_applying = atomic_load_explicit(&self->applying, memory_order_relaxed);
    if (was_applying)
        gate_leave(self);
    atomic_fetch_add(&ks->rebalances, 1);

    if (assign) {
        if (!kafka_restore(ks, parts)) {
            /* stopping: assign nothing, the next owner restores */
            if (was_applying)
                gate_enter(ks, self);
            return;
        }
        pthread_mutex_lock(&ks->registry_lock);
        for (int i = 0; i < parts->cnt; i++) {
            struct partition_state *p =
                kafka_partition(ks, parts->elems[i].topic, parts->elems[i].partition, true);
            if (!p)
                continue;
            p->worker = pick_worker(ks);
            ks->consumers[p->worker].partitions++;
            route_partition(ks, p->topic, p->partition, p->worker);
            atomic_store(&p->assigned, true);
        }
        atomic_fetch_add(&ks->assigned, parts->cnt);
        pthread_mutex_unlock(&ks->registry_lock);
    } else {
        /* No checkpoint may be half-way while the series disappear. */
        pthread_mutex_lock(&ks->ckpt_lock);
        pthread_mutex_lock(&ks->registry_lock);
        for (int i = 0; i < parts->cnt; i++) {
            struct partition_state *p =
                kafka_partition(ks, parts->elems[i].topic, parts->elems[i].partition, false);
            if (!p || p->worker < 0)
                continue;
            atomic_store(&p->assigned, false);
            ks->consumers[p->worker].partitions--;
            p->worker = -1;
            /* Its letters not yet checkpointed go too: the next owner
             * re-reads their events from the last checkpoint. */
            struct dead_letters dropped = {0};
            kafka_dead_letters_take(p, &dropped);
            kafka_dead_letters_clear(&dropped);
        }
        atomic_fetch_sub(&ks->assigned, parts->cnt);
        pthread_mutex_unlock(&ks->registry_lock);
        kafka_hide_revoked(ks, parts);
        pthread_mutex_unlock(&ks->ckpt_lock);
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
    pthread_mutex_lock(&ks->registry_lock);
    struct partition_state *p =
        kafka_partition(ks, rd_kafka_topic_name(m->rkt), m->partition, true);
    pthread_mutex_unlock(&ks->registry_lock);
    c->cache_rkt = m->rkt;
    c->cache_partition = m->partition;
    c->cache_state = p;
    return p;
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
    if (c->shard_state != p) {
        c->shard_state = p;
        ingest_worker_set_shard(c->worker, p->shard, p->shard_len);
    }
    ingest_worker_set_input(c->worker, p->input); /* a pointer store */
    /* Too many dead letters waiting for a checkpoint: wait for it outside
     * the gate (before this message changes anything). */
    if (atomic_load_explicit(&p->letter_bytes, memory_order_relaxed) > ks->dlq_max_bytes) {
        gate_leave(c);
        kafka_dead_letters_wait(ks, p);
        gate_enter(ks, c);
    }
    const char *payload = m->payload ? m->payload : "";
    size_t len = m->payload ? m->len : 0;
    enum reject_reason reason = ingest_process(c->worker, payload, len);
    if (reason != REJECT_NONE && ks->cfg->kafka_dlq_topic[0])
        kafka_dead_letter(ks, p, m, reason);
    /* release: the checkpointer that reads this offset (acquire) then sees
     * the counter increments and the dead letter made above. */
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
            } while (!atomic_load_explicit(&ks->frozen, memory_order_relaxed) &&
                     !atomic_load_explicit(&ks->stop, memory_order_relaxed) && ++n < BATCH_MAX &&
                     (m = next_message(c, 0)) != NULL);
            gate_leave(c);
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
                                           "65536",
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
    int rc = kafka_checkpoint_start(ks, errbuf, errlen);
    if (rc)
        return rc;
    for (int i = 0; i < ks->consumer_count; i++) {
        rc = pthread_create(&ks->consumers[i].thread, NULL, consumer_main, &ks->consumers[i]);
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
    /* 2. Checkpoint everything applied (bounded), so the next owner starts
     * where this process stopped; what it misses is read again, never
     * counted twice. */
    kafka_checkpoint_stop(ks, (int)ks->cfg->kafka_shutdown_timeout_ms);
    /* 3. Leave the group (the revoke callback hides the series). */
    if (ks->rk)
        rd_kafka_consumer_close(ks->rk);
    log_info("kafka consumer closed", NULL);
}

static bool ks_ready(struct event_source *src)
{
    struct kafka_source *ks = (struct kafka_source *)src;
    if (atomic_load(&ks->shutting_down))
        return false;
    return atomic_load(&ks->broker_up) && atomic_load(&ks->assigned) > 0 &&
           atomic_load(&ks->txn_ready);
}

static void ks_free_memory(struct kafka_source *ks)
{
    for (size_t i = 0; i < ks->part_count; i++) {
        struct partition_state *p = ks->parts[i];
        kafka_dead_letters_clear(&p->letters);
        pthread_mutex_destroy(&p->dlq_lock);
        free(p->topic);
        free(p);
    }
    free(ks->parts);
    free(ks->consumers);
    pthread_mutex_destroy(&ks->freeze_lock);
    pthread_mutex_destroy(&ks->registry_lock);
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
    kafka_checkpoint_free(ks);
    ks_free_memory(ks);
}

/* Call after the HTTP server stopped: the collector reads this state. */
static void ks_destroy(struct event_source *src)
{
    struct kafka_source *ks = (struct kafka_source *)src;
    if (!ks)
        return;
    ks_stop(src);
    pthread_mutex_lock(&ks->registry_lock);
    for (size_t i = 0; i < ks->part_count; i++)
        ks->parts[i]->worker = -1; /* the collector must not touch the closed handle */
    pthread_mutex_unlock(&ks->registry_lock);
    ks_release(ks);
}

static const struct event_source_ops kafka_source_ops = {
    .name = "kafka",
    .start = ks_start,
    .stop = ks_stop,
    .ready = ks_ready,
    .destroy = ks_destroy,
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
    ks->metrics = metrics;
    pthread_mutex_init(&ks->freeze_lock, NULL);
    pthread_mutex_init(&ks->registry_lock, NULL);
    pthread_mutex_init(&ks->ckpt_lock, NULL);
    pthread_mutex_init(&ks->ckpt_wake_lock, NULL);
    pthread_cond_init(&ks->ckpt_wake, NULL);
    ks->consumer_count =
        cfg->kafka_threads > 0 ? (int)cfg->kafka_threads : cgroup_default_threads(256);
    ks->consumers = calloc((size_t)ks->consumer_count, sizeof(*ks->consumers));
    if (!ks->consumers) {
        snprintf(errbuf, errlen, "out of memory");
        goto fail;
    }
    if (member_init(ks, errbuf, errlen))
        goto fail;
    if (kafka_checkpoint_init(ks, errbuf, errlen))
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

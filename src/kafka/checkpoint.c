/*
 * checkpoint.c - what makes the served counters exact whatever happens
 * (docs/delivery.md): checkpoints and restores.
 *
 * A checkpoint stops the workers between two messages, notes each owned
 * partition's applied offset and every series whose live value changed
 * since its last checkpoint (encoding their records), takes the dead
 * letters, and lets the workers go on. Then, in one Kafka transaction, it
 * writes the series records and a position record per partition to the
 * compacted state topic, the dead letters to the dead-letter topic and the
 * group offsets; only once that transaction is committed are the noted
 * values published to readers. A reader therefore never sees more than a
 * durable checkpoint holds, and a process assigned a partition restores
 * exactly that (kafka_restore), so what is served for a shard only ever
 * grows, whoever serves it.
 *
 * Threads: the checkpoint thread (checkpoint_main) writes checkpoints;
 * worker 0 runs kafka_restore and kafka_hide_revoked from the rebalance
 * callback (the main thread at close); the main thread writes the last
 * checkpoint at shutdown. Locks: ckpt_lock for a whole checkpoint, for a
 * restore's apply step and for hiding revoked series, so series are
 * touched by one of them at a time; then freeze_lock (the snapshot), then
 * registry_lock.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "counter_table.h"
#include "kafka_internal.h"
#include "log.h"

#define STATE_TOPIC_PARTITIONS 10
/* Fenced this many times in a row with no checkpoint between: another
 * process really has our transactional id. */
#define FENCED_STREAK_MAX 5
#define TXN_OP_TIMEOUT_MS 5000 /* per checkpoint: bounds a stuck one (and SIGTERM behind it) */
#define KEY_MAX           (8 + SHARD_MAX + 2 + STATE_LABELS_MAX * (2 + 1024))

int64_t kafka_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- setup ---------------------------------------------------------------- */

static rd_kafka_t *restore_reader(struct kafka_source *ks, const char *isolation, char *errbuf,
                                  size_t errlen)
{
    static const char *const defaults[] = {"fetch.wait.max.ms", "50", NULL};
    rd_kafka_conf_t *conf = kafka_base_conf(ks->cfg, RD_KAFKA_CONSUMER, defaults, errbuf, errlen);
    if (!conf)
        return NULL;
    char gid[300];
    snprintf(gid, sizeof(gid), "%s-restore", ks->transactional_id);
    if (kafka_set_conf(conf, "group.id", gid, errbuf, errlen) ||
        kafka_set_conf(conf, "client.id", "ai-finops-exporter-restore", errbuf, errlen) ||
        kafka_set_conf(conf, "enable.auto.commit", "false", errbuf, errlen) ||
        kafka_set_conf(conf, "enable.partition.eof", "true", errbuf, errlen) ||
        kafka_set_conf(conf, "auto.offset.reset", "earliest", errbuf, errlen) ||
        kafka_set_conf(conf, "isolation.level", isolation, errbuf, errlen)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    char err[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    if (!rk)
        snprintf(errbuf, errlen, "cannot create the state reader: %s", err);
    return rk;
}

/* The transactional producer (kafka.transactional_id). */
static rd_kafka_t *txn_producer_new(struct kafka_source *ks, char *errbuf, size_t errlen)
{
    static const char *const defaults[] = {"linger.ms", "5", "queue.buffering.max.messages",
                                           "1000000", NULL};
    rd_kafka_conf_t *conf = kafka_base_conf(ks->cfg, RD_KAFKA_PRODUCER, defaults, errbuf, errlen);
    if (!conf)
        return NULL;
    char timeout[24];
    snprintf(timeout, sizeof(timeout), "%" PRId64, ks->cfg->kafka_transaction_timeout_ms);
    if (kafka_set_conf(conf, "transactional.id", ks->transactional_id, errbuf, errlen) ||
        kafka_set_conf(conf, "transaction.timeout.ms", timeout, errbuf, errlen) ||
        kafka_set_conf(conf, "message.timeout.ms", timeout, errbuf, errlen) ||
        kafka_set_conf(conf, "client.id", "ai-finops-exporter-checkpoint", errbuf, errlen)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    char err[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!rk)
        snprintf(errbuf, errlen, "cannot create the checkpoint producer: %s", err);
    return rk;
}

int kafka_checkpoint_init(struct kafka_source *ks, char *errbuf, size_t errlen)
{
    const struct exporter_config *cfg = ks->cfg;
    if (cfg->kafka_transactional_id) {
        snprintf(ks->transactional_id, sizeof(ks->transactional_id), "%s",
                 cfg->kafka_transactional_id);
    } else {
        char host[200] = "";
        if (gethostname(host, sizeof(host) - 1) != 0 || !host[0])
            snprintf(host, sizeof(host), "%s", "unknown");
        snprintf(ks->transactional_id, sizeof(ks->transactional_id), "ai-finops-exporter-%s", host);
    }
    ks->dlq_max_bytes = 64u << 20;
    ks->txn = txn_producer_new(ks, errbuf, errlen);
    if (!ks->txn)
        return -EINVAL;
    ks->restore_committed = restore_reader(ks, "read_committed", errbuf, errlen);
    if (!ks->restore_committed)
        return -EINVAL;
    ks->restore_uncommitted = restore_reader(ks, "read_uncommitted", errbuf, errlen);
    return ks->restore_uncommitted ? 0 : -EINVAL;
}

/* The state topic's partition count, creating the topic (compacted) when
 * it does not exist. Blocks until known or the source stops; false then. */
static bool state_topic_ready(struct kafka_source *ks)
{
    if (atomic_load(&ks->state_partitions) > 0)
        return true;
    const char *topic = ks->cfg->kafka_state_topic;
    bool created = false;
    for (int attempt = 0; !atomic_load(&ks->stop); attempt++) {
        /* the state reader's handle: the producer may be replaced */
        rd_kafka_t *rk = ks->restore_uncommitted;
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, 5000);
        rd_kafka_topic_destroy(rkt);
        int n = 0;
        rd_kafka_resp_err_t terr = RD_KAFKA_RESP_ERR_NO_ERROR;
        if (!err && md->topic_cnt == 1) {
            terr = md->topics[0].err;
            n = md->topics[0].partition_cnt;
        }
        if (md)
            rd_kafka_metadata_destroy(md);
        if (!err && !terr && n > 0) {
            if (atomic_exchange(&ks->state_partitions, n) == n)
                return true; /* the other thread found it first */
            char np[16];
            snprintf(np, sizeof(np), "%d", n);
            log_info("state topic ready", "topic", topic, "partitions", np, NULL);
            return true;
        }
        if (!err && terr == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART && !created) {
            /* Compacted: each series and position keeps its latest record. */
            char ebuf[256];
            rd_kafka_NewTopic_t *nt =
                rd_kafka_NewTopic_new(topic, STATE_TOPIC_PARTITIONS, -1, ebuf, sizeof(ebuf));
            rd_kafka_NewTopic_set_config(nt, "cleanup.policy", "compact");
            rd_kafka_NewTopic_set_config(nt, "segment.ms", "600000");
            rd_kafka_NewTopic_set_config(nt, "min.cleanable.dirty.ratio", "0.1");
            rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
            rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
            rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 10000);
            if (ev) {
                const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
                size_t cnt = 0;
                const rd_kafka_topic_result_t **tr =
                    res ? rd_kafka_CreateTopics_result_topics(res, &cnt) : NULL;
                rd_kafka_resp_err_t cerr =
                    cnt ? rd_kafka_topic_result_error(tr[0]) : rd_kafka_event_error(ev);
                if (cerr && cerr != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
                    log_warn("cannot create the state topic", "topic", topic, "error",
                             rd_kafka_err2str(cerr), NULL);
                else
                    log_info("created the state topic (compacted)", "topic", topic, NULL);
                rd_kafka_event_destroy(ev);
            }
            rd_kafka_queue_destroy(q);
            rd_kafka_NewTopic_destroy(nt);
            created = true;
            continue;
        }
        if (attempt % 10 == 0)
            log_warn("waiting for the state topic", "topic", topic, "error",
                     rd_kafka_err2str(err ? err : terr), NULL);
        usleep(500 * 1000);
    }
    return false;
}

/* ---- shards --------------------------------------------------------------- */

/* An open-addressing set of partitions by shard name (at most half full). */
#define SHARD_SET_SLOTS 4096
struct shard_set {
    struct partition_state *slots[SHARD_SET_SLOTS];
    size_t count;
};

static bool shard_set_add(struct shard_set *set, struct partition_state *p)
{
    if (set->count >= SHARD_SET_SLOTS / 2)
        return false;
    uint32_t i = state_shard_hash(p->shard, p->shard_len) & (SHARD_SET_SLOTS - 1);
    while (set->slots[i])
        i = (i + 1) & (SHARD_SET_SLOTS - 1);
    set->slots[i] = p;
    set->count++;
    return true;
}

static struct partition_state *shard_set_find(const struct shard_set *set, const char *s, size_t n)
{
    if (!set->count)
        return NULL;
    for (uint32_t i = state_shard_hash(s, n) & (SHARD_SET_SLOTS - 1); set->slots[i];
         i = (i + 1) & (SHARD_SET_SLOTS - 1)) {
        struct partition_state *p = set->slots[i];
        if (p->shard_len == n && memcmp(p->shard, s, n) == 0)
            return p;
    }
    return NULL;
}

/* Calls fn for every series (of every family) whose shard is in set. */
typedef void (*series_fn)(struct kafka_source *ks, const struct counter_view *v, unsigned family,
                          struct partition_state *p, void *ctx);
struct shard_walk {
    struct kafka_source *ks;
    const struct shard_set *set;
    unsigned family;
    size_t label_count;
    series_fn fn;
    void *ctx;
};

static int shard_walk_visit(const struct counter_view *v, void *ctx)
{
    struct shard_walk *w = ctx;
    const struct label_value *shard = &v->labels[w->label_count - 1];
    struct partition_state *p = shard_set_find(w->set, shard->ptr, shard->len);
    if (p)
        w->fn(w->ks, v, w->family, p, w->ctx);
    return 0;
}

static void for_each_series(struct kafka_source *ks, const struct shard_set *set, series_fn fn,
                            void *ctx)
{
    for (unsigned f = 0; f < METRIC_FAMILY_COUNT; f++) {
        struct counter_table *t = metrics_table(ks->metrics, (enum metric_family)f);
        if (!t)
            continue;
        struct shard_walk w = {ks, set, f, counter_table_label_count(t), fn, ctx};
        counter_table_foreach_all(t, shard_walk_visit, &w);
    }
}

/* ---- one checkpoint ------------------------------------------------------- */

struct noted {
    struct counter_series *series;
    struct partition_state *p;
    uint64_t value;
    int64_t hold_until_ms;
    size_t key_at, key_len;
};

struct noted_pos {
    struct partition_state *p;
    int64_t next;
};

struct cut {
    struct noted *series;
    size_t count, cap;
    char *keys;
    size_t keys_len, keys_cap;
    struct noted_pos *pos;
    size_t pos_count, pos_cap;
    int64_t now_wall;
    int64_t hold_ms;
    bool oom;
};

static void note_series(struct kafka_source *ks, const struct counter_view *v, unsigned family,
                        struct partition_state *p, void *ctx)
{
    (void)ks;
    struct cut *c = ctx;
    if (c->oom || (v->checkpointed_ever && v->live == v->checkpointed))
        return;
    if (c->count == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 256;
        struct noted *grown = realloc(c->series, cap * sizeof(*grown));
        if (!grown) {
            c->oom = true;
            return;
        }
        c->series = grown;
        c->cap = cap;
    }
    if (c->keys_cap - c->keys_len < KEY_MAX) {
        size_t cap = c->keys_cap ? c->keys_cap * 2 : 65536;
        while (cap - c->keys_len < KEY_MAX)
            cap *= 2;
        char *grown = realloc(c->keys, cap);
        if (!grown) {
            c->oom = true;
            return;
        }
        c->keys = grown;
        c->keys_cap = cap;
    }
    size_t labels = 0;
    struct counter_table *t = metrics_table(ks->metrics, (enum metric_family)family);
    labels = counter_table_label_count(t) - 1; /* all but the shard */
    size_t n = state_series_key(c->keys + c->keys_len, c->keys_cap - c->keys_len, p->shard,
                                p->shard_len, family, v->labels, labels);
    if (!n)
        return; /* a label over 1 KiB cannot be: events.max label length is lower */
    /* A series readers have not been shown yet is shown at 0 until its
     * hold ends; the hold is checkpointed with it, so a restart keeps it. */
    int64_t hold = v->shown ? v->hold_until_ms : c->now_wall + c->hold_ms;
    c->series[c->count++] = (struct noted){v->series, p, v->live, hold, c->keys_len, n};
    c->keys_len += n;
}

static void cut_free(struct cut *c)
{
    free(c->series);
    free(c->keys);
    free(c->pos);
    memset(c, 0, sizeof(*c));
}

/* Notes the cut while the workers are frozen (or already stopped). */
static bool take_cut(struct kafka_source *ks, struct cut *c, bool freeze)
{
    struct shard_set set = {0};
    c->now_wall = wall_ms();
    c->hold_ms = ks->cfg->counters_new_series_hold_ms;
    if (freeze && !kafka_freeze_appliers(ks))
        return false;
    pthread_mutex_lock(&ks->registry_lock);
    for (size_t i = 0; i < ks->part_count; i++) {
        struct partition_state *p = ks->parts[i];
        if (!atomic_load(&p->assigned) || !shard_set_add(&set, p))
            continue;
        int64_t applied = atomic_load_explicit(&p->applied, memory_order_acquire);
        if (applied >= 0 && applied + 1 != atomic_load(&p->checkpointed)) {
            if (c->pos_count == c->pos_cap) {
                size_t cap = c->pos_cap ? c->pos_cap * 2 : 32;
                struct noted_pos *grown = realloc(c->pos, cap * sizeof(*grown));
                if (!grown) {
                    c->oom = true;
                    break;
                }
                c->pos = grown;
                c->pos_cap = cap;
            }
            c->pos[c->pos_count++] = (struct noted_pos){p, applied + 1};
        }
        kafka_dead_letters_take(p, &ks->carried);
    }
    pthread_mutex_unlock(&ks->registry_lock);
    if (!c->oom)
        for_each_series(ks, &set, note_series, c);
    if (freeze)
        kafka_thaw_appliers(ks);
    return !c->oom;
}

static rd_kafka_resp_err_t produce_state(struct kafka_source *ks, const void *key, size_t key_len,
                                         const void *value, size_t len, int32_t partition,
                                         int64_t deadline)
{
    rd_kafka_resp_err_t err;
    while ((err = rd_kafka_producev(
                ks->txn, RD_KAFKA_V_TOPIC(ks->cfg->kafka_state_topic),
                RD_KAFKA_V_PARTITION(partition), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                RD_KAFKA_V_KEY((void *)key, key_len), RD_KAFKA_V_VALUE((void *)value, len),
                RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL &&
           kafka_now_ms() < deadline)
        rd_kafka_poll(ks->txn, 10);
    return err;
}

/* Whether kafka.dlq_topic exists (a metadata round trip; only asked when
 * a checkpoint has letters to write). */
static bool dlq_topic_exists(struct kafka_source *ks)
{
    rd_kafka_t *rk = ks->restore_uncommitted;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, ks->cfg->kafka_dlq_topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, 5000);
    rd_kafka_topic_destroy(rkt);
    bool missing =
        !err && md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
    if (md)
        rd_kafka_metadata_destroy(md);
    return !missing; /* unknown (no answer): try, the transaction says */
}

/* A failed transactional call: aborts when the transaction can go on,
 * asks the daemon to stop when the producer is fenced or broken. */
/*
 * Calls commit or abort until it settles: a call that times out is
 * retriable and must be repeated, not followed by the other one (librdkafka
 * then refuses everything with "conflicting API call in progress"). Ends
 * within the transaction timeout plus one call (the producer's
 * message.timeout.ms is the transaction timeout, so undeliverable letters
 * fail the transaction rather than hold it), or when the source stops.
 * Returns NULL on success, else the last error (the caller frees it).
 */
static rd_kafka_error_t *txn_settle(struct kafka_source *ks,
                                    rd_kafka_error_t *(*call)(rd_kafka_t *, int), int timeout_ms)
{
    int64_t deadline = kafka_now_ms() + ks->cfg->kafka_transaction_timeout_ms + timeout_ms;
    rd_kafka_error_t *error = call(ks->txn, timeout_ms);
    while (error && rd_kafka_error_is_retriable(error) && kafka_now_ms() < deadline &&
           !atomic_load(&ks->ckpt_stop)) {
        rd_kafka_error_destroy(error);
        error = call(ks->txn, timeout_ms);
    }
    return error;
}

static void txn_failed(struct kafka_source *ks, const char *what, rd_kafka_error_t *error,
                       int timeout_ms)
{
    atomic_fetch_add(&ks->checkpoint_failures, 1);
    bool fatal = rd_kafka_error_is_fatal(error);
    log_warn("checkpoint failed; the served counters stay at the last checkpoint", "step", what,
             "error", rd_kafka_error_string(error), NULL);
    rd_kafka_error_destroy(error);
    if (!fatal) {
        rd_kafka_error_t *aerr = txn_settle(ks, rd_kafka_abort_transaction, timeout_ms);
        if (aerr) {
            fatal = rd_kafka_error_is_fatal(aerr);
            log_warn("checkpoint abort failed; starting a new producer", "error",
                     rd_kafka_error_string(aerr), NULL);
            rd_kafka_error_destroy(aerr);
            if (!fatal) /* still unsettled: a new producer with the same id aborts it */
                atomic_store(&ks->txn_broken, true);
        }
    }
    if (fatal) {
        char why[256] = "";
        rd_kafka_resp_err_t cause = rd_kafka_fatal_error(ks->txn, why, sizeof(why));
        atomic_store(&ks->txn_ready, false);
        bool fenced = cause == RD_KAFKA_RESP_ERR__FENCED ||
                      cause == RD_KAFKA_RESP_ERR_PRODUCER_FENCED ||
                      cause == RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH;
        if (fenced && ++ks->fenced_streak >= FENCED_STREAK_MAX) {
            /* Fenced again and again: another process uses our
             * transactional id. What we serve stays true, but nothing new
             * can be checkpointed: stop; the next owner continues from
             * the last checkpoint. */
            log_error("another process uses this kafka.transactional_id; stopping",
                      "transactional_id", ks->transactional_id, "error", why, NULL);
            atomic_store(&ks->txn_fatal, true);
            kill(getpid(), SIGTERM);
        } else {
            /* Debian's librdkafka 2.0.2 also ends here by itself (an epoch
             * bump after timed-out messages reads as fenced): a new
             * producer with the same id aborts the broken transaction. */
            log_warn("the checkpoint producer failed; starting a new one", "error", why, NULL);
            atomic_store(&ks->txn_broken, true);
        }
    }
}

/* Replaces a broken producer (checkpoint thread, under ckpt_lock). */
static void txn_renew(struct kafka_source *ks)
{
    char err[512];
    rd_kafka_t *fresh = txn_producer_new(ks, err, sizeof(err));
    if (!fresh) {
        log_error("cannot start a new checkpoint producer; stopping", "error", err, NULL);
        atomic_store(&ks->txn_fatal, true);
        kill(getpid(), SIGTERM);
        return;
    }
    rd_kafka_purge(ks->txn, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_destroy(ks->txn);
    ks->txn = fresh;
    /* not ready until init_transactions on the new one (checkpoint_main) */
    atomic_store(&ks->txn_ready, false);
    atomic_store(&ks->txn_broken, false);
}

/*
 * One checkpoint. freeze: stop the workers for the cut (false when they
 * have stopped for good). Returns true when it committed (or had nothing
 * to write). Caller holds ckpt_lock.
 */
static bool checkpoint_once(struct kafka_source *ks, bool freeze, int timeout_ms)
{
    int64_t start = kafka_now_ms(), deadline = start + timeout_ms;
    struct cut c = {0};
    if (!take_cut(ks, &c, freeze)) {
        if (c.oom)
            log_warn("out of memory taking a checkpoint; retrying", NULL);
        cut_free(&c); /* else the workers stopped for good: the final checkpoint follows */
        return false;
    }
    if (c.count == 0 && c.pos_count == 0 && ks->carried.count == 0) {
        atomic_store(&ks->served_at_ms, c.now_wall);
        cut_free(&c);
        return true;
    }
    if (ks->carried.count && !dlq_topic_exists(ks)) {
        /* Letters to a topic that is gone would time out inside the
         * transaction and break the producer: wait, counters included. */
        atomic_fetch_add(&ks->checkpoint_failures, 1);
        int64_t now = kafka_now_ms();
        if (now - ks->dlq_missing_logged_ms > 10000) {
            ks->dlq_missing_logged_ms = now;
            log_warn("the dead-letter topic is missing; checkpoints (and the served counters) wait "
                     "for it",
                     "topic", ks->cfg->kafka_dlq_topic, NULL);
        }
        cut_free(&c);
        return false;
    }
    rd_kafka_error_t *error = rd_kafka_begin_transaction(ks->txn);
    if (error) {
        txn_failed(ks, "begin", error, timeout_ms);
        cut_free(&c);
        return false;
    }
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    char value[16];
    for (size_t i = 0; !err && i < c.count; i++) {
        struct noted *n = &c.series[i];
        state_series_value(value, n->value, n->hold_until_ms);
        err = produce_state(ks, c.keys + n->key_at, n->key_len, value, 16, n->p->state_partition,
                            deadline);
    }
    char key[8 + SHARD_MAX];
    for (size_t i = 0; !err && i < c.pos_count; i++) {
        struct partition_state *p = c.pos[i].p;
        size_t kl = state_position_key(key, sizeof(key), p->shard, p->shard_len);
        state_position_value(value, c.pos[i].next);
        err = produce_state(ks, key, kl, value, 8, p->state_partition, deadline);
    }
    if (!err && ks->carried.count)
        err = kafka_dead_letters_produce(ks, &ks->carried, deadline);
    if (err) {
        txn_failed(ks, "produce", rd_kafka_error_new(err, "%s", rd_kafka_err2str(err)), timeout_ms);
        cut_free(&c);
        return false;
    }
    if (c.pos_count) {
        rd_kafka_topic_partition_list_t *offsets =
            rd_kafka_topic_partition_list_new((int)c.pos_count);
        for (size_t i = 0; i < c.pos_count; i++)
            rd_kafka_topic_partition_list_add(offsets, c.pos[i].p->topic, c.pos[i].p->partition)
                ->offset = c.pos[i].next;
        rd_kafka_consumer_group_metadata_t *cgmd = rd_kafka_consumer_group_metadata(ks->rk);
        error = rd_kafka_send_offsets_to_transaction(ks->txn, offsets, cgmd, timeout_ms);
        rd_kafka_consumer_group_metadata_destroy(cgmd);
        rd_kafka_topic_partition_list_destroy(offsets);
        if (error) {
            txn_failed(ks, "send offsets", error, timeout_ms);
            cut_free(&c);
            return false;
        }
    }
    int left = (int)(deadline - kafka_now_ms());
    error = txn_settle(ks, rd_kafka_commit_transaction, left > 100 ? left : 100);
    if (error) {
        txn_failed(ks, "commit", error, timeout_ms);
        cut_free(&c);
        return false;
    }
    ks->fenced_streak = 0;
    /* Durable: publish. Only now may readers see these values. */
    for (size_t i = 0; i < c.count; i++) {
        struct noted *n = &c.series[i];
        counter_series_set_checkpointed(n->series, n->value);
        counter_series_publish(n->series, n->value, n->hold_until_ms);
    }
    for (size_t i = 0; i < c.pos_count; i++)
        atomic_store(&c.pos[i].p->checkpointed, c.pos[i].next);
    atomic_fetch_add(&ks->dlq_produced, ks->carried.count);
    kafka_dead_letters_clear(&ks->carried);
    atomic_fetch_add(&ks->checkpoints, 1);
    atomic_fetch_add(&ks->checkpoint_records, c.count + c.pos_count);
    atomic_fetch_add(&ks->checkpoint_us_total, (uint64_t)(kafka_now_ms() - start) * 1000);
    atomic_store(&ks->served_at_ms, c.now_wall);
    cut_free(&c);
    return true;
}

static bool txn_init(struct kafka_source *ks)
{
    rd_kafka_error_t *error = rd_kafka_init_transactions(ks->txn, TXN_OP_TIMEOUT_MS);
    if (!error) {
        atomic_store(&ks->txn_ready, true);
        log_info("checkpoint producer ready", "transactional_id", ks->transactional_id, NULL);
        return true;
    }
    bool fatal = rd_kafka_error_is_fatal(error);
    log_warn("cannot initialise the checkpoint producer; retrying", "error",
             rd_kafka_error_string(error), NULL);
    rd_kafka_error_destroy(error);
    if (fatal) /* a new producer with the same id tries again */
        atomic_store(&ks->txn_broken, true);
    return false;
}

static void *checkpoint_main(void *arg)
{
    struct kafka_source *ks = arg;
    int64_t interval = ks->cfg->kafka_checkpoint_interval_ms;
    while (!atomic_load(&ks->ckpt_stop) && !atomic_load(&ks->txn_fatal)) {
        if (atomic_load(&ks->txn_broken)) {
            pthread_mutex_lock(&ks->ckpt_lock);
            txn_renew(ks);
            pthread_mutex_unlock(&ks->ckpt_lock);
        }
        if (!atomic_load(&ks->txn_ready) && !txn_init(ks)) {
            usleep(500 * 1000);
            continue;
        }
        if (state_topic_ready(ks)) {
            pthread_mutex_lock(&ks->ckpt_lock);
            checkpoint_once(ks, true, TXN_OP_TIMEOUT_MS);
            if (atomic_load(&ks->txn_broken))
                txn_renew(ks);
            pthread_mutex_unlock(&ks->ckpt_lock);
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += interval / 1000;
        until.tv_nsec += (long)(interval % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&ks->ckpt_wake_lock);
        if (!atomic_load(&ks->ckpt_stop))
            pthread_cond_timedwait(&ks->ckpt_wake, &ks->ckpt_wake_lock, &until);
        pthread_mutex_unlock(&ks->ckpt_wake_lock);
    }
    return NULL;
}

int kafka_checkpoint_start(struct kafka_source *ks, char *errbuf, size_t errlen)
{
    int rc = pthread_create(&ks->ckpt_thread, NULL, checkpoint_main, ks);
    if (rc) {
        snprintf(errbuf, errlen, "cannot start the checkpoint thread: %s", strerror(rc));
        return -rc;
    }
    ks->ckpt_thread_started = true;
    return 0;
}

void kafka_checkpoint_stop(struct kafka_source *ks, int timeout_ms)
{
    pthread_mutex_lock(&ks->ckpt_wake_lock);
    atomic_store(&ks->ckpt_stop, true);
    pthread_cond_broadcast(&ks->ckpt_wake);
    pthread_mutex_unlock(&ks->ckpt_wake_lock);
    if (ks->ckpt_thread_started) {
        pthread_join(ks->ckpt_thread, NULL);
        ks->ckpt_thread_started = false;
    }
    /* The workers have stopped: one last checkpoint of everything applied,
     * so the next owner need not read it again. */
    if (!ks->txn || !atomic_load(&ks->txn_ready) || atomic_load(&ks->state_partitions) <= 0)
        return;
    pthread_mutex_lock(&ks->ckpt_lock);
    bool ok = checkpoint_once(ks, false, timeout_ms > 0 ? timeout_ms : 1);
    pthread_mutex_unlock(&ks->ckpt_lock);
    log_info(ok ? "final checkpoint written"
                : "final checkpoint failed; the next owner re-reads from the last one",
             NULL);
}

void kafka_checkpoint_free(struct kafka_source *ks)
{
    kafka_dead_letters_clear(&ks->carried);
    if (ks->restore_committed)
        rd_kafka_destroy(ks->restore_committed);
    if (ks->restore_uncommitted)
        rd_kafka_destroy(ks->restore_uncommitted);
    if (ks->txn)
        rd_kafka_destroy(ks->txn);
    pthread_mutex_destroy(&ks->ckpt_lock);
    pthread_mutex_destroy(&ks->ckpt_wake_lock);
    pthread_cond_destroy(&ks->ckpt_wake);
}

/* ---- revoke --------------------------------------------------------------- */

static void hide_one(struct kafka_source *ks, const struct counter_view *v, unsigned family,
                     struct partition_state *p, void *ctx)
{
    (void)ks, (void)family, (void)p, (void)ctx;
    counter_series_hide(v->series);
}

void kafka_hide_revoked(struct kafka_source *ks, const rd_kafka_topic_partition_list_t *parts)
{
    struct shard_set set = {0};
    pthread_mutex_lock(&ks->registry_lock);
    for (int i = 0; i < parts->cnt; i++) {
        struct partition_state *p =
            kafka_partition(ks, parts->elems[i].topic, parts->elems[i].partition, false);
        if (p)
            shard_set_add(&set, p);
    }
    pthread_mutex_unlock(&ks->registry_lock);
    for_each_series(ks, &set, hide_one, NULL);
}

/* ---- restore -------------------------------------------------------------- */

struct restore {
    struct shard_set set;
    rd_kafka_message_t **msgs; /* records of the restored shards, in log order per partition */
    size_t count, cap;
};

static void reset_one(struct kafka_source *ks, const struct counter_view *v, unsigned family,
                      struct partition_state *p, void *ctx)
{
    (void)ks, (void)family, (void)p, (void)ctx;
    /* From an earlier ownership: the checkpoint decides its value now. */
    counter_series_hide(v->series);
    counter_series_set_live(v->series, 0);
    counter_series_set_checkpointed(v->series, 0);
}

/* Applies one record (in log order) to the live and checkpointed values
 * only, and returns its series (NULL for a position or a skipped record):
 * readers must not see the values a key went through, only its last. */
static struct counter_series *apply_record(struct kafka_source *ks, const struct state_record *r,
                                           struct partition_state *p)
{
    if (r->position) {
        atomic_store(&p->checkpointed, r->next_offset);
        return NULL;
    }
    struct counter_table *t = r->family < METRIC_FAMILY_COUNT
                                  ? metrics_table(ks->metrics, (enum metric_family)r->family)
                                  : NULL;
    if (!t || counter_table_label_count(t) != r->label_count + 1) {
        static atomic_bool warned;
        if (!atomic_exchange(&warned, true))
            log_warn("a checkpoint record has other labels than this process's families "
                     "(events.extra_labels changed?); such records are skipped",
                     NULL);
        return NULL;
    }
    struct label_value values[STATE_LABELS_MAX + 1];
    memcpy(values, r->labels, r->label_count * sizeof(values[0]));
    values[r->label_count] = (struct label_value){p->shard, (uint32_t)p->shard_len};
    struct counter_series *s = counter_table_get(t, values);
    counter_series_set_live(s, r->value);
    counter_series_set_checkpointed(s, r->value);
    return s;
}

/* A set of series pointers (open addressing), for publishing each
 * restored series once. */
struct series_set {
    struct counter_series **slots;
    size_t mask;
};

static bool series_set_insert(struct series_set *set, struct counter_series *s)
{
    size_t i = ((uintptr_t)s >> 4) * 0x9e3779b97f4a7c15ULL & set->mask;
    for (; set->slots[i]; i = (i + 1) & set->mask)
        if (set->slots[i] == s)
            return false;
    set->slots[i] = s;
    return true;
}

/*
 * Applies the restored records, then shows each series once with its last
 * value and that record's hold. Publishing record by record would show a
 * reader the older values a key went through on its way to the last one:
 * a decrease from what the previous owner served, which Prometheus takes
 * for a reset and counts again (the kill test found it). Caller holds
 * ckpt_lock; the series were hidden by reset_one.
 */
static bool apply_records(struct kafka_source *ks, struct restore *r)
{
    struct counter_series **of = calloc(r->count + 1, sizeof(*of));
    size_t cap = 16;
    while (cap < 2 * r->count)
        cap *= 2;
    struct series_set set = {calloc(cap, sizeof(*set.slots)), cap - 1};
    if (!of || !set.slots) {
        free(of);
        free(set.slots);
        return false;
    }
    struct state_record rec;
    for (size_t i = 0; i < r->count; i++) {
        rd_kafka_message_t *m = r->msgs[i];
        if (state_decode(m->key, m->key_len, m->payload, m->len, &rec) == 0)
            of[i] = apply_record(ks, &rec, shard_set_find(&r->set, rec.shard, rec.shard_len));
    }
    for (size_t i = r->count; i-- > 0;) { /* the last record of each series wins */
        rd_kafka_message_t *m = r->msgs[i];
        if (!of[i] || !series_set_insert(&set, of[i]) ||
            state_decode(m->key, m->key_len, m->payload, m->len, &rec) != 0)
            continue;
        counter_series_publish(of[i], rec.value, rec.hold_until_ms);
        atomic_fetch_add(&ks->restored_series, 1);
    }
    free(of);
    free(set.slots);
    return true;
}

/* Reads the state partitions of the restored shards: waits until each
 * one's last stable offset reaches the high watermark it had when we
 * started (so the previous owner's last committed checkpoint is readable:
 * a commit returns before its markers are written everywhere), then reads
 * it from the beginning to its end. */
static bool read_state(struct kafka_source *ks, struct restore *r, const int32_t *sps, size_t n)
{
    const char *topic = ks->cfg->kafka_state_topic;
    int64_t want[512];
    for (size_t i = 0; i < n; i++) {
        int64_t lo = 0, hi = -1;
        while (rd_kafka_query_watermark_offsets(ks->restore_uncommitted, topic, sps[i], &lo, &hi,
                                                5000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
            if (atomic_load(&ks->stop))
                return false;
            usleep(200 * 1000);
        }
        want[i] = hi;
    }
    int64_t waited_from = kafka_now_ms(), warned_at = waited_from;
    for (size_t i = 0; i < n; i++) {
        for (;;) {
            int64_t lo = 0, lso = -1;
            if (rd_kafka_query_watermark_offsets(ks->restore_committed, topic, sps[i], &lo, &lso,
                                                 5000) == RD_KAFKA_RESP_ERR_NO_ERROR &&
                lso >= want[i])
                break;
            if (atomic_load(&ks->stop))
                return false;
            if (kafka_now_ms() - warned_at > 5000) {
                warned_at = kafka_now_ms();
                log_warn("restore waits for an open checkpoint transaction to end (a killed "
                         "process's, ended by the broker after kafka.transaction_timeout_ms)",
                         NULL);
            }
            usleep(100 * 1000);
        }
    }
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new((int)n);
    for (size_t i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(list, topic, sps[i])->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(ks->restore_committed, list);
    rd_kafka_topic_partition_list_destroy(list);
    bool done[512] = {false};
    size_t left = 0;
    for (size_t i = 0; i < n; i++) {
        if (want[i] <= 0)
            done[i] = true; /* empty */
        else
            left++;
    }
    bool ok = true;
    while (left > 0) {
        if (atomic_load(&ks->stop)) {
            ok = false;
            break;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(ks->restore_committed, 200);
        if (!m)
            continue;
        size_t i = 0;
        while (i < n && sps[i] != m->partition)
            i++;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            if (i < n && !done[i] && m->offset >= want[i]) {
                done[i] = true;
                left--;
            }
            rd_kafka_message_destroy(m);
            continue;
        }
        if (m->err) {
            log_warn("reading the state topic", "error", rd_kafka_message_errstr(m), NULL);
            rd_kafka_message_destroy(m);
            continue;
        }
        struct state_record rec;
        if (state_decode(m->key, m->key_len, m->payload, m->len, &rec) != 0 ||
            !shard_set_find(&r->set, rec.shard, rec.shard_len)) {
            rd_kafka_message_destroy(m);
            continue;
        }
        if (r->count == r->cap) {
            size_t cap = r->cap ? r->cap * 2 : 1024;
            rd_kafka_message_t **grown = realloc(r->msgs, cap * sizeof(*grown));
            if (!grown) {
                rd_kafka_message_destroy(m);
                ok = false;
                break;
            }
            r->msgs = grown;
            r->cap = cap;
        }
        r->msgs[r->count++] = m;
    }
    rd_kafka_assign(ks->restore_committed, NULL);
    return ok;
}

bool kafka_restore(struct kafka_source *ks, rd_kafka_topic_partition_list_t *parts)
{
    if (parts->cnt == 0)
        return true; /* a cooperative rebalance that gives this process nothing new */
    if (!state_topic_ready(ks))
        return false;
    int sp_count = atomic_load(&ks->state_partitions);
    struct restore r = {0};
    int32_t sps[512];
    size_t n = 0;
    /* the assigned partitions' states, in parts' order (NULL: out of memory) */
    struct partition_state **ps = calloc((size_t)parts->cnt + 1, sizeof(*ps));
    if (!ps)
        return false;
    pthread_mutex_lock(&ks->registry_lock);
    for (int i = 0; i < parts->cnt; i++) {
        struct partition_state *p =
            kafka_partition(ks, parts->elems[i].topic, parts->elems[i].partition, true);
        if (!p)
            continue;
        if (!shard_set_add(&r.set, p)) {
            log_error("too many partitions assigned at once to restore them", NULL);
            break;
        }
        ps[i] = p;
        p->state_partition = state_partition_of(p->shard, p->shard_len, sp_count);
        size_t j = 0;
        while (j < n && sps[j] != p->state_partition)
            j++;
        if (j == n && n < 512)
            sps[n++] = p->state_partition;
    }
    pthread_mutex_unlock(&ks->registry_lock);

    int64_t t0 = kafka_now_ms();
    bool ok = read_state(ks, &r, sps, n);
    if (ok) {
        pthread_mutex_lock(&ks->ckpt_lock);
        for_each_series(ks, &r.set, reset_one, NULL);
        for (int i = 0; i < parts->cnt; i++)
            if (ps[i])
                atomic_store(&ps[i]->checkpointed, -1);
        if (!apply_records(ks, &r))
            ok = false;
        for (int i = 0; i < parts->cnt; i++) {
            if (!ps[i])
                continue;
            int64_t next = atomic_load(&ps[i]->checkpointed);
            atomic_store(&ps[i]->applied, next >= 0 ? next - 1 : -1);
            parts->elems[i].offset = next >= 0 ? next : RD_KAFKA_OFFSET_INVALID;
        }
        pthread_mutex_unlock(&ks->ckpt_lock);
        char what[96];
        snprintf(what, sizeof(what), "%d partitions, %zu records, %lld ms", parts->cnt, r.count,
                 (long long)(kafka_now_ms() - t0));
        log_info("restored from the last checkpoint", "restore", what, NULL);
    }
    for (size_t i = 0; i < r.count; i++)
        rd_kafka_message_destroy(r.msgs[i]);
    free(r.msgs);
    free(ps);
    return ok;
}

/*
 * dlq.c - the dead-letter producer: a rejected message goes byte for byte
 * to kafka.dlq_topic with headers naming the reason and where it came
 * from; its offset stays pending on its partition, so no commit passes it,
 * until the broker acknowledges the letter.
 *
 * Threads: workers call kafka_dead_letter (it waits while the producer
 * queue is full, until the source stops); the dead-letter thread (dlq_poll_main) serves
 * the delivery reports and commits once a letter is acknowledged; the main
 * thread creates, warms up and starts it. Locks: a partition's dlq_lock
 * around its pending list; the commit after an acknowledgement takes
 * registry_lock (then dlq_lock, inside the commit planning).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kafka_internal.h"
#include "log.h"

/* The ref reaches the delivery callback (dead-letter thread) through
 * librdkafka's queues, a hand-over ThreadSanitizer cannot see in that
 * uninstrumented library: tell it. Nothing in other builds. */
#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#define HANDOVER_RELEASE(ref) __tsan_release(ref)
#define HANDOVER_ACQUIRE(ref) __tsan_acquire(ref)
#else
#define HANDOVER_RELEASE(ref) ((void)(ref))
#define HANDOVER_ACQUIRE(ref) ((void)(ref))
#endif

/* A worker's wait for room in a full producer queue, between attempts. */
#define QUEUE_FULL_WAIT_US (10 * 1000)

static void dlq_remove(struct partition_state *p, int64_t offset)
{
    pthread_mutex_lock(&p->dlq_lock);
    for (size_t i = 0; i < p->dlq_count; i++) {
        if (p->dlq_pending[i] != offset)
            continue;
        memmove(&p->dlq_pending[i], &p->dlq_pending[i + 1],
                (p->dlq_count - i - 1) * sizeof(int64_t));
        p->dlq_count--;
        break;
    }
    pthread_mutex_unlock(&p->dlq_lock);
}

/* block: wait for room when the producer queue is full (the DLQ thread
 * keeps polling) until the source stops; not from the delivery callback,
 * which runs on that very thread. */
static int dlq_produce(struct kafka_source *ks, struct dlq_ref *ref, const void *payload,
                       size_t len, const void *key, size_t key_len, bool block)
{
    char partition[16], offset[24];
    snprintf(partition, sizeof(partition), "%d", ref->state->partition);
    snprintf(offset, sizeof(offset), "%lld", (long long)ref->offset);
    const char *topic = ref->state->topic;
    rd_kafka_resp_err_t err;
    for (;;) {
        /* last read of *ref on this thread before the callback may free it */
        HANDOVER_RELEASE(ref);
        err = rd_kafka_producev(ks->dlq, RD_KAFKA_V_TOPIC(ks->cfg->kafka_dlq_topic),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_VALUE((void *)payload, len),
                                RD_KAFKA_V_KEY((void *)key, key_len),
                                RD_KAFKA_V_HEADER("ai_finops_reason", ref->reason, -1),
                                RD_KAFKA_V_HEADER("ai_finops_source_topic", topic, -1),
                                RD_KAFKA_V_HEADER("ai_finops_source_partition", partition, -1),
                                RD_KAFKA_V_HEADER("ai_finops_source_offset", offset, -1),
                                RD_KAFKA_V_OPAQUE(ref), RD_KAFKA_V_END);
        /* Not RD_KAFKA_MSG_F_BLOCK: with the dead-letter topic gone the
         * queue stays full until message.timeout.ms, and a worker blocked
         * in librdkafka would never see SIGTERM (the thread serving the
         * queue stops first). Waiting here, it gives up on stop; the
         * letter's offset stays pending, so the next owner re-reads it. */
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || !block || atomic_load(&ks->stop))
            break;
        usleep(QUEUE_FULL_WAIT_US);
    }
    return err ? -EIO : 0;
}

static void dlq_delivery_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct kafka_source *ks = opaque;
    struct dlq_ref *ref = m->_private;
    (void)rk;
    HANDOVER_ACQUIRE(ref);
    if (m->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE || m->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT) {
        /* Purged at shutdown (kafka_dlq_drain): the offset stays pending,
         * so it is not committed and the next owner sends it again. */
    } else if (m->err) {
        /* Keep the offset pending (it is never committed) and try again:
         * losing a dead letter would lose the event. */
        atomic_fetch_add(&ks->dlq_failures, 1);
        log_warn("dead letter not delivered; retrying", "error", rd_kafka_err2str(m->err), NULL);
        if (!atomic_load(&ks->stop) &&
            dlq_produce(ks, ref, m->payload, m->len, m->key, m->key_len, false) == 0)
            return;
    } else {
        atomic_fetch_add(&ks->dlq_produced, 1);
        dlq_remove(ref->state, ref->offset);
        atomic_store(&ks->dlq_acked, true);
    }
    free(ref);
}

static void *dlq_poll_main(void *arg)
{
    struct kafka_source *ks = arg;
    while (!atomic_load(&ks->stop)) {
        rd_kafka_poll(ks->dlq, POLL_MS);
        /* An acknowledged letter may release offsets a scrape already
         * observed: commit them now rather than at the next scrape, which
         * would leave them open to a double count after a crash. Once per
         * poll batch, not per letter. */
        if (atomic_exchange(&ks->dlq_acked, false) &&
            ks->cfg->kafka_commit_mode == COMMIT_MODE_SCRAPE && !atomic_load(&ks->shutting_down)) {
            pthread_mutex_lock(&ks->ledger.registry_lock);
            kafka_commit_owned(ks, NULL, false, true);
            pthread_mutex_unlock(&ks->ledger.registry_lock);
        }
    }
    return NULL;
}

/* Consumer thread: registers the pending dead letter, then sends it. */
void kafka_dead_letter(struct kafka_source *ks, struct partition_state *p,
                       const rd_kafka_message_t *m, enum reject_reason reason)
{
    struct dlq_ref *ref = calloc(1, sizeof(*ref));
    if (!ref)
        goto fail;
    ref->state = p;
    ref->offset = m->offset;
    snprintf(ref->reason, sizeof(ref->reason), "%s", reject_reason_name(reason));
    pthread_mutex_lock(&p->dlq_lock);
    if (p->dlq_count == p->dlq_cap) {
        size_t cap = p->dlq_cap ? p->dlq_cap * 2 : 16;
        int64_t *pending = realloc(p->dlq_pending, cap * sizeof(int64_t));
        if (!pending) {
            pthread_mutex_unlock(&p->dlq_lock);
            free(ref);
            goto fail;
        }
        p->dlq_pending = pending;
        p->dlq_cap = cap;
    }
    p->dlq_pending[p->dlq_count++] = m->offset;
    pthread_mutex_unlock(&p->dlq_lock);
    if (dlq_produce(ks, ref, m->payload, m->len, m->key, m->key_len, true) == 0)
        return;
    /* The offset stays pending, so it is never committed: the next owner
     * re-reads this event and tries again. Nothing is lost. */
    free(ref);
    atomic_fetch_add(&ks->dlq_failures, 1);
    log_error("cannot queue dead letter; its offset stays uncommitted", "topic", p->topic, NULL);
    return;
fail:
    atomic_fetch_add(&ks->dlq_failures, 1);
    log_error("out of memory queueing a dead letter", "topic", p->topic, NULL);
}

int kafka_dlq_init(struct kafka_source *ks, char *errbuf, size_t errlen)
{
    /* No idempotence: acquiring a producer id delays the first letter by
     * most of a second, and every unacknowledged letter holds back its
     * partition's commit. Dead letters are at-least-once anyway. */
    static const char *const defaults[] = {"linger.ms", "5", "acks", "all", NULL};
    rd_kafka_conf_t *conf = kafka_base_conf(ks->cfg, RD_KAFKA_PRODUCER, defaults, errbuf, errlen);
    if (!conf)
        return -EINVAL;
    rd_kafka_conf_set_opaque(conf, ks);
    rd_kafka_conf_set_dr_msg_cb(conf, dlq_delivery_cb);
    char err[512];
    ks->dlq = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!ks->dlq) {
        snprintf(errbuf, errlen, "cannot create dead-letter producer: %s", err);
        return -EINVAL;
    }
    return 0;
}

/* Learns the dead-letter topic's leader before consuming: otherwise the
 * first letter waits for a metadata round (most of a second), and every
 * offset behind it stays uncommitted that long. Not fatal: letters still
 * go out once the broker answers. */
static void dlq_warm_up(struct kafka_source *ks)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(ks->dlq, ks->cfg->kafka_dlq_topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err =
        rkt ? rd_kafka_metadata(ks->dlq, 0, rkt, &md, 5000) : RD_KAFKA_RESP_ERR__FAIL;
    if (err)
        log_warn("dead-letter topic metadata not available yet", "topic", ks->cfg->kafka_dlq_topic,
                 "error", rd_kafka_err2str(err), NULL);
    else if (md->topic_cnt == 1 && md->topics[0].err)
        log_warn("dead-letter topic problem", "topic", ks->cfg->kafka_dlq_topic, "error",
                 rd_kafka_err2str(md->topics[0].err), NULL);
    if (md)
        rd_kafka_metadata_destroy(md);
    if (rkt)
        rd_kafka_topic_destroy(rkt);
}

/* Main thread, before the workers start. */
int kafka_dlq_start(struct kafka_source *ks, char *errbuf, size_t errlen)
{
    dlq_warm_up(ks);
    int rc = pthread_create(&ks->dlq_thread, NULL, dlq_poll_main, ks);
    if (rc) {
        snprintf(errbuf, errlen, "cannot start dead-letter thread: %s", strerror(rc));
        return -rc;
    }
    ks->dlq_thread_started = true;
    return 0;
}

/*
 * Shutdown, after the workers and the dead-letter thread stopped: waits up
 * to timeout_ms for the queued letters, then purges the rest (a missing or
 * unreachable topic would keep them until message.timeout.ms) and serves
 * their reports, so each letter's ref is freed. Purged letters stay
 * pending: their offsets are not committed. Main thread.
 */
void kafka_dlq_drain(struct kafka_source *ks, int timeout_ms)
{
    if (rd_kafka_flush(ks->dlq, timeout_ms) == RD_KAFKA_RESP_ERR_NO_ERROR)
        return;
    rd_kafka_purge(ks->dlq, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    /* The purge reports arrive through the poll; in-flight requests end
     * with their socket timeout at the latest. */
    for (int i = 0; i < 100 && rd_kafka_outq_len(ks->dlq) > 0; i++)
        rd_kafka_poll(ks->dlq, 50);
    rd_kafka_poll(ks->dlq, 0);
}

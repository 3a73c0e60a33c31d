/*
 * dlq.c - dead letters: a rejected message is kept (a copy of its key and
 * bytes) on its partition until the next checkpoint produces it to
 * kafka.dlq_topic, byte for byte, with headers naming the reason and where
 * it came from, in the same transaction as the offsets past it. So a
 * letter is written exactly when its offset is checkpointed: never lost,
 * never twice (docs/delivery.md).
 *
 * Threads: workers add letters (kafka_dead_letter) and wait when their
 * partition holds too many (kafka_dead_letters_wait, outside the gate);
 * the checkpointer takes them while the workers are frozen and produces
 * them. Locks: a partition's dlq_lock around its list.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kafka_internal.h"
#include "log.h"

#define WAIT_US (10 * 1000)

static void *copy_of(const void *p, size_t n)
{
    void *c = malloc(n ? n : 1);
    if (c && n)
        memcpy(c, p, n);
    return c;
}

static bool letters_push(struct dead_letters *l, const struct dead_letter *d)
{
    if (l->count == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        struct dead_letter *grown = realloc(l->items, cap * sizeof(*grown));
        if (!grown)
            return false;
        l->items = grown;
        l->cap = cap;
    }
    l->items[l->count++] = *d;
    l->bytes += d->len + d->key_len;
    return true;
}

void kafka_dead_letter(struct kafka_source *ks, struct partition_state *p,
                       const rd_kafka_message_t *m, enum reject_reason reason)
{
    struct dead_letter d = {
        .state = p, .offset = m->offset, .len = m->len, .key_len = m->key ? m->key_len : 0};
    snprintf(d.reason, sizeof(d.reason), "%s", reject_reason_name(reason));
    /* The event is already counted as rejected, so its letter must reach
     * the checkpoint: out of memory, wait for memory rather than drop it.
     * Tried at least once even when the source is stopping (a worker
     * finishes its message after SIGTERM, and the final checkpoint covers
     * it); only the wait for memory ends on stop. */
    for (bool warned = false;; usleep(WAIT_US)) {
        d.payload = copy_of(m->payload, m->len);
        d.key = copy_of(m->key, d.key_len);
        if (d.payload && d.key) {
            pthread_mutex_lock(&p->dlq_lock);
            bool ok = letters_push(&p->letters, &d);
            atomic_store(&p->letter_bytes, p->letters.bytes);
            pthread_mutex_unlock(&p->dlq_lock);
            if (ok)
                return;
        }
        free(d.payload);
        free(d.key);
        if (atomic_load(&ks->stop))
            break;
        if (!warned)
            log_error("out of memory keeping a dead letter; waiting", "topic", p->topic, NULL);
        warned = true;
    }
    log_error("out of memory at shutdown: a dead letter is lost (its event stays counted as "
              "rejected)",
              "topic", p->topic, NULL);
}

void kafka_dead_letters_wait(struct kafka_source *ks, struct partition_state *p)
{
    while (atomic_load(&p->letter_bytes) > ks->dlq_max_bytes && !atomic_load(&ks->stop))
        usleep(WAIT_US);
}

void kafka_dead_letters_take(struct partition_state *p, struct dead_letters *to)
{
    pthread_mutex_lock(&p->dlq_lock);
    for (size_t i = 0; i < p->letters.count; i++)
        if (!letters_push(to, &p->letters.items[i])) {
            /* keep the rest on the partition for the next checkpoint */
            memmove(p->letters.items, p->letters.items + i,
                    (p->letters.count - i) * sizeof(*p->letters.items));
            p->letters.count -= i;
            p->letters.bytes = 0;
            for (size_t j = 0; j < p->letters.count; j++)
                p->letters.bytes += p->letters.items[j].len + p->letters.items[j].key_len;
            atomic_store(&p->letter_bytes, p->letters.bytes);
            pthread_mutex_unlock(&p->dlq_lock);
            return;
        }
    p->letters.count = 0;
    p->letters.bytes = 0;
    atomic_store(&p->letter_bytes, 0);
    pthread_mutex_unlock(&p->dlq_lock);
}

static void letter_free(struct dead_letter *d)
{
    free(d->payload);
    free(d->key);
}

rd_kafka_resp_err_t kafka_dead_letters_produce(struct kafka_source *ks, struct dead_letters *l,
                                               int64_t deadline_ms)
{
    size_t kept = 0;
    l->bytes = 0;
    for (size_t i = 0; i < l->count; i++) {
        struct dead_letter *d = &l->items[i];
        if (!atomic_load(&d->state->assigned)) {
            letter_free(d);
            continue;
        }
        l->items[kept++] = *d;
        l->bytes += d->len + d->key_len;
    }
    l->count = kept;
    for (size_t i = 0; i < l->count; i++) {
        struct dead_letter *d = &l->items[i];
        char partition[16], offset[24];
        snprintf(partition, sizeof(partition), "%d", d->state->partition);
        snprintf(offset, sizeof(offset), "%lld", (long long)d->offset);
        rd_kafka_resp_err_t err;
        while ((err = rd_kafka_producev(
                    ks->txn, RD_KAFKA_V_TOPIC(ks->cfg->kafka_dlq_topic),
                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_VALUE(d->payload, d->len),
                    RD_KAFKA_V_KEY(d->key_len ? d->key : NULL, d->key_len),
                    RD_KAFKA_V_HEADER("ai_finops_reason", d->reason, -1),
                    RD_KAFKA_V_HEADER("ai_finops_source_topic", d->state->topic, -1),
                    RD_KAFKA_V_HEADER("ai_finops_source_partition", partition, -1),
                    RD_KAFKA_V_HEADER("ai_finops_source_offset", offset, -1), RD_KAFKA_V_END)) ==
                   RD_KAFKA_RESP_ERR__QUEUE_FULL &&
               kafka_now_ms() < deadline_ms)
            rd_kafka_poll(ks->txn, 10);
        if (err)
            return err;
    }
    return RD_KAFKA_RESP_ERR_NO_ERROR;
}

void kafka_dead_letters_clear(struct dead_letters *l)
{
    for (size_t i = 0; i < l->count; i++)
        letter_free(&l->items[i]);
    free(l->items);
    memset(l, 0, sizeof(*l));
}

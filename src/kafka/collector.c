/*
 * collector.c - the Kafka input's self-metrics: assignment, broker state,
 * rebalances, duplicates, checkpoints, restores, dead letters, and per
 * partition the lag and the applied and checkpointed offsets.
 *
 * Threads: the scrape thread, as a metrics collector after the counters are
 * rendered. Locks: registry_lock while it reads the partitions.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "kafka_internal.h"

static void render_counter(struct dynbuf *b, enum expo_format fmt, const char *base,
                           const char *help, uint64_t value)
{
    expo_family(b, fmt, base, "counter", help);
    dynbuf_printf(b, "%s_total", base);
    expo_value_u64(b, value);
}

static void render_gauge(struct dynbuf *b, enum expo_format fmt, const char *name, const char *help,
                         uint64_t value)
{
    expo_family(b, fmt, name, "gauge", help);
    dynbuf_append_str(b, name);
    expo_value_u64(b, value);
}

void kafka_collect(struct dynbuf *b, enum expo_format fmt, void *ctx)
{
    struct kafka_source *ks = ctx;
    int assigned = atomic_load(&ks->assigned);
    render_gauge(b, fmt, "ai_finops_kafka_assigned_partitions",
                 "Partitions assigned to this process's consumers.",
                 (uint64_t)(assigned < 0 ? 0 : assigned));
    render_gauge(b, fmt, "ai_finops_kafka_broker_up",
                 "1 when a consumer is connected to a Kafka broker.",
                 (uint64_t)atomic_load(&ks->broker_up));
    render_gauge(b, fmt, "ai_finops_kafka_checkpoint_ready",
                 "1 once the checkpoint producer's transactions are initialised.",
                 (uint64_t)atomic_load(&ks->txn_ready));
    render_counter(b, fmt, "ai_finops_kafka_rebalances", "Rebalance events (assign and revoke).",
                   atomic_load(&ks->rebalances));
    render_counter(b, fmt, "ai_finops_kafka_duplicates_skipped",
                   "Redelivered messages at or below the partition's applied offset, skipped.",
                   atomic_load(&ks->duplicates));
    render_counter(b, fmt, "ai_finops_kafka_checkpoints",
                   "Checkpoints committed (series, positions, dead letters and offsets in one "
                   "Kafka transaction); only what they hold is served.",
                   atomic_load(&ks->checkpoints));
    render_counter(b, fmt, "ai_finops_kafka_checkpoint_failures",
                   "Checkpoints aborted (retried at the next interval; the served counters wait).",
                   atomic_load(&ks->checkpoint_failures));
    render_counter(b, fmt, "ai_finops_kafka_checkpoint_records",
                   "Records written to the state topic (changed series and positions).",
                   atomic_load(&ks->checkpoint_records));
    expo_family(b, fmt, "ai_finops_kafka_checkpoint_seconds", "counter",
                "Wall time spent in committed checkpoints.");
    dynbuf_append_str(b, "ai_finops_kafka_checkpoint_seconds_total");
    expo_value_nanos(b, atomic_load(&ks->checkpoint_us_total) * 1000);
    render_counter(b, fmt, "ai_finops_kafka_restored_series",
                   "Series restored from the state topic when partitions were assigned.",
                   atomic_load(&ks->restored_series));
    render_counter(b, fmt, "ai_finops_dlq_produced",
                   "Dead letters written (in the checkpoint that covers their offsets).",
                   atomic_load(&ks->dlq_produced));
    expo_family(b, fmt, "ai_finops_kafka_checkpoint_timestamp_seconds", "gauge",
                "When the served counters were last checkpointed (epoch seconds; 0 before).");
    dynbuf_append_str(b, "ai_finops_kafka_checkpoint_timestamp_seconds");
    expo_value_epoch_ms(b, atomic_load(&ks->served_at_ms));

    pthread_mutex_lock(&ks->registry_lock);
    static const char *const names[] = {"topic", "partition"};
    const char *families[][2] = {
        {"ai_finops_kafka_consumer_lag", "Messages behind the partition's high watermark."},
        {"ai_finops_kafka_applied_offset", "Highest offset added to the counters."},
        {"ai_finops_kafka_checkpointed_offset",
         "Next offset of the last checkpoint (what is served stops there)."},
        {"ai_finops_dlq_pending", "Bytes of dead letters waiting for the next checkpoint."},
    };
    for (int f = 0; f < 4; f++) {
        expo_family(b, fmt, families[f][0], "gauge", families[f][1]);
        for (size_t i = 0; i < ks->part_count; i++) {
            struct partition_state *p = ks->parts[i];
            if (p->worker < 0)
                continue;
            int64_t applied = atomic_load(&p->applied), value = 0;
            if (f == 0) {
                int64_t lo = 0, hi = 0;
                if (rd_kafka_get_watermark_offsets(ks->rk, p->topic, p->partition, &lo, &hi) == 0 &&
                    hi > 0) {
                    int64_t next = applied >= 0 ? applied + 1 : lo;
                    value = hi > next ? hi - next : 0;
                }
            } else if (f == 1) {
                value = applied;
            } else if (f == 2) {
                value = atomic_load(&p->checkpointed);
            } else {
                value = (int64_t)atomic_load(&p->letter_bytes);
            }
            char part[16];
            snprintf(part, sizeof(part), "%d", p->partition);
            struct label_value lv[2] = {{p->topic, (uint32_t)strlen(p->topic)},
                                        {part, (uint32_t)strlen(part)}};
            dynbuf_append_str(b, families[f][0]);
            expo_labels(b, names, lv, 2);
            dynbuf_printf(b, " %lld\n", (long long)value);
        }
    }
    pthread_mutex_unlock(&ks->registry_lock);
}

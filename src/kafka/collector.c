/*
 * collector.c - the Kafka input's self-metrics: assignment, broker state,
 * rebalances, commits, duplicates, claims, dead letters, and per partition
 * the lag and the applied and committed offsets.
 *
 * Threads: the scrape thread, as a metrics collector after the counters are
 * rendered. Locks: registry_lock while it reads the partitions, a
 * partition's dlq_lock inside it for the pending count.
 */
#include <stdio.h>
#include <string.h>

#include "kafka_internal.h"

static void render_counter(struct dynbuf *b, enum expo_format fmt, const char *base,
                           const char *help, uint64_t value)
{
    expo_family(b, fmt, base, "counter", help);
    dynbuf_printf(b, "%s_total", base);
    expo_value_u64(b, value);
}

void kafka_collect(struct dynbuf *b, enum expo_format fmt, void *ctx)
{
    struct kafka_source *ks = ctx;
    int assigned = atomic_load(&ks->assigned);
    int up = atomic_load(&ks->broker_up);
    expo_family(b, fmt, "ai_finops_kafka_assigned_partitions", "gauge",
                "Partitions assigned to this process's consumers.");
    dynbuf_append_str(b, "ai_finops_kafka_assigned_partitions");
    expo_value_u64(b, (uint64_t)(assigned < 0 ? 0 : assigned));
    expo_family(b, fmt, "ai_finops_kafka_broker_up", "gauge",
                "1 when a consumer is connected to a Kafka broker.");
    dynbuf_append_str(b, "ai_finops_kafka_broker_up");
    expo_value_u64(b, (uint64_t)up);
    render_counter(b, fmt, "ai_finops_kafka_rebalances", "Rebalance events (assign and revoke).",
                   atomic_load(&ks->rebalances));
    render_counter(b, fmt, "ai_finops_kafka_commits", "Successful offset commits.",
                   atomic_load(&ks->commits));
    render_counter(b, fmt, "ai_finops_kafka_commit_failures", "Failed offset commits.",
                   atomic_load(&ks->commit_failures));
    render_counter(b, fmt, "ai_finops_kafka_duplicates_skipped",
                   "Redelivered messages at or below the partition's applied offset, skipped.",
                   atomic_load(&ks->duplicates));
    render_counter(b, fmt, "ai_finops_kafka_claim_replayed",
                   "Re-read messages a previous owner had counted, added only to the series its "
                   "commit claim held (docs/delivery.md).",
                   atomic_load(&ks->replayed));
    render_counter(b, fmt, "ai_finops_kafka_claims_cut",
                   "Commit claims shortened to fit kafka.commit_metadata_max_bytes (a crash then "
                   "re-counts the events past the cut).",
                   atomic_load(&ks->ledger.claims_cut));
    render_counter(b, fmt, "ai_finops_dlq_produced", "Dead letters acknowledged by the broker.",
                   atomic_load(&ks->dlq_produced));
    render_counter(b, fmt, "ai_finops_dlq_failures",
                   "Dead letters that failed to send (retried; their offsets stay uncommitted).",
                   atomic_load(&ks->dlq_failures));

    pthread_mutex_lock(&ks->ledger.registry_lock);
    static const char *const names[] = {"topic", "partition"};
    const char *families[][2] = {
        {"ai_finops_kafka_consumer_lag", "Messages behind the partition's high watermark."},
        {"ai_finops_kafka_applied_offset", "Highest offset added to the counters."},
        {"ai_finops_kafka_committed_offset", "Next offset committed for the group."},
        {"ai_finops_dlq_pending", "Dead letters not yet acknowledged."},
    };
    for (int f = 0; f < 4; f++) {
        expo_family(b, fmt, families[f][0], "gauge", families[f][1]);
        for (size_t i = 0; i < ks->ledger.part_count; i++) {
            struct partition_state *p = ks->ledger.parts[i];
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
                value = atomic_load(&p->committed);
            } else {
                pthread_mutex_lock(&p->dlq_lock);
                value = (int64_t)p->dlq_count;
                pthread_mutex_unlock(&p->dlq_lock);
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
    pthread_mutex_unlock(&ks->ledger.registry_lock);
}

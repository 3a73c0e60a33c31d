/*
 * conf.c - the librdkafka configuration both clients share: our defaults,
 * then kafka.properties (each key only for the client type that reads it),
 * and librdkafka's log lines bridged into ours.
 *
 * Threads: kafka_base_conf and kafka_set_conf run on the main thread at
 * start; rdkafka_log runs on librdkafka's threads (log_write is
 * thread-safe). No locks of this module.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "kafka_internal.h"
#include "log.h"
#include "secret_ref.h"

int kafka_set_conf(rd_kafka_conf_t *conf, const char *key, const char *value, char *errbuf,
                   size_t errlen)
{
    char err[512];
    if (rd_kafka_conf_set(conf, key, value, err, sizeof(err)) == RD_KAFKA_CONF_OK)
        return 0;
    /* librdkafka quotes a value it rejects ("Invalid value \"...\""); the
     * value may be a password that came from the environment. */
    secret_ref_redact(err, value);
    snprintf(errbuf, errlen, "kafka property '%s': %s (fix kafka.properties in the config)", key,
             err);
    return -EINVAL;
}

static void rdkafka_log(const rd_kafka_t *rk, int level, const char *facility, const char *buf)
{
    (void)rk;
    /* syslog levels: 0-3 error, 4 warning, 5-6 info, 7 debug */
    enum log_level l = level <= 3   ? LOG_LEVEL_ERROR
                       : level == 4 ? LOG_LEVEL_WARN
                       : level <= 6 ? LOG_LEVEL_INFO
                                    : LOG_LEVEL_DEBUG;
    log_write(l, "librdkafka", "facility", facility, "detail", buf, NULL);
}

/* Our defaults first, so kafka.properties can override them. */
/*
 * kafka.properties go to both clients (the consumer and the dead-letter
 * producer) except keys only the other type reads, which librdkafka would
 * warn about at start (CONFWARN). Prefixes end in '.'.
 */
static bool property_applies(const char *key, rd_kafka_type_t type)
{
    static const char *const consumer_only[] = {"group.",
                                                "session.timeout.ms",
                                                "heartbeat.interval.ms",
                                                "partition.assignment.strategy",
                                                "auto.offset.reset",
                                                "enable.auto.commit",
                                                "auto.commit.interval.ms",
                                                "enable.auto.offset.store",
                                                "queued.",
                                                "fetch.",
                                                "max.poll.interval.ms",
                                                "max.partition.fetch.bytes",
                                                "isolation.level",
                                                "check.crcs",
                                                "enable.partition.eof",
                                                "coordinator.query.interval.ms",
                                                "consume.callback.max.messages",
                                                "offset.store.",
                                                NULL};
    static const char *const producer_only[] = {"acks",
                                                "request.required.acks",
                                                "linger.ms",
                                                "queue.buffering.",
                                                "batch.",
                                                "compression.",
                                                "message.timeout.ms",
                                                "delivery.timeout.ms",
                                                "enable.idempotence",
                                                "transactional.id",
                                                "transaction.timeout.ms",
                                                "retries",
                                                "message.send.max.retries",
                                                "retry.backoff.ms",
                                                "partitioner",
                                                "sticky.partitioning.linger.ms",
                                                "enable.gapless.guarantee",
                                                "request.timeout.ms",
                                                "message.copy.max.bytes",
                                                NULL};
    const char *const *other = type == RD_KAFKA_PRODUCER ? consumer_only : producer_only;
    for (size_t i = 0; other[i]; i++) {
        size_t n = strlen(other[i]);
        if (other[i][n - 1] == '.' ? strncmp(key, other[i], n) == 0 : strcmp(key, other[i]) == 0)
            return false;
    }
    return true;
}

rd_kafka_conf_t *kafka_base_conf(const struct exporter_config *cfg, rd_kafka_type_t type,
                                 const char *const *defaults, char *errbuf, size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, rdkafka_log);
    if (kafka_set_conf(conf, "bootstrap.servers", cfg->kafka_brokers, errbuf, errlen))
        goto fail;
    for (size_t i = 0; defaults && defaults[i]; i += 2)
        if (kafka_set_conf(conf, defaults[i], defaults[i + 1], errbuf, errlen))
            goto fail;
    for (size_t i = 0; i < cfg->kafka_properties.count; i++)
        if (property_applies(cfg->kafka_properties.keys[i], type) &&
            kafka_set_conf(conf, cfg->kafka_properties.keys[i], cfg->kafka_properties.values[i],
                           errbuf, errlen))
            goto fail;
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

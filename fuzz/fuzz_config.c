/*
 * fuzz_config.c - libFuzzer target for the YAML configuration loader, which
 * parses an operator-supplied file. Any input must give either success with
 * a config whose invariants hold, or -EINVAL with a message that starts
 * with "name:line:col:"; nothing may leak or crash. The input is loaded
 * twice so replacing already-loaded values is exercised too.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_loaded(const struct exporter_config *cfg, int rc, const char *err)
{
    unsigned line, col;

    if (rc == -EINVAL) {
        if (sscanf(err, "fuzz.yaml:%u:%u:", &line, &col) != 2 || line == 0 || col == 0)
            abort(); /* every error must say where */
        return;
    }
    if (rc != 0)
        abort();
    /* what the rest of the daemon relies on without checking */
    if (!cfg->web_listen_address || !cfg->web_telemetry_path || cfg->web_telemetry_path[0] != '/' ||
        !cfg->events_unattributed_label || !cfg->kafka_brokers || !cfg->kafka_group_id ||
        !cfg->kafka_dlq_topic || cfg->kafka_topics.count == 0 || cfg->events_max_cost_nanos <= 0)
        abort();
    /* the per-event caps the decoder and the counters' horizon rely on
     * (docs/events.md): every delta stays below 2^54 */
    if (cfg->events_max_tokens < 1 || cfg->events_max_tokens > (1LL << 53) ||
        cfg->events_max_gpu_seconds < 1 || cfg->events_max_gpu_seconds > 10000000000LL ||
        cfg->events_max_future_seconds < 1 || cfg->events_max_cost_nanos > (1LL << 54))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct exporter_config cfg;
    char err[1024] = "";
    int rc;

    config_init_defaults(&cfg);
    rc = config_load_buffer(&cfg, "fuzz.yaml", (const char *)data, size, err, sizeof err);
    check_loaded(&cfg, rc, err);
    rc = config_load_buffer(&cfg, "fuzz.yaml", (const char *)data, size, err, sizeof err);
    check_loaded(&cfg, rc, err);
    config_free(&cfg);
    return 0;
}

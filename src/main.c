/*
 * main.c - wires the modules together: config -> metrics registry -> ingest
 * -> event source (file/stdin or Kafka) -> HTTP server, then waits for
 * SIGTERM/SIGINT and shuts down in reverse order.
 *
 * Signals are blocked in every thread and taken synchronously here with
 * sigwait(), so no module needs async-signal-safe code.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "http_server.h"
#include "ingest.h"
#include "log.h"
#include "metrics.h"
#include "pricing.h"
#include "source.h"

static void render_prices(struct dynbuf *b, enum expo_format fmt, void *ctx)
{
    price_table_render(ctx, b, fmt);
}

/* The bundled tables, then the operator's file, which overrides them. */
static int load_prices(const struct exporter_config *cfg, struct price_table **prices, char *err,
                       size_t errlen)
{
    char llm[4096], gpu[4096];
    const char *dir = price_table_bundled_dir();
    snprintf(llm, sizeof(llm), "%s/llm.yaml", dir);
    snprintf(gpu, sizeof(gpu), "%s/gpu.yaml", dir);
    const char *paths[] = {llm, gpu, cfg->pricing_file};
    return price_table_load(prices, paths, cfg->pricing_file ? 3 : 2, err, errlen);
}

static bool source_ready(void *ctx)
{
    struct event_source *src = ctx;
    return src->ops->ready(src);
}

int main(int argc, char **argv)
{
    int exit_code = 1;
    char err[1024] = "";
    struct exporter_config cfg;
    enum config_action action;
    struct metrics *metrics = NULL;
    struct ingest *ingest = NULL;
    struct event_source *source = NULL;
    struct http_server *http = NULL;
    struct price_table *prices = NULL;

    config_init_defaults(&cfg);
    if (config_parse_args(&cfg, argc, argv, &action, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s: %s\n", argv[0], err);
        exit_code = 2;
        goto out;
    }
    switch (action) {
    case CONFIG_ACTION_HELP:
        config_print_help(stdout, argv[0]);
        exit_code = 0;
        goto out;
    case CONFIG_ACTION_VERSION:
        printf("ai-finops-exporter %s\n", FINOPS_VERSION);
        exit_code = 0;
        goto out;
    case CONFIG_ACTION_PRINT_DOCS:
        config_print_markdown(stdout);
        exit_code = 0;
        goto out;
    case CONFIG_ACTION_CHECK:
        if (load_prices(&cfg, &prices, err, sizeof(err)) != 0) {
            fprintf(stderr, "%s: %s\n", argv[0], err);
            exit_code = 2;
            goto out;
        }
        printf("configuration is valid\n");
        exit_code = 0;
        goto out;
    case CONFIG_ACTION_RUN:
        break;
    }
    log_setup(cfg.log_level, cfg.log_format);

    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &signals, NULL); /* inherited by every thread */
    signal(SIGPIPE, SIG_IGN);

    if (load_prices(&cfg, &prices, err, sizeof(err)) != 0) {
        log_error("cannot load the price tables", "error", err, NULL);
        exit_code = 2;
        goto out;
    }
    metrics = metrics_new(&cfg);
    ingest = metrics ? ingest_new(&cfg, metrics, prices) : NULL;
    if (!ingest || metrics_add_collector(metrics, render_prices, prices) ||
        http_server_add_metrics(metrics)) {
        log_error("out of memory creating the counter tables", NULL);
        goto out;
    }
    if (cfg.input)
        source = file_source_new(&cfg, ingest, metrics);
    else
        source = kafka_source_new(&cfg, ingest, metrics, err, sizeof(err));
    if (!source) {
        log_error("cannot create the event source", "error", err, NULL);
        exit_code = 2;
        goto out;
    }

    struct http_server_options web = {
        .listen_address = cfg.web_listen_address,
        .telemetry_path = cfg.web_telemetry_path,
        .max_connections = (unsigned)cfg.web_max_connections,
        .max_connections_per_ip = (unsigned)cfg.web_max_connections_per_ip,
        .connection_timeout_seconds = (unsigned)cfg.web_connection_timeout_seconds,
        .request_timeout_seconds = (unsigned)cfg.web_request_timeout_seconds,
        .metrics = metrics,
        .ready = source_ready,
        .ready_ctx = source,
    };
    if (http_server_start(&web, &http, err, sizeof(err)) != 0) {
        log_error("cannot start the HTTP server", "error", err, NULL);
        goto out;
    }
    char port[16];
    snprintf(port, sizeof(port), "%u", http_server_port(http));
    log_info("serving metrics", "address", cfg.web_listen_address, "port", port, "path",
             cfg.web_telemetry_path, NULL);

    if (source->ops->start(source, err, sizeof(err)) != 0) {
        log_error("cannot start the event source", "error", err, NULL);
        goto out;
    }

    int sig = 0;
    sigwait(&signals, &sig);
    log_info("shutting down", "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT", NULL);
    exit_code = 0;
out:
    /* Stop the source while still serving (the Kafka source's final
     * checkpoint is served until the end), then stop serving, then free. */
    if (source)
        source->ops->stop(source);
    http_server_stop(http);
    if (source)
        source->ops->destroy(source);
    ingest_free(ingest);
    metrics_free(metrics);
    price_table_free(prices);
    config_free(&cfg);
    return exit_code;
}

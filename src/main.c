/*
 * main.c - wires the modules together: config -> metrics registry -> ingest
 * -> event source (file/stdin or Kafka) -> HTTP server, then takes signals
 * until SIGTERM/SIGINT and shuts down in reverse order.
 *
 * Signals are blocked in every thread and taken synchronously here with
 * sigwait(), so no module needs async-signal-safe code:
 *   SIGHUP          re-reads the configuration (docs/configuration.md,
 *                   "Reloading"): log.level and log.format change live;
 *                   any other change is refused, key by key, and the
 *                   daemon keeps its running configuration and counters.
 *                   It also re-reads --web.config.file, which is besides
 *                   re-read when it or a certificate, key or client CA
 *                   file it names changes (stat checked once a second):
 *                   users and headers apply at once, TLS material to new
 *                   connections; a bad file, or turning TLS on or off, is
 *                   refused and the running one kept.
 *   SIGUSR1/SIGUSR2 logged and otherwise ignored.
 *   SIGTERM/SIGINT  stop: the source drains (the Kafka source's final
 *                   checkpoint is bounded by kafka.shutdown_timeout_ms),
 *                   then the server stops. A second SIGTERM/SIGINT, or the
 *                   shutdown outlasting that bound plus 5 s, exits at once
 *                   with status 3, said in the log.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cidr.h"
#include "config.h"
#include "dynbuf.h"
#include "expo.h"
#include "http_server.h"
#include "ingest.h"
#include "kafka/kafka_internal.h"
#include "log.h"
#include "metrics.h"
#include "pricing.h"
#include "source.h"
#include "web_config.h"

/* Exit status when a second signal or the shutdown deadline cuts the
 * shutdown short. */
#define EXIT_FORCED 3
/* What the shutdown may take beyond the source's own bound. */
#define SHUTDOWN_SLACK_MS 5000

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

/* --check-config: kafka.properties go through librdkafka itself, for the
 * consumer and for the checkpoint producer, as a start would apply them. */
static int check_kafka_properties(const struct exporter_config *cfg, char *err, size_t errlen)
{
    char msg[512];
    const rd_kafka_type_t types[] = {RD_KAFKA_CONSUMER, RD_KAFKA_PRODUCER};
    for (size_t i = 0; i < 2; i++) {
        rd_kafka_conf_t *conf = kafka_base_conf(cfg, types[i], NULL, msg, sizeof(msg));
        if (!conf) {
            snprintf(err, errlen, "%s", msg);
            return -EINVAL;
        }
        rd_kafka_conf_destroy(conf);
    }
    return 0;
}

/* After a failed listen: a privileged port as non-root is worth saying so,
 * whatever the server's own message guessed. */
static void explain_listen_failure(const char *listen_address)
{
    const char *colon = strrchr(listen_address, ':');
    long port = colon ? strtol(colon + 1, NULL, 10) : 0;
    if (port <= 0 || port >= 1024)
        return;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    int e = errno;
    close(fd);
    if (rc != 0 && e == EACCES)
        log_error("permission denied: ports below 1024 need root or CAP_NET_BIND_SERVICE",
                  "address", listen_address, "hint",
                  "listen on a port from 1024 up (the default is 9400), or grant the capability",
                  NULL);
}

/* ---- SIGHUP --------------------------------------------------------------- */

static atomic_uint_fast64_t reloads_ok, reloads_failed;
static atomic_int last_reload_ok = 1;

static void render_reloads(struct dynbuf *b, enum expo_format fmt, void *ctx)
{
    (void)ctx;
    expo_family(b, fmt, "ai_finops_config_last_reload_successful", "gauge",
                "1 when the last SIGHUP reload was applied (or none was asked for), 0 when it "
                "was refused.");
    dynbuf_append_str(b, "ai_finops_config_last_reload_successful");
    expo_value_u64(b, (uint64_t)atomic_load(&last_reload_ok));
    expo_family(b, fmt, "ai_finops_config_reloads", "counter", "SIGHUP reloads, by result.");
    dynbuf_append_str(b, "ai_finops_config_reloads_total{result=\"applied\"}");
    expo_value_u64(b, (uint64_t)atomic_load(&reloads_ok));
    dynbuf_append_str(b, "ai_finops_config_reloads_total{result=\"refused\"}");
    expo_value_u64(b, (uint64_t)atomic_load(&reloads_failed));
}

static void reload(struct exporter_config *cfg, int argc, char **argv)
{
    struct exporter_config fresh;
    enum config_action action;
    char err[1024] = "";
    const char *keys[64];
    log_info("SIGHUP: reloading the configuration", NULL);
    config_init_defaults(&fresh);
    bool ok = config_parse_args(&fresh, argc, argv, &action, err, sizeof(err)) == 0;
    if (!ok) {
        log_error("configuration reload refused: the configuration is not valid; keeping the "
                  "running configuration",
                  "error", err, NULL);
    } else {
        size_t n = config_diff(cfg, &fresh, keys, sizeof(keys) / sizeof(keys[0]));
        for (size_t i = 0; i < n; i++) {
            if (config_live_key(keys[i]))
                continue;
            ok = false;
            log_error("configuration reload refused: this key cannot change while running; "
                      "restart to apply it. Keeping the running configuration",
                      "key", keys[i], NULL);
        }
        if (ok) {
            for (size_t i = 0; i < n; i++)
                log_info("configuration reload: applying", "key", keys[i], NULL);
            cfg->log_level = fresh.log_level;
            cfg->log_format = fresh.log_format;
            log_setup(cfg->log_level, cfg->log_format);
            log_info("configuration reloaded", "changed", n ? "yes" : "nothing", NULL);
        }
    }
    atomic_fetch_add(ok ? &reloads_ok : &reloads_failed, 1);
    atomic_store(&last_reload_ok, ok ? 1 : 0);
    config_free(&fresh);
}

/* ---- --web.config.file ------------------------------------------------------- */

static atomic_uint_fast64_t web_reloads_ok, web_reloads_failed;

static void render_web_reloads(struct dynbuf *b, enum expo_format fmt, void *ctx)
{
    (void)ctx;
    expo_family(b, fmt, "ai_finops_web_config_reloads", "counter",
                "Reloads of --web.config.file (SIGHUP or a change of the file), by result.");
    dynbuf_append_str(b, "ai_finops_web_config_reloads_total{result=\"applied\"}");
    expo_value_u64(b, (uint64_t)atomic_load(&web_reloads_ok));
    dynbuf_append_str(b, "ai_finops_web_config_reloads_total{result=\"refused\"}");
    expo_value_u64(b, (uint64_t)atomic_load(&web_reloads_failed));
}

/* What identifies a version of the file: a rewrite in place changes the
 * mtime or size, a rename over it (editors, Kubernetes secret updates
 * through the ..data symlink) the inode. */
struct file_id {
    bool exists;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
};

static struct file_id file_id_of(const char *path)
{
    struct stat st;
    struct file_id id = {0};
    if (stat(path, &st) == 0)
        id = (struct file_id){true, st.st_dev, st.st_ino, st.st_size, st.st_mtim};
    return id;
}

static bool file_id_equal(const struct file_id *a, const struct file_id *b)
{
    return a->exists == b->exists && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

/* What a reload watches: the config file and the files the running config
 * read (certificate, key, client CA). A cert-manager renewal changes the
 * latter only. Main thread. */
struct web_watch {
    const char *path;           /* --web.config.file */
    struct web_config *running; /* our reference to the config being served */
    struct file_id ids[4];      /* path, then running's files, as last seen */
};

static void web_watch_ids(const struct web_watch *w, struct file_id *ids)
{
    ids[0] = file_id_of(w->path);
    for (size_t i = 0; i < web_config_file_count(w->running) && i < 3; i++)
        ids[i + 1] = file_id_of(web_config_file(w->running, i));
}

/* Whether any watched file changed since last seen; remembers what it saw.
 * Called BEFORE the reload reads the files, so a write that lands after
 * the read (the key after the certificate, in a rotation that rewrites
 * files in place) is a change the next poll sees and reloads again. */
static bool web_watch_changed(struct web_watch *w)
{
    struct file_id now[4] = {{0}};
    web_watch_ids(w, now);
    bool changed = false;
    for (size_t i = 0; i < 4; i++)
        changed |= !file_id_equal(&now[i], &w->ids[i]);
    memcpy(w->ids, now, sizeof(now));
    return changed;
}

/* Main thread. The error text names file:line:col and the key, never a
 * secret (web_config_load promises that); a certificate is named by its
 * expiry only. */
static void reload_web_config(struct http_server *http, struct web_watch *w, const char *why)
{
    struct web_config *wc = NULL;
    char err[1024] = "";
    int rc = web_config_load(w->path, &wc, err, sizeof(err));
    if (rc == 0)
        rc = http_server_set_web_config(http, wc, err, sizeof(err));
    if (rc != 0) {
        web_config_unref(wc);
        atomic_fetch_add(&web_reloads_failed, 1);
        log_error("web config reload refused; keeping the running one", "file", w->path, "trigger",
                  why, "error", err, NULL);
        return;
    }
    bool tls_changed = !web_config_tls_equal(w->running, wc);
    char not_after[32] = "";
    time_t t = (time_t)web_config_cert_not_after(wc);
    struct tm tm;
    if (t > 0 && gmtime_r(&t, &tm))
        strftime(not_after, sizeof(not_after), "%Y-%m-%dT%H:%M:%SZ", &tm);
    /* Watch the new config's files from now on. If they are other files
     * than before, their first ids are taken after the read: a change in
     * between waits for the next change or SIGHUP. */
    bool same_files = web_config_file_count(wc) == web_config_file_count(w->running);
    for (size_t i = 0; same_files && i < web_config_file_count(wc); i++)
        same_files = strcmp(web_config_file(wc, i), web_config_file(w->running, i)) == 0;
    web_config_unref(w->running);
    w->running = wc;
    if (!same_files) {
        struct file_id config_id = w->ids[0];
        memset(w->ids, 0, sizeof(w->ids));
        web_watch_ids(w, w->ids);
        w->ids[0] = config_id;
    }
    atomic_fetch_add(&web_reloads_ok, 1);
    log_info("web config reloaded", "file", w->path, "trigger", why, "tls",
             tls_changed ? "changed: new connections use it" : "unchanged",
             not_after[0] ? "certificate_not_after" : NULL, not_after, NULL);
}

/* ---- shutdown watchdog ---------------------------------------------------- */

struct watchdog {
    sigset_t stop_signals;
    int64_t limit_ms;
};

/* Runs once shutdown has begun: a second SIGTERM/SIGINT, or the shutdown
 * outlasting its bound, ends the process at once. */
static void *watchdog_main(void *arg)
{
    struct watchdog *w = arg;
    struct timespec limit = {.tv_sec = w->limit_ms / 1000,
                             .tv_nsec = (w->limit_ms % 1000) * 1000000};
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        int sig = sigtimedwait(&w->stop_signals, NULL, &limit);
        if (sig > 0) {
            log_error("second signal: stopping at once, without finishing the shutdown (no final "
                      "checkpoint)",
                      "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT", NULL);
            _exit(EXIT_FORCED);
        }
        if (errno == EAGAIN) {
            char ms[24];
            snprintf(ms, sizeof(ms), "%lld", (long long)w->limit_ms);
            log_error("shutdown did not finish in time: stopping at once", "limit_ms", ms, NULL);
            _exit(EXIT_FORCED);
        }
        /* EINTR: wait out what is left of the limit */
        clock_gettime(CLOCK_MONOTONIC, &now);
        int64_t left = w->limit_ms - ((int64_t)(now.tv_sec - start.tv_sec) * 1000 +
                                      (now.tv_nsec - start.tv_nsec) / 1000000);
        if (left < 0)
            left = 0;
        limit.tv_sec = left / 1000;
        limit.tv_nsec = (left % 1000) * 1000000;
    }
    return NULL;
}

static const char *signal_name(int sig)
{
    switch (sig) {
    case SIGTERM:
        return "SIGTERM";
    case SIGINT:
        return "SIGINT";
    case SIGHUP:
        return "SIGHUP";
    case SIGUSR1:
        return "SIGUSR1";
    case SIGUSR2:
        return "SIGUSR2";
    default:
        return "?";
    }
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
    struct web_config *web_cfg = NULL;
    struct cidr *scrapers = NULL; /* web.scrapers, parsed */
    struct web_watch web_watch = {0};

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
        if (load_prices(&cfg, &prices, err, sizeof(err)) != 0 ||
            (cfg.web_config_file &&
             web_config_load(cfg.web_config_file, &web_cfg, err, sizeof(err)) != 0) ||
            (cfg.input ? file_source_check(cfg.input, err, sizeof(err))
                       : check_kafka_properties(&cfg, err, sizeof(err))) != 0) {
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

    sigset_t signals, stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    signals = stop_signals;
    sigaddset(&signals, SIGHUP);
    sigaddset(&signals, SIGUSR1);
    sigaddset(&signals, SIGUSR2);
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
        http_server_add_metrics(metrics) || metrics_add_collector(metrics, render_reloads, NULL) ||
        (cfg.web_config_file && metrics_add_collector(metrics, render_web_reloads, NULL))) {
        log_error("out of memory creating the counter tables", NULL);
        goto out;
    }
    if (cfg.input)
        source = file_source_new(&cfg, ingest, metrics, err, sizeof(err));
    else
        source = kafka_source_new(&cfg, ingest, metrics, err, sizeof(err));
    if (!source) {
        log_error("cannot create the event source", "error", err, NULL);
        exit_code = 2;
        goto out;
    }

    if (cfg.web_config_file) {
        web_watch.path = cfg.web_config_file;
        web_watch_changed(&web_watch); /* the config file's id, before it is read */
        if (web_config_load(cfg.web_config_file, &web_cfg, err, sizeof(err)) != 0) {
            log_error("cannot load the web config", "error", err, NULL);
            exit_code = 2;
            goto out;
        }
        /* Its files' ids are taken just after the read: a renewal landing
         * in between is seen at the next change or SIGHUP. */
        web_watch.running = web_config_ref(web_cfg);
        struct file_id config_id = web_watch.ids[0];
        web_watch_ids(&web_watch, web_watch.ids);
        web_watch.ids[0] = config_id;
    }
    /* checked by config_parse_args: they parse */
    if (cfg.web_scrapers.count && !(scrapers = calloc(cfg.web_scrapers.count, sizeof(*scrapers)))) {
        log_error("out of memory", NULL);
        goto out;
    }
    for (size_t i = 0; i < cfg.web_scrapers.count; i++)
        if (cidr_parse(cfg.web_scrapers.items[i], &scrapers[i], err, sizeof(err)) != 0) {
            log_error("bad web.scrapers", "error", err, NULL);
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
        .scrapers = scrapers,
        .scrapers_count = cfg.web_scrapers.count,
        .scraper_connections = (unsigned)cfg.web_scraper_connections,
        .metrics = metrics,
        .ready = source_ready,
        .ready_ctx = source,
        .web = web_cfg,
    };
    if (http_server_start(&web, &http, err, sizeof(err)) != 0) {
        log_error("cannot start the HTTP server", "error", err, NULL);
        explain_listen_failure(cfg.web_listen_address);
        exit_code = 2;
        goto out;
    }
    char port[16];
    snprintf(port, sizeof(port), "%u", http_server_port(http));
    log_info("serving metrics", "address", cfg.web_listen_address, "port", port, "path",
             cfg.web_telemetry_path, "tls", web_config_tls(web_cfg) ? "yes" : "no", "basic_auth",
             web_config_user_count(web_cfg) ? "yes" : "no", NULL);

    if (source->ops->start(source, err, sizeof(err)) != 0) {
        log_error("cannot start the event source", "error", err, NULL);
        goto out;
    }

    int sig = 0;
    for (;;) {
        /* With a web config, wake once a second to look at its file. */
        struct timespec second = {1, 0};
        sig = cfg.web_config_file ? sigtimedwait(&signals, NULL, &second)
                                  : (sigwait(&signals, &sig) == 0 ? sig : -1);
        if (sig < 0) {
            if (cfg.web_config_file && errno == EAGAIN && web_watch_changed(&web_watch))
                reload_web_config(http, &web_watch, "file changed");
            continue;
        }
        if (sig == SIGTERM || sig == SIGINT)
            break;
        if (sig == SIGHUP) {
            reload(&cfg, argc, argv);
            if (cfg.web_config_file) {
                web_watch_changed(&web_watch);
                reload_web_config(http, &web_watch, "SIGHUP");
            }
        } else
            log_info("signal ignored", "signal", signal_name(sig), NULL);
    }
    static struct watchdog wd;
    wd.stop_signals = stop_signals;
    wd.limit_ms = (cfg.input ? 0 : cfg.kafka_shutdown_timeout_ms) + SHUTDOWN_SLACK_MS;
    char limit_text[24];
    snprintf(limit_text, sizeof(limit_text), "%lld", (long long)wd.limit_ms);
    log_info("shutting down; a second SIGTERM or SIGINT stops at once", "signal", signal_name(sig),
             "limit_ms", limit_text, NULL);
    pthread_t watchdog;
    if (pthread_create(&watchdog, NULL, watchdog_main, &wd) == 0)
        pthread_detach(watchdog);
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
    web_config_unref(web_cfg);
    free(scrapers);
    web_config_unref(web_watch.running);
    config_free(&cfg);
    return exit_code;
}

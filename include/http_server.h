/*
 * http_server.h - the HTTP endpoint (libmicrohttpd): /metrics, /healthz,
 * /readyz and an index page, GET and HEAD only.
 *
 * A small pool of polling threads (epoll) serves the connections, so a
 * probe never waits for a scrape; scrapes render one at a time.
 * Connection count, per-IP count and idle timeout are bounded. A scrape
 * is "completed" when its whole body was handed to the socket;
 * on_scrape_complete then runs (the Kafka source gates commits on it).
 * A HEAD on the telemetry path is not a scrape: no render, no hooks.
 *
 * Thread-safety: start/stop from the main thread. "The scrape thread"
 * elsewhere means whichever HTTP thread holds the server's scrape_lock:
 * the scrape callbacks and the render run there, one call at a time;
 * ready() may run concurrently with them. Lock order: scrape_lock, then
 * the Kafka source's freeze_lock, then its registry_lock.
 */
#ifndef AI_FINOPS_HTTP_SERVER_H
#define AI_FINOPS_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "metrics.h"

struct http_server;

struct http_server_options {
    const char *listen_address; /* ":9400", "127.0.0.1:9400", "[::1]:9400" */
    const char *telemetry_path;
    unsigned max_connections;
    unsigned max_connections_per_ip;
    unsigned connection_timeout_seconds;
    struct metrics *metrics;
    bool (*ready)(void *ctx); /* NULL: always ready */
    void *ready_ctx;
    /* Called on the scrape thread before a scrape renders (scrape_id is new
     * each time), during its render for each series shown for the first
     * time and when the render has read every counter (see struct
     * scrape_observer), and after it was sent completely.
     * viewer is the scraper's bit from metrics_viewer_for() (the "replica"
     * URL parameter). Any may be NULL. */
    void (*on_scrape_start)(void *ctx, uint64_t scrape_id, uint32_t viewer);
    void (*on_first_sight)(void *ctx, const struct first_sight *fs);
    void (*on_counters_read)(void *ctx);
    void (*on_scrape_complete)(void *ctx, uint64_t scrape_id, uint32_t viewer);
    void *scrape_ctx;
};

/* Binds and starts serving. Returns 0, or a negative errno with a message. */
int http_server_start(const struct http_server_options *options, struct http_server **out,
                      char *errbuf, size_t errlen);
/* The port actually bound (useful with port 0). */
unsigned http_server_port(const struct http_server *server);
void http_server_stop(struct http_server *server);

/* Splits "host:port" / ":port" / "[v6]:port". Returns 0 or -EINVAL. */
int parse_listen_address(const char *text, char *host, size_t hostlen, unsigned *port);

#endif

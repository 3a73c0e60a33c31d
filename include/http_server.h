/*
 * http_server.h - the HTTP endpoint (libmicrohttpd): /metrics, /healthz,
 * /readyz and an index page, GET and HEAD only.
 *
 * A small pool of polling threads (epoll) serves the connections, so a
 * probe never waits for a scrape; scrapes render one at a time. A scrape
 * only renders (metrics_render) and sends: what it shows depends on the
 * clock and the counters, never on who reads or whether the response
 * arrived. A HEAD on the telemetry path gets the headers without a render.
 * Connection count, per-IP count and idle timeout are bounded.
 *
 * Thread-safety: start/stop from the main thread. "The scrape thread"
 * elsewhere means whichever HTTP thread holds the server's scrape_lock:
 * renders run there, one at a time; ready() may run concurrently with
 * them. The scrape_lock is taken with no other lock held.
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

/*
 * http_server.h - the HTTP endpoint (libmicrohttpd): /metrics, /healthz,
 * /readyz and an index page, GET and HEAD only.
 *
 * A small pool of polling threads (epoll) serves the connections, so a
 * probe never waits for a scrape; renders run one at a time and scrapes
 * that wait together share one render (one copy in memory). A scrape
 * only renders (metrics_render) and sends: what it shows depends on the
 * clock and the counters, never on who reads or whether the response
 * arrived. A HEAD on the telemetry path gets the headers without a render.
 * Connection count, per-IP count, idle time and the time to send a whole
 * request are bounded; over a limit the oldest connection that has not
 * sent a whole request is closed, so a scraper is never shut out by
 * clients that hold sockets open; with web.scrapers, a share of the
 * connections is theirs alone. Request bodies are refused (413).
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

#include "cidr.h"
#include "metrics.h"
#include "web_config.h"

struct http_server;

struct http_server_options {
    const char *listen_address; /* ":9400", "127.0.0.1:9400", "[::1]:9400" */
    const char *telemetry_path;
    unsigned max_connections;
    unsigned max_connections_per_ip;
    unsigned connection_timeout_seconds; /* idle limit while a response is sent */
    /* Whole-request deadline: from accept (or the end of the previous
     * request) until the request is complete. 0: 3 s. */
    unsigned request_timeout_seconds;
    /* web.scrapers: connections from these ranges (the server copies
     * them) may use scraper_connections slots that no one else may take,
     * and are never closed to make room for another client. 0 ranges: no
     * reservation. scraper_connections < max_connections. */
    const struct cidr *scrapers;
    size_t scrapers_count;
    unsigned scraper_connections;
    struct metrics *metrics;
    bool (*ready)(void *ctx); /* NULL: always ready */
    void *ready_ctx;
    /* --web.config.file (NULL: plain HTTP, no auth). The server takes its
     * own reference. With TLS, MHD serves HTTPS through GnuTLS. */
    struct web_config *web;
};

/* Binds and starts serving. Returns 0, or a negative errno with a message. */
int http_server_start(const struct http_server_options *options, struct http_server **out,
                      char *errbuf, size_t errlen);
/* The port actually bound (useful with port 0). */
unsigned http_server_port(const struct http_server *server);
void http_server_stop(struct http_server *server);

/* A reload of the web config: users and headers apply to the next request,
 * TLS settings (certificate, key, client CA, versions, client auth) to the
 * next connection; established connections keep what their handshake
 * used (the server takes its own reference). Turning TLS on or off is
 * refused (-EPERM, with a message): that needs a restart. Thread-safe. */
int http_server_set_web_config(struct http_server *server, struct web_config *wc, char *errbuf,
                               size_t errlen);

/* Adds ai_finops_http_refused_total{reason}, the render counters and,
 * under TLS, the served certificate's expiry to m's scrapes (process-wide
 * values). Main thread, before serving. */
int http_server_add_metrics(struct metrics *m);
/* A refusal count by reason name (tests). Thread-safe. */
uint64_t http_server_refused(const char *reason);

/* Connections whose request is being answered (tests). Thread-safe. */
unsigned http_server_busy(struct http_server *server);

/* Splits "host:port" / ":port" / "[v6]:port". Returns 0 or -EINVAL. */
int parse_listen_address(const char *text, char *host, size_t hostlen, unsigned *port);

#endif

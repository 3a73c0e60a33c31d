/*
 * http_server.c - libmicrohttpd front end (see http_server.h).
 *
 * Each /metrics request renders into a fresh buffer sized from the previous
 * scrape (one allocation, handed to MHD to free), optionally gzips it, and
 * is answered with the negotiated Content-Type.
 * Thread-safety: handlers run on MHD's pool of polling threads; scrapes
 * serialize on scrape_lock, probes take no lock.
 */
#include "http_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "log.h"

#define RENDER_MAX_BYTES (512u * 1024 * 1024)
/* Threads serving connections: one may wait on a stuck scrape while the
 * others answer probes. */
#define HTTP_THREADS 4

struct http_server {
    struct http_server_options options;
    struct MHD_Daemon *daemon;
    /* Serializes scrapes (their render). Probes never take it. Guards
     * last_render_size. */
    pthread_mutex_t scrape_lock;
    size_t last_render_size;
    char *telemetry_path;
    unsigned port;
};

/* MHD's per-request pointer before a request is answered: set on the
 * first call (headers only), so the next call answers. */
static char request_seen;

int parse_listen_address(const char *text, char *host, size_t hostlen, unsigned *port)
{
    const char *colon;
    size_t hlen;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close || close[1] != ':')
            return -EINVAL;
        colon = close + 1;
        hlen = (size_t)(close - text - 1);
        text++;
    } else {
        colon = strrchr(text, ':');
        if (!colon)
            return -EINVAL;
        hlen = (size_t)(colon - text);
    }
    if (hlen >= hostlen)
        return -EINVAL;
    memcpy(host, text, hlen);
    host[hlen] = '\0';
    char *end;
    errno = 0;
    unsigned long p = strtoul(colon + 1, &end, 10);
    if (errno || *end || end == colon + 1 || p > 65535)
        return -EINVAL;
    *port = (unsigned)p;
    return 0;
}

static bool accepts_gzip(struct MHD_Connection *c)
{
    const char *ae = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Accept-Encoding");
    if (!ae)
        return false;
    const char *g = strstr(ae, "gzip");
    if (!g)
        return false;
    const char *end = strchr(g, ',');
    const char *q = strstr(g, "q=0");
    /* "gzip;q=0" (and q=0.0) refuses gzip; "q=0.5" does not. */
    if (q && (!end || q < end)) {
        const char *d = q + 3;
        if (*d == '\0' || *d == ',' || *d == ' ' || *d == ';' ||
            (d[0] == '.' && strspn(d + 1, "0") == strcspn(d + 1, ", ;")))
            return false;
    }
    return true;
}

static int gzip_buffer(const char *in, size_t len, char **out, size_t *out_len)
{
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    /* Level 1: a scrape is latency-bound, and 1 already shrinks the
     * repetitive exposition text by roughly 10x. */
    if (deflateInit2(&zs, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return -ENOMEM;
    size_t cap = deflateBound(&zs, len);
    char *buf = malloc(cap);
    if (!buf) {
        deflateEnd(&zs);
        return -ENOMEM;
    }
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)len;
    zs.next_out = (Bytef *)buf;
    zs.avail_out = (uInt)cap;
    int rc = deflate(&zs, Z_FINISH);
    deflateEnd(&zs);
    if (rc != Z_STREAM_END) {
        free(buf);
        return -EIO;
    }
    *out = buf;
    *out_len = cap - zs.avail_out;
    return 0;
}

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, const char *type,
                                 const char *body)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

/* A HEAD gets a scrape's headers without its render: no work for a client
 * that reads no body. */
static enum MHD_Result serve_metrics_head(struct MHD_Connection *c, enum expo_format fmt)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            fmt == EXPO_OPENMETRICS ? EXPO_OPENMETRICS_CONTENT_TYPE
                                                    : EXPO_TEXT_CONTENT_TYPE);
    MHD_add_response_header(r, MHD_HTTP_HEADER_VARY, "Accept, Accept-Encoding");
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

/* Takes scrape_lock, giving up after the connection timeout: a scrape stuck
 * behind another is answered 503 rather than holding a thread for ever. */
static bool lock_scrapes(struct http_server *s)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec +=
        (time_t)(s->options.connection_timeout_seconds ? s->options.connection_timeout_seconds
                                                       : 10);
    return pthread_mutex_timedlock(&s->scrape_lock, &deadline) == 0;
}

static enum MHD_Result serve_metrics_locked(struct http_server *s, struct MHD_Connection *c,
                                            enum expo_format fmt);

static enum MHD_Result serve_metrics(struct http_server *s, struct MHD_Connection *c, bool head)
{
    const char *accept = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Accept");
    enum expo_format fmt = expo_negotiate(accept);
    if (head)
        return serve_metrics_head(c, fmt);
    if (!lock_scrapes(s)) {
        log_warn("scrape refused", "error", "another scrape is still rendering", NULL);
        return send_text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain; charset=utf-8",
                         "another scrape is still rendering; try again\n");
    }
    enum MHD_Result ret = serve_metrics_locked(s, c, fmt);
    pthread_mutex_unlock(&s->scrape_lock);
    return ret;
}

/* Caller holds scrape_lock. */
static enum MHD_Result serve_metrics_locked(struct http_server *s, struct MHD_Connection *c,
                                            enum expo_format fmt)
{
    struct dynbuf b;
    dynbuf_init(&b, RENDER_MAX_BYTES);
    dynbuf_reserve(&b, s->last_render_size + s->last_render_size / 8);
    if (metrics_render(s->options.metrics, fmt, &b) != 0) {
        /* dynbuf reports both the same way: the cap, or realloc failing */
        dynbuf_free(&b);
        log_error("scrape render failed", "error", "out of memory or render size cap reached",
                  NULL);
        return send_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "text/plain; charset=utf-8",
                         "render failed: out of memory or output exceeded the size cap\n");
    }
    s->last_render_size = b.len;
    size_t len;
    char *body = dynbuf_take(&b, &len);
    bool gz = accepts_gzip(c);
    if (gz) {
        char *zbody;
        size_t zlen;
        if (gzip_buffer(body, len, &zbody, &zlen) == 0) {
            free(body);
            body = zbody;
            len = zlen;
        } else {
            gz = false;
        }
    }
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, body ? body : (void *)"", MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            fmt == EXPO_OPENMETRICS ? EXPO_OPENMETRICS_CONTENT_TYPE
                                                    : EXPO_TEXT_CONTENT_TYPE);
    MHD_add_response_header(r, MHD_HTTP_HEADER_VARY, "Accept, Accept-Encoding");
    if (gz)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_ENCODING, "gzip");
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

static const char index_page[] =
    "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>ai-finops-exporter</title>"
    "</head>\n<body><h1>ai-finops-exporter</h1>\n<p>Real-time AI cost counters for "
    "Prometheus.</p>\n<ul>\n<li><a href=\"%s\">metrics</a></li>\n"
    "<li><a href=\"/healthz\">healthz</a></li>\n<li><a href=\"/readyz\">readyz</a></li>\n"
    "</ul></body></html>\n";

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **req_cls)
{
    struct http_server *s = cls;
    (void)version;
    (void)upload;
    if (!*req_cls) {
        /* First call: headers only. Answer on the next call so a request
         * body (for non-GET methods) is drained first. */
        *req_cls = &request_seen;
        return MHD_YES;
    }
    if (*upload_size) {
        *upload_size = 0; /* discard bodies: no endpoint takes one */
        return MHD_YES;
    }
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return send_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain; charset=utf-8",
                         "method not allowed: use GET or HEAD\n");
    if (strcmp(url, s->telemetry_path) == 0)
        return serve_metrics(s, c, strcmp(method, MHD_HTTP_METHOD_HEAD) == 0);
    if (strcmp(url, "/healthz") == 0)
        return send_text(c, MHD_HTTP_OK, "text/plain; charset=utf-8", "ok\n");
    if (strcmp(url, "/readyz") == 0) {
        bool ready = !s->options.ready || s->options.ready(s->options.ready_ctx);
        return send_text(c, ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
                         "text/plain; charset=utf-8", ready ? "ready\n" : "not ready\n");
    }
    if (strcmp(url, "/") == 0) {
        char page[sizeof(index_page) + 256];
        snprintf(page, sizeof(page), index_page, s->telemetry_path);
        struct MHD_Response *r =
            MHD_create_response_from_buffer(strlen(page), page, MHD_RESPMEM_MUST_COPY);
        if (!r)
            return MHD_NO;
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/html; charset=utf-8");
        enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
        MHD_destroy_response(r);
        return ret;
    }
    return send_text(c, MHD_HTTP_NOT_FOUND, "text/plain; charset=utf-8", "not found\n");
}

/* MHD hands us its own printf-style format: tell clang it is one. */
static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n')
        msg[--n] = '\0';
    log_warn("http", "detail", msg, NULL);
}

int http_server_start(const struct http_server_options *o, struct http_server **out, char *errbuf,
                      size_t errlen)
{
    int rc = 0;
    char host[128];
    unsigned port;
    struct sockaddr_in6 sa6;
    struct sockaddr_in sa4;
    struct sockaddr *sa = NULL;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG;

    struct http_server *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    if (pthread_mutex_init(&s->scrape_lock, NULL) != 0) {
        free(s);
        return -ENOMEM;
    }
    s->options = *o;
    s->telemetry_path = strdup(o->telemetry_path);
    if (!s->telemetry_path) {
        rc = -ENOMEM;
        goto fail;
    }
    if (parse_listen_address(o->listen_address, host, sizeof(host), &port)) {
        snprintf(errbuf, errlen, "invalid listen address '%s': use HOST:PORT, :PORT or [IPV6]:PORT",
                 o->listen_address);
        rc = -EINVAL;
        goto fail;
    }
    memset(&sa4, 0, sizeof(sa4));
    memset(&sa6, 0, sizeof(sa6));
    if (host[0] == '\0') {
        flags |= MHD_USE_DUAL_STACK;
    } else if (inet_pton(AF_INET, host, &sa4.sin_addr) == 1) {
        sa4.sin_family = AF_INET;
        sa4.sin_port = htons((uint16_t)port);
        sa = (struct sockaddr *)&sa4;
    } else if (inet_pton(AF_INET6, host, &sa6.sin6_addr) == 1) {
        sa6.sin6_family = AF_INET6;
        sa6.sin6_port = htons((uint16_t)port);
        sa = (struct sockaddr *)&sa6;
        flags |= MHD_USE_IPv6;
    } else if (strcmp(host, "localhost") == 0) {
        sa4.sin_family = AF_INET;
        sa4.sin_port = htons((uint16_t)port);
        sa4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        sa = (struct sockaddr *)&sa4;
    } else {
        snprintf(errbuf, errlen, "listen address '%s': host must be an IP address or localhost",
                 o->listen_address);
        rc = -EINVAL;
        goto fail;
    }
    /* MHD splits the connection limit over the pool: each thread needs one. */
    unsigned pool_size =
        o->max_connections < HTTP_THREADS ? (unsigned)o->max_connections : (unsigned)HTTP_THREADS;
    if (pool_size < 1)
        pool_size = 1;
    /* The logger first: MHD reports problems with later options through it. */
    s->daemon =
        MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, handle, s, MHD_OPTION_EXTERNAL_LOGGER,
                         mhd_log, NULL, MHD_OPTION_CONNECTION_LIMIT, (unsigned)o->max_connections,
                         MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)o->max_connections_per_ip,
                         MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)o->connection_timeout_seconds,
                         MHD_OPTION_THREAD_POOL_SIZE, pool_size,
                         sa ? MHD_OPTION_SOCK_ADDR : MHD_OPTION_END, sa, MHD_OPTION_END);
    if (!s->daemon) {
        snprintf(errbuf, errlen,
                 "cannot listen on %s: the address may be in use or not local "
                 "(set --web.listen-address)",
                 o->listen_address);
        rc = -EADDRINUSE;
        goto fail;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : port;
    *out = s;
    return 0;
fail:
    free(s->telemetry_path);
    pthread_mutex_destroy(&s->scrape_lock);
    free(s);
    return rc;
}

unsigned http_server_port(const struct http_server *s)
{
    return s->port;
}

void http_server_stop(struct http_server *s)
{
    if (!s)
        return;
    MHD_stop_daemon(s->daemon);
    free(s->telemetry_path);
    pthread_mutex_destroy(&s->scrape_lock);
    free(s);
}

/*
 * http_server.c - libmicrohttpd front end (see http_server.h).
 *
 * Against starvation (issue 14): MHD accepts up to a hard limit a little
 * above web.max_connections and our own table of connections decides. A
 * connection is "waiting" from accept (or the end of its previous request)
 * until its request is complete, then "busy" until answered. A newcomer
 * over web.max_connections (or over the per-IP limit) closes the oldest
 * waiting connection (of that IP) instead of being refused, and a watchdog
 * closes any connection waiting longer than web.request_timeout_seconds:
 * slow headers and idle sockets cost the attacker, never a scraper whose
 * request arrives whole within milliseconds (one whose request already sits
 * unread in its socket is never chosen). With no such connection, the one
 * answered for longest (longer than the request deadline: a client not
 * reading) goes; only then is the newcomer refused. With web.scrapers, the
 * connections from those ranges are counted apart: the others may hold at
 * most max_connections - scraper_connections, a newcomer over that closes
 * one of the others (never a scraper), and a scraper over the whole limit
 * closes one of the others first ("scraper_reserve"), one of the scrapers
 * only when no other client's connection can go. Requests with a body get 413 at
 * once, unread. Renders are shared: each is one refcounted MHD response,
 * queued on every scrape that arrived before it started, and at most
 * RENDERS_LIVE_MAX live at once (readers still holding the oldest are
 * closed). Refusals are counted in ai_finops_http_refused_total{reason} and
 * logged at most once per 20 s, with counts.
 * Thread-safety: handlers and notifiers run on MHD's pool of polling
 * threads, the watchdog on its own. Lock order: scrape_lock, then conn_lock
 * or render_lock (never those two together); stats.log_lock is a leaf.
 */
#define _GNU_SOURCE /* F_DUPFD_CLOEXEC */
#include "http_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <linux/tcp.h> /* struct tcp_info with tcpi_bytes_acked */
#include <stddef.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "counter_table.h"
#include "expo.h"
#include "log.h"
#include "web_config.h"

#define RENDER_MAX_BYTES (512u * 1024 * 1024)
/* Threads serving connections: one may wait on a stuck scrape while the
 * others answer probes. */
#define HTTP_THREADS 4
/* Renders alive at once (cached or still being sent): one per variant in
 * use (format x gzip) plus old ones held by slow readers. Past this the
 * readers of the oldest are closed, so N slow readers hold at most this
 * many copies, not N. */
#define RENDERS_LIVE_MAX      4
#define REFUSAL_LOG_PERIOD_MS 20000
#define WATCHDOG_PERIOD_MS    200

enum refusal {
    REFUSED_CONNECTION_LIMIT,
    REFUSED_PER_IP_LIMIT,
    REFUSED_REQUEST_TIMEOUT,
    REFUSED_REQUEST_BODY,
    REFUSED_SLOW_READER,
    REFUSED_SCRAPE_BUSY,
    REFUSED_UNAUTHORIZED,
    REFUSED_AUTH_BUSY,
    REFUSED_CLIENT_CERT,
    REFUSED_SCRAPER_RESERVE, /* another client's connection closed for a scraper */
    REFUSED_COUNT
};
static const char *const refusal_names[REFUSED_COUNT] = {
    "connection_limit", "per_ip_limit", "request_timeout", "request_body", "slow_reader",
    "scrape_busy",      "unauthorized", "auth_busy",       "client_cert",  "scraper_reserve"};

/* Process-wide (one server per process): the collector reads them. */
static struct {
    _Atomic uint64_t refused[REFUSED_COUNT];
    _Atomic uint64_t renders, shared;
    _Atomic int64_t next_log_ms;
    _Atomic int64_t cert_not_after; /* of the current web config; 0 without TLS */
    uint64_t logged[REFUSED_COUNT]; /* counts at the last log line; under log_lock */
    pthread_mutex_t log_lock;
} stats = {.log_lock = PTHREAD_MUTEX_INITIALIZER};
_Static_assert(2 * REFUSED_COUNT <= 20, "refuse() passes 20 key/value slots to log_warn");

struct conn {
    struct conn *prev, *next;
    int fd;       /* our dup: shutdown() on it can never hit a reused number */
    int mhd_fd;   /* MHD's own, to find the connection from its TLS session */
    bool hello;   /* TLS: a whole ClientHello arrived (GnuTLS parsed it) */
    bool scraper; /* from a web.scrapers range */
    unsigned char ip[16];
    int64_t wait_start_ms; /* waiting since (accept or end of last request) */
    int64_t busy_since_ms; /* answering since */
    uint64_t gen;          /* render being sent, 0 none */
    bool busy;             /* a complete request is being answered */
    bool closing;          /* we shut it down; MHD will close it */
    bool untracked;        /* no descriptor to spare: not in the list, never a victim */
    /* TLS: the web config whose credentials this connection's handshake
     * used, held until MHD has deinitialized the session (GnuTLS points
     * into it); its client auth mode also decides client_cert_ok. */
    struct web_config *web;
};

struct render {
    struct http_server *server;
    struct render *prev, *next; /* live list, oldest first */
    uint64_t gen;
    char *body;
};

/* A /metrics GET: kept across suspensions while it waits for a render. */
struct scrape_req {
    struct scrape_req *next; /* waiters list */
    struct MHD_Connection *connection;
    int64_t arrival_ns;
};

struct cached {
    struct MHD_Response *response; /* holds one reference */
    uint64_t gen;
    int64_t start_ns;
};

struct http_server {
    struct http_server_options options;
    struct MHD_Daemon *daemon;
    /* Serializes renders. Guards last_render_size, cache, next_gen. */
    pthread_mutex_t scrape_lock;
    size_t last_render_size;
    struct cached cache[2][2]; /* [openmetrics][gzip] */
    uint64_t next_gen;
    /* Guards the connection list, nconns and each conn's fields. */
    pthread_mutex_t conn_lock;
    struct conn *conns_head, *conns_tail; /* oldest first */
    unsigned nconns;                      /* not counting those closing */
    unsigned nscraper_conns;              /* of those, from web.scrapers */
    /* web.scrapers (our copy; read-only after start) and their share. */
    struct cidr *scrapers;
    size_t nscrapers;
    unsigned others_max; /* max_connections - scraper_connections */
    /* Guards the live render list. */
    pthread_mutex_t render_lock;
    struct render *live_head, *live_tail;
    unsigned nlive;
    /* Scrapes suspended while another renders; resumed when it is done.
     * Taken before (try-)locking scrape_lock. */
    pthread_mutex_t waiters_lock;
    struct scrape_req *waiters;
    _Atomic bool shutting_down;
    pthread_t watchdog;
    pthread_mutex_t stop_lock;
    pthread_cond_t stop_cond;
    bool stopping, watchdog_started;
    char *telemetry_path;
    unsigned port;
    /* --web.config.file: swapped by reloads under web_lock (a leaf lock);
     * each request, and each TLS connection, takes its own reference. tls
     * (whether the listener speaks TLS) never changes; the TLS material
     * does, for connections accepted after the swap. web_start: the one
     * MHD was started with (it owns MHD's startup credentials, which every
     * session has until notify_connection replaces them). */
    pthread_mutex_t web_lock;
    struct web_config *web, *web_start;
    bool tls;
};

/* MHD's per-request pointer once a request is answered. */
static char request_seen;

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t mono_ms(void)
{
    return mono_ns() / 1000000;
}

/* Counts refusals; logs at most one line per period, with the counts since
 * the previous line. Thread-safe. */
static void refuse(enum refusal why, uint64_t n)
{
    atomic_fetch_add_explicit(&stats.refused[why], n, memory_order_relaxed);
    int64_t now = mono_ms();
    int64_t next = atomic_load_explicit(&stats.next_log_ms, memory_order_relaxed);
    if (now < next ||
        !atomic_compare_exchange_strong(&stats.next_log_ms, &next, now + REFUSAL_LOG_PERIOD_MS))
        return;
    char counts[REFUSED_COUNT][24];
    const char *kv[2 * REFUSED_COUNT];
    size_t k = 0;
    pthread_mutex_lock(&stats.log_lock);
    for (int i = 0; i < REFUSED_COUNT; i++) {
        uint64_t v = atomic_load_explicit(&stats.refused[i], memory_order_relaxed);
        if (v == stats.logged[i])
            continue;
        snprintf(counts[i], sizeof(counts[i]), "%llu", (unsigned long long)(v - stats.logged[i]));
        stats.logged[i] = v;
        kv[k++] = refusal_names[i];
        kv[k++] = counts[i];
    }
    pthread_mutex_unlock(&stats.log_lock);
    while (k < 2 * REFUSED_COUNT)
        kv[k++] = NULL;
    log_warn("http refusals to protect scrapes (counts since the last such line, at most one "
             "line per 20 s; all in ai_finops_http_refused_total)",
             kv[0], kv[1], kv[2], kv[3], kv[4], kv[5], kv[6], kv[7], kv[8], kv[9], kv[10], kv[11],
             kv[12], kv[13], kv[14], kv[15], kv[16], kv[17], kv[18], kv[19], NULL);
}

static void collect(struct dynbuf *b, enum expo_format fmt, void *ctx)
{
    (void)ctx;
    static const char *const names[] = {"reason", NULL};
    expo_family(b, fmt, "ai_finops_http_refused", "counter",
                "HTTP connections or requests refused or closed to keep scrapes served, by "
                "reason.");
    for (int i = 0; i < REFUSED_COUNT; i++) {
        struct label_value v = {refusal_names[i], (uint32_t)strlen(refusal_names[i])};
        dynbuf_append_str(b, "ai_finops_http_refused_total");
        expo_labels(b, names, &v, 1);
        expo_value_u64(b, atomic_load_explicit(&stats.refused[i], memory_order_relaxed));
    }
    expo_family(b, fmt, "ai_finops_http_renders", "counter",
                "Renders of the metrics page (scrapes waiting together share one).");
    dynbuf_append_str(b, "ai_finops_http_renders_total");
    expo_value_u64(b, atomic_load_explicit(&stats.renders, memory_order_relaxed));
    expo_family(b, fmt, "ai_finops_http_shared_responses", "counter",
                "Scrapes answered with a render made for a concurrent scrape.");
    dynbuf_append_str(b, "ai_finops_http_shared_responses_total");
    expo_value_u64(b, atomic_load_explicit(&stats.shared, memory_order_relaxed));
    int64_t not_after = atomic_load_explicit(&stats.cert_not_after, memory_order_relaxed);
    if (not_after > 0) {
        expo_family(b, fmt, "ai_finops_web_tls_certificate_expiry_timestamp_seconds", "gauge",
                    "notAfter of the TLS certificate served to new connections (Unix seconds); "
                    "changes when a reload of --web.config.file installs a renewed one.");
        dynbuf_append_str(b, "ai_finops_web_tls_certificate_expiry_timestamp_seconds");
        expo_value_u64(b, (uint64_t)not_after);
    }
}

int http_server_add_metrics(struct metrics *m)
{
    return metrics_add_collector(m, collect, NULL);
}

uint64_t http_server_refused(const char *reason)
{
    for (int i = 0; i < REFUSED_COUNT; i++)
        if (strcmp(reason, refusal_names[i]) == 0)
            return atomic_load_explicit(&stats.refused[i], memory_order_relaxed);
    return 0;
}

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

/* The current web config, with a reference the caller drops. */
static struct web_config *web_get(struct http_server *s)
{
    pthread_mutex_lock(&s->web_lock);
    struct web_config *wc = web_config_ref(s->web);
    pthread_mutex_unlock(&s->web_lock);
    return wc;
}

/* http_server_config.headers of the current web config. */
static void add_web_headers(struct http_server *s, struct MHD_Response *r)
{
    struct web_config *wc = web_get(s);
    for (size_t i = 0; i < web_config_header_count(wc); i++) {
        const char *name, *value;
        web_config_header(wc, i, &name, &value);
        MHD_add_response_header(r, name, value);
    }
    web_config_unref(wc);
}

static enum MHD_Result send_text_hdr(struct http_server *s, struct MHD_Connection *c,
                                     unsigned status, const char *type, const char *body,
                                     const char *hname, const char *hvalue)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (hname)
        MHD_add_response_header(r, hname, hvalue);
    if (s)
        add_web_headers(s, r);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_text(struct http_server *s, struct MHD_Connection *c, unsigned status,
                                 const char *type, const char *body)
{
    bool allow = status == MHD_HTTP_METHOD_NOT_ALLOWED;
    return send_text_hdr(s, c, status, type, body, allow ? MHD_HTTP_HEADER_ALLOW : NULL,
                         allow ? "GET, HEAD" : NULL);
}

/* A HEAD gets a scrape's headers without its render: no work for a client
 * that reads no body. */
static enum MHD_Result serve_metrics_head(struct http_server *s, struct MHD_Connection *c,
                                          enum expo_format fmt)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            fmt == EXPO_OPENMETRICS ? EXPO_OPENMETRICS_CONTENT_TYPE
                                                    : EXPO_TEXT_CONTENT_TYPE);
    MHD_add_response_header(r, MHD_HTTP_HEADER_VARY, "Accept, Accept-Encoding");
    add_web_headers(s, r);
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

/* ---- connection table ---------------------------------------------------- */

/* Shuts c down (MHD then closes it) and takes it out of the counts.
 * Caller holds conn_lock. */
static void cut(struct http_server *s, struct conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    shutdown(c->fd, SHUT_RDWR);
    s->nconns--;
    s->nscraper_conns -= c->scraper;
}

/* Which connections a victim may be taken from. */
enum scope { SCOPE_ANY, SCOPE_OTHERS, SCOPE_SCRAPERS };

static bool in_scope(const struct conn *c, enum scope scope)
{
    return scope == SCOPE_ANY || c->scraper == (scope == SCOPE_SCRAPERS);
}

/* Whether a whole request head already sits in the socket, unread by MHD:
 * a scraper whose request MHD is about to parse, never a victim. Under TLS
 * the bytes are encrypted, so the test is one level down: a whole TLS
 * record (handshake or application data) sits unread. A client sends its
 * ClientHello, and then its request, as whole records in one write; a slow
 * client leaves a partial record or nothing (MHD has already read and
 * buffered what came), so it stays a victim as in plain HTTP. */
static bool request_pending(const struct http_server *s, const struct conn *c)
{
    unsigned char buf[4096];
    ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT);
    if (!s->tls)
        return n >= 4 && memmem(buf, (size_t)n, "\r\n\r\n", 4) != NULL;
    if (n < 5 || (buf[0] != 22 && buf[0] != 23) || buf[1] != 3)
        return false;
    size_t record = 5 + ((size_t)buf[3] << 8 | buf[4]);
    /* a record longer than the peek: a full buffer of it is as good */
    return (size_t)n >= record || (size_t)n == sizeof(buf);
}

/* How long a waiting TLS connection has gone without progress, in ms:
 * the most expendable has the highest. Before a whole ClientHello (a
 * partial one is no progress), its age; after, the time since its peer
 * last sent anything (TCP_INFO's last_data_recv). A scraper that just
 * connected, or is between two flights of its handshake, scores a few ms;
 * a stalled or trickling client, up to the request deadline. Caller holds
 * conn_lock. */
static int64_t tls_stalled_ms(const struct conn *c, int64_t now_ms)
{
    if (!c->hello)
        return now_ms - c->wait_start_ms;
    struct tcp_info ti;
    socklen_t len = sizeof(ti);
    if (getsockopt(c->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 &&
        len >= offsetof(struct tcp_info, tcpi_last_data_recv) + sizeof(ti.tcpi_last_data_recv))
        return ti.tcpi_last_data_recv;
    return now_ms - c->wait_start_ms;
}

/* The connection to close for a newcomer: a waiting one (of ip when given)
 * whose request is not already in its socket, or NULL. Plain HTTP: the
 * oldest, since a scraper's request arrives whole within a round trip.
 * TLS: the handshake takes round trips and a server signature, and under
 * a stream of reconnecting attackers the oldest-first rule reached
 * scrapers mid-handshake (test_web_config.py, starvation case: 9 of 10
 * TLS scrapes failed). So under TLS, among the WAITING_SCAN oldest, the
 * one stalled longest goes (tls_stalled_ms; GnuTLS tells us when a whole
 * ClientHello arrived: on_client_hello). Caller holds conn_lock. */
#define WAITING_SCAN 64
static struct conn *oldest_waiting(struct http_server *s, const unsigned char *ip,
                                   const struct conn *except, enum scope scope)
{
    struct conn *best = NULL;
    int64_t best_score = -2, now_ms = mono_ms();
    unsigned scanned = 0;
    for (struct conn *c = s->conns_head; c && scanned < WAITING_SCAN; c = c->next) {
        if (c == except || c->busy || c->closing || !in_scope(c, scope) ||
            (ip && memcmp(c->ip, ip, 16) != 0) || request_pending(s, c))
            continue;
        if (!s->tls)
            return c;
        scanned++;
        int64_t score = tls_stalled_ms(c, now_ms);
        if (score > best_score) { /* ties: the older, met first */
            best = c;
            best_score = score;
        }
    }
    return best;
}

/* The connection of that scope answered for the longest, if that is longer
 * than the request deadline: a client not reading its answer. Caller holds
 * conn_lock. */
static struct conn *oldest_stuck(struct http_server *s, const unsigned char *ip,
                                 const struct conn *except, enum scope scope)
{
    int64_t limit = mono_ms() - (int64_t)s->options.request_timeout_seconds * 1000;
    struct conn *best = NULL;
    for (struct conn *c = s->conns_head; c; c = c->next)
        if (c != except && c->busy && !c->closing && in_scope(c, scope) &&
            (!ip || memcmp(c->ip, ip, 16) == 0) && c->busy_since_ms < limit &&
            (!best || c->busy_since_ms < best->busy_since_ms))
            best = c;
    return best;
}

/* The one TLS server of the process, for on_client_hello (GnuTLS hooks
 * carry no context of ours, and MHD owns the session's pointer). */
static struct http_server *_Atomic hello_server;

/* GnuTLS, on the connection's MHD thread: a whole ClientHello was parsed.
 * From now on the connection is a client doing a handshake, not a
 * stalled one (see oldest_waiting). */
static int on_client_hello(gnutls_session_t session, unsigned htype, unsigned when,
                           unsigned incoming, const gnutls_datum_t *msg)
{
    (void)htype;
    (void)when;
    (void)incoming;
    (void)msg;
    struct http_server *s = atomic_load(&hello_server);
    int fd = gnutls_transport_get_int(session);
    if (!s)
        return 0;
    pthread_mutex_lock(&s->conn_lock);
    for (struct conn *c = s->conns_tail; c; c = c->prev) /* newest first: the likely one */
        if (c->mhd_fd == fd && !c->closing) {
            c->hello = true;
            break;
        }
    pthread_mutex_unlock(&s->conn_lock);
    return 0;
}

/* Before the handshake (MHD has created the session and set its startup
 * credentials; the handshake starts when the connection is first
 * processed, after this notification): the current web config's
 * credentials, priorities and client auth replace them, so a reload
 * reaches every connection accepted after it. c takes a reference to that
 * config. Whether a client certificate is asked for and verified during
 * the handshake: a missing or unverified one then fails the handshake, as
 * Go's crypto/tls does. Returns false when the session cannot be set up
 * (it must then not be served). */
static bool tls_session_setup(struct http_server *s, struct MHD_Connection *mc, struct conn *c)
{
    const union MHD_ConnectionInfo *ti =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    gnutls_session_t session = ti ? (gnutls_session_t)ti->tls_session : NULL;
    if (!session)
        return false;
    c->web = web_get(s);
    if (web_config_tls_apply(c->web, session) != GNUTLS_E_SUCCESS)
        return false;
    gnutls_handshake_set_hook_function(session, GNUTLS_HANDSHAKE_CLIENT_HELLO, GNUTLS_HOOK_PRE,
                                       on_client_hello);
    return true;
}

static struct conn *conn_of(struct MHD_Connection *mc);

/* After the handshake, for the verifying modes: the certificate the
 * client gave (if any) chains to client_ca_file. A second check behind
 * the handshake's own, with the mode and the CA the handshake used
 * (verify_peers2 reads the session's credentials): a connection keeps
 * its handshake's result across reloads. */
static bool client_cert_ok(struct http_server *s, struct MHD_Connection *mc)
{
    if (!s->tls)
        return true;
    struct conn *c = conn_of(mc);
    if (!c || !c->web)
        return false; /* notify_connection shut it: never served */
    enum web_client_auth mode = web_config_client_auth(c->web);
    if (mode != WEB_VERIFY_CLIENT_CERT_IF_GIVEN && mode != WEB_REQUIRE_AND_VERIFY_CLIENT_CERT)
        return true;
    const union MHD_ConnectionInfo *ti =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    gnutls_session_t session = ti ? (gnutls_session_t)ti->tls_session : NULL;
    if (!session)
        return false;
    unsigned n = 0;
    if (!gnutls_certificate_get_peers(session, &n) || n == 0)
        return mode == WEB_VERIFY_CLIENT_CERT_IF_GIVEN;
    unsigned status = 0;
    return gnutls_certificate_verify_peers2(session, &status) == GNUTLS_E_SUCCESS && status == 0;
}

/* MHD thread: a connection opened or closed. A newcomer over a limit
 * closes the oldest waiting connection in its scope (it may be itself only
 * when every other one is busy being answered). */
static void notify_connection(void *cls, struct MHD_Connection *mc, void **socket_context,
                              enum MHD_ConnectionNotificationCode toe)
{
    struct http_server *s = cls;
    if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        struct conn *c = *socket_context;
        if (!c)
            return;
        if (!c->untracked) {
            pthread_mutex_lock(&s->conn_lock);
            if (c->prev)
                c->prev->next = c->next;
            else
                s->conns_head = c->next;
            if (c->next)
                c->next->prev = c->prev;
            else
                s->conns_tail = c->prev;
            if (!c->closing) {
                s->nconns--;
                s->nscraper_conns -= c->scraper;
            }
            pthread_mutex_unlock(&s->conn_lock);
            close(c->fd);
        }
        /* MHD has run gnutls_deinit on the session by now (MHD 0.9.75 and
         * 1.0.1, MHD_cleanup_connections; on the failed-setup path of
         * new_connection_process_ the deinit comes after this, but that
         * session never handshook and gnutls_deinit does not read the
         * credentials). Possibly the last reference to a replaced config. */
        web_config_unref(c->web);
        free(c);
        *socket_context = NULL;
        return;
    }
    const union MHD_ConnectionInfo *fdi =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
    const union MHD_ConnectionInfo *ai =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    struct conn *c = calloc(1, sizeof(*c));
    if (s->tls && (!c || !tls_session_setup(s, mc, c))) {
        /* The session would keep MHD's startup certificate, which may be
         * one a reload replaced: fail the handshake instead. MHD's
         * descriptor is valid here, on the connection's own thread. */
        if (fdi)
            shutdown(fdi->connect_fd, SHUT_RDWR);
    }
    if (!c)
        return;
    c->fd = fdi ? fcntl(fdi->connect_fd, F_DUPFD_CLOEXEC, 0) : -1;
    c->mhd_fd = fdi ? fdi->connect_fd : -1;
    if (c->fd < 0) {
        /* untracked: still bounded by MHD's hard limit and timeout; kept
         * only to hold the TLS config until MHD closes the connection */
        c->untracked = true;
        *socket_context = c;
        return;
    }
    cidr_key(ai ? ai->client_addr : NULL, c->ip);
    /* a linear scan of a short list (at most 64), no allocation */
    c->scraper = s->nscrapers && cidr_list_match(s->scrapers, s->nscrapers, c->ip);
    c->wait_start_ms = mono_ms();
    pthread_mutex_lock(&s->conn_lock);
    unsigned same_ip = 0;
    for (struct conn *o = s->conns_head; o; o = o->next)
        if (!o->closing && memcmp(o->ip, c->ip, 16) == 0)
            same_ip++;
    c->prev = s->conns_tail;
    if (s->conns_tail)
        s->conns_tail->next = c;
    else
        s->conns_head = c;
    s->conns_tail = c;
    s->nconns++;
    s->nscraper_conns += c->scraper;
    enum refusal why = REFUSED_COUNT;
    struct conn *victim = NULL;
    if (same_ip >= s->options.max_connections_per_ip) {
        /* one address is one class: the victim is of the newcomer's kind */
        why = REFUSED_PER_IP_LIMIT;
        victim = oldest_waiting(s, c->ip, c, SCOPE_ANY);
        if (!victim)
            victim = oldest_stuck(s, c->ip, c, SCOPE_ANY);
    } else if (c->scraper && s->nconns > s->options.max_connections) {
        /* a scraper beyond its reserved share, with every slot taken:
         * another client's connection goes first */
        why = REFUSED_SCRAPER_RESERVE;
        victim = oldest_waiting(s, NULL, c, SCOPE_OTHERS);
        if (!victim)
            victim = oldest_stuck(s, NULL, c, SCOPE_OTHERS);
        if (!victim) {
            why = REFUSED_CONNECTION_LIMIT;
            victim = oldest_waiting(s, NULL, c, SCOPE_SCRAPERS);
            if (!victim)
                victim = oldest_stuck(s, NULL, c, SCOPE_SCRAPERS);
        }
    } else if (!c->scraper && (s->nconns > s->options.max_connections ||
                               s->nconns - s->nscraper_conns > s->others_max)) {
        /* never a scraper's connection for another client's */
        why = REFUSED_CONNECTION_LIMIT;
        victim = oldest_waiting(s, NULL, c, SCOPE_OTHERS);
        if (!victim)
            victim = oldest_stuck(s, NULL, c, SCOPE_OTHERS);
    }
    if (why != REFUSED_COUNT) {
        if (!victim)
            victim = c;
        cut(s, victim);
    }
    pthread_mutex_unlock(&s->conn_lock);
    *socket_context = c;
    if (why != REFUSED_COUNT)
        refuse(why, 1);
}

/* MHD thread: a request ended (answered, or the connection dropped). */
static void notify_completed(void *cls, struct MHD_Connection *mc, void **req_cls,
                             enum MHD_RequestTerminationCode toe)
{
    struct http_server *s = cls;
    (void)toe;
    if (*req_cls && *req_cls != &request_seen) {
        free(*req_cls);
        *req_cls = NULL;
    }
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    struct conn *c = ci ? ci->socket_context : NULL;
    if (!c)
        return;
    pthread_mutex_lock(&s->conn_lock);
    c->busy = false;
    c->gen = 0;
    c->wait_start_ms = mono_ms();
    pthread_mutex_unlock(&s->conn_lock);
}

static struct conn *conn_of(struct MHD_Connection *mc)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

static void wake_waiters(struct http_server *s, int64_t older_than_ns);

/* Closes every connection waiting for its request longer than the
 * deadline: a slow header or body, or an idle keep-alive. */
static void *watchdog(void *arg)
{
    struct http_server *s = arg;
    int64_t deadline_ms = (int64_t)s->options.request_timeout_seconds * 1000;
    pthread_mutex_lock(&s->stop_lock);
    while (!s->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += WATCHDOG_PERIOD_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->stop_cond, &s->stop_lock, &ts);
        if (s->stopping)
            break;
        int64_t now = mono_ms();
        uint64_t ncut = 0;
        pthread_mutex_lock(&s->conn_lock);
        for (struct conn *c = s->conns_head; c; c = c->next)
            if (!c->busy && !c->closing && now - c->wait_start_ms > deadline_ms) {
                cut(s, c);
                ncut++;
            }
        pthread_mutex_unlock(&s->conn_lock);
        if (ncut)
            refuse(REFUSED_REQUEST_TIMEOUT, ncut);
        /* waiters past the connection timeout retry, and get 503 */
        wake_waiters(s, mono_ns() - (int64_t)s->options.connection_timeout_seconds * 1000000000);
    }
    pthread_mutex_unlock(&s->stop_lock);
    return NULL;
}

/* ---- shared renders ------------------------------------------------------- */

/* MHD calls this when the last connection (and the cache) let go. */
static void render_free(void *cls)
{
    struct render *r = cls;
    struct http_server *s = r->server;
    pthread_mutex_lock(&s->render_lock);
    if (r->prev)
        r->prev->next = r->next;
    else
        s->live_head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    else
        s->live_tail = r->prev;
    s->nlive--;
    pthread_mutex_unlock(&s->render_lock);
    free(r->body);
    free(r);
}

/* Past RENDERS_LIVE_MAX, closes the connections still sending the oldest
 * renders. Caller holds scrape_lock. */
static void bound_live_renders(struct http_server *s)
{
    uint64_t old[RENDERS_LIVE_MAX + 8];
    size_t nold = 0;
    pthread_mutex_lock(&s->render_lock);
    unsigned excess = s->nlive >= RENDERS_LIVE_MAX ? s->nlive - RENDERS_LIVE_MAX + 1 : 0;
    for (struct render *r = s->live_head; r && nold < excess && nold < sizeof(old) / sizeof(old[0]);
         r = r->next) {
        bool cached = false;
        for (int i = 0; i < 4; i++)
            cached |= s->cache[i / 2][i % 2].gen == r->gen && s->cache[i / 2][i % 2].response;
        if (!cached)
            old[nold++] = r->gen;
    }
    pthread_mutex_unlock(&s->render_lock);
    if (!nold)
        return;
    uint64_t ncut = 0;
    pthread_mutex_lock(&s->conn_lock);
    for (struct conn *c = s->conns_head; c; c = c->next)
        for (size_t i = 0; i < nold; i++)
            if (c->gen == old[i] && !c->closing) {
                cut(s, c);
                ncut++;
            }
    pthread_mutex_unlock(&s->conn_lock);
    if (ncut)
        refuse(REFUSED_SLOW_READER, ncut);
}

/* A fresh render as a shared response, or NULL. Caller holds scrape_lock. */
static struct MHD_Response *render_response(struct http_server *s, enum expo_format fmt, bool gz,
                                            uint64_t *gen)
{
    struct dynbuf b;
    dynbuf_init(&b, RENDER_MAX_BYTES);
    dynbuf_reserve(&b, s->last_render_size + s->last_render_size / 8);
    if (metrics_render(s->options.metrics, fmt, &b) != 0) {
        dynbuf_free(&b);
        log_error("scrape render failed", "error", "out of memory or render size cap reached",
                  NULL);
        return NULL;
    }
    atomic_fetch_add_explicit(&stats.renders, 1, memory_order_relaxed);
    s->last_render_size = b.len;
    size_t len;
    char *body = dynbuf_take(&b, &len);
    if (gz) {
        char *zbody;
        size_t zlen;
        if (gzip_buffer(body ? body : "", len, &zbody, &zlen) != 0) {
            free(body);
            return NULL;
        }
        free(body);
        body = zbody;
        len = zlen;
    }
    struct render *r = calloc(1, sizeof(*r));
    if (!r) {
        free(body);
        return NULL;
    }
    r->server = s;
    r->gen = ++s->next_gen;
    r->body = body;
    struct MHD_Response *resp = MHD_create_response_from_buffer_with_free_callback_cls(
        len, body ? body : (void *)"", render_free, r);
    if (!resp) {
        free(body);
        free(r);
        return NULL;
    }
    pthread_mutex_lock(&s->render_lock);
    r->prev = s->live_tail;
    if (s->live_tail)
        s->live_tail->next = r;
    else
        s->live_head = r;
    s->live_tail = r;
    s->nlive++;
    pthread_mutex_unlock(&s->render_lock);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            fmt == EXPO_OPENMETRICS ? EXPO_OPENMETRICS_CONTENT_TYPE
                                                    : EXPO_TEXT_CONTENT_TYPE);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY, "Accept, Accept-Encoding");
    if (gz)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_ENCODING, "gzip");
    add_web_headers(s, resp);
    *gen = r->gen;
    return resp;
}

/* A scrape that arrived at arrival_ns is answered with a render started
 * after that instant: its own, or one made meanwhile for a concurrent
 * scrape (it shows every count the scrape could expect, and N waiting
 * scrapes cost one render and one copy). */
/* Resumes every waiting scrape (they retry). Thread-safe; call with
 * scrape_lock not held. */
static void wake_waiters(struct http_server *s, int64_t older_than_ns)
{
    pthread_mutex_lock(&s->waiters_lock);
    struct scrape_req **pp = &s->waiters;
    while (*pp) {
        struct scrape_req *w = *pp;
        if (older_than_ns && w->arrival_ns > older_than_ns) {
            pp = &w->next;
            continue;
        }
        *pp = w->next;
        w->next = NULL;
        MHD_resume_connection(w->connection);
    }
    pthread_mutex_unlock(&s->waiters_lock);
}

static void unlock_scrapes(struct http_server *s)
{
    pthread_mutex_unlock(&s->scrape_lock);
    wake_waiters(s, 0);
}

static enum MHD_Result serve_metrics(struct http_server *s, struct MHD_Connection *c,
                                     struct conn *conn, struct scrape_req *req)
{
    const char *accept = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Accept");
    enum expo_format fmt = expo_negotiate(accept);
    bool gz = accepts_gzip(c);
    int64_t waited_ns = mono_ns() - req->arrival_ns;
    bool too_long = waited_ns / 1000000000 >= (int64_t)s->options.connection_timeout_seconds;
    /* A scrape that cannot render now is suspended (its thread serves the
     * others) until the render in progress ends. waiters_lock around the
     * second try closes the gap where that render ends unseen. */
    if (pthread_mutex_trylock(&s->scrape_lock) != 0) {
        pthread_mutex_lock(&s->waiters_lock);
        if (pthread_mutex_trylock(&s->scrape_lock) != 0) {
            if (too_long || atomic_load(&s->shutting_down)) {
                pthread_mutex_unlock(&s->waiters_lock);
                refuse(REFUSED_SCRAPE_BUSY, 1);
                return send_text(s, c, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain; charset=utf-8",
                                 "another scrape is still rendering; try again\n");
            }
            req->next = s->waiters;
            s->waiters = req;
            MHD_suspend_connection(c);
            pthread_mutex_unlock(&s->waiters_lock);
            return MHD_YES;
        }
        pthread_mutex_unlock(&s->waiters_lock);
    }
    int64_t arrival_ns = req->arrival_ns;
    struct cached *slot = &s->cache[fmt == EXPO_OPENMETRICS][gz];
    if (!slot->response || slot->start_ns < arrival_ns) {
        bound_live_renders(s);
        int64_t start = mono_ns();
        uint64_t gen;
        struct MHD_Response *fresh = render_response(s, fmt, gz, &gen);
        if (!fresh) {
            unlock_scrapes(s);
            return send_text(s, c, MHD_HTTP_INTERNAL_SERVER_ERROR, "text/plain; charset=utf-8",
                             "render failed: out of memory or output exceeded the size cap\n");
        }
        if (slot->response)
            MHD_destroy_response(slot->response);
        slot->response = fresh;
        slot->gen = gen;
        slot->start_ns = start;
    } else {
        atomic_fetch_add_explicit(&stats.shared, 1, memory_order_relaxed);
    }
    if (conn) {
        pthread_mutex_lock(&s->conn_lock);
        conn->gen = slot->gen;
        pthread_mutex_unlock(&s->conn_lock);
    }
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, slot->response);
    unlock_scrapes(s);
    return ret;
}

/* A request with a body: answered at once, the body never read, the
 * connection closed after the answer. */
static bool has_body(struct MHD_Connection *c)
{
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    if (cl && strspn(cl, "0") != strlen(cl))
        return true;
    return MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Transfer-Encoding") != NULL;
}

/* 413 for a GET/HEAD, 405 for another method. */
static enum MHD_Result refuse_body(struct http_server *s, struct MHD_Connection *c,
                                   bool get_or_head)
{
    refuse(REFUSED_REQUEST_BODY, 1);
    const char *msg = get_or_head
                          ? "request bodies are not accepted: use GET or HEAD without a body\n"
                          : "method not allowed: use GET or HEAD\n";
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(msg), (void *)msg, MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    if (!get_or_head)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    add_web_headers(s, r);
    enum MHD_Result ret = MHD_queue_response(
        c, get_or_head ? MHD_HTTP_CONTENT_TOO_LARGE : MHD_HTTP_METHOD_NOT_ALLOWED, r);
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
    struct conn *conn = conn_of(c);
    if (*req_cls == &request_seen) {
        /* Only after an answer was queued early (413): drop what comes. */
        *upload_size = 0;
        return MHD_YES;
    }
    if (*req_cls) /* a waiting scrape, resumed */
        return serve_metrics(s, c, conn, *req_cls);
    *req_cls = &request_seen;
    int64_t arrival_ns = mono_ns();
    if (conn) {
        pthread_mutex_lock(&s->conn_lock);
        conn->busy = true;
        conn->busy_since_ms = mono_ms();
        pthread_mutex_unlock(&s->conn_lock);
    }
    bool get_or_head =
        strcmp(method, MHD_HTTP_METHOD_GET) == 0 || strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
    if (has_body(c))
        return refuse_body(s, c, get_or_head);
    if (!get_or_head)
        return send_text(s, c, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain; charset=utf-8",
                         "method not allowed: use GET or HEAD\n");
    /* The probes answer without credentials (they show nothing but
     * liveness), so a kubelet needs no password; everything else, the
     * index page included, needs them when basic_auth_users is set. */
    bool probe = strcmp(url, "/healthz") == 0 || strcmp(url, "/readyz") == 0;
    if (!client_cert_ok(s, c)) {
        refuse(REFUSED_CLIENT_CERT, 1);
        return send_text_hdr(s, c, MHD_HTTP_FORBIDDEN, "text/plain; charset=utf-8",
                             "client certificate missing or not trusted\n",
                             MHD_HTTP_HEADER_CONNECTION, "close");
    }
    if (!probe) {
        struct web_config *wc = web_get(s);
        enum web_auth auth = web_config_authorize(
            wc, MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION));
        web_config_unref(wc);
        if (auth == WEB_AUTH_BUSY) {
            refuse(REFUSED_AUTH_BUSY, 1);
            return send_text_hdr(s, c, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain; charset=utf-8",
                                 "another password check is running; try again\n",
                                 MHD_HTTP_HEADER_RETRY_AFTER, "1");
        }
        if (auth != WEB_AUTH_OK) {
            refuse(REFUSED_UNAUTHORIZED, 1);
            return send_text_hdr(s, c, MHD_HTTP_UNAUTHORIZED, "text/plain; charset=utf-8",
                                 "unauthorized\n", MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                 "Basic realm=\"ai-finops-exporter\", charset=\"UTF-8\"");
        }
    }
    if (strcmp(url, s->telemetry_path) == 0) {
        if (strcmp(method, MHD_HTTP_METHOD_HEAD) == 0)
            return serve_metrics_head(
                s, c, expo_negotiate(MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Accept")));
        struct scrape_req *req = calloc(1, sizeof(*req));
        if (!req)
            return MHD_NO;
        req->connection = c;
        req->arrival_ns = arrival_ns;
        *req_cls = req; /* freed in notify_completed */
        return serve_metrics(s, c, conn, req);
    }
    if (strcmp(url, "/healthz") == 0)
        return send_text(s, c, MHD_HTTP_OK, "text/plain; charset=utf-8", "ok\n");
    if (strcmp(url, "/readyz") == 0) {
        bool ready = !s->options.ready || s->options.ready(s->options.ready_ctx);
        return send_text(s, c, ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
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
        add_web_headers(s, r);
        enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
        MHD_destroy_response(r);
        return ret;
    }
    return send_text(s, c, MHD_HTTP_NOT_FOUND, "text/plain; charset=utf-8", "not found\n");
}

/* MHD hands us its own printf-style format: tell clang it is one. */
static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/* MHD's own messages (one per refused connection, say) are rate-limited
 * like refusals: at most one line per 10 s, with the number dropped. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    static _Atomic int64_t next_ms;
    static _Atomic uint64_t dropped;
    int64_t now = mono_ms();
    int64_t next = atomic_load_explicit(&next_ms, memory_order_relaxed);
    if (now < next || !atomic_compare_exchange_strong(&next_ms, &next, now + 10000)) {
        atomic_fetch_add_explicit(&dropped, 1, memory_order_relaxed);
        return;
    }
    char msg[512], n_dropped[24];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n')
        msg[--n] = '\0';
    snprintf(n_dropped, sizeof(n_dropped), "%llu",
             (unsigned long long)atomic_exchange_explicit(&dropped, 0, memory_order_relaxed));
    log_warn("http", "detail", msg, "similar_lines_dropped", n_dropped, NULL);
}

/* Each connection takes two descriptors (MHD's and our dup); raise the soft
 * limit toward the hard one so the configured limit can be reached. */
static void ensure_fd_limit(unsigned hard_connections)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rlim_t need = (rlim_t)hard_connections * 2 + 256;
    if (rl.rlim_cur >= need)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need ? need : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < need) {
        char have[24], want[24];
        snprintf(have, sizeof(have), "%llu", (unsigned long long)rl.rlim_cur);
        snprintf(want, sizeof(want), "%llu", (unsigned long long)need);
        log_warn("open file limit below what web.max_connections needs; connections past it are "
                 "refused (raise the limit or lower web.max_connections)",
                 "limit", have, "needed", want, NULL);
    }
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
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG |
                     MHD_ALLOW_SUSPEND_RESUME;

    struct http_server *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    pthread_mutex_init(&s->scrape_lock, NULL);
    pthread_mutex_init(&s->conn_lock, NULL);
    pthread_mutex_init(&s->render_lock, NULL);
    pthread_mutex_init(&s->stop_lock, NULL);
    pthread_mutex_init(&s->waiters_lock, NULL);
    pthread_cond_init(&s->stop_cond, NULL);
    pthread_mutex_init(&s->web_lock, NULL);
    s->options = *o;
    s->web = web_config_ref(o->web);
    s->web_start = web_config_ref(o->web);
    s->tls = web_config_tls(o->web);
    if (s->tls)
        flags |= MHD_USE_TLS;
    if (!s->options.request_timeout_seconds)
        s->options.request_timeout_seconds = 3;
    if (!s->options.max_connections_per_ip)
        s->options.max_connections_per_ip = s->options.max_connections;
    s->telemetry_path = strdup(o->telemetry_path);
    if (!s->telemetry_path) {
        rc = -ENOMEM;
        goto fail;
    }
    s->others_max = s->options.max_connections;
    if (o->scrapers_count) {
        if (o->scraper_connections >= o->max_connections) {
            snprintf(errbuf, errlen,
                     "web.scraper_connections (%u) must be less than web.max_connections (%u)",
                     o->scraper_connections, o->max_connections);
            rc = -EINVAL;
            goto fail;
        }
        s->scrapers = malloc(o->scrapers_count * sizeof(*s->scrapers));
        if (!s->scrapers) {
            rc = -ENOMEM;
            goto fail;
        }
        memcpy(s->scrapers, o->scrapers, o->scrapers_count * sizeof(*s->scrapers));
        s->nscrapers = o->scrapers_count;
        s->others_max = o->max_connections - o->scraper_connections;
    }
    s->options.scrapers = NULL; /* ours is s->scrapers */
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
    /* MHD's own limit sits above ours, so a newcomer reaches our table and
     * can displace a waiting connection instead of being refused by MHD. */
    unsigned hard = o->max_connections + o->max_connections / 8 + 4 * HTTP_THREADS;
    ensure_fd_limit(hard);
    /* The optional ones: TLS material (MHD copies none of it: web_start,
     * which it points into, lives as long as the server) and the address.
     * MHD needs a certificate to start; each session gets the current one
     * in notify_connection. */
    struct MHD_OptionItem extra[6];
    size_t nextra = 0;
    if (s->tls) {
        extra[nextra++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0,
                                                  (void *)web_config_cert_pem(o->web)};
        extra[nextra++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0,
                                                  (void *)web_config_key_pem(o->web)};
        extra[nextra++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0,
                                                  (void *)web_config_tls_priorities(o->web)};
        if (web_config_client_ca_pem(o->web))
            extra[nextra++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_TRUST, 0,
                                                      (void *)web_config_client_ca_pem(o->web)};
    }
    if (sa)
        extra[nextra++] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, sa};
    extra[nextra] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    /* MHD splits the connection limit over the pool: each thread needs one. */
    unsigned pool_size = HTTP_THREADS;
    /* The logger first: MHD reports problems with later options through it. */
    s->daemon = MHD_start_daemon(
        flags, (uint16_t)port, NULL, NULL, handle, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
        MHD_OPTION_CONNECTION_LIMIT, hard, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)o->connection_timeout_seconds, MHD_OPTION_NOTIFY_CONNECTION, notify_connection, s,
        MHD_OPTION_NOTIFY_COMPLETED, notify_completed, s, MHD_OPTION_THREAD_POOL_SIZE, pool_size,
        MHD_OPTION_ARRAY, extra, MHD_OPTION_END);
    if (!s->daemon) {
        snprintf(errbuf, errlen,
                 "cannot listen on %s: the address may be in use or not local "
                 "(set --web.listen-address)",
                 o->listen_address);
        rc = -EADDRINUSE;
        goto fail;
    }
    if (pthread_create(&s->watchdog, NULL, watchdog, s) != 0) {
        MHD_stop_daemon(s->daemon);
        snprintf(errbuf, errlen, "cannot start the HTTP watchdog thread");
        rc = -ENOMEM;
        goto fail;
    }
    s->watchdog_started = true;
    if (s->tls)
        atomic_store(&hello_server, s);
    atomic_store(&stats.cert_not_after, web_config_cert_not_after(o->web));
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : port;
    *out = s;
    return 0;
fail:
    free(s->scrapers);
    web_config_unref(s->web);
    web_config_unref(s->web_start);
    pthread_mutex_destroy(&s->web_lock);
    free(s->telemetry_path);
    pthread_cond_destroy(&s->stop_cond);
    pthread_mutex_destroy(&s->stop_lock);
    pthread_mutex_destroy(&s->waiters_lock);
    pthread_mutex_destroy(&s->render_lock);
    pthread_mutex_destroy(&s->conn_lock);
    pthread_mutex_destroy(&s->scrape_lock);
    free(s);
    return rc;
}

unsigned http_server_busy(struct http_server *s)
{
    unsigned n = 0;
    pthread_mutex_lock(&s->conn_lock);
    for (struct conn *c = s->conns_head; c; c = c->next)
        n += c->busy && !c->closing;
    pthread_mutex_unlock(&s->conn_lock);
    return n;
}

unsigned http_server_port(const struct http_server *s)
{
    return s->port;
}

void http_server_stop(struct http_server *s)
{
    if (!s)
        return;
    struct http_server *self = s;
    atomic_compare_exchange_strong(&hello_server, &self, NULL);
    if (s->watchdog_started) {
        pthread_mutex_lock(&s->stop_lock);
        s->stopping = true;
        pthread_cond_signal(&s->stop_cond);
        pthread_mutex_unlock(&s->stop_lock);
        pthread_join(s->watchdog, NULL);
    }
    /* MHD must not be stopped with connections suspended: waiters answer
     * 503 once resumed. */
    atomic_store(&s->shutting_down, true);
    wake_waiters(s, 0);
    for (int i = 0; i < 500; i++) {
        pthread_mutex_lock(&s->waiters_lock);
        bool none = !s->waiters;
        pthread_mutex_unlock(&s->waiters_lock);
        if (none)
            break;
        wake_waiters(s, 0);
        usleep(10000);
    }
    MHD_stop_daemon(s->daemon);
    for (int i = 0; i < 4; i++)
        if (s->cache[i / 2][i % 2].response)
            MHD_destroy_response(s->cache[i / 2][i % 2].response);
    free(s->telemetry_path);
    free(s->scrapers);
    web_config_unref(s->web);
    web_config_unref(s->web_start);
    pthread_mutex_destroy(&s->web_lock);
    pthread_cond_destroy(&s->stop_cond);
    pthread_mutex_destroy(&s->stop_lock);
    pthread_mutex_destroy(&s->waiters_lock);
    pthread_mutex_destroy(&s->render_lock);
    pthread_mutex_destroy(&s->conn_lock);
    pthread_mutex_destroy(&s->scrape_lock);
    free(s);
}

int http_server_set_web_config(struct http_server *s, struct web_config *wc, char *errbuf,
                               size_t errlen)
{
    /* Everything but TLS on/off is per connection (tls_session_setup):
     * only the listener's kind needs a restart. */
    if (web_config_tls(wc) != s->tls) {
        snprintf(errbuf, errlen,
                 "tls_server_config was %s: turning TLS on or off applies on restart",
                 s->tls ? "removed" : "added");
        return -EPERM;
    }
    pthread_mutex_lock(&s->web_lock);
    struct web_config *old = s->web;
    s->web = web_config_ref(wc);
    pthread_mutex_unlock(&s->web_lock);
    atomic_store(&stats.cert_not_after, web_config_cert_not_after(wc));
    web_config_unref(old); /* requests and connections still holding it keep it alive */
    return 0;
}

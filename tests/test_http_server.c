/* test_http_server.c - the real libmicrohttpd server on 127.0.0.1 with a
 * raw socket client: routes, methods, content negotiation, gzip, readiness,
 * scrapes that show the same to every reader, and probes answered while a
 * scrape is stuck. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <stdatomic.h>
#include <zlib.h>
#include <cmocka.h>

#include "cidr.h"
#include "http_server.h"
#include "ingest.h"

struct fixture {
    struct exporter_config cfg;
    struct metrics *metrics;
    struct http_server *server;
    _Atomic bool ready;
    _Atomic int renders;
    _Atomic bool hold_scrapes; /* a render waits while set */
};

static bool is_ready(void *ctx)
{
    return ((struct fixture *)ctx)->ready;
}

/* A collector: runs inside every render, under the scrape lock. */
static void count_render(struct dynbuf *b, enum expo_format fmt, void *ctx)
{
    (void)b;
    (void)fmt;
    struct fixture *f = ctx;
    f->renders++;
    while (f->hold_scrapes) /* a render stuck on a slow collector */
        usleep(1000);
}

static int setup(void **state)
{
    static struct fixture f;
    memset(&f, 0, sizeof(f));
    config_init_defaults(&f.cfg);
    f.cfg.input = strdup("-"); /* the file input: live values */
    f.cfg.counters_new_series_hold_ms = 0;
    f.metrics = metrics_new(&f.cfg);
    if (!f.metrics || metrics_add_collector(f.metrics, count_render, &f) != 0 ||
        http_server_add_metrics(f.metrics) != 0)
        return -1;
    struct ingest *in = ingest_new(&f.cfg, f.metrics, NULL);
    struct ingest_worker *w = ingest_worker_new(in);
    const char *ev = "{\"team\":\"ml\",\"project\":\"chat\",\"source\":\"s\",\"cost_usd\":1.5}";
    ingest_process(w, ev, strlen(ev));
    ingest_worker_free(w);
    ingest_free(in);
    struct http_server_options o = {
        .listen_address = "127.0.0.1:0",
        .telemetry_path = "/metrics",
        .max_connections = 8,
        .max_connections_per_ip = 6,
        .connection_timeout_seconds = 5,
        .request_timeout_seconds = 1,
        .metrics = f.metrics,
        .ready = is_ready,
        .ready_ctx = &f,
    };
    char err[256];
    if (http_server_start(&o, &f.server, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    http_server_stop(f->server);
    metrics_free(f->metrics);
    config_free(&f->cfg);
    return 0;
}

/* Sends a raw request, returns the whole response (caller frees). */
static char *request(struct fixture *f, const char *raw, size_t *len)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)http_server_port(f->server))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    /* Only a broken server hits this: a probe queued behind a stuck scrape
     * would otherwise hang the test instead of failing it. */
    struct timeval tv = {.tv_sec = 120};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    assert_int_equal(write(fd, raw, strlen(raw)), (ssize_t)strlen(raw));
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap + 1);
    ssize_t r;
    while ((r = read(fd, buf + n, cap - n)) > 0)
        n += (size_t)r;
    close(fd);
    buf[n] = '\0';
    *len = n;
    return buf;
}

static char *get(struct fixture *f, const char *method, const char *path, const char *headers,
                 size_t *len)
{
    char raw[1024];
    snprintf(raw, sizeof(raw), "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%s\r\n", method,
             path, headers);
    return request(f, raw, len);
}

static const char *body_of(const char *resp)
{
    const char *p = strstr(resp, "\r\n\r\n");
    return p ? p + 4 : "";
}

/* Every reader, however it names itself and however often it reads, is
 * shown the same values: the counters, not who reads, decide. */
static void test_metrics_text(void **state)
{
    struct fixture *f = *state;
    size_t len;
    int renders = f->renders;
    char *r = get(f, "GET", "/metrics", "", &len);
    assert_non_null(strstr(r, "HTTP/1.1 200"));
    assert_non_null(strstr(r, "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
    assert_non_null(strstr(body_of(r), "ai_finops_cost_dollars_total{team=\"ml\",project=\"chat\","
                                       "source=\"s\"} 1.5\n"));
    assert_null(strstr(r, "# EOF"));
    free(r);
    r = get(f, "GET", "/metrics?replica=prom-a", "", &len);
    assert_non_null(strstr(body_of(r), "ai_finops_cost_dollars_total{team=\"ml\",project=\"chat\","
                                       "source=\"s\"} 1.5\n"));
    free(r);
    assert_int_equal(f->renders, renders + 2);
}

static void test_openmetrics(void **state)
{
    struct fixture *f = *state;
    size_t len;
    char *r = get(f, "GET", "/metrics",
                  "Accept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5\r\n", &len);
    assert_non_null(
        strstr(r, "Content-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\n"));
    assert_non_null(strstr(r, "ai_finops_cost_dollars_created{"));
    assert_true(len > 6);
    assert_string_equal(r + len - 6, "# EOF\n");
    free(r);
}

static void test_gzip(void **state)
{
    struct fixture *f = *state;
    size_t plain_len, gz_len;
    char *plain = get(f, "GET", "/metrics", "", &plain_len);
    char *gz = get(f, "GET", "/metrics", "Accept-Encoding: gzip\r\n", &gz_len);
    assert_non_null(strstr(gz, "Content-Encoding: gzip\r\n"));
    const char *zbody = body_of(gz);
    size_t zlen = gz_len - (size_t)(zbody - gz);
    char out[1 << 16];
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    assert_int_equal(inflateInit2(&zs, 15 + 16), Z_OK);
    zs.next_in = (Bytef *)zbody;
    zs.avail_in = (uInt)zlen;
    zs.next_out = (Bytef *)out;
    zs.avail_out = sizeof(out);
    assert_int_equal(inflate(&zs, Z_FINISH), Z_STREAM_END);
    size_t out_len = sizeof(out) - zs.avail_out;
    inflateEnd(&zs);
    /* Same families; process_* values may differ between two scrapes. */
    const char *pb = body_of(plain);
    const char *cut = strstr(pb, "# HELP ai_finops_http_refused");
    if (!cut)
        cut = strstr(pb, "# HELP process_cpu_seconds_total");
    size_t want = (size_t)(cut - pb);
    assert_true(out_len > want);
    assert_memory_equal(out, pb, want);
    free(plain);
    free(gz);
    char *refused = get(f, "GET", "/metrics", "Accept-Encoding: gzip;q=0\r\n", &gz_len);
    assert_null(strstr(refused, "Content-Encoding: gzip"));
    free(refused);
}

static void test_methods_and_routes(void **state)
{
    struct fixture *f = *state;
    size_t len;
    char *r = request(f,
                      "POST /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                      "Content-Length: 3\r\n\r\nabc",
                      &len);
    assert_non_null(strstr(r, "HTTP/1.1 405")); /* refused unread, connection closed */
    assert_non_null(strstr(r, "Allow: GET, HEAD\r\n"));
    free(r);
    r = get(f, "POST", "/metrics", "", &len);
    assert_non_null(strstr(r, "HTTP/1.1 405"));
    assert_non_null(strstr(r, "Allow: GET, HEAD\r\n"));
    free(r);
    r = get(f, "HEAD", "/metrics", "", &len);
    assert_non_null(strstr(r, "HTTP/1.1 200"));
    assert_string_equal(body_of(r), "");
    free(r);
    r = get(f, "GET", "/healthz", "", &len);
    assert_non_null(strstr(r, "HTTP/1.1 200"));
    free(r);
    r = get(f, "GET", "/", "", &len);
    assert_non_null(strstr(r, "text/html"));
    assert_non_null(strstr(r, "href=\"/metrics\""));
    free(r);
    r = get(f, "GET", "/nope", "", &len);
    assert_non_null(strstr(r, "HTTP/1.1 404"));
    free(r);
}

static void test_readiness(void **state)
{
    struct fixture *f = *state;
    size_t len;
    f->ready = false;
    char *r = get(f, "GET", "/readyz", "", &len);
    assert_non_null(strstr(r, "HTTP/1.1 503"));
    free(r);
    f->ready = true;
    r = get(f, "GET", "/readyz", "", &len);
    assert_non_null(strstr(r, "HTTP/1.1 200"));
    free(r);
}

/* Counts one more event, as a worker would. */
static void add_event(struct fixture *f, const char *ev)
{
    struct ingest *in = ingest_new(&f->cfg, f->metrics, NULL);
    struct ingest_worker *w = ingest_worker_new(in);
    ingest_process(w, ev, strlen(ev));
    ingest_worker_free(w);
    ingest_free(in);
}

/* A HEAD reads no body: it gets the headers without a render. */
static void test_head_is_not_a_scrape(void **state)
{
    struct fixture *f = *state;
    add_event(f, "{\"team\":\"head\",\"project\":\"p\",\"source\":\"s\",\"cost_usd\":2}");
    int renders = f->renders;
    size_t len;
    char *r = get(f, "HEAD", "/metrics", "", &len);
    assert_non_null(strstr(r, "HTTP/1.1 200"));
    assert_non_null(strstr(r, "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
    assert_string_equal(body_of(r), "");
    free(r);
    assert_int_equal(f->renders, renders);
    r = get(f, "GET", "/metrics", "", &len);
    assert_non_null(strstr(body_of(r), "ai_finops_cost_dollars_total{team=\"head\",project=\"p\","
                                       "source=\"s\"} 2\n"));
    free(r);
    assert_int_equal(f->renders, renders + 1);
}

static void *scrape_in_background(void *arg)
{
    size_t len;
    return get(arg, "GET", "/metrics", "", &len);
}

/* While a scrape is stuck (its render waits on a collector), the
 * kubelet's probes are still answered. */
static void test_probes_answer_during_a_stuck_scrape(void **state)
{
    struct fixture *f = *state;
    int renders = f->renders;
    f->hold_scrapes = true;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, scrape_in_background, f), 0);
    while (f->renders == renders)
        usleep(1000);
    size_t len;
    char *r = get(f, "GET", "/healthz", "", &len);
    assert_non_null(strstr(r, "HTTP/1.1 200"));
    free(r);
    r = get(f, "GET", "/readyz", "", &len);
    assert_non_null(strstr(r, "HTTP/1.1 200"));
    free(r);
    f->hold_scrapes = false;
    void *scrape;
    assert_int_equal(pthread_join(t, &scrape), 0);
    assert_non_null(strstr(scrape, "HTTP/1.1 200"));
    free(scrape);
}

static int connect_to(struct fixture *f)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)http_server_port(f->server))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    struct timeval tv = {.tv_sec = 120};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

/* Reads until the server closes; returns what came (caller frees). */
static char *read_to_eof(int fd)
{
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    ssize_t r;
    while (n < cap && (r = read(fd, buf + n, cap - n)) > 0)
        n += (size_t)r;
    buf[n] = '\0';
    return buf;
}

/* A scrape carries no body: one announcing a huge body gets 413 at once,
 * without the server waiting for (or reading) the body. */
static void test_request_body_refused_unread(void **state)
{
    struct fixture *f = *state;
    uint64_t before = http_server_refused("request_body");
    int fd = connect_to(f);
    const char *req = "GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\nabc";
    assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    char *r = read_to_eof(fd); /* the body never completes: only the server can end this */
    close(fd);
    assert_non_null(strstr(r, "HTTP/1.1 413"));
    assert_null(strstr(r, "ai_finops_cost"));
    free(r);
    fd = connect_to(f);
    req = "GET /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n";
    assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    r = read_to_eof(fd);
    close(fd);
    assert_non_null(strstr(r, "HTTP/1.1 413"));
    free(r);
    assert_int_equal(http_server_refused("request_body"), before + 2);
}

/* A client that never finishes its headers is closed at the request
 * deadline (1 s here), however steadily it trickles bytes. */
static void test_slow_headers_cut_at_deadline(void **state)
{
    struct fixture *f = *state;
    uint64_t before = http_server_refused("request_timeout");
    int fd = connect_to(f);
    assert_int_equal(write(fd, "GET /metrics HTTP/1.1\r\n", 23), 23);
    char c;
    ssize_t r;
    /* trickle one header byte every 100 ms: the idle timeout (5 s) alone
     * would never fire; the server must end it */
    for (int i = 0; i < 600; i++) {
        if (write(fd, "X", 1) != 1)
            break;
        struct timeval tv = {.tv_sec = 0, .tv_usec = 100000};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        r = read(fd, &c, 1);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
            break;
    }
    close(fd);
    /* counted right after the close: wait for it (generous bound) */
    for (int i = 0; i < 3000 && http_server_refused("request_timeout") == before; i++)
        usleep(10000);
    assert_true(http_server_refused("request_timeout") > before);
}

/* More idle sockets than the connection limit, all from the scraper's own
 * IP: a scrape still gets through (the oldest idle ones are closed). */
static void test_idle_flood_does_not_shut_out_a_scrape(void **state)
{
    struct fixture *f = *state;
    uint64_t before = http_server_refused("connection_limit") + http_server_refused("per_ip_limit");
    int idle[12];
    for (int i = 0; i < 12; i++)
        idle[i] = connect_to(f);
    size_t len;
    char *r = get(f, "GET", "/metrics", "", &len);
    assert_non_null(strstr(r, "HTTP/1.1 200"));
    assert_non_null(strstr(body_of(r), "ai_finops_http_refused_total{reason=\"per_ip_limit\"}"));
    free(r);
    for (int i = 0; i < 12; i++)
        close(idle[i]);
    assert_true(http_server_refused("connection_limit") + http_server_refused("per_ip_limit") >=
                before + 6);
}

/* Scrapes that wait while a render runs share the next render: three
 * scrapes, two renders. */
static void test_waiting_scrapes_share_one_render(void **state)
{
    struct fixture *f = *state;
    int renders = f->renders;
    f->hold_scrapes = true;
    pthread_t t[3];
    assert_int_equal(pthread_create(&t[0], NULL, scrape_in_background, f), 0);
    while (f->renders == renders)
        usleep(1000);
    assert_int_equal(pthread_create(&t[1], NULL, scrape_in_background, f), 0);
    assert_int_equal(pthread_create(&t[2], NULL, scrape_in_background, f), 0);
    while (http_server_busy(f->server) < 3) /* both arrived, waiting */
        usleep(1000);
    f->hold_scrapes = false;
    for (int i = 0; i < 3; i++) {
        void *body;
        assert_int_equal(pthread_join(t[i], &body), 0);
        assert_non_null(strstr(body, "HTTP/1.1 200"));
        assert_non_null(strstr(body, "ai_finops_cost_dollars_total{team=\"ml\""));
        free(body);
    }
    assert_int_equal(f->renders, renders + 2);
}

/* A connection from source address `from` (a 127/8 address) to server. */
static int connect_from(struct http_server *server, const char *from)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in src = {.sin_family = AF_INET};
    assert_int_equal(inet_pton(AF_INET, from, &src.sin_addr), 1);
    assert_int_equal(bind(fd, (struct sockaddr *)&src, sizeof(src)), 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)http_server_port(server))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

/* Whether the server closed fd (an idle connection never gets data). */
static bool closed_by_server(int fd)
{
    char c;
    ssize_t r = recv(fd, &c, 1, MSG_DONTWAIT);
    return r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

static unsigned count_closed(const int *fds, size_t n)
{
    unsigned closed = 0;
    for (size_t i = 0; i < n; i++)
        closed += closed_by_server(fds[i]);
    return closed;
}

/* Waits (bounded far above need) until exactly `want` of fds are closed;
 * returns how many are. A server that closes more shows it at the end. */
static unsigned wait_closed(const int *fds, size_t n, unsigned want)
{
    for (int i = 0; i < 3000 && count_closed(fds, n) < want; i++)
        usleep(10000);
    usleep(100000); /* one more look: a wrong extra close would show */
    return count_closed(fds, n);
}

/* web.scrapers = 127.0.0.1, 3 of 8 connections reserved: other clients
 * (127.0.0.2-) hold at most 5, a scraper over the limit closes one of
 * theirs (scraper_reserve), and no other client ever closes a scraper's
 * connection. Idle connections, a long request deadline: nothing here
 * depends on timing but the bounded waits. */
static void test_scrapers_reserved_share(void **state)
{
    struct fixture *f = *state;
    struct cidr scrapers[1];
    assert_int_equal(cidr_parse("127.0.0.1", &scrapers[0], NULL, 0), 0);
    struct http_server_options o = {
        .listen_address = "127.0.0.1:0",
        .telemetry_path = "/metrics",
        .max_connections = 8,
        .max_connections_per_ip = 6,
        .connection_timeout_seconds = 120,
        .request_timeout_seconds = 120,
        .scrapers = scrapers,
        .scrapers_count = 1,
        .scraper_connections = 3,
        .metrics = f->metrics,
    };
    struct http_server *server;
    char err[256];
    assert_int_equal(http_server_start(&o, &server, err, sizeof(err)), 0);
    uint64_t limit0 = http_server_refused("connection_limit");
    uint64_t reserve0 = http_server_refused("scraper_reserve");
    int others[11], scr[5];
    char ip[32];
    /* 8 others: the 5 of their share stay */
    for (int i = 0; i < 8; i++) {
        snprintf(ip, sizeof(ip), "127.0.0.%d", 2 + i);
        others[i] = connect_from(server, ip);
    }
    assert_int_equal(wait_closed(others, 8, 3), 3);
    assert_int_equal(http_server_refused("connection_limit") - limit0, 3);
    /* 5 scrapers: 3 in their reserve, 2 over the limit close 2 others */
    for (int i = 0; i < 5; i++)
        scr[i] = connect_from(server, "127.0.0.1");
    assert_int_equal(wait_closed(others, 8, 5), 5);
    assert_int_equal(count_closed(scr, 5), 0);
    assert_int_equal(http_server_refused("scraper_reserve") - reserve0, 2);
    /* 3 more others at the full limit: each closes one of the others,
     * never a scraper's */
    for (int i = 8; i < 11; i++) {
        snprintf(ip, sizeof(ip), "127.0.0.%d", 2 + i);
        others[i] = connect_from(server, ip);
    }
    assert_int_equal(wait_closed(others, 11, 8), 8);
    assert_int_equal(count_closed(scr, 5), 0);
    assert_int_equal(http_server_refused("connection_limit") - limit0, 6);
    /* and a sixth scraper connection gets its scrape */
    int fd = connect_from(server, "127.0.0.1");
    const char req[] = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    struct timeval tv = {.tv_sec = 120};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    assert_int_equal(write(fd, req, sizeof(req) - 1), (ssize_t)(sizeof(req) - 1));
    char *resp = read_to_eof(fd);
    close(fd);
    assert_non_null(strstr(resp, "HTTP/1.1 200"));
    assert_non_null(strstr(resp, "ai_finops_http_refused_total{reason=\"scraper_reserve\"} "));
    free(resp);
    assert_int_equal(count_closed(scr, 5), 0);
    assert_int_equal(http_server_refused("scraper_reserve") - reserve0, 3);
    for (int i = 0; i < 11; i++)
        close(others[i]);
    for (int i = 0; i < 5; i++)
        close(scr[i]);
    http_server_stop(server);
}

/* The reservation must leave the others at least one connection. */
static void test_scrapers_reserve_below_limit(void **state)
{
    struct fixture *f = *state;
    struct cidr scrapers[1];
    assert_int_equal(cidr_parse("10.0.0.0/8", &scrapers[0], NULL, 0), 0);
    struct http_server_options o = {
        .listen_address = "127.0.0.1:0",
        .telemetry_path = "/metrics",
        .max_connections = 8,
        .scrapers = scrapers,
        .scrapers_count = 1,
        .scraper_connections = 8,
        .metrics = f->metrics,
    };
    struct http_server *server = NULL;
    char err[256];
    assert_int_equal(http_server_start(&o, &server, err, sizeof(err)), -EINVAL);
    assert_string_equal(err,
                        "web.scraper_connections (8) must be less than web.max_connections (8)");
}

static void test_listen_address_parsing(void **state)
{
    (void)state;
    char host[64];
    unsigned port;
    assert_int_equal(parse_listen_address(":9400", host, sizeof(host), &port), 0);
    assert_string_equal(host, "");
    assert_int_equal(port, 9400);
    assert_int_equal(parse_listen_address("[::1]:80", host, sizeof(host), &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(parse_listen_address("127.0.0.1:65536", host, sizeof(host), &port), -EINVAL);
    assert_int_equal(parse_listen_address("9400", host, sizeof(host), &port), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_text),
        cmocka_unit_test(test_openmetrics),
        cmocka_unit_test(test_gzip),
        cmocka_unit_test(test_methods_and_routes),
        cmocka_unit_test(test_readiness),
        cmocka_unit_test(test_listen_address_parsing),
        cmocka_unit_test(test_head_is_not_a_scrape),
        cmocka_unit_test(test_probes_answer_during_a_stuck_scrape),
        cmocka_unit_test(test_request_body_refused_unread),
        cmocka_unit_test(test_slow_headers_cut_at_deadline),
        cmocka_unit_test(test_idle_flood_does_not_shut_out_a_scrape),
        cmocka_unit_test(test_waiting_scrapes_share_one_render),
        cmocka_unit_test(test_scrapers_reserved_share),
        cmocka_unit_test(test_scrapers_reserve_below_limit),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

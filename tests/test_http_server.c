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
    if (!f.metrics || metrics_add_collector(f.metrics, count_render, &f) != 0)
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
        .max_connections_per_ip = 8,
        .connection_timeout_seconds = 5,
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
    const char *cut = "# HELP process_cpu_seconds_total";
    const char *pb = body_of(plain);
    size_t want = (size_t)(strstr(pb, cut) - pb);
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
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

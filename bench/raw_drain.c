/*
 * raw_drain.c - the floor for bench/kafka_drain.py: drains a topic with
 * plain librdkafka consumers and does nothing with the messages (no
 * parsing, no counting beyond messages and bytes).
 *
 * Two shapes, both with the daemon's poll API (one message per call):
 *  - handles (the floor): one handle per thread, each with its own broker
 *    thread and librdkafka's defaults, polling its consumer queue.
 *  - shared (the daemon's shape): one handle whose partitions are routed to
 *    the threads' queues before they are assigned (thread 0 polls the
 *    consumer queue, the others their own), with the daemon's queue
 *    defaults. The daemon minus this is what decoding, pricing and adding
 *    cost; this minus the floor is what sharing one handle costs.
 * Partitions are assigned directly (no group join) and read from the
 * beginning; each thread stops once all its partitions reported
 * end-of-partition and it has seen its share. kafka_drain.py links it with
 * the daemon's allocator.
 *
 *   raw_drain BROKERS TOPIC PARTITIONS THREADS EXPECTED_MESSAGES [handles|shared]
 *
 * Prints one JSON line: messages, bytes, seconds (first message to last),
 * seconds_total (start to end), cpu_seconds (user + system, whole process),
 * and of that, librdkafka_cpu_seconds: its own threads' ("rdk:*": fetching,
 * decompressing, building the messages), read from /proc/self/task before
 * the handles are destroyed.
 * Build: gcc -O2 -o raw_drain raw_drain.c -lrdkafka -lpthread [-ljemalloc]
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#define CLOCK_EVERY 1024

struct worker {
    pthread_t thread;
    int index;
    rd_kafka_t *rk;          /* handles: this thread's own handle */
    rd_kafka_queue_t *queue; /* shared: this thread's queue (NULL: the consumer queue) */
    int nparts;
    uint64_t messages, bytes;
    double first, last;
};

static const char *g_brokers, *g_topic;
static int g_partitions, g_threads;
static bool g_shared;
static rd_kafka_t *g_rk; /* shared: the one handle */
static uint64_t g_expected;
static atomic_uint_fast64_t g_total;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void set(rd_kafka_conf_t *conf, const char *k, const char *v)
{
    char err[512];
    if (rd_kafka_conf_set(conf, k, v, err, sizeof(err)) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "raw_drain: %s=%s: %s\n", k, v, err);
        exit(2);
    }
}

static rd_kafka_t *consumer_new(const char *group, bool daemon_queues)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    set(conf, "bootstrap.servers", g_brokers);
    set(conf, "group.id", group);
    set(conf, "enable.auto.commit", "false");
    set(conf, "enable.partition.eof", "true");
    set(conf, "auto.offset.reset", "earliest");
    if (daemon_queues) {
        /* the daemon's defaults (src/kafka/consumer.c, member_init) */
        set(conf, "queued.min.messages", "2000000");
        set(conf, "queued.max.messages.kbytes", "524288");
    }
    char err[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    if (!rk) {
        fprintf(stderr, "raw_drain: %s\n", err);
        exit(2);
    }
    rd_kafka_poll_set_consumer(rk);
    return rk;
}

static void assign(rd_kafka_t *rk, int first, int step)
{
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(g_partitions);
    for (int p = first; p < g_partitions; p += step)
        rd_kafka_topic_partition_list_add(list, g_topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_resp_err_t err = rd_kafka_assign(rk, list);
    rd_kafka_topic_partition_list_destroy(list);
    if (err) {
        fprintf(stderr, "raw_drain: assign: %s\n", rd_kafka_err2str(err));
        exit(2);
    }
}

static rd_kafka_message_t *next_message(struct worker *w, int timeout_ms)
{
    if (w->queue)
        return rd_kafka_consume_queue(w->queue, timeout_ms);
    return rd_kafka_consumer_poll(w->rk, timeout_ms);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    if (!g_shared) {
        char group[64];
        snprintf(group, sizeof(group), "raw-drain-%ld-%d", (long)time(NULL), w->index);
        w->rk = consumer_new(group, false);
        assign(w->rk, w->index, g_threads);
    }

    char *eof = calloc((size_t)g_partitions, 1);
    int eofs = 0;
    double idle_since = now_s();
    while (w->nparts > 0) {
        /* like the daemon: no wait while messages are queued */
        rd_kafka_message_t *m = next_message(w, 0);
        if (!m)
            m = next_message(w, 100);
        if (!m) {
            /* all partitions at their end, or nothing for 30 s: done */
            if (eofs == w->nparts && atomic_load(&g_total) >= g_expected)
                break;
            if (now_s() - idle_since > 30)
                break;
            continue;
        }
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            /* A partition's end arrives right behind its last message:
             * the last end stamps the drain's end. */
            idle_since = w->last = now_s();
            if (m->partition >= 0 && m->partition < g_partitions && !eof[m->partition]) {
                eof[m->partition] = 1;
                eofs++;
            }
        } else if (m->err) {
            fprintf(stderr, "raw_drain: %s\n", rd_kafka_message_errstr(m));
        } else {
            /* The clock is read once per CLOCK_EVERY messages, not per
             * message: in a VM a clock read is a good part of the cost of
             * a message, and the floor must not pay for its own stopwatch. */
            if (w->messages % CLOCK_EVERY == 0) {
                idle_since = w->last = now_s();
                if (!w->messages)
                    w->first = w->last;
            }
            w->messages++;
            w->bytes += m->len;
            atomic_fetch_add_explicit(&g_total, 1, memory_order_relaxed);
        }
        rd_kafka_message_destroy(m);
        if (eofs == w->nparts && atomic_load(&g_total) >= g_expected)
            break;
    }
    free(eof);
    return NULL;
}

/* The daemon's shape: partition p goes to thread p % THREADS, routed
 * before the assignment so its first message already lands there. */
static void shared_start(struct worker *w)
{
    char group[64];
    snprintf(group, sizeof(group), "raw-drain-shared-%ld", (long)time(NULL));
    g_rk = consumer_new(group, true);
    for (int i = 0; i < g_threads; i++) {
        w[i].rk = g_rk;
        w[i].queue = i == 0 ? NULL : rd_kafka_queue_new(g_rk);
    }
    for (int p = 1; p < g_partitions; p++) {
        if (p % g_threads == 0)
            continue;
        rd_kafka_queue_t *q = rd_kafka_queue_get_partition(g_rk, g_topic, p);
        if (!q) {
            fprintf(stderr, "raw_drain: no queue for partition %d\n", p);
            exit(2);
        }
        rd_kafka_queue_forward(q, w[p % g_threads].queue);
        rd_kafka_queue_destroy(q);
    }
    assign(g_rk, 0, 1);
}

/* CPU seconds of librdkafka's threads (named "rdk:..."), from /proc: the
 * split kafka_drain.py sets beside the daemon's. */
static double librdkafka_cpu_seconds(void)
{
    double sum = 0;
    long ticks = sysconf(_SC_CLK_TCK);
    DIR *dir = opendir("/proc/self/task");
    if (!dir)
        return -1;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[300], comm[32] = "", stat[1024];
        snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        bool rdk = fgets(comm, sizeof(comm), f) && strncmp(comm, "rdk:", 4) == 0;
        fclose(f);
        if (!rdk)
            continue;
        snprintf(path, sizeof(path), "/proc/self/task/%s/stat", e->d_name);
        if (!(f = fopen(path, "r")))
            continue;
        size_t n = fread(stat, 1, sizeof(stat) - 1, f);
        fclose(f);
        stat[n] = '\0';
        /* after the ")" closing the name: state is field 3, utime 14, stime 15 */
        char *p = strrchr(stat, ')');
        unsigned long utime, stime;
        if (p && sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime,
                        &stime) == 2)
            sum += (double)(utime + stime) / (double)ticks;
    }
    closedir(dir);
    return sum;
}

int main(int argc, char **argv)
{
    if (argc != 6 && argc != 7) {
        fprintf(stderr,
                "usage: %s BROKERS TOPIC PARTITIONS THREADS EXPECTED_MESSAGES [handles|shared]\n",
                argv[0]);
        return 2;
    }
    g_brokers = argv[1];
    g_topic = argv[2];
    g_partitions = atoi(argv[3]);
    g_threads = atoi(argv[4]);
    g_expected = strtoull(argv[5], NULL, 10);
    if (argc == 7 && strcmp(argv[6], "shared") != 0 && strcmp(argv[6], "handles") != 0) {
        fprintf(stderr, "raw_drain: shape is handles or shared, not %s\n", argv[6]);
        return 2;
    }
    g_shared = argc == 7 && strcmp(argv[6], "shared") == 0;
    if (g_partitions < 1 || g_threads < 1)
        return 2;
    if (g_threads > g_partitions)
        g_threads = g_partitions;

    double t0 = now_s();
    struct worker *w = calloc((size_t)g_threads, sizeof(*w));
    for (int i = 0; i < g_threads; i++) {
        w[i].index = i;
        for (int p = i; p < g_partitions; p += g_threads)
            w[i].nparts++;
    }
    if (g_shared)
        shared_start(w);
    for (int i = 0; i < g_threads; i++)
        pthread_create(&w[i].thread, NULL, worker_main, &w[i]);
    uint64_t messages = 0, bytes = 0;
    double first = 0, last = 0;
    for (int i = 0; i < g_threads; i++) {
        pthread_join(w[i].thread, NULL);
        messages += w[i].messages;
        bytes += w[i].bytes;
        if (w[i].messages && (first == 0 || w[i].first < first))
            first = w[i].first;
        if (w[i].last > last)
            last = w[i].last;
    }
    double t1 = now_s();
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    printf("{\"messages\": %" PRIu64 ", \"bytes\": %" PRIu64
           ", \"seconds\": %.6f, \"seconds_total\": %.6f, \"cpu_seconds\": %.3f"
           ", \"librdkafka_cpu_seconds\": %.3f}\n",
           messages, bytes, last - first, t1 - t0, cpu, librdkafka_cpu_seconds());
    fflush(stdout);
    if (g_shared) {
        for (int i = 1; i < g_threads; i++)
            rd_kafka_queue_destroy(w[i].queue);
        rd_kafka_destroy(g_rk);
    } else {
        for (int i = 0; i < g_threads; i++)
            rd_kafka_destroy(w[i].rk);
    }
    free(w);
    return messages >= g_expected ? 0 : 1;
}

/*
 * loadgen_main.c - ai-finops-loadgen: produces realistic cost events to
 * Kafka (or JSONL to a file) and prints the exact totals of what was
 * delivered, in the shape of gen_events.py --totals (docs/loadgen.md).
 *
 * Design: one thread generates (loadgen.c), throttles to a schedule and
 * hands messages to librdkafka (copied); each message's contribution to
 * the totals waits in a slot of a fixed pool, named by the message's
 * opaque, and is added only when its delivery report says it was written.
 * Delivery reports run on this same thread (rd_kafka_poll), so nothing is
 * shared and nothing is locked. Signals only set a flag.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <librdkafka/rdkafka.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "loadgen.h"
#include "money.h"
#include "pricing.h"
#include "secret_ref.h"

#define EXIT_USAGE       2
#define EXIT_UNDELIVERED 3
#define MAX_PROPERTIES   64
#define MAX_PRICE_FILES  16
#define OUT_BUFFER_BYTES (4u << 20)
#define OUT_PENDING_MAX  65536
#define KAFKA_BATCH_MAX  512

/* ---- options: one table drives getopt_long and --help ------------------- */

enum opt_id {
    O_BROKERS = 256,
    O_TOPIC,
    O_PROPERTY = 'X',
    O_RATE = 300,
    O_SHAPE,
    O_DAY_SECONDS,
    O_DAY_AMPLITUDE,
    O_COUNT,
    O_DURATION,
    O_SEED,
    O_OUTPUT,
    O_TIMESTAMPS,
    O_START,
    O_PRICED_RATIO,
    O_BAD_RATIO,
    O_SPIKE,
    O_PRICES,
    O_TOTALS,
    O_FLUSH_TIMEOUT,
    O_LIST,
    O_QUIET = 'q',
    O_HELP = 'h',
    O_VERSION = 400,
};

static const struct cli_option {
    const char *name;
    int has_arg;
    int id;
    const char *metavar;
    const char *help;
} cli_options[] = {
    {"brokers", 1, O_BROKERS, "HOST:PORT,..", "Kafka bootstrap servers (default 127.0.0.1:9092)"},
    {"topic", 1, O_TOPIC, "NAME", "topic to produce to (default ai-costs)"},
    {"property", 1, O_PROPERTY, "KEY=VALUE",
     "any librdkafka producer property; repeatable, applied after the defaults; "
     "${env:NAME} in the value is replaced by that environment variable"},
    {"rate", 1, O_RATE, "N", "events per second; 0 = as fast as possible (default 0)"},
    {"shape", 1, O_SHAPE, "steady|daily",
     "daily: rate x (1 - A cos(2 pi t / day-seconds)), quiet at t=0 (default steady)"},
    {"day-seconds", 1, O_DAY_SECONDS, "S", "period of the daily shape (default 86400)"},
    {"day-amplitude", 1, O_DAY_AMPLITUDE, "A", "amplitude of the daily shape, 0..0.95 (0.5)"},
    {"count", 1, O_COUNT, "N", "stop after N events"},
    {"duration", 1, O_DURATION, "S",
     "stop after S seconds (of the schedule with --rate, of wall time without)"},
    {"seed", 1, O_SEED, "N", "seed of the event stream (default 1)"},
    {"output", 1, O_OUTPUT, "FILE", "write JSONL to FILE ('-' = stdout) instead of Kafka"},
    {"timestamps", 1, O_TIMESTAMPS, "virtual|now",
     "event time: virtual clock (default with --output) or wall clock (default with Kafka)"},
    {"start", 1, O_START, "RFC3339", "origin of the virtual clock (2026-11-23T00:00:00Z)"},
    {"priced-ratio", 1, O_PRICED_RATIO, "R",
     "share of good events sent without cost_usd, priced by the exporter (default 0.5)"},
    {"bad-ratio", 1, O_BAD_RATIO, "R", "share of malformed events, one defect each (default 0)"},
    {"spike", 1, O_SPIKE, "T/P@S:M[:MODE]",
     "from schedule second S on, multiply team/project T/P's share (MODE share, default), "
     "usage (usage) or both by M; repeatable"},
    {"prices", 1, O_PRICES, "DIR|FILE,..",
     "price tables (default: the bundled ones; a DIR means DIR/llm.yaml and DIR/gpu.yaml)"},
    {"totals", 1, O_TOTALS, "FILE",
     "write the totals JSON to FILE (default stdout; stderr when --output -)"},
    {"flush-timeout", 1, O_FLUSH_TIMEOUT, "S",
     "at the end, wait at most S seconds for deliveries (default 30)"},
    {"list-projects", 0, O_LIST, NULL, "print the catalogue (teams, projects, shares) and exit"},
    {"quiet", 0, O_QUIET, NULL, "no progress line, summary or librdkafka warnings"},
    {"help", 0, O_HELP, NULL, "this help"},
    {"version", 0, O_VERSION, NULL, "print the version"},
};
#define CLI_OPTION_COUNT (sizeof(cli_options) / sizeof(cli_options[0]))

struct cli {
    const char *brokers, *topic, *output, *totals;
    const char *properties[MAX_PROPERTIES][2];
    size_t property_count;
    char *property_text[MAX_PROPERTIES];
    double rate;
    uint64_t count;
    double duration;
    int timestamps; /* -1 default, 0 virtual, 1 now */
    double flush_timeout;
    bool quiet, list;
    const char *prices[MAX_PRICE_FILES];
    size_t price_count;
    char *price_paths[MAX_PRICE_FILES * 2];
    size_t price_path_count;
    struct loadgen_options gen;
};

static void print_help(FILE *f, const char *prog)
{
    fprintf(f,
            "Usage: %s [OPTIONS]\n"
            "Produces realistic AI cost events (docs/events.md) to Kafka, or JSONL to a file,\n"
            "and prints the exact totals of what was delivered (docs/loadgen.md).\n\n",
            prog);
    for (size_t i = 0; i < CLI_OPTION_COUNT; i++) {
        const struct cli_option *o = &cli_options[i];
        char left[64];
        bool has_short = o->id < 256;
        snprintf(left, sizeof(left), "%c%c%s--%s%s%s", has_short ? '-' : ' ',
                 has_short ? o->id : ' ', has_short ? ", " : "  ", o->name, o->metavar ? " " : "",
                 o->metavar ? o->metavar : "");
        fprintf(f, "  %-34s %s\n", left, o->help);
    }
    fprintf(f, "\nExit status: 0 all delivered, 1 error, 2 usage, 3 some messages failed "
               "delivery (not counted in the totals).\n");
}

static int usage_error(const char *prog, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int usage_error(const char *prog, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see --help)\n");
    return -EINVAL;
}

static int parse_double(const char *s, double min, double max, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < min || v > max)
        return -EINVAL;
    *out = v;
    return 0;
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    if (*s == '-' || *s == '\0')
        return -EINVAL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return -EINVAL;
    *out = v;
    return 0;
}

static int parse_cli(struct cli *c, int argc, char **argv)
{
    struct option longopts[CLI_OPTION_COUNT + 1];
    char spike_err[512];
    memset(longopts, 0, sizeof(longopts));
    for (size_t i = 0; i < CLI_OPTION_COUNT; i++)
        longopts[i] =
            (struct option){cli_options[i].name, cli_options[i].has_arg, NULL, cli_options[i].id};
    const char *prog = argv[0];
    int id;
    opterr = 0;
    while ((id = getopt_long(argc, argv, ":X:qh", longopts, NULL)) != -1) {
        const char *arg = optarg;
        switch (id) {
        case O_BROKERS:
            c->brokers = arg;
            break;
        case O_TOPIC:
            c->topic = arg;
            break;
        case O_PROPERTY: {
            const char *eq = strchr(arg, '=');
            /* never echo the argument: its value may be a password */
            if (!eq || eq == arg || c->property_count == MAX_PROPERTIES)
                return usage_error(prog, "-X number %zu: expected KEY=VALUE (at most 64)",
                                   c->property_count + 1);
            char *key = strndup(arg, (size_t)(eq - arg)), *value = NULL, *copy;
            char err[512];
            int rc = key ? secret_ref_expand(key, eq + 1, &value, err, sizeof err) : -ENOMEM;
            if (rc < 0 && rc != -ENOMEM) {
                free(key);
                return usage_error(prog, "-X: %s", err);
            }
            copy = rc < 0 ? NULL : malloc(strlen(key) + strlen(value) + 2);
            if (!copy) {
                free(key);
                free(value);
                return -ENOMEM;
            }
            /* one allocation, "KEY\0VALUE", freed through property_text */
            strcpy(copy, key);
            strcpy(copy + strlen(key) + 1, value);
            c->property_text[c->property_count] = copy;
            c->properties[c->property_count][0] = copy;
            c->properties[c->property_count][1] = copy + strlen(key) + 1;
            c->property_count++;
            free(key);
            free(value);
            break;
        }
        case O_RATE:
            if (parse_double(arg, 0, 1e9, &c->rate))
                return usage_error(prog, "--rate '%s': expected events/s from 0 to 1e9", arg);
            c->gen.rate = c->rate;
            break;
        case O_SHAPE:
            if (strcmp(arg, "steady") == 0)
                c->gen.shape = LOADGEN_SHAPE_STEADY;
            else if (strcmp(arg, "daily") == 0)
                c->gen.shape = LOADGEN_SHAPE_DAILY;
            else
                return usage_error(prog, "--shape '%s': expected steady or daily", arg);
            break;
        case O_DAY_SECONDS:
            if (parse_double(arg, 1e-3, 1e9, &c->gen.day_seconds))
                return usage_error(prog, "--day-seconds '%s': expected seconds > 0", arg);
            break;
        case O_DAY_AMPLITUDE:
            if (parse_double(arg, 0, 0.95, &c->gen.day_amplitude))
                return usage_error(prog, "--day-amplitude '%s': expected 0 to 0.95", arg);
            break;
        case O_COUNT:
            if (parse_u64(arg, &c->count) || c->count == 0)
                return usage_error(prog, "--count '%s': expected an integer > 0", arg);
            break;
        case O_DURATION:
            if (parse_double(arg, 1e-3, 1e9, &c->duration))
                return usage_error(prog, "--duration '%s': expected seconds > 0", arg);
            break;
        case O_SEED:
            if (parse_u64(arg, &c->gen.seed))
                return usage_error(prog, "--seed '%s': expected an unsigned integer", arg);
            break;
        case O_OUTPUT:
            c->output = arg;
            break;
        case O_TIMESTAMPS:
            if (strcmp(arg, "virtual") == 0)
                c->timestamps = 0;
            else if (strcmp(arg, "now") == 0)
                c->timestamps = 1;
            else
                return usage_error(prog, "--timestamps '%s': expected virtual or now", arg);
            break;
        case O_START:
            if (parse_rfc3339(arg, strlen(arg), &c->gen.start_ms))
                return usage_error(prog,
                                   "--start '%s': expected RFC 3339, e.g. "
                                   "2026-11-23T00:00:00Z",
                                   arg);
            break;
        case O_PRICED_RATIO:
            if (parse_double(arg, 0, 1, &c->gen.usage_only_ratio))
                return usage_error(prog, "--priced-ratio '%s': expected 0 to 1", arg);
            break;
        case O_BAD_RATIO:
            if (parse_double(arg, 0, 1, &c->gen.bad_ratio))
                return usage_error(prog, "--bad-ratio '%s': expected 0 to 1", arg);
            break;
        case O_SPIKE:
            if (c->gen.spike_count == LOADGEN_MAX_SPIKES)
                return usage_error(prog, "--spike '%s': at most 16 spikes", arg);
            if (loadgen_spike_parse(arg, &c->gen.spikes[c->gen.spike_count], spike_err,
                                    sizeof(spike_err)))
                return usage_error(prog, "%s", spike_err);
            c->gen.spike_count++;
            break;
        case O_PRICES:
            if (c->price_count == MAX_PRICE_FILES)
                return usage_error(prog, "--prices '%s': at most 16 times", arg);
            c->prices[c->price_count++] = arg;
            break;
        case O_TOTALS:
            c->totals = arg;
            break;
        case O_FLUSH_TIMEOUT:
            if (parse_double(arg, 0, 86400, &c->flush_timeout))
                return usage_error(prog, "--flush-timeout '%s': expected 0 to 86400 seconds", arg);
            break;
        case O_LIST:
            c->list = true;
            break;
        case O_QUIET:
            c->quiet = true;
            break;
        case O_HELP:
            print_help(stdout, prog);
            exit(0);
        case O_VERSION:
            printf("ai-finops-loadgen %s\n", FINOPS_VERSION);
            exit(0);
        case ':':
            return usage_error(prog, "%s needs a value", argv[optind - 1]);
        default:
            return usage_error(prog, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return usage_error(prog, "unexpected argument '%s'", argv[optind]);
    return 0;
}

/* --prices items are comma-separated files or directories (llm.yaml and
 * gpu.yaml inside); without any, the bundled directory. */
static int add_price_path(struct cli *c, const char *path, size_t len)
{
    char buf[4096];
    struct stat st;
    if (len == 0 || len >= sizeof(buf) - 16 || c->price_path_count + 2 > MAX_PRICE_FILES * 2)
        return -EINVAL;
    memcpy(buf, path, len);
    buf[len] = '\0';
    if (stat(buf, &st) == 0 && S_ISDIR(st.st_mode)) {
        static const char *const names[] = {"/llm.yaml", "/gpu.yaml"};
        for (int i = 0; i < 2; i++) {
            size_t n = strlen(names[i]);
            char *p = malloc(len + n + 1);
            if (!p)
                return -ENOMEM;
            memcpy(p, buf, len);
            memcpy(p + len, names[i], n + 1);
            c->price_paths[c->price_path_count++] = p;
        }
        return 0;
    }
    if (!(c->price_paths[c->price_path_count] = strdup(buf)))
        return -ENOMEM;
    c->price_path_count++;
    return 0;
}

static int load_prices(struct cli *c, struct price_table **out, char *err, size_t errlen)
{
    int rc = 0;
    if (c->price_count == 0)
        rc = add_price_path(c, price_table_bundled_dir(), strlen(price_table_bundled_dir()));
    for (size_t i = 0; i < c->price_count && !rc; i++) {
        const char *s = c->prices[i];
        while (!rc && *s) {
            size_t n = strcspn(s, ",");
            if (n)
                rc = add_price_path(c, s, n);
            s += n + (s[n] == ',');
        }
    }
    if (rc) {
        snprintf(err, errlen, "--prices: too many or too long paths");
        return rc;
    }
    return price_table_load(out, (const char *const *)c->price_paths, c->price_path_count, err,
                            errlen);
}

/* ---- clocks and signals ------------------------------------------------- */

static volatile sig_atomic_t stop_signal, hurry;

static void on_signal(int sig)
{
    if (stop_signal)
        hurry = 1; /* a second signal: stop waiting for deliveries */
    stop_signal = sig;
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    nanosleep(&ts, NULL); /* EINTR is fine: the loop re-checks the flag */
}

/* ---- the run ------------------------------------------------------------ */

struct app {
    struct cli *cli;
    const char *prog;
    struct loadgen *gen;
    struct loadgen_totals *totals;
    bool progress;
    uint64_t start_ns, duration_ns;
    bool virtual_time;

    /* Kafka */
    rd_kafka_t *rk;
    rd_kafka_topic_t *rkt;
    struct loadgen_contrib *slots; /* contributions of messages in flight */
    uint32_t *free_slots;
    size_t free_count, slot_count;
    rd_kafka_message_t *batch; /* waiting for kafka_flush_batch; payloads in `out` */
    size_t batch_count;
    uint64_t failed, possibly_persisted;
    char first_error[256];
    bool fatal;

    /* file */
    int fd;
    char *out;
    size_t out_len;
    struct loadgen_contrib *pending; /* events in `out`, counted once written */
    size_t pending_count;

    /* progress */
    uint64_t last_progress_ns, last_progress_events;
};

static void release_slot(struct app *a, void *slot)
{
    a->free_slots[a->free_count++] = (uint32_t)((struct loadgen_contrib *)slot - a->slots);
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct app *a = opaque;
    struct loadgen_contrib *slot = m->_private;
    (void)rk;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        loadgen_totals_add(a->totals, slot);
    } else {
        a->failed++;
        if (rd_kafka_message_status(m) == RD_KAFKA_MSG_STATUS_POSSIBLY_PERSISTED)
            a->possibly_persisted++;
        if (!a->first_error[0])
            snprintf(a->first_error, sizeof(a->first_error), "%s", rd_kafka_err2str(m->err));
    }
    release_slot(a, slot);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    struct app *a = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char why[512];
        rd_kafka_fatal_error(rk, why, sizeof(why));
        fprintf(stderr, "%s: fatal Kafka error: %s\n", a->prog, why);
        a->fatal = true;
        return;
    }
    if (!a->cli->quiet)
        fprintf(stderr, "%s: kafka: %s: %s\n", a->prog, rd_kafka_err2name(err), reason);
}

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    struct app *a = rd_kafka_opaque(rk);
    if (!a->cli->quiet)
        fprintf(stderr, "%s: librdkafka %d %s: %s\n", a->prog, level, fac, buf);
}

/* Throughput defaults (docs/loadgen.md has the measurements); -X wins. */
static const char *const producer_defaults[][2] = {
    {"linger.ms", "25"},
    {"batch.num.messages", "100000"},
    {"batch.size", "1000000"},
    /* Small on purpose: in-flight messages are malloc'd copies, and a
     * queue that fits in cache made the producer ~20% cheaper per event
     * than 1,000,000 (docs/loadgen.md); 50,000 is ~50 ms at full speed. */
    {"queue.buffering.max.messages", "50000"},
    {"compression.codec", "lz4"},
    /* Retries must not write a message twice: the totals count it once. */
    {"enable.idempotence", "true"},
};

static int kafka_open(struct app *a)
{
    char err[512];
    char value[64];
    size_t value_len = sizeof(value);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const struct cli *c = a->cli;
    if (rd_kafka_conf_set(conf, "bootstrap.servers", c->brokers, err, sizeof(err)))
        goto conf_error;
    for (size_t i = 0; i < sizeof(producer_defaults) / sizeof(producer_defaults[0]); i++)
        if (rd_kafka_conf_set(conf, producer_defaults[i][0], producer_defaults[i][1], err,
                              sizeof(err)))
            goto conf_error;
    for (size_t i = 0; i < c->property_count; i++)
        if (rd_kafka_conf_set(conf, c->properties[i][0], c->properties[i][1], err, sizeof(err))) {
            secret_ref_redact(err, c->properties[i][1]);
            goto conf_error;
        }
    /* One slot per message librdkafka may hold plus a batch, so a free
     * slot exists whenever the queue has room. */
    if (rd_kafka_conf_get(conf, "queue.buffering.max.messages", value, &value_len) !=
        RD_KAFKA_CONF_OK)
        snprintf(value, sizeof(value), "100000");
    a->slot_count = (size_t)strtoull(value, NULL, 10) + KAFKA_BATCH_MAX;
    a->slots = malloc(a->slot_count * sizeof(*a->slots));
    a->free_slots = malloc(a->slot_count * sizeof(*a->free_slots));
    a->batch = malloc(KAFKA_BATCH_MAX * sizeof(*a->batch));
    a->out = malloc(OUT_BUFFER_BYTES);
    if (!a->slots || !a->free_slots || !a->batch || !a->out) {
        rd_kafka_conf_destroy(conf);
        fprintf(stderr, "%s: out of memory for %zu in-flight messages\n", a->prog, a->slot_count);
        return -ENOMEM;
    }
    for (size_t i = 0; i < a->slot_count; i++)
        a->free_slots[i] = (uint32_t)(a->slot_count - 1 - i);
    a->free_count = a->slot_count;
    rd_kafka_conf_set_opaque(conf, a);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_log_cb(conf, on_log);
    a->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!a->rk) {
        rd_kafka_conf_destroy(conf);
        fprintf(stderr, "%s: cannot create the Kafka producer: %s\n", a->prog, err);
        return -EINVAL;
    }
    a->rkt = rd_kafka_topic_new(a->rk, c->topic, NULL);
    if (!a->rkt) {
        fprintf(stderr, "%s: topic '%s': %s\n", a->prog, c->topic,
                rd_kafka_err2str(rd_kafka_last_error()));
        return -EINVAL;
    }
    /* An absent topic would fail every message after a long timeout:
     * say so at once. An unreachable broker is only a warning, since
     * librdkafka keeps retrying (a pod may start before Kafka). */
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t merr = rd_kafka_metadata(a->rk, 0, a->rkt, &md, 10000);
    if (merr) {
        fprintf(stderr, "%s: warning: no metadata from %s yet: %s\n", a->prog, c->brokers,
                rd_kafka_err2str(merr));
    } else {
        rd_kafka_resp_err_t terr = md->topic_cnt ? md->topics[0].err : RD_KAFKA_RESP_ERR_NO_ERROR;
        rd_kafka_metadata_destroy(md);
        if (terr == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
            fprintf(stderr, "%s: topic '%s' does not exist on %s (create it first)\n", a->prog,
                    c->topic, c->brokers);
            return -ENOENT;
        }
    }
    return 0;
conf_error:
    rd_kafka_conf_destroy(conf);
    fprintf(stderr, "%s: Kafka property: %s\n", a->prog, err);
    return -EINVAL;
}

/*
 * Hands the batch to librdkafka (copied), in order. produce_batch reads
 * the clocks and takes the topic lock once per batch instead of once per
 * message. Once the queue is full every later message of the call fails
 * with QUEUE_FULL too, so the batch is resumed from the first of those
 * after serving delivery reports. Other errors lose only that message.
 * Returns 0, or -1 when abandoning the rest (second signal, fatal error).
 */
static int kafka_flush_batch(struct app *a)
{
    size_t done = 0;
    bool abandoned = false;
    while (done < a->batch_count) {
        rd_kafka_message_t *m = a->batch + done;
        size_t n = a->batch_count - done, i = 0;
        rd_kafka_produce_batch(a->rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, m, (int)n);
        for (; i < n && m[i].err != RD_KAFKA_RESP_ERR__QUEUE_FULL; i++) {
            if (m[i].err == RD_KAFKA_RESP_ERR_NO_ERROR)
                continue;
            /* never queued, so no delivery report will come */
            a->failed++;
            if (!a->first_error[0])
                snprintf(a->first_error, sizeof(a->first_error), "%s", rd_kafka_err2str(m[i].err));
            release_slot(a, m[i]._private);
        }
        done += i;
        if (done < a->batch_count) {
            if (a->fatal || hurry) {
                for (; done < a->batch_count; done++)
                    release_slot(a, a->batch[done]._private);
                abandoned = true;
                break;
            }
            rd_kafka_poll(a->rk, 10);
        }
    }
    a->batch_count = 0;
    a->out_len = 0;
    return abandoned || a->fatal ? -1 : 0;
}

/* Makes room for one more event in the batch (sending it when full) and
 * a slot for its contribution, which waits there for the delivery report. */
static int kafka_reserve(struct app *a)
{
    if (a->batch_count == KAFKA_BATCH_MAX ||
        a->out_len + LOADGEN_EVENT_BUFFER_BYTES > OUT_BUFFER_BYTES || a->free_count == 0) {
        if (kafka_flush_batch(a))
            return -1;
    }
    while (a->free_count == 0 && !a->fatal)
        rd_kafka_poll(a->rk, 10);
    return a->fatal ? -1 : 0;
}

/* Adds the event just written at out + out_len to the batch. */
static void kafka_append(struct app *a, const struct loadgen_event *ev)
{
    struct loadgen_contrib *slot = &a->slots[a->free_slots[--a->free_count]];
    *slot = ev->contrib;
    a->batch[a->batch_count++] = (rd_kafka_message_t){
        .partition = RD_KAFKA_PARTITION_UA,
        .payload = a->out + a->out_len,
        .len = ev->len,
        .key = (void *)ev->key,
        .key_len = ev->key_len,
        ._private = slot,
    };
    a->out_len += ev->len;
}

static void print_progress(struct app *a, uint64_t now, bool final)
{
    uint64_t events = loadgen_totals_events(a->totals);
    double dt = (double)(now - a->last_progress_ns) / 1e9;
    double rate = dt > 0 ? (double)(events - a->last_progress_events) / dt : 0;
    char dollars[MONEY_FORMAT_MAX + 1];
    uint64_t cost = loadgen_totals_cost_nanos(a->totals);
    /* cents are enough on a progress line */
    dollars[money_format(cost - cost % 10000000, dollars)] = '\0';
    fprintf(stderr, "\r%10.0f events/s %14llu events  $%s      %s", rate,
            (unsigned long long)events, dollars, final ? "\n" : "");
    fflush(stderr);
    a->last_progress_ns = now;
    a->last_progress_events = events;
}

/* Writes out the buffered lines; only then do they count. */
static int file_flush(struct app *a)
{
    size_t done = 0;
    while (done < a->out_len) {
        ssize_t n = write(a->fd, a->out + done, a->out_len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fprintf(stderr, "%s: write %s: %s\n", a->prog, a->cli->output, strerror(errno));
            return -errno;
        }
        done += (size_t)n;
    }
    for (size_t i = 0; i < a->pending_count; i++)
        loadgen_totals_add(a->totals, &a->pending[i]);
    a->out_len = 0;
    a->pending_count = 0;
    return 0;
}

static int file_reserve(struct app *a)
{
    if (a->out_len + LOADGEN_EVENT_BUFFER_BYTES + 1 > OUT_BUFFER_BYTES ||
        a->pending_count == OUT_PENDING_MAX)
        return file_flush(a) ? -1 : 0;
    return 0;
}

static void file_append(struct app *a, const struct loadgen_event *ev)
{
    a->out_len += ev->len;
    a->out[a->out_len++] = '\n';
    a->pending[a->pending_count++] = ev->contrib;
}

/* Waits up to the flush timeout for outstanding deliveries, in slices so a
 * second signal cuts it short; what is still queued is purged, and its
 * failed delivery reports served, so every message is accounted for. */
static void kafka_finish(struct app *a)
{
    uint64_t deadline = mono_ns() + (uint64_t)(a->cli->flush_timeout * 1e9);
    while (rd_kafka_outq_len(a->rk) > 0 && !hurry && !a->fatal && mono_ns() < deadline)
        rd_kafka_flush(a->rk, 100);
    if (rd_kafka_outq_len(a->rk) > 0) {
        rd_kafka_purge(a->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        uint64_t until = mono_ns() + 5000000000ull;
        while (rd_kafka_outq_len(a->rk) > 0 && mono_ns() < until)
            rd_kafka_poll(a->rk, 50);
    }
}

static int run(struct app *a)
{
    struct loadgen_event ev;
    const struct cli *c = a->cli;
    uint64_t n = 0, now = mono_ns();
    int64_t stamp = wall_ms();
    a->start_ns = a->last_progress_ns = now;
    while (!stop_signal && !a->fatal) {
        if (c->count && n >= c->count)
            break;
        uint64_t due = loadgen_schedule_ns(a->gen);
        if (c->rate > 0) {
            if (a->duration_ns && due >= a->duration_ns)
                break;
            now = mono_ns();
            /* Up to 1 ms ahead of schedule is fine; beyond, wait (serving
             * delivery reports meanwhile). */
            if (due > now - a->start_ns + 1000000) {
                uint64_t wait = due - (now - a->start_ns);
                wait = wait > 50000000 ? 50000000 : wait;
                /* What is batched goes out before waiting: no added latency. */
                if (a->rk ? kafka_flush_batch(a) : file_flush(a))
                    break;
                if (a->rk)
                    rd_kafka_poll(a->rk, (int)(wait / 1000000));
                else
                    sleep_ns(wait);
                if (a->progress && now - a->last_progress_ns >= 1000000000)
                    print_progress(a, now, false);
                if (!a->virtual_time)
                    stamp = wall_ms();
                continue;
            }
        }
        /* The wall clock is read every 64 events (and after every wait):
         * at full speed that is ~0.1 ms, below the timestamps' resolution. */
        if (!a->virtual_time && (n & 63) == 0)
            stamp = wall_ms();
        int64_t ts = a->virtual_time ? LOADGEN_VIRTUAL_TIME : stamp;
        /* Written straight into the batch / output buffer: no copy. */
        if ((a->rk ? kafka_reserve(a) : file_reserve(a)) != 0)
            break;
        loadgen_next_to(a->gen, ts, a->out + a->out_len, &ev);
        if (a->rk)
            kafka_append(a, &ev);
        else
            file_append(a, &ev);
        n++;
        if ((n & 1023) == 0) {
            if (a->rk)
                rd_kafka_poll(a->rk, 0);
            now = mono_ns();
            if (c->rate <= 0 && a->duration_ns && now - a->start_ns >= a->duration_ns)
                break;
            if (a->progress && now - a->last_progress_ns >= 1000000000)
                print_progress(a, now, false);
        }
    }
    if (a->rk) {
        kafka_flush_batch(a);
        kafka_finish(a);
    } else if (file_flush(a))
        return -EIO;
    if (a->progress)
        print_progress(a, mono_ns(), true);
    return a->fatal ? -EIO : 0;
}

/* The totals JSON, plus delivery outcomes under "events". */
static int write_totals(struct app *a)
{
    const struct cli *c = a->cli;
    cJSON *root = loadgen_totals_to_json(a->totals);
    cJSON *events = root ? cJSON_GetObjectItemCaseSensitive(root, "events") : NULL;
    char num[24];
    num[format_u64(a->failed, num)] = '\0';
    if (!events || !cJSON_AddRawToObject(events, "failed", num)) {
        cJSON_Delete(root);
        fprintf(stderr, "%s: out of memory writing the totals\n", a->prog);
        return -ENOMEM;
    }
    num[format_u64(a->possibly_persisted, num)] = '\0';
    if (a->possibly_persisted)
        cJSON_AddRawToObject(events, "failed_possibly_persisted", num);
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) {
        fprintf(stderr, "%s: out of memory writing the totals\n", a->prog);
        return -ENOMEM;
    }
    bool to_stdout_taken = c->output && strcmp(c->output, "-") == 0;
    FILE *f = c->totals ? fopen(c->totals, "w") : to_stdout_taken ? stderr : stdout;
    int rc = 0;
    if (!f) {
        fprintf(stderr, "%s: --totals %s: %s\n", a->prog, c->totals, strerror(errno));
        rc = -errno;
    } else {
        fputs(text, f);
        fputc('\n', f);
        if ((f == stdout || f == stderr) ? fflush(f) != 0 : fclose(f) != 0) {
            fprintf(stderr, "%s: writing the totals: %s\n", a->prog, strerror(errno));
            rc = -EIO;
        }
    }
    free(text);
    return rc;
}

static void list_projects(const struct loadgen *g)
{
    printf("%-45s %8s\n", "team/project", "share");
    for (size_t i = 0; i < loadgen_project_count(g); i++) {
        char key[300];
        snprintf(key, sizeof(key), "%s/%s", loadgen_project_team(g, i), loadgen_project_name(g, i));
        printf("%-45s %7.3f%%\n", key, 100 * loadgen_project_share(g, i));
    }
}

int main(int argc, char **argv)
{
    int exit_code = 1;
    char err[1024] = "";
    struct cli cli = {
        .brokers = "127.0.0.1:9092", .topic = "ai-costs", .timestamps = -1, .flush_timeout = 30};
    struct app app = {.cli = &cli, .prog = argv[0], .fd = -1};
    struct price_table *prices = NULL;

    loadgen_options_defaults(&cli.gen);
    if (parse_cli(&cli, argc, argv)) {
        exit_code = EXIT_USAGE;
        goto out;
    }
    if (load_prices(&cli, &prices, err, sizeof(err))) {
        fprintf(stderr, "%s: %s\n", argv[0], err);
        exit_code = EXIT_USAGE;
        goto out;
    }
    if (loadgen_new(&app.gen, prices, &cli.gen, err, sizeof(err))) {
        fprintf(stderr, "%s: %s\n", argv[0], err[0] ? err : "out of memory");
        exit_code = EXIT_USAGE;
        goto out;
    }
    if (cli.list) {
        list_projects(app.gen);
        exit_code = 0;
        goto out;
    }
    app.totals = loadgen_totals_new(app.gen);
    if (!app.totals) {
        fprintf(stderr, "%s: out of memory\n", argv[0]);
        goto out;
    }
    app.virtual_time = cli.timestamps == -1 ? cli.output != NULL : cli.timestamps == 0;
    app.duration_ns = (uint64_t)(cli.duration * 1e9);
    app.progress = !cli.quiet && isatty(STDERR_FILENO);

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal; /* no SA_RESTART: interrupt sleeps */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (cli.output) {
        app.fd = strcmp(cli.output, "-") == 0
                     ? STDOUT_FILENO
                     : open(cli.output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        app.out = malloc(OUT_BUFFER_BYTES);
        app.pending = malloc(OUT_PENDING_MAX * sizeof(*app.pending));
        if (app.fd < 0) {
            fprintf(stderr, "%s: --output %s: %s\n", argv[0], cli.output, strerror(errno));
            goto out;
        }
        if (!app.out || !app.pending) {
            fprintf(stderr, "%s: out of memory\n", argv[0]);
            goto out;
        }
    } else if (kafka_open(&app)) {
        goto out;
    }

    int rc = run(&app);
    double secs = (double)(mono_ns() - app.start_ns) / 1e9;
    uint64_t events = loadgen_totals_events(app.totals);
    if (!cli.quiet) {
        char dollars[MONEY_FORMAT_MAX + 1];
        dollars[money_format(loadgen_totals_cost_nanos(app.totals), dollars)] = '\0';
        fprintf(stderr,
                "%s: %llu events %s (%llu valid, %llu bad), %llu failed, in %.3f s: %.0f "
                "events/s, $%s\n",
                argv[0], (unsigned long long)events, app.rk ? "delivered" : "written",
                (unsigned long long)(events - loadgen_totals_bad(app.totals)),
                (unsigned long long)loadgen_totals_bad(app.totals), (unsigned long long)app.failed,
                secs, secs > 0 ? (double)events / secs : 0, dollars);
    }
    if (app.failed)
        fprintf(stderr,
                "%s: %llu messages failed delivery (%llu possibly persisted), first error: %s; "
                "they are not in the totals\n",
                argv[0], (unsigned long long)app.failed, (unsigned long long)app.possibly_persisted,
                app.first_error);
    if (write_totals(&app))
        rc = -EIO;
    exit_code = rc ? 1 : app.failed ? EXIT_UNDELIVERED : 0;
out:
    if (app.rkt)
        rd_kafka_topic_destroy(app.rkt);
    if (app.rk)
        rd_kafka_destroy(app.rk);
    if (app.fd > STDOUT_FILENO)
        close(app.fd);
    free(app.out);
    free(app.pending);
    free(app.slots);
    free(app.free_slots);
    free(app.batch);
    loadgen_totals_free(app.totals);
    loadgen_free(app.gen);
    price_table_free(prices);
    for (size_t i = 0; i < cli.property_count; i++)
        free(cli.property_text[i]);
    for (size_t i = 0; i < cli.price_path_count; i++)
        free(cli.price_paths[i]);
    return exit_code;
}

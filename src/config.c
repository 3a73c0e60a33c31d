/*
 * config.c - the option table and everything it drives (see config.h):
 * defaults, YAML files (libyaml's document API, so every node carries its
 * line and column), command-line flags, --help and docs/configuration.md.
 *
 * A YAML mapping nests by the dots of option names (`web:` then
 * `listen_address:` is `web.listen_address`); map options keep their keys
 * verbatim. Every error names where it is and what is allowed.
 * Thread-safety: start-up only, on the main thread.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "event.h"
#include "http_server.h"
#include "money.h"

enum option_type {
    OPT_STRING,   /* char *, never NULL */
    OPT_OPTIONAL, /* char *, NULL when unset */
    OPT_INT,      /* int64_t */
    OPT_MONEY,    /* int64_t nano-dollars, written as dollars */
    OPT_ENUM,     /* an enum stored as int */
    OPT_LIST,     /* struct string_list */
    OPT_MAP,      /* struct string_map */
};

typedef int (*option_check_fn)(const struct exporter_config *cfg, char *err, size_t errlen);

struct option_def {
    const char *name;
    enum option_type type;
    size_t offset;
    const char *def; /* default as text; NULL for none */
    int64_t min, max;
    const char *const *values; /* OPT_ENUM: allowed words, NULL-terminated */
    option_check_fn check;     /* extra validation of the parsed value */
    const char *help;
};

static const char *const log_levels[] = {"debug", "info", "warn", "error", NULL};
static const char *const log_formats[] = {"logfmt", "json", NULL};
static const char *const commit_modes[] = {"scrape", "periodic", NULL};
static const char *const price_prefs[] = {"event", "table", NULL};

static int check_listen_address(const struct exporter_config *cfg, char *err, size_t errlen)
{
    char host[128];
    unsigned port;
    if (parse_listen_address(cfg->web_listen_address, host, sizeof(host), &port) == 0)
        return 0;
    snprintf(err, errlen, "'%s' is not an address: use HOST:PORT, :PORT or [IPV6]:PORT",
             cfg->web_listen_address);
    return -EINVAL;
}

static int check_telemetry_path(const struct exporter_config *cfg, char *err, size_t errlen)
{
    const char *p = cfg->web_telemetry_path;
    if (p[0] == '/' && p[1] && strcmp(p, "/healthz") && strcmp(p, "/readyz"))
        return 0;
    snprintf(err, errlen, "'%s' must be a path starting with '/', other than /, /healthz, /readyz",
             p);
    return -EINVAL;
}

static int check_nonempty(const char *value, const char *what, char *err, size_t errlen)
{
    if (value && value[0])
        return 0;
    snprintf(err, errlen, "%s must not be empty", what);
    return -EINVAL;
}

static int check_unattributed(const struct exporter_config *cfg, char *err, size_t errlen)
{
    return check_nonempty(cfg->events_unattributed_label, "the label value", err, errlen);
}

static bool label_name_valid(const char *s)
{
    if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_'))
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_'))
            return false;
    return strncmp(s, "__", 2) != 0;
}

static int check_extra_labels(const struct exporter_config *cfg, char *err, size_t errlen)
{
    static const char *const builtin[] = {"team",    "project", "source",        "provider",
                                          "model",   "kind",    "instance_type", "gpu_type",
                                          "outcome", "reason",  "metric",        NULL};
    const struct string_list *l = &cfg->events_extra_labels;
    if (l->count > EVENT_MAX_EXTRA_LABELS) {
        snprintf(err, errlen, "at most %d extra labels are allowed (got %zu)",
                 EVENT_MAX_EXTRA_LABELS, l->count);
        return -EINVAL;
    }
    for (size_t i = 0; i < l->count; i++) {
        if (!label_name_valid(l->items[i])) {
            snprintf(err, errlen,
                     "'%s' is not a label name: use [a-zA-Z_][a-zA-Z0-9_]*, not starting with __",
                     l->items[i]);
            return -EINVAL;
        }
        for (int b = 0; builtin[b]; b++)
            if (strcmp(l->items[i], builtin[b]) == 0) {
                snprintf(err, errlen, "'%s' is already a built-in label; choose another name",
                         l->items[i]);
                return -EINVAL;
            }
        for (size_t j = 0; j < i; j++)
            if (strcmp(l->items[i], l->items[j]) == 0) {
                snprintf(err, errlen, "'%s' is listed twice", l->items[i]);
                return -EINVAL;
            }
    }
    return 0;
}

static int check_topics(const struct exporter_config *cfg, char *err, size_t errlen)
{
    if (cfg->kafka_topics.count == 0) {
        snprintf(err, errlen, "at least one topic is required");
        return -EINVAL;
    }
    for (size_t i = 0; i < cfg->kafka_topics.count; i++)
        if (check_nonempty(cfg->kafka_topics.items[i], "a topic name", err, errlen))
            return -EINVAL;
    return 0;
}

static int check_replicas(const struct exporter_config *cfg, char *err, size_t errlen)
{
    if (cfg->kafka_commit_replicas.count <= 30)
        return 0;
    snprintf(err, errlen, "at most 30 replicas can gate commits");
    return -EINVAL;
}

static int check_brokers(const struct exporter_config *cfg, char *err, size_t errlen)
{
    return check_nonempty(cfg->kafka_brokers, "the broker list", err, errlen);
}

static int check_group(const struct exporter_config *cfg, char *err, size_t errlen)
{
    return check_nonempty(cfg->kafka_group_id, "the group id", err, errlen);
}

#define OFF(field) offsetof(struct exporter_config, field)
#define NO_RANGE   0, 0

static const struct option_def options[] = {
    {"web.listen_address", OPT_STRING, OFF(web_listen_address), ":9400", NO_RANGE, NULL,
     check_listen_address,
     "Address to serve /metrics on: HOST:PORT, :PORT (all interfaces) or [IPV6]:PORT."},
    {"web.telemetry_path", OPT_STRING, OFF(web_telemetry_path), "/metrics", NO_RANGE, NULL,
     check_telemetry_path, "Path under which metrics are served."},
    {"web.max_connections", OPT_INT, OFF(web_max_connections), "64", 1, 100000, NULL, NULL,
     "Most HTTP connections served at once."},
    {"web.max_connections_per_ip", OPT_INT, OFF(web_max_connections_per_ip), "16", 1, 100000, NULL,
     NULL, "Most HTTP connections from one client address."},
    {"web.connection_timeout_seconds", OPT_INT, OFF(web_connection_timeout_seconds), "10", 1, 3600,
     NULL, NULL, "Idle HTTP connections are closed after this many seconds."},
    {"log.level", OPT_ENUM, OFF(log_level), "info", NO_RANGE, log_levels, NULL,
     "Least severe log level printed."},
    {"log.format", OPT_ENUM, OFF(log_format), "logfmt", NO_RANGE, log_formats, NULL,
     "Log line format on stderr."},
    {"input", OPT_OPTIONAL, OFF(input), NULL, NO_RANGE, NULL, NULL,
     "Read JSONL events from this file ('-' for stdin) instead of Kafka; the daemon keeps "
     "serving after the end of input."},
    {"events.max_bytes", OPT_INT, OFF(events_max_bytes), "65536", 64, 16777216, NULL, NULL,
     "Largest event accepted, in bytes (larger: rejected as too_large)."},
    {"events.max_cost_usd", OPT_MONEY, OFF(events_max_cost_nanos), "1000000", 1,
     10000000LL * 1000000000LL, NULL, NULL,
     "Largest cost_usd of one event, in dollars (larger: rejected as invalid_cost)."},
    {"events.max_label_bytes", OPT_INT, OFF(events_max_label_bytes), "128", 1, 4096, NULL, NULL,
     "Longest label value accepted, in bytes (longer: rejected as invalid_label)."},
    {"events.max_depth", OPT_INT, OFF(events_max_depth), "16", 2, 64, NULL, NULL,
     "Deepest nesting of JSON arrays/objects accepted (deeper: rejected as too_deep)."},
    {"events.unattributed_label", OPT_STRING, OFF(events_unattributed_label), "unattributed",
     NO_RANGE, NULL, check_unattributed, "Label value used when an event has no team or project."},
    {"events.extra_labels", OPT_LIST, OFF(events_extra_labels), "", NO_RANGE, NULL,
     check_extra_labels,
     "Keys of an event's \"labels\" object that become extra labels of "
     "ai_finops_cost_dollars_total (at most 8)."},
    {"counters.max_series", OPT_INT, OFF(counters_max_series), "100000", 1, 10000000, NULL, NULL,
     "Most label sets per metric family; past it, new label sets go to the __overflow__ "
     "series."},
    {"kafka.brokers", OPT_STRING, OFF(kafka_brokers), "127.0.0.1:9092", NO_RANGE, NULL,
     check_brokers, "Bootstrap brokers, comma-separated HOST:PORT."},
    {"kafka.group_id", OPT_STRING, OFF(kafka_group_id), "ai-finops-exporter", NO_RANGE, NULL,
     check_group, "Consumer group id."},
    {"kafka.topics", OPT_LIST, OFF(kafka_topics), "ai-costs", NO_RANGE, NULL, check_topics,
     "Topics to consume."},
    {"kafka.threads", OPT_INT, OFF(kafka_threads), "0", 0, 256, NULL, NULL,
     "Consumer threads (one librdkafka consumer each); 0 means one per online CPU."},
    {"kafka.properties", OPT_MAP, OFF(kafka_properties), "", NO_RANGE, NULL, NULL,
     "librdkafka properties passed verbatim (SASL, TLS, timeouts...), e.g. "
     "security.protocol: SASL_SSL. Config file only."},
    {"kafka.dlq_topic", OPT_STRING, OFF(kafka_dlq_topic), "ai-costs-dlq", NO_RANGE, NULL, NULL,
     "Dead-letter topic for rejected events; empty disables dead-lettering."},
    {"kafka.commit_mode", OPT_ENUM, OFF(kafka_commit_mode), "scrape", NO_RANGE, commit_modes, NULL,
     "scrape: commit only offsets whose increments a completed scrape served "
     "(docs/delivery.md); periodic: commit what was applied every commit_interval_ms."},
    {"kafka.commit_interval_ms", OPT_INT, OFF(kafka_commit_interval_ms), "5000", 100, 3600000, NULL,
     NULL, "Commit interval in periodic mode, in milliseconds."},
    {"kafka.shutdown_scrape_wait_ms", OPT_INT, OFF(kafka_shutdown_scrape_wait_ms), "30000", 0,
     600000, NULL, NULL,
     "On SIGTERM, how long to keep serving for scrapes to observe what was applied before "
     "committing, in milliseconds."},
    {"kafka.commit_replicas", OPT_LIST, OFF(kafka_commit_replicas), "", NO_RANGE, NULL,
     check_replicas,
     "Scrapers (the replica URL parameter, e.g. /metrics?replica=prom-a) that must all have "
     "seen an offset before it is committed; empty: any completed scrape."},
    {"pricing.file", OPT_OPTIONAL, OFF(pricing_file), NULL, NO_RANGE, NULL, NULL,
     "Extra price table (YAML) that overrides or extends the bundled one."},
    {"pricing.prefer", OPT_ENUM, OFF(pricing_prefer), "event", NO_RANGE, price_prefs, NULL,
     "When an event has cost_usd and priceable usage: which one is counted."},
    {"pricing.mismatch_tolerance_ppm", OPT_INT, OFF(pricing_mismatch_tolerance_ppm), "10000", 0,
     1000000, NULL, NULL,
     "Relative difference (parts per million) between cost_usd and the price table above "
     "which ai_finops_pricing_mismatch_total counts the event."},
};

#define OPTION_COUNT (sizeof(options) / sizeof(options[0]))

/* ---- values ------------------------------------------------------------ */

static void *field(struct exporter_config *cfg, const struct option_def *o)
{
    return (char *)cfg + o->offset;
}

static void list_clear(struct string_list *l)
{
    for (size_t i = 0; i < l->count; i++)
        free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

static void map_clear(struct string_map *m)
{
    for (size_t i = 0; i < m->count; i++) {
        free(m->keys[i]);
        free(m->values[i]);
    }
    free(m->keys);
    free(m->values);
    m->keys = m->values = NULL;
    m->count = 0;
}

static int list_push(struct string_list *l, const char *s, size_t len)
{
    char **items = realloc(l->items, (l->count + 1) * sizeof(char *));
    if (!items)
        return -ENOMEM;
    l->items = items;
    if (!(l->items[l->count] = strndup(s, len)))
        return -ENOMEM;
    l->count++;
    return 0;
}

static int map_put(struct string_map *m, const char *k, const char *v)
{
    char **keys = realloc(m->keys, (m->count + 1) * sizeof(char *));
    if (!keys)
        return -ENOMEM;
    m->keys = keys;
    char **values = realloc(m->values, (m->count + 1) * sizeof(char *));
    if (!values)
        return -ENOMEM;
    m->values = values;
    m->keys[m->count] = strdup(k);
    m->values[m->count] = strdup(v);
    if (!m->keys[m->count] || !m->values[m->count]) {
        free(m->keys[m->count]);
        free(m->values[m->count]);
        return -ENOMEM;
    }
    m->count++;
    return 0;
}

static void clear_value(struct exporter_config *cfg, const struct option_def *o)
{
    switch (o->type) {
    case OPT_STRING:
    case OPT_OPTIONAL:
        free(*(char **)field(cfg, o));
        *(char **)field(cfg, o) = NULL;
        break;
    case OPT_LIST:
        list_clear(field(cfg, o));
        break;
    case OPT_MAP:
        map_clear(field(cfg, o));
        break;
    default:
        break;
    }
}

static void format_dollars(int64_t nanos, char *out, size_t len)
{
    char text[MONEY_FORMAT_MAX + 1];
    text[money_format((uint64_t)nanos, text)] = '\0';
    snprintf(out, len, "%s", text);
}

static void describe_allowed(const struct option_def *o, char *out, size_t len)
{
    char lo[40], hi[40];
    switch (o->type) {
    case OPT_INT:
        snprintf(out, len, "an integer from %lld to %lld", (long long)o->min, (long long)o->max);
        break;
    case OPT_MONEY:
        format_dollars(o->min, lo, sizeof(lo));
        format_dollars(o->max, hi, sizeof(hi));
        snprintf(out, len, "dollars from %s to %s, at most 9 decimals", lo, hi);
        break;
    case OPT_ENUM: {
        size_t n = (size_t)snprintf(out, len, "one of");
        for (int i = 0; o->values[i] && n < len; i++)
            n += (size_t)snprintf(out + n, len - n, "%s %s", i ? "," : "", o->values[i]);
        break;
    }
    case OPT_LIST:
        snprintf(out, len, "a list of strings");
        break;
    case OPT_MAP:
        snprintf(out, len, "a mapping of string to string");
        break;
    default:
        snprintf(out, len, "a string");
        break;
    }
}

/* Sets a scalar-typed option (everything but list and map) from text. */
static int set_scalar(struct exporter_config *cfg, const struct option_def *o, const char *text,
                      char *err, size_t errlen)
{
    char allowed[256];
    describe_allowed(o, allowed, sizeof(allowed));
    switch (o->type) {
    case OPT_STRING:
    case OPT_OPTIONAL: {
        char *copy = strdup(text);
        if (!copy)
            return -ENOMEM;
        clear_value(cfg, o);
        *(char **)field(cfg, o) = copy;
        return 0;
    }
    case OPT_INT: {
        char *end;
        errno = 0;
        long long v = strtoll(text, &end, 10);
        if (errno || end == text || *end) {
            snprintf(err, errlen, "'%s' is not an integer: expected %s", text, allowed);
            return -EINVAL;
        }
        if (v < o->min || v > o->max) {
            snprintf(err, errlen, "%lld is out of range: expected %s", v, allowed);
            return -EINVAL;
        }
        *(int64_t *)field(cfg, o) = v;
        return 0;
    }
    case OPT_MONEY: {
        uint64_t nanos;
        if (money_parse_decimal(text, strlen(text), &nanos) || nanos > (uint64_t)INT64_MAX ||
            (int64_t)nanos < o->min || (int64_t)nanos > o->max) {
            snprintf(err, errlen, "'%s' is not allowed: expected %s", text, allowed);
            return -EINVAL;
        }
        *(int64_t *)field(cfg, o) = (int64_t)nanos;
        return 0;
    }
    case OPT_ENUM:
        for (int i = 0; o->values[i]; i++)
            if (strcmp(o->values[i], text) == 0) {
                *(int *)field(cfg, o) = i;
                return 0;
            }
        snprintf(err, errlen, "'%s' is not allowed: expected %s", text, allowed);
        return -EINVAL;
    default:
        snprintf(err, errlen, "expected %s", allowed);
        return -EINVAL;
    }
}

/* Comma-separated text, for defaults and flags of list options. */
static int set_list_text(struct exporter_config *cfg, const struct option_def *o, const char *text)
{
    struct string_list *l = field(cfg, o);
    list_clear(l);
    while (*text) {
        const char *comma = strchr(text, ',');
        size_t len = comma ? (size_t)(comma - text) : strlen(text);
        if (len && list_push(l, text, len))
            return -ENOMEM;
        text += len + (comma ? 1 : 0);
    }
    return 0;
}

static const struct option_def *find_option(const char *name)
{
    for (size_t i = 0; i < OPTION_COUNT; i++)
        if (strcmp(options[i].name, name) == 0)
            return &options[i];
    return NULL;
}

static void flag_of(const struct option_def *o, char *out, size_t len)
{
    size_t n = (size_t)snprintf(out, len, "--%s", o->name);
    for (size_t i = 2; i < n && i < len; i++)
        if (out[i] == '_')
            out[i] = '-';
}

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return 99;
    size_t row[65];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* " did you mean 'x'?" for the nearest option name, or "" if none is close. */
static void suggest(const char *name, bool as_flag, char *out, size_t len)
{
    const struct option_def *best = NULL;
    size_t best_d = 4;
    char flag[96];
    for (size_t i = 0; i < OPTION_COUNT; i++) {
        const char *candidate = options[i].name;
        if (as_flag) {
            flag_of(&options[i], flag, sizeof(flag));
            candidate = flag;
        }
        size_t d = edit_distance(name, candidate);
        if (d < best_d) {
            best_d = d;
            best = &options[i];
        }
    }
    out[0] = '\0';
    if (!best)
        return;
    if (as_flag) {
        flag_of(best, flag, sizeof(flag));
        snprintf(out, len, "; did you mean '%s'?", flag);
    } else {
        snprintf(out, len, "; did you mean '%s'?", best->name);
    }
}

void config_init_defaults(struct exporter_config *cfg)
{
    char err[256];
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < OPTION_COUNT; i++) {
        const struct option_def *o = &options[i];
        if (o->type == OPT_LIST)
            set_list_text(cfg, o, o->def);
        else if (o->type != OPT_MAP && o->def)
            set_scalar(cfg, o, o->def, err, sizeof(err));
    }
}

void config_free(struct exporter_config *cfg)
{
    for (size_t i = 0; i < OPTION_COUNT; i++)
        clear_value(cfg, &options[i]);
}

static int run_checks(const struct exporter_config *cfg, const struct option_def *only, char *err,
                      size_t errlen)
{
    for (size_t i = 0; i < OPTION_COUNT; i++) {
        const struct option_def *o = &options[i];
        if (o->check && (!only || only == o) && o->check(cfg, err, errlen))
            return -EINVAL;
    }
    return 0;
}

/* ---- YAML -------------------------------------------------------------- */

struct yaml_ctx {
    struct exporter_config *cfg;
    const char *name;
    yaml_document_t *doc;
    char *err;
    size_t errlen;
};

static int yaml_fail(struct yaml_ctx *y, yaml_mark_t mark, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int yaml_fail(struct yaml_ctx *y, yaml_mark_t mark, const char *fmt, ...)
{
    int n = snprintf(y->err, y->errlen, "%s:%zu:%zu: ", y->name, mark.line + 1, mark.column + 1);
    if (n < 0 || (size_t)n >= y->errlen)
        return -EINVAL;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(y->err + n, y->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

static const char *scalar_text(yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

static bool is_null_scalar(yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *s = scalar_text(n);
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

static const char *node_kind(yaml_node_t *n)
{
    return n->type == YAML_MAPPING_NODE    ? "a mapping"
           : n->type == YAML_SEQUENCE_NODE ? "a list"
                                           : "a scalar";
}

static int apply_node(struct yaml_ctx *y, const struct option_def *o, yaml_node_t *v)
{
    char allowed[256], msg[512];
    describe_allowed(o, allowed, sizeof(allowed));
    if (is_null_scalar(v) && o->type == OPT_OPTIONAL) {
        clear_value(y->cfg, o);
        return 0;
    }
    if (o->type == OPT_LIST) {
        if (v->type != YAML_SEQUENCE_NODE)
            return yaml_fail(y, v->start_mark, "%s: got %s, expected %s", o->name, node_kind(v),
                             allowed);
        struct string_list *l = field(y->cfg, o);
        list_clear(l);
        for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
             it++) {
            yaml_node_t *item = yaml_document_get_node(y->doc, *it);
            if (item->type != YAML_SCALAR_NODE)
                return yaml_fail(y, item->start_mark, "%s: list items must be strings, got %s",
                                 o->name, node_kind(item));
            if (list_push(l, scalar_text(item), item->data.scalar.length))
                return -ENOMEM;
        }
    } else if (o->type == OPT_MAP) {
        if (v->type != YAML_MAPPING_NODE && !is_null_scalar(v))
            return yaml_fail(y, v->start_mark, "%s: got %s, expected %s", o->name, node_kind(v),
                             allowed);
        struct string_map *m = field(y->cfg, o);
        map_clear(m);
        if (v->type != YAML_MAPPING_NODE)
            return 0;
        for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top;
             p++) {
            yaml_node_t *k = yaml_document_get_node(y->doc, p->key);
            yaml_node_t *val = yaml_document_get_node(y->doc, p->value);
            if (k->type != YAML_SCALAR_NODE || val->type != YAML_SCALAR_NODE)
                return yaml_fail(y, k->start_mark, "%s: keys and values must be strings", o->name);
            for (size_t i = 0; i < m->count; i++)
                if (strcmp(m->keys[i], scalar_text(k)) == 0)
                    return yaml_fail(y, k->start_mark, "duplicate key '%s' in %s", scalar_text(k),
                                     o->name);
            if (map_put(m, scalar_text(k), scalar_text(val)))
                return -ENOMEM;
        }
    } else {
        if (v->type != YAML_SCALAR_NODE)
            return yaml_fail(y, v->start_mark, "%s: got %s, expected %s", o->name, node_kind(v),
                             allowed);
        if (set_scalar(y->cfg, o, scalar_text(v), msg, sizeof(msg)))
            return yaml_fail(y, v->start_mark, "%s: %s", o->name, msg);
    }
    if (run_checks(y->cfg, o, msg, sizeof(msg)))
        return yaml_fail(y, v->start_mark, "%s: %s", o->name, msg);
    return 0;
}

static bool is_prefix_of_option(const char *prefix)
{
    size_t n = strlen(prefix);
    for (size_t i = 0; i < OPTION_COUNT; i++)
        if (strncmp(options[i].name, prefix, n) == 0 && options[i].name[n] == '.')
            return true;
    return false;
}

static int walk_mapping(struct yaml_ctx *y, yaml_node_t *map, const char *prefix)
{
    char msg[160];
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(y->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(y->doc, p->value);
        if (k->type != YAML_SCALAR_NODE)
            return yaml_fail(y, k->start_mark, "keys must be plain strings");
        for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++) {
            yaml_node_t *earlier = yaml_document_get_node(y->doc, q->key);
            if (earlier->type == YAML_SCALAR_NODE &&
                strcmp(scalar_text(earlier), scalar_text(k)) == 0)
                return yaml_fail(y, k->start_mark,
                                 "duplicate key '%s' (first at line %zu): keep only one",
                                 scalar_text(k), earlier->start_mark.line + 1);
        }
        char name[256];
        snprintf(name, sizeof(name), "%s%s%s", prefix, *prefix ? "." : "", scalar_text(k));
        const struct option_def *o = find_option(name);
        int rc;
        if (o) {
            rc = apply_node(y, o, v);
        } else if (is_prefix_of_option(name)) {
            if (v->type != YAML_MAPPING_NODE)
                return yaml_fail(y, v->start_mark, "%s: expected a mapping of options, got %s",
                                 name, node_kind(v));
            rc = walk_mapping(y, v, name);
        } else {
            suggest(name, false, msg, sizeof(msg));
            return yaml_fail(y, k->start_mark,
                             "unknown key '%s'%s (see docs/configuration.md for every option)",
                             name, msg);
        }
        if (rc)
            return rc;
    }
    return 0;
}

/* Aliases would let one node stand for several options; the document API
 * hides them, so look for them in the event stream first. */
static int reject_aliases(struct yaml_ctx *y, const char *data, size_t len)
{
    yaml_parser_t parser;
    yaml_event_t event;
    int rc = 0;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
    for (;;) {
        if (!yaml_parser_parse(&parser, &event))
            break; /* syntax errors are reported by the loader */
        yaml_event_type_t type = event.type;
        yaml_mark_t mark = event.start_mark;
        bool anchored = (type == YAML_SCALAR_EVENT && event.data.scalar.anchor) ||
                        (type == YAML_SEQUENCE_START_EVENT && event.data.sequence_start.anchor) ||
                        (type == YAML_MAPPING_START_EVENT && event.data.mapping_start.anchor);
        yaml_event_delete(&event);
        if (type == YAML_ALIAS_EVENT || anchored) {
            rc = yaml_fail(y, mark, "anchors and aliases are not supported: write the value out");
            break;
        }
        if (type == YAML_STREAM_END_EVENT)
            break;
    }
    yaml_parser_delete(&parser);
    return rc;
}

int config_load_buffer(struct exporter_config *cfg, const char *name, const char *data, size_t len,
                       char *errbuf, size_t errlen)
{
    struct yaml_ctx y = {cfg, name, NULL, errbuf, errlen};
    yaml_parser_t parser;
    yaml_document_t doc;
    int rc = reject_aliases(&y, data, len);
    if (rc)
        return rc;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
    if (!yaml_parser_load(&parser, &doc)) {
        rc = yaml_fail(&y, parser.problem_mark, "YAML syntax error: %s%s%s",
                       parser.problem ? parser.problem : "invalid document",
                       parser.context ? " " : "", parser.context ? parser.context : "");
        yaml_parser_delete(&parser);
        return rc;
    }
    y.doc = &doc;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root && !is_null_scalar(root)) {
        if (root->type != YAML_MAPPING_NODE)
            rc = yaml_fail(&y, root->start_mark,
                           "the configuration must be a mapping of options, got %s",
                           node_kind(root));
        else
            rc = walk_mapping(&y, root, "");
    }
    yaml_document_t next;
    if (!rc && yaml_parser_load(&parser, &next)) {
        if (yaml_document_get_root_node(&next))
            rc = yaml_fail(&y, parser.mark, "only one YAML document is allowed");
        yaml_document_delete(&next);
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return rc;
}

int config_load_file(struct exporter_config *cfg, const char *path, char *errbuf, size_t errlen)
{
    int rc = 0;
    char *data = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        rc = -errno;
        snprintf(errbuf, errlen, "%s: cannot read the configuration: %s", path, strerror(errno));
        return rc;
    }
    size_t cap = 0, len = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 4096;
            char *grown = realloc(data, cap);
            if (!grown) {
                rc = -ENOMEM;
                snprintf(errbuf, errlen, "%s: out of memory", path);
                goto out;
            }
            data = grown;
        }
        size_t n = fread(data + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
    }
    if (ferror(f)) {
        rc = -EIO;
        snprintf(errbuf, errlen, "%s: read error", path);
        goto out;
    }
    rc = config_load_buffer(cfg, path, data, len, errbuf, errlen);
out:
    free(data);
    fclose(f);
    return rc;
}

/* ---- command line ------------------------------------------------------ */

static const struct option_def *find_flag(const char *flag, size_t len)
{
    char name[96];
    for (size_t i = 0; i < OPTION_COUNT; i++) {
        flag_of(&options[i], name, sizeof(name));
        if (strlen(name) == len && strncmp(name, flag, len) == 0)
            return &options[i];
    }
    return NULL;
}

int config_parse_args(struct exporter_config *cfg, int argc, char **argv,
                      enum config_action *action, char *errbuf, size_t errlen)
{
    char msg[512];
    *action = CONFIG_ACTION_RUN;
    /* The file first, so flags override it wherever they stand. */
    for (int i = 1; i < argc; i++) {
        const char *path = NULL;
        if (strcmp(argv[i], "--config") == 0) {
            if (i + 1 >= argc) {
                snprintf(errbuf, errlen, "command line: --config needs a file name");
                return -EINVAL;
            }
            path = argv[++i];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            path = argv[i] + 9;
        }
        if (path) {
            int rc = config_load_file(cfg, path, errbuf, errlen);
            if (rc)
                return rc;
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--config") == 0) {
            i++;
            continue;
        }
        if (strncmp(arg, "--config=", 9) == 0)
            continue;
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            *action = CONFIG_ACTION_HELP;
            return 0;
        }
        if (strcmp(arg, "--version") == 0) {
            *action = CONFIG_ACTION_VERSION;
            return 0;
        }
        if (strcmp(arg, "--print-config-docs") == 0) {
            *action = CONFIG_ACTION_PRINT_DOCS;
            return 0;
        }
        if (strcmp(arg, "--check-config") == 0) {
            *action = CONFIG_ACTION_CHECK;
            continue;
        }
        const char *eq = strchr(arg, '=');
        size_t flag_len = eq ? (size_t)(eq - arg) : strlen(arg);
        const struct option_def *o = strncmp(arg, "--", 2) == 0 ? find_flag(arg, flag_len) : NULL;
        if (!o) {
            char flag[128];
            snprintf(flag, sizeof(flag), "%.*s", (int)flag_len, arg);
            suggest(flag, true, msg, sizeof(msg));
            snprintf(errbuf, errlen, "command line: unknown flag '%s'%s (see --help)", flag, msg);
            return -EINVAL;
        }
        const char *value;
        if (eq) {
            value = eq + 1;
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            snprintf(errbuf, errlen, "command line: %.*s needs a value", (int)flag_len, arg);
            return -EINVAL;
        }
        int rc;
        if (o->type == OPT_MAP) {
            snprintf(msg, sizeof(msg), "%s can only be set in the configuration file", o->name);
            rc = -EINVAL;
        } else if (o->type == OPT_LIST) {
            rc = set_list_text(cfg, o, value);
        } else {
            rc = set_scalar(cfg, o, value, msg, sizeof(msg));
        }
        if (!rc)
            rc = run_checks(cfg, o, msg, sizeof(msg));
        if (rc) {
            snprintf(errbuf, errlen, "command line: %.*s: %s", (int)flag_len, arg, msg);
            return -EINVAL;
        }
    }
    return 0;
}

/* ---- help and docs ----------------------------------------------------- */

static void default_text(const struct option_def *o, char *out, size_t len)
{
    if (o->type == OPT_MAP)
        snprintf(out, len, "{}");
    else if (o->type == OPT_LIST)
        snprintf(out, len, "[%s]", o->def ? o->def : "");
    else if (!o->def)
        snprintf(out, len, "unset");
    else if (o->type == OPT_STRING || o->type == OPT_OPTIONAL)
        snprintf(out, len, "\"%s\"", o->def);
    else
        snprintf(out, len, "%s", o->def);
}

void config_print_help(FILE *out, const char *program)
{
    fprintf(out,
            "Usage: %s [--config FILE] [--check-config] [FLAGS]\n\n"
            "Real-time AI spend for Prometheus: reads JSON cost events from Kafka (or --input)\n"
            "and serves exact counters on /metrics.\n\n"
            "  --config FILE         YAML configuration (flags override it)\n"
            "  --check-config        validate the configuration and exit (0 valid, 2 invalid)\n"
            "  --print-config-docs   print the configuration reference (Markdown)\n"
            "  --version             print the version\n"
            "  -h, --help            this help\n\nOptions (YAML key, flag, default):\n",
            program);
    for (size_t i = 0; i < OPTION_COUNT; i++) {
        const struct option_def *o = &options[i];
        char flag[96], def[128], allowed[256];
        flag_of(o, flag, sizeof(flag));
        default_text(o, def, sizeof(def));
        describe_allowed(o, allowed, sizeof(allowed));
        fprintf(out, "  %s (%s)\n      %s\n      default %s; %s\n", flag, o->name, o->help, def,
                allowed);
    }
}

void config_print_markdown(FILE *out)
{
    fprintf(out, "# Configuration reference\n\n"
                 "Generated from the option table in `src/config.c` by "
                 "`ai-finops-exporter --print-config-docs`; a test fails when this file is out "
                 "of date.\n\n"
                 "Every option has a default. Set it in the YAML file given with `--config` "
                 "(nested by the dots of its name) or with its flag; flags win over the file. "
                 "`--check-config` validates and exits 0, or 2 with `file:line:column: "
                 "message`.\n\n"
                 "```yaml\nweb:\n  listen_address: \":9400\"\nevents:\n  extra_labels: "
                 "[environment]\nkafka:\n  brokers: kafka-bootstrap:9092\n  topics: [ai-costs, "
                 "ai-api-costs, gpu-utilization-events]\n  properties:\n    security.protocol: "
                 "SASL_SSL\n```\n\n"
                 "| YAML key | flag | default | allowed | description |\n"
                 "|---|---|---|---|---|\n");
    for (size_t i = 0; i < OPTION_COUNT; i++) {
        const struct option_def *o = &options[i];
        char flag[96], def[128], allowed[256];
        flag_of(o, flag, sizeof(flag));
        default_text(o, def, sizeof(def));
        describe_allowed(o, allowed, sizeof(allowed));
        fprintf(out, "| `%s` | `%s` | `%s` | %s | %s |\n", o->name, flag, def, allowed, o->help);
    }
}

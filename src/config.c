/*
 * config.c - the exporter's configuration, driven by one declarative table.
 *
 * Each entry of options[] gives a YAML key, its flag, type, storage offset,
 * default (as text, parsed by the same code as user input so defaults obey
 * the same rules) and help; YAML loading, flags, --help and the Markdown
 * reference all walk that table. YAML is read as libyaml events rather than
 * a document tree so anchors/aliases can be refused and every error carries
 * its line and column. Loads work on a deep copy that replaces the caller's
 * config only on success, so a bad file or flag leaves it untouched.
 *
 * Thread-safety: the table is read-only; a config must not be loaded into
 * while other threads read it.
 */
#define _GNU_SOURCE /* asprintf */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <regex.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <yaml.h>

#include "cidr.h"
#include "event.h"
#include "event_kinds.h"
#include "money.h"
#include "secret_ref.h"

#define NANOS_PER_DOLLAR   ((int64_t)NANOS_PER_UNIT)
#define MONEY_MAX_DECIMALS 9
/* Caps keep duplicate detection (quadratic) cheap on hostile input. */
#define MAX_ITEMS      1024
#define MAX_FILE_BYTES (16L * 1024 * 1024)
/* web.scrapers is scanned at every accept: keep it a short list. */
#define WEB_SCRAPERS_MAX 64
/* User text echoed back in messages is cut to this many bytes. */
#define QUOTE_MAX  80
#define QUOTE(s)   (int)quote_len(s), (s)
#define HELP_WIDTH 79

enum opt_type {
    OPT_STRING,
    OPT_OPTIONAL_STRING, /* NULL when unset; "" also means unset */
    OPT_INT,
    OPT_MONEY, /* decimal US dollars, stored as int64 nano-dollars */
    OPT_ENUM,  /* stored in an int-sized enum; index into values[] */
    OPT_LIST,
    OPT_MAP,
    OPT_PROFILES, /* map of maps: name -> {key -> value} (struct mapping_profiles) */
};

/* Validates a string value, list item or map key; fills msg on error. */
typedef int (*check_fn)(const char *value, char *msg, size_t msglen);

struct option {
    const char *name; /* dotted YAML key */
    const char *flag; /* name with '_' -> '-', prefixed with "--" */
    enum opt_type type;
    size_t offset;               /* into struct exporter_config */
    const char *def;             /* default as text; lists comma-separated */
    int64_t min, max;            /* OPT_INT; OPT_MONEY in nano-dollars */
    const char *const *values;   /* OPT_ENUM, NULL-terminated */
    check_fn check;              /* strings, list items, map keys */
    check_fn check_value;        /* OPT_MAP values */
    size_t min_items, max_items; /* OPT_LIST; max 0 means MAX_ITEMS */
    bool bool_enum;              /* OPT_ENUM stored in a bool: values[1] is true */
    const char *allowed;         /* what check accepts, for messages and docs */
    const char *metavar;         /* flag argument name in --help */
    const char *help;
};

static const char *const log_levels[] = {"debug", "info", "warn", "error", NULL};
static const char *const log_formats[] = {"logfmt", "json", NULL};
static const char *const price_prefs[] = {"event", "table", NULL};

/* The enum tables above are indexed by the enum values and written via int *. */
_Static_assert(LOG_LEVEL_DEBUG == 0 && LOG_LEVEL_ERROR == 3 &&
                   sizeof(enum log_level) == sizeof(int),
               "log_levels[] must follow enum log_level");
_Static_assert(LOG_FORMAT_LOGFMT == 0 && LOG_FORMAT_JSON == 1 &&
                   sizeof(enum log_format) == sizeof(int),
               "log_formats[] must follow enum log_format");
_Static_assert(PRICE_PREFER_EVENT == 0 && PRICE_PREFER_TABLE == 1 &&
                   sizeof(enum price_preference) == sizeof(int),
               "price_prefs[] must follow enum price_preference");

/* Labels every series already has; an extra label must not collide. */
static const char *const builtin_labels[] = {"team",    "project", "source",        "provider",
                                             "model",   "kind",    "instance_type", "gpu_type",
                                             "outcome", "reason",  "metric",        NULL};

static int check_listen_address(const char *v, char *msg, size_t len);
static int check_http_path(const char *v, char *msg, size_t len);
static int check_nonempty(const char *v, char *msg, size_t len);
static int check_label_name(const char *v, char *msg, size_t len);
static int check_topic(const char *v, char *msg, size_t len);
static int check_dlq_topic(const char *v, char *msg, size_t len);
static int check_property_key(const char *v, char *msg, size_t len);
static int check_kind_spec(const char *v, char *msg, size_t len);
static int check_profile_name(const char *v, char *msg, size_t len);
static int check_team_project(const char *v, char *msg, size_t len);
static int check_scraper(const char *v, char *msg, size_t len);

static const char *const focus_columns[] = {"billed", "effective", NULL};

#define OFF(member) offsetof(struct exporter_config, member)
#define DOLLARS(n)  ((int64_t)(n)*NANOS_PER_DOLLAR)

static const struct option options[] = {
    {.name = "web.listen_address",
     .flag = "--web.listen-address",
     .type = OPT_STRING,
     .offset = OFF(web_listen_address),
     .def = ":9400",
     .check = check_listen_address,
     .allowed = "HOST:PORT with PORT 0-65535, such as :9400, 127.0.0.1:9400 or [::1]:9400",
     .metavar = "HOST:PORT",
     .help = "Address and TCP port of the HTTP server that Prometheus scrapes. \":9400\" "
             "listens on every interface; \"127.0.0.1:9400\" accepts local scrapes only."},
    {.name = "web.telemetry_path",
     .flag = "--web.telemetry-path",
     .type = OPT_STRING,
     .offset = OFF(web_telemetry_path),
     .def = "/metrics",
     .check = check_http_path,
     .allowed = "a URL path starting with '/', without spaces, '?' or '#'",
     .metavar = "PATH",
     .help = "URL path under which the metrics are exposed."},
    {.name = "web.max_connections",
     .flag = "--web.max-connections",
     .type = OPT_INT,
     .offset = OFF(web_max_connections),
     .def = "1024",
     .min = 1,
     .max = 100000,
     .help = "Maximum number of concurrent HTTP connections. Past it a new connection "
             "closes the oldest one that has not yet sent a whole request (an idle or "
             "slow client), so scrapes keep getting through; it is refused only when every "
             "connection is being answered. Each connection costs two file descriptors "
             "(the soft open-file limit is raised to fit)."},
    {.name = "web.max_connections_per_ip",
     .flag = "--web.max-connections-per-ip",
     .type = OPT_INT,
     .offset = OFF(web_max_connections_per_ip),
     .def = "32",
     .min = 1,
     .max = 100000,
     .help = "Maximum concurrent HTTP connections from one client IP address. Past it a "
             "new connection from that address closes that address's oldest connection "
             "that has not yet sent a whole request. A Prometheus HA pair uses one or two "
             "per replica and probes one each, so only a single abuser reaches it."},
    {.name = "web.scrapers",
     .flag = "--web.scrapers",
     .type = OPT_LIST,
     .offset = OFF(web_scrapers),
     .def = "",
     .check = check_scraper,
     .max_items = WEB_SCRAPERS_MAX,
     .allowed = "IPv4 or IPv6 addresses or CIDR ranges (10.0.0.0/8, 127.0.0.1, ::1/128, "
                "fd00::/8) without bits set after the prefix, each listed once, at most 64",
     .metavar = "CIDR,...",
     .help = "Addresses of the scrapers (Prometheus), which get web.scraper_connections "
             "connections that no other client may take: other clients share the rest, and "
             "one of them is closed (never a scraper) when they would hold more. A scraper "
             "arriving when every connection is taken closes another client's. IPv4 ranges "
             "also match IPv4-mapped IPv6 peers (::ffff:a.b.c.d). List the Prometheus pod "
             "CIDR, or the node CIDR when pods reach the exporter through SNAT; anyone inside "
             "the ranges counts as a scraper. In a YAML flow list quote IPv6 ones ([\"::1\"]). "
             "Empty (the default): no reservation. See docs/security.md."},
    {.name = "web.scraper_connections",
     .flag = "--web.scraper-connections",
     .type = OPT_INT,
     .offset = OFF(web_scraper_connections),
     .def = "8",
     .min = 1,
     .max = 100000,
     .help = "Connections reserved for web.scrapers (used only when that list is set; setting "
             "this without it is refused); must be less than web.max_connections. The "
             "default 8 covers a Prometheus HA pair (one kept-alive connection each per "
             "target), a reconnect overlapping the old connection's close, and a third "
             "scraper or the kubelet's probes when the node CIDR is listed, for under 1 % of "
             "the default 1024 connections. Scrapers beyond it use free connections of the "
             "others' share and, when all are taken, close another client's one."},
    {.name = "web.connection_timeout_seconds",
     .flag = "--web.connection-timeout-seconds",
     .type = OPT_INT,
     .offset = OFF(web_connection_timeout_seconds),
     .def = "10",
     .min = 1,
     .max = 3600,
     .help = "Seconds without progress after which a connection being answered (a client "
             "not reading its response) is closed."},
    {.name = "web.request_timeout_seconds",
     .flag = "--web.request-timeout-seconds",
     .type = OPT_INT,
     .offset = OFF(web_request_timeout_seconds),
     .def = "3",
     .min = 1,
     .max = 3600,
     .help = "Seconds a connection may take to send a whole request, counted from accept "
             "(or from the end of its previous request on a kept-alive connection). Slow "
             "headers and idle sockets are closed well before Prometheus's default 10 s "
             "scrape timeout; a scraper sends its request in milliseconds."},
    {.name = "web.config.file",
     .flag = "--web.config.file",
     .type = OPT_OPTIONAL_STRING,
     .offset = OFF(web_config_file),
     .def = NULL,
     .allowed = "a path to a web configuration file, or unset",
     .metavar = "PATH",
     .help = "TLS and basic authentication in the Prometheus exporter-toolkit format "
             "(tls_server_config, basic_auth_users with bcrypt hashes, "
             "http_server_config.headers); see docs/security.md. Re-read on SIGHUP and when the "
             "file or a certificate, key or client CA file it names changes (checked once a "
             "second): users and headers apply at once, TLS settings to new connections (a "
             "cert-manager renewal needs no restart), a bad file is refused and the running one "
             "kept; only turning TLS on or off applies on restart. Unset: plain HTTP without "
             "authentication."},
    {.name = "log.level",
     .flag = "--log.level",
     .type = OPT_ENUM,
     .offset = OFF(log_level),
     .def = "info",
     .values = log_levels,
     .help = "Minimum severity of the log lines written to standard error. Changes on "
             "SIGHUP without a restart."},
    {.name = "log.format",
     .flag = "--log.format",
     .type = OPT_ENUM,
     .offset = OFF(log_format),
     .def = "logfmt",
     .values = log_formats,
     .help = "Format of log lines: logfmt (key=value pairs) or json (one object per line). "
             "Changes on SIGHUP without a restart."},
    {.name = "input",
     .flag = "--input",
     .type = OPT_OPTIONAL_STRING,
     .offset = OFF(input),
     .def = NULL,
     .allowed = "a file path, - for standard input, or unset",
     .metavar = "PATH|-",
     .help = "Read events as JSON Lines from this file or FIFO instead of Kafka; \"-\" reads "
             "standard input. Unset (the default) consumes from Kafka. A line longer than "
             "events.max_bytes is skipped and counted as too_large without being held in memory. "
             "A missing, unreadable or directory path stops the start (exit 2). At the end of "
             "the input (end of file, the FIFO's last writer gone) the daemon keeps serving; a "
             "read error is logged, counted in ai_finops_input_read_errors_total and stops the "
             "input (/readyz then fails)."},
    {.name = "events.max_bytes",
     .flag = "--events.max-bytes",
     .type = OPT_INT,
     .offset = OFF(events_max_bytes),
     .def = "65536",
     .min = 64,
     .max = 16777216,
     .help = "Maximum size in bytes of one event; larger events are rejected without being "
             "parsed."},
    {.name = "events.max_cost_usd",
     .flag = "--events.max-cost-usd",
     .type = OPT_MONEY,
     .offset = OFF(events_max_cost_nanos),
     .def = "1000000",
     .min = 1,
     .max = DOLLARS(10000000),
     .help = "Largest plausible cost of one event, in US dollars; costlier events are "
             "rejected so one corrupt event cannot inflate the counters. Read exactly as a "
             "decimal number (no floating point), so at most 9 decimal places."},
    {.name = "events.max_label_bytes",
     .flag = "--events.max-label-bytes",
     .type = OPT_INT,
     .offset = OFF(events_max_label_bytes),
     .def = "128",
     .min = 1,
     .max = 4096,
     .help = "Maximum length in bytes of a label value taken from an event (team, project, "
             "model, ...)."},
    {.name = "events.max_depth",
     .flag = "--events.max-depth",
     .type = OPT_INT,
     .offset = OFF(events_max_depth),
     .def = "16",
     .min = 2,
     .max = 64,
     .help = "Maximum JSON nesting depth of an event; deeper events are rejected so they "
             "cannot exhaust the parser's stack."},
    {.name = "events.max_tokens",
     .flag = "--events.max-tokens",
     .type = OPT_INT,
     .offset = OFF(events_max_tokens),
     .def = "1000000000",
     .min = 1,
     .max = 9007199254740992LL,
     .help = "Largest token count of one kind in one event; larger counts are rejected "
             "(invalid_tokens) so one corrupt event cannot inflate the token counters or, "
             "priced, the cost."},
    {.name = "events.max_gpu_seconds",
     .flag = "--events.max-gpu-seconds",
     .type = OPT_INT,
     .offset = OFF(events_max_gpu_seconds),
     .def = "1000000000",
     .min = 1,
     .max = 10000000000LL,
     .help = "Largest gpu_count times duration_seconds of one event, in GPU-seconds; larger "
             "usage is rejected (invalid_usage)."},
    {.name = "events.max_future_seconds",
     .flag = "--events.max-future-seconds",
     .type = OPT_INT,
     .offset = OFF(events_max_future_seconds),
     .def = "86400",
     .min = 1,
     .max = 31622400,
     .help = "How far an event's timestamp may be ahead of this host's clock; later "
             "timestamps (and any before 2000) are rejected (invalid_timestamp), so one "
             "event cannot pin the freshness gauge."},
    {.name = "events.unattributed_label",
     .flag = "--events.unattributed-label",
     .type = OPT_STRING,
     .offset = OFF(events_unattributed_label),
     .def = "unattributed",
     .check = check_nonempty,
     .allowed = "a non-empty string",
     .metavar = "VALUE",
     .help = "Label value used for team or project when an event does not name one, so "
             "unattributed spend stays visible instead of being dropped."},
    {.name = "events.extra_labels",
     .flag = "--events.extra-labels",
     .type = OPT_LIST,
     .offset = OFF(events_extra_labels),
     .def = "",
     .check = check_label_name,
     .max_items = EVENT_MAX_EXTRA_LABELS,
     .allowed = "Prometheus label names ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __), none "
                "of them a built-in label (team, project, source, provider, model, kind, "
                "instance_type, gpu_type, outcome, reason, metric), each listed once, at "
                "most 8",
     .metavar = "NAME,...",
     .help = "Keys of an event's \"labels\" object that become extra labels on every series. "
             "Each extra label multiplies the number of series, so keep the list short."},
    {.name = "events.topic_kinds",
     .flag = "--events.topic-kinds",
     .type = OPT_MAP,
     .offset = OFF(events_topic_kinds),
     .def = "gpu-utilization-events=gpu_utilization",
     .check = check_topic,
     .check_value = check_kind_spec,
     .allowed = "Kafka topic names (each named by kafka.topics or matched by one of its ^patterns) "
                "mapped to KIND or KIND:PROFILE, KIND one of cost, gpu_utilization, focus, "
                "PROFILE an events.mappings name or a built-in profile (openai, anthropic: cost; "
                "dcgm: gpu_utilization) of that kind",
     .metavar = "TOPIC=KIND[:PROFILE]",
     .help = "The kind of event each topic carries (docs/events.md) and, for producers that "
             "keep their own JSON shape, the mapping profile that reads it. A topic not "
             "listed carries cost events with our field names; a topic subscribed by a "
             "pattern is looked up by its exact name. Setting the map replaces the default "
             "entry (which is ignored when kafka.topics does not subscribe its topic)."},
    {.name = "events.input_kind",
     .flag = "--events.input-kind",
     .type = OPT_STRING,
     .offset = OFF(events_input_kind),
     .def = "cost",
     .check = check_kind_spec,
     .allowed = "KIND or KIND:PROFILE as in events.topic_kinds",
     .metavar = "KIND[:PROFILE]",
     .help = "The kind of event (and optional mapping profile) of the lines read with --input."},
    {.name = "events.mappings",
     .flag = "--events.mappings",
     .type = OPT_PROFILES,
     .offset = OFF(events_mappings),
     .def = "",
     .check = check_profile_name,
     .allowed = "profile names (1-64 of a-z 0-9 _ -) mapped to {field: source}, each field one "
                "of the kind's fields (docs/events.md), each source \"/json/pointer\" (RFC "
                "6901), \"/a - /b\" or \"/a + /b\" (numeric fields), or \"=literal\"",
     .metavar = "PROFILE:FIELD=SOURCE",
     .help = "Field mapping profiles: how to read our fields from a producer's own JSON "
             "shape, named in events.topic_kinds or events.input_kind. A profile with the "
             "name of a built-in one (openai, anthropic, dcgm) replaces it. On the command "
             "line each flag sets one field of one profile. Unknown fields, bad pointers and "
             "a profile used for a kind it does not fit stop the start."},
    {.name = "gpu.utilization_silence_seconds",
     .flag = "--gpu.utilization-silence-seconds",
     .type = OPT_INT,
     .offset = OFF(gpu_utilization_silence_seconds),
     .def = "300",
     .min = 1,
     .max = 604800,
     .help = "A GPU's utilization and memory gauges are no longer shown once no sample has "
             "arrived for it for this long (wall clock at receipt); counters are not "
             "affected (docs/gpu.md)."},
    {.name = "gpu.namespace_teams",
     .flag = "--gpu.namespace-teams",
     .type = OPT_MAP,
     .offset = OFF(gpu_namespace_teams),
     .def = "",
     .check = check_nonempty,
     .check_value = check_team_project,
     .allowed = "Kubernetes namespaces mapped to \"team/project\" (both non-empty, no further "
                "'/')",
     .metavar = "NAMESPACE=TEAM/PROJECT",
     .help = "Team and project of GPU samples that name a namespace but no team: a sample's own "
             "team/project win, then this map, then events.unattributed_label (with the "
             "namespace as project)."},
    {.name = "focus.cost_column",
     .flag = "--focus.cost-column",
     .type = OPT_ENUM,
     .offset = OFF(focus_effective_cost),
     .def = "effective",
     .values = focus_columns,
     .bool_enum = true,
     .help = "Which FOCUS column is counted: EffectiveCost (the default: it amortises "
             "commitment purchases over the usage they cover, the column FOCUS recommends for "
             "allocating cost) or BilledCost (what the invoice charges, when)."},
    {.name = "focus.team_tag",
     .flag = "--focus.team-tag",
     .type = OPT_STRING,
     .offset = OFF(focus_team_tag),
     .def = "team",
     .check = check_nonempty,
     .allowed = "a non-empty string",
     .metavar = "KEY",
     .help = "Key of a FOCUS row's Tags that holds the team; a row without it is counted for "
             "events.unattributed_label."},
    {.name = "focus.project_tag",
     .flag = "--focus.project-tag",
     .type = OPT_STRING,
     .offset = OFF(focus_project_tag),
     .def = "project",
     .check = check_nonempty,
     .allowed = "a non-empty string",
     .metavar = "KEY",
     .help = "Key of a FOCUS row's Tags that holds the project; a row without it is counted "
             "for events.unattributed_label."},
    {.name = "counters.max_series",
     .flag = "--counters.max-series",
     .type = OPT_INT,
     .offset = OFF(counters_max_series),
     .def = "100000",
     .min = 1,
     .max = 10000000,
     .help = "Maximum number of series (label combinations) per metric family, bounding "
             "memory when label cardinality explodes."},
    {.name = "counters.new_series_hold_ms",
     .flag = "--counters.new-series-hold-ms",
     .type = OPT_INT,
     .offset = OFF(counters_new_series_hold_ms),
     .def = "35000",
     .min = 0,
     .max = 3600000,
     .help = "A new series is shown at 0 for this long before its value: Prometheus's "
             "increase() ignores a series' first sample, so each scraper must see it at 0 "
             "once. Set it above twice the scrape interval (the default suits 15 s); 0 "
             "turns it off for servers that ingest OpenMetrics _created timestamps."},
    {.name = "kafka.brokers",
     .flag = "--kafka.brokers",
     .type = OPT_STRING,
     .offset = OFF(kafka_brokers),
     .def = "127.0.0.1:9092",
     .check = check_nonempty,
     .allowed = "a non-empty, comma-separated list of host:port",
     .metavar = "HOST:PORT,...",
     .help = "Kafka bootstrap brokers, comma-separated."},
    {.name = "kafka.group_id",
     .flag = "--kafka.group-id",
     .type = OPT_STRING,
     .offset = OFF(kafka_group_id),
     .def = "ai-finops-exporter",
     .check = check_nonempty,
     .allowed = "a non-empty string",
     .metavar = "ID",
     .help = "Kafka consumer group; exporters sharing a group id split the partitions "
             "between them."},
    {.name = "kafka.topics",
     .flag = "--kafka.topics",
     .type = OPT_LIST,
     .offset = OFF(kafka_topics),
     .def = "ai-costs,ai-api-costs,gpu-utilization-events",
     .check = check_topic,
     .min_items = 1,
     .allowed = "at least one Kafka topic name (1-249 of a-z A-Z 0-9 . _ -), or a regular "
                "expression starting with ^, each listed once",
     .metavar = "TOPIC,...",
     .help = "Kafka topics to consume. A name starting with \"^\" is a regular expression "
             "(librdkafka pattern subscription). Neither may name or match kafka.dlq_topic "
             "(refused at start: rejected events would loop)."},
    {.name = "kafka.threads",
     .flag = "--kafka.threads",
     .type = OPT_INT,
     .offset = OFF(kafka_threads),
     .def = "0",
     .min = 0,
     .max = 256,
     .help = "Number of threads that decode and count Kafka messages (one consumer group member "
             "per process; its partitions are spread over these threads); 0 starts one per "
             "CPU the container may use: the cgroup CPU quota rounded up, capped by the CPUs "
             "online and the process's CPU affinity, at most 256."},
    {.name = "kafka.properties",
     .flag = "--kafka.properties",
     .type = OPT_MAP,
     .offset = OFF(kafka_properties),
     .def = "",
     .check = check_property_key,
     .allowed = "librdkafka property names and values, except bootstrap.servers, "
                "metadata.broker.list, group.id, enable.auto.commit and "
                "enable.auto.offset.store, which the exporter sets itself",
     .metavar = "KEY=VALUE",
     .help = "Extra librdkafka configuration properties passed verbatim, e.g. "
             "security.protocol, sasl.mechanism, ssl.ca.location. On the command line each "
             "flag sets one KEY=VALUE; the flag may be repeated and overrides the same key "
             "from the file. In any value (here, in a flag or in kafka.properties_file) "
             "${env:NAME} is replaced at start by the environment variable NAME, so a secret "
             "can come from the environment (e.g. sasl.password: \"${env:KAFKA_PASSWORD}\" "
             "with the variable set from a Kubernetes Secret); $${ stands for a literal ${. "
             "An unset variable stops the start (and --check-config) with an error naming "
             "the property and the variable. No value is ever logged, exported as a metric "
             "or quoted in an error."},
    {.name = "kafka.properties_file",
     .flag = "--kafka.properties-file",
     .type = OPT_OPTIONAL_STRING,
     .offset = OFF(kafka_properties_file),
     .def = NULL,
     .allowed = "a file path, or unset; each property in the file must not also be set in "
                "kafka.properties",
     .metavar = "PATH",
     .help = "File of extra librdkafka properties, one KEY=VALUE per line (Java properties "
             "style: blank lines and lines starting with # or ! are skipped, the line is split "
             "at its first '=', spaces around the key and before the value are dropped, the "
             "rest of the value is kept verbatim: no escapes or continuation lines). Meant for "
             "credentials kept out of the YAML file, such as a mounted Kubernetes Secret holding "
             "sasl.username and sasl.password. Its properties are added to kafka.properties "
             "after the file and flags are applied; a property set in both places is refused "
             "rather than silently overridden, and so is a property listed twice in the file. "
             "Errors name the file, line and column, never a value."},
    {.name = "kafka.dlq_topic",
     .flag = "--kafka.dlq-topic",
     .type = OPT_STRING,
     .offset = OFF(kafka_dlq_topic),
     .def = "ai-costs-dlq",
     .check = check_dlq_topic,
     .allowed = "a Kafka topic name (1-249 of a-z A-Z 0-9 . _ -), or \"\" to disable",
     .metavar = "TOPIC",
     .help = "Dead-letter topic to which rejected events are copied for inspection; \"\" "
             "disables it."},
    {.name = "kafka.state_topic",
     .flag = "--kafka.state-topic",
     .type = OPT_STRING,
     .offset = OFF(kafka_state_topic),
     .def = "ai-finops-state",
     .check = check_topic,
     .allowed = "a Kafka topic name (1-249 of a-z A-Z 0-9 . _ -)",
     .metavar = "TOPIC",
     .help = "Compacted topic holding the counters' checkpoints: each checkpoint writes the "
             "changed series and the input positions in one Kafka transaction, and a process "
             "that is assigned a partition restores its series from here "
             "(docs/delivery.md). Created (compacted, 10 partitions) when missing; never "
             "change its partition count."},
    {.name = "kafka.checkpoint_interval_ms",
     .flag = "--kafka.checkpoint-interval-ms",
     .type = OPT_INT,
     .offset = OFF(kafka_checkpoint_interval_ms),
     .def = "1000",
     .min = 50,
     .max = 600000,
     .help = "Milliseconds between checkpoints. Scrapes show what the last checkpoint holds, "
             "so this is how far /metrics lags the stream."},
    {.name = "kafka.transactional_id",
     .flag = "--kafka.transactional-id",
     .type = OPT_OPTIONAL_STRING,
     .offset = OFF(kafka_transactional_id),
     .def = NULL,
     .check = check_nonempty,
     .allowed = "a non-empty string, or unset",
     .metavar = "ID",
     .help = "Transactional id of the checkpoint producer; unset uses "
             "\"ai-finops-exporter-\" and the host name (the pod name). It must differ between "
             "processes that run at the same time; a restarted process that keeps it aborts its "
             "predecessor's open checkpoint at once instead of waiting for "
             "kafka.transaction_timeout_ms."},
    {.name = "kafka.transaction_timeout_ms",
     .flag = "--kafka.transaction-timeout-ms",
     .type = OPT_INT,
     .offset = OFF(kafka_transaction_timeout_ms),
     .def = "10000",
     .min = 1000,
     .max = 900000,
     .help = "Transaction timeout of a checkpoint: the broker aborts a checkpoint left open "
             "this long (by a killed process), and a new owner of its partitions waits at most "
             "this long (plus the broker's abort check) before restoring."},
    {.name = "kafka.shutdown_timeout_ms",
     .flag = "--kafka.shutdown-timeout-ms",
     .type = OPT_INT,
     .offset = OFF(kafka_shutdown_timeout_ms),
     .def = "10000",
     .min = 0,
     .max = 600000,
     .help = "How long SIGTERM waits for the final checkpoint before leaving the group; what "
             "it does not cover is re-read by the next owner, never lost or counted twice."},
    {.name = "pricing.file",
     .flag = "--pricing.file",
     .type = OPT_OPTIONAL_STRING,
     .offset = OFF(pricing_file),
     .def = NULL,
     .allowed = "a file path, or unset",
     .metavar = "PATH",
     .help = "Price table file that adds to or overrides the built-in prices; unset uses the "
             "built-in prices only."},
    {.name = "pricing.prefer",
     .flag = "--pricing.prefer",
     .type = OPT_ENUM,
     .offset = OFF(pricing_prefer),
     .def = "event",
     .values = price_prefs,
     .help = "Which cost wins when an event carries its own cost and the price table also "
             "prices it: the event's or the table's."},
    {.name = "pricing.mismatch_tolerance_ppm",
     .flag = "--pricing.mismatch-tolerance-ppm",
     .type = OPT_INT,
     .offset = OFF(pricing_mismatch_tolerance_ppm),
     .def = "10000",
     .min = 0,
     .max = 1000000,
     .help = "Relative difference, in parts per million, tolerated between an event's own "
             "cost and the price-table cost before the two are reported as a mismatch."},
};

#define N_OPTIONS (sizeof options / sizeof options[0])

/* Flags that are not options: they steer what the program does. */
static const struct {
    const char *flag;
    const char *metavar;
    const char *help;
} general_flags[] = {
    {"--config", "FILE", "Load options from this YAML file; flags are applied on top of it."},
    {"--check-config", NULL, "Validate the configuration (file and flags) and exit."},
    {"-h, --help", NULL, "Show this help and exit."},
    {"--version", NULL, "Print the version and exit."},
    {"--print-config-docs", NULL, "Print the configuration reference as Markdown and exit."},
};

static const char yaml_example[] = "web:\n"
                                   "  listen_address: \"127.0.0.1:9400\"\n"
                                   "events:\n"
                                   "  max_cost_usd: 1000000\n"
                                   "  extra_labels: [environment, cost_center]\n"
                                   "kafka:\n"
                                   "  topics: [ai-costs, ai-api-costs]\n"
                                   "  properties:\n"
                                   "    security.protocol: SASL_SSL\n"
                                   "    sasl.mechanism: PLAIN\n";

/* ------------------------------------------------------------------------ */
/* Small helpers */

static size_t quote_len(const char *s)
{
    size_t n = strlen(s);
    return n > QUOTE_MAX ? QUOTE_MAX : n;
}

static int msgf(char *msg, size_t len, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int msgf(char *msg, size_t len, int rc, const char *fmt, ...)
{
    va_list ap;

    if (msg && len) {
        va_start(ap, fmt);
        vsnprintf(msg, len, fmt, ap);
        va_end(ap);
    }
    return rc;
}

static int oom(char *msg, size_t len)
{
    return msgf(msg, len, -ENOMEM, "out of memory");
}

static void *field(struct exporter_config *cfg, const struct option *o)
{
    return (char *)cfg + o->offset;
}

static const void *cfield(const struct exporter_config *cfg, const struct option *o)
{
    return (const char *)cfg + o->offset;
}

static const struct option *find_option(const char *name)
{
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (strcmp(options[i].name, name) == 0)
            return &options[i];
    return NULL;
}

static const struct option *find_flag(const char *flag, size_t len)
{
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (strlen(options[i].flag) == len && memcmp(options[i].flag, flag, len) == 0)
            return &options[i];
    return NULL;
}

/* True when `name` is a strict dotted prefix of some option, e.g. "web". */
static bool is_section(const char *name)
{
    size_t n = strlen(name);

    for (size_t i = 0; i < N_OPTIONS; i++)
        if (strncmp(options[i].name, name, n) == 0 && options[i].name[n] == '.')
            return true;
    return false;
}

static size_t section_len(const char *name)
{
    const char *dot = strchr(name, '.');
    return dot ? (size_t)(dot - name) : strlen(name);
}

/* Levenshtein distance, or SIZE_MAX when it exceeds limit; long strings are
 * not worth suggesting for. The limit cuts the work: only a distance within
 * a third of the key's length is ever suggested, so most candidates are
 * dropped on their length alone or after a few rows (every row's minimum is
 * a lower bound of the result). An unknown key used to cost 200 full tables. */
#define SUGGEST_MAX_LEN 64
static size_t edit_distance(const char *a, size_t la, const char *b, size_t lb, size_t limit)
{
    size_t prev[SUGGEST_MAX_LEN + 1], cur[SUGGEST_MAX_LEN + 1];

    if (la > SUGGEST_MAX_LEN || lb > SUGGEST_MAX_LEN || (la > lb ? la - lb : lb - la) > limit)
        return SIZE_MAX;
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t row_min = cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
            if (cur[j] < row_min)
                row_min = cur[j];
        }
        if (row_min > limit)
            return SIZE_MAX;
        memcpy(prev, cur, (lb + 1) * sizeof prev[0]);
    }
    return prev[lb] <= limit ? prev[lb] : SIZE_MAX;
}

struct suggestion {
    const char *best;
    size_t best_len;
    size_t dist;
};

static void suggest_consider(struct suggestion *s, const char *want, const char *cand,
                             size_t cand_len)
{
    size_t want_len = strlen(want);
    /* only a closer candidate replaces the best, and suggestion_ok takes
     * none farther than a third of the key's length */
    size_t limit = want_len / 3;

    if (s->dist == 0)
        return;
    if (limit > s->dist - 1)
        limit = s->dist - 1;
    size_t d = edit_distance(want, want_len, cand, cand_len, limit);
    if (d < s->dist) {
        s->best = cand;
        s->best_len = cand_len;
        s->dist = d;
    }
}

/* Close enough to be a typo rather than a different word. */
static bool suggestion_ok(const struct suggestion *s, const char *want)
{
    return s->best && s->dist > 0 && s->dist * 3 <= strlen(want);
}

/* Closest YAML key (option or section) to an unknown dotted key. */
static struct suggestion suggest_key(const char *key)
{
    struct suggestion s = {NULL, 0, SIZE_MAX};
    const char *leaf = strrchr(key, '.');

    leaf = leaf ? leaf + 1 : key;
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const char *dot = strchr(options[i].name, '.');
        /* "listen_address" at the top level most likely meant web.listen_address */
        if (dot && strcmp(dot + 1, leaf) == 0 && strcmp(options[i].name, key) != 0) {
            s.best = options[i].name;
            s.best_len = strlen(s.best);
            s.dist = 1;
            return s;
        }
        suggest_consider(&s, key, options[i].name, strlen(options[i].name));
        suggest_consider(&s, key, options[i].name, section_len(options[i].name));
    }
    return s;
}

/* ------------------------------------------------------------------------ */
/* Lists and maps */

static void list_clear(struct string_list *l)
{
    for (size_t i = 0; i < l->count; i++)
        free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

static int list_push(struct string_list *l, const char *s)
{
    char *copy = strdup(s);
    char **items;

    if (!copy)
        return -ENOMEM;
    items = realloc(l->items, (l->count + 1) * sizeof *items);
    if (!items) {
        free(copy);
        return -ENOMEM;
    }
    items[l->count++] = copy;
    l->items = items;
    return 0;
}

static int list_copy(struct string_list *dst, const struct string_list *src)
{
    dst->items = NULL;
    dst->count = 0;
    for (size_t i = 0; i < src->count; i++) {
        if (list_push(dst, src->items[i]) != 0) {
            list_clear(dst);
            return -ENOMEM;
        }
    }
    return 0;
}

static void map_clear(struct string_map *m)
{
    for (size_t i = 0; i < m->count; i++) {
        free(m->keys[i]);
        free(m->values[i]);
    }
    free(m->keys);
    free(m->values);
    m->keys = NULL;
    m->values = NULL;
    m->count = 0;
}

static ssize_t map_find(const struct string_map *m, const char *key)
{
    for (size_t i = 0; i < m->count; i++)
        if (strcmp(m->keys[i], key) == 0)
            return (ssize_t)i;
    return -1;
}

/* Adds key=value, or replaces the value of an existing key. */
static int map_set(struct string_map *m, const char *key, const char *value)
{
    ssize_t at = map_find(m, key);
    char *k = NULL, *v = strdup(value);
    char **keys, **values;

    if (!v)
        return -ENOMEM;
    if (at >= 0) {
        free(m->values[at]);
        m->values[at] = v;
        return 0;
    }
    k = strdup(key);
    if (!k)
        goto fail;
    keys = realloc(m->keys, (m->count + 1) * sizeof *keys);
    if (!keys)
        goto fail;
    m->keys = keys;
    values = realloc(m->values, (m->count + 1) * sizeof *values);
    if (!values)
        goto fail;
    m->values = values;
    m->keys[m->count] = k;
    m->values[m->count] = v;
    m->count++;
    return 0;
fail:
    free(k);
    free(v);
    return -ENOMEM;
}

static int map_copy(struct string_map *dst, const struct string_map *src)
{
    memset(dst, 0, sizeof *dst);
    for (size_t i = 0; i < src->count; i++) {
        if (map_set(dst, src->keys[i], src->values[i]) != 0) {
            map_clear(dst);
            return -ENOMEM;
        }
    }
    return 0;
}

static void profiles_clear(struct mapping_profiles *p)
{
    for (size_t i = 0; i < p->count; i++) {
        free(p->names[i]);
        map_clear(&p->fields[i]);
    }
    free(p->names);
    free(p->fields);
    memset(p, 0, sizeof *p);
}

static ssize_t profiles_find(const struct mapping_profiles *p, const char *name)
{
    for (size_t i = 0; i < p->count; i++)
        if (strcmp(p->names[i], name) == 0)
            return (ssize_t)i;
    return -1;
}

/* The profile named name, added empty if missing; NULL when out of memory. */
static struct string_map *profiles_get(struct mapping_profiles *p, const char *name)
{
    ssize_t at = profiles_find(p, name);
    if (at >= 0)
        return &p->fields[at];
    char *copy = strdup(name);
    char **names = copy ? realloc(p->names, (p->count + 1) * sizeof *names) : NULL;
    if (!names) {
        free(copy);
        return NULL;
    }
    p->names = names;
    struct string_map *fields = realloc(p->fields, (p->count + 1) * sizeof *fields);
    if (!fields) {
        free(copy);
        return NULL;
    }
    p->fields = fields;
    p->names[p->count] = copy;
    memset(&p->fields[p->count], 0, sizeof p->fields[p->count]);
    return &p->fields[p->count++];
}

static int profiles_copy(struct mapping_profiles *dst, const struct mapping_profiles *src)
{
    memset(dst, 0, sizeof *dst);
    for (size_t i = 0; i < src->count; i++) {
        struct string_map *m = profiles_get(dst, src->names[i]);
        if (!m || map_copy(m, &src->fields[i]) != 0) {
            profiles_clear(dst);
            return -ENOMEM;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Validators */

static int check_nonempty(const char *v, char *msg, size_t len)
{
    if (v[0] == '\0')
        return msgf(msg, len, -EINVAL, "must not be empty");
    return 0;
}

/* "KIND" or "KIND:PROFILE"; whether the profile exists and fits the kind is
 * checked once the whole config is known (check_event_kinds). */
static int check_kind_spec(const char *v, char *msg, size_t len)
{
    const char *colon = strchr(v, ':');
    size_t klen = colon ? (size_t)(colon - v) : strlen(v);
    if (event_kind_parse(v, klen) < 0)
        return msgf(msg, len, -EINVAL,
                    "'%.*s' is not KIND or KIND:PROFILE with KIND one of cost, gpu_utilization, "
                    "focus",
                    QUOTE(v));
    if (colon && check_profile_name(colon + 1, msg, len) != 0)
        return -EINVAL;
    return 0;
}

static int check_team_project(const char *v, char *msg, size_t len)
{
    const char *slash = strchr(v, '/');
    if (!slash || slash == v || slash[1] == '\0' || strchr(slash + 1, '/'))
        return msgf(msg, len, -EINVAL, "'%.*s' is not TEAM/PROJECT (both non-empty, one '/')",
                    QUOTE(v));
    if (!utf8_valid(v, strlen(v)))
        return msgf(msg, len, -EINVAL, "'%.*s' is not UTF-8", QUOTE(v));
    return 0;
}

static int check_profile_name(const char *v, char *msg, size_t len)
{
    size_t n = strlen(v);
    if (n == 0 || n > 64)
        return msgf(msg, len, -EINVAL, "profile name '%.*s' must be 1-64 of a-z 0-9 _ -", QUOTE(v));
    for (size_t i = 0; i < n; i++)
        if (!((v[i] >= 'a' && v[i] <= 'z') || (v[i] >= '0' && v[i] <= '9') || v[i] == '_' ||
              v[i] == '-'))
            return msgf(msg, len, -EINVAL, "profile name '%.*s' must be 1-64 of a-z 0-9 _ -",
                        QUOTE(v));
    return 0;
}

static int check_listen_address(const char *v, char *msg, size_t len)
{
    const char *colon = strrchr(v, ':');
    const char *p;
    long port = 0;

    if (!colon)
        goto bad;
    if (v[0] == '[') {
        /* bracketed IPv6: "[" addr "]" ":" port */
        if (colon - v < 3 || colon[-1] != ']' || memchr(v + 1, ']', (size_t)(colon - v - 2)))
            goto bad;
    } else if (memchr(v, ':', (size_t)(colon - v)) || memchr(v, '[', (size_t)(colon - v)) ||
               memchr(v, ']', (size_t)(colon - v))) {
        goto bad;
    }
    for (p = v; p < colon; p++)
        if (isspace((unsigned char)*p))
            goto bad;
    if (colon[1] == '\0' || strlen(colon + 1) > 5)
        goto bad;
    for (p = colon + 1; *p; p++) {
        if (!isdigit((unsigned char)*p))
            goto bad;
        port = port * 10 + (*p - '0');
    }
    if (port > 65535)
        goto bad;
    return 0;
bad:
    return msgf(msg, len, -EINVAL,
                "must be HOST:PORT with PORT 0-65535, such as :9400, 127.0.0.1:9400 or "
                "[::1]:9400; got '%.*s'",
                QUOTE(v));
}

static int check_http_path(const char *v, char *msg, size_t len)
{
    bool ok = v[0] == '/';

    for (const char *p = v; ok && *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f || *p == '?' || *p == '#')
            ok = false;
    if (!ok)
        return msgf(msg, len, -EINVAL,
                    "must be a URL path starting with '/' without spaces, '?' or '#', such as "
                    "/metrics; got '%.*s'",
                    QUOTE(v));
    return 0;
}

static int check_label_name(const char *v, char *msg, size_t len)
{
    bool ok = isalpha((unsigned char)v[0]) || v[0] == '_';

    for (const char *p = v; ok && *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_')
            ok = false;
    if (!ok)
        return msgf(msg, len, -EINVAL,
                    "'%.*s' is not a valid Prometheus label name: use letters, digits and '_', "
                    "not starting with a digit",
                    QUOTE(v));
    if (v[0] == '_' && v[1] == '_')
        return msgf(msg, len, -EINVAL,
                    "'%.*s' starts with '__', which Prometheus reserves for internal labels; "
                    "choose another name",
                    QUOTE(v));
    for (size_t i = 0; builtin_labels[i]; i++)
        if (strcmp(v, builtin_labels[i]) == 0)
            return msgf(msg, len, -EINVAL,
                        "'%s' is a built-in label of every series; remove it or choose another "
                        "name",
                        v);
    return 0;
}

static bool topic_name_ok(const char *v)
{
    size_t n = strlen(v);

    if (n == 0 || n > 249)
        return false;
    for (const char *p = v; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '_' && *p != '-')
            return false;
    return true;
}

static int check_topic(const char *v, char *msg, size_t len)
{
    if (v[0] == '^' && v[1] != '\0')
        return 0; /* regex subscription, validated by librdkafka */
    if (!topic_name_ok(v))
        return msgf(msg, len, -EINVAL,
                    "'%.*s' is not a valid Kafka topic: use 1-249 letters, digits, '.', '_' or "
                    "'-', or start with '^' for a regular expression",
                    QUOTE(v));
    return 0;
}

static int check_dlq_topic(const char *v, char *msg, size_t len)
{
    if (v[0] != '\0' && !topic_name_ok(v))
        return msgf(msg, len, -EINVAL,
                    "'%.*s' is not a valid Kafka topic: use 1-249 letters, digits, '.', '_' or "
                    "'-', or \"\" to disable the dead-letter topic",
                    QUOTE(v));
    return 0;
}

static int check_scraper(const char *v, char *msg, size_t len)
{
    struct cidr c;
    return cidr_parse(v, &c, msg, len);
}

static int check_property_key(const char *v, char *msg, size_t len)
{
    static const struct {
        const char *key;
        const char *instead;
    } managed[] = {
        {"bootstrap.servers", "set kafka.brokers instead"},
        {"metadata.broker.list", "set kafka.brokers instead"},
        {"group.id", "set kafka.group_id instead"},
        {"enable.auto.commit",
         "the exporter commits offsets in its checkpoints (docs/delivery.md)"},
        {"enable.auto.offset.store",
         "the exporter commits offsets in its checkpoints (docs/delivery.md)"},
    };

    if (v[0] == '\0')
        return msgf(msg, len, -EINVAL, "property names must not be empty");
    for (size_t i = 0; i < sizeof managed / sizeof managed[0]; i++)
        if (strcmp(v, managed[i].key) == 0)
            return msgf(msg, len, -EINVAL, "'%s' is managed by the exporter: %s", v,
                        managed[i].instead);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Value parsing: shared by defaults, YAML and flags */

static int parse_int(const char *s, int64_t *out)
{
    const char *p = s;
    bool neg = *p == '-';
    uint64_t v = 0, limit;

    if (neg)
        p++;
    if (!isdigit((unsigned char)*p))
        return -EINVAL;
    limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; isdigit((unsigned char)*p); p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (limit - d) / 10)
            return -ERANGE;
        v = v * 10 + d;
    }
    if (*p)
        return -EINVAL;
    if (neg)
        *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    else
        *out = (int64_t)v;
    return 0;
}

/*
 * Decimal dollars to nano-dollars through money.h, the same exact parser the
 * events use: binary floating point cannot represent 0.1 and money must add
 * up exactly. -EDOM: more than 9 decimal places, which deserves its own hint.
 */
static int parse_money(const char *s, int64_t *out)
{
    const char *dot = strchr(s, '.');
    uint64_t nanos;
    int rc;

    if (dot && strspn(dot + 1, "0123456789") > MONEY_MAX_DECIMALS &&
        dot[1 + strspn(dot + 1, "0123456789")] == '\0')
        return -EDOM;
    rc = money_parse_decimal(s, strlen(s), &nanos);
    if (rc != 0)
        return rc;
    if (nanos > (uint64_t)INT64_MAX)
        return -ERANGE;
    *out = (int64_t)nanos;
    return 0;
}

static void format_money(int64_t nanos, char *buf, size_t len)
{
    char text[MONEY_FORMAT_MAX + 1];

    text[money_format((uint64_t)nanos, text)] = '\0';
    snprintf(buf, len, "%s", text);
}

static void join_values(const char *const *values, const char *sep, char *buf, size_t len)
{
    size_t used = 0;

    buf[0] = '\0';
    for (size_t i = 0; values[i] && used < len; i++) {
        int n = snprintf(buf + used, len - used, "%s%s", i ? sep : "", values[i]);
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

/* What an option accepts, in words; used by messages, --help and the docs. */
static void describe_allowed(const struct option *o, char *buf, size_t len)
{
    char lo[MONEY_FORMAT_MAX + 1], hi[MONEY_FORMAT_MAX + 1], vals[128];

    switch (o->type) {
    case OPT_INT:
        snprintf(buf, len, "an integer from %" PRId64 " to %" PRId64, o->min, o->max);
        break;
    case OPT_MONEY:
        format_money(o->min, lo, sizeof lo);
        format_money(o->max, hi, sizeof hi);
        snprintf(buf, len, "a decimal amount of US dollars from %s to %s, at most 9 decimal places",
                 lo, hi);
        break;
    case OPT_ENUM:
        join_values(o->values, ", ", vals, sizeof vals);
        snprintf(buf, len, "one of %s", vals);
        break;
    case OPT_STRING:
    case OPT_OPTIONAL_STRING:
    case OPT_LIST:
    case OPT_MAP:
    case OPT_PROFILES:
        snprintf(buf, len, "%s", o->allowed ? o->allowed : "any string");
        break;
    }
}

/* The kind of YAML node an option expects, for wrong-type messages. */
static const char *expected_kind(const struct option *o)
{
    switch (o->type) {
    case OPT_STRING:
    case OPT_OPTIONAL_STRING:
        return "a string";
    case OPT_INT:
        return "an integer";
    case OPT_MONEY:
        return "a decimal amount of US dollars";
    case OPT_ENUM:
        return "a single value";
    case OPT_LIST:
        return "a list of strings such as [a, b]";
    case OPT_MAP:
        return "a mapping of names to values";
    case OPT_PROFILES:
        return "a mapping of profile names to mappings of fields to sources";
    }
    return "a value";
}

static int set_scalar(struct exporter_config *cfg, const struct option *o, const char *text,
                      char *msg, size_t len)
{
    void *p = field(cfg, o);
    char allowed[512];
    int64_t v;
    int rc;

    switch (o->type) {
    case OPT_STRING:
    case OPT_OPTIONAL_STRING: {
        char **slot = p, *copy = NULL;
        if (o->type == OPT_STRING || text[0] != '\0') {
            if (o->check && (rc = o->check(text, msg, len)) != 0)
                return rc;
            copy = strdup(text);
            if (!copy)
                return oom(msg, len);
        }
        free(*slot);
        *slot = copy;
        return 0;
    }
    case OPT_INT:
        if (parse_int(text, &v) != 0 || v < o->min || v > o->max) {
            describe_allowed(o, allowed, sizeof allowed);
            return msgf(msg, len, -EINVAL, "must be %s; got '%.*s'", allowed, QUOTE(text));
        }
        *(int64_t *)p = v;
        return 0;
    case OPT_MONEY:
        rc = parse_money(text, &v);
        if (rc == -EDOM)
            return msgf(msg, len, -EINVAL,
                        "has more than 9 decimal places; the smallest amount is 0.000000001 "
                        "dollars (one nano-dollar); got '%.*s'",
                        QUOTE(text));
        describe_allowed(o, allowed, sizeof allowed);
        if (rc == -EINVAL)
            return msgf(msg, len, -EINVAL,
                        "must be %s, written as plain digits with an optional '.' (no sign, "
                        "exponent or '$'); got '%.*s'",
                        allowed, QUOTE(text));
        if (rc != 0 || v < o->min || v > o->max)
            return msgf(msg, len, -EINVAL, "must be %s; got '%.*s'", allowed, QUOTE(text));
        *(int64_t *)p = v;
        return 0;
    case OPT_ENUM:
        for (int i = 0; o->values[i]; i++) {
            if (strcmp(o->values[i], text) == 0) {
                if (o->bool_enum)
                    *(bool *)p = i != 0;
                else
                    *(int *)p = i;
                return 0;
            }
        }
        describe_allowed(o, allowed, sizeof allowed);
        return msgf(msg, len, -EINVAL, "must be %s; got '%.*s'", allowed, QUOTE(text));
    case OPT_LIST:
    case OPT_MAP:
    case OPT_PROFILES:
        break;
    }
    return msgf(msg, len, -EINVAL, "internal error: %s is not a scalar option", o->name);
}

/* Validates and appends one list item; lists are built fresh, then swapped in. */
static int list_add_item(struct string_list *l, const struct option *o, const char *item, char *msg,
                         size_t len)
{
    int rc;

    size_t max = o->max_items ? o->max_items : MAX_ITEMS;

    if (l->count >= max)
        return msgf(msg, len, -EINVAL, "allows at most %zu items; shorten the list", max);
    if (o->check && (rc = o->check(item, msg, len)) != 0)
        return rc;
    for (size_t i = 0; i < l->count; i++)
        if (strcmp(l->items[i], item) == 0)
            return msgf(msg, len, -EINVAL, "'%.*s' is listed twice; list each item once",
                        QUOTE(item));
    if (list_push(l, item) != 0)
        return oom(msg, len);
    return 0;
}

static int list_finish(const struct option *o, struct string_list *l, char *msg, size_t len)
{
    if (l->count < o->min_items)
        return msgf(msg, len, -EINVAL, "must list at least %zu item%s, e.g. [%s]", o->min_items,
                    o->min_items == 1 ? "" : "s", o->def);
    return 0;
}

static void replace_list(struct exporter_config *cfg, const struct option *o,
                         struct string_list *fresh)
{
    struct string_list *slot = field(cfg, o);
    list_clear(slot);
    *slot = *fresh;
    fresh->items = NULL;
    fresh->count = 0;
}

static void replace_map(struct exporter_config *cfg, const struct option *o,
                        struct string_map *fresh)
{
    struct string_map *slot = field(cfg, o);
    map_clear(slot);
    *slot = *fresh;
    memset(fresh, 0, sizeof *fresh);
}

/* Comma-separated list (flags and defaults); spaces around items are dropped. */
static int set_list_text(struct exporter_config *cfg, const struct option *o, const char *text,
                         char *msg, size_t len)
{
    struct string_list fresh = {NULL, 0};
    char *copy = strdup(text);
    int rc = 0;

    if (!copy) {
        rc = oom(msg, len);
        goto out;
    }
    if (copy[0] != '\0') {
        char *item = copy;
        for (;;) {
            char *comma = strchr(item, ',');
            char *end;
            if (comma)
                *comma = '\0';
            while (isspace((unsigned char)*item))
                item++;
            end = item + strlen(item);
            while (end > item && isspace((unsigned char)end[-1]))
                *--end = '\0';
            rc = list_add_item(&fresh, o, item, msg, len);
            if (rc != 0 || !comma)
                break;
            item = comma + 1;
        }
    }
    if (rc == 0)
        rc = list_finish(o, &fresh, msg, len);
    if (rc == 0)
        replace_list(cfg, o, &fresh);
out:
    list_clear(&fresh);
    free(copy);
    return rc;
}

static int check_map_size(const struct string_map *m, char *msg, size_t len)
{
    if (m->count >= MAX_ITEMS)
        return msgf(msg, len, -EINVAL, "allows at most %d entries; remove some", MAX_ITEMS);
    return 0;
}

/* A default map as text, "key=value,key=value" (keys and values without ','). */
static int set_map_text(struct exporter_config *cfg, const struct option *o, const char *text,
                        char *msg, size_t len)
{
    struct string_map fresh = {NULL, NULL, 0};
    const char *p = text;
    int rc = 0;
    while (*p && rc == 0) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        const char *eq = memchr(p, '=', n);
        char *key = eq ? strndup(p, (size_t)(eq - p)) : NULL;
        char *value = eq ? strndup(eq + 1, n - (size_t)(eq - p) - 1) : NULL;
        if (!eq)
            rc = msgf(msg, len, -EINVAL, "expects KEY=VALUE items");
        else if (!key || !value)
            rc = oom(msg, len);
        else if ((o->check && o->check(key, msg, len) != 0) ||
                 (o->check_value && o->check_value(value, msg, len) != 0))
            rc = -EINVAL;
        else if (map_set(&fresh, key, value) != 0)
            rc = oom(msg, len);
        free(key);
        free(value);
        p += n + (comma ? 1 : 0);
    }
    if (rc == 0)
        replace_map(cfg, o, &fresh);
    map_clear(&fresh);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Whole-config operations */

void config_free(struct exporter_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const struct option *o = &options[i];
        switch (o->type) {
        case OPT_STRING:
        case OPT_OPTIONAL_STRING:
            free(*(char **)field(cfg, o));
            break;
        case OPT_LIST:
            list_clear(field(cfg, o));
            break;
        case OPT_MAP:
            map_clear(field(cfg, o));
            break;
        case OPT_PROFILES:
            profiles_clear(field(cfg, o));
            break;
        case OPT_INT:
        case OPT_MONEY:
        case OPT_ENUM:
            break;
        }
    }
    memset(cfg, 0, sizeof *cfg);
}

/* Deep copy, so a failed load can be thrown away without touching src. */
static int config_clone(struct exporter_config *dst, const struct exporter_config *src)
{
    *dst = *src;
    /* Detach every owned pointer first so config_free(dst) is safe midway. */
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const struct option *o = &options[i];
        if (o->type == OPT_STRING || o->type == OPT_OPTIONAL_STRING)
            *(char **)field(dst, o) = NULL;
        else if (o->type == OPT_LIST)
            memset(field(dst, o), 0, sizeof(struct string_list));
        else if (o->type == OPT_MAP)
            memset(field(dst, o), 0, sizeof(struct string_map));
        else if (o->type == OPT_PROFILES)
            memset(field(dst, o), 0, sizeof(struct mapping_profiles));
    }
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const struct option *o = &options[i];
        int rc = 0;
        if (o->type == OPT_STRING || o->type == OPT_OPTIONAL_STRING) {
            const char *s = *(char *const *)cfield(src, o);
            if (s && !(*(char **)field(dst, o) = strdup(s)))
                rc = -ENOMEM;
        } else if (o->type == OPT_LIST) {
            rc = list_copy(field(dst, o), cfield(src, o));
        } else if (o->type == OPT_MAP) {
            rc = map_copy(field(dst, o), cfield(src, o));
        } else if (o->type == OPT_PROFILES) {
            rc = profiles_copy(field(dst, o), cfield(src, o));
        }
        if (rc != 0) {
            config_free(dst);
            return rc;
        }
    }
    return 0;
}

static void config_replace(struct exporter_config *cfg, struct exporter_config *fresh)
{
    config_free(cfg);
    *cfg = *fresh;
    memset(fresh, 0, sizeof *fresh);
}

/* A flag is its YAML name with '_' -> '-' after "--"; the table spells both
 * out so they can be grepped, and this keeps the two from drifting apart. */
static bool flag_matches_name(const struct option *o)
{
    const char *n = o->name, *f = o->flag + 2;

    if (strncmp(o->flag, "--", 2) != 0)
        return false;
    for (; *n && *f; n++, f++)
        if (*f != (*n == '_' ? '-' : *n))
            return false;
    return *n == *f;
}

void config_init_defaults(struct exporter_config *cfg)
{
    char msg[256];

    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const struct option *o = &options[i];
        int rc = 0;
        if (!flag_matches_name(o)) {
            fprintf(stderr, "config: flag %s does not match option %s\n", o->flag, o->name);
            abort();
        }
        switch (o->type) {
        case OPT_LIST:
            rc = set_list_text(cfg, o, o->def ? o->def : "", msg, sizeof msg);
            break;
        case OPT_MAP:
            rc = set_map_text(cfg, o, o->def ? o->def : "", msg, sizeof msg);
            break;
        case OPT_PROFILES:
            break; /* no user profiles: the built-in ones are event_kinds.c's */
        case OPT_OPTIONAL_STRING:
        case OPT_STRING:
        case OPT_INT:
        case OPT_MONEY:
        case OPT_ENUM:
            if (o->def)
                rc = set_scalar(cfg, o, o->def, msg, sizeof msg);
            break;
        }
        /* Only a broken table or exhausted memory at start-up can get here, and
         * the void API leaves no way to go on with a half-filled config. */
        if (rc != 0) {
            fprintf(stderr, "config: default of %s: %s\n", o->name, msg);
            abort();
        }
    }
}

/* ------------------------------------------------------------------------ */
/* YAML loading */

struct seen_key {
    char *name;
    yaml_mark_t mark;
};

struct loader {
    yaml_parser_t parser;
    yaml_event_t event;
    bool has_event;
    struct exporter_config *cfg;
    const char *name;
    const char *data;
    size_t len;
    char *errbuf;
    size_t errlen;
    bool seen[N_OPTIONS];
    yaml_mark_t seen_mark[N_OPTIONS];
};

static int ld_error(struct loader *ld, yaml_mark_t mark, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int ld_error(struct loader *ld, yaml_mark_t mark, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (!ld->errbuf || !ld->errlen)
        return -EINVAL;
    n = snprintf(ld->errbuf, ld->errlen, "%s:%zu:%zu: ", ld->name, mark.line + 1, mark.column + 1);
    if (n >= 0 && (size_t)n < ld->errlen) {
        va_start(ap, fmt);
        vsnprintf(ld->errbuf + n, ld->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

static int syntax_error(struct loader *ld)
{
    yaml_parser_t *p = &ld->parser;
    yaml_mark_t mark = p->problem_mark;

    if (p->error == YAML_MEMORY_ERROR) {
        msgf(ld->errbuf, ld->errlen, -ENOMEM, "%s: out of memory", ld->name);
        return -ENOMEM;
    }
    if (p->error == YAML_READER_ERROR) {
        /* libyaml gives reader errors as a byte offset only */
        size_t off = p->problem_offset < ld->len ? p->problem_offset : ld->len;
        memset(&mark, 0, sizeof mark);
        for (size_t i = 0; i < off; i++) {
            if (ld->data[i] == '\n') {
                mark.line++;
                mark.column = 0;
            } else {
                mark.column++;
            }
        }
        return ld_error(ld, mark, "invalid YAML: %s; the file must be UTF-8 text",
                        p->problem ? p->problem : "unreadable input");
    }
    if (p->context)
        return ld_error(ld, mark,
                        "invalid YAML: %s (%s at line %zu, column %zu); check the indentation "
                        "and quoting",
                        p->problem ? p->problem : "syntax error", p->context,
                        p->context_mark.line + 1, p->context_mark.column + 1);
    return ld_error(ld, mark, "invalid YAML: %s; check the indentation and quoting",
                    p->problem ? p->problem : "syntax error");
}

static int next_event(struct loader *ld)
{
    const yaml_char_t *anchor = NULL;

    if (ld->has_event) {
        yaml_event_delete(&ld->event);
        ld->has_event = false;
    }
    if (!yaml_parser_parse(&ld->parser, &ld->event))
        return syntax_error(ld);
    ld->has_event = true;
    switch (ld->event.type) {
    case YAML_ALIAS_EVENT:
        return ld_error(ld, ld->event.start_mark,
                        "aliases (*%s) are not supported; write the value out in full",
                        (const char *)ld->event.data.alias.anchor);
    case YAML_SCALAR_EVENT:
        anchor = ld->event.data.scalar.anchor;
        break;
    case YAML_SEQUENCE_START_EVENT:
        anchor = ld->event.data.sequence_start.anchor;
        break;
    case YAML_MAPPING_START_EVENT:
        anchor = ld->event.data.mapping_start.anchor;
        break;
    default:
        break;
    }
    if (anchor)
        return ld_error(ld, ld->event.start_mark,
                        "anchors (&%s) are not supported; write each value out in full",
                        (const char *)anchor);
    return 0;
}

static const char *event_kind(const yaml_event_t *ev)
{
    switch (ev->type) {
    case YAML_SEQUENCE_START_EVENT:
        return "a list";
    case YAML_MAPPING_START_EVENT:
        return "a mapping";
    default:
        return "a single value";
    }
}

static bool is_null_scalar(const yaml_event_t *ev)
{
    const char *v = (const char *)ev->data.scalar.value;

    if (ev->type != YAML_SCALAR_EVENT || ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    return v[0] == '\0' || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
           strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}

/* The current event's scalar text; C strings cannot carry an embedded NUL. */
static int scalar_text(struct loader *ld, const char *what, const char **out)
{
    const char *v = (const char *)ld->event.data.scalar.value;

    if (strlen(v) != ld->event.data.scalar.length)
        return ld_error(ld, ld->event.start_mark, "%s contains a NUL character (\\0); remove it",
                        what);
    *out = v;
    return 0;
}

static int wrong_kind(struct loader *ld, const struct option *o)
{
    return ld_error(ld, ld->event.start_mark, "%s: expects %s, not %s", o->name, expected_kind(o),
                    event_kind(&ld->event));
}

static int load_list(struct loader *ld, const struct option *o)
{
    struct string_list fresh = {NULL, 0};
    yaml_mark_t start = ld->event.start_mark;
    char msg[512];
    const char *text = "";
    int rc = 0;

    for (;;) {
        if ((rc = next_event(ld)) != 0)
            goto out;
        if (ld->event.type == YAML_SEQUENCE_END_EVENT)
            break;
        if (ld->event.type != YAML_SCALAR_EVENT) {
            rc = ld_error(ld, ld->event.start_mark, "%s: items must be strings, not %s", o->name,
                          event_kind(&ld->event));
            goto out;
        }
        if (is_null_scalar(&ld->event)) {
            rc = ld_error(ld, ld->event.start_mark,
                          "%s: empty list item; remove it or give it a value", o->name);
            goto out;
        }
        if ((rc = scalar_text(ld, o->name, &text)) != 0)
            goto out;
        if (list_add_item(&fresh, o, text, msg, sizeof msg) != 0) {
            rc = ld_error(ld, ld->event.start_mark, "%s: %s", o->name, msg);
            goto out;
        }
    }
    if (list_finish(o, &fresh, msg, sizeof msg) != 0) {
        rc = ld_error(ld, start, "%s: %s", o->name, msg);
        goto out;
    }
    replace_list(ld->cfg, o, &fresh);
out:
    list_clear(&fresh);
    return rc;
}

static int load_map(struct loader *ld, const struct option *o)
{
    struct string_map fresh = {NULL, NULL, 0};
    yaml_mark_t *marks = NULL;
    char msg[512];
    char *key = NULL;
    const char *text = "";
    int rc = 0;

    for (;;) {
        yaml_mark_t key_mark, *grown;
        ssize_t dup;

        if ((rc = next_event(ld)) != 0)
            goto out;
        if (ld->event.type == YAML_MAPPING_END_EVENT)
            break;
        key_mark = ld->event.start_mark;
        if (ld->event.type != YAML_SCALAR_EVENT) {
            rc = ld_error(ld, key_mark, "%s: keys must be strings, not %s", o->name,
                          event_kind(&ld->event));
            goto out;
        }
        if ((rc = scalar_text(ld, o->name, &text)) != 0)
            goto out;
        if (check_map_size(&fresh, msg, sizeof msg) != 0 ||
            (o->check && o->check(text, msg, sizeof msg) != 0)) {
            rc = ld_error(ld, key_mark, "%s: %s", o->name, msg);
            goto out;
        }
        if ((dup = map_find(&fresh, text)) >= 0) {
            rc = ld_error(ld, key_mark,
                          "duplicate key '%s.%.*s' (first at line %zu, column %zu); keep only one",
                          o->name, QUOTE(text), marks[dup].line + 1, marks[dup].column + 1);
            goto out;
        }
        free(key);
        if (!(key = strdup(text))) {
            rc = -ENOMEM;
            goto out;
        }
        if ((rc = next_event(ld)) != 0)
            goto out;
        if (ld->event.type != YAML_SCALAR_EVENT) {
            rc = ld_error(ld, ld->event.start_mark,
                          "%s: the value of '%.*s' must be a string, not %s", o->name, QUOTE(key),
                          event_kind(&ld->event));
            goto out;
        }
        if (is_null_scalar(&ld->event)) {
            rc = ld_error(ld, ld->event.start_mark,
                          "%s: '%.*s' has no value; give one, or \"\" for an empty string", o->name,
                          QUOTE(key));
            goto out;
        }
        if ((rc = scalar_text(ld, o->name, &text)) != 0)
            goto out;
        if (o->check_value && o->check_value(text, msg, sizeof msg) != 0) {
            rc = ld_error(ld, ld->event.start_mark, "%s.%.*s: %s", o->name, QUOTE(key), msg);
            goto out;
        }
        grown = realloc(marks, (fresh.count + 1) * sizeof *marks);
        if (!grown || map_set(&fresh, key, text) != 0) {
            marks = grown ? grown : marks;
            rc = -ENOMEM;
            goto out;
        }
        marks = grown;
        marks[fresh.count - 1] = key_mark;
    }
    replace_map(ld->cfg, o, &fresh);
out:
    if (rc == -ENOMEM)
        msgf(ld->errbuf, ld->errlen, -ENOMEM, "%s: out of memory", ld->name);
    free(key);
    free(marks);
    map_clear(&fresh);
    return rc;
}

/*
 * events.mappings: profile name -> mapping of field -> source. A source's
 * syntax does not depend on the kind, so it is checked here, where the
 * error can name its line and column; the fields are checked against the
 * kind that uses the profile at the end (check_event_kinds).
 */
static int load_profiles(struct loader *ld, const struct option *o)
{
    struct mapping_profiles fresh = {NULL, NULL, 0};
    char msg[512];
    const char *text = "";
    char *name = NULL, *key = NULL;
    int rc = 0;

    for (;;) {
        yaml_mark_t name_mark;
        struct string_map *fields;
        if ((rc = next_event(ld)) != 0)
            goto out;
        if (ld->event.type == YAML_MAPPING_END_EVENT)
            break;
        name_mark = ld->event.start_mark;
        if (ld->event.type != YAML_SCALAR_EVENT) {
            rc = ld_error(ld, name_mark, "%s: profile names must be strings, not %s", o->name,
                          event_kind(&ld->event));
            goto out;
        }
        if ((rc = scalar_text(ld, o->name, &text)) != 0)
            goto out;
        if (check_profile_name(text, msg, sizeof msg) != 0) {
            rc = ld_error(ld, name_mark, "%s: %s", o->name, msg);
            goto out;
        }
        if (profiles_find(&fresh, text) >= 0) {
            rc = ld_error(ld, name_mark, "duplicate key '%s.%.*s'; keep only one", o->name,
                          QUOTE(text));
            goto out;
        }
        if (fresh.count >= MAX_ITEMS) {
            rc = ld_error(ld, name_mark, "%s: allows at most %d profiles", o->name, MAX_ITEMS);
            goto out;
        }
        free(name);
        if (!(name = strdup(text)) || !(fields = profiles_get(&fresh, name))) {
            rc = -ENOMEM;
            goto out;
        }
        if ((rc = next_event(ld)) != 0)
            goto out;
        if (ld->event.type != YAML_MAPPING_START_EVENT) {
            rc = ld_error(ld, ld->event.start_mark,
                          "%s.%s: expects a mapping of fields to sources such as "
                          "{model: /model}, not %s",
                          o->name, name, event_kind(&ld->event));
            goto out;
        }
        for (;;) {
            yaml_mark_t key_mark;
            if ((rc = next_event(ld)) != 0)
                goto out;
            if (ld->event.type == YAML_MAPPING_END_EVENT)
                break;
            key_mark = ld->event.start_mark;
            if (ld->event.type != YAML_SCALAR_EVENT) {
                rc = ld_error(ld, key_mark, "%s.%s: fields must be strings, not %s", o->name, name,
                              event_kind(&ld->event));
                goto out;
            }
            if ((rc = scalar_text(ld, o->name, &text)) != 0)
                goto out;
            if (!field_mapping_field_known(text)) {
                rc = ld_error(ld, key_mark,
                              "%s.%s: '%.*s' is not a field of any event kind (see "
                              "docs/events.md)",
                              o->name, name, QUOTE(text));
                goto out;
            }
            if (map_find(fields, text) >= 0) {
                rc = ld_error(ld, key_mark, "duplicate key '%s.%s.%.*s'; keep only one", o->name,
                              name, QUOTE(text));
                goto out;
            }
            if (check_map_size(fields, msg, sizeof msg) != 0) {
                rc = ld_error(ld, key_mark, "%s.%s: %s", o->name, name, msg);
                goto out;
            }
            free(key);
            if (!(key = strdup(text))) {
                rc = -ENOMEM;
                goto out;
            }
            if ((rc = next_event(ld)) != 0)
                goto out;
            if (ld->event.type != YAML_SCALAR_EVENT || is_null_scalar(&ld->event)) {
                rc = ld_error(ld, ld->event.start_mark,
                              "%s.%s.%s: expects a source (\"/pointer\", \"/a - /b\", "
                              "\"/a + /b\" or \"=literal\"), not %s",
                              o->name, name, key,
                              ld->event.type == YAML_SCALAR_EVENT ? "nothing"
                                                                  : event_kind(&ld->event));
                goto out;
            }
            if ((rc = scalar_text(ld, o->name, &text)) != 0)
                goto out;
            if (field_mapping_check_source(text, msg, sizeof msg) != 0) {
                rc = ld_error(ld, ld->event.start_mark, "%s.%s.%s: %s", o->name, name, key, msg);
                goto out;
            }
            if (map_set(fields, key, text) != 0) {
                rc = -ENOMEM;
                goto out;
            }
        }
    }
    profiles_clear(field(ld->cfg, o));
    *(struct mapping_profiles *)field(ld->cfg, o) = fresh;
    memset(&fresh, 0, sizeof fresh);
out:
    if (rc == -ENOMEM)
        msgf(ld->errbuf, ld->errlen, -ENOMEM, "%s: out of memory", ld->name);
    free(name);
    free(key);
    profiles_clear(&fresh);
    return rc;
}

static int load_value(struct loader *ld, const struct option *o)
{
    char msg[512], allowed[512];
    const char *text = "";
    int rc;

    switch (o->type) {
    case OPT_LIST:
        if (is_null_scalar(&ld->event)) {
            struct string_list empty = {NULL, 0};
            if (list_finish(o, &empty, msg, sizeof msg) != 0)
                return ld_error(ld, ld->event.start_mark, "%s: %s", o->name, msg);
            replace_list(ld->cfg, o, &empty);
            return 0;
        }
        if (ld->event.type != YAML_SEQUENCE_START_EVENT)
            return wrong_kind(ld, o);
        return load_list(ld, o);
    case OPT_MAP:
        if (is_null_scalar(&ld->event)) {
            struct string_map empty = {NULL, NULL, 0};
            replace_map(ld->cfg, o, &empty);
            return 0;
        }
        if (ld->event.type != YAML_MAPPING_START_EVENT)
            return wrong_kind(ld, o);
        return load_map(ld, o);
    case OPT_PROFILES:
        if (is_null_scalar(&ld->event)) {
            profiles_clear(field(ld->cfg, o));
            return 0;
        }
        if (ld->event.type != YAML_MAPPING_START_EVENT)
            return wrong_kind(ld, o);
        return load_profiles(ld, o);
    case OPT_STRING:
    case OPT_OPTIONAL_STRING:
    case OPT_INT:
    case OPT_MONEY:
    case OPT_ENUM:
        break;
    }
    if (ld->event.type != YAML_SCALAR_EVENT)
        return wrong_kind(ld, o);
    if (is_null_scalar(&ld->event)) {
        if (o->type == OPT_OPTIONAL_STRING)
            return set_scalar(ld->cfg, o, "", msg, sizeof msg);
        describe_allowed(o, allowed, sizeof allowed);
        return ld_error(ld, ld->event.start_mark,
                        "%s: has no value; give %s%s, or delete the key to keep the default",
                        o->name, allowed,
                        o->type == OPT_STRING ? " (\"\" for an empty string)" : "");
    }
    if ((rc = scalar_text(ld, o->name, &text)) != 0)
        return rc;
    rc = set_scalar(ld->cfg, o, text, msg, sizeof msg);
    if (rc == -ENOMEM)
        return msgf(ld->errbuf, ld->errlen, -ENOMEM, "%s: out of memory", ld->name);
    if (rc != 0)
        return ld_error(ld, ld->event.start_mark, "%s: %s", o->name, msg);
    return 0;
}

static int unknown_key(struct loader *ld, const char *key, yaml_mark_t mark)
{
    struct suggestion s = suggest_key(key);

    if (suggestion_ok(&s, key))
        return ld_error(ld, mark, "unknown key '%.*s'; did you mean '%.*s'?", QUOTE(key),
                        (int)s.best_len, s.best);
    return ld_error(ld, mark,
                    "unknown key '%.*s'; see docs/configuration.md or --help for the supported "
                    "options",
                    QUOTE(key));
}

/* Walks a mapping whose keys extend `prefix`; the current event is its start. */
static int load_section(struct loader *ld, const char *prefix)
{
    struct seen_key *sections = NULL;
    size_t nsections = 0;
    char *full = NULL;
    int rc = 0;

    for (;;) {
        const struct option *o;
        const char *key = "";
        yaml_mark_t key_mark;

        if ((rc = next_event(ld)) != 0)
            goto out;
        if (ld->event.type == YAML_MAPPING_END_EVENT)
            break;
        key_mark = ld->event.start_mark;
        if (ld->event.type != YAML_SCALAR_EVENT) {
            rc = ld_error(ld, key_mark, "keys must be plain names such as 'web', not %s",
                          event_kind(&ld->event));
            goto out;
        }
        if ((rc = scalar_text(ld, "key", &key)) != 0)
            goto out;
        free(full);
        if (prefix[0])
            rc = asprintf(&full, "%s.%s", prefix, key);
        else
            rc = (full = strdup(key)) ? 0 : -1;
        if (rc < 0) {
            full = NULL;
            rc = msgf(ld->errbuf, ld->errlen, -ENOMEM, "%s: out of memory", ld->name);
            goto out;
        }
        rc = 0;

        if ((o = find_option(full)) != NULL) {
            size_t idx = (size_t)(o - options);
            if (ld->seen[idx]) {
                rc = ld_error(ld, key_mark,
                              "duplicate key '%s' (first at line %zu, column %zu); keep only one",
                              full, ld->seen_mark[idx].line + 1, ld->seen_mark[idx].column + 1);
                goto out;
            }
            ld->seen[idx] = true;
            ld->seen_mark[idx] = key_mark;
            if ((rc = next_event(ld)) != 0 || (rc = load_value(ld, o)) != 0)
                goto out;
        } else if (is_section(full)) {
            struct seen_key *grown;
            const char *section;
            for (size_t i = 0; i < nsections; i++) {
                if (strcmp(sections[i].name, full) == 0) {
                    rc = ld_error(ld, key_mark,
                                  "duplicate key '%s' (first at line %zu, column %zu); merge "
                                  "the two into one",
                                  full, sections[i].mark.line + 1, sections[i].mark.column + 1);
                    goto out;
                }
            }
            grown = realloc(sections, (nsections + 1) * sizeof *sections);
            if (!grown) {
                rc = msgf(ld->errbuf, ld->errlen, -ENOMEM, "%s: out of memory", ld->name);
                goto out;
            }
            sections = grown;
            sections[nsections].name = full;
            sections[nsections].mark = key_mark;
            section = sections[nsections++].name;
            full = NULL; /* now owned by sections[] */
            if ((rc = next_event(ld)) != 0)
                goto out;
            if (ld->event.type == YAML_MAPPING_START_EVENT) {
                if ((rc = load_section(ld, section)) != 0)
                    goto out;
            } else if (!is_null_scalar(&ld->event)) { /* an empty section sets nothing */
                rc = ld_error(ld, ld->event.start_mark,
                              "'%s' is a section: expects a mapping of %s.* options, not %s",
                              section, section, event_kind(&ld->event));
                goto out;
            }
        } else {
            rc = unknown_key(ld, full, key_mark);
            goto out;
        }
    }
out:
    for (size_t i = 0; i < nsections; i++)
        free(sections[i].name);
    free(sections);
    free(full);
    return rc;
}

static int load_stream(struct loader *ld)
{
    int rc;

    if ((rc = next_event(ld)) != 0) /* stream start */
        return rc;
    if ((rc = next_event(ld)) != 0)
        return rc;
    if (ld->event.type == YAML_STREAM_END_EVENT)
        return 0;                   /* empty file: all defaults */
    if ((rc = next_event(ld)) != 0) /* past document start */
        return rc;
    if (ld->event.type == YAML_MAPPING_START_EVENT) {
        if ((rc = load_section(ld, "")) != 0)
            return rc;
    } else if (!is_null_scalar(&ld->event)) {
        return ld_error(ld, ld->event.start_mark,
                        "the top level must be a mapping of options such as 'web:', not %s",
                        event_kind(&ld->event));
    }
    if ((rc = next_event(ld)) != 0) /* document end */
        return rc;
    if ((rc = next_event(ld)) != 0)
        return rc;
    if (ld->event.type != YAML_STREAM_END_EVENT)
        return ld_error(ld, ld->event.start_mark,
                        "only one YAML document is allowed; remove the second '---' and what "
                        "follows it");
    return 0;
}

/* config_load_buffer, also telling which options the file set and where
 * (seen and marks: N_OPTIONS each, or NULL), for the checks that need the
 * whole config (check_scrapers). */
static int load_buffer(struct exporter_config *cfg, const char *name, const char *data, size_t len,
                       bool *seen, yaml_mark_t *marks, char *errbuf, size_t errlen)
{
    struct exporter_config fresh;
    struct loader ld;
    int rc;

    memset(&ld, 0, sizeof ld);
    if (errbuf && errlen)
        errbuf[0] = '\0';
    if (!cfg)
        return msgf(errbuf, errlen, -EINVAL, "config_load_buffer: no config given");
    ld.name = name ? name : "<config>";
    ld.data = data ? data : "";
    ld.len = data ? len : 0;
    ld.errbuf = errbuf;
    ld.errlen = errlen;
    if ((rc = config_clone(&fresh, cfg)) != 0)
        return msgf(errbuf, errlen, rc, "%s: out of memory", ld.name);
    ld.cfg = &fresh;
    if (!yaml_parser_initialize(&ld.parser)) {
        rc = msgf(errbuf, errlen, -ENOMEM, "%s: out of memory", ld.name);
        goto out_fresh;
    }
    yaml_parser_set_input_string(&ld.parser, (const unsigned char *)ld.data, ld.len);
    rc = load_stream(&ld);
    if (rc == 0 && seen) {
        memcpy(seen, ld.seen, sizeof ld.seen);
        memcpy(marks, ld.seen_mark, sizeof ld.seen_mark);
    }
    if (ld.has_event)
        yaml_event_delete(&ld.event);
    yaml_parser_delete(&ld.parser);
    if (rc == 0)
        config_replace(cfg, &fresh);
out_fresh:
    config_free(&fresh);
    return rc;
}

int config_load_buffer(struct exporter_config *cfg, const char *name, const char *data, size_t len,
                       char *errbuf, size_t errlen)
{
    return load_buffer(cfg, name, data, len, NULL, NULL, errbuf, errlen);
}

/*
 * Reads a whole file into *out (caller frees; NUL-terminated for safety, the
 * length excludes it). `what` names the setting that gave the path, for the
 * hint in messages.
 */
static int read_whole_file(const char *path, const char *what, char **out, size_t *outlen,
                           char *errbuf, size_t errlen)
{
    char *data = NULL, *grown;
    size_t len = 0, cap = 0;
    FILE *f;
    int rc = 0;

    *out = NULL;
    *outlen = 0;
    f = fopen(path, "rb");
    if (!f) {
        rc = -errno;
        return msgf(errbuf, errlen, rc, "%s: cannot open: %s; check the path given to %s", path,
                    strerror(-rc), what);
    }
    for (;;) {
        size_t n;
        if (len + 1 >= cap) {
            if (cap >= (size_t)MAX_FILE_BYTES) {
                rc = msgf(errbuf, errlen, -EFBIG,
                          "%s: larger than %ld bytes; is this really the file meant for %s?", path,
                          MAX_FILE_BYTES, what);
                goto out;
            }
            cap = cap ? cap * 2 : 4096;
            if (!(grown = realloc(data, cap))) {
                rc = msgf(errbuf, errlen, -ENOMEM, "%s: out of memory", path);
                goto out;
            }
            data = grown;
        }
        n = fread(data + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0) {
            if (ferror(f)) {
                rc = errno ? -errno : -EIO;
                msgf(errbuf, errlen, rc, "%s: cannot read: %s; check the path given to %s", path,
                     strerror(-rc), what);
                goto out;
            }
            break;
        }
    }
    data[len] = '\0';
    *out = data;
    *outlen = len;
    data = NULL;
out:
    fclose(f);
    free(data);
    return rc;
}

/*
 * What libyaml would accept but an operator did not mean: a UTF-16 or
 * UTF-32 file (an editor's "Unicode" save; libyaml decodes UTF-16, so it
 * used to load) and a file with no options at all (usually a mount or a
 * ConfigMap key that came out empty), which would silently run on the
 * defaults.
 */
static int check_file_text(const char *path, const char *data, size_t len, char *errbuf,
                           size_t errlen)
{
    const unsigned char *u = (const unsigned char *)data;
    const char *enc = NULL;
    if (len >= 4 && ((u[0] == 0 && u[1] == 0 && u[2] == 0xFE && u[3] == 0xFF) ||
                     (u[0] == 0xFF && u[1] == 0xFE && u[2] == 0 && u[3] == 0)))
        enc = "UTF-32";
    else if (len >= 2 && ((u[0] == 0xFF && u[1] == 0xFE) || (u[0] == 0xFE && u[1] == 0xFF)))
        enc = "UTF-16";
    else if (len >= 2 && (u[0] == 0 || u[1] == 0))
        enc = "UTF-16 or UTF-32 (no byte order mark)";
    if (enc)
        return msgf(errbuf, errlen, -EINVAL,
                    "%s:1:1: the file is encoded as %s; save it as UTF-8 (for example "
                    "`iconv -f UTF-16 -t UTF-8`)",
                    path, enc);
    size_t i = (len >= 3 && u[0] == 0xEF && u[1] == 0xBB && u[2] == 0xBF) ? 3 : 0;
    while (i < len) {
        size_t eol = i;
        while (eol < len && data[eol] != '\n')
            eol++;
        size_t a = i, b = eol;
        while (a < b && (data[a] == ' ' || data[a] == '\t' || data[a] == '\r'))
            a++;
        while (b > a && (data[b - 1] == ' ' || data[b - 1] == '\t' || data[b - 1] == '\r'))
            b--;
        bool marker =
            (b - a == 3 && (memcmp(data + a, "---", 3) == 0 || memcmp(data + a, "...", 3) == 0));
        if (a < b && data[a] != '#' && !marker)
            return 0;
        i = eol + 1;
    }
    return msgf(errbuf, errlen, -EINVAL,
                "%s: the configuration file is empty (no options in it); put the options in it, "
                "or leave out --config to run on the defaults",
                path);
}

static int load_file(struct exporter_config *cfg, const char *path, bool *seen, yaml_mark_t *marks,
                     char *errbuf, size_t errlen)
{
    char *data;
    size_t len;
    int rc;

    if (errbuf && errlen)
        errbuf[0] = '\0';
    if (!path || !path[0])
        return msgf(errbuf, errlen, -EINVAL, "no configuration file path given");
    if ((rc = read_whole_file(path, "--config", &data, &len, errbuf, errlen)) != 0)
        return rc;
    if ((rc = check_file_text(path, data, len, errbuf, errlen)) == 0)
        rc = load_buffer(cfg, path, data, len, seen, marks, errbuf, errlen);
    free(data);
    return rc;
}

int config_load_file(struct exporter_config *cfg, const char *path, char *errbuf, size_t errlen)
{
    return load_file(cfg, path, NULL, NULL, errbuf, errlen);
}

/* ------------------------------------------------------------------------ */
/* kafka.properties_file */

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\f';
}

/*
 * Adds the KEY=VALUE lines of data to props. Values may be secrets, so no
 * message quotes one: errors point at the line and column instead. Keys
 * already in `yaml_props` (set by the YAML file or flags) are refused so
 * that neither source silently overrides the other.
 */
static int parse_properties(const char *name, const char *data, size_t len,
                            const struct string_map *yaml_props, struct string_map *props,
                            char *errbuf, size_t errlen)
{
    size_t *lines = NULL; /* line of each key in props, for duplicate messages */
    size_t lineno = 0;
    const char *p = data, *end = data + len;
    char msg[512];
    char *key = NULL;
    int rc = 0;

#define AT(ptr) name, lineno, (size_t)((ptr)-line) + 1
    while (p < end) {
        const char *line = p, *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl ? nl : end, *k = line, *kend, *eq, *v, *nul;
        size_t *grown;
        ssize_t dup;

        lineno++;
        p = nl ? nl + 1 : end;
        if ((nul = memchr(line, '\0', (size_t)(eol - line))) != NULL) {
            rc = msgf(errbuf, errlen, -EINVAL,
                      "%s:%zu:%zu: contains a NUL character (\\0); the file must be text", AT(nul));
            goto out;
        }
        if (eol > line && eol[-1] == '\r') /* CRLF files */
            eol--;
        while (k < eol && is_blank(*k))
            k++;
        if (k == eol || *k == '#' || *k == '!')
            continue;
        if (!(eq = memchr(k, '=', (size_t)(eol - k)))) {
            rc = msgf(errbuf, errlen, -EINVAL,
                      "%s:%zu:%zu: expected KEY=VALUE such as sasl.username=exporter; the line "
                      "has no '='",
                      AT(k));
            goto out;
        }
        kend = eq;
        while (kend > k && is_blank(kend[-1]))
            kend--;
        if (kend == k) {
            rc = msgf(errbuf, errlen, -EINVAL, "%s:%zu:%zu: the property name before '=' is empty",
                      AT(k));
            goto out;
        }
        v = eq + 1;
        while (v < eol && is_blank(*v))
            v++;
        if (eol > v && eol[-1] == '\\') {
            rc = msgf(errbuf, errlen, -EINVAL,
                      "%s:%zu:%zu: the line ends in '\\', but continuation lines and escapes "
                      "are not supported; write the value on one line, verbatim",
                      AT(eol - 1));
            goto out;
        }
        free(key);
        if (!(key = strndup(k, (size_t)(kend - k)))) {
            rc = msgf(errbuf, errlen, -ENOMEM, "%s: out of memory", name);
            goto out;
        }
        if (check_property_key(key, msg, sizeof msg) != 0) {
            rc = msgf(errbuf, errlen, -EINVAL, "%s:%zu:%zu: %s", AT(k), msg);
            goto out;
        }
        if ((dup = map_find(props, key)) >= 0) {
            rc = msgf(errbuf, errlen, -EINVAL,
                      "%s:%zu:%zu: duplicate key '%.*s' (first at line %zu); keep only one", AT(k),
                      QUOTE(key), lines[dup]);
            goto out;
        }
        if (map_find(yaml_props, key) >= 0) {
            rc = msgf(errbuf, errlen, -EINVAL,
                      "%s:%zu:%zu: '%.*s' is also set in kafka.properties; set each property "
                      "in one place",
                      AT(k), QUOTE(key));
            goto out;
        }
        if (check_map_size(props, msg, sizeof msg) != 0) {
            rc = msgf(errbuf, errlen, -EINVAL, "%s:%zu:%zu: %s", AT(k), msg);
            goto out;
        }
        grown = realloc(lines, (props->count + 1) * sizeof *lines);
        if (!grown) {
            rc = msgf(errbuf, errlen, -ENOMEM, "%s: out of memory", name);
            goto out;
        }
        lines = grown;
        lines[props->count] = lineno;
        {
            char *value = strndup(v, (size_t)(eol - v));
            int set = value ? map_set(props, key, value) : -ENOMEM;
            free(value);
            if (set != 0) {
                rc = msgf(errbuf, errlen, -ENOMEM, "%s: out of memory", name);
                goto out;
            }
        }
    }
#undef AT
out:
    free(key);
    free(lines);
    return rc;
}

/* Reads kafka.properties_file, if set, into cfg->kafka_properties. */
static int merge_properties_file(struct exporter_config *cfg, char *errbuf, size_t errlen)
{
    struct string_map from_file = {NULL, NULL, 0};
    const char *path = cfg->kafka_properties_file;
    char *data = NULL;
    size_t len;
    int rc;

    if (!path)
        return 0;
    if ((rc = read_whole_file(path, "kafka.properties_file", &data, &len, errbuf, errlen)) != 0)
        return rc;
    rc = parse_properties(path, data, len, &cfg->kafka_properties, &from_file, errbuf, errlen);
    if (rc == 0 && cfg->kafka_properties.count + from_file.count > MAX_ITEMS)
        rc = msgf(errbuf, errlen, -EINVAL,
                  "%s: kafka.properties and this file together hold more than %d properties; "
                  "remove some",
                  path, MAX_ITEMS);
    for (size_t i = 0; rc == 0 && i < from_file.count; i++)
        if (map_set(&cfg->kafka_properties, from_file.keys[i], from_file.values[i]) != 0)
            rc = msgf(errbuf, errlen, -ENOMEM, "%s: out of memory", path);
    /* The file's raw text may hold secrets: wipe it before freeing. The
     * parsed values live on in kafka.properties (librdkafka keeps its own
     * copy of each anyway). */
    if (data)
        explicit_bzero(data, len);
    free(data);
    map_clear(&from_file);
    return rc;
}

/*
 * Expands ${env:NAME} in every kafka.properties value, wherever it was set
 * (YAML, flag or kafka.properties_file), once the sources are merged. The
 * expanded value replaces the reference, so SIGHUP reloads compare what
 * librdkafka would get; messages name the key and variable only.
 */
static int expand_property_refs(struct exporter_config *cfg, char *errbuf, size_t errlen)
{
    struct string_map *m = &cfg->kafka_properties;
    for (size_t i = 0; i < m->count; i++) {
        char *expanded;
        int rc = secret_ref_expand(m->keys[i], m->values[i], &expanded, errbuf, errlen);
        if (rc < 0)
            return rc;
        free(m->values[i]);
        m->values[i] = expanded;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Command line */

static const char *metavar(const struct option *o, char *buf, size_t len);

struct flag_setting {
    const struct option *opt;
    const char *value;
};

static bool flag_is(const char *arg, size_t len, const char *flag)
{
    return strlen(flag) == len && memcmp(arg, flag, len) == 0;
}

static int unknown_flag(const char *arg, size_t len, char *errbuf, size_t errlen)
{
    static const char *const extra[] = {"--config", "--check-config", "--help", "--version",
                                        "--print-config-docs"};
    struct suggestion s = {NULL, 0, SIZE_MAX};
    char *want = strndup(arg, len);
    int rc;

    if (!want)
        return msgf(errbuf, errlen, -ENOMEM, "command line: out of memory");
    for (size_t i = 0; i < N_OPTIONS; i++)
        suggest_consider(&s, want, options[i].flag, strlen(options[i].flag));
    for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++)
        suggest_consider(&s, want, extra[i], strlen(extra[i]));
    if (suggestion_ok(&s, want))
        rc = msgf(errbuf, errlen, -EINVAL, "command line: unknown flag '%.*s'; did you mean '%s'?",
                  QUOTE(want), s.best);
    else
        rc = msgf(errbuf, errlen, -EINVAL,
                  "command line: unknown flag '%.*s'; run with --help to list the flags",
                  QUOTE(want));
    free(want);
    return rc;
}

static int apply_flag(struct exporter_config *cfg, const struct option *o, const char *value,
                      char *errbuf, size_t errlen)
{
    char msg[512];
    int rc;

    switch (o->type) {
    case OPT_LIST:
        rc = set_list_text(cfg, o, value, msg, sizeof msg);
        break;
    case OPT_MAP: {
        const char *eq = strchr(value, '=');
        char *key;
        if (!eq) {
            rc = msgf(msg, sizeof msg, -EINVAL,
                      "expects KEY=VALUE such as security.protocol=SASL_SSL; got '%.*s'",
                      QUOTE(value));
            break;
        }
        if (!(key = strndup(value, (size_t)(eq - value)))) {
            rc = oom(msg, sizeof msg);
            break;
        }
        rc = o->check ? o->check(key, msg, sizeof msg) : 0;
        if (rc == 0 && o->check_value)
            rc = o->check_value(eq + 1, msg, sizeof msg);
        if (rc == 0 && map_find(field(cfg, o), key) < 0)
            rc = check_map_size(field(cfg, o), msg, sizeof msg);
        if (rc == 0 && map_set(field(cfg, o), key, eq + 1) != 0)
            rc = oom(msg, sizeof msg);
        free(key);
        break;
    }
    case OPT_PROFILES: {
        /* PROFILE:FIELD=SOURCE */
        const char *colon = strchr(value, ':');
        const char *eq = colon ? strchr(colon, '=') : NULL;
        char *name = NULL, *fname = NULL;
        struct string_map *fields;
        if (!colon || !eq) {
            rc = msgf(msg, sizeof msg, -EINVAL,
                      "expects PROFILE:FIELD=SOURCE such as myapi:model=/model; got '%.*s'",
                      QUOTE(value));
            break;
        }
        name = strndup(value, (size_t)(colon - value));
        fname = strndup(colon + 1, (size_t)(eq - colon - 1));
        if (!name || !fname)
            rc = oom(msg, sizeof msg);
        else if ((rc = check_profile_name(name, msg, sizeof msg)) != 0)
            ;
        else if (!field_mapping_field_known(fname))
            rc = msgf(msg, sizeof msg, -EINVAL,
                      "'%.*s' is not a field of any event kind (see docs/events.md)", QUOTE(fname));
        else if ((rc = field_mapping_check_source(eq + 1, msg, sizeof msg)) != 0)
            ;
        else if (!(fields = profiles_get(field(cfg, o), name)) ||
                 map_set(fields, fname, eq + 1) != 0)
            rc = oom(msg, sizeof msg);
        free(name);
        free(fname);
        break;
    }
    case OPT_STRING:
    case OPT_OPTIONAL_STRING:
    case OPT_INT:
    case OPT_MONEY:
    case OPT_ENUM:
    default:
        rc = set_scalar(cfg, o, value, msg, sizeof msg);
        break;
    }
    if (rc != 0)
        msgf(errbuf, errlen, rc, "command line: %s: %s", o->flag, msg);
    return rc;
}

/* Perl-style pieces librdkafka's engine knows and POSIX reads otherwise
 * (glibc takes "\\d" as a plain "d"): a check by regexec could then miss. */
static bool perl_style(const char *pattern)
{
    if (strstr(pattern, "(?"))
        return true;
    for (const char *p = pattern; (p = strchr(p, '\\')) && p[1]; p += 2)
        if (strchr("dDwWsSbB", p[1]))
            return true;
    return false;
}

/*
 * Rejected events are produced to kafka.dlq_topic: a subscription that
 * also reads that topic rejects them again and loops for ever. Patterns
 * are matched with POSIX extended regular expressions, close to
 * librdkafka's own; one that does not compile cannot be checked, so it is
 * refused too.
 */
static int check_not_subscribed(const struct exporter_config *cfg, const char *what,
                                const char *own, const char *why, char *errbuf, size_t errlen)
{
    if (!own || own[0] == '\0')
        return 0;
    for (size_t i = 0; i < cfg->kafka_topics.count; i++) {
        const char *topic = cfg->kafka_topics.items[i];
        bool matches;
        if (topic[0] == '^') {
            regex_t re;
            if (perl_style(topic) || regcomp(&re, topic, REG_EXTENDED | REG_NOSUB) != 0)
                return msgf(errbuf, errlen, -EINVAL,
                            "kafka.topics: '%.*s' is not a regular expression the exporter can "
                            "check against %s; write it in POSIX extended syntax "
                            "([0-9] for \\d, no (?...) groups) or list the topics by name",
                            QUOTE(topic), what);
            matches = regexec(&re, own, 0, NULL, 0) == 0;
            regfree(&re);
        } else {
            matches = strcmp(topic, own) == 0;
        }
        if (matches)
            return msgf(errbuf, errlen, -EINVAL,
                        "kafka.topics: '%.*s' subscribes the exporter's own topic '%s' (%s), "
                        "%s; narrow the pattern (e.g. '^ai-costs$|^ai-api-costs$') or set "
                        "another %s",
                        QUOTE(topic), own, what, why, what);
    }
    return 0;
}

/*
 * The exporter writes two topics of its own: rejected events go to
 * kafka.dlq_topic (a subscription that also reads it rejects them again
 * and loops for ever) and checkpoints to kafka.state_topic (not events at
 * all). Patterns are matched with POSIX extended regular expressions,
 * close to librdkafka's own; one that does not compile cannot be checked,
 * so it is refused too.
 */
static int check_own_topics_not_subscribed(const struct exporter_config *cfg, char *errbuf,
                                           size_t errlen)
{
    if (cfg->kafka_dlq_topic && cfg->kafka_state_topic &&
        strcmp(cfg->kafka_dlq_topic, cfg->kafka_state_topic) == 0)
        return msgf(errbuf, errlen, -EINVAL,
                    "kafka.state_topic: '%s' is also kafka.dlq_topic; give each its own topic",
                    cfg->kafka_state_topic);
    int rc = check_not_subscribed(cfg, "kafka.dlq_topic", cfg->kafka_dlq_topic,
                                  "the dead-letter topic: every rejected event would be read, "
                                  "rejected and dead-lettered again",
                                  errbuf, errlen);
    if (rc)
        return rc;
    return check_not_subscribed(cfg, "kafka.state_topic", cfg->kafka_state_topic,
                                "the checkpoint topic: its records are not events", errbuf, errlen);
}

/* Whether kafka.topics names topic or has a ^pattern matching it. */
static bool topic_subscribed(const struct exporter_config *cfg, const char *topic)
{
    for (size_t i = 0; i < cfg->kafka_topics.count; i++) {
        const char *t = cfg->kafka_topics.items[i];
        if (t[0] != '^') {
            if (strcmp(t, topic) == 0)
                return true;
            continue;
        }
        regex_t re;
        if (perl_style(t) || regcomp(&re, t, REG_EXTENDED | REG_NOSUB) != 0)
            continue;
        bool match = regexec(&re, topic, 0, NULL, 0) == 0;
        regfree(&re);
        if (match)
            return true;
    }
    return false;
}

/*
 * A "KIND[:PROFILE]" value (of the setting `what`): the profile must be a
 * user or built-in one, and compile for that kind (a user profile of the
 * same name replaces the built-in one). *used (per user profile) is set.
 */
static int check_kind_use(const struct exporter_config *cfg, const char *what, const char *spec,
                          bool *used, char *errbuf, size_t errlen)
{
    char msg[512];
    const char *colon = strchr(spec, ':');
    int kind = event_kind_parse(spec, colon ? (size_t)(colon - spec) : strlen(spec));
    if (kind < 0 || check_kind_spec(spec, msg, sizeof msg) != 0)
        return msgf(errbuf, errlen, -EINVAL, "%s: %s", what, msg);
    if (!colon)
        return 0;
    const char *name = colon + 1;
    ssize_t at = profiles_find(&cfg->events_mappings, name);
    const struct string_map *fields;
    enum event_kind builtin_kind;
    if (at >= 0) {
        used[at] = true;
        fields = &cfg->events_mappings.fields[at];
    } else if ((fields = field_mapping_builtin(name, &builtin_kind)) != NULL) {
        if ((int)builtin_kind != kind)
            return msgf(errbuf, errlen, -EINVAL,
                        "%s: the built-in profile '%s' reads %s events, not %s; use KIND "
                        "%s:%s or another profile",
                        what, name, event_kind_name(builtin_kind),
                        event_kind_name((enum event_kind)kind), event_kind_name(builtin_kind),
                        name);
    } else {
        return msgf(errbuf, errlen, -EINVAL,
                    "%s: no mapping profile named '%.*s'; define it under events.mappings or "
                    "use a built-in one (openai, anthropic, dcgm)",
                    what, QUOTE(name));
    }
    struct field_mapping *m = field_mapping_compile((enum event_kind)kind, fields, msg, sizeof msg);
    if (!m)
        return msgf(errbuf, errlen, -EINVAL,
                    "%s: profile '%s' does not fit %s events: events.mappings.%s.%s", what, name,
                    event_kind_name((enum event_kind)kind), name, msg);
    field_mapping_free(m);
    return 0;
}

/*
 * The event kinds as a whole (docs/events.md): every events.topic_kinds key
 * is subscribed, every kind and profile in use exists and fits, every
 * profile fits some kind, and gpu.namespace_teams values are team/project.
 */
static int check_event_kinds(const struct exporter_config *cfg, char *errbuf, size_t errlen)
{
    const struct mapping_profiles *mp = &cfg->events_mappings;
    bool *used = calloc(mp->count + 1, sizeof *used);
    char what[400], msg[512];
    int rc = 0;
    if (!used)
        return msgf(errbuf, errlen, -ENOMEM, "config: out of memory");
    for (size_t i = 0; i < cfg->events_topic_kinds.count && rc == 0; i++) {
        const char *topic = cfg->events_topic_kinds.keys[i];
        snprintf(what, sizeof what, "events.topic_kinds.%.*s", QUOTE(topic));
        /* The default entry names a topic of the default subscription; a
         * narrower kafka.topics simply does not use it. */
        bool default_entry = strcmp(topic, "gpu-utilization-events") == 0 &&
                             strcmp(cfg->events_topic_kinds.values[i], "gpu_utilization") == 0;
        if (!default_entry && !topic_subscribed(cfg, topic))
            rc = msgf(errbuf, errlen, -EINVAL,
                      "%s: the topic is not in kafka.topics (nor matched by a ^pattern there); "
                      "subscribe it or remove the entry",
                      what);
        else
            rc = check_kind_use(cfg, what, cfg->events_topic_kinds.values[i], used, errbuf, errlen);
    }
    if (rc == 0)
        rc = check_kind_use(cfg, "events.input_kind", cfg->events_input_kind, used, errbuf, errlen);
    for (size_t i = 0; i < mp->count && rc == 0; i++) {
        if (used[i])
            continue;
        bool fits = false;
        for (int k = 0; k < EVENT_KIND_COUNT && !fits; k++) {
            struct field_mapping *m =
                field_mapping_compile((enum event_kind)k, &mp->fields[i], msg, sizeof msg);
            fits = m != NULL;
            field_mapping_free(m);
        }
        if (!fits)
            rc = msgf(errbuf, errlen, -EINVAL,
                      "events.mappings.%s: its fields fit no event kind (cost, "
                      "gpu_utilization, focus); see docs/events.md",
                      mp->names[i]);
    }
    for (size_t i = 0; i < cfg->gpu_namespace_teams.count && rc == 0; i++) {
        const char *v = cfg->gpu_namespace_teams.values[i];
        const char *slash = strchr(v, '/');
        if (check_team_project(v, msg, sizeof msg) != 0 ||
            (size_t)(slash - v) > (size_t)cfg->events_max_label_bytes ||
            strlen(slash + 1) > (size_t)cfg->events_max_label_bytes)
            rc = msgf(errbuf, errlen, -EINVAL,
                      "gpu.namespace_teams.%.*s: '%.*s' is not TEAM/PROJECT (both non-empty "
                      "UTF-8, at most events.max_label_bytes, one '/')",
                      QUOTE(cfg->gpu_namespace_teams.keys[i]), QUOTE(v));
    }
    free(used);
    return rc;
}

/* Where each option got its value: a flag, the --config file, or its
 * default; for the checks that need the whole config. */
struct origins {
    const char *path; /* --config, NULL: none */
    const bool *in_file;
    const yaml_mark_t *marks;
    const struct flag_setting *flags;
    size_t nflags;
};

/* "command line: --flag" or "path:line:col: name" for where o was set,
 * to start an error message with; false (and the bare name) for a default. */
static bool origin_text(const struct origins *orig, const struct option *o, char *buf, size_t len)
{
    size_t idx = (size_t)(o - options);
    for (size_t i = 0; i < orig->nflags; i++)
        if (orig->flags[i].opt == o) {
            snprintf(buf, len, "command line: %s", o->flag);
            return true;
        }
    if (orig->path && orig->in_file[idx]) {
        snprintf(buf, len, "%s:%zu:%zu: %s", orig->path, orig->marks[idx].line + 1,
                 orig->marks[idx].column + 1, o->name);
        return true;
    }
    snprintf(buf, len, "%s", o->name);
    return false;
}

static bool set_by_flag(const struct origins *orig, const struct option *o)
{
    for (size_t i = 0; i < orig->nflags; i++)
        if (orig->flags[i].opt == o)
            return true;
    return false;
}

/*
 * web.scraper_connections against the rest: it reserves connections only
 * when web.scrapers lists someone (set without them, it is refused: a
 * reservation for nobody is a mistake), and must leave others at least
 * one. The error points at the setting that made it so: a flag before the
 * file's key, the reservation before the limit.
 */
static int check_scrapers(const struct exporter_config *cfg, const struct origins *orig,
                          char *errbuf, size_t errlen)
{
    const struct option *sc = find_option("web.scraper_connections");
    const struct option *mc = find_option("web.max_connections");
    char where[600];
    if (cfg->web_scrapers.count == 0) {
        if (origin_text(orig, sc, where, sizeof where))
            return msgf(errbuf, errlen, -EINVAL,
                        "%s: reserves connections for web.scrapers, which is empty; list the "
                        "scrapers' addresses in web.scrapers, or remove web.scraper_connections",
                        where);
        return 0;
    }
    if (cfg->web_scraper_connections < cfg->web_max_connections)
        return 0;
    bool blame_sc = set_by_flag(orig, sc) ||
                    (!set_by_flag(orig, mc) && origin_text(orig, sc, where, sizeof where));
    if (blame_sc) {
        origin_text(orig, sc, where, sizeof where);
        return msgf(errbuf, errlen, -EINVAL,
                    "%s: %" PRId64 " reserved connections leave none of web.max_connections "
                    "(%" PRId64 ") to other clients; set it below web.max_connections",
                    where, cfg->web_scraper_connections, cfg->web_max_connections);
    }
    origin_text(orig, mc, where, sizeof where);
    return msgf(errbuf, errlen, -EINVAL,
                "%s: %" PRId64 " connections leave none to other clients once "
                "web.scraper_connections (%" PRId64 ") are reserved for web.scrapers; raise it "
                "above web.scraper_connections, or lower that",
                where, cfg->web_max_connections, cfg->web_scraper_connections);
}

int config_parse_args(struct exporter_config *cfg, int argc, char **argv,
                      enum config_action *action, char *errbuf, size_t errlen)
{
    bool in_file[N_OPTIONS] = {false};
    yaml_mark_t marks[N_OPTIONS] = {{0, 0, 0}};
    struct flag_setting *settings = NULL;
    struct exporter_config fresh;
    size_t nsettings = 0;
    const char *config_path = NULL;
    bool help = false, version = false, docs = false, check = false, have_fresh = false;
    int rc = 0;

    if (errbuf && errlen)
        errbuf[0] = '\0';
    if (action)
        *action = CONFIG_ACTION_RUN;
    if (!cfg || !action || argc < 0 || (argc > 0 && !argv))
        return msgf(errbuf, errlen, -EINVAL, "config_parse_args: bad arguments");
    if (argc > 1 && !(settings = calloc((size_t)argc, sizeof *settings)))
        return msgf(errbuf, errlen, -ENOMEM, "command line: out of memory");

    /* Pass 1: check every argument and find --config, so the file can be
     * loaded before any flag regardless of where --config appears. */
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *eq = arg[0] == '-' && arg[1] == '-' ? strchr(arg, '=') : NULL;
        size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
        const char *value = eq ? eq + 1 : NULL;
        const struct option *o = NULL;
        bool *switch_flag = NULL;

        if (arg[0] != '-' || arg[1] == '\0') {
            rc = msgf(errbuf, errlen, -EINVAL,
                      "command line: unexpected argument '%.*s'; options are given as "
                      "--flag=value (see --help)",
                      QUOTE(arg));
            goto out;
        }
        if (flag_is(arg, len, "-h") || flag_is(arg, len, "--help"))
            switch_flag = &help;
        else if (flag_is(arg, len, "--version"))
            switch_flag = &version;
        else if (flag_is(arg, len, "--print-config-docs"))
            switch_flag = &docs;
        else if (flag_is(arg, len, "--check-config"))
            switch_flag = &check;
        if (switch_flag) {
            if (value) {
                rc = msgf(errbuf, errlen, -EINVAL,
                          "command line: %.*s takes no value; remove '=%.*s'", (int)len, arg,
                          QUOTE(value));
                goto out;
            }
            *switch_flag = true;
            continue;
        }
        if (!flag_is(arg, len, "--config") && !(o = find_flag(arg, len))) {
            rc = unknown_flag(arg, len, errbuf, errlen);
            goto out;
        }
        if (!value) {
            if (i + 1 >= argc) {
                char mv[128];
                const char *m = o ? metavar(o, mv, sizeof mv) : "FILE";
                rc = msgf(errbuf, errlen, -EINVAL, "command line: %s needs a value: %s=%s or %s %s",
                          arg, arg, m, arg, m);
                goto out;
            }
            value = argv[++i];
        }
        if (o) {
            settings[nsettings].opt = o;
            settings[nsettings++].value = value;
        } else if (config_path) {
            rc = msgf(errbuf, errlen, -EINVAL,
                      "command line: --config given twice ('%.*s' and '%.*s'); pass one file",
                      QUOTE(config_path), QUOTE(value));
            goto out;
        } else if (!value[0]) {
            rc = msgf(errbuf, errlen, -EINVAL, "command line: --config needs a file path");
            goto out;
        } else {
            config_path = value;
        }
    }
    if (help || version || docs) {
        /* informational actions must work even with a broken config */
        *action = help      ? CONFIG_ACTION_HELP
                  : version ? CONFIG_ACTION_VERSION
                            : CONFIG_ACTION_PRINT_DOCS;
        goto out;
    }

    /* Pass 2: file, then flags in order, all on a copy of cfg. */
    if ((rc = config_clone(&fresh, cfg)) != 0) {
        msgf(errbuf, errlen, rc, "command line: out of memory");
        goto out;
    }
    have_fresh = true;
    if (config_path && (rc = load_file(&fresh, config_path, in_file, marks, errbuf, errlen)) != 0)
        goto out;
    for (size_t i = 0; i < nsettings; i++)
        if ((rc = apply_flag(&fresh, settings[i].opt, settings[i].value, errbuf, errlen)) != 0)
            goto out;
    if ((rc = merge_properties_file(&fresh, errbuf, errlen)) != 0)
        goto out;
    if ((rc = expand_property_refs(&fresh, errbuf, errlen)) != 0)
        goto out;
    if ((rc = check_own_topics_not_subscribed(&fresh, errbuf, errlen)) != 0)
        goto out;
    if ((rc = check_event_kinds(&fresh, errbuf, errlen)) != 0)
        goto out;
    struct origins orig = {config_path, in_file, marks, settings, nsettings};
    if ((rc = check_scrapers(&fresh, &orig, errbuf, errlen)) != 0)
        goto out;
    config_replace(cfg, &fresh);
    *action = check ? CONFIG_ACTION_CHECK : CONFIG_ACTION_RUN;
out:
    if (have_fresh)
        config_free(&fresh);
    free(settings);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Help and reference documentation */

static void format_default(const struct option *o, char *buf, size_t len)
{
    switch (o->type) {
    case OPT_STRING:
        snprintf(buf, len, "\"%s\"", o->def);
        break;
    case OPT_OPTIONAL_STRING:
        if (o->def)
            snprintf(buf, len, "\"%s\"", o->def);
        else
            snprintf(buf, len, "unset");
        break;
    case OPT_LIST: {
        size_t used = (size_t)snprintf(buf, len, "[");
        const char *p = o->def ? o->def : "";
        for (; *p && used + 3 < len; p++) {
            if (*p == ',') {
                buf[used++] = ',';
                buf[used++] = ' ';
            } else {
                buf[used++] = *p;
            }
        }
        snprintf(buf + used, len - used, "]");
        break;
    }
    case OPT_MAP: {
        /* "k=v,k=v" -> "{k: v, k: v}" */
        size_t used = (size_t)snprintf(buf, len, "{");
        const char *p = o->def ? o->def : "";
        for (; *p && used + 4 < len; p++) {
            if (*p == ',') {
                buf[used++] = ',';
                buf[used++] = ' ';
            } else if (*p == '=') {
                buf[used++] = ':';
                buf[used++] = ' ';
            } else {
                buf[used++] = *p;
            }
        }
        snprintf(buf + used, len - used, "}");
        break;
    }
    case OPT_PROFILES:
        snprintf(buf, len, "{}");
        break;
    case OPT_INT:
    case OPT_MONEY:
    case OPT_ENUM:
        snprintf(buf, len, "%s", o->def);
        break;
    }
}

static const char *type_name(const struct option *o)
{
    switch (o->type) {
    case OPT_STRING:
        return "string";
    case OPT_OPTIONAL_STRING:
        return "string, optional";
    case OPT_INT:
        return "integer";
    case OPT_MONEY:
        return "decimal, US dollars";
    case OPT_ENUM:
        return "enum";
    case OPT_LIST:
        return "list of strings";
    case OPT_MAP:
        return "map of strings";
    case OPT_PROFILES:
        return "map of maps of strings";
    }
    return "?";
}

static const char *metavar(const struct option *o, char *buf, size_t len)
{
    if (o->metavar)
        return o->metavar;
    switch (o->type) {
    case OPT_INT:
        return "N";
    case OPT_MONEY:
        return "USD";
    case OPT_ENUM:
        join_values(o->values, "|", buf, len);
        return buf;
    case OPT_STRING:
    case OPT_OPTIONAL_STRING:
    case OPT_LIST:
    case OPT_MAP:
    case OPT_PROFILES:
        break;
    }
    return "VALUE";
}

/* Word-wraps text at HELP_WIDTH, every line indented by `indent` spaces. */
static void print_wrapped(FILE *out, const char *text, int indent)
{
    const char *p = text;
    int col = 0;

    while (*p) {
        const char *end = p;
        int wlen;
        while (*end && *end != ' ')
            end++;
        wlen = (int)(end - p);
        if (col == 0) {
            fprintf(out, "%*s%.*s", indent, "", wlen, p);
            col = indent + wlen;
        } else if (col + 1 + wlen > HELP_WIDTH) {
            fprintf(out, "\n%*s%.*s", indent, "", wlen, p);
            col = indent + wlen;
        } else {
            fprintf(out, " %.*s", wlen, p);
            col += 1 + wlen;
        }
        p = end;
        while (*p == ' ')
            p++;
    }
    fputc('\n', out);
}

void config_print_help(FILE *out, const char *program)
{
    char mv[128], def[256], allowed[512], *text;

    fprintf(out,
            "Usage: %s [--config FILE] [FLAGS]\n\n"
            "Turns JSON AI-cost events into exact Prometheus counters. Flags override the\n"
            "YAML file, which overrides the defaults; the full reference is\n"
            "docs/configuration.md (or --print-config-docs).\n\n"
            "General flags:\n",
            program ? program : "ai-finops-exporter");
    for (size_t i = 0; i < sizeof general_flags / sizeof general_flags[0]; i++) {
        char head[64];
        snprintf(head, sizeof head, "%s%s%s", general_flags[i].flag,
                 general_flags[i].metavar ? " " : "",
                 general_flags[i].metavar ? general_flags[i].metavar : "");
        fprintf(out, "  %-22s %s\n", head, general_flags[i].help);
    }
    fputs("\nOptions (YAML key in brackets):\n", out);
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const struct option *o = &options[i];
        format_default(o, def, sizeof def);
        describe_allowed(o, allowed, sizeof allowed);
        fprintf(out, "  %s=%s  [%s]\n", o->flag, metavar(o, mv, sizeof mv), o->name);
        if (asprintf(&text, "%s Allowed: %s. Default: %s.", o->help, allowed, def) < 0) {
            print_wrapped(out, o->help, 6);
            continue;
        }
        print_wrapped(out, text, 6);
        free(text);
    }
}

void config_print_markdown(FILE *out)
{
    char mv[128], def[256], allowed[512];
    const char *group = NULL;
    size_t group_len = 0;

    fputs("# Configuration reference\n"
          "\n"
          "<!-- Generated by `ai-finops-exporter --print-config-docs` from the option table\n"
          "     in src/config.c; do not edit by hand. -->\n"
          "\n"
          "Options are taken, lowest precedence first, from the built-in defaults, the YAML\n"
          "file named by `--config FILE`, and command-line flags.\n"
          "\n"
          "## YAML file\n"
          "\n"
          "Nested mappings join with `.` to form the option name: `web:` then\n"
          "`listen_address:` sets `web.listen_address` (the dotted name may also be\n"
          "written as one key). A list takes a YAML sequence, flow (`[a, b]`) or block\n"
          "(one `- item` per line); a map takes a mapping whose keys are kept verbatim,\n"
          "dots included. A file with no options in it (empty, or only comments) is\n"
          "refused, and so is a UTF-16 or UTF-32 file (save it as UTF-8; a UTF-8 byte\n"
          "order mark is fine): leave out `--config` to run on the defaults. Unknown keys,\n"
          "duplicate keys, values of the wrong type or out of range, and anchors or\n"
          "aliases are rejected with the file, line and column of the problem.\n"
          "Amounts of money are decimal numbers of US dollars, read exactly (no floating\n"
          "point) with at most 9 decimal places.\n"
          "\n"
          "```yaml\n",
          out);
    fputs(yaml_example, out);
    fputs("```\n"
          "\n"
          "## Command-line flags\n"
          "\n"
          "Every option has a flag: its YAML name with `_` replaced by `-`, after `--`\n"
          "(`web.listen_address` is `--web.listen-address`). Both `--flag=value` and\n"
          "`--flag value` work; flags are applied in order, after the file. A list flag\n"
          "takes a comma-separated value (`--kafka.topics=a,b`; an empty value gives an\n"
          "empty list). `--kafka.properties KEY=VALUE` sets one property and may be\n"
          "repeated.\n"
          "\n"
          "| Flag | Description |\n"
          "|---|---|\n",
          out);
    for (size_t i = 0; i < sizeof general_flags / sizeof general_flags[0]; i++)
        fprintf(out, "| `%s%s%s` | %s |\n", general_flags[i].flag,
                general_flags[i].metavar ? " " : "",
                general_flags[i].metavar ? general_flags[i].metavar : "", general_flags[i].help);

    fputs("\n## Signals and reloading\n"
          "\n"
          "- `SIGHUP` re-reads the configuration: the `--config` file, the\n"
          "  `kafka.properties_file` and the command line as given at start. Only\n"
          "  `log.level` and `log.format` change live. A change to any other option is\n"
          "  refused with one log line per key (`configuration reload refused: this key\n"
          "  cannot change while running` with `key=...`), and so is a file that does not\n"
          "  load; the daemon then keeps its running configuration. No counter changes\n"
          "  or resets either way. `ai_finops_config_last_reload_successful` (1 or 0) and\n"
          "  `ai_finops_config_reloads_total{result=\"applied\"|\"refused\"}` report it.\n"
          "  Price tables, limits, labels, inputs and the Kafka settings need a restart.\n"
          "- `SIGUSR1` and `SIGUSR2` are logged and ignored.\n"
          "- `SIGTERM` or `SIGINT` stops: the input stops (a file or FIFO at once, even\n"
          "  with no writer or an idle one; Kafka writes its final checkpoint within\n"
          "  `kafka.shutdown_timeout_ms`), then the server. If the shutdown takes longer\n"
          "  than `kafka.shutdown_timeout_ms` + 5 s (5 s with `--input`), or a second\n"
          "  `SIGTERM`/`SIGINT` arrives, the process exits at once with status 3 and says\n"
          "  so in the log (a Kafka input then resumes from its last checkpoint).\n"
          "\n"
          "`--check-config` loads everything a start would (the price tables, the\n"
          "`kafka.properties` applied to a real librdkafka configuration, the `--input`\n"
          "path opened) and exits 2 with the problem, 0 when the start would get past\n"
          "configuration.\n",
          out);
    fputs("\n## Options\n\n| YAML key | Flag | Type | Default |\n|---|---|---|---|\n", out);
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const struct option *o = &options[i];
        format_default(o, def, sizeof def);
        fprintf(out, "| `%s` | `%s` | %s | %s%s%s |\n", o->name, o->flag, type_name(o),
                o->def ? "`" : "", def, o->def ? "`" : "");
    }
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const struct option *o = &options[i];
        size_t glen = section_len(o->name);
        if (!group || glen != group_len || strncmp(group, o->name, glen) != 0) {
            group = o->name;
            group_len = glen;
            fprintf(out, "\n### %.*s\n", (int)glen, o->name);
        }
        format_default(o, def, sizeof def);
        describe_allowed(o, allowed, sizeof allowed);
        fprintf(out, "\n#### `%s`\n\n%s\n\n", o->name, o->help);
        fprintf(out, "- Flag: `%s=%s`\n", o->flag, metavar(o, mv, sizeof mv));
        fprintf(out, "- Type: %s\n", type_name(o));
        fprintf(out, "- Default: %s%s%s\n", o->def ? "`" : "", def, o->def ? "`" : "");
        fprintf(out, "- Allowed: %s\n", allowed);
    }
}

/* ------------------------------------------------------------------------ */
/* SIGHUP reload: which keys differ, and which may change live */

static bool strings_equal(const char *a, const char *b)
{
    if (!a || !b)
        return a == b;
    return strcmp(a, b) == 0;
}

static bool option_equal(const struct exporter_config *a, const struct exporter_config *b,
                         const struct option *o)
{
    const void *fa = (const char *)a + o->offset, *fb = (const char *)b + o->offset;
    switch (o->type) {
    case OPT_STRING:
    case OPT_OPTIONAL_STRING:
        return strings_equal(*(char *const *)fa, *(char *const *)fb);
    case OPT_INT:
    case OPT_MONEY:
        return *(const int64_t *)fa == *(const int64_t *)fb;
    case OPT_ENUM:
        if (o->bool_enum)
            return *(const bool *)fa == *(const bool *)fb;
        return *(const int *)fa == *(const int *)fb;
    case OPT_LIST: {
        const struct string_list *la = fa, *lb = fb;
        if (la->count != lb->count)
            return false;
        for (size_t i = 0; i < la->count; i++)
            if (!strings_equal(la->items[i], lb->items[i]))
                return false;
        return true;
    }
    case OPT_MAP: {
        const struct string_map *ma = fa, *mb = fb;
        if (ma->count != mb->count)
            return false;
        for (size_t i = 0; i < ma->count; i++) {
            ssize_t j = map_find(mb, ma->keys[i]);
            if (j < 0 || !strings_equal(ma->values[i], mb->values[j]))
                return false;
        }
        return true;
    }
    case OPT_PROFILES: {
        const struct mapping_profiles *pa = fa, *pb = fb;
        if (pa->count != pb->count)
            return false;
        for (size_t i = 0; i < pa->count; i++) {
            ssize_t j = profiles_find(pb, pa->names[i]);
            if (j < 0)
                return false;
            const struct string_map *ma = &pa->fields[i], *mb = &pb->fields[j];
            if (ma->count != mb->count)
                return false;
            for (size_t k = 0; k < ma->count; k++) {
                ssize_t l = map_find(mb, ma->keys[k]);
                if (l < 0 || !strings_equal(ma->values[k], mb->values[l]))
                    return false;
            }
        }
        return true;
    }
    }
    return false;
}

size_t config_diff(const struct exporter_config *a, const struct exporter_config *b,
                   const char **keys, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (!option_equal(a, b, &options[i]) && n < max)
            keys[n++] = options[i].name;
    return n;
}

bool config_live_key(const char *key)
{
    return strcmp(key, "log.level") == 0 || strcmp(key, "log.format") == 0;
}

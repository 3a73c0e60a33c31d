/*
 * config.h - the exporter's configuration: one declarative option table
 * drives YAML parsing (libyaml), validation, command-line flags, --help and
 * the generated reference docs/configuration.md.
 *
 * Precedence: built-in defaults < YAML file (--config) < command-line flags.
 * Errors name file:line:column (1-based), the key, and what is allowed.
 *
 * Thread-safety: a struct exporter_config is filled once at start-up by the
 * main thread and is read-only afterwards, so any thread may read it.
 */
#ifndef AI_FINOPS_CONFIG_H
#define AI_FINOPS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum log_level { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR };
enum log_format { LOG_FORMAT_LOGFMT, LOG_FORMAT_JSON };
enum price_preference { PRICE_PREFER_EVENT, PRICE_PREFER_TABLE };

struct string_list {
    char **items; /* owned */
    size_t count;
};

struct string_map {
    char **keys;   /* owned */
    char **values; /* owned */
    size_t count;
};

/* events.mappings: named maps of our field -> JSON pointer/expression. */
struct mapping_profiles {
    char **names;              /* owned */
    struct string_map *fields; /* owned, one per name */
    size_t count;
};

struct exporter_config {
    /* web.* */
    char *web_listen_address; /* ":9400" or "127.0.0.1:9400" or "[::1]:9400" */
    char *web_telemetry_path; /* "/metrics" */
    int64_t web_max_connections;
    int64_t web_max_connections_per_ip;
    int64_t web_connection_timeout_seconds;
    int64_t web_request_timeout_seconds;
    char *web_config_file; /* --web.config.file, NULL: none */
    /* Addresses or CIDR ranges of the scrapers (cidr.h syntax, checked);
     * empty: no reservation. */
    struct string_list web_scrapers;
    int64_t web_scraper_connections; /* slots only they may use; < max_connections */

    /* log.* */
    enum log_level log_level;
    enum log_format log_format;

    /* input: NULL reads Kafka; "-" reads stdin; otherwise a JSONL file */
    char *input;

    /* events.* */
    int64_t events_max_bytes;
    int64_t events_max_cost_nanos; /* YAML/flag value in dollars, e.g. 1000000 */
    int64_t events_max_label_bytes;
    int64_t events_max_depth;
    int64_t events_max_tokens;         /* per token kind, per event */
    int64_t events_max_gpu_seconds;    /* gpu_count x duration_seconds, per event */
    int64_t events_max_future_seconds; /* how far a timestamp may be ahead of the clock */
    char *events_unattributed_label;
    struct string_list events_extra_labels; /* keys of "labels" that become labels */
    /* Event kinds (event_kinds.h, docs/events.md). */
    struct string_map events_topic_kinds;    /* topic -> "kind" or "kind:profile" */
    char *events_input_kind;                 /* --input's "kind[:profile]", default "cost" */
    struct mapping_profiles events_mappings; /* profile -> {our field -> source} */

    /* gpu.* */
    int64_t gpu_utilization_silence_seconds; /* a gauge is dropped after this silence */
    struct string_map gpu_namespace_teams;   /* namespace -> "team/project" */

    /* focus.* */
    bool focus_effective_cost; /* focus.cost_column: effective (true) or billed */
    char *focus_team_tag;      /* Tags key holding the team */
    char *focus_project_tag;   /* Tags key holding the project */

    /* counters.* */
    int64_t counters_max_series;         /* per metric family */
    int64_t counters_new_series_hold_ms; /* a new series reads 0 this long */

    /* kafka.* */
    char *kafka_brokers;
    char *kafka_group_id;
    struct string_list kafka_topics;
    int64_t kafka_threads;              /* 0: one per CPU of the cgroup quota (cgroup.h) */
    struct string_map kafka_properties; /* passed to librdkafka verbatim */
    char *kafka_properties_file;        /* key=value file merged into kafka_properties */
    char *kafka_dlq_topic;              /* "" disables the dead-letter topic */
    char *kafka_state_topic;            /* compacted checkpoint topic */
    int64_t kafka_checkpoint_interval_ms;
    char *kafka_transactional_id; /* NULL: "ai-finops-exporter-" + host name */
    int64_t kafka_transaction_timeout_ms;
    int64_t kafka_shutdown_timeout_ms;

    /* pricing.* */
    char *pricing_file; /* extra/override price table, NULL for none */
    enum price_preference pricing_prefer;
    int64_t pricing_mismatch_tolerance_ppm;
};

/* What the command line asked for besides options. */
enum config_action {
    CONFIG_ACTION_RUN,
    CONFIG_ACTION_CHECK,      /* --check-config: validate and exit 0 */
    CONFIG_ACTION_HELP,       /* --help */
    CONFIG_ACTION_VERSION,    /* --version */
    CONFIG_ACTION_PRINT_DOCS, /* --print-config-docs: markdown reference */
};

/* Fills every field with its default. Must be paired with config_free(). */
void config_init_defaults(struct exporter_config *cfg);

/*
 * Applies a YAML file on top of what cfg holds. Returns 0, or -EINVAL with
 * errbuf = "path:line:col: message" (unknown key, duplicate key, wrong type,
 * out-of-range value, YAML syntax error), or -errno when it cannot be read.
 */
int config_load_file(struct exporter_config *cfg, const char *path, char *errbuf, size_t errlen);

/* Same, from a memory buffer; `name` stands in for the path in messages. */
int config_load_buffer(struct exporter_config *cfg, const char *name, const char *data, size_t len,
                       char *errbuf, size_t errlen);

/*
 * Parses argv: --config FILE first (loaded before any flag), then each
 * option's flag (`--web.listen-address=X` or `--web.listen-address X`),
 * --input, --check-config, --help, --version, --print-config-docs.
 * Last, when kafka.properties_file is set, reads that file and adds its
 * properties to kafka.properties (a key set in both is an error).
 * Returns 0 and sets *action, or -EINVAL with a message in errbuf
 * ("path:line:col: ..." for the properties file); -errno when the
 * properties file cannot be read. Call it once per config: a second call
 * would find the file's keys already merged and refuse them as duplicates.
 */
int config_parse_args(struct exporter_config *cfg, int argc, char **argv,
                      enum config_action *action, char *errbuf, size_t errlen);

/*
 * SIGHUP reload: fills keys with the dotted names of the options whose
 * values differ between a and b (at most max; returns how many). Names
 * are static strings.
 */
size_t config_diff(const struct exporter_config *a, const struct exporter_config *b,
                   const char **keys, size_t max);
/* Whether the option `key` may change without a restart (log.level and
 * log.format; see docs/configuration.md, "Reloading with SIGHUP"). */
bool config_live_key(const char *key);

void config_print_help(FILE *out, const char *program);
void config_print_markdown(FILE *out);
void config_free(struct exporter_config *cfg);

#endif

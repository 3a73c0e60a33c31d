/*
 * test_config.c - the configuration module: defaults, a full YAML file,
 * every error kind with its exact "file:line:column: message", exact money
 * parsing, lists and maps, flags over the file, reloading without leaks
 * (ASan checks), and docs/configuration.md kept in sync with the table.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "config.h"

#define NANOS INT64_C(1000000000)

static char errbuf[1024];

static int load(struct exporter_config *cfg, const char *yaml)
{
    return config_load_buffer(cfg, "t.yaml", yaml, strlen(yaml), errbuf, sizeof errbuf);
}

static const char *source_dir(void)
{
    const char *dir = getenv("FINOPS_SOURCE_DIR");
#ifdef FINOPS_SOURCE_DIR
    if (!dir || !dir[0])
        dir = FINOPS_SOURCE_DIR;
#endif
    if (!dir || !dir[0])
        fail_msg("FINOPS_SOURCE_DIR is not set; run the tests through ctest");
    return dir;
}

static char *source_path(const char *rel)
{
    static char path[4096];
    snprintf(path, sizeof path, "%s/%s", source_dir(), rel);
    return path;
}

/* Loads yaml into a defaults config and checks the exact error message. */
static void expect_error(const char *yaml, const char *expected)
{
    struct exporter_config cfg;

    config_init_defaults(&cfg);
    errbuf[0] = '\0';
    int rc = load(&cfg, yaml);
    if (rc != -EINVAL || strcmp(errbuf, expected) != 0)
        print_error("yaml:\n%s\nexpected: %s\n     got: rc=%d %s\n", yaml, expected, rc, errbuf);
    assert_int_equal(rc, -EINVAL);
    assert_string_equal(errbuf, expected);
    config_free(&cfg);
}

static void test_defaults(void **state)
{
    struct exporter_config cfg;
    (void)state;

    config_init_defaults(&cfg);
    assert_string_equal(cfg.web_listen_address, ":9400");
    assert_string_equal(cfg.web_telemetry_path, "/metrics");
    assert_int_equal(cfg.web_max_connections, 1024);
    assert_int_equal(cfg.web_max_connections_per_ip, 32);
    assert_int_equal(cfg.web_connection_timeout_seconds, 10);
    assert_int_equal(cfg.web_request_timeout_seconds, 3);
    assert_int_equal(cfg.log_level, LOG_LEVEL_INFO);
    assert_int_equal(cfg.log_format, LOG_FORMAT_LOGFMT);
    assert_null(cfg.input);
    assert_int_equal(cfg.events_max_bytes, 65536);
    assert_int_equal(cfg.events_max_cost_nanos, INT64_C(1000000) * NANOS);
    assert_int_equal(cfg.events_max_label_bytes, 128);
    assert_int_equal(cfg.events_max_depth, 16);
    assert_string_equal(cfg.events_unattributed_label, "unattributed");
    assert_int_equal(cfg.events_extra_labels.count, 0);
    assert_int_equal(cfg.counters_max_series, 100000);
    assert_string_equal(cfg.kafka_brokers, "127.0.0.1:9092");
    assert_string_equal(cfg.kafka_group_id, "ai-finops-exporter");
    /* The three topics of the original design (issue 13). */
    assert_int_equal(cfg.kafka_topics.count, 3);
    assert_string_equal(cfg.kafka_topics.items[0], "ai-costs");
    assert_string_equal(cfg.kafka_topics.items[1], "ai-api-costs");
    assert_string_equal(cfg.kafka_topics.items[2], "gpu-utilization-events");
    assert_int_equal(cfg.events_topic_kinds.count, 1);
    assert_string_equal(cfg.events_topic_kinds.keys[0], "gpu-utilization-events");
    assert_string_equal(cfg.events_topic_kinds.values[0], "gpu_utilization");
    assert_string_equal(cfg.events_input_kind, "cost");
    assert_int_equal(cfg.events_mappings.count, 0);
    assert_int_equal(cfg.gpu_utilization_silence_seconds, 300);
    assert_int_equal(cfg.gpu_namespace_teams.count, 0);
    assert_true(cfg.focus_effective_cost);
    assert_string_equal(cfg.focus_team_tag, "team");
    assert_string_equal(cfg.focus_project_tag, "project");
    assert_int_equal(cfg.kafka_threads, 0);
    assert_int_equal(cfg.kafka_properties.count, 0);
    assert_string_equal(cfg.kafka_dlq_topic, "ai-costs-dlq");
    assert_string_equal(cfg.kafka_state_topic, "ai-finops-state");
    assert_int_equal(cfg.kafka_checkpoint_interval_ms, 1000);
    assert_null(cfg.kafka_transactional_id);
    assert_int_equal(cfg.kafka_transaction_timeout_ms, 10000);
    assert_int_equal(cfg.kafka_shutdown_timeout_ms, 10000);
    assert_int_equal(cfg.counters_new_series_hold_ms, 35000);
    assert_null(cfg.pricing_file);
    assert_int_equal(cfg.pricing_prefer, PRICE_PREFER_EVENT);
    assert_int_equal(cfg.pricing_mismatch_tolerance_ppm, 10000);
    config_free(&cfg);
}

static void test_full_file(void **state)
{
    struct exporter_config cfg;
    (void)state;

    config_init_defaults(&cfg);
    int rc =
        config_load_file(&cfg, source_path("tests/data/config/full.yaml"), errbuf, sizeof errbuf);
    if (rc)
        print_error("%s\n", errbuf);
    assert_int_equal(rc, 0);
    assert_string_equal(cfg.web_listen_address, "[::1]:9500");
    assert_string_equal(cfg.web_telemetry_path, "/custom/metrics");
    assert_int_equal(cfg.web_max_connections, 100000);
    assert_int_equal(cfg.web_max_connections_per_ip, 1);
    assert_int_equal(cfg.web_connection_timeout_seconds, 3600);
    assert_int_equal(cfg.log_level, LOG_LEVEL_DEBUG);
    assert_int_equal(cfg.log_format, LOG_FORMAT_JSON);
    assert_string_equal(cfg.input, "/var/lib/events.jsonl");
    assert_int_equal(cfg.events_max_bytes, 16777216);
    assert_int_equal(cfg.events_max_cost_nanos, 1);
    assert_int_equal(cfg.events_max_label_bytes, 4096);
    assert_int_equal(cfg.events_max_depth, 2);
    assert_string_equal(cfg.events_unattributed_label, "(none)");
    assert_int_equal(cfg.events_extra_labels.count, 2);
    assert_string_equal(cfg.events_extra_labels.items[0], "environment");
    assert_string_equal(cfg.events_extra_labels.items[1], "cost_center");
    assert_int_equal(cfg.counters_max_series, 10000000);
    assert_string_equal(cfg.kafka_brokers, "k1:9092,k2:9092");
    assert_string_equal(cfg.kafka_group_id, "finops");
    assert_int_equal(cfg.kafka_topics.count, 3);
    assert_string_equal(cfg.kafka_topics.items[0], "ai-costs");
    assert_string_equal(cfg.kafka_topics.items[1], "ai-api-costs");
    assert_string_equal(cfg.kafka_topics.items[2], "^gpu-.*");
    assert_int_equal(cfg.kafka_threads, 256);
    assert_int_equal(cfg.kafka_properties.count, 3);
    assert_string_equal(cfg.kafka_properties.keys[0], "security.protocol");
    assert_string_equal(cfg.kafka_properties.values[0], "SASL_SSL");
    assert_string_equal(cfg.kafka_properties.keys[2], "sasl.username");
    assert_string_equal(cfg.kafka_properties.values[2], "exporter");
    /* only config_parse_args reads the properties file */
    assert_string_equal(cfg.kafka_properties_file, "/etc/ai-finops/kafka/client.properties");
    assert_string_equal(cfg.kafka_dlq_topic, "");
    assert_string_equal(cfg.kafka_state_topic, "finops-state");
    assert_int_equal(cfg.kafka_checkpoint_interval_ms, 50);
    assert_string_equal(cfg.kafka_transactional_id, "exporter-0");
    assert_int_equal(cfg.kafka_transaction_timeout_ms, 900000);
    assert_int_equal(cfg.kafka_shutdown_timeout_ms, 0);
    assert_int_equal(cfg.counters_new_series_hold_ms, 0);
    assert_string_equal(cfg.pricing_file, "/etc/ai-finops/prices.yaml");
    assert_int_equal(cfg.pricing_prefer, PRICE_PREFER_TABLE);
    assert_int_equal(cfg.pricing_mismatch_tolerance_ppm, 0);
    config_free(&cfg);
}

static void test_empty_documents(void **state)
{
    static const char *const empties[] = {
        "", "\n", "# only a comment\n", "---\n", "---\n...\n", "~\n", "web:\n", "web: {}\n"};
    (void)state;

    for (size_t i = 0; i < sizeof empties / sizeof empties[0]; i++) {
        struct exporter_config cfg;
        config_init_defaults(&cfg);
        assert_int_equal(load(&cfg, empties[i]), 0);
        assert_string_equal(errbuf, "");
        assert_string_equal(cfg.web_listen_address, ":9400");
        assert_int_equal(cfg.kafka_topics.count, 3);
        config_free(&cfg);
    }
}

static void test_syntax_errors(void **state)
{
    (void)state;
    expect_error("web:\n  listen_address: \"unterminated\n",
                 "t.yaml:3:1: invalid YAML: found unexpected end of stream (while scanning a "
                 "quoted scalar at line 2, column 19); check the indentation and quoting");
    expect_error("kafka:\n  topics: [a, b\n",
                 "t.yaml:3:1: invalid YAML: did not find expected ',' or ']' (while parsing a "
                 "flow sequence at line 2, column 11); check the indentation and quoting");
    expect_error("web:\n  listen_address: \":1\"\n max_connections: 3\n",
                 "t.yaml:3:2: invalid YAML: did not find expected key (while parsing a block "
                 "mapping at line 1, column 1); check the indentation and quoting");
}

static void test_unknown_keys(void **state)
{
    (void)state;
    expect_error("web:\n  listen_adress: \":9400\"\n",
                 "t.yaml:2:3: unknown key 'web.listen_adress'; did you mean 'web.listen_address'?");
    expect_error("log:\n  level: info\nkafka:\n    topic: [a]\n",
                 "t.yaml:4:5: unknown key 'kafka.topic'; did you mean 'kafka.topics'?");
    expect_error("listen_address: \":1\"\n",
                 "t.yaml:1:1: unknown key 'listen_address'; did you mean 'web.listen_address'?");
    expect_error("colour: blue\n", "t.yaml:1:1: unknown key 'colour'; see docs/configuration.md "
                                   "or --help for the supported options");
    expect_error("? [a]\n: 1\n", "t.yaml:1:3: keys must be plain names such as 'web', not a list");
}

static void test_duplicate_keys(void **state)
{
    (void)state;
    expect_error("web:\n  listen_address: \":1\"\n  listen_address: \":2\"\n",
                 "t.yaml:3:3: duplicate key 'web.listen_address' (first at line 2, column 3); "
                 "keep only one");
    expect_error("web:\n  listen_address: \":1\"\nweb.listen_address: \":2\"\n",
                 "t.yaml:3:1: duplicate key 'web.listen_address' (first at line 2, column 3); "
                 "keep only one");
    expect_error("web:\n  max_connections: 5\nlog: {}\nweb:\n  listen_address: \":1\"\n",
                 "t.yaml:4:1: duplicate key 'web' (first at line 1, column 1); merge the two "
                 "into one");
    expect_error("kafka:\n  properties:\n    a.b: 1\n    a.b: 2\n",
                 "t.yaml:4:5: duplicate key 'kafka.properties.a.b' (first at line 3, column 5); "
                 "keep only one");
}

static void test_wrong_types(void **state)
{
    (void)state;
    expect_error("web:\n  listen_address: {a: 1}\n",
                 "t.yaml:2:19: web.listen_address: expects a string, not a mapping");
    expect_error("web:\n  max_connections: [1]\n",
                 "t.yaml:2:20: web.max_connections: expects an integer, not a list");
    expect_error(
        "web:\n  max_connections: abc\n",
        "t.yaml:2:20: web.max_connections: must be an integer from 1 to 100000; got 'abc'");
    expect_error(
        "web:\n  max_connections: 1.5\n",
        "t.yaml:2:20: web.max_connections: must be an integer from 1 to 100000; got '1.5'");
    expect_error("kafka:\n  topics: ai-costs\n",
                 "t.yaml:2:11: kafka.topics: expects a list of strings such as [a, b], not a "
                 "single value");
    expect_error("kafka:\n  topics: [a, [b]]\n",
                 "t.yaml:2:15: kafka.topics: items must be strings, not a list");
    expect_error("kafka:\n  properties: [a]\n",
                 "t.yaml:2:15: kafka.properties: expects a mapping of names to values, not a list");
    expect_error(
        "kafka:\n  properties:\n    a.b: {c: 1}\n",
        "t.yaml:3:10: kafka.properties: the value of 'a.b' must be a string, not a mapping");
    expect_error("web: 5\n",
                 "t.yaml:1:6: 'web' is a section: expects a mapping of web.* options, not a single "
                 "value");
    expect_error(
        "- a\n- b\n",
        "t.yaml:1:1: the top level must be a mapping of options such as 'web:', not a list");
    expect_error("web:\n  max_connections:\n",
                 "t.yaml:2:19: web.max_connections: has no value; give an integer from 1 to "
                 "100000, or delete the key to keep the default");
}

static void test_ranges_and_enums(void **state)
{
    (void)state;
    expect_error("web:\n  max_connections: 0\n",
                 "t.yaml:2:20: web.max_connections: must be an integer from 1 to 100000; got '0'");
    expect_error("web:\n  max_connections: 100001\n",
                 "t.yaml:2:20: web.max_connections: must be an integer from 1 to 100000; got "
                 "'100001'");
    expect_error("kafka.threads: 99999999999999999999\n",
                 "t.yaml:1:16: kafka.threads: must be an integer from 0 to 256; got "
                 "'99999999999999999999'");
    expect_error("log:\n  level: verbose\n",
                 "t.yaml:2:10: log.level: must be one of debug, info, warn, error; got 'verbose'");
    expect_error("kafka: {checkpoint_interval_ms: 10}\n",
                 "t.yaml:1:33: kafka.checkpoint_interval_ms: must be an integer from 50 to "
                 "600000; got '10'");
    expect_error("kafka: {commit_mode: scrape}\n",
                 "t.yaml:1:9: unknown key 'kafka.commit_mode'; see docs/configuration.md or --help "
                 "for the supported options");
    expect_error("web:\n  telemetry_path: metrics\n",
                 "t.yaml:2:19: web.telemetry_path: must be a URL path starting with '/' without "
                 "spaces, '?' or '#', such as /metrics; got 'metrics'");
    expect_error("web:\n  listen_address: \"localhost\"\n",
                 "t.yaml:2:19: web.listen_address: must be HOST:PORT with PORT 0-65535, such as "
                 ":9400, 127.0.0.1:9400 or [::1]:9400; got 'localhost'");
    expect_error("web:\n  listen_address: \":65536\"\n",
                 "t.yaml:2:19: web.listen_address: must be HOST:PORT with PORT 0-65535, such as "
                 ":9400, 127.0.0.1:9400 or [::1]:9400; got ':65536'");
    expect_error("events:\n  unattributed_label: \"\"\n",
                 "t.yaml:2:23: events.unattributed_label: must not be empty");
    expect_error("kafka:\n  topics: []\n",
                 "t.yaml:2:11: kafka.topics: must list at least 1 item, e.g. "
                 "[ai-costs,ai-api-costs,gpu-utilization-events]");
    expect_error(
        "kafka:\n  dlq_topic: \"bad topic\"\n",
        "t.yaml:2:14: kafka.dlq_topic: 'bad topic' is not a valid Kafka topic: use "
        "1-249 letters, digits, '.', '_' or '-', or \"\" to disable the dead-letter topic");
    expect_error("kafka:\n  properties:\n    group.id: mine\n",
                 "t.yaml:3:5: kafka.properties: 'group.id' is managed by the exporter: set "
                 "kafka.group_id instead");
}

static void test_extra_labels(void **state)
{
    (void)state;
    expect_error("events:\n  extra_labels: [env, team]\n",
                 "t.yaml:2:23: events.extra_labels: 'team' is a built-in label of every series; "
                 "remove it or choose another name");
    expect_error("events:\n  extra_labels:\n    - env\n    - __x\n",
                 "t.yaml:4:7: events.extra_labels: '__x' starts with '__', which Prometheus "
                 "reserves for internal labels; choose another name");
    expect_error("events:\n  extra_labels: [1abc]\n",
                 "t.yaml:2:18: events.extra_labels: '1abc' is not a valid Prometheus label name: "
                 "use letters, digits and '_', not starting with a digit");
    expect_error("events:\n  extra_labels: [env, env]\n",
                 "t.yaml:2:23: events.extra_labels: 'env' is listed twice; list each item once");
    expect_error("events:\n  extra_labels: [a, b, c, d, e, f, g, h, i]\n",
                 "t.yaml:2:42: events.extra_labels: allows at most 8 items; shorten the list");
}

static void test_anchors_aliases_documents(void **state)
{
    (void)state;
    expect_error("web:\n  listen_address: &a \":1\"\n",
                 "t.yaml:2:19: anchors (&a) are not supported; write each value out in full");
    expect_error("web: &w\n  listen_address: \":1\"\n",
                 "t.yaml:1:6: anchors (&w) are not supported; write each value out in full");
    expect_error("kafka:\n  group_id: g\n  brokers: *g\n",
                 "t.yaml:3:12: aliases (*g) are not supported; write the value out in full");
    expect_error("log: {level: info}\n---\nlog: {level: debug}\n",
                 "t.yaml:2:1: only one YAML document is allowed; remove the second '---' and what "
                 "follows it");
}

static int64_t money(const char *text, int *rc)
{
    char yaml[256];
    struct exporter_config cfg;
    int64_t v;

    snprintf(yaml, sizeof yaml, "events:\n  max_cost_usd: %s\n", text);
    config_init_defaults(&cfg);
    *rc = load(&cfg, yaml);
    v = cfg.events_max_cost_nanos;
    config_free(&cfg);
    return v;
}

static void test_money_exact(void **state)
{
    int rc;
    (void)state;

    assert_int_equal(money("0.000000001", &rc), 1);
    assert_int_equal(rc, 0);
    assert_int_equal(money("1000000", &rc), INT64_C(1000000000000000));
    assert_int_equal(rc, 0);
    assert_int_equal(money("0.5", &rc), 500000000);
    assert_int_equal(rc, 0);
    assert_int_equal(money("\"0.1\"", &rc), 100000000);
    assert_int_equal(rc, 0);
    /* binary floating point would turn this into ...0.4999... */
    assert_int_equal(money("9999999.999999999", &rc), INT64_C(9999999999999999));
    assert_int_equal(rc, 0);
    assert_int_equal(money("10000000", &rc), INT64_C(10000000) * NANOS);
    assert_int_equal(rc, 0);

    expect_error("events:\n  max_cost_usd: 1.0000000001\n",
                 "t.yaml:2:17: events.max_cost_usd: has more than 9 decimal places; the smallest "
                 "amount is 0.000000001 dollars (one nano-dollar); got '1.0000000001'");
    expect_error("events:\n  max_cost_usd: 0\n",
                 "t.yaml:2:17: events.max_cost_usd: must be a decimal amount of US dollars from "
                 "0.000000001 to 10000000, at most 9 decimal places; got '0'");
    expect_error("events:\n  max_cost_usd: 10000000.000000001\n",
                 "t.yaml:2:17: events.max_cost_usd: must be a decimal amount of US dollars from "
                 "0.000000001 to 10000000, at most 9 decimal places; got '10000000.000000001'");
    expect_error("events:\n  max_cost_usd: 1e6\n",
                 "t.yaml:2:17: events.max_cost_usd: must be a decimal amount of US dollars from "
                 "0.000000001 to 10000000, at most 9 decimal places, written as plain digits with "
                 "an optional '.' (no sign, exponent or '$'); got '1e6'");
    money("-1", &rc);
    assert_int_equal(rc, -EINVAL);
    money("99999999999999999999999", &rc);
    assert_int_equal(rc, -EINVAL);
}

static void test_lists_and_maps(void **state)
{
    struct exporter_config cfg;
    (void)state;

    config_init_defaults(&cfg);
    assert_int_equal(load(&cfg, "kafka:\n  topics: [a, b.c, d_e-f]\n"), 0);
    assert_int_equal(cfg.kafka_topics.count, 3);
    assert_string_equal(cfg.kafka_topics.items[2], "d_e-f");
    assert_int_equal(load(&cfg, "kafka:\n  topics:\n  - x\n  - y\n"), 0);
    assert_int_equal(cfg.kafka_topics.count, 2);
    assert_string_equal(cfg.kafka_topics.items[0], "x");
    assert_string_equal(cfg.kafka_topics.items[1], "y");
    /* an empty list value clears a list that may be empty */
    assert_int_equal(load(&cfg, "events:\n  extra_labels: [env]\n"), 0);
    assert_int_equal(cfg.events_extra_labels.count, 1);
    assert_int_equal(load(&cfg, "events:\n  extra_labels: []\n"), 0);
    assert_int_equal(cfg.events_extra_labels.count, 0);

    assert_int_equal(load(&cfg, "kafka:\n  properties:\n    security.protocol: SASL_SSL\n"
                                "    sasl.mechanism: PLAIN\n    \"ssl.endpoint.identification"
                                ".algorithm\": none\n    queued.min.messages: 1000\n"),
                     0);
    assert_int_equal(cfg.kafka_properties.count, 4);
    assert_string_equal(cfg.kafka_properties.keys[0], "security.protocol");
    assert_string_equal(cfg.kafka_properties.values[0], "SASL_SSL");
    assert_string_equal(cfg.kafka_properties.keys[1], "sasl.mechanism");
    assert_string_equal(cfg.kafka_properties.values[1], "PLAIN");
    assert_string_equal(cfg.kafka_properties.keys[2], "ssl.endpoint.identification.algorithm");
    assert_string_equal(cfg.kafka_properties.keys[3], "queued.min.messages");
    assert_string_equal(cfg.kafka_properties.values[3], "1000");
    /* a file's map replaces the previous map as a whole */
    assert_int_equal(load(&cfg, "kafka.properties: {client.id: me}\n"), 0);
    assert_int_equal(cfg.kafka_properties.count, 1);
    assert_string_equal(cfg.kafka_properties.keys[0], "client.id");

    /* optional strings: null and "" both mean unset */
    assert_int_equal(load(&cfg, "input: \"-\"\npricing: {file: p.yaml}\n"), 0);
    assert_string_equal(cfg.input, "-");
    assert_string_equal(cfg.pricing_file, "p.yaml");
    assert_int_equal(load(&cfg, "input: ~\npricing: {file: \"\"}\n"), 0);
    assert_null(cfg.input);
    assert_null(cfg.pricing_file);
    config_free(&cfg);
}

static void test_failed_load_leaves_config_unchanged(void **state)
{
    struct exporter_config cfg;
    (void)state;

    config_init_defaults(&cfg);
    assert_int_equal(load(&cfg, "web:\n  max_connections: 7\n"), 0);
    assert_int_equal(load(&cfg, "web:\n  max_connections: 8\n  listen_address: \":x\"\n"), -EINVAL);
    assert_int_equal(cfg.web_max_connections, 7);
    assert_string_equal(cfg.web_listen_address, ":9400");
    config_free(&cfg);
}

static void test_load_twice_no_leak(void **state)
{
    struct exporter_config cfg;
    const char *path = source_path("tests/data/config/full.yaml");
    (void)state;

    config_init_defaults(&cfg);
    assert_int_equal(config_load_file(&cfg, path, errbuf, sizeof errbuf), 0);
    assert_int_equal(config_load_file(&cfg, path, errbuf, sizeof errbuf), 0);
    assert_int_equal(cfg.kafka_properties.count, 3);
    assert_int_equal(cfg.kafka_topics.count, 3);
    config_free(&cfg);
    /* config_free leaves a state that can be freed again or re-initialised */
    config_free(&cfg);
    config_init_defaults(&cfg);
    config_free(&cfg);
}

static void test_missing_file(void **state)
{
    struct exporter_config cfg;
    (void)state;

    config_init_defaults(&cfg);
    assert_int_equal(config_load_file(&cfg, "/nonexistent/finops.yaml", errbuf, sizeof errbuf),
                     -ENOENT);
    assert_string_equal(errbuf, "/nonexistent/finops.yaml: cannot open: No such file or "
                                "directory; check the path given to --config");
    assert_int_equal(config_load_file(&cfg, source_dir(), errbuf, sizeof errbuf), -EISDIR);
    config_free(&cfg);
}

static int parse(struct exporter_config *cfg, enum config_action *action, char **argv)
{
    int argc = 0;
    while (argv[argc])
        argc++;
    return config_parse_args(cfg, argc, argv, action, errbuf, sizeof errbuf);
}

/* A subscription that reads the dead-letter topic would loop rejected
 * events for ever: refused at start, by name and by pattern. */
static void test_dlq_topic_not_subscribed(void **state)
{
    struct exporter_config cfg;
    enum config_action action;
    (void)state;
    char *by_pattern[] = {"prog", "--kafka.topics=^ai-costs.*", NULL};
    char *by_name[] = {"prog", "--kafka.topics=ai-costs,ai-costs-dlq", NULL};
    char *moved[] = {"prog", "--kafka.topics=^ai-costs.*", "--kafka.dlq-topic=finops-dlq", NULL};
    char *disabled[] = {"prog", "--kafka.topics=^ai-costs.*", "--kafka.dlq-topic=", NULL};
    char *anchored[] = {"prog", "--kafka.topics=^ai-costs$|^ai-api-costs$", NULL};
    char *unparsable[] = {"prog", "--kafka.topics=^ai-(costs", NULL};
    char *perl[] = {"prog", "--kafka.topics=^ai-costs-\\d+$", NULL};

    config_init_defaults(&cfg);
    assert_int_equal(parse(&cfg, &action, by_pattern), -EINVAL);
    assert_string_equal(errbuf,
                        "kafka.topics: '^ai-costs.*' subscribes the exporter's own topic "
                        "'ai-costs-dlq' (kafka.dlq_topic), the dead-letter topic: every rejected "
                        "event would be read, rejected and dead-lettered again; narrow the "
                        "pattern (e.g. '^ai-costs$|^ai-api-costs$') or set another "
                        "kafka.dlq_topic");
    assert_int_equal(parse(&cfg, &action, by_name), -EINVAL);
    assert_non_null(strstr(errbuf, "'ai-costs-dlq' (kafka.dlq_topic)"));
    assert_int_equal(parse(&cfg, &action, unparsable), -EINVAL);
    assert_non_null(strstr(errbuf, "is not a regular expression the exporter can check"));
    /* POSIX would read \\d as d and could miss the dead-letter topic */
    assert_int_equal(parse(&cfg, &action, perl), -EINVAL);
    assert_non_null(strstr(errbuf, "([0-9] for \\d, no (?...) groups)"));
    assert_int_equal(parse(&cfg, &action, moved), 0);
    assert_int_equal(parse(&cfg, &action, disabled), 0);
    assert_int_equal(parse(&cfg, &action, anchored), 0);
    /* the checkpoint topic is not events either, nor may it be the DLQ */
    char *state_by_name[] = {"prog", "--kafka.topics=ai-costs,ai-finops-state", NULL};
    char *state_by_pattern[] = {"prog", "--kafka.topics=^ai-", "--kafka.dlq-topic=dlq", NULL};
    char *state_is_dlq[] = {"prog", "--kafka.state-topic=ai-costs-dlq",
                            "--kafka.dlq-topic=ai-costs-dlq", NULL};
    assert_int_equal(parse(&cfg, &action, state_by_name), -EINVAL);
    assert_non_null(strstr(errbuf, "'ai-finops-state' (kafka.state_topic), the checkpoint topic"));
    assert_int_equal(parse(&cfg, &action, state_by_pattern), -EINVAL);
    assert_non_null(strstr(errbuf, "(kafka.state_topic)"));
    assert_int_equal(parse(&cfg, &action, state_is_dlq), -EINVAL);
    assert_string_equal(errbuf, "kafka.state_topic: 'ai-costs-dlq' is also kafka.dlq_topic; "
                                "give each its own topic");
    config_free(&cfg);
}

static void test_flags_override_file(void **state)
{
    struct exporter_config cfg;
    enum config_action action;
    char config_arg[4200];
    (void)state;

    snprintf(config_arg, sizeof config_arg, "--config=%s",
             source_path("tests/data/config/full.yaml"));
    /* flags before --config still win: the file is always loaded first */
    char *argv[] = {"prog",
                    "--web.max-connections=5",
                    "--log.level",
                    "warn",
                    config_arg,
                    "--events.max-cost-usd",
                    "0.25",
                    "--kafka.topics=a, b ,c",
                    "--events.extra-labels=",
                    "--kafka.properties",
                    "security.protocol=SSL",
                    "--kafka.properties=client.id=x=y",
                    "--kafka.properties-file=", /* unsets the file's path */
                    "--input",
                    "-",
                    "--check-config",
                    NULL};
    config_init_defaults(&cfg);
    int rc = parse(&cfg, &action, argv);
    if (rc)
        print_error("%s\n", errbuf);
    assert_int_equal(rc, 0);
    assert_int_equal(action, CONFIG_ACTION_CHECK);
    assert_int_equal(cfg.web_max_connections, 5);
    assert_int_equal(cfg.web_max_connections_per_ip, 1); /* from the file */
    assert_int_equal(cfg.log_level, LOG_LEVEL_WARN);
    assert_int_equal(cfg.events_max_cost_nanos, 250000000);
    assert_int_equal(cfg.kafka_topics.count, 3);
    assert_string_equal(cfg.kafka_topics.items[1], "b");
    assert_int_equal(cfg.events_extra_labels.count, 0);
    assert_string_equal(cfg.input, "-");
    /* map flags set single keys on top of the file's map */
    assert_int_equal(cfg.kafka_properties.count, 4);
    assert_string_equal(cfg.kafka_properties.keys[0], "security.protocol");
    assert_string_equal(cfg.kafka_properties.values[0], "SSL");
    assert_string_equal(cfg.kafka_properties.values[1], "PLAIN");
    assert_string_equal(cfg.kafka_properties.keys[3], "client.id");
    assert_string_equal(cfg.kafka_properties.values[3], "x=y");
    assert_null(cfg.kafka_properties_file);
    config_free(&cfg);
}

/* Writes text to a fresh temporary file; returns its path (static buffer). */
static const char *temp_file(const char *text, size_t len)
{
    static char path[64];
    int fd;
    FILE *f;

    snprintf(path, sizeof path, "/tmp/finops-props-XXXXXX");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    f = fdopen(fd, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    return path;
}

/* Parses `--config yaml --kafka.properties-file PROPS extra...`. */
static int parse_with_props(struct exporter_config *cfg, const char *yaml, const char *props,
                            size_t props_len, const char *extra_flag, char *props_path,
                            size_t props_path_len)
{
    char yaml_path[64], props_arg[128], config_arg[128];
    enum config_action action;
    int rc;

    /* An empty --config file is refused; "no YAML options" is an empty section. */
    if (!yaml[0])
        yaml = "log: {}\n";
    snprintf(yaml_path, sizeof yaml_path, "%s", temp_file(yaml, strlen(yaml)));
    snprintf(props_path, props_path_len, "%s", temp_file(props, props_len));
    snprintf(config_arg, sizeof config_arg, "--config=%s", yaml_path);
    snprintf(props_arg, sizeof props_arg, "--kafka.properties-file=%s", props_path);
    /* a NULL extra_flag ends argv early */
    char *argv[] = {"prog", config_arg, props_arg, (char *)extra_flag, NULL};
    config_init_defaults(cfg);
    errbuf[0] = '\0';
    rc = parse(cfg, &action, argv);
    unlink(yaml_path);
    unlink(props_path);
    return rc;
}

static void test_properties_file(void **state)
{
    static const char props[] = "# SASL credentials, from a Kubernetes Secret\n"
                                "\n"
                                "sasl.username=exporter\n"
                                "  ! another comment style\n"
                                "sasl.password = s3cr=t with spaces  \r\n"
                                "\tsasl.oauthbearer.config=\n"
                                "ssl.ca.location=/etc/ca.pem"; /* no final newline */
    struct exporter_config cfg;
    char path[64];
    (void)state;

    int rc =
        parse_with_props(&cfg, "kafka:\n  properties:\n    security.protocol: SASL_SSL\n", props,
                         sizeof props - 1, "--kafka.properties=client.id=c", path, sizeof path);
    if (rc)
        print_error("%s\n", errbuf);
    assert_int_equal(rc, 0);
    assert_int_equal(cfg.kafka_properties.count, 6);
    /* YAML and flags first, then the file's, in file order */
    assert_string_equal(cfg.kafka_properties.keys[0], "security.protocol");
    assert_string_equal(cfg.kafka_properties.keys[1], "client.id");
    assert_string_equal(cfg.kafka_properties.keys[2], "sasl.username");
    assert_string_equal(cfg.kafka_properties.values[2], "exporter");
    /* split at the first '=', spaces around the key and before the value
     * dropped, the rest verbatim (trailing spaces too), CR of CRLF removed */
    assert_string_equal(cfg.kafka_properties.keys[3], "sasl.password");
    assert_string_equal(cfg.kafka_properties.values[3], "s3cr=t with spaces  ");
    assert_string_equal(cfg.kafka_properties.keys[4], "sasl.oauthbearer.config");
    assert_string_equal(cfg.kafka_properties.values[4], "");
    assert_string_equal(cfg.kafka_properties.keys[5], "ssl.ca.location");
    assert_string_equal(cfg.kafka_properties.values[5], "/etc/ca.pem");
    config_free(&cfg);

    /* an empty file adds nothing */
    assert_int_equal(parse_with_props(&cfg, "", "", 0, NULL, path, sizeof path), 0);
    assert_int_equal(cfg.kafka_properties.count, 0);
    config_free(&cfg);
}

/* The properties file must fail with exactly "path:line:col: message". */
static void expect_props_error(const char *yaml, const char *props, size_t len,
                               const char *extra_flag, const char *expected_tail)
{
    struct exporter_config cfg;
    char path[64], expected[512];

    int rc = parse_with_props(&cfg, yaml, props, len, extra_flag, path, sizeof path);
    snprintf(expected, sizeof expected, "%s:%s", path, expected_tail);
    if (rc != -EINVAL || strcmp(errbuf, expected) != 0)
        print_error("expected: %s\n     got: rc=%d %s\n", expected, rc, errbuf);
    assert_int_equal(rc, -EINVAL);
    assert_string_equal(errbuf, expected);
    /* no message may quote a value: values are secrets */
    assert_null(strstr(errbuf, "hunter2"));
    /* a failed parse leaves the caller's config as it was: defaults */
    assert_int_equal(cfg.kafka_properties.count, 0);
    assert_null(cfg.kafka_properties_file);
    config_free(&cfg);
}

static void test_properties_file_errors(void **state)
{
#define P(s) s, sizeof s - 1
    (void)state;
    expect_props_error(
        "", P("a=1\n\n  sasl.password hunter2\n"), NULL,
        "3:3: expected KEY=VALUE such as sasl.username=exporter; the line has no '='");
    expect_props_error("", P("  = hunter2\n"), NULL, "1:3: the property name before '=' is empty");
    expect_props_error("", P("sasl.password=hunter2 \\\n  more\n"), NULL,
                       "1:23: the line ends in '\\', but continuation lines and escapes are not "
                       "supported; write the value on one line, verbatim");
    expect_props_error("", P("x=1\n bootstrap.servers=hunter2:9092\n"), NULL,
                       "2:2: 'bootstrap.servers' is managed by the exporter: set kafka.brokers "
                       "instead");
    expect_props_error("", P("sasl.password=hunter2\n# c\nsasl.password = hunter2\n"), NULL,
                       "3:1: duplicate key 'sasl.password' (first at line 1); keep only one");
    /* a key in both places is refused, whether YAML or a flag set it */
    expect_props_error("kafka:\n  properties:\n    sasl.username: u\n",
                       P("sasl.password=hunter2\nsasl.username=hunter2\n"), NULL,
                       "2:1: 'sasl.username' is also set in kafka.properties; set each property "
                       "in one place");
    expect_props_error("", P("sasl.password=hunter2\n"), "--kafka.properties=sasl.password=x",
                       "1:1: 'sasl.password' is also set in kafka.properties; set each property "
                       "in one place");
    expect_props_error("", P("a=1\nb=hun\0ter2\n"), NULL,
                       "2:6: contains a NUL character (\\0); the file must be text");
#undef P
}

static void test_properties_file_missing(void **state)
{
    struct exporter_config cfg;
    enum config_action action;
    char *argv[] = {"prog", "--kafka.properties-file=/nonexistent/client.properties", NULL};
    char *argv_help[] = {"prog", "--kafka.properties-file=/nonexistent/client.properties", "--help",
                         NULL};
    (void)state;

    config_init_defaults(&cfg);
    assert_int_equal(parse(&cfg, &action, argv), -ENOENT);
    assert_string_equal(errbuf, "/nonexistent/client.properties: cannot open: No such file or "
                                "directory; check the path given to kafka.properties_file");
    assert_null(cfg.kafka_properties_file);
    /* --help does not need the file */
    assert_int_equal(parse(&cfg, &action, argv_help), 0);
    assert_int_equal(action, CONFIG_ACTION_HELP);
    config_free(&cfg);
}

static void test_flag_forms(void **state)
{
    struct exporter_config cfg;
    enum config_action action = CONFIG_ACTION_HELP;
    (void)state;

    char *argv1[] = {"prog", "--web.listen-address", "127.0.0.1:1", "--pricing.prefer=table", NULL};
    config_init_defaults(&cfg);
    assert_int_equal(parse(&cfg, &action, argv1), 0);
    assert_int_equal(action, CONFIG_ACTION_RUN);
    assert_string_equal(cfg.web_listen_address, "127.0.0.1:1");
    assert_int_equal(cfg.pricing_prefer, PRICE_PREFER_TABLE);
    /* later flags win over earlier ones */
    char *argv2[] = {"prog", "--web.listen-address=:1", "--web.listen-address=:2", NULL};
    assert_int_equal(parse(&cfg, &action, argv2), 0);
    assert_string_equal(cfg.web_listen_address, ":2");

    char *help[] = {"prog", "--web.max-connections=bad", "-h", NULL};
    assert_int_equal(parse(&cfg, &action, help), 0);
    assert_int_equal(action, CONFIG_ACTION_HELP);
    char *version[] = {"prog", "--version", NULL};
    assert_int_equal(parse(&cfg, &action, version), 0);
    assert_int_equal(action, CONFIG_ACTION_VERSION);
    char *docs[] = {"prog", "--print-config-docs", NULL};
    assert_int_equal(parse(&cfg, &action, docs), 0);
    assert_int_equal(action, CONFIG_ACTION_PRINT_DOCS);
    config_free(&cfg);
}

static void expect_args_error(char **argv, const char *expected)
{
    struct exporter_config cfg;
    enum config_action action;

    config_init_defaults(&cfg);
    assert_int_equal(parse(&cfg, &action, argv), -EINVAL);
    assert_string_equal(errbuf, expected);
    /* a rejected command line leaves the config as it was */
    assert_string_equal(cfg.web_listen_address, ":9400");
    assert_int_equal(cfg.web_max_connections, 1024);
    config_free(&cfg);
}

static void test_flag_errors(void **state)
{
    (void)state;
    char *a1[] = {"prog", "--web.listen-adress=:1", NULL};
    expect_args_error(a1, "command line: unknown flag '--web.listen-adress'; did you mean "
                          "'--web.listen-address'?");
    char *a2[] = {"prog", "--web.listen_address", ":1", NULL};
    expect_args_error(a2, "command line: unknown flag '--web.listen_address'; did you mean "
                          "'--web.listen-address'?");
    char *a3[] = {"prog", "--frobnicate", NULL};
    expect_args_error(a3, "command line: unknown flag '--frobnicate'; run with --help to list "
                          "the flags");
    char *a4[] = {"prog", "--web.listen-address=:1", "--web.max-connections=0", NULL};
    expect_args_error(a4, "command line: --web.max-connections: must be an integer from 1 to "
                          "100000; got '0'");
    char *a5[] = {"prog", "--log.level", NULL};
    expect_args_error(a5, "command line: --log.level needs a value: --log.level=debug|info|warn|"
                          "error or --log.level debug|info|warn|error");
    char *a6[] = {"prog", "stray", NULL};
    expect_args_error(a6, "command line: unexpected argument 'stray'; options are given as "
                          "--flag=value (see --help)");
    char *a7[] = {"prog", "--kafka.properties=novalue", NULL};
    expect_args_error(a7, "command line: --kafka.properties: expects KEY=VALUE such as "
                          "security.protocol=SASL_SSL; got 'novalue'");
    char *a8[] = {"prog", "--kafka.topics=", NULL};
    expect_args_error(a8, "command line: --kafka.topics: must list at least 1 item, e.g. "
                          "[ai-costs,ai-api-costs,gpu-utilization-events]");
    char *a9[] = {"prog", "--check-config=yes", NULL};
    expect_args_error(a9, "command line: --check-config takes no value; remove '=yes'");
    char *a10[] = {"prog", "--config", "/nonexistent/c.yaml", NULL};
    struct exporter_config cfg;
    enum config_action action;
    config_init_defaults(&cfg);
    assert_int_equal(parse(&cfg, &action, a10), -ENOENT);
    assert_string_equal(errbuf, "/nonexistent/c.yaml: cannot open: No such file or directory; "
                                "check the path given to --config");
    config_free(&cfg);
    char *a11[] = {"prog", "--config=a.yaml", "--config", "b.yaml", NULL};
    expect_args_error(a11, "command line: --config given twice ('a.yaml' and 'b.yaml'); pass "
                           "one file");
}

static void test_help_lists_every_flag(void **state)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    static const char *const flags[] = {"--web.listen-address=HOST:PORT",
                                        "--input=PATH|-",
                                        "--events.max-cost-usd=USD",
                                        "--kafka.checkpoint-interval-ms=N",
                                        "--pricing.mismatch-tolerance-ppm=N",
                                        "--config FILE",
                                        "--print-config-docs"};
    (void)state;

    assert_non_null(out);
    config_print_help(out, "ai-finops-exporter");
    fclose(out);
    assert_non_null(strstr(text, "Usage: ai-finops-exporter [--config FILE] [FLAGS]"));
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        if (!strstr(text, flags[i]))
            fail_msg("--help does not mention %s", flags[i]);
    free(text);
}

/* Issue 13's options: topic kinds, mapping profiles, gpu.* and focus.*. */
static const char kinds_yaml[] =
    "kafka:\n"
    "  topics: [ai-costs, openai-usage, gpu-utilization-events, ^billing-.*]\n"
    "events:\n"
    "  topic_kinds:\n"
    "    openai-usage: cost:openai\n"
    "    gpu-utilization-events: gpu_utilization:dcgm\n"
    "    billing-aws: focus\n"
    "    billing-gcp: focus:gcp\n"
    "  input_kind: cost:myapi\n"
    "  mappings:\n"
    "    myapi:\n"
    "      model: /response/model\n"
    "      input_tokens: /usage/in - /usage/cached\n"
    "      provider: =acme\n"
    "    gcp:\n"
    "      EffectiveCost: /cost/amount\n"
    "      ChargeCategory: =Usage\n"
    "      Tags: /labels\n"
    "gpu:\n"
    "  utilization_silence_seconds: 60\n"
    "  namespace_teams:\n"
    "    ml-training: ml-platform/llm-pretrain\n"
    "focus:\n"
    "  cost_column: billed\n"
    "  team_tag: owner\n"
    "  project_tag: app\n";

static void test_event_kinds_options(void **state)
{
    struct exporter_config cfg;
    (void)state;
    config_init_defaults(&cfg);
    assert_int_equal(load(&cfg, kinds_yaml), 0);
    assert_int_equal(cfg.events_topic_kinds.count, 4);
    assert_string_equal(cfg.events_topic_kinds.keys[1], "gpu-utilization-events");
    assert_string_equal(cfg.events_topic_kinds.values[1], "gpu_utilization:dcgm");
    assert_string_equal(cfg.events_input_kind, "cost:myapi");
    assert_int_equal(cfg.events_mappings.count, 2);
    assert_string_equal(cfg.events_mappings.names[0], "myapi");
    assert_int_equal(cfg.events_mappings.fields[0].count, 3);
    assert_string_equal(cfg.events_mappings.fields[0].keys[1], "input_tokens");
    assert_string_equal(cfg.events_mappings.fields[0].values[1], "/usage/in - /usage/cached");
    assert_string_equal(cfg.events_mappings.names[1], "gcp");
    assert_string_equal(cfg.events_mappings.fields[1].values[1], "=Usage");
    assert_int_equal(cfg.gpu_utilization_silence_seconds, 60);
    assert_string_equal(cfg.gpu_namespace_teams.values[0], "ml-platform/llm-pretrain");
    assert_false(cfg.focus_effective_cost);
    assert_string_equal(cfg.focus_team_tag, "owner");
    assert_string_equal(cfg.focus_project_tag, "app");

    /* A reload that changes a profile or the cost column names those keys. */
    struct exporter_config other;
    const char *keys[8];
    config_init_defaults(&other);
    assert_int_equal(load(&other, kinds_yaml), 0);
    assert_int_equal(config_diff(&cfg, &other, keys, 8), 0);
    assert_int_equal(load(&other, "events:\n  mappings:\n    myapi:\n      model: /model\n"
                                  "    gcp:\n      EffectiveCost: /cost/amount\n"
                                  "      ChargeCategory: =Usage\n      Tags: /labels\n"
                                  "focus:\n  cost_column: effective\n"),
                     0);
    assert_int_equal(config_diff(&cfg, &other, keys, 8), 2);
    assert_string_equal(keys[0], "events.mappings");
    assert_string_equal(keys[1], "focus.cost_column");
    /* A profile with the same fields in another order is the same. */
    assert_int_equal(load(&other,
                          "events:\n  mappings:\n    gcp:\n      Tags: /labels\n"
                          "      ChargeCategory: =Usage\n      EffectiveCost: /cost/amount\n"
                          "    myapi:\n      provider: =acme\n      model: /response/model\n"
                          "      input_tokens: /usage/in - /usage/cached\n"
                          "focus:\n  cost_column: billed\n"),
                     0);
    assert_int_equal(config_diff(&cfg, &other, keys, 8), 0);
    config_free(&other);

    /* The whole config passes the start checks (profiles exist, fit). */
    enum config_action action;
    char config_arg[128];
    const char *path = temp_file(kinds_yaml, strlen(kinds_yaml));
    snprintf(config_arg, sizeof config_arg, "--config=%s", path);
    char *argv[] = {"prog", config_arg, NULL};
    struct exporter_config fresh;
    config_init_defaults(&fresh);
    int rc = parse(&fresh, &action, argv);
    unlink(path);
    if (rc)
        fail_msg("%s", errbuf);
    config_free(&fresh);

    /* Flags: one profile field, one topic kind, the cost column. */
    char *flags[] = {"prog",
                     "--events.mappings=p2:cost_usd=/price",
                     "--events.mappings=p2:model=/m",
                     "--events.topic-kinds=ai-costs=cost:p2",
                     "--focus.cost-column=billed",
                     NULL};
    config_init_defaults(&fresh);
    assert_int_equal(parse(&fresh, &action, flags), 0);
    assert_int_equal(fresh.events_mappings.count, 1);
    assert_int_equal(fresh.events_mappings.fields[0].count, 2);
    assert_string_equal(fresh.events_topic_kinds.values[1], "cost:p2");
    assert_false(fresh.focus_effective_cost);
    config_free(&fresh);
    config_free(&cfg);
}

static void test_event_kinds_load_errors(void **state)
{
    (void)state;
    expect_error("events:\n  topic_kinds:\n    ai-costs: costs\n",
                 "t.yaml:3:15: events.topic_kinds.ai-costs: 'costs' is not KIND or KIND:PROFILE "
                 "with KIND one of cost, gpu_utilization, focus");
    expect_error("events:\n  topic_kinds:\n    ai-costs: cost:My-Api\n",
                 "t.yaml:3:15: events.topic_kinds.ai-costs: profile name 'My-Api' must be 1-64 "
                 "of a-z 0-9 _ -");
    expect_error("events:\n  input_kind: gpu\n",
                 "t.yaml:2:15: events.input_kind: 'gpu' is not KIND or KIND:PROFILE with KIND "
                 "one of cost, gpu_utilization, focus");
    expect_error("events:\n  mappings:\n    p:\n      model: /a~2b\n",
                 "t.yaml:4:14: events.mappings.p.model: '/a~2b': '~' must be followed by 0 (for "
                 "~) or 1 (for /) in a JSON pointer");
    expect_error("events:\n  mappings:\n    p:\n      model: model\n",
                 "t.yaml:4:14: events.mappings.p.model: 'model' is not a source: write "
                 "\"/json/pointer\", \"/a - /b\", \"/a + /b\" or \"=literal\"");
    expect_error("events:\n  mappings:\n    p:\n      modle: /model\n",
                 "t.yaml:4:7: events.mappings.p: 'modle' is not a field of any event kind (see "
                 "docs/events.md)");
    expect_error("events:\n  mappings:\n    p:\n      model: /a\n      model: /b\n",
                 "t.yaml:5:7: duplicate key 'events.mappings.p.model'; keep only one");
    expect_error("events:\n  mappings:\n    p: /model\n",
                 "t.yaml:3:8: events.mappings.p: expects a mapping of fields to sources such as "
                 "{model: /model}, not a single value");
    expect_error("events:\n  mappings:\n    P Q:\n      model: /m\n",
                 "t.yaml:3:5: events.mappings: profile name 'P Q' must be 1-64 of a-z 0-9 _ -");
    expect_error("events:\n  mappings:\n    p:\n      model:\n",
                 "t.yaml:4:13: events.mappings.p.model: expects a source (\"/pointer\", "
                 "\"/a - /b\", \"/a + /b\" or \"=literal\"), not nothing");
    expect_error("events:\n  mappings: [a]\n",
                 "t.yaml:2:13: events.mappings: expects a mapping of profile names to mappings "
                 "of fields to sources, not a list");
    expect_error("gpu:\n  namespace_teams:\n    ml: ml-platform\n",
                 "t.yaml:3:9: gpu.namespace_teams.ml: 'ml-platform' is not TEAM/PROJECT (both "
                 "non-empty, one '/')");
    expect_error("gpu:\n  utilization_silence_seconds: 0\n",
                 "t.yaml:2:32: gpu.utilization_silence_seconds: must be an integer from 1 to "
                 "604800; got '0'");
    expect_error("focus:\n  cost_column: amortized\n",
                 "t.yaml:2:16: focus.cost_column: must be one of billed, effective; got "
                 "'amortized'");
    expect_error("focus:\n  team_tag: \"\"\n", "t.yaml:2:13: focus.team_tag: must not be empty");
}

/* Checks that need the whole config: run by config_parse_args. */
static void test_event_kinds_start_errors(void **state)
{
    static const struct {
        const char *flags[4];
        const char *error;
    } cases[] = {
        {{"--events.topic-kinds=gpu-events=gpu_utilization"},
         "events.topic_kinds.gpu-events: the topic is not in kafka.topics (nor matched by a "
         "^pattern there); subscribe it or remove the entry"},
        {{"--events.topic-kinds=ai-costs=cost:nosuch"},
         "events.topic_kinds.ai-costs: no mapping profile named 'nosuch'; define it under "
         "events.mappings or use a built-in one (openai, anthropic, dcgm)"},
        {{"--events.topic-kinds=ai-costs=gpu_utilization:openai"},
         "events.topic_kinds.ai-costs: the built-in profile 'openai' reads cost events, not "
         "gpu_utilization; use KIND cost:openai or another profile"},
        {{"--events.mappings=p:model=/m", "--events.input-kind=focus:p"},
         "events.input_kind: profile 'p' does not fit focus events: events.mappings.p.model: "
         "not a field of focus events (see docs/events.md)"},
        {{"--events.mappings=p:model=/a - /b", "--events.input-kind=cost:p"},
         "events.input_kind: profile 'p' does not fit cost events: events.mappings.p.model: "
         "'/a - /b': a sum or difference only fits a non-negative numeric field"},
        {{"--events.mappings=p:model=/m", "--events.mappings=p:utilization=/u"},
         "events.mappings.p: its fields fit no event kind (cost, gpu_utilization, focus); see "
         "docs/events.md"},
        {{"--events.max-label-bytes=8", "--gpu.namespace-teams=ml=ml-platform/x"},
         "gpu.namespace_teams.ml: 'ml-platform/x' is not TEAM/PROJECT (both non-empty UTF-8, at "
         "most events.max_label_bytes, one '/')"},
        {{"--events.topic-kinds=gpu-utilization-events=gpu_utilization:dcgm",
          "--kafka.topics=ai-costs"},
         "events.topic_kinds.gpu-utilization-events: the topic is not in kafka.topics (nor "
         "matched by a ^pattern there); subscribe it or remove the entry"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct exporter_config cfg;
        enum config_action action;
        char *argv[6] = {"prog"};
        for (int k = 0; k < 4 && cases[i].flags[k]; k++)
            argv[k + 1] = (char *)cases[i].flags[k];
        config_init_defaults(&cfg);
        int rc = parse(&cfg, &action, argv);
        if (rc != -EINVAL || strcmp(errbuf, cases[i].error) != 0)
            fail_msg("case %zu: rc=%d %s", i, rc, errbuf);
        config_free(&cfg);
    }
    /* Accepted: a pattern-subscribed topic, the default entry with a
     * narrower subscription, a user profile replacing a built-in one. */
    static const char *const ok[][4] = {
        {"--kafka.topics=^billing-.*", "--events.topic-kinds=billing-aws=focus"},
        {"--kafka.topics=ai-costs"},
        {"--events.mappings=openai:utilization=/u", "--events.mappings=openai:node=/n",
         "--events.topic-kinds=gpu-utilization-events=gpu_utilization:openai"},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        struct exporter_config cfg;
        enum config_action action;
        char *argv[6] = {"prog"};
        for (int k = 0; k < 4 && ok[i][k]; k++)
            argv[k + 1] = (char *)ok[i][k];
        config_init_defaults(&cfg);
        if (parse(&cfg, &action, argv) != 0)
            fail_msg("ok case %zu: %s", i, errbuf);
        config_free(&cfg);
    }
}

/* web.scrapers: each item an address or CIDR range, refused at its own
 * line and column; web.scraper_connections checked against the rest once
 * the file and flags are applied, the error pointing at what made it so. */
static void test_web_scrapers(void **state)
{
    struct exporter_config cfg;
    enum config_action action;
    (void)state;

    config_init_defaults(&cfg);
    assert_int_equal(cfg.web_scrapers.count, 0);
    assert_int_equal(cfg.web_scraper_connections, 8);
    assert_int_equal(load(&cfg, "web:\n  scrapers: [10.0.0.0/8, 127.0.0.1, \"::1/128\"]\n"
                                "  scraper_connections: 4\n"),
                     0);
    assert_int_equal(cfg.web_scrapers.count, 3);
    assert_string_equal(cfg.web_scrapers.items[2], "::1/128");
    assert_int_equal(cfg.web_scraper_connections, 4);
    assert_int_equal(load(&cfg, "web:\n  scrapers:\n    - fd00::/8\n    - ::ffff:10.0.0.0/104\n"),
                     0);
    assert_int_equal(cfg.web_scrapers.count, 2);
    config_free(&cfg);

    expect_error("web:\n  scrapers: [10.0.0.0/8, 10.0.0.1/8]\n",
                 "t.yaml:2:26: web.scrapers: '10.0.0.1/8' has address bits set after its /8 "
                 "prefix; write the range as 10.0.0.0/8, or the one address as 10.0.0.1");
    expect_error("web:\n  scrapers:\n    - 127.0.0.1\n    - 10.0.0.0/33\n",
                 "t.yaml:4:7: web.scrapers: '10.0.0.0/33': the prefix /33 is longer than an IPv4 "
                 "address (at most /32)");
    expect_error("web:\n  scrapers: [prometheus.monitoring.svc]\n",
                 "t.yaml:2:14: web.scrapers: 'prometheus.monitoring.svc' is not an IPv4 or IPv6 "
                 "address or CIDR range; write one address (127.0.0.1, ::1) or ADDRESS/PREFIX "
                 "(10.0.0.0/8, fd00::/8)");
    expect_error("web:\n  scrapers: [\"fd00::/8\", \"fd00::/8\"]\n",
                 "t.yaml:2:26: web.scrapers: 'fd00::/8' is listed twice; list each item once");
    expect_error("web:\n  scrapers: 10.0.0.0/8\n",
                 "t.yaml:2:13: web.scrapers: expects a list of strings such as [a, b], not a "
                 "single value");
    expect_error("web:\n  scraper_connections: 0\n",
                 "t.yaml:2:24: web.scraper_connections: must be an integer from 1 to 100000; "
                 "got '0'");

    /* the whole-config checks, through config_parse_args */
    static const char file_reserve_too_big[] = "web:\n"
                                               "  max_connections: 16\n"
                                               "  scrapers: [127.0.0.1]\n"
                                               "  scraper_connections: 16\n";
    static const char file_limit_too_small[] = "web:\n"
                                               "  scrapers: [127.0.0.1]\n"
                                               "  max_connections: 8\n";
    static const char file_no_scrapers[] = "web:\n  scraper_connections: 4\n";
    static const char file_ok[] = "web:\n  max_connections: 16\n  scrapers: [127.0.0.1]\n";
    static const struct {
        const char *yaml;
        const char *flag;
        const char *error; /* a leading %s: the file's path; NULL: accepted */
    } cases[] = {
        {file_reserve_too_big, NULL,
         "%s:4:3: web.scraper_connections: 16 reserved connections leave none of "
         "web.max_connections (16) to other clients; set it below web.max_connections"},
        {file_limit_too_small, NULL,
         "%s:3:3: web.max_connections: 8 connections leave none to other clients once "
         "web.scraper_connections (8) are reserved for web.scrapers; raise it above "
         "web.scraper_connections, or lower that"},
        {file_no_scrapers, NULL,
         "%s:2:3: web.scraper_connections: reserves connections for web.scrapers, which is "
         "empty; list the scrapers' addresses in web.scrapers, or remove "
         "web.scraper_connections"},
        {file_ok, "--web.scraper-connections=20",
         "command line: --web.scraper-connections: 20 reserved connections leave none of "
         "web.max_connections (16) to other clients; set it below web.max_connections"},
        {file_ok, "--web.max-connections=5",
         "command line: --web.max-connections: 5 connections leave none to other clients once "
         "web.scraper_connections (8) are reserved for web.scrapers; raise it above "
         "web.scraper_connections, or lower that"},
        {file_reserve_too_big, "--web.scrapers=",
         "%s:4:3: web.scraper_connections: reserves connections for web.scrapers, which is "
         "empty; list the scrapers' addresses in web.scrapers, or remove "
         "web.scraper_connections"},
        {file_reserve_too_big, "--web.max-connections=17", NULL},
        {file_limit_too_small, "--web.scraper-connections=7", NULL},
        {file_no_scrapers, "--web.scrapers=10.0.0.0/8,::1", NULL},
        {file_ok, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[64], config_arg[128], want[1024];
        snprintf(path, sizeof path, "%s", temp_file(cases[i].yaml, strlen(cases[i].yaml)));
        snprintf(config_arg, sizeof config_arg, "--config=%s", path);
        char *argv[] = {"prog", config_arg, (char *)cases[i].flag, NULL};
        config_init_defaults(&cfg);
        errbuf[0] = '\0';
        int rc = parse(&cfg, &action, argv);
        unlink(path);
        if (!cases[i].error) {
            if (rc != 0)
                fail_msg("case %zu: rc=%d %s", i, rc, errbuf);
        } else {
            bool at_file = strncmp(cases[i].error, "%s", 2) == 0;
            snprintf(want, sizeof want, "%s%s", at_file ? path : "",
                     cases[i].error + (at_file ? 2 : 0));
            if (rc != -EINVAL || strcmp(errbuf, want) != 0)
                fail_msg("case %zu: rc=%d\n     got: %s\nexpected: %s", i, rc, errbuf, want);
        }
        config_free(&cfg);
    }
    /* on the command line alone */
    char *bad_flag[] = {"prog", "--web.scrapers=10.0.0.0/8,fe80::1%eth0", NULL};
    config_init_defaults(&cfg);
    assert_int_equal(parse(&cfg, &action, bad_flag), -EINVAL);
    assert_string_equal(errbuf, "command line: --web.scrapers: 'fe80::1%eth0' is not an IPv4 or "
                                "IPv6 address or CIDR range; write one address (127.0.0.1, ::1) "
                                "or ADDRESS/PREFIX (10.0.0.0/8, fd00::/8)");
    config_free(&cfg);
}

static void test_docs_up_to_date(void **state)
{
    char *generated = NULL, *committed = NULL;
    size_t gen_len = 0, com_len = 0;
    FILE *out = open_memstream(&generated, &gen_len);
    FILE *in;
    (void)state;

    assert_non_null(out);
    config_print_markdown(out);
    fclose(out);
    in = fopen(source_path("docs/configuration.md"), "rb");
    if (in) {
        committed = malloc(gen_len + 2);
        assert_non_null(committed);
        com_len = fread(committed, 1, gen_len + 1, in); /* +1 catches a longer file */
        fclose(in);
    }
    if (!committed || com_len != gen_len || memcmp(committed, generated, gen_len) != 0) {
        free(committed);
        free(generated);
        fail_msg("docs/configuration.md is out of date: regenerate with ai-finops-exporter "
                 "--print-config-docs > docs/configuration.md");
    }
    free(committed);
    free(generated);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_full_file),
        cmocka_unit_test(test_empty_documents),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_ranges_and_enums),
        cmocka_unit_test(test_extra_labels),
        cmocka_unit_test(test_anchors_aliases_documents),
        cmocka_unit_test(test_money_exact),
        cmocka_unit_test(test_lists_and_maps),
        cmocka_unit_test(test_failed_load_leaves_config_unchanged),
        cmocka_unit_test(test_load_twice_no_leak),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_flags_override_file),
        cmocka_unit_test(test_dlq_topic_not_subscribed),
        cmocka_unit_test(test_properties_file),
        cmocka_unit_test(test_properties_file_errors),
        cmocka_unit_test(test_properties_file_missing),
        cmocka_unit_test(test_flag_forms),
        cmocka_unit_test(test_flag_errors),
        cmocka_unit_test(test_help_lists_every_flag),
        cmocka_unit_test(test_event_kinds_options),
        cmocka_unit_test(test_event_kinds_load_errors),
        cmocka_unit_test(test_event_kinds_start_errors),
        cmocka_unit_test(test_web_scrapers),
        cmocka_unit_test(test_docs_up_to_date),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

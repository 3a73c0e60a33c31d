/* test_config.c - the option table: defaults, YAML files (every error kind
 * with its exact file:line:column), exact money values, flags over file,
 * no leaks on reload, and docs/configuration.md kept in sync. */
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

static int load(struct exporter_config *cfg, const char *yaml, char *err, size_t errlen)
{
    return config_load_buffer(cfg, "test.yaml", yaml, strlen(yaml), err, errlen);
}

static void test_defaults(void **state)
{
    (void)state;
    struct exporter_config cfg;
    config_init_defaults(&cfg);
    assert_string_equal(cfg.web_listen_address, ":9400");
    assert_string_equal(cfg.web_telemetry_path, "/metrics");
    assert_int_equal(cfg.events_max_cost_nanos, 1000000LL * 1000000000LL);
    assert_int_equal(cfg.counters_max_series, 100000);
    assert_int_equal(cfg.kafka_topics.count, 1);
    assert_string_equal(cfg.kafka_topics.items[0], "ai-costs");
    assert_string_equal(cfg.kafka_dlq_topic, "ai-costs-dlq");
    assert_int_equal(cfg.kafka_commit_mode, COMMIT_MODE_SCRAPE);
    assert_null(cfg.input);
    assert_int_equal(cfg.events_extra_labels.count, 0);
    config_free(&cfg);
}

static void test_full_file(void **state)
{
    (void)state;
    struct exporter_config cfg;
    char err[512] = "";
    config_init_defaults(&cfg);
    int rc = load(&cfg,
                  "web:\n  listen_address: \"127.0.0.1:9500\"\n"
                  "log: {level: debug, format: json}\n"
                  "events:\n  max_cost_usd: 0.000000001\n  extra_labels:\n    - environment\n"
                  "    - cost_center\n"
                  "kafka:\n  topics: [ai-costs, ai-api-costs]\n  properties:\n"
                  "    security.protocol: SASL_SSL\n    sasl.mechanism: PLAIN\n"
                  "  commit_mode: periodic\n  dlq_topic: \"\"\n",
                  err, sizeof(err));
    assert_int_equal(rc, 0);
    assert_string_equal(cfg.web_listen_address, "127.0.0.1:9500");
    assert_int_equal(cfg.log_level, LOG_LEVEL_DEBUG);
    assert_int_equal(cfg.log_format, LOG_FORMAT_JSON);
    assert_int_equal(cfg.events_max_cost_nanos, 1);
    assert_int_equal(cfg.events_extra_labels.count, 2);
    assert_string_equal(cfg.events_extra_labels.items[1], "cost_center");
    assert_int_equal(cfg.kafka_topics.count, 2);
    assert_int_equal(cfg.kafka_properties.count, 2);
    assert_string_equal(cfg.kafka_properties.keys[0], "security.protocol");
    assert_string_equal(cfg.kafka_properties.values[1], "PLAIN");
    assert_int_equal(cfg.kafka_commit_mode, COMMIT_MODE_PERIODIC);
    assert_string_equal(cfg.kafka_dlq_topic, "");
    /* loading again replaces, never leaks (ASan checks) */
    assert_int_equal(load(&cfg, "kafka:\n  topics: [x]\n", err, sizeof(err)), 0);
    assert_int_equal(cfg.kafka_topics.count, 1);
    config_free(&cfg);
}

static void test_empty_file(void **state)
{
    (void)state;
    struct exporter_config cfg;
    char err[512];
    config_init_defaults(&cfg);
    assert_int_equal(load(&cfg, "", err, sizeof(err)), 0);
    assert_int_equal(load(&cfg, "# only a comment\n", err, sizeof(err)), 0);
    assert_string_equal(cfg.web_listen_address, ":9400");
    config_free(&cfg);
}

struct error_case {
    const char *yaml;
    const char *prefix; /* exact start of the message */
    const char *contains;
};

static const struct error_case error_cases[] = {
    {"web:\n  listen_adress: x\n", "test.yaml:2:3: unknown key 'web.listen_adress'",
     "did you mean 'web.listen_address'?"},
    {"web:\n  max_connections: 5\n  max_connections: 6\n",
     "test.yaml:3:3: duplicate key 'max_connections'", "first at line 2"},
    {"web:\n  max_connections: lots\n", "test.yaml:2:20: web.max_connections: 'lots' is not",
     "from 1 to 100000"},
    {"web:\n  max_connections: 0\n", "test.yaml:2:20: web.max_connections: 0 is out of range",
     "from 1 to 100000"},
    {"log:\n  level: loud\n", "test.yaml:2:10: log.level: 'loud' is not allowed",
     "one of debug, info, warn, error"},
    {"kafka:\n  topics: ai-costs\n", "test.yaml:2:11: kafka.topics: got a scalar", "a list"},
    {"web: 5\n", "test.yaml:1:6: web: expected a mapping of options", "got a scalar"},
    {"events:\n  max_cost_usd: 1.0000000001\n",
     "test.yaml:2:17: events.max_cost_usd:", "at most 9 decimals"},
    {"events:\n  max_cost_usd: -1\n", "test.yaml:2:17: events.max_cost_usd:", "dollars from"},
    {"events:\n  extra_labels: [team]\n", "test.yaml:2:17: events.extra_labels:", "built-in label"},
    {"events:\n  extra_labels: [\"bad-name\"]\n",
     "test.yaml:2:17: events.extra_labels:", "not a label name"},
    {"web:\n  telemetry_path: metrics\n",
     "test.yaml:2:19: web.telemetry_path:", "starting with '/'"},
    {"web:\n  listen_address: nowhere\n", "test.yaml:2:19: web.listen_address:", "HOST:PORT"},
    {"a: &x 1\nb: *x\n", "test.yaml:1:4: anchors and aliases", "write the value out"},
    {"web:\n  listen_address: [\n", "test.yaml:", "YAML syntax error"},
    {"- 1\n- 2\n", "test.yaml:1:1: the configuration must be a mapping", "got a list"},
    {"kafka:\n  properties: [a]\n", "test.yaml:2:15: kafka.properties: got a list", "mapping"},
};

static void test_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(error_cases) / sizeof(error_cases[0]); i++) {
        struct exporter_config cfg;
        char err[512] = "";
        config_init_defaults(&cfg);
        int rc = load(&cfg, error_cases[i].yaml, err, sizeof(err));
        config_free(&cfg);
        if (rc != -EINVAL || strncmp(err, error_cases[i].prefix, strlen(error_cases[i].prefix)) ||
            !strstr(err, error_cases[i].contains))
            fail_msg("case %zu: rc %d, message: %s", i, rc, err);
    }
}

static void test_file_missing(void **state)
{
    (void)state;
    struct exporter_config cfg;
    char err[512];
    config_init_defaults(&cfg);
    assert_int_equal(config_load_file(&cfg, "/nonexistent/x.yaml", err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "/nonexistent/x.yaml"));
    config_free(&cfg);
}

static void test_flags_override_file(void **state)
{
    (void)state;
    char path[] = "/tmp/finops-config-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs("web:\n  listen_address: \":1111\"\n  max_connections: 7\n", f);
    fclose(f);
    struct exporter_config cfg;
    enum config_action action;
    char err[512] = "";
    char *argv[] = {"x",  "--web.listen-address", ":2222",     "--config",
                    path, "--kafka.topics=a,b",   "--input=-", "--check-config",
                    NULL};
    config_init_defaults(&cfg);
    int rc = config_parse_args(&cfg, 8, argv, &action, err, sizeof(err));
    unlink(path);
    assert_int_equal(rc, 0);
    assert_int_equal(action, CONFIG_ACTION_CHECK);
    assert_string_equal(cfg.web_listen_address, ":2222");
    assert_int_equal(cfg.web_max_connections, 7);
    assert_int_equal(cfg.kafka_topics.count, 2);
    assert_string_equal(cfg.kafka_topics.items[1], "b");
    assert_string_equal(cfg.input, "-");
    config_free(&cfg);
}

static void test_flag_errors(void **state)
{
    (void)state;
    struct exporter_config cfg;
    enum config_action action;
    char err[512];
    char *unknown[] = {"x", "--web.listen-adress=:1", NULL};
    config_init_defaults(&cfg);
    assert_int_equal(config_parse_args(&cfg, 2, unknown, &action, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "did you mean '--web.listen-address'?"));
    char *range[] = {"x", "--counters.max-series", "0", NULL};
    assert_int_equal(config_parse_args(&cfg, 3, range, &action, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "command line: --counters.max-series: 0 is out of range"));
    char *missing[] = {"x", "--log.level", NULL};
    assert_int_equal(config_parse_args(&cfg, 2, missing, &action, err, sizeof(err)), -EINVAL);
    char *map[] = {"x", "--kafka.properties=a", NULL};
    assert_int_equal(config_parse_args(&cfg, 2, map, &action, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "only be set in the configuration file"));
    config_free(&cfg);
}

static void test_docs_up_to_date(void **state)
{
    (void)state;
    const char *root = getenv("FINOPS_SOURCE_DIR");
    char path[4096];
    snprintf(path, sizeof(path), "%s/docs/configuration.md", root ? root : FINOPS_SOURCE_DIR);
    char *want = NULL;
    size_t want_len = 0;
    FILE *mem = open_memstream(&want, &want_len);
    config_print_markdown(mem);
    fclose(mem);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *have = malloc(want_len + 2);
    size_t have_len = fread(have, 1, want_len + 1, f);
    fclose(f);
    if (have_len != want_len || memcmp(have, want, want_len) != 0)
        fail_msg("docs/configuration.md is out of date: regenerate with "
                 "ai-finops-exporter --print-config-docs > docs/configuration.md");
    free(have);
    free(want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),     cmocka_unit_test(test_full_file),
        cmocka_unit_test(test_empty_file),   cmocka_unit_test(test_errors),
        cmocka_unit_test(test_file_missing), cmocka_unit_test(test_flags_override_file),
        cmocka_unit_test(test_flag_errors),  cmocka_unit_test(test_docs_up_to_date),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

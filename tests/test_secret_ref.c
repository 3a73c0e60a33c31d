/* test_secret_ref.c - ${env:NAME} in Kafka property values: expansion
 * (several references, text around them, the $${ escape, values that are
 * not references), unset and malformed references refused by key and
 * variable name without the value; the redaction of librdkafka's error
 * strings; and the same through config_parse_args (YAML and flag values,
 * kafka.properties_file) and kafka_set_conf. */
#define _GNU_SOURCE
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
#include "kafka_internal.h"
#include "secret_ref.h"

#define SECRET "s3cr3t-Pa55w0rd"

static char errbuf[512];

static char *expand(const char *value, int *rc)
{
    char *out = NULL;
    *rc = secret_ref_expand("sasl.password", value, &out, errbuf, sizeof errbuf);
    return out;
}

static void test_expand(void **state)
{
    (void)state;
    int rc;
    char *s;
    setenv("FINOPS_T_PW", SECRET, 1);
    setenv("FINOPS_T_USER", "exporter", 1);
    setenv("FINOPS_T_EMPTY", "", 1);

    s = expand("${env:FINOPS_T_PW}", &rc);
    assert_int_equal(rc, 1);
    assert_string_equal(s, SECRET);
    free(s);
    s = expand("u=${env:FINOPS_T_USER};p=${env:FINOPS_T_PW}.", &rc);
    assert_int_equal(rc, 1);
    assert_string_equal(s, "u=exporter;p=" SECRET ".");
    free(s);
    s = expand("[${env:FINOPS_T_EMPTY}]", &rc);
    assert_string_equal(s, "[]");
    free(s);
    /* not references: kept verbatim; $${ is a literal ${ */
    s = expand("a$b${x}${ENV:FINOPS_T_PW}$", &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(s, "a$b${x}${ENV:FINOPS_T_PW}$");
    free(s);
    s = expand("$${env:FINOPS_T_PW}", &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(s, "${env:FINOPS_T_PW}");
    free(s);
    s = expand("", &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(s, "");
    free(s);
}

static void test_refused(void **state)
{
    (void)state;
    int rc;
    unsetenv("FINOPS_T_UNSET");
    assert_null(expand("${env:FINOPS_T_UNSET}", &rc));
    assert_int_equal(rc, -ENOENT);
    assert_non_null(strstr(errbuf, "'sasl.password'"));
    assert_non_null(strstr(errbuf, "FINOPS_T_UNSET"));
    assert_non_null(strstr(errbuf, "not set"));

    const char *bad[] = {"${env:}", "${env:1A}", "${env:A-B}", "x${env:NOCLOSE", NULL};
    for (size_t i = 0; bad[i]; i++) {
        assert_null(expand(bad[i], &rc));
        assert_int_equal(rc, -EINVAL);
        assert_non_null(strstr(errbuf, "malformed reference"));
        assert_non_null(strstr(errbuf, "'sasl.password'"));
    }
}

static void test_redact(void **state)
{
    (void)state;
    char msg[128];
    strcpy(msg, "Invalid value \"" SECRET "\" for \"" SECRET "\"");
    secret_ref_redact(msg, SECRET);
    assert_string_equal(msg, "Invalid value \"***\" for \"***\"");
    strcpy(msg, "a*b*");
    secret_ref_redact(msg, "*"); /* terminates */
    assert_string_equal(msg, "a*b*");
    strcpy(msg, "xyx");
    secret_ref_redact(msg, "");
    assert_string_equal(msg, "xyx");
    assert_true(secret_ref_sensitive_key("sasl.password"));
    assert_true(secret_ref_sensitive_key("ssl.key.password"));
    assert_true(secret_ref_sensitive_key("sasl.oauthbearer.client.secret"));
    assert_false(secret_ref_sensitive_key("sasl.username"));
}

static int parse(struct exporter_config *cfg, char **argv)
{
    enum config_action action;
    int argc = 0;
    while (argv[argc])
        argc++;
    return config_parse_args(cfg, argc, argv, &action, errbuf, sizeof errbuf);
}

/* The YAML file, a flag and kafka.properties_file all expand; an unset
 * variable fails the parse by key and variable, never with the value. */
static void test_config(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_secret_ref.XXXXXX", yaml[128], props[128];
    assert_non_null(mkdtemp(dir));
    snprintf(yaml, sizeof yaml, "%s/c.yaml", dir);
    snprintf(props, sizeof props, "%s/k.properties", dir);
    FILE *f = fopen(yaml, "w");
    assert_non_null(f);
    fputs("kafka:\n  properties:\n    sasl.username: \"${env:FINOPS_T_USER}\"\n", f);
    fclose(f);
    f = fopen(props, "w");
    assert_non_null(f);
    fputs("sasl.password=${env:FINOPS_T_PW}\n", f);
    fclose(f);
    setenv("FINOPS_T_PW", SECRET, 1);
    setenv("FINOPS_T_USER", "exporter", 1);

    struct exporter_config cfg;
    char pf[160];
    snprintf(pf, sizeof pf, "--kafka.properties-file=%s", props);
    char *argv[] = {
        "x", "--config", yaml, pf, "--kafka.properties=client.id=c-${env:FINOPS_T_USER}", NULL};
    config_init_defaults(&cfg);
    assert_int_equal(parse(&cfg, argv), 0);
    size_t seen = 0;
    for (size_t i = 0; i < cfg.kafka_properties.count; i++) {
        const char *k = cfg.kafka_properties.keys[i], *v = cfg.kafka_properties.values[i];
        if (strcmp(k, "sasl.password") == 0 && strcmp(v, SECRET) == 0)
            seen |= 1;
        if (strcmp(k, "sasl.username") == 0 && strcmp(v, "exporter") == 0)
            seen |= 2;
        if (strcmp(k, "client.id") == 0 && strcmp(v, "c-exporter") == 0)
            seen |= 4;
    }
    assert_int_equal(seen, 7);
    config_free(&cfg);

    unsetenv("FINOPS_T_PW");
    config_init_defaults(&cfg);
    assert_int_equal(parse(&cfg, argv), -ENOENT);
    assert_non_null(strstr(errbuf, "'sasl.password'"));
    assert_non_null(strstr(errbuf, "FINOPS_T_PW"));
    config_free(&cfg);

    unlink(yaml);
    unlink(props);
    rmdir(dir);
}

/* A value librdkafka rejects is not quoted back in our message. */
static void test_set_conf_redacts(void **state)
{
    (void)state;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    assert_int_equal(kafka_set_conf(conf, "security.protocol", SECRET, errbuf, sizeof errbuf),
                     -EINVAL);
    assert_non_null(strstr(errbuf, "security.protocol"));
    assert_null(strstr(errbuf, SECRET));
    assert_int_equal(kafka_set_conf(conf, "sasl.password", SECRET, errbuf, sizeof errbuf), 0);
    rd_kafka_conf_destroy(conf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expand),           cmocka_unit_test(test_refused),
        cmocka_unit_test(test_redact),           cmocka_unit_test(test_config),
        cmocka_unit_test(test_set_conf_redacts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

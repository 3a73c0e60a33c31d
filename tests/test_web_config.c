/* test_web_config.c - the --web.config.file loader: every refusal names
 * file:line:col and never quotes a secret; TLS material is checked with
 * GnuTLS; basic auth verifies bcrypt once and then hits its cache. The
 * PEMs below are throw-away test material (P-256), used nowhere else. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "web_config.h"

static const char CERT_PEM[] = "-----BEGIN CERTIFICATE-----\n"
                               "MIIBgDCCASWgAwIBAgIUKjGkmQP8zpkqvpnjEFo8HucSZ94wCgYIKoZIzj0EAwIw\n"
                               "FDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTIwNDIyMzEyNFoYDzIxMjYxMTEw\n"
                               "MjIzMTI0WjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjO\n"
                               "PQMBBwNCAAT0drU8TCgItLjitqFEQZvt1WJleZiZxVCyXPDafYbi7drvrkvFONqY\n"
                               "y8NMXnfwBl+nliFXRi+R8n69GfD0pt6so1MwUTAdBgNVHQ4EFgQUwj8uJn3HG3NS\n"
                               "VWv/p/6Mn+MvBSAwHwYDVR0jBBgwFoAUwj8uJn3HG3NSVWv/p/6Mn+MvBSAwDwYD\n"
                               "VR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNJADBGAiEA+NYeW0prIUVwXW1OdpEK\n"
                               "vDUE4qw6P2+7VsR6ldkpj9sCIQDQB3bESoto8Izkg3Y9EVMuOipNzckvoh1rIEVm\n"
                               "UrUY+A==\n"
                               "-----END CERTIFICATE-----\n";
static const char KEY_PEM[] = "-----BEGIN PRIVATE KEY-----\n"
                              "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg3ljNymwjNYxZ76cr\n"
                              "wG++53sx4htCrwFeYrrH2H+QFGahRANCAAT0drU8TCgItLjitqFEQZvt1WJleZiZ\n"
                              "xVCyXPDafYbi7drvrkvFONqYy8NMXnfwBl+nliFXRi+R8n69GfD0pt6s\n"
                              "-----END PRIVATE KEY-----\n";
static const char OTHER_KEY_PEM[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgKYbDP98fvfWDow+g\n"
    "fFQiEkOOGNjF4yY+rKFVAY2f1FahRANCAASfDgbm/GYujXG4Vdj+UX0vMKZd5KVj\n"
    "lBoR8HQK+f7r/XRriYEC1uSTlFyiLK7kTB1xVAX6PamZPWvAffPOaTxP\n"
    "-----END PRIVATE KEY-----\n";
static const char CA_PEM[] = "-----BEGIN CERTIFICATE-----\n"
                             "MIIBezCCASGgAwIBAgIUMod/jI/sUeL/SPtTJ/xmGo4MDNMwCgYIKoZIzj0EAwIw\n"
                             "EjEQMA4GA1UEAwwHdW5pdC1jYTAgFw0yNjEyMDQyMjMxMjRaGA8yMTI2MTExMDIy\n"
                             "MzEyNFowEjEQMA4GA1UEAwwHdW5pdC1jYTBZMBMGByqGSM49AgEGCCqGSM49AwEH\n"
                             "A0IABIb7ev8gGWVrIo/fgJP0kxgPdkPfXyevC70pgWA3iRezXBZjuGkWjU959/SH\n"
                             "69DniHJUHCxNhZGdmZrXOLjuT4ujUzBRMB0GA1UdDgQWBBRXd7jrCMvnwH916ZVS\n"
                             "bCxzoVPhjjAfBgNVHSMEGDAWgBRXd7jrCMvnwH916ZVSbCxzoVPhjjAPBgNVHRMB\n"
                             "Af8EBTADAQH/MAoGCCqGSM49BAMCA0gAMEUCIQDvJIw6oNr7fKhpaKlY7lUeixkP\n"
                             "RmJoZU53ytHzdzClyAIgadGEQBsBiRaaAZCtWCMEhY6AYXElAcsanWknMMOW8Yk=\n"
                             "-----END CERTIFICATE-----\n";

/* bcrypt (cost 4, for speed) of "secret". */
#define HASH_SECRET "$2b$04$xj7zfVq2H8tCO7fTMavURe.uMFmmoSu0tzgr./CX8PAle9j.seKoO"

static char dir[] = "/tmp/finops-webcfg-XXXXXX";

static void put(const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    if (!mkdtemp(dir))
        return -1;
    put("s.crt", CERT_PEM);
    put("s.key", KEY_PEM);
    put("other.key", OTHER_KEY_PEM);
    put("ca.crt", CA_PEM);
    put("empty.pem", "");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    const char *names[] = {"s.crt", "s.key", "other.key", "ca.crt", "empty.pem", "web.yml"};
    char path[256];
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
    return 0;
}

static struct web_config *load_ok(const char *yaml)
{
    struct web_config *wc = NULL;
    char err[512];
    int rc = web_config_parse(yaml, strlen(yaml), "web.yml", dir, &wc, err, sizeof(err));
    if (rc != 0)
        fail_msg("unexpected error: %s", err);
    return wc;
}

/* The load fails with exactly this message. */
static void refused(const char *yaml, const char *want)
{
    struct web_config *wc = NULL;
    char err[512];
    int rc = web_config_parse(yaml, strlen(yaml), "web.yml", dir, &wc, err, sizeof(err));
    if (rc == 0)
        fail_msg("accepted, wanted: %s", want);
    assert_null(wc);
    if (strncmp(err, want, strlen(want)) != 0)
        fail_msg("got:  %s\nwant: %s", err, want);
    /* no secret in any message */
    assert_null(strstr(err, "xj7zfVq2")); /* HASH_SECRET's salt */
    assert_null(strstr(err, "notahash"));
    assert_null(strstr(err, "PRIVATE KEY"));
}

static void test_yaml_errors(void **state)
{
    (void)state;
    refused("", "web.yml:1:1: empty web config");
    refused("# only a comment\n", "web.yml:1:1: empty web config");
    refused("basic_auth_users: [a\n", "web.yml:2:1: invalid YAML");
    refused("- a\n- b\n", "web.yml:1:1: web config: must be a mapping");
    refused("tls_server_config: {}\nbogus: 1\n", "web.yml:2:1: bogus: unknown key");
    refused("basic_auth_users: {}\nbasic_auth_users: {}\n",
            "web.yml:2:1: web config.basic_auth_users: duplicate key");
    refused("rate_limit:\n  burst: 1\n", "web.yml:1:1: rate_limit: not supported");
    refused("basic_auth_users: 3\n", "web.yml:1:19: basic_auth_users: must be a mapping");
    refused("? [a]\n: 1\n", "web.yml:1:3: web config: keys must be strings");
}

static void test_tls_errors(void **state)
{
    (void)state;
    refused("tls_server_config:\n  cert_file: s.crt\n  colour: red\n",
            "web.yml:3:3: tls_server_config.colour: unknown key");
    refused("tls_server_config:\n  cert_file: s.crt\n  key_file: s.key\n  cipher_suites: [a]\n",
            "web.yml:4:3: tls_server_config.cipher_suites: not supported");
    refused("tls_server_config:\n  curve_preferences: [X25519]\n",
            "web.yml:2:3: tls_server_config.curve_preferences: not supported");
    refused("tls_server_config:\n  client_allowed_sans: [a]\n",
            "web.yml:2:3: tls_server_config.client_allowed_sans: not supported");
    refused("tls_server_config:\n  cert_file: missing.crt\n",
            "web.yml:2:14: tls_server_config.cert_file: cannot open");
    refused("tls_server_config:\n  cert_file: [a]\n",
            "web.yml:2:14: tls_server_config.cert_file: must be a string");
    refused("tls_server_config:\n  key_file: s.key\n",
            "web.yml:2:3: tls_server_config: cert_file (or cert) is required");
    refused("tls_server_config:\n  cert_file: s.crt\n",
            "web.yml:2:3: tls_server_config: key_file (or key) is required");
    refused("tls_server_config:\n  cert_file: s.crt\n  key_file: other.key\n",
            "web.yml:3:13: tls_server_config: cannot use the certificate and key");
    refused("tls_server_config:\n  cert_file: s.key\n  key_file: s.key\n",
            "web.yml:2:14: tls_server_config.cert_file: not PEM certificates");
    refused("tls_server_config:\n  cert_file: s.crt\n  key_file: s.crt\n",
            "web.yml:3:13: tls_server_config.key_file: not a usable PEM private key");
    refused("tls_server_config:\n  cert_file: s.crt\n  key_file: s.key\n"
            "  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: s.key\n",
            "web.yml:5:19: tls_server_config.client_ca_file: not PEM certificates");
    refused("tls_server_config:\n  cert_file: s.crt\n  cert: x\n",
            "web.yml:3:3: tls_server_config.cert: give cert or cert_file, not both");
    refused("tls_server_config:\n  cert_file: s.crt\n  key_file: s.key\n"
            "  client_auth_type: Sometimes\n",
            "web.yml:4:21: tls_server_config.client_auth_type: must be one of");
    refused("tls_server_config:\n  cert_file: s.crt\n  key_file: s.key\n"
            "  client_auth_type: RequireAndVerifyClientCert\n",
            "web.yml:4:21: tls_server_config.client_auth_type: RequireAndVerifyClientCert "
            "needs client_ca_file");
    refused("tls_server_config:\n  cert_file: s.crt\n  key_file: s.key\n"
            "  client_ca_file: ca.crt\n",
            "web.yml:4:19: tls_server_config.client_ca_file: set without a client_auth_type");
    refused("tls_server_config:\n  cert_file: s.crt\n  key_file: s.key\n"
            "  client_ca_file: ca.crt\n  client_auth_type: RequireAnyClientCert\n",
            "web.yml:4:19: tls_server_config.client_ca_file: RequireAnyClientCert does not "
            "verify");
    refused("tls_server_config:\n  cert_file: s.crt\n  key_file: s.key\n"
            "  client_ca_file: empty.pem\n  client_auth_type: VerifyClientCertIfGiven\n",
            "web.yml:4:19: tls_server_config.client_ca_file: not PEM certificates");
    refused("tls_server_config:\n  cert_file: s.crt\n  key_file: s.key\n  min_version: TLS14\n",
            "web.yml:4:16: tls_server_config.min_version: must be one of TLS10");
    refused("tls_server_config:\n  cert_file: s.crt\n  key_file: s.key\n  min_version: TLS13\n"
            "  max_version: TLS12\n",
            "web.yml:4:16: tls_server_config.min_version: above max_version");
    refused("tls_server_config:\n  prefer_server_cipher_suites: maybe\n",
            "web.yml:2:32: tls_server_config.prefer_server_cipher_suites: must be true or false");
    /* without a base directory (the fuzzer), no file is read */
    struct web_config *wc = NULL;
    char err[256];
    const char *y = "tls_server_config:\n  cert_file: /etc/hostname\n";
    assert_int_not_equal(web_config_parse(y, strlen(y), "f", NULL, &wc, err, sizeof(err)), 0);
    assert_string_equal(err,
                        "f:2:14: tls_server_config.cert_file: file names are not allowed here");
}

static void test_user_and_header_errors(void **state)
{
    (void)state;
    refused("basic_auth_users:\n  alice: notahash\n",
            "web.yml:2:10: basic_auth_users.alice: not a bcrypt hash");
    refused("basic_auth_users:\n  alice: "
            "'$2b$03$xj7zfVq2H8tCO7fTMavURe.uMFmmoSu0tzgr./CX8PAle9j.seKoO'\n",
            "web.yml:2:10: basic_auth_users.alice: not a bcrypt hash");
    refused("basic_auth_users:\n  alice:\n",
            "web.yml:2:9: basic_auth_users.alice: must be a bcrypt hash");
    refused("basic_auth_users:\n  'a:b': '" HASH_SECRET "'\n",
            "web.yml:2:3: basic_auth_users: a user name must be non-empty, without ':'");
    refused("basic_auth_users:\n  alice: [1]\n",
            "web.yml:2:10: basic_auth_users.alice: must be a bcrypt hash");
    refused("http_server_config:\n  http3: true\n",
            "web.yml:2:3: http_server_config.http3: unknown key");
    refused("http_server_config:\n  http2: sure\n",
            "web.yml:2:10: http_server_config.http2: must be true or false");
    refused("http_server_config:\n  headers:\n    Set-Cookie: a\n",
            "web.yml:3:5: http_server_config.headers.Set-Cookie: not allowed");
    refused("http_server_config:\n  headers:\n    X-Frame-Options: \"a\\nb\"\n",
            "web.yml:3:22: http_server_config.headers.X-Frame-Options: must be one line");
    refused("http_server_config:\n  headers: []\n",
            "web.yml:2:12: http_server_config.headers: must be a mapping");
}

static void test_valid(void **state)
{
    (void)state;
    struct web_config *wc =
        load_ok("tls_server_config:\n  cert_file: s.crt\n  key_file: s.key\n"
                "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n"
                "  min_version: TLS13\nbasic_auth_users:\n  alice: '" HASH_SECRET "'\n"
                "http_server_config:\n  http2: true\n  headers:\n    x-frame-options: deny\n");
    assert_true(web_config_tls(wc));
    assert_string_equal(web_config_cert_pem(wc), CERT_PEM);
    assert_string_equal(web_config_key_pem(wc), KEY_PEM);
    assert_string_equal(web_config_client_ca_pem(wc), CA_PEM);
    assert_int_equal(web_config_client_auth(wc), WEB_REQUIRE_AND_VERIFY_CLIENT_CERT);
    assert_string_equal(web_config_tls_priorities(wc),
                        "NORMAL:-VERS-ALL:+VERS-TLS1.3:%SERVER_PRECEDENCE");
    assert_int_equal(web_config_user_count(wc), 1);
    assert_int_equal(web_config_header_count(wc), 1);
    const char *n, *v;
    web_config_header(wc, 0, &n, &v);
    assert_string_equal(n, "X-Frame-Options"); /* canonical spelling */
    assert_string_equal(v, "deny");

    /* the same TLS, other users: a live change; other TLS: not */
    struct web_config *users_only =
        load_ok("tls_server_config:\n  cert_file: s.crt\n  key_file: s.key\n"
                "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n"
                "  min_version: TLS13\nbasic_auth_users:\n  bob: '" HASH_SECRET "'\n");
    struct web_config *tls12 =
        load_ok("tls_server_config:\n  cert_file: s.crt\n  key_file: s.key\n");
    struct web_config *plain = load_ok("basic_auth_users:\n  bob: '" HASH_SECRET "'\n");
    assert_true(web_config_tls_equal(wc, users_only));
    assert_false(web_config_tls_equal(wc, tls12));
    assert_false(web_config_tls_equal(plain, tls12));
    assert_true(web_config_tls_equal(plain, NULL));
    assert_false(web_config_tls(plain));
    assert_null(web_config_cert_pem(plain));
    assert_string_equal(web_config_tls_priorities(tls12),
                        "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:%SERVER_PRECEDENCE");
    web_config_unref(users_only);
    web_config_unref(tls12);
    web_config_unref(plain);
    web_config_unref(wc);

    /* an empty tls_server_config is no TLS, as in the toolkit */
    wc = load_ok("tls_server_config: {}\nbasic_auth_users: {}\n");
    assert_false(web_config_tls(wc));
    web_config_unref(wc);
}

static void test_load_file(void **state)
{
    (void)state;
    char path[256], err[512];
    snprintf(path, sizeof(path), "%s/web.yml", dir);
    put("web.yml", "tls_server_config:\n  cert_file: s.crt\n  key_file: s.key\n");
    struct web_config *wc = NULL;
    assert_int_equal(web_config_load(path, &wc, err, sizeof(err)), 0);
    assert_true(web_config_tls(wc));
    web_config_unref(wc);
    put("web.yml", "tls_server_config:\n  cert_file: nope.crt\n  key_file: s.key\n");
    assert_int_not_equal(web_config_load(path, &wc, err, sizeof(err)), 0);
    char want[512];
    snprintf(want, sizeof(want), "%s:2:14: tls_server_config.cert_file: cannot open '%s/nope.crt'",
             path, dir);
    assert_true(strncmp(err, want, strlen(want)) == 0);
    assert_int_not_equal(web_config_load(dir, &wc, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "read error"));
}

/* What a live rotation rests on: each config carries its own GnuTLS
 * credentials and priorities and puts them on a session; the files it read
 * are named for the reload watcher; the certificate's expiry is known. */
static void test_tls_apply(void **state)
{
    (void)state;
    struct web_config *a =
        load_ok("tls_server_config:\n  cert_file: s.crt\n  key_file: s.key\n"
                "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n");
    struct web_config *b = load_ok("tls_server_config:\n  cert_file: s.crt\n  key_file: s.key\n"
                                   "  min_version: TLS13\n");
    struct web_config *plain = load_ok("basic_auth_users:\n  bob: '" HASH_SECRET "'\n");
    char want[256];
    assert_int_equal(web_config_file_count(a), 3);
    const char *names[] = {"s.crt", "s.key", "ca.crt"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(want, sizeof(want), "%s/%s", dir, names[i]);
        assert_string_equal(web_config_file(a, i), want);
    }
    assert_null(web_config_file(a, 3));
    assert_int_equal(web_config_file_count(b), 2);
    assert_int_equal(web_config_file_count(plain), 0);
    assert_int_equal(web_config_cert_not_after(a), INT64_C(4950023484)); /* 2126-11-10T22:31:24Z */
    assert_int_equal(web_config_cert_not_after(plain), 0);

    gnutls_session_t session;
    assert_int_equal(gnutls_init(&session, GNUTLS_SERVER), GNUTLS_E_SUCCESS);
    void *cred_a = NULL, *cred_b = NULL;
    assert_int_equal(web_config_tls_apply(a, session), GNUTLS_E_SUCCESS);
    assert_int_equal(gnutls_credentials_get(session, GNUTLS_CRD_CERTIFICATE, &cred_a), 0);
    /* a second apply (a reload between MHD's setup and ours, say) replaces */
    assert_int_equal(web_config_tls_apply(b, session), GNUTLS_E_SUCCESS);
    assert_int_equal(gnutls_credentials_get(session, GNUTLS_CRD_CERTIFICATE, &cred_b), 0);
    assert_non_null(cred_a);
    assert_non_null(cred_b);
    assert_ptr_not_equal(cred_a, cred_b);
    assert_int_not_equal(web_config_tls_apply(plain, session), GNUTLS_E_SUCCESS);
    /* the session first, then the configs: the order the server keeps
     * (a connection drops its config once MHD has deinitialized it) */
    gnutls_deinit(session);
    web_config_unref(a);
    web_config_unref(b);
    web_config_unref(plain);
}

static void test_authorize(void **state)
{
    (void)state;
    struct web_config *open_wc = load_ok("http_server_config:\n  http2: false\n");
    assert_int_equal(web_config_authorize(open_wc, NULL), WEB_AUTH_OK);
    web_config_unref(open_wc);

    struct web_config *wc = load_ok("basic_auth_users:\n  alice: '" HASH_SECRET "'\n");
    assert_int_equal(web_config_authorize(wc, NULL), WEB_AUTH_MISSING);
    assert_int_equal(web_config_authorize(wc, "Bearer abc"), WEB_AUTH_MISSING);
    assert_int_equal(web_config_authorize(wc, "Basic !!!!"), WEB_AUTH_MISSING);
    assert_int_equal(web_config_authorize(wc, "Basic YWxpY2U="), WEB_AUTH_MISSING); /* alice */
    unsigned long runs = web_config_bcrypt_runs();
    /* alice:wrong */
    assert_int_equal(web_config_authorize(wc, "Basic YWxpY2U6d3Jvbmc="), WEB_AUTH_WRONG);
    /* bob:secret - an unknown user still costs one bcrypt */
    assert_int_equal(web_config_authorize(wc, "Basic Ym9iOnNlY3JldA=="), WEB_AUTH_WRONG);
    assert_int_equal(web_config_bcrypt_runs(), runs + 2);
    /* alice:secret, then again from the cache */
    assert_int_equal(web_config_authorize(wc, "Basic YWxpY2U6c2VjcmV0"), WEB_AUTH_OK);
    assert_int_equal(web_config_bcrypt_runs(), runs + 3);
    assert_int_equal(web_config_authorize(wc, "basic  YWxpY2U6c2VjcmV0 "), WEB_AUTH_OK);
    assert_int_equal(web_config_bcrypt_runs(), runs + 3);
    /* a wrong password is never cached as right */
    assert_int_equal(web_config_authorize(wc, "Basic YWxpY2U6d3Jvbmc="), WEB_AUTH_WRONG);
    assert_int_equal(web_config_bcrypt_runs(), runs + 4);
    web_config_unref(wc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_yaml_errors),
        cmocka_unit_test(test_tls_errors),
        cmocka_unit_test(test_user_and_header_errors),
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_tls_apply),
        cmocka_unit_test(test_authorize),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

/*
 * web_config.h - access control for the HTTP endpoint: the Prometheus
 * exporter-toolkit web configuration file (--web.config.file), with TLS
 * (tls_server_config), bcrypt basic auth (basic_auth_users) and extra
 * response headers (http_server_config.headers).
 *
 * A loaded config is immutable and refcounted: the HTTP threads hold a
 * reference while they use it, a reload swaps in a new one. A TLS config
 * carries the GnuTLS credentials (certificate, key, client CA) and
 * priorities it was validated with; a TLS connection holds a reference to
 * the config its handshake used until its session is gone, so a reload
 * changes the certificate for new connections only. Only
 * web_config_authorize mutates anything (its verification cache, under its
 * own lock).
 *
 * Thread-safety: load/parse from any thread; a loaded config may be read
 * and authorized against from any number of threads at once.
 */
#ifndef AI_FINOPS_WEB_CONFIG_H
#define AI_FINOPS_WEB_CONFIG_H

#include <gnutls/gnutls.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct web_config;

/* exporter-toolkit's client_auth_type values, in Go's crypto/tls order. */
enum web_client_auth {
    WEB_NO_CLIENT_CERT,
    WEB_REQUEST_CLIENT_CERT,
    WEB_REQUIRE_ANY_CLIENT_CERT,
    WEB_VERIFY_CLIENT_CERT_IF_GIVEN,
    WEB_REQUIRE_AND_VERIFY_CLIENT_CERT,
};

/* Reads and validates FILE: the YAML, the certificate/key pair (they must
 * match), the client CA and the TLS priorities are all checked here, so a
 * config that loads can be served. Relative file names are resolved
 * against FILE's directory. Errors name path:line:col and the key; they
 * never quote a secret (password hash, key). Returns 0 or -errno; the
 * caller owns *out (web_config_unref). */
int web_config_load(const char *path, struct web_config **out, char *errbuf, size_t errlen);

/* The same from a buffer. base_dir: where relative file names point; NULL
 * refuses every *_file key (the fuzzer uses inline cert/key only). */
int web_config_parse(const char *text, size_t len, const char *name, const char *base_dir,
                     struct web_config **out, char *errbuf, size_t errlen);

struct web_config *web_config_ref(struct web_config *wc);
void web_config_unref(struct web_config *wc); /* NULL is fine */

/* TLS material: NULL/0 without tls_server_config. PEM, NUL-terminated. */
bool web_config_tls(const struct web_config *wc);
const char *web_config_cert_pem(const struct web_config *wc);
const char *web_config_key_pem(const struct web_config *wc);
const char *web_config_client_ca_pem(const struct web_config *wc); /* NULL: none */
const char *web_config_tls_priorities(const struct web_config *wc);
enum web_client_auth web_config_client_auth(const struct web_config *wc);
/* Whether a and b serve the same TLS (material, versions, client auth).
 * NULL = none. */
bool web_config_tls_equal(const struct web_config *a, const struct web_config *b);
/* The serving certificate's notAfter (Unix seconds); 0 without TLS. */
int64_t web_config_cert_not_after(const struct web_config *wc);

/* Sets up a new server SESSION, before its handshake, with wc's TLS:
 * credentials (certificate, key, client CA), priorities (versions, server
 * order), and whether to ask for and verify a client certificate. The
 * caller keeps a reference to wc until gnutls_deinit(session): GnuTLS
 * keeps a pointer to the credentials. Returns a GnuTLS error code (0 ok). */
int web_config_tls_apply(const struct web_config *wc, gnutls_session_t session);

/* The files wc was read from besides the config itself (cert_file,
 * key_file, client_ca_file, as opened): a watcher stats them to notice a
 * renewal that leaves the config file alone. */
size_t web_config_file_count(const struct web_config *wc);
const char *web_config_file(const struct web_config *wc, size_t i);

size_t web_config_user_count(const struct web_config *wc);
size_t web_config_header_count(const struct web_config *wc);
void web_config_header(const struct web_config *wc, size_t i, const char **name,
                       const char **value);

enum web_auth {
    WEB_AUTH_OK,      /* no users configured, or the right password */
    WEB_AUTH_MISSING, /* no (parseable) Basic credentials */
    WEB_AUTH_WRONG,   /* unknown user or wrong password */
    WEB_AUTH_BUSY,    /* a bcrypt verification is already running */
};

/* Checks an Authorization header value (NULL: none) against
 * basic_auth_users. A verified user+password is remembered (as a keyed
 * SHA-256 of both, never the password) in a bounded cache, so a scraper
 * pays bcrypt once, not per scrape. At most one bcrypt runs at a time per
 * process: a second one gets WEB_AUTH_BUSY at once instead of tying up
 * another HTTP thread. Thread-safe. */
enum web_auth web_config_authorize(struct web_config *wc, const char *authorization);

/* bcrypt verifications run so far (tests: the cache works). Thread-safe. */
unsigned long web_config_bcrypt_runs(void);

#endif

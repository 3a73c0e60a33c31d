/*
 * web_config.c - the exporter-toolkit web configuration (see web_config.h).
 *
 * The file is loaded as a libyaml document (shallow: three sections of
 * scalars and string maps), every key checked against the toolkit's
 * schema; what we cannot honour (cipher_suites, curve_preferences,
 * client_allowed_sans, rate_limit) is refused with path:line:col rather
 * than silently ignored. TLS material is validated with GnuTLS (key
 * matches cert, CA parses, priority string accepted) so that a config
 * that loads can be served, and a reload never swaps in one that cannot.
 * Basic auth verifies bcrypt with libxcrypt's crypt_r; successes are
 * cached as HMAC-SHA256(process secret, user NUL password) in a small
 * fixed table, so memory holds no password and a scrape costs no bcrypt.
 * Thread-safety: a loaded config is immutable except for its cache
 * (cache_lock, a leaf lock); the one-bcrypt-at-a-time flag is global.
 */
#define _GNU_SOURCE
#include "web_config.h"

#include <crypt.h>
#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#define PEM_MAX_BYTES  (1024 * 1024)
#define USERS_MAX      1024
#define HEADERS_MAX    32
#define AUTH_MAX_BYTES 1024
/* Verified user+password pairs remembered per config: a few scrapers and
 * operators; older entries are overwritten round-robin. */
#define CACHE_SLOTS 64

struct web_user {
    char *name;
    char *hash;
};

/* Files a config reads besides itself: cert, key, client CA. */
#define FILES_MAX 3

struct web_config {
    _Atomic unsigned refs;
    bool tls;
    char *cert_pem, *key_pem, *ca_pem;
    char priorities[160];
    /* What a connection's handshake uses (web_config_tls_apply): built once
     * per load, immutable, freed with the last reference. */
    gnutls_certificate_credentials_t cred;
    gnutls_priority_t prio;
    int64_t not_after; /* the serving certificate's notAfter, Unix seconds */
    char *files[FILES_MAX];
    size_t nfiles;
    enum web_client_auth client_auth;
    struct web_user *users;
    size_t nusers;
    char *header_names[HEADERS_MAX], *header_values[HEADERS_MAX];
    size_t nheaders;
    pthread_mutex_t cache_lock;
    unsigned char cache[CACHE_SLOTS][32];
    bool cache_used[CACHE_SLOTS];
    unsigned cache_next;
    unsigned char secret[32];
};

static _Atomic bool bcrypt_running;
static _Atomic unsigned long bcrypt_runs;

/* ---- loading -------------------------------------------------------------- */

struct loader {
    yaml_document_t doc;
    struct web_config *wc; /* being loaded: read_file records its files */
    const char *name;      /* file name for messages */
    const char *base_dir;  /* NULL: *_file keys refused */
    char *err;
    size_t errlen;
};

static int failf(struct loader *l, const yaml_node_t *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int failf(struct loader *l, const yaml_node_t *at, const char *fmt, ...)
{
    int n = snprintf(l->err, l->errlen, "%s:%zu:%zu: ", l->name,
                     at ? at->start_mark.line + 1 : (size_t)1,
                     at ? at->start_mark.column + 1 : (size_t)1);
    if (n < 0 || (size_t)n >= l->errlen)
        return -EINVAL;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->err + n, l->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

static const char *scalar(const yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

/* A YAML null: empty plain scalar, ~ or null. */
static bool is_null(const yaml_node_t *n)
{
    const char *s = scalar(n);
    return s && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
           (!*s || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 ||
            strcmp(s, "NULL") == 0);
}

static int want_string(struct loader *l, const char *key, const yaml_node_t *v, const char **out)
{
    const char *s = scalar(v);
    if (!s)
        return failf(l, v, "%s: must be a string", key);
    if (strlen(s) != v->data.scalar.length)
        return failf(l, v, "%s: must not contain NUL bytes", key);
    *out = s;
    return 0;
}

static int want_bool(struct loader *l, const char *key, const yaml_node_t *v, bool *out)
{
    const char *s = scalar(v);
    if (s && (strcmp(s, "true") == 0 || strcmp(s, "True") == 0 || strcmp(s, "TRUE") == 0))
        *out = true;
    else if (s && (strcmp(s, "false") == 0 || strcmp(s, "False") == 0 || strcmp(s, "FALSE") == 0))
        *out = false;
    else
        return failf(l, v, "%s: must be true or false", key);
    return 0;
}

/* Iterates a mapping, refusing duplicate keys and non-scalar keys. */
#define FOR_PAIRS(doc, map, p)                                                                     \
    for (yaml_node_pair_t *p = (map)->data.mapping.pairs.start; p < (map)->data.mapping.pairs.top; \
         p++)

static int check_mapping(struct loader *l, const char *what, const yaml_node_t *map)
{
    if (!map || map->type != YAML_MAPPING_NODE)
        return failf(l, map, "%s: must be a mapping", what);
    FOR_PAIRS(&l->doc, map, p)
    {
        const yaml_node_t *k = yaml_document_get_node(&l->doc, p->key);
        if (!scalar(k))
            return failf(l, k, "%s: keys must be strings", what);
        for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++)
            if (strcmp(scalar(yaml_document_get_node(&l->doc, q->key)), scalar(k)) == 0)
                return failf(l, k, "%s.%s: duplicate key", what, scalar(k));
    }
    return 0;
}

static int read_file(struct loader *l, const yaml_node_t *at, const char *key, const char *file,
                     char **out)
{
    if (!l->base_dir)
        return failf(l, at, "%s: file names are not allowed here", key);
    if (!*file)
        return failf(l, at, "%s: must name a file", key);
    char path[4096];
    if (file[0] == '/' || !*l->base_dir)
        snprintf(path, sizeof(path), "%s", file);
    else
        snprintf(path, sizeof(path), "%s/%s", l->base_dir, file);
    FILE *f = fopen(path, "rb");
    if (!f)
        return failf(l, at, "%s: cannot open '%s': %s", key, path, strerror(errno));
    char *buf = malloc(PEM_MAX_BYTES + 1);
    if (!buf) {
        fclose(f);
        return -ENOMEM;
    }
    size_t n = fread(buf, 1, PEM_MAX_BYTES + 1, f);
    int rerr = ferror(f);
    fclose(f);
    if (rerr || n > PEM_MAX_BYTES) {
        free(buf);
        return failf(l, at, "%s: '%s': %s", key, path,
                     rerr ? "read error" : "larger than 1 MiB: not a PEM file");
    }
    buf[n] = '\0';
    /* Remembered so a reload watcher can see a renewal of the file itself
     * (load_pem takes each of the three *_file keys at most once). */
    char *copy = l->wc->nfiles < FILES_MAX ? strdup(path) : NULL;
    if (copy)
        l->wc->files[l->wc->nfiles++] = copy;
    else if (l->wc->nfiles < FILES_MAX) {
        explicit_bzero(buf, n);
        free(buf);
        return -ENOMEM;
    }
    *out = buf;
    return 0;
}

static const char *const client_auth_names[] = {"NoClientCert", "RequestClientCert",
                                                "RequireAnyClientCert", "VerifyClientCertIfGiven",
                                                "RequireAndVerifyClientCert"};

static const struct {
    const char *name, *gnutls;
} tls_versions[] = {{"TLS10", "VERS-TLS1.0"},
                    {"TLS11", "VERS-TLS1.1"},
                    {"TLS12", "VERS-TLS1.2"},
                    {"TLS13", "VERS-TLS1.3"}};

static int tls_version(struct loader *l, const char *key, const yaml_node_t *v, int *out)
{
    const char *s;
    int rc = want_string(l, key, v, &s);
    if (rc)
        return rc;
    for (int i = 0; i < 4; i++)
        if (strcmp(s, tls_versions[i].name) == 0) {
            *out = i;
            return 0;
        }
    return failf(l, v, "%s: must be one of TLS10, TLS11, TLS12, TLS13", key);
}

/* One or more PEM certificates. */
static int check_certs(struct loader *l, const yaml_node_t *at, const char *key, const char *pem,
                       int64_t *not_after)
{
    gnutls_x509_crt_t *list = NULL;
    unsigned n = 0;
    gnutls_datum_t d = {(unsigned char *)pem, (unsigned)strlen(pem)};
    int g = gnutls_x509_crt_list_import2(&list, &n, &d, GNUTLS_X509_FMT_PEM, 0);
    if (g < 0)
        return failf(l, at, "%s: not PEM certificates: %s", key, gnutls_strerror(g));
    if (n && not_after) /* the first is the server's own, the rest its chain */
        *not_after = (int64_t)gnutls_x509_crt_get_expiration_time(list[0]);
    for (unsigned i = 0; i < n; i++)
        gnutls_x509_crt_deinit(list[i]);
    gnutls_free(list);
    return n ? 0 : failf(l, at, "%s: no certificate found", key);
}

/* A PEM given inline (`base`) or by file (`base`_file, key k): either one
 * of them once, into *dst. */
static int load_pem(struct loader *l, const yaml_node_t *kn, const yaml_node_t *v, const char *full,
                    const char *base, char **dst)
{
    const char *k = scalar(kn), *s;
    int rc;
    if (*dst)
        return failf(l, kn, "%s: give %s or %s_file, not both", full, base, base);
    if ((rc = want_string(l, full, v, &s)) != 0)
        return rc;
    if (strcmp(k, base) != 0) /* the _file form */
        return read_file(l, v, full, s, dst);
    return (*dst = strdup(s)) ? 0 : -ENOMEM;
}

static int load_tls(struct loader *l, const yaml_node_t *map, struct web_config *wc)
{
    int rc = check_mapping(l, "tls_server_config", map);
    if (rc)
        return rc;
    const yaml_node_t *cert_at = NULL, *key_at = NULL, *ca_at = NULL, *auth_at = NULL;
    int min_v = 2, max_v = 3; /* Go's defaults for a server: TLS 1.2 .. 1.3 */
    const yaml_node_t *min_at = NULL;
    bool server_order = true;
    FOR_PAIRS(&l->doc, map, p)
    {
        const yaml_node_t *kn = yaml_document_get_node(&l->doc, p->key);
        const yaml_node_t *v = yaml_document_get_node(&l->doc, p->value);
        const char *k = scalar(kn), *s;
        char full[64];
        if (!k) /* check_mapping saw to it */
            return -EINVAL;
        snprintf(full, sizeof(full), "tls_server_config.%s", k);
        if (is_null(v))
            continue;
        if (strcmp(k, "cert_file") == 0 || strcmp(k, "cert") == 0) {
            if ((rc = load_pem(l, kn, v, full, "cert", &wc->cert_pem)) != 0)
                return rc;
            cert_at = v;
        } else if (strcmp(k, "key_file") == 0 || strcmp(k, "key") == 0) {
            if ((rc = load_pem(l, kn, v, full, "key", &wc->key_pem)) != 0)
                return rc;
            key_at = v;
        } else if (strcmp(k, "client_ca_file") == 0 || strcmp(k, "client_ca") == 0) {
            if ((rc = load_pem(l, kn, v, full, "client_ca", &wc->ca_pem)) != 0)
                return rc;
            ca_at = v;
        } else if (strcmp(k, "client_auth_type") == 0) {
            if ((rc = want_string(l, full, v, &s)) != 0)
                return rc;
            size_t i = 0;
            while (i < 5 && strcmp(s, client_auth_names[i]) != 0)
                i++;
            if (i == 5)
                return failf(l, v,
                             "%s: must be one of NoClientCert, RequestClientCert, "
                             "RequireAnyClientCert, VerifyClientCertIfGiven, "
                             "RequireAndVerifyClientCert",
                             full);
            wc->client_auth = (enum web_client_auth)i;
            auth_at = v;
        } else if (strcmp(k, "min_version") == 0) {
            if ((rc = tls_version(l, full, v, &min_v)) != 0)
                return rc;
            min_at = v;
        } else if (strcmp(k, "max_version") == 0) {
            if ((rc = tls_version(l, full, v, &max_v)) != 0)
                return rc;
        } else if (strcmp(k, "prefer_server_cipher_suites") == 0) {
            if ((rc = want_bool(l, full, v, &server_order)) != 0)
                return rc;
        } else if (strcmp(k, "cipher_suites") == 0 || strcmp(k, "curve_preferences") == 0 ||
                   strcmp(k, "client_allowed_sans") == 0) {
            return failf(l, kn,
                         "%s: not supported by ai-finops-exporter (GnuTLS negotiates from its "
                         "secure default set); remove the key",
                         full);
        } else {
            return failf(l, kn,
                         "%s: unknown key; allowed: cert_file, key_file, cert, key, "
                         "client_auth_type, client_ca_file, client_ca, min_version, max_version, "
                         "prefer_server_cipher_suites",
                         full);
        }
    }
    if (!wc->cert_pem && !wc->key_pem && !ca_at && !auth_at)
        return 0; /* an empty section: no TLS, as in the toolkit */
    if (!wc->cert_pem)
        return failf(l, map, "tls_server_config: cert_file (or cert) is required");
    if (!wc->key_pem)
        return failf(l, map, "tls_server_config: key_file (or key) is required");
    if (min_v > max_v)
        return failf(l, min_at ? min_at : map, "tls_server_config.min_version: above max_version");
    bool verifies = wc->client_auth == WEB_VERIFY_CLIENT_CERT_IF_GIVEN ||
                    wc->client_auth == WEB_REQUIRE_AND_VERIFY_CLIENT_CERT;
    if (verifies && !wc->ca_pem)
        return failf(l, auth_at, "tls_server_config.client_auth_type: %s needs client_ca_file",
                     client_auth_names[wc->client_auth]);
    if (wc->ca_pem && wc->client_auth == WEB_NO_CLIENT_CERT)
        return failf(l, ca_at,
                     "tls_server_config.client_ca_file: set without a client_auth_type that "
                     "uses it (VerifyClientCertIfGiven or RequireAndVerifyClientCert)");
    if (wc->ca_pem && !verifies)
        return failf(l, ca_at,
                     "tls_server_config.client_ca_file: %s does not verify; use "
                     "VerifyClientCertIfGiven or RequireAndVerifyClientCert",
                     client_auth_names[wc->client_auth]);

    /* What GnuTLS will be given, checked now: each PEM on its own first
     * (GnuTLS 3.7.9's credential loaders leak on a malformed PEM, found by
     * fuzz_web_config), then the pair together. */
    if ((rc = check_certs(l, cert_at, "tls_server_config.cert_file", wc->cert_pem,
                          &wc->not_after)) != 0 ||
        (wc->ca_pem &&
         (rc = check_certs(l, ca_at, "tls_server_config.client_ca_file", wc->ca_pem, NULL)) != 0))
        return rc;
    gnutls_x509_privkey_t pk;
    if (gnutls_x509_privkey_init(&pk) != GNUTLS_E_SUCCESS)
        return -ENOMEM;
    gnutls_datum_t kd = {(unsigned char *)wc->key_pem, (unsigned)strlen(wc->key_pem)};
    int kr = gnutls_x509_privkey_import2(pk, &kd, GNUTLS_X509_FMT_PEM, NULL, 0);
    gnutls_x509_privkey_deinit(pk);
    if (kr < 0)
        return failf(l, key_at, "tls_server_config.key_file: not a usable PEM private key: %s",
                     gnutls_strerror(kr));
    /* The credentials checked here are the ones served: a reload installs
     * exactly what it validated (a half-rotated cert/key pair fails here). */
    gnutls_certificate_credentials_t cred;
    if (gnutls_certificate_allocate_credentials(&cred) != GNUTLS_E_SUCCESS)
        return -ENOMEM;
    gnutls_datum_t c = {(unsigned char *)wc->cert_pem, (unsigned)strlen(wc->cert_pem)};
    gnutls_datum_t k = {(unsigned char *)wc->key_pem, (unsigned)strlen(wc->key_pem)};
    int g = gnutls_certificate_set_x509_key_mem2(cred, &c, &k, GNUTLS_X509_FMT_PEM, NULL, 0);
    if (g < 0) {
        gnutls_certificate_free_credentials(cred);
        /* The key's bytes are never quoted: only GnuTLS's reason. */
        return failf(l, g == GNUTLS_E_CERTIFICATE_KEY_MISMATCH ? key_at : cert_at,
                     "tls_server_config: cannot use the certificate and key: %s",
                     gnutls_strerror(g));
    }
    if (wc->ca_pem) {
        gnutls_datum_t ca = {(unsigned char *)wc->ca_pem, (unsigned)strlen(wc->ca_pem)};
        g = gnutls_certificate_set_x509_trust_mem(cred, &ca, GNUTLS_X509_FMT_PEM);
        if (g <= 0) {
            gnutls_certificate_free_credentials(cred);
            return failf(l, ca_at, "tls_server_config.client_ca_file: no CA certificate: %s",
                         g < 0 ? gnutls_strerror(g) : "no PEM certificate found");
        }
    }
    wc->cred = cred;
    int n = snprintf(wc->priorities, sizeof(wc->priorities), "NORMAL:-VERS-ALL");
    for (int v = max_v; v >= min_v; v--)
        n += snprintf(wc->priorities + n, sizeof(wc->priorities) - (size_t)n, ":+%s",
                      tls_versions[v].gnutls);
    if (server_order)
        snprintf(wc->priorities + n, sizeof(wc->priorities) - (size_t)n, ":%%SERVER_PRECEDENCE");
    gnutls_priority_t prio;
    const char *errpos = NULL;
    g = gnutls_priority_init(&prio, wc->priorities, &errpos);
    if (g < 0)
        return failf(l, min_at ? min_at : map,
                     "tls_server_config: this GnuTLS refuses the TLS versions: %s",
                     gnutls_strerror(g));
    wc->prio = prio;
    wc->tls = true;
    return 0;
}

/* bcrypt as crypt(3) writes it: $2a$/$2b$/$2y$, a two-digit cost 04-31,
 * then 53 characters of the bcrypt base64 alphabet. */
static bool bcrypt_hash_shape(const char *h)
{
    if (strlen(h) != 60 || h[0] != '$' || h[1] != '2' || !strchr("aby", h[2]) || h[3] != '$' ||
        h[6] != '$')
        return false;
    int cost = (h[4] - '0') * 10 + (h[5] - '0');
    if (h[4] < '0' || h[4] > '9' || h[5] < '0' || h[5] > '9' || cost < 4 || cost > 31)
        return false;
    static const char alphabet[] =
        "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    return strspn(h + 7, alphabet) == 53;
}

static int load_users(struct loader *l, const yaml_node_t *map, struct web_config *wc)
{
    int rc = check_mapping(l, "basic_auth_users", map);
    if (rc)
        return rc;
    size_t n = (size_t)(map->data.mapping.pairs.top - map->data.mapping.pairs.start);
    if (n > USERS_MAX)
        return failf(l, map, "basic_auth_users: more than %d users", USERS_MAX);
    wc->users = calloc(n ? n : 1, sizeof(*wc->users));
    if (!wc->users)
        return -ENOMEM;
    FOR_PAIRS(&l->doc, map, p)
    {
        const yaml_node_t *kn = yaml_document_get_node(&l->doc, p->key);
        const yaml_node_t *v = yaml_document_get_node(&l->doc, p->value);
        const char *user = scalar(kn), *hash;
        if (!user) /* check_mapping saw to it */
            return -EINVAL;
        if (!*user || strchr(user, ':') || strlen(user) != kn->data.scalar.length)
            return failf(l, kn, "basic_auth_users: a user name must be non-empty, without ':'");
        if (scalar(v) == NULL || is_null(v))
            return failf(l, v, "basic_auth_users.%s: must be a bcrypt hash", user);
        if ((rc = want_string(l, "basic_auth_users", v, &hash)) != 0)
            return rc;
        /* The value is a secret: say what is wrong, never quote it. */
        if (!bcrypt_hash_shape(hash))
            return failf(l, v,
                         "basic_auth_users.%s: not a bcrypt hash ($2a$, $2b$ or $2y$, cost 04-31, "
                         "60 characters; make one with htpasswd -nBC 10 USER)",
                         user);
        struct web_user *u = &wc->users[wc->nusers];
        u->name = strdup(user);
        u->hash = strdup(hash);
        if (!u->name || !u->hash) {
            free(u->name);
            free(u->hash);
            return -ENOMEM;
        }
        wc->nusers++;
    }
    return 0;
}

/* The toolkit's allowed headers (it refuses others too). */
static const char *const allowed_headers[] = {"Strict-Transport-Security", "X-Content-Type-Options",
                                              "X-Frame-Options", "X-XSS-Protection",
                                              "Content-Security-Policy"};

static int load_http(struct loader *l, const yaml_node_t *map, struct web_config *wc)
{
    int rc = check_mapping(l, "http_server_config", map);
    if (rc)
        return rc;
    FOR_PAIRS(&l->doc, map, p)
    {
        const yaml_node_t *kn = yaml_document_get_node(&l->doc, p->key);
        const yaml_node_t *v = yaml_document_get_node(&l->doc, p->value);
        const char *k = scalar(kn);
        if (!k)
            return -EINVAL;
        if (strcmp(k, "http2") == 0) {
            bool b; /* accepted for compatibility: this server speaks HTTP/1.1 only */
            if (!is_null(v) && (rc = want_bool(l, "http_server_config.http2", v, &b)) != 0)
                return rc;
        } else if (strcmp(k, "headers") == 0) {
            if (is_null(v))
                continue;
            if ((rc = check_mapping(l, "http_server_config.headers", v)) != 0)
                return rc;
            FOR_PAIRS(&l->doc, v, h)
            {
                const yaml_node_t *hk = yaml_document_get_node(&l->doc, h->key);
                const yaml_node_t *hv = yaml_document_get_node(&l->doc, h->value);
                const char *name = scalar(hk), *value;
                size_t i = 0;
                if (!name)
                    return -EINVAL;
                while (i < 5 && strcasecmp(name, allowed_headers[i]) != 0)
                    i++;
                if (i == 5)
                    return failf(l, hk,
                                 "http_server_config.headers.%s: not allowed; allowed: "
                                 "Strict-Transport-Security, X-Content-Type-Options, "
                                 "X-Frame-Options, X-XSS-Protection, Content-Security-Policy",
                                 name);
                if ((rc = want_string(l, "http_server_config.headers", hv, &value)) != 0)
                    return rc;
                if (strpbrk(value, "\r\n"))
                    return failf(l, hv, "http_server_config.headers.%s: must be one line", name);
                if (wc->nheaders == HEADERS_MAX)
                    return failf(l, hk, "http_server_config.headers: too many");
                wc->header_names[wc->nheaders] = strdup(allowed_headers[i]);
                wc->header_values[wc->nheaders] = strdup(value);
                wc->nheaders++;
                if (!wc->header_names[wc->nheaders - 1] || !wc->header_values[wc->nheaders - 1])
                    return -ENOMEM;
            }
        } else {
            return failf(l, kn, "http_server_config.%s: unknown key; allowed: http2, headers", k);
        }
    }
    return 0;
}

static void web_config_free(struct web_config *wc)
{
    if (!wc)
        return;
    free(wc->cert_pem);
    if (wc->key_pem) {
        explicit_bzero(wc->key_pem, strlen(wc->key_pem));
        free(wc->key_pem);
    }
    free(wc->ca_pem);
    /* Last reference gone: no session uses these any more (a connection
     * holds its config until MHD has deinitialized its session). */
    if (wc->cred)
        gnutls_certificate_free_credentials(wc->cred);
    if (wc->prio)
        gnutls_priority_deinit(wc->prio);
    for (size_t i = 0; i < wc->nfiles; i++)
        free(wc->files[i]);
    for (size_t i = 0; i < wc->nusers; i++) {
        free(wc->users[i].name);
        free(wc->users[i].hash);
    }
    free(wc->users);
    for (size_t i = 0; i < wc->nheaders; i++) {
        free(wc->header_names[i]);
        free(wc->header_values[i]);
    }
    pthread_mutex_destroy(&wc->cache_lock);
    explicit_bzero(wc, sizeof(*wc));
    free(wc);
}

int web_config_parse(const char *text, size_t len, const char *name, const char *base_dir,
                     struct web_config **out, char *errbuf, size_t errlen)
{
    struct loader l = {.name = name, .base_dir = base_dir, .err = errbuf, .errlen = errlen};
    yaml_parser_t parser;
    int rc = 0;
    *out = NULL;
    if (errlen)
        errbuf[0] = '\0';
    if (!yaml_parser_initialize(&parser))
        return -ENOMEM;
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &l.doc)) {
        snprintf(errbuf, errlen, "%s:%zu:%zu: invalid YAML: %s", name, parser.problem_mark.line + 1,
                 parser.problem_mark.column + 1, parser.problem ? parser.problem : "error");
        yaml_parser_delete(&parser);
        return -EINVAL;
    }
    yaml_parser_delete(&parser);
    struct web_config *wc = calloc(1, sizeof(*wc));
    if (!wc) {
        yaml_document_delete(&l.doc);
        return -ENOMEM;
    }
    atomic_init(&wc->refs, 1);
    pthread_mutex_init(&wc->cache_lock, NULL);
    l.wc = wc;
    yaml_node_t *root = yaml_document_get_root_node(&l.doc);
    /* An empty file would turn access control off: a half-written file
     * during a reload must not do that. */
    if (!root || is_null(root)) {
        snprintf(errbuf, errlen,
                 "%s:1:1: empty web config: give tls_server_config and/or basic_auth_users "
                 "(or drop --web.config.file)",
                 name);
        rc = -EINVAL;
        goto out;
    }
    if ((rc = check_mapping(&l, "web config", root)) != 0)
        goto out;
    FOR_PAIRS(&l.doc, root, p)
    {
        const yaml_node_t *kn = yaml_document_get_node(&l.doc, p->key);
        const yaml_node_t *v = yaml_document_get_node(&l.doc, p->value);
        const char *k = scalar(kn);
        if (!k) {
            rc = -EINVAL;
            goto out;
        }
        if (strcmp(k, "tls_server_config") == 0)
            rc = is_null(v) ? 0 : load_tls(&l, v, wc);
        else if (strcmp(k, "basic_auth_users") == 0)
            rc = is_null(v) ? 0 : load_users(&l, v, wc);
        else if (strcmp(k, "http_server_config") == 0)
            rc = is_null(v) ? 0 : load_http(&l, v, wc);
        else if (strcmp(k, "rate_limit") == 0)
            rc = failf(&l, kn,
                       "rate_limit: not supported by ai-finops-exporter (its HTTP limits "
                       "are web.max_connections and friends); remove the key");
        else
            rc = failf(&l, kn,
                       "%s: unknown key; allowed: tls_server_config, basic_auth_users, "
                       "http_server_config",
                       k);
        if (rc)
            goto out;
    }
    if (gnutls_rnd(GNUTLS_RND_NONCE, wc->secret, sizeof(wc->secret)) != 0) {
        snprintf(errbuf, errlen, "%s: no random bytes for the credential cache", name);
        rc = -EIO;
        goto out;
    }
out:
    yaml_document_delete(&l.doc);
    if (rc) {
        if (rc == -ENOMEM && errlen && !errbuf[0])
            snprintf(errbuf, errlen, "%s: out of memory", name);
        web_config_free(wc);
        return rc;
    }
    *out = wc;
    return 0;
}

int web_config_load(const char *path, struct web_config **out, char *errbuf, size_t errlen)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(errbuf, errlen, "%s: cannot open the web config: %s", path, strerror(errno));
        return -errno;
    }
    char *buf = malloc(PEM_MAX_BYTES + 1);
    if (!buf) {
        fclose(f);
        return -ENOMEM;
    }
    size_t n = fread(buf, 1, PEM_MAX_BYTES + 1, f);
    int rerr = ferror(f);
    fclose(f);
    if (rerr || n > PEM_MAX_BYTES) {
        snprintf(errbuf, errlen, "%s: %s", path,
                 rerr ? "read error (a directory?)" : "larger than 1 MiB: not a web config");
        free(buf);
        return -EINVAL;
    }
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        dir[0] = '\0'; /* relative to the working directory */
    int rc = web_config_parse(buf, n, path, dir, out, errbuf, errlen);
    free(buf);
    return rc;
}

/* ---- accessors -------------------------------------------------------------- */

struct web_config *web_config_ref(struct web_config *wc)
{
    if (wc)
        atomic_fetch_add_explicit(&wc->refs, 1, memory_order_relaxed);
    return wc;
}

void web_config_unref(struct web_config *wc)
{
    /* acq_rel: the last holder must see every other holder's cache writes
     * before it frees. */
    if (wc && atomic_fetch_sub_explicit(&wc->refs, 1, memory_order_acq_rel) == 1)
        web_config_free(wc);
}

bool web_config_tls(const struct web_config *wc)
{
    return wc && wc->tls;
}
const char *web_config_cert_pem(const struct web_config *wc)
{
    return web_config_tls(wc) ? wc->cert_pem : NULL;
}
const char *web_config_key_pem(const struct web_config *wc)
{
    return web_config_tls(wc) ? wc->key_pem : NULL;
}
const char *web_config_client_ca_pem(const struct web_config *wc)
{
    return web_config_tls(wc) ? wc->ca_pem : NULL;
}
const char *web_config_tls_priorities(const struct web_config *wc)
{
    return web_config_tls(wc) ? wc->priorities : NULL;
}
enum web_client_auth web_config_client_auth(const struct web_config *wc)
{
    return web_config_tls(wc) ? wc->client_auth : WEB_NO_CLIENT_CERT;
}

static bool same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

int64_t web_config_cert_not_after(const struct web_config *wc)
{
    return web_config_tls(wc) ? wc->not_after : 0;
}

size_t web_config_file_count(const struct web_config *wc)
{
    return wc ? wc->nfiles : 0;
}

const char *web_config_file(const struct web_config *wc, size_t i)
{
    return wc && i < wc->nfiles ? wc->files[i] : NULL;
}

int web_config_tls_apply(const struct web_config *wc, gnutls_session_t session)
{
    static const gnutls_certificate_request_t request[] = {
        [WEB_NO_CLIENT_CERT] = GNUTLS_CERT_IGNORE,
        [WEB_REQUEST_CLIENT_CERT] = GNUTLS_CERT_REQUEST,
        [WEB_REQUIRE_ANY_CLIENT_CERT] = GNUTLS_CERT_REQUIRE,
        [WEB_VERIFY_CLIENT_CERT_IF_GIVEN] = GNUTLS_CERT_REQUEST,
        [WEB_REQUIRE_AND_VERIFY_CLIENT_CERT] = GNUTLS_CERT_REQUIRE,
    };
    if (!web_config_tls(wc))
        return GNUTLS_E_INVALID_REQUEST;
    /* Both replace what the session had (MHD sets its startup ones when it
     * creates the session); GnuTLS keeps a pointer to cred (the caller's
     * reference keeps it alive) and a reference of its own to prio. */
    int g = gnutls_credentials_set(session, GNUTLS_CRD_CERTIFICATE, wc->cred);
    if (g == GNUTLS_E_SUCCESS)
        g = gnutls_priority_set(session, wc->prio);
    if (g != GNUTLS_E_SUCCESS)
        return g;
    gnutls_certificate_server_set_request(session, request[wc->client_auth]);
    if (wc->client_auth == WEB_VERIFY_CLIENT_CERT_IF_GIVEN ||
        wc->client_auth == WEB_REQUIRE_AND_VERIFY_CLIENT_CERT)
        gnutls_session_set_verify_cert(session, NULL, 0);
    return GNUTLS_E_SUCCESS;
}

bool web_config_tls_equal(const struct web_config *a, const struct web_config *b)
{
    if (web_config_tls(a) != web_config_tls(b))
        return false;
    if (!web_config_tls(a))
        return true;
    return same_str(a->cert_pem, b->cert_pem) && same_str(a->key_pem, b->key_pem) &&
           same_str(a->ca_pem, b->ca_pem) && strcmp(a->priorities, b->priorities) == 0 &&
           a->client_auth == b->client_auth;
}

size_t web_config_user_count(const struct web_config *wc)
{
    return wc ? wc->nusers : 0;
}
size_t web_config_header_count(const struct web_config *wc)
{
    return wc ? wc->nheaders : 0;
}
void web_config_header(const struct web_config *wc, size_t i, const char **name, const char **value)
{
    *name = wc->header_names[i];
    *value = wc->header_values[i];
}

/* ---- basic auth ------------------------------------------------------------- */

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Strict RFC 4648 base64 (padding required); returns the length or -1. */
static long b64_decode(const char *in, size_t len, unsigned char *out, size_t cap)
{
    if (len % 4)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        int v[4];
        int pad = 0;
        for (int j = 0; j < 4; j++) {
            if (in[i + j] == '=' && i + 4 == len && j >= 2) {
                v[j] = 0;
                pad++;
            } else if (pad || (v[j] = b64_value((unsigned char)in[i + j])) < 0) {
                return -1;
            }
        }
        uint32_t w =
            (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        if (o + 3 > cap)
            return -1;
        out[o++] = (unsigned char)(w >> 16);
        if (pad < 2)
            out[o++] = (unsigned char)(w >> 8);
        if (pad < 1)
            out[o++] = (unsigned char)w;
    }
    return (long)o;
}

static bool ct_equal(const unsigned char *a, const unsigned char *b, size_t n)
{
    unsigned char d = 0;
    for (size_t i = 0; i < n; i++)
        d |= a[i] ^ b[i];
    return d == 0;
}

unsigned long web_config_bcrypt_runs(void)
{
    return atomic_load_explicit(&bcrypt_runs, memory_order_relaxed);
}

enum web_auth web_config_authorize(struct web_config *wc, const char *authorization)
{
    if (!wc || wc->nusers == 0)
        return WEB_AUTH_OK;
    if (!authorization)
        return WEB_AUTH_MISSING;
    while (*authorization == ' ')
        authorization++;
    if (strncasecmp(authorization, "Basic ", 6) != 0)
        return WEB_AUTH_MISSING;
    const char *b64 = authorization + 6;
    while (*b64 == ' ')
        b64++;
    size_t blen = strlen(b64);
    while (blen && b64[blen - 1] == ' ')
        blen--;
    unsigned char dec[AUTH_MAX_BYTES + 1];
    if (blen > AUTH_MAX_BYTES * 4 / 3)
        return WEB_AUTH_WRONG;
    long dlen = b64_decode(b64, blen, dec, AUTH_MAX_BYTES);
    if (dlen < 0)
        return WEB_AUTH_MISSING;
    dec[dlen] = '\0';
    unsigned char *colon = memchr(dec, ':', (size_t)dlen);
    if (!colon || memchr(dec, '\0', (size_t)dlen)) {
        explicit_bzero(dec, sizeof(dec));
        return WEB_AUTH_MISSING;
    }
    *colon = '\0';
    const char *user = (const char *)dec, *password = (const char *)colon + 1;
    const struct web_user *u = NULL;
    for (size_t i = 0; i < wc->nusers; i++)
        if (strcmp(wc->users[i].name, user) == 0)
            u = &wc->users[i];
    /* The cache key: user NUL password (the colon became the NUL). */
    unsigned char key[32];
    enum web_auth result = WEB_AUTH_WRONG;
    bool keyed = u && gnutls_hmac_fast(GNUTLS_MAC_SHA256, wc->secret, sizeof(wc->secret), dec,
                                       (size_t)dlen, key) == 0;
    if (keyed) {
        pthread_mutex_lock(&wc->cache_lock);
        for (int i = 0; i < CACHE_SLOTS; i++)
            if (wc->cache_used[i] && ct_equal(wc->cache[i], key, 32))
                result = WEB_AUTH_OK;
        pthread_mutex_unlock(&wc->cache_lock);
        if (result == WEB_AUTH_OK)
            goto out;
    }
    /* bcrypt, one at a time. An unknown user is checked against the first
     * user's hash anyway, so the answer's timing does not say which users
     * exist. */
    bool idle = false;
    if (!atomic_compare_exchange_strong(&bcrypt_running, &idle, true)) {
        result = WEB_AUTH_BUSY;
        goto out;
    }
    atomic_fetch_add_explicit(&bcrypt_runs, 1, memory_order_relaxed);
    struct crypt_data *cd = calloc(1, sizeof(*cd));
    if (cd) {
        const char *setting = u ? u->hash : wc->users[0].hash;
        const char *h = crypt_r(password, setting, cd);
        if (u && h && strlen(h) == strlen(setting) &&
            ct_equal((const unsigned char *)h, (const unsigned char *)setting, strlen(setting)))
            result = WEB_AUTH_OK;
        explicit_bzero(cd, sizeof(*cd));
        free(cd);
    }
    atomic_store(&bcrypt_running, false);
    if (result == WEB_AUTH_OK && keyed) {
        pthread_mutex_lock(&wc->cache_lock);
        memcpy(wc->cache[wc->cache_next], key, 32);
        wc->cache_used[wc->cache_next] = true;
        wc->cache_next = (wc->cache_next + 1) % CACHE_SLOTS;
        pthread_mutex_unlock(&wc->cache_lock);
    }
out:
    explicit_bzero(dec, sizeof(dec));
    explicit_bzero(key, sizeof(key));
    return result;
}

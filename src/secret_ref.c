/*
 * secret_ref.c - `${env:NAME}` expansion in Kafka property values and the
 * redaction of secrets in messages (see secret_ref.h).
 *
 * The expansion happens once per config load, off the hot path; messages
 * name the property key and the variable, which are not secret, and never
 * quote a value, which may be.
 */
#define _GNU_SOURCE
#include "secret_ref.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool name_start(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static bool name_char(char c)
{
    return name_start(c) || (c >= '0' && c <= '9');
}

int secret_ref_expand(const char *key, const char *value, char **out, char *errbuf, size_t errlen)
{
    size_t cap = strlen(value) + 1, len = 0;
    char *buf = malloc(cap);
    int expanded = 0;

    *out = NULL;
    if (!buf)
        goto nomem;
    for (const char *p = value; *p;) {
        const char *piece = p;
        size_t n = 1;
        if (p[0] == '$' && p[1] == '$' && p[2] == '{') {
            /* `$${` escapes a literal `${` */
            piece = p + 1;
            n = 2;
            p += 3;
        } else if (p[0] == '$' && p[1] == '{' && strncmp(p + 2, "env:", 4) == 0) {
            const char *name = p + 6, *end = name;
            while (name_char(*end))
                end++;
            if (end == name || !name_start(*name) || *end != '}') {
                snprintf(errbuf, errlen,
                         "kafka property '%s': malformed reference at character %zu of its "
                         "value; write ${env:NAME} with NAME of letters, digits and '_' not "
                         "starting with a digit, or $${ for a literal ${",
                         key, (size_t)(p - value) + 1);
                free(buf);
                return -EINVAL;
            }
            char name_copy[256];
            if ((size_t)(end - name) >= sizeof name_copy) {
                snprintf(errbuf, errlen,
                         "kafka property '%s': environment variable name longer than %zu "
                         "characters",
                         key, sizeof name_copy - 1);
                free(buf);
                return -EINVAL;
            }
            memcpy(name_copy, name, (size_t)(end - name));
            name_copy[end - name] = '\0';
            piece = getenv(name_copy);
            if (!piece) {
                snprintf(errbuf, errlen,
                         "kafka property '%s' refers to the environment variable %s, which is "
                         "not set",
                         key, name_copy);
                free(buf);
                return -ENOENT;
            }
            n = strlen(piece);
            p = end + 1;
            expanded = 1;
        } else {
            p++;
        }
        if (len + n + 1 > cap) {
            size_t want = (len + n + 1) * 2;
            char *grown = realloc(buf, want);
            if (!grown) {
                explicit_bzero(buf, len);
                free(buf);
                goto nomem;
            }
            buf = grown;
            cap = want;
        }
        memcpy(buf + len, piece, n);
        len += n;
    }
    buf[len] = '\0';
    *out = buf;
    return expanded;
nomem:
    snprintf(errbuf, errlen, "kafka property '%s': out of memory", key);
    return -ENOMEM;
}

bool secret_ref_sensitive_key(const char *key)
{
    static const char *const suffixes[] = {"password", "secret", ".pem", ".key", NULL};
    size_t n = strlen(key);
    if (strcmp(key, "sasl.jaas.config") == 0 || strcmp(key, "sasl.oauthbearer.config") == 0)
        return true;
    for (size_t i = 0; suffixes[i]; i++) {
        size_t m = strlen(suffixes[i]);
        if (n >= m && strcmp(key + n - m, suffixes[i]) == 0)
            return true;
    }
    return false;
}

void secret_ref_redact(char *msg, const char *secret)
{
    size_t n = strlen(secret), r = n < 3 ? n : 3;
    char *at = msg, *hit;
    if (n == 0)
        return;
    /* the search resumes after each replacement: a secret of '*' ends */
    while ((hit = strstr(at, secret)) != NULL) {
        memcpy(hit, "***", r);
        if (n > r)
            memmove(hit + r, hit + n, strlen(hit + n) + 1);
        at = hit + r;
    }
}

/*
 * secret_ref.h - `${env:NAME}` references in Kafka property values, so that
 * credentials come from the environment (a Kubernetes Secret through
 * secretKeyRef) rather than from the config file, and the redaction that
 * keeps the expanded values out of every message.
 *
 * Thread-safety: no shared state; secret_ref_expand reads the environment,
 * so call it where nothing calls setenv (the main thread at start and on
 * SIGHUP).
 */
#ifndef AI_FINOPS_SECRET_REF_H
#define AI_FINOPS_SECRET_REF_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Replaces each `${env:NAME}` in value (NAME: [A-Za-z_][A-Za-z0-9_]*) by the
 * variable's value; `$${` stands for a literal `${`; any other text is kept.
 * On success *out is a new string (caller frees) and the result is 0 (1 when
 * at least one reference was expanded). On error *out is NULL, the result is
 * negative and errbuf says which variable is unset or where the reference is
 * malformed, quoting `key` but never a value: -ENOENT for an unset variable,
 * -EINVAL for a malformed reference, -ENOMEM.
 */
int secret_ref_expand(const char *key, const char *value, char **out, char *errbuf, size_t errlen);

/* True when the property holds a credential by its name (librdkafka's
 * sensitive properties: *.password, *.secret, ssl.key.pem, ...). */
bool secret_ref_sensitive_key(const char *key);

/*
 * Overwrites every occurrence of `secret` in msg (NUL-terminated, edited in
 * place) by "***", shortening msg; does nothing for an empty secret. Used on
 * librdkafka's error strings, which may quote a value they reject.
 */
void secret_ref_redact(char *msg, const char *secret);

#endif

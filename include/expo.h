/*
 * expo.h - Prometheus text format 0.0.4 and OpenMetrics 1.0.0 writing
 * primitives: family headers, escaped label sets, exact values.
 *
 * Label values are escaped (backslash, double quote, newline) here; callers
 * guarantee they are valid UTF-8 (the decoder checks every label value).
 * Thread-safety: pure functions over a caller-owned dynbuf.
 */
#ifndef AI_FINOPS_EXPO_H
#define AI_FINOPS_EXPO_H

#include <stdint.h>

#include "counter_table.h"
#include "dynbuf.h"

enum expo_format { EXPO_TEXT, EXPO_OPENMETRICS };

#define EXPO_TEXT_CONTENT_TYPE        "text/plain; version=0.0.4; charset=utf-8"
#define EXPO_OPENMETRICS_CONTENT_TYPE "application/openmetrics-text; version=1.0.0; charset=utf-8"

/* Chooses the format from an Accept header value (NULL: text). */
enum expo_format expo_negotiate(const char *accept);

/*
 * Writes HELP and TYPE. `base` is the family name without the _total suffix
 * for counters (OpenMetrics names the family by it; text format names it
 * with _total). type: "counter", "gauge" or "info".
 */
void expo_family(struct dynbuf *b, enum expo_format fmt, const char *base, const char *type,
                 const char *help);

/* Writes {n0="v0",n1="v1"} (nothing when n == 0). */
void expo_labels(struct dynbuf *b, const char *const *names, const struct label_value *values,
                 size_t n);
void expo_escape_label_value(struct dynbuf *b, const char *s, size_t len);

/* " <value>\n" with value an exact decimal of nano-units, or an integer. */
void expo_value_nanos(struct dynbuf *b, uint64_t nanos);
void expo_value_u64(struct dynbuf *b, uint64_t value);
void expo_value_double(struct dynbuf *b, double value);
/* " <seconds.millis>\n" for OpenMetrics _created samples. */
void expo_value_epoch_ms(struct dynbuf *b, int64_t epoch_ms);

/* "# EOF\n" for OpenMetrics; nothing for text. */
void expo_finish(struct dynbuf *b, enum expo_format fmt);

#endif

/*
 * expo.c - exposition format primitives (see expo.h).
 *
 * Values are written from integers (money_format / format_u64), never via
 * printf("%g"), so a scrape shows exactly the nano-units that were added.
 * Escaping scans for the three special bytes and copies runs between them,
 * since almost every label value has none.
 * Thread-safety: pure functions over a caller-owned buffer.
 */
#include "expo.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "money.h"

enum expo_format expo_negotiate(const char *accept)
{
    /* Prometheus sends "application/openmetrics-text;version=1.0.0,...;q=0.5"
     * first when it prefers OpenMetrics; a q=0 entry is an explicit refusal. */
    if (!accept)
        return EXPO_TEXT;
    const char *p = strstr(accept, "application/openmetrics-text");
    if (!p)
        return EXPO_TEXT;
    const char *end = strchr(p, ',');
    const char *q = strstr(p, "q=");
    if (q && (!end || q < end)) {
        double weight = 1.0;
        if (sscanf(q + 2, "%lf", &weight) == 1 && weight <= 0.0)
            return EXPO_TEXT;
    }
    return EXPO_OPENMETRICS;
}

static void escape_help(struct dynbuf *b, const char *s, enum expo_format fmt)
{
    for (; *s; s++) {
        if (*s == '\\')
            dynbuf_append(b, "\\\\", 2);
        else if (*s == '\n')
            dynbuf_append(b, "\\n", 2);
        else if (*s == '"' && fmt == EXPO_OPENMETRICS)
            dynbuf_append(b, "\\\"", 2);
        else
            dynbuf_append_char(b, *s);
    }
}

void expo_family(struct dynbuf *b, enum expo_format fmt, const char *base, const char *type,
                 const char *help)
{
    bool counter = strcmp(type, "counter") == 0;
    bool info = strcmp(type, "info") == 0;
    const char *suffix = "";
    if (fmt == EXPO_TEXT && counter)
        suffix = "_total";
    else if (fmt == EXPO_TEXT && info)
        suffix = "_info";
    const char *shown_type = (fmt == EXPO_TEXT && info) ? "gauge" : type;
    dynbuf_printf(b, "# HELP %s%s ", base, suffix);
    escape_help(b, help, fmt);
    dynbuf_printf(b, "\n# TYPE %s%s %s\n", base, suffix, shown_type);
}

void expo_escape_label_value(struct dynbuf *b, const char *s, size_t len)
{
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        const char *rep;
        switch (s[i]) {
        case '\\':
            rep = "\\\\";
            break;
        case '"':
            rep = "\\\"";
            break;
        case '\n':
            rep = "\\n";
            break;
        default:
            continue;
        }
        dynbuf_append(b, s + start, i - start);
        dynbuf_append(b, rep, 2);
        start = i + 1;
    }
    dynbuf_append(b, s + start, len - start);
}

void expo_labels(struct dynbuf *b, const char *const *names, const struct label_value *values,
                 size_t n)
{
    if (n == 0)
        return;
    dynbuf_append_char(b, '{');
    for (size_t i = 0; i < n; i++) {
        if (i)
            dynbuf_append_char(b, ',');
        dynbuf_append_str(b, names[i]);
        dynbuf_append(b, "=\"", 2);
        expo_escape_label_value(b, values[i].ptr, values[i].len);
        dynbuf_append_char(b, '"');
    }
    dynbuf_append_char(b, '}');
}

void expo_value_nanos(struct dynbuf *b, uint64_t nanos)
{
    char text[MONEY_FORMAT_MAX + 2];
    text[0] = ' ';
    size_t n = 1 + money_format(nanos, text + 1);
    text[n++] = '\n';
    dynbuf_append(b, text, n);
}

void expo_value_u64(struct dynbuf *b, uint64_t value)
{
    char text[24];
    text[0] = ' ';
    size_t n = 1 + format_u64(value, text + 1);
    text[n++] = '\n';
    dynbuf_append(b, text, n);
}

void expo_value_double(struct dynbuf *b, double value)
{
    dynbuf_printf(b, " %.17g\n", value);
}

void expo_value_epoch_ms(struct dynbuf *b, int64_t epoch_ms)
{
    if (epoch_ms < 0)
        epoch_ms = 0;
    dynbuf_printf(b, " %" PRId64 ".%03d\n", epoch_ms / 1000, (int)(epoch_ms % 1000));
}

void expo_finish(struct dynbuf *b, enum expo_format fmt)
{
    if (fmt == EXPO_OPENMETRICS)
        dynbuf_append(b, "# EOF\n", 6);
}

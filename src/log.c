/*
 * log.c - logfmt / JSON log lines on stderr (see log.h).
 *
 * A line is built in a local buffer and written with one fwrite under a
 * mutex, so lines from different threads never interleave.
 * Thread-safety: thread-safe; log_setup is called once by main first.
 */
#include "log.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <stdatomic.h>
#include <time.h>

#include "dynbuf.h"

/* Atomic: SIGHUP changes them while other threads log (relaxed: a line
 * written just around a reload may use either setting). */
static _Atomic int min_level = LOG_LEVEL_INFO;
static _Atomic int line_format = LOG_FORMAT_LOGFMT;
static pthread_mutex_t write_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_setup(enum log_level level, enum log_format format)
{
    atomic_store_explicit(&min_level, (int)level, memory_order_relaxed);
    atomic_store_explicit(&line_format, (int)format, memory_order_relaxed);
}

static void append_quoted(struct dynbuf *b, const char *s, bool json)
{
    dynbuf_append_char(b, '"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            dynbuf_append_char(b, '\\');
            dynbuf_append_char(b, (char)c);
        } else if (c == '\n') {
            dynbuf_append(b, "\\n", 2);
        } else if (c < 0x20) {
            if (json)
                dynbuf_printf(b, "\\u%04x", c);
            else
                dynbuf_printf(b, "\\x%02x", c);
        } else {
            dynbuf_append_char(b, (char)c);
        }
    }
    dynbuf_append_char(b, '"');
}

static bool needs_quotes(const char *s)
{
    if (!*s)
        return true;
    for (; *s; s++)
        if (*s <= ' ' || *s == '"' || *s == '=' || *s == '\\')
            return true;
    return false;
}

/* The format of the line being built, read once per line. */
static _Thread_local bool line_json;

static void append_pair(struct dynbuf *b, const char *key, const char *value, bool first)
{
    if (first)
        line_json = atomic_load_explicit(&line_format, memory_order_relaxed) == LOG_FORMAT_JSON;
    if (line_json) {
        dynbuf_append_str(b, first ? "{" : ",");
        append_quoted(b, key, true);
        dynbuf_append_char(b, ':');
        append_quoted(b, value, true);
        return;
    }
    if (!first)
        dynbuf_append_char(b, ' ');
    dynbuf_append_str(b, key);
    dynbuf_append_char(b, '=');
    if (needs_quotes(value))
        append_quoted(b, value, false);
    else
        dynbuf_append_str(b, value);
}

void log_write(enum log_level level, const char *msg, ...)
{
    if ((int)level < atomic_load_explicit(&min_level, memory_order_relaxed))
        return;
    struct timespec ts;
    struct tm tm;
    char when[40];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + n, sizeof(when) - n, ".%03ldZ", ts.tv_nsec / 1000000);

    struct dynbuf b;
    dynbuf_init(&b, 64 * 1024);
    append_pair(&b, "ts", when, true);
    append_pair(&b, "level", level_names[level], false);
    append_pair(&b, "msg", msg, false);
    va_list ap;
    va_start(ap, msg);
    for (;;) {
        const char *key = va_arg(ap, const char *);
        if (!key)
            break;
        const char *value = va_arg(ap, const char *);
        append_pair(&b, key, value ? value : "", false);
    }
    va_end(ap);
    dynbuf_append_str(&b, line_json ? "}\n" : "\n");
    if (!b.error) {
        pthread_mutex_lock(&write_lock);
        fwrite(b.data, 1, b.len, stderr);
        fflush(stderr);
        pthread_mutex_unlock(&write_lock);
    }
    dynbuf_free(&b);
}

/*
 * dynbuf.c - growable byte buffer with a hard cap (see dynbuf.h).
 *
 * Growth doubles so a render of N bytes costs O(N) copies; the cap stops a
 * runaway render from taking the process's memory.
 * Thread-safety: none; one owner at a time.
 */
#include "dynbuf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void dynbuf_init(struct dynbuf *b, size_t max)
{
    memset(b, 0, sizeof(*b));
    b->max = max;
}

void dynbuf_free(struct dynbuf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->error = 0;
}

void dynbuf_reset(struct dynbuf *b)
{
    b->len = 0;
    b->error = 0;
}

int dynbuf_reserve(struct dynbuf *b, size_t extra)
{
    if (b->error)
        return b->error;
    if (extra > b->max || b->len > b->max - extra) {
        b->error = -ENOMEM;
        return b->error;
    }
    size_t need = b->len + extra + 1; /* +1 keeps room for a terminating NUL */
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    char *data = realloc(b->data, cap);
    if (!data) {
        b->error = -ENOMEM;
        return b->error;
    }
    b->data = data;
    b->cap = cap;
    return 0;
}

int dynbuf_append(struct dynbuf *b, const void *data, size_t len)
{
    if (len == 0)
        return b->error; /* data may be NULL then, which memcpy must not see */
    int rc = dynbuf_reserve(b, len);
    if (rc)
        return rc;
    memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

int dynbuf_append_str(struct dynbuf *b, const char *s)
{
    return dynbuf_append(b, s, strlen(s));
}

int dynbuf_append_char(struct dynbuf *b, char c)
{
    return dynbuf_append(b, &c, 1);
}

int dynbuf_printf(struct dynbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->error = -EINVAL;
        return b->error;
    }
    if ((size_t)n < sizeof(small))
        return dynbuf_append(b, small, (size_t)n);
    int rc = dynbuf_reserve(b, (size_t)n);
    if (rc)
        return rc;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

char *dynbuf_take(struct dynbuf *b, size_t *len)
{
    char *data = b->data;
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return data;
}

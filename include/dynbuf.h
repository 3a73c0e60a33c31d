/*
 * dynbuf.h - a growable byte buffer with a hard size cap.
 *
 * Every append reports failure (-ENOMEM past the cap or on allocation
 * failure) and a failed buffer stays failed, so a long render can append
 * freely and check once at the end.
 *
 * Thread-safety: none; a dynbuf belongs to one thread at a time.
 */
#ifndef AI_FINOPS_DYNBUF_H
#define AI_FINOPS_DYNBUF_H

#include <stddef.h>
#include <stdint.h>

struct dynbuf {
    char *data;
    size_t len;
    size_t cap; /* allocated bytes */
    size_t max; /* hard cap on len */
    int error;  /* first error seen, 0 if none */
};

void dynbuf_init(struct dynbuf *b, size_t max);
void dynbuf_free(struct dynbuf *b);
void dynbuf_reset(struct dynbuf *b); /* len = 0, error cleared, memory kept */
int dynbuf_reserve(struct dynbuf *b, size_t extra);
int dynbuf_append(struct dynbuf *b, const void *data, size_t len);
int dynbuf_append_str(struct dynbuf *b, const char *s);
int dynbuf_append_char(struct dynbuf *b, char c);
int dynbuf_printf(struct dynbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Hands the bytes to the caller (caller frees); the buffer is left empty. */
char *dynbuf_take(struct dynbuf *b, size_t *len);

#endif

/*
 * claim.c - the text form of a commit claim (see commit_claim.h).
 *
 * The decoder takes bytes from the broker, written by whoever shares the
 * group id, so it checks every field and its order and bounds every
 * number; anything else is "not a claim" and the reader falls back to the
 * plain committed offset.
 * Thread-safety: no shared state; called by worker 0 (decoding at
 * assignment) and by whichever thread plans a commit (encoding).
 */
#include "commit_claim.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define PREFIX     "aife1;"
#define PREFIX_LEN (sizeof(PREFIX) - 1)
#define HASH_CHARS 11 /* 64 bits in base64url, the top 2 bits of the first char zero */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static size_t decimal_len(int64_t v)
{
    size_t n = 1;
    while (v >= 10) {
        v /= 10;
        n++;
    }
    return n;
}

size_t commit_claim_encoded_len(const int64_t *dead_letters, size_t dead_letter_count,
                                const struct claim_segment *segments, size_t segment_count)
{
    /* aife1;u=N;s=HHHHHHHHHHHHHHHH;d=...;h=...[;u=N;h=...]... */
    size_t len = PREFIX_LEN + 1 + 2 + 16 + 1 + 2;
    for (size_t i = 0; i < dead_letter_count; i++)
        len += (i ? 1 : 0) + decimal_len(dead_letters[i]);
    for (size_t i = 0; i < segment_count; i++)
        len += (i ? 1 : 0) + 2 + decimal_len(segments[i].upto) + 1 + 2 +
               segments[i].held_count * COMMIT_CLAIM_ENTRY_LEN;
    return len;
}

static char *put_decimal(char *p, int64_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

static char *put_entries(char *p, const struct claim_segment *seg)
{
    for (size_t i = 0; i < seg->held_count; i++) {
        *p++ = (char)('0' + seg->held[i].family);
        for (int shift = 60; shift >= 0; shift -= 6)
            *p++ = b64[(seg->held[i].hash >> shift) & 0x3f];
    }
    return p;
}

int commit_claim_encode(const struct commit_claim *c, char *buf, size_t cap)
{
    if (c->segment_count == 0 || c->segment_count > COMMIT_CLAIM_MAX_SEGMENTS)
        return -EINVAL;
    for (size_t i = 0; i < c->dead_letter_count; i++)
        if (c->dead_letters[i] < 0 || (i && c->dead_letters[i] <= c->dead_letters[i - 1]))
            return -EINVAL;
    for (size_t k = 0; k < c->segment_count; k++) {
        const struct claim_segment *seg = &c->segments[k];
        if (seg->upto < 0 || (k && seg->upto <= c->segments[k - 1].upto))
            return -EINVAL;
        for (size_t i = 0; i < seg->held_count; i++)
            if (seg->held[i].family > 9)
                return -EINVAL;
    }
    size_t len = commit_claim_encoded_len(c->dead_letters, c->dead_letter_count, c->segments,
                                          c->segment_count);
    if (len > cap)
        return -ENOSPC;
    char *p = buf;
    memcpy(p, PREFIX "u=", PREFIX_LEN + 2);
    p = put_decimal(p + PREFIX_LEN + 2, c->segments[0].upto);
    memcpy(p, ";s=", 3);
    p += 3;
    for (int shift = 60; shift >= 0; shift -= 4)
        *p++ = "0123456789abcdef"[(c->schema >> shift) & 0xf];
    memcpy(p, ";d=", 3);
    p += 3;
    for (size_t i = 0; i < c->dead_letter_count; i++) {
        if (i)
            *p++ = ',';
        p = put_decimal(p, c->dead_letters[i]);
    }
    memcpy(p, ";h=", 3);
    p = put_entries(p + 3, &c->segments[0]);
    for (size_t k = 1; k < c->segment_count; k++) {
        memcpy(p, ";u=", 3);
        p = put_decimal(p + 3, c->segments[k].upto);
        memcpy(p, ";h=", 3);
        p = put_entries(p + 3, &c->segments[k]);
    }
    return (int)(p - buf);
}

/* A cursor over the metadata bytes; every read is bounded by end. */
struct reader {
    const char *p, *end;
};

static bool expect(struct reader *r, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, lit, n) != 0)
        return false;
    r->p += n;
    return true;
}

/* A non-negative decimal without leading zeros, at most INT64_MAX. */
static bool read_decimal(struct reader *r, int64_t *out)
{
    if (r->p == r->end || *r->p < '0' || *r->p > '9')
        return false;
    if (*r->p == '0' && r->p + 1 < r->end && r->p[1] >= '0' && r->p[1] <= '9')
        return false;
    int64_t v = 0;
    while (r->p < r->end && *r->p >= '0' && *r->p <= '9') {
        int d = *r->p++ - '0';
        if (v > (INT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

static int b64_value(char ch)
{
    const char *at = ch ? strchr(b64, ch) : NULL;
    return at ? (int)(at - b64) : -1;
}

static int compare_series(const void *a, const void *b)
{
    const struct claim_series *x = a, *y = b;
    if (x->family != y->family)
        return x->family < y->family ? -1 : 1;
    return x->hash < y->hash ? -1 : x->hash > y->hash;
}

/* Held entries up to the next ';' or the end, sorted. Returns 0, or -1
 * with *rc set. */
static int read_entries(struct reader *r, struct claim_segment *seg, int *rc)
{
    const char *stop = memchr(r->p, ';', (size_t)(r->end - r->p));
    size_t rest = (size_t)((stop ? stop : r->end) - r->p);
    if (rest % COMMIT_CLAIM_ENTRY_LEN) {
        *rc = -EINVAL;
        return -1;
    }
    size_t n = rest / COMMIT_CLAIM_ENTRY_LEN;
    if (n && !(seg->held = malloc(n * sizeof(*seg->held)))) {
        *rc = -ENOMEM;
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (*r->p < '0' || *r->p > '9') {
            *rc = -EINVAL;
            return -1;
        }
        seg->held[i].family = (uint8_t)(*r->p++ - '0');
        uint64_t h = 0;
        for (int k = 0; k < HASH_CHARS; k++) {
            int v = b64_value(*r->p++);
            if (v < 0 || (k == 0 && v > 0xf)) {
                *rc = -EINVAL;
                return -1;
            }
            h = h << 6 | (uint64_t)v;
        }
        seg->held[i].hash = h;
        seg->held_count = i + 1;
    }
    if (n)
        qsort(seg->held, n, sizeof(*seg->held), compare_series);
    return 0;
}

int commit_claim_decode(const char *text, size_t len, struct commit_claim *out)
{
    memset(out, 0, sizeof(*out));
    struct reader r = {text, text + len};
    if (!text || !expect(&r, PREFIX))
        return -ENOENT;
    int rc = -EINVAL;
    if (!expect(&r, "u=") || !read_decimal(&r, &out->upto) || !expect(&r, ";s="))
        goto fail;
    for (int i = 0; i < 16; i++, r.p++) {
        if (r.p == r.end)
            goto fail;
        const char *hex = "0123456789abcdef";
        const char *at = *r.p ? strchr(hex, *r.p) : NULL;
        if (!at)
            goto fail;
        out->schema = out->schema << 4 | (uint64_t)(at - hex);
    }
    if (!expect(&r, ";d="))
        goto fail;
    /* Each offset takes at least two bytes with its comma: a bound for the
     * array that needs no second pass. */
    size_t max_letters = (size_t)(r.end - r.p) / 2 + 1;
    if (r.p < r.end && *r.p != ';') {
        out->dead_letters = malloc(max_letters * sizeof(int64_t));
        if (!out->dead_letters) {
            rc = -ENOMEM;
            goto fail;
        }
        do {
            int64_t v;
            if (!read_decimal(&r, &v) ||
                (out->dead_letter_count && v <= out->dead_letters[out->dead_letter_count - 1]))
                goto fail;
            out->dead_letters[out->dead_letter_count++] = v;
        } while (expect(&r, ","));
    }
    out->segments = calloc(COMMIT_CLAIM_MAX_SEGMENTS, sizeof(*out->segments));
    if (!out->segments) {
        rc = -ENOMEM;
        goto fail;
    }
    out->segments[0].upto = out->upto;
    for (;;) {
        struct claim_segment *seg = &out->segments[out->segment_count++];
        if (!expect(&r, ";h=") || read_entries(&r, seg, &rc))
            goto fail;
        out->upto = seg->upto;
        if (r.p == r.end)
            break;
        if (out->segment_count == COMMIT_CLAIM_MAX_SEGMENTS || !expect(&r, ";u=") ||
            !read_decimal(&r, &out->segments[out->segment_count].upto) ||
            out->segments[out->segment_count].upto <= seg->upto)
            goto fail;
    }
    return 0;
fail:
    commit_claim_clear(out);
    return rc;
}

void commit_claim_clear(struct commit_claim *c)
{
    for (size_t i = 0; c->segments && i < COMMIT_CLAIM_MAX_SEGMENTS; i++)
        free(c->segments[i].held);
    free(c->segments);
    free(c->dead_letters);
    memset(c, 0, sizeof(*c));
}

const struct claim_segment *commit_claim_segment(const struct commit_claim *c, int64_t offset)
{
    for (size_t i = 0; i < c->segment_count; i++)
        if (offset < c->segments[i].upto)
            return &c->segments[i];
    return NULL;
}

bool claim_segment_holds(const struct claim_segment *s, unsigned family, uint64_t hash)
{
    struct claim_series key = {(uint8_t)family, hash};
    return s->held_count && family <= 9 &&
           bsearch(&key, s->held, s->held_count, sizeof(key), compare_series) != NULL;
}

bool commit_claim_holds(const struct commit_claim *c, int64_t offset, unsigned family,
                        uint64_t hash)
{
    const struct claim_segment *s = commit_claim_segment(c, offset);
    return s && claim_segment_holds(s, family, hash);
}

static int compare_offset(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

bool commit_claim_dead_letter(const struct commit_claim *c, int64_t offset)
{
    return c->dead_letter_count && bsearch(&offset, c->dead_letters, c->dead_letter_count,
                                           sizeof(offset), compare_offset) != NULL;
}

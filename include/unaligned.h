/*
 * unaligned.h - loads of 4 or 8 bytes from any address, in host byte
 * order, for the word-at-a-time scans of the hot path (the JSON decoder,
 * the series label compare).
 *
 * Thread-safety: pure functions.
 */
#ifndef AI_FINOPS_UNALIGNED_H
#define AI_FINOPS_UNALIGNED_H

#include <stdint.h>
#include <string.h>

static inline uint64_t load64(const char *p)
{
    uint64_t w;
    memcpy(&w, p, sizeof(w)); /* unaligned-safe; compiles to one load */
    return w;
}

static inline uint32_t load32(const char *p)
{
    uint32_t w;
    memcpy(&w, p, sizeof(w));
    return w;
}

#endif

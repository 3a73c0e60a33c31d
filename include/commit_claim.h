/*
 * commit_claim.h - what a Kafka offset commit tells the partition's next
 * owner beyond the offset itself, carried in the commit's metadata string.
 *
 * The committed offset C says "every event below C was seen by scrapes".
 * A claim adds: of the events in [C, upto), scrapes also saw every
 * increment except those to the held series (shown for the first time, as
 * 0, so increase() has not counted them yet), and the listed dead letters
 * were not acknowledged. A process that re-reads [C, upto) after a crash
 * then adds each event only to the held series and re-sends only the
 * listed dead letters, so no dollar is counted twice or lost.
 *
 * Text form (ASCII, fits Kafka's offset.metadata.max.bytes when planned
 * with commit_claim_encoded_len):
 *   aife1;u=<upto>;s=<schema, 16 hex>;d=<offset>,<offset>;h=<entries>
 * each held entry is 12 characters: the family digit, then the 64-bit
 * series hash in 11 base64url characters.
 *
 * Thread-safety: plain data; a decoded claim is read-only and may be read
 * by any thread.
 */
#ifndef AI_FINOPS_COMMIT_CLAIM_H
#define AI_FINOPS_COMMIT_CLAIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define COMMIT_CLAIM_ENTRY_LEN 12

struct claim_series {
    uint8_t family; /* enum metric_family, 0-9 */
    uint64_t hash;  /* counter_table_hash */
};

struct commit_claim {
    int64_t upto;    /* the claim covers offsets below this */
    uint64_t schema; /* metrics_schema_hash of the process that wrote it */
    struct claim_series *held;
    size_t held_count;
    int64_t *dead_letters; /* offsets, ascending */
    size_t dead_letter_count;
};

/*
 * The exact length of the text for these parts (held entries are fixed
 * width), so a caller can choose how many fit before encoding.
 */
size_t commit_claim_encoded_len(int64_t upto, const int64_t *dead_letters, size_t dead_letter_count,
                                size_t held_count);

/* Writes the text (not NUL-terminated) into buf. Returns its length, or
 * -ENOSPC when cap is too small, -EINVAL for a family above 9 or a negative
 * offset. held need not be sorted. */
int commit_claim_encode(const struct commit_claim *c, char *buf, size_t cap);

/*
 * Parses text from a commit's metadata (outside input: strict, bounded,
 * never reads past len). Returns 0 and fills *out (sorted held entries,
 * caller frees with commit_claim_clear), -ENOENT for text that is not a
 * claim (empty metadata or another client's), -EINVAL for a malformed one,
 * -ENOMEM.
 */
int commit_claim_decode(const char *text, size_t len, struct commit_claim *out);

void commit_claim_clear(struct commit_claim *c);

/* Is (family, hash) a held series? Binary search; decoded claims only. */
bool commit_claim_holds(const struct commit_claim *c, unsigned family, uint64_t hash);

/* Was the dead letter of this offset unacknowledged? */
bool commit_claim_dead_letter(const struct commit_claim *c, int64_t offset);

#endif

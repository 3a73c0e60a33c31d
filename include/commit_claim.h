/*
 * commit_claim.h - what a Kafka offset commit tells the partition's next
 * owner beyond the offset itself, carried in the commit's metadata string.
 *
 * The committed offset C says "every event below C was seen by scrapes".
 * A claim adds, for consecutive segments [C, upto1), [upto1, upto2), ...:
 * of the events in a segment, scrapes also saw every increment except
 * those to the segment's held series (shown for the first time, as 0, so
 * increase() has not counted them yet), and the listed dead letters were
 * not acknowledged. A process that re-reads [C, last upto) after a crash
 * then adds each event only to its segment's held series and re-sends
 * only the listed dead letters, so no dollar is counted twice or lost.
 * Several segments arise when a process still inside its predecessor's
 * claim commits: the predecessor's segments (narrowed), then its own.
 *
 * Text form (ASCII, fits Kafka's offset.metadata.max.bytes when planned
 * with commit_claim_encoded_len):
 *   aife1;u=<upto1>;s=<schema, 16 hex>;d=<offset>,...;h=<entries>[;u=<upto2>;h=<entries>]...
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

#define COMMIT_CLAIM_ENTRY_LEN    12
#define COMMIT_CLAIM_MAX_SEGMENTS 16

struct claim_series {
    uint8_t family; /* enum metric_family, 0-9 */
    uint64_t hash;  /* counter_table_hash */
};

struct claim_segment {
    int64_t upto; /* the segment ends below this; ascending over segments */
    struct claim_series *held;
    size_t held_count;
};

struct commit_claim {
    int64_t upto;    /* the claim covers offsets below this: the last segment's */
    uint64_t schema; /* metrics_schema_hash of the process that wrote it */
    struct claim_segment *segments;
    size_t segment_count;
    int64_t *dead_letters; /* offsets, ascending */
    size_t dead_letter_count;
};

/*
 * The exact length of the text for these parts (held entries are fixed
 * width), so a caller can choose how many fit before encoding.
 */
size_t commit_claim_encoded_len(const int64_t *dead_letters, size_t dead_letter_count,
                                const struct claim_segment *segments, size_t segment_count);

/* Writes the text (not NUL-terminated) into buf. Returns its length, or
 * -ENOSPC when cap is too small, -EINVAL for a family above 9, a negative
 * offset, no segment or more than COMMIT_CLAIM_MAX_SEGMENTS, or offsets not
 * ascending. Held entries need not be sorted. (c->upto is not read.) */
int commit_claim_encode(const struct commit_claim *c, char *buf, size_t cap);

/*
 * Parses text from a commit's metadata (outside input: strict, bounded,
 * never reads past len). Returns 0 and fills *out (each segment's held
 * entries sorted, caller frees with commit_claim_clear), -ENOENT for text
 * that is not a claim (empty metadata or another client's), -EINVAL for a
 * malformed one, -ENOMEM.
 */
int commit_claim_decode(const char *text, size_t len, struct commit_claim *out);

void commit_claim_clear(struct commit_claim *c);

/* The segment that covers offset, or NULL past the claim. */
const struct claim_segment *commit_claim_segment(const struct commit_claim *c, int64_t offset);

/* Is (family, hash) held in the segment that covers offset? False past the
 * claim. Binary search; decoded claims only. */
bool commit_claim_holds(const struct commit_claim *c, int64_t offset, unsigned family,
                        uint64_t hash);

/* Is (family, hash) in this decoded segment? */
bool claim_segment_holds(const struct claim_segment *s, unsigned family, uint64_t hash);

/* Was the dead letter of this offset unacknowledged? */
bool commit_claim_dead_letter(const struct commit_claim *c, int64_t offset);

#endif

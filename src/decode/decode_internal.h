/*
 * decode_internal.h - what the decoders of src/decode/ share: the decoder
 * struct, the strict JSON scanners of event.c (strings, numbers, decimal
 * amounts, timestamps, labels) and the token tree of mapping.c.
 *
 * event.c keeps its scanners static inline for the cost event's single
 * pass; the non-inline decode_* wrappers here give the other decoders the
 * very same rules (strict RFC 8259, UTF-8, depth, sizes), so every kind is
 * exactly as strict as a cost event.
 *
 * Thread-safety: as event.h: a decoder and its arenas belong to one thread.
 */
#ifndef AI_FINOPS_DECODE_INTERNAL_H
#define AI_FINOPS_DECODE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event.h"
#include "event_kinds.h"

/* One JSON value of a parsed message, in document order. */
enum jtok_type { JT_OBJECT, JT_ARRAY, JT_STRING, JT_NUMBER, JT_TRUE, JT_FALSE, JT_NULL };

#define JT_HIGH  1u /* a string with a raw byte >= 0x80: UTF-8 checked later */
#define JT_NUL   2u /* a string holding U+0000 */
#define JT_LABEL 4u /* read as a label value: its UTF-8 error is invalid_label */

struct jtok {
    const char *ptr; /* string: unescaped text; number: its text; key: see below */
    uint32_t len;
    uint32_t end;  /* index just past this value and everything inside it */
    uint8_t type;  /* enum jtok_type */
    uint8_t flags; /* JT_* */
};
/* An object's members follow it as (key string, value) pairs; an array's
 * elements follow it; tok[i].end skips a whole value. */

struct json_doc {
    struct jtok *tok;
    size_t count, cap;
    uint32_t *open; /* indexes of the containers open while parsing */
    size_t grows;   /* allocations of tok so far (tests: none once warm) */
};

struct field_mapping;

struct event_decoder {
    struct event_limits limits;
    size_t unattributed_len;
    size_t extra_len[EVENT_MAX_EXTRA_LABELS];
    char *scratch;           /* unescaped strings of the current event */
    uint8_t *nest;           /* container kind ('[' or '{') per depth while skipping */
    long max_depth;          /* limits.max_depth, widened once */
    int64_t future_bound_ms; /* wall clock at the last reading + max_future_ms */
    struct json_doc doc;     /* the token tree of the kinds' decoders (mapping.c) */
    /* Our field names as mappings ("/field"), for the kinds without a
     * single-pass decoder of their own; compiled at creation. */
    struct field_mapping *native[EVENT_KIND_COUNT];
};

/* The scanners' state over one text (event.c). */
struct parser {
    const char *end;
    char *scratch;
    size_t used; /* scratch bytes holding strings the event keeps */
    uint8_t *nest;
    long max_depth;
};

struct jstr {
    const char *ptr;
    size_t len;
    bool high;    /* has a raw byte >= 0x80: needs a UTF-8 check as a label */
    bool nul;     /* contains U+0000 (from "\u0000") */
    bool escaped; /* ptr is in the scratch */
};

/* A number's text: value = [-] int_p frac_p * 10^(exp - n_frac). */
struct jnum {
    const char *int_p;
    const char *frac_p;
    size_t n_int;
    size_t n_frac;
    uint64_t digits; /* int_p frac_p as an integer, if n_int + n_frac <= 19 */
    int64_t exp;
    bool neg;
};

/* event.c's scanners. decode_string: after the opening quote at *pp. */
enum reject_reason decode_string(struct parser *ps, const char **pp, struct jstr *s);
enum reject_reason decode_number(struct parser *ps, const char **pp, struct jnum *n);
/* |n| x 10^scale rounded half away from zero; -ERANGE above max. */
int decode_fixed(const struct jnum *n, int scale, uint64_t max, uint64_t *out, bool *exact,
                 bool *nonzero);
bool decode_timestamp_in_window(struct event_decoder *d, int64_t ms);
/* A label value's rules: length, U+0000, UTF-8, the overflow value. */
enum reject_reason decode_check_label(const struct event_decoder *d, const char *s, size_t len,
                                      bool high, bool nul);
/* The reason of a text found invalid (too_deep or invalid_json, as event.c). */
enum reject_reason decode_syntax_reason(const struct event_decoder *d, const char *buf, size_t len);
/* The reason of a valid value followed by more bytes. */
enum reject_reason decode_trailing_reason(const struct event_decoder *d, const char *buf,
                                          size_t len);
/* gpu_count x duration and the defaults, as event_decode ends. */
enum reject_reason decode_event_finish(const struct event_decoder *d, struct event *ev,
                                       bool has_count, bool has_duration);

/* mapping.c: the decoder's kind state, made by event_decoder_new. */
int decode_kinds_init(struct event_decoder *d);
void decode_kinds_free(struct event_decoder *d);

/* A resolved field of a kind (mapping.c fills one per field of the kind). */
struct fval {
    bool present;
    struct label_value str; /* labels, text, currency */
    uint64_t u;             /* unsigned numbers at the field's scale */
    int64_t s;              /* signed amounts (nano-units) */
    int64_t ms;             /* timestamps: ms since the epoch */
    uint64_t ns;            /* timestamps: ns since the epoch */
    uint32_t tok;           /* objects: the token index */
};

/*
 * Parses buf into d->doc and resolves every field of the mapping's kind
 * into vals[] (indexed as the kind's field table, mapping.c). Returns the
 * syntax reason, else the first field error in field order, else
 * REJECT_NONE. Fields' strings stay valid until the next decode.
 */
enum reject_reason decode_mapped_fields(struct event_decoder *d, const struct field_mapping *m,
                                        const char *buf, size_t len, struct fval *vals);
/* The string of an object's member named key (for Tags, labels): -1 absent
 * (or null), -2 twice, -3 not a string; else the token index. */
long decode_member_string(struct event_decoder *d, uint32_t obj, const char *key, size_t len);

/* Field indexes per kind (the order of the tables in mapping.c). */
enum cost_field {
    CF_TEAM,
    CF_PROJECT,
    CF_SOURCE,
    CF_PROVIDER,
    CF_MODEL,
    CF_INSTANCE_TYPE,
    CF_GPU_TYPE,
    CF_COST,
    CF_INPUT_TOKENS,
    CF_CACHED_INPUT_TOKENS,
    CF_CACHE_WRITE_TOKENS,
    CF_OUTPUT_TOKENS,
    CF_GPU_COUNT,
    CF_DURATION,
    CF_TIMESTAMP,
    CF_EVENT_ID,
    CF_REQUEST_ID,
    CF_LABELS,
    CF_COUNT
};
enum gpu_field {
    GF_TIMESTAMP,
    GF_INTERVAL,
    GF_NODE,
    GF_GPU,
    GF_GPU_TYPE,
    GF_INSTANCE_TYPE,
    GF_TEAM,
    GF_PROJECT,
    GF_NAMESPACE,
    GF_POD,
    GF_UTILIZATION,
    GF_UTILIZATION_PERCENT,
    GF_MEMORY_BYTES,
    GF_MEMORY_MIB,
    GF_COUNT
};
enum focus_field {
    FF_BILLED_COST,
    FF_EFFECTIVE_COST,
    FF_CURRENCY,
    FF_CHARGE_CATEGORY,
    FF_SERVICE,
    FF_PROVIDER,
    FF_SUB_ACCOUNT,
    FF_RESOURCE_ID,
    FF_PERIOD_START,
    FF_TAGS,
    FF_COUNT
};
#define KIND_MAX_FIELDS CF_COUNT

#endif

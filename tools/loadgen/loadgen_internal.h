/*
 * loadgen_internal.h - what loadgen.c (cost events, totals, the CLI's
 * library) and loadgen_kinds.c (GPU samples, FOCUS rows, provider shapes)
 * share: the PRNG and the kinds generator's entry points. Not for callers
 * outside tools/loadgen. Thread-safety: as loadgen.h (one thread).
 */
#ifndef AI_FINOPS_LOADGEN_INTERNAL_H
#define AI_FINOPS_LOADGEN_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "loadgen.h"

/* xoshiro256** seeded by splitmix64 */
struct rng {
    uint64_t s[4];
};

static inline uint64_t lg_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline void rng_seed(struct rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = lg_splitmix64(&seed);
}

static inline uint64_t lg_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static inline uint64_t rng_next(struct rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = lg_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = lg_rotl(s[3], 45);
    return result;
}

/* Uniform in [0, n): Lemire's multiply-high; the bias (< n / 2^64) is far
 * below anything a load generator could show. */
static inline uint64_t rng_below(struct rng *r, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)rng_next(r) * n) >> 64);
}

static inline uint64_t rng_range(struct rng *r, uint64_t lo, uint64_t hi)
{
    return lo + rng_below(r, hi - lo + 1);
}

#define LG_P53 9007199254740992.0 /* 2^53 */

/* A probability as a threshold on 53 random bits: 1.0 always passes. */
static inline uint64_t chance_threshold(double p)
{
    if (p <= 0)
        return 0;
    if (p >= 1)
        return (uint64_t)LG_P53;
    return (uint64_t)(p * LG_P53);
}

static inline bool rng_chance(struct rng *r, uint64_t threshold)
{
    return (rng_next(r) >> 11) < threshold;
}

/* ---- loadgen_kinds.c: GPU samples, FOCUS rows, OpenAI/Anthropic shapes ---- */

struct lg_kinds;

/* Builds the fleet / billing accounts from the generator's catalogue (a
 * fixed structure seed: same series for every --seed). 0, -EINVAL with a
 * message, or -ENOMEM. */
int lg_kinds_new(const struct loadgen *g, const struct price_table *prices,
                 const struct loadgen_options *opt, struct lg_kinds **out, char *errbuf,
                 size_t errlen);
void lg_kinds_free(struct lg_kinds *k);
/* Writes the next message of the kind (or an openai/anthropic-shaped cost
 * event) into buf and fills ev (data, len, key, bad_kind, contrib). */
void lg_kinds_next(struct lg_kinds *k, int64_t timestamp_ms, char *buf, struct loadgen_event *ev);
size_t lg_kinds_defect_count(const struct lg_kinds *k);
const char *lg_kinds_defect_name(const struct lg_kinds *k, size_t i);
enum reject_reason lg_kinds_defect_reason(const struct lg_kinds *k, size_t i);
size_t lg_kinds_gpu_count(const struct lg_kinds *k);
const char *lg_kinds_gpu_node(const struct lg_kinds *k, size_t i);
const char *lg_kinds_gpu_id(const struct lg_kinds *k, size_t i);

/* The kinds' share of the totals: GPU marks and series, FOCUS series. */
struct lg_kinds_totals;
struct lg_kinds_totals *lg_kinds_totals_new(const struct lg_kinds *k);
void lg_kinds_totals_free(struct lg_kinds_totals *t);
void lg_kinds_totals_add(struct lg_kinds_totals *t, const struct loadgen_contrib *c);
uint64_t lg_kinds_totals_deduplicated(const struct lg_kinds_totals *t);
/* Adds the kinds' arrays to root; false on allocation failure. */
bool lg_kinds_totals_json(const struct lg_kinds_totals *t, cJSON *root);
/* loadgen.c's exact-integer JSON helpers. */
bool lg_json_add_u64(cJSON *obj, const char *name, uint64_t v);
bool lg_json_add_series(cJSON *array, const char *const *names, const char *const *values, size_t n,
                        uint64_t value);

#endif

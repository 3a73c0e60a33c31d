/*
 * pricing.h - prices usage that arrives without a cost: LLM/API tokens by
 * kind and GPU-seconds by instance type, from YAML price tables (the
 * bundled tables in data/prices, then an operator's file that overrides or
 * extends them).
 *
 * Arithmetic is integer throughout: prices are kept as nano-dollars per
 * million tokens / per instance-hour; a cost is computed in 128-bit
 * integers and rounded once, to the nearest nano-dollar with ties rounded
 * up (away from zero), as docs/events.md states.
 *
 * Thread-safety: a price_table is immutable once loaded; any thread may
 * price with it concurrently.
 */
#ifndef AI_FINOPS_PRICING_H
#define AI_FINOPS_PRICING_H

#include <stddef.h>
#include <stdint.h>

#include "counter_table.h"
#include "dynbuf.h"
#include "event.h"
#include "expo.h"

#define PRICE_NONE (-1) /* a kind this model has no price for */

struct llm_price {
    char *provider;
    char *model;
    int64_t per_million_nanos[TOKEN_KIND_COUNT]; /* PRICE_NONE when absent */
    char *as_of;
    char *source;
};

struct gpu_price {
    char *cloud;
    char *region;
    char *instance_type;
    char *gpu_type;
    uint32_t gpus;
    uint64_t per_hour_nanos; /* whole instance, on demand */
    char *as_of;
    char *source;
};

/* A per-GPU price by GPU model, for GPUs not bought as a cloud instance
 * type (on-prem, reserved capacity): configured in pricing.file. */
struct gpu_type_price {
    char *gpu_type;
    uint64_t per_gpu_hour_nanos;
    char *as_of;
    char *source;
};

struct price_table;

/*
 * Loads the files in order; an entry of a later file replaces an earlier
 * one with the same provider+model, instance_type or gpu_type. Each file
 * may hold `models:`, `instances:` and `gpu_types:` lists. Returns 0, or -EINVAL
 * with "path:line:col: message" in errbuf, or -errno if unreadable.
 */
int price_table_load(struct price_table **out, const char *const *paths, size_t count, char *errbuf,
                     size_t errlen);
void price_table_free(struct price_table *table);

/* The bundled tables' directory: the FINOPS_PRICES_DIR environment
 * variable if set, else price_table_locate_dir for this executable
 * (/proc/self/exe). Thread-safe (resolved once). */
const char *price_table_bundled_dir(void);

/* Where a program at exe_path finds the bundled tables: an installed
 * prefix's share/ai-finops-exporter/prices (beside the program's bin/) when
 * it holds a readable llm.yaml, written into buf; else the compiled-in
 * source-tree directory (returned as a constant, buf unused). */
const char *price_table_locate_dir(const char *exe_path, char *buf, size_t len);

/*
 * Cost of tokens[kind] for provider/model. Returns 0, or -ENOENT when the
 * model is unknown or a kind with tokens > 0 has no price.
 */
int price_table_llm_cost(const struct price_table *table, struct label_value provider,
                         struct label_value model, const uint64_t tokens[TOKEN_KIND_COUNT],
                         uint64_t *cost_nanos);

/*
 * Cost of gpu_count GPUs for duration_nanos (1e-9 s) on instance_type, at
 * the instance's per-GPU share of its hourly price. Returns 0 or -ENOENT.
 */
int price_table_gpu_cost(const struct price_table *table, struct label_value instance_type,
                         uint64_t gpu_count, uint64_t duration_nanos, uint64_t *cost_nanos);

/*
 * Cost of gpu_count GPUs for duration_nanos at gpu_type's configured
 * per-GPU-hour price; used when the event's instance_type has no price.
 * Returns 0 or -ENOENT.
 */
int price_table_gpu_type_cost(const struct price_table *table, struct label_value gpu_type,
                              uint64_t gpu_count, uint64_t duration_nanos, uint64_t *cost_nanos);

/*
 * A GPU utilization sample's per-GPU price: the instance_type's hourly
 * price over its GPU count, else gpu_type's per-GPU-hour price (gpus 1).
 * Returns 0 or -ENOENT (no price: the sample is unpriced).
 */
struct gpu_rate {
    uint64_t per_hour_nanos; /* of the instance (or of one GPU when gpus is 1) */
    uint32_t gpus;
};
int price_table_gpu_rate(const struct price_table *table, struct label_value instance_type,
                         struct label_value gpu_type, struct gpu_rate *rate);

/*
 * Idle cost of one GPU over counted_nanos at utilization util_ppb (parts
 * per billion, <= 1e9): counted x (1 - utilization) x per-GPU-second
 * price, as one 128-bit fraction rounded once, half up:
 *   round(counted_nanos x (1e9 - util_ppb) x per_hour_nanos / (gpus x 3600 x 1e18)).
 * Returns 0, -EINVAL (util_ppb > 1e9) or -ERANGE (beyond 64 bits).
 */
int gpu_idle_cost(const struct gpu_rate *rate, uint64_t counted_nanos, uint64_t util_ppb,
                  uint64_t *cost_nanos);

/* price_table_gpu_rate then gpu_idle_cost. */
int price_table_gpu_idle_cost(const struct price_table *table, struct label_value instance_type,
                              struct label_value gpu_type, uint64_t counted_nanos,
                              uint64_t util_ppb, uint64_t *cost_nanos);

size_t price_table_llm_count(const struct price_table *table);
const struct llm_price *price_table_llm_at(const struct price_table *table, size_t i);
size_t price_table_gpu_count(const struct price_table *table);
const struct gpu_price *price_table_gpu_at(const struct price_table *table, size_t i);
/* The gpu_types: entries (per-GPU-hour prices), e.g. for the load generator. */
size_t price_table_gpu_type_count(const struct price_table *table);
const struct gpu_type_price *price_table_gpu_type_at(const struct price_table *table, size_t i);

/* Writes ai_finops_price_dollars{provider,model,kind} (USD per token),
 * ai_finops_gpu_price_dollars_per_hour{cloud,instance_type,gpu_type} and
 * ai_finops_gpu_type_price_dollars_per_hour{gpu_type} (per GPU). */
void price_table_render(const struct price_table *table, struct dynbuf *b, enum expo_format fmt);

#endif

/*
 * metrics_internal.h - what tests see inside the registry (metrics.c):
 * a render at a given wall-clock instant, so hold edges are exact, and the
 * start instant the outcome counters' hold counts from.
 * Thread-safety: as metrics_render.
 */
#ifndef AI_FINOPS_METRICS_INTERNAL_H
#define AI_FINOPS_METRICS_INTERNAL_H

#include "metrics.h"

/* metrics_render with now_ms (epoch ms) as the wall clock. */
int metrics_render_at(struct metrics *m, enum expo_format fmt, int64_t now_ms, struct dynbuf *out);

/* The process start time the unsharded outcome counters' hold counts from. */
int64_t metrics_start_ms(const struct metrics *m);

#endif

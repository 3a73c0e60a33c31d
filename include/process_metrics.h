/*
 * process_metrics.h - the standard process_* metrics (CPU seconds, resident
 * and virtual memory, open and max fds, start time) read from /proc/self.
 *
 * Thread-safety: callable from any thread; reads only /proc.
 */
#ifndef AI_FINOPS_PROCESS_METRICS_H
#define AI_FINOPS_PROCESS_METRICS_H

#include <stdint.h>

#include "dynbuf.h"
#include "expo.h"

/* Wall-clock start time of this process in epoch milliseconds. */
int64_t process_start_time_ms(void);
void process_metrics_render(struct dynbuf *b, enum expo_format fmt, int64_t start_ms);

#endif

/*
 * log.h - structured logging to stderr in logfmt or JSON, with levels.
 *
 * Calls take a message and NULL-terminated key/value string pairs:
 *   log_info("listening", "address", addr, NULL);
 * Never called on the per-event hot path.
 * Thread-safety: thread-safe (one mutex around each line's write).
 */
#ifndef AI_FINOPS_LOG_H
#define AI_FINOPS_LOG_H

#include "config.h"

void log_setup(enum log_level level, enum log_format format);
void log_write(enum log_level level, const char *msg, ...);

#define log_debug(...) log_write(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define log_info(...)  log_write(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_warn(...)  log_write(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_error(...) log_write(LOG_LEVEL_ERROR, __VA_ARGS__)

#endif

/*
 * money.h - exact fixed-point amounts: nano-units (1e-9) in a uint64_t.
 *
 * Dollars and GPU-seconds are both kept as integer nano-units. The event
 * decoder parses JSON number text directly; money_from_double() serves
 * callers that only have a double (exact for any literal with at most 9
 * fractional digits up to MONEY_EXACT_MAX_UNITS, see money.c).
 *
 * Thread-safety: pure functions, callable from any thread.
 */
#ifndef AI_FINOPS_MONEY_H
#define AI_FINOPS_MONEY_H

#include <stddef.h>
#include <stdint.h>

#define NANOS_PER_UNIT 1000000000ULL
/* Largest value for which a 9-decimal literal survives the trip through a
 * double: |x - double(x)| * 1e9 stays below 0.5 while x * 1e9 < 2^52. */
#define MONEY_EXACT_MAX_UNITS 4000000ULL
/* Longest text money_format() writes: 20 integer digits, '.', 9 digits. */
#define MONEY_FORMAT_MAX 32

/* Converts a finite, non-negative double to nano-units rounded to nearest.
 * Returns 0, -EDOM for NaN/inf/negative, -ERANGE above max_nanos. */
int money_from_double(double value, uint64_t max_nanos, uint64_t *nanos);

/* Parses an exact decimal ("12", "0.000000001", "1e-3" is not accepted).
 * Returns 0, -EINVAL for bad syntax or > 9 fractional digits, -ERANGE on
 * overflow. */
int money_parse_decimal(const char *text, size_t len, uint64_t *nanos);

/* Writes the exact decimal ("123.000000001", "5", "0.5") with no NUL;
 * returns the length (at most MONEY_FORMAT_MAX). */
size_t money_format(uint64_t nanos, char *out);

/* money_format for units of 10^-decimals (decimals 1..9): the exact
 * decimal with trailing zeros dropped, no NUL; returns the length (at most
 * MONEY_FORMAT_MAX). */
size_t money_format_scaled(uint64_t value, unsigned decimals, char *out);

/* Writes an unsigned integer in decimal, no NUL; returns the length (≤ 20). */
size_t format_u64(uint64_t value, char *out);

#endif

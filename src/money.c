/*
 * money.c - exact fixed-point conversions for dollars and GPU-seconds.
 *
 * Why a double can be trusted here: for a decimal literal x with at most 9
 * fractional digits, N = x * 1e9 is an integer. cJSON's strtod returns the
 * double d nearest x, so |d - x| <= x * 2^-53 and |d * 1e9 - N| <= N * 2^-53,
 * which is below 0.5 while N < 2^52 (x < 4.5e6). The product is taken in
 * long double (64-bit mantissa) so it adds no error of its own, and rounding
 * to nearest recovers N exactly. MONEY_EXACT_MAX_UNITS keeps to that range.
 * Thread-safety: pure functions.
 */
#include "money.h"

#include <errno.h>
#include <math.h>
#include <string.h>

int money_from_double(double value, uint64_t max_nanos, uint64_t *nanos)
{
    if (!isfinite(value) || value < 0 || signbit(value))
        return -EDOM;
    long double scaled = (long double)value * 1e9L;
    if (scaled > (long double)max_nanos + 0.5L)
        return -ERANGE;
    uint64_t n = (uint64_t)llroundl(scaled);
    if (n > max_nanos)
        return -ERANGE;
    *nanos = n;
    return 0;
}

int money_parse_decimal(const char *text, size_t len, uint64_t *nanos)
{
    uint64_t units = 0, frac = 0;
    size_t i = 0, frac_digits = 0;
    if (len == 0)
        return -EINVAL;
    for (; i < len && text[i] >= '0' && text[i] <= '9'; i++) {
        if (units > (UINT64_MAX - 9) / 10)
            return -ERANGE;
        units = units * 10 + (uint64_t)(text[i] - '0');
    }
    if (i == 0)
        return -EINVAL;
    if (i < len && text[i] == '.') {
        i++;
        for (; i < len && text[i] >= '0' && text[i] <= '9'; i++) {
            if (++frac_digits > 9)
                return -EINVAL;
            frac = frac * 10 + (uint64_t)(text[i] - '0');
        }
        if (frac_digits == 0)
            return -EINVAL;
    }
    if (i != len)
        return -EINVAL;
    for (; frac_digits < 9; frac_digits++)
        frac *= 10;
    if (units > (UINT64_MAX - frac) / NANOS_PER_UNIT)
        return -ERANGE;
    *nanos = units * NANOS_PER_UNIT + frac;
    return 0;
}

size_t format_u64(uint64_t value, char *out)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + value % 10);
        value /= 10;
    } while (value);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

size_t money_format_scaled(uint64_t value, unsigned decimals, char *out)
{
    uint64_t scale = 1;
    for (unsigned i = 0; i < decimals; i++)
        scale *= 10;
    size_t n = format_u64(value / scale, out);
    uint64_t frac = value % scale;
    if (frac == 0)
        return n;
    char digits[19];
    for (int i = (int)decimals - 1; i >= 0; i--) {
        digits[i] = (char)('0' + frac % 10);
        frac /= 10;
    }
    size_t keep = decimals;
    while (digits[keep - 1] == '0')
        keep--;
    out[n++] = '.';
    memcpy(out + n, digits, keep);
    return n + keep;
}

size_t money_format(uint64_t nanos, char *out)
{
    return money_format_scaled(nanos, 9, out);
}

/*
 * cidr.c - address ranges for web.scrapers (see cidr.h).
 *
 * Parsing goes through inet_pton, which takes only the plain forms (dotted
 * quad without leading zeros, IPv6 without a zone), so what is accepted is
 * what an operator reads. Matching compares the prefix's whole bytes, then
 * the bits of the last one. Thread-safety: none needed (no state).
 */
#include "cidr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

/* The longest IPv6 text (45) plus "/128", with room to spare. */
#define CIDR_TEXT_MAX 64

static int fail(char *msg, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *msg, size_t len, const char *fmt, ...)
{
    if (msg && len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, len, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

static int bad(const char *text, char *msg, size_t len)
{
    return fail(msg, len,
                "'%.*s' is not an IPv4 or IPv6 address or CIDR range; write one address "
                "(127.0.0.1, ::1) or ADDRESS/PREFIX (10.0.0.0/8, fd00::/8)",
                CIDR_TEXT_MAX, text);
}

/* Zeroes the bits of key after prefix. */
static void mask(unsigned char key[16], unsigned prefix)
{
    for (unsigned i = 0; i < 16; i++) {
        unsigned keep = prefix >= 8 * (i + 1) ? 8 : prefix > 8 * i ? prefix - 8 * i : 0;
        key[i] &= (unsigned char)(0xff00u >> keep);
    }
}

int cidr_parse(const char *text, struct cidr *out, char *msg, size_t msglen)
{
    char addr[CIDR_TEXT_MAX + 1];
    size_t n = strlen(text);
    if (n == 0)
        return fail(msg, msglen, "is empty; write an address (127.0.0.1) or a range (10.0.0.0/8)");
    if (n > CIDR_TEXT_MAX)
        return bad(text, msg, msglen);
    const char *slash = strchr(text, '/');
    size_t alen = slash ? (size_t)(slash - text) : n;
    memcpy(addr, text, alen);
    addr[alen] = '\0';
    bool v6 = strchr(addr, ':') != NULL;
    unsigned max = v6 ? 128 : 32;
    unsigned prefix = max;
    if (slash) {
        const char *p = slash + 1;
        size_t digits = strspn(p, "0123456789");
        if (digits == 0 || digits > 3 || p[digits] != '\0' || (digits > 1 && p[0] == '0'))
            return bad(text, msg, msglen);
        prefix = 0;
        for (size_t i = 0; i < digits; i++)
            prefix = prefix * 10 + (unsigned)(p[i] - '0');
        if (prefix > max)
            return fail(msg, msglen,
                        "'%s': the prefix /%u is longer than an %s address (at most /%u)", text,
                        prefix, v6 ? "IPv6" : "IPv4", max);
    }
    struct cidr c;
    memset(&c, 0, sizeof(c));
    if (v6) {
        if (inet_pton(AF_INET6, addr, c.addr) != 1)
            return bad(text, msg, msglen);
        c.prefix = prefix;
    } else {
        c.addr[10] = c.addr[11] = 0xff;
        if (inet_pton(AF_INET, addr, c.addr + 12) != 1)
            return bad(text, msg, msglen);
        c.prefix = prefix + 96;
    }
    unsigned char net[16];
    memcpy(net, c.addr, 16);
    mask(net, c.prefix);
    if (memcmp(net, c.addr, 16) != 0) {
        char shown[INET6_ADDRSTRLEN];
        if (!inet_ntop(v6 ? AF_INET6 : AF_INET, v6 ? net : net + 12, shown, sizeof(shown)))
            shown[0] = '\0';
        return fail(msg, msglen,
                    "'%s' has address bits set after its /%u prefix; write the range as %s/%u, "
                    "or the one address as %s",
                    text, prefix, shown, prefix, addr);
    }
    *out = c;
    return 0;
}

void cidr_key(const struct sockaddr *sa, unsigned char out[16])
{
    memset(out, 0, 16);
    if (sa && sa->sa_family == AF_INET) {
        out[10] = out[11] = 0xff;
        /* by offset, not a cast: clang's -Wcast-align (the fuzz build) */
        memcpy(out + 12, (const char *)sa + offsetof(struct sockaddr_in, sin_addr), 4);
    } else if (sa && sa->sa_family == AF_INET6) {
        memcpy(out, (const char *)sa + offsetof(struct sockaddr_in6, sin6_addr), 16);
    }
}

bool cidr_match(const struct cidr *range, const unsigned char key[16])
{
    unsigned whole = range->prefix / 8, bits = range->prefix % 8;
    if (memcmp(range->addr, key, whole) != 0)
        return false;
    if (bits == 0)
        return true;
    unsigned char m = (unsigned char)(0xff00u >> bits);
    return (key[whole] & m) == range->addr[whole];
}

bool cidr_list_match(const struct cidr *ranges, size_t n, const unsigned char key[16])
{
    for (size_t i = 0; i < n; i++)
        if (cidr_match(&ranges[i], key))
            return true;
    return false;
}

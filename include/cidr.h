/*
 * cidr.h - IPv4 and IPv6 address ranges ("10.0.0.0/8", "::1/128", or one
 * address) for web.scrapers: parsing with a message that says what to write
 * instead, and matching a peer's address.
 *
 * Every address is kept as 16 bytes, an IPv4 one as IPv4-mapped IPv6
 * (::ffff:a.b.c.d, prefix + 96), so an IPv4 range matches a peer whether it
 * came over IPv4 or as a mapped address on a dual-stack socket, with one
 * byte compare. Consequence: an IPv6 range that covers ::ffff:0:0/96 (::/0,
 * say) matches IPv4 peers too.
 *
 * Thread-safety: pure functions on the caller's data; any thread. No
 * allocation: cheap enough for the accept path.
 */
#ifndef AI_FINOPS_CIDR_H
#define AI_FINOPS_CIDR_H

#include <stdbool.h>
#include <stddef.h>

struct sockaddr;

struct cidr {
    unsigned char addr[16]; /* host bits zero */
    unsigned prefix;        /* 0-128, over the 16 bytes */
};

/* "A.B.C.D[/0-32]" or an IPv6 address "[/0-128]" (no brackets, no zone);
 * without a prefix, the one address. Bits set after the prefix are refused
 * (10.0.0.1/8 is more likely a typo than a wish for 10.0.0.0/8). Returns 0,
 * or -EINVAL with msg saying what is wrong and what to write. */
int cidr_parse(const char *text, struct cidr *out, char *msg, size_t msglen);

/* The 16-byte key of a socket address (IPv4 as IPv4-mapped); all zero for
 * another family or NULL. */
void cidr_key(const struct sockaddr *sa, unsigned char out[16]);

bool cidr_match(const struct cidr *range, const unsigned char key[16]);

/* Whether any of the n ranges matches: a linear scan (the list is short). */
bool cidr_list_match(const struct cidr *ranges, size_t n, const unsigned char key[16]);

#endif

/*
 * test_cidr.c - web.scrapers' address ranges: parsing (IPv4, IPv6, one
 * address, /0, /32, /128, bad input with its message) and matching,
 * including IPv4-mapped IPv6 peers against IPv4 ranges.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "cidr.h"

/* The key of a textual peer address: IPv4 through a sockaddr_in (as the
 * server gets it), IPv6 through a sockaddr_in6. */
static void key_of(const char *text, unsigned char key[16])
{
    struct sockaddr_in sa4;
    struct sockaddr_in6 sa6;
    memset(&sa4, 0, sizeof(sa4));
    memset(&sa6, 0, sizeof(sa6));
    if (inet_pton(AF_INET, text, &sa4.sin_addr) == 1) {
        sa4.sin_family = AF_INET;
        cidr_key((struct sockaddr *)&sa4, key);
        return;
    }
    assert_int_equal(inet_pton(AF_INET6, text, &sa6.sin6_addr), 1);
    sa6.sin6_family = AF_INET6;
    cidr_key((struct sockaddr *)&sa6, key);
}

static bool matches(const char *range, const char *peer)
{
    struct cidr c;
    char msg[256];
    unsigned char key[16];
    if (cidr_parse(range, &c, msg, sizeof(msg)) != 0)
        fail_msg("'%s' did not parse: %s", range, msg);
    key_of(peer, key);
    return cidr_match(&c, key);
}

static void test_ipv4(void **state)
{
    (void)state;
    assert_true(matches("10.0.0.0/8", "10.255.1.2"));
    assert_false(matches("10.0.0.0/8", "11.0.0.0"));
    assert_false(matches("10.0.0.0/8", "9.255.255.255"));
    assert_true(matches("127.0.0.1", "127.0.0.1")); /* one address: /32 */
    assert_false(matches("127.0.0.1", "127.0.0.2"));
    assert_true(matches("127.0.0.1/32", "127.0.0.1"));
    assert_false(matches("127.0.0.1/32", "127.0.0.0"));
    assert_true(matches("192.168.4.0/22", "192.168.7.255")); /* a prefix inside a byte */
    assert_false(matches("192.168.4.0/22", "192.168.8.0"));
    assert_false(matches("192.168.4.0/22", "192.168.3.255"));
    assert_true(matches("0.0.0.0/0", "1.2.3.4"));
    assert_true(matches("0.0.0.0/0", "255.255.255.255"));
    /* an IPv4 range is IPv4 only, however wide */
    assert_false(matches("0.0.0.0/0", "::1"));
    assert_false(matches("0.0.0.0/0", "2001:db8::1"));
}

static void test_ipv6(void **state)
{
    (void)state;
    assert_true(matches("::1/128", "::1"));
    assert_true(matches("::1", "::1"));
    assert_false(matches("::1/128", "::2"));
    assert_true(matches("fd00::/8", "fdab:cd::1"));
    assert_false(matches("fd00::/8", "fe80::1"));
    assert_true(matches("2001:db8::/33", "2001:db8:7fff::1"));
    assert_false(matches("2001:db8::/33", "2001:db8:8000::1"));
    assert_true(matches("::/0", "2001:db8::1"));
    assert_false(matches("::1/128", "127.0.0.1"));
}

/* A dual-stack socket shows an IPv4 peer as ::ffff:a.b.c.d: IPv4 ranges
 * must match it, and IPv6 ranges written over the mapped block too. */
static void test_ipv4_mapped(void **state)
{
    (void)state;
    assert_true(matches("10.0.0.0/8", "::ffff:10.1.2.3"));
    assert_false(matches("10.0.0.0/8", "::ffff:11.1.2.3"));
    assert_true(matches("127.0.0.1", "::ffff:127.0.0.1"));
    assert_true(matches("0.0.0.0/0", "::ffff:8.8.8.8"));
    assert_true(matches("::ffff:10.0.0.0/104", "10.9.9.9"));
    assert_true(matches("::ffff:0:0/96", "192.0.2.1"));
    assert_true(matches("::/0", "192.0.2.1")); /* documented in cidr.h */
    /* not mapped: the IPv4-compatible form ::a.b.c.d is another address */
    assert_false(matches("10.0.0.0/8", "::10.1.2.3"));
}

static void test_key_of_other_family(void **state)
{
    (void)state;
    unsigned char key[16], zero[16] = {0};
    struct sockaddr sa = {.sa_family = AF_UNIX};
    cidr_key(&sa, key);
    assert_memory_equal(key, zero, 16);
    cidr_key(NULL, key);
    assert_memory_equal(key, zero, 16);
    struct cidr c;
    assert_int_equal(cidr_parse("10.0.0.0/8", &c, NULL, 0), 0);
    assert_false(cidr_match(&c, key));
}

static void expect_bad(const char *text, const char *message)
{
    struct cidr c;
    char msg[256] = "";
    int rc = cidr_parse(text, &c, msg, sizeof(msg));
    if (rc != -EINVAL || strcmp(msg, message) != 0)
        fail_msg("'%s': rc=%d msg=%s\nexpected: %s", text, rc, msg, message);
}

#define NOT_A_RANGE(t)                                                                             \
    "'" t "' is not an IPv4 or IPv6 address or CIDR range; write one address (127.0.0.1, "         \
    "::1) or ADDRESS/PREFIX (10.0.0.0/8, fd00::/8)"

static void test_bad_input(void **state)
{
    (void)state;
    expect_bad("", "is empty; write an address (127.0.0.1) or a range (10.0.0.0/8)");
    expect_bad("10.0.0.0/33",
               "'10.0.0.0/33': the prefix /33 is longer than an IPv4 address (at most /32)");
    expect_bad("::/129", "'::/129': the prefix /129 is longer than an IPv6 address (at most /128)");
    expect_bad("10.0.0.1/8", "'10.0.0.1/8' has address bits set after its /8 prefix; write the "
                             "range as 10.0.0.0/8, or the one address as 10.0.0.1");
    expect_bad("fd00::1/8", "'fd00::1/8' has address bits set after its /8 prefix; write the "
                            "range as fd00::/8, or the one address as fd00::1");
    expect_bad("1.2.3.4/0", "'1.2.3.4/0' has address bits set after its /0 prefix; write the "
                            "range as 0.0.0.0/0, or the one address as 1.2.3.4");
    expect_bad("10.0.0.0/", NOT_A_RANGE("10.0.0.0/"));
    expect_bad("10.0.0.0/08", NOT_A_RANGE("10.0.0.0/08"));
    expect_bad("10.0.0.0/+8", NOT_A_RANGE("10.0.0.0/+8"));
    expect_bad("10.0.0.0/8/8", NOT_A_RANGE("10.0.0.0/8/8"));
    expect_bad("10.0.0.0/ 8", NOT_A_RANGE("10.0.0.0/ 8"));
    expect_bad("10.0.0", NOT_A_RANGE("10.0.0"));
    expect_bad("010.0.0.0/8", NOT_A_RANGE("010.0.0.0/8"));
    expect_bad("256.0.0.0/8", NOT_A_RANGE("256.0.0.0/8"));
    expect_bad(" 10.0.0.0/8", NOT_A_RANGE(" 10.0.0.0/8"));
    expect_bad("fe80::1%eth0", NOT_A_RANGE("fe80::1%eth0"));
    expect_bad("[::1]", NOT_A_RANGE("[::1]"));
    expect_bad("::1::2", NOT_A_RANGE("::1::2"));
    expect_bad("localhost", NOT_A_RANGE("localhost"));
    expect_bad("/8", NOT_A_RANGE("/8"));
    /* longer than any address: refused whole, quoted cut */
    char long_text[200];
    memset(long_text, '1', sizeof(long_text) - 1);
    long_text[sizeof(long_text) - 1] = '\0';
    struct cidr c;
    char msg[256];
    assert_int_equal(cidr_parse(long_text, &c, msg, sizeof(msg)), -EINVAL);
    assert_non_null(strstr(msg, "is not an IPv4 or IPv6 address"));
}

static void test_list(void **state)
{
    (void)state;
    struct cidr list[3];
    assert_int_equal(cidr_parse("10.0.0.0/8", &list[0], NULL, 0), 0);
    assert_int_equal(cidr_parse("::1", &list[1], NULL, 0), 0);
    assert_int_equal(cidr_parse("192.168.0.7", &list[2], NULL, 0), 0);
    unsigned char key[16];
    key_of("192.168.0.7", key);
    assert_true(cidr_list_match(list, 3, key));
    assert_false(cidr_list_match(list, 2, key));
    assert_false(cidr_list_match(list, 0, key));
    key_of("::1", key);
    assert_true(cidr_list_match(list, 3, key));
    key_of("::ffff:10.0.0.1", key);
    assert_true(cidr_list_match(list, 1, key));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ipv4),        cmocka_unit_test(test_ipv6),
        cmocka_unit_test(test_ipv4_mapped), cmocka_unit_test(test_key_of_other_family),
        cmocka_unit_test(test_bad_input),   cmocka_unit_test(test_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

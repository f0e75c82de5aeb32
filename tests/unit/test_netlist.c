/*
 * test_netlist — the network lists of autoturn_networks: a table of good
 * and bad lists (IPv4, IPv6, prefixes, white space, empty entries, host
 * names, too many), and a table of addresses matched against one list
 * (IPv4-mapped IPv6 matches IPv4 networks; the longest prefix is reported).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "core/netlist.h"

static const struct parse_case {
    const char *text;
    int ok;
    size_t n;               /* entries when ok */
    const char *why;        /* part of the reason when not ok */
} parse_cases[] = {
    {"", 1, 0, NULL},
    {"   ", 1, 0, NULL},
    {"192.0.2.1", 1, 1, NULL},
    {"192.0.2.0/24", 1, 1, NULL},
    {"192.0.2.0/24,2001:db8::/48", 1, 2, NULL},
    {" 192.0.2.0/24 , 2001:db8::/48 ", 1, 2, NULL},
    {"0.0.0.0/0", 1, 1, NULL},
    {"::/0", 1, 1, NULL},
    {"2001:db8::1/128", 1, 1, NULL},
    {"10.0.0.0/32", 1, 1, NULL},
    {"192.0.2.0/33", 0, 0, "bad network '192.0.2.0/33'"},
    {"2001:db8::/129", 0, 0, "bad network '2001:db8::/129'"},
    {"192.0.2.0/", 0, 0, "bad network '192.0.2.0/'"},
    {"192.0.2.0/024", 0, 0, "bad network"},
    {"192.0.2.0/-1", 0, 0, "bad network"},
    {"192.0.2.0/2x", 0, 0, "bad network"},
    {"/24", 0, 0, "bad network"},
    {"192.0.2", 0, 0, "bad network '192.0.2'"},
    {"192.0.2.256", 0, 0, "bad network"},
    {"mail.example", 0, 0, "bad network 'mail.example'"},
    {"192.0.2.1,", 0, 0, "an empty network"},
    {",192.0.2.1", 0, 0, "an empty network"},
    {"192.0.2.1,,192.0.2.2", 0, 0, "an empty network"},
    {"192.0.2.1 192.0.2.2", 0, 0, "bad network"},
    {"[2001:db8::1]", 0, 0, "bad network"},
    {"192.0.2.1\n", 1, 1, NULL},                    /* trailing white space */
    {"192.0.2.1\x01", 0, 0, "bad network '192.0.2.1\\x01'"},
};

static void test_parse_table(void **state)
{
    for (size_t i = 0; i < sizeof parse_cases / sizeof parse_cases[0]; i++) {
        const struct parse_case *c = &parse_cases[i];
        struct netlist nl = {99, NULL};
        char why[256] = "";
        int rc = netlist_parse(c->text, &nl, why, sizeof why);
        if ((rc == 0) != c->ok || (c->ok && nl.n != c->n) ||
            (!c->ok && (!strstr(why, c->why) || nl.n != 99))) {
            print_error("case \"%s\": rc %d n %zu why \"%s\"\n", c->text, rc, nl.n, why);
            fail();
        }
        if (rc == 0)
            netlist_free(&nl);
    }
}

/* NETLIST_MAX entries are fine, one more is not. */
static void test_too_many(void **state)
{
    char buf[NETLIST_MAX * 20 + 32] = "", why[256];
    struct netlist nl;
    for (int i = 0; i < NETLIST_MAX; i++)
        snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s10.0.%d.0/24",
                 i ? "," : "", i);
    assert_int_equal(netlist_parse(buf, &nl, why, sizeof why), 0);
    assert_int_equal(nl.n, NETLIST_MAX);
    netlist_free(&nl);
    strcat(buf, ",10.1.0.0/16");
    assert_int_equal(netlist_parse(buf, &nl, why, sizeof why), -1);
    assert_non_null(strstr(why, "more than 64 networks"));
}

/* Host bits are cleared: the stored network is the prefix alone. */
static void test_host_bits_cleared(void **state)
{
    struct netlist_net n;
    unsigned char want[16] = {0};
    assert_int_equal(netlist_parse_one("192.0.2.77/24", &n), 0);
    assert_int_equal(n.family, AF_INET);
    assert_int_equal(n.prefix, 24);
    inet_pton(AF_INET, "192.0.2.0", want);
    assert_memory_equal(n.net, want, 4);
    assert_int_equal(netlist_parse_one("2001:db8:ffff::1/33", &n), 0);
    assert_int_equal(n.family, AF_INET6);
    inet_pton(AF_INET6, "2001:db8:8000::", want);
    assert_memory_equal(n.net, want, 16);
    assert_int_equal(netlist_parse_one("2001:db8::7", &n), 0);
    assert_int_equal(n.prefix, 128);
}

static void test_match_table(void **state)
{
    static const struct { const char *addr; int hit, prefix; } cases[] = {
        {"192.0.2.1", 1, 24},
        {"192.0.2.23", 1, 32},          /* the longest prefix */
        {"192.0.2.255", 1, 24},
        {"192.0.3.1", 0, 0},
        {"198.51.100.129", 1, 25},
        {"198.51.100.127", 0, 0},
        {"::ffff:192.0.2.9", 1, 24},    /* IPv4-mapped */
        {"2001:db8:0:5::1", 1, 48},
        {"2001:db8:1::1", 0, 0},
        {"2001:db9::1", 0, 0},
        {"::1", 0, 0},
        {"127.0.0.1", 0, 0},
        {"not-an-address", 0, 0},
        {"", 0, 0},
    };
    struct netlist nl;
    char why[256];
    assert_int_equal(netlist_parse("192.0.2.0/24, 192.0.2.23, 198.51.100.128/25, "
                                   "2001:db8::/48", &nl, why, sizeof why), 0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int prefix = -1;
        int hit = netlist_match(&nl, cases[i].addr, &prefix);
        if (hit != cases[i].hit || (hit && prefix != cases[i].prefix)) {
            print_error("case %s: hit %d prefix %d\n", cases[i].addr, hit, prefix);
            fail();
        }
    }
    assert_int_equal(netlist_match(&nl, NULL, NULL), 0);
    netlist_free(&nl);
    struct netlist empty = {0, NULL};
    assert_int_equal(netlist_match(&empty, "192.0.2.1", NULL), 0);
    /* 0.0.0.0/0 holds every IPv4 address, no IPv6 one */
    assert_int_equal(netlist_parse("0.0.0.0/0", &nl, why, sizeof why), 0);
    assert_int_equal(netlist_match(&nl, "203.0.113.5", NULL), 1);
    assert_int_equal(netlist_match(&nl, "2001:db8::1", NULL), 0);
    netlist_free(&nl);
}

/* An IPv4-mapped network ("::ffff:192.0.2.0/120") is that IPv4 network:
 * it holds the IPv4 peers of an IPv4 listener as well as mapped ones. */
static void test_mapped_network(void **state)
{
    struct netlist nl;
    char why[256];
    int prefix = -1;
    assert_int_equal(netlist_parse("::ffff:192.0.2.0/120, ::ffff:198.51.100.7", &nl, why,
                                   sizeof why), 0);
    assert_int_equal(netlist_match(&nl, "192.0.2.9", &prefix), 1);
    assert_int_equal(prefix, 24);
    assert_int_equal(netlist_match(&nl, "::ffff:192.0.2.9", &prefix), 1);
    assert_int_equal(prefix, 24);
    assert_int_equal(netlist_match(&nl, "198.51.100.7", &prefix), 1);
    assert_int_equal(prefix, 32);
    assert_int_equal(netlist_match(&nl, "192.0.3.1", NULL), 0);
    assert_int_equal(netlist_match(&nl, "::192.0.2.9", NULL), 0);
    netlist_free(&nl);
    /* a shorter prefix reaches outside the mapped space: it stays IPv6 */
    struct netlist_net n;
    assert_int_equal(netlist_parse_one("::ffff:0.0.0.0/95", &n), 0);
    assert_int_equal(n.family, AF_INET6);
    assert_int_equal(n.prefix, 95);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_table),
        cmocka_unit_test(test_too_many),
        cmocka_unit_test(test_host_bits_cleared),
        cmocka_unit_test(test_match_table),
        cmocka_unit_test(test_mapped_network),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

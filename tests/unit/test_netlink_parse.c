/*
 * test_netlink_parse — table-driven tests of the rtnetlink parser
 * (netlink_parse / netlink_peer): link and address messages as the kernel
 * sends them, then every way the bytes can be wrong (short headers,
 * nlmsg_len beyond the datagram or below the header, short bodies,
 * attributes whose rta_len is too small or too large, addresses of the
 * wrong size, names without a NUL or with bad bytes), each message also
 * cut at every length.  Messages are built here byte by byte.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>

#include "link/netlink_parse.h"

#define N_(a) (sizeof(a) / sizeof((a)[0]))

/* ---- a message builder ---- */

struct mb {
    unsigned char b[512];
    size_t n;
};

static void mb_put(struct mb *m, const void *p, size_t n)
{
    assert_true(m->n + n <= sizeof m->b);
    memcpy(m->b + m->n, p, n);
    m->n += n;
}

static void mb_pad(struct mb *m)
{
    while (m->n % 4)
        m->b[m->n++] = 0;
}

static void mb_hdr(struct mb *m, uint16_t type)
{
    struct nlmsghdr h = { .nlmsg_type = type, .nlmsg_seq = 7, .nlmsg_pid = 0 };
    m->n = 0;
    mb_put(m, &h, sizeof h);
}

/* Sets nlmsg_len to what was built (or to len when len != 0). */
static void mb_end(struct mb *m, uint32_t len)
{
    uint32_t l = len ? len : (uint32_t)m->n;
    memcpy(m->b + offsetof(struct nlmsghdr, nlmsg_len), &l, sizeof l);
}

static void mb_attr(struct mb *m, uint16_t type, const void *v, size_t vn, int rta_len_delta)
{
    struct rtattr ra = { .rta_len = (unsigned short)(RTA_LENGTH(vn) + rta_len_delta),
                         .rta_type = type };
    mb_put(m, &ra, sizeof ra);
    mb_put(m, v, vn);
    mb_pad(m);
}

static void mb_link(struct mb *m, uint16_t type, int index, unsigned flags, const char *name)
{
    struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC, .ifi_index = index, .ifi_flags = flags };
    mb_hdr(m, type);
    mb_put(m, &ifi, sizeof ifi);
    if (name)
        mb_attr(m, IFLA_IFNAME, name, strlen(name) + 1, 0);
    mb_end(m, 0);
}

static void mb_addr(struct mb *m, uint16_t type, int family, int index,
                    const char *local, const char *address, const char *label)
{
    struct ifaddrmsg ifa = { .ifa_family = (unsigned char)family, .ifa_prefixlen = 32,
                             .ifa_index = (unsigned)index };
    unsigned char a[16];
    size_t an = family == AF_INET6 ? 16 : 4;
    mb_hdr(m, type);
    mb_put(m, &ifa, sizeof ifa);
    if (address) {
        assert_int_equal(inet_pton(family, address, a), 1);
        mb_attr(m, IFA_ADDRESS, a, an, 0);
    }
    if (local) {
        assert_int_equal(inet_pton(family, local, a), 1);
        mb_attr(m, IFA_LOCAL, a, an, 0);
    }
    if (label)
        mb_attr(m, IFA_LABEL, label, strlen(label) + 1, 0);
    mb_end(m, 0);
}

/* ---- well-formed messages ---- */

static void test_link_messages(void **state)
{
    static const struct {
        uint16_t type;
        int index;
        unsigned flags;
        const char *name;
        enum netlink_kind kind;
    } cases[] = {
        { RTM_NEWLINK, 3, IFF_UP | IFF_POINTOPOINT, "ippp3", NL_NEWLINK },
        { RTM_NEWLINK, 4, 0, "ppp0", NL_NEWLINK },
        { RTM_DELLINK, 4, 0, "ppp0", NL_DELLINK },
        { RTM_DELLINK, 4, 0, NULL, NL_DELLINK },        /* name optional on delete */
        { RTM_NEWLINK, 9, IFF_UP, "abcdefghijklmno", NL_NEWLINK },  /* 15 chars */
    };
    for (size_t i = 0; i < N_(cases); i++) {
        struct mb m;
        struct netlink_msg msg;
        size_t used;
        char err[128] = "";
        mb_link(&m, cases[i].type, cases[i].index, cases[i].flags, cases[i].name);
        assert_int_equal(netlink_parse(m.b, m.n, &used, &msg, err, sizeof err), 0);
        assert_int_equal(used, m.n);
        assert_int_equal(msg.kind, cases[i].kind);
        assert_int_equal(msg.ifindex, cases[i].index);
        assert_int_equal(msg.ifflags, cases[i].flags);
        assert_int_equal(msg.seq, 7);
        assert_string_equal(msg.ifname, cases[i].name ? cases[i].name : "");
        assert_null(netlink_peer(&msg));
    }
}

static void test_addr_messages(void **state)
{
    static const struct {
        uint16_t type;
        int family;
        const char *local, *address, *label;
        enum netlink_kind kind;
        const char *peer;       /* netlink_peer(), NULL for none */
    } cases[] = {
        /* point-to-point: IFA_LOCAL ours, IFA_ADDRESS the peer */
        { RTM_NEWADDR, AF_INET, "192.0.2.1", "127.0.0.23", "ippp3", NL_NEWADDR, "127.0.0.23" },
        { RTM_DELADDR, AF_INET, "192.0.2.1", "127.0.0.23", "ippp3", NL_DELADDR, "127.0.0.23" },
        /* ordinary IPv4: the same address twice: no peer */
        { RTM_NEWADDR, AF_INET, "192.0.2.1", "192.0.2.1", "eth0", NL_NEWADDR, NULL },
        { RTM_NEWADDR, AF_INET, "192.0.2.1", "192.0.2.1", "eth0:1", NL_NEWADDR, NULL },
        /* ordinary IPv6: IFA_ADDRESS only */
        { RTM_NEWADDR, AF_INET6, NULL, "2001:db8::1", NULL, NL_NEWADDR, NULL },
        /* IPv6 point-to-point with a global peer, and a link-local one */
        { RTM_NEWADDR, AF_INET6, "2001:db8::1", "2001:db8::2", NULL, NL_NEWADDR, "2001:db8::2" },
        { RTM_NEWADDR, AF_INET6, "fe80::1", "fe80::2", NULL, NL_NEWADDR, NULL },
        { RTM_NEWADDR, AF_INET6, "fe80::1", "febf::2", NULL, NL_NEWADDR, NULL },
        { RTM_NEWADDR, AF_INET6, "fe80::1", "fec0::2", NULL, NL_NEWADDR, "fec0::2" },
        /* no attributes at all */
        { RTM_NEWADDR, AF_INET, NULL, NULL, NULL, NL_NEWADDR, NULL },
        { RTM_NEWADDR, AF_INET, "192.0.2.1", NULL, NULL, NL_NEWADDR, NULL },
    };
    for (size_t i = 0; i < N_(cases); i++) {
        struct mb m;
        struct netlink_msg msg;
        size_t used;
        char err[128] = "";
        mb_addr(&m, cases[i].type, cases[i].family, 5, cases[i].local, cases[i].address,
                cases[i].label);
        assert_int_equal(netlink_parse(m.b, m.n, &used, &msg, err, sizeof err), 0);
        assert_int_equal(used, m.n);
        assert_int_equal(msg.kind, cases[i].kind);
        assert_int_equal(msg.family, cases[i].family);
        assert_int_equal(msg.ifindex, 5);
        assert_string_equal(msg.local, cases[i].local ? cases[i].local : "");
        assert_string_equal(msg.address, cases[i].address ? cases[i].address : "");
        assert_string_equal(msg.ifname, cases[i].label ? cases[i].label : "");
        const char *peer = netlink_peer(&msg);
        if (cases[i].peer)
            assert_string_equal(peer, cases[i].peer);
        else
            assert_null(peer);
    }
}

static void test_control_messages(void **state)
{
    struct mb m;
    struct netlink_msg msg;
    size_t used;
    char err[128];
    int e;

    mb_hdr(&m, NLMSG_DONE);
    e = 0;
    mb_put(&m, &e, sizeof e);
    mb_end(&m, 0);
    assert_int_equal(netlink_parse(m.b, m.n, &used, &msg, err, sizeof err), 0);
    assert_int_equal(msg.kind, NL_DONE);

    static const struct { int code, want; } errs[] = { {0, 0}, {-16, 16}, {-1, 1},
                                                       {5, 5}, {-5000, 5} };
    for (size_t i = 0; i < N_(errs); i++) {
        struct nlmsghdr orig = { 0 };
        mb_hdr(&m, NLMSG_ERROR);
        mb_put(&m, &errs[i].code, sizeof errs[i].code);
        mb_put(&m, &orig, sizeof orig);
        mb_end(&m, 0);
        assert_int_equal(netlink_parse(m.b, m.n, &used, &msg, err, sizeof err), 0);
        assert_int_equal(msg.kind, NL_ERROR);
        assert_int_equal(msg.error, errs[i].want);
    }

    mb_hdr(&m, NLMSG_OVERRUN);
    mb_end(&m, 0);
    assert_int_equal(netlink_parse(m.b, m.n, &used, &msg, err, sizeof err), 0);
    assert_int_equal(msg.kind, NL_OVERRUN);

    mb_hdr(&m, RTM_NEWROUTE);       /* not ours: skipped whole */
    mb_put(&m, "abcdefgh", 8);
    mb_end(&m, 0);
    assert_int_equal(netlink_parse(m.b, m.n, &used, &msg, err, sizeof err), 0);
    assert_int_equal(msg.kind, NL_OTHER);
    assert_int_equal(used, m.n);

    /* an address family other than IPv4/IPv6: ignored, not refused */
    struct ifaddrmsg ifa = { .ifa_family = AF_PACKET, .ifa_index = 2 };
    mb_hdr(&m, RTM_NEWADDR);
    mb_put(&m, &ifa, sizeof ifa);
    mb_attr(&m, IFA_ADDRESS, "\1\2\3", 3, 0);
    mb_end(&m, 0);
    assert_int_equal(netlink_parse(m.b, m.n, &used, &msg, err, sizeof err), 0);
    assert_int_equal(msg.kind, NL_OTHER);
}

/* Two messages in one datagram: used steps from one to the next. */
static void test_two_in_one(void **state)
{
    struct mb a, b;
    unsigned char dg[1024];
    struct netlink_msg msg;
    size_t used;
    char err[128];
    mb_link(&a, RTM_NEWLINK, 3, IFF_UP, "ppp7");    /* its length is a multiple of 4 */
    mb_addr(&b, RTM_NEWADDR, AF_INET, 3, "192.0.2.1", "127.0.0.9", NULL);
    memcpy(dg, a.b, a.n);
    memcpy(dg + a.n, b.b, b.n);
    assert_int_equal(netlink_parse(dg, a.n + b.n, &used, &msg, err, sizeof err), 0);
    assert_int_equal(used, a.n);
    assert_string_equal(msg.ifname, "ppp7");
    assert_int_equal(netlink_parse(dg + used, a.n + b.n - used, &used, &msg, err,
                                   sizeof err), 0);
    assert_string_equal(netlink_peer(&msg), "127.0.0.9");
    assert_int_equal(used, b.n);
}

/* ---- malformed messages ---- */

enum bad_how { BAD_LEN, BAD_RTA_SMALL, BAD_RTA_LARGE, BAD_ADDR4_SIZE, BAD_ADDR6_SIZE,
               BAD_NAME_NONUL, BAD_NAME_EMPTY, BAD_NAME_LONG, BAD_NAME_CTRL,
               BAD_NAME_SLASH, BAD_NAME_SPACE, BAD_BODY_SHORT, BAD_INDEX,
               BAD_LINK_NONAME, BAD_ERR_SHORT, BAD_LEN_SMALL };

static void build_bad(struct mb *m, enum bad_how how)
{
    struct ifinfomsg ifi = { .ifi_index = 3, .ifi_flags = IFF_UP };
    struct ifaddrmsg ifa = { .ifa_family = AF_INET, .ifa_index = 3 };
    switch (how) {
    case BAD_LEN:               /* nlmsg_len beyond the datagram */
        mb_link(m, RTM_NEWLINK, 3, IFF_UP, "ppp0");
        mb_end(m, 0x10000);
        return;
    case BAD_LEN_SMALL:         /* nlmsg_len below the header */
        mb_link(m, RTM_NEWLINK, 3, IFF_UP, "ppp0");
        mb_end(m, 8);
        return;
    case BAD_RTA_SMALL:
    case BAD_RTA_LARGE:
        mb_hdr(m, RTM_NEWLINK);
        mb_put(m, &ifi, sizeof ifi);
        mb_attr(m, IFLA_IFNAME, "ppp0", 5, how == BAD_RTA_SMALL ? -6 : 64);
        mb_end(m, 0);
        return;
    case BAD_ADDR4_SIZE:
    case BAD_ADDR6_SIZE:
        if (how == BAD_ADDR6_SIZE)
            ifa.ifa_family = AF_INET6;
        mb_hdr(m, RTM_NEWADDR);
        mb_put(m, &ifa, sizeof ifa);
        mb_attr(m, IFA_ADDRESS, "\x7f\0\0\x17\0\0\0\0", how == BAD_ADDR4_SIZE ? 8 : 4, 0);
        mb_end(m, 0);
        return;
    case BAD_NAME_NONUL: case BAD_NAME_EMPTY: case BAD_NAME_LONG: case BAD_NAME_CTRL:
    case BAD_NAME_SLASH: case BAD_NAME_SPACE: {
        static const char *const v[] = {
            [BAD_NAME_NONUL] = "ppp0", [BAD_NAME_EMPTY] = "",
            [BAD_NAME_LONG] = "abcdefghijklmnop", [BAD_NAME_CTRL] = "pp\x01p",
            [BAD_NAME_SLASH] = "a/b", [BAD_NAME_SPACE] = "a b" };
        size_t vn = strlen(v[how]) + (how == BAD_NAME_NONUL ? 0 : 1);
        mb_hdr(m, RTM_NEWLINK);
        mb_put(m, &ifi, sizeof ifi);
        mb_attr(m, IFLA_IFNAME, v[how], vn, 0);
        mb_end(m, 0);
        return;
    }
    case BAD_BODY_SHORT:
        mb_hdr(m, RTM_NEWADDR);
        mb_put(m, &ifa, sizeof ifa - 1);
        mb_end(m, 0);
        return;
    case BAD_INDEX:
        mb_link(m, RTM_NEWLINK, -1, IFF_UP, "ppp0");
        return;
    case BAD_LINK_NONAME:
        mb_link(m, RTM_NEWLINK, 3, IFF_UP, NULL);
        return;
    case BAD_ERR_SHORT:
        mb_hdr(m, NLMSG_ERROR);
        mb_put(m, "\0\0", 2);
        mb_end(m, 0);
        return;
    }
}

static void test_malformed(void **state)
{
    static const struct { enum bad_how how; int framing_lost; } cases[] = {
        { BAD_LEN, 1 }, { BAD_LEN_SMALL, 1 }, { BAD_RTA_SMALL, 0 }, { BAD_RTA_LARGE, 0 },
        { BAD_ADDR4_SIZE, 0 }, { BAD_ADDR6_SIZE, 0 }, { BAD_NAME_NONUL, 0 },
        { BAD_NAME_EMPTY, 0 }, { BAD_NAME_LONG, 0 }, { BAD_NAME_CTRL, 0 },
        { BAD_NAME_SLASH, 0 }, { BAD_NAME_SPACE, 0 }, { BAD_BODY_SHORT, 0 },
        { BAD_INDEX, 0 }, { BAD_LINK_NONAME, 0 }, { BAD_ERR_SHORT, 0 },
    };
    for (size_t i = 0; i < N_(cases); i++) {
        struct mb m = { .n = 0 };
        struct netlink_msg msg;
        size_t used = 12345;
        char err[128] = "";
        build_bad(&m, cases[i].how);
        mb_pad(&m);             /* nlmsg_len may be unaligned: the next starts aligned */
        /* a second, good message behind it */
        size_t first = m.n;
        struct mb good;
        mb_link(&good, RTM_NEWLINK, 8, 0, "eth1");
        mb_put(&m, good.b, good.n);
        int rc = netlink_parse(m.b, m.n, &used, &msg, err, sizeof err);
        if (rc != -1)
            fail_msg("case %zu: accepted", i);
        assert_true(err[0] != 0);
        if (cases[i].framing_lost) {
            assert_int_equal(used, m.n);
        } else {
            assert_int_equal(used, first);
            assert_int_equal(netlink_parse(m.b + used, m.n - used, &used, &msg, err,
                                           sizeof err), 0);
            assert_string_equal(msg.ifname, "eth1");
        }
    }
}

/* Every good message cut short at every length: refused or, where the cut
 * leaves a whole shorter message, parsed; never read past the cut (ASan
 * checks that on the heap copy). */
static void test_truncated(void **state)
{
    struct mb ms[3];
    mb_link(&ms[0], RTM_NEWLINK, 3, IFF_UP, "ippp3");
    mb_addr(&ms[1], RTM_NEWADDR, AF_INET, 3, "192.0.2.1", "127.0.0.23", "ippp3");
    mb_addr(&ms[2], RTM_DELADDR, AF_INET6, 3, "2001:db8::1", "2001:db8::2", NULL);
    for (size_t i = 0; i < N_(ms); i++) {
        for (size_t cut = 0; cut < ms[i].n; cut++) {
            unsigned char *copy = malloc(cut ? cut : 1);
            struct netlink_msg msg;
            size_t used;
            char err[128];
            memcpy(copy, ms[i].b, cut);
            assert_int_equal(netlink_parse(copy, cut, &used, &msg, err, sizeof err), -1);
            assert_int_equal(used, cut);
            /* and with nlmsg_len saying the cut length */
            if (cut >= sizeof(struct nlmsghdr)) {
                uint32_t l = (uint32_t)cut;
                memcpy(copy + offsetof(struct nlmsghdr, nlmsg_len), &l, sizeof l);
                int rc = netlink_parse(copy, cut, &used, &msg, err, sizeof err);
                assert_true(rc == 0 || rc == -1);
                assert_true(used <= cut);
                if (rc == 0 && msg.kind == NL_NEWADDR)  /* only whole attributes */
                    assert_true(strlen(msg.address) < NETLINK_ADDR_MAX);
            }
            free(copy);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_link_messages),
        cmocka_unit_test(test_addr_messages),
        cmocka_unit_test(test_control_messages),
        cmocka_unit_test(test_two_in_one),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_truncated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

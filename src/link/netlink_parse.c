/*
 * netlink_parse — turns one rtnetlink message (bytes as the kernel sends
 * them on a NETLINK_ROUTE socket) into a struct netlink_msg: its header,
 * the ifinfomsg or ifaddrmsg body, and the attributes the netlink watcher
 * uses.  A pure function: no I/O, no state; the watcher (netlink.c), the
 * unit tests and the fuzz target call it directly.
 *
 * Trusts: nothing.  The header's nlmsg_len must cover the header and lie
 * within the bytes given; the body must be whole; every rtattr's rta_len
 * must cover its header and lie within the message; attributes are read
 * with memcpy (no alignment assumed).  Addresses must be exactly 4 (IPv4)
 * or 16 (IPv6) bytes; names must hold a NUL within IFNAMSIZ and no control
 * byte, white space or '/' (':' is allowed: IPv4 labels are "eth0:1").
 * Guarantees: nothing outside buf[0..len) is read; on -1 *m holds nothing
 * to act on and *used says how far to skip.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "link/netlink_parse.h"

static int np_fail(char *err, size_t errlen, const char *what)
{
    if (errlen)
        snprintf(err, errlen, "%s", what);
    return -1;
}

/* A name attribute: 2..IFNAMSIZ bytes ending in a NUL, 1..15 characters
 * before it, none a control byte, a space or a '/'. */
static int np_name(const unsigned char *p, size_t n, char *out)
{
    size_t k = 0;
    if (n < 2 || n > NETLINK_IFNAME_MAX)
        return -1;
    while (k < n && p[k])
        k++;
    if (k == 0 || k == n)
        return -1;
    for (size_t i = 0; i < k; i++)
        if (p[i] <= 0x20 || p[i] == 0x7f || p[i] == '/')
            return -1;
    memcpy(out, p, k);
    out[k] = 0;
    return 0;
}

static int np_addr(int family, const unsigned char *p, size_t n, char *out)
{
    size_t want = family == AF_INET ? 4 : 16;
    if (n != want)
        return -1;
    return inet_ntop(family, p, out, NETLINK_ADDR_MAX) ? 0 : -1;
}

/* Walks the attributes in p[0..n) and fills m. */
static int np_attrs(const unsigned char *p, size_t n, int is_link,
                    struct netlink_msg *m, char *err, size_t errlen)
{
    while (n >= sizeof(struct rtattr)) {
        struct rtattr ra;
        memcpy(&ra, p, sizeof ra);
        if (ra.rta_len < sizeof ra || ra.rta_len > n)
            return np_fail(err, errlen, "attribute length out of bounds");
        const unsigned char *v = p + RTA_LENGTH(0);
        size_t vn = ra.rta_len - RTA_LENGTH(0);
        int rc = 0;
        if (is_link && ra.rta_type == IFLA_IFNAME)
            rc = np_name(v, vn, m->ifname);
        else if (!is_link && ra.rta_type == IFA_LABEL)
            rc = np_name(v, vn, m->ifname);
        else if (!is_link && ra.rta_type == IFA_LOCAL)
            rc = np_addr(m->family, v, vn, m->local);
        else if (!is_link && ra.rta_type == IFA_ADDRESS)
            rc = np_addr(m->family, v, vn, m->address);
        if (rc < 0)
            return np_fail(err, errlen, is_link ? "bad interface name attribute"
                                                : "bad address attribute");
        size_t step = RTA_ALIGN(ra.rta_len);
        if (step >= n)
            return 0;
        p += step;
        n -= step;
    }
    return 0;           /* up to 3 bytes of padding are fine */
}

static int np_link(const unsigned char *body, size_t n, struct netlink_msg *m,
                   char *err, size_t errlen)
{
    struct ifinfomsg ifi;
    if (n < sizeof ifi)
        return np_fail(err, errlen, "link message too short");
    memcpy(&ifi, body, sizeof ifi);
    m->ifindex = ifi.ifi_index;
    m->ifflags = ifi.ifi_flags;
    if (ifi.ifi_index <= 0)
        return np_fail(err, errlen, "bad interface index");
    size_t off = NLMSG_ALIGN(sizeof ifi);
    if (off > n)
        off = n;
    if (np_attrs(body + off, n - off, 1, m, err, errlen) < 0)
        return -1;
    if (!m->ifname[0] && m->kind == NL_NEWLINK)
        return np_fail(err, errlen, "link message without a name");
    return 0;
}

static int np_addrmsg(const unsigned char *body, size_t n, struct netlink_msg *m,
                      char *err, size_t errlen)
{
    struct ifaddrmsg ifa;
    if (n < sizeof ifa)
        return np_fail(err, errlen, "address message too short");
    memcpy(&ifa, body, sizeof ifa);
    if (ifa.ifa_family != AF_INET && ifa.ifa_family != AF_INET6) {
        m->kind = NL_OTHER;     /* another family: nothing for us */
        return 0;
    }
    m->family = ifa.ifa_family;
    m->prefixlen = ifa.ifa_prefixlen;
    m->ifindex = (int)ifa.ifa_index;
    if (m->ifindex <= 0)
        return np_fail(err, errlen, "bad interface index");
    size_t off = NLMSG_ALIGN(sizeof ifa);
    if (off > n)
        off = n;
    return np_attrs(body + off, n - off, 0, m, err, errlen);
}

int netlink_parse(const void *buf, size_t len, size_t *used, struct netlink_msg *m,
                  char *err, size_t errlen)
{
    const unsigned char *p = buf;
    struct nlmsghdr h;
    memset(m, 0, sizeof *m);
    *used = len;
    if (len < sizeof h)
        return np_fail(err, errlen, "truncated message header");
    memcpy(&h, p, sizeof h);
    if (h.nlmsg_len < sizeof h || h.nlmsg_len > len)
        return np_fail(err, errlen, "message length out of bounds");
    size_t step = NLMSG_ALIGN(h.nlmsg_len);
    *used = step < len ? step : len;
    m->type = h.nlmsg_type;
    m->flags = h.nlmsg_flags;
    m->seq = h.nlmsg_seq;
    m->pid = h.nlmsg_pid;
    const unsigned char *body = p + NLMSG_HDRLEN;
    size_t n = h.nlmsg_len > NLMSG_HDRLEN ? h.nlmsg_len - NLMSG_HDRLEN : 0;
    switch (h.nlmsg_type) {
    case NLMSG_DONE:
        m->kind = NL_DONE;
        return 0;
    case NLMSG_OVERRUN:
        m->kind = NL_OVERRUN;
        return 0;
    case NLMSG_ERROR: {
        int e;
        if (n < sizeof e)
            return np_fail(err, errlen, "error message too short");
        memcpy(&e, body, sizeof e);
        m->kind = NL_ERROR;
        m->error = e < 0 && e > -4096 ? -e : e == 0 ? 0 : EIO;
        return 0;
    }
    case RTM_NEWLINK: case RTM_DELLINK:
        m->kind = h.nlmsg_type == RTM_NEWLINK ? NL_NEWLINK : NL_DELLINK;
        return np_link(body, n, m, err, errlen);
    case RTM_NEWADDR: case RTM_DELADDR:
        m->kind = h.nlmsg_type == RTM_NEWADDR ? NL_NEWADDR : NL_DELADDR;
        return np_addrmsg(body, n, m, err, errlen);
    default:
        m->kind = NL_OTHER;
        return 0;
    }
}

const char *netlink_peer(const struct netlink_msg *m)
{
    if (m->kind != NL_NEWADDR && m->kind != NL_DELADDR)
        return NULL;
    if (!m->local[0] || !m->address[0] || !strcmp(m->local, m->address))
        return NULL;
    if (m->family == AF_INET6) {
        unsigned char a[16];
        if (inet_pton(AF_INET6, m->address, a) != 1 ||
            (a[0] == 0xfe && (a[1] & 0xc0) == 0x80))
            return NULL;
    }
    return m->address;
}

/*
 * netlink_parse — a pure parser of rtnetlink messages (NETLINK_ROUTE):
 * one nlmsghdr at a time, with the ifinfomsg (RTM_NEWLINK/RTM_DELLINK) or
 * ifaddrmsg (RTM_NEWADDR/RTM_DELADDR) body and the rtattr attributes the
 * netlink watcher needs (IFLA_IFNAME; IFA_LOCAL, IFA_ADDRESS, IFA_LABEL).
 * No I/O: the watcher (netlink.h), the unit tests and the fuzz target call
 * it on bytes.
 *
 * Trusts nothing of the bytes: every length (nlmsg_len, rta_len) is checked
 * against the bytes there are before anything is read; an attribute of the
 * wrong size, an interface name without its NUL or with bytes an interface
 * name cannot have, an address family other than IPv4/IPv6 on an address
 * message: the message is refused (or, for other families, ignored).
 */
#ifndef KM_NETLINK_PARSE_H
#define KM_NETLINK_PARSE_H

#include <stddef.h>
#include <stdint.h>

#define NETLINK_IFNAME_MAX  16      /* IFNAMSIZ, the NUL included */
#define NETLINK_ADDR_MAX    46      /* INET6_ADDRSTRLEN */

enum netlink_kind {
    NL_OTHER,           /* a message the watcher does not use (skip it) */
    NL_NEWLINK, NL_DELLINK, NL_NEWADDR, NL_DELADDR,
    NL_DONE,            /* the end of a dump */
    NL_ERROR,           /* NLMSG_ERROR: error is the errno (0: an ACK) */
    NL_OVERRUN,         /* NLMSG_OVERRUN */
};

struct netlink_msg {
    enum netlink_kind kind;
    uint16_t type, flags;           /* nlmsg_type, nlmsg_flags */
    uint32_t seq, pid;              /* nlmsg_seq, nlmsg_pid */
    int ifindex;                    /* links and addresses */
    unsigned ifflags;               /* links: ifi_flags (IFF_UP, ...) */
    int family;                     /* addresses: AF_INET or AF_INET6 */
    unsigned prefixlen;             /* addresses */
    char ifname[NETLINK_IFNAME_MAX];    /* links: IFLA_IFNAME; addresses:
                                     * IFA_LABEL (IPv4 only); "" if absent */
    char local[NETLINK_ADDR_MAX];   /* IFA_LOCAL, numeric; "" if absent */
    char address[NETLINK_ADDR_MAX]; /* IFA_ADDRESS, numeric; "" if absent */
    int error;                      /* NL_ERROR: a positive errno, 0 = ACK */
};

/* Parses the message at buf (len bytes left in the datagram) into *m.
 * *used is set to the bytes to skip to the next message (NLMSG_ALIGN of
 * nlmsg_len, at most len; len when the framing is lost).  0: *m filled;
 * -1: the message is malformed (err says why; when *used == len the rest of
 * the datagram cannot be trusted either). */
int netlink_parse(const void *buf, size_t len, size_t *used, struct netlink_msg *m,
                  char *err, size_t errlen);

/* The peer address of an address message (NL_NEWADDR/NL_DELADDR), or NULL.
 * On point-to-point links IFA_LOCAL is ours and IFA_ADDRESS the peer's: a
 * peer exists only when both are present and differ.  On other links (no
 * IFA_LOCAL, or the same address twice) the address is ours and the
 * customer's is unknown: NULL.  IPv6 link-local peers (fe80::/10, what
 * IPv6CP gives a PPP link) need a scope to be reached: NULL too. */
const char *netlink_peer(const struct netlink_msg *m);

#endif

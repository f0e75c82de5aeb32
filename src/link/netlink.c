/*
 * netlink — the netlink watcher (netlink.h): reads rtnetlink link and
 * address messages from a non-blocking NETLINK_ROUTE socket on the event
 * loop, keeps a table of interfaces (index → name, IFF_UP, peer addresses
 * of point-to-point addresses) and turns its changes into link events
 * (link_event.h): up at the newest peer address while the interface is up
 * and has one, down (own_session = the interface name) when that ends.
 * Which interface belongs to which customer is link_event's business
 * (LINK_WHO_INTERFACE); an interface no customer names raises nothing and
 * logs nothing.
 *
 * Trusts: only datagrams whose sender is the kernel (nl_pid 0; others are
 * dropped, counted and logged at most once a minute); their bytes go
 * through netlink_parse (bounded, pure).  A datagram cut by the kernel
 * (MSG_TRUNC), an NLMSG_OVERRUN or ENOBUFS means events were lost: the
 * watcher dumps again.  Bounded: the interface table (NL_IFACES_MAX), the
 * peers kept per interface (NL_PEERS_MAX, newest kept), the datagrams read
 * per wake-up (NL_READS_MAX).
 * Guarantees: links change only through link_event(); a dump is
 * reconciled only when it is whole (links and addresses); a link raised by
 * netlink whose interface no longer carries it goes down after a dump.
 */
#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/log.h"
#include "core/registry.h"
#include "core/util.h"
#include "link/link_event.h"
#include "link/links.h"
#include "link/netlink.h"
#include "link/netlink_parse.h"

#define NL_BUF_SIZE     65536       /* one datagram; larger ones are cut */
#define NL_RCVBUF       (4 << 20)   /* socket receive buffer asked for */
#define NL_IFACES_MAX   100000      /* interfaces tracked */
#define NL_PEERS_MAX    4           /* peer addresses kept per interface */
#define NL_READS_MAX    64          /* datagrams per wake-up */
#define NL_RETRY_MS     200         /* a dump that could not be sent */
#define NL_RESYNC_S     5           /* after a link change that failed */

struct nl_iface {
    int index;
    char key[16];                   /* the index in decimal: the table's key */
    char name[NETLINK_IFNAME_MAX];  /* "" until a link message named it */
    int up;                         /* IFF_UP */
    int seen;                       /* in the link dump in progress */
    size_t npeers;
    char peers[NL_PEERS_MAX][NETLINK_ADDR_MAX];     /* oldest first */
    /* what this interface raised: customer, session, address ("" = none) */
    char *raised_cust;
    char raised_name[NETLINK_IFNAME_MAX];
    char raised[NETLINK_ADDR_MAX];
    char refused[NETLINK_ADDR_MAX]; /* the last address link_event refused */
};

enum nl_dump { DUMP_NONE, DUMP_LINK, DUMP_ADDR };

static struct {
    struct event_base *base;
    int fd;
    struct event *rev, *timer;
    uint32_t seq, dump_seq;
    enum nl_dump dump;
    int redump;                     /* dump again when this one ends */
    struct hmap *ifs;               /* "index" → struct nl_iface */
    unsigned char *buf;
    unsigned long foreign, bad;
    time_t foreign_logged, bad_logged;
    int full_logged;
} NL = { .fd = -1 };

static void nl_dump_start(void);
static void nl_dump_send(enum nl_dump part);
static void nl_retry_later(long ms);

/* ---- link events ---- */

static void nl_event_done(const struct link_event_result *res, void *arg)
{
    if (!res->error)
        return;
    log_warn("netlink: %s", res->error);
    if (NL.fd >= 0 && NL.dump == DUMP_NONE)  /* our picture may be wrong */
        nl_retry_later(NL_RESYNC_S * 1000);
    else
        NL.redump = 1;
}

/* The down of what ifc raised (only if the link still has its session). */
static void nl_down(struct nl_iface *ifc)
{
    char err[512];
    struct link_event ev = {
        .kind = LINK_WHO_CUSTOMER, .who = ifc->raised_cust, .up = 0,
        .source = LINK_SRC_NETLINK, .session = ifc->raised_name, .own_session = 1,
    };
    if (link_event(&ev, nl_event_done, NULL, err, sizeof err) < 0)
        log_debug("netlink: %s down: %s", ifc->raised_name, err);
    free(ifc->raised_cust);
    ifc->raised_cust = NULL;
    ifc->raised[0] = ifc->raised_name[0] = 0;
}

static void nl_up(struct nl_iface *ifc, const char *addr)
{
    char err[512];
    struct link_event ev = {
        .kind = LINK_WHO_INTERFACE, .who = ifc->name, .up = 1, .address = addr,
        .ttl = 0, .source = LINK_SRC_NETLINK, .session = ifc->name,
    };
    const struct customer *c = link_event_check(&ev, err, sizeof err);
    if (!c)
        return;                 /* no customer has this interface */
    char *cust = xstrdup(c->name);
    if (link_event(&ev, nl_event_done, NULL, err, sizeof err) < 0) {
        if (strcmp(ifc->refused, addr))
            log_warn("netlink: %s up at %s refused: %s", ifc->name, addr, err);
        snprintf(ifc->refused, sizeof ifc->refused, "%s", addr);
        free(cust);
        return;
    }
    ifc->refused[0] = 0;
    free(ifc->raised_cust);
    ifc->raised_cust = cust;
    snprintf(ifc->raised_name, sizeof ifc->raised_name, "%s", ifc->name);
    snprintf(ifc->raised, sizeof ifc->raised, "%s", addr);
}

/* Brings what ifc raised in line with what it is now.  Not while a dump is
 * in progress (the table is half rebuilt) unless forced. */
static void nl_sync(struct nl_iface *ifc, int force)
{
    if (NL.dump != DUMP_NONE && !force)
        return;
    const char *want = ifc->up && ifc->npeers && ifc->name[0] ?
                       ifc->peers[ifc->npeers - 1] : "";
    if (ifc->raised_cust) {
        int same = want[0] && !strcmp(ifc->raised_name, ifc->name);
        if (same) {             /* still the same customer's interface? */
            struct link_event ev = { .kind = LINK_WHO_INTERFACE, .who = ifc->name,
                                     .up = 1, .address = want };
            char err[256];
            const struct customer *c = link_event_check(&ev, err, sizeof err);
            same = c && !strcmp(c->name, ifc->raised_cust);
        }
        if (!same)
            nl_down(ifc);
    }
    if (want[0] && strcmp(ifc->raised, want))
        nl_up(ifc, want);
}

/* ---- the interface table ---- */

static struct nl_iface *nl_find(int index)
{
    char key[16];
    snprintf(key, sizeof key, "%d", index);
    return hmap_get(NL.ifs, key);
}

static struct nl_iface *nl_get(int index)
{
    struct nl_iface *ifc = nl_find(index);
    if (ifc)
        return ifc;
    if (hmap_count(NL.ifs) >= NL_IFACES_MAX) {
        if (!NL.full_logged)
            log_warn("netlink: more than %d interfaces: interface %d ignored",
                     NL_IFACES_MAX, index);
        NL.full_logged = 1;
        return NULL;
    }
    ifc = xcalloc(1, sizeof *ifc);
    ifc->index = index;
    snprintf(ifc->key, sizeof ifc->key, "%d", index);
    hmap_put(NL.ifs, ifc->key, ifc);
    return ifc;
}

/* Removes ifc, taking down what it raised. */
static void nl_remove(struct nl_iface *ifc)
{
    if (ifc->raised_cust)
        nl_down(ifc);
    hmap_del(NL.ifs, ifc->key);
    free(ifc);
}

static void nl_peer_add(struct nl_iface *ifc, const char *peer)
{
    for (size_t i = 0; i < ifc->npeers; i++)
        if (!strcmp(ifc->peers[i], peer)) {     /* known: make it the newest */
            memmove(ifc->peers[i], ifc->peers[i + 1],
                    (ifc->npeers - i - 1) * sizeof ifc->peers[0]);
            ifc->npeers--;
            break;
        }
    if (ifc->npeers == NL_PEERS_MAX) {
        memmove(ifc->peers[0], ifc->peers[1], (NL_PEERS_MAX - 1) * sizeof ifc->peers[0]);
        ifc->npeers--;
    }
    snprintf(ifc->peers[ifc->npeers++], NETLINK_ADDR_MAX, "%s", peer);
}

static void nl_peer_del(struct nl_iface *ifc, const char *peer)
{
    for (size_t i = 0; i < ifc->npeers; i++)
        if (!strcmp(ifc->peers[i], peer)) {
            memmove(ifc->peers[i], ifc->peers[i + 1],
                    (ifc->npeers - i - 1) * sizeof ifc->peers[0]);
            ifc->npeers--;
            return;
        }
}

/* Every interface, for a loop that may remove entries. */
static struct nl_iface **nl_all(size_t *n)
{
    size_t pos = 0, k = 0;
    const char *key;
    void *val;
    struct nl_iface **v = xcalloc(hmap_count(NL.ifs) + 1, sizeof *v);
    while (hmap_next(NL.ifs, &pos, &key, &val))
        v[k++] = val;
    *n = k;
    return v;
}

static void nl_clear(void)
{
    size_t n;
    struct nl_iface **v = nl_all(&n);
    for (size_t i = 0; i < n; i++) {
        free(v[i]->raised_cust);
        free(v[i]);
    }
    free(v);
    hmap_free(NL.ifs);
    NL.ifs = NULL;
}

/* ---- messages ---- */

static void nl_on_link(const struct netlink_msg *m)
{
    struct nl_iface *ifc = nl_find(m->ifindex);
    if (m->kind == NL_DELLINK) {
        if (ifc)
            nl_remove(ifc);
        return;
    }
    if (!ifc && !(ifc = nl_get(m->ifindex)))
        return;
    snprintf(ifc->name, sizeof ifc->name, "%s", m->ifname);   /* a rename too */
    ifc->up = (m->ifflags & IFF_UP) != 0;
    ifc->seen = 1;
    nl_sync(ifc, 0);
}

static void nl_on_addr(const struct netlink_msg *m)
{
    const char *peer = netlink_peer(m);
    struct nl_iface *ifc;
    if (!peer)
        return;                 /* our own address, no peer: nothing to raise */
    if (m->kind == NL_NEWADDR) {
        if (!(ifc = nl_get(m->ifindex)))
            return;
        nl_peer_add(ifc, peer);
    } else {
        if (!(ifc = nl_find(m->ifindex)))
            return;
        nl_peer_del(ifc, peer);
    }
    nl_sync(ifc, 0);
}

/* The netlink links the interface table does not carry go down. */
static void nl_reconcile(void)
{
    size_t pos = 0, n, k = 0;
    const struct link *l;
    while ((l = links_next(&pos)))
        k += l->up && l->source == LINK_SRC_NETLINK;
    struct { char *cust; char session[64]; } *down = xcalloc(k + 1, sizeof *down);
    struct nl_iface **v = nl_all(&n);
    k = 0;
    pos = 0;
    while ((l = links_next(&pos))) {
        if (!l->up || l->source != LINK_SRC_NETLINK)
            continue;
        int held = 0;
        for (size_t i = 0; i < n && !held; i++)
            held = v[i]->raised_cust && !strcmp(v[i]->raised_cust, l->customer) &&
                   !strcmp(v[i]->raised_name, l->session);
        if (!held) {
            down[k].cust = xstrdup(l->customer);
            snprintf(down[k++].session, sizeof down[0].session, "%s", l->session);
        }
    }
    free(v);
    for (size_t i = 0; i < k; i++) {
        char err[512];
        struct link_event ev = {
            .kind = LINK_WHO_CUSTOMER, .who = down[i].cust, .up = 0,
            .source = LINK_SRC_NETLINK, .session = down[i].session,
            .own_session = down[i].session[0] != 0,
        };
        log_info("netlink: %s: interface %s no longer carries its link", down[i].cust,
                 down[i].session[0] ? down[i].session : "-");
        if (link_event(&ev, nl_event_done, NULL, err, sizeof err) < 0)
            log_debug("netlink: %s down: %s", down[i].cust, err);
        free(down[i].cust);
    }
    free(down);
}

/* The end of one part of the dump. */
static void nl_dump_part_done(void)
{
    size_t n;
    struct nl_iface **v = nl_all(&n);
    if (NL.dump == DUMP_LINK) {
        for (size_t i = 0; i < n; i++) {
            if (!v[i]->seen)
                nl_remove(v[i]);        /* gone while we were not looking */
            else
                v[i]->npeers = 0;       /* the address dump says them anew */
        }
        free(v);
        nl_dump_send(DUMP_ADDR);
        return;
    }
    NL.dump = DUMP_NONE;
    for (size_t i = 0; i < n; i++)
        nl_sync(v[i], 1);
    free(v);
    nl_reconcile();
    log_debug("netlink: dump done, %zu interfaces", n);
    if (NL.redump) {
        NL.redump = 0;
        nl_dump_start();
    }
}

static void nl_message(const struct netlink_msg *m)
{
    int ours = NL.dump != DUMP_NONE && m->seq == NL.dump_seq;
    switch (m->kind) {
    case NL_NEWLINK: case NL_DELLINK:
        nl_on_link(m);
        break;
    case NL_NEWADDR: case NL_DELADDR:
        nl_on_addr(m);
        break;
    case NL_DONE:
        if (ours)
            nl_dump_part_done();
        break;
    case NL_ERROR:
        if (ours && m->error) {     /* e.g. EBUSY: try the whole dump again */
            log_warn("netlink: dump refused: %s", strerror(m->error));
            nl_retry_later(NL_RETRY_MS);
        }
        break;
    case NL_OVERRUN:
        nl_dump_start();
        break;
    case NL_OTHER:
        break;
    }
}

/* ---- the socket ---- */

/* Asks the kernel for one part of the dump; on failure the whole dump is
 * tried again later (NL.dump stays set, so nothing syncs on half a table). */
static void nl_dump_send(enum nl_dump part)
{
    struct {
        struct nlmsghdr h;
        struct ifinfomsg body;      /* the larger of ifinfomsg and ifaddrmsg */
    } req;
    struct sockaddr_nl to = { .nl_family = AF_NETLINK };
    memset(&req, 0, sizeof req);
    req.h.nlmsg_len = NLMSG_LENGTH(part == DUMP_LINK ? sizeof(struct ifinfomsg)
                                                     : sizeof(struct ifaddrmsg));
    req.h.nlmsg_type = part == DUMP_LINK ? RTM_GETLINK : RTM_GETADDR;
    req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    req.h.nlmsg_seq = NL.dump_seq = ++NL.seq;
    req.body.ifi_family = AF_UNSPEC;    /* ifa_family too: the first byte */
    NL.dump = part;
    if (sendto(NL.fd, &req, req.h.nlmsg_len, 0, (struct sockaddr *)&to, sizeof to) < 0) {
        log_warn("netlink: cannot ask for a dump: %s", strerror(errno));
        nl_retry_later(NL_RETRY_MS);
    }
}

/* A whole dump again in ms (NL.dump stays as it is until then). */
static void nl_retry_later(long ms)
{
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    if (NL.dump == DUMP_NONE)
        NL.dump = DUMP_LINK;        /* hold syncs back until the dump */
    NL.dump_seq = 0;                /* whatever comes of the old one is stale */
    NL.redump = 0;
    event_add(NL.timer, &tv);
}

static void nl_on_timer(evutil_socket_t fd, short what, void *arg)
{
    NL.dump = DUMP_NONE;
    nl_dump_start();
}

static void nl_dump_start(void)
{
    if (NL.fd < 0)
        return;
    if (NL.dump != DUMP_NONE) {
        NL.redump = 1;
        return;
    }
    size_t n;
    struct nl_iface **v = nl_all(&n);
    for (size_t i = 0; i < n; i++)
        v[i]->seen = 0;
    free(v);
    nl_dump_send(DUMP_LINK);
}

/* Logs at most once a minute per kind of drop. */
static void nl_count(unsigned long *count, time_t *logged, const char *what,
                     const char *detail)
{
    time_t now = time(NULL);
    (*count)++;
    if (now - *logged < 60)
        return;
    *logged = now;
    log_warn("netlink: %s dropped (%lu so far): %s", what, *count, detail);
}

/* One datagram. */
static void nl_datagram(size_t len)
{
    size_t off = 0;
    while (off < len) {
        struct netlink_msg m;
        size_t used;
        char err[128];
        if (netlink_parse(NL.buf + off, len - off, &used, &m, err, sizeof err) < 0)
            nl_count(&NL.bad, &NL.bad_logged, "malformed message", err);
        else
            nl_message(&m);
        if (NL.fd < 0)
            return;
        off += used;
    }
}

static void nl_on_read(evutil_socket_t fd, short what, void *arg)
{
    for (int i = 0; i < NL_READS_MAX && NL.fd >= 0; i++) {
        struct sockaddr_nl from;
        struct iovec iov = { NL.buf, NL_BUF_SIZE };
        struct msghdr mh = { .msg_name = &from, .msg_namelen = sizeof from,
                             .msg_iov = &iov, .msg_iovlen = 1 };
        ssize_t n = recvmsg(NL.fd, &mh, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                return;
            if (errno == ENOBUFS) {     /* the kernel dropped events for us */
                log_warn("netlink: receive buffer overrun: dumping again");
                nl_dump_start();
                continue;
            }
            log_err("netlink: receive: %s", strerror(errno));
            return;
        }
        if (mh.msg_namelen != sizeof from || from.nl_family != AF_NETLINK ||
            from.nl_pid != 0) {
            char who[64];
            snprintf(who, sizeof who, "sender port %u", (unsigned)from.nl_pid);
            nl_count(&NL.foreign, &NL.foreign_logged, "datagram not from the kernel", who);
            continue;
        }
        if (mh.msg_flags & MSG_TRUNC) {
            log_warn("netlink: datagram larger than %d bytes cut: dumping again",
                     NL_BUF_SIZE);
            nl_dump_start();
            continue;
        }
        nl_datagram((size_t)n);
    }
}

static int nl_open(struct event_base *base, char *err, size_t errlen)
{
    struct sockaddr_nl sa = {
        .nl_family = AF_NETLINK,
        .nl_groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR,
    };
    socklen_t salen = sizeof sa;
    int sz = NL_RCVBUF;
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0) {
        snprintf(err, errlen, "netlink socket: %s", strerror(errno));
        return -1;
    }
    /* a bigger buffer than rmem_max needs CAP_NET_ADMIN: take what we get */
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof sz) < 0)
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &salen) < 0) {
        snprintf(err, errlen, "netlink bind: %s", strerror(errno));
        close(fd);
        return -1;
    }
    NL.base = base;
    NL.fd = fd;
    NL.buf = xmalloc(NL_BUF_SIZE);
    NL.ifs = hmap_new(0);
    NL.rev = event_new(base, fd, EV_READ | EV_PERSIST, nl_on_read, NULL);
    NL.timer = evtimer_new(base, nl_on_timer, NULL);
    NL.dump = DUMP_NONE;
    NL.redump = 0;
    event_add(NL.rev, NULL);
    return 0;
}

void netlink_stop(void)
{
    if (NL.fd < 0)
        return;
    event_free(NL.rev);
    event_free(NL.timer);
    close(NL.fd);
    nl_clear();
    free(NL.buf);
    NL.rev = NL.timer = NULL;
    NL.buf = NULL;
    NL.fd = -1;
    NL.dump = DUMP_NONE;
}

int netlink_running(void)
{
    return NL.fd >= 0;
}

/* Every link netlink raised goes down (the watcher is off). */
static void nl_drop_all(void)
{
    if (NL.ifs)
        return;
    NL.ifs = hmap_new(0);       /* an empty table: nothing carries a link */
    nl_reconcile();
    hmap_free(NL.ifs);
    NL.ifs = NULL;
}

int netlink_configure(struct event_base *base, int enabled, char *err, size_t errlen)
{
    if (!enabled) {
        if (NL.fd >= 0)
            log_info("netlink watcher: stopped");
        netlink_stop();
        nl_drop_all();
        return 0;
    }
    if (NL.fd < 0) {
        if (nl_open(base, err, errlen) < 0) {
            nl_drop_all();
            return -1;
        }
        log_info("netlink watcher: running (link and address changes of customer "
                 "interfaces raise their links)");
    }
    nl_dump_start();
    return 0;
}

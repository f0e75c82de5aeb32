/*
 * autoturn — raises a customer's link when it shows itself (autoturn.h):
 * after an authentication the protocol sessions report, or on a connection
 * from the customer's autoturn_networks.  The decision is a pure function;
 * raising goes through peer_link_up() (link_event(), like every detector:
 * source "autoturn", the customer's link_ttl, session "LISTENER:[PEER]").
 *
 * Trusts: the customer (from the registry) and that the caller's
 * authentication succeeded; the peer is the TCP peer's numeric address
 * (listener.c), escaped with util_log_safe() in logs all the same and
 * checked again by links_set().  Guarantees: nothing is raised for a
 * customer without autoturn = true, for an unauthenticated session from
 * outside its autoturn_networks, nor for a non-numeric peer ("unix"); a
 * connection from inside a network at most refreshes a link already up at
 * that address once a minute (no write per connection); a link up from
 * another source (RADIUS, netlink, ODMR, kickq) is left alone: those know
 * where the customer is, a login may come from a mail client elsewhere.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "core/config.h"
#include "core/log.h"
#include "core/netlist.h"
#include "core/registry.h"
#include "core/util.h"
#include "link/autoturn.h"
#include "link/link_event.h"
#include "link/links.h"
#include "link/peer_link.h"

#define REFRESH_MIN 60          /* s between refreshes by connections */

static struct {
    const struct customer **with_nets;  /* registry customers with networks */
    size_t n;
} AT;

enum autoturn_how autoturn_decide(const struct customer *c, int authenticated,
                                  const char *peer)
{
    unsigned char a[16];
    if (!c || !c->autoturn || c->deliver != DELIVER_LINK || !peer ||
        (inet_pton(AF_INET, peer, a) != 1 && inet_pton(AF_INET6, peer, a) != 1))
        return AUTOTURN_NO;
    if (authenticated)
        return AUTOTURN_AUTH;
    if (netlist_match(&c->autoturn_networks, peer, NULL))
        return AUTOTURN_NETWORK;
    return AUTOTURN_NO;
}

void autoturn_configure(const struct registry *reg)
{
    size_t n = reg ? registry_count(reg) : 0;
    free(AT.with_nets);
    AT.with_nets = NULL;
    AT.n = 0;
    for (size_t i = 0; i < n; i++) {
        const struct customer *c = registry_at(reg, i);
        if (!c->autoturn || !c->autoturn_networks.n)
            continue;
        AT.with_nets = xrealloc(AT.with_nets, (AT.n + 1) * sizeof *AT.with_nets);
        AT.with_nets[AT.n++] = c;
    }
}

const struct customer *autoturn_by_network(const char *peer)
{
    const struct customer *best = NULL;
    int best_prefix = -1;
    for (size_t i = 0; i < AT.n; i++) {
        int prefix;
        if (netlist_match(&AT.with_nets[i]->autoturn_networks, peer, &prefix) &&
            prefix > best_prefix) {
            best = AT.with_nets[i];
            best_prefix = prefix;
        }
    }
    return best;
}

/* The link table's answer: only a failure is worth a line. */
static void raise_done(const struct link_event_result *res, void *arg)
{
    if (res->error)
        log_warn("autoturn: customer=%s: %s", res->customer, res->error);
}

/* Already up at peer by an autoturn of this session within REFRESH_MIN? */
static int recently_raised(const struct customer *c, const char *session,
                           const char *peer)
{
    const struct link *l = links_get(c->name);
    return l && l->up && l->source == LINK_SRC_AUTOTURN && !strcmp(l->address, peer) &&
           !strcmp(l->session, session) && l->expires &&
           l->expires - (int64_t)time(NULL) > c->link_ttl - REFRESH_MIN;
}

static int autoturn_raise(const struct customer *c, enum autoturn_how how,
                          const char *listener, const char *peer)
{
    char session[128], safe[256], err[512];
    snprintf(session, sizeof session, "%s:[%s]", listener, peer);
    util_log_safe(safe, sizeof safe, peer);
    if (how == AUTOTURN_NETWORK && recently_raised(c, session, peer))
        return 0;
    const struct link *l;
    struct peer_link pl = {
        .customer = c->name, .peer = peer, .session = session,
        .source = LINK_SRC_AUTOTURN, .ttl = LINK_EVENT_TTL_DEFAULT,
    };
    int rc = peer_link_up(&pl, &l, raise_done, NULL, err, sizeof err);
    if (rc == 0) {
        char at[256];
        if (how == AUTOTURN_NETWORK)
            return 0;           /* no line per connection */
        log_info("autoturn: customer=%s client=[%s] via=%s: its link is up by %s at %s: "
                 "left alone", c->name, safe, listener, links_source_name(l->source),
                 util_log_safe(at, sizeof at, l->address));
        return 0;
    }
    if (rc < 0) {
        log_warn("autoturn: customer=%s client=[%s] via=%s refused: %s", c->name, safe,
                 listener, err);
        return -1;
    }
    log_info("autoturn: customer=%s client=[%s] via=%s%s", c->name, safe, listener,
             how == AUTOTURN_NETWORK ? " auth=network" : "");
    return 1;
}

/* An ODMR session asks for its mail by ATRN on its own connection: a push
 * to the peer beside it would only make ATRN wait (451). */
static int on_odmr(const char *listener)
{
    return listener && !strcmp(listener, "odmr");
}

int autoturn_login(const struct customer *c, const char *listener, const char *peer)
{
    if (on_odmr(listener))
        return 0;
    enum autoturn_how how = autoturn_decide(c, 1, peer);
    return how == AUTOTURN_NO ? 0 : autoturn_raise(c, how, listener, peer);
}

int autoturn_connect(const char *listener, const char *peer)
{
    if (on_odmr(listener))
        return 0;
    const struct customer *c = AT.n ? autoturn_by_network(peer) : NULL;
    enum autoturn_how how = autoturn_decide(c, 0, peer);
    return how == AUTOTURN_NO ? 0 : autoturn_raise(c, how, listener, peer);
}

void autoturn_shutdown(void)
{
    free(AT.with_nets);
    AT.with_nets = NULL;
    AT.n = 0;
}

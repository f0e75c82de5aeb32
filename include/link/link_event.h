/*
 * link_event — the one entry for every link detector (kickq link up/down;
 * later RADIUS accounting, netlink, ODMR, AutoTURN): "WHO is up at ADDRESS"
 * or "WHO is down", nothing about queues.  It resolves WHO to a customer of
 * the registry kickmaild.c gives it, applies the link policy, and sets the
 * link table (links.h); delivery learns of the change from the table's
 * change callback, with the event's address in its snapshot.
 *
 * Policy, in this order: WHO must name a configured customer; a link up of
 * a deliver = "link" customer needs an address; the TTL is the customer's
 * link_ttl unless the event carries its own.  Then links_set() checks the
 * address (numeric unicast IPv4/IPv6), the TTL's range, the source, and
 * the session id.
 *
 * Trusts: nothing about WHO, the address or the session (they come from
 * detectors, some from the network): WHO is checked for its kind's form
 * and looked up, never used as a customer name before that; error strings
 * carry it with control characters as '?'.  Needs a registry set with
 * link_event_configure() and the link table started (links_init()).
 * Guarantees: link_event() either refuses at once (-1, err, the callback is
 * never called) or calls the callback exactly once, after it returned: when
 * the change is durable (res->error NULL), or when its write failed and the
 * change was undone (res->error says why).
 */
#ifndef KM_LINK_EVENT_H
#define KM_LINK_EVENT_H

#include <stddef.h>

#include "link/links.h"

struct customer;
struct registry;

/* Which kind of name WHO is. */
enum link_who {
    LINK_WHO_CUSTOMER,          /* a customer name */
    LINK_WHO_RADIUS_USER,       /* a RADIUS User-Name or pppd PEERNAME: the
                                 * customer with that radius_user, else the
                                 * customer of that name if it has none
                                 * (both without regard to case) */
    LINK_WHO_INTERFACE,         /* a network interface: the customer with
                                 * that interface */
};

#define LINK_EVENT_TTL_DEFAULT  (-1L)   /* ttl: the customer's link_ttl */

struct link_event {
    enum link_who kind;
    const char *who;
    int up;
    const char *address;        /* up: numeric address, or NULL/"" for none
                                 * (refused for deliver = "link"); down: ignored */
    long ttl;                   /* up: seconds, 0 = no expiry, or
                                 * LINK_EVENT_TTL_DEFAULT; down: ignored */
    enum link_source source;    /* the detector: not NONE or EXPIRY */
    const char *session;        /* the detector's session id, or NULL */
    int own_session;            /* down: only if the link is up with this
                                 * session (links_down_if; session required),
                                 * so a late down of an old call never drops
                                 * a newer link */
};

/* What the caller needs to answer; valid during the callback only. */
struct link_event_result {
    const char *customer;       /* the customer WHO resolved to */
    int up;                     /* its link once the change was durable (or */
    const char *address;        /* undone): a later change shows here; "" = none */
    const char *error;          /* NULL, or why the change did not hold */
};

typedef void link_event_cb(const struct link_event_result *res, void *arg);

/* The registry WHO is resolved in: at start and at every reload, before the
 * old registry is freed (NULL: every event is refused).  Events in flight
 * keep their own copy of the customer name. */
void link_event_configure(const struct registry *reg);

/* The customer ev->who resolves to if ev passes the policy (the address is
 * checked later, by links_set()), else NULL with err, e.g.
 * "acme: no such customer" or "acme: an ADDRESS is required (deliver =
 * \"link\")".  Changes nothing. */
const struct customer *link_event_check(const struct link_event *ev, char *err,
                                        size_t errlen);

/* Checks ev (link_event_check(), then links_set()'s checks) and sets the
 * link.  0: cb(res, arg) will be called exactly once (see above).  -1: err
 * says why; nothing changed and cb is never called. */
int link_event(const struct link_event *ev, link_event_cb *cb, void *arg,
               char *err, size_t errlen);

/* Frees what waits for callbacks that can no longer come: call after
 * links_shutdown(). */
void link_event_shutdown(void);

#endif

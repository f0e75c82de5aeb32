/*
 * link/peer_link — the link of a protocol session's peer, as ODMR and
 * AutoTURN raise it: the customer up at the session's peer address, with
 * the detector's source, TTL and session id, through link_event(); and
 * down again, only while the link is still that session's.  The one rule
 * both keep: a link that another source raised (RADIUS, netlink, kickq,
 * ...) is left alone, since that source knows where the customer is.
 */
#ifndef KM_PEER_LINK_H
#define KM_PEER_LINK_H

#include <stddef.h>

#include "link/link_event.h"

struct peer_link {
    const char *customer;       /* a customer name */
    const char *peer;           /* the session's peer: the link's address */
    const char *session;        /* the detector's session id */
    enum link_source source;    /* the detector */
    long ttl;                   /* seconds, or LINK_EVENT_TTL_DEFAULT */
    int keep_own;               /* 1: a link up from this same source (another
                                 * session of it) is left alone too */
};

/* The customer's link when it is up and pl's up must leave it alone (from
 * another source, or from pl's own when keep_own), else NULL.  Changes
 * nothing. */
const struct link *peer_link_other(const struct peer_link *pl);

/* Raises the link at pl->peer unless peer_link_other() finds one (then 0,
 * *other set to it when other is not NULL; nothing changed).  1: the
 * change is under way, cb(res, arg) will be called once (link_event()).
 * -1: refused, err says why, cb never called. */
int peer_link_up(const struct peer_link *pl, const struct link **other, link_event_cb *cb,
                 void *arg, char *err, size_t errlen);

/* Takes the link down only if it is still up with pl->session and
 * pl->source (a later link of the customer stays).  0 under way (cb called
 * once), -1 refused (err). */
int peer_link_down(const struct peer_link *pl, link_event_cb *cb, void *arg, char *err,
                   size_t errlen);

#endif

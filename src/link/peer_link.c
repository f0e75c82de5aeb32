/*
 * link/peer_link — a protocol session's peer as a link event (peer_link.h):
 * builds the link_event for "this customer up at this session's peer" (or
 * down, only if still this session's) and applies the rule that a link up
 * from another source is left alone.  Trusts nothing more than
 * link_event() does: the customer name, the address and the session id
 * are checked there; the link table is read with links_get().
 */
#include <stddef.h>

#include "link/link_event.h"
#include "link/links.h"
#include "link/peer_link.h"

const struct link *peer_link_other(const struct peer_link *pl)
{
    const struct link *l = links_get(pl->customer);
    if (!l || !l->up)
        return NULL;
    return pl->keep_own || l->source != pl->source ? l : NULL;
}

int peer_link_up(const struct peer_link *pl, const struct link **other, link_event_cb *cb,
                 void *arg, char *err, size_t errlen)
{
    const struct link *l = peer_link_other(pl);
    if (other)
        *other = l;
    if (l)
        return 0;
    struct link_event ev = {
        .kind = LINK_WHO_CUSTOMER, .who = pl->customer, .up = 1, .address = pl->peer,
        .ttl = pl->ttl, .source = pl->source, .session = pl->session,
    };
    return link_event(&ev, cb, arg, err, errlen) < 0 ? -1 : 1;
}

int peer_link_down(const struct peer_link *pl, link_event_cb *cb, void *arg, char *err,
                   size_t errlen)
{
    struct link_event ev = {
        .kind = LINK_WHO_CUSTOMER, .who = pl->customer, .up = 0, .address = pl->peer,
        .ttl = pl->ttl, .source = pl->source, .session = pl->session, .own_session = 1,
    };
    return link_event(&ev, cb, arg, err, errlen);
}

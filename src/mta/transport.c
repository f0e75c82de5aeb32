/*
 * transport — the transport lookup (a customer's `deliver` setting to its
 * transport) and the one transport that never pushes: "pickup" (the mail
 * waits for the customer to fetch it over ODMR, ATRN).  Its dest() refuses
 * with the reason a kick reports; it has no sessions, so its customers are
 * never online.  Local domains and deliver = "maildrop" customers go to
 * the maildir transport (transport_maildir.c).
 *
 * Trusts the configuration (checked at load).  Guarantees: transport_for()
 * never returns NULL.
 */
#include <stdio.h>

#include "core/config.h"
#include "transport.h"

static int pickup_dest(const struct customer *c, const struct deliver_link *link,
                       struct transport_dest *dst, char *err, size_t errlen)
{
    snprintf(err, errlen, "%s: mail is held for ODMR pickup (ATRN)", c->name);
    return -1;
}

static const struct transport transport_pickup = { .name = "pickup",
                                                    .dest = pickup_dest };

const struct transport *transport_for(const struct customer *c)
{
    switch (c->deliver) {
    case DELIVER_LINK:
    case DELIVER_HOST:
        return &transport_smtp;
    case DELIVER_MAILDROP:
    case DELIVER_LOCAL:
        return &transport_maildir;
    case DELIVER_PICKUP:
    default:
        return &transport_pickup;
    }
}

int transport_init(struct event_base *base, char *err, size_t errlen)
{
    if (transport_smtp_init(base, err, errlen) < 0)
        return -1;
    return transport_maildir_init(base, err, errlen);
}

void transport_shutdown(void)
{
    transport_maildir_shutdown();
    transport_smtp_shutdown();
}

/*
 * transport — the transport lookup (a customer's `deliver` setting to its
 * transport) and the two transports that never push: "maildrop" (the mail
 * waits in the customer's POP3 maildrop) and "pickup" (it waits for the
 * customer to fetch it over ODMR, ATRN).  Their dest() refuses with the
 * reason a kick reports; they have no sessions, so their customers are
 * never online.
 *
 * Trusts the configuration (checked at load).  Guarantees: transport_for()
 * never returns NULL.
 */
#include <stdio.h>

#include "core/config.h"
#include "transport.h"

static int maildrop_dest(const struct customer *c, const struct deliver_link *link,
                         struct transport_dest *dst, char *err, size_t errlen)
{
    snprintf(err, errlen, "%s: delivers to a POP3 maildrop, not by SMTP", c->name);
    return -1;
}

static int pickup_dest(const struct customer *c, const struct deliver_link *link,
                       struct transport_dest *dst, char *err, size_t errlen)
{
    snprintf(err, errlen, "%s: mail is held for ODMR pickup (ATRN)", c->name);
    return -1;
}

static const struct transport transport_maildrop = { .name = "maildrop",
                                                      .dest = maildrop_dest };
static const struct transport transport_pickup = { .name = "pickup",
                                                    .dest = pickup_dest };

const struct transport *transport_for(const struct customer *c)
{
    switch (c->deliver) {
    case DELIVER_LINK:
    case DELIVER_HOST:
        return &transport_smtp;
    case DELIVER_MAILDROP:
        return &transport_maildrop;
    case DELIVER_PICKUP:
    default:
        return &transport_pickup;
    }
}

int transport_init(struct event_base *base, char *err, size_t errlen)
{
    return transport_smtp_init(base, err, errlen);
}

void transport_shutdown(void)
{
    transport_smtp_shutdown();
}

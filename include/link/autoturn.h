/*
 * autoturn — AutoTURN: a customer with autoturn = true that shows itself
 * (a successful SMTP AUTH on any listener but odmr, a POP3 login of its
 * domain maildrop, or any SMTP/POP3 connection from its autoturn_networks)
 * has its link raised at the session's peer address,
 * source "autoturn", session "LISTENER:[PEER]", TTL its link_ttl; delivery
 * then pushes its held mail there (port: its `port`).  Protocol sessions
 * call autoturn_login() / autoturn_connect(); nothing else unauthenticated
 * ever moves mail.
 */
#ifndef KM_AUTOTURN_H
#define KM_AUTOTURN_H

struct customer;
struct registry;

enum autoturn_how {
    AUTOTURN_NO = 0,            /* nothing to raise */
    AUTOTURN_AUTH,              /* an authenticated session of the customer */
    AUTOTURN_NETWORK,           /* a connection from its autoturn_networks */
};

/* Pure: what a session of customer c (NULL: none known) from peer (a
 * numeric address, else never a network match) calls for.  authenticated:
 * c proved who it is.  AUTOTURN_NO unless c has autoturn = true and
 * deliver = "link", and for a peer that is not a numeric address. */
enum autoturn_how autoturn_decide(const struct customer *c, int authenticated,
                                  const char *peer);

/* The registry whose autoturn_networks autoturn_connect() looks in: at start
 * and at every reload, before the old registry is freed (NULL: none).
 * Indexes the customers that have networks. */
void autoturn_configure(const struct registry *reg);

/* The customer whose autoturn_networks hold peer (the longest prefix; on a
 * tie, the first in the registry), or NULL.  Costs O(customers with
 * networks), not O(customers). */
const struct customer *autoturn_by_network(const char *peer);

/* Customer c authenticated on listener (its protocol name: "smtp",
 * "submission", "smtps", "pop3", "pop3s"; "odmr": nothing, that session
 * collects its mail by ATRN) from peer: raises c's
 * link at peer when autoturn_decide() says so, with one log line
 * "autoturn: customer=NAME client=[PEER] via=LISTENER".  1 raised (the
 * change is under way), 0 nothing to do, -1 refused (logged). */
int autoturn_login(const struct customer *c, const char *listener, const char *peer);

/* A new connection on listener from peer: raises the link of the customer
 * whose autoturn_networks hold peer, if any (as autoturn_login, the log
 * line ending "auth=network").  Same results. */
int autoturn_connect(const char *listener, const char *peer);

void autoturn_shutdown(void);

#endif

/*
 * deliver — the delivery tier (mta/): pushes customers' held mail through a
 * transport (SMTP to the link's address or a fixed host, or local delivery
 * into maildrops) when the customer is reachable (link up, online "always",
 * or local delivery, always) or kicked.  It sits
 * above the queue: it registers its hooks with the qmgr (qmgr_deliver.h) in
 * deliver_init() and learns of new mail, reloads and releases through them.
 * It does not read the link table itself: kickmaild.c hands it the table's
 * lookup and tells it of every link change (deliver_link_changed).
 */
#ifndef KM_DELIVER_H
#define KM_DELIVER_H

#include <stddef.h>

/* A customer's link as delivery sees it. */
struct deliver_link {
    int up;
    const char *address;            /* numeric address, "" when none */
};
/* Looks a customer's link up: 0 with *out set (valid until the loop turns),
 * or -1 when the customer never had a link. */
typedef int deliver_link_fn(const char *customer, struct deliver_link *out);

/* After qmgr_init(): sets up the transports, registers the queue hooks and
 * starts delivery for every customer reachable now.  links: the link
 * table's lookup.  0 / -1 with why in err. */
int deliver_init(deliver_link_fn *links, char *err, size_t errlen);
/* The client TLS context for deliveries started from now on (tls section,
 * customers' tls_ca; a reference is taken; sessions under way keep theirs).
 * At start (before deliver_init) and after each reload. */
struct tls_ctx;
void deliver_configure_tls(struct tls_ctx *client);
/* Before qmgr_shutdown(): frees every delivery state (connections are
 * dropped) and unregisters the hooks. */
void deliver_shutdown(void);

/* Result of a kick (kickq kick, ETRN). */
struct deliver_kick_result {
    unsigned messages;              /* messages waiting for the customer */
    char address[256];              /* where the flush goes (an address, or a
                                     * fixed host's name) */
    int port;
    int already;                    /* joined a flush running (or, for an ETRN,
                                     * started within etrn_interval) */
};
/* Kicks a customer: delivers its waiting mail now to its link address (link
 * up) or fixed host, without changing the link, the retry backoff or the
 * time of the next retry.  -1 with why in err: no usable address, a
 * pickup or deliver = "maildrop" customer, unknown customer.  A local
 * domain delivers into its maildrops (address "local", port 0): a kick
 * retries its deferred mail now.  A kick while a pass runs
 * joins it (already = 1; one more pass follows once it ends), so a customer
 * never has more than its `connections`; with `etrn`, a kick within
 * etrn_interval of the last ETRN-started pass joins too, and that pass
 * comes when the interval is over.  When a pass starts, its first
 * connections are already connecting on return (the connect() is made
 * before anything is logged): callers log and reply after it. */
int deliver_kick(const char *customer, int etrn, struct deliver_kick_result *res,
                 char *err, size_t errlen);

/* ODMR (RFC 2645): after ATRN the customer's held mail goes over the
 * connection its ODMR client opened (deliver_attach.c).  Outcomes of
 * deliver_atrn_check(). */
enum deliver_atrn {
    DELIVER_ATRN_OK,                /* mail waits: answer 250 and start */
    DELIVER_ATRN_NOMAIL,            /* nothing waits for those domains (453) */
    DELIVER_ATRN_BUSY,              /* a delivery of the customer is under way (451) */
    DELIVER_ATRN_REFUSED,           /* not a pickup or link customer, or unknown (450) */
};
/* Whether customer's mail for domains (n lower-case names, each one of
 * its domains) can be handed over now; *msgs: the messages waiting (held
 * ones are not).  O(the customer's mail).  Changes nothing. */
enum deliver_atrn deliver_atrn_check(const char *customer, const char *const *domains,
                                     size_t n, unsigned *msgs);
/* The end of an attached session: recipients delivered, deferred
 * (stayed queued) and bounced in it. */
typedef void deliver_atrn_done_fn(unsigned sent, unsigned deferred, unsigned bounced,
                                  void *arg);
struct io;
/* After deliver_atrn_check() said OK (and the 250 was queued on io):
 * takes io over (freed by delivery) and runs one pass over customer's mail
 * for domains as an SMTP client on it (waits for the customer's 220),
 * while no other delivery of the customer starts; peer/port name the
 * customer's side for logs (relay=).  done(arg) is called exactly once,
 * when the session is over, never from inside this call.  -1 (nothing
 * started, io stays the caller's) when the check no longer holds. */
int deliver_atrn_start(const char *customer, const char *const *domains, size_t n,
                       struct io *io, const char *peer, int port,
                       deliver_atrn_done_fn *done, void *arg);

/* Maildrop drop got room (a POP3 session removed or expired messages): the
 * mail of its local domain or maildrop customer that waits (deferred for
 * quota) is tried now, without changing the backoff; joins a pass that
 * runs.  Nothing when nothing waits. */
void deliver_maildrop_room(const char *drop);

/* A customer's link changed (the link table's change callback, wired by
 * kickmaild.c): link up starts delivery, link down ends deliveries in
 * flight cleanly.  was_up: the link was up before (up and was_up both 1: a
 * refresh, or a move when the address differs).  What it starts uses up
 * and address (numeric, "" when none), not a fresh lookup. */
void deliver_link_changed(const char *customer, int up, int was_up, const char *address);

/* Shutdown: stop starting deliveries (qmgr_stop(): nor bounces) and end
 * those in flight (what got no 2xx after the final dot stays queued).
 * deliver_busy() tells whether reads, deliveries or bounces are still
 * completing. */
void deliver_stop(void);
int deliver_busy(void);

#endif

/*
 * transport — how the delivery scheduler (deliver.c) hands a customer's
 * mail to where it goes.  The scheduler decides when and what (passes,
 * recipients, retries, kicks); a transport knows where (dest) and how: a
 * session that takes one message at a time and reports a result for each
 * recipient.  Private to mta/.
 *
 * Today: "smtp" (transport_smtp.c: SMTP to the link's address or to the
 * customer's fixed host, whose name the scheduler looks up), "maildir"
 * (transport_maildir.c: local delivery into the maildrops of local domains
 * and of deliver = "maildrop" customers), and one that never pushes
 * (transport.c): "pickup" (the mail waits for ODMR, ATRN); and "attach"
 * (transport_smtp.c: the customer's accepted ODMR connection handed to
 * smtp_client_attach(), opened only by deliver_attach.c's passes).  To
 * come: MX relay.
 */
#ifndef KM_MTA_TRANSPORT_H
#define KM_MTA_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

struct customer;
struct deliver_link;
struct event_base;
struct evbuffer;
struct transport_session;
struct io;

/* Where a customer's mail goes now. */
struct transport_dest {
    char host[256];             /* a numeric address, or a host name that the
                                 * scheduler looks up (a fixed host) */
    int port;
};

/* One recipient's result. */
struct transport_result {
    int code;                   /* 2xx delivered; 4xx or 0 (not attempted,
                                 * connection lost) later; 5xx permanent */
    char *text;                 /* the reply or our reason, one line;
                                 * malloc'd, owned by the message's owner */
};

/* One message for some of its recipients. */
struct transport_msg {
    uint64_t id;                /* queue ID, for logs */
    const char *idstr;
    const char *sender;         /* "" for <> */
    size_t nrcpt;
    const char *const *rcpts;
    struct evbuffer *body;      /* as stored: CRLF lines, not dot-stuffed; a
                                 * transport's abort() may take it over (sets
                                 * it NULL and frees it itself) */
    int eightbit;               /* body has 8-bit bytes */
    void *owner;                /* free for the owner */
    struct transport_result *results;   /* nrcpt entries, set by the transport */
};

/* What a session tells its owner. */
struct transport_cbs {
    /* Ready for a message: transport->send() or transport->quit(). */
    void (*ready)(void *arg);
    /* A message is finished, every result set; relay: where it went, for
     * logs ("ip:port").  The owner frees msg. */
    void (*done)(struct transport_msg *msg, const char *relay, void *arg);
    /* The session is over (called once, last): code 0 clean, else a reply
     * code or -1 with reason.  Never a verdict on any recipient. */
    void (*closed)(int code, const char *reason, void *arg);
};

/* A session's target. */
struct transport_target {
    const struct customer *cust;
    const char *host;           /* numeric address */
    int port;
    const char *helo_name;      /* our name */
    int plain;                  /* no optional TLS: a tls = "may" handshake
                                 * failed in this pass */
    struct io *io;              /* transport_attach: the connection to take
                                 * over (ODMR), else NULL */
};

struct transport {
    const char *name;
    int local;                  /* delivers on this host: always reachable,
                                 * no link, no address (dest is "local") */
    /* Where c's mail goes now: 0 with *dst, or -1 with why in err (link
     * down, or mail that is never pushed but fetched).  link: c's link,
     * NULL when it never had one. */
    int (*dest)(const struct customer *c, const struct deliver_link *link,
                struct transport_dest *dst, char *err, size_t errlen);
    /* Opens a session: NULL on immediate failure, else every outcome comes
     * through cbs (never from inside this call).  NULL for a transport that
     * never pushes (its customers are never online). */
    struct transport_session *(*open)(const struct transport_target *t,
                                      const struct transport_cbs *cbs, void *arg);
    /* Sends one message after ready (msg, its strings and body unchanged
     * until done). */
    void (*send)(struct transport_session *s, struct transport_msg *msg);
    /* Ends the session once the message in flight is done; closed() follows. */
    void (*quit)(struct transport_session *s);
    /* Ends it now: a message in flight gets done() (nothing delivered that
     * had no 2xx after the final dot), then closed(), both before this
     * returns; s is gone after it. */
    void (*abort)(struct transport_session *s, const char *why);
};

/* The transport of c's `deliver` setting (never NULL). */
const struct transport *transport_for(const struct customer *c);

/* Set up and free what the transports need (TLS client context...).
 * 0 / -1 with why in err. */
int transport_init(struct event_base *base, char *err, size_t errlen);
void transport_shutdown(void);

/* transport_smtp.c: SMTP over a connection already open (ODMR: the
 * scheduler's attached passes, deliver_attach.c). */
extern const struct transport transport_attach;

/* transport_smtp.c */
extern const struct transport transport_smtp;
int transport_smtp_init(struct event_base *base, char *err, size_t errlen);
/* The client TLS context for sessions opened from now on (a reference is
 * taken; NULL: STARTTLS is never used).  Before or after init. */
struct tls_ctx;
void transport_smtp_set_tls(struct tls_ctx *ctx);
void transport_smtp_shutdown(void);

/* transport_maildir.c: its worker threads; _configure (at start and after
 * each reload, on the loop) queues the usage scan of the maildrops not read
 * yet; _shutdown joins the threads (a delivery being written finishes). */
extern const struct transport transport_maildir;
int transport_maildir_init(struct event_base *base, char *err, size_t errlen);
void transport_maildir_configure(void);
void transport_maildir_shutdown(void);
/* Reads maildrop drop's usage again soon (not more often than every
 * MD_RESCAN_SECS): it was found full at RCPT, and files may have gone. */
void transport_maildir_rescan(const char *drop);

#endif

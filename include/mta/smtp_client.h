/*
 * smtp_client — one outgoing SMTP connection (RFC 5321) on the io layer,
 * driven by the qmgr: it connects, greets (EHLO, HELO fallback), upgrades
 * with STARTTLS per policy, then asks its owner for messages one at a time
 * (ready callback) and reports per-recipient results (done callback), until
 * told to quit or aborted.  The owner supplies whole messages (body already
 * read from the spool).  Everything the remote server sends is untrusted:
 * replies are parsed by smtp_reply_* (smtp_reply.h: bounded line length and
 * line count).
 */
#ifndef KM_SMTP_CLIENT_H
#define KM_SMTP_CLIENT_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct evbuffer;
struct tls_ctx;
struct smtp_client;

/* VERIFY: ENCRYPT, and after the handshake the certificate must verify
 * (tls_ssl_verified: chain against tls_ca or the system CAs, name against
 * verify_name), else QUIT and fail with "Server certificate not verified". */
enum smtp_client_tls { SMTPC_TLS_NONE, SMTPC_TLS_MAY, SMTPC_TLS_ENCRYPT, SMTPC_TLS_VERIFY };

struct smtp_client_opts {
    const char *host;           /* numeric IPv4/IPv6 address to connect to */
    int port;
    const char *helo_name;      /* our name in EHLO/HELO */
    enum smtp_client_tls tls;
    struct tls_ctx *tls_ctx;    /* client context (tls_client_ctx()); NULL = no TLS */
    const char *verify_name;    /* VERIFY: the name the certificate must carry
                                 * (also sent as SNI) */
    const char *tls_ca;         /* VERIFY: a tls_ctx_add_ca() file, or NULL =
                                 * the system CAs */
    const char *expect_helo;    /* NULL, or the name the server must announce:
                                 * compared with the first word after the code in
                                 * the 220 greeting and in the EHLO/HELO reply
                                 * (case-insensitive); mismatch → QUIT and fail */
    int connect_timeout;        /* seconds; 0 = 30 */
    int scale_timeouts_ms;      /* tests only: 0 = RFC 5321 4.5.3.2 timeouts in
                                 * seconds; > 0 = every timeout is this many ms */
};

/* Result of one recipient. */
struct smtp_rcpt_result {
    int code;                   /* SMTP reply code, or 0: not attempted / connection lost */
    char *text;                 /* the remote's reply, one line ("250 2.0.0 Ok ...";
                                 * multi-line replies joined with "; "), or our
                                 * reason ("connection refused", "lost connection
                                 * after RCPT"...); malloc'd, owned by the msg */
};

struct smtp_client_msg {
    uint64_t id;                /* owner's queue ID, for logs */
    const char *idstr;
    const char *sender;         /* "" for <> */
    size_t nrcpt;
    const char *const *rcpts;
    struct evbuffer *body;      /* CRLF lines, not dot-stuffed; the client stuffs */
    int eightbit;               /* body has 8-bit bytes: BODY=8BITMIME when offered */
    void *owner;                /* free for the owner */
    struct smtp_rcpt_result *results;   /* nrcpt entries, filled by the client
                                         * (cleared by smtp_client_send: entries
                                         * must not hold texts still to be freed) */
};

struct smtp_client_cbs {
    /* Connection ready for a message: call smtp_client_send() or
     * smtp_client_quit() (now or later). */
    void (*ready)(struct smtp_client *c, void *arg);
    /* A message is finished: every results[i] is set: 2xx delivered, 4xx or 0
     * retry later, 5xx permanent.  A message larger than the server's SIZE gets
     * 552 5.3.4 for every recipient without being sent.  The owner frees msg. */
    void (*done)(struct smtp_client *c, struct smtp_client_msg *msg, void *arg);
    /* The connection is over (after QUIT, an error, or abort); code: 0 clean,
     * else the reply code or -1 for a connection-level failure; reason text.
     * -1 is also used for: expect_helo mismatch ("server greeted as X,
     * expected Y"), tls = encrypt/verify without STARTTLS or with a failed
     * handshake, verify with a certificate that does not verify,
     * malformed replies, timeouts, lost connections, abort.  A 421 gives 421.
     * None of these is a verdict on any recipient: held mail stays.
     * The client is freed after this returns. */
    void (*closed)(struct smtp_client *c, int code, const char *reason, void *arg);
};

/* Starts connecting.  NULL only on immediate failure (host not a numeric
 * address, bad port); any other failure, even an immediate one, is reported
 * by closed() from the event loop, never from inside this call. */
struct smtp_client *smtp_client_start(struct event_base *base,
                                      const struct smtp_client_opts *opts,
                                      const struct smtp_client_cbs *cbs, void *arg);
/* The same on a connection already open (ODMR, RFC 2645: after ATRN the
 * customer's side of an accepted session is the server): the client takes
 * io over (its callback, timeouts; freed with the client) and starts by
 * waiting for the 220 greeting.  opts->host names the peer (its numeric
 * address, for logs and reasons); opts->port likewise; a connection already
 * under TLS gets no STARTTLS.  NULL only on bad arguments (io then stays
 * the caller's); every outcome comes through cbs, never from inside this
 * call. */
struct io;
struct smtp_client *smtp_client_attach(struct event_base *base, struct io *io,
                                       const struct smtp_client_opts *opts,
                                       const struct smtp_client_cbs *cbs, void *arg);
/* Sends one message (only after ready, once per ready; anything else is a
 * broken invariant: log_fatal).  Recipients rejected with 452 4.5.3 are
 * retried in a new transaction on the same connection.  PIPELINING is
 * used when offered (MAIL, RCPTs, DATA in one write).  msg, its strings and
 * its body must stay unchanged until done(); the body is copied to the
 * socket in blocks (one copy), dot-stuffed, CR LF added when missing.
 * Called after closed() has begun (e.g. from done() during a failure): done()
 * follows at once with code 0 for every recipient. */
void smtp_client_send(struct smtp_client *c, struct smtp_client_msg *msg);
/* Sends QUIT and closes; closed() follows.  Before ready or with a message
 * in flight, QUIT is sent once that message is done. */
void smtp_client_quit(struct smtp_client *c);
/* Drops the connection now (link down).  A message in flight gets done() with
 * code 0 for every recipient without a 2xx after the final dot, then closed()
 * (code -1, reason why): both before this returns, and c is gone after it.
 * A no-op when closed() is already under way (abort from a callback). */
void smtp_client_abort(struct smtp_client *c, const char *why);
/* "ip:port" of the remote, for logs. */
const char *smtp_client_relay(const struct smtp_client *c);

#endif

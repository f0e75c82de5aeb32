/*
 * client — one outgoing SMTP connection (RFC 5321) to a customer's server,
 * the engine of the SMTP transport (mta/, transport_smtp.c):
 * connect (or take over a connection already open, smtp_client_attach(),
 * for ODMR), 220 greeting, EHLO (HELO when EHLO gets a 5xx), STARTTLS per
 * policy, then messages one at a time as the owner hands them over, each in
 * one transaction per recipient batch (MAIL, RCPT..., DATA, dot-stuffed
 * body, final dot; PIPELINING per RFC 2920 when offered; recipients refused
 * with 452 4.5.3 go again in a new transaction on the same connection),
 * QUIT.  Every state change goes through enter_state() and the table
 * `steps` (what each state sends, how long it may wait, how its reply is
 * handled).
 *
 * Trusts: the owner's options and messages (addresses come from our own
 * spool; one that is not in RFC 5321 wire form, addr.h, is still refused,
 * never sent: no control characters, no unquoted space or '>').  Trusts
 * nothing from the server: replies go through the bounded parser in reply.c,
 * a reply line without LF within SMTP_REPLY_LINE_MAX bytes is a protocol
 * error, every wait has a timeout (RFC 5321 4.5.3.2), and after STARTTLS
 * nothing the server sent in plaintext is used.
 *
 * Guarantees: done() is called exactly once per message given to
 * smtp_client_send(), with every result set; a recipient gets a 2xx only
 * from the server's reply to the final dot; closed() is called exactly once,
 * last.  Callbacks may call back into the client (send, quit, abort): every
 * entry point holds the client (depth count) and it is freed only when the
 * outermost one returns after closed().
 *
 * 8-bit mail to a server without 8BITMIME is sent as it is, without BODY=
 * (RFC 6152 leaves the choice to the client; downgrading would alter
 * signed content, and refusing would bounce mail that most servers accept).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "core/addr.h"
#include "core/io.h"
#include "core/log.h"
#include "core/util.h"
#include "mta/smtp_client.h"
#include "mta/smtp_reply.h"
#include "dotstuff.h"
#include "tlspolicy.h"

#define BODY_CHUNK (64 * 1024)  /* body bytes queued per write-drained round */

enum sc_state {
    SC_CONNECT, SC_BANNER, SC_EHLO, SC_HELO, SC_STARTTLS, SC_TLS, SC_READY,
    SC_MAIL, SC_RCPT, SC_DATA, SC_BODY, SC_EOM, SC_RSET, SC_QUIT, SC_CLOSED,
    SC_NSTATES
};

/* Where each recipient of the message in flight stands. */
enum rcpt_state {
    RS_TODO,        /* goes into the next transaction */
    RS_SENT,        /* RCPT sent, reply pending */
    RS_OK,          /* RCPT accepted, waiting for the final dot */
    RS_TOOMANY,     /* 452 too many recipients: next transaction */
    RS_FINAL,       /* results[i] is final */
};

struct smtp_client {
    struct event_base *base;
    struct io *io;
    enum sc_state st;
    char *host, *helo_name, *expect_helo, *verify_name, *tls_ca;
    int port;
    enum smtp_client_tls tls;
    struct tls_ctx *tls_ctx;
    int connect_timeout, scale_ms;
    char relay[80];                 /* "ip:port", "[ip6]:port" */
    char *peer;                     /* "ip[ip]", for reasons */
    struct smtp_client_cbs cbs;
    void *arg;
    struct smtp_reply_parser parser;
    /* the server's last EHLO reply */
    int pipelining, eightbitmime, starttls, has_size;
    uint64_t size_limit;            /* 0: no limit announced */
    /* deferred work (never call the owner back from inside its own call) */
    struct event *later;
    void (*later_fn)(struct smtp_client *c);
    int connect_errno;
    /* the message in flight */
    struct smtp_client_msg *msg;
    uint8_t *rst;                   /* enum rcpt_state per recipient */
    size_t *txn;                    /* recipients in the current transaction */
    size_t ntxn, nsent, nreplied, naccepted;
    int mail_ok;
    struct evbuffer_ptr body_pos;
    size_t body_off;
    int body_done;
    struct dotstuff stuff;          /* the body's dot-stuffing state */
    /* lifetime */
    int depth;                      /* entry points on the stack */
    int closing;                    /* closed() dispatched or under way */
    int quit_pending;
    int end_code;                   /* what closed() says after QUIT */
    char *end_reason;
};

struct sc_step {
    const char *phase;              /* "... while <phase>" */
    int timeout;                    /* seconds; 0 none; -1 the connect timeout */
    void (*enter)(struct smtp_client *c);
    void (*reply)(struct smtp_client *c, const struct smtp_reply *r);
};
static const struct sc_step steps[SC_NSTATES];

static void enter_state(struct smtp_client *c, enum sc_state st);

/* ---- helpers ---- */

static char *xfmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xfmt(const char *fmt, ...)
{
    va_list ap;
    char *s;
    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        log_fatal("out of memory");
    return s;
}

static int is2xx(const struct smtp_reply *r)
{
    return r->code >= 200 && r->code < 300;
}

/* 452 4.5.3 or a 452 that says so (servers without enhanced codes). */
static int too_many(const struct smtp_reply *r)
{
    return r->code == 452 && (strncmp(r->text, "452 4.5.3", 9) == 0 ||
                              strcasestr(r->text, "too many recipients") != NULL);
}

static void set_result(struct smtp_client_msg *m, size_t i, int code, const char *text)
{
    free(m->results[i].text);
    m->results[i].code = code;
    m->results[i].text = xstrdup(text);
}

static void hold(struct smtp_client *c)
{
    c->depth++;
}

static void client_free(struct smtp_client *c)
{
    if (c->io)
        io_free(c->io);
    if (c->later)
        event_free(c->later);
    free(c->rst);
    free(c->txn);
    free(c->host);
    free(c->helo_name);
    free(c->expect_helo);
    free(c->verify_name);
    free(c->tls_ca);
    free(c->peer);
    free(c->end_reason);
    free(c);
}

static void release(struct smtp_client *c)
{
    if (--c->depth == 0 && c->st == SC_CLOSED)
        client_free(c);
}

static void later_cb(evutil_socket_t fd, short what, void *arg)
{
    struct smtp_client *c = arg;
    void (*fn)(struct smtp_client *) = c->later_fn;
    c->later_fn = NULL;
    hold(c);
    if (fn && !c->closing)
        fn(c);
    release(c);
}

static void client_later(struct smtp_client *c, void (*fn)(struct smtp_client *c))
{
    c->later_fn = fn;
    event_active(c->later, EV_TIMEOUT, 1);
}

static long state_timeout_ms(const struct smtp_client *c, enum sc_state st)
{
    int secs = steps[st].timeout;
    if (secs < 0)
        secs = c->connect_timeout > 0 ? c->connect_timeout : 30;
    if (secs == 0)
        return 0;
    return c->scale_ms > 0 ? c->scale_ms : (long)secs * 1000;
}

/* ---- message bookkeeping ---- */

static void msg_forget(struct smtp_client *c)
{
    free(c->rst);
    free(c->txn);
    c->rst = NULL;
    c->txn = NULL;
    c->msg = NULL;
    c->ntxn = c->nsent = c->nreplied = c->naccepted = 0;
}

/* All results are final: hand the message back, then wait for the next. */
static void msg_done(struct smtp_client *c)
{
    struct smtp_client_msg *m = c->msg;
    msg_forget(c);
    c->cbs.done(c, m, c->arg);
    if (!c->closing)
        enter_state(c, SC_READY);
}

/* The connection ends with a message in flight: recipients without a final
 * result get (code, text); with `all`, so does every recipient without a 2xx
 * after the final dot (link down: nothing else counts). */
static void msg_fail(struct smtp_client *c, int code, const char *text, int all)
{
    struct smtp_client_msg *m = c->msg;
    for (size_t i = 0; i < m->nrcpt; i++) {
        int final = c->rst[i] == RS_FINAL;
        int sent = final && m->results[i].code >= 200 && m->results[i].code < 300;
        if (!final || (all && !sent))
            set_result(m, i, code, text);
    }
    msg_forget(c);
    c->cbs.done(c, m, c->arg);
}

/* Recipients accepted by RCPT take the reply to DATA or to the final dot. */
static void msg_accepted_get(struct smtp_client *c, const struct smtp_reply *r)
{
    for (size_t k = 0; k < c->ntxn; k++) {
        size_t i = c->txn[k];
        if (c->rst[i] == RS_OK) {
            set_result(c->msg, i, r->code, r->text);
            c->rst[i] = RS_FINAL;
        }
    }
}

/* ---- the end of a connection ---- */

static void client_closed(struct smtp_client *c, int code, const char *reason)
{
    if (c->io) {
        io_free(c->io);
        c->io = NULL;
    }
    c->st = SC_CLOSED;
    log_debug("smtp client %s: closed: %s%s", c->relay, code ? "" : "clean ", reason);
    c->cbs.closed(c, code, reason, c->arg);
}

/* Drops the connection now.  A message in flight gets (rcode, rtext), see
 * msg_fail(); then closed(code, reason). */
static void client_fail(struct smtp_client *c, int code, const char *reason,
                        int rcode, const char *rtext, int all)
{
    if (c->closing)
        return;
    c->closing = 1;
    if (c->io) {
        io_free(c->io);
        c->io = NULL;
    }
    log_debug("smtp client %s: %s", c->relay, reason);
    if (c->msg)
        msg_fail(c, rcode, rtext, all);
    client_closed(c, code, reason);
}

/* Ends politely: a message in flight fails with code 0, QUIT is sent, and
 * closed(code, reason) follows its reply (or the server's close). */
static void client_quit_fail(struct smtp_client *c, int code, const char *reason)
{
    free(c->end_reason);
    c->end_code = code;
    c->end_reason = xstrdup(reason);
    log_debug("smtp client %s: %s", c->relay, reason);
    if (c->msg) {
        msg_fail(c, 0, reason, 0);
        if (c->closing)
            return;
    }
    enter_state(c, SC_QUIT);
}

/* QUIT answered, or the connection ended while waiting for that. */
static void client_end(struct smtp_client *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    client_closed(c, c->end_code, c->end_reason ? c->end_reason : "QUIT");
}

static void protocol_error(struct smtp_client *c, const char *what)
{
    char *why = xfmt("%s from %s while %s", what, c->peer, steps[c->st].phase);
    client_fail(c, -1, why, 0, why, 0);
    free(why);
}

/* ---- greeting, EHLO/HELO, STARTTLS ---- */

/* 1 when the greeting may go on: the server is not ourselves (it greets
 * with our own name, as Postfix checks against $myhostname: a deliver
 * target that points back at this daemon would pass the mail round until
 * its hop count ran out; compared only when our name is a real FQDN), and
 * its name matches expect_helo (when one is expected). */
static int greeting_ok(struct smtp_client *c, const struct smtp_reply *r)
{
    char *why = NULL;
    if (r->first_word[0] && util_is_fqdn(c->helo_name) &&
        strcasecmp(r->first_word, c->helo_name) == 0)
        why = xfmt("mail loops back to myself (%s greets as %s)", c->peer, r->first_word);
    else if (!c->expect_helo || strcasecmp(r->first_word, c->expect_helo) == 0)
        return 1;
    else
        why = xfmt("server greeted as %s, expected %s",
                   r->first_word[0] ? r->first_word : "(nothing)", c->expect_helo);
    client_quit_fail(c, -1, why);
    free(why);
    return 0;
}

static void refused(struct smtp_client *c, const char *what, const struct smtp_reply *r)
{
    char *why = xfmt("host %s refused %s: %s", c->peer, what, r->text);
    client_quit_fail(c, r->code, why);
    free(why);
}

static void reply_banner(struct smtp_client *c, const struct smtp_reply *r)
{
    if (r->code != 220) {
        refused(c, "to talk to me", r);
        return;
    }
    if (!greeting_ok(c, r))
        return;
    log_debug("smtp client %s: greeting: %s", c->relay, r->text);
    enter_state(c, SC_EHLO);
}

/* After a successful EHLO/HELO: STARTTLS per policy, or ready (tlspolicy.c). */
static void after_greeting(struct smtp_client *c)
{
    char why[512];
    enum tlspol_step st = tlspol_after_greeting(c->tls, io_is_tls(c->io), c->starttls,
                                                c->tls_ctx != NULL, c->peer, why, sizeof why);
    if (st == TLSPOL_STEP_FAIL)
        client_quit_fail(c, -1, why);
    else
        enter_state(c, st == TLSPOL_STEP_STARTTLS ? SC_STARTTLS : SC_READY);
}

static void reply_ehlo(struct smtp_client *c, const struct smtp_reply *r)
{
    if (r->code >= 500) {
        enter_state(c, SC_HELO);
        return;
    }
    if (!is2xx(r)) {
        refused(c, "EHLO", r);
        return;
    }
    if (!greeting_ok(c, r))
        return;
    c->pipelining = c->parser.ext_pipelining;
    c->eightbitmime = c->parser.ext_8bitmime;
    c->starttls = c->parser.ext_starttls;
    c->has_size = c->parser.ext_size;
    c->size_limit = c->parser.ext_size ? c->parser.size_limit : 0;
    after_greeting(c);
}

static void reply_helo(struct smtp_client *c, const struct smtp_reply *r)
{
    if (!is2xx(r)) {
        refused(c, "HELO", r);
        return;
    }
    if (!greeting_ok(c, r))
        return;
    c->pipelining = c->eightbitmime = c->starttls = c->has_size = 0;
    c->size_limit = 0;
    after_greeting(c);
}

static void reply_starttls(struct smtp_client *c, const struct smtp_reply *r)
{
    if (r->code == 220) {
        enter_state(c, SC_TLS);
    } else if (tlspol_required(c->tls)) {
        refused(c, "STARTTLS (TLS is required)", r);
    } else {
        log_debug("smtp client %s: STARTTLS refused (%s), staying in plaintext",
                  c->relay, r->text);
        enter_state(c, SC_READY);
    }
}

static void enter_ehlo(struct smtp_client *c)
{
    evbuffer_add_printf(io_out(c->io), "EHLO %s\r\n", c->helo_name);
}

static void enter_helo(struct smtp_client *c)
{
    evbuffer_add_printf(io_out(c->io), "HELO %s\r\n", c->helo_name);
}

static void enter_starttls(struct smtp_client *c)
{
    evbuffer_add(io_out(c->io), "STARTTLS\r\n", 10);
}

static void enter_tls(struct smtp_client *c)
{
    int dropped = io_starttls_client_peer(c->io, c->tls_ctx,
                                          c->verify_name ? c->verify_name : c->expect_helo,
                                          c->verify_name, c->tls_ca);
    if (dropped < 0) {
        char *why = xfmt("TLS setup failed for %s", c->peer);
        client_fail(c, -1, why, 0, why, 0);
        free(why);
        return;
    }
    if (dropped > 0)
        log_warn("smtp client %s: discarded %d bytes sent in plaintext after the "
                 "STARTTLS reply", c->relay, dropped);
    smtp_reply_init(&c->parser);
}

static void tls_done(struct smtp_client *c)
{
    char buf[256];
    log_debug("smtp client %s: TLS established: %s", c->relay,
              io_tls_info(c->io, buf, sizeof buf));
    if (c->tls == SMTPC_TLS_VERIFY &&
        io_tls_verified(c->io, c->verify_name, buf, sizeof buf) < 0) {
        client_quit_fail(c, -1, buf);           /* Postfix: QUIT, mail kept */
        return;
    }
    c->pipelining = c->eightbitmime = c->starttls = c->has_size = 0;
    c->size_limit = 0;
    enter_state(c, SC_EHLO);        /* RFC 3207 4.2: forget, greet again */
}

static void enter_ready(struct smtp_client *c)
{
    if (c->quit_pending) {
        enter_state(c, SC_QUIT);
        return;
    }
    c->cbs.ready(c, c->arg);
}

static void enter_quit(struct smtp_client *c)
{
    evbuffer_add(io_out(c->io), "QUIT\r\n", 6);
}

static void reply_quit(struct smtp_client *c, const struct smtp_reply *r)
{
    client_end(c);
}

/* ---- one transaction: MAIL, RCPT..., DATA ---- */

static void enter_mail(struct smtp_client *c)
{
    struct smtp_client_msg *m = c->msg;
    struct evbuffer *out = io_out(c->io);
    c->ntxn = c->nsent = c->nreplied = c->naccepted = 0;
    c->mail_ok = 0;
    for (size_t i = 0; i < m->nrcpt; i++) {
        if (c->rst[i] == RS_TODO) {
            c->txn[c->ntxn++] = i;
            c->rst[i] = RS_SENT;
        }
    }
    evbuffer_add_printf(out, "MAIL FROM:<%s>", m->sender);
    if (c->has_size)
        evbuffer_add_printf(out, " SIZE=%zu", evbuffer_get_length(m->body));
    if (m->eightbit && c->eightbitmime)
        evbuffer_add(out, " BODY=8BITMIME", 14);
    evbuffer_add(out, "\r\n", 2);
    if (!c->pipelining)
        return;
    for (size_t k = 0; k < c->ntxn; k++)
        evbuffer_add_printf(out, "RCPT TO:<%s>\r\n", m->rcpts[c->txn[k]]);
    c->nsent = c->ntxn;
    evbuffer_add(out, "DATA\r\n", 6);
}

static void enter_rcpt(struct smtp_client *c)
{
    if (c->pipelining)
        return;     /* sent with MAIL */
    size_t i = c->txn[c->nsent++];
    evbuffer_add_printf(io_out(c->io), "RCPT TO:<%s>\r\n", c->msg->rcpts[i]);
}

static void enter_data(struct smtp_client *c)
{
    if (!c->pipelining)
        evbuffer_add(io_out(c->io), "DATA\r\n", 6);
}

static void enter_rset(struct smtp_client *c)
{
    evbuffer_add(io_out(c->io), "RSET\r\n", 6);
}

/* The transaction is over on both sides.  Recipients refused as too many go
 * into a new one if this one made progress; else their 452 stands. */
static void txn_end(struct smtp_client *c)
{
    int again = 0;
    for (size_t i = 0; i < c->msg->nrcpt; i++) {
        if (c->rst[i] == RS_TOOMANY) {
            c->rst[i] = c->naccepted ? RS_TODO : RS_FINAL;
            again |= c->naccepted > 0;
        } else if (c->rst[i] != RS_FINAL) {
            log_fatal("smtp client %s: recipient %zu in state %d after a transaction",
                      c->relay, i, c->rst[i]);
        }
    }
    if (again)
        enter_state(c, SC_MAIL);
    else
        msg_done(c);
}

static void reply_mail(struct smtp_client *c, const struct smtp_reply *r)
{
    c->mail_ok = is2xx(r);
    if (!c->mail_ok) {
        for (size_t k = 0; k < c->ntxn; k++) {
            set_result(c->msg, c->txn[k], r->code, r->text);
            c->rst[c->txn[k]] = RS_FINAL;
        }
        if (!c->pipelining) {
            txn_end(c);
            return;
        }
    }
    enter_state(c, SC_RCPT);    /* pipelined: the RCPT replies follow anyway */
}

/* Without pipelining, a 452 too-many makes the rest of this transaction's
 * recipients wait for the next one without being tried now. */
static void rcpt_defer_rest(struct smtp_client *c, const struct smtp_reply *r)
{
    for (size_t k = c->nsent; k < c->ntxn; k++) {
        set_result(c->msg, c->txn[k], r->code, r->text);
        c->rst[c->txn[k]] = RS_TOOMANY;
    }
    c->ntxn = c->nsent;
}

static void reply_rcpt(struct smtp_client *c, const struct smtp_reply *r)
{
    size_t i = c->txn[c->nreplied++];
    if (c->mail_ok) {
        if (is2xx(r)) {
            c->rst[i] = RS_OK;
            c->naccepted++;
        } else {
            set_result(c->msg, i, r->code, r->text);
            c->rst[i] = too_many(r) ? RS_TOOMANY : RS_FINAL;
            if (too_many(r) && !c->pipelining)
                rcpt_defer_rest(c, r);
        }
    }
    if (c->nreplied < c->ntxn)
        enter_state(c, SC_RCPT);
    else if (c->pipelining || c->naccepted)
        enter_state(c, SC_DATA);
    else
        enter_state(c, SC_RSET);    /* every RCPT failed: no DATA */
}

static void reply_data(struct smtp_client *c, const struct smtp_reply *r)
{
    if (r->code == 354) {
        if (c->naccepted)
            enter_state(c, SC_BODY);
        else
            protocol_error(c, "354 without an accepted recipient");
        return;
    }
    msg_accepted_get(c, r);
    if (c->mail_ok)
        enter_state(c, SC_RSET);
    else
        txn_end(c);
}

static void reply_rset(struct smtp_client *c, const struct smtp_reply *r)
{
    if (is2xx(r))
        txn_end(c);
    else
        refused(c, "RSET", r);
}

static void reply_eom(struct smtp_client *c, const struct smtp_reply *r)
{
    msg_accepted_get(c, r);
    txn_end(c);
}

/* ---- message body ---- */

/* Queues up to BODY_CHUNK more body bytes (one copy, from the owner's
 * buffer into the output); after the last, CR LF if missing and the dot. */
static void body_fill(struct smtp_client *c)
{
    struct evbuffer *src = c->msg->body, *out = io_out(c->io);
    size_t total = evbuffer_get_length(src), budget = BODY_CHUNK;
    while (budget > 0 && c->body_off < total) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(src, -1, &c->body_pos, &v, 1) < 1 || v.iov_len == 0)
            log_fatal("smtp client %s: message body changed while sending", c->relay);
        size_t n = v.iov_len < budget ? v.iov_len : budget;
        if (n > total - c->body_off)
            n = total - c->body_off;
        dotstuff_add(&c->stuff, out, v.iov_base, n);
        evbuffer_ptr_set(src, &c->body_pos, n, EVBUFFER_PTR_ADD);
        c->body_off += n;
        budget -= n;
    }
    if (c->body_off < total)
        return;
    dotstuff_end(&c->stuff, out);
    c->body_done = 1;
}

static void enter_body(struct smtp_client *c)
{
    io_pause(c->io);    /* nothing to read until the dot; the timeout guards each block */
    c->body_off = 0;
    c->body_done = 0;
    dotstuff_init(&c->stuff);
    evbuffer_ptr_set(c->msg->body, &c->body_pos, 0, EVBUFFER_PTR_SET);
    body_fill(c);
}

static void client_read(struct smtp_client *c);

static void enter_eom(struct smtp_client *c)
{
    io_resume(c->io);
    if (evbuffer_get_length(io_in(c->io)) > 0)
        client_read(c);
}

static void body_drained(struct smtp_client *c)
{
    if (c->body_done)
        enter_state(c, SC_EOM);
    else
        body_fill(c);
}

/* ---- the state table ---- */

static const struct sc_step steps[SC_NSTATES] = {
    [SC_CONNECT]  = { "connecting", -1, NULL, NULL },
    [SC_BANNER]   = { "receiving the initial server greeting", 300, NULL, reply_banner },
    [SC_EHLO]     = { "performing the EHLO handshake", 300, enter_ehlo, reply_ehlo },
    [SC_HELO]     = { "performing the HELO handshake", 300, enter_helo, reply_helo },
    [SC_STARTTLS] = { "sending STARTTLS", 300, enter_starttls, reply_starttls },
    [SC_TLS]      = { "performing the TLS handshake", 300, enter_tls, NULL },
    [SC_READY]    = { "waiting for a message", 0, enter_ready, NULL },
    [SC_MAIL]     = { "sending MAIL FROM", 300, enter_mail, reply_mail },
    [SC_RCPT]     = { "sending RCPT TO", 300, enter_rcpt, reply_rcpt },
    [SC_DATA]     = { "sending DATA command", 120, enter_data, reply_data },
    [SC_BODY]     = { "sending message body", 180, enter_body, NULL },
    [SC_EOM]      = { "sending end of data -- message may be sent more than once",
                      600, enter_eom, reply_eom },
    [SC_RSET]     = { "sending RSET", 300, enter_rset, reply_rset },
    [SC_QUIT]     = { "sending QUIT", 300, enter_quit, reply_quit },
    [SC_CLOSED]   = { "closed", 0, NULL, NULL },
};

static void enter_state(struct smtp_client *c, enum sc_state st)
{
    if (c->closing)
        return;
    c->st = st;
    if (c->io)
        io_set_timeout_ms(c->io, state_timeout_ms(c, st));
    if (steps[st].enter)
        steps[st].enter(c);
}

/* ---- input and I/O events ---- */

static void dispatch(struct smtp_client *c, const struct smtp_reply *r)
{
    if (r->code == 421 && c->st != SC_QUIT) {
        /* service closing: the server is gone; in-flight mail stays (4xx) */
        client_fail(c, 421, r->text, 421, r->text, 0);
        return;
    }
    if (!steps[c->st].reply) {
        protocol_error(c, "unexpected reply");
        return;
    }
    steps[c->st].reply(c, r);
}

static int reads_replies(enum sc_state st)
{
    return st != SC_CONNECT && st != SC_TLS && st != SC_BODY && st != SC_CLOSED;
}

/* Parses every complete reply line buffered; each line is bounded. */
static void client_read(struct smtp_client *c)
{
    while (!c->closing && c->io && reads_replies(c->st)) {
        struct evbuffer *in = io_in(c->io);
        size_t eol_len;
        struct evbuffer_ptr eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);
        if (eol.pos < 0) {
            if (evbuffer_get_length(in) > SMTP_REPLY_LINE_MAX + 1)
                protocol_error(c, "reply line too long");
            return;
        }
        size_t n = (size_t)eol.pos;
        if (n > SMTP_REPLY_LINE_MAX + 1) {
            protocol_error(c, "reply line too long");
            return;
        }
        const char *line = (const char *)evbuffer_pullup(in, (ev_ssize_t)n + 1);
        size_t len = n > 0 && line[n - 1] == '\r' ? n - 1 : n;
        enum smtp_reply_status rs = smtp_reply_feed(&c->parser, line, len, c->st == SC_EHLO);
        evbuffer_drain(in, n + 1);
        if (rs == SMTP_REPLY_BAD)
            protocol_error(c, "malformed reply");
        else if (rs == SMTP_REPLY_DONE)
            dispatch(c, &c->parser.r);
    }
}

/* EOF, error or timeout: the reason depends on where we were. */
static void client_io_failed(struct smtp_client *c, enum io_event ev)
{
    char *why;
    if (c->st == SC_QUIT) {
        client_end(c);
        return;
    }
    if (c->st == SC_CONNECT)
        why = xfmt("connect to %s: %s", c->relay,
                   ev == IO_TIMEOUT ? "Connection timed out" : io_error(c->io));
    else if (c->st == SC_TLS)
        why = xfmt("TLS handshake with %s failed: %s", c->peer,
                   ev == IO_TIMEOUT ? "timed out" : ev == IO_EOF ? "lost connection"
                                                                 : io_error(c->io));
    else if (ev == IO_TIMEOUT)
        why = xfmt("conversation with %s timed out while %s", c->peer, steps[c->st].phase);
    else
        why = xfmt("lost connection with %s while %s", c->peer, steps[c->st].phase);
    client_fail(c, -1, why, 0, why, 0);
    free(why);
}

static void client_on_io(struct io *io, enum io_event ev, void *arg)
{
    struct smtp_client *c = arg;
    hold(c);
    switch (ev) {
    case IO_CONNECTED:
        log_debug("smtp client %s: connected", c->relay);
        enter_state(c, SC_BANNER);
        break;
    case IO_READ:
        client_read(c);
        break;
    case IO_DRAINED:
        if (c->st == SC_BODY)
            body_drained(c);
        break;
    case IO_TLS_DONE:
        if (c->st == SC_TLS)
            tls_done(c);
        break;
    case IO_EOF:
    case IO_ERROR:
    case IO_TIMEOUT:
        client_io_failed(c, ev);
        break;
    }
    release(c);
}

/* ---- the owner's entry points ---- */

static void connect_failed(struct smtp_client *c)
{
    char *why = xfmt("connect to %s: %s", c->relay, strerror(c->connect_errno));
    client_fail(c, -1, why, 0, why, 0);
    free(why);
}

/* A client in SC_CONNECT without a connection yet; NULL on bad arguments. */
static struct smtp_client *client_new(struct event_base *base,
                                      const struct smtp_client_opts *opts,
                                      const struct smtp_client_cbs *cbs, void *arg)
{
    if (!opts || !opts->host || !cbs || !cbs->ready || !cbs->done || !cbs->closed)
        return NULL;
    struct smtp_client *c = xcalloc(1, sizeof *c);
    c->base = base;
    c->host = xstrdup(opts->host);
    c->port = opts->port;
    c->helo_name = xstrdup(opts->helo_name && opts->helo_name[0] ? opts->helo_name
                                                                 : "localhost");
    c->expect_helo = opts->expect_helo && opts->expect_helo[0]
                     ? xstrdup(opts->expect_helo) : NULL;
    c->tls = opts->tls;
    c->tls_ctx = opts->tls_ctx;
    c->verify_name = opts->verify_name ? xstrdup(opts->verify_name) : NULL;
    c->tls_ca = opts->tls_ca ? xstrdup(opts->tls_ca) : NULL;
    c->connect_timeout = opts->connect_timeout;
    c->scale_ms = opts->scale_timeouts_ms;
    c->cbs = *cbs;
    c->arg = arg;
    snprintf(c->relay, sizeof c->relay, strchr(c->host, ':') ? "[%s]:%d" : "%s:%d",
             c->host, c->port);
    c->peer = xfmt("%s[%s]", c->host, c->host);
    c->later = event_new(base, -1, 0, later_cb, c);
    if (!c->later)
        log_fatal("event_new failed");
    smtp_reply_init(&c->parser);
    c->st = SC_CONNECT;
    return c;
}

struct smtp_client *smtp_client_start(struct event_base *base,
                                      const struct smtp_client_opts *opts,
                                      const struct smtp_client_cbs *cbs, void *arg)
{
    struct smtp_client *c = client_new(base, opts, cbs, arg);
    if (!c)
        return NULL;
    c->io = io_connect(base, c->host, c->port, client_on_io, c);
    if (!c->io) {
        if (errno == EINVAL) {
            client_free(c);
            return NULL;
        }
        c->connect_errno = errno;
        client_later(c, connect_failed);   /* reported from the loop, not from here */
        return c;
    }
    io_set_timeout_ms(c->io, state_timeout_ms(c, SC_CONNECT));
    log_debug("smtp client %s: connecting", c->relay);
    return c;
}

/* The attached connection is ours from the loop on: wait for the greeting,
 * and read what the server sent before the client took the connection. */
static void attached(struct smtp_client *c)
{
    log_debug("smtp client %s: attached", c->relay);
    enter_state(c, SC_BANNER);
    client_read(c);
}

struct smtp_client *smtp_client_attach(struct event_base *base, struct io *io,
                                       const struct smtp_client_opts *opts,
                                       const struct smtp_client_cbs *cbs, void *arg)
{
    struct smtp_client *c = io ? client_new(base, opts, cbs, arg) : NULL;
    if (!c)
        return NULL;
    c->io = io;                         /* until SC_BANNER, nothing is read */
    io_set_cb(io, client_on_io, c);
    io_set_timeout_ms(io, state_timeout_ms(c, SC_BANNER));
    client_later(c, attached);          /* no callback from inside this call */
    return c;
}

/* Only the wire form goes between "<" and ">": an address kept unquoted
 * ("a> NOTIFY=SUCCESS@x") would end the path early and add parameters. */
static int addr_ok(const char *a)
{
    return addr_is_canon(a);
}

/* Settles what can be settled before sending; returns the number of
 * recipients left to send. */
static size_t msg_check(struct smtp_client *c)
{
    struct smtp_client_msg *m = c->msg;
    size_t size = evbuffer_get_length(m->body), left = 0;
    char *fail = NULL;
    if (c->size_limit && size > c->size_limit)
        fail = xfmt("552 5.3.4 message too big for remote (SIZE %llu)",
                    (unsigned long long)c->size_limit);
    else if (!addr_ok(m->sender))
        fail = xfmt("501 5.1.7 invalid sender address (not in RFC 5321 form)");
    for (size_t i = 0; i < m->nrcpt; i++) {
        if (fail) {
            set_result(m, i, atoi(fail), fail);
            c->rst[i] = RS_FINAL;
        } else if (!addr_ok(m->rcpts[i])) {
            set_result(m, i, 501, "501 5.1.3 invalid recipient address (not in RFC 5321 form)");
            c->rst[i] = RS_FINAL;
        } else {
            left++;
        }
    }
    free(fail);
    return left;
}

void smtp_client_send(struct smtp_client *c, struct smtp_client_msg *msg)
{
    hold(c);
    for (size_t i = 0; i < msg->nrcpt; i++) {
        msg->results[i].code = 0;
        msg->results[i].text = NULL;
    }
    if (c->closing) {
        for (size_t i = 0; i < msg->nrcpt; i++)
            set_result(msg, i, 0, "connection closed before delivery");
        c->cbs.done(c, msg, c->arg);
        release(c);
        return;
    }
    if (c->st != SC_READY || c->msg || c->later_fn)
        log_fatal("smtp client %s: send outside the ready state", c->relay);
    c->msg = msg;
    c->rst = xcalloc(msg->nrcpt ? msg->nrcpt : 1, sizeof *c->rst);
    c->txn = xcalloc(msg->nrcpt ? msg->nrcpt : 1, sizeof *c->txn);
    if (msg_check(c) > 0)
        enter_state(c, SC_MAIL);
    else
        client_later(c, msg_done);  /* not from inside the owner's call */
    release(c);
}

void smtp_client_quit(struct smtp_client *c)
{
    hold(c);
    if (!c->closing && c->st != SC_QUIT) {
        if (c->st == SC_READY && !c->msg)
            enter_state(c, SC_QUIT);
        else
            c->quit_pending = 1;    /* after the message in flight / the greeting */
    }
    release(c);
}

void smtp_client_abort(struct smtp_client *c, const char *why)
{
    hold(c);
    if (!c->closing) {
        char *w = xstrdup(why && why[0] ? why : "link went down during delivery");
        if (c->st == SC_QUIT)
            client_end(c);
        else
            client_fail(c, -1, w, 0, w, 1);
        free(w);
    }
    release(c);
}

const char *smtp_client_relay(const struct smtp_client *c)
{
    return c->relay;
}

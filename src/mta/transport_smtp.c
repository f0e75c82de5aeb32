/*
 * transport_smtp — the "smtp" transport: SMTP to the customer's link
 * address (deliver = "link", at the customer's port) or to its fixed host
 * (deliver = "HOST:PORT"; a name is looked up by the scheduler before a
 * session opens).  A session is one smtp_client connection (client.c) with
 * the customer's TLS policy (verify: the name is tls_name, else the host
 * delivered to: a fixed host's name, or the link's address, which no
 * certificate name matches) and expect_helo; this file only adapts the
 * client's calls and callbacks to the transport interface.  The client TLS
 * context is the one the last reload built (transport_smtp_set_tls); each
 * session holds a reference to the one it started with.
 *
 * Also the "attach" transport (ODMR, RFC 2645): after ATRN's 250 the
 * customer's side of a connection the odmr listener accepted is an SMTP
 * server, and the same sessions run over it (smtp_client_attach(): waits
 * for the 220 greeting, then EHLO, PIPELINING, SIZE, per-recipient results
 * as on any connection).  Only the scheduler (deliver_attach.c through
 * pass_open) opens it, with the connection in the target; no customer's
 * `deliver` names it.  No STARTTLS on the attached connection (the
 * customer's server behind its ODMR client is not the host TLS names; the
 * odmr listener asks for TLS first where the policy wants it) and no
 * expect_helo.
 *
 * Trusts the configuration and the scheduler's target (a numeric address,
 * or the attached connection);
 * everything the remote server says is the client's to bound.  Guarantees
 * what the client does: done() once per message with every result set, a
 * 2xx only from the reply to the final dot, closed() once, last (the
 * session is freed after it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/tls.h"
#include "core/util.h"
#include "mta/deliver.h"
#include "mta/smtp_client.h"
#include "transport.h"

struct transport_session {
    struct smtp_client *c;
    struct transport_cbs cbs;
    void *arg;
    struct smtp_client_msg cm;      /* the message in flight, as the client sees it */
    struct tls_ctx *tls;            /* a reference, for the client's lifetime */
};

static struct {
    struct event_base *base;
    struct tls_ctx *tls;
    int timeout_ms;                 /* KICKMAIL_TEST_TIMEOUT_MS */
} TS;

static int smtp_dest(const struct customer *c, const struct deliver_link *link,
                     struct transport_dest *dst, char *err, size_t errlen)
{
    if (c->deliver == DELIVER_HOST) {
        snprintf(dst->host, sizeof dst->host, "%s", c->deliver_host);
        dst->port = c->deliver_port;
        return 0;
    }
    if (!link || !link->up || !link->address[0]) {
        snprintf(err, errlen, "%s: link is down, no usable address", c->name);
        return -1;
    }
    snprintf(dst->host, sizeof dst->host, "%s", link->address);
    dst->port = c->port;
    return 0;
}

static void on_ready(struct smtp_client *c, void *arg)
{
    struct transport_session *s = arg;
    s->cbs.ready(s->arg);
}

static void on_done(struct smtp_client *c, struct smtp_client_msg *cm, void *arg)
{
    struct transport_session *s = arg;
    struct transport_msg *msg = cm->owner;
    for (size_t i = 0; i < msg->nrcpt; i++) {
        msg->results[i].code = cm->results[i].code;
        msg->results[i].text = cm->results[i].text;     /* taken over */
    }
    free(cm->results);
    cm->results = NULL;
    s->cbs.done(msg, smtp_client_relay(c), s->arg);
}

static void on_closed(struct smtp_client *c, int code, const char *reason, void *arg)
{
    struct transport_session *s = arg;
    s->cbs.closed(code, reason, s->arg);
    tls_ctx_free(s->tls);
    free(s);                        /* the client (and an attached io) after this */
}

static const struct smtp_client_cbs client_cbs = { on_ready, on_done, on_closed };

static struct transport_session *smtp_open(const struct transport_target *t,
                                           const struct transport_cbs *cbs, void *arg)
{
    const struct customer *c = t->cust;
    struct transport_session *s = xcalloc(1, sizeof *s);
    s->tls = tls_ctx_ref(TS.tls);
    struct smtp_client_opts o = {
        .host = t->host, .port = t->port, .helo_name = t->helo_name,
        .tls = c->tls == TLSPOL_NONE || t->plain ? SMTPC_TLS_NONE :
               c->tls == TLSPOL_ENCRYPT ? SMTPC_TLS_ENCRYPT :
               c->tls == TLSPOL_VERIFY ? SMTPC_TLS_VERIFY : SMTPC_TLS_MAY,
        .tls_ctx = s->tls, .expect_helo = c->expect_helo,
        .verify_name = c->tls != TLSPOL_VERIFY ? NULL : c->tls_name ? c->tls_name :
                       c->deliver == DELIVER_HOST ? c->deliver_host : t->host,
        .tls_ca = c->tls == TLSPOL_VERIFY ? c->tls_ca : NULL,
        .scale_timeouts_ms = TS.timeout_ms,
    };
    s->cbs = *cbs;
    s->arg = arg;
    s->c = smtp_client_start(TS.base, &o, &client_cbs, s);
    if (!s->c) {
        tls_ctx_free(s->tls);
        free(s);
        return NULL;
    }
    return s;
}

static int attach_dest(const struct customer *c, const struct deliver_link *link,
                       struct transport_dest *dst, char *err, size_t errlen)
{
    snprintf(err, errlen, "an attached connection has no destination");
    return -1;                      /* the scheduler gives the peer itself */
}

static struct transport_session *attach_open(const struct transport_target *t,
                                             const struct transport_cbs *cbs, void *arg)
{
    struct smtp_client_opts o = {
        .host = t->host, .port = t->port, .helo_name = t->helo_name,
        .tls = SMTPC_TLS_NONE, .scale_timeouts_ms = TS.timeout_ms,
    };
    if (!t->io)
        return NULL;
    struct transport_session *s = xcalloc(1, sizeof *s);
    s->cbs = *cbs;
    s->arg = arg;
    s->c = smtp_client_attach(TS.base, t->io, &o, &client_cbs, s);
    if (!s->c) {
        free(s);
        return NULL;
    }
    return s;
}

static void smtp_send(struct transport_session *s, struct transport_msg *msg)
{
    s->cm = (struct smtp_client_msg){
        .id = msg->id, .idstr = msg->idstr, .sender = msg->sender,
        .nrcpt = msg->nrcpt, .rcpts = msg->rcpts, .body = msg->body,
        .eightbit = msg->eightbit, .owner = msg,
        .results = xcalloc(msg->nrcpt ? msg->nrcpt : 1, sizeof *s->cm.results),
    };
    smtp_client_send(s->c, &s->cm);
}

static void smtp_quit(struct transport_session *s)
{
    smtp_client_quit(s->c);
}

static void smtp_abort(struct transport_session *s, const char *why)
{
    smtp_client_abort(s->c, why);
}

const struct transport transport_smtp = {
    .name = "smtp", .dest = smtp_dest, .open = smtp_open, .send = smtp_send,
    .quit = smtp_quit, .abort = smtp_abort,
};

const struct transport transport_attach = {
    .name = "attach", .dest = attach_dest, .open = attach_open, .send = smtp_send,
    .quit = smtp_quit, .abort = smtp_abort,
};

int transport_smtp_init(struct event_base *base, char *err, size_t errlen)
{
    const char *t = getenv("KICKMAIL_TEST_TIMEOUT_MS");
    TS.base = base;
    TS.timeout_ms = t ? atoi(t) : 0;
    if (!TS.tls)                    /* none set yet: the defaults */
        TS.tls = tls_client_ctx(err, errlen);
    return TS.tls ? 0 : -1;
}

void transport_smtp_set_tls(struct tls_ctx *ctx)
{
    struct tls_ctx *old = TS.tls;
    TS.tls = tls_ctx_ref(ctx);
    tls_ctx_free(old);
}

void transport_smtp_shutdown(void)
{
    tls_ctx_free(TS.tls);
    memset(&TS, 0, sizeof TS);
}

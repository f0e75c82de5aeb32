/*
 * transport_attach — the attached-connection transport (ODMR, RFC 2645):
 * after ATRN's 250 the customer's side of a connection the odmr listener
 * accepted is an SMTP server, and this transport is its SMTP client
 * (smtp_client_attach(): waits for the 220 greeting, then EHLO,
 * PIPELINING, SIZE, per-recipient results as on any connection).  Only the
 * scheduler (deliver_attach.c through pass_open) opens it, with the
 * connection in the target; no customer's `deliver` names it.  No
 * STARTTLS on the attached connection (the customer's server behind its
 * ODMR client is not the host TLS names) and no expect_helo.
 *
 * Trusts the scheduler's target; everything the customer's side sends is
 * the client's to bound.  Guarantees what the client does: done() once per
 * message with every result set, a 2xx only from the reply to the final
 * dot, closed() once, last (the session and the connection are freed after
 * it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "mta/smtp_client.h"
#include "queue/qmgr_deliver.h"
#include "transport.h"

struct transport_session {
    struct smtp_client *c;
    struct transport_cbs cbs;
    void *arg;
    struct smtp_client_msg cm;      /* the message in flight, as the client sees it */
};

static int attach_dest(const struct customer *c, const struct deliver_link *link,
                       struct transport_dest *dst, char *err, size_t errlen)
{
    snprintf(err, errlen, "an attached connection has no destination");
    return -1;                      /* the scheduler gives the peer itself */
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
    free(s);                        /* the client (and the io) after this returns */
}

static const struct smtp_client_cbs client_cbs = { on_ready, on_done, on_closed };

static struct transport_session *attach_open(const struct transport_target *t,
                                             const struct transport_cbs *cbs, void *arg)
{
    const char *ms = getenv("KICKMAIL_TEST_TIMEOUT_MS");
    struct smtp_client_opts o = {
        .host = t->host, .port = t->port, .helo_name = t->helo_name,
        .tls = SMTPC_TLS_NONE, .scale_timeouts_ms = ms ? atoi(ms) : 0,
    };
    if (!t->io)
        return NULL;
    struct transport_session *s = xcalloc(1, sizeof *s);
    s->cbs = *cbs;
    s->arg = arg;
    s->c = smtp_client_attach(qmgr_base(), t->io, &o, &client_cbs, s);
    if (!s->c) {
        free(s);
        return NULL;
    }
    return s;
}

static void attach_send(struct transport_session *s, struct transport_msg *msg)
{
    s->cm = (struct smtp_client_msg){
        .id = msg->id, .idstr = msg->idstr, .sender = msg->sender,
        .nrcpt = msg->nrcpt, .rcpts = msg->rcpts, .body = msg->body,
        .eightbit = msg->eightbit, .owner = msg,
        .results = xcalloc(msg->nrcpt ? msg->nrcpt : 1, sizeof *s->cm.results),
    };
    smtp_client_send(s->c, &s->cm);
}

static void attach_quit(struct transport_session *s)
{
    smtp_client_quit(s->c);
}

static void attach_abort(struct transport_session *s, const char *why)
{
    smtp_client_abort(s->c, why);
}

const struct transport transport_attach = {
    .name = "attach", .dest = attach_dest, .open = attach_open, .send = attach_send,
    .quit = attach_quit, .abort = attach_abort,
};

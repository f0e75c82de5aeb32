/*
 * odmr — ODMR (RFC 2645) on the odmr listeners: the session of session.c
 * with its own EHLO (AUTH, STARTTLS, ATRN; no mail is taken here: MAIL,
 * RCPT, DATA, VRFY and ETRN get 502 from the command table) and ATRN.
 * AUTH is auth.c's: CRAM-MD5 always, PLAIN and LOGIN under TLS (or with
 * auth_cleartext); failures go through the auth guard as on submission.
 *
 * ATRN [domain *("," domain)], only for an authenticated customer (a
 * maildrop account gets 450), only for its own domains (none given: all of
 * them; another name: 450, nothing handed over).  Replies (RFC 2645 §4.2):
 * 250 "OK now reversing the connection", 450 "ATRN request refused", 530
 * "Must issue a STARTTLS command first" (a customer with tls = "encrypt"
 * or "verify" on a cleartext session: its mail travels only encrypted), 451
 * "Unable to process ATRN request now" (another delivery of the customer
 * is under way, or shutdown), 453 "You have no mail", 501 syntax, 530
 * before AUTH (the table).  After the 250 the connection is delivery's
 * (deliver_atrn_start: the normal delivery code as an SMTP client on it);
 * the session waits in SS_TURNED, counted by its listener, until delivery
 * says the session is over, and is then closed.  While it lasts the
 * customer's link is up at the peer's address, source odmr, session
 * "LISTENER/PEER:PORT", unless a link of the customer was up already (a
 * RADIUS session: left alone); it is taken down again at the end (only if
 * still this session's).
 *
 * Trusts the authenticated name (auth.c) and the registry; the argument
 * is parsed by smtp_parse_atrn (bounded).
 */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "core/config.h"
#include "core/io.h"
#include "core/listener.h"
#include "core/log.h"
#include "core/registry.h"
#include "core/util.h"
#include "link/peer_link.h"
#include "mta/deliver.h"
#include "smtp_int.h"

#define ODMR_LINK_TTL 3600L     /* the session's link, should its end be missed */

void smtp_odmr_ehlo(struct smtp_sess *s)
{
    int tls = io_is_tls(s->io);
    smtp_sess_reply(s, "250-%s", smtp_env.cfg->hostname);
    smtp_sess_reply(s, "250-AUTH %s", smtp_auth_offered(s) ? "PLAIN LOGIN CRAM-MD5" :
                    "CRAM-MD5");
    if (smtp_env.tls && !tls)
        smtp_sess_reply(s, "250-STARTTLS");
    smtp_sess_reply(s, "250 ATRN");
}

static int peer_port(const struct listener_conn *c)
{
    if (c->addr.ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)&c->addr)->sin_port);
    if (c->addr.ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)&c->addr)->sin6_port);
    return 0;
}

static void odmr_session_id(const struct smtp_sess *s, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s:%d", s->conn->info->addr ? s->conn->info->addr : "odmr",
             s->peer, peer_port(s->conn));
}

static void link_done(const struct link_event_result *res, void *arg)
{
    if (res->error)
        log_warn("odmr: link of %s: %s", res->customer, res->error);
}

/* The customer's link up (up 1: unless one is up already) or down (only
 * this session's); 1 when raised. */
static int odmr_link(struct smtp_sess *s, const char *customer, int up)
{
    char session[160], err[256];
    odmr_session_id(s, session, sizeof session);
    /* keep_own: a link of another ODMR session (its end missed) is left too */
    struct peer_link pl = {
        .customer = customer, .peer = s->peer, .session = session,
        .source = LINK_SRC_ODMR, .ttl = ODMR_LINK_TTL, .keep_own = 1,
    };
    int rc = up ? peer_link_up(&pl, NULL, link_done, NULL, err, sizeof err) :
                  peer_link_down(&pl, link_done, NULL, err, sizeof err);
    if (rc < 0) {
        log_warn("odmr: link %s of %s: %s", up ? "up" : "down", customer, err);
        return 0;
    }
    return up ? rc : 1;
}

/* Where the turned session keeps what its end needs. */
struct odmr_turn {
    char customer[128];
    int linked;
};

static void odmr_done(unsigned sent, unsigned deferred, unsigned bounced, void *arg)
{
    struct smtp_sess *s = arg;
    struct odmr_turn *t = s->odmr_turn;
    if (t->linked)
        odmr_link(s, t->customer, 0);
    free(t);
    s->odmr_turn = NULL;
    smtp_sess_close(s, "after ATRN");
}

/* The domains asked for, each one of c's: 0, or -1 with the one that is not. */
static int atrn_domains(const struct customer *c, const struct smtp_atrn *a,
                        const char **bad)
{
    for (size_t i = 0; i < a->n; i++) {
        int mine = 0;
        for (size_t k = 0; k < c->ndomains && !mine; k++)
            mine = !strcasecmp(c->domains[k], a->domain[i]);
        if (!mine) {
            *bad = a->domain[i];
            return -1;
        }
    }
    return 0;
}

/* Turns the line around: the 250 goes out, the connection to delivery. */
static void atrn_turn(struct smtp_sess *s, const struct customer *c,
                      const char *const *doms, size_t n)
{
    struct io *io = s->io;
    struct odmr_turn *t = xcalloc(1, sizeof *t);
    snprintf(t->customer, sizeof t->customer, "%s", c->name);
    smtp_sess_reply(s, "250 OK now reversing the connection");
    smtp_sess_flush_out(s);
    smtp_sess_enter(s, SS_TURNED);
    s->odmr_turn = t;
    s->io = NULL;
    if (deliver_atrn_start(c->name, doms, n, io, s->peer, peer_port(s->conn), odmr_done,
                           s) < 0) {
        s->io = io;
        s->odmr_turn = NULL;
        free(t);
        log_warn("ATRN from %s (%s): delivery could not start", s->peer, c->name);
        smtp_sess_close(s, "after ATRN");
        return;
    }
    t->linked = odmr_link(s, c->name, 1);
}

void smtp_cmd_atrn(struct smtp_sess *s, const char *arg, size_t len)
{
    const struct customer *c = registry_by_name(smtp_env.reg, s->auth_user);
    struct smtp_atrn a;
    const char *bad = NULL;
    unsigned msgs = 0;
    char name[300];
    util_log_safe(name, sizeof name, s->auth_user);
    if (smtp_parse_atrn(arg, len, &a) != SMTP_ATRN_OK) {
        smtp_sess_reply(s, "501 Syntax error in parameters or arguments");
        smtp_sess_bad(s);
        return;
    }
    const char *const *doms = a.n ? a.domain : c ? (const char *const *)c->domains : NULL;
    size_t n = a.n ? a.n : c ? c->ndomains : 0;
    enum deliver_atrn r = DELIVER_ATRN_REFUSED;
    if (!c)
        log_info("ATRN from %s (%s): not a customer: refused", s->peer, name);
    else if (atrn_domains(c, &a, &bad) < 0)
        log_info("ATRN from %s (%s): %s is not its domain: refused", s->peer, name, bad);
    else if (c->tls >= TLSPOL_ENCRYPT && !io_is_tls(s->io)) {
        /* its mail travels only encrypted: over ODMR, this connection */
        log_info("ATRN from %s (%s): its tls policy needs TLS: refused", s->peer, name);
        smtp_sess_reply(s, "530 5.7.0 Must issue a STARTTLS command first");
        smtp_atrn_free(&a);
        return;
    } else if (smtp_env.stopping)
        r = DELIVER_ATRN_BUSY;
    else
        r = deliver_atrn_check(c->name, doms, n, &msgs);
    switch (r) {
    case DELIVER_ATRN_OK:
        log_info("ATRN from %s (%s): %u messages", s->peer, name, msgs);
        atrn_turn(s, c, doms, n);
        break;
    case DELIVER_ATRN_NOMAIL:
        log_info("ATRN from %s (%s): no mail", s->peer, name);
        smtp_sess_reply(s, "453 You have no mail");
        break;
    case DELIVER_ATRN_BUSY:
        log_info("ATRN from %s (%s): a delivery is under way: try again later", s->peer,
                 name);
        smtp_sess_reply(s, "451 Unable to process ATRN request now");
        break;
    default:
        if (c && !bad)
            log_info("ATRN from %s (%s): its mail is not collected by ODMR: refused",
                     s->peer, name);
        smtp_sess_reply(s, "450 ATRN request refused");
        break;
    }
    smtp_atrn_free(&a);
}

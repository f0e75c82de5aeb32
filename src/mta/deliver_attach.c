/*
 * deliver_attach — ODMR passes (RFC 2645): after ATRN the customer's mail
 * for the domains it asked for goes over the connection its ODMR client
 * opened, through the scheduler's normal pass (deliver.c: jobs, the
 * cursor, per-recipient results, DSNs for 5xx, deferrals with the reason)
 * on one transport_attach session.  While the attached pass lasts it is
 * the customer's only delivery: deliver_atrn_check() answers BUSY while
 * another pass runs, and link changes meanwhile (the ODMR session's own
 * link, a RADIUS link) start nothing until it ends.  Then the customer's
 * usual delivery resumes: a pass to its link address when its link is up
 * at another address than the ODMR peer's (a RADIUS session's), else the
 * customer goes idle.
 *
 * Trusts the caller (smtp/odmr.c) to have checked that the domains are the
 * authenticated customer's own; recipients of other customers are never
 * in its list, so another customer's mail is never handed over.
 * Guarantees: done() exactly once, after the pass is over and its results
 * are applied; never from inside deliver_atrn_start().
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/config.h"
#include "core/log.h"
#include "core/util.h"
#include "mta/deliver.h"
#include "queue/qmgr.h"
#include "queue/qmgr_deliver.h"
#include "deliver_int.h"
#include "transport.h"

struct dl_attach {
    char **domains;                 /* lower-case, the customer's own */
    size_t ndomains;
    struct io *io;                  /* until the session takes it */
    char peer[64];
    int port;
    unsigned sent, deferred, bounced;
    deliver_atrn_done_fn *done;
    void *arg;
};

static int domain_in(char *const *domains, size_t n, const char *domain)
{
    for (size_t i = 0; i < n; i++)
        if (!strcasecmp(domains[i], domain))
            return 1;
    return 0;
}

int attach_wants(const struct qdeliv *d, const struct qrcpt *r)
{
    return domain_in(d->attach->domains, d->attach->ndomains, r->domain);
}

struct io *attach_take_io(struct qdeliv *d)
{
    struct io *io = d->attach->io;
    d->attach->io = NULL;
    return io;
}

void attach_dest(const struct qdeliv *d, struct transport_dest *dst)
{
    snprintf(dst->host, sizeof dst->host, "%s", d->attach->peer);
    dst->port = d->attach->port;
}

void attach_count(struct qdeliv *d, int cls)
{
    if (cls == 2)
        d->attach->sent++;
    else if (cls == 5)
        d->attach->bounced++;
    else
        d->attach->deferred++;
}

static void attach_free(struct dl_attach *a)
{
    for (size_t i = 0; i < a->ndomains; i++)
        free(a->domains[i]);
    free(a->domains);
    free(a);
}

/* Tells the ODMR side and forgets the attached pass. */
static void attach_end(struct qdeliv *d)
{
    struct dl_attach *a = d->attach;
    d->attach = NULL;
    log_info("%s: ODMR delivery to %s ended: sent=%u deferred=%u bounced=%u", d->qc->name,
             a->peer, a->sent, a->deferred, a->bounced);
    a->done(a->sent, a->deferred, a->bounced, a->arg);
    attach_free(a);
}

void attach_gone(struct qdeliv *d)
{
    attach_end(d);
}

/* Resumes the customer's own delivery after an attached pass: a link up at
 * another address than the ODMR peer's gets a pass (its mail waited). */
static void attach_resume(struct qdeliv *d, const char *peer)
{
    struct transport_dest dst;
    char err[256];
    d->kicked = 0;
    d->restart = 0;
    d->mode = dl_online(d->qc) ? DL_ONLINE : DL_IDLE;
    if (d->mode == DL_ONLINE && !qmgr_stopping() &&
        dl_dest(d->qc, &dst, err, sizeof err) == 0 && strcmp(dst.host, peer) != 0) {
        if (pass_open(d) == 0 && !dl_busy(d))
            pass_end(d);
        return;
    }
    kick_again(d);
}

void attach_pass_end(struct qdeliv *d)
{
    char peer[64];
    pass_defer_rest(d);
    snprintf(peer, sizeof peer, "%s", d->attach->peer);
    attach_end(d);                  /* may free the ODMR session, never d */
    attach_resume(d, peer);
}

enum deliver_atrn deliver_atrn_check(const char *customer, const char *const *domains,
                                     size_t n, unsigned *msgs)
{
    struct qcust *qc = qmgr_cust_by_name(customer);
    struct qrcpt *r;
    struct qmsg *last = NULL;
    *msgs = 0;
    if (!qc || !qc->cfg ||
        (qc->cfg->deliver != DELIVER_PICKUP && qc->cfg->deliver != DELIVER_LINK))
        return DELIVER_ATRN_REFUSED;
    if (qc->dl && (dl_busy(qc->dl) || qc->dl->attach))
        return DELIVER_ATRN_BUSY;
    TAILQ_FOREACH(r, &qc->rcpts, link) {
        int want = 0;
        for (size_t i = 0; i < n && !want; i++)
            want = !strcasecmp(domains[i], r->domain);
        if (!want || qmgr_rcpt_held(r))
            continue;
        if (r->msg->active)
            return DELIVER_ATRN_BUSY;   /* a bounce or a delete in progress */
        if (r->msg != last)
            (*msgs)++;
        last = r->msg;
    }
    return *msgs ? DELIVER_ATRN_OK : DELIVER_ATRN_NOMAIL;
}

int deliver_atrn_start(const char *customer, const char *const *domains, size_t n,
                       struct io *io, const char *peer, int port,
                       deliver_atrn_done_fn *done, void *arg)
{
    unsigned msgs;
    if (qmgr_stopping() || deliver_atrn_check(customer, domains, n, &msgs) != DELIVER_ATRN_OK)
        return -1;
    struct qdeliv *d = dl_get(qmgr_cust_by_name(customer));
    struct dl_attach *a = xcalloc(1, sizeof *a);
    a->domains = xcalloc(n, sizeof *a->domains);
    for (size_t i = 0; i < n; i++)
        a->domains[a->ndomains++] = xstrdup(domains[i]);
    a->io = io;
    snprintf(a->peer, sizeof a->peer, "%s", peer);
    a->port = port;
    a->done = done;
    a->arg = arg;
    d->attach = a;
    d->mode = DL_KICK;
    d->kicked = 1;                      /* the retry backoff stays as it is */
    if (pass_open(d) < 0 || d->nconn == 0) {
        /* the session could not open (the io is still a->io): give it back */
        d->attach = NULL;
        attach_free(a);
        d->mode = dl_online(d->qc) ? DL_ONLINE : DL_IDLE;
        d->kicked = 0;
        return -1;
    }
    log_info("%s: ODMR delivery of %u messages to %s started", customer, msgs, peer);
    return 0;
}

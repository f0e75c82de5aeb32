/*
 * deliver_kick — kicks: kickq kick and ETRN deliver a customer's waiting
 * mail now to its link address or fixed host, without changing the link,
 * the retry backoff or the time of the next retry.
 *
 * Kicks are untrusted in number: a customer has at most one pass at a
 * time, so never more than `connections` connections, and a kick that
 * comes while a pass runs joins it (one more pass follows when it ends: at
 * once for an operator's kick, not sooner than etrn_interval after the
 * last ETRN-started pass for an ETRN).  A kick-started pass never changes
 * the retry backoff or the time of the next retry.
 *
 * Trusts the customer name only as a key (unknown: refused), the qmgr
 * index and deliver.c's state.  Guarantees: a kick either starts or joins
 * a pass and reports where it goes, or fails with why (no usable address,
 * mail held for ODMR, a deliver = "maildrop" customer, unknown customer)
 * and changes nothing.  A kick of a local domain (the address maildrops of
 * one domain) retries its deferred mail (over quota, a disk error) into the
 * maildrops now ("local").  A deliver = "maildrop" customer is refused as
 * the contract (INTERFACE.md) says: its mail goes into its maildrop at once;
 * what waits there is retried on its own (retry_min..retry_max, and when a
 * POP3 session frees room).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "core/config.h"
#include "core/log.h"
#include "core/stats.h"
#include "core/util.h"
#include "mta/deliver.h"
#include "queue/qmgr.h"
#include "queue/qmgr_deliver.h"
#include "deliver_int.h"
#include "transport.h"

/* Seconds until an ETRN may start another pass (etrn_interval after the
 * last ETRN-started one); 0: now. */
static double etrn_wait(const struct qdeliv *d)
{
    const struct customer *c = d->qc->cfg;
    if (!c || !c->etrn_interval || d->last_etrn == 0)
        return 0;
    double left = d->last_etrn + (double)c->etrn_interval - util_now_mono();
    return left > 0 ? left : 0;
}

/* Starts a kick's pass (see pass_open); it leaves the backoff and the retry
 * alone.  Logs after the connect(): the line costs a write. */
static int kick_start(struct qdeliv *d, int etrn, const struct transport_dest *dst)
{
    if (etrn)
        d->last_etrn = util_now_mono();
    if (d->mode != DL_ONLINE)
        d->mode = DL_KICK;
    d->kicked = 1;
    int started = pass_open(d) == 0;
    if (dst->port == 0)                 /* local delivery */
        log_info("%s: %s: %u messages to %s", d->qc->name, etrn ? "ETRN" : "kick",
                 d->qc->nmsg, dst->host);
    else
        log_info("%s: %s: %u messages to %s:%d", d->qc->name, etrn ? "ETRN" : "kick",
                 d->qc->nmsg, dst->host, dst->port);
    return started ? 0 : -1;
}

/* The pass kicks asked for while another ran or within etrn_interval:
 * started now when there is still mail and somewhere to send it. */
static void kick_owed(struct qdeliv *d, int etrn)
{
    char err[256];
    struct transport_dest dst;
    if (qmgr_stopping() || !d->qc->nmsg || dl_dest(d->qc, &dst, err, sizeof err) < 0)
        return;
    if (kick_start(d, etrn, &dst) == 0 && !dl_busy(d))
        pass_end(d);
}

/* An ETRN came within etrn_interval: one pass when the interval is over,
 * shared by every ETRN until then. */
static void etrn_arm(struct qdeliv *d)
{
    if (evtimer_pending(d->etrn_ev, NULL))
        return;
    double w = etrn_wait(d);
    struct timeval tv = { (time_t)w, (suseconds_t)((w - (double)(time_t)w) * 1e6) };
    evtimer_add(d->etrn_ev, &tv);
}

void etrn_fire(evutil_socket_t fd, short what, void *arg)
{
    struct qdeliv *d = arg;
    if (dl_busy(d)) {
        if (d->again == AGAIN_NONE)
            d->again = AGAIN_ETRN;      /* after the pass that runs now */
        return;
    }
    kick_owed(d, 1);
}

void kick_again(struct qdeliv *d)
{
    int again = d->again;
    d->again = AGAIN_NONE;
    if (again == AGAIN_NONE || qmgr_stopping())
        return;
    if (again == AGAIN_ETRN && etrn_wait(d) > 0)
        etrn_arm(d);
    else
        kick_owed(d, again == AGAIN_ETRN);
}

int deliver_kick(const char *customer, int etrn, struct deliver_kick_result *res,
                 char *err, size_t errlen)
{
    struct qcust *qc = qmgr_cust_by_name(customer);
    struct transport_dest dst;
    memset(res, 0, sizeof *res);
    if (!qc) {
        snprintf(err, errlen, "%s: no such customer", customer);
        return -1;
    }
    if (qc->cfg && qc->cfg->deliver == DELIVER_MAILDROP && !etrn) {
        snprintf(err, errlen, "%s: delivers into its POP3 maildrop as mail arrives; "
                 "nothing to kick", customer);
        return -1;
    }
    if (dl_dest(qc, &dst, err, errlen) < 0)
        return -1;
    struct qdeliv *d = dl_get(qc);
    res->messages = qc->nmsg;
    snprintf(res->address, sizeof res->address, "%s", dst.host);
    res->port = dst.port;
    if (dl_busy(d)) {
        /* a pass is running: join it; what it already tried is tried again
         * once it ends (an ETRN's: not before etrn_interval) */
        res->already = 1;
        if (!etrn)
            d->again = AGAIN_KICK;
        else if (d->again == AGAIN_NONE)
            d->again = AGAIN_ETRN;
        return 0;
    }
    if (etrn && etrn_wait(d) > 0) {
        res->already = 1;               /* a pass started just now */
        etrn_arm(d);
        return 0;
    }
    stats_add(etrn ? ST_KICKS_ETRN : ST_KICKS_KICKQ, 1);
    if (kick_start(d, etrn, &dst) == 0 && !dl_busy(d))
        pass_end(d);
    return 0;
}

void deliver_maildrop_room(const char *drop)
{
    /* "alice@isp.example" waits under its local domain "isp.example"; a
     * domain maildrop under its customer of the same name */
    const char *at = strrchr(drop, '@');
    struct qcust *qc = qmgr_cust_by_name(at ? at + 1 : drop);
    struct transport_dest dst;
    char err[256];
    if (!qc || !qc->nmsg || !qc->cfg || qmgr_stopping() ||
        (qc->cfg->deliver != DELIVER_LOCAL && qc->cfg->deliver != DELIVER_MAILDROP) ||
        dl_dest(qc, &dst, err, sizeof err) < 0)
        return;
    struct qdeliv *d = dl_get(qc);
    if (dl_busy(d)) {
        if (d->again == AGAIN_NONE)
            d->again = AGAIN_KICK;      /* once the pass that runs ends */
        return;
    }
    log_info("%s: room in maildrop %s: retrying %u messages", qc->name, drop, qc->nmsg);
    if (kick_start(d, 0, &dst) == 0 && !dl_busy(d))
        pass_end(d);
}

/*
 * qmgr_ops — the operator's durable actions on the queue index (qmgr.c):
 * hold and release (of one message: a STATE record; of a customer or a
 * domain: the state/holds file), delete (DONE records), and the STATE or
 * DONE record that makes delivery results durable (qmgr_msg_record, for
 * delivery and bounce.c; qmgr_log_result logs each result), and the STATE records of deferrals (one per
 * message per loop turn, and only when a reason changed: repeated retries
 * that meet the same reply add nothing to the journal).  Targets from the control socket are checked
 * here; the index and the spool are trusted.  It guarantees that an
 * operator request's callback runs once, after its last record is synced,
 * with the first error seen; a message's hold or release and a delete reach
 * the index only after their record is synced; a customer or domain hold is
 * set in memory first (state/holds is written from there) and undone if the
 * file cannot be written.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "core/log.h"
#include "core/registry.h"
#include "core/util.h"
#include "queue/qmgr.h"
#include "queue/qmgr_deliver.h"
#include "spool/spool.h"
#include "spool/spool_state.h"
#include "qmgr_int.h"
#include "qmgr_priv.h"

/* ---- durable changes: STATE and DONE records, the holds file ---- */

/* One operator request may need several records; it completes when the last
 * one does, with the first error seen. */
struct op {
    int pending;
    int err;
    qmgr_cb *cb;
    void *arg;
};

static struct op *op_new(qmgr_cb *cb, void *arg)
{
    struct op *op = xcalloc(1, sizeof *op);
    op->pending = 1;        /* released by op_finish_one() */
    op->cb = cb;
    op->arg = arg;
    return op;
}

static void op_finish_one(struct op *op, int err)
{
    if (err && !op->err)
        op->err = err;
    if (--op->pending == 0) {
        op->cb(op->err, op->arg);
        free(op);
    }
}

struct state_ctx {
    struct op *op;
    uint64_t id;
    int held;
    uint32_t seg;
    size_t nrcpt;
    struct spool_rstate *rs;
    char **reasons;
};

static void state_done(int err, void *arg)
{
    struct state_ctx *sx = arg;
    struct qmsg *m = qmgr_msg_by_id(sx->id);
    if (!err && m) {
        m->held = (sx->held & SPOOL_MSG_HELD) != 0;
        spool_seg_ref(Q.spool, sx->seg);
        if (m->state_seg)
            spool_seg_unref(Q.spool, m->state_seg);
        m->state_seg = sx->seg;
    }
    if (err && m)
        m->held_next = m->held;     /* a hold that failed is not carried on */
    if (err)
        log_err("%s: cannot record state: %s", m ? m->idstr : "?", strerror(err));
    for (size_t i = 0; i < sx->nrcpt; i++)
        free(sx->reasons[i]);
    free(sx->reasons);
    free(sx->rs);
    op_finish_one(sx->op, err);
    free(sx);
}

/* Appends a STATE record for m with the given hold flag.  Records complete
 * in the order they are queued, and each one replaces the message's whole
 * state, so every later record must carry this hold too (held_next): a
 * result or deferral written while a hold is being synced would otherwise
 * undo the hold, in memory and on disk. */
static void msg_write_state(struct qmsg *m, int held, struct op *op)
{
    struct state_ctx *sx = xcalloc(1, sizeof *sx);
    m->held_next = (uint8_t)(held != 0);
    sx->op = op;
    sx->id = m->id;
    sx->held = (held ? SPOOL_MSG_HELD : 0) | (m->warned ? SPOOL_MSG_WARNED : 0);
    sx->nrcpt = m->nrcpt;
    m->unrecorded = 0;          /* this record carries the reasons */
    sx->rs = xcalloc(m->nrcpt, sizeof *sx->rs);
    sx->reasons = xcalloc(m->nrcpt, sizeof *sx->reasons);
    for (unsigned i = 0; i < m->nrcpt; i++) {
        const struct qrcpt *r = &m->rcpts[i];
        sx->rs[i].status = r->status == QR_DELIVERED ? SPOOL_R_DELIVERED :
                           r->status == QR_BOUNCED ? SPOOL_R_BOUNCED : SPOOL_R_PENDING;
        sx->reasons[i] = r->reason ? xstrdup(r->reason) : NULL;
        sx->rs[i].reason = sx->reasons[i];
    }
    op->pending++;
    spool_append_state(Q.spool, m->id, sx->held, m->nrcpt, sx->rs, &sx->seg, state_done, sx);
}

struct holds_ctx {
    struct op *op;
    struct evbuffer *buf;
    void (*undo)(const char *key, int on);
    char *key;
    int on;
};

static void holds_done(int err, void *arg)
{
    struct holds_ctx *hx = arg;
    if (err) {
        log_err("spool: cannot write state/holds: %s", strerror(err));
        hx->undo(hx->key, !hx->on);
    }
    evbuffer_free(hx->buf);
    free(hx->key);
    op_finish_one(hx->op, err);
    free(hx);
}

static void hold_set_customer(const char *name, int on)
{
    struct qcust *qc = hmap_get(Q.custs, name);
    if (qc)
        qc->held = (uint8_t)on;
}

static void hold_set_domain(const char *domain, int on)
{
    if (on) {
        if (!hmap_get(Q.held_domains, domain)) {
            char *k = util_lower(xstrdup(domain));
            hmap_put(Q.held_domains, k, k);
        }
    } else {
        free(hmap_del(Q.held_domains, domain));
    }
}

/* Applies a customer/domain hold change in memory and makes it durable;
 * undone if the write fails. */
static void holds_change(void (*set)(const char *, int), const char *key, int on,
                         struct op *op)
{
    struct holds_ctx *hx = xcalloc(1, sizeof *hx);
    set(key, on);
    hx->op = op;
    hx->undo = set;
    hx->key = xstrdup(key);
    hx->on = on;
    hx->buf = evbuffer_new();
    qmgr_holds_encode(hx->buf);
    size_t len = evbuffer_get_length(hx->buf);
    op->pending++;
    spool_state_write(Q.spool, "holds", evbuffer_pullup(hx->buf, -1), len,
                      holds_done, hx);
}

static int hold_or_release(const char *target, int on, qmgr_cb *cb, void *arg,
                           char *err, size_t errlen)
{
    struct qmsg *m = NULL;
    void (*set)(const char *, int) = hold_set_customer;
    if (qmgr_id_form(target)) {
        uint64_t id;
        if (qmgr_id_parse(target, &id) == 0)
            m = qmgr_msg_by_id(id);
        if (!m) {
            snprintf(err, errlen, "%s: no such message", target);
            return -1;
        }
    } else if (strchr(target, '.')) {
        if (!registry_by_domain(Q.reg, target)) {
            snprintf(err, errlen, "%s: not a customer domain", target);
            return -1;
        }
        set = hold_set_domain;
    } else if (!hmap_get(Q.custs, target)) {
        snprintf(err, errlen, "%s: no such customer", target);
        return -1;
    }
    struct op *op = op_new(cb, arg);
    if (m)
        msg_write_state(m, on, op);
    else
        holds_change(set, target, on, op);
    op_finish_one(op, 0);
    return 0;
}

int qmgr_hold(const char *target, qmgr_cb *cb, void *arg, char *err, size_t errlen)
{
    return hold_or_release(target, 1, cb, arg, err, errlen);
}

/* After a release: the customers concerned resume delivery if reachable. */
struct release_ctx {
    qmgr_cb *cb;
    void *arg;
    char *target;
};

static void release_done(int err, void *arg)
{
    struct release_ctx *rx = arg;
    if (!err) {
        uint64_t id;
        struct qmsg *m;
        struct qcust *qc;
        if (qmgr_id_form(rx->target)) {
            if (qmgr_id_parse(rx->target, &id) == 0 && (m = qmgr_msg_by_id(id)))
                for (unsigned i = 0; i < m->nrcpt; i++)
                    if (m->rcpts[i].cust && Q.hooks.resume)
                        Q.hooks.resume(m->rcpts[i].cust);
        } else if ((qc = strchr(rx->target, '.') ? qmgr_cust_by_domain(rx->target)
                                                  : qmgr_cust_by_name(rx->target))) {
            if (Q.hooks.resume)
                Q.hooks.resume(qc);
        }
    }
    rx->cb(err, rx->arg);
    free(rx->target);
    free(rx);
}

int qmgr_release(const char *target, qmgr_cb *cb, void *arg, char *err, size_t errlen)
{
    struct release_ctx *rx = xcalloc(1, sizeof *rx);
    rx->cb = cb;
    rx->arg = arg;
    rx->target = xstrdup(target);
    if (hold_or_release(target, 0, release_done, rx, err, errlen) < 0) {
        free(rx->target);
        free(rx);
        return -1;
    }
    return 0;
}

struct done_ctx {
    struct op *op;
    uint64_t id;
};

static void delete_done(int err, void *arg)
{
    struct done_ctx *dx = arg;
    struct qmsg *m = qmgr_msg_by_id(dx->id);
    if (m)
        m->active--;                /* taken by qmgr_delete; on failure it stays */
    if (!err && m) {
        log_info("%s: removed", m->idstr);
        qmgr_msg_forget(m);
    }
    op_finish_one(dx->op, err);
    free(dx);
}

int qmgr_delete(size_t nids, const uint64_t *ids, qmgr_cb *cb, void *arg,
                char *err, size_t errlen)
{
    for (size_t i = 0; i < nids; i++) {
        struct qmsg *m = qmgr_msg_by_id(ids[i]);
        char s[QUEUE_ID_LEN + 1];
        qmgr_id_str(ids[i], s);
        if (!m || m->npending == 0) {   /* gone, or only its record is left */
            snprintf(err, errlen, "%s: no such message", s);
            return -1;
        }
        if (m->active) {
            snprintf(err, errlen, "%s: being delivered now, try again", s);
            return -1;
        }
    }
    struct op *op = op_new(cb, arg);
    for (size_t i = 0; i < nids; i++) {
        struct done_ctx *dx = xcalloc(1, sizeof *dx);
        /* active until its DONE is written: no delivery, bounce or expiry
         * takes a message that is about to be freed */
        qmgr_msg_by_id(ids[i])->active++;
        dx->op = op;
        dx->id = ids[i];
        op->pending++;
        spool_append_done(Q.spool, ids[i], delete_done, dx);
    }
    op_finish_one(op, 0);
    return 0;
}

/* ---- for delivery (mta/) and bounce.c: recording delivery results ---- */

struct record_ctx {
    uint64_t id;
    qmgr_cb *cb;
    void *arg;
};

/* Results and deferrals queued and not yet synced: a stop waits for them
 * (qmgr_busy), so that each one's callback runs before the spool closes. */
static unsigned records_in_flight;

static void record_done(int err, void *arg)
{
    struct record_ctx *rx = arg;
    struct qmsg *m = qmgr_msg_by_id(rx->id);
    if (err) {
        char s[QUEUE_ID_LEN + 1];
        qmgr_id_str(rx->id, s);
        log_err("%s: cannot record delivery results: %s", s, strerror(err));
    } else if (m && m->npending == 0 && !m->active) {
        qmgr_msg_forget(m);
    }
    if (rx->cb)
        rx->cb(err, rx->arg);
    free(rx);
    records_in_flight--;
}

static void record_state_done(int err, void *arg)
{
    record_done(err, arg);
}

/* ---- deferrals: their STATE records, gathered over a loop turn ---- */

static struct {
    struct event *ev;           /* active while ids are waiting */
    uint64_t *ids;              /* messages with unrecorded set, noted order */
    size_t n, cap;
} DF;

/* The end of the loop turn: one STATE per message still unrecorded (a final
 * result's STATE may have carried the deferral meanwhile). */
static void defer_flush(evutil_socket_t fd, short what, void *arg)
{
    uint64_t *ids = DF.ids;
    size_t n = DF.n;
    DF.ids = NULL;
    DF.n = DF.cap = 0;
    for (size_t i = 0; i < n; i++) {
        struct qmsg *m = qmgr_msg_by_id(ids[i]);
        if (m && m->unrecorded && m->npending > 0)
            qmgr_msg_record(m, NULL, NULL);
    }
    free(ids);
}

void qmgr_defer_note(struct qmsg *m)
{
    if (!DF.ev && !(DF.ev = event_new(Q.base, -1, 0, defer_flush, NULL)))
        log_fatal("queue: out of memory");
    if (DF.n == DF.cap) {
        DF.cap = DF.cap ? DF.cap * 2 : 64;
        DF.ids = xrealloc(DF.ids, DF.cap * sizeof *DF.ids);
    }
    DF.ids[DF.n++] = m->id;
    if (DF.n == 1)
        event_active(DF.ev, EV_TIMEOUT, 0);
}

int qmgr_defer_pending(void)
{
    return DF.n > 0 || records_in_flight > 0;
}

void qmgr_defer_shutdown(void)
{
    if (DF.n)
        log_warn("queue: %zu deferral reasons not written before the stop", DF.n);
    if (DF.ev)
        event_free(DF.ev);
    free(DF.ids);
    memset(&DF, 0, sizeof DF);
}

void qmgr_msg_record(struct qmsg *m, qmgr_cb *cb, void *arg)
{
    struct record_ctx *rx = xcalloc(1, sizeof *rx);
    rx->id = m->id;
    rx->cb = cb;
    rx->arg = arg;
    records_in_flight++;
    if (m->npending == 0) {
        spool_append_done(Q.spool, m->id, record_done, rx);
        return;
    }
    struct op *op = op_new(record_state_done, rx);
    msg_write_state(m, m->held_next, op);
    op_finish_one(op, 0);
}

void qmgr_log_result(const struct qmsg *m, const struct qrcpt *r, const char *relay,
                     const char *status, const char *text)
{
    log_info("%s: to=<%s>, relay=%s, delay=%lld, status=%s (%s)", m->idstr, r->addr,
             relay, (long long)(time(NULL) - m->arrival), status, text ? text : "");
}

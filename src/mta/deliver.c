/*
 * deliver — pushing customers' held mail: per customer a delivery state
 * (idle, one kicked pass, or online with retries), up to `connections`
 * transport sessions (transport.h: SMTP, local delivery; a local customer
 * gets up to DL_LOCAL_SESSIONS within a memory budget) that take messages
 * from the customer's recipient list through a cursor, per-recipient
 * results, and retry backoff.  Kicks are in deliver_kick.c; bounces, delay
 * warnings and expiry are the queue's (bounce.c), asked for through
 * qmgr_deliver.h.
 * The queue tells this file of new mail, reloads, releases and recipients
 * leaving through the hooks deliver_init() registers; kickmaild.c tells it
 * of link changes and gives it the link table's lookup.
 *
 * Cost: everything done for one customer walks only that customer's list.
 * A pass visits each waiting recipient once (r->pass); new mail arriving
 * while a customer is online is picked up by the running pass or starts
 * connections at once.  While a customer is not online (link down, not
 * "always") nothing is retried.
 *
 * Trusts the qmgr index; the remote servers' replies come through the
 * transport (bounded there).  Guarantees: a recipient is final only after
 * a 2xx to the final dot (delivered) or a 5xx with its DSN queued durably
 * by bounce.c (bounced), and that result is made durable by
 * qmgr_msg_record().
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "core/config.h"
#include "core/log.h"
#include "core/resolve.h"
#include "core/stats.h"
#include "core/util.h"
#include "mta/deliver.h"
#include "queue/qmgr.h"
#include "queue/qmgr_deliver.h"
#include "deliver_int.h"
#include "transport.h"

struct job;

struct conn {
    LIST_ENTRY(conn) entry;
    struct qdeliv *d;
    const struct transport *t;
    struct transport_session *s;
    struct job *job;                /* message being read or sent */
    struct job *next;               /* the one after it, its body read ahead */
    int extra;                      /* local delivery: a session beyond the
                                     * customer's `connections` (takes a
                                     * message only within DL_LOCAL_BYTES) */
};

/* Local delivery has no server to spare: a local customer gets up to
 * DL_LOCAL_SESSIONS sessions (one message each in flight), so that the
 * maildir workers find many messages to write under one round of syncs.
 * The sessions beyond its `connections` take a message only while the
 * bodies of all local deliveries in memory stay within DL_LOCAL_BYTES (or
 * when no other session of the customer is busy): memory holds that plus
 * about `connections` messages per local customer. */
#define DL_LOCAL_SESSIONS 64
#define DL_LOCAL_BYTES (32 * 1024 * 1024)

struct job {
    struct conn *conn;              /* NULL once the connection is gone */
    struct qdeliv *d;
    struct qmsg *m;
    size_t n;
    struct qrcpt **r;
    const char **addrs;
    struct evbuffer *body;
    int read;                       /* the body is in: ready to send */
    uint64_t local_bytes;           /* counted in DL.local_bytes */
    struct transport_msg tm;
};

/* A link change delivery is told of (deliver_link_changed). */
struct dl_event {
    const char *customer;
    struct deliver_link link;
};

static struct {
    unsigned busy;                  /* jobs in progress */
    uint64_t local_bytes;           /* bodies of local deliveries' jobs */
    deliver_link_fn *links;         /* the link table's lookup */
    const struct dl_event *event;   /* the change deliver_link_changed is told of */
} DL;

static void pass_start(struct qdeliv *d);
static void dl_resolved(const char *name, const struct resolve_result *res,
                        const char *err, void *arg);
static void conns_fill(struct qdeliv *d);

struct qdeliv *dl_get(struct qcust *qc)
{
    if (!qc->dl) {
        struct qdeliv *d = xcalloc(1, sizeof *d);
        d->qc = qc;
        LIST_INIT(&d->conns);
        d->retry_ev = evtimer_new(qmgr_base(), NULL, NULL);
        d->etrn_ev = evtimer_new(qmgr_base(), etrn_fire, d);
        qc->dl = d;
    }
    return qc->dl;
}

int dl_busy(const struct qdeliv *d)
{
    return d->nconn > 0 || d->dns;
}

/* The customer's link: while delivery is told of a change of it, the
 * change's snapshot (its address is the one used), else the table's
 * (through the lookup kickmaild.c gave); NULL when it never had one. */
static const struct deliver_link *dl_link(const struct qcust *qc, struct deliver_link *buf)
{
    if (DL.event && strcmp(DL.event->customer, qc->name) == 0)
        return &DL.event->link;
    if (!DL.links || DL.links(qc->name, buf) < 0)
        return NULL;
    return buf;
}

int dl_dest(const struct qcust *qc, struct transport_dest *dst, char *err, size_t errlen)
{
    const struct customer *c = qc->cfg;
    struct deliver_link lb;
    if (!c) {
        snprintf(err, errlen, "%s: no such customer", qc->name);
        return -1;
    }
    return transport_for(c)->dest(c, dl_link(qc, &lb), dst, err, errlen);
}

/* "host:port" for logs and reasons; an IPv6 address in brackets; "local"
 * (port 0) for local delivery. */
static const char *dl_relay(const char *host, int port, char *buf, size_t len)
{
    if (port == 0)
        snprintf(buf, len, "%s", host);
    else
        snprintf(buf, len, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
    return buf;
}

int dl_online(const struct qcust *qc)
{
    const struct customer *c = qc->cfg;
    const struct deliver_link *l;
    struct deliver_link lb;
    if (!c || !transport_for(c)->open)
        return 0;                       /* mail that is fetched, never pushed */
    if (transport_for(c)->local)
        return 1;                       /* local delivery: no link to wait for */
    l = dl_link(qc, &lb);
    if (l && l->up)
        return 1;
    return c->online == ONLINE_ALWAYS && c->deliver == DELIVER_HOST;
}

/* ---- the cursor over a customer's recipients ---- */

static int rcpt_eligible(const struct qdeliv *d, const struct qrcpt *r)
{
    return r->pass != d->pass && !qmgr_rcpt_held(r) && !r->msg->active &&
           (!d->attach || attach_wants(d, r));
}

static struct qrcpt *cursor_peek(struct qdeliv *d)
{
    struct qrcpt *r = d->cursor;
    while (r && !rcpt_eligible(d, r))
        r = TAILQ_NEXT(r, link);
    d->cursor = r;
    return r;
}

/* Hook: r leaves its customer's list; the cursor moves past it. */
static void deliver_rcpt_leaving(struct qrcpt *r)
{
    if (r->cust && r->cust->dl && r->cust->dl->cursor == r)
        r->cust->dl->cursor = TAILQ_NEXT(r, link);
}

/* ---- jobs: one message's recipients for one customer on one connection ---- */

static struct job *job_take(struct qdeliv *d)
{
    struct qrcpt *first = cursor_peek(d);
    if (!first)
        return NULL;
    struct qmsg *m = first->msg;
    struct job *j = xcalloc(1, sizeof *j);
    j->d = d;
    j->m = m;
    j->r = xcalloc(m->nrcpt, sizeof *j->r);
    j->addrs = xcalloc(m->nrcpt, sizeof *j->addrs);
    for (unsigned i = 0; i < m->nrcpt; i++) {
        struct qrcpt *r = &m->rcpts[i];
        if (r->cust != d->qc || !r->link.tqe_prev || !rcpt_eligible(d, r))
            continue;
        r->pass = d->pass;
        j->r[j->n] = r;
        j->addrs[j->n++] = r->addr;
    }
    m->active++;
    DL.busy++;
    if (d->qc->cfg && transport_for(d->qc->cfg)->local) {
        j->local_bytes = m->size;
        DL.local_bytes += m->size;
    }
    j->body = evbuffer_new();
    j->tm.id = m->id;
    j->tm.idstr = m->idstr;
    j->tm.sender = m->sender;
    j->tm.nrcpt = j->n;
    j->tm.rcpts = j->addrs;
    j->tm.body = j->body;
    j->tm.owner = j;
    j->tm.results = xcalloc(j->n, sizeof *j->tm.results);
    return j;
}

static void job_free(struct job *j)
{
    DL.busy--;
    DL.local_bytes -= j->local_bytes;
    for (size_t i = 0; i < j->n; i++)
        free(j->tm.results[i].text);
    free(j->tm.results);
    free(j->r);
    free(j->addrs);
    if (j->body && j->tm.body == j->body)   /* not taken over by the transport */
        evbuffer_free(j->body);
    free(j);
}

/* Applies a finished job's per-recipient results. */
static void job_results(struct job *j, const char *relay)
{
    struct qmsg *m = j->m;
    size_t nb = 0, nfinal = 0;
    struct qrcpt **br = xcalloc(j->n, sizeof *br);
    const char **bdiag = xcalloc(j->n, sizeof *bdiag);
    for (size_t i = 0; i < j->n; i++) {
        struct transport_result *res = &j->tm.results[i];
        struct qrcpt *r = j->r[i];
        const char *text = res->text ? res->text : "no result";
        if (j->d && j->d->attach)
            attach_count(j->d, res->code >= 500 ? 5 : res->code / 100 == 2 ? 2 : 4);
        if (res->code >= 200 && res->code < 300) {
            qmgr_log_result(m, r, relay, "sent", text);
            qmgr_rcpt_final(r, QR_DELIVERED);
            stats_add(ST_DELIVERED, 1);
            nfinal++;
        } else if (res->code >= 500) {
            br[nb] = r;
            bdiag[nb++] = text;
        } else {
            qmgr_log_result(m, r, relay, "deferred", text);
            qmgr_rcpt_defer(r, text);
            stats_add(ST_DEFERRED, 1);
            if (j->d)
                j->d->deferred = 1;
        }
    }
    m->active--;
    if (nb) {
        /* the results are recorded once the DSN is queued; a body the
         * transport took over is read again from the spool */
        struct evbuffer *body = j->tm.body == j->body ? j->body : NULL;
        bounce_rcpts(m, nb, br, NULL, bdiag, j->d ? j->d->host : NULL, body, 0,
                     NULL, NULL);
        if (body)
            j->body = j->tm.body = NULL;
    } else if (nfinal) {
        qmgr_msg_record(m, NULL, NULL);
    }
    free(br);
    free(bdiag);
}

/* ---- connections ---- */

static void conn_next(struct conn *cn);

/* A job taken but not sent (read ahead, then the connection went away or
 * its mail was held): its recipients go back to the pass, untried, so that
 * another connection or address takes them, or pass_end() defers them. */
static void job_drop(struct job *j)
{
    for (size_t i = 0; i < j->n; i++)
        j->r[i]->pass = 0;
    if (j->d)
        j->d->cursor = TAILQ_FIRST(&j->d->qc->rcpts);       /* cursor_peek skips */
    if (!j->read) {
        j->conn = NULL;                 /* job_body_read frees it */
        return;
    }
    j->m->active--;
    job_free(j);
}

/* A job read ahead may still be sent: nothing held, deleted or re-filed
 * its recipients meanwhile. */
static int job_sendable(const struct job *j)
{
    for (size_t i = 0; i < j->n; i++)
        if (!j->r[i]->link.tqe_prev || qmgr_rcpt_held(j->r[i]) ||
            (j->d && j->r[i]->cust != j->d->qc))
            return 0;
    return 1;
}

static void job_body_read(int err, void *arg)
{
    struct job *j = arg;
    struct conn *cn = j->conn;
    if (err) {
        log_err("%s: cannot read message from the spool: %s", j->m->idstr, strerror(err));
        for (size_t i = 0; i < j->n; i++)
            qmgr_rcpt_defer(j->r[i], "cannot read message from the spool");
        j->m->active--;
        int current = cn && cn->job == j;
        if (cn && current)
            cn->job = NULL;
        else if (cn)
            cn->next = NULL;
        job_free(j);
        if (current)
            conn_next(cn);
        return;
    }
    if (!cn) {                          /* the connection went away meanwhile */
        j->m->active--;
        job_free(j);
        return;
    }
    const unsigned char *p = evbuffer_pullup(j->body, -1);
    size_t len = evbuffer_get_length(j->body);
    for (size_t i = 0; i < len; i++)
        if (p[i] & 0x80) {
            j->tm.eightbit = 1;
            break;
        }
    j->read = 1;
    if (cn->job == j)
        cn->t->send(cn->s, &j->tm);         /* last: it may close cn */
}

/* Reading ahead is for a backlog of ordinary messages: with fewer than two
 * messages per connection it would leave a connection idle (one taking
 * two while another has none), and a large body would sit in memory. */
#define READ_AHEAD_MAX_SIZE (1024 * 1024)

/* May cn take the next message?  Yes, but for an extra local session when
 * that message's body would take the local deliveries' bodies in memory
 * over DL_LOCAL_BYTES and another session of the customer is busy (this
 * one quits; that one goes on and takes the rest, so the customer is never
 * left without a session while it has mail). */
static int conn_may_take(struct conn *cn)
{
    struct qrcpt *r;
    struct conn *o;
    if (!cn->extra || !cn->d || !(r = cursor_peek(cn->d)) ||
        DL.local_bytes + r->msg->size <= DL_LOCAL_BYTES)
        return 1;
    LIST_FOREACH(o, &cn->d->conns, entry)
        if (o != cn && (o->job || o->next))
            return 0;
    return 1;
}

/* Takes the connection's next job and starts reading its body now, so that
 * it is in memory when the current message is done: the spool read (a
 * round trip to the aux thread) is off each message's path. */
static void conn_read_ahead(struct conn *cn)
{
    struct qdeliv *d = cn->d;
    if (!d || cn->next || d->qc->nmsg <= 2 * d->nconn || !conn_may_take(cn))
        return;
    struct qrcpt *r = cursor_peek(d);
    if (!r || r->msg->size > READ_AHEAD_MAX_SIZE)
        return;
    struct job *n = job_take(d);
    if (!n)
        return;
    cn->next = n;
    n->conn = cn;
    qmgr_read_body(n->m, n->body, job_body_read, n);
}

static void conn_next(struct conn *cn)
{
    struct qdeliv *d = cn->d;
    struct job *j = cn->next;
    int ahead = j != NULL;
    cn->next = NULL;
    if (j && !job_sendable(j)) {
        job_drop(j);
        j = NULL;
        ahead = 0;
    }
    if (!j)
        j = d && conn_may_take(cn) ? job_take(d) : NULL;
    if (!j) {
        cn->t->quit(cn->s);
        return;
    }
    cn->job = j;
    j->conn = cn;
    if (!ahead)
        qmgr_read_body(j->m, j->body, job_body_read, j);
    conn_read_ahead(cn);
    if (j->read)
        cn->t->send(cn->s, &j->tm);         /* last: it may close cn */
}

static void on_ready(void *arg)
{
    conn_next(arg);
}

static void on_done(struct transport_msg *msg, const char *relay, void *arg)
{
    struct conn *cn = arg;
    struct job *j = msg->owner;
    job_results(j, relay);
    if (cn->job == j)
        cn->job = NULL;
    job_free(j);
}

static void on_closed(int code, const char *reason, void *arg)
{
    struct conn *cn = arg;
    struct qdeliv *d = cn->d;
    if (cn->job) {
        cn->job->conn = NULL;           /* body read still running */
        cn->job = NULL;
    }
    if (cn->next) {
        job_drop(cn->next);
        cn->next = NULL;
    }
    LIST_REMOVE(cn, entry);
    free(cn);
    if (!d)
        return;
    if (code != 0 && reason) {
        snprintf(d->last_error, sizeof d->last_error, "%s", reason);
        char rl[80];
        log_info("%s: delivery to %s failed: %s", d->qc->name,
                 dl_relay(d->host, d->port, rl, sizeof rl), reason);
        /* opportunistic TLS (RFC 7435): a broken handshake must not keep mail
         * from a server that takes it in plaintext: retry at once without TLS */
        if (!d->tls_plain && d->qc->cfg && d->qc->cfg->tls == TLSPOL_MAY &&
            strstr(reason, "TLS handshake")) {
            log_info("%s: TLS handshake failed, next attempts in plaintext", d->qc->name);
            d->tls_plain = 1;
            d->last_error[0] = 0;
            if (d->kicked)
                d->again = AGAIN_KICK;  /* the kick's pass again: no backoff */
            else
                d->restart = 1;
        }
    }
    if (--d->nconn == 0)
        pass_end(d);
}

static const struct transport_cbs conn_cbs = { on_ready, on_done, on_closed };

static int conn_open(struct qdeliv *d)
{
    const struct customer *c = d->qc->cfg;
    struct transport_target tt = {
        .cust = c, .host = d->host, .port = d->port,
        .helo_name = qmgr_config()->hostname, .plain = d->tls_plain,
        .io = d->attach ? attach_take_io(d) : NULL,
    };
    struct conn *cn = xcalloc(1, sizeof *cn);
    cn->d = d;
    cn->t = d->attach ? &transport_attach : transport_for(c);
    cn->extra = cn->t->local && d->nconn >= (c->connections ? c->connections : 1);
    LIST_INSERT_HEAD(&d->conns, cn, entry);
    d->nconn++;
    cn->s = cn->t->open ? cn->t->open(&tt, &conn_cbs, cn) : NULL;
    if (!cn->s) {
        LIST_REMOVE(cn, entry);
        free(cn);
        d->nconn--;
        char rl[80];
        snprintf(d->last_error, sizeof d->last_error, "cannot connect to %s",
                 dl_relay(d->host, d->port, rl, sizeof rl));
        return -1;
    }
    return 0;
}

/* There is mail to send and nothing stops sending it now. */
static int dl_has_work(struct qdeliv *d)
{
    return d->qc->cfg && !qmgr_stopping() && d->mode != DL_IDLE && !d->qc->held &&
           cursor_peek(d);
}

/* The customer's fixed host is a name, not an address. */
static const char *dl_name(const struct qdeliv *d)
{
    const struct customer *c = d->qc->cfg;
    return c && c->deliver == DELIVER_HOST && c->deliver_host &&
           !util_numeric_ip(c->deliver_host) ? c->deliver_host : NULL;
}

/* Looks the customer's host name up (when there is mail to send): no
 * connection starts before dl_resolved().  Addresses are never reused from
 * an earlier lookup (no cache, so no TTLs to keep). */
static void dl_lookup(struct qdeliv *d, const char *name)
{
    free(d->addrs);
    d->addrs = NULL;
    d->host[0] = 0;
    if (dl_has_work(d))
        d->dns = resolve_start(name, dl_resolved, d);
}

/* Opens connections up to the customer's limit while there is mail to
 * send (none while the host name is being looked up).  -1 when one failed
 * to open and none is open (d->last_error says why): the caller ends the
 * pass. */
static int conns_open(struct qdeliv *d)
{
    const struct customer *c = d->qc->cfg;
    if (d->dns || !d->host[0] || !dl_has_work(d))
        return 0;
    unsigned want = c->connections && !d->attach ? c->connections : 1;
    if (d->attach && d->nconn)
        return 0;                       /* one connection, and only once */
    if (transport_for(c)->local && want < DL_LOCAL_SESSIONS)
        want = DL_LOCAL_SESSIONS;
    if (want > d->qc->nmsg)
        want = d->qc->nmsg ? d->qc->nmsg : 1;
    while (d->nconn < want)
        if (conn_open(d) < 0)
            return d->nconn == 0 ? -1 : 0;
    return 0;
}

static void conns_fill(struct qdeliv *d)
{
    if (conns_open(d) < 0)
        pass_end(d);
}

/* ---- passes, retries, modes ---- */

static void retry_fire(evutil_socket_t fd, short what, void *arg)
{
    struct qdeliv *d = arg;
    if (d->mode != DL_ONLINE)
        return;
    if (dl_busy(d))
        d->restart = 1;         /* a kick's pass (or new mail) is running: after it */
    else
        pass_start(d);
}

/* After a pass while online.  One that deferred something waits retry_min,
 * then twice as long each time, up to retry_max; one that deferred nothing
 * resets the backoff.  A kick's pass changes neither the backoff nor a
 * retry already waiting (without one, it gets one at the current backoff). */
static void retry_after(struct qdeliv *d, int kicked)
{
    const struct customer *c = d->qc->cfg;
    if (!d->deferred) {
        if (!kicked)
            d->backoff = 0;
        return;
    }
    if (!evtimer_pending(d->retry_ev, NULL)) {
        if (!kicked)
            d->backoff = d->backoff ? d->backoff * 2 : c->retry_min;
        if (d->backoff > c->retry_max)
            d->backoff = c->retry_max;
        struct timeval tv = { d->backoff ? d->backoff : c->retry_min, 0 };
        evtimer_assign(d->retry_ev, qmgr_base(), retry_fire, d);
        evtimer_add(d->retry_ev, &tv);
        d->retry_at = util_now_mono() + (double)tv.tv_sec;
    }
    double left = d->retry_at - util_now_mono();
    log_info("%s: mail deferred, next attempt in %ld s", d->qc->name,
             left > 0 ? (long)(left + 0.999) : 0L);
}

/* Begins a pass: its connections are connecting when this returns.  -1
 * when there is no destination (the customer goes idle).  With 0 and no
 * connection open (nothing to send, held, or the connect failed at once)
 * the caller ends the pass with pass_end(): a kick logs in between, so that
 * its line comes after the connect but before the pass's results. */
int pass_open(struct qdeliv *d)
{
    char err[256];
    struct transport_dest dst;
    if (d->dns)
        return 0;                       /* this pass's lookup is running */
    if (d->attach)
        attach_dest(d, &dst);
    else if (dl_dest(d->qc, &dst, err, sizeof err) < 0) {
        d->mode = DL_IDLE;
        d->kicked = 0;
        return -1;
    }
    if (!d->kicked)
        evtimer_del(d->retry_ev);       /* a kick leaves the retry where it is */
    d->pass++;
    if (d->pass == 0)
        d->pass = 1;                    /* 0 means "never taken" */
    d->deferred = 0;
    d->last_error[0] = 0;
    d->port = dst.port;
    d->cursor = TAILQ_FIRST(&d->qc->rcpts);
    if (transport_for(d->qc->cfg)->local || util_numeric_ip(dst.host)) {
        free(d->addrs);
        d->addrs = NULL;
        snprintf(d->host, sizeof d->host, "%.63s", dst.host);   /* numeric: fits */
        conns_open(d);
    } else {
        dl_lookup(d, dst.host);
    }
    return 0;
}

/* The lookup of the customer's host name ended: connect to its first
 * address (pass_end() goes on with the next ones), or end the pass with
 * the lookup's failure as the deferral reason. */
static void dl_resolved(const char *name, const struct resolve_result *res,
                        const char *err, void *arg)
{
    struct qdeliv *d = arg;
    d->dns = NULL;
    if (!res) {
        snprintf(d->last_error, sizeof d->last_error, "%s", err);
        log_info("%s: delivery failed: %s", d->qc->name, err);
        pass_end(d);
        return;
    }
    char list[RESOLVE_MAX_ADDRS * (RESOLVE_ADDR_LEN + 2)] = "";
    for (size_t i = 0; i < res->n; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "",
                 res->addr[i]);
    log_info("%s: %s is %s", d->qc->name, name, list);
    d->addrs = xmalloc(sizeof *d->addrs);
    *d->addrs = *res;
    d->addr_next = 1;
    snprintf(d->host, sizeof d->host, "%s", res->addr[0]);
    if (conns_open(d) < 0 || d->nconn == 0)
        pass_end(d);
}

static void pass_start(struct qdeliv *d)
{
    if (pass_open(d) == 0 && !dl_busy(d))
        pass_end(d);            /* nothing to send (or held): the pass is over */
}

void pass_end(struct qdeliv *d)
{
    if (d->attach) {
        attach_pass_end(d);
        return;
    }
    if (d->restart && !qmgr_stopping()) {
        d->restart = 0;
        d->kicked = 0;
        d->again = AGAIN_NONE;          /* this pass covers what the kicks asked */
        pass_start(d);
        return;
    }
    /* the connections to one address of a looked-up name all failed:
     * the mail not yet tried goes to the next address, in this pass */
    while (d->last_error[0] && d->addrs && d->addr_next < d->addrs->n && dl_has_work(d)) {
        const char *next = d->addrs->addr[d->addr_next++];
        char rl[80];
        log_info("%s: %s failed, trying the next address %s", d->qc->name,
                 dl_relay(d->host, d->port, rl, sizeof rl), next);
        snprintf(d->host, sizeof d->host, "%s", next);
        d->last_error[0] = 0;
        if (conns_open(d) == 0 && d->nconn > 0)
            return;
    }
    /* mail that came while the last connections were saying QUIT (none
     * was opened for it then): this pass takes it now */
    if (!d->last_error[0] && !d->attach && dl_has_work(d) && conns_open(d) == 0 &&
        d->nconn > 0)
        return;
    pass_defer_rest(d);
    int kicked = d->kicked;
    d->kicked = 0;
    if (d->mode == DL_KICK)
        d->mode = dl_online(d->qc) ? DL_ONLINE : DL_IDLE;
    if (d->mode == DL_ONLINE && d->qc->cfg)
        retry_after(d, kicked);
    kick_again(d);
}

void pass_defer_rest(struct qdeliv *d)
{
    if (d->last_error[0] && !qmgr_stopping()) {
        /* mail this pass never got to is deferred with the connection failure
         * (not with our own stop: it keeps its state, and a stop in the middle
         * of a large flush writes no STATE record for each message left) */
        struct qrcpt *r;
        char relay[80];
        if (d->host[0])
            dl_relay(d->host, d->port, relay, sizeof relay);
        else
            snprintf(relay, sizeof relay, "none");     /* the lookup failed */
        while ((r = cursor_peek(d))) {
            r->pass = d->pass;
            qmgr_rcpt_defer(r, d->last_error);
            qmgr_log_result(r->msg, r, relay, "deferred", d->last_error);
            stats_add(ST_DEFERRED, 1);
            d->deferred = 1;
            if (d->attach)
                attach_count(d, 4);
        }
    }
}

static void dl_abort(struct qdeliv *d, const char *why)
{
    struct conn *cn, *next;
    evtimer_del(d->retry_ev);
    d->again = AGAIN_NONE;              /* the kicks were for what is ended now */
    for (cn = LIST_FIRST(&d->conns); cn; cn = next) {
        next = LIST_NEXT(cn, entry);
        cn->t->abort(cn->s, why);
    }
    if (d->dns) {                       /* ends like an aborted connection */
        resolve_cancel(d->dns);
        d->dns = NULL;
        snprintf(d->last_error, sizeof d->last_error, "%s", why);
        pass_end(d);
    }
}

/* The customer became reachable (link up, or online "always"). */
static void dl_go_online(struct qcust *qc)
{
    struct qdeliv *d = dl_get(qc);
    d->mode = DL_ONLINE;
    d->backoff = 0;
    d->tls_plain = 0;
    if (!dl_busy(d))
        pass_start(d);
    else
        d->restart = 1;         /* after the connections in flight end */
}

/* Hook: a release concerning qc took effect. */
static void deliver_resume(struct qcust *qc)
{
    struct qdeliv *d = qc->dl;
    if (qmgr_stopping() || !dl_online(qc))
        return;
    if (!d || d->mode == DL_IDLE || !dl_busy(d))
        dl_go_online(qc);
    else
        d->restart = 1;
}

static void dl_link_changed(const struct dl_event *ev, int was_up)
{
    const struct deliver_link *l = &ev->link;
    struct qcust *qc = qmgr_cust_by_name(ev->customer);
    if (!qc)
        return;
    struct qdeliv *d = qc->dl;
    if (d && d->attach)
        return;         /* the ODMR session is the customer's delivery while it
                         * lasts; its end looks at the link again */
    if (l->up) {
        if (d && was_up && d->nconn && qc->cfg && qc->cfg->deliver == DELIVER_LINK &&
            strcmp(d->host, l->address)) {      /* a fixed host stays the target */
            d->last_error[0] = 0;
            dl_abort(d, "link address changed");
        }
        if (dl_online(qc))
            dl_go_online(qc);
        return;
    }
    if (!d || !was_up)
        return;
    if (qc->cfg && qc->cfg->online == ONLINE_ALWAYS && qc->cfg->deliver == DELIVER_HOST)
        return;                         /* leased line: the link does not matter */
    if (qc->cfg && transport_for(qc->cfg)->local)
        return;                         /* local delivery: nor here */
    d->mode = DL_IDLE;
    d->last_error[0] = 0;
    dl_abort(d, "link went down during delivery");
}

void deliver_link_changed(const char *customer, int up, int was_up, const char *address)
{
    const struct dl_event *outer = DL.event;
    struct dl_event ev = { customer, { up, address ? address : "" } };
    DL.event = &ev;
    dl_link_changed(&ev, was_up);
    DL.event = outer;
}

/* Hook: m was just indexed. */
static void deliver_new_mail(struct qmsg *m)
{
    for (unsigned i = 0; i < m->nrcpt; i++) {
        struct qcust *qc = m->rcpts[i].cust;
        if (!qc || !qc->dl || qc->dl->mode == DL_IDLE) {
            if (qc && dl_online(qc) && (!qc->dl || qc->dl->mode == DL_IDLE))
                dl_go_online(qc);
            continue;
        }
        struct qdeliv *d = qc->dl;
        if (!d->cursor)
            d->cursor = &m->rcpts[i];
        if (!dl_busy(d) && d->pass && dl_name(d))
            dl_lookup(d, dl_name(d));   /* within the pass: deferred mail waits */
        else if (!dl_busy(d) && d->host[0] == 0)
            pass_start(d);
        else
            conns_fill(d);
    }
}

/* ---- set-up and reconfiguration ---- */

static void dl_free(struct qcust *qc)
{
    struct qdeliv *d = qc->dl;
    struct conn *cn, *next;
    if (!d)
        return;
    for (cn = LIST_FIRST(&d->conns); cn; cn = next) {
        next = LIST_NEXT(cn, entry);
        cn->d = NULL;
        if (cn->job)
            cn->job->d = NULL;
        if (cn->next)
            cn->next->d = NULL;
        cn->t->abort(cn->s, "customer removed");
    }
    if (d->attach)
        attach_gone(d);
    resolve_cancel(d->dns);
    free(d->addrs);
    event_free(d->retry_ev);
    event_free(d->etrn_ev);
    free(d);
    qc->dl = NULL;
}

/* Hook: qc leaves the configuration. */
static void deliver_cust_gone(struct qcust *qc)
{
    dl_free(qc);
}

/* Hook (and start): a reload re-attached the recipients. */
static void deliver_reconfigured(void)
{
    const struct config *cfg = qmgr_config();
    size_t pos = 0;
    struct qcust *qc;
    resolve_configure(qmgr_base(), cfg->resolver, cfg->resolver_timeout, cfg->resolver_tries,
                      cfg->hosts);
    transport_maildir_configure();      /* the usage of new maildrops */
    while ((qc = qmgr_cust_next(&pos))) {
        if (qc->dl)
            qc->dl->cursor = TAILQ_FIRST(&qc->rcpts);
        if (qc->dl && dl_busy(qc->dl)) {
            qc->dl->restart = 1;        /* its next pass takes the new settings */
        } else if (qc->dl && !qc->dl->dns) {
            qc->dl->host[0] = 0;        /* new mail starts a pass: deliver may */
            free(qc->dl->addrs);        /* have changed, a name be looked up */
            qc->dl->addrs = NULL;
        }
        if (qc->dl && qc->dl->mode != DL_IDLE && !dl_online(qc) && qc->dl->mode == DL_ONLINE) {
            qc->dl->mode = DL_IDLE;
            dl_abort(qc->dl, "customer no longer reachable after reload");
        } else if (dl_online(qc) && (!qc->dl || qc->dl->mode == DL_IDLE)) {
            if (qc->nmsg)
                dl_go_online(qc);
            else
                dl_get(qc)->mode = DL_ONLINE;
        }
    }
}

int deliver_init(deliver_link_fn *links, char *err, size_t errlen)
{
    static const struct qmgr_hooks hooks = {
        .new_mail = deliver_new_mail, .cust_gone = deliver_cust_gone,
        .reconfigured = deliver_reconfigured, .rcpt_leaving = deliver_rcpt_leaving,
        .resume = deliver_resume, .maildrop_full = transport_maildir_rescan,
    };
    DL.links = links;
    if (transport_init(qmgr_base(), err, errlen) < 0)
        return -1;
    qmgr_set_hooks(&hooks);
    deliver_reconfigured();
    return 0;
}

void deliver_configure_tls(struct tls_ctx *client)
{
    transport_smtp_set_tls(client);
}

void deliver_shutdown(void)
{
    size_t pos = 0;
    struct qcust *qc;
    while ((qc = qmgr_cust_next(&pos)))
        dl_free(qc);
    qmgr_set_hooks(NULL);
    resolve_shutdown();
    transport_shutdown();
    memset(&DL, 0, sizeof DL);
}

void deliver_stop(void)
{
    size_t pos = 0;
    struct qcust *qc;
    qmgr_stop();
    while ((qc = qmgr_cust_next(&pos)))
        if (qc->dl) {
            qc->dl->mode = DL_IDLE;
            dl_abort(qc->dl, "mail system shutting down");
        }
}

int deliver_busy(void)
{
    return DL.busy > 0 || qmgr_busy();
}

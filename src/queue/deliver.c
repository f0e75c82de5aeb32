/*
 * deliver — pushing customers' held mail: per customer a delivery state
 * (idle, one kicked pass, or online with retries), up to `connections` SMTP
 * client connections that take messages from the customer's recipient list
 * through a cursor, per-recipient results, and retry backoff.  Bounces, delay
 * warnings and expiry are in bounce.c.
 *
 * Cost: everything done for one customer walks only that customer's list.
 * A pass visits each waiting recipient once (r->pass); new mail arriving
 * while a customer is online is picked up by the running pass or starts
 * connections at once.  While a customer is not online (link down, not
 * "always") nothing is retried.
 *
 * Kicks (kickq kick, ETRN) are untrusted in number: a customer has at most
 * one pass at a time, so never more than `connections` connections, and a
 * kick that comes while a pass runs joins it (one more pass follows when it
 * ends: at once for an operator's kick, not sooner than etrn_interval
 * after the last ETRN-started pass for an ETRN).  A kick-started pass never
 * changes the retry backoff or the time of the next retry.
 *
 * Trusts the qmgr index; the remote servers' replies come through
 * smtp_client (bounded there).  Guarantees: a recipient is final only after
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

#include "config.h"
#include "deliver_int.h"
#include "links.h"
#include "log.h"
#include "qmgr.h"
#include "qmgr_int.h"
#include "resolve.h"
#include "smtp_client.h"
#include "stats.h"
#include "tls.h"
#include "util.h"

enum dl_mode { DL_IDLE, DL_KICK, DL_ONLINE };

struct conn;
LIST_HEAD(conn_list, conn);

struct qdeliv {
    struct qcust *qc;
    enum dl_mode mode;
    char host[64];                  /* the numeric address connected to; "" while
                                     * the host name is being looked up */
    int port;
    struct resolve_req *dns;        /* lookup of the host name in flight */
    struct resolve_result *addrs;   /* its addresses, for this pass */
    size_t addr_next;               /* the next of them to try */
    uint32_t pass;
    unsigned nconn;
    struct conn_list conns;
    long backoff;                   /* current retry delay, 0 = none yet */
    struct event *retry_ev;
    double retry_at;                /* when retry_ev fires (util_now_mono) */
    int deferred;                   /* something was deferred in this pass */
    int restart;                    /* start a new pass when this one ends */
    int kicked;                     /* this pass was started by a kick or ETRN */
    enum { AGAIN_NONE, AGAIN_ETRN, AGAIN_KICK } again;  /* a kick joined this pass */
    int tls_plain;                  /* tls "may": the handshake failed, go plaintext */
    char last_error[256];           /* connection-level failure in this pass */
    double last_etrn;               /* an ETRN last started a pass (util_now_mono), 0 never */
    struct event *etrn_ev;          /* the pass owed to ETRNs within etrn_interval */
};

struct job;

struct conn {
    LIST_ENTRY(conn) entry;
    struct qdeliv *d;
    struct smtp_client *c;
    struct job *job;                /* message being read or sent */
    struct job *next;               /* the one after it, its body read ahead */
};

struct job {
    struct conn *conn;              /* NULL once the connection is gone */
    struct qdeliv *d;
    struct qmsg *m;
    size_t n;
    struct qrcpt **r;
    const char **addrs;
    struct evbuffer *body;
    int read;                       /* the body is in: ready to send */
    struct smtp_client_msg cm;
};

static struct {
    struct tls_ctx *tls;
    int timeout_ms;                 /* KICKMAIL_TEST_TIMEOUT_MS */
    int stopping;                   /* shutting down: no new connections */
    unsigned busy;                  /* jobs in progress */
    const struct link *event;       /* the change qmgr_link_changed is told of */
} DL;

static void pass_start(struct qdeliv *d);
static void etrn_fire(evutil_socket_t fd, short what, void *arg);
static void dl_resolved(const char *name, const struct resolve_result *res,
                        const char *err, void *arg);
static void conns_fill(struct qdeliv *d);

static struct qdeliv *dl_get(struct qcust *qc)
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

/* A pass is under way: connections open, or the host name being looked up. */
static int dl_busy(const struct qdeliv *d)
{
    return d->nconn > 0 || d->dns;
}

/* The customer's link: while delivery is told of a change of it, the
 * change's snapshot (its address is the one used), else the table's. */
static const struct link *dl_link(const struct qcust *qc)
{
    if (DL.event && strcmp(DL.event->customer, qc->name) == 0)
        return DL.event;
    return links_get(qc->name);
}

/* Where the customer's mail goes now: 0 with host (a numeric address, or
 * for a fixed host a name) and port, or -1 with why. */
static int dl_dest(const struct qcust *qc, char *host, size_t hostlen, int *port,
                   char *err, size_t errlen)
{
    const struct customer *c = qc->cfg;
    const struct link *l;
    if (!c) {
        snprintf(err, errlen, "%s: no such customer", qc->name);
        return -1;
    }
    switch (c->deliver) {
    case DELIVER_LINK:
        l = dl_link(qc);
        if (!l || !l->up || !l->address[0]) {
            snprintf(err, errlen, "%s: link is down, no usable address", c->name);
            return -1;
        }
        snprintf(host, hostlen, "%s", l->address);
        *port = c->port;
        return 0;
    case DELIVER_HOST:
        snprintf(host, hostlen, "%s", c->deliver_host);
        *port = c->deliver_port;
        return 0;
    case DELIVER_MAILDROP:
        snprintf(err, errlen, "%s: delivers to a POP3 maildrop, not by SMTP", c->name);
        return -1;
    case DELIVER_PICKUP:
    default:
        snprintf(err, errlen, "%s: mail is held for ODMR pickup (ATRN)", c->name);
        return -1;
    }
}

/* "host:port" for logs and reasons; an IPv6 address in brackets. */
static const char *dl_relay(const char *host, int port, char *buf, size_t len)
{
    snprintf(buf, len, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
    return buf;
}

/* Is the customer reachable without a kick (link up, or online "always")? */
static int dl_online(const struct qcust *qc)
{
    const struct customer *c = qc->cfg;
    const struct link *l;
    if (!c || c->deliver == DELIVER_MAILDROP || c->deliver == DELIVER_PICKUP)
        return 0;
    l = dl_link(qc);
    if (l && l->up)
        return 1;
    return c->online == ONLINE_ALWAYS && c->deliver == DELIVER_HOST;
}

/* ---- the cursor over a customer's recipients ---- */

static int rcpt_eligible(const struct qdeliv *d, const struct qrcpt *r)
{
    return r->pass != d->pass && !qmgr_rcpt_held(r) && !r->msg->active;
}

static struct qrcpt *cursor_peek(struct qdeliv *d)
{
    struct qrcpt *r = d->qc->cursor;
    while (r && !rcpt_eligible(d, r))
        r = TAILQ_NEXT(r, link);
    d->qc->cursor = r;
    return r;
}

void deliver_rcpt_leaving(struct qrcpt *r)
{
    if (r->cust && r->cust->cursor == r)
        r->cust->cursor = TAILQ_NEXT(r, link);
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
    j->body = evbuffer_new();
    j->cm.id = m->id;
    j->cm.idstr = m->idstr;
    j->cm.sender = m->sender;
    j->cm.nrcpt = j->n;
    j->cm.rcpts = j->addrs;
    j->cm.body = j->body;
    j->cm.owner = j;
    j->cm.results = xcalloc(j->n, sizeof *j->cm.results);
    return j;
}

static void job_free(struct job *j)
{
    DL.busy--;
    for (size_t i = 0; i < j->n; i++)
        free(j->cm.results[i].text);
    free(j->cm.results);
    free(j->r);
    free(j->addrs);
    if (j->body)
        evbuffer_free(j->body);
    free(j);
}

void deliver_log_result(const struct qmsg *m, const struct qrcpt *r, const char *relay,
                        const char *status, const char *text)
{
    log_info("%s: to=<%s>, relay=%s, delay=%lld, status=%s (%s)", m->idstr, r->addr,
             relay, (long long)(time(NULL) - m->arrival), status, text ? text : "");
}

/* Applies a finished job's per-recipient results. */
static void job_results(struct job *j, const char *relay)
{
    struct qmsg *m = j->m;
    size_t nb = 0, nfinal = 0;
    struct qrcpt **br = xcalloc(j->n, sizeof *br);
    const char **bdiag = xcalloc(j->n, sizeof *bdiag);
    for (size_t i = 0; i < j->n; i++) {
        struct smtp_rcpt_result *res = &j->cm.results[i];
        struct qrcpt *r = j->r[i];
        const char *text = res->text ? res->text : "no result";
        if (res->code >= 200 && res->code < 300) {
            deliver_log_result(m, r, relay, "sent", text);
            qmgr_rcpt_final(r, QR_DELIVERED);
            stats_add(ST_DELIVERED, 1);
            nfinal++;
        } else if (res->code >= 500) {
            br[nb] = r;
            bdiag[nb++] = text;
        } else {
            deliver_log_result(m, r, relay, "deferred", text);
            qmgr_rcpt_defer(r, text);
            stats_add(ST_DEFERRED, 1);
            if (j->d)
                j->d->deferred = 1;
        }
    }
    m->active--;
    if (nb) {
        /* the results are recorded once the DSN is queued */
        bounce_rcpts(m, nb, br, NULL, bdiag, j->d ? j->d->host : NULL, j->body, 0,
                     NULL, NULL);
        j->body = NULL;
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
        j->d->qc->cursor = TAILQ_FIRST(&j->d->qc->rcpts);   /* cursor_peek skips */
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
            j->cm.eightbit = 1;
            break;
        }
    j->read = 1;
    if (cn->job == j)
        smtp_client_send(cn->c, &j->cm);    /* last: it may close cn */
}

/* Reading ahead is for a backlog of ordinary messages: with fewer than two
 * messages per connection it would leave a connection idle (one taking
 * two while another has none), and a large body would sit in memory. */
#define READ_AHEAD_MAX_SIZE (1024 * 1024)

/* Takes the connection's next job and starts reading its body now, so that
 * it is in memory when the current message is done: the spool read (a
 * round trip to the aux thread) is off each message's path. */
static void conn_read_ahead(struct conn *cn)
{
    struct qdeliv *d = cn->d;
    if (!d || cn->next || d->qc->nmsg <= 2 * d->nconn)
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
        j = d ? job_take(d) : NULL;
    if (!j) {
        smtp_client_quit(cn->c);
        return;
    }
    cn->job = j;
    j->conn = cn;
    if (!ahead)
        qmgr_read_body(j->m, j->body, job_body_read, j);
    conn_read_ahead(cn);
    if (j->read)
        smtp_client_send(cn->c, &j->cm);    /* last: it may close cn */
}

static void on_ready(struct smtp_client *c, void *arg)
{
    conn_next(arg);
}

static void on_done(struct smtp_client *c, struct smtp_client_msg *msg, void *arg)
{
    struct conn *cn = arg;
    struct job *j = msg->owner;
    job_results(j, smtp_client_relay(c));
    if (cn->job == j)
        cn->job = NULL;
    job_free(j);
}

static void pass_end(struct qdeliv *d);

static void on_closed(struct smtp_client *c, int code, const char *reason, void *arg)
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

static const struct smtp_client_cbs client_cbs = { on_ready, on_done, on_closed };

static int conn_open(struct qdeliv *d)
{
    const struct customer *c = d->qc->cfg;
    struct smtp_client_opts o = {
        .host = d->host, .port = d->port, .helo_name = qmgr_config()->hostname,
        .tls = c->tls == TLSPOL_NONE || d->tls_plain ? SMTPC_TLS_NONE :
               c->tls == TLSPOL_ENCRYPT ? SMTPC_TLS_ENCRYPT : SMTPC_TLS_MAY,
        .tls_ctx = DL.tls, .expect_helo = c->expect_helo,
        .scale_timeouts_ms = DL.timeout_ms,
    };
    struct conn *cn = xcalloc(1, sizeof *cn);
    cn->d = d;
    LIST_INSERT_HEAD(&d->conns, cn, entry);
    d->nconn++;
    cn->c = smtp_client_start(qmgr_base(), &o, &client_cbs, cn);
    if (!cn->c) {
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
    return d->qc->cfg && !DL.stopping && d->mode != DL_IDLE && !d->qc->held &&
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
    unsigned want = c->connections ? c->connections : 1;
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
static int pass_open(struct qdeliv *d)
{
    char err[256], host[256];
    if (d->dns)
        return 0;                       /* this pass's lookup is running */
    if (dl_dest(d->qc, host, sizeof host, &d->port, err, sizeof err) < 0) {
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
    d->qc->cursor = TAILQ_FIRST(&d->qc->rcpts);
    if (util_numeric_ip(host)) {
        free(d->addrs);
        d->addrs = NULL;
        snprintf(d->host, sizeof d->host, "%.63s", host);   /* numeric: fits */
        conns_open(d);
    } else {
        dl_lookup(d, host);
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

static void kick_again(struct qdeliv *d);

static void pass_end(struct qdeliv *d)
{
    if (d->restart && !DL.stopping) {
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
    if (d->last_error[0] && !DL.stopping) {
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
            deliver_log_result(r->msg, r, relay, "deferred", d->last_error);
            stats_add(ST_DEFERRED, 1);
            d->deferred = 1;
        }
    }
    int kicked = d->kicked;
    d->kicked = 0;
    if (d->mode == DL_KICK)
        d->mode = dl_online(d->qc) ? DL_ONLINE : DL_IDLE;
    if (d->mode == DL_ONLINE && d->qc->cfg)
        retry_after(d, kicked);
    kick_again(d);
}

static void dl_abort(struct qdeliv *d, const char *why)
{
    struct conn *cn, *next;
    evtimer_del(d->retry_ev);
    d->again = AGAIN_NONE;              /* the kicks were for what is ended now */
    for (cn = LIST_FIRST(&d->conns); cn; cn = next) {
        next = LIST_NEXT(cn, entry);
        smtp_client_abort(cn->c, why);
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

void deliver_resume(struct qcust *qc)
{
    struct qdeliv *d = qc->dl;
    if (DL.stopping || !dl_online(qc))
        return;
    if (!d || d->mode == DL_IDLE || !dl_busy(d))
        dl_go_online(qc);
    else
        d->restart = 1;
}

static void dl_link_changed(const struct link *l, int was_up)
{
    struct qcust *qc = qmgr_cust_by_name(l->customer);
    if (!qc)
        return;
    struct qdeliv *d = qc->dl;
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
    d->mode = DL_IDLE;
    d->last_error[0] = 0;
    dl_abort(d, "link went down during delivery");
}

void qmgr_link_changed(const struct link *l, int was_up, void *arg)
{
    const struct link *outer = DL.event;
    DL.event = l;
    dl_link_changed(l, was_up);
    DL.event = outer;
}

void deliver_new_mail(struct qmsg *m)
{
    for (unsigned i = 0; i < m->nrcpt; i++) {
        struct qcust *qc = m->rcpts[i].cust;
        if (!qc || !qc->dl || qc->dl->mode == DL_IDLE) {
            if (qc && dl_online(qc) && (!qc->dl || qc->dl->mode == DL_IDLE))
                dl_go_online(qc);
            continue;
        }
        struct qdeliv *d = qc->dl;
        if (!qc->cursor)
            qc->cursor = &m->rcpts[i];
        if (!dl_busy(d) && d->pass && dl_name(d))
            dl_lookup(d, dl_name(d));   /* within the pass: deferred mail waits */
        else if (!dl_busy(d) && d->host[0] == 0)
            pass_start(d);
        else
            conns_fill(d);
    }
}

/* ---- kicks ---- */

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
static int kick_start(struct qdeliv *d, int etrn, const char *host, int port)
{
    if (etrn)
        d->last_etrn = util_now_mono();
    if (d->mode != DL_ONLINE)
        d->mode = DL_KICK;
    d->kicked = 1;
    int started = pass_open(d) == 0;
    log_info("%s: %s: %u messages to %s:%d", d->qc->name, etrn ? "ETRN" : "kick",
             d->qc->nmsg, host, port);
    return started ? 0 : -1;
}

/* The pass kicks asked for while another ran or within etrn_interval:
 * started now when there is still mail and somewhere to send it. */
static void kick_owed(struct qdeliv *d, int etrn)
{
    char host[256], err[256];
    int port;
    if (DL.stopping || !d->qc->nmsg ||
        dl_dest(d->qc, host, sizeof host, &port, err, sizeof err) < 0)
        return;
    if (kick_start(d, etrn, host, port) == 0 && !dl_busy(d))
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

static void etrn_fire(evutil_socket_t fd, short what, void *arg)
{
    struct qdeliv *d = arg;
    if (dl_busy(d)) {
        if (d->again == AGAIN_NONE)
            d->again = AGAIN_ETRN;      /* after the pass that runs now */
        return;
    }
    kick_owed(d, 1);
}

/* The end of a pass that kicks joined: their pass follows. */
static void kick_again(struct qdeliv *d)
{
    int again = d->again;
    d->again = AGAIN_NONE;
    if (again == AGAIN_NONE || DL.stopping)
        return;
    if (again == AGAIN_ETRN && etrn_wait(d) > 0)
        etrn_arm(d);
    else
        kick_owed(d, again == AGAIN_ETRN);
}

int qmgr_kick(const char *customer, int etrn, struct qmgr_kick_result *res,
              char *err, size_t errlen)
{
    struct qcust *qc = qmgr_cust_by_name(customer);
    char host[256];
    int port;
    memset(res, 0, sizeof *res);
    if (!qc) {
        snprintf(err, errlen, "%s: no such customer", customer);
        return -1;
    }
    if (dl_dest(qc, host, sizeof host, &port, err, errlen) < 0)
        return -1;
    struct qdeliv *d = dl_get(qc);
    res->messages = qc->nmsg;
    snprintf(res->address, sizeof res->address, "%s", host);
    res->port = port;
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
    if (kick_start(d, etrn, host, port) == 0 && !dl_busy(d))
        pass_end(d);
    return 0;
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
        smtp_client_abort(cn->c, "customer removed");
    }
    resolve_cancel(d->dns);
    free(d->addrs);
    event_free(d->retry_ev);
    event_free(d->etrn_ev);
    free(d);
    qc->dl = NULL;
}

void deliver_cust_gone(struct qcust *qc)
{
    dl_free(qc);
}

void deliver_reconfigured(void)
{
    const struct config *cfg = qmgr_config();
    size_t pos = 0;
    struct qcust *qc;
    resolve_configure(qmgr_base(), cfg->resolver, cfg->resolver_timeout, cfg->resolver_tries,
                      cfg->hosts);
    while ((qc = qmgr_cust_next(&pos))) {
        qc->cursor = TAILQ_FIRST(&qc->rcpts);
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

int deliver_init(char *err, size_t errlen)
{
    const char *t = getenv("KICKMAIL_TEST_TIMEOUT_MS");
    DL.timeout_ms = t ? atoi(t) : 0;
    DL.tls = tls_client_ctx(err, errlen);
    if (!DL.tls)
        return -1;
    bounce_init();
    deliver_reconfigured();
    return 0;
}

void deliver_shutdown(void)
{
    size_t pos = 0;
    struct qcust *qc;
    while ((qc = qmgr_cust_next(&pos)))
        dl_free(qc);
    bounce_shutdown();
    resolve_shutdown();
    tls_ctx_free(DL.tls);
    memset(&DL, 0, sizeof DL);
}

void qmgr_stop_delivery(void)
{
    size_t pos = 0;
    struct qcust *qc;
    DL.stopping = 1;
    while ((qc = qmgr_cust_next(&pos)))
        if (qc->dl) {
            qc->dl->mode = DL_IDLE;
            dl_abort(qc->dl, "mail system shutting down");
        }
}

int deliver_stopping(void)
{
    return DL.stopping;
}

int qmgr_delivery_busy(void)
{
    return DL.busy > 0 || bounce_busy() || qmgr_defer_pending();
}

/*
 * qmgr — the in-memory index of the spool, per customer: queue IDs, the
 * message array, customers and their recipient lists, the rebuild from the
 * spool at start (with the customer and domain holds of state/holds), new
 * mail, and re-filing mail after a reload.  The operator's actions on the
 * index (hold, release, delete) and the records that make delivery results
 * durable are in qmgr_ops.c; bounces and expiry in bounce.c.  Delivery
 * (mta/) learns of new mail, reloads and recipients leaving a customer
 * through the hooks it registers (qmgr_deliver.h): the queue never calls it.  It trusts the spool's records (checked there) and the
 * registry.  It guarantees that the index only ever shows what is durable: a
 * message is indexed after its record is synced.  (A deferral reason is the
 * exception: shown at once, its STATE record follows without being waited
 * for, see qmgr_rcpt_defer.)  Reasons are kept as spool_reason_clean()
 * leaves them, also those replayed from older journals.
 *
 * Messages live in one array sorted by queue ID (IDs grow with time, so this
 * is arrival order); deleted slots are NULL until the array is compacted.
 * Each pending recipient is on exactly one list: its customer's, the orphan
 * list (domain without customer) or the outbound list.  Addresses are kept
 * in their RFC 5321 wire form (addr.h), whatever form the spool holds.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "core/addr.h"
#include "core/config.h"
#include "core/log.h"
#include "core/registry.h"
#include "core/util.h"
#include "maildir/maildir.h"
#include "queue/qmgr.h"
#include "queue/qmgr_deliver.h"
#include "spool/spool.h"
#include "spool/spool_state.h"
#include "qmgr_int.h"
#include "qmgr_priv.h"

struct qmgr_state Q;                /* shared with qmgr_ops.c: qmgr_priv.h */

static const char id_alphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUV";

/* ---- queue IDs ---- */

uint64_t qmgr_new_id(void)
{
    uint64_t now = (uint64_t)util_now_us();
    Q.last_id = now > Q.last_id ? now : Q.last_id + 1;
    return Q.last_id;
}

void qmgr_id_str(uint64_t id, char out[QUEUE_ID_LEN + 1])
{
    for (int i = QUEUE_ID_LEN - 1; i >= 0; i--) {
        out[i] = id_alphabet[id & 31];
        id >>= 5;
    }
    out[QUEUE_ID_LEN] = 0;
}

int qmgr_id_parse(const char *s, uint64_t *id)
{
    uint64_t v = 0;
    if (strlen(s) != QUEUE_ID_LEN)
        return -1;
    for (const char *p = s; *p; p++) {
        const char *c = strchr(id_alphabet, *p);
        if (!*p || !c)
            return -1;
        if (p == s && (c - id_alphabet) > 15)
            return -1;      /* would overflow 64 bits */
        v = (v << 5) | (uint64_t)(c - id_alphabet);
    }
    *id = v;
    return 0;
}

int qmgr_id_form(const char *s)
{
    size_t n = strlen(s);
    if (n < 10 || n > 20)
        return 0;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s) && !isupper((unsigned char)*s))
            return 0;
    return 1;
}

/* ---- the message array ---- */

static size_t slot_find(uint64_t id)
{
    size_t lo = 0, hi = Q.nslots;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (Q.ids[mid] < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void slots_compact(void)
{
    size_t j = 0;
    for (size_t i = 0; i < Q.nslots; i++) {
        if (Q.msgs[i]) {
            Q.ids[j] = Q.ids[i];
            Q.msgs[j++] = Q.msgs[i];
        }
    }
    Q.nslots = j;
}

static void slots_insert(struct qmsg *m)
{
    if (Q.nslots == Q.cap) {
        if (Q.nlive * 2 < Q.nslots) {
            slots_compact();
        } else {
            Q.cap = Q.cap ? Q.cap * 2 : 1024;
            Q.ids = xrealloc(Q.ids, Q.cap * sizeof *Q.ids);
            Q.msgs = xrealloc(Q.msgs, Q.cap * sizeof *Q.msgs);
        }
    }
    size_t i = Q.nslots;
    if (i > 0 && Q.ids[i - 1] > m->id) {
        i = slot_find(m->id);
        memmove(&Q.ids[i + 1], &Q.ids[i], (Q.nslots - i) * sizeof *Q.ids);
        memmove(&Q.msgs[i + 1], &Q.msgs[i], (Q.nslots - i) * sizeof *Q.msgs);
    }
    Q.ids[i] = m->id;
    Q.msgs[i] = m;
    Q.nslots++;
    Q.nlive++;
}

struct qmsg *qmgr_msg_by_id(uint64_t id)
{
    size_t i = slot_find(id);
    if (i < Q.nslots && Q.ids[i] == id)
        return Q.msgs[i];
    return NULL;
}

static void slots_remove(struct qmsg *m)
{
    size_t i = slot_find(m->id);
    if (i < Q.nslots && Q.msgs[i] == m) {
        Q.msgs[i] = NULL;
        Q.nlive--;
    }
}

size_t qmgr_msg_count(void)
{
    return Q.nlive;
}

struct qmsg *qmgr_msg_next(size_t *pos)
{
    while (*pos < Q.nslots) {
        struct qmsg *m = Q.msgs[(*pos)++];
        if (m)
            return m;
    }
    return NULL;
}

/* ---- customers and recipients ---- */

struct qcust *qmgr_cust_by_name(const char *name)
{
    return hmap_get(Q.custs, name);
}

struct qcust *qmgr_cust_by_domain(const char *domain)
{
    const struct customer *c = registry_by_domain(Q.reg, domain);
    return c ? hmap_get(Q.custs, c->name) : NULL;
}

struct qcust *qmgr_cust_next(size_t *pos)
{
    void *v;
    if (!hmap_next(Q.custs, pos, NULL, &v))
        return NULL;
    return v;
}

const struct qrcpt_list *qmgr_outbound(void) { return &Q.outbound; }
const struct qrcpt_list *qmgr_orphans(void)  { return &Q.orphans; }

int qmgr_domain_held(const char *domain)
{
    return hmap_get(Q.held_domains, domain) != NULL;
}

int qmgr_rcpt_held(const struct qrcpt *r)
{
    return r->msg->held || (r->cust && r->cust->held) ||
           (!r->outbound && qmgr_domain_held(r->domain));
}

int64_t qmgr_cust_oldest(const struct qcust *qc)
{
    const struct qrcpt *r = TAILQ_FIRST(&qc->rcpts);
    return r ? r->msg->arrival : 0;
}

static int rcpt_pending(const struct qrcpt *r)
{
    return r->status == QR_QUEUED || r->status == QR_DEFERRED;
}

/* Pending recipients of m on customer qc, other than skip. */
static int msg_has_cust(const struct qmsg *m, const struct qcust *qc,
                        const struct qrcpt *skip)
{
    for (unsigned i = 0; i < m->nrcpt; i++) {
        const struct qrcpt *r = &m->rcpts[i];
        if (r != skip && r->cust == qc && rcpt_pending(r) && r->link.tqe_prev)
            return 1;
    }
    return 0;
}

/* Queued bytes per recipient address of a local domain (a maildrop's), for
 * the maildrop's quota at RCPT.  A message counts once per address: SMTP
 * takes an address once per message (any case). */
struct qlocal {
    char *addr;
    uint64_t bytes;
    unsigned nmsg;
};

static void local_count(struct qrcpt *r, int delta)
{
    struct qlocal *l = hmap_get(Q.local_bytes, r->addr);
    if (delta > 0) {
        if (!l) {
            l = xcalloc(1, sizeof *l);
            l->addr = xstrdup(r->addr);
            hmap_put(Q.local_bytes, l->addr, l);
        }
        l->bytes += r->msg->size;
        l->nmsg++;
        r->local = 1;
        return;
    }
    r->local = 0;
    if (!l)
        return;
    l->bytes -= l->bytes < r->msg->size ? l->bytes : r->msg->size;
    if (--l->nmsg == 0) {
        hmap_del(Q.local_bytes, l->addr);
        free(l->addr);
        free(l);
    }
}

uint64_t qmgr_local_bytes(const char *addr)
{
    const struct qlocal *l = addr && Q.local_bytes ? hmap_get(Q.local_bytes, addr) : NULL;
    return l ? l->bytes : 0;
}

static void rcpt_attach(struct qrcpt *r)
{
    const struct customer *c = NULL;
    r->cust = NULL;
    r->pass = 0;                    /* untried by whichever customer takes it */
    if (!r->outbound)
        c = registry_by_domain(Q.reg, r->domain);
    if (c)
        r->cust = hmap_get(Q.custs, c->name);
    if (r->cust) {
        if (!msg_has_cust(r->msg, r->cust, r)) {
            r->cust->nmsg++;
            r->cust->bytes += r->msg->size;
        }
        TAILQ_INSERT_TAIL(&r->cust->rcpts, r, link);
        if (r->cust->cfg && r->cust->cfg->deliver == DELIVER_LOCAL)
            local_count(r, 1);
    } else if (r->outbound) {
        TAILQ_INSERT_TAIL(&Q.outbound, r, link);
    } else {
        TAILQ_INSERT_TAIL(&Q.orphans, r, link);
    }
}

static void rcpt_detach(struct qrcpt *r)
{
    if (!r->link.tqe_prev)
        return;
    if (r->cust) {
        if (Q.hooks.rcpt_leaving)
            Q.hooks.rcpt_leaving(r);
        TAILQ_REMOVE(&r->cust->rcpts, r, link);
        r->link.tqe_prev = NULL;
        if (r->local)
            local_count(r, -1);
        if (!msg_has_cust(r->msg, r->cust, r)) {
            r->cust->nmsg--;
            r->cust->bytes -= r->msg->size;
        }
    } else {
        TAILQ_REMOVE(r->outbound ? &Q.outbound : &Q.orphans, r, link);
        r->link.tqe_prev = NULL;
    }
}

static void msg_free(struct qmsg *m)
{
    for (unsigned i = 0; i < m->nrcpt; i++) {
        free(m->rcpts[i].addr);
        free(m->rcpts[i].reason);
    }
    free(m->sender);
    free(m);
}

/* Removes a message from the index and drops its segment references. */
void qmgr_msg_forget(struct qmsg *m)
{
    for (unsigned i = 0; i < m->nrcpt; i++)
        rcpt_detach(&m->rcpts[i]);
    slots_remove(m);
    spool_seg_unref(Q.spool, m->loc.seg);
    if (m->state_seg)
        spool_seg_unref(Q.spool, m->state_seg);
    msg_free(m);
}

/* A copy of the stored address a in its wire form.  Spools written by
 * earlier builds hold quoted local parts unquoted ("x y@acme.example"):
 * they are quoted again here (logged), so no consumer ever sends or prints
 * the unquoted form.  An address without a wire form (control bytes; the
 * parser never accepted one) is kept as it is: the SMTP client refuses it. */
static char *addr_keep(const char *idstr, const char *what, const char *a)
{
    char wire[ADDR_WIRE_MAX + 1];
    if (addr_canon(a, wire, sizeof wire) < 0) {
        log_warn("%s: %s address has no RFC 5321 form; it is never sent", idstr, what);
        return xstrdup(a);
    }
    if (strcmp(wire, a) != 0)
        log_info("%s: %s address %s quoted again as %s", idstr, what, a, wire);
    return xstrdup(wire);
}

static struct qmsg *msg_new(const struct spool_env *env, const struct spool_loc *loc)
{
    struct qmsg *m = xcalloc(1, sizeof *m + env->nrcpt * sizeof m->rcpts[0]);
    m->id = env->id;
    qmgr_id_str(m->id, m->idstr);
    m->arrival = env->arrival;
    m->size = loc->body_len;
    m->sender = addr_keep(m->idstr, "sender", env->sender);
    m->loc = *loc;
    m->nrcpt = (uint16_t)env->nrcpt;
    m->npending = m->nrcpt;
    for (size_t i = 0; i < env->nrcpt; i++) {
        struct qrcpt *r = &m->rcpts[i];
        r->addr = addr_keep(m->idstr, "recipient", env->rcpts[i].addr);
        const char *at = strrchr(r->addr, '@');
        r->domain = at ? at + 1 : r->addr + strlen(r->addr);
        r->msg = m;
        r->outbound = (env->rcpts[i].flags & SPOOL_RCPT_OUTBOUND) != 0;
        r->status = QR_QUEUED;
    }
    return m;
}

static void msg_attach_all(struct qmsg *m)
{
    for (unsigned i = 0; i < m->nrcpt; i++)
        if (rcpt_pending(&m->rcpts[i]))
            rcpt_attach(&m->rcpts[i]);
}

/* Applies a STATE record's content to m (index lists updated). */
static void msg_apply_state(struct qmsg *m, int flags, size_t nrcpt,
                            const struct spool_rstate *rs)
{
    m->held = m->held_next = (flags & SPOOL_MSG_HELD) != 0;
    m->warned = (flags & SPOOL_MSG_WARNED) != 0;
    if (nrcpt != m->nrcpt) {
        log_warn("%s: state record has %zu recipients, message %u; recipients ignored",
                 m->idstr, nrcpt, m->nrcpt);
        return;
    }
    m->npending = 0;
    for (size_t i = 0; i < nrcpt; i++) {
        struct qrcpt *r = &m->rcpts[i];
        char clean[SPOOL_REASON_MAX + 1];
        free(r->reason);        /* older journals kept reasons uncut */
        r->reason = rs[i].reason && spool_reason_clean(clean, rs[i].reason) ?
                    xstrdup(clean) : NULL;
        if (rs[i].status == SPOOL_R_DELIVERED || rs[i].status == SPOOL_R_BOUNCED) {
            rcpt_detach(r);
            r->status = rs[i].status == SPOOL_R_DELIVERED ? QR_DELIVERED : QR_BOUNCED;
        } else {
            r->status = r->reason ? QR_DEFERRED : QR_QUEUED;
            m->npending++;
        }
    }
}

/* ---- recovery ---- */

static void rec_message(void *arg, const struct spool_env *env, const struct spool_loc *loc)
{
    if (qmgr_msg_by_id(env->id)) {
        log_warn("spool: duplicate message record for id %llu ignored",
                 (unsigned long long)env->id);
        return;
    }
    struct qmsg *m = msg_new(env, loc);
    slots_insert(m);
    spool_seg_ref(Q.spool, loc->seg);
}

static void rec_state(void *arg, uint64_t id, uint32_t seg, int held, size_t nrcpt,
                      const struct spool_rstate *rs)
{
    struct qmsg *m = qmgr_msg_by_id(id);
    if (!m)
        return;
    msg_apply_state(m, held, nrcpt, rs);
    spool_seg_ref(Q.spool, seg);
    if (m->state_seg)
        spool_seg_unref(Q.spool, m->state_seg);
    m->state_seg = seg;
}

static void rec_done(void *arg, uint64_t id)
{
    struct qmsg *m = qmgr_msg_by_id(id);
    if (m)
        qmgr_msg_forget(m);
}

/* ---- holds (customer and domain), kept in state/holds ---- */

void qmgr_holds_encode(struct evbuffer *out)
{
    size_t pos = 0;
    struct qcust *qc;
    const char *d;
    while ((qc = qmgr_cust_next(&pos)))
        if (qc->held)
            evbuffer_add_printf(out, "customer %s\n", qc->name);
    pos = 0;
    while (hmap_next(Q.held_domains, &pos, &d, NULL))
        evbuffer_add_printf(out, "domain %s\n", d);
}

/* Customer holds of customers not configured now are kept in this list so a
 * reload that brings them back keeps them held. */
static struct hmap *held_absent;

static void holds_load(void)
{
    struct evbuffer *b = evbuffer_new();
    char *line;
    size_t n;
    if (spool_state_read(Q.spool, "holds", b) < 0)
        log_warn("spool: cannot read state/holds; no customer holds restored");
    while ((line = evbuffer_readln(b, &n, EVBUFFER_EOL_LF))) {
        if (!strncmp(line, "customer ", 9)) {
            struct qcust *qc = hmap_get(Q.custs, line + 9);
            if (qc) {
                qc->held = 1;
            } else {
                char *k = xstrdup(line + 9);
                hmap_put(held_absent, k, k);
            }
        } else if (!strncmp(line, "domain ", 7)) {
            char *k = util_lower(xstrdup(line + 7));
            if (hmap_put(Q.held_domains, k, k))
                free(k);
        }
        free(line);
    }
    evbuffer_free(b);
}

/* ---- set-up ---- */

static struct qcust *cust_new(const struct customer *c)
{
    struct qcust *qc = xcalloc(1, sizeof *qc);
    qc->name = xstrdup(c->name);
    qc->cfg = c;
    TAILQ_INIT(&qc->rcpts);
    char *k = hmap_del(held_absent, c->name);
    if (k) {
        qc->held = 1;
        free(k);
    }
    hmap_put(Q.custs, qc->name, qc);
    return qc;
}

static void custs_sync(void)
{
    size_t pos = 0, ngone = 0;
    struct qcust *qc, **gone = xcalloc(hmap_count(Q.custs) + 1, sizeof *gone);
    /* drop customers that left the configuration (their mail is detached);
     * collected first, since the map must not change while iterated: O(n)
     * even when a whole customer map goes away */
    while ((qc = qmgr_cust_next(&pos))) {
        const struct customer *c = registry_by_name(Q.reg, qc->name);
        if (c)
            qc->cfg = c;
        else
            gone[ngone++] = qc;
    }
    for (size_t i = 0; i < ngone; i++) {
        qc = gone[i];
        if (qc->held) {
            char *k = xstrdup(qc->name);
            hmap_put(held_absent, k, k);
        }
        if (Q.hooks.cust_gone)
            Q.hooks.cust_gone(qc);
        hmap_del(Q.custs, qc->name);
        free(qc->name);
        free(qc);
    }
    free(gone);
    /* every customer left matched a distinct registry entry: when the counts
     * agree, no registry customer lacks its qcust */
    if (hmap_count(Q.custs) == registry_count(Q.reg))
        return;
    for (size_t i = 0; i < registry_count(Q.reg); i++) {
        const struct customer *c = registry_at(Q.reg, i);
        if (!hmap_get(Q.custs, c->name))
            cust_new(c);
    }
}

int qmgr_init(struct event_base *base, struct spool *sp, const struct config *c,
              const struct registry *r, char *err, size_t errlen)
{
    double t0 = util_now_mono();
    memset(&Q, 0, sizeof Q);
    Q.base = base;
    Q.spool = sp;
    Q.cfg = c;
    Q.reg = r;
    Q.custs = hmap_new(0);
    Q.held_domains = hmap_new(1);
    Q.local_bytes = hmap_new(1);
    held_absent = hmap_new(0);
    TAILQ_INIT(&Q.outbound);
    TAILQ_INIT(&Q.orphans);
    custs_sync();
    holds_load();

    static const struct spool_recover_cbs cbs = { rec_message, rec_state, rec_done };
    uint64_t max_id = 0;
    if (spool_recover(sp, &cbs, NULL, &max_id, err, errlen) < 0)
        return -1;
    Q.last_id = max_id;
    slots_compact();
    for (size_t i = 0; i < Q.nslots; i++)
        msg_attach_all(Q.msgs[i]);
    spool_gc(sp);
    bounce_init();
    size_t nr = 0;
    for (size_t i = 0; i < Q.nslots; i++)
        nr += Q.msgs[i]->npending;
    log_info("queue: %zu messages, %zu recipients restored in %.3f s",
             Q.nlive, nr, util_now_mono() - t0);
    return 0;
}

void qmgr_shutdown(void)
{
    bounce_shutdown();
    qmgr_defer_shutdown();
    for (size_t i = 0; i < Q.nslots; i++)
        if (Q.msgs[i])
            msg_free(Q.msgs[i]);
    free(Q.ids);
    free(Q.msgs);
    size_t pos = 0;
    struct qcust *qc;
    while ((qc = qmgr_cust_next(&pos))) {
        free(qc->name);
        free(qc);
    }
    hmap_free(Q.custs);
    pos = 0;
    void *v;
    while (hmap_next(Q.held_domains, &pos, NULL, &v))
        free(v);
    hmap_free(Q.held_domains);
    pos = 0;
    while (hmap_next(Q.local_bytes, &pos, NULL, &v)) {
        free(((struct qlocal *)v)->addr);
        free(v);
    }
    hmap_free(Q.local_bytes);
    pos = 0;
    while (hmap_next(held_absent, &pos, NULL, &v))
        free(v);
    hmap_free(held_absent);
    memset(&Q, 0, sizeof Q);
}

/* Whether new owns exactly the domains old owned (in r): then none of the
 * customer's mail changes hands in a reload. */
static int domains_same(const struct customer *old, const struct customer *new,
                        const struct registry *r)
{
    if (!old || !new || old->ndomains != new->ndomains)
        return 0;
    for (size_t i = 0; i < old->ndomains; i++)
        if (strcmp(old->domains[i], new->domains[i]) != 0 &&
            registry_by_domain(r, old->domains[i]) != new)
            return 0;
    return 1;
}

struct moving {
    struct qrcpt **r;
    size_t n, cap;
};

static void moving_take(struct moving *mv, struct qrcpt_list *list)
{
    struct qrcpt *r;
    while ((r = TAILQ_FIRST(list))) {
        rcpt_detach(r);
        if (mv->n == mv->cap) {
            mv->cap = mv->cap ? mv->cap * 2 : 256;
            mv->r = xrealloc(mv->r, mv->cap * sizeof *mv->r);
        }
        mv->r[mv->n++] = r;
    }
}

/* Arrival order (message ID, then recipient), as the lists keep it. */
static int moving_cmp(const void *a, const void *b)
{
    const struct qrcpt *x = *(const struct qrcpt *const *)a;
    const struct qrcpt *y = *(const struct qrcpt *const *)b;
    if (x->msg != y->msg)
        return x->msg->id < y->msg->id ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* Only the mail of customers whose domains changed (or that left) and the
 * orphans are detached and attached again: a reload costs O(customers + that
 * mail), not O(all queued mail), so that it does not hold the loop. */
void qmgr_reconfigure(const struct config *c, const struct registry *r)
{
    struct moving mv = {0};
    size_t pos = 0;
    struct qcust *qc;
    while ((qc = qmgr_cust_next(&pos)))
        if (!domains_same(qc->cfg, registry_by_name(r, qc->name), r))
            moving_take(&mv, &qc->rcpts);
    moving_take(&mv, &Q.orphans);
    Q.cfg = c;
    Q.reg = r;
    custs_sync();
    if (mv.n > 1)
        qsort(mv.r, mv.n, sizeof *mv.r, moving_cmp);
    for (size_t i = 0; i < mv.n; i++)     /* custs_sync may have ended */
        if (rcpt_pending(mv.r[i]))          /* deliveries: their results came */
            rcpt_attach(mv.r[i]);
    free(mv.r);
    if (Q.hooks.reconfigured)
        Q.hooks.reconfigured();
}

/* The customer's quota; *maildrop (when not NULL) is set when its domain
 * maildrop's bytes count. */
static int quota_check(const struct customer *c, uint64_t bytes, int *maildrop)
{
    struct qcust *qc = hmap_get(Q.custs, c->name);
    struct maildir_usage u = { 0 };
    if (!qc || c->quota == 0)
        return 0;
    if (c->deliver == DELIVER_MAILDROP)
        maildir_usage_get(c->name, &u);         /* its domain maildrop */
    if (maildrop)
        *maildrop = u.bytes > 0;
    return qc->bytes + u.bytes + bytes > c->quota ? -1 : 0;
}

int qmgr_quota_check(const struct customer *c, uint64_t bytes)
{
    return quota_check(c, bytes, NULL);
}

int qmgr_quota_check_rcpt(const struct customer *c, const char *addr, uint64_t bytes)
{
    struct maildrop_ref md;
    struct maildir_usage u;
    int maildrop = 0;
    if (quota_check(c, bytes, &maildrop) < 0) {
        if (maildrop && Q.hooks.maildrop_full)
            Q.hooks.maildrop_full(c->name);
        return -1;
    }
    if (c->deliver != DELIVER_LOCAL || registry_maildrop(Q.reg, addr, &md) < 0 ||
        md.quota == 0)
        return 0;
    maildir_usage_get(md.name, &u);
    if (u.bytes + qmgr_local_bytes(addr) + bytes <= md.quota)
        return 0;
    if (u.bytes > 0 && Q.hooks.maildrop_full)
        Q.hooks.maildrop_full(md.name);
    return -2;
}

/* ---- receiving, reading bodies ---- */

struct submit_ctx {
    struct qmsg *m;
    struct spool_loc loc;
    qmgr_cb *cb;
    void *arg;
};

static void submit_done(int err, void *arg)
{
    struct submit_ctx *sc = arg;
    struct qmsg *m = sc->m;
    if (err) {
        msg_free(m);
    } else {
        m->loc = sc->loc;
        m->size = sc->loc.body_len;
        slots_insert(m);
        spool_seg_ref(Q.spool, m->loc.seg);
        msg_attach_all(m);
    }
    sc->cb(err, sc->arg);
    free(sc);
    if (!err && Q.hooks.new_mail)
        Q.hooks.new_mail(m);
}

void qmgr_incoming(int delta)
{
    if (Q.spool)
        spool_incoming(Q.spool, delta);
}

void qmgr_submit(const struct spool_env *env, struct evbuffer *body,
                 qmgr_cb *cb, void *arg)
{
    struct submit_ctx *sc = xcalloc(1, sizeof *sc);
    struct spool_loc loc = { 0, 0, 0, (uint32_t)evbuffer_get_length(body) };
    sc->m = msg_new(env, &loc);
    sc->cb = cb;
    sc->arg = arg;
    spool_append_message(Q.spool, env, body, &sc->loc, submit_done, sc);
}

void qmgr_read_body(const struct qmsg *m, struct evbuffer *out, qmgr_cb *cb, void *arg)
{
    spool_read_body(Q.spool, &m->loc, out, cb, arg);
}

/* ---- for the delivery tier (qmgr_deliver.h) and bounce.c ---- */

const struct config *qmgr_config(void) { return Q.cfg; }
const struct registry *qmgr_registry(void) { return Q.reg; }
struct spool *qmgr_spool(void) { return Q.spool; }
struct event_base *qmgr_base(void) { return Q.base; }

void qmgr_set_hooks(const struct qmgr_hooks *h)
{
    if (h)
        Q.hooks = *h;
    else
        memset(&Q.hooks, 0, sizeof Q.hooks);
}

void qmgr_stop(void)
{
    Q.stopping = 1;
}

int qmgr_stopping(void)
{
    return Q.stopping;
}

int qmgr_busy(void)
{
    return bounce_busy() || qmgr_defer_pending();
}

void qmgr_rcpt_final(struct qrcpt *r, enum qr_status st)
{
    if (!rcpt_pending(r))
        return;
    rcpt_detach(r);
    r->status = (uint8_t)st;
    free(r->reason);
    r->reason = NULL;
    r->msg->npending--;
}

void qmgr_rcpt_defer(struct qrcpt *r, const char *reason)
{
    char clean[SPOOL_REASON_MAX + 1];
    if (!rcpt_pending(r))
        return;
    if (!spool_reason_clean(clean, reason ? reason : ""))
        snprintf(clean, sizeof clean, "deferred");
    if (r->status == QR_DEFERRED && r->reason && strcmp(r->reason, clean) == 0)
        return;                 /* recorded already, or noted to be */
    free(r->reason);
    r->reason = xstrdup(clean);
    r->status = QR_DEFERRED;
    if (!r->msg->unrecorded) {
        r->msg->unrecorded = 1;
        qmgr_defer_note(r->msg);
    }
}

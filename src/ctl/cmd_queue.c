/*
 * cmd_queue — the control commands about the queue and its messages: list
 * (Postfix mailq layout, or JSON Lines), summary (one line per customer,
 * with its link columns from the link table), shape (age histogram per
 * domain), show (envelope, headers or body), hold, release, delete, and
 * bounce (return messages to their senders now).  list and shape look at a
 * scope: everything, one customer's mail, or one domain's.  The session and
 * the replies are ctl.c's (ctl_int.h); all printing is format.c's.
 *
 * Trusts: requests that passed ctl_req_check (command, options and argument
 * count); not the words themselves: customers, domains and queue IDs are
 * checked here or by the qmgr before use.
 * Guarantees: every handler answers exactly once (an asynchronous one —
 * show, hold, release, delete, bounce — from its qmgr callback, the session
 * kept meanwhile by ctl.c); a customer scope costs O(that customer's mail);
 * a bounce of several messages stops at the first failure and says so.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/buffer.h>

#include "core/config.h"
#include "core/log.h"
#include "core/util.h"
#include "ctl/ctl.h"
#include "ctl/ctl_format.h"
#include "link/links.h"
#include "queue/qmgr.h"
#include "cmd.h"
#include "ctl_int.h"

/* ---- scopes: which messages list and shape look at ---- */

struct ctl_scope {
    int all;                            /* every message, in arrival order */
    const struct qrcpt_list *lists[2];  /* else: the messages of these recipients */
    int nlists;
    struct ctl_fmt_opts o;
};

typedef void scope_fn(const struct qmsg *m, const struct ctl_fmt_opts *o, void *arg);


/* Customer names, domains, queue IDs: nothing else is a target. */
static int ctl_target_ok(const char *s)
{
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("._-", *s))
            return 0;
    return 1;
}

/* The customer owning domain d, or NULL (a scan of the customers' domain
 * lists: O(customers), no mail is looked at). */
static struct qcust *ctl_cust_by_domain(const char *d)
{
    size_t pos = 0;
    struct qcust *qc;
    while ((qc = qmgr_cust_next(&pos)))
        if (qc->cfg)
            for (size_t i = 0; i < qc->cfg->ndomains; i++)
                if (strcasecmp(qc->cfg->domains[i], d) == 0)
                    return qc;
    return NULL;
}

/* Resolves CUSTOMER|DOMAIN (or NULL: everything).  0, or replies and -1. */
static int scope_resolve(struct ctl_sess *s, const char *arg, struct ctl_scope *sc)
{
    memset(sc, 0, sizeof *sc);
    sc->o.held = qmgr_rcpt_held;
    if (!arg) {
        sc->all = 1;
        return 0;
    }
    if (!ctl_target_ok(arg) || qmgr_id_form(arg)) {
        ctl_reply_fail(s, 2, "%s: not a customer or domain", arg);
        return -1;
    }
    if (strchr(arg, '.')) {
        struct qcust *qc = ctl_cust_by_domain(arg);
        sc->o.domain = arg;
        if (qc) {
            sc->o.cust = qc;
            sc->lists[sc->nlists++] = &qc->rcpts;
        } else {
            sc->lists[sc->nlists++] = qmgr_orphans();
            sc->lists[sc->nlists++] = qmgr_outbound();
        }
        return 0;
    }
    char *name = util_lower(xstrdup(arg));
    struct qcust *qc = qmgr_cust_by_name(name);
    free(name);
    if (!qc) {
        ctl_reply_fail(s, 1, "%s: no such customer", arg);
        return -1;
    }
    sc->o.cust = qc;
    sc->lists[sc->nlists++] = &qc->rcpts;
    return 0;
}

/* Calls fn once per message in scope (customer scopes: O(that customer's mail)). */
static void scope_each(const struct ctl_scope *sc, scope_fn *fn, void *arg)
{
    if (sc->all) {
        size_t pos = 0;
        const struct qmsg *m;
        while ((m = qmgr_msg_next(&pos)))
            fn(m, &sc->o, arg);
        return;
    }
    struct hmap *seen = hmap_new(0);
    for (int i = 0; i < sc->nlists; i++) {
        const struct qrcpt *r;
        TAILQ_FOREACH(r, sc->lists[i], link) {
            if (!ctl_fmt_rcpt_selected(r, &sc->o) || hmap_get(seen, r->msg->idstr))
                continue;
            hmap_put(seen, r->msg->idstr, r->msg);
            fn(r->msg, &sc->o, arg);
        }
    }
    hmap_free(seen);
}

/* ---- commands ---- */

struct list_ctx {
    struct evbuffer *out;
    struct ctl_list_state st;
    int json;
};

static void list_one(const struct qmsg *m, const struct ctl_fmt_opts *o, void *arg)
{
    struct list_ctx *lc = arg;
    if (lc->json)
        ctl_fmt_list_json(lc->out, m, o);
    else
        ctl_fmt_list_msg(lc->out, &lc->st, m, o);
}

void ctl_cmd_list(struct ctl_sess *s, const struct ctl_req *rq)
{
    struct ctl_scope sc;
    if (scope_resolve(s, rq->argc ? rq->argv[0] : NULL, &sc) < 0)
        return;
    struct list_ctx lc = { .out = evbuffer_new(), .json = (rq->opts & CTL_OPT_JSON) != 0 };
    scope_each(&sc, list_one, &lc);
    if (!lc.json)
        ctl_fmt_list_end(lc.out, &lc.st);
    ctl_reply_ok(s, lc.out);
    evbuffer_free(lc.out);
}

static void shape_one(const struct qmsg *m, const struct ctl_fmt_opts *o, void *arg)
{
    ctl_shape_add_msg(arg, m, o);
}

void ctl_cmd_shape(struct ctl_sess *s, const struct ctl_req *rq)
{
    struct ctl_scope sc;
    if (scope_resolve(s, rq->argc ? rq->argv[0] : NULL, &sc) < 0)
        return;
    struct ctl_shape *sh = ctl_shape_new((int64_t)time(NULL));
    struct evbuffer *b = evbuffer_new();
    scope_each(&sc, shape_one, sh);
    ctl_fmt_shape(b, sh);
    ctl_shape_free(sh);
    ctl_reply_ok(s, b);
    evbuffer_free(b);
}

/* The link columns of a customer's summary line, from the link table. */
static void ctl_link_of(const struct qcust *qc, struct ctl_link *l)
{
    const struct link *lk = links_get(qc->name);
    memset(l, 0, sizeof *l);
    l->state = lk && lk->up ? "up" : "down";
    if (!lk)
        return;
    l->address = lk->address[0] ? lk->address : NULL;
    l->since = lk->since;
    l->expires = lk->up ? lk->expires : 0;
    l->source = lk->source != LINK_SRC_NONE ? links_source_name(lk->source) : NULL;
}

static int qcust_name_cmp(const void *a, const void *b)
{
    const struct qcust *x = *(const struct qcust *const *)a;
    const struct qcust *y = *(const struct qcust *const *)b;
    return strcmp(x->name, y->name);
}

void ctl_cmd_summary(struct ctl_sess *s, const struct ctl_req *rq)
{
    size_t n = 0, cap = 16, pos = 0;
    struct qcust **v = xcalloc(cap, sizeof *v), *qc;
    while ((qc = qmgr_cust_next(&pos))) {
        if (n == cap)
            v = xrealloc(v, (cap *= 2) * sizeof *v);
        v[n++] = qc;
    }
    qsort(v, n, sizeof *v, qcust_name_cmp);
    struct ctl_sum_row *rows = xcalloc(n + 2, sizeof *rows);
    for (size_t i = 0; i < n; i++) {
        struct ctl_sum_row *r = &rows[i];
        r->name = v[i]->name;
        if (v[i]->cfg) {
            r->ndomains = v[i]->cfg->ndomains;
            r->domains = (const char *const *)v[i]->cfg->domains;
        }
        r->messages = v[i]->nmsg;
        r->bytes = v[i]->bytes;
        r->oldest = qmgr_cust_oldest(v[i]);
        r->held = v[i]->held;
        ctl_link_of(v[i], &r->link);
    }
    size_t k = n;
    if (!TAILQ_EMPTY(qmgr_outbound()))
        ctl_sum_from_list(&rows[k++], "(outbound)", qmgr_outbound(), 0);
    if (!TAILQ_EMPTY(qmgr_orphans()))
        ctl_sum_from_list(&rows[k++], "(orphan)", qmgr_orphans(), 1);
    struct evbuffer *b = evbuffer_new();
    ctl_fmt_summary(b, rows, k, (int64_t)time(NULL), (rq->opts & CTL_OPT_JSON) != 0);
    for (size_t i = n; i < k; i++)
        ctl_sum_row_clear(&rows[i]);
    free(rows);
    free(v);
    ctl_reply_ok(s, b);
    evbuffer_free(b);
}

/* Parses a QUEUEID argument; replies and returns NULL when it is no use. */
static struct qmsg *ctl_msg_arg(struct ctl_sess *s, const char *arg)
{
    uint64_t id;
    struct qmsg *m = NULL;
    if (!qmgr_id_form(arg)) {
        ctl_reply_fail(s, 2, "%s: not a queue ID", arg);
        return NULL;
    }
    if (qmgr_id_parse(arg, &id) == 0)
        m = qmgr_msg_by_id(id);
    if (!m)
        ctl_reply_fail(s, 1, "%s: no such message", arg);
    return m;
}

static void show_done(int err, void *arg)
{
    struct ctl_sess *s = arg;
    if (err) {
        ctl_reply_fail(s, 1, "%s: cannot read message: %s", s->target, strerror(err));
        return;
    }
    struct evbuffer *b = evbuffer_new();
    ctl_fmt_show_message(b, s->env, s->body, (s->opts & CTL_OPT_BODY) != 0);
    ctl_reply_ok(s, b);
    evbuffer_free(b);
}

void ctl_cmd_show(struct ctl_sess *s, const struct ctl_req *rq)
{
    struct qmsg *m = ctl_msg_arg(s, rq->argv[0]);
    if (!m)
        return;
    struct ctl_fmt_opts o = { .held = qmgr_rcpt_held };
    s->opts = rq->opts;
    s->target = xstrdup(m->idstr);
    s->env = evbuffer_new();
    s->body = evbuffer_new();
    ctl_fmt_show(s->env, m, &o);
    qmgr_read_body(m, s->body, show_done, s);
}

/* Completion of hold, release, delete. */
static void op_done(int err, void *arg)
{
    struct ctl_sess *s = arg;
    if (err) {
        ctl_reply_fail(s, 1, "%s %s: %s", s->done_word, s->target, strerror(err));
        return;
    }
    struct evbuffer *b = evbuffer_new();
    ctl_fmt_done(b, s->done_word, s->target);
    ctl_reply_ok(s, b);
    evbuffer_free(b);
}

static void cmd_hold_release(struct ctl_sess *s, const struct ctl_req *rq, int hold)
{
    char err[256] = "";
    const char *t = rq->argv[0];
    if (!ctl_target_ok(t)) {
        ctl_reply_fail(s, 2, "%s: not a customer, domain or queue ID", t);
        return;
    }
    s->target = qmgr_id_form(t) ? xstrdup(t) : util_lower(xstrdup(t));
    s->done_word = hold ? "held" : "released";
    log_info("control: uid=%ld %s %s", s->uid, hold ? "hold" : "release", s->target);
    int rc = hold ? qmgr_hold(s->target, op_done, s, err, sizeof err)
                  : qmgr_release(s->target, op_done, s, err, sizeof err);
    if (rc < 0)
        ctl_reply_fail(s, 1, "%s", err[0] ? err : "failed");
}

void ctl_cmd_hold(struct ctl_sess *s, const struct ctl_req *rq)
{
    cmd_hold_release(s, rq, 1);
}

void ctl_cmd_release(struct ctl_sess *s, const struct ctl_req *rq)
{
    cmd_hold_release(s, rq, 0);
}

static int u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

void ctl_cmd_delete(struct ctl_sess *s, const struct ctl_req *rq)
{
    char err[256] = "";
    uint64_t *ids = xcalloc((size_t)rq->argc, sizeof *ids);
    size_t n = 0;
    for (int i = 0; i < rq->argc; i++) {
        const char *a = rq->argv[i];
        if (!qmgr_id_form(a)) {
            ctl_reply_fail(s, 2, "%s: not a queue ID", a);
            free(ids);
            return;
        }
        if (qmgr_id_parse(a, &ids[n]) < 0) {
            ctl_reply_fail(s, 1, "%s: no such message", a);
            free(ids);
            return;
        }
        n++;
    }
    qsort(ids, n, sizeof *ids, u64_cmp);
    size_t u = 0;
    for (size_t i = 0; i < n; i++)
        if (u == 0 || ids[i] != ids[u - 1])
            ids[u++] = ids[i];
    char what[64];
    snprintf(what, sizeof what, "%zu message%s", u, u == 1 ? "" : "s");
    s->target = xstrdup(what);
    s->done_word = "deleted";
    log_info("control: uid=%ld delete %zu message%s", s->uid, u, u == 1 ? "" : "s");
    if (qmgr_delete(u, ids, op_done, s, err, sizeof err) < 0)
        ctl_reply_fail(s, 1, "%s", err[0] ? err : "failed");
    free(ids);
}


/* bounce QUEUEID...: the messages are bounced one after another. */
struct bounce_run {
    struct ctl_sess *s;
    uint64_t *ids;
    size_t n, next, done;
};

static void bounce_step(int err, void *arg)
{
    struct bounce_run *br = arg;
    char why[256] = "";
    if (err) {
        ctl_reply_fail(br->s, 1, "bounce: %s", strerror(err));
        free(br->ids);
        free(br);
        return;
    }
    if (br->next > 0)
        br->done++;
    while (br->next < br->n) {
        uint64_t id = br->ids[br->next++];
        if (qmgr_bounce(id, bounce_step, br, why, sizeof why) == 0)
            return;
        ctl_reply_fail(br->s, 1, "%s", why);
        free(br->ids);
        free(br);
        return;
    }
    struct evbuffer *b = evbuffer_new();
    ctl_fmt_bounced(b, br->done);
    ctl_reply_ok(br->s, b);
    evbuffer_free(b);
    free(br->ids);
    free(br);
}

void ctl_cmd_bounce(struct ctl_sess *s, const struct ctl_req *rq)
{
    struct bounce_run *br = xcalloc(1, sizeof *br);
    br->s = s;
    br->ids = xcalloc((size_t)rq->argc, sizeof *br->ids);
    for (int i = 0; i < rq->argc; i++) {
        struct qmsg *m = ctl_msg_arg(s, rq->argv[i]);
        if (!m) {
            free(br->ids);
            free(br);
            return;
        }
        br->ids[br->n++] = m->id;
    }
    log_info("control: uid=%ld bounce %zu message%s", s->uid, br->n, br->n == 1 ? "" : "s");
    bounce_step(0, br);
}

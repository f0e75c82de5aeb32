/*
 * transport_maildir — local delivery: the transport of local domains
 * (DELIVER_LOCAL: address maildrops) and of deliver = "maildrop" customers
 * (their domain maildrop, one copy per envelope recipient).  A session
 * needs no network: open() always succeeds and is ready at once; send()
 * resolves each recipient's maildrop on the loop (registry, maildir_root,
 * the prefix of local_prefix.c) and hands the message to a small pool of
 * worker threads, which for each recipient check the Delivered-To loop
 * (5.4.6, bounced), the maildrop's quota (4.2.2, deferred: never bounced
 * for quota), make the maildir and deliver into it (maildir_deliver: tmp,
 * fsync, link into new/, fsync new/), then count it (maildir_usage_add).
 * The results come back to the loop (event_active on one event for all
 * finished jobs) and done() is called there.  The same pool reads the
 * maildrops' usage at start and after a reload (maildrops not read yet),
 * in batches, before the deliveries queued after them.
 *
 * Trusts the queue's recipients and sender (RFC 5321 wire form; checked
 * again for control bytes before they go into a header line) and the
 * registry; reads only the header section of a message for the loop check.
 * Guarantees: a 2xx result only after maildir_deliver() returned 0 (the
 * message durable in new/); nothing on the loop blocks on the disk; the
 * work queued is bounded by the sessions (one message each) and the scan
 * batches.  abort() with a message in a worker takes the body over and
 * reports the results known so far (the others: not attempted); the one
 * recipient being written at that moment may be delivered anyway, so a
 * stop or a crash can deliver a message twice, never lose it (as Postfix's
 * local(8)).
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "core/config.h"
#include "core/log.h"
#include "core/registry.h"
#include "core/util.h"
#include "maildir/maildir.h"
#include "queue/qmgr_deliver.h"
#include "local_prefix.h"
#include "transport.h"

#define MD_THREADS      4           /* worker threads: syncs overlap */
#define MD_SCAN_BATCH   256         /* maildrops per scan job */
#define MD_HEADER_MAX   (1024 * 1024)   /* bytes read for the loop check */
#define MD_DROP_LOCKS   64          /* deliveries to one maildrop: one at a time */
#define MD_RESCAN_SECS  30          /* a full maildrop is read again at most this often */

struct md_rcpt {
    char *addr;                     /* the envelope recipient (wire form) */
    char *drop;                     /* its maildrop's name; NULL: result preset */
    char *dir;
    char prefix[LOCAL_PREFIX_MAX];
    int plen;
    uint64_t quota;                 /* 0 = none */
    int code;                       /* the result (set by the worker, under mu);
                                     * 0: none yet */
    char *text;
    int reported;                   /* told to the owner at abort */
};

struct md_scan {                    /* one start-up or reload scan, in batches */
    unsigned left;                  /* batches not finished */
    size_t n;
    double t0;
    int quiet;                      /* a rescan: no log line */
};

enum md_kind { MD_DELIVER, MD_SCAN };

struct md_rescan {                  /* a maildrop found full at RCPT */
    char *drop;
    double at;                      /* its last rescan (util_now_mono) */
};

struct md_job {
    struct md_job *next;
    enum md_kind kind;
    struct transport_session *s;    /* NULL once detached (abort) */
    struct transport_msg *msg;      /* the session's; not touched once detached */
    int detached;
    int done;                       /* results final */
    char idstr[32];
    char *host;
    struct evbuffer *body;          /* msg's (borrowed), or taken over on abort */
    size_t n;
    struct md_rcpt *r;
    /* MD_SCAN */
    char *root;
    char **names;
    size_t nnames;
    struct md_scan *scan;
};

struct transport_session {
    struct transport_cbs cbs;
    void *arg;
    struct event *ev;               /* ready at open, closed after quit */
    char *cust;                     /* the customer's (or local domain's) name */
    enum deliver_kind kind;
    struct md_job *job;             /* the message in flight */
    int quitting;
};

static struct {
    struct event_base *base;
    struct event *done_ev;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    pthread_t threads[MD_THREADS];
    unsigned nthreads;
    int stop;
    struct md_job *todo, *todo_tail;    /* under mu */
    struct md_job *done, *done_tail;    /* under mu */
    struct hmap *scanned;           /* maildrop names read or queued (loop);
                                     * keys owned (the values) */
    struct hmap *rescans;           /* drop -> struct md_rescan (loop) */
    char *root;                     /* maildir_root of those */
    /* the quota check, the delivery and the count of one maildrop happen
     * under the lock of its stripe, so that two workers never both see room
     * for one message */
    pthread_mutex_t drop_mu[MD_DROP_LOCKS];
} MD = { .mu = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

static pthread_mutex_t *drop_lock(const char *drop)
{
    uint32_t h = 2166136261u;               /* FNV-1a of the lower-cased name */
    for (const char *p = drop; *p; p++)
        h = (h ^ (uint32_t)(unsigned char)(*p | (*p >= 'A' && *p <= 'Z' ? 0x20 : 0))) *
            16777619u;
    return &MD.drop_mu[h % MD_DROP_LOCKS];
}

static void job_free(struct md_job *j)
{
    for (size_t i = 0; i < j->n; i++) {
        free(j->r[i].addr);
        free(j->r[i].drop);
        free(j->r[i].dir);
        free(j->r[i].text);
    }
    free(j->r);
    free(j->host);
    if (j->detached && j->body)
        evbuffer_free(j->body);         /* taken over at abort */
    for (size_t i = 0; i < j->nnames; i++)
        free(j->names[i]);
    free(j->names);
    free(j->root);
    free(j);
}

static void queue_push(struct md_job **head, struct md_job **tail, struct md_job *j)
{
    j->next = NULL;
    if (*tail)
        (*tail)->next = j;
    else
        *head = j;
    *tail = j;
}

static void job_submit(struct md_job *j)
{
    pthread_mutex_lock(&MD.mu);
    queue_push(&MD.todo, &MD.todo_tail, j);
    pthread_cond_signal(&MD.cond);
    pthread_mutex_unlock(&MD.mu);
}

/* ---- the workers ---- */

/* Sets recipient i's result (under mu: abort reads the results). */
static void set_result(struct md_job *j, size_t i, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void set_result(struct md_job *j, size_t i, int code, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    char *text = xstrdup(buf);
    pthread_mutex_lock(&MD.mu);
    free(j->r[i].text);
    j->r[i].code = code;
    j->r[i].text = text;
    pthread_mutex_unlock(&MD.mu);
}

static int job_detached(struct md_job *j)
{
    pthread_mutex_lock(&MD.mu);
    int d = j->detached;
    pthread_mutex_unlock(&MD.mu);
    return d;
}

/* Would vsize more bytes take r's maildrop over its quota?  Before saying
 * yes the maildrop is listed again (names only): another program may have
 * removed files. */
static int over_quota(const struct md_rcpt *r, uint64_t vsize)
{
    struct maildir_usage u;
    struct maildir_list l;
    char why[256];
    maildir_usage_get(r->drop, &u);
    if (u.bytes + vsize <= r->quota)
        return 0;
    if (maildir_scan(r->dir, &l, why, sizeof why) < 0)
        return 1;
    maildir_usage_set(r->drop, &l);
    maildir_list_free(&l);
    maildir_usage_get(r->drop, &u);
    return u.bytes + vsize > r->quota;
}

/* One recipient: loop check, quota, maildir, delivery, usage. */
static void deliver_one(struct md_job *j, size_t i, const char *hdr, size_t hlen)
{
    struct md_rcpt *r = &j->r[i];
    char why[512], name[256];
    int temporary = 0;
    uint64_t vsize = (uint64_t)r->plen + evbuffer_get_length(j->body);
    if (local_loop_found(hdr, hlen, r->addr)) {
        set_result(j, i, 554, "554 5.4.6 mail forwarding loop for <%s>", r->addr);
        return;
    }
    if (r->quota && over_quota(r, vsize)) {
        set_result(j, i, 452, "452 4.2.2 maildrop over quota");
        return;
    }
    if (maildir_create(r->dir, why, sizeof why) < 0) {
        set_result(j, i, 451, "451 4.3.0 cannot make the maildir: %s", why);
        return;
    }
    if (maildir_deliver(r->dir, j->host, r->prefix, (size_t)r->plen, j->body, name,
                        sizeof name, &temporary, why, sizeof why) < 0) {
        if (temporary)
            set_result(j, i, 451, "451 4.3.0 maildir delivery failed: %s", why);
        else
            set_result(j, i, 554, "554 5.3.0 maildir delivery failed: %s", why);
        return;
    }
    const char *w = strstr(name, ",W=");       /* the exact POP3 size */
    if (w)
        vsize = strtoull(w + 3, NULL, 10);
    maildir_usage_add(r->drop, (int64_t)vsize, 1, time(NULL));
    set_result(j, i, 250, "delivered to maildir");
}

static void job_deliver(struct md_job *j)
{
    size_t len = evbuffer_get_length(j->body);
    size_t take = len < MD_HEADER_MAX ? len : MD_HEADER_MAX;
    char *hdr = xmalloc(take ? take : 1);
    evbuffer_copyout(j->body, hdr, take);
    size_t hlen = local_header_len(hdr, take);
    for (size_t i = 0; i < j->n && !job_detached(j); i++)
        if (j->r[i].drop) {
            pthread_mutex_t *mu = drop_lock(j->r[i].drop);
            pthread_mutex_lock(mu);
            deliver_one(j, i, hdr, hlen);
            pthread_mutex_unlock(mu);
        }
    free(hdr);
}

static void job_scan(struct md_job *j)
{
    char why[512];
    if (maildir_usage_scan(j->root, (const char *const *)j->names, j->nnames,
                           why, sizeof why) < 0)
        log_warn("maildrops: cannot read the usage of %zu maildrops under %s: %s",
                 j->nnames, j->root, why);
}

static void *worker_main(void *arg)
{
    pthread_setname_np(pthread_self(), "km-local");
    pthread_mutex_lock(&MD.mu);
    for (;;) {
        struct md_job *j;
        while (!MD.todo && !MD.stop)
            pthread_cond_wait(&MD.cond, &MD.mu);
        if (MD.stop || !(j = MD.todo))
            break;
        if (!(MD.todo = j->next))
            MD.todo_tail = NULL;
        pthread_mutex_unlock(&MD.mu);
        if (j->kind == MD_SCAN)
            job_scan(j);
        else if (!job_detached(j))
            job_deliver(j);
        pthread_mutex_lock(&MD.mu);
        j->done = 1;
        int wake = !MD.done;
        queue_push(&MD.done, &MD.done_tail, j);
        if (wake)
            event_active(MD.done_ev, EV_READ, 0);
    }
    pthread_mutex_unlock(&MD.mu);
    return NULL;
}

/* ---- back on the loop ---- */

static void sess_free(struct transport_session *s)
{
    event_free(s->ev);
    free(s->cust);
    free(s);
}

/* A detached job finished: what it delivered after the abort is logged (the
 * queue deferred those recipients: they may be delivered again). */
static void detached_done(struct md_job *j)
{
    for (size_t i = 0; i < j->n; i++)
        if (!j->r[i].reported && j->r[i].code >= 200 && j->r[i].code < 300)
            log_warn("%s: to=<%s>, relay=local, status=sent (delivered to maildir "
                     "after the delivery was interrupted; it may be delivered again)",
                     j->idstr, j->r[i].addr);
}

static void scan_done(struct md_job *j)
{
    struct md_scan *sc = j->scan;
    if (--sc->left)
        return;
    if (!sc->quiet)
        log_info("maildrops: usage of %zu maildrops read in %.3f s", sc->n,
                 util_now_mono() - sc->t0);
    free(sc);
}

/* A job of s finished: its results to the owner, then the next message or
 * the end of the session. */
static void job_report(struct transport_session *s, struct md_job *j)
{
    struct transport_msg *msg = j->msg;
    s->job = NULL;
    for (size_t i = 0; i < j->n; i++) {
        msg->results[i].code = j->r[i].code;
        msg->results[i].text = j->r[i].text;        /* taken over */
        j->r[i].text = NULL;
    }
    job_free(j);
    s->cbs.done(msg, "local", s->arg);
    if (s->quitting) {
        s->cbs.closed(0, NULL, s->arg);
        sess_free(s);
    } else {
        s->cbs.ready(s->arg);
    }
}

static void on_jobs_done(evutil_socket_t fd, short what, void *arg)
{
    pthread_mutex_lock(&MD.mu);
    struct md_job *j = MD.done;
    MD.done = MD.done_tail = NULL;
    pthread_mutex_unlock(&MD.mu);
    while (j) {
        struct md_job *next = j->next;
        if (j->kind == MD_SCAN) {
            scan_done(j);
            job_free(j);
        } else if (j->detached) {
            detached_done(j);
            job_free(j);
        } else {
            job_report(j->s, j);
        }
        j = next;
    }
}

/* ---- the transport ---- */

static int local_dest(const struct customer *c, const struct deliver_link *link,
                      struct transport_dest *dst, char *err, size_t errlen)
{
    snprintf(dst->host, sizeof dst->host, "local");
    dst->port = 0;
    return 0;
}

/* The session's event: ready once opened; closed once quit with nothing in
 * flight. */
static void sess_step(evutil_socket_t fd, short what, void *arg)
{
    struct transport_session *s = arg;
    if (s->job)
        return;
    if (s->quitting) {
        s->cbs.closed(0, NULL, s->arg);
        sess_free(s);
        return;
    }
    s->cbs.ready(s->arg);
}

static struct transport_session *local_open(const struct transport_target *t,
                                            const struct transport_cbs *cbs, void *arg)
{
    struct transport_session *s = xcalloc(1, sizeof *s);
    s->cbs = *cbs;
    s->arg = arg;
    s->cust = xstrdup(t->cust->name);
    s->kind = t->cust->deliver;
    s->ev = event_new(MD.base, -1, 0, sess_step, s);
    event_active(s->ev, EV_READ, 0);
    return s;
}

/* Recipient i's maildrop, directory and prefix (or its result, when there
 * is no maildrop to deliver to). */
static void rcpt_prepare(struct transport_session *s, struct md_job *j, size_t i,
                         const char *sender)
{
    const struct config *cfg = qmgr_config();
    struct md_rcpt *r = &j->r[i];
    struct maildrop_ref md;
    char dir[4096];
    int domain = s->kind == DELIVER_MAILDROP;
    if (registry_maildrop(qmgr_registry(), domain ? s->cust : r->addr, &md) < 0) {
        r->code = domain ? 451 : 550;
        r->text = xstrdup(domain ? "451 4.3.0 the customer has no maildrop now"
                          : "550 5.1.1 no such maildrop");
        return;
    }
    if (maildir_path(cfg->maildir_root, md.name, dir, sizeof dir) < 0) {
        r->code = 451;
        r->text = xstrdup("451 4.3.5 the maildrop has no usable path under maildir_root");
        return;
    }
    r->plen = local_prefix_build(sender, r->addr, domain, r->prefix, sizeof r->prefix);
    if (r->plen < 0) {
        r->code = 554;
        r->text = xstrdup("554 5.1.3 the address cannot go into a header line");
        return;
    }
    r->drop = xstrdup(md.name);
    r->dir = xstrdup(dir);
    r->quota = md.quota;
    r->code = 0;
    r->text = xstrdup("not attempted");
}

static void local_send(struct transport_session *s, struct transport_msg *msg)
{
    struct md_job *j = xcalloc(1, sizeof *j);
    j->kind = MD_DELIVER;
    j->s = s;
    j->msg = msg;
    snprintf(j->idstr, sizeof j->idstr, "%s", msg->idstr);
    j->host = xstrdup(qmgr_config()->hostname);
    j->body = msg->body;
    j->n = msg->nrcpt;
    j->r = xcalloc(j->n ? j->n : 1, sizeof *j->r);
    for (size_t i = 0; i < j->n; i++) {
        j->r[i].addr = xstrdup(msg->rcpts[i]);
        rcpt_prepare(s, j, i, msg->sender);
    }
    s->job = j;
    job_submit(j);
}

static void local_quit(struct transport_session *s)
{
    s->quitting = 1;
    if (!s->job)
        event_active(s->ev, EV_READ, 0);
}

static void local_abort(struct transport_session *s, const char *why)
{
    struct md_job *j = s->job;
    if (j) {
        struct transport_msg *msg = j->msg;
        pthread_mutex_lock(&MD.mu);
        if (j->done)
            j->body = NULL;         /* on the done list: the body stays the owner's */
        else
            msg->body = NULL;       /* a worker may be reading it: the job's now */
        j->detached = 1;            /* freed when it reaches the loop, unreported */
        j->s = NULL;
        for (size_t i = 0; i < j->n; i++) {
            struct md_rcpt *r = &j->r[i];
            r->reported = r->code != 0;
            msg->results[i].code = r->code;
            msg->results[i].text = xstrdup(r->code && r->text ? r->text : why);
        }
        pthread_mutex_unlock(&MD.mu);
        s->job = NULL;
        s->cbs.done(msg, "local", s->arg);
    }
    s->cbs.closed(0, NULL, s->arg);
    sess_free(s);
}

const struct transport transport_maildir = {
    .name = "maildir", .local = 1, .dest = local_dest, .open = local_open,
    .send = local_send, .quit = local_quit, .abort = local_abort,
};

/* ---- set-up, scans ---- */

int transport_maildir_init(struct event_base *base, char *err, size_t errlen)
{
    MD.base = base;
    MD.stop = 0;
    for (int i = 0; i < MD_DROP_LOCKS; i++)
        pthread_mutex_init(&MD.drop_mu[i], NULL);
    MD.done_ev = event_new(base, -1, 0, on_jobs_done, NULL);
    MD.scanned = hmap_new(1);
    MD.rescans = hmap_new(1);
    for (MD.nthreads = 0; MD.nthreads < MD_THREADS; MD.nthreads++)
        if (pthread_create(&MD.threads[MD.nthreads], NULL, worker_main, NULL) != 0)
            return util_fail(err, errlen, "cannot start the local delivery threads");
    return 0;
}

void transport_maildir_rescan(const char *drop)
{
    const struct config *cfg = qmgr_config();
    struct md_rescan *rs;
    double now = util_now_mono();
    if (!MD.rescans || !MD.root || !drop)
        return;
    rs = hmap_get(MD.rescans, drop);
    if (rs && now - rs->at < MD_RESCAN_SECS)
        return;
    if (!rs) {
        rs = xcalloc(1, sizeof *rs);
        rs->drop = xstrdup(drop);
        hmap_put(MD.rescans, rs->drop, rs);
    }
    rs->at = now;
    struct md_scan *sc = xcalloc(1, sizeof *sc);
    struct md_job *j = xcalloc(1, sizeof *j);
    sc->t0 = now;
    sc->n = 1;
    sc->left = 1;
    sc->quiet = 1;
    j->kind = MD_SCAN;
    j->root = xstrdup(cfg && cfg->maildir_root ? cfg->maildir_root : MD.root);
    j->names = xcalloc(1, sizeof *j->names);
    j->names[j->nnames++] = xstrdup(drop);
    j->scan = sc;
    job_submit(j);
}

static void rescans_free(void)
{
    size_t pos = 0;
    void *v;
    while (hmap_next(MD.rescans, &pos, NULL, &v)) {
        free(((struct md_rescan *)v)->drop);
        free(v);
    }
    hmap_free(MD.rescans);
    MD.rescans = NULL;
}

static void scanned_clear(void)
{
    size_t pos = 0;
    void *v;
    while (hmap_next(MD.scanned, &pos, NULL, &v))
        free(v);
    hmap_free(MD.scanned);
    MD.scanned = hmap_new(1);
}

/* Queues the usage scan of the maildrops of the registry not read yet (all
 * of them when maildir_root changed). */
void transport_maildir_configure(void)
{
    const struct config *cfg = qmgr_config();
    const struct registry *reg = qmgr_registry();
    if (!MD.scanned || !cfg || !reg)
        return;
    if (!MD.root || strcmp(MD.root, cfg->maildir_root) != 0) {
        scanned_clear();
        free(MD.root);
        MD.root = xstrdup(cfg->maildir_root);
        maildir_usage_clear();
    }
    struct md_scan *sc = xcalloc(1, sizeof *sc);
    struct md_job *j = NULL;
    sc->t0 = util_now_mono();
    for (size_t i = 0; i < registry_maildrop_count(reg); i++) {
        struct maildrop_ref md;
        registry_maildrop_at(reg, i, &md);
        if (hmap_get(MD.scanned, md.name))
            continue;
        if (!j) {
            j = xcalloc(1, sizeof *j);
            j->kind = MD_SCAN;
            j->root = xstrdup(MD.root);
            j->names = xcalloc(MD_SCAN_BATCH, sizeof *j->names);
            j->scan = sc;
        }
        char *key = xstrdup(md.name);
        hmap_put(MD.scanned, key, key);
        j->names[j->nnames++] = xstrdup(md.name);
        sc->n++;
        if (j->nnames == MD_SCAN_BATCH) {
            sc->left++;
            job_submit(j);
            j = NULL;
        }
    }
    if (j) {
        sc->left++;
        job_submit(j);
    }
    if (!sc->left)
        free(sc);
}

void transport_maildir_shutdown(void)
{
    pthread_mutex_lock(&MD.mu);
    MD.stop = 1;
    pthread_cond_broadcast(&MD.cond);
    pthread_mutex_unlock(&MD.mu);
    for (unsigned i = 0; i < MD.nthreads; i++)
        pthread_join(MD.threads[i], NULL);
    MD.nthreads = 0;
    struct md_job *lists[2] = { MD.todo, MD.done };
    for (int l = 0; l < 2; l++)
        for (struct md_job *j = lists[l], *next; j; j = next) {
            next = j->next;
            if (j->kind == MD_SCAN && --j->scan->left == 0)
                free(j->scan);
            job_free(j);
        }
    MD.todo = MD.todo_tail = MD.done = MD.done_tail = NULL;
    if (MD.done_ev)
        event_free(MD.done_ev);
    MD.done_ev = NULL;
    if (MD.scanned)
        scanned_clear();
    if (MD.rescans)
        rescans_free();
    hmap_free(MD.scanned);
    MD.scanned = NULL;
    free(MD.root);
    MD.root = NULL;
}

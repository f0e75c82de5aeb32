/*
 * transport_maildir — local delivery: the transport of local domains
 * (DELIVER_LOCAL: address maildrops) and of deliver = "maildrop" customers
 * (their domain maildrop, one copy per envelope recipient).  A session
 * needs no network: open() always succeeds and is ready at once; send()
 * resolves each recipient's maildrop on the loop (registry, maildir_root,
 * the prefix of local_prefix.c) and hands the message to a small pool of
 * worker threads.  A worker takes every message queued (up to
 * MD_BATCH_JOBS, MD_BATCH_FILES files) as one batch: for each recipient it
 * checks the Delivered-To loop (5.4.6, bounced) and the maildrop's quota
 * (4.2.2, deferred: never bounced for quota; the bytes are reserved until
 * the file is counted, so that two batches never both fill the last room)
 * and makes the maildir, then writes all the batch's files under one round
 * of syncs (maildir_deliver_batch: tmp, sync, link into new/, sync), then
 * counts each (maildir_usage_add).
 * The results come back to the loop (event_active on one event for all
 * finished jobs) and done() is called there.  The same pool reads the
 * maildrops' usage at start and after a reload (maildrops not read yet),
 * in batches, before the deliveries queued after them.
 *
 * Trusts the queue's recipients and sender (RFC 5321 wire form; checked
 * again for control bytes before they go into a header line) and the
 * registry; reads only the header section of a message for the loop check.
 * Guarantees: a 2xx result only after maildir_deliver_batch() said the
 * file is durable in new/; one file's failure fails only its recipient;
 * nothing on the loop blocks on the disk; the work queued is bounded by the
 * sessions (one message each) and the scan batches.  abort() with a message
 * in a worker takes the body over and reports the results known so far
 * (the others: not attempted); its files not yet linked into new/ are
 * dropped (maildir_item.cancel), those linked already are delivered
 * anyway, so a stop or a crash can deliver a message twice, never lose it
 * (as Postfix's local(8)).
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
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

#define MD_THREADS      4           /* worker threads: batches overlap */
#define MD_BATCH_JOBS   64          /* messages one worker takes at once */
#define MD_BATCH_FILES  MAILDIR_BATCH_MAX   /* and their files (one round of syncs) */
#define MD_SCAN_BATCH   256         /* maildrops per scan job */
#define MD_HEADER_MAX   (1024 * 1024)   /* bytes read for the loop check */
#define MD_DROP_LOCKS   64          /* quota checks of one maildrop: one at a time */
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

struct md_resv {                    /* bytes reserved in a maildrop with a quota */
    char *drop;
    uint64_t bytes;
};

struct md_job {
    struct md_job *next;
    enum md_kind kind;
    struct transport_session *s;    /* NULL once detached (abort) */
    struct transport_msg *msg;      /* the session's; not touched once detached */
    atomic_int detached;            /* aborted: its files not linked yet are
                                     * dropped (maildir_item.cancel) */
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
    /* a maildrop with a quota: the check and the reservation of the bytes
     * of a delivery, and the count that ends it, happen under the lock of
     * its stripe, so that two deliveries never both see room for one
     * message; resv[]: drop -> struct md_resv, under the same lock */
    pthread_mutex_t drop_mu[MD_DROP_LOCKS];
    struct hmap *resv[MD_DROP_LOCKS];
} MD = { .mu = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

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

/* Stripe of maildrop drop: its lock and its reservations. */
static unsigned drop_stripe(const char *drop)
{
    uint32_t h = 2166136261u;               /* FNV-1a of the lower-cased name */
    for (const char *p = drop; *p; p++)
        h = (h ^ (uint32_t)(unsigned char)(*p | (*p >= 'A' && *p <= 'Z' ? 0x20 : 0))) *
            16777619u;
    return h % MD_DROP_LOCKS;
}

/* Bytes reserved for drop by deliveries under way (stripe lock held);
 * delta added (a reservation) or taken off (its end). */
static uint64_t resv_add(unsigned st, const char *drop, int64_t delta)
{
    struct md_resv *v = hmap_get(MD.resv[st], drop);
    if (!v) {
        if (delta <= 0)
            return 0;
        v = xcalloc(1, sizeof *v);
        v->drop = xstrdup(drop);
        hmap_put(MD.resv[st], v->drop, v);
    }
    v->bytes = delta < 0 && (uint64_t)-delta > v->bytes ? 0 : v->bytes + (uint64_t)delta;
    uint64_t left = v->bytes;
    if (!left) {
        hmap_del(MD.resv[st], v->drop);
        free(v->drop);
        free(v);
    }
    return left;
}

/* Would vsize more bytes take r's maildrop over its quota?  If not, they
 * are reserved (quota_end gives them back).  Before saying yes, a maildrop
 * with no delivery under way is listed again (names only): another program
 * may have removed files.  (With one under way the listing could count its
 * file before it is counted: the recipient is deferred instead, and the
 * retry lists the maildrop.) */
static int quota_take(const struct md_rcpt *r, uint64_t vsize)
{
    unsigned st = drop_stripe(r->drop);
    struct maildir_usage u;
    struct maildir_list l;
    char why[256];
    int over;
    pthread_mutex_lock(&MD.drop_mu[st]);
    uint64_t held = resv_add(st, r->drop, 0);
    maildir_usage_get(r->drop, &u);
    over = u.bytes + held + vsize > r->quota;
    if (over && !held && maildir_scan(r->dir, &l, why, sizeof why) == 0) {
        maildir_usage_set(r->drop, &l);
        maildir_list_free(&l);
        maildir_usage_get(r->drop, &u);
        over = u.bytes + vsize > r->quota;
    }
    if (!over)
        resv_add(st, r->drop, (int64_t)vsize);
    pthread_mutex_unlock(&MD.drop_mu[st]);
    return over;
}

/* A delivery under r's quota is over: its reservation ends and what it
 * stored (done: vsize bytes) is counted, at once. */
static void quota_end(const struct md_rcpt *r, uint64_t reserved, int done, uint64_t vsize)
{
    unsigned st = drop_stripe(r->drop);
    pthread_mutex_lock(&MD.drop_mu[st]);
    resv_add(st, r->drop, -(int64_t)reserved);
    if (done)
        maildir_usage_add(r->drop, (int64_t)vsize, 1, time(NULL));
    pthread_mutex_unlock(&MD.drop_mu[st]);
}

/* One recipient of a batch: its job, index, and the bytes reserved. */
struct md_slot {
    struct md_job *j;
    size_t i;
    uint64_t reserved;
};

/* Maildirs made (or found) already: a direct-mapped set of path hashes, so
 * that a delivery does not repeat maildir_create()'s eight mkdir and stat
 * calls for every message.  A stale or colliding entry costs nothing
 * worse than a skipped check: maildir_deliver_batch() still makes a
 * maildir (or its new/) that has gone since. */
#define MD_KNOWN_DIRS 4096
static _Atomic uint64_t known_dirs[MD_KNOWN_DIRS];

static uint64_t dir_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h ? h : 1;
}

/* 1 when dir was made or found before; else 0, and it counts as known
 * from now on only once maildir_create() has succeeded (dir_made). */
static int dir_known(const char *dir)
{
    uint64_t h = dir_hash(dir);
    return atomic_load_explicit(&known_dirs[h % MD_KNOWN_DIRS], memory_order_relaxed) == h;
}

static void dir_made(const char *dir)
{
    uint64_t h = dir_hash(dir);
    atomic_store_explicit(&known_dirs[h % MD_KNOWN_DIRS], h, memory_order_relaxed);
}

/* Recipient i of j before the batch: loop check, quota, maildir.  1 when
 * it goes into the batch (*it set), 0 when its result is set already. */
static int rcpt_begin(struct md_job *j, size_t i, const char *hdr, size_t hlen,
                      struct maildir_item *it, struct md_slot *slot)
{
    struct md_rcpt *r = &j->r[i];
    char why[512];
    uint64_t vsize = (uint64_t)r->plen + evbuffer_get_length(j->body);
    if (local_loop_found(hdr, hlen, r->addr)) {
        set_result(j, i, 554, "554 5.4.6 mail forwarding loop for <%s>", r->addr);
        return 0;
    }
    if (r->quota && quota_take(r, vsize)) {
        set_result(j, i, 452, "452 4.2.2 maildrop over quota");
        return 0;
    }
    if (!dir_known(r->dir) && maildir_create(r->dir, why, sizeof why) < 0) {
        if (r->quota)
            quota_end(r, vsize, 0, 0);
        set_result(j, i, 451, "451 4.3.0 cannot make the maildir: %s", why);
        return 0;
    }
    dir_made(r->dir);
    it->dir = r->dir;
    it->prefix = r->prefix;
    it->prefixlen = (size_t)r->plen;
    it->body = j->body;
    it->cancel = &j->detached;
    slot->j = j;
    slot->i = i;
    slot->reserved = r->quota ? vsize : 0;
    return 1;
}

/* Recipient of slot after the batch: its result, its maildrop's count. */
static void rcpt_end(const struct maildir_item *it, const struct md_slot *slot)
{
    struct md_job *j = slot->j;
    struct md_rcpt *r = &j->r[slot->i];
    uint64_t vsize = slot->reserved;
    const char *w = it->ok ? strstr(it->name, ",W=") : NULL;  /* the exact POP3 size */
    if (w)
        vsize = strtoull(w + 3, NULL, 10);
    if (r->quota)
        quota_end(r, slot->reserved, it->ok, vsize);
    else if (it->ok)
        maildir_usage_add(r->drop, (int64_t)vsize, 1, time(NULL));
    if (it->ok)
        set_result(j, slot->i, 250, "delivered to maildir");
    else if (it->temporary)
        set_result(j, slot->i, 451, "451 4.3.0 maildir delivery failed: %s", it->why);
    else
        set_result(j, slot->i, 554, "554 5.3.0 maildir delivery failed: %s", it->why);
}

/* The messages of a batch (jobs j[0..n)), every recipient's file under one
 * round of syncs (maildir_deliver_batch).  A job detached (aborted) before
 * is left out. */
static void jobs_deliver(struct md_job **jobs, size_t n)
{
    size_t total = 0, k = 0;
    for (size_t b = 0; b < n; b++)
        total += jobs[b]->n;
    struct maildir_item *items = xcalloc(total ? total : 1, sizeof *items);
    struct md_slot *slots = xcalloc(total ? total : 1, sizeof *slots);
    for (size_t b = 0; b < n; b++) {
        struct md_job *j = jobs[b];
        if (job_detached(j))
            continue;
        size_t len = evbuffer_get_length(j->body);
        size_t take = len < MD_HEADER_MAX ? len : MD_HEADER_MAX;
        char *hdr = xmalloc(take ? take : 1);
        evbuffer_copyout(j->body, hdr, take);
        size_t hlen = local_header_len(hdr, take);
        for (size_t i = 0; i < j->n; i++)
            if (j->r[i].drop && rcpt_begin(j, i, hdr, hlen, &items[k], &slots[k]))
                k++;
        free(hdr);
    }
    if (k)
        maildir_deliver_batch(items, k, jobs[0]->host);
    for (size_t i = 0; i < k; i++)
        rcpt_end(&items[i], &slots[i]);
    free(items);
    free(slots);
}

static void job_scan(struct md_job *j)
{
    char why[512];
    if (maildir_usage_scan(j->root, (const char *const *)j->names, j->nnames,
                           why, sizeof why) < 0)
        log_warn("maildrops: cannot read the usage of %zu maildrops under %s: %s",
                 j->nnames, j->root, why);
}

/* Takes the next job and, for a delivery, the deliveries queued after it
 * (up to MD_BATCH_JOBS messages and MD_BATCH_FILES files; a scan ends the
 * batch) into jobs (mu held).  How many. */
static size_t jobs_take(struct md_job **jobs)
{
    size_t n = 0, files = 0;
    while (MD.todo && n < MD_BATCH_JOBS) {
        struct md_job *j = MD.todo;
        if (n && (j->kind != MD_DELIVER || files + j->n > MD_BATCH_FILES))
            break;
        if (!(MD.todo = j->next))
            MD.todo_tail = NULL;
        jobs[n++] = j;
        files += j->n;
        if (j->kind != MD_DELIVER)
            break;
    }
    return n;
}

static void *worker_main(void *arg)
{
    struct md_job *jobs[MD_BATCH_JOBS];
    pthread_setname_np(pthread_self(), "km-local");
    pthread_mutex_lock(&MD.mu);
    for (;;) {
        while (!MD.todo && !MD.stop)
            pthread_cond_wait(&MD.cond, &MD.mu);
        if (MD.stop || !MD.todo)
            break;
        size_t n = jobs_take(jobs);
        pthread_mutex_unlock(&MD.mu);
        if (jobs[0]->kind == MD_SCAN)
            job_scan(jobs[0]);
        else
            jobs_deliver(jobs, n);
        pthread_mutex_lock(&MD.mu);
        int wake = !MD.done;
        for (size_t b = 0; b < n; b++) {
            jobs[b]->done = 1;
            queue_push(&MD.done, &MD.done_tail, jobs[b]);
        }
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
    for (int i = 0; i < MD_DROP_LOCKS; i++) {
        pthread_mutex_init(&MD.drop_mu[i], NULL);
        MD.resv[i] = hmap_new(1);
    }
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

/* Queues the usage scan of the maildrops of the registry not read yet: all
 * of them when maildir_root changed, else those the registry before it
 * lacked (registry_added_at; all at start), the others having been queued
 * when that registry came. */
void transport_maildir_configure(void)
{
    const struct config *cfg = qmgr_config();
    const struct registry *reg = qmgr_registry();
    if (!MD.scanned || !cfg || !reg)
        return;
    int all = 0;
    if (!MD.root || strcmp(MD.root, cfg->maildir_root) != 0) {
        scanned_clear();
        free(MD.root);
        MD.root = xstrdup(cfg->maildir_root);
        maildir_usage_clear();
        all = 1;
    }
    struct md_scan *sc = xcalloc(1, sizeof *sc);
    struct md_job *j = NULL;
    sc->t0 = util_now_mono();
    size_t n = all ? registry_maildrop_count(reg) : registry_added_count(reg);
    for (size_t i = 0; i < n; i++) {
        struct maildrop_ref md;
        if (all)
            registry_maildrop_at(reg, i, &md);
        else
            registry_added_at(reg, i, &md);
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
    for (int i = 0; i < MD_DROP_LOCKS; i++) {
        size_t pos = 0;
        void *v;
        while (MD.resv[i] && hmap_next(MD.resv[i], &pos, NULL, &v)) {
            free(((struct md_resv *)v)->drop);
            free(v);
        }
        hmap_free(MD.resv[i]);
        MD.resv[i] = NULL;
    }
    free(MD.root);
    MD.root = NULL;
}

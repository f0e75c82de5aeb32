/*
 * links — the link table of links.h: per customer, up or down, at which
 * address, since when, until when, set by which detector.  Every change goes
 * through one queue: links_set(), the expiry timers and links_prune() queue
 * an operation; when no write is in flight, all queued operations are
 * applied in memory in order (a batch), the batch's changed links are
 * appended to the journal state/links.journal (one fdatasync), and only
 * when that write completed are the callers' callbacks told.  When the
 * journal has grown past LINKS_COMPACT_RATIO times the snapshot (or cannot
 * be trusted: none of the snapshot's generation, a torn tail at load, a
 * failed write) the batch is written instead as a compaction: the whole
 * table as a new snapshot state/links (atomic replace), then a fresh
 * journal of the new generation; links_stop() writes a last snapshot.  A
 * failed write undoes the batch (in reverse order) except for expiries,
 * which hold anyway (see below).  So the files always hold every change
 * reported done, and a batch never waits for more than one write.  The
 * formats, and how a snapshot and its journal are read back, are in
 * links_file.h / links_file.c.
 *
 * Trusts: nothing it is given.  Names are checked against the customer name
 * rule, addresses parsed as numeric IPv4/IPv6 and stored normalised; the
 * files are parsed by links_file.c, which checks every line and record.
 * Guarantees: at most one up link per address (a link going up at an address
 * another customer holds takes that one down first); an up link with an
 * expiry is brought down by a timer (wall clock) or, when the daemon was
 * stopped meanwhile, at load, with since = the expiry time and source
 * "expiry" in both cases: the files need not record an expiry for it to hold.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "core/config.h"
#include "core/log.h"
#include "core/stats.h"
#include "core/util.h"
#include "link/links.h"
#include "links_file.h"
#include "spool/spool_state.h"

#define LINKS_TTL_MAX   (3650L * 86400)     /* ten years */
/* A compaction once the journal is larger than both: */
#define LINKS_COMPACT_MIN   (256 * 1024)    /* bytes */
#define LINKS_COMPACT_RATIO 4               /* times the snapshot */

struct lent {
    struct link l;              /* l.customer owned; the key of by_name */
    struct event *timer;        /* expiry timer, created when first needed */
    char *line;                 /* l's line of the file, NULL until needed
                                 * again after a change (links_serialise) */
    size_t linelen;
};

enum lop_kind { LOP_SET, LOP_EXPIRE, LOP_PRUNE };

/* One change of one entry, for undo and for telling fn. */
struct lchg {
    char *customer;             /* owned */
    int had, has;               /* the entry existed before / after */
    struct link before, after;  /* .customer unused */
    int expiry;                 /* an expiry: kept when the write fails */
    char *note;                 /* why, for the log ("address A taken by B"), or NULL */
};

struct lop {
    struct lop *next;
    enum lop_kind kind;
    char *customer;             /* SET, EXPIRE */
    int up;
    char address[64];
    long ttl;
    enum link_source src;
    char session[64];
    int if_session;             /* SET down: only while the link has this session */
    int (*exists)(const char *customer);    /* PRUNE */
    links_cb *cb;
    void *arg;
    struct lchg *chg;           /* filled when applied */
    size_t nchg, chgcap;
};

struct lbatch {
    struct lbatch *next;        /* in the orphan list */
    struct lop *ops;            /* applied, in order */
    struct lop **tail;          /* where the next op goes (NULL: &ops) */
    int orphan;                 /* links_shutdown() came before the write ended */
    uint64_t gen;               /* written by a compaction: its generation */
    size_t snap_bytes;          /* ... and the snapshot's size */
};

static struct {
    int on;
    struct event_base *base;
    struct spool *sp;
    links_change_fn *fn;
    void *fnarg;
    struct hmap *by_name;       /* customer → lent */
    struct hmap *by_addr;       /* address → lent, up links only */
    struct lent **sorted;       /* by name, rebuilt when stale */
    size_t nsorted;
    int sorted_ok;
    struct lop *qhead, *qtail;  /* waiting for the next batch */
    struct lbatch *writing;     /* the batch being written */
    struct lbatch *pending;     /* applied while it was written: the next write */
    int notifying;              /* inside the callbacks of a finished batch */
    int stopping;               /* links_stop(): no more writes */
    uint64_t gen;               /* the generation of state/links */
    uint64_t gen_max;           /* the highest one seen or taken */
    int journal_ok;             /* state/links.journal is gen's and whole: append */
    size_t journal_bytes;       /* its length, as far as known */
    size_t journal_base;        /* ... with no record (its header only) */
    size_t snap_bytes;          /* the length of state/links */
} L;

static int (*links_exists)(const char *customer);
static struct lbatch *links_orphans;    /* written after links_shutdown() */

static const char *const source_names[] = {
    [LINK_SRC_NONE] = "", [LINK_SRC_KICKQ] = "kickq", [LINK_SRC_RADIUS] = "radius",
    [LINK_SRC_NETLINK] = "netlink", [LINK_SRC_ODMR] = "odmr",
    [LINK_SRC_AUTOTURN] = "autoturn", [LINK_SRC_EXPIRY] = "expiry",
};
#define NSOURCES (sizeof source_names / sizeof source_names[0])

static void links_pump(void);
static void links_written(int err, void *arg);
static void links_journal_made(int err, void *arg);

const char *links_source_name(enum link_source s)
{
    return (unsigned)s < NSOURCES ? source_names[s] : "";
}

void links_restrict(int (*exists)(const char *customer))
{
    links_exists = exists;
}

/* ---- small helpers ---- */

/* Has an expiry at epoch second exp passed?  (1 ms early counts: the timer
 * runs on the monotonic clock.) */
static int expiry_passed(int64_t exp)
{
    return util_now_us() + 1000 >= exp * 1000000;
}

/* ---- the table: every change of an entry passes through ent_put() ---- */

/* In the address index: up links with an address. */
static int link_indexed(const struct link *l)
{
    return l->up && l->address[0];
}

static void links_expire_cb(evutil_socket_t fd, short what, void *arg);

static void ent_arm(struct lent *e)
{
    if (e->l.up && e->l.expires > 0) {
        int64_t d = e->l.expires * 1000000 - util_now_us();
        struct timeval tv;
        if (d < 0)
            d = 0;
        tv.tv_sec = (time_t)(d / 1000000);
        tv.tv_usec = (suseconds_t)(d % 1000000);
        if (!e->timer && !(e->timer = evtimer_new(L.base, links_expire_cb, e)))
            log_fatal("links: out of memory");
        evtimer_add(e->timer, &tv);
    } else if (e->timer) {
        evtimer_del(e->timer);
    }
}

/* Sets customer's entry to *v (creating it), or removes it (v NULL); keeps
 * the address index and the timer right. */
static void ent_put(const char *customer, const struct link *v)
{
    struct lent *e = hmap_get(L.by_name, customer);
    if (e && link_indexed(&e->l) && hmap_del(L.by_addr, e->l.address) != e)
        log_fatal("links: address index broken for %s", customer);
    if (!v) {
        if (e) {
            hmap_del(L.by_name, customer);
            if (e->timer)
                event_free(e->timer);
            free(e->l.customer);
            free(e->line);
            free(e);
            L.sorted_ok = 0;
        }
        return;
    }
    if (!e) {
        e = xcalloc(1, sizeof *e);
        e->l.customer = xstrdup(customer);
        hmap_put(L.by_name, e->l.customer, e);
        L.sorted_ok = 0;
    }
    char *name = e->l.customer;
    e->l = *v;
    e->l.customer = name;
    free(e->line);
    e->line = NULL;
    if (link_indexed(&e->l) && hmap_put(L.by_addr, e->l.address, e) != NULL)
        log_fatal("links: address %s held twice", e->l.address);
    ent_arm(e);
}

static int ent_cmp(const void *a, const void *b)
{
    const struct lent *x = *(struct lent *const *)a, *y = *(struct lent *const *)b;
    return strcmp(x->l.customer, y->l.customer);
}

static void links_sort(void)
{
    size_t pos = 0, n = 0;
    void *v;
    if (L.sorted_ok)
        return;
    free(L.sorted);
    L.sorted = xcalloc(hmap_count(L.by_name) + 1, sizeof *L.sorted);
    while (hmap_next(L.by_name, &pos, NULL, &v))
        L.sorted[n++] = v;
    qsort(L.sorted, n, sizeof *L.sorted, ent_cmp);
    L.nsorted = n;
    L.sorted_ok = 1;
}

const struct link *links_get(const char *customer)
{
    struct lent *e = L.on && customer ? hmap_get(L.by_name, customer) : NULL;
    return e ? &e->l : NULL;
}

const struct link *links_next(size_t *pos)
{
    if (!L.on)
        return NULL;
    links_sort();
    return *pos < L.nsorted ? &L.sorted[(*pos)++]->l : NULL;
}

/* ---- operations: applied when their batch starts ---- */

/* Records the change of customer's entry to *v (NULL: removal) in op and
 * makes it. */
static void op_change(struct lop *op, const char *customer, const struct link *v,
                      int expiry, char *note)
{
    struct lent *e = hmap_get(L.by_name, customer);
    struct lchg *c;
    if (op->nchg == op->chgcap) {
        op->chgcap = op->chgcap ? op->chgcap * 2 : 2;
        op->chg = xrealloc(op->chg, op->chgcap * sizeof *op->chg);
    }
    c = &op->chg[op->nchg++];
    memset(c, 0, sizeof *c);
    c->customer = xstrdup(customer);
    c->had = e != NULL;
    if (e)
        c->before = e->l;
    c->has = v != NULL;
    if (v)
        c->after = *v;
    c->before.customer = c->after.customer = NULL;
    c->expiry = expiry;
    c->note = note;
    ent_put(c->customer, v);
}

/* session NULL: kept. */
static void link_set_down(struct link *v, int64_t since, enum link_source src,
                          const char *session)
{
    v->up = 0;
    v->since = since;
    v->expires = 0;
    v->source = src;
    if (session)
        snprintf(v->session, sizeof v->session, "%s", session);
}

static void op_apply_up(struct lop *op, int64_t now_us)
{
    struct lent *e = hmap_get(L.by_name, op->customer);
    struct lent *holder = op->address[0] ? hmap_get(L.by_addr, op->address) : NULL;
    struct link v;
    int64_t now = now_us / 1000000;

    if (holder && holder != e) {
        size_t n = strlen(op->address) + strlen(op->customer) + 32;
        char *note = xmalloc(n);
        snprintf(note, n, "address %s taken by %s", op->address, op->customer);
        v = holder->l;
        link_set_down(&v, now, op->src, op->session);
        op_change(op, holder->l.customer, &v, 0, note);
    }
    if (e)
        v = e->l;
    else
        memset(&v, 0, sizeof v);
    if (!e || !e->l.up || strcmp(e->l.address, op->address) != 0)
        v.since = now;
    v.up = 1;
    snprintf(v.address, sizeof v.address, "%s", op->address);
    v.expires = op->ttl ? (now_us + op->ttl * 1000000 + 999999) / 1000000 : 0;
    v.source = op->src;
    snprintf(v.session, sizeof v.session, "%s", op->session);
    op_change(op, op->customer, &v, 0, NULL);
}

static void op_apply_prune(struct lop *op)
{
    size_t pos = 0, n = 0;
    char **gone = xcalloc(hmap_count(L.by_name) + 1, sizeof *gone);
    const char *key;
    while (hmap_next(L.by_name, &pos, &key, NULL))
        if (!op->exists(key))
            gone[n++] = xstrdup(key);
    for (size_t i = 0; i < n; i++) {
        op_change(op, gone[i], NULL, 0, NULL);
        free(gone[i]);
    }
    free(gone);
}

static void op_apply(struct lop *op)
{
    int64_t now_us = util_now_us();
    struct lent *e = op->customer ? hmap_get(L.by_name, op->customer) : NULL;
    struct link v;

    switch (op->kind) {
    case LOP_SET:
        if (op->up) {
            op_apply_up(op, now_us);
        } else if (e && e->l.up && (!op->if_session || !strcmp(e->l.session, op->session))) {
            v = e->l;
            link_set_down(&v, now_us / 1000000, op->src, op->session);
            op_change(op, op->customer, &v, 0, NULL);
        }
        break;
    case LOP_EXPIRE:
        /* Refreshed, downed or pruned since the timer fired: nothing to do. */
        if (e && e->l.up && e->l.expires > 0 && expiry_passed(e->l.expires)) {
            v = e->l;
            link_set_down(&v, e->l.expires, LINK_SRC_EXPIRY, "");
            op_change(op, op->customer, &v, 1, xstrdup("expired"));
        }
        break;
    case LOP_PRUNE:
        op_apply_prune(op);
        break;
    }
}

static void op_free(struct lop *op)
{
    for (size_t i = 0; i < op->nchg; i++) {
        free(op->chg[i].customer);
        free(op->chg[i].note);
    }
    free(op->chg);
    free(op->customer);
    free(op);
}

static void op_queue(struct lop *op)
{
    if (L.qtail)
        L.qtail->next = op;
    else
        L.qhead = op;
    L.qtail = op;
}

/* ---- the files (their format: links_file.h) ---- */

/* Its snapshot line, made once per change of the link: a compaction after
 * changes of a few links among many formats a few lines and copies the
 * others. */
static void ent_line(struct lent *e)
{
    e->line = links_line_new(e->l.customer, &e->l, &e->linelen);
}

/* The whole table as a snapshot of generation gen. */
static struct evbuffer *links_serialise(uint64_t gen)
{
    char hdr[64];
    struct evbuffer *out = evbuffer_new();
    if (!out)
        log_fatal("links: out of memory");
    links_sort();
    evbuffer_add(out, hdr, links_snapshot_header(gen, hdr, sizeof hdr));
    for (size_t i = 0; i < L.nsorted; i++) {
        struct lent *e = L.sorted[i];
        if (!e->line)
            ent_line(e);
        evbuffer_add(out, e->line, e->linelen);
    }
    return out;
}

/* The journal records of a batch: the state after each change, in order. */
static struct evbuffer *batch_records(const struct lbatch *b)
{
    struct evbuffer *out = evbuffer_new();
    if (!out)
        log_fatal("links: out of memory");
    for (const struct lop *op = b->ops; op; op = op->next)
        for (size_t i = 0; i < op->nchg; i++) {
            const struct lchg *c = &op->chg[i];
            links_record_add(out, L.gen, c->customer, c->has ? &c->after : NULL);
        }
    return out;
}

/* Adds one loaded link: expired → down; an address up twice → both down. */
static void load_link(const char *customer, struct link *v)
{
    struct lent *holder;
    if (v->up && v->expires && expiry_passed(v->expires)) {
        log_info("links: link down for %s: expired at %" PRId64 " while stopped",
                 customer, v->expires);
        link_set_down(v, v->expires, LINK_SRC_EXPIRY, "");
    }
    if (link_indexed(v) && (holder = hmap_get(L.by_addr, v->address)) != NULL) {
        struct link h = holder->l;
        log_warn("links: %s and %s both up at %s in state/links: both taken down",
                 holder->l.customer, customer, v->address);
        link_set_down(&h, h.since, h.source, NULL);
        ent_put(holder->l.customer, &h);
        link_set_down(v, v->since, v->source, NULL);
    }
    ent_put(customer, v);
}

/* ---- batches: apply, write, tell ---- */

static void batch_free(struct lbatch *b)
{
    struct lop *op, *next;
    for (op = b->ops; op; op = next) {
        next = op->next;
        op_free(op);
    }
    free(b);
}

/* The ops of a batch in reverse order (last first), NULL-terminated; free()
 * it.  *n gets their count. */
static struct lop **batch_ops_reversed(const struct lbatch *b, size_t *n)
{
    size_t nops = 0;
    struct lop *op, **ops;
    for (op = b->ops; op; op = op->next)
        nops++;
    ops = xcalloc(nops + 1, sizeof *ops);
    *n = nops;
    for (op = b->ops; op; op = op->next)
        ops[--nops] = op;
    return ops;
}

/* Reverses every change of the batch but expiries, last first. */
static void batch_undo(struct lbatch *b)
{
    size_t n;
    struct lop **ops = batch_ops_reversed(b, &n);
    for (size_t k = 0; k < n; k++)
        for (size_t i = ops[k]->nchg; i-- > 0;) {
            struct lchg *c = &ops[k]->chg[i];
            if (!c->expiry)
                ent_put(c->customer, c->had ? &c->before : NULL);
        }
    free(ops);
}

static void chg_log(const struct lchg *c)
{
    const struct link *a = &c->after;
    char sess[LINKS_SESSION_ESC_LEN];
    links_session_escape(a->session, sess, sizeof sess);
    if (!c->has)
        log_info("links: link of %s forgotten: no such customer", c->customer);
    else if (a->up)
        log_info("links: link up for %s at %s, source=%s, session=%s, expires=%" PRId64,
                 c->customer, a->address[0] ? a->address : "(no address)",
                 links_source_name(a->source), sess,
                 a->expires);
    else if (c->note)
        log_info("links: link down for %s: %s", c->customer, c->note);
    else
        log_info("links: link down for %s, source=%s, session=%s", c->customer,
                 links_source_name(a->source), sess);
}

/* Link events by source, for `kickq stats`. */
static void chg_count(const struct lchg *c)
{
    static const enum stat_id ids[] = {
        [LINK_SRC_KICKQ] = ST_LINK_KICKQ, [LINK_SRC_RADIUS] = ST_LINK_RADIUS,
        [LINK_SRC_NETLINK] = ST_LINK_NETLINK, [LINK_SRC_ODMR] = ST_LINK_ODMR,
        [LINK_SRC_AUTOTURN] = ST_LINK_AUTOTURN, [LINK_SRC_EXPIRY] = ST_LINK_EXPIRY,
    };
    enum link_source src = c->after.source;
    if (c->has && src > LINK_SRC_NONE && src <= LINK_SRC_EXPIRY)
        stats_add(ids[src], 1);
}

/* Tells fn of a change: first of all (delivery starts at once). */
static void chg_tell(struct lchg *c)
{
    if (c->has && L.fn) {
        struct link snap = c->after;
        snap.customer = c->customer;
        L.fn(&snap, c->had && c->before.up, L.fnarg);
    }
}

/* Tells fn that a change was undone (its write failed): the link is back to
 * what it was before. */
static void chg_tell_undo(struct lchg *c)
{
    if (!L.fn || !c->has)
        return;
    struct link snap;
    if (c->had) {
        snap = c->before;
    } else {
        memset(&snap, 0, sizeof snap);
        snap.source = LINK_SRC_NONE;
    }
    snap.customer = c->customer;
    L.fn(&snap, c->after.up, L.fnarg);
}

/* Tells fn that the changes of b were undone, last first. */
static void batch_tell_undo(struct lbatch *b)
{
    size_t n;
    struct lop **ops = batch_ops_reversed(b, &n);
    for (size_t k = 0; k < n && L.on; k++)
        for (size_t i = ops[k]->nchg; i-- > 0 && L.on;)
            if (!ops[k]->chg[i].expiry)
                chg_tell_undo(&ops[k]->chg[i]);
    free(ops);
}

static void batch_callbacks(struct lbatch *b, int err)
{
    for (struct lop *op = b->ops; op && L.on; op = op->next)
        if (op->cb)
            op->cb(err, op->arg);
}

/* The next write is a compaction: when appends cannot be trusted (no
 * journal of this snapshot's generation, or a write failed), or the journal
 * has grown past LINKS_COMPACT_RATIO times the snapshot. */
static int links_compaction_due(void)
{
    return !L.journal_ok ||
           (L.journal_bytes > LINKS_COMPACT_MIN &&
            L.journal_bytes / LINKS_COMPACT_RATIO > L.snap_bytes);
}

/* Compaction, second step: the snapshot of b->gen holds the table (or its
 * write failed); a fresh journal of that generation follows. */
static void links_snapshot_written(int err, void *arg)
{
    struct lbatch *b = arg;
    char hdr[64];
    if (b->orphan || err) {
        if (!b->orphan)
            L.journal_ok = 0;       /* the snapshot may be the new one: no appends */
        links_written(err, b);
        return;
    }
    L.gen = b->gen;
    L.snap_bytes = b->snap_bytes;
    L.journal_ok = 0;
    if (L.stopping) {
        links_written(0, b);
        return;
    }
    L.journal_bytes = L.journal_base = links_journal_header(b->gen, hdr, sizeof hdr);
    spool_state_write(L.sp, LINKS_JOURNAL, hdr, L.journal_bytes, links_journal_made, b);
}

/* Compaction, last step: the batch was durable with the snapshot already;
 * appends may follow if the fresh journal was written. */
static void links_journal_made(int err, void *arg)
{
    struct lbatch *b = arg;
    if (!b->orphan)
        L.journal_ok = err == 0;
    links_written(0, b);
}

/* Writes the whole table as a new snapshot, then a fresh journal; cb(err,
 * arg) once both are done (or the snapshot failed).  The generation is
 * taken at once, so that a later compaction never reuses it. */
static void links_write_snapshot(struct lbatch *b)
{
    b->gen = ++L.gen_max;
    struct evbuffer *buf = links_serialise(b->gen);
    b->snap_bytes = evbuffer_get_length(buf);
    spool_state_write(L.sp, LINKS_FILE, evbuffer_pullup(buf, -1), b->snap_bytes,
                      links_snapshot_written, b);
    evbuffer_free(buf);
}

/* Makes b's changes durable: appended to the journal (O(changes)), or with
 * the whole table when a compaction is due. */
static void links_write(struct lbatch *b)
{
    L.writing = b;
    if (links_compaction_due()) {
        links_write_snapshot(b);
        return;
    }
    struct evbuffer *buf = batch_records(b);
    size_t len = evbuffer_get_length(buf);
    L.journal_bytes += len;
    spool_state_append(L.sp, LINKS_JOURNAL, evbuffer_pullup(buf, -1), len,
                       links_written, b);
    evbuffer_free(buf);
}

static void links_written(int err, void *arg)
{
    struct lbatch *b = arg, *p, **pp;
    if (b->orphan) {
        for (pp = &links_orphans; *pp != b; pp = &(*pp)->next)
            ;
        *pp = b->next;
        batch_free(b);
        return;
    }
    L.writing = NULL;
    p = L.pending;
    L.pending = NULL;
    L.notifying = 1;
    if (err) {
        /* everything not yet durable goes back: the changes applied while
         * this write ran (p) first, then this batch's */
        log_err("links: cannot save the link table: %s; its last changes are undone",
                strerror(err));
        L.journal_ok = 0;           /* the journal's end is unknown: compact next */
        if (p)
            batch_undo(p);
        batch_undo(b);
        if (p)
            batch_tell_undo(p);
        batch_tell_undo(b);
        batch_callbacks(b, err);
        if (p)
            batch_callbacks(p, err);
    } else {
        batch_callbacks(b, 0);
    }
    L.notifying = 0;
    batch_free(b);
    if (p && !err && L.on && !L.stopping)
        links_write(p);         /* its changes took effect already */
    else if (p)
        batch_free(p);
    links_pump();
}

/* Applies what is queued at once and tells fn (a link up must start
 * delivery without waiting for a sync, nor for the write of an earlier
 * change), then writes the table: now, or after the write under way (the
 * changes then join the next write).  Losing a change in a crash only loses
 * the link (mail then waits), never mail; a failed write undoes every change
 * not yet written and tells fn again. */
static void links_pump(void)
{
    while (L.on && !L.stopping && !L.notifying && L.qhead) {
        struct lop *first = L.qhead, *op;
        struct lbatch *b = L.writing ? L.pending : NULL;
        L.qtail->next = NULL;
        if (!b)
            b = xcalloc(1, sizeof *b);
        *(b->tail ? b->tail : &b->ops) = first;     /* O(1): a batch may hold thousands */
        b->tail = &L.qtail->next;
        L.qhead = L.qtail = NULL;
        for (op = first; op; op = op->next)
            op_apply(op);
        L.pending = b;
        /* fn first: a link up's connection is under way before the write
         * wakes the aux thread and the log lines wake the log writer (each
         * wake-up may take the CPU from the loop on a busy machine) */
        L.notifying = 1;
        for (op = first; op && L.on; op = op->next)
            for (size_t i = 0; i < op->nchg && L.on; i++)
                chg_tell(&op->chg[i]);
        L.notifying = 0;
        if (!L.on)
            break;
        if (!L.writing) {
            L.pending = NULL;
            links_write(b);
        }
        for (op = first; op; op = op->next)
            for (size_t i = 0; i < op->nchg; i++) {
                chg_log(&op->chg[i]);
                chg_count(&op->chg[i]);
            }
    }
}

static void links_expire_cb(evutil_socket_t fd, short what, void *arg)
{
    struct lent *e = arg;
    struct lop *op;
    if (!e->l.up || !e->l.expires)
        return;
    if (!expiry_passed(e->l.expires)) {     /* the wall clock went back */
        ent_arm(e);
        return;
    }
    op = xcalloc(1, sizeof *op);
    op->kind = LOP_EXPIRE;
    op->customer = xstrdup(e->l.customer);
    op_queue(op);
    links_pump();
}

/* ---- the interface ---- */

/* Checks links_set()'s arguments into a new operation.  NULL + err. */
static struct lop *set_check(const char *customer, int up, const char *address,
                             long ttl, enum link_source src, char *err, size_t errlen)
{
    const char *why;
    struct lop *op;
    char norm[64];
    if ((why = config_check_customer_name(customer)) != NULL) {
        snprintf(err, errlen, "bad customer name: %s", why);
        return NULL;
    }
    if (links_exists && !links_exists(customer)) {
        snprintf(err, errlen, "unknown customer %s", customer);
        return NULL;
    }
    if (src == LINK_SRC_NONE || src == LINK_SRC_EXPIRY || (unsigned)src >= NSOURCES) {
        snprintf(err, errlen, "bad link source %d", (int)src);
        return NULL;
    }
    norm[0] = 0;
    if (up && address && *address && links_addr_norm(address, norm, sizeof norm) < 0) {
        snprintf(err, errlen, "bad address '%.64s': a numeric unicast IPv4 or IPv6 "
                 "address is needed", address);
        return NULL;
    }
    if (up && (ttl < 0 || ttl > LINKS_TTL_MAX)) {
        snprintf(err, errlen, "bad ttl %ld: 0 (none) to %ld seconds", ttl, LINKS_TTL_MAX);
        return NULL;
    }
    op = xcalloc(1, sizeof *op);
    op->kind = LOP_SET;
    op->customer = xstrdup(customer);
    op->up = up ? 1 : 0;
    if (up) {
        memcpy(op->address, norm, sizeof op->address);
        op->ttl = ttl;
    }
    op->src = src;
    return op;
}

int links_set(const char *customer, int up, const char *address, long ttl,
              enum link_source src, const char *session, links_cb *cb, void *arg,
              char *err, size_t errlen)
{
    struct lop *op;
    if (!L.on || L.stopping) {
        snprintf(err, errlen, "the link table is %s", L.on ? "stopping" : "not started");
        return -1;
    }
    if (!(op = set_check(customer, up, address, ttl, src, err, errlen)))
        return -1;
    snprintf(op->session, sizeof op->session, "%s", session ? session : "");
    op->cb = cb;
    op->arg = arg;
    op_queue(op);
    links_pump();
    return 0;
}

int links_down_if(const char *customer, enum link_source src, const char *session,
                  links_cb *cb, void *arg, char *err, size_t errlen)
{
    struct lop *op;
    if (!L.on || L.stopping) {
        snprintf(err, errlen, "the link table is %s", L.on ? "stopping" : "not started");
        return -1;
    }
    if (!session || !*session) {
        snprintf(err, errlen, "a session is required");
        return -1;
    }
    if (!(op = set_check(customer, 0, NULL, 0, src, err, errlen)))
        return -1;
    snprintf(op->session, sizeof op->session, "%s", session);
    op->if_session = 1;
    op->cb = cb;
    op->arg = arg;
    op_queue(op);
    links_pump();
    return 0;
}

void links_prune(int (*exists)(const char *customer))
{
    struct lop *op;
    if (!L.on || L.stopping || !exists)
        return;
    op = xcalloc(1, sizeof *op);
    op->kind = LOP_PRUNE;
    op->exists = exists;
    op_queue(op);
    links_pump();
}

/* Reads state/NAME into a new buffer; NULL + err. */
static struct evbuffer *links_read(struct spool *sp, const char *name, char *err,
                                   size_t errlen)
{
    struct evbuffer *in = evbuffer_new();
    if (!in)
        log_fatal("links: out of memory");
    if (spool_state_read(sp, name, in) < 0) {
        snprintf(err, errlen, "cannot read state/%s: %s", name, strerror(errno));
        evbuffer_free(in);
        return NULL;
    }
    return in;
}

int links_init(struct event_base *base, struct spool *sp, links_change_fn *fn,
               void *arg, char *err, size_t errlen)
{
    struct evbuffer *snap, *journal;
    struct links_image img;
    if (L.on) {
        snprintf(err, errlen, "the link table is already started");
        return -1;
    }
    if (!(snap = links_read(sp, LINKS_FILE, err, errlen)))
        return -1;
    if (!(journal = links_read(sp, LINKS_JOURNAL, err, errlen))) {
        evbuffer_free(snap);
        return -1;
    }
    links_image_parse((const char *)evbuffer_pullup(snap, -1), evbuffer_get_length(snap),
                      (const char *)evbuffer_pullup(journal, -1),
                      evbuffer_get_length(journal), &img);
    evbuffer_free(snap);
    evbuffer_free(journal);
    memset(&L, 0, sizeof L);
    L.base = base;
    L.sp = sp;
    L.fn = fn;
    L.fnarg = arg;
    L.by_name = hmap_new(0);
    L.by_addr = hmap_new(0);
    for (size_t i = 0; i < img.nlinks; i++)
        load_link(img.links[i].customer, &img.links[i]);
    L.gen = img.gen;
    L.gen_max = img.gen_max;
    L.snap_bytes = img.snap_bytes;
    L.journal_ok = img.journal == LINKS_J_OK;
    L.journal_bytes = img.journal_bytes;
    L.journal_base = img.journal_base;
    L.on = 1;
    log_info("links: %zu links loaded (state/%s generation %" PRIu64 ", %zu journal "
             "records)", hmap_count(L.by_name), LINKS_FILE, img.gen, img.records);
    links_image_free(&img);
    return 0;
}

void links_stop(void)
{
    if (!L.on || L.stopping)
        return;
    L.stopping = 1;
    if (L.journal_ok && L.journal_bytes == L.journal_base && !L.writing && !L.qhead)
        return;                 /* state/links holds it all already */
    /* Behind any write in flight on the spool's aux thread: the snapshot
     * holds whatever that write holds.  The journal is left as it is: of
     * an older generation now, it is ignored at the next start (resetting
     * it here could not wait for the snapshot to be durable). */
    struct evbuffer *buf = links_serialise(++L.gen_max);
    spool_state_write(L.sp, LINKS_FILE, evbuffer_pullup(buf, -1), evbuffer_get_length(buf),
                      NULL, NULL);
    evbuffer_free(buf);
    L.journal_ok = 0;
}

void links_shutdown(void)
{
    struct lop *op, *next;
    const char *key;
    size_t pos = 0;
    if (!L.on)
        return;
    for (op = L.qhead; op; op = next) {
        next = op->next;
        op_free(op);
    }
    if (L.writing) {
        L.writing->orphan = 1;
        L.writing->next = links_orphans;
        links_orphans = L.writing;
    }
    if (L.pending)
        batch_free(L.pending);
    while (hmap_next(L.by_name, &pos, &key, NULL))
        ent_put(key, NULL);
    hmap_free(L.by_name);
    hmap_free(L.by_addr);
    free(L.sorted);
    memset(&L, 0, sizeof L);
}

/*
 * ctl — the control socket server.  A Unix stream listener (mode 0660, a
 * stale socket file removed first); per connection one struct io that reads
 * one request line (TAB-separated words, bounded by CTL_MAX_REQUEST bytes,
 * CTL_MAX_WORDS words and CTL_TIMEOUT seconds), looks the command up in the
 * shared table (ctl_req_check) and the handler table below (the link and
 * delivery handlers are in ctl_deliver.c), and answers "0\n"+body,
 * "1 reason\n" or "2 reason\n", then closes once the output is written.
 *
 * Trusts: whoever can open the socket (file permissions decide) — but not
 * the bytes they send: every word is checked before it reaches the qmgr.
 * Guarantees: a session waiting for an asynchronous callback (qmgr: hold,
 * release, delete, show; the daemon: reload) stays allocated until that
 * callback runs, even if the client went away or ctl_stop() ran meanwhile;
 * then it is freed without writing.  Nothing on the loop blocks.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "config.h"
#include "ctl.h"
#include "ctl_format.h"
#include "ctl_int.h"
#include "io.h"
#include "log.h"
#include "qmgr.h"
#include "smtp_server.h"
#include "stats.h"
#include "util.h"

#ifndef KM_VERSION
#define KM_VERSION "unknown"
#endif

#define CTL_MAX_SESSIONS 64

static struct {
    struct event_base *base;
    struct evconnlistener *lev;
    struct event *resume;       /* re-enables accepting after an accept error */
    struct ctl_hooks hooks;
    char *path;
    double started;             /* monotonic time of the first ctl_start */
    unsigned nsess;
} ctl;
static LIST_HEAD(, ctl_sess) ctl_sessions = LIST_HEAD_INITIALIZER(ctl_sessions);

/* ---- sessions and replies ---- */

static void sess_free(struct ctl_sess *s)
{
    LIST_REMOVE(s, entry);
    ctl.nsess--;
    io_free(s->io);
    if (s->env)
        evbuffer_free(s->env);
    if (s->body)
        evbuffer_free(s->body);
    free(s->target);
    free(s);
}

/* The request is taken: stop reading and timing the client. */
static void sess_begin(struct ctl_sess *s)
{
    s->state = CS_WAIT;
    io_pause(s->io);
    io_set_timeout(s->io, 0);
    evbuffer_drain(io_in(s->io), evbuffer_get_length(io_in(s->io)));
}

/* The answer is being written: read again, discarding, so that whatever the
 * client still sends is consumed and closing does not reset the connection
 * (which could cost the client the answer). */
static void sess_begin_write(struct ctl_sess *s)
{
    s->state = CS_WRITE;
    io_resume(s->io);
}

/* "0\n" + body (drained; may be NULL).  Frees s when the client is gone. */
void ctl_reply_ok(struct ctl_sess *s, struct evbuffer *body)
{
    if (!s->io) {
        sess_free(s);
        return;
    }
    sess_begin_write(s);
    io_write(s->io, "0\n", 2);
    if (body)
        evbuffer_add_buffer(io_out(s->io), body);
}

/* "CODE reason\n" (code 1 failure, 2 usage).  Frees s when the client is gone. */
void ctl_reply_fail(struct ctl_sess *s, int code, const char *fmt, ...)
{
    char why[512];
    va_list ap;
    if (!s->io) {
        sess_free(s);
        return;
    }
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    for (char *p = why; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    sess_begin_write(s);
    io_printf(s->io, "%d %s\n", code, why);
}

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

typedef void ctl_handler(struct ctl_sess *s, const struct ctl_req *rq);

static void cmd_status(struct ctl_sess *s, const struct ctl_req *rq)
{
    struct evbuffer *b = evbuffer_new();
    ctl_fmt_status(b, KM_VERSION, (long)getpid(), (int64_t)(util_now_mono() - ctl.started),
                   (unsigned long)qmgr_msg_count(), (rq->opts & CTL_OPT_JSON) != 0);
    ctl_reply_ok(s, b);
    evbuffer_free(b);
}

/* The reload asked for by s has finished (on the loop; s may have lost its
 * client meanwhile: the replies then just free it). */
static void reload_done(int rc, const char *err, void *arg)
{
    struct ctl_sess *s = arg;
    if (rc < 0) {
        ctl_reply_fail(s, 1, "%s", err && err[0] ? err : "reload failed");
        return;
    }
    struct evbuffer *b = evbuffer_new();
    evbuffer_add_printf(b, "reloaded\n");
    ctl_reply_ok(s, b);
    evbuffer_free(b);
}

static void cmd_stats(struct ctl_sess *s, const struct ctl_req *rq)
{
    struct evbuffer *b = evbuffer_new();
    stats_format(b, (rq->opts & CTL_OPT_PROM) != 0, smtp_server_sessions(),
                 (unsigned long)qmgr_msg_count());
    ctl_reply_ok(s, b);
    evbuffer_free(b);
}

static void cmd_reload(struct ctl_sess *s, const struct ctl_req *rq)
{
    if (!ctl.hooks.reload) {
        ctl_reply_fail(s, 1, "reload is not available");
        return;
    }
    log_info("control: uid=%ld reload", s->uid);
    ctl.hooks.reload(reload_done, s);       /* s stays in CS_WAIT until done */
}

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

static void cmd_list(struct ctl_sess *s, const struct ctl_req *rq)
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

static void cmd_shape(struct ctl_sess *s, const struct ctl_req *rq)
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

static int qcust_name_cmp(const void *a, const void *b)
{
    const struct qcust *x = *(const struct qcust *const *)a;
    const struct qcust *y = *(const struct qcust *const *)b;
    return strcmp(x->name, y->name);
}

static void cmd_summary(struct ctl_sess *s, const struct ctl_req *rq)
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
struct qmsg *ctl_msg_arg(struct ctl_sess *s, const char *arg)
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
    evbuffer_add_buffer(b, s->env);
    evbuffer_add(b, "\n", 1);
    if (s->opts & CTL_OPT_BODY)
        evbuffer_add_buffer(b, s->body);
    else
        ctl_fmt_headers(b, s->body);
    ctl_reply_ok(s, b);
    evbuffer_free(b);
}

static void cmd_show(struct ctl_sess *s, const struct ctl_req *rq)
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
    evbuffer_add_printf(b, "%s %s\n", s->done_word, s->target);
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

static void cmd_hold(struct ctl_sess *s, const struct ctl_req *rq)
{
    cmd_hold_release(s, rq, 1);
}

static void cmd_release(struct ctl_sess *s, const struct ctl_req *rq)
{
    cmd_hold_release(s, rq, 0);
}

static int u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void cmd_delete(struct ctl_sess *s, const struct ctl_req *rq)
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

static const struct {
    const char *name;
    ctl_handler *fn;
} ctl_handlers[] = {
    { "bounce",  ctl_cmd_bounce },
    { "kick",    ctl_cmd_kick },
    { "link",    ctl_cmd_link },
    { "links",   ctl_cmd_links },
    { "stats",   cmd_stats },
    { "status",  cmd_status },
    { "reload",  cmd_reload },
    { "list",    cmd_list },
    { "summary", cmd_summary },
    { "shape",   cmd_shape },
    { "show",    cmd_show },
    { "hold",    cmd_hold },
    { "release", cmd_release },
    { "delete",  cmd_delete },
};

/* ---- reading the request ---- */

/* Parses line (ctl_req_parse), runs the handler. */
static void sess_request(struct ctl_sess *s, char *line, size_t len)
{
    char why[256];
    struct ctl_req rq;
    char **words = xcalloc(CTL_MAX_WORDS, sizeof *words);
    if (ctl_req_parse(line, len, words, &rq, why, sizeof why) < 0) {
        ctl_reply_fail(s, 2, "%s", why);
        free(words);
        return;
    }
    log_debug("control: uid=%ld %s", s->uid, rq.cmd->name);
    for (size_t i = 0; i < sizeof ctl_handlers / sizeof ctl_handlers[0]; i++) {
        if (strcmp(ctl_handlers[i].name, rq.cmd->name) == 0) {
            ctl_handlers[i].fn(s, &rq);     /* s may be gone after this */
            free(words);
            return;
        }
    }
    free(words);
    ctl_reply_fail(s, 2, "%s: not implemented", rq.cmd->name);
}

static void sess_read(struct ctl_sess *s, int at_eof)
{
    struct evbuffer *in = io_in(s->io);
    size_t eol_len = 0, len;
    struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);
    if (p.pos < 0) {
        len = evbuffer_get_length(in);
        if (len < CTL_MAX_REQUEST && !at_eof)
            return;                     /* wait for more */
        if (len == 0) {                 /* closed without a word */
            sess_free(s);
            return;
        }
    } else {
        len = (size_t)p.pos;
    }
    if (len >= CTL_MAX_REQUEST) {
        sess_begin(s);
        ctl_reply_fail(s, 2, "request longer than %d bytes", CTL_MAX_REQUEST);
        return;
    }
    char *line = xmalloc(len + 1);
    evbuffer_remove(in, line, len);
    line[len] = 0;
    sess_begin(s);
    sess_request(s, line, len);
    free(line);
}

/* A client sends its request right after connecting, so by the time the
 * connection is accepted the request is usually there already: take it now
 * instead of a loop turn later (an epoll_wait, FIONREAD and readv, and
 * when the loop had gone to sleep, a wake-up).  The one place ctl reads the
 * socket itself, before the io has read anything: a peek, and only when a
 * whole request line is there are the bytes taken (what follows the line is
 * dropped, as sess_begin does).  Anything else (part of a line, nothing,
 * EOF, an error) stays for the io to read and report as usual.  s may be
 * freed on return. */
static void sess_read_now(struct ctl_sess *s, int fd)
{
    char buf[16384];            /* as much as one read of the io would take */
    ssize_t n = recv(fd, buf, CTL_MAX_REQUEST, MSG_PEEK | MSG_DONTWAIT);
    char *nl = n > 0 ? memchr(buf, '\n', (size_t)n) : NULL;
    if (!nl)
        return;
    if (recv(fd, buf, sizeof buf, MSG_DONTWAIT) < n) {
        log_warn("control: cannot read a request: %s", strerror(errno));
        sess_free(s);
        return;
    }
    *nl = 0;
    sess_begin(s);
    sess_request(s, buf, (size_t)(nl - buf));
}

static void sess_io(struct io *io, enum io_event ev, void *arg)
{
    struct ctl_sess *s = arg;
    switch (ev) {
    case IO_READ:
        if (s->state == CS_READ)
            sess_read(s, 0);
        else
            evbuffer_drain(io_in(io), evbuffer_get_length(io_in(io)));
        break;
    case IO_EOF:
        /* After the request the client may have shut down its sending
         * side only: keep going, a write error will tell if it is gone. */
        if (s->state == CS_READ)
            sess_read(s, 1);
        break;
    case IO_DRAINED:
        if (s->state == CS_WRITE)
            sess_free(s);
        break;
    case IO_TIMEOUT:
    case IO_ERROR:
        if (s->state == CS_WAIT) {      /* a qmgr callback will come: keep s */
            io_free(s->io);
            s->io = NULL;
        } else {
            sess_free(s);
        }
        break;
    default:
        break;
    }
}

/* ---- the listener ---- */

static void ctl_accept(struct evconnlistener *l, evutil_socket_t fd,
                       struct sockaddr *sa, int salen, void *arg)
{
    struct ctl_sess *s = xcalloc(1, sizeof *s);
    struct ucred cred;
    socklen_t cl = sizeof cred;
    s->uid = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0 ? (long)cred.uid : -1;
    s->io = io_new_nonblocking(ctl.base, fd, sess_io, s);
    if (!s->io) {
        log_warn("control: cannot set up a connection");
        close(fd);
        free(s);
        return;
    }
    LIST_INSERT_HEAD(&ctl_sessions, s, entry);
    ctl.nsess++;
    if (ctl.nsess > CTL_MAX_SESSIONS) {
        sess_begin(s);
        ctl_reply_fail(s, 1, "too many control connections");
        return;
    }
    io_set_timeout(s->io, CTL_TIMEOUT);
    sess_read_now(s, fd);               /* s may be gone after this */
}

static void ctl_resume_cb(evutil_socket_t fd, short what, void *arg)
{
    if (ctl.lev)
        evconnlistener_enable(ctl.lev);
}

/* Out of descriptors or memory: pause accepting for a second instead of
 * spinning on the listening socket. */
static void ctl_accept_error(struct evconnlistener *l, void *arg)
{
    int e = EVUTIL_SOCKET_ERROR();
    struct timeval tv = { 1, 0 };
    log_warn("control: accept: %s", evutil_socket_error_to_string(e));
    evconnlistener_disable(l);
    event_add(ctl.resume, &tv);
}

/* Removes a socket file left by a dead daemon; refuses to touch anything
 * else, or a socket somebody still listens on. */
static int ctl_remove_stale(const char *path, char *err, size_t errlen)
{
    struct stat st;
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    if (lstat(path, &st) < 0) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "%s: exists and is not a socket", path);
        return -1;
    }
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd >= 0) {
        int rc = connect(fd, (struct sockaddr *)&sun, sizeof sun);
        int e = errno;
        close(fd);
        if (rc == 0 || e == EAGAIN || e == EINPROGRESS) {
            snprintf(err, errlen, "%s: another process is listening there", path);
            return -1;
        }
    }
    if (unlink(path) < 0 && errno != ENOENT) {
        snprintf(err, errlen, "cannot remove stale %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

static int ctl_bind(const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(err, errlen, "control socket: %s", strerror(errno));
        return -1;
    }
    if (bind(fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
        snprintf(err, errlen, "bind %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (chmod(path, 0660) < 0) {
        snprintf(err, errlen, "chmod %s: %s", path, strerror(errno));
        close(fd);
        unlink(path);
        return -1;
    }
    return fd;
}

int ctl_start(struct event_base *base, const char *path, const struct ctl_hooks *hooks,
              char *err, unsigned long errlen)
{
    struct sockaddr_un sun;
    if (ctl.lev) {
        snprintf(err, errlen, "control socket already started");
        return -1;
    }
    if (!path || !path[0] || strlen(path) >= sizeof sun.sun_path) {
        snprintf(err, errlen, "control socket path is empty or too long: %s",
                 path ? path : "");
        return -1;
    }
    if (ctl_remove_stale(path, err, errlen) < 0)
        return -1;
    int fd = ctl_bind(path, err, errlen);
    if (fd < 0)
        return -1;
    ctl.lev = evconnlistener_new(base, ctl_accept, NULL,
                                 LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 16, fd);
    if (!ctl.lev) {
        snprintf(err, errlen, "listen %s: %s", path, strerror(errno));
        close(fd);
        unlink(path);
        return -1;
    }
    evconnlistener_set_error_cb(ctl.lev, ctl_accept_error);
    ctl.resume = evtimer_new(base, ctl_resume_cb, NULL);
    ctl.base = base;
    ctl.path = xstrdup(path);
    memset(&ctl.hooks, 0, sizeof ctl.hooks);
    if (hooks)
        ctl.hooks = *hooks;
    if (ctl.started == 0)
        ctl.started = util_now_mono();
    return 0;
}

void ctl_stop(void)
{
    struct ctl_sess *s, *next;
    if (ctl.lev) {
        evconnlistener_free(ctl.lev);
        ctl.lev = NULL;
        unlink(ctl.path);
    }
    if (ctl.resume) {
        event_free(ctl.resume);
        ctl.resume = NULL;
    }
    free(ctl.path);
    ctl.path = NULL;
    for (s = LIST_FIRST(&ctl_sessions); s; s = next) {
        next = LIST_NEXT(s, entry);
        if (s->state == CS_WAIT) {      /* freed by its qmgr callback */
            io_free(s->io);
            s->io = NULL;
        } else {
            sess_free(s);
        }
    }
}

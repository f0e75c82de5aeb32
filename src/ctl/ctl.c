/*
 * ctl — the control socket server.  A Unix stream socket of the listener
 * layer (created with mode 0660 by bind itself, never chmod-ed by name; a
 * stale socket file removed first, anything else at the path refused; at
 * most CTL_MAX_SESSIONS connections: when they are open, the listener asks
 * ctl to make room, and ctl closes the connection that has waited longest
 * without sending a whole request; when all are being answered, a new one
 * gets "1 too many control connections"); per connection one
 * struct io that reads one request line (TAB-separated words, bounded by
 * CTL_MAX_REQUEST bytes, CTL_MAX_WORDS words and CTL_TIMEOUT seconds of
 * silence), looks
 * the command up in the shared table (ctl_req_check) and the handler table
 * (ctl_table.c; the handlers, by topic, are in cmd_queue.c, cmd_delivery.c
 * and cmd_status.c and answer through ctl_reply_ok/fail here), and answers
 * "0\n"+body, "1 reason\n" or "2 reason\n", then closes once the output is
 * written.
 *
 * Trusts: whoever can open the socket (file permissions decide) — but not
 * the bytes they send: every word is checked before it reaches the qmgr.
 * Guarantees: a session waiting for an asynchronous callback (qmgr: hold,
 * release, delete, show; the daemon: reload) stays allocated until that
 * callback runs, even if the client went away or ctl_stop() ran meanwhile;
 * then it is freed without writing.  Nothing on the loop blocks.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "core/io.h"
#include "core/listener.h"
#include "core/log.h"
#include "core/util.h"
#include "ctl/ctl.h"
#include "ctl_int.h"
#include "ctl_table.h"

#define CTL_MAX_SESSIONS 64

static struct {
    struct event_base *base;
    struct listener_set *set;   /* the socket; counts the sessions */
    struct ctl_hooks hooks;
    char *path;                 /* NULL: not started, or stopped */
    double started;             /* monotonic time of the first ctl_start */
} ctl;
static LIST_HEAD(, ctl_sess) ctl_sessions = LIST_HEAD_INITIALIZER(ctl_sessions);

/* ---- sessions and replies ---- */

static void sess_free(struct ctl_sess *s)
{
    LIST_REMOVE(s, entry);
    io_free(s->io);
    if (s->env)
        evbuffer_free(s->env);
    if (s->body)
        evbuffer_free(s->body);
    free(s->target);
    listener_conn_close(s->conn);
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

int64_t ctl_uptime(void)
{
    return (int64_t)(util_now_mono() - ctl.started);
}

const struct ctl_hooks *ctl_hooks_get(void)
{
    return &ctl.hooks;
}

/* ---- reading the request ---- */

/* Parses line (ctl_req_parse: split on TAB, checked against the command
 * table), runs the command's handler (ctl_table.c). */
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
    ctl_table_handler(rq.id)(s, &rq);       /* s may be gone after this */
    free(words);
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

/* The listener's full hook: makes room for a new connection by closing,
 * without an answer, the one that has waited longest without sending a
 * whole request (a real kickq sends its request at once; idle connections
 * must not lock it out).  Sessions are inserted at the head as they are
 * accepted, so that is the last one still reading.  Sessions being
 * answered are never closed here. */
static void sess_evict_idle(void *arg)
{
    struct ctl_sess *s, *oldest = NULL;
    LIST_FOREACH(s, &ctl_sessions, entry)
        if (s->state == CS_READ)
            oldest = s;
    if (!oldest)
        return;
    log_debug("control: uid=%ld closed: idle while %d connections are open",
              oldest->uid, CTL_MAX_SESSIONS);
    sess_free(oldest);
}

/* Every one of the CTL_MAX_SESSIONS is being answered. */
static size_t ctl_refusal(enum listener_refusal why, const struct listener_info *li,
                          const char *peer, char *buf, size_t len, void *arg)
{
    int n = snprintf(buf, len, "1 too many control connections\n");
    return n < 0 ? 0 : (size_t)n < len ? (size_t)n : len;
}

static int ctl_accept(struct listener_conn *c, void *arg)
{
    struct ctl_sess *s = xcalloc(1, sizeof *s);
    struct ucred cred;
    socklen_t cl = sizeof cred;
    s->uid = getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0 ? (long)cred.uid : -1;
    s->io = io_new_nonblocking(ctl.base, c->fd, sess_io, s);
    if (!s->io) {
        log_warn("control: cannot set up a connection");
        free(s);
        return -1;
    }
    s->conn = c;
    c->sess = s;
    LIST_INSERT_HEAD(&ctl_sessions, s, entry);
    io_set_timeout(s->io, CTL_TIMEOUT);
    sess_read_now(s, c->fd);            /* s may be gone after this */
    return 0;
}

static const struct listener_proto ctl_proto = {
    .name = "control",
    .pause_ms = 1000,       /* out of descriptors or memory: pause for a second */
    .accept = ctl_accept,
    .full = sess_evict_idle,
    .refusal = ctl_refusal,
};

static const struct listener_info ctl_info = { .proto = "control" };

int ctl_start(struct event_base *base, const char *path, const struct ctl_hooks *hooks,
              char *err, unsigned long errlen)
{
    struct sockaddr_un sun;
    if (ctl.path) {
        snprintf(err, errlen, "control socket already started");
        return -1;
    }
    if (!path || !path[0] || strlen(path) >= sizeof sun.sun_path) {
        snprintf(err, errlen, "control socket path is empty or too long: %s",
                 path ? path : "");
        return -1;
    }
    struct listener_set *set = listener_set_new(base, &ctl_proto, NULL);
    if (listener_add_unix(set, path, 0660, &ctl_info, err, errlen) < 0) {
        listener_set_free(set);
        return -1;
    }
    listener_set_limits(set, CTL_MAX_SESSIONS, 0);
    listener_set_enable(set);
    ctl.set = set;
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
    if (ctl.set)
        listener_set_stop(ctl.set, NULL, NULL);     /* closes and unlinks the socket */
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
    if (ctl.set && listener_set_conns(ctl.set) == 0) {
        listener_set_free(ctl.set);
        ctl.set = NULL;
    }
}

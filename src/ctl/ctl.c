/*
 * ctl — the control socket server.  A Unix stream listener (created with
 * mode 0660 by bind itself, never chmod-ed by name; a stale socket file
 * removed first, anything else at the path refused); per connection one
 * struct io that reads one request line (TAB-separated words, bounded by
 * CTL_MAX_REQUEST bytes, CTL_MAX_WORDS words and CTL_TIMEOUT seconds of
 * silence; when CTL_MAX_SESSIONS are open, the connection that has waited
 * longest without sending a whole request is closed to make room), looks
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
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "ctl.h"
#include "ctl_int.h"
#include "ctl_table.h"
#include "io.h"
#include "log.h"
#include "util.h"

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

int64_t ctl_uptime(void)
{
    return (int64_t)(util_now_mono() - ctl.started);
}

const struct ctl_hooks *ctl_hooks_get(void)
{
    return &ctl.hooks;
}

/* ---- reading the request ---- */

/* Splits line on TAB, checks it against the command table, runs the
 * command's handler (ctl_table.c). */
static void sess_request(struct ctl_sess *s, char *line, size_t len)
{
    char why[256];
    struct ctl_req rq;
    if (memchr(line, 0, len)) {
        ctl_reply_fail(s, 2, "bad request: NUL byte");
        return;
    }
    if (len && line[len - 1] == '\r')
        line[--len] = 0;
    char **words = xcalloc(CTL_MAX_WORDS, sizeof *words);
    int n = 0;
    for (char *p = line; p; ) {
        if (n == CTL_MAX_WORDS) {
            ctl_reply_fail(s, 2, "request has more than %d words", CTL_MAX_WORDS);
            free(words);
            return;
        }
        words[n++] = p;
        if ((p = strchr(p, '\t')))
            *p++ = 0;
    }
    if (ctl_req_check(n, words, &rq, why, sizeof why) < 0) {
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

/* Makes room for a new connection: closes, without an answer, the one that
 * has waited longest without sending a whole request (a real kickq sends
 * its request at once; idle connections must not lock it out).  Sessions
 * are inserted at the head as they are accepted, so that is the last one
 * still reading.  Sessions being answered are never closed here. */
static void sess_evict_idle(void)
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
    if (ctl.nsess >= CTL_MAX_SESSIONS)
        sess_evict_idle();
    LIST_INSERT_HEAD(&ctl_sessions, s, entry);
    ctl.nsess++;
    if (ctl.nsess > CTL_MAX_SESSIONS) {     /* every one is being answered */
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
    if (S_ISLNK(st.st_mode)) {
        snprintf(err, errlen, "%s: is a symbolic link (not followed, not removed)", path);
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

/* Binds the socket at path with mode 0660 from the start: the mode of a
 * Unix socket file is 0777 less the umask at bind (Linux also takes an
 * fchmod of the socket before bind into account, but still applies the
 * umask), so the umask is set for the bind alone.  Nothing follows: no
 * chmod by name, which would follow a symlink put there after the bind.
 * umask is process-wide: ctl_start runs at start-up, before any thread that
 * creates files exists (the spool's are started after it). */
static int ctl_bind(const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(err, errlen, "control socket: %s", strerror(errno));
        return -1;
    }
    mode_t mask = umask(0117);
    int rc = bind(fd, (struct sockaddr *)&sun, sizeof sun);
    int e = errno;
    umask(mask);
    if (rc < 0) {
        snprintf(err, errlen, "bind %s: %s", path, strerror(e));
        close(fd);
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

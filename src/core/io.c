/*
 * io — one connected stream, plaintext or TLS.  This is the only file that
 * calls bufferevent_*.  It trusts nothing read from the peer (it only moves
 * bytes); it guarantees that once a stream is switched to TLS no byte
 * received in plaintext before the switch is ever handed to the protocol
 * (STARTTLS injection, CVE-2011-0411 class), and that a plaintext stream
 * never holds more than IO_IN_MAX unconsumed input bytes plus one read
 * (TLS streams read as before, without this bound).
 *
 * Plaintext streams do without a bufferevent: a persistent EV_READ event, an
 * EV_WRITE event added only while output is pending (or a connect is under
 * way), and two evbuffers.  Each read is one readv() of at most IO_READ_MAX
 * bytes into evbuffer_reserve_space() memory: no FIONREAD first (which
 * evbuffer_read() asks before every read), and the callback runs at once,
 * not one loop turn later.  The timeouts are the events' own: libevent
 * restarts a persistent event's timeout whenever the event fires, which is
 * "restarted on every read" and "output pending without progress".
 * TLS streams are a bufferevent_openssl (its handshake bounded by the
 * timeout with a timer of our own); STARTTLS replaces the plaintext
 * machinery by one on the same fd.
 *
 * Ownership: the io owns the socket; in TLS the bufferevent owns fd and SSL.
 * The client side (io_connect, io_starttls_client) follows the same rules: a
 * connecting stream is an ordinary plaintext io whose first event is
 * IO_CONNECTED or IO_ERROR.  Callbacks are never called from inside an io_*
 * function, only from the loop (io_send() reports by its return value).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include "core/io.h"
#include "core/tls.h"
#include "core/util.h"

/* The most one read takes.  A little under 16 KB, so that the chain the
 * evbuffer allocates for it (data + header) is 16 KB and not 32. */
#define IO_READ_MAX (16 * 1024 - 256)
/* No reading while this much input waits unconsumed (a peer pipelining
 * while its session does not read, e.g. during a commit); reading resumes
 * once the owner consumed some.  Every caller's own line bound is lower. */
#define IO_IN_MAX (64 * 1024)

struct io {
    struct event_base *base;
    int fd;
    int tls;                /* bev is a TLS bufferevent (owns fd) */
    long timeout_ms;
    int paused;             /* io_pause()d by the owner */
    io_cb *cb;
    void *arg;
    /* plaintext */
    struct event *rev, *wev;
    struct evbuffer *in, *out;
    int reading, writing;   /* rev / wev added */
    int connecting;         /* io_connect() under way: wev waits for it */
    int eof;                /* read returned 0, or the TLS peer ended */
    int failed;             /* socket error: no more reading or writing */
    int full;               /* IO_IN_MAX unconsumed: reading suspended */
    /* TLS */
    struct bufferevent *bev;
    int handshaking;        /* until BEV_EVENT_CONNECTED */
    struct event *hs_timer; /* the handshake's bound: the timeout, once */
    char err[128];
};

static void io_plain_update(struct io *io);

/* ---- plaintext: events and buffers ---- */

static const struct timeval *io_tv(const struct io *io, struct timeval *tv)
{
    if (io->timeout_ms <= 0)
        return NULL;
    tv->tv_sec = io->timeout_ms / 1000;
    tv->tv_usec = (io->timeout_ms % 1000) * 1000;
    return tv;
}

static void io_event_set(struct event *ev, int *on, int want, const struct timeval *tv)
{
    if (want == *on)
        return;
    *on = want;
    if (want)
        event_add(ev, tv);
    else
        event_del(ev);
}

/* Adds or removes the two events to match the state: reading unless paused,
 * over IO_IN_MAX, at EOF, failed or still connecting; writing while a connect
 * is under way or output is pending (until a failure). */
static void io_plain_update(struct io *io)
{
    struct timeval tv;
    const struct timeval *tvp = io_tv(io, &tv);
    io_event_set(io->rev, &io->reading,
                 !io->paused && !io->full && !io->eof && !io->failed && !io->connecting,
                 tvp);
    io_event_set(io->wev, &io->writing,
                 !io->failed && (io->connecting || evbuffer_get_length(io->out) > 0), tvp);
}

static void io_fail(struct io *io, int e)
{
    snprintf(io->err, sizeof io->err, "%s",
             e ? evutil_socket_error_to_string(e) : "connection error");
    io->failed = 1;
    io_plain_update(io);
    io->cb(io, IO_ERROR, io->arg);
}

static int io_again(int e)
{
    return e == EAGAIN || e == EWOULDBLOCK || e == EINTR;
}

static void io_on_read(evutil_socket_t fd, short what, void *arg)
{
    struct io *io = arg;
    if (!(what & EV_READ)) {
        io->cb(io, IO_TIMEOUT, io->arg);    /* rev stays: it fires again a period later */
        return;
    }
    struct evbuffer_iovec v[2];
    int n = evbuffer_reserve_space(io->in, IO_READ_MAX, v, 2);
    if (n <= 0) {
        io_fail(io, ENOMEM);
        return;
    }
    size_t room = IO_READ_MAX;      /* reserve_space may offer more: take no more */
    for (int i = 0; i < n; i++) {
        if (v[i].iov_len > room)
            v[i].iov_len = room;
        room -= v[i].iov_len;
    }
    ssize_t r = readv(fd, v, n);
    if (r < 0) {
        if (!io_again(errno))
            io_fail(io, errno);
        return;
    }
    if (r == 0) {
        io->eof = 1;
        io_plain_update(io);
        io->cb(io, IO_EOF, io->arg);
        return;
    }
    size_t left = (size_t)r;
    for (int i = 0; i < n; i++) {
        if (v[i].iov_len > left)
            v[i].iov_len = left;
        left -= v[i].iov_len;
    }
    if (evbuffer_commit_space(io->in, v, n) < 0) {
        io_fail(io, EIO);           /* cannot happen: nothing touched in between */
        return;
    }
    if (evbuffer_get_length(io->in) >= IO_IN_MAX) {
        io->full = 1;
        io_plain_update(io);
    }
    io->cb(io, IO_READ, io->arg);
}

/* The connect under way finished (or not yet: spurious wake-up). */
static void io_on_connect(struct io *io, short what)
{
    if (!(what & EV_WRITE)) {
        io->cb(io, IO_TIMEOUT, io->arg);
        return;
    }
    int e = 0;
    socklen_t el = sizeof e;
    if (getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0)
        e = errno;
    if (e == EINPROGRESS || e == EINTR)
        return;
    io->connecting = 0;
    if (e) {
        io_fail(io, e);
        return;
    }
    io_plain_update(io);
    io->cb(io, IO_CONNECTED, io->arg);
}

static void io_on_write(evutil_socket_t fd, short what, void *arg)
{
    struct io *io = arg;
    if (io->connecting) {
        io_on_connect(io, what);
        return;
    }
    if (!(what & EV_WRITE)) {
        io->cb(io, IO_TIMEOUT, io->arg);    /* no progress for the timeout */
        return;
    }
    if (evbuffer_get_length(io->out) > 0 && evbuffer_write(io->out, fd) < 0) {
        if (!io_again(errno))
            io_fail(io, errno);
        return;
    }
    if (evbuffer_get_length(io->out) == 0) {
        io_plain_update(io);
        io->cb(io, IO_DRAINED, io->arg);
    }
}

/* Output added (io_write, io_printf, io_send or the owner's own evbuffer_add
 * on io_out): make sure the write event waits for the socket. */
static void io_out_cb(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
    struct io *io = arg;
    if (info->n_added > 0 && !io->writing)
        io_plain_update(io);
}

/* Input consumed by the owner: reading suspended at IO_IN_MAX goes on. */
static void io_in_cb(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
    struct io *io = arg;
    if (io->full && evbuffer_get_length(b) < IO_IN_MAX) {
        io->full = 0;
        io_plain_update(io);
    }
}

static void io_plain_free(struct io *io)
{
    if (io->rev)
        event_free(io->rev);
    if (io->wev)
        event_free(io->wev);
    if (io->in)
        evbuffer_free(io->in);      /* no buffer callback runs on free */
    if (io->out)
        evbuffer_free(io->out);
    io->rev = io->wev = NULL;
    io->in = io->out = NULL;
    io->reading = io->writing = 0;
}

/* A plaintext io on fd (non-blocking), reading unless connecting; NULL when
 * out of memory (fd is then left open for the caller). */
static struct io *io_plain_new(struct event_base *base, int fd, int connecting,
                               io_cb *cb, void *arg)
{
    struct io *io = xcalloc(1, sizeof *io);
    io->base = base;
    io->fd = fd;
    io->cb = cb;
    io->arg = arg;
    io->connecting = connecting;
    io->rev = event_new(base, fd, EV_READ | EV_PERSIST, io_on_read, io);
    io->wev = event_new(base, fd, EV_WRITE | EV_PERSIST, io_on_write, io);
    io->in = evbuffer_new();
    io->out = evbuffer_new();
    if (!io->rev || !io->wev || !io->in || !io->out ||
        !evbuffer_add_cb(io->in, io_in_cb, io) || !evbuffer_add_cb(io->out, io_out_cb, io)) {
        io_plain_free(io);
        free(io);
        return NULL;
    }
    io_plain_update(io);
    return io;
}

struct io *io_new(struct event_base *base, int fd, io_cb *cb, void *arg)
{
    evutil_make_socket_nonblocking(fd);
    return io_plain_new(base, fd, 0, cb, arg);
}

struct io *io_new_nonblocking(struct event_base *base, int fd, io_cb *cb, void *arg)
{
    return io_plain_new(base, fd, 0, cb, arg);
}

/* ---- TLS: a bufferevent_openssl ---- */

static void io_readcb(struct bufferevent *bev, void *arg)
{
    struct io *io = arg;
    io->cb(io, IO_READ, io->arg);
}

static void io_writecb(struct bufferevent *bev, void *arg)
{
    struct io *io = arg;
    if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        io->cb(io, IO_DRAINED, io->arg);
}

static void io_set_error(struct io *io)
{
    unsigned long e = bufferevent_get_openssl_error(io->bev);
    if (e) {
        char buf[120];
        snprintf(io->err, sizeof io->err, "TLS: %s",
                 tls_last_error(buf, sizeof buf));
        while (bufferevent_get_openssl_error(io->bev))
            ;
    } else if (EVUTIL_SOCKET_ERROR()) {
        snprintf(io->err, sizeof io->err, "%s",
                 evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
    } else {
        snprintf(io->err, sizeof io->err, "connection error");
    }
}

static void io_eventcb(struct bufferevent *bev, short what, void *arg)
{
    struct io *io = arg;
    if (what & BEV_EVENT_CONNECTED) {
        io->handshaking = 0;
        if (io->hs_timer)
            evtimer_del(io->hs_timer);
        io->cb(io, IO_TLS_DONE, io->arg);
    } else if (what & BEV_EVENT_TIMEOUT) {
        io->cb(io, IO_TIMEOUT, io->arg);
    } else if (what & BEV_EVENT_ERROR) {
        io_set_error(io);
        io->cb(io, IO_ERROR, io->arg);
    } else if (what & BEV_EVENT_EOF) {
        io->eof = 1;
        io->cb(io, IO_EOF, io->arg);
    }
}

/* The handshake did not end within the timeout: an error, reported once
 * (libevent's read and write timeouts are not armed during a
 * bufferevent_openssl handshake, and the peer reads nothing before it
 * ends, so an IO_TIMEOUT could not be answered). */
static void io_on_hs_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct io *io = arg;
    /* ended in this loop turn: its deferred BEV_EVENT_CONNECTED is on the way */
    if (!io->handshaking || tls_ssl_established(bufferevent_openssl_get_ssl(io->bev)))
        return;
    io->handshaking = 0;
    snprintf(io->err, sizeof io->err, "TLS handshake timed out");
    io->cb(io, IO_ERROR, io->arg);
}

/* (Re)arms the handshake's bound from now while it is under way. */
static void io_hs_arm(struct io *io)
{
    struct timeval tv;
    const struct timeval *tvp = io_tv(io, &tv);
    if (!io->handshaking)
        return;
    if (!io->hs_timer && !(io->hs_timer = evtimer_new(io->base, io_on_hs_timeout, io)))
        return;
    if (tvp)
        evtimer_add(io->hs_timer, tvp);
    else
        evtimer_del(io->hs_timer);
}

static void io_attach(struct io *io, struct bufferevent *bev)
{
    io->bev = bev;
    io->tls = 1;
    bufferevent_setcb(bev, io_readcb, io_writecb, io_eventcb, io);
    io->handshaking = 1;
    io_set_timeout_ms(io, io->timeout_ms);
    if (!io->paused)
        bufferevent_enable(bev, EV_READ | EV_WRITE);
    else
        bufferevent_enable(bev, EV_WRITE);
}

struct io *io_new_tls_server(struct event_base *base, int fd, struct tls_ctx *ctx,
                             io_cb *cb, void *arg)
{
    void *ssl = tls_ctx_new_ssl(ctx);
    if (!ssl)
        return NULL;
    evutil_make_socket_nonblocking(fd);
    struct bufferevent *bev = bufferevent_openssl_socket_new(base, fd, ssl,
        BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (!bev) {
        tls_ssl_free(ssl);
        return NULL;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    struct io *io = xcalloc(1, sizeof *io);
    io->base = base;
    io->fd = fd;
    io->cb = cb;
    io->arg = arg;
    io_attach(io, bev);
    return io;
}

/* ---- both ---- */

void io_free(struct io *io)
{
    if (!io)
        return;
    if (io->hs_timer)
        event_free(io->hs_timer);
    if (io->tls) {
        bufferevent_free(io->bev);      /* closes fd */
    } else {
        io_plain_free(io);
        close(io->fd);
    }
    free(io);
}

void io_set_cb(struct io *io, io_cb *cb, void *arg)
{
    io->cb = cb;
    io->arg = arg;
}

struct evbuffer *io_in(struct io *io)
{
    return io->tls ? bufferevent_get_input(io->bev) : io->in;
}

struct evbuffer *io_out(struct io *io)
{
    return io->tls ? bufferevent_get_output(io->bev) : io->out;
}

void io_write(struct io *io, const void *data, size_t len)
{
    evbuffer_add(io_out(io), data, len);
}

void io_printf(struct io *io, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    evbuffer_add_vprintf(io_out(io), fmt, ap);
    va_end(ap);
}

size_t io_out_pending(struct io *io)
{
    return evbuffer_get_length(io_out(io));
}

int io_cannot_send(const struct io *io)
{
    return io->tls && io->eof;
}

int io_send(struct io *io, struct evbuffer *buf)
{
    if (!io->tls && !io->connecting && !io->failed && evbuffer_get_length(io->out) == 0) {
        while (evbuffer_get_length(buf) > 0)
            if (evbuffer_write(buf, io->fd) <= 0)
                break;          /* EAGAIN or an error: the write event takes over */
        if (evbuffer_get_length(buf) == 0)
            return 1;
    }
    evbuffer_add_buffer(io_out(io), buf);
    return 0;
}

void io_set_timeout(struct io *io, int secs)
{
    io_set_timeout_ms(io, secs > 0 ? (long)secs * 1000 : 0);
}

void io_set_timeout_ms(struct io *io, long ms)
{
    struct timeval tv;
    io->timeout_ms = ms > 0 ? ms : 0;
    const struct timeval *tvp = io_tv(io, &tv);
    if (io->tls) {
        bufferevent_set_timeouts(io->bev, tvp, tvp);
        io_hs_arm(io);
        return;
    }
    /* pending events: the new timeout counts from now (or is removed) */
    if (io->reading) {
        if (tvp)
            event_add(io->rev, tvp);
        else
            event_remove_timer(io->rev);
    }
    if (io->writing) {
        if (tvp)
            event_add(io->wev, tvp);
        else
            event_remove_timer(io->wev);
    }
}

void io_pause(struct io *io)
{
    io->paused = 1;
    if (io->tls)
        bufferevent_disable(io->bev, EV_READ);
    else
        io_plain_update(io);
}

void io_resume(struct io *io)
{
    io->paused = 0;
    if (io->tls)
        bufferevent_enable(io->bev, EV_READ);
    else
        io_plain_update(io);
}

/* Replaces the plaintext machinery by a TLS bufferevent on the same socket,
 * discarding buffered plaintext input (and output: the caller switches only
 * once its last plaintext reply went out).  Returns the input bytes
 * discarded, or -1 with the stream unchanged (ssl is freed). */
static long io_switch_tls(struct io *io, void *ssl, enum bufferevent_ssl_state st)
{
    struct bufferevent *tbev = bufferevent_openssl_socket_new(io->base, io->fd, ssl, st,
        BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (!tbev) {
        tls_ssl_free(ssl);
        return -1;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(tbev, 1);
    long discarded = (long)evbuffer_get_length(io->in);
    io_plain_free(io);              /* the plaintext input goes with its buffer */
    io->eof = io->full = io->failed = 0;
    io_attach(io, tbev);
    return discarded;
}

long io_starttls_server(struct io *io, struct tls_ctx *ctx)
{
    if (io->tls || io->connecting)
        return -1;
    void *ssl = tls_ctx_new_ssl(ctx);
    if (!ssl)
        return -1;
    return io_switch_tls(io, ssl, BUFFEREVENT_SSL_ACCEPTING);
}

/* ---- client side ---- */

/* Numeric host and port into a socket address; -1 for anything else. */
static int io_sockaddr(const char *host, int port, struct sockaddr_storage *ss,
                       socklen_t *sl)
{
    memset(ss, 0, sizeof *ss);
    if (!host || port <= 0 || port > 65535)
        return -1;
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        *sl = sizeof *s4;
        return 0;
    }
    if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        *sl = sizeof *s6;
        return 0;
    }
    return -1;
}

struct io *io_connect(struct event_base *base, const char *host, int port,
                      io_cb *cb, void *arg)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    if (io_sockaddr(host, port, &ss, &sl) < 0) {
        errno = EINVAL;
        return NULL;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return NULL;
    /* connect() here, so that an immediate failure keeps its errno */
    if (connect(fd, (struct sockaddr *)&ss, sl) < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        errno = e;
        return NULL;
    }
    /* connecting: the write event reports the end (IO_CONNECTED or IO_ERROR) */
    struct io *io = io_plain_new(base, fd, 1, cb, arg);
    if (!io) {
        close(fd);
        errno = ENOMEM;
        return NULL;
    }
    return io;
}

int io_starttls_client(struct io *io, struct tls_ctx *ctx, const char *servername)
{
    if (io->tls || io->connecting || !ctx)
        return -1;
    void *ssl = tls_ctx_new_ssl(ctx);
    if (!ssl)
        return -1;
    tls_ssl_set_sni(ssl, servername);
    long discarded = io_switch_tls(io, ssl, BUFFEREVENT_SSL_CONNECTING);
    return discarded > INT_MAX ? INT_MAX : (int)discarded;
}

int io_starttls_client_peer(struct io *io, struct tls_ctx *ctx, const char *sni,
                            const char *verify_name, const char *cafile)
{
    if (io->tls || io->connecting || !ctx)
        return -1;
    void *ssl = tls_ctx_new_client_ssl(ctx, sni, verify_name, cafile);
    if (!ssl)
        return -1;
    long discarded = io_switch_tls(io, ssl, BUFFEREVENT_SSL_CONNECTING);
    return discarded > INT_MAX ? INT_MAX : (int)discarded;
}

int io_tls_verified(const struct io *io, const char *verify_name, char *why, size_t len)
{
    if (!io->tls) {
        snprintf(why, len, "Server certificate not verified: no TLS");
        return -1;
    }
    return tls_ssl_verified(bufferevent_openssl_get_ssl(io->bev), verify_name, why, len);
}

int io_is_tls(const struct io *io)
{
    return io->tls;
}

const char *io_tls_info(const struct io *io, char *buf, size_t len)
{
    if (!io->tls) {
        if (len) buf[0] = 0;
        return buf;
    }
    return tls_describe(bufferevent_openssl_get_ssl(io->bev), buf, len);
}

const char *io_error(const struct io *io)
{
    return io->err[0] ? io->err : "connection error";
}

void io_addr_name(const struct sockaddr *sa, socklen_t salen, char *buf, size_t len)
{
    if (!sa || salen < (socklen_t)sizeof sa->sa_family) {
        snprintf(buf, len, "unknown");
    } else if (sa->sa_family == AF_INET && salen >= (socklen_t)sizeof(struct sockaddr_in)) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf, (socklen_t)len);
    } else if (sa->sa_family == AF_INET6 &&
               salen >= (socklen_t)sizeof(struct sockaddr_in6)) {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, buf,
                  (socklen_t)len);
    } else if (sa->sa_family == AF_UNIX) {
        snprintf(buf, len, "unix");
    } else {
        snprintf(buf, len, "unknown");
    }
}

void io_peer_name(int fd, char *buf, size_t len, struct sockaddr_storage *ss)
{
    struct sockaddr_storage tmp;
    socklen_t sl = sizeof tmp;
    if (!ss)
        ss = &tmp;
    memset(ss, 0, sizeof *ss);
    if (getpeername(fd, (struct sockaddr *)ss, &sl) < 0) {
        snprintf(buf, len, "unknown");
        return;
    }
    io_addr_name((struct sockaddr *)ss, sl, buf, len);
}

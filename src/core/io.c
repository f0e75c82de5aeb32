/*
 * io — one connected stream over a libevent bufferevent, plaintext or TLS.
 * This is the only file that calls bufferevent_*.  It trusts nothing read
 * from the peer (it only moves bytes); it guarantees that once a stream is
 * switched to TLS no byte received in plaintext before the switch is ever
 * handed to the protocol (STARTTLS injection, CVE-2011-0411 class).
 *
 * Ownership: the io owns the socket.  A plaintext bufferevent is created
 * without BEV_OPT_CLOSE_ON_FREE so that it can be replaced by a TLS one on
 * the same fd; the TLS bufferevent owns fd and SSL.  The client side
 * (io_connect, io_starttls_client) follows the same rules: a connecting
 * stream is an ordinary plaintext io whose first event is IO_CONNECTED or
 * IO_ERROR.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include "io.h"
#include "tls.h"
#include "util.h"

struct io {
    struct event_base *base;
    struct bufferevent *bev;
    int fd;
    int tls;                /* bev is a TLS bufferevent (owns fd) */
    long timeout_ms;
    int paused;
    io_cb *cb;
    void *arg;
    char err[128];
};

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
    unsigned long e = io->tls ? bufferevent_get_openssl_error(io->bev) : 0;
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
        io->cb(io, io->tls ? IO_TLS_DONE : IO_CONNECTED, io->arg);
    } else if (what & BEV_EVENT_TIMEOUT) {
        io->cb(io, IO_TIMEOUT, io->arg);
    } else if (what & BEV_EVENT_ERROR) {
        io_set_error(io);
        io->cb(io, IO_ERROR, io->arg);
    } else if (what & BEV_EVENT_EOF) {
        io->cb(io, IO_EOF, io->arg);
    }
}

static void io_attach(struct io *io, struct bufferevent *bev)
{
    io->bev = bev;
    bufferevent_setcb(bev, io_readcb, io_writecb, io_eventcb, io);
    io_set_timeout_ms(io, io->timeout_ms);
    if (!io->paused)
        bufferevent_enable(bev, EV_READ | EV_WRITE);
    else
        bufferevent_enable(bev, EV_WRITE);
}

struct io *io_new(struct event_base *base, int fd, io_cb *cb, void *arg)
{
    struct bufferevent *bev;
    evutil_make_socket_nonblocking(fd);
    bev = bufferevent_socket_new(base, fd, BEV_OPT_DEFER_CALLBACKS);
    if (!bev)
        return NULL;
    struct io *io = xcalloc(1, sizeof *io);
    io->base = base;
    io->fd = fd;
    io->cb = cb;
    io->arg = arg;
    io_attach(io, bev);
    return io;
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
    if (!bev)
        return NULL;
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    struct io *io = xcalloc(1, sizeof *io);
    io->base = base;
    io->fd = fd;
    io->cb = cb;
    io->arg = arg;
    io->tls = 1;
    io_attach(io, bev);
    return io;
}

void io_free(struct io *io)
{
    if (!io)
        return;
    bufferevent_free(io->bev);
    if (!io->tls)
        close(io->fd);
    free(io);
}

void io_set_cb(struct io *io, io_cb *cb, void *arg)
{
    io->cb = cb;
    io->arg = arg;
}

struct evbuffer *io_in(struct io *io)
{
    return bufferevent_get_input(io->bev);
}

struct evbuffer *io_out(struct io *io)
{
    return bufferevent_get_output(io->bev);
}

void io_write(struct io *io, const void *data, size_t len)
{
    bufferevent_write(io->bev, data, len);
}

void io_printf(struct io *io, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    evbuffer_add_vprintf(bufferevent_get_output(io->bev), fmt, ap);
    va_end(ap);
}

size_t io_out_pending(struct io *io)
{
    return evbuffer_get_length(bufferevent_get_output(io->bev));
}

int io_send(struct io *io, struct evbuffer *buf)
{
    struct evbuffer *out = bufferevent_get_output(io->bev);
    if (!io->tls && evbuffer_get_length(out) == 0) {
        while (evbuffer_get_length(buf) > 0)
            if (evbuffer_write(buf, io->fd) <= 0)
                break;          /* EAGAIN or an error: the bufferevent takes over */
        if (evbuffer_get_length(buf) == 0)
            return 1;
    }
    bufferevent_write_buffer(io->bev, buf);
    return 0;
}

void io_set_timeout(struct io *io, int secs)
{
    io_set_timeout_ms(io, secs > 0 ? (long)secs * 1000 : 0);
}

void io_set_timeout_ms(struct io *io, long ms)
{
    io->timeout_ms = ms;
    if (ms > 0) {
        struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
        bufferevent_set_timeouts(io->bev, &tv, &tv);
    } else {
        bufferevent_set_timeouts(io->bev, NULL, NULL);
    }
}

void io_pause(struct io *io)
{
    io->paused = 1;
    bufferevent_disable(io->bev, EV_READ);
}

void io_resume(struct io *io)
{
    io->paused = 0;
    bufferevent_enable(io->bev, EV_READ);
}

/* Replaces the plaintext bufferevent by a TLS one on the same socket, after
 * discarding buffered plaintext input.  Returns the bytes discarded, or -1
 * (ssl is then freed by the caller's failure path below). */
static long io_switch_tls(struct io *io, void *ssl, enum bufferevent_ssl_state st)
{
    struct evbuffer *in = bufferevent_get_input(io->bev);
    long discarded = (long)evbuffer_get_length(in);
    evbuffer_drain(in, (size_t)discarded);
    struct bufferevent *tbev = bufferevent_openssl_socket_new(io->base, io->fd, ssl, st,
        BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (!tbev) {
        tls_ssl_free(ssl);
        return -1;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(tbev, 1);
    bufferevent_free(io->bev);      /* plaintext bev: does not close fd */
    io->tls = 1;
    io_attach(io, tbev);
    return discarded;
}

long io_starttls_server(struct io *io, struct tls_ctx *ctx)
{
    if (io->tls)
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
    struct bufferevent *bev = bufferevent_socket_new(base, fd, BEV_OPT_DEFER_CALLBACKS);
    if (!bev) {
        close(fd);
        errno = ENOMEM;
        return NULL;
    }
    struct io *io = xcalloc(1, sizeof *io);
    io->base = base;
    io->fd = fd;
    io->cb = cb;
    io->arg = arg;
    bufferevent_setcb(bev, io_readcb, io_writecb, io_eventcb, io);
    io->bev = bev;
    /* sa NULL: the socket is already connecting; BEV_EVENT_CONNECTED follows */
    if (bufferevent_socket_connect(bev, NULL, 0) < 0) {
        int e = errno;
        bufferevent_free(bev);
        close(fd);
        free(io);
        errno = e ? e : EIO;
        return NULL;
    }
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    return io;
}

int io_starttls_client(struct io *io, struct tls_ctx *ctx, const char *servername)
{
    if (io->tls || !ctx)
        return -1;
    void *ssl = tls_ctx_new_ssl(ctx);
    if (!ssl)
        return -1;
    tls_ssl_set_sni(ssl, servername);
    long discarded = io_switch_tls(io, ssl, BUFFEREVENT_SSL_CONNECTING);
    return discarded > INT_MAX ? INT_MAX : (int)discarded;
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
    if (ss->ss_family == AF_INET) {
        inet_ntop(AF_INET, &((struct sockaddr_in *)ss)->sin_addr, buf, (socklen_t)len);
    } else if (ss->ss_family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, buf, (socklen_t)len);
    } else {
        snprintf(buf, len, "unix");
    }
}

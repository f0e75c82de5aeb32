/*
 * session_clients — the client side the session fuzz targets share
 * (fuzz_smtp_session.c, fuzz_pop3_session.c): one input split into the
 * bytes of up to N clients ("~~~" CR LF between them), each written to its
 * end of a socketpair in chunks chosen from its bytes, then half-closed;
 * what the server answers is kept up to the reply that starts TLS (after it
 * the bytes are TLS and not kept).  Header-only: a target includes it once
 * and defines CHECK first.
 */
#ifndef KM_FUZZ_SESSION_CLIENTS_H
#define KM_FUZZ_SESSION_CLIENTS_H

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#define SPLIT "~~~\r\n"

/* The client end of the socketpair. */
struct client {
    int fd;
    const uint8_t *data;
    size_t size, off, chunk;    /* chunk 0: everything at once */
    int lazy;                   /* reads only when it cannot write (a slow reader) */
    int sent;                   /* all written (or the server went away), SHUT_WR done */
    int closed;                 /* read EOF or an error */
    struct event *rev, *wev;
    const char *tls_mark;       /* the server's reply that starts TLS */
    char *out;                  /* what the server sent, up to tls_mark */
    size_t nout, cap;
    int tls;                    /* tls_mark was seen: the rest is TLS */
    int refused;                /* the server's adopt said no */
};

static void client_keep(struct client *c, const char *buf, size_t n)
{
    size_t mark = strlen(c->tls_mark);
    if (c->tls)
        return;
    if (c->nout + n > c->cap) {
        c->cap = (c->nout + n) * 2;
        c->out = realloc(c->out, c->cap);
        CHECK(c->out);
    }
    size_t from = c->nout > mark + 1 ? c->nout - mark - 1 : 0;
    memcpy(c->out + c->nout, buf, n);
    c->nout += n;
    char *t = memmem(c->out + from, c->nout - from, c->tls_mark, mark);
    if (t) {
        c->nout = (size_t)(t - c->out) + mark;
        c->tls = 1;
    }
}

static void client_write(evutil_socket_t fd, short what, void *arg)
{
    struct client *c = arg;
    size_t n = c->size - c->off;
    if (c->chunk && n > c->chunk)
        n = c->chunk;
    if (n) {
        ssize_t w = send(fd, c->data + c->off, n, MSG_NOSIGNAL);
        if (w > 0)
            c->off += (size_t)w;
        else if (w < 0 && errno != EAGAIN && errno != EINTR)
            c->off = c->size;       /* the server closed: the rest is not read */
    }
    if (c->off == c->size) {
        shutdown(fd, SHUT_WR);
        c->sent = 1;
        event_del(c->wev);
    }
}

static void client_read(evutil_socket_t fd, short what, void *arg)
{
    struct client *c = arg;
    char buf[16384];
    struct pollfd pw = { .fd = fd, .events = POLLOUT };
    if (c->lazy && !c->sent && poll(&pw, 1, 0) == 1)
        return;                     /* writing first: the replies wait */
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n > 0)
        client_keep(c, buf, (size_t)n);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        c->closed = 1;
        event_del(c->rev);
    }
}

/* How a client sends, from its bytes: in chunks of 1-64 bytes with the loop
 * turning between them, or all at once (a quarter of inputs); a quarter of
 * clients are slow readers (lazy) with a small socket buffer on the
 * server's side, so that the server's output backs up. */
static void client_pace(struct client *c)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < c->size; i++)
        h = (h ^ c->data[i]) * 16777619u;
    c->chunk = h % 4 == 0 ? 0 : 1 + (h >> 2) % 64;
    c->lazy = (h >> 10) % 4 == 0;
}

/* Splits the input into at most max clients (c zeroed here); returns how
 * many. */
static int clients_split(const uint8_t *data, size_t size, struct client *c, int max,
                         const char *tls_mark)
{
    int n = 0;
    memset(c, 0, (size_t)max * sizeof *c);
    for (size_t off = 0; n < max; n++) {
        const uint8_t *end = n + 1 < max ?
            memmem(data + off, size - off, SPLIT, sizeof SPLIT - 1) : NULL;
        c[n].data = data + off;
        c[n].size = end ? (size_t)(end - (data + off)) : size - off;
        c[n].tls_mark = tls_mark;
        client_pace(&c[n]);
        if (!end) {
            n++;
            break;
        }
        off = (size_t)(end - data) + sizeof SPLIT - 1;
    }
    return n;
}

/* Starts reading and writing client c (its fd set). */
static void client_watch(struct event_base *base, struct client *c)
{
    c->rev = event_new(base, c->fd, EV_READ | EV_PERSIST, client_read, c);
    c->wev = event_new(base, c->fd, EV_WRITE | EV_PERSIST, client_write, c);
    CHECK(c->rev && c->wev);
    event_add(c->rev, NULL);
    event_add(c->wev, NULL);
}

static int clients_open(const struct client *c, int n)
{
    for (int i = 0; i < n; i++)
        if (!c[i].closed)
            return 1;
    return 0;
}

/* Shows (trace) and checks each client's output, then frees the clients. */
static void clients_finish(struct client *c, int n, const char *const *peers, int trace,
                           void (*check)(const struct client *))
{
    for (int i = 0; i < n; i++) {
        if (trace)
            fprintf(stderr, "---- client %d (%s, chunks of %zu%s) got:\n%.*s----\n",
                    i + 1, peers[i], c[i].chunk, c[i].lazy ? ", slow reader" : "",
                    (int)c[i].nout, c[i].out ? c[i].out : "");
        check(&c[i]);
        free(c[i].out);
        event_free(c[i].rev);
        event_free(c[i].wev);
        close(c[i].fd);
    }
}

#endif

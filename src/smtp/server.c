/*
 * server — the SMTP listeners: accepts connections, enforces
 * max_connections and max_connections_per_client (421 4.7.0 before any
 * session exists), creates sessions and frees them, and keeps the per-client
 * record whose data_bytes the sessions account against
 * max_data_in_memory_per_client.  smtp_server_adopt() is the same for a
 * socket connected some other way (the session fuzzer's socketpair).  Trusts
 * the configuration; the peer only gets to connect here.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "config.h"
#include "io.h"
#include "listen.h"
#include "log.h"
#include "smtp_int.h"
#include "smtp_server.h"
#include "stats.h"
#include "util.h"

struct smtp_env smtp_env;

static struct {
    struct event_base *base;
    struct evconnlistener **listeners;
    size_t nlisteners;
    LIST_HEAD(, smtp_sess) sessions;
    unsigned nsessions;
    struct hmap *clients;           /* peer address -> struct client_count */
    void (*stopped)(void);
} S;

static void refuse(int fd, const char *why)
{
    char buf[256];
    int n = snprintf(buf, sizeof buf, "421 4.7.0 %s Error: %s\r\n",
                     smtp_env.cfg->hostname, why);
    if (n > 0 && write(fd, buf, (size_t)n) < 0) {
        /* best effort: the peer is being turned away anyway */
    }
    close(fd);
}

int smtp_server_adopt(int fd, const char *peer)
{
    const struct smtp_conf *sc = &smtp_env.cfg->smtp;
    if (S.stopped || (sc->max_connections && S.nsessions >= sc->max_connections)) {
        log_warn("refused connection from %s: too many connections", peer);
        refuse(fd, "too many connections");
        return -1;
    }
    struct client_count *cc = hmap_get(S.clients, peer);
    if (cc && sc->max_connections_per_client && cc->n >= sc->max_connections_per_client) {
        log_warn("refused connection from %s: too many connections from this client", peer);
        refuse(fd, "too many connections from your host");
        return -1;
    }
    struct io *io = io_new_nonblocking(S.base, fd, NULL, NULL);  /* accept4(SOCK_NONBLOCK) */
    if (!io) {
        close(fd);
        return -1;
    }
    if (!cc) {
        cc = xcalloc(1, sizeof *cc);
        snprintf(cc->addr, sizeof cc->addr, "%s", peer);
        hmap_put(S.clients, cc->addr, cc);
    }
    cc->n++;
    struct smtp_sess *s = xcalloc(1, sizeof *s);
    s->io = io;
    s->fd = fd;
    s->client = cc;
    s->mem.all = &smtp_env.data_bytes;
    s->mem.client = &cc->data_bytes;
    snprintf(s->peer, sizeof s->peer, "%s", peer);
    LIST_INSERT_HEAD(&S.sessions, s, entry);
    S.nsessions++;
    stats_add(ST_SESSIONS_SMTP, 1);
    smtp_sess_start(s);
    return 0;
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd,
                      struct sockaddr *sa, int salen, void *arg)
{
    char peer[64];
    io_addr_name(sa, (socklen_t)salen, peer, sizeof peer);    /* no getpeername() */
    smtp_server_adopt(fd, peer);
}

void smtp_server_release(struct smtp_sess *s)
{
    LIST_REMOVE(s, entry);
    S.nsessions--;
    if (s->mem.mine)        /* the session's transaction was not reset */
        log_fatal("smtp: session from %s freed holding %llu bytes of message data",
                  s->peer, (unsigned long long)s->mem.mine);
    if (--s->client->n == 0) {
        if (s->client->data_bytes)
            log_fatal("smtp: client %s gone with %llu bytes of message data counted",
                      s->client->addr, (unsigned long long)s->client->data_bytes);
        hmap_del(S.clients, s->client->addr);
        free(s->client);
    }
    free(s);
    if (S.stopped && S.nsessions == 0)
        S.stopped();
}

static void listener_reenable(evutil_socket_t fd, short what, void *arg)
{
    if (!S.stopped)         /* after shutdown the listener is gone */
        evconnlistener_enable(arg);
}

static void on_accept_error(struct evconnlistener *l, void *arg)
{
    int e = EVUTIL_SOCKET_ERROR();
    log_warn("smtp: accept: %s", evutil_socket_error_to_string(e));
    /* EMFILE and friends: pause briefly instead of spinning */
    evconnlistener_disable(l);
    struct timeval tv = { 0, 100000 };
    event_base_once(S.base, -1, EV_TIMEOUT, listener_reenable, l, &tv);
}

int smtp_server_bind(struct event_base *base, const struct config *c, char *err,
                     unsigned long errlen)
{
    S.base = base;
    LIST_INIT(&S.sessions);
    S.clients = hmap_new(0);
    if (!c->smtp.l.present)
        return 0;
    S.listeners = xcalloc(c->smtp.l.nlisten, sizeof *S.listeners);
    for (size_t i = 0; i < c->smtp.l.nlisten; i++) {
        int fd = listen_bind(&c->smtp.l.listen[i], err, errlen);
        if (fd < 0)
            return -1;
        struct evconnlistener *l = evconnlistener_new(base, on_accept, NULL,
            LEV_OPT_CLOSE_ON_FREE | LEV_OPT_DISABLED, -1, fd);
        if (!l) {
            snprintf(err, errlen, "%s: cannot listen", c->smtp.l.listen[i].text);
            close(fd);
            return -1;
        }
        evconnlistener_set_error_cb(l, on_accept_error);
        S.listeners[S.nlisteners++] = l;
        log_info("smtp: listening on %s", c->smtp.l.listen[i].text);
    }
    return 0;
}

void smtp_server_configure(const struct config *c, const struct registry *r,
                           struct tls_ctx *tls)
{
    smtp_env.cfg = c;
    smtp_env.reg = r;
    smtp_env.tls = tls;
    for (size_t i = 0; i < S.nlisteners; i++)
        evconnlistener_enable(S.listeners[i]);
}

void smtp_server_shutdown(void (*done)(void))
{
    struct smtp_sess *s, *next;
    S.stopped = done;
    smtp_env.stopping = 1;
    for (size_t i = 0; i < S.nlisteners; i++)
        evconnlistener_free(S.listeners[i]);
    S.nlisteners = 0;
    for (s = LIST_FIRST(&S.sessions); s; s = next) {
        next = LIST_NEXT(s, entry);
        smtp_sess_shutdown(s);
    }
    if (S.nsessions == 0)
        done();
}

unsigned smtp_server_sessions(void)
{
    return S.nsessions;
}

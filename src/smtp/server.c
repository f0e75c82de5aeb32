/*
 * server — the SMTP listeners, on the listener layer: binds the `smtp`
 * section's addresses, sets max_connections and max_connections_per_client
 * on them (a connection over a limit gets 421 4.7.0 before any session
 * exists), creates a session for each accepted connection and frees it
 * when the session gives its connection back (the closed hook: session.c
 * never calls into this file); smtp_server_adopt() does the same for a
 * socket connected some other way (the session fuzzer's socketpair).  The
 * listener's per-client record carries
 * the data_bytes the sessions account against
 * max_data_in_memory_per_client.  Trusts the configuration; the peer only
 * gets to connect here.
 */
#include <stdio.h>
#include <stdlib.h>

#include "core/config.h"
#include "core/io.h"
#include "core/listener.h"
#include "core/log.h"
#include "core/stats.h"
#include "core/util.h"
#include "smtp/smtp_server.h"
#include "smtp_int.h"

static struct {
    struct event_base *base;
    struct listener_set *set;
    void (*stopped)(void);
} S;

static const struct listener_info smtp_info = { .proto = "smtp" };

static size_t smtp_refusal(enum listener_refusal why, const struct listener_info *li,
                           const char *peer, char *buf, size_t len, void *arg)
{
    const char *text = "too many connections";
    if (why == LISTENER_FULL) {
        log_warn("refused connection from %s: too many connections", peer);
    } else {
        log_warn("refused connection from %s: too many connections from this client", peer);
        text = "too many connections from your host";
    }
    int n = snprintf(buf, len, "421 4.7.0 %s Error: %s\r\n", smtp_env.cfg->hostname, text);
    return n < 0 ? 0 : (size_t)n < len ? (size_t)n : len;
}

static int smtp_accept(struct listener_conn *c, void *arg)
{
    struct io *io = io_new_nonblocking(S.base, c->fd, NULL, NULL);  /* accept4(SOCK_NONBLOCK) */
    if (!io)
        return -1;
    struct smtp_sess *s = xcalloc(1, sizeof *s);
    s->conn = c;
    c->sess = s;
    s->io = io;
    s->fd = c->fd;
    s->mem.all = &smtp_env.data_bytes;
    s->mem.client = &c->client->bytes;
    snprintf(s->peer, sizeof s->peer, "%s", c->peer);
    stats_add(ST_SESSIONS_SMTP, 1);
    smtp_sess_start(s);
    return 0;
}

/* The session gave its connection back (listener_conn_close). */
static void smtp_closed(struct listener_conn *c, void *arg)
{
    struct smtp_sess *s = c->sess;
    if (s->mem.mine)        /* the session's transaction was not reset */
        log_fatal("smtp: session from %s freed holding %llu bytes of message data",
                  s->peer, (unsigned long long)s->mem.mine);
    if (c->client->n == 1 && c->client->bytes)
        log_fatal("smtp: client %s gone with %llu bytes of message data counted",
                  c->client->addr, (unsigned long long)c->client->bytes);
    free(s);
}

static const struct listener_proto smtp_proto = {
    .name = "smtp",
    .pause_ms = 100,        /* EMFILE and friends: pause briefly instead of spinning */
    .accept = smtp_accept,
    .closed = smtp_closed,
    .refusal = smtp_refusal,
};

int smtp_server_bind(struct event_base *base, const struct config *c, char *err,
                     unsigned long errlen)
{
    S.base = base;
    S.set = listener_set_new(base, &smtp_proto, NULL);
    if (!c->smtp.l.present)
        return 0;
    for (size_t i = 0; i < c->smtp.l.nlisten; i++) {
        if (listener_add_tcp(S.set, &c->smtp.l.listen[i], &smtp_info, err, errlen) < 0)
            return -1;
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
    listener_set_limits(S.set, c->smtp.max_connections, c->smtp.max_connections_per_client);
    listener_set_enable(S.set);
}

static void smtp_drained(void *arg)
{
    S.stopped();
}

static void sess_shutdown_one(struct listener_conn *c, void *arg)
{
    smtp_sess_shutdown(c->sess);
}

void smtp_server_shutdown(void (*done)(void))
{
    S.stopped = done;
    smtp_env.stopping = 1;
    listener_set_stop(S.set, smtp_drained, NULL);     /* done() once none is left */
    listener_set_each(S.set, sess_shutdown_one, NULL);
}

int smtp_server_adopt(int fd, const char *peer)
{
    return listener_adopt(S.set, &smtp_info, fd, peer);
}

unsigned smtp_server_sessions(void)
{
    return S.set ? listener_set_conns(S.set) : 0;
}

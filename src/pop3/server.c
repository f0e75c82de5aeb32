/*
 * server — the POP3 listeners, on the listener layer: binds the `pop3`
 * (STLS offered when a tls section exists) and `pop3s` (implicit TLS)
 * sections' addresses, one listener set each with its own
 * max_connections and max_connections_per_client (a pop3 connection over a
 * limit gets "-ERR [SYS/TEMP]" before any session exists; a pop3s one is
 * closed), creates a session for each accepted connection and frees it
 * when the session gives its connection back (session.c never calls into
 * this file); starts and stops the worker threads.  Trusts the
 * configuration; the peer only gets to connect here.
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "core/config.h"
#include "core/io.h"
#include "core/listener.h"
#include "core/log.h"
#include "core/registry.h"
#include "core/stats.h"
#include "core/util.h"
#include "link/autoturn.h"
#include "pop3/pop3_server.h"
#include "pop3_int.h"

#define WORKER_THREADS 4    /* disk reads of many sessions at once */

static struct {
    struct event_base *base;
    struct listener_set *set[2];    /* [0] pop3, [1] pop3s */
    void (*stopped)(void);
    int stopping;                   /* sets not drained yet */
} S;

static const struct listener_info infos[2] = {
    { .proto = "pop3" },
    { .proto = "pop3s", .implicit_tls = 1 },
};

static size_t pop3_refusal(enum listener_refusal why, const struct listener_info *li,
                           const char *peer, char *buf, size_t len, void *arg)
{
    log_warn("pop3: refused connection from %s: too many connections%s", peer,
             why == LISTENER_FULL ? "" : " from this client");
    if (li->implicit_tls)
        return 0;       /* no plaintext line where TLS is expected */
    int n = snprintf(buf, len, "-ERR [SYS/TEMP] Too many connections%s, try again later.\r\n",
                     why == LISTENER_FULL ? "" : " from your address");
    return n < 0 ? 0 : (size_t)n < len ? (size_t)n : len;
}

static int pop3_accept(struct listener_conn *c, void *arg)
{
    int tls = c->info->implicit_tls;
    struct io *io;
    if (tls && !pop3_env.tls) {
        log_warn("pop3s: connection from %s refused: no TLS certificate loaded", c->peer);
        return -1;
    }
    /* a reply is one write; its last small piece must not wait for the
     * client's delayed ACK (Nagle): a RETR's ".\r\n" did, 40 ms each */
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  /* not TCP: fails, harmless */
    io = tls ? io_new_tls_server(S.base, c->fd, pop3_env.tls, NULL, NULL)
             : io_new_nonblocking(S.base, c->fd, NULL, NULL);
    if (!io)
        return -1;
    struct pop3_sess *s = xcalloc(1, sizeof *s);
    s->conn = c;
    c->sess = s;
    s->io = io;
    s->implicit_tls = tls;
    s->cleartext = tls ? pop3_env.cfg->pop3s.cleartext : pop3_env.cfg->pop3.cleartext;
    snprintf(s->peer, sizeof s->peer, "%s", c->peer);
    stats_add(ST_SESSIONS_POP3, 1);
    autoturn_connect(c->info->proto, c->peer);     /* autoturn_networks */
    pop3_sess_start(s);
    return 0;
}

/* The session gave its connection back (listener_conn_close). */
static void pop3_closed(struct listener_conn *c, void *arg)
{
    struct pop3_sess *s = c->sess;
    if (s->drop || s->job != P3_JOB_NONE)
        log_fatal("pop3: session from %s freed holding its maildrop or its work", s->peer);
    free(s);
}

static const struct listener_proto pop3_proto = {
    .name = "pop3",
    .pause_ms = 100,
    .accept = pop3_accept,
    .closed = pop3_closed,
    .refusal = pop3_refusal,
};

int pop3_server_bind(struct event_base *base, const struct config *c, char *err,
                     unsigned long errlen)
{
    const struct pop3_conf *pc[2] = { &c->pop3, &c->pop3s };
    S.base = base;
    pop3_env.base = base;
    for (int k = 0; k < 2; k++) {
        S.set[k] = listener_set_new(base, &pop3_proto, NULL);
        for (size_t i = 0; pc[k]->l.present && i < pc[k]->l.nlisten; i++) {
            struct listener_info info = infos[k];
            info.cleartext = pc[k]->cleartext ? LISTENER_CLEARTEXT_LOGIN : 0;
            if (listener_add_tcp(S.set[k], &pc[k]->l.listen[i], &info, err, errlen) < 0)
                return -1;
            log_info("%s: listening on %s", infos[k].proto, pc[k]->l.listen[i].text);
        }
    }
    return pop3_work_init(base, WORKER_THREADS, err, errlen);
}

/* CAPA's EXPIRE before login (RFC 2449 section 6.7): the shortest time any
 * maildrop keeps retrieved mail, "USER" when it differs between them;
 * NEVER when no maildrop is in keep mode. */
static void expire_auth(const struct registry *r, char *buf, size_t len)
{
    long lo = -1, hi = -1;
    int deletes = 0;
    size_t n = r ? registry_maildrop_count(r) : 0;
    for (size_t i = 0; i < n; i++) {
        struct maildrop_ref ref;
        registry_maildrop_at(r, i, &ref);
        if (ref.mode != MAILDROP_KEEP) {
            deletes = 1;
            continue;
        }
        if (lo < 0 || ref.keep_days < lo)
            lo = ref.keep_days;
        if (ref.keep_days > hi)
            hi = ref.keep_days;
    }
    if (lo < 0)
        snprintf(buf, len, "EXPIRE NEVER");
    else
        snprintf(buf, len, "EXPIRE %ld%s", lo, deletes || lo != hi ? " USER" : "");
}

void pop3_server_configure(const struct config *c, const struct registry *r,
                           struct tls_ctx *tls)
{
    const struct pop3_conf *pc[2] = { &c->pop3, &c->pop3s };
    pop3_env.cfg = c;
    pop3_env.reg = r;
    pop3_env.tls = tls;
    expire_auth(r, pop3_env.expire_auth, sizeof pop3_env.expire_auth);
    for (int k = 0; k < 2; k++) {
        listener_set_limits(S.set[k], pc[k]->max_connections,
                            pc[k]->max_connections_per_client);
        listener_set_enable(S.set[k]);
    }
}

static void set_drained(void *arg)
{
    if (--S.stopping == 0 && S.stopped)
        S.stopped();
}

static void sess_shutdown_one(struct listener_conn *c, void *arg)
{
    pop3_sess_shutdown(c->sess);
}

void pop3_server_shutdown(void (*done)(void))
{
    S.stopped = done;
    pop3_env.stopping = 1;
    S.stopping = 2;
    for (int k = 0; k < 2; k++)
        listener_set_stop(S.set[k], set_drained, NULL);    /* done() once both are empty */
    for (int k = 0; k < 2; k++)
        listener_set_each(S.set[k], sess_shutdown_one, NULL);
}

void pop3_server_free(void)
{
    pop3_work_shutdown();
    for (int k = 0; k < 2; k++) {
        if (S.set[k] && listener_set_conns(S.set[k]) == 0)
            listener_set_free(S.set[k]);
        S.set[k] = NULL;
    }
}

int pop3_server_adopt(int fd, const char *peer, int tls)
{
    return listener_adopt(S.set[tls ? 1 : 0], &infos[tls ? 1 : 0], fd, peer);
}

void pop3_server_set_room_hook(void (*fn)(const char *drop))
{
    pop3_env.room = fn;
}

unsigned pop3_server_sessions(void)
{
    unsigned n = 0;
    for (int k = 0; k < 2; k++)
        n += S.set[k] ? listener_set_conns(S.set[k]) : 0;
    return n;
}

unsigned long pop3_server_works(void)
{
    return pop3_work_submitted();
}

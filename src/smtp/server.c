/*
 * server — the SMTP listeners, on the listener layer: binds the `smtp`,
 * `submission` (STARTTLS and AUTH required before MAIL) and `smtps`
 * (implicit TLS, AUTH required) sections' addresses in one set, sets the
 * smtp section's max_connections and max_connections_per_client on them (a
 * connection over a limit gets 421 4.7.0 before any session exists; an
 * smtps one is closed), tells each session its listener's AUTH policy,
 * and the `odmr` section's addresses in a set of their own, under the odmr
 * section's connection limits (sessions that take no mail: odmr.c), creates a session for each accepted connection and frees it
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
#include <string.h>

#include "core/config.h"
#include "core/io.h"
#include "core/listener.h"
#include "core/log.h"
#include "core/stats.h"
#include "core/util.h"
#include "link/autoturn.h"
#include "smtp/smtp_server.h"
#include "smtp_int.h"

static struct {
    struct event_base *base;
    struct listener_set *set;
    struct listener_set *odmr;      /* the odmr section's listeners */
    int running;                    /* sets not yet drained at shutdown */
    void (*stopped)(void);
} S;

static const struct listener_info smtp_info = { .proto = "smtp" };
static const struct listener_info submission_info = { .proto = "submission",
                                                      .auth_required = 1 };
static const struct listener_info smtps_info = { .proto = "smtps", .implicit_tls = 1,
                                                 .auth_required = 1 };
static const struct listener_info odmr_info = { .proto = "odmr", .auth_required = 1 };

static size_t smtp_refusal(enum listener_refusal why, const struct listener_info *li,
                           const char *peer, char *buf, size_t len, void *arg)
{
    const char *text = "too many connections";
    if (li->implicit_tls) {
        log_warn("refused connection from %s: too many connections%s", peer,
                 why == LISTENER_FULL ? "" : " from this client");
        return 0;       /* no plaintext line where TLS is expected */
    }
    if (why == LISTENER_FULL) {
        log_warn("refused connection from %s: too many connections", peer);
    } else {
        log_warn("refused connection from %s: too many connections from this client", peer);
        text = "too many connections from your host";
    }
    int n = snprintf(buf, len, "421 4.7.0 %s Error: %s\r\n", smtp_env.cfg->hostname, text);
    return n < 0 ? 0 : (size_t)n < len ? (size_t)n : len;
}

/* The AUTH policy of the listener li under the configuration now. */
static void sess_policy(struct smtp_sess *s, const struct listener_info *li)
{
    const struct config *cfg = smtp_env.cfg;
    if (!strcmp(li->proto, "odmr")) {
        s->odmr = 1;                    /* CRAM-MD5 always, the rest after TLS */
        s->auth_listener = 1;
        s->auth_cleartext = cfg->odmr.auth_cleartext;
        s->auth_cram_cleartext = 1;
        s->require = SMTP_NEED_AUTH;
    } else if (!strcmp(li->proto, "submission")) {
        s->auth_listener = 1;
        s->auth_cleartext = cfg->submission.auth_cleartext;
        s->require = SMTP_NEED_AUTH | (s->auth_cleartext ? 0 : SMTP_NEED_TLS);
    } else if (li->implicit_tls) {
        s->auth_listener = 1;
        s->require = SMTP_NEED_AUTH;
    } else {
        s->auth_listener = cfg->smtp.auth;
        s->auth_cleartext = cfg->smtp.auth_cleartext;
    }
}

static int smtp_accept(struct listener_conn *c, void *arg)
{
    int tls = c->info->implicit_tls;
    if (tls && !smtp_env.tls) {
        log_warn("smtps: connection from %s refused: no TLS certificate loaded", c->peer);
        return -1;
    }
    struct io *io = tls ? io_new_tls_server(S.base, c->fd, smtp_env.tls, NULL, NULL)
                        : io_new_nonblocking(S.base, c->fd, NULL, NULL);  /* accept4(SOCK_NONBLOCK) */
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
    sess_policy(s, c->info);
    stats_add(ST_SESSIONS_SMTP, 1);
    autoturn_connect(c->info->proto, c->peer);     /* autoturn_networks */
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
    const struct listener_conf *l[3] = { &c->smtp.l, &c->submission.l, &c->smtps.l };
    const struct listener_info *info[3] = { &smtp_info, &submission_info, &smtps_info };
    S.base = base;
    smtp_env.base = base;
    S.set = listener_set_new(base, &smtp_proto, NULL);
    for (int k = 0; k < 3; k++) {
        for (size_t i = 0; l[k]->present && i < l[k]->nlisten; i++) {
            if (listener_add_tcp(S.set, &l[k]->listen[i], info[k], err, errlen) < 0)
                return -1;
            log_info("%s: listening on %s", info[k]->proto, l[k]->listen[i].text);
        }
    }
    S.odmr = listener_set_new(base, &smtp_proto, NULL);
    for (size_t i = 0; c->odmr.l.present && i < c->odmr.l.nlisten; i++) {
        if (listener_add_tcp(S.odmr, &c->odmr.l.listen[i], &odmr_info, err, errlen) < 0)
            return -1;
        log_info("odmr: listening on %s", c->odmr.l.listen[i].text);
    }
    return 0;
}

void smtp_server_configure(const struct config *c, const struct registry *r,
                           struct tls_ctx *tls)
{
    smtp_env.cfg = c;
    smtp_env.reg = r;
    smtp_env.tls = tls;
    if (c->submission.l.present && !tls && !c->submission.auth_cleartext)
        log_warn("submission: no tls section: STARTTLS is not offered, so nobody can "
                 "authenticate and send here (add a tls section, or auth_cleartext = true)");
    if (c->smtp.l.present && c->smtp.auth && !tls && !c->smtp.auth_cleartext)
        log_warn("smtp: auth = true but no tls section: AUTH is never offered on port 25 "
                 "(add a tls section, or auth_cleartext = true)");
    listener_set_limits(S.set, c->smtp.max_connections, c->smtp.max_connections_per_client);
    listener_set_enable(S.set);
    listener_set_limits(S.odmr, c->odmr.max_connections, c->odmr.max_connections_per_client);
    listener_set_enable(S.odmr);
}

static void smtp_drained(void *arg)
{
    if (--S.running == 0)
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
    S.running = 2;
    listener_set_stop(S.set, smtp_drained, NULL);     /* done() once none is left */
    listener_set_stop(S.odmr, smtp_drained, NULL);
    listener_set_each(S.set, sess_shutdown_one, NULL);
    listener_set_each(S.odmr, sess_shutdown_one, NULL);
}

int smtp_server_adopt(int fd, const char *peer)
{
    return listener_adopt(S.set, &smtp_info, fd, peer);
}

unsigned smtp_server_sessions(void)
{
    return (S.set ? listener_set_conns(S.set) : 0) + (S.odmr ? listener_set_conns(S.odmr) : 0);
}

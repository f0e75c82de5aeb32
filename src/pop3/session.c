/*
 * session — one POP3 server session (RFC 1939 with RFC 2449 CAPA, RFC 2595
 * STLS, RFC 5034 AUTH PLAIN, RFC 3206 response codes): reading command
 * lines, the command table, and pop3_enter_state(), through which every
 * state change passes.  The commands themselves are in login.c
 * (AUTHORIZATION) and drop.c (TRANSACTION, UPDATE).  Everything from the
 * peer is untrusted: a command line is at most POP3_LINE_MAX octets (longer
 * ones are discarded up to their LF and answered once), 20 bad commands end
 * the session, the autologout timer (the section's timeout, 600 s by
 * default, the RFC 1939 minimum) ends an idle one.  Guarantees: commands
 * are answered strictly in order (pipelining: while work is in flight, or
 * the replies back up, no further line is read and input is bounded; only
 * RETR and TOP lines already received are taken ahead, a bounded number,
 * to be read together: pop3_sess_take_line); after
 * STLS nothing received before the handshake is used; a session that ends
 * other than by QUIT in TRANSACTION deletes nothing.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "core/io.h"
#include "core/listener.h"
#include "core/log.h"
#include "core/util.h"
#include "pop3_int.h"

#define MAX_BAD_COMMANDS 20         /* as Dovecot and Postfix */
#define OUT_HIGH_WATER (256 * 1024) /* stop reading while this much is unsent */
#define IN_HIGH_WATER (64 * 1024)   /* stop reading while this much waits unread */

struct pop3_env pop3_env;

static void sess_on_io(struct io *io, enum io_event ev, void *arg);
static void sess_process(struct pop3_sess *s);

void pop3_reply(struct pop3_sess *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    evbuffer_add_vprintf(s->out, fmt, ap);
    va_end(ap);
    evbuffer_add(s->out, "\r\n", 2);
}

int pop3_sess_tls(const struct pop3_sess *s)
{
    return s->io && io_is_tls(s->io);
}

/* ---- states ---- */

static const char *const state_names[P3_NSTATES] = {
    [P3_AUTH] = "AUTHORIZATION", [P3_SASL] = "SASL", [P3_CHECK] = "CHECK",
    [P3_LOAD] = "LOAD", [P3_TRANS] = "TRANSACTION", [P3_SEND] = "SEND",
    [P3_UPDATE] = "UPDATE", [P3_TLS] = "TLS", [P3_CLOSING] = "CLOSING",
};

/* The moves allowed.  AUTHORIZATION -> TRANSACTION only through CHECK (the
 * password) and LOAD (the listing); UPDATE only from TRANSACTION (QUIT). */
static const unsigned state_next[P3_NSTATES] = {
    [P3_AUTH] = P3_BIT(P3_SASL) | P3_BIT(P3_CHECK) | P3_BIT(P3_TLS) | P3_BIT(P3_CLOSING),
    [P3_SASL] = P3_BIT(P3_AUTH) | P3_BIT(P3_CHECK) | P3_BIT(P3_CLOSING),
    [P3_CHECK] = P3_BIT(P3_AUTH) | P3_BIT(P3_LOAD) | P3_BIT(P3_CLOSING),
    [P3_LOAD] = P3_BIT(P3_TRANS) | P3_BIT(P3_CLOSING),
    [P3_TRANS] = P3_BIT(P3_SEND) | P3_BIT(P3_UPDATE) | P3_BIT(P3_CLOSING),
    [P3_SEND] = P3_BIT(P3_TRANS) | P3_BIT(P3_CLOSING),
    [P3_UPDATE] = P3_BIT(P3_CLOSING),
    [P3_TLS] = P3_BIT(P3_AUTH) | P3_BIT(P3_CLOSING),
    [P3_CLOSING] = 0,
};

/* The states in which command lines are read. */
#define P3_READING (P3_BIT(P3_AUTH) | P3_BIT(P3_SASL) | P3_BIT(P3_TRANS))

/* The one place a session changes state.  Entering TLS or CLOSING stops
 * reading (nothing more is read in plaintext; the last reply is queued and
 * its drain closes the session); entering AUTHORIZATION after TLS forgets
 * the USER name given before. */
void pop3_enter_state(struct pop3_sess *s, enum pop3_state st)
{
    if (!(state_next[s->state] & P3_BIT(st)))
        log_fatal("pop3: session from %s: no move from state %s to %s", s->peer,
                  state_names[s->state], state_names[st]);
    log_debug("pop3: session from %s: %s -> %s", s->peer, state_names[s->state],
              state_names[st]);
    enum pop3_state from = s->state;
    s->state = st;
    switch (st) {
    case P3_AUTH:
        if (from == P3_TLS) {
            free(s->user);
            s->user = NULL;
        }
        break;
    case P3_TLS:
    case P3_CLOSING:
        if (s->io)
            io_pause(s->io);
        break;
    default:
        break;
    }
}

/* ---- ending ---- */

static void sess_free(struct pop3_sess *s)
{
    pop3_login_free(s);
    pop3_drop_close(s);
    if (s->fd >= 0)
        close(s->fd);
    if (s->dirfd >= 0)
        close(s->dirfd);
    free(s->chunk);
    free(s->sendq);
    if (s->sendbuf)
        evbuffer_free(s->sendbuf);
    if (s->out)
        evbuffer_free(s->out);
    if (s->io)
        io_free(s->io);
    s->io = NULL;
    listener_conn_close(s->conn);       /* server.c frees s */
}

static void sess_log_end(const struct pop3_sess *s, const char *why)
{
    if (s->drop)
        log_info("pop3: logout user=<%s> client=%s retrieved=%u deleted=%u bytes=%llu%s%s",
                 s->drop, s->peer, s->n_retrieved, s->n_deleted,
                 (unsigned long long)s->n_bytes, why ? " reason=" : "", why ? why : "");
    else
        log_info("pop3: disconnect from %s%s%s", s->peer, why ? " reason=" : "",
                 why ? why : "");
}

/* Closes now (unsent replies are lost).  With work in flight the session
 * is freed when the work ends; gone during UPDATE, its logout line is
 * written then, with the deletions made. */
static void sess_close(struct pop3_sess *s, const char *why)
{
    if (s->dead)
        return;
    if (s->job == P3_JOB_UPDATE) {
        snprintf(s->gone_why, sizeof s->gone_why, "%s", why ? why : "");
        s->log_pending = 1;
    } else {
        sess_log_end(s, why);
    }
    if (s->job != P3_JOB_NONE) {
        s->dead = 1;
        io_free(s->io);
        s->io = NULL;
        return;
    }
    sess_free(s);
}

void pop3_sess_abort(struct pop3_sess *s, const char *why)
{
    sess_close(s, why);
}

int pop3_sess_work_ended(struct pop3_sess *s)
{
    s->job = P3_JOB_NONE;
    if (!s->dead)
        return 0;
    if (s->log_pending)
        sess_log_end(s, s->gone_why[0] ? s->gone_why : NULL);
    sess_free(s);
    return 1;
}

void pop3_sess_finish(struct pop3_sess *s, const char *why)
{
    s->close_why = why;
    pop3_enter_state(s, P3_CLOSING);
}

void pop3_bad_command(struct pop3_sess *s)
{
    if (++s->bad >= MAX_BAD_COMMANDS && s->state != P3_CLOSING) {
        pop3_reply(s, "-ERR Too many bad commands, closing the connection.");
        log_warn("pop3: too many bad commands from %s", s->peer);
        pop3_sess_finish(s, "too many bad commands");
    }
}

/* ---- the commands answered here ---- */

static void cmd_noop(struct pop3_sess *s, const struct pop3_cmd *c)
{
    pop3_reply(s, "+OK");
}

static void cmd_quit(struct pop3_sess *s, const struct pop3_cmd *c)
{
    if (s->state == P3_TRANS) {
        pop3_cmd_quit_trans(s, c);     /* UPDATE, then the reply and the close */
        return;
    }
    pop3_reply(s, "+OK Logging out.");
    pop3_sess_finish(s, NULL);
}

/* RFC 2449 section 6: what this session can do now. */
static void cmd_capa(struct pop3_sess *s, const struct pop3_cmd *c)
{
    int tls = pop3_sess_tls(s);
    int plain = pop3_plaintext_ok(tls, s->cleartext, s->peer);
    char buf[64];
    pop3_reply(s, "+OK Capability list follows");
    pop3_reply(s, "TOP");
    pop3_reply(s, "UIDL");
    pop3_reply(s, "RESP-CODES");
    pop3_reply(s, "AUTH-RESP-CODE");
    pop3_reply(s, "PIPELINING");
    if (s->state == P3_AUTH) {
        if (plain) {
            pop3_reply(s, "USER");
            pop3_reply(s, "SASL PLAIN");
        }
        if (pop3_env.tls && !tls)
            pop3_reply(s, "STLS");
        pop3_reply(s, "%s", pop3_env.expire_auth);
        pop3_reply(s, "LOGIN-DELAY 0");
    } else {
        pop3_reply(s, "EXPIRE %s", pop3_drop_expire(s, buf, sizeof buf));
        pop3_reply(s, "LOGIN-DELAY 0");
    }
    pop3_reply(s, "IMPLEMENTATION kickmail");
    pop3_reply(s, ".");
}

static void cmd_stls(struct pop3_sess *s, const struct pop3_cmd *c)
{
    if (pop3_sess_tls(s)) {
        pop3_reply(s, "-ERR TLS is already active.");
        pop3_bad_command(s);
        return;
    }
    if (!pop3_env.tls) {
        pop3_reply(s, "-ERR TLS is not available.");
        pop3_bad_command(s);
        return;
    }
    pop3_reply(s, "+OK Begin TLS negotiation now.");
    pop3_enter_state(s, P3_TLS);       /* nothing more is read in plaintext */
}

/* The STLS reply is written out: the handshake starts. */
static void sess_tls_switch(struct pop3_sess *s)
{
    long dropped = io_starttls_server(s->io, pop3_env.tls);
    if (dropped < 0) {
        log_warn("pop3: STLS setup failed for %s", s->peer);
        sess_close(s, "STLS failed");
        return;
    }
    if (dropped > 0)
        log_warn("pop3: %s: discarded %ld bytes received in plaintext after STLS",
                 s->peer, dropped);
    pop3_enter_state(s, P3_AUTH);
    io_resume(s->io);
}

/* ---- the command table ---- */

/* One row: in which states a command runs (P3_AUTH, P3_TRANS bits), how
 * many arguments it takes, and what does it.  A command in another state,
 * or with another number of arguments, is refused by the table (a bad
 * command); the handler checks the arguments' meaning. */
struct pop3_command {
    enum pop3_verb verb;
    unsigned states;
    unsigned minargs, maxargs;
    pop3_handler *proceed;
};

#define AUTH_ONLY   P3_BIT(P3_AUTH)
#define TRANS_ONLY  P3_BIT(P3_TRANS)
#define BOTH        (P3_BIT(P3_AUTH) | P3_BIT(P3_TRANS))

static const struct pop3_command commands[] = {
    { POP3_V_USER, AUTH_ONLY, 1, 1, pop3_cmd_user },
    { POP3_V_PASS, AUTH_ONLY, 0, 1, pop3_cmd_pass },
    { POP3_V_APOP, AUTH_ONLY, 2, 2, pop3_cmd_apop },
    { POP3_V_AUTH, AUTH_ONLY, 0, 2, pop3_cmd_auth },
    { POP3_V_STLS, AUTH_ONLY, 0, 0, cmd_stls },
    { POP3_V_CAPA, BOTH, 0, 0, cmd_capa },
    { POP3_V_QUIT, BOTH, 0, 0, cmd_quit },
    { POP3_V_STAT, TRANS_ONLY, 0, 0, pop3_cmd_stat },
    { POP3_V_LIST, TRANS_ONLY, 0, 1, pop3_cmd_list },
    { POP3_V_UIDL, TRANS_ONLY, 0, 1, pop3_cmd_uidl },
    { POP3_V_RETR, TRANS_ONLY, 1, 1, pop3_cmd_retr },
    { POP3_V_TOP, TRANS_ONLY, 2, 2, pop3_cmd_top },
    { POP3_V_DELE, TRANS_ONLY, 1, 1, pop3_cmd_dele },
    { POP3_V_RSET, TRANS_ONLY, 0, 0, pop3_cmd_rset },
    { POP3_V_NOOP, TRANS_ONLY, 0, 0, cmd_noop },
};

static const struct pop3_command *command_find(enum pop3_verb v)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (commands[i].verb == v)
            return &commands[i];
    return NULL;
}

static void sess_command(struct pop3_sess *s, const char *line, size_t len)
{
    struct pop3_cmd c;
    enum pop3_parse_result rc = pop3_parse_command(line, len, &c);
    const struct pop3_command *row = rc == POP3_PARSE_OK ? command_find(c.verb) : NULL;
    if (rc == POP3_PARSE_ARG_TOO_LONG) {
        pop3_reply(s, "-ERR Argument too long.");
    } else if (rc == POP3_PARSE_BAD_BYTE) {
        pop3_reply(s, "-ERR Invalid characters in the command.");
    } else if (!row) {
        pop3_reply(s, "-ERR Unknown command.");
    } else if (!(row->states & P3_BIT(s->state))) {
        pop3_reply(s, s->state == P3_AUTH ? "-ERR Log in first: %s is for logged-in users."
                                          : "-ERR Already logged in: %s is not valid now.",
                   c.name);
    } else if (c.nargs < row->minargs || c.nargs > row->maxargs) {
        pop3_reply(s, "-ERR Invalid arguments for %s.", c.name);
    } else {
        row->proceed(s, &c);
        return;
    }
    pop3_bad_command(s);
}

/* ---- input ---- */

/* A line over POP3_LINE_MAX: answered once.  In SASL it is the response
 * refused: the exchange is over (RFC 5034: "-ERR" ends it), so the next
 * line is a command again, as the client takes it. */
static void line_too_long(struct pop3_sess *s)
{
    pop3_reply(s, "-ERR Line too long.");
    if (s->state == P3_SASL)
        pop3_enter_state(s, P3_AUTH);
    pop3_bad_command(s);
}

/* Reads one line; 1 when one was handled, 0 when more input is needed. */
static int sess_line(struct pop3_sess *s)
{
    struct evbuffer *in = io_in(s->io);
    size_t avail = evbuffer_get_length(in);
    struct evbuffer_ptr eol = evbuffer_search(in, "\n", 1, NULL);
    if (eol.pos < 0) {
        if (avail >= POP3_LINE_MAX) {
            evbuffer_drain(in, avail);
            if (!s->skipping)
                line_too_long(s);
            s->skipping = 1;
            return s->state != P3_CLOSING;
        }
        return 0;
    }
    size_t n = (size_t)eol.pos + 1;
    if (s->skipping || n > POP3_LINE_MAX) {
        evbuffer_drain(in, n);
        if (!s->skipping)
            line_too_long(s);
        s->skipping = 0;
        return 1;
    }
    char *line = (char *)evbuffer_pullup(in, (ssize_t)n);
    size_t len = n - 1;
    if (len && line[len - 1] == '\r')
        len--;
    char *copy = xstrndup(line, len);
    evbuffer_drain(in, n);
    if (s->state == P3_SASL)
        pop3_sasl_line(s, copy, len);
    else
        sess_command(s, copy, len);
    explicit_bzero(copy, len);          /* it may hold a password */
    free(copy);
    return 1;
}

#define TAKE_LINE_MAX 64    /* longer lines are never RETR or TOP worth taking */

int pop3_sess_take_line(struct pop3_sess *s,
                        int (*take)(struct pop3_sess *s, const struct pop3_cmd *c))
{
    char line[TAKE_LINE_MAX];
    struct pop3_cmd c;
    if (!s->io || s->skipping)
        return 0;
    struct evbuffer *in = io_in(s->io);
    ev_ssize_t got = evbuffer_copyout(in, line, sizeof line);
    const char *nl = got > 0 ? memchr(line, '\n', (size_t)got) : NULL;
    if (!nl)
        return 0;
    size_t n = (size_t)(nl - line) + 1, len = n - 1;
    if (len && line[len - 1] == '\r')
        len--;
    if (pop3_parse_command(line, len, &c) != POP3_PARSE_OK || !take(s, &c))
        return 0;
    evbuffer_drain(in, n);
    return 1;
}

/* Reading stops while the replies back up, or while work is in flight and
 * input piles up (TLS streams do not bound their input themselves). */
static void sess_update_pause(struct pop3_sess *s)
{
    if (!s->io || s->state == P3_TLS || s->state == P3_CLOSING)
        return;
    int busy = !(P3_BIT(s->state) & P3_READING);
    int want = io_out_pending(s->io) + evbuffer_get_length(s->out) > OUT_HIGH_WATER ||
               (busy && evbuffer_get_length(io_in(s->io)) > IN_HIGH_WATER);
    if (want && !s->paused)
        io_pause(s->io);
    else if (!want && s->paused)
        io_resume(s->io);
    s->paused = want;
}

/* Hands the queued replies to the io layer; when they went out at once,
 * acts on the drain now.  May free s: call it last. */
static void sess_flush(struct pop3_sess *s)
{
    if (!s->io)
        return;
    if (evbuffer_get_length(s->out) == 0) {
        if (s->state == P3_CLOSING && (io_out_pending(s->io) == 0 || io_cannot_send(s->io)))
            sess_close(s, s->close_why);
        return;
    }
    if (io_send(s->io, s->out))
        sess_on_io(s->io, IO_DRAINED, s);
}

static void sess_process(struct pop3_sess *s)
{
    while (s->io && (P3_BIT(s->state) & P3_READING)) {
        if (io_out_pending(s->io) + evbuffer_get_length(s->out) > OUT_HIGH_WATER)
            break;          /* the rest waits until the replies drain */
        if (!sess_line(s))
            break;
    }
    if (!s->io)
        return;
    if (s->eof && (P3_BIT(s->state) & P3_READING) &&
        evbuffer_search(io_in(s->io), "\n", 1, NULL).pos < 0)
        pop3_sess_finish(s, "lost connection");    /* half-closed: answered, then closed */
    sess_update_pause(s);
    sess_flush(s);
}

void pop3_sess_resume(struct pop3_sess *s)
{
    sess_process(s);
}

static void sess_on_io(struct io *io, enum io_event ev, void *arg)
{
    struct pop3_sess *s = arg;
    switch (ev) {
    case IO_READ:
        sess_process(s);
        break;
    case IO_DRAINED:
        if (s->state == P3_CLOSING) {
            sess_close(s, s->close_why);
        } else if (s->state == P3_TLS) {
            sess_tls_switch(s);
        } else if (s->state == P3_SEND) {
            sess_update_pause(s);
            pop3_drop_send_more(s);
        } else {
            sess_process(s);
        }
        break;
    case IO_TLS_DONE: {
        char buf[128];
        log_info("pop3: TLS established with %s: %s", s->peer, io_tls_info(io, buf, sizeof buf));
        break;
    }
    case IO_TIMEOUT:
        if (s->state == P3_CHECK || s->state == P3_LOAD || s->state == P3_UPDATE)
            break;          /* work in flight: its end answers */
        if (s->state == P3_CLOSING || s->state == P3_SEND || s->state == P3_TLS) {
            sess_close(s, "timeout");   /* output makes no progress */
            break;
        }
        pop3_reply(s, "-ERR Disconnected for inactivity.");
        pop3_sess_finish(s, "autologout");
        sess_flush(s);
        break;
    case IO_EOF:
        s->eof = 1;
        if (s->state == P3_CLOSING) {
            if (io_out_pending(s->io) == 0 || io_cannot_send(s->io))
                sess_close(s, s->close_why);
            break;
        }
        if (P3_BIT(s->state) & P3_READING)
            sess_process(s);    /* answer what was sent, then close */
        break;                  /* otherwise the work's end looks at eof */
    case IO_ERROR:
        sess_close(s, io_error(io));
        break;
    default:
        break;
    }
}

void pop3_sess_start(struct pop3_sess *s)
{
    s->fd = -1;
    s->dirfd = -1;
    s->state = P3_AUTH;
    s->out = evbuffer_new();
    io_set_cb(s->io, sess_on_io, s);
    io_set_timeout(s->io, (int)(s->implicit_tls ? pop3_env.cfg->pop3s.timeout
                                                : pop3_env.cfg->pop3.timeout));
    log_info("pop3: connect from %s tls=%s", s->peer, s->implicit_tls ? "yes" : "no");
    const struct pop3_conf *pc = s->implicit_tls ? &pop3_env.cfg->pop3s : &pop3_env.cfg->pop3;
    if (pc->apop)
        snprintf(s->banner, sizeof s->banner, "<%ld.%08lx.%lld@%s>", (long)getpid(),
                 (unsigned long)random(), (long long)util_now_us(), pop3_env.cfg->hostname);
    pop3_reply(s, "+OK kickmail POP3 server ready.%s%s", s->banner[0] ? " " : "", s->banner);
    sess_flush(s);
}

void pop3_sess_shutdown(struct pop3_sess *s)
{
    if (s->dead || s->state == P3_CLOSING || s->state == P3_UPDATE)
        return;         /* closing anyway; an UPDATE finishes first */
    if (s->job != P3_JOB_NONE || !(P3_BIT(s->state) & P3_READING)) {
        sess_close(s, "shutdown");      /* freed when its work ends */
        return;
    }
    pop3_reply(s, "-ERR [SYS/TEMP] Server shutting down.");
    pop3_sess_finish(s, "shutdown");
    sess_flush(s);
}

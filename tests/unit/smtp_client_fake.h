/*
 * smtp_client_fake — the scripted fake SMTP server and the client's owner
 * used by test_smtp_client.c and test_smtp_client_fail.c (see the former's
 * opening comment for how scripts work).  Header-only: each test program
 * includes it once and uses what it needs.
 */
#ifndef KM_TEST_SMTP_CLIENT_FAKE_H
#define KM_TEST_SMTP_CLIENT_FAKE_H

#pragma GCC diagnostic ignored "-Wunused-function"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/event.h>

#include "io.h"
#include "log.h"
#include "smtp_client.h"
#include "tls.h"

#include "net_fixture.h"        /* listen_loopback, the test certificate */

#define MAXLINES 64
#define MAXBODIES 8

#define BANNER "220 mx.acme.example ESMTP fake\r\n"
#define EHLO_PIPE "250-mx.acme.example\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n" \
                  "250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n"
#define EHLO_PLAIN "250-mx.acme.example\r\n250-SIZE 10240000\r\n250 ENHANCEDSTATUSCODES\r\n"
#define LOST "lost connection with 127.0.0.1[127.0.0.1] while "

/* ---- the fake server ---------------------------------------------------- */

enum act { A_NONE, A_CLOSE, A_HANG, A_TLS, A_ABORT };

struct step {
    const char *expect;
    const char *reply;
    enum act act;
};

struct fake {
    struct event_base *base;
    int lfd, port;
    struct event *lev;
    struct io *io;
    const struct step *script;
    size_t nsteps, pos;
    struct tls_ctx *tls;
    int drip;                       /* replies one byte per write */
    struct evbuffer *dripq;
    enum act pending;               /* after the output drained */
    int hung, accepted, closed, failed;
    int sink;                       /* after A_ABORT: swallow all input */
    char err[512];
    struct evbuffer *data;          /* DATA being received */
    size_t scanned;
    char *bodies[MAXBODIES];
    size_t bodylen[MAXBODIES];
    int nbodies;
    char *lines[MAXLINES];
    size_t backlog[MAXLINES];
    int nlines;
    struct smtp_client **client;    /* for A_ABORT */
};

static void fake_fail(struct fake *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fake_fail(struct fake *f, const char *fmt, ...)
{
    va_list ap;
    if (f->failed)
        return;
    f->failed = 1;
    va_start(ap, fmt);
    vsnprintf(f->err, sizeof f->err, fmt, ap);
    va_end(ap);
}

static void fake_close(struct fake *f)
{
    if (f->io)
        io_free(f->io);
    f->io = NULL;
    f->closed = 1;
}

static void fake_send(struct fake *f, const char *text)
{
    if (!f->drip) {
        io_write(f->io, text, strlen(text));
        return;
    }
    evbuffer_add(f->dripq, text, strlen(text));
    if (io_out_pending(f->io) == 0)
        evbuffer_remove_buffer(f->dripq, io_out(f->io), 1);
}

/* Sends the reply of a step and arms its action. */
static void fake_act(struct fake *f, const struct step *s)
{
    if (s->act == A_HANG) {
        f->hung = 1;
        return;
    }
    if (s->reply)
        fake_send(f, s->reply);
    if (s->act == A_CLOSE && !s->reply)
        fake_close(f);
    else if (s->act == A_CLOSE || s->act == A_TLS)
        f->pending = s->act;
}

/* Collects message data; 1 when the dot came (step done). */
static int fake_data(struct fake *f, const struct step *s)
{
    struct evbuffer *in = io_in(f->io);
    size_t end;
    if (s->act == A_ABORT) {
        if (evbuffer_get_length(in) == 0)
            return 0;
        evbuffer_drain(in, evbuffer_get_length(in));
        f->pos = f->nsteps;
        f->sink = 1;
        smtp_client_abort(*f->client, "link went down during delivery");
        return 0;
    }
    evbuffer_add_buffer(f->data, in);
    size_t len = evbuffer_get_length(f->data);
    if (len >= 3 && memcmp(evbuffer_pullup(f->data, 3), ".\r\n", 3) == 0) {
        end = 0;
    } else {
        struct evbuffer_ptr from;
        evbuffer_ptr_set(f->data, &from, f->scanned > 4 ? f->scanned - 4 : 0,
                         EVBUFFER_PTR_SET);
        struct evbuffer_ptr e = evbuffer_search(f->data, "\r\n.\r\n", 5, &from);
        if (e.pos < 0) {
            f->scanned = len;
            return 0;
        }
        end = (size_t)e.pos + 2;
    }
    if (f->nbodies < MAXBODIES) {
        char *b = malloc(end + 1);
        evbuffer_remove(f->data, b, end);
        b[end] = 0;
        f->bodylen[f->nbodies] = end;
        f->bodies[f->nbodies++] = b;
    } else {
        evbuffer_drain(f->data, end);
    }
    evbuffer_drain(f->data, 3);
    if (evbuffer_get_length(f->data) > 0)
        fake_fail(f, "bytes after the end of data");
    f->scanned = 0;
    f->pos++;
    fake_act(f, s);
    return 1;
}

static void fake_process(struct fake *f)
{
    while (f->io && !f->hung && f->pending == A_NONE) {
        struct evbuffer *in = io_in(f->io);
        if (f->sink) {
            evbuffer_drain(in, evbuffer_get_length(in));
            return;
        }
        if (f->pos >= f->nsteps) {
            if (evbuffer_get_length(in) > 0) {
                char *l = evbuffer_readln(in, NULL, EVBUFFER_EOL_CRLF);
                fake_fail(f, "input after the end of the script: \"%s\"", l ? l : "?");
                free(l);
                evbuffer_drain(in, evbuffer_get_length(in));
            }
            return;
        }
        const struct step *s = &f->script[f->pos];
        if (s->expect && strcmp(s->expect, "<DATA>") == 0) {
            if (!fake_data(f, s))
                return;
            continue;
        }
        size_t n;
        char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF_STRICT);
        if (!line)
            return;
        if (f->nlines < MAXLINES) {
            f->backlog[f->nlines] = evbuffer_get_length(in);
            f->lines[f->nlines++] = strdup(line);
        }
        if (!s->expect || strncmp(line, s->expect, strlen(s->expect)) != 0)
            fake_fail(f, "step %zu: expected \"%s\", got \"%s\"", f->pos,
                      s->expect ? s->expect : "(nothing)", line);
        free(line);
        f->pos++;
        fake_act(f, s);
    }
}

static void fake_drained(struct fake *f)
{
    if (f->drip && evbuffer_get_length(f->dripq) > 0) {
        evbuffer_remove_buffer(f->dripq, io_out(f->io), 1);
        return;
    }
    if (f->pending == A_CLOSE) {
        fake_close(f);
    } else if (f->pending == A_TLS) {
        f->pending = A_NONE;
        if (io_starttls_server(f->io, f->tls) < 0)
            fake_fail(f, "io_starttls_server failed");
    }
}

static void fake_on_io(struct io *io, enum io_event ev, void *arg)
{
    struct fake *f = arg;
    switch (ev) {
    case IO_READ:
        fake_process(f);
        break;
    case IO_DRAINED:
        fake_drained(f);
        break;
    case IO_TLS_DONE:
    case IO_CONNECTED:
        break;
    case IO_EOF:
    case IO_ERROR:
    case IO_TIMEOUT:
        fake_close(f);
        break;
    }
}

static void fake_accept(evutil_socket_t lfd, short what, void *arg)
{
    struct fake *f = arg;
    int fd = accept(lfd, NULL, NULL);
    if (fd < 0)
        return;
    if (f->accepted) {
        fake_fail(f, "a second connection");
        close(fd);
        return;
    }
    f->accepted = 1;
    f->io = io_new(f->base, fd, fake_on_io, f);
    if (f->nsteps > 0 && !f->script[0].expect) {
        f->pos = 1;
        fake_act(f, &f->script[0]);
    }
}

static void fake_start(struct fake *f, struct event_base *base, const struct step *script,
                       size_t nsteps)
{
    memset(f, 0, sizeof *f);
    f->base = base;
    f->script = script;
    f->nsteps = nsteps;
    f->data = evbuffer_new();
    f->dripq = evbuffer_new();
    f->lfd = listen_loopback(&f->port);
    assert_true(f->lfd >= 0);
    evutil_make_socket_nonblocking(f->lfd);
    f->lev = event_new(base, f->lfd, EV_READ | EV_PERSIST, fake_accept, f);
    event_add(f->lev, NULL);
}

static void fake_free(struct fake *f)
{
    fake_close(f);
    event_free(f->lev);
    close(f->lfd);
    evbuffer_free(f->data);
    evbuffer_free(f->dripq);
    for (int i = 0; i < f->nbodies; i++)
        free(f->bodies[i]);
    for (int i = 0; i < f->nlines; i++)
        free(f->lines[i]);
}

/* ---- the owner ---------------------------------------------------------- */

struct tmsg {
    struct smtp_client_msg m;
    const char *rcpts[8];
    struct smtp_rcpt_result res[8];
};

struct owner {
    struct smtp_client *c;
    struct tmsg *msgs[4];
    size_t nmsgs, next;
    int nready, ndone, nclosed;
    int close_code;
    char close_reason[600];
    int abort_in_ready, abort_in_done, quit_in_done, abort_in_closed;
};

static void o_ready(struct smtp_client *c, void *arg)
{
    struct owner *o = arg;
    o->nready++;
    if (o->abort_in_ready) {
        smtp_client_abort(c, "aborted in ready");
        smtp_client_abort(c, "twice");      /* a no-op */
        return;
    }
    if (o->next < o->nmsgs)
        smtp_client_send(c, &o->msgs[o->next++]->m);
    else
        smtp_client_quit(c);
}

static void o_done(struct smtp_client *c, struct smtp_client_msg *msg, void *arg)
{
    struct owner *o = arg;
    o->ndone++;
    for (size_t i = 0; i < msg->nrcpt; i++)
        assert_non_null(msg->results[i].text);
    if (o->abort_in_done)
        smtp_client_abort(c, "aborted in done");
    if (o->quit_in_done) {
        smtp_client_quit(c);
        smtp_client_quit(c);
    }
}

static void o_closed(struct smtp_client *c, int code, const char *reason, void *arg)
{
    struct owner *o = arg;
    o->nclosed++;
    o->close_code = code;
    snprintf(o->close_reason, sizeof o->close_reason, "%s", reason ? reason : "(null)");
    if (o->abort_in_closed) {
        smtp_client_abort(c, "aborted in closed");  /* a no-op */
        smtp_client_quit(c);
    }
}

static const struct smtp_client_cbs owner_cbs = { o_ready, o_done, o_closed };

static void tmsg_init(struct tmsg *t, const char *sender, const char *r1, const char *r2,
                      const char *r3)
{
    memset(t, 0, sizeof *t);
    t->m.sender = sender;
    t->m.idstr = "TESTID";
    t->rcpts[0] = r1;
    t->rcpts[1] = r2;
    t->rcpts[2] = r3;
    t->m.nrcpt = r3 ? 3 : r2 ? 2 : 1;
    t->m.rcpts = t->rcpts;
    t->m.results = t->res;
    t->m.body = evbuffer_new();
}

static void tmsg_body(struct tmsg *t, const char *body)
{
    evbuffer_add(t->m.body, body, strlen(body));
}

static void tmsg_free(struct tmsg *t)
{
    for (size_t i = 0; i < t->m.nrcpt; i++)
        free(t->res[i].text);
    evbuffer_free(t->m.body);
}

/* ---- running a conversation --------------------------------------------- */

struct run {
    struct event_base *base;
    struct fake f;
    struct owner o;
    struct smtp_client_opts opts;
    int timed_out;
};

static void guard_cb(evutil_socket_t fd, short what, void *arg)
{
    struct run *r = arg;
    r->timed_out = 1;
    event_base_loopbreak(r->base);
}

static void run_init(struct run *r, const struct step *script, size_t nsteps)
{
    memset(r, 0, sizeof *r);
    r->base = event_base_new();
    assert_non_null(r->base);
    fake_start(&r->f, r->base, script, nsteps);
    r->f.client = &r->o.c;
    r->opts.host = "127.0.0.1";
    r->opts.port = r->f.port;
    r->opts.helo_name = "kickmail.test";
    r->opts.tls = SMTPC_TLS_NONE;
}

/* Runs until the client closed and the server saw the end (or 10 s). */
static void run_go(struct run *r)
{
    struct event *guard = evtimer_new(r->base, guard_cb, r);
    struct timeval tv = { 10, 0 };
    evtimer_add(guard, &tv);
    r->o.c = smtp_client_start(r->base, &r->opts, &owner_cbs, &r->o);
    assert_non_null(r->o.c);
    while (!r->timed_out && !(r->o.nclosed && (r->f.closed || !r->f.accepted)))
        event_base_loop(r->base, EVLOOP_ONCE);
    event_free(guard);
    if (r->timed_out)
        fail_msg("conversation did not end (server at step %zu)", r->f.pos);
    assert_int_equal(r->o.nclosed, 1);
}

/* The script was followed to its end without a mismatch. */
static void run_check_script(struct run *r)
{
    if (r->f.failed)
        fail_msg("fake server: %s", r->f.err);
    if (r->f.pos != r->f.nsteps)
        fail_msg("script stopped at step %zu of %zu", r->f.pos, r->f.nsteps);
}

static void run_free(struct run *r)
{
    fake_free(&r->f);
    event_base_free(r->base);
}

#define N_(a) (sizeof(a) / sizeof((a)[0]))

static void assert_result(const struct tmsg *t, size_t i, int code, const char *text)
{
    const struct smtp_rcpt_result *res = &t->res[i];
    if (res->code != code || !res->text || strncmp(res->text, text, strlen(text)) != 0)
        fail_msg("recipient %zu: %d \"%s\", expected %d \"%s...\"", i, res->code,
                 res->text ? res->text : "(null)", code, text);
}

static void assert_closed(const struct run *r, int code, const char *reason)
{
    if (r->o.close_code != code || strncmp(r->o.close_reason, reason, strlen(reason)) != 0)
        fail_msg("closed(%d, \"%s\"), expected (%d, \"%s...\")", r->o.close_code,
                 r->o.close_reason, code, reason);
}


#endif

/*
 * smtp_client_fake — what test_smtp_client.c and test_smtp_client_fail.c
 * share: a scripted fake SMTP server in the same process (a loopback
 * listener on the same event_base, driven through the io layer), the
 * client's owner (its callbacks), and the table driver that turns each row
 * of a test table into one conversation and checks everything the row
 * expects (see "the table driver" below).
 *
 * A script is a list of steps: the command prefix the server expects next
 * (NULL: the banner; "<DATA>": message data up to the dot, captured raw,
 * i.e. still dot-stuffed), the raw reply it sends, and an action (close,
 * hang, switch to TLS, abort the client).  The server also records every
 * command line and how many bytes were already buffered behind it, which
 * shows whether the client pipelined.  Header-only: each test program
 * includes it once.
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

#include "core/io.h"
#include "core/log.h"
#include "core/tls.h"
#include "mta/smtp_client.h"

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

/* ---- one conversation ---------------------------------------------------- */

struct run {
    struct event_base *base;
    struct fake f;
    struct owner o;
    struct smtp_client_opts opts;
    int timed_out;
    int filler;                     /* PEER_SILENT: the connection filling the queue */
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
    r->filler = -1;
    r->base = event_base_new();
    assert_non_null(r->base);
    fake_start(&r->f, r->base, script, nsteps);
    r->f.client = &r->o.c;
    r->opts.host = "127.0.0.1";
    r->opts.port = r->f.port;
    r->opts.helo_name = "kickmail.test";
    r->opts.tls = SMTPC_TLS_NONE;
}

/* The script was followed to its end without a mismatch. */
static void run_check_script(const struct run *r)
{
    if (r->f.failed)
        fail_msg("fake server: %s", r->f.err);
    if (r->f.pos != r->f.nsteps)
        fail_msg("script stopped at step %zu of %zu", r->f.pos, r->f.nsteps);
}

static void run_free(struct run *r)
{
    if (r->filler >= 0)
        close(r->filler);
    fake_free(&r->f);
    event_base_free(r->base);
}

#define N_(a) (sizeof(a) / sizeof((a)[0]))

/* ---- the table driver ----------------------------------------------------- */

/*
 * A test is a row of a table (struct conv_case): what the fake server says
 * (the script), what the owner hands the client, and everything expected
 * after the conversation: the command lines the server read, the message
 * data it received, each recipient's result, how often ready() and done()
 * were called, and what closed() said.  conv_run_group() makes each row a
 * cmocka test of its own name.  Every expected value is always checked: a
 * count not written in the row is expected to be 0.
 */

/* A reply code and its whole text, compared exactly; a text ending in "..."
 * only as a prefix (for a detail the row cannot know, such as an OpenSSL
 * error).  For a recipient, { 0, NULL } means never tried: no result at all. */
struct want {
    int code;
    const char *text;
};

/* One message for the owner to hand over (in order, one per ready()). */
struct msg_case {
    const char *from;                       /* NULL: no message; "" for <> */
    const char *to[3];                      /* 1 to 3 recipients */
    const char *body;                       /* CRLF lines, not stuffed; NULL: empty */
    void (*fill)(struct evbuffer *body);    /* or a body made by code */
    int eightbit;
    struct want want[3];                    /* each recipient's result */
};

/* A command line the server read, i-th in order (0: EHLO or HELO). */
struct sent {
    int i;
    const char *line;       /* NULL, or the whole line, exactly */
    const char *behind;     /* NULL, or what was already buffered behind the
                             * line (its length is checked; "": the client
                             * waited for the reply, i.e. did not pipeline) */
};

/* Whom the client connects to. */
enum peer {
    PEER_SCRIPT,            /* the fake server, playing the script */
    PEER_REFUSED,           /* nobody listens on the fake's port any more */
    PEER_SILENT,            /* the SYN is never answered (accept queue full) */
    PEER_HOST,              /* .host and .port of the row (the fake is not reached) */
};

/* How smtp_client_start() must behave.  Always: closed() is never called
 * from inside it. */
enum start {
    START_OK,               /* a client; closed() comes from the loop, any time */
    START_NULL,             /* refused at once: NULL, and nothing else checked */
    START_FIRST_PASS,       /* closed() comes in the loop's first pass */
    START_ABORT,            /* the owner aborts ("aborted at start") before the
                             * loop runs: closed() at once, and only once */
};

struct conv_case {
    const char *name;
    const struct step *script;              /* set with SCRIPT(...) */
    size_t nsteps;
    /* the server */
    enum peer peer;
    const char *host;
    int port;
    int server_tls;                         /* can do STARTTLS (skip without a cert) */
    int also_dripped;                       /* and again as NAME_dripped, every
                                             * reply one byte per write */
    /* the client */
    enum smtp_client_tls tls;               /* not NONE: with a client context */
    const char *expect_helo;
    int timeout_ms;                         /* scale_timeouts_ms */
    int attach;                             /* smtp_client_attach() on a socket
                                             * connected to the fake, not start */
    enum start start;
    /* the owner */
    struct msg_case msgs[3];
    int abort_in_ready, abort_in_done, quit_in_done, abort_in_closed;
    /* expected */
    struct sent sent[4];
    int nbodies;                            /* message data received (each dot) */
    const char *bodies[3];                  /* ... exactly, still dot-stuffed;
                                             * NULL: checked by .check */
    int nready, ndone;
    struct want closed;                     /* { 0, NULL }: closed cleanly, (0, "QUIT") */
    void (*check)(const struct run *r, const struct tmsg *m);  /* more, in code */
};

/* The steps of a script, in a row: SCRIPT({ NULL, BANNER, A_NONE }, ...). */
#define SCRIPT(...) .script = (const struct step[]){ __VA_ARGS__ }, \
    .nsteps = sizeof((const struct step[]){ __VA_ARGS__ }) / sizeof(struct step)

static void want_check(const char *what, size_t i, int code, const char *text,
                       const struct want *w)
{
    const char *wtext = w->text ? w->text : "(null)";
    size_t n = strlen(wtext);
    if (n >= 3 && strcmp(wtext + n - 3, "...") == 0)
        n -= 3;
    else
        n++;                                /* the whole text, up to its NUL */
    if (code != w->code || strncmp(text ? text : "(null)", wtext, n) != 0)
        fail_msg("%s %zu: %d \"%s\", expected %d \"%s\"", what, i, code,
                 text ? text : "(null)", w->code, wtext);
}

/* The fake's listener is replaced as the row's peer says. */
static void conv_peer(struct run *r, const struct conv_case *c)
{
    struct sockaddr_in sin = { .sin_family = AF_INET };

    if (c->peer == PEER_HOST) {
        r->opts.host = c->host;
        r->opts.port = c->port;
    }
    if (c->peer != PEER_REFUSED && c->peer != PEER_SILENT)
        return;
    event_del(r->f.lev);
    close(r->f.lfd);
    if (c->peer == PEER_REFUSED) {
        r->f.lfd = socket(AF_INET, SOCK_STREAM, 0);     /* for fake_free to close */
        return;
    }
    r->f.lfd = listen_loopback(&r->f.port);             /* never accepted from */
    assert_true(r->f.lfd >= 0);
    assert_int_equal(listen(r->f.lfd, 0), 0);
    r->opts.port = r->f.port;
    r->filler = socket(AF_INET, SOCK_STREAM, 0);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin.sin_port = htons((uint16_t)r->f.port);
    assert_int_equal(connect(r->filler, (struct sockaddr *)&sin, sizeof sin), 0);
}

/* Sets up the run and the owner's messages (tm[3]) from row c. */
static void conv_setup(struct run *r, struct tmsg *tm, const struct conv_case *c, int drip)
{
    char err[256];

    run_init(r, c->script, c->nsteps);
    r->f.drip = drip;
    conv_peer(r, c);
    if (c->server_tls)
        r->f.tls = cert_server_ctx();
    r->opts.tls = c->tls;
    if (c->tls != SMTPC_TLS_NONE) {
        r->opts.tls_ctx = tls_client_ctx(err, sizeof err);
        assert_non_null(r->opts.tls_ctx);
    }
    r->opts.expect_helo = c->expect_helo;
    r->opts.scale_timeouts_ms = c->timeout_ms;
    r->o.abort_in_ready = c->abort_in_ready;
    r->o.abort_in_done = c->abort_in_done;
    r->o.quit_in_done = c->quit_in_done;
    r->o.abort_in_closed = c->abort_in_closed;
    for (size_t k = 0; k < N_(c->msgs) && c->msgs[k].from; k++) {
        const struct msg_case *mc = &c->msgs[k];
        tmsg_init(&tm[k], mc->from, mc->to[0], mc->to[1], mc->to[2]);
        if (mc->body)
            tmsg_body(&tm[k], mc->body);
        if (mc->fill)
            mc->fill(tm[k].m.body);
        tm[k].m.eightbit = mc->eightbit;
        r->o.msgs[r->o.nmsgs++] = &tm[k];
    }
}

/* A connection to the fake, made here (blocking), handed to the client as
 * an already open one (ODMR's way). */
static struct smtp_client *conv_attach(struct run *r)
{
    struct sockaddr_in sin = { .sin_family = AF_INET };
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin.sin_port = htons((uint16_t)r->f.port);
    assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    struct io *io = io_new(r->base, fd, NULL, NULL);
    assert_non_null(io);
    struct smtp_client *c = smtp_client_attach(r->base, io, &r->opts, &owner_cbs, &r->o);
    assert_non_null(c);
    return c;
}

/* Starts the client and runs until it closed and the server saw the end
 * (or 10 s).  0: done; -1: START_NULL, and the client was refused. */
static int conv_go(struct run *r, const struct conv_case *c)
{
    if (c->attach)
        r->o.c = conv_attach(r);
    else
        r->o.c = smtp_client_start(r->base, &r->opts, &owner_cbs, &r->o);
    assert_int_equal(r->o.nclosed, 0);      /* never from inside start */
    if (c->start == START_NULL) {
        assert_null(r->o.c);
        return -1;
    }
    assert_non_null(r->o.c);
    if (c->start == START_ABORT) {
        smtp_client_abort(r->o.c, "aborted at start");
        assert_int_equal(r->o.nclosed, 1);
    }
    event_base_loop(r->base, EVLOOP_NONBLOCK);
    if (c->start == START_FIRST_PASS || c->start == START_ABORT)
        assert_int_equal(r->o.nclosed, 1);

    struct event *guard = evtimer_new(r->base, guard_cb, r);
    struct timeval tv = { 10, 0 };
    evtimer_add(guard, &tv);
    while (!r->timed_out && !(r->o.nclosed && (r->f.closed || !r->f.accepted)))
        event_base_loop(r->base, EVLOOP_ONCE);
    event_free(guard);
    if (r->timed_out)
        fail_msg("conversation did not end (server at step %zu)", r->f.pos);
    assert_int_equal(r->o.nclosed, 1);
    return 0;
}

/* Everything row c expects of the finished run. */
static void conv_check(const struct run *r, const struct tmsg *tm, const struct conv_case *c)
{
    char reason[256];

    run_check_script(r);
    for (size_t k = 0; k < N_(c->sent) && (c->sent[k].line || c->sent[k].behind); k++) {
        const struct sent *s = &c->sent[k];
        if (s->i >= r->f.nlines)
            fail_msg("line %d expected, the server read %d", s->i, r->f.nlines);
        if (s->line)
            assert_string_equal(r->f.lines[s->i], s->line);
        if (s->behind)
            assert_int_equal(r->f.backlog[s->i], strlen(s->behind));
    }
    assert_int_equal(r->f.nbodies, c->nbodies);
    for (int k = 0; k < c->nbodies && k < (int)N_(c->bodies); k++)
        if (c->bodies[k])
            assert_string_equal(r->f.bodies[k], c->bodies[k]);
    for (size_t k = 0; k < r->o.nmsgs; k++)
        for (size_t i = 0; i < tm[k].m.nrcpt; i++) {
            snprintf(reason, sizeof reason, "message %zu, recipient", k);
            want_check(reason, i, tm[k].res[i].code, tm[k].res[i].text, &c->msgs[k].want[i]);
        }
    assert_int_equal(r->o.nready, c->nready);
    assert_int_equal(r->o.ndone, c->ndone);
    /* "<port>" in the expected reason stands for the fake's port */
    const char *w = c->closed.text ? c->closed.text : "QUIT", *p = strstr(w, "<port>");
    if (p)
        snprintf(reason, sizeof reason, "%.*s%d%s", (int)(p - w), w, r->f.port, p + 6);
    else
        snprintf(reason, sizeof reason, "%s", w);
    want_check("closed", 0, r->o.close_code, r->o.close_reason,
               &(struct want){ c->closed.code, reason });
    if (c->check)
        c->check(r, tm);
}

/* One row, as one cmocka test (state: a struct conv_test). */
struct conv_test {
    const struct conv_case *c;
    int drip;
    char name[96];
};

static void conv_test(void **state)
{
    const struct conv_test *t = *state;
    const struct conv_case *c = t->c;
    struct run r;
    struct tmsg tm[N_(c->msgs)];

    if (c->server_tls && !have_cert)
        skip();
    conv_setup(&r, tm, c, t->drip);
    if (conv_go(&r, c) == 0)
        conv_check(&r, tm, c);
    for (size_t k = 0; k < r.o.nmsgs; k++)
        tmsg_free(&tm[k]);
    if (r.f.tls)
        tls_ctx_free(r.f.tls);
    if (r.opts.tls_ctx)
        tls_ctx_free(r.opts.tls_ctx);
    run_free(&r);
}

/* Runs the n rows of a table as the cmocka group `group`; the number of
 * tests that failed. */
static int conv_run_group(const char *group, const struct conv_case *rows, size_t n,
                          CMFixtureFunction setup, CMFixtureFunction teardown)
{
    struct conv_test *t = calloc(2 * n, sizeof *t);
    struct CMUnitTest *tests = calloc(2 * n, sizeof *tests);
    size_t nt = 0;
    if (!t || !tests)
        abort();
    for (size_t i = 0; i < n; i++)
        for (int drip = 0; drip <= rows[i].also_dripped; drip++, nt++) {
            t[nt].c = &rows[i];
            t[nt].drip = drip;
            snprintf(t[nt].name, sizeof t[nt].name, "%s%s", rows[i].name,
                     drip ? "_dripped" : "");
            tests[nt].name = t[nt].name;
            tests[nt].test_func = conv_test;
            tests[nt].initial_state = &t[nt];
        }
    int failed = _cmocka_run_group_tests(group, tests, nt, setup, teardown);
    free(tests);
    free(t);
    return failed;
}

#define CONV_GROUP(rows, setup, teardown) \
    conv_run_group(#rows, rows, N_(rows), setup, teardown)

/* What each test program's main() does first. */
static void conv_main_init(const char *prog)
{
    signal(SIGPIPE, SIG_IGN);       /* as kickmaild does */
    if (getenv("KM_TEST_DEBUG") && *getenv("KM_TEST_DEBUG")) {
        log_init(prog, 1);
        log_set_debug(1);
    }
}

#endif

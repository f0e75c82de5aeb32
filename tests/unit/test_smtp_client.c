/*
 * test_smtp_client — the SMTP client against a scripted fake server in the
 * same process: a loopback listener on the same event_base, driven through
 * the io layer.  A script is a list of steps: the command prefix the server
 * expects next (NULL: the banner; "<DATA>": message data up to the dot,
 * captured raw, i.e. still dot-stuffed), the raw reply it sends, and an
 * action (close, hang, switch to TLS, abort the client).  The server also
 * records every command line and how many bytes were already buffered
 * behind it, which shows whether the client pipelined.
 *
 * Covered: PIPELINING and not, 452 4.5.3 split into two transactions (and
 * without enhanced codes, and without progress), partial RCPT failure, all
 * RCPT failing → RSET (with and without pipelining), SIZE too big → 552
 * without sending, dot-stuffing on the wire (small and multi-block bodies
 * from many evbuffer chains, missing final CR LF, empty body), 421 mid-
 * session, HELO fallback, expect_helo mismatch (greeting and EHLO) → QUIT,
 * banner refused, timeout (scale_timeouts_ms), lost connection, malformed
 * and over-long replies, connection refused, abort during DATA, abort /
 * quit from inside callbacks, replies dripped one byte per write, STARTTLS
 * (may, encrypt not offered, handshake failure, plaintext injected after
 * the 220 discarded).
 *
 * KM_TEST_DEBUG=1 in the environment logs the client's debug lines to stderr.
 */
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

static int listen_loopback(int *port)
{
    struct sockaddr_in sin = { .sin_family = AF_INET };
    socklen_t sl = sizeof sin;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0 || listen(fd, 4) < 0 ||
        getsockname(fd, (struct sockaddr *)&sin, &sl) < 0)
        return -1;
    *port = ntohs(sin.sin_port);
    return fd;
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

/* ---- tests: transactions ------------------------------------------------ */

static void test_pipelining(void **state)
{
    static const struct step script[] = {
        { NULL, BANNER, A_NONE },
        { "EHLO kickmail.test", EHLO_PIPE, A_NONE },
        { "MAIL FROM:<alice@src.example> SIZE=", "250 2.1.0 Ok\r\n", A_NONE },
        { "RCPT TO:<bob@acme.example>", "250 2.1.5 Ok\r\n", A_NONE },
        { "RCPT TO:<carol@acme.example>", "250 2.1.5 Ok\r\n", A_NONE },
        { "DATA", "354 End data with <CR><LF>.<CR><LF>\r\n", A_NONE },
        { "<DATA>", "250 2.0.0 Ok: queued as AAA\r\n", A_NONE },
        { "MAIL FROM:<> SIZE=", "250 2.1.0 Ok\r\n", A_NONE },
        { "RCPT TO:<bob@acme.example>", "250 2.1.5 Ok\r\n", A_NONE },
        { "DATA", "354 go\r\n", A_NONE },
        { "<DATA>", "250 2.0.0 Ok: queued as BBB\r\n", A_NONE },
        { "QUIT", "221 2.0.0 Bye\r\n", A_NONE },
    };
    struct run r;
    struct tmsg m1, m2;
    run_init(&r, script, N_(script));
    r.f.drip = *(int *)*state;
    tmsg_init(&m1, "alice@src.example", "bob@acme.example", "carol@acme.example", NULL);
    tmsg_body(&m1, "Subject: hi\r\n\r\nhello\r\n");
    tmsg_init(&m2, "", "bob@acme.example", NULL, NULL);
    tmsg_body(&m2, "Subject: 8bit\r\n\r\nh\xc3\xa9llo\r\n");
    m2.m.eightbit = 1;
    r.o.msgs[0] = &m1;
    r.o.msgs[1] = &m2;
    r.o.nmsgs = 2;
    run_go(&r);
    run_check_script(&r);

    assert_string_equal(r.f.lines[1], "MAIL FROM:<alice@src.example> SIZE=22");
    assert_string_equal(r.f.lines[5], "MAIL FROM:<> SIZE=25 BODY=8BITMIME");
    /* MAIL, RCPT, RCPT, DATA in one write: the rest was buffered behind MAIL */
    assert_int_equal(r.f.backlog[1], strlen("RCPT TO:<bob@acme.example>\r\n"
                                            "RCPT TO:<carol@acme.example>\r\nDATA\r\n"));
    assert_int_equal(r.f.nbodies, 2);
    assert_string_equal(r.f.bodies[0], "Subject: hi\r\n\r\nhello\r\n");
    assert_string_equal(r.f.bodies[1], "Subject: 8bit\r\n\r\nh\xc3\xa9llo\r\n");
    assert_result(&m1, 0, 250, "250 2.0.0 Ok: queued as AAA");
    assert_result(&m1, 1, 250, "250 2.0.0 Ok: queued as AAA");
    assert_result(&m2, 0, 250, "250 2.0.0 Ok: queued as BBB");
    assert_int_equal(r.o.nready, 3);
    assert_int_equal(r.o.ndone, 2);
    assert_closed(&r, 0, "");
    tmsg_free(&m1);
    tmsg_free(&m2);
    run_free(&r);
}

static void test_no_pipelining(void **state)
{
    static const struct step script[] = {
        { NULL, BANNER, A_NONE },
        { "EHLO kickmail.test", EHLO_PLAIN, A_NONE },
        { "MAIL FROM:<alice@src.example> SIZE=", "250 2.1.0 Ok\r\n", A_NONE },
        { "RCPT TO:<bob@acme.example>", "250 2.1.5 Ok\r\n", A_NONE },
        { "RCPT TO:<carol@acme.example>", "250 2.1.5 Ok\r\n", A_NONE },
        { "DATA", "354 go\r\n", A_NONE },
        { "<DATA>", "250 2.0.0 Ok: queued as CCC\r\n", A_NONE },
        { "QUIT", "221 2.0.0 Bye\r\n", A_NONE },
    };
    struct run r;
    struct tmsg m;

    run_init(&r, script, N_(script));
    tmsg_init(&m, "alice@src.example", "bob@acme.example", "carol@acme.example", NULL);
    tmsg_body(&m, "Subject: 8bit\r\n\r\n\xe2\x82\xac\r\n");
    m.m.eightbit = 1;       /* no 8BITMIME offered: sent as is, no BODY= */
    r.o.msgs[0] = &m;
    r.o.nmsgs = 1;
    run_go(&r);
    run_check_script(&r);
    assert_string_equal(r.f.lines[1], "MAIL FROM:<alice@src.example> SIZE=22");
    for (int i = 1; i <= 4; i++)
        assert_int_equal(r.f.backlog[i], 0);    /* one command at a time */
    assert_string_equal(r.f.bodies[0], "Subject: 8bit\r\n\r\n\xe2\x82\xac\r\n");
    assert_result(&m, 0, 250, "250 2.0.0 Ok: queued as CCC");
    assert_result(&m, 1, 250, "250 2.0.0 Ok: queued as CCC");
    assert_closed(&r, 0, "");
    tmsg_free(&m);
    run_free(&r);
}

static void test_452_split(void **state)
{
    static const struct step script[] = {
        { NULL, BANNER, A_NONE },
        { "EHLO", EHLO_PIPE, A_NONE },
        { "MAIL FROM:<a@src.example>", "250 2.1.0 Ok\r\n", A_NONE },
        { "RCPT TO:<r1@acme.example>", "250 2.1.5 Ok\r\n", A_NONE },
        { "RCPT TO:<r2@acme.example>", "452 4.5.3 Error: too many recipients\r\n", A_NONE },
        { "RCPT TO:<r3@acme.example>", "452 4.5.3 Error: too many recipients\r\n", A_NONE },
        { "DATA", "354 go\r\n", A_NONE },
        { "<DATA>", "250 2.0.0 Ok: queued as T1\r\n", A_NONE },
        { "MAIL FROM:<a@src.example>", "250 2.1.0 Ok\r\n", A_NONE },
        { "RCPT TO:<r2@acme.example>", "250 2.1.5 Ok\r\n", A_NONE },
        { "RCPT TO:<r3@acme.example>", "250 2.1.5 Ok\r\n", A_NONE },
        { "DATA", "354 go\r\n", A_NONE },
        { "<DATA>", "250 2.0.0 Ok: queued as T2\r\n", A_NONE },
        { "QUIT", "221 2.0.0 Bye\r\n", A_NONE },
    };
    struct run r;
    struct tmsg m;

    run_init(&r, script, N_(script));
    tmsg_init(&m, "a@src.example", "r1@acme.example", "r2@acme.example", "r3@acme.example");
    tmsg_body(&m, "x\r\n");
    r.o.msgs[0] = &m;
    r.o.nmsgs = 1;
    run_go(&r);
    run_check_script(&r);
    assert_int_equal(r.f.nbodies, 2);
    assert_string_equal(r.f.bodies[1], "x\r\n");
    assert_result(&m, 0, 250, "250 2.0.0 Ok: queued as T1");
    assert_result(&m, 1, 250, "250 2.0.0 Ok: queued as T2");
    assert_result(&m, 2, 250, "250 2.0.0 Ok: queued as T2");
    assert_int_equal(r.o.ndone, 1);
    assert_closed(&r, 0, "");
    tmsg_free(&m);
    run_free(&r);
}

/* Without pipelining and without an enhanced code: after the first "too
 * many", the rest of the batch waits for the next transaction untried. */
static void test_452_split_plain(void **state)
{
    static const struct step script[] = {
        { NULL, BANNER, A_NONE },
        { "EHLO", EHLO_PLAIN, A_NONE },
        { "MAIL FROM:<a@src.example>", "250 Ok\r\n", A_NONE },
        { "RCPT TO:<r1@acme.example>", "250 Ok\r\n", A_NONE },
        { "RCPT TO:<r2@acme.example>", "452 Too many recipients\r\n", A_NONE },
        { "DATA", "354 go\r\n", A_NONE },
        { "<DATA>", "250 queued as T1\r\n", A_NONE },
        { "MAIL FROM:<a@src.example>", "250 Ok\r\n", A_NONE },
        { "RCPT TO:<r2@acme.example>", "250 Ok\r\n", A_NONE },
        { "RCPT TO:<r3@acme.example>", "250 Ok\r\n", A_NONE },
        { "DATA", "354 go\r\n", A_NONE },
        { "<DATA>", "250 queued as T2\r\n", A_NONE },
        { "QUIT", "221 Bye\r\n", A_NONE },
    };
    struct run r;
    struct tmsg m;

    run_init(&r, script, N_(script));
    tmsg_init(&m, "a@src.example", "r1@acme.example", "r2@acme.example", "r3@acme.example");
    tmsg_body(&m, "x\r\n");
    r.o.msgs[0] = &m;
    r.o.nmsgs = 1;
    run_go(&r);
    run_check_script(&r);
    assert_result(&m, 0, 250, "250 queued as T1");
    assert_result(&m, 1, 250, "250 queued as T2");
    assert_result(&m, 2, 250, "250 queued as T2");
    tmsg_free(&m);
    run_free(&r);
}

/* A transaction that accepted nobody: the 452s stand (no endless loop). */
static void test_452_no_progress(void **state)
{
    static const struct step script[] = {
        { NULL, BANNER, A_NONE },
        { "EHLO", EHLO_PIPE, A_NONE },
        { "MAIL", "250 2.1.0 Ok\r\n", A_NONE },
        { "RCPT TO:<r1@acme.example>", "452 4.5.3 Error: too many recipients\r\n", A_NONE },
        { "RCPT TO:<r2@acme.example>", "452 4.5.3 Error: too many recipients\r\n", A_NONE },
        { "DATA", "554 5.5.1 Error: no valid recipients\r\n", A_NONE },
        { "RSET", "250 2.0.0 Ok\r\n", A_NONE },
        { "QUIT", "221 2.0.0 Bye\r\n", A_NONE },
    };
    struct run r;
    struct tmsg m;

    run_init(&r, script, N_(script));
    tmsg_init(&m, "a@src.example", "r1@acme.example", "r2@acme.example", NULL);
    tmsg_body(&m, "x\r\n");
    r.o.msgs[0] = &m;
    r.o.nmsgs = 1;
    run_go(&r);
    run_check_script(&r);
    assert_result(&m, 0, 452, "452 4.5.3 Error: too many recipients");
    assert_result(&m, 1, 452, "452 4.5.3 Error: too many recipients");
    assert_int_equal(r.f.nbodies, 0);
    tmsg_free(&m);
    run_free(&r);
}

static void test_partial_rcpt(void **state)
{
    static const struct step script[] = {
        { NULL, BANNER, A_NONE },
        { "EHLO", EHLO_PIPE, A_NONE },
        { "MAIL", "250 2.1.0 Ok\r\n", A_NONE },
        { "RCPT TO:<nobody@acme.example>",
          "550-5.1.1 <nobody@acme.example>: Recipient address rejected:\r\n"
          "550 5.1.1 User unknown in virtual mailbox table\r\n", A_NONE },
        { "RCPT TO:<bob@acme.example>", "250 2.1.5 Ok\r\n", A_NONE },
        { "DATA", "354 go\r\n", A_NONE },
        { "<DATA>", "250 2.0.0 Ok: queued as P1\r\n", A_NONE },
        { "QUIT", "221 2.0.0 Bye\r\n", A_NONE },
    };
    struct run r;
    struct tmsg m;

    run_init(&r, script, N_(script));
    tmsg_init(&m, "a@src.example", "nobody@acme.example", "bob@acme.example", NULL);
    tmsg_body(&m, "x\r\n");
    r.o.msgs[0] = &m;
    r.o.nmsgs = 1;
    run_go(&r);
    run_check_script(&r);
    assert_result(&m, 0, 550, "550 5.1.1 <nobody@acme.example>: Recipient address "
                              "rejected:; 5.1.1 User unknown in virtual mailbox table");
    assert_result(&m, 1, 250, "250 2.0.0 Ok: queued as P1");
    tmsg_free(&m);
    run_free(&r);
}

static void test_all_rcpt_fail_pipelined(void **state)
{
    static const struct step script[] = {
        { NULL, BANNER, A_NONE },
        { "EHLO", EHLO_PIPE, A_NONE },
        { "MAIL", "250 2.1.0 Ok\r\n", A_NONE },
        { "RCPT TO:<x@acme.example>", "550 5.1.1 unknown x\r\n", A_NONE },
        { "RCPT TO:<y@acme.example>", "450 4.2.0 try later y\r\n", A_NONE },
        { "DATA", "554 5.5.1 Error: no valid recipients\r\n", A_NONE },
        { "RSET", "250 2.0.0 Ok\r\n", A_NONE },
        { "QUIT", "221 2.0.0 Bye\r\n", A_NONE },
    };
    struct run r;
    struct tmsg m;

    run_init(&r, script, N_(script));
    tmsg_init(&m, "a@src.example", "x@acme.example", "y@acme.example", NULL);
    tmsg_body(&m, "x\r\n");
    r.o.msgs[0] = &m;
    r.o.nmsgs = 1;
    run_go(&r);
    run_check_script(&r);
    assert_int_equal(r.f.nbodies, 0);
    assert_result(&m, 0, 550, "550 5.1.1 unknown x");
    assert_result(&m, 1, 450, "450 4.2.0 try later y");
    assert_closed(&r, 0, "");
    tmsg_free(&m);
    run_free(&r);
}

static void test_all_rcpt_fail_plain(void **state)
{
    static const struct step script[] = {
        { NULL, BANNER, A_NONE },
        { "EHLO", EHLO_PLAIN, A_NONE },
        { "MAIL", "250 2.1.0 Ok\r\n", A_NONE },
        { "RCPT TO:<x@acme.example>", "550 5.1.1 unknown x\r\n", A_NONE },
        { "RCPT TO:<y@acme.example>", "550 5.1.1 unknown y\r\n", A_NONE },
        { "RSET", "250 2.0.0 Ok\r\n", A_NONE },     /* no DATA */
        { "QUIT", "221 2.0.0 Bye\r\n", A_NONE },
    };
    struct run r;
    struct tmsg m;

    run_init(&r, script, N_(script));
    tmsg_init(&m, "a@src.example", "x@acme.example", "y@acme.example", NULL);
    tmsg_body(&m, "x\r\n");
    r.o.msgs[0] = &m;
    r.o.nmsgs = 1;
    run_go(&r);
    run_check_script(&r);
    assert_result(&m, 0, 550, "550 5.1.1 unknown x");
    assert_result(&m, 1, 550, "550 5.1.1 unknown y");
    tmsg_free(&m);
    run_free(&r);
}

/* MAIL refused: every recipient takes the MAIL reply; nothing else is sent
 * but what pipelining already put on the wire. */
static void test_mail_refused(void **state)
{
    static const struct step script[] = {
        { NULL, BANNER, A_NONE },
        { "EHLO", EHLO_PIPE, A_NONE },
        { "MAIL", "451 4.3.0 try again\r\n", A_NONE },
        { "RCPT", "503 5.5.1 need MAIL\r\n", A_NONE },
        { "DATA", "503 5.5.1 need RCPT\r\n", A_NONE },
        { "MAIL", "250 2.1.0 Ok\r\n", A_NONE },
        { "RCPT", "250 2.1.5 Ok\r\n", A_NONE },
        { "DATA", "354 go\r\n", A_NONE },
        { "<DATA>", "250 2.0.0 Ok: queued as M2\r\n", A_NONE },
        { "QUIT", "221 2.0.0 Bye\r\n", A_NONE },
    };
    struct run r;
    struct tmsg m1, m2;

    run_init(&r, script, N_(script));
    tmsg_init(&m1, "a@src.example", "x@acme.example", NULL, NULL);
    tmsg_body(&m1, "1\r\n");
    tmsg_init(&m2, "a@src.example", "x@acme.example", NULL, NULL);
    tmsg_body(&m2, "2\r\n");
    r.o.msgs[0] = &m1;
    r.o.msgs[1] = &m2;
    r.o.nmsgs = 2;
    run_go(&r);
    run_check_script(&r);
    assert_result(&m1, 0, 451, "451 4.3.0 try again");
    assert_result(&m2, 0, 250, "250 2.0.0 Ok: queued as M2");
    tmsg_free(&m1);
    tmsg_free(&m2);
    run_free(&r);
}

static void test_size_too_big(void **state)
{
    static const struct step script[] = {
        { NULL, BANNER, A_NONE },
        { "EHLO", "250-mx.acme.example\r\n250-PIPELINING\r\n250 SIZE 100\r\n", A_NONE },
        { "MAIL FROM:<a@src.example> SIZE=50", "250 2.1.0 Ok\r\n", A_NONE },
        { "RCPT", "250 2.1.5 Ok\r\n", A_NONE },
        { "DATA", "354 go\r\n", A_NONE },
        { "<DATA>", "250 2.0.0 Ok: queued as S2\r\n", A_NONE },
        { "QUIT", "221 2.0.0 Bye\r\n", A_NONE },
    };
    struct run r;
    struct tmsg big, small;
    char body[201];

    run_init(&r, script, N_(script));
    memset(body, 'b', 198);
    memcpy(body + 198, "\r\n", 3);
    tmsg_init(&big, "a@src.example", "x@acme.example", "y@acme.example", NULL);
    tmsg_body(&big, body);
    body[48] = '\r';
    body[49] = '\n';
    body[50] = 0;
    tmsg_init(&small, "a@src.example", "x@acme.example", NULL, NULL);
    tmsg_body(&small, body);
    r.o.msgs[0] = &big;
    r.o.msgs[1] = &small;
    r.o.nmsgs = 2;
    run_go(&r);
    run_check_script(&r);
    assert_result(&big, 0, 552, "552 5.3.4 message too big for remote (SIZE 100)");
    assert_result(&big, 1, 552, "552 5.3.4 message too big for remote (SIZE 100)");
    assert_result(&small, 0, 250, "250 2.0.0 Ok: queued as S2");
    assert_int_equal(r.o.ndone, 2);
    tmsg_free(&big);
    tmsg_free(&small);
    run_free(&r);
}

/* Recipients with control characters are never put on the wire. */
static void test_bad_address(void **state)
{
    static const struct step script[] = {
        { NULL, BANNER, A_NONE },
        { "EHLO", EHLO_PIPE, A_NONE },
        { "MAIL", "250 2.1.0 Ok\r\n", A_NONE },
        { "RCPT TO:<good@acme.example>", "250 2.1.5 Ok\r\n", A_NONE },
        { "DATA", "354 go\r\n", A_NONE },
        { "<DATA>", "250 2.0.0 Ok\r\n", A_NONE },
        { "QUIT", "221 2.0.0 Bye\r\n", A_NONE },
    };
    struct run r;
    struct tmsg m;

    run_init(&r, script, N_(script));
    tmsg_init(&m, "a@src.example", "x@acme.example>\r\nRSET", "good@acme.example", NULL);
    tmsg_body(&m, "x\r\n");
    r.o.msgs[0] = &m;
    r.o.nmsgs = 1;
    run_go(&r);
    run_check_script(&r);
    assert_result(&m, 0, 501, "501 5.1.3 invalid recipient address");
    assert_result(&m, 1, 250, "250 2.0.0 Ok");
    tmsg_free(&m);
    run_free(&r);
}

/* ---- tests: the body on the wire ---------------------------------------- */

static void test_dot_stuffing(void **state)
{
    static const struct step script[] = {
        { NULL, BANNER, A_NONE },
        { "EHLO", EHLO_PIPE, A_NONE },
        { "MAIL", "250 2.1.0 Ok\r\n", A_NONE },
        { "RCPT", "250 2.1.5 Ok\r\n", A_NONE },
        { "DATA", "354 go\r\n", A_NONE },
        { "<DATA>", "250 2.0.0 Ok: 1\r\n", A_NONE },
        { "MAIL", "250 2.1.0 Ok\r\n", A_NONE },
        { "RCPT", "250 2.1.5 Ok\r\n", A_NONE },
        { "DATA", "354 go\r\n", A_NONE },
        { "<DATA>", "250 2.0.0 Ok: 2\r\n", A_NONE },
        { "MAIL", "250 2.1.0 Ok\r\n", A_NONE },
        { "RCPT", "250 2.1.5 Ok\r\n", A_NONE },
        { "DATA", "354 go\r\n", A_NONE },
        { "<DATA>", "250 2.0.0 Ok: 3\r\n", A_NONE },
        { "QUIT", "221 2.0.0 Bye\r\n", A_NONE },
    };
    struct run r;
    struct tmsg m1, m2, m3;

    run_init(&r, script, N_(script));
    tmsg_init(&m1, "a@src.example", "x@acme.example", NULL, NULL);
    tmsg_body(&m1, ".hidden\r\n..two\r\nnormal\r\n.\r\n\r\n.\r\nend. .x\r\n.last, no CRLF");
    tmsg_init(&m2, "a@src.example", "x@acme.example", NULL, NULL);   /* empty */
    tmsg_init(&m3, "a@src.example", "x@acme.example", NULL, NULL);
    tmsg_body(&m3, "ends in CR\r");
    r.o.msgs[0] = &m1;
    r.o.msgs[1] = &m2;
    r.o.msgs[2] = &m3;
    r.o.nmsgs = 3;
    run_go(&r);
    run_check_script(&r);
    assert_int_equal(r.f.nbodies, 3);
    assert_string_equal(r.f.bodies[0],
                        "..hidden\r\n...two\r\nnormal\r\n..\r\n\r\n..\r\nend. .x\r\n"
                        "..last, no CRLF\r\n");
    assert_string_equal(r.f.bodies[1], "");
    assert_string_equal(r.f.bodies[2], "ends in CR\r\n");
    assert_result(&m1, 0, 250, "250 2.0.0 Ok: 1");
    assert_result(&m2, 0, 250, "250 2.0.0 Ok: 2");
    assert_result(&m3, 0, 250, "250 2.0.0 Ok: 3");
    tmsg_free(&m1);
    tmsg_free(&m2);
    tmsg_free(&m3);
    run_free(&r);
}

/* A body of many evbuffer chains, several write blocks long, with dots at
 * chain starts, at block boundaries (64 KB) and everywhere else. */
static char *stuff_ref(const char *p, size_t n, size_t *outlen)
{
    char *o = malloc(2 * n + 3), *q = o;
    int bol = 1;
    for (size_t i = 0; i < n; i++) {
        if (bol && p[i] == '.')
            *q++ = '.';
        *q++ = p[i];
        bol = p[i] == '\n';
    }
    *outlen = (size_t)(q - o);
    return o;
}

static void free_piece(const void *data, size_t len, void *arg)
{
    free((void *)data);
}

static void test_big_body(void **state)
{
    static const struct step script[] = {
        { NULL, BANNER, A_NONE },
        { "EHLO", EHLO_PIPE, A_NONE },
        { "MAIL", "250 2.1.0 Ok\r\n", A_NONE },
        { "RCPT", "250 2.1.5 Ok\r\n", A_NONE },
        { "DATA", "354 go\r\n", A_NONE },
        { "<DATA>", "250 2.0.0 Ok: big\r\n", A_NONE },
        { "QUIT", "221 2.0.0 Bye\r\n", A_NONE },
    };
    struct run r;
    struct tmsg m;
    size_t total = 0, cap = 600000, n;
    char *flat = malloc(cap);
    unsigned seed = 7;

    run_init(&r, script, N_(script));
    tmsg_init(&m, "a@src.example", "x@acme.example", NULL, NULL);
    while (total < 500000) {
        /* a piece: a few lines, some starting with '.', some split mid-line */
        size_t len = 1 + (seed = seed * 1103515245 + 12345) % 3000;
        char *piece = malloc(len);
        for (size_t i = 0; i < len; i++) {
            unsigned v = (seed = seed * 1103515245 + 12345) >> 16;
            piece[i] = v % 40 == 0 ? '\n' : v % 7 == 0 ? '.' : (char)('a' + v % 26);
            if (piece[i] == '\n' && i > 0 && piece[i - 1] != '\r')
                piece[i - 1] = '\r';
        }
        if (total + 2 <= 65536 && total + len > 65536)  /* a dot line at the block edge */
            memcpy(piece + (65536 - total) - 2, "\r\n.", 3);
        memcpy(flat + total, piece, len);
        total += len;
        evbuffer_add_reference(m.m.body, piece, len, free_piece, NULL);
    }
    size_t extra = 0;                   /* what the client must add at the end */
    if (flat[total - 1] == '\r')
        flat[total + extra++] = '\n';
    else if (flat[total - 1] != '\n')
        for (const char *e = "\r\n"; *e; e++)
            flat[total + extra++] = *e;
    r.o.msgs[0] = &m;
    r.o.nmsgs = 1;
    run_go(&r);
    run_check_script(&r);
    char *want = stuff_ref(flat, total + extra, &n);
    assert_int_equal(r.f.nbodies, 1);
    assert_int_equal(r.f.bodylen[0], n);
    assert_memory_equal(r.f.bodies[0], want, n);
    assert_result(&m, 0, 250, "250 2.0.0 Ok: big");
    free(want);
    free(flat);
    tmsg_free(&m);
    run_free(&r);
}

/* ---- tests: greeting, HELO, expect_helo ---------------------------------- */

static void test_helo_fallback(void **state)
{
    static const struct step script[] = {
        { NULL, BANNER, A_NONE },
        { "EHLO kickmail.test", "502 5.5.1 Error: command not implemented\r\n", A_NONE },
        { "HELO kickmail.test", "250 mx.acme.example\r\n", A_NONE },
        { "MAIL FROM:<a@src.example>", "250 Ok\r\n", A_NONE },
        { "RCPT TO:<x@acme.example>", "250 Ok\r\n", A_NONE },
        { "DATA", "354 go\r\n", A_NONE },
        { "<DATA>", "250 Ok: queued\r\n", A_NONE },
        { "QUIT", "221 Bye\r\n", A_NONE },
    };
    struct run r;
    struct tmsg m;

    run_init(&r, script, N_(script));
    r.opts.expect_helo = "MX.acme.example";     /* case-insensitive */
    tmsg_init(&m, "a@src.example", "x@acme.example", NULL, NULL);
    tmsg_body(&m, "x\r\n");
    m.m.eightbit = 1;
    r.o.msgs[0] = &m;
    r.o.nmsgs = 1;
    run_go(&r);
    run_check_script(&r);
    assert_string_equal(r.f.lines[2], "MAIL FROM:<a@src.example>");  /* no SIZE, BODY */
    assert_int_equal(r.f.backlog[2], 0);
    assert_result(&m, 0, 250, "250 Ok: queued");
    assert_closed(&r, 0, "");
    tmsg_free(&m);
    run_free(&r);
}

static void test_expect_helo_banner(void **state)
{
    static const struct step script[] = {
        { NULL, "220 evil.example ESMTP\r\n", A_NONE },
        { "QUIT", "221 Bye\r\n", A_NONE },
    };
    struct run r;

    run_init(&r, script, N_(script));
    r.opts.expect_helo = "mx.acme.example";
    run_go(&r);
    run_check_script(&r);
    assert_int_equal(r.o.nready, 0);
    assert_closed(&r, -1, "server greeted as evil.example, expected mx.acme.example");
    run_free(&r);
}

static void test_expect_helo_ehlo(void **state)
{
    static const struct step script[] = {
        { NULL, BANNER, A_NONE },
        { "EHLO", "250-other.example hello\r\n250 PIPELINING\r\n", A_NONE },
        { "QUIT", "221 Bye\r\n", A_NONE },
    };
    struct run r;

    run_init(&r, script, N_(script));
    r.opts.expect_helo = "mx.acme.example";
    run_go(&r);
    run_check_script(&r);
    assert_int_equal(r.o.nready, 0);
    assert_closed(&r, -1, "server greeted as other.example, expected mx.acme.example");
    run_free(&r);
}

static void test_banner_refused(void **state)
{
    static const struct step script[] = {
        { NULL, "554 5.7.1 go away\r\n", A_NONE },
        { "QUIT", "221 Bye\r\n", A_NONE },
    };
    struct run r;

    run_init(&r, script, N_(script));
    run_go(&r);
    run_check_script(&r);
    assert_int_equal(r.o.nready, 0);
    assert_closed(&r, 554, "host 127.0.0.1[127.0.0.1] refused to talk to me: 554 5.7.1 go away");
    run_free(&r);
}

/* ---- tests: failures ----------------------------------------------------- */

static void test_421_mid_session(void **state)
{
    static const struct step script[] = {
        { NULL, BANNER, A_NONE },
        { "EHLO", EHLO_PIPE, A_NONE },
        { "MAIL", "250 2.1.0 Ok\r\n", A_NONE },
        { "RCPT TO:<x@acme.example>", "550 5.1.1 unknown\r\n", A_NONE },
        { "RCPT TO:<y@acme.example>", "250 2.1.5 Ok\r\n", A_NONE },
        { "RCPT TO:<z@acme.example>", "421 4.3.2 mx.acme.example shutting down\r\n", A_CLOSE },
    };
    struct run r;
    struct tmsg m;

    run_init(&r, script, N_(script));
    tmsg_init(&m, "a@src.example", "x@acme.example", "y@acme.example", "z@acme.example");
    tmsg_body(&m, "x\r\n");
    r.o.msgs[0] = &m;
    r.o.nmsgs = 1;
    run_go(&r);
    run_check_script(&r);
    assert_result(&m, 0, 550, "550 5.1.1 unknown");
    assert_result(&m, 1, 421, "421 4.3.2 mx.acme.example shutting down");
    assert_result(&m, 2, 421, "421 4.3.2 mx.acme.example shutting down");
    assert_int_equal(r.o.ndone, 1);
    assert_closed(&r, 421, "421 4.3.2 mx.acme.example shutting down");
    tmsg_free(&m);
    run_free(&r);
}

static void test_timeout(void **state)
{
    static const struct step script[] = {
        { NULL, BANNER, A_NONE },
        { "EHLO", EHLO_PLAIN, A_NONE },
        { "MAIL", "250 2.1.0 Ok\r\n", A_NONE },
        { "RCPT TO:<x@acme.example>", NULL, A_HANG },
    };
    struct run r;
    struct tmsg m;

    run_init(&r, script, N_(script));
    r.opts.scale_timeouts_ms = 150;
    tmsg_init(&m, "a@src.example", "x@acme.example", "y@acme.example", NULL);
    tmsg_body(&m, "x\r\n");
    r.o.msgs[0] = &m;
    r.o.nmsgs = 1;
    run_go(&r);
    run_check_script(&r);
    const char *why = "conversation with 127.0.0.1[127.0.0.1] timed out while sending RCPT TO";
    assert_result(&m, 0, 0, why);
    assert_result(&m, 1, 0, why);
    assert_closed(&r, -1, why);
    tmsg_free(&m);
    run_free(&r);
}

static void test_timeout_banner(void **state)
{
    static const struct step script[] = {
        { NULL, NULL, A_HANG },
    };
    struct run r;

    run_init(&r, script, N_(script));
    r.opts.scale_timeouts_ms = 100;
    run_go(&r);
    run_check_script(&r);
    assert_closed(&r, -1, "conversation with 127.0.0.1[127.0.0.1] timed out while "
                          "receiving the initial server greeting");
    run_free(&r);
}

static void test_lost_connection(void **state)
{
    static const struct step script[] = {
        { NULL, BANNER, A_NONE },
        { "EHLO", EHLO_PLAIN, A_NONE },
        { "MAIL", "250 2.1.0 Ok\r\n", A_NONE },
        { "RCPT TO:<x@acme.example>", "250 2.1.5 Ok\r\n", A_NONE },
        { "DATA", "354 go\r\n", A_NONE },
        { "<DATA>", NULL, A_CLOSE },
    };
    struct run r;
    struct tmsg m;

    run_init(&r, script, N_(script));
    tmsg_init(&m, "a@src.example", "x@acme.example", NULL, NULL);
    tmsg_body(&m, "x\r\n");
    r.o.msgs[0] = &m;
    r.o.nmsgs = 1;
    run_go(&r);
    run_check_script(&r);
    const char *why = LOST "sending end of data -- message may be sent more than once";
    assert_result(&m, 0, 0, why);
    assert_closed(&r, -1, why);
    tmsg_free(&m);
    run_free(&r);
}

static void test_malformed_reply(void **state)
{
    static const struct step script[] = {
        { NULL, BANNER, A_NONE },
        { "EHLO", EHLO_PIPE, A_NONE },
        { "MAIL", "250 2.1.0 Ok\r\n", A_NONE },
        { "RCPT TO:<x@acme.example>", "250-2.1.5 Ok\r\n550 mixed codes\r\n", A_NONE },
        { "DATA", NULL, A_NONE },
    };
    struct run r;
    struct tmsg m;

    run_init(&r, script, N_(script));
    tmsg_init(&m, "a@src.example", "x@acme.example", NULL, NULL);
    tmsg_body(&m, "x\r\n");
    r.o.msgs[0] = &m;
    r.o.nmsgs = 1;
    run_go(&r);
    run_check_script(&r);
    const char *why = "malformed reply from 127.0.0.1[127.0.0.1] while sending RCPT TO";
    assert_result(&m, 0, 0, why);
    assert_closed(&r, -1, why);
    tmsg_free(&m);
    run_free(&r);
}

static void test_long_reply(void **state)
{
    static char longreply[8000];
    static struct step script[] = {
        { NULL, BANNER, A_NONE },
        { "EHLO", longreply, A_NONE },
    };
    struct run r;

    memcpy(longreply, "250-", 4);
    memset(longreply + 4, 'x', sizeof longreply - 5);
    run_init(&r, script, N_(script));
    run_go(&r);
    run_check_script(&r);
    assert_closed(&r, -1, "reply line too long from 127.0.0.1[127.0.0.1] while "
                          "performing the EHLO handshake");
    run_free(&r);
}

static void test_connect_refused(void **state)
{
    struct run r;
    char want[128];

    run_init(&r, NULL, 0);
    event_del(r.f.lev);
    close(r.f.lfd);             /* nobody listens on that port any more */
    r.f.lfd = socket(AF_INET, SOCK_STREAM, 0);
    run_go(&r);
    snprintf(want, sizeof want, "connect to 127.0.0.1:%d: Connection refused", r.f.port);
    assert_closed(&r, -1, want);
    assert_int_equal(r.o.nready, 0);
    run_free(&r);

    /* not a numeric address: NULL at once */
    struct event_base *base = event_base_new();
    struct owner o;
    struct smtp_client_opts opts = { .host = "mx.acme.example", .port = 25 };
    memset(&o, 0, sizeof o);
    assert_null(smtp_client_start(base, &opts, &owner_cbs, &o));
    opts.host = "127.0.0.1";
    opts.port = 0;
    assert_null(smtp_client_start(base, &opts, &owner_cbs, &o));
    event_base_free(base);
}

/* Nobody answers the SYN (a listener whose accept queue is full drops it on
 * Linux): the connect timeout ends the attempt. */
static void test_connect_timeout(void **state)
{
    struct run r;
    char want[128];
    struct sockaddr_in sin = { .sin_family = AF_INET };

    run_init(&r, NULL, 0);
    event_del(r.f.lev);             /* never accept */
    close(r.f.lfd);
    r.f.lfd = listen_loopback(&r.f.port);
    assert_true(r.f.lfd >= 0);
    assert_int_equal(listen(r.f.lfd, 0), 0);
    r.opts.port = r.f.port;
    int filler = socket(AF_INET, SOCK_STREAM, 0);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin.sin_port = htons((uint16_t)r.f.port);
    assert_int_equal(connect(filler, (struct sockaddr *)&sin, sizeof sin), 0);
    r.opts.scale_timeouts_ms = 200;
    run_go(&r);
    snprintf(want, sizeof want, "connect to 127.0.0.1:%d: Connection timed out", r.f.port);
    assert_closed(&r, -1, want);
    close(filler);
    run_free(&r);
}

/* connect() fails at once (Linux refuses TCP to a multicast address): the
 * failure still comes from the loop, never from inside smtp_client_start. */
static void test_connect_fails_at_once(void **state)
{
    struct event_base *base = event_base_new();
    struct owner o;
    struct smtp_client_opts opts = { .host = "224.0.0.1", .port = 25 };

    memset(&o, 0, sizeof o);
    o.c = smtp_client_start(base, &opts, &owner_cbs, &o);
    assert_non_null(o.c);
    assert_int_equal(o.nclosed, 0);
    event_base_loop(base, EVLOOP_NONBLOCK);
    assert_int_equal(o.nclosed, 1);
    assert_int_equal(o.close_code, -1);
    assert_string_equal(o.close_reason, "connect to 224.0.0.1:25: Network is unreachable");

    /* and abort before the loop ran: closed() once, from abort */
    memset(&o, 0, sizeof o);
    o.c = smtp_client_start(base, &opts, &owner_cbs, &o);
    assert_non_null(o.c);
    smtp_client_abort(o.c, "never mind");
    assert_int_equal(o.nclosed, 1);
    assert_string_equal(o.close_reason, "never mind");
    event_base_loop(base, EVLOOP_NONBLOCK);
    assert_int_equal(o.nclosed, 1);
    event_base_free(base);
}

/* ---- tests: abort, and calling back from callbacks ---------------------- */

static void test_abort_during_data(void **state)
{
    static const struct step script[] = {
        { NULL, BANNER, A_NONE },
        { "EHLO", EHLO_PIPE, A_NONE },
        { "MAIL", "250 2.1.0 Ok\r\n", A_NONE },
        { "RCPT TO:<x@acme.example>", "250 2.1.5 Ok\r\n", A_NONE },
        { "RCPT TO:<y@acme.example>", "550 5.1.1 unknown\r\n", A_NONE },
        { "DATA", "354 go\r\n", A_NONE },
        { "<DATA>", NULL, A_ABORT },
    };
    struct run r;
    struct tmsg m;
    char *body = malloc(3 << 20);

    run_init(&r, script, N_(script));
    for (size_t i = 0; i < (3u << 20); i++)
        body[i] = i % 100 == 99 ? '\n' : i % 100 == 98 ? '\r' : 'a';
    tmsg_init(&m, "a@src.example", "x@acme.example", "y@acme.example", NULL);
    evbuffer_add(m.m.body, body, 3 << 20);
    free(body);
    r.o.msgs[0] = &m;
    r.o.nmsgs = 1;
    run_go(&r);
    run_check_script(&r);
    assert_result(&m, 0, 0, "link went down during delivery");
    assert_result(&m, 1, 0, "link went down during delivery");
    assert_int_equal(r.o.ndone, 1);
    assert_closed(&r, -1, "link went down during delivery");
    tmsg_free(&m);
    run_free(&r);
}

static void test_abort_in_ready(void **state)
{
    static const struct step script[] = {
        { NULL, BANNER, A_NONE },
        { "EHLO", EHLO_PIPE, A_NONE },
    };
    struct run r;

    run_init(&r, script, N_(script));
    r.o.abort_in_ready = 1;
    r.o.abort_in_closed = 1;
    run_go(&r);
    run_check_script(&r);
    assert_int_equal(r.o.nready, 1);
    assert_int_equal(r.o.ndone, 0);
    assert_closed(&r, -1, "aborted in ready");
    run_free(&r);
}

/* abort from done(): the second message is never asked for. */
static void test_abort_in_done(void **state)
{
    static const struct step script[] = {
        { NULL, BANNER, A_NONE },
        { "EHLO", EHLO_PIPE, A_NONE },
        { "MAIL", "250 2.1.0 Ok\r\n", A_NONE },
        { "RCPT", "250 2.1.5 Ok\r\n", A_NONE },
        { "DATA", "354 go\r\n", A_NONE },
        { "<DATA>", "250 2.0.0 Ok: kept\r\n", A_NONE },
    };
    struct run r;
    struct tmsg m1, m2;

    run_init(&r, script, N_(script));
    tmsg_init(&m1, "a@src.example", "x@acme.example", NULL, NULL);
    tmsg_body(&m1, "x\r\n");
    tmsg_init(&m2, "a@src.example", "x@acme.example", NULL, NULL);
    r.o.msgs[0] = &m1;
    r.o.msgs[1] = &m2;
    r.o.nmsgs = 2;
    r.o.abort_in_done = 1;
    run_go(&r);
    run_check_script(&r);
    assert_result(&m1, 0, 250, "250 2.0.0 Ok: kept");    /* delivered stays delivered */
    assert_int_equal(r.o.ndone, 1);
    assert_int_equal(r.o.nready, 1);
    assert_closed(&r, -1, "aborted in done");
    tmsg_free(&m1);
    tmsg_free(&m2);
    run_free(&r);
}

/* quit from done(): QUIT follows the message, ready() is not called again. */
static void test_quit_in_done(void **state)
{
    static const struct step script[] = {
        { NULL, BANNER, A_NONE },
        { "EHLO", EHLO_PIPE, A_NONE },
        { "MAIL", "250 2.1.0 Ok\r\n", A_NONE },
        { "RCPT", "250 2.1.5 Ok\r\n", A_NONE },
        { "DATA", "354 go\r\n", A_NONE },
        { "<DATA>", "250 2.0.0 Ok\r\n", A_NONE },
        { "QUIT", "221 2.0.0 Bye\r\n", A_CLOSE },
    };
    struct run r;
    struct tmsg m1, m2;

    run_init(&r, script, N_(script));
    tmsg_init(&m1, "a@src.example", "x@acme.example", NULL, NULL);
    tmsg_body(&m1, "x\r\n");
    tmsg_init(&m2, "a@src.example", "x@acme.example", NULL, NULL);
    r.o.msgs[0] = &m1;
    r.o.msgs[1] = &m2;
    r.o.nmsgs = 2;
    r.o.quit_in_done = 1;
    r.o.abort_in_closed = 1;
    run_go(&r);
    run_check_script(&r);
    assert_int_equal(r.o.ndone, 1);
    assert_int_equal(r.o.nready, 1);
    assert_closed(&r, 0, "");
    tmsg_free(&m1);
    tmsg_free(&m2);
    run_free(&r);
}

/* ---- tests: STARTTLS ------------------------------------------------------ */

static char certdir[64];
static int have_cert;

static int tls_setup(void **state)
{
    char cmd[256];
    snprintf(certdir, sizeof certdir, "/tmp/km-test-smtpc-XXXXXX");
    if (!mkdtemp(certdir))
        return 0;
    snprintf(cmd, sizeof cmd, "scripts/gen-test-cert %s mx.acme.example >/dev/null 2>&1",
             certdir);
    have_cert = system(cmd) == 0;
    return 0;
}

static int tls_teardown(void **state)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", certdir);
    if (certdir[0] && system(cmd) != 0)
        return -1;
    return 0;
}

static struct tls_ctx *server_ctx(void)
{
    char cert[128], key[128], err[256];
    snprintf(cert, sizeof cert, "%s/cert.pem", certdir);
    snprintf(key, sizeof key, "%s/key.pem", certdir);
    struct tls_ctx *t = tls_server_ctx(cert, key, err, sizeof err);
    if (!t)
        fail_msg("tls_server_ctx: %s", err);
    return t;
}

static void test_starttls_may(void **state)
{
    static const struct step script[] = {
        { NULL, BANNER, A_NONE },
        { "EHLO kickmail.test", "250-mx.acme.example\r\n250-STARTTLS\r\n250 SIZE 1000\r\n",
          A_NONE },
        /* plaintext after the 220 must be dropped, never read as a reply */
        { "STARTTLS", "220 2.0.0 Ready to start TLS\r\n250 injected\r\n", A_TLS },
        { "EHLO kickmail.test", EHLO_PIPE, A_NONE },
        { "MAIL FROM:<a@src.example> SIZE=3", "250 2.1.0 Ok\r\n", A_NONE },
        { "RCPT", "250 2.1.5 Ok\r\n", A_NONE },
        { "DATA", "354 go\r\n", A_NONE },
        { "<DATA>", "250 2.0.0 Ok: over TLS\r\n", A_NONE },
        { "QUIT", "221 2.0.0 Bye\r\n", A_NONE },
    };
    struct run r;
    struct tmsg m;
    char err[256];

    if (!have_cert)
        skip();
    run_init(&r, script, N_(script));
    r.f.tls = server_ctx();
    r.opts.tls = SMTPC_TLS_MAY;
    r.opts.tls_ctx = tls_client_ctx(err, sizeof err);
    assert_non_null(r.opts.tls_ctx);
    r.opts.expect_helo = "mx.acme.example";     /* also the SNI */
    tmsg_init(&m, "a@src.example", "x@acme.example", NULL, NULL);
    tmsg_body(&m, "x\r\n");
    r.o.msgs[0] = &m;
    r.o.nmsgs = 1;
    run_go(&r);
    run_check_script(&r);
    assert_result(&m, 0, 250, "250 2.0.0 Ok: over TLS");
    assert_closed(&r, 0, "");
    tmsg_free(&m);
    tls_ctx_free(r.f.tls);
    tls_ctx_free(r.opts.tls_ctx);
    run_free(&r);
}

static void test_encrypt_not_offered(void **state)
{
    static const struct step script[] = {
        { NULL, BANNER, A_NONE },
        { "EHLO", EHLO_PIPE, A_NONE },
        { "QUIT", "221 2.0.0 Bye\r\n", A_NONE },
    };
    struct run r;
    char err[256];

    run_init(&r, script, N_(script));
    r.opts.tls = SMTPC_TLS_ENCRYPT;
    r.opts.tls_ctx = tls_client_ctx(err, sizeof err);
    assert_non_null(r.opts.tls_ctx);
    run_go(&r);
    run_check_script(&r);
    assert_int_equal(r.o.nready, 0);
    assert_closed(&r, -1, "TLS is required, but was not offered by host 127.0.0.1[127.0.0.1]");
    tls_ctx_free(r.opts.tls_ctx);
    run_free(&r);
}

/* may, and the handshake fails: the connection fails (reported), nothing sent. */
static void test_starttls_handshake_fails(void **state)
{
    static const struct step script[] = {
        { NULL, BANNER, A_NONE },
        { "EHLO", "250-mx.acme.example\r\n250 STARTTLS\r\n", A_NONE },
        { "STARTTLS", "220 2.0.0 Ready\r\n", A_CLOSE },
    };
    struct run r;
    char err[256];

    run_init(&r, script, N_(script));
    r.opts.tls = SMTPC_TLS_MAY;
    r.opts.tls_ctx = tls_client_ctx(err, sizeof err);
    run_go(&r);
    run_check_script(&r);
    assert_int_equal(r.o.nready, 0);
    assert_closed(&r, -1, "TLS handshake with 127.0.0.1[127.0.0.1] failed");
    tls_ctx_free(r.opts.tls_ctx);
    run_free(&r);
}

/* may, STARTTLS refused by the server: carry on in plaintext. */
static void test_starttls_refused(void **state)
{
    static const struct step script[] = {
        { NULL, BANNER, A_NONE },
        { "EHLO", "250-mx.acme.example\r\n250 STARTTLS\r\n", A_NONE },
        { "STARTTLS", "454 4.7.0 TLS not available\r\n", A_NONE },
        { "QUIT", "221 2.0.0 Bye\r\n", A_NONE },
    };
    struct run r;
    char err[256];

    run_init(&r, script, N_(script));
    r.opts.tls = SMTPC_TLS_MAY;
    r.opts.tls_ctx = tls_client_ctx(err, sizeof err);
    run_go(&r);
    run_check_script(&r);
    assert_int_equal(r.o.nready, 1);
    assert_closed(&r, 0, "");
    tls_ctx_free(r.opts.tls_ctx);
    run_free(&r);
}

static int drip_off = 0, drip_on = 1;

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_prestate(test_pipelining, &drip_off),
        cmocka_unit_test_prestate(test_pipelining, &drip_on),
        cmocka_unit_test(test_no_pipelining),
        cmocka_unit_test(test_452_split),
        cmocka_unit_test(test_452_split_plain),
        cmocka_unit_test(test_452_no_progress),
        cmocka_unit_test(test_partial_rcpt),
        cmocka_unit_test(test_all_rcpt_fail_pipelined),
        cmocka_unit_test(test_all_rcpt_fail_plain),
        cmocka_unit_test(test_mail_refused),
        cmocka_unit_test(test_size_too_big),
        cmocka_unit_test(test_bad_address),
        cmocka_unit_test(test_dot_stuffing),
        cmocka_unit_test(test_big_body),
        cmocka_unit_test(test_helo_fallback),
        cmocka_unit_test(test_expect_helo_banner),
        cmocka_unit_test(test_expect_helo_ehlo),
        cmocka_unit_test(test_banner_refused),
        cmocka_unit_test(test_421_mid_session),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_timeout_banner),
        cmocka_unit_test(test_lost_connection),
        cmocka_unit_test(test_malformed_reply),
        cmocka_unit_test(test_long_reply),
        cmocka_unit_test(test_connect_refused),
        cmocka_unit_test(test_connect_fails_at_once),
        cmocka_unit_test(test_connect_timeout),
        cmocka_unit_test(test_abort_during_data),
        cmocka_unit_test(test_abort_in_ready),
        cmocka_unit_test(test_abort_in_done),
        cmocka_unit_test(test_quit_in_done),
        cmocka_unit_test(test_starttls_may),
        cmocka_unit_test(test_encrypt_not_offered),
        cmocka_unit_test(test_starttls_handshake_fails),
        cmocka_unit_test(test_starttls_refused),
    };

    signal(SIGPIPE, SIG_IGN);       /* as kickmaild does */
    if (getenv("KM_TEST_DEBUG") && *getenv("KM_TEST_DEBUG")) {
        log_init("test_smtp_client", 1);
        log_set_debug(1);
    }
    return cmocka_run_group_tests(tests, tls_setup, tls_teardown);
}

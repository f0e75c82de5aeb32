/*
 * fuzz_smtp_session — libFuzzer target for the inbound SMTP session: the
 * input is what a client sends, fed through the real server code
 * (smtp_server_adopt, session.c, the DATA decoder, the qmgr and a real spool)
 * over a socketpair on one libevent loop, as Dovecot's fuzz-smtp-server does.
 *
 * Set up once (LLVMFuzzerInitialize, with tests/unit/smtp_server_fixture.h):
 * a temporary directory (in /dev/shm when there is one, so the spool's
 * fdatasync costs nothing), two customers (acme.example takes any local
 * part; beta.example only bob and sales, with an 8 KB quota), small limits
 * so that they are crossed (16 KB messages; 32 KB of message data in
 * memory, 24 KB per client address; 20 recipients; 2 connections per
 * client address), STARTTLS with a throwaway certificate (without
 * scripts/gen-test-cert, no STARTTLS), the spool, the link table and the
 * qmgr, as kickmaild wires them; no line goes to syslog.
 *
 * Per input: up to four clients, their bytes separated by "~~~" CR LF in the
 * input (most inputs are one client), connected at once (the fourth from
 * the same address as the first two, so it is refused).  Each client's
 * bytes are written in chunks (their size is derived from its bytes: all at
 * once, or 1-64 bytes with the loop turning between them), then it shuts
 * its sending side; replies are read and kept (by some clients only when
 * they cannot write, with a small socket buffer: the server's output backs
 * up and it stops reading).  The loop runs until every session has ended
 * and closed its connection (still running after 20 s: abort, a hang is a
 * bug).  Then every message the input got queued is deleted, so nothing
 * piles up from one input to the next.
 *
 * Checked: the sessions end; each client's replies up to STARTTLS are
 * well-formed lines (three digits, " " or "-", CR LF, no other CR or LF:
 * nothing of the peer's breaks a reply) after the greeting, or the one 421
 * of a refused connection; the server's own invariants (memory accounting:
 * log_fatal on message bytes left counted); ASan, UBSan and LeakSanitizer
 * on everything.  FUZZ_TRACE=1 in the environment shows the log and each
 * client's replies on stderr (for replaying an input).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/log.h"
#include "queue/qmgr.h"
#include "smtp/smtp_server.h"
#include "smtp_server_fixture.h"        /* tests/unit/ */

#ifndef KM_TOPDIR
#define KM_TOPDIR "."
#endif

#define CHECK(x) do { if (!(x)) { fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #x); \
                                  abort(); } } while (0)

static struct srv_fixture F;
static int trace;               /* FUZZ_TRACE set: log and replies on stderr */

/* ---- set-up, once ---- */

static void cleanup(void)
{
    srv_fixture_remove(&F);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char err[1024];
    trace = getenv("FUZZ_TRACE") != NULL;
    if (trace)
        log_init("fuzz_smtp_session", 1);
    signal(SIGPIPE, SIG_IGN);
    atexit(cleanup);
    if (srv_fixture_start(&F, access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp", KM_TOPDIR,
                          "max_message_size = 16384\n"
                          "max_connections_per_client = 2\n"
                          "max_recipients = 20\n"
                          "max_bad_commands = 20\n"
                          "max_received_headers = 5\n"
                          "header_size_limit = 8192\n"
                          "line_length_limit = 2048\n"
                          "max_data_in_memory = 32768\n"
                          "max_data_in_memory_per_client = 24576\n",
                          "customer \"acme\" { domains = {\"acme.example\", \"acme.co.uk\"} }\n"
                          "customer \"beta\" {\n  domains = {\"beta.example\"}\n"
                          "  recipients = {\"bob\", \"sales\"}\n  quota = 8k\n}\n",
                          err, sizeof err) < 0) {
        fprintf(stderr, "fuzz_smtp_session: %s\n", err);
        exit(1);
    }
    fprintf(stderr, "fuzz_smtp_session: spool in %s, STARTTLS %s\n", F.dir,
            F.tls ? "on" : "off (no certificate)");
    return 0;
}

/* ---- one input ---- */

/* The client end of the socketpair. */
struct client {
    int fd;
    const uint8_t *data;
    size_t size, off, chunk;    /* chunk 0: everything at once */
    int lazy;                   /* reads only when it cannot write (a slow reader) */
    int sent;                   /* all written (or the server went away), SHUT_WR done */
    int closed;                 /* read EOF or an error */
    struct event *rev, *wev;
    char *out;                  /* what the server sent, up to STARTTLS's 220 */
    size_t nout, cap;
    int tls;                    /* STARTTLS was answered: the rest is TLS */
    int refused;                /* smtp_server_adopt said no (421 expected) */
};

/* Every reply line the server sent is "DDD" + " " or "-" + text + CR LF,
 * with no other CR or LF, and the first is the greeting; after
 * "220 2.0.0 Ready to start TLS" comes TLS.  A refused client gets one 421. */
static void check_replies(const struct client *c)
{
    static const char greeting[] = "220 mx.fixture.example ESMTP";
    static const char refusal[] = "421 4.7.0 mx.fixture.example Error: too many connections "
                                  "from your host\r\n";
    const char *p = c->out, *end = c->out + c->nout;
    if (c->refused) {
        CHECK(c->nout == sizeof refusal - 1 && !memcmp(p, refusal, c->nout));
        return;
    }
    CHECK(c->nout >= sizeof greeting - 1 && !memcmp(p, greeting, sizeof greeting - 1));
    while (p < end) {
        const char *lf = memchr(p, '\n', (size_t)(end - p));
        if (!lf) {
            CHECK(c->tls);      /* a line cut short only where TLS began */
            break;
        }
        size_t n = (size_t)(lf - p);
        CHECK(n >= 5 && p[n - 1] == '\r' && !memchr(p, '\r', n - 1));
        CHECK(p[0] >= '2' && p[0] <= '5' && p[1] >= '0' && p[1] <= '9' &&
              p[2] >= '0' && p[2] <= '9' && (p[3] == ' ' || p[3] == '-'));
        p = lf + 1;
    }
}

static void client_keep(struct client *c, const char *buf, size_t n)
{
    static const char tls[] = "220 2.0.0 Ready to start TLS\r\n";
    if (c->tls)
        return;
    if (c->nout + n > c->cap) {
        c->cap = (c->nout + n) * 2;
        c->out = realloc(c->out, c->cap);
        CHECK(c->out);
    }
    size_t from = c->nout > sizeof tls ? c->nout - sizeof tls : 0;
    memcpy(c->out + c->nout, buf, n);
    c->nout += n;
    char *t = memmem(c->out + from, c->nout - from, tls, sizeof tls - 1);
    if (t) {
        c->nout = (size_t)(t - c->out) + sizeof tls - 1;
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

/* The clients of the input being run, for hang(). */
static struct client *running;
static int nrunning;

static void hang(evutil_socket_t fd, short what, void *arg)
{
    fprintf(stderr, "fuzz_smtp_session: the session did not end within 20 s; %u sessions\n",
            smtp_server_sessions());
    for (int i = 0; i < nrunning; i++) {
        const struct client *c = &running[i];
        fprintf(stderr, "client %d: sent %zu of %zu%s%s%s, got %zu bytes\n", i + 1,
                c->off, c->size, c->sent ? ", done" : "", c->closed ? ", closed" : "",
                c->lazy ? ", slow reader" : "", c->nout);
    }
    abort();
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

static void deleted(int err, void *arg)
{
    CHECK(err == 0);
    *(int *)arg = 1;
}

/* Deletes every message queued (by this input): the next starts empty. */
static void purge(void)
{
    size_t n = qmgr_msg_count(), pos = 0, i = 0;
    struct qmsg *m;
    char err[256];
    int done = 0;
    if (n == 0)
        return;
    uint64_t *ids = calloc(n, sizeof *ids);
    CHECK(ids);
    while ((m = qmgr_msg_next(&pos)) && i < n)
        ids[i++] = m->id;
    CHECK(i == n);
    if (qmgr_delete(n, ids, deleted, &done, err, sizeof err) < 0) {
        fprintf(stderr, "fuzz_smtp_session: delete: %s\n", err);
        abort();
    }
    while (!done)
        event_base_loop(F.base, EVLOOP_ONCE);
    free(ids);
    CHECK(qmgr_msg_count() == 0);
}

/* The input is what up to MAX_CLIENTS clients send, one after the other,
 * separated by SPLIT; they are connected at once, in that order, from
 * these addresses (max_connections_per_client is 2: the fourth is refused
 * while the first two are there). */
#define MAX_CLIENTS 4
#define SPLIT "~~~\r\n"
static const char *const peers[MAX_CLIENTS] = {
    "192.0.2.1", "192.0.2.1", "192.0.2.2", "192.0.2.1",
};

static int clients_open(const struct client *c, int n)
{
    for (int i = 0; i < n; i++)
        if (!c[i].closed)
            return 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct client c[MAX_CLIENTS];
    struct timeval limit = { 20, 0 };
    int n = 0;

    memset(c, 0, sizeof c);
    for (size_t off = 0; n < MAX_CLIENTS; n++) {
        const uint8_t *end = n + 1 < MAX_CLIENTS ?
            memmem(data + off, size - off, SPLIT, sizeof SPLIT - 1) : NULL;
        c[n].data = data + off;
        c[n].size = end ? (size_t)(end - (data + off)) : size - off;
        client_pace(&c[n]);
        if (!end) {
            n++;
            break;
        }
        off = (size_t)(end - data) + sizeof SPLIT - 1;
    }
    struct event *guard = evtimer_new(F.base, hang, NULL);
    CHECK(guard);
    running = c;
    nrunning = n;
    evtimer_add(guard, &limit);
    for (int i = 0; i < n; i++) {
        int rc = srv_fixture_connect(&F, peers[i], c[i].lazy ? 4096 : 0, &c[i].fd);
        CHECK(rc != -2);
        c[i].refused = rc < 0;
        CHECK(c[i].refused == (i == 3));
        c[i].rev = event_new(F.base, c[i].fd, EV_READ | EV_PERSIST, client_read, &c[i]);
        c[i].wev = event_new(F.base, c[i].fd, EV_WRITE | EV_PERSIST, client_write, &c[i]);
        CHECK(c[i].rev && c[i].wev);
        event_add(c[i].rev, NULL);
        event_add(c[i].wev, NULL);
    }
    while (clients_open(c, n) || smtp_server_sessions() > 0)
        CHECK(event_base_loop(F.base, EVLOOP_ONCE) == 0);
    for (int i = 0; i < n; i++) {
        if (trace)
            fprintf(stderr, "---- client %d (%s, chunks of %zu%s) got:\n%.*s----\n",
                    i + 1, peers[i], c[i].chunk, c[i].lazy ? ", slow reader" : "",
                    (int)c[i].nout, c[i].out ? c[i].out : "");
        check_replies(&c[i]);
        free(c[i].out);
        event_free(c[i].rev);
        event_free(c[i].wev);
        close(c[i].fd);
    }
    event_free(guard);
    purge();
    return 0;
}

/*
 * fuzz_pop3_session — libFuzzer target for the POP3 session: the input is
 * what clients send, fed through the real server code (pop3_server_adopt,
 * session.c, login.c, drop.c, the worker threads, the password workers,
 * STLS with a throwaway certificate) over socketpairs on one libevent loop.
 *
 * Set up once (LLVMFuzzerInitialize, with tests/unit/pop3_server_fixture.h):
 * a temporary directory (in /dev/shm when there is one), the maildrops
 * alice@isp.example (delete mode, password "pw"), kim@isp.example (keep
 * mode, "pw") and acme (a domain maildrop, secret "s3cret"), APOP on,
 * failed logins delayed 1-2 ms, 3 connections per client address.
 *
 * Per input: the maildrops are made afresh (three small messages, one a
 * little over a 64 KiB read); up to three clients, their bytes separated by
 * "~~~" CR LF, connected at once (from 127.0.0.1, 192.0.2.1 -- not
 * loopback: no cleartext login -- and 127.0.0.1 again, so two may fight
 * over one maildrop).  Each client's bytes are written in chunks (all at
 * once or 1-64 bytes, chosen from its bytes), then it half-closes; some
 * clients read only when they cannot write (small socket buffer: the
 * server's output backs up).  The loop runs until every session has ended
 * (still running after 20 s: abort, a hang is a bug).
 *
 * Checked: the sessions end; each client's output up to STLS begins with
 * the greeting and every LF in it follows a CR (nothing of the peer's
 * breaks a reply line; the test messages hold no bare CR); the server's
 * invariants (log_fatal on a session freed holding its maildrop or its
 * work); ASan, UBSan and LeakSanitizer on everything.  FUZZ_TRACE=1 shows
 * the log and each client's output.
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
#include "pop3/pop3_server.h"
#include "pop3_server_fixture.h"        /* tests/unit/ */

#ifndef KM_TOPDIR
#define KM_TOPDIR "."
#endif

#define CHECK(x) do { if (!(x)) { fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #x); \
                                  abort(); } } while (0)

static struct pop3_fixture F;
static int trace;

static void cleanup(void)
{
    pop3_fixture_remove(&F);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char err[1024];
    trace = getenv("FUZZ_TRACE") != NULL;
    if (trace)
        log_init("fuzz_pop3_session", 1);
    signal(SIGPIPE, SIG_IGN);
    atexit(cleanup);
    if (pop3_fixture_start(&F, access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp", KM_TOPDIR,
                           "apop = true", err, sizeof err) < 0) {
        fprintf(stderr, "fuzz_pop3_session: %s\n", err);
        exit(1);
    }
    fprintf(stderr, "fuzz_pop3_session: maildrops in %s, STLS %s\n", F.root,
            F.tls ? "on" : "off (no certificate)");
    return 0;
}

struct client {
    int fd;
    const uint8_t *data;
    size_t size, off, chunk;
    int lazy, sent, closed, tls;
    struct event *rev, *wev;
    char *out;
    size_t nout, cap;
};

static void check_output(const struct client *c)
{
    static const char greeting[] = "+OK kickmail POP3 server ready.";
    CHECK(c->nout >= sizeof greeting - 1 && !memcmp(c->out, greeting, sizeof greeting - 1));
    for (size_t i = 0; i < c->nout; i++)
        if (c->out[i] == '\n')
            CHECK(i > 0 && c->out[i - 1] == '\r');
    CHECK(c->tls || c->nout == 0 || c->out[c->nout - 1] == '\n');
}

static void client_keep(struct client *c, const char *buf, size_t n)
{
    static const char stls[] = "+OK Begin TLS negotiation now.\r\n";
    if (c->tls)
        return;
    if (c->nout + n > c->cap) {
        c->cap = (c->nout + n) * 2;
        c->out = realloc(c->out, c->cap);
        CHECK(c->out);
    }
    size_t from = c->nout > sizeof stls ? c->nout - sizeof stls : 0;
    memcpy(c->out + c->nout, buf, n);
    c->nout += n;
    char *t = memmem(c->out + from, c->nout - from, stls, sizeof stls - 1);
    if (t) {
        c->nout = (size_t)(t - c->out) + sizeof stls - 1;
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
            c->off = c->size;
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
        return;
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n > 0)
        client_keep(c, buf, (size_t)n);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        c->closed = 1;
        event_del(c->rev);
    }
}

static void hang(evutil_socket_t fd, short what, void *arg)
{
    fprintf(stderr, "fuzz_pop3_session: the sessions did not end within 20 s; %u left\n",
            pop3_server_sessions());
    abort();
}

static void client_pace(struct client *c)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < c->size; i++)
        h = (h ^ c->data[i]) * 16777619u;
    c->chunk = h % 4 == 0 ? 0 : 1 + (h >> 2) % 64;
    c->lazy = (h >> 10) % 4 == 0;
}

#define MAX_CLIENTS 3
#define SPLIT "~~~\r\n"
static const char *const peers[MAX_CLIENTS] = { "127.0.0.1", "192.0.2.1", "127.0.0.1" };

static void reset_maildrops(void)
{
    pop3_fixture_rmtree(F.root);
    CHECK(pop3_fixture_put(&F, "alice@isp.example", 1, 2) == 0);
    CHECK(pop3_fixture_put(&F, "alice@isp.example", 2, 3500) == 0);
    CHECK(pop3_fixture_put(&F, "kim@isp.example", 3, 1) == 0);
    CHECK(pop3_fixture_put(&F, "acme", 4, 0) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct client c[MAX_CLIENTS];
    struct timeval limit = { 20, 0 };
    int n = 0;
    reset_maildrops();
    auth_guard_reset();
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
    evtimer_add(guard, &limit);
    for (int i = 0; i < n; i++) {
        CHECK(pop3_fixture_connect(&F, peers[i], c[i].lazy ? 4096 : 0, &c[i].fd) == 0);
        c[i].rev = event_new(F.base, c[i].fd, EV_READ | EV_PERSIST, client_read, &c[i]);
        c[i].wev = event_new(F.base, c[i].fd, EV_WRITE | EV_PERSIST, client_write, &c[i]);
        CHECK(c[i].rev && c[i].wev);
        event_add(c[i].rev, NULL);
        event_add(c[i].wev, NULL);
    }
    for (;;) {
        int open = 0;
        for (int i = 0; i < n; i++)
            open |= !c[i].closed;
        if (!open && pop3_server_sessions() == 0)
            break;
        CHECK(event_base_loop(F.base, EVLOOP_ONCE) == 0);
    }
    for (int i = 0; i < n; i++) {
        if (trace)
            fprintf(stderr, "---- client %d (%s, chunks of %zu%s) got:\n%.*s----\n", i + 1,
                    peers[i], c[i].chunk, c[i].lazy ? ", slow reader" : "", (int)c[i].nout,
                    c[i].out ? c[i].out : "");
        check_output(&c[i]);
        free(c[i].out);
        event_free(c[i].rev);
        event_free(c[i].wev);
        close(c[i].fd);
    }
    event_free(guard);
    return 0;
}

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

#include "session_clients.h"

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

static void check_output(const struct client *c)
{
    static const char greeting[] = "+OK kickmail POP3 server ready.";
    CHECK(c->nout >= sizeof greeting - 1 && !memcmp(c->out, greeting, sizeof greeting - 1));
    for (size_t i = 0; i < c->nout; i++)
        if (c->out[i] == '\n')
            CHECK(i > 0 && c->out[i - 1] == '\r');
    CHECK(c->tls || c->nout == 0 || c->out[c->nout - 1] == '\n');
}

static void hang(evutil_socket_t fd, short what, void *arg)
{
    fprintf(stderr, "fuzz_pop3_session: the sessions did not end within 20 s; %u left\n",
            pop3_server_sessions());
    abort();
}

#define MAX_CLIENTS 3
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
    reset_maildrops();
    auth_guard_reset();
    int n = clients_split(data, size, c, MAX_CLIENTS, "+OK Begin TLS negotiation now.\r\n");
    struct event *guard = evtimer_new(F.base, hang, NULL);
    CHECK(guard);
    evtimer_add(guard, &limit);
    for (int i = 0; i < n; i++) {
        CHECK(pop3_fixture_connect(&F, peers[i], c[i].lazy ? 4096 : 0, &c[i].fd) == 0);
        client_watch(F.base, &c[i]);
    }
    while (clients_open(c, n) || pop3_server_sessions() > 0)
        CHECK(event_base_loop(F.base, EVLOOP_ONCE) == 0);
    clients_finish(c, n, peers, trace, check_output);
    event_free(guard);
    return 0;
}

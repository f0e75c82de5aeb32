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

#include "session_clients.h"

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
static const char *const peers[MAX_CLIENTS] = {
    "192.0.2.1", "192.0.2.1", "192.0.2.2", "192.0.2.1",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct client c[MAX_CLIENTS];
    struct timeval limit = { 20, 0 };
    int n = clients_split(data, size, c, MAX_CLIENTS, "220 2.0.0 Ready to start TLS\r\n");

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
        client_watch(F.base, &c[i]);
    }
    while (clients_open(c, n) || smtp_server_sessions() > 0)
        CHECK(event_base_loop(F.base, EVLOOP_ONCE) == 0);
    clients_finish(c, n, peers, trace, check_replies);
    event_free(guard);
    purge();
    return 0;
}

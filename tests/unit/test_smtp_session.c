/*
 * test_smtp_session — the inbound SMTP session driven over socketpairs
 * (smtp_server_fixture.h: the real server, qmgr and spool in a temporary
 * directory), where the socket buffers can be made small: a client that
 * pipelines commands and a message, shuts down its sending side and reads
 * only then gets every reply, the 250 of its message included, even when
 * the replies had backed up in the server (found by fuzz_smtp_session: they
 * were dropped at the EOF); the same when the client stops in the middle of
 * a message (the replies before it); with few replies; a connection over
 * max_connections_per_client gets its 421.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include <event2/buffer.h>

#include "smtp_server_fixture.h"

static struct srv_fixture F;

/* ---- a client end that reads only when told to ---- */

struct peer {
    int fd;
    struct evbuffer *got;       /* everything the server sent */
    int eof;
    struct event *rev;
};

static void peer_read(evutil_socket_t fd, short what, void *arg)
{
    struct peer *p = arg;
    char buf[4096];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n > 0) {
        evbuffer_add(p->got, buf, (size_t)n);
    } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        p->eof = 1;
        event_del(p->rev);
    }
}

static void peer_open(struct peer *p, int sndbuf, const char *peer_addr, int want_rc)
{
    memset(p, 0, sizeof *p);
    assert_int_equal(srv_fixture_connect(&F, peer_addr, sndbuf, &p->fd), want_rc);
    p->got = evbuffer_new();
    p->rev = event_new(F.base, p->fd, EV_READ | EV_PERSIST, peer_read, p);
}

static void peer_close(struct peer *p)
{
    event_free(p->rev);
    evbuffer_free(p->got);
    close(p->fd);
}

/* Sends text whole (it fits into the socket buffers). */
static void peer_send(struct peer *p, const char *text)
{
    size_t len = strlen(text);
    assert_int_equal(send(p->fd, text, len, MSG_NOSIGNAL), (ssize_t)len);
}

static void run_ms(long ms)
{
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    event_base_loopexit(F.base, &tv);
    event_base_dispatch(F.base);
}

/* Reads until the server closes (10 s at most). */
static void peer_read_to_eof(struct peer *p)
{
    event_add(p->rev, NULL);
    for (int i = 0; i < 1000 && !p->eof; i++)
        run_ms(10);
    assert_true(p->eof);
}

/* The reply codes of the lines received, e.g. "220 250 214 214": one per
 * reply (continuation lines "DDD-" skipped); every line ends in CR LF. */
static char *codes_of(struct evbuffer *got)
{
    size_t len = evbuffer_get_length(got), at = 0, n = 0;
    const char *p = (const char *)evbuffer_pullup(got, -1);
    char *out = calloc(len / 2 + 2, 1);
    assert_non_null(out);
    while (at < len) {
        const char *lf = memchr(p + at, '\n', len - at);
        assert_non_null(lf);                    /* no line cut short */
        assert_true(lf - (p + at) >= 5 && lf[-1] == '\r');
        if (p[at + 3] == ' ')
            n += (size_t)sprintf(out + n, "%s%.3s", n ? " " : "", p + at);
        at = (size_t)(lf - p) + 1;
    }
    return out;
}

/* "220 250 ..." expected: the greeting, EHLO, n times 214, MAIL, RCPT,
 * DATA (and, when the message is whole, the dot). */
static char *want_codes(int n, int whole)
{
    char *w = malloc(16 + 4 * (size_t)n + 16);
    size_t k = (size_t)sprintf(w, "220 250");
    for (int i = 0; i < n; i++)
        k += (size_t)sprintf(w + k, " 214");
    sprintf(w + k, whole ? " 250 250 354 250" : " 250 250 354");
    return w;
}

/* EHLO, n HELP, a transaction whose message is whole or stops half-way. */
static char *pipelined(int n, int whole)
{
    static const char txn[] = "MAIL FROM:<a@sender.example>\r\nRCPT TO:<bob@acme.example>\r\n"
                              "DATA\r\nSubject: half\r\n\r\nx\r\n";
    char *s = malloc(32 + 6 * (size_t)n + sizeof txn + 8);
    size_t k = (size_t)sprintf(s, "EHLO client.example\r\n");
    for (int i = 0; i < n; i++)
        k += (size_t)sprintf(s + k, "HELP\r\n");
    sprintf(s + k, "%s%s", txn, whole ? ".\r\n" : "");
    return s;
}

/* The client pipelines n HELP and a message and, without reading, waits
 * 300 ms (a whole message is stored: its 250 waits behind the HELP
 * replies), half-closes, waits 300 ms (the server reaches the EOF), then
 * reads. */
static void half_closed_reader(int n, int sndbuf, int whole)
{
    struct peer p;
    size_t before = qmgr_msg_count();
    char *text = pipelined(n, whole), *want = want_codes(n, whole);
    peer_open(&p, sndbuf, "192.0.2.1", 0);
    peer_send(&p, text);
    run_ms(300);
    assert_int_equal(qmgr_msg_count(), before + (whole ? 1 : 0));
    assert_int_equal(shutdown(p.fd, SHUT_WR), 0);
    run_ms(300);
    peer_read_to_eof(&p);
    char *got = codes_of(p.got);
    assert_string_equal(got, want);
    assert_int_equal(smtp_server_sessions(), 0);
    assert_int_equal(qmgr_msg_count(), before + (whole ? 1 : 0));
    free(got);
    free(want);
    free(text);
    peer_close(&p);
}

static void test_half_closed_slow_reader_gets_every_reply(void **state)
{
    /* ~16 kB of replies against a 4 kB socket buffer: most wait in the
     * server when the EOF comes */
    half_closed_reader(200, 4096, 1);
}

/* The same, the client gone in the middle of the message: the replies to
 * what came before still go out, nothing is queued. */
static void test_half_closed_in_data_gets_the_replies_before(void **state)
{
    half_closed_reader(200, 4096, 0);
}

static void test_half_closed_reader_few_replies(void **state)
{
    half_closed_reader(2, 0, 1);
}

static void test_over_connections_per_client_gets_421(void **state)
{
    struct peer a, b;
    peer_open(&a, 0, "192.0.2.9", 0);
    peer_open(&b, 0, "192.0.2.9", -1);      /* max_connections_per_client = 1 */
    peer_read_to_eof(&b);
    evbuffer_add(b.got, "", 1);
    assert_string_equal((char *)evbuffer_pullup(b.got, -1),
                        "421 4.7.0 mx.fixture.example Error: too many connections "
                        "from your host\r\n");
    peer_send(&a, "QUIT\r\n");
    peer_read_to_eof(&a);
    char *got = codes_of(a.got);
    assert_string_equal(got, "220 221");
    free(got);
    peer_close(&a);
    peer_close(&b);
}

static int group_setup(void **state)
{
    char err[1024];
    if (srv_fixture_start(&F, "/tmp", NULL, "max_connections_per_client = 1",
                          "customer \"acme\" { domains = {\"acme.example\"} }",
                          err, sizeof err) < 0) {
        fprintf(stderr, "smtp_server_fixture: %s\n", err);
        srv_fixture_remove(&F);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    srv_fixture_stop(&F);
    srv_fixture_remove(&F);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_half_closed_slow_reader_gets_every_reply),
        cmocka_unit_test(test_half_closed_in_data_gets_the_replies_before),
        cmocka_unit_test(test_half_closed_reader_few_replies),
        cmocka_unit_test(test_over_connections_per_client_gets_421),
    };
    log_init("test_smtp_session", getenv("TEST_VERBOSE") != NULL);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

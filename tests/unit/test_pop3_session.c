/*
 * test_pop3_session — the POP3 session driven over socketpairs through the
 * real server code (pop3_server_adopt, session, login, maildrop access,
 * the worker threads, the password workers), with a fake maildrop tree
 * made afresh for each row (tests/unit/pop3_server_fixture.h).  Each row's
 * client input is sent whole, one byte at a time and in pieces of 3 (the
 * loop turning between pieces); the three transcripts must be identical,
 * must contain the row's expected replies in order, and the maildrops must
 * hold the expected number of files afterwards.  Rows from a non-loopback
 * address check the cleartext rule inside a session.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <errno.h>
#include <unistd.h>
#include <cmocka.h>

#include <event2/event.h>

#include "pop3_server_fixture.h"

static struct pop3_fixture F;

#define MAX_EXPECT 16

static const struct {
    const char *name;
    const char *peer;
    const char *in;             /* the client's bytes; then it half-closes */
    const char *expect[MAX_EXPECT];     /* substrings of the transcript, in order */
    int alice_after, kim_new_after, kim_cur_after;   /* files left */
} rows[] = {
    { "delete mode", "127.0.0.1",
      "USER alice@isp.example\r\nPASS pw\r\nSTAT\r\nLIST\r\nUIDL 1\r\nRETR 1\r\nTOP 2 1\r\n"
      "DELE 1\r\nSTAT\r\nLIST 1\r\nQUIT\r\n",
      { "+OK kickmail POP3 server ready.\r\n", "+OK\r\n", "+OK Logged in: 2 messages",
        "+OK 2 ", "+OK 2 messages", "\r\n1 ", "\r\n2 ", "\r\n.\r\n", "+OK 1 ",
        "+OK ", " octets\r\nFrom: a@example.org\r\nSubject: m1\r\n\r\n..dot line\r\nbody line 0 of 1",
        "+OK\r\nFrom: a@example.org\r\nSubject: m2\r\n\r\n..dot line\r\n.\r\n",
        "+OK Message 1 marked", "+OK 1 ", "-ERR Message 1 is deleted.",
        "+OK Logging out, 1 messages deleted.\r\n" },
      1, 1, 0 },
    { "keep mode", "127.0.0.1",
      "USER kim@isp.example\r\nPASS pw\r\nCAPA\r\nRETR 1\r\nQUIT\r\n",
      { "+OK Logged in: 1 messages", "EXPIRE 2\r\n", "+OK ", " octets\r\n",
        "+OK Logging out, 0 messages deleted." },
      2, 0, 1 },
    { "before login", "127.0.0.1",
      "STAT\r\nLIST\r\nNOOP\r\nRETR 1\r\nCAPA\r\nQUIT\r\n",
      { "-ERR Log in first: STAT", "-ERR Log in first: LIST", "-ERR Log in first: NOOP",
        "-ERR Log in first: RETR", "+OK Capability list follows\r\n", "USER\r\n",
        "SASL PLAIN\r\n", "EXPIRE 2 USER\r\n", "IMPLEMENTATION kickmail\r\n.\r\n",
        "+OK Logging out.\r\n" },
      2, 1, 0 },
    { "failed logins", "127.0.0.1",
      "USER alice@isp.example\r\nPASS nope\r\nUSER nobody@isp.example\r\nPASS pw\r\n"
      "PASS pw\r\nQUIT\r\n",
      { "+OK\r\n", "-ERR [AUTH] Authentication failed.\r\n", "+OK\r\n",
        "-ERR [AUTH] Authentication failed.\r\n", "-ERR No user name given",
        "+OK Logging out." },
      2, 1, 0 },
    { "auth plain", "127.0.0.1",
      "AUTH PLAIN AGFsaWNlQGlzcC5leGFtcGxlAHB3\r\nSTAT\r\nQUIT\r\n",
      { "+OK Logged in: 2 messages", "+OK 2 ", "+OK Logging out" }, 2, 1, 0 },
    { "auth plain continued and cancelled", "127.0.0.1",
      "AUTH PLAIN\r\n*\r\nAUTH plain\r\nAGFsaWNlQGlzcC5leGFtcGxlAHB3\r\nQUIT\r\n",
      { "+ \r\n", "-ERR Authentication cancelled.", "+ \r\n", "+OK Logged in",
        "+OK Logging out" }, 2, 1, 0 },
    { "domain maildrop", "127.0.0.1",
      "USER ACME\r\nPASS s3cret\r\nSTAT\r\nDELE 1\r\nQUIT\r\n",
      { "+OK Logged in: 1 messages", "+OK 1 ", "+OK Logging out, 1 messages deleted." },
      2, 1, 0 },
    { "dropped after DELE", "127.0.0.1",
      "USER alice@isp.example\r\nPASS pw\r\nDELE 1\r\nDELE 2\r\n",
      { "+OK Logged in", "+OK Message 1 marked", "+OK Message 2 marked" }, 2, 1, 0 },
    { "bad commands", "127.0.0.1",
      "X\r\nX\r\nX\r\nX\r\nX\r\nX\r\nX\r\nX\r\nX\r\nX\r\nX\r\nX\r\nX\r\nX\r\nX\r\nX\r\nX\r\n"
      "X\r\nX\r\nX\r\nQUIT\r\n",
      { "-ERR Unknown command.", "-ERR Too many bad commands, closing the connection.\r\n" },
      2, 1, 0 },
    { "long line", "127.0.0.1",
      "USER aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
      "\r\nQUIT\r\n",
      { "-ERR Argument too long.", "+OK Logging out." }, 2, 1, 0 },
    { "pipelined RETR and TOP answered in order", "127.0.0.1",
      "USER alice@isp.example\r\nPASS pw\r\nRETR 2\r\nTOP 1 0\r\nRETR 3\r\nRETR 1\r\n"
      "TOP 2 1\r\nTOP 1 x\r\nDELE 2\r\nRETR 2\r\nRETR 1\r\nQUIT\r\n",
      { "+OK Logged in: 2 messages",
        " octets\r\nFrom: a@example.org\r\nSubject: m2\r\n\r\n..dot line\r\nbody line 0 of 2"
        "\r\nbody line 1 of 2\r\nbody line 2 of 2\r\n.\r\n",
        "+OK\r\nFrom: a@example.org\r\nSubject: m1\r\n\r\n.\r\n",
        "-ERR There is no message 3.\r\n",
        " octets\r\nFrom: a@example.org\r\nSubject: m1\r\n\r\n..dot line\r\nbody line 0 of 1"
        "\r\n.\r\n",
        "+OK\r\nFrom: a@example.org\r\nSubject: m2\r\n\r\n..dot line\r\n.\r\n",
        "-ERR Invalid number of lines.\r\n", "+OK Message 2 marked",
        "-ERR Message 2 is deleted.\r\n", " octets\r\nFrom: a@example.org\r\nSubject: m1\r\n",
        "+OK Logging out, 1 messages deleted.\r\n" },
      1, 1, 0 },
    { "not loopback: no cleartext", "192.0.2.1",
      "CAPA\r\nUSER alice@isp.example\r\nAUTH PLAIN AGFsaWNlQGlzcC5leGFtcGxlAHB3\r\nAUTH\r\n"
      "QUIT\r\n",
      { "+OK Capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\n"
        "PIPELINING\r\n",
        "-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.",
        "-ERR [AUTH] Plaintext authentication disallowed", "+OK\r\n.\r\n",
        "+OK Logging out." }, 2, 1, 0 },
};

static int count_files(const char *drop, const char *sub)
{
    char path[700];
    const char *at = strchr(drop, '@');
    snprintf(path, sizeof path, "%s/%s/%.*s/%s", F.root, at + 1, (int)(at - drop), drop, sub);
    DIR *d = opendir(path);
    int n = 0;
    struct dirent *e;
    if (!d)
        return 0;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static void reset_maildrops(void)
{
    pop3_fixture_rmtree(F.root);
    assert_int_equal(pop3_fixture_put(&F, "alice@isp.example", 1, 1), 0);
    assert_int_equal(pop3_fixture_put(&F, "alice@isp.example", 2, 3), 0);
    assert_int_equal(pop3_fixture_put(&F, "kim@isp.example", 3, 2), 0);
    assert_int_equal(pop3_fixture_put(&F, "acme", 4, 0), 0);
}

/* Runs one client: sends in[] in pieces of step (0: all at once), then
 * half-closes, and reads until the server closes.  Returns the transcript
 * (malloc'ed). */
static char *run_client(const char *peer, const char *in, size_t step, size_t *outlen)
{
    int fd;
    size_t n = strlen(in), off = 0, len = 0, cap = 65536;
    char *out = malloc(cap);
    assert_int_equal(pop3_fixture_connect(&F, peer, 0, &fd), 0);
    int wr = 1;
    for (int spins = 0; spins < 2000000; spins++) {
        if (wr) {
            size_t k = step && n - off > step ? step : n - off;
            ssize_t w = k ? send(fd, in + off, k, MSG_NOSIGNAL) : 0;
            if (w > 0)
                off += (size_t)w;
            else if (w < 0 && errno != EAGAIN)
                off = n;
            if (off == n) {
                shutdown(fd, SHUT_WR);
                wr = 0;
            }
        }
        event_base_loop(F.base, EVLOOP_NONBLOCK);
        if (len + 16384 > cap)
            out = realloc(out, cap *= 2);
        ssize_t r = recv(fd, out + len, cap - len - 1, 0);
        if (r > 0)
            len += (size_t)r;
        else if (r == 0 || (r < 0 && errno != EAGAIN))
            break;
        else if (!wr)
            event_base_loop(F.base, EVLOOP_ONCE);   /* waiting for the server */
    }
    close(fd);
    while (pop3_server_sessions() > 0)
        event_base_loop(F.base, EVLOOP_ONCE);
    out[len] = 0;
    *outlen = len;
    return out;
}

static void test_rows(void **state)
{
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        char *first = NULL;
        size_t firstlen = 0;
        size_t steps[] = { 0, 1, 3 };
        for (size_t k = 0; k < 3; k++) {
            size_t len;
            reset_maildrops();
            char *got = run_client(rows[r].peer, rows[r].in, steps[k], &len);
            const char *p = got;
            for (int e = 0; e < MAX_EXPECT && rows[r].expect[e]; e++) {
                const char *hit = strstr(p, rows[r].expect[e]);
                if (!hit)
                    fail_msg("%s (pieces of %zu): no '%s' after offset %zu in:\n%s",
                             rows[r].name, steps[k], rows[r].expect[e], (size_t)(p - got), got);
                p = hit + strlen(rows[r].expect[e]);
            }
            int a = count_files("alice@isp.example", "new");
            int kn = count_files("kim@isp.example", "new");
            int kc = count_files("kim@isp.example", "cur");
            if (a != rows[r].alice_after || kn != rows[r].kim_new_after ||
                kc != rows[r].kim_cur_after)
                fail_msg("%s (pieces of %zu): files alice %d kim new %d cur %d", rows[r].name,
                         steps[k], a, kn, kc);
            if (!first) {
                first = got;
                firstlen = len;
                continue;
            }
            if (len != firstlen || memcmp(got, first, len))
                fail_msg("%s: the transcript in pieces of %zu differs:\n%s\n---- whole:\n%s",
                         rows[r].name, steps[k], got, first);
            free(got);
        }
        free(first);
    }
}

/* Two sessions on one maildrop: the second gets [IN-USE] and may log in
 * once the first has gone. */
static void test_in_use(void **state)
{
    int a, b;
    char buf[4096];
    reset_maildrops();
    assert_int_equal(pop3_fixture_connect(&F, "127.0.0.1", 0, &a), 0);
    assert_int_equal(pop3_fixture_connect(&F, "127.0.0.1", 0, &b), 0);
    const char *login = "USER alice@isp.example\r\nPASS pw\r\n";
    assert_int_equal(send(a, login, strlen(login), 0), (ssize_t)strlen(login));
    size_t len = 0;
    while (!strstr(buf, "Logged in")) {
        event_base_loop(F.base, EVLOOP_ONCE);
        ssize_t r = recv(a, buf + len, sizeof buf - len - 1, 0);
        if (r > 0)
            len += (size_t)r;
        buf[len] = 0;
    }
    assert_int_equal(send(b, login, strlen(login), 0), (ssize_t)strlen(login));
    len = 0;
    buf[0] = 0;
    while (!strstr(buf, "-ERR [IN-USE]")) {
        event_base_loop(F.base, EVLOOP_ONCE);
        ssize_t r = recv(b, buf + len, sizeof buf - len - 1, 0);
        if (r > 0)
            len += (size_t)r;
        buf[len] = 0;
    }
    close(a);
    while (pop3_server_sessions() > 1)
        event_base_loop(F.base, EVLOOP_ONCE);
    assert_int_equal(send(b, login, strlen(login), 0), (ssize_t)strlen(login));
    while (!strstr(buf, "Logged in")) {
        event_base_loop(F.base, EVLOOP_ONCE);
        ssize_t r = recv(b, buf + len, sizeof buf - len - 1, 0);
        if (r > 0)
            len += (size_t)r;
        buf[len] = 0;
    }
    close(b);
    while (pop3_server_sessions() > 0)
        event_base_loop(F.base, EVLOOP_ONCE);
}

/* The path of alice's message put as number n (pop3_fixture_put). */
static void alice_path(int n, char *out, size_t len)
{
    char dir[700], prefix[32];
    snprintf(dir, sizeof dir, "%s/isp.example/alice/new", F.root);
    snprintf(prefix, sizeof prefix, "%d.", 1700000000 + n);
    DIR *d = opendir(dir);
    struct dirent *e;
    out[0] = 0;
    while (d && (e = readdir(d)))
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0)
            snprintf(out, len, "%s/%s", dir, e->d_name);
    if (d)
        closedir(d);
    assert_true(out[0] != 0);
}

/* Logs in to alice on a new session; returns the client's end. */
static int alice_login(int sndbuf)
{
    int fd;
    char buf[4096];
    size_t len = 0;
    assert_int_equal(pop3_fixture_connect(&F, "127.0.0.1", sndbuf, &fd), 0);
    const char *login = "USER alice@isp.example\r\nPASS pw\r\n";
    assert_int_equal(send(fd, login, strlen(login), 0), (ssize_t)strlen(login));
    buf[0] = 0;
    while (!strstr(buf, "Logged in")) {
        event_base_loop(F.base, EVLOOP_ONCE);
        ssize_t r = recv(fd, buf + len, sizeof buf - len - 1, 0);
        if (r > 0)
            len += (size_t)r;
        buf[len] = 0;
    }
    return fd;
}

/* Reads what the server sends until it closes; the transcript (malloc'ed). */
static char *read_all(int fd, size_t *outlen)
{
    size_t len = 0, cap = 1 << 16;
    char *out = malloc(cap);
    for (;;) {
        if (len + 65536 > cap)
            out = realloc(out, cap *= 2);
        ssize_t r = recv(fd, out + len, cap - len - 1, 0);
        if (r > 0)
            len += (size_t)r;
        else if (r == 0 || errno != EAGAIN)
            break;
        else
            event_base_loop(F.base, EVLOOP_ONCE);
    }
    out[len] = 0;
    *outlen = len;
    return out;
}

/* 40 RETRs sent in one write are read by one work (not 40: one worker round
 * trip each, as before), and answered in order; the message removed from
 * disk after the listing gets its -ERR in its place. */
static void test_pipelined_retr_one_work(void **state)
{
    char path[1024], cmds[2048], want[128];
    size_t n = 0, len;
    pop3_fixture_rmtree(F.root);
    for (int i = 1; i <= 40; i++)
        assert_int_equal(pop3_fixture_put(&F, "alice@isp.example", i, 2), 0);
    int fd = alice_login(0);
    alice_path(7, path, sizeof path);
    assert_int_equal(unlink(path), 0);
    for (int i = 1; i <= 40; i++)
        n += (size_t)snprintf(cmds + n, sizeof cmds - n, "RETR %d\r\n", i);
    n += (size_t)snprintf(cmds + n, sizeof cmds - n, "QUIT\r\n");
    unsigned long w0 = pop3_server_works();
    assert_int_equal(send(fd, cmds, n, 0), (ssize_t)n);
    char *got = read_all(fd, &len);
    close(fd);
    while (pop3_server_sessions() > 0)
        event_base_loop(F.base, EVLOOP_ONCE);
    unsigned long works = pop3_server_works() - w0;
    const char *p = got;
    for (int i = 1; i <= 40; i++) {
        if (i == 7)
            snprintf(want, sizeof want, "\r\n.\r\n-ERR [SYS/PERM] Message 7 is gone.\r\n+OK ");
        else
            snprintf(want, sizeof want, "octets\r\nFrom: a@example.org\r\nSubject: m%d\r\n", i);
        const char *hit = strstr(p, want);
        if (!hit)
            fail_msg("no '%s' after offset %zu in:\n%s", want, (size_t)(p - got), got);
        p = hit + 1;
    }
    if (!strstr(p, "+OK Logging out, 0 messages deleted.\r\n"))
        fail_msg("no QUIT reply at the end:\n%s", p);
    free(got);
    /* one read and QUIT's update (the lines may arrive in two reads: 3) */
    if (works > 3)
        fail_msg("40 pipelined RETRs took %lu works", works);
}

/* Backpressure with batches: a client that sends 60 RETRs of 44 KB and
 * reads nothing gets no more than SEND_AHEAD and one batch read for it
 * (not 2.6 MB); once it reads, every answer comes, complete. */
static void test_pipelined_retr_backpressure(void **state)
{
    char cmds[2048];
    size_t n = 0, len;
    pop3_fixture_rmtree(F.root);
    for (int i = 1; i <= 60; i++)
        assert_int_equal(pop3_fixture_put(&F, "alice@isp.example", i, 2000), 0);
    int fd = alice_login(4096);
    for (int i = 1; i <= 60; i++)
        n += (size_t)snprintf(cmds + n, sizeof cmds - n, "RETR %d\r\n", i);
    n += (size_t)snprintf(cmds + n, sizeof cmds - n, "QUIT\r\n");
    unsigned long w0 = pop3_server_works();
    assert_int_equal(send(fd, cmds, n, 0), (ssize_t)n);
    for (int i = 0; i < 200; i++) {     /* the server runs; nobody reads */
        event_base_loop(F.base, EVLOOP_NONBLOCK);
        usleep(1000);
    }
    unsigned long stalled = pop3_server_works() - w0;
    /* reading stops once SEND_AHEAD (256 KiB) waits to be written: 2 works
     * here, each at most POP3_BATCH (256 KiB) of files */
    if (stalled < 1 || stalled > 5)
        fail_msg("a client that reads nothing had %lu works read for it", stalled);
    char *got = read_all(fd, &len);
    close(fd);
    while (pop3_server_sessions() > 0)
        event_base_loop(F.base, EVLOOP_ONCE);
    const char *p = got;
    for (int i = 1; i <= 60; i++) {
        char want[64];
        snprintf(want, sizeof want, "Subject: m%d\r\n", i);
        const char *hit = strstr(p, want);
        if (!hit)
            fail_msg("no '%s' after offset %zu", want, (size_t)(p - got));
        p = hit + 1;
        snprintf(want, sizeof want, "body line 1999 of %d\r\n.\r\n", i);
        if (!(hit = strstr(p, want)))
            fail_msg("message %d is not complete", i);
    }
    if (!strstr(p, "+OK Logging out, 0 messages deleted.\r\n"))
        fail_msg("no QUIT reply at the end");
    free(got);
}

static int setup(void **state)
{
    char err[1024];
    if (pop3_fixture_start(&F, "/tmp", NULL, "", err, sizeof err) < 0) {
        fprintf(stderr, "fixture: %s\n", err);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    pop3_fixture_stop(&F);
    pop3_fixture_remove(&F);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows),
        cmocka_unit_test(test_in_use),
        cmocka_unit_test(test_pipelined_retr_one_work),
        cmocka_unit_test(test_pipelined_retr_backpressure),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

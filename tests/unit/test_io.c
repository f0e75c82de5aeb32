/*
 * test_io — the I/O layer on real sockets (socketpairs, loopback TCP) and a
 * real event loop: plaintext reads and writes, the bound on unconsumed input,
 * read and write timeouts (restarted by traffic, repeating when ignored,
 * removed with 0), pause/resume with input already buffered, EOF with input
 * still unconsumed, a large write to a slow reader, io_send()'s direct
 * write, write errors, freeing from inside the callback, io_connect, the
 * STARTTLS switch (plaintext pipelined after STARTTLS is discarded on both
 * sides) and io_addr_name.  The peer is a raw fd, or a second io.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/event.h>

#include "core/io.h"
#include "core/tls.h"

#include "net_fixture.h"        /* listen_loopback, the test certificate */

#define IN_MAX (64 * 1024)          /* io.c's IO_IN_MAX */
#define READ_MAX (16 * 1024)        /* io.c's IO_READ_MAX, rounded up */

struct t {
    struct event_base *base;
    struct io *io;
    int peer;                       /* the other end of a socketpair */
    int n[8];                       /* events seen, by enum io_event */
    int calls;
    enum io_event seq[64];
    int consume;                    /* IO_READ: move io_in() into got */
    int pause_on_read;              /* IO_READ: io_pause() */
    int free_on;                    /* io_free() on this event + 1 (0: never) */
    size_t in_at_eof;               /* io_in() length at IO_EOF */
    size_t last_len, max_step;      /* io_in() growth per IO_READ */
    struct evbuffer *got;
    double t0, t_timeout[4];        /* when IO_TIMEOUTs came (s since t0) */
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void t_cb(struct io *io, enum io_event ev, void *arg)
{
    struct t *t = arg;
    if (t->calls < 64)
        t->seq[t->calls] = ev;
    t->calls++;
    if (ev == IO_TIMEOUT && t->n[ev] < 4)
        t->t_timeout[t->n[ev]] = now_s() - t->t0;
    t->n[ev]++;
    if (ev == IO_READ) {
        size_t len = evbuffer_get_length(io_in(io));
        if (len > t->last_len && len - t->last_len > t->max_step)
            t->max_step = len - t->last_len;
        if (t->consume)
            evbuffer_add_buffer(t->got, io_in(io));
        t->last_len = evbuffer_get_length(io_in(io));
        if (t->pause_on_read)
            io_pause(io);
    }
    if (ev == IO_EOF)
        t->in_at_eof = evbuffer_get_length(io_in(io));
    if (t->free_on == (int)ev + 1) {
        io_free(io);
        t->io = NULL;
    }
}

/* An io on one end of a Unix socketpair (non-blocking), the raw peer on the
 * other (blocking). */
static void t_init(struct t *t)
{
    int sv[2];
    memset(t, 0, sizeof *t);
    t->base = event_base_new();
    assert_non_null(t->base);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    t->peer = sv[1];
    assert_int_equal(fcntl(t->peer, F_SETFL, fcntl(t->peer, F_GETFL) & ~O_NONBLOCK), 0);
    t->io = io_new_nonblocking(t->base, sv[0], t_cb, t);
    assert_non_null(t->io);
    t->got = evbuffer_new();
    t->consume = 1;
    t->t0 = now_s();
}

static void t_free(struct t *t)
{
    if (t->io)
        io_free(t->io);
    if (t->peer >= 0)
        close(t->peer);
    evbuffer_free(t->got);
    event_base_free(t->base);
}

static void guard_cb(evutil_socket_t fd, short what, void *arg)
{
    *(int *)arg = 1;
}

/* Runs the loop until *flag >= want or ms passed; returns 1 if it got there. */
static int t_until(struct t *t, const int *flag, int want, int ms)
{
    int expired = 0;
    struct event *g = evtimer_new(t->base, guard_cb, &expired);
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    evtimer_add(g, &tv);
    while (!expired && *flag < want)
        event_base_loop(t->base, EVLOOP_ONCE);
    event_free(g);
    return *flag >= want;
}

static void t_run_ms(struct t *t, int ms)
{
    int never = 0;
    t_until(t, &never, 1, ms);
}

static void peer_send(struct t *t, const char *s)
{
    assert_int_equal(write(t->peer, s, strlen(s)), (ssize_t)strlen(s));
}

/* Reads exactly n bytes from the peer (blocking). */
static void peer_recv(struct t *t, char *buf, size_t n)
{
    size_t off = 0;
    while (off < n) {
        ssize_t r = read(t->peer, buf + off, n - off);
        assert_true(r > 0);
        off += (size_t)r;
    }
}

static void assert_got(struct t *t, const char *want)
{
    size_t n = evbuffer_get_length(t->got);
    const char *p = (const char *)evbuffer_pullup(t->got, -1);
    if (n != strlen(want) || (n && memcmp(p, want, n) != 0))
        fail_msg("got \"%.*s\", want \"%s\"", (int)n, p ? p : "", want);
}

/* Takes what still waits unconsumed in io_in() into got, then checks all
 * that came. */
static void assert_got_with_input(struct t *t, const char *want)
{
    evbuffer_add_buffer(t->got, io_in(t->io));
    assert_got(t, want);
}

static unsigned char pattern(size_t i)
{
    return (unsigned char)(i % 251);
}

/* ---- plaintext basics ---------------------------------------------------- */

static void test_read_write(void **state)
{
    struct t t;
    char buf[16];

    t_init(&t);
    peer_send(&t, "hello\r\n");
    assert_true(t_until(&t, &t.n[IO_READ], 1, 2000));
    assert_got(&t, "hello\r\n");
    io_printf(t.io, "%s", "wor");
    io_write(t.io, "ld", 2);
    assert_int_equal(io_out_pending(t.io), 5);
    assert_int_equal(t.n[IO_DRAINED], 0);       /* never from inside an io_* call */
    assert_true(t_until(&t, &t.n[IO_DRAINED], 1, 2000));
    assert_int_equal(io_out_pending(t.io), 0);
    peer_recv(&t, buf, 5);
    assert_memory_equal(buf, "world", 5);
    assert_int_equal(io_is_tls(t.io), 0);
    assert_string_equal(io_tls_info(t.io, buf, sizeof buf), "");
    t_free(&t);
}

/* io_new() makes the socket non-blocking; io_new_nonblocking() leaves the
 * flags alone (no fcntl: the caller says it is non-blocking already). */
static void test_new_nonblocking(void **state)
{
    struct event_base *base = event_base_new();
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct io *a = io_new(base, sv[0], t_cb, NULL);
    assert_non_null(a);
    assert_true(fcntl(sv[0], F_GETFL) & O_NONBLOCK);
    struct io *b = io_new_nonblocking(base, sv[1], t_cb, NULL);
    assert_non_null(b);
    assert_false(fcntl(sv[1], F_GETFL) & O_NONBLOCK);
    io_free(a);
    io_free(b);
    assert_int_equal(fcntl(sv[0], F_GETFL), -1);    /* io_free closed them */
    assert_int_equal(fcntl(sv[1], F_GETFL), -1);
    event_base_free(base);
}

/* What one read takes is bounded, and so is what waits unconsumed: the
 * owner that does not consume stops the reading; consuming restarts it. */
static void test_input_bounded(void **state)
{
    struct t t;
    size_t total = 1024 * 1024, sent = 0, seen = 0, most = 0;
    unsigned char chunk[8192];

    t_init(&t);
    t.consume = 0;
    assert_int_equal(fcntl(t.peer, F_SETFL, O_NONBLOCK), 0);
    for (int rounds = 0; rounds < 10000 && seen < total; rounds++) {
        while (sent < total) {      /* fill the socket as far as it takes */
            size_t n = total - sent < sizeof chunk ? total - sent : sizeof chunk;
            for (size_t i = 0; i < n; i++)
                chunk[i] = pattern(sent + i);
            ssize_t r = write(t.peer, chunk, n);
            if (r <= 0)
                break;
            sent += (size_t)r;
        }
        t_run_ms(&t, 5);
        size_t len = evbuffer_get_length(io_in(t.io));
        if (len > IN_MAX + READ_MAX)
            fail_msg("%zu bytes buffered unconsumed", len);
        if (len > most)
            most = len;
        if (rounds % 2 == 0)
            continue;               /* the owner lags behind: reading stops */
        /* the owner consumes, outside any callback: reading goes on */
        const unsigned char *p = evbuffer_pullup(io_in(t.io), -1);
        for (size_t i = 0; i < len; i++)
            if (p[i] != pattern(seen + i))
                fail_msg("byte %zu wrong", seen + i);
        seen += len;
        evbuffer_drain(io_in(t.io), len);
        t.last_len = 0;
    }
    assert_int_equal(seen, total);
    assert_true(most >= IN_MAX);    /* it was the bound that stopped the reading */
    if (t.max_step > READ_MAX)
        fail_msg("one read took %zu bytes", t.max_step);
    assert_int_equal(t.n[IO_EOF] + t.n[IO_ERROR] + t.n[IO_TIMEOUT], 0);
    t_free(&t);
}

/* ---- timeouts -------------------------------------------------------------- */

static void test_read_timeout(void **state)
{
    struct t t;

    t_init(&t);
    io_set_timeout_ms(t.io, 80);
    assert_true(t_until(&t, &t.n[IO_TIMEOUT], 1, 2000));
    assert_true(t.t_timeout[0] >= 0.07);
    /* ignored: it comes again a period later, and reading goes on */
    assert_true(t_until(&t, &t.n[IO_TIMEOUT], 2, 2000));
    assert_true(t.t_timeout[1] - t.t_timeout[0] >= 0.07);
    peer_send(&t, "x");
    assert_true(t_until(&t, &t.n[IO_READ], 1, 2000));
    assert_got(&t, "x");
    /* 0 removes it */
    io_set_timeout_ms(t.io, 0);
    int before = t.n[IO_TIMEOUT];
    t_run_ms(&t, 250);
    assert_int_equal(t.n[IO_TIMEOUT], before);
    t_free(&t);
}

struct trickle {
    struct t *t;
    int left;
    struct event *ev;
};

static void trickle_cb(evutil_socket_t fd, short what, void *arg)
{
    struct trickle *tr = arg;
    if (tr->left-- > 0)
        peer_send(tr->t, ".");
    else
        event_del(tr->ev);
}

/* Every read restarts the read timeout; a paused stream has none. */
static void test_read_timeout_restarted(void **state)
{
    struct t t;
    struct trickle tr;
    struct timeval every = { 0, 40000 };

    t_init(&t);
    io_set_timeout_ms(t.io, 150);
    tr.t = &t;
    tr.left = 10;                   /* 400 ms of input, one byte each 40 ms */
    tr.ev = event_new(t.base, -1, EV_PERSIST, trickle_cb, &tr);
    event_add(tr.ev, &every);
    t_run_ms(&t, 450);
    assert_int_equal(t.n[IO_TIMEOUT], 0);
    assert_got(&t, "..........");
    assert_true(t_until(&t, &t.n[IO_TIMEOUT], 1, 2000));   /* silence: now it comes */
    event_free(tr.ev);

    io_pause(t.io);
    int before = t.n[IO_TIMEOUT];
    t_run_ms(&t, 350);
    assert_int_equal(t.n[IO_TIMEOUT], before);
    io_resume(t.io);
    assert_true(t_until(&t, &t.n[IO_TIMEOUT], before + 1, 2000));
    t_free(&t);
}

/* ---- pause, resume, EOF ----------------------------------------------------- */

/* An io whose owner neither consumes nor reads on: it pauses on its first
 * IO_READ, which has come for first, sent by the peer. */
static void t_init_paused_after(struct t *t, const char *first)
{
    t_init(t);
    t->consume = 0;
    t->pause_on_read = 1;
    peer_send(t, first);
    assert_true(t_until(t, &t->n[IO_READ], 1, 2000));
}

static void test_pause_resume_buffered(void **state)
{
    struct t t;

    t_init_paused_after(&t, "one\r\ntwo\r\n");
    peer_send(&t, "three\r\n");
    t_run_ms(&t, 100);
    assert_int_equal(t.n[IO_READ], 1);          /* paused: nothing more read */
    assert_int_equal(evbuffer_get_length(io_in(t.io)), 10);
    t.pause_on_read = 0;
    int calls = t.calls;
    io_resume(t.io);
    assert_int_equal(t.calls, calls);           /* no callback from io_resume */
    assert_int_equal(evbuffer_get_length(io_in(t.io)), 10);    /* still there */
    assert_true(t_until(&t, &t.n[IO_READ], 2, 2000));
    assert_got_with_input(&t, "one\r\ntwo\r\nthree\r\n");
    t_free(&t);
}

/* The peer sends a last command and closes: IO_READ with it, then IO_EOF
 * (once) with the input still there; writing goes on after EOF. */
static void test_eof_pending_input(void **state)
{
    struct t t;
    char buf[16];

    t_init(&t);
    t.consume = 0;
    peer_send(&t, "QUIT\r\n");
    shutdown(t.peer, SHUT_WR);
    assert_true(t_until(&t, &t.n[IO_EOF], 1, 2000));
    assert_int_equal(t.seq[0], IO_READ);
    assert_int_equal(t.seq[t.calls - 1], IO_EOF);
    assert_int_equal(t.in_at_eof, 6);
    assert_memory_equal(evbuffer_pullup(io_in(t.io), -1), "QUIT\r\n", 6);
    io_write(t.io, "221 bye\r\n", 9);
    assert_true(t_until(&t, &t.n[IO_DRAINED], 1, 2000));
    peer_recv(&t, buf, 9);
    assert_memory_equal(buf, "221 bye\r\n", 9);
    io_resume(t.io);
    t_run_ms(&t, 100);
    assert_int_equal(t.n[IO_EOF], 1);
    assert_int_equal(t.n[IO_ERROR], 0);
    t_free(&t);
}

/* Paused with input buffered when the peer closes: the EOF is seen only
 * after resuming, and after the rest of the input. */
static void test_eof_while_paused(void **state)
{
    struct t t;

    t_init_paused_after(&t, "MAIL FROM:<a@b>\r\n");
    peer_send(&t, "RCPT TO:<c@d>\r\n");
    close(t.peer);
    t.peer = -1;
    t_run_ms(&t, 100);
    assert_int_equal(t.n[IO_EOF], 0);
    t.pause_on_read = 0;
    io_resume(t.io);
    assert_true(t_until(&t, &t.n[IO_EOF], 1, 2000));
    assert_int_equal(t.n[IO_READ], 2);
    assert_got_with_input(&t, "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n");
    t_free(&t);
}

/* ---- writing ------------------------------------------------------------------ */

struct reader {
    struct t *t;
    struct evbuffer *got;
    size_t per_tick;
    struct event *ev;
};

static void reader_cb(evutil_socket_t fd, short what, void *arg)
{
    struct reader *rd = arg;
    char buf[8192];
    size_t n = 0;
    while (n < rd->per_tick) {
        ssize_t r = recv(rd->t->peer, buf, sizeof buf, MSG_DONTWAIT);
        if (r <= 0)
            break;
        evbuffer_add(rd->got, buf, (size_t)r);
        n += (size_t)r;
    }
}

/* The first n bytes of b are pattern(0..n-1). */
static void check_prefix(struct evbuffer *b, size_t n)
{
    assert_true(evbuffer_get_length(b) >= n);
    const unsigned char *p = evbuffer_pullup(b, -1);
    for (size_t i = 0; i < n; i++)
        if (p[i] != pattern(i))
            fail_msg("byte %zu wrong", i);
}

/* Reads what is left in the socket until rd->got holds want bytes. */
static void reader_rest(struct reader *rd, size_t want)
{
    char buf[8192];
    while (evbuffer_get_length(rd->got) < want) {
        size_t n = want - evbuffer_get_length(rd->got);
        ssize_t r = read(rd->t->peer, buf, n < sizeof buf ? n : sizeof buf);
        assert_true(r > 0);
        evbuffer_add(rd->got, buf, (size_t)r);
    }
}

static void check_pattern(struct evbuffer *b, size_t want)
{
    assert_int_equal(evbuffer_get_length(b), want);
    check_prefix(b, want);
}

/* 2 MB to a reader that takes 64 KB every 2 ms: partial writes, one
 * IO_DRAINED at the end, no timeout while there is progress.  Then 2 MB to
 * a reader that stops: IO_TIMEOUT while output is pending; ignored, the
 * writing goes on when the reader comes back. */
static void test_large_write_slow_reader(void **state)
{
    struct t t;
    struct reader rd;
    size_t big = 2 * 1024 * 1024;
    unsigned char *data = malloc(big);
    struct timeval tick = { 0, 2000 };

    for (size_t i = 0; i < big; i++)
        data[i] = pattern(i);
    t_init(&t);
    io_set_timeout_ms(t.io, 300);
    rd.t = &t;
    rd.got = evbuffer_new();
    rd.per_tick = 64 * 1024;
    rd.ev = event_new(t.base, -1, EV_PERSIST, reader_cb, &rd);
    event_add(rd.ev, &tick);
    io_write(t.io, data, big);
    assert_true(t_until(&t, &t.n[IO_DRAINED], 1, 10000));
    t_run_ms(&t, 50);
    assert_int_equal(t.n[IO_DRAINED], 1);
    assert_int_equal(t.n[IO_TIMEOUT], 0);
    reader_rest(&rd, big);
    check_pattern(rd.got, big);

    event_del(rd.ev);
    evbuffer_drain(rd.got, big);
    io_set_timeout_ms(t.io, 100);
    io_write(t.io, data, big);
    assert_true(t_until(&t, &t.n[IO_TIMEOUT], 1, 2000));
    assert_true(io_out_pending(t.io) > 0);
    assert_int_equal(t.n[IO_DRAINED], 1);
    io_set_timeout_ms(t.io, 0);
    event_add(rd.ev, &tick);
    assert_true(t_until(&t, &t.n[IO_DRAINED], 2, 10000));
    reader_rest(&rd, big);
    check_pattern(rd.got, big);
    assert_int_equal(t.n[IO_ERROR], 0);

    event_free(rd.ev);
    evbuffer_free(rd.got);
    free(data);
    t_free(&t);
}

/* io_send: written at once when it fits (1, no IO_DRAINED follows), else
 * queued (0, IO_DRAINED follows); behind queued output it never jumps. */
static void test_send_direct(void **state)
{
    struct t t;
    struct reader rd;
    struct evbuffer *b = evbuffer_new();
    char buf[16];
    size_t big = 4 * 1024 * 1024;
    struct timeval tick = { 0, 1000 };

    t_init(&t);
    evbuffer_add(b, "250 ok\r\n", 8);
    assert_int_equal(io_send(t.io, b), 1);
    assert_int_equal(evbuffer_get_length(b), 0);
    peer_recv(&t, buf, 8);
    assert_memory_equal(buf, "250 ok\r\n", 8);
    t_run_ms(&t, 50);
    assert_int_equal(t.n[IO_DRAINED], 0);

    for (size_t i = 0; i < big; i++) {
        unsigned char c = pattern(i);
        evbuffer_add(b, &c, 1);
    }
    assert_int_equal(io_send(t.io, b), 0);     /* the socket takes only part */
    assert_int_equal(evbuffer_get_length(b), 0);
    assert_true(io_out_pending(t.io) > 0);
    evbuffer_add(b, "x", 1);
    assert_int_equal(io_send(t.io, b), 0);     /* queued behind the rest */
    rd.t = &t;
    rd.got = evbuffer_new();
    rd.per_tick = 256 * 1024;
    rd.ev = event_new(t.base, -1, EV_PERSIST, reader_cb, &rd);
    event_add(rd.ev, &tick);
    assert_true(t_until(&t, &t.n[IO_DRAINED], 1, 10000));
    reader_rest(&rd, big + 1);
    assert_int_equal(evbuffer_get_length(rd.got), big + 1);
    check_prefix(rd.got, big);
    assert_memory_equal(evbuffer_pullup(rd.got, -1) + big, "x", 1);
    event_free(rd.ev);
    evbuffer_free(rd.got);
    evbuffer_free(b);
    t_free(&t);
}

static void test_write_error(void **state)
{
    struct t t;

    t_init(&t);
    close(t.peer);
    t.peer = -1;
    assert_true(t_until(&t, &t.n[IO_EOF], 1, 2000));
    io_write(t.io, "too late\r\n", 10);
    assert_true(t_until(&t, &t.n[IO_ERROR], 1, 2000));
    assert_string_equal(io_error(t.io), strerror(EPIPE));
    t_run_ms(&t, 50);
    assert_int_equal(t.n[IO_ERROR], 1);        /* reported once */
    t_free(&t);
}

/* io_free from inside the callback, on each kind of event (ASan checks). */
static void test_free_in_callback(void **state)
{
    struct t t;

    t_init(&t);
    t.free_on = IO_READ + 1;
    peer_send(&t, "x");
    assert_true(t_until(&t, &t.n[IO_READ], 1, 2000));
    assert_null(t.io);
    t_free(&t);

    t_init(&t);
    t.free_on = IO_DRAINED + 1;
    io_write(t.io, "x", 1);
    assert_true(t_until(&t, &t.n[IO_DRAINED], 1, 2000));
    assert_null(t.io);
    t_free(&t);

    t_init(&t);
    t.free_on = IO_TIMEOUT + 1;
    io_set_timeout_ms(t.io, 20);
    assert_true(t_until(&t, &t.n[IO_TIMEOUT], 1, 2000));
    assert_null(t.io);
    t_free(&t);

    t_init(&t);
    t.free_on = IO_EOF + 1;
    shutdown(t.peer, SHUT_WR);
    assert_true(t_until(&t, &t.n[IO_EOF], 1, 2000));
    assert_null(t.io);
    t_run_ms(&t, 20);
    t_free(&t);
}

/* ---- client side ---------------------------------------------------------- */

static void test_connect(void **state)
{
    struct t t;
    int port, lfd = listen_loopback(&port);
    char buf[8];

    assert_true(lfd >= 0);
    memset(&t, 0, sizeof t);
    t.base = event_base_new();
    t.got = evbuffer_new();
    t.consume = 1;
    t.io = io_connect(t.base, "127.0.0.1", port, t_cb, &t);
    assert_non_null(t.io);
    io_write(t.io, "EHLO\r\n", 6);             /* queued until connected */
    assert_true(t_until(&t, &t.n[IO_CONNECTED], 1, 2000));
    assert_int_equal(t.seq[0], IO_CONNECTED);
    t.peer = accept(lfd, NULL, NULL);
    assert_true(t.peer >= 0);
    assert_true(t_until(&t, &t.n[IO_DRAINED], 1, 2000));
    peer_recv(&t, buf, 6);
    assert_memory_equal(buf, "EHLO\r\n", 6);
    peer_send(&t, "250 ok\r\n");
    assert_true(t_until(&t, &t.n[IO_READ], 1, 2000));
    assert_got(&t, "250 ok\r\n");
    t_free(&t);

    /* refused: at once (NULL, ECONNREFUSED) or as IO_ERROR */
    close(lfd);
    memset(&t, 0, sizeof t);
    t.peer = -1;
    t.base = event_base_new();
    t.got = evbuffer_new();
    errno = 0;
    t.io = io_connect(t.base, "127.0.0.1", port, t_cb, &t);
    if (!t.io) {
        assert_int_equal(errno, ECONNREFUSED);
    } else {
        assert_true(t_until(&t, &t.n[IO_ERROR], 1, 2000));
        assert_string_equal(io_error(t.io), strerror(ECONNREFUSED));
        assert_int_equal(t.n[IO_CONNECTED], 0);
    }
    assert_null(io_connect(t.base, "not-an-address", 25, t_cb, &t));
    assert_int_equal(errno, EINVAL);
    t_free(&t);
}

/* ---- STARTTLS ------------------------------------------------------------------ */

static int tls_setup(void **state)
{
    return cert_setup("mx.test");
}

/* Server and client, each an io, over one socketpair.  Each side sends its
 * STARTTLS line (reply) with a plaintext line pipelined behind it in the
 * same write: both lines arrive in one read, and the second must be
 * discarded at the switch, never reach the protocol after it. */
struct tls_pair {
    struct event_base *base;
    struct io *srv, *cli;
    struct tls_ctx *sctx, *cctx;
    long srv_dropped;
    int cli_dropped;
    int srv_done, cli_done, failed;
    struct evbuffer *srv_got, *cli_got;
    int srv_tls_reads;
};

/* Takes the next line from the input (before the switch): whether it is want. */
static int next_line_is(struct io *io, const char *want)
{
    char *line = evbuffer_readln(io_in(io), NULL, EVBUFFER_EOL_CRLF_STRICT);
    int is = line && strcmp(line, want) == 0;
    free(line);
    return is;
}

static void srv_cb(struct io *io, enum io_event ev, void *arg)
{
    struct tls_pair *p = arg;
    switch (ev) {
    case IO_READ:
        if (io_is_tls(io)) {
            p->srv_tls_reads++;
            evbuffer_add_buffer(p->srv_got, io_in(io));
        } else if (next_line_is(io, "STARTTLS")) {
            io_pause(io);           /* as the session does */
            io_write(io, "220 ready\r\n250 injected\r\n", 25);
        }
        break;
    case IO_DRAINED:
        if (!io_is_tls(io)) {
            p->srv_dropped = io_starttls_server(io, p->sctx);
            io_resume(io);
        }
        break;
    case IO_TLS_DONE:
        p->srv_done = 1;
        break;
    default:
        p->failed++;
        break;
    }
}

static void cli_cb(struct io *io, enum io_event ev, void *arg)
{
    struct tls_pair *p = arg;
    switch (ev) {
    case IO_READ:
        if (io_is_tls(io))
            evbuffer_add_buffer(p->cli_got, io_in(io));
        else if (next_line_is(io, "220 ready"))
            p->cli_dropped = io_starttls_client(io, p->cctx, "mx.test");
        break;
    case IO_TLS_DONE:
        p->cli_done = 1;
        io_write(io, "EHLO over tls\r\n", 15);
        break;
    case IO_DRAINED:
        break;
    default:
        p->failed++;
        break;
    }
}

static void test_starttls_discard(void **state)
{
    struct tls_pair p;
    char err[256];
    int sv[2];

    if (!have_cert)
        skip();
    memset(&p, 0, sizeof p);
    p.sctx = cert_server_ctx();
    p.cctx = tls_client_ctx(err, sizeof err);
    assert_non_null(p.cctx);
    p.base = event_base_new();
    p.srv_got = evbuffer_new();
    p.cli_got = evbuffer_new();
    p.srv_dropped = p.cli_dropped = -2;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    p.srv = io_new_nonblocking(p.base, sv[0], srv_cb, &p);
    p.cli = io_new_nonblocking(p.base, sv[1], cli_cb, &p);
    io_set_timeout_ms(p.srv, 5000);
    io_set_timeout_ms(p.cli, 5000);
    io_write(p.cli, "STARTTLS\r\nMAIL FROM:<evil@x>\r\n", 30);

    struct t g = { .base = p.base };
    for (int i = 0; i < 400 && !(evbuffer_get_length(p.srv_got) >= 15) && !p.failed; i++)
        t_run_ms(&g, 10);
    assert_int_equal(p.failed, 0);
    assert_int_equal(p.srv_dropped, 20);       /* "MAIL FROM:<evil@x>\r\n" */
    assert_int_equal(p.cli_dropped, 14);       /* "250 injected\r\n" */
    assert_true(p.srv_done && p.cli_done);
    assert_true(io_is_tls(p.srv) && io_is_tls(p.cli));
    assert_int_equal(evbuffer_get_length(p.srv_got), 15);
    assert_memory_equal(evbuffer_pullup(p.srv_got, -1), "EHLO over tls\r\n", 15);
    assert_int_equal(evbuffer_get_length(p.cli_got), 0);
    char info[128];
    assert_true(strncmp(io_tls_info(p.srv, info, sizeof info), "TLS", 3) == 0);

    /* a second switch is refused */
    assert_int_equal(io_starttls_server(p.srv, p.sctx), -1);
    assert_int_equal(io_starttls_client(p.cli, p.cctx, NULL), -1);
    io_free(p.srv);
    io_free(p.cli);
    evbuffer_free(p.srv_got);
    evbuffer_free(p.cli_got);
    tls_ctx_free(p.sctx);
    tls_ctx_free(p.cctx);
    event_base_free(p.base);
}

/* ---- addresses ------------------------------------------------------------------ */

static void test_addr_name(void **state)
{
    char buf[64];
    struct sockaddr_in s4 = { .sin_family = AF_INET };
    struct sockaddr_in6 s6 = { .sin6_family = AF_INET6 };
    struct sockaddr_un su = { .sun_family = AF_UNIX };

    inet_pton(AF_INET, "192.0.2.7", &s4.sin_addr);
    io_addr_name((struct sockaddr *)&s4, sizeof s4, buf, sizeof buf);
    assert_string_equal(buf, "192.0.2.7");
    inet_pton(AF_INET6, "2001:db8::25", &s6.sin6_addr);
    io_addr_name((struct sockaddr *)&s6, sizeof s6, buf, sizeof buf);
    assert_string_equal(buf, "2001:db8::25");
    io_addr_name((struct sockaddr *)&su, sizeof(sa_family_t), buf, sizeof buf);
    assert_string_equal(buf, "unix");
    io_addr_name(NULL, 0, buf, sizeof buf);
    assert_string_equal(buf, "unknown");
    io_addr_name((struct sockaddr *)&s4, 4, buf, sizeof buf);     /* truncated */
    assert_string_equal(buf, "unknown");

    /* the same as getpeername() gives, for a loopback connection */
    int port, lfd = listen_loopback(&port);
    struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(c, (struct sockaddr *)&to, sizeof to), 0);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int a = accept(lfd, (struct sockaddr *)&ss, &sl);
    assert_true(a >= 0);
    char viapeer[64];
    io_peer_name(a, viapeer, sizeof viapeer, NULL);
    io_addr_name((struct sockaddr *)&ss, sl, buf, sizeof buf);
    assert_string_equal(buf, viapeer);
    assert_string_equal(buf, "127.0.0.1");
    close(a);
    close(c);
    close(lfd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_write),
        cmocka_unit_test(test_new_nonblocking),
        cmocka_unit_test(test_input_bounded),
        cmocka_unit_test(test_read_timeout),
        cmocka_unit_test(test_read_timeout_restarted),
        cmocka_unit_test(test_pause_resume_buffered),
        cmocka_unit_test(test_eof_pending_input),
        cmocka_unit_test(test_eof_while_paused),
        cmocka_unit_test(test_large_write_slow_reader),
        cmocka_unit_test(test_send_direct),
        cmocka_unit_test(test_write_error),
        cmocka_unit_test(test_free_in_callback),
        cmocka_unit_test(test_connect),
        cmocka_unit_test(test_starttls_discard),
        cmocka_unit_test(test_addr_name),
    };

    signal(SIGPIPE, SIG_IGN);       /* as kickmaild does */
    return cmocka_run_group_tests(tests, tls_setup, cert_teardown);
}

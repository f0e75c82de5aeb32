/*
 * test_listener — the listener layer on real sockets and a real event loop:
 * a TCP connection accepted with the identity of its listener (protocol,
 * address, port, TLS and auth policy) and its client's record; the
 * per-client and total limits (the protocol's refusal line reaches the
 * client, the full hook may make room, another address is not affected);
 * UDP datagrams delivered with their source, and answered; a Unix stream
 * socket (its mode, a stale socket replaced, a symlink refused, the path
 * unlinked at stop); stop with connections open (drained runs once, after
 * the last); an accept failing with EMFILE (paused, then accepting again
 * after the delay or as soon as a connection closes).
 */
#include <errno.h>
#include <setjmp.h>
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
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <cmocka.h>
#include <event2/event.h>

#include "core/config.h"
#include "core/listener.h"

struct t {
    struct event_base *base;
    struct listener_set *set;
    struct listener_conn *conns[8];     /* accepted, in order */
    int naccepted, nclosed, nfull, ndrained;
    int refused[2];                     /* by enum listener_refusal */
    const struct listener_info *refused_li;
    char refused_peer[64];
    int full_closes;                    /* the full hook closes conns[0] */
    int accept_fails;                   /* the accept hook returns -1 */
    /* datagrams */
    int ndgram;
    char dgram[128];
    size_t dgram_len;
    char dgram_peer[64];
    const struct listener_info *dgram_li;
    int dgram_reply;                    /* answer "pong" */
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs the loop until *flag >= want or ms have passed; returns *flag. */
static int run_until(struct t *t, const int *flag, int want, int ms)
{
    double end = now_s() + ms / 1000.0;
    while (*flag < want && now_s() < end) {
        struct timeval tv = { 0, 10000 };
        event_base_loopexit(t->base, &tv);
        event_base_loop(t->base, EVLOOP_ONCE);
    }
    return *flag;
}

static int t_accept(struct listener_conn *c, void *arg)
{
    struct t *t = arg;
    if (t->accept_fails)
        return -1;
    if (t->naccepted < 8)
        t->conns[t->naccepted] = c;
    c->sess = t;
    t->naccepted++;
    return 0;
}

static void t_closed(struct listener_conn *c, void *arg)
{
    struct t *t = arg;
    assert_ptr_equal(c->sess, t);
    assert_true(c->client->n >= 1);     /* still counted while the hook runs */
    t->nclosed++;
}

/* Closes the connection (socket and record) that conns[i] holds. */
static void conn_close(struct t *t, int i)
{
    close(t->conns[i]->fd);
    listener_conn_close(t->conns[i]);
    t->conns[i] = NULL;
}

static void t_full(void *arg)
{
    struct t *t = arg;
    t->nfull++;
    if (t->full_closes && t->conns[0])
        conn_close(t, 0);
}

static size_t t_refusal(enum listener_refusal why, const struct listener_info *li,
                        const char *peer, char *buf, size_t len, void *arg)
{
    struct t *t = arg;
    t->refused[why]++;
    t->refused_li = li;
    snprintf(t->refused_peer, sizeof t->refused_peer, "%s", peer);
    return (size_t)snprintf(buf, len, "421 %s\r\n",
                            why == LISTENER_FULL ? "full" : "too many from you");
}

static void t_datagram(const struct listener_datagram *d, void *arg)
{
    struct t *t = arg;
    t->ndgram++;
    t->dgram_li = d->info;
    t->dgram_len = d->len;
    memcpy(t->dgram, d->buf, d->len < sizeof t->dgram ? d->len : sizeof t->dgram);
    snprintf(t->dgram_peer, sizeof t->dgram_peer, "%s", d->peer);
    if (t->dgram_reply)
        assert_int_equal(listener_reply(d, "pong", 4), 0);
}

static void t_drained(void *arg)
{
    struct t *t = arg;
    t->ndrained++;
}

static const struct listener_proto proto = {
    .name = "test",
    .pause_ms = 10000,          /* the EMFILE tests change it */
    .accept = t_accept,
    .closed = t_closed,
    .full = t_full,
    .refusal = t_refusal,
    .datagram = t_datagram,
};
static struct listener_proto proto_fast;    /* pause_ms 50 */

static const struct listener_info smtps_info = {
    .proto = "smtps", .implicit_tls = 1, .auth_required = 1,
    .cleartext = LISTENER_AUTH_CLEARTEXT,
};
static const struct listener_info radius_info = { .proto = "radius" };
static const struct listener_info control_info = { .proto = "control" };

static struct listen_addr loopback(const char *host)
{
    struct listen_addr a = { .port = 0 };
    snprintf(a.host, sizeof a.host, "%s", host);
    snprintf(a.text, sizeof a.text, "%s:0", host);
    return a;
}

static int setup(void **state)
{
    struct t *t = calloc(1, sizeof *t);
    t->base = event_base_new();
    t->set = listener_set_new(t->base, &proto, t);
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    struct t *t = *state;
    for (int i = 0; i < 8; i++)
        if (t->conns[i] && i < t->naccepted)
            conn_close(t, i);
    listener_set_free(t->set);
    event_base_free(t->base);
    free(t);
    return 0;
}

/* A TCP connection from src (NULL: any) to 127.0.0.1:port; -1 on failure. */
static int connect_from(const char *src, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    if (src) {
        struct sockaddr_in me = { .sin_family = AF_INET };
        inet_pton(AF_INET, src, &me.sin_addr);
        if (bind(fd, (struct sockaddr *)&me, sizeof me) < 0)
            return -1;
    }
    inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
    if (connect(fd, (struct sockaddr *)&sin, sizeof sin) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Everything the server sent until it closed (within 2 s of loop turns). */
static void read_all(struct t *t, int fd, char *buf, size_t size)
{
    size_t have = 0;
    double end = now_s() + 2;
    struct timeval tv = { 0, 20000 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    buf[0] = 0;
    while (now_s() < end && have + 1 < size) {
        event_base_loop(t->base, EVLOOP_NONBLOCK);
        ssize_t n = read(fd, buf + have, size - 1 - have);
        if (n == 0)
            break;
        if (n > 0)
            have += (size_t)n;
    }
    buf[have] = 0;
}

static int tcp_listener(struct t *t)
{
    char err[256];
    struct listen_addr a = loopback("127.0.0.1");
    assert_int_equal(listener_add_tcp(t->set, &a, &smtps_info, err, sizeof err), 0);
    listener_set_enable(t->set);
    const struct listener_info *li = listener_set_info(t->set, 0);
    assert_non_null(li);
    assert_true(li->port > 0);
    return li->port;
}

static void test_tcp_accept_identity(void **state)
{
    struct t *t = *state;
    int port = tcp_listener(t);
    int fd = connect_from(NULL, port);
    assert_true(fd >= 0);
    assert_int_equal(run_until(t, &t->naccepted, 1, 2000), 1);
    struct listener_conn *c = t->conns[0];
    /* the identity of the listener that accepted it */
    assert_string_equal(c->info->proto, "smtps");
    assert_string_equal(c->info->addr, "127.0.0.1:0");
    assert_int_equal(c->info->port, port);
    assert_int_equal(c->info->implicit_tls, 1);
    assert_int_equal(c->info->auth_required, 1);
    assert_int_equal(c->info->cleartext, LISTENER_AUTH_CLEARTEXT);
    assert_ptr_equal(c->info, listener_set_info(t->set, 0));
    assert_null(listener_set_info(t->set, 1));
    /* the peer and its record */
    assert_string_equal(c->peer, "127.0.0.1");
    assert_int_equal(c->addr.ss_family, AF_INET);
    assert_string_equal(c->client->addr, "127.0.0.1");
    assert_int_equal(c->client->n, 1);
    assert_int_equal(listener_set_conns(t->set), 1);
    /* the socket works, and is the protocol's */
    assert_int_equal(write(fd, "x", 1), 1);
    char b;
    usleep(20000);
    assert_int_equal(read(c->fd, &b, 1), 1);
    assert_int_equal(b, 'x');
    conn_close(t, 0);
    assert_int_equal(t->nclosed, 1);
    assert_int_equal(listener_set_conns(t->set), 0);
    close(fd);
}

static void test_accept_hook_declines(void **state)
{
    struct t *t = *state;
    int port = tcp_listener(t);
    t->accept_fails = 1;
    int fd = connect_from(NULL, port);
    char buf[64];
    read_all(t, fd, buf, sizeof buf);       /* closed by the listener */
    assert_string_equal(buf, "");
    assert_int_equal(listener_set_conns(t->set), 0);
    assert_int_equal(t->nclosed, 0);        /* never taken: no closed hook */
    close(fd);
}

static void test_per_client_limit(void **state)
{
    struct t *t = *state;
    int port = tcp_listener(t);
    char buf[128];
    listener_set_limits(t->set, 0, 2);
    int a = connect_from("127.0.0.1", port), b = connect_from("127.0.0.1", port);
    assert_int_equal(run_until(t, &t->naccepted, 2, 2000), 2);
    assert_ptr_equal(t->conns[0]->client, t->conns[1]->client);
    assert_int_equal(t->conns[0]->client->n, 2);
    t->conns[0]->client->bytes = 7;         /* the protocol's, kept for it */
    int c = connect_from("127.0.0.1", port);
    read_all(t, c, buf, sizeof buf);
    assert_string_equal(buf, "421 too many from you\r\n");
    assert_int_equal(t->refused[LISTENER_CLIENT_FULL], 1);
    assert_int_equal(t->refused[LISTENER_FULL], 0);
    assert_string_equal(t->refused_peer, "127.0.0.1");
    assert_string_equal(t->refused_li->proto, "smtps");
    assert_int_equal(t->nfull, 0);
    assert_int_equal(listener_set_conns(t->set), 2);
    assert_int_equal(t->conns[1]->client->bytes, 7);
    close(c);
    /* another address is not affected */
    int d = connect_from("127.0.0.2", port);
    assert_int_equal(run_until(t, &t->naccepted, 3, 2000), 3);
    assert_string_equal(t->conns[2]->peer, "127.0.0.2");
    assert_int_equal(t->conns[2]->client->n, 1);
    assert_int_equal(t->conns[2]->client->bytes, 0);
    /* one gone: room again */
    t->conns[0]->client->bytes = 0;
    conn_close(t, 0);
    int e = connect_from("127.0.0.1", port);
    assert_int_equal(run_until(t, &t->naccepted, 4, 2000), 4);
    assert_int_equal(t->conns[3]->client->n, 2);
    close(a);
    close(b);
    close(d);
    close(e);
}

static void test_total_limit_and_full_hook(void **state)
{
    struct t *t = *state;
    int port = tcp_listener(t);
    char buf[128];
    listener_set_limits(t->set, 2, 0);
    int a = connect_from("127.0.0.1", port), b = connect_from("127.0.0.2", port);
    assert_int_equal(run_until(t, &t->naccepted, 2, 2000), 2);
    int c = connect_from("127.0.0.3", port);
    read_all(t, c, buf, sizeof buf);
    assert_string_equal(buf, "421 full\r\n");
    assert_int_equal(t->nfull, 1);              /* asked to make room first */
    assert_int_equal(t->refused[LISTENER_FULL], 1);
    assert_string_equal(t->refused_peer, "127.0.0.3");
    close(c);
    /* the full hook makes room: the new one is taken */
    t->full_closes = 1;
    int d = connect_from("127.0.0.3", port);
    assert_int_equal(run_until(t, &t->naccepted, 3, 2000), 3);
    assert_int_equal(t->nfull, 2);
    assert_int_equal(t->refused[LISTENER_FULL], 1);
    assert_null(t->conns[0]);
    assert_string_equal(t->conns[2]->peer, "127.0.0.3");
    assert_int_equal(listener_set_conns(t->set), 2);
    read_all(t, a, buf, sizeof buf);            /* closed to make room */
    assert_string_equal(buf, "");
    close(a);
    close(b);
    close(d);
}

static void test_udp_datagram(void **state)
{
    struct t *t = *state;
    char err[256];
    struct listen_addr a = loopback("127.0.0.1");
    assert_int_equal(listener_add_udp(t->set, &a, &radius_info, err, sizeof err), 0);
    listener_set_enable(t->set);
    const struct listener_info *li = listener_set_info(t->set, 0);
    assert_true(li->port > 0);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons((uint16_t)li->port) };
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    t->dgram_reply = 1;
    assert_int_equal(sendto(fd, "hello\0x", 7, 0, (struct sockaddr *)&to, sizeof to), 7);
    assert_int_equal(run_until(t, &t->ndgram, 1, 2000), 1);
    assert_int_equal(t->dgram_len, 7);
    assert_memory_equal(t->dgram, "hello\0x", 7);
    assert_string_equal(t->dgram_peer, "127.0.0.1");
    assert_ptr_equal(t->dgram_li, li);
    assert_string_equal(t->dgram_li->proto, "radius");
    assert_string_equal(t->dgram_li->addr, "127.0.0.1:0");
    char buf[16];
    struct timeval tv = { 2, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    assert_int_equal(recv(fd, buf, sizeof buf, 0), 4);      /* listener_reply */
    assert_memory_equal(buf, "pong", 4);
    /* an empty datagram, then several at once */
    t->dgram_reply = 0;
    assert_int_equal(sendto(fd, "", 0, 0, (struct sockaddr *)&to, sizeof to), 0);
    assert_int_equal(run_until(t, &t->ndgram, 2, 2000), 2);
    assert_int_equal(t->dgram_len, 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(sendto(fd, "abc", 3, 0, (struct sockaddr *)&to, sizeof to), 3);
    assert_int_equal(run_until(t, &t->ndgram, 5, 2000), 5);
    assert_int_equal(listener_set_conns(t->set), 0);    /* datagrams are no connections */
    close(fd);
}

static void test_unix_socket(void **state)
{
    struct t *t = *state;
    char dir[] = "/tmp/km-test-listener-XXXXXX", path[64], link[64], err[256];
    struct stat st;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/ctl", dir);
    snprintf(link, sizeof link, "%s/link", dir);
    /* a stale socket (nobody listening) is replaced */
    int stale = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
    assert_int_equal(bind(stale, (struct sockaddr *)&sun, sizeof sun), 0);
    close(stale);
    assert_int_equal(listener_add_unix(t->set, path, 0660, &control_info, err, sizeof err), 0);
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0660);
    /* a live socket there is refused, and so is a symlink */
    struct listener_set *other = listener_set_new(t->base, &proto, t);
    assert_int_equal(listener_add_unix(other, path, 0660, &control_info, err, sizeof err), -1);
    assert_non_null(strstr(err, "another process is listening there"));
    assert_int_equal(symlink(path, link), 0);
    assert_int_equal(listener_add_unix(other, link, 0660, &control_info, err, sizeof err), -1);
    assert_non_null(strstr(err, "is a symbolic link"));
    listener_set_free(other);
    listener_set_enable(t->set);
    /* the first connection is the live-socket check's own (closed already) */
    assert_int_equal(run_until(t, &t->naccepted, 1, 2000), 1);
    conn_close(t, 0);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sun, sizeof sun), 0);
    assert_int_equal(run_until(t, &t->naccepted, 2, 2000), 2);
    assert_string_equal(t->conns[1]->peer, "unix");
    assert_string_equal(t->conns[1]->info->proto, "control");
    assert_string_equal(t->conns[1]->info->addr, path);
    assert_int_equal(t->conns[1]->info->port, 0);
    /* stop: the path is unlinked, the connection stays */
    listener_set_stop(t->set, NULL, NULL);
    assert_int_equal(lstat(path, &st), -1);
    assert_int_equal(listener_set_conns(t->set), 1);
    conn_close(t, 1);
    close(fd);
    unlink(link);
    rmdir(dir);
}

static void test_stop_drained(void **state)
{
    struct t *t = *state;
    int port = tcp_listener(t);
    int a = connect_from(NULL, port), b = connect_from(NULL, port);
    assert_int_equal(run_until(t, &t->naccepted, 2, 2000), 2);
    listener_set_stop(t->set, t_drained, t);
    assert_int_equal(t->ndrained, 0);
    assert_int_equal(connect_from(NULL, port), -1);     /* not listening any more */
    conn_close(t, 0);
    assert_int_equal(t->ndrained, 0);
    conn_close(t, 1);
    assert_int_equal(t->ndrained, 1);
    close(a);
    close(b);
    /* with nothing open, drained runs at once */
    struct listener_set *s = listener_set_new(t->base, &proto, t);
    listener_set_stop(s, t_drained, t);
    assert_int_equal(t->ndrained, 2);
    listener_set_free(s);
}

/* Uses up every free descriptor; returns how many (in hog[]). */
static int hog_fds(int *hog, int max)
{
    int n = 0;
    while (n < max) {
        int fd = dup(0);
        if (fd < 0)
            break;
        hog[n++] = fd;
    }
    return n;
}

/* An accept failing with EMFILE pauses the socket; a connection closing
 * (which frees a descriptor) makes it accept again before the delay. */
static void test_emfile_resume_on_close(void **state)
{
    struct t *t = *state;
    int port = tcp_listener(t);         /* pause_ms 10 s */
    struct rlimit old, rl;
    int hog[256], nhog;
    getrlimit(RLIMIT_NOFILE, &old);
    int a = connect_from(NULL, port);
    assert_int_equal(run_until(t, &t->naccepted, 1, 2000), 1);
    int b = socket(AF_INET, SOCK_STREAM, 0);
    rl = old;
    rl.rlim_cur = (rlim_t)(dup(0) + 1);     /* the lowest free descriptor + 1 */
    close((int)rl.rlim_cur - 1);
    setrlimit(RLIMIT_NOFILE, &rl);
    nhog = hog_fds(hog, 256);
    assert_true(nhog < 256);
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
    assert_int_equal(connect(b, (struct sockaddr *)&sin, sizeof sin), 0);
    run_until(t, &t->naccepted, 2, 300);
    assert_int_equal(t->naccepted, 1);      /* accept failed: paused */
    while (nhog > 0)
        close(hog[--nhog]);
    setrlimit(RLIMIT_NOFILE, &old);
    run_until(t, &t->naccepted, 2, 300);
    assert_int_equal(t->naccepted, 1);      /* still paused (10 s) */
    conn_close(t, 0);                       /* a connection closes */
    assert_int_equal(run_until(t, &t->naccepted, 2, 2000), 2);
    close(a);
    close(b);
}

/* ... and without a close, it accepts again after its delay. */
static void test_emfile_resume_after_delay(void **state)
{
    struct t *t = *state;
    proto_fast = proto;
    proto_fast.pause_ms = 50;
    listener_set_free(t->set);
    t->set = listener_set_new(t->base, &proto_fast, t);
    int port = tcp_listener(t);
    struct rlimit old, rl;
    int hog[256], nhog;
    getrlimit(RLIMIT_NOFILE, &old);
    int b = socket(AF_INET, SOCK_STREAM, 0);
    rl = old;
    rl.rlim_cur = (rlim_t)(dup(0) + 1);
    close((int)rl.rlim_cur - 1);
    setrlimit(RLIMIT_NOFILE, &rl);
    nhog = hog_fds(hog, 256);
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
    assert_int_equal(connect(b, (struct sockaddr *)&sin, sizeof sin), 0);
    /* the loop retries every 50 ms and fails while no descriptor is free */
    run_until(t, &t->naccepted, 1, 200);
    assert_int_equal(t->naccepted, 0);
    while (nhog > 0)
        close(hog[--nhog]);
    setrlimit(RLIMIT_NOFILE, &old);
    assert_int_equal(run_until(t, &t->naccepted, 1, 2000), 1);
    close(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_tcp_accept_identity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_accept_hook_declines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_per_client_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_total_limit_and_full_hook, setup, teardown),
        cmocka_unit_test_setup_teardown(test_udp_datagram, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unix_socket, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_drained, setup, teardown),
        cmocka_unit_test_setup_teardown(test_emfile_resume_on_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_emfile_resume_after_delay, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

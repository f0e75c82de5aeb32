/*
 * test_smtp_client_fail — the SMTP client when things go wrong: 421 mid-
 * session, timeouts, lost connections, malformed and over-long replies,
 * connection refused, abort (also from inside callbacks), and STARTTLS
 * (may, encrypt not offered, handshake failure, refused).  The fake server
 * is smtp_client_fake.h; the transactions are in test_smtp_client.c.
 */
#include "smtp_client_fake.h"

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

static int tls_setup(void **state)
{
    return cert_setup("mx.acme.example");
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
    r.f.tls = cert_server_ctx();
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


int main(void)
{
    const struct CMUnitTest tests[] = {
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
        log_init("test_smtp_client_fail", 1);
        log_set_debug(1);
    }
    return cmocka_run_group_tests(tests, tls_setup, cert_teardown);
}

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
 * Covered here (failures, abort and STARTTLS are in test_smtp_client_fail.c): PIPELINING and not, 452 4.5.3 split into two transactions (and
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
#include "smtp_client_fake.h"

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

/* An address not in wire form (a quoted local part kept unquoted) would
 * end the path early and add parameters: refused, never put on the wire. */
static void test_unquoted_address(void **state)
{
    static const struct step script[] = {
        { NULL, BANNER, A_NONE },
        { "EHLO", EHLO_PIPE, A_NONE },
        { "MAIL FROM:<a@src.example>", "250 2.1.0 Ok\r\n", A_NONE },
        { "RCPT TO:<\"x y\"@acme.example>", "250 2.1.5 Ok\r\n", A_NONE },
        { "DATA", "354 go\r\n", A_NONE },
        { "<DATA>", "250 2.0.0 Ok\r\n", A_NONE },
        { "QUIT", "221 2.0.0 Bye\r\n", A_NONE },
    };
    struct run r;
    struct tmsg m, bad_sender;

    run_init(&r, script, N_(script));
    tmsg_init(&m, "a@src.example", "a> NOTIFY=SUCCESS@acme.example",
              "\"x y\"@acme.example", "x y@acme.example");
    tmsg_body(&m, "x\r\n");
    tmsg_init(&bad_sender, "x> RET=FULL@src.example", "bob@acme.example", NULL, NULL);
    tmsg_body(&bad_sender, "x\r\n");
    r.o.msgs[0] = &m;
    r.o.msgs[1] = &bad_sender;
    r.o.nmsgs = 2;
    run_go(&r);
    run_check_script(&r);
    assert_string_equal(r.f.lines[2], "RCPT TO:<\"x y\"@acme.example>");
    assert_result(&m, 0, 501, "501 5.1.3 invalid recipient address");
    assert_result(&m, 1, 250, "250 2.0.0 Ok");
    assert_result(&m, 2, 501, "501 5.1.3 invalid recipient address");
    assert_result(&bad_sender, 0, 501, "501 5.1.7 invalid sender address");
    tmsg_free(&m);
    tmsg_free(&bad_sender);
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
        cmocka_unit_test(test_unquoted_address),
        cmocka_unit_test(test_dot_stuffing),
        cmocka_unit_test(test_big_body),
        cmocka_unit_test(test_helo_fallback),
        cmocka_unit_test(test_expect_helo_banner),
        cmocka_unit_test(test_expect_helo_ehlo),
        cmocka_unit_test(test_banner_refused),
    };

    signal(SIGPIPE, SIG_IGN);       /* as kickmaild does */
    if (getenv("KM_TEST_DEBUG") && *getenv("KM_TEST_DEBUG")) {
        log_init("test_smtp_client", 1);
        log_set_debug(1);
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}

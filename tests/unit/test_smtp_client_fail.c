/*
 * test_smtp_client_fail — the SMTP client when things go wrong, against the
 * scripted fake server of smtp_client_fake.h: one table per topic, one row
 * per conversation (see test_smtp_client.c for the transactions).
 *
 *   failures   421 mid-session, timeouts (scale_timeouts_ms), lost
 *              connection, malformed and over-long replies
 *   connecting connection refused, connect timeout, connect() failing at
 *              once (reported from the loop), smtp_client_start refusing
 *   aborts     abort during DATA, before the loop ran, and abort / quit from
 *              inside the owner's callbacks
 *   tls        STARTTLS: may (plaintext injected after the 220 discarded),
 *              encrypt not offered, handshake failure, refused
 */
#include "smtp_client_fake.h"

/* ---- failures: replies and timeouts -------------------------------------- */

static char long_reply[8000];           /* "250-xxx...", no CR LF; see main() */

static const struct conv_case failures[] = {
    {
        /* 421: the recipients not yet refused take it; the connection ends */
        .name = "421_mid_session",
        SCRIPT({ NULL, BANNER, A_NONE },
               { "EHLO", EHLO_PIPE, A_NONE },
               { "MAIL", "250 2.1.0 Ok\r\n", A_NONE },
               { "RCPT TO:<x@acme.example>", "550 5.1.1 unknown\r\n", A_NONE },
               { "RCPT TO:<y@acme.example>", "250 2.1.5 Ok\r\n", A_NONE },
               { "RCPT TO:<z@acme.example>", "421 4.3.2 mx.acme.example shutting down\r\n",
                 A_CLOSE }),
        .msgs = { { .from = "a@src.example",
                    .to = { "x@acme.example", "y@acme.example", "z@acme.example" },
                    .body = "x\r\n",
                    .want = { { 550, "550 5.1.1 unknown" },
                              { 421, "421 4.3.2 mx.acme.example shutting down" },
                              { 421, "421 4.3.2 mx.acme.example shutting down" } } } },
        .nready = 1, .ndone = 1,
        .closed = { 421, "421 4.3.2 mx.acme.example shutting down" },
    },
    {
        .name = "timeout",
        .timeout_ms = 150,
        SCRIPT({ NULL, BANNER, A_NONE },
               { "EHLO", EHLO_PLAIN, A_NONE },
               { "MAIL", "250 2.1.0 Ok\r\n", A_NONE },
               { "RCPT TO:<x@acme.example>", NULL, A_HANG }),
        .msgs = { { .from = "a@src.example", .to = { "x@acme.example", "y@acme.example" },
                    .body = "x\r\n",
                    .want = { { 0, "conversation with 127.0.0.1[127.0.0.1] timed out "
                                   "while sending RCPT TO" },
                              { 0, "conversation with 127.0.0.1[127.0.0.1] timed out "
                                   "while sending RCPT TO" } } } },
        .nready = 1, .ndone = 1,
        .closed = { -1, "conversation with 127.0.0.1[127.0.0.1] timed out "
                        "while sending RCPT TO" },
    },
    {
        .name = "timeout_banner",
        .timeout_ms = 100,
        SCRIPT({ NULL, NULL, A_HANG }),
        .closed = { -1, "conversation with 127.0.0.1[127.0.0.1] timed out "
                        "while receiving the initial server greeting" },
    },
    {
        /* the server closes after the data, before its reply */
        .name = "lost_connection",
        SCRIPT({ NULL, BANNER, A_NONE },
               { "EHLO", EHLO_PLAIN, A_NONE },
               { "MAIL", "250 2.1.0 Ok\r\n", A_NONE },
               { "RCPT TO:<x@acme.example>", "250 2.1.5 Ok\r\n", A_NONE },
               { "DATA", "354 go\r\n", A_NONE },
               { "<DATA>", NULL, A_CLOSE }),
        .msgs = { { .from = "a@src.example", .to = { "x@acme.example" }, .body = "x\r\n",
                    .want = { { 0, LOST "sending end of data -- "
                                   "message may be sent more than once" } } } },
        .nbodies = 1, .bodies = { "x\r\n" },
        .nready = 1, .ndone = 1,
        .closed = { -1, LOST "sending end of data -- message may be sent more than once" },
    },
    {
        .name = "malformed_reply",
        SCRIPT({ NULL, BANNER, A_NONE },
               { "EHLO", EHLO_PIPE, A_NONE },
               { "MAIL", "250 2.1.0 Ok\r\n", A_NONE },
               { "RCPT TO:<x@acme.example>", "250-2.1.5 Ok\r\n550 mixed codes\r\n", A_NONE },
               { "DATA", NULL, A_NONE }),
        .msgs = { { .from = "a@src.example", .to = { "x@acme.example" }, .body = "x\r\n",
                    .want = { { 0, "malformed reply from 127.0.0.1[127.0.0.1] "
                                   "while sending RCPT TO" } } } },
        .nready = 1, .ndone = 1,
        .closed = { -1, "malformed reply from 127.0.0.1[127.0.0.1] while sending RCPT TO" },
    },
    {
        .name = "long_reply",
        SCRIPT({ NULL, BANNER, A_NONE },
               { "EHLO", long_reply, A_NONE }),
        .closed = { -1, "reply line too long from 127.0.0.1[127.0.0.1] "
                        "while performing the EHLO handshake" },
    },
};

/* ---- connect: reaching the server, and smtp_client_start ------------------ */

static const struct conv_case connecting[] = {
    {
        .name = "connect_refused",
        .peer = PEER_REFUSED,
        .closed = { -1, "connect to 127.0.0.1:<port>: Connection refused" },
    },
    {
        /* nobody answers the SYN (a listener whose accept queue is full
         * drops it on Linux): the connect timeout ends the attempt */
        .name = "connect_timeout",
        .peer = PEER_SILENT,
        .timeout_ms = 200,
        .closed = { -1, "connect to 127.0.0.1:<port>: Connection timed out" },
    },
    {
        /* connect() fails at once (Linux refuses TCP to a multicast
         * address): the failure still comes from the loop */
        .name = "connect_fails_at_once",
        .peer = PEER_HOST, .host = "224.0.0.1", .port = 25,
        .start = START_FIRST_PASS,
        .closed = { -1, "connect to 224.0.0.1:25: Network is unreachable" },
    },
    {
        .name = "start_host_not_numeric",
        .peer = PEER_HOST, .host = "mx.acme.example", .port = 25,
        .start = START_NULL,
    },
    {
        .name = "start_port_0",
        .peer = PEER_HOST, .host = "127.0.0.1", .port = 0,
        .start = START_NULL,
    },
};

/* ---- aborts: abort, and calling back from callbacks ----------------------- */

/* 3 MiB of 100-byte lines: more than the socket takes at once. */
static void body_3_mib(struct evbuffer *body)
{
    char *b = malloc(3 << 20);
    for (size_t i = 0; i < (3u << 20); i++)
        b[i] = i % 100 == 99 ? '\n' : i % 100 == 98 ? '\r' : 'a';
    evbuffer_add(body, b, 3 << 20);
    free(b);
}

static const struct conv_case aborts[] = {
    {
        /* the server aborts the client (link down) while the data flows */
        .name = "abort_during_data",
        SCRIPT({ NULL, BANNER, A_NONE },
               { "EHLO", EHLO_PIPE, A_NONE },
               { "MAIL", "250 2.1.0 Ok\r\n", A_NONE },
               { "RCPT TO:<x@acme.example>", "250 2.1.5 Ok\r\n", A_NONE },
               { "RCPT TO:<y@acme.example>", "550 5.1.1 unknown\r\n", A_NONE },
               { "DATA", "354 go\r\n", A_NONE },
               { "<DATA>", NULL, A_ABORT }),
        .msgs = { { .from = "a@src.example", .to = { "x@acme.example", "y@acme.example" },
                    .fill = body_3_mib,
                    .want = { { 0, "link went down during delivery" },
                              { 0, "link went down during delivery" } } } },
        .nready = 1, .ndone = 1,
        .closed = { -1, "link went down during delivery" },
    },
    {
        /* abort right after smtp_client_start: closed() at once, once */
        .name = "abort_before_loop",
        .peer = PEER_HOST, .host = "224.0.0.1", .port = 25,
        .start = START_ABORT,
        .closed = { -1, "aborted at start" },
    },
    {
        /* abort (twice) from ready(); abort and quit from closed(): no-ops */
        .name = "abort_in_ready",
        .abort_in_ready = 1, .abort_in_closed = 1,
        SCRIPT({ NULL, BANNER, A_NONE },
               { "EHLO", EHLO_PIPE, A_NONE }),
        .nready = 1,
        .closed = { -1, "aborted in ready" },
    },
    {
        /* abort from done(): delivered stays delivered, the second message
         * is never asked for */
        .name = "abort_in_done",
        .abort_in_done = 1,
        SCRIPT({ NULL, BANNER, A_NONE },
               { "EHLO", EHLO_PIPE, A_NONE },
               { "MAIL", "250 2.1.0 Ok\r\n", A_NONE },
               { "RCPT", "250 2.1.5 Ok\r\n", A_NONE },
               { "DATA", "354 go\r\n", A_NONE },
               { "<DATA>", "250 2.0.0 Ok: kept\r\n", A_NONE }),
        .msgs = {
            { .from = "a@src.example", .to = { "x@acme.example" }, .body = "x\r\n",
              .want = { { 250, "250 2.0.0 Ok: kept" } } },
            { .from = "a@src.example", .to = { "x@acme.example" },
              .want = { { 0, NULL } } },
        },
        .nbodies = 1, .bodies = { "x\r\n" },
        .nready = 1, .ndone = 1,
        .closed = { -1, "aborted in done" },
    },
    {
        /* quit (twice) from done(): QUIT follows the message, ready() is not
         * called again */
        .name = "quit_in_done",
        .quit_in_done = 1, .abort_in_closed = 1,
        SCRIPT({ NULL, BANNER, A_NONE },
               { "EHLO", EHLO_PIPE, A_NONE },
               { "MAIL", "250 2.1.0 Ok\r\n", A_NONE },
               { "RCPT", "250 2.1.5 Ok\r\n", A_NONE },
               { "DATA", "354 go\r\n", A_NONE },
               { "<DATA>", "250 2.0.0 Ok\r\n", A_NONE },
               { "QUIT", "221 2.0.0 Bye\r\n", A_CLOSE }),
        .msgs = {
            { .from = "a@src.example", .to = { "x@acme.example" }, .body = "x\r\n",
              .want = { { 250, "250 2.0.0 Ok" } } },
            { .from = "a@src.example", .to = { "x@acme.example" },
              .want = { { 0, NULL } } },
        },
        .nbodies = 1, .bodies = { "x\r\n" },
        .nready = 1, .ndone = 1,
    },
};

/* ---- tls: STARTTLS --------------------------------------------------------- */

static int tls_setup(void **state)
{
    return cert_setup("mx.acme.example");
}

static const struct conv_case tls[] = {
    {
        .name = "starttls_may",
        .server_tls = 1,
        .tls = SMTPC_TLS_MAY,
        .expect_helo = "mx.acme.example",       /* also the SNI */
        SCRIPT({ NULL, BANNER, A_NONE },
               { "EHLO kickmail.test", "250-mx.acme.example\r\n250-STARTTLS\r\n"
                                       "250 SIZE 1000\r\n", A_NONE },
               /* plaintext after the 220 must be dropped, never read as a reply */
               { "STARTTLS", "220 2.0.0 Ready to start TLS\r\n250 injected\r\n", A_TLS },
               { "EHLO kickmail.test", EHLO_PIPE, A_NONE },
               { "MAIL FROM:<a@src.example> SIZE=3", "250 2.1.0 Ok\r\n", A_NONE },
               { "RCPT", "250 2.1.5 Ok\r\n", A_NONE },
               { "DATA", "354 go\r\n", A_NONE },
               { "<DATA>", "250 2.0.0 Ok: over TLS\r\n", A_NONE },
               { "QUIT", "221 2.0.0 Bye\r\n", A_NONE }),
        .msgs = { { .from = "a@src.example", .to = { "x@acme.example" }, .body = "x\r\n",
                    .want = { { 250, "250 2.0.0 Ok: over TLS" } } } },
        .nbodies = 1, .bodies = { "x\r\n" },
        .nready = 2, .ndone = 1,
    },
    {
        .name = "encrypt_not_offered",
        .tls = SMTPC_TLS_ENCRYPT,
        SCRIPT({ NULL, BANNER, A_NONE },
               { "EHLO", EHLO_PIPE, A_NONE },
               { "QUIT", "221 2.0.0 Bye\r\n", A_NONE }),
        .closed = { -1, "TLS is required, but was not offered by host 127.0.0.1[127.0.0.1]" },
    },
    {
        /* may, and the handshake fails: the connection fails (reported),
         * nothing sent */
        .name = "starttls_handshake_fails",
        .tls = SMTPC_TLS_MAY,
        SCRIPT({ NULL, BANNER, A_NONE },
               { "EHLO", "250-mx.acme.example\r\n250 STARTTLS\r\n", A_NONE },
               { "STARTTLS", "220 2.0.0 Ready\r\n", A_CLOSE }),
        .closed = { -1, "TLS handshake with 127.0.0.1[127.0.0.1] failed: ..." },
    },
    {
        /* may, STARTTLS refused by the server: carry on in plaintext */
        .name = "starttls_refused",
        .tls = SMTPC_TLS_MAY,
        SCRIPT({ NULL, BANNER, A_NONE },
               { "EHLO", "250-mx.acme.example\r\n250 STARTTLS\r\n", A_NONE },
               { "STARTTLS", "454 4.7.0 TLS not available\r\n", A_NONE },
               { "QUIT", "221 2.0.0 Bye\r\n", A_NONE }),
        .nready = 1,
    },
};

int main(void)
{
    int failed = 0;

    conv_main_init("test_smtp_client_fail");
    memcpy(long_reply, "250-", 4);
    memset(long_reply + 4, 'x', sizeof long_reply - 5);
    failed += CONV_GROUP(failures, NULL, NULL);
    failed += CONV_GROUP(connecting, NULL, NULL);
    failed += CONV_GROUP(aborts, NULL, NULL);
    failed += CONV_GROUP(tls, tls_setup, cert_teardown);
    return failed;
}

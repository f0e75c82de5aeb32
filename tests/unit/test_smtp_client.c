/*
 * test_smtp_client — the SMTP client's conversations that go as planned,
 * against the scripted fake server of smtp_client_fake.h: one table per
 * topic, one row per conversation (the script the server plays, the
 * messages the owner hands over, and every expected value: command lines,
 * message data, each recipient's result, the callbacks, how it closed).
 *
 *   greeting   banner refused, expect_helo (greeting and EHLO), HELO fallback
 *   ehlo       PIPELINING and not (also with replies dripped one byte per
 *              write), 8BITMIME, SIZE too big → 552 without sending
 *   mail_rcpt  452 4.5.3 split into two transactions (and without enhanced
 *              codes, and without progress), partial RCPT failure, all RCPT
 *              failing → RSET (with and without pipelining), MAIL refused,
 *              addresses not in wire form never sent
 *   data       dot-stuffing (missing final CR LF, empty body; a body of many
 *              evbuffer chains over several write blocks)
 *   attach     smtp_client_attach() on a connection already open (ODMR):
 *              the same conversation from the greeting on; a refused one
 *
 * Failures, timeouts, abort and STARTTLS are in test_smtp_client_fail.c.
 * KM_TEST_DEBUG=1 in the environment logs the client's debug lines to stderr.
 */
#include "smtp_client_fake.h"

/* ---- greeting: the 220 banner, HELO, expect_helo ------------------------- */

static const struct conv_case greeting[] = {
    {
        .name = "banner_refused",
        SCRIPT({ NULL, "554 5.7.1 go away\r\n", A_NONE },
               { "QUIT", "221 Bye\r\n", A_NONE }),
        .closed = { 554, "host 127.0.0.1[127.0.0.1] refused to talk to me: 554 5.7.1 go away" },
    },
    {
        .name = "expect_helo_banner",
        .expect_helo = "mx.acme.example",
        SCRIPT({ NULL, "220 evil.example ESMTP\r\n", A_NONE },
               { "QUIT", "221 Bye\r\n", A_NONE }),
        .closed = { -1, "server greeted as evil.example, expected mx.acme.example" },
    },
    {
        .name = "expect_helo_ehlo",
        .expect_helo = "mx.acme.example",
        SCRIPT({ NULL, BANNER, A_NONE },
               { "EHLO", "250-other.example hello\r\n250 PIPELINING\r\n", A_NONE },
               { "QUIT", "221 Bye\r\n", A_NONE }),
        .closed = { -1, "server greeted as other.example, expected mx.acme.example" },
    },
    {
        /* EHLO refused: HELO, then no SIZE, no BODY, no pipelining */
        .name = "helo_fallback",
        .expect_helo = "MX.acme.example",       /* case-insensitive */
        SCRIPT({ NULL, BANNER, A_NONE },
               { "EHLO kickmail.test", "502 5.5.1 Error: command not implemented\r\n", A_NONE },
               { "HELO kickmail.test", "250 mx.acme.example\r\n", A_NONE },
               { "MAIL FROM:<a@src.example>", "250 Ok\r\n", A_NONE },
               { "RCPT TO:<x@acme.example>", "250 Ok\r\n", A_NONE },
               { "DATA", "354 go\r\n", A_NONE },
               { "<DATA>", "250 Ok: queued\r\n", A_NONE },
               { "QUIT", "221 Bye\r\n", A_NONE }),
        .msgs = { { .from = "a@src.example", .to = { "x@acme.example" }, .body = "x\r\n",
                    .eightbit = 1, .want = { { 250, "250 Ok: queued" } } } },
        .sent = { { 2, "MAIL FROM:<a@src.example>", "" } },
        .nbodies = 1, .bodies = { "x\r\n" },
        .nready = 2, .ndone = 1,
    },
};

/* ---- ehlo: what the EHLO reply offers ------------------------------------ */

/* The 200-byte and 50-byte bodies of size_too_big (SIZE 100). */
static void body_200_bytes(struct evbuffer *b)
{
    char body[200];
    memset(body, 'b', 198);
    memcpy(body + 198, "\r\n", 2);
    evbuffer_add(b, body, sizeof body);
}

static void body_50_bytes(struct evbuffer *b)
{
    char body[50];
    memset(body, 'b', 48);
    memcpy(body + 48, "\r\n", 2);
    evbuffer_add(b, body, sizeof body);
}

static const struct conv_case ehlo[] = {
    {
        /* MAIL, RCPT, RCPT, DATA in one write; BODY=8BITMIME when offered */
        .name = "pipelining",
        .also_dripped = 1,
        SCRIPT({ NULL, BANNER, A_NONE },
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
               { "QUIT", "221 2.0.0 Bye\r\n", A_NONE }),
        .msgs = {
            { .from = "alice@src.example", .to = { "bob@acme.example", "carol@acme.example" },
              .body = "Subject: hi\r\n\r\nhello\r\n",
              .want = { { 250, "250 2.0.0 Ok: queued as AAA" },
                        { 250, "250 2.0.0 Ok: queued as AAA" } } },
            { .from = "", .to = { "bob@acme.example" },
              .body = "Subject: 8bit\r\n\r\nh\xc3\xa9llo\r\n", .eightbit = 1,
              .want = { { 250, "250 2.0.0 Ok: queued as BBB" } } },
        },
        .sent = { { 1, "MAIL FROM:<alice@src.example> SIZE=22",
                    "RCPT TO:<bob@acme.example>\r\nRCPT TO:<carol@acme.example>\r\nDATA\r\n" },
                  { 5, "MAIL FROM:<> SIZE=25 BODY=8BITMIME", NULL } },
        .nbodies = 2,
        .bodies = { "Subject: hi\r\n\r\nhello\r\n", "Subject: 8bit\r\n\r\nh\xc3\xa9llo\r\n" },
        .nready = 3, .ndone = 2,
    },
    {
        /* one command at a time; no 8BITMIME offered: sent as is, no BODY= */
        .name = "no_pipelining",
        SCRIPT({ NULL, BANNER, A_NONE },
               { "EHLO kickmail.test", EHLO_PLAIN, A_NONE },
               { "MAIL FROM:<alice@src.example> SIZE=", "250 2.1.0 Ok\r\n", A_NONE },
               { "RCPT TO:<bob@acme.example>", "250 2.1.5 Ok\r\n", A_NONE },
               { "RCPT TO:<carol@acme.example>", "250 2.1.5 Ok\r\n", A_NONE },
               { "DATA", "354 go\r\n", A_NONE },
               { "<DATA>", "250 2.0.0 Ok: queued as CCC\r\n", A_NONE },
               { "QUIT", "221 2.0.0 Bye\r\n", A_NONE }),
        .msgs = { { .from = "alice@src.example", .to = { "bob@acme.example", "carol@acme.example" },
                    .body = "Subject: 8bit\r\n\r\n\xe2\x82\xac\r\n", .eightbit = 1,
                    .want = { { 250, "250 2.0.0 Ok: queued as CCC" },
                              { 250, "250 2.0.0 Ok: queued as CCC" } } } },
        .sent = { { 1, "MAIL FROM:<alice@src.example> SIZE=22", "" },
                  { 2, NULL, "" }, { 3, NULL, "" }, { 4, NULL, "" } },
        .nbodies = 1, .bodies = { "Subject: 8bit\r\n\r\n\xe2\x82\xac\r\n" },
        .nready = 2, .ndone = 1,
    },
    {
        /* over the server's SIZE: 552 for each recipient, never sent */
        .name = "size_too_big",
        SCRIPT({ NULL, BANNER, A_NONE },
               { "EHLO", "250-mx.acme.example\r\n250-PIPELINING\r\n250 SIZE 100\r\n", A_NONE },
               { "MAIL FROM:<a@src.example> SIZE=50", "250 2.1.0 Ok\r\n", A_NONE },
               { "RCPT", "250 2.1.5 Ok\r\n", A_NONE },
               { "DATA", "354 go\r\n", A_NONE },
               { "<DATA>", "250 2.0.0 Ok: queued as S2\r\n", A_NONE },
               { "QUIT", "221 2.0.0 Bye\r\n", A_NONE }),
        .msgs = {
            { .from = "a@src.example", .to = { "x@acme.example", "y@acme.example" },
              .fill = body_200_bytes,
              .want = { { 552, "552 5.3.4 message too big for remote (SIZE 100)" },
                        { 552, "552 5.3.4 message too big for remote (SIZE 100)" } } },
            { .from = "a@src.example", .to = { "x@acme.example" }, .fill = body_50_bytes,
              .want = { { 250, "250 2.0.0 Ok: queued as S2" } } },
        },
        .nbodies = 1, .bodies = { NULL },       /* the 50 bytes: SIZE=50 in the script */
        .nready = 3, .ndone = 2,
    },
};

/* ---- mail_rcpt: the replies to MAIL and RCPT ------------------------------ */

#define TOO_MANY "452 4.5.3 Error: too many recipients\r\n"
#define BAD_RCPT "501 5.1.3 invalid recipient address (not in RFC 5321 form)"
#define BAD_SENDER "501 5.1.7 invalid sender address (not in RFC 5321 form)"

static const struct conv_case mail_rcpt[] = {
    {
        /* 452 4.5.3: the refused recipients go again in a second transaction */
        .name = "452_split",
        SCRIPT({ NULL, BANNER, A_NONE },
               { "EHLO", EHLO_PIPE, A_NONE },
               { "MAIL FROM:<a@src.example>", "250 2.1.0 Ok\r\n", A_NONE },
               { "RCPT TO:<r1@acme.example>", "250 2.1.5 Ok\r\n", A_NONE },
               { "RCPT TO:<r2@acme.example>", TOO_MANY, A_NONE },
               { "RCPT TO:<r3@acme.example>", TOO_MANY, A_NONE },
               { "DATA", "354 go\r\n", A_NONE },
               { "<DATA>", "250 2.0.0 Ok: queued as T1\r\n", A_NONE },
               { "MAIL FROM:<a@src.example>", "250 2.1.0 Ok\r\n", A_NONE },
               { "RCPT TO:<r2@acme.example>", "250 2.1.5 Ok\r\n", A_NONE },
               { "RCPT TO:<r3@acme.example>", "250 2.1.5 Ok\r\n", A_NONE },
               { "DATA", "354 go\r\n", A_NONE },
               { "<DATA>", "250 2.0.0 Ok: queued as T2\r\n", A_NONE },
               { "QUIT", "221 2.0.0 Bye\r\n", A_NONE }),
        .msgs = { { .from = "a@src.example",
                    .to = { "r1@acme.example", "r2@acme.example", "r3@acme.example" },
                    .body = "x\r\n",
                    .want = { { 250, "250 2.0.0 Ok: queued as T1" },
                              { 250, "250 2.0.0 Ok: queued as T2" },
                              { 250, "250 2.0.0 Ok: queued as T2" } } } },
        .nbodies = 2, .bodies = { "x\r\n", "x\r\n" },
        .nready = 2, .ndone = 1,
    },
    {
        /* without pipelining and without an enhanced code: after the first
         * "too many", the rest of the batch waits for the next transaction
         * untried */
        .name = "452_split_plain",
        SCRIPT({ NULL, BANNER, A_NONE },
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
               { "QUIT", "221 Bye\r\n", A_NONE }),
        .msgs = { { .from = "a@src.example",
                    .to = { "r1@acme.example", "r2@acme.example", "r3@acme.example" },
                    .body = "x\r\n",
                    .want = { { 250, "250 queued as T1" }, { 250, "250 queued as T2" },
                              { 250, "250 queued as T2" } } } },
        .nbodies = 2, .bodies = { "x\r\n", "x\r\n" },
        .nready = 2, .ndone = 1,
    },
    {
        /* a transaction that accepted nobody: the 452s stand (no endless loop) */
        .name = "452_no_progress",
        SCRIPT({ NULL, BANNER, A_NONE },
               { "EHLO", EHLO_PIPE, A_NONE },
               { "MAIL", "250 2.1.0 Ok\r\n", A_NONE },
               { "RCPT TO:<r1@acme.example>", TOO_MANY, A_NONE },
               { "RCPT TO:<r2@acme.example>", TOO_MANY, A_NONE },
               { "DATA", "554 5.5.1 Error: no valid recipients\r\n", A_NONE },
               { "RSET", "250 2.0.0 Ok\r\n", A_NONE },
               { "QUIT", "221 2.0.0 Bye\r\n", A_NONE }),
        .msgs = { { .from = "a@src.example", .to = { "r1@acme.example", "r2@acme.example" },
                    .body = "x\r\n",
                    .want = { { 452, "452 4.5.3 Error: too many recipients" },
                              { 452, "452 4.5.3 Error: too many recipients" } } } },
        .nready = 2, .ndone = 1,
    },
    {
        /* one recipient refused (multi-line reply joined), the other sent */
        .name = "partial_rcpt",
        SCRIPT({ NULL, BANNER, A_NONE },
               { "EHLO", EHLO_PIPE, A_NONE },
               { "MAIL", "250 2.1.0 Ok\r\n", A_NONE },
               { "RCPT TO:<nobody@acme.example>",
                 "550-5.1.1 <nobody@acme.example>: Recipient address rejected:\r\n"
                 "550 5.1.1 User unknown in virtual mailbox table\r\n", A_NONE },
               { "RCPT TO:<bob@acme.example>", "250 2.1.5 Ok\r\n", A_NONE },
               { "DATA", "354 go\r\n", A_NONE },
               { "<DATA>", "250 2.0.0 Ok: queued as P1\r\n", A_NONE },
               { "QUIT", "221 2.0.0 Bye\r\n", A_NONE }),
        .msgs = { { .from = "a@src.example", .to = { "nobody@acme.example", "bob@acme.example" },
                    .body = "x\r\n",
                    .want = { { 550, "550 5.1.1 <nobody@acme.example>: Recipient address "
                                     "rejected:; 5.1.1 User unknown in virtual mailbox table" },
                              { 250, "250 2.0.0 Ok: queued as P1" } } } },
        .nbodies = 1, .bodies = { "x\r\n" },
        .nready = 2, .ndone = 1,
    },
    {
        /* every RCPT refused, pipelined: DATA was already sent; then RSET */
        .name = "all_rcpt_fail_pipelined",
        SCRIPT({ NULL, BANNER, A_NONE },
               { "EHLO", EHLO_PIPE, A_NONE },
               { "MAIL", "250 2.1.0 Ok\r\n", A_NONE },
               { "RCPT TO:<x@acme.example>", "550 5.1.1 unknown x\r\n", A_NONE },
               { "RCPT TO:<y@acme.example>", "450 4.2.0 try later y\r\n", A_NONE },
               { "DATA", "554 5.5.1 Error: no valid recipients\r\n", A_NONE },
               { "RSET", "250 2.0.0 Ok\r\n", A_NONE },
               { "QUIT", "221 2.0.0 Bye\r\n", A_NONE }),
        .msgs = { { .from = "a@src.example", .to = { "x@acme.example", "y@acme.example" },
                    .body = "x\r\n",
                    .want = { { 550, "550 5.1.1 unknown x" },
                              { 450, "450 4.2.0 try later y" } } } },
        .nready = 2, .ndone = 1,
    },
    {
        /* every RCPT refused, one at a time: RSET, no DATA */
        .name = "all_rcpt_fail_plain",
        SCRIPT({ NULL, BANNER, A_NONE },
               { "EHLO", EHLO_PLAIN, A_NONE },
               { "MAIL", "250 2.1.0 Ok\r\n", A_NONE },
               { "RCPT TO:<x@acme.example>", "550 5.1.1 unknown x\r\n", A_NONE },
               { "RCPT TO:<y@acme.example>", "550 5.1.1 unknown y\r\n", A_NONE },
               { "RSET", "250 2.0.0 Ok\r\n", A_NONE },
               { "QUIT", "221 2.0.0 Bye\r\n", A_NONE }),
        .msgs = { { .from = "a@src.example", .to = { "x@acme.example", "y@acme.example" },
                    .body = "x\r\n",
                    .want = { { 550, "550 5.1.1 unknown x" },
                              { 550, "550 5.1.1 unknown y" } } } },
        .nready = 2, .ndone = 1,
    },
    {
        /* MAIL refused: every recipient takes the MAIL reply; nothing else is
         * sent but what pipelining already put on the wire */
        .name = "mail_refused",
        SCRIPT({ NULL, BANNER, A_NONE },
               { "EHLO", EHLO_PIPE, A_NONE },
               { "MAIL", "451 4.3.0 try again\r\n", A_NONE },
               { "RCPT", "503 5.5.1 need MAIL\r\n", A_NONE },
               { "DATA", "503 5.5.1 need RCPT\r\n", A_NONE },
               { "MAIL", "250 2.1.0 Ok\r\n", A_NONE },
               { "RCPT", "250 2.1.5 Ok\r\n", A_NONE },
               { "DATA", "354 go\r\n", A_NONE },
               { "<DATA>", "250 2.0.0 Ok: queued as M2\r\n", A_NONE },
               { "QUIT", "221 2.0.0 Bye\r\n", A_NONE }),
        .msgs = {
            { .from = "a@src.example", .to = { "x@acme.example" }, .body = "1\r\n",
              .want = { { 451, "451 4.3.0 try again" } } },
            { .from = "a@src.example", .to = { "x@acme.example" }, .body = "2\r\n",
              .want = { { 250, "250 2.0.0 Ok: queued as M2" } } },
        },
        .nbodies = 1, .bodies = { "2\r\n" },
        .nready = 3, .ndone = 2,
    },
    {
        /* recipients with control characters are never put on the wire */
        .name = "bad_address",
        SCRIPT({ NULL, BANNER, A_NONE },
               { "EHLO", EHLO_PIPE, A_NONE },
               { "MAIL", "250 2.1.0 Ok\r\n", A_NONE },
               { "RCPT TO:<good@acme.example>", "250 2.1.5 Ok\r\n", A_NONE },
               { "DATA", "354 go\r\n", A_NONE },
               { "<DATA>", "250 2.0.0 Ok\r\n", A_NONE },
               { "QUIT", "221 2.0.0 Bye\r\n", A_NONE }),
        .msgs = { { .from = "a@src.example",
                    .to = { "x@acme.example>\r\nRSET", "good@acme.example" }, .body = "x\r\n",
                    .want = { { 501, BAD_RCPT },
                              { 250, "250 2.0.0 Ok" } } } },
        .nbodies = 1, .bodies = { "x\r\n" },
        .nready = 2, .ndone = 1,
    },
    {
        /* an address not in wire form (a quoted local part kept unquoted)
         * would end the path early and add parameters: refused, never put
         * on the wire */
        .name = "unquoted_address",
        SCRIPT({ NULL, BANNER, A_NONE },
               { "EHLO", EHLO_PIPE, A_NONE },
               { "MAIL FROM:<a@src.example>", "250 2.1.0 Ok\r\n", A_NONE },
               { "RCPT TO:<\"x y\"@acme.example>", "250 2.1.5 Ok\r\n", A_NONE },
               { "DATA", "354 go\r\n", A_NONE },
               { "<DATA>", "250 2.0.0 Ok\r\n", A_NONE },
               { "QUIT", "221 2.0.0 Bye\r\n", A_NONE }),
        .msgs = {
            { .from = "a@src.example",
              .to = { "a> NOTIFY=SUCCESS@acme.example", "\"x y\"@acme.example",
                      "x y@acme.example" },
              .body = "x\r\n",
              .want = { { 501, BAD_RCPT },
                        { 250, "250 2.0.0 Ok" },
                        { 501, BAD_RCPT } } },
            { .from = "x> RET=FULL@src.example", .to = { "bob@acme.example" }, .body = "x\r\n",
              .want = { { 501, BAD_SENDER } } },
        },
        .sent = { { 2, "RCPT TO:<\"x y\"@acme.example>", NULL } },
        .nbodies = 1, .bodies = { "x\r\n" },
        .nready = 3, .ndone = 2,
    },
};

/* ---- data: the message body on the wire ---------------------------------- */

/* A body of many evbuffer chains, several write blocks long, with dots at
 * chain starts, at block boundaries (64 KB) and everywhere else. */
static void free_piece(const void *data, size_t len, void *arg)
{
    free((void *)data);
}

static void body_many_chains(struct evbuffer *body)
{
    size_t total = 0;
    unsigned seed = 7;

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
        total += len;
        evbuffer_add_reference(body, piece, len, free_piece, NULL);
    }
}

/* p[0..n) dot-stuffed by the book: a '.' starting a line doubled. */
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

/* The server received message 0's body dot-stuffed, CR LF completed. */
static void check_stuffed(const struct run *r, const struct tmsg *m)
{
    size_t total = evbuffer_get_length(m[0].m.body), extra = 0, n;
    char *flat = malloc(total + 2);

    evbuffer_copyout(m[0].m.body, flat, total);
    if (flat[total - 1] == '\r')            /* what the client must add at the end */
        flat[total + extra++] = '\n';
    else if (flat[total - 1] != '\n')
        for (const char *e = "\r\n"; *e; e++)
            flat[total + extra++] = *e;
    char *want = stuff_ref(flat, total + extra, &n);
    assert_int_equal(r->f.bodylen[0], n);
    assert_memory_equal(r->f.bodies[0], want, n);
    free(want);
    free(flat);
}

#define ONE_MESSAGE(n) \
    { "MAIL", "250 2.1.0 Ok\r\n", A_NONE }, \
    { "RCPT", "250 2.1.5 Ok\r\n", A_NONE }, \
    { "DATA", "354 go\r\n", A_NONE }, \
    { "<DATA>", "250 2.0.0 Ok: " n "\r\n", A_NONE }

static const struct conv_case data[] = {
    {
        /* dots doubled at line starts; CR LF added after a last line without
         * one (and LF after a lone CR); an empty body is just the dot */
        .name = "dot_stuffing",
        SCRIPT({ NULL, BANNER, A_NONE },
               { "EHLO", EHLO_PIPE, A_NONE },
               ONE_MESSAGE("1"), ONE_MESSAGE("2"), ONE_MESSAGE("3"),
               { "QUIT", "221 2.0.0 Bye\r\n", A_NONE }),
        .msgs = {
            { .from = "a@src.example", .to = { "x@acme.example" },
              .body = ".hidden\r\n..two\r\nnormal\r\n.\r\n\r\n.\r\nend. .x\r\n.last, no CRLF",
              .want = { { 250, "250 2.0.0 Ok: 1" } } },
            { .from = "a@src.example", .to = { "x@acme.example" },     /* empty */
              .want = { { 250, "250 2.0.0 Ok: 2" } } },
            { .from = "a@src.example", .to = { "x@acme.example" }, .body = "ends in CR\r",
              .want = { { 250, "250 2.0.0 Ok: 3" } } },
        },
        .nbodies = 3,
        .bodies = { "..hidden\r\n...two\r\nnormal\r\n..\r\n\r\n..\r\nend. .x\r\n"
                    "..last, no CRLF\r\n",
                    "",
                    "ends in CR\r\n" },
        .nready = 4, .ndone = 3,
    },
    {
        .name = "big_body",
        SCRIPT({ NULL, BANNER, A_NONE },
               { "EHLO", EHLO_PIPE, A_NONE },
               ONE_MESSAGE("big"),
               { "QUIT", "221 2.0.0 Bye\r\n", A_NONE }),
        .msgs = { { .from = "a@src.example", .to = { "x@acme.example" },
                    .fill = body_many_chains, .want = { { 250, "250 2.0.0 Ok: big" } } } },
        .nbodies = 1, .bodies = { NULL }, .check = check_stuffed,
        .nready = 2, .ndone = 1,
    },
};

/* ---- attach: a connection already open (ODMR) ------------------------------ */

static const struct conv_case attach[] = {
    {
        /* from the greeting on, as if the client had connected itself */
        .name = "attached_delivers",
        .attach = 1,
        .also_dripped = 1,
        .expect_helo = "mx.acme.example",
        SCRIPT({ NULL, BANNER, A_NONE },
               { "EHLO kickmail.test", EHLO_PIPE, A_NONE },
               { "MAIL FROM:<alice@src.example> SIZE=", "250 2.1.0 Ok\r\n", A_NONE },
               { "RCPT TO:<bob@acme.example>", "250 2.1.5 Ok\r\n", A_NONE },
               { "DATA", "354 go\r\n", A_NONE },
               { "<DATA>", "250 2.0.0 Ok: queued as AAA\r\n", A_NONE },
               { "QUIT", "221 2.0.0 Bye\r\n", A_NONE }),
        .msgs = { { .from = "alice@src.example", .to = { "bob@acme.example" },
                    .body = "Subject: hi\r\n\r\n.hello\r\n",
                    .want = { { 250, "250 2.0.0 Ok: queued as AAA" } } } },
        .sent = { { 0, "EHLO kickmail.test", NULL },
                  { 1, "MAIL FROM:<alice@src.example> SIZE=23",
                    "RCPT TO:<bob@acme.example>\r\nDATA\r\n" } },
        .nbodies = 1, .bodies = { "Subject: hi\r\n\r\n..hello\r\n" },
        .nready = 2, .ndone = 1,
    },
    {
        .name = "attached_banner_refused",
        .attach = 1,
        SCRIPT({ NULL, "554 5.7.1 go away\r\n", A_NONE },
               { "QUIT", "221 Bye\r\n", A_NONE }),
        .closed = { 554, "host 127.0.0.1[127.0.0.1] refused to talk to me: 554 5.7.1 go away" },
    },
};

int main(void)
{
    int failed = 0;

    conv_main_init("test_smtp_client");
    failed += CONV_GROUP(greeting, NULL, NULL);
    failed += CONV_GROUP(ehlo, NULL, NULL);
    failed += CONV_GROUP(mail_rcpt, NULL, NULL);
    failed += CONV_GROUP(data, NULL, NULL);
    failed += CONV_GROUP(attach, NULL, NULL);
    return failed;
}

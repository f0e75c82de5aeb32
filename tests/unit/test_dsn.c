/*
 * test_dsn — unit tests of DSN composition (dsn.h): the top-level headers,
 * the multipart/report structure and its boundary lines, the per-message and
 * per-recipient delivery-status fields, headers-only versus full return,
 * CRLF everywhere (also from an original with bare LF or CR), peer text that
 * tries to start header lines, addresses with quoted local parts written
 * exactly, an over-long reply, a malformed status, the
 * delayed variant, and a boundary that would collide with the original.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "core/log.h"
#include "queue/dsn.h"

#define NOW     1700000000      /* Tue, 14 Nov 2023 22:13:20 +0000 */
#define ARRIVAL 1699990000      /* Tue, 14 Nov 2023 19:26:40 +0000 */

static const char orig_headers[] =
    "Received: from client.example by mx.isp.example\r\n"
    "From: Alice <alice@sender.example>\r\n"
    "To: bob@acme.example, carol@acme.example\r\n"
    "Subject: hello\r\n";
static const char orig_body[] = "first body line\r\nsecond body line\r\n";

static const struct dsn_rcpt two_rcpts[] = {
    {"bob@acme.example", "5.1.1", "550 5.1.1 <bob@acme.example>: no such user",
     "127.0.0.23"},
    {"carol@acme.example", "5.7.1", NULL, NULL},
};

/* A composed DSN, NUL-terminated, with its parts located. */
struct dsn_doc {
    char *text;
    size_t len;
    char boundary[128];
    char *headers;              /* top-level headers, NUL-terminated copy */
    char *part[4];              /* each part (its headers and content), copies */
    size_t nparts;
};

static void info_init(struct dsn_info *info, int full)
{
    memset(info, 0, sizeof *info);
    info->reporting_mta = "mx.isp.example";
    info->from = "MAILER-DAEMON@mx.isp.example";
    info->to = "alice@sender.example";
    info->queue_id = "3F2A1B9C00";
    info->arrival = ARRIVAL;
    info->now = NOW;
    info->action = DSN_FAILED;
    info->full = full;
    info->nrcpt = 2;
    info->rcpts = two_rcpts;
}

static struct evbuffer *orig_new(const char *headers, const char *body)
{
    struct evbuffer *b = evbuffer_new();
    evbuffer_add_printf(b, "%s", headers);
    if (body)
        evbuffer_add_printf(b, "\r\n%s", body);
    return b;
}

static char *dupn(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    assert_non_null(d);
    if (n)
        memcpy(d, s, n);
    d[n] = 0;
    return d;
}

/* Composes and takes it apart by the boundary; checks the framing. */
static void doc_compose(struct dsn_doc *d, const struct dsn_info *info,
                        struct evbuffer *orig)
{
    struct evbuffer *out = evbuffer_new();
    char delim[160], close[160], *p, *end, *b;
    size_t olen = orig ? evbuffer_get_length(orig) : 0;
    char *obefore = orig ? dupn((char *)evbuffer_pullup(orig, -1), olen) : NULL;

    memset(d, 0, sizeof *d);
    assert_int_equal(dsn_compose(out, info, orig), 0);
    if (orig) {                                 /* the original is not changed */
        assert_int_equal(evbuffer_get_length(orig), olen);
        assert_memory_equal(evbuffer_pullup(orig, -1), obefore, olen);
        free(obefore);
    }
    d->len = evbuffer_get_length(out);
    d->text = dupn((char *)evbuffer_pullup(out, -1), d->len);
    evbuffer_free(out);
    assert_int_equal(strlen(d->text), d->len);  /* no NUL */

    assert_non_null(end = strstr(d->text, "\r\n\r\n"));
    d->headers = dupn(d->text, (size_t)(end - d->text) + 2);
    assert_non_null(b = strstr(d->headers, "boundary=\""));
    b += 10;
    assert_non_null(p = strchr(b, '"'));
    assert_true(p - b > 0 && p - b <= 70);
    memcpy(d->boundary, b, (size_t)(p - b));

    /* Preamble, then "--B" CRLF per part, each after a CRLF; "--B--" CRLF last. */
    snprintf(delim, sizeof delim, "\r\n--%s\r\n", d->boundary);
    snprintf(close, sizeof close, "\r\n--%s--\r\n", d->boundary);
    assert_true(d->len > strlen(close));
    assert_string_equal(d->text + d->len - strlen(close), close);
    p = strstr(end + 2, delim);
    assert_non_null(p);
    while (p) {
        char *start = p + strlen(delim), *next = strstr(start, delim);
        end = next ? next : d->text + d->len - strlen(close);
        assert_true(d->nparts < 4);
        d->part[d->nparts++] = dupn(start, (size_t)(end - start));
        p = next;
    }
}

static void doc_free(struct dsn_doc *d)
{
    free(d->text);
    free(d->headers);
    for (size_t i = 0; i < d->nparts; i++)
        free(d->part[i]);
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* Every LF after a CR, every CR before an LF; no line over 998 bytes. */
static void assert_crlf(const char *s, size_t len)
{
    size_t line = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\n')
            assert_true(i > 0 && s[i - 1] == '\r');
        if (s[i] == '\r')
            assert_true(i + 1 < len && s[i + 1] == '\n');
        line = s[i] == '\n' ? 0 : line + 1;
        assert_true(line <= 999);
    }
}

/* No line of s starts with field (a header injected). */
static void assert_no_line(const char *s, const char *field)
{
    if (strncmp(s, field, strlen(field)) == 0)
        fail_msg("a line starts with %s", field);
    for (const char *p = s; (p = strstr(p, "\r\n")) != NULL; p += 2)
        if (strncmp(p + 2, field, strlen(field)) == 0)
            fail_msg("a line starts with %s", field);
}

/* The content of a part: after its header block. */
static const char *part_body(const char *part)
{
    const char *p = strstr(part, "\r\n\r\n");
    assert_non_null(p);
    return p + 4;
}

/* ---- tests ---- */

static void test_failed_headers_only(void **state)
{
    struct dsn_info info;
    struct dsn_doc d;
    struct evbuffer *orig = orig_new(orig_headers, orig_body);
    char want[1024];

    info_init(&info, 0);
    doc_compose(&d, &info, orig);
    assert_crlf(d.text, d.len);

    assert_non_null(strstr(d.headers, "From: Mail Delivery System "
                                      "<MAILER-DAEMON@mx.isp.example>\r\n"));
    assert_non_null(strstr(d.headers, "\r\nTo: <alice@sender.example>\r\n"));
    assert_non_null(strstr(d.headers, "\r\nSubject: Undelivered Mail Returned to Sender\r\n"));
    assert_non_null(strstr(d.headers, "\r\nDate: Tue, 14 Nov 2023 22:13:20 +0000\r\n"));
    assert_non_null(strstr(d.headers,
                           "\r\nMessage-ID: <3F2A1B9C00.1700000000@mx.isp.example>\r\n"));
    assert_non_null(strstr(d.headers, "\r\nAuto-Submitted: auto-replied\r\n"));
    assert_non_null(strstr(d.headers, "\r\nMIME-Version: 1.0\r\n"));
    assert_non_null(strstr(d.headers, "\r\nContent-Type: multipart/report; "
                                      "report-type=delivery-status;\r\n\tboundary=\""));
    assert_null(strstr(d.headers, "Content-Transfer-Encoding"));
    assert_string_equal(d.boundary, "=_kickmail_3F2A1B9C00_1700000000");

    /* Boundary lines: opening, two between parts, closing. */
    assert_int_equal(d.nparts, 3);
    assert_int_equal(count(d.text, "--=_kickmail_3F2A1B9C00_1700000000\r\n"), 3);
    assert_int_equal(count(d.text, "--=_kickmail_3F2A1B9C00_1700000000--\r\n"), 1);
    assert_int_equal(count(d.text, "=_kickmail_3F2A1B9C00_1700000000"), 5);

    /* 1: the explanation, one line per recipient. */
    assert_non_null(strstr(d.part[0], "Content-Type: text/plain; charset=utf-8\r\n\r\n"));
    assert_non_null(strstr(part_body(d.part[0]),
                           "\r\n<bob@acme.example>: host 127.0.0.23 said: "
                           "550 5.1.1 <bob@acme.example>: no such user\r\n"));
    assert_non_null(strstr(part_body(d.part[0]),
                           "\r\n<carol@acme.example>: status 5.7.1\r\n"));

    /* 2: the report, field by field. */
    assert_non_null(strstr(d.part[1], "Content-Type: message/delivery-status\r\n\r\n"));
    snprintf(want, sizeof want,
             "Reporting-MTA: dns; mx.isp.example\r\n"
             "X-Kickmail-Queue-ID: 3F2A1B9C00\r\n"
             "Arrival-Date: Tue, 14 Nov 2023 19:26:40 +0000\r\n"
             "\r\n"
             "Final-Recipient: rfc822; bob@acme.example\r\n"
             "Action: failed\r\n"
             "Status: 5.1.1\r\n"
             "Remote-MTA: dns; 127.0.0.23\r\n"
             "Diagnostic-Code: smtp; 550 5.1.1 <bob@acme.example>: no such user\r\n"
             "\r\n"
             "Final-Recipient: rfc822; carol@acme.example\r\n"
             "Action: failed\r\n"
             "Status: 5.7.1\r\n");
    assert_string_equal(part_body(d.part[1]), want);

    /* 3: the original's headers, nothing of its body. */
    assert_non_null(strstr(d.part[2], "Content-Type: text/rfc822-headers\r\n\r\n"));
    assert_string_equal(part_body(d.part[2]), orig_headers);
    assert_null(strstr(d.text, "body line"));
    doc_free(&d);
    evbuffer_free(orig);
}

static void test_failed_full(void **state)
{
    struct dsn_info info;
    struct dsn_doc d;
    struct evbuffer *orig = orig_new(orig_headers, orig_body);
    char want[1024];

    info_init(&info, 1);
    doc_compose(&d, &info, orig);
    assert_crlf(d.text, d.len);
    assert_int_equal(d.nparts, 3);
    assert_non_null(strstr(d.part[2], "Content-Type: message/rfc822\r\n\r\n"));
    snprintf(want, sizeof want, "%s\r\n%s", orig_headers, orig_body);
    assert_string_equal(part_body(d.part[2]), want);
    doc_free(&d);
    evbuffer_free(orig);
}

/* Bare LF and CR in the original become CRLF; headers-only stops at the
 * first empty line whatever its line end; a missing final line end is added. */
static void test_bare_line_ends(void **state)
{
    static const struct {
        const char *orig;
        int full;
        const char *want;
    } cases[] = {
        {"A: 1\nB: 2\n\nbody\n", 0, "A: 1\r\nB: 2\r\n"},
        {"A: 1\nB: 2\n\nbody\n", 1, "A: 1\r\nB: 2\r\n\r\nbody\r\n"},
        {"A: 1\rB: 2\r\rbody", 0, "A: 1\r\nB: 2\r\n"},
        {"A: 1\rB: 2\r\rbody", 1, "A: 1\r\nB: 2\r\n\r\nbody\r\n"},
        {"A: 1\r\nB: 2\n\r\nbody\r\r\n", 1, "A: 1\r\nB: 2\r\n\r\nbody\r\n\r\n"},
        {"A: 1\r\nB: 2\r\n", 0, "A: 1\r\nB: 2\r\n"},
        {"A: 1", 0, "A: 1\r\n"},
        {"\r\nbody only\r\n", 0, ""},
        {"", 1, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct dsn_info info;
        struct dsn_doc d;
        struct evbuffer *orig = evbuffer_new();
        /* In 1-byte chains, so that CRLF pairs straddle chunks. */
        for (const char *p = cases[i].orig; *p; p++)
            evbuffer_add_reference(orig, p, 1, NULL, NULL);
        info_init(&info, cases[i].full);
        doc_compose(&d, &info, orig);
        assert_crlf(d.text, d.len);
        assert_string_equal(part_body(d.part[2]), cases[i].want);
        doc_free(&d);
        evbuffer_free(orig);
    }
}

static void test_injection(void **state)
{
    static const struct dsn_rcpt evil[] = {
        {"bob@acme.example\r\nBcc: evil1@x", "5.1.1", "550 x\r\nBcc: evil@x",
         "mx\r\nBcc: evil2@x"},
        {"carol@acme.example", "5.0.0\r\nBcc: evil3@x", "550 y\nX-Evil: 1\r\n\r\n", NULL},
    };
    struct dsn_info info;
    struct dsn_doc d;
    struct evbuffer *orig = orig_new(orig_headers, orig_body);

    info_init(&info, 0);
    info.rcpts = evil;
    info.to = "alice@sender.example\r\nBcc: evil4@x";
    info.reporting_mta = "mx.isp.example\nBcc: evil5@x";
    doc_compose(&d, &info, orig);
    assert_crlf(d.text, d.len);
    assert_no_line(d.text, "Bcc:");
    assert_no_line(d.text, "X-Evil:");
    assert_non_null(strstr(d.text, "\r\nDiagnostic-Code: smtp; 550 x Bcc: evil@x\r\n"));
    assert_non_null(strstr(d.text, "\r\nDiagnostic-Code: smtp; 550 y X-Evil: 1\r\n"));
    assert_non_null(strstr(d.text,
                           "\r\nFinal-Recipient: rfc822; bob@acme.example Bcc: evil1@x\r\n"));
    assert_non_null(strstr(d.text, "\r\nRemote-MTA: dns; mx Bcc: evil2@x\r\n"));
    assert_non_null(strstr(d.text, "\r\nStatus: 5.0.0\r\n"));   /* malformed: generic */
    assert_non_null(strstr(d.headers, "\r\nTo: <alice@sender.example Bcc: evil4@x>\r\n"));
    doc_free(&d);
    evbuffer_free(orig);
}

/* Addresses in wire form are written exactly: a quoted local part keeps
 * its quotes, escapes and runs of spaces in To:, Final-Recipient and the
 * text (they are printable ASCII; control characters are cleaned above). */
static void test_quoted_addresses(void **state)
{
    static const struct dsn_rcpt quoted[] = {
        {"\"a> NOTIFY=SUCCESS\"@acme.example", "5.1.1", NULL, NULL},
        {"\"two  spaces \\\" \\\\\"@acme.example", "5.1.1", NULL, NULL},
    };
    struct dsn_info info;
    struct dsn_doc d;
    struct evbuffer *orig = orig_new(orig_headers, orig_body);

    info_init(&info, 0);
    info.rcpts = quoted;
    info.to = "\"x  y\"@sender.example";
    doc_compose(&d, &info, orig);
    assert_crlf(d.text, d.len);
    assert_non_null(strstr(d.headers, "\r\nTo: <\"x  y\"@sender.example>\r\n"));
    assert_non_null(strstr(d.text,
                           "\r\nFinal-Recipient: rfc822; \"a> NOTIFY=SUCCESS\"@acme.example\r\n"));
    assert_non_null(strstr(d.text,
                           "\r\nFinal-Recipient: rfc822; \"two  spaces \\\" \\\\\"@acme.example\r\n"));
    assert_non_null(strstr(part_body(d.part[0]), "\r\n<\"a> NOTIFY=SUCCESS\"@acme.example>: "));
    assert_non_null(strstr(part_body(d.part[0]),
                           "\r\n<\"two  spaces \\\" \\\\\"@acme.example>: "));
    doc_free(&d);
    evbuffer_free(orig);
}

static void test_long_diag(void **state)
{
    char diag[6000];
    struct dsn_rcpt r = {"bob@acme.example", "5.1.1", diag, "127.0.0.23"};
    struct dsn_info info;
    struct dsn_doc d;
    memset(diag, 'x', sizeof diag - 1);
    diag[sizeof diag - 1] = 0;
    memcpy(diag, "550 ", 4);
    info_init(&info, 0);
    info.nrcpt = 1;
    info.rcpts = &r;
    doc_compose(&d, &info, NULL);
    assert_crlf(d.text, d.len);                 /* and no line over 998 */
    assert_non_null(strstr(d.text, "xxx...\r\n"));
    assert_int_equal(d.nparts, 2);              /* no original given: two parts */
    doc_free(&d);
}

static void test_delayed(void **state)
{
    static const struct dsn_rcpt r[] = {{"bob@acme.example", "garbage", NULL, NULL}};
    struct dsn_info info;
    struct dsn_doc d;
    struct evbuffer *orig = orig_new(orig_headers, orig_body);
    info_init(&info, 0);
    info.action = DSN_DELAYED;
    info.nrcpt = 1;
    info.rcpts = r;
    doc_compose(&d, &info, orig);
    assert_crlf(d.text, d.len);
    assert_non_null(strstr(d.headers, "\r\nSubject: Delayed Mail (still being retried)\r\n"));
    assert_non_null(strstr(d.part[1], "\r\nAction: delayed\r\nStatus: 4.0.0\r\n"));
    assert_null(strstr(d.text, "Action: failed"));
    assert_non_null(strstr(d.part[0], "still being retried"));
    doc_free(&d);
    evbuffer_free(orig);
}

static void test_8bit(void **state)
{
    struct dsn_info info;
    struct dsn_doc d;
    struct evbuffer *orig = orig_new("Subject: caf\xc3\xa9\r\n", "ol\xc3\xa9\r\n");
    info_init(&info, 1);
    doc_compose(&d, &info, orig);
    assert_non_null(strstr(d.headers, "\r\nContent-Transfer-Encoding: 8bit\r\n"));
    assert_non_null(strstr(d.part[2], "Content-Type: message/rfc822\r\n"
                                      "Content-Transfer-Encoding: 8bit\r\n\r\n"));
    doc_free(&d);
    evbuffer_free(orig);
}

/* The original (or a peer's reply) holds the first candidate boundary: a
 * different one is chosen, found nowhere in the parts. */
static void test_boundary_collision(void **state)
{
    struct dsn_info info;
    struct dsn_doc d1, d2, d3;
    struct evbuffer *clean = orig_new(orig_headers, orig_body), *evil = evbuffer_new();
    struct dsn_rcpt r = {"bob@acme.example", "5.1.1", NULL, NULL};
    char diag[200];

    info_init(&info, 1);
    doc_compose(&d1, &info, clean);
    evbuffer_add_printf(evil, "%s\r\nbody\r\n--%s\r\nContent-Type: text/html\r\n\r\n"
                        "<b>forged part</b>\r\n--%s--\r\n",
                        orig_headers, d1.boundary, d1.boundary);
    doc_compose(&d2, &info, evil);
    assert_string_not_equal(d2.boundary, d1.boundary);
    assert_non_null(strstr(d2.boundary, "=_kickmail_3F2A1B9C00_1700000000_"));
    assert_int_equal(d2.nparts, 3);
    assert_int_equal(count(d2.text, d2.boundary), 5);
    assert_non_null(strstr(part_body(d2.part[2]), "forged part"));

    /* Through the diagnostic too (reported in parts 1 and 2). */
    snprintf(diag, sizeof diag, "550 --%s--", d1.boundary);
    r.diag = diag;
    info.nrcpt = 1;
    info.rcpts = &r;
    doc_compose(&d3, &info, clean);
    assert_string_not_equal(d3.boundary, d1.boundary);
    assert_int_equal(count(d3.text, d3.boundary), 5);
    assert_int_equal(d3.nparts, 3);
    doc_free(&d1);
    doc_free(&d2);
    doc_free(&d3);
    evbuffer_free(clean);
    evbuffer_free(evil);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_failed_headers_only),
        cmocka_unit_test(test_failed_full),
        cmocka_unit_test(test_bare_line_ends),
        cmocka_unit_test(test_injection),
        cmocka_unit_test(test_quoted_addresses),
        cmocka_unit_test(test_long_diag),
        cmocka_unit_test(test_delayed),
        cmocka_unit_test(test_8bit),
        cmocka_unit_test(test_boundary_collision),
    };
    log_init("test_dsn", getenv("TEST_VERBOSE") != NULL);
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_smtp_reply — table-driven tests of the SMTP client's reply parser
 * (smtp_reply_init / smtp_reply_feed): single and multi-line replies, EHLO
 * keywords, and the malformed input a hostile server can send (no code,
 * junk after the code, codes out of range, mixed codes, over-long lines,
 * too many lines, truncated replies, NUL and 8-bit bytes).  Each case is a
 * list of lines fed one by one; the status of every line is checked, and
 * for complete replies the code, text, first word and EHLO flags.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mta/smtp_reply.h"

#define N_(a) (sizeof(a) / sizeof((a)[0]))
#define S(lit) lit, (sizeof(lit) - 1)

enum { X_PIPE = 1, X_SIZE = 2, X_8BIT = 4, X_TLS = 8, X_ENH = 16 };

static const struct reply_case {
    const char *lines[6];       /* up to the first NULL; NUL bytes: see test_bytes */
    int ehlo;
    enum smtp_reply_status last;    /* status of the last line; earlier ones MORE */
    int code;
    const char *text;
    const char *first_word;
    int ext;
    uint64_t size;
    int nlines;
} cases[] = {
    /* single lines */
    { { "250 ok" }, 0, SMTP_REPLY_DONE, 250, "250 ok", "ok", 0, 0, 1 },
    { { "220 mx.acme.example ESMTP Postfix" }, 0, SMTP_REPLY_DONE, 220,
      "220 mx.acme.example ESMTP Postfix", "mx.acme.example", 0, 0, 1 },
    { { "250" }, 0, SMTP_REPLY_DONE, 250, "250", "", 0, 0, 1 },
    { { "250 " }, 0, SMTP_REPLY_DONE, 250, "250", "", 0, 0, 1 },
    { { "354 End data with <CR><LF>.<CR><LF>" }, 0, SMTP_REPLY_DONE, 354,
      "354 End data with <CR><LF>.<CR><LF>", "End", 0, 0, 1 },
    { { "550 5.1.1 <bob@acme.example>: unknown" }, 0, SMTP_REPLY_DONE, 550,
      "550 5.1.1 <bob@acme.example>: unknown", "5.1.1", 0, 0, 1 },
    { { "200 x" }, 0, SMTP_REPLY_DONE, 200, "200 x", "x", 0, 0, 1 },
    { { "599 x" }, 0, SMTP_REPLY_DONE, 599, "599 x", "x", 0, 0, 1 },
    { { "220   spaced.example  hi" }, 0, SMTP_REPLY_DONE, 220,
      "220   spaced.example  hi", "spaced.example", 0, 0, 1 },
    { { "421 4.3.2 shutting down" }, 0, SMTP_REPLY_DONE, 421,
      "421 4.3.2 shutting down", "4.3.2", 0, 0, 1 },
    { { "250 a\tb" }, 0, SMTP_REPLY_DONE, 250, "250 a?b", "a?b", 0, 0, 1 },
    /* multi-line */
    { { "250-first", "250-second", "250 third" }, 0, SMTP_REPLY_DONE, 250,
      "250 first; second; third", "first", 0, 0, 3 },
    { { "550-5.1.1 no such user", "550 5.1.1 see http://x.example/" }, 0, SMTP_REPLY_DONE,
      550, "550 5.1.1 no such user; 5.1.1 see http://x.example/", "5.1.1", 0, 0, 2 },
    { { "250-a", "250" }, 0, SMTP_REPLY_DONE, 250, "250 a", "a", 0, 0, 2 },
    { { "250-a", "250-", "250 b" }, 0, SMTP_REPLY_DONE, 250, "250 a; b", "a", 0, 0, 3 },
    { { "220-mx.example first", "220 mx.example second" }, 0, SMTP_REPLY_DONE, 220,
      "220 mx.example first; mx.example second", "mx.example", 0, 0, 2 },
    /* EHLO */
    { { "250-mx.acme.example Hello", "250-PIPELINING", "250-SIZE 10240000",
        "250-STARTTLS", "250-ENHANCEDSTATUSCODES", "250 8BITMIME" }, 1, SMTP_REPLY_DONE,
      250, "250 mx.acme.example Hello; PIPELINING; SIZE 10240000; STARTTLS; "
      "ENHANCEDSTATUSCODES; 8BITMIME", "mx.acme.example",
      X_PIPE | X_SIZE | X_8BIT | X_TLS | X_ENH, 10240000, 6 },
    { { "250-mx", "250-pipelining", "250-size", "250 8bitmime" }, 1, SMTP_REPLY_DONE, 250,
      "250 mx; pipelining; size; 8bitmime", "mx", X_PIPE | X_SIZE | X_8BIT, 0, 4 },
    { { "250-mx", "250-SIZE 0", "250 StartTLS" }, 1, SMTP_REPLY_DONE, 250,
      "250 mx; SIZE 0; StartTLS", "mx", X_SIZE | X_TLS, 0, 3 },
    { { "250-mx", "250 SIZE 18446744073709551615" }, 1, SMTP_REPLY_DONE, 250,
      "250 mx; SIZE 18446744073709551615", "mx", X_SIZE, UINT64_MAX, 2 },
    { { "250-mx", "250 SIZE 18446744073709551616" }, 1, SMTP_REPLY_DONE, 250,
      "250 mx; SIZE 18446744073709551616", "mx", X_SIZE, 0, 2 },
    { { "250-mx", "250 SIZE 12abc" }, 1, SMTP_REPLY_DONE, 250, "250 mx; SIZE 12abc", "mx",
      X_SIZE, 0, 2 },
    { { "250-mx", "250 SIZE   4096 extra" }, 1, SMTP_REPLY_DONE, 250,
      "250 mx; SIZE   4096 extra", "mx", X_SIZE, 4096, 2 },
    /* look-alike keywords are not keywords */
    { { "250-mx", "250-PIPELININGX", "250-XSIZE 5", "250-STARTTLSNOW", "250 8BITMIMEX" },
      1, SMTP_REPLY_DONE, 250, "250 mx; PIPELININGX; XSIZE 5; STARTTLSNOW; 8BITMIMEX", "mx",
      0, 0, 5 },
    /* the first line is the greeting, never a keyword */
    { { "250 PIPELINING" }, 1, SMTP_REPLY_DONE, 250, "250 PIPELINING", "PIPELINING", 0, 0, 1 },
    /* keywords only count in an EHLO reply, and only with 250 */
    { { "250-mx", "250 PIPELINING" }, 0, SMTP_REPLY_DONE, 250, "250 mx; PIPELINING", "mx",
      0, 0, 2 },
    { { "550-mx", "550 PIPELINING" }, 1, SMTP_REPLY_DONE, 550, "550 mx; PIPELINING", "mx",
      0, 0, 2 },
    /* malformed */
    { { "" }, 0, SMTP_REPLY_BAD, 0, NULL, NULL, 0, 0, 0 },
    { { "25" }, 0, SMTP_REPLY_BAD, 0, NULL, NULL, 0, 0, 0 },
    { { "ok" }, 0, SMTP_REPLY_BAD, 0, NULL, NULL, 0, 0, 0 },
    { { "hello world" }, 0, SMTP_REPLY_BAD, 0, NULL, NULL, 0, 0, 0 },
    { { " 250 ok" }, 0, SMTP_REPLY_BAD, 0, NULL, NULL, 0, 0, 0 },
    { { "2500 ok" }, 0, SMTP_REPLY_BAD, 0, NULL, NULL, 0, 0, 0 },
    { { "250ok" }, 0, SMTP_REPLY_BAD, 0, NULL, NULL, 0, 0, 0 },
    { { "250\tok" }, 0, SMTP_REPLY_BAD, 0, NULL, NULL, 0, 0, 0 },
    { { "250_ok" }, 0, SMTP_REPLY_BAD, 0, NULL, NULL, 0, 0, 0 },
    { { "2x0 ok" }, 0, SMTP_REPLY_BAD, 0, NULL, NULL, 0, 0, 0 },
    { { "-250 ok" }, 0, SMTP_REPLY_BAD, 0, NULL, NULL, 0, 0, 0 },
    { { "+25 ok" }, 0, SMTP_REPLY_BAD, 0, NULL, NULL, 0, 0, 0 },
    { { "199 too low" }, 0, SMTP_REPLY_BAD, 0, NULL, NULL, 0, 0, 0 },
    { { "100 continue" }, 0, SMTP_REPLY_BAD, 0, NULL, NULL, 0, 0, 0 },
    { { "000 zero" }, 0, SMTP_REPLY_BAD, 0, NULL, NULL, 0, 0, 0 },
    { { "600 too high" }, 0, SMTP_REPLY_BAD, 0, NULL, NULL, 0, 0, 0 },
    { { "999 too high" }, 0, SMTP_REPLY_BAD, 0, NULL, NULL, 0, 0, 0 },
    { { "250-a", "251 b" }, 0, SMTP_REPLY_BAD, 0, NULL, NULL, 0, 0, 0 },
    { { "250-a", "550 b" }, 0, SMTP_REPLY_BAD, 0, NULL, NULL, 0, 0, 0 },
    { { "250-a", "250-b", "550-c" }, 0, SMTP_REPLY_BAD, 0, NULL, NULL, 0, 0, 0 },
    { { "250-a", "junk" }, 0, SMTP_REPLY_BAD, 0, NULL, NULL, 0, 0, 0 },
    { { "250-a", "" }, 0, SMTP_REPLY_BAD, 0, NULL, NULL, 0, 0, 0 },
    { { "250-mx", "250-PIPELINING", "25" }, 1, SMTP_REPLY_BAD, 0, NULL, NULL, 0, 0, 0 },
    /* truncated: the reply never ends (the caller's timeout/EOF handles it) */
    { { "250-a" }, 0, SMTP_REPLY_MORE, 0, NULL, NULL, 0, 0, 0 },
    { { "250-mx", "250-PIPELINING" }, 1, SMTP_REPLY_MORE, 0, NULL, NULL, 0, 0, 0 },
};

static void check_case(size_t ci, const struct reply_case *tc)
{
    struct smtp_reply_parser p;
    size_t n = 0;
    enum smtp_reply_status st = SMTP_REPLY_MORE;

    smtp_reply_init(&p);
    while (n < N_(tc->lines) && tc->lines[n])
        n++;
    for (size_t i = 0; i < n; i++) {
        st = smtp_reply_feed(&p, tc->lines[i], strlen(tc->lines[i]), tc->ehlo);
        if (i + 1 < n && st != SMTP_REPLY_MORE)
            fail_msg("case %zu line %zu \"%s\": status %d, expected MORE", ci, i,
                     tc->lines[i], st);
    }
    if (st != tc->last)
        fail_msg("case %zu \"%s\": status %d, expected %d", ci, tc->lines[0], st, tc->last);
    if (st != SMTP_REPLY_DONE)
        return;
    if (p.r.code != tc->code || strcmp(p.r.text, tc->text) != 0 ||
        strcmp(p.r.first_word, tc->first_word) != 0 || p.r.nlines != tc->nlines)
        fail_msg("case %zu: code=%d text=\"%s\" first_word=\"%s\" nlines=%d", ci, p.r.code,
                 p.r.text, p.r.first_word, p.r.nlines);
    int ext = (p.ext_pipelining ? X_PIPE : 0) | (p.ext_size ? X_SIZE : 0) |
              (p.ext_8bitmime ? X_8BIT : 0) | (p.ext_starttls ? X_TLS : 0) |
              (p.ext_enhanced ? X_ENH : 0);
    if (ext != tc->ext || p.size_limit != tc->size)
        fail_msg("case %zu: ext=%#x size=%llu", ci, ext, (unsigned long long)p.size_limit);
}

static void test_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_(cases); i++)
        check_case(i, &cases[i]);
}

/* After BAD the parser stays BAD; after DONE a new reply starts cleanly. */
static void test_sequence(void **state)
{
    struct smtp_reply_parser p;
    (void)state;

    smtp_reply_init(&p);
    assert_int_equal(smtp_reply_feed(&p, "250-mx", 6, 1), SMTP_REPLY_MORE);
    assert_int_equal(smtp_reply_feed(&p, "250 PIPELINING", 14, 1), SMTP_REPLY_DONE);
    assert_int_equal(p.ext_pipelining, 1);
    /* a second EHLO reply (after STARTTLS) replaces the keywords */
    assert_int_equal(smtp_reply_feed(&p, "250-mx", 6, 1), SMTP_REPLY_MORE);
    assert_int_equal(smtp_reply_feed(&p, "250 SIZE 10", 11, 1), SMTP_REPLY_DONE);
    assert_int_equal(p.ext_pipelining, 0);
    assert_int_equal(p.ext_size, 1);
    assert_int_equal(p.size_limit, 10);
    assert_int_equal(p.r.nlines, 2);
    /* a non-EHLO reply next leaves them alone and starts fresh */
    assert_int_equal(smtp_reply_feed(&p, "354 go", 6, 0), SMTP_REPLY_DONE);
    assert_int_equal(p.r.code, 354);
    assert_string_equal(p.r.text, "354 go");
    assert_int_equal(p.r.nlines, 1);
    assert_int_equal(p.size_limit, 10);
    /* BAD is sticky */
    assert_int_equal(smtp_reply_feed(&p, "xyz", 3, 0), SMTP_REPLY_BAD);
    assert_int_equal(smtp_reply_feed(&p, "250 ok", 6, 0), SMTP_REPLY_BAD);
    smtp_reply_init(&p);
    assert_int_equal(smtp_reply_feed(&p, "250 ok", 6, 0), SMTP_REPLY_DONE);
    /* NULL line */
    assert_int_equal(smtp_reply_feed(&p, NULL, 0, 0), SMTP_REPLY_BAD);
}

/* Line length: SMTP_REPLY_LINE_MAX is accepted, one more byte is not; the
 * text is truncated to its buffer and stays NUL-terminated. */
static void test_long_lines(void **state)
{
    struct smtp_reply_parser p;
    char *line = malloc(SMTP_REPLY_LINE_MAX + 2);
    (void)state;

    assert_non_null(line);
    memcpy(line, "250-", 4);
    memset(line + 4, 'a', SMTP_REPLY_LINE_MAX - 4);
    line[SMTP_REPLY_LINE_MAX] = 'b';
    line[SMTP_REPLY_LINE_MAX + 1] = 0;

    smtp_reply_init(&p);
    assert_int_equal(smtp_reply_feed(&p, line, SMTP_REPLY_LINE_MAX + 1, 0), SMTP_REPLY_BAD);

    smtp_reply_init(&p);
    line[3] = ' ';
    assert_int_equal(smtp_reply_feed(&p, line, SMTP_REPLY_LINE_MAX, 0), SMTP_REPLY_DONE);
    assert_int_equal(strlen(p.r.text), SMTP_REPLY_LINE_MAX);
    /* the first word is cut at 252 bytes and marked */
    assert_int_equal(strlen(p.r.first_word), sizeof p.r.first_word - 1);
    assert_memory_equal(p.r.first_word + sizeof p.r.first_word - 4, "...", 3);

    /* many long lines: the joined text is cut at its buffer */
    smtp_reply_init(&p);
    line[3] = '-';
    for (int i = 0; i < 10; i++)
        assert_int_equal(smtp_reply_feed(&p, line, SMTP_REPLY_LINE_MAX, 0), SMTP_REPLY_MORE);
    line[3] = ' ';
    assert_int_equal(smtp_reply_feed(&p, line, SMTP_REPLY_LINE_MAX, 0), SMTP_REPLY_DONE);
    assert_int_equal(strlen(p.r.text), sizeof p.r.text - 1);
    assert_int_equal(p.r.nlines, 11);

    /* a first word of exactly 255 bytes is kept whole */
    smtp_reply_init(&p);
    memset(line + 4, 'w', 255);
    line[259] = ' ';
    line[260] = 'x';
    assert_int_equal(smtp_reply_feed(&p, line, 261, 0), SMTP_REPLY_DONE);
    assert_int_equal(strlen(p.r.first_word), 255);
    assert_int_equal(p.r.first_word[254], 'w');
    free(line);
}

/* At most SMTP_REPLY_LINES_MAX lines per reply. */
static void test_too_many_lines(void **state)
{
    struct smtp_reply_parser p;
    (void)state;

    smtp_reply_init(&p);
    for (int i = 0; i < SMTP_REPLY_LINES_MAX - 1; i++)
        assert_int_equal(smtp_reply_feed(&p, "250-x", 5, 1), SMTP_REPLY_MORE);
    assert_int_equal(smtp_reply_feed(&p, "250 y", 5, 1), SMTP_REPLY_DONE);
    assert_int_equal(p.r.nlines, SMTP_REPLY_LINES_MAX);

    smtp_reply_init(&p);
    for (int i = 0; i < SMTP_REPLY_LINES_MAX; i++)
        assert_int_equal(smtp_reply_feed(&p, "250-x", 5, 1), SMTP_REPLY_MORE);
    assert_int_equal(smtp_reply_feed(&p, "250-x", 5, 1), SMTP_REPLY_BAD);
    assert_int_equal(smtp_reply_feed(&p, "250 x", 5, 1), SMTP_REPLY_BAD);
}

/* NUL, control and 8-bit bytes: never in the code, replaced in the text,
 * never read past len. */
static void test_bytes(void **state)
{
    struct smtp_reply_parser p;
    (void)state;

    smtp_reply_init(&p);
    assert_int_equal(smtp_reply_feed(&p, S("250 h\xc3\xa9llo w\x80rld\xff"), 0),
                     SMTP_REPLY_DONE);
    assert_string_equal(p.r.text, "250 h??llo w?rld?");
    assert_string_equal(p.r.first_word, "h??llo");

    smtp_reply_init(&p);
    assert_int_equal(smtp_reply_feed(&p, S("250 a\0b\rc\x7f"), 0), SMTP_REPLY_DONE);
    assert_string_equal(p.r.text, "250 a?b?c?");

    smtp_reply_init(&p);
    assert_int_equal(smtp_reply_feed(&p, S("2\xb5" "0 ok"), 0), SMTP_REPLY_BAD);
    smtp_reply_init(&p);
    assert_int_equal(smtp_reply_feed(&p, S("250\x80ok"), 0), SMTP_REPLY_BAD);
    smtp_reply_init(&p);
    assert_int_equal(smtp_reply_feed(&p, S("\xff\xff\xff"), 0), SMTP_REPLY_BAD);
    smtp_reply_init(&p);
    assert_int_equal(smtp_reply_feed(&p, S("250\0ok"), 0), SMTP_REPLY_BAD);

    /* len is honoured: bytes after it are not looked at */
    smtp_reply_init(&p);
    assert_int_equal(smtp_reply_feed(&p, "250 okJUNK", 6, 0), SMTP_REPLY_DONE);
    assert_string_equal(p.r.text, "250 ok");
    smtp_reply_init(&p);
    assert_int_equal(smtp_reply_feed(&p, "250 ok", 2, 0), SMTP_REPLY_BAD);
    smtp_reply_init(&p);
    assert_int_equal(smtp_reply_feed(&p, "250-ok", 3, 0), SMTP_REPLY_DONE);
    assert_string_equal(p.r.text, "250");

    /* an EHLO keyword with 8-bit bytes is not a keyword */
    smtp_reply_init(&p);
    assert_int_equal(smtp_reply_feed(&p, "250-mx", 6, 1), SMTP_REPLY_MORE);
    assert_int_equal(smtp_reply_feed(&p, S("250 PIPELINING\xc0"), 1), SMTP_REPLY_DONE);
    assert_int_equal(p.ext_pipelining, 0);
}

/* Empty texts. */
static void test_empty(void **state)
{
    struct smtp_reply_parser p;
    (void)state;

    smtp_reply_init(&p);
    assert_int_equal(smtp_reply_feed(&p, "220", 3, 0), SMTP_REPLY_DONE);
    assert_string_equal(p.r.text, "220");
    assert_string_equal(p.r.first_word, "");
    smtp_reply_init(&p);
    assert_int_equal(smtp_reply_feed(&p, "220-", 4, 0), SMTP_REPLY_MORE);
    assert_int_equal(smtp_reply_feed(&p, "220 ", 4, 0), SMTP_REPLY_DONE);
    assert_string_equal(p.r.text, "220");
    assert_string_equal(p.r.first_word, "");
    smtp_reply_init(&p);
    assert_int_equal(smtp_reply_feed(&p, "220    ", 7, 0), SMTP_REPLY_DONE);
    assert_string_equal(p.r.first_word, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_sequence),
        cmocka_unit_test(test_long_lines),
        cmocka_unit_test(test_too_many_lines),
        cmocka_unit_test(test_bytes),
        cmocka_unit_test(test_empty),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

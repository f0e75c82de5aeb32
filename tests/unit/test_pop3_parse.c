/*
 * test_pop3_parse — the pure POP3 parsing of src/pop3/parse.c, table-driven:
 * command lines (verb, arguments, PASS's rest, AUTH's initial response,
 * refusals), number arguments, the cleartext-login rule (with non-loopback
 * addresses, which the integration tests cannot use), and the RETR/TOP
 * encoder, each row fed whole, one byte at a time, and in pieces of 3 and 7,
 * which must all give exactly the expected bytes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <event2/buffer.h>

#include "pop3/pop3_parse.h"

/* ---- command lines ---- */

static const struct {
    const char *line;
    enum pop3_parse_result rc;
    enum pop3_verb verb;
    unsigned nargs;
    const char *arg0, *arg1;    /* NULL: not checked */
} cmds[] = {
    { "STAT", POP3_PARSE_OK, POP3_V_STAT, 0, NULL, NULL },
    { "stat", POP3_PARSE_OK, POP3_V_STAT, 0, NULL, NULL },
    { "StAt", POP3_PARSE_OK, POP3_V_STAT, 0, NULL, NULL },
    { "STATX", POP3_PARSE_UNKNOWN, POP3_V_UNKNOWN, 0, NULL, NULL },
    { "STA", POP3_PARSE_UNKNOWN, POP3_V_UNKNOWN, 0, NULL, NULL },
    { "", POP3_PARSE_EMPTY, POP3_V_UNKNOWN, 0, NULL, NULL },
    { " STAT", POP3_PARSE_EMPTY, POP3_V_UNKNOWN, 0, NULL, NULL },
    { "HELO x", POP3_PARSE_UNKNOWN, POP3_V_UNKNOWN, 0, NULL, NULL },
    { "LIST", POP3_PARSE_OK, POP3_V_LIST, 0, NULL, NULL },
    { "LIST 1", POP3_PARSE_OK, POP3_V_LIST, 1, "1", NULL },
    { "LIST  2 ", POP3_PARSE_OK, POP3_V_LIST, 1, "2", NULL },
    { "TOP 1 10", POP3_PARSE_OK, POP3_V_TOP, 2, "1", "10" },
    { "top 3 0", POP3_PARSE_OK, POP3_V_TOP, 2, "3", "0" },
    { "TOP 1 2 3", POP3_PARSE_OK, POP3_V_TOP, 3, "1", "2" },
    { "RETR 1", POP3_PARSE_OK, POP3_V_RETR, 1, "1", NULL },
    { "DELE 20000", POP3_PARSE_OK, POP3_V_DELE, 1, "20000", NULL },
    { "UIDL", POP3_PARSE_OK, POP3_V_UIDL, 0, NULL, NULL },
    { "UIDL 7", POP3_PARSE_OK, POP3_V_UIDL, 1, "7", NULL },
    { "USER alice@isp.example", POP3_PARSE_OK, POP3_V_USER, 1, "alice@isp.example", NULL },
    { "USER", POP3_PARSE_OK, POP3_V_USER, 0, NULL, NULL },
    { "PASS my secret ", POP3_PARSE_OK, POP3_V_PASS, 1, "my secret ", NULL },
    { "PASS  x", POP3_PARSE_OK, POP3_V_PASS, 1, " x", NULL },
    { "PASS", POP3_PARSE_OK, POP3_V_PASS, 0, NULL, NULL },
    { "PASS ", POP3_PARSE_OK, POP3_V_PASS, 0, NULL, NULL },
    { "APOP acme c4c9334bac560ecc979e58001b3e22fb", POP3_PARSE_OK, POP3_V_APOP, 2, "acme",
      "c4c9334bac560ecc979e58001b3e22fb" },
    { "AUTH", POP3_PARSE_OK, POP3_V_AUTH, 0, NULL, NULL },
    { "AUTH PLAIN", POP3_PARSE_OK, POP3_V_AUTH, 1, "PLAIN", NULL },
    { "AUTH PLAIN AGFsaWNlAHNlY3JldA==", POP3_PARSE_OK, POP3_V_AUTH, 2, "PLAIN",
      "AGFsaWNlAHNlY3JldA==" },
    { "AUTH PLAIN =", POP3_PARSE_OK, POP3_V_AUTH, 2, "PLAIN", "=" },
    { "AUTH PLAIN a b ", POP3_PARSE_OK, POP3_V_AUTH, 2, "PLAIN", "a b" },
    { "CAPA", POP3_PARSE_OK, POP3_V_CAPA, 0, NULL, NULL },
    { "STLS", POP3_PARSE_OK, POP3_V_STLS, 0, NULL, NULL },
    { "QUIT", POP3_PARSE_OK, POP3_V_QUIT, 0, NULL, NULL },
    { "NOOP", POP3_PARSE_OK, POP3_V_NOOP, 0, NULL, NULL },
    { "RSET", POP3_PARSE_OK, POP3_V_RSET, 0, NULL, NULL },
    { "QUIT\r", POP3_PARSE_BAD_BYTE, POP3_V_UNKNOWN, 0, NULL, NULL },
    { "USER a\nPASS b", POP3_PARSE_BAD_BYTE, POP3_V_UNKNOWN, 0, NULL, NULL },
};

static void test_commands(void **state)
{
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        struct pop3_cmd c;
        const char *l = cmds[i].line;
        enum pop3_parse_result rc = pop3_parse_command(l, strlen(l), &c);
        if (rc != cmds[i].rc || c.verb != cmds[i].verb)
            fail_msg("'%s': rc %d verb %d, expected %d %d", l, rc, c.verb, cmds[i].rc,
                     cmds[i].verb);
        if (rc != POP3_PARSE_OK)
            continue;
        if (c.nargs != cmds[i].nargs)
            fail_msg("'%s': %u arguments, expected %u", l, c.nargs, cmds[i].nargs);
        const char *want[2] = { cmds[i].arg0, cmds[i].arg1 };
        for (int k = 0; k < 2; k++) {
            if (!want[k])
                continue;
            if (c.args[k].len != strlen(want[k]) || memcmp(c.args[k].p, want[k], c.args[k].len))
                fail_msg("'%s': argument %d is '%.*s', expected '%s'", l, k,
                         (int)c.args[k].len, c.args[k].p, want[k]);
            if (c.args[k].p < l || c.args[k].p + c.args[k].len > l + strlen(l))
                fail_msg("'%s': argument %d points outside the line", l, k);
        }
    }
}

static void test_nul_and_lengths(void **state)
{
    struct pop3_cmd c;
    assert_int_equal(pop3_parse_command("USER a\0b", 8, &c), POP3_PARSE_BAD_BYTE);
    char line[POP3_LINE_MAX];
    /* an argument of POP3_ARG_MAX octets is fine, one more is not */
    memcpy(line, "USER ", 5);
    memset(line + 5, 'a', POP3_ARG_MAX + 1);
    assert_int_equal(pop3_parse_command(line, 5 + POP3_ARG_MAX, &c), POP3_PARSE_OK);
    assert_int_equal(c.args[0].len, POP3_ARG_MAX);
    assert_int_equal(pop3_parse_command(line, 5 + POP3_ARG_MAX + 1, &c),
                     POP3_PARSE_ARG_TOO_LONG);
    /* PASS and AUTH's initial response may be longer */
    memcpy(line, "PASS ", 5);
    assert_int_equal(pop3_parse_command(line, 5 + POP3_ARG_MAX + 1, &c), POP3_PARSE_OK);
    assert_int_equal(c.args[0].len, POP3_ARG_MAX + 1);
    memcpy(line, "AUTH PLAIN ", 11);
    memset(line + 11, 'Q', 1000);
    assert_int_equal(pop3_parse_command(line, 1011, &c), POP3_PARSE_OK);
    assert_int_equal(c.nargs, 2);
    assert_int_equal(c.args[1].len, 1000);
    /* but not the mechanism */
    memset(line + 5, 'M', POP3_ARG_MAX + 1);
    assert_int_equal(pop3_parse_command(line, 5 + POP3_ARG_MAX + 1, &c),
                     POP3_PARSE_ARG_TOO_LONG);
}

/* ---- numbers ---- */

static const struct {
    const char *s;
    int rc;
    uint32_t v;
} nums[] = {
    { "1", 0, 1 }, { "0", 0, 0 }, { "007", 0, 7 }, { "4294967295", 0, 4294967295u },
    { "4294967296", -1, 0 }, { "99999999999", -1, 0 }, { "", -1, 0 }, { "-1", -1, 0 },
    { "+1", -1, 0 }, { "1a", -1, 0 }, { " 1", -1, 0 }, { "0x10", -1, 0 },
};

static void test_numbers(void **state)
{
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        struct pop3_arg a = { nums[i].s, strlen(nums[i].s) };
        uint32_t v = 12345;
        int rc = pop3_parse_number(&a, &v);
        if (rc != nums[i].rc || (rc == 0 && v != nums[i].v))
            fail_msg("'%s': rc %d value %u", nums[i].s, rc, v);
    }
}

/* ---- the cleartext rule ---- */

static const struct {
    int tls, cleartext;
    const char *peer;
    int ok;
} plain[] = {
    { 0, 0, "127.0.0.1", 1 },
    { 0, 0, "127.255.3.4", 1 },
    { 0, 0, "::1", 1 },
    { 0, 0, "::ffff:127.0.0.1", 1 },
    { 0, 0, "192.0.2.1", 0 },
    { 0, 0, "128.0.0.1", 0 },
    { 0, 0, "2001:db8::1", 0 },
    { 0, 0, "::ffff:192.0.2.1", 0 },
    { 0, 0, "::2", 0 },
    { 0, 0, "unix", 0 },
    { 0, 0, "", 0 },
    { 0, 0, NULL, 0 },
    { 1, 0, "192.0.2.1", 1 },
    { 0, 1, "192.0.2.1", 1 },
    { 1, 1, "2001:db8::1", 1 },
};

static void test_plaintext_rule(void **state)
{
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++)
        if (pop3_plaintext_ok(plain[i].tls, plain[i].cleartext, plain[i].peer) != plain[i].ok)
            fail_msg("tls=%d cleartext=%d peer=%s: expected %d", plain[i].tls,
                     plain[i].cleartext, plain[i].peer ? plain[i].peer : "(null)",
                     plain[i].ok);
}

/* ---- the encoder ---- */

static const struct {
    const char *name;
    long lines;                 /* < 0: RETR */
    const char *in, *wire;
} encs[] = {
    { "empty", -1, "", ".\r\n" },
    { "one line", -1, "a\n", "a\r\n.\r\n" },
    { "no final LF", -1, "a\nb", "a\r\nb\r\n.\r\n" },
    { "CRLF kept", -1, "a\r\nb\r\n", "a\r\nb\r\n.\r\n" },
    { "lone CR kept", -1, "a\rb\n", "a\rb\r\n.\r\n" },
    { "final lone CR", -1, "a\r", "a\r\n.\r\n" },
    { "dot stuffed", -1, ".\n..x\nx.\n", "..\r\n...x\r\nx.\r\n.\r\n" },
    { "dot first after CRLF", -1, "a\r\n.b\r\n", "a\r\n..b\r\n.\r\n" },
    { "dot at end", -1, "a\n.", "a\r\n..\r\n.\r\n" },
    { "empty lines", -1, "\n\n", "\r\n\r\n.\r\n" },
    { "top 0", 0, "H: 1\nH: 2\n\nb1\nb2\n", "H: 1\r\nH: 2\r\n\r\n.\r\n" },
    { "top 1", 1, "H: 1\n\nb1\nb2\n", "H: 1\r\n\r\nb1\r\n.\r\n" },
    { "top 1 CRLF", 1, "H: 1\r\n\r\nb1\r\nb2\r\n", "H: 1\r\n\r\nb1\r\n.\r\n" },
    { "top more than body", 5, "H: 1\n\nb1\n", "H: 1\r\n\r\nb1\r\n.\r\n" },
    { "top no body", 2, "H: 1\nH: 2\n", "H: 1\r\nH: 2\r\n.\r\n" },
    { "top no blank line, no LF", 0, "H: 1", "H: 1\r\n.\r\n" },
    { "top dot in body", 2, "H\n\n.a\n.\nc\n", "H\r\n\r\n..a\r\n..\r\n.\r\n" },
    { "top CR is not a blank line", 0, "H\n\rx\n\nb\n", "H\r\n\rx\r\n\r\n.\r\n" },
};

static void enc_run(size_t r, size_t step)
{
    struct evbuffer *out = evbuffer_new();
    struct pop3_enc e;
    const char *in = encs[r].in;
    size_t n = strlen(in);
    pop3_enc_init(&e, encs[r].lines);
    for (size_t i = 0; i < n && !e.done; ) {
        size_t k = n - i < step ? n - i : step;
        size_t used = pop3_enc_feed(&e, in + i, k, out);
        if (used < k && !e.done)
            fail_msg("%s (pieces of %zu): used %zu of %zu without being done",
                     encs[r].name, step, used, k);
        i += used;
    }
    pop3_enc_end(&e, out);
    size_t len = evbuffer_get_length(out);
    const char *got = (const char *)evbuffer_pullup(out, -1);
    const char *want = encs[r].wire;
    if (len != strlen(want) || memcmp(got, want, len))
        fail_msg("%s (pieces of %zu): got '%.*s'", encs[r].name, step, (int)len,
                 got ? got : "");
    evbuffer_free(out);
}

static void test_encoder(void **state)
{
    for (size_t r = 0; r < sizeof encs / sizeof encs[0]; r++) {
        size_t whole = strlen(encs[r].in) ? strlen(encs[r].in) : 1;
        size_t steps[] = { whole, 1, 3, 7 };
        for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++)
            enc_run(r, steps[k]);
    }
}

/* A RETR's octet count is the message with CRLF line ends (the W= of its
 * maildir name); the encoder's output is that plus the stuffed dots and
 * the final ".\r\n". */
static void test_encoder_size(void **state)
{
    const char *in = "Subject: x\n\n.line\nlast";
    struct evbuffer *out = evbuffer_new();
    struct pop3_enc e;
    pop3_enc_init(&e, -1);
    pop3_enc_feed(&e, in, strlen(in), out);
    pop3_enc_end(&e, out);
    size_t vsize = strlen(in) + 3 /* three LFs get CRs */ + 2 /* the last line's end */;
    assert_int_equal(evbuffer_get_length(out), vsize + 1 /* one stuffed dot */ + 3);
    evbuffer_free(out);
}

/* The encoder works through a long input in pieces of its own (4 KiB):
 * a CR LF, a lone CR, a leading dot and a TOP's line count that fall on a
 * piece boundary give the same bytes as feeding one byte at a time, which
 * never reaches one.  The input has every such case at every offset
 * around 4096 and 8192. */
static void enc_bytes(const char *in, size_t n, long lines, size_t step, struct evbuffer *out)
{
    struct pop3_enc e;
    pop3_enc_init(&e, lines);
    for (size_t i = 0; i < n && !e.done; ) {
        size_t k = n - i < step ? n - i : step;
        i += pop3_enc_feed(&e, in + i, k, out);
    }
    pop3_enc_end(&e, out);
}

static void test_encoder_long(void **state)
{
    static const char *const pieces[] = { "a\r\n", ".\n", "\n", "b\r", ".x\r\n", "\r\n" };
    for (size_t shift = 0; shift < 12; shift++) {
        char in[12000];
        size_t n = 0;
        for (size_t i = 0; i < 4090 + shift; i++)
            in[n++] = 'x';
        for (size_t p = 0; n < sizeof in - 8; p++) {
            size_t len = strlen(pieces[p % 6]);
            memcpy(in + n, pieces[p % 6], len);
            n += len;
        }
        long lines_for[] = { -1, 0, 900 };
        for (size_t t = 0; t < 3; t++) {
            struct evbuffer *whole = evbuffer_new(), *bytes = evbuffer_new();
            enc_bytes(in, n, lines_for[t], n, whole);
            enc_bytes(in, n, lines_for[t], 1, bytes);
            size_t a = evbuffer_get_length(whole), b = evbuffer_get_length(bytes);
            if (a != b || memcmp(evbuffer_pullup(whole, -1), evbuffer_pullup(bytes, -1), a))
                fail_msg("shift %zu, lines %ld: %zu bytes whole, %zu one by one", shift,
                         lines_for[t], a, b);
            evbuffer_free(whole);
            evbuffer_free(bytes);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_commands),
        cmocka_unit_test(test_nul_and_lengths),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_plaintext_rule),
        cmocka_unit_test(test_encoder),
        cmocka_unit_test(test_encoder_size),
        cmocka_unit_test(test_encoder_long),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

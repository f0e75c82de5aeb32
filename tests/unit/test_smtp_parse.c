/*
 * test_smtp_parse — table-driven tests of the pure SMTP parser: command
 * lines, MAIL/RCPT paths (including the classic relay tricks, which must
 * parse into something the caller can refuse), HELO arguments, line checks,
 * and the DATA decoder (dot-stuffing, limits, every SMTP smuggling probe).
 * Every DATA case is fed whole, one byte at a time and split at every
 * position, and must give identical output and results each way.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/addr.h"
#include "smtp/smtp_parse.h"

#define S(lit) lit, (sizeof(lit) - 1)
#define N_(a) (sizeof(a) / sizeof((a)[0]))

/* ---- commands ------------------------------------------------------------ */

static const struct {
    const char *line;
    size_t len;
    int rc;
    enum smtp_verb verb;
    const char *arg;
} cmd_cases[] = {
    { S("MAIL FROM:<a@b>"), 0, SMTP_V_MAIL, "FROM:<a@b>" },
    { S("mail from:<a@b>"), 0, SMTP_V_MAIL, "from:<a@b>" },
    { S("RCPT TO:<a@b> "), 0, SMTP_V_RCPT, "TO:<a@b>" },
    { S("HELO   host.example"), 0, SMTP_V_HELO, "host.example" },
    { S("EhLo host.example"), 0, SMTP_V_EHLO, "host.example" },
    { S("DATA"), 0, SMTP_V_DATA, "" },
    { S("RSET"), 0, SMTP_V_RSET, "" },
    { S("NOOP whatever"), 0, SMTP_V_NOOP, "whatever" },
    { S("quit   "), 0, SMTP_V_QUIT, "" },
    { S("VRFY bob"), 0, SMTP_V_VRFY, "bob" },
    { S("EXPN list"), 0, SMTP_V_EXPN, "list" },
    { S("HELP"), 0, SMTP_V_HELP, "" },
    { S("starttls"), 0, SMTP_V_STARTTLS, "" },
    { S("ETRN #acme.example"), 0, SMTP_V_ETRN, "#acme.example" },
    { S("AUTH PLAIN AGJvYgBwdw=="), 0, SMTP_V_AUTH, "PLAIN AGJvYgBwdw==" },
    { S("BDAT 100 LAST"), 0, SMTP_V_BDAT, "100 LAST" },
    { S("ATRN acme.example"), 0, SMTP_V_ATRN, "acme.example" },
    { S(""), 0, SMTP_V_UNKNOWN, "" },
    { S("   "), 0, SMTP_V_UNKNOWN, "" },
    { S("MAILFROM:<a@b>"), 0, SMTP_V_UNKNOWN, "" },
    { S("MAIL\tFROM:<a@b>"), 0, SMTP_V_UNKNOWN, "" },
    { S("MAI"), 0, SMTP_V_UNKNOWN, "" },
    { S("QUITX"), 0, SMTP_V_UNKNOWN, "" },
    { S(" QUIT"), 0, SMTP_V_UNKNOWN, "QUIT" },
    { S("XFOO bar"), 0, SMTP_V_UNKNOWN, "bar" },
    { S("NOOP\0x"), -1, SMTP_V_UNKNOWN, "" },
    { S("DATA\r"), -1, SMTP_V_UNKNOWN, "" },
    { S("RSET\nMAIL FROM:<a@b>"), -1, SMTP_V_UNKNOWN, "" },
};

static void test_commands(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < N_(cmd_cases); i++) {
        struct smtp_cmd cmd;
        int rc = smtp_parse_command(cmd_cases[i].line, cmd_cases[i].len, &cmd);

        if (rc != cmd_cases[i].rc || cmd.verb != cmd_cases[i].verb ||
            cmd.arglen != strlen(cmd_cases[i].arg) ||
            memcmp(cmd.arg, cmd_cases[i].arg, cmd.arglen) != 0)
            fail_msg("command case %zu \"%s\": rc=%d verb=%d arg=\"%.*s\"", i,
                     cmd_cases[i].line, rc, cmd.verb, (int)cmd.arglen, cmd.arg);
        if (rc == 0 && cmd.arglen > 0 &&
            (cmd.arg < cmd_cases[i].line || cmd.arg + cmd.arglen > cmd_cases[i].line + cmd_cases[i].len))
            fail_msg("command case %zu: arg outside the line", i);
    }
}

/* ---- paths --------------------------------------------------------------- */

enum { F_NULL = 1, F_PM = 2, F_QUOTED = 4, F_LIT = 8, F_ROUTING = 16, F_SIZE = 32, F_8BIT = 64, F_AUTH = 128 };

static const struct path_case {
    const char *arg;
    const char *kw;
    int rcpt;
    enum smtp_path_err err;
    const char *local;
    const char *domain;
    int flags;
    uint64_t size;
} path_cases[] = {
    /* good MAIL FROM */
    { "FROM:<user@example.com>", "FROM", 0, SMTP_PATH_OK, "user", "example.com", 0, 0 },
    { "from:<User.Name+tag@Mail.Example.COM>", "FROM", 0, SMTP_PATH_OK, "User.Name+tag", "mail.example.com", 0, 0 },
    { "FROM: <a@b.example>", "FROM", 0, SMTP_PATH_OK, "a", "b.example", 0, 0 },
    { "FROM:<u@localhost>", "FROM", 0, SMTP_PATH_OK, "u", "localhost", 0, 0 },
    { "FROM:<>", "FROM", 0, SMTP_PATH_OK, "", "", F_NULL, 0 },
    { "FROM:<> SIZE=100", "FROM", 0, SMTP_PATH_OK, "", "", F_NULL | F_SIZE, 100 },
    { "FROM:<a@b.example> SIZE=12345 BODY=8BITMIME", "FROM", 0, SMTP_PATH_OK, "a", "b.example", F_SIZE | F_8BIT, 12345 },
    { "FROM:<a@b.example> body=7bit", "FROM", 0, SMTP_PATH_OK, "a", "b.example", 0, 0 },
    { "FROM:<a@b.example> BODY=8bitmime size=0", "FROM", 0, SMTP_PATH_OK, "a", "b.example", F_SIZE | F_8BIT, 0 },
    /* RFC 4954 5: AUTH= on MAIL (Exim sends it after AUTH) */
    { "FROM:<a@b.example> AUTH=<>", "FROM", 0, SMTP_PATH_OK, "a", "b.example", F_AUTH, 0 },
    { "FROM:<a@b.example> SIZE=5 auth=a+2Bb@b.example", "FROM", 0, SMTP_PATH_OK, "a", "b.example", F_SIZE | F_AUTH, 5 },
    { "FROM:<a@b.example>  SIZE=1  ", "FROM", 0, SMTP_PATH_OK, "a", "b.example", F_SIZE, 1 },
    { "FROM:<a@b.example> SIZE=18446744073709551615", "FROM", 0, SMTP_PATH_OK, "a", "b.example", F_SIZE, UINT64_MAX },
    { "FROM:<\"quoted user\"@b.example>", "FROM", 0, SMTP_PATH_OK, "quoted user", "b.example", F_QUOTED, 0 },
    { "FROM:<\"a\\\"b\\\\c\"@b.example>", "FROM", 0, SMTP_PATH_OK, "a\"b\\c", "b.example", F_QUOTED, 0 },
    { "FROM:<\"\"@b.example>", "FROM", 0, SMTP_PATH_OK, "", "b.example", F_QUOTED, 0 },
    { "FROM:<@relay.example,@r2.example:u@b.example>", "FROM", 0, SMTP_PATH_OK, "u", "b.example", 0, 0 },
    { "FROM:<u@[192.0.2.1]>", "FROM", 0, SMTP_PATH_OK, "u", "[192.0.2.1]", F_LIT, 0 },
    { "FROM:<u@[IPv6:2001:DB8::1]>", "FROM", 0, SMTP_PATH_OK, "u", "[IPv6:2001:DB8::1]", F_LIT, 0 },
    { "FROM:<u@[ipv6:::1]>", "FROM", 0, SMTP_PATH_OK, "u", "[ipv6:::1]", F_LIT, 0 },
    { "FROM:<u@[IPv6:1:2:3:4:5:6:7:8]>", "FROM", 0, SMTP_PATH_OK, "u", "[IPv6:1:2:3:4:5:6:7:8]", F_LIT, 0 },
    { "FROM:<u@[IPv6:2001:db8::192.0.2.1]>", "FROM", 0, SMTP_PATH_OK, "u", "[IPv6:2001:db8::192.0.2.1]", F_LIT, 0 },
    { "FROM:<u@[IPv6:1:2:3:4:5:6:192.0.2.1]>", "FROM", 0, SMTP_PATH_OK, "u", "[IPv6:1:2:3:4:5:6:192.0.2.1]", F_LIT, 0 },
    /* bad syntax */
    { "FROM:  <a@b.example>", "FROM", 0, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "FROM :<a@b.example>", "FROM", 0, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "FROM<a@b.example>", "FROM", 0, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "TO:<a@b.example>", "FROM", 0, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "FROM:a@b.example", "FROM", 0, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "FROM:<a@b.example", "FROM", 0, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "FROM:", "FROM", 0, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "", "FROM", 0, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "FROM:<postmaster>", "FROM", 0, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "FROM:<u>", "FROM", 0, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "FROM:<u@>", "FROM", 0, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "FROM:<@b.example>", "FROM", 0, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "FROM:<@:u@b.example>", "FROM", 0, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "FROM:<@relay.example u@b.example>", "FROM", 0, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "FROM:<@relay.example,u@b.example>", "FROM", 0, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "FROM:<@a.example:>", "FROM", 0, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "FROM:<.u@b.example>", "FROM", 0, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "FROM:<u.@b.example>", "FROM", 0, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "FROM:<u..v@b.example>", "FROM", 0, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "FROM:<u v@b.example>", "FROM", 0, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "FROM:<u(c)@b.example>", "FROM", 0, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "FROM:<\"unterminated@b.example>", "FROM", 0, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "FROM:<\"a\"b@b.example>", "FROM", 0, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "FROM:<u@-bad.example>", "FROM", 0, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "FROM:<u@bad-.example>", "FROM", 0, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "FROM:<u@a..example>", "FROM", 0, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "FROM:<u@a.example.>", "FROM", 0, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "FROM:<u@.a.example>", "FROM", 0, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "FROM:<u@a_b.example>", "FROM", 0, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "FROM:<u@b.example >", "FROM", 0, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "FROM:<u@b.example>x", "FROM", 0, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "FROM:<u@b.example>SIZE=1", "FROM", 0, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "FROM:<u@b.example>>", "FROM", 0, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "FROM:<<u@b.example>>", "FROM", 0, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "FROM:<u@[192.0.2.1>", "FROM", 0, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "FROM:<u@[256.0.2.1]>", "FROM", 0, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "FROM:<u@[1.2.3]>", "FROM", 0, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "FROM:<u@[1.2.3.4.5]>", "FROM", 0, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "FROM:<u@[1.2.3.0004]>", "FROM", 0, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "FROM:<u@[]>", "FROM", 0, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "FROM:<u@[tag:foo]>", "FROM", 0, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "FROM:<u@[IPv6:1:2:3:4:5:6:7]>", "FROM", 0, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "FROM:<u@[IPv6:1:2:3:4:5:6:7:8:9]>", "FROM", 0, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "FROM:<u@[IPv6:1::2::3]>", "FROM", 0, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "FROM:<u@[IPv6:12345::1]>", "FROM", 0, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "FROM:<u@[IPv6:1:2:3:4:5:6:7:]>", "FROM", 0, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "FROM:<u@[IPv6::1:2]>", "FROM", 0, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "FROM:<u@[IPv6:g::1]>", "FROM", 0, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "FROM:<u@[IPv6:::1.2.3]>", "FROM", 0, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "FROM:<u@[IPv6:::1.2.3.4:5]>", "FROM", 0, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "FROM:<\"a\\", "FROM", 0, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "FROM:<u@[192.0.2.1]x>", "FROM", 0, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "FROM:<u\xc3\xa9@b.example>", "FROM", 0, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "FROM:<u@b\x01.example>", "FROM", 0, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "FROM:<\"u\x7f\"@b.example>", "FROM", 0, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "FROM:<\"u\\\x01\"@b.example>", "FROM", 0, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "FROM:<a@b.example> SIZE=1\t", "FROM", 0, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    /* bad parameters */
    { "FROM:<a@b.example> SIZE=18446744073709551616", "FROM", 0, SMTP_PATH_PARAM, "", "", 0, 0 },
    { "FROM:<a@b.example> SIZE=99999999999999999999999", "FROM", 0, SMTP_PATH_PARAM, "", "", 0, 0 },
    { "FROM:<a@b.example> SIZE=", "FROM", 0, SMTP_PATH_PARAM, "", "", 0, 0 },
    { "FROM:<a@b.example> SIZE", "FROM", 0, SMTP_PATH_PARAM, "", "", 0, 0 },
    { "FROM:<a@b.example> SIZE=12a", "FROM", 0, SMTP_PATH_PARAM, "", "", 0, 0 },
    { "FROM:<a@b.example> SIZE=-1", "FROM", 0, SMTP_PATH_PARAM, "", "", 0, 0 },
    { "FROM:<a@b.example> SIZE=1 SIZE=1", "FROM", 0, SMTP_PATH_PARAM, "", "", 0, 0 },
    { "FROM:<a@b.example> BODY=BINARYMIME", "FROM", 0, SMTP_PATH_PARAM, "", "", 0, 0 },
    { "FROM:<a@b.example> BODY=7BIT body=8bitmime", "FROM", 0, SMTP_PATH_PARAM, "", "", 0, 0 },
    { "FROM:<a@b.example> BODY=", "FROM", 0, SMTP_PATH_PARAM, "", "", 0, 0 },
    { "FROM:<a@b.example> AUTH=", "FROM", 0, SMTP_PATH_PARAM, "", "", 0, 0 },
    { "FROM:<a@b.example> AUTH=<> AUTH=<>", "FROM", 0, SMTP_PATH_PARAM, "", "", 0, 0 },
    { "TO:<a@b.example> AUTH=<>", "TO", 1, SMTP_PATH_PARAM, "", "", 0, 0 },
    { "FROM:<a@b.example> SMTPUTF8", "FROM", 0, SMTP_PATH_PARAM, "", "", 0, 0 },
    { "FROM:<a@b.example> =1", "FROM", 0, SMTP_PATH_PARAM, "", "", 0, 0 },
    /* RCPT TO */
    { "TO:<user@example.com>", "TO", 1, SMTP_PATH_OK, "user", "example.com", 0, 0 },
    { "to: <user@example.com>  ", "TO", 1, SMTP_PATH_OK, "user", "example.com", 0, 0 },
    { "TO:<postmaster>", "TO", 1, SMTP_PATH_OK, "postmaster", "", F_PM, 0 },
    { "TO:<PostMaster>", "TO", 1, SMTP_PATH_OK, "PostMaster", "", F_PM, 0 },
    { "TO:<postmaster@example.com>", "TO", 1, SMTP_PATH_OK, "postmaster", "example.com", 0, 0 },
    { "TO:<>", "TO", 1, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "TO:<\"postmaster\">", "TO", 1, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "TO:<@a.example:postmaster>", "TO", 1, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "TO:<abuse>", "TO", 1, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "FROM:<u@b.example>", "TO", 1, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "TO:<u@b.example> SIZE=1", "TO", 1, SMTP_PATH_PARAM, "", "", 0, 0 },
    { "TO:<u@b.example> NOTIFY=NEVER", "TO", 1, SMTP_PATH_PARAM, "", "", 0, 0 },
    { "TO:<u@b.example> X", "TO", 1, SMTP_PATH_PARAM, "", "", 0, 0 },
    /* relay tricks: each parses into something the caller can refuse */
    { "TO:<u%victim@you.example>", "TO", 1, SMTP_PATH_OK, "u%victim", "you.example", F_ROUTING, 0 },
    { "TO:<\"u@victim\"@you.example>", "TO", 1, SMTP_PATH_OK, "u@victim", "you.example", F_QUOTED | F_ROUTING, 0 },
    { "TO:<@you.example:u@victim.test>", "TO", 1, SMTP_PATH_OK, "u", "victim.test", 0, 0 },
    { "TO:<victim!u@you.example>", "TO", 1, SMTP_PATH_OK, "victim!u", "you.example", F_ROUTING, 0 },
    { "TO:<u@victim@you.example>", "TO", 1, SMTP_PATH_SYNTAX, "", "", 0, 0 },
    { "TO:<u@[192.0.2.1]>", "TO", 1, SMTP_PATH_OK, "u", "[192.0.2.1]", F_LIT, 0 },
    { "TO:<u@acme.example.victim.test>", "TO", 1, SMTP_PATH_OK, "u", "acme.example.victim.test", 0, 0 },
    { "TO:<\"u%victim\"@you.example>", "TO", 1, SMTP_PATH_OK, "u%victim", "you.example", F_QUOTED | F_ROUTING, 0 },
};

static void check_path(const char *what, const char *arg, size_t len, const struct path_case *c)
{
    struct smtp_mailbox mb;
    struct smtp_params pr;
    enum smtp_path_err e;
    int flags;

    memset(&mb, 0xa5, sizeof mb);
    memset(&pr, 0xa5, sizeof pr);
    e = smtp_parse_path(arg, len, c->kw, c->rcpt, &mb, &pr);
    if (e != c->err)
        fail_msg("path %s \"%s\": err %d, want %d", what, arg, e, c->err);
    if (e != SMTP_PATH_OK) {
        if (mb.local[0] || mb.domain[0] || mb.null || mb.postmaster || mb.quoted ||
            mb.literal || pr.has_size || pr.size || pr.body_8bit || pr.has_auth)
            fail_msg("path %s \"%s\": mailbox not cleared on error", what, arg);
        return;
    }
    flags = (mb.null ? F_NULL : 0) | (mb.postmaster ? F_PM : 0) | (mb.quoted ? F_QUOTED : 0) |
            (mb.literal ? F_LIT : 0) | (smtp_local_is_routing(&mb) ? F_ROUTING : 0) |
            (pr.has_size ? F_SIZE : 0) | (pr.body_8bit ? F_8BIT : 0) |
            (pr.has_auth ? F_AUTH : 0);
    if (strcmp(mb.local, c->local) != 0 || strcmp(mb.domain, c->domain) != 0 ||
        flags != c->flags || pr.size != c->size)
        fail_msg("path %s \"%s\": local=\"%s\" domain=\"%s\" flags=%#x size=%llu", what, arg,
                 mb.local, mb.domain, flags, (unsigned long long)pr.size);
}

static void test_paths(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < N_(path_cases); i++) {
        char what[32];

        snprintf(what, sizeof what, "case %zu", i);
        check_path(what, path_cases[i].arg, strlen(path_cases[i].arg), &path_cases[i]);
    }
}

/* params may be NULL; an embedded NUL is a syntax error, not an early end */
static void test_path_misc(void **state)
{
    struct smtp_mailbox mb;
    static const char nul[] = "FROM:<a\0b@c.example>";

    (void)state;
    assert_int_equal(smtp_parse_path(S("TO:<a@b.example>"), "TO", 1, &mb, NULL), SMTP_PATH_OK);
    assert_string_equal(mb.domain, "b.example");
    assert_int_equal(smtp_parse_path(nul, sizeof nul - 1, "FROM", 0, &mb, NULL), SMTP_PATH_SYNTAX);
    /* only the first len bytes count */
    assert_int_equal(smtp_parse_path("FROM:<a@b.example> junk", 18, "FROM", 0, &mb, NULL), SMTP_PATH_OK);
    mb.null = 1;
    mb.local[0] = '\0';
    assert_int_equal(smtp_local_is_routing(&mb), 0);
}

/* Fills out[0..n) with a syntactically valid domain of exactly n bytes,
 * labels of `label` bytes. */
static void make_labels(char *out, size_t n, size_t label)
{
    size_t i;

    for (i = 0; i < n; i++)
        out[i] = (i % (label + 1) == label && i + 1 < n) ? '.' : (char)('a' + i % 26);
    out[n] = '\0';
}

static void make_domain(char *out, size_t n)
{
    make_labels(out, n, 63);
}

static void test_path_lengths(void **state)
{
    static const struct { size_t local, domain; int quoted; enum smtp_path_err err; } t[] = {
        { 64, 20, 0, SMTP_PATH_OK },            /* local part at its limit */
        { 65, 20, 0, SMTP_PATH_TOO_LONG },
        { 62, 20, 1, SMTP_PATH_OK },            /* quoted: 64 on the wire */
        { 63, 20, 1, SMTP_PATH_TOO_LONG },
        { 1, 252, 0, SMTP_PATH_OK },            /* "<u@" + 252 + ">" = 256 */
        { 1, 253, 0, SMTP_PATH_TOO_LONG },      /* path 257 */
        { 1, 255, 0, SMTP_PATH_TOO_LONG },
        { 1, 300, 0, SMTP_PATH_TOO_LONG },      /* domain over 255 */
        { 1, 1000, 0, SMTP_PATH_TOO_LONG },
        { 70, 20, 1, SMTP_PATH_TOO_LONG },      /* quoted, far over */
    };
    char arg[1200], dom[1100], what[64];
    size_t i, k;

    (void)state;
    for (i = 0; i < N_(t); i++) {
        struct path_case c = { NULL, "FROM", 0, t[i].err, NULL, NULL, t[i].quoted ? F_QUOTED : 0, 0 };
        char local[80];
        int n;

        for (k = 0; k < t[i].local; k++)
            local[k] = 'x';
        local[k] = '\0';
        make_domain(dom, t[i].domain);
        n = snprintf(arg, sizeof arg, t[i].quoted ? "FROM:<\"%s\"@%s>" : "FROM:<%s@%s>", local, dom);
        c.local = local;
        c.domain = dom;
        snprintf(what, sizeof what, "length case %zu", i);
        check_path(what, arg, (size_t)n, &c);
    }
    {   /* a label of 63 is fine, 64 is not */
        struct path_case c = { NULL, "FROM", 0, SMTP_PATH_OK, "u", NULL, 0, 0 };
        int n;

        memset(dom, 'a', 63);
        strcpy(dom + 63, ".example");
        c.domain = dom;
        n = snprintf(arg, sizeof arg, "FROM:<u@%s>", dom);
        check_path("label 63", arg, (size_t)n, &c);
        memset(dom, 'a', 64);
        strcpy(dom + 64, ".example");
        c.err = SMTP_PATH_SYNTAX;
        n = snprintf(arg, sizeof arg, "FROM:<u@%s>", dom);
        check_path("label 64", arg, (size_t)n, &c);
    }
    {   /* 256th domain byte inside a label; literal over 255; 64 + '.' */
        struct path_case c = { NULL, "FROM", 0, SMTP_PATH_TOO_LONG, "", "", 0, 0 };
        int n;

        make_labels(dom, 300, 60);
        n = snprintf(arg, sizeof arg, "FROM:<u@%s>", dom);
        check_path("domain over 255 in a label", arg, (size_t)n, &c);
        memset(dom, '1', 300);
        dom[300] = '\0';
        n = snprintf(arg, sizeof arg, "FROM:<u@[%s]>", dom);
        check_path("literal over 255", arg, (size_t)n, &c);
        memset(dom, 'x', 64);
        dom[64] = '\0';
        n = snprintf(arg, sizeof arg, "FROM:<%s.y@b.example>", dom);
        check_path("local 64 then a dot", arg, (size_t)n, &c);
    }
    {   /* a source route counts toward the 256 of the path */
        struct path_case c = { NULL, "TO", 1, SMTP_PATH_OK, "u", "b.example", 0, 0 };
        int n;

        make_domain(dom, 241);          /* "<@" + 241 + ":u@b.example>" = 256 */
        n = snprintf(arg, sizeof arg, "TO:<@%s:u@b.example>", dom);
        check_path("route, path 256", arg, (size_t)n, &c);
        make_domain(dom, 242);
        c.err = SMTP_PATH_TOO_LONG;
        n = snprintf(arg, sizeof arg, "TO:<@%s:u@b.example>", dom);
        check_path("route, path 257", arg, (size_t)n, &c);
    }
}

/* ---- wire form: parsed mailboxes written back (addr.h) -------------------- */

/* A quoted local part parses into its unquoted form; addr_format() must give
 * a wire form that parses back into the same mailbox, alone: nothing written
 * inside quotes may end the path or become an ESMTP parameter. */
static const struct { const char *arg, *kw, *wire, *local; } wire_cases[] = {
    { "TO:<\"a> NOTIFY=SUCCESS\"@acme.example>", "TO", "\"a> NOTIFY=SUCCESS\"@acme.example",
      "a> NOTIFY=SUCCESS" },
    { "TO:<\"a>b\"@acme.example>", "TO", "\"a>b\"@acme.example", "a>b" },
    { "TO:<\"x y\"@acme.example>", "TO", "\"x y\"@acme.example", "x y" },
    { "TO:<\"a\\\"b\"@acme.example>", "TO", "\"a\\\"b\"@acme.example", "a\"b" },
    { "TO:<\"a\\\\\"@acme.example>", "TO", "\"a\\\\\"@acme.example", "a\\" },
    { "TO:<\"plain\"@acme.example>", "TO", "plain@acme.example", "plain" },
    { "TO:<plain@acme.example>", "TO", "plain@acme.example", "plain" },
    { "TO:<\"\\p\\l\"@acme.example>", "TO", "pl@acme.example", "pl" },
    { "TO:<\"\"@acme.example>", "TO", "\"\"@acme.example", "" },
    { "TO:<\"a..b\"@acme.example>", "TO", "\"a..b\"@acme.example", "a..b" },
    { "TO:<@relay.example:\"x y\"@acme.example>", "TO", "\"x y\"@acme.example", "x y" },
    { "FROM:<\"a> SIZE=1 BODY=8BITMIME\"@b.example>", "FROM",
      "\"a> SIZE=1 BODY=8BITMIME\"@b.example", "a> SIZE=1 BODY=8BITMIME" },
    { "FROM:<\"u@v\"@[192.0.2.1]>", "FROM", "\"u@v\"@[192.0.2.1]", "u@v" },
};

static void test_wire_round_trip(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_(wire_cases); i++) {
        const char *kw = wire_cases[i].kw;
        int rcpt = kw[0] == 'T';
        struct smtp_mailbox mb, again;
        struct smtp_params p;
        char wire[ADDR_WIRE_MAX + 1], arg[ADDR_WIRE_MAX + 16];
        int n;

        if (smtp_parse_path(wire_cases[i].arg, strlen(wire_cases[i].arg), kw, rcpt, &mb,
                            &p) != SMTP_PATH_OK)
            fail_msg("wire case %zu: %s does not parse", i, wire_cases[i].arg);
        assert_string_equal(mb.local, wire_cases[i].local);
        n = addr_format(mb.local, mb.domain, wire, sizeof wire);
        if (n < 0 || strcmp(wire, wire_cases[i].wire) != 0)
            fail_msg("wire case %zu: %s gives '%s', want '%s'", i, wire_cases[i].arg,
                     n < 0 ? "(error)" : wire, wire_cases[i].wire);
        /* the wire form parses back into the same mailbox and no parameter */
        n = snprintf(arg, sizeof arg, "%s:<%s>", kw, wire);
        if (smtp_parse_path(arg, (size_t)n, kw, rcpt, &again, &p) != SMTP_PATH_OK)
            fail_msg("wire case %zu: '%s' does not parse back", i, arg);
        assert_string_equal(again.local, mb.local);
        assert_string_equal(again.domain, mb.domain);
        assert_false(p.has_size || p.body_8bit);
        assert_true(addr_is_canon(wire));
    }
}

/* ---- HELO, clean lines ----------------------------------------------------- */

static const struct { const char *arg; size_t len; int rc; } helo_cases[] = {
    { S("mail.example.com"), 0 },
    { S("mail.example.com (some text after)"), 0 },
    { S("Mail.Example.COM."), 0 },
    { S("localhost"), 0 },
    { S("my_pc"), 0 },
    { S("[192.0.2.1]"), 0 },
    { S("[IPv6:2001:db8::1]"), 0 },
    { S(""), -1 },
    { S(" host"), -1 },
    { S(".host"), -1 },
    { S("a..b"), -1 },
    { S("."), -1 },
    { S("bad\x01host"), -1 },
    { S("host\x7f"), -1 },
    { S("h\xc3\xa9.example"), -1 },
    { S("host.example \xff"), -1 },
    { S("host\0"), -1 },
    { S("[1.2.3]"), -1 },
    { S("[192.0.2.1"), -1 },
    { S("[192.0.2.1]x"), -1 },
    { S("<foo>"), -1 },
    { S("a@b.example"), -1 },
    { S("a/b"), -1 },
};

static void test_helo(void **state)
{
    char big[300];
    size_t i;

    (void)state;
    for (i = 0; i < N_(helo_cases); i++)
        if (smtp_parse_helo(helo_cases[i].arg, helo_cases[i].len) != helo_cases[i].rc)
            fail_msg("helo case %zu \"%s\": want %d", i, helo_cases[i].arg, helo_cases[i].rc);
    make_domain(big, 255);
    assert_int_equal(smtp_parse_helo(big, 255), 0);
    make_domain(big, 256);
    assert_int_equal(smtp_parse_helo(big, 256), -1);
}

static const struct { const char *buf; size_t len; int rc; } clean_cases[] = {
    { S("MAIL FROM:<a@b>\r\n"), 0 },
    { S("\r\n"), 0 },
    { S("abc\n"), -1 },
    { S("\n"), -1 },
    { S("abc\r\r\n"), -1 },
    { S("a\rb\r\n"), -1 },
    { S("a\nb\r\n"), -1 },
    { S("\r\n\r\n"), -1 },
};

static void test_line_is_clean(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < N_(clean_cases); i++)
        if (smtp_line_is_clean(clean_cases[i].buf, clean_cases[i].len) != clean_cases[i].rc)
            fail_msg("clean case %zu: want %d", i, clean_cases[i].rc);
}

/* ---- DATA decoder ------------------------------------------------------------ */

#define SAME UINT64_MAX                 /* expected size = expected output length */

struct data_case {
    const char *name;
    const char *in;
    size_t inlen;
    uint64_t max_size, line_limit, header_limit;
    unsigned max_received;
    const char *out;
    size_t outlen;
    enum smtp_data_err err;
    int done;
    const char *rest;                   /* the bytes left unconsumed */
    size_t restlen;
    uint64_t size;
    unsigned received;
    int eightbit;
};

/* Runs of ten bytes, for long lines the decoder accounts in bulk. */
#define X10 "xxxxxxxxxx"
#define Y10 "yyyyyyyyyy"

static const struct data_case data_cases[] = {
    { "normal", S("Subject: hi\r\nFrom: a@b\r\n\r\nHello\r\nWorld\r\n.\r\nQUIT\r\n"), 0, 0, 0, 0,
      S("Subject: hi\r\nFrom: a@b\r\n\r\nHello\r\nWorld\r\n"), SMTP_DATA_OK, 1, S("QUIT\r\n"), SAME, 0, 0 },
    { "dot-stuffing", S("..x\r\n.y\r\na.b\r\n..\r\n...\r\n.\r\n"), 0, 0, 0, 0,
      S(".x\r\ny\r\na.b\r\n.\r\n..\r\n"), SMTP_DATA_OK, 1, S(""), SAME, 0, 0 },
    { "empty", S(".\r\n"), 0, 0, 0, 0, S(""), SMTP_DATA_OK, 1, S(""), SAME, 0, 0 },
    { "empty, pipelined", S(".\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n"), 0, 0, 0, 0,
      S(""), SMTP_DATA_OK, 1, S("MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n"), SAME, 0, 0 },
    { "one empty line", S("\r\n.\r\nRSET\r\n"), 0, 0, 0, 0, S("\r\n"), SMTP_DATA_OK, 1, S("RSET\r\n"), SAME, 0, 0 },
    { "unfinished", S("hello\r\n"), 0, 0, 0, 0, S("hello\r\n"), SMTP_DATA_OK, 0, S(""), SAME, 0, 0 },
    { "held CR", S("hello\r"), 0, 0, 0, 0, S("hello"), SMTP_DATA_OK, 0, S(""), SAME, 0, 0 },
    { "held dot", S("hello\r\n."), 0, 0, 0, 0, S("hello\r\n"), SMTP_DATA_OK, 0, S(""), SAME, 0, 0 },
    { "held dot CR", S("hello\r\n.\r"), 0, 0, 0, 0, S("hello\r\n"), SMTP_DATA_OK, 0, S(""), SAME, 0, 0 },
    { "dot not at line start", S("a.\r\n .\r\n.\r\n"), 0, 0, 0, 0, S("a.\r\n .\r\n"), SMTP_DATA_OK, 1, S(""), SAME, 0, 0 },
    { "marker twice", S("x\r\n.\r\n.\r\n"), 0, 0, 0, 0, S("x\r\n"), SMTP_DATA_OK, 1, S(".\r\n"), SAME, 0, 0 },
    { "dot CR CR LF", S(".\r\r\n.\r\n"), 0, 0, 0, 0, S(""), SMTP_DATA_BARE_NL, 1, S(""), 3, 0, 0 },
    { "NUL", S("a\0b\r\n.\r\n"), 0, 0, 0, 0, S("a"), SMTP_DATA_NUL, 1, S(""), 5, 0, 0 },
    { "bare LF", S("a\nb\r\n.\r\n"), 0, 0, 0, 0, S("a"), SMTP_DATA_BARE_NL, 1, S(""), 5, 0, 0 },
    { "bare CR", S("a\rb\r\n.\r\n"), 0, 0, 0, 0, S("a"), SMTP_DATA_BARE_NL, 1, S(""), 5, 0, 0 },
    { "bare LF first", S("\n.\r\n.\r\n"), 0, 0, 0, 0, S(""), SMTP_DATA_BARE_NL, 1, S(""), 4, 0, 0 },
    { "NUL then bare LF", S("\0\n\r\n.\r\n"), 0, 0, 0, 0, S(""), SMTP_DATA_NUL, 1, S(""), 4, 0, 0 },
    { "8bit", S("caf\xc3\xa9\r\n.\r\n"), 0, 0, 0, 0, S("caf\xc3\xa9\r\n"), SMTP_DATA_OK, 1, S(""), SAME, 0, 1 },
    { "size at limit", S("hello\r\n.\r\n"), 7, 0, 0, 0, S("hello\r\n"), SMTP_DATA_OK, 1, S(""), SAME, 0, 0 },
    { "size over at CRLF", S("hello\r\n.\r\n"), 6, 0, 0, 0, S("hello"), SMTP_DATA_TOO_BIG, 1, S(""), 7, 0, 0 },
    { "size over mid-line", S("hello\r\n.\r\nQUIT\r\n"), 3, 0, 0, 0, S("hel"), SMTP_DATA_TOO_BIG, 1, S("QUIT\r\n"), 7, 0, 0 },
    { "size counts un-stuffed", S("..\r\n.\r\n"), 3, 0, 0, 0, S(".\r\n"), SMTP_DATA_OK, 1, S(""), SAME, 0, 0 },
    { "line at limit", S("hello\r\n..abcd\r\n.\r\n"), 0, 5, 0, 0, S("hello\r\n.abcd\r\n"), SMTP_DATA_OK, 1, S(""), SAME, 0, 0 },
    { "line over", S("hello!\r\nx\r\n.\r\n"), 0, 5, 0, 0, S("hello"), SMTP_DATA_LINE_TOO_LONG, 1, S(""), 11, 0, 0 },
    { "header at limit", S("Subject: 0123456789\r\n\r\nbody\r\n.\r\n"), 0, 0, 21, 0,
      S("Subject: 0123456789\r\n\r\nbody\r\n"), SMTP_DATA_OK, 1, S(""), SAME, 0, 0 },
    { "header over", S("Subject: 0123456789\r\n\r\nbody\r\n.\r\n"), 0, 0, 20, 0,
      S("Subject: 0123456789"), SMTP_DATA_HEADER_TOO_BIG, 1, S(""), 29, 0, 0 },
    { "header continuation counts", S("A: b\r\n  continued\r\n\r\n.\r\n"), 0, 0, 12, 0,
      S("A: b\r\n  cont"), SMTP_DATA_HEADER_TOO_BIG, 1, S(""), 21, 0, 0 },
    { "body not in header", S("A: b\r\n\r\nSubject: a long line in the body\r\n.\r\n"), 0, 0, 10, 0,
      S("A: b\r\n\r\nSubject: a long line in the body\r\n"), SMTP_DATA_OK, 1, S(""), SAME, 0, 0 },
    { "header ends at non-field", S("A: b\r\nno colon here at all\r\nX: yyyyyyyyyyyyyy\r\n.\r\n"), 0, 0, 10, 0,
      S("A: b\r\nno colon here at all\r\nX: yyyyyyyyyyyyyy\r\n"), SMTP_DATA_OK, 1, S(""), SAME, 0, 0 },
    { "loop", S("Received: a\r\nReceived: b\r\nReceived: c\r\n\r\nx\r\n.\r\n"), 0, 0, 0, 2,
      S("Received: a\r\nReceived: b\r\nReceived"), SMTP_DATA_LOOP, 1, S(""), 44, 3, 0 },
    { "received at limit", S("Received: a\r\nreceived: b\r\n\r\nx\r\n.\r\n"), 0, 0, 0, 2,
      S("Received: a\r\nreceived: b\r\n\r\nx\r\n"), SMTP_DATA_OK, 1, S(""), SAME, 2, 0 },
    { "received variants",
      S("Received: a\r\nRECEIVED : b\r\nX-Received: c\r\nReceivedx: d\r\n\treceived: e\r\n\r\nReceived: body\r\n.\r\n"),
      0, 0, 0, 0,
      S("Received: a\r\nRECEIVED : b\r\nX-Received: c\r\nReceivedx: d\r\n\treceived: e\r\n\r\nReceived: body\r\n"),
      SMTP_DATA_OK, 1, S(""), SAME, 2, 0 },
    { "second Received over", S("Received: a\r\nRECEIVED : b\r\n\r\n.\r\n"), 0, 0, 0, 1,
      S("Received: a\r\nRECEIVED "), SMTP_DATA_LOOP, 1, S(""), 29, 2, 0 },
    { "continuation first is body", S(" x\r\nReceived: a\r\nReceived: b\r\n.\r\n"), 0, 0, 0, 1,
      S(" x\r\nReceived: a\r\nReceived: b\r\n"), SMTP_DATA_OK, 1, S(""), SAME, 0, 0 },
    { "no colon ends header", S("Received x\r\nReceived: y\r\n.\r\n"), 0, 0, 0, 0,
      S("Received x\r\nReceived: y\r\n"), SMTP_DATA_OK, 1, S(""), SAME, 0, 0 },
    { "limits with 8bit body", S("A: b\r\n\r\n\x80\x81\r\n.\r\n"), 100, 100, 100, 1,
      S("A: b\r\n\r\n\x80\x81\r\n"), SMTP_DATA_OK, 1, S(""), SAME, 0, 1 },
    /* limits crossed inside a long run of plain bytes: same byte as ever */
    { "line at limit, long run", S("\r\n" X10 X10 X10 X10 "\r\n.\r\n"), 0, 40, 0, 0,
      S("\r\n" X10 X10 X10 X10 "\r\n"), SMTP_DATA_OK, 1, S(""), SAME, 0, 0 },
    { "line over inside a long run", S("A: b\r\n\r\n" X10 X10 X10 X10 X10 X10 "\r\n.\r\n"), 0, 40, 0, 0,
      S("A: b\r\n\r\n" X10 X10 X10 X10), SMTP_DATA_LINE_TOO_LONG, 1, S(""), 70, 0, 0 },
    { "size over inside a long run", S("\r\n" X10 X10 X10 X10 X10 X10 "\r\n.\r\nQUIT\r\n"), 50, 0, 0, 0,
      S("\r\n" X10 X10 X10 X10 "xxxxxxxx"), SMTP_DATA_TOO_BIG, 1, S("QUIT\r\n"), 64, 0, 0 },
    { "header over inside a long field", S("Subject: " Y10 Y10 Y10 Y10 "\r\n\r\nbody\r\n.\r\n"), 0, 0, 30, 0,
      S("Subject: " Y10 Y10 "y"), SMTP_DATA_HEADER_TOO_BIG, 1, S(""), 59, 0, 0 },
    { "size and line over on one byte", S("\r\n" X10 X10 X10 "\r\n.\r\n"), 22, 20, 0, 0,
      S("\r\n" X10 X10), SMTP_DATA_TOO_BIG, 1, S(""), 34, 0, 0 },
    { "line and header over on one byte", S("Subject: " Y10 Y10 Y10 "\r\n\r\n.\r\n"), 0, 25, 25, 0,
      S("Subject: " Y10 "yyyyyy"), SMTP_DATA_LINE_TOO_LONG, 1, S(""), 43, 0, 0 },
    { "8bit late in a long line", S("\r\n" X10 X10 X10 X10 "\xc3\xa9" X10 "\r\n.\r\n"), 0, 0, 0, 0,
      S("\r\n" X10 X10 X10 X10 "\xc3\xa9" X10 "\r\n"), SMTP_DATA_OK, 1, S(""), SAME, 0, 1 },
    { "NUL after a long run", S("\r\n" X10 X10 "\0xxxxx\r\n.\r\n"), 0, 0, 0, 0,
      S("\r\n" X10 X10), SMTP_DATA_NUL, 1, S(""), 30, 0, 0 },
    { "Received after a long field", S("X-Long: " Y10 Y10 Y10 "\r\nReceived: " Y10 Y10 "\r\n\r\n.\r\n"),
      0, 0, 0, 0, S("X-Long: " Y10 Y10 Y10 "\r\nReceived: " Y10 Y10 "\r\n\r\n"), SMTP_DATA_OK, 1, S(""), SAME, 1, 0 },
};

struct sink {
    char buf[1024];
    size_t n;
    unsigned calls;
};

static void sink_emit(void *arg, const char *p, size_t n)
{
    struct sink *s = arg;

    if (n == 0)
        fail_msg("emit called with 0 bytes");
    if (s->n + n > sizeof s->buf)
        fail_msg("emit overflows the test sink");
    memcpy(s->buf + s->n, p, n);
    s->n += n;
    s->calls++;
}

struct data_result {
    struct sink out;
    struct smtp_data d;
    size_t consumed;
    int done;
};

/* Feeds in[0..len) in pieces of `chunk` bytes (0: all at once), except that
 * the first piece is `first` bytes when first > 0. */
static void data_run(const struct data_case *c, const char *in, size_t len, size_t chunk,
                     size_t first, struct data_result *r)
{
    size_t off = 0;

    memset(r, 0, sizeof *r);
    smtp_data_init(&r->d, c->max_size, c->line_limit, c->header_limit, c->max_received);
    while (off < len && !r->done) {
        size_t n = len - off, used;

        if (first > 0 && off == 0)
            n = first;
        else if (chunk > 0 && n > chunk)
            n = chunk;
        used = smtp_data_feed(&r->d, in + off, n, sink_emit, &r->out, &r->done);
        if (used > n || (!r->done && used != n))
            fail_msg("%s: feed consumed %zu of %zu", c->name, used, n);
        r->consumed += used;
        off += n;
    }
}

static void data_expect(const struct data_case *c, const char *how, const struct data_result *r)
{
    uint64_t size = c->size == SAME ? c->outlen : c->size;

    if (r->out.n != c->outlen || memcmp(r->out.buf, c->out, c->outlen) != 0)
        fail_msg("%s (%s): output \"%.*s\"", c->name, how, (int)r->out.n, r->out.buf);
    if (r->d.err != c->err || r->done != c->done || r->consumed != c->inlen - c->restlen)
        fail_msg("%s (%s): err=%d done=%d consumed=%zu", c->name, how, r->d.err, r->done, r->consumed);
    if (r->d.size != size || r->d.received != c->received || r->d.eightbit != c->eightbit)
        fail_msg("%s (%s): size=%llu received=%u eightbit=%d", c->name, how,
                 (unsigned long long)r->d.size, r->d.received, r->d.eightbit);
}

/* Whole, 1 byte at a time, 2-3 byte pieces, and split in two at every offset. */
static void data_check(const struct data_case *c)
{
    struct data_result r;
    char how[32];
    size_t k;

    data_run(c, c->in, c->inlen, 0, 0, &r);
    data_expect(c, "whole", &r);
    for (k = 1; k <= 3; k++) {
        snprintf(how, sizeof how, "%zu-byte chunks", k);
        data_run(c, c->in, c->inlen, k, 0, &r);
        data_expect(c, how, &r);
    }
    for (k = 1; k < c->inlen; k++) {
        snprintf(how, sizeof how, "split at %zu", k);
        data_run(c, c->in, c->inlen, 0, k, &r);
        data_expect(c, how, &r);
    }
}

static void test_data_table(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < N_(data_cases); i++)
        data_check(&data_cases[i]);
}

static size_t append(char *buf, size_t n, const char *p, size_t len)
{
    memcpy(buf + n, p, len);
    return n + len;
}

/* Every SMTP smuggling probe, then a pipelined transaction, more data and the
 * real end: the decoder must not stop early, must flag the message, and must
 * leave exactly the bytes after the real CR LF "." CR LF. */
static void test_data_smuggling(void **state)
{
    /* dropped: 1 when the probe's dot follows a real CR LF (so it is removed) */
    static const struct {
        const char *probe;
        size_t len;
        enum smtp_data_err err;
        const char *tail;               /* what is emitted after "hello" */
        size_t dropped;
    } probes[] = {
        { S("\n.\n"), SMTP_DATA_BARE_NL, "", 0 },
        { S("\r.\r"), SMTP_DATA_BARE_NL, "", 0 },
        { S("\r.\n"), SMTP_DATA_BARE_NL, "", 0 },
        { S("\n.\r"), SMTP_DATA_BARE_NL, "", 0 },
        { S("\n.\r\n"), SMTP_DATA_BARE_NL, "", 0 },
        { S("\r\n.\n"), SMTP_DATA_BARE_NL, "\r\n", 1 },
        { S("\r.\r\n"), SMTP_DATA_BARE_NL, "", 0 },
        { S("\r\n.\r"), SMTP_DATA_BARE_NL, "\r\n", 1 },
        { S("\r\n\0.\r\n"), SMTP_DATA_NUL, "\r\n", 0 },
    };
    static const char head[] = "From: a@b\r\nSubject: x\r\n\r\nhello";
    static const char smuggled[] = "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nsmuggled\r\nmore data";
    static const char end[] = "\r\n.\r\n";
    static const char after[] = "QUIT\r\n";
    size_t i;

    (void)state;
    for (i = 0; i < N_(probes); i++) {
        char in[256], out[64], name[48];
        int with_end;

        for (with_end = 0; with_end <= 1; with_end++) {
            struct data_case c = { name, in, 0, 0, 0, 0, 0, out, 0, probes[i].err, with_end, "", 0, 0, 0, 0 };
            size_t n = 0;

            n = append(in, n, head, sizeof head - 1);
            n = append(in, n, probes[i].probe, probes[i].len);
            n = append(in, n, smuggled, sizeof smuggled - 1);
            /* decoded size: every byte before the marker's dot, minus a
             * dot dropped at the start of a real line */
            c.size = n + 2 - probes[i].dropped;
            if (with_end) {
                n = append(in, n, end, sizeof end - 1);
                n = append(in, n, after, sizeof after - 1);
                c.rest = after;
                c.restlen = sizeof after - 1;
            } else {
                c.size -= 2;
            }
            c.inlen = n;
            c.outlen = (size_t)snprintf(out, sizeof out, "%s%s", head, probes[i].tail);
            snprintf(name, sizeof name, "smuggling probe %zu%s", i, with_end ? "" : " (no end)");
            data_check(&c);
        }
    }
}

/* Runs are emitted in pieces, not a call per byte; a finished decoder takes
 * nothing more; emit may be NULL. */
static void test_data_misc(void **state)
{
    static const char msg[] = "Subject: hi\r\n\r\nline one\r\nline two\r\n.\r\nQUIT\r\n";
    struct smtp_data d;
    struct sink s;
    int done;
    size_t used;

    (void)state;
    memset(&s, 0, sizeof s);
    smtp_data_init(&d, 0, 0, 0, 0);
    used = smtp_data_feed(&d, msg, sizeof msg - 1, sink_emit, &s, &done);
    assert_int_equal(done, 1);
    assert_int_equal(used, sizeof msg - 1 - 6);
    assert_int_equal(s.calls, 1);
    used = smtp_data_feed(&d, "QUIT\r\n", 6, sink_emit, &s, &done);
    assert_int_equal(used, 0);
    assert_int_equal(done, 1);
    assert_int_equal(s.calls, 1);

    smtp_data_init(&d, 0, 0, 0, 0);
    used = smtp_data_feed(&d, msg, sizeof msg - 1, NULL, NULL, &done);
    assert_int_equal(done, 1);
    assert_int_equal(used, sizeof msg - 1 - 6);
    assert_int_equal(d.size, sizeof msg - 1 - 6 - 3);

    smtp_data_init(&d, 0, 0, 0, 0);         /* done may be NULL */
    used = smtp_data_feed(&d, msg, sizeof msg - 1, NULL, NULL, NULL);
    assert_int_equal(used, sizeof msg - 1 - 6);

    smtp_data_init(&d, 0, 0, 0, 0);
    used = smtp_data_feed(&d, "", 0, sink_emit, &s, &done);
    assert_int_equal(used, 0);
    assert_int_equal(done, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_commands),
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_path_misc),
        cmocka_unit_test(test_path_lengths),
        cmocka_unit_test(test_wire_round_trip),
        cmocka_unit_test(test_helo),
        cmocka_unit_test(test_line_is_clean),
        cmocka_unit_test(test_data_table),
        cmocka_unit_test(test_data_smuggling),
        cmocka_unit_test(test_data_misc),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

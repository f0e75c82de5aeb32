/*
 * test_smtp_command — the SMTP server's command table (src/smtp/session.c)
 * through its pure part, smtp_command_refusal(): for a verb, a state, the
 * needs the session meets and an argument, the exact reply the table gives
 * by itself (and whether it is a bad command), or none when the command's
 * handler is to run.  Table-driven; also checks the table's shape: a row
 * for every verb, each row found under the verb its name parses to, and a
 * wrong-state reply for every command state a row does not allow.  The
 * SMTP_NEED_TLS and SMTP_NEED_AUTH replies (the submission and smtps
 * listeners' requirements) are also checked end to end in
 * tests/integration/test_smtp_auth.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/smtp/smtp_int.h"

#define N_(a) (sizeof(a) / sizeof((a)[0]))

#define ALL (SMTP_NEED_TLS_AVAIL | SMTP_NEED_PLAIN | SMTP_NEED_HELO | SMTP_NEED_TLS | \
             SMTP_NEED_AUTH | SMTP_NEED_SMTP)
#define NOHELO (ALL & ~SMTP_NEED_HELO)      /* what a session in SS_INIT meets */
/* the same on an odmr listener */
#define ODMR ((ALL & ~SMTP_NEED_SMTP) | SMTP_NEED_ODMR)
#define ODMR_NOHELO (ODMR & ~SMTP_NEED_HELO)

#define HELO_FIRST "503 5.5.1 Error: send HELO/EHLO first"
#define NEED_MAIL "503 5.5.1 Error: need MAIL command"
#define NEED_RCPT "503 5.5.1 Error: need RCPT command"
#define NESTED "503 5.5.1 Error: nested MAIL command"
#define IN_TXN "503 5.5.1 Error: MAIL transaction in progress"
#define NOT_IMPL "502 5.5.1 Error: command not implemented"
#define TLS_ACTIVE "554 5.5.1 Error: TLS already active"
#define TLS_SYNTAX "501 5.5.4 Syntax: STARTTLS"
#define MUST_TLS "530 5.7.0 Must issue a STARTTLS command first"
#define MUST_AUTH "530 5.7.0 Authentication required"
#define THROUGH NULL                        /* the handler runs */

static const struct gate_case {
    enum smtp_verb verb;
    enum smtp_state state;
    unsigned met;
    const char *arg;
    const char *reply;                      /* THROUGH: no refusal */
    int bad;
} cases[] = {
    { SMTP_V_EHLO, SS_INIT, NOHELO, "client.example", THROUGH, 0 },
    { SMTP_V_EHLO, SS_MAIL, ALL, "", "501 Syntax: EHLO hostname", 1 },
    { SMTP_V_HELO, SS_RCPT, ALL, "", "501 Syntax: HELO hostname", 1 },
    { SMTP_V_HELO, SS_RCPT, 0, "client.example", THROUGH, 0 },
    /* MAIL: HELO first, then the listener's TLS, then its AUTH, then state */
    { SMTP_V_MAIL, SS_INIT, NOHELO, "FROM:<a@b.example>", HELO_FIRST, 1 },
    { SMTP_V_MAIL, SS_HELO, ALL, "FROM:<a@b.example>", THROUGH, 0 },
    { SMTP_V_MAIL, SS_HELO, ALL & ~(SMTP_NEED_TLS_AVAIL | SMTP_NEED_PLAIN), "FROM:<>",
      THROUGH, 0 },
    { SMTP_V_MAIL, SS_MAIL, ALL, "FROM:<a@b.example>", NESTED, 1 },
    { SMTP_V_MAIL, SS_RCPT, ALL, "FROM:<a@b.example> FROB=1", NESTED, 1 },
    { SMTP_V_MAIL, SS_HELO, ALL & ~SMTP_NEED_TLS, "FROM:<a@b.example>", MUST_TLS, 1 },
    { SMTP_V_MAIL, SS_HELO, ALL & ~SMTP_NEED_AUTH, "FROM:<a@b.example>", MUST_AUTH, 1 },
    { SMTP_V_MAIL, SS_HELO, ALL & ~(SMTP_NEED_TLS | SMTP_NEED_AUTH), "FROM:<>", MUST_TLS, 1 },
    { SMTP_V_MAIL, SS_INIT, NOHELO & ~(SMTP_NEED_TLS | SMTP_NEED_AUTH), "FROM:<>",
      HELO_FIRST, 1 },
    /* RCPT and DATA: their state only */
    { SMTP_V_RCPT, SS_INIT, NOHELO, "TO:<b@c.example>", NEED_MAIL, 1 },
    { SMTP_V_RCPT, SS_HELO, ALL, "TO:<b@c.example>", NEED_MAIL, 1 },
    { SMTP_V_RCPT, SS_HELO, SMTP_NEED_SMTP, "TO:<b@c.example>", NEED_MAIL, 1 },
    { SMTP_V_RCPT, SS_MAIL, SMTP_NEED_SMTP, "TO:<b@c.example>", THROUGH, 0 },
    { SMTP_V_RCPT, SS_RCPT, ALL, "", THROUGH, 0 },
    { SMTP_V_DATA, SS_INIT, NOHELO, "", NEED_RCPT, 1 },
    { SMTP_V_DATA, SS_HELO, ALL, "x", NEED_RCPT, 1 },      /* state before syntax */
    { SMTP_V_DATA, SS_MAIL, ALL, "x", THROUGH, 0 },        /* handler: 554, no recipients */
    { SMTP_V_DATA, SS_RCPT, ALL, "", THROUGH, 0 },
    { SMTP_V_DATA, SS_RCPT, SMTP_NEED_SMTP, "x", THROUGH, 0 },  /* handler: 501 syntax */
    /* ETRN: HELO first, then no transaction */
    { SMTP_V_ETRN, SS_INIT, NOHELO, "acme.example", HELO_FIRST, 1 },
    { SMTP_V_ETRN, SS_HELO, ALL, "acme.example", THROUGH, 0 },
    { SMTP_V_ETRN, SS_HELO, ALL & ~(SMTP_NEED_TLS | SMTP_NEED_AUTH), "", THROUGH, 0 },
    { SMTP_V_ETRN, SS_MAIL, ALL, "acme.example", IN_TXN, 1 },
    { SMTP_V_ETRN, SS_RCPT, ALL, "acme.example", IN_TXN, 1 },
    /* STARTTLS (Postfix's order): offered, not yet TLS, syntax, then state */
    { SMTP_V_STARTTLS, SS_HELO, ALL & ~SMTP_NEED_TLS_AVAIL, "", NOT_IMPL, 1 },
    { SMTP_V_STARTTLS, SS_MAIL, ALL & ~SMTP_NEED_TLS_AVAIL, "x", NOT_IMPL, 1 },
    { SMTP_V_STARTTLS, SS_INIT, 0, "", NOT_IMPL, 1 },
    { SMTP_V_STARTTLS, SS_HELO, ALL & ~SMTP_NEED_PLAIN, "", TLS_ACTIVE, 0 },
    { SMTP_V_STARTTLS, SS_RCPT, ALL & ~SMTP_NEED_PLAIN, "x", TLS_ACTIVE, 0 },
    { SMTP_V_STARTTLS, SS_MAIL, ALL, "x", TLS_SYNTAX, 0 },
    { SMTP_V_STARTTLS, SS_INIT, NOHELO, "x", TLS_SYNTAX, 0 },
    { SMTP_V_STARTTLS, SS_MAIL, ALL, "", IN_TXN, 1 },
    { SMTP_V_STARTTLS, SS_RCPT, ALL, "", IN_TXN, 1 },
    { SMTP_V_STARTTLS, SS_INIT, SMTP_NEED_TLS_AVAIL | SMTP_NEED_PLAIN, "", THROUGH, 0 },
    { SMTP_V_STARTTLS, SS_HELO, ALL, "", THROUGH, 0 },
    /* AUTH: after EHLO, outside a transaction, with a mechanism; its
     * handler (src/smtp/auth.c) answers what depends on the listener */
    { SMTP_V_AUTH, SS_HELO, ALL, "PLAIN", THROUGH, 0 },
    { SMTP_V_AUTH, SS_HELO, ALL & ~(SMTP_NEED_TLS | SMTP_NEED_AUTH), "PLAIN AGFAAGI=",
      THROUGH, 0 },
    { SMTP_V_AUTH, SS_INIT, NOHELO, "PLAIN", HELO_FIRST, 1 },
    { SMTP_V_AUTH, SS_HELO, ALL, "", "501 5.5.4 Syntax: AUTH mechanism", 1 },
    { SMTP_V_AUTH, SS_MAIL, ALL, "LOGIN", IN_TXN, 1 },
    { SMTP_V_AUTH, SS_RCPT, ALL, "LOGIN", IN_TXN, 1 },
    /* known verbs not implemented */
    { SMTP_V_EXPN, SS_HELO, ALL, "staff", NOT_IMPL, 1 },
    { SMTP_V_BDAT, SS_RCPT, ALL, "10 LAST", NOT_IMPL, 1 },
    /* ATRN: on odmr listeners only, after EHLO and AUTH (RFC 2645: 530) */
    { SMTP_V_ATRN, SS_INIT, NOHELO, "", NOT_IMPL, 1 },
    { SMTP_V_ATRN, SS_HELO, ALL, "acme.example", NOT_IMPL, 1 },
    { SMTP_V_ATRN, SS_INIT, ODMR_NOHELO, "", HELO_FIRST, 1 },
    { SMTP_V_ATRN, SS_HELO, ODMR & ~SMTP_NEED_AUTH, "", MUST_AUTH, 1 },
    { SMTP_V_ATRN, SS_HELO, ODMR, "acme.example,acme.co.uk", THROUGH, 0 },
    /* odmr listeners take no mail: MAIL, RCPT, DATA, VRFY, ETRN before anything */
    { SMTP_V_MAIL, SS_HELO, ODMR, "FROM:<a@b.example>", NOT_IMPL, 1 },
    { SMTP_V_MAIL, SS_INIT, ODMR_NOHELO & ~SMTP_NEED_AUTH, "FROM:<>", NOT_IMPL, 1 },
    { SMTP_V_RCPT, SS_HELO, ODMR, "TO:<b@c.example>", NOT_IMPL, 1 },
    { SMTP_V_DATA, SS_HELO, ODMR, "", NOT_IMPL, 1 },
    { SMTP_V_VRFY, SS_HELO, ODMR, "bob", NOT_IMPL, 1 },
    { SMTP_V_ETRN, SS_HELO, ODMR, "acme.example", NOT_IMPL, 1 },
    { SMTP_V_AUTH, SS_HELO, ODMR & ~SMTP_NEED_AUTH, "CRAM-MD5", THROUGH, 0 },
    { SMTP_V_EHLO, SS_INIT, ODMR_NOHELO, "client.example", THROUGH, 0 },
};

static void test_gate(void **state)
{
    char what[128];
    for (size_t i = 0; i < N_(cases); i++) {
        const struct gate_case *k = &cases[i];
        const struct smtp_command *c = smtp_command_find(k->verb);
        assert_non_null(c);
        snprintf(what, sizeof what, "case %zu: %s in state %d, met %#x, arg \"%s\"", i,
                 c->name, (int)k->state, k->met, k->arg);
        const struct smtp_refusal *r = smtp_command_refusal(c, k->met, k->state, k->arg,
                                                            strlen(k->arg));
        if (!k->reply) {
            if (r)
                fail_msg("%s: refused with \"%s\"", what, r->reply);
            continue;
        }
        if (!r)
            fail_msg("%s: let through, wanted \"%s\"", what, k->reply);
        if (strcmp(r->reply, k->reply) != 0 || r->bad != k->bad)
            fail_msg("%s: got \"%s\" (bad %d), wanted \"%s\" (bad %d)", what, r->reply,
                     r->bad, k->reply, k->bad);
    }
}

/* RSET, NOOP, QUIT, VRFY, HELP need nothing and run in every command state. */
static void test_anywhere(void **state)
{
    static const enum smtp_verb verbs[] = {
        SMTP_V_RSET, SMTP_V_NOOP, SMTP_V_QUIT, SMTP_V_VRFY, SMTP_V_HELP,
    };
    for (size_t i = 0; i < N_(verbs); i++)
        for (int st = SS_INIT; st <= SS_RCPT; st++) {
            const struct smtp_command *c = smtp_command_find(verbs[i]);
            assert_non_null(c);
            assert_null(smtp_command_refusal(c, SMTP_NEED_SMTP, (enum smtp_state)st, "", 0));
            assert_null(smtp_command_refusal(c, ALL, (enum smtp_state)st, "x", 1));
        }
}

/* No row (a verb the table does not know) is 502, a bad command. */
static void test_no_row(void **state)
{
    assert_null(smtp_command_find(SMTP_V_UNKNOWN));
    const struct smtp_refusal *r = smtp_command_refusal(NULL, ALL, SS_HELO, "", 0);
    assert_non_null(r);
    assert_string_equal(r->reply, NOT_IMPL);
    assert_int_equal(r->bad, 1);
}

/* Every verb has one row, found under the verb its name parses to, and a
 * row that runs somewhere has a reply for each command state it refuses. */
static void test_table_shape(void **state)
{
    for (int v = SMTP_V_HELO; v <= SMTP_V_ATRN; v++) {
        const struct smtp_command *c = smtp_command_find((enum smtp_verb)v);
        struct smtp_cmd cmd;
        assert_non_null(c);
        assert_int_equal(c->verb, v);
        assert_int_equal(smtp_parse_command(c->name, strlen(c->name), &cmd), 0);
        assert_int_equal(cmd.verb, v);
        assert_int_equal(c->states & ~SS_COMMANDS, 0);
        if (!c->proceed)
            continue;
        assert_int_not_equal(c->states, 0);
        for (int st = SS_INIT; st <= SS_RCPT; st++) {
            if (c->states & SS_BIT(st))
                continue;
            if (!c->wrong_state.reply)
                fail_msg("%s: no reply for state %d", c->name, st);
            assert_true(c->wrong_state.reply[0] == '5');
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gate),
        cmocka_unit_test(test_anywhere),
        cmocka_unit_test(test_no_row),
        cmocka_unit_test(test_table_shape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_smtp_atrn — ATRN's argument (RFC 2645, smtp_parse_atrn in
 * src/smtp/parse_atrn.c), table-driven: the domains it gives (lower-cased,
 * duplicates once, spaces around commas allowed) or its refusal (syntax,
 * too many), with the bounds on count (SMTP_ATRN_MAX) and length
 * (SMTP_ATRN_DOMAIN_MAX) checked at their edges.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "smtp/smtp_parse.h"

#define N_(a) (sizeof(a) / sizeof((a)[0]))

static const struct atrn_case {
    const char *arg;
    enum smtp_atrn_result want;
    const char *domains;            /* the result joined with "|" */
} cases[] = {
    { "", SMTP_ATRN_OK, "" },
    { "   ", SMTP_ATRN_OK, "" },
    { "acme.example", SMTP_ATRN_OK, "acme.example" },
    { "ACME.Example", SMTP_ATRN_OK, "acme.example" },
    { "acme.example,acme.co.uk", SMTP_ATRN_OK, "acme.example|acme.co.uk" },
    { "acme.example, acme.co.uk", SMTP_ATRN_OK, "acme.example|acme.co.uk" },
    { " acme.example ,acme.co.uk ", SMTP_ATRN_OK, "acme.example|acme.co.uk" },
    { "acme.example,ACME.example", SMTP_ATRN_OK, "acme.example" },
    { "localhost", SMTP_ATRN_OK, "localhost" },
    { "a-b.example", SMTP_ATRN_OK, "a-b.example" },
    { ",", SMTP_ATRN_SYNTAX, NULL },
    { "acme.example,", SMTP_ATRN_SYNTAX, NULL },
    { ",acme.example", SMTP_ATRN_SYNTAX, NULL },
    { "acme.example,,b.example", SMTP_ATRN_SYNTAX, NULL },
    { "acme..example", SMTP_ATRN_SYNTAX, NULL },
    { ".acme.example", SMTP_ATRN_SYNTAX, NULL },
    { "acme.example.", SMTP_ATRN_SYNTAX, NULL },
    { "acme example", SMTP_ATRN_SYNTAX, NULL },
    { "@acme.example", SMTP_ATRN_SYNTAX, NULL },
    { "#acme", SMTP_ATRN_SYNTAX, NULL },
    { "acme.example;b.example", SMTP_ATRN_SYNTAX, NULL },
    { "[192.0.2.1]", SMTP_ATRN_SYNTAX, NULL },
    { "\xc3\xa9t\xc3\xa9.example", SMTP_ATRN_SYNTAX, NULL },
};

static void join(const struct smtp_atrn *a, char *out, size_t len)
{
    out[0] = 0;
    for (size_t i = 0; i < a->n; i++)
        snprintf(out + strlen(out), len - strlen(out), "%s%s", i ? "|" : "", a->domain[i]);
}

static void test_table(void **state)
{
    char got[1024];
    for (size_t i = 0; i < N_(cases); i++) {
        struct smtp_atrn a;
        enum smtp_atrn_result r = smtp_parse_atrn(cases[i].arg, strlen(cases[i].arg), &a);
        if (r != cases[i].want)
            fail_msg("case %zu \"%s\": got %d, wanted %d", i, cases[i].arg, r, cases[i].want);
        if (r == SMTP_ATRN_OK) {
            join(&a, got, sizeof got);
            if (strcmp(got, cases[i].domains))
                fail_msg("case %zu \"%s\": got \"%s\", wanted \"%s\"", i, cases[i].arg, got,
                         cases[i].domains);
        } else {
            assert_int_equal(a.n, 0);
            assert_null(a.buf);
        }
        smtp_atrn_free(&a);
    }
}

/* A NUL inside the argument is a syntax error, not the end of it. */
static void test_nul(void **state)
{
    struct smtp_atrn a;
    assert_int_equal(smtp_parse_atrn("a.example\0b.example", 19, &a), SMTP_ATRN_SYNTAX);
    /* the length given is what counts: a prefix parses on its own */
    assert_int_equal(smtp_parse_atrn("a.example,b.example", 9, &a), SMTP_ATRN_OK);
    assert_int_equal(a.n, 1);
    assert_string_equal(a.domain[0], "a.example");
    smtp_atrn_free(&a);
}

/* SMTP_ATRN_MAX distinct domains pass, one more is refused; duplicates
 * do not count. */
static void test_count(void **state)
{
    char arg[4096] = "";
    struct smtp_atrn a;
    for (int i = 0; i < SMTP_ATRN_MAX; i++)
        snprintf(arg + strlen(arg), sizeof arg - strlen(arg), "%sd%d.example", i ? "," : "", i);
    assert_int_equal(smtp_parse_atrn(arg, strlen(arg), &a), SMTP_ATRN_OK);
    assert_int_equal(a.n, SMTP_ATRN_MAX);
    smtp_atrn_free(&a);
    strcat(arg, ",d0.example,D1.EXAMPLE");
    assert_int_equal(smtp_parse_atrn(arg, strlen(arg), &a), SMTP_ATRN_OK);
    assert_int_equal(a.n, SMTP_ATRN_MAX);
    smtp_atrn_free(&a);
    strcat(arg, ",one-more.example");
    assert_int_equal(smtp_parse_atrn(arg, strlen(arg), &a), SMTP_ATRN_TOO_MANY);
    assert_null(a.buf);
}

/* A domain of SMTP_ATRN_DOMAIN_MAX bytes passes, one byte more does not. */
static void test_length(void **state)
{
    char d[SMTP_ATRN_DOMAIN_MAX + 2];
    struct smtp_atrn a;
    memset(d, 'a', sizeof d);
    for (size_t i = 50; i < SMTP_ATRN_DOMAIN_MAX - 1; i += 51)
        d[i] = '.';
    d[SMTP_ATRN_DOMAIN_MAX] = 0;
    assert_int_equal(smtp_parse_atrn(d, strlen(d), &a), SMTP_ATRN_OK);
    assert_int_equal(strlen(a.domain[0]), SMTP_ATRN_DOMAIN_MAX);
    smtp_atrn_free(&a);
    d[SMTP_ATRN_DOMAIN_MAX] = 'a';
    d[SMTP_ATRN_DOMAIN_MAX + 1] = 0;
    assert_int_equal(smtp_parse_atrn(d, strlen(d), &a), SMTP_ATRN_SYNTAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_nul),
        cmocka_unit_test(test_count),
        cmocka_unit_test(test_length),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_addr — addr.c, the RFC 5321 wire form of addresses: local parts
 * quoted exactly when they are not a Dot-string, '"' and '\' escaped;
 * stored addresses brought back to the wire form, including the unquoted
 * form older spools hold; every result a fixed point of addr_canon();
 * control bytes, missing '@', unsafe domains and short buffers refused.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "core/addr.h"

#define N_(a) (sizeof(a) / sizeof((a)[0]))

/* Checks that out ends exactly at its closing quote: after the local part
 * comes "@domain" and nothing in the local part can end the path early. */
static void assert_safe(const char *wire)
{
    const char *p = wire;
    if (*p == '"') {
        for (p++; *p != '"'; p++) {
            assert_true(*p >= 32 && *p <= 126);
            if (*p == '\\')
                p++;
        }
        p++;
    } else {
        while (*p && *p != '@') {
            assert_true(*p > 32 && *p <= 126 && !strchr("<>\" \\(),;:[]", *p));
            p++;
        }
    }
    assert_int_equal(*p, '@');
    assert_null(strchr(p + 1, '@'));
    assert_null(strpbrk(p + 1, " <>\"\\"));
}

static void test_quote(void **state)
{
    static const struct { const char *local, *wire; } cases[] = {
        { "bob", "bob" },
        { "first.last", "first.last" },
        { "a+tag", "a+tag" },
        { "!#$%&'*+-/=?^_`{|}~", "!#$%&'*+-/=?^_`{|}~" },
        { "a> NOTIFY=SUCCESS", "\"a> NOTIFY=SUCCESS\"" },
        { "a>b", "\"a>b\"" },
        { "x y", "\"x y\"" },
        { "a\"b", "\"a\\\"b\"" },
        { "a\\", "\"a\\\\\"" },
        { "\\\"", "\"\\\\\\\"\"" },
        { "", "\"\"" },
        { ".a", "\".a\"" },
        { "a.", "\"a.\"" },
        { "a..b", "\"a..b\"" },
        { "a@b", "\"a@b\"" },
        { "(c)", "\"(c)\"" },
        { "a,b;c:d", "\"a,b;c:d\"" },
        { "<x>", "\"<x>\"" },
        { " ", "\" \"" },
    };
    char out[ADDR_LOCAL_WIRE_MAX + 1];
    (void)state;
    for (size_t i = 0; i < N_(cases); i++) {
        int n = addr_quote(cases[i].local, strlen(cases[i].local), out, sizeof out);
        if (n < 0 || strcmp(out, cases[i].wire) != 0 || (size_t)n != strlen(out))
            fail_msg("quote case %zu '%s': %d '%s', want '%s'", i, cases[i].local, n,
                     n < 0 ? "" : out, cases[i].wire);
    }
}

static void test_quote_refused(void **state)
{
    static const char *const bad[] = { "a\tb", "a\rb", "a\nb", "a\x7f", "\x01", "caf\xc3\xa9" };
    char out[ADDR_LOCAL_WIRE_MAX + 1], big[70];
    (void)state;
    for (size_t i = 0; i < N_(bad); i++)
        if (addr_quote(bad[i], strlen(bad[i]), out, sizeof out) != -1)
            fail_msg("quote of bad case %zu accepted: '%s'", i, out);
    assert_int_equal(addr_quote("a\0b", 3, out, sizeof out), -1);  /* NUL inside */
    /* buffer bounds: exact fit, one byte short */
    assert_int_equal(addr_quote("bob", 3, out, 4), 3);
    assert_int_equal(addr_quote("bob", 3, out, 3), -1);
    assert_int_equal(addr_quote("a\"", 2, out, 6), 5);              /* "a\"" */
    assert_int_equal(addr_quote("a\"", 2, out, 5), -1);
    assert_int_equal(addr_quote("", 0, out, 0), -1);
    /* 64 bytes all escaped: the longest wire form fits its macro */
    memset(big, '"', 64);
    assert_int_equal(addr_quote(big, 64, out, sizeof out), ADDR_LOCAL_WIRE_MAX);
}

static void test_format(void **state)
{
    static const struct { const char *local, *domain, *wire; } cases[] = {
        { "bob", "acme.example", "bob@acme.example" },
        { "a> NOTIFY=SUCCESS", "acme.example", "\"a> NOTIFY=SUCCESS\"@acme.example" },
        { "u", "[192.0.2.1]", "u@[192.0.2.1]" },
        { "u", "[IPv6:2001:db8::1]", "u@[IPv6:2001:db8::1]" },
        { "a@b", "x.example", "\"a@b\"@x.example" },
        { "bob", "my_pc.example", "bob@my_pc.example" },
        { "bob", "", NULL },
        { "bob", "a b.example", NULL },
        { "bob", "a>b.example", NULL },
        { "bob", "a@b.example", NULL },
        { "bob", "a\"b", NULL },
        { "a\nb", "acme.example", NULL },
    };
    char out[ADDR_WIRE_MAX + 1];
    (void)state;
    for (size_t i = 0; i < N_(cases); i++) {
        int n = addr_format(cases[i].local, cases[i].domain, out, sizeof out);
        if (!cases[i].wire) {
            if (n != -1)
                fail_msg("format case %zu accepted: '%s'", i, out);
            continue;
        }
        if (n < 0 || strcmp(out, cases[i].wire) != 0 || (size_t)n != strlen(out))
            fail_msg("format case %zu: %d '%s', want '%s'", i, n, n < 0 ? "" : out,
                     cases[i].wire);
        assert_safe(out);
    }
    assert_int_equal(addr_format("bob", "b.example", out, 14), 13);
    assert_int_equal(addr_format("bob", "b.example", out, 13), -1);
}

/* Stored addresses: the wire form (kept), needlessly quoted (unquoted),
 * and the unquoted form of older spools (quoted). */
static void test_canon(void **state)
{
    static const struct { const char *in, *out; } cases[] = {
        { "", "" },
        { "bob@acme.example", "bob@acme.example" },
        { "Bob.Smith@Acme.Example", "Bob.Smith@Acme.Example" },     /* case kept */
        { "\"a> NOTIFY=SUCCESS\"@acme.example", "\"a> NOTIFY=SUCCESS\"@acme.example" },
        { "\"x y\"@acme.example", "\"x y\"@acme.example" },
        { "\"a\\\"b\"@acme.example", "\"a\\\"b\"@acme.example" },
        { "\"a\\\\\"@acme.example", "\"a\\\\\"@acme.example" },
        { "\"\"@acme.example", "\"\"@acme.example" },
        { "\"plain\"@acme.example", "plain@acme.example" },
        { "\"\\p\\l\"@acme.example", "pl@acme.example" },
        { "\"a\\ b\"@acme.example", "\"a b\"@acme.example" },
        { "\"a@b\"@x.example", "\"a@b\"@x.example" },
        /* older spools: the unquoted form */
        { "a> NOTIFY=SUCCESS@acme.example", "\"a> NOTIFY=SUCCESS\"@acme.example" },
        { "a>b@acme.example", "\"a>b\"@acme.example" },
        { "x y@acme.example", "\"x y\"@acme.example" },
        { "a\"b@acme.example", "\"a\\\"b\"@acme.example" },
        { "a\\@acme.example", "\"a\\\\\"@acme.example" },
        { "@acme.example", "\"\"@acme.example" },
        { "a@b@x.example", "\"a@b\"@x.example" },           /* last '@' is the domain's */
        { "\"a\\\"@acme.example", "\"\\\"a\\\\\\\"\"@acme.example" },  /* escaped closing quote */
        { "\"a\"b\"@acme.example", "\"\\\"a\\\"b\\\"\"@acme.example" },
        { "\"a@acme.example", "\"\\\"a\"@acme.example" },
        { "u@[192.0.2.1]", "u@[192.0.2.1]" },
        /* no wire form */
        { "bob", NULL },
        { "bob@", NULL },
        { "bob@a b", NULL },
        { "bob@a>b", NULL },
        { "a\r\nb@acme.example", NULL },
        { "a\x7f@acme.example", NULL },
    };
    char out[ADDR_WIRE_MAX + 1], again[ADDR_WIRE_MAX + 1];
    (void)state;
    for (size_t i = 0; i < N_(cases); i++) {
        int n = addr_canon(cases[i].in, out, sizeof out);
        if (!cases[i].out) {
            if (n != -1)
                fail_msg("canon case %zu '%s' accepted: '%s'", i, cases[i].in, out);
            assert_false(addr_is_canon(cases[i].in));
            continue;
        }
        if (n < 0 || strcmp(out, cases[i].out) != 0 || (size_t)n != strlen(out))
            fail_msg("canon case %zu '%s': %d '%s', want '%s'", i, cases[i].in, n,
                     n < 0 ? "" : out, cases[i].out);
        if (out[0])
            assert_safe(out);
        /* a fixed point */
        assert_int_equal(addr_canon(out, again, sizeof again), n);
        assert_string_equal(again, out);
        assert_true(addr_is_canon(out));
        assert_int_equal(addr_is_canon(cases[i].in), strcmp(cases[i].in, out) == 0);
    }
}

/* Every local part of printable ASCII up to 4 bytes long (over a small
 * alphabet holding every special case) formats into something safe that
 * addr_canon() keeps as it is and that unquotes back to the original. */
static void test_exhaustive(void **state)
{
    static const char alpha[] = "a.\"\\ >@(";
    const size_t k = sizeof alpha - 1;
    char local[5], out[ADDR_WIRE_MAX + 1], again[ADDR_WIRE_MAX + 1];
    size_t total = 0;
    (void)state;
    for (size_t len = 0; len <= 4; len++) {
        size_t combos = 1;
        for (size_t j = 0; j < len; j++)
            combos *= k;
        for (size_t c = 0; c < combos; c++) {
            size_t v = c;
            for (size_t j = 0; j < len; j++, v /= k)
                local[j] = alpha[v % k];
            local[len] = '\0';
            int n = addr_format(local, "x.example", out, sizeof out);
            assert_true(n > 0);
            assert_safe(out);
            assert_int_equal(addr_canon(out, again, sizeof again), n);
            assert_string_equal(again, out);
            /* unquoting gives the original back */
            char raw[16];
            size_t r = 0;
            const char *p = out;
            if (*p == '"') {
                for (p++; *p != '"'; p++) {
                    if (*p == '\\')
                        p++;
                    raw[r++] = *p;
                }
            } else {
                while (*p != '@')
                    raw[r++] = *p++;
            }
            raw[r] = '\0';
            assert_string_equal(raw, local);
            total++;
        }
    }
    assert_int_equal(total, 1 + 8 + 64 + 512 + 4096);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quote),
        cmocka_unit_test(test_quote_refused),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_canon),
        cmocka_unit_test(test_exhaustive),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

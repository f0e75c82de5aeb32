/*
 * test_auth_sasl_mech — the SASL pieces SMTP AUTH adds to auth/sasl: LOGIN
 * responses (sasl_text_decode: a table of texts accepted and refused, NUL
 * / CR / LF / empty / 256 bytes / bad base64), CRAM-MD5 (the RFC 2195
 * example end to end: challenge text, response parsed, HMAC checked; a
 * table of malformed responses; a wrong secret, digit or challenge), and
 * base64 encoding round trips.  Every input is given in an exact-size heap
 * copy so that ASan sees a read past its end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "auth/sasl.h"

/* base64 of n bytes of raw (via the encoder under test, checked against
 * known texts in test_b64_encode). */
static char *enc(const void *raw, size_t n)
{
    char *out = malloc(n / 3 * 4 + 8);
    assert_true(sasl_b64_encode(raw, n, out, n / 3 * 4 + 8) >= 0);
    return out;
}

/* An exact-size heap copy of s (no NUL after it). */
static char *exact(const char *s)
{
    char *p = malloc(strlen(s) ? strlen(s) : 1);
    memcpy(p, s, strlen(s));
    return p;
}

static void test_b64_encode(void **st)
{
    static const struct { const char *in, *out; } t[] = {
        { "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
        { "foob", "Zm9vYg==" }, { "Username:", "VXNlcm5hbWU6" },
        { "Password:", "UGFzc3dvcmQ6" },
    };
    char out[64];
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        assert_int_equal(sasl_b64_encode(t[i].in, strlen(t[i].in), out, sizeof out),
                         (long)strlen(t[i].out));
        assert_string_equal(out, t[i].out);
    }
    assert_int_equal(sasl_b64_encode("foo", 3, out, 4), -1);   /* no room for the NUL */
    unsigned char raw[3];
    assert_int_equal(sasl_b64_decode("Zm9v", 4, raw, sizeof raw), 3);
    assert_memory_equal(raw, "foo", 3);
    assert_int_equal(sasl_b64_decode("Zm9vYg==", 8, raw, sizeof raw), -1);  /* no room */
}

static void test_login_text(void **st)
{
    static const struct { const char *raw; size_t n; int ok; } t[] = {
        { "acme", 4, 0 }, { "alice@isp.example", 17, 0 }, { "p\xc3\xa4ss word", 10, 0 },
        { "", 0, -1 }, { "a\0b", 3, -1 }, { "a\rb", 3, -1 }, { "a\nb", 3, -1 },
        { "\n", 1, -1 },
    };
    char out[SASL_FIELD_MAX + 1];
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        char *b = t[i].n ? enc(t[i].raw, t[i].n) : strdup("");
        char *e = exact(b);
        int rc = sasl_text_decode(e, strlen(b), out, sizeof out);
        assert_int_equal(rc, t[i].ok);
        if (rc == 0)
            assert_memory_equal(out, t[i].raw, t[i].n + 1);
        else
            assert_string_equal(out, "");
        free(e);
        free(b);
    }
    static const char *const bad[] = { "*", "=", "YWNtZQ", "YWNt ZQ==", "YW!tZQ==",
                                       "YWNtZR==" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *e = exact(bad[i]);
        assert_int_equal(sasl_text_decode(e, strlen(bad[i]), out, sizeof out), -1);
        free(e);
    }
    char big[SASL_FIELD_MAX + 1];
    memset(big, 'x', sizeof big);
    char *b = enc(big, SASL_FIELD_MAX);
    assert_int_equal(sasl_text_decode(b, strlen(b), out, sizeof out), 0);
    assert_int_equal(sasl_text_decode(b, strlen(b), out, SASL_FIELD_MAX), -1); /* no room */
    free(b);
    b = enc(big, SASL_FIELD_MAX + 1);
    assert_int_equal(sasl_text_decode(b, strlen(b), out, sizeof out), -1);
    free(b);
}

/* RFC 2195's example. */
#define RFC_CHALLENGE "<1896.697170952@postoffice.reston.mci.net>"
#define RFC_RESPONSE  "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw"

static void test_cram_rfc2195(void **st)
{
    char ch[128], user[SASL_FIELD_MAX + 1], hex[SASL_CRAM_HEX + 1];
    assert_int_equal(sasl_cram_challenge(1896, 697170952, "postoffice.reston.mci.net",
                                         ch, sizeof ch), 0);
    assert_string_equal(ch, RFC_CHALLENGE);
    assert_int_equal(sasl_cram_challenge(1896, 697170952, "postoffice.reston.mci.net",
                                         ch, strlen(RFC_CHALLENGE)), -1);
    char *e = exact(RFC_RESPONSE);
    assert_int_equal(sasl_cram_parse(e, strlen(RFC_RESPONSE), user, sizeof user, hex), 0);
    free(e);
    assert_string_equal(user, "tim");
    assert_string_equal(hex, "b913a602c7eda7a495b4e6e7334d3890");
    assert_int_equal(sasl_cram_verify("tanstaaftanstaaf", RFC_CHALLENGE, hex), 1);
    assert_int_equal(sasl_cram_verify("tanstaaftanstaaF", RFC_CHALLENGE, hex), 0);
    assert_int_equal(sasl_cram_verify("tanstaaftanstaaf", "<1897.697170952@x>", hex), 0);
    hex[31] = '1';
    assert_int_equal(sasl_cram_verify("tanstaaftanstaaf", RFC_CHALLENGE, hex), 0);
    assert_int_equal(sasl_cram_verify(NULL, RFC_CHALLENGE, hex), 0);
}

static void test_cram_parse_table(void **st)
{
    static const struct { const char *raw; int ok; const char *user; } t[] = {
        { "tim B913A602C7EDA7A495B4E6E7334D3890", 0, "tim" },    /* upper-case hex */
        { "a b b913a602c7eda7a495b4e6e7334d3890", 0, "a b" },    /* last space splits */
        { "b913a602c7eda7a495b4e6e7334d3890", -1, "" },          /* no user */
        { " b913a602c7eda7a495b4e6e7334d3890", -1, "" },         /* empty user */
        { "tim b913a602c7eda7a495b4e6e7334d389", -1, "" },       /* 31 digits */
        { "tim b913a602c7eda7a495b4e6e7334d38900", -1, "" },     /* 33 digits */
        { "tim g913a602c7eda7a495b4e6e7334d3890", -1, "" },      /* not hex */
        { "tim b913a602c7eda7a495b4e6e7334d3890 ", -1, "" },     /* trailing space */
        { "t\rm b913a602c7eda7a495b4e6e7334d3890", -1, "" },     /* CR */
    };
    char user[SASL_FIELD_MAX + 1], hex[SASL_CRAM_HEX + 1];
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        char *b = enc(t[i].raw, strlen(t[i].raw));
        char *e = exact(b);
        assert_int_equal(sasl_cram_parse(e, strlen(b), user, sizeof user, hex), t[i].ok);
        assert_string_equal(user, t[i].user);
        if (t[i].ok == 0)
            assert_string_equal(hex, "b913a602c7eda7a495b4e6e7334d3890");
        else
            assert_string_equal(hex, "");
        free(e);
        free(b);
    }
    /* a NUL inside, and a user that does not fit its buffer */
    char *b = enc("t\0m b913a602c7eda7a495b4e6e7334d3890", 36);
    assert_int_equal(sasl_cram_parse(b, strlen(b), user, sizeof user, hex), -1);
    free(b);
    b = enc("tim b913a602c7eda7a495b4e6e7334d3890", 36);
    assert_int_equal(sasl_cram_parse(b, strlen(b), user, 3, hex), -1);
    assert_int_equal(sasl_cram_parse(b, strlen(b), user, 4, hex), 0);
    free(b);
    assert_int_equal(sasl_cram_parse("*", 1, user, sizeof user, hex), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64_encode),
        cmocka_unit_test(test_login_text),
        cmocka_unit_test(test_cram_rfc2195),
        cmocka_unit_test(test_cram_parse_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

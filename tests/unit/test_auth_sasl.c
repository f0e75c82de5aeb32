/*
 * test_auth_sasl — sasl_plain_decode: the RFC 4616 examples; a table of
 * messages (encoded here) accepted or refused: separators, empty fields,
 * CR / LF / a third NUL, 255- and 256-byte fields, 8-bit bytes; a table of
 * base64 texts refused (bad characters, white space, missing or misplaced
 * padding, unused bits set, too long, "=" and "*"); buffers too small by
 * one byte; every input in an exact-size heap copy (ASan sees a read past
 * its end) and every proper prefix of the accepted ones (no crash; a
 * length not a multiple of 4 refused); outputs cleared on failure.
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

#define F (SASL_FIELD_MAX + 1)

/* base64 of in[0..n) into out (room for n / 3 * 4 + 5), NUL-terminated, by
 * the module's own encoder (checked against known texts in
 * test_auth_sasl_mech.c). */
static size_t b64_encode(const unsigned char *in, size_t n, char *out)
{
    long len = sasl_b64_encode(in, n, out, n / 3 * 4 + 5);
    if (len < 0)
        abort();
    return (size_t)len;
}

/* sasl_plain_decode on an exact-size heap copy of b64[0..len). */
static int decode(const char *b64, size_t len, char *z, size_t zs, char *c, size_t cs,
                  char *p, size_t ps)
{
    char *copy = malloc(len ? len : 1);
    memcpy(copy, b64, len);
    int rc = sasl_plain_decode(copy, len, z, zs, c, cs, p, ps);
    free(copy);
    return rc;
}

static void expect_cleared(const char *z, const char *c, const char *p)
{
    assert_string_equal(z, "");
    assert_string_equal(c, "");
    assert_string_equal(p, "");
}

static void test_rfc4616_examples(void **state)
{
    char z[F], c[F], p[F];
    /* "\0tim\0tanstaaftanstaaf" */
    const char *ex1 = "AHRpbQB0YW5zdGFhZnRhbnN0YWFm";
    assert_int_equal(decode(ex1, strlen(ex1), z, F, c, F, p, F), 0);
    assert_string_equal(z, "");
    assert_string_equal(c, "tim");
    assert_string_equal(p, "tanstaaftanstaaf");
    /* "Ursel\0Kurt\0xipj3plmq" */
    const char *ex2 = "VXJzZWwAS3VydAB4aXBqM3BsbXE=";
    assert_int_equal(decode(ex2, strlen(ex2), z, F, c, F, p, F), 0);
    assert_string_equal(z, "Ursel");
    assert_string_equal(c, "Kurt");
    assert_string_equal(p, "xipj3plmq");
}

struct msg_case {
    const char *m;
    size_t n;                       /* bytes of m (it holds NULs) */
    int ok;
    const char *z, *c, *p;
};
#define M(s) s, sizeof s - 1

static void test_messages(void **state)
{
    static char f255[256], f256[257], big[3 * 256 + 8];
    memset(f255, 'a', 255);
    memset(f256, 'b', 256);
    const struct msg_case cases[] = {
        { M("\0alice@isp.example\0secret"), 1, "", "alice@isp.example", "secret" },
        { M("admin\0alice\0pw"), 1, "admin", "alice", "pw" },
        { M("\0a\0b"), 1, "", "a", "b" },
        { M("\0a\0p w\tx"), 1, "", "a", "p w\tx" },    /* space and TAB pass */
        { M("\0m\xc3\xbcller\0p\xe4ss"), 1, "", "m\xc3\xbcller", "p\xe4ss" },
        { M("\0a\0=*"), 1, "", "a", "=*" },
        { M(""), 0, 0, 0, 0 },
        { M("alice"), 0, 0, 0, 0 },                     /* no NUL */
        { M("\0alice"), 0, 0, 0, 0 },                   /* one NUL */
        { M("\0alice\0"), 0, 0, 0, 0 },                 /* empty passwd */
        { M("\0\0secret"), 0, 0, 0, 0 },                /* empty authcid */
        { M("\0\0"), 0, 0, 0, 0 },
        { M("\0a\0b\0"), 0, 0, 0, 0 },                  /* a third NUL */
        { M("\0a\0b\0c"), 0, 0, 0, 0 },
        { M("z\0a\0b\0"), 0, 0, 0, 0 },
        { M("\0a\0se\rcret"), 0, 0, 0, 0 },             /* CR */
        { M("\0a\0secret\n"), 0, 0, 0, 0 },             /* LF */
        { M("\0a\r\0secret"), 0, 0, 0, 0 },
        { M("\0a\nb\0secret"), 0, 0, 0, 0 },
        { M("z\r\0a\0secret"), 0, 0, 0, 0 },
        { M("\n\0a\0secret"), 0, 0, 0, 0 },
    };
    char b64[2048], z[F], c[F], p[F];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len = b64_encode((const unsigned char *)cases[i].m, cases[i].n, b64);
        strcpy(z, "junk");
        strcpy(c, "junk");
        strcpy(p, "junk");
        int rc = decode(b64, len, z, F, c, F, p, F);
        if (rc != (cases[i].ok ? 0 : -1)) {
            print_error("message %zu (%s): rc %d\n", i, b64, rc);
            fail();
        }
        if (cases[i].ok) {
            assert_string_equal(z, cases[i].z);
            assert_string_equal(c, cases[i].c);
            assert_string_equal(p, cases[i].p);
        } else {
            expect_cleared(z, c, p);
        }
    }
    /* field lengths: 255 is the most, in each field */
    const char *fields[3][3] = {
        { f255, "a", "b" }, { "", f255, "b" }, { "", "a", f255 },
    };
    for (int k = 0; k < 3; k++) {
        for (int over = 0; over < 2; over++) {
            const char *v[3] = { fields[k][0], fields[k][1], fields[k][2] };
            if (over)
                v[k] = f256;
            size_t n = 0;
            for (int j = 0; j < 3; j++) {
                memcpy(big + n, v[j], strlen(v[j]));
                n += strlen(v[j]);
                if (j < 2)
                    big[n++] = 0;
            }
            size_t len = b64_encode((unsigned char *)big, n, b64);
            int rc = decode(b64, len, z, F, c, F, p, F);
            assert_int_equal(rc, over ? -1 : 0);
            if (!over) {
                assert_string_equal(z, v[0]);
                assert_string_equal(c, v[1]);
                assert_string_equal(p, v[2]);
            }
        }
    }
    /* the longest message there is: three fields of 255 */
    size_t n = 0;
    for (int j = 0; j < 3; j++) {
        memcpy(big + n, f255, 255);
        n += 255;
        if (j < 2)
            big[n++] = 0;
    }
    size_t len = b64_encode((unsigned char *)big, n, b64);
    assert_true(len <= SASL_PLAIN_B64_MAX);
    assert_int_equal(decode(b64, len, z, F, c, F, p, F), 0);
    assert_string_equal(p, f255);
}

static void test_bad_base64(void **state)
{
    static const char *cases[] = {
        "",
        "=",                                /* the empty initial response */
        "*",                                /* the client's cancel */
        "AGEAYg",                           /* "\0a\0b" without padding */
        "AGEAYg=",
        "AGEAYg===",
        "AGEA Yg==",                        /* white space */
        "AGEAYg==\r\n",
        " AGEAYg==",
        "AGEAYg==\n",
        "AGEAYg==AAAA",                     /* data after the padding */
        "AGE=AAAA",
        "AG=AYg==",                         /* '=' inside */
        "AGEAYh==",                         /* unused bits set ('h' not 'g') */
        "AGEAYmM=",                         /* "\0a\0bc" is "AGEAYmM=": ok below */
        "AGEAYmN=",                         /* unused bits set */
        "AGEAYg-_",                         /* base64url alphabet */
        "AGEAY\x80==",
        "AGEAYg\0=",
        "====",
        "A===",
    };
    char z[F], c[F], p[F];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len = strlen(cases[i]);
        if (i == 18)
            len = 8;                        /* the NUL inside */
        int want = strcmp(cases[i], "AGEAYmM=") == 0 ? 0 : -1;
        strcpy(p, "junk");
        int rc = decode(cases[i], len, z, F, c, F, p, F);
        if (rc != want) {
            print_error("base64 case %zu \"%s\": rc %d\n", i, cases[i], rc);
            fail();
        }
        if (rc < 0)
            expect_cleared(z, c, p);
    }
    /* too long to be a PLAIN message at all, even when it is valid base64 */
    static char lng[SASL_PLAIN_B64_MAX + 8];
    memset(lng, 'A', SASL_PLAIN_B64_MAX + 4);
    assert_int_equal(decode(lng, SASL_PLAIN_B64_MAX + 4, z, F, c, F, p, F), -1);
    assert_int_equal(sasl_plain_decode(NULL, 0, z, F, c, F, p, F), -1);
}

static void test_small_buffers(void **state)
{
    const char *b64 = "VXJzZWwAS3VydAB4aXBqM3BsbXE=";  /* Ursel / Kurt / xipj3plmq */
    size_t len = strlen(b64);
    char z[F], c[F], p[F];
    /* exactly enough room */
    assert_int_equal(decode(b64, len, z, 6, c, 5, p, 10), 0);
    assert_string_equal(p, "xipj3plmq");
    /* one byte short, in each */
    assert_int_equal(decode(b64, len, z, 5, c, 5, p, 10), -1);
    expect_cleared(z, c, p);
    assert_int_equal(decode(b64, len, z, 6, c, 4, p, 10), -1);
    expect_cleared(z, c, p);
    assert_int_equal(decode(b64, len, z, 6, c, 5, p, 9), -1);
    expect_cleared(z, c, p);
    /* no room for an empty authzid */
    const char *ex1 = "AHRpbQB0YW5zdGFhZnRhbnN0YWFm";
    assert_int_equal(decode(ex1, strlen(ex1), z, 0, c, F, p, F), -1);
    assert_int_equal(decode(ex1, strlen(ex1), z, 1, c, F, p, F), 0);
    assert_string_equal(c, "tim");
}

/* Every proper prefix of accepted inputs: never a crash (ASan), and refused
 * unless its length is a multiple of 4 (then it may be a shorter message). */
static void test_prefixes(void **state)
{
    const char *inputs[] = {
        "AHRpbQB0YW5zdGFhZnRhbnN0YWFm", "VXJzZWwAS3VydAB4aXBqM3BsbXE=", "AGEAYmM=",
    };
    char z[F], c[F], p[F];
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        size_t n = strlen(inputs[i]);
        for (size_t k = 0; k < n; k++) {
            int rc = decode(inputs[i], k, z, F, c, F, p, F);
            if (k % 4)
                assert_int_equal(rc, -1);
            if (rc < 0)
                expect_cleared(z, c, p);
        }
    }
    /* "AHRpbQB0YW5zdGFh" = "\0tim\0tanstaa": a shorter valid message */
    assert_int_equal(decode("AHRpbQB0YW5zdGFhZnRhbnN0YWFm", 16, z, F, c, F, p, F), 0);
    assert_string_equal(p, "tanstaa");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc4616_examples),
        cmocka_unit_test(test_messages),
        cmocka_unit_test(test_bad_base64),
        cmocka_unit_test(test_small_buffers),
        cmocka_unit_test(test_prefixes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

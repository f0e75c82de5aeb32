/*
 * test_util — util.c: durations, sizes (with overflow), HOST:PORT parsing
 * (IPv6 brackets), lower-casing, and the hash map (insert, replace, delete,
 * iterate; many keys, tombstone reuse, case-insensitive keys).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

static void test_duration(void **state)
{
    static const struct { const char *in; int ok; long secs; } cases[] = {
        {"0", 1, 0},
        {"300", 1, 300},
        {"30s", 1, 30},
        {"5m", 1, 300},
        {"12h", 1, 43200},
        {"5d", 1, 432000},
        {"9223372036854775807", 1, LONG_MAX},
        {"106751991167300d", 1, 106751991167300L * 86400},
        {"9223372036854775808", 0, 0},          /* > LONG_MAX */
        {"106751991167301d", 0, 0},             /* overflows after scaling */
        {"99999999999999999999", 0, 0},         /* overflows uint64 */
        {"", 0, 0},
        {"h", 0, 0},
        {"-1", 0, 0},
        {"+1", 0, 0},
        {" 1", 0, 0},
        {"1 ", 0, 0},
        {"5x", 0, 0},
        {"5H", 0, 0},
        {"5mm", 0, 0},
        {"1.5h", 0, 0},
        {"0x10", 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        long v = -12345;
        int rc = util_parse_duration(cases[i].in, &v);
        if (rc != (cases[i].ok ? 0 : -1) || (cases[i].ok && v != cases[i].secs)) {
            print_error("duration \"%s\": rc=%d v=%ld\n", cases[i].in, rc, v);
            fail();
        }
        if (!cases[i].ok)
            assert_int_equal(v, -12345);        /* untouched on failure */
    }
    long v;
    assert_int_equal(util_parse_duration(NULL, &v), -1);
}

static void test_size(void **state)
{
    static const struct { const char *in; int ok; uint64_t bytes; } cases[] = {
        {"0", 1, 0},
        {"10240000", 1, 10240000},
        {"1k", 1, 1024},
        {"500k", 1, 512000},
        {"500K", 1, 512000},
        {"500M", 1, 500ULL << 20},
        {"1G", 1, 1ULL << 30},
        {"18446744073709551615", 1, UINT64_MAX},
        {"17179869183G", 1, 17179869183ULL << 30},
        {"18446744073709551616", 0, 0},         /* UINT64_MAX + 1 */
        {"17179869184G", 0, 0},                 /* 2^64 after scaling */
        {"18014398509481984k", 0, 0},           /* 2^54 k = 2^64 */
        {"", 0, 0},
        {"M", 0, 0},
        {"-1", 0, 0},
        {"5m", 0, 0},                           /* lower-case m is not mega */
        {"5g", 0, 0},
        {"5T", 0, 0},
        {"5MB", 0, 0},
        {"1.5G", 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t v = 777;
        int rc = util_parse_size(cases[i].in, &v);
        if (rc != (cases[i].ok ? 0 : -1) || (cases[i].ok && v != cases[i].bytes)) {
            print_error("size \"%s\": rc=%d v=%llu\n", cases[i].in, rc,
                        (unsigned long long)v);
            fail();
        }
    }
}

static void test_numeric_ip(void **state)
{
    assert_true(util_numeric_ip("192.0.2.1"));
    assert_true(util_numeric_ip("::1"));
    assert_true(util_numeric_ip("2001:db8::25"));
    assert_false(util_numeric_ip("192.0.2.300"));
    assert_false(util_numeric_ip("[::1]"));
    assert_false(util_numeric_ip("mx.example"));
    assert_false(util_numeric_ip(""));
}

static void test_hostport(void **state)
{
    static const struct { const char *in; int ok; const char *host; int port; } cases[] = {
        {"127.0.0.1:25", 1, "127.0.0.1", 25},
        {"0.0.0.0:65535", 1, "0.0.0.0", 65535},
        {"mx.example:2525", 1, "mx.example", 2525},
        {"[::]:25", 1, "::", 25},
        {"[::1]:1", 1, "::1", 1},
        {"[2001:db8::25]:587", 1, "2001:db8::25", 587},
        {"h:00025", 1, "h", 25},
        {"::1:25", 0, NULL, 0},                 /* bare IPv6 */
        {"[::1]25", 0, NULL, 0},
        {"[::1]", 0, NULL, 0},
        {"[::1:25", 0, NULL, 0},
        {"[]:25", 0, NULL, 0},
        {"127.0.0.1", 0, NULL, 0},
        {"127.0.0.1:", 0, NULL, 0},
        {":25", 0, NULL, 0},
        {"h:0", 0, NULL, 0},
        {"h:65536", 0, NULL, 0},
        {"h:99999999999999999999", 0, NULL, 0},
        {"h:-1", 0, NULL, 0},
        {"h:+1", 0, NULL, 0},
        {"h:25x", 0, NULL, 0},
        {"h: 25", 0, NULL, 0},
        {"", 0, NULL, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char host[64] = "unset";
        int port = -1;
        int rc = util_parse_hostport(cases[i].in, host, sizeof host, &port);
        int good = rc == (cases[i].ok ? 0 : -1) &&
                   (!cases[i].ok || (!strcmp(host, cases[i].host) &&
                                     port == cases[i].port));
        if (!good) {
            print_error("hostport \"%s\": rc=%d host=%s port=%d\n",
                        cases[i].in, rc, host, port);
            fail();
        }
    }
    /* host buffer too small: fails rather than truncates */
    char small[4];
    int port;
    assert_int_equal(util_parse_hostport("abcd:25", small, sizeof small, &port), -1);
    assert_int_equal(util_parse_hostport("abc:25", small, sizeof small, &port), 0);
    assert_string_equal(small, "abc");
    assert_int_equal(util_parse_hostport("[::12]:25", small, sizeof small, &port), -1);
    assert_int_equal(util_parse_hostport(NULL, small, sizeof small, &port), -1);
}

static void test_strings(void **state)
{
    char s[] = "MiXeD.Example-09";
    assert_ptr_equal(util_lower(s), s);
    assert_string_equal(s, "mixed.example-09");
    char *d = xstrndup("abcdef", 3);
    assert_string_equal(d, "abc");
    free(d);
    d = xstrdup("");
    assert_string_equal(d, "");
    free(d);
    assert_true(util_now_us() > 1600000000LL * 1000000);
    double a = util_now_mono(), b = util_now_mono();
    assert_true(b >= a);
}

#define NKEYS 20000

static char **make_keys(void)
{
    char **keys = xcalloc(NKEYS, sizeof *keys);
    for (int i = 0; i < NKEYS; i++) {
        char buf[32];
        snprintf(buf, sizeof buf, "key-%d.example", i);
        keys[i] = xstrdup(buf);
    }
    return keys;
}

static void free_keys(char **keys)
{
    for (int i = 0; i < NKEYS; i++)
        free(keys[i]);
    free(keys);
}

static void test_hmap_many(void **state)
{
    char **keys = make_keys();
    struct hmap *m = hmap_new(0);
    assert_int_equal(hmap_count(m), 0);
    assert_null(hmap_get(m, "nothing"));
    for (int i = 0; i < NKEYS; i++)
        assert_null(hmap_put(m, keys[i], keys[i]));
    assert_int_equal(hmap_count(m), NKEYS);
    for (int i = 0; i < NKEYS; i++)
        assert_ptr_equal(hmap_get(m, keys[i]), keys[i]);

    /* replace: returns the previous value, count unchanged */
    assert_ptr_equal(hmap_put(m, keys[7], keys[8]), keys[7]);
    assert_ptr_equal(hmap_get(m, keys[7]), keys[8]);
    assert_ptr_equal(hmap_put(m, keys[7], keys[7]), keys[8]);
    assert_int_equal(hmap_count(m), NKEYS);

    /* delete every other key */
    for (int i = 0; i < NKEYS; i += 2)
        assert_ptr_equal(hmap_del(m, keys[i]), keys[i]);
    assert_null(hmap_del(m, keys[0]));
    assert_null(hmap_del(m, "never-there"));
    assert_int_equal(hmap_count(m), NKEYS / 2);
    for (int i = 0; i < NKEYS; i++)
        assert_ptr_equal(hmap_get(m, keys[i]), i % 2 ? keys[i] : NULL);

    /* iterate: every live key exactly once, with its value */
    char *seen = xcalloc(NKEYS, 1);
    size_t pos = 0, n = 0;
    const char *k;
    void *v;
    while (hmap_next(m, &pos, &k, &v)) {
        int idx = atoi(k + 4);
        assert_true(idx % 2 == 1);
        assert_ptr_equal(v, keys[idx]);
        assert_int_equal(seen[idx], 0);
        seen[idx] = 1;
        n++;
    }
    assert_int_equal(n, NKEYS / 2);
    free(seen);

    /* re-insert the deleted ones (tombstones reused), then delete all */
    for (int i = 0; i < NKEYS; i += 2)
        assert_null(hmap_put(m, keys[i], keys[i]));
    assert_int_equal(hmap_count(m), NKEYS);
    for (int i = 0; i < NKEYS; i++)
        assert_ptr_equal(hmap_del(m, keys[i]), keys[i]);
    assert_int_equal(hmap_count(m), 0);
    pos = 0;
    assert_int_equal(hmap_next(m, &pos, NULL, NULL), 0);
    hmap_free(m);
    free_keys(keys);
}

/* Insert/delete churn on a small set must not grow without bound or lose keys. */
static void test_hmap_churn(void **state)
{
    static char keys[8][16];
    struct hmap *m = hmap_new(0);
    for (int i = 0; i < 8; i++)
        snprintf(keys[i], sizeof keys[i], "k%d", i);
    for (int round = 0; round < 100000; round++) {
        char *k = keys[round % 8];
        if (hmap_get(m, k))
            assert_ptr_equal(hmap_del(m, k), k);
        else
            assert_null(hmap_put(m, k, k));
    }
    for (int i = 0; i < 8; i++)
        assert_true(hmap_get(m, keys[i]) == NULL || hmap_get(m, keys[i]) == keys[i]);
    hmap_free(m);
    hmap_free(NULL);
}

static void test_hmap_case(void **state)
{
    struct hmap *ci = hmap_new(1), *cs = hmap_new(0);
    int a, b;
    assert_null(hmap_put(ci, "Acme.Example", &a));
    assert_ptr_equal(hmap_get(ci, "acme.example"), &a);
    assert_ptr_equal(hmap_get(ci, "ACME.EXAMPLE"), &a);
    assert_ptr_equal(hmap_put(ci, "ACME.example", &b), &a);   /* same key */
    assert_int_equal(hmap_count(ci), 1);
    assert_ptr_equal(hmap_del(ci, "acme.EXAMPLE"), &b);
    assert_int_equal(hmap_count(ci), 0);

    assert_null(hmap_put(cs, "Acme", &a));
    assert_null(hmap_put(cs, "acme", &b));
    assert_int_equal(hmap_count(cs), 2);
    assert_ptr_equal(hmap_get(cs, "Acme"), &a);
    assert_ptr_equal(hmap_get(cs, "acme"), &b);
    assert_null(hmap_get(cs, "ACME"));
    hmap_free(ci);
    hmap_free(cs);
}

/* util_log_safe: a table of peer strings and their log forms, and a buffer
 * too small is cut, never overflowed. */
static void test_log_safe(void **state)
{
    (void)state;
    static const struct { const char *in, *out; } rows[] = {
        { "alice@isp.example", "alice@isp.example" },
        { "", "" },
        { "a b", "a\\x20b" },
        { "<x>,y", "\\x3cx\\x3e\\x2cy" },
        { "cr\r\nlf", "cr\\x0d\\x0alf" },
        { "\xc3\xa9", "\\xc3\\xa9" },
    };
    char buf[64];
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        assert_string_equal(util_log_safe(buf, sizeof buf, rows[i].in), rows[i].out);
    char small[8];
    memset(small, 'Z', sizeof small);
    util_log_safe(small, sizeof small, "\x01\x02\x03\x04");
    assert_string_equal(small, "\\x01");     /* one escape fits, the next would not */
    util_wipe_free(NULL);
    util_wipe_free(strdup("secret"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_duration),
        cmocka_unit_test(test_size),
        cmocka_unit_test(test_numeric_ip),
        cmocka_unit_test(test_hostport),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_hmap_many),
        cmocka_unit_test(test_hmap_churn),
        cmocka_unit_test(test_hmap_case),
        cmocka_unit_test(test_log_safe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

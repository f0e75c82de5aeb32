/*
 * test_local_prefix — the pure parts of local delivery: the prefix of
 * header lines (every form, and every address that must be refused), the
 * end of the header section, and the Delivered-To loop check (names in any
 * case, folding, padding, angle brackets, look-alikes that are not a loop,
 * a Delivered-To in the body that must not count), each row a table entry.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "../../src/mta/local_prefix.h"

static void test_prefix(void **state)
{
    static const struct {
        const char *sender, *rcpt;
        int orig;
        const char *want;           /* NULL: refused */
    } rows[] = {
        {"alice@sender.example", "bob@isp.example", 0,
         "Return-Path: <alice@sender.example>\r\nDelivered-To: bob@isp.example\r\n"},
        {"", "bob@isp.example", 0, "Return-Path: <>\r\nDelivered-To: bob@isp.example\r\n"},
        {"a@b.example", "bob@acme.example", 1,
         "Return-Path: <a@b.example>\r\nDelivered-To: bob@acme.example\r\n"
         "X-Original-To: bob@acme.example\r\n"},
        {"\"x y\"@b.example", "\"john doe\"@acme.example", 1,
         "Return-Path: <\"x y\"@b.example>\r\nDelivered-To: \"john doe\"@acme.example\r\n"
         "X-Original-To: \"john doe\"@acme.example\r\n"},
        {"a@b.example", "", 0, NULL},
        {"a@b.example", "bob@isp.example\r\nX-Evil: 1", 0, NULL},
        {"a@b.example", "bob@isp.example\nX-Evil: 1", 1, NULL},
        {"a@b.example\r\nX-Evil: 1", "bob@isp.example", 0, NULL},
        {"a\rb@b.example", "bob@isp.example", 0, NULL},
        {"a@b.example", "bob\x7f@isp.example", 0, NULL},
        {"a@b.example", "b\tob@isp.example", 0, NULL},
        {"a@b.example", "bob\x01@isp.example", 0, NULL},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char out[LOCAL_PREFIX_MAX];
        int n = local_prefix_build(rows[i].sender, rows[i].rcpt, rows[i].orig,
                                   out, sizeof out);
        if (!rows[i].want) {
            if (n != -1) {
                print_error("row %zu: built \"%s\", want refused\n", i, out);
                fail();
            }
            continue;
        }
        if (n < 0 || (size_t)n != strlen(rows[i].want) || strcmp(out, rows[i].want)) {
            print_error("row %zu: got %d \"%s\"\n", i, n, n < 0 ? "" : out);
            fail();
        }
    }
    /* too long an address, too small a buffer */
    char big[600], out[LOCAL_PREFIX_MAX];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = 0;
    assert_int_equal(local_prefix_build(big, "b@c.example", 0, out, sizeof out), -1);
    assert_int_equal(local_prefix_build("a@b.example", big, 1, out, sizeof out), -1);
    assert_int_equal(local_prefix_build("a@b.example", "b@c.example", 0, out, 20), -1);
    assert_int_equal(local_prefix_build(NULL, "b@c.example", 0, out, sizeof out), -1);
    /* the longest allowed addresses fit LOCAL_PREFIX_MAX */
    char a512[513];
    memset(a512, 'a', 512);
    a512[512] = 0;
    int n = local_prefix_build(a512, a512, 1, out, sizeof out);
    assert_true(n > 3 * 512 && n < LOCAL_PREFIX_MAX);
}

static void test_header_len(void **state)
{
    static const struct { const char *msg; size_t want; } rows[] = {
        {"A: 1\r\nB: 2\r\n\r\nbody\r\n", 12},
        {"A: 1\nB: 2\n\nbody\n", 10},
        {"\r\nbody\r\n", 0},
        {"\nbody\n", 0},
        {"A: 1\r\nB: 2\r\n", 12},                /* no body: all of it */
        {"A: 1\r\n folded\r\n\r\nx", 15},
        {"A: 1\r\nB: 2", 10},                    /* no final line end */
        {"", 0},
        {"A: 1\r\n\rx\r\n\r\nbody", 10},         /* a lone CR is not a line end */
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        size_t got = local_header_len(rows[i].msg, strlen(rows[i].msg));
        if (got != rows[i].want) {
            print_error("row %zu: got %zu, want %zu\n", i, got, rows[i].want);
            fail();
        }
    }
}

static void test_loop(void **state)
{
    static const struct { const char *hdr, *rcpt; int want; } rows[] = {
        {"Received: x\r\nDelivered-To: bob@isp.example\r\nSubject: s\r\n", "bob@isp.example", 1},
        {"delivered-to: BOB@ISP.EXAMPLE\r\n", "bob@isp.example", 1},
        {"DELIVERED-TO:bob@isp.example\r\n", "bob@isp.example", 1},
        {"Delivered-To:   <bob@isp.example>  \r\n", "bob@isp.example", 1},
        {"Delivered-To:\r\n bob@isp.example\r\n", "bob@isp.example", 1},      /* folded */
        {"Delivered-To: bob@isp.example", "bob@isp.example", 1},          /* no line end */
        {"Delivered-To: bob@isp.example\n", "bob@isp.example", 1},
        {"Delivered-To: \"john doe\"@acme.example\r\n", "\"john doe\"@acme.example", 1},
        {"Delivered-To: alice@isp.example\r\nDelivered-To: bob@isp.example\r\n",
         "bob@isp.example", 1},
        {"Delivered-To: bob@isp.example\r\n", "alice@isp.example", 0},
        {"Delivered-To: bob@isp.example.org\r\n", "bob@isp.example", 0},
        {"Delivered-To: xbob@isp.example\r\n", "bob@isp.example", 0},
        {"X-Delivered-To: bob@isp.example\r\n", "bob@isp.example", 0},
        {"Delivered-To-Foo: bob@isp.example\r\n", "bob@isp.example", 0},
        {"Subject: Delivered-To: bob@isp.example\r\n", "bob@isp.example", 0},
        {"Subject: x\r\n Delivered-To: bob@isp.example\r\n", "bob@isp.example", 0},  /* a continuation */
        {"X-Original-To: bob@isp.example\r\n", "bob@isp.example", 0},
        {"Delivered-To: bob@isp.example, carol@isp.example\r\n", "bob@isp.example", 0},
        {"", "bob@isp.example", 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        int got = local_loop_found(rows[i].hdr, strlen(rows[i].hdr), rows[i].rcpt);
        if (got != rows[i].want) {
            print_error("row %zu: got %d, want %d\n", i, got, rows[i].want);
            fail();
        }
    }
    /* only the header section given counts: a Delivered-To in the body does not */
    const char *msg = "Subject: s\r\n\r\nDelivered-To: bob@isp.example\r\n";
    size_t h = local_header_len(msg, strlen(msg));
    assert_int_equal(local_loop_found(msg, h, "bob@isp.example"), 0);
    assert_int_equal(local_loop_found(msg, strlen(msg), "bob@isp.example"), 1);
    /* a value longer than any address is no match, and is read safely */
    char big[4096] = "Delivered-To: ";
    memset(big + 14, 'b', sizeof big - 20);
    strcpy(big + sizeof big - 6, "\r\n");
    assert_int_equal(local_loop_found(big, strlen(big), "bob@isp.example"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prefix),
        cmocka_unit_test(test_header_len),
        cmocka_unit_test(test_loop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

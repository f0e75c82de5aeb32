/*
 * test_radius_parse — radius_parse() table-driven: well-formed requests,
 * every length check (header, Length field, attribute lengths, sizes of the
 * attributes used), duplicates, 1-byte truncations (each datagram copied
 * into a buffer of exactly its size, so ASan sees any read past it); the
 * authenticators against vectors computed with Python's hashlib; session
 * ids and NAS names.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "link/radius.h"
#include "link/radius_parse.h"

/* A packet under construction. */
struct pkt {
    unsigned char b[RADIUS_MAX_LEN + 64];
    size_t n;
};

static void pkt_start(struct pkt *p, uint8_t code)
{
    memset(p, 0, sizeof *p);
    p->b[0] = code;
    p->b[1] = 42;
    memset(p->b + 4, 0xab, RADIUS_AUTH_LEN);
    p->n = RADIUS_HDR_LEN;
}

static void pkt_attr(struct pkt *p, uint8_t type, const void *v, size_t len)
{
    p->b[p->n] = type;
    p->b[p->n + 1] = (uint8_t)(len + 2);
    memcpy(p->b + p->n + 2, v, len);
    p->n += len + 2;
}

static void pkt_int(struct pkt *p, uint8_t type, uint32_t v)
{
    unsigned char b[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };
    pkt_attr(p, type, b, 4);
}

static void pkt_str(struct pkt *p, uint8_t type, const char *s)
{
    pkt_attr(p, type, s, strlen(s));
}

/* Sets the Length field to the packet's size. */
static void pkt_end(struct pkt *p)
{
    p->b[2] = (uint8_t)(p->n >> 8);
    p->b[3] = (uint8_t)p->n;
}

/* radius_parse over an exact-size heap copy of buf[0..len). */
static enum radius_bad parse_exact(const unsigned char *buf, size_t len, struct radius_acct *a)
{
    unsigned char *copy = malloc(len ? len : 1);
    memcpy(copy, buf, len);
    enum radius_bad r = radius_parse(copy, len, a);
    free(copy);
    return r;
}

/* A Start with everything the listener reads. */
static void good_start(struct pkt *p)
{
    static const unsigned char ip[4] = { 192, 0, 2, 9 }, nasip[4] = { 198, 51, 100, 1 };
    static const unsigned char v6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 9 };
    pkt_start(p, RADIUS_CODE_ACCT_REQUEST);
    pkt_int(p, RADIUS_A_STATUS, RADIUS_START);
    pkt_str(p, RADIUS_A_USER_NAME, "acme");
    pkt_str(p, RADIUS_A_SESSION_ID, "0000001F");
    pkt_str(p, RADIUS_A_NAS_ID, "nas1");
    pkt_attr(p, RADIUS_A_NAS_IP, nasip, 4);
    pkt_attr(p, RADIUS_A_FRAMED_IP, ip, 4);
    pkt_attr(p, RADIUS_A_FRAMED_IPV6, v6, 16);
    pkt_int(p, RADIUS_A_DELAY, 5);
    pkt_str(p, 26, "\x00\x00\x00\x09vendor");     /* ignored */
    pkt_str(p, 26, "\x00\x00\x00\x09again");      /* twice: not ours, fine */
    pkt_end(p);
}

static void test_good(void **state)
{
    struct pkt p;
    struct radius_acct a;
    good_start(&p);
    assert_int_equal(parse_exact(p.b, p.n, &a), RADIUS_OK);
    assert_int_equal(a.id, 42);
    assert_int_equal(a.length, p.n);
    assert_int_equal(a.status, RADIUS_START);
    assert_int_equal(a.user.len, 4);
    assert_string_equal(a.user.s, "acme");
    assert_string_equal(a.session_id.s, "0000001F");
    assert_string_equal(a.nas_id.s, "nas1");
    assert_true(a.has_nas_ip && a.has_framed_ip && a.has_framed_ipv6 && a.has_delay);
    assert_false(a.has_nas_ipv6);
    assert_int_equal(a.framed_ip[3], 9);
    assert_int_equal(a.framed_ipv6[15], 9);
    assert_int_equal(a.delay, 5);
    assert_memory_equal(a.authenticator, p.b + 4, RADIUS_AUTH_LEN);

    /* the smallest: header and status type */
    pkt_start(&p, RADIUS_CODE_ACCT_REQUEST);
    pkt_int(&p, RADIUS_A_STATUS, RADIUS_ACCT_OFF);
    pkt_end(&p);
    assert_int_equal(parse_exact(p.b, p.n, &a), RADIUS_OK);
    assert_int_equal(a.status, RADIUS_ACCT_OFF);
    assert_int_equal(a.user.len, 0);
    assert_false(a.has_framed_ip || a.has_delay);

    /* a 253-byte User-Name with a NUL inside keeps its length */
    char name[253];
    memset(name, 'u', sizeof name);
    name[5] = 0;
    pkt_start(&p, RADIUS_CODE_ACCT_REQUEST);
    pkt_int(&p, RADIUS_A_STATUS, RADIUS_STOP);
    pkt_attr(&p, RADIUS_A_USER_NAME, name, sizeof name);
    pkt_end(&p);
    assert_int_equal(parse_exact(p.b, p.n, &a), RADIUS_OK);
    assert_int_equal(a.user.len, 253);
    assert_int_equal(a.user.s[253], 0);
}

/* How a bad case is made from a fresh good Start. */
enum edit {
    E_NONE, E_SHORT, E_LEN_SMALL, E_LEN_BIG, E_LEN_19, E_LEN_4097, E_DGRAM_LONGER,
    E_CODE_1, E_CODE_5, E_ATTR_LEN0, E_ATTR_LEN1, E_ATTR_OVER, E_ATTR_HALF,
};

static const struct bad {
    const char *name;
    enum edit edit;
    uint8_t type;               /* an attribute appended before the edit (0: none) */
    size_t len;                 /* its value length */
    enum radius_bad want;
} bads[] = {
    { "19 bytes", E_SHORT, 0, 0, RADIUS_BAD_SHORT },
    { "Length < datagram", E_LEN_SMALL, 0, 0, RADIUS_BAD_LENGTH },
    { "Length > datagram", E_LEN_BIG, 0, 0, RADIUS_BAD_LENGTH },
    { "Length 19", E_LEN_19, 0, 0, RADIUS_BAD_LENGTH },
    { "Length 4097", E_LEN_4097, 0, 0, RADIUS_BAD_LENGTH },
    { "trailing byte", E_DGRAM_LONGER, 0, 0, RADIUS_BAD_LENGTH },
    { "Access-Request", E_CODE_1, 0, 0, RADIUS_BAD_CODE },
    { "Accounting-Response", E_CODE_5, 0, 0, RADIUS_BAD_CODE },
    { "attribute length 0", E_ATTR_LEN0, 0, 0, RADIUS_BAD_ATTR },
    { "attribute length 1", E_ATTR_LEN1, 0, 0, RADIUS_BAD_ATTR },
    { "attribute past the end", E_ATTR_OVER, 0, 0, RADIUS_BAD_ATTR },
    { "half an attribute header", E_ATTR_HALF, 0, 0, RADIUS_BAD_ATTR },
    { "User-Name twice", E_NONE, RADIUS_A_USER_NAME, 3, RADIUS_BAD_DUP },
    { "Acct-Session-Id twice", E_NONE, RADIUS_A_SESSION_ID, 3, RADIUS_BAD_DUP },
    { "Framed-IP twice", E_NONE, RADIUS_A_FRAMED_IP, 4, RADIUS_BAD_DUP },
    { "status twice", E_NONE, RADIUS_A_STATUS, 4, RADIUS_BAD_DUP },
    { "NAS-Identifier twice", E_NONE, RADIUS_A_NAS_ID, 1, RADIUS_BAD_DUP },
    { "empty Message-Authenticator", E_NONE, RADIUS_A_MSG_AUTH, 0, RADIUS_BAD_ATTR },
    { "Framed-IP 3 bytes", E_NONE, RADIUS_A_FRAMED_IP, 3, RADIUS_BAD_ATTR },
    { "Framed-IP 5 bytes", E_NONE, RADIUS_A_FRAMED_IP, 5, RADIUS_BAD_ATTR },
    { "Framed-IPv6 15 bytes", E_NONE, RADIUS_A_FRAMED_IPV6, 15, RADIUS_BAD_ATTR },
    { "NAS-IPv6 17 bytes", E_NONE, RADIUS_A_NAS_IPV6, 17, RADIUS_BAD_ATTR },
    { "NAS-IP 0 bytes", E_NONE, RADIUS_A_NAS_IP, 0, RADIUS_BAD_ATTR },
    { "delay 2 bytes", E_NONE, RADIUS_A_DELAY, 2, RADIUS_BAD_ATTR },
    { "Msg-Auth 15 bytes", E_NONE, RADIUS_A_MSG_AUTH, 15, RADIUS_BAD_ATTR },
};

static void test_bad(void **state)
{
    for (size_t i = 0; i < sizeof bads / sizeof bads[0]; i++) {
        const struct bad *b = &bads[i];
        struct pkt p;
        struct radius_acct a;
        unsigned char v[32];
        memset(v, 'x', sizeof v);
        good_start(&p);
        if (b->type)
            pkt_attr(&p, b->type, v, b->len);
        pkt_end(&p);
        size_t n = p.n;
        switch (b->edit) {
        case E_NONE: break;
        case E_SHORT: n = 19; break;
        case E_LEN_SMALL: p.b[3]--; break;
        case E_LEN_BIG: p.b[3]++; break;
        case E_LEN_19: p.b[2] = 0; p.b[3] = 19; break;
        case E_LEN_4097: p.b[2] = 0x10; p.b[3] = 1; break;
        case E_DGRAM_LONGER: n++; break;
        case E_CODE_1: p.b[0] = 1; break;
        case E_CODE_5: p.b[0] = 5; break;
        case E_ATTR_LEN0: p.b[RADIUS_HDR_LEN + 1] = 0; break;
        case E_ATTR_LEN1: p.b[RADIUS_HDR_LEN + 1] = 1; break;
        case E_ATTR_OVER:
            p.b[n] = 77; p.b[n + 1] = 3; n += 2;       /* claims 1 byte more */
            p.b[2] = (uint8_t)(n >> 8); p.b[3] = (uint8_t)n;
            break;
        case E_ATTR_HALF:
            p.b[n] = 77; n += 1;
            p.b[2] = (uint8_t)(n >> 8); p.b[3] = (uint8_t)n;
            break;
        }
        enum radius_bad got = parse_exact(p.b, n, &a);
        if (got != b->want)
            fail_msg("%s: got %s, want %s", b->name, radius_bad_name(got),
                     radius_bad_name(b->want));
    }
}

static void test_no_status(void **state)
{
    struct pkt p;
    struct radius_acct a;
    pkt_start(&p, RADIUS_CODE_ACCT_REQUEST);
    pkt_str(&p, RADIUS_A_USER_NAME, "acme");
    pkt_end(&p);
    assert_int_equal(parse_exact(p.b, p.n, &a), RADIUS_BAD_NO_STATUS);
}

/* Every prefix of a good packet: as a datagram cut short (Length kept) it
 * is refused; with the Length field saying the cut length, it is accepted
 * only where the cut falls between attributes after the status type. */
static void test_truncations(void **state)
{
    struct pkt p;
    struct radius_acct a;
    good_start(&p);
    size_t bounds[32], nb = 0;
    for (size_t off = RADIUS_HDR_LEN; off < p.n; off += p.b[off + 1])
        bounds[nb++] = off + p.b[off + 1];
    for (size_t n = 0; n < p.n; n++) {
        assert_int_not_equal(parse_exact(p.b, n, &a), RADIUS_OK);
        if (n < RADIUS_HDR_LEN)
            continue;
        struct pkt q = p;
        q.b[2] = (uint8_t)(n >> 8);
        q.b[3] = (uint8_t)n;
        int boundary = n == RADIUS_HDR_LEN;
        for (size_t i = 0; i < nb; i++)
            boundary |= bounds[i] == n;
        enum radius_bad want = !boundary ? RADIUS_BAD_ATTR
                             : n == RADIUS_HDR_LEN ? RADIUS_BAD_NO_STATUS : RADIUS_OK;
        enum radius_bad got = parse_exact(q.b, n, &a);
        if (got != want)
            fail_msg("cut at %zu: got %s, want %s", n, radius_bad_name(got),
                     radius_bad_name(want));
    }
}

static void unhex(const char *h, unsigned char *out, size_t *n)
{
    size_t i = 0;
    for (; h[2 * i]; i++) {
        unsigned v;
        sscanf(h + 2 * i, "%2x", &v);
        out[i] = (unsigned char)v;
    }
    *n = i;
}

/* Vectors from Python: hashlib.md5(code id len + 16 zeros + attrs + secret). */
static void test_authenticators(void **state)
{
    unsigned char pkt[64], want[32], resp[RADIUS_HDR_LEN];
    size_t n, wn;
    unhex("0407002a820296db550b11f21615ceeca1a5f966280600000001010661636d652c045331"
          "0806c0000209", pkt, &n);
    assert_int_equal(n, 42);
    assert_true(radius_auth_ok(pkt, n, "testing123", 10));
    assert_false(radius_auth_ok(pkt, n, "testing124", 10));
    assert_false(radius_auth_ok(pkt, n, "testing12", 9));
    pkt[n - 1] ^= 1;                    /* an attribute changed */
    assert_false(radius_auth_ok(pkt, n, "testing123", 10));
    pkt[n - 1] ^= 1;
    pkt[4] ^= 0x80;                     /* the authenticator changed */
    assert_false(radius_auth_ok(pkt, n, "testing123", 10));
    pkt[4] ^= 0x80;
    assert_false(radius_auth_ok(pkt, 19, "testing123", 10));

    radius_response(7, pkt + 4, "testing123", 10, resp);
    unhex("b8eae2c27049dab6c9323b0298c6f09c", want, &wn);
    assert_int_equal(resp[0], RADIUS_CODE_ACCT_RESPONSE);
    assert_int_equal(resp[1], 7);
    assert_int_equal(resp[2], 0);
    assert_int_equal(resp[3], 20);
    assert_memory_equal(resp + 4, want, 16);
}

static const struct sess_case {
    const char *name;
    const char *nas_id;         /* NULL: absent */
    int nas_ip;                 /* 198.51.100.1 present */
    const char *sid;            /* NULL: absent */
    const char *want;
} sess_cases[] = {
    { "NAS-Identifier first", "nas1", 1, "S1", "nas1/S1" },
    { "then NAS-IP-Address", NULL, 1, "S1", "198.51.100.1/S1" },
    { "then the source", NULL, 0, "S1", "127.0.0.1/S1" },
    { "no session id", "nas1", 0, NULL, "nas1/" },
    { "slash in NAS", "a/b", 0, "x/y", "a?b/x/y" },
    { "control bytes", "n\x01\x7f", 0, "s \n\xff", "n?" "?/s?" "??" },
    { "NAS cut to 31", "0123456789012345678901234567890123456789", 0, "S",
      "0123456789012345678901234567890/S" },
    { "session cut to 63", "nas",  0,
      "0123456789012345678901234567890123456789012345678901234567890123456789",
      "nas/01234567890123456789012345678901234567890123456789012345678" },
};

static void test_sessions(void **state)
{
    for (size_t i = 0; i < sizeof sess_cases / sizeof sess_cases[0]; i++) {
        const struct sess_case *c = &sess_cases[i];
        struct radius_acct a;
        char out[64];
        memset(&a, 0, sizeof a);
        if (c->nas_id) {
            a.nas_id.len = strlen(c->nas_id);
            memcpy(a.nas_id.s, c->nas_id, a.nas_id.len);
        }
        if (c->sid) {
            a.session_id.len = strlen(c->sid);
            memcpy(a.session_id.s, c->sid, a.session_id.len);
        }
        if (c->nas_ip) {
            a.has_nas_ip = 1;
            memcpy(a.nas_ip, "\xc6\x33\x64\x01", 4);
        }
        radius_session(&a, "127.0.0.1", out, sizeof out);
        if (strcmp(out, c->want))
            fail_msg("%s: got '%s', want '%s'", c->name, out, c->want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),
        cmocka_unit_test(test_bad),
        cmocka_unit_test(test_no_status),
        cmocka_unit_test(test_truncations),
        cmocka_unit_test(test_authenticators),
        cmocka_unit_test(test_sessions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

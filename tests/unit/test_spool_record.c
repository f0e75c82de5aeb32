/*
 * test_spool_record — the pure journal record codec (spool_record.h):
 * header encode/decode, record search, MSG and STATE metadata round trips
 * and refusals, malformed deferral reasons (and every mutation of a STATE
 * record, fuzz-style), and spool_reason_clean().  No files, no threads:
 * the spool itself is test_spool.c.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "spool/spool.h"
#include "spool/spool_record.h"

static void test_record_codec(void **state)
{
    struct spool_rcpt r[3] = {{"a@b.example", 0}, {"", SPOOL_RCPT_OUTBOUND},
                              {"postmaster@c.example", 1}};
    struct spool_env env = {9, -5, "", 3, r}, got;
    struct spool_rstate rs[2] = {{SPOOL_R_PENDING, "451 4.4.1 later"}, {SPOOL_R_DELIVERED, NULL}};
    const struct spool_rstate *grs;
    struct spool_dec d = {0};
    uint8_t buf[256], hdr[SPOOL_REC_HDR_LEN];
    size_t len, n;
    int held;

    assert_int_equal(spool_meta_msg_len(&env, &len), 0);
    assert_true(len <= sizeof buf);
    spool_meta_msg_encode(&env, buf);
    assert_int_equal(spool_meta_msg_decode(&d, buf, len, &got), 0);
    assert_int_equal(got.arrival, -5);
    assert_string_equal(got.sender, "");
    assert_int_equal(got.nrcpt, 3);
    assert_string_equal(got.rcpts[2].addr, "postmaster@c.example");
    assert_int_equal(got.rcpts[1].flags, SPOOL_RCPT_OUTBOUND);
    for (size_t cut = 0; cut < len; cut++)      /* every truncation is refused */
        assert_int_equal(spool_meta_msg_decode(&d, buf, cut, &got), -1);
    buf[len] = 0;
    assert_int_equal(spool_meta_msg_decode(&d, buf, len + 1, &got), -1);

    assert_int_equal(spool_meta_state_len(1, 2, rs, &len), 0);
    spool_meta_state_encode(1, 2, rs, buf);
    assert_int_equal(spool_meta_state_decode(&d, buf, len, &held, &n, &grs), 0);
    assert_int_equal(held, 1);
    assert_int_equal(n, 2);
    assert_string_equal(grs[0].reason, "451 4.4.1 later");
    assert_null(grs[1].reason);
    assert_int_equal(grs[1].status, SPOOL_R_DELIVERED);
    for (size_t cut = 0; cut < len; cut++)
        assert_int_equal(spool_meta_state_decode(&d, buf, cut, &held, &n, &grs), -1);
    spool_dec_free(&d);

    /* what cannot be encoded */
    env.nrcpt = 0;
    assert_int_equal(spool_meta_msg_len(&env, &len), -1);
    env.nrcpt = 65536;
    assert_int_equal(spool_meta_msg_len(&env, &len), -1);
    env.nrcpt = 3;
    r[0].flags = 0x80;
    assert_int_equal(spool_meta_msg_len(&env, &len), -1);
    rs[0].status = 3;
    assert_int_equal(spool_meta_state_len(0, 2, rs, &len), -1);

    /* header: round trip, every single-bit flip is caught */
    struct spool_rec_hdr h = {1, SPOOL_REC_MSG, 100, 40, 0x0102030405060708ull, 0xdeadbeef}, g;
    spool_rec_hdr_encode(&h, hdr);
    assert_int_equal(spool_rec_hdr_decode(hdr, &g), SPOOL_HDR_OK);
    assert_int_equal(g.id, h.id);
    assert_int_equal(g.payload_crc, h.payload_crc);
    for (int bit = 0; bit < SPOOL_REC_HDR_LEN * 8; bit++) {
        hdr[bit / 8] ^= (uint8_t)(1 << (bit % 8));
        assert_int_not_equal(spool_rec_hdr_decode(hdr, &g), SPOOL_HDR_OK);
        hdr[bit / 8] ^= (uint8_t)(1 << (bit % 8));
    }
    h.version = 2;
    spool_rec_hdr_encode(&h, hdr);
    assert_int_equal(spool_rec_hdr_decode(hdr, &g), SPOOL_HDR_BAD);

    /* finding the next header in garbage */
    uint8_t area[200];
    memset(area, 'K', sizeof area);
    h.version = 1;
    spool_rec_hdr_encode(&h, area + 77);
    assert_int_equal(spool_rec_find(area, sizeof area, 0), 77);
    assert_int_equal(spool_rec_find(area, 100, 0), 77);         /* cut: maybe */
    memcpy(area + 190, "KMJ", 3);
    assert_int_equal(spool_rec_find(area, 193, 78), 190);
    memset(area, 0, sizeof area);
    assert_int_equal(spool_rec_find(area, sizeof area, 0), sizeof area);
}

/* ---- deferral reasons ---- */

/* The STATE metadata of one recipient, status st, reason bytes r[0..n). */
static size_t state1(uint8_t *out, uint8_t st, const void *r, uint16_t n)
{
    out[0] = 0;
    out[1] = 1;
    out[2] = 0;
    out[3] = st;
    out[4] = (uint8_t)n;
    out[5] = (uint8_t)(n >> 8);
    memcpy(out + 6, r, n);
    return 6 + (size_t)n;
}

static void test_state_reason_malformed(void **state)
{
    struct spool_dec d = {0};
    const struct spool_rstate *rs;
    uint8_t buf[700];
    size_t len, n;
    int held;

    len = state1(buf, SPOOL_R_PENDING, "451 4.7.1 greylisted", 20);
    assert_int_equal(spool_meta_state_decode(&d, buf, len, &held, &n, &rs), 0);
    assert_string_equal(rs[0].reason, "451 4.7.1 greylisted");
    /* a NUL inside the reason */
    len = state1(buf, SPOOL_R_PENDING, "451 4.7.1\0greylisted", 20);
    assert_int_equal(spool_meta_state_decode(&d, buf, len, &held, &n, &rs), -1);
    /* its length runs past the record, or stops short of it */
    len = state1(buf, SPOOL_R_PENDING, "451 4.7.1 greylisted", 20);
    buf[4] = 21;
    assert_int_equal(spool_meta_state_decode(&d, buf, len, &held, &n, &rs), -1);
    buf[4] = 0xff;
    buf[5] = 0xff;
    assert_int_equal(spool_meta_state_decode(&d, buf, len, &held, &n, &rs), -1);
    buf[4] = 19;
    buf[5] = 0;
    assert_int_equal(spool_meta_state_decode(&d, buf, len, &held, &n, &rs), -1);
    /* no "deferred" status value: deferred is pending with a reason */
    len = state1(buf, 3, "451 4.7.1 greylisted", 20);
    assert_int_equal(spool_meta_state_decode(&d, buf, len, &held, &n, &rs), -1);
    /* a reason longer than the qmgr writes (an older journal) still decodes,
     * as stored: recovery must not lose the statuses beside it */
    char longr[600];
    memset(longr, 'x', sizeof longr);
    len = state1(buf, SPOOL_R_PENDING, longr, sizeof longr);
    assert_int_equal(spool_meta_state_decode(&d, buf, len, &held, &n, &rs), 0);
    assert_int_equal(strlen(rs[0].reason), sizeof longr);
    spool_dec_free(&d);
}

/* Every single-byte change and every truncation of a STATE with reasons
 * either decodes to something that re-encodes to exactly those bytes, with
 * NUL-free reasons, or is refused; a seeded run of random multi-byte
 * mutations likewise (run under ASan: nothing is read outside the buffer). */
static void check_state_bytes(struct spool_dec *d, const uint8_t *p, size_t len)
{
    const struct spool_rstate *rs;
    size_t n, elen;
    int held;
    uint8_t *copy = malloc(len ? len : 1), *out;
    memcpy(copy, p, len);       /* exactly len bytes: ASan sees any overread */
    if (spool_meta_state_decode(d, copy, len, &held, &n, &rs) == 0) {
        assert_int_equal(spool_meta_state_len(held, n, rs, &elen), 0);
        assert_int_equal(elen, len);
        out = malloc(elen);
        spool_meta_state_encode(held, n, rs, out);
        assert_memory_equal(out, copy, len);
        free(out);
        for (size_t i = 0; i < n; i++)
            assert_true(!rs[i].reason || (rs[i].reason[0] && strlen(rs[i].reason) < len));
    }
    free(copy);
}

static void test_state_mutations(void **state)
{
    struct spool_rstate rs[3] = {{SPOOL_R_PENDING, "451 4.7.1 greylisted"},
                                 {SPOOL_R_DELIVERED, NULL},
                                 {SPOOL_R_PENDING, "connect to 192.0.2.7:25: Connection refused"}};
    struct spool_dec d = {0};
    uint8_t buf[256], m[256];
    size_t len;
    uint32_t x = 12345;

    assert_int_equal(spool_meta_state_len(SPOOL_MSG_HELD, 3, rs, &len), 0);
    spool_meta_state_encode(SPOOL_MSG_HELD, 3, rs, buf);
    for (size_t cut = 0; cut <= len; cut++)
        check_state_bytes(&d, buf, cut);
    for (size_t i = 0; i < len; i++)
        for (int v = 0; v < 256; v++) {
            memcpy(m, buf, len);
            m[i] = (uint8_t)v;
            check_state_bytes(&d, m, len);
        }
    for (int round = 0; round < 20000; round++) {
        size_t mlen = len;
        memcpy(m, buf, len);
        for (int k = 0; k < 4; k++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            m[x % len] = (uint8_t)(x >> 8);
        }
        if (round & 1)
            mlen = x % (len + 1);
        check_state_bytes(&d, m, mlen);
    }
    spool_dec_free(&d);
}

static void check_clean(const char *in, const char *want)
{
    char out[SPOOL_REASON_MAX + 1], again[SPOOL_REASON_MAX + 1];
    size_t n = spool_reason_clean(out, in);
    assert_string_equal(out, want);
    assert_int_equal(n, strlen(want));
    spool_reason_clean(again, out);
    assert_string_equal(again, out);            /* idempotent */
}

static void test_reason_clean(void **state)
{
    static const struct { const char *in, *want; } cases[] = {
        { "451 4.3.0 try later", "451 4.3.0 try later" },
        { "", "" },
        { " \t\r\n ", "" },
        { "  451  4.3.0\ttry\r\nlater  ", "451 4.3.0 try later" },
        { "451-first line\r\n451 last line", "451-first line 451 last line" },
        { "red \x1b[31mtext\x7f!", "red [31mtext !" },
        { "caf\xc3\xa9 \xff", "caf?? ?" },
        { "\x01\x02x\x03", "x" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_clean(cases[i].in, cases[i].want);

    char in[2000], want[SPOOL_REASON_MAX + 1];
    /* exactly SPOOL_REASON_MAX bytes: kept whole, also with spaces after */
    memset(in, 'a', SPOOL_REASON_MAX);
    strcpy(in + SPOOL_REASON_MAX, "  \r\n");
    memset(want, 'a', SPOOL_REASON_MAX);
    want[SPOOL_REASON_MAX] = 0;
    check_clean(in, want);
    /* one byte more: cut, ending in "..." */
    memset(in, 'a', SPOOL_REASON_MAX + 1);
    in[SPOOL_REASON_MAX + 1] = 0;
    memcpy(want + SPOOL_REASON_MAX - 3, "...", 4);
    check_clean(in, want);
    /* a long reply with runs of spaces and line ends */
    for (size_t i = 0; i < sizeof in - 1; i++)
        in[i] = "ab \r\n\x01"[i % 6];
    in[sizeof in - 1] = 0;
    char out[SPOOL_REASON_MAX + 1];
    size_t n = spool_reason_clean(out, in);
    assert_int_equal(n, SPOOL_REASON_MAX);
    assert_memory_equal(out, "ab ab ab", 8);
    assert_string_equal(out + n - 3, "...");
    for (size_t i = 0; i < n; i++) {
        assert_true(out[i] >= 0x20 && out[i] < 0x7f);
        assert_false(out[i] == ' ' && (i == 0 || out[i - 1] == ' '));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_codec),
        cmocka_unit_test(test_state_reason_malformed),
        cmocka_unit_test(test_state_mutations),
        cmocka_unit_test(test_reason_clean),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

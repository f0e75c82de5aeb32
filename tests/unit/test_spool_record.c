/*
 * test_spool_record — the pure journal record codec (spool_record.h):
 * header encode/decode, record search, MSG and STATE metadata round trips
 * and refusals.  No files, no threads: the spool itself is test_spool.c.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "spool.h"
#include "spool_record.h"

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

/* ---- round trip ---- */

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_codec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

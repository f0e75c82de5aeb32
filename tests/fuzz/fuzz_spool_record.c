/*
 * fuzz_spool_record — the journal record decoders on arbitrary bytes, as
 * recovery meets them after a crash or disk damage: header decode, trailer
 * check, record search, and both metadata decoders.  Invariants: nothing
 * reads outside the input; a metadata encoding that decodes re-encodes to
 * exactly the same bytes (one valid encoding per value); every reason a
 * STATE decodes to (deferral reasons are STATE records), and the input
 * itself as a string, comes out of spool_reason_clean() printable, at most
 * SPOOL_REASON_MAX bytes, and unchanged by a second cleaning.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spool/spool.h"
#include "spool/spool_record.h"

static void check_reason(const char *in)
{
    char out[SPOOL_REASON_MAX + 1], again[SPOOL_REASON_MAX + 1];
    size_t n = spool_reason_clean(out, in);
    if (n > SPOOL_REASON_MAX || n != strlen(out))
        abort();
    for (size_t i = 0; i < n; i++)
        if (out[i] < 0x20 || out[i] > 0x7e || (out[i] == ' ' && (i == 0 || i + 1 == n)))
            abort();
    if (spool_reason_clean(again, out) != n || memcmp(again, out, n + 1) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct spool_rec_hdr h;
    struct spool_dec d;
    struct spool_env env;
    size_t len;
    memset(&d, 0, sizeof d);

    if (size >= SPOOL_REC_HDR_LEN && spool_rec_hdr_decode(data, &h) == SPOOL_HDR_OK) {
        uint64_t rl = spool_rec_len(&h);
        if (rl <= size)
            (void)spool_rec_trl_check(data + rl - SPOOL_REC_TRL_LEN, h.payload_len);
    }
    size_t at = spool_rec_find(data, size, 0);
    if (at > size)
        abort();

    memset(&env, 0, sizeof env);
    if (spool_meta_msg_decode(&d, data, size, &env) == 0) {
        if (spool_meta_msg_len(&env, &len) < 0 || len != size)
            abort();
        uint8_t *out = malloc(len ? len : 1);
        spool_meta_msg_encode(&env, out);
        if (memcmp(out, data, len) != 0)
            abort();
        free(out);
    }
    int held;
    size_t nrcpt;
    const struct spool_rstate *rs;
    if (spool_meta_state_decode(&d, data, size, &held, &nrcpt, &rs) == 0) {
        if (spool_meta_state_len(held, nrcpt, rs, &len) < 0 || len != size)
            abort();
        uint8_t *out = malloc(len ? len : 1);
        spool_meta_state_encode(held, nrcpt, rs, out);
        if (memcmp(out, data, len) != 0)
            abort();
        free(out);
        for (size_t i = 0; i < nrcpt; i++)
            if (rs[i].reason)
                check_reason(rs[i].reason);
    }
    char *str = malloc(size + 1);
    memcpy(str, data, size);
    str[size] = '\0';
    check_reason(str);
    free(str);
    spool_dec_free(&d);
    return 0;
}

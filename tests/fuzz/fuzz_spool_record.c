/*
 * fuzz_spool_record — the journal record decoders on arbitrary bytes, as
 * recovery meets them after a crash or disk damage: header decode, trailer
 * check, record search, and both metadata decoders.  Invariants: nothing
 * reads outside the input; a metadata encoding that decodes re-encodes to
 * exactly the same bytes (one valid encoding per value).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spool.h"
#include "spool_record.h"

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
    }
    spool_dec_free(&d);
    return 0;
}

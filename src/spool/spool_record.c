/*
 * spool_record — encode, decode and verify journal records (format in
 * spool.h, metadata encodings below).  Pure functions over bytes:
 * no I/O, no global state.
 *
 * Metadata encodings (integers little-endian, strings without NUL):
 *   MSG:   i64 arrival | u16 sender_len | sender | u16 nrcpt (1..65535) |
 *          nrcpt x (u8 flags | u16 addr_len | addr)
 *   STATE: u8 flags (SPOOL_MSG_HELD 1 | SPOOL_MSG_WARNED 2) | u16 nrcpt (1..65535) |
 *          nrcpt x (u8 status | u16 reason_len | reason)    (len 0: no reason)
 *   DONE:  empty
 *
 * Deferral reasons: spool_reason_clean() (spool.h) makes any text what the
 * journal keeps: printable ASCII, at most SPOOL_REASON_MAX bytes.  The
 * decoders return reasons as stored (older journals may hold longer ones);
 * the qmgr cleans them.
 *
 * Trusts nothing it decodes: every length is checked against the bytes
 * given, decoders accept exactly one well-formed encoding (no trailing bytes,
 * no NUL inside strings, no unknown flag bits or status values) and never
 * read outside [p, p + len).  Encoders trust their arguments only after the
 * *_len() functions accepted them.
 */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "core/util.h"
#include "spool/spool_record.h"

static const uint8_t rec_magic[4] = {'K', 'M', 'J', '1'};
static const uint8_t trl_magic[4] = {'K', 'M', 'J', 'E'};

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

uint32_t spool_crc(uint32_t crc, const void *p, size_t n)
{
    const Bytef *b = p;
    while (n > 0) {
        uInt chunk = n > (1u << 30) ? (1u << 30) : (uInt)n;
        crc = (uint32_t)crc32(crc, b, chunk);
        b += chunk;
        n -= chunk;
    }
    return crc;
}

void spool_rec_hdr_encode(const struct spool_rec_hdr *h, uint8_t *out)
{
    memcpy(out, rec_magic, 4);
    out[4] = h->version;
    out[5] = h->type;
    put16(out + 6, 0);
    put32(out + 8, h->payload_len);
    put32(out + 12, h->meta_len);
    put64(out + 16, h->id);
    put32(out + 24, h->payload_crc);
    put32(out + 28, spool_crc(0, out, 28));
}

int spool_rec_hdr_decode(const uint8_t *in, struct spool_rec_hdr *h)
{
    if (memcmp(in, rec_magic, 4) != 0 || get32(in + 28) != spool_crc(0, in, 28))
        return SPOOL_HDR_NOT;
    h->version = in[4];
    h->type = in[5];
    h->payload_len = get32(in + 8);
    h->meta_len = get32(in + 12);
    h->id = get64(in + 16);
    h->payload_crc = get32(in + 24);
    if (h->version != SPOOL_REC_VERSION || get16(in + 6) != 0 ||
        h->meta_len > h->payload_len)
        return SPOOL_HDR_BAD;
    switch (h->type) {
    case SPOOL_REC_MSG:
        return h->payload_len - h->meta_len <= SPOOL_REC_MAX_BODY ?
               SPOOL_HDR_OK : SPOOL_HDR_BAD;
    case SPOOL_REC_STATE:
        return h->meta_len == h->payload_len ? SPOOL_HDR_OK : SPOOL_HDR_BAD;
    case SPOOL_REC_DONE:
        return h->payload_len == 0 ? SPOOL_HDR_OK : SPOOL_HDR_BAD;
    default:
        return SPOOL_HDR_BAD;
    }
}

uint64_t spool_rec_len(const struct spool_rec_hdr *h)
{
    return (uint64_t)SPOOL_REC_HDR_LEN + h->payload_len + SPOOL_REC_TRL_LEN;
}

void spool_rec_trl_encode(uint32_t payload_len, uint8_t *out)
{
    memcpy(out, trl_magic, 4);
    put32(out + 4, payload_len);
}

int spool_rec_trl_check(const uint8_t *in, uint32_t payload_len)
{
    return memcmp(in, trl_magic, 4) == 0 && get32(in + 4) == payload_len ? 0 : -1;
}

size_t spool_rec_find(const uint8_t *p, size_t len, size_t from)
{
    struct spool_rec_hdr h;
    size_t i = from;
    while (i < len) {
        const uint8_t *k = memchr(p + i, rec_magic[0], len - i);
        if (!k)
            return len;
        i = (size_t)(k - p);
        if (len - i < SPOOL_REC_HDR_LEN) {
            size_t n = len - i < 4 ? len - i : 4;
            if (memcmp(p + i, rec_magic, n) == 0)
                return i;       /* might be a header: needs more bytes */
        } else if (spool_rec_hdr_decode(p + i, &h) == SPOOL_HDR_OK) {
            return i;
        }
        i++;
    }
    return len;
}

/* ---- metadata ---- */

static int str_len_ok(const char *s, size_t *n)
{
    if (!s)
        return -1;
    *n = strlen(s);
    return *n <= SPOOL_REC_MAX_STR ? 0 : -1;
}

int spool_meta_msg_len(const struct spool_env *env, size_t *len)
{
    size_t n, total;
    if (env->nrcpt < 1 || env->nrcpt > SPOOL_REC_MAX_RCPT || !env->rcpts ||
        str_len_ok(env->sender, &n) < 0)
        return -1;
    total = 8 + 2 + n + 2;
    for (size_t i = 0; i < env->nrcpt; i++) {
        if (str_len_ok(env->rcpts[i].addr, &n) < 0 ||
            (env->rcpts[i].flags & ~SPOOL_RCPT_OUTBOUND))
            return -1;
        total += 1 + 2 + n;
    }
    *len = total;
    return 0;
}

static uint8_t *put_str(uint8_t *p, const char *s)
{
    size_t n = strlen(s);
    put16(p, (uint16_t)n);
    memcpy(p + 2, s, n);
    return p + 2 + n;
}

void spool_meta_msg_encode(const struct spool_env *env, uint8_t *out)
{
    put64(out, (uint64_t)env->arrival);
    out = put_str(out + 8, env->sender);
    put16(out, (uint16_t)env->nrcpt);
    out += 2;
    for (size_t i = 0; i < env->nrcpt; i++) {
        *out++ = env->rcpts[i].flags;
        out = put_str(out, env->rcpts[i].addr);
    }
}

int spool_meta_state_len(int held, size_t nrcpt, const struct spool_rstate *rs,
                         size_t *len)
{
    size_t total = 1 + 2;
    if (nrcpt < 1 || nrcpt > SPOOL_REC_MAX_RCPT || !rs || (held & ~SPOOL_MSG_FLAGS))
        return -1;
    for (size_t i = 0; i < nrcpt; i++) {
        size_t n = 0;
        if (rs[i].status > SPOOL_R_BOUNCED ||
            (rs[i].reason && str_len_ok(rs[i].reason, &n) < 0))
            return -1;
        total += 1 + 2 + n;
    }
    *len = total;
    return 0;
}

void spool_meta_state_encode(int held, size_t nrcpt, const struct spool_rstate *rs,
                             uint8_t *out)
{
    *out++ = (uint8_t)held;
    put16(out, (uint16_t)nrcpt);
    out += 2;
    for (size_t i = 0; i < nrcpt; i++) {
        *out++ = rs[i].status;
        out = put_str(out, rs[i].reason ? rs[i].reason : "");
    }
}

void spool_dec_free(struct spool_dec *d)
{
    free(d->str);
    free(d->rcpt);
    free(d->rs);
    memset(d, 0, sizeof *d);
}

/* Room for every string of an encoding of len bytes: each string costs at
 * least its 2-byte length, so bytes + NULs never exceed len + len / 2 + 1. */
static void dec_reserve(struct spool_dec *d, size_t len, size_t nrcpt)
{
    size_t need = len + len / 2 + 1;
    if (d->strcap < need) {
        d->str = xrealloc(d->str, need);
        d->strcap = need;
    }
    if (d->ncap < nrcpt) {
        d->rcpt = xrealloc(d->rcpt, nrcpt * sizeof *d->rcpt);
        d->rs = xrealloc(d->rs, nrcpt * sizeof *d->rs);
        d->ncap = nrcpt;
    }
}

/* Reads a u16-length string at *pos into the scratch at *spos. */
static const char *get_str(struct spool_dec *d, const uint8_t *p, size_t len,
                           size_t *pos, size_t *spos)
{
    size_t n;
    char *s;
    if (len - *pos < 2)
        return NULL;
    n = get16(p + *pos);
    *pos += 2;
    if (len - *pos < n || memchr(p + *pos, 0, n))
        return NULL;
    s = d->str + *spos;
    memcpy(s, p + *pos, n);
    s[n] = '\0';
    *pos += n;
    *spos += n + 1;
    return s;
}

int spool_meta_msg_decode(struct spool_dec *d, const uint8_t *p, size_t len,
                          struct spool_env *env)
{
    size_t pos = 8, spos = 0, n;
    if (len < 8 + 2 + 2)
        return -1;
    dec_reserve(d, len, 0);
    env->arrival = (int64_t)get64(p);
    if (!(env->sender = get_str(d, p, len, &pos, &spos)) || len - pos < 2)
        return -1;
    n = get16(p + pos);
    pos += 2;
    if (n == 0 || (len - pos) / 3 < n)
        return -1;
    dec_reserve(d, len, n);
    for (size_t i = 0; i < n; i++) {
        if (pos >= len || (p[pos] & ~SPOOL_RCPT_OUTBOUND))
            return -1;
        d->rcpt[i].flags = p[pos++];
        if (!(d->rcpt[i].addr = get_str(d, p, len, &pos, &spos)))
            return -1;
    }
    if (pos != len)
        return -1;
    env->nrcpt = n;
    env->rcpts = d->rcpt;
    return 0;
}

int spool_meta_state_decode(struct spool_dec *d, const uint8_t *p, size_t len,
                            int *held, size_t *nrcpt,
                            const struct spool_rstate **rs)
{
    size_t pos = 3, spos = 0, n;
    if (len < 3 || (p[0] & ~SPOOL_MSG_FLAGS))
        return -1;
    n = get16(p + 1);
    if (n == 0 || (len - pos) / 3 < n)
        return -1;
    dec_reserve(d, len, n);
    for (size_t i = 0; i < n; i++) {
        if (pos >= len || p[pos] > SPOOL_R_BOUNCED)
            return -1;
        d->rs[i].status = p[pos++];
        if (!(d->rs[i].reason = get_str(d, p, len, &pos, &spos)))
            return -1;
        if (!d->rs[i].reason[0])
            d->rs[i].reason = NULL;
    }
    if (pos != len)
        return -1;
    *held = p[0];
    *nrcpt = n;
    *rs = d->rs;
    return 0;
}

/* ---- deferral reasons ---- */

size_t spool_reason_clean(char out[SPOOL_REASON_MAX + 1], const char *in)
{
    size_t n = 0;
    int space = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
        unsigned char c = *p;
        if (c < 0x20 || c == 0x7f || c == ' ') {
            space = n > 0;          /* leading spaces go, runs become one */
            continue;
        }
        if (n + space + 1 > SPOOL_REASON_MAX) {
            n = n > SPOOL_REASON_MAX - 3 ? SPOOL_REASON_MAX - 3 : n;
            memcpy(out + n, "...", 3);
            n += 3;
            break;
        }
        if (space)
            out[n++] = ' ';
        space = 0;
        out[n++] = c < 0x80 ? (char)c : '?';
    }
    out[n] = '\0';
    return n;
}

uint8_t *spool_rec_build(uint8_t version, uint8_t type, uint64_t id,
                         const void *meta, uint32_t meta_len,
                         const void *body, uint32_t body_len, size_t *len)
{
    struct spool_rec_hdr h = {
        .version = version, .type = type, .id = id,
        .meta_len = meta_len, .payload_len = meta_len + body_len,
    };
    uint8_t *r = xmalloc(SPOOL_REC_HDR_LEN + (size_t)h.payload_len + SPOOL_REC_TRL_LEN);
    uint8_t *p = r + SPOOL_REC_HDR_LEN;
    if (meta_len)
        memcpy(p, meta, meta_len);
    if (body_len)
        memcpy(p + meta_len, body, body_len);
    h.payload_crc = spool_crc(0, p, h.payload_len);
    spool_rec_hdr_encode(&h, r);
    spool_rec_trl_encode(h.payload_len, p + h.payload_len);
    *len = SPOOL_REC_HDR_LEN + (size_t)h.payload_len + SPOOL_REC_TRL_LEN;
    return r;
}

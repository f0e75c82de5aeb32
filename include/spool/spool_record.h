/*
 * spool_record — the journal record format of spool.h as pure functions over
 * bytes: encode, decode and verify headers, trailers and metadata, and find
 * the next valid header in a buffer.  No I/O; the spool, its unit tests and
 * the fuzzers call these directly.  Internal to the spool: the qmgr and the
 * rest of the daemon use spool.h only.
 *
 * Metadata encodings (all integers little-endian):
 *   MSG:   i64 arrival | u16 sender_len | sender | u16 nrcpt |
 *          nrcpt x (u8 flags | u16 addr_len | addr)
 *   STATE: u8 held | u16 nrcpt | nrcpt x (u8 status | u16 reason_len | reason)
 *   DONE:  nothing (meta_len 0, payload_len 0)
 * Strings are bytes without a terminating NUL and may not contain NUL.
 */
#ifndef KM_SPOOL_RECORD_H
#define KM_SPOOL_RECORD_H

#include <stddef.h>
#include <stdint.h>
#include "spool/spool.h"

#define SPOOL_REC_HDR_LEN   32
#define SPOOL_REC_TRL_LEN   8
#define SPOOL_REC_VERSION   1
#define SPOOL_REC_MAX_BODY  0x7fffffffu     /* 2 GiB - 1 */
#define SPOOL_REC_MAX_RCPT  65535
#define SPOOL_REC_MAX_STR   65535

enum spool_rec_type {
    SPOOL_REC_MSG = 1,
    SPOOL_REC_STATE = 2,
    SPOOL_REC_DONE = 3,
};

struct spool_rec_hdr {
    uint8_t version;
    uint8_t type;               /* enum spool_rec_type */
    uint32_t payload_len;       /* metadata + body */
    uint32_t meta_len;
    uint64_t id;
    uint32_t payload_crc;
};

/* spool_rec_hdr_decode() results. */
#define SPOOL_HDR_OK    0       /* a record this code can read */
#define SPOOL_HDR_NOT   (-1)    /* bad magic or header CRC: not a header */
#define SPOOL_HDR_BAD   (-2)    /* CRC-valid, but unknown version or type, or
                                 * inconsistent lengths: never to be read,
                                 * although its length can be trusted */

/* zlib crc32 over any length. */
uint32_t spool_crc(uint32_t crc, const void *p, size_t n);

/* Writes the 32 header bytes, computing the header CRC (h->version is
 * written as given, so tests can make records of other versions). */
void spool_rec_hdr_encode(const struct spool_rec_hdr *h, uint8_t *out);
int spool_rec_hdr_decode(const uint8_t *in, struct spool_rec_hdr *h);
/* Header + payload + trailer bytes of the record h describes. */
uint64_t spool_rec_len(const struct spool_rec_hdr *h);
void spool_rec_trl_encode(uint32_t payload_len, uint8_t *out);
/* 0 when the 8 bytes are the trailer of a payload of payload_len, else -1. */
int spool_rec_trl_check(const uint8_t *in, uint32_t payload_len);

/* Offset of the first position at or after from where a valid header
 * (SPOOL_HDR_OK) starts, or where one might start but is cut off by the end
 * of the len bytes (the caller needs more data to tell); len when none. */
size_t spool_rec_find(const uint8_t *p, size_t len, size_t from);

/* Metadata length for an envelope / a STATE: 0, or -1 when it cannot be
 * encoded (nrcpt 0 or > 65535, a NULL or over-long string, bad value). */
int spool_meta_msg_len(const struct spool_env *env, size_t *len);
int spool_meta_state_len(int held, size_t nrcpt, const struct spool_rstate *rs,
                         size_t *len);
/* Encode exactly the length the functions above returned into out. */
void spool_meta_msg_encode(const struct spool_env *env, uint8_t *out);
void spool_meta_state_encode(int held, size_t nrcpt, const struct spool_rstate *rs,
                             uint8_t *out);

/* Decoding scratch, reused from record to record; zero-initialise it and
 * release with spool_dec_free().  Decoded strings are NUL-terminated copies
 * in the scratch, valid until the next decode with the same scratch. */
struct spool_dec {
    char *str;
    size_t strcap;
    struct spool_rcpt *rcpt;
    struct spool_rstate *rs;
    size_t ncap;
};
void spool_dec_free(struct spool_dec *d);
/* 0, or -1 when the bytes are not exactly one valid encoding (env->id is
 * left alone: it lives in the header). */
int spool_meta_msg_decode(struct spool_dec *d, const uint8_t *p, size_t len,
                          struct spool_env *env);
/* A reason of length 0 is returned as NULL. */
int spool_meta_state_decode(struct spool_dec *d, const uint8_t *p, size_t len,
                            int *held, size_t *nrcpt,
                            const struct spool_rstate **rs);

/* A whole record in one xmalloc'd buffer (tests, fuzzers, tools); *len set. */
uint8_t *spool_rec_build(uint8_t version, uint8_t type, uint64_t id,
                         const void *meta, uint32_t meta_len,
                         const void *body, uint32_t body_len, size_t *len);

/* Test hook (implemented in spool.c): segment size after which the writer
 * starts a new segment, instead of SPOOL_SEG_LIMIT. */
void spool_test_seg_limit(struct spool *sp, uint64_t bytes);

#endif

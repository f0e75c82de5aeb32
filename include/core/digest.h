/*
 * digest — message digests for protocols that need one (RADIUS's MD5
 * authenticators, CRAM-MD5's HMAC-MD5), so that no folder above core/ includes OpenSSL itself.
 */
#ifndef KM_DIGEST_H
#define KM_DIGEST_H

#include <stddef.h>

#define DIGEST_MD5_LEN 16

/* One piece of the digested input. */
struct digest_part {
    const void *buf;
    size_t len;
};

/* MD5 of the concatenation of parts[0..n) into out.  0 / -1 (OpenSSL
 * failed: out is zeroed). */
int digest_md5(const struct digest_part *parts, size_t n,
               unsigned char out[DIGEST_MD5_LEN]);

/* HMAC-MD5 (RFC 2104) of msg[0..msglen) under key[0..keylen) into out, as
 * CRAM-MD5 (RFC 2195) needs.  0 / -1 (OpenSSL failed: out is zeroed). */
int digest_hmac_md5(const void *key, size_t keylen, const void *msg, size_t msglen,
                    unsigned char out[DIGEST_MD5_LEN]);

#endif

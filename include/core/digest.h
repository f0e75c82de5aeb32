/*
 * digest — message digests for protocols that need one (RADIUS's MD5
 * authenticators), so that no folder above core/ includes OpenSSL itself.
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

#endif

/*
 * digest — MD5 over a list of buffers, and HMAC-MD5, through OpenSSL (see
 * digest.h).  With core/tls.c, the only file that includes OpenSSL.
 * Trusts its callers' buffers and lengths; guarantees out is always
 * written (zeros on failure) and nothing is allocated past the call.
 */
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "core/digest.h"

int digest_md5(const struct digest_part *parts, size_t n,
               unsigned char out[DIGEST_MD5_LEN])
{
    unsigned int len = 0;
    int ok;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    ok = ctx && EVP_DigestInit_ex(ctx, EVP_md5(), NULL);
    for (size_t i = 0; ok && i < n; i++)
        ok = EVP_DigestUpdate(ctx, parts[i].buf, parts[i].len);
    ok = ok && EVP_DigestFinal_ex(ctx, out, &len) && len == DIGEST_MD5_LEN;
    EVP_MD_CTX_free(ctx);
    if (!ok)
        memset(out, 0, DIGEST_MD5_LEN);
    return ok ? 0 : -1;
}

int digest_hmac_md5(const void *key, size_t keylen, const void *msg, size_t msglen,
                    unsigned char out[DIGEST_MD5_LEN])
{
    unsigned int len = 0;
    static const unsigned char none;
    if (!HMAC(EVP_md5(), keylen ? key : &none, (int)keylen, msglen ? msg : &none, msglen,
              out, &len) || len != DIGEST_MD5_LEN) {
        memset(out, 0, DIGEST_MD5_LEN);
        return -1;
    }
    return 0;
}

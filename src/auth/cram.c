/*
 * auth/cram — the CRAM-MD5 check (RFC 2195): HMAC-MD5 of the challenge
 * under the account's plaintext-equivalent secret, in hex, compared with
 * the client's digits in constant time.  Trusts its caller to have parsed
 * the response (sasl_cram_parse: 32 lower-case hex digits); guarantees the
 * expected digits are wiped after use.  Kept apart from sasl.c so that the
 * pure parsers link without OpenSSL (the fuzzers).
 */
#include <stdio.h>
#include <string.h>

#include "auth/sasl.h"
#include "core/digest.h"

int sasl_cram_verify(const char *secret, const char *challenge,
                     const char hex[SASL_CRAM_HEX + 1])
{
    unsigned char mac[DIGEST_MD5_LEN];
    char want[SASL_CRAM_HEX + 1];
    unsigned diff = 0;
    if (!secret || !challenge || !hex ||
        digest_hmac_md5(secret, strlen(secret), challenge, strlen(challenge), mac) < 0)
        return 0;
    for (int i = 0; i < DIGEST_MD5_LEN; i++)
        snprintf(want + 2 * i, 3, "%02x", mac[i]);
    for (int i = 0; i < SASL_CRAM_HEX; i++)
        diff |= (unsigned)(unsigned char)want[i] ^ (unsigned)(unsigned char)hex[i];
    diff |= (unsigned)(strlen(hex) != SASL_CRAM_HEX);
    explicit_bzero(want, sizeof want);
    explicit_bzero(mac, sizeof mac);
    return diff == 0;
}

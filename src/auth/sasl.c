/*
 * auth/sasl — SASL mechanisms, pure: PLAIN (RFC 4616) decoded from the
 * client's base64 into authzid, authcid and password; LOGIN's responses;
 * CRAM-MD5's challenge and the parsing of its response (the HMAC is
 * checked in cram.c); strict base64 both ways.
 *
 * Trusts nothing in its input: the base64 text is checked character by
 * character (RFC 4648 alphabet, '=' padding only at the end and required,
 * unused bits zero, so that one message has exactly one text), its length
 * bounded before any work (SASL_PLAIN_B64_MAX), and the message split at
 * exactly two NULs, with no CR or LF in any field and each field within
 * SASL_FIELD_MAX bytes and its buffer.  Guarantees: on success three
 * NUL-terminated fields that contain no NUL, CR or LF; on failure three
 * empty ones; the decoded copy (it holds the password) wiped either way.
 * No allocation, no I/O, no global state.
 */
#include <stdio.h>
#include <string.h>

#include "auth/sasl.h"

/* The value of a base64 character, or -1. */
static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Strict base64 of in[0..len) into out (room for len / 4 * 3 bytes):
 * the decoded length, or -1. */
static long b64_decode(const char *in, size_t len, unsigned char *out)
{
    if (len == 0 || len % 4)
        return -1;
    size_t n = 0;
    for (size_t i = 0; i < len; i += 4) {
        int v[4], pad = 0;
        for (int k = 0; k < 4; k++) {
            unsigned char c = (unsigned char)in[i + k];
            if (c == '=' && i + 4 == len && k >= 2) {
                v[k] = 0;
                pad++;
            } else if (pad || (v[k] = b64_value(c)) < 0) {
                return -1;          /* a bad character, or data after '=' */
            }
        }
        if ((pad == 1 && (v[2] & 3)) || (pad == 2 && (v[1] & 15)))
            return -1;              /* unused bits set: not the one encoding */
        unsigned long q = (unsigned long)v[0] << 18 | (unsigned long)v[1] << 12 |
                          (unsigned long)v[2] << 6 | (unsigned long)v[3];
        out[n++] = (unsigned char)(q >> 16);
        if (pad < 2)
            out[n++] = (unsigned char)(q >> 8);
        if (pad < 1)
            out[n++] = (unsigned char)q;
    }
    return (long)n;
}

/* Copies field m[0..n) into out (size bytes) as a C string: 0, or -1 when
 * it is too long, does not fit, or holds CR or LF. */
static int field_copy(const unsigned char *m, size_t n, char *out, size_t size)
{
    if (n > SASL_FIELD_MAX || n >= size || memchr(m, '\r', n) || memchr(m, '\n', n))
        return -1;
    memcpy(out, m, n);
    out[n] = 0;
    return 0;
}

/* Splits the message m[0..n) at its two NULs into the three fields. */
static int plain_split(const unsigned char *m, size_t n, char *authzid, size_t authzid_size,
                       char *authcid, size_t authcid_size, char *passwd, size_t passwd_size)
{
    const unsigned char *end = m + n;
    const unsigned char *nul1 = memchr(m, 0, n);
    if (!nul1)
        return -1;
    const unsigned char *c = nul1 + 1;
    const unsigned char *nul2 = memchr(c, 0, (size_t)(end - c));
    if (!nul2)
        return -1;
    const unsigned char *p = nul2 + 1;
    if (nul2 == c || p == end || memchr(p, 0, (size_t)(end - p)))
        return -1;                  /* empty authcid or passwd, a third NUL */
    if (field_copy(m, (size_t)(nul1 - m), authzid, authzid_size) < 0 ||
        field_copy(c, (size_t)(nul2 - c), authcid, authcid_size) < 0 ||
        field_copy(p, (size_t)(end - p), passwd, passwd_size) < 0)
        return -1;
    return 0;
}

int sasl_plain_decode(const char *b64, size_t len, char *authzid, size_t authzid_size,
                      char *authcid, size_t authcid_size, char *passwd, size_t passwd_size)
{
    unsigned char m[SASL_PLAIN_B64_MAX / 4 * 3];
    int rc = -1;
    long n = b64 && len <= SASL_PLAIN_B64_MAX ? b64_decode(b64, len, m) : -1;
    if (n > 0)
        rc = plain_split(m, (size_t)n, authzid, authzid_size, authcid, authcid_size,
                         passwd, passwd_size);
    explicit_bzero(m, sizeof m);
    if (rc < 0) {
        if (authzid_size)
            authzid[0] = 0;
        if (authcid_size)
            authcid[0] = 0;
        if (passwd_size)
            explicit_bzero(passwd, passwd_size);
    }
    return rc;
}

long sasl_b64_decode(const char *b64, size_t len, unsigned char *out, size_t outsize)
{
    if (!b64 || len == 0 || len % 4 || len / 4 * 3 > outsize)
        return -1;
    long n = b64_decode(b64, len, out);
    return n > 0 ? n : -1;
}

long sasl_b64_encode(const void *in, size_t n, char *out, size_t outsize)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *p = in;
    size_t o = 0;
    if ((n + 2) / 3 * 4 + 1 > outsize)
        return -1;
    for (size_t i = 0; i < n; i += 3) {
        unsigned long q = (unsigned long)p[i] << 16;
        if (i + 1 < n)
            q |= (unsigned long)p[i + 1] << 8;
        if (i + 2 < n)
            q |= p[i + 2];
        out[o++] = a[q >> 18 & 63];
        out[o++] = a[q >> 12 & 63];
        out[o++] = i + 1 < n ? a[q >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? a[q & 63] : '=';
    }
    out[o] = 0;
    return (long)o;
}

/* Decodes one text of 1..SASL_FIELD_MAX bytes without NUL, CR, LF into
 * out: its length, or -1 (out wiped). */
static long text_decode(const char *b64, size_t len, char *out, size_t outsize)
{
    unsigned char m[SASL_PLAIN_B64_MAX / 4 * 3];
    long n = len <= SASL_PLAIN_B64_MAX ? sasl_b64_decode(b64, len, m, sizeof m) : -1;
    if (n < 0 || n > SASL_FIELD_MAX || (size_t)n >= outsize || memchr(m, 0, (size_t)n) ||
        memchr(m, '\r', (size_t)n) || memchr(m, '\n', (size_t)n))
        n = -1;
    if (n > 0) {
        memcpy(out, m, (size_t)n);
        out[n] = 0;
    } else if (outsize) {
        explicit_bzero(out, outsize);
    }
    explicit_bzero(m, sizeof m);
    return n;
}

int sasl_text_decode(const char *b64, size_t len, char *out, size_t outsize)
{
    return text_decode(b64, len, out, outsize) > 0 ? 0 : -1;
}

int sasl_cram_parse(const char *b64, size_t len, char *user, size_t usersize,
                    char hex[SASL_CRAM_HEX + 1])
{
    char m[SASL_FIELD_MAX + 1];
    long n = text_decode(b64, len, m, sizeof m);
    char *sp = n > 0 ? strrchr(m, ' ') : NULL;
    hex[0] = 0;
    if (usersize)
        user[0] = 0;
    if (!sp || sp == m || strlen(sp + 1) != SASL_CRAM_HEX ||
        strspn(sp + 1, "0123456789abcdefABCDEF") != SASL_CRAM_HEX ||
        (size_t)(sp - m) >= usersize)
        return -1;
    memcpy(user, m, (size_t)(sp - m));
    user[sp - m] = 0;
    for (int i = 0; i < SASL_CRAM_HEX; i++) {
        char c = sp[1 + i];
        hex[i] = c >= 'A' && c <= 'F' ? (char)(c - 'A' + 'a') : c;
    }
    hex[SASL_CRAM_HEX] = 0;
    return 0;
}

int sasl_cram_challenge(unsigned long long rand, long long now, const char *host,
                        char *out, size_t outsize)
{
    int w = snprintf(out, outsize, "<%llu.%lld@%s>", rand, now, host);
    return w < 0 || (size_t)w >= outsize ? -1 : 0;
}

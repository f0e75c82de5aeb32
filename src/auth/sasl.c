/*
 * auth/sasl — SASL mechanisms, pure: PLAIN (RFC 4616) decoded from the
 * client's base64 into authzid, authcid and password.
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

/*
 * fuzz_sasl_plain — sasl_plain_decode() on arbitrary input.  The first byte
 * chooses what the rest is: even, the client's base64 text as it came; odd,
 * a PLAIN message, encoded here before decoding (so the fuzzer works on the
 * message's structure rather than on valid base64).  Besides ASan/UBSan,
 * checks what the decoder promises: accepted fields are NUL-terminated
 * within SASL_FIELD_MAX bytes and hold no CR or LF; an accepted text is
 * the one encoding of its fields (re-encoded, it is the input again); a
 * message is accepted exactly when a plain reading of RFC 4616 accepts it,
 * with the same fields; refused input leaves the three buffers empty.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/sasl.h"

#define F (SASL_FIELD_MAX + 1)
#define MSG_MAX (3 * SASL_FIELD_MAX + 2)

/* base64 of in[0..n) into out (room for n / 3 * 4 + 5), NUL-terminated, by
 * the module's own encoder (checked against known texts in
 * test_auth_sasl_mech.c). */
static size_t b64_encode(const unsigned char *in, size_t n, char *out)
{
    long len = sasl_b64_encode(in, n, out, n / 3 * 4 + 5);
    if (len < 0)
        abort();
    return (size_t)len;
}

static void check_field(const char *f)
{
    size_t n = strnlen(f, F);
    if (n > SASL_FIELD_MAX || memchr(f, '\r', n) || memchr(f, '\n', n))
        abort();
}

/* The fields as one message: authzid NUL authcid NUL passwd. */
static size_t join(const char *z, const char *c, const char *p, unsigned char *m)
{
    size_t n = 0, l;
    l = strlen(z); memcpy(m + n, z, l); n += l; m[n++] = 0;
    l = strlen(c); memcpy(m + n, c, l); n += l; m[n++] = 0;
    l = strlen(p); memcpy(m + n, p, l); n += l;
    return n;
}

/* RFC 4616 read plainly: 1 when m[0..n) is a message the decoder must take. */
static int plain_ok(const unsigned char *m, size_t n)
{
    size_t nuls = 0, start = 0, len[3] = { 0 };
    for (size_t i = 0; i < n; i++) {
        if (m[i] == '\r' || m[i] == '\n')
            return 0;
        if (m[i] == 0) {
            if (nuls == 2)
                return 0;
            len[nuls++] = i - start;
            start = i + 1;
        }
    }
    if (nuls != 2)
        return 0;
    len[2] = n - start;
    return len[0] <= SASL_FIELD_MAX && len[1] >= 1 && len[1] <= SASL_FIELD_MAX &&
           len[2] >= 1 && len[2] <= SASL_FIELD_MAX;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char text[2 * SASL_PLAIN_B64_MAX + 8];
    static unsigned char m[MSG_MAX + 8];
    char z[F], c[F], p[F];
    if (size < 1)
        return 0;
    int encode = data[0] & 1;
    const char *in = (const char *)data + 1;
    size_t len = size - 1;
    if (encode) {
        if (len > sizeof text / 4 * 3 - 3)
            return 0;
        len = b64_encode(data + 1, len, text);
        in = text;
    }
    int rc = sasl_plain_decode(in, len, z, F, c, F, p, F);
    if (rc < 0) {
        if (z[0] || c[0] || p[0])
            abort();
        if (encode && plain_ok(data + 1, size - 1))
            abort();                /* a valid message refused */
        return 0;
    }
    if (rc != 0)
        abort();
    check_field(z);
    check_field(c);
    check_field(p);
    if (!c[0] || !p[0])
        abort();
    size_t n = join(z, c, p, m);
    if (encode && (!plain_ok(data + 1, size - 1) || n != size - 1 ||
                   memcmp(m, data + 1, n) != 0))
        abort();                    /* accepted what it must not, or changed it */
    char again[SASL_PLAIN_B64_MAX + 8];
    size_t alen = b64_encode(m, n, again);
    if (alen != len || memcmp(again, in, len) != 0)
        abort();                    /* two texts for one message */
    return 0;
}

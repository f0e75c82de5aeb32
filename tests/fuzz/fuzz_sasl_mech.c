/*
 * fuzz_sasl_mech — the SASL pieces of SMTP AUTH on arbitrary input: a LOGIN
 * response (sasl_text_decode) and a CRAM-MD5 response (sasl_cram_parse).
 * The first byte chooses: even, the rest is the client's base64 as it came;
 * odd, the rest is the decoded text, encoded here first (so the fuzzer works
 * on the text's structure).  Besides ASan/UBSan, checks what the decoders
 * promise: an accepted LOGIN text is 1..SASL_FIELD_MAX bytes without NUL,
 * CR or LF, and re-encoded it is the input again (one text per message); a
 * refused one leaves its buffer empty; an accepted CRAM-MD5 response has a
 * non-empty user without CR or LF and 32 lower-case hex digits, the user,
 * a space and the digits making up the decoded text (up to the digits'
 * case); a refused one leaves both empty.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/sasl.h"

#define F (SASL_FIELD_MAX + 1)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char text[2 * SASL_PLAIN_B64_MAX + 8];
    char out[F], user[F], hex[SASL_CRAM_HEX + 1], again[SASL_PLAIN_B64_MAX + 8];
    if (size < 1)
        return 0;
    const char *in = (const char *)data + 1;
    size_t len = size - 1;
    if (data[0] & 1) {
        long n = sasl_b64_encode(data + 1, len, text, sizeof text);
        if (n < 0)
            return 0;
        in = text;
        len = (size_t)n;
    }
    if (sasl_text_decode(in, len, out, sizeof out) == 0) {
        size_t n = strlen(out);
        if (n < 1 || n > SASL_FIELD_MAX || memchr(out, '\r', n) || memchr(out, '\n', n))
            abort();
        long a = sasl_b64_encode(out, n, again, sizeof again);
        if (a < 0 || (size_t)a != len || memcmp(again, in, len) != 0)
            abort();                /* two texts for one message, or changed */
    } else if (out[0]) {
        abort();
    }
    if (sasl_cram_parse(in, len, user, sizeof user, hex) == 0) {
        size_t u = strlen(user);
        if (!u || memchr(user, '\r', u) || memchr(user, '\n', u) ||
            strlen(hex) != SASL_CRAM_HEX || strspn(hex, "0123456789abcdef") != SASL_CRAM_HEX)
            abort();
        if (sasl_text_decode(in, len, out, sizeof out) < 0 || strlen(out) != u + 1 + 32 ||
            memcmp(out, user, u) || out[u] != ' ' || strncasecmp(out + u + 1, hex, 32))
            abort();
    } else if (user[0] || hex[0]) {
        abort();
    }
    return 0;
}

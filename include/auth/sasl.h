/*
 * auth/sasl — SASL mechanisms for the servers that authenticate (POP3 AUTH,
 * RFC 5034; SMTP AUTH, RFC 4954).  Pure functions over bytes: no I/O, no
 * state, nothing allocated; the session sends the challenges and reads the
 * responses.
 *
 * PLAIN (RFC 4616): the client's response is base64 of
 *     [authzid] NUL authcid NUL passwd
 * sasl_plain_decode checks the base64 strictly (RFC 4648 alphabet, padding
 * required, no white space, unused bits zero: one text per message) and
 * the message: exactly two NULs, no CR or LF anywhere, authcid and passwd
 * of 1..SASL_FIELD_MAX bytes, authzid of 0..SASL_FIELD_MAX.  Other bytes
 * (UTF-8 or not) are passed through: the caller matches the names and the
 * password is hashed as it came.  The session handles the "=" of an empty
 * initial response and the "*" that cancels (RFC 4954, 5034): neither is
 * a PLAIN message, and both are refused here.
 *
 * LOGIN (draft-murchison-sasl-login): two responses, the user name and
 * the password, each base64 of 1..SASL_FIELD_MAX bytes without NUL, CR or
 * LF (sasl_text_decode).
 *
 * CRAM-MD5 (RFC 2195): the server's challenge is base64 of a unique
 * "<random.time@host>" (sasl_cram_challenge); the response is base64 of
 * "user SP 32 lower-case hex digits" (sasl_cram_parse), the digits being
 * HMAC-MD5(secret, challenge), checked by sasl_cram_verify in constant
 * time.  Only accounts with a plaintext-equivalent secret can use it.
 */
#ifndef KM_AUTH_SASL_H
#define KM_AUTH_SASL_H

#include <stddef.h>

#define SASL_FIELD_MAX     255      /* bytes of each field (RFC 4616) */
/* the longest base64 a PLAIN response can be: 3 fields + 2 NULs, encoded */
#define SASL_PLAIN_B64_MAX (((3 * SASL_FIELD_MAX + 2 + 2) / 3) * 4)

/* Decodes b64[0..len) (need not be NUL-terminated) into the three fields,
 * each NUL-terminated in a buffer of the size given after it (a field that
 * does not fit is refused: room for SASL_FIELD_MAX + 1 bytes takes every
 * valid message).  0, or -1 (malformed, too long, or a field does not fit),
 * with the three buffers set to "" (when their size is > 0).  The decoded
 * message is wiped from the stack before returning; wiping passwd after
 * use is the caller's. */
int sasl_plain_decode(const char *b64, size_t len, char *authzid, size_t authzid_size,
                      char *authcid, size_t authcid_size, char *passwd, size_t passwd_size);

/* Strict base64 (as above) of b64[0..len) into out (outsize bytes): the
 * decoded length (> 0), or -1 (malformed, empty, or does not fit). */
long sasl_b64_decode(const char *b64, size_t len, unsigned char *out, size_t outsize);
/* Base64 of in[0..n) into out (outsize bytes, NUL-terminated): its length,
 * or -1 when it does not fit. */
long sasl_b64_encode(const void *in, size_t n, char *out, size_t outsize);

/* A LOGIN response (user name or password): decodes b64[0..len) into out
 * (outsize bytes, NUL-terminated).  0, or -1 (malformed, empty, over
 * SASL_FIELD_MAX, does not fit, or holds NUL, CR or LF) with out wiped. */
int sasl_text_decode(const char *b64, size_t len, char *out, size_t outsize);

#define SASL_CRAM_HEX 32            /* hex digits of the HMAC-MD5 */
/* A CRAM-MD5 response: base64 of "user SP hex" into user (usersize bytes)
 * and hex (SASL_CRAM_HEX + 1 bytes), both NUL-terminated.  The user is
 * 1..SASL_FIELD_MAX bytes without NUL, CR, LF (a space inside is allowed:
 * the last space separates); hex exactly 32 hex digits (either case, given
 * back lower-case).  0 / -1 with both set to "". */
int sasl_cram_parse(const char *b64, size_t len, char *user, size_t usersize,
                    char hex[SASL_CRAM_HEX + 1]);
/* The challenge text "<rand.time@host>" into out (outsize bytes): 0, or
 * -1 when it does not fit. */
int sasl_cram_challenge(unsigned long long rand, long long now, const char *host,
                        char *out, size_t outsize);
/* 1 when hex is HMAC-MD5(secret, challenge) in hex, else 0 (compared in
 * constant time; a digest failure is 0).  src/auth/cram.c. */
int sasl_cram_verify(const char *secret, const char *challenge,
                     const char hex[SASL_CRAM_HEX + 1]);

#endif

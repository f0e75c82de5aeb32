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

#endif

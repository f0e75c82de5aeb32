/*
 * smtp_etrn — the ETRN command (RFC 1985): decides and starts the kick,
 * writes the complete reply line (no CRLF) into out and returns its code.
 * The caller checks the session state first (503 inside a transaction or
 * before HELO/EHLO).
 */
#ifndef KM_SMTP_ETRN_H
#define KM_SMTP_ETRN_H

#include <stddef.h>

struct registry;

int smtp_etrn(const struct registry *reg, const char *arg, size_t arglen,
              char *out, size_t len);

#endif

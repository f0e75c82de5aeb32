/*
 * addr — the RFC 5321 wire form of a mailbox (4.1.2): the one form in which
 * kickmail keeps, stores, sends, logs and prints addresses.  A local part
 * that is a Dot-string is written as it is; any other is written as a
 * Quoted-string, with '"' and '\' escaped by '\' (quoted-pairSMTP), so that
 * "RCPT TO:<" + address + ">" always carries exactly that one mailbox and
 * nothing the sender wrote inside quotes can end the path or add
 * parameters.  Pure functions: no I/O, no global state.
 */
#ifndef KM_ADDR_H
#define KM_ADDR_H

#include <stddef.h>

/* Longest wire form of a local part of up to 64 bytes (every byte escaped,
 * two quotes) and of a whole address with a domain of up to 255 bytes. */
#define ADDR_LOCAL_WIRE_MAX (2 * 64 + 2)
#define ADDR_WIRE_MAX       (ADDR_LOCAL_WIRE_MAX + 1 + 255)

/* Writes the local part local[0..len) (the unquoted form: what the sender
 * meant) in wire form into out (outlen bytes, NUL included).  Returns the
 * length written, or -1 when a byte is outside printable ASCII 32..126 (no
 * wire form exists) or out is too small. */
int addr_quote(const char *local, size_t len, char *out, size_t outlen);

/* "local@domain" in wire form: addr_quote() of local, '@', the domain as it
 * is (a domain name or address literal, as the parser gives it).  Same
 * results as addr_quote(); -1 also when the domain is empty or holds a
 * byte other than letters, digits and "-._:[]". */
int addr_format(const char *local, const char *domain, char *out, size_t outlen);

/*
 * The wire form of a stored address: "" stays "" (the null sender); else
 * the domain is what follows the last '@' (checked as in addr_format()) and
 * the local part what precedes it, which is kept when it is a Dot-string,
 * unquoted and quoted again (minimally) when it is one well-formed
 * Quoted-string, and quoted when it is neither: the unquoted form that
 * earlier versions stored ("x y@acme.example" becomes
 * "\"x y\"@acme.example").  Same results as addr_format(); -1 also when
 * there is no '@'.  The result is a fixed point: addr_canon() of it is it.
 * out must not overlap addr.
 */
int addr_canon(const char *addr, char *out, size_t outlen);

/* 1 when addr is "" or exactly its own addr_canon() form, else 0. */
int addr_is_canon(const char *addr);

#endif

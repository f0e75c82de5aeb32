/*
 * radius — the RADIUS accounting listener (RFC 2866): access servers (NAS)
 * announce each call's Start, Interim-Update and Stop, and Accounting-On/Off
 * when they boot; each becomes a link_event() (source radius), so a
 * customer's held mail moves as soon as its call is up.
 *
 * Contract (kickmaild(8), DETECTORS):
 * - Only Accounting-Request datagrams from a configured client (the longest
 *   `client` prefix holding the source address) with a right Request
 *   Authenticator are acted on; anything else gets no reply, is counted and
 *   logged at most once a minute per source.
 * - Who: User-Name as a RADIUS user (link_event.h).  Unknown: answered,
 *   logged once per name per hour.
 * - Start/Interim: link up at Framed-IP(v6)-Address, TTL the customer's
 *   link_ttl, session "NAS/Acct-Session-Id".  Raises nothing when the event
 *   (now - Acct-Delay-Time) is older than link_ttl or its session was
 *   stopped (stopped sessions are remembered 2 hours, up to 65,536 of them).
 * - Stop: link down only if the link is up with that session.
 * - Accounting-On/Off: every radius link whose session starts "NAS/" down.
 * - The Accounting-Response goes out once the change is durable.  A
 *   retransmission (same source, port, identifier, authenticator) within
 *   30 s is answered again without acting twice (up to 8,192 remembered).
 */
#ifndef KM_RADIUS_H
#define KM_RADIUS_H

#include <stddef.h>
#include <stdint.h>

#include "link/radius_parse.h"

struct config;
struct event_base;

/* Binds the radius section's listen addresses (before privileges are
 * dropped); nothing is read until radius_configure().  No section: 0 and
 * nothing bound.  0 / -1 with err. */
int radius_bind(struct event_base *base, const struct config *c, char *err, size_t errlen);
/* Takes c's clients and secrets (copied: c may be freed after) and starts
 * reading.  At start and at every reload; the sockets stay. */
void radius_configure(const struct config *c);
/* Closes the sockets: no more datagrams, no more replies. */
void radius_stop(void);
/* Frees everything; after link_event_shutdown() (no callback can come). */
void radius_shutdown(void);

/* ---- pure helpers (for tests) ---- */

/* 1 when the Request Authenticator of pkt (len bytes, its Length field
 * already checked) is MD5(code+id+length+16 zero bytes+attributes+secret). */
int radius_auth_ok(const unsigned char *pkt, size_t len, const char *secret, size_t slen);
/* The Accounting-Response to a request: code 5, its id, length 20, and the
 * Response Authenticator MD5(5+id+20+request authenticator+secret). */
void radius_response(uint8_t id, const uint8_t req_auth[RADIUS_AUTH_LEN],
                     const char *secret, size_t slen, unsigned char out[RADIUS_HDR_LEN]);
/* The NAS part of a session id: NAS-Identifier, else NAS-IP-Address, else
 * NAS-IPv6-Address, else peer (the source address); bytes outside printable
 * ASCII and '/' become '?', cut to 31 bytes. */
void radius_nas_name(const struct radius_acct *a, const char *peer, char *out, size_t outlen);
/* "NAS/Acct-Session-Id" (no Acct-Session-Id: "NAS/"), non-printables as '?',
 * cut to 63 bytes (what the link table keeps). */
void radius_session(const struct radius_acct *a, const char *peer, char *out, size_t outlen);

#endif

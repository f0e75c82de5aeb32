/*
 * tlspolicy — the delivery TLS policy's decisions, pure (no I/O): what the
 * SMTP client does after the server's EHLO/HELO reply, and the reason it
 * gives when a policy cannot be met (the mail is kept: 4xx-class).
 */
#ifndef KM_MTA_TLSPOLICY_H
#define KM_MTA_TLSPOLICY_H

#include <stddef.h>

#include "mta/smtp_client.h"

enum tlspol_step {
    TLSPOL_STEP_READY,          /* go on (in plaintext or already under TLS) */
    TLSPOL_STEP_STARTTLS,       /* send STARTTLS */
    TLSPOL_STEP_FAIL,           /* policy not met: QUIT, keep the mail, why */
};

/* After a successful EHLO/HELO.  policy: the customer's; is_tls: the
 * connection is under TLS already; offered: the reply listed STARTTLS;
 * have_ctx: a client TLS context exists; peer: "host[addr]" for why. */
enum tlspol_step tlspol_after_greeting(enum smtp_client_tls policy, int is_tls,
                                       int offered, int have_ctx, const char *peer,
                                       char *why, size_t whylen);
/* Does the policy require TLS (encrypt, verify)? */
int tlspol_required(enum smtp_client_tls policy);

#endif

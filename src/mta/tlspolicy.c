/*
 * tlspolicy — the delivery TLS policy's decisions (tlspolicy.h), kept out of
 * client.c so that they can be tested alone.  Trusts its arguments (the
 * client's view of the EHLO reply); guarantees that a policy requiring TLS
 * never goes on in plaintext.  The reasons follow Postfix's wording ("TLS is
 * required, but was not offered by host ...").
 */
#include <stdio.h>

#include "tlspolicy.h"

int tlspol_required(enum smtp_client_tls policy)
{
    return policy == SMTPC_TLS_ENCRYPT || policy == SMTPC_TLS_VERIFY;
}

enum tlspol_step tlspol_after_greeting(enum smtp_client_tls policy, int is_tls,
                                       int offered, int have_ctx, const char *peer,
                                       char *why, size_t whylen)
{
    if (whylen)
        why[0] = 0;
    if (policy == SMTPC_TLS_NONE || is_tls)
        return TLSPOL_STEP_READY;
    if (offered && have_ctx)
        return TLSPOL_STEP_STARTTLS;
    if (!tlspol_required(policy))
        return TLSPOL_STEP_READY;
    if (have_ctx)
        snprintf(why, whylen, "TLS is required, but was not offered by host %s", peer);
    else
        snprintf(why, whylen, "TLS is required, but no client TLS context is "
                 "available for %s", peer);
    return TLSPOL_STEP_FAIL;
}

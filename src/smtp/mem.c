/*
 * mem — the two-level account of message data held in memory by SMTP
 * sessions (see include/smtp/smtp_mem.h).  Trusts its caller to pass sizes of
 * data it really holds; guarantees both totals are exactly the sum of the
 * parts taken and not yet released, or aborts.
 */
#include "core/log.h"
#include "smtp/smtp_mem.h"

enum smtp_mem_result smtp_mem_take(struct smtp_mem *m, uint64_t n, uint64_t max_all,
                                   uint64_t max_client)
{
    if (n > max_all || *m->all > max_all - n)
        return SMTP_MEM_OVER_ALL;
    if (n > max_client || *m->client > max_client - n)
        return SMTP_MEM_OVER_CLIENT;
    *m->all += n;
    *m->client += n;
    m->mine += n;
    return SMTP_MEM_OK;
}

void smtp_mem_release(struct smtp_mem *m)
{
    if (*m->all < m->mine || *m->client < m->mine)
        log_fatal("smtp: message data account broken: releasing %llu bytes of "
                  "%llu (all) and %llu (client)", (unsigned long long)m->mine,
                  (unsigned long long)*m->all, (unsigned long long)*m->client);
    *m->all -= m->mine;
    *m->client -= m->mine;
    m->mine = 0;
}

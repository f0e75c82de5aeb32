/*
 * smtp_mem — accounting of the message data SMTP sessions hold in memory
 * before the final dot.  Each session's part is counted in two shared
 * totals: all sessions (bounded by max_data_in_memory) and the session's
 * client address (bounded by max_data_in_memory_per_client), so that one
 * client cannot take the whole budget.  O(1) per chunk; the totals can
 * neither leak nor go below zero as long as every session releases its
 * part when its transaction ends (message end, RSET, error, disconnect).
 */
#ifndef KM_SMTP_MEM_H
#define KM_SMTP_MEM_H

#include <stdint.h>

struct smtp_mem {
    uint64_t *all;          /* total of all sessions */
    uint64_t *client;       /* total of this session's client address */
    uint64_t mine;          /* this session's part of both totals */
};

enum smtp_mem_result {
    SMTP_MEM_OK,
    SMTP_MEM_OVER_ALL,      /* would go over max_all: nothing taken */
    SMTP_MEM_OVER_CLIENT,   /* would go over max_client: nothing taken */
};

/* Adds n to the session's part and to both totals, unless a total would
 * then be over its bound (max_all first): then nothing changes. */
enum smtp_mem_result smtp_mem_take(struct smtp_mem *m, uint64_t n, uint64_t max_all,
                                   uint64_t max_client);

/* Gives the session's whole part back to both totals (mine becomes 0).
 * A total smaller than the part is a broken invariant: log_fatal. */
void smtp_mem_release(struct smtp_mem *m);

#endif

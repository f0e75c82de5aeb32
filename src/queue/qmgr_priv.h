/*
 * Private to the queue manager's own two files: the index (qmgr.c) and the
 * operator's durable actions on it (qmgr_ops.c).  Only those two include
 * it: bounce.c uses qmgr_int.h, delivery (mta/) qmgr_deliver.h, other
 * modules qmgr.h.
 * It holds the state both files work on and the few index helpers
 * qmgr_ops.c calls.
 */
#ifndef KM_QMGR_PRIV_H
#define KM_QMGR_PRIV_H

#include <stddef.h>
#include <stdint.h>

#include "queue/qmgr.h"
#include "queue/qmgr_deliver.h"

struct config;
struct event_base;
struct evbuffer;
struct hmap;
struct registry;
struct spool;

/* The queue manager's state: one instance, Q, defined in qmgr.c. */
struct qmgr_state {
    struct event_base *base;
    struct spool *spool;
    const struct config *cfg;
    const struct registry *reg;
    uint64_t last_id;
    /* messages sorted by id; msgs[i] == NULL when deleted */
    uint64_t *ids;
    struct qmsg **msgs;
    size_t nslots, cap, nlive;
    struct hmap *custs;             /* name -> struct qcust */
    struct hmap *held_domains;      /* domain -> strdup'd domain */
    struct qrcpt_list outbound, orphans;
    struct hmap *local_bytes;       /* recipient address of a local domain ->
                                     * struct qlocal: its queued bytes */
    struct qmgr_hooks hooks;        /* the delivery tier's (qmgr_set_hooks) */
    int stopping;                   /* qmgr_stop() was called */
};
extern struct qmgr_state Q;

/* Removes a message from the index (detaching its pending recipients) and
 * drops its segment references; m is freed. */
void qmgr_msg_forget(struct qmsg *m);
/* Writes the customer and domain holds to out in the format of state/holds
 * (read back at start by qmgr.c). */
void qmgr_holds_encode(struct evbuffer *out);
/* m->unrecorded was just set: its STATE is appended at the end of the loop
 * turn (qmgr_ops.c).  qmgr_defer_shutdown() frees what it holds. */
void qmgr_defer_note(struct qmsg *m);
void qmgr_defer_shutdown(void);

#endif

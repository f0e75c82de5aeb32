/*
 * Internal interface between the queue index (qmgr.c, with its operator
 * actions in qmgr_ops.c) and its bounces and expiry (bounce.c).  Not for
 * other modules: the delivery tier (mta/) uses qmgr_deliver.h.
 * What qmgr.c and qmgr_ops.c share only between themselves is in
 * qmgr_priv.h.
 */
#ifndef KM_QMGR_INT_H
#define KM_QMGR_INT_H

#include "queue/qmgr.h"
#include "queue/qmgr_deliver.h"

struct spool;

struct spool *qmgr_spool(void);

/* Deferrals noted whose STATE records are not queued yet, or result and
 * deferral records (qmgr_msg_record) not yet synced (part of qmgr_busy: a
 * clean stop writes them and runs their callbacks first).  (qmgr_ops.c) */
int qmgr_defer_pending(void);

/* bounce.c: starts and stops the expiry tick (from qmgr_init,
 * qmgr_shutdown); bounces are in progress (part of qmgr_busy). */
void bounce_init(void);
void bounce_shutdown(void);
int bounce_busy(void);

#endif

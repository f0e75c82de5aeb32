/*
 * Internal interface between the queue index (qmgr.c, with its operator
 * actions in qmgr_ops.c) and delivery (deliver.c, with its bounces and
 * expiry in bounce.c).  Not for other modules.
 * What qmgr.c and qmgr_ops.c share only between themselves is in
 * qmgr_priv.h.
 */
#ifndef KM_QMGR_INT_H
#define KM_QMGR_INT_H

#include "qmgr.h"

struct config;
struct registry;
struct spool;
struct event_base;

const struct config *qmgr_config(void);
const struct registry *qmgr_registry(void);
struct spool *qmgr_spool(void);
struct event_base *qmgr_base(void);

/* Final results for some recipients of m were applied in memory (status
 * QR_DELIVERED / QR_BOUNCED): make them durable (STATE, or DONE when nothing
 * is pending; the message is then forgotten once DONE is synced).  cb may be
 * NULL.  (qmgr_ops.c) */
void qmgr_msg_record(struct qmsg *m, qmgr_cb *cb, void *arg);
/* Marks r final (delivered or bounced) in memory: detaches it. */
void qmgr_rcpt_final(struct qrcpt *r, enum qr_status st);
/* Defers a recipient: its reason becomes spool_reason_clean(reason)
 * ("deferred" when that is empty).  When status or reason changed, the
 * message's STATE record is appended at the end of this loop turn (one for
 * all the recipients of a message deferred in the turn; not waited for: a
 * crash before its batch is synced loses only this reason).  The same
 * reason again writes nothing.  (qmgr.c; the record: qmgr_ops.c) */
void qmgr_rcpt_defer(struct qrcpt *r, const char *reason);
/* Deferrals noted whose STATE records are not queued yet (part of
 * qmgr_delivery_busy: a clean stop writes them first).  (qmgr_ops.c) */
int qmgr_defer_pending(void);

/* deliver.c, called by qmgr.c */
int deliver_init(char *err, size_t errlen);
void deliver_shutdown(void);
void deliver_new_mail(struct qmsg *m);          /* just indexed */
void deliver_cust_gone(struct qcust *qc);       /* before it is freed */
void deliver_reconfigured(void);                /* after re-attaching recipients */
void deliver_rcpt_leaving(struct qrcpt *r);     /* before detaching r */
void deliver_resume(struct qcust *qc);          /* after a release */

#endif

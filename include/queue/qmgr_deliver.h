/*
 * qmgr_deliver — the queue's side of delivery: what the delivery tier (mta/,
 * deliver.h) registers with the queue and calls in it.  The queue never
 * names a delivery function: it tells delivery of new mail, a reload, a
 * release, a recipient leaving a customer's list or a customer going away
 * through the hooks delivery registered.  Delivery reports each recipient's
 * result here (final, deferred, or a 5xx to bounce), and the queue makes it
 * durable.  Bounces, delay warnings and expiry stay the queue's job
 * (bounce.c).
 */
#ifndef KM_QMGR_DELIVER_H
#define KM_QMGR_DELIVER_H

#include <stddef.h>

#include "queue/qmgr.h"

struct config;
struct event_base;
struct evbuffer;
struct registry;

/* What the queue tells the delivery tier.  Every member may be NULL. */
struct qmgr_hooks {
    /* m was just indexed (durable) and its recipients attached. */
    void (*new_mail)(struct qmsg *m);
    /* qc left the configuration and is about to be freed: release qc->dl. */
    void (*cust_gone)(struct qcust *qc);
    /* A reload re-attached the recipients to the new customers. */
    void (*reconfigured)(void);
    /* r is about to leave r->cust's list (final, moved, deleted). */
    void (*rcpt_leaving)(struct qrcpt *r);
    /* A release concerning qc took effect (durable). */
    void (*resume)(struct qcust *qc);
    /* A recipient was refused at RCPT because maildrop `drop` is full by its
     * known usage: its files may have been removed by another program
     * (Dovecot, a POP3 client of another server), so delivery may read the
     * maildrop again. */
    void (*maildrop_full)(const char *drop);
};
/* Registers the hooks (copied; NULL: none).  After qmgr_init(), which
 * starts with none. */
void qmgr_set_hooks(const struct qmgr_hooks *h);

const struct config *qmgr_config(void);
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
/* Logs one recipient's result, Postfix-like:
 * "ID: to=<addr>, relay=RELAY, delay=N, status=STATUS (TEXT)". */
void qmgr_log_result(const struct qmsg *m, const struct qrcpt *r, const char *relay,
                     const char *status, const char *text);

/* Returns n recipients r of m in one DSN to the sender (for a null sender
 * see bounce_to): a failure (the recipients become QR_BOUNCED) or, with
 * delayed, a delay warning (they stay queued; m->warned is set).  status:
 * the DSN status of all of them, or NULL to take each from its diag
 * ("550 5.1.1 ..."); diag (copied): each one's diagnostic; remote: the
 * server that gave it, or NULL; body: m's content when already read (taken
 * over), or NULL to read it from the spool.  m stays active until the DSN is
 * queued; the results are then made durable and cb(0) runs (cb may be
 * NULL), or cb(err) when the DSN could not be queued (nothing changed).
 * (bounce.c) */
void bounce_rcpts(struct qmsg *m, size_t n, struct qrcpt **r, const char *status,
                  const char *const *diag, const char *remote,
                  struct evbuffer *body, int delayed, qmgr_cb *cb, void *arg);

/* Shutdown: the queue starts nothing new (no expiry, no delay warnings);
 * qmgr_stopping() tells delivery to start nothing either. */
void qmgr_stop(void);
int qmgr_stopping(void);
/* Bounces in progress, or deferrals whose STATE records are not queued yet
 * (a clean stop waits for both). */
int qmgr_busy(void);

#endif

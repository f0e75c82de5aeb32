/*
 * Private to delivery's two files: deliver.c (connections, passes, retries)
 * and bounce.c (bounces, delay warnings, expiry).  Only those two include
 * it; the queue index talks to them through qmgr_int.h.
 */
#ifndef KM_DELIVER_INT_H
#define KM_DELIVER_INT_H

#include <stddef.h>

#include "qmgr.h"

struct evbuffer;

/* ---- deliver.c, for bounce.c ---- */

/* Logs one recipient's result, Postfix-like:
 * "ID: to=<addr>, relay=RELAY, delay=N, status=STATUS (TEXT)". */
void deliver_log_result(const struct qmsg *m, const struct qrcpt *r, const char *relay,
                        const char *status, const char *text);
/* Delivery is shutting down (qmgr_stop_delivery): nothing new starts. */
int deliver_stopping(void);

/* ---- bounce.c, for deliver.c ---- */

/* Returns n recipients r of m in one DSN to the sender (for a null sender
 * see bounce_to): a failure (the recipients become QR_BOUNCED) or, with
 * delayed, a delay warning (they stay queued; m->warned is set).  status:
 * the DSN status of all of them, or NULL to take each from its diag
 * ("550 5.1.1 ..."); diag (copied): each one's diagnostic; remote: the
 * server that gave it, or NULL; body: m's content when already read (taken
 * over), or NULL to read it from the spool.  m stays active until the DSN is
 * queued; the results are then made durable and cb(0) runs (cb may be
 * NULL), or cb(err) when the DSN could not be queued (nothing changed). */
void bounce_rcpts(struct qmsg *m, size_t n, struct qrcpt **r, const char *status,
                  const char *const *diag, const char *remote,
                  struct evbuffer *body, int delayed, qmgr_cb *cb, void *arg);
/* Starts and stops the expiry tick (from deliver_init, deliver_shutdown). */
void bounce_init(void);
void bounce_shutdown(void);
/* Bounces are in progress (part of qmgr_delivery_busy). */
int bounce_busy(void);

#endif

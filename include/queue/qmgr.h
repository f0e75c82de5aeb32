/*
 * qmgr — the queue manager: the in-memory index of every message the spool
 * holds, per customer, and the operator's actions on it.  It is rebuilt from
 * the spool at start (metadata only).  Per customer it knows the waiting
 * recipients (in arrival order), message count, bytes and oldest arrival, so
 * anything done for one customer costs O(that customer's mail).
 *
 * Recipients are attached to customers by domain through the registry when
 * indexed and again after every reload: a recipient whose domain lost its
 * customer becomes an orphan (customer NULL, not outbound) and is kept.
 * Outbound recipients (flag SPOOL_RCPT_OUTBOUND) have no customer.
 *
 * Every change an operator makes is durable before its callback runs.
 * Delivery (mta/, deliver.h) is a tier above: it registers hooks with the
 * queue and reports results through qmgr_deliver.h.
 */
#ifndef KM_QMGR_H
#define KM_QMGR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include "spool/spool.h"

struct event_base;
struct evbuffer;
struct config;
struct registry;
struct customer;

#define QUEUE_ID_LEN 13     /* rendered length, see qmgr_id_str() */

enum qr_status { QR_QUEUED, QR_DEFERRED, QR_DELIVERED, QR_BOUNCED };

struct qmsg;
struct qcust;
struct qdeliv;                      /* the delivery tier's, opaque here */

struct qrcpt {
    char *addr;                     /* full address */
    const char *domain;             /* points into addr after the last '@' */
    struct qmsg *msg;
    struct qcust *cust;             /* NULL: outbound or orphan */
    char *reason;                   /* NULL or last deferral reason */
    uint8_t status;                 /* enum qr_status */
    uint8_t outbound;               /* SPOOL_RCPT_OUTBOUND was set */
    uint8_t local;                  /* counted in its address's queued bytes
                                     * (attached to a local domain) */
    uint32_t pass;                  /* owned by the delivery tier (mta/): the pass
                                     * that last took it; the queue only zeroes
                                     * it when attaching r to a customer */
    TAILQ_ENTRY(qrcpt) link;        /* in cust->rcpts, or the outbound/orphan list */
};
TAILQ_HEAD(qrcpt_list, qrcpt);

struct qmsg {
    uint64_t id;
    char idstr[QUEUE_ID_LEN + 1];
    int64_t arrival;                /* epoch seconds */
    uint64_t size;                  /* body bytes as stored (Received included) */
    char *sender;                   /* "" for <> */
    struct spool_loc loc;
    uint32_t state_seg;             /* segment of the latest STATE record, 0 = none */
    uint8_t held;                   /* operator hold on this message (durable) */
    uint8_t held_next;              /* the hold the newest STATE queued carries */
    uint8_t warned;                 /* delay DSN sent (SPOOL_MSG_WARNED) */
    uint8_t active;                 /* deliveries/bounces/a delete in progress (0 = idle) */
    uint8_t unrecorded;             /* a deferral changed since the last STATE was queued */
    uint16_t nrcpt;
    uint16_t npending;              /* recipients not yet delivered/bounced */
    struct qrcpt rcpts[];           /* nrcpt entries */
};

struct qcust {
    char *name;
    const struct customer *cfg;     /* NULL when the customer left the configuration */
    struct qrcpt_list rcpts;        /* pending recipients, arrival order */
    unsigned nmsg;                  /* messages with a pending recipient here */
    uint64_t bytes;                 /* sum of those messages' sizes */
    uint8_t held;                   /* customer hold (durable, in state/holds) */
    struct qdeliv *dl;              /* owned by the delivery tier (mta/ defines it;
                                     * released by its cust_gone hook), NULL when
                                     * none */
};

/* Set up and rebuild from the spool (synchronous, before the loop runs). */
int qmgr_init(struct event_base *base, struct spool *sp, const struct config *c,
              const struct registry *r, char *err, size_t errlen);
void qmgr_shutdown(void);
/* After a reload: re-attach every recipient to the new registry's customers. */
void qmgr_reconfigure(const struct config *c, const struct registry *r);
/* The registry in force (the last one qmgr_init/qmgr_reconfigure got; on
 * the loop only).  For readers such as kickq maildrops. */
const struct registry *qmgr_registry(void);

/* Queue IDs: unique, increasing, stable across restarts. */
uint64_t qmgr_new_id(void);
void qmgr_id_str(uint64_t id, char out[QUEUE_ID_LEN + 1]);
/* Has s the queue-ID form of INTERFACE.md (10-20 upper-case letters and
 * digits)?  Tells queue IDs apart from customers and domains. */
int qmgr_id_form(const char *s);
/* Parses a queue ID (10-20 upper-case letters and digits); 0 / -1. */
int qmgr_id_parse(const char *s, uint64_t *id);

/* May the customer take `bytes` more?  Its held bytes, and for deliver =
 * "maildrop" also those in its domain maildrop (maildir_usage), against its
 * quota.  0 yes, -1 over quota. */
int qmgr_quota_check(const struct customer *c, uint64_t bytes);
/* May recipient addr of customer c take `bytes` more?  The customer's quota
 * as qmgr_quota_check(), then for a local domain (DELIVER_LOCAL) the quota of
 * addr's maildrop: the bytes in it (maildir_usage) plus those of its mail
 * still queued.  0 yes, -1 the customer is over quota, -2 the maildrop is.
 * O(1). */
int qmgr_quota_check_rcpt(const struct customer *c, const char *addr, uint64_t bytes);
/* Bytes of the queued messages with a pending recipient addr (any case) of
 * a local domain.  O(1). */
uint64_t qmgr_local_bytes(const char *addr);

/* Stores and indexes a received message; cb(0) once durable, or cb(errno).
 * body is drained.  env->id comes from qmgr_new_id(). */
typedef void qmgr_cb(int err, void *arg);
void qmgr_submit(const struct spool_env *env, struct evbuffer *body,
                 qmgr_cb *cb, void *arg);
/* A message starts (+1) or stops (-1) arriving: the spool's commit delay
 * (spool_incoming()). */
void qmgr_incoming(int delta);

/* Lookups and iteration for the control socket. */
struct qmsg *qmgr_msg_by_id(uint64_t id);
size_t qmgr_msg_count(void);
/* Every message in arrival order (ties: id). *pos starts at 0; NULL at the end. */
struct qmsg *qmgr_msg_next(size_t *pos);
/* Customers known to the index (every configured customer, plus any with mail
 * left after leaving the configuration), by name. */
struct qcust *qmgr_cust_by_name(const char *name);
struct qcust *qmgr_cust_next(size_t *pos);
/* The customer owning a domain (exact, case-insensitive), or NULL. */
struct qcust *qmgr_cust_by_domain(const char *domain);
/* Outbound and orphan recipients waiting. */
const struct qrcpt_list *qmgr_outbound(void);
const struct qrcpt_list *qmgr_orphans(void);
/* Effective hold of one recipient: message hold, customer hold or domain hold. */
int qmgr_rcpt_held(const struct qrcpt *r);
int qmgr_domain_held(const char *domain);
/* Oldest arrival among a customer's waiting mail (0 when none). */
int64_t qmgr_cust_oldest(const struct qcust *qc);

/* Operator actions.  target: customer name, domain, or queue ID.  On a bad
 * target they return -1 with why in err, without calling cb; else 0 and cb
 * runs once the change is durable. */
int qmgr_hold(const char *target, qmgr_cb *cb, void *arg, char *err, size_t errlen);
int qmgr_release(const char *target, qmgr_cb *cb, void *arg, char *err, size_t errlen);
/* Deletes messages silently; unknown IDs are an error (nothing deleted). */
int qmgr_delete(size_t nids, const uint64_t *ids, qmgr_cb *cb, void *arg,
                char *err, size_t errlen);

/* Bounces every pending recipient of a message (kickq bounce); cb when the
 * DSN is queued and the results are durable.  (bounce.c) */
int qmgr_bounce(uint64_t id, qmgr_cb *cb, void *arg, char *err, size_t errlen);

/* Reads a message body (for `show --body`) off the loop. */
void qmgr_read_body(const struct qmsg *m, struct evbuffer *out, qmgr_cb *cb, void *arg);

#endif

/*
 * Private to delivery's two files: deliver.c (passes, connections,
 * retries, the queue's hooks) and deliver_kick.c (kicks and ETRN).  Only
 * they include it; other modules use deliver.h, and the transports
 * transport.h.
 */
#ifndef KM_DELIVER_INT_H
#define KM_DELIVER_INT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include <event2/util.h>

#include "queue/qmgr.h"

struct event;
struct resolve_req;
struct resolve_result;
struct transport_dest;

enum dl_mode { DL_IDLE, DL_KICK, DL_ONLINE };

struct conn;
LIST_HEAD(conn_list, conn);
struct dl_attach;

/* A customer's delivery state (qc->dl; the queue keeps it opaque). */
struct qdeliv {
    struct qcust *qc;
    enum dl_mode mode;
    char host[64];                  /* the numeric address connected to; "" while
                                     * the host name is being looked up */
    int port;
    struct resolve_req *dns;        /* lookup of the host name in flight */
    struct resolve_result *addrs;   /* its addresses, for this pass */
    size_t addr_next;               /* the next of them to try */
    uint32_t pass;                  /* this pass's mark (r->pass: taken in it) */
    struct qrcpt *cursor;           /* next recipient the pass looks at (moved
                                     * past a recipient that leaves the list:
                                     * the rcpt_leaving hook) */
    unsigned nconn;
    struct conn_list conns;
    long backoff;                   /* current retry delay, 0 = none yet */
    struct event *retry_ev;
    double retry_at;                /* when retry_ev fires (util_now_mono) */
    int deferred;                   /* something was deferred in this pass */
    int restart;                    /* start a new pass when this one ends */
    int kicked;                     /* this pass was started by a kick or ETRN */
    enum { AGAIN_NONE, AGAIN_ETRN, AGAIN_KICK } again;  /* a kick joined this pass */
    int tls_plain;                  /* tls "may": the handshake failed, go plaintext */
    char last_error[256];           /* connection-level failure in this pass */
    double last_etrn;               /* an ETRN last started a pass (util_now_mono), 0 never */
    struct event *etrn_ev;          /* the pass owed to ETRNs within etrn_interval */
    struct dl_attach *attach;       /* an ODMR pass over an attached connection
                                     * (deliver_attach.c), NULL when none */
};

/* ---- deliver.c, for deliver_kick.c ---- */

/* The customer's delivery state, made when it has none. */
struct qdeliv *dl_get(struct qcust *qc);
/* A pass is under way: connections open, or the host name being looked up. */
int dl_busy(const struct qdeliv *d);
/* Where the customer's mail goes now (its transport's dest): 0 with *dst
 * (a numeric address, or for a fixed host a name), or -1 with why. */
int dl_dest(const struct qcust *qc, struct transport_dest *dst, char *err, size_t errlen);
/* Is the customer reachable without a kick (link up, or online "always")? */
int dl_online(const struct qcust *qc);
/* Begins a pass: its connections are connecting when this returns.  -1
 * when there is no destination (the customer goes idle).  With 0 and no
 * connection open the caller ends the pass with pass_end(). */
int pass_open(struct qdeliv *d);
/* A pass is over: the next one (restart), the next address, deferrals,
 * the retry, and the pass kicks asked for meanwhile (kick_again). */
void pass_end(struct qdeliv *d);

/* The recipients the pass did not get to are deferred with d->last_error
 * (when set). */
void pass_defer_rest(struct qdeliv *d);

/* ---- deliver_attach.c, for deliver.c ---- */

/* r is one of the domains the attached pass serves. */
int attach_wants(const struct qdeliv *d, const struct qrcpt *r);
/* The attached pass's target: the connection (taken: NULL after) and peer. */
struct io *attach_take_io(struct qdeliv *d);
void attach_dest(const struct qdeliv *d, struct transport_dest *dst);
/* Counts one recipient's result of the attached pass (2: sent, 4: deferred, 5: bounced). */
void attach_count(struct qdeliv *d, int cls);
/* The attached pass is over (pass_end): its mail not tried deferred, the
 * ODMR side told, then the customer's usual delivery resumes. */
void attach_pass_end(struct qdeliv *d);
/* d is being freed with its attached pass (the customer left). */
void attach_gone(struct qdeliv *d);

/* ---- deliver_kick.c, for deliver.c ---- */

/* d->etrn_ev: the pass owed to ETRNs within etrn_interval is due. */
void etrn_fire(evutil_socket_t fd, short what, void *arg);
/* The end of a pass that kicks joined: their pass follows. */
void kick_again(struct qdeliv *d);

#endif

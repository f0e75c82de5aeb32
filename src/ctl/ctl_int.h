/*
 * Internal interface between the control socket server (ctl.c: sessions,
 * replies, the handler table) and the handlers kept apart from it
 * (ctl_deliver.c).  Not for other modules: they use ctl.h.
 */
#ifndef KM_CTL_INT_H
#define KM_CTL_INT_H

#include <sys/queue.h>

#include "ctl.h"

struct evbuffer;
struct io;
struct listener_conn;
struct qcust;
struct qmsg;
struct ctl_link;

enum ctl_state {
    CS_READ,        /* waiting for the request line */
    CS_WAIT,        /* request taken, answer not written yet */
    CS_WRITE,       /* answer queued; freed when drained */
};

struct ctl_sess {
    struct listener_conn *conn; /* the listener's record (counts the session) */
    struct io *io;              /* NULL once the client is gone (CS_WAIT only) */
    enum ctl_state state;
    long uid;                   /* peer uid, -1 unknown */
    unsigned opts;              /* CTL_OPT_* of the request */
    const char *done_word;      /* hold/release/delete: "held", ... */
    char *target;               /* ... and what it was done to */
    struct evbuffer *env;       /* show: envelope, rendered before the body read */
    struct evbuffer *body;      /* show: the body being read */
    LIST_ENTRY(ctl_sess) entry;
};

/* "0\n" + body (drained; may be NULL).  Frees s when the client is gone. */
void ctl_reply_ok(struct ctl_sess *s, struct evbuffer *body);
/* "CODE reason\n" (code 1 failure, 2 usage).  Frees s when the client is gone. */
void ctl_reply_fail(struct ctl_sess *s, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Parses a QUEUEID argument; replies and returns NULL when it is no use. */
struct qmsg *ctl_msg_arg(struct ctl_sess *s, const char *arg);

/* ctl_deliver.c: handlers of the table in ctl.c */
void ctl_cmd_bounce(struct ctl_sess *s, const struct ctl_req *rq);
void ctl_cmd_kick(struct ctl_sess *s, const struct ctl_req *rq);
void ctl_cmd_link(struct ctl_sess *s, const struct ctl_req *rq);
void ctl_cmd_links(struct ctl_sess *s, const struct ctl_req *rq);
/* The link columns of a customer's summary line, from the link table. */
void ctl_link_of(const struct qcust *qc, struct ctl_link *l);

#endif

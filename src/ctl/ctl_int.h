/*
 * Internal interface of the control socket server's session (ctl.c: the
 * connection, the request, the replies) for the command handlers (cmd_*.c,
 * declared in cmd.h) and the handler table (ctl_table.c).  Not for other
 * modules: they use ctl.h.  Handlers include this header; ctl.c includes
 * ctl_table.h, never a handler's header.
 */
#ifndef KM_CTL_INT_H
#define KM_CTL_INT_H

#include <stdint.h>
#include <sys/queue.h>

#include "ctl/ctl.h"

struct evbuffer;
struct io;
struct listener_conn;

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

/* A command's handler: answers exactly once with ctl_reply_ok or
 * ctl_reply_fail, before returning or later from a callback (s stays
 * allocated until then).  s may be gone when it returns. */
typedef void ctl_handler(struct ctl_sess *s, const struct ctl_req *rq);

/* "0\n" + body (drained; may be NULL).  Frees s when the client is gone. */
void ctl_reply_ok(struct ctl_sess *s, struct evbuffer *body);
/* "CODE reason\n" (code 1 failure, 2 usage).  Frees s when the client is gone. */
void ctl_reply_fail(struct ctl_sess *s, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Seconds since the first ctl_start(). */
int64_t ctl_uptime(void);
/* The hooks ctl_start() was given (members NULL when none). */
const struct ctl_hooks *ctl_hooks_get(void);

#endif

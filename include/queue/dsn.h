/*
 * dsn — composing delivery status notifications (RFC 3464
 * multipart/report; RFC 3462 / 6522).  Pure: builds the message text into an
 * evbuffer; the qmgr queues it like any mail (null sender).
 */
#ifndef KM_DSN_H
#define KM_DSN_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;

enum dsn_action { DSN_FAILED, DSN_DELAYED };

struct dsn_rcpt {
    const char *addr;           /* final recipient */
    const char *status;         /* "5.1.1", "4.4.7"... */
    const char *diag;           /* remote reply ("550 5.1.1 no such user") or NULL */
    const char *remote_mta;     /* "127.0.0.23" or NULL */
};

struct dsn_info {
    const char *reporting_mta;  /* our hostname */
    const char *from;           /* "MAILER-DAEMON@hostname" */
    const char *to;             /* the original sender */
    const char *queue_id;       /* original queue ID */
    int64_t arrival;            /* original arrival (epoch s) */
    int64_t now;                /* Date: of the report */
    enum dsn_action action;
    int full;                   /* 1: whole message (message/rfc822); 0: headers (text/rfc822-headers) */
    size_t nrcpt;
    const struct dsn_rcpt *rcpts;
};

/* Appends the DSN (headers with CRLF line ends, then the body) to out.
 * `original` is the stored message (not modified).  Returns 0. */
int dsn_compose(struct evbuffer *out, const struct dsn_info *info,
                struct evbuffer *original);

#endif

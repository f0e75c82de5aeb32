/*
 * Internal interface between the SMTP listeners (server.c) and the session
 * state machine (session.c): server.c uses session.c, never the other way
 * round.  Not for other modules.
 */
#ifndef KM_SMTP_INT_H
#define KM_SMTP_INT_H

#include <stdint.h>
#include <sys/socket.h>

#include "smtp_mem.h"
#include "smtp_parse.h"

struct io;
struct listener_conn;
struct config;
struct registry;
struct tls_ctx;
struct evbuffer;

enum smtp_state {
    SS_INIT,        /* greeting sent, no HELO/EHLO yet */
    SS_HELO,        /* HELO/EHLO done, no transaction */
    SS_MAIL,        /* MAIL accepted */
    SS_RCPT,        /* at least one RCPT accepted */
    SS_DATA,        /* receiving message data */
    SS_COMMIT,      /* waiting for the spool */
    SS_TLS,         /* STARTTLS answered: waiting for output drain, then handshake */
    SS_CLOSING,     /* final reply queued: close when drained */
};

struct smtp_rcpt {
    char *addr;
    uint8_t flags;                  /* SPOOL_RCPT_* */
    char *customer;                 /* customer name, NULL when outbound */
};

/* The settings sessions run under; swapped whole on reload.  Defined in
 * session.c; server.c sets it. */
struct smtp_env {
    const struct config *cfg;
    const struct registry *reg;
    struct tls_ctx *tls;
    int stopping;                   /* shutting down: no new transactions */
    uint64_t data_bytes;            /* message data held by all sessions now */
};

struct smtp_sess {
    struct listener_conn *conn;     /* the listener's record: which listener,
                                     * the client address's counters
                                     * (conn->client->bytes: its message data) */
    struct io *io;
    int fd;
    char peer[64];                  /* IP address as text */
    enum smtp_state state;
    int esmtp;
    char *helo;
    unsigned bad;                   /* bad commands so far */
    int skipping;                   /* discarding an over-long line up to LF */
    int dead;                       /* peer gone while SS_COMMIT: free on completion */
    int paused;
    int eof;                        /* peer closed while SS_COMMIT */
    struct evbuffer *out;           /* replies not yet handed to the io layer */
    /* transaction */
    char *sender;
    uint64_t declared_size;
    struct smtp_mem mem;            /* its part of data_bytes and client->data_bytes */
    enum smtp_mem_result over_memory; /* DATA over a memory bound: discarded */
    int incoming;                   /* counted in qmgr_incoming() */
    struct smtp_rcpt *rcpts;
    unsigned nrcpt, rcpt_cap;
    uint64_t id;
    struct smtp_data data;
    struct evbuffer *body;
    uint64_t stored_size;           /* body bytes handed to the spool (log's size=) */
    /* counters for the disconnect log line */
    unsigned n_cmds, n_mail, n_rcpt, n_data, n_queued;
};

extern struct smtp_env smtp_env;

/* session.c */
void smtp_sess_start(struct smtp_sess *s);
/* Server shutdown: 421 to an idle session (or close after its commit). */
void smtp_sess_shutdown(struct smtp_sess *s);
/* A session is done with its connection when it calls listener_conn_close()
 * on s->conn: server.c's closed hook then frees s. */

#endif

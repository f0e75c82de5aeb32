/*
 * Internal interface between the SMTP listeners (server.c) and the session
 * state machine (session.c).  Not for other modules.
 */
#ifndef KM_SMTP_INT_H
#define KM_SMTP_INT_H

#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "smtp_mem.h"
#include "smtp_parse.h"

struct io;
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

/* One client address: what max_connections_per_client and
 * max_data_in_memory_per_client count.  Lives while it has sessions. */
struct client_count {
    char addr[64];
    unsigned n;                     /* sessions */
    uint64_t data_bytes;            /* message data its sessions hold now */
};

struct smtp_rcpt {
    char *addr;
    uint8_t flags;                  /* SPOOL_RCPT_* */
    char *customer;                 /* customer name, NULL when outbound */
};

/* The settings sessions run under; swapped whole on reload. */
struct smtp_env {
    const struct config *cfg;
    const struct registry *reg;
    struct tls_ctx *tls;
    int stopping;                   /* shutting down: no new transactions */
    uint64_t data_bytes;            /* message data held by all sessions now */
};

struct smtp_sess {
    LIST_ENTRY(smtp_sess) entry;
    struct io *io;
    int fd;
    char peer[64];                  /* IP address as text */
    struct client_count *client;    /* this client address's counters */
    enum smtp_state state;
    int esmtp;
    char *helo;
    unsigned bad;                   /* bad commands so far */
    int skipping;                   /* discarding an over-long line up to LF */
    int dead;                       /* peer gone while SS_COMMIT: free on completion */
    int paused;
    int eof;                        /* peer closed while SS_COMMIT */
    const char *close_why;          /* for the disconnect line when the close
                                     * waits for the replies to drain */
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
    /* counters for the disconnect log line */
    unsigned n_cmds, n_mail, n_rcpt, n_data, n_queued;
};

extern struct smtp_env smtp_env;

/* session.c */
void smtp_sess_start(struct smtp_sess *s);
/* Server shutdown: 421 to an idle session (or close after its commit). */
void smtp_sess_shutdown(struct smtp_sess *s);

/* server.c */
void smtp_server_release(struct smtp_sess *s);   /* session finished: free it */

#endif

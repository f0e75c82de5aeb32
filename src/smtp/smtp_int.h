/*
 * Internal interface between the SMTP listeners (server.c) and the session
 * state machine (session.c): server.c uses session.c, never the other way
 * round.  Not for other modules.
 */
#ifndef KM_SMTP_INT_H
#define KM_SMTP_INT_H

#include <stdint.h>
#include <sys/socket.h>

#include "auth/attempt.h"
#include "smtp/smtp_mem.h"
#include "smtp/smtp_parse.h"

struct io;
struct listener_conn;
struct config;
struct registry;
struct tls_ctx;
struct evbuffer;
struct event;
struct event_base;
struct auth_check;

/* A session's states; it changes state only through session.c's
 * sess_enter_state(), which knows the moves allowed (any other is a broken
 * invariant: log_fatal) and what entering each state does. */
enum smtp_state {
    SS_INIT,        /* greeting sent, no HELO/EHLO yet */
    SS_HELO,        /* HELO/EHLO done, no transaction */
    SS_MAIL,        /* MAIL accepted */
    SS_RCPT,        /* at least one RCPT accepted */
    SS_DATA,        /* receiving message data */
    SS_COMMIT,      /* waiting for the spool */
    SS_TLS,         /* STARTTLS answered: waiting for output drain, then handshake */
    SS_CLOSING,     /* final reply queued: close when drained */
    SS_AUTH,        /* AUTH: a "334" sent, waiting for the client's response line */
    SS_AUTHCHECK,   /* AUTH: a password check or a failure's delay under way */
    SS_TURNED,      /* ODMR: ATRN answered 250, the connection is delivery's
                     * (odmr.c); the session waits for it to end */
};

struct smtp_rcpt {
    char *addr;
    uint8_t flags;                  /* SPOOL_RCPT_* */
    char *customer;                 /* customer name, NULL when outbound */
};

/* The settings sessions run under; swapped whole on reload.  Defined in
 * session.c; server.c sets it. */
struct smtp_env {
    struct event_base *base;
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
    unsigned require;               /* SMTP_NEED_TLS / SMTP_NEED_AUTH: what its listener
                                     * demands before MAIL */
    int odmr;                       /* an odmr listener's session (odmr.c): EHLO,
                                     * AUTH, ATRN, no mail taken */
    int auth_listener;              /* AUTH is served on its listener */
    int auth_cleartext;             /* ... also before TLS */
    int auth_cram_cleartext;        /* CRAM-MD5 also before TLS (odmr) */
    struct odmr_turn *odmr_turn;    /* SS_TURNED: what odmr.c needs at its end */
    int authenticated;              /* AUTH succeeded (auth.c) */
    char *auth_user;                /* then: the customer name or maildrop address */
    const char *auth_method;        /* "PLAIN", "LOGIN", "CRAM-MD5" (static) */
    unsigned auth_fails;            /* failed AUTHs in this session */
    char *auth_try;                 /* the name of the attempt under way */
    char *auth_secret_try;          /* its password, for a customer's secret */
    char *auth_challenge;           /* CRAM-MD5's challenge text */
    struct auth_check *auth_check;  /* the password check in flight */
    struct auth_attempt auth_attempt;   /* a failure's delay */
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
    uint64_t stored_size;           /* body bytes handed to the spool (log's size=) */
    /* counters for the disconnect log line */
    unsigned n_cmds, n_mail, n_rcpt, n_data, n_queued;
};

extern struct smtp_env smtp_env;

/* A state as a bit, for the sets of states in the command table. */
#define SS_BIT(st)      (1u << (st))
/* The states in which command lines are read and the table consulted. */
#define SS_COMMANDS     (SS_BIT(SS_INIT) | SS_BIT(SS_HELO) | SS_BIT(SS_MAIL) | SS_BIT(SS_RCPT))

/* What a command may need of its session.  The table checks a command's
 * needs before anything else, in this order, and the first unmet one
 * answers with its reply (bad: counts against max_bad_commands). */
enum smtp_need {
    SMTP_NEED_TLS_AVAIL = 1u << 0,  /* STARTTLS is offered here (a tls section):
                                     * "502 5.5.1 Error: command not implemented", bad */
    SMTP_NEED_PLAIN     = 1u << 1,  /* not under TLS yet:
                                     * "554 5.5.1 Error: TLS already active" */
    SMTP_NEED_HELO      = 1u << 2,  /* HELO/EHLO done:
                                     * "503 5.5.1 Error: send HELO/EHLO first", bad */
    SMTP_NEED_TLS       = 1u << 3,  /* under TLS, where the session's listener requires it:
                                     * "530 5.7.0 Must issue a STARTTLS command first", bad */
    SMTP_NEED_AUTH      = 1u << 4,  /* authenticated, where the listener requires it:
                                     * "530 5.7.0 Authentication required", bad */
    SMTP_NEED_SMTP      = 1u << 5,  /* not an odmr listener (mail is taken here):
                                     * "502 5.5.1 Error: command not implemented", bad */
    SMTP_NEED_ODMR      = 1u << 6,  /* an odmr listener:
                                     * "502 5.5.1 Error: command not implemented", bad */
};

/* A refusal the command table gives by itself. */
struct smtp_refusal {
    const char *reply;              /* the whole reply line, without CR LF */
    int bad;                        /* counts against max_bad_commands */
};

/* One row of the SMTP server's command table (session.c).  A command line
 * goes through, in this order: its needs (SMTP_NEED_*: the first unmet one
 * answers), its check (the tests of its argument that come before its
 * state, as in Postfix: may answer), its states (in a command state not in
 * states: wrong_state answers), then proceed, which does the command and
 * answers it (refusing what depends on the transaction or on the argument's
 * meaning).  proceed NULL: a known verb not implemented here (502). */
struct smtp_command {
    enum smtp_verb verb;
    const char *name;
    unsigned needs;                 /* SMTP_NEED_* */
    const struct smtp_refusal *(*check)(const char *arg, size_t len);  /* pure; NULL: none */
    unsigned states;                /* SS_BIT()s in which it may run */
    struct smtp_refusal wrong_state;
    void (*proceed)(struct smtp_sess *s, const char *arg, size_t len);
};

/* session.c; also read by the command table's unit test
 * (tests/unit/test_smtp_command.c). */
/* The table's row for verb; NULL when it has none. */
const struct smtp_command *smtp_command_find(enum smtp_verb verb);
/* What the table itself answers to command c (NULL: no row) with argument
 * arg/len in state st, for a session that meets the needs in met
 * (SMTP_NEED_* bits, SMTP_NEED_TLS and SMTP_NEED_AUTH set where its
 * listener does not require them): NULL when c's proceed is to run.  Pure;
 * st must be one of SS_COMMANDS (else log_fatal). */
const struct smtp_refusal *smtp_command_refusal(const struct smtp_command *c, unsigned met,
                                                enum smtp_state st, const char *arg,
                                                size_t len);
void smtp_sess_start(struct smtp_sess *s);
/* For auth.c: a reply line queued (CR LF added); the one state change
 * (sess_enter_state); a bad command counted; a final reply queued, then
 * close (why for the disconnect line); reading resumed after an
 * asynchronous step (may free s: call it last). */
void smtp_sess_reply(struct smtp_sess *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void smtp_sess_enter(struct smtp_sess *s, enum smtp_state st);
void smtp_sess_bad(struct smtp_sess *s);
void smtp_sess_finish(struct smtp_sess *s, const char *why);
void smtp_sess_resume(struct smtp_sess *s);

/* auth.c: SMTP AUTH.  The AUTH command (the table's proceed); a response
 * line read in SS_AUTH; 1 when EHLO lists AUTH now (the listener serves it,
 * and under TLS unless auth_cleartext); the session's AUTH state freed
 * (its check and delay cancelled; authentication forgotten); 1 when an
 * authenticated session may use local@domain as its envelope sender. */
void smtp_cmd_auth(struct smtp_sess *s, const char *arg, size_t len);
void smtp_auth_response(struct smtp_sess *s, const char *line, size_t len);
int smtp_auth_offered(const struct smtp_sess *s);
void smtp_auth_free(struct smtp_sess *s);
int smtp_auth_sender_ok(const struct smtp_sess *s, const char *local, const char *domain);
/* sesslog.c: peer text for the log (printable ASCII as it is, any other
 * byte as \xHH; cut to fit dst, which always gets a NUL; returns dst); an
 * envelope address in its wire form (domain NULL or "": local is one
 * already) through it; the "NOQUEUE: reject: RCPT" line of a refused RCPT
 * with the reply queued in s->out from offset mark on (mb NULL: the address
 * did not parse). */
const char *smtp_log_safe(char *dst, size_t size, const char *src, size_t n);
const char *smtp_log_addr(char *dst, size_t size, const char *local, const char *domain);
void smtp_log_rcpt_reject(struct smtp_sess *s, const struct smtp_mailbox *mb, size_t mark);
/* received.c: the Received: header of the message being received, into
 * s->body (at DATA, before any data). */
void smtp_add_received(struct smtp_sess *s);

/* odmr.c: ODMR (RFC 2645) on the odmr listeners.  The EHLO reply's
 * capabilities (after its first line); the ATRN command (the table's
 * proceed: the session is authenticated). */
void smtp_odmr_ehlo(struct smtp_sess *s);
void smtp_cmd_atrn(struct smtp_sess *s, const char *arg, size_t len);
/* For odmr.c: the session's queued replies handed to its io now; the
 * session closed and freed now (why for the disconnect line). */
void smtp_sess_flush_out(struct smtp_sess *s);
void smtp_sess_close(struct smtp_sess *s, const char *why);

/* Server shutdown: 421 to an idle session (or close after its commit). */
void smtp_sess_shutdown(struct smtp_sess *s);
/* A session is done with its connection when it calls listener_conn_close()
 * on s->conn: server.c's closed hook then frees s. */

#endif

/*
 * Internal interface of the POP3 server: server.c (listeners) uses
 * session.c (I/O, the command table, pop3_enter_state), which uses login.c
 * (the AUTHORIZATION commands), drop.c (the maildrop: listing, the
 * TRANSACTION commands, RETR/TOP streaming, UPDATE, the lock table) and
 * work.c (the worker threads).  Not for other modules.
 */
#ifndef KM_POP3_INT_H
#define KM_POP3_INT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "auth/attempt.h"
#include "core/config.h"
#include "maildir/maildir.h"
#include "pop3/pop3_parse.h"

struct io;
struct listener_conn;
struct listener_info;
struct registry;
struct tls_ctx;
struct evbuffer;
struct event;
struct auth_check;

/* ---- work.c: worker threads ---- */

/* One piece of blocking work: run() in a worker thread, then done() on the
 * loop.  The submitter keeps w alive until done() has run. */
struct pop3_work {
    void (*run)(struct pop3_work *w);
    void (*done)(struct pop3_work *w);
    struct pop3_work *next;
};
int pop3_work_init(struct event_base *base, unsigned threads, char *err, size_t errlen);
/* Runs every queued work's done() as its run() ends, then stops the threads. */
void pop3_work_shutdown(void);
void pop3_work_submit(struct pop3_work *w);
/* Works submitted since start (pop3_server_works). */
unsigned long pop3_work_submitted(void);

/* ---- the session ---- */

/* A session's states; it changes state only through pop3_enter_state(),
 * which knows the moves allowed (any other is a broken invariant). */
enum pop3_state {
    P3_AUTH,        /* AUTHORIZATION: command lines read */
    P3_SASL,        /* AUTH PLAIN answered "+ ": the next line is the response */
    P3_CHECK,       /* a login being checked (worker) or a failure being delayed */
    P3_LOAD,        /* logged in: the maildrop being listed (worker) */
    P3_TRANS,       /* TRANSACTION: command lines read */
    P3_SEND,        /* RETR or TOP: a message being streamed */
    P3_UPDATE,      /* QUIT in TRANSACTION: the changes being applied (worker) */
    P3_TLS,         /* STLS answered: waiting for the reply to drain */
    P3_CLOSING,     /* the last reply queued: closed once it is written */
    P3_NSTATES
};

#define P3_BIT(st)      (1u << (st))

/* Per message of the listing, for the session. */
#define P3_DELETED      0x01u   /* DELE: removed at UPDATE */
#define P3_RETRIEVED    0x02u   /* RETR (or TOP of the whole message): keep mode
                                 * marks it seen at UPDATE */

/* What blocking work a session has in flight (at most one). */
enum pop3_job {
    P3_JOB_NONE,
    P3_JOB_LOAD,    /* maildir_scan */
    P3_JOB_READ,    /* read queued RETR/TOP messages (a batch) */
    P3_JOB_UPDATE,  /* removals, keep-mode marks, expiry */
};

#define POP3_CHUNK (64 * 1024)          /* a message is read this much at a time */
#define POP3_BATCH (256 * 1024)         /* file bytes one read work reads at most */
#define P3_SENDQ 128                    /* pipelined RETR/TOP queued at most */

/* One RETR or TOP to answer.  A RETR or TOP starts the queue; the RETR and
 * TOP lines already waiting in the input behind it join it, and one work
 * reads as many of them as POP3_BATCH allows (pipelining: one worker round
 * trip for many messages, their answers in order). */
struct pop3_sendq {
    uint32_t msg;               /* index into the listing */
    long body_lines;            /* TOP's line count; -1: RETR */
    /* set by the work once the message is answered: */
    int err;                    /* 0, or an errno: answered "-ERR" in place */
    int whole;                  /* the whole message went out: a retrieval */
};

/* The settings sessions run under; swapped whole on reload. */
struct pop3_env {
    struct event_base *base;
    const struct config *cfg;
    const struct registry *reg;
    struct tls_ctx *tls;
    int stopping;
    char expire_auth[64];       /* the EXPIRE line of CAPA before login */
    void (*room)(const char *drop);     /* pop3_server_set_room_hook */
};
extern struct pop3_env pop3_env;

struct pop3_sess {
    struct listener_conn *conn;
    struct io *io;
    char peer[64];
    int implicit_tls;           /* a pop3s session */
    int cleartext;              /* its listener's cleartext option */
    enum pop3_state state;
    unsigned bad;               /* bad commands so far */
    int skipping;               /* discarding an over-long line up to its LF */
    int paused;                 /* reading stopped: output backed up */
    int dead;                   /* connection gone while work was in flight:
                                 * freed when it ends */
    int eof;                    /* the peer closed its side */
    const char *close_why;      /* for the logout line */
    int log_pending;            /* gone during UPDATE: the logout line waits
                                 * for the count of deletions */
    char gone_why[128];         /* its reason, copied (the io is freed) */
    struct evbuffer *out;       /* replies not yet handed to the io layer */
    char banner[160];           /* APOP's <timestamp@host>, "" without APOP */
    /* AUTHORIZATION */
    char *user;                 /* USER's name, until PASS */
    char *login;                /* the name being checked (for the log) */
    char *secret_try;           /* the password given, while a domain
                                 * maildrop's secret is to be compared */
    struct auth_check *check;   /* a password check in flight */
    struct auth_attempt attempt;    /* a failed login's delay */
    int login_ok;               /* the check said yes */
    const char *login_how;      /* "USER", "AUTH PLAIN", "APOP" */
    /* TRANSACTION */
    char *drop;                 /* the maildrop (locked), once logged in */
    char dir[4096];             /* its directory */
    int dirfd;                  /* dir opened (by the first work that reads
                                 * or removes messages), or -1 */
    enum maildrop_mode mode;
    long keep_days;
    struct maildir_list list;   /* fixed for the session */
    uint8_t *flags;             /* P3_DELETED, P3_RETRIEVED per message */
    uint32_t ndeleted;
    uint64_t deleted_bytes;     /* vsize of the messages marked deleted */
    /* blocking work */
    struct pop3_work work;
    enum pop3_job job;
    int err;                    /* of the work: 0, or an errno */
    char why[256];
    /* RETR / TOP: the queue; the work reads [head, tail) and moves head
     * past the messages it answered; sendbuf holds its answers (the work
     * alone touches it while it runs; done() moves them to out) */
    struct pop3_sendq *sendq;   /* P3_SENDQ entries, from the first RETR/TOP */
    unsigned sq_head, sq_tail, sq_from;     /* sq_from: head when the work began */
    struct evbuffer *sendbuf;
    int fd;                     /* the head message's file, -1 when not open */
    uint64_t off;               /* read of it so far */
    char *chunk;                /* POP3_CHUNK bytes: the read buffer */
    struct pop3_enc enc;
    int started;                /* its "+OK" is in sendbuf or out */
    /* UPDATE's results */
    size_t removed, expired, update_failed;
    int retr_unrecorded;    /* keep mode: the retrievals were not written */
    /* for the logout line and the counters */
    unsigned n_retrieved, n_deleted;
    uint64_t n_bytes;
};

/* session.c */
void pop3_sess_start(struct pop3_sess *s);
void pop3_sess_shutdown(struct pop3_sess *s);
void pop3_reply(struct pop3_sess *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void pop3_enter_state(struct pop3_sess *s, enum pop3_state st);
/* A bad command: counts it; over the limit, the session ends. */
void pop3_bad_command(struct pop3_sess *s);
/* Work or a delay has ended: handles pipelined input and writes replies.
 * May free s: call it last. */
void pop3_sess_resume(struct pop3_sess *s);
/* Closes the connection now (unsent replies are lost): a stream that
 * cannot go on. */
void pop3_sess_abort(struct pop3_sess *s, const char *why);
/* The session is over (the reply is queued): close once it is written. */
void pop3_sess_finish(struct pop3_sess *s, const char *why);
int pop3_sess_tls(const struct pop3_sess *s);
/* The session's work has ended: 1 when the session was dead and is now
 * freed (the caller must not touch s). */
int pop3_sess_work_ended(struct pop3_sess *s);
/* Offers the next command line waiting in the input, when it is complete,
 * short (a RETR or TOP line) and parses, to take(); when take() returns 1
 * the line is consumed (answered later, in order, by the taker).  1 when a
 * line was taken, 0 otherwise (the line stays for the command table). */
int pop3_sess_take_line(struct pop3_sess *s,
                        int (*take)(struct pop3_sess *s, const struct pop3_cmd *c));

/* The command handlers (session.c's table calls them with the parsed
 * command; the table has checked the state and the argument count). */
typedef void pop3_handler(struct pop3_sess *s, const struct pop3_cmd *c);
/* login.c */
pop3_handler pop3_cmd_user, pop3_cmd_pass, pop3_cmd_apop, pop3_cmd_auth;
/* The line after "+ " of AUTH PLAIN. */
void pop3_sasl_line(struct pop3_sess *s, const char *line, size_t len);
/* Frees the login state (check, delay, names). */
void pop3_login_free(struct pop3_sess *s);
/* drop.c */
pop3_handler pop3_cmd_stat, pop3_cmd_list, pop3_cmd_uidl, pop3_cmd_retr, pop3_cmd_top,
    pop3_cmd_dele, pop3_cmd_rset, pop3_cmd_quit_trans;
/* Logged in to drop (in state CHECK): locks it and lists it (state LOAD;
 * the listing's end answers).  -1 when another session holds it, or it has
 * no usable directory (answered; the state is unchanged). */
int pop3_drop_open(struct pop3_sess *s, const char *drop, enum maildrop_mode mode,
                   long keep_days);
/* A RETR/TOP stream may go on (output drained below the low mark). */
void pop3_drop_send_more(struct pop3_sess *s);
/* Unlocks and frees the maildrop state (never deletes anything). */
void pop3_drop_close(struct pop3_sess *s);
/* The EXPIRE value after login: "NEVER" or the keep days. */
const char *pop3_drop_expire(const struct pop3_sess *s, char *buf, size_t len);
/* Is drop locked by a session now? (tests) */
int pop3_drop_locked(const char *drop);

#endif

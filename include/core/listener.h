/*
 * listener — the one place connections and datagrams come in, shared by
 * every protocol server (SMTP and the control socket now; submission,
 * POP3, ODMR, RADIUS later).  A protocol makes a listener set (its sockets,
 * with one pair of connection limits), adds TCP, Unix stream and UDP
 * sockets to it (each with its identity: struct listener_info), and enables
 * it.  For each accepted connection it is handed a struct listener_conn
 * that carries the identity of the listener that accepted it; it gives the
 * connection back with listener_conn_close() when done.  The set counts
 * connections in total and per client address, refuses the ones over its
 * limits with a line the protocol supplies (after asking it to make room),
 * and pauses accepting on a socket whose accept fails (EMFILE, ENFILE, ...)
 * until a delay has passed or one of its connections has closed.
 * Everything runs on the event loop; no hook is called from inside a
 * listener_* call except where said.
 */
#ifndef KM_LISTENER_H
#define KM_LISTENER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/types.h>

struct event_base;
struct listen_addr;

/* listener_info.cleartext: what a listener allows before TLS (the
 * per-listener `cleartext` and `auth_cleartext` options). */
#define LISTENER_CLEARTEXT_LOGIN 0x01u  /* pop3: USER/PASS without TLS */
#define LISTENER_AUTH_CLEARTEXT  0x02u  /* smtp, submission: AUTH without TLS */

/* Who accepted a connection (or received a datagram). */
struct listener_info {
    const char *proto;          /* "smtp", "submission", "smtps", "pop3", "pop3s",
                                 * "odmr", "radius", "control" (a static string) */
    const char *addr;           /* the bound address as configured ("0.0.0.0:25",
                                 * "[::1]:25") or the socket path; set by the
                                 * listener_add_* call from its argument */
    int port;                   /* the port bound (from the socket: the real one
                                 * when 0 was asked for); 0 for a Unix socket */
    int implicit_tls;           /* TLS from the first byte (smtps, pop3s) */
    int auth_required;          /* no mail/mailbox before authentication */
    unsigned cleartext;         /* LISTENER_CLEARTEXT_* / LISTENER_AUTH_CLEARTEXT */
};

/* One client address of a set: what per-client limits count.  Lives while
 * it has connections. */
struct listener_client {
    char addr[64];              /* "192.0.2.1", "::1", "unix" */
    unsigned n;                 /* its open connections */
    uint64_t bytes;             /* the protocol's own per-client counter (SMTP:
                                 * message data in memory); the listener only
                                 * keeps it */
};

/* An accepted connection, from the accept hook to listener_conn_close().
 * The protocol reads these fields and sets sess; it owns fd (its io closes
 * it). */
struct listener_conn {
    const struct listener_info *info;   /* the listener that accepted it */
    int fd;                     /* non-blocking, close-on-exec */
    char peer[64];              /* client address as text; "unix" for AF_UNIX */
    struct sockaddr_storage addr;       /* as accept() returned it */
    socklen_t addrlen;
    struct listener_client *client;     /* this client address's counters */
    void *sess;                 /* the protocol's session (its own to set) */
    struct listener_set *set;   /* listener-private from here on */
    LIST_ENTRY(listener_conn) entry;
};

/* A datagram received on a UDP listener; valid during the datagram hook. */
struct listener_datagram {
    const struct listener_info *info;
    const unsigned char *buf;
    size_t len;
    struct sockaddr_storage from;
    socklen_t fromlen;
    char peer[64];              /* from's address as text */
    int fd;                     /* the listener's socket (for listener_reply) */
};

enum listener_refusal {
    LISTENER_FULL,              /* max_connections of the set reached */
    LISTENER_CLIENT_FULL,       /* max_connections_per_client reached */
};

/* What a protocol tells its listener set; must outlive the set. */
struct listener_proto {
    const char *name;           /* for log lines: "smtp", "control" */
    long pause_ms;              /* accept failed: stop accepting on that socket
                                 * this long (or until a connection closes) */
    /* A connection was accepted and counted.  0: the protocol has taken it
     * (and calls listener_conn_close() once done, possibly from inside this
     * hook); -1: it could not (the listener closes fd and counts it out;
     * closed is not called). */
    int (*accept)(struct listener_conn *c, void *arg);
    /* Optional: the connection is being counted out (listener_conn_close);
     * c and c->client are still intact. */
    void (*closed)(struct listener_conn *c, void *arg);
    /* Optional: max_connections is reached and a connection waits; the hook
     * may close connections (listener_conn_close) to make room. */
    void (*full)(void *arg);
    /* Optional: a connection is refused (why; li accepted it, peer is the
     * client's address).  Writes the line to send into buf (at most len
     * bytes; returns its length, 0 for none), and logs what the protocol
     * logs.  The listener sends it without waiting and closes. */
    size_t (*refusal)(enum listener_refusal why, const struct listener_info *li,
                      const char *peer, char *buf, size_t len, void *arg);
    /* UDP listeners: one datagram (of any length, 0 included). */
    void (*datagram)(const struct listener_datagram *d, void *arg);
};

struct listener_set;

/* A new, empty set: limits 0 (none); arg goes to every hook. */
struct listener_set *listener_set_new(struct event_base *base,
                                      const struct listener_proto *p, void *arg);
/* max_connections of the whole set and per client address; 0: no limit.
 * May be changed at any time (reload); open connections stay. */
void listener_set_limits(struct listener_set *s, unsigned max_conns,
                         unsigned max_per_client);

/* Binding (before privileges are dropped); the socket does nothing until
 * listener_set_enable().  tmpl is copied, its addr set from the argument.
 * Each returns 0, or -1 with err ("127.0.0.1:25: Address already in use").
 *
 * TCP: numeric address; SO_REUSEADDR (+ IPV6_V6ONLY for v6), listen
 * backlog SOMAXCONN. */
int listener_add_tcp(struct listener_set *s, const struct listen_addr *a,
                     const struct listener_info *tmpl, char *err, size_t errlen);
/* UDP: numeric address; datagrams go to the datagram hook. */
int listener_add_udp(struct listener_set *s, const struct listen_addr *a,
                     const struct listener_info *tmpl, char *err, size_t errlen);
/* Unix stream socket at path, created with mode (0660) by bind itself: the
 * umask is set around bind(), never a chmod by name, so call it before
 * threads that create files are started.  A stale socket left at path
 * (nobody listening) is removed first; anything else there (a symlink, a
 * file, a live socket) is refused.  Backlog 16.  The path is unlinked by
 * listener_set_stop(). */
int listener_add_unix(struct listener_set *s, const char *path, mode_t mode,
                      const struct listener_info *tmpl, char *err, size_t errlen);

/* Starts (or, after a pause, resumes) accepting and reading on every socket. */
void listener_set_enable(struct listener_set *s);
/* Stops for good: closes every socket (unlinking Unix socket paths);
 * connections stay open.  drained (may be NULL) runs once no connection is
 * left: from inside this call when there is none, else from the
 * listener_conn_close() of the last one. */
void listener_set_stop(struct listener_set *s, void (*drained)(void *arg), void *arg);
/* Frees a set that has no connection left (stopping it first). */
void listener_set_free(struct listener_set *s);

/* The identity of the i-th socket added (0 first); NULL past the end. */
const struct listener_info *listener_set_info(const struct listener_set *s, size_t i);
/* Open connections of the set. */
unsigned listener_set_conns(const struct listener_set *s);
/* Calls fn for every open connection; fn may close the one it is given. */
void listener_set_each(struct listener_set *s,
                       void (*fn)(struct listener_conn *c, void *arg), void *arg);

/* Serves fd, a connected non-blocking stream socket, as if a socket of s
 * with identity info (which must outlive the connection) had accepted it
 * from peer (an address as text): the same limits, refusal and accept
 * hook.  Takes fd (closed when refused or when the hook fails).  0, or -1
 * when refused.  For sockets connected some other way (tests, fuzzers;
 * later a connection handed over by another protocol). */
int listener_adopt(struct listener_set *s, const struct listener_info *info, int fd,
                   const char *peer);

/* The protocol is done with c (it has closed or handed on c->fd): the
 * closed hook runs, c is counted out and freed; a socket paused by an
 * accept failure accepts again. */
void listener_conn_close(struct listener_conn *c);

/* Sends buf as one datagram back to d's sender, from d's socket.  0 / -1
 * (errno set; nothing is retried). */
int listener_reply(const struct listener_datagram *d, const void *buf, size_t len);

#endif

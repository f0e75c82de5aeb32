/*
 * pop3_server — the POP3 listeners (the `pop3` section: STLS when a tls
 * section exists; `pop3s`: implicit TLS) and their sessions: users log in
 * to a maildrop (an address maildrop, or a customer's domain maildrop) and
 * retrieve and delete its messages (RFC 1939, 2449, 2595, 5034, 3206).
 * Disk and password work runs in worker threads, never on the loop.
 */
#ifndef KM_POP3_SERVER_H
#define KM_POP3_SERVER_H

struct event_base;
struct config;
struct registry;
struct tls_ctx;

/* Binds every pop3 and pop3s listen address (before privileges are
 * dropped) and starts the worker threads.  0 / -1 with err. */
int pop3_server_bind(struct event_base *base, const struct config *c, char *err,
                     unsigned long errlen);
/* Starts accepting with this configuration; also called after a reload
 * (listen addresses keep what was bound at start).  tls may be NULL (no
 * STLS; pop3s sessions are then refused). */
void pop3_server_configure(const struct config *c, const struct registry *r,
                           struct tls_ctx *tls);
/* Stops accepting; sessions are told and closed (a session applying its
 * QUIT finishes that first; nothing is deleted for the others).  done()
 * runs once no session is left. */
void pop3_server_shutdown(void (*done)(void));
/* After the loop: stops the worker threads, frees what is left. */
void pop3_server_free(void);
unsigned pop3_server_sessions(void);
/* fn (on the loop) is told the maildrop name after a session's QUIT
 * removed or expired some of its messages: room for mail that waits for
 * it (deferred for quota).  kickmaild.c wires it to delivery. */
void pop3_server_set_room_hook(void (*fn)(const char *drop));
/* Serves fd, a connected non-blocking stream socket, as a connection the
 * pop3 listener (tls 0) or the pop3s listener (tls 1) accepted from peer
 * (an address as text): the same limits and session as accept.  Takes fd.
 * 0, or -1 when refused.  For tests and the fuzzer. */
int pop3_server_adopt(int fd, const char *peer, int tls);
/* Blocking works (listings, message reads, QUIT's changes) the sessions
 * have handed to the worker threads since start.  For tests: RETR and TOP
 * lines pipelined behind one another share one read. */
unsigned long pop3_server_works(void);

#endif

/*
 * smtp_server — the SMTP listeners (the `smtp`, `submission` and `smtps`
 * sections) and their sessions:
 * receive mail for customer domains, hand it to the qmgr, answer 250 only
 * once it is durable.
 */
#ifndef KM_SMTP_SERVER_H
#define KM_SMTP_SERVER_H

struct event_base;
struct config;
struct registry;
struct tls_ctx;

/* Binds every `smtp` listen address (before privileges are dropped).
 * 0 / -1 with err. */
int smtp_server_bind(struct event_base *base, const struct config *c, char *err,
                     unsigned long errlen);
/* Starts accepting with this configuration; also called after a reload
 * (listen addresses keep what was bound at start). tls may be NULL. */
void smtp_server_configure(const struct config *c, const struct registry *r,
                           struct tls_ctx *tls);
/* Stops accepting; idle sessions get 421 and are closed, sessions waiting for
 * the spool finish their reply first.  done() runs once no session is left. */
void smtp_server_shutdown(void (*done)(void));
unsigned smtp_server_sessions(void);
/* Serves fd, a connected non-blocking stream socket, as a connection accepted
 * from peer (an address as text): the same limits and session as accept.
 * Takes fd (closed on refusal).  0, or -1 when refused (421 written). */
int smtp_server_adopt(int fd, const char *peer);

#endif

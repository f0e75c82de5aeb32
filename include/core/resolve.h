/*
 * resolve — asynchronous host name lookups (A and AAAA) for delivery to a
 * customer's host given by name: c-ares on the event loop (its sockets are
 * watched by libevent events, its timeouts driven by a libevent timer), so
 * that nothing blocks.  No cache: every lookup asks the servers (delivery
 * attempts are rare).  The servers, the timeout of one try and the number
 * of tries come from resolve_configure(); the name is looked up as given
 * (no search domains): in the hosts table given to resolve_configure() (the
 * /etc/hosts read with the configuration, hosts.h), then in the DNS.
 */
#ifndef KM_RESOLVE_H
#define KM_RESOLVE_H

#include <stddef.h>

struct event_base;
struct hosts;
struct resolve_req;

#define RESOLVE_MAX_ADDRS 8         /* addresses kept of one answer */
#define RESOLVE_ADDR_LEN  46        /* INET6_ADDRSTRLEN */

/* A lookup's addresses, numeric, in the order to try them (c-ares sorts
 * them as RFC 6724 says; duplicates dropped). */
struct resolve_result {
    size_t n;                       /* 1..RESOLVE_MAX_ADDRS */
    char addr[RESOLVE_MAX_ADDRS][RESOLVE_ADDR_LEN];
};

/* The end of a lookup of name, from the event loop (never from inside a
 * resolve_* call): res with the addresses, or res NULL and err saying why ("host
 * mx.example not found", "DNS lookup of mx.example failed: Timeout while
 * contacting DNS servers"). */
typedef void resolve_cb(const char *name, const struct resolve_result *res,
                        const char *err, void *arg);

/* Sets the servers ("" or NULL: the system's /etc/resolv.conf; else
 * c-ares' CSV form "127.0.0.1:5353,[::1]"), the timeout of the first try in
 * seconds (c-ares doubles it for each further try) and the tries per
 * server, and the hosts table asked before the DNS (NULL: none; borrowed:
 * it must live until the next resolve_configure() or resolve_shutdown()).
 * Cheap: the c-ares channel is made (again) at the next lookup with no
 * other lookup in flight.  Call before the first resolve_start(). */
void resolve_configure(struct event_base *base, const char *servers, long timeout_s,
                       unsigned tries, const struct hosts *hosts);
/* Starts looking up name (A and AAAA); cb follows exactly once unless
 * cancelled.  Never NULL. */
struct resolve_req *resolve_start(const char *name, resolve_cb *cb, void *arg);
/* Cancels a lookup whose cb has not run: cb will not run. */
void resolve_cancel(struct resolve_req *req);
/* Frees the c-ares channel and everything of this module (lookups not
 * cancelled are dropped without their cb). */
void resolve_shutdown(void);

#endif

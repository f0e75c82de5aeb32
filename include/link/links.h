/*
 * links — the link table: per customer, whether it is reachable now and at
 * which address.  The one function links_set() changes it; every detector
 * (kickq, RADIUS, netlink, ODMR, AutoTURN) reaches it through link_event()
 * (link_event.h), which holds the policy.  Links are facts with an
 * expiry: an up link not refreshed within its TTL goes down by itself, and
 * one address belongs to one customer at a time (a link up at an address
 * another customer holds takes that other link down).  The table is
 * persisted (spool state files "links", a snapshot, and "links.journal",
 * the changes since: format in src/link/links_file.h) before a change is
 * reported done, so a restart keeps each link with its original expiry.
 * A batch of changes costs an append of its changed links and one
 * fdatasync, whatever the table's size.  On link down the last address is
 * kept for display only.
 */
#ifndef KM_LINKS_H
#define KM_LINKS_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct spool;

enum link_source {
    LINK_SRC_NONE = 0, LINK_SRC_KICKQ, LINK_SRC_RADIUS, LINK_SRC_NETLINK,
    LINK_SRC_ODMR, LINK_SRC_AUTOTURN, LINK_SRC_EXPIRY,
};

struct link {
    char *customer;
    int up;
    char address[64];           /* "" when never known; numeric v4/v6 */
    int64_t since;              /* epoch s of the last change, 0 = never */
    int64_t expires;            /* epoch s, 0 = no expiry (while up) */
    enum link_source source;
    char session[64];           /* detector's session id ("" when none) */
};

/* Told of every change as it takes effect (on the loop thread), before its
 * write is even queued, so that delivery starts at once; a write that fails
 * tells it again with the link as it was (was_up then says whether the
 * undone change had it up).  Changes: up, down, a refresh (was_up and l->up both 1: compare the address
 * to tell a move), a link taken down because another customer got its
 * address, an expiry.  l is a snapshot of the link right after that change,
 * valid during the call only (links_get() gives the current state).  Not
 * called for links loaded at start, nor for links_prune(). */
typedef void links_change_fn(const struct link *l, int was_up, void *arg);

/* Loads state/links and its journal (links already expired come back down;
 * a journal's torn tail is ignored) and arms expiry timers.  Reads state
 * files written by earlier versions (state/links without a journal).
 * 0 / -1 with err. */
int links_init(struct event_base *base, struct spool *sp, links_change_fn *fn,
               void *arg, char *err, size_t errlen);
/* A clean stop, before spool_close() (which completes the write): queues
 * the whole table as a new snapshot behind any write in flight, so that the
 * next start reads one file; from then on links_set() refuses and nothing
 * more is written (callbacks of changes not yet written never come).  Then
 * links_shutdown(). */
void links_stop(void);
/* Frees the table.  Callbacks of changes not yet written are never called
 * (as with spool_close); before or after spool_close(). */
void links_shutdown(void);

/* Optional: links_set() refuses ("unknown customer") a name for which
 * exists() returns 0.  NULL (the default) accepts every well-formed name
 * (INTERFACE.md: lower-case letters, digits, '-', '_').  Kept across
 * links_shutdown()/links_init(). */
void links_restrict(int (*exists)(const char *customer));

typedef void links_cb(int err, void *arg);

/* Sets a customer's link.  up: address numeric (validated: -1 with err
 * otherwise), or NULL/"" for a link up without an address (a customer
 * delivered to a fixed host: the caller refuses that for deliver = "link");
 * ttl seconds (0 = no expiry).  down: address/ttl ignored.
 * Applies in memory, persists, then calls fn for this change (and for any
 * other customer that lost the address) and cb(0).  Returns -1 (cb not
 * called) on a bad argument.
 * Details: src is a detector (not NONE or EXPIRY); session may be NULL and
 * is cut to 63 bytes; IPv4-mapped IPv6 addresses are stored as IPv4, and
 * unspecified, multicast and broadcast addresses are refused.  The expiry is
 * rounded up to a whole second (a link never lives less than ttl).  Changes
 * made while a write is in flight are applied together, in call order, when
 * it completes (links_get() shows them from then on).  A write error undoes
 * the change and gives cb(errno); cb is always called after links_set()
 * returned.  A down for a link already down changes nothing (cb(0), no fn).
 * An expiry is never undone: the file keeps the past expiry, so a restart
 * brings the link down all the same. */
int links_set(const char *customer, int up, const char *address, long ttl,
              enum link_source src, const char *session, links_cb *cb, void *arg,
              char *err, size_t errlen);

/* A link down that holds only for the session that raised the link: when
 * it is applied (in call order with links_set(), after any change still
 * in flight) the customer's link goes down only if it is up with exactly
 * this session id (cut to 63 bytes like links_set's); otherwise nothing
 * changes (cb(0), no change callback).  A late ip-down or RADIUS Stop of
 * an old call thus never drops a newer link.  Same errors as links_set();
 * also -1 when session is NULL or "". */
int links_down_if(const char *customer, enum link_source src, const char *session,
                  links_cb *cb, void *arg, char *err, size_t errlen);

/* NULL when the customer never had a link. */
const struct link *links_get(const char *customer);
/* Iteration in customer-name order; *pos from 0; NULL at the end. */
const struct link *links_next(size_t *pos);
const char *links_source_name(enum link_source s);   /* "kickq", "radius", ... */
/* Forgets links of customers no longer configured (after a reload), and
 * persists.  exists() is called at once, or when the write in flight has
 * completed: it must consult the current configuration. */
void links_prune(int (*exists)(const char *customer));

#endif

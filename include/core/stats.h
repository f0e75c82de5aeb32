/*
 * stats — the daemon's counters for `kickq stats`: messages accepted,
 * rejected, delivered, deferred, bounced; kicks and link events by source;
 * sessions.  Plain integers bumped on the loop thread; never reset while
 * the daemon runs.
 */
#ifndef KM_STATS_H
#define KM_STATS_H

#include <stdint.h>

struct evbuffer;

enum stat_id {
    ST_ACCEPTED,            /* messages queued (250 after the final dot) */
    ST_REJECTED,            /* transactions or recipients refused with 4xx/5xx */
    ST_DELIVERED,           /* recipients delivered */
    ST_DEFERRED,            /* recipient delivery attempts deferred */
    ST_BOUNCED,             /* recipients bounced (DSN queued) */
    ST_KICKS_KICKQ, ST_KICKS_ETRN,
    ST_LINK_KICKQ, ST_LINK_RADIUS, ST_LINK_NETLINK, ST_LINK_ODMR,
    ST_LINK_AUTOTURN, ST_LINK_EXPIRY,
    ST_SESSIONS_SMTP,       /* SMTP sessions accepted since start */
    ST_SESSIONS_POP3,       /* POP3 sessions accepted since start */
    /* RADIUS accounting: authentic requests by Acct-Status-Type */
    ST_RADIUS_START, ST_RADIUS_STOP, ST_RADIUS_INTERIM, ST_RADIUS_ON, ST_RADIUS_OFF,
    ST_RADIUS_OTHER,
    ST_RADIUS_ANSWERED,     /* Accounting-Responses sent (retransmissions too) */
    ST_RADIUS_RETRANSMIT,   /* retransmissions seen (not acted on again) */
    /* answered without a change: unknown User-Name, event older than
     * link_ttl or of a stopped session, Start without an address */
    ST_RADIUS_UNKNOWN_USER, ST_RADIUS_STALE, ST_RADIUS_NO_ADDRESS,
    /* dropped without a reply, by reason */
    ST_RADIUS_DROP_CLIENT, ST_RADIUS_DROP_AUTH, ST_RADIUS_DROP_MALFORMED,
    /* POP3: logins, and messages retrieved (RETR) and deleted (at QUIT) */
    ST_POP3_LOGIN_OK, ST_POP3_LOGIN_FAILED,
    ST_POP3_RETRIEVED, ST_POP3_DELETED, ST_POP3_BYTES,
    ST_COUNT
};

void stats_add(enum stat_id id, uint64_t n);
uint64_t stats_get(enum stat_id id);
/* Renders every counter: "name value" lines, or Prometheus text format.
 * `gauges` adds current values (sessions open, messages queued). */
void stats_format(struct evbuffer *out, int prometheus, unsigned sessions_open,
                  unsigned long messages_queued);

#endif

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
    ST_COUNT
};

void stats_add(enum stat_id id, uint64_t n);
uint64_t stats_get(enum stat_id id);
/* Renders every counter: "name value" lines, or Prometheus text format.
 * `gauges` adds current values (sessions open, messages queued). */
void stats_format(struct evbuffer *out, int prometheus, unsigned sessions_open,
                  unsigned long messages_queued);

#endif

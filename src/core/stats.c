/*
 * stats — counters for `kickq stats` (see stats.h).  Trusts its callers;
 * guarantees the same names in both output forms: "accepted 12" in text,
 * "kickmail_accepted_total 12" for Prometheus.
 */
#include <stdio.h>

#include <event2/buffer.h>

#include "core/stats.h"

static uint64_t counters[ST_COUNT];

static const struct {
    const char *name;       /* text form */
    const char *prom;       /* Prometheus metric name */
    const char *label;      /* Prometheus label, or NULL */
    const char *help;
} info[ST_COUNT] = {
    [ST_ACCEPTED]      = { "accepted", "kickmail_accepted_total", NULL, "Messages queued." },
    [ST_REJECTED]      = { "rejected", "kickmail_rejected_total", NULL,
                           "Recipients and messages refused." },
    [ST_DELIVERED]     = { "delivered", "kickmail_delivered_total", NULL, "Recipients delivered." },
    [ST_DEFERRED]      = { "deferred", "kickmail_deferred_total", NULL,
                           "Recipient delivery attempts deferred." },
    [ST_BOUNCED]       = { "bounced", "kickmail_bounced_total", NULL, "Recipients bounced." },
    [ST_KICKS_KICKQ]   = { "kicks.kickq", "kickmail_kicks_total", "kickq", "Kicks by source." },
    [ST_KICKS_ETRN]    = { "kicks.etrn", "kickmail_kicks_total", "etrn", NULL },
    [ST_LINK_KICKQ]    = { "link_events.kickq", "kickmail_link_events_total", "kickq",
                           "Link changes by source." },
    [ST_LINK_RADIUS]   = { "link_events.radius", "kickmail_link_events_total", "radius", NULL },
    [ST_LINK_NETLINK]  = { "link_events.netlink", "kickmail_link_events_total", "netlink", NULL },
    [ST_LINK_ODMR]     = { "link_events.odmr", "kickmail_link_events_total", "odmr", NULL },
    [ST_LINK_AUTOTURN] = { "link_events.autoturn", "kickmail_link_events_total", "autoturn", NULL },
    [ST_LINK_EXPIRY]   = { "link_events.expiry", "kickmail_link_events_total", "expiry", NULL },
    [ST_SESSIONS_SMTP] = { "sessions.smtp", "kickmail_sessions_total", "smtp",
                           "Sessions accepted since start." },
};

void stats_add(enum stat_id id, uint64_t n)
{
    if (id < ST_COUNT)
        counters[id] += n;
}

uint64_t stats_get(enum stat_id id)
{
    return id < ST_COUNT ? counters[id] : 0;
}

void stats_format(struct evbuffer *out, int prometheus, unsigned sessions_open,
                  unsigned long messages_queued)
{
    for (int i = 0; i < ST_COUNT; i++) {
        unsigned long long v = (unsigned long long)counters[i];
        if (!prometheus) {
            evbuffer_add_printf(out, "%s %llu\n", info[i].name, v);
            continue;
        }
        if (info[i].help) {
            evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s counter\n", info[i].prom,
                                info[i].help, info[i].prom);
        }
        if (info[i].label)
            evbuffer_add_printf(out, "%s{%s=\"%s\"} %llu\n", info[i].prom,
                                i == ST_SESSIONS_SMTP ? "protocol" : "source",
                                info[i].label, v);
        else
            evbuffer_add_printf(out, "%s %llu\n", info[i].prom, v);
    }
    if (!prometheus) {
        evbuffer_add_printf(out, "sessions_open %u\nmessages_queued %lu\n", sessions_open,
                            messages_queued);
        return;
    }
    evbuffer_add_printf(out, "# HELP kickmail_sessions_open SMTP sessions open now.\n"
                        "# TYPE kickmail_sessions_open gauge\nkickmail_sessions_open %u\n"
                        "# HELP kickmail_messages_queued Messages in the queue now.\n"
                        "# TYPE kickmail_messages_queued gauge\nkickmail_messages_queued %lu\n",
                        sessions_open, messages_queued);
}

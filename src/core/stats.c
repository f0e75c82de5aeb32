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
    const char *lkey;       /* the label's name; NULL: "source" */
} info[ST_COUNT] = {
    [ST_ACCEPTED]      = { "accepted", "kickmail_accepted_total", NULL, "Messages queued.", NULL },
    [ST_REJECTED]      = { "rejected", "kickmail_rejected_total", NULL,
                           "Recipients and messages refused.", NULL },
    [ST_DELIVERED]     = { "delivered", "kickmail_delivered_total", NULL, "Recipients delivered.", NULL },
    [ST_DEFERRED]      = { "deferred", "kickmail_deferred_total", NULL,
                           "Recipient delivery attempts deferred.", NULL },
    [ST_BOUNCED]       = { "bounced", "kickmail_bounced_total", NULL, "Recipients bounced.", NULL },
    [ST_KICKS_KICKQ]   = { "kicks.kickq", "kickmail_kicks_total", "kickq", "Kicks by source.", NULL },
    [ST_KICKS_ETRN]    = { "kicks.etrn", "kickmail_kicks_total", "etrn", NULL, NULL },
    [ST_LINK_KICKQ]    = { "link_events.kickq", "kickmail_link_events_total", "kickq",
                           "Link changes by source.", NULL },
    [ST_LINK_RADIUS]   = { "link_events.radius", "kickmail_link_events_total", "radius", NULL, NULL },
    [ST_LINK_NETLINK]  = { "link_events.netlink", "kickmail_link_events_total", "netlink", NULL, NULL },
    [ST_LINK_ODMR]     = { "link_events.odmr", "kickmail_link_events_total", "odmr", NULL, NULL },
    [ST_LINK_AUTOTURN] = { "link_events.autoturn", "kickmail_link_events_total", "autoturn", NULL, NULL },
    [ST_LINK_EXPIRY]   = { "link_events.expiry", "kickmail_link_events_total", "expiry", NULL, NULL },
    [ST_SESSIONS_SMTP] = { "sessions.smtp", "kickmail_sessions_total", "smtp",
                           "Sessions accepted since start.", "protocol" },
    [ST_SESSIONS_POP3] = { "sessions.pop3", "kickmail_sessions_total", "pop3", NULL, "protocol" },
    [ST_RADIUS_START]  = { "radius.requests.start", "kickmail_radius_requests_total", "start",
                           "RADIUS Accounting-Requests by status type.", "type" },
    [ST_RADIUS_STOP]   = { "radius.requests.stop", "kickmail_radius_requests_total", "stop",
                           NULL, "type" },
    [ST_RADIUS_INTERIM] = { "radius.requests.interim", "kickmail_radius_requests_total",
                            "interim", NULL, "type" },
    [ST_RADIUS_ON]     = { "radius.requests.on", "kickmail_radius_requests_total", "on",
                           NULL, "type" },
    [ST_RADIUS_OFF]    = { "radius.requests.off", "kickmail_radius_requests_total", "off",
                           NULL, "type" },
    [ST_RADIUS_OTHER]  = { "radius.requests.other", "kickmail_radius_requests_total", "other",
                           NULL, "type" },
    [ST_RADIUS_ANSWERED] = { "radius.answered", "kickmail_radius_answered_total", NULL,
                             "RADIUS Accounting-Responses sent.", NULL },
    [ST_RADIUS_RETRANSMIT] = { "radius.retransmissions", "kickmail_radius_retransmissions_total",
                               NULL, "RADIUS retransmissions answered without acting again.", NULL },
    [ST_RADIUS_UNKNOWN_USER] = { "radius.ignored.unknown_user", "kickmail_radius_ignored_total",
                                 "unknown_user", "RADIUS requests answered without a change.",
                                 "reason" },
    [ST_RADIUS_STALE]  = { "radius.ignored.stale", "kickmail_radius_ignored_total", "stale",
                           NULL, "reason" },
    [ST_RADIUS_NO_ADDRESS] = { "radius.ignored.no_address", "kickmail_radius_ignored_total",
                               "no_address", NULL, "reason" },
    [ST_RADIUS_DROP_CLIENT] = { "radius.dropped.unknown_client", "kickmail_radius_dropped_total",
                                "unknown_client", "RADIUS datagrams dropped without a reply.",
                                "reason" },
    [ST_RADIUS_DROP_AUTH] = { "radius.dropped.bad_authenticator",
                              "kickmail_radius_dropped_total", "bad_authenticator", NULL,
                              "reason" },
    [ST_RADIUS_DROP_MALFORMED] = { "radius.dropped.malformed", "kickmail_radius_dropped_total",
                                   "malformed", NULL, "reason" },
    [ST_POP3_LOGIN_OK] = { "pop3.logins.ok", "kickmail_pop3_logins_total", "ok",
                           "POP3 logins by result.", "result" },
    [ST_POP3_LOGIN_FAILED] = { "pop3.logins.failed", "kickmail_pop3_logins_total", "failed",
                               NULL, "result" },
    [ST_POP3_RETRIEVED] = { "pop3.retrieved", "kickmail_pop3_retrieved_total", NULL,
                            "Messages retrieved whole (RETR) over POP3.", NULL },
    [ST_POP3_DELETED]  = { "pop3.deleted", "kickmail_pop3_deleted_total", NULL,
                           "Messages deleted over POP3 (at QUIT).", NULL },
    [ST_POP3_BYTES]    = { "pop3.bytes_retrieved", "kickmail_pop3_retrieved_bytes_total", NULL,
                           "Octets of messages retrieved over POP3 (RETR).", NULL },
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
                                info[i].lkey ? info[i].lkey : "source",
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

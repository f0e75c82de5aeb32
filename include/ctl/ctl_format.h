/*
 * ctl_format — the output of the control commands, rendered into an
 * evbuffer from the qmgr's index structures, the link table's rows and the
 * results of operations.  Pure: nothing here calls the qmgr or touches the
 * network, so unit tests build struct qmsg / struct qcust / struct link by
 * hand.  Whatever needs the running qmgr (the effective hold of a
 * recipient) comes in through struct ctl_fmt_opts.
 *
 * Text output replaces control characters in peer-supplied strings
 * (addresses, reasons) with '?'; JSON output escapes everything and never
 * emits invalid UTF-8 (bad bytes become U+FFFD).
 */
#ifndef KM_CTL_FORMAT_H
#define KM_CTL_FORMAT_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;
struct link;
struct deliver_kick_result;
struct qmsg;
struct qcust;
struct qrcpt;
struct qrcpt_list;

/* What to show of a message. */
struct ctl_fmt_opts {
    /* Effective hold of a pending recipient (qmgr_rcpt_held in the daemon).
     * NULL: message hold or customer hold. */
    int (*held)(const struct qrcpt *r);
    const struct qcust *cust;   /* only recipients of this customer (NULL: any) */
    const char *domain;         /* only recipients in this domain (NULL: any) */
};

/* Is r waiting (queued or deferred) and selected by o (o may be NULL)? */
int ctl_fmt_rcpt_selected(const struct qrcpt *r, const struct ctl_fmt_opts *o);
/* Message hold, or every pending recipient held (and at least one pending). */
int ctl_fmt_msg_held(const struct qmsg *m, const struct ctl_fmt_opts *o);
/* "queued", "deferred", "held", "delivered" or "bounced". */
const char *ctl_fmt_rcpt_status(const struct qmsg *m, const struct qrcpt *r,
                                const struct ctl_fmt_opts *o);

/* asctime(3) layout without the newline, local time: "Sun Nov 22 02:54:46 2020". */
#define CTL_ASCTIME_LEN 64
void ctl_fmt_asctime(int64_t t, char buf[CTL_ASCTIME_LEN]);

/* A JSON string literal for s (with quotes), or null when s is NULL. */
void ctl_fmt_json_str(struct evbuffer *out, const char *s);

/* `list`, Postfix postqueue -p layout.  Call ctl_fmt_list_msg for every
 * candidate message (it prints nothing and returns 0 when no recipient is
 * selected), then ctl_fmt_list_end once. */
struct ctl_list_state {
    unsigned long count;        /* messages printed */
    uint64_t bytes;             /* their sizes */
};
int ctl_fmt_list_msg(struct evbuffer *out, struct ctl_list_state *st,
                     const struct qmsg *m, const struct ctl_fmt_opts *o);
void ctl_fmt_list_end(struct evbuffer *out, const struct ctl_list_state *st);
/* `list --json`: one JSON line, or nothing (0) when no recipient is selected. */
int ctl_fmt_list_json(struct evbuffer *out, const struct qmsg *m,
                      const struct ctl_fmt_opts *o);

/* `show`: the envelope (every recipient, with status and reason). */
void ctl_fmt_show(struct evbuffer *out, const struct qmsg *m, const struct ctl_fmt_opts *o);
/* Moves the header section of a message (up to, not including, the first
 * empty line; LF or CRLF) from body to out; the rest of body is left. */
void ctl_fmt_headers(struct evbuffer *out, struct evbuffer *body);

/* `show`: moves env (from ctl_fmt_show), an empty line, and the whole of
 * body (whole) or its header section (ctl_fmt_headers) into out. */
void ctl_fmt_show_message(struct evbuffer *out, struct evbuffer *env,
                          struct evbuffer *body, int whole);

/* The answer of a command that did one thing: "WHAT TARGET" ("held acme",
 * "deleted 2 messages"), or "WHAT" alone when target is NULL ("reloaded"). */
void ctl_fmt_done(struct evbuffer *out, const char *what, const char *target);
/* `bounce`: "bounced N message(s)". */
void ctl_fmt_bounced(struct evbuffer *out, size_t n);

/* `kick`: "kicked acme: 3 messages to 192.0.2.1:25" (an IPv6 address in
 * brackets; " (delivery already running)" when it joined a running flush),
 * or one JSON line. */
void ctl_fmt_kick(struct evbuffer *out, const char *customer,
                  const struct deliver_kick_result *res, int json);

/* `link up/down`: "link up acme at 192.0.2.1" ("(fixed host)" when address
 * is empty), "link down acme". */
void ctl_fmt_link_done(struct evbuffer *out, int up, const char *customer,
                       const char *address);
/* `link down --session ID` that found the link up with another session:
 * "link up acme at 192.0.2.1, left up (session ID is not its session)". */
void ctl_fmt_link_kept(struct evbuffer *out, const char *customer, const char *address,
                       const char *session);
/* `links`: the header line of the text table (none for JSON), then one line
 * (or JSON line) per link, times in local time. */
void ctl_fmt_links_head(struct evbuffer *out);
void ctl_fmt_link(struct evbuffer *out, const struct link *l, int json);

/* `status`. */
void ctl_fmt_status(struct evbuffer *out, const char *version, long pid,
                    int64_t uptime, unsigned long messages, int json);

/* `summary`: one row per customer, plus (outbound) and (orphan). */
struct ctl_link {
    const char *state;          /* "up" / "down" */
    const char *address;        /* NULL: unknown */
    int64_t since, expires;     /* epoch s, 0: unknown */
    const char *source;         /* NULL: none */
};
struct ctl_sum_row {
    const char *name;           /* customer, "(outbound)" or "(orphan)" */
    size_t ndomains;
    const char *const *domains;
    unsigned long messages;
    uint64_t bytes;
    int64_t oldest;             /* arrival of the oldest waiting message, 0: none */
    int held;                   /* customer hold */
    struct ctl_link link;
    const char **owned;         /* domains array allocated by ctl_sum_from_list */
};
/* Fills row from a list of waiting recipients (the outbound or orphan list):
 * distinct messages, their bytes, the oldest arrival, and with want_domains
 * the distinct domains.  Release with ctl_sum_row_clear(). */
void ctl_sum_from_list(struct ctl_sum_row *row, const char *name,
                       const struct qrcpt_list *l, int want_domains);
void ctl_sum_row_clear(struct ctl_sum_row *row);
void ctl_fmt_summary(struct evbuffer *out, const struct ctl_sum_row *rows, size_t n,
                     int64_t now, int json);

/* `shape`: per-domain age histogram of waiting recipients, like qshape. */
struct ctl_shape;
struct ctl_shape *ctl_shape_new(int64_t now);
/* Counts m's selected waiting recipients. */
void ctl_shape_add_msg(struct ctl_shape *sh, const struct qmsg *m,
                       const struct ctl_fmt_opts *o);
void ctl_fmt_shape(struct evbuffer *out, const struct ctl_shape *sh);
void ctl_shape_free(struct ctl_shape *sh);

/* Cells shared by the tables: an age "45s", "12m07s", "3h05m", "5d03h";
 * a local time "2024-05-01T12:00:00", or "-" for t <= 0. */
void ctl_fmt_age(char *buf, size_t len, int64_t age);
void ctl_fmt_when(char *buf, size_t len, int64_t t);

/* `maildrops` (format_maildrop.c): one row per maildrop, figures from the
 * usage table (maildir.h).  Text: a header line and aligned columns
 * MAILDROP MODE MESSAGES BYTES QUOTA OLDEST LAST-LOGIN (mode "keep 30d" in
 * keep mode; "-" for no quota, no message, no login since start); JSON
 * Lines: maildrop, customer (a domain maildrop's, else null), mode,
 * keep_days, messages, bytes, quota (null: none), oldest (epoch s or null),
 * oldest_age (s), last_login (epoch s or null). */
struct ctl_maildrop_row {
    const char *name;           /* "alice@isp.example" or a customer name */
    const char *customer;       /* a domain maildrop's customer, else NULL */
    int keep;                   /* keep mode (else delete mode) */
    long keep_days;
    uint64_t quota;             /* bytes, 0: none */
    uint64_t messages, bytes;
    int64_t oldest;             /* epoch s, 0: no message */
    int64_t last_login;         /* epoch s, 0: none since start */
};
void ctl_fmt_maildrops(struct evbuffer *out, const struct ctl_maildrop_row *rows, size_t n,
                       int64_t now, int json);

#endif

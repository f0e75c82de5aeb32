/*
 * format — everything the control commands print (the command table they
 * share with kickq is in ctl_cmd.c; the handlers, cmd_*.c, print nothing
 * themselves).  It reads the qmgr's index structures (struct qmsg, qrcpt,
 * qcust), the link table's rows (struct link) and results handed to it, but
 * calls no qmgr or links function (links_source_name() aside, a constant
 * lookup): whatever needs the running daemon arrives through struct
 * ctl_fmt_opts or the arguments, so it links into kickq and unit tests
 * without a daemon.
 *
 * Trusts: the structures are consistent (rcpts[] has nrcpt entries, strings
 * are NUL-terminated).  Does not trust their content: addresses and reasons
 * come from peers.  Guarantees: text output carries no control characters
 * from them ('?' instead); JSON output is valid JSON and valid UTF-8 whatever
 * the bytes (invalid sequences become U+FFFD).  `list` reproduces Postfix's
 * postqueue -p layout for long queue IDs: header, "%-17s %8ld %19.19s %s"
 * sender lines (the ID and its '*' or '!' mark together in the first
 * column) with an asctime(3) date, right-aligned "(reason)" lines,
 * 47-column recipient indent, a blank line between messages,
 * "-- N Kbytes in M Request(s)."
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>

#include "core/util.h"
#include "ctl/ctl.h"
#include "ctl/ctl_format.h"
#include "link/links.h"
#include "mta/deliver.h"
#include "queue/qmgr.h"

/* Appends a string literal (its length computed, never counted by hand). */
#define PUT_LIT(out, lit) evbuffer_add((out), lit, sizeof(lit) - 1)

/* ---- small helpers ---- */

/* Appends s with control characters replaced by '?'. */
static void put_printable(struct evbuffer *out, const char *s)
{
    const char *p = s;
    while (*p) {
        size_t n = 0;
        while (p[n] && (unsigned char)p[n] >= 0x20 && p[n] != 0x7f)
            n++;
        if (n)
            evbuffer_add(out, p, n);
        p += n;
        if (*p) {
            PUT_LIT(out, "?");
            p++;
        }
    }
}

void ctl_fmt_asctime(int64_t t, char buf[CTL_ASCTIME_LEN])
{
    static const char wday[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
    static const char mon[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    time_t tt = (time_t)t;
    struct tm tm;
    if (!localtime_r(&tt, &tm) || tm.tm_wday < 0 || tm.tm_wday > 6 ||
        tm.tm_mon < 0 || tm.tm_mon > 11) {
        snprintf(buf, CTL_ASCTIME_LEN, "??");
        return;
    }
    snprintf(buf, CTL_ASCTIME_LEN, "%s %s%3d %.2d:%.2d:%.2d %d",
             wday[tm.tm_wday], mon[tm.tm_mon], tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, tm.tm_year + 1900);
}

/* Length of the valid UTF-8 multi-byte sequence at p (2-4), or 0. */
static size_t utf8_seq_len(const unsigned char *p)
{
    unsigned char c = p[0];
    unsigned char lo = 0x80, hi = 0xbf;
    size_t n;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4;
    else
        return 0;
    if (c == 0xe0) lo = 0xa0;           /* overlong */
    if (c == 0xed) hi = 0x9f;           /* surrogates */
    if (c == 0xf0) lo = 0x90;           /* overlong */
    if (c == 0xf4) hi = 0x8f;           /* > U+10FFFF */
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xbf)
            return 0;
    return n;
}

void ctl_fmt_json_str(struct evbuffer *out, const char *s)
{
    if (!s) {
        PUT_LIT(out, "null");
        return;
    }
    const unsigned char *p = (const unsigned char *)s;
    PUT_LIT(out, "\"");
    while (*p) {
        size_t n = 0;
        while (p[n] >= 0x20 && p[n] < 0x7f && p[n] != '"' && p[n] != '\\')
            n++;
        if (n) {
            evbuffer_add(out, p, n);
            p += n;
            continue;
        }
        unsigned char c = *p;
        if (c == '"' || c == '\\') {
            evbuffer_add_printf(out, "\\%c", c);
        } else if (c == '\n') {
            PUT_LIT(out, "\\n");
        } else if (c == '\r') {
            PUT_LIT(out, "\\r");
        } else if (c == '\t') {
            PUT_LIT(out, "\\t");
        } else if (c < 0x80) {
            evbuffer_add_printf(out, "\\u%04x", c);
        } else if ((n = utf8_seq_len(p))) {
            evbuffer_add(out, p, n);
            p += n;
            continue;
        } else {
            PUT_LIT(out, "\\ufffd");
        }
        p++;
    }
    PUT_LIT(out, "\"");
}

/* ---- recipients ---- */

static int rcpt_pending(const struct qrcpt *r)
{
    return r->status == QR_QUEUED || r->status == QR_DEFERRED;
}

static int rcpt_held(const struct qmsg *m, const struct qrcpt *r,
                     const struct ctl_fmt_opts *o)
{
    if (o && o->held)
        return o->held(r);
    return m->held || (r->cust && r->cust->held);
}

int ctl_fmt_rcpt_selected(const struct qrcpt *r, const struct ctl_fmt_opts *o)
{
    if (!rcpt_pending(r))
        return 0;
    if (o && o->cust && r->cust != o->cust)
        return 0;
    if (o && o->domain && strcasecmp(r->domain, o->domain) != 0)
        return 0;
    return 1;
}

int ctl_fmt_msg_held(const struct qmsg *m, const struct ctl_fmt_opts *o)
{
    int pending = 0;
    if (m->held)
        return 1;
    for (size_t i = 0; i < m->nrcpt; i++) {
        const struct qrcpt *r = &m->rcpts[i];
        if (!rcpt_pending(r))
            continue;
        if (!rcpt_held(m, r, o))
            return 0;
        pending = 1;
    }
    return pending;
}

const char *ctl_fmt_rcpt_status(const struct qmsg *m, const struct qrcpt *r,
                                const struct ctl_fmt_opts *o)
{
    if (r->status == QR_DELIVERED)
        return "delivered";
    if (r->status == QR_BOUNCED)
        return "bounced";
    if (rcpt_held(m, r, o))
        return "held";
    return r->status == QR_DEFERRED ? "deferred" : "queued";
}

/* ---- list (Postfix layout) ---- */

/* Postfix's layout for long queue IDs (showq_compat.c, used with
 * enable_long_queue_ids = yes): ours are QUEUE_ID_LEN characters, too many
 * for the 11 of its short layout, and the columns line up only when the ID
 * and its mark fit the first one. */
#define LIST_FMT_STRING "%-17s %8s %-19s %s\n"
#define LIST_FMT_SENDER "%-17s %8ld %19.19s "
#define LIST_FMT_INDENT "%-17s %8s %-19s "
_Static_assert(QUEUE_ID_LEN + 1 <= 17, "a queue ID and its mark fit the first column");

/* A selected recipient and the reason line it goes under (NULL: none). */
struct list_item {
    const struct qrcpt *r;
    const char *key;
    size_t idx;
};

static int list_item_cmp(const void *a, const void *b)
{
    const struct list_item *x = a, *y = b;
    if (!x->key != !y->key)
        return x->key ? 1 : -1;         /* recipients without a reason first */
    int c = x->key ? strcmp(x->key, y->key) : 0;
    if (c)
        return c;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* The "(reason)" a recipient is listed under: none for queued mail, the
 * deferral reason, or "held" for a recipient held in a message that is not
 * held as a whole (those are flagged '!' instead). */
static const char *list_reason(const struct qmsg *m, const struct qrcpt *r,
                               int msg_held, const struct ctl_fmt_opts *o)
{
    if (!msg_held && rcpt_held(m, r, o))
        return "held";
    if (r->status == QR_DEFERRED)
        return r->reason && r->reason[0] ? r->reason : "reason unavailable";
    return NULL;
}

static void list_rcpts(struct evbuffer *out, struct list_item *it, size_t n)
{
    const char *shown = NULL;
    qsort(it, n, sizeof *it, list_item_cmp);
    for (size_t i = 0; i < n; i++) {
        const char *key = it[i].key;
        if (key && (!shown || strcmp(shown, key) != 0)) {
            int pad = 76 - (int)strlen(key);
            evbuffer_add_printf(out, "%*s(", pad < 0 ? 0 : pad, "");
            put_printable(out, key);
            PUT_LIT(out, ")\n");
            shown = key;
        }
        evbuffer_add_printf(out, LIST_FMT_INDENT, "", "", "");
        put_printable(out, it[i].r->addr);
        PUT_LIT(out, "\n");
    }
}

int ctl_fmt_list_msg(struct evbuffer *out, struct ctl_list_state *st,
                     const struct qmsg *m, const struct ctl_fmt_opts *o)
{
    struct list_item *it = xcalloc(m->nrcpt ? m->nrcpt : 1, sizeof *it);
    int msg_held = ctl_fmt_msg_held(m, o);
    size_t n = 0;
    for (size_t i = 0; i < m->nrcpt; i++) {
        const struct qrcpt *r = &m->rcpts[i];
        if (!ctl_fmt_rcpt_selected(r, o))
            continue;
        it[n].r = r;
        it[n].key = list_reason(m, r, msg_held, o);
        it[n].idx = i;
        n++;
    }
    if (n == 0) {
        free(it);
        return 0;
    }
    if (st->count == 0)
        evbuffer_add_printf(out, LIST_FMT_STRING, "----Queue ID-----", "--Size--",
                            "---Arrival Time----", "--Sender/Recipient------");
    else
        PUT_LIT(out, "\n");
    char id[QUEUE_ID_LEN + 8], when[CTL_ASCTIME_LEN];
    snprintf(id, sizeof id, "%s%s", m->idstr, m->active ? "*" : msg_held ? "!" : "");
    ctl_fmt_asctime(m->arrival, when);  /* the year is cut by %19.19s */
    evbuffer_add_printf(out, LIST_FMT_SENDER, id, (long)m->size, when);
    put_printable(out, m->sender[0] ? m->sender : "MAILER-DAEMON");
    PUT_LIT(out, "\n");
    list_rcpts(out, it, n);
    free(it);
    st->count++;
    st->bytes += m->size;
    return 1;
}

void ctl_fmt_list_end(struct evbuffer *out, const struct ctl_list_state *st)
{
    if (st->count == 0)
        evbuffer_add_printf(out, "Mail queue is empty\n");
    else
        evbuffer_add_printf(out, "\n-- %llu Kbytes in %lu Request%s.\n",
                            (unsigned long long)(st->bytes / 1024), st->count,
                            st->count == 1 ? "" : "s");
}

/* ---- list --json ---- */

static void json_rcpt(struct evbuffer *out, const struct qmsg *m, const struct qrcpt *r,
                      const struct ctl_fmt_opts *o)
{
    PUT_LIT(out, "{\"address\":");
    ctl_fmt_json_str(out, r->addr);
    PUT_LIT(out, ",\"domain\":");
    ctl_fmt_json_str(out, r->domain);
    PUT_LIT(out, ",\"customer\":");
    ctl_fmt_json_str(out, r->cust ? r->cust->name : NULL);
    evbuffer_add_printf(out, ",\"status\":\"%s\",\"reason\":",
                        ctl_fmt_rcpt_status(m, r, o));
    ctl_fmt_json_str(out, r->reason && r->reason[0] ? r->reason : NULL);
    PUT_LIT(out, "}");
}

int ctl_fmt_list_json(struct evbuffer *out, const struct qmsg *m,
                      const struct ctl_fmt_opts *o)
{
    size_t first = m->nrcpt;
    for (size_t i = 0; i < m->nrcpt && first == m->nrcpt; i++)
        if (ctl_fmt_rcpt_selected(&m->rcpts[i], o))
            first = i;
    if (first == m->nrcpt)
        return 0;
    PUT_LIT(out, "{\"queue_id\":");
    ctl_fmt_json_str(out, m->idstr);
    evbuffer_add_printf(out, ",\"arrival_time\":%lld,\"size\":%llu,\"sender\":",
                        (long long)m->arrival, (unsigned long long)m->size);
    ctl_fmt_json_str(out, m->sender);
    evbuffer_add_printf(out, ",\"held\":%s,\"recipients\":[",
                        ctl_fmt_msg_held(m, o) ? "true" : "false");
    for (size_t i = first; i < m->nrcpt; i++) {
        if (!ctl_fmt_rcpt_selected(&m->rcpts[i], o))
            continue;
        if (i != first)
            PUT_LIT(out, ",");
        json_rcpt(out, m, &m->rcpts[i], o);
    }
    PUT_LIT(out, "]}\n");
    return 1;
}

/* ---- show ---- */

void ctl_fmt_show(struct evbuffer *out, const struct qmsg *m, const struct ctl_fmt_opts *o)
{
    char when[CTL_ASCTIME_LEN];
    ctl_fmt_asctime(m->arrival, when);
    evbuffer_add_printf(out, "queue_id: %s\narrival: %s (%lld)\nsize: %llu\nsender: ",
                        m->idstr, when, (long long)m->arrival,
                        (unsigned long long)m->size);
    put_printable(out, m->sender[0] ? m->sender : "MAILER-DAEMON");
    evbuffer_add_printf(out, "\nheld: %s%s\n", m->held ? "yes" : "no",
                        m->active ? "\nactive: yes" : "");
    for (size_t i = 0; i < m->nrcpt; i++) {
        const struct qrcpt *r = &m->rcpts[i];
        PUT_LIT(out, "recipient: ");
        put_printable(out, r->addr);
        evbuffer_add_printf(out, " customer=%s status=%s",
                            r->cust ? r->cust->name : r->outbound ? "(outbound)" : "(orphan)",
                            ctl_fmt_rcpt_status(m, r, o));
        if (r->reason && r->reason[0]) {
            PUT_LIT(out, " (");
            put_printable(out, r->reason);
            PUT_LIT(out, ")");
        }
        PUT_LIT(out, "\n");
    }
}

void ctl_fmt_headers(struct evbuffer *out, struct evbuffer *body)
{
    struct evbuffer_ptr p;
    size_t eol_len = 0;
    evbuffer_ptr_set(body, &p, 0, EVBUFFER_PTR_SET);
    for (;;) {
        struct evbuffer_ptr e = evbuffer_search_eol(body, &p, &eol_len, EVBUFFER_EOL_CRLF);
        if (e.pos < 0) {                /* no empty line: all of it is header */
            evbuffer_add_buffer(out, body);
            return;
        }
        if (e.pos == p.pos) {           /* the empty line */
            evbuffer_remove_buffer(body, out, (size_t)p.pos);
            return;
        }
        if (evbuffer_ptr_set(body, &e, eol_len, EVBUFFER_PTR_ADD) < 0) {
            evbuffer_add_buffer(out, body);
            return;
        }
        p = e;
    }
}

void ctl_fmt_show_message(struct evbuffer *out, struct evbuffer *env,
                          struct evbuffer *body, int whole)
{
    evbuffer_add_buffer(out, env);
    evbuffer_add(out, "\n", 1);
    if (whole)
        evbuffer_add_buffer(out, body);
    else
        ctl_fmt_headers(out, body);
}

/* ---- one-line answers ---- */

void ctl_fmt_done(struct evbuffer *out, const char *what, const char *target)
{
    if (target)
        evbuffer_add_printf(out, "%s %s\n", what, target);
    else
        evbuffer_add_printf(out, "%s\n", what);
}

void ctl_fmt_bounced(struct evbuffer *out, size_t n)
{
    evbuffer_add_printf(out, "bounced %zu message%s\n", n, n == 1 ? "" : "s");
}

/* ---- kick, link, links ---- */

void ctl_fmt_kick(struct evbuffer *out, const char *customer,
                  const struct deliver_kick_result *res, int json)
{
    if (json) {
        evbuffer_add_printf(out, "{\"customer\":");
        ctl_fmt_json_str(out, customer);
        evbuffer_add_printf(out, ",\"messages\":%u,\"address\":", res->messages);
        ctl_fmt_json_str(out, res->address);
        evbuffer_add_printf(out, ",\"port\":%d}\n", res->port);
    } else {
        int v6 = strchr(res->address, ':') != NULL;
        if (res->port == 0)             /* local delivery: "local", no port */
            evbuffer_add_printf(out, "kicked %s: %u messages to %s%s\n", customer,
                                res->messages, res->address,
                                res->already ? " (delivery already running)" : "");
        else
            evbuffer_add_printf(out, "kicked %s: %u messages to %s%s%s:%d%s\n", customer,
                                res->messages, v6 ? "[" : "", res->address, v6 ? "]" : "",
                                res->port, res->already ? " (delivery already running)" : "");
    }
}

void ctl_fmt_link_done(struct evbuffer *out, int up, const char *customer,
                       const char *address)
{
    if (up)
        evbuffer_add_printf(out, "link up %s at %s\n", customer,
                            address[0] ? address : "(fixed host)");
    else
        evbuffer_add_printf(out, "link down %s\n", customer);
}

void ctl_fmt_link_kept(struct evbuffer *out, const char *customer, const char *address,
                       const char *session)
{
    evbuffer_add_printf(out, "link up %s at %s, left up (session %s is not its session)\n",
                        customer, address[0] ? address : "(fixed host)", session);
}

void ctl_fmt_links_head(struct evbuffer *out)
{
    evbuffer_add_printf(out, "%-20s %-5s %-39s %-20s %-20s %-8s %s\n", "CUSTOMER", "STATE",
                        "ADDRESS", "SINCE", "EXPIRES", "SOURCE", "SESSION");
}

static void link_json(struct evbuffer *out, const struct link *l)
{
    evbuffer_add_printf(out, "{\"customer\":");
    ctl_fmt_json_str(out, l->customer);
    evbuffer_add_printf(out, ",\"state\":\"%s\",\"address\":", l->up ? "up" : "down");
    ctl_fmt_json_str(out, l->address[0] ? l->address : NULL);
    evbuffer_add_printf(out, ",\"since\":%lld,\"expires\":", (long long)l->since);
    if (l->up && l->expires)
        evbuffer_add_printf(out, "%lld", (long long)l->expires);
    else
        evbuffer_add_printf(out, "null");
    evbuffer_add_printf(out, ",\"source\":");
    ctl_fmt_json_str(out, l->source != LINK_SRC_NONE ? links_source_name(l->source) : NULL);
    evbuffer_add_printf(out, ",\"session\":");
    ctl_fmt_json_str(out, l->session[0] ? l->session : NULL);
    evbuffer_add_printf(out, "}\n");
}

void ctl_fmt_link(struct evbuffer *out, const struct link *l, int json)
{
    if (json) {
        link_json(out, l);
        return;
    }
    char since[32] = "-", exp[32] = "-";
    struct tm tm;
    time_t t = (time_t)l->since;
    if (l->since && localtime_r(&t, &tm))
        strftime(since, sizeof since, "%Y-%m-%dT%H:%M:%S", &tm);
    t = (time_t)l->expires;
    if (l->up && l->expires && localtime_r(&t, &tm))
        strftime(exp, sizeof exp, "%Y-%m-%dT%H:%M:%S", &tm);
    evbuffer_add_printf(out, "%-20s %-5s %-39s %-20s %-20s %-8s %s\n", l->customer,
                        l->up ? "up" : "down", l->address[0] ? l->address : "-", since, exp,
                        l->source != LINK_SRC_NONE ? links_source_name(l->source) : "-",
                        l->session[0] ? l->session : "-");
}

/* ---- status ---- */

void ctl_fmt_status(struct evbuffer *out, const char *version, long pid,
                    int64_t uptime, unsigned long messages, int json)
{
    if (json) {
        PUT_LIT(out, "{\"status\":\"running\",\"version\":");
        ctl_fmt_json_str(out, version);
        evbuffer_add_printf(out, ",\"pid\":%ld,\"uptime\":%lld,\"messages\":%lu}\n",
                            pid, (long long)uptime, messages);
    } else {
        evbuffer_add_printf(out, "kickmaild %s running, pid %ld, up %lld s, %lu messages\n",
                            version, pid, (long long)uptime, messages);
    }
}

/* ---- summary ---- */

static int str_ptr_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void ctl_sum_from_list(struct ctl_sum_row *row, const char *name,
                       const struct qrcpt_list *l, int want_domains)
{
    struct hmap *msgs = hmap_new(0), *doms = hmap_new(1);
    const struct qrcpt *r;
    memset(row, 0, sizeof *row);
    row->name = name;
    row->link.state = "down";
    TAILQ_FOREACH(r, l, link) {
        if (!rcpt_pending(r))
            continue;
        if (want_domains && !hmap_get(doms, r->domain))
            hmap_put(doms, r->domain, (void *)r->domain);
        if (hmap_get(msgs, r->msg->idstr))
            continue;
        hmap_put(msgs, r->msg->idstr, r->msg);
        row->messages++;
        row->bytes += r->msg->size;
        if (!row->oldest || r->msg->arrival < row->oldest)
            row->oldest = r->msg->arrival;
    }
    size_t n = hmap_count(doms);
    if (n) {
        size_t pos = 0, i = 0;
        const char *k;
        row->owned = xcalloc(n, sizeof *row->owned);
        while (i < n && hmap_next(doms, &pos, &k, NULL))
            row->owned[i++] = k;
        qsort(row->owned, i, sizeof *row->owned, str_ptr_cmp);
        row->ndomains = i;
        row->domains = row->owned;
    }
    hmap_free(msgs);
    hmap_free(doms);
}

void ctl_sum_row_clear(struct ctl_sum_row *row)
{
    free(row->owned);
    memset(row, 0, sizeof *row);
}

/* "45s", "12m07s", "3h05m", "5d03h". */
static void fmt_age(char *buf, size_t len, int64_t age)
{
    if (age < 60)
        snprintf(buf, len, "%llds", (long long)age);
    else if (age < 3600)
        snprintf(buf, len, "%lldm%02llds", (long long)(age / 60), (long long)(age % 60));
    else if (age < 86400)
        snprintf(buf, len, "%lldh%02lldm", (long long)(age / 3600),
                 (long long)(age % 3600 / 60));
    else
        snprintf(buf, len, "%lldd%02lldh", (long long)(age / 86400),
                 (long long)(age % 86400 / 3600));
}

/* Local time as 2024-05-01T12:00:00, "-" for 0. */
static void fmt_when(char *buf, size_t len, int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (t <= 0 || !localtime_r(&tt, &tm) || !strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm))
        snprintf(buf, len, "-");
}

static void json_num_or_null(struct evbuffer *out, int64_t v)
{
    if (v > 0)
        evbuffer_add_printf(out, "%lld", (long long)v);
    else
        PUT_LIT(out, "null");
}

static void summary_json(struct evbuffer *out, const struct ctl_sum_row *r, int64_t now)
{
    PUT_LIT(out, "{\"customer\":");
    ctl_fmt_json_str(out, r->name);
    PUT_LIT(out, ",\"domains\":[");
    for (size_t i = 0; i < r->ndomains; i++) {
        if (i)
            PUT_LIT(out, ",");
        ctl_fmt_json_str(out, r->domains[i]);
    }
    evbuffer_add_printf(out, "],\"messages\":%lu,\"bytes\":%llu,\"oldest_age\":%lld,"
                        "\"held\":%s,\"link\":{\"state\":", r->messages,
                        (unsigned long long)r->bytes,
                        (long long)(r->oldest && now > r->oldest ? now - r->oldest : 0),
                        r->held ? "true" : "false");
    ctl_fmt_json_str(out, r->link.state ? r->link.state : "down");
    PUT_LIT(out, ",\"address\":");
    ctl_fmt_json_str(out, r->link.address);
    PUT_LIT(out, ",\"since\":");
    json_num_or_null(out, r->link.since);
    PUT_LIT(out, ",\"expires\":");
    json_num_or_null(out, r->link.expires);
    PUT_LIT(out, ",\"source\":");
    ctl_fmt_json_str(out, r->link.source);
    PUT_LIT(out, "}}\n");
}

/* A text table: cells of n rows by SUM_COLS columns, aligned. */
#define SUM_COLS 9
static const char *const sum_head[SUM_COLS] = {
    "CUSTOMER", "DOMAINS", "MESSAGES", "BYTES", "OLDEST", "LINK", "ADDRESS",
    "SINCE", "SOURCE",
};
static const int sum_right[SUM_COLS] = { 0, 0, 1, 1, 1, 0, 0, 0, 0 };

/* A copy of the evbuffer's contents as a string; frees b. */
static char *buf_take_str(struct evbuffer *b)
{
    size_t len = evbuffer_get_length(b);
    char *s = xmalloc(len + 1);
    evbuffer_remove(b, s, len);
    s[len] = 0;
    evbuffer_free(b);
    return s;
}

static void sum_cells(char **cell, const struct ctl_sum_row *r, int64_t now)
{
    struct evbuffer *b = evbuffer_new();
    char tmp[64];
    evbuffer_add_printf(b, "%s%s", r->name, r->held ? "!" : "");
    cell[0] = buf_take_str(b);
    b = evbuffer_new();
    for (size_t i = 0; i < r->ndomains; i++)
        evbuffer_add_printf(b, "%s%s", i ? "," : "", r->domains[i]);
    if (!r->ndomains)
        PUT_LIT(b, "-");
    cell[1] = buf_take_str(b);
    snprintf(tmp, sizeof tmp, "%lu", r->messages);
    cell[2] = xstrdup(tmp);
    snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)r->bytes);
    cell[3] = xstrdup(tmp);
    if (r->oldest)
        fmt_age(tmp, sizeof tmp, now > r->oldest ? now - r->oldest : 0);
    else
        snprintf(tmp, sizeof tmp, "-");
    cell[4] = xstrdup(tmp);
    cell[5] = xstrdup(r->link.state ? r->link.state : "down");
    cell[6] = xstrdup(r->link.address ? r->link.address : "-");
    fmt_when(tmp, sizeof tmp, r->link.since);
    cell[7] = xstrdup(tmp);
    cell[8] = xstrdup(r->link.source ? r->link.source : "-");
}

static void sum_print_row(struct evbuffer *out, const char *const *cell, const size_t *w)
{
    struct evbuffer *b = evbuffer_new();
    for (int c = 0; c < SUM_COLS; c++) {
        const char *sep = c ? "  " : "";
        if (sum_right[c])
            evbuffer_add_printf(b, "%s%*s", sep, (int)w[c], cell[c]);
        else if (c == SUM_COLS - 1)
            evbuffer_add_printf(b, "%s%s", sep, cell[c]);
        else
            evbuffer_add_printf(b, "%s%-*s", sep, (int)w[c], cell[c]);
    }
    char *line = buf_take_str(b);
    size_t len = strlen(line);
    while (len && line[len - 1] == ' ')
        line[--len] = 0;
    put_printable(out, line);
    PUT_LIT(out, "\n");
    free(line);
}

void ctl_fmt_summary(struct evbuffer *out, const struct ctl_sum_row *rows, size_t n,
                     int64_t now, int json)
{
    if (json) {
        for (size_t i = 0; i < n; i++)
            summary_json(out, &rows[i], now);
        return;
    }
    char **cells = xcalloc(n ? n * SUM_COLS : 1, sizeof *cells);
    size_t w[SUM_COLS];
    for (int c = 0; c < SUM_COLS; c++)
        w[c] = strlen(sum_head[c]);
    for (size_t i = 0; i < n; i++) {
        sum_cells(cells + i * SUM_COLS, &rows[i], now);
        for (int c = 0; c < SUM_COLS; c++) {
            size_t l = strlen(cells[i * SUM_COLS + c]);
            if (l > w[c])
                w[c] = l;
        }
    }
    sum_print_row(out, sum_head, w);
    for (size_t i = 0; i < n; i++)
        sum_print_row(out, (const char *const *)(cells + i * SUM_COLS), w);
    for (size_t i = 0; i < n * SUM_COLS; i++)
        free(cells[i]);
    free(cells);
}

/* For the other formatters of ctl_format.h (format_maildrop.c): the age
 * and time cells of `summary`. */
void ctl_fmt_age(char *buf, size_t len, int64_t age) { fmt_age(buf, len, age); }
void ctl_fmt_when(char *buf, size_t len, int64_t t) { fmt_when(buf, len, t); }

/* ---- shape ---- */

#define SHAPE_NB 10             /* buckets: < 5, 10, 20 ... 1280 minutes, then more */
static const int shape_limit[SHAPE_NB - 1] = { 5, 10, 20, 40, 80, 160, 320, 640, 1280 };

struct shape_dom {
    char *name;
    unsigned long total;
    unsigned long n[SHAPE_NB];
};

struct ctl_shape {
    int64_t now;
    struct hmap *doms;
    struct shape_dom all;
};

struct ctl_shape *ctl_shape_new(int64_t now)
{
    struct ctl_shape *sh = xcalloc(1, sizeof *sh);
    sh->now = now;
    sh->doms = hmap_new(1);
    sh->all.name = "TOTAL";
    return sh;
}

static int shape_bucket(int64_t age)
{
    int b = 0;
    while (b < SHAPE_NB - 1 && age >= (int64_t)shape_limit[b] * 60)
        b++;
    return b;
}

void ctl_shape_add_msg(struct ctl_shape *sh, const struct qmsg *m,
                       const struct ctl_fmt_opts *o)
{
    int b = shape_bucket(sh->now - m->arrival);
    for (size_t i = 0; i < m->nrcpt; i++) {
        const struct qrcpt *r = &m->rcpts[i];
        if (!ctl_fmt_rcpt_selected(r, o))
            continue;
        struct shape_dom *d = hmap_get(sh->doms, r->domain);
        if (!d) {
            d = xcalloc(1, sizeof *d);
            d->name = util_lower(xstrdup(r->domain));
            hmap_put(sh->doms, d->name, d);
        }
        d->n[b]++;
        d->total++;
        sh->all.n[b]++;
        sh->all.total++;
    }
}

static int shape_cmp(const void *a, const void *b)
{
    const struct shape_dom *x = *(const struct shape_dom *const *)a;
    const struct shape_dom *y = *(const struct shape_dom *const *)b;
    if (x->total != y->total)
        return x->total > y->total ? -1 : 1;
    return strcmp(x->name, y->name);
}

static void shape_row(struct evbuffer *out, const struct shape_dom *d, int wname,
                      const int *w)
{
    evbuffer_add_printf(out, "%*s %*lu", wname, d->name, w[0], d->total);
    for (int b = 0; b < SHAPE_NB; b++)
        evbuffer_add_printf(out, " %*lu", w[b + 1], d->n[b]);
    PUT_LIT(out, "\n");
}

void ctl_fmt_shape(struct evbuffer *out, const struct ctl_shape *sh)
{
    size_t n = hmap_count(sh->doms), pos = 0, k = 0;
    struct shape_dom **v = xcalloc(n + 1, sizeof *v);
    void *val;
    while (k < n && hmap_next(sh->doms, &pos, NULL, &val))
        v[k++] = val;
    qsort(v, k, sizeof *v, shape_cmp);
    char head[SHAPE_NB + 1][16];
    int w[SHAPE_NB + 1], wname = 5;
    snprintf(head[0], sizeof head[0], "T");
    for (int b = 0; b < SHAPE_NB; b++)
        snprintf(head[b + 1], sizeof head[b + 1], "%d%s",
                 shape_limit[b < SHAPE_NB - 1 ? b : b - 1], b < SHAPE_NB - 1 ? "" : "+");
    for (int c = 0; c <= SHAPE_NB; c++) {
        char tmp[32];
        snprintf(tmp, sizeof tmp, "%lu", c ? sh->all.n[c - 1] : sh->all.total);
        w[c] = (int)strlen(head[c]) > (int)strlen(tmp) ? (int)strlen(head[c]) : (int)strlen(tmp);
    }
    for (size_t i = 0; i < k; i++)
        if ((int)strlen(v[i]->name) > wname)
            wname = (int)strlen(v[i]->name);
    evbuffer_add_printf(out, "%*s", wname, "");
    for (int c = 0; c <= SHAPE_NB; c++)
        evbuffer_add_printf(out, " %*s", w[c], head[c]);
    PUT_LIT(out, "\n");
    shape_row(out, &sh->all, wname, w);
    for (size_t i = 0; i < k; i++)
        shape_row(out, v[i], wname, w);
    free(v);
}

void ctl_shape_free(struct ctl_shape *sh)
{
    size_t pos = 0;
    void *val;
    if (!sh)
        return;
    while (hmap_next(sh->doms, &pos, NULL, &val)) {
        struct shape_dom *d = val;
        free(d->name);
        free(d);
    }
    hmap_free(sh->doms);
    free(sh);
}

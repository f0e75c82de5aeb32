/*
 * ctl_deliver — the control commands about links and delivery: kick (a
 * delivery pass for one customer now), link up/down (a link event from
 * kickq), links (the link table), bounce (return messages to their senders
 * now), and the link columns of summary.  The session, the replies and the
 * handler table are ctl.c's (ctl_int.h).
 *
 * Trusts: requests that passed ctl_req_check (command, options and argument
 * count); not the words themselves: customers, addresses, durations and
 * queue IDs are checked here or by the qmgr, link_event and the links table
 * before use.
 * Guarantees: every handler answers exactly once (an asynchronous one —
 * link, bounce — from its callback, the session kept meanwhile by ctl.c);
 * a kick of a customer on hold fails (it would send nothing);
 * a bounce of several messages stops at the first failure and says so.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "config.h"
#include "ctl.h"
#include "ctl_format.h"
#include "ctl_int.h"
#include "deliver.h"
#include "link_event.h"
#include "links.h"
#include "log.h"
#include "qmgr.h"
#include "util.h"

/* bounce QUEUEID...: the messages are bounced one after another. */
struct bounce_run {
    struct ctl_sess *s;
    uint64_t *ids;
    size_t n, next, done;
};

static void bounce_step(int err, void *arg)
{
    struct bounce_run *br = arg;
    char why[256] = "";
    if (err) {
        ctl_reply_fail(br->s, 1, "bounce: %s", strerror(err));
        free(br->ids);
        free(br);
        return;
    }
    if (br->next > 0)
        br->done++;
    while (br->next < br->n) {
        uint64_t id = br->ids[br->next++];
        if (qmgr_bounce(id, bounce_step, br, why, sizeof why) == 0)
            return;
        ctl_reply_fail(br->s, 1, "%s", why);
        free(br->ids);
        free(br);
        return;
    }
    struct evbuffer *b = evbuffer_new();
    evbuffer_add_printf(b, "bounced %zu message%s\n", br->done, br->done == 1 ? "" : "s");
    ctl_reply_ok(br->s, b);
    evbuffer_free(b);
    free(br->ids);
    free(br);
}

void ctl_cmd_bounce(struct ctl_sess *s, const struct ctl_req *rq)
{
    struct bounce_run *br = xcalloc(1, sizeof *br);
    br->s = s;
    br->ids = xcalloc((size_t)rq->argc, sizeof *br->ids);
    for (int i = 0; i < rq->argc; i++) {
        struct qmsg *m = ctl_msg_arg(s, rq->argv[i]);
        if (!m) {
            free(br->ids);
            free(br);
            return;
        }
        br->ids[br->n++] = m->id;
    }
    log_info("control: uid=%ld bounce %zu message%s", s->uid, br->n, br->n == 1 ? "" : "s");
    bounce_step(0, br);
}

/* CUSTOMER or DOMAIN → the customer's index entry; replies on failure. */
static struct qcust *ctl_cust_arg(struct ctl_sess *s, const char *arg)
{
    char *t = util_lower(xstrdup(arg));
    struct qcust *qc = strchr(t, '.') ? qmgr_cust_by_domain(t) : qmgr_cust_by_name(t);
    if (!qc)
        ctl_reply_fail(s, 1, "%s: no such %s", arg, strchr(t, '.') ? "customer domain" : "customer");
    free(t);
    return qc;
}

void ctl_cmd_kick(struct ctl_sess *s, const struct ctl_req *rq)
{
    char err[256] = "";
    struct deliver_kick_result res;
    struct qcust *qc = ctl_cust_arg(s, rq->argv[0]);
    if (!qc)
        return;
    if (qc->held) {                 /* a pass would send nothing: say why */
        log_info("control: uid=%ld kick %s: refused, customer on hold", s->uid, qc->name);
        ctl_reply_fail(s, 1, "%s: customer is on hold; release it first (kickq release %s)",
                       qc->name, qc->name);
        return;
    }
    /* the delivery's connect() first: the log line and the answer can wait */
    int rc = deliver_kick(qc->name, 0, &res, err, sizeof err);
    log_info("control: uid=%ld kick %s", s->uid, qc->name);
    if (rc < 0) {
        ctl_reply_fail(s, 1, "%s", err);
        return;
    }
    struct evbuffer *b = evbuffer_new();
    if (rq->opts & CTL_OPT_JSON) {
        evbuffer_add_printf(b, "{\"customer\":");
        ctl_fmt_json_str(b, qc->name);
        evbuffer_add_printf(b, ",\"messages\":%u,\"address\":", res.messages);
        ctl_fmt_json_str(b, res.address);
        evbuffer_add_printf(b, ",\"port\":%d}\n", res.port);
    } else {
        int v6 = strchr(res.address, ':') != NULL;
        evbuffer_add_printf(b, "kicked %s: %u messages to %s%s%s:%d%s\n", qc->name,
                            res.messages, v6 ? "[" : "", res.address, v6 ? "]" : "", res.port,
                            res.already ? " (delivery already running)" : "");
    }
    ctl_reply_ok(s, b);
    evbuffer_free(b);
}

static void link_done(const struct link_event_result *res, void *arg)
{
    struct ctl_sess *s = arg;
    if (res->error) {
        ctl_reply_fail(s, 1, "%s", res->error);
        return;
    }
    struct evbuffer *b = evbuffer_new();
    if (res->up)
        evbuffer_add_printf(b, "link up %s at %s\n", res->customer,
                            res->address[0] ? res->address : "(fixed host)");
    else
        evbuffer_add_printf(b, "link down %s\n", res->customer);
    ctl_reply_ok(s, b);
    evbuffer_free(b);
}

/* link up/down: a link event (link_event.h holds the policy). */
void ctl_cmd_link(struct ctl_sess *s, const struct ctl_req *rq)
{
    char err[512] = "";
    const char *how = rq->argv[0];
    int up = !strcmp(how, "up");
    if (!up && strcmp(how, "down")) {
        ctl_reply_fail(s, 2, "usage: %s", rq->cmd->usage);
        return;
    }
    if ((!up && (rq->argc != 2 || rq->ttl)) || (up && rq->argc > 3)) {
        ctl_reply_fail(s, 2, "usage: %s", rq->cmd->usage);
        return;
    }
    struct link_event ev = {
        .kind = LINK_WHO_CUSTOMER, .who = rq->argv[1], .up = up,
        .address = up && rq->argc == 3 ? rq->argv[2] : "",
        .ttl = LINK_EVENT_TTL_DEFAULT, .source = LINK_SRC_KICKQ, .session = "",
    };
    /* checked before the duration: an unknown customer is reported first */
    const struct customer *cu = link_event_check(&ev, err, sizeof err);
    if (!cu) {
        ctl_reply_fail(s, 1, "%s", err);
        return;
    }
    if (rq->ttl && util_parse_duration(rq->ttl, &ev.ttl) < 0) {
        ctl_reply_fail(s, 2, "%s: not a duration", rq->ttl);
        return;
    }
    log_info("control: uid=%ld link %s %s %s", s->uid, how, cu->name, ev.address);
    if (link_event(&ev, link_done, s, err, sizeof err) < 0)
        ctl_reply_fail(s, 1, "%s", err[0] ? err : "failed");
}

void ctl_cmd_links(struct ctl_sess *s, const struct ctl_req *rq)
{
    size_t pos = 0;
    const struct link *l;
    int json = (rq->opts & CTL_OPT_JSON) != 0;
    struct evbuffer *b = evbuffer_new();
    if (!json)
        evbuffer_add_printf(b, "%-20s %-5s %-39s %-20s %-20s %-8s %s\n", "CUSTOMER", "STATE",
                            "ADDRESS", "SINCE", "EXPIRES", "SOURCE", "SESSION");
    while ((l = links_next(&pos))) {
        if (json) {
            evbuffer_add_printf(b, "{\"customer\":");
            ctl_fmt_json_str(b, l->customer);
            evbuffer_add_printf(b, ",\"state\":\"%s\",\"address\":", l->up ? "up" : "down");
            ctl_fmt_json_str(b, l->address[0] ? l->address : NULL);
            evbuffer_add_printf(b, ",\"since\":%lld,\"expires\":", (long long)l->since);
            if (l->up && l->expires)
                evbuffer_add_printf(b, "%lld", (long long)l->expires);
            else
                evbuffer_add_printf(b, "null");
            evbuffer_add_printf(b, ",\"source\":");
            ctl_fmt_json_str(b, l->source != LINK_SRC_NONE ? links_source_name(l->source) : NULL);
            evbuffer_add_printf(b, ",\"session\":");
            ctl_fmt_json_str(b, l->session[0] ? l->session : NULL);
            evbuffer_add_printf(b, "}\n");
            continue;
        }
        char since[32] = "-", exp[32] = "-";
        struct tm tm;
        time_t t = (time_t)l->since;
        if (l->since && localtime_r(&t, &tm))
            strftime(since, sizeof since, "%Y-%m-%dT%H:%M:%S", &tm);
        t = (time_t)l->expires;
        if (l->up && l->expires && localtime_r(&t, &tm))
            strftime(exp, sizeof exp, "%Y-%m-%dT%H:%M:%S", &tm);
        evbuffer_add_printf(b, "%-20s %-5s %-39s %-20s %-20s %-8s %s\n", l->customer,
                            l->up ? "up" : "down", l->address[0] ? l->address : "-", since, exp,
                            l->source != LINK_SRC_NONE ? links_source_name(l->source) : "-",
                            l->session[0] ? l->session : "-");
    }
    ctl_reply_ok(s, b);
    evbuffer_free(b);
}

/* The link columns of a customer's summary line, from the link table. */
void ctl_link_of(const struct qcust *qc, struct ctl_link *l)
{
    const struct link *lk = links_get(qc->name);
    memset(l, 0, sizeof *l);
    l->state = lk && lk->up ? "up" : "down";
    if (!lk)
        return;
    l->address = lk->address[0] ? lk->address : NULL;
    l->since = lk->since;
    l->expires = lk->up ? lk->expires : 0;
    l->source = lk->source != LINK_SRC_NONE ? links_source_name(lk->source) : NULL;
}

/*
 * cmd_delivery — the control commands about links and delivery: kick (a
 * delivery pass for one customer now), link up/down (a link event from
 * kickq), links (the link table).  The session and the replies are ctl.c's
 * (ctl_int.h); all printing is format.c's.
 *
 * Trusts: requests that passed ctl_req_check (command, options and argument
 * count); not the words themselves: customers, addresses and durations are
 * checked here or by the qmgr, link_event and the links table before use.
 * Guarantees: every handler answers exactly once (link from its callback,
 * the session kept meanwhile by ctl.c); a kick of a customer on hold fails
 * (it would send nothing).
 */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "core/config.h"
#include "core/log.h"
#include "core/util.h"
#include "ctl/ctl.h"
#include "ctl/ctl_format.h"
#include "link/link_event.h"
#include "link/links.h"
#include "mta/deliver.h"
#include "queue/qmgr.h"
#include "cmd.h"
#include "ctl_int.h"

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
    ctl_fmt_kick(b, qc->name, &res, (rq->opts & CTL_OPT_JSON) != 0);
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
    ctl_fmt_link_done(b, res->up, res->customer, res->address);
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
        ctl_fmt_links_head(b);
    while ((l = links_next(&pos)))
        ctl_fmt_link(b, l, json);
    ctl_reply_ok(s, b);
    evbuffer_free(b);
}

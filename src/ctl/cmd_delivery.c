/*
 * cmd_delivery — the control commands about links and delivery: kick (a
 * delivery pass for one customer now), link up/down (a link event from
 * kickq, by customer name or, for the ppp hooks, by user name with the
 * interface as session), links (the link table).  The session and the replies are ctl.c's
 * (ctl_int.h); all printing is format.c's.
 *
 * Trusts: requests that passed ctl_req_check (command, options and argument
 * count); not the words themselves: customers, addresses and durations are
 * checked here or by the qmgr, link_event and the links table before use.
 * Guarantees: every handler answers exactly once (link from its callback,
 * the session kept meanwhile by ctl.c); a kick of a customer on hold fails
 * (it would send nothing).
 */
#include <stdio.h>
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

/* A link command waiting for its link event's callback. */
struct link_wait {
    struct ctl_sess *s;
    int up;
    char session[CTL_SESSION_MAX + 1];  /* "" when none */
};

static void link_done(const struct link_event_result *res, void *arg)
{
    struct link_wait *w = arg;
    if (res->error) {
        ctl_reply_fail(w->s, 1, "%s", res->error);
        free(w);
        return;
    }
    struct evbuffer *b = evbuffer_new();
    if (!w->up && res->up)          /* a down for another session: kept */
        ctl_fmt_link_kept(b, res->customer, res->address, w->session);
    else
        ctl_fmt_link_done(b, res->up, res->customer, res->address);
    ctl_reply_ok(w->s, b);
    evbuffer_free(b);
    free(w);
}

/* A session id from kickq: 1 to CTL_SESSION_MAX printable ASCII bytes. */
static int link_session_ok(const char *id)
{
    size_t n = 0;
    for (; id[n]; n++)
        if (id[n] < 0x20 || id[n] > 0x7e || n == CTL_SESSION_MAX)
            return 0;
    return n > 0;
}

/* link up CUSTOMER|--user NAME [ADDRESS] [--ttl D] [--session ID], link down
 * CUSTOMER|--user NAME [--session ID]: a link event (link_event.h holds the
 * policy).  --user is resolved as a RADIUS User-Name; a down with --session
 * holds only if the link is up with that session (own_session). */
void ctl_cmd_link(struct ctl_sess *s, const struct ctl_req *rq)
{
    char err[512] = "";
    const char *how = rq->argv[0];
    int up = !strcmp(how, "up");
    int named = !rq->user;              /* the customer is argv[1] */
    int rest = rq->argc - 1 - named;    /* what follows it: the address */
    if ((!up && strcmp(how, "down")) || rest < 0 || rest > up || (!up && rq->ttl)) {
        ctl_reply_fail(s, 2, "usage: %s", rq->cmd->usage);
        return;
    }
    if (rq->session && !link_session_ok(rq->session)) {
        ctl_reply_fail(s, 1, "bad session id: 1 to %d printable characters", CTL_SESSION_MAX);
        return;
    }
    struct link_event ev = {
        .kind = named ? LINK_WHO_CUSTOMER : LINK_WHO_RADIUS_USER,
        .who = named ? rq->argv[1] : rq->user, .up = up,
        .address = up && rest ? rq->argv[rq->argc - 1] : "",
        .ttl = LINK_EVENT_TTL_DEFAULT, .source = LINK_SRC_KICKQ,
        .session = rq->session ? rq->session : "",
        .own_session = !up && rq->session,
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
    log_info("control: uid=%ld link %s %s %s%s%s", s->uid, how, cu->name, ev.address,
             rq->session ? " session=" : "", rq->session ? rq->session : "");
    struct link_wait *w = xcalloc(1, sizeof *w);
    w->s = s;
    w->up = up;
    snprintf(w->session, sizeof w->session, "%s", ev.session);
    if (link_event(&ev, link_done, w, err, sizeof err) < 0) {
        free(w);
        ctl_reply_fail(s, 1, "%s", err[0] ? err : "failed");
    }
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

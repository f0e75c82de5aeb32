/*
 * cmd_status — the control commands about the daemon itself: status
 * (version, pid, uptime, messages), stats (counters, also in Prometheus'
 * text format) and reload (through the daemon's hook, ctl_hooks.reload).
 * The session and the replies are ctl.c's (ctl_int.h); all printing is
 * format.c's and stats.c's.
 *
 * Trusts: requests that passed ctl_req_check (these commands take no
 * argument).  Guarantees: every handler answers exactly once (reload from
 * the hook's completion, the session kept meanwhile by ctl.c).
 */
#include <stdint.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "core/log.h"
#include "core/stats.h"
#include "ctl/ctl.h"
#include "ctl/ctl_format.h"
#include "queue/qmgr.h"
#include "smtp/smtp_server.h"
#include "cmd.h"
#include "ctl_int.h"

#ifndef KM_VERSION
#define KM_VERSION "unknown"
#endif

void ctl_cmd_status(struct ctl_sess *s, const struct ctl_req *rq)
{
    struct evbuffer *b = evbuffer_new();
    ctl_fmt_status(b, KM_VERSION, (long)getpid(), ctl_uptime(),
                   (unsigned long)qmgr_msg_count(), (rq->opts & CTL_OPT_JSON) != 0);
    ctl_reply_ok(s, b);
    evbuffer_free(b);
}

/* The reload asked for by s has finished (on the loop; s may have lost its
 * client meanwhile: the replies then just free it). */
static void reload_done(int rc, const char *err, void *arg)
{
    struct ctl_sess *s = arg;
    if (rc < 0) {
        ctl_reply_fail(s, 1, "%s", err && err[0] ? err : "reload failed");
        return;
    }
    struct evbuffer *b = evbuffer_new();
    ctl_fmt_done(b, "reloaded", NULL);
    ctl_reply_ok(s, b);
    evbuffer_free(b);
}

void ctl_cmd_stats(struct ctl_sess *s, const struct ctl_req *rq)
{
    struct evbuffer *b = evbuffer_new();
    stats_format(b, (rq->opts & CTL_OPT_PROM) != 0, smtp_server_sessions(),
                 (unsigned long)qmgr_msg_count());
    ctl_reply_ok(s, b);
    evbuffer_free(b);
}

void ctl_cmd_reload(struct ctl_sess *s, const struct ctl_req *rq)
{
    const struct ctl_hooks *hooks = ctl_hooks_get();
    if (!hooks->reload) {
        ctl_reply_fail(s, 1, "reload is not available");
        return;
    }
    log_info("control: uid=%ld reload", s->uid);
    hooks->reload(reload_done, s);          /* s stays in CS_WAIT until done */
}


/*
 * cmd_maildrop — `kickq maildrops [ADDRESS]`: per maildrop (every one the
 * registry knows, address maildrops then domain maildrops, or the one
 * ADDRESS names) its mode, quota and the figures of the usage table:
 * messages, bytes, oldest message, last POP3 login since start.  Reads
 * memory only (registry_maildrop_*, maildir_usage_get: O(1) each, never the
 * disk), so it answers on the loop.  The session and the replies are
 * ctl.c's (ctl_int.h); the printing is format_maildrop.c's.
 *
 * Trusts: requests that passed ctl_req_check (0 or 1 argument); ADDRESS is
 * looked up, never used as a path.  Guarantees: answers exactly once; an
 * ADDRESS that names no maildrop fails (exit 1) saying so.
 */
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <event2/buffer.h>

#include "core/registry.h"
#include "core/util.h"
#include "ctl/ctl.h"
#include "ctl/ctl_format.h"
#include "maildir/maildir.h"
#include "queue/qmgr.h"
#include "cmd.h"
#include "ctl_int.h"

static void md_row(struct ctl_maildrop_row *row, const struct maildrop_ref *ref)
{
    struct maildir_usage u;
    maildir_usage_get(ref->name, &u);
    row->name = ref->name;
    row->customer = ref->cust ? ref->cust->name : NULL;
    row->keep = ref->mode == MAILDROP_KEEP;
    row->keep_days = ref->keep_days;
    row->quota = ref->quota;
    row->messages = u.messages;
    row->bytes = u.bytes;
    row->oldest = u.messages ? (int64_t)u.oldest : 0;
    row->last_login = (int64_t)u.last_login;
}

void ctl_cmd_maildrops(struct ctl_sess *s, const struct ctl_req *rq)
{
    const struct registry *reg = qmgr_registry();
    struct maildrop_ref ref;
    struct ctl_maildrop_row *rows;
    size_t n = 0;

    if (rq->argc == 1) {
        if (!reg || registry_maildrop(reg, rq->argv[0], &ref) < 0) {
            ctl_reply_fail(s, 1, "%s: no such maildrop", rq->argv[0]);
            return;
        }
        rows = xcalloc(1, sizeof *rows);
        md_row(&rows[n++], &ref);
    } else {
        size_t count = reg ? registry_maildrop_count(reg) : 0;
        rows = xcalloc(count ? count : 1, sizeof *rows);
        for (; n < count; n++) {
            registry_maildrop_at(reg, n, &ref);
            md_row(&rows[n], &ref);
        }
    }
    struct evbuffer *b = evbuffer_new();
    ctl_fmt_maildrops(b, rows, n, (int64_t)time(NULL), (rq->opts & CTL_OPT_JSON) != 0);
    ctl_reply_ok(s, b);
    evbuffer_free(b);
    free(rows);
}

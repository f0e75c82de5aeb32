/*
 * ctl_table — the one handler table of the control commands, indexed by
 * enum ctl_cmd_id like the command table of ctl_cmd.c (names, options,
 * argument counts, usage), which kickq shares and which therefore holds no
 * daemon code.  The two cannot drift apart: both have exactly CTL_CMD_COUNT
 * entries (checked when compiling), and at start-up, before main(), every
 * command is checked to have a spec and a handler (a hole left by a
 * designated initializer aborts the program there, not at the first
 * request).  The session (ctl.c) reaches the handlers only through
 * ctl_table_handler(); the handlers (cmd_*.c) never include this table.
 *
 * Trusts: ids from ctl_req_check (an id out of range is a broken invariant:
 * abort).  Guarantees: ctl_table_handler() never returns NULL.
 */
#include <stdio.h>
#include <stdlib.h>

#include "core/log.h"
#include "ctl/ctl.h"
#include "cmd.h"
#include "ctl_table.h"

static ctl_handler *const ctl_handlers[] = {
    [CTL_CMD_STATUS]  = ctl_cmd_status,
    [CTL_CMD_RELOAD]  = ctl_cmd_reload,
    [CTL_CMD_LIST]    = ctl_cmd_list,
    [CTL_CMD_SUMMARY] = ctl_cmd_summary,
    [CTL_CMD_SHAPE]   = ctl_cmd_shape,
    [CTL_CMD_SHOW]    = ctl_cmd_show,
    [CTL_CMD_HOLD]    = ctl_cmd_hold,
    [CTL_CMD_RELEASE] = ctl_cmd_release,
    [CTL_CMD_DELETE]  = ctl_cmd_delete,
    [CTL_CMD_BOUNCE]  = ctl_cmd_bounce,
    [CTL_CMD_KICK]    = ctl_cmd_kick,
    [CTL_CMD_LINK]    = ctl_cmd_link,
    [CTL_CMD_LINKS]   = ctl_cmd_links,
    [CTL_CMD_STATS]   = ctl_cmd_stats,
    [CTL_CMD_MAILDROPS] = ctl_cmd_maildrops,
};
_Static_assert(sizeof ctl_handlers / sizeof ctl_handlers[0] == CTL_CMD_COUNT,
               "one handler per enum ctl_cmd_id");

ctl_handler *ctl_table_handler(enum ctl_cmd_id id)
{
    if ((unsigned)id >= CTL_CMD_COUNT || !ctl_handlers[id])
        log_fatal("control: no handler for command %u", (unsigned)id);
    return ctl_handlers[id];
}

/* Every command has its spec and its handler.  Runs before main(), before
 * the log is set up: hence stderr. */
__attribute__((constructor)) static void ctl_table_verify(void)
{
    for (unsigned i = 0; i < CTL_CMD_COUNT; i++) {
        const struct ctl_cmd_spec *c = ctl_cmd_at(i);
        if (!c || !c->name || !ctl_handlers[i]) {
            fprintf(stderr, "control: command %u (%s) has no %s\n", i,
                    c && c->name ? c->name : "?", c && c->name ? "handler" : "spec");
            abort();
        }
    }
}

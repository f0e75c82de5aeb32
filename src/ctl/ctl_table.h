/*
 * ctl_table — the daemon's handler table: which function runs each command
 * of the shared command table (ctl_cmd.c).  Used by the session (ctl.c).
 */
#ifndef KM_CTL_TABLE_H
#define KM_CTL_TABLE_H

#include "ctl/ctl.h"
#include "ctl_int.h"

/* The handler of command id (a checked request's rq->id); never NULL: the
 * table is checked at start-up.  Aborts on an id out of range. */
ctl_handler *ctl_table_handler(enum ctl_cmd_id id);

#endif

/*
 * The control command handlers, by topic (ctl_handler, ctl_int.h: each
 * answers exactly once).  Only the handler table (ctl_table.c) and the
 * handlers' own files include this header.
 */
#ifndef KM_CTL_CMD_H
#define KM_CTL_CMD_H

#include "ctl_int.h"

/* cmd_queue.c: the queue and its messages */
void ctl_cmd_list(struct ctl_sess *s, const struct ctl_req *rq);
void ctl_cmd_summary(struct ctl_sess *s, const struct ctl_req *rq);
void ctl_cmd_shape(struct ctl_sess *s, const struct ctl_req *rq);
void ctl_cmd_show(struct ctl_sess *s, const struct ctl_req *rq);
void ctl_cmd_hold(struct ctl_sess *s, const struct ctl_req *rq);
void ctl_cmd_release(struct ctl_sess *s, const struct ctl_req *rq);
void ctl_cmd_delete(struct ctl_sess *s, const struct ctl_req *rq);
void ctl_cmd_bounce(struct ctl_sess *s, const struct ctl_req *rq);

/* cmd_delivery.c: links and delivery */
void ctl_cmd_kick(struct ctl_sess *s, const struct ctl_req *rq);
void ctl_cmd_link(struct ctl_sess *s, const struct ctl_req *rq);
void ctl_cmd_links(struct ctl_sess *s, const struct ctl_req *rq);

/* cmd_status.c: the daemon itself */
void ctl_cmd_status(struct ctl_sess *s, const struct ctl_req *rq);
void ctl_cmd_stats(struct ctl_sess *s, const struct ctl_req *rq);
void ctl_cmd_reload(struct ctl_sess *s, const struct ctl_req *rq);

/* cmd_maildrop.c: the maildrops (POP3) */
void ctl_cmd_maildrops(struct ctl_sess *s, const struct ctl_req *rq);

#endif

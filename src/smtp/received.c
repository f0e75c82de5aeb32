/*
 * received — the Received: header a session puts on top of each message it
 * takes (RFC 5321 4.4): the client's HELO name and address, our name, the
 * protocol (ESMTP, with S for TLS and A for AUTH), the queue ID, the TLS
 * parameters, the recipient when there is one, the date.  Trusts the
 * session's fields (the HELO name was syntax-checked by the parser).
 * Moved out of session.c as is.
 */
#include <stdio.h>
#include <time.h>

#include <event2/buffer.h>

#include "core/config.h"
#include "core/io.h"
#include "queue/qmgr.h"
#include "smtp_int.h"

static void put_date(char *buf, size_t len)
{
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(buf, len, "%a, %d %b %Y %H:%M:%S %z", &tm);
}

void smtp_add_received(struct smtp_sess *s)
{
    char date[64], idstr[QUEUE_ID_LEN + 1], tls[128];
    qmgr_id_str(s->id, idstr);
    put_date(date, sizeof date);
    io_tls_info(s->io, tls, sizeof tls);
    evbuffer_add_printf(s->body, "Received: from %s ([%s])\r\n\tby %s (kickmail) with %s id %s",
                        s->helo ? s->helo : "unknown", s->peer, smtp_env.cfg->hostname,
                        io_is_tls(s->io) ? (s->authenticated ? "ESMTPSA" : "ESMTPS")
                                         : s->authenticated ? "ESMTPA"
                                         : s->esmtp ? "ESMTP" : "SMTP",
                        idstr);
    if (tls[0])
        evbuffer_add_printf(s->body, "\r\n\t(%s)", tls);
    if (s->nrcpt == 1)
        evbuffer_add_printf(s->body, "\r\n\tfor <%s>", s->rcpts[0].addr);
    evbuffer_add_printf(s->body, "; %s\r\n", date);
}

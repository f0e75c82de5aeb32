/*
 * sesslog — what a session writes about its peer into the log: peer text
 * made safe (printable ASCII kept, every other byte as \xHH, so nothing a
 * client sends can forge or break a log line), envelope addresses in their
 * wire form, and the Postfix-style "NOQUEUE: reject: RCPT" line with the
 * reply it got.  Trusts nothing in the text it prints; the session's
 * fields are its own.  Moved out of session.c as is.
 */
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "core/addr.h"
#include "core/log.h"
#include "smtp_int.h"

/* Peer text for the log: printable ASCII as it is, any other byte (CR, LF,
 * control, 8-bit) as \xHH, so that nothing from the peer can forge or break
 * a line.  Cut to fit dst (which always gets a NUL); returns dst. */
const char *smtp_log_safe(char *dst, size_t size, const char *src, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 5 <= size; i++) {
        unsigned char c = (unsigned char)src[i];
        if (c >= 0x20 && c < 0x7f)
            dst[o++] = (char)c;
        else
            o += (size_t)snprintf(dst + o, size - o, "\\x%02x", c);
    }
    dst[o] = '\0';
    return dst;
}

/* The one place an envelope address is printed for the log (from=, to=):
 * a parsed mailbox (domain set) in its RFC 5321 wire form (addr_format: a
 * quoted local part stays quoted), or an address already in that form
 * (domain NULL or ""), through smtp_log_safe. */
const char *smtp_log_addr(char *dst, size_t size, const char *local, const char *domain)
{
    char raw[ADDR_WIRE_MAX + 1];
    if (!domain || !*domain || addr_format(local, domain, raw, sizeof raw) < 0)
        snprintf(raw, sizeof raw, "%s%s%s", local, domain && *domain ? "@" : "",
                 domain ? domain : "");
    return smtp_log_safe(dst, size, raw, strlen(raw));
}

/* Logs a refused RCPT, Postfix-style, with the reply it got: the first
 * line queued in s->out from offset mark on.  mb NULL: the address did
 * not parse (no to=). */
void smtp_log_rcpt_reject(struct smtp_sess *s, const struct smtp_mailbox *mb, size_t mark)
{
    char raw[768], text[1024], from[1024], to[1024] = "", helo[1024] = "";
    struct evbuffer_ptr pos;
    ev_ssize_t n = 0;
    if (evbuffer_ptr_set(s->out, &pos, mark, EVBUFFER_PTR_SET) == 0)
        n = evbuffer_copyout_from(s->out, &pos, raw, sizeof raw - 1);
    raw[n > 0 ? n : 0] = '\0';
    raw[strcspn(raw, "\r\n")] = '\0';
    if (mb)
        snprintf(to, sizeof to, " to=<%s>", smtp_log_addr(text, sizeof text, mb->local,
                                                     mb->postmaster ? NULL : mb->domain));
    if (s->helo)
        snprintf(helo, sizeof helo, " helo=<%s>",
                 smtp_log_safe(text, sizeof text, s->helo, strlen(s->helo)));
    log_info("NOQUEUE: reject: RCPT from unknown[%s]: %s; from=<%s>%s proto=%s%s",
             s->peer, smtp_log_safe(text, sizeof text, raw, strlen(raw)),
             smtp_log_addr(from, sizeof from, s->sender ? s->sender : "", NULL), to,
             s->esmtp ? "ESMTP" : "SMTP", helo);
}

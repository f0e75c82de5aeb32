/*
 * dsn — composes delivery status notifications (dsn.h): an RFC 3464 report
 * in an RFC 6522 multipart/report of three parts: a human explanation
 * (text/plain), the machine report (message/delivery-status: per-message
 * fields, then one block per recipient), and the original message, its
 * headers only (text/rfc822-headers) or in full (message/rfc822).
 *
 * Trusts: nothing that came from a peer.  The remote's reply and the remote
 * host name are written with every run of control characters (CR, LF, NUL,
 * TAB...) turned into one space and cut at a bound, so they can neither
 * start a new header line nor break the line length limit; addresses too
 * unless they are printable ASCII, which they are in their RFC 5321 wire
 * form (addr.h): then they are written exactly, spaces inside a quoted
 * local part included.  A malformed status code is replaced by the generic
 * one of the action.
 * Guarantees: every line of the result ends in CRLF (bare CR or LF in the
 * original become CRLF; the original is otherwise copied as it is, and never
 * changed); the boundary occurs nowhere in the parts it separates (a
 * candidate that does is replaced by one with a random suffix).
 */
#include <inttypes.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <event2/buffer.h>

#include "core/log.h"
#include "core/util.h"
#include "queue/dsn.h"

#define DSN_MAX_ADDR    512     /* an address or host name in a DSN */
#define DSN_MAX_DIAG    900     /* the remote's reply (a line stays under 998) */
#define DSN_QID_MAX     20

/* ---- text helpers ---- */

static struct evbuffer *buf_new(void)
{
    struct evbuffer *b = evbuffer_new();
    if (!b)
        log_fatal("dsn: out of memory");
    return b;
}

/* Appends s with every run of control characters and DEL as one space, no
 * space at either end, at most max bytes ("..." added when cut). */
static void put_clean(struct evbuffer *out, const char *s, size_t max)
{
    size_t n = 0;
    int space = 0;
    if (!s)
        return;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7f || c == ' ') {
            space = n > 0;
            continue;
        }
        if (n + space + 1 > max) {
            evbuffer_add(out, "...", 3);
            return;
        }
        if (space) {
            evbuffer_add(out, " ", 1);
            n++;
            space = 0;
        }
        evbuffer_add(out, s, 1);
        n++;
    }
}

/* Appends an address exactly when it is printable ASCII (a quoted local
 * part may hold runs of spaces: they are part of it), cut at max bytes
 * ("..." added); anything else as put_clean() writes it. */
static void put_addr(struct evbuffer *out, const char *s, size_t max)
{
    size_t n = 0;
    if (!s)
        return;
    for (; s[n]; n++)
        if ((unsigned char)s[n] < 0x20 || (unsigned char)s[n] > 0x7e) {
            put_clean(out, s, max);
            return;
        }
    evbuffer_add(out, s, n > max ? max : n);
    if (n > max)
        evbuffer_add(out, "...", 3);
}

/* RFC 5322 date, in UTC (names spelled out: no locale). */
static void put_date(struct evbuffer *out, int64_t t)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char mons[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm)) {
        tt = 0;
        gmtime_r(&tt, &tm);
    }
    evbuffer_add_printf(out, "%s, %02d %s %04d %02d:%02d:%02d +0000",
                        days[tm.tm_wday % 7], tm.tm_mday, mons[tm.tm_mon % 12],
                        tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* "class.subject.detail": class 2, 4 or 5, then 1-3 and 1-3 digits. */
static int status_ok(const char *s)
{
    size_t n;
    if (!s || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
        return 0;
    s += 2;
    for (int part = 0; part < 2; part++) {
        for (n = 0; s[n] >= '0' && s[n] <= '9'; n++)
            ;
        if (n < 1 || n > 3 || s[n] != (part == 0 ? '.' : 0))
            return 0;
        s += n + (part == 0);
    }
    return 1;
}

static const char *rcpt_status(const struct dsn_info *info, const struct dsn_rcpt *r)
{
    if (status_ok(r->status))
        return r->status;
    return info->action == DSN_DELAYED ? "4.0.0" : "5.0.0";
}

/* The queue ID as it may appear in a boundary or Message-ID: alphanumerics. */
static void put_qid(struct evbuffer *out, const char *qid)
{
    size_t n = 0;
    for (; qid && *qid && n < DSN_QID_MAX; qid++) {
        char c = *qid;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
            evbuffer_add(out, &c, 1);
            n++;
        }
    }
    if (n == 0)
        evbuffer_add(out, "0", 1);
}

/* ---- the parts ---- */

static void part_text(struct evbuffer *p, const struct dsn_info *info)
{
    evbuffer_add(p, "This is the mail system at host ", 32);
    put_clean(p, info->reporting_mta, DSN_MAX_ADDR);
    evbuffer_add_printf(p, ".\r\n\r\n");
    if (info->action == DSN_DELAYED)
        evbuffer_add_printf(p, "Your message could not be delivered yet to the "
                            "recipients below.\r\nIt is still being retried: "
                            "there is no need to send it again.\r\n");
    else
        evbuffer_add_printf(p, "Your message could not be delivered to the "
                            "recipients below.\r\nIt has been given up.\r\n");
    evbuffer_add_printf(p, "Its %s attached.\r\n\r\n",
                        info->full ? "full text is" : "headers are");
    for (size_t i = 0; i < info->nrcpt; i++) {
        const struct dsn_rcpt *r = &info->rcpts[i];
        evbuffer_add(p, "<", 1);
        put_addr(p, r->addr, DSN_MAX_ADDR);
        evbuffer_add(p, ">: ", 3);
        if (r->remote_mta && *r->remote_mta) {
            evbuffer_add(p, "host ", 5);
            put_clean(p, r->remote_mta, DSN_MAX_ADDR);
            evbuffer_add(p, " said: ", 7);
        }
        if (r->diag && *r->diag)
            put_clean(p, r->diag, DSN_MAX_DIAG);
        else
            evbuffer_add_printf(p, "status %s", rcpt_status(info, r));
        evbuffer_add(p, "\r\n", 2);
    }
}

static void part_status(struct evbuffer *p, const struct dsn_info *info)
{
    evbuffer_add(p, "Reporting-MTA: dns; ", 20);
    put_clean(p, info->reporting_mta, DSN_MAX_ADDR);
    evbuffer_add(p, "\r\nX-Kickmail-Queue-ID: ", 23);
    put_qid(p, info->queue_id);
    evbuffer_add(p, "\r\nArrival-Date: ", 16);
    put_date(p, info->arrival);
    evbuffer_add(p, "\r\n", 2);
    for (size_t i = 0; i < info->nrcpt; i++) {
        const struct dsn_rcpt *r = &info->rcpts[i];
        evbuffer_add(p, "\r\nFinal-Recipient: rfc822; ", 27);
        put_addr(p, r->addr, DSN_MAX_ADDR);
        evbuffer_add_printf(p, "\r\nAction: %s\r\nStatus: %s\r\n",
                            info->action == DSN_DELAYED ? "delayed" : "failed",
                            rcpt_status(info, r));
        if (r->remote_mta && *r->remote_mta) {
            evbuffer_add(p, "Remote-MTA: dns; ", 17);
            put_clean(p, r->remote_mta, DSN_MAX_ADDR);
            evbuffer_add(p, "\r\n", 2);
        }
        if (r->diag && *r->diag) {
            /* an SMTP reply ("550 5.1.1 ...") is typed smtp; our own text is not */
            int smtp = isdigit((unsigned char)r->diag[0]) && isdigit((unsigned char)r->diag[1]) &&
                       isdigit((unsigned char)r->diag[2]) && (r->diag[3] == ' ' || r->diag[3] == '-');
            if (smtp)
                evbuffer_add(p, "Diagnostic-Code: smtp; ", 23);
            else
                evbuffer_add(p, "Diagnostic-Code: X-kickmail; ", 29);
            put_clean(p, r->diag, DSN_MAX_DIAG);
            evbuffer_add(p, "\r\n", 2);
        }
    }
}

/* Copies the original with CRLF line ends; headers_only: up to the first
 * empty line (excluded).  The result ends in CRLF unless empty. */
static void part_original(struct evbuffer *p, struct evbuffer *orig, int headers_only)
{
    struct evbuffer_ptr pos;
    struct evbuffer_iovec v;
    char out[4096];
    size_t n = 0;
    int cr = 0, bol = 1;

    evbuffer_ptr_set(orig, &pos, 0, EVBUFFER_PTR_SET);
    while (evbuffer_peek(orig, -1, &pos, &v, 1) > 0 && v.iov_len > 0) {
        const unsigned char *s = v.iov_base;
        for (size_t i = 0; i < v.iov_len; i++) {
            unsigned char c = s[i];
            if (c == '\n' && cr) {          /* the LF of a CRLF already written */
                cr = 0;
                continue;
            }
            cr = c == '\r';
            if (n + 2 > sizeof out) {
                evbuffer_add(p, out, n);
                n = 0;
            }
            if (c == '\r' || c == '\n') {
                if (headers_only && bol)
                    goto end;
                out[n++] = '\r';
                out[n++] = '\n';
                bol = 1;
                continue;
            }
            out[n++] = (char)c;
            bol = 0;
        }
        if (evbuffer_ptr_set(orig, &pos, v.iov_len, EVBUFFER_PTR_ADD) < 0)
            break;
    }
end:
    evbuffer_add(p, out, n);
    if (!bol)
        evbuffer_add(p, "\r\n", 2);
}

/* ---- the boundary ---- */

static int buf_has8bit(struct evbuffer *b)
{
    struct evbuffer_ptr pos;
    struct evbuffer_iovec v;
    if (!b)
        return 0;
    evbuffer_ptr_set(b, &pos, 0, EVBUFFER_PTR_SET);
    while (evbuffer_peek(b, -1, &pos, &v, 1) > 0 && v.iov_len > 0) {
        for (size_t i = 0; i < v.iov_len; i++)
            if (((const unsigned char *)v.iov_base)[i] >= 0x80)
                return 1;
        if (evbuffer_ptr_set(b, &pos, v.iov_len, EVBUFFER_PTR_ADD) < 0)
            break;
    }
    return 0;
}

static int buf_contains(struct evbuffer *b, const char *s)
{
    return b && evbuffer_search(b, s, strlen(s), NULL).pos >= 0;
}

static uint64_t boundary_random(uint64_t seed)
{
    uint64_t r;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) == (ssize_t)sizeof r)
        return r;
    r = seed + 0x9e3779b97f4a7c15ull;       /* splitmix64, when getrandom fails */
    r = (r ^ (r >> 30)) * 0xbf58476d1ce4e5b9ull;
    r = (r ^ (r >> 27)) * 0x94d049bb133111ebull;
    return r ^ (r >> 31);
}

/* "=_kickmail_QUEUEID_NOW", then with a random suffix until it occurs in no
 * part ("=_" never occurs in quoted-printable text).  At most 69 bytes. */
static char *boundary_pick(const struct dsn_info *info, struct evbuffer **parts,
                           size_t nparts)
{
    struct evbuffer *b = buf_new();
    char *s;
    for (uint64_t attempt = 0;; attempt++) {
        int clash = 0;
        evbuffer_drain(b, evbuffer_get_length(b));
        evbuffer_add_printf(b, "=_kickmail_");
        put_qid(b, info->queue_id);
        evbuffer_add_printf(b, "_%" PRId64, info->now);
        if (attempt > 0)
            evbuffer_add_printf(b, "_%016" PRIx64,
                                boundary_random((uint64_t)util_now_us() + attempt));
        evbuffer_add(b, "", 1);
        s = (char *)evbuffer_pullup(b, -1);
        for (size_t i = 0; i < nparts && !clash; i++)
            clash = buf_contains(parts[i], s);
        if (!clash)
            break;
    }
    s = xstrdup(s);
    evbuffer_free(b);
    return s;
}

/* ---- the message ---- */

static void put_headers(struct evbuffer *out, const struct dsn_info *info,
                        const char *boundary, int has8bit)
{
    evbuffer_add_printf(out, "From: Mail Delivery System <");
    put_clean(out, info->from, DSN_MAX_ADDR);
    evbuffer_add_printf(out, ">\r\nTo: <");
    put_addr(out, info->to, DSN_MAX_ADDR);
    evbuffer_add_printf(out, ">\r\nSubject: %s\r\nDate: ",
                        info->action == DSN_DELAYED ? "Delayed Mail (still being retried)"
                                                    : "Undelivered Mail Returned to Sender");
    put_date(out, info->now);
    evbuffer_add_printf(out, "\r\nMessage-ID: <");
    put_qid(out, info->queue_id);
    evbuffer_add_printf(out, ".%" PRId64 "@", info->now);
    put_clean(out, info->reporting_mta, DSN_MAX_ADDR);
    evbuffer_add_printf(out, ">\r\nAuto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
                        "Content-Type: multipart/report; report-type=delivery-status;\r\n"
                        "\tboundary=\"%s\"\r\n", boundary);
    if (has8bit)
        evbuffer_add_printf(out, "Content-Transfer-Encoding: 8bit\r\n");
    evbuffer_add_printf(out, "\r\nThis is a MIME-encapsulated message.\r\n\r\n");
}

int dsn_compose(struct evbuffer *out, const struct dsn_info *info,
                struct evbuffer *original)
{
    struct evbuffer *parts[3] = {buf_new(), buf_new(), NULL};
    size_t nparts = original ? 3 : 2;
    int orig8, has8bit;
    char *boundary;

    part_text(parts[0], info);
    part_status(parts[1], info);
    if (original) {
        parts[2] = buf_new();
        part_original(parts[2], original, !info->full);
    }
    orig8 = buf_has8bit(parts[2]);
    has8bit = orig8 || buf_has8bit(parts[0]) || buf_has8bit(parts[1]);
    boundary = boundary_pick(info, parts, nparts);
    put_headers(out, info, boundary, has8bit);

    evbuffer_add_printf(out, "--%s\r\nContent-Description: Notification\r\n"
                        "Content-Type: text/plain; charset=utf-8\r\n\r\n", boundary);
    evbuffer_add_buffer(out, parts[0]);
    evbuffer_add_printf(out, "\r\n--%s\r\nContent-Description: Delivery report\r\n"
                        "Content-Type: message/delivery-status\r\n\r\n", boundary);
    evbuffer_add_buffer(out, parts[1]);
    if (original) {
        evbuffer_add_printf(out, "\r\n--%s\r\nContent-Description: %s\r\n"
                            "Content-Type: %s\r\n%s\r\n", boundary,
                            info->full ? "Undelivered Message" : "Undelivered Message Headers",
                            info->full ? "message/rfc822" : "text/rfc822-headers",
                            orig8 ? "Content-Transfer-Encoding: 8bit\r\n" : "");
        evbuffer_add_buffer(out, parts[2]);
    }
    evbuffer_add_printf(out, "\r\n--%s--\r\n", boundary);
    for (size_t i = 0; i < 3; i++)
        if (parts[i])
            evbuffer_free(parts[i]);
    free(boundary);
    return 0;
}

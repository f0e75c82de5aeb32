/*
 * reply — the SMTP client's reply parser (RFC 5321 4.2, EHLO keywords of
 * RFC 1870, 2920, 3207, 2034, 6152; contract in smtp_reply.h).  Pure: one complete line in (CR LF
 * already removed by the caller), structs out; no I/O, no allocation.
 *
 * Trusts nothing in the line: it is what a customer's server (or whoever
 * answers at its address) sent.  Every line is bounded (SMTP_REPLY_LINE_MAX)
 * and so is the number of lines per reply (SMTP_REPLY_LINES_MAX); the code
 * must be three digits in 200..599 followed by ' ', '-' or the end of the
 * line, and every line of a multi-line reply must carry the same code.
 * Guarantees: nothing is read outside [line, line + len) (cf. OpenSMTPD
 * CVE-2020-8794); r.text and r.first_word are always NUL-terminated,
 * truncated to fit, and hold printable ASCII only (other bytes, NUL
 * included, become '?'), so they are safe for logs and DSNs.  After a BAD
 * line the parser stays BAD until smtp_reply_init().
 */
#include <string.h>
#include <strings.h>

#include "mta/smtp_reply.h"

enum { RP_START = 0, RP_MORE, RP_BAD };

void smtp_reply_init(struct smtp_reply_parser *p)
{
    memset(p, 0, sizeof *p);
}

static char printable(unsigned char c)
{
    return c >= 0x20 && c < 0x7f ? (char)c : '?';
}

/* Appends n bytes (made printable) to dst, which holds a NUL-terminated
 * string in a buffer of cap bytes; what does not fit is dropped. */
static void append(char *dst, size_t cap, const char *src, size_t n)
{
    size_t used = strnlen(dst, cap - 1);
    size_t room = cap - 1 - used;
    if (n > room)
        n = room;
    for (size_t i = 0; i < n; i++)
        dst[used + i] = printable((unsigned char)src[i]);
    dst[used + n] = '\0';
}

/* First word of the text after the code: up to 255 bytes; a longer word
 * (never a valid host name) is cut and marked with "...". */
static void set_first_word(struct smtp_reply *r, const char *s, size_t n)
{
    size_t i = 0, w;
    while (i < n && s[i] == ' ')
        i++;
    for (w = i; w < n && s[w] != ' '; w++)
        ;
    size_t len = w - i, cap = sizeof r->first_word;
    r->first_word[0] = '\0';
    if (len < cap) {
        append(r->first_word, cap, s + i, len);
        return;
    }
    append(r->first_word, cap, s + i, cap - 4);
    append(r->first_word, cap, "...", 3);
}

static int keyword_is(const char *s, size_t n, const char *kw)
{
    size_t k = strlen(kw);
    return n == k && strncasecmp(s, kw, k) == 0;
}

/* "SIZE" [SP number]: 0 (no limit) when absent, malformed or too large. */
static uint64_t parse_size(const char *s, size_t n)
{
    uint64_t v = 0;
    size_t i = 0;
    while (i < n && s[i] == ' ')
        i++;
    if (i == n)
        return 0;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return 0;
        v = v * 10 + d;
    }
    return i == n || s[i] == ' ' ? v : 0;
}

/* One EHLO keyword line (the text after "250-"/"250 "). */
static void parse_ehlo_keyword(struct smtp_reply_parser *p, const char *s, size_t n)
{
    size_t k = 0;
    while (k < n && s[k] != ' ')
        k++;
    if (keyword_is(s, k, "PIPELINING"))
        p->ext_pipelining = 1;
    else if (keyword_is(s, k, "8BITMIME"))
        p->ext_8bitmime = 1;
    else if (keyword_is(s, k, "STARTTLS"))
        p->ext_starttls = 1;
    else if (keyword_is(s, k, "ENHANCEDSTATUSCODES"))
        p->ext_enhanced = 1;
    else if (keyword_is(s, k, "SIZE")) {
        p->ext_size = 1;
        p->size_limit = parse_size(s + k, n - k);
    }
}

/* Code of a line: 200..599, or -1. */
static int line_code(const char *line, size_t len)
{
    if (len < 3)
        return -1;
    for (int i = 0; i < 3; i++)
        if (line[i] < '0' || line[i] > '9')
            return -1;
    int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    return code >= 200 && code <= 599 ? code : -1;
}

static enum smtp_reply_status bad(struct smtp_reply_parser *p)
{
    p->st = RP_BAD;
    return SMTP_REPLY_BAD;
}

enum smtp_reply_status smtp_reply_feed(struct smtp_reply_parser *p, const char *line,
                                       size_t len, int ehlo)
{
    struct smtp_reply *r = &p->r;
    if (p->st == RP_BAD || !line || len > SMTP_REPLY_LINE_MAX)
        return bad(p);
    int code = line_code(line, len);
    if (code < 0 || (len > 3 && line[3] != ' ' && line[3] != '-'))
        return bad(p);
    int last = len == 3 || line[3] == ' ';
    const char *text = len > 3 ? line + 4 : line + len;
    size_t tlen = len > 3 ? len - 4 : 0;

    if (p->st == RP_START) {
        memset(r, 0, sizeof *r);
        if (ehlo) {
            p->ext_pipelining = p->ext_size = p->ext_8bitmime = 0;
            p->ext_starttls = p->ext_enhanced = 0;
            p->size_limit = 0;
        }
        r->code = code;
        append(r->text, sizeof r->text, line, 3);
        if (tlen) {
            append(r->text, sizeof r->text, " ", 1);
            append(r->text, sizeof r->text, text, tlen);
        }
        set_first_word(r, text, tlen);
    } else {
        if (code != r->code || r->nlines >= SMTP_REPLY_LINES_MAX)
            return bad(p);
        if (tlen) {
            append(r->text, sizeof r->text, "; ", 2);
            append(r->text, sizeof r->text, text, tlen);
        }
        if (ehlo && code == 250)
            parse_ehlo_keyword(p, text, tlen);
    }
    r->nlines++;
    p->st = last ? RP_START : RP_MORE;
    return last ? SMTP_REPLY_DONE : SMTP_REPLY_MORE;
}

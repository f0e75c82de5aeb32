/*
 * local_prefix — the header lines local delivery adds (Return-Path,
 * Delivered-To, X-Original-To) and the mail-loop check on Delivered-To
 * (Postfix local(8) does the same).  Pure functions over bytes.
 *
 * Trusts nothing: addresses are checked again for control bytes before
 * they go into a header line, and the header section is read only within
 * the length given (values of any length, folded or not).  Guarantees: a
 * built prefix is whole header lines of printable text ending in CR LF; the
 * loop check reads only the header section it is given.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "local_prefix.h"

#define LOCAL_ADDR_MAX 512

/* An address that may go into a header line: no control bytes. */
static int addr_ok(const char *a)
{
    size_t n = strlen(a);
    if (n > LOCAL_ADDR_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)a[i] < 0x20 || a[i] == 0x7f)
            return 0;
    return 1;
}

int local_prefix_build(const char *sender, const char *rcpt, int original_to,
                       char *out, size_t outlen)
{
    if (!sender || !rcpt || !*rcpt || !addr_ok(sender) || !addr_ok(rcpt))
        return -1;
    int n = snprintf(out, outlen, "Return-Path: <%s>\r\nDelivered-To: %s\r\n%s%s%s",
                     sender, rcpt, original_to ? "X-Original-To: " : "",
                     original_to ? rcpt : "", original_to ? "\r\n" : "");
    if (n < 0 || (size_t)n >= outlen)
        return -1;
    return n;
}

size_t local_header_len(const char *msg, size_t len)
{
    size_t i = 0;
    while (i < len) {
        /* msg + i starts a line: an empty one ends the header section */
        if (msg[i] == '\n' || (msg[i] == '\r' && i + 1 < len && msg[i + 1] == '\n'))
            return i;
        const char *nl = memchr(msg + i, '\n', len - i);
        if (!nl)
            break;
        i = (size_t)(nl - msg) + 1;
    }
    return len;
}

/* The end of the field that starts at hdr + i: past its continuation lines
 * (those starting with a space or tab). */
static size_t field_end(const char *hdr, size_t len, size_t i)
{
    for (;;) {
        const char *nl = memchr(hdr + i, '\n', len - i);
        if (!nl)
            return len;
        i = (size_t)(nl - hdr) + 1;
        if (i >= len || (hdr[i] != ' ' && hdr[i] != '\t'))
            return i;
    }
}

/* Does the value v[0..n) (maybe folded, padded, in <>) name rcpt? */
static int value_is(const char *v, size_t n, const char *rcpt)
{
    char buf[LOCAL_ADDR_MAX + 3];
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {            /* unfold: CR and LF go */
        if (v[i] == '\r' || v[i] == '\n')
            continue;
        if (k + 1 >= sizeof buf)
            return 0;                           /* longer than any address */
        buf[k++] = v[i];
    }
    while (k > 0 && (buf[k - 1] == ' ' || buf[k - 1] == '\t'))
        k--;
    buf[k] = 0;
    char *p = buf + strspn(buf, " \t");
    k = strlen(p);
    if (k >= 2 && p[0] == '<' && p[k - 1] == '>') {
        p[k - 1] = 0;
        p++;
    }
    return strcasecmp(p, rcpt) == 0;
}

int local_loop_found(const char *hdr, size_t len, const char *rcpt)
{
    static const char name[] = "delivered-to:";
    const size_t nl = sizeof name - 1;
    size_t i = 0;
    while (i < len) {
        size_t end = field_end(hdr, len, i);
        if (end - i > nl && strncasecmp(hdr + i, name, nl) == 0 &&
            value_is(hdr + i + nl, end - i - nl, rcpt))
            return 1;
        i = end;
    }
    return 0;
}

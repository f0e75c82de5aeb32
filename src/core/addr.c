/*
 * addr — the RFC 5321 wire form of mailboxes (addr.h): quoting a local part
 * that is not a Dot-string, formatting a parsed mailbox, and bringing a
 * stored address (possibly the unquoted form of older spools) back to the
 * wire form.
 *
 * Trusts nothing: any bytes give a defined result, lengths are checked
 * against the output buffer before anything is written past it.
 * Guarantees: a result holds only printable ASCII; its local part is a
 * Dot-string or a Quoted-string in which every '"' and '\' is escaped, so
 * it ends exactly at its closing quote; its domain holds no space, '<',
 * '>', '"', '\' or '@' (the domain check is a safety check, not a syntax
 * check: the SMTP parser and the configuration checks validate domains).
 * addr_canon() is idempotent.
 */
#include <string.h>

#include "core/addr.h"

#define ADDR_LEN_LIMIT 65535    /* no stored string is longer (spool format) */

static int is_alnum(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* RFC 5322 atext: the characters of a Dot-string atom. */
static int is_atext(int c)
{
    return is_alnum(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* RFC 5321 Dot-string: atoms of atext separated by single dots. */
static int is_dotstring(const char *s, size_t n)
{
    int atom = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '.') {
            if (!atom)
                return 0;
            atom = 0;
        } else if (is_atext((unsigned char)s[i])) {
            atom = 1;
        } else {
            return 0;
        }
    }
    return atom;
}

static int domain_ok(const char *d, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!is_alnum((unsigned char)d[i]) && !strchr("-._:[]", d[i]))
            return 0;
    return 1;
}

int addr_quote(const char *local, size_t len, char *out, size_t outlen)
{
    size_t need = len, n = 0;
    if (len > ADDR_LEN_LIMIT)
        return -1;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)local[i];
        if (c < 32 || c > 126)
            return -1;
        need += c == '"' || c == '\\';
    }
    if (is_dotstring(local, len)) {
        if (len + 1 > outlen)
            return -1;
        memcpy(out, local, len);
        out[len] = '\0';
        return (int)len;
    }
    need += 2;
    if (need + 1 > outlen)
        return -1;
    out[n++] = '"';
    for (size_t i = 0; i < len; i++) {
        if (local[i] == '"' || local[i] == '\\')
            out[n++] = '\\';
        out[n++] = local[i];
    }
    out[n++] = '"';
    out[n] = '\0';
    return (int)n;
}

/* Appends "@domain" to the n bytes of out; the new length or -1. */
static int put_domain(char *out, size_t outlen, int n, const char *domain, size_t dn)
{
    if (n < 0 || !domain_ok(domain, dn) || dn > ADDR_LEN_LIMIT ||
        (size_t)n + 1 + dn + 1 > outlen)
        return -1;
    out[n] = '@';
    memcpy(out + n + 1, domain, dn);
    out[n + 1 + dn] = '\0';
    return n + 1 + (int)dn;
}

int addr_format(const char *local, const char *domain, char *out, size_t outlen)
{
    return put_domain(out, outlen, addr_quote(local, strlen(local), out, outlen),
                      domain, strlen(domain));
}

/* When s[0..n) is exactly one Quoted-string (qtextSMTP and quoted-pairSMTP
 * between two quotes), writes its content into raw (n bytes suffice) and
 * returns its length; else -1. */
static long unquote(const char *s, size_t n, char *raw)
{
    size_t i = 1, k = 0;
    if (n < 2 || s[0] != '"' || s[n - 1] != '"')
        return -1;
    while (i < n - 1) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\\') {
            if (i + 1 >= n - 1)
                return -1;          /* the closing quote would be escaped */
            c = (unsigned char)s[i + 1];
            i += 2;
        } else if (c == '"') {
            return -1;
        } else {
            i++;
        }
        if (c < 32 || c > 126)
            return -1;
        raw[k++] = (char)c;
    }
    return (long)k;
}

int addr_canon(const char *addr, char *out, size_t outlen)
{
    char raw[ADDR_WIRE_MAX];
    const char *at, *local = addr;
    size_t ln;
    long k;

    if (addr[0] == '\0') {
        if (outlen < 1)
            return -1;
        out[0] = '\0';
        return 0;
    }
    if (!(at = strrchr(addr, '@')))
        return -1;
    ln = (size_t)(at - addr);
    if (ln >= sizeof raw)
        return -1;
    if (!is_dotstring(addr, ln) && (k = unquote(addr, ln, raw)) >= 0) {
        local = raw;
        ln = (size_t)k;
    }
    return put_domain(out, outlen, addr_quote(local, ln, out, outlen), at + 1, strlen(at + 1));
}

int addr_is_canon(const char *addr)
{
    char buf[ADDR_WIRE_MAX + 1];
    if (addr[0] == '\0')
        return 1;
    return addr_canon(addr, buf, sizeof buf) >= 0 && strcmp(buf, addr) == 0;
}

/*
 * parse_atrn — ATRN's domain list (RFC 2645 "ATRN [domain *(,domain)]"),
 * pure: bytes in, a bounded list of lower-cased, syntax-checked domain
 * names out.  Trusts nothing: the argument comes from the peer (bounded by
 * the command line, SMTP_CMD_LINE_MAX); the count and each name's length
 * are bounded here.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "smtp/smtp_parse.h"

/* Labels of [a-z0-9-] separated by single dots (lower-cased in place). */
static int domain_ok(char *d, size_t n)
{
    if (n == 0 || n > SMTP_ATRN_DOMAIN_MAX || d[0] == '.' || d[n - 1] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        d[i] = (char)tolower((unsigned char)d[i]);
        if (isalnum((unsigned char)d[i]) || d[i] == '-')
            continue;
        if (d[i] == '.' && d[i + 1] != '.')
            continue;
        return 0;
    }
    return 1;
}

static char *trim(char *p, char **end)
{
    while (p < *end && *p == ' ')
        p++;
    while (*end > p && (*end)[-1] == ' ')
        (*end)--;
    return p;
}

enum smtp_atrn_result smtp_parse_atrn(const char *arg, size_t len, struct smtp_atrn *out)
{
    memset(out, 0, sizeof *out);
    out->buf = xmalloc(len + 1);
    memcpy(out->buf, arg, len);
    out->buf[len] = 0;
    if (memchr(arg, 0, len))
        goto syntax;
    char *p = out->buf, *all_end = out->buf + len;
    p = trim(p, &all_end);
    *all_end = 0;
    if (p == all_end)
        return SMTP_ATRN_OK;            /* none given: all of them */
    for (;;) {
        char *comma = strchr(p, ',');
        char *end = comma ? comma : all_end;
        p = trim(p, &end);
        *end = 0;
        if (!domain_ok(p, (size_t)(end - p)))
            goto syntax;
        int dup = 0;
        for (size_t i = 0; i < out->n && !dup; i++)
            dup = !strcmp(out->domain[i], p);
        if (!dup && out->n == SMTP_ATRN_MAX) {
            smtp_atrn_free(out);
            return SMTP_ATRN_TOO_MANY;
        }
        if (!dup)
            out->domain[out->n++] = p;
        if (!comma)
            return SMTP_ATRN_OK;
        p = comma + 1;
    }
syntax:
    smtp_atrn_free(out);
    return SMTP_ATRN_SYNTAX;
}

void smtp_atrn_free(struct smtp_atrn *a)
{
    free(a->buf);
    memset(a, 0, sizeof *a);
}

/*
 * parse — POP3 command lines into struct pop3_cmd, number arguments, the
 * cleartext-login rule, and the RETR/TOP encoder (pop3_parse.h).  Pure:
 * no I/O, no allocation (the encoder appends to the caller's evbuffer).
 * Trusts nothing in its input: every byte is checked, every length bounded
 * (POP3_ARG_MAX, POP3_NUM_DIGITS; the caller bounds the line).  Guarantees:
 * pointers in a struct pop3_cmd point into the line given; a line holding
 * NUL, CR or LF is refused; the encoder's output ends every line in CR LF,
 * dot-stuffs every line that starts with ".", and does not depend on how
 * its input was cut into chunks.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "pop3/pop3_parse.h"

static const struct {
    const char *name;
    enum pop3_verb verb;
} verbs[] = {
    { "USER", POP3_V_USER }, { "PASS", POP3_V_PASS }, { "APOP", POP3_V_APOP },
    { "AUTH", POP3_V_AUTH }, { "STAT", POP3_V_STAT }, { "LIST", POP3_V_LIST },
    { "RETR", POP3_V_RETR }, { "DELE", POP3_V_DELE }, { "NOOP", POP3_V_NOOP },
    { "RSET", POP3_V_RSET }, { "QUIT", POP3_V_QUIT }, { "TOP", POP3_V_TOP },
    { "UIDL", POP3_V_UIDL }, { "CAPA", POP3_V_CAPA }, { "STLS", POP3_V_STLS },
};

/* Splits p[0..len) at runs of spaces into cmd->args (counting up to 3).
 * rest_second: the second argument is everything after the first one (AUTH). */
static enum pop3_parse_result split_args(const char *p, size_t len, int rest_second,
                                         struct pop3_cmd *cmd)
{
    size_t i = 0;
    while (i < len) {
        while (i < len && p[i] == ' ')
            i++;
        if (i == len)
            break;
        size_t start = i;
        if (rest_second && cmd->nargs == 1) {
            i = len;
            while (i > start && p[i - 1] == ' ')
                i--;                /* trailing spaces are not part of it */
        } else {
            while (i < len && p[i] != ' ')
                i++;
        }
        if (cmd->nargs >= 2) {
            cmd->nargs = 3;         /* more than two: nothing more is kept */
            return POP3_PARSE_OK;
        }
        cmd->args[cmd->nargs].p = p + start;
        cmd->args[cmd->nargs].len = i - start;
        cmd->nargs++;
        if (i - start > POP3_ARG_MAX && !(rest_second && cmd->nargs == 2))
            return POP3_PARSE_ARG_TOO_LONG;
    }
    return POP3_PARSE_OK;
}

enum pop3_parse_result pop3_parse_command(const char *line, size_t len, struct pop3_cmd *cmd)
{
    memset(cmd, 0, sizeof *cmd);
    if (memchr(line, '\0', len) || memchr(line, '\r', len) || memchr(line, '\n', len))
        return POP3_PARSE_BAD_BYTE;
    if (len == 0)
        return POP3_PARSE_EMPTY;
    const char *sp = memchr(line, ' ', len);
    size_t vlen = sp ? (size_t)(sp - line) : len;
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++) {
        if (strlen(verbs[i].name) == vlen && !strncasecmp(line, verbs[i].name, vlen)) {
            cmd->verb = verbs[i].verb;
            cmd->name = verbs[i].name;
            break;
        }
    }
    if (cmd->verb == POP3_V_UNKNOWN)
        return vlen ? POP3_PARSE_UNKNOWN : POP3_PARSE_EMPTY;
    if (!sp)
        return POP3_PARSE_OK;
    cmd->rest.p = sp + 1;
    cmd->rest.len = len - vlen - 1;
    if (cmd->verb == POP3_V_PASS) {
        cmd->nargs = cmd->rest.len ? 1 : 0;
        cmd->args[0] = cmd->rest;
        return POP3_PARSE_OK;
    }
    return split_args(sp + 1, len - vlen - 1, cmd->verb == POP3_V_AUTH, cmd);
}

int pop3_parse_number(const struct pop3_arg *a, uint32_t *out)
{
    uint64_t v = 0;
    if (a->len == 0 || a->len > POP3_NUM_DIGITS)
        return -1;
    for (size_t i = 0; i < a->len; i++) {
        if (a->p[i] < '0' || a->p[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(a->p[i] - '0');
    }
    if (v > UINT32_MAX)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

int pop3_plaintext_ok(int tls, int cleartext, const char *peer)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (tls || cleartext)
        return 1;
    if (!peer)
        return 0;
    if (inet_pton(AF_INET, peer, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, peer, &a6) == 1) {
        if (IN6_IS_ADDR_LOOPBACK(&a6))
            return 1;
        return IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127;
    }
    return 0;
}

/* ---- the RETR/TOP encoder ---- */

void pop3_enc_init(struct pop3_enc *e, long body_lines)
{
    memset(e, 0, sizeof *e);
    e->body_lines = body_lines;
    e->bol = 1;
}

/* A line end was just sent: counts it for TOP.  empty: the line had no
 * byte but its CR. */
static void line_ended(struct pop3_enc *e, int empty)
{
    e->bol = 1;
    e->cr = 0;
    e->linelen = 0;
    if (!e->in_body) {
        if (empty) {
            e->in_body = 1;
            if (e->body_lines == 0)
                e->done = 1;
        }
        return;
    }
    if (e->body_lines > 0 && --e->body_lines == 0)
        e->done = 1;
}

/* Encodes in[0..len) into o, which has room for 2 * len bytes (a byte
 * becomes at most two: a bare LF gets its CR, a leading dot its twin).
 * Returns the bytes of in used; *olen gets the bytes written. */
static size_t enc_into(struct pop3_enc *e, const char *in, size_t len, char *o, size_t *olen)
{
    char *start = o;
    size_t i = 0;
    while (i < len && !e->done) {
        if (e->bol && in[i] == '.')
            *o++ = '.';                     /* dot-stuffing */
        const char *nl = memchr(in + i, '\n', len - i);
        size_t seg = nl ? (size_t)(nl - (in + i)) : len - i;
        if (seg) {
            memcpy(o, in + i, seg);
            o += seg;
            e->bol = 0;
            e->cr = in[i + seg - 1] == '\r';
            e->linelen += seg;
        }
        i += seg;
        if (!nl)
            break;
        /* the LF: a CR before it was sent already */
        int had_cr = e->cr;
        if (!had_cr)
            *o++ = '\r';
        *o++ = '\n';
        i++;
        line_ended(e, e->linelen == (uint64_t)had_cr);
    }
    *olen = (size_t)(o - start);
    return i;
}

size_t pop3_enc_feed(struct pop3_enc *e, const char *in, size_t len, struct evbuffer *out)
{
    /* encoded into a buffer here and added in pieces of up to 8 KiB: one
     * evbuffer_add() per piece, not two per line */
    char tmp[8192];
    size_t used = 0;
    while (used < len && !e->done) {
        size_t k = len - used < sizeof tmp / 2 ? len - used : sizeof tmp / 2, olen;
        size_t u = enc_into(e, in + used, k, tmp, &olen);
        evbuffer_add(out, tmp, olen);
        used += u;
        if (u < k)
            break;
    }
    return used;
}

void pop3_enc_end(struct pop3_enc *e, struct evbuffer *out)
{
    if (!e->bol && !e->done)
        evbuffer_add(out, e->cr ? "\n" : "\r\n", e->cr ? 1 : 2);
    evbuffer_add(out, ".\r\n", 3);
}

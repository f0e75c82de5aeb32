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

/* ---- AUTH PLAIN ---- */

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Copies field [p, p+n) into out (size len) with a NUL: 0, or -1 when it
 * does not fit or holds CR or LF. */
static int plain_field(const unsigned char *p, size_t n, char *out, size_t len)
{
    if (n >= len || memchr(p, '\r', n) || memchr(p, '\n', n))
        return -1;
    memcpy(out, p, n);
    out[n] = 0;
    return 0;
}

int pop3_parse_sasl_plain(const char *b64, size_t len, char *authzid, size_t zlen,
                          char *authcid, size_t clen, char *passwd, size_t plen)
{
    unsigned char buf[POP3_LINE_MAX];
    size_t n = 0;
    int rc = -1;
    if (len % 4 || len / 4 * 3 > sizeof buf)
        return -1;
    for (size_t i = 0; i < len; i += 4) {
        int v[4], pad = 0;
        for (int k = 0; k < 4; k++) {
            unsigned char c = (unsigned char)b64[i + k];
            if (c == '=' && i + 4 == len && k >= 2 && (k == 3 || b64[i + 3] == '=')) {
                v[k] = 0;
                pad++;
                continue;
            }
            if ((v[k] = b64_value(c)) < 0 || pad)
                goto out;
        }
        unsigned x = (unsigned)(v[0] << 18 | v[1] << 12 | v[2] << 6 | v[3]);
        buf[n++] = (unsigned char)(x >> 16);
        if (pad < 2)
            buf[n++] = (unsigned char)(x >> 8);
        if (pad < 1)
            buf[n++] = (unsigned char)x;
    }
    const unsigned char *z1 = memchr(buf, 0, n);
    const unsigned char *z2 = z1 ? memchr(z1 + 1, 0, n - (size_t)(z1 + 1 - buf)) : NULL;
    if (!z2 || z2 == z1 + 1)        /* two NULs, a non-empty authcid */
        goto out;
    if (plain_field(buf, (size_t)(z1 - buf), authzid, zlen) < 0 ||
        plain_field(z1 + 1, (size_t)(z2 - z1 - 1), authcid, clen) < 0 ||
        memchr(z2 + 1, 0, n - (size_t)(z2 + 1 - buf)) ||
        plain_field(z2 + 1, n - (size_t)(z2 + 1 - buf), passwd, plen) < 0)
        goto out;
    rc = 0;
out:
    explicit_bzero(buf, sizeof buf);
    if (rc < 0 && plen)
        explicit_bzero(passwd, plen);
    return rc;
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

size_t pop3_enc_feed(struct pop3_enc *e, const char *in, size_t len, struct evbuffer *out)
{
    size_t i = 0;
    while (i < len && !e->done) {
        if (e->bol && in[i] == '.')
            evbuffer_add(out, ".", 1);      /* dot-stuffing */
        const char *nl = memchr(in + i, '\n', len - i);
        size_t seg = nl ? (size_t)(nl - (in + i)) : len - i;
        if (seg) {
            evbuffer_add(out, in + i, seg);
            e->bol = 0;
            e->cr = in[i + seg - 1] == '\r';
            e->linelen += seg;
        }
        i += seg;
        if (!nl)
            break;
        /* the LF: a CR before it was sent already */
        int had_cr = e->cr;
        evbuffer_add(out, had_cr ? "\n" : "\r\n", had_cr ? 1 : 2);
        i++;
        line_ended(e, e->linelen == (uint64_t)had_cr);
    }
    return i;
}

void pop3_enc_end(struct pop3_enc *e, struct evbuffer *out)
{
    if (!e->bol && !e->done)
        evbuffer_add(out, e->cr ? "\n" : "\r\n", e->cr ? 1 : 2);
    evbuffer_add(out, ".\r\n", 3);
}

/*
 * smtp/parse — pure SMTP parsing: command lines, MAIL/RCPT paths with their
 * ESMTP parameters, HELO/EHLO arguments, and the DATA stream decoder.
 *
 * Trusts nothing: every byte comes from the peer, lengths are explicit (no
 * NUL termination is assumed), and any input — including NUL, CR, LF and
 * bytes >= 0x80 — gives a defined result.  No I/O, no allocation, no global
 * state: unit tests and fuzzers call these functions directly.
 *
 * Guarantees: output strings are NUL-terminated and within their fixed
 * buffers (local part <= 64, domain <= 255 bytes); on any path error the
 * mailbox and parameters are left zeroed; the DATA decoder ends only at the
 * first CR LF "." CR LF (counting the CR LF of "DATA\r\n"), gives the same
 * output and results however the input is split into chunks, and never
 * consumes a byte after the end marker.  Command arguments are returned
 * without their leading and trailing spaces.
 */
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "smtp/smtp_parse.h"

/* ---- character classes (ASCII only, locale independent) ---------------- */

static int is_alpha(int c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }
static int is_digit(int c) { return c >= '0' && c <= '9'; }
static int is_alnum(int c) { return is_alpha(c) || is_digit(c); }
static int to_lower(int c) { return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c; }

static int is_hex(int c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* RFC 5322 atext: the characters of an unquoted local-part atom. */
static int is_atext(int c)
{
    return is_alnum(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* True when s[0..n) equals the NUL-terminated word, ignoring ASCII case. */
static int ieq(const char *s, size_t n, const char *word)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (word[i] == '\0' || to_lower((unsigned char)s[i]) != to_lower((unsigned char)word[i]))
            return 0;
    return word[n] == '\0';
}

/* ---- command lines ------------------------------------------------------ */

static const struct {
    const char *name;
    enum smtp_verb verb;
} verbs[] = {
    { "HELO", SMTP_V_HELO }, { "EHLO", SMTP_V_EHLO }, { "MAIL", SMTP_V_MAIL },
    { "RCPT", SMTP_V_RCPT }, { "DATA", SMTP_V_DATA }, { "RSET", SMTP_V_RSET },
    { "NOOP", SMTP_V_NOOP }, { "QUIT", SMTP_V_QUIT }, { "VRFY", SMTP_V_VRFY },
    { "EXPN", SMTP_V_EXPN }, { "HELP", SMTP_V_HELP }, { "STARTTLS", SMTP_V_STARTTLS },
    { "ETRN", SMTP_V_ETRN }, { "AUTH", SMTP_V_AUTH }, { "BDAT", SMTP_V_BDAT },
    { "ATRN", SMTP_V_ATRN },
};

int smtp_parse_command(const char *line, size_t len, struct smtp_cmd *cmd)
{
    size_t i, vlen, end;

    cmd->verb = SMTP_V_UNKNOWN;
    cmd->arg = "";
    cmd->arglen = 0;
    for (i = 0; i < len; i++)
        if (line[i] == '\0' || line[i] == '\r' || line[i] == '\n')
            return -1;
    for (vlen = 0; vlen < len && line[vlen] != ' '; vlen++)
        ;
    for (i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
        if (ieq(line, vlen, verbs[i].name)) {
            cmd->verb = verbs[i].verb;
            break;
        }
    for (i = vlen; i < len && line[i] == ' '; i++)
        ;
    for (end = len; end > i && line[end - 1] == ' '; end--)
        ;
    if (end > i) {
        cmd->arg = line + i;
        cmd->arglen = end - i;
    }
    return 0;
}

/* ---- domains and address literals --------------------------------------- */

/* Dotted quad of decimal numbers 0..255 filling s[0..n) exactly. */
static int ipv4_valid(const char *s, size_t n)
{
    size_t i = 0;
    int part;

    for (part = 0; part < 4; part++) {
        unsigned v = 0, digits = 0;

        if (part > 0) {
            if (i >= n || s[i] != '.')
                return 0;
            i++;
        }
        while (i < n && is_digit((unsigned char)s[i]) && digits < 3) {
            v = v * 10 + (unsigned)(s[i] - '0');
            digits++;
            i++;
        }
        if (digits == 0 || v > 255)
            return 0;
    }
    return i == n;
}

/* IPv6 text form (RFC 4291 2.2, also RFC 5321 IPv6-addr) filling s[0..n):
 * hex groups of 1-4 digits, at most one "::", optionally a dotted quad last. */
static int ipv6_valid(const char *s, size_t n)
{
    size_t i = 0;
    unsigned groups = 0;
    int compressed = 0;

    if (n >= 2 && s[0] == ':' && s[1] == ':') {
        compressed = 1;
        i = 2;
    }
    while (i < n) {
        size_t g = i;

        while (i < n && i - g < 4 && is_hex((unsigned char)s[i]))
            i++;
        if (i == g)
            return 0;
        if (i < n && s[i] == '.') {         /* embedded IPv4 ends the address */
            if (!ipv4_valid(s + g, n - g))
                return 0;
            groups += 2;
            i = n;
            break;
        }
        groups++;
        if (i == n)
            break;
        if (s[i] != ':')
            return 0;
        i++;
        if (i < n && s[i] == ':') {
            if (compressed)
                return 0;
            compressed = 1;
            i++;
        } else if (i == n) {
            return 0;                       /* trailing single ':' */
        }
    }
    return compressed ? groups <= 7 : groups == 8;
}

/* Parses Domain (RFC 5321: labels of letters, digits and hyphens, no hyphen
 * first or last, dot-separated) at s[*pos..len).  Lower-cases it into out
 * (may be NULL, else SMTP_DOMAIN_MAX + 1 bytes) and advances *pos past it. */
static enum smtp_path_err parse_domain(const char *s, size_t len, size_t *pos, char *out)
{
    size_t i = *pos, n = 0;

    for (;;) {
        size_t label = i;

        if (i >= len || !is_alnum((unsigned char)s[i]))
            return SMTP_PATH_SYNTAX;
        while (i < len && (is_alnum((unsigned char)s[i]) || s[i] == '-')) {
            if (n >= SMTP_DOMAIN_MAX)
                return SMTP_PATH_TOO_LONG;
            if (out)
                out[n] = (char)to_lower((unsigned char)s[i]);
            n++;
            i++;
        }
        if (s[i - 1] == '-' || i - label > 63)
            return SMTP_PATH_SYNTAX;
        if (i >= len || s[i] != '.')
            break;
        if (n >= SMTP_DOMAIN_MAX)
            return SMTP_PATH_TOO_LONG;
        if (out)
            out[n] = '.';
        n++;
        i++;
    }
    if (out)
        out[n] = '\0';
    *pos = i;
    return SMTP_PATH_OK;
}

/* Parses an address literal "[1.2.3.4]" or "[IPv6:...]" at s[*pos..len),
 * copying it with its brackets, as written, into out (SMTP_DOMAIN_MAX + 1). */
static enum smtp_path_err parse_literal(const char *s, size_t len, size_t *pos, char *out)
{
    size_t i = *pos + 1, n;
    const char *body;
    int ok;

    while (i < len && s[i] != ']' && s[i] != '[' && s[i] != '\\')
        i++;
    if (i >= len || s[i] != ']')
        return SMTP_PATH_SYNTAX;
    i++;
    n = i - *pos;                           /* with both brackets */
    if (n > SMTP_DOMAIN_MAX)
        return SMTP_PATH_TOO_LONG;
    body = s + *pos + 1;
    if (n - 2 >= 5 && ieq(body, 5, "IPv6:"))
        ok = ipv6_valid(body + 5, n - 2 - 5);
    else
        ok = ipv4_valid(body, n - 2);
    if (!ok)
        return SMTP_PATH_SYNTAX;
    memcpy(out, s + *pos, n);
    out[n] = '\0';
    *pos = i;
    return SMTP_PATH_OK;
}

/* ---- MAIL FROM / RCPT TO paths ------------------------------------------ */

/* Quoted-string local part at s[*pos] == '"': stores the unquoted form.
 * The limit of 64 applies to the form on the wire (quotes included). */
static enum smtp_path_err parse_quoted(const char *s, size_t len, size_t *pos,
                                       struct smtp_mailbox *mb)
{
    size_t i = *pos + 1, n = 0;

    for (;;) {
        int c;

        if (i >= len)
            return SMTP_PATH_SYNTAX;
        c = (unsigned char)s[i];
        if (c == '"') {
            i++;
            break;
        }
        if (c == '\\') {
            if (i + 1 >= len)
                return SMTP_PATH_SYNTAX;
            c = (unsigned char)s[i + 1];
            i += 2;
        } else {
            i++;
        }
        if (c < 32 || c > 126)
            return SMTP_PATH_SYNTAX;
        if (i - *pos > SMTP_LOCAL_MAX)
            return SMTP_PATH_TOO_LONG;
        mb->local[n++] = (char)c;       /* n < i - *pos <= SMTP_LOCAL_MAX */
    }
    if (i - *pos > SMTP_LOCAL_MAX)
        return SMTP_PATH_TOO_LONG;
    mb->local[n] = '\0';
    mb->quoted = 1;
    *pos = i;
    return SMTP_PATH_OK;
}

/* Dot-string local part: atoms of atext separated by single dots. */
static enum smtp_path_err parse_dotstring(const char *s, size_t len, size_t *pos,
                                          struct smtp_mailbox *mb)
{
    size_t i = *pos, n = 0;

    for (;;) {
        if (i >= len || !is_atext((unsigned char)s[i]))
            return SMTP_PATH_SYNTAX;
        while (i < len && is_atext((unsigned char)s[i])) {
            if (n >= SMTP_LOCAL_MAX)
                return SMTP_PATH_TOO_LONG;
            mb->local[n++] = s[i++];
        }
        if (i >= len || s[i] != '.')
            break;
        if (n >= SMTP_LOCAL_MAX)
            return SMTP_PATH_TOO_LONG;
        mb->local[n++] = s[i++];
    }
    mb->local[n] = '\0';
    *pos = i;
    return SMTP_PATH_OK;
}

/* Source route "@a,@b:" (RFC 5321 A-d-l): checked, then dropped. */
static enum smtp_path_err parse_route(const char *s, size_t len, size_t *pos)
{
    size_t i = *pos;
    enum smtp_path_err e;

    for (;;) {
        if (i >= len || s[i] != '@')
            return SMTP_PATH_SYNTAX;
        i++;
        if ((e = parse_domain(s, len, &i, NULL)) != SMTP_PATH_OK)
            return e;
        if (i < len && s[i] == ',') {
            i++;
            continue;
        }
        if (i < len && s[i] == ':')
            break;
        return SMTP_PATH_SYNTAX;
    }
    *pos = i + 1;
    return SMTP_PATH_OK;
}

/* "<" [route] mailbox ">" or "<>" at s[*pos]; *pos ends after the '>'. */
static enum smtp_path_err parse_angle_path(const char *s, size_t len, size_t *pos,
                                           int is_rcpt, struct smtp_mailbox *mb)
{
    size_t i = *pos;
    int routed = 0;
    enum smtp_path_err e;

    if (i >= len || s[i] != '<')
        return SMTP_PATH_SYNTAX;
    i++;
    if (i < len && s[i] == '>') {
        if (is_rcpt)
            return SMTP_PATH_SYNTAX;
        mb->null = 1;
        *pos = i + 1;
        return SMTP_PATH_OK;
    }
    if (i < len && s[i] == '@') {
        if ((e = parse_route(s, len, &i)) != SMTP_PATH_OK)
            return e;
        routed = 1;
    }
    if (i < len && s[i] == '"')
        e = parse_quoted(s, len, &i, mb);
    else
        e = parse_dotstring(s, len, &i, mb);
    if (e != SMTP_PATH_OK)
        return e;
    if (i < len && s[i] == '@') {
        i++;
        if (i < len && s[i] == '[') {
            e = parse_literal(s, len, &i, mb->domain);
            mb->literal = 1;
        } else {
            e = parse_domain(s, len, &i, mb->domain);
        }
        if (e != SMTP_PATH_OK)
            return e;
    } else if (i < len && s[i] == '>' && is_rcpt && !routed && !mb->quoted &&
               ieq(mb->local, strlen(mb->local), "postmaster")) {
        mb->postmaster = 1;
    } else {
        return SMTP_PATH_SYNTAX;
    }
    if (i >= len || s[i] != '>')
        return SMTP_PATH_SYNTAX;
    *pos = i + 1;
    return SMTP_PATH_OK;
}

/* One "KEYWORD=value" token; seen[] catches repeats. */
static enum smtp_path_err parse_param(const char *t, size_t n, struct smtp_params *params,
                                      int seen[3])
{
    const char *eq = memchr(t, '=', n);
    size_t klen, vlen, i;
    const char *v;

    if (eq == NULL)
        return SMTP_PATH_PARAM;
    klen = (size_t)(eq - t);
    v = eq + 1;
    vlen = n - klen - 1;
    if (vlen == 0)
        return SMTP_PATH_PARAM;
    if (ieq(t, klen, "SIZE")) {
        uint64_t size = 0;

        if (seen[0]++)
            return SMTP_PATH_PARAM;
        for (i = 0; i < vlen; i++) {
            unsigned d = (unsigned)((unsigned char)v[i] - '0');

            if (d > 9 || size > (UINT64_MAX - d) / 10)
                return SMTP_PATH_PARAM;
            size = size * 10 + d;
        }
        params->has_size = 1;
        params->size = size;
        return SMTP_PATH_OK;
    }
    if (ieq(t, klen, "BODY")) {
        if (seen[1]++)
            return SMTP_PATH_PARAM;
        if (ieq(v, vlen, "8BITMIME"))
            params->body_8bit = 1;
        else if (!ieq(v, vlen, "7BIT"))
            return SMTP_PATH_PARAM;
        return SMTP_PATH_OK;
    }
    if (ieq(t, klen, "AUTH")) {     /* RFC 4954 5: once; the session decides */
        if (seen[2]++)
            return SMTP_PATH_PARAM;
        params->has_auth = 1;
        return SMTP_PATH_OK;
    }
    return SMTP_PATH_PARAM;
}

static enum smtp_path_err parse_path(const char *arg, size_t len, const char *keyword,
                                     int is_rcpt, struct smtp_mailbox *mb,
                                     struct smtp_params *params)
{
    size_t klen = strlen(keyword), i, start;
    int seen[3] = { 0, 0, 0 };
    enum smtp_path_err e;

    for (i = 0; i < len; i++)
        if ((unsigned char)arg[i] < 0x20 || (unsigned char)arg[i] >= 0x7f)
            return SMTP_PATH_SYNTAX;
    if (len < klen + 1 || !ieq(arg, klen, keyword) || arg[klen] != ':')
        return SMTP_PATH_SYNTAX;
    i = klen + 1;
    if (i < len && arg[i] == ' ')           /* "FROM: <a@b>" as Postfix allows */
        i++;
    start = i;
    if ((e = parse_angle_path(arg, len, &i, is_rcpt, mb)) != SMTP_PATH_OK)
        return e;
    if (i - start > SMTP_PATH_MAX)
        return SMTP_PATH_TOO_LONG;
    while (i < len) {
        size_t t;

        if (arg[i] != ' ')
            return SMTP_PATH_SYNTAX;
        while (i < len && arg[i] == ' ')
            i++;
        if (i == len)
            break;
        for (t = i; i < len && arg[i] != ' '; i++)
            ;
        if (is_rcpt)
            return SMTP_PATH_PARAM;
        if ((e = parse_param(arg + t, i - t, params, seen)) != SMTP_PATH_OK)
            return e;
    }
    return SMTP_PATH_OK;
}

enum smtp_path_err smtp_parse_path(const char *arg, size_t len, const char *keyword,
                                   int is_rcpt, struct smtp_mailbox *mb,
                                   struct smtp_params *params)
{
    struct smtp_params scratch;
    enum smtp_path_err e;

    if (params == NULL)
        params = &scratch;
    memset(mb, 0, sizeof *mb);
    memset(params, 0, sizeof *params);
    e = parse_path(arg, len, keyword, is_rcpt, mb, params);
    if (e != SMTP_PATH_OK) {
        memset(mb, 0, sizeof *mb);
        memset(params, 0, sizeof *params);
    }
    return e;
}

int smtp_local_is_routing(const struct smtp_mailbox *mb)
{
    return strpbrk(mb->local, "%!@") != NULL;
}

/* ---- HELO / EHLO --------------------------------------------------------- */

/*
 * The first word must be an address literal or a host name.  Host names are
 * checked leniently — dot-separated non-empty labels of letters, digits, '-'
 * and '_', one trailing dot allowed — because real clients send "my_pc" and
 * bare names; the whole argument must be printable ASCII (it is logged).
 */
int smtp_parse_helo(const char *arg, size_t len)
{
    size_t i, word, label = 0;

    for (i = 0; i < len; i++)
        if ((unsigned char)arg[i] < 0x20 || (unsigned char)arg[i] > 0x7e)
            return -1;
    for (word = 0; word < len && arg[word] != ' '; word++)
        ;
    if (word == 0 || word > SMTP_DOMAIN_MAX)
        return -1;
    if (arg[0] == '[') {
        char lit[SMTP_DOMAIN_MAX + 1];
        size_t pos = 0;

        if (parse_literal(arg, word, &pos, lit) != SMTP_PATH_OK || pos != word)
            return -1;
        return 0;
    }
    for (i = 0; i < word; i++) {
        int c = (unsigned char)arg[i];

        if (c == '.') {
            if (label == 0)
                return -1;
            label = 0;
        } else if (is_alnum(c) || c == '-' || c == '_') {
            label++;
        } else {
            return -1;
        }
    }
    return 0;
}

/* ---- received lines ------------------------------------------------------ */

int smtp_line_is_clean(const char *buf, size_t len)
{
    size_t i;

    if (len < 2 || buf[len - 1] != '\n' || buf[len - 2] != '\r')
        return -1;
    for (i = 0; i < len - 2; i++)
        if (buf[i] == '\r' || buf[i] == '\n')
            return -1;
    return 0;
}

/* ---- DATA decoder ---------------------------------------------------------
 *
 * Main states (d->st), from the stream's point of view:
 *   D_BOL    after CR LF (or at the start): a '.' here may start the marker
 *   D_TEXT   inside a line
 *   D_CR     after a CR inside a line, waiting to see whether LF follows
 *   D_DOT    after CR LF "."; the dot is dropped whatever follows
 *   D_DOTCR  after CR LF "." CR: LF completes the end marker
 *   D_DONE   end marker consumed
 * A CR is held (not yet emitted) while in D_CR/D_DOTCR; nothing else is ever
 * held, so no buffer is needed across chunks.
 *
 * Every decoded byte passes through account_byte()/account_eol(), which count
 * size, line length and the header section (d->in_header sub-state) and say
 * which limit the byte crosses.  The first error is kept; the bytes before
 * the offending one are emitted, nothing after.  Plain runs inside a line are
 * accounted in bulk by text_run(), with the same result (see "fast path").
 */
enum { D_BOL = 0, D_TEXT, D_CR, D_DOT, D_DOTCR, D_DONE };
enum { H_BODY = 0, H_LINESTART, H_NAME, H_NAMESP, H_FIELD };

void smtp_data_init(struct smtp_data *d, uint64_t max_size, uint64_t line_limit,
                    uint64_t header_limit, unsigned max_received)
{
    memset(d, 0, sizeof *d);
    d->max_size = max_size;
    d->line_limit = line_limit;
    d->header_limit = header_limit;
    d->max_received = max_received;
    d->st = D_BOL;
    d->bol = 1;
    d->in_header = H_LINESTART;
}

static enum smtp_data_err hdr_grow(struct smtp_data *d, uint64_t n)
{
    d->header_len += n;
    if (d->header_limit && d->header_len > d->header_limit)
        return SMTP_DATA_HEADER_TOO_BIG;
    return SMTP_DATA_OK;
}

/* A ':' ended a field name: the line so far joins the header section. */
static enum smtp_data_err hdr_confirm(struct smtp_data *d)
{
    enum smtp_data_err e = hdr_grow(d, d->line_len);

    d->in_header = H_FIELD;
    if (d->hdrname_len == 8 && memcmp(d->hdrname, "received", 8) == 0) {
        if (d->received < UINT_MAX)
            d->received++;
        if (e == SMTP_DATA_OK && d->max_received && d->received > d->max_received)
            e = SMTP_DATA_LOOP;
    }
    return e;
}

static void hdr_name_add(struct smtp_data *d, int c)
{
    if (d->hdrname_len < sizeof d->hdrname)
        d->hdrname[d->hdrname_len++] = (char)to_lower(c);
}

/* RFC 5322 ftext: printable ASCII except ':'. */
static int is_ftext(int c) { return c >= 33 && c <= 126 && c != ':'; }

/* One decoded byte (not a line end) seen by the header tracker. */
static enum smtp_data_err hdr_byte(struct smtp_data *d, int c)
{
    switch (d->in_header) {
    case H_LINESTART:
        if (c == ' ' || c == '\t') {
            if (d->header_len == 0) {       /* continuation with no field */
                d->in_header = H_BODY;
                return SMTP_DATA_OK;
            }
            d->in_header = H_FIELD;
            return hdr_grow(d, d->line_len);
        }
        if (is_ftext(c)) {
            d->in_header = H_NAME;
            d->hdrname_len = 0;
            hdr_name_add(d, c);
        } else {
            d->in_header = H_BODY;
        }
        return SMTP_DATA_OK;
    case H_NAME:
        if (is_ftext(c))
            hdr_name_add(d, c);
        else if (c == ':')
            return hdr_confirm(d);
        else if (c == ' ' || c == '\t')
            d->in_header = H_NAMESP;        /* obsolete "Name :" form */
        else
            d->in_header = H_BODY;
        return SMTP_DATA_OK;
    case H_NAMESP:
        if (c == ':')
            return hdr_confirm(d);
        if (c != ' ' && c != '\t')
            d->in_header = H_BODY;
        return SMTP_DATA_OK;
    case H_FIELD:
        return hdr_grow(d, 1);
    default:
        return SMTP_DATA_OK;
    }
}

static enum smtp_data_err account_byte(struct smtp_data *d, int c)
{
    enum smtp_data_err e = SMTP_DATA_OK, h;

    if (c >= 0x80)
        d->eightbit = 1;
    d->size++;
    d->line_len++;
    if (d->max_size && d->size > d->max_size)
        e = SMTP_DATA_TOO_BIG;
    else if (d->line_limit && d->line_len > d->line_limit)
        e = SMTP_DATA_LINE_TOO_LONG;
    h = hdr_byte(d, c);
    return e != SMTP_DATA_OK ? e : h;
}

static enum smtp_data_err account_eol(struct smtp_data *d)
{
    enum smtp_data_err e = SMTP_DATA_OK;

    d->size += 2;
    if (d->max_size && d->size > d->max_size)
        e = SMTP_DATA_TOO_BIG;
    if (d->in_header == H_FIELD) {
        enum smtp_data_err h = hdr_grow(d, 2);

        if (e == SMTP_DATA_OK)
            e = h;
        d->in_header = H_LINESTART;
    } else {
        d->in_header = H_BODY;      /* empty line or a line that was no field */
    }
    d->line_len = 0;
    return e;
}

/* One feed call: the buffer and the run of its bytes not yet emitted. */
struct feed {
    struct smtp_data *d;
    const char *buf;
    size_t start;
    smtp_emit_fn *emit;
    void *arg;
};

static void run_flush(struct feed *f, size_t end)
{
    if (end <= f->start)
        return;
    if (f->d->err == SMTP_DATA_OK && f->emit != NULL)
        f->emit(f->arg, f->buf + f->start, end - f->start);
    f->start = end;
}

/* Records e (if it is the first error) after emitting the run up to end. */
static void run_fail(struct feed *f, size_t end, enum smtp_data_err e)
{
    if (e == SMTP_DATA_OK || f->d->err != SMTP_DATA_OK)
        return;
    run_flush(f, end);
    f->d->err = e;
}

/* Byte i inside a line (not a held CR, not the dot that starts a line). */
static void text_byte(struct feed *f, size_t i, int c)
{
    struct smtp_data *d = f->d;
    enum smtp_data_err e;

    if (c == '\r') {
        d->st = D_CR;                       /* held until we see what follows */
        return;
    }
    e = account_byte(d, c);
    if (c == '\n')
        e = SMTP_DATA_BARE_NL;
    else if (c == '\0')
        e = SMTP_DATA_NUL;
    run_fail(f, i, e);
    d->st = D_TEXT;
}

/* The held CR turned out bare: byte i (not LF) follows it. */
static void bare_cr(struct feed *f, size_t i)
{
    run_fail(f, i > 0 ? i - 1 : 0, SMTP_DATA_BARE_NL);
    (void)account_byte(f->d, '\r');
    f->d->st = D_TEXT;
}

/*
 * Fast path.  Most bytes are inside a line (D_TEXT) where the header tracker
 * only counts (H_BODY, or H_FIELD where every byte joins the header section):
 * there nothing but CR, LF or NUL can change the state.  plain_span() finds
 * the next of those a word at a time and text_run() accounts the bytes before
 * it at once; the byte-at-a-time code then takes the CR, LF or NUL as before.
 * The run stays part of the pending emit run, so output is unchanged.
 */
#define BYTES_01 ((uint64_t)0x0101010101010101u)
#define BYTES_80 ((uint64_t)0x8080808080808080u)

/* Non-zero exactly when some byte of w is zero. */
static uint64_t has_zero_byte(uint64_t w) { return (w - BYTES_01) & ~w & BYTES_80; }

static int fast_path_ok(const struct smtp_data *d)
{
    return d->st == D_TEXT && (d->in_header == H_BODY || d->in_header == H_FIELD);
}

/* Index of the first CR, LF or NUL in buf[i..len), or len; notes 8-bit bytes. */
static size_t plain_span(struct smtp_data *d, const char *buf, size_t i, size_t len)
{
    uint64_t seen = 0;

    for (; len - i >= 8; i += 8) {
        uint64_t w;

        memcpy(&w, buf + i, 8);
        if (has_zero_byte(w) | has_zero_byte(w ^ (BYTES_01 * '\r')) |
            has_zero_byte(w ^ (BYTES_01 * '\n')))
            break;                          /* the word holds one: find it below */
        seen |= w;
    }
    for (; i < len && buf[i] != '\r' && buf[i] != '\n' && buf[i] != '\0'; i++)
        seen |= (unsigned char)buf[i];
    if (seen & BYTES_80)
        d->eightbit = 1;
    return i;
}

/* Offset of the first of n more bytes that takes `used` over `limit` (0: no
 * limit), as account_byte() checks it byte by byte; n when none does. */
static uint64_t limit_hit(uint64_t limit, uint64_t used, uint64_t n)
{
    if (limit == 0)
        return n;
    if (used >= limit)
        return 0;
    return limit - used < n ? limit - used : n;
}

/* Accounts the plain bytes [i, j) found by plain_span() as account_byte()
 * would one at a time: the first limit crossed (size, then line, then header
 * on the same byte) fails the run at that byte. */
static void text_run(struct feed *f, size_t i, size_t j)
{
    struct smtp_data *d = f->d;
    uint64_t n = j - i, at = n, k;
    enum smtp_data_err e = SMTP_DATA_OK;
    int field = d->in_header == H_FIELD;

    if ((k = limit_hit(d->max_size, d->size, n)) < at) {
        at = k;
        e = SMTP_DATA_TOO_BIG;
    }
    if ((k = limit_hit(d->line_limit, d->line_len, n)) < at) {
        at = k;
        e = SMTP_DATA_LINE_TOO_LONG;
    }
    if (field && (k = limit_hit(d->header_limit, d->header_len, n)) < at) {
        at = k;
        e = SMTP_DATA_HEADER_TOO_BIG;
    }
    run_fail(f, i + (size_t)at, e);
    d->size += n;
    d->line_len += n;
    if (field)
        d->header_len += n;
}

size_t smtp_data_feed(struct smtp_data *d, const char *buf, size_t len,
                      smtp_emit_fn *emit, void *arg, int *done)
{
    struct feed f = { d, buf, 0, emit, arg };
    int dummy;
    size_t i;

    if (done == NULL)
        done = &dummy;
    *done = d->st == D_DONE;
    if (*done)
        return 0;
    for (i = 0; i < len; i++) {
        int c;
        size_t before_cr;

        if (fast_path_ok(d)) {
            size_t j = plain_span(d, buf, i, len);

            text_run(&f, i, j);
            if ((i = j) == len)
                break;
        }
        c = (unsigned char)buf[i];
        before_cr = i > 0 ? i - 1 : 0;          /* run end without a held CR */

        switch (d->st) {
        case D_CR:
            if (c == '\n') {
                run_fail(&f, before_cr, account_eol(d));
                if (i == 0 && d->err == SMTP_DATA_OK && emit != NULL)
                    emit(arg, "\r", 1);     /* the CR held from the last chunk */
                d->st = D_BOL;
                continue;
            }
            bare_cr(&f, i);
            break;
        case D_DOTCR:
            if (c == '\n') {
                run_flush(&f, before_cr);
                d->st = D_DONE;
                d->bol = 0;
                *done = 1;
                return i + 1;
            }
            bare_cr(&f, i);
            break;
        case D_BOL:
            if (c == '.') {
                run_flush(&f, i);
                f.start = i + 1;            /* the leading dot is never emitted */
                d->st = D_DOT;
                continue;
            }
            break;
        case D_DOT:
            if (c == '\r') {
                d->st = D_DOTCR;
                continue;
            }
            break;
        default:
            break;
        }
        text_byte(&f, i, c);
    }
    d->bol = d->st == D_BOL;
    run_flush(&f, len > 0 && (d->st == D_CR || d->st == D_DOTCR) ? len - 1 : len);
    return len;
}

/*
 * config — loads kickmail.conf into an immutable struct config.
 *
 * The file is read whole and scanned once here before libconfuse sees it:
 * comments are blanked to spaces (newlines kept) because libconfuse 3.3
 * miscounts lines after comments, and the line of every section header is
 * recorded, because libconfuse keeps no line for a section's start.  The
 * cleaned text is then parsed with the schema of config_schema.c, whose
 * callbacks reject bad single values with their line; libconfuse's own errors
 * (unknown option, syntax) are captured through cfg_set_error_function.  What
 * needs the whole file (titles, a domain claimed twice, tls pairs...) is
 * checked while converting to struct config.  Customer options are converted
 * and checked through config_schema.c's option table, the same code the
 * customer map (custmap.c) uses, so both get the same defaults and checks.
 *
 * Trusts nothing in the file.  Guarantees: config_load() returns either a
 * complete configuration that passed every check, or NULL with exactly one
 * "FILE:LINE: what is wrong" (or "FILE: what is wrong") message.  Nothing is
 * bound, created or written.  Not reentrant across threads' event loops in
 * the sense that libconfuse's lexer is global: load from one thread.
 */
#include <arpa/inet.h>
#include <confuse.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/config.h"
#include "core/hosts.h"
#include "core/log.h"
#include "core/netlist.h"
#include "core/tls.h"
#include "core/util.h"
#include "config_int.h"

#define SCAN_DEPTH 8
#define NAME_MAX_SCAN 24

/* A section header seen by the scanner: `name ["title"] {` inside parent. */
struct hdr {
    char name[NAME_MAX_SCAN];
    char parent[NAME_MAX_SCAN];     /* "" at top level */
    int line;
};

struct loader {
    const char *path;
    char *err;
    size_t errlen;
    int failed;                 /* err holds the (first) message */
    struct hdr *hdrs;
    size_t nhdrs, hdrcap;
    int unclosed_line;          /* an unclosed section seen by the scanner */
    char unclosed[NAME_MAX_SCAN];
    struct config *c;
};

/* The load in progress, for libconfuse's error callback (which has no
 * user pointer).  Set only inside config_load(). */
static _Thread_local struct loader *cur_loader;

/* Listener sections, in file-order of INTERFACE.md.  `served`: this build
 * runs the protocol (the rest are accepted and reported by config_unserved). */
static const struct listener_def {
    const char *name;
    size_t off;
    int served;
} listener_defs[] = {
    {"smtp", offsetof(struct config, smtp.l), 1},
    {"submission", offsetof(struct config, submission.l), 1},
    {"smtps", offsetof(struct config, smtps.l), 1},
    {"pop3", offsetof(struct config, pop3.l), 1},
    {"pop3s", offsetof(struct config, pop3s.l), 1},
    {"odmr", offsetof(struct config, odmr.l), 1},
    {"radius", offsetof(struct config, radius), 1},
};
#define NLISTENERS (sizeof listener_defs / sizeof listener_defs[0])

/* ---- errors ---- */

static int fail(struct loader *ld, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Copies src into dst on one line: control characters become \n, \t or \xHH. */
static void one_line(char *dst, size_t len, const char *src)
{
    size_t o = 0;
    for (; *src && o + 5 < len; src++) {
        unsigned char ch = (unsigned char)*src;
        if (ch == '\n' || ch == '\t')
            o += (size_t)snprintf(dst + o, len - o, "\\%c", ch == '\n' ? 'n' : 't');
        else if (ch < 0x20 || ch == 0x7f)
            o += (size_t)snprintf(dst + o, len - o, "\\x%02x", ch);
        else
            dst[o++] = (char)ch;
    }
    dst[o] = 0;
}

static int fail(struct loader *ld, int line, const char *fmt, ...)
{
    char raw[512], msg[512];
    va_list ap;
    if (ld->failed)
        return -1;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    one_line(msg, sizeof msg, raw);
    if (line > 0)
        snprintf(ld->err, ld->errlen, "%s:%d: %s", ld->path, line, msg);
    else
        snprintf(ld->err, ld->errlen, "%s: %s", ld->path, msg);
    ld->failed = 1;
    return -1;
}

/* The last section header at or before line (headers are in file order). */
static const struct hdr *hdr_before(const struct loader *ld, int line)
{
    const struct hdr *found = NULL;
    for (size_t i = 0; i < ld->nhdrs && ld->hdrs[i].line <= line; i++)
        found = &ld->hdrs[i];
    return found;
}

/* libconfuse's errors, reworded where it helps: "unknown option 'x'",
 * "customer 'a' defined twice" (on the line of the second header). */
static void config_errfunc(cfg_t *cfg, const char *fmt, va_list ap)
{
    static const char nosuch[] = "no such option", dup[] = "found duplicate title ";
    struct loader *ld = cur_loader;
    int line = cfg ? cfg->line : 0;
    const struct hdr *h;
    char msg[512];
    if (!ld)
        return;
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (strncmp(msg, nosuch, sizeof nosuch - 1) == 0)
        fail(ld, line, "unknown option%s", msg + sizeof nosuch - 1);
    else if (strncmp(msg, dup, sizeof dup - 1) == 0 && (h = hdr_before(ld, line)))
        fail(ld, h->line, "%s %s defined twice", h->name, msg + sizeof dup - 1);
    else
        fail(ld, line, "%s", msg);
}

/* ---- reading and scanning ---- */

static char *read_text(struct loader *ld, size_t *lenp)
{
    FILE *f = fopen(ld->path, "r");
    size_t len = 0, cap = 8192, n;
    char *text;
    if (!f) {
        fail(ld, 0, "cannot open: %s", strerror(errno));
        return NULL;
    }
    text = xmalloc(cap);
    while ((n = fread(text + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 2)
            text = xrealloc(text, cap *= 2);
    }
    if (ferror(f)) {
        fail(ld, 0, "cannot read: %s", strerror(errno));
        fclose(f);
        free(text);
        return NULL;
    }
    fclose(f);
    text[len] = 0;
    if (strlen(text) != len) {
        fail(ld, 0, "contains a NUL byte");
        free(text);
        return NULL;
    }
    *lenp = len;
    return text;
}

enum tok { TK_EOF, TK_WORD, TK_LBRACE, TK_RBRACE, TK_EQ, TK_OTHER };

/* Tokens as libconfuse's lexer sees them, enough to follow sections. */
struct scanner {
    char *s;
    size_t i, len;
    int line;
    const char *tok;            /* text of the last TK_WORD */
    size_t toklen;
    int tokline;
    int open_comment;           /* line of an unterminated comment, or 0 */
};

static int is_word_char(char c)
{
    return c && !strchr(" #\"'\t\n\r={}()+,*", c);
}

/* Replaces s[i..end) with spaces, keeping (and counting) newlines. */
static void scan_blank(struct scanner *sc, size_t end)
{
    for (; sc->i < end; sc->i++) {
        if (sc->s[sc->i] == '\n')
            sc->line++;
        else
            sc->s[sc->i] = ' ';
    }
}

/* Skips forward to just past `stop` (or the end), counting newlines. */
static void scan_skip_to(struct scanner *sc, char stop)
{
    while (sc->i < sc->len && sc->s[sc->i] != stop) {
        if (sc->s[sc->i] == '\n')
            sc->line++;
        sc->i++;
    }
    if (sc->i < sc->len)
        sc->i++;
}

/* A quoted string starting at s[i]; backslash escapes the next character,
 * "${...}" inside double quotes runs to its brace. */
static void scan_quoted(struct scanner *sc)
{
    char q = sc->s[sc->i++];
    sc->tok = sc->s + sc->i;
    while (sc->i < sc->len && sc->s[sc->i] != q) {
        char c = sc->s[sc->i];
        if (q == '"' && c == '$' && sc->s[sc->i + 1] == '{') {
            scan_skip_to(sc, '}');
            continue;
        }
        if (c == '\\' && sc->i + 1 < sc->len)
            c = sc->s[++sc->i];
        if (c == '\n')
            sc->line++;
        sc->i++;
    }
    sc->toklen = (size_t)(sc->s + sc->i - sc->tok);
    if (sc->i < sc->len)
        sc->i++;
}

static enum tok scan_next(struct scanner *sc)
{
    while (sc->i < sc->len) {
        char c = sc->s[sc->i], n = sc->s[sc->i + 1];
        const char *end;
        sc->tokline = sc->line;
        if (c == '#' || (c == '/' && n == '/')) {
            end = strchr(sc->s + sc->i, '\n');
            scan_blank(sc, end ? (size_t)(end - sc->s) : sc->len);
        } else if (c == '/' && n == '*') {
            end = strstr(sc->s + sc->i + 2, "*/");
            if (!end)
                sc->open_comment = sc->line;
            scan_blank(sc, end ? (size_t)(end - sc->s) + 2 : sc->len);
        } else if (c == '"' || c == '\'') {
            scan_quoted(sc);
            return TK_WORD;
        } else if (is_word_char(c)) {
            sc->tok = sc->s + sc->i;
            if (c == '$' && n == '{')
                scan_skip_to(sc, '}');
            else
                while (is_word_char(sc->s[sc->i]))
                    sc->i++;
            sc->toklen = (size_t)(sc->s + sc->i - sc->tok);
            return TK_WORD;
        } else {
            sc->i += (c == '+' && n == '=') ? 2 : 1;
            switch (c) {
            case '\n': sc->line++; break;
            case ' ': case '\t': case '\r': break;
            case '{': return TK_LBRACE;
            case '}': return TK_RBRACE;
            case '=': case '+': return n == '=' || c == '=' ? TK_EQ : TK_OTHER;
            default: return TK_OTHER;
            }
        }
    }
    return TK_EOF;
}

/* Open sections while scanning. */
struct scan_stack {
    char names[SCAN_DEPTH][NAME_MAX_SCAN];
    int lines[SCAN_DEPTH];
    int depth;
};

static void scan_push(struct loader *ld, struct scan_stack *st,
                      const char *name, int line)
{
    if (ld->nhdrs == ld->hdrcap) {
        ld->hdrcap = ld->hdrcap ? ld->hdrcap * 2 : 32;
        ld->hdrs = xrealloc(ld->hdrs, ld->hdrcap * sizeof *ld->hdrs);
    }
    struct hdr *h = &ld->hdrs[ld->nhdrs++];
    snprintf(h->name, sizeof h->name, "%s", name);
    snprintf(h->parent, sizeof h->parent, "%s", st->depth == 0 ? ""
             : st->depth <= SCAN_DEPTH ? st->names[st->depth - 1] : "?");
    h->line = line;
    if (st->depth < SCAN_DEPTH) {
        snprintf(st->names[st->depth], NAME_MAX_SCAN, "%s", name);
        st->lines[st->depth] = line;
    }
    st->depth++;
}

/* Blanks the comments of text in place and records every section header,
 * following libconfuse's grammar: NAME = VALUE | NAME = {LIST} |
 * NAME {SECTION} | NAME TITLE {SECTION}. */
static void scan_config(struct loader *ld, char *text, size_t len)
{
    enum { ST_NAME, ST_AFTER_NAME, ST_AFTER_TITLE, ST_VALUE, ST_LIST };
    struct scanner sc = {.s = text, .len = len, .line = 1};
    struct scan_stack st = {.depth = 0};
    char name[NAME_MAX_SCAN] = "";
    int state = ST_NAME, name_line = 0;
    enum tok t;
    while ((t = scan_next(&sc)) != TK_EOF) {
        switch (state) {
        case ST_NAME:
            if (t == TK_WORD) {
                snprintf(name, sizeof name, "%.*s", (int)sc.toklen, sc.tok);
                name_line = sc.tokline;
                state = ST_AFTER_NAME;
            } else if (t == TK_RBRACE && st.depth > 0) {
                st.depth--;
            }
            break;
        case ST_AFTER_NAME:
            state = t == TK_EQ ? ST_VALUE : t == TK_WORD ? ST_AFTER_TITLE : ST_NAME;
            if (t == TK_LBRACE)
                scan_push(ld, &st, name, name_line);
            break;
        case ST_AFTER_TITLE:
            if (t == TK_LBRACE)
                scan_push(ld, &st, name, name_line);
            state = ST_NAME;
            break;
        case ST_VALUE:
            state = t == TK_LBRACE ? ST_LIST : ST_NAME;
            break;
        case ST_LIST:
            if (t == TK_RBRACE)
                state = ST_NAME;
            break;
        }
    }
    if (sc.open_comment)
        fail(ld, sc.open_comment, "unterminated comment");
    if (st.depth > 0) {         /* libconfuse 3.3 accepts this: report later */
        int top = st.depth <= SCAN_DEPTH ? st.depth - 1 : SCAN_DEPTH - 1;
        ld->unclosed_line = st.lines[top];
        snprintf(ld->unclosed, sizeof ld->unclosed, "%s", st.names[top]);
    }
}

/* Line of the nth header `name` inside `parent` ("" = top), 0 if none. */
static int hdr_line(const struct loader *ld, const char *parent,
                    const char *name, size_t nth)
{
    for (size_t i = 0; i < ld->nhdrs; i++) {
        const struct hdr *h = &ld->hdrs[i];
        if (strcmp(h->name, name) == 0 && strcmp(h->parent, parent) == 0 &&
            nth-- == 0)
            return h->line;
    }
    return 0;
}

/* ---- conversion: global options, tls, listeners ---- */

static char *dup_opt(cfg_t *sec, const char *name)
{
    const char *s = cfg_getstr(sec, name);
    return s ? xstrdup(s) : NULL;
}

/* A string list copied (lower-cased when `lower`); *n gets its size. */
static char **dup_list(cfg_t *sec, const char *name, size_t *n, int lower)
{
    unsigned count = cfg_size(sec, name);
    char **v = xcalloc(count, sizeof *v);
    for (unsigned i = 0; i < count; i++) {
        v[i] = xstrdup(cfg_getnstr(sec, name, i));
        if (lower)
            util_lower(v[i]);
    }
    *n = count;
    return v;
}

static char *default_hostname(void)
{
    char buf[256];
    if (gethostname(buf, sizeof buf) < 0 || !buf[0])
        return xstrdup("localhost");
    buf[sizeof buf - 1] = 0;
    return xstrdup(buf);
}

static int load_globals(struct loader *ld, cfg_t *root)
{
    struct config *c = ld->c;
    c->hostname = dup_opt(root, "hostname");
    if (!c->hostname)
        c->hostname = default_hostname();
    c->spool = dup_opt(root, "spool");
    c->control = dup_opt(root, "control");
    c->user = dup_opt(root, "user");
    c->postmaster = dup_opt(root, "postmaster");
    if (!c->postmaster) {
        size_t n = strlen("postmaster@") + strlen(c->hostname) + 1;
        c->postmaster = xmalloc(n);
        snprintf(c->postmaster, n, "postmaster@%s", c->hostname);
    }
    c->dsn_return = (enum dsn_return)cfg_getint(root, "dsn_return");
    c->customer_map = dup_opt(root, "customer_map");
    c->maildir_root = dup_opt(root, "maildir_root");
    c->spool_spares = (enum spool_spares_conf)cfg_getint(root, "spool_spares");
    c->resolver = dup_opt(root, "resolver");
    c->resolver_timeout = cfg_getint(root, "resolver_timeout");
    c->resolver_tries = (unsigned)cfg_getint(root, "resolver_tries");
    return 0;
}

static int load_tls(struct loader *ld, cfg_t *root)
{
    cfg_t *sec = cfg_getsec(root, "tls");
    int line = hdr_line(ld, "", "tls", 0);
    const char *cert = cfg_getstr(sec, "certificate");
    const char *key = cfg_getstr(sec, "key");
    const char *protocols = cfg_getstr(sec, "protocols");
    char why[256];
    if (protocols && tls_protocols_parse(protocols, &ld->c->tls_min_version,
                                         &ld->c->tls_max_version, why, sizeof why) < 0)
        return fail(ld, line, "%s", why);
    ld->c->tls_ciphers = dup_opt(sec, "ciphers");
    ld->c->tls_ciphersuites = dup_opt(sec, "ciphersuites");
    if (!cert && !key) {
        /* a section for the delivery client's settings alone is fine */
        if (line > 0 && !protocols && !ld->c->tls_ciphers && !ld->c->tls_ciphersuites)
            return fail(ld, line, "tls section needs certificate and key");
        return 0;
    }
    if (!cert || !key)
        return fail(ld, line, "tls section has %s but no %s",
                    cert ? "certificate" : "key", cert ? "key" : "certificate");
    ld->c->tls_certificate = xstrdup(cert);
    ld->c->tls_key = xstrdup(key);
    return 0;
}

static int load_listener(struct loader *ld, cfg_t *root, size_t idx)
{
    const struct listener_def *def = &listener_defs[idx];
    struct listener_conf *l = (struct listener_conf *)((char *)ld->c + def->off);
    cfg_t *sec = cfg_getsec(root, def->name);
    int line = hdr_line(ld, "", def->name, 0);
    unsigned n = cfg_size(sec, "listen");
    l->present = line > 0 || n > 0;
    if (l->present && n == 0)
        return fail(ld, line, "%s section has no listen address", def->name);
    l->listen = xcalloc(n, sizeof *l->listen);
    l->nlisten = n;
    for (unsigned i = 0; i < n; i++) {
        struct listen_addr *la = &l->listen[i];
        const char *s = cfg_getnstr(sec, "listen", i);
        /* checked by the schema's callback already */
        if (util_parse_hostport(s, la->host, sizeof la->host, &la->port) < 0)
            return fail(ld, line, "bad listen address '%s'", s);
        snprintf(la->text, sizeof la->text, "%s", s);
    }
    return 0;
}

/* A bound on message data in memory must hold one message of the largest
 * size, or such a message could never be received. */
static int holds_a_message(struct loader *ld, cfg_t *sec, const char *name, uint64_t bound,
                           const struct smtp_conf *s)
{
    if (bound >= s->max_message_size)
        return 0;
    return fail(ld, sec ? sec->line : 0, "smtp: %s (%llu) is less than max_message_size "
                "(%llu): a message of the largest size could never be received", name,
                (unsigned long long)bound, (unsigned long long)s->max_message_size);
}

static int load_smtp_limits(struct loader *ld, cfg_t *root)
{
    cfg_t *sec = cfg_getsec(root, "smtp");
    struct smtp_conf *s = &ld->c->smtp;
    s->max_message_size = (uint64_t)cfg_getint(sec, "max_message_size");
    s->max_recipients = (unsigned)cfg_getint(sec, "max_recipients");
    s->max_connections = (unsigned)cfg_getint(sec, "max_connections");
    s->max_connections_per_client =
        (unsigned)cfg_getint(sec, "max_connections_per_client");
    s->max_bad_commands = (unsigned)cfg_getint(sec, "max_bad_commands");
    s->max_received_headers = (unsigned)cfg_getint(sec, "max_received_headers");
    s->header_size_limit = (uint64_t)cfg_getint(sec, "header_size_limit");
    s->line_length_limit = (uint64_t)cfg_getint(sec, "line_length_limit");
    s->max_data_in_memory = (uint64_t)cfg_getint(sec, "max_data_in_memory");
    s->max_data_in_memory_per_client =
        (uint64_t)cfg_getint(sec, "max_data_in_memory_per_client");
    s->timeout = cfg_getint(sec, "timeout");
    s->auth = cfg_getbool(sec, "auth");
    s->auth_cleartext = cfg_getbool(sec, "auth_cleartext");
    if (holds_a_message(ld, sec, "max_data_in_memory", s->max_data_in_memory, s) < 0)
        return -1;
    if (s->max_data_in_memory_per_client == 0) {    /* not set: a quarter, at least a message */
        s->max_data_in_memory_per_client = s->max_data_in_memory / 4;
        if (s->max_data_in_memory_per_client < s->max_message_size)
            s->max_data_in_memory_per_client = s->max_message_size;
    }
    return holds_a_message(ld, sec, "max_data_in_memory_per_client",
                           s->max_data_in_memory_per_client, s);
}

/* The options of the pop3 and pop3s sections (their listen addresses are
 * read by load_listener); pop3s serves TLS only, so it needs a tls section. */
static int load_pop3(struct loader *ld, cfg_t *root, const char *name, struct pop3_conf *p)
{
    cfg_t *sec = cfg_getsec(root, name);
    p->cleartext = cfg_getbool(sec, "cleartext");
    p->apop = cfg_getbool(sec, "apop");
    p->timeout = cfg_getint(sec, "timeout");
    p->max_connections = (unsigned)cfg_getint(sec, "max_connections");
    p->max_connections_per_client = (unsigned)cfg_getint(sec, "max_connections_per_client");
    if (!strcmp(name, "pop3s") && p->l.present && !ld->c->tls_certificate)
        return fail(ld, hdr_line(ld, "", name, 0), "pop3s section needs a tls section "
                    "(certificate and key)");
    return 0;
}

/* The submission and smtps sections' options, and the auth section.  smtps
 * serves TLS only, so it needs a tls section. */
static int load_submission(struct loader *ld, cfg_t *root)
{
    struct config *c = ld->c;
    cfg_t *a = cfg_getsec(root, "auth");
    c->submission.auth_cleartext = cfg_getbool(cfg_getsec(root, "submission"), "auth_cleartext");
    c->smtps.auth_cleartext = 0;
    cfg_t *o = cfg_getsec(root, "odmr");
    c->odmr.auth_cleartext = cfg_getbool(o, "auth_cleartext");
    c->odmr.max_connections = (unsigned)cfg_getint(o, "max_connections");
    c->odmr.max_connections_per_client = (unsigned)cfg_getint(o, "max_connections_per_client");
    c->auth.failure_delay = cfg_getint(a, "failure_delay");
    c->auth.failure_delay_max = cfg_getint(a, "failure_delay_max");
    c->auth.max_failures = (unsigned)cfg_getint(a, "max_failures");
    c->auth.failure_window = cfg_getint(a, "failure_window");
    if (c->smtps.l.present && !c->tls_certificate)
        return fail(ld, hdr_line(ld, "", "smtps", 0), "smtps section needs a tls section "
                    "(certificate and key)");
    return 0;
}

/* "ADDR" or "ADDR/LEN" (numeric, v4 or v6) into rc's family, net and
 * prefix, host bits cleared.  0 / -1. */
static int radius_client_parse(const char *title, struct radius_client *rc)
{
    struct netlist_net n;
    if (netlist_parse_one(title, &n) < 0)
        return -1;
    rc->family = n.family;
    memcpy(rc->net, n.net, sizeof rc->net);
    rc->prefix = n.prefix;
    return 0;
}

static int load_radius_clients(struct loader *ld, cfg_t *root)
{
    struct config *c = ld->c;
    cfg_t *sec = cfg_getsec(root, "radius");
    unsigned n = cfg_size(sec, "client");
    c->radius_clients = xcalloc(n, sizeof *c->radius_clients);
    c->nradius_clients = n;
    for (unsigned i = 0; i < n; i++) {
        cfg_t *cl = cfg_getnsec(sec, "client", i);
        struct radius_client *rc = &c->radius_clients[i];
        int line = hdr_line(ld, "radius", "client", i);
        rc->address = xstrdup(cfg_title(cl));
        if (radius_client_parse(rc->address, rc) < 0)
            return fail(ld, line, "radius client '%s' is not a numeric IP "
                        "address or ADDRESS/PREFIX-LENGTH", rc->address);
        for (unsigned j = 0; j < i; j++) {
            const struct radius_client *o = &c->radius_clients[j];
            if (o->family == rc->family && o->prefix == rc->prefix &&
                !memcmp(o->net, rc->net, sizeof rc->net))
                return fail(ld, line, "radius client '%s' is the same as '%s' "
                            "(line %d)", rc->address, o->address,
                            hdr_line(ld, "radius", "client", j));
        }
        rc->secret = dup_opt(cl, "secret");
        if (!rc->secret)
            return fail(ld, line, "radius client '%s' has no secret",
                        rc->address);
        if (strlen(rc->secret) > RADIUS_SECRET_MAX)
            return fail(ld, line, "radius client '%s': the secret is longer "
                        "than %d bytes", rc->address, RADIUS_SECRET_MAX);
    }
    return 0;
}

/* ---- customers ---- */

static int load_customer(struct loader *ld, cfg_t *sec, int line,
                         struct customer *cu)
{
    const char *bad;
    char why[512];
    cu->name = xstrdup(cfg_title(sec));
    cu->line = line;
    cu->origin = ld->c->path;
    if ((bad = config_check_customer_name(cu->name)) != NULL)
        return fail(ld, line, "bad customer name '%s': %s", cu->name, bad);
    cu->domains = dup_list(sec, "domains", &cu->ndomains, 1);
    cu->recipients = dup_list(sec, "recipients", &cu->nrecipients, 1);
    /* the same option table, defaults and whole-customer checks as the
     * customer map (config_schema.c) */
    if (config_customer_from_section(sec, cu, why, sizeof why) < 0 ||
        config_customer_check(cu, why, sizeof why) < 0)
        return fail(ld, line, "%s", why);
    return 0;
}

/* Puts key → cu into m; fails when another (or the same) customer has it. */
static int claim(struct loader *ld, struct hmap *m, const char *what,
                 const char *key, const struct customer *cu)
{
    const struct customer *prev = hmap_put(m, key, (void *)cu);
    if (!prev)
        return 0;
    if (prev == cu)
        return fail(ld, cu->line, "%s '%s' listed twice in customer '%s'",
                    what, key, cu->name);
    return fail(ld, cu->line, "%s '%s' of customer '%s' already belongs to "
                "customer '%s' (line %d)", what, key, cu->name, prev->name,
                prev->line);
}

static int check_customer_conflicts(struct loader *ld)
{
    struct hmap *domains = hmap_new(1), *users = hmap_new(1), *ifs = hmap_new(0);
    int rc = 0;
    for (size_t i = 0; i < ld->c->ncustomers && rc == 0; i++) {
        const struct customer *cu = &ld->c->customers[i];
        for (size_t j = 0; j < cu->ndomains && rc == 0; j++)
            rc = claim(ld, domains, "domain", cu->domains[j], cu);
        if (rc == 0 && cu->radius_user)
            rc = claim(ld, users, "radius_user", cu->radius_user, cu);
        if (rc == 0 && cu->interface)
            rc = claim(ld, ifs, "interface", cu->interface, cu);
    }
    hmap_free(domains);
    hmap_free(users);
    hmap_free(ifs);
    return rc;
}

static int load_customers(struct loader *ld, cfg_t *root)
{
    struct config *c = ld->c;
    unsigned n = cfg_size(root, "customer");
    c->customers = xcalloc(n, sizeof *c->customers);
    c->ncustomers = n;
    for (unsigned i = 0; i < n; i++) {
        if (load_customer(ld, cfg_getnsec(root, "customer", i),
                          hdr_line(ld, "", "customer", i), &c->customers[i]) < 0)
            return -1;
    }
    return check_customer_conflicts(ld);
}

/* ---- maildrops ---- */

static int load_maildrop(struct loader *ld, cfg_t *sec, int line,
                         struct maildrop_conf *md)
{
    const char *bad;
    md->address = util_lower(xstrdup(cfg_title(sec)));
    md->line = line;
    md->origin = ld->c->path;
    if (!strchr(md->address, '@'))
        return fail(ld, line, "maildrop address '%s' has no '@'", md->address);
    if ((bad = config_check_maildrop_address(md->address)) != NULL)
        return fail(ld, line, "bad maildrop address '%s': %s", md->address, bad);
    md->password = dup_opt(sec, "password");
    if (!md->password)
        return fail(ld, line, "maildrop '%s' has no password", md->address);
    md->mode = (enum maildrop_mode)cfg_getint(sec, "mode");
    md->keep_days = cfg_getint(sec, "keep_days");
    md->quota = (uint64_t)cfg_getint(sec, "quota");
    return 0;
}

/* A maildrop's domain is served by local delivery: a customer may not own
 * it (its mail would go two ways). */
static int maildrop_domain_free(struct loader *ld, struct hmap *owners,
                                const struct maildrop_conf *md)
{
    const char *domain = strrchr(md->address, '@') + 1;
    const struct customer *cu = hmap_get(owners, domain);
    if (!cu)
        return 0;
    return fail(ld, md->line, "maildrop '%s': its domain '%s' belongs to customer '%s' "
                "(line %d); a domain is either a customer's or served by maildrops "
                "(use deliver = \"maildrop\" for a customer's domain maildrop)",
                md->address, domain, cu->name, cu->line);
}

static int load_maildrops(struct loader *ld, cfg_t *root)
{
    struct config *c = ld->c;
    unsigned n = cfg_size(root, "maildrop");
    struct hmap *seen = hmap_new(1), *owners = hmap_new(1);
    int rc = 0;
    for (size_t i = 0; i < c->ncustomers; i++)
        for (size_t j = 0; j < c->customers[i].ndomains; j++)
            hmap_put(owners, c->customers[i].domains[j], &c->customers[i]);
    c->maildrops = xcalloc(n, sizeof *c->maildrops);
    c->nmaildrops = n;
    for (unsigned i = 0; i < n && rc == 0; i++) {
        int line = hdr_line(ld, "", "maildrop", i);
        struct maildrop_conf *md = &c->maildrops[i];
        rc = load_maildrop(ld, cfg_getnsec(root, "maildrop", i), line, md);
        if (rc == 0 && hmap_put(seen, md->address, md))
            rc = fail(ld, line, "maildrop '%s' defined twice", md->address);
        if (rc == 0)
            rc = maildrop_domain_free(ld, owners, md);
    }
    hmap_free(seen);
    hmap_free(owners);
    return rc;
}

/* ---- the public functions ---- */

static int build(struct loader *ld, cfg_t *root)
{
    if (load_globals(ld, root) < 0 || load_tls(ld, root) < 0)
        return -1;
    for (size_t i = 0; i < NLISTENERS; i++)
        if (load_listener(ld, root, i) < 0)
            return -1;
    cfg_t *nl = cfg_getsec(root, "netlink");
    ld->c->netlink_enabled = nl && cfg_getbool(nl, "enabled");
    if (load_smtp_limits(ld, root) < 0 || load_radius_clients(ld, root) < 0 ||
        load_pop3(ld, root, "pop3", &ld->c->pop3) < 0 ||
        load_pop3(ld, root, "pop3s", &ld->c->pop3s) < 0 || load_submission(ld, root) < 0 ||
        load_customers(ld, root) < 0 || load_maildrops(ld, root) < 0)
        return -1;
    return ld->failed ? -1 : 0;
}

struct config *config_load(const char *path, char *err, size_t errlen)
{
    struct loader ld = {.path = path, .err = err, .errlen = errlen};
    struct loader *saved = cur_loader;
    struct config *c = NULL;
    size_t len;
    char *text;
    cfg_t *root;

    if (err && errlen)
        err[0] = 0;
    if (!(text = read_text(&ld, &len)))
        return NULL;
    scan_config(&ld, text, len);
    if (ld.failed) {
        free(text);
        free(ld.hdrs);
        return NULL;
    }
    if (!(root = config_schema_new()))
        log_fatal("config: cannot initialise libconfuse");
    cur_loader = &ld;
    cfg_set_error_function(root, config_errfunc);
    if (cfg_parse_buf(root, text) != CFG_SUCCESS)
        fail(&ld, 0, "cannot parse");   /* only if libconfuse said nothing */
    else if (ld.unclosed_line)
        fail(&ld, ld.unclosed_line, "section '%s' is not closed (missing '}')",
             ld.unclosed);
    if (!ld.failed) {
        c = xcalloc(1, sizeof *c);
        c->path = xstrdup(path);
        ld.c = c;
        if (build(&ld, root) < 0) {
            config_free(c);
            c = NULL;
        }
    }
    cur_loader = saved;
    cfg_free(root);
    free(text);
    free(ld.hdrs);
    return c;
}

void config_free(struct config *c)
{
    if (!c)
        return;
    free(c->path);
    free(c->hostname);
    free(c->spool);
    free(c->control);
    free(c->user);
    free(c->postmaster);
    free(c->customer_map);
    free(c->maildir_root);
    free(c->resolver);
    hosts_free(c->hosts);
    free(c->tls_certificate);
    free(c->tls_key);
    free(c->tls_ciphers);
    free(c->tls_ciphersuites);
    for (size_t i = 0; i < NLISTENERS; i++)
        free(((struct listener_conf *)((char *)c + listener_defs[i].off))->listen);
    for (size_t i = 0; i < c->nradius_clients; i++) {
        free(c->radius_clients[i].address);
        free(c->radius_clients[i].secret);
    }
    free(c->radius_clients);
    for (size_t i = 0; i < c->ncustomers; i++)
        config_customer_free(&c->customers[i]);
    free(c->customers);
    for (size_t i = 0; i < c->nmaildrops; i++)
        config_maildrop_free(&c->maildrops[i]);
    free(c->maildrops);
    free(c);
}

void config_unserved(const struct config *c, char *buf, size_t len)
{
    size_t used = 0;
    if (!len)
        return;
    buf[0] = 0;
    for (size_t i = 0; i < NLISTENERS; i++) {
        const struct listener_conf *l = (const struct listener_conf *)
            ((const char *)c + listener_defs[i].off);
        if (listener_defs[i].served || !l->present)
            continue;
        int w = snprintf(buf + used, len - used, "%s%s", used ? ", " : "",
                         listener_defs[i].name);
        if (w < 0 || (size_t)w >= len - used) {
            buf[used] = 0;      /* no half names */
            return;
        }
        used += (size_t)w;
    }
}

/*
 * session — one SMTP server session (RFC 5321 with PIPELINING, SIZE,
 * 8BITMIME, ENHANCEDSTATUSCODES, STARTTLS).  Everything from the peer is
 * untrusted: command lines are bounded (SMTP_CMD_LINE_MAX), data goes
 * through the strict DATA decoder (only CR LF . CR LF ends it), every limit
 * of the smtp section is enforced with its proper reply.  Guarantees: a
 * message is acknowledged with 250 only after qmgr_submit() reported it
 * durable; recipients are accepted only in customer domains (plus
 * <postmaster>); after STARTTLS nothing received before the handshake is
 * used.  Commands are answered strictly in order; while a commit is pending
 * no further input is read.  Structure (OpenSMTPD's smtp_session.c): a
 * command table whose rows say what each command needs of the session and
 * in which states it may run, the table answering every refusal of those
 * kinds itself (smtp_command_refusal, pure), and one sess_enter_state()
 * through which every state change passes.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>

#include "core/addr.h"
#include "core/config.h"
#include "core/io.h"
#include "core/listener.h"
#include "core/log.h"
#include "core/registry.h"
#include "core/stats.h"
#include "core/util.h"
#include "queue/qmgr.h"
#include "smtp/smtp_etrn.h"
#include "spool/spool.h"
#include "smtp_int.h"

#define OUT_HIGH_WATER (256 * 1024)  /* stop reading while this much is unsent */

struct smtp_env smtp_env;

static void sess_process(struct smtp_sess *s);
static void sess_on_io(struct io *io, enum io_event ev, void *arg);

static const char *hostname(void)
{
    return smtp_env.cfg->hostname;
}

static void reply(struct smtp_sess *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void reply(struct smtp_sess *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    evbuffer_add_vprintf(s->out, fmt, ap);
    va_end(ap);
    evbuffer_add(s->out, "\r\n", 2);
}

/* ---- transaction state ---- */

static void txn_reset(struct smtp_sess *s)
{
    free(s->sender);
    s->sender = NULL;
    for (unsigned i = 0; i < s->nrcpt; i++) {
        free(s->rcpts[i].addr);
        free(s->rcpts[i].customer);
    }
    s->nrcpt = 0;
    s->declared_size = 0;
    s->id = 0;
    if (s->body)
        evbuffer_drain(s->body, evbuffer_get_length(s->body));
    smtp_mem_release(&s->mem);
    s->over_memory = SMTP_MEM_OK;
    if (s->incoming) {
        s->incoming = 0;
        qmgr_incoming(-1);
    }
}

static void sess_free(struct smtp_sess *s)
{
    txn_reset(s);
    free(s->rcpts);
    free(s->helo);
    smtp_auth_free(s);
    if (s->body)
        evbuffer_free(s->body);
    if (s->out)
        evbuffer_free(s->out);
    if (s->io)
        io_free(s->io);
    s->io = NULL;
    listener_conn_close(s->conn);       /* frees s */
}

static void sess_close(struct smtp_sess *s, const char *why)
{
    log_info("disconnect from %s%s%s ehlo=%u mail=%u rcpt=%u data=%u queued=%u commands=%u",
             s->peer, why ? " " : "", why ? why : "", s->helo ? 1 : 0,
             s->n_mail, s->n_rcpt, s->n_data, s->n_queued, s->n_cmds);
    if (s->state == SS_COMMIT) {
        s->dead = 1;        /* freed when the spool answers */
        io_free(s->io);
        s->io = NULL;
        return;
    }
    sess_free(s);
}

/* ---- states ---- */

static const char *const state_names[] = {
    [SS_INIT] = "INIT", [SS_HELO] = "HELO", [SS_MAIL] = "MAIL", [SS_RCPT] = "RCPT",
    [SS_DATA] = "DATA", [SS_COMMIT] = "COMMIT", [SS_TLS] = "TLS", [SS_CLOSING] = "CLOSING",
    [SS_AUTH] = "AUTH", [SS_AUTHCHECK] = "AUTHCHECK", [SS_TURNED] = "TURNED",
};

/* The states each state may go to.  INIT -> INIT is the session's start;
 * HELO and RCPT go to themselves on a second HELO/EHLO, RSET or RCPT. */
static const unsigned state_next[] = {
    [SS_INIT] = SS_BIT(SS_INIT) | SS_BIT(SS_HELO) | SS_BIT(SS_TLS) | SS_BIT(SS_CLOSING),
    [SS_HELO] = SS_BIT(SS_HELO) | SS_BIT(SS_MAIL) | SS_BIT(SS_TLS) | SS_BIT(SS_CLOSING) |
                SS_BIT(SS_AUTH) | SS_BIT(SS_AUTHCHECK) | SS_BIT(SS_TURNED),
    [SS_MAIL] = SS_BIT(SS_HELO) | SS_BIT(SS_RCPT) | SS_BIT(SS_CLOSING),
    [SS_RCPT] = SS_BIT(SS_HELO) | SS_BIT(SS_RCPT) | SS_BIT(SS_DATA) | SS_BIT(SS_CLOSING),
    [SS_DATA] = SS_BIT(SS_HELO) | SS_BIT(SS_COMMIT) | SS_BIT(SS_CLOSING),
    [SS_COMMIT] = SS_BIT(SS_HELO),
    [SS_TLS] = SS_BIT(SS_INIT) | SS_BIT(SS_CLOSING),
    [SS_CLOSING] = 0,
    [SS_AUTH] = SS_BIT(SS_HELO) | SS_BIT(SS_AUTHCHECK) | SS_BIT(SS_CLOSING),
    [SS_AUTHCHECK] = SS_BIT(SS_HELO) | SS_BIT(SS_CLOSING),
    [SS_TURNED] = 0,
};

/* The one place a session changes state.  Entering INIT (the start, or
 * after the TLS handshake) forgets HELO/EHLO, any transaction and any
 * authentication (RFC 3207: nothing from before TLS counts); entering
 * HELO ends any transaction; entering TLS or CLOSING stops reading input
 * (nothing more is read in plaintext; a final reply is queued, and
 * IO_DRAINED then closes the session). */
static void sess_enter_state(struct smtp_sess *s, enum smtp_state st)
{
    if (!(state_next[s->state] & SS_BIT(st)))
        log_fatal("smtp: session from %s: no move from state %s to %s", s->peer,
                  state_names[s->state], state_names[st]);
    log_debug("smtp: session from %s: %s -> %s", s->peer, state_names[s->state],
              state_names[st]);
    s->state = st;
    switch (st) {
    case SS_INIT:
        txn_reset(s);
        free(s->helo);
        s->helo = NULL;
        smtp_auth_free(s);
        break;
    case SS_HELO:
        txn_reset(s);
        break;
    case SS_TLS:
    case SS_CLOSING:
        io_pause(s->io);
        break;
    default:
        break;
    }
}

/* Queue a final reply and close once it is written. */
static void sess_finish(struct smtp_sess *s)
{
    sess_enter_state(s, SS_CLOSING);
    /* a reply is always queued before this: IO_DRAINED closes the session */
}

static void bad_command(struct smtp_sess *s)
{
    if (++s->bad > smtp_env.cfg->smtp.max_bad_commands) {
        reply(s, "421 4.7.0 %s Error: too many errors", hostname());
        log_warn("too many errors from %s", s->peer);
        sess_finish(s);
    }
}

/* ---- commands ---- */

/* HELO and EHLO, their argument checked (check_helo, check_ehlo). */
static void cmd_helo(struct smtp_sess *s, const char *arg, size_t len, int esmtp)
{
    free(s->helo);
    const char *sp = memchr(arg, ' ', len);
    s->helo = xstrndup(arg, sp ? (size_t)(sp - arg) : len);
    s->esmtp = esmtp;
    sess_enter_state(s, SS_HELO);          /* ends any transaction */
    if (esmtp && s->odmr) {
        smtp_odmr_ehlo(s);
        return;
    }
    if (!esmtp) {
        reply(s, "250 %s", hostname());
        return;
    }
    reply(s, "250-%s", hostname());
    reply(s, "250-PIPELINING");
    reply(s, "250-SIZE %llu", (unsigned long long)smtp_env.cfg->smtp.max_message_size);
    if (smtp_env.tls && !io_is_tls(s->io))
        reply(s, "250-STARTTLS");
    if (smtp_auth_offered(s))
        reply(s, "250-AUTH PLAIN LOGIN CRAM-MD5");
    reply(s, "250-ETRN");
    reply(s, "250-ENHANCEDSTATUSCODES");
    reply(s, "250 8BITMIME");
}

/* Parses the path of MAIL (is_rcpt 0) or RCPT (1); on error replies and
 * returns -1. */
static int parse_path(struct smtp_sess *s, const char *arg, size_t len, int is_rcpt,
                      struct smtp_mailbox *mb, struct smtp_params *p)
{
    const char *what = is_rcpt ? "5.1.3 Recipient" : "5.1.7 Sender";
    switch (smtp_parse_path(arg, len, is_rcpt ? "TO" : "FROM", is_rcpt, mb, p)) {
    case SMTP_PATH_OK:
        if (!p->has_auth || smtp_auth_offered(s))
            return 0;           /* AUTH= where AUTH is offered: accepted, unused */
        reply(s, "555 5.5.4 Unsupported option or bad parameter");
        break;
    case SMTP_PATH_PARAM:
        reply(s, "555 5.5.4 Unsupported option or bad parameter");
        break;
    case SMTP_PATH_TOO_LONG:
        reply(s, "501 %s address too long", what);
        break;
    default:
        reply(s, "501 %s address syntax error", what);
        break;
    }
    bad_command(s);
    return -1;
}


static void cmd_mail(struct smtp_sess *s, const char *arg, size_t len)
{
    struct smtp_mailbox mb;
    struct smtp_params p;
    char wire[ADDR_WIRE_MAX + 1] = "";
    if (parse_path(s, arg, len, 0, &mb, &p) < 0)
        return;
    if (!mb.null && addr_format(mb.local, mb.domain, wire, sizeof wire) < 0) {
        reply(s, "501 5.1.7 Sender address syntax error");
        bad_command(s);
        return;
    }
    if (!mb.null && s->authenticated && !smtp_auth_sender_ok(s, mb.local, mb.domain)) {
        char text[1100];
        log_info("NOQUEUE: reject: MAIL from unknown[%s]: 553 5.7.1 <%s>: Sender address "
                 "rejected: not owned by user %s", s->peer, smtp_log_safe(text, sizeof text, wire,
                 strlen(wire)), s->auth_user);
        reply(s, "553 5.7.1 <%s>: Sender address rejected: not owned by user %s", wire,
              s->auth_user);
        return;
    }
    uint64_t max = smtp_env.cfg->smtp.max_message_size;
    if (p.has_size && max && p.size > max) {
        reply(s, "552 5.3.4 Message size exceeds fixed limit");
        return;
    }
    s->declared_size = p.has_size ? p.size : 0;
    s->sender = xstrdup(wire);         /* the wire form: quoted again if need be */
    sess_enter_state(s, SS_MAIL);
    s->n_mail++;
    reply(s, "250 2.1.0 Ok");
}

static int rcpt_add(struct smtp_sess *s, const char *addr, uint8_t flags,
                    const char *customer)
{
    for (unsigned i = 0; i < s->nrcpt; i++)
        if (!strcasecmp(s->rcpts[i].addr, addr))
            return 0;       /* duplicate: accepted once */
    if (s->nrcpt == s->rcpt_cap) {
        s->rcpt_cap = s->rcpt_cap ? s->rcpt_cap * 2 : 8;
        s->rcpts = xrealloc(s->rcpts, s->rcpt_cap * sizeof *s->rcpts);
    }
    s->rcpts[s->nrcpt].addr = xstrdup(addr);
    s->rcpts[s->nrcpt].flags = flags;
    s->rcpts[s->nrcpt].customer = customer ? xstrdup(customer) : NULL;
    s->nrcpt++;
    return 0;
}

/* The bytes a message of size bytes takes from customer c's quota once
 * recipient addr is accepted too: a domain maildrop (deliver = "maildrop")
 * stores one copy per recipient of c (addr repeated adds none: rcpt_add
 * keeps it once), anything else one copy. */
static uint64_t quota_bytes(const struct smtp_sess *s, const struct customer *c,
                            const char *addr, uint64_t size)
{
    uint64_t copies = 0;
    int repeated = 0;
    if (c->deliver != DELIVER_MAILDROP)
        return size;
    for (unsigned i = 0; i < s->nrcpt; i++) {
        if (s->rcpts[i].customer && strcmp(s->rcpts[i].customer, c->name) == 0)
            copies++;
        if (!strcasecmp(s->rcpts[i].addr, addr))
            repeated = 1;
    }
    if (!repeated)
        copies++;
    if (copies <= 1)
        return size;
    return size > UINT64_MAX / copies ? UINT64_MAX : size * copies;
}

/* Decides a parsed recipient: 0 accepted (reply sent), -1 refused (reply sent).
 * The address is kept (and echoed) in its wire form, quoted again if need be. */
static int rcpt_decide(struct smtp_sess *s, const struct smtp_mailbox *mb)
{
    const struct config *cfg = smtp_env.cfg;
    char addr[ADDR_WIRE_MAX + 1];
    if (mb->postmaster) {
        const char *at = strrchr(cfg->postmaster, '@');
        const struct customer *c = at ? registry_by_domain(smtp_env.reg, at + 1) : NULL;
        rcpt_add(s, addr_canon(cfg->postmaster, addr, sizeof addr) < 0 ? cfg->postmaster : addr,
                 c ? 0 : SPOOL_RCPT_OUTBOUND, c ? c->name : NULL);
        reply(s, "250 2.1.5 Ok");
        return 0;
    }
    if (addr_format(mb->local, mb->domain, addr, sizeof addr) < 0) {
        reply(s, "501 5.1.3 Recipient address syntax error");
        return -1;
    }
    if (mb->literal || smtp_local_is_routing(mb)) {
        reply(s, "550 5.7.1 <%s>: Relay access denied", addr);
        return -1;
    }
    const struct customer *c = registry_by_domain(smtp_env.reg, mb->domain);
    if (!c && !s->authenticated) {
        reply(s, "550 5.7.1 <%s>: Relay access denied", addr);
        return -1;
    }
    if (!c && s->nrcpt < cfg->smtp.max_recipients) {
        rcpt_add(s, addr, SPOOL_RCPT_OUTBOUND, NULL);   /* relayed: the outbound queue */
        reply(s, "250 2.1.5 Ok");
        return 0;
    }
    if (!c) {
        reply(s, "452 4.5.3 Error: too many recipients");
        return -1;
    }
    if (!registry_accepts_local(c, mb->local)) {
        reply(s, "550 5.1.1 <%s>: Recipient address rejected: User unknown", addr);
        return -1;
    }
    if (s->nrcpt >= cfg->smtp.max_recipients) {
        reply(s, "452 4.5.3 Error: too many recipients");
        return -1;
    }
    int over = qmgr_quota_check_rcpt(c, addr, quota_bytes(s, c, addr, s->declared_size));
    if (over < 0) {
        reply(s, "452 4.2.2 <%s>: Mailbox full: %s over quota", addr,
              over == -2 ? "maildrop" : "customer");
        return -1;
    }
    rcpt_add(s, addr, 0, c->name);
    reply(s, "250 2.1.5 Ok");
    return 0;
}

static void cmd_rcpt(struct smtp_sess *s, const char *arg, size_t len)
{
    struct smtp_mailbox mb;
    struct smtp_params p;
    size_t mark = evbuffer_get_length(s->out);
    if (parse_path(s, arg, len, 1, &mb, &p) < 0) {
        smtp_log_rcpt_reject(s, NULL, mark);
        return;
    }
    if (rcpt_decide(s, &mb) == 0) {
        sess_enter_state(s, SS_RCPT);
        s->n_rcpt++;
    } else {
        smtp_log_rcpt_reject(s, &mb, mark);
        stats_add(ST_REJECTED, 1);
    }
}

static void cmd_data(struct smtp_sess *s, const char *arg, size_t len)
{
    const struct smtp_conf *sc = &smtp_env.cfg->smtp;
    if (s->nrcpt == 0) {               /* still in SS_MAIL */
        reply(s, "554 5.5.1 Error: no valid recipients");
        return;
    }
    if (len) {
        reply(s, "501 5.5.4 Syntax: DATA");
        bad_command(s);
        return;
    }
    if (!s->body)
        s->body = evbuffer_new();
    s->id = qmgr_new_id();
    smtp_add_received(s);
    smtp_data_init(&s->data, sc->max_message_size, sc->line_length_limit,
                   sc->header_size_limit, sc->max_received_headers);
    sess_enter_state(s, SS_DATA);
    s->n_data++;
    s->incoming = 1;
    qmgr_incoming(1);
    reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

static void cmd_rset(struct smtp_sess *s, const char *arg, size_t len)
{
    if (s->state != SS_INIT)
        sess_enter_state(s, SS_HELO);  /* ends any transaction (none in INIT) */
    reply(s, "250 2.0.0 Ok");
}

static void cmd_starttls(struct smtp_sess *s, const char *arg, size_t len)
{
    reply(s, "220 2.0.0 Ready to start TLS");
    sess_enter_state(s, SS_TLS);   /* nothing more is read in plaintext */
}

/* Called when the 220 for STARTTLS has been written out. */
static void sess_tls_switch(struct smtp_sess *s)
{
    long dropped = io_starttls_server(s->io, smtp_env.tls);
    if (dropped < 0) {
        log_warn("STARTTLS setup failed for %s", s->peer);
        sess_close(s, "starttls=failed");
        return;
    }
    if (dropped > 0)
        log_warn("%s: discarded %ld bytes received in plaintext after STARTTLS",
                 s->peer, dropped);
    sess_enter_state(s, SS_INIT);  /* forgets HELO/EHLO and any transaction */
    io_resume(s->io);
}

static void cmd_ehlo(struct smtp_sess *s, const char *a, size_t n) { cmd_helo(s, a, n, 1); }
static void cmd_helo0(struct smtp_sess *s, const char *a, size_t n) { cmd_helo(s, a, n, 0); }
static void cmd_noop(struct smtp_sess *s, const char *a, size_t n) { reply(s, "250 2.0.0 Ok"); }
static void cmd_vrfy(struct smtp_sess *s, const char *a, size_t n)
{
    reply(s, "252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery");
}
static void cmd_help(struct smtp_sess *s, const char *a, size_t n)
{
    reply(s, "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP ETRN%s",
          smtp_env.tls ? " STARTTLS" : "");
}
static void cmd_quit(struct smtp_sess *s, const char *a, size_t n)
{
    reply(s, "221 2.0.0 Bye");
    sess_finish(s);
}
static void cmd_etrn(struct smtp_sess *s, const char *a, size_t n)
{
    char out[512];
    int code = smtp_etrn(smtp_env.reg, a, n, out, sizeof out);
    log_info("ETRN %.*s from %s: %s", (int)(n > 100 ? 100 : n), a, s->peer, out);
    reply(s, "%s", out);
    if (code == 501)
        bad_command(s);
}

/* ---- the command table ---- */

static const struct smtp_refusal *check_helo(const char *arg, size_t len)
{
    static const struct smtp_refusal r = { "501 Syntax: HELO hostname", 1 };
    return smtp_parse_helo(arg, len) < 0 ? &r : NULL;
}

static const struct smtp_refusal *check_ehlo(const char *arg, size_t len)
{
    static const struct smtp_refusal r = { "501 Syntax: EHLO hostname", 1 };
    return smtp_parse_helo(arg, len) < 0 ? &r : NULL;
}

static const struct smtp_refusal *check_starttls(const char *arg, size_t len)
{
    static const struct smtp_refusal r = { "501 5.5.4 Syntax: STARTTLS", 0 };
    return len ? &r : NULL;
}

static const struct smtp_refusal *check_auth(const char *arg, size_t len)
{
    static const struct smtp_refusal r = { "501 5.5.4 Syntax: AUTH mechanism", 1 };
    return len ? NULL : &r;
}

#define IN_TXN  { "503 5.5.1 Error: MAIL transaction in progress", 1 }

static const struct smtp_command commands[] = {
    { SMTP_V_EHLO, "EHLO", 0, check_ehlo, SS_COMMANDS, { 0 }, cmd_ehlo },
    { SMTP_V_HELO, "HELO", 0, check_helo, SS_COMMANDS, { 0 }, cmd_helo0 },
    { SMTP_V_MAIL, "MAIL", SMTP_NEED_SMTP | SMTP_NEED_HELO | SMTP_NEED_TLS | SMTP_NEED_AUTH, NULL,
      SS_BIT(SS_HELO), { "503 5.5.1 Error: nested MAIL command", 1 }, cmd_mail },
    { SMTP_V_RCPT, "RCPT", SMTP_NEED_SMTP, NULL, SS_BIT(SS_MAIL) | SS_BIT(SS_RCPT),
      { "503 5.5.1 Error: need MAIL command", 1 }, cmd_rcpt },
    { SMTP_V_DATA, "DATA", SMTP_NEED_SMTP, NULL, SS_BIT(SS_MAIL) | SS_BIT(SS_RCPT),
      { "503 5.5.1 Error: need RCPT command", 1 }, cmd_data },
    { SMTP_V_RSET, "RSET", 0, NULL, SS_COMMANDS, { 0 }, cmd_rset },
    { SMTP_V_NOOP, "NOOP", 0, NULL, SS_COMMANDS, { 0 }, cmd_noop },
    { SMTP_V_QUIT, "QUIT", 0, NULL, SS_COMMANDS, { 0 }, cmd_quit },
    { SMTP_V_VRFY, "VRFY", SMTP_NEED_SMTP, NULL, SS_COMMANDS, { 0 }, cmd_vrfy },
    { SMTP_V_HELP, "HELP", 0, NULL, SS_COMMANDS, { 0 }, cmd_help },
    /* as Postfix: inside a transaction STARTTLS is refused and the
     * transaction stays; RSET (or its end) first */
    { SMTP_V_STARTTLS, "STARTTLS", SMTP_NEED_TLS_AVAIL | SMTP_NEED_PLAIN, check_starttls,
      SS_BIT(SS_INIT) | SS_BIT(SS_HELO), IN_TXN, cmd_starttls },
    { SMTP_V_ETRN, "ETRN", SMTP_NEED_SMTP | SMTP_NEED_HELO, NULL, SS_BIT(SS_HELO), IN_TXN, cmd_etrn },
    { SMTP_V_EXPN, "EXPN", 0, NULL, 0, { 0 }, NULL },
    { SMTP_V_AUTH, "AUTH", SMTP_NEED_HELO, check_auth, SS_BIT(SS_HELO), IN_TXN, smtp_cmd_auth },
    { SMTP_V_BDAT, "BDAT", 0, NULL, 0, { 0 }, NULL },
    { SMTP_V_ATRN, "ATRN", SMTP_NEED_ODMR | SMTP_NEED_HELO | SMTP_NEED_AUTH, NULL,
      SS_BIT(SS_HELO), IN_TXN, smtp_cmd_atrn },
};

/* The replies of the needs, in the order they are checked. */
static const struct {
    unsigned need;
    struct smtp_refusal refusal;
} need_refusals[] = {
    { SMTP_NEED_SMTP, { "502 5.5.1 Error: command not implemented", 1 } },
    { SMTP_NEED_ODMR, { "502 5.5.1 Error: command not implemented", 1 } },
    { SMTP_NEED_TLS_AVAIL, { "502 5.5.1 Error: command not implemented", 1 } },
    { SMTP_NEED_PLAIN, { "554 5.5.1 Error: TLS already active", 0 } },
    { SMTP_NEED_HELO, { "503 5.5.1 Error: send HELO/EHLO first", 1 } },
    { SMTP_NEED_TLS, { "530 5.7.0 Must issue a STARTTLS command first", 1 } },
    { SMTP_NEED_AUTH, { "530 5.7.0 Authentication required", 1 } },
};

const struct smtp_command *smtp_command_find(enum smtp_verb verb)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (commands[i].verb == verb)
            return &commands[i];
    return NULL;
}

const struct smtp_refusal *smtp_command_refusal(const struct smtp_command *c, unsigned met,
                                                enum smtp_state st, const char *arg,
                                                size_t len)
{
    static const struct smtp_refusal unimpl = { "502 5.5.1 Error: command not implemented", 1 };
    if (!(SS_BIT(st) & SS_COMMANDS))
        log_fatal("smtp: a command looked up in state %s", state_names[st]);
    if (!c || !c->proceed)
        return &unimpl;
    for (size_t i = 0; i < sizeof need_refusals / sizeof need_refusals[0]; i++)
        if ((c->needs & need_refusals[i].need) && !(met & need_refusals[i].need))
            return &need_refusals[i].refusal;
    const struct smtp_refusal *r = c->check ? c->check(arg, len) : NULL;
    if (r)
        return r;
    if (!(c->states & SS_BIT(st)))
        return &c->wrong_state;
    return NULL;
}

/* The needs (SMTP_NEED_*) the session meets now; SMTP_NEED_TLS and
 * SMTP_NEED_AUTH also where its listener does not require them. */
static unsigned sess_met(const struct smtp_sess *s)
{
    int tls = io_is_tls(s->io);
    unsigned met = 0;
    if (smtp_env.tls)
        met |= SMTP_NEED_TLS_AVAIL;
    if (!tls)
        met |= SMTP_NEED_PLAIN;
    if (s->helo)
        met |= SMTP_NEED_HELO;
    if (tls || !(s->require & SMTP_NEED_TLS))
        met |= SMTP_NEED_TLS;
    if (s->authenticated || !(s->require & SMTP_NEED_AUTH))
        met |= SMTP_NEED_AUTH;
    return met | (s->odmr ? SMTP_NEED_ODMR : SMTP_NEED_SMTP);
}

static void sess_command(struct smtp_sess *s, const char *line, size_t len)
{
    struct smtp_cmd cmd;
    s->n_cmds++;
    if (smtp_parse_command(line, len, &cmd) < 0 || cmd.verb == SMTP_V_UNKNOWN) {
        reply(s, "500 5.5.2 Error: command not recognized");
        bad_command(s);
        return;
    }
    const struct smtp_command *c = smtp_command_find(cmd.verb);
    const struct smtp_refusal *r = smtp_command_refusal(c, sess_met(s), s->state,
                                                        cmd.arg, cmd.arglen);
    if (r) {
        reply(s, "%s", r->reply);
        if (r->bad)
            bad_command(s);
        return;
    }
    c->proceed(s, cmd.arg, cmd.arglen);
}

/* ---- message data and commit ---- */

/* Message data is held in memory until the final dot (then the spool
 * writes it); max_data_in_memory bounds what all sessions hold together,
 * max_data_in_memory_per_client what the sessions of one client address
 * hold.  A message that would go over either is discarded as it arrives
 * and refused with a 4xx at its end: the sender tries again later. */
static void emit_body(void *arg, const char *p, size_t n)
{
    struct smtp_sess *s = arg;
    const struct smtp_conf *sc = &smtp_env.cfg->smtp;
    if (s->over_memory)
        return;
    s->over_memory = smtp_mem_take(&s->mem, n, sc->max_data_in_memory,
                                   sc->max_data_in_memory_per_client);
    if (s->over_memory) {
        evbuffer_drain(s->body, evbuffer_get_length(s->body));
        smtp_mem_release(&s->mem);
        return;
    }
    evbuffer_add(s->body, p, n);
}

static void data_refuse(struct smtp_sess *s)
{
    static const char *const msgs[] = {
        [SMTP_DATA_BARE_NL] = "550 5.5.2 Error: bare <CR> or <LF> received",
        [SMTP_DATA_NUL] = "550 5.6.0 Error: message contains NUL characters",
        [SMTP_DATA_TOO_BIG] = "552 5.3.4 Error: message file too big",
        [SMTP_DATA_LINE_TOO_LONG] = "552 5.3.4 Error: line too long",
        [SMTP_DATA_HEADER_TOO_BIG] = "552 5.3.4 Error: message header size exceeds limit",
        [SMTP_DATA_LOOP] = "554 5.4.6 Error: too many hops (mail loop)",
    };
    log_warn("reject: message from %s from=<%s>: %s", s->peer, s->sender,
             msgs[s->data.err] + 10);
    stats_add(ST_REJECTED, 1);
    reply(s, "%s", msgs[s->data.err]);
    sess_enter_state(s, SS_HELO);
}

static void commit_done(int err, void *arg)
{
    struct smtp_sess *s = arg;
    char idstr[QUEUE_ID_LEN + 1];
    qmgr_id_str(s->id, idstr);
    if (err)
        log_err("%s: cannot store message from %s: %s", idstr, s->peer, strerror(err));
    else
        log_info("%s: client=%s%s%s%s%s, from=<%s>, size=%llu, nrcpt=%u (queued)", idstr,
                 s->peer, s->authenticated ? ", sasl_method=" : "",
                 s->authenticated ? s->auth_method : "",
                 s->authenticated ? ", sasl_username=" : "",
                 s->authenticated ? s->auth_user : "",
                 s->sender, (unsigned long long)s->stored_size, s->nrcpt);
    if (s->dead) {
        sess_free(s);
        return;
    }
    if (!err) {
        reply(s, "250 2.0.0 Ok: queued as %s", idstr);
        s->n_queued++;
        stats_add(ST_ACCEPTED, 1);
    } else if (err == ENOSPC || err == EDQUOT) {
        reply(s, "452 4.3.1 Insufficient system storage");
    } else {
        reply(s, "451 4.3.0 Error: queue file write error");
    }
    sess_enter_state(s, SS_HELO);
    if (smtp_env.stopping) {
        smtp_sess_shutdown(s);
        return;
    }
    sess_process(s);
}

/* 0, or what is over quota for a message of size bytes: -1 a customer,
 * -2 a maildrop.  (A domain maildrop's copies were counted at RCPT, with
 * the SIZE declared: here each customer is checked for one copy, so that a
 * message accepted recipient by recipient is not refused whole for the
 * few bytes the declared SIZE left out.) */
static int customers_over_quota(struct smtp_sess *s, uint64_t size)
{
    for (unsigned i = 0; i < s->nrcpt; i++) {
        const struct customer *c;
        int over;
        if (!s->rcpts[i].customer)
            continue;
        c = registry_by_name(smtp_env.reg, s->rcpts[i].customer);
        if (c && (over = qmgr_quota_check_rcpt(c, s->rcpts[i].addr, size)) < 0)
            return over;
    }
    return 0;
}

static void data_end(struct smtp_sess *s)
{
    if (s->incoming) {          /* arrived: no longer a reason to wait */
        s->incoming = 0;
        qmgr_incoming(-1);
    }
    if (s->data.err) {
        data_refuse(s);
        return;
    }
    if (s->over_memory) {
        int all = s->over_memory == SMTP_MEM_OVER_ALL;
        const struct smtp_conf *sc = &smtp_env.cfg->smtp;
        log_warn("reject: message from %s from=<%s>: messages being received %suse "
                 "%s (%llu bytes); try again later", s->peer, s->sender,
                 all ? "" : "from this client ",
                 all ? "max_data_in_memory" : "max_data_in_memory_per_client",
                 (unsigned long long)(all ? sc->max_data_in_memory
                                          : sc->max_data_in_memory_per_client));
        stats_add(ST_REJECTED, 1);
        reply(s, "452 4.3.1 Insufficient system resources, try again later");
        sess_enter_state(s, SS_HELO);
        return;
    }
    size_t size = evbuffer_get_length(s->body);
    int over = customers_over_quota(s, size);
    if (over < 0) {
        reply(s, "452 4.2.2 Error: %s over quota", over == -2 ? "maildrop" : "customer");
        sess_enter_state(s, SS_HELO);
        return;
    }
    struct spool_rcpt *rc = xcalloc(s->nrcpt, sizeof *rc);
    for (unsigned i = 0; i < s->nrcpt; i++) {
        rc[i].addr = s->rcpts[i].addr;
        rc[i].flags = s->rcpts[i].flags;
    }
    struct spool_env env = {
        .id = s->id, .arrival = (int64_t)time(NULL), .sender = s->sender,
        .nrcpt = s->nrcpt, .rcpts = rc,
    };
    sess_enter_state(s, SS_COMMIT);
    s->stored_size = size;              /* as list shows it: Received: included */
    qmgr_submit(&env, s->body, commit_done, s);
    free(rc);
}

/* Feeds buffered input to the DATA decoder. */
static void sess_data(struct smtp_sess *s)
{
    struct evbuffer *in = io_in(s->io);
    while (s->state == SS_DATA && evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v;
        int done = 0;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            break;
        size_t used = smtp_data_feed(&s->data, v.iov_base, v.iov_len, emit_body, s, &done);
        evbuffer_drain(in, used);
        if (done)
            data_end(s);
    }
}

/* ---- input ---- */

/* Reads one command line; 1 when one was handled, 0 when more input is needed. */
static int sess_line(struct smtp_sess *s)
{
    struct evbuffer *in = io_in(s->io);
    size_t avail = evbuffer_get_length(in);
    struct evbuffer_ptr eol = evbuffer_search(in, "\n", 1, NULL);
    if (eol.pos < 0) {
        if (avail > SMTP_CMD_LINE_MAX + 2) {
            evbuffer_drain(in, avail);
            if (!s->skipping) {
                reply(s, "500 5.5.2 Error: line too long");
                bad_command(s);
            }
            s->skipping = 1;
        }
        return 0;
    }
    size_t n = (size_t)eol.pos + 1;
    if (s->skipping || n > SMTP_CMD_LINE_MAX + 2) {
        evbuffer_drain(in, n);
        if (!s->skipping) {
            reply(s, "500 5.5.2 Error: line too long");
            bad_command(s);
        }
        s->skipping = 0;
        return 1;
    }
    char *line = (char *)evbuffer_pullup(in, (ssize_t)n);
    if (smtp_line_is_clean(line, n) < 0) {
        evbuffer_drain(in, n);
        reply(s, "521 5.5.2 %s Error: bare <CR> or <LF> received", hostname());
        log_warn("bare CR or LF in a command from %s", s->peer);
        sess_finish(s);
        return 0;
    }
    char *copy = xstrndup(line, n - 2);
    evbuffer_drain(in, n);
    if (s->state == SS_AUTH) {
        smtp_auth_response(s, copy, n - 2);    /* may hold a password */
        explicit_bzero(copy, n - 2);
    } else {
        sess_command(s, copy, n - 2);
    }
    free(copy);
    return 1;
}

/* Hands the queued replies to the io layer; when they all went out at once,
 * acts on the drain now (close, STARTTLS switch, resume).  May free s: call
 * it last. */
static void sess_flush(struct smtp_sess *s)
{
    if (!s->io)
        return;
    if (s->state == SS_CLOSING && io_cannot_send(s->io)) {
        sess_close(s, s->close_why);    /* no more goes out after a TLS end */
        return;
    }
    if (evbuffer_get_length(s->out) == 0) {
        if (s->state == SS_CLOSING && io_out_pending(s->io) == 0)
            sess_close(s, s->close_why);
        return;
    }
    if (io_send(s->io, s->out))
        sess_on_io(s->io, IO_DRAINED, s);
}

static void sess_process(struct smtp_sess *s)
{
    for (;;) {
        if (s->state == SS_DATA) {
            sess_data(s);
            if (s->state == SS_DATA)
                break;
            continue;
        }
        if (s->state == SS_COMMIT || s->state == SS_TLS || s->state == SS_CLOSING ||
            s->state == SS_AUTHCHECK || s->state == SS_TURNED)
            break;
        if (!sess_line(s))
            break;
    }
    if (!s->io)
        return;
    if (s->eof && s->state != SS_COMMIT && s->state != SS_CLOSING)
        sess_finish(s);     /* peer half-closed: answer what it sent, then close */
    /* backpressure: a peer that does not read its replies stops being read */
    if (s->state != SS_TLS && s->state != SS_CLOSING && !s->paused) {
        if (io_out_pending(s->io) + evbuffer_get_length(s->out) > OUT_HIGH_WATER) {
            io_pause(s->io);
            s->paused = 1;
        }
    }
    sess_flush(s);
}

static void sess_on_io(struct io *io, enum io_event ev, void *arg)
{
    struct smtp_sess *s = arg;
    switch (ev) {
    case IO_READ:
        sess_process(s);
        break;
    case IO_DRAINED:
        if (s->state == SS_CLOSING) {
            sess_close(s, s->close_why);
        } else if (s->state == SS_TLS) {
            sess_tls_switch(s);
        } else if (s->paused) {
            s->paused = 0;
            io_resume(s->io);
            sess_process(s);
        }
        break;
    case IO_TLS_DONE: {
        char buf[128];
        log_info("TLS established with %s: %s", s->peer, io_tls_info(io, buf, sizeof buf));
        break;
    }
    case IO_TIMEOUT:
        if (s->state == SS_COMMIT || s->state == SS_AUTHCHECK)
            break;
        if (s->state == SS_CLOSING) {
            sess_close(s, "timeout");
            break;
        }
        reply(s, "421 4.4.2 %s Error: timeout exceeded", hostname());
        log_info("timeout after %s from %s", s->state == SS_DATA ? "DATA" : "command",
                 s->peer);
        sess_finish(s);
        sess_flush(s);
        break;
    case IO_EOF:
        if (s->state == SS_COMMIT) {
            s->eof = 1;
            break;
        }
        s->close_why = s->state == SS_DATA ? "lost connection after DATA" : NULL;
        /* half-closed: the replies still queued go first; not after a TLS
         * end (the 220 of an smtps client gone after its handshake) */
        if (io_out_pending(s->io) > 0 && !io_cannot_send(s->io)) {
            sess_finish(s);
            break;
        }
        sess_close(s, s->close_why);
        break;
    case IO_ERROR:
        sess_close(s, io_error(io));
        break;
    default:
        break;
    }
}

void smtp_sess_start(struct smtp_sess *s)
{
    io_set_cb(s->io, sess_on_io, s);
    io_set_timeout(s->io, (int)smtp_env.cfg->smtp.timeout);
    sess_enter_state(s, SS_INIT);
    s->out = evbuffer_new();
    log_info("connect from %s", s->peer);
    reply(s, "220 %s ESMTP kickmail", hostname());
    sess_flush(s);
}

void smtp_sess_shutdown(struct smtp_sess *s)
{
    if (s->state == SS_COMMIT || s->state == SS_CLOSING || s->state == SS_TURNED)
        return;     /* the commit reply comes first; closing and turned ones end anyway */
    if (s->state == SS_AUTHCHECK)
        smtp_auth_free(s);      /* no answer to the attempt: the 421 instead */
    reply(s, "421 4.3.2 %s Service shutting down, closing transmission channel",
          hostname());
    sess_finish(s);
    sess_flush(s);
}

/* ---- for auth.c ---- */

void smtp_sess_reply(struct smtp_sess *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    evbuffer_add_vprintf(s->out, fmt, ap);
    va_end(ap);
    evbuffer_add(s->out, "\r\n", 2);
}

void smtp_sess_enter(struct smtp_sess *s, enum smtp_state st)
{
    sess_enter_state(s, st);
}

void smtp_sess_bad(struct smtp_sess *s)
{
    bad_command(s);
}

void smtp_sess_finish(struct smtp_sess *s, const char *why)
{
    s->close_why = why;
    sess_finish(s);
}

void smtp_sess_resume(struct smtp_sess *s)
{
    sess_process(s);
}

void smtp_sess_flush_out(struct smtp_sess *s)
{
    io_send(s->io, s->out);
}

void smtp_sess_close(struct smtp_sess *s, const char *why)
{
    sess_close(s, why);
}

/*
 * login — the AUTHORIZATION commands of a POP3 session: USER/PASS, AUTH
 * PLAIN (initial response or "+ " continuation; "*" cancels), APOP (only
 * with `apop = true` and for maildrops with a plaintext-equivalent secret).
 * A login name is a maildrop address or, for a domain maildrop, its
 * customer's name, looked up with registry_maildrop().  Trusts nothing the
 * peer sends; guarantees: a cleartext password is refused without TLS unless
 * the listener allows it or the client is on loopback (pop3_plaintext_ok);
 * every attempt costs one crypt(3) in a worker thread (an unknown name is
 * checked against a dummy hash), so that an unknown user and a wrong
 * password get the same reply ("-ERR [AUTH] Authentication failed.") after
 * the same delay (auth_guard, growing per client address); an address over
 * the guard's limit is refused; passwords are never logged and are wiped
 * after use.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/attempt.h"
#include "auth/passwd.h"
#include "auth/sasl.h"
#include "core/digest.h"
#include "core/io.h"
#include "core/listener.h"
#include "core/log.h"
#include "core/registry.h"
#include "core/stats.h"
#include "core/util.h"
#include "link/autoturn.h"
#include "pop3_int.h"

#define PLAINTEXT_REFUSED \
    "-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections."
#define AUTH_FAILED "-ERR [AUTH] Authentication failed."


void pop3_login_free(struct pop3_sess *s)
{
    if (s->check)
        auth_passwd_cancel(s->check);
    s->check = NULL;
    auth_attempt_cancel(&s->attempt);
    free(s->user);
    free(s->login);
    util_wipe_free(s->secret_try);
    s->user = s->login = s->secret_try = NULL;
}

static int plaintext_ok(struct pop3_sess *s)
{
    return pop3_plaintext_ok(pop3_sess_tls(s), s->cleartext, s->peer);
}

/* ---- the end of an attempt ---- */

/* Logged in: the maildrop is locked and listed (drop.c answers).  Never
 * resumes the session (APOP calls it from inside a command): 0 when the
 * listing is under way, -1 when refused (answered, back in AUTHORIZATION). */
static int login_succeeded(struct pop3_sess *s, const struct maildrop_ref *ref)
{
    auth_attempt_ok(s->peer);
    if (pop3_drop_open(s, ref->name, ref->mode, ref->keep_days) < 0) {
        pop3_enter_state(s, P3_AUTH);   /* [IN-USE] answered */
        return -1;
    }
    /* a domain maildrop's customer with autoturn: its link, at the peer
     * (an address maildrop has no customer: nothing) */
    if (ref->cust)
        autoturn_login(ref->cust, s->conn && s->conn->info ? s->conn->info->proto : "pop3",
                       s->peer);
    return 0;
}

/* A failed attempt's delay has passed: the answer. */
static void failure_answer(void *arg)
{
    struct pop3_sess *s = arg;
    pop3_reply(s, AUTH_FAILED);
    pop3_enter_state(s, P3_AUTH);
    pop3_bad_command(s);
    pop3_sess_resume(s);
}

static void login_failed(struct pop3_sess *s)
{
    char name[1100];
    stats_add(ST_POP3_LOGIN_FAILED, 1);
    log_info("pop3: login failed user=<%s> client=%s tls=%s method=%s",
             util_log_safe(name, sizeof name, s->login ? s->login : ""), s->peer,
             pop3_sess_tls(s) ? "yes" : "no", s->login_how);
    auth_attempt_fail(&s->attempt, pop3_env.base, s->peer, failure_answer, s);
}

/* The password check ended (on the loop). */
static void check_done(int ok, void *arg)
{
    struct pop3_sess *s = arg;
    struct maildrop_ref ref;
    s->check = NULL;
    /* the registry may have been reloaded meanwhile: look the name up again */
    int found = s->login && registry_maildrop(pop3_env.reg, s->login, &ref) == 0;
    if (found && !ref.password)     /* a domain maildrop: its customer's secret */
        ok = ref.secret && s->secret_try && auth_secret_equal(ref.secret, s->secret_try);
    else if (!found || !ref.password)
        ok = 0;
    util_wipe_free(s->secret_try);
    s->secret_try = NULL;
    if (!ok)
        login_failed(s);                /* answered after the delay */
    else if (login_succeeded(s, &ref) < 0)
        pop3_sess_resume(s);            /* on the loop: the refusal goes out */
}

/* An address over the guard's limit tries no more on this connection. */
static int guard_refuses(struct pop3_sess *s)
{
    if (!auth_attempt_blocked(s->peer))
        return 0;
    stats_add(ST_POP3_LOGIN_FAILED, 1);
    log_warn("pop3: login refused client=%s: too many failed logins from this address",
             s->peer);
    pop3_reply(s, "-ERR [AUTH] Too many failed logins from your address, try again later.");
    pop3_sess_finish(s, "too many failed logins");
    return 1;
}

/* Starts checking name/password (how: the command, for the log). */
static void login_try(struct pop3_sess *s, const char *name, size_t namelen,
                      const char *password, const char *how)
{
    struct maildrop_ref ref;
    if (guard_refuses(s))
        return;
    free(s->login);
    s->login = xstrndup(name, namelen);
    s->login_how = how;
    int found = registry_maildrop(pop3_env.reg, s->login, &ref) == 0;
    const char *hash = found && ref.password ? ref.password : NULL;  /* NULL: a dummy */
    util_wipe_free(s->secret_try);
    s->secret_try = found && !ref.password ? xstrdup(password) : NULL;
    pop3_enter_state(s, P3_CHECK);
    s->check = auth_passwd_check(hash, password, check_done, s);
    if (!s->check) {
        log_warn("pop3: cannot check a password for %s now: the checks are queued full",
                 s->peer);
        pop3_reply(s, "-ERR [SYS/TEMP] Too busy, try again later.");
        pop3_enter_state(s, P3_AUTH);
    }
}

/* ---- the commands ---- */

void pop3_cmd_user(struct pop3_sess *s, const struct pop3_cmd *c)
{
    if (!plaintext_ok(s)) {
        pop3_reply(s, PLAINTEXT_REFUSED);
        pop3_bad_command(s);
        return;
    }
    free(s->user);
    s->user = xstrndup(c->args[0].p, c->args[0].len);
    pop3_reply(s, "+OK");
}

void pop3_cmd_pass(struct pop3_sess *s, const struct pop3_cmd *c)
{
    if (!plaintext_ok(s)) {
        pop3_reply(s, PLAINTEXT_REFUSED);
        pop3_bad_command(s);
        return;
    }
    if (!s->user) {
        pop3_reply(s, "-ERR No user name given: USER first.");
        pop3_bad_command(s);
        return;
    }
    char *user = s->user;
    /* "PASS" alone: an empty password (args[0].p is NULL then) */
    char *pw = c->nargs ? xstrndup(c->args[0].p, c->args[0].len) : xstrdup("");
    s->user = NULL;
    login_try(s, user, strlen(user), pw, "USER");
    util_wipe_free(pw);
    free(user);
}

/* AUTH PLAIN's response (base64 of authzid NUL authcid NUL password). */
static void sasl_plain(struct pop3_sess *s, const char *b64, size_t len)
{
    char authzid[SASL_FIELD_MAX + 1], authcid[SASL_FIELD_MAX + 1];
    char passwd[SASL_FIELD_MAX + 1];
    if (sasl_plain_decode(b64, len, authzid, sizeof authzid, authcid, sizeof authcid,
                          passwd, sizeof passwd) < 0 ||
        (authzid[0] && strcasecmp(authzid, authcid))) {
        explicit_bzero(passwd, sizeof passwd);
        pop3_reply(s, "-ERR [AUTH] Invalid AUTH PLAIN response.");
        if (s->state == P3_SASL)
            pop3_enter_state(s, P3_AUTH);
        pop3_bad_command(s);
        return;
    }
    if (s->state == P3_SASL)
        pop3_enter_state(s, P3_AUTH);
    login_try(s, authcid, strlen(authcid), passwd, "AUTH PLAIN");
    explicit_bzero(passwd, sizeof passwd);
}

void pop3_cmd_auth(struct pop3_sess *s, const struct pop3_cmd *c)
{
    if (c->nargs == 0) {            /* the mechanisms (as Dovecot answers) */
        pop3_reply(s, "+OK");
        if (plaintext_ok(s))
            pop3_reply(s, "PLAIN");
        pop3_reply(s, ".");
        return;
    }
    if (c->args[0].len != 5 || strncasecmp(c->args[0].p, "PLAIN", 5)) {
        pop3_reply(s, "-ERR Unsupported authentication mechanism.");
        pop3_bad_command(s);
        return;
    }
    if (!plaintext_ok(s)) {
        pop3_reply(s, PLAINTEXT_REFUSED);
        pop3_bad_command(s);
        return;
    }
    if (c->nargs == 2) {            /* initial response; "=" is an empty one */
        int empty = c->args[1].len == 1 && c->args[1].p[0] == '=';
        sasl_plain(s, c->args[1].p, empty ? 0 : c->args[1].len);
        return;
    }
    pop3_reply(s, "+ ");
    pop3_enter_state(s, P3_SASL);
}

void pop3_sasl_line(struct pop3_sess *s, const char *line, size_t len)
{
    if (len == 1 && line[0] == '*') {
        pop3_reply(s, "-ERR Authentication cancelled.");
        pop3_enter_state(s, P3_AUTH);
        return;
    }
    sasl_plain(s, line, len);
}

/* APOP name digest: digest = hex MD5(banner secret) (RFC 1939 section 7). */
void pop3_cmd_apop(struct pop3_sess *s, const struct pop3_cmd *c)
{
    struct maildrop_ref ref;
    char want[2 * DIGEST_MD5_LEN + 1], given[2 * DIGEST_MD5_LEN + 1] = "";
    unsigned char md5[DIGEST_MD5_LEN];
    if (!s->banner[0]) {
        pop3_reply(s, "-ERR APOP is not enabled here.");
        pop3_bad_command(s);
        return;
    }
    if (guard_refuses(s))
        return;
    free(s->login);
    s->login = xstrndup(c->args[0].p, c->args[0].len);
    s->login_how = "APOP";
    int ok = registry_maildrop(pop3_env.reg, s->login, &ref) == 0 && ref.secret;
    struct digest_part parts[2] = {
        { s->banner, strlen(s->banner) }, { ok ? ref.secret : "", ok ? strlen(ref.secret) : 0 },
    };
    if (digest_md5(parts, 2, md5) < 0)
        ok = 0;
    for (int i = 0; i < DIGEST_MD5_LEN; i++)
        snprintf(want + 2 * i, 3, "%02x", md5[i]);
    if (c->args[1].len == 2 * DIGEST_MD5_LEN)
        for (size_t i = 0; i < c->args[1].len; i++)
            given[i] = (char)tolower((unsigned char)c->args[1].p[i]);
    given[c->args[1].len == 2 * DIGEST_MD5_LEN ? 2 * DIGEST_MD5_LEN : 0] = '\0';
    ok = auth_secret_equal(want, given) && ok;
    explicit_bzero(want, sizeof want);
    pop3_enter_state(s, P3_CHECK);
    if (ok)
        login_succeeded(s, &ref);
    else
        login_failed(s);
}

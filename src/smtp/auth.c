/*
 * auth — SMTP AUTH (RFC 4954) in a server session: PLAIN, LOGIN and
 * CRAM-MD5, with an initial response or "334" continuations ("*" cancels:
 * 501), and the envelope-sender check of an authenticated session.
 * Accounts: a customer (its name, its plaintext-equivalent `secret`: every
 * mechanism) or a maildrop (its address, its crypt(3) `password`: PLAIN
 * and LOGIN only).  Trusts nothing the peer sends: responses are decoded by
 * auth/sasl (strict base64; NUL, CR or LF in a name or password refused).
 * Guarantees: AUTH is refused before TLS unless the listener allows it
 * (538 5.7.11); every PLAIN/LOGIN attempt costs one crypt(3) off the loop
 * (unknown names and customers against a dummy hash), so that no reply
 * and no delay tells an unknown name from a wrong password; a failure is
 * answered only after auth_guard's delay, the fifth of a session with 421
 * and the close, and an address over the guard's limit gets 421 at once;
 * passwords are never logged and are wiped after use.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "auth/attempt.h"
#include "auth/passwd.h"
#include "auth/sasl.h"
#include "core/config.h"
#include "core/io.h"
#include "core/listener.h"
#include "core/log.h"
#include "core/registry.h"
#include "core/util.h"
#include "link/autoturn.h"
#include "smtp_int.h"

#define MAX_SESSION_FAILURES 5      /* the fifth failure: 421 and close */

static const char *hostname(void)
{
    return smtp_env.cfg->hostname;
}


/* Ends an attempt's pending work (check, delay, challenge, name). */
static void attempt_clear(struct smtp_sess *s)
{
    if (s->auth_check)
        auth_passwd_cancel(s->auth_check);
    s->auth_check = NULL;
    auth_attempt_cancel(&s->auth_attempt);
    free(s->auth_try);
    s->auth_try = NULL;
    free(s->auth_challenge);
    s->auth_challenge = NULL;
    util_wipe_free(s->auth_secret_try);
    s->auth_secret_try = NULL;
}

void smtp_auth_free(struct smtp_sess *s)
{
    attempt_clear(s);
    free(s->auth_user);
    s->auth_user = NULL;
    s->authenticated = 0;
    s->auth_method = NULL;
}

int smtp_auth_offered(const struct smtp_sess *s)
{
    return s->auth_listener && (io_is_tls(s->io) || s->auth_cleartext);
}

/* ---- the end of an attempt ---- */

static void attempt_ok(struct smtp_sess *s)
{
    char name[1100];
    auth_attempt_ok(s->peer);
    free(s->auth_user);
    s->auth_user = s->auth_try;
    s->auth_try = NULL;
    s->authenticated = 1;
    attempt_clear(s);
    log_info("AUTH from %s: sasl_method=%s, sasl_username=%s", s->peer, s->auth_method,
             util_log_safe(name, sizeof name, s->auth_user));
    /* a customer (not a maildrop) with autoturn: its link, at the peer */
    autoturn_login(registry_by_name(smtp_env.reg, s->auth_user),
                   s->conn && s->conn->info ? s->conn->info->proto : "smtp", s->peer);
    smtp_sess_reply(s, "235 2.7.0 Authentication successful");
    smtp_sess_enter(s, SS_HELO);
}

/* A failure's delay has passed: its answer. */
static void failure_answer(void *arg)
{
    struct smtp_sess *s = arg;
    if (s->auth_fails >= MAX_SESSION_FAILURES) {
        log_warn("too many failed authentications from %s", s->peer);
        smtp_sess_reply(s, "421 4.7.0 %s Error: too many failed authentication attempts",
                        hostname());
        smtp_sess_finish(s, "too many failed authentications");
    } else {
        smtp_sess_reply(s, "535 5.7.8 Error: authentication failed: authentication failure");
        smtp_sess_enter(s, SS_HELO);
    }
    smtp_sess_resume(s);
}

static void attempt_failed(struct smtp_sess *s)
{
    char name[1100];
    s->auth_fails++;
    log_warn("unknown[%s]: SASL %s authentication failed: sasl_username=<%s>", s->peer,
             s->auth_method, util_log_safe(name, sizeof name, s->auth_try ? s->auth_try : ""));
    free(s->auth_try);
    s->auth_try = NULL;
    if (s->state != SS_AUTHCHECK)
        smtp_sess_enter(s, SS_AUTHCHECK);
    auth_attempt_fail(&s->auth_attempt, smtp_env.base, s->peer, failure_answer, s);
}

/* The password check ended (on the loop). */
static void check_done(int ok, void *arg)
{
    struct smtp_sess *s = arg;
    struct maildrop_ref ref;
    s->auth_check = NULL;
    /* the registry may have been reloaded meanwhile: look the name up again */
    const struct customer *c = registry_by_name(smtp_env.reg, s->auth_try);
    if (c && c->secret)
        ok = s->auth_secret_try && auth_secret_equal(c->secret, s->auth_secret_try);
    else if (registry_maildrop(smtp_env.reg, s->auth_try, &ref) < 0 || !ref.password)
        ok = 0;
    util_wipe_free(s->auth_secret_try);
    s->auth_secret_try = NULL;
    if (ok)
        attempt_ok(s);
    else
        attempt_failed(s);      /* answered after the delay */
    if (ok)
        smtp_sess_resume(s);
}

/* Checks name/password: a customer's secret or a maildrop's hash. */
static void attempt_password(struct smtp_sess *s, const char *name, const char *password)
{
    struct maildrop_ref ref;
    const struct customer *c = registry_by_name(smtp_env.reg, name);
    const char *hash = NULL;            /* auth_passwd_check: a dummy */
    free(s->auth_try);
    s->auth_try = xstrdup(name);
    if (c && c->secret)
        s->auth_secret_try = xstrdup(password);
    else if (registry_maildrop(smtp_env.reg, name, &ref) == 0 && ref.password)
        hash = ref.password;
    smtp_sess_enter(s, SS_AUTHCHECK);
    s->auth_check = auth_passwd_check(hash, password, check_done, s);
    if (!s->auth_check) {
        log_warn("cannot check a password for %s now: the checks are queued full", s->peer);
        attempt_clear(s);
        smtp_sess_reply(s, "454 4.7.0 Temporary authentication failure");
        smtp_sess_enter(s, SS_HELO);
    }
}

/* CRAM-MD5: only customers have a plaintext-equivalent secret. */
static void attempt_cram(struct smtp_sess *s, const char *name, const char *hex)
{
    const struct customer *c = registry_by_name(smtp_env.reg, name);
    int ok = c && c->secret && sasl_cram_verify(c->secret, s->auth_challenge, hex);
    free(s->auth_try);
    s->auth_try = xstrdup(name);
    if (ok)
        attempt_ok(s);
    else
        attempt_failed(s);
}

/* ---- the exchange ---- */

static void malformed(struct smtp_sess *s)
{
    attempt_clear(s);
    smtp_sess_reply(s, "501 5.5.2 Error: cannot decode the authentication response");
    smtp_sess_enter(s, SS_HELO);
    smtp_sess_bad(s);
}

/* Sends a "334" continuation with text base64-encoded. */
static void challenge(struct smtp_sess *s, const char *text)
{
    char b64[512];
    sasl_b64_encode(text, strlen(text), b64, sizeof b64);
    smtp_sess_reply(s, "334 %s", b64);
    if (s->state != SS_AUTH)
        smtp_sess_enter(s, SS_AUTH);
}

/* One response (the initial one or a continuation's) to the mechanism. */
static void response(struct smtp_sess *s, const char *b64, size_t len)
{
    char a[SASL_FIELD_MAX + 1], b[SASL_FIELD_MAX + 1], p[SASL_FIELD_MAX + 1];
    char hex[SASL_CRAM_HEX + 1];
    if (!strcmp(s->auth_method, "PLAIN")) {
        if (sasl_plain_decode(b64, len, a, sizeof a, b, sizeof b, p, sizeof p) < 0 ||
            (a[0] && strcmp(a, b)))
            malformed(s);
        else
            attempt_password(s, b, p);
    } else if (!strcmp(s->auth_method, "LOGIN")) {
        if (!s->auth_try) {
            if (sasl_text_decode(b64, len, a, sizeof a) < 0) {
                malformed(s);
                return;
            }
            s->auth_try = xstrdup(a);
            challenge(s, "Password:");
        } else if (sasl_text_decode(b64, len, p, sizeof p) < 0) {
            malformed(s);
        } else {
            char *name = s->auth_try;
            s->auth_try = NULL;
            attempt_password(s, name, p);
            free(name);
        }
    } else if (sasl_cram_parse(b64, len, a, sizeof a, hex) < 0) {
        malformed(s);
    } else {
        attempt_cram(s, a, hex);
    }
    explicit_bzero(p, sizeof p);
}

void smtp_auth_response(struct smtp_sess *s, const char *line, size_t len)
{
    if (len == 1 && line[0] == '*') {
        attempt_clear(s);
        smtp_sess_reply(s, "501 5.7.0 Error: authentication aborted");
        smtp_sess_enter(s, SS_HELO);
        return;
    }
    response(s, line, len);
}

/* The refusals before any mechanism is looked at: 1 when answered. */
static int auth_refused(struct smtp_sess *s)
{
    if (!s->auth_listener) {
        smtp_sess_reply(s, "503 5.5.1 Error: authentication not enabled");
        smtp_sess_bad(s);
    } else if (s->authenticated) {
        smtp_sess_reply(s, "503 5.5.1 Error: already authenticated");
        smtp_sess_bad(s);
    } else if (!smtp_auth_offered(s) && !s->auth_cram_cleartext) {
        smtp_sess_reply(s, "538 5.7.11 Encryption required for requested authentication "
                        "mechanism");
        smtp_sess_bad(s);
    } else if (auth_attempt_blocked(s->peer)) {
        log_warn("AUTH refused from %s: too many failed authentications from this address",
                 s->peer);
        smtp_sess_reply(s, "421 4.7.0 %s Error: too many failed authentications from your "
                        "address, try again later", hostname());
        smtp_sess_finish(s, "too many failed authentications");
    } else {
        return 0;
    }
    return 1;
}

void smtp_cmd_auth(struct smtp_sess *s, const char *arg, size_t len)
{
    static const char *const mechs[] = { "PLAIN", "LOGIN", "CRAM-MD5" };
    if (auth_refused(s))
        return;
    const char *sp = memchr(arg, ' ', len);
    size_t mlen = sp ? (size_t)(sp - arg) : len;
    s->auth_method = NULL;
    for (size_t i = 0; i < sizeof mechs / sizeof mechs[0]; i++)
        if (mlen == strlen(mechs[i]) && !strncasecmp(arg, mechs[i], mlen))
            s->auth_method = mechs[i];
    if (!s->auth_method) {
        smtp_sess_reply(s, "504 5.5.4 Unsupported authentication mechanism");
        smtp_sess_bad(s);
        return;
    }
    if (!smtp_auth_offered(s) && strcmp(s->auth_method, "CRAM-MD5")) {
        smtp_sess_reply(s, "538 5.7.11 Encryption required for requested authentication "
                        "mechanism");           /* odmr: only CRAM-MD5 before TLS */
        smtp_sess_bad(s);
        return;
    }
    attempt_clear(s);
    const char *init = sp ? sp + 1 : NULL;
    size_t ilen = sp ? len - mlen - 1 : 0;
    if (!strcmp(s->auth_method, "CRAM-MD5")) {
        char text[300];
        if (init) {
            smtp_sess_reply(s, "501 5.5.4 Error: CRAM-MD5 takes no initial response");
            smtp_sess_bad(s);
            return;
        }
        unsigned long long r = 0;
        if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r)
            r ^= (unsigned long long)(uintptr_t)s ^ (unsigned long long)clock();
        sasl_cram_challenge(r, (long long)time(NULL), hostname(), text, sizeof text);
        s->auth_challenge = xstrdup(text);
        challenge(s, text);
    } else if (!init) {
        challenge(s, !strcmp(s->auth_method, "LOGIN") ? "Username:" : "");
    } else if (ilen == 1 && init[0] == '=') {       /* an empty initial response */
        malformed(s);
    } else {
        response(s, init, ilen);
    }
}

int smtp_auth_sender_ok(const struct smtp_sess *s, const char *local, const char *domain)
{
    char addr[600];
    const struct customer *c = registry_by_name(smtp_env.reg, s->auth_user);
    if (c) {
        for (size_t i = 0; i < c->ndomains; i++)
            if (!strcasecmp(c->domains[i], domain))
                return 1;
        return 0;
    }
    snprintf(addr, sizeof addr, "%s@%s", local, domain);
    return !strcasecmp(addr, s->auth_user);
}

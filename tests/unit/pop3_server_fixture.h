/*
 * pop3_server_fixture — kickmaild's POP3 side in one process, wired as
 * kickmaild.c wires it (a configuration file, the registry, the password
 * workers, the POP3 server) but without listeners: sessions are started on
 * socketpairs with pop3_server_adopt().  Maildrops live under the fixture's
 * directory: alice@isp.example (delete mode, password "pw", a SHA-512 crypt
 * hash), kim@isp.example (keep mode, 2 days, password "pw"), and acme (a
 * deliver = "maildrop" customer, secret "s3cret").  Shared by
 * tests/unit/test_pop3_session.c and tests/fuzz/fuzz_pop3_session.c.
 * Header-only and without cmocka: failures return -1 with the reason.
 */
#ifndef KM_TEST_POP3_SERVER_FIXTURE_H
#define KM_TEST_POP3_SERVER_FIXTURE_H

#pragma GCC diagnostic ignored "-Wunused-function"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "auth/guard.h"
#include "auth/passwd.h"
#include "core/config.h"
#include "core/log.h"
#include "core/registry.h"
#include "core/tls.h"
#include "pop3/pop3_server.h"
#include "server_fixture.h"

/* crypt("pw", "$6$fixture$") */
#define POP3_FIXTURE_HASH \
    "$6$fixture$0sSEnn0fEFSgC4VnpSMLd2nzrA1LImKR9hWUaRsiEi9TJnvq7sXpoIxjs8zM.tboQNr/SbpiW/NQNjkn1Vo9B1"

struct pop3_fixture {
    char dir[256];              /* the temporary directory */
    char root[300];             /* maildir_root */
    struct event_base *base;
    struct config *cfg;
    struct registry *reg;
    struct tls_ctx *tls;        /* NULL without STLS */
};

/* Removes a directory tree (the fixture's, or its maildrops). */
static void pop3_fixture_rmtree(const char *dir)
{
    server_fixture_rmtree(dir);
}

static void pop3_fixture_remove(struct pop3_fixture *f)
{
    if (f->dir[0])
        pop3_fixture_rmtree(f->dir);
    f->dir[0] = 0;
}

/* Writes message number n (LF line ends, a dot-line, `lines` body lines)
 * into maildrop drop's new/, named as local delivery names it. */
static int pop3_fixture_put(struct pop3_fixture *f, const char *drop, int n, int lines)
{
    char dir[600], path[900];
    size_t cap = 256 + (size_t)lines * 40;
    char *body = malloc(cap);
    if (!body)
        return -1;
    const char *at = strchr(drop, '@');
    if (at)
        snprintf(dir, sizeof dir, "%s/%s/%.*s", f->root, at + 1, (int)(at - drop), drop);
    else
        snprintf(dir, sizeof dir, "%s/%s", f->root, drop);
    size_t len = (size_t)snprintf(body, cap, "From: a@example.org\nSubject: m%d\n\n"
                                  ".dot line\n", n);
    for (int i = 0; i < lines && len + 40 < cap; i++)
        len += (size_t)snprintf(body + len, cap - len, "body line %d of %d\n", i, n);
    size_t lfs = 0;
    for (size_t i = 0; i < len; i++)
        lfs += body[i] == '\n';
    mkdir(f->root, 0700);
    const char *sub[] = { "", "/tmp", "/new", "/cur" };
    for (size_t i = 0; i < 4; i++) {
        char d[700];
        snprintf(d, sizeof d, "%s%s", dir, sub[i]);
        char *p = d + strlen(f->root) + 1;
        for (; (p = strchr(p, '/')); p++) {     /* parents first */
            *p = 0;
            mkdir(d, 0700);
            *p = '/';
        }
        if (mkdir(d, 0700) < 0 && errno != EEXIST) {
            free(body);
            return -1;
        }
    }
    snprintf(path, sizeof path, "%s/new/%d.M%dP1Q%d.fixture,S=%zu,W=%zu", dir, 1700000000 + n,
             n, n, len, len + lfs);
    FILE *fp = fopen(path, "w");
    if (!fp) {
        free(body);
        return -1;
    }
    fwrite(body, 1, len, fp);
    free(body);
    return fclose(fp) == 0 ? 0 : -1;
}

/* Starts everything in a new directory under tmpdir (evthread_use_pthreads
 * is called here).  topdir: where scripts/gen-test-cert is, for STLS with a
 * throwaway certificate; NULL or a failing script: no STLS.  pop3_opts:
 * lines for the pop3 section (apop, timeout...). */
static int pop3_fixture_start(struct pop3_fixture *f, const char *tmpdir, const char *topdir,
                              const char *pop3_opts, char *err, size_t errlen)
{
    char path[512];
    int tls;
    memset(f, 0, sizeof *f);
    log_test_set_syslog(0);
    if (server_fixture_dir(f->dir, sizeof f->dir, tmpdir, "kickmail-pop3", topdir, &tls,
                           err, errlen) < 0)
        return -1;
    snprintf(f->root, sizeof f->root, "%s/maildrops", f->dir);
    snprintf(path, sizeof path, "%s/kickmail.conf", f->dir);
    FILE *c = fopen(path, "w");
    if (!c)
        return -1;
    fprintf(c, "hostname = \"mx.fixture.example\"\nspool = \"%s/spool\"\n"
               "control = \"%s/control.sock\"\nmaildir_root = \"%s\"\n", f->dir, f->dir, f->root);
    if (tls)
        fprintf(c, "tls {\n  certificate = \"%s/tls/cert.pem\"\n  key = \"%s/tls/key.pem\"\n}\n",
                f->dir, f->dir);
    /* a listen address is required; it is never bound (nlisten = 0 below) */
    fprintf(c, "pop3 {\n  listen = {\"127.0.0.1:2\"}\n  max_connections_per_client = 3\n%s\n}\n",
            pop3_opts ? pop3_opts : "");
    fprintf(c, "maildrop \"alice@isp.example\" { password = '%s' }\n"
               "maildrop \"kim@isp.example\" { password = '%s' mode = \"keep\" keep_days = 2 }\n"
               "customer \"acme\" { domains = {\"acme.example\"} deliver = \"maildrop\" "
               "secret = 's3cret' }\n", POP3_FIXTURE_HASH, POP3_FIXTURE_HASH);
    if (fclose(c) != 0)
        return -1;
    evthread_use_pthreads();
    if (!(f->base = event_base_new())) {
        snprintf(err, errlen, "event_base_new failed");
        return -1;
    }
    if (!(f->cfg = config_load(path, err, errlen)) ||
        !(f->reg = registry_new(f->cfg, NULL, err, errlen)) ||
        (tls && !(f->tls = tls_server_ctx(f->cfg->tls_certificate, f->cfg->tls_key,
                                          err, errlen))))
        return -1;
    f->cfg->pop3.l.nlisten = 0;     /* no listener: only adopted sockets */
    if (auth_passwd_init(f->base, 1, err, errlen) < 0 ||
        pop3_server_bind(f->base, f->cfg, err, errlen) < 0)
        return -1;
    /* failed logins answered after 1-2 ms, not seconds */
    struct auth_guard_conf g = { .max_failures = 1000000, .window = 600, .delay_ms = 1,
                                 .max_delay_ms = 2 };
    auth_guard_configure(&g);
    pop3_server_configure(f->cfg, f->reg, f->tls);
    return 0;
}

/* A new session from peer (an address as text) on a socketpair; *client is
 * the other end (non-blocking).  sndbuf > 0: SO_SNDBUF of the server's end.
 * Returns what pop3_server_adopt returned (-1: refused), -2 when no
 * socketpair. */
static int pop3_fixture_connect(struct pop3_fixture *f, const char *peer, int sndbuf,
                                int *client)
{
    int server;
    if (server_fixture_pair(sndbuf, client, &server) < 0)
        return -2;
    return pop3_server_adopt(server, peer, 0);
}

/* Frees everything but the directory (after the last session ended). */
static void pop3_fixture_stop(struct pop3_fixture *f)
{
    pop3_server_free();
    auth_passwd_shutdown();
    registry_free(f->reg);
    tls_ctx_free(f->tls);
    config_free(f->cfg);
    if (f->base)
        event_base_free(f->base);
    f->base = NULL;
}

#endif

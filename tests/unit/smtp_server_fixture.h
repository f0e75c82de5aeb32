/*
 * smtp_server_fixture — kickmaild's receiving side in one process, wired as
 * kickmaild.c wires it (a configuration file, the registry, the spool, the
 * link table, the qmgr and the SMTP server) but without listeners: sessions
 * are started on socketpairs with smtp_server_adopt().  Shared by
 * tests/unit/test_smtp_session.c and tests/fuzz/fuzz_smtp_session.c.
 * Header-only and without cmocka: failures return -1 with the reason.
 * Nothing is logged to syslog.
 */
#ifndef KM_TEST_SMTP_SERVER_FIXTURE_H
#define KM_TEST_SMTP_SERVER_FIXTURE_H

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

#include "core/config.h"
#include "core/log.h"
#include "core/registry.h"
#include "core/tls.h"
#include "link/links.h"
#include "mta/deliver.h"
#include "queue/qmgr.h"
#include "smtp/smtp_server.h"
#include "spool/spool.h"
#include "server_fixture.h"

struct srv_fixture {
    char dir[256];              /* the temporary directory: spool, conf, tls */
    struct event_base *base;
    struct config *cfg;
    struct registry *reg;
    struct tls_ctx *tls;        /* NULL without STARTTLS */
    struct spool *sp;
};

/* Removes the temporary directory (the process is ending, or was stopped). */
static void srv_fixture_remove(struct srv_fixture *f)
{
    if (f->dir[0])
        server_fixture_rmtree(f->dir);
    f->dir[0] = 0;
}

/* Writes DIR/kickmail.conf: hostname mx.fixture.example, the smtp section
 * with smtp_opts (lines of options), then the customers text. */
static int srv_fixture_conf(struct srv_fixture *f, const char *path, const char *smtp_opts,
                            const char *customers, int tls, char *err, size_t errlen)
{
    FILE *c = fopen(path, "w");
    if (!c) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    fprintf(c, "hostname = \"mx.fixture.example\"\nspool = \"%s/spool\"\n"
               "control = \"%s/control.sock\"\npostmaster = \"noc@isp.example\"\n"
               "spool_spares = \"no\"\n", f->dir, f->dir);
    if (tls)
        fprintf(c, "tls {\n  certificate = \"%s/tls/cert.pem\"\n  key = \"%s/tls/key.pem\"\n}\n",
                f->dir, f->dir);
    /* a listen address is required; it is never bound (srv_fixture_start) */
    fprintf(c, "smtp {\n  listen = {\"127.0.0.1:2\"}\n%s\n}\n%s\n", smtp_opts, customers);
    return fclose(c) == 0 ? 0 : -1;
}

/* Starts everything in a new directory under tmpdir (evthread_use_pthreads
 * is called here).  topdir: where scripts/gen-test-cert is, for STARTTLS
 * with a throwaway certificate; NULL or a failing script: no STARTTLS. */
/* Delivery as kickmaild.c wires it: it asks the link table through this
 * lookup and hears of link changes through the table's change callback
 * (an ETRN of a session kicks it; no link is ever up here). */
static int srv_fixture_link_lookup(const char *customer, struct deliver_link *out)
{
    const struct link *l = links_get(customer);
    if (!l)
        return -1;
    out->up = l->up;
    out->address = l->address;
    return 0;
}

static void srv_fixture_link_changed(const struct link *l, int was_up, void *arg)
{
    deliver_link_changed(l->customer, l->up, was_up, l->address);
}

static int srv_fixture_start(struct srv_fixture *f, const char *tmpdir, const char *topdir,
                             const char *smtp_opts, const char *customers,
                             char *err, size_t errlen)
{
    char path[512];
    int tls;
    memset(f, 0, sizeof *f);
    log_test_set_syslog(0);
    if (server_fixture_dir(f->dir, sizeof f->dir, tmpdir, "kickmail-fixture", topdir, &tls,
                           err, errlen) < 0)
        return -1;
    snprintf(path, sizeof path, "%s/kickmail.conf", f->dir);
    if (srv_fixture_conf(f, path, smtp_opts, customers, tls, err, errlen) < 0)
        return -1;
    evthread_use_pthreads();
    if (!(f->base = event_base_new())) {
        snprintf(err, errlen, "event_base_new failed");
        return -1;
    }
    if (!(f->cfg = config_load(path, err, errlen)) ||
        !(f->reg = registry_new(f->cfg, NULL, err, errlen)) ||
        (tls && !(f->tls = tls_server_ctx(f->cfg->tls_certificate, f->cfg->tls_key,
                                          err, errlen))) ||
        !(f->sp = spool_open(f->cfg->spool, f->base, err, errlen)))
        return -1;
    spool_set_spares(f->sp, SPOOL_SPARES_OFF);
    if (links_init(f->base, f->sp, srv_fixture_link_changed, NULL, err, errlen) < 0 ||
        qmgr_init(f->base, f->sp, f->cfg, f->reg, err, errlen) < 0 ||
        deliver_init(srv_fixture_link_lookup, err, errlen) < 0)
        return -1;
    f->cfg->smtp.l.nlisten = 0;     /* no listener: only adopted sockets */
    if (smtp_server_bind(f->base, f->cfg, err, errlen) < 0)
        return -1;
    smtp_server_configure(f->cfg, f->reg, f->tls);
    return 0;
}

/* A new session from peer (an address as text) on a socketpair; *client is
 * the other end (non-blocking).  sndbuf > 0: SO_SNDBUF of the server's end,
 * so that its output backs up soon.  Returns what smtp_server_adopt returned
 * (-1: refused, the 421 is waiting at *client), -2 when no socketpair. */
static int srv_fixture_connect(struct srv_fixture *f, const char *peer, int sndbuf, int *client)
{
    int server;
    if (server_fixture_pair(sndbuf, client, &server) < 0)
        return -2;
    return smtp_server_adopt(server, peer);
}

/* Frees everything but the directory (after the last session ended). */
static void srv_fixture_stop(struct srv_fixture *f)
{
    deliver_shutdown();
    qmgr_shutdown();
    links_shutdown();
    spool_close(f->sp);
    registry_free(f->reg);
    tls_ctx_free(f->tls);
    config_free(f->cfg);
    if (f->base)
        event_base_free(f->base);
    f->base = NULL;
}

#endif

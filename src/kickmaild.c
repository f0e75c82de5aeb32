/*
 * kickmaild — the daemon: one process, one event loop.  Reads the
 * configuration, binds listeners and the control socket, opens the spool,
 * drops privileges, rebuilds the queue index, then serves until SIGTERM.
 * SIGHUP reloads; a bad new configuration keeps the old one.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "config.h"
#include "ctl.h"
#include "links.h"
#include "log.h"
#include "qmgr.h"
#include "registry.h"
#include "smtp_server.h"
#include "spool.h"
#include "tls.h"
#include "util.h"

#ifndef KM_VERSION
#define KM_VERSION "0.0.0"
#endif
#ifndef KM_SYSCONFDIR
#define KM_SYSCONFDIR "/usr/local/etc/kickmail"
#endif

static struct {
    const char *path;
    struct event_base *base;
    struct config *cfg;
    struct registry *reg;
    struct tls_ctx *tls;
    struct spool *spool;
    int stopping;
} D;

static void usage(void)
{
    fprintf(stderr, "usage: kickmaild [-c FILE] [-f] [-n] [-V]\n");
    exit(2);
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            log_warn("cannot raise the open-files limit: %s", strerror(errno));
    }
}

/* Builds the registry and TLS context for a loaded configuration. */
static int prepare(struct config *c, struct registry **reg, struct tls_ctx **tls,
                   char *err, size_t errlen)
{
    *tls = NULL;
    *reg = registry_new(c, err, errlen);
    if (!*reg)
        return -1;
    if (c->tls_certificate) {
        *tls = tls_server_ctx(c->tls_certificate, c->tls_key, err, errlen);
        if (!*tls) {
            registry_free(*reg);
            *reg = NULL;
            return -1;
        }
    }
    return 0;
}

static int customer_exists(const char *name)
{
    return qmgr_cust_by_name(name) != NULL;
}

static int reload(char *err, unsigned long errlen)
{
    struct registry *reg;
    struct tls_ctx *tls;
    struct config *c = config_load(D.path, err, errlen);
    if (!c || prepare(c, &reg, &tls, err, errlen) < 0) {
        log_err("reload failed, keeping the old configuration: %s", err);
        config_free(c);
        return -1;
    }
    if (strcmp(c->spool, D.cfg->spool) || strcmp(c->control, D.cfg->control))
        log_warn("reload: spool and control socket changes take effect at restart");
    qmgr_reconfigure(c, reg);
    smtp_server_configure(c, reg, tls);
    links_prune(customer_exists);
    config_free(D.cfg);
    registry_free(D.reg);
    tls_ctx_free(D.tls);
    D.cfg = c;
    D.reg = reg;
    D.tls = tls;
    log_info("configuration reloaded: %zu customers", registry_count(reg));
    return 0;
}

/* Sessions are gone: exit once deliveries in progress have completed. */
static void stopped_poll(evutil_socket_t fd, short what, void *arg)
{
    if (qmgr_delivery_busy()) {
        struct timeval tv = { 0, 20000 };
        event_base_once(D.base, -1, EV_TIMEOUT, stopped_poll, NULL, &tv);
        return;
    }
    event_base_loopexit(D.base, NULL);
}

static void stopped(void)
{
    stopped_poll(-1, 0, NULL);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    if (sig == SIGHUP) {
        char err[512];
        reload(err, sizeof err);
        return;
    }
    if (D.stopping)
        return;
    D.stopping = 1;
    log_info("stopping on signal %d", (int)sig);
    ctl_stop();
    qmgr_stop_delivery();
    struct timeval tv = { 10, 0 };
    event_base_loopexit(D.base, &tv);       /* sessions get at most 10 s */
    smtp_server_shutdown(stopped);
}

/* Creates the spool directories owned by the run-time user (as root). */
static int spool_prepare(const struct config *c, const struct passwd *pw)
{
    static const char *const sub[] = { "", "/journal", "/state", "/corrupt" };
    char path[4096];
    for (size_t i = 0; i < sizeof sub / sizeof sub[0]; i++) {
        snprintf(path, sizeof path, "%s%s", c->spool, sub[i]);
        if (mkdir(path, 0700) < 0 && errno != EEXIST) {
            fprintf(stderr, "kickmaild: %s: %s\n", path, strerror(errno));
            return -1;
        }
        if (pw && chown(path, pw->pw_uid, pw->pw_gid) < 0) {
            fprintf(stderr, "kickmaild: chown %s: %s\n", path, strerror(errno));
            return -1;
        }
    }
    return 0;
}

static int drop_privileges(const struct passwd *pw)
{
    if (initgroups(pw->pw_name, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
        setuid(pw->pw_uid) < 0) {
        log_err("cannot drop privileges to %s: %s", pw->pw_name, strerror(errno));
        return -1;
    }
    log_info("running as %s", pw->pw_name);
    return 0;
}

static int start(void)
{
    char err[1024];
    const struct passwd *pw = NULL;
    if (geteuid() == 0 && D.cfg->user) {
        pw = getpwnam(D.cfg->user);
        if (!pw) {
            log_err("user %s: no such user", D.cfg->user);
            return -1;
        }
    }
    if (prepare(D.cfg, &D.reg, &D.tls, err, sizeof err) < 0 ||
        spool_prepare(D.cfg, pw) < 0) {
        log_err("%s", err);
        return -1;
    }
    static const struct ctl_hooks hooks = { reload };
    if (smtp_server_bind(D.base, D.cfg, err, sizeof err) < 0 ||
        ctl_start(D.base, D.cfg->control, &hooks, err, sizeof err) < 0) {
        log_err("cannot listen: %s", err);
        return -1;
    }
    if (pw && chown(D.cfg->control, pw->pw_uid, pw->pw_gid) < 0)
        log_warn("chown %s: %s", D.cfg->control, strerror(errno));
    D.spool = spool_open(D.cfg->spool, D.base, err, sizeof err);
    if (!D.spool) {
        log_err("spool: %s", err);
        return -1;
    }
    if (pw && drop_privileges(pw) < 0)
        return -1;
    if (links_init(D.base, D.spool, qmgr_link_changed, NULL, err, sizeof err) < 0) {
        log_err("links: %s", err);
        return -1;
    }
    if (qmgr_init(D.base, D.spool, D.cfg, D.reg, err, sizeof err) < 0) {
        log_err("spool: %s", err);
        return -1;
    }
    smtp_server_configure(D.cfg, D.reg, D.tls);
    return 0;
}

int main(int argc, char **argv)
{
    int opt, fg = 0, check = 0;
    char err[1024];
    D.path = KM_SYSCONFDIR "/kickmail.conf";
    while ((opt = getopt(argc, argv, "c:fnV")) != -1) {
        switch (opt) {
        case 'c': D.path = optarg; break;
        case 'f': fg = 1; break;
        case 'n': check = 1; break;
        case 'V': printf("kickmaild %s\n", KM_VERSION); return 0;
        default: usage();
        }
    }
    if (optind != argc)
        usage();
    D.cfg = config_load(D.path, err, sizeof err);
    if (!D.cfg) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    char unserved[256];
    config_unserved(D.cfg, unserved, sizeof unserved);
    if (check) {
        struct registry *r = registry_new(D.cfg, err, sizeof err);
        if (!r) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        registry_free(r);
        if (unserved[0])
            printf("%s: sections not served by this version: %s\n", D.path, unserved);
        printf("configuration OK\n");
        return 0;
    }
    log_init("kickmaild", fg);
    raise_nofile();
    signal(SIGPIPE, SIG_IGN);
    evthread_use_pthreads();
    D.base = event_base_new();
    if (!D.base || start() < 0)
        return 1;
    if (unserved[0])
        log_warn("sections not served by this version: %s", unserved);
    struct event *sigs[3];
    int signums[3] = { SIGTERM, SIGINT, SIGHUP };
    for (int i = 0; i < 3; i++) {
        sigs[i] = evsignal_new(D.base, signums[i], on_signal, NULL);
        event_add(sigs[i], NULL);
    }
    log_info("kickmaild %s ready: %zu customers, %zu messages queued", KM_VERSION,
             registry_count(D.reg), qmgr_msg_count());
    event_base_dispatch(D.base);
    spool_close(D.spool);
    log_info("kickmaild stopped");
    for (int i = 0; i < 3; i++)
        event_free(sigs[i]);
    qmgr_shutdown();
    links_shutdown();
    registry_free(D.reg);
    tls_ctx_free(D.tls);
    config_free(D.cfg);
    event_base_free(D.base);
    return 0;
}

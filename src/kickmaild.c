/*
 * kickmaild — the daemon: one process, one event loop.  Reads the
 * configuration and the customer map, binds listeners and the control
 * socket, opens the spool, drops privileges, rebuilds the queue index, then
 * serves until SIGTERM.
 *
 * Reloads (SIGHUP, kickq reload) run off the loop: a worker thread loads the
 * configuration, the customer map (up to 100,000s of customers), the
 * registry and the TLS context into a new generation; the loop is woken
 * (event_active; evthread_use_pthreads is on) and swaps the generation in,
 * so sessions are served while a big map loads.  A failed load keeps the old
 * generation and logs why.  One load runs at a time; a reload asked for
 * while one runs is queued (any number of requests make one more run), so a
 * change made just after a load began is never missed.
 *
 * Log lines are written by log.c's writer thread (started by the first line,
 * before privileges are dropped; setuid applies to every thread); the clean
 * exit ends with log_close(), and exit() on the error paths runs it too.
 */
#include <errno.h>
#include <grp.h>
#include <pthread.h>
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

#include "auth/guard.h"
#include "auth/passwd.h"
#include "core/config.h"
#include "core/custmap.h"
#include "core/hosts.h"
#include "core/log.h"
#include "core/registry.h"
#include "core/tls.h"
#include "core/util.h"
#include "ctl/ctl.h"
#include "link/autoturn.h"
#include "link/link_event.h"
#include "link/links.h"
#include "link/netlink.h"
#include "link/radius.h"
#include "maildir/maildir.h"
#include "mta/deliver.h"
#include "pop3/pop3_server.h"
#include "queue/qmgr.h"
#include "smtp/smtp_server.h"
#include "spool/spool.h"

#ifndef KM_VERSION
#define KM_VERSION "0.0.0"
#endif
#ifndef KM_SYSCONFDIR
#define KM_SYSCONFDIR "/usr/local/etc/kickmail"
#endif

/* What a (re)load produces; swapped in whole. */
struct gen {
    struct config *cfg;
    struct custmap *map;        /* NULL without customer_map */
    struct registry *reg;
    struct tls_ctx *tls;        /* the listeners' (NULL without certificate) */
    struct tls_ctx *client_tls; /* delivery's, with every customer's tls_ca */
    double map_secs;            /* time to load the map */
    char pw_warn[512];          /* maildrop passwords that cannot match, or "" */
};

static struct {
    const char *path;
    struct event_base *base;
    struct gen cur;
    struct spool *spool;
    int stopping;
    int servers;                /* servers whose sessions are not gone yet */
} D;

/* Somebody waiting for the end of a reload (kickq reload). */
struct waiter {
    ctl_reload_done *done;
    void *arg;
    struct waiter *next;
};

/* The reload machinery.  The worker thread only writes result, rc and err
 * (and joins the reaper), then activates done_ev; the loop reads them after
 * pthread_join.  The reaper frees a replaced generation off the loop; the
 * next worker (or reload_shutdown) joins it. */
static struct {
    pthread_t thread, reaper;
    int running;                /* a worker is loading */
    int reaping;                /* a reaper was started and not joined yet */
    int again;                  /* asked for while running: one more run */
    struct event *done_ev;
    struct waiter *current;     /* told when the running load ends */
    struct waiter *next;        /* told when the next load ends */
    struct gen result;
    int rc;
    char err[1024];
    double t0;
} R;

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

/* ---- generations ---- */

static void gen_free(struct gen *g)
{
    registry_free(g->reg);
    custmap_free(g->map);
    tls_ctx_free(g->tls);
    tls_ctx_free(g->client_tls);
    config_free(g->cfg);
    memset(g, 0, sizeof *g);
}

/* Every maildrop has a directory under maildir_root (maildir_path: a safe
 * name, and a path that fits).  Passwords that can never match (plain
 * text written for a hash) are counted into g->pw_warn: a warning, the
 * maildrop still loads. */
static int maildrops_check(struct gen *g, char *err, size_t errlen)
{
    char dir[4096], first[320] = "";
    size_t bad = 0;
    g->pw_warn[0] = 0;
    for (size_t i = 0; i < registry_maildrop_count(g->reg); i++) {
        struct maildrop_ref md;
        const char *why;
        registry_maildrop_at(g->reg, i, &md);
        if (md.password && (why = auth_hash_problem(md.password)) != NULL && !bad++)
            snprintf(first, sizeof first, "'%.255s': %s", md.name, why);
        if (maildir_path(g->cfg->maildir_root, md.name, dir, sizeof dir) < 0)
            return util_fail(err, errlen, "%s: maildrop '%s' has no usable directory "
                             "under maildir_root '%s'", g->cfg->path, md.name,
                             g->cfg->maildir_root);
    }
    if (bad)
        snprintf(g->pw_warn, sizeof g->pw_warn, "%zu maildrop%s %s a password that is not "
                 "a crypt(3) hash and can never match (first %s); kickq hash-password "
                 "makes one", bad, bad == 1 ? "" : "s", bad == 1 ? "has" : "have", first);
    return 0;
}

/* The TLS contexts of g: the listeners' (with a certificate) and the
 * delivery client's, with every customer's tls_ca (an unreadable one fails
 * the load: verify fails closed).  0, or -1 with err. */
static int gen_build_tls(struct gen *g, char *err, size_t errlen)
{
    const struct config *c = g->cfg;
    char why[512];
    struct tls_conf tc = {
        .min_version = c->tls_min_version, .max_version = c->tls_max_version,
        .ciphers = c->tls_ciphers, .ciphersuites = c->tls_ciphersuites,
    };
    if (c->tls_certificate &&
        !(g->tls = tls_server_ctx_conf(c->tls_certificate, c->tls_key, &tc, err, errlen)))
        return -1;
    if (!(g->client_tls = tls_client_ctx_conf(&tc, why, sizeof why)))
        return util_fail(err, errlen, "%s: tls: %s", c->path, why);
    for (size_t i = 0; i < registry_count(g->reg); i++) {
        const struct customer *cu = registry_at(g->reg, i);
        if (cu->tls_ca && tls_ctx_add_ca(g->client_tls, cu->tls_ca, why, sizeof why) < 0)
            return util_fail(err, errlen, "customer '%s': %s", cu->name, why);
    }
    return 0;
}

/* For a loaded g->cfg: reads /etc/hosts, loads the customer map, builds
 * the registry and (with_tls) the TLS context.  Blocks; touches no daemon
 * state.  0, or -1 with err (g keeps what was built: gen_free it). */
static int gen_build(struct gen *g, int with_tls, char *err, size_t errlen)
{
    struct config *c = g->cfg;
    c->hosts = hosts_load(NULL);        /* the resolver's, until the next reload */
    if (c->customer_map) {
        double t0 = util_now_mono();
        g->map = custmap_load(c->customer_map, err, errlen);
        if (!g->map)
            return -1;
        g->map_secs = util_now_mono() - t0;
    }
    g->reg = registry_new(c, g->map, err, errlen);
    if (!g->reg || maildrops_check(g, err, errlen) < 0)
        return -1;
    if (!with_tls)
        return 0;
    return gen_build_tls(g, err, errlen);
}

static const char *gen_map_info(const struct gen *g, char *buf, size_t len)
{
    if (g->map)
        snprintf(buf, len, " (%zu from the customer map %s, read in %.3f s)",
                 g->map->ncustomers, g->map->path, g->map_secs);
    else
        buf[0] = 0;
    return buf;
}

/* ", N maildrops (M from the customer map)": address and domain maildrops. */
static const char *gen_maildrop_info(const struct gen *g, char *buf, size_t len)
{
    size_t n = registry_maildrop_count(g->reg);
    if (g->map)
        snprintf(buf, len, ", %zu maildrop%s (%zu from the map)", n, n == 1 ? "" : "s",
                 g->map->nmaildrops);
    else
        snprintf(buf, len, ", %zu maildrop%s", n, n == 1 ? "" : "s");
    return buf;
}

/* ---- reloads ---- */

static int customer_exists(const char *name)
{
    return qmgr_cust_by_name(name) != NULL;
}

/* pthread_create with every signal blocked in the new thread (signals are
 * the loop's).  0 or an errno. */
static int thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int e = pthread_create(t, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return e;
}

/* Frees a replaced generation (100,000 map customers take tens of ms). */
static void *reload_reaper(void *arg)
{
    gen_free(arg);
    free(arg);
    return NULL;
}

/* The worker: everything that may block, then wake the loop. */
static void *reload_worker(void *arg)
{
    if (R.reaping) {            /* the previous generation's memory first */
        pthread_join(R.reaper, NULL);
        R.reaping = 0;
    }
    memset(&R.result, 0, sizeof R.result);
    R.err[0] = 0;
    R.result.cfg = config_load(D.path, R.err, sizeof R.err);
    R.rc = R.result.cfg ? gen_build(&R.result, 1, R.err, sizeof R.err) : -1;
    if (R.rc < 0)
        gen_free(&R.result);
    else    /* D.cur stays as it is until the loop applies the result */
        registry_compare(R.result.reg, D.cur.reg);
    event_active(R.done_ev, EV_READ, 0);
    return NULL;
}

/* Tells each waiter of *list how the reload ended, and forgets them. */
static void tell_waiters(struct waiter **list, int rc, const char *err)
{
    struct waiter *w = *list, *n;
    *list = NULL;
    for (; w; w = n) {
        n = w->next;
        w->done(rc, err, w->arg);
        free(w);
    }
}

/* Starts a worker for the waiters of R.next (signals stay with the main
 * thread).  On failure to start, tells them at once. */
static void reload_start(void)
{
    R.current = R.next;
    R.next = NULL;
    R.again = 0;
    R.t0 = util_now_mono();
    int e = thread_start(&R.thread, reload_worker, NULL);
    R.running = e == 0;
    if (e == 0)
        return;
    snprintf(R.err, sizeof R.err, "cannot start the reload thread: %s", strerror(e));
    log_err("reload failed, keeping the old configuration: %s", R.err);
    tell_waiters(&R.current, -1, R.err);
}

/* The auth section's limits for failed logins, every protocol's. */
static void guard_configure(const struct config *c)
{
    struct auth_guard_conf gc = {
        .max_failures = c->auth.max_failures, .window = c->auth.failure_window,
        .delay_ms = c->auth.failure_delay * 1000, .max_delay_ms = c->auth.failure_delay_max * 1000,
    };
    auth_guard_configure(&gc);
}

/* Maildrops whose quota the new generation raises or lifts (found by the
 * reload's thread, registry_compare): the mail deferred for their quota is
 * tried again now, as when a POP3 QUIT makes room (deliver_maildrop_room),
 * not at its next retry time. */
static void quota_raised_retry(const struct registry *cur)
{
    for (size_t k = 0; k < registry_raised_count(cur); k++) {
        struct maildrop_ref now;
        registry_raised_at(cur, k, &now);
        deliver_maildrop_room(now.name);
    }
}

/* Swaps a loaded generation in (on the loop). */
static void reload_apply(struct gen *g)
{
    char info[512];
    double t0 = util_now_mono();
    if (strcmp(g->cfg->spool, D.cur.cfg->spool) || strcmp(g->cfg->control, D.cur.cfg->control))
        log_warn("reload: spool and control socket changes take effect at restart");
    qmgr_reconfigure(g->cfg, g->reg);
    guard_configure(g->cfg);
    smtp_server_configure(g->cfg, g->reg, g->tls);
    pop3_server_configure(g->cfg, g->reg, g->tls);
    deliver_configure_tls(g->client_tls);
    link_event_configure(g->reg);
    autoturn_configure(g->reg);
    radius_configure(g->cfg);
    links_prune(customer_exists);
    if (netlink_configure(D.base, g->cfg->netlink_enabled, info, sizeof info) < 0)
        log_err("reload: the netlink watcher cannot run: %s", info);
    struct gen *old = xmalloc(sizeof *old);
    *old = D.cur;
    D.cur = *g;
    memset(g, 0, sizeof *g);
    quota_raised_retry(D.cur.reg);
    if (D.cur.pw_warn[0])
        log_warn("reload: warning: %s", D.cur.pw_warn);
    /* nothing on the loop points into old any more (sessions look customers
     * up by name): free it in a thread, or here if none can start */
    if (R.reaping)
        log_fatal("reload: a reaper is still running");
    if (thread_start(&R.reaper, reload_reaper, old) == 0)
        R.reaping = 1;
    else
        reload_reaper(old);
    char mdinfo[96];
    log_info("configuration reloaded: %zu customers%s%s; loaded in %.3f s, "
             "applied in %.3f s", registry_count(D.cur.reg),
             gen_map_info(&D.cur, info, sizeof info),
             gen_maildrop_info(&D.cur, mdinfo, sizeof mdinfo), t0 - R.t0,
             util_now_mono() - t0);
}

/* The worker has finished (on the loop). */
static void reload_finished(evutil_socket_t fd, short what, void *arg)
{
    pthread_join(R.thread, NULL);
    R.running = 0;
    if (R.rc == 0 && D.stopping) {
        R.rc = -1;
        snprintf(R.err, sizeof R.err, "kickmaild is stopping");
        gen_free(&R.result);
    }
    if (R.rc == 0)
        reload_apply(&R.result);
    else
        log_err("reload failed, keeping the old configuration: %s", R.err);
    tell_waiters(&R.current, R.rc, R.err);
    if (D.stopping)
        tell_waiters(&R.next, -1, "kickmaild is stopping");
    else if (R.again)
        reload_start();
}

/* SIGHUP (done NULL) or kickq reload: a load that starts after now. */
static void reload_request(ctl_reload_done *done, void *arg)
{
    if (D.stopping) {
        if (done)
            done(-1, "kickmaild is stopping", arg);
        return;
    }
    if (done) {
        struct waiter *w = xcalloc(1, sizeof *w);
        w->done = done;
        w->arg = arg;
        w->next = R.next;
        R.next = w;
    }
    if (R.running) {
        R.again = 1;
        log_info("reload queued: another one is still loading");
        return;
    }
    reload_start();
}

/* After the loop: waits for a worker still loading, tells every waiter. */
static void reload_shutdown(void)
{
    if (R.running) {
        pthread_join(R.thread, NULL);
        R.running = 0;
        gen_free(&R.result);
    }
    if (R.reaping) {
        pthread_join(R.reaper, NULL);
        R.reaping = 0;
    }
    tell_waiters(&R.current, -1, "kickmaild is stopping");
    tell_waiters(&R.next, -1, "kickmaild is stopping");
    if (R.done_ev)
        event_free(R.done_ev);
    R.done_ev = NULL;
}

/* Sessions are gone: exit once deliveries in progress have completed. */
static void stopped_poll(evutil_socket_t fd, short what, void *arg)
{
    if (deliver_busy()) {
        struct timeval tv = { 0, 20000 };
        event_base_once(D.base, -1, EV_TIMEOUT, stopped_poll, NULL, &tv);
        return;
    }
    event_base_loopexit(D.base, NULL);
}

/* The SMTP and the POP3 server each call this once their sessions are gone. */
static void stopped(void)
{
    if (--D.servers == 0)
        stopped_poll(-1, 0, NULL);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    if (sig == SIGHUP) {
        reload_request(NULL, NULL);
        return;
    }
    if (D.stopping)
        return;
    D.stopping = 1;
    log_info("stopping on signal %d", (int)sig);
    ctl_stop();
    radius_stop();
    deliver_stop();
    struct timeval tv = { 10, 0 };
    event_base_loopexit(D.base, &tv);       /* sessions get at most 10 s */
    D.servers = 2;
    smtp_server_shutdown(stopped);
    pop3_server_shutdown(stopped);
}

/* Creates the spool directories owned by the run-time user (as root). */
/* mkdir -p for the parents of path (not path itself): 0755, owned by whoever
 * runs us. */
static int mkdir_parents(const char *path, char *err, size_t errlen)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(buf, 0755) < 0 && errno != EEXIST) {
            snprintf(err, errlen, "%.900s: %s", buf, strerror(errno));
            return -1;
        }
        *p = '/';
    }
    return 0;
}

/* Creates the spool directories (and missing parents of the spool and of the
 * control socket), the spool owned by the run-time user when started as root. */
static int spool_prepare(const struct config *c, const struct passwd *pw,
                         char *err, size_t errlen)
{
    static const char *const sub[] = { "", "/journal", "/state", "/corrupt" };
    char path[4096];
    if (mkdir_parents(c->spool, err, errlen) < 0 ||
        mkdir_parents(c->control, err, errlen) < 0)
        return -1;
    for (size_t i = 0; i < sizeof sub / sizeof sub[0]; i++) {
        snprintf(path, sizeof path, "%s%s", c->spool, sub[i]);
        if (mkdir(path, 0700) < 0 && errno != EEXIST) {
            snprintf(err, errlen, "%.900s: %s", path, strerror(errno));
            return -1;
        }
        if (pw && chown(path, pw->pw_uid, pw->pw_gid) < 0) {
            snprintf(err, errlen, "chown %.900s: %s", path, strerror(errno));
            return -1;
        }
    }
    return 0;
}

/* When there are maildrops: maildir_root (and its parents) made if missing,
 * owned by the run-time user when started as root.  A failure is logged,
 * not fatal: local deliveries defer with the reason until it is fixed. */
static void maildir_prepare(const struct config *c, const struct registry *reg,
                            const struct passwd *pw)
{
    char err[1024];
    const char *root = c->maildir_root;
    if (registry_maildrop_count(reg) == 0)
        return;
    if (mkdir_parents(root, err, sizeof err) < 0) {
        log_warn("maildir_root: %s; local delivery defers until it can be written", err);
        return;
    }
    if (mkdir(root, 0700) < 0) {
        if (errno != EEXIST)
            log_warn("maildir_root: %s: %s; local delivery defers until it can be "
                     "written", root, strerror(errno));
        return;
    }
    if (pw && chown(root, pw->pw_uid, pw->pw_gid) < 0)
        log_warn("maildir_root: chown %s: %s", root, strerror(errno));
}

/* The link table, for delivery (which does not read it itself). */
static int link_lookup(const char *customer, struct deliver_link *out)
{
    const struct link *l = links_get(customer);
    if (!l)
        return -1;
    out->up = l->up;
    out->address = l->address;
    return 0;
}

/* The link table's change callback: delivery starts or stops. */
static void link_changed(const struct link *l, int was_up, void *arg)
{
    deliver_link_changed(l->customer, l->up, was_up, l->address);
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
    struct config *c = D.cur.cfg;
    if (geteuid() == 0 && c->user) {
        pw = getpwnam(c->user);
        if (!pw) {
            log_err("user %s: no such user", c->user);
            return -1;
        }
    }
    /* the customer map is read here, before serving: the loop is not
     * running yet, so blocking is fine */
    if (gen_build(&D.cur, 1, err, sizeof err) < 0 || spool_prepare(c, pw, err, sizeof err) < 0) {
        log_err("%s", err);
        return -1;
    }
    maildir_prepare(c, D.cur.reg, pw);
    static const struct ctl_hooks hooks = { reload_request };
    if (smtp_server_bind(D.base, c, err, sizeof err) < 0 ||
        pop3_server_bind(D.base, c, err, sizeof err) < 0 ||
        auth_passwd_init(D.base, 0, err, sizeof err) < 0 ||
        ctl_start(D.base, c->control, &hooks, err, sizeof err) < 0 ||
        radius_bind(D.base, c, err, sizeof err) < 0) {
        log_err("cannot listen: %s", err);
        return -1;
    }
    if (pw && lchown(c->control, pw->pw_uid, pw->pw_gid) < 0)    /* never follows a link */
        log_warn("chown %s: %s", c->control, strerror(errno));
    D.spool = spool_open(c->spool, D.base, err, sizeof err);
    if (!D.spool) {
        log_err("spool: %s", err);
        return -1;
    }
    spool_set_spares(D.spool, c->spool_spares == SPARES_CONF_YES ? SPOOL_SPARES_ON
                            : c->spool_spares == SPARES_CONF_NO ? SPOOL_SPARES_OFF
                            : SPOOL_SPARES_AUTO);
    if (pw && drop_privileges(pw) < 0)
        return -1;
    if (links_init(D.base, D.spool, link_changed, NULL, err, sizeof err) < 0) {
        log_err("links: %s", err);
        return -1;
    }
    deliver_configure_tls(D.cur.client_tls);
    if (qmgr_init(D.base, D.spool, c, D.cur.reg, err, sizeof err) < 0 ||
        deliver_init(link_lookup, err, sizeof err) < 0) {
        log_err("spool: %s", err);
        return -1;
    }
    guard_configure(c);
    smtp_server_configure(c, D.cur.reg, D.cur.tls);
    pop3_server_set_room_hook(deliver_maildrop_room);
    pop3_server_configure(c, D.cur.reg, D.cur.tls);
    link_event_configure(D.cur.reg);
    autoturn_configure(D.cur.reg);
    radius_configure(c);
    if (netlink_configure(D.base, c->netlink_enabled, err, sizeof err) < 0) {
        log_err("cannot start the netlink watcher: %s", err);
        return -1;
    }
    if (!c->netlink_enabled)
        log_info("netlink watcher: not running (netlink { enabled = false })");
    R.done_ev = event_new(D.base, -1, 0, reload_finished, NULL);
    return 0;
}

/* -n: the configuration and the customer map, nothing bound or written. */
static int check_only(const char *unserved)
{
    char err[1024];
    if (gen_build(&D.cur, 0, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        gen_free(&D.cur);
        return 1;
    }
    if (unserved[0])
        printf("%s: sections not served by this version: %s\n", D.path, unserved);
    if (D.cur.pw_warn[0])
        printf("%s: warning: %s\n", D.path, D.cur.pw_warn);
    if (D.cur.map)
        printf("%s: %zu customers, %zu maildrops\n", D.cur.map->path,
               D.cur.map->ncustomers, D.cur.map->nmaildrops);
    size_t nlocal = 0;
    for (size_t i = 0; i < registry_count(D.cur.reg); i++)
        nlocal += registry_at(D.cur.reg, i)->deliver == DELIVER_LOCAL;
    printf("%s: maildir_root %s: %zu maildrops, %zu local domains\n", D.path,
           D.cur.cfg->maildir_root, registry_maildrop_count(D.cur.reg), nlocal);
    printf("%s: netlink watcher: %s\n", D.path,
           D.cur.cfg->netlink_enabled ? "enabled" : "not running (not enabled)");
    printf("configuration OK\n");
    gen_free(&D.cur);
    return 0;
}

int main(int argc, char **argv)
{
    int opt, fg = 0, check = 0;
    char err[1024], info[512];
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
    D.cur.cfg = config_load(D.path, err, sizeof err);
    if (!D.cur.cfg) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    char unserved[256];
    config_unserved(D.cur.cfg, unserved, sizeof unserved);
    if (check)
        return check_only(unserved);
    log_init("kickmaild", fg);
    raise_nofile();
    signal(SIGPIPE, SIG_IGN);
    evthread_use_pthreads();
    /* the changelist folds the add/remove pairs of write events a session
     * makes within one loop turn into at most one epoll_ctl */
    struct event_config *ecfg = event_config_new();
    event_config_set_flag(ecfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    D.base = event_base_new_with_config(ecfg);
    event_config_free(ecfg);
    if (!D.base || start() < 0)
        return 1;
    if (unserved[0])
        log_warn("sections not served by this version: %s", unserved);
    if (D.cur.pw_warn[0])
        log_warn("warning: %s", D.cur.pw_warn);
    struct event *sigs[3];
    int signums[3] = { SIGTERM, SIGINT, SIGHUP };
    for (int i = 0; i < 3; i++) {
        sigs[i] = evsignal_new(D.base, signums[i], on_signal, NULL);
        event_add(sigs[i], NULL);
    }
    char mdinfo[96];
    log_info("kickmaild %s ready: %zu customers%s%s, %zu messages queued", KM_VERSION,
             registry_count(D.cur.reg), gen_map_info(&D.cur, info, sizeof info),
             gen_maildrop_info(&D.cur, mdinfo, sizeof mdinfo), qmgr_msg_count());
    event_base_dispatch(D.base);
    reload_shutdown();
    pop3_server_free();         /* its worker threads */
    auth_passwd_shutdown();
    netlink_stop();
    links_stop();               /* the whole link table in one file: spool_close writes it */
    spool_close(D.spool);
    log_info("kickmaild stopped");
    for (int i = 0; i < 3; i++)
        event_free(sigs[i]);
    deliver_shutdown();
    qmgr_shutdown();
    links_shutdown();
    link_event_shutdown();
    radius_shutdown();
    link_event_configure(NULL);
    autoturn_shutdown();
    gen_free(&D.cur);
    event_base_free(D.base);
    log_close();                /* every queued line out before exit */
    return 0;
}

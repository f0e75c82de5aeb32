/*
 * resolve — host name lookups with c-ares on the libevent loop.
 *
 * One c-ares channel, made at the first lookup (so that a daemon whose
 * customers all have numeric hosts never reads /etc/resolv.conf) and made
 * again after resolve_configure() changed something, once no lookup is in
 * flight (c-ares 1.18 cannot change servers while queries are pending).
 * c-ares tells through its socket-state callback which sockets to watch:
 * each gets a persistent libevent event that calls ares_process_fd(); one
 * timer, re-armed from ares_timeout() after every call into c-ares, drives
 * its timeouts and retries.  Results are handed to the owner from an event
 * of their own, so that the owner's callback never runs inside c-ares (nor
 * inside resolve_start, when the answer is there at once: the hosts table,
 * errors).  /etc/hosts is never read here: a name it has is answered from
 * the table hosts.c read with the configuration (off the loop), and c-ares
 * asks the DNS only (ARES_OPT_LOOKUPS "b"); c-ares reads /etc/resolv.conf
 * (unless resolver is set) when it makes the channel.
 *
 * Trusts c-ares with the DNS answers (it checks IDs and questions); keeps
 * at most RESOLVE_MAX_ADDRS numeric addresses of an answer.  Bounded in
 * time by the configured timeout and tries (c-ares doubles the timeout at
 * each round of tries: 5 s and 2 tries give up after 15 s).
 */
#include <arpa/inet.h>
#include <ares.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/event.h>

#include "core/hosts.h"
#include "core/log.h"
#include "core/resolve.h"
#include "core/util.h"

struct resolve_req {
    resolve_cb *cb;                 /* NULL once cancelled */
    void *arg;
    char *name;
    int in_ares;                    /* c-ares has not called back yet */
    struct event *done_ev;          /* hands the result to cb from the loop */
    struct event *deadline_ev;      /* gives up on a lookup that takes too long */
    struct resolve_result res;
    char err[320];
};

/* A socket c-ares asked us to watch. */
struct rsock {
    ares_socket_t fd;
    struct event *ev;
    struct rsock *next;
};

static struct {
    struct event_base *base;
    ares_channel ch;
    int lib_init;
    struct event *timer;
    struct rsock *socks;
    unsigned in_flight;             /* lookups inside c-ares */
    int stale;                      /* the settings changed since ch was made */
    char *servers;                  /* NULL: the system's */
    int timeout_ms;
    int tries;
    const struct hosts *hosts;      /* the configuration's; NULL: none */
} R;

/* ---- c-ares on the loop ---- */

static void timer_update(void)
{
    struct timeval tv, *t = R.ch ? ares_timeout(R.ch, NULL, &tv) : NULL;
    if (t)
        evtimer_add(R.timer, t);
    else
        evtimer_del(R.timer);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    ares_process_fd(R.ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    timer_update();
}

static void on_sock(evutil_socket_t fd, short what, void *arg)
{
    /* may close fd: sock_state() then frees this event (allowed from its
     * own callback; nothing touches it after) */
    ares_process_fd(R.ch, (what & EV_READ) ? fd : ARES_SOCKET_BAD,
                    (what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
    timer_update();
}

static void sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
    struct rsock **pp = &R.socks, *s;
    while ((s = *pp) && s->fd != fd)
        pp = &s->next;
    if (s) {
        event_free(s->ev);
        s->ev = NULL;
    }
    if (!readable && !writable) {
        if (s) {
            *pp = s->next;
            free(s);
        }
        return;
    }
    if (!s) {
        s = xcalloc(1, sizeof *s);
        s->fd = fd;
        s->next = R.socks;
        R.socks = s;
    }
    s->ev = event_new(R.base, fd, (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0) |
                      EV_PERSIST, on_sock, NULL);
    if (!s->ev || event_add(s->ev, NULL) < 0)
        log_fatal("resolve: cannot watch a DNS socket");
}

static void channel_free(void)
{
    if (R.ch)
        ares_destroy(R.ch);         /* calls back pending lookups, closes sockets */
    R.ch = NULL;
    while (R.socks) {               /* none left, unless c-ares did not say */
        struct rsock *s = R.socks;
        R.socks = s->next;
        event_free(s->ev);
        free(s);
    }
    if (R.timer)
        evtimer_del(R.timer);
}

/* The channel, made now if needed; -1 with why. */
static int channel_get(char *err, size_t errlen)
{
    if (R.ch && R.stale && R.in_flight == 0)
        channel_free();
    if (R.ch)
        return 0;
    if (!R.lib_init) {
        int rc = ares_library_init(ARES_LIB_INIT_ALL);
        if (rc != ARES_SUCCESS)
            return util_fail(err, errlen, "c-ares: %s", ares_strerror(rc));
        R.lib_init = 1;
    }
    struct ares_options o;
    memset(&o, 0, sizeof o);
    o.sock_state_cb = sock_state;
    o.timeout = R.timeout_ms;
    o.tries = R.tries;
    o.domains = NULL;               /* no search domains: names are as given */
    o.ndomains = 0;
    o.lookups = (char *)"b";        /* DNS only: the hosts table answered before */
    int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES |
               ARES_OPT_DOMAINS | ARES_OPT_LOOKUPS;
    int rc = ares_init_options(&R.ch, &o, mask);
    if (rc != ARES_SUCCESS) {
        R.ch = NULL;
        return util_fail(err, errlen, "c-ares: %s", ares_strerror(rc));
    }
    if (R.servers && (rc = ares_set_servers_ports_csv(R.ch, R.servers)) != ARES_SUCCESS) {
        channel_free();
        return util_fail(err, errlen, "resolver \"%s\": %s", R.servers, ares_strerror(rc));
    }
    R.stale = 0;
    return 0;
}

/* ---- lookups ---- */

static void req_free(struct resolve_req *req)
{
    event_free(req->done_ev);
    event_free(req->deadline_ev);
    free(req->name);
    free(req);
}

static void req_done(evutil_socket_t fd, short what, void *arg)
{
    struct resolve_req *req = arg;
    if (req->cb)
        req->cb(req->name, req->err[0] ? NULL : &req->res, req->err[0] ? req->err : NULL,
                req->arg);
    req_free(req);
}

static void collect(struct resolve_req *req, const struct ares_addrinfo *ai)
{
    struct resolve_result *r = &req->res;
    for (const struct ares_addrinfo_node *n = ai ? ai->nodes : NULL;
         n && r->n < RESOLVE_MAX_ADDRS; n = n->ai_next) {
        char a[RESOLVE_ADDR_LEN];
        const void *src;
        if (n->ai_family == AF_INET)
            src = &((const struct sockaddr_in *)(const void *)n->ai_addr)->sin_addr;
        else if (n->ai_family == AF_INET6)
            src = &((const struct sockaddr_in6 *)(const void *)n->ai_addr)->sin6_addr;
        else
            continue;
        if (!inet_ntop(n->ai_family, src, a, sizeof a))
            continue;
        size_t i;
        for (i = 0; i < r->n && strcmp(r->addr[i], a); i++)
            ;
        if (i == r->n)
            memcpy(r->addr[r->n++], a, sizeof a);
    }
}

/* A lookup's whole time is bounded, whatever the servers, tries and
 * doubling timeouts: at most 4 tries' worth, and never over a minute.  The
 * owner hears of the failure now; c-ares's answer, when it comes, is
 * dropped (a single query cannot be cancelled in c-ares 1.18). */
#define RESOLVE_DEADLINE_TRIES  4
#define RESOLVE_DEADLINE_MAX_MS 60000

static int deadline_ms(void)
{
    long ms = (long)R.timeout_ms * RESOLVE_DEADLINE_TRIES;
    return ms > RESOLVE_DEADLINE_MAX_MS ? RESOLVE_DEADLINE_MAX_MS : (int)ms;
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct resolve_req *req = arg;
    resolve_cb *cb = req->cb;
    if (!req->in_ares || !cb)
        return;                     /* answered meanwhile, or cancelled */
    req->cb = NULL;                 /* on_answer frees it */
    snprintf(req->err, sizeof req->err, "DNS lookup of %s failed: no answer within "
             "%d s", req->name, (deadline_ms() + 999) / 1000);
    cb(req->name, NULL, req->err, req->arg);
}

static void on_answer(void *arg, int status, int timeouts, struct ares_addrinfo *ai)
{
    struct resolve_req *req = arg;
    req->in_ares = 0;
    R.in_flight--;
    if (status == ARES_SUCCESS)
        collect(req, ai);
    if (ai)
        ares_freeaddrinfo(ai);
    if (!req->cb || status == ARES_EDESTRUCTION) {   /* cancelled, or shutdown */
        req_free(req);
        return;
    }
    if (status == ARES_ENOTFOUND)
        snprintf(req->err, sizeof req->err, "host %s not found", req->name);
    else if (status == ARES_ENODATA || (status == ARES_SUCCESS && req->res.n == 0))
        snprintf(req->err, sizeof req->err, "host %s has no address (no A or AAAA "
                 "record)", req->name);
    else if (status == ARES_ECONNREFUSED)  /* c-ares 1.18: also SERVFAIL, REFUSED */
        snprintf(req->err, sizeof req->err, "DNS lookup of %s failed: no DNS server "
                 "answered it (server failure, refused, or unreachable)", req->name);
    else if (status != ARES_SUCCESS)
        snprintf(req->err, sizeof req->err, "DNS lookup of %s failed: %s", req->name,
                 ares_strerror(status));
    event_active(req->done_ev, 0, 0);
}

struct resolve_req *resolve_start(const char *name, resolve_cb *cb, void *arg)
{
    struct resolve_req *req = xcalloc(1, sizeof *req);
    char why[200];
    req->cb = cb;
    req->arg = arg;
    req->name = xstrdup(name);
    req->done_ev = event_new(R.base, -1, 0, req_done, req);
    req->deadline_ev = evtimer_new(R.base, on_deadline, req);
    if (!req->done_ev || !req->deadline_ev)
        log_fatal("resolve: out of memory");
    if (hosts_lookup(R.hosts, name, &req->res) == 0) {
        event_active(req->done_ev, 0, 0);
        return req;
    }
    if (channel_get(why, sizeof why) < 0) {
        snprintf(req->err, sizeof req->err, "DNS lookup of %s failed: %s", name, why);
        event_active(req->done_ev, 0, 0);
        return req;
    }
    struct ares_addrinfo_hints hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    req->in_ares = 1;
    R.in_flight++;
    int ms = deadline_ms();
    struct timeval tv = { ms / 1000, ms % 1000 * 1000 };
    evtimer_add(req->deadline_ev, &tv);
    ares_getaddrinfo(R.ch, name, NULL, &hints, on_answer, req);   /* may call back now */
    timer_update();
    return req;
}

void resolve_cancel(struct resolve_req *req)
{
    if (!req)
        return;
    if (req->in_ares)
        req->cb = NULL;             /* on_answer frees it */
    else
        req_free(req);              /* its result was waiting for the loop */
}

/* ---- set-up ---- */

void resolve_configure(struct event_base *base, const char *servers, long timeout_s,
                       unsigned tries, const struct hosts *hosts)
{
    const char *sv = servers && *servers ? servers : NULL;
    int ms = (int)(timeout_s > 0 && timeout_s <= 300 ? timeout_s * 1000 : 5000);
    int t = tries >= 1 && tries <= 10 ? (int)tries : 2;
    if (!R.timer) {
        R.base = base;
        R.timer = evtimer_new(base, on_timer, NULL);
        if (!R.timer)
            log_fatal("resolve: out of memory");
    }
    R.hosts = hosts;
    if (ms != R.timeout_ms || t != R.tries || (!sv != !R.servers) ||
        (sv && strcmp(sv, R.servers))) {
        free(R.servers);
        R.servers = sv ? xstrdup(sv) : NULL;
        R.timeout_ms = ms;
        R.tries = t;
        R.stale = 1;
    }
}

void resolve_shutdown(void)
{
    channel_free();
    if (R.timer)
        event_free(R.timer);
    free(R.servers);
    if (R.lib_init)
        ares_library_cleanup();
    memset(&R, 0, sizeof R);
}

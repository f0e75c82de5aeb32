/*
 * listener — binding and accepting for every protocol: TCP, UDP and Unix
 * stream sockets in sets that share connection limits (see listener.h).
 * Binds numeric addresses from the configuration (trusted, already
 * validated) and socket paths (refusing to remove anything at the path but
 * a stale socket); reports every failure with the address.  From the peer
 * it takes nothing but the connection or the datagram: a connection over a
 * limit is refused before the protocol sees it (with the protocol's line,
 * written without waiting); a datagram is handed over whole, with its
 * source.  Guarantees: a counted connection is counted out exactly once
 * (listener_conn_close); a socket whose accept fails does not spin, it
 * pauses for the protocol's delay or until a connection closes; the
 * identity (struct listener_info) a connection points to lives as long as
 * the set, after listener_set_stop() too.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "core/config.h"
#include "core/io.h"
#include "core/listener.h"
#include "core/log.h"
#include "core/util.h"

#define UDP_RCVBUF (4 << 20)       /* bytes asked for a UDP socket's receive buffer */
#define DGRAM_MAX   65536       /* every UDP payload fits */
#define DGRAM_BURST 64          /* datagrams per wake-up: others get a turn */
#define UNIX_BACKLOG 16

/* One bound socket. */
struct listener_sock {
    struct listener_set *set;
    struct listener_info info;
    char *addr;                 /* owned: what info.addr points to */
    int is_path;                /* addr is a Unix socket path (unlink at stop) */
    int fd;                     /* -1 once stopped */
    struct evconnlistener *lev; /* stream sockets */
    struct event *resume;       /* ... ends a pause after an accept failure */
    int paused;
    struct event *ev;           /* datagram sockets: readable */
    unsigned char *buf;         /* ... and their receive buffer */
};

struct listener_set {
    struct event_base *base;
    const struct listener_proto *p;
    void *arg;
    struct listener_sock **socks;
    size_t nsocks;
    LIST_HEAD(, listener_conn) conns;
    unsigned nconns;
    struct hmap *clients;       /* peer address -> struct listener_client */
    unsigned max_conns, max_per_client;
    int stopped;
    void (*drained)(void *arg);
    void *drained_arg;
};

struct listener_set *listener_set_new(struct event_base *base,
                                      const struct listener_proto *p, void *arg)
{
    struct listener_set *s = xcalloc(1, sizeof *s);
    s->base = base;
    s->p = p;
    s->arg = arg;
    LIST_INIT(&s->conns);
    s->clients = hmap_new(0);
    return s;
}

void listener_set_limits(struct listener_set *s, unsigned max_conns,
                         unsigned max_per_client)
{
    s->max_conns = max_conns;
    s->max_per_client = max_per_client;
}

const struct listener_info *listener_set_info(const struct listener_set *s, size_t i)
{
    return i < s->nsocks ? &s->socks[i]->info : NULL;
}

unsigned listener_set_conns(const struct listener_set *s)
{
    return s->nconns;
}

/* ---- connections ---- */

static void sock_resume(struct listener_sock *k)
{
    if (!k->lev)            /* stopped meanwhile */
        return;
    k->paused = 0;
    event_del(k->resume);
    evconnlistener_enable(k->lev);
}

/* Counts c out and frees it (c->fd is the protocol's business). */
static void conn_forget(struct listener_conn *c)
{
    struct listener_set *s = c->set;
    struct listener_client *cl = c->client;
    LIST_REMOVE(c, entry);
    s->nconns--;
    if (--cl->n == 0) {
        if (cl->bytes)
            log_fatal("%s: client %s gone with %llu bytes counted", s->p->name, cl->addr,
                      (unsigned long long)cl->bytes);
        hmap_del(s->clients, cl->addr);
        free(cl);
    }
    free(c);
    for (size_t i = 0; i < s->nsocks; i++)      /* a descriptor is free again */
        if (s->socks[i]->paused)
            sock_resume(s->socks[i]);
    if (s->stopped && s->nconns == 0 && s->drained) {
        void (*fn)(void *) = s->drained;
        s->drained = NULL;
        fn(s->drained_arg);
    }
}

void listener_conn_close(struct listener_conn *c)
{
    struct listener_set *s = c->set;
    if (s->p->closed)
        s->p->closed(c, s->arg);
    conn_forget(c);
}

void listener_set_each(struct listener_set *s,
                       void (*fn)(struct listener_conn *c, void *arg), void *arg)
{
    struct listener_conn *c, *next;
    for (c = LIST_FIRST(&s->conns); c; c = next) {
        next = LIST_NEXT(c, entry);
        fn(c, arg);
    }
}

/* The protocol's refusal line, sent without waiting (best effort: the peer
 * is being turned away anyway), then the socket is closed. */
static void conn_refuse(struct listener_set *s, const struct listener_info *info,
                        enum listener_refusal why, int fd, const char *peer)
{
    char line[512];
    size_t n = 0;
    if (s->p->refusal)
        n = s->p->refusal(why, info, peer, line, sizeof line, s->arg);
    if (n > sizeof line)
        n = sizeof line;
    if (n && write(fd, line, n) < 0) {
        /* best effort */
    }
    close(fd);
}

static void conn_peer_name(const struct sockaddr *sa, int salen, char *buf, size_t len)
{
    if (salen >= (int)sizeof(sa_family_t) && sa->sa_family == AF_UNIX)
        snprintf(buf, len, "unix");
    else
        io_addr_name(sa, (socklen_t)salen, buf, len);     /* no getpeername() */
}

/* The limits, then the protocol's accept hook, for a connected fd that
 * info's socket accepted (or that was adopted as if it had). */
static int conn_admit(struct listener_set *s, const struct listener_info *info, int fd,
                      const struct sockaddr *sa, int salen, const char *peer)
{
    if (s->max_conns && s->nconns >= s->max_conns && s->p->full)
        s->p->full(s->arg);                     /* may make room */
    if (s->max_conns && s->nconns >= s->max_conns) {
        conn_refuse(s, info, LISTENER_FULL, fd, peer);
        return -1;
    }
    struct listener_client *cl = hmap_get(s->clients, peer);
    if (cl && s->max_per_client && cl->n >= s->max_per_client) {
        conn_refuse(s, info, LISTENER_CLIENT_FULL, fd, peer);
        return -1;
    }
    if (!cl) {
        cl = xcalloc(1, sizeof *cl);
        snprintf(cl->addr, sizeof cl->addr, "%s", peer);
        hmap_put(s->clients, cl->addr, cl);
    }
    cl->n++;
    struct listener_conn *c = xcalloc(1, sizeof *c);
    c->info = info;
    c->fd = fd;
    snprintf(c->peer, sizeof c->peer, "%s", peer);
    if (sa && salen > 0 && (size_t)salen <= sizeof c->addr) {
        memcpy(&c->addr, sa, (size_t)salen);
        c->addrlen = (socklen_t)salen;
    }
    c->client = cl;
    c->set = s;
    LIST_INSERT_HEAD(&s->conns, c, entry);
    s->nconns++;
    if (s->p->accept(c, s->arg) < 0) {         /* c may be gone when 0 */
        close(fd);
        conn_forget(c);
        return -1;
    }
    return 0;
}

static void sock_accept(struct evconnlistener *l, evutil_socket_t fd,
                        struct sockaddr *sa, int salen, void *arg)
{
    struct listener_sock *k = arg;
    char peer[64];
    conn_peer_name(sa, salen, peer, sizeof peer);
    conn_admit(k->set, &k->info, fd, sa, salen, peer);
}

int listener_adopt(struct listener_set *s, const struct listener_info *info, int fd,
                   const char *peer)
{
    return conn_admit(s, info, fd, NULL, 0, peer);
}

static void sock_resume_cb(evutil_socket_t fd, short what, void *arg)
{
    sock_resume(arg);
}

/* EMFILE, ENFILE, ENOMEM...: pause instead of spinning on the socket. */
static void sock_accept_error(struct evconnlistener *l, void *arg)
{
    struct listener_sock *k = arg;
    int e = EVUTIL_SOCKET_ERROR();
    long ms = k->set->p->pause_ms;
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    log_warn("%s: accept: %s", k->set->p->name, evutil_socket_error_to_string(e));
    evconnlistener_disable(l);
    k->paused = 1;
    event_add(k->resume, &tv);
}

/* ---- datagrams ---- */

static void sock_read_dgram(evutil_socket_t fd, short what, void *arg)
{
    struct listener_sock *k = arg;
    struct listener_set *s = k->set;
    for (int i = 0; i < DGRAM_BURST && k->fd >= 0; i++) {
        struct listener_datagram d = { .info = &k->info, .buf = k->buf, .fd = k->fd };
        d.fromlen = sizeof d.from;
        ssize_t n = recvfrom(k->fd, k->buf, DGRAM_MAX, MSG_DONTWAIT,
                             (struct sockaddr *)&d.from, &d.fromlen);
        if (n < 0) {
            if (errno == EINTR || errno == ECONNREFUSED)    /* ICMP for a reply */
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                log_warn("%s: receive on %s: %s", s->p->name, k->info.addr, strerror(errno));
            return;
        }
        d.len = (size_t)n;
        io_addr_name((struct sockaddr *)&d.from, d.fromlen, d.peer, sizeof d.peer);
        if (s->p->datagram)
            s->p->datagram(&d, s->arg);         /* may stop the set */
    }
}

int listener_reply(const struct listener_datagram *d, const void *buf, size_t len)
{
    ssize_t n = sendto(d->fd, buf, len, MSG_DONTWAIT, (const struct sockaddr *)&d->from,
                       d->fromlen);
    return n < 0 ? -1 : 0;
}

/* ---- binding ---- */

static struct listener_sock *sock_add(struct listener_set *s, const char *addr,
                                      const struct listener_info *tmpl, int fd)
{
    struct listener_sock *k = xcalloc(1, sizeof *k);
    k->set = s;
    k->info = *tmpl;
    k->addr = xstrdup(addr);
    k->info.addr = k->addr;
    k->info.port = 0;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET)
            k->info.port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else if (ss.ss_family == AF_INET6)
            k->info.port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    k->fd = fd;
    s->socks = xrealloc(s->socks, (s->nsocks + 1) * sizeof *s->socks);
    s->socks[s->nsocks++] = k;
    return k;
}

/* A numeric listen address to a bound socket of type; -1 with err. */
static int bind_inet(const struct listen_addr *a, int type, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, a->host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)a->port);
        sl = sizeof *s4;
    } else if (inet_pton(AF_INET6, a->host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)a->port);
        sl = sizeof *s6;
    } else {
        snprintf(err, errlen, "%s: not a numeric address", a->text);
        return -1;
    }
    int fd = socket(ss.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "%s: socket: %s", a->text, strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (ss.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, sl) < 0 ||
        (type == SOCK_STREAM && listen(fd, SOMAXCONN) < 0)) {
        snprintf(err, errlen, "%s: %s", a->text, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* A listening stream socket into the set, disabled.  Closes fd on failure. */
static struct listener_sock *add_stream(struct listener_set *s, int fd, const char *addr,
                                        const struct listener_info *tmpl, int backlog)
{
    struct evconnlistener *l = evconnlistener_new(s->base, sock_accept, NULL,
        LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_DISABLED, backlog, fd);
    if (!l) {
        close(fd);
        return NULL;
    }
    struct listener_sock *k = sock_add(s, addr, tmpl, fd);
    k->lev = l;
    evconnlistener_set_cb(l, sock_accept, k);
    evconnlistener_set_error_cb(l, sock_accept_error);
    k->resume = evtimer_new(s->base, sock_resume_cb, k);
    return k;
}

int listener_add_tcp(struct listener_set *s, const struct listen_addr *a,
                     const struct listener_info *tmpl, char *err, size_t errlen)
{
    int fd = bind_inet(a, SOCK_STREAM, err, errlen);
    if (fd < 0)
        return -1;
    if (!add_stream(s, fd, a->text, tmpl, -1)) {    /* -1: listen() done */
        snprintf(err, errlen, "%s: cannot listen", a->text);
        return -1;
    }
    return 0;
}

int listener_add_udp(struct listener_set *s, const struct listen_addr *a,
                     const struct listener_info *tmpl, char *err, size_t errlen)
{
    int fd = bind_inet(a, SOCK_DGRAM, err, errlen);
    if (fd < 0)
        return -1;
    /* A burst of datagrams (an access server resending its buffered
     * accounting, a storm after an outage) waits in the kernel while the
     * loop is busy: ask for a large receive buffer (as root past
     * net.core.rmem_max; otherwise the kernel caps it there). */
    int rcvbuf = UDP_RCVBUF;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) < 0)
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct listener_sock *k = sock_add(s, a->text, tmpl, fd);
    k->buf = xmalloc(DGRAM_MAX);
    k->ev = event_new(s->base, fd, EV_READ | EV_PERSIST, sock_read_dgram, k);
    return 0;
}

/* Removes a socket file left by a dead daemon; refuses to touch anything
 * else, or a socket somebody still listens on. */
static int unix_remove_stale(const char *path, char *err, size_t errlen)
{
    struct stat st;
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    if (lstat(path, &st) < 0) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (S_ISLNK(st.st_mode)) {
        snprintf(err, errlen, "%s: is a symbolic link (not followed, not removed)", path);
        return -1;
    }
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "%s: exists and is not a socket", path);
        return -1;
    }
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd >= 0) {
        int rc = connect(fd, (struct sockaddr *)&sun, sizeof sun);
        int e = errno;
        close(fd);
        if (rc == 0 || e == EAGAIN || e == EINPROGRESS) {
            snprintf(err, errlen, "%s: another process is listening there", path);
            return -1;
        }
    }
    if (unlink(path) < 0 && errno != ENOENT) {
        snprintf(err, errlen, "cannot remove stale %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* Binds the socket at path with its mode from the start: the mode of a
 * Unix socket file is 0777 less the umask at bind (Linux also takes an
 * fchmod of the socket before bind into account, but still applies the
 * umask), so the umask is set for the bind alone.  Nothing follows: no
 * chmod by name, which would follow a symlink put there after the bind.
 * umask is process-wide: see listener_add_unix's contract. */
static int unix_bind(const char *path, mode_t mode, const char *proto, char *err,
                     size_t errlen)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(err, errlen, "%s socket: %s", proto, strerror(errno));
        return -1;
    }
    mode_t mask = umask(~mode & 0777);
    int rc = bind(fd, (struct sockaddr *)&sun, sizeof sun);
    int e = errno;
    umask(mask);
    if (rc < 0) {
        snprintf(err, errlen, "bind %s: %s", path, strerror(e));
        close(fd);
        return -1;
    }
    return fd;
}

int listener_add_unix(struct listener_set *s, const char *path, mode_t mode,
                      const struct listener_info *tmpl, char *err, size_t errlen)
{
    struct sockaddr_un sun;
    if (!path[0] || strlen(path) >= sizeof sun.sun_path) {
        snprintf(err, errlen, "socket path is empty or too long: %s", path);
        return -1;
    }
    if (unix_remove_stale(path, err, errlen) < 0)
        return -1;
    int fd = unix_bind(path, mode, tmpl->proto, err, errlen);
    if (fd < 0)
        return -1;
    struct listener_sock *k = add_stream(s, fd, path, tmpl, UNIX_BACKLOG);
    if (!k) {
        snprintf(err, errlen, "listen %s: %s", path, strerror(errno));
        unlink(path);
        return -1;
    }
    k->is_path = 1;
    return 0;
}

/* ---- starting and stopping ---- */

void listener_set_enable(struct listener_set *s)
{
    for (size_t i = 0; i < s->nsocks; i++) {
        struct listener_sock *k = s->socks[i];
        if (k->lev)
            sock_resume(k);
        else if (k->ev)
            event_add(k->ev, NULL);
    }
}

void listener_set_stop(struct listener_set *s, void (*drained)(void *arg), void *arg)
{
    for (size_t i = 0; i < s->nsocks; i++) {
        struct listener_sock *k = s->socks[i];
        if (k->lev) {
            evconnlistener_free(k->lev);        /* closes fd */
            k->lev = NULL;
            if (k->is_path)
                unlink(k->addr);
        }
        if (k->resume) {
            event_free(k->resume);
            k->resume = NULL;
        }
        if (k->ev) {
            event_free(k->ev);
            k->ev = NULL;
            close(k->fd);
        }
        k->fd = -1;
        k->paused = 0;
    }
    s->stopped = 1;
    s->drained = drained;
    s->drained_arg = arg;
    if (s->nconns == 0 && drained) {
        s->drained = NULL;
        drained(arg);
    }
}

void listener_set_free(struct listener_set *s)
{
    if (!s)
        return;
    if (s->nconns)
        log_fatal("%s: listener set freed with %u connections", s->p->name, s->nconns);
    if (!s->stopped)
        listener_set_stop(s, NULL, NULL);
    for (size_t i = 0; i < s->nsocks; i++) {
        free(s->socks[i]->addr);
        free(s->socks[i]->buf);
        free(s->socks[i]);
    }
    free(s->socks);
    hmap_free(s->clients);
    free(s);
}

/*
 * radius — the RADIUS accounting listener (see radius.h for the contract):
 * UDP sockets of the listener layer; each datagram goes through client
 * lookup (longest prefix), radius_parse(), the Request Authenticator, the
 * retransmission cache, then becomes link_event()s; the Accounting-Response
 * is sent from link_event's callback, once the change is durable.
 *
 * Trusts nothing in a datagram: the source decides the client (and so the
 * secret) before anything else; a packet is parsed only after that, acted
 * on only once its authenticator is right.  Names and session ids from the
 * packet reach logs and the link table with non-printable bytes as '?'.
 * Every memory is bounded: retransmission cache 8,192 entries of 30 s,
 * stopped sessions 65,536 of 2 h, log rate limits 1,024 names each; the
 * oldest entry goes first when one is full.  Secrets are never logged.
 * Runs on the loop thread only; nothing blocks.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "core/config.h"
#include "core/digest.h"
#include "core/listener.h"
#include "core/log.h"
#include "core/netlist.h"
#include "core/stats.h"
#include "core/util.h"
#include "link/link_event.h"
#include "link/links.h"
#include "link/radius.h"

#define DUP_TTL         30.0        /* s a retransmission is answered again */
#define DUP_MAX         8192
#define STOPPED_TTL     7200.0      /* s a stopped session is remembered */
#define STOPPED_MAX     65536
#define LOG_SOURCE_IVL  60.0        /* s between lines about one source */
#define LOG_USER_IVL    3600.0      /* s between lines about one user name */
#define LOG_MAX         1024
#define NAS_MAX         31          /* bytes of the NAS part of a session */
#define SESSION_MAX     63          /* what the link table keeps */

/* ---- bounded memories: keys seen recently, oldest first ---- */

struct recent_ent {
    char *key;
    double t;                   /* monotonic, when put */
    void *data;                 /* the owner's (retransmission cache: a req) */
    unsigned char reply[RADIUS_HDR_LEN];
    int answered;               /* reply is set */
    TAILQ_ENTRY(recent_ent) q;
};

struct recent {
    struct hmap *m;
    TAILQ_HEAD(, recent_ent) q;
    size_t n, max;
    double ttl;
    void (*evicted)(struct recent_ent *e);   /* optional */
};

static void recent_init(struct recent *r, size_t max, double ttl,
                        void (*evicted)(struct recent_ent *e))
{
    r->m = hmap_new(0);
    TAILQ_INIT(&r->q);
    r->n = 0;
    r->max = max;
    r->ttl = ttl;
    r->evicted = evicted;
}

static void recent_drop(struct recent *r, struct recent_ent *e)
{
    if (r->evicted)
        r->evicted(e);
    TAILQ_REMOVE(&r->q, e, q);
    hmap_del(r->m, e->key);
    r->n--;
    free(e->key);
    free(e);
}

/* Forgets entries older than the TTL. */
static void recent_expire(struct recent *r, double now)
{
    struct recent_ent *e;
    while ((e = TAILQ_FIRST(&r->q)) && now - e->t >= r->ttl)
        recent_drop(r, e);
}

static struct recent_ent *recent_get(struct recent *r, const char *key, double now)
{
    recent_expire(r, now);
    return r->m ? hmap_get(r->m, key) : NULL;
}

/* Puts key (new or again: then it moves to the end). */
static struct recent_ent *recent_put(struct recent *r, const char *key, double now)
{
    struct recent_ent *e = recent_get(r, key, now);
    if (e) {
        TAILQ_REMOVE(&r->q, e, q);
    } else {
        if (r->n >= r->max)
            recent_drop(r, TAILQ_FIRST(&r->q));
        e = xcalloc(1, sizeof *e);
        e->key = xstrdup(key);
        hmap_put(r->m, e->key, e);
        r->n++;
    }
    e->t = now;
    TAILQ_INSERT_TAIL(&r->q, e, q);
    return e;
}

static void recent_free(struct recent *r)
{
    struct recent_ent *e;
    if (!r->m)
        return;
    while ((e = TAILQ_FIRST(&r->q)))
        recent_drop(r, e);
    hmap_free(r->m);
    r->m = NULL;
}

/* 1 when a line about key may be logged now (at most once per TTL). */
static int recent_may_log(struct recent *r, const char *key, double now)
{
    if (recent_get(r, key, now))
        return 0;
    recent_put(r, key, now);
    return 1;
}

/* ---- state ---- */

struct client {
    int family;
    unsigned char net[16];
    int prefix;
    char *secret;
    size_t slen;
};

/* A request acted on, waiting for its link events to be durable. */
struct req {
    struct listener_datagram to;        /* where the reply goes (buf unused) */
    unsigned char reply[RADIUS_HDR_LEN];
    struct recent_ent *dup;             /* its retransmission entry, if kept */
    unsigned pending;                   /* link events not yet done */
    LIST_ENTRY(req) entry;
};

static struct {
    struct listener_set *set;
    struct client *clients;
    size_t nclients;
    int stopped;
    struct recent dups, stopped_sess, log_sources, log_users;
    LIST_HEAD(, req) reqs;
} R;

static const struct listener_info radius_info = { .proto = "radius" };

/* ---- pure helpers ---- */

int radius_auth_ok(const unsigned char *pkt, size_t len, const char *secret, size_t slen)
{
    static const unsigned char zero[RADIUS_AUTH_LEN];
    unsigned char md[DIGEST_MD5_LEN];
    if (len < RADIUS_HDR_LEN)
        return 0;
    struct digest_part parts[] = {
        { pkt, 4 }, { zero, sizeof zero },
        { pkt + RADIUS_HDR_LEN, len - RADIUS_HDR_LEN }, { secret, slen },
    };
    if (digest_md5(parts, 4, md) < 0)
        return 0;
    unsigned diff = 0;          /* constant time: no early exit */
    for (int i = 0; i < RADIUS_AUTH_LEN; i++)
        diff |= (unsigned)(md[i] ^ pkt[4 + i]);
    return diff == 0;
}

void radius_response(uint8_t id, const uint8_t req_auth[RADIUS_AUTH_LEN],
                     const char *secret, size_t slen, unsigned char out[RADIUS_HDR_LEN])
{
    out[0] = RADIUS_CODE_ACCT_RESPONSE;
    out[1] = id;
    out[2] = 0;
    out[3] = RADIUS_HDR_LEN;
    struct digest_part parts[] = {
        { out, 4 }, { req_auth, RADIUS_AUTH_LEN }, { secret, slen },
    };
    if (digest_md5(parts, 3, out + 4) < 0)
        log_err("radius: MD5 failed");      /* out + 4 is zeros: the NAS drops it */
}

/* n bytes of s into out (outlen > 0) with bytes outside printable ASCII,
 * and those in bad, as '?'. */
static void printable(char *out, size_t outlen, const char *s, size_t n, const char *bad)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < outlen; i++) {
        unsigned char ch = (unsigned char)s[i];
        out[o++] = ch < 0x21 || ch > 0x7e || strchr(bad, ch) ? '?' : (char)ch;
    }
    out[o] = 0;
}

void radius_nas_name(const struct radius_acct *a, const char *peer, char *out, size_t outlen)
{
    char buf[INET6_ADDRSTRLEN];
    size_t max = outlen < NAS_MAX + 1 ? outlen : NAS_MAX + 1;
    if (a->nas_id.len)
        printable(out, max, a->nas_id.s, a->nas_id.len, "/");
    else if (a->has_nas_ip && inet_ntop(AF_INET, a->nas_ip, buf, sizeof buf))
        printable(out, max, buf, strlen(buf), "/");
    else if (a->has_nas_ipv6 && inet_ntop(AF_INET6, a->nas_ipv6, buf, sizeof buf))
        printable(out, max, buf, strlen(buf), "/");
    else
        printable(out, max, peer, strlen(peer), "/");
}

void radius_session(const struct radius_acct *a, const char *peer, char *out, size_t outlen)
{
    char nas[NAS_MAX + 1], sid[SESSION_MAX + 1];
    radius_nas_name(a, peer, nas, sizeof nas);
    printable(sid, sizeof sid, a->session_id.s, a->session_id.len, "");
    size_t max = outlen < SESSION_MAX + 1 ? outlen : SESSION_MAX + 1;
    size_t nl = strlen(nas), sl = strlen(sid), o = 0;
    for (size_t i = 0; i < nl && o + 1 < max; i++)
        out[o++] = nas[i];
    if (o + 1 < max)
        out[o++] = '/';
    for (size_t i = 0; i < sl && o + 1 < max; i++)
        out[o++] = sid[i];
    out[o] = 0;
}

/* ---- clients ---- */

/* The sender's address as family + bytes (IPv4-mapped IPv6 as IPv4). */
static int source_of(const struct listener_datagram *d, unsigned char addr[16])
{
    if (d->from.ss_family == AF_INET) {
        memcpy(addr, &((const struct sockaddr_in *)&d->from)->sin_addr, 4);
        return AF_INET;
    }
    if (d->from.ss_family != AF_INET6)
        return -1;
    const struct in6_addr *a6 = &((const struct sockaddr_in6 *)&d->from)->sin6_addr;
    if (IN6_IS_ADDR_V4MAPPED(a6)) {
        memcpy(addr, a6->s6_addr + 12, 4);
        return AF_INET;
    }
    memcpy(addr, a6->s6_addr, 16);
    return AF_INET6;
}

/* The client with the longest prefix holding the sender, or NULL. */
static const struct client *client_find(const struct listener_datagram *d)
{
    unsigned char a[16];
    int fam = source_of(d, a);
    const struct client *best = NULL;
    for (size_t i = 0; i < R.nclients; i++) {
        const struct client *c = &R.clients[i];
        if (c->family == fam && (!best || c->prefix > best->prefix) &&
            netlist_prefix_equal(a, c->net, c->prefix))
            best = c;
    }
    return best;
}

static void clients_free(void)
{
    for (size_t i = 0; i < R.nclients; i++) {
        memset(R.clients[i].secret, 0, R.clients[i].slen);
        free(R.clients[i].secret);
    }
    free(R.clients);
    R.clients = NULL;
    R.nclients = 0;
}

/* ---- replies ---- */

static void reply_send(const struct listener_datagram *to, const unsigned char *reply)
{
    if (R.stopped)
        return;
    if (listener_reply(to, reply, RADIUS_HDR_LEN) < 0)
        log_warn("radius: reply to %s: %s", to->peer, strerror(errno));
    else
        stats_add(ST_RADIUS_ANSWERED, 1);
}

/* The retransmission cache forgets e: its request, if still waiting, no
 * longer fills it. */
static void dup_evicted(struct recent_ent *e)
{
    struct req *q = e->data;
    if (q)
        q->dup = NULL;
}

static void req_done(struct req *q)
{
    reply_send(&q->to, q->reply);
    if (q->dup) {
        memcpy(q->dup->reply, q->reply, sizeof q->reply);
        q->dup->answered = 1;
        q->dup->data = NULL;
    }
    LIST_REMOVE(q, entry);
    free(q);
}

static void req_event_done(const struct link_event_result *res, void *arg)
{
    struct req *q = arg;
    if (res->error)
        log_warn("radius: %s", res->error);
    if (--q->pending == 0)
        req_done(q);
}

/* ---- acting ---- */

/* Sends one event for q; 0 when it was accepted (q->pending counts it). */
static int req_event(struct req *q, const struct link_event *ev)
{
    char err[512];
    q->pending++;
    if (link_event(ev, req_event_done, q, err, sizeof err) == 0)
        return 0;
    q->pending--;
    log_warn("radius: %s", err);
    return -1;
}

/* User-Name for logs: printable, at most 64 bytes. */
static const char *user_text(const struct radius_acct *a, char *buf, size_t len)
{
    printable(buf, len < 65 ? len : 65, a->user.s, a->user.len, "");
    return buf;
}

/* Start, Interim-Update or Stop of one user. */
static void act_user(struct req *q, const struct radius_acct *a, const char *peer, double now)
{
    char session[SESSION_MAX + 1], user[65], addr[INET6_ADDRSTRLEN] = "", err[512];
    int up = a->status != RADIUS_STOP;
    radius_session(a, peer, session, sizeof session);
    if (a->user.len == 0 || memchr(a->user.s, 0, a->user.len)) {
        stats_add(ST_RADIUS_UNKNOWN_USER, 1);
        return;
    }
    struct link_event ev = {
        .kind = LINK_WHO_RADIUS_USER, .who = a->user.s, .up = 0,
        .ttl = LINK_EVENT_TTL_DEFAULT, .source = LINK_SRC_RADIUS, .session = session,
    };
    const struct customer *c = link_event_check(&ev, err, sizeof err);
    if (!c) {
        stats_add(ST_RADIUS_UNKNOWN_USER, 1);
        if (recent_may_log(&R.log_users, user_text(a, user, sizeof user), now))
            log_info("radius: from %s: unknown User-Name %s (answered, no change)",
                     peer, user);
        return;
    }
    if (!up) {
        recent_put(&R.stopped_sess, session, now);
        ev.own_session = 1;
        req_event(q, &ev);
        return;
    }
    if ((a->has_delay && (long)a->delay >= c->link_ttl) ||
        recent_get(&R.stopped_sess, session, now)) {
        stats_add(ST_RADIUS_STALE, 1);
        log_info("radius: from %s: %s for %s, session=%s, delay=%lu: %s (no change)", peer,
                 a->status == RADIUS_START ? "Start" : "Interim-Update", c->name, session,
                 (unsigned long)a->delay, recent_get(&R.stopped_sess, session, now) ?
                 "the session was stopped" : "older than link_ttl");
        return;
    }
    if (a->has_framed_ip)
        inet_ntop(AF_INET, a->framed_ip, addr, sizeof addr);
    else if (a->has_framed_ipv6)
        inet_ntop(AF_INET6, a->framed_ipv6, addr, sizeof addr);
    if (!addr[0] && c->deliver == DELIVER_LINK) {
        stats_add(ST_RADIUS_NO_ADDRESS, 1);
        log_info("radius: from %s: Start for %s without Framed-IP-Address (no change)",
                 peer, c->name);
        return;
    }
    ev.up = 1;
    ev.address = addr;
    req_event(q, &ev);
}

/* Accounting-On/Off: every radius link of this NAS down. */
static void act_nas(struct req *q, const struct radius_acct *a, const char *peer, double now)
{
    char nas[NAS_MAX + 2];
    radius_nas_name(a, peer, nas, sizeof nas - 1);
    strcat(nas, "/");
    size_t nl = strlen(nas), pos = 0, n = 0, cap = 0;
    struct { char *customer; char session[SESSION_MAX + 1]; } *todo = NULL;
    const struct link *l;
    while ((l = links_next(&pos))) {        /* collected first: events change the table */
        if (!l->up || l->source != LINK_SRC_RADIUS || strncmp(l->session, nas, nl))
            continue;
        if (n == cap)
            todo = xrealloc(todo, (cap = cap ? 2 * cap : 16) * sizeof *todo);
        todo[n].customer = xstrdup(l->customer);
        snprintf(todo[n].session, sizeof todo[n].session, "%s", l->session);
        n++;
    }
    log_info("radius: from %s: Accounting-%s from NAS %.*s: %zu links down", peer,
             a->status == RADIUS_ACCT_ON ? "On" : "Off", (int)nl - 1, nas, n);
    for (size_t i = 0; i < n; i++) {
        struct link_event ev = {
            .kind = LINK_WHO_CUSTOMER, .who = todo[i].customer, .up = 0,
            .source = LINK_SRC_RADIUS, .session = todo[i].session, .own_session = 1,
        };
        recent_put(&R.stopped_sess, todo[i].session, now);
        req_event(q, &ev);
        free(todo[i].customer);
    }
    free(todo);
}

static void count_status(uint32_t status)
{
    switch (status) {
    case RADIUS_START: stats_add(ST_RADIUS_START, 1); break;
    case RADIUS_STOP: stats_add(ST_RADIUS_STOP, 1); break;
    case RADIUS_INTERIM: stats_add(ST_RADIUS_INTERIM, 1); break;
    case RADIUS_ACCT_ON: stats_add(ST_RADIUS_ON, 1); break;
    case RADIUS_ACCT_OFF: stats_add(ST_RADIUS_OFF, 1); break;
    default: stats_add(ST_RADIUS_OTHER, 1); break;
    }
}

/* A datagram dropped without a reply: counted, logged at most once a
 * minute per source and reason. */
static void drop(const struct listener_datagram *d, enum stat_id st, const char *why,
                 double now)
{
    char key[128];
    stats_add(st, 1);
    snprintf(key, sizeof key, "%d %s", (int)st, d->peer);
    if (recent_may_log(&R.log_sources, key, now))
        log_warn("radius: from %s: %s: dropped (no reply; logged at most once a minute)",
                 d->peer, why);
}

/* "peer port id authenticator" of a request. */
static void dup_key(const struct listener_datagram *d, const struct radius_acct *a,
                    char *key, size_t len)
{
    int port = d->from.ss_family == AF_INET6 ?
               ntohs(((const struct sockaddr_in6 *)&d->from)->sin6_port) :
               ntohs(((const struct sockaddr_in *)&d->from)->sin_port);
    size_t o = (size_t)snprintf(key, len, "%s %d %u ", d->peer, port, a->id);
    for (int i = 0; i < RADIUS_AUTH_LEN && o + 3 <= len; i++)
        o += (size_t)snprintf(key + o, len - o, "%02x", a->authenticator[i]);
}

static void radius_datagram(const struct listener_datagram *d, void *arg)
{
    static struct radius_acct a;    /* 800 bytes: off the stack, loop thread only */
    char key[160];
    double now = util_now_mono();
    const struct client *c = client_find(d);
    if (!c) {
        drop(d, ST_RADIUS_DROP_CLIENT, "no radius client entry", now);
        return;
    }
    enum radius_bad why = radius_parse(d->buf, d->len, &a);
    if (why != RADIUS_OK) {
        char text[64];
        snprintf(text, sizeof text, "malformed packet (%s)", radius_bad_name(why));
        drop(d, ST_RADIUS_DROP_MALFORMED, text, now);
        return;
    }
    if (!radius_auth_ok(d->buf, d->len, c->secret, c->slen)) {
        drop(d, ST_RADIUS_DROP_AUTH, "wrong Request Authenticator (secret)", now);
        return;
    }
    dup_key(d, &a, key, sizeof key);
    struct recent_ent *e = recent_get(&R.dups, key, now);
    if (e) {
        stats_add(ST_RADIUS_RETRANSMIT, 1);
        if (e->answered)
            reply_send(d, e->reply);        /* else: the answer comes when done */
        return;
    }
    count_status(a.status);
    struct req *q = xcalloc(1, sizeof *q);
    q->to = *d;
    q->to.buf = NULL;
    q->to.len = 0;
    q->dup = recent_put(&R.dups, key, now);
    q->dup->data = q;
    LIST_INSERT_HEAD(&R.reqs, q, entry);
    q->pending = 1;                 /* held while acting */
    if (a.status == RADIUS_ACCT_ON || a.status == RADIUS_ACCT_OFF)
        act_nas(q, &a, d->peer, now);
    else if (a.status == RADIUS_START || a.status == RADIUS_INTERIM ||
             a.status == RADIUS_STOP)
        act_user(q, &a, d->peer, now);
    /* after acting, so that a link up's connect() is under way before this
     * MD5; q->pending keeps q unanswered until here */
    radius_response(a.id, a.authenticator, c->secret, c->slen, q->reply);
    if (--q->pending == 0)          /* nothing to wait for: answer now */
        req_done(q);
}

/* ---- life cycle ---- */

static const struct listener_proto radius_proto = {
    .name = "radius",
    .datagram = radius_datagram,
};

int radius_bind(struct event_base *base, const struct config *c, char *err, size_t errlen)
{
    if (!c->radius.present || !c->radius.nlisten)
        return 0;
    R.set = listener_set_new(base, &radius_proto, NULL);
    for (size_t i = 0; i < c->radius.nlisten; i++) {
        if (listener_add_udp(R.set, &c->radius.listen[i], &radius_info, err, errlen) < 0)
            return -1;
        log_info("radius: listening on %s", c->radius.listen[i].text);
    }
    return 0;
}

void radius_configure(const struct config *c)
{
    clients_free();
    R.clients = xcalloc(c->nradius_clients ? c->nradius_clients : 1, sizeof *R.clients);
    for (size_t i = 0; i < c->nradius_clients; i++) {
        const struct radius_client *rc = &c->radius_clients[i];
        struct client *k = &R.clients[i];
        k->family = rc->family;
        memcpy(k->net, rc->net, sizeof k->net);
        k->prefix = rc->prefix;
        k->secret = xstrdup(rc->secret);
        k->slen = strlen(rc->secret);
    }
    R.nclients = c->nradius_clients;
    if (!R.dups.m) {
        recent_init(&R.dups, DUP_MAX, DUP_TTL, dup_evicted);
        recent_init(&R.stopped_sess, STOPPED_MAX, STOPPED_TTL, NULL);
        recent_init(&R.log_sources, LOG_MAX, LOG_SOURCE_IVL, NULL);
        recent_init(&R.log_users, LOG_MAX, LOG_USER_IVL, NULL);
        LIST_INIT(&R.reqs);
    }
    if (R.set)
        listener_set_enable(R.set);
}

void radius_stop(void)
{
    R.stopped = 1;
    if (R.set)
        listener_set_stop(R.set, NULL, NULL);
}

void radius_shutdown(void)
{
    struct req *q;
    recent_free(&R.dups);           /* first: its entries point to requests */
    while ((q = LIST_FIRST(&R.reqs))) {
        LIST_REMOVE(q, entry);
        free(q);
    }
    recent_free(&R.stopped_sess);
    recent_free(&R.log_sources);
    recent_free(&R.log_users);
    clients_free();
    if (R.set)
        listener_set_free(R.set);
    R.set = NULL;
}

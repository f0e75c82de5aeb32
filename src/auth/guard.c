/*
 * auth/guard — failed logins per client address: a growing delay before a
 * failure is answered, and a limit after which the address is refused.
 * One entry per address in a hash map (core/util's hmap) and an LRU list;
 * at most GUARD_MAX entries, the least recently used dropped first, so
 * every call is O(1) and the memory is bounded whatever the addresses.
 *
 * The window is fixed: it opens at an address's first failure; failures
 * counted in it reach max_failures → the address is blocked, and the window
 * restarts at that failure, so a block lasts a whole window.  Once a window
 * has passed (or the clock went back) the entry is forgotten.  The delay
 * of the n-th failure in a row is delay_ms << (n - 1), capped at
 * max_delay_ms; a success ends the row (the delay starts again at
 * delay_ms) but not the count toward the limit.
 *
 * Trusts the address strings only to be NUL-terminated.  An IPv6 address
 * counts for its /64 (one subscriber's prefix: the addresses in it are
 * free to the attacker), an IPv4-mapped IPv6 address as the IPv4 address,
 * anything else that is not an IP address as its first 63 bytes.  Runs on
 * the loop thread only.
 */
#include <arpa/inet.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/guard.h"
#include "core/util.h"
#include "auth_int.h"

#define GUARD_MAX       4096        /* addresses remembered */
#define GUARD_KEY_MAX   64
#define GUARD_DELAY_CAP 3600000L    /* no configured delay above 1 h */

struct guard_entry {
    char key[GUARD_KEY_MAX];
    unsigned failures;              /* in the window: toward the limit */
    unsigned row;                   /* since the last success: the delay */
    time_t since;                   /* the window's start */
    struct guard_entry *newer, *older;
};

static const struct auth_guard_conf guard_defaults = {
    .max_failures = 20, .window = 600, .delay_ms = 1000, .max_delay_ms = 15000,
};

static struct {
    struct auth_guard_conf conf;
    int configured;
    struct hmap *map;
    struct guard_entry *newest, *oldest;
    size_t count;
} G;

void auth_guard_configure(const struct auth_guard_conf *c)
{
    struct auth_guard_conf n = c ? *c : guard_defaults;
    if (n.window < 1)
        n.window = 1;
    if (n.delay_ms < 0)
        n.delay_ms = 0;
    if (n.delay_ms > GUARD_DELAY_CAP)
        n.delay_ms = GUARD_DELAY_CAP;
    if (n.max_delay_ms < n.delay_ms)
        n.max_delay_ms = n.delay_ms;
    if (n.max_delay_ms > GUARD_DELAY_CAP)
        n.max_delay_ms = GUARD_DELAY_CAP;
    G.conf = n;
    G.configured = 1;
}

static const struct auth_guard_conf *guard_conf(void)
{
    if (!G.configured)
        auth_guard_configure(NULL);
    return &G.conf;
}

/* The key an address is counted under (see the top). */
static void guard_key(const char *addr, char *key)
{
    unsigned char a[16];
    if (inet_pton(AF_INET6, addr, a) == 1) {
        static const unsigned char mapped[12] = { 0,0,0,0, 0,0,0,0, 0,0,0xff,0xff };
        if (memcmp(a, mapped, sizeof mapped) == 0)
            inet_ntop(AF_INET, a + 12, key, GUARD_KEY_MAX);
        else {
            memset(a + 8, 0, 8);
            inet_ntop(AF_INET6, a, key, GUARD_KEY_MAX - 3);
            strcat(key, "/64");
        }
        return;
    }
    snprintf(key, GUARD_KEY_MAX, "%s", addr);
}

static void lru_unlink(struct guard_entry *e)
{
    if (e->newer)
        e->newer->older = e->older;
    else
        G.newest = e->older;
    if (e->older)
        e->older->newer = e->newer;
    else
        G.oldest = e->newer;
    e->newer = e->older = NULL;
}

static void lru_front(struct guard_entry *e)
{
    e->older = G.newest;
    e->newer = NULL;
    if (G.newest)
        G.newest->newer = e;
    else
        G.oldest = e;
    G.newest = e;
}

static void guard_drop(struct guard_entry *e)
{
    hmap_del(G.map, e->key);
    lru_unlink(e);
    free(e);
    G.count--;
}

/* The live entry for addr (made most recent), or NULL; an entry whose
 * window has passed is dropped. */
static struct guard_entry *guard_find(const char *addr, time_t now)
{
    char key[GUARD_KEY_MAX];
    if (!G.map)
        return NULL;
    guard_key(addr, key);
    struct guard_entry *e = hmap_get(G.map, key);
    if (!e)
        return NULL;
    if (now < e->since || now - e->since >= guard_conf()->window) {
        guard_drop(e);
        return NULL;
    }
    lru_unlink(e);
    lru_front(e);
    return e;
}

static struct guard_entry *guard_add(const char *addr, time_t now)
{
    if (!G.map)
        G.map = hmap_new(0);
    if (G.count >= GUARD_MAX)
        guard_drop(G.oldest);
    struct guard_entry *e = xcalloc(1, sizeof *e);
    guard_key(addr, e->key);
    e->since = now;
    hmap_put(G.map, e->key, e);
    lru_front(e);
    G.count++;
    return e;
}

int auth_guard_blocked(const char *addr, time_t now)
{
    const struct auth_guard_conf *c = guard_conf();
    struct guard_entry *e = guard_find(addr, now);
    return e && c->max_failures && e->failures >= c->max_failures;
}

long auth_guard_fail(const char *addr, time_t now)
{
    const struct auth_guard_conf *c = guard_conf();
    struct guard_entry *e = guard_find(addr, now);
    if (!e)
        e = guard_add(addr, now);
    if (e->failures < UINT_MAX)
        e->failures++;
    if (c->max_failures && e->failures >= c->max_failures)
        e->since = now;             /* the block lasts a whole window */
    if (e->row < 64)
        e->row++;
    long d = c->delay_ms;
    for (unsigned k = 1; k < e->row && d && d < c->max_delay_ms; k++)
        d *= 2;                     /* d <= 2 h: no overflow */
    return d < c->max_delay_ms ? d : c->max_delay_ms;
}

void auth_guard_ok(const char *addr, time_t now)
{
    struct guard_entry *e = guard_find(addr, now);
    if (e)
        e->row = 0;
}

void auth_guard_reset(void)
{
    while (G.oldest)
        guard_drop(G.oldest);
    hmap_free(G.map);
    G.map = NULL;
}

size_t auth_guard_test_count(void)
{
    return G.count;
}

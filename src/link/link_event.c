/*
 * link_event — the one entry for link detectors (link_event.h): resolves
 * who a detector names (customer, RADIUS user, interface) in the registry
 * kickmaild.c configured, applies the link policy (the customer exists; a
 * deliver = "link" customer needs an address to go up; the TTL is the
 * customer's link_ttl unless the event sets one) and hands the change to
 * the link table.  Knows nothing about queues: delivery hears of the change
 * from the table's change callback.
 *
 * Trusts: nothing of the event.  WHO is checked for the form of its kind
 * before any lookup (a customer name, a RADIUS User-Name of 1-253 bytes, an
 * interface name of 1-15 bytes without '/' or white space; no control
 * bytes); the address, TTL range, source and session are links_set()'s to
 * check.  Error strings quote WHO with control bytes as '?'.
 * Guarantees: a refused event changes nothing and has no callback; an
 * accepted one has exactly one, once the link table's write of it ended.
 * The registry is only read during link_event_check()/link_event(); an
 * event in flight holds a copy of its customer's name.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "core/config.h"
#include "core/registry.h"
#include "core/util.h"
#include "link/link_event.h"
#include "link/links.h"

#define RADIUS_USER_MAX 253     /* RFC 2865 5.1: at most 253 octets */
#define IFNAME_MAX      15      /* IFNAMSIZ - 1 */

/* An accepted event waiting for the link table's callback. */
struct lev_wait {
    char *customer;
    link_event_cb *cb;
    void *arg;
    LIST_ENTRY(lev_wait) entry;
};

static const struct registry *lev_reg;
static LIST_HEAD(, lev_wait) lev_waiting = LIST_HEAD_INITIALIZER(lev_waiting);

void link_event_configure(const struct registry *reg)
{
    lev_reg = reg;
}

/* Formats into err and replaces control bytes by '?'.  Returns NULL. */
static const struct customer *lev_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static const struct customer *lev_fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (!errlen)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    for (char *p = err; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    return NULL;
}

/* 1..max bytes, none of them a control byte nor one of bad. */
static int lev_name_ok(const char *s, size_t max, const char *bad)
{
    size_t n = 0;
    for (; s[n]; n++)
        if ((unsigned char)s[n] < 0x20 || s[n] == 0x7f || strchr(bad, s[n]) || n == max)
            return 0;
    return n > 0;
}

/* WHO → its customer, or NULL with err. */
static const struct customer *lev_resolve(const struct link_event *ev, char *err,
                                          size_t errlen)
{
    const struct customer *c = NULL;
    const char *who = ev->who ? ev->who : "";
    switch (ev->kind) {
    case LINK_WHO_CUSTOMER:
        if (!config_check_customer_name(who))
            c = registry_by_name(lev_reg, who);
        return c ? c : lev_fail(err, errlen, "%s: no such customer", who);
    case LINK_WHO_RADIUS_USER:
        if (!lev_name_ok(who, RADIUS_USER_MAX, ""))
            return lev_fail(err, errlen, "bad RADIUS user name '%.64s'", who);
        c = registry_by_radius_user(lev_reg, who);
        /* a customer without radius_user is known to RADIUS by its name
         * (case-insensitive too: names are lower-case) */
        char lower[RADIUS_USER_MAX + 1];
        snprintf(lower, sizeof lower, "%s", who);
        util_lower(lower);
        if (!c && !config_check_customer_name(lower) &&
            (c = registry_by_name(lev_reg, lower)) && c->radius_user)
            c = NULL;
        return c ? c : lev_fail(err, errlen, "RADIUS user %s: no such customer", who);
    case LINK_WHO_INTERFACE:
        if (!lev_name_ok(who, IFNAME_MAX, "/ \t"))
            return lev_fail(err, errlen, "bad interface name '%.64s'", who);
        c = registry_by_interface(lev_reg, who);
        return c ? c : lev_fail(err, errlen, "interface %s: no such customer", who);
    }
    snprintf(err, errlen, "bad kind of link event name %d", (int)ev->kind);
    return NULL;
}

const struct customer *link_event_check(const struct link_event *ev, char *err,
                                        size_t errlen)
{
    const struct customer *c;
    if (!lev_reg) {
        snprintf(err, errlen, "link events are not configured");
        return NULL;
    }
    if (!(c = lev_resolve(ev, err, errlen)))
        return NULL;
    if (ev->up && (!ev->address || !ev->address[0]) && c->deliver == DELIVER_LINK) {
        snprintf(err, errlen, "%s: an ADDRESS is required (deliver = \"link\")", c->name);
        return NULL;
    }
    return c;
}

/* The link table's callback of an accepted event. */
static void lev_done(int err, void *arg)
{
    struct lev_wait *w = arg;
    const struct link *l = links_get(w->customer);
    char why[512];
    struct link_event_result res = {
        .customer = w->customer,
        .up = l && l->up,
        .address = l ? l->address : "",
        .error = NULL,
    };
    if (err) {
        snprintf(why, sizeof why, "link %s: %s", w->customer, strerror(err));
        res.error = why;
    }
    LIST_REMOVE(w, entry);
    w->cb(&res, w->arg);
    free(w->customer);
    free(w);
}

int link_event(const struct link_event *ev, link_event_cb *cb, void *arg,
               char *err, size_t errlen)
{
    const struct customer *c = link_event_check(ev, err, errlen);
    if (!c)
        return -1;
    long ttl = ev->ttl == LINK_EVENT_TTL_DEFAULT ? c->link_ttl : ev->ttl;
    struct lev_wait *w = xcalloc(1, sizeof *w);
    w->customer = xstrdup(c->name);
    w->cb = cb;
    w->arg = arg;
    int rc = !ev->up && ev->own_session ?
             links_down_if(w->customer, ev->source, ev->session, lev_done, w, err, errlen) :
             links_set(w->customer, ev->up, ev->up ? ev->address : NULL, ttl, ev->source,
                       ev->session, lev_done, w, err, errlen);
    if (rc < 0) {
        free(w->customer);
        free(w);
        return -1;
    }
    LIST_INSERT_HEAD(&lev_waiting, w, entry);
    return 0;
}

void link_event_shutdown(void)
{
    struct lev_wait *w;
    while ((w = LIST_FIRST(&lev_waiting))) {
        LIST_REMOVE(w, entry);
        free(w->customer);
        free(w);
    }
}

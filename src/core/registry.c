/*
 * registry — customers indexed by name, domain (case-insensitive), RADIUS
 * user and interface, with one hash map each.  Built from a loaded struct
 * config (inline sections) and a loaded struct custmap (the SQLite customer
 * map); trusts that each customer's values passed config's checks, but
 * checks conflicts between all customers here, since config only sees its
 * own sections and the map only its own rows.
 *
 * Guarantees: a registry that exists has at most one customer per name,
 * domain, RADIUS user and interface.  It points into the config and map it
 * was built from: lookups need them alive; registry_free() never touches the
 * customers, so they may be freed in either order.  Lookups never allocate.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#include "core/registry.h"
#include "core/util.h"

struct registry {
    size_t n;
    const struct customer **all;        /* inline in config order, then the map's */
    struct hmap *by_name, *by_domain, *by_radius, *by_ifname;
};


/* Where cu comes from: "FILE:LINE" (a section) or the map's path. */
static const char *reg_where(const struct customer *cu, char *buf, size_t len)
{
    if (cu->line > 0)
        snprintf(buf, len, "%s:%d", cu->origin ? cu->origin : "?", cu->line);
    else
        snprintf(buf, len, "%s", cu->origin ? cu->origin : "?");
    return buf;
}

/* Indexes key → cu in m; a different customer holding key is a conflict.
 * The same customer naming a key twice is harmless. */
static int reg_claim(struct hmap *m, const char *what, const char *key,
                     const struct customer *cu, char *err, size_t errlen)
{
    char w1[300], w2[300];
    const struct customer *prev = hmap_put(m, key, (void *)cu);
    if (!prev || prev == cu)
        return 0;
    hmap_put(m, key, (void *)prev);
    return util_fail(err, errlen, "%s '%s' claimed by customers '%s' and '%s' "
                    "(%s and %s)", what, key, prev->name, cu->name,
                    reg_where(prev, w1, sizeof w1), reg_where(cu, w2, sizeof w2));
}

static int reg_add(struct registry *r, const struct customer *cu,
                   char *err, size_t errlen)
{
    char w1[300], w2[300];
    const struct customer *prev = hmap_get(r->by_name, cu->name);
    if (prev)
        return util_fail(err, errlen, "customer '%s' defined twice (%s and %s)",
                        cu->name, reg_where(prev, w1, sizeof w1),
                        reg_where(cu, w2, sizeof w2));
    hmap_put(r->by_name, cu->name, (void *)cu);
    for (size_t i = 0; i < cu->ndomains; i++)
        if (reg_claim(r->by_domain, "domain", cu->domains[i], cu, err, errlen) < 0)
            return -1;
    if (cu->radius_user &&
        reg_claim(r->by_radius, "radius_user", cu->radius_user, cu, err, errlen) < 0)
        return -1;
    if (cu->interface &&
        reg_claim(r->by_ifname, "interface", cu->interface, cu, err, errlen) < 0)
        return -1;
    r->all[r->n++] = cu;
    return 0;
}

struct registry *registry_new(const struct config *c, const struct custmap *m,
                              char *err, size_t errlen)
{
    struct registry *r = xcalloc(1, sizeof *r);
    size_t nmap = m ? m->ncustomers : 0;
    r->all = xcalloc(c->ncustomers + nmap, sizeof *r->all);
    r->by_name = hmap_new(0);
    r->by_domain = hmap_new(1);
    r->by_radius = hmap_new(1);      /* User-Name: case-insensitive */
    r->by_ifname = hmap_new(0);
    if (err && errlen)
        err[0] = 0;
    for (size_t i = 0; i < c->ncustomers + nmap; i++) {
        const struct customer *cu = i < c->ncustomers ? &c->customers[i]
                                    : &m->customers[i - c->ncustomers];
        if (reg_add(r, cu, err, errlen) < 0) {
            registry_free(r);
            return NULL;
        }
    }
    return r;
}

void registry_free(struct registry *r)
{
    if (!r)
        return;
    hmap_free(r->by_name);
    hmap_free(r->by_domain);
    hmap_free(r->by_radius);
    hmap_free(r->by_ifname);
    free(r->all);
    free(r);
}

const struct customer *registry_by_name(const struct registry *r, const char *name)
{
    return name ? hmap_get(r->by_name, name) : NULL;
}

const struct customer *registry_by_domain(const struct registry *r, const char *domain)
{
    return domain ? hmap_get(r->by_domain, domain) : NULL;
}

const struct customer *registry_by_radius_user(const struct registry *r, const char *user)
{
    return user ? hmap_get(r->by_radius, user) : NULL;
}

const struct customer *registry_by_interface(const struct registry *r, const char *ifname)
{
    return ifname ? hmap_get(r->by_ifname, ifname) : NULL;
}

size_t registry_count(const struct registry *r)
{
    return r->n;
}

const struct customer *registry_at(const struct registry *r, size_t i)
{
    return i < r->n ? r->all[i] : NULL;
}

int registry_accepts_local(const struct customer *c, const char *local)
{
    if (c->nrecipients == 0)
        return 1;
    if (!local)
        return 0;
    for (size_t i = 0; i < c->nrecipients; i++)
        if (strcasecmp(c->recipients[i], local) == 0)
            return 1;
    return 0;
}

/*
 * registry — customers indexed by name, domain (case-insensitive), RADIUS
 * user and interface, with one hash map each.  Built from a loaded struct
 * config (inline sections) and a loaded struct custmap (the SQLite customer
 * map); trusts that each customer's values passed config's checks, but
 * checks conflicts between all customers here, since config only sees its
 * own sections and the map only its own rows.
 *
 * Maildrops: the maildrop sections and the map's maildrops rows (address
 * maildrops), then one domain maildrop per deliver = "maildrop" customer,
 * indexed by login (address or customer name) in one case-insensitive map.
 * Each domain of address maildrops that no customer owns becomes a "local
 * domain": a struct customer the registry makes and owns (struct
 * reg_local), named after the domain, deliver = DELIVER_LOCAL, online
 * always, quota 0 (each maildrop has its own), the other options at their
 * defaults; its recipients are its maildrops' local parts, indexed in a
 * hash set so that registry_accepts_local() is O(1) for it.  A maildrop in
 * a customer's domain, or the same address twice (section and map row),
 * is a conflict.
 *
 * Guarantees: a registry that exists has at most one customer per name,
 * domain, RADIUS user and interface, and one maildrop per login.  It points
 * into the config and map it was built from: lookups need them alive;
 * registry_free() never touches their customers and maildrops (only the
 * local domains it made), so they may be freed in either order.  Lookups
 * never allocate.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/registry.h"
#include "core/util.h"

/* A local domain: cu first, so that registry_accepts_local() can get from
 * the customer to its set of local parts. */
struct reg_local {
    struct customer cu;
    size_t cap;                         /* of cu.recipients */
    struct hmap *locals;                /* local part (any case) → non-NULL */
};

struct registry {
    size_t n;
    const struct customer **all;        /* inline in config order, then the map's,
                                         * then the local domains */
    struct hmap *by_name, *by_domain, *by_radius, *by_ifname;
    size_t nlocal;
    struct reg_local **locals;          /* owned */
    size_t ndrops, naddr;               /* maildrops; the first naddr by address */
    struct maildrop_ref *drops;
    struct hmap *by_login;              /* login → struct maildrop_ref */
    size_t nadded, nraised;             /* registry_compare's, indexes into */
    size_t *added, *raised;             /* drops; NULL before it ran */
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

/* Where md comes from: "FILE:LINE" (a section) or the map's path. */
static const char *md_where(const struct maildrop_conf *md, char *buf, size_t len)
{
    if (md->line > 0)
        snprintf(buf, len, "%s:%d", md->origin ? md->origin : "?", md->line);
    else
        snprintf(buf, len, "%s", md->origin ? md->origin : "?");
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

/* The local domain `domain` (new: made, indexed, owned by r). */
static struct reg_local *reg_local_get(struct registry *r, const char *domain,
                                       const struct maildrop_conf *md)
{
    const struct customer *c = hmap_get(r->by_domain, domain);
    if (c)
        return (struct reg_local *)c;   /* the caller checked it is a local domain */
    struct reg_local *l = xcalloc(1, sizeof *l);
    struct customer *cu = &l->cu;
    config_customer_defaults(cu);
    cu->name = util_lower(xstrdup(domain));
    cu->ndomains = 1;
    cu->domains = xcalloc(1, sizeof *cu->domains);
    cu->domains[0] = cu->name;
    cu->deliver = DELIVER_LOCAL;
    cu->online = ONLINE_ALWAYS;
    cu->quota = 0;                      /* each maildrop has its own */
    cu->line = md->line;
    cu->origin = md->origin;
    l->locals = hmap_new(1);
    r->locals[r->nlocal++] = l;
    r->all[r->n++] = cu;
    hmap_put(r->by_name, cu->name, cu);
    hmap_put(r->by_domain, cu->name, cu);
    return l;
}

static void reg_local_free(struct reg_local *l)
{
    hmap_free(l->locals);
    l->cu.domains[0] = NULL;            /* the name's */
    config_customer_free(&l->cu);
}

/* Adds the address maildrop md: its login, and its local part to its local
 * domain (made when new).  A customer's domain or the address twice (seen:
 * address → the maildrop_conf that has it) is a conflict. */
static int reg_add_maildrop(struct registry *r, struct hmap *seen,
                            const struct maildrop_conf *md, char *err, size_t errlen)
{
    char w1[300], w2[300];
    const char *at = strrchr(md->address, '@');
    const struct maildrop_conf *prev = hmap_get(seen, md->address);
    if (!at)
        return util_fail(err, errlen, "maildrop '%s' (%s) has no domain", md->address,
                         md_where(md, w1, sizeof w1));
    if (prev)
        return util_fail(err, errlen, "maildrop '%s' defined twice (%s and %s)",
                         md->address, md_where(prev, w1, sizeof w1),
                         md_where(md, w2, sizeof w2));
    hmap_put(seen, md->address, (void *)md);
    const struct customer *c = hmap_get(r->by_domain, at + 1);
    if (c && c->deliver != DELIVER_LOCAL)
        return util_fail(err, errlen, "maildrop '%s' (%s) is in domain '%s' of customer "
                         "'%s' (%s)", md->address, md_where(md, w1, sizeof w1), at + 1,
                         c->name, reg_where(c, w2, sizeof w2));
    struct reg_local *l = reg_local_get(r, at + 1, md);
    struct customer *cu = &l->cu;
    if (cu->nrecipients == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 4;
        cu->recipients = xrealloc(cu->recipients, l->cap * sizeof *cu->recipients);
    }
    char *local = xstrndup(md->address, (size_t)(at - md->address));
    cu->recipients[cu->nrecipients++] = local;
    hmap_put(l->locals, local, local);
    struct maildrop_ref *ref = &r->drops[r->ndrops++];
    *ref = (struct maildrop_ref){
        .name = md->address, .password = md->password, .mode = md->mode,
        .keep_days = md->keep_days, .quota = md->quota,
    };
    hmap_put(r->by_login, ref->name, ref);
    return 0;
}

/* The domain maildrop of a deliver = "maildrop" customer, or the POP3
 * login of an autoturn customer with a secret (its maildrop stays empty:
 * its mail goes to the link; the login says "I am here"). */
static void reg_add_domain_maildrop(struct registry *r, const struct customer *cu)
{
    struct maildrop_ref *ref = &r->drops[r->ndrops++];
    *ref = (struct maildrop_ref){
        .name = cu->name, .secret = cu->secret, .mode = MAILDROP_DELETE,
        .keep_days = 30, .quota = cu->quota, .cust = cu,
    };
    hmap_put(r->by_login, ref->name, ref);
}

/* Every maildrop of c (sections) and m (rows), then the domain maildrops. */
static int reg_add_maildrops(struct registry *r, const struct config *c,
                             const struct custmap *m, char *err, size_t errlen)
{
    size_t nmap = m ? m->nmaildrops : 0;
    struct hmap *seen = hmap_new(1);
    for (size_t i = 0; i < c->nmaildrops + nmap; i++) {
        const struct maildrop_conf *md = i < c->nmaildrops ? &c->maildrops[i]
                                         : &m->maildrops[i - c->nmaildrops];
        if (reg_add_maildrop(r, seen, md, err, errlen) < 0) {
            hmap_free(seen);
            return -1;
        }
    }
    hmap_free(seen);
    r->naddr = r->ndrops;
    for (size_t i = 0; i < r->n; i++)
        if (r->all[i]->deliver == DELIVER_MAILDROP ||
            (r->all[i]->autoturn && r->all[i]->secret))
            reg_add_domain_maildrop(r, r->all[i]);
    return 0;
}

struct registry *registry_new(const struct config *c, const struct custmap *m,
                              char *err, size_t errlen)
{
    struct registry *r = xcalloc(1, sizeof *r);
    size_t nmap = m ? m->ncustomers : 0;
    size_t nmd = c->nmaildrops + (m ? m->nmaildrops : 0);
    /* room for the customers, one local domain per maildrop at most, and
     * a domain maildrop per customer at most */
    r->all = xcalloc(c->ncustomers + nmap + nmd, sizeof *r->all);
    r->locals = xcalloc(nmd ? nmd : 1, sizeof *r->locals);
    r->drops = xcalloc(nmd + c->ncustomers + nmap + 1, sizeof *r->drops);
    r->by_name = hmap_new(0);
    r->by_domain = hmap_new(1);
    r->by_radius = hmap_new(1);      /* User-Name: case-insensitive */
    r->by_ifname = hmap_new(0);
    r->by_login = hmap_new(1);
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
    if (reg_add_maildrops(r, c, m, err, errlen) < 0) {
        registry_free(r);
        return NULL;
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
    hmap_free(r->by_login);
    for (size_t i = 0; i < r->nlocal; i++) {
        reg_local_free(r->locals[i]);
        free(r->locals[i]);
    }
    free(r->locals);
    free(r->added);
    free(r->raised);
    free(r->drops);
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
    if (c->deliver == DELIVER_LOCAL)    /* only the registry makes these */
        return local && hmap_get(((const struct reg_local *)c)->locals, local) != NULL;
    if (c->nrecipients == 0)
        return 1;
    if (!local)
        return 0;
    for (size_t i = 0; i < c->nrecipients; i++)
        if (strcasecmp(c->recipients[i], local) == 0)
            return 1;
    return 0;
}

int registry_maildrop(const struct registry *r, const char *login,
                      struct maildrop_ref *out)
{
    const struct maildrop_ref *ref = login ? hmap_get(r->by_login, login) : NULL;
    if (!ref)
        return -1;
    *out = *ref;
    return 0;
}

size_t registry_maildrop_count(const struct registry *r)
{
    return r->ndrops;
}

void registry_maildrop_at(const struct registry *r, size_t i, struct maildrop_ref *out)
{
    if (i < r->ndrops)
        *out = r->drops[i];
    else
        memset(out, 0, sizeof *out);
}

void registry_compare(struct registry *r, const struct registry *prev)
{
    free(r->added);
    free(r->raised);
    r->added = xcalloc(r->ndrops + 1, sizeof *r->added);
    r->raised = xcalloc(r->ndrops + 1, sizeof *r->raised);
    r->nadded = r->nraised = 0;
    for (size_t i = 0; i < r->ndrops; i++) {
        const struct maildrop_ref *now = &r->drops[i];
        struct maildrop_ref was;
        if (!prev || registry_maildrop(prev, now->name, &was) < 0)
            r->added[r->nadded++] = i;
        else if (was.quota && (!now->quota || now->quota > was.quota))
            r->raised[r->nraised++] = i;
    }
}

size_t registry_added_count(const struct registry *r)
{
    return r->added ? r->nadded : r->ndrops;
}

void registry_added_at(const struct registry *r, size_t k, struct maildrop_ref *out)
{
    if (!r->added)
        registry_maildrop_at(r, k, out);
    else
        registry_maildrop_at(r, k < r->nadded ? r->added[k] : r->ndrops, out);
}

size_t registry_raised_count(const struct registry *r)
{
    return r->nraised;
}

void registry_raised_at(const struct registry *r, size_t k, struct maildrop_ref *out)
{
    registry_maildrop_at(r, k < r->nraised ? r->raised[k] : r->ndrops, out);
}

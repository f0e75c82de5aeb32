/*
 * registry — the one place customers are looked up: by name, by domain, by
 * RADIUS user, by interface.  Built from the inline customer sections of a
 * struct config and, when customer_map is set, the customers of a struct
 * custmap, side by side.  Immutable once built; a reload builds a new
 * registry and swaps it.  Lookups are O(1) and case-insensitive for domains.
 */
#ifndef KM_REGISTRY_H
#define KM_REGISTRY_H

#include "core/config.h"
#include "core/custmap.h"

struct registry;

/* Builds the registry from c's inline customers and then m's (m may be NULL).
 * Both must outlive the registry.  Fails (NULL, err filled) only on a
 * conflict: a customer name twice, or a domain, RADIUS user or interface
 * claimed by two customers; the message names both customers and where each
 * comes from ("FILE:LINE" for a section, the map's path for a map row). */
struct registry *registry_new(const struct config *c, const struct custmap *m,
                              char *err, size_t errlen);
void registry_free(struct registry *r);

const struct customer *registry_by_name(const struct registry *r, const char *name);
/* Exact domain (case-insensitive); no parent-domain matching. */
const struct customer *registry_by_domain(const struct registry *r, const char *domain);
const struct customer *registry_by_radius_user(const struct registry *r, const char *user);
const struct customer *registry_by_interface(const struct registry *r, const char *ifname);
size_t registry_count(const struct registry *r);
/* i in [0, registry_count) */
const struct customer *registry_at(const struct registry *r, size_t i);

/* Is local part `local` (any case) accepted for customer c?  For a local
 * domain (DELIVER_LOCAL, made by the registry): exactly its maildrops' local
 * parts, in O(1). */
int registry_accepts_local(const struct customer *c, const char *local);

/*
 * Maildrops (POP3).  Address maildrops come from `maildrop` sections and the
 * customer map's maildrops table; each domain of theirs that no customer owns
 * is served by a "local domain": a customer-like entry the registry makes,
 * named after the domain (a name with a dot, so never a customer's), with
 * deliver = DELIVER_LOCAL and online = ONLINE_ALWAYS, so the queue holds and
 * delivers its mail like any customer's.  A customer with deliver =
 * "maildrop" has one domain maildrop named after the customer; so has a
 * customer with autoturn = true and a secret (an empty one: its POP3 login
 * raises the link, AutoTURN, and its mail goes there).
 */
struct maildrop_ref {
    const char *name;           /* the maildrop: "alice@isp.example", or the
                                 * customer name of a domain maildrop; its
                                 * directory is maildir_path(root, name) */
    const char *password;       /* crypt(3) hash, or NULL */
    const char *secret;         /* plaintext-equivalent secret (a domain
                                 * maildrop: its customer's secret), or NULL */
    enum maildrop_mode mode;
    long keep_days;
    uint64_t quota;             /* bytes; 0 = none */
    const struct customer *cust;   /* a domain maildrop's customer, else NULL */
};

/* The maildrop a POP3 login name (or a local-domain recipient address)
 * names, case-insensitively: 0 with *out, or -1 when there is none. */
int registry_maildrop(const struct registry *r, const char *login,
                      struct maildrop_ref *out);
size_t registry_maildrop_count(const struct registry *r);
/* i in [0, registry_maildrop_count): address maildrops, then domain ones. */
void registry_maildrop_at(const struct registry *r, size_t i, struct maildrop_ref *out);

/*
 * What a reload changes in the maildrops, found where the new registry is
 * made (the reload's thread), so that applying it on the event loop does
 * not walk every maildrop.  registry_compare(r, prev) notes which of r's
 * maildrops prev (the registry in force; only read, NULL: none) lacks, and
 * which prev had with a quota that r raises or lifts.  Before it is called,
 * every maildrop counts as added and none as raised.  The _at functions
 * take k in [0, count) and give a zeroed ref (name NULL) past the end.
 */
void registry_compare(struct registry *r, const struct registry *prev);
size_t registry_added_count(const struct registry *r);
void registry_added_at(const struct registry *r, size_t k, struct maildrop_ref *out);
size_t registry_raised_count(const struct registry *r);
void registry_raised_at(const struct registry *r, size_t k, struct maildrop_ref *out);

#endif

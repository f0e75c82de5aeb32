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

/* Is local part `local` (any case) accepted for customer c? */
int registry_accepts_local(const struct customer *c, const char *local);

#endif

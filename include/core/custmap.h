/*
 * custmap — the SQLite customer map of large sites (customer_map = "PATH").
 * The schema (version 2, PRAGMA user_version = 2) is conf/customers.sql and
 * doc/kickmail.conf.5: tables customers (one row per customer, one column per
 * customer option, NULL = the default), domains (domain → customer),
 * recipients (customer, local_part) and maildrops (address, password, mode,
 * keep_days, quota: one row per maildrop section, NULL = the default).  A
 * map of version 1 (no maildrops table) still loads; so does any map
 * without that table.  Operators manage it with the sqlite3 tool; kickmaild
 * only reads it.
 *
 * custmap_load() reads the whole map in one read transaction into struct
 * customer values filled exactly like inline customer sections (the same
 * defaults and checks: config_customer_set/config_customer_check), or fails.
 * It blocks (disk, and up to CUSTMAP_BUSY_MS while a writer holds the lock):
 * call it before serving or from a worker thread, never on the event loop.
 * It touches no global state, so it may run in any thread.  A loaded map is
 * immutable; conflicts with other customers and maildrops (a domain or name
 * also inline, a maildrop in a customer's domain) are the registry's to find.
 */
#ifndef KM_CUSTMAP_H
#define KM_CUSTMAP_H

#include <stddef.h>

#include "core/config.h"

#define CUSTMAP_SCHEMA_VERSION 3      /* written by customers.sql */
#define CUSTMAP_SCHEMA_OLDEST 1       /* the oldest version still read */
#define CUSTMAP_BUSY_MS 5000

struct custmap {
    char *path;
    size_t ncustomers;
    struct customer *customers;     /* in the customers table's order; each
                                     * has line 0 and origin = path */
    size_t nmaildrops;
    struct maildrop_conf *maildrops;    /* the maildrops table's rows (checked
                                     * like sections; line 0, origin = path) */
};

/* Loads the map at path.  On failure returns NULL with "PATH: what is wrong"
 * in err, e.g. "PATH: customer 'acme': bad duration '12x' for link_ttl ..."
 * (a bad row fails the whole load). */
struct custmap *custmap_load(const char *path, char *err, size_t errlen);
void custmap_free(struct custmap *m);

#endif

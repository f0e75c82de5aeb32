/*
 * custmap — loads the SQLite customer map (schema: conf/customers.sql).
 *
 * The file is opened read-only with a busy timeout, its schema version
 * checked (PRAGMA user_version: 1 to 3), and the tables read with one SELECT
 * each inside one read transaction (maildrops only when the map has that
 * table: version 1 maps have none; the version 3 columns only from version
 * 3 maps), so that an operator's concurrent change
 * is seen whole or not at all.  Every customer starts from
 * config_customer_defaults(); every non-NULL column goes through
 * config_customer_set() as its text (integers as their decimal form), and
 * config_customer_check() runs on the finished customer: a map customer is
 * defaulted and checked exactly like an inline section.  Maildrop rows go
 * through config_check_maildrop_address() and config_maildrop_set() alike;
 * a maildrop in a domain of the map's customers fails here, one in an
 * inline customer's domain in the registry.
 *
 * Trusts nothing in the file: names, domains and local parts are checked
 * like the configuration's; BLOBs and text with NUL bytes are refused.  A bad
 * row fails the whole load ("PATH: customer 'x': what is wrong") rather than
 * being skipped: a skipped customer would turn its held mail into orphans
 * and have its domains refused (550) until someone notices, whereas a failed
 * reload keeps the old customers and says why.  Guarantees: a map that loads
 * is complete and every customer passed every check; the file is never
 * written; no global state is touched (safe in a worker thread).
 */
#include <errno.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/config.h"
#include "core/custmap.h"
#include "core/util.h"

/* The customers table's option columns: customer option names (config.h). */
#define CM_OPT_COLUMNS \
    "deliver, port, online, link_ttl, connections, tls, expect_helo, " \
    "radius_user, interface, secret, quota, hold_time, warn_time, " \
    "retry_min, retry_max, etrn_interval"
static const char *const cm_opt_names[] = {
    "deliver", "port", "online", "link_ttl", "connections", "tls",
    "expect_helo", "radius_user", "interface", "secret", "quota",
    "hold_time", "warn_time", "retry_min", "retry_max", "etrn_interval",
};
#define CM_NOPTS (sizeof cm_opt_names / sizeof cm_opt_names[0])
/* Columns added by schema version 3 (nullable: NULL = the default), one a
 * line, read after the others; older maps have none of them. */
static const char *const cm_opt_names_v3[] = {
    "tls_ca",
    "tls_name",
    "autoturn",
    "autoturn_networks",
};
#define CM_NOPTS_V3 (sizeof cm_opt_names_v3 / sizeof cm_opt_names_v3[0])

struct cm_loader {
    const char *path;
    char *err;
    size_t errlen;
    int failed;
    sqlite3 *db;
    struct custmap *m;
    size_t cap;                 /* of m->customers */
    struct hmap *by_name;       /* name → struct customer, after the first table */
    size_t mdcap;               /* of m->maildrops */
    int version;                /* the map's PRAGMA user_version */
};

static int cm_fail(struct cm_loader *ld, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* "PATH: message", on one line (values from the file may hold anything). */
static int cm_fail(struct cm_loader *ld, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    if (ld->failed)
        return -1;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    for (char *p = msg; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    snprintf(ld->err, ld->errlen, "%s: %s", ld->path, msg);
    ld->failed = 1;
    return -1;
}

static int cm_sql_fail(struct cm_loader *ld, const char *what)
{
    return cm_fail(ld, "%s: %s", what, sqlite3_errmsg(ld->db));
}

/* Column col of the current row as text: NULL for SQL NULL, else the text
 * (integers in decimal).  -1 (reported for `who`) for BLOBs and NUL bytes. */
static int cm_text(struct cm_loader *ld, sqlite3_stmt *st, int col,
                   const char *who, const char **out)
{
    int type = sqlite3_column_type(st, col);
    const char *name = sqlite3_column_name(st, col);
    *out = NULL;
    if (type == SQLITE_NULL)
        return 0;
    if (type == SQLITE_BLOB)
        return cm_fail(ld, "%s: %s is a BLOB (want text or an integer)", who, name);
    const char *s = (const char *)sqlite3_column_text(st, col);
    if (!s)
        return cm_fail(ld, "%s: cannot read %s: out of memory", who, name);
    if ((size_t)sqlite3_column_bytes(st, col) != strlen(s))
        return cm_fail(ld, "%s: %s contains a NUL byte", who, name);
    *out = s;
    return 0;
}

/* ---- opening ---- */

static int cm_open(struct cm_loader *ld)
{
    struct stat sb;
    if (stat(ld->path, &sb) < 0)
        return cm_fail(ld, "cannot open: %s", strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return cm_fail(ld, "cannot open: not a regular file");
    int rc = sqlite3_open_v2(ld->path, &ld->db,
                             SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK)
        return cm_fail(ld, "cannot open: %s",
                       ld->db ? sqlite3_errmsg(ld->db) : sqlite3_errstr(rc));
    sqlite3_busy_timeout(ld->db, CUSTMAP_BUSY_MS);
    return 0;
}

/* Starts the read transaction and checks PRAGMA user_version. */
static int cm_check_version(struct cm_loader *ld)
{
    sqlite3_stmt *st = NULL;
    int version = -1;
    if (sqlite3_exec(ld->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
        return cm_sql_fail(ld, "cannot begin a read transaction");
    if (sqlite3_prepare_v2(ld->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
        return cm_sql_fail(ld, "cannot read the schema version");
    if (sqlite3_step(st) == SQLITE_ROW)
        version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (version < 0)
        return cm_sql_fail(ld, "cannot read the schema version");
    ld->version = version;
    if (version < CUSTMAP_SCHEMA_OLDEST || version > CUSTMAP_SCHEMA_VERSION)
        return cm_fail(ld, "schema version %d (PRAGMA user_version), want %d to %d: "
                       "not a kickmail customer map, or of another version "
                       "(see customers.sql)", version, CUSTMAP_SCHEMA_OLDEST,
                       CUSTMAP_SCHEMA_VERSION);
    return 0;
}

/* ---- the three tables ---- */

static struct customer *cm_new_customer(struct cm_loader *ld)
{
    struct custmap *m = ld->m;
    if (m->ncustomers == ld->cap) {
        ld->cap = ld->cap ? ld->cap * 2 : 1024;
        m->customers = xrealloc(m->customers, ld->cap * sizeof *m->customers);
    }
    struct customer *cu = &m->customers[m->ncustomers++];
    memset(cu, 0, sizeof *cu);
    config_customer_defaults(cu);
    cu->origin = m->path;
    return cu;
}

/* One row of customers: name, then the CM_OPT_COLUMNS in order. */
static int cm_customer_row(struct cm_loader *ld, sqlite3_stmt *st)
{
    const char *name, *bad, *v;
    char who[128], why[512];
    if (cm_text(ld, st, 0, "customers", &name) < 0)
        return -1;
    if ((bad = config_check_customer_name(name)) != NULL)
        return cm_fail(ld, "bad customer name '%s': %s", name ? name : "", bad);
    struct customer *cu = cm_new_customer(ld);
    cu->name = xstrdup(name);
    snprintf(who, sizeof who, "customer '%s'", cu->name);
    size_t n = CM_NOPTS + (ld->version >= 3 ? CM_NOPTS_V3 : 0);
    for (size_t i = 0; i < n; i++) {
        const char *opt = i < CM_NOPTS ? cm_opt_names[i] : cm_opt_names_v3[i - CM_NOPTS];
        if (cm_text(ld, st, (int)i + 1, who, &v) < 0)
            return -1;
        if (v && config_customer_set(cu, opt, v, why, sizeof why) < 0)
            return cm_fail(ld, "%s: %s", who, why);
    }
    return 0;
}

/* Runs sql and calls row() for each row.  0 / -1 (reported). */
static int cm_each_row(struct cm_loader *ld, const char *sql, const char *table,
                       int (*row)(struct cm_loader *, sqlite3_stmt *))
{
    sqlite3_stmt *st = NULL;
    int rc;
    if (sqlite3_prepare_v2(ld->db, sql, -1, &st, NULL) != SQLITE_OK) {
        char what[64];
        snprintf(what, sizeof what, "table %s (schema version %d)", table,
                 ld->version);
        return cm_sql_fail(ld, what);
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        if (row(ld, st) < 0)
            break;
    if (!ld->failed && rc != SQLITE_DONE) {
        char what[64];
        snprintf(what, sizeof what, "reading table %s", table);
        cm_sql_fail(ld, what);
    }
    sqlite3_finalize(st);
    return ld->failed ? -1 : 0;
}

/* Appends s (lower-cased) to the string vector *v of *n. */
static void cm_push(char ***v, size_t *n, const char *s)
{
    *v = xrealloc(*v, (*n + 1) * sizeof **v);
    (*v)[(*n)++] = util_lower(xstrdup(s));
}

/* The customer named in column 0 of a domains or recipients row. */
static struct customer *cm_owner(struct cm_loader *ld, sqlite3_stmt *st,
                                 const char *what, const char *value)
{
    const char *name;
    struct customer *cu;
    if (cm_text(ld, st, 0, what, &name) < 0)
        return NULL;
    if (!name || !(cu = hmap_get(ld->by_name, name))) {
        cm_fail(ld, "%s '%s': no customer '%s' in table customers", what,
                value, name ? name : "(null)");
        return NULL;
    }
    return cu;
}

/* domains: customer, domain. */
static int cm_domain_row(struct cm_loader *ld, sqlite3_stmt *st)
{
    const char *d, *bad;
    struct customer *cu;
    if (cm_text(ld, st, 1, "domains", &d) < 0 ||
        !(cu = cm_owner(ld, st, "domain", d ? d : "(null)")))
        return -1;
    if ((bad = config_check_domain(d)) != NULL)
        return cm_fail(ld, "customer '%s': bad domain '%s': %s", cu->name,
                       d ? d : "(null)", bad);
    cm_push(&cu->domains, &cu->ndomains, d);
    return 0;
}

/* recipients: customer, local_part. */
static int cm_recipient_row(struct cm_loader *ld, sqlite3_stmt *st)
{
    const char *l, *bad;
    struct customer *cu;
    if (cm_text(ld, st, 1, "recipients", &l) < 0 ||
        !(cu = cm_owner(ld, st, "recipient", l ? l : "(null)")))
        return -1;
    if ((bad = config_check_local_part(l)) != NULL)
        return cm_fail(ld, "customer '%s': bad recipients entry '%s': %s",
                       cu->name, l ? l : "(null)", bad);
    cm_push(&cu->recipients, &cu->nrecipients, l);
    return 0;
}

/* ---- maildrops (schema version 2) ---- */

static const char *const cm_md_opts[] = { "password", "mode", "keep_days", "quota" };
#define CM_MD_NOPTS (sizeof cm_md_opts / sizeof cm_md_opts[0])

/* maildrops: address, then cm_md_opts in order. */
static int cm_maildrop_row(struct cm_loader *ld, sqlite3_stmt *st)
{
    struct custmap *m = ld->m;
    const char *a, *bad, *v;
    char who[160], why[512];
    if (cm_text(ld, st, 0, "maildrops", &a) < 0)
        return -1;
    if (!a)
        return cm_fail(ld, "maildrops: a row without an address");
    if (m->nmaildrops == ld->mdcap) {
        ld->mdcap = ld->mdcap ? ld->mdcap * 2 : 1024;
        m->maildrops = xrealloc(m->maildrops, ld->mdcap * sizeof *m->maildrops);
    }
    struct maildrop_conf *md = &m->maildrops[m->nmaildrops++];
    memset(md, 0, sizeof *md);
    config_maildrop_defaults(md);
    md->address = util_lower(xstrdup(a));
    md->origin = m->path;
    if ((bad = config_check_maildrop_address(md->address)) != NULL)
        return cm_fail(ld, "bad maildrop address '%s': %s", md->address, bad);
    snprintf(who, sizeof who, "maildrop '%s'", md->address);
    for (size_t i = 0; i < CM_MD_NOPTS; i++) {
        if (cm_text(ld, st, (int)i + 1, who, &v) < 0)
            return -1;
        if (v && config_maildrop_set(md, cm_md_opts[i], v, why, sizeof why) < 0)
            return cm_fail(ld, "%s: %s", who, why);
    }
    if (!md->password)
        return cm_fail(ld, "%s has no password", who);
    return 0;
}

/* Is there a table `name`?  1 / 0, or -1 (reported). */
static int cm_has_table(struct cm_loader *ld, const char *name)
{
    sqlite3_stmt *st = NULL;
    int rc;
    if (sqlite3_prepare_v2(ld->db, "SELECT 1 FROM sqlite_master WHERE type = 'table' "
                           "AND name = ?", -1, &st, NULL) != SQLITE_OK)
        return cm_sql_fail(ld, "cannot read the schema");
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return cm_sql_fail(ld, "cannot read the schema");
    return rc == SQLITE_ROW;
}

/* The maildrops table, when there is one: each address once, none in a
 * domain of the map's customers. */
static int cm_read_maildrops(struct cm_loader *ld)
{
    struct custmap *m = ld->m;
    int has = cm_has_table(ld, "maildrops");
    if (has <= 0)
        return has;
    if (cm_each_row(ld, "SELECT address, password, mode, keep_days, quota FROM maildrops",
                    "maildrops", cm_maildrop_row) < 0)
        return -1;
    struct hmap *seen = hmap_new(1), *owners = hmap_new(1);
    for (size_t i = 0; i < m->ncustomers; i++)
        for (size_t j = 0; j < m->customers[i].ndomains; j++)
            hmap_put(owners, m->customers[i].domains[j], &m->customers[i]);
    for (size_t i = 0; i < m->nmaildrops && !ld->failed; i++) {
        const struct maildrop_conf *md = &m->maildrops[i];
        const char *domain = strrchr(md->address, '@') + 1;
        const struct customer *cu = hmap_get(owners, domain);
        if (hmap_put(seen, md->address, (void *)md))
            cm_fail(ld, "maildrop '%s' is in table maildrops twice", md->address);
        else if (cu)
            cm_fail(ld, "maildrop '%s': its domain '%s' belongs to customer '%s'",
                    md->address, domain, cu->name);
    }
    hmap_free(seen);
    hmap_free(owners);
    return ld->failed ? -1 : 0;
}

static int cm_read(struct cm_loader *ld)
{
    struct custmap *m = ld->m;
    char why[512];
    char sql[1024];
    int len = snprintf(sql, sizeof sql, "SELECT name, " CM_OPT_COLUMNS);
    for (size_t i = 0; ld->version >= 3 && i < CM_NOPTS_V3; i++)
        len += snprintf(sql + len, sizeof sql - (size_t)len, ", %s", cm_opt_names_v3[i]);
    snprintf(sql + len, sizeof sql - (size_t)len, " FROM customers");
    if (cm_each_row(ld, sql, "customers", cm_customer_row) < 0)
        return -1;
    /* the array is final now: index it by name (a name twice is an error) */
    for (size_t i = 0; i < m->ncustomers; i++)
        if (hmap_put(ld->by_name, m->customers[i].name, &m->customers[i]))
            return cm_fail(ld, "customer '%s' is in table customers twice",
                           m->customers[i].name);
    if (cm_each_row(ld, "SELECT customer, domain FROM domains", "domains",
                    cm_domain_row) < 0 ||
        cm_each_row(ld, "SELECT customer, local_part FROM recipients",
                    "recipients", cm_recipient_row) < 0)
        return -1;
    for (size_t i = 0; i < m->ncustomers; i++)
        if (config_customer_check(&m->customers[i], why, sizeof why) < 0)
            return cm_fail(ld, "%s", why);
    return cm_read_maildrops(ld);
}

/* ---- the public functions ---- */

struct custmap *custmap_load(const char *path, char *err, size_t errlen)
{
    struct cm_loader ld = {.path = path, .err = err, .errlen = errlen};
    if (err && errlen)
        err[0] = 0;
    ld.m = xcalloc(1, sizeof *ld.m);
    ld.m->path = xstrdup(path);
    ld.by_name = hmap_new(0);
    if (cm_open(&ld) == 0 && cm_check_version(&ld) == 0)
        cm_read(&ld);
    if (ld.db) {
        sqlite3_exec(ld.db, "COMMIT", NULL, NULL, NULL);    /* ends the read */
        sqlite3_close(ld.db);
    }
    hmap_free(ld.by_name);
    if (ld.failed) {
        custmap_free(ld.m);
        return NULL;
    }
    if (ld.m->ncustomers && ld.m->ncustomers < ld.cap)   /* give back the slack */
        ld.m->customers = xrealloc(ld.m->customers,
                                   ld.m->ncustomers * sizeof *ld.m->customers);
    if (ld.m->nmaildrops && ld.m->nmaildrops < ld.mdcap)
        ld.m->maildrops = xrealloc(ld.m->maildrops,
                                   ld.m->nmaildrops * sizeof *ld.m->maildrops);
    return ld.m;
}

void custmap_free(struct custmap *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->ncustomers; i++)
        config_customer_free(&m->customers[i]);
    free(m->customers);
    for (size_t i = 0; i < m->nmaildrops; i++)
        config_maildrop_free(&m->maildrops[i]);
    free(m->maildrops);
    free(m->path);
    free(m);
}

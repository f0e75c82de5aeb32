/*
 * test_custmap — the SQLite customer map: maps are built with the sqlite3 C
 * API in a mkdtemp() directory from the shipped conf/customers.sql (KM_TOP,
 * default ".") plus rows per test.  Covers every option read from a row, the
 * defaults (compared with an inline customer section's), a table of bad rows
 * each with the "PATH: ..." message it must produce, conflicts between the map
 * and inline sections in the registry, the schema version, missing and
 * non-database files, a schema without constraints (the checks SQLite would
 * otherwise do for us), the example of customers.sql, and the load time of
 * 100,000 customers (printed, not asserted).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "core/custmap.h"
#include "core/netlist.h"
#include "core/registry.h"
#include "map_fixture.h"


/* ---- good maps ---- */

static void test_every_option(void **state)
{
    struct custmap *m = load_ok(
        "INSERT INTO customers VALUES ('acme', '192.0.2.80:2525', 2526, "
        "  'always', '6h', 4, 'encrypt', 'mail.acme.example', 'acme-ppp', 'ippp3', "
        "  's3cret', '1G', '2d', '1h', '30s', '2h', '10m', NULL, 'mx.acme.example', NULL, NULL);\n"
        "INSERT INTO domains VALUES ('acme.example', 'acme'), ('ACME.co.uk', 'acme');\n"
        "INSERT INTO recipients VALUES ('acme', 'bob'), ('acme', 'Sales');\n"
        "INSERT INTO customers (name, deliver, secret) VALUES ('beta', 'pickup', 'x');\n"
        "INSERT INTO domains VALUES ('beta.example', 'beta');\n");
    assert_int_equal(m->ncustomers, 2);
    const struct customer *a = &m->customers[0];
    assert_string_equal(a->name, "acme");
    assert_int_equal(a->line, 0);
    assert_string_equal(a->origin, mappath);
    assert_int_equal(a->ndomains, 2);
    assert_string_equal(a->domains[0], "acme.example");
    assert_string_equal(a->domains[1], "acme.co.uk");
    assert_int_equal(a->nrecipients, 2);
    assert_string_equal(a->recipients[1], "sales");
    assert_int_equal(a->deliver, DELIVER_HOST);
    assert_string_equal(a->deliver_host, "192.0.2.80");
    assert_int_equal(a->deliver_port, 2525);
    assert_int_equal(a->port, 2526);
    assert_int_equal(a->online, ONLINE_ALWAYS);
    assert_int_equal(a->link_ttl, 6 * 3600);
    assert_int_equal(a->connections, 4);
    assert_int_equal(a->tls, TLSPOL_ENCRYPT);
    assert_string_equal(a->expect_helo, "mail.acme.example");
    assert_string_equal(a->radius_user, "acme-ppp");
    assert_string_equal(a->interface, "ippp3");
    assert_string_equal(a->secret, "s3cret");
    assert_int_equal(a->quota, 1024ULL * 1024 * 1024);
    assert_int_equal(a->hold_time, 2 * 86400);
    assert_int_equal(a->warn_time, 3600);
    assert_int_equal(a->retry_min, 30);
    assert_int_equal(a->retry_max, 7200);
    assert_int_equal(a->etrn_interval, 600);
    assert_null(a->tls_ca);
    assert_string_equal(a->tls_name, "mx.acme.example");
    const struct customer *b = &m->customers[1];
    assert_string_equal(b->name, "beta");
    assert_int_equal(b->deliver, DELIVER_PICKUP);
    assert_int_equal(b->nrecipients, 0);
    custmap_free(m);
}

/* Integers where the config takes durations and sizes; text where the
 * schema says INTEGER. */
static void test_value_forms(void **state)
{
    struct custmap *m = load_ok(
        "INSERT INTO customers (name, port, link_ttl, connections, quota, hold_time,"
        "  warn_time, retry_min, retry_max, etrn_interval)"
        "  VALUES ('a', '587', 600, '3', 1048576, 86400, 0, 1, 1, '0');\n"
        "INSERT INTO domains VALUES ('a.example', 'a');\n");
    const struct customer *a = &m->customers[0];
    assert_int_equal(a->port, 587);
    assert_int_equal(a->link_ttl, 600);
    assert_int_equal(a->connections, 3);
    assert_int_equal(a->quota, 1048576);
    assert_int_equal(a->hold_time, 86400);
    assert_int_equal(a->retry_min, 1);
    assert_int_equal(a->retry_max, 1);
    assert_int_equal(a->quota, 1048576);
    custmap_free(m);
}

/* NULL columns give exactly the defaults of an inline customer section. */
static void test_defaults_match_inline(void **state)
{
    struct custmap *m = load_ok(
        "INSERT INTO customers (name) VALUES ('a');\n"
        "INSERT INTO domains VALUES ('a.example', 'a');\n");
    struct config *c = conf_ok("customer \"a\" { domains = {\"a.example\"} }\n");
    const struct customer *x = &m->customers[0], *y = &c->customers[0];
    assert_int_equal(x->deliver, y->deliver);
    assert_null(x->deliver_host);
    assert_int_equal(x->deliver_port, y->deliver_port);
    assert_int_equal(x->port, y->port);
    assert_int_equal(x->online, y->online);
    assert_int_equal(x->link_ttl, y->link_ttl);
    assert_int_equal(x->connections, y->connections);
    assert_int_equal(x->tls, y->tls);
    assert_null(x->expect_helo);
    assert_null(x->radius_user);
    assert_null(x->interface);
    assert_null(x->secret);
    assert_int_equal(x->quota, y->quota);
    assert_int_equal(x->hold_time, y->hold_time);
    assert_int_equal(x->warn_time, y->warn_time);
    assert_int_equal(x->retry_min, y->retry_min);
    assert_int_equal(x->retry_max, y->retry_max);
    assert_int_equal(x->etrn_interval, y->etrn_interval);
    assert_int_equal(x->autoturn, y->autoturn);
    assert_int_equal(x->autoturn_networks.n, y->autoturn_networks.n);
    /* and the documented values */
    assert_int_equal(x->autoturn, 0);
    assert_int_equal(x->autoturn_networks.n, 0);
    assert_int_equal(x->deliver, DELIVER_LINK);
    assert_int_equal(x->port, 25);
    assert_int_equal(x->link_ttl, 12 * 3600);
    assert_int_equal(x->quota, 500ULL * 1024 * 1024);
    assert_int_equal(x->hold_time, 5 * 86400);
    config_free(c);
    custmap_free(m);
}

static void test_empty_map(void **state)
{
    struct custmap *m = load_ok(NULL);
    assert_int_equal(m->ncustomers, 0);
    custmap_free(m);
}

/* ---- bad rows: each must fail with "PATH: " and this message ---- */

#define ROW(cols, vals) \
    "INSERT INTO customers (name, " cols ") VALUES ('a', " vals ");\n" \
    "INSERT INTO domains VALUES ('a.example', 'a');\n"

static const struct bad_case {
    const char *name, *sql, *want;
} bad_cases[] = {
    {"name upper", "INSERT INTO customers (name) VALUES ('Acme');",
     "bad customer name 'Acme': customer names use lower-case"},
    {"name dot", "INSERT INTO customers (name) VALUES ('a.b');", "bad customer name 'a.b'"},
    {"name empty", "INSERT INTO customers (name) VALUES ('');", "bad customer name '': empty"},
    {"no domains", "INSERT INTO customers (name) VALUES ('a');", "customer 'a' has no domains"},
    {"deliver word", ROW("deliver", "'smtp'"), "customer 'a': bad deliver 'smtp'"},
    {"deliver no port", ROW("deliver", "'mx.a.example'"), "customer 'a': bad deliver 'mx.a.example'"},
    {"deliver bad host", ROW("deliver", "'m x:25'"), "customer 'a': bad deliver 'm x:25'"},
    {"port zero", ROW("port", "0"), "customer 'a': bad value '0' for port (a number from 1 to 65535)"},
    {"port big", ROW("port", "70000"), "customer 'a': bad value '70000' for port"},
    {"port negative", ROW("port", "-1"), "customer 'a': bad value '-1' for port"},
    {"port word", ROW("port", "'smtp'"), "customer 'a': bad value 'smtp' for port"},
    {"port real", ROW("port", "25.5"), "customer 'a': bad value '25.5' for port"},
    {"port blob", ROW("port", "x'3235'"), "customer 'a': port is a BLOB"},
    {"online enum", ROW("online", "'sometimes'"),
     "customer 'a': bad value 'sometimes' for online (\"detect\", \"always\")"},
    {"link_ttl bad", ROW("link_ttl", "'12x'"), "customer 'a': bad duration '12x' for link_ttl"},
    {"link_ttl zero", ROW("link_ttl", "0"), "customer 'a': link_ttl must be at least 1s"},
    {"connections zero", ROW("connections", "0"), "customer 'a': bad value '0' for connections"},
    {"tls enum", ROW("tls", "'yes'"),
     "customer 'a': bad value 'yes' for tls (\"none\", \"may\", \"encrypt\", \"verify\")"},
    {"expect_helo empty", ROW("expect_helo", "''"), "customer 'a': expect_helo must not be empty"},
    {"expect_helo NUL", ROW("expect_helo", "CAST(x'610062' AS TEXT)"),
     "customer 'a': expect_helo contains a NUL byte"},
    {"radius_user empty", ROW("radius_user", "''"), "customer 'a': radius_user must not be empty"},
    {"interface long", ROW("interface", "'abcdefghijklmnop'"),
     "customer 'a': bad interface 'abcdefghijklmnop'"},
    {"interface slash", ROW("interface", "'a/b'"), "customer 'a': bad interface 'a/b'"},
    {"secret empty", ROW("secret", "''"), "customer 'a': secret must not be empty"},
    {"quota bad", ROW("quota", "'500X'"), "customer 'a': bad size '500X' for quota"},
    {"quota MB", ROW("quota", "'5MB'"), "customer 'a': bad size '5MB' for quota"},
    {"quota negative", ROW("quota", "-5"), "customer 'a': bad size '-5' for quota"},
    {"hold_time spaced", ROW("hold_time", "'5 d'"), "customer 'a': bad duration '5 d' for hold_time"},
    {"hold_time zero", ROW("hold_time", "'0'"), "customer 'a': hold_time must be at least 1s"},
    {"warn_time negative", ROW("warn_time", "-1"), "customer 'a': bad duration '-1' for warn_time"},
    {"retry_min bad", ROW("retry_min", "'1w'"), "customer 'a': bad duration '1w' for retry_min"},
    {"retry_max bad", ROW("retry_max", "'x'"), "customer 'a': bad duration 'x' for retry_max"},
    {"etrn_interval bad", ROW("etrn_interval", "'1.5m'"),
     "customer 'a': bad duration '1.5m' for etrn_interval"},
    {"retry order", ROW("retry_min, retry_max", "'2h', '1h'"),
     "customer 'a': retry_min (7200s) is greater than retry_max (3600s)"},
    {"maildrop needs secret", ROW("deliver", "'maildrop'"),
     "customer 'a': deliver = \"maildrop\" needs a secret"},
    {"pickup needs secret", ROW("deliver", "'pickup'"),
     "customer 'a': deliver = \"pickup\" needs a secret"},
    {"value with newline", ROW("tls", "'may' || char(10) || 'x'"),
     "customer 'a': bad value 'may?x' for tls"},
    {"domain no dot", "INSERT INTO customers (name) VALUES ('a');\n"
     "INSERT INTO domains VALUES ('localhost', 'a');",
     "customer 'a': bad domain 'localhost': a domain must contain a dot"},
    {"domain bad char", "INSERT INTO customers (name) VALUES ('a');\n"
     "INSERT INTO domains VALUES ('a_b.example', 'a');", "customer 'a': bad domain 'a_b.example'"},
    {"domain empty label", "INSERT INTO customers (name) VALUES ('a');\n"
     "INSERT INTO domains VALUES ('a..example', 'a');", "customer 'a': bad domain 'a..example'"},
    {"domain of nobody", ROW("port", "25") "INSERT INTO domains VALUES ('x.example', 'nobody');",
     "domain 'x.example': no customer 'nobody' in table customers"},
    {"recipient with at", ROW("port", "25") "INSERT INTO recipients VALUES ('a', 'b@a');",
     "customer 'a': bad recipients entry 'b@a': want a local part"},
    {"recipient long", ROW("port", "25") "INSERT INTO recipients VALUES ('a', "
     "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa');",
     "customer 'a': bad recipients entry 'aaaa"},
    {"recipient of nobody", ROW("port", "25") "INSERT INTO recipients VALUES ('b', 'bob');",
     "recipient 'bob': no customer 'b' in table customers"},
    /* maildrops */
    {"maildrop no at", "INSERT INTO maildrops (address, password) VALUES ('alice', 'x');",
     "bad maildrop address 'alice': want an address local@domain"},
    {"maildrop path", "INSERT INTO maildrops (address, password) VALUES ('../x@b.example', 'x');",
     "bad maildrop address '../x@b.example'"},
    {"maildrop slash", "INSERT INTO maildrops (address, password) VALUES ('a/b@b.example', 'x');",
     "bad maildrop address 'a/b@b.example'"},
    {"maildrop domain", "INSERT INTO maildrops (address, password) VALUES ('a@b', 'x');",
     "bad maildrop address 'a@b': a domain must contain a dot"},
    {"maildrop newline", "INSERT INTO maildrops (address, password) VALUES "
     "('a' || char(10) || 'b@b.example', 'x');", "bad maildrop address 'a?b@b.example'"},
    {"maildrop mode", "INSERT INTO maildrops (address, password, mode) VALUES "
     "('a@b.example', 'x', 'remove');",
     "maildrop 'a@b.example': bad value 'remove' for mode (\"delete\", \"keep\")"},
    {"maildrop keep_days", "INSERT INTO maildrops (address, password, keep_days) VALUES "
     "('a@b.example', 'x', -1);", "maildrop 'a@b.example': bad value '-1' for keep_days"},
    {"maildrop quota", "INSERT INTO maildrops (address, password, quota) VALUES "
     "('a@b.example', 'x', '1T');", "maildrop 'a@b.example': bad size '1T' for quota"},
    {"maildrop empty password", "INSERT INTO maildrops (address, password) VALUES "
     "('a@b.example', '');", "maildrop 'a@b.example': password must not be empty"},
    {"maildrop blob", "INSERT INTO maildrops (address, password) VALUES (x'61', 'x');",
     "maildrops: address is a BLOB"},
    {"autoturn word", ROW("autoturn", "'maybe'"),
     "customer 'a': bad value 'maybe' for autoturn (true or false)"},
    {"autoturn network", ROW("autoturn, autoturn_networks", "1, '192.0.2.0/33'"),
     "customer 'a': bad autoturn_networks '192.0.2.0/33': bad network '192.0.2.0/33'"},
    {"autoturn network empty", ROW("autoturn, autoturn_networks", "1, '192.0.2.1,,::1'"),
     "customer 'a': bad autoturn_networks '192.0.2.1,,::1': an empty network"},
    {"autoturn not link", ROW("autoturn, deliver", "1, '192.0.2.25:25'"),
     "customer 'a': autoturn needs deliver = \"link\""},
    {"maildrop in a customer's domain", ROW("port", "25")
     "INSERT INTO maildrops (address, password) VALUES ('bob@A.example', 'x');",
     "maildrop 'bob@a.example': its domain 'a.example' belongs to customer 'a'"},
};

static void test_bad_rows(void **state)
{
    size_t plen = strlen(mappath);
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const struct bad_case *b = &bad_cases[i];
        char err[512] = "";
        make_map(NULL, b->sql);
        struct custmap *m = custmap_load(mappath, err, sizeof err);
        if (m || strncmp(err, mappath, plen) != 0 || strncmp(err + plen, ": ", 2) ||
            !strstr(err, b->want) || strchr(err, '\n')) {
            print_error("case \"%s\": got %s \"%s\", want \"%s\"\n", b->name,
                        m ? "success" : "error", err, b->want);
            custmap_free(m);
            fail();
        }
    }
}

/* Without the shipped constraints, kickmaild still catches what they would. */
static const char loose_schema[] =
    "PRAGMA user_version = 1;\n"
    "CREATE TABLE customers (name, deliver, port, online, link_ttl, connections,"
    " tls, expect_helo, radius_user, interface, secret, quota, hold_time,"
    " warn_time, retry_min, retry_max, etrn_interval, note);\n"
    "CREATE TABLE domains (domain, customer);\n"
    "CREATE TABLE recipients (customer, local_part);\n";

static void test_loose_schema(void **state)
{
    static const struct bad_case cases[] = {
        {"null name", "INSERT INTO customers (name) VALUES (NULL);", "bad customer name '': empty"},
        {"name twice", "INSERT INTO customers (name) VALUES ('a'), ('a');",
         "customer 'a' is in table customers twice"},
        {"null domain", "INSERT INTO customers (name) VALUES ('a');"
         "INSERT INTO domains VALUES (NULL, 'a');", "customer 'a': bad domain '(null)'"},
        {"null owner", "INSERT INTO customers (name) VALUES ('a');"
         "INSERT INTO domains VALUES ('a.example', NULL);",
         "domain 'a.example': no customer '(null)'"},
        {"blob domain", "INSERT INTO customers (name) VALUES ('a');"
         "INSERT INTO domains VALUES (x'61', 'a');", "domains: domain is a BLOB"},
    };
    char err[512];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        err[0] = 0;
        make_map(loose_schema, cases[i].sql);
        struct custmap *m = custmap_load(mappath, err, sizeof err);
        if (m || !strstr(err, cases[i].want)) {
            print_error("case \"%s\": got \"%s\", want \"%s\"\n", cases[i].name, err,
                        cases[i].want);
            custmap_free(m);
            fail();
        }
    }
    /* extra columns are ignored; a domain twice (any case) is the registry's */
    make_map(loose_schema, "INSERT INTO customers (name, note) VALUES ('a', 'x'), ('b', 'y');"
             "INSERT INTO domains VALUES ('a.example', 'a'), ('A.Example', 'b');");
    struct custmap *m = custmap_load(mappath, err, sizeof err);
    assert_non_null(m);
    struct config *c = conf_ok("");
    assert_null(registry_new(c, m, err, sizeof err));
    assert_non_null(strstr(err, "domain 'a.example' claimed by customers 'a' and 'b'"));
    config_free(c);
    custmap_free(m);
}

/* The maildrops table: every column, the defaults, addresses in any case. */
static void test_maildrops(void **state)
{
    struct custmap *m = load_ok(
        "INSERT INTO maildrops VALUES ('Alice@ISP.example', '$y$j9T$abc', 'keep', 7, '100M');\n"
        "INSERT INTO maildrops (address, password) VALUES ('bob.b+x@isp.example', '$6$x');\n"
        "INSERT INTO maildrops VALUES ('carol@other.example', 'h', NULL, '5', 1024);\n");
    assert_int_equal(m->nmaildrops, 3);
    const struct maildrop_conf *a = &m->maildrops[0], *b = &m->maildrops[1],
                               *c = &m->maildrops[2];
    assert_string_equal(a->address, "alice@isp.example");
    assert_string_equal(a->password, "$y$j9T$abc");
    assert_int_equal(a->mode, MAILDROP_KEEP);
    assert_int_equal(a->keep_days, 7);
    assert_int_equal(a->quota, 100 * 1024 * 1024);
    assert_int_equal(a->line, 0);
    assert_string_equal(a->origin, mappath);
    assert_string_equal(b->address, "bob.b+x@isp.example");
    assert_int_equal(b->mode, MAILDROP_DELETE);     /* the defaults of a section */
    assert_int_equal(b->keep_days, 30);
    assert_int_equal(b->quota, 0);
    assert_int_equal(c->keep_days, 5);
    assert_int_equal(c->quota, 1024);
    custmap_free(m);
}

/* ---- files and schema ---- */

static void test_schema_version(void **state)
{
    char err[512];
    static const char *versions[] = {"PRAGMA user_version = 0;", "PRAGMA user_version = 4;"};
    static const char *wants[] = {": schema version 0 (PRAGMA user_version), want 1 to 3",
                                  ": schema version 4 (PRAGMA user_version), want 1 to 3"};
    for (int i = 0; i < 2; i++) {
        make_map(NULL, versions[i]);
        assert_null(custmap_load(mappath, err, sizeof err));
        assert_int_equal(strncmp(err, mappath, strlen(mappath)), 0);
        assert_non_null(strstr(err, wants[i]));
    }
    make_map("PRAGMA user_version = 1; CREATE TABLE customers (name);", NULL);
    assert_null(custmap_load(mappath, err, sizeof err));
    assert_non_null(strstr(err, ": table customers (schema version 1): no such column: deliver"));
    make_map("PRAGMA user_version = 1;", NULL);
    assert_null(custmap_load(mappath, err, sizeof err));
    assert_non_null(strstr(err, "no such table: customers"));
    /* a version 1 map (no maildrops table) still loads */
    make_map(NULL, "PRAGMA user_version = 1; DROP TABLE maildrops;"
             "INSERT INTO customers (name) VALUES ('a');"
             "INSERT INTO domains VALUES ('a.example', 'a');");
    struct custmap *m = custmap_load(mappath, err, sizeof err);
    assert_non_null(m);
    assert_int_equal(m->ncustomers, 1);
    assert_int_equal(m->nmaildrops, 0);
    custmap_free(m);
    /* a maildrops table of the wrong shape is reported as such */
    make_map(NULL, "DROP TABLE maildrops; CREATE TABLE maildrops (address);");
    assert_null(custmap_load(mappath, err, sizeof err));
    assert_non_null(strstr(err, ": table maildrops (schema version 3): no such column: password"));
}

/* Version 3 adds the nullable customer columns tls_ca and tls_name; a
 * version 2 map (without them) still loads, and they are read from 3. */
static void test_schema_version_3(void **state)
{
    char err[512], ca[PATH_MAX + 64], sql[PATH_MAX + 512];
    snprintf(ca, sizeof ca, "%s/ca.pem", tmpdir);
    FILE *f = fopen(ca, "w");
    assert_non_null(f);
    fclose(f);
    make_map(NULL, "PRAGMA user_version = 2;"
             "ALTER TABLE customers DROP COLUMN tls_ca;"
             "ALTER TABLE customers DROP COLUMN tls_name;"
             "ALTER TABLE customers DROP COLUMN autoturn;"
             "ALTER TABLE customers DROP COLUMN autoturn_networks;"
             "INSERT INTO customers (name, tls) VALUES ('a', 'encrypt');"
             "INSERT INTO domains VALUES ('a.example', 'a');");
    struct custmap *m = custmap_load(mappath, err, sizeof err);
    if (!m)
        print_error("%s\n", err);
    assert_non_null(m);
    assert_int_equal(m->customers[0].tls, TLSPOL_ENCRYPT);
    assert_null(m->customers[0].tls_ca);
    custmap_free(m);
    snprintf(sql, sizeof sql, "INSERT INTO customers (name, tls, tls_ca, tls_name) VALUES "
             "('a', 'verify', '%s', 'MX.A.example'), ('b', NULL, NULL, NULL);"
             "INSERT INTO domains VALUES ('a.example', 'a'), ('b.example', 'b');", ca);
    m = load_ok(sql);
    assert_int_equal(m->customers[0].tls, TLSPOL_VERIFY);
    assert_string_equal(m->customers[0].tls_ca, ca);
    assert_string_equal(m->customers[0].tls_name, "MX.A.example");
    assert_int_equal(m->customers[1].tls, TLSPOL_MAY);
    assert_null(m->customers[1].tls_ca);
    assert_null(m->customers[1].tls_name);
    custmap_free(m);
    snprintf(sql, sizeof sql, "INSERT INTO customers (name, tls_ca) VALUES ('a', '%s/no');"
             "INSERT INTO domains VALUES ('a.example', 'a');", tmpdir);
    make_map(NULL, sql);
    assert_null(custmap_load(mappath, err, sizeof err));
    assert_non_null(strstr(err, "customer 'a': cannot read tls_ca"));
    unlink(ca);
}

/* Version 3's autoturn columns are read; a version 2 map (without them)
 * loads unchanged, its customers with the defaults. */
static void test_schema_v3_autoturn(void **state)
{
    char err[512];
    struct custmap *m = load_ok(
        "INSERT INTO customers (name, autoturn, autoturn_networks) VALUES "
        "('a', 1, '192.0.2.0/24, 2001:db8::/48'), ('b', 'false', NULL);"
        "INSERT INTO domains VALUES ('a.example', 'a'), ('b.example', 'b');");
    assert_int_equal(m->ncustomers, 2);
    const struct customer *a = &m->customers[0], *b = &m->customers[1];
    assert_int_equal(a->autoturn, 1);
    assert_int_equal(a->autoturn_networks.n, 2);
    assert_true(netlist_match(&a->autoturn_networks, "192.0.2.77", NULL));
    assert_true(netlist_match(&a->autoturn_networks, "2001:db8:0:1::5", NULL));
    assert_false(netlist_match(&a->autoturn_networks, "192.0.3.1", NULL));
    assert_int_equal(b->autoturn, 0);
    assert_int_equal(b->autoturn_networks.n, 0);
    custmap_free(m);
    /* version 2: the shipped schema without the version 3 columns */
    make_map(NULL, "ALTER TABLE customers DROP COLUMN autoturn_networks;"
             "ALTER TABLE customers DROP COLUMN autoturn;"
             "ALTER TABLE customers DROP COLUMN tls_ca;"
             "ALTER TABLE customers DROP COLUMN tls_name;"
             "PRAGMA user_version = 2;"
             "INSERT INTO customers (name, port) VALUES ('a', 2525);"
             "INSERT INTO domains VALUES ('a.example', 'a');"
             "INSERT INTO maildrops (address, password) VALUES ('x@l.example', 'h');");
    m = custmap_load(mappath, err, sizeof err);
    if (!m)
        print_error("unexpected failure: %s\n", err);
    assert_non_null(m);
    assert_int_equal(m->ncustomers, 1);
    assert_int_equal(m->customers[0].port, 2525);
    assert_int_equal(m->customers[0].autoturn, 0);
    assert_int_equal(m->nmaildrops, 1);
    custmap_free(m);
    /* a version 3 map without the columns is refused, saying which */
    make_map(NULL, "ALTER TABLE customers DROP COLUMN autoturn_networks;");
    assert_null(custmap_load(mappath, err, sizeof err));
    assert_non_null(strstr(err, "(schema version 3): no such column: autoturn_networks"));
}

static void test_missing_and_junk_files(void **state)
{
    char err[512], path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/nonexistent.sqlite", tmpdir);
    assert_null(custmap_load(path, err, sizeof err));
    assert_int_equal(strncmp(err, path, strlen(path)), 0);
    assert_non_null(strstr(err, ": cannot open: No such file or directory"));
    assert_null(custmap_load(tmpdir, err, sizeof err));
    assert_non_null(strstr(err, ": cannot open: not a regular file"));
    snprintf(path, sizeof path, "%s/junk", tmpdir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < 100; i++)
        fputs("this is not an SQLite database at all\n", f);
    fclose(f);
    assert_null(custmap_load(path, err, sizeof err));
    assert_int_equal(strncmp(err, path, strlen(path)), 0);
    assert_non_null(strstr(err, "not a database"));
    /* an empty file is an empty database: schema version 0 */
    f = fopen(path, "w");
    fclose(f);
    assert_null(custmap_load(path, err, sizeof err));
    assert_non_null(strstr(err, "schema version 0"));
}

/* The commented example at the end of customers.sql runs and loads. */
static void test_shipped_example(void **state)
{
    const char *p = strstr(schema, "\n-- BEGIN;");
    assert_non_null(p);
    char sql[4096] = "";
    size_t o = 0;
    for (p++; strncmp(p, "-- ", 3) == 0; ) {
        const char *eol = strchr(p, '\n');
        assert_non_null(eol);
        o += (size_t)snprintf(sql + o, sizeof sql - o, "%.*s\n", (int)(eol - p - 3), p + 3);
        if (strncmp(p, "-- COMMIT;", 10) == 0)
            break;
        p = eol + 1;
    }
    struct custmap *m = load_ok(sql);
    assert_int_equal(m->ncustomers, 2);
    assert_string_equal(m->customers[0].name, "acme");
    assert_int_equal(m->customers[0].ndomains, 2);
    assert_int_equal(m->customers[1].deliver, DELIVER_HOST);
    custmap_free(m);
}

/* ---- the registry: map and inline side by side ---- */

static void test_registry_with_inline(void **state)
{
    char err[512], want[1024];
    struct custmap *m = load_ok(
        "INSERT INTO customers (name, radius_user, interface) VALUES ('mapped', 'mu', 'ppp9');\n"
        "INSERT INTO domains VALUES ('mapped.example', 'mapped'), ('Mapped.CO.uk', 'mapped');\n");
    struct config *c = conf_ok("customer \"inline\" { domains = {\"inline.example\"} }\n");
    struct registry *r = registry_new(c, m, err, sizeof err);
    assert_non_null(r);
    assert_int_equal(registry_count(r), 2);
    assert_ptr_equal(registry_at(r, 0), &c->customers[0]);
    assert_ptr_equal(registry_at(r, 1), &m->customers[0]);
    assert_ptr_equal(registry_by_name(r, "mapped"), &m->customers[0]);
    assert_ptr_equal(registry_by_domain(r, "MAPPED.example"), &m->customers[0]);
    assert_ptr_equal(registry_by_domain(r, "mapped.co.uk"), &m->customers[0]);
    assert_ptr_equal(registry_by_domain(r, "inline.example"), &c->customers[0]);
    assert_ptr_equal(registry_by_radius_user(r, "mu"), &m->customers[0]);
    assert_ptr_equal(registry_by_interface(r, "ppp9"), &m->customers[0]);
    registry_free(r);
    config_free(c);

    static const struct { const char *conf, *want; } cases[] = {
        {"\ncustomer \"other\" { domains = {\"MAPPED.example\"} }\n",
         "domain 'mapped.example' claimed by customers 'other' and 'mapped' (%s:2 and %s)"},
        {"customer \"mapped\" { domains = {\"x.example\"} }\n",
         "customer 'mapped' defined twice (%s:1 and %s)"},
        {"customer \"o\" {\n domains = {\"o.example\"}\n radius_user = \"mu\" }\n",
         "radius_user 'mu' claimed by customers 'o' and 'mapped' (%s:1 and %s)"},
        {"customer \"o\" { domains = {\"o.example\"} interface = \"ppp9\" }\n",
         "interface 'ppp9' claimed by customers 'o' and 'mapped' (%s:1 and %s)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        c = conf_ok(cases[i].conf);
        snprintf(want, sizeof want, cases[i].want, confpath, mappath);
        err[0] = 0;
        assert_null(registry_new(c, m, err, sizeof err));
        if (strcmp(err, want) != 0) {
            print_error("got \"%s\", want \"%s\"\n", err, want);
            fail();
        }
        config_free(c);
    }
    custmap_free(m);
}

/* ---- 100,000 customers ---- */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void build_big_map(size_t n)
{
    sqlite3 *db = map_open_new(NULL);
    sqlite3_stmt *cs, *ds;
    char name[32], dom[64];
    exec_ok(db, "BEGIN");
    assert_int_equal(sqlite3_prepare_v2(db, "INSERT INTO customers (name, link_ttl, "
                                        "radius_user, quota) VALUES (?, '6h', ?, '100M')",
                                        -1, &cs, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "INSERT INTO domains VALUES (?, ?)", -1,
                                        &ds, NULL), SQLITE_OK);
    for (size_t i = 0; i < n; i++) {
        snprintf(name, sizeof name, "c%06zu", i);
        sqlite3_bind_text(cs, 1, name, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(cs, 2, name, -1, SQLITE_TRANSIENT);
        assert_int_equal(sqlite3_step(cs), SQLITE_DONE);
        sqlite3_reset(cs);
        for (size_t j = 0; j < 1 + (i % 2); j++) {
            snprintf(dom, sizeof dom, "%s.example%s", name, j ? ".net" : "");
            sqlite3_bind_text(ds, 1, dom, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(ds, 2, name, -1, SQLITE_TRANSIENT);
            assert_int_equal(sqlite3_step(ds), SQLITE_DONE);
            sqlite3_reset(ds);
        }
    }
    sqlite3_finalize(cs);
    sqlite3_finalize(ds);
    exec_ok(db, "COMMIT");
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

static void test_100k_customers(void **state)
{
    const size_t n = 100000;
    char err[512];
    build_big_map(n);
    struct config *c = conf_ok("customer \"inline\" { domains = {\"inline.example\"} }\n");
    double t0 = now();
    struct custmap *m = custmap_load(mappath, err, sizeof err);
    double t1 = now();
    if (!m)
        print_error("%s\n", err);
    assert_non_null(m);
    struct registry *r = registry_new(c, m, err, sizeof err);
    double t2 = now();
    assert_non_null(r);
    double t3 = now();
    custmap_free(m);
    double t4 = now();
    printf("[   INFO   ] %zu customers, %zu domains: custmap_load %.3f s, "
           "registry_new %.3f s, total %.3f s (goal <= 1 s); custmap_free %.3f s\n",
           n, n + n / 2, t1 - t0, t2 - t1, t2 - t0, t4 - t3);
    m = custmap_load(mappath, err, sizeof err);     /* again, for the lookups */
    registry_free(r);
    r = registry_new(c, m, err, sizeof err);
    assert_int_equal(registry_count(r), n + 1);
    assert_string_equal(registry_by_domain(r, "c099999.example.net")->name, "c099999");
    assert_string_equal(registry_by_domain(r, "C012346.EXAMPLE")->name, "c012346");
    assert_null(registry_by_domain(r, "c012346.example.net"));
    assert_string_equal(registry_by_radius_user(r, "c054321")->name, "c054321");
    assert_int_equal(registry_by_name(r, "c000007")->link_ttl, 6 * 3600);
    assert_int_equal(registry_by_name(r, "c000007")->quota, 100ULL * 1024 * 1024);
    registry_free(r);
    custmap_free(m);
    config_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_option),
        cmocka_unit_test(test_value_forms),
        cmocka_unit_test(test_defaults_match_inline),
        cmocka_unit_test(test_empty_map),
        cmocka_unit_test(test_bad_rows),
        cmocka_unit_test(test_loose_schema),
        cmocka_unit_test(test_maildrops),
        cmocka_unit_test(test_schema_version),
        cmocka_unit_test(test_schema_version_3),
        cmocka_unit_test(test_schema_v3_autoturn),
        cmocka_unit_test(test_missing_and_junk_files),
        cmocka_unit_test(test_shipped_example),
        cmocka_unit_test(test_registry_with_inline),
        cmocka_unit_test(test_100k_customers),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

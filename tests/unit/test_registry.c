/*
 * test_registry — the registry's maildrops and local domains: address
 * maildrops from sections and from the customer map's maildrops table, the
 * domain maildrops of deliver = "maildrop" customers, the local domain made
 * for each maildrop domain no customer owns (its options, its accepted local
 * parts), lookups by login in any case, the order of registry_maildrop_at,
 * the conflicts (a maildrop in a customer's domain, an address twice) with
 * the place of each party, what registry_compare finds a reload changes
 * (maildrops added, quotas raised), that every name config accepts has a
 * maildir_path() directory, and 100,000 maildrops in the map (timed and
 * printed; lookups checked).  Maps are built with the sqlite3 C API from
 * the shipped conf/customers.sql (KM_TOP, default ".") in a mkdtemp()
 * directory.
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
#include "core/registry.h"
#include "maildir/maildir.h"
#include "map_fixture.h"


static const char conf_text[] =
    "customer \"acme\" { domains = {\"acme.example\"} }\n"
    "customer \"drop\" {\n domains = {\"drop.example\", \"drop.co.uk\"}\n"
    " deliver = maildrop\n secret = 'pop-secret'\n quota = 2M\n}\n"
    "maildrop \"Alice@ISP.example\" { password = 'h1' mode = keep keep_days = 7 quota = 1M }\n"
    "maildrop \"bob@isp.example\" { password = 'h2' }\n"
    "maildrop \"carol@other.example\" { password = 'h3' }\n";

static const char map_rows[] =
    "INSERT INTO customers (name, deliver, secret) VALUES ('mapdrop', 'maildrop', 's2');\n"
    "INSERT INTO domains VALUES ('mapdrop.example', 'mapdrop');\n"
    "INSERT INTO maildrops (address, password, quota) VALUES ('dave@isp.example', 'h4', '3k');\n"
    "INSERT INTO maildrops (address, password) VALUES ('eve@mapped.example', 'h5');\n";

/* The local domains and what they accept. */
static void test_local_domains(void **state)
{
    char err[512];
    struct config *c = conf_ok(conf_text);
    struct custmap *m = load_ok(map_rows);
    struct registry *r = registry_new(c, m, err, sizeof err);
    if (!r)
        print_error("%s\n", err);
    assert_non_null(r);
    /* acme, drop, mapdrop, then isp.example, other.example, mapped.example */
    assert_int_equal(registry_count(r), 6);
    static const char *names[] = {"acme", "drop", "mapdrop", "isp.example",
                                  "other.example", "mapped.example"};
    for (size_t i = 0; i < 6; i++)
        assert_string_equal(registry_at(r, i)->name, names[i]);

    const struct customer *isp = registry_by_domain(r, "ISP.Example");
    assert_non_null(isp);
    assert_ptr_equal(registry_by_name(r, "isp.example"), isp);
    assert_string_equal(isp->name, "isp.example");
    assert_int_equal(isp->ndomains, 1);
    assert_string_equal(isp->domains[0], "isp.example");
    assert_int_equal(isp->deliver, DELIVER_LOCAL);
    assert_int_equal(isp->online, ONLINE_ALWAYS);
    assert_int_equal(isp->quota, 0);
    assert_int_equal(isp->hold_time, 5 * 86400);
    assert_int_equal(isp->retry_min, 60);
    assert_int_equal(isp->retry_max, 3600);
    assert_int_equal(isp->line, 8);                 /* its first maildrop's */
    assert_string_equal(isp->origin, confpath);
    assert_null(isp->secret);
    assert_null(registry_by_radius_user(r, "isp.example"));

    static const struct { const char *dom, *local; int ok; } accepts[] = {
        {"isp.example", "alice", 1}, {"isp.example", "ALICE", 1}, {"isp.example", "bob", 1},
        {"isp.example", "dave", 1},                 /* a map row in a section's domain */
        {"isp.example", "carol", 0}, {"isp.example", "eve", 0},
        {"isp.example", "alic", 0}, {"isp.example", "alicex", 0}, {"isp.example", "", 0},
        {"isp.example", "alice@isp.example", 0}, {"isp.example", NULL, 0},
        {"other.example", "carol", 1}, {"other.example", "alice", 0},
        {"mapped.example", "eve", 1}, {"mapped.example", "Eve", 1},
        {"mapped.example", "bob", 0},
        {"acme.example", "anyone", 1},              /* customers as before */
        {"drop.example", "anyone", 1},
    };
    for (size_t i = 0; i < sizeof accepts / sizeof accepts[0]; i++) {
        const struct customer *cu = registry_by_domain(r, accepts[i].dom);
        assert_non_null(cu);
        if (registry_accepts_local(cu, accepts[i].local) != accepts[i].ok) {
            print_error("%s@%s: want %d\n", accepts[i].local ? accepts[i].local : "(null)",
                        accepts[i].dom, accepts[i].ok);
            fail();
        }
    }
    registry_free(r);
    custmap_free(m);
    config_free(c);
}

/* Maildrops by login, and in order. */
static void test_maildrop_lookups(void **state)
{
    char err[512];
    struct config *c = conf_ok(conf_text);
    struct custmap *m = load_ok(map_rows);
    struct registry *r = registry_new(c, m, err, sizeof err);
    assert_non_null(r);
    struct maildrop_ref md;

    assert_int_equal(registry_maildrop(r, "ALICE@isp.EXAMPLE", &md), 0);
    assert_string_equal(md.name, "alice@isp.example");
    assert_string_equal(md.password, "h1");
    assert_null(md.secret);
    assert_int_equal(md.mode, MAILDROP_KEEP);
    assert_int_equal(md.keep_days, 7);
    assert_int_equal(md.quota, 1024 * 1024);
    assert_null(md.cust);

    assert_int_equal(registry_maildrop(r, "dave@isp.example", &md), 0);
    assert_string_equal(md.password, "h4");
    assert_int_equal(md.quota, 3 * 1024);
    assert_int_equal(md.mode, MAILDROP_DELETE);

    /* a domain maildrop: the customer's name, secret and quota */
    assert_int_equal(registry_maildrop(r, "Drop", &md), 0);
    assert_string_equal(md.name, "drop");
    assert_null(md.password);
    assert_string_equal(md.secret, "pop-secret");
    assert_int_equal(md.mode, MAILDROP_DELETE);
    assert_int_equal(md.keep_days, 30);
    assert_int_equal(md.quota, 2 * 1024 * 1024);
    assert_ptr_equal(md.cust, registry_by_name(r, "drop"));
    assert_int_equal(registry_maildrop(r, "mapdrop", &md), 0);
    assert_string_equal(md.secret, "s2");
    assert_int_equal(md.quota, 500ULL * 1024 * 1024);     /* the customer default */

    static const char *none[] = {"acme", "isp.example", "zed@isp.example", "alice",
                                 "alice@other.example", "", "drop.example"};
    for (size_t i = 0; i < sizeof none / sizeof none[0]; i++)
        assert_int_equal(registry_maildrop(r, none[i], &md), -1);
    assert_int_equal(registry_maildrop(r, NULL, &md), -1);

    /* address maildrops (sections, then rows), then domain maildrops */
    static const char *order[] = {"alice@isp.example", "bob@isp.example",
                                  "carol@other.example", "dave@isp.example",
                                  "eve@mapped.example", "drop", "mapdrop"};
    assert_int_equal(registry_maildrop_count(r), 7);
    for (size_t i = 0; i < 7; i++) {
        registry_maildrop_at(r, i, &md);
        assert_string_equal(md.name, order[i]);
    }
    registry_maildrop_at(r, 7, &md);
    assert_null(md.name);
    registry_free(r);

    /* no maildrops at all */
    struct config *c0 = conf_ok("customer \"acme\" { domains = {\"acme.example\"} }\n");
    r = registry_new(c0, NULL, err, sizeof err);
    assert_int_equal(registry_maildrop_count(r), 0);
    assert_int_equal(registry_count(r), 1);
    assert_int_equal(registry_maildrop(r, "acme", &md), -1);
    registry_free(r);
    config_free(c0);
    custmap_free(m);
    config_free(c);
}

/* Names of the maildrops an _at function gives for k in [0, n), joined by
 * spaces, into buf. */
static const char *names_of(const struct registry *r, size_t n,
                            void (*at)(const struct registry *, size_t, struct maildrop_ref *),
                            char *buf, size_t len)
{
    buf[0] = 0;
    for (size_t k = 0; k < n; k++) {
        struct maildrop_ref md;
        at(r, k, &md);
        snprintf(buf + strlen(buf), len - strlen(buf), "%s%s", k ? " " : "", md.name);
    }
    return buf;
}

/* registry_compare: the maildrops a new registry adds, and those whose
 * quota it raises or lifts; nothing else (lowered, unchanged, none before). */
static void test_compare(void **state)
{
    char err[512], buf[512];
    struct config *c = conf_ok(conf_text);
    struct custmap *m = load_ok(map_rows);
    struct registry *prev = registry_new(c, m, err, sizeof err);
    assert_non_null(prev);
    /* not compared: every maildrop is added, none raised */
    assert_int_equal(registry_added_count(prev), registry_maildrop_count(prev));
    assert_string_equal(names_of(prev, registry_added_count(prev), registry_added_at,
                                 buf, sizeof buf),
                        "alice@isp.example bob@isp.example carol@other.example "
                        "dave@isp.example eve@mapped.example drop mapdrop");
    assert_int_equal(registry_raised_count(prev), 0);

    /* alice's quota raised, the customer drop's raised, carol gone, frank
     * new, bob given a quota (none before), dave's lowered */
    struct config *c2 = conf_ok(
        "customer \"acme\" { domains = {\"acme.example\"} }\n"
        "customer \"drop\" {\n domains = {\"drop.example\", \"drop.co.uk\"}\n"
        " deliver = maildrop\n secret = 'pop-secret'\n quota = 4M\n}\n"
        "maildrop \"Alice@ISP.example\" { password = 'h1' mode = keep keep_days = 7 quota = 2M }\n"
        "maildrop \"bob@isp.example\" { password = 'h2' quota = 1M }\n"
        "maildrop \"frank@isp.example\" { password = 'h6' }\n");
    struct custmap *m2 = load_ok(
        "INSERT INTO customers (name, deliver, secret) VALUES ('mapdrop', 'maildrop', 's2');\n"
        "INSERT INTO domains VALUES ('mapdrop.example', 'mapdrop');\n"
        "INSERT INTO maildrops (address, password, quota) VALUES ('dave@isp.example', 'h4', '1k');\n"
        "INSERT INTO maildrops (address, password) VALUES ('eve@mapped.example', 'h5');\n");
    struct registry *r = registry_new(c2, m2, err, sizeof err);
    assert_non_null(r);
    registry_compare(r, prev);
    assert_string_equal(names_of(r, registry_added_count(r), registry_added_at, buf, sizeof buf),
                        "frank@isp.example");
    assert_string_equal(names_of(r, registry_raised_count(r), registry_raised_at, buf,
                                 sizeof buf), "alice@isp.example drop");
    struct maildrop_ref md;
    registry_added_at(r, 1, &md);               /* past the end */
    assert_null(md.name);
    registry_raised_at(r, 2, &md);
    assert_null(md.name);

    /* a quota lifted (the limit removed) counts as raised; against no
     * registry at all, everything is added */
    struct config *c3 = conf_ok("maildrop \"alice@isp.example\" { password = 'h1' }\n");
    struct registry *r3 = registry_new(c3, NULL, err, sizeof err);
    assert_non_null(r3);
    registry_compare(r3, prev);
    assert_int_equal(registry_added_count(r3), 0);
    assert_string_equal(names_of(r3, registry_raised_count(r3), registry_raised_at, buf,
                                 sizeof buf), "alice@isp.example");
    registry_compare(r3, NULL);
    assert_int_equal(registry_added_count(r3), 1);
    assert_int_equal(registry_raised_count(r3), 0);

    registry_free(r3);
    config_free(c3);
    registry_free(r);
    custmap_free(m2);
    config_free(c2);
    registry_free(prev);
    custmap_free(m);
    config_free(c);
}

/* Conflicts between sections and rows, each party named with its place. */
static void test_conflicts(void **state)
{
    static const struct { const char *conf, *sql, *want; } cases[] = {
        {"\nmaildrop \"bob@mapco.example\" { password = 'x' }\n",
         "INSERT INTO customers (name) VALUES ('mapco');"
         "INSERT INTO domains VALUES ('MapCo.example', 'mapco');",
         "maildrop 'bob@mapco.example' (%1$s:2) is in domain 'mapco.example' of "
         "customer 'mapco' (%2$s)"},
        {"customer \"acme\" {\n domains = {\"acme.example\"}\n}\n",
         "INSERT INTO maildrops (address, password) VALUES ('bob@ACME.example', 'x');",
         "maildrop 'bob@acme.example' (%2$s) is in domain 'acme.example' of "
         "customer 'acme' (%1$s:1)"},
        {"\n\nmaildrop \"bob@isp.example\" { password = 'x' }\n",
         "INSERT INTO maildrops (address, password) VALUES ('Bob@isp.example', 'y');",
         "maildrop 'bob@isp.example' defined twice (%1$s:3 and %2$s)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[512] = "", want[1024];
        struct config *c = conf_ok(cases[i].conf);
        struct custmap *m = load_ok(cases[i].sql);
        snprintf(want, sizeof want, cases[i].want, confpath, mappath);
        assert_null(registry_new(c, m, err, sizeof err));
        if (strcmp(err, want) != 0) {
            print_error("case %zu: got \"%s\", want \"%s\"\n", i, err, want);
            fail();
        }
        custmap_free(m);
        config_free(c);
    }
}

/* Whatever config accepts as a maildrop has a directory: config's address
 * rule is at least as strict as maildir_path()'s (which core may not call),
 * and a domain maildrop's name is a customer name. */
static void test_names_have_paths(void **state)
{
    static const char *good[] = {
        "a@b.example", "a.b@b.example", "a+tag@b.example", "o'brien@b.example",
        "!#$%&'*+-=?^_`{|}~@b.example", "x-y_z@sub.b-c.example",
    };
    static const char *bad[] = {
        ".a@b.example", "a.@b.example", "a..b@b.example", "a/b@b.example", "../a@b.example",
        "a@b@b.example", "a b@b.example", "\"a\"@b.example", "a@.b.example", "a@b..example",
        "a@b.example/x", "a@localhost", "@b.example", "a@", "a\x01@b.example",
        "\xc3\xa9@b.example", "a\\b@b.example", "a(b)@b.example", "a,b@b.example",
    };
    char dir[4096];
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        assert_null(config_check_maildrop_address(good[i]));
        if (maildir_path("/srv/md", good[i], dir, sizeof dir) < 0) {
            print_error("%s: accepted by config, refused by maildir_path\n", good[i]);
            fail();
        }
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (config_check_maildrop_address(bad[i]) == NULL) {
            print_error("%s: accepted\n", bad[i]);
            fail();
        }
    /* every maildrop of a registry, domain maildrops included */
    char err[512];
    struct config *c = conf_ok(conf_text);
    struct custmap *m = load_ok(map_rows);
    struct registry *r = registry_new(c, m, err, sizeof err);
    assert_non_null(r);
    for (size_t i = 0; i < registry_maildrop_count(r); i++) {
        struct maildrop_ref md;
        registry_maildrop_at(r, i, &md);
        assert_int_equal(maildir_path("/srv/md", md.name, dir, sizeof dir), 0);
    }
    registry_free(r);
    custmap_free(m);
    config_free(c);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* 100,000 maildrops in 100 domains of the map. */
static void test_100k_maildrops(void **state)
{
    const size_t n = 100000;
    char err[512], addr[64];
    sqlite3 *db = map_open_new(NULL);
    sqlite3_stmt *st;
    exec_ok(db, "BEGIN");
    assert_int_equal(sqlite3_prepare_v2(db, "INSERT INTO maildrops (address, password, quota)"
                                        " VALUES (?, '$y$j9T$x', '100M')", -1, &st, NULL),
                     SQLITE_OK);
    for (size_t i = 0; i < n; i++) {
        snprintf(addr, sizeof addr, "user%06zu@d%03zu.example", i, i % 100);
        sqlite3_bind_text(st, 1, addr, -1, SQLITE_TRANSIENT);
        assert_int_equal(sqlite3_step(st), SQLITE_DONE);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    exec_ok(db, "COMMIT");
    assert_int_equal(sqlite3_close(db), SQLITE_OK);

    struct config *c = conf_ok("customer \"acme\" { domains = {\"acme.example\"} }\n");
    double t0 = now();
    struct custmap *m = custmap_load(mappath, err, sizeof err);
    double t1 = now();
    assert_non_null(m);
    struct registry *r = registry_new(c, m, err, sizeof err);
    double t2 = now();
    assert_non_null(r);
    assert_int_equal(registry_maildrop_count(r), n);
    assert_int_equal(registry_count(r), 101);
    size_t hits = 0;
    for (size_t i = 0; i < n; i++) {
        struct maildrop_ref md;
        snprintf(addr, sizeof addr, "USER%06zu@D%03zu.example", i, i % 100);
        hits += registry_maildrop(r, addr, &md) == 0 && md.quota == 100ULL * 1024 * 1024;
        addr[10] = 0;
        const struct customer *cu = registry_by_domain(r, addr + 11);
        snprintf(addr, sizeof addr, "user%06zu", i);
        hits += cu && registry_accepts_local(cu, addr);
        snprintf(addr, sizeof addr, "user%06zu", (i + 1) % n);
        hits += cu && (i + 1) % 100 != i % 100 && !registry_accepts_local(cu, addr);
    }
    double t3 = now();
    assert_int_equal(hits, 3 * n);
    printf("[   INFO   ] %zu maildrops in 100 domains: custmap_load %.3f s, registry_new "
           "%.3f s; %zu lookups (login, local part, absent local part) %.3f s\n",
           n, t1 - t0, t2 - t1, 3 * n, t3 - t2);
    registry_free(r);
    custmap_free(m);
    config_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_local_domains),
        cmocka_unit_test(test_maildrop_lookups),
        cmocka_unit_test(test_compare),
        cmocka_unit_test(test_conflicts),
        cmocka_unit_test(test_names_have_paths),
        cmocka_unit_test(test_100k_maildrops),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

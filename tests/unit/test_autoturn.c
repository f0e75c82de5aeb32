/*
 * test_autoturn — the AutoTURN decision (autoturn_decide, pure) as a table
 * over customers (autoturn on/off, deliver kinds, networks) and sessions
 * (authenticated or not, inside or outside the networks, numeric or not);
 * autoturn_by_network over a registry built from a configuration (the
 * longest prefix wins, customers without networks are never chosen, a
 * reload's registry replaces the index); and that a domain maildrop (the
 * POP3 login) exists for an autoturn customer with a secret only.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/netlist.h"
#include "core/registry.h"
#include "link/autoturn.h"

static struct customer cust(int autoturn, enum deliver_kind deliver, const char *nets)
{
    struct customer c;
    char why[256];
    memset(&c, 0, sizeof c);
    c.name = "acme";
    c.autoturn = autoturn;
    c.deliver = deliver;
    assert_int_equal(netlist_parse(nets, &c.autoturn_networks, why, sizeof why), 0);
    return c;
}

static void test_decide_table(void **state)
{
    static const struct {
        int autoturn;
        enum deliver_kind deliver;
        const char *nets;
        int authenticated;
        const char *peer;
        enum autoturn_how want;
    } cases[] = {
        {1, DELIVER_LINK, "", 1, "192.0.2.1", AUTOTURN_AUTH},
        {1, DELIVER_LINK, "", 1, "2001:db8::1", AUTOTURN_AUTH},
        {1, DELIVER_LINK, "", 0, "192.0.2.1", AUTOTURN_NO},         /* no proof */
        {0, DELIVER_LINK, "", 1, "192.0.2.1", AUTOTURN_NO},         /* autoturn off */
        {0, DELIVER_LINK, "192.0.2.0/24", 0, "192.0.2.1", AUTOTURN_NO},
        {1, DELIVER_HOST, "", 1, "192.0.2.1", AUTOTURN_NO},         /* no link */
        {1, DELIVER_MAILDROP, "", 1, "192.0.2.1", AUTOTURN_NO},
        {1, DELIVER_PICKUP, "", 1, "192.0.2.1", AUTOTURN_NO},
        {1, DELIVER_LINK, "192.0.2.0/24", 0, "192.0.2.77", AUTOTURN_NETWORK},
        {1, DELIVER_LINK, "192.0.2.0/24", 1, "192.0.2.77", AUTOTURN_AUTH},
        {1, DELIVER_LINK, "192.0.2.0/24", 0, "192.0.3.1", AUTOTURN_NO},
        {1, DELIVER_LINK, "192.0.2.0/24", 0, "::ffff:192.0.2.5", AUTOTURN_NETWORK},
        {1, DELIVER_LINK, "2001:db8::/48", 0, "2001:db8::9", AUTOTURN_NETWORK},
        {1, DELIVER_LINK, "2001:db8::/48", 0, "2001:db9::9", AUTOTURN_NO},
        {1, DELIVER_LINK, "", 1, "unix", AUTOTURN_NO},              /* not an address */
        {1, DELIVER_LINK, "", 1, "", AUTOTURN_NO},
        {1, DELIVER_LINK, "", 1, NULL, AUTOTURN_NO},
        {1, DELIVER_LINK, "0.0.0.0/0", 0, "unix", AUTOTURN_NO},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct customer c = cust(cases[i].autoturn, cases[i].deliver, cases[i].nets);
        enum autoturn_how got = autoturn_decide(&c, cases[i].authenticated, cases[i].peer);
        if (got != cases[i].want) {
            print_error("case %zu (%s): got %d want %d\n", i,
                        cases[i].peer ? cases[i].peer : "NULL", got, cases[i].want);
            fail();
        }
        netlist_free(&c.autoturn_networks);
    }
    assert_int_equal(autoturn_decide(NULL, 1, "192.0.2.1"), AUTOTURN_NO);
}

static char tmpdir[PATH_MAX];

static struct config *conf(const char *text)
{
    char path[PATH_MAX + 32], err[512];
    snprintf(path, sizeof path, "%s/test.conf", tmpdir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    struct config *c = config_load(path, err, sizeof err);
    if (!c)
        print_error("config: %s\n", err);
    assert_non_null(c);
    return c;
}

static void test_by_network(void **state)
{
    char err[512];
    struct config *c = conf(
        "customer \"wide\" { domains = {\"w.example\"} autoturn = true\n"
        "  autoturn_networks = {\"10.0.0.0/8\"} }\n"
        "customer \"narrow\" { domains = {\"n.example\"} autoturn = true\n"
        "  autoturn_networks = {\"10.1.0.0/16\", \"2001:db8::/32\"} }\n"
        "customer \"none\" { domains = {\"x.example\"} autoturn = true secret = 'x' }\n"
        "customer \"off\" { domains = {\"o.example\"} autoturn = false\n"
        "  autoturn_networks = {\"192.0.2.0/24\"} }\n");
    struct registry *r = registry_new(c, NULL, err, sizeof err);
    assert_non_null(r);
    assert_null(autoturn_by_network("10.1.2.3"));   /* not configured yet */
    autoturn_configure(r);
    assert_string_equal(autoturn_by_network("10.1.2.3")->name, "narrow");
    assert_string_equal(autoturn_by_network("10.2.0.1")->name, "wide");
    assert_string_equal(autoturn_by_network("2001:db8:5::1")->name, "narrow");
    assert_null(autoturn_by_network("192.0.2.1"));     /* "off": autoturn = false */
    assert_null(autoturn_by_network("unix"));
    /* the POP3 login: only the autoturn customer with a secret has one */
    struct maildrop_ref ref;
    assert_int_equal(registry_maildrop(r, "none", &ref), 0);
    assert_ptr_equal(ref.cust, registry_by_name(r, "none"));
    assert_int_equal(registry_maildrop(r, "wide", &ref), -1);
    /* a reload's registry replaces the index */
    struct config *c2 = conf("customer \"wide\" { domains = {\"w.example\"} }\n");
    struct registry *r2 = registry_new(c2, NULL, err, sizeof err);
    assert_non_null(r2);
    autoturn_configure(r2);
    registry_free(r);
    config_free(c);
    assert_null(autoturn_by_network("10.1.2.3"));
    autoturn_configure(NULL);
    autoturn_shutdown();
    registry_free(r2);
    config_free(c2);
}

static int setup(void **state)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_autoturn.XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/test.conf", tmpdir);
    unlink(path);
    rmdir(tmpdir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decide_table),
        cmocka_unit_test(test_by_network),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

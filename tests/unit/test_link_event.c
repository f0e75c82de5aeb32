/*
 * test_link_event — unit tests of link_event.h, the one entry for link
 * detectors, on a real event loop, a real link table and spool in a mkdtemp
 * directory, and a registry built from a configuration file.  One table of
 * events: WHO by customer name, RADIUS user (with the customer-name default
 * of a customer without radius_user) and interface; unknown and malformed
 * names; deliver = "link" without an address; the TTL from link_ttl or the
 * event; down; what links_set() refuses.  Each row starts from an empty link
 * table.  Then: the callback comes once, after link_event() returned;
 * delivery's change callback gets the event's address; a failed write; an
 * unconfigured registry; link_event_shutdown() with an event in flight.
 * And the RADIUS listener on the same table: a Start's link change reaches
 * delivery's callback before the Accounting-Response's authenticator is
 * computed (digest_md5() is this file's, counting its calls).
 * And peer_link.h, the link of a session's peer (ODMR, AutoTURN): raised
 * unless up from another source (or from its own with keep_own), taken
 * down only while still that session's, refused like link_event().
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <openssl/evp.h>

#include "core/config.h"
#include "core/digest.h"
#include "core/log.h"
#include "core/registry.h"
#include "core/util.h"
#include "link/link_event.h"
#include "link/links.h"
#include "link/peer_link.h"
#include "link/radius.h"
#include "spool/spool.h"

static const char conf_text[] =
    "customer \"acme\" {\n"
    "  domains = {\"acme.example\"}\n"
    "  link_ttl = 2h\n"
    "  radius_user = \"acme-ppp\"\n"
    "  interface = \"ippp3\"\n"
    "}\n"
    "customer \"beta\" { domains = {\"beta.example\"} deliver = \"192.0.2.25:25\" }\n"
    "customer \"gamma\" {\n"
    "  domains = {\"gamma.example\"}\n"
    "  radius_user = \"gamma-dsl\"\n"
    "  interface = \"ppp0\"\n"
    "}\n"
    "customer \"delta\" { domains = {\"delta.example\"} radius_user = \"beta\" }\n"
    "customer \"zeta\" { domains = {\"zeta.example\"} }\n";

static struct event_base *base;
static struct spool *sp;
static struct config *cfg;
static struct registry *reg;
static char *dir;

/* What the callbacks saw. */
static struct {
    int calls;                  /* link_event callbacks */
    int early;                  /* ... of which before link_event() returned */
    int returned;               /* link_event() has returned */
    char customer[80], address[64], error[512];
    int up, has_error;
    int fn_calls;               /* the table's change callback */
    char fn_address[64];
    int fn_up;
} seen;

/* ---- helpers ---- */

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    return remove(path);
}

/* digest_md5() calls, and how many there had been when the change
 * callback first saw a link up (-1: not yet). */
static int md5_calls, md5_at_up = -1;

/* MD5 through OpenSSL, uncounted (the test's own checks). */
static void md5_real(const struct digest_part *parts, size_t n, unsigned char out[DIGEST_MD5_LEN])
{
    unsigned int len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    assert_non_null(ctx);
    assert_int_equal(EVP_DigestInit_ex(ctx, EVP_md5(), NULL), 1);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(EVP_DigestUpdate(ctx, parts[i].buf, parts[i].len), 1);
    assert_int_equal(EVP_DigestFinal_ex(ctx, out, &len), 1);
    EVP_MD_CTX_free(ctx);
}

/* Replaces core/digest.c's for this test: counts the daemon's MD5s. */
int digest_md5(const struct digest_part *parts, size_t n, unsigned char out[DIGEST_MD5_LEN])
{
    md5_calls++;
    md5_real(parts, n, out);
    return 0;
}

static void change_fn(const struct link *l, int was_up, void *arg)
{
    if (l->up && md5_at_up < 0)
        md5_at_up = md5_calls;
    seen.fn_calls++;
    seen.fn_up = l->up;
    snprintf(seen.fn_address, sizeof seen.fn_address, "%s", l->address);
}

static void event_cb(const struct link_event_result *res, void *arg)
{
    seen.calls++;
    if (!seen.returned)
        seen.early++;
    snprintf(seen.customer, sizeof seen.customer, "%s", res->customer);
    snprintf(seen.address, sizeof seen.address, "%s", res->address);
    seen.up = res->up;
    seen.has_error = res->error != NULL;
    snprintf(seen.error, sizeof seen.error, "%s", res->error ? res->error : "");
    assert_int_equal((int)(intptr_t)arg, 7);
}

static void set_cb(int err, void *arg)
{
    *(int *)arg = err + 1;
}

/* Runs the loop until *flag is set or max_s passed. */
static void run_until(const int *flag, double max_s)
{
    double end = util_now_mono() + max_s;
    while (!*flag && util_now_mono() < end) {
        struct timeval tv = {0, 5000};
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
    }
}

static void links_start(void)
{
    char err[256];
    if (links_init(base, sp, change_fn, NULL, err, sizeof err) < 0)
        fail_msg("links_init: %s", err);
}

/* An empty link table, and nothing seen yet. */
static void links_empty(void)
{
    char path[512];
    links_shutdown();
    snprintf(path, sizeof path, "%s/state/links", dir);
    unlink(path);
    links_start();
    memset(&seen, 0, sizeof seen);
}

/* link_event(ev), then the loop until its callback came; its return value. */
static int event_wait(const struct link_event *ev, char *err, size_t errlen)
{
    seen.returned = 0;
    int rc = link_event(ev, event_cb, (void *)(intptr_t)7, err, errlen);
    seen.returned = 1;
    if (rc == 0)
        run_until(&seen.calls, 5);
    return rc;
}

/* Brings customer up at addr directly in the table (a row's precondition). */
static void table_up(const char *customer, const char *addr)
{
    char err[256];
    int done = 0;
    assert_int_equal(links_set(customer, 1, addr, 0, LINK_SRC_KICKQ, NULL, set_cb, &done,
                               err, sizeof err), 0);
    run_until(&done, 5);
    assert_int_equal(done, 1);
    memset(&seen, 0, sizeof seen);
}

static int setup(void **state)
{
    char t[] = "/tmp/test_link_event.XXXXXX", err[512], path[600];
    FILE *f;
    assert_non_null(mkdtemp(t));
    dir = strdup(t);
    snprintf(path, sizeof path, "%s/kickmail.conf", dir);
    assert_non_null(f = fopen(path, "w"));
    fputs(conf_text, f);
    fclose(f);
    if (!(cfg = config_load(path, err, sizeof err)))
        fail_msg("config_load: %s", err);
    if (!(reg = registry_new(cfg, NULL, err, sizeof err)))
        fail_msg("registry_new: %s", err);
    if (!(sp = spool_open(dir, base, err, sizeof err)))
        fail_msg("spool_open: %s", err);
    link_event_configure(reg);
    links_start();
    memset(&seen, 0, sizeof seen);
    return 0;
}

static int teardown(void **state)
{
    links_shutdown();
    link_event_shutdown();
    link_event_configure(NULL);
    spool_close(sp);
    registry_free(reg);
    config_free(cfg);
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(dir);
    return 0;
}

/* ---- the policy, one row per event ---- */

/* the expected outcome of a row: refused with err, or done */
#define NO(err)                 err, NULL, 0, NULL, 0
#define OK(cust, up, addr, life) NULL, cust, up, addr, life
#define NOLIFE  (-2L)           /* don't look at the expiry */
#define TTL_DEF LINK_EVENT_TTL_DEFAULT

/* RADIUS User-Names of 253 bytes (the most RFC 2865 allows) and 254: filled
 * by main(). */
static char user253[254], user254[255];

static const struct row {
    const char *name;
    const char *pre_up;         /* up at 192.0.2.99 before the event, or NULL */
    enum link_who kind;
    const char *who;
    int up;
    const char *address;
    long ttl;
    enum link_source src;
    const char *session;
    /* expected: err != NULL → link_event() refuses with exactly err (or,
     * when it starts with '~', with an err containing the rest) */
    const char *err;
    const char *customer;       /* else: the callback's customer, */
    int res_up;                 /* its state, */
    const char *res_address;    /* its address, */
    long life;                  /* expires - since (also +1), 0 = none, NOLIFE */
} rows[] = {
    /* by name */
    {"name, default ttl", NULL, LINK_WHO_CUSTOMER, "acme", 1, "192.0.2.7", TTL_DEF,
     LINK_SRC_KICKQ, NULL, OK("acme", 1, "192.0.2.7", 7200)},
    {"name, ttl override", NULL, LINK_WHO_CUSTOMER, "acme", 1, "192.0.2.7", 60,
     LINK_SRC_KICKQ, NULL, OK("acme", 1, "192.0.2.7", 60)},
    {"name, ttl 0 = no expiry", NULL, LINK_WHO_CUSTOMER, "acme", 1, "192.0.2.7", 0,
     LINK_SRC_KICKQ, NULL, OK("acme", 1, "192.0.2.7", 0)},
    {"name, default ttl 12h", NULL, LINK_WHO_CUSTOMER, "gamma", 1, "2001:db8::7", TTL_DEF,
     LINK_SRC_KICKQ, "s1", OK("gamma", 1, "2001:db8::7", 12 * 3600)},
    {"name, address normalised", NULL, LINK_WHO_CUSTOMER, "acme", 1, "::ffff:192.0.2.9",
     TTL_DEF, LINK_SRC_KICKQ, NULL, OK("acme", 1, "192.0.2.9", 7200)},
    {"deliver=link needs an address", NULL, LINK_WHO_CUSTOMER, "acme", 1, "", TTL_DEF,
     LINK_SRC_KICKQ, NULL, NO("acme: an ADDRESS is required (deliver = \"link\")")},
    {"deliver=link needs an address (NULL)", NULL, LINK_WHO_CUSTOMER, "gamma", 1, NULL,
     TTL_DEF, LINK_SRC_RADIUS, NULL,
     NO("gamma: an ADDRESS is required (deliver = \"link\")")},
    {"fixed host: up without an address", NULL, LINK_WHO_CUSTOMER, "beta", 1, NULL, TTL_DEF,
     LINK_SRC_KICKQ, NULL, OK("beta", 1, "", 12 * 3600)},
    {"unknown customer", NULL, LINK_WHO_CUSTOMER, "nosuch", 1, "192.0.2.7", TTL_DEF,
     LINK_SRC_KICKQ, NULL, NO("nosuch: no such customer")},
    {"names are not folded", NULL, LINK_WHO_CUSTOMER, "Acme", 1, "192.0.2.7", TTL_DEF,
     LINK_SRC_KICKQ, NULL, NO("Acme: no such customer")},
    {"empty customer name", NULL, LINK_WHO_CUSTOMER, "", 0, NULL, TTL_DEF,
     LINK_SRC_KICKQ, NULL, NO(": no such customer")},
    {"no customer name", NULL, LINK_WHO_CUSTOMER, NULL, 0, NULL, TTL_DEF,
     LINK_SRC_KICKQ, NULL, NO(": no such customer")},
    {"control bytes quoted as ?", NULL, LINK_WHO_CUSTOMER, "ac\nme\x7f", 0, NULL, TTL_DEF,
     LINK_SRC_KICKQ, NULL, NO("ac?me?: no such customer")},
    {"unknown customer, down", NULL, LINK_WHO_CUSTOMER, "nosuch", 0, NULL, TTL_DEF,
     LINK_SRC_KICKQ, NULL, NO("nosuch: no such customer")},
    /* down */
    {"down", "acme", LINK_WHO_CUSTOMER, "acme", 0, NULL, TTL_DEF, LINK_SRC_KICKQ, NULL,
     OK("acme", 0, "192.0.2.99", NOLIFE)},
    {"down ignores address and ttl", "acme", LINK_WHO_CUSTOMER, "acme", 0, "junk", -5,
     LINK_SRC_NETLINK, NULL, OK("acme", 0, "192.0.2.99", NOLIFE)},
    {"down of a link never up", NULL, LINK_WHO_CUSTOMER, "gamma", 0, NULL, TTL_DEF,
     LINK_SRC_KICKQ, NULL, OK("gamma", 0, "", NOLIFE)},
    {"down by RADIUS user", "acme", LINK_WHO_RADIUS_USER, "acme-ppp", 0, NULL, TTL_DEF,
     LINK_SRC_RADIUS, "s9", OK("acme", 0, "192.0.2.99", NOLIFE)},
    {"down by interface", "gamma", LINK_WHO_INTERFACE, "ppp0", 0, NULL, TTL_DEF,
     LINK_SRC_NETLINK, NULL, OK("gamma", 0, "192.0.2.99", NOLIFE)},
    /* by RADIUS user */
    {"radius_user", NULL, LINK_WHO_RADIUS_USER, "acme-ppp", 1, "192.0.2.8", TTL_DEF,
     LINK_SRC_RADIUS, "acct-1", OK("acme", 1, "192.0.2.8", 7200)},
    {"radius_user beats a customer name", NULL, LINK_WHO_RADIUS_USER, "beta", 1,
     "192.0.2.8", 30, LINK_SRC_RADIUS, NULL, OK("delta", 1, "192.0.2.8", 30)},
    {"no radius_user: known by the name", NULL, LINK_WHO_RADIUS_USER, "zeta", 1,
     "192.0.2.8", TTL_DEF, LINK_SRC_RADIUS, NULL, OK("zeta", 1, "192.0.2.8", 12 * 3600)},
    {"a radius_user hides the name (2)", NULL, LINK_WHO_RADIUS_USER, "delta", 1,
     "192.0.2.8", TTL_DEF, LINK_SRC_RADIUS, NULL, NO("RADIUS user delta: no such customer")},
    {"a radius_user hides the name", NULL, LINK_WHO_RADIUS_USER, "gamma", 1, "192.0.2.8",
     TTL_DEF, LINK_SRC_RADIUS, NULL, NO("RADIUS user gamma: no such customer")},
    /* issue 11: User-Name matches radius_user exactly but without regard to case */
    {"radius_user without regard to case", NULL, LINK_WHO_RADIUS_USER, "ACME-PPP", 1,
     "192.0.2.8", TTL_DEF, LINK_SRC_RADIUS, NULL, OK("acme", 1, "192.0.2.8", 7200)},
    {"the name without regard to case", NULL, LINK_WHO_RADIUS_USER, "Zeta", 1,
     "192.0.2.8", TTL_DEF, LINK_SRC_RADIUS, NULL, OK("zeta", 1, "192.0.2.8", 12 * 3600)},
    {"a radius_user hides the name in any case", NULL, LINK_WHO_RADIUS_USER, "GAMMA", 1,
     "192.0.2.8", TTL_DEF, LINK_SRC_RADIUS, NULL, NO("RADIUS user GAMMA: no such customer")},
    {"unknown RADIUS user", NULL, LINK_WHO_RADIUS_USER, "nobody@isp", 1, "192.0.2.8",
     TTL_DEF, LINK_SRC_RADIUS, NULL, NO("RADIUS user nobody@isp: no such customer")},
    {"RADIUS user of 253 bytes", NULL, LINK_WHO_RADIUS_USER, user253, 1, "192.0.2.8",
     TTL_DEF, LINK_SRC_RADIUS, NULL, NO("~u: no such customer")},
    {"RADIUS user of 254 bytes", NULL, LINK_WHO_RADIUS_USER, user254, 1, "192.0.2.8",
     TTL_DEF, LINK_SRC_RADIUS, NULL, NO("~bad RADIUS user name 'uuu")},
    {"empty RADIUS user", NULL, LINK_WHO_RADIUS_USER, "", 1, "192.0.2.8", TTL_DEF,
     LINK_SRC_RADIUS, NULL, NO("bad RADIUS user name ''")},
    {"RADIUS user with a control byte", NULL, LINK_WHO_RADIUS_USER, "acme\r-ppp", 1,
     "192.0.2.8", TTL_DEF, LINK_SRC_RADIUS, NULL, NO("bad RADIUS user name 'acme?-ppp'")},
    {"RADIUS user: deliver=link needs an address", NULL, LINK_WHO_RADIUS_USER, "acme-ppp",
     1, NULL, TTL_DEF, LINK_SRC_RADIUS, NULL,
     NO("acme: an ADDRESS is required (deliver = \"link\")")},
    /* by interface */
    {"interface", NULL, LINK_WHO_INTERFACE, "ippp3", 1, "192.0.2.10", TTL_DEF,
     LINK_SRC_NETLINK, NULL, OK("acme", 1, "192.0.2.10", 7200)},
    {"interface, ttl override", NULL, LINK_WHO_INTERFACE, "ppp0", 1, "192.0.2.10", 5,
     LINK_SRC_NETLINK, NULL, OK("gamma", 1, "192.0.2.10", 5)},
    {"unknown interface", NULL, LINK_WHO_INTERFACE, "ppp9", 1, "192.0.2.10", TTL_DEF,
     LINK_SRC_NETLINK, NULL, NO("interface ppp9: no such customer")},
    {"interface is not a customer name", NULL, LINK_WHO_INTERFACE, "acme", 1, "192.0.2.10",
     TTL_DEF, LINK_SRC_NETLINK, NULL, NO("interface acme: no such customer")},
    {"interface of 16 bytes", NULL, LINK_WHO_INTERFACE, "ppp0123456789abc", 1,
     "192.0.2.10", TTL_DEF, LINK_SRC_NETLINK, NULL,
     NO("bad interface name 'ppp0123456789abc'")},
    {"interface of 15 bytes", NULL, LINK_WHO_INTERFACE, "ppp0123456789ab", 1,
     "192.0.2.10", TTL_DEF, LINK_SRC_NETLINK, NULL,
     NO("interface ppp0123456789ab: no such customer")},
    {"interface with a slash", NULL, LINK_WHO_INTERFACE, "ppp/0", 1, "192.0.2.10", TTL_DEF,
     LINK_SRC_NETLINK, NULL, NO("bad interface name 'ppp/0'")},
    {"interface with a space", NULL, LINK_WHO_INTERFACE, "ppp 0", 0, NULL, TTL_DEF,
     LINK_SRC_NETLINK, NULL, NO("bad interface name 'ppp 0'")},
    {"empty interface", NULL, LINK_WHO_INTERFACE, "", 0, NULL, TTL_DEF,
     LINK_SRC_NETLINK, NULL, NO("bad interface name ''")},
    /* links_set()'s checks */
    {"bad address", NULL, LINK_WHO_CUSTOMER, "acme", 1, "not-an-address", TTL_DEF,
     LINK_SRC_KICKQ, NULL, NO("~bad address 'not-an-address'")},
    {"broadcast address", NULL, LINK_WHO_CUSTOMER, "beta", 1, "255.255.255.255", TTL_DEF,
     LINK_SRC_KICKQ, NULL, NO("~bad address")},
    {"negative ttl", NULL, LINK_WHO_CUSTOMER, "acme", 1, "192.0.2.7", -5, LINK_SRC_KICKQ,
     NULL, NO("~bad ttl -5")},
    {"no source", NULL, LINK_WHO_CUSTOMER, "acme", 1, "192.0.2.7", TTL_DEF, LINK_SRC_NONE,
     NULL, NO("~bad link source")},
    {"expiry is not a detector", NULL, LINK_WHO_CUSTOMER, "acme", 0, NULL, TTL_DEF,
     LINK_SRC_EXPIRY, NULL, NO("~bad link source")},
    {"bad kind of name", NULL, (enum link_who)9, "acme", 0, NULL, TTL_DEF, LINK_SRC_KICKQ,
     NULL, NO("~bad kind")},
};

static void check_refused(const struct row *r)
{
    const char *who = r->who;
    char err[512] = "";
    int rc = event_wait(&(struct link_event){r->kind, who, r->up, r->address, r->ttl,
                                             r->src, r->session, 0}, err, sizeof err);
    if (rc != -1)
        fail_msg("%s: accepted, expected '%s'", r->name, r->err);
    if (r->err[0] == '~' ? !strstr(err, r->err + 1) : strcmp(err, r->err) != 0)
        fail_msg("%s: err '%s', expected '%s'", r->name, err, r->err);
    /* link_event_check() says the same unless links_set() refused */
    const struct customer *c = link_event_check(&(struct link_event){r->kind, who, r->up,
                                                    r->address, r->ttl, r->src, r->session, 0},
                                                err, sizeof err);
    if (c && r->err[0] != '~')
        fail_msg("%s: link_event_check() accepted it", r->name);
    run_until(&seen.calls, 0.05);
    assert_int_equal(seen.calls, 0);            /* never a callback */
    assert_int_equal(seen.fn_calls, 0);         /* nothing changed */
    if (r->pre_up)
        assert_true(links_get(r->pre_up)->up);
    else
        assert_null(links_next(&(size_t){0}));
}

static void check_done(const struct row *r)
{
    char err[512] = "";
    const struct link *l;
    if (event_wait(&(struct link_event){r->kind, r->who, r->up, r->address, r->ttl,
                                        r->src, r->session, 0}, err, sizeof err) < 0)
        fail_msg("%s: refused: %s", r->name, err);
    if (seen.calls != 1 || seen.early || seen.has_error)
        fail_msg("%s: %d callbacks, %d early, error '%s'", r->name, seen.calls, seen.early,
                 seen.error);
    if (strcmp(seen.customer, r->customer) || seen.up != r->res_up ||
        strcmp(seen.address, r->res_address))
        fail_msg("%s: got %s %s '%s', expected %s %s '%s'", r->name, seen.customer,
                 seen.up ? "up" : "down", seen.address, r->customer,
                 r->res_up ? "up" : "down", r->res_address);
    if (!r->res_up && !r->pre_up) {             /* a down of a link never up */
        assert_null(links_get(r->customer));
        assert_int_equal(seen.fn_calls, 0);
        return;
    }
    assert_non_null(l = links_get(r->customer));
    assert_int_equal(l->up, r->res_up);
    assert_string_equal(l->address, r->res_address);
    if (r->life != NOLIFE && !(r->life == 0 ? l->expires == 0
                               : l->expires - l->since == r->life ||
                                 l->expires - l->since == r->life + 1))
        fail_msg("%s: lives %lld s, expected %ld", r->name,
                 (long long)(l->expires - l->since), r->life);
    assert_int_equal(l->source, r->src);
    assert_string_equal(l->session, r->session ? r->session : "");
    assert_int_equal(seen.fn_calls, 1);
    assert_int_equal(seen.fn_up, r->res_up);
}

static void test_policy_table(void **state)
{
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const struct row *r = &rows[i];
        links_empty();
        if (r->pre_up)
            table_up(r->pre_up, "192.0.2.99");
        if (r->err) {
            check_refused(r);
        } else {
            check_done(r);
        }
    }
}

/* ---- the rest of the contract ---- */

/* A change the table takes elsewhere (another customer takes the address)
 * shows in the result; delivery's callback got the event's own address. */
static void test_result_is_the_durable_state(void **state)
{
    char err[256];
    int done = 0;
    links_empty();
    seen.returned = 0;
    assert_int_equal(link_event(&(struct link_event){LINK_WHO_CUSTOMER, "acme", 1,
                                                     "192.0.2.7", TTL_DEF, LINK_SRC_KICKQ,
                                                     NULL, 0},
                                event_cb, (void *)(intptr_t)7, err, sizeof err), 0);
    seen.returned = 1;
    assert_int_equal(seen.fn_calls, 1);         /* told at once, before the write */
    assert_true(seen.fn_up);
    assert_string_equal(seen.fn_address, "192.0.2.7");
    assert_int_equal(seen.calls, 0);            /* not durable yet */
    /* gamma takes the address before acme's change is written */
    assert_int_equal(links_set("gamma", 1, "192.0.2.7", 0, LINK_SRC_KICKQ, NULL, set_cb,
                               &done, err, sizeof err), 0);
    run_until(&done, 5);
    run_until(&seen.calls, 5);
    assert_int_equal(seen.calls, 1);
    assert_int_equal(seen.early, 0);
    assert_string_equal(seen.customer, "acme");
    assert_false(seen.up);
    assert_string_equal(seen.address, "192.0.2.7");
}

/* own_session: a down of another session leaves the link up (a late
 * ip-down or Stop of an old call); its own session's down takes it down;
 * without a session the event is refused at once. */
static void test_down_of_own_session_only(void **state)
{
    char err[256];
    links_empty();
    struct link_event up = {LINK_WHO_INTERFACE, "ippp3", 1, "192.0.2.7", TTL_DEF,
                            LINK_SRC_KICKQ, "ippp3", 0};
    assert_int_equal(event_wait(&up, err, sizeof err), 0);
    memset(&seen, 0, sizeof seen);
    struct link_event down = {LINK_WHO_RADIUS_USER, "acme-ppp", 0, NULL, TTL_DEF,
                              LINK_SRC_KICKQ, "ppp9", 1};
    assert_int_equal(event_wait(&down, err, sizeof err), 0);
    assert_int_equal(seen.calls, 1);
    assert_null(seen.has_error ? "error" : NULL);
    assert_true(seen.up);
    assert_int_equal(seen.fn_calls, 0);
    assert_true(links_get("acme")->up);
    memset(&seen, 0, sizeof seen);
    down.session = "ippp3";
    assert_int_equal(event_wait(&down, err, sizeof err), 0);
    assert_false(seen.up);
    assert_int_equal(seen.fn_calls, 1);
    assert_false(links_get("acme")->up);
    down.session = NULL;
    assert_int_equal(link_event(&down, event_cb, NULL, err, sizeof err), -1);
    assert_string_equal(err, "a session is required");
}

/* A failed write: the callback says so once, the link is back down. */
static void test_write_failure(void **state)
{
    char err[256], path[512];
    links_empty();
    snprintf(path, sizeof path, "%s/state/links.tmp", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_equal(event_wait(&(struct link_event){LINK_WHO_INTERFACE, "ippp3", 1,
                                                     "192.0.2.7", TTL_DEF, LINK_SRC_NETLINK,
                                                     NULL, 0},
                                err, sizeof err), 0);
    assert_int_equal(rmdir(path), 0);
    assert_int_equal(seen.calls, 1);
    assert_int_equal(seen.early, 0);
    assert_true(seen.has_error);
    assert_true(strncmp(seen.error, "link acme: ", 11) == 0);
    assert_string_equal(seen.customer, "acme");
    assert_false(seen.up);
    assert_false(links_get("acme") && links_get("acme")->up);
    run_until(&(int){0}, 0.05);
    assert_int_equal(seen.calls, 1);
}

static void test_unconfigured(void **state)
{
    char err[256] = "";
    struct link_event ev = {LINK_WHO_CUSTOMER, "acme", 1, "192.0.2.7", TTL_DEF,
                            LINK_SRC_KICKQ, NULL, 0};
    links_empty();
    link_event_configure(NULL);
    assert_int_equal(event_wait(&ev, err, sizeof err), -1);
    assert_string_equal(err, "link events are not configured");
    assert_null(link_event_check(&ev, err, sizeof err));
    link_event_configure(reg);
    assert_non_null(link_event_check(&ev, err, sizeof err));
    assert_int_equal(seen.calls, 0);
    assert_null(links_get("acme"));
}

/* Shut down with an event in flight: no callback ever, nothing leaks. */
static void test_shutdown_in_flight(void **state)
{
    char err[256];
    links_empty();
    assert_int_equal(link_event(&(struct link_event){LINK_WHO_CUSTOMER, "acme", 1,
                                                     "192.0.2.7", TTL_DEF, LINK_SRC_KICKQ,
                                                     NULL, 0},
                                event_cb, (void *)(intptr_t)7, err, sizeof err), 0);
    links_shutdown();
    link_event_shutdown();
    run_until(&(int){0}, 0.2);                  /* the write completes: nobody told */
    assert_int_equal(seen.calls, 0);
    links_start();
    assert_true(links_get("acme")->up);         /* it was written all the same */
}

/* ---- the RADIUS listener: the link change comes first ---- */

static void put_attr(unsigned char *b, size_t *n, uint8_t type, const void *v, size_t len)
{
    b[*n] = type;
    b[*n + 1] = (uint8_t)(len + 2);
    memcpy(b + *n + 2, v, len);
    *n += len + 2;
}

/* A Start is acted on (the link goes up and delivery is told) before the
 * Accounting-Response authenticator is computed: only the Request
 * Authenticator's MD5 lies between the datagram and delivery's connect().
 * The answer still comes, right, once the change is durable. */
static void test_radius_change_before_response(void **state)
{
    static const char secret[] = "sekrit";
    static const unsigned char ip[4] = { 192, 0, 2, 44 }, start[4] = { 0, 0, 0, RADIUS_START };
    static const unsigned char zero[RADIUS_AUTH_LEN];
    char path[600], err[512];
    struct sockaddr_in sin = { .sin_family = AF_INET };
    socklen_t sl = sizeof sin;
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    assert_true(fd >= 0);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);     /* a free port */
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
    int port = ntohs(sin.sin_port);
    close(fd);
    snprintf(path, sizeof path, "%s/radius.conf", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "radius {\n  listen = {\"127.0.0.1:%d\"}\n"
            "  client \"127.0.0.1\" { secret = '%s' }\n}\n", port, secret);
    fclose(f);
    struct config *rc = config_load(path, err, sizeof err);
    if (!rc)
        fail_msg("config_load: %s", err);
    if (radius_bind(base, rc, err, sizeof err) < 0)
        fail_msg("radius_bind: %s", err);
    radius_configure(rc);

    unsigned char req[256], rep[64];
    size_t n = RADIUS_HDR_LEN;
    memset(req, 0, sizeof req);
    req[0] = RADIUS_CODE_ACCT_REQUEST;
    req[1] = 77;
    put_attr(req, &n, RADIUS_A_STATUS, start, 4);
    put_attr(req, &n, RADIUS_A_USER_NAME, "acme-ppp", 8);
    put_attr(req, &n, RADIUS_A_SESSION_ID, "s1", 2);
    put_attr(req, &n, RADIUS_A_NAS_ID, "nas1", 4);
    put_attr(req, &n, RADIUS_A_FRAMED_IP, ip, 4);
    req[3] = (uint8_t)n;
    struct digest_part rq[] = {
        { req, 4 }, { zero, sizeof zero }, { req + RADIUS_HDR_LEN, n - RADIUS_HDR_LEN },
        { secret, strlen(secret) },
    };
    md5_real(rq, 4, req + 4);

    fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    md5_calls = 0;
    md5_at_up = -1;
    assert_int_equal(send(fd, req, n, 0), (ssize_t)n);
    ssize_t got = -1;
    double end = util_now_mono() + 5;
    while (got < 0 && util_now_mono() < end) {
        event_base_loop(base, EVLOOP_NONBLOCK);
        struct pollfd pfd = { fd, POLLIN, 0 };
        if (poll(&pfd, 1, 5) == 1)
            got = recv(fd, rep, sizeof rep, 0);
    }
    close(fd);
    assert_int_equal(got, RADIUS_HDR_LEN);
    assert_int_equal(seen.fn_calls, 1);
    assert_int_equal(seen.fn_up, 1);
    assert_string_equal(seen.fn_address, "192.0.2.44");
    assert_int_equal(md5_at_up, 1);     /* the Request Authenticator only */
    assert_int_equal(md5_calls, 2);     /* then the Response Authenticator */

    unsigned char want[DIGEST_MD5_LEN];
    struct digest_part rp[] = { { rep, 4 }, { req + 4, RADIUS_AUTH_LEN }, { secret, strlen(secret) } };
    md5_real(rp, 3, want);
    assert_int_equal(rep[0], RADIUS_CODE_ACCT_RESPONSE);
    assert_int_equal(rep[1], 77);
    assert_memory_equal(rep + 4, want, DIGEST_MD5_LEN);

    radius_stop();
    radius_shutdown();
    config_free(rc);
}

/* ---- peer_link ---- */

/* peer_link_up(), then the loop until its callback came (when 1). */
static int peer_up_wait(const struct peer_link *pl, const struct link **other)
{
    char err[256];
    memset(&seen, 0, sizeof seen);
    seen.returned = 0;
    int rc = peer_link_up(pl, other, event_cb, (void *)(intptr_t)7, err, sizeof err);
    seen.returned = 1;
    if (rc == 1)
        run_until(&seen.calls, 5);
    return rc;
}

static int peer_down_wait(const struct peer_link *pl)
{
    char err[256];
    memset(&seen, 0, sizeof seen);
    int rc = peer_link_down(pl, event_cb, (void *)(intptr_t)7, err, sizeof err);
    seen.returned = 1;
    if (rc == 0)
        run_until(&seen.calls, 5);
    return rc;
}

static void test_peer_link(void **state)
{
    char err[256] = "";
    const struct link *other = (const struct link *)1;
    struct peer_link at_a = { "acme", "192.0.2.7", "submission:[192.0.2.7]",
                              LINK_SRC_AUTOTURN, TTL_DEF, 0 };
    struct peer_link at_b = { "acme", "192.0.2.8", "pop3:[192.0.2.8]",
                              LINK_SRC_AUTOTURN, TTL_DEF, 0 };
    struct peer_link odmr_a = { "acme", "192.0.2.7", "odmr/192.0.2.7:1000",
                                LINK_SRC_ODMR, 3600, 1 };
    struct peer_link odmr_b = { "acme", "192.0.2.8", "odmr/192.0.2.8:2000",
                                LINK_SRC_ODMR, 3600, 1 };

    /* another source's link: left alone, whatever keep_own */
    links_empty();
    table_up("acme", "192.0.2.9");
    assert_int_equal(peer_up_wait(&at_a, &other), 0);
    assert_non_null(other);
    assert_int_equal(other->source, LINK_SRC_KICKQ);
    assert_string_equal(other->address, "192.0.2.9");
    assert_ptr_equal(peer_link_other(&odmr_a), links_get("acme"));
    assert_int_equal(peer_up_wait(&odmr_a, NULL), 0);
    run_until(&(int){0}, 0.02);
    assert_int_equal(seen.calls + seen.fn_calls, 0);
    assert_string_equal(links_get("acme")->address, "192.0.2.9");

    /* nothing up: raised, the callback once, after the call */
    links_empty();
    assert_null(peer_link_other(&at_a));
    assert_int_equal(peer_up_wait(&at_a, &other), 1);
    assert_null(other);
    assert_int_equal(seen.calls, 1);
    assert_int_equal(seen.early, 0);
    assert_true(seen.up);
    assert_int_equal(links_get("acme")->source, LINK_SRC_AUTOTURN);
    assert_string_equal(links_get("acme")->session, "submission:[192.0.2.7]");
    /* its own source without keep_own: moved to the other session's peer */
    assert_int_equal(peer_up_wait(&at_b, &other), 1);
    assert_string_equal(links_get("acme")->address, "192.0.2.8");
    /* down: only the session it is now */
    assert_int_equal(peer_down_wait(&at_a), 0);
    assert_true(links_get("acme")->up);
    assert_int_equal(peer_down_wait(&at_b), 0);
    assert_false(links_get("acme")->up);

    /* keep_own: another session of the same source is left alone */
    links_empty();
    assert_int_equal(peer_up_wait(&odmr_a, NULL), 1);
    assert_in_range(links_get("acme")->expires - links_get("acme")->since, 3599, 3601);
    assert_int_equal(peer_up_wait(&odmr_b, &other), 0);
    assert_string_equal(other->session, "odmr/192.0.2.7:1000");
    assert_int_equal(peer_down_wait(&odmr_b), 0);
    assert_true(links_get("acme")->up);
    assert_int_equal(peer_down_wait(&odmr_a), 0);
    assert_false(links_get("acme")->up);

    /* refused as link_event() refuses: -1, err, no callback */
    struct peer_link nobody = { "nosuch", "192.0.2.7", "odmr/x", LINK_SRC_ODMR, 3600, 1 };
    memset(&seen, 0, sizeof seen);
    assert_int_equal(peer_link_up(&nobody, NULL, event_cb, NULL, err, sizeof err), -1);
    assert_true(err[0] != '\0');
    run_until(&(int){0}, 0.02);
    assert_int_equal(seen.calls, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_policy_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_result_is_the_durable_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_down_of_own_session_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unconfigured, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shutdown_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_radius_change_before_response, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peer_link, setup, teardown),
    };
    int rc;
    memset(user253, 'u', sizeof user253 - 1);
    memset(user254, 'u', sizeof user254 - 1);
    log_init("test_link_event", getenv("TEST_VERBOSE") != NULL);
    unsetenv("KICKMAIL_TEST_FAIL_WRITES");
    evthread_use_pthreads();
    base = event_base_new();
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    event_base_free(base);
    return rc;
}

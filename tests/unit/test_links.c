/*
 * test_links — unit tests of the link table (links.h) on a real event loop
 * and a real spool in a mkdtemp directory: up, refresh, down; the order of
 * change and completion callbacks and was_up; an address taken from another
 * customer; TTL expiry by the timer (about 1-2 s of real time) and at load;
 * links up without an address (fixed-host customers); persistence through
 * links_shutdown()/links_init(); the file's escaping and
 * its bad lines; argument validation; undo after a failed write (made to fail
 * by directories where the temporary state file and the journal should be);
 * links_prune(); links_shutdown() with a write in flight; a change is heard
 * before its write is handed to the spool.  The journal's own tests are in
 * test_links_file.c.
 */
#include "links_fixture.h"

/* ---- tests ---- */
static void test_up_refresh_down(void **state)
{
    const struct link *l;
    int64_t t0 = now_s(), since;

    assert_null(links_get("acme"));
    assert_int_equal(set_wait("acme", 1, "192.0.2.7", 0, LINK_SRC_KICKQ, "s1"), 0);
    assert_int_equal(nfn, 1);
    assert_string_equal(evs[0].text, "fn acme up 0");
    assert_string_equal(evs[1].text, "cb acme 0");
    assert_non_null(l = links_get("acme"));
    assert_true(l->up);
    assert_string_equal(l->customer, "acme");
    assert_string_equal(l->address, "192.0.2.7");
    assert_true(l->since >= t0 && l->since <= now_s());
    assert_int_equal(l->expires, 0);
    assert_int_equal(l->source, LINK_SRC_KICKQ);
    assert_string_equal(l->session, "s1");
    since = l->since;

    /* Refresh: same address, a TTL now; since stays. */
    assert_int_equal(set_wait("acme", 1, "192.0.2.7", 3600, LINK_SRC_RADIUS, "s2"), 0);
    assert_string_equal(evs[2].text, "fn acme up 1");
    l = links_get("acme");
    assert_int_equal(l->since, since);
    assert_true(l->expires >= t0 + 3600 && l->expires <= now_s() + 3601);
    assert_int_equal(l->source, LINK_SRC_RADIUS);
    assert_int_equal(evs[2].l.expires, l->expires);

    /* Down keeps the address for display, drops the expiry. */
    assert_int_equal(set_wait("acme", 0, NULL, 0, LINK_SRC_NETLINK, NULL), 0);
    assert_string_equal(evs[4].text, "fn acme down 1");
    l = links_get("acme");
    assert_false(l->up);
    assert_string_equal(l->address, "192.0.2.7");
    assert_int_equal(l->expires, 0);
    assert_int_equal(l->source, LINK_SRC_NETLINK);
    assert_string_equal(l->session, "");

    /* Down again, and down for a customer never seen: no change, no fn. */
    assert_int_equal(set_wait("acme", 0, NULL, 0, LINK_SRC_KICKQ, NULL), 0);
    assert_int_equal(set_wait("beta", 0, NULL, 0, LINK_SRC_KICKQ, NULL), 0);
    assert_int_equal(nfn, 3);
    assert_null(links_get("beta"));
}

static void test_addresses_normalised(void **state)
{
    assert_int_equal(set_wait("six", 1, "2001:DB8:0:0::1", 0, LINK_SRC_KICKQ, ""), 0);
    assert_string_equal(links_get("six")->address, "2001:db8::1");
    assert_int_equal(set_wait("mapped", 1, "::ffff:192.0.2.9", 0, LINK_SRC_KICKQ, ""), 0);
    assert_string_equal(links_get("mapped")->address, "192.0.2.9");
    assert_int_equal(set_wait("loop", 1, "127.0.0.23", 0, LINK_SRC_KICKQ, ""), 0);
    assert_string_equal(links_get("loop")->address, "127.0.0.23");
}

/* Up without an address (customers with a fixed host): no address to
 * take from anyone, and a known address is replaced by none. */
static void test_up_without_address(void **state)
{
    assert_int_equal(set_wait("fixed1", 1, NULL, 0, LINK_SRC_KICKQ, NULL), 0);
    assert_int_equal(set_wait("fixed2", 1, "", 60, LINK_SRC_KICKQ, NULL), 0);
    assert_int_equal(set_wait("acme", 1, "192.0.2.7", 0, LINK_SRC_KICKQ, NULL), 0);
    assert_int_equal(set_wait("acme", 1, NULL, 0, LINK_SRC_KICKQ, NULL), 0);
    assert_int_equal(set_wait("beta", 1, "192.0.2.7", 0, LINK_SRC_KICKQ, NULL), 0);
    assert_true(links_get("fixed1")->up);
    assert_true(links_get("fixed2")->up);
    assert_true(links_get("acme")->up);     /* 192.0.2.7 was no longer acme's */
    assert_string_equal(links_get("acme")->address, "");
    assert_string_equal(links_get("fixed1")->address, "");
    assert_int_equal(nfn, 5);
    links_restart();
    assert_true(links_get("fixed1")->up);
    assert_true(links_get("fixed2")->up);
    assert_true(links_get("fixed2")->expires > 0);
    assert_string_equal(links_get("fixed2")->address, "");
}

static void test_iteration_and_names(void **state)
{
    const char *names[] = {"zeta", "acme", "mid-1", "b_2"};
    const char *want[] = {"acme", "b_2", "mid-1", "zeta"};
    const struct link *l;
    size_t pos = 0, n = 0;
    char addr[32];
    for (size_t i = 0; i < 4; i++) {
        snprintf(addr, sizeof addr, "192.0.2.%zu", i + 1);
        assert_int_equal(set_wait(names[i], 1, addr, 0, LINK_SRC_KICKQ, NULL), 0);
    }
    while ((l = links_next(&pos)) != NULL)
        assert_string_equal(l->customer, want[n++]);
    assert_int_equal(n, 4);
    assert_null(links_next(&pos));

    assert_string_equal(links_source_name(LINK_SRC_NONE), "");
    assert_string_equal(links_source_name(LINK_SRC_KICKQ), "kickq");
    assert_string_equal(links_source_name(LINK_SRC_RADIUS), "radius");
    assert_string_equal(links_source_name(LINK_SRC_NETLINK), "netlink");
    assert_string_equal(links_source_name(LINK_SRC_ODMR), "odmr");
    assert_string_equal(links_source_name(LINK_SRC_AUTOTURN), "autoturn");
    assert_string_equal(links_source_name(LINK_SRC_EXPIRY), "expiry");
}

static struct waiter inner = {"inner", 0, 0};

/* A completion callback that changes the table again (re-entrancy). */
static void set_again_cb(int err, void *arg)
{
    char e[128];
    set_cb(err, arg);
    assert_int_equal(links_set("delta", 1, "192.0.2.40", 0, LINK_SRC_ODMR, NULL,
                               set_cb, &inner, e, sizeof e), 0);
}

static void test_callback_order(void **state)
{
    struct waiter w1 = {"1", 0, 0}, w2 = {"2", 0, 0}, w3 = {"3", 0, 0};
    char err[128];
    static const char *want[] = {
        "fn acme up 0", "fn acme down 1", "fn beta up 0",
        "cb 1 0", "cb 2 0", "cb 3 0",
        "fn delta up 0", "cb inner 0",
    };
    /* Three calls before the loop runs: each takes effect at once, in call
     * order; the first is written alone, the other two together once it is
     * written, and each cb runs once its change is on disk. */
    assert_int_equal(links_set("acme", 1, "192.0.2.7", 0, LINK_SRC_KICKQ, NULL,
                               set_cb, &w1, err, sizeof err), 0);
    assert_int_equal(links_set("acme", 0, NULL, 0, LINK_SRC_KICKQ, NULL,
                               set_cb, &w2, err, sizeof err), 0);
    assert_int_equal(links_set("beta", 1, "192.0.2.8", 0, LINK_SRC_AUTOTURN, "x",
                               set_again_cb, &w3, err, sizeof err), 0);
    assert_int_equal(nev, 3);       /* all three took effect at once */
    run_until(&inner.done, 5);
    assert_int_equal(nev, 8);
    for (size_t i = 0; i < 8; i++)
        assert_string_equal(evs[i].text, want[i]);
    /* The snapshots tell each change as it was made. */
    assert_true(evs[0].l.up);
    assert_false(evs[1].l.up);
    assert_int_equal(evs[2].l.source, LINK_SRC_AUTOTURN);
    assert_string_equal(evs[2].l.session, "x");
    assert_true(links_get("delta")->up);
    inner.done = 0;
}

static void test_address_taken(void **state)
{
    const struct link *l;
    assert_int_equal(set_wait("acme", 1, "192.0.2.7", 3600, LINK_SRC_KICKQ, "k1"), 0);
    nev = nfn = 0;
    assert_int_equal(set_wait("beta", 1, "192.0.2.7", 0, LINK_SRC_RADIUS, "r9"), 0);
    assert_int_equal(nfn, 2);
    assert_string_equal(evs[0].text, "fn acme down 1");
    assert_string_equal(evs[1].text, "fn beta up 0");
    assert_string_equal(evs[2].text, "cb beta 0");
    l = links_get("acme");
    assert_false(l->up);
    assert_string_equal(l->address, "192.0.2.7");       /* kept for display */
    assert_int_equal(l->source, LINK_SRC_RADIUS);       /* the event that did it */
    assert_string_equal(l->session, "r9");
    assert_int_equal(l->expires, 0);
    assert_true(links_get("beta")->up);

    /* Another address: beta keeps its own. */
    assert_int_equal(set_wait("acme", 1, "192.0.2.8", 0, LINK_SRC_KICKQ, NULL), 0);
    assert_true(links_get("beta")->up);
    /* The same address written as IPv4-mapped IPv6 is the same address. */
    assert_int_equal(set_wait("acme", 1, "::ffff:192.0.2.7", 0, LINK_SRC_KICKQ, NULL), 0);
    assert_false(links_get("beta")->up);
    assert_true(links_get("acme")->up);
    assert_string_equal(links_get("acme")->address, "192.0.2.7");
    /* Moving acme frees 192.0.2.7 (nobody holds it): beta may take it back
     * without touching acme, which is elsewhere now. */
    assert_int_equal(set_wait("acme", 1, "192.0.2.9", 0, LINK_SRC_KICKQ, NULL), 0);
    nfn = 0;
    assert_int_equal(set_wait("beta", 1, "192.0.2.7", 0, LINK_SRC_KICKQ, NULL), 0);
    assert_int_equal(nfn, 1);
    assert_true(links_get("acme")->up);
}

static int expired_seen;

static void expiry_fn(const struct link *l, int was_up, void *arg)
{
    change_fn(l, was_up, arg);
    if (!l->up && l->source == LINK_SRC_EXPIRY)
        expired_seen = 1;
}

/* ttl 1 s: the timer brings the link down (1-2 s of real time), a refreshed
 * link stays, and the down is persisted like any change. */
static void test_ttl_expiry(void **state)
{
    char err[256];
    const struct link *l;
    int64_t expires;
    double t0 = util_now_mono();

    links_shutdown();
    assert_int_equal(links_init(base, sp, expiry_fn, (void *)(intptr_t)42, err,
                                sizeof err), 0);
    expired_seen = 0;
    assert_int_equal(set_wait("acme", 1, "192.0.2.7", 1, LINK_SRC_RADIUS, "r1"), 0);
    assert_int_equal(set_wait("gamma", 1, "192.0.2.8", 1, LINK_SRC_KICKQ, NULL), 0);
    assert_int_equal(set_wait("gamma", 1, "192.0.2.8", 3600, LINK_SRC_KICKQ, NULL), 0);
    assert_int_equal(set_wait("beta", 1, "192.0.2.9", 0, LINK_SRC_KICKQ, NULL), 0);
    expires = links_get("acme")->expires;
    assert_true(links_get("acme")->up);
    nev = nfn = 0;

    run_until(&expired_seen, 3);
    assert_true(expired_seen);
    assert_true(util_now_mono() - t0 >= 0.99);
    assert_int_equal(nfn, 1);
    assert_string_equal(evs[0].text, "fn acme down 1");
    l = links_get("acme");
    assert_false(l->up);
    assert_int_equal(l->since, expires);
    assert_int_equal(l->source, LINK_SRC_EXPIRY);
    assert_string_equal(l->session, "");
    assert_string_equal(l->address, "192.0.2.7");
    assert_true(links_get("gamma")->up);
    assert_true(links_get("beta")->up);

    /* Wait for the write of the expiry to complete (the change fn runs after
     * it), then reload: acme comes back down with the same fields. */
    links_restart();
    l = links_get("acme");
    assert_false(l->up);
    assert_int_equal(l->since, expires);
    assert_int_equal(l->source, LINK_SRC_EXPIRY);
    assert_true(links_get("gamma")->up);
}

static void test_persistence(void **state)
{
    static const char *names[] = {"acme", "beta", "gamma", "delta"};
    struct link before[4];
    char sess[4][64];
    const struct link *l;

    assert_int_equal(set_wait("acme", 1, "192.0.2.7", 3600, LINK_SRC_RADIUS,
                              "a\tb\\c\nd\x7f\xc3\xa9"), 0);
    assert_int_equal(set_wait("beta", 1, "2001:db8::1", 0, LINK_SRC_NETLINK, "ippp3"), 0);
    assert_int_equal(set_wait("gamma", 1, "192.0.2.8", 60, LINK_SRC_ODMR, NULL), 0);
    assert_int_equal(set_wait("gamma", 0, NULL, 0, LINK_SRC_KICKQ, "bye"), 0);
    assert_int_equal(set_wait("delta", 1, "192.0.2.9", 0, LINK_SRC_AUTOTURN, NULL), 0);
    for (size_t i = 0; i < 4; i++) {
        before[i] = *links_get(names[i]);
        snprintf(sess[i], sizeof sess[i], "%s", before[i].session);
    }
    nev = nfn = 0;
    links_restart();
    assert_int_equal(nfn, 0);       /* nothing told at start */
    for (size_t i = 0; i < 4; i++) {
        assert_non_null(l = links_get(names[i]));
        assert_string_equal(l->customer, names[i]);
        assert_int_equal(l->up, before[i].up);
        assert_string_equal(l->address, before[i].address);
        assert_int_equal(l->since, before[i].since);
        assert_int_equal(l->expires, before[i].expires);
        assert_int_equal(l->source, before[i].source);
        assert_string_equal(l->session, sess[i]);
    }
    assert_string_equal(links_get("acme")->session, "a\tb\\c\nd\x7f\xc3\xa9");
    /* The address index came back too. */
    assert_int_equal(set_wait("omega", 1, "2001:db8::1", 0, LINK_SRC_KICKQ, NULL), 0);
    assert_false(links_get("beta")->up);
}

static void test_load_checks(void **state)
{
    char text[2048];
    int64_t now = now_s();
    const struct link *l;

    links_shutdown();
    snprintf(text, sizeof text,
             "# kickmail links 1\n"
             "old\t1\t192.0.2.1\t1000\t2000\tradius\tx\n"
             "live\t1\t192.0.2.2\t%lld\t%lld\tkickq\t\n"
             "BadName\t0\t\t1\t0\tkickq\t\n"
             "nofields\n"
             "badaddr\t1\t999.1.1.1\t1\t0\tkickq\t\n"
             "noaddr\t1\t\t1\t0\tkickq\t\n"
             "badsrc\t0\t\t1\t0\tnope\t\n"
             "badtime\t0\t\t-5\t0\tkickq\t\n"
             "toomany\t0\t\t1\t0\tkickq\t\textra\n"
             "dup\t0\t\t1\t0\tkickq\tfirst\n"
             "dup\t0\t\t2\t0\tkickq\tsecond\n"
             "esc\t0\t\t5\t0\tkickq\t\\x09\\x5c\n"
             "badesc\t0\t\t5\t0\tkickq\t\\q\n"
             "rawtab\t0\t\t5\t0\tkickq\ta\tb\n"
             "\n"
             "twin1\t1\t192.0.2.50\t10\t0\tkickq\t\n"
             "twin2\t1\t192.0.2.50\t11\t0\todmr\t\n"
             "tail\t0\t\t7\t0\t\t",
             (long long)now, (long long)now + 3600);
    write_state(text);
    links_start();
    assert_int_equal(nfn, 0);

    l = links_get("old");                   /* expired while stopped */
    assert_false(l->up);
    assert_int_equal(l->since, 2000);
    assert_int_equal(l->expires, 0);
    assert_int_equal(l->source, LINK_SRC_EXPIRY);
    assert_string_equal(l->session, "");
    assert_string_equal(l->address, "192.0.2.1");
    l = links_get("live");
    assert_true(l->up);
    assert_int_equal(l->expires, now + 3600);
    for (const char **n = (const char *[]){"BadName", "badname", "nofields", "badaddr",
                                           "badsrc", "badtime", "toomany", "badesc",
                                           "rawtab", NULL}; *n; n++)
        assert_null(links_get(*n));
    assert_true(links_get("noaddr")->up);   /* a fixed-host customer's link */
    assert_string_equal(links_get("noaddr")->address, "");
    assert_string_equal(links_get("dup")->session, "first");
    assert_string_equal(links_get("esc")->session, "\t\\");
    assert_false(links_get("twin1")->up);   /* one address, two customers: neither */
    assert_false(links_get("twin2")->up);
    l = links_get("tail");                  /* last line without LF */
    assert_non_null(l);
    assert_int_equal(l->source, LINK_SRC_NONE);
    assert_int_equal(l->since, 7);
}

static int only_acme(const char *c)
{
    return strcmp(c, "acme") == 0;
}

static void test_validation(void **state)
{
    struct waiter w = {"never", 0, 0};
    char err[256];
#define REFUSED(c, up, a, ttl, src)                                                 \
    do {                                                                            \
        err[0] = 0;                                                                 \
        assert_int_equal(links_set(c, up, a, ttl, src, NULL, set_cb, &w, err,       \
                                   sizeof err), -1);                                \
        assert_true(err[0] != 0);                                                   \
    } while (0)

    REFUSED("", 1, "192.0.2.7", 0, LINK_SRC_KICKQ);
    REFUSED(NULL, 0, NULL, 0, LINK_SRC_KICKQ);
    REFUSED("Acme", 1, "192.0.2.7", 0, LINK_SRC_KICKQ);
    REFUSED("ac me", 0, NULL, 0, LINK_SRC_KICKQ);
    REFUSED("acme\tx", 0, NULL, 0, LINK_SRC_KICKQ);
    REFUSED("acme", 1, "mail.acme.example", 0, LINK_SRC_KICKQ);
    REFUSED("acme", 1, "192.0.2.300", 0, LINK_SRC_KICKQ);
    REFUSED("acme", 1, "192.0.2.7 ", 0, LINK_SRC_KICKQ);
    REFUSED("acme", 1, "192.0.2.7:25", 0, LINK_SRC_KICKQ);
    REFUSED("acme", 1, "[2001:db8::1]", 0, LINK_SRC_KICKQ);
    REFUSED("acme", 1, "0.0.0.0", 0, LINK_SRC_KICKQ);
    REFUSED("acme", 1, "::", 0, LINK_SRC_KICKQ);
    REFUSED("acme", 1, "224.0.0.1", 0, LINK_SRC_KICKQ);
    REFUSED("acme", 1, "ff02::1", 0, LINK_SRC_KICKQ);
    REFUSED("acme", 1, "255.255.255.255", 0, LINK_SRC_KICKQ);
    REFUSED("acme", 1, "192.0.2.7", -1, LINK_SRC_KICKQ);
    REFUSED("acme", 1, "192.0.2.7", 0, LINK_SRC_NONE);
    REFUSED("acme", 1, "192.0.2.7", 0, LINK_SRC_EXPIRY);
    REFUSED("acme", 1, "192.0.2.7", 0, (enum link_source)99);
    assert_non_null(strstr(err, "source"));

    links_restrict(only_acme);
    REFUSED("ghost", 0, NULL, 0, LINK_SRC_KICKQ);
    assert_non_null(strstr(err, "unknown customer"));
    assert_int_equal(set_wait("acme", 1, "192.0.2.7", 0, LINK_SRC_KICKQ, NULL), 0);
    links_restrict(NULL);

    links_shutdown();                       /* not started: refused too */
    REFUSED("acme", 0, NULL, 0, LINK_SRC_KICKQ);
    assert_null(links_get("acme"));
    links_start();
    run_for(0.05);
    assert_int_equal(w.done, 0);            /* a refused call never calls back */
    assert_null(links_get("ghost"));
#undef REFUSED
}

static void test_write_failure(void **state)
{
    const struct link *l;
    int64_t since;
    assert_int_equal(set_wait("acme", 1, "192.0.2.7", 3600, LINK_SRC_KICKQ, "k"), 0);
    since = links_get("acme")->since;
    nev = nfn = 0;

    state_fail(1);
    /* beta taking acme's address: both changes took effect at once, then
     * were undone when the write failed, and fn was told both ways. */
    assert_int_equal(set_wait("beta", 1, "192.0.2.7", 0, LINK_SRC_RADIUS, NULL), EISDIR);
    assert_int_equal(nfn, 4);
    assert_null(links_get("beta"));
    l = links_get("acme");
    assert_true(l->up);
    assert_int_equal(l->since, since);
    assert_int_equal(l->source, LINK_SRC_KICKQ);
    assert_string_equal(l->session, "k");
    /* A down undone: still up, still owning its address. */
    nfn = 0;
    assert_int_equal(set_wait("acme", 0, NULL, 0, LINK_SRC_KICKQ, NULL), EISDIR);
    assert_int_equal(nfn, 2);
    assert_true(links_get("acme")->up);
    state_fail(0);

    nfn = 0;
    assert_int_equal(set_wait("beta", 1, "192.0.2.7", 0, LINK_SRC_RADIUS, NULL), 0);
    assert_int_equal(nfn, 2);
    assert_false(links_get("acme")->up);
    links_restart();
    assert_false(links_get("acme")->up);
    assert_true(links_get("beta")->up);
}

/* A change that comes while the table is being written takes effect at
 * once (fn is told before that write ends); its callback comes after the
 * next write, which has it, and a restart keeps it. */
static void test_change_during_a_write(void **state)
{
    struct waiter w1 = {"acme", 0, 0}, w2 = {"beta", 0, 0};
    char err[256];
    nev = nfn = 0;
    assert_int_equal(links_set("acme", 1, "192.0.2.7", 0, LINK_SRC_KICKQ, NULL, set_cb,
                               &w1, err, sizeof err), 0);
    assert_int_equal(nfn, 1);               /* acme up told, its write under way */
    assert_int_equal(w1.done, 0);
    assert_int_equal(links_set("beta", 1, "192.0.2.8", 0, LINK_SRC_KICKQ, NULL, set_cb,
                               &w2, err, sizeof err), 0);
    assert_int_equal(nfn, 2);               /* beta up told at once, too */
    assert_true(links_get("beta")->up);
    assert_int_equal(w1.done + w2.done, 0);
    run_until(&w2.done, 5);
    assert_int_equal(w1.done, 1);
    assert_int_equal(w2.done, 1);
    assert_int_equal(w1.err, 0);
    assert_int_equal(w2.err, 0);
    assert_string_equal(evs[nev - 2].text, "cb acme 0");    /* in order */
    assert_string_equal(evs[nev - 1].text, "cb beta 0");
    links_restart();
    assert_true(links_get("acme")->up);
    assert_true(links_get("beta")->up);
}

/* The write fails: the change applied while it ran goes back too, last
 * first, and both callbacks get the error. */
static void test_change_during_a_failed_write(void **state)
{
    struct waiter w1 = {"acme", 0, 0}, w2 = {"acme", 0, 0};
    char err[256];
    assert_int_equal(set_wait("acme", 1, "192.0.2.7", 0, LINK_SRC_KICKQ, "k"), 0);
    nev = nfn = 0;
    state_fail(1);
    assert_int_equal(links_set("acme", 0, NULL, 0, LINK_SRC_KICKQ, NULL, set_cb,
                               &w1, err, sizeof err), 0);
    assert_int_equal(links_set("acme", 1, "192.0.2.9", 0, LINK_SRC_RADIUS, NULL, set_cb,
                               &w2, err, sizeof err), 0);
    assert_int_equal(nfn, 2);               /* down, then up at .9: both told */
    assert_string_equal(links_get("acme")->address, "192.0.2.9");
    run_until(&w2.done, 5);
    state_fail(0);
    assert_int_equal(w1.err, EISDIR);
    assert_int_equal(w2.err, EISDIR);
    assert_int_equal(nfn, 4);               /* and both undone: */
    assert_string_equal(evs[2].text, "fn acme down 1");    /* .9 undone: down */
    assert_string_equal(evs[3].text, "fn acme up 0");      /* down undone: up */
    const struct link *l = links_get("acme");
    assert_true(l->up);
    assert_string_equal(l->address, "192.0.2.7");
    assert_string_equal(l->session, "k");
}

/* An expiry holds even when it cannot be written: the file keeps the past
 * expiry, which brings the link down at the next start all the same. */
static void test_expiry_write_failure(void **state)
{
    char text[256], err[256];
    int64_t exp = now_s() + 1;
    const struct link *l;

    links_shutdown();
    snprintf(text, sizeof text, "soon\t1\t192.0.2.7\t1\t%lld\tradius\ts\n", (long long)exp);
    write_state(text);
    assert_int_equal(links_init(base, sp, expiry_fn, (void *)(intptr_t)42, err,
                                sizeof err), 0);
    assert_true(links_get("soon")->up);
    expired_seen = 0;
    state_fail(1);
    run_until(&expired_seen, 3);
    assert_true(expired_seen);
    assert_false(links_get("soon")->up);
    state_fail(0);

    links_restart();
    l = links_get("soon");
    assert_false(l->up);
    assert_int_equal(l->since, exp);
    assert_int_equal(l->source, LINK_SRC_EXPIRY);
}

static int not_beta(const char *c)
{
    return strcmp(c, "beta") != 0;
}

static void test_prune(void **state)
{
    assert_int_equal(set_wait("acme", 1, "192.0.2.7", 0, LINK_SRC_KICKQ, NULL), 0);
    assert_int_equal(set_wait("beta", 1, "192.0.2.8", 60, LINK_SRC_KICKQ, NULL), 0);
    assert_int_equal(set_wait("gamma", 0, NULL, 0, LINK_SRC_KICKQ, NULL), 0);
    nev = nfn = 0;
    links_prune(not_beta);
    /* Written in order: once this later change is done, so is the prune. */
    assert_int_equal(set_wait("gamma", 1, "192.0.2.8", 0, LINK_SRC_KICKQ, NULL), 0);
    assert_null(links_get("beta"));
    assert_non_null(links_get("acme"));
    assert_int_equal(nfn, 1);                   /* gamma only: pruning tells nobody */
    links_restart();
    assert_null(links_get("beta"));
    assert_true(links_get("acme")->up);
    assert_true(links_get("gamma")->up);        /* beta's address was free */
}

/* links_down_if: only the session that raised the link takes it down, as
 * it stands when the down is applied (after changes still in flight). */
static void test_down_if_session(void **state)
{
    struct waiter w1 = {"acme", 0, 0}, w2 = {"acme", 0, 0}, w3 = {"acme", 0, 0};
    char err[256] = "";
    const struct link *l;

    assert_int_equal(set_wait("acme", 1, "192.0.2.7", 0, LINK_SRC_RADIUS, "nas/1"), 0);
    int fns = nfn;
    /* an old call's Stop: nothing changes, the callback still comes */
    assert_int_equal(links_down_if("acme", LINK_SRC_RADIUS, "nas/0", set_cb, &w1, err,
                                   sizeof err), 0);
    run_until(&w1.done, 5);
    assert_int_equal(w1.err, 0);
    assert_int_equal(nfn, fns);
    assert_true((l = links_get("acme")) && l->up);
    assert_string_equal(l->session, "nas/1");
    /* its own Stop takes it down */
    assert_int_equal(links_down_if("acme", LINK_SRC_RADIUS, "nas/1", set_cb, &w2, err,
                                   sizeof err), 0);
    run_until(&w2.done, 5);
    assert_int_equal(nfn, fns + 1);
    assert_false(links_get("acme")->up);
    /* judged when applied: a Stop of call 1 queued behind call 2's Start
     * leaves call 2 up */
    assert_int_equal(links_set("acme", 1, "192.0.2.8", 0, LINK_SRC_RADIUS, "nas/1", NULL,
                               NULL, err, sizeof err), 0);
    assert_int_equal(links_set("acme", 1, "192.0.2.9", 0, LINK_SRC_RADIUS, "nas/2", NULL,
                               NULL, err, sizeof err), 0);
    assert_int_equal(links_down_if("acme", LINK_SRC_RADIUS, "nas/1", set_cb, &w3, err,
                                   sizeof err), 0);
    run_until(&w3.done, 5);
    assert_true((l = links_get("acme")) && l->up);
    assert_string_equal(l->address, "192.0.2.9");
    assert_string_equal(l->session, "nas/2");
    /* a session is required */
    assert_int_equal(links_down_if("acme", LINK_SRC_RADIUS, "", set_cb, &w3, err,
                                   sizeof err), -1);
    assert_int_equal(links_down_if("acme", LINK_SRC_RADIUS, NULL, set_cb, &w3, err,
                                   sizeof err), -1);
}

/* After the first write (a compaction: a fresh spool has no journal) each
 * batch appends its changed links to the journal and leaves the snapshot
 * as it is; a restart without links_stop() (a crash after the writes)
 * replays them into the same table. */
/* fn hears of a change before its write is handed to the spool: a link
 * up's delivery starts before the aux thread (and the log writer) are
 * woken.  fn waits 50 ms here, and the journal still lacks the change. */
static int fn_saw_record = -1;

static void peek_fn(const struct link *l, int was_up, void *arg)
{
    char *journal;
    usleep(50000);
    journal = read_state("links.journal", NULL);
    fn_saw_record = journal && strstr(journal, "\tpeek\t1\t") != NULL;
    free(journal);
}

static void test_fn_before_the_write(void **state)
{
    char err[256];
    assert_int_equal(set_wait("acme", 1, "192.0.2.7", 0, LINK_SRC_KICKQ, NULL), 0);
    links_shutdown();
    assert_int_equal(links_init(base, sp, peek_fn, NULL, err, sizeof err), 0);
    assert_int_equal(set_wait("peek", 1, "192.0.2.8", 0, LINK_SRC_RADIUS, "s"), 0);
    assert_int_equal(fn_saw_record, 0);
    char *journal = read_state("links.journal", NULL);
    assert_non_null(strstr(journal, "\tpeek\t1\t"));      /* written after it */
    free(journal);
}

static void test_shutdown_in_flight(void **state)
{
    struct waiter w = {"lost", 0, 0};
    char err[128];
    assert_int_equal(links_set("acme", 1, "192.0.2.7", 0, LINK_SRC_KICKQ, NULL,
                               set_cb, &w, err, sizeof err), 0);
    assert_int_equal(links_set("beta", 1, "192.0.2.8", 0, LINK_SRC_KICKQ, NULL,
                               set_cb, &w, err, sizeof err), 0);
    links_shutdown();
    run_for(0.2);                               /* the write completes: nobody told */
    assert_int_equal(w.done, 0);
    links_start();
    assert_true(links_get("acme")->up);         /* it was written all the same */
    assert_null(links_get("beta"));             /* never started */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_up_refresh_down, setup, teardown),
        cmocka_unit_test_setup_teardown(test_down_if_session, setup, teardown),
        cmocka_unit_test_setup_teardown(test_addresses_normalised, setup, teardown),
        cmocka_unit_test_setup_teardown(test_up_without_address, setup, teardown),
        cmocka_unit_test_setup_teardown(test_iteration_and_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_callback_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_address_taken, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ttl_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_persistence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_validation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_change_during_a_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_change_during_a_failed_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expiry_write_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prune, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shutdown_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fn_before_the_write, setup, teardown),
    };
    return links_run_tests("test_links", tests, sizeof tests / sizeof tests[0]);
}

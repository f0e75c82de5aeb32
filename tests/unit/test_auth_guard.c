/*
 * test_auth_guard — auth/guard with a clock passed in: tables of steps
 * (fail / ok / blocked? at a time, with the delay or answer expected)
 * for the defaults and other settings: delays doubling and capped, a
 * success ending the row of delays but not the count, the block after
 * max_failures lasting a whole window from the failure that reached it,
 * window expiry, a clock that went back, max_failures 0 (never blocked),
 * delay 0; IPv6 addresses counted per /64 and IPv4-mapped ones as IPv4;
 * and the bound on the table (4096 addresses, least recent dropped first).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "auth/guard.h"
#include "../../src/auth/auth_int.h"

#define GUARD_MAX 4096              /* guard.c's bound */

enum op { FAIL, OK, BLOCKED, FREE };    /* FREE: not blocked */

struct step {
    enum op op;
    const char *addr;
    time_t t;
    long delay;                     /* FAIL: the delay expected */
};

static void run_steps(const char *name, const struct auth_guard_conf *conf,
                      const struct step *s, size_t n)
{
    auth_guard_reset();
    auth_guard_configure(conf);
    for (size_t i = 0; i < n; i++) {
        long got = 0;
        int bad = 0;
        switch (s[i].op) {
        case FAIL:    got = auth_guard_fail(s[i].addr, s[i].t); bad = got != s[i].delay; break;
        case OK:      auth_guard_ok(s[i].addr, s[i].t); break;
        case BLOCKED: bad = !auth_guard_blocked(s[i].addr, s[i].t); break;
        case FREE:    bad = auth_guard_blocked(s[i].addr, s[i].t); break;
        }
        if (bad) {
            print_error("%s: step %zu (op %d, %s at %ld): delay %ld, expected %ld\n",
                        name, i, s[i].op, s[i].addr, (long)s[i].t, got, s[i].delay);
            fail();
        }
    }
}

#define RUN(conf, steps) run_steps(#steps, conf, steps, sizeof steps / sizeof steps[0])

static void test_defaults(void **state)
{
    /* 1 s, 2 s, 4 s, 8 s, then 15 s; blocked at 20 within 600 s */
    static const struct step steps[] = {
        { FREE, "192.0.2.1", 1000, 0 },
        { FAIL, "192.0.2.1", 1000, 1000 },
        { FAIL, "192.0.2.1", 1001, 2000 },
        { FAIL, "192.0.2.1", 1003, 4000 },
        { FAIL, "192.0.2.1", 1007, 8000 },
        { FAIL, "192.0.2.1", 1015, 15000 },
        { FAIL, "192.0.2.1", 1030, 15000 },
        { FREE, "192.0.2.1", 1030, 0 },
        { FREE, "192.0.2.2", 1030, 0 },         /* others untouched */
        { FAIL, "192.0.2.2", 1030, 1000 },
        { OK,   "192.0.2.1", 1031, 0 },         /* the row ends ... */
        { FAIL, "192.0.2.1", 1032, 1000 },      /* ... the delay starts again */
        { FAIL, "192.0.2.1", 1033, 2000 },
    };
    RUN(NULL, steps);
}

static void test_limit_and_window(void **state)
{
    static const struct auth_guard_conf c = {
        .max_failures = 3, .window = 100, .delay_ms = 100, .max_delay_ms = 250,
    };
    static const struct step steps[] = {
        { FAIL, "10.0.0.1", 0, 100 },
        { FAIL, "10.0.0.1", 10, 200 },
        { FREE, "10.0.0.1", 10, 0 },
        { OK,   "10.0.0.1", 11, 0 },            /* the count stays */
        { FAIL, "10.0.0.1", 50, 100 },          /* 3rd in the window: limit */
        { BLOCKED, "10.0.0.1", 51, 0 },
        { BLOCKED, "10.0.0.1", 120, 0 },        /* 100 s from the first: still */
        { BLOCKED, "10.0.0.1", 149, 0 },        /* a window from the 3rd */
        { FREE, "10.0.0.1", 150, 0 },           /* passed: forgotten */
        { FAIL, "10.0.0.1", 150, 100 },         /* a new window, a new row */
        { FAIL, "10.0.0.1", 151, 200 },
        { FAIL, "10.0.0.1", 152, 250 },         /* capped */
        { BLOCKED, "10.0.0.1", 152, 0 },
        { FAIL, "10.0.0.1", 153, 250 },         /* failing on restarts the block */
        { BLOCKED, "10.0.0.1", 252, 0 },
        { FREE, "10.0.0.1", 253, 0 },
        /* without reaching the limit, the window runs from the first failure */
        { FAIL, "10.0.0.2", 1000, 100 },
        { FAIL, "10.0.0.2", 1099, 200 },
        { FAIL, "10.0.0.2", 1100, 100 },        /* 1st of a new window */
        { FAIL, "10.0.0.2", 1101, 200 },
        { FREE, "10.0.0.2", 1101, 0 },
        /* a clock that went back: the window counts as passed */
        { FAIL, "10.0.0.3", 5000, 100 },
        { FAIL, "10.0.0.3", 5001, 200 },
        { FAIL, "10.0.0.3", 5002, 250 },
        { BLOCKED, "10.0.0.3", 5003, 0 },
        { FREE, "10.0.0.3", 4000, 0 },
        { FAIL, "10.0.0.3", 4000, 100 },
    };
    RUN(&c, steps);
}

static void test_never_blocked_no_delay(void **state)
{
    static const struct auth_guard_conf c = {
        .max_failures = 0, .window = 60, .delay_ms = 0, .max_delay_ms = 0,
    };
    struct step steps[200];
    for (int i = 0; i < 100; i++) {
        steps[2 * i] = (struct step){ FAIL, "198.51.100.7", i, 0 };
        steps[2 * i + 1] = (struct step){ FREE, "198.51.100.7", i, 0 };
    }
    RUN(&c, steps);
}

static void test_settings_clamped(void **state)
{
    /* max below the first delay: the first delay is the cap; negative
     * delays are 0; a window under 1 s is 1 s */
    static const struct auth_guard_conf c1 = {
        .max_failures = 2, .window = 0, .delay_ms = 500, .max_delay_ms = 10,
    };
    static const struct step s1[] = {
        { FAIL, "a", 0, 500 },
        { FAIL, "a", 0, 500 },
        { BLOCKED, "a", 0, 0 },
        { FREE, "a", 1, 0 },
    };
    RUN(&c1, s1);
    static const struct auth_guard_conf c2 = {
        .max_failures = 5, .window = 10, .delay_ms = -7, .max_delay_ms = -1,
    };
    static const struct step s2[] = {
        { FAIL, "a", 0, 0 },
        { FAIL, "a", 0, 0 },
    };
    RUN(&c2, s2);
    /* a huge first delay is cut to an hour and never overflows */
    static const struct auth_guard_conf c3 = {
        .max_failures = 0, .window = 10, .delay_ms = 1L << 40, .max_delay_ms = 1L << 50,
    };
    static const struct step s3[] = {
        { FAIL, "a", 0, 3600000 },
        { FAIL, "a", 0, 3600000 },
    };
    RUN(&c3, s3);
    /* many failures in a row: the delay stays at the cap */
    auth_guard_reset();
    auth_guard_configure(&(struct auth_guard_conf){ 0, 10, 1, 3600000 });
    long d = 0;
    for (int i = 0; i < 1000; i++)
        d = auth_guard_fail("b", 0);
    assert_int_equal(d, 3600000);
    auth_guard_configure(NULL);                 /* back to the defaults */
    auth_guard_reset();
    assert_int_equal(auth_guard_fail("c", 0), 1000);
}

static void test_addresses(void **state)
{
    static const struct auth_guard_conf c = {
        .max_failures = 2, .window = 100, .delay_ms = 10, .max_delay_ms = 1000,
    };
    static const struct step steps[] = {
        /* one /64: the same entry */
        { FAIL, "2001:db8:1:2::1", 0, 10 },
        { FAIL, "2001:db8:1:2:ffff:ffff:ffff:ffff", 0, 20 },
        { BLOCKED, "2001:db8:1:2::99", 0, 0 },
        { BLOCKED, "2001:DB8:1:2:0:0:0:5", 0, 0 },
        { FREE, "2001:db8:1:3::1", 0, 0 },      /* the next /64 */
        /* IPv4-mapped = IPv4 */
        { FAIL, "::ffff:192.0.2.9", 0, 10 },
        { FAIL, "192.0.2.9", 0, 20 },
        { BLOCKED, "::ffff:192.0.2.9", 0, 0 },
        { FREE, "192.0.2.10", 0, 0 },
        /* not an address: the string itself */
        { FAIL, "unix", 0, 10 },
        { FREE, "unix", 0, 0 },
        { FREE, "", 0, 0 },
        { FAIL, "", 0, 10 },
    };
    RUN(&c, steps);
    /* a very long string is cut, not overrun */
    char lng[300];
    memset(lng, 'x', sizeof lng - 1);
    lng[sizeof lng - 1] = 0;
    assert_int_equal(auth_guard_fail(lng, 0), 10);
    assert_false(auth_guard_blocked(lng, 0));
    lng[100] = 'y';                             /* the same first 63 bytes */
    assert_int_equal(auth_guard_fail(lng, 0), 20);
    assert_true(auth_guard_blocked(lng, 0));
}

static void test_bound(void **state)
{
    static const struct auth_guard_conf c = {
        .max_failures = 1, .window = 100000, .delay_ms = 10, .max_delay_ms = 10,
    };
    auth_guard_reset();
    auth_guard_configure(&c);
    char a[32];
    for (int i = 0; i < GUARD_MAX; i++) {
        snprintf(a, sizeof a, "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
        auth_guard_fail(a, i);
    }
    assert_int_equal(auth_guard_test_count(), GUARD_MAX);
    /* address 0 is looked at: the most recent now; address 1 is the oldest */
    assert_true(auth_guard_blocked("10.0.0.0", GUARD_MAX));
    for (int i = 0; i < 10; i++) {
        snprintf(a, sizeof a, "172.16.0.%d", i);
        auth_guard_fail(a, GUARD_MAX);
        assert_int_equal(auth_guard_test_count(), GUARD_MAX);
    }
    assert_true(auth_guard_blocked("10.0.0.0", GUARD_MAX));
    for (int i = 1; i <= 10; i++) {             /* dropped, oldest first */
        snprintf(a, sizeof a, "10.0.0.%d", i);
        assert_false(auth_guard_blocked(a, GUARD_MAX));
    }
    assert_true(auth_guard_blocked("10.0.0.11", GUARD_MAX));
    assert_true(auth_guard_blocked("172.16.0.9", GUARD_MAX));
    /* many more: still bounded */
    for (int i = 0; i < 3 * GUARD_MAX; i++) {
        snprintf(a, sizeof a, "2001:db8:%x:%x::1", i >> 12, i & 0xfff);
        auth_guard_fail(a, GUARD_MAX);
    }
    assert_int_equal(auth_guard_test_count(), GUARD_MAX);
    /* entries whose window passed go when looked at */
    assert_true(auth_guard_blocked("2001:db8:2:fff::1", GUARD_MAX + 99999));
    assert_false(auth_guard_blocked("2001:db8:2:fff::1", GUARD_MAX + 100000));
    assert_int_equal(auth_guard_test_count(), GUARD_MAX - 1);
    auth_guard_reset();
    assert_int_equal(auth_guard_test_count(), 0);
    assert_false(auth_guard_blocked("10.0.0.0", GUARD_MAX));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_limit_and_window),
        cmocka_unit_test(test_never_blocked_no_delay),
        cmocka_unit_test(test_settings_clamped),
        cmocka_unit_test(test_addresses),
        cmocka_unit_test(test_bound),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    auth_guard_reset();
    return rc;
}

/*
 * test_auth_attempt — auth/attempt on a real event loop: a failure is
 * answered once, from the loop, after auth_guard's delay (never from
 * inside auth_attempt_fail, even for a delay of 0), the delays growing and
 * a success starting them again; a cancelled answer never comes (and a
 * cancel with none pending does nothing); the answer may start another
 * failure (the attempt is free again when it runs); an address over the
 * limit is blocked, another is not.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include <cmocka.h>
#include <event2/event.h>

#include "auth/attempt.h"
#include "auth/guard.h"

struct answered {
    struct auth_attempt *a;
    struct event_base *base;
    int n;                          /* answers so far */
    int pending_inside;             /* auth_attempt_pending() in the answer */
    int again;                      /* failures to start from the answer */
};

static void answer(void *arg)
{
    struct answered *w = arg;
    w->n++;
    w->pending_inside = auth_attempt_pending(w->a);
    if (w->again-- > 0)
        auth_attempt_fail(w->a, w->base, "192.0.2.1", answer, w);
}

static void configure(unsigned max_failures, long delay_ms, long max_delay_ms)
{
    struct auth_guard_conf c = { max_failures, 600, delay_ms, max_delay_ms };
    auth_guard_reset();
    auth_guard_configure(&c);
}

static long ms_since(const struct timeval *t0)
{
    struct timeval t1;
    gettimeofday(&t1, NULL);
    return (t1.tv_sec - t0->tv_sec) * 1000 + (t1.tv_usec - t0->tv_usec) / 1000;
}

/* Runs the loop until nothing is pending (or 2 s). */
static void run(struct event_base *base)
{
    struct timeval cap = { 2, 0 };
    event_base_loopexit(base, &cap);
    event_base_dispatch(base);
}

static void test_answer_after_delay(void **state)
{
    struct event_base *base = event_base_new();
    struct auth_attempt a = { 0 };
    struct answered w = { .a = &a, .base = base };
    struct timeval t0;
    configure(20, 40, 80);
    /* 40 ms, then 80 ms (the cap), then after a success 40 ms again */
    static const long want[] = { 40, 80, 80 };
    for (size_t i = 0; i < 3; i++) {
        gettimeofday(&t0, NULL);
        assert_int_equal(auth_attempt_fail(&a, base, "192.0.2.1", answer, &w), want[i]);
        assert_int_equal(w.n, (int)i);          /* not from inside the call */
        assert_true(auth_attempt_pending(&a));
        event_base_dispatch(base);              /* only the timer: returns after it */
        assert_int_equal(w.n, (int)i + 1);
        assert_true(ms_since(&t0) >= want[i] - 5);
        assert_false(w.pending_inside);
        assert_false(auth_attempt_pending(&a));
    }
    auth_attempt_ok("192.0.2.1");
    assert_int_equal(auth_attempt_fail(&a, base, "192.0.2.1", answer, &w), 40);
    event_base_dispatch(base);
    assert_int_equal(w.n, 4);
    event_base_free(base);
}

static void test_zero_delay_not_inside(void **state)
{
    struct event_base *base = event_base_new();
    struct auth_attempt a = { 0 };
    struct answered w = { .a = &a, .base = base };
    configure(20, 0, 0);
    assert_int_equal(auth_attempt_fail(&a, base, "192.0.2.1", answer, &w), 0);
    assert_int_equal(w.n, 0);
    event_base_dispatch(base);
    assert_int_equal(w.n, 1);
    event_base_free(base);
}

static void test_cancel(void **state)
{
    struct event_base *base = event_base_new();
    struct auth_attempt a = { 0 };
    struct answered w = { .a = &a, .base = base };
    configure(20, 10, 10);
    auth_attempt_cancel(&a);                    /* none pending: nothing */
    assert_false(auth_attempt_pending(&a));
    auth_attempt_fail(&a, base, "192.0.2.1", answer, &w);
    auth_attempt_cancel(&a);
    assert_false(auth_attempt_pending(&a));
    run(base);
    assert_int_equal(w.n, 0);
    auth_attempt_cancel(&a);                    /* twice: still nothing */
    event_base_free(base);
}

static void test_fail_from_answer(void **state)
{
    struct event_base *base = event_base_new();
    struct auth_attempt a = { 0 };
    struct answered w = { .a = &a, .base = base, .again = 2 };
    configure(20, 0, 0);
    auth_attempt_fail(&a, base, "192.0.2.1", answer, &w);
    event_base_dispatch(base);
    assert_int_equal(w.n, 3);
    assert_false(auth_attempt_pending(&a));
    event_base_free(base);
}

static void test_blocked(void **state)
{
    struct event_base *base = event_base_new();
    struct auth_attempt a = { 0 };
    struct answered w = { .a = &a, .base = base };
    configure(2, 0, 0);
    assert_false(auth_attempt_blocked("192.0.2.1"));
    auth_attempt_fail(&a, base, "192.0.2.1", answer, &w);
    event_base_dispatch(base);
    assert_false(auth_attempt_blocked("192.0.2.1"));
    auth_attempt_ok("192.0.2.1");               /* not its count toward the limit */
    auth_attempt_fail(&a, base, "192.0.2.1", answer, &w);
    event_base_dispatch(base);
    assert_true(auth_attempt_blocked("192.0.2.1"));
    assert_false(auth_attempt_blocked("198.51.100.7"));
    assert_int_equal(w.n, 2);
    event_base_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_answer_after_delay),
        cmocka_unit_test(test_zero_delay_not_inside),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_fail_from_answer),
        cmocka_unit_test(test_blocked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

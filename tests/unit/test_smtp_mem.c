/*
 * test_smtp_mem — the two-level account of message data in memory
 * (smtp_mem_take/smtp_mem_release): which bound refuses, that a refusal
 * changes nothing, that sessions of two clients share the total but not
 * each other's share, and that releasing brings every total back to zero.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "smtp/smtp_mem.h"

static void test_take_and_release(void **state)
{
    uint64_t all = 0, client = 0;
    struct smtp_mem m = { &all, &client, 0 };
    assert_int_equal(smtp_mem_take(&m, 60, 100, 80), SMTP_MEM_OK);
    assert_int_equal(smtp_mem_take(&m, 20, 100, 80), SMTP_MEM_OK);   /* exactly at the share */
    assert_int_equal(all, 80);
    assert_int_equal(client, 80);
    assert_int_equal(m.mine, 80);
    assert_int_equal(smtp_mem_take(&m, 1, 100, 80), SMTP_MEM_OVER_CLIENT);
    assert_int_equal(all, 80);                  /* a refusal takes nothing */
    assert_int_equal(client, 80);
    assert_int_equal(m.mine, 80);
    smtp_mem_release(&m);
    assert_int_equal(all, 0);
    assert_int_equal(client, 0);
    assert_int_equal(m.mine, 0);
    smtp_mem_release(&m);                       /* twice: nothing more */
    assert_int_equal(all, 0);
}

static void test_two_clients(void **state)
{
    uint64_t all = 0, c1 = 0, c2 = 0;
    struct smtp_mem a1 = { &all, &c1, 0 }, a2 = { &all, &c1, 0 }, b = { &all, &c2, 0 };
    /* client 1, two sessions: its share (50) is reached by them together */
    assert_int_equal(smtp_mem_take(&a1, 30, 100, 50), SMTP_MEM_OK);
    assert_int_equal(smtp_mem_take(&a2, 20, 100, 50), SMTP_MEM_OK);
    assert_int_equal(smtp_mem_take(&a2, 1, 100, 50), SMTP_MEM_OVER_CLIENT);
    /* client 2 still has its own share */
    assert_int_equal(smtp_mem_take(&b, 50, 100, 50), SMTP_MEM_OK);
    assert_int_equal(all, 100);
    /* total reached: the total is named first even when the share is too */
    assert_int_equal(smtp_mem_take(&b, 1, 100, 50), SMTP_MEM_OVER_ALL);
    smtp_mem_release(&a1);
    assert_int_equal(c1, 20);
    assert_int_equal(all, 70);
    assert_int_equal(smtp_mem_take(&a1, 30, 100, 50), SMTP_MEM_OK);  /* room again */
    smtp_mem_release(&a1);
    smtp_mem_release(&a2);
    smtp_mem_release(&b);
    assert_int_equal(all, 0);
    assert_int_equal(c1, 0);
    assert_int_equal(c2, 0);
}

/* Totals already over a bound (a reload lowered it) and huge sizes do not
 * wrap around. */
static void test_no_wrap(void **state)
{
    uint64_t all = 90, client = 0;
    struct smtp_mem m = { &all, &client, 0 };
    assert_int_equal(smtp_mem_take(&m, 1, 50, 50), SMTP_MEM_OVER_ALL);
    assert_int_equal(smtp_mem_take(&m, UINT64_MAX, 100, 100), SMTP_MEM_OVER_ALL);
    all = 0;
    assert_int_equal(smtp_mem_take(&m, UINT64_MAX - 1, UINT64_MAX, 100), SMTP_MEM_OVER_CLIENT);
    client = 60;
    assert_int_equal(smtp_mem_take(&m, 1, 100, 50), SMTP_MEM_OVER_CLIENT);
    assert_int_equal(all, 0);
    assert_int_equal(m.mine, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_take_and_release),
        cmocka_unit_test(test_two_clients),
        cmocka_unit_test(test_no_wrap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

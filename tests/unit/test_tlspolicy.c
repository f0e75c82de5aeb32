/*
 * test_tlspolicy — the delivery TLS policy's decision after EHLO/HELO
 * (tlspol_after_greeting): every policy against every combination of
 * "already under TLS", "STARTTLS offered", "a client context exists".
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "../../src/mta/tlspolicy.h"

#define R TLSPOL_STEP_READY
#define S TLSPOL_STEP_STARTTLS
#define F TLSPOL_STEP_FAIL

static void test_after_greeting(void **state)
{
    static const struct {
        enum smtp_client_tls pol;
        int is_tls, offered, have_ctx;
        enum tlspol_step want;
        const char *why;
    } cases[] = {
        {SMTPC_TLS_NONE, 0, 1, 1, R, ""},           /* none: never STARTTLS */
        {SMTPC_TLS_NONE, 0, 0, 1, R, ""},
        {SMTPC_TLS_MAY, 0, 1, 1, S, ""},
        {SMTPC_TLS_MAY, 0, 0, 1, R, ""},            /* may: cleartext when not offered */
        {SMTPC_TLS_MAY, 0, 1, 0, R, ""},
        {SMTPC_TLS_MAY, 1, 1, 1, R, ""},            /* after STARTTLS: go on */
        {SMTPC_TLS_ENCRYPT, 0, 1, 1, S, ""},
        {SMTPC_TLS_ENCRYPT, 0, 0, 1, F,
         "TLS is required, but was not offered by host 127.0.0.23[127.0.0.23]"},
        {SMTPC_TLS_ENCRYPT, 0, 1, 0, F,
         "TLS is required, but no client TLS context is available for "
         "127.0.0.23[127.0.0.23]"},
        {SMTPC_TLS_ENCRYPT, 1, 0, 1, R, ""},
        {SMTPC_TLS_VERIFY, 0, 1, 1, S, ""},
        {SMTPC_TLS_VERIFY, 0, 0, 1, F,
         "TLS is required, but was not offered by host 127.0.0.23[127.0.0.23]"},
        {SMTPC_TLS_VERIFY, 0, 0, 0, F,
         "TLS is required, but no client TLS context is available for "
         "127.0.0.23[127.0.0.23]"},
        {SMTPC_TLS_VERIFY, 1, 0, 1, R, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char why[256] = "junk";
        enum tlspol_step got = tlspol_after_greeting(cases[i].pol, cases[i].is_tls,
                                                     cases[i].offered, cases[i].have_ctx,
                                                     "127.0.0.23[127.0.0.23]", why,
                                                     sizeof why);
        if (got != cases[i].want || strcmp(why, cases[i].why) != 0) {
            print_error("case %zu: got %d \"%s\", want %d \"%s\"\n", i, (int)got, why,
                        (int)cases[i].want, cases[i].why);
            fail();
        }
    }
}

static void test_required(void **state)
{
    assert_false(tlspol_required(SMTPC_TLS_NONE));
    assert_false(tlspol_required(SMTPC_TLS_MAY));
    assert_true(tlspol_required(SMTPC_TLS_ENCRYPT));
    assert_true(tlspol_required(SMTPC_TLS_VERIFY));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_after_greeting),
        cmocka_unit_test(test_required),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

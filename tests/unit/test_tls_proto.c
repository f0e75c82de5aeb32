/*
 * test_tls_proto — the tls section's `protocols` parser (tls_protocols_parse)
 * on a table of good and bad values, and tls_version_name.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "core/tls.h"

static void test_good(void **state)
{
    static const struct { const char *spec; int min, max; } cases[] = {
        {">=TLSv1.2", TLS_V1_2, 0},
        {">=TLSv1.3", TLS_V1_3, 0},
        {"TLSv1.3", TLS_V1_3, TLS_V1_3},
        {"TLSv1.2", TLS_V1_2, TLS_V1_2},
        {">=TLSv1.2 <=TLSv1.2", TLS_V1_2, TLS_V1_2},
        {"<=TLSv1.3, >=TLSv1.2", TLS_V1_2, TLS_V1_3},
        {"  >=TLSv1\t<=TLSv1.1 ", TLS_V1_0, TLS_V1_1},
        {"<=TLSv1.2", 0, TLS_V1_2},
        {">=TLSv1.1,,", TLS_V1_1, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char why[256] = "";
        int min = -1, max = -1;
        if (tls_protocols_parse(cases[i].spec, &min, &max, why, sizeof why) != 0 ||
            min != cases[i].min || max != cases[i].max) {
            print_error("\"%s\": got %#x..%#x (%s), want %#x..%#x\n", cases[i].spec,
                        min, max, why, cases[i].min, cases[i].max);
            fail();
        }
    }
}

static void test_bad(void **state)
{
    static const struct { const char *spec, *want; } cases[] = {
        {"", "protocols: empty"},
        {" , ", "protocols: empty"},
        {"!SSLv3 !TLSv1", "unknown '!SSLv3'"},
        {"SSLv3", "unknown 'SSLv3'"},
        {"tlsv1.2", "unknown 'tlsv1.2'"},
        {">TLSv1.2", "unknown '>TLSv1.2'"},
        {">= TLSv1.2", "unknown '>='"},
        {">=TLSv1.4", "unknown '>=TLSv1.4'"},
        {">=TLSv1.2 >=TLSv1.3", "two lower (>=) bounds"},
        {"<=TLSv1.2 <=TLSv1.3", "two upper (<=) bounds"},
        {"TLSv1.3 >=TLSv1.2", "a single version (TLSv1.3) stands alone"},
        {"TLSv1.2 TLSv1.3", "stands alone"},
        {">=TLSv1.3 <=TLSv1.2", "TLSv1.3 is above TLSv1.2: no protocol left"},
        {"<=TLSv1.1", "<=TLSv1.1 leaves nothing above the default minimum"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char why[256] = "";
        int min = 7, max = 7;
        if (tls_protocols_parse(cases[i].spec, &min, &max, why, sizeof why) != -1 ||
            !strstr(why, cases[i].want) || min != 0 || max != 0) {
            print_error("\"%s\": got \"%s\", want \"%s\"\n", cases[i].spec, why,
                        cases[i].want);
            fail();
        }
    }
}

static void test_names(void **state)
{
    assert_string_equal(tls_version_name(TLS_V1_0), "TLSv1");
    assert_string_equal(tls_version_name(TLS_V1_3), "TLSv1.3");
    assert_string_equal(tls_version_name(0x0300), "?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),
        cmocka_unit_test(test_bad),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

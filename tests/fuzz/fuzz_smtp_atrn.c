/*
 * fuzz_smtp_atrn — libFuzzer target for smtp_parse_atrn (ATRN's domain
 * list, RFC 2645).  Input: the argument.  Checks the contract on every
 * result: on success at most SMTP_ATRN_MAX domains, each non-empty, at most
 * SMTP_ATRN_DOMAIN_MAX bytes, lower-case [a-z0-9-] labels with single inner
 * dots, no two alike, and the list parsed again from its own rendering is
 * the same; on error nothing is left (n 0, buf NULL).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_parse.h"

#define CHECK(x) do { if (!(x)) abort(); } while (0)

static void check_domain(const char *d)
{
    size_t n = strlen(d);
    CHECK(n > 0 && n <= SMTP_ATRN_DOMAIN_MAX);
    CHECK(d[0] != '.' && d[n - 1] != '.');
    for (size_t i = 0; i < n; i++) {
        char c = d[i];
        CHECK((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.');
        CHECK(!(c == '.' && d[i + 1] == '.'));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct smtp_atrn a, b;
    static char out[SMTP_ATRN_MAX * (SMTP_ATRN_DOMAIN_MAX + 1) + 1];
    if (size > 4096)
        return 0;
    enum smtp_atrn_result r = smtp_parse_atrn((const char *)data, size, &a);
    if (r != SMTP_ATRN_OK) {
        CHECK(r == SMTP_ATRN_SYNTAX || r == SMTP_ATRN_TOO_MANY);
        CHECK(a.n == 0 && a.buf == NULL);
        return 0;
    }
    CHECK(a.n <= SMTP_ATRN_MAX);
    size_t o = 0;
    for (size_t i = 0; i < a.n; i++) {
        check_domain(a.domain[i]);
        for (size_t k = 0; k < i; k++)
            CHECK(strcmp(a.domain[i], a.domain[k]) != 0);
        if (i)
            out[o++] = ',';
        memcpy(out + o, a.domain[i], strlen(a.domain[i]));
        o += strlen(a.domain[i]);
    }
    CHECK(smtp_parse_atrn(out, o, &b) == SMTP_ATRN_OK && b.n == a.n);
    for (size_t i = 0; i < a.n; i++)
        CHECK(strcmp(a.domain[i], b.domain[i]) == 0);
    smtp_atrn_free(&b);
    smtp_atrn_free(&a);
    return 0;
}

/*
 * test_dotstuff — the SMTP client's DATA encoder: each row's message fed
 * whole, one byte at a time, and in pieces of 3, must give exactly the
 * expected bytes on the wire.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include <event2/buffer.h>

#include "../../src/mta/dotstuff.h"

static const struct {
    const char *name, *in, *wire;
} rows[] = {
    { "empty",              "",                      ".\r\n" },
    { "one line",           "a\r\n",                 "a\r\n.\r\n" },
    { "no final CRLF",      "a",                     "a\r\n.\r\n" },
    { "final CR alone",     "a\r",                   "a\r\n.\r\n" },
    { "final LF alone",     "a\n",                   "a\n.\r\n" },
    { "dot first",          ".x\r\n",                "..x\r\n.\r\n" },
    { "lone dot line",      "a\r\n.\r\nb\r\n",       "a\r\n..\r\nb\r\n.\r\n" },
    { "dots after LF",      "a\n.\n..\n",            "a\n..\n...\n.\r\n" },
    { "dot not at bol",     "a.b\r\n x.\r\n",        "a.b\r\n x.\r\n.\r\n" },
    { "smuggling CR dot",   "a\r.\r\nb",             "a\r.\r\nb\r\n.\r\n" },
    { "dot then end",       "a\r\n.",                "a\r\n..\r\n.\r\n" },
};

static void run(const char *in, size_t step, const char *want, const char *name)
{
    struct evbuffer *out = evbuffer_new();
    struct dotstuff s;
    size_t n = strlen(in);
    dotstuff_init(&s);
    for (size_t i = 0; i < n; i += step)
        dotstuff_add(&s, out, in + i, n - i < step ? n - i : step);
    dotstuff_end(&s, out);
    size_t len = evbuffer_get_length(out);
    char *got = (char *)evbuffer_pullup(out, -1);
    if (len != strlen(want) || memcmp(got, want, len) != 0)
        fail_msg("%s (pieces of %zu): got %.*s", name, step, (int)len, got ? got : "");
    evbuffer_free(out);
}

static void test_rows(void **state)
{
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        size_t steps[] = { strlen(rows[r].in) ? strlen(rows[r].in) : 1, 1, 3 };
        for (size_t k = 0; k < 3; k++)
            run(rows[r].in, steps[k], rows[r].wire, rows[r].name);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

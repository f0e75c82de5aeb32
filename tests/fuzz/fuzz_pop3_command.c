/*
 * fuzz_pop3_command — libFuzzer target for the pure POP3 parsing
 * (pop3_parse.h).  The input is a command line (its first byte chooses the
 * step for the second check): pop3_parse_command must keep every argument
 * inside the line and within its bound; pop3_parse_number must agree with
 * strtoul on what it accepts; and the RETR/TOP encoder, fed the input as a
 * message whole and in pieces of the chosen size, must give the same bytes,
 * with every LF preceded by CR and no line starting with a lone dot.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "pop3/pop3_parse.h"

#define CHECK(x) do { if (!(x)) { fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #x); \
                                  abort(); } } while (0)

static void check_cmd(const uint8_t *data, size_t size)
{
    const char *line = (const char *)data;
    struct pop3_cmd c;
    enum pop3_parse_result rc = pop3_parse_command(line, size, &c);
    if (rc != POP3_PARSE_OK)
        return;
    CHECK(c.verb != POP3_V_UNKNOWN && c.name);
    CHECK(c.nargs <= 3);
    for (unsigned i = 0; i < c.nargs && i < 2; i++) {
        CHECK(c.args[i].p >= line && c.args[i].p + c.args[i].len <= line + size);
        if (c.verb != POP3_V_PASS && !(c.verb == POP3_V_AUTH && i == 1))
            CHECK(c.args[i].len <= POP3_ARG_MAX && c.args[i].len > 0);
        uint32_t v;
        if (pop3_parse_number(&c.args[i], &v) == 0) {
            char buf[16];
            CHECK(c.args[i].len <= POP3_NUM_DIGITS);
            memcpy(buf, c.args[i].p, c.args[i].len);
            buf[c.args[i].len] = 0;
            CHECK(strtoul(buf, NULL, 10) == v);
        }
    }
}

static struct evbuffer *encode(const uint8_t *data, size_t size, size_t step, long lines)
{
    struct evbuffer *out = evbuffer_new();
    struct pop3_enc e;
    pop3_enc_init(&e, lines);
    for (size_t i = 0; i < size && !e.done;) {
        size_t k = size - i < step ? size - i : step;
        size_t used = pop3_enc_feed(&e, (const char *)data + i, k, out);
        CHECK(used == k || e.done);
        i += used;
    }
    pop3_enc_end(&e, out);
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_cmd(data, size);
    if (size == 0)
        return 0;
    size_t step = 1 + data[0] % 17;
    long lines = data[0] & 0x80 ? (long)(data[0] & 7) : -1;
    struct evbuffer *a = encode(data, size, size, lines);
    struct evbuffer *b = encode(data, size, step, lines);
    size_t n = evbuffer_get_length(a);
    CHECK(n == evbuffer_get_length(b));
    const unsigned char *pa = evbuffer_pullup(a, -1), *pb = evbuffer_pullup(b, -1);
    CHECK(!memcmp(pa, pb, n));
    CHECK(n >= 3 && !memcmp(pa + n - 3, ".\r\n", 3));
    for (size_t i = 0; i < n; i++) {
        if (pa[i] == '\n')
            CHECK(i > 0 && pa[i - 1] == '\r');
        /* a line that starts with a dot has a second one, or is the end */
        if (pa[i] == '.' && (i == 0 || pa[i - 1] == '\n') && i + 3 != n)
            CHECK(i + 1 < n && pa[i + 1] == '.');
        if (pa[i] == '.' && (i == 0 || pa[i - 1] == '\n') && i + 1 < n && pa[i + 1] == '.')
            i++;
    }
    evbuffer_free(a);
    evbuffer_free(b);
    return 0;
}

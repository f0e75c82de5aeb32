/*
 * fuzz_smtp_data — libFuzzer target for the DATA decoder.  Input: four bytes
 * choosing small limits (size, line, header, Received count; 0 = none), then
 * the byte stream after "354".  The stream is decoded whole, one byte at a
 * time and in pseudo-random chunks; all three must agree on output, error,
 * consumed count and counters.  The result is also checked against a naive
 * reference: the end is the first CR LF "." CR LF (counting the CR LF of
 * "DATA"), the output is the text before it with each line's leading dot
 * removed (a prefix of it once an error is set), and the error is set
 * exactly when the text holds a NUL, bare CR/LF or crosses the size limit.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_parse.h"

#define CHECK(x) do { if (!(x)) abort(); } while (0)

struct out {
    char *p;
    size_t n, cap;
};

static void out_emit(void *arg, const char *p, size_t n)
{
    struct out *o = arg;

    CHECK(n > 0 && o->n + n <= o->cap);
    memcpy(o->p + o->n, p, n);
    o->n += n;
}

struct run {
    struct out out;
    struct smtp_data d;
    size_t consumed;
    int done;
};

/* chunk 0: all at once; 1: one byte at a time; otherwise pseudo-random sizes
 * from seed `chunk`. */
static void run_decode(struct run *r, const uint8_t *lim, const char *in, size_t len,
                       uint32_t chunk)
{
    size_t off = 0;
    uint32_t x = chunk;

    smtp_data_init(&r->d, lim[0] * 7u, lim[1], lim[2] * 3u, lim[3] % 5u);
    r->consumed = 0;
    r->done = 0;
    r->out.n = 0;
    while (off < len && !r->done) {
        size_t n = len - off, used;

        if (chunk == 1) {
            n = 1;
        } else if (chunk > 1) {
            x = x * 1103515245u + 12345u;
            if (n > 1 + (x >> 16) % 17)
                n = 1 + (x >> 16) % 17;
        }
        used = smtp_data_feed(&r->d, in + off, n, out_emit, &r->out, &r->done);
        CHECK(used <= n && (r->done || used == n));
        r->consumed += used;
        off += n;
    }
}

static void same(const struct run *a, const struct run *b)
{
    CHECK(a->out.n == b->out.n && memcmp(a->out.p, b->out.p, a->out.n) == 0);
    CHECK(a->consumed == b->consumed && a->done == b->done);
    CHECK(a->d.err == b->d.err && a->d.size == b->d.size);
    CHECK(a->d.received == b->d.received && a->d.eightbit == b->d.eightbit);
}

/* Naive reference over s = "\r\n" + input. */
static void reference(const struct run *r, const uint8_t *lim, const char *in, size_t len)
{
    char *s = malloc(len + 2), *ref = malloc(len + 1);
    const char *m;
    size_t end, j, n = 0;
    int flawed = 0, nul = 0, eight = 0;

    CHECK(s && ref);
    s[0] = '\r';
    s[1] = '\n';
    memcpy(s + 2, in, len);
    m = memmem(s, len + 2, "\r\n.\r\n", 5);
    CHECK(r->done == (m != NULL));
    if (m) {
        CHECK(r->consumed == (size_t)(m - s) + 3);
        end = (size_t)(m - s) + 2;              /* text ends with the CR LF before the dot */
    } else {
        CHECK(r->consumed == len);
        end = len + 2;
        if (len > 0 && in[len - 1] == '\r')
            end--;                              /* held: not decided yet */
    }
    for (j = 2; j < end; j++) {
        unsigned char c = (unsigned char)s[j];

        if (c == '.' && s[j - 2] == '\r' && s[j - 1] == '\n')
            continue;
        if (c == '\0')
            nul = 1;
        if (c >= 0x80)
            eight = 1;
        if (c == '\r' && s[j + 1] != '\n')     /* j + 1 <= len + 1 */
            flawed = 1;
        if (c == '\n' && s[j - 1] != '\r')
            flawed = 1;
        ref[n++] = (char)c;
    }
    CHECK(r->d.size == n);
    CHECK(r->d.eightbit == eight);
    CHECK(r->out.n <= n && memcmp(r->out.p, ref, r->out.n) == 0);
    if (r->d.err == SMTP_DATA_OK)
        CHECK(r->out.n == n && !nul && !flawed);
    else
        CHECK(r->out.n < n);                    /* the offending byte is never emitted */
    if (nul || flawed)
        CHECK(r->d.err != SMTP_DATA_OK);
    if (r->d.err == SMTP_DATA_NUL)
        CHECK(nul);
    if (r->d.err == SMTP_DATA_BARE_NL)
        CHECK(flawed);
    if (lim[0] && n > lim[0] * 7u)
        CHECK(r->d.err != SMTP_DATA_OK);
    if (r->d.err == SMTP_DATA_TOO_BIG)
        CHECK(lim[0] && n > lim[0] * 7u);
    if (r->d.err == SMTP_DATA_LOOP)
        CHECK(lim[3] % 5u && r->d.received > lim[3] % 5u);
    free(s);
    free(ref);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct run a, b, c;
    const char *in;
    size_t len;
    uint32_t seed = 2166136261u;
    size_t i;

    if (size < 4)
        return 0;
    in = (const char *)data + 4;
    len = size - 4;
    for (i = 0; i < size; i++)
        seed = (seed ^ data[i]) * 16777619u;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    memset(&c, 0, sizeof c);
    a.out.cap = b.out.cap = c.out.cap = len;
    a.out.p = malloc(len + 1);
    b.out.p = malloc(len + 1);
    c.out.p = malloc(len + 1);
    CHECK(a.out.p && b.out.p && c.out.p);
    run_decode(&a, data, in, len, 0);
    run_decode(&b, data, in, len, 1);
    run_decode(&c, data, in, len, seed | 2u);
    same(&a, &b);
    same(&a, &c);
    reference(&a, data, in, len);
    free(a.out.p);
    free(b.out.p);
    free(c.out.p);
    return 0;
}

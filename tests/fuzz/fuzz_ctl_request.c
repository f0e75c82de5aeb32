/*
 * fuzz_ctl_request — libFuzzer target for ctl_req_parse, the parse of a
 * control socket request line (TAB-separated words, checked against the
 * command table).  Input: the line as the server hands it over (without its
 * LF; any bytes, NUL and LF included).  Checks that a refusal says why;
 * that an accepted request names a known command with options it takes and
 * an argument count within its bounds, every argument non-empty, without
 * TAB, not an option, inside the line; that --ttl has its value exactly when
 * given; that a NUL byte is always refused; and that the request rebuilt
 * from the result (as kickq would send it) parses to the same result.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/ctl.h"

#define CHECK(x) do { if (!(x)) { fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #x); \
                                  abort(); } } while (0)

static char *words[CTL_MAX_WORDS], *words2[CTL_MAX_WORDS];

static int inside(const char *p, const char *buf, size_t len)
{
    return p >= buf && p <= buf + len;
}

static void check_ok(const struct ctl_req *rq, const char *line, size_t len)
{
    const struct ctl_cmd_spec *c = rq->cmd;
    int max = c->max_args < 0 ? CTL_MAX_WORDS - 1 : c->max_args;
    CHECK(c && ctl_cmd_find(c->name) == c);
    CHECK(rq->argc >= c->min_args && rq->argc <= max);
    CHECK((rq->opts & ~c->opts) == 0);
    CHECK(!!(rq->opts & CTL_OPT_TTL) == (rq->ttl != NULL));
    if (rq->ttl)
        CHECK(rq->ttl[0] && inside(rq->ttl, line, len) && !strchr(rq->ttl, '\t'));
    for (int i = 0; i < rq->argc; i++) {
        const char *a = rq->argv[i];
        CHECK(inside(a, line, len) && a[0] && a[0] != '-' && !strchr(a, '\t'));
    }
}

/* The request rebuilt from rq: command, arguments, then the options. */
static size_t rebuild(const struct ctl_req *rq, char *out, size_t cap)
{
    size_t n = 0;
    int k = snprintf(out, cap, "%s", rq->cmd->name);
    CHECK(k > 0 && (size_t)k < cap);
    n = (size_t)k;
    for (int i = 0; i < rq->argc; i++) {
        k = snprintf(out + n, cap - n, "\t%s", rq->argv[i]);
        CHECK(k > 0 && (size_t)k < cap - n);
        n += (size_t)k;
    }
    /* options with a value (--ttl, --user, --session) take the next word */
    static const struct { unsigned o; const char *w; int val; } opts[] = {
        { CTL_OPT_JSON, "--json", 0 }, { CTL_OPT_BODY, "--body", 0 },
        { CTL_OPT_PROM, "--prometheus", 0 }, { CTL_OPT_TTL, "--ttl", 1 },
        { CTL_OPT_USER, "--user", 2 }, { CTL_OPT_SESSION, "--session", 3 },
    };
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
        if (!(rq->opts & opts[i].o))
            continue;
        k = snprintf(out + n, cap - n, "\t%s", opts[i].w);
        CHECK(k > 0 && (size_t)k < cap - n);
        n += (size_t)k;
        if (!opts[i].val)
            continue;
        const char *v = opts[i].val == 1 ? rq->ttl : opts[i].val == 2 ? rq->user : rq->session;
        CHECK(v != NULL);
        k = snprintf(out + n, cap - n, "\t%s", v);
        CHECK(k > 0 && (size_t)k < cap - n);
        n += (size_t)k;
    }
    return n;
}

static void check_round_trip(const struct ctl_req *rq, size_t len)
{
    size_t cap = len + 64;
    char *again = malloc(cap), why[256];
    struct ctl_req rq2;
    CHECK(again);
    size_t n = rebuild(rq, again, cap);
    if (n && again[n - 1] == '\r') {     /* would lose that CR: not the same line */
        free(again);
        return;
    }
    CHECK(ctl_req_parse(again, n, words2, &rq2, why, sizeof why) == 0);
    CHECK(rq2.cmd == rq->cmd && rq2.argc == rq->argc && rq2.opts == rq->opts);
    const char *v1[] = { rq->ttl, rq->user, rq->session };
    const char *v2[] = { rq2.ttl, rq2.user, rq2.session };
    for (int i = 0; i < 3; i++) {
        CHECK((v1[i] == NULL) == (v2[i] == NULL));
        if (v1[i])
            CHECK(strcmp(v1[i], v2[i]) == 0);
    }
    for (int i = 0; i < rq->argc; i++)
        CHECK(strcmp(rq2.argv[i], rq->argv[i]) == 0);
    free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *line = malloc(size + 1), why[256];
    struct ctl_req rq;
    CHECK(line);
    memcpy(line, data, size);
    line[size] = 0;
    memset(why, 'x', sizeof why);
    int rc = ctl_req_parse(line, size, words, &rq, why, sizeof why);
    if (rc < 0) {
        CHECK(rc == -1 && why[0] && memchr(why, 0, sizeof why));
        CHECK(rq.cmd == NULL);
    } else {
        CHECK(rc == 0 && !memchr(data, 0, size));
        check_ok(&rq, line, size);
        check_round_trip(&rq, size);
    }
    if (memchr(data, 0, size))
        CHECK(rc == -1 && strcmp(why, "bad request: NUL byte") == 0);
    free(line);
    return 0;
}

/*
 * test_ctl_format — the control command output, rendered from hand-built
 * qmgr structures: the Postfix postqueue -p layout to the letter (its
 * layout for long queue IDs; held '!' and active '*' inside the ID column,
 * columns lined up, deferred reasons grouped, null sender, empty queue,
 * Request vs Requests, Kbytes rounded down over the sum), JSON Lines with escaping,
 * the shared command table, header extraction, status, summary, shape,
 * the one-line answers, kick, link and links; the command table and the
 * daemon's handler table agree.
 * Expected layouts were produced independently with printf semantics from
 * Postfix's showq_compat formats.  Runs with TZ=UTC.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include <event2/buffer.h>

#include "../../src/ctl/ctl_table.h"
#include "core/config.h"
#include "ctl/ctl.h"
#include "ctl/ctl_format.h"
#include "link/links.h"
#include "mta/deliver.h"
#include "queue/qmgr.h"

/* ---- building index structures by hand ---- */

struct rspec {
    const char *addr;
    struct qcust *cust;
    int status;
    const char *reason;
    int outbound;
};

static struct qmsg *mk_msg(const char *id, int64_t arrival, uint64_t size,
                           const char *sender, const struct rspec *rs, size_t n)
{
    struct qmsg *m = calloc(1, sizeof *m + n * sizeof m->rcpts[0]);
    assert_non_null(m);
    snprintf(m->idstr, sizeof m->idstr, "%s", id);
    m->arrival = arrival;
    m->size = size;
    m->sender = strdup(sender);
    m->nrcpt = (uint16_t)n;
    for (size_t i = 0; i < n; i++) {
        struct qrcpt *r = &m->rcpts[i];
        r->addr = strdup(rs[i].addr);
        r->domain = strrchr(r->addr, '@') + 1;
        r->msg = m;
        r->cust = rs[i].cust;
        r->status = (uint8_t)rs[i].status;
        r->reason = rs[i].reason ? strdup(rs[i].reason) : NULL;
        r->outbound = (uint8_t)rs[i].outbound;
        if (r->status == QR_QUEUED || r->status == QR_DEFERRED)
            m->npending++;
    }
    return m;
}

static void free_msg(struct qmsg *m)
{
    for (size_t i = 0; i < m->nrcpt; i++) {
        free(m->rcpts[i].addr);
        free(m->rcpts[i].reason);
    }
    free(m->sender);
    free(m);
}

static struct qcust acme = { .name = "acme" }, beta = { .name = "beta" };

/* The evbuffer's contents as a string (the buffer is emptied). */
static char *take(struct evbuffer *b)
{
    size_t n = evbuffer_get_length(b);
    char *s = malloc(n + 1);
    evbuffer_remove(b, s, n);
    s[n] = 0;
    return s;
}

/* Renders msgs with the Postfix layout and compares. */
static void check_list(struct qmsg **msgs, size_t n, const struct ctl_fmt_opts *o,
                       const char *want)
{
    struct evbuffer *b = evbuffer_new();
    struct ctl_list_state st = { 0 };
    for (size_t i = 0; i < n; i++)
        ctl_fmt_list_msg(b, &st, msgs[i], o);
    ctl_fmt_list_end(b, &st);
    char *got = take(b);
    assert_string_equal(got, want);
    free(got);
    evbuffer_free(b);
}

static void check_json(const struct qmsg *m, const struct ctl_fmt_opts *o, const char *want)
{
    struct evbuffer *b = evbuffer_new();
    ctl_fmt_list_json(b, m, o);
    char *got = take(b);
    assert_string_equal(got, want);
    free(got);
    evbuffer_free(b);
}

/* ---- expected Postfix layouts ---- */

#define EXP_SINGLE \
        "----Queue ID----- --Size-- ---Arrival Time---- --Sender/Recipient------\n" \
        "0A1B2C3D4E5F6         1234 Sun Nov 22 02:54:46 alice@example.org\n" \
        "                                               bob@acme.example\n" \
        "\n" \
        "-- 1 Kbytes in 1 Request.\n"

#define EXP_HELD \
        "----Queue ID----- --Size-- ---Arrival Time---- --Sender/Recipient------\n" \
        "0A1B2C3D4E5F6!        1234 Sun Nov 22 02:54:46 alice@example.org\n" \
        "                                               bob@acme.example\n" \
        "\n" \
        "-- 1 Kbytes in 1 Request.\n"

#define EXP_ACTIVE \
        "----Queue ID----- --Size-- ---Arrival Time---- --Sender/Recipient------\n" \
        "0A1B2C3D4E5F6*        1234 Sun Nov 22 02:54:46 alice@example.org\n" \
        "                                               bob@acme.example\n" \
        "\n" \
        "-- 1 Kbytes in 1 Request.\n"

#define EXP_GROUP \
        "----Queue ID----- --Size-- ---Arrival Time---- --Sender/Recipient------\n" \
        "0B00000000001         2048 Sun Nov  1 09:05:03 MAILER-DAEMON\n" \
        "                                               b@acme.example\n" \
        "                                                         (451 4.3.0 try later)\n" \
        "                                               a@acme.example\n" \
        "                                               d@acme.example\n" \
        "                (connect to mx.acme.example[192.0.2.1]:25: Connection refused)\n" \
        "                                               c@acme.example\n" \
        "                                                          (reason unavailable)\n" \
        "                                               f@acme.example\n" \
        "\n" \
        "-- 2 Kbytes in 1 Request.\n"

#define EXP_TWO \
        "----Queue ID----- --Size-- ---Arrival Time---- --Sender/Recipient------\n" \
        "0C00000000001          600 Sun Nov 22 02:54:46 x@example.org\n" \
        "                                               bob@acme.example\n" \
        "\n" \
        "0C00000000002          600 Tue Jan  5 23:00:00 y@example.org\n" \
        "                                               carol@acme.example\n" \
        "\n" \
        "-- 1 Kbytes in 2 Requests.\n"

#define EXP_PARTIAL \
        "----Queue ID----- --Size-- ---Arrival Time---- --Sender/Recipient------\n" \
        "0D00000000001         5000 Sun Nov 22 02:54:46 x@example.org\n" \
        "                                               bob@acme.example\n" \
        "                                                                        (held)\n" \
        "                                               eve@beta.example\n" \
        "\n" \
        "-- 4 Kbytes in 1 Request.\n"

#define EXP_ONLY_ACME \
        "----Queue ID----- --Size-- ---Arrival Time---- --Sender/Recipient------\n" \
        "0D00000000001         5000 Sun Nov 22 02:54:46 x@example.org\n" \
        "                                               bob@acme.example\n" \
        "\n" \
        "-- 4 Kbytes in 1 Request.\n"

#define EXP_ONLY_BETA \
        "----Queue ID----- --Size-- ---Arrival Time---- --Sender/Recipient------\n" \
        "0D00000000001         5000 Sun Nov 22 02:54:46 x@example.org\n" \
        "                                                                        (held)\n" \
        "                                               eve@beta.example\n" \
        "\n" \
        "-- 4 Kbytes in 1 Request.\n"

#define EXP_ALL_BETA \
        "----Queue ID----- --Size-- ---Arrival Time---- --Sender/Recipient------\n" \
        "0D00000000002!        1023 Sun Nov 22 02:54:46 x@example.org\n" \
        "                                               eve@beta.example\n" \
        "                                                                   (451 later)\n" \
        "                                               zed@beta.example\n" \
        "\n" \
        "-- 0 Kbytes in 1 Request.\n"

#define EXP_CTRL \
        "----Queue ID----- --Size-- ---Arrival Time---- --Sender/Recipient------\n" \
        "0E00000000001           10 Sun Nov 22 02:54:46 bad?sender@example.org\n" \
        "                                                            (5?? weird?reason)\n" \
        "                                               a?b@acme.example\n" \
        "\n" \
        "-- 0 Kbytes in 1 Request.\n"

/* ---- list: Postfix layout ---- */

static const struct rspec one_bob[] = { { "bob@acme.example", &acme, QR_QUEUED, NULL, 0 } };

static void test_list_single(void **state)
{
    struct qmsg *m = mk_msg("0A1B2C3D4E5F6", 1606013686, 1234, "alice@example.org", one_bob, 1);
    check_list(&m, 1, NULL, EXP_SINGLE);
    free_msg(m);
}

static void test_list_held_and_active(void **state)
{
    struct qmsg *m = mk_msg("0A1B2C3D4E5F6", 1606013686, 1234, "alice@example.org", one_bob, 1);
    m->held = 1;
    check_list(&m, 1, NULL, EXP_HELD);
    m->active = 1;                  /* being delivered wins, as in Postfix */
    check_list(&m, 1, NULL, EXP_ACTIVE);
    m->held = 0;
    check_list(&m, 1, NULL, EXP_ACTIVE);
    free_msg(m);
}

/* Where each column starts in the header, and that every sender line of a
 * plain, a held ('!') and an active ('*') message puts its size, date and
 * sender at the same places (and every recipient line its address). */
static void test_list_columns_line_up(void **state)
{
    struct qmsg *m[3];
    for (int i = 0; i < 3; i++)
        m[i] = mk_msg(i == 0 ? "0G00000000001" : i == 1 ? "0G00000000002" : "0G00000000003",
                      1606013686, 100 + 1000 * i, "x@example.org", one_bob, 1);
    m[1]->held = 1;
    m[2]->active = 1;
    struct evbuffer *b = evbuffer_new();
    struct ctl_list_state st = { 0 };
    for (int i = 0; i < 3; i++)
        assert_int_equal(ctl_fmt_list_msg(b, &st, m[i], NULL), 1);
    char *text = take(b), *save = NULL, *line;
    const char *head = strtok_r(text, "\n", &save);
    size_t size_end = strstr(head, "--Size--") + 8 - head;
    size_t date_at = strstr(head, "---Arrival Time----") - head;
    size_t from_at = strstr(head, "--Sender/Recipient") - head;
    assert_int_equal(size_end, 26);
    assert_int_equal(date_at, 27);
    assert_int_equal(from_at, 47);
    int senders = 0, rcpts = 0;
    while ((line = strtok_r(NULL, "\n", &save))) {
        if (line[0] != ' ') {           /* "ID[mark]   SIZE DATE SENDER" */
            const char *id = m[senders]->idstr, *mark = senders == 1 ? "!" :
                                                        senders == 2 ? "*" : "";
            char size[16];
            snprintf(size, sizeof size, "%lu", (unsigned long)m[senders]->size);
            assert_memory_equal(line, id, strlen(id));
            assert_memory_equal(line + strlen(id), mark, strlen(mark));
            assert_int_equal(strcspn(line, " "), strlen(id) + strlen(mark));
            assert_memory_equal(line + size_end - strlen(size), size, strlen(size));
            assert_int_equal(line[size_end - strlen(size) - 1], ' ');
            assert_memory_equal(line + date_at, "Sun Nov 22 02:54:46 ", 20);
            assert_string_equal(line + from_at, "x@example.org");
            senders++;
        } else {
            assert_string_equal(line + from_at, "bob@acme.example");
            assert_int_equal(line[from_at - 1], ' ');
            rcpts++;
        }
    }
    assert_int_equal(senders, 3);
    assert_int_equal(rcpts, 3);
    free(text);
    evbuffer_free(b);
    for (int i = 0; i < 3; i++)
        free_msg(m[i]);
}

static void test_list_reasons_grouped(void **state)
{
    static const struct rspec rs[] = {
        { "a@acme.example", &acme, QR_DEFERRED, "451 4.3.0 try later", 0 },
        { "b@acme.example", &acme, QR_QUEUED, NULL, 0 },
        { "c@acme.example", &acme, QR_DEFERRED,
          "connect to mx.acme.example[192.0.2.1]:25: Connection refused", 0 },
        { "d@acme.example", &acme, QR_DEFERRED, "451 4.3.0 try later", 0 },
        { "e@acme.example", &acme, QR_DELIVERED, NULL, 0 },
        { "f@acme.example", &acme, QR_DEFERRED, NULL, 0 },
        { "g@acme.example", &acme, QR_BOUNCED, "550 no", 0 },
    };
    /* null sender shown as MAILER-DAEMON; day of month space-padded */
    struct qmsg *m = mk_msg("0B00000000001", 1604221503, 2048, "", rs, 7);
    check_list(&m, 1, NULL, EXP_GROUP);
    free_msg(m);
}

static void test_list_empty(void **state)
{
    static const struct rspec done[] = { { "x@acme.example", &acme, QR_DELIVERED, NULL, 0 } };
    check_list(NULL, 0, NULL, "Mail queue is empty\n");
    struct qmsg *m = mk_msg("0C00000000009", 1606013686, 100, "a@b.example", done, 1);
    check_list(&m, 1, NULL, "Mail queue is empty\n");  /* nothing pending */
    free_msg(m);
}

static void test_list_requests_and_kbytes(void **state)
{
    static const struct rspec c1[] = { { "carol@acme.example", &acme, QR_QUEUED, NULL, 0 } };
    struct qmsg *m[2];
    m[0] = mk_msg("0C00000000001", 1606013686, 600, "x@example.org", one_bob, 1);
    m[1] = mk_msg("0C00000000002", 1609887600, 600, "y@example.org", c1, 1);
    /* 600 + 600 bytes: 1 Kbyte (rounded down over the sum, not per message) */
    check_list(m, 2, NULL, EXP_TWO);
    free_msg(m[0]);
    free_msg(m[1]);
}

static void test_list_partial_hold_and_filters(void **state)
{
    static const struct rspec rs[] = {
        { "bob@acme.example", &acme, QR_QUEUED, NULL, 0 },
        { "eve@beta.example", &beta, QR_QUEUED, NULL, 0 },
    };
    static const struct rspec bs[] = {
        { "eve@beta.example", &beta, QR_QUEUED, NULL, 0 },
        { "zed@beta.example", &beta, QR_DEFERRED, "451 later", 0 },
    };
    struct qmsg *m = mk_msg("0D00000000001", 1606013686, 5000, "x@example.org", rs, 2);
    struct qmsg *all = mk_msg("0D00000000002", 1606013686, 1023, "x@example.org", bs, 2);
    beta.held = 1;
    check_list(&m, 1, NULL, EXP_PARTIAL);
    struct ctl_fmt_opts o = { .cust = &acme };
    check_list(&m, 1, &o, EXP_ONLY_ACME);
    o = (struct ctl_fmt_opts){ .domain = "BETA.example" };
    check_list(&m, 1, &o, EXP_ONLY_BETA);
    o = (struct ctl_fmt_opts){ .cust = &acme };
    check_list(&all, 1, &o, "Mail queue is empty\n");
    /* every pending recipient held: '!' (no "(held)" lines), deferral
     * reasons still shown as for Postfix's hold queue; 1023 bytes: 0 Kbytes */
    check_list(&all, 1, NULL, EXP_ALL_BETA);
    beta.held = 0;
    free_msg(m);
    free_msg(all);
}

static void test_list_control_chars(void **state)
{
    static const struct rspec rs[] = {
        { "a\tb@acme.example", &acme, QR_DEFERRED, "5\r\n weird\033reason", 0 },
    };
    struct qmsg *m = mk_msg("0E00000000001", 1606013686, 10, "bad\001sender@example.org", rs, 1);
    check_list(&m, 1, NULL, EXP_CTRL);
    free_msg(m);
}

/* ---- list --json ---- */

static int held_beta_domain(const struct qrcpt *r)
{
    return strcmp(r->domain, "beta.example") == 0;
}

static void test_json_message(void **state)
{
    static const struct rspec rs[] = {
        { "bob@acme.example", &acme, QR_QUEUED, NULL, 0 },
        { "c\001t\t@beta.example", &beta, QR_DEFERRED, "caf\xc3\xa9 \xff bad\n", 0 },
        { "ext@remote.example", NULL, QR_DEFERRED, "4.4.1 timeout", 1 },
        { "done@acme.example", &acme, QR_DELIVERED, NULL, 0 },
    };
    struct qmsg *m = mk_msg("0A1B2C3D4E5F6", 1606013686, 1234,
                            "we\"ird\\sender@x.example", rs, 4);
    beta.held = 1;
    check_json(m, NULL,
        "{\"queue_id\":\"0A1B2C3D4E5F6\",\"arrival_time\":1606013686,\"size\":1234,"
        "\"sender\":\"we\\\"ird\\\\sender@x.example\",\"held\":false,\"recipients\":["
        "{\"address\":\"bob@acme.example\",\"domain\":\"acme.example\",\"customer\":\"acme\","
        "\"status\":\"queued\",\"reason\":null},"
        "{\"address\":\"c\\u0001t\\t@beta.example\",\"domain\":\"beta.example\","
        "\"customer\":\"beta\",\"status\":\"held\",\"reason\":\"caf\xc3\xa9 \\ufffd bad\\n\"},"
        "{\"address\":\"ext@remote.example\",\"domain\":\"remote.example\",\"customer\":null,"
        "\"status\":\"deferred\",\"reason\":\"4.4.1 timeout\"}]}\n");
    beta.held = 0;
    /* filtered to one domain; the held predicate comes from the caller */
    struct ctl_fmt_opts o = { .held = held_beta_domain, .domain = "beta.example" };
    check_json(m, &o,
        "{\"queue_id\":\"0A1B2C3D4E5F6\",\"arrival_time\":1606013686,\"size\":1234,"
        "\"sender\":\"we\\\"ird\\\\sender@x.example\",\"held\":false,\"recipients\":["
        "{\"address\":\"c\\u0001t\\t@beta.example\",\"domain\":\"beta.example\","
        "\"customer\":\"beta\",\"status\":\"held\",\"reason\":\"caf\xc3\xa9 \\ufffd bad\\n\"}]}\n");
    free_msg(m);
}

static void test_json_held_null_sender(void **state)
{
    struct qmsg *m = mk_msg("0A1B2C3D4E5F7", 5, 1, "", one_bob, 1);
    m->held = 1;
    check_json(m, NULL,
        "{\"queue_id\":\"0A1B2C3D4E5F7\",\"arrival_time\":5,\"size\":1,\"sender\":\"\","
        "\"held\":true,\"recipients\":[{\"address\":\"bob@acme.example\","
        "\"domain\":\"acme.example\",\"customer\":\"acme\",\"status\":\"held\",\"reason\":null}]}\n");
    struct ctl_fmt_opts o = { .cust = &beta };
    check_json(m, &o, "");          /* nothing selected: no line */
    free_msg(m);
}

static void test_json_strings(void **state)
{
    static const struct { const char *in, *out; } t[] = {
        { "plain", "\"plain\"" },
        { "q\"b\\s/", "\"q\\\"b\\\\s/\"" },
        { "\b\f\n\r\t\001\037\177", "\"\\u0008\\u000c\\n\\r\\t\\u0001\\u001f\\u007f\"" },
        { "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"" },
        { "a\xff" "b", "\"a\\ufffdb\"" },
        { "\xc0\xaf", "\"\\ufffd\\ufffd\"" },               /* overlong '/' */
        { "\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\"" },     /* surrogate */
        { "\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\"" }, /* > U+10FFFF */
        { "\xe2\x82", "\"\\ufffd\\ufffd\"" },                /* truncated */
        { "\x80x", "\"\\ufffdx\"" },                         /* lone continuation */
        { "", "\"\"" },
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        struct evbuffer *b = evbuffer_new();
        ctl_fmt_json_str(b, t[i].in);
        char *got = take(b);
        assert_string_equal(got, t[i].out);
        free(got);
        evbuffer_free(b);
    }
    struct evbuffer *b = evbuffer_new();
    ctl_fmt_json_str(b, NULL);
    char *got = take(b);
    assert_string_equal(got, "null");
    free(got);
    evbuffer_free(b);
}

/* ---- command table ---- */

static void test_req_check(void **state)
{
    static const struct { const char *line; int ok; int argc; unsigned opts; const char *why; } t[] = {
        { "status", 1, 0, 0, NULL },
        { "status\t--json", 1, 0, CTL_OPT_JSON, NULL },
        { "list\t--json\tacme", 1, 1, CTL_OPT_JSON, NULL },
        { "list\tacme\tbeta", 0, 0, 0, "usage: list [CUSTOMER|DOMAIN] [--json]" },
        { "show\t0A1B2C3D4E5F6\t--body", 1, 1, CTL_OPT_BODY, NULL },
        { "show\t--json\t0A1B2C3D4E5F6", 0, 0, 0, "show: unknown option --json" },
        { "show", 0, 0, 0, "usage: show QUEUEID [--body]" },
        { "hold\tacme", 1, 1, 0, NULL },
        { "hold\t", 0, 0, 0, "hold: empty argument" },
        { "delete\tA\tB\tC", 1, 3, 0, NULL },
        { "delete", 0, 0, 0, "usage: delete QUEUEID..." },
        { "frobnicate", 0, 0, 0, "unknown command: frobnicate" },
        { "", 0, 0, 0, "no command given" },
        { "reload\tnow", 0, 0, 0, "usage: reload" },
        { "summary\t-x", 0, 0, 0, "summary: unknown option -x" },
        { "link\tup\t--user\tacme\t192.0.2.1", 1, 2, CTL_OPT_USER, NULL },
        { "link\tdown\t--user\t-x y\t--session\tppp0", 1, 1,
          CTL_OPT_USER | CTL_OPT_SESSION, NULL },
        { "link\tdown\t--user", 0, 0, 0, "link: --user needs a name" },
        { "link\tdown\t--user\t", 0, 0, 0, "link: --user needs a name" },
        { "link\tdown\tacme\t--session", 0, 0, 0, "link: --session needs an id" },
        { "link\tdown\t--user\ta\t--user\tb", 0, 0, 0, "link: --user given twice" },
        { "link\tup\ta\t--session\ts\t--session\ts", 0, 0, 0, "link: --session given twice" },
        { "kick\tacme\t--user\tacme", 0, 0, 0, "kick: unknown option --user" },
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        char *line = strdup(t[i].line), *words[8], why[128] = "";
        int n = 0;
        for (char *p = line; p; ) {
            words[n++] = p;
            if ((p = strchr(p, '\t')))
                *p++ = 0;
        }
        struct ctl_req rq;
        int rc = ctl_req_check(n, words, &rq, why, sizeof why);
        assert_int_equal(rc, t[i].ok ? 0 : -1);
        if (t[i].ok) {
            assert_int_equal(rq.argc, t[i].argc);
            assert_int_equal(rq.opts, t[i].opts);
        } else {
            assert_string_equal(why, t[i].why);
        }
        free(line);
    }
    char *w[] = { "list", "--json", "acme" };
    struct ctl_req rq;
    char why[64];
    assert_int_equal(ctl_req_check(3, w, &rq, why, sizeof why), 0);
    assert_string_equal(rq.argv[0], "acme");
    assert_string_equal(rq.cmd->name, "list");
    assert_null(ctl_cmd_find("frobnicate"));
    assert_non_null(ctl_cmd_find("kick"));
    /* --ttl takes the next word as its value */
    char *l[] = { "link", "up", "--ttl", "2h", "acme", "127.0.0.23" };
    assert_int_equal(ctl_req_check(6, l, &rq, why, sizeof why), 0);
    assert_int_equal(rq.argc, 3);
    assert_string_equal(rq.ttl, "2h");
    assert_string_equal(rq.argv[0], "up");
    assert_string_equal(rq.argv[1], "acme");
    assert_string_equal(rq.argv[2], "127.0.0.23");
    /* --user and --session too, even a value that looks like an option */
    char *l3[] = { "link", "down", "--user", "--help", "--session", "-ppp0" };
    assert_int_equal(ctl_req_check(6, l3, &rq, why, sizeof why), 0);
    assert_int_equal(rq.argc, 1);
    assert_string_equal(rq.user, "--help");
    assert_string_equal(rq.session, "-ppp0");
    assert_null(rq.ttl);
    char *l2[] = { "link", "up", "acme", "--ttl" };
    assert_int_equal(ctl_req_check(4, l2, &rq, why, sizeof why), -1);
    assert_string_equal(why, "link: --ttl needs a duration");
}

/* Every command of the shared table has its handler, at its own index, and
 * a checked request carries that index. */
static void test_cmd_tables(void **state)
{
    unsigned n = 0;
    for (unsigned i = 0; ctl_cmd_at(i); i++) {
        const struct ctl_cmd_spec *c = ctl_cmd_at(i);
        assert_non_null(c->name);
        assert_ptr_equal(ctl_cmd_find(c->name), c);
        assert_non_null(ctl_table_handler((enum ctl_cmd_id)i));
        char name[32], arg[] = "a", arg2[] = "b", *w[] = { name, arg, arg2 };
        snprintf(name, sizeof name, "%s", c->name);
        struct ctl_req rq;
        char why[160];
        assert_int_equal(ctl_req_check(1 + c->min_args, w, &rq, why, sizeof why), 0);
        assert_ptr_equal(rq.cmd, c);
        assert_int_equal(rq.id, i);
        n++;
    }
    assert_int_equal(n, CTL_CMD_COUNT);
    assert_string_equal(ctl_cmd_at(CTL_CMD_KICK)->name, "kick");
    assert_string_equal(ctl_cmd_at(CTL_CMD_STATS)->name, "stats");
}

/* ctl_req_parse: the request line as the server reads it. */
static void parse_line(const char *text, size_t len, int rc, const char *why_want,
                       int argc)
{
    char *line = malloc(len + 1), why[128] = "";
    char **words = calloc(CTL_MAX_WORDS, sizeof *words);
    struct ctl_req rq;
    memcpy(line, text, len);
    line[len] = 0;
    assert_int_equal(ctl_req_parse(line, len, words, &rq, why, sizeof why), rc);
    if (rc == 0)
        assert_int_equal(rq.argc, argc);
    else
        assert_string_equal(why, why_want);
    free(words);
    free(line);
}

static void test_req_parse(void **state)
{
    char *line = strdup("list\tacme\t--json\r"), *words[CTL_MAX_WORDS], why[128];
    struct ctl_req rq;
    assert_int_equal(ctl_req_parse(line, strlen(line), words, &rq, why, sizeof why), 0);
    assert_string_equal(rq.cmd->name, "list");
    assert_string_equal(rq.argv[0], "acme");        /* the one CR at the end dropped */
    assert_int_equal(rq.opts, CTL_OPT_JSON);
    free(line);
    parse_line("status", 6, 0, NULL, 0);
    parse_line("status\r\r", 8, -1, "unknown command: status\r", 0);
    parse_line("reload\0x", 8, -1, "bad request: NUL byte", 0);
    parse_line("", 0, -1, "no command given", 0);
    parse_line("\t", 1, -1, "no command given", 0);
    parse_line("hold\tacme\t", 10, -1, "hold: empty argument", 0);
    /* CTL_MAX_WORDS words at most: the command and 999 queue IDs */
    char *big = malloc(6 + 14 * CTL_MAX_WORDS + 1);
    size_t n = (size_t)sprintf(big, "delete");
    for (int i = 1; i < CTL_MAX_WORDS; i++)
        n += (size_t)sprintf(big + n, "\t0A1B2C3D4E5F6");
    parse_line(big, n, 0, NULL, CTL_MAX_WORDS - 1);
    n += (size_t)sprintf(big + n, "\t0A1B2C3D4E5F6");
    parse_line(big, n, -1, "request has more than 1000 words", 0);
    free(big);
}

/* ---- show ---- */

static void check_headers(const char *msg, size_t len, const char *want, const char *rest)
{
    struct evbuffer *body = evbuffer_new(), *out = evbuffer_new();
    evbuffer_add(body, msg, len);
    ctl_fmt_headers(out, body);
    char *got = take(out), *left = take(body);
    assert_string_equal(got, want);
    assert_string_equal(left, rest);
    free(got);
    free(left);
    evbuffer_free(body);
    evbuffer_free(out);
}

static void test_headers(void **state)
{
#define H(s, w, r) check_headers(s, sizeof s - 1, w, r)
    H("A: b\nC: d\n\nbody\n", "A: b\nC: d\n", "\nbody\n");
    H("A: b\r\n c\r\n\r\nbody\r\n", "A: b\r\n c\r\n", "\r\nbody\r\n");
    H("A: b\r\nno end", "A: b\r\nno end", "");
    H("\nbody only\n", "", "\nbody only\n");
    H("", "", "");
#undef H
}

static void test_show(void **state)
{
    static const struct rspec rs[] = {
        { "bob@acme.example", &acme, QR_DELIVERED, NULL, 0 },
        { "eve@gone.example", NULL, QR_DEFERRED, "451 later", 0 },
        { "pm@isp.example", NULL, QR_QUEUED, NULL, 1 },
    };
    struct qmsg *m = mk_msg("0A1B2C3D4E5F6", 1606013686, 1234, "", rs, 3);
    struct evbuffer *b = evbuffer_new();
    ctl_fmt_show(b, m, NULL);
    char *got = take(b);
    assert_string_equal(got,
        "queue_id: 0A1B2C3D4E5F6\n"
        "arrival: Sun Nov 22 02:54:46 2020 (1606013686)\n"
        "size: 1234\n"
        "sender: MAILER-DAEMON\n"
        "held: no\n"
        "recipient: bob@acme.example customer=acme status=delivered\n"
        "recipient: eve@gone.example customer=(orphan) status=deferred (451 later)\n"
        "recipient: pm@isp.example customer=(outbound) status=queued\n");
    free(got);
    evbuffer_free(b);
    free_msg(m);
}

static void test_show_message(void **state)
{
    struct evbuffer *env = evbuffer_new(), *body = evbuffer_new(), *b = evbuffer_new();
    evbuffer_add_printf(env, "queue_id: 0A1B2C3D4E5F6\n");
    evbuffer_add_printf(body, "A: b\r\n\r\nbody\r\n");
    ctl_fmt_show_message(b, env, body, 0);
    char *got = take(b);
    assert_string_equal(got, "queue_id: 0A1B2C3D4E5F6\n\nA: b\r\n");
    free(got);
    assert_int_equal(evbuffer_get_length(env), 0);
    evbuffer_drain(body, evbuffer_get_length(body));
    evbuffer_add_printf(env, "queue_id: 0A1B2C3D4E5F6\n");
    evbuffer_add_printf(body, "A: b\n\nbody\n");
    ctl_fmt_show_message(b, env, body, 1);
    got = take(b);
    assert_string_equal(got, "queue_id: 0A1B2C3D4E5F6\n\nA: b\n\nbody\n");
    free(got);
    assert_int_equal(evbuffer_get_length(body), 0);
    evbuffer_free(env);
    evbuffer_free(body);
    evbuffer_free(b);
}

/* ---- one-line answers, kick, link, links ---- */

static void test_done_lines(void **state)
{
    struct evbuffer *b = evbuffer_new();
    ctl_fmt_done(b, "held", "acme");
    ctl_fmt_done(b, "deleted", "2 messages");
    ctl_fmt_done(b, "reloaded", NULL);
    ctl_fmt_bounced(b, 0);
    ctl_fmt_bounced(b, 1);
    ctl_fmt_bounced(b, 2);
    char *got = take(b);
    assert_string_equal(got,
        "held acme\n"
        "deleted 2 messages\n"
        "reloaded\n"
        "bounced 0 messages\n"
        "bounced 1 message\n"
        "bounced 2 messages\n");
    free(got);
    evbuffer_free(b);
}

static void test_kick(void **state)
{
    struct deliver_kick_result v4 = { .messages = 3, .address = "192.0.2.1", .port = 25 };
    struct deliver_kick_result v6 = { .messages = 1, .address = "2001:db8::1", .port = 2526,
                                   .already = 1 };
    struct deliver_kick_result host = { .messages = 0, .address = "mx.acme.example", .port = 25 };
    struct evbuffer *b = evbuffer_new();
    ctl_fmt_kick(b, "acme", &v4, 0);
    ctl_fmt_kick(b, "acme", &v6, 0);
    ctl_fmt_kick(b, "acme", &host, 0);
    ctl_fmt_kick(b, "acme", &v4, 1);
    ctl_fmt_kick(b, "acme", &v6, 1);
    char *got = take(b);
    assert_string_equal(got,
        "kicked acme: 3 messages to 192.0.2.1:25\n"
        "kicked acme: 1 messages to [2001:db8::1]:2526 (delivery already running)\n"
        "kicked acme: 0 messages to mx.acme.example:25\n"
        "{\"customer\":\"acme\",\"messages\":3,\"address\":\"192.0.2.1\",\"port\":25}\n"
        "{\"customer\":\"acme\",\"messages\":1,\"address\":\"2001:db8::1\",\"port\":2526}\n");
    free(got);
    evbuffer_free(b);
}

static void test_link_done(void **state)
{
    struct evbuffer *b = evbuffer_new();
    ctl_fmt_link_done(b, 1, "acme", "192.0.2.1");
    ctl_fmt_link_done(b, 1, "fixed", "");
    ctl_fmt_link_done(b, 0, "acme", "192.0.2.1");
    char *got = take(b);
    assert_string_equal(got,
        "link up acme at 192.0.2.1\n"
        "link up fixed at (fixed host)\n"
        "link down acme\n");
    free(got);
    evbuffer_free(b);
}

static void test_links(void **state)
{
    struct link up = { .customer = "acme", .up = 1, .address = "192.0.2.1",
                       .since = 1606013686, .expires = 1606017286, .source = LINK_SRC_KICKQ };
    struct link down = { .customer = "beta", .up = 0, .address = "2001:db8::1",
                         .since = 1606013686, .expires = 1606017286,
                         .source = LINK_SRC_EXPIRY, .session = "s1" };
    struct link never = { .customer = "gamma" };
    struct link forever = { .customer = "delta", .up = 1, .address = "192.0.2.9",
                            .since = 1606013686, .source = LINK_SRC_RADIUS,
                            .session = "a\"b" };
    struct evbuffer *b = evbuffer_new();
    ctl_fmt_links_head(b);
    ctl_fmt_link(b, &up, 0);
    ctl_fmt_link(b, &down, 0);
    ctl_fmt_link(b, &never, 0);
    char *got = take(b);
    assert_string_equal(got,
        "CUSTOMER             STATE ADDRESS                                 SINCE                EXPIRES              SOURCE   SESSION\n"
        "acme                 up    192.0.2.1                               2020-11-22T02:54:46  2020-11-22T03:54:46  kickq    -\n"
        "beta                 down  2001:db8::1                             2020-11-22T02:54:46  -                    expiry   s1\n"
        "gamma                down  -                                       -                    -                    -        -\n");
    free(got);
    ctl_fmt_link(b, &up, 1);
    ctl_fmt_link(b, &down, 1);
    ctl_fmt_link(b, &never, 1);
    ctl_fmt_link(b, &forever, 1);
    got = take(b);
    assert_string_equal(got,
        "{\"customer\":\"acme\",\"state\":\"up\",\"address\":\"192.0.2.1\",\"since\":1606013686,"
        "\"expires\":1606017286,\"source\":\"kickq\",\"session\":null}\n"
        "{\"customer\":\"beta\",\"state\":\"down\",\"address\":\"2001:db8::1\",\"since\":1606013686,"
        "\"expires\":null,\"source\":\"expiry\",\"session\":\"s1\"}\n"
        "{\"customer\":\"gamma\",\"state\":\"down\",\"address\":null,\"since\":0,"
        "\"expires\":null,\"source\":null,\"session\":null}\n"
        "{\"customer\":\"delta\",\"state\":\"up\",\"address\":\"192.0.2.9\",\"since\":1606013686,"
        "\"expires\":null,\"source\":\"radius\",\"session\":\"a\\\"b\"}\n");
    free(got);
    evbuffer_free(b);
}

/* ---- status, summary, shape ---- */

static void test_status(void **state)
{
    struct evbuffer *b = evbuffer_new();
    ctl_fmt_status(b, "0.1.0", 4242, 17, 3, 0);
    ctl_fmt_status(b, "0.1.0", 4242, 17, 3, 1);
    char *got = take(b);
    assert_string_equal(got,
        "kickmaild 0.1.0 running, pid 4242, up 17 s, 3 messages\n"
        "{\"status\":\"running\",\"version\":\"0.1.0\",\"pid\":4242,\"uptime\":17,\"messages\":3}\n");
    free(got);
    evbuffer_free(b);
}

static void test_summary(void **state)
{
    static const char *const dom[] = { "acme.example", "acme.co.uk" };
    static const struct rspec o1[] = { { "x@far.example", NULL, QR_QUEUED, NULL, 1 },
                                       { "y@near.example", NULL, QR_DEFERRED, "t", 1 } };
    static const struct rspec o2[] = { { "z@far.example", NULL, QR_QUEUED, NULL, 1 } };
    struct qmsg *m1 = mk_msg("0F00000000001", 1000, 300, "a@b.example", o1, 2);
    struct qmsg *m2 = mk_msg("0F00000000002", 900, 200, "a@b.example", o2, 1);
    struct qrcpt_list l = TAILQ_HEAD_INITIALIZER(l);
    TAILQ_INSERT_TAIL(&l, &m1->rcpts[0], link);
    TAILQ_INSERT_TAIL(&l, &m1->rcpts[1], link);
    TAILQ_INSERT_TAIL(&l, &m2->rcpts[0], link);
    struct ctl_sum_row rows[3] = {
        { .name = "acme", .ndomains = 2, .domains = dom, .messages = 2, .bytes = 3000,
          .oldest = 10000 - 3700, .link = { .state = "down" } },
        { .name = "beta", .held = 1, .link = { .state = "down" } },
    };
    ctl_sum_from_list(&rows[2], "(orphan)", &l, 1);
    assert_int_equal(rows[2].messages, 2);
    assert_int_equal(rows[2].bytes, 500);
    assert_int_equal(rows[2].oldest, 900);
    assert_int_equal(rows[2].ndomains, 2);
    struct evbuffer *b = evbuffer_new();
    ctl_fmt_summary(b, rows, 3, 10000, 1);
    char *got = take(b);
    assert_string_equal(got,
        "{\"customer\":\"acme\",\"domains\":[\"acme.example\",\"acme.co.uk\"],\"messages\":2,"
        "\"bytes\":3000,\"oldest_age\":3700,\"held\":false,\"link\":{\"state\":\"down\","
        "\"address\":null,\"since\":null,\"expires\":null,\"source\":null}}\n"
        "{\"customer\":\"beta\",\"domains\":[],\"messages\":0,\"bytes\":0,\"oldest_age\":0,"
        "\"held\":true,\"link\":{\"state\":\"down\",\"address\":null,\"since\":null,"
        "\"expires\":null,\"source\":null}}\n"
        "{\"customer\":\"(orphan)\",\"domains\":[\"far.example\",\"near.example\"],"
        "\"messages\":2,\"bytes\":500,\"oldest_age\":9100,\"held\":false,\"link\":"
        "{\"state\":\"down\",\"address\":null,\"since\":null,\"expires\":null,\"source\":null}}\n");
    free(got);
    ctl_fmt_summary(b, rows, 3, 10000, 0);
    got = take(b);
    assert_string_equal(got,
        "CUSTOMER  DOMAINS                   MESSAGES  BYTES  OLDEST  LINK  ADDRESS  SINCE  SOURCE\n"
        "acme      acme.example,acme.co.uk          2   3000   1h01m  down  -        -      -\n"
        "beta!     -                                0      0       -  down  -        -      -\n"
        "(orphan)  far.example,near.example         2    500   2h31m  down  -        -      -\n");
    free(got);
    evbuffer_free(b);
    ctl_sum_row_clear(&rows[2]);
    free_msg(m1);
    free_msg(m2);
}

static void test_shape(void **state)
{
    static const struct rspec rs[] = {
        { "a@acme.example", &acme, QR_QUEUED, NULL, 0 },
        { "b@ACME.example", &acme, QR_DEFERRED, "x", 0 },
        { "c@beta.example", &beta, QR_QUEUED, NULL, 0 },
        { "d@beta.example", &beta, QR_DELIVERED, NULL, 0 },
    };
    struct qmsg *young = mk_msg("0G00000000001", 100000 - 60, 1, "", rs, 4);
    struct qmsg *old = mk_msg("0G00000000002", 100000 - 2 * 86400, 1, "", rs + 2, 1);
    struct ctl_shape *sh = ctl_shape_new(100000);
    ctl_shape_add_msg(sh, young, NULL);
    ctl_shape_add_msg(sh, old, NULL);
    struct evbuffer *b = evbuffer_new();
    ctl_fmt_shape(b, sh);
    char *got = take(b);
    assert_string_equal(got,
        "             T 5 10 20 40 80 160 320 640 1280 1280+\n"
        "       TOTAL 4 3  0  0  0  0   0   0   0    0     1\n"
        "acme.example 2 2  0  0  0  0   0   0   0    0     0\n"
        "beta.example 2 1  0  0  0  0   0   0   0    0     1\n");
    free(got);
    evbuffer_free(b);
    ctl_shape_free(sh);
    free_msg(young);
    free_msg(old);
}

static void test_asctime(void **state)
{
    char buf[CTL_ASCTIME_LEN];
    ctl_fmt_asctime(1604221503, buf);
    assert_string_equal(buf, "Sun Nov  1 09:05:03 2020");
    ctl_fmt_asctime(0, buf);
    assert_string_equal(buf, "Thu Jan  1 00:00:00 1970");
}

int main(void)
{
    setenv("TZ", "UTC", 1);
    tzset();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_single),
        cmocka_unit_test(test_list_held_and_active),
        cmocka_unit_test(test_list_columns_line_up),
        cmocka_unit_test(test_list_reasons_grouped),
        cmocka_unit_test(test_list_empty),
        cmocka_unit_test(test_list_requests_and_kbytes),
        cmocka_unit_test(test_list_partial_hold_and_filters),
        cmocka_unit_test(test_list_control_chars),
        cmocka_unit_test(test_json_message),
        cmocka_unit_test(test_json_held_null_sender),
        cmocka_unit_test(test_json_strings),
        cmocka_unit_test(test_req_check),
        cmocka_unit_test(test_cmd_tables),

        cmocka_unit_test(test_req_parse),
        cmocka_unit_test(test_headers),
        cmocka_unit_test(test_show),
        cmocka_unit_test(test_show_message),
        cmocka_unit_test(test_done_lines),
        cmocka_unit_test(test_kick),
        cmocka_unit_test(test_link_done),
        cmocka_unit_test(test_links),
        cmocka_unit_test(test_status),
        cmocka_unit_test(test_summary),
        cmocka_unit_test(test_shape),
        cmocka_unit_test(test_asctime),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

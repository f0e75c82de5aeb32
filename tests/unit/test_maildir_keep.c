/*
 * test_maildir_keep — keep mode: the kickmail-retrieved parser (a table of
 * good and bad lines, and a file torn at every byte), first retrievals
 * recorded once, lines of vanished messages dropped, the file replaced only
 * when it changes, a failed write leaving the old file and no temporary,
 * and expiry at the boundary (time passed in).
 */
#include "maildir_fixture.h"

#include <signal.h>
#include <sys/resource.h>

#include "../../src/maildir/maildir_int.h"

#define U1 "0123456789abcdef0123456789abcdef"
#define U2 "fedcba9876543210fedcba9876543210"
#define U3 "00000000000000000000000000000000"

static const struct {
    const char *name, *text;
    size_t len;                 /* 0: strlen(text) */
    size_t entries, skipped;
    long long when1;            /* time of U1 when present, else -1 */
} parse_rows[] = {
    { "empty",          "",                                 0, 0, 0, -1 },
    { "one",            U1 " 100\n",                        0, 1, 0, 100 },
    { "two",            U2 " 5\n" U1 " 7\n",                0, 2, 0, 7 },
    { "zero time",      U1 " 0\n",                          0, 1, 0, 0 },
    { "18 digits",      U1 " 999999999999999999\n",         0, 1, 0, 999999999999999999LL },
    { "19 digits",      U1 " 9999999999999999999\n",        0, 0, 1, -1 },
    { "dup: earliest",  U1 " 300\n" U1 " 200\n" U1 " 400\n", 0, 1, 0, 200 },
    { "torn last",      U1 " 100\n" U2 " 12",               0, 1, 1, 100 },
    { "torn uidl",      U1 " 100\n0123",                    0, 1, 1, 100 },
    { "upper hex",      "0123456789ABCDEF0123456789ABCDEF 1\n", 0, 0, 1, -1 },
    { "31 hex",         "0123456789abcdef0123456789abcde 1\n", 0, 0, 1, -1 },
    { "33 hex",         U1 "0 1\n",                         0, 0, 1, -1 },
    { "no space",       U1 "1\n",                           0, 0, 1, -1 },
    { "two spaces",     U1 "  1\n",                         0, 0, 1, -1 },
    { "no time",        U1 " \n",                           0, 0, 1, -1 },
    { "trailing space", U1 " 1 \n",                         0, 0, 1, -1 },
    { "negative",       U1 " -1\n",                         0, 0, 1, -1 },
    { "crlf",           U1 " 1\r\n",                        0, 0, 1, -1 },
    { "letters",        U1 " 12x\n",                        0, 0, 1, -1 },
    { "empty lines",    "\n\n" U1 " 1\n\n",                 0, 1, 3, 1 },
    { "garbage around", "hello world\n" U1 " 9\n\x01\x02\xff\n", 0, 1, 2, 9 },
    { "nul inside",     U1 " 1\0" "2\n" U2 " 3\n",          0, 1, 1, -1 },
};

static void test_parse_table(void **state)
{
    for (size_t i = 0; i < sizeof parse_rows / sizeof parse_rows[0]; i++) {
        struct maildir_retrieved t = { 0 };
        size_t len = parse_rows[i].len ? parse_rows[i].len : strlen(parse_rows[i].text);
        if (strcmp(parse_rows[i].name, "nul inside") == 0)
            len = 32 + 5 + 32 + 3;
        size_t skipped = maildir_retrieved_parse(parse_rows[i].text, len, &t);
        struct maildir_retrieved_entry *e = maildir_retrieved_find(&t, U1);
        if (t.n != parse_rows[i].entries || skipped != parse_rows[i].skipped ||
            (parse_rows[i].when1 < 0) != (e == NULL) ||
            (e && (long long)e->when != parse_rows[i].when1))
            fail_msg("%s: %zu entries, %zu skipped, U1 %lld", parse_rows[i].name, t.n,
                     skipped, e ? (long long)e->when : -1LL);
        for (size_t k = 1; k < t.n; k++)        /* sorted, each once */
            assert_true(strcmp(t.e[k - 1].uidl, t.e[k].uidl) < 0);
        maildir_retrieved_free(&t);
    }
}

/* A file cut after any byte: exactly its complete lines count. */
static void test_parse_torn_everywhere(void **state)
{
    static const char text[] = U1 " 100\n" U2 " 2000\n" U3 " 30000\n";
    size_t ends[3] = { 37, 37 + 38, 37 + 38 + 39 };
    assert_int_equal(strlen(text), ends[2]);
    for (size_t k = 0; k <= ends[2]; k++) {
        struct maildir_retrieved t = { 0 };
        size_t want = (k >= ends[0]) + (k >= ends[1]) + (k >= ends[2]);
        size_t skipped = maildir_retrieved_parse(text, k, &t);
        assert_int_equal(t.n, want);
        assert_int_equal(skipped, (k == 0 || k == ends[0] || k == ends[1] || k == ends[2]) ? 0 : 1);
        if (want >= 1)
            assert_int_equal(maildir_retrieved_find(&t, U1)->when, 100);
        if (want >= 2)
            assert_int_equal(maildir_retrieved_find(&t, U2)->when, 2000);
        if (want >= 3)
            assert_int_equal(maildir_retrieved_find(&t, U3)->when, 30000);
        maildir_retrieved_free(&t);
    }
    struct maildir_retrieved t = { 0 };
    maildir_retrieved_parse(text, ends[2], &t);
    assert_null(maildir_retrieved_find(&t, "0123"));
    assert_null(maildir_retrieved_find(&t, "ffffffffffffffffffffffffffffffff"));
    maildir_retrieved_free(&t);
}

/* The file as a table (empty when missing). */
static void read_table(const char *dir, struct maildir_retrieved *t)
{
    char *text;
    size_t len;
    memset(t, 0, sizeof *t);
    text = get_file(at(dir, MAILDIR_RETRIEVED), &len);
    if (text) {
        assert_int_equal(maildir_retrieved_parse(text, len, t), 0);
        free(text);
    }
}

static long long when_of(const char *dir, const char *uidl)
{
    struct maildir_retrieved t;
    struct maildir_retrieved_entry *e;
    long long w;
    read_table(dir, &t);
    e = maildir_retrieved_find(&t, uidl);
    w = e ? (long long)e->when : -1;
    maildir_retrieved_free(&t);
    return w;
}

/* Three messages delivered into dir; their UIDLs into u[3] (oldest first). */
static void three(const char *dir, char u[3][MAILDIR_UIDL_LEN + 1])
{
    char name[256], why[256];
    struct maildir_list l;
    for (int i = 0; i < 3; i++)
        deliver_text(dir, "m\r\n", name, sizeof name);
    assert_int_equal(maildir_scan(dir, &l, why, sizeof why), 0);
    assert_int_equal(l.n, 3);
    for (int i = 0; i < 3; i++)
        memcpy(u[i], l.msgs[i].uidl, MAILDIR_UIDL_LEN + 1);
    maildir_list_free(&l);
}

static ino_t inode_of(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_ino;
}

static void test_retrieved_add(void **state)
{
    char dir[4096], why[256] = "", u[3][MAILDIR_UIDL_LEN + 1];
    mkpath(dir, *state, "md");
    three(dir, u);
    const char *first[] = { u[0], u[1] };
    assert_int_equal(maildir_retrieved_add(dir, first, 2, 1000, why, sizeof why), 0);
    assert_int_equal(when_of(dir, u[0]), 1000);
    assert_int_equal(when_of(dir, u[1]), 1000);
    assert_int_equal(when_of(dir, u[2]), -1);
    /* again, with the third, a repeat, junk and a UIDL of no message */
    const char *second[] = { u[1], u[2], u[2], "junk", NULL, U3 };
    assert_int_equal(maildir_retrieved_add(dir, second, 6, 2000, why, sizeof why), 0);
    assert_int_equal(when_of(dir, u[0]), 1000);         /* the first counts */
    assert_int_equal(when_of(dir, u[1]), 1000);
    assert_int_equal(when_of(dir, u[2]), 2000);
    assert_int_equal(when_of(dir, U3), -1);             /* no such message */
    char *text = get_file(at(dir, MAILDIR_RETRIEVED), NULL);
    assert_int_equal(strlen(text), 3 * 38);
    free(text);
    /* nothing new: the file is not rewritten */
    ino_t ino = inode_of(at(dir, MAILDIR_RETRIEVED));
    assert_int_equal(maildir_retrieved_add(dir, first, 2, 3000, why, sizeof why), 0);
    assert_int_equal(maildir_retrieved_add(dir, NULL, 0, 3000, why, sizeof why), 0);
    assert_true(inode_of(at(dir, MAILDIR_RETRIEVED)) == ino);
    /* a message removed by a client: its line goes at the next write */
    struct maildir_list l;
    assert_int_equal(maildir_scan(dir, &l, why, sizeof why), 0);
    assert_int_equal(maildir_remove(dir, &l.msgs[0], why, sizeof why), 0);
    maildir_list_free(&l);
    assert_int_equal(maildir_retrieved_add(dir, NULL, 0, 4000, why, sizeof why), 0);
    assert_int_equal(when_of(dir, u[0]), -1);
    assert_int_equal(when_of(dir, u[1]), 1000);
    assert_true(inode_of(at(dir, MAILDIR_RETRIEVED)) != ino);
    /* no temporary file left: tmp, new, cur and the file */
    assert_int_equal(count_entries(dir), 4);
}

static void test_retrieved_garbage(void **state)
{
    char dir[4096], why[256] = "", u[3][MAILDIR_UIDL_LEN + 1], text[256];
    mkpath(dir, *state, "md");
    three(dir, u);
    int n = snprintf(text, sizeof text, "garbage\n%s 77\n\x01\x02\n%s 5", u[1], u[2]);
    put_file(at(dir, MAILDIR_RETRIEVED), text, (size_t)n);
    const char *one[] = { u[0] };
    assert_int_equal(maildir_retrieved_add(dir, one, 1, 500, why, sizeof why), 0);
    assert_int_equal(when_of(dir, u[0]), 500);
    assert_int_equal(when_of(dir, u[1]), 77);
    assert_int_equal(when_of(dir, u[2]), -1);           /* it was torn */
    char *got = get_file(at(dir, MAILDIR_RETRIEVED), NULL);
    assert_null(strstr(got, "garbage"));
    free(got);
    /* a file that cannot be read is an error, not an empty table */
    assert_int_equal(unlink(at(dir, MAILDIR_RETRIEVED)), 0);
    assert_int_equal(mkdir(at(dir, MAILDIR_RETRIEVED), 0700), 0);
    assert_int_equal(maildir_retrieved_add(dir, one, 1, 600, why, sizeof why), -1);
    assert_non_null(strstr(why, MAILDIR_RETRIEVED));
    size_t removed = 9;
    assert_int_equal(maildir_expire(dir, 10, 600, &removed, why, sizeof why), -1);
    assert_int_equal(removed, 0);
}

/* A failed write (RLIMIT_FSIZE: write gets EFBIG) keeps the old file and
 * leaves no temporary file. */
static void test_retrieved_write_fails(void **state)
{
    char dir[4096], why[256] = "", u[3][MAILDIR_UIDL_LEN + 1];
    struct rlimit old, low;
    int rc;
    mkpath(dir, *state, "md");
    three(dir, u);
    const char *one[] = { u[0] }, *rest[] = { u[1], u[2] };
    assert_int_equal(maildir_retrieved_add(dir, one, 1, 100, why, sizeof why), 0);
    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    low = old;
    low.rlim_cur = 50;              /* room for one line, not three */
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &low), 0);
    rc = maildir_retrieved_add(dir, rest, 2, 200, why, sizeof why);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, SIG_DFL);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(why, "File too large"));
    assert_int_equal(when_of(dir, u[0]), 100);
    assert_int_equal(when_of(dir, u[1]), -1);
    assert_int_equal(count_entries(dir), 4);
}

static void test_expire(void **state)
{
    char dir[4096], why[256] = "", u[3][MAILDIR_UIDL_LEN + 1];
    struct maildir_list l;
    size_t removed = 99;
    mkpath(dir, *state, "md");
    three(dir, u);
    /* nothing retrieved yet: nothing expires, no file is made */
    assert_int_equal(maildir_expire(dir, 0, 1 << 30, &removed, why, sizeof why), 0);
    assert_int_equal(removed, 0);
    assert_int_equal(access(at(dir, MAILDIR_RETRIEVED), F_OK), -1);
    const char *a[] = { u[0] }, *b[] = { u[1] };
    assert_int_equal(maildir_retrieved_add(dir, a, 1, 1000, why, sizeof why), 0);
    assert_int_equal(maildir_retrieved_add(dir, b, 1, 4000, why, sizeof why), 0);
    /* keep 2000 s at 6000: the cut is 4000; retrieved at 4000 stays */
    assert_int_equal(maildir_expire(dir, 2000, 6000, &removed, why, sizeof why), 0);
    assert_int_equal(removed, 1);
    assert_int_equal(maildir_scan(dir, &l, why, sizeof why), 0);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.msgs[0].uidl, u[1]);
    assert_string_equal(l.msgs[1].uidl, u[2]);          /* never retrieved */
    maildir_list_free(&l);
    assert_int_equal(when_of(dir, u[0]), -1);
    assert_int_equal(when_of(dir, u[1]), 4000);
    /* one second later it goes */
    assert_int_equal(maildir_expire(dir, 2000, 6001, &removed, why, sizeof why), 0);
    assert_int_equal(removed, 1);
    assert_int_equal(maildir_scan(dir, &l, why, sizeof why), 0);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.msgs[0].uidl, u[2]);
    maildir_list_free(&l);
    char *text = get_file(at(dir, MAILDIR_RETRIEVED), NULL);
    assert_string_equal(text, "");
    free(text);
    /* a line whose message vanished is dropped even when nothing expires */
    const char *c[] = { u[2] };
    assert_int_equal(maildir_retrieved_add(dir, c, 1, 7000, why, sizeof why), 0);
    assert_int_equal(maildir_scan(dir, &l, why, sizeof why), 0);
    assert_int_equal(unlink(at(dir, l.msgs[0].file)), 0);
    maildir_list_free(&l);
    assert_int_equal(when_of(dir, u[2]), 7000);
    assert_int_equal(maildir_expire(dir, 100000, 7001, NULL, why, sizeof why), 0);
    assert_int_equal(when_of(dir, u[2]), -1);
    assert_int_equal(count_entries(dir), 4);
}

/* Keep time 0 (or negative): everything retrieved before now goes. */
static void test_expire_zero(void **state)
{
    char dir[4096], why[256] = "", u[3][MAILDIR_UIDL_LEN + 1];
    size_t removed;
    mkpath(dir, *state, "md");
    three(dir, u);
    const char *all[] = { u[0], u[1], u[2] };
    assert_int_equal(maildir_retrieved_add(dir, all, 3, 50, why, sizeof why), 0);
    assert_int_equal(maildir_expire(dir, 0, 50, &removed, why, sizeof why), 0);
    assert_int_equal(removed, 0);
    assert_int_equal(maildir_expire(dir, -5, 51, &removed, why, sizeof why), 0);
    assert_int_equal(removed, 3);
    assert_int_equal(count_entries(at(dir, "new")), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_table),
        cmocka_unit_test(test_parse_torn_everywhere),
        cmocka_unit_test_setup_teardown(test_retrieved_add, tdir_setup, tdir_teardown),
        cmocka_unit_test_setup_teardown(test_retrieved_garbage, tdir_setup, tdir_teardown),
        cmocka_unit_test_setup_teardown(test_retrieved_write_fails, tdir_setup, tdir_teardown),
        cmocka_unit_test_setup_teardown(test_expire, tdir_setup, tdir_teardown),
        cmocka_unit_test_setup_teardown(test_expire_zero, tdir_setup, tdir_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

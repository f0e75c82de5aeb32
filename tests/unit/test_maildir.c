/*
 * test_maildir — where maildrops live (maildir_path: a table of good and
 * bad names), making them (maildir_create) and delivering into them
 * (maildir_deliver): line ends converted whatever the evbuffer's chains,
 * ,S= and ,W= equal to the file's sizes, unique names, the host escaped,
 * and the failure paths (permanent: a regular file in the way; temporary:
 * no file descriptor left, a full file system, a read-only one) leaving
 * nothing in tmp/ or new/.
 */
#include "maildir_fixture.h"

#include <sys/mount.h>
#include <sys/resource.h>

#include "../../src/maildir/maildir_int.h"

static const struct {
    const char *drop;
    const char *want;           /* NULL: refused */
} path_rows[] = {
    { "alice@isp.example",          "R/isp.example/alice" },
    { "acme",                       "R/acme" },
    { "my_cust-1",                  "R/my_cust-1" },
    { "a+tag.x=y@isp.example",      "R/isp.example/a+tag.x=y" },
    { "a..b@isp.example",           "R/isp.example/a..b" },
    { "\"john doe\"@isp.example",   "R/isp.example/\"john doe\"" },
    { "Alice@ISP.example",          "R/ISP.example/Alice" },   /* case: the caller's */
    { "",                           NULL },
    { "..",                         NULL },
    { ".",                          NULL },
    { "../x",                       NULL },
    { "a/b",                        NULL },
    { ".hidden",                    NULL },
    { "isp.example",                NULL },     /* a domain's directory */
    { "../x@isp.example",           NULL },
    { "..@isp.example",             NULL },
    { ".x@isp.example",             NULL },
    { "a/b@isp.example",            NULL },
    { "x@a/b",                      NULL },
    { "x@..",                       NULL },
    { "x@.isp.example",             NULL },
    { "x@../etc",                   NULL },
    { "a@b@c",                      NULL },
    { "@isp.example",               NULL },
    { "x@",                         NULL },
    { "@",                          NULL },
    { "a\nb@isp.example",           NULL },
    { "a\tb@isp.example",           NULL },
    { "a\x7f@isp.example",          NULL },
    { "x@isp.example\r",            NULL },
    { "\"a/b\"@isp.example",        NULL },
    { "\xc3\xa9@isp.example",       NULL },     /* non-ASCII */
};

static void test_path_table(void **state)
{
    char out[512];
    for (size_t i = 0; i < sizeof path_rows / sizeof path_rows[0]; i++) {
        int rc = maildir_path("R", path_rows[i].drop, out, sizeof out);
        if (!path_rows[i].want && rc != -1)
            fail_msg("row %zu \"%s\": accepted as %s", i, path_rows[i].drop, out);
        if (path_rows[i].want && (rc != 0 || strcmp(out, path_rows[i].want) != 0))
            fail_msg("row %zu \"%s\": rc %d, %s", i, path_rows[i].drop, rc, rc ? "" : out);
    }
}

static void test_path_bounds(void **state)
{
    char longlocal[300], big[600], out[64];
    memset(longlocal, 'a', sizeof longlocal);
    strcpy(longlocal + 256, "@isp.example");            /* 256-byte local part */
    assert_int_equal(maildir_path("/r", longlocal, big, sizeof big), -1);
    strcpy(longlocal + 255, "@isp.example");            /* 255: a name's limit */
    assert_int_equal(maildir_path("/r", longlocal, big, sizeof big), 0);
    assert_int_equal(strlen(big), 3 + 11 + 1 + 255);     /* /r/isp.example/a... */
    /* out too small: refused, out is an empty string */
    assert_int_equal(maildir_path("/r", "alice@isp.example", out, 10), -1);
    assert_string_equal(out, "");
    assert_int_equal(maildir_path("/r", "alice@isp.example", out, 21), 0);
    assert_string_equal(out, "/r/isp.example/alice");
    assert_int_equal(maildir_path("/r", "alice@isp.example", out, 20), -1);   /* no room for NUL */
    assert_int_equal(maildir_path("", "alice@isp.example", out, sizeof out), -1);
    assert_int_equal(maildir_path(NULL, "acme", out, sizeof out), -1);
    assert_int_equal(maildir_path("/r", NULL, out, sizeof out), -1);
}

static void test_create(void **state)
{
    const char *t = *state;
    char why[256] = "";
    struct stat st;
    char dir[4096];
    mkpath(dir, t, "root/isp.example/alice");
    assert_int_equal(maildir_create(dir, why, sizeof why), 0);
    static const char *const subs[] = { "", "/tmp", "/new", "/cur" };
    for (int i = 0; i < 4; i++) {
        char p[4096];
        snprintf(p, sizeof p, "%s%s", dir, subs[i]);
        assert_int_equal(stat(p, &st), 0);
        assert_true(S_ISDIR(st.st_mode));
        assert_int_equal(st.st_mode & 0777, 0700);
    }
    /* again: existing ones kept, with their contents */
    put_file(at(dir, "new/x"), "x\n", 2);
    assert_int_equal(maildir_create(dir, why, sizeof why), 0);
    assert_int_equal(count_entries(at(dir, "new")), 1);
    /* a regular file in the way, as the maildir or as one of its parts */
    put_file(at(t, "file"), "", 0);
    assert_int_equal(maildir_create(at(t, "file"), why, sizeof why), -1);
    assert_non_null(strstr(why, "Not a directory"));
    assert_int_equal(maildir_create(at(t, "file/sub"), why, sizeof why), -1);
    assert_int_equal(mkdir(at(t, "m2"), 0700), 0);
    put_file(at(t, "m2/cur"), "", 0);
    assert_int_equal(maildir_create(at(t, "m2"), why, sizeof why), -1);
    assert_non_null(strstr(why, "cur"));
}

/*
 * Line ends: in = prefix + body, out = the file on disk, w = its ,W=.
 */
static const struct {
    const char *name, *prefix, *body, *out;
    unsigned w;
} conv_rows[] = {
    { "crlf lines",      "", "a\r\nb\r\n",            "a\nb\n",           6 },
    { "lone cr stays",   "", "a\rb\r\n",              "a\rb\n",           5 },
    { "cr cr lf",        "", "x\r\r\ny\r\n",          "x\r\ny\n",         6 },
    { "no final eol",    "", "a\r\nabc",              "a\nabc\n",         8 },
    { "final cr alone",  "", "abc\r",                 "abc\n",            5 },
    { "bare lf",         "", "a\nb\n",                "a\nb\n",           6 },
    { "empty",           "", "",                      "",                 0 },
    { "only crlf",       "", "\r\n",                  "\n",               2 },
    { "blank lines",     "", "\r\n\r\n\r\n",          "\n\n\n",           6 },
    { "crlf prefix",     "Return-Path: <a@b>\r\nDelivered-To: c@d\r\n",
      "Subject: s\r\n\r\nhi\r\n",
      "Return-Path: <a@b>\nDelivered-To: c@d\nSubject: s\n\nhi\n",        57 },
    { "lf prefix",       "X-A: 1\nX-B: 2\n", "S: x\r\n\r\nb\r\n",
      "X-A: 1\nX-B: 2\nS: x\n\nb\n",                                       27 },
    { "cr ends prefix",  "X: 1\r", "\nb\r\n",         "X: 1\nb\n",        9 },
    { "prefix, no body", "X: 1\r\n", "",              "X: 1\n",           6 },
};

/* The body of row r as evbuffer chains: mode 0 one evbuffer_add; 1 one
 * reference chain per byte; 2 two reference chains split at k; 3 several
 * evbuffers of 1..3 bytes moved in with evbuffer_add_buffer. */
static struct evbuffer *body_chains(const char *s, int mode, size_t k)
{
    struct evbuffer *b = evbuffer_new();
    size_t n = strlen(s);
    if (mode == 0) {
        evbuffer_add(b, s, n);
    } else if (mode == 1) {
        for (size_t i = 0; i < n; i++)
            evbuffer_add_reference(b, s + i, 1, NULL, NULL);
    } else if (mode == 2) {
        evbuffer_add_reference(b, s, k, NULL, NULL);
        evbuffer_add_reference(b, s + k, n - k, NULL, NULL);
    } else {
        for (size_t i = 0, step = 1; i < n; i += step, step = step % 3 + 1) {
            struct evbuffer *piece = evbuffer_new();
            evbuffer_add(piece, s + i, n - i < step ? n - i : step);
            evbuffer_add_buffer(b, piece);
            evbuffer_free(piece);
        }
    }
    return b;
}

static void check_delivery(const char *dir, int r, int mode, size_t k)
{
    char name[256], why[256] = "", path[4096];
    int temp = -1;
    size_t len;
    struct maildir_name nm;
    struct evbuffer *b = body_chains(conv_rows[r].body, mode, k);
    if (mode == 1 && strlen(conv_rows[r].body) > 1)
        assert_true(evbuffer_peek(b, -1, NULL, NULL, 0) > 1);
    if (maildir_deliver(dir, "h", conv_rows[r].prefix, strlen(conv_rows[r].prefix), b,
                        name, sizeof name, &temp, why, sizeof why) != 0)
        fail_msg("%s mode %d: %s", conv_rows[r].name, mode, why);
    assert_int_equal(evbuffer_get_length(b), strlen(conv_rows[r].body));   /* untouched */
    evbuffer_free(b);
    snprintf(path, sizeof path, "%s/new/%s", dir, name);
    char *got = get_file(path, &len);
    assert_non_null(got);
    if (len != strlen(conv_rows[r].out) || memcmp(got, conv_rows[r].out, len) != 0)
        fail_msg("%s mode %d k %zu: got \"%s\"", conv_rows[r].name, mode, k, got);
    maildir_name_parse(name, &nm);
    assert_true(nm.has_size && nm.has_vsize && nm.has_time);
    assert_int_equal(nm.size, len);
    if (nm.vsize != conv_rows[r].w)
        fail_msg("%s: W=%llu, want %u", conv_rows[r].name, (unsigned long long)nm.vsize,
                 conv_rows[r].w);
    free(got);
    assert_int_equal(unlink(path), 0);
}

static void test_deliver_line_ends(void **state)
{
    char dir[4096];
    mkpath(dir, *state, "md");
    char why[256];
    assert_int_equal(maildir_create(dir, why, sizeof why), 0);
    for (size_t r = 0; r < sizeof conv_rows / sizeof conv_rows[0]; r++) {
        size_t n = strlen(conv_rows[r].body);
        check_delivery(dir, (int)r, 0, 0);
        check_delivery(dir, (int)r, 1, 0);
        check_delivery(dir, (int)r, 3, 0);
        for (size_t k = 0; k <= n; k++)         /* every split point, CRLF included */
            check_delivery(dir, (int)r, 2, k);
    }
    assert_int_equal(count_entries(at(dir, "tmp")), 0);
    assert_int_equal(count_entries(at(dir, "new")), 0);
}

/* A body larger than the converter's buffer, built by many evbuffer_add
 * calls (chains of libevent's choosing, CRLFs split where they fall). */
static void test_deliver_large(void **state)
{
    char dir[4096];
    mkpath(dir, *state, "md");
    char name[256], why[256] = "";
    int temp;
    size_t len, lines = 0;
    struct evbuffer *b = evbuffer_new();
    struct maildir_name nm;
    for (int i = 0; i < 30000; i++) {
        char line[64];
        int n = snprintf(line, sizeof line, "line %d of a long message\r\n", i);
        evbuffer_add(b, line, (size_t)n);
    }
    size_t inlen = evbuffer_get_length(b);
    assert_true(evbuffer_peek(b, -1, NULL, NULL, 0) > 1);
    assert_int_equal(maildir_deliver(dir, "h", NULL, 0, b, name, sizeof name, &temp,
                                     why, sizeof why), 0);
    char *got = get_file(at(at(dir, "new"), name), &len);
    assert_non_null(got);
    for (size_t i = 0; i < len; i++) {
        assert_true(got[i] != '\r');
        lines += got[i] == '\n';
    }
    assert_int_equal(lines, 30000);
    assert_int_equal(len, inlen - 30000);
    maildir_name_parse(name, &nm);
    assert_int_equal(nm.size, len);
    assert_int_equal(nm.vsize, inlen);
    assert_int_equal(strncmp(got, "line 0 of", 9), 0);
    free(got);
    evbuffer_free(b);
}

/* Many deliveries in the same microsecond still get distinct names. */
static void test_deliver_unique(void **state)
{
    char dir[4096];
    mkpath(dir, *state, "md");
    enum { N = 200 };
    char names[N][256];
    char pid[32];
    for (int i = 0; i < N; i++)
        deliver_text(dir, "x\r\n", names[i], sizeof names[i]);
    assert_int_equal(count_entries(at(dir, "new")), N);
    assert_int_equal(count_entries(at(dir, "tmp")), 0);
    snprintf(pid, sizeof pid, "P%ldQ", (long)getpid());
    for (int i = 0; i < N; i++) {
        /* time.M<usec>P<pid>Q<counter>R<random>.HOST,S=2,W=3 */
        char *m = strstr(names[i], ".M");
        assert_non_null(m);
        assert_true(strspn(names[i], "0123456789") == (size_t)(m - names[i]));
        assert_non_null(strstr(names[i], pid));
        assert_non_null(strchr(names[i], 'R'));
        assert_non_null(strstr(names[i], ".host.example,S=2,W=3"));
        assert_null(strchr(names[i], ':'));
        for (int j = 0; j < i; j++)
            assert_string_not_equal(names[i], names[j]);
    }
}

static void test_deliver_host_escaped(void **state)
{
    char dir[4096];
    mkpath(dir, *state, "md");
    char name[256], why[256], host[300], h2[320];
    int temp;
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, "x\r\n", 3);
    assert_int_equal(maildir_deliver(dir, "a/b:c,d\\e f", NULL, 0, b, name, sizeof name,
                                     &temp, why, sizeof why), 0);
    assert_non_null(strstr(name, ".a\\057b\\072c\\054d\\134e\\040f,S=2,W=3"));
    /* no host: gethostname()'s */
    assert_int_equal(maildir_deliver(dir, NULL, NULL, 0, b, name, sizeof name,
                                     &temp, why, sizeof why), 0);
    assert_int_equal(gethostname(host, sizeof host), 0);
    snprintf(h2, sizeof h2, ".%s,S=2", host);
    if (!strchr(host, '/') && !strchr(host, ':') && !strchr(host, ','))
        assert_non_null(strstr(name, h2));
    /* a very long host is cut: the name stays a valid file name */
    memset(host, 'h', 299);
    host[299] = '\0';
    assert_int_equal(maildir_deliver(dir, host, NULL, 0, b, name, sizeof name,
                                     &temp, why, sizeof why), 0);
    assert_true(strlen(name) < 256);
    assert_int_equal(count_entries(at(dir, "new")), 3);
    evbuffer_free(b);
}

static void test_deliver_makes_maildir(void **state)
{
    char dir[4096];
    mkpath(dir, *state, "root/isp.example/bob");
    char name[256];
    struct stat st;
    deliver_text(dir, "hello\r\n", name, sizeof name);
    assert_int_equal(stat(at(dir, "cur"), &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(count_entries(at(dir, "new")), 1);
}

/* new/ removed after the maildir was made (an operator's cleanup): the
 * next delivery makes it again instead of failing at the link. */
static void test_deliver_new_removed(void **state)
{
    char dir[4096], name[256], path[4096 + 300];
    mkpath(dir, *state, "md");
    deliver_text(dir, "one\r\n", name, sizeof name);
    snprintf(path, sizeof path, "%s/new/%s", dir, name);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(at(dir, "new")), 0);
    deliver_text(dir, "two\r\n", name, sizeof name);
    assert_int_equal(count_entries(at(dir, "new")), 1);
    assert_int_equal(count_entries(at(dir, "tmp")), 0);
}

static void test_deliver_name_buffer(void **state)
{
    char dir[4096];
    mkpath(dir, *state, "md");
    char name[10], why[256] = "";
    int temp = -1;
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, "x\r\n", 3);
    assert_int_equal(maildir_deliver(dir, "h", NULL, 0, b, name, sizeof name, &temp,
                                     why, sizeof why), -1);
    assert_int_equal(temp, 0);
    assert_int_equal(count_entries(at(dir, "tmp")), 0);
    assert_int_equal(count_entries(at(dir, "new")), 0);
    /* no name wanted */
    assert_int_equal(maildir_deliver(dir, "h", NULL, 0, b, NULL, 0, &temp,
                                     why, sizeof why), 0);
    assert_int_equal(count_entries(at(dir, "new")), 1);
    evbuffer_free(b);
}

/* Permanent failures: something not a directory in the way. */
static void test_deliver_permanent(void **state)
{
    const char *t = *state;
    char why[256] = "";
    int temp = -1;
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, "x\r\n", 3);
    /* the maildir's parent is a regular file (root ignores chmod: not a test) */
    put_file(at(t, "plain"), "", 0);
    assert_int_equal(maildir_deliver(at(t, "plain/md"), "h", NULL, 0, b, NULL, 0,
                                     &temp, why, sizeof why), -1);
    assert_int_equal(temp, 0);
    assert_non_null(strstr(why, "Not a directory"));
    /* new/ is a regular file: fails at the link, after the write; the tmp/
     * file is removed */
    char dir[4096];
    mkpath(dir, t, "md");
    assert_int_equal(maildir_create(dir, why, sizeof why), 0);
    assert_int_equal(rmdir(at(dir, "new")), 0);
    put_file(at(dir, "new"), "", 0);
    temp = -1;
    assert_int_equal(maildir_deliver(dir, "h", NULL, 0, b, NULL, 0, &temp,
                                     why, sizeof why), -1);
    assert_int_equal(temp, 0);
    assert_non_null(strstr(why, "link"));
    assert_int_equal(count_entries(at(dir, "tmp")), 0);
    evbuffer_free(b);
}

/* Temporary: no file descriptor left (RLIMIT_NOFILE lowered to the next free
 * descriptor, so open() gets EMFILE). */
static void test_deliver_emfile(void **state)
{
    char dir[4096];
    mkpath(dir, *state, "md");
    char why[256] = "";
    int temp = -1, rc, fd;
    struct rlimit old, low;
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, "x\r\n", 3);
    assert_int_equal(maildir_create(dir, why, sizeof why), 0);
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    fd = dup(0);
    assert_true(fd >= 0);
    close(fd);
    low = old;
    low.rlim_cur = (rlim_t)fd;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    rc = maildir_deliver(dir, "h", NULL, 0, b, NULL, 0, &temp, why, sizeof why);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    assert_int_equal(rc, -1);
    assert_int_equal(temp, 1);
    assert_non_null(strstr(why, "Too many open files"));
    assert_int_equal(count_entries(at(dir, "tmp")), 0);
    assert_int_equal(count_entries(at(dir, "new")), 0);
    evbuffer_free(b);
}

/* Temporary: a full file system (a 64 KiB tmpfs; needs root and the right to
 * mount, else skipped).  The partly written tmp/ file is removed. */
static void test_deliver_enospc(void **state)
{
    char mnt[4096];
    mkpath(mnt, *state, "mnt");
    char why[256] = "";
    int temp = -1, rc;
    struct evbuffer *b;
    assert_int_equal(mkdir(mnt, 0700), 0);
    if (geteuid() != 0 || mount("tmpfs", mnt, "tmpfs", 0, "size=64k") != 0) {
        print_message("skipped: cannot mount a tmpfs (%s)\n", strerror(errno));
        skip();
    }
    b = evbuffer_new();
    for (int i = 0; i < 4000; i++)
        evbuffer_add(b, "0123456789012345678901234567890123456789\r\n", 42);
    rc = maildir_deliver(at(mnt, "md"), "h", NULL, 0, b, NULL, 0, &temp, why, sizeof why);
    size_t ntmp = count_entries(at(mnt, "md/tmp")), nnew = count_entries(at(mnt, "md/new"));
    assert_int_equal(umount(mnt), 0);
    assert_int_equal(rc, -1);
    assert_int_equal(temp, 1);
    assert_non_null(strstr(why, "No space left"));
    assert_int_equal(ntmp, 0);
    assert_int_equal(nnew, 0);
    evbuffer_free(b);
}

/* Temporary: a read-only file system (a tmpfs remounted read-only, as after
 * an emergency remount: needs root, else skipped).  The mail must wait for
 * the operator, never bounce. */
static void test_deliver_erofs(void **state)
{
    char mnt[4096];
    mkpath(mnt, *state, "mnt");
    char why[256] = "";
    int temp = -1, rc;
    struct evbuffer *b;
    assert_int_equal(mkdir(mnt, 0700), 0);
    if (geteuid() != 0 || mount("tmpfs", mnt, "tmpfs", 0, "size=64k") != 0) {
        print_message("skipped: cannot mount a tmpfs (%s)\n", strerror(errno));
        skip();
    }
    assert_int_equal(maildir_create(at(mnt, "md"), why, sizeof why), 0);
    if (mount(NULL, mnt, NULL, MS_REMOUNT | MS_RDONLY, NULL) != 0) {
        print_message("skipped: cannot remount read-only (%s)\n", strerror(errno));
        umount(mnt);
        skip();
    }
    b = evbuffer_new();
    evbuffer_add(b, "x\r\n", 3);
    rc = maildir_deliver(at(mnt, "md"), "h", NULL, 0, b, NULL, 0, &temp, why, sizeof why);
    /* a maildir not made yet fails the same way */
    int temp2 = -1;
    int rc2 = maildir_deliver(at(mnt, "md2"), "h", NULL, 0, b, NULL, 0, &temp2, why,
                              sizeof why);
    size_t nnew = count_entries(at(mnt, "md/new"));
    assert_int_equal(umount(mnt), 0);
    assert_int_equal(rc, -1);
    assert_int_equal(temp, 1);
    assert_int_equal(rc2, -1);
    assert_int_equal(temp2, 1);
    assert_non_null(strstr(why, "Read-only file system"));
    assert_int_equal(nnew, 0);
    evbuffer_free(b);
}

/* EACCES, EPERM and EROFS are an operator's mistake (modes, owners, a
 * read-only remount): temporary, as Postfix's local(8) defers on them. */
static void test_errno_classes(void **state)
{
    static const int temp[] = { ENOSPC, EDQUOT, EIO, EMFILE, ENFILE, ENOMEM, EAGAIN,
                                EACCES, EPERM, EROFS };
    static const int perm[] = { ENOTDIR, EISDIR, ENAMETOOLONG, EINVAL, ELOOP, ENOENT };
    for (size_t i = 0; i < sizeof temp / sizeof temp[0]; i++)
        assert_int_equal(maildir_errno_temporary(temp[i]), 1);
    for (size_t i = 0; i < sizeof perm / sizeof perm[0]; i++)
        assert_int_equal(maildir_errno_temporary(perm[i]), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path_table),
        cmocka_unit_test(test_path_bounds),
        cmocka_unit_test(test_errno_classes),
        cmocka_unit_test_setup_teardown(test_create, tdir_setup, tdir_teardown),
        cmocka_unit_test_setup_teardown(test_deliver_line_ends, tdir_setup, tdir_teardown),
        cmocka_unit_test_setup_teardown(test_deliver_large, tdir_setup, tdir_teardown),
        cmocka_unit_test_setup_teardown(test_deliver_unique, tdir_setup, tdir_teardown),
        cmocka_unit_test_setup_teardown(test_deliver_host_escaped, tdir_setup, tdir_teardown),
        cmocka_unit_test_setup_teardown(test_deliver_makes_maildir, tdir_setup, tdir_teardown),
        cmocka_unit_test_setup_teardown(test_deliver_new_removed, tdir_setup, tdir_teardown),
        cmocka_unit_test_setup_teardown(test_deliver_name_buffer, tdir_setup, tdir_teardown),
        cmocka_unit_test_setup_teardown(test_deliver_permanent, tdir_setup, tdir_teardown),
        cmocka_unit_test_setup_teardown(test_deliver_emfile, tdir_setup, tdir_teardown),
        cmocka_unit_test_setup_teardown(test_deliver_enospc, tdir_setup, tdir_teardown),
        cmocka_unit_test_setup_teardown(test_deliver_erofs, tdir_setup, tdir_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

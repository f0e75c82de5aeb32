/*
 * test_maildir_batch — maildir_deliver_batch(): many messages into several
 * maildirs under one round of syncs.  Every item delivered is in new/ under
 * the name the batch reports (,S= and ,W= equal to the file's sizes, the
 * content converted as maildir_deliver converts it); the syncs of a round:
 * two syncfs of the file system (files, then new/ entries), or where that
 * is off or fails each file synced once and each distinct new/ once, and a
 * single message that way too; a failing member (something not a
 * directory in the way, new/ a regular file, a read-only file system, a
 * cancelled one) fails alone with its own error class; nothing is left in
 * any tmp/.  Each test runs with each sync mode where the counts differ.
 */
#include "maildir_fixture.h"

#include <sys/mount.h>

#include "../../src/maildir/maildir_int.h"

struct syncs {
    unsigned long files, dirs, fs;
};

static struct syncs syncs_now(void)
{
    struct syncs s;
    maildir_sync_counts(&s.files, &s.dirs, &s.fs);
    return s;
}

/* The syncs since s0 are files, dirs, fs. */
static void check_syncs(struct syncs s0, unsigned long files, unsigned long dirs,
                        unsigned long fs)
{
    struct syncs s1 = syncs_now();
    if (s1.files - s0.files != files || s1.dirs - s0.dirs != dirs || s1.fs - s0.fs != fs)
        fail_msg("syncs: files %lu dirs %lu fs %lu, want %lu %lu %lu", s1.files - s0.files,
                 s1.dirs - s0.dirs, s1.fs - s0.fs, files, dirs, fs);
}

static int mode_setup(void **state)
{
    maildir_syncfs_mode(1);
    return tdir_setup(state);
}

static int mode_teardown(void **state)
{
    maildir_syncfs_mode(1);
    return tdir_teardown(state);
}

static struct evbuffer *text_buf(const char *text)
{
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, text, strlen(text));
    return b;
}

/* Item it is in its new/ under its name, with content want (LF ends) and
 * the sizes of the name. */
static void check_item(const struct maildir_item *it, const char *want)
{
    char path[4096];
    size_t len = 0;
    struct maildir_name nm;
    assert_int_equal(it->ok, 1);
    snprintf(path, sizeof path, "%s/new/%s", it->dir, it->name);
    char *got = get_file(path, &len);
    if (!got)
        fail_msg("%s: not in new/", path);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(got, want, len);
    maildir_name_parse(it->name, &nm);
    assert_true(nm.has_size && nm.has_vsize && nm.has_time);
    assert_int_equal(nm.size, len);
    size_t lfs = 0;
    for (size_t i = 0; i < len; i++)
        lfs += got[i] == '\n';
    assert_int_equal(nm.vsize, len + lfs);
    free(got);
}

/* 40 messages into 5 maildirs (3 not made yet), bodies of every kind: all
 * delivered, tmp/ empty; synced by two syncfs (mode 1), by 40 file syncs
 * and 5 directory syncs (mode 0), by those after a failed syncfs (mode 2),
 * or by a syncfs and, after the second failed, 5 directory syncs (mode 3). */
static void batch_delivers_all(void **state, int mode)
{
    enum { N = 40, D = 5 };
    static const char *const bodies[] = {
        "Subject: a\r\n\r\nhello\r\n",
        "no final line end",
        "lone\rCR and bare\nLF\r\n",
        "",
    };
    static const char *const want[] = {
        "Return-Path: <s@x>\nSubject: a\n\nhello\n",
        "Return-Path: <s@x>\nno final line end\n",
        "Return-Path: <s@x>\nlone\rCR and bare\nLF\n",
        "Return-Path: <s@x>\n",
    };
    char dirs[D][4096], why[256];
    struct maildir_item items[N];
    struct evbuffer *b[4];
    for (int k = 0; k < 4; k++)
        b[k] = text_buf(bodies[k]);
    for (int d = 0; d < D; d++) {
        char rel[64];
        snprintf(rel, sizeof rel, "root/isp.example/u%d", d);
        mkpath(dirs[d], *state, rel);
        if (d < 2)
            assert_int_equal(maildir_create(dirs[d], why, sizeof why), 0);
    }
    memset(items, 0, sizeof items);
    for (int i = 0; i < N; i++) {
        items[i].dir = dirs[i % D];
        items[i].prefix = "Return-Path: <s@x>\r\n";
        items[i].prefixlen = strlen(items[i].prefix);
        items[i].body = b[i % 4];
    }
    maildir_syncfs_mode(mode);
    struct syncs s0 = syncs_now();
    assert_int_equal(maildir_deliver_batch(items, N, "host.example"), N);
    if (mode == 1)
        check_syncs(s0, 0, 0, 2);
    else if (mode == 3)             /* files by syncfs, new/ entries each */
        check_syncs(s0, 0, D, 2);
    else
        check_syncs(s0, N, D, mode == 2 ? 1 : 0);
    for (int i = 0; i < N; i++) {
        check_item(&items[i], want[i % 4]);
        assert_non_null(strstr(items[i].name, ".host.example,S="));
        for (int j = 0; j < i; j++)
            assert_string_not_equal(items[i].name, items[j].name);
    }
    for (int d = 0; d < D; d++) {
        assert_int_equal(count_entries(at(dirs[d], "new")), N / D);
        assert_int_equal(count_entries(at(dirs[d], "tmp")), 0);
    }
    for (int k = 0; k < 4; k++) {
        assert_int_equal(evbuffer_get_length(b[k]), strlen(bodies[k]));    /* untouched */
        evbuffer_free(b[k]);
    }
}

static void test_batch_delivers_all(void **state)
{
    batch_delivers_all(state, 1);
}

static void test_batch_delivers_all_per_file(void **state)
{
    batch_delivers_all(state, 0);
}

static void test_batch_delivers_all_fallback(void **state)
{
    batch_delivers_all(state, 2);
}

static void test_batch_delivers_all_fallback_entries(void **state)
{
    batch_delivers_all(state, 3);
}

/* More than MAILDIR_BATCH_MAX items into one maildir: two rounds, each
 * with its two syncfs (or, per file, two syncs of new/ in all). */
static void test_batch_rounds(void **state)
{
    enum { N = MAILDIR_BATCH_MAX + 10 };
    char dir[4096];
    mkpath(dir, *state, "md");
    struct maildir_item *items = calloc(N, sizeof *items);
    struct evbuffer *b = text_buf("x\r\n");
    for (int i = 0; i < N; i++) {
        items[i].dir = dir;
        items[i].body = b;
    }
    struct syncs s0 = syncs_now();
    assert_int_equal(maildir_deliver_batch(items, N, "h"), N);
    check_syncs(s0, 0, 0, 4);
    maildir_syncfs_mode(0);
    s0 = syncs_now();
    assert_int_equal(maildir_deliver_batch(items, N, "h"), N);
    check_syncs(s0, N, 2, 0);
    assert_int_equal(count_entries(at(dir, "new")), 2 * N);
    assert_int_equal(count_entries(at(dir, "tmp")), 0);
    check_item(&items[N - 1], "x\n");
    evbuffer_free(b);
    free(items);
}

/* Failing members among good ones: each fails alone, with its class; the
 * good ones are delivered; nothing is left in tmp/ or in a failed new/. */
static void batch_failing_members(void **state, int mode)
{
    const char *t = *state;
    char good1[4096], good2[4096], plain[4096], badnew[4096], why[256];
    mkpath(good1, t, "good1");
    mkpath(good2, t, "good2");
    mkpath(plain, t, "plain/md");       /* its parent is a regular file */
    mkpath(badnew, t, "badnew");        /* new/ is a regular file */
    put_file(at(t, "plain"), "", 0);
    assert_int_equal(maildir_create(badnew, why, sizeof why), 0);
    assert_int_equal(rmdir(at(badnew, "new")), 0);
    put_file(at(badnew, "new"), "", 0);
    struct evbuffer *b = text_buf("body\r\n");
    struct maildir_item items[6];
    const char *dirs[6] = { good1, plain, good2, badnew, good1, NULL };
    memset(items, 0, sizeof items);
    for (int i = 0; i < 6; i++) {
        items[i].dir = dirs[i];
        items[i].body = b;
    }
    maildir_syncfs_mode(mode);
    struct syncs s0 = syncs_now();
    assert_int_equal(maildir_deliver_batch(items, 6, "h"), 3);
    if (mode == 1)
        check_syncs(s0, 0, 0, 2);
    else        /* the 3 good ones and badnew's; good1/new, good2/new */
        check_syncs(s0, 4, 2, 0);
    check_item(&items[0], "body\n");
    check_item(&items[2], "body\n");
    check_item(&items[4], "body\n");
    assert_int_equal(items[1].ok, 0);
    assert_int_equal(items[1].temporary, 0);
    assert_non_null(strstr(items[1].why, "Not a directory"));
    assert_string_equal(items[1].name, "");
    assert_int_equal(items[3].ok, 0);
    assert_int_equal(items[3].temporary, 0);
    assert_non_null(strstr(items[3].why, "link"));
    assert_int_equal(items[5].ok, 0);
    assert_non_null(strstr(items[5].why, "(null)"));
    assert_int_equal(count_entries(at(good1, "new")), 2);
    assert_int_equal(count_entries(at(good2, "new")), 1);
    assert_int_equal(count_entries(at(good1, "tmp")), 0);
    assert_int_equal(count_entries(at(good2, "tmp")), 0);
    assert_int_equal(count_entries(at(badnew, "tmp")), 0);
    evbuffer_free(b);
}

static void test_batch_failing_members(void **state)
{
    batch_failing_members(state, 1);
}

static void test_batch_failing_members_per_file(void **state)
{
    batch_failing_members(state, 0);
}

/* Members cancelled before their link (the delivery was aborted): dropped,
 * temporary, nothing of theirs left; the others delivered. */
static void test_batch_cancelled_members(void **state)
{
    char dir[4096];
    mkpath(dir, *state, "md");
    atomic_int no = 0, yes = 1;
    struct evbuffer *b = text_buf("x\r\n");
    struct maildir_item items[4] = {
        { .dir = dir, .body = b, .cancel = &no }, { .dir = dir, .body = b, .cancel = &yes },
        { .dir = dir, .body = b }, { .dir = dir, .body = b, .cancel = &yes },
    };
    assert_int_equal(maildir_deliver_batch(items, 4, "h"), 2);
    check_item(&items[0], "x\n");
    check_item(&items[2], "x\n");
    for (int i = 1; i < 4; i += 2) {
        assert_int_equal(items[i].ok, 0);
        assert_int_equal(items[i].temporary, 1);
        assert_non_null(strstr(items[i].why, "cancelled"));
    }
    assert_int_equal(count_entries(at(dir, "new")), 2);
    assert_int_equal(count_entries(at(dir, "tmp")), 0);
    evbuffer_free(b);
}

/* A member on a read-only file system (a tmpfs remounted read-only: needs
 * root, else skipped) fails temporarily; the others are delivered. */
static void test_batch_read_only_member(void **state)
{
    char mnt[4096], good[4096], why[256];
    mkpath(mnt, *state, "mnt");
    mkpath(good, *state, "good");
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
    char ro[4096];
    mkpath(ro, mnt, "md");
    struct evbuffer *b = text_buf("x\r\n");
    struct maildir_item items[3] = {
        { .dir = good, .body = b }, { .dir = ro, .body = b }, { .dir = good, .body = b },
    };
    size_t ok = maildir_deliver_batch(items, 3, "h");
    size_t nnew = count_entries(at(ro, "new"));
    assert_int_equal(umount(mnt), 0);
    assert_int_equal(ok, 2);
    check_item(&items[0], "x\n");
    check_item(&items[2], "x\n");
    assert_int_equal(items[1].ok, 0);
    assert_int_equal(items[1].temporary, 1);
    assert_non_null(strstr(items[1].why, "Read-only file system"));
    assert_int_equal(nnew, 0);
    assert_int_equal(count_entries(at(good, "tmp")), 0);
    evbuffer_free(b);
}

/* maildir_deliver() is a batch of one: one file sync, one directory sync,
 * never a syncfs. */
static void test_single_is_one_round(void **state)
{
    char dir[4096], name[256];
    mkpath(dir, *state, "md");
    struct syncs s0 = syncs_now();
    deliver_text(dir, "x\r\n", name, sizeof name);
    check_syncs(s0, 1, 1, 0);
    assert_int_equal(count_entries(at(dir, "new")), 1);
    assert_int_equal(count_entries(at(dir, "tmp")), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_batch_delivers_all, mode_setup, mode_teardown),
        cmocka_unit_test_setup_teardown(test_batch_delivers_all_per_file, mode_setup,
                                        mode_teardown),
        cmocka_unit_test_setup_teardown(test_batch_delivers_all_fallback, mode_setup,
                                        mode_teardown),
        cmocka_unit_test_setup_teardown(test_batch_delivers_all_fallback_entries, mode_setup,
                                        mode_teardown),
        cmocka_unit_test_setup_teardown(test_batch_rounds, mode_setup, mode_teardown),
        cmocka_unit_test_setup_teardown(test_batch_failing_members, mode_setup, mode_teardown),
        cmocka_unit_test_setup_teardown(test_batch_failing_members_per_file, mode_setup,
                                        mode_teardown),
        cmocka_unit_test_setup_teardown(test_batch_cancelled_members, mode_setup, mode_teardown),
        cmocka_unit_test_setup_teardown(test_batch_read_only_member, mode_setup, mode_teardown),
        cmocka_unit_test_setup_teardown(test_single_is_one_round, mode_setup, mode_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

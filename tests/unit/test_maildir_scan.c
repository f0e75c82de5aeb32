/*
 * test_maildir_scan — listing a maildrop and acting on listed messages:
 * file names parsed (a table), sizes taken from names without opening the
 * file (a name that lies wins), foreign files read for their POP3 size,
 * what is skipped (tmp/, dot files, directories, links, FIFOs), the order,
 * UIDLs (hex MD5 of the base name, kept across new/ -> cur/), and open,
 * remove and mark_seen, also after another reader moved the file; files
 * sharing a base name renamed apart (maildir_scan_unique).
 */
#include "maildir_fixture.h"

#include <sys/time.h>

#include "../../src/maildir/maildir_int.h"

static const struct {
    const char *name;
    size_t baselen;
    int has_time; long long time;
    int has_size; unsigned long long size;
    int has_vsize; unsigned long long vsize;
    const char *flags;
} name_rows[] = {
    { "1700000000.M1P2.host,S=123,W=125:2,S", 32, 1, 1700000000, 1, 123, 1, 125, "S" },
    { "1700000000.M1P2.host,S=123,W=125",     32, 1, 1700000000, 1, 123, 1, 125, NULL },
    { "1700000000.M1P2.host:2,S",             20, 1, 1700000000, 0, 0, 0, 0, "S" },
    { "1700000000.M1P2.host:2,",              20, 1, 1700000000, 0, 0, 0, 0, "" },
    { "1700000000.M1P2.host:1,xyz",           20, 1, 1700000000, 0, 0, 0, 0, NULL },
    { "abc",                                   3, 0, 0, 0, 0, 0, 0, NULL },
    { "12345",                                 5, 0, 0, 0, 0, 0, 0, NULL },   /* no '.' */
    { ".5.x",                                  4, 0, 0, 0, 0, 0, 0, NULL },
    { "1.h,W=7,S=5",                          11, 1, 1, 1, 5, 1, 7, NULL },   /* any order */
    { "1.h,S=5",                               7, 1, 1, 1, 5, 0, 0, NULL },
    { "1.h,S=12a,W=3",                        13, 1, 1, 0, 0, 1, 3, NULL },   /* bad S */
    { "1.h,S=,W=3",                           10, 1, 1, 0, 0, 1, 3, NULL },
    { "1.h,S=99999999999999999999999,W=3",    33, 1, 1, 0, 0, 1, 3, NULL },   /* overflow */
    { "1.h,S=18446744073709551615,W=1",       30, 1, 1, 1, 18446744073709551615ULL, 1, 1, NULL },
    { "1.h,X=1,S=2,W=3:2,FS",                 15, 1, 1, 1, 2, 1, 3, "FS" },
    { "1.h:2,S,S=5",                           3, 1, 1, 0, 0, 0, 0, "S,S=5" }, /* after ':' */
    { "1.hS=5,W=6",                           10, 1, 1, 0, 0, 1, 6, NULL },   /* no ',' */
    { "99999999999999999999.x",               22, 0, 0, 0, 0, 0, 0, NULL },   /* time overflow */
    { "",                                      0, 0, 0, 0, 0, 0, 0, NULL },
};

static void test_name_parse(void **state)
{
    for (size_t i = 0; i < sizeof name_rows / sizeof name_rows[0]; i++) {
        struct maildir_name nm;
        maildir_name_parse(name_rows[i].name, &nm);
        if (nm.baselen != name_rows[i].baselen || nm.has_time != name_rows[i].has_time ||
            (nm.has_time && (long long)nm.time != name_rows[i].time) ||
            nm.has_size != name_rows[i].has_size || nm.size != name_rows[i].size ||
            nm.has_vsize != name_rows[i].has_vsize || nm.vsize != name_rows[i].vsize ||
            (nm.flags == NULL) != (name_rows[i].flags == NULL) ||
            (nm.flags && strcmp(nm.flags, name_rows[i].flags) != 0))
            fail_msg("row %zu \"%s\": base %zu time %d/%lld S %d/%llu W %d/%llu flags %s",
                     i, name_rows[i].name, nm.baselen, nm.has_time, (long long)nm.time,
                     nm.has_size, (unsigned long long)nm.size, nm.has_vsize,
                     (unsigned long long)nm.vsize, nm.flags ? nm.flags : "(none)");
    }
}

static void test_uidl(void **state)
{
    char u[MAILDIR_UIDL_LEN + 1];
    maildir_uidl("abc:2,S", 3, u);
    assert_string_equal(u, "900150983cd24fb0d6963f7d28e17f72");   /* MD5("abc") */
    maildir_uidl("", 0, u);
    assert_string_equal(u, "d41d8cd98f00b204e9800998ecf8427e");
}

static const struct maildir_msg *find(const struct maildir_list *l, const char *file)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->msgs[i].file, file) == 0)
            return &l->msgs[i];
    return NULL;
}

static void set_mtime(const char *path, time_t t)
{
    struct timeval tv[2] = { { t, 0 }, { t, 0 } };
    assert_int_equal(utimes(path, tv), 0);
}

static void test_scan_kinds(void **state)
{
    char dir[4096];
    mkpath(dir, *state, "md");
    char why[256] = "", name[256];
    struct maildir_list l;
    const struct maildir_msg *m;
    deliver_text(dir, "Subject: ours\r\n\r\nbody\r\n", name, sizeof name);
    /* the name wins: it says S=5,W=7 but the file has 10 bytes (proof that
     * the file is neither opened nor stat'ed) */
    put_file(at(dir, "cur/2000000000.M1P1.h,S=5,W=7:2,S"), "0123456789", 10);
    /* foreign: Dovecot-like name without sizes, CRLF and LF mixed */
    put_file(at(dir, "cur/1700000000.M1P2.host:2,S"), "a\nb\r\nc\n", 7);
    /* foreign: no time in the name, mtime used */
    put_file(at(dir, "new/abc"), "x\ny", 3);
    set_mtime(at(dir, "new/abc"), 1600000000);
    /* a name with S= only: read for W */
    put_file(at(dir, "new/1650000000.x,S=4"), "1\n2\n", 4);
    /* skipped: tmp/, dot files, directories, symbolic links, FIFOs */
    put_file(at(dir, "tmp/1.M1.h,S=1,W=1"), "x", 1);
    put_file(at(dir, "new/.hidden"), "x", 1);
    put_file(at(dir, "cur/.1.x,S=1,W=1"), "x", 1);
    assert_int_equal(mkdir(at(dir, "new/1.dir,S=1,W=1"), 0700), 0);
    assert_int_equal(symlink(at(dir, "new/abc"), at(dir, "new/1.link,S=1,W=1")), 0);
    assert_int_equal(symlink(at(dir, "new/abc"), at(dir, "cur/1.link2")), 0);
    assert_int_equal(mkfifo(at(dir, "new/1.fifo"), 0600), 0);
    put_file(at(dir, "kickmail-retrieved"), "", 0);
    put_file(at(dir, "dovecot-uidlist"), "", 0);

    assert_int_equal(maildir_scan(dir, &l, why, sizeof why), 0);
    assert_int_equal(l.n, 5);
    /* oldest first */
    assert_string_equal(l.msgs[0].file, "new/abc");
    assert_string_equal(l.msgs[1].file, "new/1650000000.x,S=4");
    assert_string_equal(l.msgs[2].file, "cur/1700000000.M1P2.host:2,S");
    assert_true(strncmp(l.msgs[3].file, "new/", 4) == 0);
    assert_string_equal(l.msgs[3].file + 4, name);
    assert_string_equal(l.msgs[4].file, "cur/2000000000.M1P1.h,S=5,W=7:2,S");

    m = &l.msgs[0];
    assert_int_equal(m->size, 3);
    assert_int_equal(m->vsize, 6);          /* "x\r\ny\r\n": RETR ends the last line */
    assert_int_equal(m->mtime, 1600000000);
    assert_int_equal(m->seen, 0);
    assert_string_equal(m->uidl, "900150983cd24fb0d6963f7d28e17f72");
    m = &l.msgs[1];
    assert_int_equal(m->size, 4);
    assert_int_equal(m->vsize, 6);
    m = &l.msgs[2];
    assert_int_equal(m->size, 7);
    assert_int_equal(m->vsize, 9);          /* two bare LFs, one CRLF */
    assert_int_equal(m->mtime, 1700000000);
    assert_int_equal(m->seen, 1);
    m = &l.msgs[3];
    assert_int_equal(m->size, 20);
    assert_int_equal(m->vsize, 23);
    assert_true(m->mtime > 1700000000);
    assert_int_equal(m->seen, 0);
    m = &l.msgs[4];
    assert_int_equal(m->size, 5);
    assert_int_equal(m->vsize, 7);
    assert_int_equal(m->seen, 1);
    assert_int_equal(l.bytes, 6 + 9 + 6 + 23 + 7);
    for (size_t i = 0; i < l.n; i++) {
        assert_int_equal(strlen(l.msgs[i].uidl), MAILDIR_UIDL_LEN);
        assert_int_equal(strspn(l.msgs[i].uidl, "0123456789abcdef"), MAILDIR_UIDL_LEN);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(l.msgs[i].uidl, l.msgs[j].uidl);
    }
    maildir_list_free(&l);
    assert_int_equal(l.n, 0);
    assert_null(l.msgs);
}

/* Same time: by name. */
static void test_scan_order_ties(void **state)
{
    char dir[4096];
    mkpath(dir, *state, "md");
    char why[256];
    struct maildir_list l;
    assert_int_equal(maildir_create(dir, why, sizeof why), 0);
    put_file(at(dir, "new/100.b,S=1,W=1"), "x", 1);
    put_file(at(dir, "cur/100.a,S=1,W=1:2,S"), "x", 1);
    put_file(at(dir, "new/100.c,S=1,W=1"), "x", 1);
    put_file(at(dir, "new/99.z,S=1,W=1"), "x", 1);
    assert_int_equal(maildir_scan(dir, &l, why, sizeof why), 0);
    assert_int_equal(l.n, 4);
    assert_string_equal(l.msgs[0].file, "new/99.z,S=1,W=1");
    assert_string_equal(l.msgs[1].file, "cur/100.a,S=1,W=1:2,S");
    assert_string_equal(l.msgs[2].file, "new/100.b,S=1,W=1");
    assert_string_equal(l.msgs[3].file, "new/100.c,S=1,W=1");
    maildir_list_free(&l);
}

static void test_scan_missing_and_broken(void **state)
{
    const char *t = *state;
    char why[256] = "";
    struct maildir_list l;
    assert_int_equal(maildir_scan(at(t, "nothing/here"), &l, why, sizeof why), 0);
    assert_int_equal(l.n, 0);
    assert_int_equal(l.bytes, 0);
    maildir_list_free(&l);
    /* only cur/ there */
    assert_int_equal(mkdir(at(t, "c"), 0700), 0);
    assert_int_equal(mkdir(at(t, "c/cur"), 0700), 0);
    put_file(at(t, "c/cur/5.x,S=2,W=3:2,S"), "a\n", 2);
    assert_int_equal(maildir_scan(at(t, "c"), &l, why, sizeof why), 0);
    assert_int_equal(l.n, 1);
    maildir_list_free(&l);
    /* new/ is a regular file: an error, not an empty list */
    assert_int_equal(mkdir(at(t, "b"), 0700), 0);
    put_file(at(t, "b/new"), "", 0);
    assert_int_equal(maildir_scan(at(t, "b"), &l, why, sizeof why), -1);
    assert_non_null(strstr(why, "Not a directory"));
    assert_int_equal(l.n, 0);
    assert_null(l.msgs);
}

/* Many messages: all listed, in order (a sanity check, not a timing). */
static void test_scan_many(void **state)
{
    char dir[4096];
    mkpath(dir, *state, "md");
    char why[256], name[64];
    struct maildir_list l;
    assert_int_equal(maildir_create(dir, why, sizeof why), 0);
    for (int i = 0; i < 2000; i++) {
        snprintf(name, sizeof name, "%s/%d.M1P1Q%d.h,S=2,W=3", i % 2 ? "new" : "cur",
                 1000000 + (i * 7919) % 2000, i);
        put_file(at(dir, name), "", 0);         /* empty: the names tell */
    }
    assert_int_equal(maildir_scan(dir, &l, why, sizeof why), 0);
    assert_int_equal(l.n, 2000);
    assert_int_equal(l.bytes, 6000);
    for (size_t i = 1; i < l.n; i++)
        assert_true(l.msgs[i - 1].mtime <= l.msgs[i].mtime);
    assert_int_equal(l.msgs[0].mtime, 1000000);
    maildir_list_free(&l);
}

static void test_mark_seen(void **state)
{
    char dir[4096];
    mkpath(dir, *state, "md");
    char why[256], name[256], want[300];
    struct maildir_list l;
    struct maildir_msg *m;
    deliver_text(dir, "a\r\n", name, sizeof name);
    put_file(at(dir, "cur/1.x:2,F"), "x\n", 2);
    put_file(at(dir, "cur/2.x:2,TF"), "x\n", 2);
    put_file(at(dir, "cur/3.x:2,RS"), "x\n", 2);
    put_file(at(dir, "cur/4.x"), "x\n", 2);
    put_file(at(dir, "cur/5.x:1,odd"), "x\n", 2);
    assert_int_equal(maildir_scan(dir, &l, why, sizeof why), 0);
    assert_int_equal(l.n, 6);
    char uidl[MAILDIR_UIDL_LEN + 1];
    m = (struct maildir_msg *)find(&l, at("new", name));
    assert_non_null(m);
    memcpy(uidl, m->uidl, sizeof uidl);
    assert_int_equal(maildir_mark_seen(dir, m, why, sizeof why), 0);
    snprintf(want, sizeof want, "cur/%s:2,S", name);
    assert_string_equal(m->file, want);
    assert_int_equal(m->seen, 1);
    assert_int_equal(access(at(dir, want), F_OK), 0);
    assert_int_equal(count_entries(at(dir, "new")), 0);
    static const char *const from[] = { "cur/1.x:2,F", "cur/2.x:2,TF", "cur/3.x:2,RS",
                                        "cur/4.x", "cur/5.x:1,odd" };
    static const char *const to[] = { "cur/1.x:2,FS", "cur/2.x:2,FST", "cur/3.x:2,RS",
                                      "cur/4.x:2,S", "cur/5.x:2,S" };
    for (int i = 0; i < 5; i++) {
        m = (struct maildir_msg *)find(&l, from[i]);
        assert_non_null(m);
        assert_int_equal(maildir_mark_seen(dir, m, why, sizeof why), 0);
        assert_string_equal(m->file, to[i]);
        assert_int_equal(m->seen, 1);
        assert_int_equal(access(at(dir, to[i]), F_OK), 0);
    }
    /* twice: nothing changes */
    m = (struct maildir_msg *)find(&l, "cur/1.x:2,FS");
    assert_int_equal(maildir_mark_seen(dir, m, why, sizeof why), 0);
    assert_string_equal(m->file, "cur/1.x:2,FS");
    maildir_list_free(&l);
    /* a fresh listing: same UIDL for the moved message, all seen */
    assert_int_equal(maildir_scan(dir, &l, why, sizeof why), 0);
    assert_int_equal(l.n, 6);
    m = (struct maildir_msg *)find(&l, want);
    assert_non_null(m);
    assert_string_equal(m->uidl, uidl);
    for (size_t i = 0; i < l.n; i++)
        assert_int_equal(l.msgs[i].seen, 1);
    maildir_list_free(&l);
}

/* The seen name already taken by another file (a copy made by hand, or
 * another program's): the mark fails and neither file is replaced. */
static void test_mark_seen_never_replaces(void **state)
{
    char dir[4096], why[256];
    struct maildir_list l;
    struct maildir_msg *m;
    mkpath(dir, *state, "md");
    deliver_text(dir, "a\r\n", why, sizeof why);     /* makes the maildir */
    put_file(at(dir, "cur/9.x:2,F"), "mine\n", 5);
    put_file(at(dir, "cur/9.x:2,FS"), "other\n", 6);
    assert_int_equal(maildir_scan(dir, &l, why, sizeof why), 0);
    m = (struct maildir_msg *)find(&l, "cur/9.x:2,F");
    assert_non_null(m);
    assert_int_equal(maildir_mark_seen(dir, m, why, sizeof why), -1);
    assert_non_null(strstr(why, "File exists"));
    assert_string_equal(m->file, "cur/9.x:2,F");
    assert_int_equal(m->seen, 0);
    char buf[16] = { 0 };
    int fd = open(at(dir, "cur/9.x:2,FS"), O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(read(fd, buf, sizeof buf - 1), 6);
    close(fd);
    assert_string_equal(buf, "other\n");
    assert_int_equal(access(at(dir, "cur/9.x:2,F"), F_OK), 0);
    maildir_list_free(&l);
}

static void test_open_remove(void **state)
{
    char dir[4096];
    mkpath(dir, *state, "md");
    char why[256], name[256], buf[64];
    struct maildir_list l;
    int fd;
    deliver_text(dir, "one\r\n", name, sizeof name);
    assert_int_equal(maildir_scan(dir, &l, why, sizeof why), 0);
    assert_int_equal(l.n, 1);
    fd = maildir_open(dir, &l.msgs[0], why, sizeof why);
    assert_true(fd >= 0);
    assert_int_equal(read(fd, buf, sizeof buf), 4);
    assert_memory_equal(buf, "one\n", 4);
    close(fd);
    assert_int_equal(maildir_remove(dir, &l.msgs[0], why, sizeof why), 0);
    assert_int_equal(count_entries(at(dir, "new")), 0);
    /* gone already: success; open says ENOENT */
    assert_int_equal(maildir_remove(dir, &l.msgs[0], why, sizeof why), 0);
    errno = 0;
    assert_int_equal(maildir_open(dir, &l.msgs[0], why, sizeof why), -1);
    assert_int_equal(errno, ENOENT);
    maildir_list_free(&l);
}

/* Another reader (an IMAP server) moved the message new/ -> cur/ or changed
 * its flags after our listing: open, remove and mark_seen still find it. */
static void test_moved_by_another(void **state)
{
    char dir[4096];
    mkpath(dir, *state, "md");
    char why[256], name[256], name2[256], moved[300], buf[16];
    struct maildir_list l;
    int fd;
    deliver_text(dir, "one\r\n", name, sizeof name);
    deliver_text(dir, "two\r\n", name2, sizeof name2);
    assert_int_equal(maildir_scan(dir, &l, why, sizeof why), 0);
    assert_int_equal(l.n, 2);
    struct maildir_msg *m1 = (struct maildir_msg *)find(&l, at("new", name));
    struct maildir_msg *m2 = (struct maildir_msg *)find(&l, at("new", name2));
    snprintf(moved, sizeof moved, "cur/%s:2,F", name);
    assert_int_equal(rename(at(dir, m1->file), at(dir, moved)), 0);
    fd = maildir_open(dir, m1, why, sizeof why);
    assert_true(fd >= 0);
    assert_int_equal(read(fd, buf, sizeof buf), 4);
    close(fd);
    assert_int_equal(maildir_mark_seen(dir, m1, why, sizeof why), 0);
    snprintf(moved, sizeof moved, "cur/%s:2,FS", name);
    assert_string_equal(m1->file, moved);
    assert_int_equal(access(at(dir, moved), F_OK), 0);
    /* m2 moved too; a stale remove removes it where it is */
    snprintf(moved, sizeof moved, "cur/%s:2,S", name2);
    assert_int_equal(rename(at(dir, m2->file), at(dir, moved)), 0);
    assert_int_equal(maildir_remove(dir, m2, why, sizeof why), 0);
    assert_int_equal(access(at(dir, moved), F_OK), -1);
    assert_int_equal(count_entries(at(dir, "cur")), 1);
    maildir_list_free(&l);
}

/* maildir_open_at / maildir_remove_at: relative to the maildir's
 * descriptor, or with -1 as the path forms; a message moved by another
 * reader is still found, one gone is ENOENT (open) or success (remove). */
static void test_open_remove_at(void **state)
{
    char dir[4096];
    mkpath(dir, *state, "md");
    char why[256], name[256], name2[256], moved[300], buf[16];
    struct maildir_list l;
    deliver_text(dir, "one\r\n", name, sizeof name);
    deliver_text(dir, "two\r\n", name2, sizeof name2);
    assert_int_equal(maildir_scan(dir, &l, why, sizeof why), 0);
    assert_int_equal(l.n, 2);
    struct maildir_msg *m1 = (struct maildir_msg *)find(&l, at("new", name));
    struct maildir_msg *m2 = (struct maildir_msg *)find(&l, at("new", name2));
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    assert_true(dfd >= 0);
    for (int k = 0; k < 2; k++) {   /* with the descriptor, then with -1 */
        int use = k == 0 ? dfd : -1;
        int fd = maildir_open_at(use, dir, m1, why, sizeof why);
        assert_true(fd >= 0);
        assert_int_equal(read(fd, buf, sizeof buf), 4);
        assert_memory_equal(buf, "one\n", 4);
        close(fd);
    }
    snprintf(moved, sizeof moved, "cur/%s:2,S", name);
    assert_int_equal(rename(at(dir, m1->file), at(dir, moved)), 0);
    int fd = maildir_open_at(dfd, dir, m1, why, sizeof why);
    assert_true(fd >= 0);
    assert_int_equal(read(fd, buf, sizeof buf), 4);
    close(fd);
    assert_int_equal(maildir_remove_at(dfd, dir, m1, why, sizeof why), 0);
    assert_int_equal(access(at(dir, moved), F_OK), -1);
    assert_int_equal(maildir_remove_at(dfd, dir, m2, why, sizeof why), 0);
    assert_int_equal(count_entries(at(dir, "new")), 0);
    assert_int_equal(count_entries(at(dir, "cur")), 0);
    assert_int_equal(maildir_remove_at(dfd, dir, m2, why, sizeof why), 0);
    errno = 0;
    assert_int_equal(maildir_open_at(dfd, dir, m2, why, sizeof why), -1);
    assert_int_equal(errno, ENOENT);
    close(dfd);
    maildir_list_free(&l);
}

/* Files with one base name (copied by hand from cur/ into new/, or twice
 * in cur/ with other flags): all but one renamed to names of their own,
 * the one in cur/ keeping its name; UIDLs unique; nothing lost. */
static void test_scan_unique(void **state)
{
    char dir[4096], why[256] = "", name[256];
    struct maildir_list l;
    mkpath(dir, *state, "md");
    deliver_text(dir, "Subject: x\r\n\r\nx\r\n", name, sizeof name);
    put_file(at(dir, "cur/1700000000.M1P1.h,S=1,W=1:2,S"), "a", 1);
    put_file(at(dir, "new/1700000000.M1P1.h,S=1,W=1"), "b", 1);
    put_file(at(dir, "cur/1700000001.M1P1.h:2,S"), "c\n", 2);
    put_file(at(dir, "cur/1700000001.M1P1.h:2,RS"), "d\n", 2);
    put_file(at(dir, "new/1700000001.M1P1.h.d1"), "e\n", 2);   /* the first new name, taken */
    assert_int_equal(maildir_scan(dir, &l, why, sizeof why), 0);
    assert_int_equal(l.n, 6);
    uint64_t bytes = l.bytes;
    assert_int_equal(maildir_scan_unique(dir, &l), 2);
    assert_int_equal(l.n, 6);
    assert_int_equal(l.bytes, bytes);
    for (size_t i = 0; i < l.n; i++)
        for (size_t j = i + 1; j < l.n; j++)
            assert_string_not_equal(l.msgs[i].uidl, l.msgs[j].uidl);
    assert_non_null(find(&l, "cur/1700000000.M1P1.h,S=1,W=1:2,S"));
    assert_non_null(find(&l, "new/1700000000.M1P1.h.d1,S=1,W=1"));
    assert_non_null(find(&l, "new/1700000001.M1P1.h.d1"));
    /* .d1 would have the UIDL of new/...h.d1: .d2 */
    int renamed = (find(&l, "cur/1700000001.M1P1.h.d2:2,S") != NULL) +
                  (find(&l, "cur/1700000001.M1P1.h.d2:2,RS") != NULL);
    assert_int_equal(renamed, 1);
    size_t len;
    char *b = get_file(at(dir, "new/1700000000.M1P1.h.d1,S=1,W=1"), &len);
    assert_int_equal(len, 1);
    assert_int_equal(b[0], 'b');
    free(b);
    /* listed again: nothing more to do, the same UIDLs */
    struct maildir_list l2;
    assert_int_equal(maildir_scan(dir, &l2, why, sizeof why), 0);
    assert_int_equal(maildir_scan_unique(dir, &l2), 0);
    assert_int_equal(l2.n, 6);
    for (size_t i = 0; i < l2.n; i++)
        assert_non_null(find(&l, l2.msgs[i].file));
    maildir_list_free(&l2);
    maildir_list_free(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_name_parse),
        cmocka_unit_test(test_uidl),
        cmocka_unit_test_setup_teardown(test_scan_kinds, tdir_setup, tdir_teardown),
        cmocka_unit_test_setup_teardown(test_scan_order_ties, tdir_setup, tdir_teardown),
        cmocka_unit_test_setup_teardown(test_scan_missing_and_broken, tdir_setup, tdir_teardown),
        cmocka_unit_test_setup_teardown(test_scan_many, tdir_setup, tdir_teardown),
        cmocka_unit_test_setup_teardown(test_mark_seen, tdir_setup, tdir_teardown),
        cmocka_unit_test_setup_teardown(test_mark_seen_never_replaces, tdir_setup,
                                        tdir_teardown),
        cmocka_unit_test_setup_teardown(test_open_remove, tdir_setup, tdir_teardown),
        cmocka_unit_test_setup_teardown(test_moved_by_another, tdir_setup, tdir_teardown),
        cmocka_unit_test_setup_teardown(test_open_remove_at, tdir_setup, tdir_teardown),
        cmocka_unit_test_setup_teardown(test_scan_unique, tdir_setup, tdir_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_spool_spare — unit tests of the spool's spare segments
 * (src/spool/spool_spare.c): a new segment is a zero-filled spare that
 * records overwrite, spares double in size, a zero tail is read as the end of
 * a segment (also a segment that is nothing but zeros), garbage after the
 * zeros is set aside and cut, and without a spare (the disk refuses it)
 * segments grow as before.
 */
#include "spool_fixture.h"

#include <dirent.h>
#include <signal.h>
#include <sys/resource.h>

#include <event2/thread.h>

#include "core/log.h"

#define MIB (1ull << 20)

static int count_files(const char *dir, const char *sub)
{
    char path[300];
    snprintf(path, sizeof path, "%s/%s", dir, sub);
    DIR *d = opendir(path);
    struct dirent *de;
    int n = 0;
    assert_non_null(d);
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static int spare_exists(const char *dir)
{
    char path[300];
    snprintf(path, sizeof path, "%s/journal/.spare", dir);
    return exists(path);
}

/* Whether segment seg holds only zeros from off to the next page boundary
 * (the padding the writer adds to a batch in a spare). */
static int zeros_to_page(const char *dir, uint32_t seg, off_t off)
{
    long page = sysconf(_SC_PAGESIZE);
    size_t n = (size_t)(page - off % page) % (size_t)page;
    uint8_t buf[65536] = {0}, zero[65536] = {0};
    int fd = open(seg_path(dir, seg), O_RDONLY);
    assert_true(fd >= 0 && n <= sizeof buf);
    assert_int_equal(pread(fd, buf, n, off), (ssize_t)n);
    close(fd);
    return memcmp(buf, zero, n) == 0;
}

/* The first segment is the spare made by recovery; it is resumed after a
 * restart, after its last record, and the spare file goes at close. */
static void test_spare_resumed(void **state)
{
    char *dir = tdir_new();
    struct spool *sp = sp_open(dir);
    struct spool_loc loc[4];
    struct coll *c;

    assert_int_equal(spool_test_spare(sp, 0), 0);   /* made by recovery, */
    assert_false(spare_exists(dir));                /* after a privilege drop */
    recover_empty(sp);
    assert_true(spare_exists(dir));
    assert_int_equal(spool_test_spare(sp, 0), MIB);
    assert_int_equal(simple_msg(sp, 1, 100, &loc[1]), 0);
    assert_int_equal(simple_msg(sp, 2, 5000, &loc[2]), 0);
    assert_int_equal(loc[1].seg, 1);
    assert_int_equal(loc[2].off, loc[1].off + rec_len(&loc[1]));
    assert_int_equal(file_size(seg_path(dir, 1)), MIB);     /* overwritten in place */
    off_t end = seg_end(dir, 1);
    assert_true(zeros_to_page(dir, 1, end));    /* the writer's padding: zeros */
    spool_close(sp);
    assert_false(spare_exists(dir));

    sp = RECOVER_LIVE(dir, &c, 1, 2);
    assert_int_equal(count_files(dir, "corrupt"), 0);       /* zeros are no damage */
    check_body(sp, &c->m[2].loc, 2, 5000);
    assert_int_equal(simple_msg(sp, 3, 100, &loc[3]), 0);
    assert_int_equal(loc[3].seg, 1);
    assert_int_equal(loc[3].off, (uint64_t)end);
    sp_close_coll(sp, c);

    sp = RECOVER_LIVE(dir, &c, 1, 2, 3);
    check_body(sp, &c->m[3].loc, 3, 100);
    sp_done(sp, c, dir);
}

/* A full spare is left for the next, twice as large; the segment left keeps
 * what was written (its size is not cut below its records). */
static void test_spare_doubles(void **state)
{
    char *dir = tdir_new();
    struct spool *sp = sp_fresh(dir);
    struct spool_loc loc[MAXID];
    struct coll *c;
    uint64_t id;

    assert_int_equal(simple_msg(sp, 1, 100, &loc[1]), 0);
    assert_int_equal(spool_test_spare(sp, 10000), 2 * MIB);
    for (id = 2; id < MAXID && loc[id - 1].seg == 1; id++) {
        assert_int_equal(simple_msg(sp, id, 40000, &loc[id]), 0);
        spool_seg_ref(sp, loc[id].seg);     /* as the qmgr does */
    }
    assert_true(id < MAXID);
    assert_int_equal(loc[id - 1].seg, 2);
    assert_int_equal(loc[id - 1].off, 0);
    assert_int_equal(file_size(seg_path(dir, 2)), 2 * MIB);
    assert_true(file_size(seg_path(dir, 1)) >= (off_t)MIB);
    assert_int_equal(file_size(seg_path(dir, 1)), seg_end(dir, 1));
    spool_close(sp);

    sp = sp_recover(dir, &c, NULL);
    assert_int_equal(c->nmsg, id - 1);
    check_body(sp, &c->m[id - 2].loc, id - 2, 40000);
    check_body(sp, &c->m[id - 1].loc, id - 1, 40000);
    assert_int_equal(count_files(dir, "corrupt"), 0);
    sp_done(sp, c, dir);
}

/* A spare renamed into place whose first batch never completed: all zeros,
 * read as an empty segment and written from its start. */
static void test_all_zero_segment(void **state)
{
    char *dir = tdir_new();
    struct spool *sp = sp_open(dir);        /* creates journal/ */
    struct spool_loc loc[2];
    struct coll *c;
    spool_close(sp);
    int fd = open(seg_path(dir, 1), O_WRONLY | O_CREAT, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, 65536), 0);
    close(fd);

    sp = sp_recover(dir, &c, NULL);
    assert_int_equal(c->nmsg, 0);
    assert_int_equal(count_files(dir, "corrupt"), 0);
    assert_int_equal(simple_msg(sp, 1, 100, &loc[1]), 0);
    assert_int_equal(loc[1].seg, 1);
    assert_int_equal(loc[1].off, 0);
    sp_close_coll(sp, c);

    sp = RECOVER_LIVE(dir, &c, 1);
    check_body(sp, &c->m[1].loc, 1, 100);
    sp_done(sp, c, dir);
}

/* Bytes after the zeros are not a zero tail: what follows the last record
 * is set aside and cut off, and new records go to the next spare. */
static void test_garbage_after_zeros(void **state)
{
    char *dir = tdir_new();
    struct spool *sp = sp_fresh(dir);
    struct spool_loc loc[3];
    struct coll *c;

    assert_int_equal(simple_msg(sp, 1, 300, &loc[1]), 0);
    spool_close(sp);
    off_t end = seg_end(dir, 1);
    FILE *f = fopen(seg_path(dir, 1), "ab");
    assert_non_null(f);
    fputs("KMJ1 not a record", f);
    fclose(f);

    sp = RECOVER_LIVE(dir, &c, 1);
    assert_int_equal(count_files(dir, "corrupt"), 1);
    assert_int_equal(file_size(seg_path(dir, 1)), end);
    assert_int_equal(simple_msg(sp, 2, 300, &loc[2]), 0);
    assert_int_equal(loc[2].seg, 2);
    sp_close_coll(sp, c);

    sp = RECOVER_LIVE(dir, &c, 1, 2);
    check_body(sp, &c->m[2].loc, 2, 300);
    sp_done(sp, c, dir);
}

/* A damaged last record before the zeros: set aside (only the record) and
 * cut, like a damaged tail of a segment that grows. */
static void test_bad_record_before_zeros(void **state)
{
    char *dir = tdir_new();
    struct spool *sp = sp_fresh(dir);
    struct spool_loc loc[3];
    struct coll *c;

    assert_int_equal(simple_msg(sp, 1, 300, &loc[1]), 0);
    assert_int_equal(simple_msg(sp, 2, 300, &loc[2]), 0);
    spool_close(sp);
    flip_byte(seg_path(dir, 1), (off_t)(loc[2].off + loc[2].body_off + 3));

    sp = RECOVER_LIVE(dir, &c, 1);
    assert_false(c->m[2].present);
    check_corrupt_file(dir, 1, loc[2].off, rec_len(&loc[2]));
    assert_int_equal(file_size(seg_path(dir, 1)), (off_t)loc[2].off);
    sp_done(sp, c, dir);
}

/* No spare (the file size limit refuses it, as a full disk would): the
 * segment grows with each batch, and nothing is lost. */
static void test_no_spare_grows(void **state)
{
    char *dir = tdir_new();
    struct rlimit old, lim;
    struct spool_loc loc[4];
    struct coll *c;

    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = MIB / 2;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    struct spool *sp = sp_fresh(dir);
    assert_int_equal(spool_test_spare(sp, 0), 0);
    assert_false(spare_exists(dir));
    assert_int_equal(simple_msg(sp, 1, 100, &loc[1]), 0);
    assert_int_equal(file_size(seg_path(dir, 1)), seg_end(dir, 1));
    assert_int_equal(simple_msg(sp, 2, 1000, &loc[2]), 0);
    assert_int_equal(loc[2].seg, 1);
    assert_int_equal(file_size(seg_path(dir, 1)), seg_end(dir, 1));
    spool_close(sp);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, SIG_DFL);

    sp = RECOVER_LIVE(dir, &c, 1, 2);
    assert_int_equal(simple_msg(sp, 3, 100, &loc[3]), 0);
    assert_int_equal(loc[3].seg, 2);        /* a spare now: the grown one is left */
    sp_done(sp, c, dir);
}

/* spool_spares = "no": no spare, segments grow. */
static void test_spares_off(void **state)
{
    char *dir = tdir_new();
    struct spool *sp = sp_open(dir);
    struct spool_loc loc[2];
    spool_set_spares(sp, SPOOL_SPARES_OFF);
    recover_empty(sp);
    assert_false(spare_exists(dir));
    assert_int_equal(simple_msg(sp, 1, 100, &loc[1]), 0);
    assert_int_equal(file_size(seg_path(dir, 1)), seg_end(dir, 1));
    assert_int_equal(spool_test_spare(sp, 50), 0);      /* none made later either */
    sp_done(sp, NULL, dir);
}

/* "auto" decides by timing syncs, so either outcome is right here; what
 * must hold: the probe file is gone, and a spare exists exactly when one is
 * offered. */
static void test_spares_auto(void **state)
{
    char *dir = tdir_new(), path[300];
    struct spool *sp = sp_open(dir);
    struct spool_loc loc[2];
    spool_set_spares(sp, SPOOL_SPARES_AUTO);
    recover_empty(sp);
    snprintf(path, sizeof path, "%s/journal/.probe-append", dir);
    assert_false(exists(path));
    snprintf(path, sizeof path, "%s/journal/.probe-over", dir);
    assert_false(exists(path));
    uint64_t size = spool_test_spare(sp, 0);
    assert_true(size == 0 || size == MIB);
    assert_int_equal(spare_exists(dir), size == MIB);
    assert_int_equal(simple_msg(sp, 1, 100, &loc[1]), 0);
    assert_int_equal(file_size(seg_path(dir, 1)), size ? (off_t)MIB : seg_end(dir, 1));
    sp_done(sp, NULL, dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spare_resumed),
        cmocka_unit_test(test_spare_doubles),
        cmocka_unit_test(test_all_zero_segment),
        cmocka_unit_test(test_garbage_after_zeros),
        cmocka_unit_test(test_bad_record_before_zeros),
        cmocka_unit_test(test_no_spare_grows),
        cmocka_unit_test(test_spares_off),
        cmocka_unit_test(test_spares_auto),
    };
    log_init("test_spool_spare", getenv("TEST_VERBOSE") != NULL);
    return cmocka_run_group_tests(tests, spool_group_setup, spool_group_teardown);
}

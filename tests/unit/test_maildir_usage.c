/*
 * test_maildir_usage — the in-memory usage table: additions and removals
 * (clamped at zero), the oldest delivery, names without regard to case,
 * last login kept across set(), the start-up scan over a list of drops (a
 * missing maildir is zeros, a bad name an error that stops nothing), and
 * two threads adding at once losing no update.
 */
#include "maildir_fixture.h"

#include <pthread.h>
#include <stdatomic.h>

static int clear_setup(void **state)
{
    maildir_usage_clear();
    return 0;
}

static int dir_setup(void **state)
{
    maildir_usage_clear();
    return tdir_setup(state);
}

static void want(const char *drop, uint64_t bytes, uint64_t msgs, time_t oldest,
                 time_t login)
{
    struct maildir_usage u;
    maildir_usage_get(drop, &u);
    if (u.bytes != bytes || u.messages != msgs || u.oldest != oldest || u.last_login != login)
        fail_msg("%s: bytes %llu msgs %llu oldest %lld login %lld", drop,
                 (unsigned long long)u.bytes, (unsigned long long)u.messages,
                 (long long)u.oldest, (long long)u.last_login);
}

static void test_add_remove(void **state)
{
    want("alice@isp.example", 0, 0, 0, 0);              /* never seen */
    maildir_usage_add("alice@isp.example", 100, 1, 500);
    want("alice@isp.example", 100, 1, 500, 0);
    maildir_usage_add("alice@isp.example", 50, 1, 400);
    want("alice@isp.example", 150, 2, 400, 0);
    maildir_usage_add("alice@isp.example", 10, 1, 900);
    want("alice@isp.example", 160, 3, 400, 0);
    /* the oldest removed: its time stays until the next set() */
    maildir_usage_add("alice@isp.example", -50, -1, 400);
    want("alice@isp.example", 110, 2, 400, 0);
    /* more removed than known: zero, not a wrap; empty has no oldest */
    maildir_usage_add("alice@isp.example", -1000, -5, 0);
    want("alice@isp.example", 0, 0, 0, 0);
    maildir_usage_add("alice@isp.example", INT64_MIN, INT64_MIN, 0);
    want("alice@isp.example", 0, 0, 0, 0);
    maildir_usage_add("alice@isp.example", 7, 1, 0);    /* no time given */
    want("alice@isp.example", 7, 1, 0, 0);
    maildir_usage_add("alice@isp.example", 7, 1, 300);
    want("alice@isp.example", 14, 2, 300, 0);
    /* others untouched */
    want("bob@isp.example", 0, 0, 0, 0);
    maildir_usage_add(NULL, 1, 1, 1);
    maildir_usage_clear();
    want("alice@isp.example", 0, 0, 0, 0);
}

static void test_case(void **state)
{
    maildir_usage_add("Alice@ISP.Example", 10, 1, 5);
    want("alice@isp.example", 10, 1, 5, 0);
    maildir_usage_add("alice@isp.example", 10, 1, 5);
    want("ALICE@ISP.EXAMPLE", 20, 2, 5, 0);
}

static void test_set_and_login(void **state)
{
    struct maildir_msg m[3] = {
        { .file = "new/a", .vsize = 10, .mtime = 700 },
        { .file = "new/b", .vsize = 20, .mtime = 800 },
        { .file = "new/c", .vsize = 30, .mtime = 900 },
    };
    struct maildir_list l = { 3, m, 60 }, empty = { 0, NULL, 0 };
    maildir_usage_login("acme", 12345);
    want("acme", 0, 0, 0, 12345);
    maildir_usage_add("acme", 5, 1, 100);
    maildir_usage_add("acme", -5, -1, 100);
    maildir_usage_add("acme", 99, 9, 650);
    maildir_usage_set("acme", &l);                      /* recomputed */
    want("acme", 60, 3, 700, 12345);
    maildir_usage_set("acme", &empty);
    want("acme", 0, 0, 0, 12345);
    maildir_usage_login("acme", 23456);
    want("acme", 0, 0, 0, 23456);
}

static void test_scan(void **state)
{
    char root[4096], dir[4096], name[256], why[256] = "";
    mkpath(root, *state, "maildirs");
    assert_int_equal(maildir_path(root, "alice@isp.example", dir, sizeof dir), 0);
    deliver_text(dir, "one\r\n", name, sizeof name);   /* W=5 */
    deliver_text(dir, "two\r\nlines\r\n", name, sizeof name);   /* W=12 */
    assert_int_equal(maildir_path(root, "acme", dir, sizeof dir), 0);
    deliver_text(dir, "x\r\n", name, sizeof name);     /* W=3 */
    maildir_usage_add("bob@isp.example", 999, 9, 1);    /* stale: the scan resets it */
    maildir_usage_login("bob@isp.example", 42);
    const char *drops[] = { "alice@isp.example", "bob@isp.example", "acme" };
    assert_int_equal(maildir_usage_scan(root, drops, 3, why, sizeof why), 0);
    struct maildir_usage u;
    maildir_usage_get("alice@isp.example", &u);
    assert_int_equal(u.bytes, 17);
    assert_int_equal(u.messages, 2);
    assert_true(u.oldest > 1700000000);
    want("bob@isp.example", 0, 0, 0, 42);               /* no maildir: zeros */
    maildir_usage_get("acme", &u);
    assert_int_equal(u.bytes, 3);
    assert_int_equal(u.messages, 1);
    /* a bad name is reported; the others are still scanned */
    maildir_usage_clear();
    const char *bad[] = { "../etc", "acme", NULL };
    assert_int_equal(maildir_usage_scan(root, bad, 3, why, sizeof why), -1);
    assert_non_null(strstr(why, "../etc"));
    maildir_usage_get("acme", &u);
    assert_int_equal(u.messages, 1);
    /* an unreadable maildir: an error too */
    assert_int_equal(maildir_path(root, "carol@isp.example", dir, sizeof dir), 0);
    assert_int_equal(maildir_create(dir, why, sizeof why), 0);
    assert_int_equal(rmdir(at(dir, "new")), 0);
    put_file(at(dir, "new"), "", 0);
    const char *carol[] = { "carol@isp.example" };
    assert_int_equal(maildir_usage_scan(root, carol, 1, why, sizeof why), -1);
    assert_non_null(strstr(why, "Not a directory"));
}

enum { ROUNDS = 500000 };
static pthread_barrier_t start;
static atomic_int torn;     /* reads that saw half an update (cmocka's
                             * asserts belong to the main thread) */

static void *adder(void *arg)
{
    const char *own = arg;
    struct maildir_usage u;
    pthread_barrier_wait(&start);       /* both at once */
    for (int i = 0; i < ROUNDS; i++) {
        maildir_usage_add("shared", 3, 1, 1000 + i);
        maildir_usage_add(own, 1, 1, 1);
        if (i % 1000 == 0) {
            maildir_usage_get("shared", &u);
            if (u.messages * 3 != u.bytes)
                atomic_fetch_add(&torn, 1);
        }
        if (i % 2 == 1)     /* this thread's share never drops to 0 */
            maildir_usage_add("shared", -3, -1, 0);
    }
    return NULL;
}

static void test_threads(void **state)
{
    pthread_t a, b;
    pthread_barrier_init(&start, NULL, 2);
    assert_int_equal(pthread_create(&a, NULL, adder, "t1"), 0);
    assert_int_equal(pthread_create(&b, NULL, adder, "t2"), 0);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    pthread_barrier_destroy(&start);
    assert_int_equal(atomic_load(&torn), 0);
    want("shared", 3ULL * ROUNDS, ROUNDS, 1000, 0);
    want("t1", ROUNDS, ROUNDS, 1, 0);
    want("t2", ROUNDS, ROUNDS, 1, 0);
}

/* Many drops: each its own figures (the table grows). */
static void test_many_drops(void **state)
{
    char name[64];
    for (int i = 0; i < 5000; i++) {
        snprintf(name, sizeof name, "user%d@isp.example", i);
        maildir_usage_add(name, i, 1, 100 + i);
    }
    for (int i = 0; i < 5000; i += 7) {
        snprintf(name, sizeof name, "USER%d@isp.example", i);
        want(name, (uint64_t)i, 1, 100 + i, 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_add_remove, clear_setup),
        cmocka_unit_test_setup(test_case, clear_setup),
        cmocka_unit_test_setup(test_set_and_login, clear_setup),
        cmocka_unit_test_setup_teardown(test_scan, dir_setup, tdir_teardown),
        cmocka_unit_test_setup(test_threads, clear_setup),
        cmocka_unit_test_setup(test_many_drops, clear_setup),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    maildir_usage_clear();
    return rc;
}

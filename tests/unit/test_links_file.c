/*
 * test_links_file — unit tests of the link table's state files through
 * links.h: a batch appends only its changed links to the journal (the
 * snapshot stays as it is), a restart replays them, a torn tail is ignored
 * and compacted away, the journal is compacted once it outgrows the
 * snapshot, a version-1 file is read and rewritten as version 2,
 * links_stop() leaves the whole table in the snapshot, and a journal of
 * another generation is ignored.
 */
#include "links_fixture.h"

/* ---- tests ---- */

static void test_journal_appends(void **state)
{
    char *snap, *after, *journal, *before, *again;
    size_t jlen;
    assert_int_equal(set_wait("acme", 1, "192.0.2.7", 3600, LINK_SRC_RADIUS, "nas/1"), 0);
    assert_int_equal(SNAP_GEN(), 1);
    assert_int_equal(JOURNAL_GEN(), 1);
    assert_non_null(snap = read_state("links", NULL));
    assert_int_equal(count_lines(snap), 2);             /* header, acme */
    assert_non_null(journal = read_state("links.journal", &jlen));
    assert_int_equal(count_lines(journal), 1);          /* its header only */
    free(journal);

    assert_int_equal(set_wait("beta", 1, "192.0.2.8", 0, LINK_SRC_KICKQ, "k\tb"), 0);
    assert_int_equal(set_wait("acme", 0, NULL, 0, LINK_SRC_RADIUS, "nas/1"), 0);
    /* gamma takes beta's address: two records (beta down, gamma up) */
    assert_int_equal(set_wait("gamma", 1, "192.0.2.8", 60, LINK_SRC_NETLINK, "ppp0"), 0);
    assert_non_null(after = read_state("links", NULL));
    assert_string_equal(after, snap);                   /* the snapshot untouched */
    assert_non_null(journal = read_state("links.journal", &jlen));
    assert_int_equal(count_lines(journal), 5);          /* header + 4 records */
    const char *rec = strchr(journal, '\n') + 1;
    for (int i = 0; i < 8; i++)                         /* CRC, then the fields */
        assert_non_null(strchr("0123456789abcdef", rec[i]));
    assert_int_equal(rec[8], '\t');
    assert_non_null(strstr(journal, "\tbeta\t1\t192.0.2.8\t"));
    assert_non_null(strstr(journal, "k\\x09b"));        /* escaped as in the snapshot */

    before = table_text();
    links_restart();
    again = table_text();
    assert_string_equal(again, before);
    assert_false(links_get("acme")->up);
    assert_false(links_get("beta")->up);
    assert_true(links_get("gamma")->up);
    /* the address index came back from the journal too */
    assert_int_equal(set_wait("delta", 1, "192.0.2.8", 0, LINK_SRC_KICKQ, NULL), 0);
    assert_false(links_get("gamma")->up);
    free(snap);
    free(after);
    free(journal);
    free(before);
    free(again);
}

/* A torn tail (a record cut short, or one failing its CRC, and whatever
 * follows it) is ignored; the next write compacts it away. */
static void test_journal_torn_tail(void **state)
{
    struct evbuffer *b = evbuffer_new();
    struct link v = { .up = 1, .address = "192.0.2.66", .since = 5, .source = LINK_SRC_KICKQ };
    char *before, *after, *journal;
    size_t jlen, n;

    assert_int_equal(set_wait("acme", 1, "192.0.2.7", 0, LINK_SRC_KICKQ, NULL), 0);
    assert_int_equal(set_wait("beta", 1, "192.0.2.8", 0, LINK_SRC_KICKQ, NULL), 0);
    before = table_text();
    links_shutdown();

    /* a whole record with a wrong CRC, then a good one: both ignored */
    links_record_add(b, 1, "ghost", &v);
    n = evbuffer_get_length(b);
    char *bad = malloc(n);
    evbuffer_remove(b, bad, n);
    bad[0] = bad[0] == '0' ? '1' : '0';
    append_state("links.journal", bad, n);
    links_record_add(b, 1, "late", &v);
    n = evbuffer_get_length(b);
    append_state("links.journal", evbuffer_pullup(b, -1), n);
    evbuffer_drain(b, n);
    links_start();
    after = table_text();
    assert_string_equal(after, before);
    assert_null(links_get("ghost"));
    assert_null(links_get("late"));
    free(after);
    links_shutdown();

    /* a record of the right generation cut short (no LF): ignored, and
     * the whole records before it hold */
    assert_non_null(journal = read_state("links.journal", &jlen));
    char *cut = strstr(journal, "\tbeta\t");
    assert_non_null(cut);
    cut = strchr(cut, '\n');
    char path[512];
    snprintf(path, sizeof path, "%s/state/links.journal", dir);
    assert_int_equal(truncate(path, (off_t)(cut - journal)), 0);   /* beta's LF gone */
    links_start();
    assert_true(links_get("acme")->up);
    assert_null(links_get("beta"));
    free(journal);

    /* the next change compacts: a new generation, the tail gone */
    assert_int_equal(set_wait("gamma", 1, "192.0.2.9", 0, LINK_SRC_KICKQ, NULL), 0);
    assert_int_equal(SNAP_GEN(), 2);
    assert_int_equal(JOURNAL_GEN(), 2);
    assert_non_null(journal = read_state("links.journal", NULL));
    assert_int_equal(count_lines(journal), 1);
    free(journal);
    links_restart();
    assert_true(links_get("acme")->up);
    assert_true(links_get("gamma")->up);
    assert_null(links_get("beta"));
    evbuffer_free(b);
    free(bad);
    free(before);
}

/* Once the journal outgrows the snapshot (and its floor, 256 KiB), the next
 * write is a compaction: the whole table in a new snapshot, a fresh
 * journal; a restart gives the same table. */
static size_t counted;

static void count_fn(const struct link *l, int was_up, void *arg)
{
    counted++;
}

static void test_compaction(void **state)
{
    enum { N = 5000 };
    char name[16], addr[32], err[256], *before, *after, *snap, *journal;
    size_t jlen;
    links_shutdown();
    assert_int_equal(links_init(base, sp, count_fn, NULL, err, sizeof err), 0);
    assert_int_equal(set_wait("first", 1, "192.0.2.1", 0, LINK_SRC_KICKQ, NULL), 0);
    assert_int_equal(SNAP_GEN(), 1);
    for (int i = 0; i < N; i++) {           /* one batch: appended */
        snprintf(name, sizeof name, "c%04d", i);
        snprintf(addr, sizeof addr, "10.1.%d.%d", i / 250, i % 250 + 1);
        assert_int_equal(links_set(name, 1, addr, 3600, LINK_SRC_RADIUS, "nas/x", NULL,
                                   NULL, err, sizeof err), 0);
    }
    assert_int_equal(set_wait("c0000", 0, NULL, 0, LINK_SRC_RADIUS, NULL), 0);
    assert_int_equal(counted, 1 + N + 1);
    assert_int_equal(SNAP_GEN(), 1);
    assert_non_null(journal = read_state("links.journal", &jlen));
    assert_true(jlen > 256 * 1024);
    assert_int_equal(count_lines(journal), 1 + N + 1);
    free(journal);

    assert_int_equal(set_wait("last", 1, "192.0.2.2", 0, LINK_SRC_KICKQ, NULL), 0);
    assert_int_equal(SNAP_GEN(), 2);
    assert_int_equal(JOURNAL_GEN(), 2);
    assert_non_null(journal = read_state("links.journal", NULL));
    assert_int_equal(count_lines(journal), 1);
    assert_non_null(snap = read_state("links", NULL));
    assert_int_equal(count_lines(snap), 1 + N + 2);
    before = table_text();
    links_shutdown();
    assert_int_equal(links_init(base, sp, count_fn, NULL, err, sizeof err), 0);
    after = table_text();
    assert_string_equal(after, before);
    assert_false(links_get("c0000")->up);
    assert_true(links_get("c4999")->up);
    free(journal);
    free(snap);
    free(before);
    free(after);
}

/* A version-1 file (no generation, no journal) is read as before; the
 * first write makes it version 2 with a journal.  A journal beside it is
 * never applied (generation 0 has none). */
static void test_old_format(void **state)
{
    char text[512], *snap;
    int64_t now = now_s();
    links_shutdown();
    snprintf(text, sizeof text,
             "# kickmail links 1\n"
             "acme\t1\t192.0.2.1\t%lld\t%lld\tradius\tnas/7\n"
             "beta\t0\t192.0.2.2\t100\t0\tkickq\t\n",
             (long long)now, (long long)now + 600);
    write_state(text);
    const char *stray = "# kickmail links-journal 1 0\n";
    append_state("links.journal", stray, strlen(stray));
    links_start();
    assert_true(links_get("acme")->up);
    assert_string_equal(links_get("acme")->session, "nas/7");
    assert_int_equal(links_get("acme")->expires, now + 600);
    assert_false(links_get("beta")->up);
    assert_int_equal(links_get("beta")->since, 100);

    assert_int_equal(set_wait("gamma", 1, "192.0.2.3", 0, LINK_SRC_KICKQ, NULL), 0);
    assert_int_equal(SNAP_GEN(), 1);
    assert_int_equal(JOURNAL_GEN(), 1);
    assert_non_null(snap = read_state("links", NULL));
    assert_non_null(strstr(snap, "acme\t1\t192.0.2.1\t"));
    assert_non_null(strstr(snap, "\ngamma\t1\t192.0.2.3\t"));
    free(snap);
    links_restart();
    assert_true(links_get("acme")->up);
    assert_int_equal(links_get("beta")->since, 100);
    assert_true(links_get("gamma")->up);
}

/* links_stop(): the whole table goes to a new snapshot behind the writes
 * in flight; the journal, of the old generation now, is ignored at the
 * next start, and the first write there compacts. */
static void test_stop_compacts(void **state)
{
    struct waiter w = {"late", 0, 0};
    char err[256], *before, *after, *snap;
    assert_int_equal(set_wait("acme", 1, "192.0.2.7", 0, LINK_SRC_KICKQ, NULL), 0);
    assert_int_equal(set_wait("beta", 1, "192.0.2.8", 0, LINK_SRC_KICKQ, NULL), 0);
    assert_int_equal(links_set("gamma", 1, "192.0.2.9", 0, LINK_SRC_KICKQ, NULL, set_cb,
                               &w, err, sizeof err), 0);      /* in flight */
    before = table_text();
    links_stop();
    assert_int_equal(links_set("delta", 1, "192.0.2.10", 0, LINK_SRC_KICKQ, NULL, set_cb,
                               &w, err, sizeof err), -1);
    assert_non_null(strstr(err, "stopping"));
    links_shutdown();
    run_for(0.3);                           /* the spool writes what was queued */
    assert_int_equal(SNAP_GEN(), 2);
    assert_int_equal(JOURNAL_GEN(), 1);     /* stale now */
    assert_non_null(snap = read_state("links", NULL));
    assert_int_equal(count_lines(snap), 4);
    assert_non_null(strstr(snap, "\ngamma\t1\t192.0.2.9\t"));
    links_start();
    after = table_text();
    assert_string_equal(after, before);
    assert_int_equal(set_wait("delta", 1, "192.0.2.10", 0, LINK_SRC_KICKQ, NULL), 0);
    assert_int_equal(SNAP_GEN(), 3);
    assert_int_equal(JOURNAL_GEN(), 3);
    links_restart();
    assert_true(links_get("gamma")->up);
    assert_true(links_get("delta")->up);
    free(before);
    free(after);
    free(snap);
}

/* A journal of another generation than the snapshot's (a compaction cut
 * short between its two files) changes nothing. */
static void test_stale_journal(void **state)
{
    struct evbuffer *b = evbuffer_new();
    struct link v = { .up = 1, .address = "192.0.2.66", .since = 5, .source = LINK_SRC_KICKQ };
    char hdr[64];
    assert_int_equal(set_wait("acme", 1, "192.0.2.7", 0, LINK_SRC_KICKQ, NULL), 0);
    links_shutdown();
    write_state("# kickmail links 2 5\nacme\t0\t192.0.2.7\t9\t0\tkickq\t\n");
    evbuffer_add(b, hdr, links_journal_header(4, hdr, sizeof hdr));
    links_record_add(b, 4, "ghost", &v);
    char path[512];
    snprintf(path, sizeof path, "%s/state/links.journal", dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fwrite(evbuffer_pullup(b, -1), 1, evbuffer_get_length(b), f);
    fclose(f);
    links_start();
    assert_false(links_get("acme")->up);
    assert_null(links_get("ghost"));
    /* the next compaction takes a generation above both */
    assert_int_equal(set_wait("beta", 1, "192.0.2.8", 0, LINK_SRC_KICKQ, NULL), 0);
    assert_int_equal(SNAP_GEN(), 6);
    assert_int_equal(JOURNAL_GEN(), 6);
    evbuffer_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_journal_appends, setup, teardown),
        cmocka_unit_test_setup_teardown(test_journal_torn_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_old_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_compacts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_journal, setup, teardown),
    };
    return links_run_tests("test_links_file", tests, sizeof tests / sizeof tests[0]);
}

/*
 * links_fixture — what the link table's unit tests share (test_links.c,
 * test_links_file.c): a real event loop and spool in a mkdtemp directory,
 * callbacks that record what they saw, links_set() that waits for its
 * completion, restarts, and reading, writing and breaking the state files.
 * Header-only: each test program includes it once.
 */
#ifndef KM_TEST_LINKS_FIXTURE_H
#define KM_TEST_LINKS_FIXTURE_H

#pragma GCC diagnostic ignored "-Wunused-function"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "core/log.h"
#include "core/util.h"
#include "link/links.h"
#include "spool/spool.h"
#include "../../src/link/links_file.h"

#include <event2/buffer.h>

#define MAXEV 64

/* What the callbacks saw, in order: "fn CUSTOMER up|down was_up" / "cb TAG err". */
struct rec_ev {
    char text[128];
    struct link l;              /* fn: the snapshot (customer points into text) */
    int was_up;
};

static struct event_base *base;
static struct spool *sp;
static char *dir;
static struct rec_ev evs[MAXEV];
static size_t nev, nfn;
static char customer_buf[MAXEV][80];

/* ---- helpers ---- */

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    return remove(path);
}

static struct rec_ev *rec_add(void)
{
    assert_true(nev < MAXEV);
    memset(&evs[nev], 0, sizeof evs[nev]);
    return &evs[nev++];
}

static void change_fn(const struct link *l, int was_up, void *arg)
{
    struct rec_ev *e = rec_add();
    snprintf(e->text, sizeof e->text, "fn %s %s %d", l->customer, l->up ? "up" : "down",
             was_up);
    e->l = *l;
    snprintf(customer_buf[e - evs], sizeof customer_buf[0], "%s", l->customer);
    e->l.customer = customer_buf[e - evs];
    e->was_up = was_up;
    nfn++;
    assert_int_equal((int)(intptr_t)arg, 42);
}

struct waiter {
    const char *tag;
    int done, err;
};

static void set_cb(int err, void *arg)
{
    struct waiter *w = arg;
    struct rec_ev *e = rec_add();
    snprintf(e->text, sizeof e->text, "cb %s %d", w->tag, err);
    w->done++;
    w->err = err;
}

/* Runs the loop until *flag is set or max_s passed. */
static void run_until(const int *flag, double max_s)
{
    double end = util_now_mono() + max_s;
    while (!*flag && util_now_mono() < end) {
        struct timeval tv = {0, 5000};
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
    }
}

static void run_for(double s)
{
    int never = 0;
    run_until(&never, s);
}

/* links_set, then waits for its callback; returns its err (-1: refused). */
static int set_wait(const char *customer, int up, const char *addr, long ttl,
                    enum link_source src, const char *session)
{
    struct waiter w = {customer, 0, 0};
    char err[256] = "";
    if (links_set(customer, up, addr, ttl, src, session, set_cb, &w, err, sizeof err) < 0)
        return -1;
    run_until(&w.done, 5);
    assert_int_equal(w.done, 1);
    return w.err;
}

static void links_start(void)
{
    char err[256];
    if (links_init(base, sp, change_fn, (void *)(intptr_t)42, err, sizeof err) < 0)
        fail_msg("links_init: %s", err);
}

static void links_restart(void)
{
    links_shutdown();
    links_start();
}

static void write_state(const char *text)
{
    char path[512];
    FILE *f;
    snprintf(path, sizeof path, "%s/state/links", dir);
    assert_non_null(f = fopen(path, "w"));
    fputs(text, f);
    fclose(f);
}

/* Makes state writes fail (on) or work again (off): the spool writes
 * state/links.tmp first and appends to state/links.journal, and cannot open
 * a directory for writing; the journal is kept aside meanwhile. */
static void state_fail(int on)
{
    char tmp[512], journal[512], aside[512];
    snprintf(tmp, sizeof tmp, "%s/state/links.tmp", dir);
    snprintf(journal, sizeof journal, "%s/state/links.journal", dir);
    snprintf(aside, sizeof aside, "%s/state/journal.aside", dir);
    if (on) {
        assert_int_equal(mkdir(tmp, 0700), 0);
        if (rename(journal, aside) < 0)
            assert_int_equal(errno, ENOENT);
        assert_int_equal(mkdir(journal, 0700), 0);
    } else {
        assert_int_equal(rmdir(tmp), 0);
        assert_int_equal(rmdir(journal), 0);
        if (rename(aside, journal) < 0)
            assert_int_equal(errno, ENOENT);
    }
}

/* state/NAME's bytes, NUL-terminated (free() them), or NULL when absent. */
static char *read_state(const char *name, size_t *len)
{
    char path[512], *buf;
    FILE *f;
    long n;
    snprintf(path, sizeof path, "%s/state/%s", dir, name);
    if (!(f = fopen(path, "rb")))
        return NULL;
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    n = ftell(f);
    rewind(f);
    buf = malloc((size_t)n + 1);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = 0;
    fclose(f);
    if (len)
        *len = (size_t)n;
    return buf;
}

static void append_state(const char *name, const void *bytes, size_t len)
{
    char path[512];
    FILE *f;
    snprintf(path, sizeof path, "%s/state/%s", dir, name);
    assert_non_null(f = fopen(path, "ab"));
    assert_int_equal(fwrite(bytes, 1, len, f), len);
    fclose(f);
}

/* The generation in the first line of state/NAME (after magic), or -1. */
static long state_gen(const char *name, const char *magic)
{
    char *text = read_state(name, NULL);
    long gen = -1;
    size_t ml = strlen(magic);
    if (text && strncmp(text, magic, ml) == 0)
        gen = strtol(text + ml, NULL, 10);
    free(text);
    return gen;
}

#define SNAP_GEN()    state_gen("links", "# kickmail links 2 ")
#define JOURNAL_GEN() state_gen("links.journal", "# kickmail links-journal 1 ")

static size_t count_lines(const char *text)
{
    size_t n = 0;
    for (; text && *text; text++)
        n += *text == '\n';
    return n;
}

/* Every link as "customer up address since expires source session", one a
 * line, in name order (free() it). */
static char *table_text(void)
{
    struct evbuffer *b = evbuffer_new();
    const struct link *l;
    size_t pos = 0, n;
    char *out;
    while ((l = links_next(&pos)) != NULL)
        evbuffer_add_printf(b, "%s %d %s %lld %lld %s %s\n", l->customer, l->up, l->address,
                            (long long)l->since, (long long)l->expires,
                            links_source_name(l->source), l->session);
    n = evbuffer_get_length(b);
    out = malloc(n + 1);
    evbuffer_remove(b, out, n);
    out[n] = 0;
    evbuffer_free(b);
    return out;
}

static int setup(void **state)
{
    char t[] = "/tmp/test_links.XXXXXX", err[256];
    assert_non_null(mkdtemp(t));
    dir = strdup(t);
    if (!(sp = spool_open(dir, base, err, sizeof err)))
        fail_msg("spool_open: %s", err);
    nev = nfn = 0;
    links_start();
    return 0;
}

static int teardown(void **state)
{
    links_shutdown();
    links_restrict(NULL);
    spool_close(sp);
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(dir);
    return 0;
}

static int64_t now_s(void)
{
    return util_now_us() / 1000000;
}

/* main() of a links test program: the log, the event loop, the group run. */
static int links_run_tests(const char *name, const struct CMUnitTest *tests, size_t n)
{
    int rc;
    log_init(name, getenv("TEST_VERBOSE") != NULL);
    unsetenv("KICKMAIL_TEST_FAIL_WRITES");
    evthread_use_pthreads();
    base = event_base_new();
    rc = _cmocka_run_group_tests(name, tests, n, NULL, NULL);
    event_base_free(base);
    return rc;
}

#endif

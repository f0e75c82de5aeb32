/*
 * test_log — unit tests of the logger (log.h) with its stderr lines sent to
 * a pipe (log_test_set_fd): the line format; lines from several threads come
 * out whole and each thread's in order; many lines take far fewer writes
 * (batching); a full queue drops lines without blocking the caller and the
 * stream reports exactly how many went missing where; log_flush() and
 * log_close() (idempotent, then synchronous, then log_init starts over);
 * long texts cut; log_debug gating; log_fatal in a forked child writes what
 * was queued, then its line, then aborts.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/log.h"

#define IDENT    "test_log"
#define SENTINEL "--end of capture--\n"

/* The pipe the logger writes to, and what came out of it. */
struct cap {
    int rfd, wfd;
    int threaded;               /* a reader thread drains the pipe */
    pthread_t th;
    char *buf;
    size_t len, size;
};

static void cap_append(struct cap *c, const char *p, size_t n)
{
    if (c->len + n + 1 > c->size) {
        c->size = (c->len + n + 1) * 2;
        c->buf = realloc(c->buf, c->size);
        assert_non_null(c->buf);
    }
    memcpy(c->buf + c->len, p, n);
    c->len += n;
    c->buf[c->len] = 0;
}

static int cap_ended(const struct cap *c)
{
    size_t n = strlen(SENTINEL);
    return c->len >= n && memcmp(c->buf + c->len - n, SENTINEL, n) == 0;
}

static void *cap_reader(void *arg)
{
    struct cap *c = arg;
    char chunk[65536];
    while (!cap_ended(c)) {
        ssize_t n = read(c->rfd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        cap_append(c, chunk, (size_t)n);
    }
    return NULL;
}

static void cap_open(struct cap *c)
{
    int fds[2];
    memset(c, 0, sizeof *c);
    assert_int_equal(pipe(fds), 0);
    c->rfd = fds[0];
    c->wfd = fds[1];
    log_init(IDENT, 1);
    log_test_set_fd(c->wfd);
}

static void cap_start_reader(struct cap *c)
{
    assert_int_equal(pthread_create(&c->th, NULL, cap_reader, c), 0);
    c->threaded = 1;
}

/* What is in the pipe now, without waiting. */
static void cap_drain(struct cap *c)
{
    char chunk[65536];
    ssize_t n;
    fcntl(c->rfd, F_SETFL, O_NONBLOCK);
    while ((n = read(c->rfd, chunk, sizeof chunk)) > 0)
        cap_append(c, chunk, (size_t)n);
    fcntl(c->rfd, F_SETFL, 0);
}

/* Flushes the logger; everything it wrote is in c->buf (NUL-terminated). */
static void cap_close(struct cap *c)
{
    log_flush();
    if (c->threaded) {
        assert_int_equal(write(c->wfd, SENTINEL, strlen(SENTINEL)), (ssize_t)strlen(SENTINEL));
        pthread_join(c->th, NULL);
        assert_true(cap_ended(c));
        c->len -= strlen(SENTINEL);
        c->buf[c->len] = 0;
    } else {
        cap_drain(c);
    }
    if (!c->buf)
        cap_append(c, "", 0);
    log_test_set_fd(-1);
    close(c->rfd);
    close(c->wfd);
}

/* The lines of buf (modified), at most max; their count. */
static size_t split_lines(char *buf, char **lines, size_t max)
{
    size_t n = 0;
    char *save = NULL;
    for (char *l = strtok_r(buf, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        assert_true(n < max);
        lines[n++] = l;
    }
    return n;
}

/* "HH:MM:SS.mmm test_log: TEXT" → TEXT, or fails the test. */
static const char *line_text(const char *line)
{
    static const char shape[] = "99:99:99.999 ";
    for (size_t i = 0; i < sizeof shape - 1; i++) {
        if (shape[i] == '9' ? line[i] < '0' || line[i] > '9' : line[i] != shape[i]) {
            print_error("bad line: \"%s\"\n", line);
            fail();
        }
    }
    if (strncmp(line + 13, IDENT ": ", strlen(IDENT) + 2) != 0) {
        print_error("bad ident: \"%s\"\n", line);
        fail();
    }
    return line + 13 + strlen(IDENT) + 2;
}

/* What is in c->buf: n lines, the last of them with this text; then
 * forgets them (the capture goes on). */
static void cap_expect(struct cap *c, size_t n, const char *last)
{
    char *lines[8];
    assert_non_null(c->buf);
    assert_true(n >= 1 && n <= 8);
    assert_int_equal(split_lines(c->buf, lines, 8), n);
    assert_string_equal(line_text(lines[n - 1]), last);
    free(c->buf);
    c->buf = NULL;
    c->len = c->size = 0;
}

/* ---- tests ---- */

static void test_format(void **state)
{
    struct cap c;
    char *lines[8];
    cap_open(&c);
    log_info("%s: from=<%s>, size=%d", "3F2A1B9C", "a@b.example", 42);
    log_warn("warned");
    log_err("an error");
    cap_close(&c);
    assert_int_equal(split_lines(c.buf, lines, 8), 3);
    assert_string_equal(line_text(lines[0]), "3F2A1B9C: from=<a@b.example>, size=42");
    assert_string_equal(line_text(lines[1]), "warned");
    assert_string_equal(line_text(lines[2]), "an error");
    free(c.buf);
}

#define NTHREADS 4
#define PER_THREAD 2000

static void *logging_thread(void *arg)
{
    int t = (int)(intptr_t)arg;
    for (int i = 0; i < PER_THREAD; i++)
        log_info("thread=%d n=%d padding=%.*s", t, i, i % 50, "..................................................");
    return NULL;
}

static void test_threads_in_order(void **state)
{
    struct cap c;
    pthread_t th[NTHREADS];
    static char *lines[NTHREADS * PER_THREAD + 1];
    int next[NTHREADS] = { 0 };
    cap_open(&c);
    log_test_set_cap(64u << 20);        /* no drops, however slow the reader */
    cap_start_reader(&c);
    for (int t = 0; t < NTHREADS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, logging_thread, (void *)(intptr_t)t), 0);
    for (int t = 0; t < NTHREADS; t++)
        pthread_join(th[t], NULL);
    cap_close(&c);
    log_test_set_cap(0);
    size_t n = split_lines(c.buf, lines, NTHREADS * PER_THREAD + 1);
    assert_int_equal(n, NTHREADS * PER_THREAD);
    for (size_t i = 0; i < n; i++) {
        int t, k, used = 0;
        const char *text = line_text(lines[i]);
        if (sscanf(text, "thread=%d n=%d padding=%n", &t, &k, &used) != 2 || !used ||
            t < 0 || t >= NTHREADS || k != next[t] ||
            strspn(text + used, ".") != (size_t)(k % 50) || text[used + k % 50]) {
            print_error("line %zu out of order or damaged: \"%s\"\n", i, lines[i]);
            fail();
        }
        next[t]++;
    }
    free(c.buf);
}

static void test_batching(void **state)
{
    enum { N = 10000 };
    static char *lines[N + 1];
    struct cap c;
    cap_open(&c);
    log_test_set_cap(64u << 20);
    cap_start_reader(&c);
    log_flush();
    unsigned long w0 = log_test_writes();
    for (int i = 0; i < N; i++)
        log_info("batched n=%d", i);
    log_flush();
    unsigned long writes = log_test_writes() - w0;
    cap_close(&c);
    log_test_set_cap(0);
    assert_int_equal(split_lines(c.buf, lines, N + 1), N);
    for (int i = 0; i < N; i++) {
        char want[32];
        snprintf(want, sizeof want, "batched n=%d", i);
        assert_string_equal(line_text(lines[i]), want);
    }
    print_message("%d lines in %lu writes\n", N, writes);
    assert_true(writes >= 1);
    assert_true(writes <= N / 10);      /* in practice a few dozen */
    free(c.buf);
}

/* The pipe is not read at first: the writer blocks in write(2), the queue
 * (16 KiB) fills, and further lines are dropped while log_info returns. */
static void test_cap_drops(void **state)
{
    enum { N = 5000 };
    static char *lines[N + 64];
    struct cap c;
    cap_open(&c);
    log_test_set_cap(16384);
    for (int i = 0; i < N; i++)
        log_info("capped n=%d %s", i, "0123456789012345678901234567890123456789");
    cap_start_reader(&c);
    cap_close(&c);
    log_test_set_cap(0);
    size_t n = split_lines(c.buf, lines, N + 64);
    long prev = -1;
    unsigned long seen = 0, reported = 0, notices = 0, pending = 0;
    for (size_t i = 0; i < n; i++) {
        const char *text = line_text(lines[i]);
        int k;
        if (strncmp(text, "log: ", 5) == 0) {
            char want[80];
            unsigned long d = strtoul(text + 5, NULL, 10);
            snprintf(want, sizeof want, "log: %lu lines dropped (log writer too slow)", d);
            assert_string_equal(text, want);
            assert_true(d > 0);
            assert_int_equal(pending, 0);   /* one notice per gap */
            pending = d;
            reported += d;
            notices++;
            continue;
        }
        assert_int_equal(sscanf(text, "capped n=%d", &k), 1);
        assert_int_equal(k - prev - 1, pending);   /* the gap is what it said */
        pending = 0;
        prev = k;
        seen++;
    }
    assert_int_equal(N - 1 - prev, pending);
    print_message("%lu lines written, %lu dropped, %lu notices\n", seen, reported, notices);
    assert_true(notices >= 1);
    assert_int_equal(seen + reported, N);
    free(c.buf);
}

static void test_flush(void **state)
{
    struct cap c;
    cap_open(&c);
    log_info("one");
    log_info("two");
    log_info("three");
    log_flush();
    cap_drain(&c);                      /* all there, without waiting */
    cap_expect(&c, 3, "three");
    cap_close(&c);
    free(c.buf);
}

static void test_close_then_sync(void **state)
{
    struct cap c;
    cap_open(&c);
    log_info("before close 1");
    log_info("before close 2");
    log_close();
    cap_drain(&c);
    cap_expect(&c, 2, "before close 2");

    log_close();                        /* again: nothing to do */
    unsigned long w0 = log_test_writes();
    log_info("after close");            /* written before log_info returns */
    assert_int_equal(log_test_writes() - w0, 1);
    cap_drain(&c);
    cap_expect(&c, 1, "after close");
    log_flush();                        /* no writer: returns at once */

    log_init(IDENT, 1);                 /* starts over: a writer again */
    log_info("restarted");
    cap_close(&c);
    cap_expect(&c, 1, "restarted");
}

/* The pipe is not read: the writer is stuck in write(2), like one writing to
 * a syslogd that stopped reading.  log_close gives up after its wait instead
 * of hanging the exit; once the pipe is read again the writer finishes what
 * it had, and a later log_close makes logging synchronous again. */
static void test_close_stuck_writer(void **state)
{
    struct cap c;
    cap_open(&c);
    log_test_set_close_wait(200);
    for (int i = 0; i < 2000; i++)      /* ~150 KB: more than a pipe holds */
        log_info("stuck n=%d %s", i, "01234567890123456789012345678901234567890123456789");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    log_close();
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double took = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    print_message("log_close returned after %.3f s\n", took);
    assert_true(took >= 0.15 && took < 2.0);
    log_close();                        /* again, at exit: no second wait */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_true((double)(t0.tv_sec - t1.tv_sec) + (t0.tv_nsec - t1.tv_nsec) / 1e9 < 0.1);

    cap_start_reader(&c);               /* unstuck: it writes the rest */
    int sync = 0;
    for (int i = 0; i < 500 && !sync; i++) {
        log_close();                    /* resets once the writer ended */
        unsigned long w0 = log_test_writes();
        log_info("sync?");
        sync = log_test_writes() - w0 == 1;
        if (!sync)
            usleep(10000);
    }
    assert_true(sync);
    log_test_set_close_wait(-1);
    cap_close(&c);
    char **lines = calloc(4096, sizeof *lines);
    size_t n = split_lines(c.buf, lines, 4096), stuck = 0;
    for (size_t i = 0; i < n; i++)
        stuck += strncmp(line_text(lines[i]), "stuck n=", 8) == 0;
    assert_int_equal(stuck, 2000);      /* nothing queued was lost */
    assert_string_equal(line_text(lines[n - 1]), "sync?");
    free(lines);
    free(c.buf);
}

static void test_long_text_cut(void **state)
{
    struct cap c;
    char *lines[4];
    char *big = malloc(10001);
    assert_non_null(big);
    memset(big, 'x', 10000);
    big[10000] = 0;
    cap_open(&c);
    log_info("%s", big);
    cap_close(&c);
    assert_int_equal(split_lines(c.buf, lines, 4), 1);
    const char *text = line_text(lines[0]);
    assert_int_equal(strlen(text), 4095);
    assert_int_equal(strspn(text, "x"), 4095);
    free(big);
    free(c.buf);
}

static void test_debug_gating(void **state)
{
    struct cap c;
    cap_open(&c);
    log_debug("hidden");
    log_set_debug(1);
    log_debug("shown");
    log_set_debug(0);
    log_debug("hidden too");
    cap_close(&c);
    cap_expect(&c, 1, "shown");
}

/* Without stderr and without /dev/log nothing is queued or written. */
static void test_no_output(void **state)
{
    if (access(_PATH_LOG, F_OK) == 0)
        skip();
    log_init(IDENT, 0);
    unsigned long w0 = log_test_writes();
    for (int i = 0; i < 100; i++)
        log_info("nowhere %d", i);
    log_flush();
    assert_int_equal(log_test_writes(), w0);
    log_init(IDENT, 1);
}

static void test_fatal_in_child(void **state)
{
    enum { N = 100 };
    static char *lines[N + 8];
    struct cap c;
    int status;
    cap_open(&c);
    log_info("parent line");            /* the parent has a writer running */
    log_flush();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct rlimit no_core = { 0, 0 };
        setrlimit(RLIMIT_CORE, &no_core);
        for (int i = 0; i < N; i++)
            log_info("child n=%d", i);
        log_fatal("broken invariant %d", 7);
    }
    close(c.wfd);
    c.wfd = open("/dev/null", O_WRONLY);        /* for cap_close */
    char chunk[4096];
    ssize_t n;
    while ((n = read(c.rfd, chunk, sizeof chunk)) > 0)
        cap_append(&c, chunk, (size_t)n);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
    char *got = c.buf;
    c.buf = NULL;
    c.len = c.size = 0;
    cap_close(&c);
    free(c.buf);
    assert_non_null(got);
    size_t nl = split_lines(got, lines, N + 8);
    assert_int_equal(nl, N + 2);
    assert_string_equal(line_text(lines[0]), "parent line");
    for (int i = 0; i < N; i++) {
        char want[32];
        snprintf(want, sizeof want, "child n=%d", i);
        assert_string_equal(line_text(lines[i + 1]), want);
    }
    assert_string_equal(line_text(lines[N + 1]), "broken invariant 7");
    free(got);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_threads_in_order),
        cmocka_unit_test(test_batching),
        cmocka_unit_test(test_cap_drops),
        cmocka_unit_test(test_flush),
        cmocka_unit_test(test_long_text_cut),
        cmocka_unit_test(test_debug_gating),
        cmocka_unit_test(test_no_output),
        cmocka_unit_test(test_fatal_in_child),
        cmocka_unit_test(test_close_then_sync),
        cmocka_unit_test(test_close_stuck_writer),
    };
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * log — syslog (LOG_MAIL) and optionally stderr, written by a writer thread
 * so that no caller (the event loop above all) ever waits for syslogd or a
 * slow terminal.  Trusts nothing it prints: callers pass peer text through as
 * data in "%s" only.  Never fails and never blocks the caller on output.
 *
 * A caller formats its line on its own thread (the stderr time prefix is
 * taken at the call; "HH:MM:SS" is computed once per second, not per line)
 * and appends it under a mutex to a queue of at most LOG_CAP bytes; it wakes
 * the writer only when the queue was empty.  The writer, once woken, gathers
 * for LOG_GATHER_NS more, swaps the queue with its own buffer and writes the
 * whole batch: the stderr lines with one write(2) (they are contiguous), then
 * one syslog(3) per line (only the writer calls syslog while it runs).  Lines
 * keep their order.  A full queue drops new lines and counts them; when the
 * writer next empties the queue it writes "log: N lines dropped (log writer
 * too slow)" at that point of the stream.
 *
 * The writer starts with the first queued line and is stopped by log_close()
 * (registered with atexit() as well, so exit() loses nothing); after it, or
 * if the thread cannot be created, lines are written synchronously by the
 * caller.  log_fatal() flushes the queue (for at most LOG_FATAL_WAIT_MS), then
 * writes its own line synchronously and aborts.  A forked child starts with
 * an empty queue and no writer (its first line starts one).
 */
#include <errno.h>
#include <paths.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"

#define LOG_MSG_MAX       4096          /* a text is cut to 4095 bytes */
#define LOG_IDENT_MAX     64            /* of the ident in the stderr prefix */
#define LOG_CAP           (1u << 20)    /* queued bytes before lines are dropped */
#define LOG_CAP_MIN       8192          /* always room for one longest line */
/* After a wake-up the writer waits this long for more lines (or until the
 * queue is half full, or somebody flushes).  Each wake-up is a futex wake
 * from the loop, costly on a VM: smtp-source -s 20, 2 x 8 alternating
 * pairs, 10 ms against 1 ms: 102 vs 108 and 97 vs 105 us of CPU per
 * accepted message, 1.07x and 1.01x msg/s. */
#define LOG_GATHER_NS     10000000L
#define LOG_FATAL_WAIT_MS 2000          /* log_fatal's flush, if syslog hangs */
#define LOG_CLOSE_WAIT_MS 5000          /* log_close's, the same */

enum { OUT_STDERR = 1, OUT_SYSLOG = 2 };
enum { W_NONE, W_RUNNING, W_SYNC };     /* no writer yet / writer / synchronous */

/* One line of a batch: text[off, off+len) is the stderr line with its '\n';
 * from off+msg on is what syslog gets (without the '\n'). */
struct log_rec {
    uint32_t off, len;
    uint16_t msg;
    uint8_t prio;
    uint8_t out;
};

struct log_buf {
    char *text;
    size_t len, size;
    struct log_rec *recs;
    size_t n, nalloc;
};

static int log_stderr;
static int log_debug_on;
static char log_ident[LOG_IDENT_MAX + 1] = "kickmaild";

/* Everything below is under mu, except w (the writer's own batch). */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t wake;        /* writer: lines, a drop, a flush or stop */
    pthread_cond_t done;        /* flushers and closers: written moved on */
    pthread_t thread;
    int state;                  /* W_* */
    int stop;                   /* log_close: drain, then exit */
    int abandoned;              /* log_close gave up waiting: detached */
    long close_wait_ms;         /* how long log_close waits for it */
    int flushers;               /* waiting in flush_wait: do not gather */
    int hooks;                  /* atexit/atfork registered */
    struct log_buf q;           /* the queue callers append to */
    struct log_buf w;           /* the batch being written */
    size_t cap;
    unsigned long dropped;      /* since the queue last emptied */
    uint64_t seq;               /* lines (and drop notices) queued so far */
    uint64_t written;           /* of those, lines written */
    int fd;                     /* where stderr lines go */
    time_t hms_sec;             /* the second hms[] shows */
    char hms[9];
} L = {
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .wake = PTHREAD_COND_INITIALIZER,
    .done = PTHREAD_COND_INITIALIZER,
    .cap = LOG_CAP,
    .close_wait_ms = LOG_CLOSE_WAIT_MS,
    .fd = STDERR_FILENO,
    .hms_sec = -1,
};

static atomic_ulong log_writes;         /* write calls on L.fd (tests) */
static atomic_int log_syslog_off;       /* log_test_set_syslog(0) */

void log_init(const char *ident, int to_stderr)
{
    pthread_mutex_lock(&L.mu);
    snprintf(log_ident, sizeof log_ident, "%s", ident);
    log_stderr = to_stderr;
    if (L.state == W_SYNC && !L.stop)
        L.state = W_NONE;               /* after log_close: may start again */
    pthread_mutex_unlock(&L.mu);
    openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void log_set_debug(int on)
{
    log_debug_on = on;
}

/* Is there a syslog socket?  Without one glibc's syslog() tries to connect
 * again on every call (socket, connect, close): several wasted system calls
 * per log line.  Checked again every 10 seconds.  Any thread. */
static int syslog_usable(time_t now)
{
    static atomic_int usable;
    static atomic_llong next_check;
    if (atomic_load_explicit(&log_syslog_off, memory_order_relaxed))
        return 0;
    if ((long long)now >= atomic_load_explicit(&next_check, memory_order_relaxed)) {
        atomic_store_explicit(&next_check, (long long)now + 10, memory_order_relaxed);
        atomic_store(&usable, access(_PATH_LOG, W_OK) == 0);
    }
    return atomic_load(&usable);
}

/* ---- lines ---- */

/* "HH:MM:SS.mmm ident: " into p (room for 15 + LOG_IDENT_MAX); its length.
 * Under L.mu (the per-second cache). */
static size_t line_prefix(char *p, const struct timespec *ts)
{
    if (ts->tv_sec != L.hms_sec) {
        struct tm tm;
        localtime_r(&ts->tv_sec, &tm);
        if (strftime(L.hms, sizeof L.hms, "%H:%M:%S", &tm) != 8)
            memcpy(L.hms, "??:??:??", 9);
        L.hms_sec = ts->tv_sec;
    }
    unsigned ms = (unsigned)(ts->tv_nsec / 1000000) % 1000;
    memcpy(p, L.hms, 8);
    p[8] = '.';
    p[9] = (char)('0' + ms / 100);
    p[10] = (char)('0' + ms / 10 % 10);
    p[11] = (char)('0' + ms % 10);
    p[12] = ' ';
    size_t n = strlen(log_ident);
    memcpy(p + 13, log_ident, n);
    memcpy(p + 13 + n, ": ", 2);
    return 15 + n;
}

/* Appends one line to b (which may grow past any cap: the caller checks).
 * 0, or -1 when out of memory. */
static int buf_add(struct log_buf *b, int prio, int out, const struct timespec *ts,
                   const char *msg, size_t mlen)
{
    char pre[16 + LOG_IDENT_MAX];
    size_t plen = (out & OUT_STDERR) ? line_prefix(pre, ts) : 0;
    size_t need = plen + mlen + 1;
    if (b->len + need > b->size) {
        size_t size = b->size ? b->size : 16384;
        while (size < b->len + need)
            size *= 2;
        char *t = realloc(b->text, size);
        if (!t)
            return -1;
        b->text = t;
        b->size = size;
    }
    if (b->n == b->nalloc) {
        size_t nalloc = b->nalloc ? 2 * b->nalloc : 256;
        struct log_rec *r = realloc(b->recs, nalloc * sizeof *r);
        if (!r)
            return -1;
        b->recs = r;
        b->nalloc = nalloc;
    }
    memcpy(b->text + b->len, pre, plen);
    memcpy(b->text + b->len + plen, msg, mlen);
    b->text[b->len + need - 1] = '\n';
    b->recs[b->n++] = (struct log_rec){ .off = (uint32_t)b->len, .len = (uint32_t)need,
                                        .msg = (uint16_t)plen, .prio = (uint8_t)prio,
                                        .out = (uint8_t)out };
    b->len += need;
    return 0;
}

static void buf_free(struct log_buf *b)
{
    free(b->text);
    free(b->recs);
    memset(b, 0, sizeof *b);
}

/* All of p to fd, through EINTR, short writes and a non-blocking fd; gives
 * up on other errors (there is nowhere to report them). */
static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        atomic_fetch_add_explicit(&log_writes, 1, memory_order_relaxed);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN) {
            struct pollfd pfd = { .fd = fd, .events = POLLOUT };
            poll(&pfd, 1, -1);
            continue;
        }
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

/* Writes a batch: runs of contiguous stderr lines with one write each (one
 * run unless log_init changed to_stderr meanwhile), then syslog per line. */
static void buf_write(const struct log_buf *b, int fd)
{
    size_t i = 0;
    while (i < b->n) {
        if (!(b->recs[i].out & OUT_STDERR)) {
            i++;
            continue;
        }
        size_t start = b->recs[i].off, end = start + b->recs[i].len;
        for (i++; i < b->n && (b->recs[i].out & OUT_STDERR) && b->recs[i].off == end; i++)
            end += b->recs[i].len;
        write_all(fd, b->text + start, end - start);
    }
    for (i = 0; i < b->n; i++) {
        const struct log_rec *r = &b->recs[i];
        if (r->out & OUT_SYSLOG)
            syslog(r->prio, "%.*s", (int)(r->len - r->msg - 1), b->text + r->off + r->msg);
    }
}

/* ---- the writer thread ---- */

/* The monotonic time ns nanoseconds from now. */
static struct timespec deadline_in(long long ns)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    ns += t.tv_nsec;
    t.tv_sec += (time_t)(ns / 1000000000L);
    t.tv_nsec = (long)(ns % 1000000000L);
    return t;
}

/* After a wake-up, lets more lines come (under L.mu) unless somebody waits
 * for them or the queue is half full. */
static void writer_gather(void)
{
    struct timespec until = deadline_in(LOG_GATHER_NS);
    while (!L.stop && !L.flushers && L.q.len < L.cap / 2)
        if (pthread_cond_clockwait(&L.wake, &L.mu, CLOCK_MONOTONIC, &until) == ETIMEDOUT)
            break;
}

static void *writer_main(void *arg)
{
    pthread_mutex_lock(&L.mu);
    for (;;) {
        while (L.q.n == 0 && !L.dropped && !L.stop)
            pthread_cond_wait(&L.wake, &L.mu);
        if (L.q.n == 0 && !L.dropped)
            break;                      /* stopping, and all is written */
        writer_gather();
        struct log_buf t = L.w;         /* take the queue, leave an empty one */
        L.w = L.q;
        L.q = t;
        L.q.len = L.q.n = 0;
        uint64_t upto = L.seq;
        unsigned long dropped = L.dropped;
        L.dropped = 0;
        int fd = L.fd;
        struct timespec ts;
        if (dropped) {
            char msg[80];
            int n = snprintf(msg, sizeof msg, "log: %lu lines dropped (log writer too slow)",
                             dropped);
            clock_gettime(CLOCK_REALTIME, &ts);
            buf_add(&L.w, LOG_WARNING, (log_stderr ? OUT_STDERR : 0) |
                    (syslog_usable(ts.tv_sec) ? OUT_SYSLOG : 0), &ts, msg, (size_t)n);
        }
        pthread_mutex_unlock(&L.mu);
        buf_write(&L.w, fd);
        pthread_mutex_lock(&L.mu);
        L.written = upto;
        pthread_cond_broadcast(&L.done);
    }
    L.state = W_SYNC;                   /* from now on callers write themselves */
    pthread_cond_broadcast(&L.done);
    pthread_mutex_unlock(&L.mu);
    return NULL;
}

static void log_atexit(void)
{
    log_close();
}

static void atfork_prepare(void)
{
    pthread_mutex_lock(&L.mu);
}

static void atfork_parent(void)
{
    pthread_mutex_unlock(&L.mu);
}

/* The child has no writer: the queue is the parent's to write, and w may be
 * half-changed by it (forgotten, not freed). */
static void atfork_child(void)
{
    pthread_mutex_init(&L.mu, NULL);
    pthread_cond_init(&L.wake, NULL);
    pthread_cond_init(&L.done, NULL);
    if (L.state == W_RUNNING)
        L.state = W_NONE;
    memset(&L.w, 0, sizeof L.w);
    L.q.len = L.q.n = 0;
    L.stop = L.flushers = 0;
    L.dropped = 0;
    L.seq = L.written = 0;
}

/* Under L.mu, state W_NONE: starts the writer with every asynchronous signal
 * blocked (they belong to the event loop), or falls back to W_SYNC. */
static void writer_start(void)
{
    static const int sync_sigs[] = { SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP };
    sigset_t block, old;
    sigfillset(&block);
    for (size_t i = 0; i < sizeof sync_sigs / sizeof sync_sigs[0]; i++)
        sigdelset(&block, sync_sigs[i]);
    pthread_sigmask(SIG_SETMASK, &block, &old);
    int rc = pthread_create(&L.thread, NULL, writer_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        L.state = W_SYNC;
        return;
    }
    pthread_setname_np(L.thread, "km-log");
    L.state = W_RUNNING;
    if (!L.hooks) {
        L.hooks = 1;
        atexit(log_atexit);
        pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
    }
}

/* ---- callers ---- */

/* Under L.mu, without a writer: the line now, on the caller's thread. */
static void write_sync(int prio, int out, const struct timespec *ts,
                       const char *msg, size_t mlen)
{
    struct log_buf b = { 0 };
    char text[16 + LOG_IDENT_MAX + LOG_MSG_MAX];
    struct log_rec rec;
    b.text = text;
    b.size = sizeof text;
    b.recs = &rec;
    b.nalloc = 1;
    if (buf_add(&b, prio, out, ts, msg, mlen) == 0)
        buf_write(&b, L.fd);
}

/* Under L.mu, with a writer: queued, or dropped and counted. */
static void queue_line(int prio, int out, const struct timespec *ts,
                       const char *msg, size_t mlen)
{
    size_t before = L.q.len + L.q.n * sizeof(struct log_rec);
    size_t need = 16 + LOG_IDENT_MAX + mlen + sizeof(struct log_rec);
    if (L.dropped || before + need > L.cap ||
        buf_add(&L.q, prio, out, ts, msg, mlen) < 0) {
        if (L.dropped++ == 0) {
            L.seq++;                    /* the notice: flushes wait for it */
            if (L.q.n == 0)
                pthread_cond_signal(&L.wake);
        }
        return;
    }
    L.seq++;
    if (L.q.n == 1 || (before < L.cap / 2 && L.q.len >= L.cap / 2))
        pthread_cond_signal(&L.wake);
}

static void log_v(int prio, const char *fmt, va_list ap)
{
    char msg[LOG_MSG_MAX];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int out = (log_stderr ? OUT_STDERR : 0) | (syslog_usable(ts.tv_sec) ? OUT_SYSLOG : 0);
    if (!out)
        return;
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    size_t mlen = n < 0 ? 0 : (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1;
    pthread_mutex_lock(&L.mu);
    if (L.state == W_NONE)
        writer_start();
    if (L.state == W_RUNNING)
        queue_line(prio, out, &ts, msg, mlen);
    else
        write_sync(prio, out, &ts, msg, mlen);
    pthread_mutex_unlock(&L.mu);
}

#define LOG_FN(name, prio)                          \
    void name(const char *fmt, ...)                 \
    {                                               \
        va_list ap;                                 \
        va_start(ap, fmt);                          \
        log_v(prio, fmt, ap);                       \
        va_end(ap);                                 \
    }

LOG_FN(log_info, LOG_INFO)
LOG_FN(log_warn, LOG_WARNING)
LOG_FN(log_err, LOG_ERR)

void log_debug(const char *fmt, ...)
{
    va_list ap;
    if (!log_debug_on)
        return;
    va_start(ap, fmt);
    log_v(LOG_DEBUG, fmt, ap);
    va_end(ap);
}

/* Waits until the lines queued before the call are written: for ever
 * (timeout_ms < 0) or at most timeout_ms.  Not on the writer itself. */
static void flush_wait(long timeout_ms)
{
    struct timespec until = deadline_in(timeout_ms < 0 ? 0 : timeout_ms * 1000000LL);
    pthread_mutex_lock(&L.mu);
    if (L.state == W_RUNNING && !pthread_equal(pthread_self(), L.thread)) {
        uint64_t target = L.seq;
        L.flushers++;
        pthread_cond_signal(&L.wake);
        while (L.written < target && L.state == W_RUNNING) {
            if (timeout_ms < 0)
                pthread_cond_wait(&L.done, &L.mu);
            else if (pthread_cond_clockwait(&L.done, &L.mu, CLOCK_MONOTONIC,
                                            &until) == ETIMEDOUT)
                break;
        }
        L.flushers--;
    }
    pthread_mutex_unlock(&L.mu);
}

void log_flush(void)
{
    flush_wait(-1);
}

/* Under L.mu: waits until the stopping writer has ended, at most
 * L.close_wait_ms.  Whether it ended. */
static int writer_ended_wait(void)
{
    struct timespec until = deadline_in(L.close_wait_ms * 1000000LL);
    while (L.state == W_RUNNING)
        if (pthread_cond_clockwait(&L.done, &L.mu, CLOCK_MONOTONIC, &until) == ETIMEDOUT)
            break;
    return L.state != W_RUNNING;
}

/* Under L.mu, the writer gone: frees the queue, ready for a new one. */
static void writer_reset(void)
{
    buf_free(&L.q);
    buf_free(&L.w);
    L.stop = L.abandoned = 0;
}

void log_close(void)
{
    pthread_mutex_lock(&L.mu);
    if (L.state == W_NONE)
        L.state = W_SYNC;
    if (L.abandoned && L.state != W_RUNNING)
        writer_reset();                 /* the stuck writer got out since */
    if (L.state != W_RUNNING || pthread_equal(pthread_self(), L.thread) ||
        L.abandoned) {                  /* no second wait for a stuck one */
        pthread_mutex_unlock(&L.mu);
        return;
    }
    if (L.stop) {                       /* another thread is closing */
        writer_ended_wait();
        pthread_mutex_unlock(&L.mu);
        return;
    }
    L.stop = 1;
    pthread_cond_signal(&L.wake);
    if (!writer_ended_wait()) {
        /* Stuck in write(2) or syslog(3) (a syslogd that stopped reading, a
         * full pipe): the process is about to exit; do not hang with it. */
        L.abandoned = 1;
        pthread_detach(L.thread);
        pthread_mutex_unlock(&L.mu);
        return;
    }
    pthread_mutex_unlock(&L.mu);
    pthread_join(L.thread, NULL);
    pthread_mutex_lock(&L.mu);
    writer_reset();
    pthread_mutex_unlock(&L.mu);
}

void log_fatal(const char *fmt, ...)
{
    char msg[LOG_MSG_MAX];
    struct timespec ts;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t mlen = n < 0 ? 0 : (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1;
    flush_wait(LOG_FATAL_WAIT_MS);
    clock_gettime(CLOCK_REALTIME, &ts);
    int out = (log_stderr ? OUT_STDERR : 0) | (syslog_usable(ts.tv_sec) ? OUT_SYSLOG : 0);
    pthread_mutex_lock(&L.mu);
    write_sync(LOG_CRIT, out, &ts, msg, mlen);
    pthread_mutex_unlock(&L.mu);
    abort();
}

/* ---- test hooks ---- */

void log_test_set_fd(int fd)
{
    pthread_mutex_lock(&L.mu);
    L.fd = fd < 0 ? STDERR_FILENO : fd;
    pthread_mutex_unlock(&L.mu);
}

void log_test_set_syslog(int on)
{
    atomic_store(&log_syslog_off, !on);
}

void log_test_set_cap(size_t bytes)
{
    pthread_mutex_lock(&L.mu);
    L.cap = bytes == 0 ? LOG_CAP : bytes < LOG_CAP_MIN ? LOG_CAP_MIN : bytes;
    pthread_mutex_unlock(&L.mu);
}

void log_test_set_close_wait(long ms)
{
    pthread_mutex_lock(&L.mu);
    L.close_wait_ms = ms < 0 ? LOG_CLOSE_WAIT_MS : ms;
    pthread_mutex_unlock(&L.mu);
}

unsigned long log_test_writes(void)
{
    return atomic_load(&log_writes);
}

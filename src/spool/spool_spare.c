/*
 * spool_spare — preallocated journal segments (see spool.c).  Every accepted
 * message waits for the fdatasync() of its batch.  Appending to a file that
 * grows makes that sync also write the file's new size and block map; on
 * ext4 here it takes ~0.155 ms against ~0.105 ms when the same bytes
 * overwrite blocks that were already written and synced.  So the spool keeps
 * a spare: journal/.spare, zero-filled and synced ahead of time by the spare
 * thread.  When the writer needs a new segment it renames the spare to the
 * segment's name (the directory is synced with the first batch, as for any
 * new segment) and writes over the zeros.  A segment may therefore end in
 * zeros; recovery (spool_recover.c) takes a zero header at a record boundary
 * with only zeros after it as the end of what was written.
 *
 * Whether spares are made is spool_spares: "yes", "no", or "auto" (the
 * default), which times a few appends and overwrites with fdatasync() at
 * start and uses spares where overwrites sync faster (spare_pays()).
 * Spares start at SPOOL_SPARE_MIN and double with each one taken, up to the
 * segment limit (at most SPOOL_SPARE_MAX), so that an idle or short-lived
 * daemon writes little and a busy one rotates rarely.  With no spare (disk
 * full, or a segment limit below SPOOL_SPARE_MIN) the writer creates a
 * segment that grows, as before; after a restart it resumes a segment that
 * grows only when there is no spare.
 *
 * Trusts: nothing but its own file.  Guarantees: a spare handed to the writer
 * is all zeros, synced, and exactly spare_size bytes long.
 */
#include <errno.h>
#include <stdlib.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "spool/spool.h"
#include "spool_int.h"

#define SPARE_NAME      ".spare"
#define SPARE_CHUNK     SPOOL_ZEROS_LEN
#define SPARE_IOV       16              /* 1 MiB per pwritev */
#define SPARE_RETRY     10              /* seconds after a failure */

/* Aligned for O_DIRECT (spare_make) */
const char spool_zeros[SPOOL_ZEROS_LEN] __attribute__((aligned(4096)));

/* The largest spare for the current segment limit (0: none).  Under mu. */
static uint64_t spare_max(const struct spool *sp)
{
    uint64_t max = sp->seg_limit < SPOOL_SPARE_MAX ? sp->seg_limit : SPOOL_SPARE_MAX;
    return max < SPOOL_SPARE_MIN ? 0 : max;
}

static int spare_stopping(struct spool *sp)
{
    pthread_mutex_lock(&sp->mu);
    int stop = sp->stop;
    pthread_mutex_unlock(&sp->mu);
    return stop;
}

/* Clears O_DIRECT on fd.  0 / -1 with errno. */
static int spare_buffered(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl & ~O_DIRECT);
}

/* Writes journal/.spare: size zero bytes, synced.  Returns its fd, or -1
 * with errno (ECANCELED when the spool is closing).
 *
 * The zeros go with O_DIRECT where the file system takes it: they are copied
 * into no page cache, which made the spare thread's CPU per megabyte a
 * quarter of buffered writes here (0.06 against 0.2-0.23 ms).  The writer
 * then pads each batch with zeros to a page boundary (writer_batch), so it
 * never writes part of a page that is not cached, which would have to be
 * read from disk first.  The fd handed over is a buffered one again. */
static int spare_make(struct spool *sp, uint64_t size)
{
    struct iovec iov[SPARE_IOV];
    uint64_t off = 0;
    int fd, err = 0, direct = 1;

    for (int i = 0; i < SPARE_IOV; i++) {
        iov[i].iov_base = (void *)spool_zeros;
        iov[i].iov_len = SPARE_CHUNK;
    }
    fd = openat(sp->jdfd, SPARE_NAME, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_DIRECT,
                0600);
    if (fd < 0 && errno == EINVAL) {
        direct = 0;
        fd = openat(sp->jdfd, SPARE_NAME, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    }
    if (fd < 0)
        return -1;
    while (!err && off < size) {
        uint64_t left = size - off;
        int n = left >= (uint64_t)SPARE_CHUNK * SPARE_IOV ? SPARE_IOV
              : (int)((left + SPARE_CHUNK - 1) / SPARE_CHUNK);
        if (left < (uint64_t)SPARE_CHUNK * n)
            iov[n - 1].iov_len = (size_t)(left - (uint64_t)SPARE_CHUNK * (n - 1));
        ssize_t w = pwritev(fd, iov, n, (off_t)off);
        iov[n - 1].iov_len = SPARE_CHUNK;
        if (w < 0 && errno == EINTR)
            continue;
        if (direct && w < 0 && errno == EINVAL) {     /* alignment: go buffered */
            direct = 0;
            if (spare_buffered(fd) < 0)
                err = errno;
            continue;
        }
        if (w <= 0)
            err = w < 0 ? errno : EIO;
        else
            off += (uint64_t)w;
        if (!err && (off >> 20) % 8 == 0 && spare_stopping(sp))
            err = ECANCELED;
    }
    if (!err && fdatasync(fd) < 0)
        err = errno;
    if (!err && direct && spare_buffered(fd) < 0)
        err = errno;
    if (err) {
        close(fd);
        unlinkat(sp->jdfd, SPARE_NAME, 0);
        errno = err;
        return -1;
    }
    return fd;
}

void spool_set_spares(struct spool *sp, enum spool_spares mode)
{
    sp->spare_mode = mode;
}

static int dbl_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

#define PROBE_N     15
#define PROBE_LEN   (16 * 1024)
#define PROBE_GAIN  1.25    /* overwrite syncs this many times faster: spares */

/* pwrite of PROBE_LEN zeros at off and fdatasync(): seconds, or -1. */
static double probe_sync(int fd, off_t off)
{
    double t0 = util_now_mono();
    if (pwrite(fd, spool_zeros, PROBE_LEN, off) != PROBE_LEN || fdatasync(fd) < 0)
        return -1;
    return util_now_mono() - t0;
}

/* "auto": whether spares pay on this file system.  A spare costs one more
 * write of every byte of the journal, but with O_DIRECT little CPU (0.5 us
 * per accepted 4 KB message here, perf stat --per-thread), against a sync
 * that no longer writes the file's size and block map.  So spares are used
 * where a sync over written blocks is clearly faster than one after an
 * append (PROBE_GAIN, a margin for noise).  Measured: ext4 with a journal
 * 0.17-0.18 ms against 0.44-0.55 ms (2.6-3.1x); ext4 without a journal
 * 0.09-0.10 against 0.155-0.19 ms (1.6-2.05x; smtp-source -s 20, 10 pairs:
 * +18 % msg/s and -9 % CPU per message with spares); a copy-on-write file
 * system or tmpfs, about 1x: off.  Appends to one file and overwrites of
 * another alternate, PROBE_N of each, so that the machine's load drifts over
 * both alike; the medians are compared.  At start, ~40 syncs. */
static int spare_pays(struct spool *sp)
{
    static const char *const name[2] = { ".probe-append", ".probe-over" };
    double grow[PROBE_N], over[PROBE_N];
    int fd[2], ok = 1;
    for (int k = 0; k < 2; k++)
        fd[k] = openat(sp->jdfd, name[k], O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd[0] < 0 || fd[1] < 0)
        ok = 0;
    for (int i = 0; ok && i < PROBE_N; i++)     /* the blocks to overwrite */
        ok = pwrite(fd[1], spool_zeros, PROBE_LEN, (off_t)i * PROBE_LEN) == PROBE_LEN;
    ok = ok && fdatasync(fd[1]) == 0;
    for (int i = 0; ok && i < PROBE_N; i++) {
        grow[i] = probe_sync(fd[0], (off_t)i * PROBE_LEN);
        over[i] = probe_sync(fd[1], (off_t)i * PROBE_LEN);
        ok = grow[i] > 0 && over[i] > 0;
    }
    for (int k = 0; k < 2; k++) {
        if (fd[k] >= 0)
            close(fd[k]);
        unlinkat(sp->jdfd, name[k], 0);
    }
    if (!ok) {
        log_warn("spool: cannot time fdatasync in journal/: %s; no spare segments",
                 strerror(errno));
        return 0;
    }
    qsort(grow, PROBE_N, sizeof grow[0], dbl_cmp);
    qsort(over, PROBE_N, sizeof over[0], dbl_cmp);
    double g = grow[PROBE_N / 2], o = over[PROBE_N / 2];
    int yes = g >= PROBE_GAIN * o;
    log_info("spool: fdatasync after an append %.3f ms, over written blocks %.3f ms: "
             "spare segments %s (spool_spares = \"auto\")", g * 1e3, o * 1e3,
             yes ? "on" : "off");
    return yes;
}

int spool_spare_init(struct spool *sp)
{
    int fd = -1, ret = 0;
    unlinkat(sp->jdfd, SPARE_NAME, 0);      /* a leftover may be half written */
    if (sp->spare_mode == SPOOL_SPARES_OFF ||
        (sp->spare_mode == SPOOL_SPARES_AUTO && !spare_pays(sp)))
        return 0;                           /* spare_next stays 0: none are made */
    pthread_mutex_lock(&sp->mu);
    uint64_t max = spare_max(sp);
    pthread_mutex_unlock(&sp->mu);
    if (max && (fd = spare_make(sp, SPOOL_SPARE_MIN)) < 0) {
        log_warn("spool: cannot prepare a spare segment: %s; segments grow as "
                 "they are written", strerror(errno));
        ret = -1;
    }
    pthread_mutex_lock(&sp->mu);
    sp->spare_next = SPOOL_SPARE_MIN;       /* the spare thread starts work */
    sp->spare_fd = fd;
    sp->spare_size = fd >= 0 ? SPOOL_SPARE_MIN : 0;
    if (fd < 0 && max)
        sp->spare_retry = time(NULL) + SPARE_RETRY;
    pthread_mutex_unlock(&sp->mu);
    pthread_cond_signal(&sp->scond);
    return ret;
}

int spool_spare_take(struct spool *sp, const char *name, uint64_t *size)
{
    int fd;
    pthread_mutex_lock(&sp->mu);
    fd = sp->spare_fd;
    *size = sp->spare_size;
    sp->spare_fd = -1;
    sp->spare_taking = fd >= 0;     /* no new .spare until it is renamed */
    pthread_mutex_unlock(&sp->mu);
    if (fd < 0)
        return -1;
    if (renameat2(sp->jdfd, SPARE_NAME, sp->jdfd, name, RENAME_NOREPLACE) < 0) {
        log_err("spool: cannot rename journal/%s to %s: %s", SPARE_NAME, name,
                strerror(errno));
        close(fd);
        unlinkat(sp->jdfd, SPARE_NAME, 0);
        fd = -1;
    }
    pthread_mutex_lock(&sp->mu);
    sp->spare_taking = 0;
    uint64_t max = spare_max(sp);
    if (sp->spare_next < max)
        sp->spare_next = sp->spare_next * 2 < max ? sp->spare_next * 2 : max;
    pthread_mutex_unlock(&sp->mu);
    pthread_cond_signal(&sp->scond);
    return fd;
}

void *spool_spare_main(void *arg)
{
    struct spool *sp = arg;
    pthread_setname_np(pthread_self(), "km-spare");
    pthread_mutex_lock(&sp->mu);
    while (!sp->stop) {
        uint64_t max = spare_max(sp), size;
        time_t now = time(NULL);
        if (!sp->spare_next || sp->spare_fd >= 0 || sp->spare_taking || !max ||
            now < sp->spare_retry) {
            struct timespec ts = { now + SPARE_RETRY, 0 };
            pthread_cond_timedwait(&sp->scond, &sp->mu, &ts);   /* realtime clock */
            continue;
        }
        size = sp->spare_next < max ? sp->spare_next : max;
        pthread_mutex_unlock(&sp->mu);
        int fd = spare_make(sp, size);
        int e = errno;
        pthread_mutex_lock(&sp->mu);
        if (fd >= 0 && (sp->stop || !spare_max(sp))) {
            close(fd);
            unlinkat(sp->jdfd, SPARE_NAME, 0);
        } else if (fd >= 0) {
            sp->spare_fd = fd;
            sp->spare_size = size;
        } else if (e != ECANCELED) {
            log_warn("spool: cannot prepare a spare segment of %llu bytes: %s; "
                     "trying again in %d s", (unsigned long long)size, strerror(e),
                     SPARE_RETRY);
            sp->spare_retry = time(NULL) + SPARE_RETRY;
        }
    }
    pthread_mutex_unlock(&sp->mu);
    return NULL;
}

void spool_spare_limit(struct spool *sp)
{
    pthread_mutex_lock(&sp->mu);    /* held: the spare thread makes none meanwhile */
    if (!spare_max(sp) && sp->spare_fd >= 0) {
        close(sp->spare_fd);
        sp->spare_fd = -1;
        unlinkat(sp->jdfd, SPARE_NAME, 0);
    }
    if (sp->spare_next > spare_max(sp))
        sp->spare_next = SPOOL_SPARE_MIN;
    pthread_mutex_unlock(&sp->mu);
    pthread_cond_signal(&sp->scond);
}

uint64_t spool_test_spare(struct spool *sp, int wait_ms)
{
    for (int waited = 0;; waited++) {
        pthread_mutex_lock(&sp->mu);
        uint64_t size = sp->spare_fd >= 0 ? sp->spare_size : 0;
        pthread_mutex_unlock(&sp->mu);
        if (size || waited >= wait_ms)
            return size;
        usleep(1000);
    }
}

void spool_spare_close(struct spool *sp)
{
    if (sp->spare_fd >= 0) {
        close(sp->spare_fd);
        sp->spare_fd = -1;
        unlinkat(sp->jdfd, SPARE_NAME, 0);  /* no disk held while stopped */
    }
}

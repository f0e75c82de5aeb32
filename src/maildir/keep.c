/*
 * keep — keep mode's memory of first retrievals: dir/kickmail-retrieved,
 * one "UIDL EPOCH" line per message retrieved at least once, and expiry of
 * the messages retrieved longer ago than the maildrop's keep time.
 *
 * Trusts: nothing in the file (another program, a torn write or a full disk
 * may have left anything there): it is parsed line by line and a bad line
 * is skipped, never fatal; a missing file means nothing was retrieved.
 * Guarantees: the file is replaced whole (a unique temporary name, fsync,
 * rename, fsync of the directory), so a reader sees the old contents or the
 * new, and a failed write leaves no temporary file; a message's first
 * retrieval time is never moved later; lines of messages no longer in the
 * maildrop are dropped when the file is written.  Callers serialise the
 * calls for one maildrop (the POP3 session's lock): two writers at once
 * would each replace the file whole, the last one winning.  Time is passed
 * in.  All calls block: worker threads only.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "maildir/maildir.h"
#include "maildir_int.h"

#define RETRIEVED_MAX (64u << 20)       /* bytes of the file read at most */
#define EPOCH_DIGITS 18                 /* no overflow of a 64-bit time_t */
#define LINE_MAX_LEN (MAILDIR_UIDL_LEN + 1 + 20 + 1)   /* "UIDL EPOCH\n" */

static int entry_cmp(const void *a, const void *b)
{
    const struct maildir_retrieved_entry *x = a, *y = b;
    int c = strcmp(x->uidl, y->uidl);
    if (c)
        return c;
    return x->when < y->when ? -1 : x->when > y->when;
}

/* Sorts by UIDL and keeps each UIDL once, with its earliest time. */
static void normalise(struct maildir_retrieved *t)
{
    size_t k = 0;
    if (t->n < 2)
        return;
    qsort(t->e, t->n, sizeof *t->e, entry_cmp);
    for (size_t i = 0; i < t->n; i++)
        if (k == 0 || strcmp(t->e[k - 1].uidl, t->e[i].uidl) != 0)
            t->e[k++] = t->e[i];
    t->n = k;
}

static void push(struct maildir_retrieved *t, const char *uidl, time_t when)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 64;
        t->e = xrealloc(t->e, t->cap * sizeof *t->e);
    }
    memcpy(t->e[t->n].uidl, uidl, MAILDIR_UIDL_LEN);
    t->e[t->n].uidl[MAILDIR_UIDL_LEN] = '\0';
    t->e[t->n].when = when;
    t->n++;
}

static int uidl_ok(const char *s, size_t n)
{
    if (n != MAILDIR_UIDL_LEN)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

/* One line without its LF: 1 and the entry added, or 0. */
static int parse_line(const char *p, size_t n, struct maildir_retrieved *t)
{
    long long when = 0;
    size_t i;
    if (n < MAILDIR_UIDL_LEN + 2 || n > MAILDIR_UIDL_LEN + 1 + EPOCH_DIGITS ||
        !uidl_ok(p, MAILDIR_UIDL_LEN) || p[MAILDIR_UIDL_LEN] != ' ')
        return 0;
    for (i = MAILDIR_UIDL_LEN + 1; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return 0;
        when = when * 10 + (p[i] - '0');
    }
    push(t, p, (time_t)when);
    return 1;
}

size_t maildir_retrieved_parse(const char *buf, size_t len, struct maildir_retrieved *t)
{
    size_t skipped = 0, off = 0;
    while (off < len) {
        const char *nl = memchr(buf + off, '\n', len - off);
        if (!nl) {
            skipped++;                  /* torn: the last line without LF */
            break;
        }
        if (!parse_line(buf + off, (size_t)(nl - buf - off), t))
            skipped++;
        off = (size_t)(nl - buf) + 1;
    }
    normalise(t);
    return skipped;
}

struct maildir_retrieved_entry *maildir_retrieved_find(const struct maildir_retrieved *t,
                                                       const char *uidl)
{
    struct maildir_retrieved_entry key;
    if (!uidl_ok(uidl, strlen(uidl)))
        return NULL;
    memcpy(key.uidl, uidl, sizeof key.uidl);
    key.when = 0;
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(t->e[mid].uidl, key.uidl);
        if (c == 0)
            return &t->e[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

void maildir_retrieved_free(struct maildir_retrieved *t)
{
    free(t->e);
    memset(t, 0, sizeof *t);
}

/* dir/kickmail-retrieved into t: 0 (a missing file is an empty table), or
 * -1 with why when it cannot be read. */
static int retrieved_read(const char *dir, struct maildir_retrieved *t,
                          char *why, size_t whylen)
{
    char path[PATH_MAX];
    struct stat st;
    size_t len = 0, cap, skipped;
    char *buf;
    int fd;
    memset(t, 0, sizeof *t);
    if (maildir_join(path, sizeof path, dir, MAILDIR_RETRIEVED) < 0)
        return util_fail(why, whylen, "maildir %s: path too long", dir);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0) {
        if (errno == ENOENT)
            return 0;
        return util_fail(why, whylen, "maildir: open %s: %s", path, strerror(errno));
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return util_fail(why, whylen, "maildir: %s: not a regular file", path);
    }
    cap = st.st_size > RETRIEVED_MAX ? RETRIEVED_MAX : (size_t)st.st_size;
    buf = xmalloc(cap + 1);
    while (len < cap) {
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            close(fd);
            return util_fail(why, whylen, "maildir: read %s: %s", path, strerror(e));
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    skipped = maildir_retrieved_parse(buf, len, t);
    free(buf);
    if (skipped)
        log_warn("maildir: %s: %zu bad lines skipped", path, skipped);
    return 0;
}

/* Replaces dir/kickmail-retrieved with t: 0, or -1 with why (no temporary
 * file left). */
static int retrieved_write(const char *dir, const struct maildir_retrieved *t,
                           char *why, size_t whylen)
{
    static atomic_ulong counter;
    char path[PATH_MAX], tmp[PATH_MAX + 64];
    char *buf;
    size_t len = 0;
    int fd, e = 0;
    if (maildir_join(path, sizeof path, dir, MAILDIR_RETRIEVED) < 0)
        return util_fail(why, whylen, "maildir %s: path too long", dir);
    snprintf(tmp, sizeof tmp, "%s.%ld.%lu.tmp", path, (long)getpid(),
             atomic_fetch_add(&counter, 1));
    buf = xmalloc(t->n * LINE_MAX_LEN + 1);
    for (size_t i = 0; i < t->n; i++)
        len += (size_t)snprintf(buf + len, LINE_MAX_LEN + 1, "%s %lld\n", t->e[i].uidl,
                                (long long)t->e[i].when);
    if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0) {
        e = errno;
        free(buf);
        return util_fail(why, whylen, "maildir: create %s: %s", tmp, strerror(e));
    }
    for (size_t off = 0; off < len && !e;) {
        ssize_t w = write(fd, buf + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            e = w < 0 ? errno : EIO;
        else
            off += (size_t)w;
    }
    free(buf);
    if (!e && fsync(fd) < 0)
        e = errno;
    if (close(fd) < 0 && !e)
        e = errno;
    if (!e && rename(tmp, path) < 0)
        e = errno;
    if (e) {
        unlink(tmp);
        return util_fail(why, whylen, "maildir: write %s: %s", path, strerror(e));
    }
    if (maildir_fsync_dir(dir) < 0)
        return util_fail(why, whylen, "maildir: fsync %s: %s", dir, strerror(errno));
    return 0;
}

/* Drops the entries whose message is not in l (marks each kept one in
 * keep[]); 1 when something was dropped. */
static int drop_vanished(struct maildir_retrieved *t, const struct maildir_list *l)
{
    unsigned char *keep = xcalloc(t->n ? t->n : 1, 1);
    size_t k = 0;
    for (size_t i = 0; i < l->n; i++) {
        struct maildir_retrieved_entry *e = maildir_retrieved_find(t, l->msgs[i].uidl);
        if (e)
            keep[e - t->e] = 1;
    }
    for (size_t i = 0; i < t->n; i++)
        if (keep[i])
            t->e[k++] = t->e[i];
    free(keep);
    if (k == t->n)
        return 0;
    t->n = k;
    return 1;
}

int maildir_retrieved_add(const char *dir, const char *const *uidls, size_t n,
                          time_t now, char *why, size_t whylen)
{
    struct maildir_retrieved t;
    struct maildir_list l;
    int changed = 0, rc = 0;
    if (retrieved_read(dir, &t, why, whylen) < 0)
        return -1;
    size_t known = t.n;             /* the sorted part searched below */
    for (size_t i = 0; i < n; i++) {
        struct maildir_retrieved old = { t.e, known, known };
        if (!uidls[i] || !uidl_ok(uidls[i], strlen(uidls[i])) ||
            maildir_retrieved_find(&old, uidls[i]))
            continue;
        push(&t, uidls[i], now);    /* repeats in uidls[]: merged below */
        changed = 1;
    }
    normalise(&t);
    if (maildir_scan(dir, &l, why, whylen) < 0) {
        maildir_retrieved_free(&t);
        return -1;
    }
    changed |= drop_vanished(&t, &l);
    maildir_list_free(&l);
    if (changed)
        rc = retrieved_write(dir, &t, why, whylen);
    maildir_retrieved_free(&t);
    return rc;
}

int maildir_expire(const char *dir, long keep_secs, time_t now,
                   size_t *removed, char *why, size_t whylen)
{
    struct maildir_retrieved t;
    struct maildir_list l;
    char err[256] = "";
    size_t gone = 0;
    int changed, rc = 0;
    time_t cutoff = now - (keep_secs > 0 ? (time_t)keep_secs : 0);
    if (removed)
        *removed = 0;
    if (retrieved_read(dir, &t, why, whylen) < 0)
        return -1;
    if (t.n == 0)                   /* nothing ever retrieved: no listing */
        return 0;
    if (maildir_scan(dir, &l, why, whylen) < 0) {
        maildir_retrieved_free(&t);
        return -1;
    }
    for (size_t i = 0; i < l.n; i++) {
        struct maildir_retrieved_entry *e = maildir_retrieved_find(&t, l.msgs[i].uidl);
        if (!e || e->when >= cutoff)
            continue;
        if (maildir_remove(dir, &l.msgs[i], err, sizeof err) < 0) {
            rc = util_fail(why, whylen, "%s", err);
            continue;
        }
        l.msgs[i].uidl[0] = '\0';  /* gone: its line is dropped below */
        gone++;
    }
    changed = drop_vanished(&t, &l);
    maildir_list_free(&l);
    if (changed && retrieved_write(dir, &t, rc ? NULL : why, rc ? 0 : whylen) < 0)
        rc = -1;
    maildir_retrieved_free(&t);
    if (removed)
        *removed = gone;
    return rc;
}

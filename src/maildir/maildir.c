/*
 * maildir — where maildrops live (maildir_path), making them
 * (maildir_create) and delivering into them (maildir_deliver_batch, and
 * maildir_deliver, a batch of one): each message is written with LF line
 * ends into tmp/, fdatasync'ed, moved into new/ under a unique name
 * carrying ",S=" (bytes on disk) and ",W=" (bytes with CRLF ends) with
 * renameat2(RENAME_NOREPLACE), which never replaces a name as the Maildir
 * spec's link(2) (link(2) and unlink(2) where the file system lacks it),
 * and new/ is fsync'ed.  A batch does each step for all its
 * messages before the next (every write-back started before the first
 * sync, every link made before new/ is synced, each distinct new/ synced
 * once), so that one journal commit carries many messages.
 *
 * Trusts: the root and dir its callers pass (configuration); nothing in a
 * maildrop name (maildir_path refuses whatever could leave its directory or
 * hide: '/', a leading '.', control and non-ASCII bytes) nor in a host name
 * (escaped into the file name).  Message bytes are copied, never parsed
 * beyond line ends.  Guarantees: a message is reported delivered only once
 * its file and its new/ entry are synced, and a failed one leaves nothing
 * in tmp/ or new/ (one message's failure fails no other); names are unique
 * per process (time, microseconds, pid, a counter, 64 random bits).  Every call here blocks: worker threads only.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "core/util.h"
#include "maildir/maildir.h"
#include "maildir_int.h"

#define HOST_MAX 255            /* bytes of a host name read */
#define HOST_ESC 100            /* bytes of it in a file name (escaped): the
                                 * whole name stays under NAME_MAX */
#define CONV_BUF (64 * 1024)

/* One path component of a maildrop name: not empty, not too long, no
 * leading '.', no '/', only printable ASCII. */
static int component_ok(const char *s, size_t n)
{
    if (n == 0 || n > NAME_MAX || s[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c >= 0x7f || c == '/')
            return 0;
    }
    return 1;
}

int maildir_path(const char *root, const char *drop, char *out, size_t len)
{
    const char *at;
    int n;
    if (!root || !*root || !drop || !out || len == 0)
        return -1;
    at = strchr(drop, '@');
    if (!at) {
        /* a customer's name: never a dot, so never a domain's directory */
        if (!component_ok(drop, strlen(drop)) || strchr(drop, '.'))
            return -1;
        n = snprintf(out, len, "%s/%s", root, drop);
    } else {
        const char *dom = at + 1;
        size_t llen = (size_t)(at - drop);
        if (strchr(dom, '@') || !component_ok(drop, llen) ||
            !component_ok(dom, strlen(dom)))
            return -1;
        n = snprintf(out, len, "%s/%s/%.*s", root, dom, (int)llen, drop);
    }
    if (n < 0 || (size_t)n >= len) {
        out[0] = '\0';
        return -1;
    }
    return 0;
}

int maildir_join(char *out, size_t len, const char *dir, const char *rel)
{
    int n = snprintf(out, len, "%s/%s", dir, rel);
    if (n < 0 || (size_t)n >= len) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

int maildir_fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc, e;
    if (fd < 0)
        return -1;
    rc = fsync(fd);
    e = errno;
    close(fd);
    errno = e;
    return rc;
}

int maildir_errno_temporary(int e)
{
    switch (e) {
    case ENOSPC: case EDQUOT: case EIO: case EMFILE: case ENFILE:
    case ENOMEM: case EAGAIN: case EINTR: case ESTALE: case ETIMEDOUT:
    case EBUSY: case EEXIST:
    /* an operator's mistake (modes, owners, a read-only remount): the mail
     * waits for the fix, as with Postfix's local(8), never bounces */
    case EACCES: case EPERM: case EROFS:
        return 1;
    default:
        return 0;
    }
}

/* mkdir -p with mode 0700; each directory made has its parent fsync'ed so
 * that its entry is durable.  0 / -1 with errno (ENOTDIR when something
 * not a directory is in the way). */
static int mkdir_p(const char *path)
{
    struct stat st;
    char parent[PATH_MAX];
    const char *slash;
    if (mkdir(path, 0700) == 0)
        goto made;
    if (errno == EEXIST) {
        if (stat(path, &st) < 0)
            return -1;
        if (!S_ISDIR(st.st_mode)) {
            errno = ENOTDIR;
            return -1;
        }
        return 0;
    }
    if (errno != ENOENT)
        return -1;
    slash = strrchr(path, '/');
    if (!slash || slash == path || (size_t)(slash - path) >= sizeof parent) {
        errno = ENOENT;
        return -1;
    }
    memcpy(parent, path, (size_t)(slash - path));
    parent[slash - path] = '\0';
    if (mkdir_p(parent) < 0)
        return -1;
    if (mkdir(path, 0700) < 0 && errno != EEXIST)
        return -1;
made:
    slash = strrchr(path, '/');
    if (slash && slash != path && (size_t)(slash - path) < sizeof parent) {
        memcpy(parent, path, (size_t)(slash - path));
        parent[slash - path] = '\0';
        if (maildir_fsync_dir(parent) < 0)
            return -1;
    }
    return 0;
}

int maildir_create(const char *dir, char *why, size_t whylen)
{
    static const char *const subs[] = { "tmp", "new", "cur" };
    char p[PATH_MAX];
    if (!dir || !*dir)
        return util_fail(why, whylen, "maildir: no directory");
    if (mkdir_p(dir) < 0)
        return util_fail(why, whylen, "maildir %s: %s", dir, strerror(errno));
    for (size_t i = 0; i < 3; i++) {
        if (maildir_join(p, sizeof p, dir, subs[i]) < 0 || mkdir_p(p) < 0)
            return util_fail(why, whylen, "maildir %s/%s: %s", dir, subs[i],
                             strerror(errno));
    }
    return 0;
}

/*
 * The line-end converter: CRLF becomes LF; a CR not followed by LF stays,
 * except a CR that ends the message, which is a line end; a message that
 * does not end with a line end gets one.  size counts bytes written, vsize
 * the bytes a reader sends that turns each LF not preceded by CR into CRLF
 * (what Dovecot and our POP3 server send), so vsize is exact.
 */
struct lfconv {
    int fd;
    int err;                    /* errno of the first failed write, or 0 */
    int pending_cr;             /* an input CR not yet written */
    unsigned char last;         /* the last byte written */
    unsigned char *buf;
    size_t used;
    uint64_t size, vsize;
};

static void conv_flush(struct lfconv *c)
{
    size_t off = 0;
    while (!c->err && off < c->used) {
        ssize_t w = write(c->fd, c->buf + off, c->used - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            c->err = w < 0 ? errno : EIO;
        else
            off += (size_t)w;
    }
    c->used = 0;
}

static void conv_emit(struct lfconv *c, unsigned char ch)
{
    if (c->used == CONV_BUF)
        conv_flush(c);
    c->buf[c->used++] = ch;
    c->size++;
    c->vsize += (ch == '\n' && c->last != '\r') ? 2 : 1;
    c->last = ch;
}

static void conv_feed(struct lfconv *c, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = p[i];
        if (c->pending_cr) {
            c->pending_cr = 0;
            if (ch == '\n') {
                conv_emit(c, '\n');
                continue;
            }
            conv_emit(c, '\r');
        }
        if (ch == '\r')
            c->pending_cr = 1;
        else
            conv_emit(c, ch);
    }
}

static void conv_end(struct lfconv *c)
{
    if (c->pending_cr) {
        c->pending_cr = 0;
        conv_emit(c, '\n');
    }
    if (c->size > 0 && c->last != '\n')
        conv_emit(c, '\n');
    conv_flush(c);
}

/* Every chain of body through the converter, without copying it. */
static void conv_evbuffer(struct lfconv *c, const struct evbuffer *body)
{
    struct evbuffer *b = (struct evbuffer *)body;   /* peek does not modify */
    struct evbuffer_iovec v[16];
    struct evbuffer_ptr pos;
    size_t done = 0, total;
    if (!b || (total = evbuffer_get_length(b)) == 0)
        return;
    evbuffer_ptr_set(b, &pos, 0, EVBUFFER_PTR_SET);
    while (done < total) {
        /* with len -1, peek fills at most 16 extents from pos */
        int n = evbuffer_peek(b, -1, &pos, v, 16);
        size_t moved = 0;
        for (int i = 0; i < n && i < 16; i++) {
            conv_feed(c, v[i].iov_base, v[i].iov_len);
            moved += v[i].iov_len;
        }
        done += moved;
        if (moved == 0 || (done < total &&
                           evbuffer_ptr_set(b, &pos, moved, EVBUFFER_PTR_ADD) < 0))
            break;
    }
}

/* host with '/', ':', ',', '\' and bytes outside 0x21..0x7e as \OOO (the
 * Maildir spec's \057 and \072; ',' would look like the start of ",S="). */
static void host_escape(const char *host, char *out, size_t len)
{
    char local[HOST_MAX + 1];
    size_t o = 0;
    if (!host || !*host) {
        if (gethostname(local, sizeof local) < 0 || !local[0])
            strcpy(local, "localhost");
        local[HOST_MAX] = '\0';
        host = local;
    }
    for (size_t i = 0; host[i] && i < HOST_MAX && o + 5 < len; i++) {
        unsigned char ch = (unsigned char)host[i];
        if (ch == '/' || ch == ':' || ch == ',' || ch == '\\' || ch < 0x21 || ch > 0x7e)
            o += (size_t)snprintf(out + o, len - o, "\\%03o", ch);
        else
            out[o++] = (char)ch;
    }
    out[o] = '\0';
}

/* time.M<usec>P<pid>Q<counter>R<random>.HOST */
static void unique_base(const char *host, char *out, size_t len)
{
    static atomic_ulong counter;
    char h[HOST_ESC + 1];
    struct timespec ts;
    unsigned long q = atomic_fetch_add(&counter, 1) + 1;
    unsigned long long r = 0;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
        r ^= ((unsigned long long)ts.tv_nsec << 32) ^ (unsigned long long)(uintptr_t)&ts ^ q;
    host_escape(host, h, sizeof h);
    snprintf(out, len, "%lld.M%06ldP%ldQ%luR%016llx.%s", (long long)ts.tv_sec,
             ts.tv_nsec / 1000, (long)getpid(), q, r, h);
}

/* Writes prefix and body converted into fd and starts the write-back of
 * the data (the sync comes later, for the whole batch): 0 with sizes, or
 * -1 with errno. */
static int write_message(int fd, const char *prefix, size_t prefixlen,
                         const struct evbuffer *body, uint64_t *size, uint64_t *vsize)
{
    struct lfconv c = { .fd = fd };
    c.buf = xmalloc(CONV_BUF);
    if (prefix && prefixlen)
        conv_feed(&c, (const unsigned char *)prefix, prefixlen);
    conv_evbuffer(&c, body);
    conv_end(&c);
    free(c.buf);
    /* block allocation and I/O start now for every file of the batch, so
     * that the first fdatasync's journal commit carries them all; a file
     * system without it only loses that overlap */
    if (!c.err)
        (void)sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
    *size = c.size;
    *vsize = c.vsize;
    errno = c.err;
    return c.err ? -1 : 0;
}

/*
 * A round of SYNCFS_MIN or more messages on one file system is synced with
 * syncfs(2), twice: once for all their files (before any link), once for
 * all their new/ entries (before any is reported).  Per-file syncs cost a
 * device cache flush each on file systems without a journal to batch them
 * (ext4 without one, as on the machine the benchmarks run on: one flush per
 * fdatasync and per directory fsync, 1.8 per message); syncfs costs one
 * for the round, plus writing whatever else is dirty on that file system
 * (maildir_root on its own file system keeps that to the maildrops).  When
 * syncfs fails (it also reports another file's write-back error since the
 * fd was opened) the round falls back to the per-file syncs, which report
 * only ours.
 */
#define SYNCFS_MIN 2
static atomic_int syncfs_mode = 1;  /* 0 never; 1 rounds of SYNCFS_MIN; for
                                     * tests as 1, but 2: each syncfs fails,
                                     * 3: the one of new/ entries fails */
static atomic_ulong syncs_file, syncs_dir, syncs_fs;

void maildir_sync_counts(unsigned long *files, unsigned long *dirs, unsigned long *fs)
{
    *files = atomic_load(&syncs_file);
    *dirs = atomic_load(&syncs_dir);
    *fs = atomic_load(&syncs_fs);
}

void maildir_syncfs_mode(int mode)
{
    atomic_store(&syncfs_mode, mode);
}

/* syncfs of fd's file system, then an fdatasync of fd (clean by then): on
 * ext4 without a journal syncfs writes the inode table blocks after its
 * cache flush, and the fdatasync's flush makes them durable; with a journal
 * it costs nothing more. */
static int fs_sync(int fd, int entries)
{
    int mode = atomic_load(&syncfs_mode);
    atomic_fetch_add(&syncs_fs, 1);
    if (mode == 2 || (mode == 3 && entries)) {
        errno = EIO;
        return -1;
    }
    return syncfs(fd) < 0 || fdatasync(fd) < 0 ? -1 : 0;
}

/* One item's progress through a round (private to the batch). */
struct pending {
    int fd;                     /* open tmp/ file, or -1 */
    int made;                   /* the tmp/ file is ours (to remove) */
    int state;                  /* P_* */
    int viafs;                  /* synced by its file system's syncfs */
    int grouped;                /* its file system's syncfs was tried */
    dev_t dev;                  /* its file system */
    size_t anchor;              /* the item whose fd (open to the end) the
                                 * file system's syncfs uses */
    char base[NAME_MAX + 1];
};
enum { P_FAILED, P_WRITTEN, P_SYNCED, P_LINKED, P_DONE };

static void item_fail(struct maildir_item *it, struct pending *p, int e, const char *what,
                      const char *path)
{
    it->ok = 0;
    it->temporary = maildir_errno_temporary(e);
    util_fail(it->why, sizeof it->why, "maildir: %s %s: %s", what, path, strerror(e));
    p->state = P_FAILED;
}

static int open_tmp(const char *dir, const char *tmp)
{
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 && errno == ENOENT) {
        /* a maildrop's first message: make its maildir */
        if (maildir_create(dir, NULL, 0) < 0)
            return -1;
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    }
    return fd;
}

/* Step 1: the tmp/ file written, its write-back started, its final name
 * (with ,S= and ,W=) in it->name; namemax bounds that name's length. */
static void round_write(struct maildir_item *it, struct pending *p, const char *host,
                        size_t namemax)
{
    char rel[NAME_MAX + 8], tmp[PATH_MAX];
    uint64_t size = 0, vsize = 0;
    struct stat st;
    int e, n;
    unique_base(host, p->base, sizeof p->base);
    snprintf(rel, sizeof rel, "tmp/%s", p->base);
    if (!it->dir || maildir_join(tmp, sizeof tmp, it->dir, rel) < 0) {
        item_fail(it, p, ENAMETOOLONG, "path", it->dir ? it->dir : "(null)");
        return;
    }
    if ((p->fd = open_tmp(it->dir, tmp)) < 0) {
        item_fail(it, p, errno, "create", tmp);
        return;
    }
    p->made = 1;
    if (fstat(p->fd, &st) == 0)
        p->dev = st.st_dev;
    if (write_message(p->fd, it->prefix, it->prefixlen, it->body, &size, &vsize) < 0) {
        e = errno;
        item_fail(it, p, e, "write", tmp);
        return;
    }
    n = snprintf(it->name, sizeof it->name, "%s,S=%llu,W=%llu", p->base,
                 (unsigned long long)size, (unsigned long long)vsize);
    if (n < 0 || (size_t)n >= sizeof it->name || (size_t)n >= namemax ||
        (size_t)n > NAME_MAX) {
        item_fail(it, p, ENAMETOOLONG, "name", it->name);
        return;
    }
    p->state = P_WRITTEN;
}

/* Step 2: the data synced, the file closed. */
static void round_sync(struct maildir_item *it, struct pending *p)
{
    char tmp[PATH_MAX];
    const char *what = NULL;
    int e = 0;
    if (fdatasync(p->fd) < 0) {         /* data and size: all a reader needs */
        e = errno;
        what = "sync";
    }
    atomic_fetch_add(&syncs_file, 1);
    if (close(p->fd) < 0 && !what) {
        e = errno;
        what = "close";
    }
    p->fd = -1;
    if (what) {
        snprintf(tmp, sizeof tmp, "%s/tmp/%s", it->dir, p->base);
        item_fail(it, p, e, what, tmp);
        return;
    }
    p->state = P_SYNCED;
}

/* Step 2 for a whole round: a syncfs per file system when the round is
 * large enough (the fds of the others closed, the anchor's kept), then
 * fdatasync for the items not synced that way. */
static void round_sync_all(struct maildir_item *items, struct pending *ps, size_t n)
{
    size_t nw = 0;
    for (size_t i = 0; i < n; i++)
        nw += ps[i].state == P_WRITTEN;
    if (atomic_load(&syncfs_mode) && nw >= SYNCFS_MIN) {
        for (size_t i = 0; i < n; i++) {
            if (ps[i].state != P_WRITTEN || ps[i].grouped)
                continue;
            int rc = fs_sync(ps[i].fd, 0);
            for (size_t k = i; k < n; k++) {
                if (ps[k].state != P_WRITTEN || ps[k].grouped || ps[k].dev != ps[i].dev)
                    continue;
                ps[k].grouped = 1;
                ps[k].anchor = i;
                if (rc < 0)
                    continue;           /* fdatasync below */
                ps[k].viafs = 1;
                ps[k].state = P_SYNCED;
                if (k != i) {
                    close(ps[k].fd);
                    ps[k].fd = -1;
                }
            }
        }
    }
    for (size_t i = 0; i < n; i++)
        if (ps[i].state == P_WRITTEN)
            round_sync(&items[i], &ps[i]);
}

/* Step 3: moved (or linked) into new/, unless the caller cancelled it
 * meanwhile. */
static void round_link(struct maildir_item *it, struct pending *p)
{
    char tmp[PATH_MAX], newpath[PATH_MAX];
    if (it->cancel && atomic_load(it->cancel)) {
        item_fail(it, p, ECANCELED, "cancelled", it->dir);
        it->temporary = 1;
        return;
    }
    if (snprintf(tmp, sizeof tmp, "%s/tmp/%s", it->dir, p->base) >= (int)sizeof tmp ||
        snprintf(newpath, sizeof newpath, "%s/new/%s", it->dir, it->name) >=
        (int)sizeof newpath) {
        item_fail(it, p, ENAMETOOLONG, "link", it->name);
        return;
    }
    /* moved, never over an existing name (the Maildir spec's link(2) and
     * unlink(2) in one call); link(2) where the file system cannot */
    int rc = renameat2(AT_FDCWD, tmp, AT_FDCWD, newpath, RENAME_NOREPLACE);
    /* new/ gone since the maildir was made (an operator's cleanup): made
     * again, once */
    if (rc < 0 && errno == ENOENT && maildir_create(it->dir, NULL, 0) == 0)
        rc = renameat2(AT_FDCWD, tmp, AT_FDCWD, newpath, RENAME_NOREPLACE);
    if (rc == 0) {
        p->made = 0;                    /* the tmp/ name is gone */
    } else if (errno == EINVAL || errno == ENOSYS) {
        if (link(tmp, newpath) < 0) {
            if ((errno != EPERM && errno != ENOSYS && errno != EOPNOTSUPP) ||
                rename(tmp, newpath) < 0) {
                item_fail(it, p, errno, "link", newpath);
                return;
            }
        }
    } else {
        item_fail(it, p, errno, "link", newpath);
        return;
    }
    p->state = P_LINKED;
}

/* Step 4: the new/ entries synced: by their file system's syncfs again
 * (for the items synced that way in step 2), else each distinct new/ of the
 * linked items fsync'ed once; a failure fails (and unlinks) the items
 * linked into it. */
static void round_publish(struct maildir_item *items, struct pending *ps, size_t n)
{
    char nd[PATH_MAX], path[PATH_MAX];
    for (size_t i = 0; i < n; i++) {
        if (ps[i].state != P_LINKED || !ps[i].viafs)
            continue;
        size_t a = ps[i].anchor;
        int rc = fs_sync(ps[a].fd, 1);
        for (size_t k = i; k < n; k++)
            if (ps[k].state == P_LINKED && ps[k].viafs && ps[k].anchor == a) {
                ps[k].viafs = 0;        /* done with: or the fsyncs below */
                if (rc == 0)
                    ps[k].state = P_DONE;
            }
    }
    for (size_t i = 0; i < n; i++) {
        if (ps[i].state != P_LINKED)
            continue;
        int rc = -1, e = ENAMETOOLONG;
        if (maildir_join(nd, sizeof nd, items[i].dir, "new") == 0) {
            rc = maildir_fsync_dir(nd);
            e = errno;
            atomic_fetch_add(&syncs_dir, 1);
        }
        for (size_t k = i; k < n; k++) {
            if (ps[k].state != P_LINKED || (k != i && strcmp(items[k].dir, items[i].dir)))
                continue;
            if (rc == 0) {
                ps[k].state = P_DONE;
                continue;
            }
            snprintf(path, sizeof path, "%s/new/%s", items[k].dir, items[k].name);
            unlink(path);
            item_fail(&items[k], &ps[k], e, "sync", nd);
        }
    }
}

/* One round of at most MAILDIR_BATCH_MAX items. */
static void deliver_round(struct maildir_item *items, size_t n, const char *host,
                          size_t namemax)
{
    struct pending *ps = xcalloc(n, sizeof *ps);
    char tmp[PATH_MAX];
    for (size_t i = 0; i < n; i++) {
        ps[i].fd = -1;
        items[i].ok = items[i].temporary = 0;
        items[i].why[0] = '\0';
        round_write(&items[i], &ps[i], host, namemax);
    }
    round_sync_all(items, ps, n);
    for (size_t i = 0; i < n; i++)
        if (ps[i].state == P_SYNCED)
            round_link(&items[i], &ps[i]);
    round_publish(items, ps, n);
    for (size_t i = 0; i < n; i++) {
        if (ps[i].fd >= 0)
            close(ps[i].fd);
        /* the tmp/ name: gone already after a rename; a failure's file */
        if (ps[i].made &&
            snprintf(tmp, sizeof tmp, "%s/tmp/%s", items[i].dir, ps[i].base) < (int)sizeof tmp)
            unlink(tmp);
        items[i].ok = ps[i].state == P_DONE;
        if (!items[i].ok)
            items[i].name[0] = '\0';
    }
    free(ps);
}

static size_t deliver_items(struct maildir_item *items, size_t n, const char *host,
                            size_t namemax)
{
    size_t ok = 0;
    for (size_t off = 0; off < n; off += MAILDIR_BATCH_MAX) {
        size_t k = n - off < MAILDIR_BATCH_MAX ? n - off : MAILDIR_BATCH_MAX;
        deliver_round(items + off, k, host, namemax);
        for (size_t i = off; i < off + k; i++)
            ok += items[i].ok;
    }
    return ok;
}

size_t maildir_deliver_batch(struct maildir_item *items, size_t n, const char *host)
{
    return deliver_items(items, n, host, sizeof items->name);
}

int maildir_deliver(const char *dir, const char *host,
                    const char *prefix, size_t prefixlen,
                    const struct evbuffer *body,
                    char *name, size_t namelen,
                    int *temporary, char *why, size_t whylen)
{
    struct maildir_item it = {
        .dir = dir, .prefix = prefix, .prefixlen = prefixlen, .body = body,
    };
    deliver_items(&it, 1, host, name ? namelen : sizeof it.name);
    if (temporary)
        *temporary = it.ok ? 0 : it.temporary;
    if (!it.ok)
        return util_fail(why, whylen, "%s", it.why);
    if (name)
        memcpy(name, it.name, strlen(it.name) + 1);
    return 0;
}

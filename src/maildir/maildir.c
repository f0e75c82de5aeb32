/*
 * maildir — where maildrops live (maildir_path), making them
 * (maildir_create) and delivering into them (maildir_deliver): the message
 * is written with LF line ends into tmp/, fsync'ed, linked into new/ under a
 * unique name carrying ",S=" (bytes on disk) and ",W=" (bytes with CRLF
 * ends), new/ is fsync'ed and the tmp/ name removed.
 *
 * Trusts: the root and dir its callers pass (configuration); nothing in a
 * maildrop name (maildir_path refuses whatever could leave its directory or
 * hide: '/', a leading '.', control and non-ASCII bytes) nor in a host name
 * (escaped into the file name).  Message bytes are copied, never parsed
 * beyond line ends.  Guarantees: maildir_deliver returns 0 only once the
 * file and its new/ entry are synced, and on failure leaves nothing in
 * tmp/ or new/; names are unique per process (time, microseconds, pid, a
 * counter, 64 random bits).  Every call here blocks: worker threads only.
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

/* Writes prefix and body converted into fd: 0 with sizes, or -1 with errno. */
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
    if (!c.err && fdatasync(fd) < 0)     /* data and size: all a reader needs */
        c.err = errno;
    *size = c.size;
    *vsize = c.vsize;
    errno = c.err;
    return c.err ? -1 : 0;
}

/* Links tmp to new (or renames where the file system has no hard links)
 * and fsyncs new/.  0 / -1 with errno; on failure new is gone. */
static int publish(const char *dir, const char *tmp, const char *newpath)
{
    char nd[PATH_MAX];
    int e;
    if (link(tmp, newpath) < 0) {
        if (errno != EPERM && errno != ENOSYS && errno != EOPNOTSUPP)
            return -1;
        if (rename(tmp, newpath) < 0)
            return -1;
    }
    if (maildir_join(nd, sizeof nd, dir, "new") == 0 && maildir_fsync_dir(nd) == 0)
        return 0;
    e = errno;
    unlink(newpath);
    errno = e;
    return -1;
}

static int deliver_fail(int e, const char *what, const char *path, int *temporary,
                        char *why, size_t whylen)
{
    if (temporary)
        *temporary = maildir_errno_temporary(e);
    return util_fail(why, whylen, "maildir: %s %s: %s", what, path, strerror(e));
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

int maildir_deliver(const char *dir, const char *host,
                    const char *prefix, size_t prefixlen,
                    const struct evbuffer *body,
                    char *name, size_t namelen,
                    int *temporary, char *why, size_t whylen)
{
    char base[NAME_MAX + 1], final[NAME_MAX + 1], rel[NAME_MAX + 8];
    char tmp[PATH_MAX], newpath[PATH_MAX];
    uint64_t size = 0, vsize = 0;
    int fd, e, n;
    if (temporary)
        *temporary = 0;
    unique_base(host, base, sizeof base);
    snprintf(rel, sizeof rel, "tmp/%s", base);
    if (!dir || maildir_join(tmp, sizeof tmp, dir, rel) < 0)
        return deliver_fail(ENAMETOOLONG, "path", dir ? dir : "(null)", temporary, why, whylen);
    if ((fd = open_tmp(dir, tmp)) < 0)
        return deliver_fail(errno, "create", tmp, temporary, why, whylen);
    if (write_message(fd, prefix, prefixlen, body, &size, &vsize) < 0) {
        e = errno;
        close(fd);
        unlink(tmp);
        return deliver_fail(e, "write", tmp, temporary, why, whylen);
    }
    if (close(fd) < 0) {
        e = errno;
        unlink(tmp);
        return deliver_fail(e, "close", tmp, temporary, why, whylen);
    }
    n = snprintf(final, sizeof final, "%s,S=%llu,W=%llu", base,
                 (unsigned long long)size, (unsigned long long)vsize);
    snprintf(rel, sizeof rel, "new/%s", final);
    if (n < 0 || (size_t)n >= sizeof final || (name && (size_t)n >= namelen) ||
        maildir_join(newpath, sizeof newpath, dir, rel) < 0) {
        unlink(tmp);
        return deliver_fail(ENAMETOOLONG, "name", final, temporary, why, whylen);
    }
    if (publish(dir, tmp, newpath) < 0) {
        e = errno;
        unlink(tmp);
        return deliver_fail(e, "link", newpath, temporary, why, whylen);
    }
    unlink(tmp);        /* gone already after a rename; a stale tmp/ name is harmless */
    if (name)
        memcpy(name, final, (size_t)n + 1);
    return 0;
}

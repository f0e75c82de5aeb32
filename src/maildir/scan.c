/*
 * scan — listing a maildrop (maildir_scan) and acting on a listed message:
 * open, remove, mark seen.  A listing reads new/ and cur/ with readdir and
 * takes size, POP3 size and delivery time from each name (",S=", ",W=",
 * the leading seconds), so a maildrop of our own messages is listed without
 * opening or stat'ing one file.  Only a file without both sizes in its name
 * (delivered by another program, copied by hand) is opened and read once to
 * count its bare LFs; a name without a leading time costs a stat.
 *
 * Trusts: nothing in a file name (parsed with bounds and overflow checks;
 * dot files, tmp/ and anything not a regular file are skipped, symbolic
 * links included) and nothing in foreign files' contents (only counted).
 * Trusts that a name's ",S=" and ",W=" tell the truth: a file whose name
 * lies is listed with the name's sizes.  Guarantees: the UIDL of a message
 * is the hex MD5 of its base name (before ':'), so it survives the move from
 * new/ to cur/ and a restart; the list is oldest first, then by name.
 * Two files with one base name would share a UIDL: maildir_scan_unique
 * (for the session that holds the maildrop) renames all but one to names
 * of their own, never over another file.
 * Removals and renames are not fsync'ed: after a crash a removed message
 * may come back, never a message be lost.  All calls block: worker threads.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/digest.h"
#include "core/log.h"
#include "core/util.h"
#include "maildir/maildir.h"
#include "maildir_int.h"

/* Decimal digits from s (at most n bytes) into *v: how many were read, 0
 * when none or on overflow. */
static size_t parse_u64(const char *s, size_t n, uint64_t *v)
{
    size_t i = 0;
    uint64_t x = 0;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (x > (UINT64_MAX - d) / 10)
            return 0;
        x = x * 10 + d;
    }
    *v = x;
    return i;
}

void maildir_name_parse(const char *name, struct maildir_name *o)
{
    const char *colon = strchr(name, ':');
    const char *p, *end;
    uint64_t v;
    size_t k;
    memset(o, 0, sizeof *o);
    o->baselen = colon ? (size_t)(colon - name) : strlen(name);
    if (colon && colon[1] == '2' && colon[2] == ',')
        o->flags = colon + 3;
    end = name + o->baselen;
    k = parse_u64(name, o->baselen, &v);
    if (k > 0 && k < o->baselen && name[k] == '.' && v <= (uint64_t)INT64_MAX / 2) {
        o->has_time = 1;
        o->time = (time_t)v;
    }
    /* ",KEY=VALUE" fields after the unique part */
    for (p = memchr(name, ',', o->baselen); p && p < end;
         p = memchr(p + 1, ',', (size_t)(end - p - 1))) {
        size_t left = (size_t)(end - p - 1);
        if (left < 3 || p[2] != '=' || (p[1] != 'S' && p[1] != 'W'))
            continue;
        k = parse_u64(p + 3, left - 2, &v);
        if (k == 0 || (p + 3 + k < end && p[3 + k] != ','))
            continue;
        if (p[1] == 'S') {
            o->has_size = 1;
            o->size = v;
        } else {
            o->has_vsize = 1;
            o->vsize = v;
        }
    }
}

void maildir_uidl(const char *base, size_t len, char *out)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[DIGEST_MD5_LEN];
    struct digest_part part = { base, len };
    if (digest_md5(&part, 1, md) < 0)
        log_fatal("maildir: MD5 failed");
    for (size_t i = 0; i < DIGEST_MD5_LEN; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[MAILDIR_UIDL_LEN] = '\0';
}

/* A foreign file: its size, the size as POP3 sends it (each bare LF as
 * CRLF, an unended last line ended), its mtime.
 * 0, or -1 with errno (ENOENT: gone meanwhile; EINVAL: not a regular file). */
static int measure(int dfd, const char *name, uint64_t *size, uint64_t *vsize,
                   time_t *mtime)
{
    unsigned char buf[16384];
    unsigned char last = 0;
    uint64_t n = 0, bare = 0;
    struct stat st;
    ssize_t r;
    int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return -1;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        int e = fstat(fd, &st) < 0 ? errno : EINVAL;
        close(fd);
        errno = e;
        return -1;
    }
    while ((r = read(fd, buf, sizeof buf)) != 0) {
        if (r < 0) {
            int e = errno;
            if (e == EINTR)
                continue;
            close(fd);
            errno = e;
            return -1;
        }
        for (ssize_t i = 0; i < r; i++) {
            if (buf[i] == '\n' && last != '\r')
                bare++;
            last = buf[i];
        }
        n += (uint64_t)r;
    }
    close(fd);
    *size = n;
    /* POP3 ends an unended last line: CR LF, or the LF of a CR */
    *vsize = n + bare + (n == 0 || last == '\n' ? 0 : last == '\r' ? 1 : 2);
    *mtime = st.st_mtime;
    return 0;
}

struct scanbuf {
    struct maildir_msg *m;
    size_t n, cap;
};

/* One entry of new/ or cur/: 1 listed, 0 skipped. */
static int scan_entry(int dfd, const char *sub, const struct dirent *de,
                      struct scanbuf *sb)
{
    struct maildir_name nm;
    struct maildir_msg *m;
    struct stat st;
    uint64_t size, vsize;
    time_t mtime;
    size_t flen;
    if (de->d_name[0] == '.' || (de->d_type != DT_REG && de->d_type != DT_UNKNOWN))
        return 0;
    maildir_name_parse(de->d_name, &nm);
    size = nm.size;
    vsize = nm.vsize;
    mtime = nm.time;
    if (!nm.has_size || !nm.has_vsize) {
        if (measure(dfd, de->d_name, &size, &vsize, &st.st_mtime) < 0) {
            if (errno != ENOENT && errno != EINVAL && errno != ELOOP)
                log_warn("maildir: cannot read %s/%s: %s", sub, de->d_name, strerror(errno));
            return 0;
        }
        if (!nm.has_time)
            mtime = st.st_mtime;
    } else if (!nm.has_time || de->d_type == DT_UNKNOWN) {
        if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
            return 0;
        if (!nm.has_time)
            mtime = st.st_mtime;
    }
    if (sb->n == sb->cap) {
        sb->cap = sb->cap ? sb->cap * 2 : 64;
        sb->m = xrealloc(sb->m, sb->cap * sizeof *sb->m);
    }
    m = &sb->m[sb->n++];
    flen = strlen(de->d_name);
    m->file = xmalloc(flen + 5);
    memcpy(m->file, sub, 3);
    m->file[3] = '/';
    memcpy(m->file + 4, de->d_name, flen + 1);
    m->size = size;
    m->vsize = vsize;
    m->mtime = mtime;
    maildir_uidl(de->d_name, nm.baselen, m->uidl);
    m->seen = sub[0] == 'c' && nm.flags && strchr(nm.flags, 'S') != NULL;
    return 1;
}

static int scan_sub(const char *dir, const char *sub, struct scanbuf *sb,
                    char *why, size_t whylen)
{
    char path[PATH_MAX];
    struct dirent *de;
    DIR *d;
    if (maildir_join(path, sizeof path, dir, sub) < 0)
        return util_fail(why, whylen, "maildir %s: path too long", dir);
    if (!(d = opendir(path))) {
        if (errno == ENOENT)
            return 0;
        return util_fail(why, whylen, "maildir %s: %s", path, strerror(errno));
    }
    errno = 0;
    while ((de = readdir(d)) != NULL) {
        scan_entry(dirfd(d), sub, de, sb);
        errno = 0;
    }
    if (errno) {
        int e = errno;
        closedir(d);
        return util_fail(why, whylen, "maildir %s: %s", path, strerror(e));
    }
    closedir(d);
    return 0;
}

static int msg_cmp(const void *a, const void *b)
{
    const struct maildir_msg *x = a, *y = b;
    if (x->mtime != y->mtime)
        return x->mtime < y->mtime ? -1 : 1;
    return strcmp(x->file + 4, y->file + 4);
}

int maildir_scan(const char *dir, struct maildir_list *out, char *why, size_t whylen)
{
    struct scanbuf sb = { 0 };
    memset(out, 0, sizeof *out);
    if (scan_sub(dir, "new", &sb, why, whylen) < 0 ||
        scan_sub(dir, "cur", &sb, why, whylen) < 0) {
        out->msgs = sb.m;
        out->n = sb.n;
        maildir_list_free(out);
        return -1;
    }
    if (sb.n > 1)
        qsort(sb.m, sb.n, sizeof *sb.m, msg_cmp);
    out->msgs = sb.m;
    out->n = sb.n;
    for (size_t i = 0; i < sb.n; i++)
        out->bytes += sb.m[i].vsize;
    return 0;
}

/* rename(2) that never replaces an existing file (EEXIST instead): another
 * file of that name is another message.  Where the file system lacks
 * RENAME_NOREPLACE, link(2) and unlink(2), as the Maildir spec moves. */
static int rename_noreplace(const char *from, const char *to)
{
    int rc = renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE);
    if (rc < 0 && (errno == EINVAL || errno == ENOSYS) && (rc = link(from, to)) == 0)
        unlink(from);
    return rc;
}

/* m ("new/NAME" or "cur/NAME") renamed in its directory to a name of its
 * own: ".dN" added to the unique part (before the first ',' or ':'), whose
 * UIDL is not in seen, never over an existing name; m->file and m->uidl
 * follow.  0, or -1 with errno. */
static int rename_duplicate(const char *dir, struct maildir_msg *m, const struct hmap *seen)
{
    char from[PATH_MAX], to[PATH_MAX], file[NAME_MAX + 8], uidl[MAILDIR_UIDL_LEN + 1];
    const char *name = m->file + 4;
    size_t ulen = strcspn(name, ",:");
    for (unsigned n = 1; n <= 100; n++) {
        int k = snprintf(file, sizeof file, "%.3s/%.*s.d%u%s", m->file, (int)ulen, name, n,
                         name + ulen);
        if (k < 0 || (size_t)k >= sizeof file || k - 4 > NAME_MAX ||
            maildir_join(from, sizeof from, dir, m->file) < 0 ||
            maildir_join(to, sizeof to, dir, file) < 0) {
            errno = ENAMETOOLONG;
            return -1;
        }
        maildir_uidl(file + 4, strcspn(file + 4, ":"), uidl);
        if (hmap_get(seen, uidl))
            continue;                   /* another message's base name */
        int rc = rename_noreplace(from, to);
        if (rc == 0) {
            free(m->file);
            m->file = xstrdup(file);
            memcpy(m->uidl, uidl, sizeof m->uidl);
            return 0;
        }
        if (errno != EEXIST)
            return -1;
    }
    errno = EEXIST;
    return -1;
}

size_t maildir_scan_unique(const char *dir, struct maildir_list *l)
{
    struct hmap *seen = hmap_new(0);
    unsigned char *dup = xcalloc(l->n ? l->n : 1, 1);
    size_t renamed = 0, k = 0;
    /* cur/ first: a file there keeps its UIDL, a copy in new/ gets a new one */
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < l->n; i++) {
            struct maildir_msg *m = &l->msgs[i];
            if ((m->file[0] == 'c') != (pass == 0))
                continue;
            if (hmap_get(seen, m->uidl))
                dup[i] = 1;
            else
                hmap_put(seen, m->uidl, m);
        }
    for (size_t i = 0; i < l->n; i++) {
        struct maildir_msg *m = &l->msgs[i];
        char was[NAME_MAX + 8];
        if (!dup[i])
            continue;
        snprintf(was, sizeof was, "%s", m->file);
        if (rename_duplicate(dir, m, seen) == 0) {
            hmap_put(seen, m->uidl, m);
            log_warn("maildir: %s/%s has the base name of another message: renamed to %s",
                     dir, was, m->file);
            renamed++;
            continue;
        }
        log_warn("maildir: %s/%s has the base name of another message and cannot be "
                 "renamed: %s; not listed", dir, was, strerror(errno));
        l->bytes -= m->vsize;
        free(m->file);
        m->file = NULL;
    }
    hmap_free(seen);
    free(dup);
    for (size_t i = 0; i < l->n; i++)
        if (l->msgs[i].file)
            l->msgs[k++] = l->msgs[i];
    l->n = k;
    return renamed;
}

void maildir_list_free(struct maildir_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        free(l->msgs[i].file);
    free(l->msgs);
    memset(l, 0, sizeof *l);
}

/* Where a listed message is now, when not at m->file (moved between new/
 * and cur/, or its flags changed, by another reader): its path relative to
 * dir into rel, 0; -1 when it is nowhere. */
static int locate(const char *dir, const struct maildir_msg *m, char *rel, size_t len)
{
    static const char *const subs[] = { "new", "cur" };
    const char *name = m->file + 4;
    size_t baselen = strcspn(name, ":");
    char path[PATH_MAX];
    int found = -1;
    for (size_t i = 0; i < 2 && found < 0; i++) {
        struct dirent *de;
        DIR *d;
        if (maildir_join(path, sizeof path, dir, subs[i]) < 0 || !(d = opendir(path)))
            continue;
        while ((de = readdir(d)) != NULL) {
            if (strncmp(de->d_name, name, baselen) == 0 &&
                (de->d_name[baselen] == ':' || de->d_name[baselen] == '\0') &&
                (size_t)snprintf(rel, len, "%s/%s", subs[i], de->d_name) < len) {
                found = 0;
                break;
            }
        }
        closedir(d);
    }
    return found;
}

int maildir_open(const char *dir, const struct maildir_msg *m, char *why, size_t whylen)
{
    char path[PATH_MAX], rel[NAME_MAX + 8];
    int fd, e;
    if (maildir_join(path, sizeof path, dir, m->file) < 0)
        return util_fail(why, whylen, "maildir %s: path too long", dir);
    fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && locate(dir, m, rel, sizeof rel) == 0 &&
        maildir_join(path, sizeof path, dir, rel) == 0)
        fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0)
        return fd;
    e = errno;
    util_fail(why, whylen, "maildir %s: %s", path, strerror(e));
    errno = e;
    return -1;
}

int maildir_remove(const char *dir, const struct maildir_msg *m, char *why, size_t whylen)
{
    char path[PATH_MAX], rel[NAME_MAX + 8];
    if (maildir_join(path, sizeof path, dir, m->file) < 0)
        return util_fail(why, whylen, "maildir %s: path too long", dir);
    if (unlink(path) == 0)
        return 0;
    if (errno == ENOENT) {
        if (locate(dir, m, rel, sizeof rel) < 0 ||
            maildir_join(path, sizeof path, dir, rel) < 0 ||
            unlink(path) == 0 || errno == ENOENT)
            return 0;
    }
    return util_fail(why, whylen, "maildir: remove %s: %s", path, strerror(errno));
}

int maildir_open_at(int dirfd, const char *dir, const struct maildir_msg *m, char *why,
                    size_t whylen)
{
    if (dirfd >= 0) {
        int fd = openat(dirfd, m->file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0)
            return fd;
        if (errno != ENOENT) {
            int e = errno;
            util_fail(why, whylen, "maildir %s/%s: %s", dir, m->file, strerror(e));
            errno = e;
            return -1;
        }
    }
    return maildir_open(dir, m, why, whylen);      /* moved meanwhile, or gone */
}

int maildir_remove_at(int dirfd, const char *dir, const struct maildir_msg *m, char *why,
                      size_t whylen)
{
    if (dirfd >= 0 && unlinkat(dirfd, m->file, 0) == 0)
        return 0;
    return maildir_remove(dir, m, why, whylen);    /* moved meanwhile, gone, or an error */
}

int maildir_sync(const char *dir, char *why, size_t whylen)
{
    static const char *const sub[] = { "new", "cur" };
    char path[PATH_MAX];
    for (size_t i = 0; i < 2; i++) {
        if (maildir_join(path, sizeof path, dir, sub[i]) < 0)
            return util_fail(why, whylen, "maildir %s: path too long", dir);
        if (maildir_fsync_dir(path) < 0 && errno != ENOENT)
            return util_fail(why, whylen, "maildir: fsync %s: %s", path, strerror(errno));
    }
    return 0;
}

static int char_cmp(const void *a, const void *b)
{
    return *(const unsigned char *)a - *(const unsigned char *)b;
}

/* "cur/BASE:2,FLAGS" for name with S added to its flags (ASCII order, each
 * once, as the Maildir spec wants) into out. */
static int seen_name(const char *name, char *out, size_t len)
{
    struct maildir_name nm;
    char flags[64];
    size_t nf = 0, k = 0;
    maildir_name_parse(name, &nm);
    for (const char *f = nm.flags; f && *f && nf < sizeof flags - 2; f++)
        if (*f >= 0x21 && *f <= 0x7e && *f != '/')
            flags[nf++] = *f;
    flags[nf++] = 'S';
    qsort(flags, nf, 1, char_cmp);
    for (size_t i = 0; i < nf; i++)
        if (k == 0 || flags[k - 1] != flags[i])
            flags[k++] = flags[i];
    flags[k] = '\0';
    if ((size_t)snprintf(out, len, "cur/%.*s:2,%s", (int)nm.baselen, name, flags) >= len)
        return -1;
    return 0;
}

int maildir_mark_seen(const char *dir, struct maildir_msg *m, char *why, size_t whylen)
{
    char from[PATH_MAX], to[PATH_MAX], rel[NAME_MAX + 8], target[NAME_MAX + 16];
    const char *cur = m->file;
    int tries = 0;
    for (;;) {
        if (seen_name(cur + 4, target, sizeof target) < 0 ||
            maildir_join(from, sizeof from, dir, cur) < 0 ||
            maildir_join(to, sizeof to, dir, target) < 0)
            return util_fail(why, whylen, "maildir %s: name too long", dir);
        if (strcmp(cur, target) == 0 || rename_noreplace(from, to) == 0)
            break;
        if (errno != ENOENT || tries++ > 0 || locate(dir, m, rel, sizeof rel) < 0)
            return util_fail(why, whylen, "maildir: rename %s: %s", from, strerror(errno));
        cur = rel;
    }
    if (strcmp(m->file, target) != 0) {
        free(m->file);
        m->file = xstrdup(target);
    }
    m->seen = 1;
    return 0;
}

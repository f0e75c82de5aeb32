/*
 * spool_state — the state files of spool_state.h: small named files under
 * spool/state/ (customer holds, the link table), each replaced whole or
 * appended to.  The loop thread checks the name and queues the write as a
 * job on the spool's aux thread (spool_aux.c), which writes NAME.tmp,
 * fsyncs it, renames it over NAME and fsyncs state/ (spool_state_replace()),
 * or appends to NAME and fdatasyncs it (spool_state_append_job()); the
 * completion comes back on the loop like every spool job.  Reads are
 * synchronous, for start-up.
 *
 * Trusts: nothing in a name (only [A-Za-z0-9._-], no leading '.', no ".tmp"
 * end: it can name nothing outside state/ nor a temporary file) and nothing
 * in the contents (bytes, never parsed here).  Guarantees: a completion with 0
 * means the new contents and the directory entry are synced (an append:
 * the appended bytes and the file's length); a reader of a replaced file
 * sees the old file or the new one whole, never a mix; a failed write leaves
 * no NAME.tmp behind, a failed append is cut back to the old length when
 * the file still lets itself be truncated.  An append never creates a file:
 * its first bytes come from a replacement, whole.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "core/log.h"
#include "core/util.h"
#include "spool/spool.h"
#include "spool/spool_state.h"
#include "spool_int.h"

#define STATE_NAMEMAX 128

/* State file names: [A-Za-z0-9._-], not starting with '.', no ".tmp" end. */
static int state_name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > STATE_NAMEMAX || name[0] == '.' ||
        (n >= 4 && strcmp(name + n - 4, ".tmp") == 0))
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

static void state_queue(struct spool *sp, enum job_type type, const char *name,
                        const void *data, size_t len, spool_state_cb *cb, void *arg)
{
    struct spool_job *j;
    if (!state_name_ok(name)) {
        log_warn("spool: state file name refused: \"%s\"", name ? name : "(null)");
        spool_fail_now(sp, cb, arg, EINVAL);
        return;
    }
    j = spool_job_new(type, len, cb, arg);
    if (len)
        memcpy(j->meta, data, len);
    j->meta_len = len;
    j->name = xstrdup(name);
    spool_push(sp, &sp->aq, &sp->acond, j);
}

void spool_state_write(struct spool *sp, const char *name, const void *data,
                       size_t len, spool_state_cb *cb, void *arg)
{
    state_queue(sp, J_STFILE, name, data, len, cb, arg);
}

void spool_state_append(struct spool *sp, const char *name, const void *data,
                        size_t len, spool_state_cb *cb, void *arg)
{
    state_queue(sp, J_STAPPEND, name, data, len, cb, arg);
}

int spool_state_read(struct spool *sp, const char *name, struct evbuffer *out)
{
    char buf[16384];
    ssize_t n;
    int fd;
    if (!state_name_ok(name)) {
        errno = EINVAL;
        return -1;
    }
    if ((fd = openat(sp->sdfd, name, O_RDONLY | O_CLOEXEC)) < 0) {
        if (errno == ENOENT)
            return 0;
        log_err("spool: cannot open state/%s: %s", name, strerror(errno));
        return -1;
    }
    while ((n = read(fd, buf, sizeof buf)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || evbuffer_add(out, buf, (size_t)n) < 0) {
            int e = n < 0 ? errno : ENOMEM;
            log_err("spool: cannot read state/%s: %s", name, strerror(e));
            close(fd);
            errno = e;
            return -1;
        }
    }
    close(fd);
    return 0;
}

/* NAME.tmp, fsync, rename over NAME, fsync state/.  0 / errno. */
int spool_state_replace(struct spool *sp, struct spool_job *j)
{
    char tmp[STATE_NAMEMAX + 8];
    int fd, err;
    snprintf(tmp, sizeof tmp, "%s.tmp", j->name);
    fd = openat(sp->sdfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return errno;
    err = spool_write_full(fd, j->meta, j->meta_len);
    if (!err && fsync(fd) < 0)
        err = errno;
    if (close(fd) < 0 && !err)
        err = errno;
    if (!err && renameat(sp->sdfd, tmp, sp->sdfd, j->name) < 0)
        err = errno;
    if (!err && fsync(sp->sdfd) < 0)
        err = errno;
    if (err) {
        log_err("spool: cannot write state/%s: %s", j->name, strerror(err));
        unlinkat(sp->sdfd, tmp, 0);
    }
    return err;
}

/* Appends to an existing NAME, fdatasync; on failure, back to the old
 * length.  0 / errno. */
int spool_state_append_job(struct spool *sp, struct spool_job *j)
{
    struct stat st = { .st_size = -1 };
    int fd, err = 0;
    fd = openat(sp->sdfd, j->name, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0) {
        err = errno;
        log_err("spool: cannot append to state/%s: %s", j->name, strerror(err));
        return err;
    }
    if (fstat(fd, &st) < 0)
        err = errno;
    if (!err)
        err = spool_write_full(fd, j->meta, j->meta_len);
    if (!err && fdatasync(fd) < 0)
        err = errno;
    if (err) {
        log_err("spool: cannot append to state/%s: %s", j->name, strerror(err));
        if (st.st_size >= 0 && ftruncate(fd, st.st_size) == 0)
            (void)fdatasync(fd);
    }
    if (close(fd) < 0 && !err)
        err = errno;
    return err;
}

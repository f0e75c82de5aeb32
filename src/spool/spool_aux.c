/*
 * spool_aux — the spool's aux thread (see spool.c): reads message bodies
 * (one pread for a small record, checked: header, payload CRC, trailer),
 * writes state files (spool_state_replace() of spool_state.c: tmp, fsync,
 * rename, fsync the directory; or spool_state_append_job(): append,
 * fdatasync) and deletes reclaimed segments.  It trusts
 * the locations the loop thread hands it only as far as the record's own
 * checks confirm them (EIO otherwise); it never touches the loop's data:
 * results go back through spool_post().
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "core/log.h"
#include "core/util.h"
#include "spool/spool.h"
#include "spool/spool_record.h"
#include "spool_int.h"


static int aux_seg_fd(struct spool *sp, uint32_t seg)
{
    char name[32];
    if (sp->a.fd >= 0 && sp->a.seg == seg)
        return sp->a.fd;
    if (sp->a.fd >= 0)
        close(sp->a.fd);
    spool_seg_name(name, sizeof name, seg);
    sp->a.fd = openat(sp->jdfd, name, O_RDONLY | O_CLOEXEC);
    sp->a.seg = seg;
    return sp->a.fd;
}

static int aux_read_chunks(int fd, struct evbuffer *buf, uint64_t off, size_t len,
                           uint32_t *crc)
{
    while (len > 0) {
        struct evbuffer_iovec v;
        size_t n = len > SPOOL_RBUF ? SPOOL_RBUF : len;
        int err;
        if (evbuffer_reserve_space(buf, (ev_ssize_t)n, &v, 1) < 1)
            return ENOMEM;
        if ((err = spool_pread_full(fd, v.iov_base, n, off)) != 0)
            return err;
        *crc = spool_crc(*crc, v.iov_base, n);
        v.iov_len = n;
        if (evbuffer_commit_space(buf, &v, 1) < 0)
            return ENOMEM;
        off += n;
        len -= n;
    }
    return 0;
}

#define SPOOL_SMALL_READ (256 * 1024)

/* A whole small record in one pread: header, metadata, body and trailer
 * checked, the body appended to out.  0 / errno (EIO: fails its checks). */
static int aux_read_small(int fd, const struct spool_loc *loc, struct evbuffer *out)
{
    size_t len = (size_t)loc->body_off + loc->body_len + SPOOL_REC_TRL_LEN;
    uint8_t *rec = xmalloc(len);
    struct spool_rec_hdr h;
    int err = spool_pread_full(fd, rec, len, loc->off);
    if (!err) {
        err = EIO;
        if (spool_rec_hdr_decode(rec, &h) == SPOOL_HDR_OK && h.type == SPOOL_REC_MSG &&
            SPOOL_REC_HDR_LEN + (uint64_t)h.meta_len == loc->body_off &&
            h.payload_len - h.meta_len == loc->body_len &&
            spool_rec_len(&h) == len &&
            spool_crc(0, rec + SPOOL_REC_HDR_LEN, h.payload_len) == h.payload_crc &&
            spool_rec_trl_check(rec + len - SPOOL_REC_TRL_LEN, h.payload_len) == 0) {
            evbuffer_add(out, rec + loc->body_off, loc->body_len);
            err = 0;
        }
    }
    free(rec);
    return err;
}

/* Reads the body at j->rloc into j->buf, checking header, payload CRC and
 * trailer.  0 / errno (EIO: the record does not check). */
static int aux_read(struct spool *sp, struct spool_job *j)
{
    const struct spool_loc *loc = &j->rloc;
    struct spool_rec_hdr h;
    uint8_t hdr[SPOOL_REC_HDR_LEN], trl[SPOOL_REC_TRL_LEN], *meta = NULL;
    uint32_t crc;
    int fd, err;

    if ((fd = aux_seg_fd(sp, loc->seg)) < 0)
        return errno;
    if ((uint64_t)loc->body_off + loc->body_len <= SPOOL_SMALL_READ) {
        err = aux_read_small(fd, loc, j->buf);
        goto out;
    }
    if ((err = spool_pread_full(fd, hdr, sizeof hdr, loc->off)) != 0)
        goto out;
    err = EIO;
    if (spool_rec_hdr_decode(hdr, &h) != SPOOL_HDR_OK || h.type != SPOOL_REC_MSG ||
        SPOOL_REC_HDR_LEN + (uint64_t)h.meta_len != loc->body_off ||
        h.payload_len - h.meta_len != loc->body_len)
        goto out;
    meta = xmalloc(h.meta_len + 1);
    if ((err = spool_pread_full(fd, meta, h.meta_len, loc->off + SPOOL_REC_HDR_LEN)) != 0)
        goto out;
    crc = spool_crc(0, meta, h.meta_len);
    err = aux_read_chunks(fd, j->buf, loc->off + loc->body_off, loc->body_len, &crc);
    if (!err)
        err = spool_pread_full(fd, trl, sizeof trl, loc->off + spool_rec_len(&h) - sizeof trl);
    if (!err && (crc != h.payload_crc || spool_rec_trl_check(trl, h.payload_len) < 0))
        err = EIO;
out:
    free(meta);
    if (err)
        log_warn("spool: segment %010u offset %llu: cannot read message body: %s",
                 loc->seg, (unsigned long long)loc->off,
                 err == EIO ? "record fails its checks or is cut short" : strerror(err));
    return err;
}

static void aux_unlink(struct spool *sp, uint32_t seg)
{
    char name[32];
    if (sp->a.fd >= 0 && sp->a.seg == seg) {
        close(sp->a.fd);
        sp->a.fd = -1;
    }
    spool_seg_name(name, sizeof name, seg);
    if (unlinkat(sp->jdfd, name, 0) < 0) {
        if (errno != ENOENT)
            log_err("spool: cannot delete journal/%s: %s", name, strerror(errno));
        return;
    }
    /* Durable before the next (newer) segment goes: see spool_gc(). */
    if (fsync(sp->jdfd) < 0)
        log_err("spool: fsync of journal/ failed: %s", strerror(errno));
    log_info("spool: segment %010u reclaimed", seg);
}

void *spool_aux_main(void *arg)
{
    struct spool *sp = arg;
    pthread_setname_np(pthread_self(), "km-aux");
    pthread_mutex_lock(&sp->mu);
    for (;;) {
        struct spool_job *j;
        while (!sp->aq.head && !sp->stop)
            pthread_cond_wait(&sp->acond, &sp->mu);
        if (!(j = sp->aq.head))
            break;
        if (!(sp->aq.head = j->next))
            sp->aq.tail = NULL;
        pthread_mutex_unlock(&sp->mu);
        if (j->type == J_UNLINK) {
            aux_unlink(sp, j->seg);
            spool_job_free(j);
        } else {
            j->err = j->type == J_READ ? aux_read(sp, j) :
                     j->type == J_STAPPEND ? spool_state_append_job(sp, j) :
                     spool_state_replace(sp, j);
            spool_post(sp, j, j);
        }
        pthread_mutex_lock(&sp->mu);
    }
    pthread_mutex_unlock(&sp->mu);
    return NULL;
}

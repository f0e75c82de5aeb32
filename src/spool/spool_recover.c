/*
 * spool_recover — the replay of the spool's journal at start (spool_recover()
 * of spool.h): every segment, oldest first, each record reported to the
 * caller's callbacks in file order, and the reference counts and resume point
 * of the writer (spool.c) set from what was found.
 *
 * Each segment is read through one sequential buffer (SPOOL_RBUF): header,
 * metadata and trailer of every record; bodies are skipped (a body that does
 * not fit in the buffer is never read), except in the newest segment, where
 * the payload CRC of every record is checked.  A record that fails is copied
 * to corrupt/SEG-OFFSET.rec and the replay goes on at the next valid header;
 * a bad tail of the newest segment is cut off.  A zero header at a record
 * boundary with only zeros after it ends a segment: the unwritten rest of a
 * spare (spool_spare.c); the writer resumes there.
 *
 * Trusts: nothing read from the journal.  Guarantees: only records whose
 * header, metadata and trailer check (and, in the newest segment, payload
 * CRC) are reported; it runs once, on the loop thread, before any append.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/log.h"
#include "core/util.h"
#include "spool/spool.h"
#include "spool/spool_record.h"
#include "spool_int.h"

struct recov {
    struct spool *sp;
    const struct spool_recover_cbs *cbs;
    void *arg;
    struct spool_dec dec;
    struct spool_env env;           /* decoded MSG */
    int held;                       /* decoded STATE */
    size_t nrcpt;
    const struct spool_rstate *rs;
    int fd;                         /* the segment being read */
    uint32_t seg;
    int newest;
    uint64_t size;
    uint64_t zero_end;              /* the segment's zero-filled tail ends here (0: none) */
    uint8_t *buf;                   /* file bytes [boff, boff + blen) */
    size_t cap, blen;
    uint64_t boff;
    int ioerr;
    uint64_t max_id, nmsg, nstate, ndone, nbad;
};

/* Bytes [off, off + n) of the segment, valid until the next call; NULL on a
 * read error (rc->ioerr). */
static const uint8_t *rr_get(struct recov *rc, uint64_t off, size_t n)
{
    size_t keep = 0;
    if (off >= rc->boff && off - rc->boff <= rc->blen) {
        size_t at = (size_t)(off - rc->boff);
        if (rc->blen - at >= n)
            return rc->buf + at;
        keep = rc->blen - at;
        memmove(rc->buf, rc->buf + at, keep);
    }
    if (n > rc->cap) {
        rc->cap = n;
        rc->buf = xrealloc(rc->buf, n);
    }
    rc->boff = off;
    rc->blen = keep;
    while (rc->blen < n) {
        ssize_t r = pread(rc->fd, rc->buf + rc->blen, rc->cap - rc->blen,
                          (off_t)(off + rc->blen));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            rc->ioerr = r < 0 ? errno : EIO;
            return NULL;
        }
        rc->blen += (size_t)r;
    }
    return rc->buf;
}

/* The next valid header at or after from (or the end of the file) → *next.
 * Returns 1 (the caller sets [.., *next) aside) or -1 on a read error. */
static int recov_scan(struct recov *rc, uint64_t from, uint64_t *next)
{
    while (from < rc->size) {
        size_t n = rc->size - from < SPOOL_RBUF ? (size_t)(rc->size - from) : SPOOL_RBUF;
        const uint8_t *p = rr_get(rc, from, n);
        size_t i;
        if (!p)
            return -1;
        i = spool_rec_find(p, n, 0);
        if (i + SPOOL_REC_HDR_LEN <= n) {
            *next = from + i;
            return 1;
        }
        if (i == n)
            from += n;
        else if (from + n == rc->size)
            break;          /* a possible header cut off by the end of file */
        else
            from += i;      /* a possible header cut off by the buffer: refill */
    }
    *next = rc->size;
    return 1;
}

static int all_zero(const uint8_t *p, size_t n)
{
    return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* Whether [off, end of file) is all zeros: the unwritten rest of a spare
 * segment (spool_spare.c).  Every record starts with a non-zero magic, and
 * every byte before an acknowledged record was synced with it, so nothing
 * acknowledged can lie after a zero header.  1 / 0, -1 on a read error. */
static int recov_zero_tail(struct recov *rc, uint64_t off)
{
    size_t n = rc->size - off < SPOOL_REC_HDR_LEN ? (size_t)(rc->size - off)
                                                  : SPOOL_REC_HDR_LEN;
    const uint8_t *p = rr_get(rc, off, n);
    if (!p)
        return -1;
    if (!all_zero(p, n))
        return 0;
    for (off += n; off < rc->size; off += n) {
        n = rc->size - off < SPOOL_RBUF ? (size_t)(rc->size - off) : SPOOL_RBUF;
        if (!(p = rr_get(rc, off, n)))
            return -1;
        if (!all_zero(p, n))
            return 0;
    }
    return 1;
}

/* A bad record whose CRC-valid header gives its end: resume there when a
 * CRC-valid header of any version (or the end of file, a zero tail, or a tail
 * too short for a header) follows, else scan from just after off. */
static int recov_skip(struct recov *rc, uint64_t off, uint64_t end, uint64_t *next)
{
    struct spool_rec_hdr h;
    const uint8_t *p;
    if (rc->size - end < SPOOL_REC_HDR_LEN) {
        *next = end;
        return 1;
    }
    if (!(p = rr_get(rc, end, SPOOL_REC_HDR_LEN)))
        return -1;
    if (spool_rec_hdr_decode(p, &h) != SPOOL_HDR_NOT) {
        *next = end;
        return 1;
    }
    int z = recov_zero_tail(rc, end);
    if (z != 0) {
        *next = end;
        return z;
    }
    return recov_scan(rc, off + 1, next);
}

static int recov_decode(struct recov *rc, const struct spool_rec_hdr *h,
                        const uint8_t *meta)
{
    switch (h->type) {
    case SPOOL_REC_MSG:
        rc->env.id = h->id;
        return spool_meta_msg_decode(&rc->dec, meta, h->meta_len, &rc->env);
    case SPOOL_REC_STATE:
        return spool_meta_state_decode(&rc->dec, meta, h->meta_len, &rc->held,
                                       &rc->nrcpt, &rc->rs);
    default:
        return 0;
    }
}

static void recov_report(struct recov *rc, const struct spool_rec_hdr *h, uint64_t off)
{
    const struct spool_recover_cbs *cbs = rc->cbs;
    if (h->id > rc->max_id)
        rc->max_id = h->id;
    if (h->type == SPOOL_REC_MSG) {
        struct spool_loc loc = {
            .seg = rc->seg, .off = off,
            .body_off = SPOOL_REC_HDR_LEN + h->meta_len,
            .body_len = h->payload_len - h->meta_len,
        };
        rc->nmsg++;
        if (cbs->message)
            cbs->message(rc->arg, &rc->env, &loc);
    } else if (h->type == SPOOL_REC_STATE) {
        rc->nstate++;
        if (cbs->state)
            cbs->state(rc->arg, h->id, rc->seg, rc->held, rc->nrcpt, rc->rs);
    } else {
        rc->ndone++;
        if (cbs->done)
            cbs->done(rc->arg, h->id);
    }
}

/* CRC of [off, off + len) of the segment, continuing *crc.  0 / -1. */
static int recov_crc(struct recov *rc, uint64_t off, uint64_t len, uint32_t *crc)
{
    while (len > 0) {
        size_t n = len < SPOOL_RBUF ? (size_t)len : SPOOL_RBUF;
        const uint8_t *p = rr_get(rc, off, n);
        if (!p)
            return -1;
        *crc = spool_crc(*crc, p, n);
        off += n;
        len -= n;
    }
    return 0;
}

/* The record at off.  0: valid and reported, *next is the record after it.
 * 1: it fails its checks, [off, *next) is to be set aside, *why says why.
 * -1: read error. */
static int recov_record(struct recov *rc, uint64_t off, uint64_t *next,
                        const char **why)
{
    struct spool_rec_hdr h;
    const uint8_t *p;
    uint64_t left = rc->size - off, end;
    uint32_t crc = 0;
    int st;

    *why = "truncated header";
    *next = rc->size;
    if (left < SPOOL_REC_HDR_LEN)
        return 1;
    if (!(p = rr_get(rc, off, SPOOL_REC_HDR_LEN)))
        return -1;
    if ((st = spool_rec_hdr_decode(p, &h)) == SPOOL_HDR_NOT) {
        *why = "bad header";
        return recov_scan(rc, off + 1, next);
    }
    end = off + spool_rec_len(&h);
    if (spool_rec_len(&h) > left) {
        *why = "truncated record";
        return recov_scan(rc, off + 1, next);
    }
    *why = "unknown record version or type";
    if (st != SPOOL_HDR_OK)
        return recov_skip(rc, off, end, next);
    if (!(p = rr_get(rc, off + SPOOL_REC_HDR_LEN, h.meta_len)))
        return -1;
    if (rc->newest)
        crc = spool_crc(0, p, h.meta_len);
    *why = "bad metadata";
    if (recov_decode(rc, &h, p) < 0)
        return recov_skip(rc, off, end, next);
    if (rc->newest && recov_crc(rc, off + SPOOL_REC_HDR_LEN + h.meta_len,
                                h.payload_len - h.meta_len, &crc) < 0)
        return -1;
    if (!(p = rr_get(rc, end - SPOOL_REC_TRL_LEN, SPOOL_REC_TRL_LEN)))
        return -1;
    *why = "bad trailer";
    if (spool_rec_trl_check(p, h.payload_len) < 0)
        return recov_skip(rc, off, end, next);
    *why = "bad payload checksum";
    if (rc->newest && crc != h.payload_crc)
        return recov_skip(rc, off, end, next);
    recov_report(rc, &h, off);
    *next = end;
    return 0;
}

/* Copies [off, end) to corrupt/SEG-OFF.rec (best effort) and logs it.
 * -1 only on a read error of the segment. */
static int recov_set_aside(struct recov *rc, uint64_t off, uint64_t end,
                           const char *why)
{
    char name[64];
    int fd, err = 0;
    snprintf(name, sizeof name, "%010u-%llu.rec", rc->seg, (unsigned long long)off);
    rc->nbad++;
    fd = openat(rc->sp->cdfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        err = errno;
    for (uint64_t pos = off; fd >= 0 && !err && pos < end;) {
        size_t n = end - pos < SPOOL_RBUF ? (size_t)(end - pos) : SPOOL_RBUF;
        const uint8_t *p = rr_get(rc, pos, n);
        if (!p) {
            close(fd);
            return -1;
        }
        err = spool_write_full(fd, p, n);
        pos += n;
    }
    if (fd >= 0 && !err && fsync(fd) < 0)
        err = errno;
    if (fd >= 0)
        close(fd);
    if (err)
        log_warn("spool: segment %010u offset %llu: %s, %llu bytes; cannot copy "
                 "them to corrupt/%s: %s", rc->seg, (unsigned long long)off, why,
                 (unsigned long long)(end - off), name, strerror(err));
    else
        log_warn("spool: segment %010u offset %llu: %s, %llu bytes set aside in "
                 "corrupt/%s", rc->seg, (unsigned long long)off, why,
                 (unsigned long long)(end - off), name);
    return 0;
}

/* Cuts the newest segment back to off (a bad tail was set aside). */
static void recov_cut(struct recov *rc, uint64_t off)
{
    if (ftruncate(rc->fd, (off_t)off) < 0 || fsync(rc->fd) < 0) {
        log_err("spool: segment %010u: cannot cut the bad tail at %llu: %s; "
                "new records go to a new segment", rc->seg,
                (unsigned long long)off, strerror(errno));
        rc->size = UINT64_MAX;      /* over any limit: the writer rotates */
        return;
    }
    log_warn("spool: segment %010u: cut back to %llu bytes", rc->seg,
             (unsigned long long)off);
    rc->size = off;
}

static int recov_segment(struct recov *rc, uint32_t seg, int newest,
                         char *err, size_t errlen)
{
    char name[32];
    struct stat st;
    uint64_t off = 0, next;
    const char *why;
    int r = 0;

    spool_seg_name(name, sizeof name, seg);
    rc->fd = openat(rc->sp->jdfd, name, (newest ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (rc->fd < 0 || fstat(rc->fd, &st) < 0) {
        snprintf(err, errlen, "cannot open %s/journal/%s: %s", rc->sp->dir, name,
                 strerror(errno));
        if (rc->fd >= 0)
            close(rc->fd);
        return -1;
    }
    posix_fadvise(rc->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    rc->seg = seg;
    rc->newest = newest;
    rc->size = (uint64_t)st.st_size;
    rc->zero_end = 0;
    rc->boff = rc->blen = 0;
    while (off < rc->size) {
        if ((r = recov_zero_tail(rc, off)) != 0) {
            if (r > 0) {            /* the end of what was written */
                rc->zero_end = rc->size;
                rc->size = off;
                r = 0;
            }
            break;
        }
        if ((r = recov_record(rc, off, &next, &why)) < 0)
            break;
        if (r > 0 && recov_set_aside(rc, off, next, why) < 0) {
            r = -1;
            break;
        }
        if (r > 0 && newest) {      /* a bad tail (maybe before zeros) is cut */
            int z = next == rc->size ? 1 : recov_zero_tail(rc, next);
            if (z < 0) {
                r = -1;
                break;
            }
            if (z) {
                recov_cut(rc, off);
                break;
            }
        }
        off = next;
    }
    close(rc->fd);
    if (r < 0) {
        snprintf(err, errlen, "cannot read %s/journal/%s: %s", rc->sp->dir, name,
                 strerror(rc->ioerr));
        return -1;
    }
    return 0;
}

int spool_recover(struct spool *sp, const struct spool_recover_cbs *cbs,
                  void *arg, uint64_t *max_id, char *err, size_t errlen)
{
    struct recov rc = { .sp = sp, .cbs = cbs, .arg = arg, .cap = SPOOL_RBUF };
    double t0 = util_now_mono();
    int ret = 0;

    if (sp->recovered || sp->nqueued) {
        snprintf(err, errlen, "spool_recover() runs once, before any append");
        return -1;
    }
    rc.buf = xmalloc(rc.cap);
    if (sp->nsegs)
        sp->active = sp->segs[sp->nsegs - 1];
    spool_ref_slot(sp, sp->active);
    for (size_t i = 0; i < sp->nsegs && ret == 0; i++)
        ret = recov_segment(&rc, sp->segs[i], i + 1 == sp->nsegs, err, errlen);
    free(rc.buf);
    spool_dec_free(&rc.dec);
    if (ret < 0)
        return -1;
    if (sp->nsegs) {
        pthread_mutex_lock(&sp->mu);
        sp->resume_seg = sp->active;
        sp->resume_len = rc.size;
        sp->resume_zero_end = rc.zero_end;
        pthread_mutex_unlock(&sp->mu);
    }
    if (rc.nbad && fsync(sp->cdfd) < 0)
        log_warn("spool: fsync of corrupt/ failed: %s", strerror(errno));
    sp->recovered = 1;
    spool_spare_init(sp);   /* here, not at open: after a privilege drop */
    sp->gc_pending = 1;     /* first loop turn: reclaim what nobody referenced */
    event_active(sp->ev_done, EV_READ, 0);
    if (max_id)
        *max_id = rc.max_id;
    log_info("spool: recovered %zu segments in %.3f s: messages=%llu, states=%llu, "
             "done=%llu, set_aside=%llu", sp->nsegs, util_now_mono() - t0,
             (unsigned long long)rc.nmsg, (unsigned long long)rc.nstate,
             (unsigned long long)rc.ndone, (unsigned long long)rc.nbad);
    return 0;
}

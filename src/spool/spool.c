/*
 * spool — the durable store of spool.h: an append-only journal of segment
 * files (journal/NNNNNNNNNN.seg) written by one writer thread with group
 * commit, an aux thread (spool_aux.c) for body reads, state-file writes
 * (spool_state.c) and segment deletion, a spare thread (spool_spare.c) that
 * zero-fills the next segment ahead of time, and the segment reference counts
 * that decide reclamation.  The replay of the journal at start is
 * spool_recover.c; the struct they share is in spool_int.h.  Record format:
 * spool.h; metadata: spool_record.h.
 *
 * Threads and ownership.  The loop thread queues jobs and runs completions;
 * after spool_recover() it never touches the disk.  The writer thread owns
 * the active segment (sp->w), the aux thread its cached read fd (sp->a), the
 * loop thread the reference counts (refs, gc_next, active).  sp->mu guards
 * the three job lists (writer, aux, done) and the few fields handed between
 * threads; evbuffers change owner only through those lists.  Completions are
 * handed back through the done list and one event made active with
 * event_active() (evthread_use_pthreads() is required).
 *
 * Trusts: its callers' arguments once spool_record.c accepted them; nothing
 * read back from disk (every record is checked before it is reported).
 * Guarantees: a completion with 0 means the record and the directory entry
 * of its segment are synced; a failed batch is cut off the file again and
 * every job in it gets the errno; segments are deleted oldest first.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "core/log.h"
#include "core/util.h"
#include "spool/spool.h"
#include "spool/spool_record.h"
#include "spool_int.h"

#define SPOOL_SEG_LIMIT     (64ull * 1024 * 1024)  /* start a new segment past this */

void spool_seg_name(char *out, size_t len, uint32_t seg)
{
    snprintf(out, len, "%010u.seg", seg);
}

int spool_write_full(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t r = write(fd, c, n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        c += r;
        n -= (size_t)r;
    }
    return 0;
}

/* 0, or an errno; EIO when the file ends before n bytes. */
int spool_pread_full(int fd, void *p, size_t n, uint64_t off)
{
    char *c = p;
    while (n > 0) {
        ssize_t r = pread(fd, c, n, (off_t)off);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        if (r == 0)
            return EIO;
        c += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

/* ---- jobs and completions ---- */

struct spool_job *spool_job_new(enum job_type type, size_t extra, spool_cb *cb,
                                void *arg)
{
    struct spool_job *j = xcalloc(1, sizeof *j + extra);
    j->type = type;
    j->cb = cb;
    j->arg = arg;
    return j;
}

void spool_job_free(struct spool_job *j)
{
    if (j->buf)
        evbuffer_free(j->buf);
    free(j->name);
    free(j);
}

static void jobq_push(struct jobq *q, struct spool_job *j)
{
    j->next = NULL;
    if (q->tail)
        q->tail->next = j;
    else
        q->head = j;
    q->tail = j;
}

static struct spool_job *jobq_take(struct jobq *q)
{
    struct spool_job *j = q->head;
    q->head = q->tail = NULL;
    return j;
}

static void jobq_free(struct jobq *q)
{
    struct spool_job *j = jobq_take(q), *next;
    for (; j; j = next) {
        next = j->next;
        spool_job_free(j);
    }
}

/* Any thread: hands the jobs first..last (linked) to the loop thread. */
void spool_post(struct spool *sp, struct spool_job *first,
                struct spool_job *last)
{
    int wake;
    pthread_mutex_lock(&sp->mu);
    if (sp->dq.tail)
        sp->dq.tail->next = first;
    else
        sp->dq.head = first;
    sp->dq.tail = last;
    last->next = NULL;
    wake = !sp->done_armed;
    sp->done_armed = 1;
    pthread_mutex_unlock(&sp->mu);
    if (wake)
        event_active(sp->ev_done, EV_READ, 0);
}

void spool_push(struct spool *sp, struct jobq *q, pthread_cond_t *cond,
                struct spool_job *j)
{
    int wake;
    pthread_mutex_lock(&sp->mu);
    wake = !q->head;
    jobq_push(q, j);
    pthread_mutex_unlock(&sp->mu);
    if (wake)
        pthread_cond_signal(cond);
}

void spool_fail_now(struct spool *sp, spool_cb *cb, void *arg, int err)
{
    struct spool_job *j = spool_job_new(J_FAIL, 0, cb, arg);
    j->err = err;
    spool_post(sp, j, j);
}

static void spool_set_active(struct spool *sp, uint32_t seg);

static void spool_complete(struct spool *sp, struct spool_job *j)
{
    switch (j->type) {
    case J_ROTATED:
        spool_set_active(sp, j->seg);
        spool_job_free(j);
        return;
    case J_APPEND:
        if (!j->err && j->loc_out) {
            j->loc_out->seg = j->seg;
            j->loc_out->off = j->off;
            j->loc_out->body_off = SPOOL_REC_HDR_LEN + (uint32_t)j->meta_len;
            j->loc_out->body_len = j->body_len;
        }
        if (!j->err && j->seg_out)
            *j->seg_out = j->seg;
        break;
    case J_READ:
        if (!j->err && evbuffer_add_buffer(j->out, j->buf) < 0)
            j->err = ENOMEM;
        break;
    default:
        break;
    }
    if (j->cb)
        j->cb(j->err, j->arg);
    spool_job_free(j);
}

/* Loop thread: runs every completion posted so far, in order. */
static void spool_done_cb(evutil_socket_t fd, short what, void *arg)
{
    struct spool *sp = arg;
    struct spool_job *j, *next;
    pthread_mutex_lock(&sp->mu);
    j = jobq_take(&sp->dq);
    sp->done_armed = 0;
    pthread_mutex_unlock(&sp->mu);
    for (; j; j = next) {
        next = j->next;
        spool_complete(sp, j);
    }
    if (sp->gc_pending) {
        sp->gc_pending = 0;
        spool_gc(sp);
    }
}

/* ---- writer thread ---- */

/* What the writer thread reads under mu before a batch. */
struct writer_in {
    uint32_t rseg;              /* the segment recovery left, and its */
    uint64_t rlen, rzero;       /* written length and zero-filled end */
    uint64_t limit;             /* the segment limit */
    int spare;                  /* a spare segment is ready */
};

/* Whether a segment with len bytes written, zero-filled up to zero_end (0: a
 * file that grows), takes the next batch. */
static int writer_has_room(uint64_t len, uint64_t zero_end, uint64_t limit)
{
    return len < limit && (zero_end == 0 || len < zero_end);
}

/* The segment being left: its unused zeros are cut off (best effort; if that
 * is lost in a crash, recovery reads them as the end of the segment). */
static void writer_leave(struct spool *sp)
{
    if (sp->w.fd < 0)
        return;
    if (!sp->w.broken && sp->w.zero_end > sp->w.len &&
        ftruncate(sp->w.fd, (off_t)sp->w.len) < 0)
        log_warn("spool: segment %010u: cannot cut its unused end: %s", sp->w.seg,
                 strerror(errno));
    close(sp->w.fd);
    sp->w.fd = -1;
}

/* Makes sure there is a segment to append to: the one recovery left (first
 * batch; but not one that grows when a spare is ready), the current one while
 * it has room and is intact, else a new one: the spare when one is ready,
 * else a file that grows (announced to the loop with J_ROTATED).  0 or an
 * errno. */
static int writer_segment(struct spool *sp, const struct writer_in *in)
{
    char name[32];
    uint32_t seg;
    uint64_t zero_end = 0;
    int fd;
    if (sp->w.fd >= 0 && !sp->w.broken &&
        writer_has_room(sp->w.len, sp->w.zero_end, in->limit))
        return 0;
    if (sp->w.fd < 0 && sp->w.seg == 0 && in->rseg && (in->rzero || !in->spare) &&
        writer_has_room(in->rlen, in->rzero, in->limit)) {
        spool_seg_name(name, sizeof name, in->rseg);
        if ((fd = openat(sp->jdfd, name, O_WRONLY | O_CLOEXEC)) < 0)
            return errno;
        sp->w.fd = fd;
        sp->w.seg = in->rseg;
        sp->w.len = in->rlen;
        sp->w.zero_end = in->rzero;
        sp->w.dir_dirty = 1;    /* a crashed process may have left it unsynced */
        return 0;
    }
    seg = sp->w.seg ? sp->w.seg + 1 : sp->next_seg;
    spool_seg_name(name, sizeof name, seg);
    fd = in->spare ? spool_spare_take(sp, name, &zero_end) : -1;
    if (fd < 0) {
        zero_end = 0;
        fd = openat(sp->jdfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    }
    if (fd < 0) {
        int e = errno;
        log_err("spool: cannot create segment journal/%s: %s", name, strerror(e));
        return e;
    }
    writer_leave(sp);
    sp->w.fd = fd;
    sp->w.seg = seg;
    sp->w.len = 0;
    sp->w.zero_end = zero_end;
    sp->w.dir_dirty = 1;
    sp->w.broken = 0;
    struct spool_job *j = spool_job_new(J_ROTATED, 0, NULL, NULL);
    j->seg = seg;
    spool_post(sp, j, j);
    return 0;
}

static void writer_iov_reserve(struct spool *sp, size_t niov, size_t npv)
{
    if (sp->w.iovcap < niov) {
        sp->w.iovcap = niov * 2;
        sp->w.iov = xrealloc(sp->w.iov, sp->w.iovcap * sizeof *sp->w.iov);
    }
    if (sp->w.pvcap < npv) {
        sp->w.pvcap = npv * 2;
        sp->w.pv = xrealloc(sp->w.pv, sp->w.pvcap * sizeof *sp->w.pv);
    }
}

static void iov_add(struct spool *sp, size_t *niov, void *p, size_t len)
{
    if (len == 0)
        return;
    sp->w.iov[*niov].iov_base = p;
    sp->w.iov[*niov].iov_len = len;
    (*niov)++;
}

/* Encodes j's header and trailer (the payload CRC is computed here, off the
 * loop) and adds its pieces to the batch's iovecs.  Returns the record length. */
static uint64_t writer_prepare(struct spool *sp, struct spool_job *j, uint64_t off,
                               size_t *niov)
{
    struct spool_rec_hdr h = {
        .version = SPOOL_REC_VERSION, .type = j->rtype, .id = j->id,
        .meta_len = (uint32_t)j->meta_len,
    };
    size_t blen = j->buf ? evbuffer_get_length(j->buf) : 0;
    int npv = blen ? evbuffer_peek(j->buf, -1, NULL, NULL, 0) : 0;
    uint32_t crc = spool_crc(0, j->meta, j->meta_len);

    writer_iov_reserve(sp, *niov + (size_t)npv + 3, (size_t)npv);
    if (npv > 0)
        npv = evbuffer_peek(j->buf, -1, NULL, sp->w.pv, npv);
    iov_add(sp, niov, j->hdr, sizeof j->hdr);
    iov_add(sp, niov, j->meta, j->meta_len);
    for (int i = 0; i < npv; i++) {
        crc = spool_crc(crc, sp->w.pv[i].iov_base, sp->w.pv[i].iov_len);
        iov_add(sp, niov, sp->w.pv[i].iov_base, sp->w.pv[i].iov_len);
    }
    iov_add(sp, niov, j->trl, sizeof j->trl);
    h.payload_len = (uint32_t)(j->meta_len + blen);
    h.payload_crc = crc;
    spool_rec_hdr_encode(&h, j->hdr);
    spool_rec_trl_encode(h.payload_len, j->trl);
    j->off = off;
    j->body_len = (uint32_t)blen;
    return spool_rec_len(&h);
}

/* pwritev() of every iovec at off, resuming after partial writes.  0 / errno. */
static int writer_write(int fd, struct iovec *iov, size_t n, uint64_t off)
{
    while (n > 0) {
        int cnt = n > IOV_MAX ? IOV_MAX : (int)n;
        ssize_t w = pwritev(fd, iov, cnt, (off_t)off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        if (w == 0)
            return EIO;
        off += (uint64_t)w;
        while (n > 0 && (size_t)w >= iov->iov_len) {
            w -= (ssize_t)iov->iov_len;
            iov++;
            n--;
        }
        if (w > 0) {
            iov->iov_base = (char *)iov->iov_base + w;
            iov->iov_len -= (size_t)w;
        }
    }
    return 0;
}

/* Writes, syncs (and syncs the directory of a new segment); on failure cuts
 * the segment back to start.  0 / errno. */
static int writer_commit(struct spool *sp, size_t niov, uint64_t start, uint64_t total)
{
    int err = writer_write(sp->w.fd, sp->w.iov, niov, start);
    if (!err && fdatasync(sp->w.fd) < 0)
        err = errno;
    if (!err && sp->w.dir_dirty) {
        if (fsync(sp->jdfd) < 0)
            err = errno;
        else
            sp->w.dir_dirty = 0;
    }
    if (!err) {
        sp->w.len = start + total;
        return 0;
    }
    log_err("spool: segment %010u: writing %llu bytes at offset %llu failed: %s",
            sp->w.seg, (unsigned long long)total, (unsigned long long)start,
            strerror(err));
    if (ftruncate(sp->w.fd, (off_t)start) < 0) {
        log_err("spool: segment %010u: cannot cut back to %llu: %s; starting a new segment",
                sp->w.seg, (unsigned long long)start, strerror(errno));
        sp->w.broken = 1;
    }
    sp->w.zero_end = 0;         /* the zeros after start went with the cut */
    return err;
}

/* In a spare segment, the zeros from end up to the next page boundary (0 in
 * a segment that grows, or when a batch went past the spare's end).  Written with the batch, they are the same bytes as
 * on disk, and the page holding end is whole in the page cache for the next
 * batch: no partial write of an uncached page, which would be read first. */
static uint64_t writer_pad(const struct spool *sp, uint64_t end)
{
    uint64_t page = sp->page, to = (end + page - 1) / page * page;
    if (end >= sp->w.zero_end || page > SPOOL_ZEROS_LEN)
        return 0;               /* a growing segment, or past the zeros */
    return (to < sp->w.zero_end ? to : sp->w.zero_end) - end;
}

static void writer_batch(struct spool *sp, struct spool_job *batch, int err,
                         const struct writer_in *in)
{
    struct spool_job *j, *last = batch;
    uint64_t start, total = 0;
    size_t niov = 0;

    if (!err)
        err = writer_segment(sp, in);
    start = sp->w.len;
    if (!err) {
        for (j = batch; j; j = j->next)
            total += writer_prepare(sp, j, start + total, &niov);
        uint64_t pad = writer_pad(sp, start + total);
        writer_iov_reserve(sp, niov + 1, 0);
        iov_add(sp, &niov, (void *)spool_zeros, pad);
        err = writer_commit(sp, niov, start, total);
    }
    for (j = batch; j; j = j->next) {
        j->err = err;
        j->seg = sp->w.seg;
        if (j->buf) {
            evbuffer_free(j->buf);
            j->buf = NULL;
        }
        last = j;
    }
    spool_post(sp, batch, last);
}

/* Group commit gathers what arrives while a sync runs; with many senders a
 * lone message often comes just before several others.  So, when the batch
 * would be a single record and at least SPOOL_COMMIT_SIBLINGS other
 * messages are being received, the writer waits SPOOL_COMMIT_DELAY_US first
 * (like PostgreSQL's commit_delay and commit_siblings).  A lone sender never
 * waits.  Measured (smtp-source -s 20, 20,000 x 4 KB, 4 alternating pairs):
 * 5,500-6,850 msg/s without, 5,640-7,180 with, and less CPU per message
 * (fewer syncs); -s 1 and -s 2 unchanged; an unconditional delay cost -s 1
 * a third.
 * Called and returns with mu held. */
#define SPOOL_COMMIT_DELAY_US   100
#define SPOOL_COMMIT_SIBLINGS   2

static void writer_linger(struct spool *sp)
{
    if (sp->wq.head != sp->wq.tail || sp->stop ||
        atomic_load(&sp->incoming) < SPOOL_COMMIT_SIBLINGS)
        return;
    pthread_mutex_unlock(&sp->mu);
    struct timespec ts = { 0, SPOOL_COMMIT_DELAY_US * 1000L };
    nanosleep(&ts, NULL);
    pthread_mutex_lock(&sp->mu);
}

void spool_incoming(struct spool *sp, int delta)
{
    atomic_fetch_add(&sp->incoming, delta);
}

static void *spool_writer_main(void *arg)
{
    struct spool *sp = arg;
    pthread_setname_np(pthread_self(), "km-writer");
    pthread_mutex_lock(&sp->mu);
    for (;;) {
        struct spool_job *batch;
        int inj = 0;
        while (!sp->wq.head && !sp->stop)
            pthread_cond_wait(&sp->wcond, &sp->mu);
        if (!sp->wq.head)
            break;
        writer_linger(sp);
        batch = jobq_take(&sp->wq);
        if (sp->fail_n > 0) {
            inj = sp->fail_errno;
            sp->fail_n--;
        }
        struct writer_in in = {
            .rseg = sp->resume_seg, .rlen = sp->resume_len,
            .rzero = sp->resume_zero_end, .limit = sp->seg_limit,
            .spare = sp->spare_fd >= 0,
        };
        pthread_mutex_unlock(&sp->mu);
        writer_batch(sp, batch, inj, &in);
        pthread_mutex_lock(&sp->mu);
    }
    pthread_mutex_unlock(&sp->mu);
    return NULL;
}

/* ---- loop thread: appends, reads ---- */

static void spool_queue_append(struct spool *sp, struct spool_job *j)
{
    sp->nqueued++;
    spool_push(sp, &sp->wq, &sp->wcond, j);
}

void spool_append_message(struct spool *sp, const struct spool_env *env,
                          struct evbuffer *body, struct spool_loc *loc,
                          spool_cb *cb, void *arg)
{
    size_t mlen = 0, blen = body ? evbuffer_get_length(body) : 0;
    struct spool_job *j;

    if (spool_meta_msg_len(env, &mlen) < 0 || blen > SPOOL_REC_MAX_BODY ||
        mlen > SPOOL_MAX_PAYLOAD - blen) {
        log_warn("spool: message %llu refused: envelope or body cannot be stored "
                 "(nrcpt=%zu, size=%zu)", (unsigned long long)env->id, env->nrcpt, blen);
        if (body)
            evbuffer_drain(body, blen);
        spool_fail_now(sp, cb, arg, EINVAL);
        return;
    }
    j = spool_job_new(J_APPEND, mlen, cb, arg);
    j->rtype = SPOOL_REC_MSG;
    j->id = env->id;
    j->meta_len = mlen;
    j->loc_out = loc;
    spool_meta_msg_encode(env, j->meta);
    if (!(j->buf = evbuffer_new()))
        log_fatal("spool: out of memory");
    if (blen && evbuffer_add_buffer(j->buf, body) < 0) {
        log_warn("spool: message %llu refused: body buffer is frozen",
                 (unsigned long long)env->id);
        evbuffer_free(j->buf);
        j->buf = NULL;
        j->type = J_FAIL;
        j->err = EINVAL;
        spool_post(sp, j, j);
        return;
    }
    spool_queue_append(sp, j);
}

void spool_append_state(struct spool *sp, uint64_t id, int held, size_t nrcpt,
                        const struct spool_rstate *rs, uint32_t *seg,
                        spool_cb *cb, void *arg)
{
    size_t mlen;
    struct spool_job *j;
    if (spool_meta_state_len(held, nrcpt, rs, &mlen) < 0) {
        log_warn("spool: state of message %llu refused: cannot be stored (nrcpt=%zu)",
                 (unsigned long long)id, nrcpt);
        spool_fail_now(sp, cb, arg, EINVAL);
        return;
    }
    j = spool_job_new(J_APPEND, mlen, cb, arg);
    j->rtype = SPOOL_REC_STATE;
    j->id = id;
    j->meta_len = mlen;
    j->seg_out = seg;
    spool_meta_state_encode(held & SPOOL_MSG_FLAGS, nrcpt, rs, j->meta);
    spool_queue_append(sp, j);
}

void spool_append_done(struct spool *sp, uint64_t id, spool_cb *cb, void *arg)
{
    struct spool_job *j = spool_job_new(J_APPEND, 0, cb, arg);
    j->rtype = SPOOL_REC_DONE;
    j->id = id;
    spool_queue_append(sp, j);
}

void spool_read_body(struct spool *sp, const struct spool_loc *loc,
                     struct evbuffer *out, spool_cb *cb, void *arg)
{
    struct spool_job *j = spool_job_new(J_READ, 0, cb, arg);
    j->rloc = *loc;
    j->out = out;
    if (!(j->buf = evbuffer_new()))
        log_fatal("spool: out of memory");
    spool_push(sp, &sp->aq, &sp->acond, j);
}

/* ---- reference counts and reclamation (loop thread) ---- */

uint32_t *spool_ref_slot(struct spool *sp, uint32_t seg)
{
    size_t i = seg - sp->ref_base;
    if (i >= sp->nrefs) {
        size_t n = i + 1 < 16 ? 16 : (i + 1) * 2;
        sp->refs = xrealloc(sp->refs, n * sizeof *sp->refs);
        memset(sp->refs + sp->nrefs, 0, (n - sp->nrefs) * sizeof *sp->refs);
        sp->nrefs = n;
    }
    return &sp->refs[i];
}

void spool_seg_ref(struct spool *sp, uint32_t seg)
{
    if (seg < sp->gc_next || seg > sp->active)
        log_fatal("spool: reference on segment %010u outside %010u..%010u",
                  seg, sp->gc_next, sp->active);
    (*spool_ref_slot(sp, seg))++;
}

void spool_seg_unref(struct spool *sp, uint32_t seg)
{
    uint32_t *r;
    if (seg < sp->gc_next || seg > sp->active || *(r = spool_ref_slot(sp, seg)) == 0)
        log_fatal("spool: segment %010u released more often than referenced", seg);
    if (--*r == 0 && seg == sp->gc_next)
        spool_gc(sp);
}

/*
 * Segments are deleted strictly oldest first.  A DONE record (and a newer
 * STATE) lives in a later segment than the MSG record it refers to and holds
 * no reference: were its segment deleted while the older segment holding the
 * MSG survived, the next recovery would find the message without its DONE
 * and deliver it again.  Deleting oldest first keeps every record that
 * cancels or supersedes a surviving record.  The price: one long-held
 * message pins every segment after it; copying such messages forward
 * (compaction) is a later step.
 */
void spool_gc(struct spool *sp)
{
    if (!sp->recovered)
        return;     /* refs are only known once the journal was replayed */
    while (sp->gc_next < sp->active && *spool_ref_slot(sp, sp->gc_next) == 0) {
        struct spool_job *j = spool_job_new(J_UNLINK, 0, NULL, NULL);
        j->seg = sp->gc_next++;
        spool_push(sp, &sp->aq, &sp->acond, j);
    }
    size_t gone = sp->gc_next - sp->ref_base;
    if (gone >= 64 && gone * 2 >= sp->nrefs) {
        memmove(sp->refs, sp->refs + gone, (sp->nrefs - gone) * sizeof *sp->refs);
        sp->nrefs -= gone;
        sp->ref_base = sp->gc_next;
    }
}

static void spool_set_active(struct spool *sp, uint32_t seg)
{
    sp->active = seg;
    spool_ref_slot(sp, seg);
    spool_gc(sp);
}

/* ---- open and close ---- */

static int open_subdir(struct spool *sp, int dfd, const char *name, int *out,
                       char *err, size_t errlen)
{
    if (mkdirat(dfd, name, 0700) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s/%s: %s", sp->dir, name, strerror(errno));
        return -1;
    }
    *out = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (*out < 0) {
        snprintf(err, errlen, "cannot open %s/%s: %s", sp->dir, name, strerror(errno));
        return -1;
    }
    return 0;
}

static int spool_open_dirs(struct spool *sp, char *err, size_t errlen)
{
    int dfd, rc = -1;
    if (mkdir(sp->dir, 0700) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create spool %s: %s", sp->dir, strerror(errno));
        return -1;
    }
    if ((dfd = open(sp->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        snprintf(err, errlen, "cannot open spool %s: %s", sp->dir, strerror(errno));
        return -1;
    }
    sp->lockfd = openat(dfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (sp->lockfd < 0) {
        snprintf(err, errlen, "cannot open %s/lock: %s", sp->dir, strerror(errno));
    } else if (flock(sp->lockfd, LOCK_EX | LOCK_NB) < 0) {
        if (errno == EWOULDBLOCK)
            snprintf(err, errlen, "spool %s is in use by another process "
                     "(%s/lock is locked)", sp->dir, sp->dir);
        else
            snprintf(err, errlen, "cannot lock %s/lock: %s", sp->dir, strerror(errno));
    } else if (open_subdir(sp, dfd, "journal", &sp->jdfd, err, errlen) == 0 &&
               open_subdir(sp, dfd, "state", &sp->sdfd, err, errlen) == 0 &&
               open_subdir(sp, dfd, "corrupt", &sp->cdfd, err, errlen) == 0) {
        if (fsync(dfd) < 0)
            snprintf(err, errlen, "cannot fsync %s: %s", sp->dir, strerror(errno));
        else
            rc = 0;
    }
    close(dfd);
    return rc;
}

static int seg_cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Lists journal/NNNNNNNNNN.seg into sp->segs (ascending). */
static int spool_list_segs(struct spool *sp, char *err, size_t errlen)
{
    int fd = openat(sp->jdfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    struct dirent *de;
    size_t cap = 0;
    if (!d) {
        snprintf(err, errlen, "cannot read %s/journal: %s", sp->dir, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    while ((de = readdir(d)) != NULL) {
        const char *n = de->d_name;
        if (strlen(n) != 14 || strcmp(n + 10, ".seg") != 0 ||
            strspn(n, "0123456789") != 10)
            continue;
        unsigned long long v = strtoull(n, NULL, 10);
        if (v == 0 || v >= UINT32_MAX)
            continue;
        if (sp->nsegs == cap) {
            cap = cap ? cap * 2 : 64;
            sp->segs = xrealloc(sp->segs, cap * sizeof *sp->segs);
        }
        sp->segs[sp->nsegs++] = (uint32_t)v;
    }
    closedir(d);
    if (sp->nsegs > 1)
        qsort(sp->segs, sp->nsegs, sizeof *sp->segs, seg_cmp);
    sp->next_seg = sp->nsegs ? sp->segs[sp->nsegs - 1] + 1 : 1;
    return 0;
}

/* KICKMAIL_TEST_FAIL_WRITES="ERRNO:N": the next N batches fail with ERRNO. */
static void spool_env_fail(struct spool *sp)
{
    const char *s = getenv("KICKMAIL_TEST_FAIL_WRITES");
    char *end;
    long e, n;
    if (!s || !*s)
        return;
    e = strtol(s, &end, 10);
    if (*end == ':') {
        n = strtol(end + 1, &end, 10);
        if (!*end && e > 0 && e < 4096 && n > 0 && n <= INT_MAX) {
            sp->fail_errno = (int)e;
            sp->fail_n = (int)n;
            log_warn("spool: test hook: the next %ld journal batches fail with %s",
                     n, strerror((int)e));
            return;
        }
    }
    log_warn("spool: ignoring KICKMAIL_TEST_FAIL_WRITES=\"%s\" (want ERRNO:N)", s);
}

static void spool_free(struct spool *sp)
{
    spool_spare_close(sp);
    if (sp->w.fd >= 0)
        close(sp->w.fd);
    if (sp->a.fd >= 0)
        close(sp->a.fd);
    if (sp->jdfd >= 0)
        close(sp->jdfd);
    if (sp->sdfd >= 0)
        close(sp->sdfd);
    if (sp->cdfd >= 0)
        close(sp->cdfd);
    if (sp->lockfd >= 0)
        close(sp->lockfd);      /* releases the flock */
    if (sp->ev_done)
        event_free(sp->ev_done);
    jobq_free(&sp->wq);
    jobq_free(&sp->aq);
    jobq_free(&sp->dq);
    pthread_mutex_destroy(&sp->mu);
    pthread_cond_destroy(&sp->wcond);
    pthread_cond_destroy(&sp->acond);
    pthread_cond_destroy(&sp->scond);
    free(sp->w.iov);
    free(sp->w.pv);
    free(sp->refs);
    free(sp->segs);
    free(sp->dir);
    free(sp);
}

static void spool_stop_threads(struct spool *sp)
{
    pthread_mutex_lock(&sp->mu);
    sp->stop = 1;
    pthread_cond_broadcast(&sp->wcond);
    pthread_cond_broadcast(&sp->acond);
    pthread_cond_broadcast(&sp->scond);
    pthread_mutex_unlock(&sp->mu);
    if (sp->nthreads > 0)
        pthread_join(sp->wthr, NULL);
    if (sp->nthreads > 1)
        pthread_join(sp->athr, NULL);
    if (sp->nthreads > 2)
        pthread_join(sp->sthr, NULL);
    sp->nthreads = 0;
}

struct spool *spool_open(const char *dir, struct event_base *base,
                         char *err, size_t errlen)
{
    struct spool *sp = xcalloc(1, sizeof *sp);
    sp->dir = xstrdup(dir);
    sp->base = base;
    sp->lockfd = sp->jdfd = sp->sdfd = sp->cdfd = sp->w.fd = sp->a.fd = -1;
    sp->spare_fd = -1;
    sp->seg_limit = SPOOL_SEG_LIMIT;
    long page = sysconf(_SC_PAGESIZE);
    sp->page = page > 0 ? (uint64_t)page : 4096;
    pthread_mutex_init(&sp->mu, NULL);
    pthread_cond_init(&sp->wcond, NULL);
    pthread_cond_init(&sp->acond, NULL);
    pthread_cond_init(&sp->scond, NULL);
    if (spool_open_dirs(sp, err, errlen) < 0 || spool_list_segs(sp, err, errlen) < 0)
        goto fail;
    if (!(sp->ev_done = event_new(base, -1, 0, spool_done_cb, sp))) {
        snprintf(err, errlen, "cannot create the spool's completion event");
        goto fail;
    }
    spool_env_fail(sp);
    sp->active = sp->next_seg;
    sp->ref_base = sp->gc_next = sp->nsegs ? sp->segs[0] : sp->next_seg;
    if (pthread_create(&sp->wthr, NULL, spool_writer_main, sp) != 0) {
        snprintf(err, errlen, "cannot start the spool writer thread");
        goto fail;
    }
    sp->nthreads = 1;
    if (pthread_create(&sp->athr, NULL, spool_aux_main, sp) != 0) {
        snprintf(err, errlen, "cannot start the spool aux thread");
        goto fail;
    }
    sp->nthreads = 2;
    if (pthread_create(&sp->sthr, NULL, spool_spare_main, sp) != 0) {
        snprintf(err, errlen, "cannot start the spool spare thread");
        goto fail;
    }
    sp->nthreads = 3;
    return sp;
fail:
    spool_stop_threads(sp);
    spool_free(sp);
    return NULL;
}

void spool_close(struct spool *sp)
{
    if (!sp)
        return;
    spool_stop_threads(sp);
    spool_free(sp);
}

void spool_test_fail(struct spool *sp, int e, int n)
{
    pthread_mutex_lock(&sp->mu);
    sp->fail_errno = e;
    sp->fail_n = e ? n : 0;
    pthread_mutex_unlock(&sp->mu);
}

void spool_test_seg_limit(struct spool *sp, uint64_t bytes)
{
    pthread_mutex_lock(&sp->mu);
    sp->seg_limit = bytes;
    pthread_mutex_unlock(&sp->mu);
    spool_spare_limit(sp);
}

/*
 * Internal interface between the spool's journal writer (spool.c) and its
 * replay at start (spool_recover.c): the struct spool both work on and the
 * few helpers both call.  Not for other modules: they use spool.h.
 */
#ifndef KM_SPOOL_INT_H
#define KM_SPOOL_INT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "spool.h"

#define SPOOL_RBUF          (1u << 20)             /* recovery buffer, read chunk */

struct spool_job;

struct jobq {
    struct spool_job *head, *tail;
};

struct spool {
    char *dir;
    struct event_base *base;
    struct event *ev_done;
    int lockfd, jdfd, sdfd, cdfd;
    uint32_t *segs;             /* segments found at open, ascending */
    size_t nsegs;
    uint32_t next_seg;          /* the segment to create when none is resumed */

    pthread_t wthr, athr;
    int nthreads;
    pthread_mutex_t mu;
    pthread_cond_t wcond, acond;
    /* under mu */
    struct jobq wq, aq, dq;
    int done_armed, stop;
    int fail_errno, fail_n;
    uint64_t seg_limit;
    uint32_t resume_seg;        /* from spool_recover: append to this segment */
    uint64_t resume_len;        /* ... from this offset */

    struct {                    /* writer thread only */
        int fd;
        uint32_t seg;
        uint64_t len;
        int dir_dirty, broken;
        struct iovec *iov;
        size_t iovcap;
        struct evbuffer_iovec *pv;
        size_t pvcap;
    } w;
    struct {                    /* aux thread only */
        int fd;
        uint32_t seg;
    } a;
    /* loop thread only */
    uint32_t *refs;             /* refs[seg - ref_base] */
    uint32_t ref_base;
    size_t nrefs;
    uint32_t gc_next;           /* oldest segment not yet handed to deletion */
    uint32_t active;            /* the segment the writer appends to, as last told */
    int recovered, gc_pending;
    uint64_t nqueued;
};

/* NNNNNNNNNN.seg, the name of segment seg in journal/. */
void spool_seg_name(char *out, size_t len, uint32_t seg);
/* write() of all n bytes, retried on EINTR and short writes.  0 / errno. */
int spool_write_full(int fd, const void *p, size_t n);
/* Loop thread: the reference count of seg (>= sp->ref_base), grown as needed. */
uint32_t *spool_ref_slot(struct spool *sp, uint32_t seg);

#endif

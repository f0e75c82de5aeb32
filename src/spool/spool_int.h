/*
 * Internal interface between the spool's journal writer (spool.c), its
 * replay at start (spool_recover.c), its aux and spare threads
 * (spool_aux.c, spool_spare.c) and its state files (spool_state.c): the
 * struct spool they work on and the few helpers they share.  Not for other
 * modules: they use spool.h and spool_state.h.
 */
#ifndef KM_SPOOL_INT_H
#define KM_SPOOL_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "spool/spool.h"
#include "spool/spool_record.h"

#define SPOOL_RBUF          (1u << 20)             /* recovery buffer, read chunk */
#define SPOOL_SPARE_MIN     (1ull << 20)           /* first spare segment (spool_spare.c) */
#define SPOOL_SPARE_MAX     (64ull << 20)          /* spares double up to this */

#define SPOOL_MAX_PAYLOAD   (UINT32_MAX - SPOOL_REC_HDR_LEN - SPOOL_REC_TRL_LEN)

enum job_type {
    J_APPEND,       /* writer: a MSG, STATE or DONE record */
    J_FAIL,         /* completion only: refused before it was queued */
    J_ROTATED,      /* completion only: the writer now appends to seg */
    J_READ,         /* aux: read a message body */
    J_STFILE,       /* aux: write a state file */
    J_STAPPEND,     /* aux: append to a state file */
    J_UNLINK,       /* aux: delete segment seg */
};

struct spool_job {
    struct spool_job *next;
    enum job_type type;
    int err;
    spool_cb *cb;
    void *arg;
    uint8_t rtype;              /* J_APPEND: enum spool_rec_type */
    uint64_t id;
    uint32_t seg;               /* J_APPEND (set by the writer), J_ROTATED, J_UNLINK */
    uint64_t off;               /* J_APPEND: set by the writer */
    uint32_t body_len;          /* J_APPEND: set by the writer */
    struct evbuffer *buf;       /* J_APPEND: the body; J_READ: bytes read */
    struct spool_loc *loc_out;  /* J_APPEND of a MSG */
    uint32_t *seg_out;          /* J_APPEND of a STATE */
    struct spool_loc rloc;      /* J_READ */
    struct evbuffer *out;       /* J_READ: the caller's buffer (loop thread only) */
    char *name;                 /* J_STFILE, J_STAPPEND */
    size_t meta_len;            /* J_APPEND: metadata bytes; J_ST*: data bytes */
    uint8_t hdr[SPOOL_REC_HDR_LEN];
    uint8_t trl[SPOOL_REC_TRL_LEN];
    uint8_t meta[];             /* metadata, or the state file's data */
};

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

    pthread_t wthr, athr, sthr;
    int nthreads;
    pthread_mutex_t mu;
    pthread_cond_t wcond, acond, scond;
    /* under mu */
    struct jobq wq, aq, dq;
    int done_armed, stop;
    int fail_errno, fail_n;
    uint64_t seg_limit;
    uint32_t resume_seg;        /* from spool_recover: append to this segment */
    uint64_t resume_len;        /* ... from this offset */
    uint64_t resume_zero_end;   /* ... zero-filled up to here (0: it grows) */
    int spare_fd;               /* journal/.spare, ready (-1: none yet) */
    int spare_taking;           /* the writer is renaming the spare */
    int spare_mode;             /* enum spool_spares (loop thread, before recovery) */
    uint64_t spare_size;        /* its size */
    uint64_t spare_next;        /* the size of the next one to make (0: not yet) */
    time_t spare_retry;         /* no new spare before this after a failure */
    uint64_t page;              /* the page size: the writer pads spares to it */

    struct {                    /* writer thread only */
        int fd;
        uint32_t seg;
        uint64_t len;
        uint64_t zero_end;      /* zero-filled (spare) up to here; 0: it grows */
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
    _Atomic int incoming;       /* messages arriving now: spool_incoming() */
};

/* NNNNNNNNNN.seg, the name of segment seg in journal/. */
void spool_seg_name(char *out, size_t len, uint32_t seg);
/* write() of all n bytes, retried on EINTR and short writes.  0 / errno. */
int spool_write_full(int fd, const void *p, size_t n);
/* Loop thread: the reference count of seg (>= sp->ref_base), grown as needed. */
uint32_t *spool_ref_slot(struct spool *sp, uint32_t seg);
/* pread() of all n bytes at off; EIO at the end of the file.  0 / errno. */
int spool_pread_full(int fd, void *p, size_t n, uint64_t off);
struct spool_job *spool_job_new(enum job_type type, size_t extra, spool_cb *cb,
                                void *arg);
void spool_job_free(struct spool_job *j);
/* Loop thread: queues j on q (the writer's or the aux thread's) and wakes
 * that thread with cond. */
void spool_push(struct spool *sp, struct jobq *q, pthread_cond_t *cond,
                struct spool_job *j);
/* Loop thread: cb gets err on the loop, nothing queued. */
void spool_fail_now(struct spool *sp, spool_cb *cb, void *arg, int err);
/* Hands the completed jobs first..last to the loop thread. */
void spool_post(struct spool *sp, struct spool_job *first, struct spool_job *last);
/* The aux thread (spool_aux.c). */
void *spool_aux_main(void *arg);
/* Aux thread: writes the J_STFILE job j (spool_state.c).  0 / errno. */
int spool_state_replace(struct spool *sp, struct spool_job *j);
/* Aux thread: the J_STAPPEND job j (spool_state.c).  0 / errno. */
int spool_state_append_job(struct spool *sp, struct spool_job *j);

/* SPOOL_ZEROS_LEN zero bytes, 4096-aligned (spool_spare.c). */
#define SPOOL_ZEROS_LEN (64 * 1024)
extern const char spool_zeros[SPOOL_ZEROS_LEN];

/* Spare segments (spool_spare.c).  spool_spare_init: at the end of
 * recovery (after a privilege drop, before any append): removes a leftover
 * spare, makes the first one and lets the spare thread work (0, or -1 when
 * it cannot: logged, segments then grow until a spare is ready). */
int spool_spare_init(struct spool *sp);
/* The spare thread: keeps one spare ready. */
void *spool_spare_main(void *arg);
/* Writer thread: renames the ready spare to journal/name and returns its fd
 * (*size: its length, all zeros) and asks for the next one; -1 when none is
 * ready. */
int spool_spare_take(struct spool *sp, const char *name, uint64_t *size);
/* After the segment limit changed: drops the spare when spares are now off
 * (a limit below SPOOL_SPARE_MIN). */
void spool_spare_limit(struct spool *sp);
/* At close, after the threads stopped. */
void spool_spare_close(struct spool *sp);

#endif

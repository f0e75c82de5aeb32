/*
 * spool — the durable store: an append-only journal of records in segment
 * files (spool/journal/NNNNNNNNNN.seg), written by one writer thread with group
 * commit (many records, one write + one fdatasync).  Small state files
 * (spool/state/NAME) share its handle and threads: spool_state.h.  The spool
 * knows the on-disk format and nothing about customers or scheduling; the
 * qmgr owns the index.
 *
 * Guarantees: a completion callback reporting 0 means the record is on disk
 * and synced (with the directory entry of its segment).  A failed batch is cut
 * off the file again (ftruncate) and every job in it gets the errno.  Records
 * are versioned and checked (header CRC, payload CRC, end marker); at recovery
 * a record that fails its checks is copied to spool/corrupt/ and logged, never
 * returned.  Callbacks run on the event loop thread.  Requires
 * evthread_use_pthreads() before the event_base was created.
 *
 * Record format (little-endian), version 1:
 *   header 32 bytes: u32 magic "KMJ1" | u8 version | u8 type | u16 0 |
 *                    u32 payload_len | u32 meta_len | u64 id |
 *                    u32 payload_crc32 | u32 header_crc32 (of the 28 bytes before)
 *   payload: meta_len bytes of metadata, then (MSG only) the message body
 *   trailer 8 bytes: u32 magic "KMJE" | u32 payload_len
 * Types: MSG (envelope + body), STATE (held flag + per-recipient status and
 * reason; the latest STATE of an id wins), DONE (the message is finished).
 */
#ifndef KM_SPOOL_H
#define KM_SPOOL_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct evbuffer;
struct spool;

/* Where a message record lives. */
struct spool_loc {
    uint32_t seg;           /* segment number */
    uint64_t off;           /* offset of the record header in the segment */
    uint32_t body_off;      /* offset of the body from the record header */
    uint32_t body_len;      /* bytes of body */
};

/* Recipient flags stored with the message. */
#define SPOOL_RCPT_OUTBOUND 0x01    /* not for a customer domain (postmaster, DSN) */

/* Recipient status values stored in STATE records. */
enum spool_rstatus {
    SPOOL_R_PENDING = 0,    /* waiting (queued/deferred: the reason tells) */
    SPOOL_R_DELIVERED = 1,
    SPOOL_R_BOUNCED = 2,
};

struct spool_rcpt {
    const char *addr;       /* full address, as accepted */
    uint8_t flags;          /* SPOOL_RCPT_* */
};

struct spool_env {
    uint64_t id;
    int64_t arrival;        /* epoch seconds */
    const char *sender;     /* "" for the null sender */
    size_t nrcpt;           /* 1..65535 */
    const struct spool_rcpt *rcpts;
};

/* Message flags stored in STATE records (the `held` argument and callback
 * value are these flags). */
#define SPOOL_MSG_HELD   0x01       /* operator hold */
#define SPOOL_MSG_WARNED 0x02       /* the delay warning DSN was sent */
#define SPOOL_MSG_FLAGS  0x03

struct spool_rstate {
    uint8_t status;         /* enum spool_rstatus */
    const char *reason;     /* NULL or "" when none */
};

/* Deferral reasons come from peers' replies and from old journals: the qmgr
 * keeps, lists and writes them only as spool_reason_clean() leaves them.
 * out gets at most SPOOL_REASON_MAX bytes and a NUL: printable ASCII only
 * (control characters, CR, LF and DEL become spaces, other bytes '?'), runs
 * of spaces as one, none at either end; a longer text is cut and ends in
 * "...".  Returns strlen(out).  Idempotent. */
#define SPOOL_REASON_MAX 512
size_t spool_reason_clean(char out[SPOOL_REASON_MAX + 1], const char *in);

/* Recovery callbacks, called in journal order (oldest segment first).  All
 * pointers are valid during the call only. */
struct spool_recover_cbs {
    void (*message)(void *arg, const struct spool_env *env,
                    const struct spool_loc *loc);
    void (*state)(void *arg, uint64_t id, uint32_t seg, int held,
                  size_t nrcpt, const struct spool_rstate *rs);
    void (*done)(void *arg, uint64_t id);
};

/* err: 0 or an errno.  A callback may queue more spool work, but must not
 * call spool_close(). */
typedef void spool_cb(int err, void *arg);

/* Opens (creating when needed) the spool directory: journal/, state/, corrupt/,
 * takes its lock file.  NULL + err on failure (another kickmaild holds it, no
 * permission...). */
struct spool *spool_open(const char *dir, struct event_base *base,
                         char *err, size_t errlen);
/* Stops the threads after finishing queued jobs (their callbacks are not run)
 * and closes everything. */
void spool_close(struct spool *sp);

/* Replays the journal through cbs, before the event loop runs.  Reads
 * metadata only: message bodies are skipped, except in the newest segment
 * whose records are fully verified.  Returns 0, or -1 with err filled on an
 * unrecoverable error (unreadable directory).  *max_id: highest id seen.
 * Call it once, before any append (-1 otherwise); until it succeeded no
 * segment is ever deleted.  Callbacks may be NULL. */
int spool_recover(struct spool *sp, const struct spool_recover_cbs *cbs,
                  void *arg, uint64_t *max_id, char *err, size_t errlen);

/* Appends a message record.  body is moved out of (drained) at once.  *loc is
 * filled before cb runs with 0.  Records appended before the same sync are
 * durable together. */
void spool_append_message(struct spool *sp, const struct spool_env *env,
                          struct evbuffer *body, struct spool_loc *loc,
                          spool_cb *cb, void *arg);
/* Appends a STATE record; *seg is set to the segment it went to. */
void spool_append_state(struct spool *sp, uint64_t id, int held, size_t nrcpt,
                        const struct spool_rstate *rs, uint32_t *seg,
                        spool_cb *cb, void *arg);
/* Appends a DONE record. */
void spool_append_done(struct spool *sp, uint64_t id, spool_cb *cb, void *arg);

/* Reads a message body off the loop into out, verifying the record's payload
 * CRC (EIO when it fails). */
void spool_read_body(struct spool *sp, const struct spool_loc *loc,
                     struct evbuffer *out, spool_cb *cb, void *arg);

/* Segment reference counts: the qmgr holds one reference on a segment for
 * each live message record and each latest STATE record in it.  A segment
 * with no references that is not the one being written, and is older than
 * every segment still referenced, is deleted.  Take the reference for an
 * appended record inside its completion callback (once the callback
 * returns, an unreferenced older segment may go). */
void spool_seg_ref(struct spool *sp, uint32_t seg);
void spool_seg_unref(struct spool *sp, uint32_t seg);
/* Runs the deletion check now.  Nothing is deleted before spool_recover()
 * succeeded; the references of recovered records must be taken before the
 * event loop runs (in the callbacks or right after spool_recover()): the
 * first loop turn after recovery runs this check by itself. */
void spool_gc(struct spool *sp);

/* Commit delay: delta +1 when a message starts arriving (DATA), -1 when it
 * ends (its final dot, or the session gave up).  While at least
 * SPOOL_COMMIT_SIBLINGS other messages are arriving, the writer waits up to
 * SPOOL_COMMIT_DELAY_US before it syncs a batch of one, so that one sync
 * covers several of them.  Any thread. */
void spool_incoming(struct spool *sp, int delta);

/* Test hook: the next n journal batches fail with errno e (0 disables).
 * Also settable with KICKMAIL_TEST_FAIL_WRITES="ERRNO:N" in the environment. */
void spool_test_fail(struct spool *sp, int e, int n);
/* Spare segments (zero-filled ahead of time so that appends overwrite
 * blocks; see spool_spare.c): SPOOL_SPARES_AUTO measures at recovery whether
 * they pay on this file system.  Call before spool_recover(). */
enum spool_spares { SPOOL_SPARES_AUTO, SPOOL_SPARES_ON, SPOOL_SPARES_OFF };
void spool_set_spares(struct spool *sp, enum spool_spares mode);
/* Test hook: the size of the spare segment ready for the next rotation,
 * waiting up to wait_ms for one; 0 when there is none. */
uint64_t spool_test_spare(struct spool *sp, int wait_ms);

#endif

/*
 * spool_fixture — what the spool's unit tests share (test_spool.c,
 * test_spool_spare.c): temporary directories, segment files, running the
 * loop until callbacks arrived, appends that wait for their completion, and a
 * miniature qmgr that collects what recovery reports.  Header-only: each
 * test program includes it once; main() sets `base`.
 */
#ifndef KM_TEST_SPOOL_FIXTURE_H
#define KM_TEST_SPOOL_FIXTURE_H

#pragma GCC diagnostic ignored "-Wunused-function"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "spool/spool.h"
#include "spool/spool_record.h"

#define MAXID 64

static struct event_base *base;

/* ---- helpers: directories, files, the loop ---- */

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    return remove(path);
}

static char *tdir_new(void)
{
    char t[] = "/tmp/test_spool.XXXXXX";
    assert_non_null(mkdtemp(t));
    return strdup(t);
}

static void tdir_free(char *dir)
{
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

static char *seg_path(const char *dir, uint32_t seg)
{
    static char p[256];
    snprintf(p, sizeof p, "%s/journal/%010u.seg", dir, seg);
    return p;
}

static off_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) < 0 ? -1 : st.st_size;
}

/* Where the records of a segment end: a spare segment (spool_spare.c) is
 * longer than what was written, the rest is zeros. */
static off_t seg_end(const char *dir, uint32_t seg)
{
    int fd = open(seg_path(dir, seg), O_RDONLY);
    uint8_t hdr[SPOOL_REC_HDR_LEN];
    struct spool_rec_hdr h;
    off_t off = 0;
    assert_true(fd >= 0);
    while (pread(fd, hdr, sizeof hdr, off) == (ssize_t)sizeof hdr &&
           spool_rec_hdr_decode(hdr, &h) == SPOOL_HDR_OK)
        off += (off_t)spool_rec_len(&h);
    close(fd);
    return off;
}

/* The length of the record at l, header to trailer. */
static uint64_t rec_len(const struct spool_loc *l)
{
    return l->body_off + l->body_len + SPOOL_REC_TRL_LEN;
}

/* Checks that the record at seg:off was set aside, len bytes long. */
static void check_corrupt_file(const char *dir, uint32_t seg, uint64_t off, uint64_t len)
{
    char path[300];
    snprintf(path, sizeof path, "%s/corrupt/%010u-%llu.rec", dir, seg,
             (unsigned long long)off);
    assert_int_equal(file_size(path), (off_t)len);
}

static int exists(const char *path)
{
    return access(path, F_OK) == 0;
}

static void flip_byte(const char *path, off_t off)
{
    int fd = open(path, O_RDWR);
    unsigned char c;
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, &c, 1, off), 1);
    c ^= 0x40;
    assert_int_equal(pwrite(fd, &c, 1, off), 1);
    close(fd);
}

static void timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    *(int *)arg = 1;
}

/* Runs the loop until *counter reaches target (fails after 30 s). */
static void run_until(const int *counter, int target)
{
    int timed_out = 0;
    struct timeval tv = {30, 0};
    struct event *t = evtimer_new(base, timeout_cb, &timed_out);
    evtimer_add(t, &tv);
    while (*counter < target && !timed_out)
        event_base_loop(base, EVLOOP_ONCE);
    event_free(t);
    assert_false(timed_out);
}

struct res {
    int n;
    int err;
};

static void res_cb(int err, void *arg)
{
    struct res *r = arg;
    r->n++;
    r->err = err;
}

static struct spool *sp_open(const char *dir)
{
    char err[256] = "";
    struct spool *sp = spool_open(dir, base, err, sizeof err);
    if (!sp)
        fail_msg("spool_open: %s", err);
    spool_set_spares(sp, SPOOL_SPARES_ON);  /* not "auto": the same on every disk */
    return sp;
}

static void fill_body(uint8_t *p, size_t n, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (uint8_t)x;
    }
}

/* Appends one message and waits for its completion; returns the errno. */
static int append_msg(struct spool *sp, uint64_t id, const char *sender,
                      const char *rcpt, uint8_t flags, const void *body, size_t blen,
                      struct spool_loc *loc)
{
    struct spool_rcpt r[2] = {{rcpt, flags}, {"second@acme.example", 0}};
    struct spool_env env = {
        .id = id, .arrival = 1700000000 + (int64_t)id, .sender = sender,
        .nrcpt = 2, .rcpts = r,
    };
    struct evbuffer *b = evbuffer_new();
    struct res res = {0, -1};
    evbuffer_add(b, body, blen);
    spool_append_message(sp, &env, b, loc, res_cb, &res);
    assert_int_equal(evbuffer_get_length(b), 0);
    evbuffer_free(b);
    run_until(&res.n, 1);
    return res.err;
}

static int simple_msg(struct spool *sp, uint64_t id, size_t blen, struct spool_loc *loc)
{
    uint8_t *body = malloc(blen + 1);
    char rcpt[64];
    int err;
    fill_body(body, blen, (uint32_t)id);
    snprintf(rcpt, sizeof rcpt, "user%llu@acme.example", (unsigned long long)id);
    err = append_msg(sp, id, "sender@example.org", rcpt, 0, body, blen, loc);
    free(body);
    return err;
}

static int append_state(struct spool *sp, uint64_t id, int held, size_t n,
                        const struct spool_rstate *rs, uint32_t *seg)
{
    struct res res = {0, -1};
    spool_append_state(sp, id, held, n, rs, seg, res_cb, &res);
    run_until(&res.n, 1);
    return res.err;
}

static int append_done(struct spool *sp, uint64_t id)
{
    struct res res = {0, -1};
    spool_append_done(sp, id, res_cb, &res);
    run_until(&res.n, 1);
    return res.err;
}

static int read_body(struct spool *sp, const struct spool_loc *loc, struct evbuffer *out)
{
    struct res res = {0, -1};
    spool_read_body(sp, loc, out, res_cb, &res);
    run_until(&res.n, 1);
    return res.err;
}

static void check_body(struct spool *sp, const struct spool_loc *loc, uint64_t id,
                       size_t blen)
{
    struct evbuffer *out = evbuffer_new();
    uint8_t *want = malloc(blen + 1);
    fill_body(want, blen, (uint32_t)id);
    assert_int_equal(read_body(sp, loc, out), 0);
    assert_int_equal(evbuffer_get_length(out), blen);
    if (blen)
        assert_memory_equal(evbuffer_pullup(out, -1), want, blen);
    free(want);
    evbuffer_free(out);
}

/* ---- a miniature qmgr: collects what recovery reports, takes refs ---- */

struct rmsg {
    int present, done, nstates;
    int64_t arrival;
    char *sender;
    size_t nrcpt;
    char *rcpt[4];
    uint8_t flags[4];
    struct spool_loc loc;
    int held;
    size_t snrcpt;
    uint8_t status[4];
    char *reason[4];            /* NULL when none */
    uint32_t state_seg;
};

struct coll {
    struct spool *sp;
    struct rmsg m[MAXID];
    int nmsg, nstate, ndone;
};

static void c_message(void *arg, const struct spool_env *env, const struct spool_loc *loc)
{
    struct coll *c = arg;
    struct rmsg *m;
    assert_true(env->id < MAXID && env->nrcpt <= 4);
    m = &c->m[env->id];
    assert_false(m->present);
    m->present = 1;
    m->arrival = env->arrival;
    m->sender = strdup(env->sender);
    m->nrcpt = env->nrcpt;
    for (size_t i = 0; i < env->nrcpt; i++) {
        m->rcpt[i] = strdup(env->rcpts[i].addr);
        m->flags[i] = env->rcpts[i].flags;
    }
    m->loc = *loc;
    spool_seg_ref(c->sp, loc->seg);
    c->nmsg++;
}

static void c_state(void *arg, uint64_t id, uint32_t seg, int held, size_t nrcpt,
                    const struct spool_rstate *rs)
{
    struct coll *c = arg;
    struct rmsg *m;
    assert_true(id < MAXID && nrcpt <= 4);
    m = &c->m[id];
    m->nstates++;
    m->held = held;
    m->snrcpt = nrcpt;
    for (size_t i = 0; i < nrcpt; i++) {
        free(m->reason[i]);
        m->status[i] = rs[i].status;
        m->reason[i] = rs[i].reason ? strdup(rs[i].reason) : NULL;
    }
    spool_seg_ref(c->sp, seg);
    if (m->state_seg)
        spool_seg_unref(c->sp, m->state_seg);
    m->state_seg = seg;
    c->nstate++;
}

static void c_done(void *arg, uint64_t id)
{
    struct coll *c = arg;
    struct rmsg *m;
    assert_true(id < MAXID);
    m = &c->m[id];
    if (m->present && !m->done)
        spool_seg_unref(c->sp, m->loc.seg);
    if (m->state_seg)
        spool_seg_unref(c->sp, m->state_seg);
    m->state_seg = 0;
    m->done = 1;
    c->ndone++;
}

static const struct spool_recover_cbs coll_cbs = {c_message, c_state, c_done};

static int live(const struct coll *c, uint64_t id)
{
    return c->m[id].present && !c->m[id].done;
}

static void coll_free(struct coll *c)
{
    for (int i = 0; i < MAXID; i++) {
        free(c->m[i].sender);
        for (int k = 0; k < 4; k++) {
            free(c->m[i].rcpt[k]);
            free(c->m[i].reason[k]);
        }
    }
    free(c);
}

/* Opens dir, replays it into a fresh collector, runs the first loop turn
 * (the post-recovery reclamation). */
static struct spool *sp_recover(const char *dir, struct coll **cp, uint64_t *max_id)
{
    char err[256] = "";
    struct coll *c = calloc(1, sizeof *c);
    uint64_t mx = 0;
    c->sp = sp_open(dir);
    if (spool_recover(c->sp, &coll_cbs, c, &mx, err, sizeof err) < 0)
        fail_msg("spool_recover: %s", err);
    event_base_loop(base, EVLOOP_NONBLOCK);
    if (max_id)
        *max_id = mx;
    *cp = c;
    return c->sp;
}

/* Replays an empty (new) journal with no callbacks, as a daemon's first
 * start does: makes the spare and lets appends begin. */
static void recover_empty(struct spool *sp)
{
    char err[256] = "";
    if (spool_recover(sp, &coll_cbs, NULL, NULL, err, sizeof err) != 0)
        fail_msg("spool_recover: %s", err);
}

/* A new spool in dir, recovered and ready for appends. */
static struct spool *sp_fresh(const char *dir)
{
    struct spool *sp = sp_open(dir);
    recover_empty(sp);
    return sp;
}

/* Recovers dir (sp_recover) and checks that each message of ids[] (ended by
 * 0) came back live.  Use RECOVER_LIVE(dir, &c, 1, 2, ...). */
static struct spool *recover_live(const char *dir, struct coll **cp, const uint64_t *ids)
{
    struct spool *sp = sp_recover(dir, cp, NULL);
    for (; *ids; ids++)
        if (!live(*cp, *ids))
            fail_msg("message %llu is not live after recovery", (unsigned long long)*ids);
    return sp;
}

#define RECOVER_LIVE(dir, cp, ...) recover_live((dir), (cp), (const uint64_t[]){__VA_ARGS__, 0})

/* Closes a recovered spool and frees its collector. */
static void sp_close_coll(struct spool *sp, struct coll *c)
{
    spool_close(sp);
    coll_free(c);
}

/* The end of a test: closes the spool, frees the collector (if any) and
 * removes the directory. */
static void sp_done(struct spool *sp, struct coll *c, char *dir)
{
    spool_close(sp);
    if (c)
        coll_free(c);
    tdir_free(dir);
}

/* Waits until the aux thread has done everything queued before (FIFO). */
static void aux_barrier(struct spool *sp)
{
    struct evbuffer *out = evbuffer_new();
    struct spool_loc loc = {0x7fffffff, 0, 0, 0};
    read_body(sp, &loc, out);
    evbuffer_free(out);
}

/* ---- the group: main() runs its tests between these ---- */

/* No injected write failures from the environment, and a threaded event
 * loop in `base` (the spool's aux thread answers through it). */
static int spool_group_setup(void **state)
{
    unsetenv("KICKMAIL_TEST_FAIL_WRITES");
    evthread_use_pthreads();
    base = event_base_new();
    return base ? 0 : -1;
}

static int spool_group_teardown(void **state)
{
    event_base_free(base);
    return 0;
}

#endif

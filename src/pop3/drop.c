/*
 * drop — a POP3 session's maildrop: the lock (one session per maildrop, in
 * this process: "-ERR [IN-USE]"), the listing made at login (maildir_scan in
 * a worker thread: sizes and UIDLs come from the file names, no message is
 * opened; message numbers are fixed for the session), the TRANSACTION
 * commands (STAT, LIST, UIDL, DELE, RSET, RETR, TOP), and UPDATE after QUIT
 * (removals; in keep mode the retrieved messages marked seen, their first
 * retrieval recorded, and the messages kept keep_days after it expired).
 * Trusts the listing (maildir.c) and the session's command table; checks
 * every message number.  Guarantees: nothing is removed before QUIT in
 * TRANSACTION; RETR and TOP are read and encoded in a worker thread: the
 * RETR and TOP lines pipelined behind the first join its queue (at most
 * P3_SENDQ) and one work answers as many as POP3_BATCH bytes of files
 * allow, in order (one worker round trip for many small messages; a big
 * one goes out POP3_BATCH at a time); the next work starts only while less
 * than SEND_AHEAD is waiting to be written, so no message is ever held
 * whole in memory; a message gone meanwhile is answered "-ERR [SYS/PERM]"
 * in its place and the session goes on.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "core/io.h"
#include "core/log.h"
#include "core/stats.h"
#include "core/util.h"
#include "pop3_int.h"

#define SEND_AHEAD (256 * 1024)     /* read the next piece while less than this waits */

static struct hmap *locks;          /* maildrop name -> its session */

int pop3_drop_locked(const char *drop)
{
    return locks && hmap_get(locks, drop) != NULL;
}

const char *pop3_drop_expire(const struct pop3_sess *s, char *buf, size_t len)
{
    if (s->mode == MAILDROP_KEEP)
        snprintf(buf, len, "%ld", s->keep_days);
    else
        snprintf(buf, len, "NEVER");
    return buf;
}

void pop3_drop_close(struct pop3_sess *s)
{
    if (s->drop) {
        if (hmap_get(locks, s->drop) == s)
            hmap_del(locks, s->drop);
        free(s->drop);
        s->drop = NULL;
    }
    maildir_list_free(&s->list);
    memset(&s->list, 0, sizeof s->list);
    free(s->flags);
    s->flags = NULL;
}

/* ---- login: the listing ---- */

static void load_run(struct pop3_work *w)
{
    struct pop3_sess *s = (struct pop3_sess *)((char *)w - offsetof(struct pop3_sess, work));
    s->err = maildir_scan(s->dir, &s->list, s->why, sizeof s->why) < 0 ? EIO : 0;
    if (!s->err)
        maildir_scan_unique(s->dir, &s->list);     /* UIDLs unique (RFC 1939) */
}

static void load_done(struct pop3_work *w)
{
    struct pop3_sess *s = (struct pop3_sess *)((char *)w - offsetof(struct pop3_sess, work));
    if (pop3_sess_work_ended(s))
        return;
    if (s->err) {
        log_err("pop3: cannot list the maildrop %s for %s: %s", s->drop, s->peer, s->why);
        pop3_reply(s, "-ERR [SYS/TEMP] Cannot open your maildrop, try again later.");
        pop3_drop_close(s);
        pop3_sess_finish(s, "maildrop error");
        pop3_sess_resume(s);
        return;
    }
    s->flags = xcalloc(s->list.n ? s->list.n : 1, 1);
    maildir_usage_set(s->drop, &s->list);
    maildir_usage_login(s->drop, time(NULL));
    stats_add(ST_POP3_LOGIN_OK, 1);
    log_info("pop3: login user=<%s> client=%s tls=%s method=%s messages=%zu", s->drop,
             s->peer, pop3_sess_tls(s) ? "yes" : "no", s->login_how, s->list.n);
    pop3_reply(s, "+OK Logged in: %zu messages (%llu octets).", s->list.n,
               (unsigned long long)s->list.bytes);
    pop3_enter_state(s, P3_TRANS);
    pop3_sess_resume(s);
}

int pop3_drop_open(struct pop3_sess *s, const char *drop, enum maildrop_mode mode,
                   long keep_days)
{
    if (!locks)
        locks = hmap_new(1);
    if (hmap_get(locks, drop)) {
        log_info("pop3: login user=<%s> client=%s refused: maildrop in use", drop, s->peer);
        pop3_reply(s, "-ERR [IN-USE] Your maildrop is in use by another session.");
        return -1;
    }
    if (maildir_path(pop3_env.cfg->maildir_root, drop, s->dir, sizeof s->dir) < 0) {
        log_err("pop3: maildrop %s has no usable directory under %s", drop,
                pop3_env.cfg->maildir_root);
        pop3_reply(s, "-ERR [SYS/PERM] Your maildrop cannot be opened.");
        return -1;
    }
    s->drop = xstrdup(drop);
    hmap_put(locks, s->drop, s);
    pop3_enter_state(s, P3_LOAD);
    s->mode = mode;
    s->keep_days = keep_days;
    s->job = P3_JOB_LOAD;
    s->work.run = load_run;
    s->work.done = load_done;
    pop3_work_submit(&s->work);
    return 0;
}

/* ---- TRANSACTION ---- */

/* The message a number argument names: its index, or -1 (answered). */
static long msg_index(struct pop3_sess *s, const struct pop3_arg *a)
{
    uint32_t n;
    if (pop3_parse_number(a, &n) < 0 || n == 0 || n > s->list.n) {
        pop3_reply(s, "-ERR There is no message %.*s.", (int)(a->len > 20 ? 20 : a->len), a->p);
        pop3_bad_command(s);
        return -1;
    }
    if (s->flags[n - 1] & P3_DELETED) {
        pop3_reply(s, "-ERR Message %u is deleted.", n);
        return -1;
    }
    return (long)n - 1;
}

void pop3_cmd_stat(struct pop3_sess *s, const struct pop3_cmd *c)
{
    pop3_reply(s, "+OK %zu %llu", s->list.n - s->ndeleted,
               (unsigned long long)(s->list.bytes - s->deleted_bytes));
}

/* LIST and UIDL: one message, or all that are not deleted. */
static void listing(struct pop3_sess *s, const struct pop3_cmd *c, int uidl)
{
    if (c->nargs == 1) {
        long i = msg_index(s, &c->args[0]);
        if (i < 0)
            return;
        if (uidl)
            pop3_reply(s, "+OK %ld %s", i + 1, s->list.msgs[i].uidl);
        else
            pop3_reply(s, "+OK %ld %llu", i + 1, (unsigned long long)s->list.msgs[i].vsize);
        return;
    }
    if (uidl)
        pop3_reply(s, "+OK");
    else
        pop3_reply(s, "+OK %zu messages (%llu octets)", s->list.n - s->ndeleted,
                   (unsigned long long)(s->list.bytes - s->deleted_bytes));
    for (size_t i = 0; i < s->list.n; i++) {
        if (s->flags[i] & P3_DELETED)
            continue;
        if (uidl)
            evbuffer_add_printf(s->out, "%zu %s\r\n", i + 1, s->list.msgs[i].uidl);
        else
            evbuffer_add_printf(s->out, "%zu %llu\r\n", i + 1,
                                (unsigned long long)s->list.msgs[i].vsize);
    }
    pop3_reply(s, ".");
}

void pop3_cmd_list(struct pop3_sess *s, const struct pop3_cmd *c) { listing(s, c, 0); }
void pop3_cmd_uidl(struct pop3_sess *s, const struct pop3_cmd *c) { listing(s, c, 1); }

void pop3_cmd_dele(struct pop3_sess *s, const struct pop3_cmd *c)
{
    long i = msg_index(s, &c->args[0]);
    if (i < 0)
        return;
    s->flags[i] |= P3_DELETED;
    s->ndeleted++;
    s->deleted_bytes += s->list.msgs[i].vsize;
    pop3_reply(s, "+OK Message %ld marked to be deleted.", i + 1);
}

void pop3_cmd_rset(struct pop3_sess *s, const struct pop3_cmd *c)
{
    for (size_t i = 0; i < s->list.n; i++)
        s->flags[i] &= (uint8_t)~P3_DELETED;
    s->ndeleted = 0;
    s->deleted_bytes = 0;
    pop3_reply(s, "+OK %zu messages (%llu octets).", s->list.n,
               (unsigned long long)s->list.bytes);
}

/* ---- RETR and TOP ---- */

/* In the worker: the maildrop's directory, opened once for the session
 * (messages are then opened and removed relative to it). */
static int drop_dirfd(struct pop3_sess *s)
{
    if (s->dirfd < 0)
        s->dirfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    return s->dirfd;
}

/* In the worker: the head message could not be opened or its first read
 * failed: answered "-ERR" in place. */
static void send_fail(struct pop3_sess *s, struct pop3_sendq *q, int err)
{
    q->err = err ? err : EIO;
    if (q->err == ENOENT)
        evbuffer_add_printf(s->sendbuf, "-ERR [SYS/PERM] Message %u is gone.\r\n", q->msg + 1);
    else
        evbuffer_add_printf(s->sendbuf, "-ERR [SYS/TEMP] Cannot read message %u.\r\n",
                            q->msg + 1);
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
}

/* In the worker: reads and encodes the head message (open) into sendbuf
 * while *budget lasts.  1: its answer is complete; 0: the budget is spent
 * first (the next work goes on); -1: it failed (answered -ERR before its
 * "+OK", or s->err set after it: the stream cannot go on). */
static int send_read(struct pop3_sess *s, struct pop3_sendq *q, size_t *budget)
{
    const struct maildir_msg *m = &s->list.msgs[q->msg];
    for (;;) {
        size_t want = *budget < POP3_CHUNK ? *budget : POP3_CHUNK;
        if (want == 0)
            return 0;
        ssize_t n;
        do
            n = pread(s->fd, s->chunk, want, (off_t)s->off);
        while (n < 0 && errno == EINTR);
        if (n < 0) {
            int e = errno;
            snprintf(s->why, sizeof s->why, "%s: %s", m->file, strerror(e));
            if (s->started) {
                s->err = e;
                return -1;
            }
            send_fail(s, q, e);
            return -1;
        }
        if (!s->started) {
            s->started = 1;
            if (q->body_lines < 0)
                evbuffer_add_printf(s->sendbuf, "+OK %llu octets\r\n",
                                    (unsigned long long)m->vsize);
            else
                evbuffer_add(s->sendbuf, "+OK\r\n", 5);
        }
        pop3_enc_feed(&s->enc, s->chunk, (size_t)n, s->sendbuf);
        s->off += (uint64_t)n;
        *budget -= (size_t)n;
        /* a short read of a regular file is its end: no read more to learn it */
        if ((size_t)n < want || s->enc.done) {
            /* a TOP whose line count reached past the end sent the whole
             * message: a retrieval as well (fetchmail fetches with TOP n
             * 99999999) */
            q->whole = q->body_lines < 0 || !s->enc.done;
            pop3_enc_end(&s->enc, s->sendbuf);
            close(s->fd);
            s->fd = -1;
            return 1;
        }
    }
}

/* In the worker: answers the queued messages from the head on, reading at
 * most POP3_BATCH bytes of files; a message that does not fit in what is
 * left is started by the next work (a big one alone goes out POP3_BATCH at
 * a time).  Stops after a failure other than a message gone, so that
 * s->why is its reason. */
static void send_run(struct pop3_work *w)
{
    struct pop3_sess *s = (struct pop3_sess *)((char *)w - offsetof(struct pop3_sess, work));
    size_t budget = POP3_BATCH;
    s->err = 0;
    while (s->sq_head < s->sq_tail) {
        struct pop3_sendq *q = &s->sendq[s->sq_head];
        if (s->fd < 0) {
            const struct maildir_msg *m = &s->list.msgs[q->msg];
            if (budget < POP3_BATCH && m->size >= budget)
                break;
            errno = 0;
            s->fd = maildir_open_at(drop_dirfd(s), s->dir, m, s->why, sizeof s->why);
            s->off = 0;
            s->started = 0;
            pop3_enc_init(&s->enc, q->body_lines);
            if (s->fd < 0) {
                send_fail(s, q, errno);
                s->sq_head++;
                if (q->err == ENOENT)
                    continue;       /* gone: its log line needs no why */
                break;
            }
        }
        int r = send_read(s, q, &budget);
        if (r == 0 || s->err)
            break;
        s->sq_head++;
        if (r < 0)
            break;
    }
}

static void send_done(struct pop3_work *w);

static void send_submit(struct pop3_sess *s)
{
    s->job = P3_JOB_READ;
    s->sq_from = s->sq_head;
    s->work.run = send_run;
    s->work.done = send_done;
    pop3_work_submit(&s->work);
}

/* A RETR or TOP line waiting behind the one being answered: queued when
 * the command table and msg_index would take it as it is (anything else
 * stays for them, to be answered in order after the queue). */
static int send_take(struct pop3_sess *s, const struct pop3_cmd *c)
{
    uint32_t n, lines = 0;
    if (s->sq_tail >= P3_SENDQ)
        return 0;
    if (!((c->verb == POP3_V_RETR && c->nargs == 1) || (c->verb == POP3_V_TOP && c->nargs == 2)))
        return 0;
    if (pop3_parse_number(&c->args[0], &n) < 0 || n == 0 || n > s->list.n ||
        (s->flags[n - 1] & P3_DELETED))
        return 0;
    if (c->verb == POP3_V_TOP && pop3_parse_number(&c->args[1], &lines) < 0)
        return 0;
    s->sendq[s->sq_tail++] = (struct pop3_sendq){
        .msg = n - 1, .body_lines = c->verb == POP3_V_TOP ? (long)lines : -1 };
    return 1;
}

/* Moves what is left of the queue to its start and adds the RETR and TOP
 * lines waiting in the input. */
static void send_gather(struct pop3_sess *s)
{
    if (s->sq_head) {
        memmove(s->sendq, s->sendq + s->sq_head, (s->sq_tail - s->sq_head) * sizeof *s->sendq);
        s->sq_tail -= s->sq_head;
        s->sq_head = 0;
    }
    while (pop3_sess_take_line(s, send_take))
        ;
}

/* On the loop: what one answered message means (a retrieval; a log line
 * for one that could not be read). */
static void send_report(struct pop3_sess *s, const struct pop3_sendq *q)
{
    const struct maildir_msg *m = &s->list.msgs[q->msg];
    if (q->err == ENOENT) {
        log_warn("pop3: %s: message %u (%s) is gone", s->drop, q->msg + 1, m->file);
    } else if (q->err) {
        log_err("pop3: %s: cannot read message %u: %s", s->drop, q->msg + 1, s->why);
    } else if (q->whole) {
        s->flags[q->msg] |= P3_RETRIEVED;
        s->n_retrieved++;
        s->n_bytes += m->vsize;
        stats_add(ST_POP3_RETRIEVED, 1);
        stats_add(ST_POP3_BYTES, m->vsize);
    }
}

static void send_done(struct pop3_work *w)
{
    struct pop3_sess *s = (struct pop3_sess *)((char *)w - offsetof(struct pop3_sess, work));
    if (pop3_sess_work_ended(s))
        return;
    evbuffer_add_buffer(s->out, s->sendbuf);
    for (unsigned i = s->sq_from; i < s->sq_head; i++)
        send_report(s, &s->sendq[i]);
    if (s->err) {           /* "+OK" is out: the only way left to fail is to close */
        log_err("pop3: %s: reading message %u failed while sending it: %s", s->drop,
                s->sendq[s->sq_head].msg + 1, s->why);
        pop3_sess_abort(s, "read error");
        return;
    }
    if (s->sq_head == s->sq_tail) {     /* all answered */
        s->sq_head = s->sq_tail = 0;
        pop3_enter_state(s, P3_TRANS);
        pop3_sess_resume(s);
        return;
    }
    send_gather(s);
    if (io_out_pending(s->io) + evbuffer_get_length(s->out) < SEND_AHEAD)
        send_submit(s);     /* else when the output drains (pop3_drop_send_more) */
    pop3_sess_resume(s);
}

void pop3_drop_send_more(struct pop3_sess *s)
{
    if (s->state == P3_SEND && s->job == P3_JOB_NONE)
        send_submit(s);
}

/* RETR (body_lines < 0) or TOP of message i: queued with the RETR and TOP
 * lines behind it, and read in a worker. */
static void send_start(struct pop3_sess *s, long i, long body_lines)
{
    if (!s->chunk) {
        s->chunk = xmalloc(POP3_CHUNK);
        s->sendq = xcalloc(P3_SENDQ, sizeof *s->sendq);
        if (!(s->sendbuf = evbuffer_new()))
            log_fatal("pop3: out of memory");
    }
    s->sq_head = 0;
    s->sq_tail = 1;
    s->sendq[0] = (struct pop3_sendq){ .msg = (uint32_t)i, .body_lines = body_lines };
    s->fd = -1;
    send_gather(s);
    pop3_enter_state(s, P3_SEND);
    send_submit(s);
}

void pop3_cmd_retr(struct pop3_sess *s, const struct pop3_cmd *c)
{
    long i = msg_index(s, &c->args[0]);
    if (i >= 0)
        send_start(s, i, -1);
}

void pop3_cmd_top(struct pop3_sess *s, const struct pop3_cmd *c)
{
    uint32_t lines;
    long i = msg_index(s, &c->args[0]);
    if (i < 0)
        return;
    if (pop3_parse_number(&c->args[1], &lines) < 0) {
        pop3_reply(s, "-ERR Invalid number of lines.");
        pop3_bad_command(s);
        return;
    }
    send_start(s, i, (long)lines);
}

/* ---- UPDATE ---- */

static void update_keep(struct pop3_sess *s, time_t now)
{
    const char **uidls = xcalloc(s->list.n ? s->list.n : 1, sizeof *uidls);
    size_t n = 0;
    char why[256];
    for (size_t i = 0; i < s->list.n; i++) {
        struct maildir_msg *m = &s->list.msgs[i];
        if ((s->flags[i] & (P3_RETRIEVED | P3_DELETED)) != P3_RETRIEVED)
            continue;
        if (!m->seen && maildir_mark_seen(s->dir, m, why, sizeof why) < 0)
            log_warn("pop3: %s: cannot mark message %zu seen: %s", s->drop, i + 1, why);
        uidls[n++] = m->uidl;
    }
    if (n && maildir_retrieved_add(s->dir, uidls, n, now, why, sizeof why) < 0) {
        log_err("pop3: %s: cannot record retrievals: %s", s->drop, why);
        s->update_failed++;
        s->retr_unrecorded = 1;
    }
    free(uidls);
    if (maildir_expire(s->dir, s->keep_days * 86400L, now, &s->expired, why, sizeof why) < 0)
        log_err("pop3: %s: expiry failed: %s", s->drop, why);
}

static void update_run(struct pop3_work *w)
{
    struct pop3_sess *s = (struct pop3_sess *)((char *)w - offsetof(struct pop3_sess, work));
    time_t now = time(NULL);
    uint64_t bytes = 0;
    char why[256];
    for (size_t i = 0; i < s->list.n; i++) {
        if (!(s->flags[i] & P3_DELETED))
            continue;
        if (maildir_remove_at(drop_dirfd(s), s->dir, &s->list.msgs[i], why, sizeof why) == 0) {
            s->removed++;
            bytes += s->list.msgs[i].vsize;
        } else {
            log_err("pop3: %s: cannot remove message %zu: %s", s->drop, i + 1, why);
            s->update_failed++;
        }
    }
    if (s->mode == MAILDROP_KEEP)
        update_keep(s, now);
    /* "+OK" to QUIT says the deletions happened: they must not come back
     * after a crash */
    if ((s->removed || s->expired) && maildir_sync(s->dir, why, sizeof why) < 0) {
        log_err("pop3: %s: %s", s->drop, why);
        s->update_failed++;
    }
    if (s->expired) {               /* the figures again from the names */
        struct maildir_list l = { 0 };
        if (maildir_scan(s->dir, &l, why, sizeof why) == 0)
            maildir_usage_set(s->drop, &l);
        maildir_list_free(&l);
    } else if (s->removed) {
        maildir_usage_add(s->drop, -(int64_t)bytes, -(int64_t)s->removed, 0);
    }
}

static void update_done(struct pop3_work *w)
{
    struct pop3_sess *s = (struct pop3_sess *)((char *)w - offsetof(struct pop3_sess, work));
    s->n_deleted = (unsigned)s->removed;
    stats_add(ST_POP3_DELETED, s->removed);
    if (s->expired)
        log_info("pop3: %s: %zu messages expired (kept %ld days after retrieval)", s->drop,
                 s->expired, s->keep_days);
    if ((s->removed || s->expired) && pop3_env.room)
        pop3_env.room(s->drop);
    if (pop3_sess_work_ended(s))
        return;
    if (s->update_failed)
        pop3_reply(s, "-ERR [SYS/TEMP] Some changes could not be made: %zu messages "
                   "deleted, %zu not%s.", s->removed, (size_t)s->ndeleted - s->removed,
                   s->retr_unrecorded ? "; the retrievals were not recorded" : "");
    else
        pop3_reply(s, "+OK Logging out, %zu messages deleted.", s->removed);
    pop3_sess_finish(s, NULL);
    pop3_sess_resume(s);
}

void pop3_cmd_quit_trans(struct pop3_sess *s, const struct pop3_cmd *c)
{
    pop3_enter_state(s, P3_UPDATE);
    s->job = P3_JOB_UPDATE;
    s->work.run = update_run;
    s->work.done = update_done;
    pop3_work_submit(&s->work);
}

/*
 * maildir — maildrops on disk, in the Maildir layout that Dovecot serves
 * unchanged (mail_location = maildir:ROOT/%d/%n).  Tier 2 (beside spool/):
 * it uses core/ only; mta/ (local delivery), pop3/ (the POP3 server), smtp/
 * (quota at RCPT) and ctl/ (kickq maildrops) use it.
 *
 * Layout.  A maildrop is named by an address ("alice@isp.example") or, for
 * a customer whose whole domain is batched into one maildrop, by the
 * customer's name ("acme": names have no dot and no '@', domains always have
 * a dot, so the two never collide):
 *     ROOT/isp.example/alice/{tmp,new,cur}     address maildrop
 *     ROOT/acme/{tmp,new,cur}                  domain maildrop (Dovecot's
 *                                              ROOT/%d/%n with %d empty)
 * Files are stored with LF line ends (the Maildir convention); a name carries
 * Maildir++ ",S=SIZE" (bytes on disk) and Dovecot's ",W=VSIZE" (bytes with
 * CRLF line ends, the POP3 size), so listing a maildrop reads no message.
 *
 * Blocking calls (they touch the disk) are marked BLOCKING: call them from a
 * worker thread, never on the event loop.  None of them keeps global state
 * except the usage table below, which has its own lock.
 */
#ifndef KM_MAILDIR_H
#define KM_MAILDIR_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct evbuffer;

#define MAILDIR_UIDL_LEN 32         /* hex characters of a UIDL */

/* The directory of maildrop `drop` under root into out: 0, or -1 when drop
 * is not a safe name (empty, '/', a leading '.', "..", control characters,
 * non-ASCII bytes, more than one '@', an '@' at either end, a part longer
 * than NAME_MAX, a name without '@' that has a dot: it would be a domain's
 * directory) or out is too small.  Case is kept: callers lower-case.  Pure. */
int maildir_path(const char *root, const char *drop, char *out, size_t len);

/* BLOCKING.  Creates dir and its tmp/, new/, cur/ (mode 0700, parents as
 * needed, existing ones kept).  0, or -1 with why. */
int maildir_create(const char *dir, char *why, size_t whylen);

/* BLOCKING.  Delivers one message into maildir dir: writes prefix (header
 * lines we add, CRLF or LF ends) and then body (the stored form: CRLF lines,
 * not dot-stuffed) with LF line ends into tmp/, fsyncs it, moves it into
 * new/ under a unique name (time.M<usec>P<pid>Q<counter>R<random>.HOST,
 * S=..,W=..) without ever replacing a name (renameat2 RENAME_NOREPLACE, or
 * link and unlink), fsyncs new/.  Only a 0 return means
 * the message is durable in new/.  name (if not NULL) gets the base name.
 * -1 with why; *temporary is set to 1 for errors worth retrying (ENOSPC,
 * EDQUOT, EIO, EMFILE, ..., and an operator's EACCES, EPERM, EROFS), 0 for
 * permanent ones.  Nothing is left in tmp/
 * or new/ on failure.  The caller must not touch body meanwhile.
 * A missing maildir is made first (maildir_create).  Line ends: CRLF -> LF;
 * a lone CR stays, except at the very end, where it is the line end; a
 * message not ending with a line end gets LF.  W = S + the number of LFs
 * not preceded by CR in the file: a reader that sends each such bare LF as
 * CRLF (and nothing else changed) sends exactly W bytes, as Dovecot does.
 * A batch of one (maildir_deliver_batch). */
int maildir_deliver(const char *dir, const char *host,
                    const char *prefix, size_t prefixlen,
                    const struct evbuffer *body,
                    char *name, size_t namelen,
                    int *temporary, char *why, size_t whylen);

/* One message of a batch (maildir_deliver_batch).  The caller sets the
 * first five fields (dir to body as maildir_deliver's arguments); the
 * batch the rest. */
struct maildir_item {
    const char *dir;
    const char *prefix;
    size_t prefixlen;
    const struct evbuffer *body;
    const atomic_int *cancel;   /* optional: non-zero before the link into
                                 * new/ drops the item (temporary failure) */
    int ok;                     /* 1: durable in new/ */
    int temporary;              /* when not ok: worth retrying */
    char name[256];             /* when ok: the base name in new/ */
    char why[512];              /* when not ok */
};

#define MAILDIR_BATCH_MAX 256       /* items under one round of syncs */

/* BLOCKING.  Delivers n messages, each as maildir_deliver() does (names,
 * line ends, sizes, a missing maildir made, error classes, nothing left in
 * tmp/ or new/ on failure), under one round of syncs per MAILDIR_BATCH_MAX
 * items: writes every tmp/ file and starts its write-back, syncs them all,
 * moves each into new/ (unless cancelled), syncs the new/ entries.  The syncs: for two or more items on one file
 * system one syncfs(2) (and a cache flush) for all their files, and one
 * again for all their new/ entries; else (one item, or syncfs failed) an
 * fdatasync per file and an fsync per distinct new/.  An item is ok only
 * once its file and its new/ entry are synced; one item's failure fails
 * only that item (a failed sync of a new/ fails the items linked into it).
 * Returns how many are ok.  The items may name the same maildir and share a
 * body; the caller must not touch the bodies meanwhile. */
size_t maildir_deliver_batch(struct maildir_item *items, size_t n, const char *host);

/* One message of a maildrop as listed. */
struct maildir_msg {
    char *file;                 /* relative to the maildir: "new/NAME" or
                                 * "cur/NAME:2,FLAGS" */
    uint64_t size;              /* bytes on disk */
    uint64_t vsize;             /* bytes with CRLF line ends (POP3 size) */
    time_t mtime;               /* delivery time (from the name, else stat) */
    char uidl[MAILDIR_UIDL_LEN + 1];   /* persistent, unique, never reused:
                                 * hex digest of the base name (before ':') */
    int seen;                   /* in cur/ with the S flag */
};

struct maildir_list {
    size_t n;
    struct maildir_msg *msgs;   /* oldest first (mtime, then name): message
                                 * numbers are fixed for a POP3 session */
    uint64_t bytes;             /* sum of vsize */
};

/* BLOCKING.  Lists new/ and cur/ of dir.  Sizes come from the names; a file
 * without ,S=/,W= (put there by another program) is stat'ed and read once to
 * count its lines (vsize: each bare LF counts 2; a missing final line end
 * is not counted).  A missing maildir is an empty list.  0, or -1 with why. */
int maildir_scan(const char *dir, struct maildir_list *out, char *why, size_t whylen);
void maildir_list_free(struct maildir_list *l);
/* BLOCKING; for a reader that holds the maildrop (a POP3 session's
 * listing).  Two listed files with one base name (a message copied by hand
 * from cur/ back into new/) would share a UIDL, and marking one seen would
 * rename it over the other: each such file but one (the one in cur/ keeps
 * its name) is renamed in its directory to a name of its own, never over
 * another, and gets a UIDL of its own; one that cannot be renamed is left
 * out of the list (still on disk).  Each is logged.  Returns how many were
 * renamed. */
size_t maildir_scan_unique(const char *dir, struct maildir_list *l);

/* BLOCKING.  Opens a listed message for reading: an fd, or -1 with why (a
 * message removed meanwhile by another reader: errno ENOENT).  Open, remove
 * and mark_seen also find a message another reader moved between new/ and
 * cur/ or whose flags it changed since the listing. */
int maildir_open(const char *dir, const struct maildir_msg *m, char *why, size_t whylen);
/* BLOCKING.  maildir_open() and maildir_remove() relative to dirfd, an open
 * descriptor of dir (open(dir, O_RDONLY | O_DIRECTORY)), or -1 for the
 * same as those: no walk of dir's path for every message (POP3 reads and
 * removes thousands in a row).  dir is still used for a moved message and
 * in why. */
int maildir_open_at(int dirfd, const char *dir, const struct maildir_msg *m, char *why,
                    size_t whylen);
int maildir_remove_at(int dirfd, const char *dir, const struct maildir_msg *m, char *why,
                      size_t whylen);

/* BLOCKING.  Removes a listed message (a file already gone is success).
 * Not synced by itself: maildir_sync() after a batch of removals. */
int maildir_remove(const char *dir, const struct maildir_msg *m, char *why, size_t whylen);

/* BLOCKING.  Makes removals and renames in new/ and cur/ durable (fsyncs
 * both directories; a missing one is fine): after it, a removed message
 * cannot come back in a crash.  0 / -1 with why. */
int maildir_sync(const char *dir, char *why, size_t whylen);

/* BLOCKING.  Marks a listed message seen: new/NAME -> cur/NAME:2,S (or adds
 * S to cur/'s flags); updates m->file and m->seen. 0 / -1 with why; never
 * over another file of the target's name (-1, both files left). */
int maildir_mark_seen(const char *dir, struct maildir_msg *m, char *why, size_t whylen);

/*
 * Keep mode.  The time a message was first retrieved is kept per maildrop in
 * dir/kickmail-retrieved (one "UIDL EPOCH" line each; written atomically:
 * tmp file, fsync, rename, fsync dir).  Lines for messages no longer present
 * are dropped when the file is next written.
 */
/* BLOCKING.  Records now as the first retrieval of each of the n UIDLs that
 * has none yet. */
int maildir_retrieved_add(const char *dir, const char *const *uidls, size_t n,
                          time_t now, char *why, size_t whylen);
/* BLOCKING.  Removes every message first retrieved before now - keep_secs;
 * *removed (if not NULL) gets how many.  0 / -1 with why. */
int maildir_expire(const char *dir, long keep_secs, time_t now,
                   size_t *removed, char *why, size_t whylen);

/*
 * Usage: bytes and messages per maildrop, kept in memory for quota checks at
 * RCPT (on the loop: never blocks, O(1)) and for kickq maildrops.  Thread
 * safe.  Filled at start by maildir_usage_scan() (BLOCKING; in a worker
 * thread), then kept current by whoever adds or removes messages.
 */
struct maildir_usage {
    uint64_t bytes;             /* sum of vsize */
    uint64_t messages;
    time_t oldest;              /* 0 when empty */
    time_t last_login;          /* 0 = never (since start) */
};
/* Known usage of drop; a drop never seen is all zeros.  Never blocks. */
void maildir_usage_get(const char *drop, struct maildir_usage *u);
/* Adds (or with negative deltas removes) to drop's figures; a removal
 * clamps at zero and leaves oldest as it was (until the next set()), or 0
 * once the drop is empty. */
void maildir_usage_add(const char *drop, int64_t bytes, int64_t messages, time_t mtime);
/* Sets drop's figures from a fresh listing (after a POP3 session's UPDATE,
 * or the start-up scan). */
void maildir_usage_set(const char *drop, const struct maildir_list *l);
void maildir_usage_login(const char *drop, time_t when);
/* BLOCKING.  Scans the maildrops named in drops[] under root into the table. */
int maildir_usage_scan(const char *root, const char *const *drops, size_t n,
                       char *why, size_t whylen);
void maildir_usage_clear(void);

#endif

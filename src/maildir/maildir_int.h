/*
 * maildir_int.h — helpers shared by the files of src/maildir/ (private).
 */
#ifndef KM_MAILDIR_INT_H
#define KM_MAILDIR_INT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* What a message file's name says (parse_name in scan.c).  Pure. */
struct maildir_name {
    size_t baselen;             /* bytes before ':' (or the whole name) */
    int has_size, has_vsize, has_time;
    uint64_t size, vsize;
    time_t time;                /* the leading decimal seconds */
    const char *flags;          /* after ":2,", or NULL */
};
void maildir_name_parse(const char *name, struct maildir_name *out);

/* The UIDL of a base name: hex MD5 of its first len bytes into out
 * (MAILDIR_UIDL_LEN + 1 bytes). */
void maildir_uidl(const char *base, size_t len, char *out);

/* dir + "/" + rel into out: 0, or -1 (ENAMETOOLONG) when it does not fit. */
int maildir_join(char *out, size_t len, const char *dir, const char *rel);

/* fsync of a directory by path: 0 / -1 with errno. */
int maildir_fsync_dir(const char *path);

/* 1 when errno value e is worth retrying (disk full, I/O, limits...). */
int maildir_errno_temporary(int e);

/* Keep mode's kickmail-retrieved file in memory (keep.c). */
#define MAILDIR_RETRIEVED "kickmail-retrieved"
struct maildir_retrieved_entry {
    char uidl[32 + 1];
    time_t when;                /* first retrieval */
};
struct maildir_retrieved {
    struct maildir_retrieved_entry *e;  /* sorted by uidl, each once */
    size_t n, cap;
};
/* Pure.  Adds each good line of buf ("UIDL EPOCH\n": 32 lower-case hex
 * digits, one space, 1-18 decimal digits) to t; a bad line, and a last line
 * without its LF (a torn write), is skipped.  A UIDL seen twice keeps its
 * earliest time.  Returns how many lines were skipped. */
size_t maildir_retrieved_parse(const char *buf, size_t len, struct maildir_retrieved *t);
/* The entry for uidl, or NULL. */
struct maildir_retrieved_entry *maildir_retrieved_find(const struct maildir_retrieved *t,
                                                       const char *uidl);
void maildir_retrieved_free(struct maildir_retrieved *t);

#endif

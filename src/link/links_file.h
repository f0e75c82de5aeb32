/*
 * links_file — the on-disk form of the link table (links.c), as pure
 * functions from struct link to bytes and back: no I/O, no table, no event
 * loop.  The table is kept in two state files of the spool
 * (spool_state.h):
 *
 * state/links, the snapshot: the whole table, replaced atomically at each
 * compaction.  Text, one line per customer in name order, LF-terminated,
 * fields separated by one TAB:
 *   # kickmail links 2 GEN
 *   CUSTOMER  UP  ADDRESS  SINCE  EXPIRES  SOURCE  SESSION
 * GEN is the snapshot's generation (decimal, from 1).  CUSTOMER follows the
 * customer name rule; UP is 0 or 1; ADDRESS is empty (never known, or up
 * without one: a customer with a fixed host) or a normalised numeric
 * address; SINCE and EXPIRES are decimal epoch seconds (EXPIRES 0 = none;
 * always 0 when down); SOURCE is a links_source_name() ("" for none);
 * SESSION is the detector's session id with '\\', bytes below 0x20 and
 * bytes from 0x7f up written as \xHH.  Other lines starting with '#' are
 * comments.  Version 1 (written by kickmaild before the journal: header
 * "# kickmail links 1", no generation, no journal) is read the same way
 * with generation 0; such a kickmaild reads version 2 as version 1 (the
 * header is a comment to it), which holds the whole table after a clean
 * stop (kickmaild compacts then).
 *
 * state/links.journal, the changes since that snapshot, appended (and
 * fdatasynced) after each batch of changes:
 *   # kickmail links-journal 1 GEN
 *   CRC  CUSTOMER  UP  ADDRESS  SINCE  EXPIRES  SOURCE  SESSION
 *   CRC  CUSTOMER  -
 * The header is written whole with the snapshot of the same GEN (replaced
 * atomically after it); a journal whose GEN is not the snapshot's is stale
 * (left by a compaction cut short) and ignored.  Each record is one line:
 * the new state of one customer's link (fields as in the snapshot), or
 * "-": the customer was forgotten (no longer configured).  CRC is 8
 * lower-case hex digits, the CRC-32 (zlib's crc32()) of the decimal GEN, a
 * TAB, and the record's bytes after CRC's TAB up to its LF (exclusive).
 * Records apply in order over the snapshot; the first record that is cut
 * short (no LF) or fails its CRC ends the journal: it and whatever follows
 * are a torn tail, ignored (logged).  A record whose CRC holds but whose
 * fields do not is skipped (logged).
 *
 * Trusts: nothing in the bytes: every field is checked, a bad line or
 * record logged and skipped; sizes are those of the buffers given.
 */
#ifndef KM_LINKS_FILE_H
#define KM_LINKS_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "link/links.h"

struct evbuffer;

#define LINKS_FILE      "links"
#define LINKS_JOURNAL   "links.journal"

/* Numeric IPv4/IPv6 → normalised text (IPv4-mapped IPv6 as IPv4).  Refuses
 * unspecified, multicast and broadcast addresses.  0 / -1. */
int links_addr_norm(const char *in, char *out, size_t outlen);

/* The session id with '\\', control bytes and bytes from 0x7f up as \xHH,
 * into out (LINKS_SESSION_ESC_LEN bytes are enough for any session id). */
#define LINKS_SESSION_ESC_LEN (4 * sizeof ((struct link *)0)->session + 1)
const char *links_session_escape(const char *s, char *out, size_t outlen);

/* customer's snapshot line for l (LF-terminated) in a new string; *len its
 * length. */
char *links_line_new(const char *customer, const struct link *l, size_t *len);
/* The snapshot's first line, LF-terminated, into out (>= 48 bytes). */
size_t links_snapshot_header(uint64_t gen, char *out, size_t outlen);
/* The journal's first line, LF-terminated, into out (>= 48 bytes). */
size_t links_journal_header(uint64_t gen, char *out, size_t outlen);
/* Appends one journal record of generation gen to out: customer's link
 * now l, or forgotten (l NULL). */
void links_record_add(struct evbuffer *out, uint64_t gen, const char *customer,
                      const struct link *l);

/* The table a snapshot and its journal give, for links_init(). */
enum links_journal_state {
    LINKS_J_NONE,               /* no journal */
    LINKS_J_OK,                 /* applied whole: appends may follow */
    LINKS_J_TORN,               /* applied up to a torn tail */
    LINKS_J_STALE,              /* another generation's (or no header): ignored */
};

struct links_image {
    uint64_t gen;               /* the snapshot's (0: version 1 or none) */
    uint64_t gen_max;           /* the highest generation seen in either file */
    size_t snap_bytes;
    enum links_journal_state journal;
    size_t journal_bytes;       /* OK/TORN: the header and the whole records */
    size_t journal_base;        /* OK/TORN: the header's length */
    size_t records;             /* journal records applied */
    size_t nlinks;
    struct link *links;         /* by customer name; .customer owned */
};

/* Parses a snapshot (snap, snaplen; may be empty) and its journal (may be
 * NULL/empty: none) into img: per customer, the last state the two give,
 * sorted by name.  Links are returned as written (expiry and address
 * conflicts are the caller's).  Bad lines and records are logged and
 * skipped.  Always succeeds; free img with links_image_free(). */
void links_image_parse(const char *snap, size_t snaplen, const char *journal,
                       size_t jlen, struct links_image *img);
void links_image_free(struct links_image *img);

#endif

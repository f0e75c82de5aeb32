/*
 * hosts — the hosts file (/etc/hosts) as a table in memory, read by
 * kickmaild when it loads its configuration (at start and at each reload,
 * off the event loop), so that no lookup reads the file on the loop: a
 * change to the file takes effect at the next reload.  The resolver asks
 * this table first, then the DNS (c-ares, which is told not to read the
 * file itself).
 *
 * Bounded: at most HOSTS_MAX_BYTES of the file and HOSTS_MAX_NAMES names
 * are used (the rest is ignored, with a warning logged); at most
 * RESOLVE_MAX_ADDRS addresses per name.
 */
#ifndef KM_HOSTS_H
#define KM_HOSTS_H

#include "core/resolve.h"

#define HOSTS_PATH       "/etc/hosts"
#define HOSTS_MAX_BYTES  (4 * 1024 * 1024)
#define HOSTS_MAX_NAMES  200000

struct hosts;

/* Reads and parses a hosts file (path NULL: $KICKMAIL_TEST_HOSTS when set,
 * for tests, else HOSTS_PATH): lines "ADDRESS NAME [ALIAS...]", '#' starts
 * a comment, lines with an address that is not numeric IPv4 or IPv6 are
 * skipped.  Blocks: call it off the loop.  Never NULL: a missing or
 * unreadable file gives an empty table (unreadable: a warning logged). */
struct hosts *hosts_load(const char *path);
void hosts_free(struct hosts *h);
/* The addresses of name (case-insensitive; the names and aliases of every
 * line that has it, in the file's order, duplicates dropped): 0, or -1 when
 * the file does not name it (h NULL: never). */
int hosts_lookup(const struct hosts *h, const char *name, struct resolve_result *out);
/* Names in the table (for the log line at load). */
size_t hosts_count(const struct hosts *h);

#endif

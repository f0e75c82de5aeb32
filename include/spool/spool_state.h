/*
 * spool_state — state files: small named files under SPOOL/state/ (customer
 * holds, the link table), each replaced whole and atomically (NAME.tmp,
 * fsync, rename over NAME, fsync state/) or appended to (write, fdatasync),
 * and read whole at start.  Writes run off the loop (on the spool's aux
 * thread, in the order they were asked for, appends and replacements
 * alike); the callback runs on the loop.  The handle is the spool's
 * (spool_open() in spool.h); the module knows nothing of what the files hold.
 *
 * A name is 1..128 of [A-Za-z0-9._-], not starting with '.', not ending in
 * ".tmp"; any other name is refused (EINVAL) and nothing is touched.
 */
#ifndef KM_SPOOL_STATE_H
#define KM_SPOOL_STATE_H

#include <stddef.h>

struct evbuffer;
struct spool;

/* err: 0 (the new contents are durable) or an errno (logged; the new
 * contents may not be). */
typedef void spool_state_cb(int err, void *arg);

/* Replaces state/NAME with len bytes of data (copied at once). */
void spool_state_write(struct spool *sp, const char *name, const void *data,
                       size_t len, spool_state_cb *cb, void *arg);
/* Appends len bytes of data (copied at once) to state/NAME, which must exist
 * (ENOENT otherwise: a file to append to is made by spool_state_write(), so
 * that its first bytes are never torn), and fdatasyncs it.  A failed append
 * is cut off again (ftruncate to the old length, best effort): err then
 * says the bytes may or may not be there. */
void spool_state_append(struct spool *sp, const char *name, const void *data,
                        size_t len, spool_state_cb *cb, void *arg);
/* Synchronous, for start-up: 0 (out filled; nothing added when the file is
 * absent) or -1 with errno set. */
int spool_state_read(struct spool *sp, const char *name, struct evbuffer *out);

#endif

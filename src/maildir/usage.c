/*
 * usage — bytes, messages, oldest delivery and last login per maildrop, in
 * memory: one hash table keyed by the drop's name (lower-cased, looked up
 * without regard to case) behind one mutex.  Quota checks at RCPT read it
 * on the event loop; local delivery, POP3 sessions and the start-up scan
 * (maildir_usage_scan, in a worker thread) write it.
 *
 * Trusts: its callers' figures (a removal larger than what is known clamps
 * at zero rather than wrapping).  Guarantees: every call but
 * maildir_usage_scan is O(1) under the lock and never touches the disk (the
 * scan lists each maildir without the lock and takes it only to store the
 * result); "oldest" is exact after maildir_usage_set() and after additions;
 * when a removal may have taken the oldest message it stays at the removed
 * message's time (an age never under-reported) until the next set(), and
 * goes to 0 when the drop is empty.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "maildir/maildir.h"
#include "maildir_int.h"

struct usage_entry {
    char *name;                 /* lower-case; the table's key */
    struct maildir_usage u;
};

static pthread_mutex_t usage_lock = PTHREAD_MUTEX_INITIALIZER;
static struct hmap *usage_table;    /* name -> struct usage_entry */

/* The entry for drop, made when missing.  Under the lock. */
static struct usage_entry *entry(const char *drop)
{
    struct usage_entry *e;
    if (!usage_table)
        usage_table = hmap_new(1);
    if ((e = hmap_get(usage_table, drop)))
        return e;
    e = xcalloc(1, sizeof *e);
    e->name = util_lower(xstrdup(drop));
    hmap_put(usage_table, e->name, e);
    return e;
}

void maildir_usage_get(const char *drop, struct maildir_usage *u)
{
    struct usage_entry *e = NULL;
    memset(u, 0, sizeof *u);
    if (!drop)
        return;
    pthread_mutex_lock(&usage_lock);
    if (usage_table && (e = hmap_get(usage_table, drop)))
        *u = e->u;
    pthread_mutex_unlock(&usage_lock);
}

/* v + d, clamped at 0 and at UINT64_MAX. */
static uint64_t add_clamped(uint64_t v, int64_t d)
{
    if (d < 0)
        return (uint64_t)-(d + 1) + 1 > v ? 0 : v - ((uint64_t)-(d + 1) + 1);
    return UINT64_MAX - v < (uint64_t)d ? UINT64_MAX : v + (uint64_t)d;
}

void maildir_usage_add(const char *drop, int64_t bytes, int64_t messages, time_t mtime)
{
    struct usage_entry *e;
    if (!drop)
        return;
    pthread_mutex_lock(&usage_lock);
    e = entry(drop);
    e->u.bytes = add_clamped(e->u.bytes, bytes);
    e->u.messages = add_clamped(e->u.messages, messages);
    if (e->u.messages == 0) {
        e->u.oldest = 0;
        e->u.bytes = 0;
    } else if (messages > 0 && mtime > 0 && (e->u.oldest == 0 || mtime < e->u.oldest)) {
        e->u.oldest = mtime;
    }
    pthread_mutex_unlock(&usage_lock);
}

void maildir_usage_set(const char *drop, const struct maildir_list *l)
{
    struct usage_entry *e;
    time_t oldest = 0;
    if (!drop || !l)
        return;
    for (size_t i = 0; i < l->n; i++)       /* the list is sorted: to be sure */
        if (oldest == 0 || (l->msgs[i].mtime > 0 && l->msgs[i].mtime < oldest))
            oldest = l->msgs[i].mtime;
    pthread_mutex_lock(&usage_lock);
    e = entry(drop);
    e->u.bytes = l->bytes;
    e->u.messages = l->n;
    e->u.oldest = oldest;
    pthread_mutex_unlock(&usage_lock);
}

void maildir_usage_login(const char *drop, time_t when)
{
    if (!drop)
        return;
    pthread_mutex_lock(&usage_lock);
    entry(drop)->u.last_login = when;
    pthread_mutex_unlock(&usage_lock);
}

int maildir_usage_scan(const char *root, const char *const *drops, size_t n,
                       char *why, size_t whylen)
{
    char dir[4096], err[512];
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        struct maildir_list l;
        if (!drops[i])
            continue;
        if (maildir_path(root, drops[i], dir, sizeof dir) < 0) {
            if (rc == 0)
                rc = util_fail(why, whylen, "maildrop \"%s\": not a safe name", drops[i]);
            continue;
        }
        if (maildir_scan(dir, &l, err, sizeof err) < 0) {
            if (rc == 0)
                rc = util_fail(why, whylen, "%s", err);
            continue;
        }
        maildir_usage_set(drops[i], &l);
        maildir_list_free(&l);
    }
    return rc;
}

void maildir_usage_clear(void)
{
    size_t pos = 0;
    const char *key;
    void *val;
    pthread_mutex_lock(&usage_lock);
    if (usage_table) {
        while (hmap_next(usage_table, &pos, &key, &val)) {
            struct usage_entry *e = val;
            free(e->name);
            free(e);
        }
        hmap_free(usage_table);
        usage_table = NULL;
    }
    pthread_mutex_unlock(&usage_lock);
}

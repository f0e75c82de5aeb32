/*
 * util — small helpers shared by every module: number/duration/size parsing,
 * strings, a string-keyed hash map, time.
 */
#ifndef KM_UTIL_H
#define KM_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Durations: "300", "30s", "5m", "12h", "5d". 0 / -1 (bad syntax or overflow). */
int util_parse_duration(const char *s, long *secs);
/* Sizes: "10240000", "500k", "500M", "1G" (powers of 1024). 0 / -1. */
int util_parse_size(const char *s, uint64_t *bytes);
/* "HOST:PORT" or "[V6]:PORT" → host (no brackets) and port. 0 / -1.
 * host must have room for hostlen bytes. */
int util_parse_hostport(const char *s, char *host, size_t hostlen, int *port);
/* 1 when s is a numeric IPv4 or IPv6 address (no brackets, no port). */
int util_numeric_ip(const char *s);
/* 1 when name can tell a host from others: a dotted name that is not
 * localhost, localhost.localdomain and the like, nor an address (literal).
 * Many hosts share "localhost" or a bare name; an equal one proves no loop. */
int util_is_fqdn(const char *name);

/* Writes the formatted reason into err (when errlen > 0) and returns -1: the
 * house convention "return 0 / -1 with the reason in an out-parameter". */
int util_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Allocation that aborts on out-of-memory (log_fatal). */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t m);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Lower-cases s in place; returns s. ASCII only. */
char *util_lower(char *s);

/* Monotonic and wall clock. */
double util_now_mono(void);     /* seconds, CLOCK_MONOTONIC */
int64_t util_now_us(void);      /* microseconds since the epoch */

/*
 * hmap — open-addressing hash map from NUL-terminated keys (compared
 * case-insensitively when created with icase) to pointers. Keys are not
 * copied: the caller keeps them alive while they are in the map (usually the
 * key lives inside the value).
 */
/* Peer text for a log line into dst (size > 4): printable ASCII as it is,
 * other bytes and the separators '<', '>' and ',' as \xHH; cut short
 * rather than overflow.  Returns dst. */
const char *util_log_safe(char *dst, size_t size, const char *src);
/* Wipes a secret string (explicit_bzero) and frees it; NULL is fine. */
void util_wipe_free(char *p);

struct hmap;
struct hmap *hmap_new(int icase);
void hmap_free(struct hmap *m);
/* Inserts or replaces; returns the previous value or NULL. */
void *hmap_put(struct hmap *m, const char *key, void *val);
void *hmap_get(const struct hmap *m, const char *key);
/* Removes; returns the removed value or NULL. */
void *hmap_del(struct hmap *m, const char *key);
size_t hmap_count(const struct hmap *m);
/* Iteration: *pos starts at 0; returns 0 at the end. Do not insert while iterating. */
int hmap_next(const struct hmap *m, size_t *pos, const char **key, void **val);

#endif

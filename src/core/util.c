/*
 * util — parsing of durations, sizes and listen addresses; allocation that
 * aborts on out-of-memory; clocks; a small open-addressing hash map.
 * Inputs are configuration or peer strings: every parse checks overflow.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/log.h"
#include "core/util.h"

static int parse_scaled(const char *s, uint64_t *out, const char *units,
                        const uint64_t *mult)
{
    const char *p = s;
    uint64_t v = 0;
    if (!s || !isdigit((unsigned char)*p))
        return -1;
    while (isdigit((unsigned char)*p)) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
        p++;
    }
    if (*p) {
        const char *u = strchr(units, *p);
        if (!u || p[1])
            return -1;
        uint64_t m = mult[u - units];
        if (v && m > UINT64_MAX / v)
            return -1;
        v *= m;
    }
    *out = v;
    return 0;
}

int util_parse_duration(const char *s, long *secs)
{
    static const uint64_t mult[] = {1, 60, 3600, 86400};
    uint64_t v;
    if (parse_scaled(s, &v, "smhd", mult) < 0 || v > LONG_MAX)
        return -1;
    *secs = (long)v;
    return 0;
}

int util_parse_size(const char *s, uint64_t *bytes)
{
    static const uint64_t mult[] = {1024, 1024, 1024 * 1024, 1024 * 1024 * 1024};
    return parse_scaled(s, bytes, "kKMG", mult);
}

int util_parse_hostport(const char *s, char *host, size_t hostlen, int *port)
{
    const char *colon, *h = s;
    size_t hl;
    if (!s || !*s)
        return -1;
    if (*s == '[') {
        const char *end = strchr(s, ']');
        if (!end || end[1] != ':')
            return -1;
        h = s + 1;
        hl = (size_t)(end - h);
        colon = end + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || memchr(s, ':', (size_t)(colon - s)))
            return -1;      /* bare IPv6 must be bracketed */
        hl = (size_t)(colon - s);
    }
    if (hl == 0 || hl >= hostlen)
        return -1;
    const char *p = colon + 1;
    long v = 0;
    if (!*p)
        return -1;
    for (; *p; p++) {
        if (!isdigit((unsigned char)*p))
            return -1;
        v = v * 10 + (*p - '0');
        if (v > 65535)
            return -1;
    }
    if (v == 0)
        return -1;
    memcpy(host, h, hl);
    host[hl] = 0;
    *port = (int)v;
    return 0;
}

int util_fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (errlen == 0)
        return -1;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        log_fatal("out of memory (%zu bytes)", n);
    return p;
}

void *xcalloc(size_t n, size_t m)
{
    void *p = calloc(n ? n : 1, m ? m : 1);
    if (!p)
        log_fatal("out of memory (%zu x %zu bytes)", n, m);
    return p;
}

void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p)
        log_fatal("out of memory (%zu bytes)", n);
    return p;
}

char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

char *util_lower(char *s)
{
    for (char *p = s; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return s;
}

double util_now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int util_numeric_ip(const char *s)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

int util_is_fqdn(const char *name)
{
    if (!strchr(name, '.') || name[0] == '[' || util_numeric_ip(name))
        return 0;
    return strncasecmp(name, "localhost", 9) != 0;
}

int64_t util_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- hmap: linear probing, power-of-two capacity, tombstones ---- */

struct hslot {
    const char *key;        /* NULL: empty; TOMB: deleted */
    void *val;
    uint32_t hash;
};

struct hmap {
    struct hslot *slots;
    size_t cap, count, used;   /* used = count + tombstones */
    int icase;
};

static const char tomb_mark;
#define TOMB (&tomb_mark)

static uint32_t hmap_hash(const char *k, int icase)
{
    uint32_t h = 2166136261u;          /* FNV-1a */
    for (; *k; k++) {
        unsigned char c = (unsigned char)*k;
        if (icase)
            c = (unsigned char)tolower(c);
        h = (h ^ c) * 16777619u;
    }
    return h;
}

static int hmap_eq(const struct hmap *m, const char *a, const char *b)
{
    return m->icase ? strcasecmp(a, b) == 0 : strcmp(a, b) == 0;
}

struct hmap *hmap_new(int icase)
{
    struct hmap *m = xcalloc(1, sizeof *m);
    m->icase = icase;
    m->cap = 16;
    m->slots = xcalloc(m->cap, sizeof *m->slots);
    return m;
}

void hmap_free(struct hmap *m)
{
    if (!m)
        return;
    free(m->slots);
    free(m);
}

static struct hslot *hmap_find(const struct hmap *m, const char *key, uint32_t h)
{
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        struct hslot *s = &m->slots[i];
        if (!s->key)
            return NULL;
        if (s->key != TOMB && s->hash == h && hmap_eq(m, s->key, key))
            return s;
    }
}

static void hmap_grow(struct hmap *m)
{
    struct hslot *old = m->slots;
    size_t oldcap = m->cap;
    if (m->count * 2 >= m->cap)
        m->cap *= 2;
    m->slots = xcalloc(m->cap, sizeof *m->slots);
    m->used = m->count;
    for (size_t i = 0; i < oldcap; i++) {
        if (!old[i].key || old[i].key == TOMB)
            continue;
        size_t mask = m->cap - 1, j = old[i].hash & mask;
        while (m->slots[j].key)
            j = (j + 1) & mask;
        m->slots[j] = old[i];
    }
    free(old);
}

void *hmap_put(struct hmap *m, const char *key, void *val)
{
    uint32_t h = hmap_hash(key, m->icase);
    struct hslot *s = hmap_find(m, key, h);
    if (s) {
        void *prev = s->val;
        s->key = key;
        s->val = val;
        return prev;
    }
    if ((m->used + 1) * 4 >= m->cap * 3)
        hmap_grow(m);
    size_t mask = m->cap - 1, i = h & mask;
    while (m->slots[i].key && m->slots[i].key != TOMB)
        i = (i + 1) & mask;
    if (!m->slots[i].key)
        m->used++;
    m->slots[i].key = key;
    m->slots[i].val = val;
    m->slots[i].hash = h;
    m->count++;
    return NULL;
}

void *hmap_get(const struct hmap *m, const char *key)
{
    struct hslot *s = hmap_find(m, key, hmap_hash(key, m->icase));
    return s ? s->val : NULL;
}

void *hmap_del(struct hmap *m, const char *key)
{
    struct hslot *s = hmap_find(m, key, hmap_hash(key, m->icase));
    if (!s)
        return NULL;
    void *v = s->val;
    s->key = TOMB;
    s->val = NULL;
    m->count--;
    return v;
}

size_t hmap_count(const struct hmap *m)
{
    return m->count;
}

int hmap_next(const struct hmap *m, size_t *pos, const char **key, void **val)
{
    while (*pos < m->cap) {
        struct hslot *s = &m->slots[(*pos)++];
        if (s->key && s->key != TOMB) {
            if (key)
                *key = s->key;
            if (val)
                *val = s->val;
            return 1;
        }
    }
    return 0;
}

const char *util_log_safe(char *dst, size_t size, const char *src)
{
    size_t o = 0;
    for (; *src && o + 5 <= size; src++) {
        unsigned char c = (unsigned char)*src;
        if (c > 0x20 && c < 0x7f && c != '<' && c != '>' && c != ',')
            dst[o++] = (char)c;
        else
            o += (size_t)snprintf(dst + o, size - o, "\\x%02x", c);
    }
    dst[o] = '\0';
    return dst;
}

void util_wipe_free(char *p)
{
    if (p) {
        explicit_bzero(p, strlen(p));
        free(p);
    }
}

/*
 * hosts — reads the hosts file once (at start and at reload, in the thread
 * that loads the configuration) into a hash table by name, so that lookups
 * never read it on the event loop.
 *
 * Trusts nothing in the file: lines are split on blanks, the address must
 * parse as numeric IPv4 or IPv6 (inet_pton) or the line is skipped, names
 * are kept as they are (looked up case-insensitively).  Bounded: at most
 * HOSTS_MAX_BYTES are read (a line cut there is dropped) and at most
 * HOSTS_MAX_NAMES names kept, each with at most RESOLVE_MAX_ADDRS
 * addresses; what goes over is ignored and logged once.  Guarantees:
 * hosts_load never fails (an empty table at worst) and the table is not
 * changed after it, so that the loop may read it while a reload builds
 * the next one.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/hosts.h"
#include "core/log.h"
#include "core/util.h"

struct hosts_addr {
    int family;                     /* AF_INET or AF_INET6 */
    unsigned char a[sizeof(struct in6_addr)];
};

struct hosts_entry {
    unsigned n;
    struct hosts_addr addr[RESOLVE_MAX_ADDRS];
    char name[];                    /* the hmap's key */
};

struct hosts {
    struct hmap *names;             /* name -> struct hosts_entry */
};

/* The file's first HOSTS_MAX_BYTES, NUL-terminated, cut after the last
 * whole line when there was more; NULL when it cannot be read. */
static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        if (errno != ENOENT)
            log_warn("hosts: %s: %s; names are looked up in the DNS only", path,
                     strerror(errno));
        return NULL;
    }
    char *buf = xmalloc((size_t)HOSTS_MAX_BYTES + 2);
    size_t n = fread(buf, 1, (size_t)HOSTS_MAX_BYTES + 1, f);
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        log_warn("hosts: %s: read error; names are looked up in the DNS only", path);
        free(buf);
        return NULL;
    }
    if (n > HOSTS_MAX_BYTES) {
        n = HOSTS_MAX_BYTES;
        while (n > 0 && buf[n - 1] != '\n')
            n--;
        log_warn("hosts: %s is larger than %d bytes: only its first %zu bytes are used",
                 path, HOSTS_MAX_BYTES, n);
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

static void entry_add(struct hosts_entry *e, const struct hosts_addr *a)
{
    for (unsigned i = 0; i < e->n; i++)
        if (e->addr[i].family == a->family && !memcmp(e->addr[i].a, a->a, sizeof a->a))
            return;
    if (e->n < RESOLVE_MAX_ADDRS)
        e->addr[e->n++] = *a;
}

/* One line (NUL-terminated, comment removed): 0, or -1 when the table is full. */
static int parse_line(struct hosts *h, char *line)
{
    static const char blank[] = " \t\r\v\f";
    char *save = NULL, *tok = strtok_r(line, blank, &save);
    struct hosts_addr a;
    if (!tok)
        return 0;
    memset(&a, 0, sizeof a);
    if (inet_pton(AF_INET, tok, a.a) == 1)
        a.family = AF_INET;
    else if (inet_pton(AF_INET6, tok, a.a) == 1)
        a.family = AF_INET6;
    else
        return 0;                   /* not an address: skipped, as c-ares does */
    while ((tok = strtok_r(NULL, blank, &save))) {
        struct hosts_entry *e = hmap_get(h->names, tok);
        if (!e) {
            if (hmap_count(h->names) >= HOSTS_MAX_NAMES)
                return -1;
            size_t len = strlen(tok);
            e = xcalloc(1, sizeof *e + len + 1);
            memcpy(e->name, tok, len + 1);
            hmap_put(h->names, e->name, e);
        }
        entry_add(e, &a);
    }
    return 0;
}

struct hosts *hosts_load(const char *path)
{
    struct hosts *h = xcalloc(1, sizeof *h);
    h->names = hmap_new(1);
    if (!path)
        path = getenv("KICKMAIL_TEST_HOSTS");
    if (!path)
        path = HOSTS_PATH;
    size_t len = 0;
    char *buf = read_file(path, &len);
    if (!buf)
        return h;
    char *p = buf, *end = buf + len;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *next = nl ? nl + 1 : end;
        if (nl)
            *nl = '\0';
        char *hash = strchr(p, '#');
        if (hash)
            *hash = '\0';
        if (parse_line(h, p) < 0) {
            log_warn("hosts: %s names more than %d hosts: the rest are ignored", path,
                     HOSTS_MAX_NAMES);
            break;
        }
        p = next;
    }
    free(buf);
    return h;
}

void hosts_free(struct hosts *h)
{
    if (!h)
        return;
    size_t pos = 0;
    const char *key;
    void *val;
    while (hmap_next(h->names, &pos, &key, &val))
        free(val);
    hmap_free(h->names);
    free(h);
}

int hosts_lookup(const struct hosts *h, const char *name, struct resolve_result *out)
{
    const struct hosts_entry *e = h ? hmap_get(h->names, name) : NULL;
    if (!e || e->n == 0)
        return -1;
    out->n = 0;
    for (unsigned i = 0; i < e->n; i++)
        if (inet_ntop(e->addr[i].family, e->addr[i].a, out->addr[out->n],
                      sizeof out->addr[0]))
            out->n++;
    return out->n ? 0 : -1;
}

size_t hosts_count(const struct hosts *h)
{
    return h ? hmap_count(h->names) : 0;
}

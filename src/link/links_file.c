/*
 * links_file — the link table's files as bytes (format in links_file.h):
 * formats snapshot lines, headers and journal records, and parses a
 * snapshot with its journal back into the table they describe.  Pure: it
 * reads and writes memory only, and logs what it skips.
 *
 * Trusts: nothing in the bytes it parses.  Every line is split into exactly
 * its fields, each field checked (customer name rule, numeric address,
 * decimal times, known source, session escapes); a journal record counts
 * only whole (LF-terminated) with the right CRC-32 for the journal's
 * generation, and the first one that is not ends the journal (a torn tail).
 * Guarantees: links_image_parse() gives each customer at most once, with
 * the last state the snapshot and the whole records of a journal of the
 * same generation give, in name order; a journal of another generation
 * changes nothing.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <zlib.h>

#include "core/config.h"
#include "core/log.h"
#include "core/util.h"
#include "link/links.h"
#include "links_file.h"

#define SNAP_MAGIC      "# kickmail links "
#define JOURNAL_MAGIC   "# kickmail links-journal "
#define LINE_FIELDS     7
#define CRC_LEN         8

int links_addr_norm(const char *in, char *out, size_t outlen)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET6, in, &a6) == 1) {
        if (IN6_IS_ADDR_V4MAPPED(&a6)) {
            memcpy(&a4, a6.s6_addr + 12, 4);
        } else {
            if (IN6_IS_ADDR_UNSPECIFIED(&a6) || IN6_IS_ADDR_MULTICAST(&a6))
                return -1;
            return inet_ntop(AF_INET6, &a6, out, (socklen_t)outlen) ? 0 : -1;
        }
    } else if (inet_pton(AF_INET, in, &a4) != 1) {
        return -1;
    }
    uint32_t h = ntohl(a4.s_addr);
    if (h == 0 || h == 0xffffffffu || (h >> 28) == 0xe)
        return -1;
    return inet_ntop(AF_INET, &a4, out, (socklen_t)outlen) ? 0 : -1;
}

/* ---- writing ---- */

const char *links_session_escape(const char *s, char *out, size_t outlen)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;
    for (; *s && n + 5 <= outlen; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '\\' || c < 0x20 || c >= 0x7f) {
            out[n++] = '\\';
            out[n++] = 'x';
            out[n++] = hex[c >> 4];
            out[n++] = hex[c & 15];
        } else {
            out[n++] = (char)c;
        }
    }
    out[n] = 0;
    return out;
}

/* The fields of a snapshot line, without LF, into a new string. */
static char *fields_new(const char *customer, const struct link *l, int *len)
{
    char sess[LINKS_SESSION_ESC_LEN], *s;
    *len = asprintf(&s, "%s\t%d\t%s\t%" PRId64 "\t%" PRId64 "\t%s\t%s",
                    customer, l->up ? 1 : 0, l->address, l->since, l->expires,
                    links_source_name(l->source),
                    links_session_escape(l->session, sess, sizeof sess));
    if (*len < 0)
        log_fatal("links: out of memory");
    return s;
}

char *links_line_new(const char *customer, const struct link *l, size_t *len)
{
    int n;
    char *s = fields_new(customer, l, &n);
    s = xrealloc(s, (size_t)n + 2);
    s[n] = '\n';
    s[n + 1] = 0;
    *len = (size_t)n + 1;
    return s;
}

size_t links_snapshot_header(uint64_t gen, char *out, size_t outlen)
{
    int n = snprintf(out, outlen, SNAP_MAGIC "2 %" PRIu64 "\n", gen);
    return n < 0 ? 0 : (size_t)n;
}

size_t links_journal_header(uint64_t gen, char *out, size_t outlen)
{
    int n = snprintf(out, outlen, JOURNAL_MAGIC "1 %" PRIu64 "\n", gen);
    return n < 0 ? 0 : (size_t)n;
}

/* The CRC-32 of a record: over "GEN\t" and the record's text after its CRC
 * and TAB. */
static uint32_t record_crc(uint64_t gen, const char *text, size_t len)
{
    char g[32];
    int n = snprintf(g, sizeof g, "%" PRIu64 "\t", gen);
    uLong crc = crc32(0L, (const Bytef *)g, (uInt)n);
    return (uint32_t)crc32(crc, (const Bytef *)text, (uInt)len);
}

void links_record_add(struct evbuffer *out, uint64_t gen, const char *customer,
                      const struct link *l)
{
    int n;
    char *text;
    if (l) {
        text = fields_new(customer, l, &n);
    } else if ((n = asprintf(&text, "%s\t-", customer)) < 0) {
        log_fatal("links: out of memory");
    }
    evbuffer_add_printf(out, "%08" PRIx32 "\t", record_crc(gen, text, (size_t)n));
    evbuffer_add(out, text, (size_t)n);
    evbuffer_add(out, "\n", 1);
    free(text);
}

/* ---- parsing ---- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The inverse of links_session_escape into out[outlen].  0 / -1. */
static int session_unescape(const char *s, char *out, size_t outlen)
{
    size_t n = 0;
    for (; *s; s++) {
        int c = (unsigned char)*s;
        if (c == '\\') {
            int hi, lo;
            if (s[1] != 'x' || (hi = hexval(s[2])) < 0 || (lo = hexval(s[3])) < 0)
                return -1;
            c = hi * 16 + lo;
            s += 3;
            if (c == 0)
                return -1;
        } else if (c < 0x20 || c == 0x7f) {
            return -1;
        }
        if (n + 1 >= outlen)
            return -1;
        out[n++] = (char)c;
    }
    out[n] = 0;
    return 0;
}

static int parse_u64(const char *s, uint64_t *v)
{
    char *end;
    unsigned long long x;
    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    x = strtoull(s, &end, 10);
    if (errno || *end)
        return -1;
    *v = x;
    return 0;
}

static int parse_i64(const char *s, int64_t *v)
{
    uint64_t x;
    if (parse_u64(s, &x) < 0 || x > INT64_MAX)
        return -1;
    *v = (int64_t)x;
    return 0;
}

static int parse_source(const char *s, enum link_source *src)
{
    for (int i = LINK_SRC_NONE; i <= LINK_SRC_EXPIRY; i++)
        if (strcmp(s, links_source_name((enum link_source)i)) == 0) {
            *src = (enum link_source)i;
            return 0;
        }
    return -1;
}

/* Splits line at TABs into at most max fields (in place); their count, or
 * -1 when there are more. */
static int split_fields(char *line, char **f, int max)
{
    int n = 0;
    for (char *p = line;; p++) {
        if (*p == '\t' || *p == 0) {
            if (n == max)
                return -1;
            f[n++] = line;
            if (*p == 0)
                break;
            *p = 0;
            line = p + 1;
        }
    }
    return n;
}

/* The fields of one line (f[0] the customer) → *v.  NULL or what is wrong. */
static const char *parse_fields(char **f, int n, struct link *v)
{
    const char *why;
    memset(v, 0, sizeof *v);
    if (n != LINE_FIELDS)
        return "not 7 fields";
    if ((why = config_check_customer_name(f[0])) != NULL)
        return why;
    if (strcmp(f[1], "0") != 0 && strcmp(f[1], "1") != 0)
        return "bad state";
    v->up = f[1][0] == '1';
    if (f[2][0] && links_addr_norm(f[2], v->address, sizeof v->address) < 0)
        return "bad address";
    if (parse_i64(f[3], &v->since) < 0 || parse_i64(f[4], &v->expires) < 0)
        return "bad time";
    if (!v->up && v->expires)
        return "expiry on a link down";
    if (parse_source(f[5], &v->source) < 0)
        return "unknown source";
    if (session_unescape(f[6], v->session, sizeof v->session) < 0)
        return "bad session id";
    return NULL;
}

/* The next line of buf[*pos..len) (without LF) as a new string; *whole: it
 * ended in LF.  NULL at the end. */
static char *next_line(const char *buf, size_t len, size_t *pos, size_t *linelen,
                       int *whole)
{
    const char *p, *nl;
    char *line;
    if (*pos >= len)
        return NULL;
    p = buf + *pos;
    nl = memchr(p, '\n', len - *pos);
    *linelen = nl ? (size_t)(nl - p) : len - *pos;
    *whole = nl != NULL;
    line = xmalloc(*linelen + 1);
    memcpy(line, p, *linelen);
    line[*linelen] = 0;
    *pos += *linelen + (nl ? 1 : 0);
    return line;
}

/* "MAGIC VERSION GEN" (or "MAGIC 1" for a version-1 snapshot): 0 with
 * *version and *gen, or -1. */
static int header_parse(const char *line, const char *magic, uint64_t *version,
                        uint64_t *gen)
{
    char *f[3], buf[64];
    int n;
    size_t ml = strlen(magic);
    if (strncmp(line, magic, ml) != 0 || strlen(line + ml) >= sizeof buf)
        return -1;
    snprintf(buf, sizeof buf, "%s", line + ml);
    for (char *p = buf; *p; p++)
        if (*p == ' ')
            *p = '\t';
    n = split_fields(buf, f, 3);
    if (n < 1 || n > 2 || parse_u64(f[0], version) < 0)
        return -1;
    *gen = 0;
    if (n == 2 && parse_u64(f[1], gen) < 0)
        return -1;
    return 0;
}

/* The table being built: customer → struct link (customer owned). */
static void staged_put(struct hmap *m, const char *customer, const struct link *v)
{
    struct link *l = hmap_get(m, customer);
    if (!l) {
        l = xmalloc(sizeof *l);
        *l = *v;
        l->customer = xstrdup(customer);
        hmap_put(m, l->customer, l);
        return;
    }
    char *name = l->customer;
    *l = *v;
    l->customer = name;
}

static void staged_del(struct hmap *m, const char *customer)
{
    struct link *l = hmap_del(m, customer);
    if (l) {
        free(l->customer);
        free(l);
    }
}

static void snapshot_parse(const char *buf, size_t len, struct hmap *m,
                           struct links_image *img)
{
    size_t pos = 0, lineno = 0, n;
    uint64_t version;
    int whole;
    char *line, *f[LINE_FIELDS];
    struct link v;
    const char *why;

    while ((line = next_line(buf, len, &pos, &n, &whole)) != NULL) {
        lineno++;
        if (lineno == 1 && (header_parse(line, SNAP_MAGIC, &version, &img->gen) < 0 ||
                            version != 2))
            img->gen = 0;       /* version 1 (or none): no journal applies */
        if (n == 0 || line[0] == '#') {
            free(line);
            continue;
        }
        if (strlen(line) != n)
            why = "NUL byte";
        else if ((why = parse_fields(f, split_fields(line, f, LINE_FIELDS), &v)) == NULL &&
                 hmap_get(m, f[0]))
            why = "customer listed twice";
        if (why)
            log_warn("links: state/%s line %zu ignored: %s", LINKS_FILE, lineno, why);
        else
            staged_put(m, f[0], &v);
        free(line);
    }
}

/* One whole line of the journal after its header: 1 applied, 0 skipped
 * (its CRC holds but not its fields), -1 not a record (the torn tail). */
static int record_apply(char *line, size_t n, uint64_t gen, struct hmap *m, size_t off)
{
    char *f[LINE_FIELDS], *end;
    struct link v;
    const char *why;
    int nf;
    if (n < CRC_LEN + 1 || line[CRC_LEN] != '\t' || strlen(line) != n)
        return -1;
    for (int i = 0; i < CRC_LEN; i++)
        if (hexval(line[i]) < 0)
            return -1;
    unsigned long crc = strtoul(line, &end, 16);
    if (end != line + CRC_LEN ||
        crc != record_crc(gen, line + CRC_LEN + 1, n - CRC_LEN - 1))
        return -1;
    nf = split_fields(line + CRC_LEN + 1, f, LINE_FIELDS);
    if (nf == 2 && strcmp(f[1], "-") == 0 && !config_check_customer_name(f[0])) {
        staged_del(m, f[0]);
        return 1;
    }
    if ((why = parse_fields(f, nf, &v)) != NULL) {
        log_warn("links: state/%s record at offset %zu ignored: %s", LINKS_JOURNAL, off,
                 why);
        return 0;
    }
    staged_put(m, f[0], &v);
    return 1;
}

static void journal_parse(const char *buf, size_t len, struct hmap *m,
                          struct links_image *img)
{
    size_t pos = 0, n, off;
    uint64_t version, gen;
    int whole, r;
    char *line = next_line(buf, len, &pos, &n, &whole);

    if (!line || !whole || header_parse(line, JOURNAL_MAGIC, &version, &gen) < 0 ||
        version != 1) {
        log_warn("links: state/%s has no valid header: ignored", LINKS_JOURNAL);
        img->journal = LINKS_J_STALE;
        free(line);
        return;
    }
    free(line);
    if (gen > img->gen_max)
        img->gen_max = gen;
    if (gen != img->gen && img->snap_bytes == 0) {
        log_warn("links: state/%s without state/%s: ignored", LINKS_JOURNAL, LINKS_FILE);
        img->journal = LINKS_J_STALE;
        return;
    }
    if (gen != img->gen || gen == 0) {
        log_info("links: state/%s (generation %" PRIu64 ") is not state/%s's (%" PRIu64
                 "): ignored (a newer snapshot holds its changes)", LINKS_JOURNAL, gen,
                 LINKS_FILE, img->gen);
        img->journal = LINKS_J_STALE;
        return;
    }
    img->journal = LINKS_J_OK;
    img->journal_bytes = img->journal_base = pos;
    for (off = pos; (line = next_line(buf, len, &pos, &n, &whole)) != NULL; off = pos) {
        r = whole ? record_apply(line, n, gen, m, off) : -1;
        free(line);
        if (r < 0) {
            log_warn("links: state/%s: %zu bytes from offset %zu ignored: a record cut "
                     "short or failing its CRC (a torn write)", LINKS_JOURNAL, len - off, off);
            img->journal = LINKS_J_TORN;
            return;
        }
        img->records += (size_t)r;
        img->journal_bytes = pos;
    }
}

static int link_cmp(const void *a, const void *b)
{
    return strcmp(((const struct link *)a)->customer, ((const struct link *)b)->customer);
}

void links_image_parse(const char *snap, size_t snaplen, const char *journal,
                       size_t jlen, struct links_image *img)
{
    struct hmap *m = hmap_new(0);
    size_t pos = 0, n = 0;
    void *v;

    memset(img, 0, sizeof *img);
    img->snap_bytes = snaplen;
    if (snaplen)
        snapshot_parse(snap, snaplen, m, img);
    img->gen_max = img->gen;
    if (journal && jlen)
        journal_parse(journal, jlen, m, img);
    img->links = xcalloc(hmap_count(m) + 1, sizeof *img->links);
    while (hmap_next(m, &pos, NULL, &v)) {
        img->links[n++] = *(struct link *)v;
        free(v);
    }
    img->nlinks = n;
    qsort(img->links, n, sizeof *img->links, link_cmp);
    hmap_free(m);
}

void links_image_free(struct links_image *img)
{
    for (size_t i = 0; i < img->nlinks; i++)
        free(img->links[i].customer);
    free(img->links);
    memset(img, 0, sizeof *img);
}

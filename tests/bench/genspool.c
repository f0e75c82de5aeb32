/*
 * genspool — writes a kickmail spool full of held mail, for the scale
 * benchmark (issue 4, benchmark 4): N small messages spread round-robin over
 * M customers, as MSG records in journal segments, through the real record
 * format (spool_meta_msg_encode() + spool_rec_build() of spool_record.h), so
 * that kickmaild's restart-to-serving time and index memory can be measured
 * without pushing a million messages through SMTP.
 *
 *   genspool [-s BYTES] [-p PREFIX] [-c CONF [-d DELIVER]] SPOOLDIR MESSAGES CUSTOMERS
 *
 * Customer k (0-based) is PREFIX%07u ("c0000000"...) with the domain
 * PREFIX%07u.example; message i goes to user@ the domain of customer i % M.
 * -s   body size in bytes, at least the headers (default 300)
 * -c   also write the customers as inline `customer` sections into CONF
 *      (fine for 10,000; 100,000 inline sections take libconfuse over a
 *      minute to parse: large sites need the customer map)
 * -d   the `deliver` value of those sections (e.g. "127.0.0.1:2526")
 * SPOOLDIR must not hold a journal yet.  Segments roll over at 64 MiB, as
 * the daemon's do; everything is fsynced before exit.  Prints what it wrote.
 *
 * Built by tests/bench/run (bench.py) against build/libkm.a; never part of
 * the daemon.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "spool/spool.h"
#include "spool/spool_record.h"

#define SEG_LIMIT (64ull * 1024 * 1024)
#define WBUF (4u << 20)

static void die(const char *what)
{
    fprintf(stderr, "genspool: %s: %s\n", what, strerror(errno));
    exit(1);
}

static int dfd = -1;
static int seg_fd = -1;
static uint32_t seg_no;
static uint64_t seg_len;
static unsigned char *wbuf;
static size_t wlen;

static void flush_buf(void)
{
    size_t off = 0;
    while (off < wlen) {
        ssize_t n = write(seg_fd, wbuf + off, wlen - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("write");
        }
        off += (size_t)n;
    }
    wlen = 0;
}

static void seg_close(void)
{
    if (seg_fd < 0)
        return;
    flush_buf();
    if (fsync(seg_fd) < 0)
        die("fsync");
    close(seg_fd);
    seg_fd = -1;
}

static void seg_open(void)
{
    char name[32];
    seg_close();
    seg_no++;
    snprintf(name, sizeof name, "%010u.seg", seg_no);
    seg_fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (seg_fd < 0)
        die(name);
    seg_len = 0;
}

static void append(const uint8_t *rec, size_t len)
{
    if (seg_fd < 0 || seg_len >= SEG_LIMIT)
        seg_open();
    if (wlen + len > WBUF)
        flush_buf();
    seg_len += len;
    if (len > WBUF) {                   /* a huge record: straight through */
        unsigned char *keep = wbuf;
        wbuf = (unsigned char *)rec;
        wlen = len;
        flush_buf();
        wbuf = keep;
        return;
    }
    memcpy(wbuf + wlen, rec, len);
    wlen += len;
}

static void usage(void)
{
    fprintf(stderr, "usage: genspool [-s BYTES] [-p PREFIX] [-c CONF [-d DELIVER]] "
            "SPOOLDIR MESSAGES CUSTOMERS\n");
    exit(2);
}

int main(int argc, char **argv)
{
    size_t body_size = 300;
    const char *prefix = "c", *conf = NULL, *deliver = NULL;
    int opt;
    while ((opt = getopt(argc, argv, "s:p:c:d:")) != -1) {
        switch (opt) {
        case 's': body_size = strtoul(optarg, NULL, 10); break;
        case 'p': prefix = optarg; break;
        case 'c': conf = optarg; break;
        case 'd': deliver = optarg; break;
        default: usage();
        }
    }
    if (argc - optind != 3)
        usage();
    const char *dir = argv[optind];
    unsigned long long nmsg = strtoull(argv[optind + 1], NULL, 10);
    unsigned long ncust = strtoul(argv[optind + 2], NULL, 10);
    if (ncust == 0 || nmsg == 0 || strlen(prefix) > 40)
        usage();

    char path[4096];
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        die(dir);
    snprintf(path, sizeof path, "%s/journal", dir);
    if (mkdir(path, 0700) < 0 && errno != EEXIST)
        die(path);
    DIR *d = opendir(path);
    struct dirent *de;
    if (!d)
        die(path);
    while ((de = readdir(d)))
        if (strstr(de->d_name, ".seg")) {
            fprintf(stderr, "genspool: %s already holds a journal\n", dir);
            return 1;
        }
    closedir(d);
    dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        die(path);
    wbuf = malloc(WBUF);
    if (!wbuf)
        die("malloc");

    struct timeval tv;
    gettimeofday(&tv, NULL);
    uint64_t now_us = (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
    uint64_t id = now_us - nmsg;        /* ids below the daemon's next ones */
    char *body = malloc(body_size + 512);
    char rcpt[128], dom[96], hdr[512];
    uint64_t total = 0;
    for (unsigned long long i = 0; i < nmsg; i++, id++) {
        unsigned long k = (unsigned long)(i % ncust);
        snprintf(dom, sizeof dom, "%s%07lu.example", prefix, k);
        snprintf(rcpt, sizeof rcpt, "user@%s", dom);
        int h = snprintf(hdr, sizeof hdr,
                         "Received: from gen.bench.example ([127.0.0.1])\r\n"
                         "\tby km.bench.example (kickmail) with SMTP; genspool\r\n"
                         "From: <from@x.example>\r\nTo: <%s>\r\n"
                         "Subject: genspool %llu\r\n\r\n", rcpt, i);
        size_t blen = body_size > (size_t)h ? body_size : (size_t)h + 2;
        memcpy(body, hdr, (size_t)h);
        for (size_t p = (size_t)h; p < blen; p += 72) {
            size_t n = blen - p < 72 ? blen - p : 72;
            memset(body + p, 'x', n);
            if (n >= 2) {
                body[p + n - 2] = '\r';
                body[p + n - 1] = '\n';
            }
        }
        struct spool_rcpt r = { rcpt, 0 };
        struct spool_env env = { .id = id, .arrival = (int64_t)tv.tv_sec - 60,
                                 .sender = "from@x.example", .nrcpt = 1, .rcpts = &r };
        size_t mlen, rlen;
        if (spool_meta_msg_len(&env, &mlen) < 0) {
            fprintf(stderr, "genspool: cannot encode message %llu\n", i);
            return 1;
        }
        uint8_t meta[512];
        spool_meta_msg_encode(&env, meta);
        uint8_t *rec = spool_rec_build(SPOOL_REC_VERSION, SPOOL_REC_MSG, id, meta,
                                       (uint32_t)mlen, body, (uint32_t)blen, &rlen);
        append(rec, rlen);
        free(rec);
        total += rlen;
    }
    seg_close();
    if (fsync(dfd) < 0)
        die("fsync journal/");
    close(dfd);

    if (conf) {
        FILE *f = fopen(conf, "w");
        if (!f)
            die(conf);
        for (unsigned long k = 0; k < ncust; k++) {
            fprintf(f, "customer \"%s%07lu\" {\n  domains = {\"%s%07lu.example\"}\n",
                    prefix, k, prefix, k);
            if (deliver)
                fprintf(f, "  deliver = \"%s\"\n", deliver);
            fprintf(f, "  etrn_interval = 0\n");    /* the bench's ETRNs each flush */
            fprintf(f, "}\n");
        }
        if (fclose(f) != 0)
            die(conf);
    }
    printf("genspool: %llu messages for %lu customers, %llu bytes in %u segments\n",
           nmsg, ncust, (unsigned long long)total, seg_no);
    return 0;
}

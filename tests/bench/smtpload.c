/*
 * smtpload — phase 10's load generator: smtp-source's conversation (HELO,
 * MAIL, RCPT, DATA, the same header lines and payload bytes, QUIT; one
 * message per connection, no pipelining), from one process with SESSIONS
 * connections in parallel on one epoll loop, with the recipient of message
 * k taken round robin from a list (smtp-source takes one -t per process).
 *
 *   smtpload -s SESSIONS -m MESSAGES -l LENGTH -f FROM -t RCPT[,RCPT...] HOST:PORT
 *
 * Why: phase 10 spread 10,000 messages over 100 maildrops with 100
 * smtp-source processes of one session each, 20 at a time, and perf
 * (2026-12-07) put 55 % of the two cores' samples in those processes
 * (930 µs of CPU per message, against 217 µs for one smtp-source process
 * with 20 sessions in phase 1): twenty processes each waking for every
 * reply.  The measure was the load generator's.  This program is phase 1's
 * load shape with phase 10's recipients.  Exits 0 when every message got
 * its 250, 1 on the first unexpected reply or error (as smtp-source does
 * without -A), 2 on bad arguments.  Trusts the server only to speak SMTP;
 * a reply line over 4 KB is an error.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SESS  1024
#define MAX_RCPT  10000
#define LINE_MAX_ 4096

enum st { S_GREET, S_HELO, S_MAIL, S_RCPT, S_DATA, S_BODY, S_QUIT };

struct sess {
    int fd;
    enum st st;
    long msg;                   /* the message this connection carries */
    char in[LINE_MAX_];
    size_t inlen;
    const char *out;            /* bytes not written yet */
    size_t outlen;
    char cmd[600];
};

static char *rcpts[MAX_RCPT];
static size_t nrcpt;
static const char *from = "foo@localhost";
static struct sockaddr_in dst;
static char *payload;           /* headers built per message; the payload is shared */
static size_t paylen;
static long sent, done_ok, total;
static int ep;

static void die(const char *what)
{
    fprintf(stderr, "smtpload: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* The payload as smtp-source makes it: lines of 78 'X' after a digit,
 * CRLF ended, the last line short. */
static void make_payload(size_t len)
{
    payload = malloc(len + 3);
    if (!payload)
        die("malloc");
    memset(payload, 'X', len);
    for (size_t i = 80; i <= len; i += 80) {
        payload[i - 80] = "0123456789"[(i / 80) % 10];
        payload[i - 2] = '\r';
        payload[i - 1] = '\n';
    }
    paylen = len;
    if (len < 2 || payload[len - 2] != '\r' || payload[len - 1] != '\n') {
        payload[paylen++] = '\r';
        payload[paylen++] = '\n';
    }
}

static void want(struct sess *s, uint32_t ev)
{
    struct epoll_event e = { .events = ev, .data.ptr = s };
    if (epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &e) < 0)
        die("epoll_ctl");
}

static void start(struct sess *s)
{
    struct epoll_event e = { .events = EPOLLIN, .data.ptr = s };
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->fd < 0)
        die("socket");
    if (connect(s->fd, (struct sockaddr *)&dst, sizeof dst) < 0 && errno != EINPROGRESS)
        die("connect");
    s->st = S_GREET;
    s->msg = sent++;
    s->inlen = 0;
    s->outlen = 0;
    e.events = EPOLLIN;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &e) < 0)
        die("epoll_ctl");
}

/* Writes what is pending; 1 when all went out. */
static int flush_out(struct sess *s)
{
    while (s->outlen) {
        ssize_t n = write(s->fd, s->out, s->outlen);
        if (n < 0) {
            if (errno == EAGAIN) {
                want(s, EPOLLIN | EPOLLOUT);
                return 0;
            }
            if (errno == EINTR)
                continue;
            die("write");
        }
        s->out += n;
        s->outlen -= (size_t)n;
    }
    return 1;
}

static void send_str(struct sess *s, const char *p, size_t n)
{
    s->out = p;
    s->outlen = n;
    flush_out(s);
}

static void send_cmd(struct sess *s, const char *fmt, const char *arg)
{
    int n = snprintf(s->cmd, sizeof s->cmd, fmt, arg);
    send_str(s, s->cmd, (size_t)n);
}

/* The header lines smtp-source writes, then the payload and the dot: one
 * buffer per session (the payload copied in: one write of it all). */
static char *body_buf[MAX_SESS];

static void send_body(struct sess *s, size_t idx)
{
    char hdr[1024], date[64];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%a, %e %b %Y %H:%M:%S +0000 (UTC)", &tm);
    int h = snprintf(hdr, sizeof hdr,
                     "From: <%s>\r\nTo: <%s>\r\nDate: %s\r\nMessage-Id: <%d.%04ld.%04ld@smtpload>\r\n\r\n",
                     from, rcpts[s->msg % (long)nrcpt], date, (int)getpid(), s->msg / 10000,
                     s->msg % 10000);
    if (!body_buf[idx] && !(body_buf[idx] = malloc(sizeof hdr + paylen + 8)))
        die("malloc");
    memcpy(body_buf[idx], hdr, (size_t)h);
    memcpy(body_buf[idx] + h, payload, paylen);
    memcpy(body_buf[idx] + h + paylen, ".\r\n", 3);
    send_str(s, body_buf[idx], (size_t)h + paylen + 3);
}

static void fail(struct sess *s, const char *line)
{
    fprintf(stderr, "smtpload: message %ld, state %d: unexpected reply: %s\n", s->msg,
            (int)s->st, line);
    exit(1);
}

/* One complete reply (its last line) in state st. */
static void on_reply(struct sess *s, struct sess *all, const char *line)
{
    int code = atoi(line);
    switch (s->st) {
    case S_GREET:
        if (code != 220) fail(s, line);
        s->st = S_HELO;
        send_cmd(s, "HELO %s\r\n", "smtpload");
        break;
    case S_HELO:
        if (code != 250) fail(s, line);
        s->st = S_MAIL;
        send_cmd(s, "MAIL FROM:<%s>\r\n", from);
        break;
    case S_MAIL:
        if (code != 250) fail(s, line);
        s->st = S_RCPT;
        send_cmd(s, "RCPT TO:<%s>\r\n", rcpts[s->msg % (long)nrcpt]);
        break;
    case S_RCPT:
        if (code != 250) fail(s, line);
        s->st = S_DATA;
        send_cmd(s, "%sDATA\r\n", "");
        break;
    case S_DATA:
        if (code != 354) fail(s, line);
        s->st = S_BODY;
        send_body(s, (size_t)(s - all));
        break;
    case S_BODY:
        if (code != 250) fail(s, line);
        done_ok++;
        s->st = S_QUIT;
        send_cmd(s, "%sQUIT\r\n", "");
        break;
    case S_QUIT:
        if (code != 221) fail(s, line);
        close(s->fd);           /* also leaves the epoll set */
        s->fd = -1;
        if (sent < total)
            start(s);
        break;
    }
}

/* Reads what came; each complete reply handled.  0 at EOF. */
static int on_read(struct sess *s, struct sess *all)
{
    for (;;) {
        ssize_t n = read(s->fd, s->in + s->inlen, sizeof s->in - 1 - s->inlen);
        if (n < 0) {
            if (errno == EAGAIN)
                return 1;
            if (errno == EINTR)
                continue;
            die("read");
        }
        if (n == 0)
            return 0;
        s->inlen += (size_t)n;
        for (;;) {
            char *nl = memchr(s->in, '\n', s->inlen);
            if (!nl) {
                if (s->inlen >= sizeof s->in - 1) {
                    s->in[sizeof s->in - 1] = '\0';
                    fail(s, "(a reply line over 4 KB)");
                }
                break;
            }
            size_t ll = (size_t)(nl - s->in) + 1;
            *nl = '\0';
            int last = ll >= 4 && s->in[3] != '-';
            char line[LINE_MAX_];
            memcpy(line, s->in, ll);
            memmove(s->in, s->in + ll, s->inlen - ll);
            s->inlen -= ll;
            if (last) {
                int fd = s->fd;
                on_reply(s, all, line);
                if (s->fd != fd)
                    return 1;   /* a new connection: nothing more of the old */
            }
        }
    }
}

int main(int argc, char **argv)
{
    int nsess = 1, opt;
    long len = 100;
    char *list = NULL;
    while ((opt = getopt(argc, argv, "s:m:l:f:t:")) != -1) {
        switch (opt) {
        case 's': nsess = atoi(optarg); break;
        case 'm': total = atol(optarg); break;
        case 'l': len = atol(optarg); break;
        case 'f': from = optarg; break;
        case 't': list = optarg; break;
        default: return 2;
        }
    }
    if (optind != argc - 1 || !list || nsess < 1 || nsess > MAX_SESS || total < 1 || len < 0 ||
        len > 64L * 1024 * 1024) {
        fprintf(stderr, "usage: smtpload -s SESSIONS -m MESSAGES -l LENGTH -f FROM "
                "-t RCPT[,RCPT...] HOST:PORT\n");
        return 2;
    }
    for (char *tok = strtok(list, ","); tok && nrcpt < MAX_RCPT; tok = strtok(NULL, ","))
        if (*tok && strlen(tok) < 500)
            rcpts[nrcpt++] = tok;
    char *host = argv[optind], *colon = strrchr(host, ':');
    if (!nrcpt || !colon)
        return 2;
    *colon = '\0';
    dst.sin_family = AF_INET;
    dst.sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &dst.sin_addr) != 1)
        return 2;
    make_payload((size_t)len);
    if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
        die("epoll_create1");
    struct sess *all = calloc((size_t)nsess, sizeof *all);
    if (!all)
        die("calloc");
    for (int i = 0; i < nsess && sent < total; i++)
        start(&all[i]);
    int active = nsess < total ? nsess : (int)total;
    struct epoll_event evs[64];
    while (done_ok < total || active) {
        int n = epoll_wait(ep, evs, 64, 60000);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fprintf(stderr, "smtpload: no progress for 60 s (%ld of %ld done)\n", done_ok, total);
            return 1;
        }
        for (int i = 0; i < n; i++) {
            struct sess *s = evs[i].data.ptr;
            if (s->fd < 0)
                continue;
            if ((evs[i].events & EPOLLOUT) && flush_out(s))
                want(s, EPOLLIN);
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                if (!on_read(s, all)) {
                    if (s->st != S_QUIT || s->inlen) {
                        fprintf(stderr, "smtpload: message %ld: connection closed in state %d\n",
                                s->msg, (int)s->st);
                        return 1;
                    }
                    close(s->fd);
                    s->fd = -1;
                }
                if (s->fd < 0)
                    active--;
            }
        }
    }
    printf("smtpload: %ld messages sent, %ld accepted\n", sent, done_ok);
    return done_ok == total ? 0 : 1;
}

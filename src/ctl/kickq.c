/*
 * kickq — the operator's tool.  `kickq [-c FILE | -s SOCKET] COMMAND [ARGS]
 * [--json]`: checks the command against the table it shares with the server
 * (ctl_req_check), sends it as one TAB-separated line over the control
 * socket, and relays the answer: body to stdout and exit 0, or the reason to
 * stderr and exit 1 (failure) or 2 (usage).  Usage errors found here exit 2
 * before connecting; a socket that cannot be reached exits 1.
 *
 * Trusts: the daemon at the other end of the socket, to send one status line
 * first.  Guarantees: it never waits forever for that line (KICKQ_TIMEOUT);
 * after it, the body is streamed as it comes, however long it is.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "config.h"
#include "ctl.h"

#ifndef KM_SYSCONFDIR
#define KM_SYSCONFDIR "/usr/local/etc/kickmail"
#endif

#define KICKQ_TIMEOUT   300             /* seconds to wait for the status line */
#define KICKQ_LINE_MAX  65536           /* longest status line accepted */

static void kickq_usage(FILE *f)
{
    const struct ctl_cmd_spec *c;
    fprintf(f, "usage: kickq [-c FILE | -s SOCKET] COMMAND [ARGS] [--json]\n"
               "       kickq -h\n"
               "  -c FILE    configuration to read the control socket from\n"
               "             (default " KM_SYSCONFDIR "/kickmail.conf)\n"
               "  -s SOCKET  control socket path\n"
               "commands:\n");
    for (unsigned i = 0; (c = ctl_cmd_at(i)); i++)
        fprintf(f, "  %s\n", c->usage);
}

static int kickq_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int kickq_usage_error(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "kickq: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    kickq_usage(stderr);
    return 2;
}

/* The control socket named in the configuration file; NULL (said why) on error. */
static char *kickq_socket_from_config(const char *path)
{
    char err[1024];
    struct config *c = config_load(path, err, sizeof err);
    if (!c) {
        fprintf(stderr, "kickq: %s\n", err);
        return NULL;
    }
    char *sock = c->control && c->control[0] ? strdup(c->control) : NULL;
    if (!sock)
        fprintf(stderr, "kickq: %s: no control socket configured\n", path);
    config_free(c);
    return sock;
}

/* words joined by TAB, LF-terminated; NULL (said why) when it cannot be sent. */
static char *kickq_request(int n, char **words, size_t *len)
{
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        if (strpbrk(words[i], "\t\r\n")) {
            kickq_usage_error("arguments may not contain tabs or line breaks");
            return NULL;
        }
        total += strlen(words[i]) + 1;
    }
    if (total > CTL_MAX_REQUEST || n > CTL_MAX_WORDS) {
        kickq_usage_error("request too long (%d bytes, %d words at most)",
                          CTL_MAX_REQUEST, CTL_MAX_WORDS);
        return NULL;
    }
    char *req = malloc(total + 1), *p = req;
    if (!req)
        return NULL;
    for (int i = 0; i < n; i++) {
        size_t l = strlen(words[i]);
        memcpy(p, words[i], l);
        p += l;
        *p++ = i + 1 < n ? '\t' : '\n';
    }
    *p = 0;
    *len = total;
    return req;
}

static int kickq_connect(const char *path)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof sun.sun_path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(sun.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static int write_all(int fd, const char *p, size_t n, int sock)
{
    while (n) {
        ssize_t w = sock ? send(fd, p, n, MSG_NOSIGNAL) : write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads until the status line is complete (with timeout).  Returns the bytes
 * in buf, *eol the offset of its LF; -1 (said why) on error. */
static ssize_t kickq_read_status(int fd, char *buf, size_t size, size_t *eol)
{
    size_t have = 0;
    for (;;) {
        char *nl = memchr(buf, '\n', have);
        if (nl) {
            *eol = (size_t)(nl - buf);
            return (ssize_t)have;
        }
        if (have == size) {
            fprintf(stderr, "kickq: status line from kickmaild too long\n");
            return -1;
        }
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        int pr = poll(&pfd, 1, KICKQ_TIMEOUT * 1000);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr == 0) {
            fprintf(stderr, "kickq: no answer from kickmaild within %d s\n", KICKQ_TIMEOUT);
            return -1;
        }
        ssize_t r = pr < 0 ? -1 : read(fd, buf + have, size - have);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            fprintf(stderr, "kickq: connection closed before an answer%s%s\n",
                    r < 0 ? ": " : "", r < 0 ? strerror(errno) : "");
            return -1;
        }
        have += (size_t)r;
    }
}

/* Copies the rest of the answer to stdout.  0 / 1 (said why). */
static int kickq_copy_body(int fd, const char *buf, size_t n)
{
    char chunk[65536];
    for (;;) {
        if (n && write_all(STDOUT_FILENO, buf, n, 0) < 0) {
            fprintf(stderr, "kickq: write to stdout: %s\n", strerror(errno));
            return 1;
        }
        ssize_t r = read(fd, chunk, sizeof chunk);
        if (r < 0 && errno == EINTR) {
            n = 0;
            continue;
        }
        if (r < 0) {
            fprintf(stderr, "kickq: read: %s\n", strerror(errno));
            return 1;
        }
        if (r == 0)
            return 0;
        buf = chunk;
        n = (size_t)r;
    }
}

/* Sends the request and relays the answer; returns the exit status. */
static int kickq_talk(int fd, const char *req, size_t len)
{
    static char buf[KICKQ_LINE_MAX];
    size_t eol;
    if (write_all(fd, req, len, 1) < 0) {
        fprintf(stderr, "kickq: send: %s\n", strerror(errno));
        return 1;
    }
    ssize_t have = kickq_read_status(fd, buf, sizeof buf, &eol);
    if (have < 0)
        return 1;
    buf[eol] = 0;
    if (eol > 0 && buf[eol - 1] == '\r')
        buf[eol - 1] = 0;
    if ((buf[0] != '0' && buf[0] != '1' && buf[0] != '2') ||
        (buf[1] != 0 && buf[1] != ' ')) {
        fprintf(stderr, "kickq: unexpected answer from kickmaild: %.200s\n", buf);
        return 1;
    }
    if (buf[0] != '0') {
        fprintf(stderr, "kickq: %s\n", buf[1] ? buf + 2 : "failed");
        return buf[0] - '0';
    }
    return kickq_copy_body(fd, buf + eol + 1, (size_t)have - eol - 1);
}

int main(int argc, char **argv)
{
    const char *cfg = NULL, *sock = NULL;
    char why[256];
    int opt;
    opterr = 0;
    while ((opt = getopt(argc, argv, "+c:s:h")) != -1) {
        switch (opt) {
        case 'c': cfg = optarg; break;
        case 's': sock = optarg; break;
        case 'h': kickq_usage(stdout); return 0;
        default:
            return kickq_usage_error(optopt == 'c' || optopt == 's' ?
                                     "option -%c needs an argument" : "unknown option -%c",
                                     optopt);
        }
    }
    if (cfg && sock)
        return kickq_usage_error("-c and -s exclude each other");
    if (optind >= argc)
        return kickq_usage_error("no command given");
    int nw = argc - optind;
    char **words = argv + optind, **check = calloc((size_t)nw, sizeof *check);
    struct ctl_req rq;
    if (!check)
        return 1;
    memcpy(check, words, (size_t)nw * sizeof *check);
    if (ctl_req_check(nw, check, &rq, why, sizeof why) < 0) {
        free(check);
        return kickq_usage_error("%s", why);
    }
    free(check);
    size_t len = 0;
    char *req = kickq_request(nw, words, &len);
    if (!req)
        return 2;
    char *path = sock ? strdup(sock) : kickq_socket_from_config(cfg ? cfg : KM_SYSCONFDIR "/kickmail.conf");
    if (!path) {
        free(req);
        return 1;
    }
    int fd = kickq_connect(path), rc = 1;
    if (fd < 0)
        fprintf(stderr, "kickq: cannot connect to %s: %s\n", path, strerror(errno));
    else
        rc = kickq_talk(fd, req, len);
    if (fd >= 0)
        close(fd);
    free(path);
    free(req);
    return rc;
}

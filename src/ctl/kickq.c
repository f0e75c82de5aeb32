/*
 * kickq — the operator's tool.  `kickq [-c FILE | -s SOCKET] COMMAND [ARGS]
 * [--json]` (or -h / --help: the usage on stdout, exit 0): checks the
 * command against the table it shares with the server
 * (ctl_req_check), sends it as one TAB-separated line over the control
 * socket, and relays the answer: body to stdout and exit 0, or the reason to
 * stderr and exit 1 (failure) or 2 (usage).  Usage errors found here exit 2
 * before connecting; a socket that cannot be reached exits 1.  Plain blocking
 * socket I/O: a one-shot client needs no event loop.
 *
 * Two builds of this file (see the Makefile).  The full one reads the
 * configuration with libconfuse (config_load) when no -s is given: the -c
 * file, else the one KICKMAIL_CONF names (when set and not empty), else
 * the default.  The
 * front end (KICKQ_CONFIG_EXEC, built static against musl: glibc's start-up
 * alone costs ~0.3 ms on a virtual machine where CPUID traps to the
 * hypervisor, musl's nothing) handles -s itself and, when the configuration
 * has to be read, execs the full build, kickq-config, with the same
 * arguments: found beside the running program first (the build tree), else
 * in KM_LIBEXECDIR.
 *
 * One command needs no daemon: `kickq hash-password` reads one password
 * line on stdin (echo off and a prompt on stderr when stdin is a terminal)
 * and prints a yescrypt hash for a maildrop's `password` (auth/passwd's
 * auth_passwd_hash, libcrypt: the full build only; the front end execs it).
 * -w SECONDS (--timeout SECONDS) bounds the whole command: an interval timer
 * (ITIMER_REAL, so it also cuts short a connect() to a socket whose backlog
 * is full, or a configuration read) whose SIGALRM handler says so on stderr
 * and exits 1.  The front end disarms it before it execs the full build,
 * which arms it again.  This is what lets the ppp hooks bound kickq without
 * starting timeout(1).
 *
 * Trusts: the daemon at the other end of the socket, to send one status line
 * first.  Guarantees: it never waits forever for that line (KICKQ_TIMEOUT);
 * after it, the body is streamed as it comes, however long it is, unless -w
 * gave the whole command a bound.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#ifndef KICKQ_CONFIG_EXEC
#include <signal.h>
#include <termios.h>

#include "auth/passwd.h"
#include "core/config.h"
#endif
#include "ctl/ctl.h"

#ifndef KM_SYSCONFDIR
#define KM_SYSCONFDIR "/usr/local/etc/kickmail"
#endif
#ifndef KM_LIBEXECDIR
#define KM_LIBEXECDIR "/usr/local/libexec/kickmail"
#endif

#define KICKQ_TIMEOUT   300             /* seconds to wait for the status line */
#define KICKQ_LINE_MAX  65536           /* longest status line accepted */
#define KICKQ_HELPER    "kickq-config"  /* the full build, for -c */
#define KICKQ_HASH_CMD  "hash-password"
#define KICKQ_HASH_USAGE KICKQ_HASH_CMD "   (no daemon: a yescrypt hash of the password on stdin)"
#define KICKQ_WAIT_MAX  86400           /* the longest -w, seconds */

#ifdef KICKQ_STATIC_GLIBC
#include <pwd.h>
/* libconfuse's cfg_tilde_expand() calls these to expand "~user/" in file
 * names; it is reached only through cfg_parse() and include(), and kickmail
 * uses neither (config_load reads the file itself and hands the text to
 * cfg_parse_buf; the schema has no include).  In a static glibc program the
 * real ones need glibc's shared NSS modules at run time (the linker warns):
 * these stand-ins, never called, keep that code out. */
struct passwd *getpwnam(const char *name)
{
    errno = ENOENT;
    return NULL;
}

struct passwd *getpwuid(uid_t uid)
{
    errno = ENOENT;
    return NULL;
}
#endif

/* strerror() with glibc's wording, whichever C library this is built with:
 * the front end (musl) words some errors differently, and what kickq prints
 * must not depend on the build. */
static const char *kickq_strerror(int e)
{
#ifndef __GLIBC__
    switch (e) {
    case EIO:          return "Input/output error";
    case ENOTSOCK:     return "Socket operation on non-socket";
    case ENAMETOOLONG: return "File name too long";
    case ELOOP:        return "Too many levels of symbolic links";
    case ETIMEDOUT:    return "Connection timed out";
    case EAGAIN:       return "Resource temporarily unavailable";
    case ENOEXEC:      return "Exec format error";
    case EMFILE:       return "Too many open files";
    case ENFILE:       return "Too many open files in system";
    case ENOMEM:       return "Cannot allocate memory";
    case EPROTOTYPE:   return "Protocol wrong type for socket";
    case ECONNREFUSED: return "Connection refused";
    case ECONNRESET:   return "Connection reset by peer";
    case EPIPE:        return "Broken pipe";
    case ENOENT:       return "No such file or directory";
    case EACCES:       return "Permission denied";
    case ENOTDIR:      return "Not a directory";
    case ENOSPC:       return "No space left on device";
    case EBADF:        return "Bad file descriptor";
    case EINVAL:       return "Invalid argument";
    case EPERM:        return "Operation not permitted";
    default:           break;
    }
#endif
    return strerror(e);
}

static void kickq_usage(FILE *f)
{
    const struct ctl_cmd_spec *c;
    fprintf(f, "usage: kickq [-c FILE | -s SOCKET] [-w SECONDS] COMMAND [ARGS] [--json]\n"
               "       kickq -h | --help\n"
               "  -c FILE    configuration to read the control socket from\n"
               "             (default $KICKMAIL_CONF, else " KM_SYSCONFDIR "/kickmail.conf)\n"
               "  -s SOCKET  control socket path\n"
               "  -w SECONDS, --timeout SECONDS\n"
               "             give up (exit 1) if the command has not ended by then\n"
               "             (decimals allowed, at most %d)\n"
               "commands:\n", KICKQ_WAIT_MAX);
    for (unsigned i = 0; (c = ctl_cmd_at(i)); i++)
        fprintf(f, "  %s\n", c->usage);
    fprintf(f, "  %s\n", KICKQ_HASH_USAGE);
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

/* -w: what the SIGALRM handler writes before it exits 1. */
static char kickq_wait_msg[128];
static size_t kickq_wait_len;

static void kickq_on_alarm(int sig)
{
    ssize_t w = write(STDERR_FILENO, kickq_wait_msg, kickq_wait_len);
    (void)w;
    _exit(1);
}

/* -w's value: decimal seconds (digits and a point) in (0, KICKQ_WAIT_MAX].
 * 0 / -1. */
static int kickq_wait_parse(const char *s, double *secs)
{
    char *end;
    if (!*s || strspn(s, "0123456789.") != strlen(s))
        return -1;
    errno = 0;
    *secs = strtod(s, &end);
    if (errno || *end || !isfinite(*secs) || *secs <= 0 || *secs > KICKQ_WAIT_MAX)
        return -1;
    return 0;
}

/* Arms the whole-command bound (secs > 0) or disarms it (0). */
static void kickq_wait_arm(double secs, const char *text)
{
    struct itimerval it = { { 0, 0 }, { 0, 0 } };
    if (secs > 0) {
        struct sigaction sa;
        int n = snprintf(kickq_wait_msg, sizeof kickq_wait_msg,
                         "kickq: no answer from kickmaild within %.40s s (-w)\n", text);
        kickq_wait_len = n > 0 && (size_t)n < sizeof kickq_wait_msg ? (size_t)n : 0;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = kickq_on_alarm;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGALRM, &sa, NULL);
        long long us = (long long)(secs * 1e6);     /* rounded up: never early */
        if ((double)us < secs * 1e6)
            us++;
        it.it_value.tv_sec = (time_t)(us / 1000000);
        it.it_value.tv_usec = (suseconds_t)(us % 1000000);
    }
    setitimer(ITIMER_REAL, &it, NULL);
}

#ifndef KICKQ_CONFIG_EXEC
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
#else
/* The configuration has to be read: replaces this process by the full build
 * with the same arguments.  Returns only on failure (said why), with 1. */
static int kickq_exec_full(char **argv)
{
    char self[PATH_MAX], path[PATH_MAX + sizeof KICKQ_HELPER];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    kickq_wait_arm(0, NULL);    /* the full build arms -w again */
    if (n > 0) {
        self[n] = 0;
        char *slash = strrchr(self, '/');
        if (slash) {
            slash[1] = 0;
            snprintf(path, sizeof path, "%s%s", self, KICKQ_HELPER);
            execv(path, argv);
        }
    }
    execv(KM_LIBEXECDIR "/" KICKQ_HELPER, argv);
    fprintf(stderr, "kickq: cannot run %s: %s\n", KM_LIBEXECDIR "/" KICKQ_HELPER,
            kickq_strerror(errno));
    return 1;
}
#endif

#ifndef KICKQ_CONFIG_EXEC
/* The terminal's settings while echo is off (restored on a signal too). */
static struct termios kickq_tty_saved;
static volatile sig_atomic_t kickq_tty_quiet;

static void kickq_tty_restore(void)
{
    if (kickq_tty_quiet) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &kickq_tty_saved);
        kickq_tty_quiet = 0;
    }
}

static void kickq_tty_signal(int sig)
{
    kickq_tty_restore();
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Turns echo off on the terminal stdin is, and prompts on stderr. */
static void kickq_tty_quiet_start(void)
{
    struct termios t;
    if (tcgetattr(STDIN_FILENO, &kickq_tty_saved) == 0) {
        static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP };
        for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
            signal(sigs[i], kickq_tty_signal);
        t = kickq_tty_saved;
        t.c_lflag &= ~(tcflag_t)ECHO;
        kickq_tty_quiet = tcsetattr(STDIN_FILENO, TCSAFLUSH, &t) == 0;
    }
    fputs("Password: ", stderr);
    fflush(stderr);
}

/* Reads the first line of stdin into pw (size bytes), without its LF (and
 * a CR before it); a line that does not fit is cut at size - 1 bytes (more
 * than libcrypt hashes, so auth_passwd_hash refuses it).  Its length; -1
 * (said why) on a read error or a NUL byte. */
static ssize_t kickq_read_password(char *pw, size_t size)
{
    size_t n = 0;
    char *nl = NULL;
    while (n < size - 1 && !(nl = memchr(pw, '\n', n))) {
        ssize_t r = read(STDIN_FILENO, pw + n, size - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            fprintf(stderr, "kickq: " KICKQ_HASH_CMD ": read: %s\n", kickq_strerror(errno));
            return -1;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    if (nl || (nl = memchr(pw, '\n', n))) {
        n = (size_t)(nl - pw);
        if (n && pw[n - 1] == '\r')
            n--;
    }
    pw[n] = 0;
    if (memchr(pw, 0, n)) {
        fprintf(stderr, "kickq: " KICKQ_HASH_CMD ": the password contains a NUL byte\n");
        return -1;
    }
    return (ssize_t)n;
}

/* kickq hash-password: one password line on stdin, its yescrypt hash on
 * stdout.  The exit status. */
static int kickq_hash_password(void)
{
    static char pw[AUTH_PASSWORD_MAX + 2];
    char hash[256], why[256];
    int tty = isatty(STDIN_FILENO);
    if (tty)
        kickq_tty_quiet_start();
    ssize_t n = kickq_read_password(pw, sizeof pw);
    if (tty) {
        kickq_tty_restore();
        fputc('\n', stderr);
    }
    int rc = 1;
    if (n >= 0 && auth_passwd_hash(pw, hash, sizeof hash, why, sizeof why) < 0)
        fprintf(stderr, "kickq: " KICKQ_HASH_CMD ": %s\n", why);
    else if (n >= 0) {
        printf("%s\n", hash);
        rc = fflush(stdout) == 0 && !ferror(stdout) ? 0 : 1;
        if (rc)
            fprintf(stderr, "kickq: write to stdout: %s\n", kickq_strerror(errno));
    }
    explicit_bzero(pw, sizeof pw);
    return rc;
}
#endif

/* words joined by TAB, LF-terminated, into req (CTL_MAX_REQUEST + 1
 * bytes); its length, or 0 (said why) when it cannot be sent. */
static size_t kickq_request(int n, char **words, char *req)
{
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        if (strpbrk(words[i], "\t\r\n")) {
            kickq_usage_error("arguments may not contain tabs or line breaks");
            return 0;
        }
        total += strlen(words[i]) + 1;
    }
    if (total > CTL_MAX_REQUEST || n > CTL_MAX_WORDS) {
        kickq_usage_error("request too long (%d bytes, %d words at most)",
                          CTL_MAX_REQUEST, CTL_MAX_WORDS);
        return 0;
    }
    char *p = req;
    for (int i = 0; i < n; i++) {
        size_t l = strlen(words[i]);
        memcpy(p, words[i], l);
        p += l;
        *p++ = i + 1 < n ? '\t' : '\n';
    }
    *p = 0;
    return total;
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
                    r < 0 ? ": " : "", r < 0 ? kickq_strerror(errno) : "");
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
            fprintf(stderr, "kickq: write to stdout: %s\n", kickq_strerror(errno));
            return 1;
        }
        ssize_t r = read(fd, chunk, sizeof chunk);
        if (r < 0 && errno == EINTR) {
            n = 0;
            continue;
        }
        if (r < 0) {
            fprintf(stderr, "kickq: read: %s\n", kickq_strerror(errno));
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
        fprintf(stderr, "kickq: send: %s\n", kickq_strerror(errno));
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

/* kickq [options] hash-password (nwords words from the command on): run
 * here, or by the full build, which has libcrypt.  The exit status. */
static int kickq_hash_command(int nwords, char **argv)
{
    if (nwords != 1)
        return kickq_usage_error("usage: " KICKQ_HASH_CMD);
#ifdef KICKQ_CONFIG_EXEC
    return kickq_exec_full(argv);
#else
    return kickq_hash_password();
#endif
}

struct kickq_opts {
    const char *cfg, *sock;
};

/* kickq's own options (before the command), and -h/--help anywhere.
 * Returns -1 to go on, else the exit status (usage said, or help given). */
static int kickq_options(int argc, char **argv, struct kickq_opts *o)
{
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { "timeout", required_argument, NULL, 'w' },
        { 0 },
    };
    double wait = 0;
    int opt;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "+c:s:hw:", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c': o->cfg = optarg; break;
        case 's': o->sock = optarg; break;
        case 'w':
            if (kickq_wait_parse(optarg, &wait) < 0)
                return kickq_usage_error("-w: a number of seconds above 0, at most %d, "
                                         "is needed, not \"%.40s\"", KICKQ_WAIT_MAX, optarg);
            kickq_wait_arm(wait, optarg);
            break;
        case 'h': kickq_usage(stdout); return 0;
        default:
            if (!optopt)                /* an unknown --long option */
                return kickq_usage_error("unknown option %s", argv[optind - 1]);
            return kickq_usage_error(optopt == 'c' || optopt == 's' || optopt == 'w' ?
                                     "option -%c needs an argument" : "unknown option -%c",
                                     optopt);
        }
    }
    for (int i = optind; i < argc; i++) {
        /* an option's value is not an option: "--user --help" names a user */
        if (!strcmp(argv[i], "--ttl") || !strcmp(argv[i], "--user") ||
            !strcmp(argv[i], "--session")) {
            i++;
            continue;
        }
        if (strcmp(argv[i], "--help") == 0) {  /* "kickq list --help" */
            kickq_usage(stdout);
            return 0;
        }
    }
    if (o->cfg && o->sock)
        return kickq_usage_error("-c and -s exclude each other");
    if (optind >= argc)
        return kickq_usage_error("no command given");
    if (strcmp(argv[optind], KICKQ_HASH_CMD) == 0)         /* needs no daemon */
        return kickq_hash_command(argc - optind, argv);
    return -1;
}

int main(int argc, char **argv)
{
    struct kickq_opts o = { NULL, NULL };
    char why[256];
    int rc0 = kickq_options(argc, argv, &o);
    if (rc0 >= 0)
        return rc0;
    /* no malloc on the way to the daemon: musl's first one costs five
     * system calls (brk, mmap...), a tenth of kickq's own start-up */
    static char req[CTL_MAX_REQUEST + 1];
    char *few[64];
    int nw = argc - optind;
    char **words = argv + optind;
    char **check = nw <= (int)(sizeof few / sizeof few[0]) ? few : calloc((size_t)nw, sizeof *check);
    struct ctl_req rq;
    if (!check)
        return 1;
    memcpy(check, words, (size_t)nw * sizeof *check);
    int bad = ctl_req_check(nw, check, &rq, why, sizeof why) < 0;
    if (check != few)
        free(check);
    if (bad)
        return kickq_usage_error("%s", why);
    size_t len = kickq_request(nw, words, req);
    if (!len)
        return 2;
#ifdef KICKQ_CONFIG_EXEC
    if (!o.sock)
        return kickq_exec_full(argv);
    const char *path = o.sock;
#else
    char *conf_sock = NULL;
    const char *path = o.sock;
    if (!path) {
        const char *env = getenv("KICKMAIL_CONF");
        if (!o.cfg && env && env[0])
            o.cfg = env;
        conf_sock = kickq_socket_from_config(o.cfg ? o.cfg : KM_SYSCONFDIR "/kickmail.conf");
        if (!conf_sock)
            return 1;
        path = conf_sock;
    }
#endif
    int fd = kickq_connect(path), rc = 1;
    if (fd < 0)
        fprintf(stderr, "kickq: cannot connect to %s: %s\n", path, kickq_strerror(errno));
    else
        rc = kickq_talk(fd, req, len);
    if (fd >= 0)
        close(fd);
#ifndef KICKQ_CONFIG_EXEC
    free(conf_sock);
#endif
    return rc;
}

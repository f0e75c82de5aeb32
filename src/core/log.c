/*
 * log — syslog (LOG_MAIL) and optionally stderr.  Trusts nothing it prints:
 * callers pass peer text through as data in "%s" only.  Never fails.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <paths.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>
#include <sys/time.h>

#include "log.h"

static int log_stderr;
static int log_debug_on;
static const char *log_ident = "kickmaild";

void log_init(const char *ident, int to_stderr)
{
    log_ident = ident;
    log_stderr = to_stderr;
    openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void log_set_debug(int on)
{
    log_debug_on = on;
}

/* Is there a syslog socket?  Without one glibc's syslog() tries to connect
 * again on every call (socket, connect, close): several wasted system calls
 * per log line.  Checked again every 10 seconds. */
static int syslog_usable(void)
{
    static int usable;
    static time_t next_check;
    time_t now = time(NULL);
    if (now >= next_check) {
        usable = access(_PATH_LOG, W_OK) == 0;
        next_check = now + 10;
    }
    return usable;
}

static void log_v(int prio, const char *fmt, va_list ap)
{
    char buf[4096];
    vsnprintf(buf, sizeof buf, fmt, ap);
    if (syslog_usable())
        syslog(prio, "%s", buf);
    if (log_stderr) {
        struct timeval tv;
        struct tm tm;
        char ts[32];
        gettimeofday(&tv, NULL);
        localtime_r(&tv.tv_sec, &tm);
        strftime(ts, sizeof ts, "%H:%M:%S", &tm);
        fprintf(stderr, "%s.%03ld %s: %s\n", ts, (long)tv.tv_usec / 1000,
                log_ident, buf);
    }
}

#define LOG_FN(name, prio)                          \
    void name(const char *fmt, ...)                 \
    {                                               \
        va_list ap;                                 \
        va_start(ap, fmt);                          \
        log_v(prio, fmt, ap);                       \
        va_end(ap);                                 \
    }

LOG_FN(log_info, LOG_INFO)
LOG_FN(log_warn, LOG_WARNING)
LOG_FN(log_err, LOG_ERR)

void log_debug(const char *fmt, ...)
{
    va_list ap;
    if (!log_debug_on)
        return;
    va_start(ap, fmt);
    log_v(LOG_DEBUG, fmt, ap);
    va_end(ap);
}

void log_fatal(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_v(LOG_CRIT, fmt, ap);
    va_end(ap);
    abort();
}

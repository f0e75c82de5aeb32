/*
 * log — syslog (LOG_MAIL) and optionally stderr.  Trusts nothing it prints:
 * callers pass peer text through as data in "%s" only.  Never fails.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
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

static void log_v(int prio, const char *fmt, va_list ap)
{
    char buf[4096];
    vsnprintf(buf, sizeof buf, fmt, ap);
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

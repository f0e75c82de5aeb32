/*
 * log — syslog (mail facility) and, with -f, stderr.
 *
 * Lines are Postfix-like key=value text; callers put the queue ID first:
 *   log_info("%s: from=<%s>, size=%zu, nrcpt=%u", id, from, size, n);
 * The functions never fail and never block on anything but syslog(3).
 */
#ifndef KM_LOG_H
#define KM_LOG_H

#include <stdarg.h>

void log_init(const char *ident, int to_stderr);
void log_set_debug(int on);
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Logs, then abort()s: for broken internal invariants only. */
void log_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif

/*
 * log — syslog (mail facility) and, with -f, stderr, written off the caller's
 * thread.
 *
 * Lines are Postfix-like key=value text; callers put the queue ID first:
 *   log_info("%s: from=<%s>, size=%zu, nrcpt=%u", id, from, size, n);
 * The log_* functions may be called from any thread; they never fail and
 * never wait for output: the line is formatted at the call (the stderr form
 * is "HH:MM:SS.mmm ident: text", its time taken at the call; a text is cut
 * to 4095 bytes) and queued for a writer thread, started by the first line,
 * which writes stderr in batches and calls syslog(3) per line, in order.
 * syslog is skipped while /dev/log is absent (checked every 10 s); with
 * neither output a line is not even formatted.  When 1 MiB is queued new
 * lines are dropped and counted; the stream then says "log: N lines dropped
 * (log writer too slow)" where they went missing.
 */
#ifndef KM_LOG_H
#define KM_LOG_H

#include <stdarg.h>
#include <stddef.h>

/* Sets the ident and whether lines also go to stderr, and opens syslog.
 * May be called again, also after log_close() (the next line then starts a
 * new writer). */
void log_init(const char *ident, int to_stderr);
void log_set_debug(int on);
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* For broken internal invariants only: writes what is queued (waiting at
 * most 2 s for the writer), then this line synchronously, then abort()s. */
void log_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Returns once every line queued before the call is written (stderr written,
 * syslog called).  Any thread; does nothing without a writer. */
void log_flush(void);
/* Writes what is queued, stops and joins the writer, frees the queue; from
 * then on lines are written synchronously by their caller.  Idempotent;
 * also run by exit() once a writer was started.  Waits at most 5 s: a
 * writer stuck in write(2) or syslog(3) (a syslogd that stopped reading) is
 * left behind, with what it had not written, so that exit does not hang;
 * lines logged after that are queued for it (or dropped, counted, when the
 * queue is full). */
void log_close(void);

/* Test hooks: stderr lines go to fd (-1: back to 2); the queue's cap in
 * bytes (0: the default 1 MiB; at least 8 KiB); the count of write(2) calls
 * made for stderr lines so far. */
void log_test_set_fd(int fd);
/* 0: no line goes to syslog (fuzzers: thousands of sessions a second);
 * 1: back to the default. */
void log_test_set_syslog(int on);
void log_test_set_cap(size_t bytes);
/* How long log_close waits for the writer (ms; < 0: the default 5 s). */
void log_test_set_close_wait(long ms);
unsigned long log_test_writes(void);

#endif

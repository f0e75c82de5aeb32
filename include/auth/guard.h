/*
 * auth/guard — slowing and limiting password guessing, per client address,
 * for every protocol that authenticates (POP3 now; SMTP AUTH and ODMR next).
 * A failed attempt is answered only after a delay that grows with the
 * address's recent failures (1 s, 2 s, 4 s, ... up to a cap); an address
 * with too many failures in the window is refused further attempts until
 * the window has passed.  A success clears the address's delay (not its
 * count toward the limit).  The table is bounded (the oldest entries go
 * first).  Runs on the event loop; every call is O(1).
 */
#ifndef KM_AUTH_GUARD_H
#define KM_AUTH_GUARD_H

#include <time.h>

struct auth_guard_conf {
    unsigned max_failures;      /* per address within window (default 20) */
    long window;                /* seconds (default 600) */
    long delay_ms;              /* first delay (default 1000) */
    long max_delay_ms;          /* cap (default 15000) */
};

/* Sets the limits (defaults when never called). */
void auth_guard_configure(const struct auth_guard_conf *c);
/* 1 when addr may not try now (over max_failures within window). */
int auth_guard_blocked(const char *addr, time_t now);
/* Records a failure; returns the delay in ms before the failure may be
 * answered. */
long auth_guard_fail(const char *addr, time_t now);
/* Records a success. */
void auth_guard_ok(const char *addr, time_t now);
/* Forgets everything (tests, reload). */
void auth_guard_reset(void);

#endif

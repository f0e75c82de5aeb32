/*
 * auth/attempt — auth_guard's verdicts turned into what a session does
 * (attempt.h): blocked before trying, the delay cleared on success, and a
 * failure's answer deferred by a one-shot libevent timer of the guard's
 * delay.  Trusts the caller to keep the struct alive until the answer runs
 * or is cancelled (it lives in the session) and to call on the loop
 * thread.  Guarantees: the answer runs at most once per failure, always
 * from the loop, with the timer already freed (so it may start another).
 */
#include <stdlib.h>
#include <time.h>

#include <event2/event.h>

#include "auth/attempt.h"
#include "auth/guard.h"
#include "core/log.h"

int auth_attempt_blocked(const char *peer)
{
    return auth_guard_blocked(peer, time(NULL));
}

void auth_attempt_ok(const char *peer)
{
    auth_guard_ok(peer, time(NULL));
}

/* The delay has passed: the caller's answer. */
static void delay_over(evutil_socket_t fd, short what, void *arg)
{
    struct auth_attempt *a = arg;
    event_free(a->delay);
    a->delay = NULL;
    a->answer(a->arg);
}

long auth_attempt_fail(struct auth_attempt *a, struct event_base *base, const char *peer,
                       auth_attempt_answer_cb *answer, void *arg)
{
    if (a->delay)
        log_fatal("auth_attempt_fail: a failure's answer is pending already");
    long ms = auth_guard_fail(peer, time(NULL));
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    a->answer = answer;
    a->arg = arg;
    a->delay = evtimer_new(base, delay_over, a);
    if (!a->delay || evtimer_add(a->delay, &tv) < 0)
        log_fatal("auth_attempt_fail: cannot set a timer");
    return ms;
}

int auth_attempt_pending(const struct auth_attempt *a)
{
    return a->delay != NULL;
}

void auth_attempt_cancel(struct auth_attempt *a)
{
    if (a->delay)
        event_free(a->delay);
    a->delay = NULL;
}

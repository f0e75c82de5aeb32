/*
 * auth/attempt — the guard around one login attempt, the same for every
 * protocol that authenticates (POP3, SMTP AUTH, ODMR): an address over
 * auth_guard's limit is refused before it tries (auth_attempt_blocked);
 * a success clears the address's delay (auth_attempt_ok); a failure is
 * counted and answered only after auth_guard's delay, by a timer on the
 * loop (auth_attempt_fail); a session that ends meanwhile cancels it
 * (auth_attempt_cancel).  Replies, logs and states stay the caller's:
 * this module knows no protocol.  Runs on the loop thread only.
 */
#ifndef KM_AUTH_ATTEMPT_H
#define KM_AUTH_ATTEMPT_H

struct event;
struct event_base;

typedef void auth_attempt_answer_cb(void *arg);

/* One per session, zeroed at its start. */
struct auth_attempt {
    struct event *delay;            /* a failure's answer pending, or NULL */
    auth_attempt_answer_cb *answer;
    void *arg;
};

/* 1 when peer may not try now (auth_guard_blocked, now). */
int auth_attempt_blocked(const char *peer);
/* A success of peer: its delay ends (auth_guard_ok, now). */
void auth_attempt_ok(const char *peer);
/* A failure of peer (auth_guard_fail, now): answer(arg) is called once,
 * from the loop, after the guard's delay (never from inside this call, even
 * for a delay of 0), unless auth_attempt_cancel() comes first.  Returns the
 * delay in ms.  One failure at a time: a pending one is a broken invariant
 * (aborts).  When answer runs, a is free again (another failure may start). */
long auth_attempt_fail(struct auth_attempt *a, struct event_base *base, const char *peer,
                       auth_attempt_answer_cb *answer, void *arg);
/* 1 while a failure's answer is pending. */
int auth_attempt_pending(const struct auth_attempt *a);
/* Drops a pending answer (never called then); nothing when none. */
void auth_attempt_cancel(struct auth_attempt *a);

#endif

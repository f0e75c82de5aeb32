/*
 * auth/passwd — password checks off the event loop.  auth_passwd_check
 * copies the hash and the password into a check and queues it; one of a
 * few worker threads (started with every signal blocked, each with its own
 * heap-allocated struct crypt_data: 32 KiB, too large for a stack) runs
 * crypt_rn and the constant-time comparison (hash.c), wipes the password,
 * and posts the check to a done list; the loop is woken with event_active
 * on one event (evthread_use_pthreads must be on) and calls the callbacks
 * from there, at most AUTH_DISPATCH_BATCH per wake-up.
 *
 * A check is in exactly one place, changed only under the mutex: QUEUED
 * (the queue), RUNNING (a worker has it; nothing else touches it), DONE
 * (the done list) or CALLING (its callback is running on the loop).  Cancel
 * frees a QUEUED or DONE check at once, marks a RUNNING one for its worker
 * to free when it finishes, and leaves a CALLING one to the dispatcher: so
 * a cancelled callback is never called and each check is freed exactly
 * once, by whoever holds it last.
 *
 * Trusts: its callers to cancel a check before freeing what arg points at,
 * and not to touch a check after its callback ran (it is freed then).
 * Bounds: at most AUTH_CHECKS_MAX checks outstanding (queued, hashing, or
 * answered and not yet called back); past that auth_passwd_check returns
 * NULL and the caller answers "try later".  A password longer than
 * libcrypt hashes (AUTH_HASHABLE_MAX, 511 bytes; AUTH_PASSWORD_MAX is
 * larger) is answered "no" without being copied or hashed.
 * Passwords are wiped (explicit_bzero) once hashed and again when freed,
 * and never logged; neither is the hash.
 */
#include <crypt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "auth/passwd.h"
#include "core/log.h"
#include "core/util.h"
#include "auth_int.h"

#define AUTH_CHECKS_MAX     1024    /* outstanding checks; more: NULL */
#define AUTH_THREADS_MAX    16
#define AUTH_DISPATCH_BATCH 64      /* callbacks per wake-up of the loop */

enum auth_state { CK_QUEUED, CK_RUNNING, CK_DONE, CK_CALLING };

struct auth_check {
    struct auth_check *prev, *next;
    enum auth_state state;
    int cancelled;                  /* RUNNING: its worker frees it */
    int result;                     /* 1 match, 0 no, -1 unusable hash */
    int dummy;                      /* the hash is dummy_hash: never a match */
    auth_passwd_cb cb;
    void *arg;
    char *hash;
    char *password;                 /* NULL: too long, never copied */
    size_t pwlen;
};

struct auth_list {
    struct auth_check *head, *tail;
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cond;            /* the queue has work, or stopping */
    struct event_base *base;        /* NULL: not started */
    struct event *done_ev;
    pthread_t threads[AUTH_THREADS_MAX];
    unsigned nthreads;
    int stopping;
    int armed;                      /* done_ev activated, not yet run */
    unsigned outstanding;
    struct auth_list queue, done;
} P = { .mu = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

void (*auth_passwd_test_running)(void);

static void list_push(struct auth_list *l, struct auth_check *c)
{
    c->next = NULL;
    c->prev = l->tail;
    if (l->tail)
        l->tail->next = c;
    else
        l->head = c;
    l->tail = c;
}

static void list_del(struct auth_list *l, struct auth_check *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        l->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        l->tail = c->prev;
    c->prev = c->next = NULL;
}

static struct auth_check *list_pop(struct auth_list *l)
{
    struct auth_check *c = l->head;
    if (c)
        list_del(l, c);
    return c;
}

static void check_wipe(struct auth_check *c)
{
    if (c->password)
        explicit_bzero(c->password, c->pwlen);
}

/* With the mutex held. */
static void check_free_locked(struct auth_check *c)
{
    check_wipe(c);
    free(c->password);
    free(c->hash);
    free(c);
    if (P.outstanding == 0)
        log_fatal("auth: check count underflow");
    P.outstanding--;
}

/* With the mutex held: c goes to the done list; 1 when the loop must be
 * woken (call passwd_wake after unlocking). */
static int post_locked(struct auth_check *c)
{
    c->state = CK_DONE;
    list_push(&P.done, c);
    if (P.armed)
        return 0;
    P.armed = 1;
    return 1;
}

static void passwd_wake(void)
{
    event_active(P.done_ev, EV_READ, 0);
}

static void *passwd_worker(void *arg)
{
    struct crypt_data *data = arg;
    pthread_mutex_lock(&P.mu);
    for (;;) {
        while (!P.stopping && !P.queue.head)
            pthread_cond_wait(&P.cond, &P.mu);
        if (P.stopping)
            break;
        struct auth_check *c = list_pop(&P.queue);
        c->state = CK_RUNNING;
        pthread_mutex_unlock(&P.mu);
        if (auth_passwd_test_running)
            auth_passwd_test_running();
        int r = auth_crypt_verify(c->hash, c->password, data);
        check_wipe(c);
        pthread_mutex_lock(&P.mu);
        c->result = c->dummy && r > 0 ? 0 : r;
        if (c->cancelled) {
            check_free_locked(c);
            continue;
        }
        if (post_locked(c)) {
            /* shutdown joins this thread before freeing done_ev */
            pthread_mutex_unlock(&P.mu);
            passwd_wake();
            pthread_mutex_lock(&P.mu);
        }
    }
    pthread_mutex_unlock(&P.mu);
    explicit_bzero(data, sizeof *data);
    free(data);
    return NULL;
}

/* The scheme of an unusable hash for the log ("$1$", "*", "empty"), never
 * the hash itself. */
static void hash_scheme(const char *hash, char *out, size_t outlen)
{
    size_t n = 0;
    if (hash[0] == '$')
        for (n = 1; n < 8 && hash[n] && hash[n] != '$'; n++)
            if (!((hash[n] >= 'a' && hash[n] <= 'z') || (hash[n] >= '0' && hash[n] <= '9')))
                break;
    if (n > 1 && hash[n] == '$')
        snprintf(out, outlen, "%.*s", (int)n + 1, hash);
    else
        snprintf(out, outlen, "%s", !hash[0] ? "empty" : hash[0] == '*' ? "*" :
                                    hash[0] == '!' ? "!" : "unknown");
}

/* On the loop: calls back the checks that are done. */
static void passwd_dispatch(evutil_socket_t fd, short what, void *arg)
{
    pthread_mutex_lock(&P.mu);
    P.armed = 0;
    for (int n = 0; n < AUTH_DISPATCH_BATCH; n++) {
        struct auth_check *c = list_pop(&P.done);
        if (!c)
            break;
        c->state = CK_CALLING;
        pthread_mutex_unlock(&P.mu);
        if (c->result < 0) {
            char scheme[16];
            hash_scheme(c->hash, scheme, sizeof scheme);
            log_warn("auth: password hash unusable (scheme=%s): never a match", scheme);
        }
        c->cb(c->result > 0, c->arg);
        pthread_mutex_lock(&P.mu);
        check_free_locked(c);
    }
    int again = P.done.head && P.done_ev && !P.armed;
    if (again)
        P.armed = 1;
    pthread_mutex_unlock(&P.mu);
    if (again)
        passwd_wake();
}

/* pthread_create with every signal blocked in the new thread (signals are
 * the loop's), as kickmaild's thread_start. */
static int passwd_thread_start(pthread_t *t, void *arg)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int e = pthread_create(t, NULL, passwd_worker, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return e;
}

int auth_passwd_init(struct event_base *base, unsigned threads, char *why, size_t whylen)
{
    if (P.base)
        return util_fail(why, whylen, "password checker already started");
    if (!threads)
        threads = 2;
    if (threads > AUTH_THREADS_MAX)
        threads = AUTH_THREADS_MAX;
    P.done_ev = event_new(base, -1, 0, passwd_dispatch, NULL);
    if (!P.done_ev)
        return util_fail(why, whylen, "cannot create the password checker's event");
    P.base = base;
    P.stopping = 0;
    P.armed = 0;
    for (unsigned i = 0; i < threads; i++) {
        struct crypt_data *data = xcalloc(1, sizeof *data);
        int e = passwd_thread_start(&P.threads[i], data);
        if (e) {
            free(data);
            auth_passwd_shutdown();
            return util_fail(why, whylen, "cannot start a password thread: %s", strerror(e));
        }
        P.nthreads = i + 1;
    }
    return 0;
}

void auth_passwd_shutdown(void)
{
    if (!P.base)
        return;
    pthread_mutex_lock(&P.mu);
    P.stopping = 1;
    pthread_cond_broadcast(&P.cond);
    pthread_mutex_unlock(&P.mu);
    for (unsigned i = 0; i < P.nthreads; i++)
        pthread_join(P.threads[i], NULL);
    P.nthreads = 0;
    pthread_mutex_lock(&P.mu);
    /* a check whose worker finished is on the done list by now; one whose
     * callback is running is the dispatcher's to free */
    struct auth_check *c;
    while ((c = list_pop(&P.queue)))
        check_free_locked(c);
    while ((c = list_pop(&P.done)))
        check_free_locked(c);
    event_free(P.done_ev);
    P.done_ev = NULL;
    P.base = NULL;
    P.armed = 0;
    pthread_mutex_unlock(&P.mu);
}

/* A yescrypt hash of a password nobody has: unknown accounts are checked
 * against it, so that they cost what a known account costs. */
static const char dummy_hash[] =
    "$y$j9T$/KX/EFvC6hzNrW.X1RWqp/$kUuGQCyIV6Psxh1KGGxM6k8bAwfcLoLvGUgw6I6e9UC";

struct auth_check *auth_passwd_check(const char *hash, const char *password,
                                     auth_passwd_cb cb, void *arg)
{
    if (!password || !cb)
        return NULL;
    size_t plen = strnlen(password, AUTH_HASHABLE_MAX + 1);
    pthread_mutex_lock(&P.mu);
    int room = P.base && !P.stopping && P.outstanding < AUTH_CHECKS_MAX;
    if (room)
        P.outstanding++;
    pthread_mutex_unlock(&P.mu);
    if (!room)
        return NULL;
    struct auth_check *c = xcalloc(1, sizeof *c);
    c->cb = cb;
    c->arg = arg;
    c->dummy = !hash;
    c->hash = xstrdup(hash ? hash : dummy_hash);
    if (plen <= AUTH_HASHABLE_MAX) {
        c->password = xstrndup(password, plen);
        c->pwlen = plen;
    }
    int wake = 0;
    pthread_mutex_lock(&P.mu);
    if (!c->password) {             /* too long: "no" without hashing */
        c->result = 0;
        wake = post_locked(c);
    } else {
        c->state = CK_QUEUED;
        list_push(&P.queue, c);
        pthread_cond_signal(&P.cond);
    }
    pthread_mutex_unlock(&P.mu);
    if (wake)
        passwd_wake();
    return c;
}

void auth_passwd_cancel(struct auth_check *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&P.mu);
    switch (c->state) {
    case CK_QUEUED:
        list_del(&P.queue, c);
        check_free_locked(c);
        break;
    case CK_DONE:
        list_del(&P.done, c);
        check_free_locked(c);
        break;
    case CK_RUNNING:
        c->cancelled = 1;
        break;
    case CK_CALLING:                /* from its own callback: freed after it */
        break;
    }
    pthread_mutex_unlock(&P.mu);
}

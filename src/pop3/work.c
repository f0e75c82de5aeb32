/*
 * work — the POP3 server's worker threads: each piece of blocking work
 * (listing a maildrop, reading a message chunk, applying a QUIT) runs in
 * one of a few threads, and its completion is handed back to the event
 * loop, where done() runs.  Trusts its callers (the sessions) to keep a
 * work alive until its done(); guarantees that done() runs on the loop
 * thread, exactly once per submitted work, in the order the works ended,
 * and never from inside pop3_work_submit().  Threads start with every
 * signal blocked (signals are the loop's).
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "core/log.h"
#include "core/util.h"
#include "pop3_int.h"

#define MAX_THREADS 8

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct pop3_work *todo, **todo_tail;    /* waiting for a thread */
    struct pop3_work *done, **done_tail;    /* run, waiting for the loop */
    struct event *ev;           /* activated when done gets a work */
    pthread_t threads[MAX_THREADS];
    unsigned nthreads;
    int stop;
    unsigned busy;              /* works submitted whose done() has not run */
    unsigned long submitted;    /* works submitted since start (tests) */
} W = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

static void *worker(void *arg)
{
    pthread_mutex_lock(&W.lock);
    for (;;) {
        while (!W.todo && !W.stop)
            pthread_cond_wait(&W.cond, &W.lock);
        if (!W.todo)
            break;
        struct pop3_work *w = W.todo;
        W.todo = w->next;
        if (!W.todo)
            W.todo_tail = &W.todo;
        pthread_mutex_unlock(&W.lock);
        w->run(w);
        pthread_mutex_lock(&W.lock);
        w->next = NULL;
        int wake = W.done == NULL;
        *W.done_tail = w;
        W.done_tail = &w->next;
        if (wake)
            event_active(W.ev, EV_READ, 0);
    }
    pthread_mutex_unlock(&W.lock);
    return NULL;
}

/* On the loop: every work that has run gets its done(). */
static void on_done(evutil_socket_t fd, short what, void *arg)
{
    pthread_mutex_lock(&W.lock);
    struct pop3_work *list = W.done;
    W.done = NULL;
    W.done_tail = &W.done;
    pthread_mutex_unlock(&W.lock);
    while (list) {
        struct pop3_work *w = list;
        list = w->next;
        W.busy--;
        w->done(w);
    }
}

int pop3_work_init(struct event_base *base, unsigned threads, char *err, size_t errlen)
{
    if (W.ev)
        return 0;
    if (threads > MAX_THREADS)
        threads = MAX_THREADS;
    W.todo_tail = &W.todo;
    W.done_tail = &W.done;
    W.stop = 0;
    W.ev = event_new(base, -1, 0, on_done, NULL);
    if (!W.ev)
        return util_fail(err, errlen, "pop3: cannot create the worker event");
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    for (W.nthreads = 0; W.nthreads < threads; W.nthreads++) {
        int e = pthread_create(&W.threads[W.nthreads], NULL, worker, NULL);
        if (e) {
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            return util_fail(err, errlen, "pop3: cannot start a worker thread: %s",
                             strerror(e));
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return 0;
}

void pop3_work_submit(struct pop3_work *w)
{
    if (!W.ev)
        log_fatal("pop3: work submitted without worker threads");
    w->next = NULL;
    W.busy++;
    W.submitted++;
    pthread_mutex_lock(&W.lock);
    *W.todo_tail = w;
    W.todo_tail = &w->next;
    pthread_cond_signal(&W.cond);
    pthread_mutex_unlock(&W.lock);
}

unsigned long pop3_work_submitted(void)
{
    return W.submitted;
}

void pop3_work_shutdown(void)
{
    if (!W.ev)
        return;
    pthread_mutex_lock(&W.lock);
    W.stop = 1;             /* the threads run what is queued, then end */
    pthread_cond_broadcast(&W.cond);
    pthread_mutex_unlock(&W.lock);
    for (unsigned i = 0; i < W.nthreads; i++)
        pthread_join(W.threads[i], NULL);
    W.nthreads = 0;
    on_done(-1, 0, NULL);
    if (W.busy)
        log_fatal("pop3: %u works still in flight at shutdown", W.busy);
    event_free(W.ev);
    W.ev = NULL;
}

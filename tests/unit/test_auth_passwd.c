/*
 * test_auth_passwd — auth/passwd and auth/hash on a real event loop with
 * the real worker threads: a table of checks (yescrypt and SHA-512 crypt
 * hashes, right / wrong / empty / over-long passwords, the 511-byte
 * boundary of libcrypt, unusable hashes "*", "!", "", a locked "!$6$...", an unknown
 * scheme), each answered later on the loop and never from inside
 * auth_passwd_check; cancels (while queued, while a worker hashes it, once
 * answered but not yet called back, from another check's callback, and
 * hundreds at random moments: run under ASan for use-after-free and
 * double frees); the bound on outstanding checks; shutdown with checks in
 * flight; auth_passwd_hash (yescrypt, fresh salt each time, verified with
 * crypt_r), auth_hash_problem (a table) and auth_secret_equal.
 *
 * The SHA-512 hash of "correct horse" with salt "kickmailsalt" was checked
 * against OpenSSL (`openssl passwd -6 -salt kickmailsalt 'correct horse'`),
 * an implementation apart from libcrypt; the yescrypt one comes from
 * libcrypt (python3's crypt.crypt with a fixed salt).
 */
#include <crypt.h>
#include <pthread.h>
#include <semaphore.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "auth/passwd.h"
#include "../../src/auth/auth_int.h"

#define PW "correct horse"
#define H_SHA512 "$6$kickmailsalt$aKtmZB/6t4Khl2D/2fxePKqUqlbAiiVlyFDzRHhi1JB29PkkfxirJSEXBV1KG40KjVfsiOeH6SO8H.vgTRZmf0"
#define H_SHA512_ROUNDS "$6$rounds=5000$kickmailsalt$aKtmZB/6t4Khl2D/2fxePKqUqlbAiiVlyFDzRHhi1JB29PkkfxirJSEXBV1KG40KjVfsiOeH6SO8H.vgTRZmf0"
#define H_YESCRYPT "$y$j9T$kickmailsaltkickmail$iheA4fYptyU5XpYeROTFPK1Rb7ZwO3wLdHPrmVdaul4"
/* "x", cheap (1000 rounds): for the many-checks tests */
#define H_CHEAP "$6$rounds=1000$cheap$BEt8rxocuDmw3r.jtIiQ4v9Y74bYKU0zc6Uny5DR9j78NcWO9eEjGJ2OIQMO6tHisRMLexD1VKAlvmP6i3uSk."
#define CHECKS_MAX 1024             /* passwd.c's AUTH_CHECKS_MAX */

struct answer {
    int called;
    int ok;
};

static struct event_base *base;
static int answered;                /* callbacks so far */

static void on_answer(int ok, void *arg)
{
    struct answer *a = arg;
    a->called++;
    a->ok = ok;
    answered++;
}

/* Loop-break conditions for run_until. */
static int want_answers;
static int enough_answers(void)
{
    return answered >= want_answers;
}

static int (*run_done)(void);
static void tick(evutil_socket_t fd, short what, void *arg)
{
    if (run_done())
        event_base_loopbreak(base);
}

/* Runs the loop until done() holds, or secs passed. */
static void run_while(int (*done)(void), double secs)
{
    struct timeval iv = { 0, 2000 };
    run_done = done;
    struct event *t = event_new(base, -1, EV_PERSIST, tick, NULL);
    event_add(t, &iv);
    struct timeval limit = { (time_t)secs, (suseconds_t)((secs - (time_t)secs) * 1e6) };
    event_base_loopexit(base, &limit);
    event_base_dispatch(base);
    event_free(t);
}

/* Runs the loop until `want` callbacks came in all, or secs passed. */
static void run_until(int want, double secs)
{
    want_answers = want;
    run_while(enough_answers, secs);
}

static int setup(void **state)
{
    char why[256];
    base = event_base_new();
    answered = 0;
    assert_int_equal(auth_passwd_init(base, 2, why, sizeof why), 0);
    return 0;
}

static int teardown(void **state)
{
    auth_passwd_test_running = NULL;
    auth_passwd_shutdown();
    event_base_free(base);
    return 0;
}

/* A SHA-512 hash (rounds=1000) of password made here with crypt_r. */
static char *sha512_of(const char *password)
{
    struct crypt_data *d = calloc(1, sizeof *d);
    const char *h = crypt_r(password, "$6$rounds=1000$longpw$", d);
    assert_non_null(h);
    assert_int_equal(h[0], '$');
    char *r = strdup(h);
    free(d);
    return r;
}

static void test_checks(void **state)
{
    char *max = malloc(AUTH_PASSWORD_MAX + 2);
    memset(max, 'p', AUTH_PASSWORD_MAX + 1);
    max[AUTH_HASHABLE_MAX] = 0;                 /* the longest libcrypt hashes */
    char *h_max = sha512_of(max);
    char *unhashable = malloc(AUTH_HASHABLE_MAX + 2);   /* one byte more */
    memset(unhashable, 'p', AUTH_HASHABLE_MAX + 1);
    unhashable[AUTH_HASHABLE_MAX + 1] = 0;
    char *over = malloc(AUTH_PASSWORD_MAX + 2);
    memset(over, 'p', AUTH_PASSWORD_MAX + 1);
    over[AUTH_PASSWORD_MAX + 1] = 0;            /* over AUTH_PASSWORD_MAX */
    const struct { const char *hash, *pw; int ok; } cases[] = {
        { H_YESCRYPT, PW, 1 },
        { H_YESCRYPT, "correct horsE", 0 },
        { H_YESCRYPT, "correct hors", 0 },
        { H_YESCRYPT, "", 0 },
        { H_SHA512, PW, 1 },
        { H_SHA512_ROUNDS, PW, 1 },
        { H_SHA512, "correct horse ", 0 },
        { H_SHA512, "", 0 },
        { H_CHEAP, "x", 1 },
        { h_max, max, 1 },
        { h_max, unhashable, 0 },               /* not hashed: no match */
        { h_max, over, 0 },
        { "*", PW, 0 },
        { "*", "", 0 },
        { "!", PW, 0 },
        { "", PW, 0 },
        { "", "", 0 },
        { "!" H_SHA512, PW, 0 },                /* a locked account */
        { "*0", PW, 0 },
        { "$9$nosuchscheme$abc", PW, 0 },
        { "$6$kickmailsalt$", PW, 0 },           /* a setting, not a hash */
        { "$y$j9T$kickmailsaltkickmail$", PW, 0 },
        { "ab", PW, 0 },
    };
    enum { N = sizeof cases / sizeof cases[0] };
    struct answer a[N];
    memset(a, 0, sizeof a);
    for (size_t i = 0; i < N; i++) {
        assert_non_null(auth_passwd_check(cases[i].hash, cases[i].pw, on_answer, &a[i]));
        assert_int_equal(a[i].called, 0);       /* never from inside the call */
    }
    run_until(N, 30);
    for (size_t i = 0; i < N; i++) {
        if (a[i].called != 1 || a[i].ok != cases[i].ok) {
            print_error("case %zu (hash %.20s, password %.20s): called %d ok %d\n",
                        i, cases[i].hash, cases[i].pw, a[i].called, a[i].ok);
            fail();
        }
    }
    assert_int_equal(answered, N);
    free(max);
    free(unhashable);
    free(over);
    free(h_max);
}

/* The check is a copy: the caller's strings may change at once. */
static void test_copies(void **state)
{
    char hash[] = H_SHA512, pw[] = PW;
    struct answer a = { 0 };
    assert_non_null(auth_passwd_check(hash, pw, on_answer, &a));
    memset(hash, '*', sizeof hash - 1);
    memset(pw, 0, sizeof pw);
    run_until(1, 10);
    assert_int_equal(a.called, 1);
    assert_int_equal(a.ok, 1);
}

/* No hash (an unknown account): checked against a dummy, always no. */
static void test_no_hash(void **state)
{
    struct answer a = { 0 };
    assert_non_null(auth_passwd_check(NULL, PW, on_answer, &a));
    run_until(1, 10);
    assert_int_equal(a.called, 1);
    assert_int_equal(a.ok, 0);
}

static void test_bad_arguments(void **state)
{
    struct answer a = { 0 };
    assert_null(auth_passwd_check(H_SHA512, NULL, on_answer, &a));
    assert_null(auth_passwd_check(H_SHA512, PW, NULL, &a));
    auth_passwd_cancel(NULL);
}

static void test_not_started(void **state)
{
    struct answer a = { 0 };
    assert_null(auth_passwd_check(H_SHA512, PW, on_answer, &a));
    char why[256];
    struct event_base *b = event_base_new();
    assert_int_equal(auth_passwd_init(b, 0, why, sizeof why), 0);
    assert_int_equal(auth_passwd_init(b, 1, why, sizeof why), -1);
    assert_non_null(strstr(why, "already"));
    auth_passwd_shutdown();
    auth_passwd_shutdown();                     /* twice: harmless */
    event_base_free(b);
}

/* A worker held inside the test hook: the check it took is RUNNING. */
static sem_t started, go;
static void hold_worker(void)
{
    sem_post(&started);
    sem_wait(&go);
}

static void test_cancel_queued_running_done(void **state)
{
    /* one worker, held on the first check: the second stays queued */
    auth_passwd_shutdown();
    char why[256];
    assert_int_equal(auth_passwd_init(base, 1, why, sizeof why), 0);
    sem_init(&started, 0, 0);
    sem_init(&go, 0, 0);
    auth_passwd_test_running = hold_worker;
    struct answer run = { 0 }, queued = { 0 }, done = { 0 }, kept = { 0 };
    struct auth_check *c_run = auth_passwd_check(H_CHEAP, "x", on_answer, &run);
    assert_non_null(c_run);
    sem_wait(&started);
    struct auth_check *c_queued = auth_passwd_check(H_CHEAP, "x", on_answer, &queued);
    assert_non_null(c_queued);
    auth_passwd_cancel(c_run);                  /* its worker frees it */
    auth_passwd_cancel(c_queued);               /* freed here */
    auth_passwd_test_running = NULL;
    sem_post(&go);
    /* answered but not called back: the loop has not run since */
    struct auth_check *c_done = auth_passwd_check(H_CHEAP, "x", on_answer, &done);
    assert_non_null(auth_passwd_check(H_CHEAP, "x", on_answer, &kept));
    usleep(300 * 1000);                         /* ~1 ms of hashing each */
    auth_passwd_cancel(c_done);
    run_until(1, 10);
    run_until(2, 0.2);                          /* nothing more comes */
    assert_int_equal(run.called, 0);
    assert_int_equal(queued.called, 0);
    assert_int_equal(done.called, 0);
    assert_int_equal(kept.called, 1);
    assert_int_equal(kept.ok, 1);
    assert_int_equal(answered, 1);
    sem_destroy(&started);
    sem_destroy(&go);
}

/* Many checks, every other one cancelled at once, the rest while the loop
 * delivers (from the callbacks of others).  Under ASan a use after free
 * or a double free aborts. */
#define MANY 600
static struct auth_check *many[MANY];
static struct answer many_a[MANY];

static void on_answer_cancel_next(int ok, void *arg)
{
    struct answer *a = arg;
    size_t i = (size_t)(a - many_a);
    on_answer(ok, arg);
    many[i] = NULL;
    /* cancel a later check, wherever it is now */
    for (size_t j = i + 1; j < MANY && j < i + 8; j++)
        if (many[j] && j % 3 == 0) {
            auth_passwd_cancel(many[j]);
            many[j] = NULL;
        }
}

static int none_live(void)
{
    for (size_t i = 0; i < MANY; i++)
        if (many[i])
            return 0;
    return 1;
}

static void test_cancel_many(void **state)
{
    memset(many_a, 0, sizeof many_a);
    for (int round = 0; round < 3; round++) {
        int cancelled[MANY] = { 0 };
        memset(many_a, 0, sizeof many_a);
        answered = 0;
        for (size_t i = 0; i < MANY; i++) {
            many[i] = auth_passwd_check(H_CHEAP, i % 5 ? "x" : "y", on_answer_cancel_next, &many_a[i]);
            assert_non_null(many[i]);
            if (i % 2 == 1) {
                if (round == 1)
                    usleep(50);         /* let some be running or done */
                auth_passwd_cancel(many[i]);
                many[i] = NULL;
                cancelled[i] = 1;
            }
        }
        run_while(none_live, 60);
        run_until(MANY + 1, 0.1);              /* nothing more comes */
        int got = 0;
        for (size_t i = 0; i < MANY; i++) {
            if (cancelled[i])
                assert_int_equal(many_a[i].called, 0);
            assert_true(many_a[i].called <= 1);
            if (many_a[i].called)
                assert_int_equal(many_a[i].ok, i % 5 ? 1 : 0);
            got += many_a[i].called;
        }
        /* each even check not cancelled by a callback came back */
        assert_true(got >= MANY / 2 - MANY / 6 - 1);
        assert_int_equal(got, answered);
    }
}

/* Cancelling a check from its own callback does nothing harmful. */
static struct auth_check *self_check;
static void on_answer_cancel_self(int ok, void *arg)
{
    on_answer(ok, arg);
    auth_passwd_cancel(self_check);
}

static void test_cancel_self(void **state)
{
    struct answer a = { 0 };
    self_check = auth_passwd_check(H_CHEAP, "x", on_answer_cancel_self, &a);
    assert_non_null(self_check);
    run_until(1, 10);
    assert_int_equal(a.called, 1);
    assert_int_equal(a.ok, 1);
}

static void test_queue_full(void **state)
{
    auth_passwd_shutdown();
    char why[256];
    assert_int_equal(auth_passwd_init(base, 1, why, sizeof why), 0);
    sem_init(&started, 0, 0);
    sem_init(&go, 0, 0);
    auth_passwd_test_running = hold_worker;
    static struct answer a[CHECKS_MAX + 1];
    memset(a, 0, sizeof a);
    int n = 0;
    while (n < CHECKS_MAX + 1 && auth_passwd_check(H_CHEAP, "x", on_answer, &a[n]))
        n++;
    assert_int_equal(n, CHECKS_MAX);
    /* an over-long password is refused too: it takes a place as well */
    char *over = malloc(AUTH_PASSWORD_MAX + 2);
    memset(over, 'p', AUTH_PASSWORD_MAX + 1);
    over[AUTH_PASSWORD_MAX + 1] = 0;
    assert_null(auth_passwd_check(H_CHEAP, over, on_answer, &a[CHECKS_MAX]));
    free(over);
    sem_wait(&started);
    auth_passwd_test_running = NULL;
    sem_post(&go);
    run_until(CHECKS_MAX, 120);
    assert_int_equal(answered, CHECKS_MAX);
    for (int i = 0; i < CHECKS_MAX; i++)
        assert_int_equal(a[i].ok, 1);
    /* room again */
    struct answer b = { 0 };
    assert_non_null(auth_passwd_check(H_CHEAP, "x", on_answer, &b));
    run_until(CHECKS_MAX + 1, 10);
    assert_int_equal(b.called, 1);
    sem_destroy(&started);
    sem_destroy(&go);
}

/* Shutdown with checks queued, running, and answered: no callback, and
 * (under ASan) nothing leaked; then a new start works. */
static void test_shutdown_in_flight(void **state)
{
    struct answer a[40];
    memset(a, 0, sizeof a);
    for (int i = 0; i < 40; i++)
        assert_non_null(auth_passwd_check(H_CHEAP, "x", on_answer, &a[i]));
    usleep(5 * 1000);
    auth_passwd_shutdown();
    run_until(1, 0.1);
    for (int i = 0; i < 40; i++)
        assert_int_equal(a[i].called, 0);
    char why[256];
    assert_int_equal(auth_passwd_init(base, 2, why, sizeof why), 0);
    struct answer b = { 0 };
    assert_non_null(auth_passwd_check(H_SHA512, PW, on_answer, &b));
    run_until(1, 10);
    assert_int_equal(b.called, 1);
    assert_int_equal(b.ok, 1);
}

static int crypt_matches(const char *hash, const char *pw)
{
    struct crypt_data *d = calloc(1, sizeof *d);
    const char *h = crypt_r(pw, hash, d);
    int r = h && strcmp(h, hash) == 0;
    free(d);
    return r;
}

static void test_hash(void **state)
{
    char h1[256], h2[256], why[256];
    assert_int_equal(auth_passwd_hash(PW, h1, sizeof h1, why, sizeof why), 0);
    assert_int_equal(auth_passwd_hash(PW, h2, sizeof h2, why, sizeof why), 0);
    assert_memory_equal(h1, "$y$", 3);
    assert_string_not_equal(h1, h2);            /* a fresh salt each time */
    assert_true(crypt_matches(h1, PW));
    assert_true(crypt_matches(h2, PW));
    assert_false(crypt_matches(h1, "correct horsE"));
    /* and through the checker */
    struct answer a = { 0 }, b = { 0 };
    assert_non_null(auth_passwd_check(h1, PW, on_answer, &a));
    assert_non_null(auth_passwd_check(h1, "wrong", on_answer, &b));
    run_until(2, 10);
    assert_int_equal(a.ok, 1);
    assert_int_equal(b.called, 1);
    assert_int_equal(b.ok, 0);

    assert_int_equal(auth_passwd_hash("", h1, sizeof h1, why, sizeof why), -1);
    assert_string_equal(why, "empty password");
    char *over = malloc(AUTH_HASHABLE_MAX + 2);
    memset(over, 'p', AUTH_HASHABLE_MAX + 1);
    over[AUTH_HASHABLE_MAX + 1] = 0;
    assert_int_equal(auth_passwd_hash(over, h1, sizeof h1, why, sizeof why), -1);
    assert_string_equal(why, "password longer than 511 bytes");
    over[AUTH_HASHABLE_MAX] = 0;
    assert_int_equal(auth_passwd_hash(over, h1, sizeof h1, why, sizeof why), 0);
    assert_true(crypt_matches(h1, over));
    free(over);
    char small[20];
    assert_int_equal(auth_passwd_hash(PW, small, sizeof small, why, sizeof why), -1);
    assert_non_null(strstr(why, "hash longer"));
}

/* auth_hash_problem: what can never match is named, the rest is not. */
static void test_hash_problem(void **state)
{
    static const struct { const char *hash; int problem; } rows[] = {
        { "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$X3DX6M94c7o.9agCG9G317fhZg9SqC.5i5rd.RhAtQ7", 0 },
        { "$6$kickmaildev$jb4n5zLcivFHyqMpsGeAZDS7k7hYnUapJD68cVfLXdCWKCrPTW1bdoE6Usa0Z"
          "bchbLqYetzbwaeuib9UTTfHj0", 0 },
        { "abJnggxhB/yWI", 0 },             /* DES */
        { "*", 0 }, { "!", 0 }, { "!$6$x$y", 0 },   /* locked on purpose */
        { "", 1 }, { "s3cret", 1 }, { "abJnggxhB/yWIx", 1 }, { "{PLAIN}secret", 1 },
        { "$9$nonsense", 1 },
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        if ((auth_hash_problem(rows[i].hash) != NULL) != rows[i].problem)
            fail_msg("row %zu \"%s\": %s", i, rows[i].hash,
                     auth_hash_problem(rows[i].hash) ? auth_hash_problem(rows[i].hash) : "ok");
}

static void test_secret_equal(void **state)
{
    static const struct { const char *secret, *given; int eq; } cases[] = {
        { "s3cret", "s3cret", 1 },
        { "s3cret", "s3creT", 0 },
        { "s3cret", "S3cret", 0 },
        { "s3cret", "s3cre", 0 },
        { "s3cret", "s3crets", 0 },
        { "s3cret", "s3cret\n", 0 },
        { "s3cret", "", 0 },
        { "s", "ss", 0 },
        { "ss", "s", 0 },
        { "aaaa", "aaaaaaaa", 0 },              /* a repeated prefix */
        { "", "", 0 },                          /* no secret: no match */
        { "", "x", 0 },
        { "x", "x", 1 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (auth_secret_equal(cases[i].secret, cases[i].given) != cases[i].eq) {
            print_error("secret \"%s\" given \"%s\"\n", cases[i].secret, cases[i].given);
            fail();
        }
    }
    assert_int_equal(auth_secret_equal(NULL, "x"), 0);
    assert_int_equal(auth_secret_equal("x", NULL), 0);
    /* the byte form: lengths differ, no bytes to read past a */
    assert_int_equal(auth_bytes_equal("abc", 3, "abc", 3), 1);
    assert_int_equal(auth_bytes_equal("abc", 2, "ab", 2), 1);
    assert_int_equal(auth_bytes_equal("", 0, "", 0), 1);
    assert_int_equal(auth_bytes_equal("", 0, "a", 1), 0);
    assert_int_equal(auth_bytes_equal("a", 1, "", 0), 0);
}

int main(void)
{
    evthread_use_pthreads();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_not_started),
        cmocka_unit_test(test_hash_problem),
        cmocka_unit_test_setup_teardown(test_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_copies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_hash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_queued_running_done, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_many, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_self, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shutdown_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hash, setup, teardown),
        cmocka_unit_test(test_secret_equal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

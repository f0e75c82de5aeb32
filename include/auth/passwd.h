/*
 * auth/passwd — checking passwords without blocking the event loop.
 * Hashes are crypt(3) strings checked with libcrypt's crypt_r (yescrypt
 * "$y$", SHA-512 crypt "$6$", and whatever else the system's libcrypt
 * accepts); a check costs milliseconds, so it runs in a worker thread and
 * its answer comes back on the loop.  Plaintext-equivalent secrets (a
 * customer's `secret`) are compared in constant time.  Passwords are never
 * logged and are wiped from memory after use.
 */
#ifndef KM_AUTH_PASSWD_H
#define KM_AUTH_PASSWD_H

#include <stddef.h>

struct event_base;
struct auth_check;

#define AUTH_PASSWORD_MAX 1024      /* longer: refused without hashing */
/* libcrypt hashes at most CRYPT_MAX_PASSPHRASE_SIZE - 1 (511) bytes: a
 * longer password never matches either, and is not hashed. */

/* Starts the worker threads (threads 0: 2).  0 / -1 with why. */
int auth_passwd_init(struct event_base *base, unsigned threads, char *why, size_t whylen);
/* Stops them; checks in flight are cancelled (no callback). */
void auth_passwd_shutdown(void);

/* ok: 1 the password matches, 0 it does not (or the hash is unusable:
 * logged once, never a match). */
typedef void (*auth_passwd_cb)(int ok, void *arg);

/* Checks password against hash off the loop; both are copied.  The callback
 * runs later on the loop (never from inside this call).  NULL when the check
 * cannot be queued (then nothing is called back).  hash NULL: an account
 * that does not exist (or has no hash): the password is hashed against a
 * hash of a password nobody has, so that the answer takes what a known
 * account's takes, and the answer is always no. */
struct auth_check *auth_passwd_check(const char *hash, const char *password,
                                     auth_passwd_cb cb, void *arg);
/* The callback of c will not be called (a session that went away). */
void auth_passwd_cancel(struct auth_check *c);

/* BLOCKING (for kickq): a new yescrypt hash of password into out.
 * 0 / -1 with why. */
int auth_passwd_hash(const char *password, char *out, size_t outlen,
                     char *why, size_t whylen);

/* Why a maildrop's password can never match, or NULL: "", text that is
 * neither a "$id$" hash nor a DES one (plain text), a hash libcrypt
 * refuses.  A locked hash ("*...", "!...") is NULL: no login, on purpose. */
const char *auth_hash_problem(const char *hash);

/* Constant-time comparison of a plaintext-equivalent secret: 1 equal. */
int auth_secret_equal(const char *secret, const char *given);

#endif

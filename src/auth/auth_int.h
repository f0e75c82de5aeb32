/*
 * auth_int — what the files of src/auth/ share and nothing else uses.
 */
#ifndef KM_AUTH_INT_H
#define KM_AUTH_INT_H

#include <stddef.h>

struct crypt_data;

/* The longest password libcrypt hashes (CRYPT_MAX_PASSPHRASE_SIZE - 1):
 * a longer one never matches a hash it made. */
#define AUTH_HASHABLE_MAX 511

/* Hashes password with the setting hash (crypt_rn into *data, which the
 * caller allocates, zeroed before its first use) and compares the result
 * with hash in constant time.  1 match, 0 no match, -1 the hash is unusable
 * (libcrypt refused it, or it is "", "*...", "!..."): never a match.  Wipes
 * data's output and derived state before returning. */
int auth_crypt_verify(const char *hash, const char *password, struct crypt_data *data);

/* Constant-time equality of a[0..alen) and b[0..blen): the time depends on
 * blen only, never on where they differ.  a[0] must be readable even when
 * alen is 0 (a C string's NUL will do).  1 equal. */
int auth_bytes_equal(const char *a, size_t alen, const char *b, size_t blen);

/* Test hook: when set, each worker calls it after taking a check off the
 * queue (the check is RUNNING) and before hashing. */
extern void (*auth_passwd_test_running)(void);

/* Test hook: the addresses the guard remembers now. */
size_t auth_guard_test_count(void);

#endif

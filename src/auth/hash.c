/*
 * auth/hash — the blocking half of auth/passwd: one crypt(3) check
 * (auth_crypt_verify, run by passwd.c's worker threads), making a new
 * yescrypt hash (auth_passwd_hash, for `kickq hash-password`), and the
 * constant-time comparisons (auth_secret_equal, auth_bytes_equal).  Needs
 * libcrypt and the C library only (no libevent, no log): kickq links it
 * statically.
 *
 * Trusts nothing in a password or a hash: a hash libcrypt refuses, an empty
 * one, or one starting with '*' or '!' (a locked account) never matches;
 * a password longer than libcrypt takes (AUTH_HASHABLE_MAX, 511 bytes) is
 * never hashed and never matches.  Guarantees
 * that a comparison's time depends only on the length of what the peer
 * gave, never on where or whether the secret differs, and that the crypt
 * work area is wiped after each use (the caller wipes the password).
 */
#include <crypt.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>

#include "auth/passwd.h"
#include "auth_int.h"

_Static_assert(AUTH_HASHABLE_MAX == CRYPT_MAX_PASSPHRASE_SIZE - 1, "libcrypt's limit");

int auth_bytes_equal(const char *a, size_t alen, const char *b, size_t blen)
{
    /* one pass over b whatever a holds; past a's end, a[0] stands in (a
     * byte always there: a[alen] is the NUL when alen is 0) and the length
     * difference decides */
    volatile unsigned char d = (unsigned char)(alen != blen);
    for (size_t i = 0; i < blen; i++) {
        size_t in = (size_t)0 - (size_t)(i < alen);     /* all ones inside a */
        d |= (unsigned char)(a[i & in] ^ b[i]);
    }
    return d == 0;
}

int auth_secret_equal(const char *secret, const char *given)
{
    if (!secret || !given || !secret[0])    /* no secret: nothing matches */
        return 0;
    return auth_bytes_equal(secret, strlen(secret), given, strlen(given));
}

/* The hashes no crypt(3) call should even be asked about. */
static int auth_hash_refused(const char *hash)
{
    return !hash[0] || hash[0] == '*' || hash[0] == '!';
}

int auth_crypt_verify(const char *hash, const char *password, struct crypt_data *data)
{
    if (auth_hash_refused(hash) || strlen(hash) >= CRYPT_OUTPUT_SIZE)
        return -1;
    if (strlen(password) > AUTH_HASHABLE_MAX)
        return 0;                   /* no hash libcrypt made can match */
    memset(data, 0, sizeof *data);
    const char *out = crypt_rn(password, hash, data, (int)sizeof *data);
    int rc;
    if (!out || out[0] == '*')
        rc = -1;
    else
        rc = auth_bytes_equal(out, strlen(out), hash, strlen(hash));
    explicit_bzero(data, sizeof *data);
    return rc;
}

const char *auth_hash_problem(const char *hash)
{
    if (!hash || !hash[0])
        return "empty";
    if (hash[0] == '*' || hash[0] == '!')
        return NULL;                    /* locked on purpose */
    if (hash[0] != '$') {               /* only a DES hash (13 of [./0-9A-Za-z]) */
        size_t n = strspn(hash, "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                "abcdefghijklmnopqrstuvwxyz");
        if (n != 13 || hash[n])
            return "not a crypt(3) hash (plain text?)";
    }
    int ok = crypt_checksalt(hash);
    if (ok == CRYPT_SALT_INVALID || ok == CRYPT_SALT_METHOD_DISABLED)
        return "not a crypt(3) hash this libcrypt can check";
    return NULL;
}

int auth_passwd_hash(const char *password, char *out, size_t outlen,
                     char *why, size_t whylen)
{
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    size_t plen = strlen(password);
    if (!plen || plen > AUTH_HASHABLE_MAX) {
        snprintf(why, whylen, plen ? "password longer than %d bytes" : "empty password",
                 AUTH_HASHABLE_MAX);
        return -1;
    }
    /* NULL random bytes: libcrypt takes them from the kernel (getrandom) */
    if (!crypt_gensalt_rn("$y$", 0, NULL, 0, salt, (int)sizeof salt)) {
        snprintf(why, whylen, "libcrypt cannot make a yescrypt salt");
        return -1;
    }
    struct crypt_data *data = calloc(1, sizeof *data);
    if (!data) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    const char *h = crypt_rn(password, salt, data, (int)sizeof *data);
    int rc = -1;
    if (!h || h[0] == '*' || strncmp(h, "$y$", 3) != 0)
        snprintf(why, whylen, "libcrypt cannot make a yescrypt hash");
    else if (strlen(h) >= outlen)
        snprintf(why, whylen, "hash longer than %zu bytes", outlen ? outlen - 1 : 0);
    else {
        memcpy(out, h, strlen(h) + 1);
        rc = 0;
    }
    explicit_bzero(data, sizeof *data);
    free(data);
    return rc;
}

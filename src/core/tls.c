/*
 * tls — OpenSSL contexts for the io layer.  This is the only file that
 * includes OpenSSL headers.  Trusts the certificate/key/CA files named in
 * the configuration; guarantees the protocol range of the tls section
 * (default TLS 1.2 or newer), its cipher lists, and no renegotiation.
 *
 * Client contexts never fail a handshake over the server's certificate:
 * they load the system's trust store (OpenSSL default paths) and any
 * customer tls_ca files, and a verifying delivery asks tls_ssl_verified()
 * after the handshake (chain, then the name set with SSL_set1_host:
 * OpenSSL's hostname checks, no partial wildcards), like Postfix, so the
 * reason can be told.  Opportunistic deliveries (RFC 7435) do not ask.
 *
 * struct tls_ctx is reference counted (atomically: a reload frees the old
 * generation in another thread) and so is the SSL_CTX under it (every SSL
 * holds one): a reload swaps contexts without touching open sessions.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "core/tls.h"

struct tls_ca {
    char *path;
    X509_STORE *store;
};

struct tls_ctx {
    SSL_CTX *ctx;
    atomic_int refs;
    size_t nca;
    struct tls_ca *cas;             /* client: the customers' tls_ca files */
};

const char *tls_last_error(char *buf, size_t len)
{
    unsigned long e = ERR_get_error();
    if (!e) {
        snprintf(buf, len, "unknown TLS error");
        return buf;
    }
    ERR_error_string_n(e, buf, len);
    ERR_clear_error();
    return buf;
}

/* Takes ownership of ctx. */
static struct tls_ctx *tls_wrap(SSL_CTX *ctx, char *err, size_t errlen)
{
    struct tls_ctx *t = calloc(1, sizeof *t);
    if (!t) {
        SSL_CTX_free(ctx);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    t->ctx = ctx;
    atomic_init(&t->refs, 1);
    return t;
}

/* The tls section's protocol range and cipher lists (tc NULL: defaults). */
static int tls_apply_conf(SSL_CTX *ctx, const struct tls_conf *tc, char *err, size_t errlen)
{
    char ebuf[256];
    int min = tc && tc->min_version ? tc->min_version : TLS1_2_VERSION;
    int max = tc ? tc->max_version : 0;
    if (SSL_CTX_set_min_proto_version(ctx, min) != 1 ||
        SSL_CTX_set_max_proto_version(ctx, max) != 1) {
        snprintf(err, errlen, "protocols: %s", tls_last_error(ebuf, sizeof ebuf));
        return -1;
    }
    if (tc && tc->ciphers && SSL_CTX_set_cipher_list(ctx, tc->ciphers) != 1) {
        snprintf(err, errlen, "ciphers \"%s\": %s", tc->ciphers,
                 tls_last_error(ebuf, sizeof ebuf));
        return -1;
    }
    if (tc && tc->ciphersuites && SSL_CTX_set_ciphersuites(ctx, tc->ciphersuites) != 1) {
        snprintf(err, errlen, "ciphersuites \"%s\": %s", tc->ciphersuites,
                 tls_last_error(ebuf, sizeof ebuf));
        return -1;
    }
    return 0;
}

struct tls_ctx *tls_server_ctx(const char *cert, const char *key, char *err, size_t errlen)
{
    return tls_server_ctx_conf(cert, key, NULL, err, errlen);
}

struct tls_ctx *tls_server_ctx_conf(const char *cert, const char *key,
                                    const struct tls_conf *tc, char *err, size_t errlen)
{
    char ebuf[256];
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        snprintf(err, errlen, "SSL_CTX_new: %s", tls_last_error(ebuf, sizeof ebuf));
        return NULL;
    }
    if (tls_apply_conf(ctx, tc, err, errlen) < 0) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        snprintf(err, errlen, "%s: %s", cert, tls_last_error(ebuf, sizeof ebuf));
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, errlen, "%s: %s", key, tls_last_error(ebuf, sizeof ebuf));
        SSL_CTX_free(ctx);
        return NULL;
    }
    return tls_wrap(ctx, err, errlen);
}

struct tls_ctx *tls_client_ctx(char *err, size_t errlen)
{
    return tls_client_ctx_conf(NULL, err, errlen);
}

struct tls_ctx *tls_client_ctx_conf(const struct tls_conf *tc, char *err, size_t errlen)
{
    char ebuf[256];
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        snprintf(err, errlen, "SSL_CTX_new: %s", tls_last_error(ebuf, sizeof ebuf));
        return NULL;
    }
    if (tls_apply_conf(ctx, tc, err, errlen) < 0) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);     /* tls_ssl_verified() decides */
    if (SSL_CTX_set_default_verify_paths(ctx) != 1)
        ERR_clear_error();          /* no system store: only tls_ca can verify */
    return tls_wrap(ctx, err, errlen);
}

int tls_ctx_add_ca(struct tls_ctx *t, const char *path, char *err, size_t errlen)
{
    char ebuf[256];
    for (size_t i = 0; i < t->nca; i++)
        if (strcmp(t->cas[i].path, path) == 0)
            return 0;
    X509_STORE *st = X509_STORE_new();
    if (!st || X509_STORE_load_file(st, path) != 1) {
        snprintf(err, errlen, "tls_ca %s: %s", path, tls_last_error(ebuf, sizeof ebuf));
        X509_STORE_free(st);
        return -1;
    }
    struct tls_ca *n = realloc(t->cas, (t->nca + 1) * sizeof *n);
    char *p = strdup(path);
    if (!n || !p) {
        free(p);
        if (n)
            t->cas = n;
        X509_STORE_free(st);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    t->cas = n;
    t->cas[t->nca].path = p;
    t->cas[t->nca++].store = st;
    return 0;
}

struct tls_ctx *tls_ctx_ref(struct tls_ctx *t)
{
    if (t)
        atomic_fetch_add(&t->refs, 1);
    return t;
}

/* IPv4 or IPv6 literal? */
static int tls_is_address(const char *name)
{
    unsigned char addr[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1;
}

void *tls_ctx_new_client_ssl(struct tls_ctx *t, const char *sni, const char *verify_name,
                             const char *cafile)
{
    SSL *ssl = SSL_new(t->ctx);
    if (!ssl)
        return NULL;
    tls_ssl_set_sni(ssl, sni);
    if (verify_name && verify_name[0] && !tls_is_address(verify_name)) {
        SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (SSL_set1_host(ssl, verify_name) != 1) {
            SSL_free(ssl);
            return NULL;
        }
    }
    if (!cafile)
        return ssl;
    for (size_t i = 0; i < t->nca; i++)
        if (strcmp(t->cas[i].path, cafile) == 0 &&
            SSL_set1_verify_cert_store(ssl, t->cas[i].store) == 1)
            return ssl;
    SSL_free(ssl);                  /* never the system store instead: fail closed */
    return NULL;
}

int tls_ssl_verified(void *ssl, const char *verify_name, char *why, size_t len)
{
    SSL *s = ssl;
    X509 *peer = s ? SSL_get1_peer_certificate(s) : NULL;
    long r = s ? SSL_get_verify_result(s) : X509_V_ERR_UNSPECIFIED;
    if (!peer) {
        snprintf(why, len, "Server certificate not verified: no certificate");
        return -1;
    }
    X509_free(peer);
    if (r != X509_V_OK) {
        snprintf(why, len, "Server certificate not verified: %s",
                 X509_verify_cert_error_string(r));
        return -1;
    }
    if (!verify_name || !verify_name[0] || tls_is_address(verify_name)) {
        snprintf(why, len, "Server certificate not verified: no name to check "
                 "(the host is the address %s: set tls_name)",
                 verify_name && verify_name[0] ? verify_name : "(none)");
        return -1;
    }
    return 0;
}

void tls_ssl_free(void *ssl)
{
    SSL_free(ssl);
}

void tls_ssl_set_sni(void *ssl, const char *name)
{
    unsigned char addr[sizeof(struct in6_addr)];
    if (!ssl || !name || !name[0])
        return;
    /* RFC 6066 3: literal IP addresses are not permitted in server_name */
    if (inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1)
        return;
    SSL_set_tlsext_host_name((SSL *)ssl, name);
}

void tls_ctx_free(struct tls_ctx *t)
{
    if (!t || atomic_fetch_sub(&t->refs, 1) > 1)
        return;
    for (size_t i = 0; i < t->nca; i++) {
        free(t->cas[i].path);
        X509_STORE_free(t->cas[i].store);
    }
    free(t->cas);
    SSL_CTX_free(t->ctx);
    free(t);
}

void *tls_ctx_new_ssl(struct tls_ctx *t)
{
    return SSL_new(t->ctx);
}

int tls_ssl_established(void *ssl)
{
    return ssl && SSL_is_init_finished((SSL *)ssl) ? 1 : 0;
}

const char *tls_describe(void *ssl, char *buf, size_t len)
{
    SSL *s = ssl;
    const SSL_CIPHER *c = s ? SSL_get_current_cipher(s) : NULL;
    if (!s || !c) {
        if (len) buf[0] = 0;
        return buf;
    }
    snprintf(buf, len, "%s cipher=%s", SSL_get_version(s), SSL_CIPHER_get_name(c));
    return buf;
}

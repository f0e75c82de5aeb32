/*
 * tls — OpenSSL contexts for the io layer.  This is the only file that
 * includes OpenSSL headers.  Trusts the certificate/key files named in the
 * configuration; guarantees TLS 1.2 or newer and no renegotiation.  Client
 * contexts do not verify the server's certificate (opportunistic TLS for
 * delivery to customers' servers, RFC 7435): they protect against passive
 * eavesdropping only.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "core/tls.h"

struct tls_ctx {
    SSL_CTX *ctx;
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
    return t;
}

struct tls_ctx *tls_server_ctx(const char *cert, const char *key, char *err, size_t errlen)
{
    char ebuf[256];
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        snprintf(err, errlen, "SSL_CTX_new: %s", tls_last_error(ebuf, sizeof ebuf));
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
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
    char ebuf[256];
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        snprintf(err, errlen, "SSL_CTX_new: %s", tls_last_error(ebuf, sizeof ebuf));
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    return tls_wrap(ctx, err, errlen);
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
    if (!t)
        return;
    SSL_CTX_free(t->ctx);
    free(t);
}

void *tls_ctx_new_ssl(struct tls_ctx *t)
{
    return SSL_new(t->ctx);
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

/*
 * tls — the only includer of OpenSSL.  Server contexts from a certificate and
 * key (PEM); sessions handed to the io layer as opaque pointers.
 */
#ifndef KM_TLS_H
#define KM_TLS_H

#include <stddef.h>

struct tls_ctx;

/* TLS 1.2 or newer.  NULL + err on failure (unreadable files, key mismatch). */
struct tls_ctx *tls_server_ctx(const char *cert, const char *key, char *err, size_t errlen);
/* Client context: TLS 1.2+, no certificate verification (opportunistic
 * delivery to customers' servers, RFC 7435); NULL + err on failure. */
struct tls_ctx *tls_client_ctx(char *err, size_t errlen);
void tls_ctx_free(struct tls_ctx *ctx);
/* A new SSL object (struct ssl_st *) for one connection. */
void *tls_ctx_new_ssl(struct tls_ctx *ctx);
/* Frees an SSL object that was never handed to a bufferevent. */
void tls_ssl_free(void *ssl);
/* Sets SNI on a client SSL object; does nothing for NULL, "" or an IP
 * address literal (RFC 6066 3 forbids those in server_name). */
void tls_ssl_set_sni(void *ssl, const char *name);
/* Protocol and cipher of a live SSL object into buf. */
const char *tls_describe(void *ssl, char *buf, size_t len);
/* Next OpenSSL error as text (for logs). */
const char *tls_last_error(char *buf, size_t len);

#endif

/*
 * tls — the only includer of OpenSSL.  Server contexts from a certificate and
 * key (PEM); sessions handed to the io layer as opaque pointers.
 */
#ifndef KM_TLS_H
#define KM_TLS_H

#include <stddef.h>

struct tls_ctx;

/* TLS protocol versions, as on the wire (OpenSSL's TLS1_x_VERSION). */
#define TLS_V1_0 0x0301
#define TLS_V1_1 0x0302
#define TLS_V1_2 0x0303
#define TLS_V1_3 0x0304

/* The tls section's settings every context gets.  min_version 0 = TLS 1.2;
 * max_version 0 = the newest OpenSSL has; NULL lists = OpenSSL's defaults. */
struct tls_conf {
    int min_version, max_version;
    const char *ciphers;        /* TLS <= 1.2, OpenSSL cipher list syntax */
    const char *ciphersuites;   /* TLS 1.3, OpenSSL ciphersuites syntax */
};

/* Parses the tls section's `protocols` (tls_proto.c, pure): tokens separated
 * by spaces or commas, each ">=V", "<=V" or a bare "V" (that version only),
 * V one of TLSv1, TLSv1.1, TLSv1.2, TLSv1.3; at most one of each bound; a
 * bare V stands alone.  *min / *max set (0 = no bound: the default minimum
 * TLS 1.2 / the newest).  0, or -1 with why. */
int tls_protocols_parse(const char *spec, int *min, int *max, char *why, size_t whylen);
/* "TLSv1.2" for TLS_V1_2 and so on; "?" for anything else. */
const char *tls_version_name(int version);

/* TLS 1.2 or newer.  NULL + err on failure (unreadable files, key mismatch). */
struct tls_ctx *tls_server_ctx(const char *cert, const char *key, char *err, size_t errlen);
/* The same with the tls section's settings (tc NULL: the defaults). */
struct tls_ctx *tls_server_ctx_conf(const char *cert, const char *key,
                                    const struct tls_conf *tc, char *err, size_t errlen);
/* Client context: TLS 1.2+, handshakes never fail over the certificate
 * (opportunistic delivery to customers' servers, RFC 7435; verifying
 * deliveries ask tls_ssl_verified()); the system trust store loaded.
 * NULL + err on failure. */
struct tls_ctx *tls_client_ctx(char *err, size_t errlen);
struct tls_ctx *tls_client_ctx_conf(const struct tls_conf *tc, char *err, size_t errlen);
/* Loads a customer's tls_ca (PEM) into a client context, once per path.
 * Blocks (reads the file).  0, or -1 with err (unreadable, no certificate). */
int tls_ctx_add_ca(struct tls_ctx *ctx, const char *path, char *err, size_t errlen);
/* One more reference (tls_ctx_free drops one; the last frees).  Thread-safe. */
struct tls_ctx *tls_ctx_ref(struct tls_ctx *ctx);
void tls_ctx_free(struct tls_ctx *ctx);
/* A client SSL object: SNI sni (tls_ssl_set_sni rules); with verify_name
 * (not an address literal), the certificate's name must match it
 * (SSL_set1_host, no partial wildcards); with cafile (added by
 * tls_ctx_add_ca), the chain is verified against that file alone instead
 * of the system store.  NULL on failure (also for a cafile never added). */
void *tls_ctx_new_client_ssl(struct tls_ctx *ctx, const char *sni, const char *verify_name,
                             const char *cafile);
/* After a handshake on an SSL from tls_ctx_new_client_ssl: 0 when the chain
 * and the name verified; -1 with why ("Server certificate not verified: ...")
 * otherwise, also when verify_name is empty or an address literal. */
int tls_ssl_verified(void *ssl, const char *verify_name, char *why, size_t len);
/* A new SSL object (struct ssl_st *) for one connection. */
void *tls_ctx_new_ssl(struct tls_ctx *ctx);
/* Frees an SSL object that was never handed to a bufferevent. */
void tls_ssl_free(void *ssl);
/* Sets SNI on a client SSL object; does nothing for NULL, "" or an IP
 * address literal (RFC 6066 3 forbids those in server_name). */
void tls_ssl_set_sni(void *ssl, const char *name);
/* 1 when the handshake of an SSL object has ended, else 0 (also for NULL). */
int tls_ssl_established(void *ssl);
/* Protocol and cipher of a live SSL object into buf. */
const char *tls_describe(void *ssl, char *buf, size_t len);
/* Next OpenSSL error as text (for logs). */
const char *tls_last_error(char *buf, size_t len);

#endif

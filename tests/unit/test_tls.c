/*
 * test_tls — core/tls contexts with the tls section's settings: cipher lists
 * refused with their reason, customers' tls_ca files (loaded once, an
 * unreadable or empty one refused), client SSL objects that fail closed for
 * a tls_ca never loaded, verification verdicts without a handshake, and the
 * context's reference count (run under ASan: no double free, no leak).
 */
#include "net_fixture.h"

#include <string.h>

static int setup(void **state)
{
    return cert_setup("mail.acme.example");
}

static void test_cipher_lists(void **state)
{
    char err[512] = "";
    struct tls_conf bad = { .ciphers = "NO-SUCH-CIPHER" };
    assert_null(tls_client_ctx_conf(&bad, err, sizeof err));
    assert_non_null(strstr(err, "ciphers \"NO-SUCH-CIPHER\""));
    struct tls_conf bad13 = { .ciphersuites = "TLS_NO_SUCH" };
    assert_null(tls_client_ctx_conf(&bad13, err, sizeof err));
    assert_non_null(strstr(err, "ciphersuites \"TLS_NO_SUCH\""));
    struct tls_conf good = { .min_version = TLS_V1_3, .max_version = TLS_V1_3,
                             .ciphers = "HIGH:!aNULL", .ciphersuites = "TLS_AES_128_GCM_SHA256" };
    struct tls_ctx *t = tls_client_ctx_conf(&good, err, sizeof err);
    assert_non_null(t);
    tls_ctx_free(t);
    if (!have_cert)
        skip();
    char cert[128], key[128];
    snprintf(cert, sizeof cert, "%s/cert.pem", certdir);
    snprintf(key, sizeof key, "%s/key.pem", certdir);
    assert_null(tls_server_ctx_conf(cert, key, &bad, err, sizeof err));
    assert_non_null(strstr(err, "ciphers \"NO-SUCH-CIPHER\""));
    t = tls_server_ctx_conf(cert, key, &good, err, sizeof err);
    assert_non_null(t);
    tls_ctx_free(t);
}

static void test_tls_ca(void **state)
{
    char err[512] = "", path[128], junk[128];
    if (!have_cert)
        skip();
    struct tls_ctx *t = tls_client_ctx(err, sizeof err);
    assert_non_null(t);
    snprintf(path, sizeof path, "%s/missing.pem", certdir);
    assert_int_equal(tls_ctx_add_ca(t, path, err, sizeof err), -1);
    assert_non_null(strstr(err, "tls_ca "));
    snprintf(junk, sizeof junk, "%s/junk.pem", certdir);
    FILE *f = fopen(junk, "w");
    assert_non_null(f);
    fputs("not a certificate\n", f);
    fclose(f);
    assert_int_equal(tls_ctx_add_ca(t, junk, err, sizeof err), -1);
    snprintf(path, sizeof path, "%s/cert.pem", certdir);
    assert_int_equal(tls_ctx_add_ca(t, path, err, sizeof err), 0);
    assert_int_equal(tls_ctx_add_ca(t, path, err, sizeof err), 0);     /* once */
    /* an SSL for the loaded file; none for a file never loaded: never the
     * system store in its place */
    void *ssl = tls_ctx_new_client_ssl(t, "mail.acme.example", "mail.acme.example", path);
    assert_non_null(ssl);
    char why[256];
    assert_int_equal(tls_ssl_verified(ssl, "mail.acme.example", why, sizeof why), -1);
    assert_string_equal(why, "Server certificate not verified: no certificate");
    tls_ssl_free(ssl);
    assert_null(tls_ctx_new_client_ssl(t, NULL, "mail.acme.example", junk));
    ssl = tls_ctx_new_client_ssl(t, "127.0.0.1", "127.0.0.1", NULL);    /* an address */
    assert_non_null(ssl);
    tls_ssl_free(ssl);
    tls_ctx_free(t);
}

static void test_refcount(void **state)
{
    char err[256];
    struct tls_ctx *t = tls_client_ctx(err, sizeof err);
    assert_non_null(t);
    assert_ptr_equal(tls_ctx_ref(t), t);
    void *ssl = tls_ctx_new_client_ssl(t, NULL, NULL, NULL);
    assert_non_null(ssl);
    tls_ctx_free(t);                /* one reference left */
    tls_ctx_free(t);                /* gone; the SSL keeps its SSL_CTX */
    tls_ssl_free(ssl);
    assert_null(tls_ctx_ref(NULL));
    tls_ctx_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cipher_lists),
        cmocka_unit_test(test_tls_ca),
        cmocka_unit_test(test_refcount),
    };
    return cmocka_run_group_tests(tests, setup, cert_teardown);
}

/*
 * net_fixture — what the network unit tests share (test_io.c and, through
 * smtp_client_fake.h, test_smtp_client.c and test_smtp_client_fail.c): a
 * loopback listener, and a throwaway certificate for STARTTLS made once per
 * test group.  Header-only: each test program includes it once.
 */
#ifndef KM_TEST_NET_FIXTURE_H
#define KM_TEST_NET_FIXTURE_H

#pragma GCC diagnostic ignored "-Wunused-function"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "core/tls.h"

/* A listening TCP socket on 127.0.0.1, any port (set in *port); -1 on
 * failure. */
static int listen_loopback(int *port)
{
    struct sockaddr_in sin = { .sin_family = AF_INET };
    socklen_t sl = sizeof sin;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0 || listen(fd, 4) < 0 ||
        getsockname(fd, (struct sockaddr *)&sin, &sl) < 0)
        return -1;
    *port = ntohs(sin.sin_port);
    return fd;
}

/* ---- a test certificate ---------------------------------------------------- */

static char certdir[64];
static int have_cert;               /* 0: the STARTTLS tests skip() */

/* For a group setup: a self-signed certificate for host in a new temporary
 * directory (scripts/gen-test-cert).  Failing to make one is not an error
 * here; have_cert stays 0. */
static int cert_setup(const char *host)
{
    char cmd[256];
    snprintf(certdir, sizeof certdir, "/tmp/km-test-cert-XXXXXX");
    if (!mkdtemp(certdir))
        return 0;
    snprintf(cmd, sizeof cmd, "scripts/gen-test-cert %s %s >/dev/null 2>&1", certdir, host);
    have_cert = system(cmd) == 0;
    return 0;
}

/* The group teardown: removes the certificate's directory. */
static int cert_teardown(void **state)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", certdir);
    if (certdir[0] && system(cmd) != 0)
        return -1;
    return 0;
}

/* A server context with the test certificate; fails the test without one. */
static struct tls_ctx *cert_server_ctx(void)
{
    char cert[128], key[128], err[256];
    snprintf(cert, sizeof cert, "%s/cert.pem", certdir);
    snprintf(key, sizeof key, "%s/key.pem", certdir);
    struct tls_ctx *t = tls_server_ctx(cert, key, err, sizeof err);
    if (!t)
        fail_msg("tls_server_ctx: %s", err);
    return t;
}

#endif

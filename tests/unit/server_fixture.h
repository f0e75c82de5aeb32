/*
 * server_fixture — what the in-process server fixtures share
 * (smtp_server_fixture.h, pop3_server_fixture.h): a temporary directory with
 * a throwaway certificate, its removal, and a socketpair whose server end a
 * test adopts as a session.  Header-only and without cmocka: failures
 * return -1 (or -2) with the reason.
 */
#ifndef KM_TEST_SERVER_FIXTURE_H
#define KM_TEST_SERVER_FIXTURE_H

#pragma GCC diagnostic ignored "-Wunused-function"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static int server_fixture_rm(const char *path, const struct stat *st, int flag,
                             struct FTW *f)
{
    return remove(path);
}

/* Removes a directory tree. */
static void server_fixture_rmtree(const char *dir)
{
    nftw(dir, server_fixture_rm, 16, FTW_DEPTH | FTW_PHYS);
}

/* A new directory tmpdir/NAME.XXXXXX into dir (size bytes; dir[0] is 0 on
 * failure), and in it tls/cert.pem + tls/key.pem made by topdir's
 * scripts/gen-test-cert (topdir NULL or the script failing: none).
 * *tls: 1 with a certificate.  0, or -1 with why. */
static int server_fixture_dir(char *dir, size_t size, const char *tmpdir, const char *name,
                              const char *topdir, int *tls, char *err, size_t errlen)
{
    char cmd[1024];
    snprintf(dir, size, "%s/%s.XXXXXX", tmpdir, name);
    if (!mkdtemp(dir)) {
        snprintf(err, errlen, "mkdtemp %s: %s", dir, strerror(errno));
        dir[0] = 0;
        return -1;
    }
    *tls = 0;
    if (topdir) {
        snprintf(cmd, sizeof cmd, "%s/scripts/gen-test-cert %s/tls fixture.example "
                 ">/dev/null 2>&1", topdir, dir);
        *tls = system(cmd) == 0;
    }
    return 0;
}

/* A non-blocking socketpair: *client is the test's end, *server the one a
 * session adopts; sndbuf > 0: SO_SNDBUF of the server's end, so that its
 * output backs up soon.  0, or -2. */
static int server_fixture_pair(int sndbuf, int *client, int *server)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
        return -2;
    if (sndbuf > 0 && setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf) < 0) {
        close(sv[0]);
        close(sv[1]);
        return -2;
    }
    *client = sv[0];
    *server = sv[1];
    return 0;
}

#endif

/*
 * maildir_fixture — what the maildir unit tests share (test_maildir.c,
 * test_maildir_scan.c, test_maildir_keep.c): a temporary directory per
 * test, files made and read whole, directory entries counted, a message
 * delivered from a string.  Header-only: each test program includes it once.
 */
#ifndef KM_TEST_MAILDIR_FIXTURE_H
#define KM_TEST_MAILDIR_FIXTURE_H

#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wformat-truncation"    /* test paths are short */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "maildir/maildir.h"

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    return remove(path);
}

/* setup/teardown: *state is a fresh directory "/tmp/test_maildir.XXXXXX". */
static int tdir_setup(void **state)
{
    char t[] = "/tmp/test_maildir.XXXXXX";
    if (!mkdtemp(t))
        return -1;
    *state = strdup(t);
    return 0;
}

static int tdir_teardown(void **state)
{
    nftw(*state, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(*state);
    return 0;
}

/* dir/rel into a static buffer (four in turn, so several can be used at
 * once, also nested: at(at(d, "new"), name)); short-lived: use mkpath()
 * for a name kept over more calls. */
static const char *at(const char *dir, const char *rel)
{
    static char buf[4][4096];
    static int k;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s/%s", dir, rel);
    k = (k + 1) % 4;
    memcpy(buf[k], tmp, sizeof tmp);
    return buf[k];
}

/* a/b into out (4096 bytes): for names kept over many at() calls. */
static void mkpath(char *out, const char *a, const char *b)
{
    snprintf(out, 4096, "%s/%s", a, b);
}

static void put_file(const char *path, const char *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
}

/* The whole file (NUL added; *len gets its length), or NULL. */
static char *get_file(const char *path, size_t *len)
{
    struct stat st;
    char *buf;
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return NULL;
    assert_int_equal(fstat(fd, &st), 0);
    buf = malloc((size_t)st.st_size + 1);
    assert_int_equal(read(fd, buf, (size_t)st.st_size), st.st_size);
    buf[st.st_size] = '\0';
    close(fd);
    if (len)
        *len = (size_t)st.st_size;
    return buf;
}

/* Entries of a directory, dot files included, "." and ".." not. */
static size_t count_entries(const char *path)
{
    size_t n = 0;
    struct dirent *de;
    DIR *d = opendir(path);
    if (!d)
        return 0;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

/* Delivers text into dir (made if missing); the new name into name. */
static void deliver_text(const char *dir, const char *text, char *name, size_t namelen)
{
    char why[256] = "";
    int temp = -1;
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, text, strlen(text));
    if (maildir_deliver(dir, "host.example", NULL, 0, b, name, namelen, &temp,
                        why, sizeof why) != 0)
        fail_msg("deliver: %s", why);
    evbuffer_free(b);
}

#endif

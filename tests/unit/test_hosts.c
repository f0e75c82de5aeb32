/*
 * test_hosts — hosts.c: the hosts file read into a table (comments,
 * aliases, IPv4 and IPv6, lines without a valid address skipped, names
 * case-insensitive, a name on several lines, duplicates, the cap of
 * RESOLVE_MAX_ADDRS per name), a missing file (empty table), a file over
 * HOSTS_MAX_BYTES (its cut last line dropped) and one with more than
 * HOSTS_MAX_NAMES names.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/hosts.h"

static char *write_tmp(const char *text, size_t len)
{
    char *path = strdup("/tmp/test_hosts.XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
    return path;
}

static struct hosts *load_text(const char *text)
{
    char *path = write_tmp(text, strlen(text));
    struct hosts *h = hosts_load(path);
    unlink(path);
    free(path);
    return h;
}

/* name's addresses, joined by spaces ("" when not found). */
static const char *addrs(const struct hosts *h, const char *name)
{
    static char buf[1024];
    struct resolve_result r;
    buf[0] = 0;
    if (hosts_lookup(h, name, &r) < 0)
        return buf;
    for (size_t i = 0; i < r.n; i++)
        snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%s", i ? " " : "", r.addr[i]);
    return buf;
}

static void test_parse(void **state)
{
    struct hosts *h = load_text(
        "# a comment\n"
        "127.0.0.1\tlocalhost\n"
        "192.0.2.7   mx.acme.example  mx   # alias, then a comment\n"
        "2001:db8::7 mx.acme.example\n"
        "192.0.2.7 mx.acme.example\n"           /* the same again: once */
        "not-an-address bogus.example\n"
        "192.0.2.300 bad.example\n"
        "\n   \n"
        "198.51.100.1 Second.Example\r\n"        /* CRLF, upper case */
        "198.51.100.2");                         /* no name, no newline */
    assert_string_equal(addrs(h, "localhost"), "127.0.0.1");
    assert_string_equal(addrs(h, "MX.Acme.Example"), "192.0.2.7 2001:db8::7");
    assert_string_equal(addrs(h, "mx"), "192.0.2.7");
    assert_string_equal(addrs(h, "second.example"), "198.51.100.1");
    assert_string_equal(addrs(h, "bogus.example"), "");
    assert_string_equal(addrs(h, "bad.example"), "");
    assert_string_equal(addrs(h, "a"), "");         /* nothing from the comment */
    assert_string_equal(addrs(h, "comment"), "");
    assert_int_equal(hosts_count(h), 4);
    hosts_free(h);
}

static void test_address_cap(void **state)
{
    char text[2048] = "";
    for (int i = 1; i <= RESOLVE_MAX_ADDRS + 3; i++)
        snprintf(text + strlen(text), sizeof text - strlen(text), "192.0.2.%d many.example\n", i);
    struct hosts *h = load_text(text);
    struct resolve_result r;
    assert_int_equal(hosts_lookup(h, "many.example", &r), 0);
    assert_int_equal(r.n, RESOLVE_MAX_ADDRS);
    assert_string_equal(r.addr[0], "192.0.2.1");
    assert_string_equal(r.addr[RESOLVE_MAX_ADDRS - 1], "192.0.2.8");
    hosts_free(h);
}

static void test_missing_and_null(void **state)
{
    struct hosts *h = hosts_load("/nonexistent/test_hosts/hosts");
    struct resolve_result r;
    assert_non_null(h);
    assert_int_equal(hosts_count(h), 0);
    assert_int_equal(hosts_lookup(h, "localhost", &r), -1);
    hosts_free(h);
    assert_int_equal(hosts_lookup(NULL, "localhost", &r), -1);
    hosts_free(NULL);
}

/* Over HOSTS_MAX_BYTES: the lines wholly inside are used, the one cut at
 * the limit and everything after are not. */
static void test_size_bound(void **state)
{
    size_t len = (size_t)HOSTS_MAX_BYTES + 4096;
    char *text = malloc(len + 1);
    const char *first = "192.0.2.1 first.example\n";
    size_t n = strlen(first);
    memcpy(text, first, n);
    memset(text + n, '#', len - n);             /* one long comment line... */
    const char *cut = "\n192.0.2.2 cut.example\n";
    /* ...ended just before the limit by a line that straddles it */
    memcpy(text + HOSTS_MAX_BYTES - 10, cut, strlen(cut));
    const char *after = "192.0.2.3 after.example\n";
    memcpy(text + len - strlen(after), after, strlen(after));
    char *path = write_tmp(text, len);
    struct hosts *h = hosts_load(path);
    unlink(path);
    free(path);
    free(text);
    assert_string_equal(addrs(h, "first.example"), "192.0.2.1");
    assert_string_equal(addrs(h, "cut.example"), "");
    assert_string_equal(addrs(h, "after.example"), "");
    hosts_free(h);
}

/* More than HOSTS_MAX_NAMES names: the first ones are kept, the rest not. */
static void test_name_bound(void **state)
{
    size_t cap = (size_t)HOSTS_MAX_NAMES * 12 + 64, len = 0;
    char *text = malloc(cap);
    for (int i = 0; i < HOSTS_MAX_NAMES + 10; i++) {
        if (i % 100 == 0)
            len += (size_t)snprintf(text + len, cap - len, "\n192.0.2.1");
        len += (size_t)snprintf(text + len, cap - len, " n%d", i);
    }
    char *path = write_tmp(text, len);
    struct hosts *h = hosts_load(path);
    unlink(path);
    free(path);
    free(text);
    char last[32], over[32];
    snprintf(last, sizeof last, "n%d", HOSTS_MAX_NAMES - 1);
    snprintf(over, sizeof over, "n%d", HOSTS_MAX_NAMES);
    assert_int_equal(hosts_count(h), HOSTS_MAX_NAMES);
    assert_string_equal(addrs(h, last), "192.0.2.1");
    assert_string_equal(addrs(h, over), "");
    hosts_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_address_cap),
        cmocka_unit_test(test_missing_and_null),
        cmocka_unit_test(test_size_bound),
        cmocka_unit_test(test_name_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

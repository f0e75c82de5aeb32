/*
 * map_fixture — what the customer map's unit tests share (test_custmap.c,
 * test_registry.c): a mkdtemp() directory per test, maps built with the
 * sqlite3 C API from the shipped conf/customers.sql (KM_TOP, default ".")
 * plus rows per test, and configuration files.  Header-only: each test
 * program includes it once.
 */
#ifndef KM_TEST_MAP_FIXTURE_H
#define KM_TEST_MAP_FIXTURE_H

#pragma GCC diagnostic ignored "-Wunused-function"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/custmap.h"
#include "conf_fixture.h"

static char tmpdir[PATH_MAX];
static char mappath[PATH_MAX + 64], confpath[PATH_MAX + 64];
static char *schema;            /* conf/customers.sql */

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *buf = calloc(1, 1 << 16);
    assert_non_null(buf);
    size_t n = fread(buf, 1, (1 << 16) - 1, f);
    assert_true(n > 0 && n < (1 << 16) - 1);
    fclose(f);
    return buf;
}

static void exec_ok(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        print_error("sql failed: %s\n%s\n", msg ? msg : "?", sql);
        sqlite3_free(msg);
        fail();
    }
}

/* A fresh map at mappath: the schema (the shipped one when NULL), then sql. */
static sqlite3 *map_open_new(const char *schema_sql)
{
    sqlite3 *db;
    unlink(mappath);
    assert_int_equal(sqlite3_open(mappath, &db), SQLITE_OK);
    exec_ok(db, schema_sql ? schema_sql : schema);
    return db;
}

static void make_map(const char *schema_sql, const char *sql)
{
    sqlite3 *db = map_open_new(schema_sql);
    if (sql)
        exec_ok(db, sql);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

static struct custmap *load_ok(const char *sql)
{
    char err[512];
    make_map(NULL, sql);
    struct custmap *m = custmap_load(mappath, err, sizeof err);
    if (!m)
        print_error("unexpected failure: %s\n", err);
    assert_non_null(m);
    return m;
}

/* text as the configuration file at confpath, loaded (conf_fixture.h). */
static struct config *conf_ok(const char *text)
{
    return fixture_conf_ok(confpath, text);
}

/* mkdtemp (TMPDIR, default /tmp) and the shipped schema (KM_TOP, default
 * "."); for cmocka_unit_test_setup_teardown. */
static int setup(void **state)
{
    const char *top = getenv("KM_TOP") ? getenv("KM_TOP") : ".";
    char path[PATH_MAX];
    snprintf(tmpdir, sizeof tmpdir, "%s/kmmap.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmpdir))
        return -1;
    snprintf(mappath, sizeof mappath, "%s/customers.sqlite", tmpdir);
    snprintf(confpath, sizeof confpath, "%s/kickmail.conf", tmpdir);
    snprintf(path, sizeof path, "%s/conf/customers.sql", top);
    schema = read_all(path);
    return 0;
}

static int teardown(void **state)
{
    static const char *names[] = {"customers.sqlite", "customers.sqlite-journal",
                                  "kickmail.conf", "junk"};
    char path[PATH_MAX + 64];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", tmpdir, names[i]);
        unlink(path);
    }
    free(schema);
    return rmdir(tmpdir);
}

#endif

/*
 * conf_fixture — writing a configuration file and loading it, for the unit
 * tests that need a struct config (test_config.c, and through
 * map_fixture.h test_custmap.c and test_registry.c).  Header-only: each
 * test program includes it once, after cmocka.h.
 */
#ifndef KM_TEST_CONF_FIXTURE_H
#define KM_TEST_CONF_FIXTURE_H

#pragma GCC diagnostic ignored "-Wunused-function"

#include <stdio.h>

#include "core/config.h"

/* Writes text to path (a test failure when it cannot). */
static void fixture_write(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

/* Writes text to path and loads it: the configuration, or a test failure
 * that prints config_load()'s error. */
static struct config *fixture_conf_ok(const char *path, const char *text)
{
    char err[512];
    fixture_write(path, text);
    struct config *c = config_load(path, err, sizeof err);
    if (!c)
        print_error("unexpected failure: %s\n", err);
    assert_non_null(c);
    return c;
}

#endif

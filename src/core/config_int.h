/*
 * Internal interface between config.c (loading kickmail.conf) and
 * config_schema.c (the libconfuse schema and the customer option table).
 * Not for other modules: they use config.h.
 */
#ifndef KM_CONFIG_INT_H
#define KM_CONFIG_INT_H

#include <stddef.h>

#include "core/config.h"

/* A fresh libconfuse context (a cfg_t of <confuse.h>) holding kickmail's
 * schema.  Free with cfg_free(). */
struct cfg_t;
struct cfg_t *config_schema_new(void);
/* Fills cu's options (as config_customer_set would) from a parsed customer
 * section, whose values the schema checked already.  0, or -1 with why. */
int config_customer_from_section(struct cfg_t *sec, struct customer *cu,
                                 char *why, size_t whylen);

#endif

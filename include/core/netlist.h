/*
 * netlist — a bounded list of numeric IPv4/IPv6 networks ("192.0.2.0/24",
 * "2001:db8::/48", or a single address), as a customer's
 * autoturn_networks or a radius client's title.  Pure: no I/O, no global
 * state.
 */
#ifndef KM_NETLIST_H
#define KM_NETLIST_H

#include <stddef.h>

#define NETLIST_MAX 64          /* networks in one list */

struct netlist_net {
    int family;                 /* AF_INET or AF_INET6 */
    unsigned char net[16];      /* host bits cleared; 4 bytes used for AF_INET */
    int prefix;                 /* 0..32 or 0..128 (a single address: all) */
};

struct netlist {
    size_t n;
    struct netlist_net *v;      /* NULL when n == 0 */
};

/* One entry: "ADDR" or "ADDR/LEN", numeric, no white space, no leading
 * zeros in LEN, host bits need not be zero (they are cleared).  0 / -1. */
int netlist_parse_one(const char *text, struct netlist_net *out);

/* A comma-separated list (white space around the commas allowed; "" is the
 * empty list).  Strict: an empty entry, a bad one or more than NETLIST_MAX
 * fail the whole list.  0 with *out (free with netlist_free), or -1 with
 * why (out untouched). */
int netlist_parse(const char *csv, struct netlist *out, char *why, size_t whylen);

/* Does some network of nl hold the numeric address addr (IPv4, IPv6, or an
 * IPv4-mapped IPv6 address, which matches IPv4 networks)?  The longest
 * matching prefix in *prefix when prefix is not NULL.  1 / 0 (0 too for a
 * non-numeric addr). */
int netlist_match(const struct netlist *nl, const char *addr, int *prefix);

/* Do the first prefix bits of the addresses a and b agree?  1 / 0. */
int netlist_prefix_equal(const unsigned char *a, const unsigned char *b, int prefix);

void netlist_free(struct netlist *nl);

#endif

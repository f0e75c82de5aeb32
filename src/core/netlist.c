/*
 * netlist — parses and matches lists of numeric IPv4/IPv6 networks
 * (netlist.h): the autoturn_networks of a customer section or of a
 * customer-map row.  Trusts nothing of the text: every entry must be a
 * numeric address with an optional decimal prefix length in range; an entry
 * that is empty, a host name or out of range, or a list longer than
 * NETLIST_MAX, fails the whole list.  Guarantees: a parsed list holds only
 * well-formed networks with their host bits cleared, an IPv4-mapped one
 * (::ffff:a.b.c.d/96 or longer) stored as the IPv4 network it is, so that
 * it holds IPv4 peers too; matching reads only the list and the address.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/netlist.h"
#include "core/util.h"

#define ENTRY_MAX 64            /* bytes of one "ADDR/LEN" */

int netlist_parse_one(const char *text, struct netlist_net *out)
{
    char host[ENTRY_MAX];
    struct netlist_net n = {0};
    const char *slash = strchr(text, '/');
    size_t hl = slash ? (size_t)(slash - text) : strlen(text);
    if (hl == 0 || hl >= sizeof host)
        return -1;
    memcpy(host, text, hl);
    host[hl] = 0;
    if (inet_pton(AF_INET, host, n.net) == 1)
        n.family = AF_INET;
    else if (inet_pton(AF_INET6, host, n.net) == 1)
        n.family = AF_INET6;
    else
        return -1;
    int bits = n.family == AF_INET ? 32 : 128;
    n.prefix = bits;
    if (slash) {
        const char *d = slash + 1;
        size_t dl = strlen(d);
        if (dl == 0 || dl > 3 || strspn(d, "0123456789") != dl || (d[0] == '0' && d[1]) ||
            atoi(d) > bits)
            return -1;
        n.prefix = atoi(d);
    }
    static const unsigned char mapped[12] = {0,0,0,0,0,0,0,0,0,0,0xff,0xff};
    if (n.family == AF_INET6 && n.prefix >= 96 && !memcmp(n.net, mapped, sizeof mapped)) {
        memmove(n.net, n.net + 12, 4);          /* ::ffff:a.b.c.d/96+k: a.b.c.d/k */
        memset(n.net + 4, 0, 12);
        n.family = AF_INET;
        n.prefix -= 96;
        bits = 32;
    }
    for (int i = n.prefix; i < bits; i++)
        n.net[i / 8] &= (unsigned char)~(0x80u >> (i % 8));
    *out = n;
    return 0;
}

int netlist_parse(const char *csv, struct netlist *out, char *why, size_t whylen)
{
    struct netlist nl = {0, NULL};
    const char *p = csv ? csv : "";
    while (isspace((unsigned char)*p))
        p++;
    if (!*p) {
        *out = nl;
        return 0;
    }
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char entry[ENTRY_MAX];
        while (len && isspace((unsigned char)p[len - 1]))
            len--;
        if (nl.n == NETLIST_MAX) {
            netlist_free(&nl);
            return util_fail(why, whylen, "more than %d networks", NETLIST_MAX);
        }
        nl.v = xrealloc(nl.v, (nl.n + 1) * sizeof *nl.v);
        if (len == 0 || len >= sizeof entry) {
            netlist_free(&nl);
            return util_fail(why, whylen, len ? "a network longer than %d bytes" :
                             "an empty network in the list", ENTRY_MAX - 1);
        }
        memcpy(entry, p, len);
        entry[len] = 0;
        if (netlist_parse_one(entry, &nl.v[nl.n]) < 0) {
            char safe[ENTRY_MAX * 4];
            netlist_free(&nl);
            return util_fail(why, whylen, "bad network '%s': want a numeric IP "
                             "address or ADDRESS/PREFIX-LENGTH",
                             util_log_safe(safe, sizeof safe, entry));
        }
        nl.n++;
        if (!end)
            break;
        p = end + 1;
        while (isspace((unsigned char)*p))
            p++;
    }
    *out = nl;
    return 0;
}

/* Do the first prefix bits of a and b agree? */
int netlist_prefix_equal(const unsigned char *a, const unsigned char *b, int prefix)
{
    int whole = prefix / 8, rest = prefix % 8;
    if (memcmp(a, b, (size_t)whole) != 0)
        return 0;
    if (!rest)
        return 1;
    unsigned char mask = (unsigned char)(0xffu << (8 - rest));
    return (a[whole] & mask) == (b[whole] & mask);
}

int netlist_match(const struct netlist *nl, const char *addr, int *prefix)
{
    unsigned char a4[4], a6[16];
    int has4 = 0, has6 = 0, best = -1;
    if (!addr)
        return 0;
    if (inet_pton(AF_INET, addr, a4) == 1) {
        has4 = 1;
    } else if (inet_pton(AF_INET6, addr, a6) == 1) {
        has6 = 1;
        static const unsigned char mapped[12] = {0,0,0,0,0,0,0,0,0,0,0xff,0xff};
        if (!memcmp(a6, mapped, sizeof mapped)) {
            memcpy(a4, a6 + 12, 4);
            has4 = 1;
        }
    } else {
        return 0;
    }
    for (size_t i = 0; i < nl->n; i++) {
        const struct netlist_net *n = &nl->v[i];
        int hit = n->family == AF_INET ? has4 && netlist_prefix_equal(a4, n->net, n->prefix)
                                       : has6 && netlist_prefix_equal(a6, n->net, n->prefix);
        if (hit && n->prefix > best)
            best = n->prefix;
    }
    if (best < 0)
        return 0;
    if (prefix)
        *prefix = best;
    return 1;
}

void netlist_free(struct netlist *nl)
{
    free(nl->v);
    nl->v = NULL;
    nl->n = 0;
}

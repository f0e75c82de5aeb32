/*
 * etrn — ETRN (RFC 1985) on the smtp listeners: "ETRN [@|#]node" kicks the
 * customer(s) the node names.  The argument and the client are untrusted:
 * the node is syntax-checked and lower-cased before it is used as a key, an
 * ETRN never changes where mail goes (it is a kick: link address or fixed
 * host), and how many passes and connections ETRNs cause is bounded by
 * deliver_kick (one pass at a time, etrn_interval).
 * Replies for domain and @domain: 253 one customer started, 252 several,
 * 251 nothing waiting, 250 a flush running or started within
 * etrn_interval, 458 no usable address, 459 a node ETRN does not serve (an
 * unknown domain and a maildrop/pickup customer's alike); 501 syntax.
 * Customer names are not public, so every #name gets the same 250 whether
 * it exists or not, whatever was done (logged here).
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "core/config.h"
#include "core/log.h"
#include "core/registry.h"
#include "mta/deliver.h"
#include "queue/qmgr.h"
#include "smtp/smtp_etrn.h"

/* Lower-cases and checks a node name (domain: labels of [a-z0-9-] separated
 * by dots; #name: customer name characters). 0 / -1. */
static int node_check(char *s, int customer)
{
    size_t n = strlen(s);
    if (n == 0 || n > 255)
        return -1;
    for (char *p = s; *p; p++) {
        *p = (char)tolower((unsigned char)*p);
        if (isalnum((unsigned char)*p) || *p == '-')
            continue;
        if (customer ? *p == '_' : (*p == '.' && p != s && p[1] && p[-1] != '.'))
            continue;
        return -1;
    }
    return 0;
}

/* Kicks one customer; returns the reply code class and fills why. */
enum kick_out { K_STARTED, K_NONE, K_ALREADY, K_NOADDR, K_NOTALLOWED };

static enum kick_out kick_one(const struct customer *c, unsigned *msgs)
{
    struct deliver_kick_result res;
    char err[256];
    struct qcust *qc = qmgr_cust_by_name(c->name);
    if (c->deliver == DELIVER_MAILDROP || c->deliver == DELIVER_PICKUP ||
        c->deliver == DELIVER_LOCAL)
        return K_NOTALLOWED;
    if (!qc || qc->nmsg == 0)
        return K_NONE;
    if (deliver_kick(c->name, 1, &res, err, sizeof err) < 0)
        return K_NOADDR;
    *msgs = res.messages;
    return res.already ? K_ALREADY : K_STARTED;
}

/* 459 for a node ETRN does not serve: one text for an unknown domain and a
 * maildrop/pickup customer's, so that the reply tells neither apart. */
static int etrn_not_served(const char *node, char *out, size_t len)
{
    snprintf(out, len, "459 4.7.1 Node %s not allowed: service unavailable", node);
    return 459;
}

static int etrn_one(const struct customer *c, const char *node, char *out, size_t len)
{
    unsigned msgs = 0;
    switch (kick_one(c, &msgs)) {
    case K_STARTED:
        snprintf(out, len, "253 2.0.0 %u pending messages for node %s started", msgs, node);
        return 253;
    case K_NONE:
        snprintf(out, len, "251 2.0.0 No messages waiting for node %s", node);
        return 251;
    case K_ALREADY:
        snprintf(out, len, "250 2.0.0 Queuing for node %s already started", node);
        return 250;
    case K_NOADDR:
        snprintf(out, len, "458 4.4.0 Unable to queue messages for node %s", node);
        return 458;
    default:
        return etrn_not_served(node, out, len);
    }
}

static void etrn_count(const struct customer *c, int *started, int *none, int *noaddr)
{
    unsigned msgs;
    switch (kick_one(c, &msgs)) {
    case K_STARTED: case K_ALREADY: (*started)++; break;
    case K_NONE: (*none)++; break;
    case K_NOADDR: (*noaddr)++; break;
    default: break;
    }
}

/* @domain: every customer owning the domain or a subdomain of it. */
static int etrn_subtree(const struct registry *reg, const char *dom, char *out, size_t len)
{
    char node[262];
    snprintf(node, sizeof node, "@%s", dom);
    size_t dl = strlen(dom);
    int matched = 0, started = 0, none = 0, noaddr = 0;
    const struct customer *last = NULL;
    for (size_t i = 0; i < registry_count(reg); i++) {
        const struct customer *c = registry_at(reg, i);
        int hit = 0;
        for (size_t k = 0; k < c->ndomains && !hit; k++) {
            const char *d = c->domains[k];
            size_t n = strlen(d);
            hit = !strcmp(d, dom) || (n > dl && d[n - dl - 1] == '.' && !strcmp(d + n - dl, dom));
        }
        if (!hit)
            continue;
        if (++matched == 1) {
            last = c;
            continue;           /* decided below once we know how many match */
        }
        if (matched == 2)
            etrn_count(last, &started, &none, &noaddr);
        etrn_count(c, &started, &none, &noaddr);
    }
    if (!matched)
        return etrn_not_served(node, out, len);
    if (matched == 1)
        return etrn_one(last, node, out, len);      /* one customer: its own reply */
    if (started) {
        snprintf(out, len, "252 2.0.0 Pending messages for node %s started", node);
        return 252;
    }
    if (none) {
        snprintf(out, len, "251 2.0.0 No messages waiting for node %s", node);
        return 251;
    }
    if (!noaddr)
        return etrn_not_served(node, out, len);
    snprintf(out, len, "458 4.4.0 Unable to queue messages for node %s", node);
    return 458;
}

/* #name: kicks the customer if there is one (and it can be kicked); the
 * reply is the same for every name, the log says what was done. */
static int etrn_customer(const struct registry *reg, const char *name, char *out, size_t len)
{
    char node[262], done[320];
    const struct customer *c = registry_by_name(reg, name);
    snprintf(node, sizeof node, "#%s", name);
    if (c)
        etrn_one(c, node, done, sizeof done);
    else
        snprintf(done, sizeof done, "no such customer");
    log_info("ETRN %s: %s", node, done);
    snprintf(out, len, "250 2.0.0 Queuing for node %s started", node);
    return 250;
}

int smtp_etrn(const struct registry *reg, const char *arg, size_t arglen,
              char *out, size_t len)
{
    char node[260];
    int kind = 0;               /* 0 domain, '@' subtree, '#' customer */
    if (arglen && (arg[0] == '@' || arg[0] == '#')) {
        kind = arg[0];
        arg++;
        arglen--;
    }
    if (arglen == 0 || arglen >= sizeof node || memchr(arg, ' ', arglen)) {
        snprintf(out, len, "501 5.5.4 Syntax: ETRN [@|#]node");
        return 501;
    }
    memcpy(node, arg, arglen);
    node[arglen] = 0;
    if (node_check(node, kind == '#') < 0 || (kind != '#' && !strchr(node, '.'))) {
        snprintf(out, len, "501 5.5.4 Syntax: ETRN [@|#]node");
        return 501;
    }
    if (kind == '@')
        return etrn_subtree(reg, node, out, len);
    if (kind == '#')
        return etrn_customer(reg, node, out, len);
    const struct customer *c = registry_by_domain(reg, node);
    if (!c)
        return etrn_not_served(node, out, len);
    return etrn_one(c, node, out, len);
}

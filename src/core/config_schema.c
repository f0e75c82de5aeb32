/*
 * config_schema — the libconfuse schema of kickmail.conf, the checks of
 * single values, and the table of customer options.
 *
 * Every value check is a plain function (opt, value → number or why) so that
 * the same code serves two callers: the libconfuse callbacks, which run while
 * the file is parsed (so their errors carry the line of the value), and the
 * customer map (src/core/custmap.c), which sets options of struct customer
 * from SQLite text through config_customer_set().  Durations, sizes and enums
 * are int options with a parse callback: both `12h` and "12h" are accepted.
 * Customer defaults are written once (the CUST_DEF_* constants) and used by
 * both the schema and config_customer_defaults().  Trusts nothing it is
 * given; every check names the option in its message.  Cross-section checks
 * (domains claimed twice, tls pairs...) are config.c's, after the parse.
 */
#include <arpa/inet.h>
#include <confuse.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "core/config.h"
#include "core/util.h"
#include "config_int.h"

/* Defaults of customer options (doc/kickmail.conf.5). */
#define CUST_DEF_DELIVER        "link"
#define CUST_DEF_PORT           25
#define CUST_DEF_ONLINE         ONLINE_DETECT
#define CUST_DEF_LINK_TTL       (12 * 3600)
#define CUST_DEF_CONNECTIONS    2
#define CUST_DEF_TLS            TLSPOL_MAY
#define CUST_DEF_QUOTA          (500L * 1024 * 1024)
#define CUST_DEF_HOLD_TIME      (5 * 86400)
#define CUST_DEF_WARN_TIME      0
#define CUST_DEF_RETRY_MIN      60
#define CUST_DEF_RETRY_MAX      3600
#define CUST_DEF_ETRN_INTERVAL  5

/* Defaults of maildrop options (doc/kickmail.conf.5). */
#define MD_DEF_MODE             MAILDROP_DELETE
#define MD_DEF_KEEP_DAYS        30
#define MD_DEF_QUOTA            0       /* none, as Dovecot without a quota plugin */

/* A check of one value of option opt: 0 (numbers stored in *num), or -1
 * with why written. */
typedef int value_check(const char *opt, const char *value, long *num,
                        char *why, size_t whylen);


#define V(s) ((s) ? (s) : "")

/* ---- checks of single values, shared with the customer map ---- */

const char *config_check_customer_name(const char *name)
{
    size_t n = 0;
    if (!name || !*name)
        return "empty customer name";
    for (const char *p = name; *p; p++, n++) {
        if (!islower((unsigned char)*p) && !isdigit((unsigned char)*p) &&
            *p != '-' && *p != '_')
            return "customer names use lower-case letters, digits, '-' and '_' only";
    }
    if (n > 64)
        return "customer name longer than 64 characters";
    return NULL;
}

/* Letters, digits and '-' in dot-separated labels of 1-63 characters. */
static const char *check_hostname(const char *h)
{
    size_t label = 0, total = 0;
    if (!h || !*h)
        return "empty name";
    for (const char *p = h;; p++, total++) {
        if (*p == '.' || *p == 0) {
            if (label == 0)
                return "empty label";
            if (p[-1] == '-' || p[-(long)label] == '-')
                return "label starts or ends with '-'";
            if (label > 63)
                return "label longer than 63 characters";
            if (*p == 0)
                break;
            label = 0;
            continue;
        }
        if (!isalnum((unsigned char)*p) && *p != '-')
            return "bad character (letters, digits, '-' and '.' only)";
        label++;
    }
    return total > 253 ? "longer than 253 characters" : NULL;
}

const char *config_check_domain(const char *domain)
{
    if (!domain || !strchr(domain, '.'))
        return "a domain must contain a dot";
    return check_hostname(domain);
}

const char *config_check_local_part(const char *local)
{
    size_t n = local ? strlen(local) : 0;
    if (n == 0 || n > 64 || strpbrk(local, "@ \t\r\n<>\""))
        return "want a local part (no '@', at most 64 characters)";
    return NULL;
}

static int numeric_ip(int af, const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(af, host, buf) == 1;
}

/* ---- numbers ---- */

/* Digits only (no sign, no hex), within [min, max]. */
static int check_number(const char *opt, const char *value, long min, long max,
                        long *num, char *why, size_t whylen)
{
    long v = 0;
    const char *p = value;
    if (!p || !*p)
        goto bad;
    for (; *p; p++) {
        if (!isdigit((unsigned char)*p) || v > (LONG_MAX - 9) / 10)
            goto bad;
        v = v * 10 + (*p - '0');
    }
    if (v < min || v > max)
        goto bad;
    *num = v;
    return 0;
bad:
    return util_fail(why, whylen, "bad value '%s' for %s (a number from %ld to %ld)",
                    V(value), opt, min, max);
}

static int chk_count(const char *opt, const char *value, long *num, char *why, size_t whylen)
{
    return check_number(opt, value, 1, INT_MAX, num, why, whylen);
}

static int chk_uint(const char *opt, const char *value, long *num, char *why, size_t whylen)
{
    return check_number(opt, value, 0, INT_MAX, num, why, whylen);
}

static int chk_port(const char *opt, const char *value, long *num, char *why, size_t whylen)
{
    return check_number(opt, value, 1, 65535, num, why, whylen);
}

static int check_duration(const char *opt, const char *value, long min,
                          long *num, char *why, size_t whylen)
{
    long v;
    if (util_parse_duration(value, &v) < 0)
        return util_fail(why, whylen, "bad duration '%s' for %s (seconds, or a "
                        "number with s, m, h or d)", V(value), opt);
    if (v < min)
        return util_fail(why, whylen, "%s must be at least %lds", opt, min);
    *num = v;
    return 0;
}

static int chk_duration(const char *opt, const char *value, long *num, char *why, size_t whylen)
{
    return check_duration(opt, value, 0, num, why, whylen);
}

static int chk_duration_pos(const char *opt, const char *value, long *num, char *why, size_t whylen)
{
    return check_duration(opt, value, 1, num, why, whylen);
}

static int check_size(const char *opt, const char *value, uint64_t min,
                      long *num, char *why, size_t whylen)
{
    uint64_t v;
    if (util_parse_size(value, &v) < 0 || v > (uint64_t)LONG_MAX)
        return util_fail(why, whylen, "bad size '%s' for %s (bytes, or a number "
                        "with k, M or G)", V(value), opt);
    if (v < min)
        return util_fail(why, whylen, "%s must be at least %llu", opt,
                        (unsigned long long)min);
    *num = (long)v;
    return 0;
}

static int chk_size(const char *opt, const char *value, long *num, char *why, size_t whylen)
{
    return check_size(opt, value, 0, num, why, whylen);
}

static int chk_size_pos(const char *opt, const char *value, long *num, char *why, size_t whylen)
{
    return check_size(opt, value, 1, num, why, whylen);
}

/* ---- enums: one table, keyed by option name ---- */

static const struct enum_word {
    const char *opt, *word;
    long val;
} enum_words[] = {
    {"online", "detect", ONLINE_DETECT},
    {"online", "always", ONLINE_ALWAYS},
    {"tls", "none", TLSPOL_NONE},
    {"tls", "may", TLSPOL_MAY},
    {"tls", "encrypt", TLSPOL_ENCRYPT},
    {"tls", "verify", TLSPOL_VERIFY},
    {"dsn_return", "headers", DSN_RETURN_HEADERS},
    {"dsn_return", "full", DSN_RETURN_FULL},
    {"spool_spares", "auto", SPARES_CONF_AUTO},
    {"spool_spares", "yes", SPARES_CONF_YES},
    {"spool_spares", "no", SPARES_CONF_NO},
    {"mode", "delete", MAILDROP_DELETE},
    {"mode", "keep", MAILDROP_KEEP},
};

static int chk_enum(const char *opt, const char *value, long *num, char *why, size_t whylen)
{
    char allowed[128] = "";
    size_t n = sizeof enum_words / sizeof enum_words[0];
    for (size_t i = 0; i < n; i++) {
        if (strcmp(enum_words[i].opt, opt) != 0)
            continue;
        if (value && strcmp(enum_words[i].word, value) == 0) {
            *num = enum_words[i].val;
            return 0;
        }
        size_t len = strlen(allowed);
        snprintf(allowed + len, sizeof allowed - len, "%s\"%s\"",
                 len ? ", " : "", enum_words[i].word);
    }
    return util_fail(why, whylen, "bad value '%s' for %s (%s)", V(value), opt, allowed);
}

/* ---- strings: checked, then stored as written ---- */

static int chk_nonempty(const char *opt, const char *value, long *num, char *why, size_t whylen)
{
    if (!value || !*value)
        return util_fail(why, whylen, "%s must not be empty", opt);
    return 0;
}

static int chk_hostname(const char *opt, const char *value, long *num, char *why, size_t whylen)
{
    const char *bad = check_hostname(value);
    return bad ? util_fail(why, whylen, "bad %s '%s': %s", opt, V(value), bad) : 0;
}

static int chk_address(const char *opt, const char *value, long *num, char *why, size_t whylen)
{
    const char *at = value ? strrchr(value, '@') : NULL;
    if (!at || at == value || !at[1] || strpbrk(value, " \t\r\n<>"))
        return util_fail(why, whylen, "bad %s '%s': want an address local@domain",
                        opt, V(value));
    return 0;
}

static int chk_domain(const char *opt, const char *value, long *num, char *why, size_t whylen)
{
    const char *bad = config_check_domain(value);
    return bad ? util_fail(why, whylen, "bad domain '%s': %s", V(value), bad) : 0;
}

static int chk_local(const char *opt, const char *value, long *num, char *why, size_t whylen)
{
    const char *bad = config_check_local_part(value);
    return bad ? util_fail(why, whylen, "bad %s entry '%s': %s", opt, V(value), bad) : 0;
}

static int chk_ifname(const char *opt, const char *value, long *num, char *why, size_t whylen)
{
    size_t n = value ? strlen(value) : 0;
    if (n == 0 || n > 15 || strpbrk(value, "/ \t\r\n"))
        return util_fail(why, whylen, "bad %s '%s': want an interface name of "
                        "1-15 characters", opt, V(value));
    return 0;
}

/* true/false (the customer map: also 1/0, yes/no). */
static int chk_bool(const char *opt, const char *value, long *num, char *why, size_t whylen)
{
    static const char *const yes[] = {"true", "1", "yes"}, *const no[] = {"false", "0", "no"};
    for (size_t i = 0; value && i < sizeof yes / sizeof yes[0]; i++) {
        if (!strcasecmp(value, yes[i]) || !strcasecmp(value, no[i])) {
            *num = !strcasecmp(value, yes[i]);
            return 0;
        }
    }
    return util_fail(why, whylen, "bad value '%s' for %s (true or false)", V(value), opt);
}

/* One network of autoturn_networks: "ADDR" or "ADDR/LEN". */
static int chk_network(const char *opt, const char *value, long *num, char *why,
                       size_t whylen)
{
    struct netlist_net n;
    if (!value || netlist_parse_one(value, &n) < 0)
        return util_fail(why, whylen, "bad network '%s' in %s: want a numeric IP "
                         "address or ADDRESS/PREFIX-LENGTH", V(value), opt);
    return 0;
}

/* The whole list, comma-separated (the customer map's form). */
static int chk_networks(const char *opt, const char *value, long *num, char *why,
                        size_t whylen)
{
    struct netlist nl;
    char w[256];
    if (netlist_parse(value, &nl, w, sizeof w) < 0)
        return util_fail(why, whylen, "bad %s '%s': %s", opt, V(value), w);
    netlist_free(&nl);
    return 0;
}

static int chk_listen(const char *opt, const char *value, long *num, char *why, size_t whylen)
{
    struct listen_addr la;
    int af = value && value[0] == '[' ? AF_INET6 : AF_INET;
    if (!value || strlen(value) >= sizeof la.text ||
        util_parse_hostport(value, la.host, sizeof la.host, &la.port) < 0 ||
        !numeric_ip(af, la.host))
        return util_fail(why, whylen, "bad listen address '%s' (want "
                        "\"IPv4:PORT\" or \"[IPv6]:PORT\", numeric, port "
                        "1-65535)", V(value));
    return 0;
}

/* A host name to look up at delivery: check_hostname's syntax, and not
 * all-numeric at the end (RFC 1123 2.1: "192.0.2.300" is a bad address,
 * not a name). */
static const char *check_mail_host(const char *h)
{
    const char *bad = check_hostname(h);
    if (bad)
        return bad;
    const char *last = strrchr(h, '.');
    last = last ? last + 1 : h;
    if (strspn(last, "0123456789") == strlen(last))
        return "not a numeric address, and a name cannot end in a numeric label";
    return NULL;
}

/* "link", "maildrop", "pickup", or "HOST:PORT" ("[V6]:PORT"); HOST is a
 * numeric address or a host name (looked up when mail is delivered). */
static int chk_deliver(const char *opt, const char *value, long *num, char *why, size_t whylen)
{
    char host[256];
    int port;
    const char *bad;
    if (value && (!strcmp(value, "link") || !strcmp(value, "maildrop") ||
                  !strcmp(value, "pickup")))
        return 0;
    if (value && util_parse_hostport(value, host, sizeof host, &port) == 0) {
        if (value[0] == '[')
            return numeric_ip(AF_INET6, host) ? 0 :
                   util_fail(why, whylen, "bad deliver '%s': not a numeric IPv6 "
                             "address in the brackets", V(value));
        if (numeric_ip(AF_INET, host))
            return 0;
        if (!(bad = check_mail_host(host)))
            return 0;
        return util_fail(why, whylen, "bad deliver '%s': bad host name: %s", V(value), bad);
    }
    return util_fail(why, whylen, "bad deliver '%s' (want \"link\", \"maildrop\", "
                    "\"pickup\" or \"HOST:PORT\", HOST a name, an IPv4 address or "
                    "[IPv6], port 1-65535)", V(value));
}

/* One DNS server of `resolver`: "IPv4", "IPv4:PORT", "[IPv6]" or "[IPv6]:PORT". */
static int resolver_item_ok(const char *item)
{
    char host[64], tmp[160];
    int port;
    size_t n = strlen(item);
    if (numeric_ip(AF_INET, item))
        return 1;
    if (n > 2 && item[0] == '[' && item[n - 1] == ']') {
        snprintf(tmp, sizeof tmp, "%s:53", item);
        item = tmp;
    }
    return util_parse_hostport(item, host, sizeof host, &port) == 0 &&
           numeric_ip(item[0] == '[' ? AF_INET6 : AF_INET, host);
}

/* resolver: comma-separated DNS servers (the form of c-ares'
 * ares_set_servers_ports_csv); "" = the system's (/etc/resolv.conf). */
static int chk_resolver(const char *opt, const char *value, long *num, char *why, size_t whylen)
{
    const char *p = value ? value : "";
    while (*p) {
        char item[128];
        size_t n = strcspn(p, ",");
        if (n == 0 || n >= sizeof item || (p[n] == ',' && !p[n + 1]))
            goto bad;
        memcpy(item, p, n);
        item[n] = 0;
        if (!resolver_item_ok(item))
            goto bad;
        p += n + (p[n] == ',');
    }
    return 0;
bad:
    return util_fail(why, whylen, "bad %s '%s' (want comma-separated numeric "
                     "servers: \"IPv4\", \"IPv4:PORT\", \"[IPv6]\" or "
                     "\"[IPv6]:PORT\")", opt, V(value));
}

static int chk_tries(const char *opt, const char *value, long *num, char *why, size_t whylen)
{
    return check_number(opt, value, 1, 10, num, why, whylen);
}

/* resolver_timeout: 1 s to 5 min (one try; c-ares doubles it for each
 * further try). */
static int chk_dns_timeout(const char *opt, const char *value, long *num, char *why,
                           size_t whylen)
{
    if (check_duration(opt, value, 1, num, why, whylen) < 0)
        return -1;
    return *num > 300 ? util_fail(why, whylen, "%s must be at most 300s", opt) : 0;
}

/* A file that must be readable now (certificate, key). */
static int chk_file(const char *opt, const char *value, long *num, char *why, size_t whylen)
{
    FILE *f = value && *value ? fopen(value, "r") : NULL;
    if (!f)
        return util_fail(why, whylen, "cannot read %s '%s': %s", opt, V(value),
                        value && *value ? strerror(errno) : "empty");
    fclose(f);
    return 0;
}

static int chk_control(const char *opt, const char *value, long *num, char *why, size_t whylen)
{
    if (!value || !*value || strlen(value) >= 108)
        return util_fail(why, whylen, "bad %s '%s': want a socket path of "
                        "1-107 characters", opt, V(value));
    return 0;
}

/* ---- libconfuse callbacks: the checks above, reported with cfg_error ---- */

static int run_check(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result,
                     value_check *check, int numeric)
{
    char why[512];
    long num = 0;
    if (check(opt->name, value, &num, why, sizeof why) < 0) {
        cfg_error(cfg, "%s", why);
        return -1;
    }
    if (numeric)
        *(long *)result = num;
    else
        *(const char **)result = value;
    return 0;
}

#define CONFUSE_CB(cb, check, numeric)                                      \
    static int cb(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result) \
    {                                                                       \
        return run_check(cfg, opt, value, result, check, numeric);          \
    }

CONFUSE_CB(cb_count, chk_count, 1)
CONFUSE_CB(cb_uint, chk_uint, 1)
CONFUSE_CB(cb_port, chk_port, 1)
CONFUSE_CB(cb_duration, chk_duration, 1)
CONFUSE_CB(cb_duration_pos, chk_duration_pos, 1)
CONFUSE_CB(cb_size, chk_size, 1)
CONFUSE_CB(cb_size_pos, chk_size_pos, 1)
CONFUSE_CB(cb_enum, chk_enum, 1)
CONFUSE_CB(cb_nonempty, chk_nonempty, 0)
CONFUSE_CB(cb_hostname, chk_hostname, 0)
CONFUSE_CB(cb_address, chk_address, 0)
CONFUSE_CB(cb_domain, chk_domain, 0)
CONFUSE_CB(cb_local, chk_local, 0)
CONFUSE_CB(cb_ifname, chk_ifname, 0)
CONFUSE_CB(cb_bool, chk_bool, 1)
CONFUSE_CB(cb_network, chk_network, 0)
CONFUSE_CB(cb_listen, chk_listen, 0)
CONFUSE_CB(cb_deliver, chk_deliver, 0)
CONFUSE_CB(cb_resolver, chk_resolver, 0)
CONFUSE_CB(cb_tries, chk_tries, 1)
CONFUSE_CB(cb_dns_timeout, chk_dns_timeout, 1)
CONFUSE_CB(cb_file, chk_file, 0)
CONFUSE_CB(cb_control, chk_control, 0)

/* ---- customer options: one table for sections and the customer map ---- */

enum cust_slot { CS_DELIVER, CS_INT, CS_UNSIGNED, CS_LONG, CS_U64, CS_ONLINE,
                 CS_TLS, CS_STR,
                 CS_NETS };

static const struct cust_opt {
    const char *name;
    value_check *check;
    enum cust_slot slot;
    size_t off;                 /* of the field in struct customer */
    long def;                   /* default of numbers (strings: NULL) */
} cust_opts[] = {
#define F(field) offsetof(struct customer, field)
    {"deliver", chk_deliver, CS_DELIVER, 0, 0},
    {"port", chk_port, CS_INT, F(port), CUST_DEF_PORT},
    {"online", chk_enum, CS_ONLINE, F(online), CUST_DEF_ONLINE},
    {"link_ttl", chk_duration_pos, CS_LONG, F(link_ttl), CUST_DEF_LINK_TTL},
    {"connections", chk_count, CS_UNSIGNED, F(connections), CUST_DEF_CONNECTIONS},
    {"tls", chk_enum, CS_TLS, F(tls), CUST_DEF_TLS},
    {"tls_ca", chk_file, CS_STR, F(tls_ca), 0},
    {"tls_name", chk_hostname, CS_STR, F(tls_name), 0},
    {"expect_helo", chk_nonempty, CS_STR, F(expect_helo), 0},
    {"radius_user", chk_nonempty, CS_STR, F(radius_user), 0},
    {"interface", chk_ifname, CS_STR, F(interface), 0},
    {"secret", chk_nonempty, CS_STR, F(secret), 0},
    {"quota", chk_size, CS_U64, F(quota), CUST_DEF_QUOTA},
    {"hold_time", chk_duration_pos, CS_LONG, F(hold_time), CUST_DEF_HOLD_TIME},
    {"warn_time", chk_duration, CS_LONG, F(warn_time), CUST_DEF_WARN_TIME},
    {"retry_min", chk_duration_pos, CS_LONG, F(retry_min), CUST_DEF_RETRY_MIN},
    {"retry_max", chk_duration_pos, CS_LONG, F(retry_max), CUST_DEF_RETRY_MAX},
    {"etrn_interval", chk_duration, CS_LONG, F(etrn_interval), CUST_DEF_ETRN_INTERVAL},
    {"autoturn", chk_bool, CS_INT, F(autoturn), 0},
    {"autoturn_networks", chk_networks, CS_NETS, F(autoturn_networks), 0},
#undef F
};
#define NCUST_OPTS (sizeof cust_opts / sizeof cust_opts[0])

/* "link", "maildrop", "pickup" or a checked "HOST:PORT" into cu. */
static int cust_set_deliver(struct customer *cu, const char *d, char *why, size_t whylen)
{
    static const struct { const char *word; enum deliver_kind kind; } words[] = {
        {"link", DELIVER_LINK}, {"maildrop", DELIVER_MAILDROP},
        {"pickup", DELIVER_PICKUP},
    };
    char host[256];
    free(cu->deliver_host);
    cu->deliver_host = NULL;
    cu->deliver_port = 0;
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        if (strcmp(d, words[i].word) == 0) {
            cu->deliver = words[i].kind;
            return 0;
        }
    }
    if (util_parse_hostport(d, host, sizeof host, &cu->deliver_port) < 0)
        return util_fail(why, whylen, "bad deliver '%s'", d);
    cu->deliver = DELIVER_HOST;
    cu->deliver_host = util_lower(xstrdup(host));
    return 0;
}

/* Stores a checked value: num for numbers, s for strings and deliver. */
static int cust_store(struct customer *cu, const struct cust_opt *o, long num,
                      const char *s, char *why, size_t whylen)
{
    void *p = (char *)cu + o->off;
    switch (o->slot) {
    case CS_DELIVER: return cust_set_deliver(cu, s, why, whylen);
    case CS_INT: *(int *)p = (int)num; break;
    case CS_UNSIGNED: *(unsigned *)p = (unsigned)num; break;
    case CS_LONG: *(long *)p = num; break;
    case CS_U64: *(uint64_t *)p = (uint64_t)num; break;
    case CS_ONLINE: cu->online = (enum online_kind)num; break;
    case CS_TLS: cu->tls = (enum tls_policy)num; break;
    case CS_STR:
        free(*(char **)p);
        *(char **)p = s ? xstrdup(s) : NULL;
        break;
    case CS_NETS: {
        struct netlist nl = {0, NULL};
        if (s && netlist_parse(s, &nl, why, whylen) < 0)
            return -1;
        netlist_free((struct netlist *)p);
        *(struct netlist *)p = nl;
        break;
    }
    }
    return 0;
}

void config_customer_defaults(struct customer *cu)
{
    char why[64];
    for (size_t i = 0; i < NCUST_OPTS; i++)
        cust_store(cu, &cust_opts[i], cust_opts[i].def,
                   cust_opts[i].slot == CS_DELIVER ? CUST_DEF_DELIVER : NULL,
                   why, sizeof why);
}

int config_customer_set(struct customer *cu, const char *opt, const char *value,
                        char *why, size_t whylen)
{
    for (size_t i = 0; i < NCUST_OPTS; i++) {
        const struct cust_opt *o = &cust_opts[i];
        long num = 0;
        if (strcmp(o->name, opt) != 0)
            continue;
        if (o->check(o->name, value, &num, why, whylen) < 0)
            return -1;
        return cust_store(cu, o, num, value, why, whylen);
    }
    return util_fail(why, whylen, "unknown customer option '%s'", V(opt));
}

/* A list option of a section (each entry checked by the schema) stored as
 * its comma-separated form, so that the map and sections share checks. */
static int cust_store_list(struct customer *cu, const struct cust_opt *o, cfg_t *sec,
                           char *why, size_t whylen)
{
    unsigned n = cfg_size(sec, o->name);
    size_t len = 1;
    for (unsigned i = 0; i < n; i++)
        len += strlen(cfg_getnstr(sec, o->name, i)) + 1;
    char *csv = xcalloc(1, len);
    for (unsigned i = 0; i < n; i++) {
        if (i)
            strcat(csv, ",");
        strcat(csv, cfg_getnstr(sec, o->name, i));
    }
    char w[256];
    int rc = cust_store(cu, o, 0, csv, w, sizeof w);
    free(csv);
    if (rc < 0)
        return util_fail(why, whylen, "customer '%s': %s: %s", cu->name, o->name, w);
    return 0;
}

int config_customer_from_section(cfg_t *sec, struct customer *cu, char *why,
                                 size_t whylen)
{
    for (size_t i = 0; i < NCUST_OPTS; i++) {
        const struct cust_opt *o = &cust_opts[i];
        int str = o->slot == CS_DELIVER || o->slot == CS_STR;
        if (o->slot == CS_NETS) {
            if (cust_store_list(cu, o, sec, why, whylen) < 0)
                return -1;
            continue;
        }
        if (cust_store(cu, o, str ? 0 : cfg_getint(sec, o->name),
                       str ? cfg_getstr(sec, o->name) : NULL, why, whylen) < 0)
            return -1;
    }
    return 0;
}

int config_customer_check(const struct customer *cu, char *why, size_t whylen)
{
    if (cu->ndomains == 0)
        return util_fail(why, whylen, "customer '%s' has no domains", cu->name);
    if (cu->retry_min > cu->retry_max)
        return util_fail(why, whylen, "customer '%s': retry_min (%lds) is greater "
                        "than retry_max (%lds)", cu->name, cu->retry_min,
                        cu->retry_max);
    if ((cu->deliver == DELIVER_MAILDROP || cu->deliver == DELIVER_PICKUP) &&
        !cu->secret)
        return util_fail(why, whylen, "customer '%s': deliver = \"%s\" needs a "
                        "secret (nobody could collect the mail)", cu->name,
                        cu->deliver == DELIVER_MAILDROP ? "maildrop" : "pickup");
    if (cu->autoturn && cu->deliver != DELIVER_LINK)
        return util_fail(why, whylen, "customer '%s': autoturn needs deliver = "
                        "\"link\" (there is no link address to set otherwise)",
                        cu->name);
    return 0;
}

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void config_customer_free(struct customer *cu)
{
    free(cu->name);
    free_strv(cu->domains, cu->ndomains);
    free_strv(cu->recipients, cu->nrecipients);
    free(cu->deliver_host);
    free(cu->expect_helo);
    free(cu->tls_ca);
    free(cu->tls_name);
    free(cu->radius_user);
    free(cu->interface);
    free(cu->secret);
    netlist_free(&cu->autoturn_networks);
}

/* ---- maildrop options: sections and the customer map ---- */

/* RFC 5322 atext without '/': a local part that is never a path. */
static int md_atext(int ch)
{
    return isalnum(ch) || (ch && strchr("!#$%&'*+-=?^_`{|}~", ch));
}

const char *config_check_maildrop_address(const char *address)
{
    const char *at = address ? strrchr(address, '@') : NULL;
    if (!at)
        return "want an address local@domain";
    if (strlen(address) > 254)      /* RFC 5321: a path is 256 with its <> */
        return "an address has at most 254 characters (no mail could reach it)";
    size_t n = (size_t)(at - address);
    if (n == 0 || n > 64)
        return "the local part must have 1 to 64 characters";
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)address[i];
        if (ch == '.' && (i == 0 || i == n - 1 || address[i - 1] == '.'))
            return "a '.' may not start or end the local part, nor follow another";
        if (ch != '.' && !md_atext(ch))
            return "the local part takes letters, digits, '.' and "
                   "!#$%&'*+-=?^_`{|}~ only";
    }
    const char *bad = config_check_domain(at + 1);
    return bad ? bad : NULL;
}

void config_maildrop_defaults(struct maildrop_conf *md)
{
    md->mode = MD_DEF_MODE;
    md->keep_days = MD_DEF_KEEP_DAYS;
    md->quota = MD_DEF_QUOTA;
}

int config_maildrop_set(struct maildrop_conf *md, const char *opt, const char *value,
                        char *why, size_t whylen)
{
    long num = 0;
    if (!strcmp(V(opt), "password")) {
        if (chk_nonempty("password", value, &num, why, whylen) < 0)
            return -1;
        free(md->password);
        md->password = xstrdup(value);
    } else if (!strcmp(V(opt), "mode")) {
        if (chk_enum("mode", value, &num, why, whylen) < 0)
            return -1;
        md->mode = (enum maildrop_mode)num;
    } else if (!strcmp(V(opt), "keep_days")) {
        if (chk_uint("keep_days", value, &num, why, whylen) < 0)
            return -1;
        md->keep_days = num;
    } else if (!strcmp(V(opt), "quota")) {
        if (chk_size("quota", value, &num, why, whylen) < 0)
            return -1;
        md->quota = (uint64_t)num;
    } else {
        return util_fail(why, whylen, "unknown maildrop option '%s'", V(opt));
    }
    return 0;
}

void config_maildrop_free(struct maildrop_conf *md)
{
    free(md->address);
    free(md->password);
}

/* ---- the schema ---- */

static cfg_opt_t tls_opts[] = {
    CFG_STR_CB("certificate", NULL, CFGF_NONE, cb_file),
    CFG_STR_CB("key", NULL, CFGF_NONE, cb_file),
    CFG_STR_CB("protocols", NULL, CFGF_NONE, cb_nonempty),
    CFG_STR_CB("ciphers", NULL, CFGF_NONE, cb_nonempty),
    CFG_STR_CB("ciphersuites", NULL, CFGF_NONE, cb_nonempty),
    CFG_END()
};

static cfg_opt_t smtp_opts[] = {
    CFG_STR_LIST_CB("listen", NULL, CFGF_NONE, cb_listen),
    CFG_INT_CB("max_message_size", 10240000, CFGF_NONE, cb_size_pos),
    CFG_INT_CB("max_recipients", 1000, CFGF_NONE, cb_count),
    CFG_INT_CB("max_connections", 1000, CFGF_NONE, cb_count),
    CFG_INT_CB("max_connections_per_client", 50, CFGF_NONE, cb_count),
    CFG_INT_CB("max_bad_commands", 20, CFGF_NONE, cb_count),
    CFG_INT_CB("max_received_headers", 50, CFGF_NONE, cb_count),
    CFG_INT_CB("header_size_limit", 102400, CFGF_NONE, cb_size_pos),
    CFG_INT_CB("line_length_limit", 65536, CFGF_NONE, cb_size_pos),
    CFG_INT_CB("max_data_in_memory", 256 * 1024 * 1024, CFGF_NONE, cb_size_pos),
    /* 0: not set; config.c derives it from max_data_in_memory */
    CFG_INT_CB("max_data_in_memory_per_client", 0, CFGF_NONE, cb_size_pos),
    CFG_INT_CB("timeout", 300, CFGF_NONE, cb_duration_pos),
    CFG_BOOL("auth", cfg_false, CFGF_NONE),
    CFG_BOOL("auth_cleartext", cfg_false, CFGF_NONE),
    CFG_END()
};

static cfg_opt_t submission_opts[] = {
    CFG_STR_LIST_CB("listen", NULL, CFGF_NONE, cb_listen),
    CFG_BOOL("auth_cleartext", cfg_false, CFGF_NONE),
    CFG_END()
};

static cfg_opt_t smtps_opts[] = {
    CFG_STR_LIST_CB("listen", NULL, CFGF_NONE, cb_listen),
    CFG_END()
};

static cfg_opt_t odmr_opts[] = {
    CFG_STR_LIST_CB("listen", NULL, CFGF_NONE, cb_listen),
    CFG_BOOL("auth_cleartext", cfg_false, CFGF_NONE),
    CFG_INT_CB("max_connections", 100, CFGF_NONE, cb_count),
    CFG_INT_CB("max_connections_per_client", 10, CFGF_NONE, cb_count),
    CFG_END()
};

static cfg_opt_t auth_opts[] = {
    CFG_INT_CB("failure_delay", 1, CFGF_NONE, cb_duration),
    CFG_INT_CB("failure_delay_max", 15, CFGF_NONE, cb_duration),
    CFG_INT_CB("max_failures", 20, CFGF_NONE, cb_count),
    CFG_INT_CB("failure_window", 600, CFGF_NONE, cb_duration_pos),
    CFG_END()
};

static cfg_opt_t pop3_opts[] = {
    CFG_STR_LIST_CB("listen", NULL, CFGF_NONE, cb_listen),
    CFG_BOOL("cleartext", cfg_false, CFGF_NONE),
    CFG_BOOL("apop", cfg_false, CFGF_NONE),
    CFG_INT_CB("timeout", 600, CFGF_NONE, cb_duration_pos),
    CFG_INT_CB("max_connections", 1000, CFGF_NONE, cb_count),
    CFG_INT_CB("max_connections_per_client", 50, CFGF_NONE, cb_count),
    CFG_END()
};

static cfg_opt_t radius_client_opts[] = {
    CFG_STR_CB("secret", NULL, CFGF_NONE, cb_nonempty),
    CFG_END()
};

static cfg_opt_t radius_opts[] = {
    CFG_STR_LIST_CB("listen", NULL, CFGF_NONE, cb_listen),
    CFG_SEC("client", radius_client_opts,
            CFGF_MULTI | CFGF_TITLE | CFGF_NO_TITLE_DUPES),
    CFG_END()
};

static cfg_opt_t netlink_opts[] = {
    CFG_BOOL("enabled", cfg_false, CFGF_NONE),
    CFG_END()
};

/* The options of cust_opts above, with the same defaults; the two lists
 * must name the same options (config_customer_from_section reads these). */
static cfg_opt_t customer_opts[] = {
    CFG_STR_LIST_CB("domains", NULL, CFGF_NONE, cb_domain),
    CFG_STR_LIST_CB("recipients", NULL, CFGF_NONE, cb_local),
    CFG_STR_CB("deliver", CUST_DEF_DELIVER, CFGF_NONE, cb_deliver),
    CFG_INT_CB("port", CUST_DEF_PORT, CFGF_NONE, cb_port),
    CFG_INT_CB("online", CUST_DEF_ONLINE, CFGF_NONE, cb_enum),
    CFG_INT_CB("link_ttl", CUST_DEF_LINK_TTL, CFGF_NONE, cb_duration_pos),
    CFG_INT_CB("connections", CUST_DEF_CONNECTIONS, CFGF_NONE, cb_count),
    CFG_INT_CB("tls", CUST_DEF_TLS, CFGF_NONE, cb_enum),
    CFG_STR_CB("tls_ca", NULL, CFGF_NONE, cb_file),
    CFG_STR_CB("tls_name", NULL, CFGF_NONE, cb_hostname),
    CFG_STR_CB("expect_helo", NULL, CFGF_NONE, cb_nonempty),
    CFG_STR_CB("radius_user", NULL, CFGF_NONE, cb_nonempty),
    CFG_STR_CB("interface", NULL, CFGF_NONE, cb_ifname),
    CFG_STR_CB("secret", NULL, CFGF_NONE, cb_nonempty),
    CFG_INT_CB("quota", CUST_DEF_QUOTA, CFGF_NONE, cb_size),
    CFG_INT_CB("hold_time", CUST_DEF_HOLD_TIME, CFGF_NONE, cb_duration_pos),
    CFG_INT_CB("warn_time", CUST_DEF_WARN_TIME, CFGF_NONE, cb_duration),
    CFG_INT_CB("retry_min", CUST_DEF_RETRY_MIN, CFGF_NONE, cb_duration_pos),
    CFG_INT_CB("retry_max", CUST_DEF_RETRY_MAX, CFGF_NONE, cb_duration_pos),
    CFG_INT_CB("etrn_interval", CUST_DEF_ETRN_INTERVAL, CFGF_NONE, cb_duration),
    CFG_INT_CB("autoturn", 0, CFGF_NONE, cb_bool),
    CFG_STR_LIST_CB("autoturn_networks", NULL, CFGF_NONE, cb_network),
    CFG_END()
};

static cfg_opt_t maildrop_opts[] = {
    CFG_STR_CB("password", NULL, CFGF_NONE, cb_nonempty),
    CFG_INT_CB("mode", MD_DEF_MODE, CFGF_NONE, cb_enum),
    CFG_INT_CB("keep_days", MD_DEF_KEEP_DAYS, CFGF_NONE, cb_uint),
    CFG_INT_CB("quota", MD_DEF_QUOTA, CFGF_NONE, cb_size),
    CFG_END()
};

static cfg_opt_t root_opts[] = {
    CFG_STR_CB("hostname", NULL, CFGF_NONE, cb_hostname),
    CFG_STR_CB("spool", "/var/spool/kickmail", CFGF_NONE, cb_nonempty),
    CFG_STR_CB("control", "/run/kickmail/control.sock", CFGF_NONE, cb_control),
    CFG_STR_CB("user", NULL, CFGF_NONE, cb_nonempty),
    CFG_STR_CB("postmaster", NULL, CFGF_NONE, cb_address),
    CFG_INT_CB("dsn_return", DSN_RETURN_HEADERS, CFGF_NONE, cb_enum),
    CFG_STR_CB("customer_map", NULL, CFGF_NONE, cb_nonempty),
    CFG_STR_CB("maildir_root", "/var/lib/kickmail/maildrops", CFGF_NONE, cb_nonempty),
    CFG_INT_CB("spool_spares", SPARES_CONF_AUTO, CFGF_NONE, cb_enum),
    CFG_STR_CB("resolver", NULL, CFGF_NONE, cb_resolver),
    CFG_INT_CB("resolver_timeout", 5, CFGF_NONE, cb_dns_timeout),
    CFG_INT_CB("resolver_tries", 2, CFGF_NONE, cb_tries),
    CFG_SEC("tls", tls_opts, CFGF_NONE),
    CFG_SEC("smtp", smtp_opts, CFGF_NONE),
    CFG_SEC("submission", submission_opts, CFGF_NONE),
    CFG_SEC("smtps", smtps_opts, CFGF_NONE),
    CFG_SEC("auth", auth_opts, CFGF_NONE),
    CFG_SEC("pop3", pop3_opts, CFGF_NONE),
    CFG_SEC("pop3s", pop3_opts, CFGF_NONE),
    CFG_SEC("odmr", odmr_opts, CFGF_NONE),
    CFG_SEC("radius", radius_opts, CFGF_NONE),
    CFG_SEC("netlink", netlink_opts, CFGF_NONE),
    CFG_SEC("customer", customer_opts,
            CFGF_MULTI | CFGF_TITLE | CFGF_NO_TITLE_DUPES),
    CFG_SEC("maildrop", maildrop_opts,
            CFGF_MULTI | CFGF_TITLE | CFGF_NO_TITLE_DUPES),
    CFG_END()
};

struct cfg_t *config_schema_new(void)
{
    return cfg_init(root_opts, CFGF_NONE);
}

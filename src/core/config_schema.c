/*
 * config_schema — the libconfuse schema of kickmail.conf and the checks of
 * single values that run while libconfuse parses (so their errors carry the
 * line of the value).  Durations, sizes and enums are int options with a
 * parse callback: both `12h` and "12h" are accepted.  Trusts nothing in the
 * file; every callback rejects with cfg_error() and a message naming the
 * option.  Cross-section checks (domains claimed twice, retry_min >
 * retry_max, tls pairs...) are config.c's, after the parse.
 */
#include <arpa/inet.h>
#include <confuse.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "config.h"
#include "util.h"

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

/* ---- numbers ---- */

/* Digits only (no sign, no hex), within [min, max]. */
static int parse_number(cfg_t *cfg, cfg_opt_t *opt, const char *value,
                        long min, long max, void *result)
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
    *(long *)result = v;
    return 0;
bad:
    cfg_error(cfg, "bad value '%s' for %s (a number from %ld to %ld)",
              value ? value : "", opt->name, min, max);
    return -1;
}

static int cb_count(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
    return parse_number(cfg, opt, value, 1, INT_MAX, result);
}

static int cb_uint(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
    return parse_number(cfg, opt, value, 0, INT_MAX, result);
}

static int cb_port(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
    return parse_number(cfg, opt, value, 1, 65535, result);
}

static int parse_duration(cfg_t *cfg, cfg_opt_t *opt, const char *value,
                          long min, void *result)
{
    long v;
    if (util_parse_duration(value, &v) < 0) {
        cfg_error(cfg, "bad duration '%s' for %s (seconds, or a number "
                  "with s, m, h or d)", value ? value : "", opt->name);
        return -1;
    }
    if (v < min) {
        cfg_error(cfg, "%s must be at least %lds", opt->name, min);
        return -1;
    }
    *(long *)result = v;
    return 0;
}

static int cb_duration(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
    return parse_duration(cfg, opt, value, 0, result);
}

static int cb_duration_pos(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
    return parse_duration(cfg, opt, value, 1, result);
}

static int parse_size(cfg_t *cfg, cfg_opt_t *opt, const char *value,
                      uint64_t min, void *result)
{
    uint64_t v;
    if (util_parse_size(value, &v) < 0 || v > (uint64_t)LONG_MAX) {
        cfg_error(cfg, "bad size '%s' for %s (bytes, or a number with "
                  "k, M or G)", value ? value : "", opt->name);
        return -1;
    }
    if (v < min) {
        cfg_error(cfg, "%s must be at least %llu", opt->name,
                  (unsigned long long)min);
        return -1;
    }
    *(long *)result = (long)v;
    return 0;
}

static int cb_size(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
    return parse_size(cfg, opt, value, 0, result);
}

static int cb_size_pos(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
    return parse_size(cfg, opt, value, 1, result);
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
    {"dsn_return", "headers", DSN_RETURN_HEADERS},
    {"dsn_return", "full", DSN_RETURN_FULL},
    {"mode", "delete", MAILDROP_DELETE},
    {"mode", "keep", MAILDROP_KEEP},
};

static int cb_enum(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
    char allowed[128] = "";
    size_t n = sizeof enum_words / sizeof enum_words[0];
    for (size_t i = 0; i < n; i++) {
        if (strcmp(enum_words[i].opt, opt->name) != 0)
            continue;
        if (value && strcmp(enum_words[i].word, value) == 0) {
            *(long *)result = enum_words[i].val;
            return 0;
        }
        size_t len = strlen(allowed);
        snprintf(allowed + len, sizeof allowed - len, "%s\"%s\"",
                 len ? ", " : "", enum_words[i].word);
    }
    cfg_error(cfg, "bad value '%s' for %s (%s)", value ? value : "",
              opt->name, allowed);
    return -1;
}

/* ---- strings: checked, then stored as written ---- */

static int pass(const char *value, void *result)
{
    *(const char **)result = value;
    return 0;
}

static int cb_nonempty(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
    if (!value || !*value) {
        cfg_error(cfg, "%s must not be empty", opt->name);
        return -1;
    }
    return pass(value, result);
}

static int cb_hostname(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
    const char *why = check_hostname(value);
    if (why) {
        cfg_error(cfg, "bad %s '%s': %s", opt->name, value ? value : "", why);
        return -1;
    }
    return pass(value, result);
}

static int cb_address(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
    const char *at = value ? strrchr(value, '@') : NULL;
    if (!at || at == value || !at[1] || strpbrk(value, " \t\r\n<>")) {
        cfg_error(cfg, "bad %s '%s': want an address local@domain",
                  opt->name, value ? value : "");
        return -1;
    }
    return pass(value, result);
}

static int cb_domain(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
    const char *why = config_check_domain(value);
    if (why) {
        cfg_error(cfg, "bad domain '%s': %s", value ? value : "", why);
        return -1;
    }
    return pass(value, result);
}

/* A local part as accepted in RCPT TO: no '@', no spaces, at most 64. */
static int cb_local(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
    size_t n = value ? strlen(value) : 0;
    if (n == 0 || n > 64 || strpbrk(value, "@ \t\r\n<>\"")) {
        cfg_error(cfg, "bad %s entry '%s': want a local part (no '@', "
                  "at most 64 characters)", opt->name, value ? value : "");
        return -1;
    }
    return pass(value, result);
}

static int cb_ifname(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
    size_t n = value ? strlen(value) : 0;
    if (n == 0 || n > 15 || strpbrk(value, "/ \t\r\n")) {
        cfg_error(cfg, "bad %s '%s': want an interface name of 1-15 "
                  "characters", opt->name, value ? value : "");
        return -1;
    }
    return pass(value, result);
}

static int numeric_ip(int af, const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(af, host, buf) == 1;
}

static int cb_listen(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
    struct listen_addr la;
    int af = value && value[0] == '[' ? AF_INET6 : AF_INET;
    if (!value || strlen(value) >= sizeof la.text ||
        util_parse_hostport(value, la.host, sizeof la.host, &la.port) < 0 ||
        !numeric_ip(af, la.host)) {
        cfg_error(cfg, "bad listen address '%s' (want \"IPv4:PORT\" or "
                  "\"[IPv6]:PORT\", numeric, port 1-65535)", value ? value : "");
        return -1;
    }
    return pass(value, result);
}

/* "link", "maildrop", "pickup", or "HOST:PORT" ("[V6]:PORT"). */
static int cb_deliver(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
    char host[256];
    int port;
    if (value && (!strcmp(value, "link") || !strcmp(value, "maildrop") ||
                  !strcmp(value, "pickup")))
        return pass(value, result);
    if (value && util_parse_hostport(value, host, sizeof host, &port) == 0) {
        int ok = value[0] == '['
                 ? numeric_ip(AF_INET6, host) || numeric_ip(AF_INET, host)
                 : check_hostname(host) == NULL;
        if (ok)
            return pass(value, result);
    }
    cfg_error(cfg, "bad deliver '%s' (want \"link\", \"maildrop\", "
              "\"pickup\" or \"HOST:PORT\")", value ? value : "");
    return -1;
}

/* A file that must be readable now (certificate, key). */
static int cb_file(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
    FILE *f = value && *value ? fopen(value, "r") : NULL;
    if (!f) {
        cfg_error(cfg, "cannot read %s '%s': %s", opt->name,
                  value ? value : "", value && *value ? strerror(errno) : "empty");
        return -1;
    }
    fclose(f);
    return pass(value, result);
}

static int cb_control(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
    if (!value || !*value || strlen(value) >= 108) {
        cfg_error(cfg, "bad %s '%s': want a socket path of 1-107 characters",
                  opt->name, value ? value : "");
        return -1;
    }
    return pass(value, result);
}

/* ---- the schema ---- */

static cfg_opt_t tls_opts[] = {
    CFG_STR_CB("certificate", NULL, CFGF_NONE, cb_file),
    CFG_STR_CB("key", NULL, CFGF_NONE, cb_file),
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
    CFG_INT_CB("timeout", 300, CFGF_NONE, cb_duration_pos),
    CFG_END()
};

static cfg_opt_t listener_opts[] = {
    CFG_STR_LIST_CB("listen", NULL, CFGF_NONE, cb_listen),
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

static cfg_opt_t customer_opts[] = {
    CFG_STR_LIST_CB("domains", NULL, CFGF_NONE, cb_domain),
    CFG_STR_LIST_CB("recipients", NULL, CFGF_NONE, cb_local),
    CFG_STR_CB("deliver", "link", CFGF_NONE, cb_deliver),
    CFG_INT_CB("port", 25, CFGF_NONE, cb_port),
    CFG_INT_CB("online", ONLINE_DETECT, CFGF_NONE, cb_enum),
    CFG_INT_CB("link_ttl", 12 * 3600, CFGF_NONE, cb_duration_pos),
    CFG_INT_CB("connections", 2, CFGF_NONE, cb_count),
    CFG_INT_CB("tls", TLSPOL_MAY, CFGF_NONE, cb_enum),
    CFG_STR_CB("expect_helo", NULL, CFGF_NONE, cb_nonempty),
    CFG_STR_CB("radius_user", NULL, CFGF_NONE, cb_nonempty),
    CFG_STR_CB("interface", NULL, CFGF_NONE, cb_ifname),
    CFG_STR_CB("secret", NULL, CFGF_NONE, cb_nonempty),
    CFG_INT_CB("quota", 500L * 1024 * 1024, CFGF_NONE, cb_size),
    CFG_INT_CB("hold_time", 5 * 86400, CFGF_NONE, cb_duration_pos),
    CFG_INT_CB("warn_time", 0, CFGF_NONE, cb_duration),
    CFG_INT_CB("retry_min", 60, CFGF_NONE, cb_duration_pos),
    CFG_INT_CB("retry_max", 3600, CFGF_NONE, cb_duration_pos),
    CFG_INT_CB("etrn_interval", 0, CFGF_NONE, cb_duration),
    CFG_END()
};

static cfg_opt_t maildrop_opts[] = {
    CFG_STR_CB("password", NULL, CFGF_NONE, cb_nonempty),
    CFG_INT_CB("mode", MAILDROP_DELETE, CFGF_NONE, cb_enum),
    CFG_INT_CB("keep_days", 30, CFGF_NONE, cb_uint),
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
    CFG_SEC("tls", tls_opts, CFGF_NONE),
    CFG_SEC("smtp", smtp_opts, CFGF_NONE),
    CFG_SEC("submission", listener_opts, CFGF_NONE),
    CFG_SEC("smtps", listener_opts, CFGF_NONE),
    CFG_SEC("pop3", listener_opts, CFGF_NONE),
    CFG_SEC("pop3s", listener_opts, CFGF_NONE),
    CFG_SEC("odmr", listener_opts, CFGF_NONE),
    CFG_SEC("radius", radius_opts, CFGF_NONE),
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

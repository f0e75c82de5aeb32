/*
 * config — the libconfuse schema of kickmail.conf (see doc/kickmail.conf.5 and
 * ../shared/INTERFACE.md) and its validation.  config_load() either returns a
 * complete, checked configuration or fails with "FILE:LINE: what is wrong".
 * Nothing is bound or written here.  A struct config is immutable once loaded;
 * SIGHUP builds a new one and swaps it in whole.
 */
#ifndef KM_CONFIG_H
#define KM_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "core/netlist.h"

/* DELIVER_LOCAL: a local domain of address maildrops (made by the registry,
 * never written in a customer section). */
enum deliver_kind { DELIVER_LINK, DELIVER_HOST, DELIVER_MAILDROP, DELIVER_PICKUP,
                    DELIVER_LOCAL };
enum online_kind  { ONLINE_DETECT, ONLINE_ALWAYS };
enum tls_policy   { TLSPOL_NONE, TLSPOL_MAY, TLSPOL_ENCRYPT, TLSPOL_VERIFY };
enum dsn_return   { DSN_RETURN_HEADERS, DSN_RETURN_FULL };
enum spool_spares_conf { SPARES_CONF_AUTO, SPARES_CONF_YES, SPARES_CONF_NO };
enum maildrop_mode { MAILDROP_DELETE, MAILDROP_KEEP };

/* One listen address, already split. */
struct listen_addr {
    char host[64];      /* "0.0.0.0", "::", "127.0.0.1" (no brackets) */
    int  port;
    char text[80];      /* as written, for logs */
};

/* A listener section: smtp, submission, smtps, pop3, pop3s, odmr, radius. */
struct listener_conf {
    int present;                /* the section was in the file */
    size_t nlisten;
    struct listen_addr *listen;
};

struct smtp_conf {
    struct listener_conf l;
    uint64_t max_message_size;      /* 10240000 */
    unsigned max_recipients;        /* 1000 */
    unsigned max_connections;       /* 1000 */
    unsigned max_connections_per_client; /* 50 */
    unsigned max_bad_commands;      /* 20 */
    unsigned max_received_headers;  /* 50 */
    uint64_t header_size_limit;     /* 102400 */
    uint64_t line_length_limit;     /* 65536 */
    uint64_t max_data_in_memory;    /* 256M: message data of all sessions together */
    uint64_t max_data_in_memory_per_client; /* max(max_data_in_memory / 4,
                                       max_message_size): of one client address */
    long timeout;                   /* 300 s */
    int auth;                       /* auth = true: AUTH offered on port 25 too (false) */
    int auth_cleartext;             /* auth_cleartext = true: AUTH before TLS (false) */
};

/* The submission (STARTTLS, then AUTH) and smtps (implicit TLS) sections:
 * their sessions run under the smtp section's limits. */
struct submission_conf {
    struct listener_conf l;
    int auth_cleartext;             /* AUTH before TLS (false; smtps: always TLS) */
};

/* The odmr section (RFC 2645): EHLO, AUTH, ATRN, then the line turns
 * around.  Its sessions run under the smtp section's timeout and
 * max_bad_commands. */
struct odmr_conf {
    struct listener_conf l;
    int auth_cleartext;             /* AUTH PLAIN/LOGIN before TLS (false) */
    unsigned max_connections;       /* 100 */
    unsigned max_connections_per_client; /* 10 */
};

/* The auth section: failed logins of every protocol (auth_guard_conf). */
struct auth_conf {
    long failure_delay;             /* s before the first failure is answered (1) */
    long failure_delay_max;         /* s, the doubling's cap (15) */
    unsigned max_failures;          /* per client address within failure_window (20) */
    long failure_window;            /* s (600) */
};

/* The pop3 (STLS) and pop3s (implicit TLS) sections. */
struct pop3_conf {
    struct listener_conf l;
    int cleartext;                  /* cleartext = true: USER/PASS and AUTH PLAIN
                                     * without TLS from any address (else from
                                     * loopback only) */
    int apop;                       /* apop = true: APOP for maildrops with a
                                     * plaintext-equivalent secret (false) */
    long timeout;                   /* the autologout timer: 600 s */
    unsigned max_connections;       /* 1000 */
    unsigned max_connections_per_client; /* 50 */
};

#define RADIUS_SECRET_MAX 128      /* bytes of a client's secret */

struct radius_client {
    char *address;              /* title of the client section: "ADDR" or
                                 * "ADDR/LEN" */
    char *secret;               /* 1..RADIUS_SECRET_MAX bytes */
    int family;                 /* AF_INET or AF_INET6 */
    unsigned char net[16];      /* the address, host bits cleared (4 bytes
                                 * used for AF_INET) */
    int prefix;                 /* 0..32 or 0..128 (a single address: all) */
};

struct customer {
    char *name;                 /* lower-case [a-z0-9_-]+ */
    size_t ndomains;
    char **domains;             /* lower-case, each contains a dot */
    size_t nrecipients;         /* 0 = every local part accepted */
    char **recipients;          /* lower-case local parts */
    enum deliver_kind deliver;
    char *deliver_host;         /* for DELIVER_HOST: host without brackets: a
                                 * numeric address or a host name (lower-case),
                                 * looked up at each delivery attempt */
    int deliver_port;           /* for DELIVER_HOST */
    int port;                   /* for DELIVER_LINK (25) */
    enum online_kind online;
    long link_ttl;              /* 12h */
    unsigned connections;       /* 2 */
    enum tls_policy tls;        /* may */
    char *tls_ca;               /* verify: trust only this PEM file; NULL = system CAs */
    char *tls_name;             /* verify: the certificate's name; NULL = the host */
    char *expect_helo;          /* NULL when unset */
    char *radius_user;          /* NULL when unset */
    char *interface;            /* NULL when unset */
    char *secret;               /* NULL when unset */
    uint64_t quota;             /* 0 = unlimited (default 500M) */
    long hold_time;             /* 5d */
    long warn_time;             /* 0 */
    long retry_min, retry_max;  /* 1m, 1h */
    long etrn_interval;         /* 5 */
    int autoturn;               /* autoturn = true: an authenticated session
                                 * raises the link at its peer (false) */
    struct netlist autoturn_networks;   /* connections from here raise it
                                 * too, unauthenticated (empty) */
    int line;                   /* line of the section in the file; 0 for a
                                 * customer of the customer map */
    const char *origin;         /* the file it came from (the configuration
                                 * or the customer map), for messages; points
                                 * into its struct config or struct custmap */
};

struct maildrop_conf {
    char *address;              /* section title, lower-case */
    char *password;             /* crypt(3) hash */
    enum maildrop_mode mode;
    long keep_days;
    uint64_t quota;             /* bytes; 0 = none (the default) */
    int line;                   /* line of the section; 0 for a row of the
                                 * customer map */
    const char *origin;         /* the file it came from, for messages */
};

struct hosts;

struct config {
    char *path;
    char *hostname;             /* default: gethostname() */
    char *spool;
    char *control;
    char *user;                 /* NULL when unset */
    char *postmaster;           /* default "postmaster@" hostname */
    enum dsn_return dsn_return;
    char *customer_map;         /* NULL when unset */
    char *maildir_root;         /* where maildrops live ("/var/lib/kickmail/
                                 * maildrops"): maildir_path(maildir_root, ..) */
    enum spool_spares_conf spool_spares;   /* "auto" (default), "yes", "no" */
    char *resolver;             /* DNS servers, c-ares CSV form; NULL = the
                                 * system's (/etc/resolv.conf); "" too */
    long resolver_timeout;      /* seconds, first try (5) */
    unsigned resolver_tries;    /* 1-10 (2) */
    struct hosts *hosts;        /* /etc/hosts as read by kickmaild with this
                                 * configuration (hosts_load); NULL elsewhere */
    char *tls_certificate, *tls_key;   /* both NULL or both set */
    int tls_min_version, tls_max_version;   /* tls { protocols }: TLS_V1_x, 0 = default */
    char *tls_ciphers, *tls_ciphersuites;   /* NULL = OpenSSL's defaults */
    struct smtp_conf smtp;
    struct submission_conf submission, smtps;
    struct odmr_conf odmr;
    struct listener_conf radius;
    struct auth_conf auth;
    struct pop3_conf pop3, pop3s;
    size_t nradius_clients;
    struct radius_client *radius_clients;
    int netlink_enabled;        /* netlink { enabled = true }: the watcher runs */
    size_t ncustomers;
    struct customer *customers;
    size_t nmaildrops;
    struct maildrop_conf *maildrops;
};

/* Loads and validates path.  On failure returns NULL and writes
 * "FILE:LINE: what is wrong" (or "FILE: what is wrong") into err. */
struct config *config_load(const char *path, char *err, size_t errlen);
void config_free(struct config *c);

/* Names of listener sections present in the file whose protocol kickmaild does
 * not serve yet, comma-separated into buf ("" when none). */
void config_unserved(const struct config *c, char *buf, size_t len);

/* Helpers shared with the customer map: validation of single values.
 * Return NULL when fine, else a static message. */
const char *config_check_customer_name(const char *name);
const char *config_check_domain(const char *domain);
/* A local part of `recipients`: 1-64 characters, no '@', space, <>, '"'. */
const char *config_check_local_part(const char *local);

/*
 * Customer options, shared by customer sections and the customer map so that
 * both get the same defaults, the same checks and the same messages.  One
 * table in config_schema.c drives both.
 */
/* Sets every option (all but name, domains and recipients) to its default. */
void config_customer_defaults(struct customer *cu);
/* Sets option `opt` (a customer-section option name other than domains and
 * recipients) from its text form ("12h", "500M", "25", "may", "HOST:PORT"),
 * checked exactly as in a customer section.  0, or -1 with why, e.g.
 * "bad duration '12x' for link_ttl (seconds, or ...)"; an unknown opt is -1. */
int config_customer_set(struct customer *cu, const char *opt, const char *value,
                        char *why, size_t whylen);
/* The checks that need the whole customer: at least one domain, retry_min <=
 * retry_max, a secret for "maildrop" and "pickup".  0, or -1 with why naming
 * the customer ("customer 'a' has no domains"). */
int config_customer_check(const struct customer *cu, char *why, size_t whylen);
/* Frees what cu owns (not cu itself). */
void config_customer_free(struct customer *cu);

/*
 * Maildrop options, shared by maildrop sections and the customer map's
 * maildrops table in the same way.
 */
/* A maildrop address (already lower-cased): a dot-atom local part of at
 * most 64 characters without '/' (so never a path, never hidden: no leading
 * '.', no "..") '@' a domain as config_check_domain wants.  NULL when fine,
 * else a static message. */
const char *config_check_maildrop_address(const char *address);
/* Sets mode, keep_days and quota to their defaults (password NULL). */
void config_maildrop_defaults(struct maildrop_conf *md);
/* Sets option opt ("password", "mode", "keep_days", "quota") from its text
 * form, checked as in a maildrop section.  0, or -1 with why. */
int config_maildrop_set(struct maildrop_conf *md, const char *opt, const char *value,
                        char *why, size_t whylen);
/* Frees what md owns (not md itself). */
void config_maildrop_free(struct maildrop_conf *md);

#endif

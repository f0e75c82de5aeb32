/*
 * smtp_parse — pure SMTP parsing: bytes in, structs out.  No I/O, no
 * allocation except where stated, safe on any input (fuzzed).  Used by the
 * server session (and later the client and ETRN) and by the unit tests.
 */
#ifndef KM_SMTP_PARSE_H
#define KM_SMTP_PARSE_H

#include <stddef.h>
#include <stdint.h>

#define SMTP_CMD_LINE_MAX   1000    /* longest command line, CRLF excluded */
#define SMTP_PATH_MAX       256     /* RFC 5321 4.5.3.1.3 */
#define SMTP_LOCAL_MAX      64
#define SMTP_DOMAIN_MAX     255

enum smtp_verb {
    SMTP_V_UNKNOWN = 0, SMTP_V_HELO, SMTP_V_EHLO, SMTP_V_MAIL, SMTP_V_RCPT,
    SMTP_V_DATA, SMTP_V_RSET, SMTP_V_NOOP, SMTP_V_QUIT, SMTP_V_VRFY,
    SMTP_V_EXPN, SMTP_V_HELP, SMTP_V_STARTTLS, SMTP_V_ETRN, SMTP_V_AUTH,
    SMTP_V_BDAT, SMTP_V_ATRN,
};

struct smtp_cmd {
    enum smtp_verb verb;
    const char *arg;            /* points into the line: first non-space after the verb, "" if none */
    size_t arglen;
};

/* Splits a command line (no CRLF) into verb and argument.  Verbs are matched
 * case-insensitively and must be followed by a space or the end.  Returns 0;
 * -1 when the line holds a NUL, CR or LF byte (cmd->verb = SMTP_V_UNKNOWN). */
int smtp_parse_command(const char *line, size_t len, struct smtp_cmd *cmd);

/* A mailbox after parsing: local part (unquoted form, as the sender wrote it
 * once quotes are removed) and domain (lower-cased), or the null path.
 * Never write local back as it is: addr_format() (addr.h) gives the wire
 * form that keeps a quoted local part quoted. */
struct smtp_mailbox {
    int null;                           /* <> */
    int postmaster;                     /* <postmaster> without domain (RCPT only) */
    int quoted;                         /* local part was a quoted-string */
    int literal;                        /* domain was an address literal [..] */
    char local[SMTP_LOCAL_MAX + 1];
    char domain[SMTP_DOMAIN_MAX + 1];
};

/* ESMTP parameters we understand; unknown ones make parsing fail with 555. */
struct smtp_params {
    int has_size;
    uint64_t size;
    int body_8bit;                      /* BODY=8BITMIME */
    int has_auth;                       /* AUTH=... (RFC 4954 5; its value unused) */
};

enum smtp_path_err {
    SMTP_PATH_OK = 0,
    SMTP_PATH_SYNTAX,       /* 501 5.1.3 / 501 5.5.4 bad address syntax */
    SMTP_PATH_TOO_LONG,     /* 501 5.1.3 path too long */
    SMTP_PATH_PARAM,        /* 555 5.5.4 unsupported or bad parameter */
};

/* Parses the argument of MAIL ("FROM:<path> params") or RCPT ("TO:<path> params").
 * `keyword` is "FROM" or "TO" (case-insensitive match, optional space after the
 * colon tolerated).  Source routes (@a,@b:) are accepted and dropped.  "<>" is
 * the null path (MAIL only: is_rcpt=1 makes it a syntax error); RCPT accepts
 * "<postmaster>" (any case) with no domain.  The mailbox must have exactly one
 * unquoted '@'. */
enum smtp_path_err smtp_parse_path(const char *arg, size_t len, const char *keyword,
                                   int is_rcpt, struct smtp_mailbox *mb,
                                   struct smtp_params *params);

/* True when the local part would let mail escape to another domain through
 * old routing conventions: contains '%', '!' or '@' (the last only possible
 * when quoted). Such recipients are refused (550 5.7.1). */
int smtp_local_is_routing(const struct smtp_mailbox *mb);

/* Checks the argument of HELO/EHLO: a domain or address literal, no spaces
 * inside (trailing text ignored). 0 / -1. */
int smtp_parse_helo(const char *arg, size_t len);

/*
 * DATA decoder: a byte-stream state machine from the bytes after "354" to the
 * end marker.  Only CR LF "." CR LF ends the data (the CR LF before the dot
 * may be the one that ended "DATA\r\n", i.e. an empty message).  Dot-stuffing
 * is undone.  Line ends are kept as CR LF.  A bare CR or bare LF, or a NUL,
 * anywhere makes the message invalid (err set) but decoding continues, so the
 * real end marker is still found and no pipelined command inside the data is
 * ever taken as a command.  Once err is set nothing more is emitted.
 */
enum smtp_data_err {
    SMTP_DATA_OK = 0,
    SMTP_DATA_BARE_NL,      /* bare CR or LF: 550 5.5.2 */
    SMTP_DATA_NUL,          /* NUL byte: 550 5.6.0 */
    SMTP_DATA_TOO_BIG,      /* over max_size: 552 5.3.4 */
    SMTP_DATA_LINE_TOO_LONG,/* line over line_limit: 552 5.3.4 */
    SMTP_DATA_HEADER_TOO_BIG,/* header section over header_limit: 552 5.3.4 */
    SMTP_DATA_LOOP,         /* Received: count over max_received: 554 5.4.6 */
};

struct smtp_data {
    /* limits: set before the first feed (0 = no limit) */
    uint64_t max_size;          /* message bytes after un-stuffing */
    uint64_t line_limit;        /* bytes per line, CR LF excluded */
    uint64_t header_limit;      /* bytes of the header section */
    unsigned max_received;      /* Received: header fields */
    /* results */
    enum smtp_data_err err;
    uint64_t size;              /* bytes emitted (or that would have been) */
    unsigned received;          /* Received: fields seen in the header section */
    int eightbit;               /* a byte >= 0x80 was seen */
    /* private state */
    int st;
    int bol;                    /* at the beginning of a line */
    int in_header;
    uint64_t line_len;
    uint64_t header_len;
    char hdrname[10];
    unsigned hdrname_len;
};

typedef void smtp_emit_fn(void *arg, const char *p, size_t n);

/* Initialises d (keeping its limits). */
void smtp_data_init(struct smtp_data *d, uint64_t max_size, uint64_t line_limit,
                    uint64_t header_limit, unsigned max_received);
/* Feeds len bytes; calls emit with decoded bytes.  Returns the number of bytes
 * consumed; sets *done when the end marker has been consumed (bytes after it
 * are left for the caller: they are the next pipelined commands). */
size_t smtp_data_feed(struct smtp_data *d, const char *buf, size_t len,
                      smtp_emit_fn *emit, void *arg, int *done);

/* Examines one received line ending in LF (buf[len-1] == '\n').  Returns 0 when
 * it ends in CR LF and holds no other CR or LF; -1 for a bare CR/LF. */
int smtp_line_is_clean(const char *buf, size_t len);

/* ATRN's argument (RFC 2645): empty, or domain *("," domain); spaces
 * around a comma are allowed.  Each domain is lower-cased and checked
 * (labels of [a-z0-9-] separated by single dots, at most
 * SMTP_ATRN_DOMAIN_MAX bytes); a domain named twice counts once.  At most
 * SMTP_ATRN_MAX domains.  out->buf (malloc'd, freed by smtp_atrn_free) holds
 * them; out->n 0 means none given. */
#define SMTP_ATRN_MAX 32
#define SMTP_ATRN_DOMAIN_MAX 255
struct smtp_atrn {
    size_t n;
    const char *domain[SMTP_ATRN_MAX];
    char *buf;
};
enum smtp_atrn_result { SMTP_ATRN_OK = 0, SMTP_ATRN_SYNTAX = -1, SMTP_ATRN_TOO_MANY = -2 };
enum smtp_atrn_result smtp_parse_atrn(const char *arg, size_t len, struct smtp_atrn *out);
void smtp_atrn_free(struct smtp_atrn *a);

#endif

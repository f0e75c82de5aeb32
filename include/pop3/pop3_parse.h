/*
 * pop3_parse — pure POP3 parsing and encoding: bytes in, structs (or bytes)
 * out.  No I/O, no allocation, safe on any input (fuzzed).  Used by the
 * POP3 session, its unit tests and its fuzz targets.
 *
 * Bounds (RFC 2449 section 4 says commands are at most 255 octets with CR
 * LF and arguments at most 40; we accept more, so that long maildrop
 * addresses, long passwords and AUTH PLAIN initial responses fit):
 *   a command line       POP3_LINE_MAX octets, CR LF included
 *   an argument          POP3_ARG_MAX octets (a login name: a whole address)
 *   PASS's argument      the rest of the line (spaces are part of the
 *                        password, RFC 1939 section 7)
 *   AUTH's initial response: the rest of the line after the mechanism
 *   a number             POP3_NUM_DIGITS digits, at most 4294967295
 */
#ifndef KM_POP3_PARSE_H
#define KM_POP3_PARSE_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;

#define POP3_LINE_MAX   2048    /* octets of a command line, CR LF included */
#define POP3_ARG_MAX    255     /* octets of one argument (not PASS, not AUTH's response) */
#define POP3_NUM_DIGITS 10

enum pop3_verb {
    POP3_V_UNKNOWN = 0,
    POP3_V_USER, POP3_V_PASS, POP3_V_APOP, POP3_V_AUTH, POP3_V_STAT, POP3_V_LIST,
    POP3_V_RETR, POP3_V_DELE, POP3_V_NOOP, POP3_V_RSET, POP3_V_QUIT, POP3_V_TOP,
    POP3_V_UIDL, POP3_V_CAPA, POP3_V_STLS,
    POP3_V_COUNT
};

struct pop3_arg {
    const char *p;              /* points into the line */
    size_t len;
};

struct pop3_cmd {
    enum pop3_verb verb;
    const char *name;           /* the verb's upper-case name (static); NULL
                                 * for POP3_V_UNKNOWN */
    unsigned nargs;             /* arguments split at spaces (at most 2 kept;
                                 * 3 means "more than 2") */
    struct pop3_arg args[2];
    struct pop3_arg rest;       /* everything after the verb and one space:
                                 * PASS's password, as sent */
};

enum pop3_parse_result {
    POP3_PARSE_OK = 0,
    POP3_PARSE_EMPTY,           /* an empty line */
    POP3_PARSE_UNKNOWN,         /* no such verb */
    POP3_PARSE_BAD_BYTE,        /* NUL, CR or LF inside the line */
    POP3_PARSE_ARG_TOO_LONG,    /* an argument over POP3_ARG_MAX */
};

/* Splits a command line (CR LF or LF already removed) into verb and
 * arguments.  Verbs match case-insensitively and end at a space or the end
 * of the line.  Arguments are separated by one or more spaces; for PASS the
 * whole rest is the one argument, for AUTH the second argument is the rest
 * after the mechanism.  cmd is filled as far as it got, also on failure. */
enum pop3_parse_result pop3_parse_command(const char *line, size_t len, struct pop3_cmd *cmd);

/* A decimal number argument: 1-POP3_NUM_DIGITS digits, no sign, at most
 * UINT32_MAX.  0 with *out, or -1. */
int pop3_parse_number(const struct pop3_arg *a, uint32_t *out);

/* May this client log in with a cleartext password (USER/PASS, AUTH PLAIN)?
 * Yes under TLS, when the listener says `cleartext = true`, or when peer
 * (an address as text) is on loopback: 127.0.0.0/8, ::1, ::ffff:127.0.0.0/104
 * (Dovecot counts localhost as secure).  1 or 0. */
int pop3_plaintext_ok(int tls, int cleartext, const char *peer);

/*
 * The encoder of RETR and TOP: a message as stored (LF line ends, or CR LF
 * in files other programs put there) into the POP3 multi-line form: every
 * line ends in CR LF (a lone LF gets its CR; a CR LF stays one), a line
 * starting with "." gets another, and pop3_enc_end() ends the last line
 * (when the message does not) and adds the terminating ".".  For TOP, only
 * the header, the blank line and the first body_lines lines of the body are
 * sent.  Feed the message in chunks of any size; the result is the same.
 */
struct pop3_enc {
    long body_lines;            /* TOP: body lines still to send; < 0: all */
    uint64_t linelen;           /* bytes of the current line so far */
    int bol;                    /* nothing of the current line sent yet */
    int cr;                     /* the last byte sent was a CR */
    int in_body;                /* the blank line after the header is passed */
    int done;                   /* TOP: enough sent; the rest is not wanted */
};

/* body_lines < 0: the whole message (RETR). */
void pop3_enc_init(struct pop3_enc *e, long body_lines);
/* Appends the encoded form of in[0..len) to out.  Returns the bytes used:
 * len, or fewer once e->done (then nothing more is wanted). */
size_t pop3_enc_feed(struct pop3_enc *e, const char *in, size_t len, struct evbuffer *out);
/* Ends the last line if it has no line end, and appends ".\r\n". */
void pop3_enc_end(struct pop3_enc *e, struct evbuffer *out);

#endif

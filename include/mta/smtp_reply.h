/*
 * smtp_reply — the SMTP client's reply parser (RFC 5321 4.2, EHLO keywords):
 * pure, one complete line in, structs out; unit-tested and fuzzed.  What it
 * reads comes from a remote server and is untrusted: every line and the
 * number of lines per reply are bounded, and the text it keeps is printable
 * ASCII only.
 */
#ifndef KM_SMTP_REPLY_H
#define KM_SMTP_REPLY_H

#include <stddef.h>
#include <stdint.h>

#define SMTP_REPLY_LINE_MAX  2048   /* longer reply lines are a protocol error */
#define SMTP_REPLY_LINES_MAX 100    /* more continuation lines: protocol error */

struct smtp_reply {
    int code;                   /* 200..599 */
    int nlines;
    char text[SMTP_REPLY_LINE_MAX + 64];   /* lines joined with "; ", codes kept
                                            * on the first line only, truncated */
    char first_word[256];       /* first word after the code on the first line */
};

enum smtp_reply_status { SMTP_REPLY_MORE = 0, SMTP_REPLY_DONE = 1, SMTP_REPLY_BAD = -1 };

/* Incremental parser state. */
struct smtp_reply_parser {
    struct smtp_reply r;
    int st;
    int ext_pipelining, ext_size, ext_8bitmime, ext_starttls, ext_enhanced;
    uint64_t size_limit;        /* from SIZE n, 0 = none given */
};

void smtp_reply_init(struct smtp_reply_parser *p);
/* Feeds one complete line (without CRLF).  DONE when the reply is complete
 * (p->r valid), MORE when a continuation line was read, BAD for a malformed
 * line (no 3-digit code, code outside 200..599, mixed codes, separator not
 * ' ' or '-', too long, too many lines).  Parses EHLO keywords into ext_*
 * when `ehlo` is set (keyword lines after the first, code 250; the flags are
 * cleared when an EHLO reply starts).  A bare "250" is a valid last line.
 * After DONE the next line starts a new reply; after BAD every line is BAD
 * until smtp_reply_init().  r.text and r.first_word hold printable ASCII
 * only: any other byte is replaced by '?'.  A first word longer than 255
 * bytes is cut and ends in "...". */
enum smtp_reply_status smtp_reply_feed(struct smtp_reply_parser *p, const char *line,
                                       size_t len, int ehlo);

#endif

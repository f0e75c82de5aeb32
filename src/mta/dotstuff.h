/*
 * dotstuff — the SMTP client's DATA encoder (RFC 5321 4.5.2): a message's
 * bytes in, any number of pieces of any size; out, the same bytes with a
 * '.' doubled wherever it starts a line, then CR LF if the message did not
 * end with one, and the final ".\r\n".  Pure: no I/O, state in the struct.
 * Private to mta/ (the client, its unit test).
 */
#ifndef KM_MTA_DOTSTUFF_H
#define KM_MTA_DOTSTUFF_H

#include <stddef.h>

struct evbuffer;

struct dotstuff {
    int bol;                    /* the next byte starts a line */
    int any;                    /* a byte was seen */
    char last;                  /* the last byte seen */
};

void dotstuff_init(struct dotstuff *s);
/* Appends p[0..n) to out, stuffed. */
void dotstuff_add(struct dotstuff *s, struct evbuffer *out, const char *p, size_t n);
/* Appends what ends the data: CR LF when missing (only LF after a final
 * CR), then ".\r\n". */
void dotstuff_end(const struct dotstuff *s, struct evbuffer *out);

#endif

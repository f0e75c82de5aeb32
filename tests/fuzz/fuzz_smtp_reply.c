/*
 * fuzz_smtp_reply — libFuzzer target for the SMTP client's reply parser
 * (smtp_reply_init / smtp_reply_feed), the code that reads what a remote
 * server says (cf. OpenSMTPD CVE-2020-8794).  Input: first byte selects EHLO
 * mode (bit 0); the rest is a reply stream, split at LF (a CR before it
 * removed) the way the client splits it, each line fed as it comes.  Each
 * line is copied into a buffer of exactly its length so ASan catches any
 * read past it.  Checks the contract on every DONE: code in 200..599,
 * NUL-terminated printable text and first word, bounded line count, and
 * that BAD is sticky.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mta/smtp_reply.h"

#define CHECK(x) do { if (!(x)) abort(); } while (0)

static void check_printable(const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);
    CHECK(n < cap);
    for (size_t i = 0; i < n; i++)
        CHECK((unsigned char)s[i] >= 0x20 && (unsigned char)s[i] < 0x7f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct smtp_reply_parser p;
    int bad = 0;

    if (size == 0)
        return 0;
    int ehlo = data[0] & 1;
    const char *s = (const char *)data + 1;
    size_t left = size - 1;

    smtp_reply_init(&p);
    while (left > 0) {
        const char *nl = memchr(s, '\n', left);
        size_t n = nl ? (size_t)(nl - s) : left;
        size_t len = n > 0 && s[n - 1] == '\r' ? n - 1 : n;
        char *line = malloc(len ? len : 1);
        CHECK(line != NULL);
        memcpy(line, s, len);
        enum smtp_reply_status st = smtp_reply_feed(&p, line, len, ehlo);
        free(line);

        if (bad)
            CHECK(st == SMTP_REPLY_BAD);
        if (st == SMTP_REPLY_BAD)
            bad = 1;
        if (len > SMTP_REPLY_LINE_MAX || len < 3)
            CHECK(st == SMTP_REPLY_BAD);
        if (st == SMTP_REPLY_DONE) {
            CHECK(p.r.code >= 200 && p.r.code <= 599);
            CHECK(p.r.nlines >= 1 && p.r.nlines <= SMTP_REPLY_LINES_MAX);
            check_printable(p.r.text, sizeof p.r.text);
            check_printable(p.r.first_word, sizeof p.r.first_word);
            CHECK(p.r.text[0] == (char)('0' + p.r.code / 100));
            CHECK(p.ext_size || p.size_limit == 0);
        }
        if (!nl)
            break;
        s = nl + 1;
        left -= n + 1;
    }
    return 0;
}

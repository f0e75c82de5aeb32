/*
 * fuzz_smtp_command — libFuzzer target for smtp_parse_command (and, for the
 * verbs that take one, the argument parsers it feeds: MAIL/RCPT paths, HELO)
 * and smtp_line_is_clean.  Input: one arbitrary command line.  Checks that
 * nothing reads outside the line and that the results agree with the
 * contract (arg inside the line and trimmed, -1 exactly for NUL/CR/LF).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_parse.h"

#define CHECK(x) do { if (!(x)) abort(); } while (0)

static int has_byte(const char *p, size_t n, char c)
{
    return memchr(p, c, n) != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *line = (const char *)data;
    struct smtp_cmd cmd;
    int rc = smtp_parse_command(line, size, &cmd);
    int bad = has_byte(line, size, '\0') || has_byte(line, size, '\r') || has_byte(line, size, '\n');

    CHECK(rc == (bad ? -1 : 0));
    if (rc != 0 || cmd.arglen == 0) {
        CHECK(cmd.arglen == 0 && cmd.arg != NULL && cmd.arg[0] == '\0');
        if (rc != 0)
            CHECK(cmd.verb == SMTP_V_UNKNOWN);
    } else {
        CHECK(cmd.arg > line && cmd.arg + cmd.arglen <= line + size);
        CHECK(cmd.arg[0] != ' ' && cmd.arg[cmd.arglen - 1] != ' ');
        CHECK(cmd.arg[-1] == ' ');
    }
    if (rc == 0 && cmd.verb != SMTP_V_UNKNOWN) {
        struct smtp_mailbox mb;
        struct smtp_params pr;

        const char *sp = memchr(line, ' ', size);
        size_t vlen = sp ? (size_t)(sp - line) : size;

        CHECK(vlen == 4 || vlen == 8);
        if (cmd.verb == SMTP_V_MAIL)
            (void)smtp_parse_path(cmd.arg, cmd.arglen, "FROM", 0, &mb, &pr);
        else if (cmd.verb == SMTP_V_RCPT)
            (void)smtp_parse_path(cmd.arg, cmd.arglen, "TO", 1, &mb, &pr);
        else if (cmd.verb == SMTP_V_HELO || cmd.verb == SMTP_V_EHLO)
            (void)smtp_parse_helo(cmd.arg, cmd.arglen);
    }
    if (size > 0 && line[size - 1] == '\n') {
        int clean = size >= 2 && line[size - 2] == '\r' &&
                    !has_byte(line, size - 2, '\r') && !has_byte(line, size - 2, '\n');

        CHECK(smtp_line_is_clean(line, size) == (clean ? 0 : -1));
    }
    return 0;
}

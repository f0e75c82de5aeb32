/*
 * fuzz_smtp_path — libFuzzer target for smtp_parse_path, smtp_local_is_routing
 * and smtp_parse_helo.  Input: a flag byte (bit 0: RCPT, else MAIL) and the
 * argument.  Checks the contract on every result: bounded NUL-terminated
 * strings, a zeroed mailbox on error, null/postmaster only where allowed, a
 * lower-case domain, no RCPT parameters, and that an accepted mailbox written
 * back out as a path parses again to the same mailbox.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_parse.h"

#define CHECK(x) do { if (!(x)) abort(); } while (0)

static void check_zero(const struct smtp_mailbox *mb, const struct smtp_params *pr)
{
    static const struct smtp_mailbox zmb;
    static const struct smtp_params zpr;

    CHECK(memcmp(mb, &zmb, sizeof zmb) == 0);
    CHECK(memcmp(pr, &zpr, sizeof zpr) == 0);
}

/* Writes mb back as "KW:<...>"; returns its length. */
static size_t unparse(const struct smtp_mailbox *mb, const char *kw, char *out)
{
    size_t n = (size_t)sprintf(out, "%s:<", kw);
    const char *p;

    if (mb->quoted) {
        out[n++] = '"';
        for (p = mb->local; *p; p++) {
            if (*p == '"' || *p == '\\')
                out[n++] = '\\';
            out[n++] = *p;
        }
        out[n++] = '"';
    } else {
        n += (size_t)sprintf(out + n, "%s", mb->local);
    }
    if (!mb->postmaster)
        n += (size_t)sprintf(out + n, "@%s", mb->domain);
    out[n++] = '>';
    out[n] = '\0';
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct smtp_mailbox mb, mb2;
    struct smtp_params pr;
    const char *arg, *kw;
    enum smtp_path_err e;
    size_t len, i;
    int rcpt;

    if (size < 1)
        return 0;
    rcpt = data[0] & 1;
    kw = rcpt ? "TO" : "FROM";
    arg = (const char *)data + 1;
    len = size - 1;
    memset(&mb, 0x5a, sizeof mb);
    memset(&pr, 0x5a, sizeof pr);
    e = smtp_parse_path(arg, len, kw, rcpt, &mb, &pr);
    CHECK(e == SMTP_PATH_OK || e == SMTP_PATH_SYNTAX || e == SMTP_PATH_TOO_LONG ||
          e == SMTP_PATH_PARAM);
    (void)smtp_parse_helo(arg, len);
    if (e != SMTP_PATH_OK) {
        check_zero(&mb, &pr);
        return 0;
    }
    CHECK(memchr(mb.local, '\0', sizeof mb.local) != NULL);
    CHECK(memchr(mb.domain, '\0', sizeof mb.domain) != NULL);
    CHECK(len >= strlen(kw) + 3);
    (void)smtp_local_is_routing(&mb);
    if (mb.null) {
        CHECK(!rcpt && mb.local[0] == '\0' && mb.domain[0] == '\0');
        return 0;
    }
    if (rcpt)
        CHECK(!pr.has_size && !pr.body_8bit);
    if (mb.postmaster)
        CHECK(rcpt && mb.domain[0] == '\0' && strlen(mb.local) == 10);
    else
        CHECK(mb.domain[0] != '\0');
    for (i = 0; mb.local[i]; i++)
        CHECK((unsigned char)mb.local[i] >= 0x20 && (unsigned char)mb.local[i] < 0x7f);
    if (!mb.quoted)
        CHECK(strpbrk(mb.local, "@\" \\") == NULL);
    if (mb.literal)
        CHECK(mb.domain[0] == '[' && mb.domain[strlen(mb.domain) - 1] == ']');
    else
        for (i = 0; mb.domain[i]; i++)
            CHECK(!(mb.domain[i] >= 'A' && mb.domain[i] <= 'Z'));
    {
        char buf[2 * SMTP_LOCAL_MAX + SMTP_DOMAIN_MAX + 16];
        size_t n = unparse(&mb, kw, buf);

        CHECK(smtp_parse_path(buf, n, kw, rcpt, &mb2, NULL) == SMTP_PATH_OK);
        CHECK(strcmp(mb.local, mb2.local) == 0 && strcmp(mb.domain, mb2.domain) == 0);
        CHECK(mb.quoted == mb2.quoted && mb.literal == mb2.literal &&
              mb.postmaster == mb2.postmaster && !mb2.null);
    }
    return 0;
}

/*
 * fuzz_radius — radius_parse() on arbitrary datagrams.  Besides ASan/UBSan,
 * checks what the parser promises: an accepted packet is an
 * Accounting-Request whose Length equals the datagram, and its text
 * attributes are terminated within their bounds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "link/radius_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct radius_acct a;
    if (radius_parse(data, size, &a) != RADIUS_OK)
        return 0;
    if (a.code != RADIUS_CODE_ACCT_REQUEST || a.length != size || size < RADIUS_HDR_LEN)
        abort();
    const struct radius_text *t[] = { &a.user, &a.session_id, &a.nas_id };
    for (size_t i = 0; i < 3; i++)
        if (t[i]->len > RADIUS_TEXT_MAX || t[i]->s[t[i]->len] != 0)
            abort();
    return 0;
}

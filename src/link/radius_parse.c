/*
 * radius_parse — one RADIUS Accounting-Request datagram → struct
 * radius_acct (see radius_parse.h).  A pure function: no I/O, no secret,
 * no allocation.
 *
 * Trusts nothing in the datagram.  Every length is checked before any
 * attribute is read, in two passes as FreeRADIUS's fr_radius_ok() does:
 * the header and Length field first, then the attribute chain walked with
 * its lengths alone (each at least 2 and ending inside the packet, the
 * chain ending exactly at Length); only then are values read.  Guarantees:
 * nothing outside buf[0..len) is read, text is copied with its length and
 * a NUL after it, a duplicate of an attribute used here or one of the
 * wrong size drops the packet.
 */
#include <string.h>

#include "link/radius_parse.h"

/* What a type we read must look like. */
struct attr_rule {
    uint8_t type;
    uint8_t min, max;           /* value length */
};

static const struct attr_rule rules[] = {
    { RADIUS_A_USER_NAME, 1, RADIUS_TEXT_MAX },
    { RADIUS_A_NAS_IP, 4, 4 },
    { RADIUS_A_FRAMED_IP, 4, 4 },
    { RADIUS_A_NAS_ID, 1, RADIUS_TEXT_MAX },
    { RADIUS_A_STATUS, 4, 4 },
    { RADIUS_A_DELAY, 4, 4 },
    { RADIUS_A_SESSION_ID, 1, RADIUS_TEXT_MAX },
    { RADIUS_A_MSG_AUTH, 16, 16 },
    { RADIUS_A_NAS_IPV6, 16, 16 },
    { RADIUS_A_FRAMED_IPV6, 16, 16 },
};
#define NRULES (sizeof rules / sizeof rules[0])

static const struct attr_rule *rule_of(uint8_t type)
{
    for (size_t i = 0; i < NRULES; i++)
        if (rules[i].type == type)
            return &rules[i];
    return NULL;
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void text_set(struct radius_text *t, const unsigned char *v, size_t n)
{
    memcpy(t->s, v, n);
    t->s[n] = 0;
    t->len = n;
}

/* Stores one attribute already checked against its rule. */
static void attr_store(struct radius_acct *a, uint8_t type, const unsigned char *v, size_t n)
{
    switch (type) {
    case RADIUS_A_USER_NAME: text_set(&a->user, v, n); break;
    case RADIUS_A_NAS_ID: text_set(&a->nas_id, v, n); break;
    case RADIUS_A_SESSION_ID: text_set(&a->session_id, v, n); break;
    case RADIUS_A_NAS_IP: memcpy(a->nas_ip, v, 4); a->has_nas_ip = 1; break;
    case RADIUS_A_FRAMED_IP: memcpy(a->framed_ip, v, 4); a->has_framed_ip = 1; break;
    case RADIUS_A_NAS_IPV6: memcpy(a->nas_ipv6, v, 16); a->has_nas_ipv6 = 1; break;
    case RADIUS_A_FRAMED_IPV6: memcpy(a->framed_ipv6, v, 16); a->has_framed_ipv6 = 1; break;
    case RADIUS_A_STATUS: a->status = get32(v); break;
    case RADIUS_A_DELAY: a->delay = get32(v); a->has_delay = 1; break;
    case RADIUS_A_MSG_AUTH: a->has_msg_auth = 1; break;
    }
}

/* Pass 1: the chain of lengths alone. */
static enum radius_bad attrs_walk(const unsigned char *p, size_t n)
{
    size_t off = 0;
    while (off < n) {
        if (n - off < 2 || p[off + 1] < 2 || p[off + 1] > n - off)
            return RADIUS_BAD_ATTR;
        off += p[off + 1];
    }
    return RADIUS_OK;
}

enum radius_bad radius_parse(const unsigned char *buf, size_t len, struct radius_acct *out)
{
    memset(out, 0, sizeof *out);
    if (len < RADIUS_HDR_LEN)
        return RADIUS_BAD_SHORT;
    size_t plen = (size_t)buf[2] << 8 | buf[3];
    if (plen < RADIUS_HDR_LEN || plen > RADIUS_MAX_LEN || plen != len)
        return RADIUS_BAD_LENGTH;
    if (buf[0] != RADIUS_CODE_ACCT_REQUEST)
        return RADIUS_BAD_CODE;
    const unsigned char *attrs = buf + RADIUS_HDR_LEN;
    size_t alen = plen - RADIUS_HDR_LEN;
    enum radius_bad why = attrs_walk(attrs, alen);
    if (why != RADIUS_OK)
        return why;
    out->code = buf[0];
    out->id = buf[1];
    out->length = (uint16_t)plen;
    memcpy(out->authenticator, buf + 4, RADIUS_AUTH_LEN);
    unsigned char seen[256] = { 0 };
    for (size_t off = 0; off < alen; off += attrs[off + 1]) {
        uint8_t type = attrs[off];
        size_t vlen = (size_t)attrs[off + 1] - 2;
        const struct attr_rule *r = rule_of(type);
        if (!r)
            continue;
        if (vlen < r->min || vlen > r->max)
            return RADIUS_BAD_ATTR;
        if (seen[type]++)
            return RADIUS_BAD_DUP;
        attr_store(out, type, attrs + off + 2, vlen);
    }
    return seen[RADIUS_A_STATUS] ? RADIUS_OK : RADIUS_BAD_NO_STATUS;
}

const char *radius_bad_name(enum radius_bad why)
{
    static const char *const names[] = {
        [RADIUS_OK] = "ok", [RADIUS_BAD_SHORT] = "short", [RADIUS_BAD_CODE] = "code",
        [RADIUS_BAD_LENGTH] = "length", [RADIUS_BAD_ATTR] = "attribute",
        [RADIUS_BAD_DUP] = "duplicate", [RADIUS_BAD_NO_STATUS] = "no status type",
    };
    return (unsigned)why < sizeof names / sizeof names[0] ? names[why] : "?";
}

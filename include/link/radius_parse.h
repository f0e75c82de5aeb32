/*
 * radius_parse — RADIUS accounting packets (RFC 2866; attributes of RFC
 * 2865 and RFC 3162) as bytes → struct, with no I/O and no secret: the
 * listener (radius.h) checks the authenticator; this only reads.
 *
 * Every length check of FreeRADIUS's fr_radius_ok() is made before any
 * attribute is read: the datagram holds the 20-byte header, the Length
 * field is 20..4096 and equals the datagram's length (a longer or shorter
 * datagram is dropped), each attribute has a type and a length of 2 or
 * more that ends inside the packet, and the attributes fill the packet
 * exactly.  Attributes the listener uses must have their RFC size
 * (User-Name, NAS-Identifier, Acct-Session-Id 1..253 octets; addresses 4
 * or 16; integers 4; Message-Authenticator 16) and must not appear twice.
 * Anything else is dropped (-1 with a reason): the listener counts it.
 */
#ifndef KM_RADIUS_PARSE_H
#define KM_RADIUS_PARSE_H

#include <stddef.h>
#include <stdint.h>

#define RADIUS_HDR_LEN      20
#define RADIUS_MAX_LEN      4096
#define RADIUS_AUTH_LEN     16
#define RADIUS_TEXT_MAX     253

#define RADIUS_CODE_ACCT_REQUEST   4
#define RADIUS_CODE_ACCT_RESPONSE  5

/* Acct-Status-Type values (RFC 2866 5.1). */
enum radius_status {
    RADIUS_START = 1, RADIUS_STOP = 2, RADIUS_INTERIM = 3,
    RADIUS_ACCT_ON = 7, RADIUS_ACCT_OFF = 8,
};

/* Attribute types read (RFC 2865, 2866, 3162). */
enum radius_attr {
    RADIUS_A_USER_NAME = 1, RADIUS_A_NAS_IP = 4, RADIUS_A_FRAMED_IP = 8,
    RADIUS_A_NAS_ID = 32, RADIUS_A_STATUS = 40, RADIUS_A_DELAY = 41,
    RADIUS_A_SESSION_ID = 44, RADIUS_A_MSG_AUTH = 80, RADIUS_A_NAS_IPV6 = 95,
    RADIUS_A_FRAMED_IPV6 = 168,
};

/* Why a datagram was dropped. */
enum radius_bad {
    RADIUS_OK = 0,
    RADIUS_BAD_SHORT,           /* under 20 bytes */
    RADIUS_BAD_CODE,            /* not an Accounting-Request */
    RADIUS_BAD_LENGTH,          /* Length field out of range or != datagram */
    RADIUS_BAD_ATTR,            /* an attribute's length (0, 1, past the end,
                                 * or the wrong size for its type) */
    RADIUS_BAD_DUP,             /* an attribute used here appears twice */
    RADIUS_BAD_NO_STATUS,       /* no Acct-Status-Type */
};

/* A text attribute: bytes as sent (not NUL-terminated in the packet;
 * copied and terminated here; may contain any byte, NUL included, so use
 * len).  len 0: absent. */
struct radius_text {
    size_t len;
    char s[RADIUS_TEXT_MAX + 1];
};

struct radius_acct {
    uint8_t code, id;
    uint16_t length;
    uint8_t authenticator[RADIUS_AUTH_LEN];
    uint32_t status;            /* Acct-Status-Type (always present) */
    int has_delay;
    uint32_t delay;             /* Acct-Delay-Time, seconds */
    struct radius_text user, session_id, nas_id;
    int has_nas_ip, has_nas_ipv6, has_framed_ip, has_framed_ipv6;
    uint8_t nas_ip[4], nas_ipv6[16], framed_ip[4], framed_ipv6[16];
    int has_msg_auth;           /* Message-Authenticator present (not checked) */
};

/* Parses one datagram.  RADIUS_OK and *out filled, or the reason (out is
 * then partly written and must not be used).  Reads only buf[0..len). */
enum radius_bad radius_parse(const unsigned char *buf, size_t len,
                             struct radius_acct *out);
/* "short", "code", "length", "attribute", "duplicate", "no status type". */
const char *radius_bad_name(enum radius_bad why);

#endif

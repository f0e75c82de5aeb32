/*
 * local_prefix — the pure parts of local delivery (transport_maildir.c):
 * the header lines it adds before a message it puts into a maildrop, and
 * the loop check on the message's header section.  No I/O, no state.
 * Private to mta/ (the transport, its unit test).
 */
#ifndef KM_MTA_LOCAL_PREFIX_H
#define KM_MTA_LOCAL_PREFIX_H

#include <stddef.h>

/* Room for the longest prefix local_prefix_build() writes: three lines of
 * an address of at most 512 bytes each (more than ADDR_WIRE_MAX). */
#define LOCAL_PREFIX_MAX 2048

/* Writes into out (NUL-terminated)
 *     Return-Path: <SENDER>\r\n         ("<>" for the null sender "")
 *     Delivered-To: RCPT\r\n
 *     X-Original-To: RCPT\r\n           (only with original_to)
 * and returns its length, or -1 when an address is empty (rcpt), longer
 * than 512 bytes, or holds a byte below 0x20 or 0x7f (a CR or LF would
 * forge header lines: the SMTP parser never lets one through, this checks
 * again), or when out is too small. */
int local_prefix_build(const char *sender, const char *rcpt, int original_to,
                       char *out, size_t outlen);

/* Length of the header section of a message (stored form: CRLF lines; LF
 * alone is taken too): the bytes before the empty line that ends it, or
 * all of msg[0..len) when there is none. */
size_t local_header_len(const char *msg, size_t len);

/* 1 when the header section hdr[0..len) has a Delivered-To: field (name in
 * any case) whose value, unfolded and with white space and one pair of
 * angle brackets taken off, is rcpt in any case: the message has been
 * delivered to this address before, so delivering it again is a loop. */
int local_loop_found(const char *hdr, size_t len, const char *rcpt);

#endif

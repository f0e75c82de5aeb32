/*
 * fuzz_netlink — libFuzzer target for the rtnetlink parser (netlink_parse,
 * netlink_peer), what the netlink watcher runs on every datagram.  Input:
 * one datagram, copied into a buffer of exactly its size so ASan catches
 * any read past it, walked message by message as the watcher walks it.
 * Checks the contract: every step moves forward and stays within the
 * datagram; names and addresses are NUL-terminated within their fields;
 * a peer is one of the two addresses.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "link/netlink_parse.h"

#define CHECK(x) do { if (!(x)) abort(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    size_t off = 0;
    while (off < size) {
        struct netlink_msg m;
        size_t used = 0;
        char err[128];
        int rc = netlink_parse(buf + off, size - off, &used, &m, err, sizeof err);
        CHECK(used > 0 && used <= size - off);
        CHECK(strnlen(m.ifname, sizeof m.ifname) < sizeof m.ifname);
        CHECK(strnlen(m.local, sizeof m.local) < sizeof m.local);
        CHECK(strnlen(m.address, sizeof m.address) < sizeof m.address);
        if (rc == 0) {
            const char *peer = netlink_peer(&m);
            CHECK(!peer || peer == m.address);
        } else {
            CHECK(strnlen(err, sizeof err) > 0);
        }
        off += used;
    }
    free(buf);
    return 0;
}

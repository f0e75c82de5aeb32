#!/usr/bin/python3
"""RADIUS accounting for the benchmarks (issue 11): packets, and the storm sender.

As a module (bench.py): acct() builds an Accounting-Request (RFC 2866: the
Request Authenticator is MD5 over code, identifier, length, 16 zero bytes,
the attributes and the secret), response_ok() checks an
Accounting-Response (MD5 over code, identifier, length, the request's
authenticator, the attributes and the secret).

As a program, one storm sender (bench.py starts several at once):

    radsend.py PORT SECRET FIRST COUNT [--window W] [--rounds R] [--loss-ms MS]

For customers s%05d FIRST .. FIRST+COUNT-1 (User-Name = the customer's name,
Framed-IP-Address 10.0.K/256.K%256 (K its number), NAS-Identifier bench-nas,
Acct-Session-Id r<ROUND>-<K>) it sends a Start for each, then a Stop for
each, R rounds (R = 0: until SIGUSR1), from one connected UDP socket
on 127.0.0.1 to 127.0.0.1:PORT, as fast as the answers come: at most W
requests outstanding (identifiers are never reused while outstanding);
nothing is retransmitted.  A request without a valid answer within
--loss-ms (1000) is lost.  It prints "ready" once the socket is made, waits
for a line on stdin (so that all senders start together), and at the end
prints one JSON line: sent, answered, lost, bad (answers that did not verify
or came late), first (CLOCK_MONOTONIC ns of the first send), last (of the
last answer), and lat_us, every answer time in microseconds (send → the
verified answer read).
"""
import hashlib
import json
import select
import signal
import socket
import struct
import sys
import time

ACCT_REQUEST, ACCT_RESPONSE = 4, 5
START, STOP, INTERIM, ACCT_ON, ACCT_OFF = 1, 2, 3, 7, 8


def attr(t, value):
    return bytes([t, len(value) + 2]) + value


def acct(ident, status, user, session, secret, address=None, nas=b"bench-nas"):
    """An Accounting-Request; user, session, secret and nas are bytes."""
    body = attr(40, struct.pack(">I", status)) + attr(1, user) + attr(44, session) + \
        attr(32, nas)
    if address:
        body += attr(8, socket.inet_aton(address))
    hdr = struct.pack(">BBH", ACCT_REQUEST, ident, 20 + len(body))
    return hdr + hashlib.md5(hdr + bytes(16) + body + secret).digest() + body


def response_ok(reply, req, secret):
    """True when reply is the Accounting-Response to the request req."""
    if reply is None or len(reply) < 20 or reply[0] != ACCT_RESPONSE or reply[1] != req[1]:
        return False
    length = struct.unpack(">H", reply[2:4])[0]
    if length != len(reply):
        return False
    want = hashlib.md5(reply[:4] + req[4:20] + reply[20:] + secret).digest()
    return reply[4:20] == want


def storm_packets(first, count, rnd, secret):
    """Yields (status, builder): a Start for every customer, then a Stop for
    every one; builder(ident) makes the packet."""
    for status in (START, STOP):
        for k in range(first, first + count):
            user = b"s%05d" % k
            session = b"r%d-%d" % (rnd, k)
            addr = "10.0.%d.%d" % (k // 256, k % 256)
            yield (lambda ident, s=status, u=user, se=session, a=addr:
                   acct(ident, s, u, se, secret, a if s == START else None))


def storm(port, secret, first, count, window, rounds, loss_ms):
    stop = [False]
    signal.signal(signal.SIGUSR1, lambda *a: stop.__setitem__(0, True))
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.bind(("127.0.0.1", 0))
    s.connect(("127.0.0.1", port))
    s.setblocking(False)
    print("ready", flush=True)
    sys.stdin.readline()
    free = list(range(256))
    out = {}                    # ident -> (sent ns, request)
    lat = []
    sent = answered = lost = bad = 0
    loss_ns = loss_ms * 1000000
    t_first = t_last = None
    rnd = 0

    def packets():
        nonlocal rnd
        while (rounds == 0 and not stop[0]) or rnd < rounds:
            for p in storm_packets(first, count, rnd, secret):
                yield p
                if rounds == 0 and stop[0]:
                    return
            rnd += 1

    gen = packets()
    more = True
    while more or out:
        while more and len(out) < window:
            try:
                build = next(gen)
            except StopIteration:
                more = False
                break
            ident = free.pop()
            pkt = build(ident)
            t = time.monotonic_ns()
            if t_first is None:
                t_first = t
            try:
                s.send(pkt)
            except OSError:         # ENOBUFS, ECONNREFUSED: counted as lost
                lost += 1
                free.insert(0, ident)
                continue
            out[ident] = (t, pkt)
            sent += 1
        now = time.monotonic_ns()
        wait = min(t for t, _ in out.values()) + loss_ns - now if out else 0
        if out and wait > 0:
            select.select([s], [], [], wait / 1e9)
        while True:
            try:
                reply = s.recv(4096)
            except (BlockingIOError, InterruptedError):
                break
            except ConnectionRefusedError:
                continue
            t = time.monotonic_ns()
            ent = out.get(reply[1]) if len(reply) >= 2 else None
            if ent and response_ok(reply, ent[1], secret):
                del out[reply[1]]
                free.insert(0, reply[1])
                lat.append((t - ent[0]) // 1000)
                answered += 1
                t_last = t
            else:
                bad += 1
        now = time.monotonic_ns()
        for ident in [i for i, (t, _) in out.items() if now - t > loss_ns]:
            del out[ident]
            free.insert(0, ident)
            lost += 1
    print(json.dumps(dict(sent=sent, answered=answered, lost=lost, bad=bad, first=t_first,
                          last=t_last, rounds=rnd, lat_us=lat)), flush=True)


def main(argv):
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("secret")
    ap.add_argument("first", type=int)
    ap.add_argument("count", type=int)
    ap.add_argument("--window", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--loss-ms", type=int, default=1000)
    a = ap.parse_args(argv)
    if not 1 <= a.window <= 255:
        ap.error("--window: 1..255")
    storm(a.port, a.secret.encode(), a.first, a.count, a.window, a.rounds, a.loss_ms)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/python3
"""Writes Maildir messages fast, as kickmail's local delivery names them
(include/maildir/maildir.h): new/TIME.M<usec>P<pid>Q<n>R<rand>.HOST,S=SIZE,W=VSIZE
with LF line ends, S= the bytes on disk and W= the bytes with CRLF ends (the
POP3 size).  For the pop3 phase of bench.py: kickmail and Dovecot serve the
very same files (hard links of one generated tree).

    genmaildir.py DIR COUNT [SIZE]      (SIZE bytes on disk, default 4096)

No fsync: the files are benchmark input, written once before the timing.
"""
import os
import random
import sys
import time

LINE = 76          # characters per body line, newline excluded


def message(i, size, rnd):
    head = ("Return-Path: <from@bench.example>\n"
            "Delivered-To: user@pop.example\n"
            "From: <from@bench.example>\n"
            "To: <user@pop.example>\n"
            "Subject: bench message %d\n"
            "Message-ID: <%d.%d@bench.example>\n"
            "\n" % (i, i, rnd.getrandbits(32))).encode()
    body = bytearray(head)
    alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789 "
    line = bytes(rnd.choice(alphabet) for _ in range(LINE)) + b"\n"
    while len(body) + len(line) <= size:
        body += line
    rest = size - len(body)
    if rest > 0:
        body += b"x" * (rest - 1) + b"\n"
    return bytes(body)


def generate(d, count, size=4096, seed=12):
    """count messages into maildir d (created); returns their total bytes
    on disk and with CRLF ends."""
    for sub in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    rnd = random.Random("%s/%d" % (os.path.basename(d), seed))
    base = int(time.time()) - count
    disk = crlf = 0
    pid = os.getpid()
    for i in range(count):
        data = message(i, size, rnd)
        s, w = len(data), len(data) + data.count(b"\n")
        name = "%d.M%06dP%dQ%dR%016x.bench,S=%d,W=%d" % (
            base + i, i % 1000000, pid, i, rnd.getrandbits(64), s, w)
        with open(os.path.join(d, "new", name), "wb") as f:
            f.write(data)
        t = base + i
        os.utime(os.path.join(d, "new", name), (t, t))
        disk += s
        crlf += w
    return disk, crlf


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.stderr.write(__doc__)
        sys.exit(2)
    size = int(sys.argv[3]) if len(sys.argv) > 3 else 4096
    print(generate(sys.argv[1], int(sys.argv[2]), size))

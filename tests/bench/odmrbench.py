"""ODMR benchmark of issue 13, a phase of bench.py (`make bench`):

  11. odmr: ATRN → the first message complete at the customer's side
      (its final dot received), with 1 and 1,000 messages held for the
      customer, p50/p99 over BENCH_ODMR_SAMPLES [50] samples per cell.

The customer's side is a Python ODMR client in this process (not fetchmail:
fetchmail relays each message to its smtphost with its own SMTP session, a
poll costs a process start, and its timing cannot be read per message):
EHLO, AUTH CRAM-MD5 and ATRN on the odmr listener of a kickmaild of its own,
then, on the same socket, an SMTP server that answers the first message's
final dot with 451 and closes: the message stays queued (deferred), so every
sample sees the same number held.  A sample starts when ATRN is sent.
Postfix has no ODMR: absolute figures only.

Uses bench.py's helpers and its ROWS/NOTES (imported as the module `bench`).
"""
import base64
import hmac
import os
import socket
import time

import bench
from bench import log, note_cmd, pctl, row, NOTES

SAMPLES = int(os.environ.get("BENCH_ODMR_SAMPLES", "50"))
CUSTOMER, DOMAIN, SECRET = "odmr", "odmr.example", "odmr-secret"


class Client:
    """One ODMR session up to ATRN's reply, then the customer's SMTP server."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=30)
        # its replies are written one by one: without this, Nagle holds the
        # second behind the first's delayed ACK (40 ms)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.f = self.s.makefile("rb")

    def reply(self):
        lines = []
        while True:
            ln = self.f.readline()
            if not ln:
                raise RuntimeError("odmr: connection closed")
            lines.append(ln)
            if ln[3:4] != b"-":
                return int(ln[:3]), lines

    def cmd(self, line):
        self.s.sendall(line.encode() + b"\r\n")
        return self.reply()

    def login(self):
        self.reply()
        self.cmd("EHLO bench.example")
        code, lines = self.cmd("AUTH CRAM-MD5")
        chal = base64.b64decode(lines[0][4:].strip())
        digest = hmac.new(SECRET.encode(), chal, "md5").hexdigest()
        code, _ = self.cmd(base64.b64encode(("%s %s" % (CUSTOMER, digest)).encode()).decode())
        if code != 235:
            raise RuntimeError("odmr: AUTH failed: %d" % code)

    def first_message(self):
        """After 250: serves until the first message's final dot; seconds
        from now until then."""
        self.s.sendall(b"220 customer.bench.example ESMTP\r\n")
        while True:
            ln = self.f.readline()
            if not ln:
                raise RuntimeError("odmr: connection closed before a message")
            verb = ln[:4].upper()
            if verb == b"EHLO":
                self.s.sendall(b"250-customer.bench.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
            elif verb in (b"MAIL", b"RCPT"):
                self.s.sendall(b"250 ok\r\n")
            elif verb == b"DATA":
                self.s.sendall(b"354 go\r\n")
                while self.f.readline() not in (b".\r\n", b""):
                    pass
                return

    def close(self):
        try:
            self.s.sendall(b"451 4.3.0 bench: keep it\r\n")
        except OSError:
            pass
        self.s.close()


def sample(port):
    """ATRN → first message, in ms; None when ATRN was answered 451 (the
    previous session's end not seen by the queue yet)."""
    c = Client(port)
    try:
        c.login()
        t0 = time.monotonic()
        code, _ = c.cmd("ATRN %s" % DOMAIN)
        if code == 451:
            c.cmd("QUIT")
            return None
        if code != 250:
            raise RuntimeError("odmr: ATRN answered %d" % code)
        c.first_message()
        return (time.monotonic() - t0) * 1000.0
    finally:
        c.close()


def cell(km, port, held):
    out, t_end = [], time.monotonic() + 120
    while len(out) < SAMPLES and time.monotonic() < t_end:
        ms = sample(port)
        if ms is None:
            time.sleep(0.01)
            continue
        out.append(ms)
        time.sleep(0.02)        # the session's end (its deferrals) settles
    if km.held(CUSTOMER) != held:
        raise RuntimeError("odmr: %d held after the cell, expected %d" % (km.held(CUSTOMER), held))
    return out


def bench_odmr(procs, build, work):
    log("== 11. odmr: ATRN → first message at the customer's side, %d samples per cell"
        % SAMPLES)
    d = os.path.join(work, "odmr")
    os.makedirs(d, exist_ok=True)
    oport = bench.free_port()
    km = bench.Kickmail(build, d, procs, bench.free_port(), {})
    with open(km.conf, "a") as f:
        f.write('odmr { listen = {"127.0.0.1:%d"} }\n'
                'customer "%s" {\n  domains = {"%s"}\n  deliver = "pickup"\n'
                '  secret = \'%s\'\n}\n' % (oport, CUSTOMER, DOMAIN, SECRET))
    note_cmd("11. odmr client", "tests/bench/odmrbench.py: EHLO, AUTH CRAM-MD5, ATRN %s; "
             "then the customer's SMTP server on the same socket" % DOMAIN)
    km.start()
    res = {}
    try:
        have = 0
        for held in (1, 1000):
            bench.smtp_source(km.port, held - have, "user@%s" % DOMAIN, "11. odmr: fill")
            have = held
            t_end = time.monotonic() + 60
            while km.held(CUSTOMER) < held and time.monotonic() < t_end:
                time.sleep(0.05)
            lat = cell(km, oport, held)
            res[held] = lat
            log("   %5d held: ATRN → first message p50 %.2f ms, p99 %.2f ms (%d samples, "
                "slowest #%d)" % (held, pctl(lat, 50), pctl(lat, 99), len(lat),
                                  lat.index(max(lat)) + 1))
    finally:
        km.stop()
    for held, lat in res.items():
        row(11, "odmr: ATRN → first message at the customer's side, %s held, p50/p99 "
            "(Python ODMR client; Postfix has no ODMR)" % format(held, ","),
            "%.2f / %.2f ms" % (pctl(lat, 50), pctl(lat, 99)), None, "", "—", None, ratio="")
    NOTES.append("odmr (11): %d samples per cell; each sample a new session (EHLO, AUTH "
                 "CRAM-MD5, then ATRN timed); the first message answered 451 so the count "
                 "held stays" % SAMPLES)
    return res

#!/usr/bin/python3
"""POP3 load client for the pop3 phase of bench.py (issue 12), the same for
kickmail and Dovecot: raw sockets, one thread, non-blocking, commands
pipelined where RFC 2449 PIPELINING allows (both servers advertise it).

    pop3load.py PORT SCRIPT USER PASSWORD [--sessions N]

SCRIPT (each session; USER may hold %d, numbered 0..N-1 across sessions):
  stat-uidl  USER, PASS, STAT, UIDL, QUIT
  retr       USER, PASS, STAT, then RETR 1..n in one write, QUIT
  dele       USER, PASS, STAT, then DELE 1..n and QUIT in one write; the
             session ends at QUIT's reply (deletions are applied before it)
All N sessions connect at once.  Prints one JSON object: seconds (first
connect to the last session's end), sessions, messages (listed by STAT,
summed), retrieved (RETR replies), bytes (received), cpu (this client's own
user+system seconds), and per-session milestone times in ms (login, stat,
end; uidl for stat-uidl).  Every reply must be +OK: anything else, or a
connection closed early, exits 1 saying where.

Replies are parsed by searching the received bytes (bytes.find, in C) for the
ends of lines and for CRLF.CRLF, never line by line in Python, so that the
client costs little next to the servers it measures.
"""
import json
import resource
import selectors
import socket
import sys
import time


BUF, BUF_MAX = 16384, 262144    # receive buffer per session: first, largest


class Fail(Exception):
    pass


class Session:
    """One POP3 session driven by a script generator that yields
    (bytes to send, kinds of the replies to wait for: "S" single-line,
    "M" multi-line) and receives the list of their first lines."""

    def __init__(self, idx, port, script, user, password):
        self.idx = idx
        self.user = user % idx if "%" in user else user
        self.password = password
        self.sock = socket.socket()
        self.sock.setblocking(False)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.port = port
        self.buf = bytearray(BUF)   # received bytes (recv_into; grows, never shrinks)
        self.len = 0                # bytes in buf
        self.pos = 0                # parsed up to here
        self.scan = 0               # CRLF.CRLF searched up to here (current reply)
        self.out = b""
        self.want = []              # kinds still expected in this step
        self.got = []               # first lines of this step's replies
        self.first_done = False     # the current M reply's first line is parsed
        self.gen = getattr(self, "script_" + script.replace("-", "_"))()
        self.t = {}
        self.messages = 0
        self.retrieved = 0
        self.nbytes = 0
        self.done = False

    # ---- scripts

    def login(self):
        self.t["connect"] = time.monotonic()
        yield b"", ["S"]                                    # greeting
        yield b"USER " + self.user.encode() + b"\r\n", ["S"]
        yield b"PASS " + self.password.encode() + b"\r\n", ["S"]
        self.t["login"] = time.monotonic()
        r = yield b"STAT\r\n", ["S"]
        self.messages = int(r[0].split()[1])
        self.t["stat"] = time.monotonic()

    def script_stat_uidl(self):
        yield from self.login()
        r = yield b"UIDL\r\n", ["M"]
        self.t["uidl"] = time.monotonic()
        yield b"QUIT\r\n", ["S"]

    def script_retr(self):
        yield from self.login()
        n = self.messages
        if n:
            cmds = b"".join(b"RETR %d\r\n" % i for i in range(1, n + 1))
            yield cmds, ["M"] * n
            self.retrieved += n
        yield b"QUIT\r\n", ["S"]

    def script_dele(self):
        yield from self.login()
        n = self.messages
        cmds = b"".join(b"DELE %d\r\n" % i for i in range(1, n + 1)) + b"QUIT\r\n"
        yield cmds, ["S"] * (n + 1)

    # ---- engine

    def start(self, sel):
        self.sel = sel
        try:
            self.sock.connect(("127.0.0.1", self.port))
        except BlockingIOError:
            pass
        self._next(None)
        sel.register(self.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, self)

    def _next(self, replies):
        try:
            data, kinds = self.gen.send(replies) if replies is not None else next(self.gen)
        except StopIteration:
            self.t["end"] = time.monotonic()
            self.done = True
            return
        self.out += data
        self.want = list(kinds)
        self.got = []

    def _parse(self):
        """Consumes complete replies from the buffer; True when the step's
        replies are all in."""
        buf, n = self.buf, self.len
        while self.want:
            kind = self.want[0]
            if not self.first_done:
                nl = buf.find(b"\r\n", self.pos, n)
                if nl < 0:
                    return False
                line = bytes(buf[self.pos:nl])
                if not line.startswith(b"+OK"):
                    raise Fail("session %d (%s): %r" % (self.idx, self.user, line[:200]))
                self.got.append(line)
                if kind == "S":
                    self.pos = nl + 2
                    self.want.pop(0)
                    continue
                self.first_done = True
                self.pos = nl            # CRLF.CRLF may start at this CRLF
                self.scan = nl
            end = buf.find(b"\r\n.\r\n", self.scan, n)
            if end < 0:
                # the body read so far is not needed any more
                self.scan = self.pos = max(self.pos, n - 4)
                return False
            self.pos = end + 5
            self.first_done = False
            self.want.pop(0)
        return True

    def _room(self):
        """A view of buf's free space, the parsed bytes dropped first (the
        rest moved to the front).  Receiving into one buffer that is reused
        keeps the client cheap: appending every chunk to a bytearray that
        held all 2,000 pipelined RETR answers (8 MB) cost it more CPU than
        the server's work."""
        if self.pos:
            left = self.len - self.pos
            if left:
                self.buf[:left] = self.buf[self.pos:self.len]
            self.len, self.scan, self.pos = left, self.scan - self.pos, 0
        if len(self.buf) - self.len < 4096:         # a line longer than buf
            self.buf.extend(bytes(len(self.buf)))
        return memoryview(self.buf)[self.len:]

    def on_event(self, mask):
        if mask & selectors.EVENT_WRITE and self.out:
            try:
                k = self.sock.send(self.out)
                self.out = self.out[k:]
            except BlockingIOError:
                pass
        if mask & selectors.EVENT_READ:
            try:
                with self._room() as room:
                    free = len(room)
                    got = self.sock.recv_into(room)
            except BlockingIOError:
                got = None
            if got == free and len(self.buf) < BUF_MAX:
                self.buf.extend(bytes(len(self.buf)))   # filled: bigger reads
            if got is not None:
                if not got:
                    raise Fail("session %d (%s): connection closed, waiting for %s" % (
                        self.idx, self.user, self.want))
                self.nbytes += got
                self.len += got
                while self.want and self._parse():
                    self._next(self.got)
                    if self.done:
                        self.sel.unregister(self.sock)
                        self.sock.close()
                        return
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if self.out else 0)
        self.sel.modify(self.sock, events, self)


def run(port, script, user, password, sessions=1):
    sel = selectors.DefaultSelector()
    ss = [Session(i, port, script, user, password) for i in range(sessions)]
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.monotonic()
    for s in ss:
        s.start(sel)
    left = len(ss)
    while left:
        for key, mask in sel.select(timeout=120):
            key.data.on_event(mask)
        left = sum(1 for s in ss if not s.done)
        if not sel.get_map() and left:
            raise Fail("no session left to wait for")
    t1 = max(s.t["end"] for s in ss)
    ru1 = resource.getrusage(resource.RUSAGE_SELF)

    def ms(a, b):
        return [round(1000 * (s.t[b] - s.t[a]), 3) for s in ss if a in s.t and b in s.t]

    out = dict(seconds=t1 - t0, sessions=sessions,
               messages=sum(s.messages for s in ss),
               retrieved=sum(s.retrieved for s in ss),
               bytes=sum(s.nbytes for s in ss),
               cpu=(ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime),
               login=ms("connect", "login"), stat=ms("login", "stat"),
               end=ms("connect", "end"))
    if script == "stat-uidl":
        out["uidl"] = ms("stat", "uidl")
    return out


def main(argv):
    if len(argv) < 5:
        sys.stderr.write(__doc__)
        return 2
    port, script, user, password = int(argv[1]), argv[2], argv[3], argv[4]
    sessions = 1
    if "--sessions" in argv:
        sessions = int(argv[argv.index("--sessions") + 1])
    try:
        out = run(port, script, user, password, sessions)
    except (Fail, OSError) as e:
        sys.stderr.write("pop3load: %s\n" % e)
        return 1
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""A tiny DNS responder for the tests (standard library only): UDP on
127.0.0.1 at a free port, in a thread.

- a name in `records` (case-insensitive): its A records for type A; no
  answer (NOERROR, "no data") for any other type, AAAA included;
- a name starting with "servfail.": SERVFAIL;
- any other name: NXDOMAIN;
- silent=True: reads every query and answers none (a dead server).

`queries` lists (name, qtype) as received.  Only what c-ares sends is
handled: one question, no compression in it; anything else is ignored.
"""
import socket
import struct
import threading

QTYPE_A = 1
QTYPE_AAAA = 28


class DNSStub:
    def __init__(self, records=None, silent=False, host="127.0.0.1"):
        self.records = {k.lower().rstrip("."): list(v) for k, v in (records or {}).items()}
        self.silent = silent
        self.queries = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.settimeout(0.1)
        self.host = host
        self.port = self.sock.getsockname()[1]
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @property
    def address(self):
        """The `resolver` value that points kickmaild here."""
        return "%s:%d" % (self.host, self.port)

    def stop(self):
        self._stop = True
        self._thread.join(timeout=5)
        self.sock.close()

    def _run(self):
        while not self._stop:
            try:
                data, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            reply = self.answer(data)
            if reply is not None and not self.silent:
                self.sock.sendto(reply, peer)

    @staticmethod
    def _question(data):
        """(name, qtype, raw question bytes) of a query, or None."""
        if len(data) < 12 or struct.unpack("!H", data[4:6])[0] != 1:
            return None
        pos, labels = 12, []
        while pos < len(data):
            n = data[pos]
            if n == 0 or n & 0xC0:
                break
            labels.append(data[pos + 1:pos + 1 + n].decode("ascii", "replace"))
            pos += 1 + n
        if pos + 5 > len(data) or data[pos] != 0:
            return None
        qtype = struct.unpack("!H", data[pos + 1:pos + 3])[0]
        return ".".join(labels), qtype, data[12:pos + 5]

    def answer(self, data):
        q = self._question(data)
        if q is None:
            return None
        name, qtype, question = q
        self.queries.append((name, qtype))
        qid, flags = struct.unpack("!HH", data[:4])
        key = name.lower()
        answers = []
        if key in self.records:
            rcode = 0
            if qtype == QTYPE_A:
                answers = self.records[key]
        elif key.startswith("servfail."):
            rcode = 2
        else:
            rcode = 3
        # QR, the query's opcode and RD, AA, RA
        rflags = 0x8000 | (flags & 0x7900) | 0x0400 | 0x0080 | rcode
        out = struct.pack("!HHHHHH", qid, rflags, 1, len(answers), 0, 0) + question
        for a in answers:
            out += struct.pack("!HHHIH", 0xC00C, QTYPE_A, 1, 60, 4) + socket.inet_aton(a)
        return out

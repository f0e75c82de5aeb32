"""A tiny RADIUS accounting server for the tests (standard library only),
standing in for a kickmail node where FreeRADIUS is the client: UDP on
127.0.0.1 at a free port, in a thread.

Every datagram is checked as RFC 2866 says: code 4 (Accounting-Request),
a Length field equal to the datagram's length, attributes that fill it
exactly, and a Request Authenticator of MD5(code, id, length, 16 zero
bytes, attributes, secret).  A good request is kept in `requests` (a
dict per packet: attribute name -> list of raw values, plus "_id",
"_src") and answered with an Accounting-Response whose Response
Authenticator is MD5(5, id, length, request authenticator, secret); a
bad one is counted in `bad` and gets no answer.  answering=False: good
requests are read and counted in `ignored`, none answered (a node that
is down).
"""
import hashlib
import ipaddress
import socket
import struct
import threading

ATTRS = {1: "User-Name", 4: "NAS-IP-Address", 8: "Framed-IP-Address",
         32: "NAS-Identifier", 33: "Proxy-State", 40: "Acct-Status-Type",
         41: "Acct-Delay-Time", 44: "Acct-Session-Id", 55: "Event-Timestamp"}
STATUS = {1: "Start", 2: "Stop", 3: "Interim-Update", 7: "Accounting-On",
          8: "Accounting-Off"}


def parse(data):
    """(code, id, authenticator, [(type, value)]) or None when malformed."""
    if len(data) < 20:
        return None
    code, pid, length = struct.unpack("!BBH", data[:4])
    if length != len(data) or length > 4096:
        return None
    attrs, pos = [], 20
    while pos < length:
        if pos + 2 > length:
            return None
        t, alen = data[pos], data[pos + 1]
        if alen < 2 or pos + alen > length:
            return None
        attrs.append((t, data[pos + 2:pos + alen]))
        pos += alen
    return code, pid, data[4:20], attrs


def request_ok(data, secret):
    """The Request Authenticator of an Accounting-Request is right."""
    h = hashlib.md5(data[:4] + b"\0" * 16 + data[20:] + secret).digest()
    return h == data[4:20]


def response(pid, req_auth, secret):
    """An Accounting-Response (no attributes) to request pid/req_auth."""
    head = struct.pack("!BBH", 5, pid, 20)
    return head + hashlib.md5(head + req_auth + secret).digest()


class RadiusStub:
    def __init__(self, secret, host="127.0.0.1", port=0, answering=True):
        self.secret = secret.encode() if isinstance(secret, str) else secret
        self.answering = answering
        self.requests = []
        self.bad = 0
        self.ignored = 0
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.sock.settimeout(0.1)
        self.host = host
        self.port = self.sock.getsockname()[1]
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self):
        self._stop = True
        self._thread.join(timeout=5)
        self.sock.close()

    def _run(self):
        while not self._stop:
            try:
                data, peer = self.sock.recvfrom(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            p = parse(data)
            if p is None or p[0] != 4 or not request_ok(data, self.secret):
                with self.lock:
                    self.bad += 1
                continue
            if not self.answering:
                with self.lock:
                    self.ignored += 1
                continue
            code, pid, auth, attrs = p
            rec = {"_id": pid, "_src": peer}
            for t, v in attrs:
                rec.setdefault(ATTRS.get(t, str(t)), []).append(v)
            with self.lock:
                self.requests.append(rec)
            self.sock.sendto(response(pid, auth, self.secret), peer)

    def starts(self, user):
        """The Accounting-Start requests received for User-Name user, as
        dicts of decoded values (first of each attribute)."""
        return [r for r in self.decoded() if r.get("User-Name") == user
                and r.get("Acct-Status-Type") == "Start"]

    def decoded(self):
        """Every good request with its known attributes decoded."""
        with self.lock:
            reqs = list(self.requests)
        out = []
        for r in reqs:
            d = {}
            for k, vs in r.items():
                if k.startswith("_") or k.isdigit():
                    continue
                v = vs[0]
                if k in ("NAS-IP-Address", "Framed-IP-Address"):
                    d[k] = str(ipaddress.IPv4Address(v))
                elif k == "Acct-Status-Type":
                    d[k] = STATUS.get(struct.unpack("!I", v)[0], "other")
                elif k in ("Acct-Delay-Time", "Event-Timestamp"):
                    d[k] = struct.unpack("!I", v)[0]
                elif k == "Proxy-State":
                    d[k] = v
                else:
                    d[k] = v.decode(errors="replace")
            out.append(d)
        return out

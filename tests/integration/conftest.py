"""Shared fixtures for kickmail's integration tests.

Each test gets its own kickmaild on free loopback ports with a temporary
spool (tmp_path).  Nothing needs root or a network.  The binaries come from
$KICKMAIL_BUILD (the Makefile sets it; default ../../build).
"""
import json
import os
import signal
import smtplib
import socket
import subprocess
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
BUILD = os.environ.get("KICKMAIL_BUILD", os.path.join(ROOT, "build"))
KICKMAILD = os.path.join(BUILD, "kickmaild")
KICKQ = os.path.join(BUILD, "kickq")

DEFAULT_CUSTOMERS = """
customer "acme" {
  domains = {"acme.example", "acme.co.uk"}
}
customer "beta" {
  domains = {"beta.example"}
  recipients = {"bob", "sales"}
}
"""


def free_port(host="127.0.0.1"):
    s = socket.socket()
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(pred, timeout=10.0, interval=0.02, what="condition"):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError("timed out waiting for %s" % what)


class Daemon:
    """One kickmaild under test."""

    def __init__(self, tmp, customers=DEFAULT_CUSTOMERS, smtp_opts="", extra="",
                 tls=False, env=None):
        self.tmp = str(tmp)
        self.port = free_port()
        self.spool = os.path.join(self.tmp, "spool")
        self.control = os.path.join(self.tmp, "control.sock")
        self.conf = os.path.join(self.tmp, "kickmail.conf")
        self.log = os.path.join(self.tmp, "kickmaild.log")
        self.customers = customers
        self.smtp_opts = smtp_opts
        self.extra = extra
        self.tls = tls
        self.env = env
        self.proc = None
        if tls:
            subprocess.run([os.path.join(ROOT, "scripts", "gen-test-cert"),
                            os.path.join(self.tmp, "tls")], check=True)
        self.write_conf()

    def conf_text(self):
        tls = ""
        if self.tls:
            tls = 'tls {\n  certificate = "%s/tls/cert.pem"\n  key = "%s/tls/key.pem"\n}\n' % (
                self.tmp, self.tmp)
        return """hostname = "mx.test.example"
spool = "%s"
control = "%s"
postmaster = "noc@isp.example"
%s
smtp {
  listen = {"127.0.0.1:%d"}
  %s
}
%s
%s
""" % (self.spool, self.control, tls, self.port, self.smtp_opts, self.customers, self.extra)

    def write_conf(self, text=None):
        with open(self.conf, "w") as f:
            f.write(text if text is not None else self.conf_text())

    def start(self, env=None):
        e = dict(os.environ)
        e.update(self.env or {})
        e.update(env or {})
        self.logf = open(self.log, "a")
        self.log_offset = os.path.getsize(self.log)
        self.proc = subprocess.Popen([KICKMAILD, "-f", "-c", self.conf],
                                     stdout=self.logf, stderr=subprocess.STDOUT,
                                     env=e, stdin=subprocess.DEVNULL)
        wait_for(lambda: self.proc.poll() is not None or "ready" in self.log_since_start(),
                 what="kickmaild ready")
        assert self.proc.poll() is None, "kickmaild exited:\n" + self.log_text()
        return self

    def log_text(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def log_since_start(self):
        with open(self.log, errors="replace") as f:
            f.seek(self.log_offset)
            return f.read()

    def stop(self, check=True):
        died = None
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.proc = None
                raise AssertionError("kickmaild did not stop on SIGTERM")
            if check and rc != 0:
                died = "kickmaild exit %d" % rc
        elif self.proc:
            # it was not asked to stop: a crash (or a sanitizer abort)
            died = "kickmaild had exited by itself with %d" % self.proc.returncode
        self.proc = None
        if getattr(self, "logf", None):
            self.logf.close()
        if check and died:
            raise AssertionError("%s:\n%s" % (died, self.log_text()[-4000:]))

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = None
        self.logf.close()

    def hup(self):
        self.proc.send_signal(signal.SIGHUP)

    def kickq(self, *args, check=True):
        r = subprocess.run([KICKQ, "-s", self.control] + list(args),
                           capture_output=True, text=True, timeout=30)
        if check:
            assert r.returncode == 0, "kickq %s: rc=%d\n%s%s" % (
                " ".join(args), r.returncode, r.stdout, r.stderr)
        return r

    def kickq_json(self, *args):
        out = self.kickq(*(list(args) + ["--json"])).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def smtp(self, **kw):
        s = smtplib.SMTP("127.0.0.1", self.port, timeout=kw.pop("timeout", 10), **kw)
        return s

    def send(self, rcpts, body=None, sender="alice@sender.example", **kw):
        """Sends one message; returns the queue ID from the 250 reply."""
        if isinstance(rcpts, str):
            rcpts = [rcpts]
        if body is None:
            body = "From: %s\r\nTo: %s\r\nSubject: test\r\n\r\nhello\r\n" % (
                sender, rcpts[0])
        with self.smtp() as s:
            s.ehlo("client.example")
            s.mail(sender)
            for r in rcpts:
                code, msg = s.rcpt(r)
                assert code == 250, (r, code, msg)
            code, msg = s.data(body)
            assert code == 250, (code, msg)
            text = msg.decode()
            assert "queued as " in text, text
            return text.split("queued as ")[1].strip()


def raw_session(port, host="127.0.0.1", timeout=10):
    s = socket.create_connection((host, port), timeout=timeout)
    return s


def read_reply(sock, timeout=10):
    """Reads one complete (possibly multi-line) SMTP reply."""
    sock.settimeout(timeout)
    buf = b""
    while True:
        lines = buf.split(b"\r\n")
        for i, line in enumerate(lines[:-1]):
            if len(line) >= 4 and line[3:4] == b" ":
                return b"\r\n".join(lines[:i + 1]).decode(errors="replace")
        chunk = sock.recv(65536)
        if not chunk:
            return buf.decode(errors="replace")
        buf += chunk


@pytest.fixture
def daemon(tmp_path):
    d = Daemon(tmp_path)
    d.start()
    yield d
    d.stop()


@pytest.fixture
def make_daemon(tmp_path):
    """Factory for tests that need their own configuration."""
    made = []

    def make(**kw):
        # each daemon of a test gets its own directory (spool, socket, conf)
        where = tmp_path if not made else tmp_path / ("d%d" % len(made))
        os.makedirs(str(where), exist_ok=True)
        d = Daemon(where, **kw)
        made.append(d)
        return d

    yield make
    errors = []
    for d in made:
        try:
            d.stop()
        except AssertionError as e:
            errors.append(str(e))
    assert not errors, "\n".join(errors)


# ---- additions for the suite: a buffered raw SMTP client and small helpers ----

import re  # noqa: E402

QUEUE_ID_RE = re.compile(r"^[A-Z0-9]{10,20}$")
QUEUED_RE = re.compile(r"^250 2\.0\.0 Ok: queued as ([A-Z0-9]{10,20})$")


def code(reply):
    """The numeric code of a reply string (0 when there is none)."""
    try:
        return int(reply[:3])
    except (TypeError, ValueError):
        return 0


def last_line(reply):
    return reply.split("\r\n")[-1]


class Raw:
    """A raw SMTP client over a socket that keeps unread bytes between
    replies, so that pipelined replies can be read one by one."""

    def __init__(self, port, host="127.0.0.1", source=None, timeout=10):
        src = (source, 0) if source else None
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=src)
        self.buf = b""
        self.eof = False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def _fill(self, timeout):
        self.sock.settimeout(timeout)
        try:
            chunk = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            self.eof = True
        self.buf += chunk
        return chunk

    def reply(self, timeout=10):
        """One complete (possibly multi-line) reply as a str, or None when the
        connection closed first.  Raises socket.timeout when none arrives."""
        while True:
            start = 0
            while True:
                nl = self.buf.find(b"\r\n", start)
                if nl < 0:
                    break
                line = self.buf[start:nl]
                if len(line) < 4 or line[3:4] != b"-":
                    out = self.buf[:nl].decode("latin-1")
                    self.buf = self.buf[nl + 2:]
                    return out
                start = nl + 2
            if self.eof or not self._fill(timeout):
                return None

    def cmd(self, line, timeout=10):
        self.send(line + "\r\n")
        return self.reply(timeout)

    def greet(self, name="client.example"):
        r = self.reply()
        assert code(r) == 220, r
        r = self.cmd("EHLO " + name)
        assert code(r) == 250, r
        return r

    def replies_until_close(self, timeout=10):
        """Every reply until the server closes the connection."""
        out = []
        end = time.time() + timeout
        while True:
            left = end - time.time()
            if left <= 0:
                raise AssertionError("connection not closed; replies so far: %r" % out)
            try:
                r = self.reply(timeout=left)
            except socket.timeout:
                raise AssertionError("connection not closed; replies so far: %r" % out)
            if r is None:
                return out
            out.append(r)

    def is_closed(self, timeout=5):
        """True when the server closed the connection (nothing more to read)."""
        end = time.time() + timeout
        while not self.eof:
            left = end - time.time()
            if left <= 0:
                return False
            try:
                self._fill(left)
            except socket.timeout:
                return False
        return True


def queued_id(reply):
    """The queue ID of a '250 2.0.0 Ok: queued as ID' reply (asserts the form)."""
    m = QUEUED_RE.match(last_line(reply or ""))
    assert m, "not a queued reply: %r" % (reply,)
    return m.group(1)


def message(sender="alice@sender.example", to="bob@acme.example", subject="test",
            body="hello\r\n", headers=""):
    return ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\n%s\r\n%s"
            % (sender, to, subject, headers, body))


def queue(d, *args):
    """`kickq list [ARGS] --json` as a list of dicts."""
    return d.kickq_json("list", *args)


def queue_ids(d, *args):
    return [m["queue_id"] for m in queue(d, *args)]


def raw_transaction(d, rcpts, data, sender="alice@sender.example"):
    """EHLO, MAIL, RCPTs (each must be 250), DATA; sends data (already
    dot-stuffed, ending with CRLF) and the final dot; returns the reply."""
    with Raw(d.port) as c:
        c.greet()
        r = c.cmd("MAIL FROM:<%s>" % sender)
        assert code(r) == 250, r
        for rc in ([rcpts] if isinstance(rcpts, str) else rcpts):
            r = c.cmd("RCPT TO:<%s>" % rc)
            assert code(r) == 250, (rc, r)
        r = c.cmd("DATA")
        assert code(r) == 354, r
        c.send(data + ".\r\n")
        r = c.reply(timeout=30)
        c.send("QUIT\r\n")
        return r

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


from ports import free_port  # noqa: E402,F401  (tests import it from here)


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
        self.maildirs = os.path.join(self.tmp, "maildrops")     # maildir_root
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
maildir_root = "%s"
postmaster = "noc@isp.example"
%s
smtp {
  listen = {"127.0.0.1:%d"}
  %s
}
%s
%s
""" % (self.spool, self.control, self.maildirs, tls, self.port, self.smtp_opts,
       self.customers, self.extra)

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

    def wait_log(self, pattern, start=0, timeout=10.0):
        """Waits until the regex pattern matches the log from offset start;
        the match.  kickmaild's log thread writes a line a few ms after the
        event that logged it, so a test waits for the lines it looks for."""
        return wait_for(lambda: re.search(pattern, self.log_text()[start:]),
                        timeout=timeout, what="log line matching %r" % pattern)

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


# ---- the customer's MTA (aiosmtpd) and helpers for delivery, links, ETRN ----

import asyncio  # noqa: E402
import email  # noqa: E402
import email.policy  # noqa: E402
import ssl as _ssl  # noqa: E402
import threading  # noqa: E402

MTA_HOST = "127.0.0.23"


class Received:
    """One message the MTA accepted."""

    def __init__(self, mail_from, rcpt_tos, content, conn, tls, helo):
        self.mail_from = mail_from
        self.rcpt_tos = rcpt_tos
        self.content = content          # bytes, dot-unstuffed, CRLF line ends
        self.conn = conn                # number of the connection it came on (1, 2...)
        self.tls = tls                  # the session was under TLS (STARTTLS)
        self.helo = helo                # the name the client gave in EHLO/HELO

    def header(self, name):
        m = email.message_from_bytes(self.content, policy=email.policy.compat32)
        return m.get(name)

    def __repr__(self):
        return "<Received from=%r to=%r %d bytes conn %d>" % (
            self.mail_from, self.rcpt_tos, len(self.content), self.conn)


class _MTAHandler:
    def __init__(self, mta):
        self.mta = mta

    def _conn(self, server, session, name):
        with self.mta.lock:
            if server not in self.mta._conns:
                self.mta._conns[server] = len(self.mta._conns) + 1
            self.mta._helo[server] = name
            self.mta._open.add(server)
            self.mta.max_open = max(self.mta.max_open, len(self.mta._open))

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        self._conn(server, session, hostname)
        if self.mta.ehlo_reply:
            return [self.mta.ehlo_reply]
        session.host_name = hostname
        if self.mta.pipelining:
            responses.insert(len(responses) - 1, "250-PIPELINING")
        return responses

    async def handle_HELO(self, server, session, envelope, hostname):
        self._conn(server, session, hostname)
        session.host_name = hostname
        return "250 %s" % server.hostname

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        self.mta.commands.append(("MAIL", address))
        r = self.mta.mail_reply
        if r:
            return r
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        self.mta.commands.append(("RCPT", address))
        r = self.mta.rcpt_replies.get(address.lower(), self.mta.rcpt_reply)
        if r:
            return r
        if self.mta.max_rcpts and len(envelope.rcpt_tos) >= self.mta.max_rcpts:
            return "452 4.5.3 Too many recipients"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_QUIT(self, server, session, envelope):
        if self.mta.quit_delay:
            await asyncio.sleep(self.mta.quit_delay)
        return "221 Bye"

    async def handle_DATA(self, server, session, envelope):
        mta = self.mta
        if mta.data_delay:
            await asyncio.sleep(mta.data_delay)
        # the gate: hold DATA (before anything is recorded) while it is closed
        # and enough messages have come; a connection closed meanwhile
        # cancels this coroutine, so nothing is recorded for it
        if mta.gate_at is not None and len(mta.messages) >= mta.gate_at:
            with mta.lock:
                mta.blocked += 1
            try:
                while mta.gate_at is not None and not mta.gate_open.is_set():
                    await asyncio.sleep(0.005)
            finally:
                with mta.lock:
                    mta.blocked -= 1
        r = mta.data_reply
        if r:
            return r
        with mta.lock:
            mta.messages.append(Received(
                envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.original_content),
                mta._conns.get(server, 0),
                session.ssl is not None or getattr(server, "_tls_protocol", None) is not None,
                mta._helo.get(server)))
        return "250 2.0.0 OK: accepted"


def _mta_controller_class():
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import SMTP

    class _SMTP(SMTP):
        def connection_lost(self, error):
            with self.mta.lock:
                self.mta._open.discard(self)
            return super().connection_lost(error)

    class _Controller(Controller):
        def __init__(self, mta, *a, **kw):
            self.mta = mta
            super().__init__(*a, **kw)

        def factory(self):
            smtp = _SMTP(self.handler, **self.SMTP_kwargs)
            smtp.mta = self.mta
            return smtp

    return _Controller


def _MTAController(*a, **kw):
    return _mta_controller_class()(*a, **kw)


class MTA:
    """The customer's mail server: an aiosmtpd on MTA_HOST (127.0.0.23) at a
    free port.  Records every message (Received objects in .messages) and
    the connections that greeted (.connections).  Programmable while it
    runs: mail_reply / rcpt_reply / rcpt_replies[address] / data_reply (a
    full reply line such as "451 4.3.0 try later"; None accepts),
    data_delay (seconds before DATA is answered), quit_delay (seconds
    before QUIT is answered), gate_at (DATA waits
    before recording once that many messages have arrived, until
    gate_open is set), the greeting name (hostname) and STARTTLS (tls),
    pipelining, ehlo_reply, max_rcpts, size_limit, eightbitmime (see __init__;
    set the last two before start()).
    .max_open: the most greeted connections open at one time."""

    def __init__(self, tmp, hostname="mail.acme.example", tls=False, port=None,
                 host=MTA_HOST):
        self.tmp = str(tmp)
        self.host = host
        self.port = port or free_port(host)
        self.hostname = hostname
        self.tls = tls
        self.lock = threading.Lock()
        self.controller = None
        self.reset()
        self.mail_reply = None
        self.rcpt_reply = None
        self.rcpt_replies = {}
        self.data_reply = None
        self.data_delay = 0
        self.quit_delay = 0
        self.gate_at = None
        self.gate_open = threading.Event()
        self.blocked = 0
        self.pipelining = False     # advertise PIPELINING (aiosmtpd reads commands in order)
        self.ehlo_reply = None      # e.g. "502 5.5.1 no EHLO here": the client must fall back to HELO
        self.max_rcpts = 0          # more recipients in one transaction: 452 4.5.3
        self.size_limit = None      # the SIZE announced (aiosmtpd data_size_limit)
        self.eightbitmime = True    # False: no 8BITMIME (and a BODY= parameter is refused)

    def reset(self):
        """Forgets what was received (and the connection count)."""
        self.messages = []
        self.commands = []
        self._conns = {}
        self._helo = {}
        self._open = set()          # greeted connections not closed yet
        self.max_open = 0           # the most of them at one time

    @property
    def connections(self):
        """How many connections greeted with EHLO/HELO so far."""
        return len(self._conns)

    @property
    def open_connections(self):
        """How many greeted connections are open now."""
        return len(self._open)

    def accept_all(self):
        self.mail_reply = self.rcpt_reply = self.data_reply = None
        self.rcpt_replies = {}

    def start(self):
        kw = {}
        if self.tls:
            certdir = os.path.join(self.tmp, "mta-tls")
            if not os.path.exists(os.path.join(certdir, "cert.pem")):
                subprocess.run([os.path.join(ROOT, "scripts", "gen-test-cert"), certdir,
                                self.hostname], check=True)
            ctx = _ssl.SSLContext(_ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(os.path.join(certdir, "cert.pem"),
                                os.path.join(certdir, "key.pem"))
            if self.tls == "broken":
                # offers STARTTLS but only speaks TLS 1.1, which our client
                # refuses: every handshake fails
                import warnings
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    ctx.minimum_version = _ssl.TLSVersion.TLSv1
                    ctx.maximum_version = _ssl.TLSVersion.TLSv1_1
            if self.tls == "tls12":
                ctx.maximum_version = _ssl.TLSVersion.TLSv1_2     # no TLS 1.3
            kw["tls_context"] = ctx
        if self.size_limit is not None:
            kw["data_size_limit"] = self.size_limit
        if not self.eightbitmime:
            kw["decode_data"] = True    # aiosmtpd then offers no 8BITMIME
        self.controller = _MTAController(self, _MTAHandler(self), hostname=self.host,
                                         port=self.port, server_hostname=self.hostname,
                                         ready_timeout=10, **kw)
        self.controller.start()
        return self

    def stop(self):
        if self.controller:
            self.gate_open.set()
            try:
                self.controller.stop()
            finally:
                self.controller = None

    def received_for(self, address):
        return [m for m in self.messages if address in m.rcpt_tos]

    def wait_messages(self, n, timeout=10.0):
        """Waits until at least n messages have been received; returns them."""
        wait_for(lambda: len(self.messages) >= n, timeout=timeout,
                 what="%d messages at the MTA (have %d)" % (n, len(self.messages)))
        return self.messages


def stopped_at_end(create):
    """The body of a factory fixture: yields make(**kw), which calls
    create(n, **kw) (n: how many were made before) and keeps the result;
    each one's stop() runs at the end of the test."""
    made = []

    def make(**kw):
        made.append(create(len(made), **kw))
        return made[-1]

    yield make
    for x in made:
        x.stop()


@pytest.fixture
def make_mta(tmp_path):
    """Factory for customer MTAs; each is stopped at the end of the test.
    make_mta(start=False) gives one that is not listening yet."""
    def create(n, start=True, **kw):
        where = tmp_path / ("mta%d" % n)
        os.makedirs(str(where), exist_ok=True)
        m = MTA(where, **kw)
        if start:
            m.start()
        return m
    yield from stopped_at_end(create)


@pytest.fixture
def mta(make_mta):
    return make_mta()


def starttls_unverified(s, helo="client.example"):
    """STARTTLS on the smtplib session s, the certificate not checked (the
    daemon's is the self-signed test one), then EHLO again: its reply."""
    ctx = _ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = _ssl.CERT_NONE
    s.starttls(context=ctx)
    return s.ehlo(helo)


def _conf_value(key, v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if key == "secret":
        return "'%s'" % v
    if isinstance(v, (list, tuple)):
        return "{%s}" % ", ".join('"%s"' % x for x in v)
    if re.match(r"^\d+[smhd]?$", v):
        return v
    return '"%s"' % v


def customer_conf(name, domains, **opts):
    """A customer section: customer_conf("acme", ["acme.example"], port=25,
    deliver="127.0.0.23:2525", retry_min="1s", secret="x")."""
    if isinstance(domains, str):
        domains = [domains]
    lines = ['customer "%s" {' % name,
             "  domains = {%s}" % ", ".join('"%s"' % d for d in domains)]
    for k, v in opts.items():
        lines.append("  %s = %s" % (k, _conf_value(k, v)))
    lines.append("}")
    return "\n".join(lines) + "\n"


def status_of(d, qid):
    """{address: (status, reason)} of one queued message, or None when gone."""
    for m in queue(d):
        if m["queue_id"] == qid:
            return {r["address"]: (r["status"], r["reason"]) for r in m["recipients"]}
    return None


def links_of(d):
    return {l["customer"]: l for l in d.kickq_json("links")}


def send_many(d, n, rcpt="bob@acme.example", sender="alice@sender.example",
              threads=4, tag="seq"):
    """Sends n numbered messages (header X-Seq: i, Message-ID <i.tag@test>)
    over a few parallel connections; returns {seq: queue ID}."""
    ids = {}
    errors = []

    def worker(k):
        try:
            with smtplib.SMTP("127.0.0.1", d.port, timeout=60) as s:
                s.ehlo("client.example")
                for i in range(k, n, threads):
                    s.mail(sender)
                    c, msg = s.rcpt(rcpt)
                    assert c == 250, (c, msg)
                    body = ("From: <%s>\r\nTo: <%s>\r\nSubject: message %d\r\n"
                            "Message-ID: <%d.%s@test.example>\r\nX-Seq: %d\r\n\r\n"
                            "body of message %d\r\n" % (sender, rcpt, i, i, tag, i, i))
                    c, msg = s.data(body)
                    assert c == 250, (c, msg)
                    ids[i] = msg.decode().split("queued as ")[1].strip()
        except Exception as e:     # reported in the main thread
            errors.append(e)

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors
    assert len(ids) == n
    return ids


def seq_of(received):
    """The X-Seq counter of a received message (int)."""
    m = re.search(rb"\r\nX-Seq: (\d+)\r\n", received.content)
    assert m, received.content[:500]
    return int(m.group(1))


def dsn_parts(content):
    """Parses a DSN (bytes): returns (message, {content-type: part})."""
    msg = email.message_from_bytes(content, policy=email.policy.compat32)
    parts = {}
    if msg.is_multipart():
        for p in msg.get_payload():
            parts.setdefault(p.get_content_type(), p)
    return msg, parts


def dsn_fields(part):
    """The fields of a message/delivery-status part as a list of dicts: the
    per-message block first, then one per recipient (names lower-cased)."""
    payload = part.get_payload()
    if isinstance(payload, list):       # the email package parses it into blocks
        return [{k.lower(): v for k, v in b.items()} for b in payload]
    blocks, cur = [], {}
    for line in payload.replace("\r\n", "\n").split("\n"):
        if not line.strip():
            if cur:
                blocks.append(cur)
            cur = {}
            continue
        if line[0] in " \t" and cur:
            k = list(cur)[-1]
            cur[k] += " " + line.strip()
            continue
        k, _, v = line.partition(":")
        cur[k.strip().lower()] = v.strip()
    if cur:
        blocks.append(cur)
    return blocks


def build_shim(tmp_path, name, source):
    """Compiles source (C) into tmp_path/NAME.so, a library for LD_PRELOAD
    that wraps a libc call for a test; skips the test without a compiler."""
    import shutil
    cc = shutil.which("cc")
    if not cc:
        pytest.skip("no C compiler for the %s wrapper" % name)
    src = tmp_path / (name + ".c")
    lib = tmp_path / (name + ".so")
    src.write_text(source)
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(lib), str(src), "-ldl"], check=True)
    return str(lib)


def shim_env(lib, **kw):
    """The environment that preloads lib into kickmaild (plus kw)."""
    e = {"LD_PRELOAD": lib,
         # an ASan build wants its runtime first; the wrapper is harmless
         "ASAN_OPTIONS": ":".join(filter(None, [os.environ.get("ASAN_OPTIONS"),
                                                "verify_asan_link_order=0"]))}
    e.update(kw)
    return e

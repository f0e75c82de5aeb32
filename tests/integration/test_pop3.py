"""The POP3 server (RFC 1939, 2449 CAPA, 2595 STLS, 5034 AUTH PLAIN, 3206
response codes) with Python's poplib and raw sockets, over plain loopback,
STLS and pop3s; and the real client mpop in delete and keep mode.

Maildrop contents are made by writing Maildir files directly (the names
carry ,S= and ,W= as kickmail's local delivery writes them)."""
import base64
import hashlib
import os
import poplib
import re
import shutil
import socket
import ssl
import struct
import subprocess
import threading
import time
import warnings

import pytest

from conftest import DEFAULT_CUSTOMERS, free_port, wait_for

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt

FAILED = b"-ERR [AUTH] Authentication failed."


def pw_hash(pw):
    return crypt.crypt(pw, crypt.mksalt(crypt.METHOD_SHA512))


_seq = [0]


def put_msg(root, drop, body, when=None, sub="new"):
    """Writes one message (bytes with LF line ends) into drop's maildir as
    local delivery would; returns its path."""
    if "@" in drop:
        local, domain = drop.split("@")
        d = os.path.join(str(root), domain, local)
    else:
        d = os.path.join(str(root), drop)
    for s in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(d, s), exist_ok=True)
    _seq[0] += 1
    when = int(when if when is not None else time.time()) - 1000 + _seq[0]
    vsize = len(body) + body.count(b"\n") - body.count(b"\r\n")
    name = "%d.M%dP%dQ%d.test,S=%d,W=%d" % (when, _seq[0], os.getpid(), _seq[0],
                                           len(body), vsize)
    path = os.path.join(d, sub, name + (":2,S" if sub == "cur" else ""))
    with open(path, "wb") as f:
        f.write(body)
    return path


def msg_files(root, drop):
    local, domain = drop.split("@") if "@" in drop else (drop, None)
    d = os.path.join(str(root), domain, local) if domain else os.path.join(str(root), drop)
    out = []
    for s in ("new", "cur"):
        p = os.path.join(d, s)
        if os.path.isdir(p):
            out += sorted(os.path.join(s, f) for f in os.listdir(p))
    return out


def crlf(body):
    return body.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def body(n, extra=b""):
    return (b"From: sender@example.org\nTo: alice@isp.example\nSubject: message %d\n\n"
            b"line one of %d\n.starts with a dot\n%s" % (n, n, extra))


class Pop3Daemon:
    """A kickmaild with pop3 (and pop3s) listeners and a few maildrops."""

    def __init__(self, make_daemon, tmp_path, pop3_opts="", tls=False, pop3s=False,
                 pop3s_opts="", drops=None):
        self.root = tmp_path / "maildrops"
        self.port = free_port()
        self.sport = free_port() if pop3s else None
        self.pw = {"alice@isp.example": "alice-pw", "kim@isp.example": "kim-pw"}
        drops = drops if drops is not None else (
            'maildrop "alice@isp.example" { password = \'%s\' }\n'
            'maildrop "kim@isp.example" { password = \'%s\' mode = "keep" keep_days = 2 }\n'
            % (pw_hash("alice-pw"), pw_hash("kim-pw")))
        extra = 'maildir_root = "%s"\npop3 {\n  listen = {"127.0.0.1:%d"}\n%s\n}\n' % (
            self.root, self.port, pop3_opts)
        if pop3s:
            extra += 'pop3s {\n  listen = {"127.0.0.1:%d"}\n%s\n}\n' % (self.sport, pop3s_opts)
        customers = DEFAULT_CUSTOMERS + (
            'customer "acme2" {\n  domains = {"acme2.example"}\n  deliver = "maildrop"\n'
            "  secret = 's3cret'\n}\n")
        self.d = make_daemon(customers=customers, extra=extra + drops, tls=tls or pop3s)

    def start(self):
        self.d.start()
        return self

    def pop(self, timeout=10):
        return poplib.POP3("127.0.0.1", self.port, timeout=timeout)

    def login(self, user="alice@isp.example", pw=None):
        p = self.pop()
        p.user(user)
        p.pass_(pw or self.pw[user])
        return p

    def put(self, drop, body_, **kw):
        return put_msg(self.root, drop, body_, **kw)

    def files(self, drop):
        return msg_files(self.root, drop)


@pytest.fixture
def pd(make_daemon, tmp_path):
    return Pop3Daemon(make_daemon, tmp_path).start()


def tls_ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Raw3:
    """A raw POP3 client that keeps unread bytes: pipelined replies."""

    def __init__(self, port, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def close(self):
        self.sock.close()

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def line(self, timeout=10):
        self.sock.settimeout(timeout)
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                out, self.buf = self.buf, b""
                return out or None
            self.buf += chunk
        out, _, self.buf = self.buf.partition(b"\r\n")
        return out

    def multi(self):
        lines = []
        while True:
            ln = self.line()
            if ln == b".":
                return lines
            lines.append(ln[1:] if ln.startswith(b"..") else ln)

    def cmd(self, c):
        self.send(c + "\r\n")
        return self.line()

    def closed(self, timeout=5):
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True


# ---- the basic commands, delete mode ----


def test_retrieve_and_delete(pd):
    bodies = [body(i) for i in range(1, 4)]
    paths = [pd.put("alice@isp.example", b) for b in bodies]
    p = pd.login()
    sizes = [len(crlf(b)) for b in bodies]
    assert p.stat() == (3, sum(sizes))
    resp, lines, _ = p.list()
    assert resp.startswith(b"+OK 3 messages")
    assert lines == [b"%d %d" % (i + 1, s) for i, s in enumerate(sizes)]
    assert p.list(2).split() == [b"+OK", b"2", b"%d" % sizes[1]]
    resp, lines, octets = p.retr(1)
    assert resp == b"+OK %d octets" % sizes[0]
    assert b"\r\n".join(lines) + b"\r\n" == crlf(bodies[0])   # poplib un-stuffs the dot
    resp, lines, _ = p.top(2, 0)
    assert lines == crlf(bodies[1]).split(b"\r\n\r\n")[0].split(b"\r\n") + [b""]
    resp, lines, _ = p.top(2, 1)
    assert lines[-1] == b"line one of 2"
    assert p.dele(1).startswith(b"+OK")
    assert p.stat() == (2, sum(sizes[1:]))
    assert [ln.split()[0] for ln in p.list()[1]] == [b"2", b"3"]
    with pytest.raises(poplib.error_proto, match="deleted"):
        p.retr(1)
    with pytest.raises(poplib.error_proto, match="deleted"):
        p.dele(1)
    assert p.noop().startswith(b"+OK")
    assert os.path.exists(paths[0])             # nothing removed before QUIT
    assert p.quit().startswith(b"+OK")
    assert not os.path.exists(paths[0])
    assert os.path.exists(paths[1]) and os.path.exists(paths[2])
    pd.d.wait_log(r"pop3: login user=<alice@isp\.example> client=127\.0\.0\.1 tls=no")
    pd.d.wait_log(r"pop3: logout user=<alice@isp\.example> client=127\.0\.0\.1 "
                  r"retrieved=1 deleted=1 bytes=%d" % sizes[0])
    st = dict(ln.rsplit(" ", 1) for ln in pd.d.kickq("stats").stdout.splitlines())
    assert st["pop3.logins.ok"] == "1"
    assert st["pop3.retrieved"] == "1" and st["pop3.deleted"] == "1"
    assert st["pop3.bytes_retrieved"] == str(sizes[0])
    assert int(st["sessions.pop3"]) >= 1
    prom = pd.d.kickq("stats", "--prometheus").stdout
    assert 'kickmail_pop3_logins_total{result="ok"} 1\n' in prom
    assert 'kickmail_sessions_total{protocol="pop3"}' in prom


def test_rset_and_bad_numbers(pd):
    pd.put("alice@isp.example", body(1))
    pd.put("alice@isp.example", body(2))
    p = pd.login()
    p.dele(1)
    p.dele(2)
    assert p.stat() == (0, 0)
    assert p.rset().startswith(b"+OK")
    assert p.stat()[0] == 2
    for bad in ("0", "3", "x", "-1", "99999999999"):
        with pytest.raises(poplib.error_proto, match="no message"):
            p.retr(bad)
    with pytest.raises(poplib.error_proto, match="Invalid arguments"):
        p._shortcmd("RETR")
    with pytest.raises(poplib.error_proto, match="Invalid number of lines"):
        p._shortcmd("TOP 1 x")
    uidl = p.uidl()[1]
    assert len(uidl) == 2 and all(re.match(rb"^\d [0-9a-f]{32}$", u) for u in uidl)
    assert p.uidl(2).split()[2] == uidl[1].split()[1]
    p.quit()
    assert len(pd.files("alice@isp.example")) == 2


def test_drop_after_dele_deletes_nothing(pd):
    paths = [pd.put("alice@isp.example", body(i)) for i in (1, 2)]
    p = pd.login()
    p.dele(1)
    p.dele(2)
    p.close()                           # no QUIT
    pd.d.wait_log(r"pop3: logout user=<alice@isp\.example> .*deleted=0")
    assert all(os.path.exists(x) for x in paths)
    p = pd.login()                      # the lock went with the session
    assert p.stat()[0] == 2
    p.quit()


def test_two_sessions_in_use(pd):
    pd.put("alice@isp.example", body(1))
    p1 = pd.login()
    p2 = pd.pop()
    p2.user("alice@isp.example")
    with pytest.raises(poplib.error_proto, match=r"\[IN-USE\]"):
        p2.pass_("alice-pw")
    p1.quit()
    pd.d.wait_log(r"pop3: logout user=<alice@isp\.example>")
    p2.user("alice@isp.example")        # the same connection may try again
    assert p2.pass_("alice-pw").startswith(b"+OK")
    p2.quit()


def test_failed_logins_same_reply_and_delay(pd):
    for user, pw in (("alice@isp.example", "wrong"), ("nobody@isp.example", "x"),
                     ("ALICE@ISP.EXAMPLE", "alice-pw2")):
        p = pd.pop()
        p.user(user)
        t0 = time.time()
        with pytest.raises(poplib.error_proto) as e:
            p.pass_(pw)
        assert e.value.args[0] == FAILED
        assert time.time() - t0 >= 0.9      # auth_guard's first delay is 1 s
        p.quit()
    # the login name is case-insensitive
    p = pd.login("alice@isp.example")
    p.quit()
    p = pd.pop()
    p.user("Alice@ISP.example")
    assert p.pass_("alice-pw").startswith(b"+OK")
    p.quit()
    log = pd.d.log_text()
    assert "login failed user=<nobody@isp.example> client=127.0.0.1" in log
    assert "wrong" not in log and "alice-pw" not in log
    st = dict(ln.rsplit(" ", 1) for ln in pd.d.kickq("stats").stdout.splitlines())
    assert st["pop3.logins.failed"] == "3"


def test_failed_login_delay_grows(pd):
    p = pd.pop()
    times = []
    for _ in range(3):
        p.user("alice@isp.example")
        t0 = time.time()
        with pytest.raises(poplib.error_proto):
            p.pass_("wrong")
        times.append(time.time() - t0)
    assert times[1] >= 1.9 and times[2] >= 3.9, times
    p.quit()


def test_uidl_stable_across_restart(pd):
    for i in range(3):
        pd.put("kim@isp.example", body(i))
    p = pd.login("kim@isp.example")
    before = p.uidl()[1]
    p.retr(1)                            # keep mode: moved to cur/ at QUIT
    p.quit()
    assert any(f.startswith("cur/") for f in pd.files("kim@isp.example"))
    pd.d.stop()
    pd.d.start()
    p = pd.login("kim@isp.example")
    assert p.uidl()[1] == before
    p.quit()


def test_keep_mode_and_expiry(pd):
    paths = [pd.put("kim@isp.example", body(i)) for i in (1, 2, 3)]
    p = pd.login("kim@isp.example")
    caps = p.capa()
    assert caps["EXPIRE"] == ["2"]
    p.retr(1)
    p.retr(2)
    p.dele(3)                            # DELE still deletes in keep mode
    p.quit()
    files = pd.files("kim@isp.example")
    assert len(files) == 2 and all(f.startswith("cur/") and f.endswith(":2,S") for f in files)
    kdir = os.path.join(str(pd.root), "isp.example", "kim")
    rec = open(os.path.join(kdir, "kickmail-retrieved")).read().split("\n")
    entries = dict(ln.split() for ln in rec if ln.strip())
    assert len(entries) == 2
    # message 1 was retrieved 3 days ago: it expires at the next QUIT
    uid1 = hashlib.md5(os.path.basename(paths[0]).encode()).hexdigest()
    assert uid1 in entries
    entries[uid1] = str(int(time.time()) - 3 * 86400)
    with open(os.path.join(kdir, "kickmail-retrieved"), "w") as f:
        f.write("".join("%s %s\n" % kv for kv in entries.items()))
    p = pd.login("kim@isp.example")
    assert p.stat()[0] == 2
    p.quit()
    files = pd.files("kim@isp.example")
    assert len(files) == 1 and os.path.basename(paths[1]) in files[0]
    pd.d.wait_log(r"pop3: kim@isp\.example: 1 messages expired")



def test_top_of_the_whole_message_is_a_retrieval(pd):
    # fetchmail fetches with TOP n 99999999: a TOP that reaches past the end
    # sent the whole message, so keep mode records it (and the counters and
    # the logout line count it); a TOP of fewer lines does not
    pd.put("kim@isp.example", body(1))
    pd.put("kim@isp.example", body(2))
    p = pd.login("kim@isp.example")
    p.top(1, 99999999)
    p.top(2, 0)
    p.quit()
    files = pd.files("kim@isp.example")
    assert sorted(f[:4] for f in files) == ["cur/", "new/"], files
    rec = open(os.path.join(str(pd.root), "isp.example", "kim", "kickmail-retrieved")).read()
    assert len(rec.split()) == 2, rec
    pd.d.wait_log(r"pop3: logout user=<?kim@isp\.example>? .*retrieved=1 ")

# ---- CAPA, STLS, pop3s, the cleartext rule ----


def test_capa_before_and_after_login(make_daemon, tmp_path):
    pd = Pop3Daemon(make_daemon, tmp_path, tls=True).start()
    p = pd.pop()
    caps = p.capa()
    for k in ("TOP", "UIDL", "USER", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "STLS"):
        assert k in caps, caps
    assert caps["SASL"] == ["PLAIN"]
    assert caps["EXPIRE"] == ["2", "USER"]      # kim keeps 2 days, alice deletes
    assert caps["LOGIN-DELAY"] == ["0"]
    assert caps["IMPLEMENTATION"] == ["kickmail"]
    p.user("alice@isp.example")
    p.pass_("alice-pw")
    caps = p.capa()
    assert caps["EXPIRE"] == ["NEVER"]
    assert "STLS" not in caps and "USER" not in caps
    p.quit()


def test_stls(make_daemon, tmp_path):
    pd = Pop3Daemon(make_daemon, tmp_path, tls=True).start()
    pd.put("alice@isp.example", body(1))
    p = pd.pop()
    p.stls(context=tls_ctx())
    assert p.sock.version() is not None
    assert "STLS" not in p.capa()
    with pytest.raises(poplib.error_proto, match="already active"):
        p._shortcmd("STLS")
    p.user("alice@isp.example")
    p.pass_("alice-pw")
    assert p.retr(1)[1][3] == b""
    p.quit()
    pd.d.wait_log(r"pop3: login user=<alice@isp\.example> client=127\.0\.0\.1 tls=yes")


def test_stls_discards_pipelined_plaintext(make_daemon, tmp_path):
    pd = Pop3Daemon(make_daemon, tmp_path, tls=True).start()
    r = Raw3(pd.port)
    assert r.line().startswith(b"+OK")
    r.send("STLS\r\nUSER alice@isp.example\r\n")
    assert r.line().startswith(b"+OK Begin TLS")
    s = tls_ctx().wrap_socket(r.sock)
    s.sendall(b"PASS alice-pw\r\n")
    assert s.recv(1000).startswith(b"-ERR No user name")     # the USER was dropped
    s.close()
    pd.d.wait_log(r"discarded \d+ bytes received in plaintext after STLS")


def test_pop3s(make_daemon, tmp_path):
    pd = Pop3Daemon(make_daemon, tmp_path, pop3s=True).start()
    big = body(1, b"x" * 1000 + b"\n") * 100       # more than one 64 KiB read
    pd.put("alice@isp.example", big)
    p = poplib.POP3_SSL("127.0.0.1", pd.sport, context=tls_ctx(), timeout=10)
    assert "STLS" not in p.capa()
    p.user("alice@isp.example")
    p.pass_("alice-pw")
    resp, lines, _ = p.retr(1)
    assert b"\r\n".join(lines) + b"\r\n" == crlf(big)
    p.quit()


def test_no_stls_without_tls(pd):
    p = pd.pop()
    assert "STLS" not in p.capa()
    with pytest.raises(poplib.error_proto, match="not available"):
        p._shortcmd("STLS")
    p.quit()


def test_cleartext_false_still_allows_loopback(make_daemon, tmp_path):
    """cleartext = false refuses USER/PASS without TLS except from loopback
    (Dovecot's rule); the refusal from other addresses is unit-tested
    (test_pop3_parse: pop3_plaintext_ok), as every test client is on
    loopback."""
    pd = Pop3Daemon(make_daemon, tmp_path, pop3_opts="  cleartext = false").start()
    p = pd.login()
    p.quit()


# ---- AUTH PLAIN, APOP, domain maildrops ----


def plain(user, pw, authz=""):
    return base64.b64encode(("%s\0%s\0%s" % (authz, user, pw)).encode()).decode()


def test_auth_plain(pd):
    r = Raw3(pd.port)
    r.line()
    assert r.cmd("AUTH") == b"+OK"
    assert r.multi() == [b"PLAIN"]
    assert r.cmd("AUTH CRAM-MD5").startswith(b"-ERR")
    assert r.cmd("AUTH PLAIN") == b"+ "
    assert r.cmd("*").startswith(b"-ERR")                    # cancelled
    assert r.cmd("AUTH PLAIN") == b"+ "
    assert r.cmd("!!!notbase64").startswith(b"-ERR [AUTH]")
    assert r.cmd("AUTH PLAIN " + plain("alice@isp.example", "alice-pw",
                                       "bob@isp.example")).startswith(b"-ERR [AUTH]")
    assert r.cmd("AUTH PLAIN " + plain("alice@isp.example", "wrong")) == FAILED
    assert r.cmd("AUTH PLAIN") == b"+ "
    assert r.cmd(plain("alice@isp.example", "alice-pw")).startswith(b"+OK Logged in")
    assert r.cmd("QUIT").startswith(b"+OK")
    r.close()
    r = Raw3(pd.port)
    r.line()
    assert r.cmd("AUTH PLAIN " + plain("alice@isp.example", "alice-pw",
                                       "alice@isp.example")).startswith(b"+OK")
    r.cmd("QUIT")
    r.close()
    pd.d.wait_log(r"login user=<alice@isp\.example> .*method=AUTH PLAIN")


def test_domain_maildrop_with_customer_secret(pd):
    pd.put("acme2", body(1))
    p = pd.login("acme2", "s3cret")
    assert p.stat()[0] == 1
    p.quit()
    p = pd.pop()
    p.user("acme2")
    with pytest.raises(poplib.error_proto):
        p.pass_("wrong")


def test_apop_off_by_default(pd):
    p = pd.pop()
    assert b"<" not in p.getwelcome()
    with pytest.raises(poplib.error_proto, match="not enabled"):
        p._shortcmd("APOP acme2 0123456789abcdef0123456789abcdef")


def test_apop(make_daemon, tmp_path):
    pd = Pop3Daemon(make_daemon, tmp_path, pop3_opts="  apop = true").start()
    pd.put("acme2", body(1))
    p = pd.pop()
    assert re.search(rb"<[^>]+@mx\.test\.example>", p.getwelcome())
    assert p.apop("acme2", "s3cret").startswith(b"+OK")
    assert p.stat()[0] == 1
    p.quit()
    p = pd.pop()
    with pytest.raises(poplib.error_proto) as e:
        p.apop("acme2", "wrong")
    assert e.value.args[0] == FAILED
    with pytest.raises(poplib.error_proto) as e:   # a hash is no plaintext secret
        p.apop("alice@isp.example", "alice-pw")
    assert e.value.args[0] == FAILED


# ---- bounds ----


def test_twenty_bad_commands(pd):
    r = Raw3(pd.port)
    r.line()
    for i in range(19):
        assert r.cmd("BOGUS %d" % i) == b"-ERR Unknown command."
    assert r.cmd("STAT").startswith(b"-ERR Log in first")     # the 20th
    assert r.line().startswith(b"-ERR Too many bad commands")
    assert r.closed()


def test_line_too_long_and_nul(pd):
    r = Raw3(pd.port)
    r.line()
    r.send("USER " + "a" * 5000 + "\r\n")
    assert r.line() == b"-ERR Line too long."
    assert r.cmd("USER " + "a" * 300) == b"-ERR Argument too long."
    r.send(b"USER a\0b\r\n")
    assert r.line().startswith(b"-ERR Invalid characters")
    assert r.cmd("CAPA") == b"+OK Capability list follows"
    r.multi()
    r.close()


def test_autologout(make_daemon, tmp_path):
    pd = Pop3Daemon(make_daemon, tmp_path, pop3_opts="  timeout = 2").start()
    r = Raw3(pd.port)
    r.line()
    t0 = time.time()
    assert r.line(timeout=10) == b"-ERR Disconnected for inactivity."
    assert time.time() - t0 >= 1.5
    assert r.closed()


def test_pipelining(pd):
    for i in range(1, 6):
        pd.put("alice@isp.example", body(i))
    r = Raw3(pd.port)
    r.line()
    r.send("USER alice@isp.example\r\nPASS alice-pw\r\nSTAT\r\n" +
           "".join("RETR %d\r\n" % i for i in range(1, 6)) + "LIST 3\r\nDELE 5\r\nQUIT\r\n")
    assert r.line() == b"+OK"
    assert r.line().startswith(b"+OK Logged in: 5 messages")
    assert r.line().startswith(b"+OK 5 ")
    for i in range(1, 6):
        assert r.line().startswith(b"+OK")
        assert b"Subject: message %d" % i in b"\r\n".join(r.multi())
    assert r.line().startswith(b"+OK 3 ")
    assert r.line().startswith(b"+OK Message 5 marked")
    assert r.line().startswith(b"+OK Logging out, 1 messages deleted")
    assert r.closed()
    assert len(pd.files("alice@isp.example")) == 4


def test_retr_one_by_one_is_quick(pd):
    """RETR after RETR, each waiting for its answer (as poplib, fetchmail and
    mpop without pipelining do): each answer goes out whole at once.  It
    once took 46 ms a message: the final ".\r\n" went out alone after a
    read of the end of the file and waited for the client's delayed ACK."""
    for i in range(300):
        pd.put("alice@isp.example", body(i))
    p = pd.login()
    t0 = time.time()
    for i in range(1, 301):
        assert p.retr(i)[1][1] == b"To: alice@isp.example"
    assert time.time() - t0 < 5.0, time.time() - t0
    p.quit()


def test_message_gone_meanwhile(pd):
    paths = [pd.put("alice@isp.example", body(i)) for i in (1, 2)]
    p = pd.login()
    os.unlink(paths[0])
    with pytest.raises(poplib.error_proto, match=r"\[SYS/PERM\]"):
        p.retr(1)
    assert p.noop().startswith(b"+OK")
    assert p.retr(2)[0].startswith(b"+OK")
    p.dele(1)
    p.quit()                                # removing a file already gone is fine
    assert len(pd.files("alice@isp.example")) == 1


def test_pipelined_retr_message_gone_in_the_middle(pd):
    """RETR and TOP lines pipelined behind one another are read together
    (one worker job for many messages); the answers still come in order,
    and a message removed from disk after the listing gets its -ERR in its
    place while the others around it are sent."""
    paths = [pd.put("alice@isp.example", body(i, b"more %d\n" % i * 50)) for i in range(1, 21)]
    r = Raw3(pd.port)
    r.line()
    r.send("USER alice@isp.example\r\nPASS alice-pw\r\n")
    assert r.line() == b"+OK"
    assert r.line().startswith(b"+OK Logged in: 20 messages")
    os.unlink(paths[9])
    r.send("".join("RETR %d\r\n" % i for i in range(1, 21)) +
           "TOP 10 0\r\nTOP 11 0\r\nRETR 21\r\nLIST 12\r\nQUIT\r\n")
    for i in range(1, 21):
        first = r.line()
        if i == 10:
            assert first == b"-ERR [SYS/PERM] Message 10 is gone."
            continue
        assert first == b"+OK %d octets" % len(crlf(body(i, b"more %d\n" % i * 50)))
        assert b"\r\n".join(r.multi()) + b"\r\n" == crlf(body(i, b"more %d\n" % i * 50))
    assert r.line() == b"-ERR [SYS/PERM] Message 10 is gone."
    assert r.line() == b"+OK"
    assert r.multi() == [b"From: sender@example.org", b"To: alice@isp.example",
                         b"Subject: message 11", b""]
    assert r.line() == b"-ERR There is no message 21."
    assert r.line().startswith(b"+OK 12 ")
    assert r.line().startswith(b"+OK Logging out, 0 messages deleted")
    assert r.closed()
    pd.d.wait_log(r"pop3: alice@isp.example: message 10 \(new/[^)]*\) is gone")
    pd.d.wait_log(r"logout user=<alice@isp.example> client=127.0.0.1 retrieved=19 deleted=0")


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1))


def test_big_retr_slow_reader_rss_bounded(make_daemon, tmp_path):
    """A 50 MB message to a client that reads slowly: kickmaild streams it
    (64 KiB reads, only while little waits to be written), so its resident
    size grows by far less than the message.  (Under ASan freed memory is
    kept in a quarantine, which would count every piece: it is made small.)"""
    pd = Pop3Daemon(make_daemon, tmp_path)
    pd.d.start(env={"ASAN_OPTIONS": ":".join(filter(None, [
        os.environ.get("ASAN_OPTIONS"), "quarantine_size_mb=1",
        "thread_local_quarantine_size_kb=64"]))})
    line = b"x" * 99 + b"\n"
    big = b"Subject: big\n\n" + line * (50 * 1024 * 1024 // 100)
    pd.put("alice@isp.example", big)
    pid = pd.d.proc.pid
    rss0 = rss_kb(pid)
    s = socket.create_connection(("127.0.0.1", pd.port), timeout=30)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.sendall(b"USER alice@isp.example\r\nPASS alice-pw\r\nRETR 1\r\n")
    got = 0
    peak = rss0
    want = len(crlf(big)) + 3
    deadline = time.time() + 120
    head = b""
    while time.time() < deadline:
        chunk = s.recv(65536)
        if not chunk:
            break
        if len(head) < 200:
            head += chunk[:200]
        got += len(chunk)
        if got % (4 * 1024 * 1024) < 65536:
            peak = max(peak, rss_kb(pid))
            time.sleep(0.05)                # slow reader
        if chunk.endswith(b"\r\n.\r\n") and got >= want:
            break
    s.close()
    assert b"+OK %d octets" % len(crlf(big)) in head
    assert got >= want
    assert peak - rss0 < 20 * 1024, (rss0, peak)     # KiB: far below 50 MB


def test_pipelined_retr_slow_reader_rss_bounded(make_daemon, tmp_path):
    """1,500 RETRs of 32 KB messages (48 MB) pipelined by a client that
    does not read for a while, then reads slowly: the reads that batch
    pipelined RETRs still stop while a little waits to be written, so the
    resident size grows by far less than what was asked for."""
    pd = Pop3Daemon(make_daemon, tmp_path)
    pd.d.start(env={"ASAN_OPTIONS": ":".join(filter(None, [
        os.environ.get("ASAN_OPTIONS"), "quarantine_size_mb=1",
        "thread_local_quarantine_size_kb=64"]))})
    n = 1500
    for i in range(n):
        pd.put("alice@isp.example", b"Subject: m%d\n\n" % i + (b"y" * 79 + b"\n") * 400)
    pid = pd.d.proc.pid
    rss0 = rss_kb(pid)
    s = socket.create_connection(("127.0.0.1", pd.port), timeout=30)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.sendall(b"USER alice@isp.example\r\nPASS alice-pw\r\n" +
              b"".join(b"RETR %d\r\n" % i for i in range(1, n + 1)) + b"QUIT\r\n")
    time.sleep(1.5)                         # nothing read: kickmaild must wait
    peak = rss_kb(pid)
    got, seen, tail = 0, 0, b""
    deadline = time.time() + 120
    while time.time() < deadline:
        chunk = s.recv(65536)
        if not chunk:
            break
        got += len(chunk)
        seen += (tail[-4:] + chunk).count(b"\r\n.\r\n")
        tail = (tail + chunk)[-64:]
        if got % (2 * 1024 * 1024) < 65536:
            peak = max(peak, rss_kb(pid))
            time.sleep(0.02)                # slow reader
    s.close()
    assert seen == n
    assert tail.endswith(b" messages deleted.\r\n")
    assert got > n * 32000
    assert peak - rss0 < 20 * 1024, (rss0, peak)     # KiB: far below 48 MB


# ---- mpop, the real client ----

MPOP = shutil.which("mpop")


def mpop_run(pd, tmp_path, keep, uidls):
    out = tmp_path / "mbox"
    conf = tmp_path / "mpoprc"
    conf.write_text(
        "defaults\ntls off\nauth user\n"
        "account test\nhost 127.0.0.1\nport %d\nuser alice@isp.example\n"
        "passwordeval echo alice-pw\ndelivery mbox %s\nkeep %s\nuidls_file %s\n"
        % (pd.port, out, "on" if keep else "off", uidls))
    os.chmod(str(conf), 0o600)
    r = subprocess.run([MPOP, "-C", str(conf), "-a", "-q"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    return out.read_bytes() if out.exists() else b""


@pytest.mark.skipif(not MPOP, reason="mpop is not installed (scripts/install-deps)")
def test_mpop_delete_mode(pd, tmp_path):
    for i in range(1, 4):
        pd.put("alice@isp.example", body(i))
    mbox = mpop_run(pd, tmp_path, False, tmp_path / "uidls")
    assert mbox.count(b"\nSubject: message ") == 3
    assert b"\n>.starts with a dot" not in mbox and b"\n.starts with a dot" in mbox
    assert pd.files("alice@isp.example") == []


@pytest.mark.skipif(not MPOP, reason="mpop is not installed (scripts/install-deps)")
def test_mpop_keep_mode(pd, tmp_path):
    for i in range(1, 3):
        pd.put("alice@isp.example", body(i))
    mbox = mpop_run(pd, tmp_path, True, tmp_path / "uidls")
    assert mbox.count(b"\nSubject: message ") == 2
    assert len(pd.files("alice@isp.example")) == 2
    pd.put("alice@isp.example", body(3))
    mbox = mpop_run(pd, tmp_path, True, tmp_path / "uidls")   # only the new one
    assert mbox.count(b"\nSubject: message ") == 3
    assert mbox.count(b"\nSubject: message 3\n") == 1
    pd.d.wait_log(r"logout user=<alice@isp\.example> .*retrieved=1 deleted=0")


# ---- reload and shutdown ----


def test_reload_keeps_sessions(pd):
    pd.put("alice@isp.example", body(1))
    p = pd.login()
    start = len(pd.d.log_text())
    pd.d.hup()
    pd.d.wait_log(r"configuration reloaded", start=start)
    assert p.stat()[0] == 1
    assert p.retr(1)[0].startswith(b"+OK")
    p.quit()
    p = pd.login()                      # and new logins see the new registry
    p.quit()


def test_shutdown_deletes_nothing(pd):
    path = pd.put("alice@isp.example", body(1))
    p = pd.login()
    p.dele(1)
    pd.d.stop()                         # SIGTERM: exit 0 (checked by stop)
    assert p.file.readline().startswith(b"-ERR [SYS/TEMP] Server shutting down")
    assert os.path.exists(path)


def test_quit_that_frees_room_delivers_the_waiting_mail(make_daemon, tmp_path):
    # alice's maildrop is full at delivery: mail for her waits in the queue
    # (deferred, retried after retry_min = 1 min).  A POP3 session that
    # deletes a message makes room, and the waiting mail goes in at once,
    # not a minute later.
    drops = ('maildrop "alice@isp.example" { password = \'%s\' quota = 20k }\n'
             % pw_hash("alice-pw"))
    pd = Pop3Daemon(make_daemon, tmp_path, drops=drops)
    pd.put("alice@isp.example", b"Subject: old\n\n" + b"x" * 3000 + b"\n")
    pd.start()
    pd.d.wait_log(r"maildrops: usage of \d+ maildrops read in")
    pd.d.kickq("hold", "isp.example")
    import smtplib
    s = smtplib.SMTP("127.0.0.1", pd.d.port, timeout=10)
    s.sendmail("someone@sender.example", ["alice@isp.example"],
               b"Subject: new\r\n\r\n" + b"y" * 2000 + b"\r\n")
    s.quit()
    pd.d.extra = pd.d.extra.replace("quota = 20k", "quota = 4k")   # now full
    pd.d.write_conf()
    m = len(pd.d.log_text())
    pd.d.hup()
    pd.d.wait_log(r"configuration reloaded", start=m)
    pd.d.kickq("release", "isp.example")
    pd.d.wait_log(r"to=<alice@isp\.example>, relay=local, .*status=deferred .*over quota")
    assert len(pd.files("alice@isp.example")) == 1
    p = pd.login()
    assert p.stat()[0] == 1
    p.dele(1)
    assert p.quit().startswith(b"+OK")
    pd.d.wait_log(r"isp\.example: room in maildrop alice@isp\.example: retrying 1 messages",
                  timeout=5)

    def delivered():
        f = pd.files("alice@isp.example")
        return len(f) == 1 and b"Subject: new" in open(
            os.path.join(pd.root, "isp.example", "alice", f[0]), "rb").read()
    wait_for(delivered, timeout=5, what="the waiting message delivered after the QUIT")


# ---- probes: odd arguments, wrong states, edges of the limits ----


def test_probe_wrong_state_and_odd_arguments(pd):
    pd.put("alice@isp.example", body(1))
    pd.put("alice@isp.example", body(2))
    r = Raw3(pd.port)
    r.line()
    for c in ("STAT", "LIST", "RETR 1", "DELE 1", "RSET", "NOOP", "UIDL", "TOP 1 0"):
        assert r.cmd(c).startswith(b"-ERR Log in first"), c
    assert r.cmd("PASS alice-pw").startswith(b"-ERR No user name")
    assert r.cmd("user nobody@isp.example") == b"+OK"
    assert r.cmd("uSeR alice@isp.example ") == b"+OK"      # the last USER counts
    assert r.cmd("pass alice-pw").startswith(b"+OK Logged in: 2")
    for c in ("USER x", "PASS x", "AUTH PLAIN", "APOP a b", "STLS"):
        assert r.cmd(c).startswith(b"-ERR Already logged in"), c
    r.cmd("QUIT")
    r.close()
    r = Raw3(pd.port)                   # a new count of bad commands
    r.line()
    r.cmd("USER alice@isp.example")
    assert r.cmd("PASS alice-pw").startswith(b"+OK Logged in: 2")
    assert r.cmd("stat ") == b"+OK 2 %d" % sum(len(crlf(body(i))) for i in (1, 2))
    assert r.cmd("LIST 0").startswith(b"-ERR There is no message 0")
    assert r.cmd("RETR -1").startswith(b"-ERR There is no message")
    assert r.cmd("RETR 99999999999999999999").startswith(b"-ERR There is no message")
    assert r.cmd("RETR 4294967297").startswith(b"-ERR There is no message")
    assert r.cmd("RETR +1").startswith(b"-ERR There is no message")
    assert r.cmd("RETR 1 2").startswith(b"-ERR Invalid arguments")
    assert r.cmd("TOP 1 -1") == b"-ERR Invalid number of lines."
    assert r.cmd("TOP 1") .startswith(b"-ERR Invalid arguments")
    assert r.cmd("LIST 01").startswith(b"+OK 1 ")
    assert r.cmd("DELE 1").startswith(b"+OK")
    assert r.cmd("DELE 1") == b"-ERR Message 1 is deleted."
    assert r.cmd("LIST 1") == b"-ERR Message 1 is deleted."
    assert r.cmd("UIDL 1") == b"-ERR Message 1 is deleted."
    assert r.cmd("TOP 1 0") == b"-ERR Message 1 is deleted."
    assert r.cmd("UIDL") == b"+OK"
    assert [ln.split()[0] for ln in r.multi()] == [b"2"]
    assert r.cmd("RSET").startswith(b"+OK 2 messages")
    assert r.cmd("RETR 1").startswith(b"+OK")
    assert b"Subject: message 1" in b"\r\n".join(r.multi())
    r.send("NOOP\n")                    # a bare LF ends a line too
    assert r.line() == b"+OK"
    assert r.cmd("QUIT").startswith(b"+OK Logging out, 0 messages")
    r.close()
    assert len(pd.files("alice@isp.example")) == 2


def test_probe_line_exactly_at_the_limit(pd):
    pd.put("alice@isp.example", body(1))
    r = Raw3(pd.port)
    r.line()
    # 2048 octets with the CR LF: taken; one more: too long
    r.send("CAPA" + " " * (2048 - 6) + "\r\n")
    assert r.line() == b"+OK Capability list follows"
    r.multi()
    r.send("CAPA" + " " * (2048 - 5) + "\r\n")
    assert r.line() == b"-ERR Line too long."
    assert r.cmd("NOOP").startswith(b"-ERR Log in first")  # in step again
    # a long line cut in pieces, the CR LF split between two sends
    r.send("CAPA" + " " * (2048 - 5))
    time.sleep(0.2)
    r.send("\r\n")
    assert r.line() == b"-ERR Line too long."
    assert r.cmd("USER alice@isp.example") == b"+OK"
    r.close()


def test_probe_auth_plain_odd_responses(pd):
    r = Raw3(pd.port)
    r.line()
    assert r.cmd("AUTH PLAIN =").startswith(b"-ERR [AUTH] Invalid")
    assert r.cmd("auth plain") == b"+ "
    assert r.cmd("=").startswith(b"-ERR [AUTH] Invalid")
    assert r.cmd("AUTH PLAIN") == b"+ "
    assert r.cmd("QQ" * 900).startswith(b"-ERR [AUTH] Invalid")      # huge
    assert r.cmd("AUTH PLAIN " + "QUFB" * 450).startswith(b"-ERR [AUTH] Invalid")
    # a password with spaces and '=' and non-ASCII: refused as any other
    assert r.cmd("AUTH PLAIN " + plain("alice@isp.example", "a b=c\u00e9")) == FAILED
    # authzid with another case of the same name: allowed
    assert r.cmd("AUTH PLAIN " + plain("alice@isp.example", "alice-pw",
                                       "ALICE@isp.example")).startswith(b"+OK Logged in")
    r.cmd("QUIT")
    r.close()


def test_probe_login_name_any_case_and_lock(pd):
    p = pd.login("ALICE@ISP.EXAMPLE", "alice-pw")
    q = pd.pop()
    q.user("alice@isp.example")
    with pytest.raises(poplib.error_proto, match=r"\[IN-USE\]"):
        q.pass_("alice-pw")
    q.user("Acme2")
    assert q.pass_("s3cret").startswith(b"+OK")
    r = pd.pop()
    r.user("ACME2")
    with pytest.raises(poplib.error_proto, match=r"\[IN-USE\]"):
        r.pass_("s3cret")
    p.quit()
    q.quit()


def test_probe_kill9_leaves_no_stale_lock(pd):
    path = pd.put("alice@isp.example", body(1))
    p = pd.login()
    p.dele(1)
    pd.d.kill9()
    pd.d.start()
    p = pd.login()                       # no stale [IN-USE]
    assert p.stat()[0] == 1
    p.quit()
    assert os.path.exists(path)


def test_probe_numbers_fixed_for_the_session(pd):
    pd.put("alice@isp.example", body(1))
    p = pd.login()
    pd.put("alice@isp.example", body(2))
    assert p.stat()[0] == 1
    with pytest.raises(poplib.error_proto, match="no message"):
        p.retr(2)
    p.quit()
    p = pd.login()
    assert p.stat()[0] == 2
    p.quit()


def test_probe_passwords_never_logged(pd):
    pd.put("alice@isp.example", body(1))
    p = pd.login()
    p.quit()
    p = pd.pop()
    p.user("alice@isp.example")
    with pytest.raises(poplib.error_proto):
        p.pass_("Secr3t-Wrong-PW")
    r = Raw3(pd.port)
    r.line()
    r.cmd("AUTH PLAIN " + plain("alice@isp.example", "Plain-Wrong-PW"))
    r.cmd("AUTH PLAIN " + plain("alice@isp.example", "alice-pw", "bob@isp.example"))
    r.close()
    pd.d.wait_log(r"login failed user=<alice@isp\.example>.*method=AUTH PLAIN")
    text = pd.d.log_text()
    for secret in ("alice-pw", "Secr3t-Wrong-PW", "Plain-Wrong-PW",
                   base64.b64encode(b"\0alice@isp.example\0alice-pw").decode()):
        assert secret not in text


def test_probe_user_with_control_bytes_in_log(pd):
    r = Raw3(pd.port)
    r.line()
    assert r.cmd("USER evil\x1b[31m@isp.example") == b"+OK"
    assert r.cmd("PASS x") == FAILED
    r.close()
    pd.d.wait_log(r"login failed user=<evil")
    assert "\x1b" not in pd.d.log_text()


def retr_octets(r, n):
    """RETR n over a raw connection: the size its +OK line says, and the
    message's octets as sent (dot-stuffing undone, CR LF ends kept)."""
    first = r.cmd("RETR %d" % n)
    assert first.startswith(b"+OK "), first
    lines = r.multi()
    return int(first.split()[1]), sum(len(ln) + 2 for ln in lines)


def test_probe_foreign_files_sizes_are_exact(pd):
    """Files another program put in the maildir (no ,S= ,W= in the name):
    LIST, STAT and RETR's "+OK n octets" say exactly the octets RETR sends,
    also for a file whose last line has no line end (RETR ends it with CR
    LF), one ending in a bare CR, with CR LF ends, with a NUL byte."""
    d = os.path.join(str(pd.root), "isp.example", "alice")
    for s in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(d, s), exist_ok=True)
    contents = [b"Subject: a\n\nno line end at the end",
                b"Subject: b\n\nends in a bare CR\r",
                b"Subject: c\r\n\r\nCR LF ends\r\n.dot\r\n",
                b"Subject: d\n\nNUL \0 byte\n",
                b"Subject: e\n\n" + b"z" * 10000 + b"\n"]
    for i, c in enumerate(contents):
        with open(os.path.join(d, "new", "%d.foreign%d.host" % (1700000000 + i, i)), "wb") as f:
            f.write(c)
    r = Raw3(pd.port)
    r.line()
    r.cmd("USER alice@isp.example")
    assert r.cmd("PASS alice-pw").startswith(b"+OK Logged in: 5")
    r.send("LIST\r\n")
    assert r.line().startswith(b"+OK")
    sizes = [int(ln.split()[1]) for ln in r.multi()]
    for i in range(1, 6):
        said, sent = retr_octets(r, i)
        assert (said, sizes[i - 1]) == (sent, sent), (i, said, sizes[i - 1], sent)
    assert r.cmd("STAT") == b"+OK 5 %d" % sum(sizes)
    r.cmd("QUIT")
    r.close()


def test_probe_ipv6_loopback_is_loopback(make_daemon, tmp_path):
    """cleartext = false still allows USER/PASS from ::1, as from 127.0.0.1."""
    port6 = free_port()
    pd = Pop3Daemon(make_daemon, tmp_path, pop3_opts='  cleartext = false\n'
                    '  listen = {"[::1]:%d"}' % port6)
    pd.d.start()
    s = socket.create_connection(("::1", port6), timeout=10)
    f = s.makefile("rwb")
    assert f.readline().startswith(b"+OK")
    f.write(b"CAPA\r\n")
    f.flush()
    capa = []
    while True:
        ln = f.readline().rstrip(b"\r\n")
        if ln == b".":
            break
        capa.append(ln)
    assert b"USER" in capa, capa
    f.write(b"USER alice@isp.example\r\nPASS alice-pw\r\n")
    f.flush()
    assert f.readline() == b"+OK\r\n"
    assert f.readline().startswith(b"+OK Logged in")
    s.close()
    pd.d.wait_log(r"pop3: login user=<alice@isp\.example> client=::1 ")


def test_probe_login_to_a_maildrop_never_delivered_to(pd):
    """A new maildrop with no mail yet (its directory may not exist):
    +OK with 0 messages, not an error."""
    shutil.rmtree(os.path.join(str(pd.root), "isp.example", "alice"), ignore_errors=True)
    p = pd.login()
    assert p.stat() == (0, 0)
    assert p.list()[1] == []
    assert p.quit().startswith(b"+OK")
    p = pd.login("acme2", "s3cret")     # a domain maildrop, never delivered to
    assert p.stat() == (0, 0)
    p.quit()


def test_probe_keep_mode_quit_on_an_empty_maildrop(pd):
    p = pd.login("kim@isp.example")
    assert p.stat() == (0, 0)
    assert p.quit() == b"+OK Logging out, 0 messages deleted."
    pd.d.wait_log(r"pop3: logout user=<kim@isp\.example>")
    assert not re.search(r"kim@isp\.example: (expiry failed|cannot)", pd.d.log_text())


def test_probe_keep_to_delete_by_reload_and_back(pd):
    """kim switched from keep to delete mode by SIGHUP: her retrieved mail
    stays (delete mode never expires), EXPIRE says NEVER; an open session
    keeps its mode; switched back with keep_days = 0, what was retrieved
    before expires at the next QUIT."""
    paths = [pd.put("kim@isp.example", body(i)) for i in (1, 2)]
    p = pd.login("kim@isp.example")
    p.retr(1)
    p.quit()
    old = pd.d.extra
    kdir = os.path.join(str(pd.root), "isp.example", "kim")
    rec = open(os.path.join(kdir, "kickmail-retrieved")).read().split()
    with open(os.path.join(kdir, "kickmail-retrieved"), "w") as f:
        f.write("%s %d\n" % (rec[0], int(time.time()) - 10 * 86400))
    q = pd.login("kim@isp.example")          # open across the reload: keep
    pd.d.extra = old.replace('mode = "keep" keep_days = 2', 'mode = "delete"')
    assert pd.d.extra != old
    pd.d.write_conf()
    m = len(pd.d.log_text())
    pd.d.hup()
    pd.d.wait_log(r"configuration reloaded", start=m)
    assert q.capa()["EXPIRE"] == ["2"]
    q.quit()                                 # its keep-mode UPDATE: message 1 expires
    assert not os.path.exists(paths[0].replace("/new/", "/cur/") + ":2,S")
    assert len(pd.files("kim@isp.example")) == 1
    pd.put("kim@isp.example", body(3))
    p = pd.login("kim@isp.example")
    assert p.capa()["EXPIRE"] == ["NEVER"]
    p.retr(1)
    p.retr(2)
    p.quit()
    assert len(pd.files("kim@isp.example")) == 2     # delete mode: nothing expires
    pd.d.extra = old.replace('keep_days = 2', 'keep_days = 0')
    pd.d.write_conf()
    m = len(pd.d.log_text())
    pd.d.hup()
    pd.d.wait_log(r"configuration reloaded", start=m)
    time.sleep(1.1)                          # retrieved "before now"
    p = pd.login("kim@isp.example")
    assert p.capa()["EXPIRE"] == ["0"]
    assert p.stat()[0] == 2
    p.quit()
    # delete-mode retrievals were not recorded: nothing to expire
    assert len(pd.files("kim@isp.example")) == 2


def test_probe_pass_without_argument(pd):
    r = Raw3(pd.port)
    r.line()
    assert r.cmd("USER alice@isp.example") == b"+OK"
    assert r.cmd("PASS") == FAILED
    assert r.cmd("USER alice@isp.example") == b"+OK"
    assert r.cmd("PASS ") == FAILED
    assert r.cmd("USER alice@isp.example") == b"+OK"
    assert r.cmd("PASS alice-pw").startswith(b"+OK Logged in")
    r.cmd("QUIT")
    r.close()


def _map_with(path, rows):
    """A customer map at path with these maildrops rows (address, password,
    mode, keep_days, quota)."""
    import sqlite3
    from conftest import ROOT
    if os.path.exists(path):
        os.unlink(path)
    db = sqlite3.connect(path)
    with open(os.path.join(ROOT, "conf", "customers.sql")) as f:
        db.executescript(f.read())
    db.executemany("INSERT INTO maildrops (address, password, mode, keep_days, quota) "
                   "VALUES (?, ?, ?, ?, ?)", rows)
    db.commit()
    db.close()


def _smtp_rcpt(d, rcpt):
    from conftest import Raw
    with Raw(d.port) as c:
        c.greet()
        c.cmd("MAIL FROM:<someone@sender.example>")
        r = c.cmd("RCPT TO:<%s>" % rcpt)
        c.cmd("QUIT")
    return r


def test_probe_map_maildrop_lifecycle(make_daemon, tmp_path):
    """A maildrop only in the customer map: mail delivered into it and a
    POP3 login to it; its row removed and SIGHUP: RCPT 550 5.1.1 and the
    login refused at once, the mail left on disk; bad rows (NULL password,
    unknown mode, negative quota, no '@', '..' in the address) are a clear
    log line each and leave the old maildrops in force, no crash."""
    path = str(tmp_path / "customers.sqlite")
    _map_with(path, [("dave@mapped.example", pw_hash("dave-pw"), "keep", 3, "1M")])
    pd = Pop3Daemon(make_daemon, tmp_path, drops='customer_map = "%s"\n' % path).start()
    d = pd.d
    d.send("dave@mapped.example")
    wait_for(lambda: len(pd.files("dave@mapped.example")) == 1, what="dave's mail")
    p = pd.login("dave@mapped.example", "dave-pw")
    assert p.stat()[0] == 1
    assert p.capa().get("EXPIRE") == ["3"], p.capa()      # keep_days of the row
    p.quit()
    p = pd.login("DAVE@Mapped.Example", "dave-pw")          # any case
    p.quit()
    bad = [
        ([("x@mapped.example", None, None, None, None)], r"NOT NULL|no password"),
        ([("x@mapped.example", "h", "sometimes", None, None)], r"mode"),
        ([("x@mapped.example", "h", None, None, "-5")], r"quota"),
        ([("x@mapped.example", "h", None, -1, None)], r"keep_days"),
        ([("nodomain", "h", None, None, None)], r"bad maildrop address 'nodomain'"),
        ([("../x@mapped.example", "h", None, None, None)], r"bad maildrop address"),
        ([("x@../mapped.example", "h", None, None, None)], r"bad maildrop address"),
        ([("x@mapped.example/..", "h", None, None, None)], r"bad maildrop address"),
    ]
    import sqlite3
    for rows, why in bad:
        try:
            _map_with(path, rows)
        except sqlite3.IntegrityError:
            continue                    # the schema itself refuses it
        m = len(d.log_text())
        d.hup()
        d.wait_log(r"customers\.sqlite.*(%s)" % why, start=m)
        d.wait_log(r"(keeps|keeping|kept) the (old|current|previous)", start=m)
        assert d.proc.poll() is None
        assert code3(_smtp_rcpt(d, "dave@mapped.example")) == 250
    _map_with(path, [("erin@mapped.example", pw_hash("erin-pw"), None, None, None)])
    m = len(d.log_text())
    d.hup()
    d.wait_log(r"configuration reloaded", start=m)
    assert _smtp_rcpt(d, "dave@mapped.example").startswith("550 5.1.1"), \
        _smtp_rcpt(d, "dave@mapped.example")
    p = pd.pop()
    p.user("dave@mapped.example")
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
        p.pass_("dave-pw")
    assert len(pd.files("dave@mapped.example")) == 1      # left on disk


def code3(r):
    return int(r[:3]) if r and r[:3].isdigit() else 0


def test_probe_domain_maildrop_login_case_and_secret_reload(pd):
    """The customer name of a domain maildrop in another case logs in (as
    the maildrop name does); after its secret is changed by SIGHUP the old
    one is refused at once and the new one works."""
    pd.put("acme2", body(1))
    p = pd.login("ACME2", "s3cret")
    assert p.stat()[0] == 1
    p.quit()
    d = pd.d
    d.customers = d.customers.replace("secret = 's3cret'", "secret = 'n3w'")
    assert "'n3w'" in d.customers
    d.write_conf()
    m = len(d.log_text())
    d.hup()
    d.wait_log(r"configuration reloaded", start=m)
    p = pd.pop()
    p.user("acme2")
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
        p.pass_("s3cret")
    p.close()
    p = pd.login("acme2", "n3w")
    assert p.stat()[0] == 1
    p.quit()


def _uid(path):
    return hashlib.md5(os.path.basename(path).split(":")[0].encode()).hexdigest()


def test_probe_keep_expiry_boundaries_and_corrupt_record(pd):
    """keep_days = 2: a message first retrieved 1.9 days ago stays, one
    retrieved 2.1 days ago expires at the next QUIT, one never retrieved
    stays; garbage, a line for a message not in the maildrop, a line with
    a future time and a torn last line in kickmail-retrieved are skipped
    without a crash; UIDLs of the rest do not change."""
    paths = [pd.put("kim@isp.example", body(i)) for i in range(5)]
    kdir = os.path.join(str(pd.root), "isp.example", "kim")
    now = int(time.time())
    uids = [_uid(p) for p in paths]
    with open(os.path.join(kdir, "kickmail-retrieved"), "w") as f:
        f.write("%s %d\n" % (uids[0], now - int(1.9 * 86400)))
        f.write("%s %d\n" % (uids[1], now - int(2.1 * 86400)))
        f.write("this is not a line\n\x00\xff\n")
        f.write("%s %d\n" % ("0" * 32, now - 10 * 86400))      # not in the maildrop
        f.write("%s %d\n" % (uids[3], now + 400 * 86400))      # in the future
        f.write("%s %d" % (uids[4], now - 9 * 86400))           # torn: no LF
    p = pd.login("kim@isp.example")
    before = p.uidl()[1]
    assert p.stat()[0] == 5
    p.quit()
    files = pd.files("kim@isp.example")
    left = sorted(os.path.basename(f).split(":")[0] for f in files)
    want = sorted(os.path.basename(p_) for i, p_ in enumerate(paths) if i != 1)
    assert left == want, (left, want)
    pd.d.wait_log(r"kickmail-retrieved: \d+ bad lines skipped")
    pd.d.wait_log(r"pop3: kim@isp\.example: 1 messages expired")
    p = pd.login("kim@isp.example")
    after = p.uidl()[1]
    p.quit()
    gone = uids[1].encode()
    assert [ln.split()[1] for ln in after] == \
        [ln.split()[1] for ln in before if ln.split()[1] != gone]
    assert pd.d.proc.poll() is None


def test_probe_uidl_after_dovecot_rename_and_hand_copies(pd):
    """A message moved by another program (Dovecot) from new/ to cur/ with
    ':2,S' keeps its UIDL; a file copied by hand into new/ under the same
    base name as one in cur/ must not give two messages the same UIDL; a
    hand-copied file without ',S=' is listed with its real size."""
    p1 = pd.put("alice@isp.example", body(1))
    p = pd.login()
    u1 = p.uidl(1).split()[2]
    p.quit()
    cur = os.path.join(os.path.dirname(os.path.dirname(p1)), "cur")
    moved = os.path.join(cur, os.path.basename(p1) + ":2,S")
    os.rename(p1, moved)
    p = pd.login()
    assert p.uidl(1).split()[2] == u1
    p.quit()
    shutil.copy(moved, p1)          # the same base name in new/ and cur/
    hand = os.path.join(os.path.dirname(p1), "by-hand")
    with open(hand, "wb") as f:
        f.write(b"Subject: by hand\n\nline\n")
    p = pd.login()
    uids = [ln.split()[1] for ln in p.uidl()[1]]
    sizes = dict((ln.split()[0], int(ln.split()[1])) for ln in p.list()[1])
    n = len(uids)
    p.quit()
    assert n == 3, uids
    assert len(set(uids)) == len(uids), uids        # RFC 1939: unique
    assert 26 in sizes.values(), sizes              # 23 bytes + 3 CRs
    assert u1 in uids                               # the one in cur/ keeps its UIDL
    pd.d.wait_log(r"maildir: .*/new/%s has the base name of another message: renamed "
                  r"to new/" % re.escape(os.path.basename(p1)))
    assert len(pd.files("alice@isp.example")) == 3      # nothing lost
    p = pd.login()
    assert sorted(ln.split()[1] for ln in p.uidl()[1]) == sorted(uids)     # and they stay
    p.quit()


def test_probe_pop3s_handshake_never_finished_is_bounded(make_daemon, tmp_path):
    """A pop3s client that connects and never does (or never ends) the TLS
    handshake is cut off at the section's timeout; so is one that stops
    after STLS; the server serves others meanwhile."""
    pd = Pop3Daemon(make_daemon, tmp_path, pop3s=True, tls=True,
                    pop3_opts="timeout = 2", pop3s_opts="timeout = 2").start()
    silent = socket.create_connection(("127.0.0.1", pd.sport), timeout=10)
    partial = socket.create_connection(("127.0.0.1", pd.sport), timeout=10)
    partial.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")     # a ClientHello begun
    stls = Raw3(pd.port)
    assert stls.line().startswith(b"+OK")
    assert stls.cmd("STLS").startswith(b"+OK")             # then nothing
    t0 = time.time()
    p = poplib.POP3_SSL("127.0.0.1", pd.sport, context=tls_ctx(), timeout=10)
    p.quit()
    hung = []
    for what, s in (("silent", silent), ("partial", partial), ("stls", stls.sock)):
        s.settimeout(max(0.1, t0 + 6 - time.time()))
        try:
            while s.recv(4096):
                pass
        except ConnectionResetError:
            pass
        except socket.timeout:
            hung.append(what)
        s.close()
    assert not hung, "still open after 6 s with timeout = 2: %s" % hung
    wait_for(lambda: len(re.findall(r"pop3: disconnect from 127\.0\.0\.1 reason=TLS "
                                    r"handshake timed out", pd.d.log_text())) == 3,
             what="three handshake timeouts logged")


def test_pop3s_client_gone_during_the_handshake_is_closed_at_once(make_daemon, tmp_path):
    """A pop3s client that closes its side before or during the TLS
    handshake (nothing sent; half a ClientHello; a close_notify alert):
    each session ends at once, not at the section's timeout (OpenSSL 3
    reports each as an error, which closes without waiting for the
    greeting queued for TLS to drain), and the log says TLS."""
    pd = Pop3Daemon(make_daemon, tmp_path, pop3s=True, tls=True,
                    pop3s_opts="timeout = 30").start()
    for first in (b"", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
                  b"\x15\x03\x01\x00\x02\x01\x00"):
        s = socket.create_connection(("127.0.0.1", pd.sport), timeout=10)
        s.sendall(first)
        s.shutdown(socket.SHUT_WR)
        t0 = time.time()
        try:
            while s.recv(4096):
                pass
        except (ConnectionResetError, socket.timeout):
            pass
        s.close()
        assert time.time() - t0 < 5, (first, time.time() - t0)
    wait_for(lambda: len(re.findall(r"pop3: disconnect from 127\.0\.0\.1 reason=TLS",
                                    pd.d.log_text())) == 3,
             what="three TLS disconnects logged")


def test_probe_many_sessions_from_one_address(make_daemon, tmp_path):
    """200 connections from one address with max_connections_per_client =
    50: 50 are served, the others get -ERR [SYS/TEMP] before any session;
    once those close, a new one is served."""
    pd = Pop3Daemon(make_daemon, tmp_path).start()
    socks, refused = [], 0
    for i in range(200):
        r = Raw3(pd.port)
        ln = r.line()
        if ln and ln.startswith(b"+OK"):
            socks.append(r)
        else:
            assert ln is None or ln.startswith(b"-ERR [SYS/TEMP]"), ln
            refused += 1
            r.close()
    assert len(socks) == 50 and refused == 150, (len(socks), refused)
    for r in socks:
        r.cmd("QUIT")
        r.close()
    wait_for(lambda: pd.pop().getwelcome().startswith(b"+OK"), what="served again")


def test_probe_symlinks_planted_in_a_maildrop(pd, tmp_path):
    """A symbolic link in new/ or cur/ (to a file outside the maildrop) is
    not a message: not listed, never sent or removed; a kickmail-retrieved
    that is a symbolic link is not followed (keep mode logs that it cannot
    record, and the file it points to is not changed)."""
    secret = tmp_path / "outside.txt"
    secret.write_bytes(b"Subject: not yours\n\nsecret\n")
    pd.put("alice@isp.example", body(1))
    adir = os.path.join(str(pd.root), "isp.example", "alice")
    os.symlink(str(secret), os.path.join(adir, "new", "1700000000.M1P1Q1.evil,S=27,W=30"))
    os.symlink(str(secret), os.path.join(adir, "cur", "1700000001.M1P1Q1.evil:2,S"))
    p = pd.login()
    assert p.stat()[0] == 1
    assert b"secret" not in b"\n".join(p.retr(1)[1])
    p.dele(1)
    p.quit()
    assert secret.read_bytes() == b"Subject: not yours\n\nsecret\n"
    pd.put("kim@isp.example", body(2))
    kdir = os.path.join(str(pd.root), "isp.example", "kim")
    target = tmp_path / "target"
    target.write_bytes(b"keep me\n")
    os.symlink(str(target), os.path.join(kdir, "kickmail-retrieved"))
    p = pd.login("kim@isp.example")
    p.retr(1)
    with pytest.raises(poplib.error_proto,
                       match=r"\[SYS/TEMP\] .*0 messages deleted, 0 not; "
                             r"the retrievals were not recorded\."):
        p.quit()                        # the retrieval could not be recorded
    assert target.read_bytes() == b"keep me\n"
    assert os.path.islink(os.path.join(kdir, "kickmail-retrieved"))
    pd.d.wait_log(r"pop3: kim@isp\.example: cannot record retrievals: .*kickmail-retrieved")
    assert len(pd.files("kim@isp.example")) == 1


def test_probe_keep_days_zero_and_a_maildrop_that_is_a_file(make_daemon, tmp_path):
    """keep_days = 0: a message retrieved in a session stays until the
    next session's QUIT, then expires.  A maildrop whose directory is a
    regular file: the login gets -ERR [SYS/TEMP], the daemon lives on."""
    drops = ('maildrop "zed@isp.example" { password = \'%s\' mode = "keep" keep_days = 0 }\n'
             'maildrop "file@isp.example" { password = \'%s\' }\n'
             % (pw_hash("zed-pw"), pw_hash("file-pw")))
    pd = Pop3Daemon(make_daemon, tmp_path, drops=drops)
    pd.pw.update({"zed@isp.example": "zed-pw", "file@isp.example": "file-pw"})
    pd.start()
    pd.put("zed@isp.example", body(1))
    p = pd.login("zed@isp.example")
    assert p.capa()["EXPIRE"] == ["0"]
    p.retr(1)
    p.quit()
    assert len(pd.files("zed@isp.example")) == 1
    time.sleep(1.1)
    p = pd.login("zed@isp.example")
    assert p.stat()[0] == 1
    p.quit()
    assert pd.files("zed@isp.example") == []
    os.makedirs(os.path.join(str(pd.root), "isp.example"), exist_ok=True)
    with open(os.path.join(str(pd.root), "isp.example", "file"), "w") as f:
        f.write("not a directory\n")
    p = pd.pop()
    p.user("file@isp.example")
    with pytest.raises(poplib.error_proto, match=r"\[SYS/TEMP\]"):
        p.pass_("file-pw")
    assert pd.d.proc.poll() is None
    p = pd.login("zed@isp.example")
    p.quit()


# ---- third probe pass ----


def test_probe3_sasl_response_over_the_line_limit_ends_the_exchange(pd):
    """A continuation response longer than a line is refused with "-ERR"
    and the SASL exchange is over (RFC 5034 4: after -ERR the client is
    back in AUTHORIZATION): the next line is a command, not a response."""
    r = Raw3(pd.port)
    r.line()
    assert r.cmd("AUTH PLAIN") == b"+ "
    assert r.cmd("Q" * 3000) == b"-ERR Line too long."
    assert r.cmd("CAPA") == b"+OK Capability list follows"
    assert b"SASL PLAIN" in r.multi()
    assert r.cmd("AUTH PLAIN") == b"+ "
    r.send("Q" * 3000)                  # the long line cut in pieces
    time.sleep(0.2)
    r.send("Q" * 100 + "\r\n")
    assert r.line() == b"-ERR Line too long."
    assert r.cmd("AUTH PLAIN " + plain("alice@isp.example", "alice-pw")).startswith(
        b"+OK Logged in")
    r.cmd("QUIT")
    r.close()


@pytest.mark.skipif(not MPOP, reason="mpop is not installed (scripts/install-deps)")
def test_probe3_mpop_verifies_the_certificate_over_stls_and_pop3s(make_daemon, tmp_path):
    """mpop with tls_trust_file = the test certificate: over STLS (on a
    listener with cleartext = false) and over pop3s it fetches; with a name
    the certificate does not carry (tls_host_override) it fails and fetches
    nothing."""
    pd = Pop3Daemon(make_daemon, tmp_path, tls=True, pop3s=True,
                    pop3_opts="cleartext = false").start()
    pd.put("alice@isp.example", body(1))

    def run(port, tag, extra):
        out = tmp_path / ("mbox-" + tag)
        conf = tmp_path / ("mpoprc-" + tag)
        conf.write_text(
            "defaults\nauth user\naccount test\nhost localhost\nport %d\n"
            "user alice@isp.example\npasswordeval echo alice-pw\ndelivery mbox %s\n"
            "keep on\nuidls_file %s\ntls on\ntls_trust_file %s/tls/cert.pem\n%s\n"
            % (port, out, tmp_path / ("uidls-" + tag), pd.d.tmp, extra))
        os.chmod(str(conf), 0o600)
        r = subprocess.run([MPOP, "-C", str(conf), "-a", "-q"], capture_output=True,
                           text=True, timeout=60)
        return r, out.read_bytes() if out.exists() else b""

    for port, tag, starttls in ((pd.port, "stls", "on"), (pd.sport, "pop3s", "off")):
        r, mbox = run(port, tag, "tls_starttls " + starttls)
        assert r.returncode == 0, r.stdout + r.stderr
        assert mbox.count(b"\nSubject: message 1\n") == 1, tag
        r, mbox = run(port, tag + "-wrong",
                      "tls_starttls %s\ntls_host_override wrong.example" % starttls)
        assert r.returncode != 0 and "certificate" in r.stderr, r.stderr
        assert mbox == b"", tag
    assert len(pd.files("alice@isp.example")) == 1


def test_probe3_logout_line_of_a_client_gone_during_update(pd):
    """QUIT after 2,000 DELEs and a reset at once: the UPDATE goes on and
    removes them all; the logout line says so (deleted=2000), as kickq
    stats does, not deleted=0 written when the connection went."""
    for i in range(2000):
        pd.put("alice@isp.example", body(i))
    r = Raw3(pd.port)
    r.line()
    r.cmd("USER alice@isp.example")
    assert r.cmd("PASS alice-pw").startswith(b"+OK Logged in: 2000")
    r.send("".join("DELE %d\r\n" % i for i in range(1, 2001)))
    for i in range(2000):
        assert r.line().startswith(b"+OK")
    r.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    r.send("QUIT\r\n")
    r.close()                           # a reset, while the UPDATE runs
    m = pd.d.wait_log(r"logout user=<alice@isp\.example> client=127\.0\.0\.1 "
                      r"retrieved=0 deleted=(\d+) bytes=0")
    assert pd.files("alice@isp.example") == []
    assert m.group(1) == "2000", m.group(0)
    assert re.search(r"\npop3\.deleted 2000\n", pd.d.kickq("stats").stdout)


def test_probe3_pop3s_client_gone_right_after_the_handshake_is_closed_at_once(
        make_daemon, tmp_path):
    """A pop3s client that ends the handshake and closes at once (mpop
    refusing the certificate's name, a TLS health check): the server's
    session tickets meet a closed socket in the loop turn that ends the
    handshake.  The session ends then ('reason=' logged), not at the
    autologout; a stop is not held up by it."""
    pd = Pop3Daemon(make_daemon, tmp_path, pop3s=True).start()
    for alert in (False, True):
        s = socket.create_connection(("127.0.0.1", pd.sport), timeout=10)
        t = tls_ctx().wrap_socket(s, server_hostname="localhost")
        if alert:               # a fatal alert (bad_certificate), as mpop sends
            os.write(t.fileno(), bytes([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x2a]))
        t.close()
    wait_for(lambda: pd.d.log_text().count("pop3: disconnect from 127.0.0.1 reason=") == 2,
             timeout=3, what="both sessions ended")
    t0 = time.time()
    pd.d.stop()
    assert time.time() - t0 < 5


def test_probe_100000_map_maildrops_reload_off_the_loop(make_daemon, tmp_path):
    """A large ISP's map: 100,000 maildrops rows.  They load at start;
    SIGHUP reloads them while a POP3 session goes on (its NOOPs never wait
    for the load); then a row added by the reload gets mail and a login,
    the first and the last row still log in, an unknown user gets 550."""
    import sqlite3
    from test_custmap import MAX_STALL
    path = str(tmp_path / "customers.sqlite")
    h = pw_hash("same-pw")
    n = 100000
    _map_with(path, (("u%06d@big.example" % i, h, "keep" if i % 2 else None, None, "10M")
                     for i in range(n)))
    pd = Pop3Daemon(make_daemon, tmp_path, drops='customer_map = "%s"\n' % path).start()
    d = pd.d
    # the domain maildrop of customer acme2, and the rows
    assert re.search(r"ready: .*\), %d maildrops \(%d from the map\)" % (n + 1, n),
                     d.log_text()), d.log_text()[-2000:]
    assert _smtp_rcpt(d, "u050000@big.example").startswith("250")
    assert _smtp_rcpt(d, "late@big.example").startswith("550 5.1.1")
    db = sqlite3.connect(path)
    with db:
        db.execute("INSERT INTO maildrops (address, password) VALUES (?, ?)",
                   ("late@big.example", pw_hash("late-pw")))
    db.close()
    p = pd.login("u000001@big.example", "same-pw")
    worst, count, stop, err = [0.0], [0], threading.Event(), []

    def noops():
        try:
            while not stop.is_set():
                t0 = time.monotonic()
                p.noop()
                worst[0] = max(worst[0], time.monotonic() - t0)
                count[0] += 1
                time.sleep(0.002)
        except Exception as e:              # reported below
            err.append(e)
    t = threading.Thread(target=noops)
    t.start()
    try:
        time.sleep(0.1)
        m = len(d.log_text())
        d.hup()
        d.wait_log(r"configuration reloaded", m, timeout=60)
        time.sleep(0.2)
    finally:
        stop.set()
        t.join(30)
    assert not err, err
    print("100,000-maildrop reload: %s; longest NOOP wait %.1f ms over %d NOOPs"
          % (re.search(r"configuration reloaded.*", d.log_text()[m:]).group(0),
             worst[0] * 1000, count[0]))
    assert re.search(r"configuration reloaded: .*\), %d maildrops \(%d from the map\);"
                     % (n + 2, n + 1), d.log_text()[m:]), d.log_text()[m:]
    assert count[0] > 10
    assert worst[0] < MAX_STALL, "a NOOP waited %.3f s during the reload" % worst[0]
    p.quit()
    assert _smtp_rcpt(d, "late@big.example").startswith("250"), "late row"
    assert _smtp_rcpt(d, "u099999@big.example").startswith("250")
    assert _smtp_rcpt(d, "nobody@big.example").startswith("550 5.1.1")
    d.send("late@big.example")
    wait_for(lambda: len(pd.files("late@big.example")) == 1, what="late's mail")
    for user, pw in (("late@big.example", "late-pw"), ("u000000@big.example", "same-pw"),
                     ("u099999@big.example", "same-pw")):
        q = pd.login(user, pw)
        q.quit()

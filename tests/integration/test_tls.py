"""STARTTLS (RFC 3207): smtplib, swaks, and the plaintext injection probe
(CVE-2011-0411 class)."""
import re
import ssl
import subprocess

import pytest

from conftest import Raw, code, message, queue, queued_id


def _ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


@pytest.fixture
def tls_daemon(make_daemon):
    return make_daemon(tls=True).start()


def test_ehlo_offers_starttls(tls_daemon):
    with tls_daemon.smtp() as s:
        s.ehlo("client.example")
        assert s.has_extn("starttls")
        for kw in ("pipelining", "size", "8bitmime", "enhancedstatuscodes"):
            assert s.has_extn(kw), kw


def test_smtplib_starttls(tls_daemon):
    with tls_daemon.smtp() as s:
        s.ehlo("client.example")
        c, msg = s.starttls(context=_ctx())
        assert c == 220, msg
        assert s.sock.version() is not None           # really TLS now
        s.ehlo("client.example")
        assert not s.has_extn("starttls")
        assert s.has_extn("pipelining")
        s.mail("alice@sender.example")
        assert s.rcpt("bob@acme.example")[0] == 250
        c, msg = s.data(message(subject="over tls"))
        assert c == 250
        qid = queued_id("250 " + msg.decode())
    assert [m["queue_id"] for m in queue(tls_daemon)] == [qid]
    hdrs = tls_daemon.kickq("show", qid).stdout
    assert re.search(r"with ESMTPS id %s" % qid, hdrs), hdrs


def test_swaks_tls(tls_daemon):
    r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(tls_daemon.port),
                        "--tls", "--helo", "swaks.example", "--from", "carol@sender.example",
                        "--to", "bob@acme.example", "--timeout", "20"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "TLS started" in r.stdout, r.stdout
    m = re.search(r"<[~-]\s+250 2\.0\.0 Ok: queued as ([A-Z0-9]+)", r.stdout)
    assert m, r.stdout
    assert [x["queue_id"] for x in queue(tls_daemon)] == [m.group(1)]


def test_starttls_injection_is_discarded(tls_daemon):
    c = Raw(tls_daemon.port)
    try:
        c.greet()
        c.send("STARTTLS\r\nRSET\r\n")
        r = c.reply()
        assert r.startswith("220"), r
        # no byte of a reply to the RSET may come in plaintext
        assert c.buf == b"", c.buf
        tls = _ctx().wrap_socket(c.sock, server_hostname="localhost")
        c.sock, c.buf = tls, b""
        c.send("NOOP\r\n")
        r = c.reply()
        # the first reply after the handshake is the NOOP's, not the RSET's
        assert r.startswith("250 2.0.0"), r
        c.send("NOOP\r\n")
        assert c.reply().startswith("250 2.0.0")
        assert c.buf == b"", "extra reply: %r" % c.buf
        # the session was reset: MAIL needs a new EHLO
        r = c.cmd("MAIL FROM:<alice@sender.example>")
        assert r.startswith("503"), r
        ehlo = c.cmd("EHLO client.example")
        assert code(ehlo) == 250
        assert "STARTTLS" not in ehlo, ehlo
        assert code(c.cmd("MAIL FROM:<alice@sender.example>")) == 250
    finally:
        c.close()
    tls_daemon.wait_log(r"discarded")


def test_starttls_injection_of_a_whole_transaction(tls_daemon):
    """Pipelined plaintext MAIL/RCPT/DATA after STARTTLS never makes a message."""
    c = Raw(tls_daemon.port)
    try:
        c.greet()
        c.send("STARTTLS\r\nMAIL FROM:<evil@x.example>\r\nRCPT TO:<bob@acme.example>\r\n"
               "DATA\r\nSubject: injected\r\n\r\nx\r\n.\r\n")
        assert c.reply().startswith("220")
        tls = _ctx().wrap_socket(c.sock, server_hostname="localhost")
        c.sock, c.buf = tls, b""
        assert code(c.cmd("EHLO client.example")) == 250
        r = c.cmd("RCPT TO:<bob@acme.example>")
        assert r.startswith("503"), r            # no MAIL survived the switch
        assert code(c.cmd("QUIT")) == 221
    finally:
        c.close()
    assert queue(tls_daemon) == []


def test_starttls_refused_inside_a_transaction(tls_daemon):
    """After MAIL, STARTTLS gets 503 (as Postfix) and the transaction stays;
    after RSET it is allowed, and the handshake starts afresh: no MAIL
    survives it."""
    c = Raw(tls_daemon.port)
    try:
        c.greet()
        assert code(c.cmd("MAIL FROM:<alice@sender.example>")) == 250
        r = c.cmd("STARTTLS")
        assert r == "503 5.5.1 Error: MAIL transaction in progress", r
        assert code(c.cmd("RCPT TO:<bob@acme.example>")) == 250   # still in it
        r = c.cmd("STARTTLS")
        assert r.startswith("503 5.5.1"), r
        assert code(c.cmd("RSET")) == 250
        assert c.cmd("STARTTLS").startswith("220")
        tls = _ctx().wrap_socket(c.sock, server_hostname="localhost")
        c.sock, c.buf = tls, b""
        assert code(c.cmd("EHLO client.example")) == 250
        r = c.cmd("RCPT TO:<bob@acme.example>")
        assert r.startswith("503"), r            # need MAIL again
        r = c.cmd("STARTTLS")
        assert r[:1] == "5", r            # not twice
    finally:
        c.close()
    assert queue(tls_daemon) == []


def test_starttls_with_argument_refused(tls_daemon):
    with Raw(tls_daemon.port) as c:
        c.greet()
        r = c.cmd("STARTTLS now")
        assert r.startswith("501"), r
        assert code(c.cmd("NOOP")) == 250       # still plaintext, still working


def test_failed_handshake_does_not_kill_the_daemon(tls_daemon):
    with Raw(tls_daemon.port) as c:
        c.greet()
        assert c.cmd("STARTTLS").startswith("220")
        c.send(b"this is not a TLS client hello\r\n" * 10)
        assert c.is_closed(timeout=10)
    qid = tls_daemon.send("bob@acme.example")
    assert [m["queue_id"] for m in queue(tls_daemon)] == [qid]


def test_openssl_s_client_starttls(tls_daemon):
    r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % tls_daemon.port,
                        "-starttls", "smtp", "-quiet"],
                       input="EHLO client.example\r\nQUIT\r\n", capture_output=True,
                       text=True, timeout=30)
    assert "250-PIPELINING" in r.stdout, r.stdout + r.stderr
    assert "STARTTLS" not in r.stdout, r.stdout
    assert "221" in r.stdout, r.stdout


def test_probe_starttls_handshake_never_finished_is_bounded(make_daemon):
    """A client that says STARTTLS and then sends nothing (or half a
    ClientHello) is cut off at the smtp timeout; the handshake is not
    waited for forever."""
    import time
    d = make_daemon(tls=True, smtp_opts="timeout = 2").start()
    socks = []
    for first in (b"", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"):
        c = Raw(d.port)
        c.greet()
        assert code(c.cmd("STARTTLS")) == 220
        c.send(first)
        socks.append(c)
    t0 = time.time()
    for c in socks:
        assert c.is_closed(timeout=max(0.1, t0 + 6 - time.time())), time.time() - t0
        c.close()
    d.wait_log(r"TLS handshake timed out")

"""Delivery TLS policy (issue 13): per customer tls = none | may | encrypt |
verify (tls_ca, tls_name), the tls section's protocols for the delivery
client, and the TLS contexts reloaded on SIGHUP without dropping sessions.
The customer's server is conftest's aiosmtpd MTA at 127.0.0.23 (STARTTLS
with a self-signed certificate for mail.acme.example, made by
scripts/gen-test-cert); a policy that fails keeps the mail (deferred, the
reason in kickq list), never bounces it."""
import os
import re
import smtplib
import subprocess
import time

from conftest import (MTA_HOST, ROOT, customer_conf, queue, starttls_unverified, status_of,
                      wait_for)

ACME = "bob@acme.example"
SENDER = "a@sender.example"


def conf(mta_port, **acme):
    a = dict(port=mta_port, retry_min="1s", retry_max="2s")
    a.update(acme)
    return customer_conf("acme", ["acme.example"], **a)


def mta_cert(mta):
    return os.path.join(mta.tmp, "mta-tls", "cert.pem")


def send(d, subject):
    body = "From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\n\r\nhello\r\n" % (SENDER, ACME, subject)
    return d.send(ACME, body=body, sender=SENDER)


def link_up(d):
    d.kickq("link", "up", "acme", MTA_HOST)


def wait_deferred(d, qid, pattern):
    """Waits until the recipient is deferred with a reason matching pattern;
    the (status, reason)."""
    def ok():
        st = status_of(d, qid)
        r = st and st.get(ACME)
        return r and r[0] == "deferred" and r[1] and re.search(pattern, r[1]) and r
    return wait_for(ok, timeout=10, what="%s deferred with %r (now %r)" % (
        qid, pattern, status_of(d, qid)))


def wait_gone(d, qid):
    wait_for(lambda: status_of(d, qid) is None, timeout=10,
             what="%s delivered (now %r)" % (qid, status_of(d, qid)))


def kept(d, mta, qid, pattern):
    """The policy failed: the mail is deferred with the reason, shown by
    kickq list, logged, nothing reached the MTA, nothing bounced."""
    st = wait_deferred(d, qid, pattern)
    assert re.search(pattern, d.kickq("list").stdout), d.kickq("list").stdout
    d.wait_log(r"delivery to %s:\d+ failed: .*%s" % (re.escape(MTA_HOST), pattern))
    assert mta.messages == []
    assert not any(c[0] == "MAIL" for c in mta.commands)
    assert len(queue(d)) == 1           # no DSN queued
    return st


# ---- per customer policy ----

def test_verify_against_a_self_signed_certificate_keeps_the_mail(make_daemon, make_mta):
    mta = make_mta(tls=True)
    d = make_daemon(customers=conf(mta.port, tls="verify",
                                   tls_name="mail.acme.example")).start()
    qid = send(d, "verify me")
    link_up(d)
    kept(d, mta, qid, r"Server certificate not verified: self-signed certificate")


def test_verify_with_tls_ca_and_tls_name_delivers(make_daemon, make_mta):
    mta = make_mta(tls=True)
    d = make_daemon(customers=conf(mta.port, tls="verify", tls_ca=mta_cert(mta),
                                   tls_name="mail.acme.example")).start()
    qid = send(d, "verified")
    link_up(d)
    mta.wait_messages(1)
    wait_gone(d, qid)
    assert mta.messages[0].tls
    assert mta.messages[0].header("Subject") == "verified"


def test_verify_with_a_wrong_tls_name_keeps_the_mail(make_daemon, make_mta):
    mta = make_mta(tls=True)
    d = make_daemon(customers=conf(mta.port, tls="verify", tls_ca=mta_cert(mta),
                                   tls_name="other.acme.example")).start()
    qid = send(d, "wrong name")
    link_up(d)
    kept(d, mta, qid, r"Server certificate not verified: [Hh]ostname mismatch")


def test_verify_a_link_address_needs_tls_name(make_daemon, make_mta):
    # the certificate has IP:127.0.0.1 and DNS:mail.acme.example; a link's
    # address is never taken as the certificate's name
    mta = make_mta(tls=True)
    d = make_daemon(customers=conf(mta.port, tls="verify", tls_ca=mta_cert(mta))).start()
    qid = send(d, "no name")
    link_up(d)
    kept(d, mta, qid, r"Server certificate not verified: no name to check \(the host "
                      r"is the address 127\.0\.0\.23: set tls_name\)")


def test_encrypt_without_starttls_keeps_the_mail(make_daemon, mta):
    d = make_daemon(customers=conf(mta.port, tls="encrypt")).start()
    qid = send(d, "needs tls")
    link_up(d)
    kept(d, mta, qid, r"TLS is required, but was not offered by host "
                      r"127\.0\.0\.23\[127\.0\.0\.23\]")


def test_verify_without_starttls_keeps_the_mail(make_daemon, mta):
    d = make_daemon(customers=conf(mta.port, tls="verify",
                                   tls_name="mail.acme.example")).start()
    qid = send(d, "needs verified tls")
    link_up(d)
    kept(d, mta, qid, r"TLS is required, but was not offered by host")


def test_may_without_starttls_delivers_in_cleartext(make_daemon, mta):
    d = make_daemon(customers=conf(mta.port, tls="may")).start()
    qid = send(d, "cleartext")
    link_up(d)
    mta.wait_messages(1)
    wait_gone(d, qid)
    assert not mta.messages[0].tls


def test_none_sends_no_starttls_even_if_offered(make_daemon, make_mta):
    mta = make_mta(tls=True)
    d = make_daemon(customers=conf(mta.port, tls="none")).start()
    qid = send(d, "plain on purpose")
    link_up(d)
    mta.wait_messages(1)
    wait_gone(d, qid)
    assert not mta.messages[0].tls


# ---- the tls section: protocols ----

def test_protocols_tls13_only_against_a_tls12_server_keeps_the_mail(make_daemon, make_mta):
    mta = make_mta(tls="tls12")
    d = make_daemon(customers=conf(mta.port, tls="encrypt"),
                    extra='tls {\n  protocols = "TLSv1.3"\n}\n').start()
    qid = send(d, "tls 1.3 only")
    link_up(d)
    kept(d, mta, qid, r"TLS handshake with 127\.0\.0\.23\[127\.0\.0\.23\] failed")


def test_protocols_default_delivers_to_a_tls12_server(make_daemon, make_mta):
    mta = make_mta(tls="tls12")
    d = make_daemon(customers=conf(mta.port, tls="encrypt")).start()
    qid = send(d, "tls 1.2")
    link_up(d)
    mta.wait_messages(1)
    wait_gone(d, qid)
    assert mta.messages[0].tls


def test_bad_protocols_and_unreadable_tls_ca_are_config_errors(make_daemon, tmp_path):
    from conftest import KICKMAILD
    d = make_daemon(extra='tls {\n  protocols = ">=TLSv1.3 <=TLSv1.2"\n}\n')
    r = subprocess.run([KICKMAILD, "-n", "-c", d.conf], capture_output=True, text=True)
    assert r.returncode != 0
    assert "protocols: TLSv1.3 is above TLSv1.2: no protocol left" in r.stderr, r.stderr
    d.extra = ""
    d.customers = conf(2525, tls="verify", tls_ca=str(tmp_path / "missing.pem"))
    d.write_conf()
    r = subprocess.run([KICKMAILD, "-n", "-c", d.conf], capture_output=True, text=True)
    assert r.returncode != 0
    assert re.search(r"cannot read tls_ca '.*missing\.pem'", r.stderr), r.stderr


def test_reload_with_an_unreadable_tls_ca_keeps_the_old_configuration(make_daemon, make_mta,
                                                                       tmp_path):
    mta = make_mta(tls=True)
    ca = str(tmp_path / "ca.pem")
    with open(mta_cert(mta)) as f, open(ca, "w") as g:
        g.write(f.read())
    d = make_daemon(customers=conf(mta.port, tls="verify", tls_ca=ca,
                                   tls_name="mail.acme.example")).start()
    # a file that exists but holds no certificate: read at load, refused
    with open(ca, "w") as g:
        g.write("not a certificate\n")
    off = len(d.log_text())
    d.hup()
    d.wait_log(r"reload failed, keeping the old configuration: customer 'acme': "
               r"tls_ca .*ca\.pem", start=off)
    qid = send(d, "old context")         # the old context (with the good CA) serves
    link_up(d)
    mta.wait_messages(1)
    wait_gone(d, qid)
    assert mta.messages[0].tls


# ---- SIGHUP: the listeners' certificate ----

def fingerprint(pem_path=None, pem=None):
    args = ["openssl", "x509", "-noout", "-fingerprint", "-sha256"]
    if pem_path:
        args += ["-in", pem_path]
    r = subprocess.run(args, input=pem, capture_output=True, text=True, check=True)
    return r.stdout.strip().split("=", 1)[1]


def served_fingerprint(port):
    r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                        "-starttls", "smtp", "-showcerts"], input="QUIT\r\n",
                       capture_output=True, text=True, timeout=30)
    m = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n",
                  r.stdout, re.S)
    assert m, r.stdout + r.stderr
    return fingerprint(pem=m.group(0))


def new_cert(d, cn):
    """A new certificate and key in place of the daemon's (written whole)."""
    tmp = os.path.join(d.tmp, "tls-new")
    subprocess.run([os.path.join(ROOT, "scripts", "gen-test-cert"), tmp, cn], check=True)
    for name in ("key.pem", "cert.pem"):
        os.replace(os.path.join(tmp, name), os.path.join(d.tmp, "tls", name))
    return os.path.join(d.tmp, "tls", "cert.pem")


def test_sighup_new_certificate_keeps_open_sessions(make_daemon):
    d = make_daemon(tls=True).start()
    old_fp = fingerprint(os.path.join(d.tmp, "tls", "cert.pem"))
    assert served_fingerprint(d.port) == old_fp
    s = smtplib.SMTP("127.0.0.1", d.port, timeout=10)
    s.ehlo("client.example")
    starttls_unverified(s)
    cert = new_cert(d, "new.test.example")
    new_fp = fingerprint(cert)
    assert new_fp != old_fp
    off = len(d.log_text())
    d.hup()
    d.wait_log(r"configuration reloaded", start=off)
    # the session opened before the reload goes on under its old TLS
    s.mail(SENDER)
    code, msg = s.rcpt("x@acme.example")
    assert code == 250, msg
    code, msg = s.data("Subject: across the reload\r\n\r\nhello\r\n")
    assert code == 250, msg
    s.quit()
    # a new session gets the new certificate
    assert served_fingerprint(d.port) == new_fp


def test_sighup_broken_certificate_keeps_the_old_one(make_daemon):
    d = make_daemon(tls=True).start()
    cert = os.path.join(d.tmp, "tls", "cert.pem")
    old_fp = fingerprint(cert)
    with open(cert, "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n")
    off = len(d.log_text())
    d.hup()
    d.wait_log(r"reload failed, keeping the old configuration: .*cert\.pem", start=off)
    assert served_fingerprint(d.port) == old_fp


def test_bad_ciphers_stop_the_start(make_daemon):
    from conftest import KICKMAILD
    d = make_daemon(extra='tls {\n  ciphers = "NO-SUCH-CIPHER"\n}\n')
    r = subprocess.run([KICKMAILD, "-f", "-c", d.conf], capture_output=True, text=True,
                       timeout=30, stdin=subprocess.DEVNULL)
    assert r.returncode != 0
    assert 'ciphers "NO-SUCH-CIPHER"' in r.stdout + r.stderr, r.stdout + r.stderr


def test_ciphers_restrict_deliveries(make_daemon, make_mta):
    # a TLS 1.2 sink and a client allowing only a cipher its RSA key cannot
    # use: no handshake, the mail stays; then a usable cipher: delivered
    mta = make_mta(tls="tls12")
    d = make_daemon(customers=conf(mta.port, tls="encrypt"),
                    extra='tls {\n  ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256"\n}\n').start()
    qid = send(d, "cipher")
    link_up(d)
    kept(d, mta, qid, r"TLS handshake with 127\.0\.0\.23\[127\.0\.0\.23\] failed")
    d.extra = 'tls {\n  ciphers = "ECDHE-RSA-AES128-GCM-SHA256"\n}\n'
    d.write_conf()
    off = len(d.log_text())
    d.hup()
    d.wait_log(r"configuration reloaded", start=off)
    d.kickq("kick", "acme")
    mta.wait_messages(1)
    wait_gone(d, qid)
    assert mta.messages[0].tls


def test_protocols_apply_to_the_listeners(make_daemon):
    d = make_daemon(tls=True)
    d.write_conf(d.conf_text().replace("tls {\n", 'tls {\n  protocols = "TLSv1.3"\n', 1))
    d.start()

    def s_client(version):
        return subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % d.port,
                               "-starttls", "smtp", version], input="QUIT\r\n",
                              capture_output=True, text=True, timeout=30)
    r = s_client("-tls1_2")
    assert "BEGIN CERTIFICATE" not in r.stdout and "Cipher is (NONE)" in r.stdout, r.stdout
    r = s_client("-tls1_3")
    assert "Protocol  : TLSv1.3" in r.stdout or "TLSv1.3" in r.stdout, r.stdout


# ---- probes ----

class Refuses454:
    """A customer's server that offers STARTTLS and answers it 454, then
    would take mail in cleartext: records every command."""

    def __init__(self):
        import socket
        import threading
        self.sock = socket.socket()
        self.sock.bind((MTA_HOST, 0))
        self.sock.listen(5)
        self.port = self.sock.getsockname()[1]
        self.commands = []
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            f = c.makefile("rb")
            c.sendall(b"220 mail.acme.example ESMTP\r\n")
            for line in f:
                cmd = line.decode("latin-1").strip()
                self.commands.append(cmd)
                v = cmd.split(" ")[0].upper()
                if v == "EHLO":
                    c.sendall(b"250-mail.acme.example\r\n250 STARTTLS\r\n")
                elif v == "STARTTLS":
                    c.sendall(b"454 4.7.0 TLS not available due to local problem\r\n")
                elif v == "QUIT":
                    c.sendall(b"221 bye\r\n")
                    break
                elif v == "DATA":
                    c.sendall(b"354 go\r\n")
                    for l2 in f:
                        if l2 == b".\r\n":
                            break
                    c.sendall(b"250 ok\r\n")
                else:
                    c.sendall(b"250 ok\r\n")
            c.close()

    def close(self):
        self.sock.close()


def test_encrypt_when_starttls_gets_454_keeps_the_mail(make_daemon):
    srv = Refuses454()
    try:
        d = make_daemon(customers=conf(srv.port, tls="encrypt")).start()
        qid = send(d, "454")
        link_up(d)
        st = wait_deferred(d, qid, r"STARTTLS|TLS")
        assert "454" in st[1], st
        assert not any(c.upper().startswith("MAIL") for c in srv.commands), srv.commands
        assert len(queue(d)) == 1
    finally:
        srv.close()


def test_verify_tls_name_in_capitals_and_with_a_trailing_dot(make_daemon, make_mta):
    """The name check ignores case (RFC 6125); a trailing dot in tls_name is
    a configuration error at start, not a name that never matches."""
    mta = make_mta(tls=True)
    d = make_daemon(customers=conf(mta.port, tls="verify", tls_ca=mta_cert(mta),
                                   tls_name="MAIL.Acme.EXAMPLE")).start()
    qid = send(d, "capitals")
    link_up(d)
    mta.wait_messages(1)
    wait_gone(d, qid)
    assert mta.messages[0].tls
    from conftest import KICKMAILD
    d.customers = conf(mta.port, tls="verify", tls_name="mail.acme.example.")
    d.write_conf()
    r = subprocess.run([KICKMAILD, "-n", "-c", d.conf], capture_output=True, text=True)
    assert r.returncode != 0
    assert "bad tls_name 'mail.acme.example.': empty label" in r.stderr, r.stderr


def test_protocols_forms(make_daemon):
    """protocols: a single version, a range, blanks and commas; another
    spelling (lower case, SSLv3, TLSv1.4) or an empty bound is a config
    error naming protocols."""
    from conftest import KICKMAILD
    d = make_daemon()
    for value, ok in ((">=TLSv1.2", True), ("TLSv1.3", True), (">=TLSv1.2 <=TLSv1.3", True),
                      ("tlsv1.3", False), (" TLSv1.3 ", True), (">=TLSv1.2,<=TLSv1.3", True), ("TLSv1.4", False), ("", False), (">=", False),
                      ("SSLv3", False)):
        d.extra = 'tls {\n  protocols = "%s"\n}\n' % value
        d.write_conf()
        r = subprocess.run([KICKMAILD, "-n", "-c", d.conf], capture_output=True, text=True)
        if ok is not None:
            assert (r.returncode == 0) == ok, (value, r.stderr)
        if r.returncode:
            assert "protocols" in r.stderr, (value, r.stderr)


def test_tls_ca_replaced_then_sighup_is_used(make_daemon, make_mta, tmp_path):
    """The operator fixes a wrong tls_ca file in place and sends SIGHUP: the
    kept mail goes out on the next kick, verified against the new file (not
    a copy cached under the same path)."""
    mta = make_mta(tls=True)
    other = str(tmp_path / "other")
    subprocess.run([os.path.join(ROOT, "scripts", "gen-test-cert"), other,
                    "mail.acme.example"], check=True, capture_output=True)
    ca = str(tmp_path / "ca.pem")
    with open(os.path.join(other, "cert.pem")) as f, open(ca, "w") as g:
        g.write(f.read())
    d = make_daemon(customers=conf(mta.port, tls="verify", tls_ca=ca,
                                   tls_name="mail.acme.example")).start()
    qid = send(d, "fixed ca")
    link_up(d)
    kept(d, mta, qid, r"Server certificate not verified")
    with open(mta_cert(mta)) as f, open(ca + ".new", "w") as g:
        g.write(f.read())
    os.replace(ca + ".new", ca)
    off = len(d.log_text())
    d.hup()
    d.wait_log(r"reload", start=off)
    time.sleep(0.3)
    d.kickq("kick", "acme")
    mta.wait_messages(1)
    wait_gone(d, qid)
    assert mta.messages[0].tls


def test_may_when_starttls_gets_454_delivers_in_cleartext(make_daemon):
    """Opportunistic TLS (may) against a server that offers STARTTLS but
    answers it 454: the mail goes in cleartext (as Postfix's "may"), it is
    not kept forever."""
    srv = Refuses454()
    try:
        d = make_daemon(customers=conf(srv.port, tls="may")).start()
        qid = send(d, "454 may")
        link_up(d)
        wait_gone(d, qid)
        assert any(c.upper().startswith("MAIL") for c in srv.commands), srv.commands
    finally:
        srv.close()

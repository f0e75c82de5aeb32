"""SMTP AUTH (RFC 4954) and the submission (587) and smtps (465) listeners:
swaks (--tls, --tlsc, --auth PLAIN|LOGIN|CRAM-MD5), smtplib login,
openssl s_client on smtps; cleartext AUTH refused; failures delayed and the
fifth of a session answered with 421; the per-address limit across
sessions; sender mismatch (553 5.7.1); authenticated relay to an outside
domain queued as outbound; MAIL before AUTH on submission (530 5.7.0); no
AUTH on port 25 unless its listener says `auth = true`."""
import base64
import hmac
import os
import smtplib
import socket
import ssl
import subprocess
import time

import pytest

from conftest import DEFAULT_CUSTOMERS, Raw, free_port, wait_for

# the dev.conf hash of the password "alice"
ALICE_HASH = ("$6$kickmaildev$jb4n5zLcivFHyqMpsGeAZDS7k7hYnUapJD68cVfLXdCWKCrPTW1bdoE6"
              "Usa0ZbchbLqYetzbwaeuib9UTTfHj0")

CUSTOMERS = DEFAULT_CUSTOMERS.replace(
    'customer "acme" {\n', 'customer "acme" {\n  secret = \'s3cret\'\n') + """
maildrop "alice@isp.example" {
  password = '%s'
}
""" % ALICE_HASH


def b64(s):
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


def plain(user, password):
    return b64("\0%s\0%s" % (user, password))


def ssl_ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def make_auth_daemon(make_daemon, smtp_opts="", submission_opts="", auth=None):
    d = make_daemon(tls=True, customers=CUSTOMERS, smtp_opts=smtp_opts)
    d.sub_port = free_port()
    d.smtps_port = free_port()
    d.extra = """
submission { listen = {"127.0.0.1:%d"} %s }
smtps { listen = {"127.0.0.1:%d"} }
auth { %s }
""" % (d.sub_port, submission_opts, d.smtps_port,
       auth or "failure_delay = 1 failure_delay_max = 1")
    d.write_conf()
    return d.start()


@pytest.fixture
def authd(make_daemon):
    return make_auth_daemon(make_daemon)


def swaks(port, *args):
    r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(port),
                        "--helo", "client.example", "--timeout", "20"] + list(args),
                       capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout + r.stderr


def submit_conn(d):
    """A submission session after STARTTLS and EHLO."""
    s = smtplib.SMTP("127.0.0.1", d.sub_port, timeout=20)
    s.ehlo("client.example")
    s.starttls(context=ssl_ctx())
    s.ehlo("client.example")
    return s


# ---- the mechanisms, by real clients ----

@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_swaks_submission_each_mechanism(authd, mech):
    rc, out = swaks(authd.sub_port, "--tls", "--auth", mech, "--auth-user", "acme",
                    "--auth-password", "s3cret", "--from", "bob@acme.example",
                    "--to", "bob@beta.example")
    assert rc == 0, out
    assert "235 2.7.0 Authentication successful" in out
    assert "queued as" in out
    authd.wait_log(r"client=127\.0\.0\.1, sasl_method=%s, sasl_username=acme, "
                   r"from=<bob@acme\.example>" % mech)
    assert "s3cret" not in authd.log_text()


def test_swaks_smtps_tlsc(authd):
    rc, out = swaks(authd.smtps_port, "--tlsc", "--auth", "LOGIN", "--auth-user",
                    "alice@isp.example", "--auth-password", "alice",
                    "--from", "alice@isp.example", "--to", "someone@outside.example")
    assert rc == 0, out
    assert "queued as" in out
    authd.wait_log(r"sasl_method=LOGIN, sasl_username=alice@isp\.example")


def test_smtplib_login_and_relay_outbound(authd):
    s = submit_conn(authd)
    assert "PLAIN" in s.esmtp_features["auth"] and "CRAM-MD5" in s.esmtp_features["auth"]
    s.login("acme", "s3cret")                       # smtplib picks CRAM-MD5 first
    refused = s.sendmail("bob@acme.co.uk", ["x@outside.example", "bob@acme.example"],
                         b"Subject: out\r\n\r\nhello\r\n")
    assert refused == {}
    s.quit()
    lines = [l for l in authd.kickq("list", "--json").stdout.splitlines() if l.strip()]
    import json
    msg = json.loads(lines[0])
    custs = {r["address"]: r["customer"] for r in msg["recipients"]}
    assert custs == {"x@outside.example": None, "bob@acme.example": "acme"}
    summary = authd.kickq("summary").stdout
    assert "(outbound)" in summary and "acme" in summary


def test_smtps_openssl_s_client(authd):
    """Implicit TLS from the first byte: s_client sees the greeting, EHLO
    lists AUTH (no STARTTLS), and AUTH PLAIN with an initial response works."""
    script = "EHLO client.example\r\nAUTH PLAIN %s\r\nQUIT\r\n" % plain("acme", "s3cret")
    r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % authd.smtps_port,
                        "-quiet", "-crlf", "-ign_eof"], input=script.replace("\r\n", "\n"),
                       capture_output=True, text=True, timeout=30)
    out = r.stdout
    assert "220 mx.test.example ESMTP" in out, r.stdout + r.stderr
    assert "250-AUTH PLAIN LOGIN CRAM-MD5" in out
    assert "STARTTLS" not in out
    assert "235 2.7.0" in out
    assert "221 2.0.0" in out


def test_smtps_client_gone_right_after_the_handshake_is_closed_at_once(authd):
    """An smtps client that ends the handshake and closes at once (a TLS
    health check, a client refusing the certificate): the 220 greeting can
    never go out, so the session ends then ('disconnect from' logged), not
    at the smtp timeout; a stop is not held up by it."""
    for alert in (False, True):
        s = socket.create_connection(("127.0.0.1", authd.smtps_port), timeout=10)
        t = ssl_ctx().wrap_socket(s, server_hostname="localhost")
        if alert:               # a fatal alert (bad_certificate)
            os.write(t.fileno(), bytes([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x2a]))
        t.close()
    wait_for(lambda: authd.log_text().count("disconnect from 127.0.0.1") == 2,
             timeout=3, what="both sessions ended")
    t0 = time.time()
    authd.stop()
    assert time.time() - t0 < 5


def test_smtps_smtplib(authd):
    s = smtplib.SMTP_SSL("127.0.0.1", authd.smtps_port, timeout=20, context=ssl_ctx())
    s.ehlo("client.example")
    code_, _ = s.docmd("MAIL FROM:<bob@acme.example>")
    assert code_ == 530                              # AUTH required on smtps too
    s.user, s.password = "acme", "s3cret"
    s.auth("PLAIN", s.auth_plain)
    assert s.sendmail("bob@acme.example", ["a@outside.example"], b"\r\nx\r\n") == {}
    s.quit()


# ---- what is refused ----

def test_submission_requires_tls_then_auth(authd):
    with Raw(authd.sub_port) as c:
        ehlo = c.greet()
        assert "STARTTLS" in ehlo and "AUTH" not in ehlo     # not offered before TLS
        r = c.cmd("AUTH PLAIN " + plain("acme", "s3cret"))
        assert r.startswith("538 5.7.11"), r
        r = c.cmd("MAIL FROM:<bob@acme.example>")
        assert r.startswith("530 5.7.0"), r
    s = submit_conn(authd)
    code_, msg = s.docmd("MAIL FROM:<bob@acme.example>")
    assert code_ == 530 and b"5.7.0 Authentication required" in msg
    s.quit()


def test_auth_cleartext_listener_option(make_daemon):
    d = make_auth_daemon(make_daemon, submission_opts="auth_cleartext = true")
    with Raw(d.sub_port) as c:
        assert "AUTH PLAIN LOGIN CRAM-MD5" in c.greet()
        assert c.cmd("AUTH PLAIN " + plain("acme", "s3cret")).startswith("235 2.7.0")
        assert c.cmd("MAIL FROM:<bob@acme.example>").startswith("250")


def test_port25_no_auth_by_default(authd):
    s = smtplib.SMTP("127.0.0.1", authd.port, timeout=20)
    s.ehlo("client.example")
    s.starttls(context=ssl_ctx())
    s.ehlo("client.example")
    assert not s.has_extn("auth")
    code_, msg = s.docmd("AUTH", "PLAIN " + plain("acme", "s3cret"))
    assert code_ == 503, msg
    s.docmd("MAIL FROM:<bob@acme.example>")
    code_, msg = s.docmd("RCPT TO:<x@outside.example>")
    assert code_ == 550 and b"Relay access denied" in msg
    s.quit()


def test_port25_auth_option(make_daemon):
    d = make_auth_daemon(make_daemon, smtp_opts="auth = true")
    with Raw(d.port) as c:
        assert "AUTH" not in c.greet()                  # only after TLS
    s = smtplib.SMTP("127.0.0.1", d.port, timeout=20)
    s.ehlo("client.example")
    s.starttls(context=ssl_ctx())
    s.ehlo("client.example")
    assert s.has_extn("auth")
    code_, _ = s.docmd("MAIL FROM:<x@sender.example>")
    assert code_ == 250                                 # port 25 does not require AUTH
    code_, msg = s.docmd("RCPT TO:<x@outside.example>")
    assert code_ == 550
    s.rset()
    s.login("acme", "s3cret")
    assert s.sendmail("bob@acme.example", ["x@outside.example"], b"\r\nx\r\n") == {}
    s.quit()


def test_sender_mismatch(authd):
    s = submit_conn(authd)
    s.user, s.password = "acme", "s3cret"
    s.auth("PLAIN", s.auth_plain)
    code_, msg = s.docmd("MAIL FROM:<bob@beta.example>")
    assert code_ == 553 and msg.startswith(b"5.7.1 <bob@beta.example>: Sender address "
                                           b"rejected: not owned by user acme"), msg
    code_, _ = s.docmd("MAIL FROM:<Bob@ACME.co.uk>")
    assert code_ == 250
    s.quit()
    s = submit_conn(authd)
    s.user, s.password = "alice@isp.example", "alice"
    s.auth("LOGIN", s.auth_login)
    assert s.docmd("MAIL FROM:<bob@isp.example>")[0] == 553
    assert s.docmd("MAIL FROM:<alice@isp.example>")[0] == 250
    s.quit()


def test_malformed_and_cancelled(authd):
    s = submit_conn(authd)
    assert s.docmd("AUTH", "DIGEST-MD5")[0] == 504
    assert s.docmd("AUTH")[0] == 501
    assert s.docmd("AUTH", "PLAIN")[0] == 334
    assert s.docmd("*")[0] == 501                       # cancelled
    assert s.docmd("AUTH", "PLAIN not-base64!")[0] == 501
    # CR, LF and NUL inside decoded credentials
    assert s.docmd("AUTH", "PLAIN " + b64("\0acme\0s3c\r\nret"))[0] == 501
    assert s.docmd("AUTH", "LOGIN " + b64("ac\0me"))[0] == 501
    assert s.docmd("AUTH", "LOGIN " + b64("acme"))[0] == 334
    assert s.docmd(b64("s3c\nret"))[0] == 501
    assert s.docmd("AUTH", "CRAM-MD5 " + b64("acme 0123"))[0] == 501
    # none of these was a failed password: the session still works
    assert s.docmd("AUTH", "PLAIN " + plain("acme", "s3cret"))[0] == 235
    assert s.docmd("AUTH", "PLAIN " + plain("acme", "s3cret"))[0] == 503
    s.quit()


def test_cram_md5_by_hand_and_maildrop_refused(authd):
    s = submit_conn(authd)
    code_, chal = s.docmd("AUTH", "CRAM-MD5")
    assert code_ == 334
    text = base64.b64decode(chal)
    assert text.startswith(b"<") and text.endswith(b"@mx.test.example>")
    digest = hmac.new(b"s3cret", text, "md5").hexdigest()
    assert s.docmd(b64("acme " + digest))[0] == 235
    s.quit()
    s = submit_conn(authd)          # a maildrop has only a hash: no CRAM-MD5
    code_, chal = s.docmd("AUTH", "CRAM-MD5")
    digest = hmac.new(b"alice", base64.b64decode(chal), "md5").hexdigest()
    assert s.docmd(b64("alice@isp.example " + digest))[0] == 535
    s.quit()


# ---- brute force ----

def test_failures_delayed_then_421(authd):
    s = submit_conn(authd)
    start = len(authd.log_text())
    replies, times = [], []
    for i in range(5):
        t0 = time.monotonic()
        try:
            replies.append(s.docmd("AUTH", "PLAIN " + plain("acme", "guess%d" % i)))
        except smtplib.SMTPServerDisconnected:
            replies.append((0, b""))
        times.append(time.monotonic() - t0)
    assert [r[0] for r in replies] == [535, 535, 535, 535, 421], replies
    assert replies[0][1].startswith(b"5.7.8 Error: authentication failed")
    assert min(times) >= 0.9, times                     # failure_delay = 1
    with pytest.raises(smtplib.SMTPServerDisconnected):
        s.docmd("NOOP")
    log = authd.log_text()[start:]
    assert log.count("SASL PLAIN authentication failed") == 5
    assert "unknown[127.0.0.1]" in log
    assert "guess" not in log


def test_unknown_user_same_reply_as_wrong_password(authd):
    s = submit_conn(authd)
    a = s.docmd("AUTH", "PLAIN " + plain("nobody", "x"))
    b = s.docmd("AUTH", "PLAIN " + plain("alice@isp.example", "wrong"))
    assert a == b and a[0] == 535
    s.quit()


def test_per_address_limit_across_sessions(make_daemon):
    d = make_auth_daemon(make_daemon, auth="failure_delay = 0 max_failures = 3")
    for i in range(3):
        s = submit_conn(d)
        assert s.docmd("AUTH", "PLAIN " + plain("acme", "bad"))[0] == 535
        s.quit()
    s = submit_conn(d)
    code_, msg = s.docmd("AUTH", "PLAIN " + plain("acme", "s3cret"))
    assert code_ == 421 and b"too many failed authentications" in msg, msg
    d.wait_log(r"AUTH refused from 127\.0\.0\.1: too many failed authentications")


# ---- probes: the edges of the exchange ----

def test_auth_inside_a_transaction_refused(make_daemon):
    """AUTH after MAIL (port 25 with auth = true: MAIL needs no AUTH there)
    is 503 and the transaction stays; after RSET it works."""
    d = make_auth_daemon(make_daemon, smtp_opts="auth = true")
    s = smtplib.SMTP("127.0.0.1", d.port, timeout=20)
    s.ehlo("client.example")
    s.starttls(context=ssl_ctx())
    s.ehlo("client.example")
    assert s.docmd("MAIL FROM:<x@sender.example>")[0] == 250
    code_, msg = s.docmd("AUTH", "PLAIN " + plain("acme", "s3cret"))
    assert code_ == 503 and b"transaction in progress" in msg, msg
    assert s.docmd("RCPT TO:<bob@acme.example>")[0] == 250     # the transaction stays
    s.rset()
    assert s.docmd("AUTH", "plain " + plain("acme", "s3cret"))[0] == 235
    s.quit()


def test_failures_counted_across_mechanisms(authd):
    """PLAIN, LOGIN and CRAM-MD5 failures add up to the same five."""
    s = submit_conn(authd)
    codes = [s.docmd("AUTH", "PLAIN " + plain("acme", "x1"))[0]]
    s.docmd("AUTH", "LOGIN " + b64("acme"))
    codes.append(s.docmd(b64("x2"))[0])
    s.docmd("AUTH", "CRAM-MD5")
    codes.append(s.docmd(b64("acme " + "0" * 32))[0])
    s.docmd("AUTH", "LOGIN")
    s.docmd(b64("nobody"))
    codes.append(s.docmd(b64("x4"))[0])
    try:
        codes.append(s.docmd("AUTH", "PLAIN " + plain("acme", "x5"))[0])
    except smtplib.SMTPServerDisconnected:
        codes.append(0)
    assert codes == [535, 535, 535, 535, 421], codes


def test_login_empty_user_and_empty_responses(authd):
    """An empty LOGIN name (an empty line) is malformed (501); "=" as
    PLAIN's initial response (zero-length) and an empty PLAIN continuation
    are malformed (501), not failures; the session still logs in."""
    s = submit_conn(authd)
    assert s.docmd("AUTH", "LOGIN")[0] == 334
    assert s.docmd("")[0] == 501
    assert s.docmd("AUTH", "PLAIN =")[0] == 501
    assert s.docmd("AUTH", "PLAIN")[0] == 334
    assert s.docmd("=")[0] == 501
    assert s.docmd("AUTH", "PLAIN " + b64("acme\0acme\0s3cret"))[0] == 235  # authzid = authcid
    s.quit()


def test_cram_md5_answer_of_another_challenge_refused(authd):
    """A CRAM-MD5 answer is good for its own challenge only: replayed on a
    new session (a new challenge) it fails."""
    s = submit_conn(authd)
    chal = base64.b64decode(s.docmd("AUTH", "CRAM-MD5")[1])
    answer = b64("acme " + hmac.new(b"s3cret", chal, "md5").hexdigest())
    assert s.docmd(answer)[0] == 235
    s.quit()
    s = submit_conn(authd)
    chal2 = base64.b64decode(s.docmd("AUTH", "CRAM-MD5")[1])
    assert chal2 != chal
    assert s.docmd(answer)[0] == 535
    s.quit()


def test_huge_response_and_close_during_check(authd):
    """A response far over the line limit gets an error reply, not a crash;
    a client that closes while its password is checked or its failure
    delayed leaves the daemon serving."""
    s = submit_conn(authd)
    assert s.docmd("AUTH", "PLAIN")[0] == 334
    try:
        code_ = s.docmd("A" * 100000)[0]
    except smtplib.SMTPServerDisconnected:
        code_ = 0
    assert code_ in (0, 500, 501, 421), code_
    s.close()
    for pw in ("s3cret", "wrong"):
        s = submit_conn(authd)
        s.send(("AUTH PLAIN %s\r\n" % plain("acme", pw)).encode())
        s.close()
    time.sleep(1.5)
    s = submit_conn(authd)
    assert s.docmd("AUTH", "PLAIN " + plain("acme", "s3cret"))[0] == 235
    s.quit()


def test_starttls_forgets_a_cleartext_auth(make_daemon):
    """AUTH before STARTTLS (auth_cleartext) is forgotten by STARTTLS (RFC
    3207 4.2): after it MAIL needs AUTH again."""
    d = make_auth_daemon(make_daemon, submission_opts="auth_cleartext = true")
    s = smtplib.SMTP("127.0.0.1", d.sub_port, timeout=20)
    s.ehlo("client.example")
    assert s.docmd("AUTH", "PLAIN " + plain("acme", "s3cret"))[0] == 235
    s.starttls(context=ssl_ctx())
    s.ehlo("client.example")
    assert s.docmd("MAIL FROM:<bob@acme.example>")[0] == 530
    s.quit()


def test_pipelined_auth_then_mail(authd):
    """AUTH PLAIN with its initial response and MAIL, RCPT pipelined in one
    write: MAIL waits for the check and is answered after the 235."""
    s = submit_conn(authd)
    s.send(("AUTH PLAIN %s\r\nMAIL FROM:<bob@acme.example>\r\nRCPT TO:<x@out.example>\r\n"
            % plain("acme", "s3cret")).encode())
    assert s.getreply()[0] == 235
    assert s.getreply()[0] == 250
    assert s.getreply()[0] == 250
    s.quit()


def test_logs_never_hold_the_secrets(authd):
    """After logins by every mechanism, failures and malformed responses,
    neither a password nor its base64 is in the log."""
    s = submit_conn(authd)
    s.docmd("AUTH", "PLAIN " + plain("acme", "w4rongpass"))
    s.docmd("AUTH", "LOGIN " + b64("acme"))
    s.docmd(b64("w5rongpass"))
    s.docmd("AUTH", "PLAIN " + b64("\0acme\0w6rong\rpass"))
    assert s.docmd("AUTH", "PLAIN " + plain("acme", "s3cret"))[0] == 235
    s.quit()
    log = authd.log_text()
    for secret in ("s3cret", "w4rongpass", "w5rongpass", "w6rong", plain("acme", "s3cret"),
                   b64("w5rongpass")):
        assert secret not in log, secret


def test_submission_without_tls_warns_at_start(make_daemon):
    """A submission listener without a tls section serves nobody (no
    STARTTLS, so no AUTH, so 530 to every MAIL): it still starts (a config
    that loaded keeps loading) but says so in the log at start; with
    auth_cleartext it is quiet and works."""
    d = make_daemon(customers=CUSTOMERS)
    d.sub_port = free_port()
    d.extra = 'submission { listen = {"127.0.0.1:%d"} }\n' % d.sub_port
    d.write_conf()
    d.start()
    d.wait_log(r"submission: no tls section: STARTTLS is not offered, so nobody can "
               r"authenticate and send here \(add a tls section, or auth_cleartext = true\)")
    with Raw(d.sub_port) as c:
        assert "STARTTLS" not in c.greet()
        assert c.cmd("MAIL FROM:<bob@acme.example>").startswith("530 5.7.0")
    d.stop()
    d.extra = 'submission { listen = {"127.0.0.1:%d"} auth_cleartext = true }\n' % d.sub_port
    d.write_conf()
    d.start()
    with Raw(d.sub_port) as c:
        c.greet()
        assert c.cmd("AUTH PLAIN " + plain("acme", "s3cret")).startswith("235")
    assert "no tls section" not in d.log_since_start()


def test_mail_auth_parameter(authd):
    """RFC 4954 5: an authenticated client's MTA (Exim; Postfix with
    smtp_send_dummy_mail_auth) sends AUTH=<> or AUTH=addr on MAIL: accepted where AUTH is offered (its
    value unused: the sender check is the login's); still 555 on port 25
    without AUTH, and twice is 555."""
    s = submit_conn(authd)
    s.login("acme", "s3cret")
    assert s.docmd("MAIL FROM:<bob@acme.example> AUTH=<>")[0] == 250
    assert s.docmd("RCPT TO:<x@outside.example>")[0] == 250
    s.rset()
    assert s.docmd("MAIL FROM:<bob@acme.example> SIZE=10 AUTH=bob+40acme.example")[0] == 250
    s.rset()
    assert s.docmd("MAIL FROM:<bob@acme.example> AUTH=<> AUTH=<>")[0] == 555
    assert s.docmd("MAIL FROM:<bob@beta.example> AUTH=bob+40acme.example")[0] == 553
    s.quit()
    p = smtplib.SMTP("127.0.0.1", authd.port, timeout=20)
    p.ehlo("client.example")
    assert p.docmd("MAIL FROM:<x@sender.example> AUTH=<>")[0] == 555
    p.quit()


def test_port25_auth_without_tls_warns_at_start(make_daemon):
    """smtp { auth = true } without a tls section (and without
    auth_cleartext) never offers AUTH: said at start, like submission."""
    d = make_daemon(customers=CUSTOMERS, smtp_opts="auth = true").start()
    d.wait_log(r"smtp: auth = true but no tls section: AUTH is never offered on port 25 "
               r"\(add a tls section, or auth_cleartext = true\)")
    with Raw(d.port) as c:
        assert "AUTH" not in c.greet()

"""ODMR (RFC 2645) on the odmr listener: the real fetchmail --protocol ODMR
(AUTH CRAM-MD5, ATRN with its fetchdomains, relaying into a local SMTP
server: the `mta` fixture) end to end with byte-identical bodies; a second
customer's mail never handed over; the exact replies with smtplib / a raw
socket (ATRN before AUTH 530, another customer's domain 450, no mail 453,
a maildrop account 450, MAIL refused 502, EHLO's capabilities, PLAIN only
under TLS); a pickup and a link customer served and their mail gone from
the queue; a 5xx from the customer's side gives a DSN; a connection lost
mid-message keeps the mail queued; the link (source odmr) while the
session lasts."""
import base64
import hmac
import os
import smtplib
import socket
import time

import pytest

from conftest import (MTA_HOST, customer_conf, free_port, queue, queue_ids,
                      starttls_unverified, wait_for)
from peers import FETCHMAIL, Fetchmail

needs_fetchmail = pytest.mark.skipif(
    not os.access(FETCHMAIL, os.X_OK),
    reason="Debian's fetchmail is not installed (scripts/install-deps)")

ALICE_HASH = ("$6$kickmaildev$jb4n5zLcivFHyqMpsGeAZDS7k7hYnUapJD68cVfLXdCWKCrPTW1bdoE6"
              "Usa0ZbchbLqYetzbwaeuib9UTTfHj0")


def customers(mta_port=2525, link_port=None):
    return "\n".join([
        customer_conf("acme", ["acme.example", "acme.co.uk"], deliver="pickup",
                      secret="s3cret"),
        customer_conf("beta", ["beta.example"], deliver="pickup", secret="b3ta"),
        customer_conf("gamma", ["gamma.example"], deliver="link", secret="g4mma",
                      port=link_port or mta_port, retry_min="1s"),
        'maildrop "alice@isp.example" {\n  password = \'%s\'\n}\n' % ALICE_HASH,
    ])


@pytest.fixture
def odmr(make_daemon, mta):
    port = free_port()
    d = make_daemon(customers=customers(mta.port),
                    extra='odmr { listen = {"127.0.0.1:%d"} }\n' % port)
    d.odmr_port = port
    return d


def body(subject, to, extra=""):
    return ("From: <carol@sender.example>\r\nTo: %s\r\nSubject: %s\r\n"
            "Message-ID: <%s@sender.example>\r\n\r\nbody of %s\r\n%s" % (
                to, subject, subject.replace(" ", "-"), subject, extra))


def fetch(tmp_path, d, mta, user, secret, domains, timeout=60):
    fm = Fetchmail(tmp_path, 'poll 127.0.0.1 proto ODMR service %d user "%s" password "%s"'
                   ' fetchdomains %s smtphost %s/%d\n'
                   % (d.odmr_port, user, secret, ",".join(domains), MTA_HOST, mta.port))
    return fm.run(timeout=timeout)


def cram(s, user, secret):
    """AUTH CRAM-MD5 on an smtplib connection."""
    c, chal = s.docmd("AUTH", "CRAM-MD5")
    assert c == 334, chal
    digest = hmac.new(secret.encode(), base64.b64decode(chal), "md5").hexdigest()
    return s.docmd(base64.b64encode(("%s %s" % (user, digest)).encode()).decode())


def session(d, user=None, secret=None):
    s = smtplib.SMTP("127.0.0.1", d.odmr_port, timeout=10)
    s.ehlo("client.example")
    if user:
        assert cram(s, user, secret)[0] == 235
    return s


@needs_fetchmail
def test_fetchmail_end_to_end(tmp_path, odmr, mta):
    d = odmr.start()
    bodies = {}
    for i, to in enumerate(["bob@acme.example", "ann@acme.co.uk", "zed@beta.example"]):
        b = body("m%d" % i, to, extra="line with trailing space \r\n..leading dot\r\n"
                 "\xe9t\xe9 8-bit\r\n")
        bodies[to] = b
        d.send([to], body=b.encode("latin-1"), sender="carol@sender.example")
    rc, out = fetch(tmp_path, d, mta, "acme", "s3cret", ["acme.example", "acme.co.uk"])
    assert rc == 0, out
    msgs = mta.wait_messages(2)
    time.sleep(0.3)
    assert len(mta.messages) == 2, [m.rcpt_tos for m in mta.messages]
    for m in msgs:
        assert m.mail_from == "carol@sender.example"
        (to,) = m.rcpt_tos
        sent = bodies[to].encode("latin-1")
        # what arrived is our Received: line, then the message as sent
        assert m.content.endswith(sent), (m.content, sent)
        assert m.content[:len(m.content) - len(sent)].startswith(b"Received: ")
    # acme's mail left the queue; beta's stays, never handed over
    wait_for(lambda: len(queue_ids(d)) == 1, what="acme's mail gone from the queue")
    assert "beta.example" in d.kickq("list").stdout
    assert not [m for m in mta.messages if "zed@beta.example" in m.rcpt_tos]
    d.wait_log(r"to=<bob@acme\.example>, relay=127\.0\.0\.1:\d+, .*status=sent")


@needs_fetchmail
def test_second_customer_never_handed_over(tmp_path, odmr, mta):
    d = odmr.start()
    d.send(["zed@beta.example"], body=body("for beta", "zed@beta.example"))
    d.send(["bob@acme.example"], body=body("for acme", "bob@acme.example"))
    # fetchmail asking for beta's domain too: refused, nothing handed over
    rc, out = fetch(tmp_path, d, mta, "acme", "s3cret", ["acme.example", "beta.example"])
    assert rc != 0, out
    assert "450" in out, out
    assert mta.messages == [] and mta.connections == 0
    assert len(queue_ids(d)) == 2
    d.wait_log(r"ATRN from 127\.0\.0\.1 \(acme\): beta\.example is not its domain: refused")
    # ATRN without a domain: all of acme's, none of beta's
    s = session(d, "acme", "s3cret")
    c, t = s.docmd("ATRN")
    assert (c, t) == (250, b"OK now reversing the connection")
    turned = Turned(s.sock)
    turned.serve()
    assert [m[1] for m in turned.messages] == [["bob@acme.example"]]
    wait_for(lambda: len(queue_ids(d)) == 1, what="acme's message gone")
    assert [m["recipients"][0]["address"] for m in queue(d)] == ["zed@beta.example"]


class Turned:
    """The customer's side after ATRN's 250: a minimal SMTP server on the
    same socket.  rcpt_reply / data_reply: replies to give; drop_in_data:
    close the connection after that many bytes of message data."""

    def __init__(self, sock, rcpt_reply="250 2.1.5 ok", data_reply="250 2.0.0 ok",
                 drop_in_data=None):
        self.sock = sock
        self.f = sock.makefile("rb")
        self.rcpt_reply = rcpt_reply
        self.data_reply = data_reply
        self.drop_in_data = drop_in_data
        self.messages = []          # (sender, [rcpts], data)
        self.commands = []

    def put(self, line):
        self.sock.sendall(line.encode() + b"\r\n")

    def serve(self, greet=True):
        """Serves until QUIT (True) or the connection's end (False)."""
        self.sock.settimeout(10)
        if greet:
            self.put("220 customer.example ESMTP")
        sender, rcpts = None, []
        while True:
            line = self.f.readline()
            if not line:
                return False
            cmd = line.decode("latin-1").rstrip("\r\n")
            self.commands.append(cmd)
            verb = cmd.split(" ")[0].upper()
            if verb == "EHLO":
                self.sock.sendall(b"250-customer.example\r\n250-8BITMIME\r\n250 SIZE 1000000\r\n")
            elif verb == "MAIL":
                sender, rcpts = cmd[cmd.index("<") + 1:cmd.index(">")], []
                self.put("250 2.1.0 ok")
            elif verb == "RCPT":
                rcpts.append(cmd[cmd.index("<") + 1:cmd.index(">")])
                self.put(self.rcpt_reply)
            elif verb == "DATA":
                self.put("354 go ahead")
                data = b""
                while not data.endswith(b"\r\n.\r\n"):
                    chunk = self.f.readline()
                    if not chunk:
                        return False
                    data += chunk
                    if self.drop_in_data is not None and len(data) >= self.drop_in_data:
                        self.sock.shutdown(socket.SHUT_RDWR)
                        self.sock.close()
                        return False
                self.messages.append((sender, rcpts, data))
                self.put(self.data_reply)
            elif verb == "RSET" or verb == "NOOP":
                self.put("250 ok")
            elif verb == "QUIT":
                self.put("221 bye")
                return True
            else:
                self.put("502 unknown")


def test_replies(odmr):
    d = odmr.start()
    s = smtplib.SMTP("127.0.0.1", d.odmr_port, timeout=10)
    c, t = s.ehlo("client.example")
    lines = t.decode().splitlines()
    assert c == 250
    assert "AUTH CRAM-MD5" in lines and "ATRN" in lines, lines
    assert not [x for x in lines if "PIPELINING" in x or "ETRN" == x or "SIZE" in x]
    # before AUTH: ATRN 530, no mail taken here at all
    assert s.docmd("ATRN", "acme.example") == (530, b"5.7.0 Authentication required")
    assert s.docmd("MAIL", "FROM:<a@b.example>")[0] == 502
    assert s.docmd("ETRN", "acme.example")[0] == 502
    # PLAIN and LOGIN only under TLS (CRAM-MD5 always)
    assert s.docmd("AUTH", "PLAIN AGFjbWUAczNjcmV0")[0] == 538
    assert cram(s, "acme", "s3cret")[0] == 235
    assert s.docmd("MAIL", "FROM:<a@b.example>")[0] == 502
    assert s.docmd("ATRN", "beta.example") == (450, b"ATRN request refused")
    assert s.docmd("ATRN", "unknown.example") == (450, b"ATRN request refused")
    assert s.docmd("ATRN", "acme.example") == (453, b"You have no mail")
    assert s.docmd("ATRN") == (453, b"You have no mail")
    assert s.docmd("ATRN", "acme..example")[0] == 501
    assert s.quit()[0] == 221
    # on port 25 ATRN is not implemented
    p = smtplib.SMTP("127.0.0.1", d.port, timeout=10)
    p.ehlo("client.example")
    assert p.docmd("ATRN", "acme.example")[0] == 502
    p.quit()


def test_maildrop_account_refused(make_daemon, mta):
    port = free_port()
    d = make_daemon(customers=customers(mta.port),
                    extra='odmr {\n  listen = {"127.0.0.1:%d"}\n  auth_cleartext = true\n}\n'
                    % port).start()
    s = smtplib.SMTP("127.0.0.1", port, timeout=10)
    c, t = s.ehlo("client.example")
    assert "AUTH PLAIN LOGIN CRAM-MD5" in t.decode().splitlines()
    s.login("alice@isp.example", "alice")
    assert s.docmd("ATRN") == (450, b"ATRN request refused")
    d.wait_log(r"ATRN from 127\.0\.0\.1 \(alice@isp\.example\): not a customer: refused")
    s.quit()


def links(d):
    return {l["customer"]: l for l in d.kickq_json("links")}


def test_link_customer_served_and_link(odmr, mta):
    """gamma (deliver = "link") collects by ODMR: the link is up at the
    peer's address with source odmr while the session lasts, no SMTP push
    to that address starts meanwhile, and the link is down again after."""
    d = odmr.start()
    d.send(["gus@gamma.example"], body=body("for gamma", "gus@gamma.example"))
    s = session(d, "gamma", "g4mma")
    assert s.docmd("ATRN", "gamma.example")[0] == 250
    l = wait_for(lambda: links(d).get("gamma", {}).get("state") == "up" and links(d)["gamma"],
                 what="gamma's link up")
    assert l["source"] == "odmr" and l["address"] == "127.0.0.1", l
    assert "127.0.0.1:%d/127.0.0.1:" % d.odmr_port in l["session"], l
    time.sleep(0.3)
    assert mta.connections == 0         # no push in parallel
    assert "delivery to 127.0.0.1:%d failed" % mta.port not in d.log_since_start()
    turned = Turned(s.sock)
    assert turned.serve()
    assert [m[1] for m in turned.messages] == [["gus@gamma.example"]]
    wait_for(lambda: queue_ids(d) == [], what="gamma's mail gone")
    wait_for(lambda: links(d)["gamma"]["state"] == "down", what="gamma's link down")
    d.wait_log(r"to=<gus@gamma\.example>, relay=127\.0\.0\.1:\d+, .*status=sent")
    assert mta.connections == 0


def test_5xx_gives_dsn(odmr):
    d = odmr.start()
    d.send(["bob@acme.example"], body=body("bounce me", "bob@acme.example"))
    s = session(d, "acme", "s3cret")
    assert s.docmd("ATRN", "acme.example")[0] == 250
    turned = Turned(s.sock, rcpt_reply="550 5.1.1 no such user here")
    assert turned.serve()
    d.wait_log(r"to=<bob@acme\.example>, relay=127\.0\.0\.1[:\d]*, .*status=bounced "
               r"\(550 5\.1\.1 no such user here\)")
    # the DSN to the sender is queued (outbound), the original is gone
    dsn = wait_for(lambda: [m for m in queue(d) if m["sender"] == ""],
                   what="the DSN queued")
    assert dsn[0]["recipients"][0]["address"] == "alice@sender.example"
    assert len(queue(d)) == 1


def test_drop_mid_message_keeps_mail(odmr):
    d = odmr.start()
    big = "x" * 70 + "\r\n"
    d.send(["bob@acme.example"], body=body("dropped", "bob@acme.example", extra=big * 200))
    (qid,) = queue_ids(d)
    s = session(d, "acme", "s3cret")
    assert s.docmd("ATRN", "acme.example")[0] == 250
    turned = Turned(s.sock, drop_in_data=2000)
    assert turned.serve() is False
    d.wait_log(r"to=<bob@acme\.example>, relay=127\.0\.0\.1:\d+, .*status=deferred")
    d.wait_log(r"acme: ODMR delivery to 127\.0\.0\.1 ended: sent=0 deferred=1 bounced=0")
    assert queue_ids(d) == [qid]
    assert "bob@acme.example" in d.kickq("list").stdout
    # and a new session delivers it
    s = session(d, "acme", "s3cret")
    assert s.docmd("ATRN")[0] == 250
    turned = Turned(s.sock)
    assert turned.serve()
    assert turned.messages[0][2].count(b"x" * 70) == 200
    wait_for(lambda: queue_ids(d) == [], what="the message delivered")


def test_stop_while_turned_keeps_mail(odmr):
    """kickmaild stopping while a session is turned (the customer's 220 not
    sent yet): the session ends, the mail stays queued, the stop is clean."""
    d = odmr.start()
    d.send(["bob@acme.example"], body=body("stay", "bob@acme.example"))
    (qid,) = queue_ids(d)
    s = session(d, "acme", "s3cret")
    assert s.docmd("ATRN")[0] == 250
    d.wait_log(r"acme: ODMR delivery of 1 messages to 127\.0\.0\.1 started")
    d.stop()
    assert "ODMR delivery to 127.0.0.1 ended: sent=0" in d.log_text()
    d.start()
    assert queue_ids(d) == [qid]


def test_connection_limit_per_client(make_daemon, mta):
    port = free_port()
    d = make_daemon(customers=customers(mta.port),
                    extra='odmr {\n  listen = {"127.0.0.1:%d"}\n'
                    '  max_connections_per_client = 1\n}\n' % port).start()
    first = smtplib.SMTP("127.0.0.1", port, timeout=10)
    c = socket.create_connection(("127.0.0.1", port), timeout=10)
    assert c.makefile("rb").readline().startswith(b"421 4.7.0 ")
    c.close()
    first.quit()
    # the turned session still counts: a second one is refused meanwhile
    d.send(["bob@acme.example"], body=body("one", "bob@acme.example"))
    s = smtplib.SMTP("127.0.0.1", port, timeout=10)
    s.ehlo("client.example")
    assert cram(s, "acme", "s3cret")[0] == 235
    assert s.docmd("ATRN")[0] == 250
    c = socket.create_connection(("127.0.0.1", port), timeout=10)
    assert c.makefile("rb").readline().startswith(b"421 4.7.0 ")
    c.close()
    assert Turned(s.sock).serve()


def test_busy_while_pushed(odmr, mta):
    """A link customer whose mail is being pushed to its link (here a
    kickq link up; a RADIUS Start alike): ATRN gets 451, nothing is handed
    over twice; the link stays the kickq one."""
    d = odmr.start()
    mta.data_delay = 1.5
    d.send(["gus@gamma.example"], body=body("pushed", "gus@gamma.example"))
    d.kickq("link", "up", "gamma", MTA_HOST)
    wait_for(lambda: mta.connections >= 1, what="the push connected")
    s = session(d, "gamma", "g4mma")
    assert s.docmd("ATRN") == (451, b"Unable to process ATRN request now")
    mta.wait_messages(1)
    wait_for(lambda: queue_ids(d) == [], what="the push done")
    assert s.docmd("ATRN") == (453, b"You have no mail")
    s.quit()
    l = links(d)["gamma"]
    assert (l["state"], l["source"], l["address"]) == ("up", "kickq", MTA_HOST)


def test_link_up_elsewhere_during_session(odmr, mta):
    """A link up for the customer at another address while its ODMR session
    lasts (kickq here; a RADIUS Start alike) starts nothing then; the mail
    the session left goes there once it ends, and the session's end does
    not take that link down."""
    d = odmr.start()
    d.send(["gus@gamma.example"], body=body("left over", "gus@gamma.example"))
    s = session(d, "gamma", "g4mma")
    assert s.docmd("ATRN")[0] == 250
    wait_for(lambda: links(d).get("gamma", {}).get("source") == "odmr", what="odmr link")
    d.kickq("link", "up", "gamma", MTA_HOST)
    time.sleep(0.3)
    assert mta.connections == 0
    turned = Turned(s.sock, data_reply="451 4.3.0 not now")
    assert turned.serve()
    assert len(turned.messages) == 1
    msgs = mta.wait_messages(1)
    assert msgs[0].rcpt_tos == ["gus@gamma.example"]
    wait_for(lambda: queue_ids(d) == [], what="delivered to the link")
    l = links(d)["gamma"]
    assert (l["state"], l["source"], l["address"]) == ("up", "kickq", MTA_HOST)


def test_starttls_then_plain_and_atrn(make_daemon, mta):
    """With a tls section: STARTTLS offered; under TLS AUTH PLAIN too; the
    turned connection stays under TLS (no second STARTTLS) and delivers."""
    port = free_port()
    d = make_daemon(customers=customers(mta.port), tls=True,
                    extra='odmr { listen = {"127.0.0.1:%d"} }\n' % port).start()
    d.send(["bob@acme.example"], body=body("over tls", "bob@acme.example"))
    s = smtplib.SMTP("127.0.0.1", port, timeout=10)
    c, t = s.ehlo("client.example")
    assert "STARTTLS" in t.decode().splitlines()
    assert "AUTH CRAM-MD5" in t.decode().splitlines()
    c, t = starttls_unverified(s)
    lines = t.decode().splitlines()
    assert "AUTH PLAIN LOGIN CRAM-MD5" in lines and "STARTTLS" not in lines
    s.login("acme", "s3cret")
    assert s.docmd("ATRN", "acme.example")[0] == 250
    turned = Turned(s.sock)
    assert turned.serve()
    assert [m[1] for m in turned.messages] == [["bob@acme.example"]]
    assert not [x for x in turned.commands if x.upper().startswith("STARTTLS")]
    wait_for(lambda: queue_ids(d) == [], what="delivered over TLS")


def test_autoturn_customer_collects_by_atrn(make_daemon, mta):
    """An autoturn customer that authenticates on the odmr listener (or
    connects from its autoturn_networks) asks for its mail by ATRN on this
    connection: no AutoTURN push to the peer starts beside it, ATRN is
    answered 250 (not 451) and the mail comes over the turned connection."""
    port = free_port()
    conf = "\n".join([
        customer_conf("gamma", ["gamma.example"], deliver="link", secret="g4mma",
                      port=mta.port, retry_min="1s", autoturn=True,
                      autoturn_networks=["127.0.0.23/32"]),
    ])
    d = make_daemon(customers=conf,
                    extra='odmr { listen = {"127.0.0.1:%d"} }\n' % port).start()
    d.odmr_port = port
    d.send(["gus@gamma.example"], body=body("autoturn by odmr", "gus@gamma.example"))
    s = smtplib.SMTP("127.0.0.1", port, timeout=10, source_address=("127.0.0.23", 0))
    s.ehlo("client.example")
    assert cram(s, "gamma", "g4mma")[0] == 235
    assert s.docmd("ATRN", "gamma.example")[0] == 250
    turned = Turned(s.sock)
    assert turned.serve()
    assert [m[1] for m in turned.messages] == [["gus@gamma.example"]]
    wait_for(lambda: queue_ids(d) == [], what="gamma's mail gone")
    assert mta.connections == 0
    assert "autoturn: customer=gamma" not in d.log_since_start()


def test_shared_message_hands_over_only_the_domains_asked(odmr):
    """One message for two customers and two of acme's domains: ATRN
    acme.example hands over that message with bob@acme.example alone; the
    recipients at beta.example and acme.co.uk stay queued."""
    d = odmr.start()
    d.send(["zed@beta.example", "bob@acme.example", "ann@acme.co.uk"],
           body=body("shared", "undisclosed-recipients:;"))
    s = session(d, "acme", "s3cret")
    assert s.docmd("ATRN", "acme.example")[0] == 250
    turned = Turned(s.sock)
    assert turned.serve()
    assert [m[1] for m in turned.messages] == [["bob@acme.example"]]
    assert not [c for c in turned.commands if "beta" in c or "acme.co.uk" in c]
    wait_for(lambda: sorted(r["address"] for m in queue(d) for r in m["recipients"]
                            if r["status"] != "sent") == ["ann@acme.co.uk", "zed@beta.example"],
             what="the other recipients still queued")


def test_tls_policy_encrypt_needs_starttls_before_atrn(make_daemon, mta):
    """A customer with tls = "encrypt" (or "verify") gets its mail over ODMR
    only under TLS: ATRN on a cleartext session is refused (530, the mail
    stays queued); after STARTTLS the same customer is served."""
    port = free_port()
    conf = customer_conf("acme", ["acme.example"], deliver="pickup", secret="s3cret",
                         tls="encrypt")
    d = make_daemon(customers=conf, tls=True,
                    extra='odmr { listen = {"127.0.0.1:%d"} }\n' % port).start()
    d.odmr_port = port
    d.send(["bob@acme.example"], body=body("tls only", "bob@acme.example"))
    s = session(d, "acme", "s3cret")
    assert s.docmd("ATRN", "acme.example") == (530, b"5.7.0 Must issue a STARTTLS command first")
    d.wait_log(r"ATRN from 127\.0\.0\.1 \(acme\): its tls policy needs TLS: refused")
    assert len(queue_ids(d)) == 1
    s.quit()
    s = smtplib.SMTP("127.0.0.1", port, timeout=10)
    s.ehlo("client.example")
    starttls_unverified(s)
    assert cram(s, "acme", "s3cret")[0] == 235
    assert s.docmd("ATRN", "acme.example")[0] == 250
    turned = Turned(s.sock)
    assert turned.serve()
    assert [m[1] for m in turned.messages] == [["bob@acme.example"]]
    wait_for(lambda: queue_ids(d) == [], what="delivered over TLS")


# ---- probes: RFC 2645 edges ----

def test_atrn_argument_forms(odmr):
    """Domains in any case, blanks around the commas, a domain twice: all
    the customer's own (453 with no mail, 250 with mail: both domains'
    mail); a trailing comma or an empty list item is a syntax error."""
    d = odmr.start()
    s = session(d, "acme", "s3cret")
    assert s.docmd("ATRN", "ACME.Example , acme.CO.uk,acme.example") == (453, b"You have no mail")
    assert s.docmd("ATRN", "acme.example,")[0] == 501
    assert s.docmd("ATRN", "acme.example,,acme.co.uk")[0] == 501
    assert s.docmd("ATRN", "ACME.EXAMPLE,BETA.example")[0] == 450
    d.send(["bob@acme.example"], body=body("one", "bob@acme.example"))
    d.send(["ann@acme.co.uk"], body=body("two", "ann@acme.co.uk"))
    assert s.docmd("ATRN", "Acme.Co.UK, ACME.EXAMPLE")[0] == 250
    turned = Turned(s.sock)
    assert turned.serve()
    assert sorted(m[1][0] for m in turned.messages) == ["ann@acme.co.uk", "bob@acme.example"]
    wait_for(lambda: queue_ids(d) == [], what="both delivered")


def test_helo_auth_twice_and_order(odmr):
    """HELO (not EHLO) is enough for AUTH and ATRN; AUTH before HELO is
    503; a second AUTH is 503; RSET and NOOP keep the authentication."""
    d = odmr.start()
    s = smtplib.SMTP("127.0.0.1", d.odmr_port, timeout=10)
    assert s.docmd("AUTH", "CRAM-MD5")[0] == 503
    assert s.docmd("ATRN")[0] == 503
    assert s.helo("client.example")[0] == 250
    assert cram(s, "acme", "s3cret")[0] == 235
    assert s.docmd("AUTH", "CRAM-MD5")[0] == 503
    assert s.docmd("RSET")[0] == 250
    assert s.docmd("NOOP")[0] == 250
    assert s.docmd("ATRN") == (453, b"You have no mail")
    assert s.quit()[0] == 221


def test_commands_pipelined_after_atrn(odmr):
    """A client that pipelines QUIT behind ATRN: after the 250 the line is
    delivery's, and "QUIT" is no greeting: nothing is handed over, the mail
    stays queued, the daemon serves on."""
    d = odmr.start()
    qid = d.send(["bob@acme.example"], body=body("stays", "bob@acme.example"))
    s = session(d, "acme", "s3cret")
    s.send(b"ATRN acme.example\r\nQUIT\r\n")
    assert s.getreply()[0] == 250
    s.sock.settimeout(10)
    rest = b""
    try:
        while True:
            chunk = s.sock.recv(4096)
            if not chunk:
                break
            rest += chunk
    except OSError:
        pass
    assert b"MAIL FROM" not in rest, rest
    time.sleep(0.3)
    assert qid in queue_ids(d)
    s = session(d, "acme", "s3cret")
    assert s.docmd("ATRN")[0] == 250
    turned = Turned(s.sock)
    assert turned.serve()
    assert len(turned.messages) == 1


def test_guard_counts_across_odmr_pop3_and_submission(make_daemon, mta):
    """The per-address limit is one for all listeners: failures on odmr
    (CRAM-MD5), pop3 (PASS) and submission add up, and then odmr refuses
    even the right secret."""
    import poplib
    oport, pport, sport = free_port(), free_port(), free_port()
    d = make_daemon(customers=customers(mta.port), tls=True, extra="""
odmr { listen = {"127.0.0.1:%d"} }
pop3 { listen = {"127.0.0.1:%d"} cleartext = true }
submission { listen = {"127.0.0.1:%d"} }
auth { failure_delay = 0 max_failures = 3 }
""" % (oport, pport, sport)).start()
    d.odmr_port = oport
    s = session(d)
    assert cram(s, "acme", "wrong")[0] == 535
    s.quit()
    p = poplib.POP3("127.0.0.1", pport, timeout=10)
    p.user("alice@isp.example")
    with pytest.raises(poplib.error_proto):
        p.pass_("wrong")
    p.quit()
    s = smtplib.SMTP("127.0.0.1", sport, timeout=10)
    s.ehlo("client.example")
    starttls_unverified(s)
    assert s.docmd("AUTH", "PLAIN " + base64.b64encode(b"\0acme\0wrong").decode())[0] == 535
    s.quit()
    s = session(d)
    c, msg = s.docmd("AUTH", "CRAM-MD5")
    assert c == 421 and b"too many failed authentications" in msg, (c, msg)

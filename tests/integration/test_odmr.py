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

from conftest import MTA_HOST, Raw, customer_conf, free_port, queue_ids, wait_for
from peers import FETCHMAIL, Fetchmail

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

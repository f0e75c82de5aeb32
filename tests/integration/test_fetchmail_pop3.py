"""fetchmail against kickmail's POP3 server (Debian's fetchmail 6.4), the
way dial-up customers run it, forwarding into a local SMTP sink (the `mta`
fixture: aiosmtpd on 127.0.0.23):

- single drop: an address maildrop (delete mode), `proto pop3`; the
  messages reach the sink and leave the maildrop;
- keep mode: the maildrop in mode "keep", fetchmail with `keep` and
  `uidl`: a second poll fetches nothing, a new message alone is fetched
  next, and the messages stay on the server;
- multidrop: a customer with deliver = "maildrop" (POP3 user = customer
  name, password = its secret); one message to 3 recipients of the domain
  plus 1 to a single recipient, fetched with `localdomains acme.example
  envelope X-Original-To ... to * here`: each recipient gets exactly its
  copies, once (fetchmail's duplicate killer hashes the whole header, so
  the per-recipient X-Original-To and Delivered-To keep the copies apart).
"""
import os
import shutil

import pytest

from conftest import MTA_HOST, customer_conf, free_port, wait_for
from peers import (FETCHMAIL, Fetchmail, drop_files, maildrop_conf, maildrops_missing,
                   pop3_extra)

pytestmark = pytest.mark.skipif(not os.access(FETCHMAIL, os.X_OK),
                                reason="Debian's fetchmail is not installed (scripts/install-deps)")


@pytest.fixture
def need_maildrops(tmp_path):
    why = maildrops_missing(tmp_path)
    if why:
        pytest.skip(why)


def _body(subject, to):
    return ("From: <carol@sender.example>\r\nTo: %s\r\nSubject: %s\r\n"
            "Message-ID: <%s@sender.example>\r\n\r\nbody of %s\r\n" % (
                to, subject, subject.replace(" ", "-"), subject))


def _send(d, rcpts, subject):
    return d.send(rcpts, body=_body(subject, ", ".join(rcpts)), sender="carol@sender.example")


def _delivered(d, n, root, drop):
    """Waits for n messages in maildrop drop and their log lines."""
    wait_for(lambda: len(drop_files(root, drop)) >= n, what="%d messages in %s" % (n, drop))


def _single_poll(pop3_port, user, password, mta, smtpname, server="", options=""):
    """A single-drop poll entry: server options (e.g. "uidl") come before
    the user, user options (e.g. "keep") after."""
    return ('poll 127.0.0.1 service %d proto pop3 auth password %s\n'
            '  user "%s" there with password "%s" is "localuser" here\n'
            '  options sslproto "" smtphost "%s/%d" smtpname "%s" %s\n'
            % (pop3_port, server, user, password, MTA_HOST, mta.port, smtpname, options))


def test_single_drop_delete_mode(tmp_path, make_daemon, mta, need_maildrops):
    root = tmp_path / "maildrops"
    pop3 = free_port()
    d = make_daemon(customers="", extra=pop3_extra(
        root, pop3, maildrop_conf("alice@isp.example", "alice-pw")))
    d.start()
    _send(d, ["alice@isp.example"], "first")
    _send(d, ["alice@isp.example"], "second")
    _delivered(d, 2, root, "alice@isp.example")
    fm = Fetchmail(tmp_path, _single_poll(pop3, "alice@isp.example", "alice-pw", mta,
                                          "alice@home.example"))
    rc, out = fm.run()
    assert rc == 0, out
    msgs = mta.wait_messages(2)
    assert sorted(m.header("Subject") for m in msgs) == ["first", "second"]
    for m in msgs:
        assert m.rcpt_tos == ["alice@home.example"]
        assert m.header("Delivered-To") == "alice@isp.example"
    # delete mode: fetchmail's DELE + QUIT emptied the maildrop
    assert drop_files(root, "alice@isp.example") == []
    rc, out = fm.run()
    assert rc == 1, out          # nothing new
    assert len(mta.messages) == 2


def test_keep_mode_with_uidl(tmp_path, make_daemon, mta, need_maildrops):
    root = tmp_path / "maildrops"
    pop3 = free_port()
    d = make_daemon(customers="", extra=pop3_extra(
        root, pop3, maildrop_conf("bob@isp.example", "bob-pw", mode="keep", keep_days=30)))
    d.start()
    _send(d, ["bob@isp.example"], "kept one")
    _send(d, ["bob@isp.example"], "kept two")
    _delivered(d, 2, root, "bob@isp.example")
    fm = Fetchmail(tmp_path, _single_poll(pop3, "bob@isp.example", "bob-pw", mta,
                                          "bob@home.example", server="uidl", options="keep"))
    rc, out = fm.run()
    assert rc == 0, out
    assert sorted(m.header("Subject") for m in mta.wait_messages(2)) == ["kept one", "kept two"]
    assert len(drop_files(root, "bob@isp.example")) == 2      # still on the server
    assert os.path.getsize(fm.ids) > 0                         # fetchmail kept the UIDLs
    # a second poll: the UIDLs are the same, nothing is fetched again
    rc, out = fm.run()
    assert rc == 1, out
    assert len(mta.messages) == 2
    # a new message alone is fetched next
    _send(d, ["bob@isp.example"], "kept three")
    _delivered(d, 3, root, "bob@isp.example")
    rc, out = fm.run()
    assert rc == 0, out
    msgs = mta.wait_messages(3)
    assert len(msgs) == 3 and msgs[2].header("Subject") == "kept three"
    assert len(drop_files(root, "bob@isp.example")) == 3


def test_multidrop_one_copy_per_recipient(tmp_path, make_daemon, mta, need_maildrops):
    root = tmp_path / "maildrops"
    pop3 = free_port()
    d = make_daemon(customers=customer_conf("acme", ["acme.example"], deliver="maildrop",
                                            secret="acme-s3cret"),
                    extra=pop3_extra(root, pop3))
    d.start()
    _send(d, ["bob@acme.example", "carol@acme.example", "dave@acme.example"], "to three")
    _send(d, ["bob@acme.example"], "to bob")
    # one copy per envelope recipient in the domain maildrop ROOT/acme
    _delivered(d, 4, root, "acme")
    poll = ('poll 127.0.0.1 service %d proto pop3 auth password\n'
            '  localdomains acme.example envelope "X-Original-To"\n'
            '  user "acme" there with password "acme-s3cret" to * here\n'
            '  options sslproto "" smtphost "%s/%d" smtpaddress acme.example\n' % (pop3, MTA_HOST, mta.port))
    fm = Fetchmail(tmp_path, poll)
    rc, out = fm.run()
    assert rc == 0, out
    msgs = mta.wait_messages(4)
    got = sorted((tuple(sorted(m.rcpt_tos)), m.header("Subject")) for m in msgs)
    assert got == [(("bob@acme.example",), "to bob"),
                   (("bob@acme.example",), "to three"),
                   (("carol@acme.example",), "to three"),
                   (("dave@acme.example",), "to three")], out
    for m in msgs:
        rcpt = m.rcpt_tos[0]
        assert m.header("X-Original-To") == rcpt
        assert m.header("Delivered-To") == rcpt
    assert drop_files(root, "acme") == []
    rc, out = fm.run()
    assert rc == 1, out
    assert len(mta.messages) == 4


def test_probe_multidrop_odd_recipients_and_forged_header(tmp_path, make_daemon, mta,
                                                          need_maildrops):
    """Multidrop over two domains of one customer, recipients in odd case
    and with atext characters; the sender's own X-Original-To and
    Delivered-To fields (naming another recipient) do not steer fetchmail:
    ours come first, so each copy goes to its envelope recipient only."""
    root = tmp_path / "maildrops"
    pop3 = free_port()
    d = make_daemon(customers=customer_conf("acme", ["acme.example", "acme.co.uk"],
                                            deliver="maildrop", secret="acme-s3cret"),
                    extra=pop3_extra(root, pop3))
    d.start()
    forged = ("From: <carol@sender.example>\r\nX-Original-To: boss@acme.example\r\n"
              "Delivered-To: boss@acme.example\r\nTo: someone\r\nSubject: forged\r\n"
              "Message-ID: <forged@sender.example>\r\n\r\nbody\r\n")
    rcpts = ["o'brien+tag@acme.example", "Bob@ACME.example", "x.y@acme.co.uk"]
    d.send(rcpts, body=forged, sender="carol@sender.example")
    _delivered(d, 3, root, "acme")
    poll = ('poll 127.0.0.1 service %d proto pop3 auth password\n'
            '  localdomains acme.example acme.co.uk envelope "X-Original-To"\n'
            '  user "acme" there with password "acme-s3cret" to * here\n'
            '  options sslproto "" smtphost "%s/%d" smtpaddress acme.example\n'
            % (pop3, MTA_HOST, mta.port))
    fm = Fetchmail(tmp_path, poll)
    rc, out = fm.run()
    assert rc == 0, out
    msgs = mta.wait_messages(3)
    got = sorted(r.lower() for m in msgs for r in m.rcpt_tos)
    assert got == sorted(r.lower() for r in rcpts), (got, out)
    assert not any("boss" in r for m in msgs for r in m.rcpt_tos)
    assert drop_files(root, "acme") == []


def test_probe3_pop3s_sslcertck_keep_uidl_across_a_restart(tmp_path, make_daemon, mta,
                                                          need_maildrops):
    """fetchmail over pop3s verifying the certificate (sslcertck against the
    test certificate), keep + uidl: a kickmaild restart between polls
    changes no UIDL (nothing fetched twice); a name the certificate does
    not carry (sslcommonname) fails the poll and fetches nothing."""
    root = tmp_path / "maildrops"
    pop3, pop3s = free_port(), free_port()
    d = make_daemon(customers="", tls=True, extra=pop3_extra(
        root, pop3, maildrop_conf("bob@isp.example", "bob-pw", mode="keep", keep_days=30))
        + 'pop3s {\n  listen = {"127.0.0.1:%d"}\n}\n' % pop3s)
    d.start()
    _send(d, ["bob@isp.example"], "kept one")
    _delivered(d, 1, root, "bob@isp.example")
    cert = os.path.join(d.tmp, "tls", "cert.pem")

    def poll(name):
        return ('poll 127.0.0.1 service %d proto pop3 auth password uidl\n'
                '  user "bob@isp.example" there with password "bob-pw" is "localuser" here\n'
                '  options ssl sslcertck sslcertfile "%s" sslcommonname "%s" keep\n'
                '  smtphost "%s/%d" smtpname "bob@home.example"\n'
                % (pop3s, cert, name, MTA_HOST, mta.port))
    bad = Fetchmail(tmp_path / "bad", poll("wrong.example"))
    rc, out = bad.run()
    assert rc not in (0, 1), out
    assert "hostname mismatch" in out, out
    assert mta.messages == []
    fm = Fetchmail(tmp_path, poll("localhost"))
    rc, out = fm.run()
    assert rc == 0, out
    assert [m.header("Subject") for m in mta.wait_messages(1)] == ["kept one"]
    d.stop()
    d.start()
    rc, out = fm.run()
    assert rc == 1, out                  # the same UIDL after the restart
    _send(d, ["bob@isp.example"], "kept two")
    _delivered(d, 2, root, "bob@isp.example")
    d.stop()
    d.start()
    rc, out = fm.run()
    assert rc == 0, out
    msgs = mta.wait_messages(2)
    assert [m.header("Subject") for m in msgs] == ["kept one", "kept two"]
    assert len(drop_files(root, "bob@isp.example")) == 2

"""Dovecot serves kickmail's maildrops unchanged: a private Dovecot IMAP
(Debian's dovecot-imapd, tests/integration/dovecot.py) with the one line

    mail_location = maildir:ROOT/%d/%n

over kickmail's maildir_root fetches what kickmail delivered, byte for byte.

The first tests lay files out the way include/maildir/maildir.h says
kickmail does (address maildrop ROOT/DOMAIN/LOCAL, domain maildrop
ROOT/CUSTOMER; LF line ends; ,S= and ,W= in the name) and check that
Dovecot finds them at those paths and trusts those sizes; the end-to-end
test sends mail to kickmail over SMTP and fetches it from Dovecot.
"""
import imaplib
import os
import re
import shutil

import pytest

import dovecot
from conftest import KICKMAILD, customer_conf, wait_for
import subprocess

pytestmark = pytest.mark.skipif(not dovecot.available(),
                                reason="Debian's dovecot-imapd is not installed (scripts/install-deps)")


@pytest.fixture
def dvdir():
    """Where Dovecot runs and the maildirs live (see dovecot.py: not under
    tmp_path, which Dovecot's unprivileged processes cannot reach)."""
    d = dovecot.traversable_tmpdir()
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _write_maildir_file(root, drop_dir, name_stem, data_lf):
    """A message as kickmail stores it: LF ends, S= bytes on disk, W= bytes
    with CRLF ends."""
    d = os.path.join(root, drop_dir)
    for sub in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    size = len(data_lf)
    vsize = size + data_lf.count(b"\n")
    path = os.path.join(d, "new", "%s,S=%d,W=%d" % (name_stem, size, vsize))
    with open(path, "wb") as f:
        f.write(data_lf)
    return path


def _imap_fetch_all(port, user, password):
    """[(RFC822.SIZE, bytes)] of every message in INBOX, without setting
    \\Seen (BODY.PEEK)."""
    m = imaplib.IMAP4("127.0.0.1", port)
    try:
        typ, _ = m.login(user, password)
        assert typ == "OK"
        typ, data = m.select("INBOX", readonly=True)
        assert typ == "OK", data
        n = int(data[0])
        out = []
        for i in range(1, n + 1):
            typ, data = m.fetch(str(i), "(RFC822.SIZE BODY.PEEK[])")
            assert typ == "OK", data
            meta, body = data[0]
            size = int(re.search(rb"RFC822\.SIZE (\d+)", meta).group(1))
            out.append((size, body))
        return out
    finally:
        try:
            m.logout()
        except Exception:
            pass


def _no_dovecot_errors(dv):
    errs = [l for l in dv.log_text().splitlines() if "Error:" in l or "Panic:" in l]
    assert not errs, "\n".join(errs)


def test_dovecot_serves_both_layouts(dvdir):
    """ROOT/isp.example/alice for alice@isp.example and ROOT/acme for the
    domain maildrop acme (Dovecot's %d is empty for a login without '@')."""
    root = os.path.join(dvdir, "maildrops")
    alice = b"Return-Path: <x@sender.example>\nDelivered-To: alice@isp.example\n" \
            b"Subject: for alice\n\nline one\nline two\n"
    acme = b"Delivered-To: bob@acme.example\nX-Original-To: bob@acme.example\n" \
           b"Subject: for bob\n\nhello bob\n"
    _write_maildir_file(root, "isp.example/alice", "1700000000.M1P1Q1R1.mx", alice)
    _write_maildir_file(root, "acme", "1700000001.M2P1Q2R2.mx", acme)
    dv = dovecot.PrivateDovecot(os.path.join(dvdir, "dovecot"), root,
                                {"alice@isp.example": "pw-a", "acme": "pw-acme"})
    dv.own_tree()
    dv.start()
    try:
        got = _imap_fetch_all(dv.imap_port, "alice@isp.example", "pw-a")
        assert got == [(len(alice) + alice.count(b"\n"), alice.replace(b"\n", b"\r\n"))]
        got = _imap_fetch_all(dv.imap_port, "acme", "pw-acme")
        assert got == [(len(acme) + acme.count(b"\n"), acme.replace(b"\n", b"\r\n"))]
    finally:
        dv.stop()
    _no_dovecot_errors(dv)


def test_dovecot_notices_a_wrong_size_in_the_name(dvdir):
    """The harness would see a kickmail name whose S= disagrees with the
    file: Dovecot trusts S= and logs an error (so the end-to-end test's
    clean log means kickmail's sizes are right)."""
    root = os.path.join(dvdir, "maildrops")
    data = b"Subject: x\n\nbody\n"
    d = os.path.join(root, "isp.example", "alice")
    for sub in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(d, sub))
    with open(os.path.join(d, "new", "1700000000.M1P1Q1R1.mx,S=%d,W=%d"
                           % (len(data) + 1, len(data) + 4)), "wb") as f:
        f.write(data)
    dv = dovecot.PrivateDovecot(os.path.join(dvdir, "dovecot"), root, {"alice@isp.example": "pw"})
    dv.own_tree()
    dv.start()
    try:
        with pytest.raises(imaplib.IMAP4.abort):
            _imap_fetch_all(dv.imap_port, "alice@isp.example", "pw")
    finally:
        dv.stop()
    assert "Cached message size larger than expected" in dv.log_text()


# ---- end to end: SMTP into kickmail, IMAP out of Dovecot ----

def _kickmail_delivers_maildrops(tmp_path):
    """None when kickmaild knows maildir_root and maildrop sections, else
    why not (local delivery is issue 12's branch i12-local)."""
    conf = tmp_path / "probe.conf"
    conf.write_text('hostname = "mx.test.example"\nspool = "%s"\ncontrol = "%s"\n'
                    'maildir_root = "%s"\n'
                    'maildrop "a@isp.example" { password = \'x\' }\n'
                    % (tmp_path / "ps", tmp_path / "pc", tmp_path / "pm"))
    r = subprocess.run([KICKMAILD, "-n", "-c", str(conf)], capture_output=True, text=True)
    if r.returncode != 0:
        return "kickmaild does not deliver into maildrops: " + (r.stdout + r.stderr).strip()
    return None


SENT = (b"From: Carol <carol@sender.example>\r\n"
        b"To: alice@isp.example\r\n"
        b"Subject: byte for byte\r\n"
        b"Message-ID: <dovecot-imap-1@sender.example>\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"\r\n"
        b"A line with trailing spaces   \r\n"
        b"\tand a tab, 8-bit: \xc3\xa9t\xc3\xa9\r\n"
        b".a line that started with a dot\r\n"
        b"\r\n"
        b"\r\n"
        b"the end\r\n")


def test_kickmail_delivery_fetched_byte_for_byte(tmp_path, make_daemon, dvdir):
    why = _kickmail_delivers_maildrops(tmp_path)
    if why:
        pytest.skip(why)
    root = os.path.join(dvdir, "maildrops")
    d = make_daemon(customers="", extra='maildir_root = "%s"\n'
                    'maildrop "alice@isp.example" {\n  password = \'$y$j9T$x\'\n}\n' % root)
    d.start()
    with d.smtp() as s:
        s.ehlo("client.example")
        s.mail("carol@sender.example")
        assert s.rcpt("alice@isp.example")[0] == 250
        # smtplib dot-stuffs the line that starts with a dot
        code, msg = s.data(SENT)
        assert code == 250, msg
    newdir = os.path.join(root, "isp.example", "alice", "new")
    wait_for(lambda: os.path.isdir(newdir) and os.listdir(newdir), what="a file in new/")
    d.wait_log(r"to=<alice@isp\.example>, relay=local.*status=sent")
    dv = dovecot.PrivateDovecot(os.path.join(dvdir, "dovecot"), root, {"alice@isp.example": "pw"})
    dv.own_tree()
    dv.start()
    try:
        got = _imap_fetch_all(dv.imap_port, "alice@isp.example", "pw")
    finally:
        dv.stop()
    _no_dovecot_errors(dv)
    assert len(got) == 1
    size, fetched = got[0]
    assert size == len(fetched)         # kickmail's W= is the CRLF size
    # what kickmail adds on top, in this order: Return-Path, Delivered-To,
    # then its Received header (with folded continuation lines); then the
    # message exactly as sent
    m = re.match(rb"Return-Path: <carol@sender\.example>\r\n"
                 rb"Delivered-To: alice@isp\.example\r\n"
                 rb"(Received: [^\r\n]*\r\n(?:[ \t][^\r\n]*\r\n)*)", fetched)
    assert m, fetched[:400]
    assert b"by mx.test.example" in m.group(1)
    assert fetched[m.end():] == SENT

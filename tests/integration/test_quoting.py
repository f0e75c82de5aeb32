"""Quoted local parts (RFC 5321 4.1.2 Quoted-string) stay quoted wherever an
address is written back: in RCPT TO and MAIL FROM to the customer's server,
in the Received header's "for <...>", in `kickq list`/`show` and their JSON,
in DSNs (envelope, To:, Final-Recipient, text), in log lines.  A sender who
writes RCPT TO:<"a> NOTIFY=SUCCESS"@acme.example> must not be able to add
ESMTP parameters or change the recipient at the customer's side.  Spools
written by earlier builds hold the unquoted form: it is quoted again at
start.

The customer's server here is a raw line recorder (not aiosmtpd), so the
tests see the exact bytes of every command."""
import os
import re
import socket
import struct
import threading
import zlib

from conftest import MTA_HOST, customer_conf, dsn_fields, dsn_parts, free_port, queue, wait_for

# (what the client writes inside <...>, the wire form kickmail must keep)
CASES = [
    ('"a> NOTIFY=SUCCESS"@acme.example', '"a> NOTIFY=SUCCESS"@acme.example'),
    ('"a>b"@acme.example', '"a>b"@acme.example'),
    ('"x y"@acme.example', '"x y"@acme.example'),
    ('"a\\"b"@acme.example', '"a\\"b"@acme.example'),
    ('"a\\\\"@acme.example', '"a\\\\"@acme.example'),
    ('"plain"@acme.example', 'plain@acme.example'),
    ('"two  spaces"@acme.example', '"two  spaces"@acme.example'),
    ('"\\q\\u\\o"@acme.example', 'quo@acme.example'),      # needless quoted-pairs
]


class Recorder:
    """A minimal SMTP server that records every line it is sent, verbatim:
    commands in .lines, message contents (dot-unstuffed) in .messages as
    (list of command lines of the transaction, content bytes)."""

    def __init__(self, host=MTA_HOST):
        self.host = host
        self.port = free_port(host)
        self.lines = []
        self.messages = []
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, self.port))
        self.sock.listen(16)
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        f = c.makefile("rb")
        txn = []
        try:
            c.sendall(b"220 recorder ESMTP\r\n")
            for raw in f:
                line = raw.rstrip(b"\r\n").decode("latin-1")
                with self.lock:
                    self.lines.append(line)
                verb = line[:4].upper()
                if verb in ("EHLO", "HELO"):
                    c.sendall(b"250 recorder\r\n")
                elif verb == "MAIL":
                    txn = [line]
                    c.sendall(b"250 2.1.0 Ok\r\n")
                elif verb == "RCPT":
                    txn.append(line)
                    c.sendall(b"250 2.1.5 Ok\r\n")
                elif verb == "DATA":
                    c.sendall(b"354 go ahead\r\n")
                    data = b""
                    for d in f:
                        if d == b".\r\n":
                            break
                        data += d[1:] if d.startswith(b".") else d
                    with self.lock:
                        self.messages.append((txn, data))
                    c.sendall(b"250 2.0.0 Ok: recorded\r\n")
                elif verb == "QUIT":
                    c.sendall(b"221 2.0.0 Bye\r\n")
                    break
                else:
                    c.sendall(b"250 2.0.0 Ok\r\n")
        except OSError:
            pass
        finally:
            c.close()

    def stop(self):
        self.stopped = True
        self.sock.close()

    def for_rcpt(self, wire):
        want = "RCPT TO:<%s>" % wire
        with self.lock:
            return [(t, d) for t, d in self.messages if want in t]


def conf(port):
    return (customer_conf("acme", ["acme.example"], port=port, retry_min="1s",
                          retry_max="2s")
            + customer_conf("beta", ["beta.example"], deliver="%s:%d" % (MTA_HOST, port),
                            online="always", retry_min="1s", retry_max="2s"))


def raw_send(d, sender, rcpt, subject):
    """One message over a raw socket: MAIL FROM:<sender>, RCPT TO:<rcpt>, both
    written exactly as given.  Returns the queue ID."""
    s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    f = s.makefile("rb")

    def cmd(line, want):
        if line is not None:
            s.sendall(line.encode("latin-1") + b"\r\n")
        while True:
            r = f.readline().decode("latin-1").rstrip("\r\n")
            if r[3:4] != "-":
                break
        assert r.startswith(want), (line, r)
        return r

    try:
        cmd(None, "220")
        cmd("EHLO client.example", "250")
        cmd("MAIL FROM:<%s>" % sender, "250")
        cmd("RCPT TO:<%s>" % rcpt, "250")
        cmd("DATA", "354")
        s.sendall(("From: <a@beta.example>\r\nSubject: %s\r\n\r\nhello\r\n.\r\n"
                   % subject).encode())
        r = cmd(None, "250")
        cmd("QUIT", "221")
        return r.split("queued as ")[1].strip()
    finally:
        s.close()


def test_quoted_recipients_stay_quoted_on_the_wire(make_daemon):
    rec = Recorder()
    try:
        d = make_daemon(customers=conf(rec.port)).start()
        qids = {}
        for i, (written, wire) in enumerate(CASES):
            qids[raw_send(d, "a@beta.example", written, "case %d" % i)] = wire

        # kickq list --json and the Postfix layout show the wire form
        listed = {m["queue_id"]: m["recipients"] for m in queue(d)}
        for qid, wire in qids.items():
            assert [r["address"] for r in listed[qid]] == [wire], listed[qid]
            assert listed[qid][0]["domain"] == "acme.example"
            assert listed[qid][0]["customer"] == "acme"
        text = d.kickq("list").stdout
        for wire in qids.values():
            assert re.search(r"^ {47}%s$" % re.escape(wire), text, re.M), text
        for qid, wire in qids.items():
            assert "recipient: %s customer=acme" % wire in d.kickq("show", qid).stdout

        d.kickq("link", "up", "acme", MTA_HOST)
        wait_for(lambda: all(rec.for_rcpt(w) for w in qids.values()),
                 what="every message at the customer's server (lines %r)" % rec.lines)
        for qid, wire in qids.items():
            (txn, content), = rec.for_rcpt(wire)
            assert txn == ["MAIL FROM:<a@beta.example>", "RCPT TO:<%s>" % wire], txn
            assert re.search(r"\r\n\tfor <%s>;" % re.escape(wire), content.decode()), content
            d.wait_log(r"%s: to=<%s>, relay=.*status=sent" % (qid, re.escape(wire)))
        # nothing a sender wrote inside quotes ever became a parameter
        rcpts = [l for l in rec.lines if l.upper().startswith("RCPT")]
        assert len(rcpts) == len(CASES), rcpts
        assert all(l.endswith("@acme.example>") for l in rcpts), rcpts
        assert sorted(rcpts) == sorted("RCPT TO:<%s>" % w for w in qids.values())
    finally:
        rec.stop()


def test_quoted_sender_and_recipient_in_a_dsn(make_daemon):
    rec = Recorder()
    try:
        d = make_daemon(customers=conf(rec.port)).start()
        sender = '"x y> RET=FULL"@beta.example'
        rcpt = '"a> NOTIFY=SUCCESS"@acme.example'
        qid = raw_send(d, sender, rcpt, "to be bounced")
        (m,) = [m for m in queue(d) if m["queue_id"] == qid]
        assert m["sender"] == sender and m["recipients"][0]["address"] == rcpt, m
        assert "sender: %s\n" % sender in d.kickq("show", qid).stdout

        r = d.kickq("bounce", qid)
        assert "bounced 1 message" in r.stdout, r.stdout
        # the DSN goes to the sender's customer (beta, online always): to the recorder
        wait_for(lambda: rec.for_rcpt(sender), what="the DSN (lines %r)" % rec.lines)
        (txn, content), = rec.for_rcpt(sender)
        assert txn == ["MAIL FROM:<>", "RCPT TO:<%s>" % sender], txn
        msg, parts = dsn_parts(content)
        assert msg["To"] == "<%s>" % sender, msg["To"]
        blocks = dsn_fields(parts["message/delivery-status"])
        (rb,) = [b for b in blocks if "final-recipient" in b]
        assert rb["final-recipient"] == "rfc822; %s" % rcpt, rb
        assert "<%s>: " % rcpt in parts["text/plain"].get_payload(), parts["text/plain"]
        d.wait_log(r"%s: to=<%s>, .*status=bounced" % (qid, re.escape(rcpt)))

        # and a message from that sender that is delivered keeps MAIL FROM quoted
        qid2 = raw_send(d, sender, "bob@acme.example", "delivered")
        d.kickq("link", "up", "acme", MTA_HOST)
        wait_for(lambda: rec.for_rcpt("bob@acme.example"), what="the second message")
        (txn, _), = rec.for_rcpt("bob@acme.example")
        assert txn == ["MAIL FROM:<%s>" % sender, "RCPT TO:<bob@acme.example>"], txn
        d.wait_log(r"%s: client=.*from=<%s>" % (qid2, re.escape(sender)))
    finally:
        rec.stop()


# ---- spools of earlier builds: the unquoted form is quoted again at start ----

def legacy_form(addr):
    """The form earlier builds stored: the local part without its quotes."""
    local, _, domain = addr.rpartition("@")
    if local.startswith('"'):
        local = re.sub(r"\\(.)", r"\1", local[1:-1])
    return local + "@" + domain


def rewrite_envelopes(spool, change):
    """Rewrites every MSG record of the journal with change(address) applied
    to its sender and recipients (lengths and CRCs made right again); the
    segment keeps its size (zeros after the last record).  Returns how many
    addresses changed."""
    changed = 0
    jdir = os.path.join(spool, "journal")
    for name in sorted(os.listdir(jdir)):
        path = os.path.join(jdir, name)
        with open(path, "rb") as f:
            data = f.read()
        out, off = b"", 0
        while off + 32 <= len(data) and data[off:off + 4] == b"KMJ1":
            (_, version, rtype, _, plen, mlen, rid, _, _) = struct.unpack_from(
                "<4sBBHIIQII", data, off)
            payload = data[off + 32:off + 32 + plen]
            assert data[off + 32 + plen:off + 40 + plen] == b"KMJE" + struct.pack("<I", plen)
            off += 40 + plen
            if rtype == 1:                      # MSG: rebuild the metadata
                meta, body = payload[:mlen], payload[mlen:]
                arrival, slen = struct.unpack_from("<qH", meta, 0)
                p = 10
                addrs = [meta[p:p + slen].decode()]
                p += slen
                (nrcpt,) = struct.unpack_from("<H", meta, p)
                p += 2
                flags = []
                for _ in range(nrcpt):
                    fl, alen = struct.unpack_from("<BH", meta, p)
                    p += 3
                    flags.append(fl)
                    addrs.append(meta[p:p + alen].decode())
                    p += alen
                assert p == len(meta)
                new = [change(a) for a in addrs]
                changed += sum(a != b for a, b in zip(addrs, new))
                enc = [a.encode() for a in new]
                meta = struct.pack("<qH", arrival, len(enc[0])) + enc[0] + struct.pack("<H", nrcpt)
                for fl, a in zip(flags, enc[1:]):
                    meta += struct.pack("<BH", fl, len(a)) + a
                payload, mlen, plen = meta + body, len(meta), len(meta) + len(body)
            hdr = struct.pack("<4sBBHIIQI", b"KMJ1", version, rtype, 0, plen, mlen, rid,
                              zlib.crc32(payload))
            out += hdr + struct.pack("<I", zlib.crc32(hdr)) + payload
            out += b"KMJE" + struct.pack("<I", plen)
        if off == 0:
            continue
        assert not data[off:].strip(b"\0"), "unexpected bytes after the records of " + name
        with open(path, "wb") as f:
            f.write(out + b"\0" * max(0, len(data) - len(out)))
    return changed


def test_unquoted_addresses_of_an_old_spool_are_quoted_again(make_daemon):
    rec = Recorder()
    try:
        d = make_daemon(customers=conf(rec.port)).start()
        sender = '"s t"@beta.example'
        wires = [w for _, w in CASES if w.startswith('"')]
        qids = {raw_send(d, sender, w, "old %d" % i): w for i, w in enumerate(wires)}
        d.stop()
        assert rewrite_envelopes(d.spool, legacy_form) == 2 * len(wires)

        d.start()
        listed = {m["queue_id"]: m for m in queue(d)}
        assert sorted(listed) == sorted(qids), listed         # nothing lost
        for qid, wire in qids.items():
            assert listed[qid]["sender"] == sender, listed[qid]
            assert [r["address"] for r in listed[qid]["recipients"]] == [wire]
            d.wait_log(r"%s: recipient address %s quoted again as %s" % (
                qid, re.escape(legacy_form(wire)), re.escape(wire)))

        d.kickq("link", "up", "acme", MTA_HOST)
        wait_for(lambda: all(rec.for_rcpt(w) for w in wires),
                 what="the old messages at the customer's server (lines %r)\n%s" % (rec.lines, d.log_text()))
        for w in wires:
            (txn, _), = rec.for_rcpt(w)
            assert txn == ["MAIL FROM:<%s>" % sender, "RCPT TO:<%s>" % w], txn
    finally:
        rec.stop()

"""Delivery to the customer's MTA (an aiosmtpd at 127.0.0.23): held mail
leaves at link up byte for byte, mail arriving while the link is up goes
straight out, 4xx retries and kicks, 5xx bounces with a DSN, connection
failures, link down and kill -9 in the middle of a 1,000-message flush,
expect_helo, online = "always", expiry and delay warnings, STARTTLS."""
import re
import time

from conftest import (MTA_HOST, customer_conf, dsn_fields, dsn_parts, queue,
                      queue_ids, send_many, seq_of, status_of, wait_for)
from delivery_util import (ACME, SENDER, _dsns, conf, link_up, send, simple,
                           strip_received, wait_empty, wait_gone, wait_status)


# ---- 1, 2: held mail leaves at link up; new mail goes straight out ----

def test_held_mail_delivered_byte_identical_at_link_up(make_daemon, mta):
    d = make_daemon(customers=conf(mta.port)).start()
    original = (b"From: <alice@sender.example>\r\n"
                b"To: <bob@acme.example>, <sales@acme.co.uk>\r\n"
                b"Subject: byte for byte\r\n"
                b"Message-ID: <bytes.1@sender.example>\r\n"
                b"X-Trailing-Space: yes   \r\n"
                b"X-Folded: first\r\n\tsecond\r\n"
                b"\r\n"
                b"first line\r\n"
                b".a line starting with a dot\r\n"
                b"..two dots\r\n"
                b".\r\n"
                b" .\r\n"
                b"8-bit: \xc3\xa9t\xc3\xa9 \xff\r\n"
                + b"x" * 900 + b"\r\n"
                b"\t tab and spaces \t\r\n"
                b"\r\n\r\n"
                b"last line\r\n")
    qid = send(d, ["bob@acme.example", "sales@acme.co.uk"], original,
               sender="alice@sender.example", mail_opts=["BODY=8BITMIME"])
    st = status_of(d, qid)
    assert {a: s for a, (s, _) in st.items()} == {"bob@acme.example": "queued",
                                                  "sales@acme.co.uk": "queued"}, st
    assert mta.messages == [] and mta.connections == 0    # held while the link is down

    link_up(d)
    msgs = mta.wait_messages(1)
    wait_empty(d)
    assert len(mta.messages) == 1, mta.messages     # both recipients in one transaction
    m = msgs[0]
    assert m.mail_from == "alice@sender.example"
    assert sorted(m.rcpt_tos) == ["bob@acme.example", "sales@acme.co.uk"]
    received, rest = strip_received(m.content)
    assert rest == original
    assert b"(kickmail)" in received and (b"id " + qid.encode()) in received, received
    assert received.count(b"Received:") == 1
    assert m.helo == "mx.test.example"
    assert "Mail queue is empty" in d.kickq("list").stdout
    d.wait_log(r"%s: to=<bob@acme\.example>, relay=[^,]*, delay=\d+, status=sent" % qid)
    d.wait_log(r"%s: to=<sales@acme\.co\.uk>, .*status=sent" % qid)


def test_mail_arriving_while_link_up_goes_straight_out(make_daemon, mta):
    d = make_daemon(customers=conf(mta.port)).start()
    link_up(d)
    assert d.kickq_json("links")[0]["state"] == "up"
    for i in range(3):
        send(d, ACME, simple("while up %d" % i))
        mta.wait_messages(i + 1)        # no kick: each one leaves by itself
    wait_empty(d)
    subjects = sorted(m.header("Subject") for m in mta.messages)
    assert subjects == ["while up 0", "while up 1", "while up 2"]


# ---- 3: 4xx stays, is retried, a kick retries at once ----

def test_4xx_at_mail_is_deferred_and_retried_while_link_up(make_daemon, mta):
    mta.mail_reply = "451 4.3.0 try later"
    d = make_daemon(customers=conf(mta.port)).start()
    link_up(d)
    qid = send(d, ACME, simple("retry me"))
    st = wait_status(d, qid, ACME, "deferred")
    assert "451" in st[ACME][1] and "try later" in st[ACME][1], st
    assert mta.messages == []
    tried = len([c for c in mta.commands if c[0] == "MAIL"])
    # still retried while the link stays up (retry_min = 1s)
    wait_for(lambda: len([c for c in mta.commands if c[0] == "MAIL"]) > tried, timeout=6,
             what="a retry while the link is up")
    wait_status(d, qid, ACME, "deferred")
    mta.accept_all()
    mta.wait_messages(1, timeout=8)     # no kick needed
    wait_gone(d, qid)
    assert mta.messages[0].header("Subject") == "retry me"
    d.wait_log(r"status=deferred")


def test_4xx_at_rcpt_defers_that_recipient_only(make_daemon, mta):
    mta.rcpt_replies["bob@acme.example"] = "451 4.2.1 mailbox busy"
    d = make_daemon(customers=conf(mta.port)).start()
    link_up(d)
    qid = send(d, ["bob@acme.example", "sales@acme.example"], simple("partly"))
    mta.wait_messages(1)
    assert mta.messages[0].rcpt_tos == ["sales@acme.example"]
    st = wait_status(d, qid, "bob@acme.example", "deferred")
    assert "451" in st["bob@acme.example"][1] and "mailbox busy" in st["bob@acme.example"][1]
    assert "sales@acme.example" not in st, st      # delivered: no longer listed as waiting
    mta.accept_all()
    mta.wait_messages(2, timeout=8)
    assert mta.messages[1].rcpt_tos == ["bob@acme.example"]
    wait_gone(d, qid)


def test_kick_retries_deferred_mail_at_once(make_daemon, mta):
    mta.mail_reply = "451 4.3.0 try later"
    d = make_daemon(customers=conf(mta.port, acme=dict(retry_min="1h", retry_max="2h"))).start()
    link_up(d)
    qid = send(d, ACME, simple("kick me"))
    wait_status(d, qid, ACME, "deferred")
    mta.accept_all()
    wait_for(lambda: mta.open_connections == 0, what="the last attempt's connection to close")
    r = d.kickq("kick", "acme")
    assert r.stdout.startswith("kicked acme: 1 messages to %s:%d" % (MTA_HOST, mta.port)), r.stdout
    mta.wait_messages(1, timeout=5)     # long before the 1 h backoff
    wait_gone(d, qid)


# ---- 4: 5xx bounces with a DSN ----

def test_5xx_bounces_with_a_dsn_to_the_sender(make_daemon, mta):
    mta.rcpt_replies["bob@acme.example"] = "550 5.1.1 no such user"
    d = make_daemon(customers=conf(mta.port)).start()
    qid = send(d, ["bob@acme.example", "sales@acme.example"],
               simple("the original subject", extra="Message-ID: <orig.550@beta.example>\r\n"))
    link_up(d)
    wait_for(lambda: mta.received_for(SENDER), what="the DSN at the sender's server")
    wait_gone(d, qid)
    got = mta.received_for("sales@acme.example")
    assert len(got) == 1 and got[0].rcpt_tos == ["sales@acme.example"]
    dsns = mta.received_for(SENDER)
    assert len(dsns) == 1, dsns
    dsn = dsns[0]
    assert dsn.mail_from in ("", "<>"), dsn.mail_from      # null reverse path
    msg, parts = dsn_parts(dsn.content)
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    assert "message/delivery-status" in parts, list(parts)
    assert "text/rfc822-headers" in parts, list(parts)
    assert "text/plain" in parts, list(parts)
    blocks = dsn_fields(parts["message/delivery-status"])
    assert "reporting-mta" in blocks[0], blocks
    rcpt = [b for b in blocks[1:] if "final-recipient" in b]
    assert len(rcpt) == 1, blocks               # only the refused recipient
    rb = rcpt[0]
    assert rb["final-recipient"].replace(" ", "").lower() == "rfc822;bob@acme.example", rb
    assert rb["action"].lower() == "failed"
    assert rb["status"] == "5.1.1"
    assert re.match(r"smtp;\s*550 5\.1\.1 no such user", rb["diagnostic-code"]), rb
    headers = parts["text/rfc822-headers"].get_payload()
    if isinstance(headers, list):
        headers = headers[0].as_string()
    assert "Subject: the original subject" in headers
    assert "<orig.550@beta.example>" in headers
    assert "hello" not in headers                  # headers only by default
    d.wait_log(r"%s: to=<bob@acme\.example>.*status=bounced" % qid)
    # the bounce names the DSN it made (Postfix), and that is the one delivered
    dsn_id = d.wait_log(r"%s: sender non-delivery notification: ([A-Z0-9]{10,20})\n"
                        % qid).group(1)
    d.wait_log(r"%s: to=<%s>, relay=.*status=sent" % (dsn_id, re.escape(SENDER)))


def test_5xx_with_null_sender_creates_no_dsn_to_a_sender(make_daemon, mta):
    mta.rcpt_replies["bob@acme.example"] = "550 5.1.1 no such user"
    d = make_daemon(customers=conf(mta.port)).start()
    qid = send(d, ACME, simple("from nobody", sender=""), sender="")
    link_up(d)
    wait_for(lambda: any(c == ("RCPT", ACME) for c in mta.commands), what="the attempt")
    wait_gone(d, qid)
    d.wait_log(r"%s: to=<bob@acme\.example>.*status=bounced" % qid)
    # nothing goes back to a (null) sender: a notice to postmaster, logged
    # with its queue ID
    dsn_id = d.wait_log(r"%s: postmaster non-delivery notification: ([A-Z0-9]{10,20})\n"
                        % qid).group(1)
    assert [(m["queue_id"], [r["address"] for r in m["recipients"]]) for m in queue(d)] \
        == [(dsn_id, ["noc@isp.example"])]
    assert mta.messages == []


# ---- 5: connection refused ----

def test_connection_refused_keeps_the_mail(make_daemon, make_mta):
    dead = make_mta(start=False)            # nothing listens at its port
    d = make_daemon(customers=conf(dead.port)).start()
    qid = send(d, ACME, simple("nobody home"))
    link_up(d)
    st = wait_status(d, qid, ACME, "deferred")
    reason = st[ACME][1] or ""
    assert re.search(r"refused|connect", reason, re.I), reason
    assert str(dead.port) in reason or MTA_HOST in reason, reason
    # and it goes out once the server listens (retry while the link is up)
    dead.start()
    dead.wait_messages(1, timeout=8)
    wait_gone(d, qid)


# ---- 6: link down in the middle of a 1,000-message flush ----

def test_link_down_during_a_1000_message_flush_keeps_the_rest(make_daemon, mta):
    d = make_daemon(customers=conf(mta.port, acme=dict(connections=2))).start()
    ids = send_many(d, 1000)
    by_id = {v: k for k, v in ids.items()}
    mta.data_delay = 0.003
    mta.gate_at = 300           # from then on DATA waits before recording
    link_up(d)
    wait_for(lambda: mta.blocked >= 1, timeout=30,
             what="the flush to reach the gate (%d received)" % len(mta.messages))
    try:                        # the other connection gets there a moment later
        wait_for(lambda: mta.blocked >= 2, timeout=1)
    except AssertionError:
        pass
    assert mta.connections <= 2, mta.connections     # many messages per connection
    d.kickq("link", "down", "acme")
    assert d.kickq_json("links")[0]["state"] == "down"
    # transactions in flight end (aborted, or finished); none starts afterwards
    try:
        wait_for(lambda: mta.blocked == 0, timeout=3)
    except AssertionError:
        pass
    mta.gate_open.set()

    def consistent():
        got = [seq_of(m) for m in mta.messages]
        queued = set(queue_ids(d))
        delivered = {ids[s] for s in got}
        return (len(got) == len(set(got)) and not (delivered & queued)
                and len(delivered) + len(queued) == 1000)
    try:
        wait_for(consistent, timeout=10)
    except AssertionError:
        got = [seq_of(m) for m in mta.messages]
        queued = set(queue_ids(d))
        dup = sorted(s for s in set(got) if got.count(s) > 1)
        both = sorted(by_id[q] for q in queued & {ids[s] for s in got})
        raise AssertionError("after link down: %d received (%d distinct, twice: %s), %d "
                             "queued, received and still queued: %s"
                             % (len(got), len(set(got)), dup[:10], len(queued), both[:10]))
    n_before = len(mta.messages)
    assert 300 <= n_before < 1000, n_before
    for m in queue(d):
        assert m["recipients"][0]["status"] in ("queued", "deferred"), m
    # nothing more leaves while the link is down
    assert len(mta.messages) == n_before
    mta.gate_at = None
    mta.data_delay = 0
    link_up(d)
    wait_for(lambda: len(mta.messages) >= 1000, timeout=30,
             what="all 1000 after the next link up (have %d)" % len(mta.messages))
    wait_empty(d)
    got = sorted(seq_of(m) for m in mta.messages)
    assert got == list(range(1000)), "duplicates or losses: %d received" % len(got)


# ---- 9: expect_helo ----

def test_expect_helo_mismatch_keeps_the_mail(make_daemon, make_mta):
    other = make_mta(hostname="other.example")
    d = make_daemon(customers=conf(other.port, acme=dict(expect_helo="mail.acme.example"))).start()
    qid = send(d, ACME, simple("not for strangers"))
    link_up(d)
    st = wait_status(d, qid, ACME, "deferred")
    reason = st[ACME][1] or ""
    assert "other.example" in reason or "expected" in reason, reason
    assert other.messages == []
    assert not any(c[0] == "MAIL" for c in other.commands), other.commands


def test_expect_helo_match_delivers(make_daemon, make_mta):
    right = make_mta(hostname="mail.acme.example")
    d = make_daemon(customers=conf(right.port, acme=dict(expect_helo="mail.acme.example"))).start()
    qid = send(d, ACME, simple("for the right server"))
    link_up(d)
    right.wait_messages(1)
    wait_gone(d, qid)


# ---- 10: online = "always" ----

def test_online_always_fixed_host_delivers_without_a_link(make_daemon, mta):
    customers = (customer_conf("acme", ["acme.example"], deliver="%s:%d" % (MTA_HOST, mta.port),
                               online="always", retry_min="1s", retry_max="2s"))
    d = make_daemon(customers=customers).start()
    qid = send(d, ACME, simple("leased line"))
    mta.wait_messages(1)
    wait_gone(d, qid)
    assert d.kickq_json("links") == [] or d.kickq_json("links")[0]["state"] == "down"


def test_fixed_host_online_detect_waits_for_a_kick(make_daemon, mta):
    customers = customer_conf("acme", ["acme.example"], deliver="%s:%d" % (MTA_HOST, mta.port))
    d = make_daemon(customers=customers).start()
    qid = send(d, ACME, simple("dial-up fixed host"))
    assert status_of(d, qid)[ACME][0] == "queued"
    r = d.kickq("kick", "acme")
    assert r.stdout.strip() == "kicked acme: 1 messages to %s:%d" % (MTA_HOST, mta.port)
    mta.wait_messages(1)
    wait_gone(d, qid)
    assert mta.messages[0].header("Subject") == "dial-up fixed host"


def test_link_refresh_does_not_abort_a_fixed_host_delivery(make_daemon, mta):
    """A customer with a fixed deliver host and online = "detect": its link
    coming up again with another address (a refresh) says nothing about
    where the mail goes, so the delivery in progress goes on."""
    customers = customer_conf("acme", ["acme.example"], deliver="%s:%d" % (MTA_HOST, mta.port))
    d = make_daemon(customers=customers).start()
    ids = [send(d, ACME, simple("fixed %d" % i)) for i in range(10)]
    mta.gate_at = 3
    link_up(d, "acme", "127.0.0.99")
    wait_for(lambda: mta.blocked >= 1, timeout=10, what="a DATA held at the gate")
    opened = mta.connections
    link_up(d, "acme", "127.0.0.98")            # up again, another address
    time.sleep(0.3)
    mta.gate_open.set()
    mta.wait_messages(10)
    for qid in ids:
        wait_gone(d, qid)
    assert "link address changed" not in d.log_since_start()
    assert mta.connections == opened            # the same connection went on


def test_link_up_at_a_new_address_moves_a_link_delivery_there(make_daemon, make_mta):
    """deliver = "link": the link coming up again at another address (the
    customer redialled and got a new one) ends the connections to the old
    address and sends the rest to the new one."""
    old = make_mta()
    new = make_mta(port=old.port, host="127.0.0.24")
    d = make_daemon(customers=conf(old.port)).start()
    ids = [send(d, ACME, simple("moving %d" % i)) for i in range(10)]
    old.gate_at = 3
    link_up(d, "acme", MTA_HOST)
    wait_for(lambda: old.blocked >= 1, timeout=10, what="a DATA held at the gate")
    link_up(d, "acme", "127.0.0.24")
    d.wait_log("link address changed")
    old.gate_open.set()
    for qid in ids:
        wait_gone(d, qid)
    got = sorted(m.header("Subject") for m in old.messages + new.messages)
    assert len(new.messages) >= 7, (len(old.messages), len(new.messages))
    assert len(set(got)) == 10          # each once: none lost, none twice


# ---- 11: kill -9 during a 1,000-message flush ----

def test_kill9_during_a_1000_message_flush_loses_nothing(make_daemon, mta):
    d = make_daemon(customers=conf(mta.port, acme=dict(connections=2))).start()
    ids = send_many(d, 1000)
    mta.data_delay = 0.002
    link_up(d)
    wait_for(lambda: len(mta.messages) >= 250, timeout=30, what="the flush under way")
    d.kill9()
    n_at_kill = len(mta.messages)
    assert n_at_kill < 1000
    mta.data_delay = 0
    d.start()
    r = d.kickq("kick", "acme", check=False)       # the link survived: may be running already
    assert r.returncode == 0, r.stderr
    wait_for(lambda: len({seq_of(m) for m in mta.messages}) >= 1000, timeout=40,
             what="every message delivered (have %d distinct)"
             % len({seq_of(m) for m in mta.messages}))
    wait_empty(d, timeout=15)
    got = [seq_of(m) for m in mta.messages]
    assert set(got) == set(range(1000))
    dups = len(got) - len(set(got))
    # a duplicate only for a transaction whose 2xx was not yet recorded
    assert dups <= 10 * 2, "%d duplicates" % dups
    assert set(ids) == set(range(1000))


# ---- 14: expiry and delay warnings ----



def test_expiry_warns_then_bounces_with_4_4_7(make_daemon, mta):
    d = make_daemon(customers=conf(mta.port, acme=dict(hold_time="3s", warn_time="1s"))).start()
    qid = send(d, ACME, simple("expire me", extra="Message-ID: <expire.1@beta.example>\r\n"))
    # the link stays down: first a delay notification...
    wait_for(lambda: _dsns(mta), timeout=6, what="the delay DSN")
    blocks, hdrs, msg = _dsns(mta)[0]
    rb = [b for b in blocks if "final-recipient" in b][0]
    assert rb["action"].lower() == "delayed", blocks
    assert rb["status"].startswith("4."), rb
    assert "<expire.1@beta.example>" in hdrs
    assert msg.get_param("report-type") == "delivery-status"
    assert qid in queue_ids(d)              # still waiting after the warning
    d.wait_log(r"%s: sender delay notification: [A-Z0-9]{10,20}\n" % qid)
    # ...then, after hold_time, the failure with 4.4.7, and the original is gone
    wait_for(lambda: len(_dsns(mta)) >= 2, timeout=8, what="the failure DSN")
    wait_gone(d, qid)
    dsns = _dsns(mta)
    assert len(dsns) == 2, [b for b, _, _ in dsns]      # one warning only
    blocks, hdrs, _ = dsns[1]
    rb = [b for b in blocks if "final-recipient" in b][0]
    assert rb["action"].lower() == "failed", blocks
    assert rb["status"] == "4.4.7", rb
    assert "<expire.1@beta.example>" in hdrs
    assert mta.received_for(ACME) == []


def test_held_message_does_not_expire_while_held(make_daemon, mta):
    d = make_daemon(customers=conf(mta.port, acme=dict(hold_time="2s"))).start()
    keep = send(d, ACME, simple("held one", extra="Message-ID: <held.1@beta.example>\r\n"))
    d.kickq("hold", keep)
    gone = send(d, ACME, simple("free one", extra="Message-ID: <free.1@beta.example>\r\n"))
    wait_for(lambda: _dsns(mta), timeout=8, what="the failure DSN of the unheld message")
    wait_gone(d, gone)
    # one more expiry tick: the held message stays (it is as old as the other)
    time.sleep(1.5)
    assert keep in queue_ids(d)
    assert status_of(d, keep)[ACME][0] == "held"
    dsns = _dsns(mta)
    assert len(dsns) == 1 and "<free.1@beta.example>" in dsns[0][1], [h for _, h, _ in dsns]
    # released, it expires at once
    d.kickq("release", keep)
    wait_gone(d, keep, timeout=6)
    wait_for(lambda: len(_dsns(mta)) == 2, timeout=6, what="the DSN of the released message")
    assert "<held.1@beta.example>" in _dsns(mta)[1][1]


# ---- 15: STARTTLS ----

def test_starttls_to_the_customer_server(make_daemon, make_mta):
    tls_mta = make_mta(tls=True)
    d = make_daemon(customers=conf(tls_mta.port, acme=dict(tls="encrypt"))).start()
    qid = send(d, ACME, simple("over tls"))
    link_up(d)
    tls_mta.wait_messages(1)
    wait_gone(d, qid)
    assert tls_mta.messages[0].tls, "the message did not come under TLS"
    assert tls_mta.messages[0].header("Subject") == "over tls"


def test_starttls_may_uses_tls_when_offered(make_daemon, make_mta):
    tls_mta = make_mta(tls=True)
    d = make_daemon(customers=conf(tls_mta.port)).start()       # tls = "may" (default)
    link_up(d)
    send(d, ACME, simple("opportunistic"))
    tls_mta.wait_messages(1)
    assert tls_mta.messages[0].tls


def test_tls_encrypt_without_starttls_keeps_the_mail(make_daemon, mta):
    d = make_daemon(customers=conf(mta.port, acme=dict(tls="encrypt"))).start()
    qid = send(d, ACME, simple("needs tls"))
    link_up(d)
    st = wait_status(d, qid, ACME, "deferred")
    assert re.search(r"tls", st[ACME][1] or "", re.I), st
    assert mta.messages == []
    assert not any(c[0] == "MAIL" for c in mta.commands)


def test_tls_may_falls_back_to_plaintext_after_a_failed_handshake(make_daemon, make_mta):
    bad = make_mta(tls="broken")
    d = make_daemon(customers=conf(bad.port)).start()           # tls = "may" (default)
    qid = send(d, ACME, simple("broken tls"))
    link_up(d)
    bad.wait_messages(1)
    wait_gone(d, qid)
    assert not bad.messages[0].tls
    assert bad.messages[0].header("Subject") == "broken tls"
    d.wait_log(r"next attempts in plaintext")


# ---- 16: kickq bounce ----

def test_kickq_bounce_returns_the_message_with_a_dsn(make_daemon, mta):
    d = make_daemon(customers=conf(mta.port)).start()
    qid = send(d, ACME, simple("send it back", extra="Message-ID: <back.1@beta.example>\r\n"))
    r = d.kickq("bounce", qid)
    assert "bounced 1 message" in r.stdout, r.stdout
    wait_gone(d, qid)
    wait_for(lambda: _dsns(mta), what="the DSN at the sender's server")
    blocks, hdrs, _ = _dsns(mta)[0]
    rb = [b for b in blocks if "final-recipient" in b][0]
    assert rb["final-recipient"].replace(" ", "").lower() == "rfc822;bob@acme.example"
    assert rb["action"].lower() == "failed"
    assert rb["status"].startswith("5."), rb
    assert "<back.1@beta.example>" in hdrs
    assert mta.received_for(ACME) == []
    r = d.kickq("bounce", qid, check=False)
    assert r.returncode == 1 and r.stderr.strip()


"""Delivery to the customer's MTA, more of the SMTP client: PIPELINING,
replies at every stage, SIZE, 452 4.5.3, HELO fallback, timeouts, parallel
connections, reloads and holds during a flush, and the remote's replies as
untrusted input (cf. OpenSMTPD CVE-2020-8794).  Split from
test_delivery.py (1,229 lines); shares delivery_util.py."""
import re
import socket
import time

import pytest

from conftest import (MTA_HOST, customer_conf, dsn_parts, queue,
                      queue_ids, send_many, seq_of, status_of, wait_for)
from delivery_util import (ACME, SENDER, _dsns, conf, link_up, send, simple,
                           strip_received, wait_empty, wait_gone, wait_status)


# ---- more of the SMTP client: PIPELINING, replies at every stage, SIZE,
# ---- 452 4.5.3, HELO fallback, timeouts, parallel connections ----

@pytest.mark.parametrize("pipelining", [False, True])
def test_4xx_at_mail_defers_every_recipient(make_daemon, mta, pipelining):
    # with PIPELINING the RCPTs and DATA after a refused MAIL get 503s from
    # aiosmtpd: the MAIL reply is what counts, nothing bounces
    mta.pipelining = pipelining
    mta.mail_reply = "451 4.3.0 try later"
    d = make_daemon(customers=conf(mta.port, acme=dict(retry_min="1h", retry_max="2h"))).start()
    link_up(d)
    qid = send(d, ["bob@acme.example", "sales@acme.example"], simple("pipelined"))
    st = wait_status(d, qid, "bob@acme.example", "deferred")
    wait_status(d, qid, "sales@acme.example", "deferred")
    st = status_of(d, qid)
    for a in ("bob@acme.example", "sales@acme.example"):
        assert "451 4.3.0 try later" in st[a][1], st
    assert "status=bounced" not in d.log_text()
    assert queue(d, "beta") == []               # no DSN
    mta.accept_all()
    wait_for(lambda: mta.open_connections == 0, what="the last attempt's connection to close")
    d.kickq("kick", "acme")
    mta.wait_messages(1)
    wait_gone(d, qid)
    assert sorted(mta.messages[0].rcpt_tos) == ["bob@acme.example", "sales@acme.example"]
    assert mta.messages[0].content.endswith(b"\r\nhello\r\n")


@pytest.mark.parametrize("pipelining", [False, True])
def test_5xx_for_every_recipient_sends_no_data(make_daemon, make_mta, pipelining):
    mta, senders = make_mta(), make_mta()       # the DSN goes to the senders' server
    mta.pipelining = pipelining
    mta.rcpt_reply = "550 5.1.1 no such user"
    d = make_daemon(customers=conf(mta.port, beta_port=senders.port)).start()
    link_up(d)
    qid = send(d, ["bob@acme.example", "sales@acme.example"], simple("nobody"))
    wait_for(lambda: senders.received_for(SENDER), what="the DSN")
    wait_gone(d, qid)
    assert not any(c[0] == "DATA" for c in mta.commands)
    blocks, _, _ = _dsns(senders)[0]
    rcpts = sorted(b["final-recipient"].split(";")[1].strip() for b in blocks
                   if "final-recipient" in b)
    assert rcpts == ["bob@acme.example", "sales@acme.example"], blocks
    assert mta.received_for(ACME) == []
    # the connection is still usable: the next message goes through
    mta.accept_all()
    send(d, ACME, simple("afterwards"))
    wait_for(lambda: mta.received_for(ACME), what="the next message")


def test_5xx_at_mail_bounces_every_recipient(make_daemon, make_mta):
    mta, senders = make_mta(), make_mta()
    mta.mail_reply = "553 5.7.1 sender refused"
    d = make_daemon(customers=conf(mta.port, beta_port=senders.port)).start()
    qid = send(d, ["bob@acme.example", "sales@acme.example"], simple("refused sender"))
    link_up(d)
    wait_for(lambda: senders.received_for(SENDER), what="the DSN")
    wait_gone(d, qid)
    blocks, _, _ = _dsns(senders)[0]
    rb = [b for b in blocks if "final-recipient" in b]
    assert len(rb) == 2 and all(b["status"] == "5.7.1" for b in rb), blocks
    assert all("553 5.7.1 sender refused" in b["diagnostic-code"] for b in rb)


def test_5xx_at_final_dot_bounces(make_daemon, make_mta):
    mta, senders = make_mta(), make_mta()
    mta.data_reply = "554 5.6.0 content rejected"
    d = make_daemon(customers=conf(mta.port, beta_port=senders.port)).start()
    qid = send(d, ACME, simple("bad content"))
    link_up(d)
    wait_for(lambda: senders.received_for(SENDER), what="the DSN")
    wait_gone(d, qid)
    blocks, _, _ = _dsns(senders)[0]
    rb = [b for b in blocks if "final-recipient" in b][0]
    assert rb["status"] == "5.6.0" and rb["action"].lower() == "failed", rb
    assert "554 5.6.0 content rejected" in rb["diagnostic-code"]


def test_4xx_at_final_dot_defers(make_daemon, mta):
    mta.data_reply = "452 4.3.1 insufficient storage"
    d = make_daemon(customers=conf(mta.port)).start()
    qid = send(d, ACME, simple("disk full"))
    link_up(d)
    st = wait_status(d, qid, ACME, "deferred")
    assert "452 4.3.1 insufficient storage" in st[ACME][1]
    mta.accept_all()
    mta.wait_messages(1, timeout=8)
    wait_gone(d, qid)
    assert len(mta.messages) == 1


def test_message_larger_than_remote_size_bounces(make_daemon, make_mta):
    small = make_mta(start=False)
    small.size_limit = 2000
    small.start()
    senders = make_mta()
    d = make_daemon(customers=conf(small.port, beta_port=senders.port)).start()
    big = simple("too big", extra="X-Pad: %s\r\n" % ("y" * 900)) + (b"z" * 900 + b"\r\n") * 4
    qid = send(d, ACME, big)
    small_qid = send(d, ACME, simple("fits"))
    link_up(d)
    wait_for(lambda: senders.received_for(SENDER), what="the DSN for the big one")
    wait_gone(d, qid)
    wait_gone(d, small_qid)
    assert [m.header("Subject") for m in small.received_for(ACME)] == ["fits"]
    blocks, _, _ = _dsns(senders)[0]
    rb = [b for b in blocks if "final-recipient" in b][0]
    assert rb["action"].lower() == "failed" and rb["status"].startswith("5."), rb
    bounced = r"%s: to=<bob@acme\.example>.*status=bounced" % qid
    d.wait_log(bounced)
    assert len(re.findall(bounced, d.log_text())) == 1


def test_452_too_many_recipients_sends_the_rest_in_another_transaction(make_daemon, mta):
    mta.max_rcpts = 2
    d = make_daemon(customers=conf(mta.port)).start()
    rcpts = ["u%d@acme.example" % i for i in range(5)]
    qid = send(d, rcpts, simple("many"))
    link_up(d)
    wait_for(lambda: sum(len(m.rcpt_tos) for m in mta.messages) >= 5,
             what="all five recipients (have %r)" % [m.rcpt_tos for m in mta.messages])
    wait_gone(d, qid)
    got = sorted(r for m in mta.messages for r in m.rcpt_tos)
    assert got == rcpts, got
    assert all(len(m.rcpt_tos) <= 2 for m in mta.messages)
    assert len({m.content for m in mta.messages}) == 1
    assert mta.connections == 1            # on the same connection
    assert "status=deferred" not in d.log_text()


def test_reload_removing_a_customer_mid_message_does_not_resend_its_delivered_part(
        make_daemon, mta):
    """A message's first transaction (2 of 4 recipients, the server takes 2
    per transaction) is delivered; during the second, a reload removes the
    customer and gives its domain to another.  The reload ends the
    connection: the two delivered recipients stay delivered, only the other
    two go to the new owner."""
    mta.max_rcpts = 2
    mta.gate_at = 1                     # the second transaction's DATA waits
    d = make_daemon(customers=conf(mta.port)).start()
    rcpts = ["u%d@acme.example" % i for i in range(4)]
    qid = send(d, rcpts, simple("split"))
    link_up(d)
    wait_for(lambda: mta.blocked >= 1, timeout=10, what="the second DATA at the gate")
    d.customers = customer_conf("acme2", ["acme.example"],
                                deliver="%s:%d" % (MTA_HOST, mta.port), online="always")
    d.write_conf()
    mark = len(d.log_text())
    d.hup()
    wait_for(lambda: "configuration reloaded" in d.log_text()[mark:], what="the reload")
    mta.gate_open.set()
    wait_gone(d, qid)
    mta.gate_at = None
    time.sleep(0.5)                     # a wrong resend would come now
    got = [r for m in mta.messages for r in m.rcpt_tos]
    assert sorted(set(got)) == rcpts, got
    first = mta.messages[0].rcpt_tos
    assert all(got.count(r) == 1 for r in first), got


def test_reload_changing_the_deliver_host_applies_to_the_next_mail(make_daemon, make_mta):
    """online = "always", deliver = HOST:PORT changed by a reload between two
    messages: the second goes to the new server."""
    old, new = make_mta(), make_mta()
    cust = lambda port: customer_conf("acme", ["acme.example"], online="always",
                                      deliver="%s:%d" % (MTA_HOST, port))
    d = make_daemon(customers=cust(old.port)).start()
    send(d, ACME, simple("first"))
    old.wait_messages(1)
    d.customers = cust(new.port)
    d.write_conf()
    mark = len(d.log_text())
    d.hup()
    wait_for(lambda: "configuration reloaded" in d.log_text()[mark:], what="the reload")
    qid = send(d, ACME, simple("second"))
    new.wait_messages(1)
    wait_gone(d, qid)
    assert [m.header("Subject") for m in old.messages] == ["first"]


def test_deliver_pointing_at_this_daemon_is_a_loop_not_a_copy_storm(make_daemon):
    """deliver = our own SMTP address: the server greets with our own
    name, so the mail is deferred as a loop instead of being passed round
    until its hop count runs out."""
    d = make_daemon()
    d.customers = customer_conf("acme", ["acme.example"], online="always",
                                deliver="127.0.0.1:%d" % d.port, retry_min="1s",
                                retry_max="2s")
    d.write_conf()
    d.start()
    qid = send(d, ACME, simple("to myself"))
    d.wait_log(r"%s: to=<bob@acme\.example>, relay=127\.0\.0\.1:%d, delay=\d+, "
               r"status=deferred \(mail loops back to myself" % (qid, d.port))
    time.sleep(1.5)                     # a retry: still one message, deferred
    assert queue_ids(d) == [qid]
    assert status_of(d, qid)[ACME][0] == "deferred"


@pytest.mark.parametrize("ours,theirs", [
    ("localhost", "localhost"),
    ("localhost.localdomain", "localhost.localdomain"),
    ("kickmail", "kickmail"),                   # a name without a dot
    ("127.0.0.1", "127.0.0.1"),
])
def test_generic_greeting_name_is_not_a_loop(make_daemon, make_mta, ours, theirs):
    """A customer's server greeting with the same generic name as ours
    (localhost on a machine whose /etc/hosts maps its name to 127.0.0.1,
    as the README's tour meets it) is another host: delivered, not
    deferred as a loop.  Only a real FQDN of ours proves a loop."""
    mta = make_mta(hostname=theirs)
    d = make_daemon(customers=conf(mta.port))
    d.write_conf(d.conf_text().replace('hostname = "mx.test.example"',
                                       'hostname = "%s"' % ours, 1))
    d.start()
    link_up(d)
    qid = send(d, ACME, simple("same name"))
    mta.wait_messages(1)
    wait_gone(d, qid)
    assert "loops back" not in d.log_text()


def test_helo_fallback_when_ehlo_is_refused(make_daemon, mta):
    mta.ehlo_reply = "502 5.5.1 EHLO not implemented"
    d = make_daemon(customers=conf(mta.port)).start()
    qid = send(d, ACME, simple("old server"))
    link_up(d)
    mta.wait_messages(1)
    wait_gone(d, qid)


def test_dsn_return_full(make_daemon, mta):
    mta.rcpt_replies["bob@acme.example"] = "550 5.1.1 no such user"
    d = make_daemon(customers=conf(mta.port), extra='dsn_return = "full"').start()
    qid = send(d, ACME, simple("return all of it"))
    link_up(d)
    wait_for(lambda: mta.received_for(SENDER), what="the DSN")
    wait_gone(d, qid)
    msg, parts = dsn_parts(mta.received_for(SENDER)[0].content)
    assert "message/rfc822" in parts, list(parts)
    assert "text/rfc822-headers" not in parts
    inner = parts["message/rfc822"].get_payload()[0]
    assert inner["Subject"] == "return all of it"
    assert "hello" in inner.get_payload()


def test_dsn_to_an_outside_sender_waits_in_the_outbound_queue(make_daemon, mta):
    mta.rcpt_replies["bob@acme.example"] = "550 5.1.1 no such user"
    d = make_daemon(customers=conf(mta.port)).start()
    qid = send(d, ACME, simple("from outside", sender="alice@sender.example"),
               sender="alice@sender.example")
    link_up(d)
    wait_gone(d, qid)
    wait_for(lambda: queue(d), what="the DSN in the queue")
    (dsn,) = queue(d)
    assert dsn["sender"] == ""
    assert [(r["address"], r["customer"]) for r in dsn["recipients"]] == [
        ("alice@sender.example", None)]
    body = d.kickq("show", dsn["queue_id"], "--body").stdout
    assert "multipart/report" in body and "5.1.1" in body and "from outside" in body
    summary = {s["customer"]: s for s in d.kickq_json("summary")}
    assert summary["(outbound)"]["messages"] == 1, summary


def test_nothing_is_retried_while_the_link_is_down(make_daemon, mta):
    mta.mail_reply = "451 4.3.0 try later"
    d = make_daemon(customers=conf(mta.port, acme=dict(retry_min="1s", retry_max="1s"))).start()
    link_up(d)
    qid = send(d, ACME, simple("wait"))
    wait_status(d, qid, ACME, "deferred")
    d.kickq("link", "down", "acme")
    n = len(mta.commands)
    time.sleep(2.5)                 # two retry periods: nothing may happen
    assert len(mta.commands) == n, mta.commands[n:]
    mta.accept_all()
    link_up(d)                      # the next link up retries at once
    mta.wait_messages(1, timeout=3)
    wait_gone(d, qid)


def test_timeout_when_the_server_never_greets(make_daemon):
    s = socket.socket()
    s.bind((MTA_HOST, 0))
    s.listen(8)                     # connections complete, nobody answers
    try:
        port = s.getsockname()[1]
        d = make_daemon(customers=conf(port), env={"KICKMAIL_TEST_TIMEOUT_MS": "300"}).start()
        qid = send(d, ACME, simple("silence"))
        link_up(d)
        st = wait_status(d, qid, ACME, "deferred", timeout=8)
        assert re.search(r"time", st[ACME][1] or "", re.I), st
    finally:
        s.close()


def test_timeout_waiting_for_the_final_reply_counts_nothing_delivered(make_daemon, mta):
    mta.data_delay = 3.0            # the reply to the final dot comes too late
    d = make_daemon(customers=conf(mta.port),
                    env={"KICKMAIL_TEST_TIMEOUT_MS": "400"}).start()
    qid = send(d, ACME, simple("slow server"))
    link_up(d)
    st = wait_status(d, qid, ACME, "deferred", timeout=8)
    assert re.search(r"time", st[ACME][1] or "", re.I), st
    assert mta.messages == []       # the server's handler was cut off with the connection
    mta.data_delay = 0
    mta.wait_messages(1, timeout=8)
    wait_gone(d, qid)
    assert len(mta.messages) == 1


def test_flush_uses_the_configured_connections_and_reuses_them(make_daemon, mta):
    d = make_daemon(customers=conf(mta.port, acme=dict(connections=3))).start()
    send_many(d, 60)
    mta.data_delay = 0.01
    link_up(d)
    mta.wait_messages(60, timeout=15)
    wait_empty(d)
    assert mta.max_open <= 3, mta.max_open
    assert mta.max_open >= 2, mta.max_open          # parallel connections were used
    assert mta.connections <= 6, mta.connections    # many messages per connection
    assert sorted(seq_of(m) for m in mta.messages) == list(range(60))


def test_held_customer_is_not_delivered_until_released(make_daemon, mta):
    d = make_daemon(customers=conf(mta.port)).start()
    d.kickq("hold", "acme")
    qid = send(d, ACME, simple("on hold"))
    link_up(d)
    send(d, "x@beta.example", simple("barrier", to="x@beta.example"))
    wait_for(lambda: mta.received_for("x@beta.example"), what="the barrier message")
    assert mta.received_for(ACME) == []
    d.kickq("release", "acme")
    # the link is still up: release resumes delivery without a kick
    wait_for(lambda: mta.received_for(ACME), timeout=5, what="delivery after release")
    wait_gone(d, qid)


def test_message_held_after_its_body_was_read_ahead_is_not_sent(make_daemon, mta):
    """Each connection reads the next message's body while the current one
    is being sent.  A message held meanwhile must not go out: the read-ahead
    is dropped and the message after it is sent instead."""
    d = make_daemon(customers=conf(mta.port, acme=dict(connections=1))).start()
    ids = [send(d, ACME, simple("ahead %d" % i)) for i in range(3)]
    mta.gate_at = 0                     # the first DATA waits at the gate
    link_up(d)
    wait_for(lambda: mta.blocked >= 1, timeout=10, what="the first DATA at the gate")
    d.kickq("hold", ids[1])             # its body is already read ahead
    mta.gate_open.set()
    wait_gone(d, ids[0])
    wait_gone(d, ids[2])
    subjects = sorted(m.header("Subject") for m in mta.messages)
    assert subjects == ["ahead 0", "ahead 2"], subjects
    assert queue_ids(d) == [ids[1]]
    d.kickq("release", ids[1])
    wait_gone(d, ids[1])
    assert len(mta.messages) == 3


def test_read_ahead_message_is_deferred_when_the_connection_fails(make_daemon, mta):
    """The connection dies (421 to the first DATA) while the second message
    is read ahead: that message is deferred and logged like every other one
    the pass did not get to, not left silently untried."""
    d = make_daemon(customers=conf(mta.port, acme=dict(connections=1))).start()
    ids = [send(d, ACME, simple("dies %d" % i)) for i in range(6)]
    mta.data_reply = "421 4.3.2 going down"
    link_up(d)
    for qid in ids:
        d.wait_log(r"%s: to=<bob@acme\.example>, relay=[^,]+, delay=\d+, status=deferred" % qid)
    assert sorted(queue_ids(d)) == sorted(ids)


def test_deleting_messages_during_a_flush(make_daemon, mta):
    """kickq delete while the customer's mail is being flushed: a message is
    either delivered or deleted, never both, never lost, and the daemon
    (under ASan in make check) never touches a deleted message."""
    d = make_daemon(customers=conf(mta.port)).start()
    ids = send_many(d, 300)
    by_id = {v: k for k, v in ids.items()}
    mta.data_delay = 0.001
    link_up(d)
    deleted = set()
    deadline = time.time() + 30
    while time.time() < deadline:
        left = [q for q in queue_ids(d) if q not in deleted]
        if not left:
            break
        for qid in left[-3:]:
            r = d.kickq("delete", qid, check=False)
            if r.returncode == 0:
                deleted.add(qid)
    wait_for(lambda: queue_ids(d) == [], timeout=30, what="an empty queue")
    got = [seq_of(m) for m in mta.messages]
    delivered = {ids[n] for n in got}
    assert len(got) == len(set(got)), "a message was delivered twice"
    assert not delivered & deleted, sorted(by_id[q] for q in delivered & deleted)
    assert len(delivered) + len(deleted) == 300
    assert deleted, "no delete got through during the flush"
    d.stop()


def test_released_message_goes_out_while_the_link_is_up(make_daemon, mta):
    d = make_daemon(customers=conf(mta.port)).start()
    qid = send(d, ACME, simple("held one"))
    free = send(d, ACME, simple("free one"))
    d.kickq("hold", qid)
    link_up(d)
    wait_for(lambda: mta.received_for(ACME), what="the unheld message")
    wait_gone(d, free)
    assert status_of(d, qid)[ACME][0] == "held"
    assert [m.header("Subject") for m in mta.messages] == ["free one"]
    d.kickq("release", qid)
    # the link is still up: the released message goes out without a kick
    wait_for(lambda: len(mta.received_for(ACME)) == 2, timeout=5,
             what="delivery after release")
    wait_gone(d, qid)


def test_delivery_log_line(make_daemon, mta):
    d = make_daemon(customers=conf(mta.port)).start()
    qid = send(d, ACME, simple("logged"))
    link_up(d)
    mta.wait_messages(1)
    wait_gone(d, qid)
    d.wait_log(r"%s: to=<bob@acme\.example>" % qid)
    lines = [l for l in d.log_text().splitlines() if qid in l and "to=<bob@acme.example>" in l]
    assert len(lines) == 1, lines
    l = lines[0]
    assert re.search(r"relay=\[?%s\]?:%d" % (re.escape(MTA_HOST), mta.port), l) or \
        ("relay=" in l and MTA_HOST in l), l
    assert re.search(r"delay=\d+", l) and "status=sent" in l, l
    assert "OK: accepted" in l, l                   # the remote's reply


# ---- the remote's replies are untrusted (cf. OpenSMTPD CVE-2020-8794) ----

def test_multiline_4xx_reply_becomes_a_one_line_reason(make_daemon, mta):
    mta.mail_reply = "451-4.3.0 first line\r\n451-4.3.0 \x1b[31mred\x00\r\n451 4.3.0 last line"
    d = make_daemon(customers=conf(mta.port, acme=dict(retry_min="1h", retry_max="2h"))).start()
    qid = send(d, ACME, simple("multi-line"))
    link_up(d)
    st = wait_status(d, qid, ACME, "deferred")
    reason = st[ACME][1]
    assert "last line" in reason and "451" in reason, reason
    assert not re.search(r"[\x00-\x1f\x7f]", reason), repr(reason)
    listing = d.kickq("list").stdout
    assert "\x1b" not in listing and "\x00" not in listing
    assert qid in listing


def test_overlong_reply_line_is_a_protocol_error_not_a_crash(make_daemon, mta):
    mta.mail_reply = "550 5.7.1 " + "x" * 5000
    d = make_daemon(customers=conf(mta.port, acme=dict(retry_min="1h", retry_max="2h"))).start()
    qid = send(d, ACME, simple("long reply"))
    link_up(d)
    st = wait_status(d, qid, ACME, "deferred")      # not a 5xx we can trust: kept
    assert len(st[ACME][1]) < 2100, len(st[ACME][1])
    assert d.proc.poll() is None
    mta.accept_all()
    wait_for(lambda: mta.open_connections == 0, what="the last attempt's connection to close")
    d.kickq("kick", "acme")
    mta.wait_messages(1)


def test_malformed_reply_is_deferred(make_daemon, mta):
    mta.mail_reply = "hello there"
    d = make_daemon(customers=conf(mta.port, acme=dict(retry_min="1h", retry_max="2h"))).start()
    qid = send(d, ACME, simple("garbage reply"))
    link_up(d)
    wait_status(d, qid, ACME, "deferred")
    assert "status=bounced" not in d.log_text()


def test_long_5xx_reply_in_the_dsn_is_bounded(make_daemon, make_mta):
    mta, senders = make_mta(), make_mta()
    mta.rcpt_replies["bob@acme.example"] = "550 5.1.1 " + "y" * 1800
    d = make_daemon(customers=conf(mta.port, beta_port=senders.port)).start()
    qid = send(d, ACME, simple("long 5xx"))
    link_up(d)
    wait_for(lambda: senders.received_for(SENDER), what="the DSN")
    wait_gone(d, qid)
    content = senders.received_for(SENDER)[0].content
    assert max(len(l) for l in content.split(b"\r\n")) <= 998
    blocks, _, _ = _dsns(senders)[0]
    rb = [b for b in blocks if "final-recipient" in b][0]
    assert rb["status"] == "5.1.1" and "550 5.1.1 yyyy" in rb["diagnostic-code"], rb


def test_mail_arriving_during_a_flush_is_picked_up(make_daemon, mta):
    d = make_daemon(customers=conf(mta.port)).start()
    send_many(d, 40, threads=2, tag="first")
    mta.data_delay = 0.01
    link_up(d)
    mta.wait_messages(5)
    late = [send(d, ACME, simple("late %d" % i)) for i in range(5)]
    mta.wait_messages(45, timeout=15)
    wait_empty(d)
    assert sorted(m.header("Subject") for m in mta.messages
                  if m.header("Subject").startswith("late")) == ["late %d" % i for i in range(5)]
    assert all(q not in queue_ids(d) for q in late)


def test_link_bouncing_down_and_up_during_a_flush_resumes_at_once(make_daemon, mta):
    d = make_daemon(customers=conf(mta.port, acme=dict(retry_min="1h", retry_max="2h"))).start()
    send_many(d, 30, threads=2)
    mta.data_delay = 0.05
    link_up(d)
    mta.wait_messages(3)
    d.kickq("link", "down", "acme")
    link_up(d)
    # up again: the rest goes out now, not after the 1 h retry backoff
    wait_for(lambda: len({seq_of(m) for m in mta.messages}) == 30, timeout=10,
             what="all 30 after the link came back (have %d)"
             % len({seq_of(m) for m in mta.messages}))
    wait_empty(d)


def test_8bit_mail_to_a_server_without_8bitmime_goes_as_it_is(make_daemon, make_mta):
    mta = make_mta(start=False)
    mta.eightbitmime = False
    mta.start()
    d = make_daemon(customers=conf(mta.port)).start()
    original = (b"From: <a@beta.example>\r\nTo: <bob@acme.example>\r\nSubject: 8-bit\r\n"
                b"X-Note: caf\xc3\xa9\r\n\r\nh\xc3\xa9llo \xe2\x82\xac\r\n")
    qid = send(d, ACME, original, mail_opts=["BODY=8BITMIME"])
    link_up(d)
    # a BODY= parameter would get 555 from this server: the mail would bounce
    mta.wait_messages(1)
    wait_gone(d, qid)
    _, rest = strip_received(mta.messages[0].content)
    assert rest == original


def test_failed_dsn_goes_to_postmaster(make_daemon, make_mta):
    mta, senders = make_mta(), make_mta()
    mta.rcpt_replies["bob@acme.example"] = "550 5.1.1 no such user"
    senders.rcpt_replies[SENDER] = "550 5.1.1 no such sender either"
    d = make_daemon(customers=conf(mta.port, beta_port=senders.port)).start()
    qid = send(d, ACME, simple("double bounce"))
    link_up(d)
    wait_gone(d, qid)

    def postmaster_notice():
        return [m for m in queue(d)
                if [r["address"] for r in m["recipients"]] == ["noc@isp.example"]]
    wait_for(postmaster_notice, what="the notice to postmaster")
    assert len(queue(d)) == 1, queue(d)           # no loop, nothing else
    assert postmaster_notice()[0]["sender"] == ""
    assert mta.received_for(ACME) == [] and senders.messages == []


def test_kick_while_a_pass_is_running_still_retries_what_it_passed(make_daemon, mta):
    # one connection: the first message is deferred (451 at RCPT), the second
    # is held at DATA by the MTA, so the pass is still running when the
    # operator kicks; the kick covers the whole customer, so the deferred
    # message must go out now, not after the 1 h backoff
    mta.rcpt_replies["first@acme.example"] = "451 4.2.1 mailbox busy"
    mta.gate_at = 0
    d = make_daemon(customers=conf(mta.port, acme=dict(connections=1, retry_min="1h",
                                                       retry_max="2h"))).start()
    first = send(d, "first@acme.example", simple("first", to="first@acme.example"))
    second = send(d, "second@acme.example", simple("second", to="second@acme.example"))
    link_up(d)
    wait_status(d, first, "first@acme.example", "deferred")
    wait_for(lambda: mta.blocked == 1, what="the second message held at DATA")
    mta.accept_all()
    r = d.kickq("kick", "acme")
    assert r.stdout.startswith("kicked acme: 2 messages to"), r.stdout
    mta.gate_open.set()
    wait_for(lambda: mta.received_for("second@acme.example"), what="the second message")
    wait_for(lambda: mta.received_for("first@acme.example"), timeout=5,
             what="the deferred message after the kick (still %r)" % (status_of(d, first),))
    wait_gone(d, first)
    wait_gone(d, second)


def test_reload_moving_a_domain_keeps_arrival_order_and_leaves_others(make_daemon, mta):
    """A reload that moves a domain from one customer to another: the moved
    mail joins the new owner's in arrival order (a kick delivers oldest
    first), and a customer whose domains did not change keeps its mail as it
    was."""
    gamma = customer_conf("gamma", ["gamma.example"])
    d = make_daemon(customers=conf(mta.port, acme=dict(connections=1)) + gamma).start()
    order = [("bob@acme.example", "a1"), ("bob@gamma.example", "g1"),
             ("bob@acme.example", "a2"), ("bob@gamma.example", "g2"),
             ("carol@gamma.example", "g3")]
    qids = {}
    for rcpt, subj in order:
        qids[subj] = send(d, rcpt, simple(subj, to=rcpt))
    keep = send(d, "bob@acme.co.uk", simple("untouched", to="bob@acme.co.uk"))
    # gamma.example moves to acme (acme's domains change); gamma keeps none
    d.customers = conf(mta.port, acme=dict(connections=1)).replace(
        '"acme.example", "acme.co.uk"', '"acme.example", "acme.co.uk", "gamma.example"') + \
        customer_conf("gamma", ["gamma.co.uk"])
    d.write_conf()
    mark = len(d.log_text())
    d.hup()
    wait_for(lambda: "configuration reloaded" in d.log_text()[mark:], what="the reload")
    owners = {m["queue_id"]: m["recipients"][0]["customer"] for m in queue(d)}
    assert set(owners.values()) == {"acme"}, owners
    js = {s["customer"]: s for s in d.kickq_json("summary")}
    assert js["acme"]["messages"] == 6 and js["gamma"]["messages"] == 0, js
    link_up(d)
    got = mta.wait_messages(6)
    subjects = [m.header("Subject") for m in got]
    assert subjects == ["a1", "g1", "a2", "g2", "g3", "untouched"], subjects
    wait_empty(d)
    assert keep not in queue_ids(d)


@pytest.mark.parametrize("how", ["etrn", "kick"])
def test_failed_kicks_leave_the_backoff_and_the_retry_time(make_daemon, make_mta, how):
    # a link customer whose server refuses connections: the first pass at link
    # up defers and waits retry_min (3 s); six kicks (or ETRNs, etrn_interval
    # 0) fail in between, and must neither double the wait nor move the retry
    dead = make_mta(start=False)            # nothing listens: connection refused
    d = make_daemon(customers=conf(dead.port, acme=dict(retry_min="3s", retry_max="1h",
                                                        etrn_interval=0))).start()
    send(d, ACME, simple("backoff"))
    link_up(d)
    waits = re.compile(r"acme: mail deferred, next attempt in (\d+) s")
    d.wait_log(waits.pattern)
    t0 = time.time()
    start = len(d.log_text())
    assert [int(n) for n in waits.findall(d.log_text())] == [3]
    for i in range(6):
        n = len(waits.findall(d.log_text()[start:]))
        if how == "etrn":
            with d.smtp() as s:
                s.ehlo("client.example")
                c, msg = s.docmd("ETRN", "acme.example")
            assert c == 253, msg
        else:
            assert d.kickq("kick", "acme").stdout.startswith("kicked acme: 1 messages")
        wait_for(lambda: len(waits.findall(d.log_text()[start:])) > n,
                 what="kick %d's pass to end" % (i + 1))
    kicks = [int(n) for n in waits.findall(d.log_text()[start:])]
    assert len(kicks) == 6 and all(n <= 3 for n in kicks), kicks
    assert time.time() - t0 < 2.5, "the kicks took too long for this test"
    # the retry comes at its time, retry_min after the first pass; only its
    # own failure doubles the wait
    d.wait_log(r"acme: mail deferred, next attempt in 6 s", start=start, timeout=5)
    assert 2.0 < time.time() - t0 < 4.5, time.time() - t0
    later = [int(n) for n in waits.findall(d.log_text()[start:])]
    assert later[:6] == kicks and later[6] == 6, later


def test_mail_arriving_while_the_last_connection_quits(make_daemon, mta):
    """A message that arrives while the customer's only connection is
    saying QUIT (its 221 is slow) is not left waiting: the pass takes it
    once that connection has closed (it used to wait for the next mail or
    a kick, with no retry set)."""
    d = make_daemon(customers=conf(mta.port, beta=dict(retry_min="1h", retry_max="1h"))).start()
    mta.quit_delay = 1.5
    send(d, ["x@beta.example"], b"Subject: first\r\n\r\nfirst\r\n")
    mta.wait_messages(1)
    time.sleep(0.3)                 # the client has sent QUIT: the sink waits 1.5 s
    qid = send(d, ["y@beta.example"], b"Subject: second\r\n\r\nsecond\r\n")
    mta.quit_delay = 0
    mta.wait_messages(2, timeout=8)
    wait_for(lambda: status_of(d, qid) is None, what="the second message gone")

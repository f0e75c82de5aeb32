"""The SMTP server with real peers: smtplib, swaks and raw sockets."""
import re
import socket
import subprocess
import time

from conftest import (QUEUE_ID_RE, Raw, code, last_line, message, queue,
                      queue_ids, queued_id)


def test_smtplib_message_is_queued_and_listed(daemon):
    body = message(to="bob@acme.example", body="hello from smtplib\r\n")
    t0 = int(time.time())
    with daemon.smtp() as s:
        s.ehlo("client.example")
        assert s.mail("alice@sender.example")[0] == 250
        assert s.rcpt("bob@acme.example")[0] == 250
        c, msg = s.data(body)
    t1 = int(time.time())
    assert c == 250
    qid = queued_id("250 " + msg.decode())
    assert QUEUE_ID_RE.match(qid)

    text = daemon.kickq("list").stdout
    assert qid in text
    assert "alice@sender.example" in text
    assert "bob@acme.example" in text

    msgs = queue(daemon)
    assert len(msgs) == 1
    m = msgs[0]
    for field in ("queue_id", "arrival_time", "size", "sender", "held", "recipients"):
        assert field in m, field
    assert m["queue_id"] == qid
    assert isinstance(m["arrival_time"], int)
    assert t0 - 1 <= m["arrival_time"] <= t1 + 1
    assert m["sender"] == "alice@sender.example"
    assert m["held"] is False
    # stored size includes our Received header
    assert isinstance(m["size"], int)
    assert m["size"] > len(body.encode())
    assert len(m["recipients"]) == 1
    r = m["recipients"][0]
    for field in ("address", "domain", "customer", "status", "reason"):
        assert field in r, field
    assert r["address"] == "bob@acme.example"
    assert r["domain"] == "acme.example"
    assert r["customer"] == "acme"
    assert r["status"] == "queued"
    assert r["reason"] is None


def test_size_matches_show_and_body(daemon):
    body = message(body="x" * 500 + "\r\n")
    qid = daemon.send("bob@acme.example", body=body)
    m = queue(daemon)[0]
    shown = daemon.kickq("show", qid, "--body").stdout
    assert "size: %d" % m["size"] in shown
    assert m["size"] >= len(body.encode())
    assert "x" * 500 in shown


def test_swaks_message_is_queued(daemon):
    r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(daemon.port),
                        "--helo", "swaks.example", "--from", "carol@sender.example",
                        "--to", "sales@acme.co.uk", "--timeout", "20"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    m = re.search(r"<[~-]\s+250 2\.0\.0 Ok: queued as ([A-Z0-9]+)", r.stdout)
    assert m, r.stdout
    qid = m.group(1)
    assert QUEUE_ID_RE.match(qid)
    msgs = queue(daemon)
    assert [x["queue_id"] for x in msgs] == [qid]
    assert msgs[0]["sender"] == "carol@sender.example"
    rc = msgs[0]["recipients"][0]
    assert (rc["address"], rc["domain"], rc["customer"]) == \
        ("sales@acme.co.uk", "acme.co.uk", "acme")


def test_null_sender_accepted(daemon):
    with Raw(daemon.port) as c:
        c.greet()
        assert c.cmd("MAIL FROM:<>")[:3] == "250"
        assert c.cmd("RCPT TO:<bob@acme.example>")[:3] == "250"
        assert code(c.cmd("DATA")) == 354
        c.send("Subject: bounce\r\n\r\nreturned\r\n.\r\n")
        qid = queued_id(c.reply())
    m = queue(daemon)[0]
    assert m["queue_id"] == qid
    assert m["sender"] == ""
    assert "MAILER-DAEMON" in daemon.kickq("list").stdout


def test_postmaster_goes_to_configured_address(daemon):
    with Raw(daemon.port) as c:
        c.greet()
        assert code(c.cmd("MAIL FROM:<alice@sender.example>")) == 250
        r = c.cmd("RCPT TO:<Postmaster>")
        assert r.startswith("250 2.1.5"), r
        assert code(c.cmd("DATA")) == 354
        c.send("Subject: hi postmaster\r\n\r\nhi\r\n.\r\n")
        qid = queued_id(c.reply())
    m = queue(daemon)[0]
    assert m["queue_id"] == qid
    assert len(m["recipients"]) == 1
    r = m["recipients"][0]
    assert r["address"] == "noc@isp.example"
    assert r["domain"] == "isp.example"
    assert r["customer"] is None          # outbound
    assert "noc@isp.example" in daemon.kickq("list").stdout


def test_ehlo_keywords_without_tls(daemon):
    with daemon.smtp() as s:
        c, _ = s.ehlo("client.example")
        assert c == 250
        for kw in ("pipelining", "size", "8bitmime", "enhancedstatuscodes"):
            assert s.has_extn(kw), kw
        assert not s.has_extn("starttls")
        assert s.esmtp_features["size"] == "10240000"
        assert s.ehlo_resp.decode().splitlines()[0] == "mx.test.example"
        # STARTTLS without a tls section is not offered, nor done
        c, msg = s.docmd("STARTTLS")
        assert c == 502, msg


def test_helo_is_plain_smtp(daemon):
    with Raw(daemon.port) as c:
        assert c.reply().startswith("220 mx.test.example")
        r = c.cmd("HELO client.example")
        assert r == "250 mx.test.example"
        assert code(c.cmd("MAIL FROM:<a@sender.example>")) == 250
        assert code(c.cmd("RCPT TO:<bob@acme.example>")) == 250
        assert code(c.cmd("DATA")) == 354
        c.send("Subject: helo\r\n\r\nx\r\n.\r\n")
        qid = queued_id(c.reply())
    hdrs = daemon.kickq("show", qid).stdout
    assert re.search(r"with SMTP id %s" % qid, hdrs), hdrs


def test_vrfy_help_noop_rset_quit(daemon):
    with Raw(daemon.port) as c:
        c.greet()
        assert c.cmd("VRFY bob@acme.example").startswith("252 ")
        r = c.cmd("HELP")
        assert r.startswith("214"), r
        assert c.cmd("NOOP").startswith("250 2.0.0")
        assert c.cmd("RSET").startswith("250 2.0.0")
        # RSET forgets the transaction: RCPT now needs a MAIL
        assert code(c.cmd("MAIL FROM:<a@sender.example>")) == 250
        assert code(c.cmd("RSET")) == 250
        r = c.cmd("RCPT TO:<bob@acme.example>")
        assert r.startswith("503 5.5.1"), r
        assert c.cmd("QUIT").startswith("221 2.0.0")
        assert c.is_closed()
    assert queue(daemon) == []


def test_commands_before_ehlo_are_refused(daemon):
    with Raw(daemon.port) as c:
        assert code(c.reply()) == 220
        r = c.cmd("MAIL FROM:<a@sender.example>")
        assert r.startswith("503 5.5.1"), r
        r = c.cmd("RCPT TO:<bob@acme.example>")
        assert r.startswith("503 5.5.1"), r
        r = c.cmd("DATA")
        assert r.startswith("503 5.5.1"), r
        # NOOP is fine, and the session continues normally after EHLO
        assert code(c.cmd("NOOP")) == 250
        assert code(c.cmd("EHLO client.example")) == 250
        assert code(c.cmd("MAIL FROM:<a@sender.example>")) == 250
    assert queue(daemon) == []


def test_sequence_errors_and_unknown_commands(daemon):
    with Raw(daemon.port) as c:
        c.greet()
        r = c.cmd("FROB it")
        assert r.startswith("500 5.5.2"), r
        assert c.cmd("EXPN staff").startswith("502 5.5.1")
        assert c.cmd("MAIL TO:<a@b.example>")[:3] == "501"
        assert code(c.cmd("MAIL FROM:<a@sender.example>")) == 250
        r = c.cmd("MAIL FROM:<a@sender.example>")
        assert r.startswith("503 5.5.1"), r            # nested MAIL
        r = c.cmd("DATA")
        assert r[:3] in ("503", "554"), r               # no recipients
        r = c.cmd("MAIL FROM:<a@sender.example> FROB=1")
        assert code(r) in (503, 555), r
        assert code(c.cmd("RSET")) == 250
        r = c.cmd("MAIL FROM:<a@sender.example> FROB=1")
        assert r.startswith("555 5.5.4"), r
        r = c.cmd("RCPT TO:<>")
        assert r[:1] == "5", r
    assert queue(daemon) == []


def test_received_header_carries_queue_id(daemon):
    qid = daemon.send("bob@acme.example",
                      body=message(subject="received check", body="the body\r\n"))
    shown = daemon.kickq("show", qid).stdout
    assert "queue_id: %s" % qid in shown
    assert "Subject: received check" in shown
    assert "the body" not in shown                 # headers only without --body
    m = re.search(r"^Received: from client\.example \(\[127\.0\.0\.1\]\)\s*\n?\s*"
                  r"by mx\.test\.example \(kickmail\) with ESMTP id %s\b" % qid,
                  shown, re.M)
    assert m, shown
    assert "for <bob@acme.example>" in shown
    full = daemon.kickq("show", qid, "--body").stdout
    assert "the body" in full
    # our Received header comes first
    hdr = full[full.index("Received:"):]
    assert hdr.index("Received:") < hdr.index("Subject:")


def test_dot_stuffing_undone(daemon):
    body = "Subject: dots\r\n\r\n.leading dot\r\n..two dots\r\nend\r\n"
    qid = daemon.send("bob@acme.example", body=body)   # smtplib stuffs the dots
    full = daemon.kickq("show", qid, "--body").stdout
    lines = full.splitlines()
    assert ".leading dot" in lines
    assert "..two dots" in lines
    assert "...two dots" not in full


def test_eight_bit_body_and_several_recipients(daemon):
    body = ("Subject: 8bit\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            "Gr\u00fc\u00dfe aus K\u00f6ln\r\n").encode("utf-8")
    with daemon.smtp() as s:
        s.ehlo("client.example")
        assert s.mail("alice@sender.example", ["BODY=8BITMIME"])[0] == 250
        for r in ("bob@acme.example", "sales@acme.co.uk", "bob@beta.example",
                  "BOB@acme.example"):
            assert s.rcpt(r)[0] == 250, r
        c, msg = s.data(body)
        assert c == 250, msg
        qid = queued_id("250 " + msg.decode())
    m = queue(daemon)[0]
    assert m["queue_id"] == qid
    got = sorted((r["address"].lower(), r["customer"]) for r in m["recipients"])
    # the duplicate (case-insensitive) is kept once
    assert got == [("bob@acme.example", "acme"), ("bob@beta.example", "beta"),
                   ("sales@acme.co.uk", "acme")]
    full = daemon.kickq("show", qid, "--body").stdout
    assert "Gr\u00fc\u00dfe aus K\u00f6ln" in full


def test_ids_are_unique(daemon):
    ids = [daemon.send("bob@acme.example") for _ in range(5)]
    assert len(set(ids)) == 5
    assert sorted(queue_ids(daemon)) == sorted(ids)


# ---- pipelining (RFC 2920) ----

def _expect_pipelined(replies, nrcpt):
    want = [250, 250] + [250] * nrcpt + [354, 250, 221]
    assert [code(r) for r in replies] == want, replies
    assert "PIPELINING" in replies[0]
    assert replies[1].startswith("250 2.1.0")
    for r in replies[2:2 + nrcpt]:
        assert r.startswith("250 2.1.5"), r
    assert replies[-1].startswith("221")
    return queued_id(replies[-2])


def test_pipelined_commands_then_body(daemon):
    with Raw(daemon.port) as c:
        assert code(c.reply()) == 220
        c.send("EHLO client.example\r\nMAIL FROM:<alice@sender.example>\r\n"
               "RCPT TO:<bob@acme.example>\r\nRCPT TO:<sales@acme.example>\r\n"
               "DATA\r\n")
        replies = [c.reply() for _ in range(5)]
        assert code(replies[-1]) == 354, replies
        c.send("Subject: pipelined\r\n\r\nbody\r\n.\r\nQUIT\r\n")
        replies += c.replies_until_close()
    qid = _expect_pipelined(replies, 2)
    m = queue(daemon)[0]
    assert m["queue_id"] == qid
    assert sorted(r["address"] for r in m["recipients"]) == \
        ["bob@acme.example", "sales@acme.example"]


def test_whole_transaction_in_one_write(daemon):
    with Raw(daemon.port) as c:
        assert code(c.reply()) == 220
        c.send("EHLO client.example\r\nMAIL FROM:<alice@sender.example>\r\n"
               "RCPT TO:<bob@acme.example>\r\nRCPT TO:<sales@acme.example>\r\n"
               "DATA\r\nSubject: one write\r\n\r\nall at once\r\n.\r\nQUIT\r\n")
        replies = c.replies_until_close()
    qid = _expect_pipelined(replies, 2)
    assert queue_ids(daemon) == [qid]
    full = daemon.kickq("show", qid, "--body").stdout
    assert "all at once" in full


def test_two_transactions_in_one_write(daemon):
    one = ("MAIL FROM:<alice@sender.example>\r\nRCPT TO:<bob@acme.example>\r\n"
           "DATA\r\nSubject: first\r\n\r\none\r\n.\r\n")
    two = ("MAIL FROM:<>\r\nRCPT TO:<bob@beta.example>\r\n"
           "DATA\r\nSubject: second\r\n\r\ntwo\r\n.\r\n")
    with Raw(daemon.port) as c:
        assert code(c.reply()) == 220
        c.send("EHLO client.example\r\n" + one + two + "QUIT\r\n")
        replies = c.replies_until_close()
    assert [code(r) for r in replies] == [250, 250, 250, 354, 250, 250, 250, 354, 250, 221], \
        replies
    a, b = queued_id(replies[4]), queued_id(replies[8])
    assert a != b
    msgs = {m["queue_id"]: m for m in queue(daemon)}
    assert set(msgs) == {a, b}
    assert msgs[a]["recipients"][0]["customer"] == "acme"
    assert msgs[b]["recipients"][0]["customer"] == "beta"
    assert msgs[b]["sender"] == ""


def test_pipelined_refused_recipient_in_the_middle(daemon):
    with Raw(daemon.port) as c:
        assert code(c.reply()) == 220
        c.send("EHLO client.example\r\nMAIL FROM:<alice@sender.example>\r\n"
               "RCPT TO:<u@victim.test>\r\nRCPT TO:<bob@acme.example>\r\n"
               "RCPT TO:<nobody@beta.example>\r\n"
               "DATA\r\nSubject: mixed\r\n\r\nx\r\n.\r\nQUIT\r\n")
        replies = c.replies_until_close()
    assert [code(r) for r in replies] == [250, 250, 550, 250, 550, 354, 250, 221], replies
    assert replies[2].startswith("550 5.7.1")
    assert replies[4].startswith("550 5.1.1")
    qid = queued_id(replies[6])
    m = queue(daemon)[0]
    assert m["queue_id"] == qid
    assert [r["address"] for r in m["recipients"]] == ["bob@acme.example"]


def test_pipelined_data_with_no_valid_recipient_is_not_taken_as_commands(daemon):
    # All RCPTs refused: DATA fails, and the body lines that follow are then
    # read as commands (and refused), never as a message.
    with Raw(daemon.port) as c:
        assert code(c.reply()) == 220
        c.send("EHLO client.example\r\nMAIL FROM:<alice@sender.example>\r\n"
               "RCPT TO:<u@victim.test>\r\nDATA\r\nRSET\r\nQUIT\r\n")
        replies = c.replies_until_close()
    codes = [code(r) for r in replies]
    assert codes[:3] == [250, 250, 550] and codes[3] in (554, 503), replies
    assert codes[4:] == [250, 221], replies
    assert queue(daemon) == []


def test_bare_lf_in_command_closes_with_521(daemon):
    with Raw(daemon.port) as c:
        c.greet()
        c.send("MAIL FROM:<alice@sender.example>\nRCPT TO:<bob@acme.example>\r\n")
        replies = c.replies_until_close()
    assert replies and replies[0].startswith("521"), replies
    assert len(replies) == 1
    assert queue(daemon) == []


def test_final_reply_forms(daemon):
    """Enhanced status codes on MAIL/RCPT/DATA-end replies, none on 354."""
    with Raw(daemon.port) as c:
        c.greet()
        assert re.match(r"^250 2\.1\.0 ", c.cmd("MAIL FROM:<a@sender.example>"))
        assert re.match(r"^250 2\.1\.5 ", c.cmd("RCPT TO:<bob@acme.example>"))
        r = c.cmd("DATA")
        assert r.startswith("354 ") and not re.match(r"^354 \d\.\d\.\d", r), r
        c.send("\r\n.\r\n")      # an empty body is still a message
        assert QUEUE_ID_RE.match(queued_id(c.reply()))
        assert last_line(c.cmd("QUIT")).startswith("221 2.0.0")


def test_many_pipelined_commands_answered_in_order(daemon):
    cmds = []
    for i in range(300):
        cmds += ["NOOP", "RSET", "VRFY u%d@acme.example" % i, "HELP"]
    with Raw(daemon.port) as c:
        c.greet()
        c.send("".join(x + "\r\n" for x in cmds))
        replies = [c.reply() for _ in cmds]
    want = {"NOOP": 250, "RSET": 250, "VRFY": 252, "HELP": 214}
    got = [code(r) for r in replies]
    assert got == [want[x.split()[0]] for x in cmds]


def test_half_closed_client_still_gets_its_reply(daemon):
    """A client that sends a whole transaction and shuts down its sending
    side still gets the 250 (the message is not lost nor acknowledged
    without being stored)."""
    with Raw(daemon.port) as c:
        assert code(c.reply()) == 220
        c.send("EHLO client.example\r\nMAIL FROM:<alice@sender.example>\r\n"
               "RCPT TO:<bob@acme.example>\r\nDATA\r\nSubject: half\r\n\r\nx\r\n.\r\n")
        c.sock.shutdown(socket.SHUT_WR)
        replies = c.replies_until_close()
    assert [code(r) for r in replies] == [250, 250, 250, 354, 250], replies
    qid = queued_id(replies[-1])
    assert queue_ids(daemon) == [qid]


def test_helo_syntax(daemon):
    with Raw(daemon.port) as c:
        assert code(c.reply()) == 220
        assert c.cmd("EHLO")[:3] == "501"
        assert c.cmd("HELO")[:3] == "501"
        assert code(c.cmd("EHLO [127.0.0.1]")) == 250
        assert code(c.cmd("MAIL FROM:<alice@sender.example>")) == 250


REJECT_CUSTOMERS = """
customer "acme" {
  domains = {"acme.example"}
}
customer "beta" {
  domains = {"beta.example"}
  recipients = {"bob"}
}
customer "full" {
  domains = {"full.example"}
  quota = 1k
}
"""


def test_refused_recipients_are_logged(make_daemon):
    """Every refused RCPT leaves one Postfix-style line with the reply it
    got: NOQUEUE: reject: RCPT from unknown[addr]: REPLY; from=<> to=<>
    proto=ESMTP|SMTP helo=<>."""
    d = make_daemon(customers=REJECT_CUSTOMERS, smtp_opts="max_recipients = 1").start()
    with Raw(d.port) as c:
        c.greet("client.example")
        assert code(c.cmd("MAIL FROM:<alice@sender.example> SIZE=2000")) == 250
        replies = [c.cmd("RCPT TO:<%s>" % a) for a in (
            "someone@elsewhere.example", "nobody@beta.example", "x@full.example",
            "a b@acme.example", "bob@acme.example", "carol@acme.example")]
    assert [code(r) for r in replies] == [550, 550, 452, 501, 250, 452], replies
    head = r"kickmaild: NOQUEUE: reject: RCPT from unknown\[127\.0\.0\.1\]: "
    tail = r"; from=<alice@sender\.example>%s proto=ESMTP helo=<client\.example>\n"
    for reply, to in ((replies[0], " to=<someone@elsewhere.example>"),
                      (replies[1], " to=<nobody@beta.example>"),
                      (replies[2], " to=<x@full.example>"),
                      (replies[3], ""),         # did not parse: no address
                      (replies[5], " to=<carol@acme.example>")):
        d.wait_log(head + re.escape(reply) + tail % re.escape(to))
    assert replies[0] == "550 5.7.1 <someone@elsewhere.example>: Relay access denied"
    assert d.log_text().count("NOQUEUE: reject:") == 5     # not the accepted one


def test_refused_recipient_in_a_helo_session_is_logged_as_smtp(daemon):
    with Raw(daemon.port) as c:
        assert code(c.reply()) == 220
        assert code(c.cmd("HELO old.example")) == 250
        assert code(c.cmd("MAIL FROM:<>")) == 250
        r = c.cmd("RCPT TO:<x@elsewhere.example>")
        assert code(r) == 550, r
    daemon.wait_log(r"NOQUEUE: reject: RCPT from unknown\[127\.0\.0\.1\]: 550 5\.7\.1 "
                    r"<x@elsewhere\.example>: Relay access denied; from=<> "
                    r"to=<x@elsewhere\.example> proto=SMTP helo=<old\.example>\n")


def test_refused_quoted_recipient_is_logged_in_wire_form(daemon):
    """to= of a reject line keeps the quotes of a quoted local part: the
    unquoted form would read as another address (and parameters)."""
    with Raw(daemon.port) as c:
        c.greet("client.example")
        assert code(c.cmd("MAIL FROM:<\"s x\"@sender.example>")) == 250
        r = c.cmd("RCPT TO:<\"a> NOTIFY=SUCCESS\"@elsewhere.example>")
        assert code(r) == 550, r
    daemon.wait_log(r"NOQUEUE: reject: RCPT from unknown\[127\.0\.0\.1\]: 550 5\.7\.1 "
                    r"<\"a> NOTIFY=SUCCESS\"@elsewhere\.example>: Relay access denied; "
                    r"from=<\"s x\"@sender\.example> "
                    r"to=<\"a> NOTIFY=SUCCESS\"@elsewhere\.example> proto=ESMTP "
                    r"helo=<client\.example>\n")

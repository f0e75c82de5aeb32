"""kickq: exit codes, Postfix `postqueue -p` layout to the letter, JSON Lines,
summary, show, filters."""
import os
import re
import subprocess
import time

from conftest import KICKQ, MTA_HOST, ROOT, customer_conf, free_port, message, queue, queue_ids

# Postfix's layout for long queue IDs (ours have 13 characters)
HEADER = "----Queue ID----- --Size-- ---Arrival Time---- --Sender/Recipient------"


def _asctime19(t):
    """What Postfix prints: asctime(3) cut to 19 characters."""
    lt = time.localtime(t)
    s = time.strftime("%a %b ", lt) + "%2d" % lt.tm_mday + time.strftime(" %H:%M:%S", lt)
    assert len(s) == 19
    return s


def _expected_list(msgs):
    """postqueue -p output for messages without deferral reasons."""
    out = [HEADER]
    total = 0
    for i, m in enumerate(msgs):
        if i:
            out.append("")
        flag = "!" if m["held"] else ""
        sender = m["sender"] or "MAILER-DAEMON"
        # "%-17s %8ld %19.19s %s": the ID and its mark share the first column
        out.append("%-17s %8d %s %s" % (m["queue_id"] + flag, m["size"],
                                         _asctime19(m["arrival_time"]), sender))
        plain = [r for r in m["recipients"] if not (r["status"] == "held" and not m["held"])]
        held = [r for r in m["recipients"] if r["status"] == "held" and not m["held"]]
        for r in plain:
            out.append(" " * 47 + r["address"])
        if held:
            out.append(" " * (76 - len("held")) + "(held)")
            for r in held:
                out.append(" " * 47 + r["address"])
        total += m["size"]
    out.append("")
    n = len(msgs)
    out.append("-- %d Kbytes in %d Request%s." % (total // 1024, n, "" if n == 1 else "s"))
    return "\n".join(out) + "\n"


def test_status(daemon):
    r = daemon.kickq("status")
    assert r.returncode == 0
    assert "running" in r.stdout
    v = open(os.path.join(ROOT, "VERSION")).read().strip()
    assert v in r.stdout
    assert str(daemon.proc.pid) in r.stdout


def test_status_json(daemon):
    v = open(os.path.join(ROOT, "VERSION")).read().strip()
    js = daemon.kickq_json("status")
    assert js and js[0]["status"] == "running" and js[0]["version"] == v
    assert js[0]["pid"] == daemon.proc.pid


def test_status_without_daemon_fails(tmp_path):
    r = subprocess.run([KICKQ, "-s", str(tmp_path / "nothing.sock"), "status"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert r.stderr.strip()


def test_kickq_with_config_file(daemon):
    r = subprocess.run([KICKQ, "-c", daemon.conf, "status"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "running" in r.stdout


def test_empty_queue(daemon):
    assert daemon.kickq("list").stdout == "Mail queue is empty\n"
    assert daemon.kickq("list", "--json").stdout == ""


def test_list_layout_one_message(daemon):
    daemon.send("bob@acme.example")
    msgs = queue(daemon)
    text = daemon.kickq("list").stdout
    assert text == _expected_list(msgs), text
    assert text.splitlines()[0] == HEADER
    assert text.endswith("-- 0 Kbytes in 1 Request.\n")


def test_list_layout_several_messages(daemon):
    daemon.send(["bob@acme.example", "sales@acme.co.uk"])
    big = daemon.send("bob@beta.example", body=message(body="k" * 3000 + "\r\n"))
    with daemon.smtp() as s:
        s.ehlo("client.example")
        s.mail("<>")
        s.rcpt("bob@acme.example")
        s.data("Subject: null sender\r\n\r\nx\r\n")
    daemon.kickq("hold", big)
    msgs = queue(daemon)
    assert len(msgs) == 3
    text = daemon.kickq("list").stdout
    assert text == _expected_list(msgs), text
    total = sum(m["size"] for m in msgs)
    assert text.endswith("-- %d Kbytes in 3 Requests.\n" % (total // 1024))
    assert (big + "!") in text
    assert "MAILER-DAEMON" in text


def test_list_columns_line_up_with_held_mail(daemon):
    """The '!' of a held message takes no column of its own: its size, date
    and sender start where those of a message that is not held do, under
    the header's."""
    plain = daemon.send("bob@acme.example")
    held = daemon.send("bob@beta.example", body=message(body="h" * 900 + "\r\n"))
    daemon.kickq("hold", held)
    lines = daemon.kickq("list").stdout.splitlines()
    assert lines[0] == HEADER
    size_end = HEADER.index("--Size--") + len("--Size--")
    sender_at = HEADER.index("--Sender/Recipient")
    rows = {ln.split()[0]: ln for ln in lines[1:-1] if ln and not ln.startswith(" ")}
    assert set(rows) == {plain, held + "!"}, rows
    sizes = {m["queue_id"]: m["size"] for m in queue(daemon)}
    for qid, ln in ((plain, rows[plain]), (held, rows[held + "!"])):
        assert ln[:size_end].endswith(" %d" % sizes[qid]), ln
        assert ln[sender_at - 1:] == " alice@sender.example", ln
    assert [ln.index("bob@") for ln in lines if ln.startswith(" ") and "bob@" in ln] == \
        [sender_at, sender_at]


def test_list_layout_partly_held(daemon):
    qid = daemon.send(["bob@acme.example", "bob@beta.example"])
    daemon.kickq("hold", "beta")
    msgs = queue(daemon)
    text = daemon.kickq("list").stdout
    assert text == _expected_list(msgs), text
    assert qid + "!" not in text


def test_list_json_field_types(daemon):
    daemon.send("bob@acme.example")
    out = daemon.kickq("list", "--json").stdout
    lines = out.splitlines()
    assert len(lines) == 1
    m = queue(daemon)[0]
    assert set(m) >= {"queue_id", "arrival_time", "size", "sender", "held", "recipients"}
    assert isinstance(m["queue_id"], str)
    assert isinstance(m["arrival_time"], int)
    assert isinstance(m["size"], int)
    assert isinstance(m["held"], bool)
    r = m["recipients"][0]
    assert set(r) >= {"address", "domain", "customer", "status", "reason"}


def test_json_escapes_hostile_addresses(daemon):
    """Quoted local parts may carry quotes, backslashes and 8-bit bytes; the
    JSON stays valid and the text listing stays one line per address."""
    with daemon.smtp() as s:
        s.ehlo("client.example")
        c, msg = s.docmd('MAIL FROM:<"we\\"ird\\\\x"@sender.example>')
        assert c == 250, msg
        assert s.rcpt("bob@acme.example")[0] == 250
        assert s.data("Subject: x\r\n\r\nx\r\n")[0] == 250
    m = queue(daemon)[0]                 # json.loads succeeded
    assert m["sender"].endswith("@sender.example")
    assert "ird" in m["sender"]
    lines = daemon.kickq("list").stdout.splitlines()
    assert "ird" in lines[1] and lines[1].endswith("@sender.example")


def test_list_filters(daemon):
    a = daemon.send("bob@acme.example")
    uk = daemon.send("sales@acme.co.uk")
    b = daemon.send("bob@beta.example")
    mixed = daemon.send(["bob@acme.example", "bob@beta.example"])
    assert sorted(queue_ids(daemon, "acme")) == sorted([a, uk, mixed])
    assert sorted(queue_ids(daemon, "beta")) == sorted([b, mixed])
    assert sorted(queue_ids(daemon, "acme.co.uk")) == [uk]
    assert sorted(queue_ids(daemon, "beta.example")) == sorted([b, mixed])
    # only the selected recipients are shown
    m = [m for m in queue(daemon, "beta") if m["queue_id"] == mixed][0]
    assert [r["address"] for r in m["recipients"]] == ["bob@beta.example"]
    text = daemon.kickq("list", "acme.co.uk").stdout
    assert uk in text and a not in text and b not in text
    assert text.endswith("in 1 Request.\n")
    text = daemon.kickq("list", "beta").stdout
    assert "bob@acme.example" not in text
    # a domain with nothing waiting (orphan mail may be listed by domain)
    assert daemon.kickq("list", "nobody.example").stdout == "Mail queue is empty\n"
    assert daemon.kickq("list", "nobody.example", "--json").stdout == ""


def test_list_unknown_customer(daemon):
    daemon.send("bob@acme.example")
    r = daemon.kickq("list", "nosuchcustomer", check=False)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "nosuchcustomer" in r.stderr
    assert r.stdout == ""


def test_summary(daemon):
    daemon.send(["bob@acme.example", "sales@acme.co.uk"])
    daemon.send("bob@acme.example", body=message(body="s" * 2000 + "\r\n"))
    daemon.send("bob@beta.example")
    text = daemon.kickq("summary").stdout
    lines = text.splitlines()
    assert lines[0].split()[0] == "CUSTOMER"
    rows = {ln.split()[0]: ln.split() for ln in lines[1:]}
    assert "acme" in rows and "beta" in rows
    assert rows["acme"][2] == "2"          # messages
    assert rows["beta"][2] == "1"
    assert "down" in rows["acme"]
    js = {s["customer"]: s for s in daemon.kickq_json("summary")}
    msgs = queue(daemon)
    acme_bytes = sum(m["size"] for m in msgs
                     if any(r["customer"] == "acme" for r in m["recipients"]))
    a = js["acme"]
    for f in ("customer", "domains", "messages", "bytes", "oldest_age", "held", "link"):
        assert f in a, f
    assert sorted(a["domains"]) == ["acme.co.uk", "acme.example"]
    assert a["messages"] == 2
    assert a["bytes"] == acme_bytes
    assert rows["acme"][3] == str(acme_bytes)
    assert isinstance(a["oldest_age"], int) and 0 <= a["oldest_age"] < 60
    assert a["held"] is False
    assert a["link"]["state"] == "down"
    assert a["link"]["address"] is None
    for f in ("since", "expires", "source"):
        assert f in a["link"], f
    assert js["beta"]["messages"] == 1
    assert js["beta"]["domains"] == ["beta.example"]
    assert "(outbound)" not in js and "(orphan)" not in js


def test_summary_outbound_line(daemon):
    with daemon.smtp() as s:
        s.ehlo("client.example")
        s.mail("alice@sender.example")
        assert s.docmd("RCPT TO:<postmaster>")[0] == 250
        assert s.data("Subject: pm\r\n\r\nx\r\n")[0] == 250
    js = {s["customer"]: s for s in daemon.kickq_json("summary")}
    assert js["(outbound)"]["messages"] == 1
    assert "(outbound)" in daemon.kickq("summary").stdout


def test_summary_empty_customers_listed(daemon):
    js = {s["customer"]: s for s in daemon.kickq_json("summary")}
    assert js["acme"]["messages"] == 0 and js["acme"]["bytes"] == 0
    assert js["beta"]["messages"] == 0
    assert js["acme"]["oldest_age"] == 0


def test_show(daemon):
    qid = daemon.send(["bob@acme.example", "bob@beta.example"],
                      body=message(subject="show me", body="secret body\r\n"))
    out = daemon.kickq("show", qid).stdout
    assert "queue_id: %s" % qid in out
    assert "sender: alice@sender.example" in out
    assert "recipient: bob@acme.example customer=acme status=queued" in out
    assert "recipient: bob@beta.example customer=beta status=queued" in out
    assert "Subject: show me" in out
    assert "secret body" not in out
    assert "secret body" in daemon.kickq("show", qid, "--body").stdout


def test_shape(daemon):
    daemon.send(["bob@acme.example", "sales@acme.co.uk"])
    daemon.send("bob@acme.example")
    out = daemon.kickq("shape").stdout
    rows = {ln.split()[0]: ln.split() for ln in out.splitlines()[1:]}
    assert rows["TOTAL"][1] == "3"
    assert rows["acme.example"][1] == "2"
    assert rows["acme.co.uk"][1] == "1"


def test_usage_errors_exit_2(daemon):
    for args in ([], ["frobnicate"], ["list", "a", "b"], ["list", "--frob"],
                 ["show"], ["hold"], ["delete"], ["summary", "extra"],
                 ["show", "X", "--json"]):
        r = daemon.kickq(*args, check=False)
        assert r.returncode == 2, (args, r.returncode, r.stdout, r.stderr)
        assert r.stderr.strip(), args


def test_unknown_queue_id_exit_1(daemon):
    daemon.send("bob@acme.example")
    for args in (["show", "ZZZZZZZZZZZZZ"], ["hold", "ZZZZZZZZZZZZZ"],
                 ["release", "ZZZZZZZZZZZZZ"], ["delete", "ZZZZZZZZZZZZZ"],
                 ["hold", "nosuchcustomer"], ["hold", "nosuch.example"]):
        r = daemon.kickq(*args, check=False)
        assert r.returncode == 1, (args, r.returncode, r.stdout, r.stderr)
        assert r.stderr.strip(), args
    # a malformed ID is a failure or a usage error, never success
    r = daemon.kickq("show", "not-an-id", check=False)
    assert r.returncode in (1, 2) and r.stderr.strip()
    assert len(queue(daemon)) == 1


def test_hold_release_by_domain_and_customer_in_list(daemon):
    a = daemon.send("bob@acme.example")
    daemon.kickq("hold", "acme")
    assert (a + "!") in daemon.kickq("list").stdout
    daemon.kickq("release", "acme")
    assert (a + "!") not in daemon.kickq("list").stdout
    assert a in daemon.kickq("list").stdout


def test_kick_held_customer_fails(make_daemon):
    """A kick of a customer on hold sends nothing, so it says so and fails
    instead of reporting "kicked acme: 1 messages"."""
    port = free_port(MTA_HOST)
    d = make_daemon(customers=customer_conf("acme", ["acme.example"],
                                            deliver="%s:%d" % (MTA_HOST, port),
                                            retry_min="1h", retry_max="2h")).start()
    d.send("bob@acme.example")
    d.kickq("hold", "acme")
    for args in (["kick", "acme"], ["kick", "acme.example"], ["kick", "acme", "--json"]):
        r = d.kickq(*args, check=False)
        assert r.returncode == 1, (args, r.returncode, r.stdout, r.stderr)
        assert r.stdout == "", args
        assert r.stderr == "kickq: acme: customer is on hold; release it first " \
                           "(kickq release acme)\n", (args, r.stderr)
    assert "acme: kick:" not in d.log_since_start()
    d.kickq("release", "acme")
    r = d.kickq("kick", "acme")
    assert r.stdout.startswith("kicked acme: 1 messages to %s:%d" % (MTA_HOST, port))


def test_accept_log_size_is_list_size(daemon):
    """The size= of the line that logs a message's acceptance is the size
    list shows: the message as stored, our Received: header included."""
    qid = daemon.send("bob@acme.example", body=message(body="z" * 500 + "\r\n"))
    got = daemon.wait_log(r"%s: client=\S+, from=<alice@sender\.example>, size=(\d+), "
                          r"nrcpt=1 \(queued\)" % qid)
    size = int(got.group(1))
    assert [m["size"] for m in queue(daemon)] == [size]
    row = [ln for ln in daemon.kickq("list").stdout.splitlines() if ln.startswith(qid)]
    assert len(row) == 1 and re.match(r"^%s +%d " % (qid, size), row[0]), (row, size)

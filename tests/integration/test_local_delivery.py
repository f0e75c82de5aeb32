"""Local delivery into maildrops (issue 12): address maildrops of a local
domain (maildrop sections and the customer map's maildrops table) and the
domain maildrop of a deliver = "maildrop" customer, in the Maildir layout
under maildir_root; RCPT refusals (unknown user, over quota); quota met at
delivery (the mail waits, never bounced for quota); the Delivered-To loop
(bounced 5.4.6); one copy per envelope recipient with X-Original-To;
kickq kick of local mail; crash safety (kill -9 in a burst: every accepted
message is in a maildrop or still queued); kickmaild -n on bad maildrops.
"""
import os
import re
import socket
import sqlite3
import subprocess
import threading
import time

from conftest import (KICKMAILD, ROOT, Raw, code, customer_conf, queue, wait_for)

PASSWORD = "'$6$kickmaildev$jb4n5zLcivFHyqMpsGeAZDS7k7hYnUapJD68cVfLXdCWKCrPTW1bdoE6Usa0ZbchbLqYetzbwaeuib9UTTfHj0'"


def maildrop_conf(address, **opts):
    lines = ['maildrop "%s" {' % address, "  password = %s" % PASSWORD]
    for k, v in opts.items():
        lines.append("  %s = %s" % (k, v if isinstance(v, int) else '"%s"' % v))
    lines.append("}")
    return "\n".join(lines) + "\n"


ALICE = "alice@isp.example"


def drops(**quota):
    """alice@ and bob@isp.example, carol@other.example; quota= for alice."""
    return (maildrop_conf(ALICE, **quota) + maildrop_conf("bob@isp.example")
            + maildrop_conf("carol@other.example"))


def mdir(d, *parts):
    return os.path.join(d.maildirs, *parts)


def new_files(d, *parts):
    p = mdir(d, *(parts + ("new",)))
    if not os.path.isdir(p):
        return []
    return sorted(os.path.join(p, f) for f in os.listdir(p))


def read(path):
    with open(path, "rb") as f:
        return f.read()


def wait_files(d, n, *parts, timeout=10):
    return wait_for(lambda: len(new_files(d, *parts)) >= n and new_files(d, *parts),
                    timeout=timeout, what="%d files in %s" % (n, "/".join(parts)))


def reload_customers(d, customers):
    """The daemon's customer sections replaced, reloaded by SIGHUP."""
    d.customers = customers
    d.write_conf()
    m = len(d.log_text())
    d.hup()
    d.wait_log(r"configuration reloaded", start=m)


def smtp_send(d, rcpts, data, sender="someone@sender.example", size=None):
    """One transaction over a raw connection: (RCPT replies, final reply);
    size: declared with SIZE=."""
    if isinstance(rcpts, str):
        rcpts = [rcpts]
    with Raw(d.port) as c:
        c.greet()
        r = c.cmd("MAIL FROM:<%s>%s" % (sender, " SIZE=%d" % size if size else ""))
        assert code(r) == 250, r
        replies = [c.cmd("RCPT TO:<%s>" % rc) for rc in rcpts]
        if not any(code(r) == 250 for r in replies):
            c.cmd("QUIT")
            return replies, None
        r = c.cmd("DATA")
        assert code(r) == 354, r
        stuffed = ("." if data.startswith(".") else "") + data.replace("\r\n.", "\r\n..")
        c.send(stuffed + ".\r\n")
        final = c.reply(timeout=30)
        c.cmd("QUIT")
        return replies, final


def body(subject="test", extra="", size=0):
    text = "x" * (size - 200) + "\r\n" if size > 200 else ""
    return ("From: <someone@sender.example>\r\nTo: <%s>\r\nSubject: %s\r\n%s\r\n"
            "hello\r\n.leading dot, stuffed on the wire\r\n\r\n%send\r\n"
            % (ALICE, subject, extra, text))


def test_delivered_into_the_maildir(make_daemon):
    d = make_daemon(customers=drops()).start()
    data = body(extra="X-Test: one\r\n")
    replies, final = smtp_send(d, ALICE, data)
    assert code(final) == 250, final
    qid = final.split("queued as ")[1].strip()
    (path,) = wait_files(d, 1, "isp.example", "alice")
    name = os.path.basename(path)
    content = read(path)
    assert re.search(r",S=%d,W=%d$" % (len(content), len(content) + content.count(b"\n")),
                     name), name
    assert b"\r" not in content
    lines = content.split(b"\n")
    assert lines[0] == b"Return-Path: <someone@sender.example>"
    assert lines[1] == b"Delivered-To: alice@isp.example"
    assert lines[2].startswith(b"Received: from ")             # ours, at receipt
    assert content.endswith(data.replace("\r\n", "\n").encode())   # byte for byte
    assert b"X-Original-To" not in content
    wait_for(lambda: queue(d) == [], what="an empty queue")
    d.wait_log(r"%s: to=<alice@isp.example>, relay=local, delay=\d+, "
               r"status=sent \(delivered to maildir\)" % qid)
    assert os.path.isdir(mdir(d, "isp.example", "alice", "cur"))
    assert os.path.isdir(mdir(d, "isp.example", "alice", "tmp"))
    assert os.listdir(mdir(d, "isp.example", "alice", "tmp")) == []
    assert new_files(d, "isp.example", "bob") == []


def test_unknown_user_550(make_daemon):
    d = make_daemon(customers=drops()).start()
    replies, final = smtp_send(d, ["nobody@isp.example", "ALICE@isp.example",
                                   "alice@other.example"], body())
    assert replies[0].startswith("550 5.1.1 <nobody@isp.example>"), replies
    assert code(replies[1]) == 250, replies                 # any case
    assert replies[2].startswith("550 5.1.1"), replies      # carol's domain, not alice's
    assert code(final) == 250
    d.wait_log(r"NOQUEUE: reject: RCPT from unknown\[127\.0\.0\.1\]: 550 5\.1\.1 "
               r"<nobody@isp\.example>.*to=<nobody@isp\.example>")
    wait_files(d, 1, "isp.example", "alice")


def test_over_quota_at_rcpt_counts_queued_and_stored_bytes(make_daemon):
    d = make_daemon(customers=drops(quota="5k")).start()
    d.kickq("hold", "isp.example")                  # the mail stays queued
    for i in range(2):
        replies, final = smtp_send(d, ALICE, body("queued %d" % i, size=2000))
        assert code(final) == 250, (replies, final)
    third = body("third", size=2000)
    replies, final = smtp_send(d, [ALICE, "bob@isp.example"], third, size=len(third))
    assert replies[0].startswith("452 4.2.2 <alice@isp.example>: Mailbox full: maildrop "
                                 "over quota"), replies
    assert code(replies[1]) == 250 and code(final) == 250, (replies, final)
    d.wait_log(r"NOQUEUE: reject: RCPT from .*452 4\.2\.2 <alice@isp\.example>")
    # without SIZE the message is refused at the end of DATA
    replies, final = smtp_send(d, ALICE, third)
    assert code(replies[0]) == 250 and final == "452 4.2.2 Error: maildrop over quota", final
    d.kickq("release", "isp.example")
    wait_files(d, 2, "isp.example", "alice")
    wait_for(lambda: queue(d) == [], what="an empty queue")
    # another program (a POP3 client of Dovecot...) removes the files: the
    # over-quota RCPT has the maildrop read again, and a later try gets in
    for f in new_files(d, "isp.example", "alice"):
        os.unlink(f)
    replies, final = smtp_send(d, ALICE, third, size=len(third))
    assert replies[0].startswith("452 4.2.2"), replies
    wait_for(lambda: code(smtp_send(d, ALICE, third, size=len(third))[1] or "") == 250,
             timeout=15, what="the rescan to make room")


def test_stored_usage_read_at_start(make_daemon):
    d = make_daemon(customers=drops(quota="4k"))
    new = mdir(d, "isp.example", "alice", "new")
    os.makedirs(new)
    for sub in ("cur", "tmp"):
        os.makedirs(mdir(d, "isp.example", "alice", sub))
    with open(os.path.join(new, "1700000000.M1P1Q1.old,S=5000,W=5000"), "wb") as f:
        f.write(b"x" * 5000)
    d.start()
    d.wait_log(r"maildrops: usage of 3 maildrops read in")
    replies, final = smtp_send(d, ALICE, body())
    assert replies[0].startswith("452 4.2.2"), replies


def test_reload_reads_the_new_maildrops(make_daemon):
    d = make_daemon(customers=drops()).start()
    d.wait_log(r"maildrops: usage of 3 maildrops read in")
    new = mdir(d, "isp.example", "dave", "new")
    os.makedirs(new)
    with open(os.path.join(new, "1700000000.M1P1Q1.old,S=5000,W=5000"), "wb") as f:
        f.write(b"x" * 5000)
    replies, _ = smtp_send(d, "dave@isp.example", body())
    assert replies[0].startswith("550 5.1.1"), replies
    d.customers = drops() + maildrop_conf("dave@isp.example", quota="4k")
    d.write_conf()
    m = len(d.log_text())
    d.hup()
    d.wait_log(r"maildrops: usage of 1 maildrops read in", start=m)   # dave only
    replies, _ = smtp_send(d, "dave@isp.example", body())
    assert replies[0].startswith("452 4.2.2 <dave@isp.example>"), replies


def test_quota_met_at_delivery_waits_then_goes(make_daemon):
    d = make_daemon(customers=drops(quota="20k")).start()
    d.kickq("hold", "isp.example")
    qids = []
    for i in range(2):
        replies, final = smtp_send(d, ALICE, body("m%d" % i, size=3000))
        assert code(final) == 250, final
        qids.append(final.split("queued as ")[1].strip())
    reload_customers(d, drops(quota="4k"))                 # room for one of them now
    d.kickq("release", "isp.example")
    wait_files(d, 1, "isp.example", "alice")

    def waiting():
        q = queue(d)
        return len(q) == 1 and q[0]["recipients"][0]["status"] == "deferred" and q[0]
    msg = wait_for(waiting, what="one message deferred")
    assert msg["recipients"][0]["reason"] == "452 4.2.2 maildrop over quota", msg
    assert "maildrop over quota" in d.kickq("list").stdout
    time.sleep(0.5)
    assert len(new_files(d, "isp.example", "alice")) == 1
    assert "bounced" not in d.log_text()
    for f in new_files(d, "isp.example", "alice"):      # the user fetched it
        os.unlink(f)
    r = d.kickq("kick", "isp.example")
    assert r.stdout == "kicked isp.example: 1 messages to local\n", r.stdout
    wait_for(lambda: queue(d) == [], what="the deferred message delivered")
    assert len(new_files(d, "isp.example", "alice")) == 1
    d.wait_log(r"%s: to=<alice@isp\.example>, relay=local, .*status=sent" % msg["queue_id"])


def test_loop_bounces_5_4_6(make_daemon):
    d = make_daemon(customers=drops()).start()
    data = body(extra="Delivered-To: Alice@ISP.example\r\n")
    replies, final = smtp_send(d, ALICE, data, sender="bob@isp.example")
    assert code(final) == 250, final
    qid = final.split("queued as ")[1].strip()
    d.wait_log(r"%s: to=<alice@isp\.example>, relay=local, .*status=bounced "
               r"\(554 5\.4\.6 mail forwarding loop for <alice@isp\.example>\)" % qid)
    # the DSN went to the sender, bob, whose maildrop is local too
    (dsn,) = wait_files(d, 1, "isp.example", "bob")
    text = read(dsn).decode()
    assert "Status: 5.4.6" in text and "Final-Recipient: rfc822; alice@isp.example" in text
    assert "Remote-MTA" not in text
    assert text.startswith("Return-Path: <>\nDelivered-To: bob@isp.example\n")
    assert new_files(d, "isp.example", "alice") == []
    # a Delivered-To for someone else, or in the body, is no loop
    smtp_send(d, ALICE, body(extra="Delivered-To: bob@isp.example\r\n")
              + "Delivered-To: alice@isp.example\r\n")
    wait_files(d, 1, "isp.example", "alice")


def test_domain_maildrop_one_copy_per_recipient(make_daemon):
    customers = customer_conf("acme", ["acme.example", "acme.co.uk"], deliver="maildrop",
                              secret="pop")
    d = make_daemon(customers=customers).start()
    rcpts = ["a@acme.example", "B@acme.example", "c@acme.co.uk"]
    data = body()
    replies, final = smtp_send(d, rcpts, data)
    assert [code(r) for r in replies] == [250, 250, 250] and code(final) == 250
    files = wait_files(d, 3, "acme")
    got = {}
    for f in files:
        content = read(f).decode()
        head = content.split("\n")
        assert head[0] == "Return-Path: <someone@sender.example>"
        assert head[1].startswith("Delivered-To: ") and head[2].startswith("X-Original-To: ")
        assert head[1][len("Delivered-To: "):] == head[2][len("X-Original-To: "):]
        assert content.endswith(data.replace("\r\n", "\n"))
        got[head[2][len("X-Original-To: "):]] = f
    assert sorted(got) == ["B@acme.example", "a@acme.example", "c@acme.co.uk"]
    wait_for(lambda: queue(d) == [], what="an empty queue")
    # a maildrop customer's kick is refused with the reason (INTERFACE.md),
    # and so is ETRN
    r = d.kickq("kick", "acme", check=False)
    assert r.returncode == 1 and "maildrop" in r.stderr, (r.returncode, r.stderr)
    with Raw(d.port) as c:
        c.greet()
        assert code(c.cmd("ETRN acme.example")) == 459


def test_domain_maildrop_quota_counts_the_maildrop(make_daemon):
    customers = customer_conf("acme", ["acme.example"], deliver="maildrop", secret="pop",
                              quota="4k")
    d = make_daemon(customers=customers)
    for sub in ("new", "cur", "tmp"):
        os.makedirs(mdir(d, "acme", sub))
    with open(mdir(d, "acme", "new", "1700000000.M1P1Q1.old,S=3000,W=3000"), "wb") as f:
        f.write(b"x" * 3000)
    d.start()
    d.wait_log(r"maildrops: usage of 1 maildrops read in")
    data = body(size=2000)
    replies, final = smtp_send(d, "bob@acme.example", data, size=len(data))
    assert replies[0].startswith("452 4.2.2 <bob@acme.example>: Mailbox full: customer "
                                 "over quota"), replies
    replies, final = smtp_send(d, "bob@acme.example", body(size=500), size=700)
    assert code(final) == 250, (replies, final)
    wait_files(d, 2, "acme")


def test_map_maildrops_and_kickmaild_n(make_daemon, tmp_path):
    path = os.path.join(str(tmp_path), "customers.sqlite")
    db = sqlite3.connect(path)
    with open(os.path.join(ROOT, "conf", "customers.sql")) as f:
        db.executescript(f.read())
    db.execute("INSERT INTO maildrops (address, password, quota) VALUES (?, ?, '1M')",
               ("dave@mapped.example", "$6$x$y"))
    db.commit()
    db.close()
    d = make_daemon(customers=drops(), extra='customer_map = "%s"\n' % path)
    r = subprocess.run([KICKMAILD, "-n", "-c", d.conf], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "%s: 0 customers, 1 maildrops" % path in r.stdout
    assert "%s: maildir_root %s: 4 maildrops, 3 local domains" % (d.conf, d.maildirs) in r.stdout
    d.start()
    replies, final = smtp_send(d, ["dave@mapped.example", "eve@mapped.example"], body())
    assert code(replies[0]) == 250 and replies[1].startswith("550 5.1.1"), replies
    wait_files(d, 1, "mapped.example", "dave")
    summary = {c["customer"]: c for c in d.kickq_json("summary")}
    assert summary["mapped.example"]["domains"] == ["mapped.example"], summary


def test_kickmaild_n_refuses_bad_maildrops(make_daemon):
    cases = [
        (maildrop_conf("../x@isp.example"), r":1: bad maildrop address '\.\./x@isp\.example'"),
        (maildrop_conf("a/b@isp.example"), r":1: bad maildrop address 'a/b@isp\.example'"),
        (customer_conf("acme", ["acme.example"]) + "\n" + maildrop_conf("bob@acme.example"),
         r":5: maildrop 'bob@acme\.example': its domain 'acme\.example' belongs to "
         r"customer 'acme' \(line 1\)"),
        (maildrop_conf("bob@isp.example") + maildrop_conf("BOB@isp.example"),
         r":4: maildrop 'bob@isp\.example' defined twice"),
    ]
    d = make_daemon(customers="")
    for text, want in cases:
        d.write_conf(text)              # the sections alone: their lines as written
        r = subprocess.run([KICKMAILD, "-n", "-c", d.conf], capture_output=True, text=True)
        assert r.returncode == 1, (text, r.stdout)
        assert r.stderr.startswith(d.conf + ":"), r.stderr
        assert re.search(want, r.stderr), (r.stderr, want)


def test_crash_burst_loses_nothing(make_daemon):
    d = make_daemon(customers=drops()).start()
    accepted = {}
    stop = threading.Event()

    def sender(k):
        i = 0
        while not stop.is_set() and i < 400:
            seq = "%d-%d" % (k, i)
            try:
                replies, final = smtp_send(d, ALICE, body(extra="X-Seq: %s\r\n" % seq))
            except (OSError, AssertionError):
                return                      # the daemon died under us
            if final and code(final) == 250:
                accepted[seq] = final.split("queued as ")[1].strip()
            i += 1
    threads = [threading.Thread(target=sender, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    wait_for(lambda: len(new_files(d, "isp.example", "alice")) >= 50, timeout=30,
             what="deliveries under way")
    d.kill9()
    stop.set()
    for t in threads:
        t.join(30)
    d.start()
    wait_for(lambda: queue(d) == [], timeout=60, what="the queue to drain after restart")
    seen = {}
    for f in new_files(d, "isp.example", "alice"):
        m = re.search(rb"\nX-Seq: (\S+)\n", read(f))
        assert m, f
        seen[m.group(1).decode()] = seen.get(m.group(1).decode(), 0) + 1
    lost = sorted(set(accepted) - set(seen))
    assert not lost, "accepted but neither delivered nor queued: %r" % lost[:10]
    dups = sum(n - 1 for n in seen.values())
    print("accepted %d, delivered %d files, %d duplicates" % (
        len(accepted), sum(seen.values()), dups))
    assert len(accepted) >= 50


def test_read_only_maildir_root_defers(make_daemon):
    """An operator's mistake (maildir_root remounted read-only) defers the
    mail (451, EROFS), never bounces it; once writable, a kick delivers it.
    Needs root (a tmpfs remounted read-only), else skipped."""
    import pytest
    d = make_daemon(customers=drops())
    os.makedirs(d.maildirs, exist_ok=True)
    if os.geteuid() != 0 or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", d.maildirs],
            capture_output=True).returncode != 0:
        pytest.skip("needs root to mount a tmpfs")
    try:
        for sub in ("tmp", "new", "cur"):           # alice's maildir exists
            os.makedirs(mdir(d, "isp.example", "alice", sub))
        subprocess.run(["mount", "-o", "remount,ro", d.maildirs], check=True)
        d.start()
        replies, final = smtp_send(d, ALICE, body())
        assert code(final) == 250, final

        def deferred():
            q = queue(d)
            return len(q) == 1 and q[0]["recipients"][0]["status"] == "deferred" and q[0]
        msg = wait_for(deferred, what="the message deferred")
        reason = msg["recipients"][0]["reason"]
        assert reason.startswith("451 4.3.0 ") and "Read-only file system" in reason, reason
        assert "bounced" not in d.log_text()
        subprocess.run(["mount", "-o", "remount,rw", d.maildirs], check=True)
        r = d.kickq("kick", "isp.example")
        assert r.stdout == "kicked isp.example: 1 messages to local\n", r.stdout
        wait_files(d, 1, "isp.example", "alice")
        wait_for(lambda: queue(d) == [], what="the queue to drain")
        d.stop()
    finally:
        subprocess.run(["umount", "-l", d.maildirs])


def send_many(d, rcpt, n, size=0, tag="m", lines=0):
    """n messages to rcpt over one connection (size: one long line of that
    many bytes; lines: that many more lines of 76 bytes); their queue IDs."""
    ids = []
    with Raw(d.port) as c:
        c.greet()
        for i in range(n):
            assert code(c.cmd("MAIL FROM:<someone@sender.example>")) == 250
            assert code(c.cmd("RCPT TO:<%s>" % rcpt)) == 250
            assert code(c.cmd("DATA")) == 354
            data = body("%s%d" % (tag, i), extra="X-Seq: %s%d\r\n" % (tag, i), size=size)
            data += ("y" * 74 + "\r\n") * lines
            c.send(data.replace("\r\n.", "\r\n..") + ".\r\n")
            final = c.reply(timeout=30)
            assert code(final) == 250, final
            ids.append(final.split("queued as ")[1].strip())
        c.cmd("QUIT")
    return ids


def test_batch_quota_reserved_exactly(make_daemon):
    """Messages released at once are written in batches (up to 64 messages in
    delivery for the local domain): the quota still lets exactly those in
    that fit, each file counted once, the rest deferred 452 (never bounced)."""
    d = make_daemon(customers=drops(quota="100k")).start()
    d.kickq("hold", "isp.example")
    send_many(d, ALICE, 8, size=3000)
    reload_customers(d, drops(quota="10k"))                # room for three of them
    d.kickq("release", "isp.example")

    def settled():
        q = queue(d)
        return len(q) == 5 and all(x["recipients"][0]["status"] == "deferred" for x in q) and q
    q = wait_for(settled, what="five messages deferred")
    assert {x["recipients"][0]["reason"] for x in q} == {"452 4.2.2 maildrop over quota"}
    files = new_files(d, "isp.example", "alice")
    assert len(files) == 3, files
    used = sum(len(read(f)) + read(f).count(b"\n") for f in files)
    assert used <= 10 * 1024
    assert "bounced" not in d.log_text()
    assert os.listdir(mdir(d, "isp.example", "alice", "tmp")) == []


def test_batch_broken_maildrop_fails_alone(make_daemon, tmp_path):
    """A batch that holds mail for a maildrop whose new/ is on another file
    system than its tmp/ (an operator's mess: a symbolic link to /dev/shm;
    the maildir looks whole, the link into new/ fails with EXDEV): only that
    maildrop's recipients fail; the others, written in the same rounds of
    syncs, are all delivered."""
    import pytest
    import shutil
    import tempfile
    d = make_daemon(customers=drops()).start()
    if not os.path.isdir("/dev/shm") or os.stat("/dev/shm").st_dev == os.stat(d.tmp).st_dev:
        pytest.skip("needs /dev/shm on another file system")
    elsewhere = tempfile.mkdtemp(dir="/dev/shm")
    try:
        bob = mdir(d, "isp.example", "bob")
        for sub in ("tmp", "cur"):
            os.makedirs(os.path.join(bob, sub))
        os.symlink(elsewhere, os.path.join(bob, "new"))
        d.kickq("hold", "isp.example")
        alice_ids = send_many(d, ALICE, 40, tag="a")
        bob_ids = send_many(d, "bob@isp.example", 10, tag="b")
        d.kickq("release", "isp.example")
        wait_files(d, 40, "isp.example", "alice")
        for qid in bob_ids:
            d.wait_log(r"%s: to=<bob@isp\.example>, relay=local, .*status=\w+ \(\d\d\d "
                       r"\d\.\d\.\d maildir delivery failed: maildir: link .*"
                       r"Invalid cross-device link" % qid)
        wait_for(lambda: not any(x["queue_id"] in alice_ids and
                                 x["recipients"][0]["address"] == ALICE for x in queue(d)),
                 what="alice's mail done")
        seqs = sorted(re.search(rb"\nX-Seq: (\S+)\n", read(f)).group(1).decode()
                      for f in new_files(d, "isp.example", "alice"))
        assert seqs == sorted("a%d" % i for i in range(40))
        for qid in alice_ids:
            d.wait_log(r"%s: to=<alice@isp\.example>, relay=local, .*status=sent" % qid)
        assert os.listdir(mdir(d, "isp.example", "alice", "tmp")) == []
        assert os.listdir(os.path.join(bob, "tmp")) == []
        assert os.listdir(elsewhere) == []
    finally:
        shutil.rmtree(elsewhere, ignore_errors=True)


def test_large_local_mail_within_the_memory_budget(make_daemon):
    """Ten 5 MB messages released at once: the sessions beyond connections
    take a message only while the local bodies in memory stay under 32 MB
    (the others quit), and the customer is never left without a session:
    all ten are delivered, none deferred."""
    d = make_daemon(customers=drops()).start()
    d.kickq("hold", "isp.example")
    ids = send_many(d, ALICE, 10, lines=5 * 1024 * 1024 // 76)
    d.kickq("release", "isp.example")
    wait_files(d, 10, "isp.example", "alice", timeout=60)
    wait_for(lambda: queue(d) == [], timeout=30, what="an empty queue")
    for qid in ids:
        d.wait_log(r"%s: to=<alice@isp\.example>, relay=local, .*status=sent" % qid)
    assert "deferred" not in d.log_text()
    sizes = {os.path.getsize(f) for f in new_files(d, "isp.example", "alice")}
    assert min(sizes) > 5 * 1024 * 1024 * 75 // 76 - 1024, sizes


def test_message_bigger_than_the_whole_quota_452_at_rcpt(make_daemon):
    """A declared SIZE larger than the maildrop's whole quota is over quota
    like any other: 452 4.2.2 at RCPT (the contract's one quota reply),
    while another recipient of the same transaction is accepted."""
    d = make_daemon(customers=drops(quota="5k")).start()
    big = body("big", size=6000)
    replies, final = smtp_send(d, [ALICE, "bob@isp.example"], big, size=len(big))
    assert replies[0].startswith("452 4.2.2 <alice@isp.example>"), replies
    assert code(replies[1]) == 250 and code(final) == 250, (replies, final)


def test_probe_odd_senders_and_bodies(make_daemon):
    """The null sender, a quoted local part; a body with 8-bit bytes, a
    10,000-byte line, no header section: the file is the message with LF
    ends, after our three lines."""
    d = make_daemon(customers=drops()).start()
    cases = [
        ("", "Subject: null sender\r\n\r\nbounce text\r\n"),
        ('"odd \\"quoted\\" name"@sender.example', "Subject: quoted\r\n\r\nx\r\n"),
        ("someone@sender.example", "Subject: 8bit\r\n\r\ncaf\u00e9 \u00fcber\r\n"),
        ("someone@sender.example", "Subject: long\r\n\r\n" + "y" * 10000 + "\r\n"),
        ("someone@sender.example", "\r\nno header section at all\r\n"),
    ]
    for i, (sender, data) in enumerate(cases):
        with Raw(d.port) as c:
            c.greet()
            assert code(c.cmd("MAIL FROM:<%s> BODY=8BITMIME" % sender)) == 250
            assert code(c.cmd("RCPT TO:<%s>" % ALICE)) == 250
            assert code(c.cmd("DATA")) == 354
            c.send(data + ".\r\n")
            final = c.reply(timeout=30)
            assert code(final) == 250, (sender, final)
            c.cmd("QUIT")
        files = wait_files(d, i + 1, "isp.example", "alice")
        got = [read(f) for f in files]
        want = data.replace("\r\n", "\n").encode("latin-1")
        match = [g for g in got if g.endswith(want) and
                 g.startswith(b"Return-Path: <%s>\n" % sender.encode())]
        assert len(match) == 1, (sender, got)
        content = match[0]
        head = content[:-len(want)].split(b"\n")
        assert head[1] == b"Delivered-To: alice@isp.example", head
        assert head[2].startswith(b"Received: ")


def _data(d, data):
    with Raw(d.port) as c:
        c.greet()
        assert code(c.cmd("MAIL FROM:<someone@sender.example>")) == 250
        assert code(c.cmd("RCPT TO:<%s>" % ALICE)) == 250
        assert code(c.cmd("DATA")) == 354
        c.send(data + b".\r\n")
        final = c.reply(timeout=30)
        c.cmd("QUIT")
    return final


def test_probe_bare_lf_and_nul_refused(make_daemon):
    """A bare LF in DATA is refused (SMTP smuggling), and so is a NUL;
    nothing reaches the maildrop; a clean message after them does."""
    d = make_daemon(customers=drops()).start()
    final = _data(d, b"Subject: bare\r\n\r\nline one\nline two\r\n")
    assert final.startswith("550 5.5.2"), final
    final = _data(d, b"Subject: nul\r\n\r\nNUL \0 here\r\n")
    assert final.startswith("550 5.6.0"), final
    data = b"Subject: clean\r\n\r\nclean\r\n"
    assert code(_data(d, data)) == 250
    (path,) = wait_files(d, 1, "isp.example", "alice")
    assert read(path).endswith(data.replace(b"\r\n", b"\n"))
    time.sleep(0.5)
    assert len(new_files(d, "isp.example", "alice")) == 1


def _acme_drop(make_daemon, **opts):
    customers = customer_conf("acme", ["acme.example", "acme.co.uk"], deliver="maildrop",
                              secret="pop", **opts)
    return make_daemon(customers=customers).start()


def _heads(content):
    """The lines before the message (Return-Path, Delivered-To, X-Original-To)."""
    return content.split(b"\n")[:3]


def test_probe_domain_maildrop_odd_recipients(make_daemon):
    """Quoted local parts, one with an escaped quote and one with spaces,
    are one header line each in Delivered-To and X-Original-To; a bare CR
    inside a quoted local part never reaches the file (refused at RCPT or
    written without the CR)."""
    d = _acme_drop(make_daemon)
    rcpts = ['"a b"@acme.example', '"x\\"y"@acme.example', "o'brien+tag@acme.co.uk"]
    replies, final = smtp_send(d, rcpts, body())
    assert [code(r) for r in replies] == [250, 250, 250], replies
    assert code(final) == 250, final
    files = wait_files(d, 3, "acme")
    got = set()
    for f in files:
        content = read(f)
        assert b"\r" not in content, content[:200]
        h = _heads(content)
        assert h[1].startswith(b"Delivered-To: ") and h[2].startswith(b"X-Original-To: "), h
        assert h[1][len(b"Delivered-To: "):] == h[2][len(b"X-Original-To: "):]
        got.add(h[2][len(b"X-Original-To: "):].decode())
        assert content.split(b"\n")[3].startswith(b"Received: "), h
    assert got == set(rcpts), got
    # a bare CR (or a bare LF) inside the address
    with Raw(d.port) as c:
        c.greet()
        assert code(c.cmd("MAIL FROM:<someone@sender.example>")) == 250
        r1 = c.cmd('RCPT TO:<"a\rX-Evil: 1"@acme.example>')
        r2 = c.cmd('RCPT TO:<"b\nX-Evil: 2"@acme.example>')
        rs = [r1, r2]
        # a bare LF may end the line (then the rest is a bad command)
        while True:
            try:
                more = c.reply(timeout=1)
            except socket.timeout:
                break
            if more is None:
                break
            rs.append(more)
        if any(code(r) == 250 for r in (r1, r2)):
            assert code(c.cmd("DATA")) == 354
            c.send("Subject: evil\r\n\r\nx\r\n.\r\n")
            assert code(c.reply(timeout=30)) == 250
        print(rs)
        assert not any(code(r) == 250 for r in rs), rs
    time.sleep(1)
    for f in new_files(d, "acme"):
        content = read(f)
        assert b"\r" not in content and b"\nX-Evil" not in content, content[:300]


def test_probe_domain_maildrop_many_and_duplicate_recipients(make_daemon):
    """100 recipients over two domains of one customer: 100 copies, each
    naming its recipient; the same recipient twice in an envelope (also in
    another case) is one copy, as Postfix does."""
    d = _acme_drop(make_daemon)
    rcpts = ["u%d@%s" % (i, "acme.example" if i % 2 else "acme.co.uk") for i in range(100)]
    replies, final = smtp_send(d, rcpts, body())
    assert all(code(r) == 250 for r in replies) and code(final) == 250
    files = wait_files(d, 100, "acme", timeout=30)
    assert len(files) == 100
    seen = sorted(_heads(read(f))[2][len(b"X-Original-To: "):].decode() for f in files)
    assert seen == sorted(rcpts)
    for f in files:
        os.unlink(f)
    replies, final = smtp_send(d, ["dup@acme.example", "dup@acme.example",
                                   "DUP@acme.example"], body())
    assert code(final) == 250
    wait_files(d, 1, "acme")
    wait_for(lambda: queue(d) == [], what="an empty queue")
    time.sleep(0.5)
    got = [_heads(read(f))[2] for f in new_files(d, "acme")]
    print(got)
    assert len(got) == 1, got


def test_probe_quota_raised_by_reload_delivers_the_waiting_mail(make_daemon):
    """Mail deferred for quota (452) goes into the maildrop soon after a
    SIGHUP raises the quota, without an operator's kick; quota = 0 means
    no quota."""
    d = make_daemon(customers=drops(quota="100k")).start()
    d.kickq("hold", "isp.example")
    send_many(d, ALICE, 3, size=3000)
    reload_customers(d, drops(quota="4k"))                 # room for one of them
    d.kickq("release", "isp.example")
    wait_files(d, 1, "isp.example", "alice")

    def deferred():
        q = queue(d)
        return len(q) == 2 and all(x["recipients"][0]["status"] == "deferred" for x in q)
    wait_for(deferred, what="two messages deferred for quota")
    d.customers = drops(quota=0)
    d.write_conf()
    m = len(d.log_text())
    t0 = time.time()
    d.hup()
    d.wait_log(r"configuration reloaded", start=m)
    wait_for(lambda: queue(d) == [], timeout=20, what="the waiting mail delivered")
    assert time.time() - t0 < 10            # not at the next retry (1 min and more)
    d.wait_log(r"isp\.example: room in maildrop alice@isp\.example: retrying 2 messages",
               start=m)
    assert len(new_files(d, "isp.example", "alice")) == 3
    send_many(d, ALICE, 3, size=3000, tag="after")          # quota 0: no quota
    wait_files(d, 6, "isp.example", "alice")


def test_probe_customer_quota_raised_by_reload_delivers_the_waiting_mail(make_daemon):
    """The same for a deliver = "maildrop" customer's quota."""
    def conf(quota):
        return customer_conf("acme", ["acme.example"], deliver="maildrop", secret="pop",
                             quota=quota)
    d = make_daemon(customers=conf("100k")).start()
    d.kickq("hold", "acme")
    send_many(d, "bob@acme.example", 3, size=3000)
    reload_customers(d, conf("4k"))
    d.kickq("release", "acme")
    wait_files(d, 1, "acme")
    wait_for(lambda: len(queue(d)) == 2 and all(
        x["recipients"][0]["status"] == "deferred" for x in queue(d)),
        what="two messages deferred for quota")
    d.customers = conf("1M")
    d.write_conf()
    m = len(d.log_text())
    t0 = time.time()
    d.hup()
    wait_for(lambda: queue(d) == [], timeout=20, what="the waiting mail delivered")
    assert time.time() - t0 < 10
    d.wait_log(r"acme: room in maildrop acme: retrying 2 messages", start=m)
    assert len(new_files(d, "acme")) == 3


def test_probe_domain_maildrop_loop_per_recipient(make_daemon):
    """A message that already carries our Delivered-To for one recipient of
    a domain maildrop (folded, in another case, below other fields) is a
    loop for that recipient only: bounced 5.4.6, while the other recipient
    of the same envelope gets its copy."""
    d = _acme_drop(make_daemon)
    extra = ("X-A: 1\r\nX-B: 2\r\ndelivered-to:\r\n \tA@ACME.example \r\nX-C: 3\r\n")
    replies, final = smtp_send(d, ["a@acme.example", "b@acme.example"], body(extra=extra),
                               sender="")
    assert code(final) == 250, final
    qid = final.split("queued as ")[1].strip()
    d.wait_log(r"%s: to=<a@acme\.example>, relay=local, .*status=bounced "
               r"\(554 5\.4\.6 mail forwarding loop for <a@acme\.example>\)" % qid)
    (f,) = wait_files(d, 1, "acme")
    assert _heads(read(f))[2] == b"X-Original-To: b@acme.example"


def test_probe_maildrop_in_map_and_config(make_daemon, tmp_path):
    """The same maildrop in a maildrop section and in the map's table, in
    another case: kickmaild -n refuses it and names both places."""
    path = os.path.join(str(tmp_path), "customers.sqlite")
    db = sqlite3.connect(path)
    with open(os.path.join(ROOT, "conf", "customers.sql")) as f:
        db.executescript(f.read())
    db.execute("INSERT INTO maildrops (address, password) VALUES ('ALICE@isp.example', 'h')")
    db.commit()
    db.close()
    d = make_daemon(customers=drops(), extra='customer_map = "%s"\n' % path)
    r = subprocess.run([KICKMAILD, "-n", "-c", d.conf], capture_output=True, text=True)
    assert r.returncode == 1, r.stdout
    assert re.search(r"maildrop 'alice@isp\.example' defined twice \(.*kickmail\.conf.*"
                     r"and .*customers\.sqlite\)|maildrop 'alice@isp\.example' defined twice "
                     r"\(.*customers\.sqlite.* and .*kickmail\.conf.*\)", r.stderr), r.stderr


def test_probe_maildrop_names_long_and_odd(make_daemon):
    """kickmaild -n refuses a local part of 65 characters, a domain label of
    64, a domain of more than 253, a leading dot; an address in upper case
    is delivered under its lower-case path, inside maildir_root."""
    d = make_daemon(customers="")
    bad = ["x" * 65 + "@isp.example", "a@" + "b" * 64 + ".example",
           "a@" + ".".join(["c" * 60] * 5) + ".example", ".a@isp.example",
           "a@isp..example", "a@.isp.example",
           # 255 characters: longer than SMTP's path (256 with its <>) allows
           "x" * 64 + "@" + "c" * 63 + "." + "c" * 63 + "." + "c" * 54 + ".example"]
    for addr in bad:
        d.write_conf(maildrop_conf(addr))
        r = subprocess.run([KICKMAILD, "-n", "-c", d.conf], capture_output=True, text=True)
        assert r.returncode == 1 and "bad maildrop address" in r.stderr, (addr, r.stderr)
    longest = "x" * 64 + "@" + "c" * 63 + "." + "c" * 63 + "." + "c" * 53 + ".example"
    assert len(longest) == 254
    d.customers = maildrop_conf("Upper.Case@ISP.Example") + maildrop_conf(longest)
    d.write_conf()
    d.start()
    for rcpt in ("UPPER.CASE@isp.EXAMPLE", longest):
        replies, final = smtp_send(d, rcpt, body())
        assert code(final) == 250, (rcpt, replies, final)
    (f,) = wait_files(d, 1, "isp.example", "upper.case")
    root = os.path.realpath(d.maildirs)
    assert os.path.realpath(f).startswith(root + os.sep)
    local, domain = longest.split("@")
    (f,) = wait_files(d, 1, domain, local)
    assert os.path.realpath(f).startswith(root + os.sep)


def test_probe_domain_maildrop_quota_counts_each_copy(make_daemon):
    """A domain maildrop stores one copy per recipient.  20 recipients of a
    1,000-byte message (SIZE=1000) against a 10k quota: RCPT counts a copy
    per recipient accepted, so 10 get 250 and the other 10 get 452 4.2.2
    (a recipient repeated gets 250 and adds no copy); no more than 10k goes
    into the maildrop, and nothing bounces."""
    d = _acme_drop(make_daemon, quota="10k")
    data = body(size=1000)
    rcpts = ["u%d@acme.example" % i for i in range(20)]
    # u0 again (in another case) after the 10th: accepted once, no copy more
    rcpts.insert(10, "U0@acme.example")
    replies, final = smtp_send(d, rcpts, data, size=1000)
    ok = [r for r in replies if code(r) == 250]
    over = [r for r in replies if r.startswith("452 4.2.2")]
    assert len(ok) == 11 and len(over) == 10, replies
    assert all(code(r) == 250 for r in replies[:11]), replies
    assert code(final) == 250, final
    time.sleep(2)
    files = new_files(d, "acme")
    used = sum(len(read(f)) + read(f).count(b"\n") for f in files)
    assert used <= 10 * 1024, (len(ok), len(files), used)
    assert "bounced" not in d.log_text()


def test_probe_map_maildrop_quota(make_daemon, tmp_path):
    """A map maildrop's quota: 452 at RCPT when full; raised in the map and
    reloaded, the mail deferred for it goes in at once; '0' is no quota."""
    path = os.path.join(str(tmp_path), "customers.sqlite")

    def set_quota(q):
        db = sqlite3.connect(path)
        if q is None:
            with open(os.path.join(ROOT, "conf", "customers.sql")) as f:
                db.executescript(f.read())
            db.execute("INSERT INTO maildrops (address, password, quota) "
                       "VALUES ('dave@mapped.example', '$6$x$y', '100k')")
        else:
            db.execute("UPDATE maildrops SET quota = ?", (q,))
        db.commit()
        db.close()
    set_quota(None)
    d = make_daemon(customers="", extra='customer_map = "%s"\n' % path).start()
    d.kickq("hold", "mapped.example")
    send_many(d, "dave@mapped.example", 3, size=3000)
    set_quota("4k")
    m = len(d.log_text())
    d.hup()
    d.wait_log(r"configuration reloaded", start=m)
    replies, _ = smtp_send(d, "dave@mapped.example", body(), size=300)
    assert replies[0].startswith("452 4.2.2 <dave@mapped.example>"), replies
    d.kickq("release", "mapped.example")
    wait_files(d, 1, "mapped.example", "dave")
    wait_for(lambda: len(queue(d)) == 2 and all(
        x["recipients"][0]["status"] == "deferred" for x in queue(d)),
        what="two messages deferred for quota")
    set_quota("0")
    m = len(d.log_text())
    d.hup()
    wait_for(lambda: queue(d) == [], timeout=8, what="the waiting mail delivered")
    assert len(new_files(d, "mapped.example", "dave")) == 3
    replies, final = smtp_send(d, "dave@mapped.example", body(size=5000))
    assert code(final) == 250, (replies, final)


def test_probe_password_that_is_no_hash_is_reported(make_daemon):
    """A maildrop password written in plain text (as Dovecot's {PLAIN}
    habit would have it) can never match: crypt(3) takes it for a DES
    salt.  kickmaild -n and the start-up log name it (a warning: the
    configuration still loads); a locked '*' or '!' hash and real hashes
    are not named."""
    text = (maildrop_conf("alice@isp.example") +
            'maildrop "plain@isp.example" { password = \'s3cret\' }\n'
            'maildrop "locked@isp.example" { password = \'!\' }\n'
            'maildrop "yes@isp.example" { password = \'$y$j9T$F5Jx5fExrKuPp53xLKQ..1$'
            'X3DX6M94c7o.9agCG9G317fhZg9SqC.5i5rd.RhAtQ7\' }\n')
    d = make_daemon(customers=text)
    r = subprocess.run([KICKMAILD, "-n", "-c", d.conf], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    assert re.search(r"warning: 1 maildrops? ha(s|ve) a password that is not a crypt\(3\) "
                     r"hash.*plain@isp\.example", out), out
    for name in ("alice@", "locked@", "yes@"):
        assert name not in out, out
    d.start()
    d.wait_log(r"warning: 1 maildrops? ha(s|ve) a password that is not a crypt\(3\) hash"
               r".*plain@isp\.example")


def test_probe3_disk_full_defers_and_delivers_after_room_is_made(make_daemon):
    """maildir_root on a 256 KiB tmpfs: the messages that do not fit are
    deferred with 451 (never bounced), no file is left in tmp/, and a
    kick after the file system grew delivers them.  Needs root (mount)."""
    if os.geteuid() != 0:
        import pytest
        pytest.skip("mounting a tmpfs needs root")
    d = make_daemon(customers=drops())
    os.makedirs(d.maildirs, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", d.maildirs],
                   check=True)
    try:
        d.start()
        data = [("Subject: n%d\r\n\r\n" % i) + ("y" * 70 + "\r\n") * 1400 for i in range(4)]
        for text in data:
            assert code(smtp_send(d, ALICE, text)[1]) == 250
        wait_for(lambda: len(queue(d)) == 2 and all(
            r["status"] == "deferred" for m in queue(d) for r in m["recipients"]),
            what="2 messages deferred")
        for m in queue(d):
            assert m["recipients"][0]["reason"].startswith("451 4.3.0 "), m
            assert "No space left on device" in m["recipients"][0]["reason"], m
        assert len(new_files(d, "isp.example", "alice")) == 2
        assert os.listdir(mdir(d, "isp.example", "alice", "tmp")) == []
        assert "bounce" not in d.log_text().lower()
        subprocess.run(["mount", "-o", "remount,size=2m", d.maildirs], check=True)
        d.kickq("kick", "isp.example")
        wait_for(lambda: queue(d) == [], what="an empty queue")
        got = sorted(read(p).split(b"Subject: ")[1][:2] for p in
                     new_files(d, "isp.example", "alice"))
        assert got == [b"n0", b"n1", b"n2", b"n3"]
        d.stop()
    finally:
        subprocess.run(["umount", "-l", d.maildirs])

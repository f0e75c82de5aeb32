"""Every bound of the smtp section, with its proper reply, and nothing queued
half."""
import socket
import subprocess
import time

from conftest import (KICKMAILD, Raw, code, message, queue, queue_ids, queued_id,
                      wait_for)


def _begin(c, rcpts=("bob@acme.example",), mail="MAIL FROM:<alice@sender.example>"):
    c.greet()
    r = c.cmd(mail)
    assert code(r) == 250, r
    for rc in rcpts:
        r = c.cmd("RCPT TO:<%s>" % rc)
        assert code(r) == 250, (rc, r)
    r = c.cmd("DATA")
    assert code(r) == 354, r


def _send_data(d, data, rcpts=("bob@acme.example",)):
    """A fresh session; data is sent after the 354 followed by the dot.
    Returns the reply to the dot and whether a NOOP afterwards got 250."""
    with Raw(d.port) as c:
        _begin(c, rcpts)
        c.send(data + ".\r\n")
        r = c.reply(timeout=20)
        alive = r is not None and code(c.cmd("NOOP")) == 250
    return r, alive


# ---- message size ----

def test_size_declared_at_mail_over_limit(make_daemon):
    d = make_daemon(smtp_opts="max_message_size = 2000").start()
    with Raw(d.port) as c:
        ehlo = c.greet()
        assert "SIZE 2000" in ehlo, ehlo
        r = c.cmd("MAIL FROM:<alice@sender.example> SIZE=2001")
        assert r.startswith("552 5.3.4"), r
        # the session goes on; a size within the limit is fine
        r = c.cmd("MAIL FROM:<alice@sender.example> SIZE=1500")
        assert r.startswith("250"), r
        r = c.cmd("RCPT TO:<bob@acme.example>")
        assert r.startswith("250"), r
        assert code(c.cmd("DATA")) == 354
        c.send(message(body="small\r\n") + ".\r\n")
        queued_id(c.reply())
    assert len(queue(d)) == 1


def test_size_while_receiving_over_limit(make_daemon):
    d = make_daemon(smtp_opts="max_message_size = 2000").start()
    big = message(body=("y" * 70 + "\r\n") * 40)     # ~2.9 kB
    r, alive = _send_data(d, big)
    assert r.startswith("552 5.3.4"), r
    assert alive
    assert queue(d) == []
    # the SIZE lie does not help either
    with Raw(d.port) as c:
        _begin(c, mail="MAIL FROM:<alice@sender.example> SIZE=100")
        c.send(big + ".\r\n")
        r = c.reply(timeout=20)
        assert r.startswith("552 5.3.4"), r
    assert queue(d) == []
    # a message just under the limit is still accepted
    r, _ = _send_data(d, message(body="z" * 1000 + "\r\n"))
    queued_id(r)
    assert len(queue(d)) == 1


PART = ("a" * 70 + "\r\n") * 400                      # ~28.8 kB of message data


def _hold(c, subject):
    """Begins a transaction on c and sends a message of ~28.8 kB without its
    final dot: the server holds it in memory until the dot."""
    _begin(c)
    c.send(message(subject=subject) + PART)
    time.sleep(0.3)                                     # read by the server


def _refused_for_memory(c, subject):
    """Sends a whole message on c's new transaction; asserts the 452 4.3.1
    and that the session goes on."""
    _begin(c)
    c.send(message(subject=subject) + PART + ".\r\n")
    r = c.reply(timeout=20)
    assert r.startswith("452 4.3.1"), r
    assert code(c.cmd("NOOP")) == 250                   # the session goes on


def _send_again(c, subject):
    """A new transaction on c (already greeted) whose message is accepted."""
    assert code(c.cmd("MAIL FROM:<alice@sender.example>")) == 250
    assert code(c.cmd("RCPT TO:<bob@acme.example>")) == 250
    assert code(c.cmd("DATA")) == 354
    c.send(message(subject=subject) + PART + ".\r\n")
    return queued_id(c.reply(timeout=20))


def test_data_in_memory_of_all_sessions_is_bounded(make_daemon):
    """max_data_in_memory bounds the message data all sessions hold before
    their final dot: a message that would go over it is read to its end and
    refused with 452 4.3.1 (the sender tries again); the others go on, and
    once they are done the same message is accepted.  Two client addresses,
    so that the total is reached before either client's share."""
    d = make_daemon(smtp_opts="max_message_size = 30000\n  max_data_in_memory = 50000").start()
    with Raw(d.port) as a, Raw(d.port, source="127.0.0.2") as b:
        _hold(a, "first")
        _refused_for_memory(b, "second")
        a.send(".\r\n")
        first = queued_id(a.reply(timeout=20))
        # memory is free again: the same message now goes through
        second = _send_again(b, "second")
    assert sorted(queue_ids(d)) == sorted([first, second])
    d.wait_log(r"reject: message from .* max_data_in_memory \(50000 bytes\)")


def test_data_in_memory_per_client_is_bounded(make_daemon):
    """max_data_in_memory_per_client: the sessions of one client address
    together hold at most its share; over it, 452 4.3.1, while another
    client address is still served.  Once the first client's transactions
    end (one with its dot, one by disconnecting in the middle of DATA) its
    whole share is free again."""
    d = make_daemon(smtp_opts="max_message_size = 30000\n  max_data_in_memory = 200000\n"
                    "  max_data_in_memory_per_client = 60000").start()
    ids = []
    with Raw(d.port) as a, Raw(d.port) as b, Raw(d.port) as c:
        _hold(a, "a")
        _hold(b, "b")                                   # 127.0.0.1 holds ~57.6 kB
        _refused_for_memory(c, "c")                     # ~86 kB would be over 60000
        d.wait_log(r"reject: message from 127\.0\.0\.1 .* messages being received from "
                   r"this client use max_data_in_memory_per_client \(60000 bytes\)")
        # another client is not starved: the total (200000) has room
        with Raw(d.port, source="127.0.0.2") as other:
            other.greet()
            ids.append(_send_again(other, "other"))
        # the first client's transactions end: a with its dot, b by going away
        a.send(".\r\n")
        ids.append(queued_id(a.reply(timeout=20)))
        mark = len(d.log_text())
        b.close()
        d.wait_log(r"disconnect from 127\.0\.0\.1 ", start=mark)
        # its share is whole again: two messages held at once fit
        with Raw(d.port) as e, Raw(d.port) as f:
            _hold(e, "e")
            _hold(f, "f")
            e.send(".\r\n")
            f.send(".\r\n")
            ids.append(queued_id(e.reply(timeout=20)))
            ids.append(queued_id(f.reply(timeout=20)))
    assert sorted(queue_ids(d)) == sorted(ids)
    assert len(ids) == 4


def _config_check(d):
    """`kickmaild -n` on d's configuration: the completed process."""
    return subprocess.run([KICKMAILD, "-n", "-c", d.conf], capture_output=True, text=True,
                          timeout=30)


def test_data_in_memory_below_message_size_is_refused(make_daemon):
    r = _config_check(make_daemon(smtp_opts="max_message_size = 30000\n"
                                  "  max_data_in_memory = 20000"))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "max_data_in_memory" in r.stdout + r.stderr


def test_data_in_memory_per_client_below_message_size_is_refused(make_daemon):
    r = _config_check(make_daemon(smtp_opts="max_message_size = 30000\n"
                                  "  max_data_in_memory_per_client = 29999"))
    assert r.returncode == 1, r.stdout + r.stderr
    assert ("max_data_in_memory_per_client (29999) is less than max_message_size (30000)"
            in r.stdout + r.stderr), r.stdout + r.stderr
    # exactly max_message_size is enough
    r = _config_check(make_daemon(smtp_opts="max_message_size = 30000\n"
                                  "  max_data_in_memory_per_client = 30000"))
    assert r.returncode == 0 and "configuration OK" in r.stdout, r.stdout + r.stderr


def test_size_far_over_limit_does_not_hang(make_daemon):
    """Megabytes past the limit are read and thrown away, then 552."""
    d = make_daemon(smtp_opts="max_message_size = 2000").start()
    with Raw(d.port) as c:
        _begin(c)
        chunk = ("w" * 998 + "\r\n").encode() * 1024        # 1 MB
        for _ in range(3):
            c.send(chunk)
        c.send(b".\r\n")
        r = c.reply(timeout=30)
        assert r.startswith("552 5.3.4"), r
    assert queue(d) == []


# ---- recipients ----

def test_too_many_recipients(make_daemon):
    d = make_daemon(smtp_opts="max_recipients = 3").start()
    with Raw(d.port) as c:
        c.greet()
        assert code(c.cmd("MAIL FROM:<alice@sender.example>")) == 250
        for i in range(3):
            r = c.cmd("RCPT TO:<user%d@acme.example>" % i)
            assert r.startswith("250"), r
        r = c.cmd("RCPT TO:<user3@acme.example>")
        assert r.startswith("452 4.5.3"), r
        assert code(c.cmd("DATA")) == 354
        c.send(message() + ".\r\n")
        qid = queued_id(c.reply())
    m = queue(d)[0]
    assert m["queue_id"] == qid
    assert sorted(r["address"] for r in m["recipients"]) == \
        ["user0@acme.example", "user1@acme.example", "user2@acme.example"]


def test_unknown_recipient_with_recipients_list(daemon):
    with Raw(daemon.port) as c:
        c.greet()
        assert code(c.cmd("MAIL FROM:<alice@sender.example>")) == 250
        r = c.cmd("RCPT TO:<alice@beta.example>")
        assert r.startswith("550 5.1.1"), r
        r = c.cmd("RCPT TO:<bob@beta.example>")
        assert r.startswith("250 2.1.5"), r
        r = c.cmd("RCPT TO:<sales@beta.example>")
        assert r.startswith("250 2.1.5"), r
        # acme has no list: every local part is accepted
        r = c.cmd("RCPT TO:<anyone@acme.example>")
        assert r.startswith("250 2.1.5"), r
        assert code(c.cmd("DATA")) == 354
        c.send(message() + ".\r\n")
        qid = queued_id(c.reply())
    m = queue(daemon)[0]
    assert m["queue_id"] == qid
    assert sorted(r["address"] for r in m["recipients"]) == \
        ["anyone@acme.example", "bob@beta.example", "sales@beta.example"]


# ---- lines ----

def test_long_command_line(daemon):
    with Raw(daemon.port) as c:
        c.greet()
        r = c.cmd("MAIL FROM:<" + "a" * 2000 + "@sender.example>")
        assert r.startswith("500 5.5.2"), r
        # the session still works, and the rest of the long line was not
        # taken as a command
        assert c.cmd("NOOP").startswith("250")
        assert code(c.cmd("MAIL FROM:<alice@sender.example>")) == 250
        assert code(c.cmd("RCPT TO:<bob@acme.example>")) == 250
        assert code(c.cmd("DATA")) == 354
        c.send(message() + ".\r\n")
        queued_id(c.reply())


def test_very_long_command_line_in_pieces(daemon):
    """100 kB without a line end, in several writes: one 500, then normal."""
    with Raw(daemon.port) as c:
        c.greet()
        for _ in range(10):
            c.send("X" * 10000)
        c.send("\r\nNOOP\r\n")
        r = c.reply()
        assert r.startswith("500 5.5.2"), r
        r = c.reply()
        assert r.startswith("250"), r


def test_long_local_part_refused(daemon):
    with Raw(daemon.port) as c:
        c.greet()
        assert code(c.cmd("MAIL FROM:<alice@sender.example>")) == 250
        r = c.cmd("RCPT TO:<" + "b" * 300 + "@acme.example>")
        assert r[:1] == "5", r
    assert queue(daemon) == []


def test_long_text_line_accepted(make_daemon):
    d = make_daemon(smtp_opts="line_length_limit = 2000").start()
    line = "L" * 1500
    r, _ = _send_data(d, message(body=line + "\r\nshort\r\n"))
    qid = queued_id(r)
    body = d.kickq("show", qid, "--body").stdout
    assert line in body


def test_long_text_line_accepted_by_default(daemon):
    """Past RFC 5321's 1000 octets, well within the default 64 kB."""
    line = "M" * 20000
    r, _ = _send_data(daemon, message(body=line + "\r\n"))
    qid = queued_id(r)
    assert line in daemon.kickq("show", qid, "--body").stdout


def test_text_line_over_limit(make_daemon):
    d = make_daemon(smtp_opts="line_length_limit = 2000").start()
    r, alive = _send_data(d, message(body="N" * 2500 + "\r\n"))
    assert r.startswith("552 5.3.4"), r
    assert alive
    assert queue(d) == []


def test_header_section_over_limit(make_daemon):
    d = make_daemon(smtp_opts="header_size_limit = 1000").start()
    many = "".join("X-Filler-%02d: %s\r\n" % (i, "h" * 60) for i in range(30))
    r, alive = _send_data(d, message(headers=many))
    assert r.startswith("552"), r
    assert r.startswith("552 5.3.4"), r
    assert alive
    assert queue(d) == []
    # the same bytes in the body are fine
    r, _ = _send_data(d, message(body=many))
    queued_id(r)


# ---- loops ----

def _received(n):
    return "".join("Received: from hop%d.example by hop%d.example; "
                   "Sun, 22 Nov 2020 02:54:46 +0000\r\n" % (i, i + 1) for i in range(n))


def test_too_many_received_headers(make_daemon):
    d = make_daemon(smtp_opts="max_received_headers = 5").start()
    r, alive = _send_data(d, _received(6) + message())
    assert r.startswith("554 5.4.6"), r
    assert alive
    assert queue(d) == []
    r, _ = _send_data(d, _received(5) + message())
    queued_id(r)
    r, _ = _send_data(d, _received(4) + message())
    queued_id(r)
    assert len(queue(d)) == 2


def test_received_in_body_does_not_count(make_daemon):
    d = make_daemon(smtp_opts="max_received_headers = 5").start()
    r, _ = _send_data(d, message(body=_received(10)))
    queued_id(r)


# ---- quota ----

QUOTA_CUSTOMERS = """
customer "acme" {
  domains = {"acme.example"}
  quota = 10k
}
customer "beta" {
  domains = {"beta.example"}
}
"""


def test_customer_quota(make_daemon):
    d = make_daemon(customers=QUOTA_CUSTOMERS).start()
    six_k = message(body=("q" * 98 + "\r\n") * 60)        # ~6 kB
    r, _ = _send_data(d, six_k)
    first = queued_id(r)
    # a second one would take acme over 10k
    r, alive = _send_data(d, six_k)
    assert r.startswith("452 4.2.2"), r
    assert alive
    assert queue_ids(d) == [first]
    # announced with SIZE: refused at RCPT already
    with Raw(d.port) as c:
        c.greet()
        assert code(c.cmd("MAIL FROM:<alice@sender.example> SIZE=6000")) == 250
        r = c.cmd("RCPT TO:<bob@acme.example>")
        assert r.startswith("452 4.2.2"), r
        # another customer is not affected
        r = c.cmd("RCPT TO:<bob@beta.example>")
        assert r.startswith("250"), r
    r, _ = _send_data(d, six_k, rcpts=("bob@beta.example",))
    queued_id(r)
    # small mail still fits under acme's quota
    r, _ = _send_data(d, message(body="tiny\r\n"))
    queued_id(r)
    assert len(queue(d, "acme")) == 2
    # deleting frees the quota
    d.kickq("delete", first)
    r, _ = _send_data(d, six_k)
    queued_id(r)


# ---- sessions ----

def test_too_many_bad_commands(make_daemon):
    d = make_daemon(smtp_opts="max_bad_commands = 3").start()
    with Raw(d.port) as c:
        c.greet()
        for i in range(3):
            r = c.cmd("BOGUS%d" % i)
            assert r.startswith("500"), (i, r)
        # max_bad_commands errors are tolerated: the session is still open
        r = c.cmd("NOOP")
        assert r.startswith("250"), r
        r = c.cmd("BOGUS3")
        assert r is not None
        # the 4th error may carry its own 500 before the 421
        if r.startswith("500"):
            r = c.reply()
        assert r.startswith("421"), r
        assert c.is_closed()


def test_idle_timeout(make_daemon):
    d = make_daemon(smtp_opts="timeout = 1").start()
    with Raw(d.port) as c:
        c.greet()
        t0 = time.time()
        r = c.reply(timeout=15)
        waited = time.time() - t0
        assert r is not None and r.startswith("421"), r
        assert 0.5 <= waited < 10, waited
        assert c.is_closed()


def test_timeout_in_data(make_daemon):
    d = make_daemon(smtp_opts="timeout = 1").start()
    with Raw(d.port) as c:
        _begin(c)
        c.send(message())            # no end marker
        r = c.reply(timeout=15)
        assert r is not None and r.startswith("421"), r
        assert c.is_closed()
    assert queue(d) == []


def test_connections_per_client(make_daemon):
    d = make_daemon(smtp_opts="max_connections_per_client = 2").start()
    a, b = Raw(d.port), Raw(d.port)
    try:
        assert code(a.reply()) == 220 and code(b.reply()) == 220
        with Raw(d.port) as c:
            r = c.reply()
            assert r is not None and r.startswith("421 4.7.0"), r
            assert c.is_closed()
        # another client address is not affected
        with Raw(d.port, source="127.0.0.2") as e:
            r = e.reply()
            assert r.startswith("220"), r
        # the first two still work
        assert code(a.cmd("EHLO a.example")) == 250
        assert code(b.cmd("NOOP")) == 250
    finally:
        a.close()
        b.close()

    # once one is gone, a new connection is welcome again
    def try_connect():
        with Raw(d.port) as c:
            r = c.reply()
            return r is not None and r.startswith("220")
    wait_for(try_connect, what="a slot after closing")


def test_max_connections(make_daemon):
    d = make_daemon(smtp_opts="max_connections = 2\n  max_connections_per_client = 10").start()
    a = Raw(d.port, source="127.0.0.1")
    b = Raw(d.port, source="127.0.0.2")
    try:
        assert code(a.reply()) == 220 and code(b.reply()) == 220
        with Raw(d.port, source="127.0.0.3") as c:
            r = c.reply()
            assert r is not None and r.startswith("421 4.7.0"), r
            assert c.is_closed()
    finally:
        a.close()
        b.close()

    def try_connect():
        with Raw(d.port, source="127.0.0.3") as c:
            r = c.reply()
            return r is not None and r.startswith("220")
    wait_for(try_connect, what="a slot after closing")


def test_client_that_never_reads_replies(make_daemon):
    """A peer flooding pipelined commands without reading its replies is
    stopped being read (backpressure) instead of the daemon buffering replies
    without bound, and others are still served meanwhile."""
    d = make_daemon().start()
    flood = socket.create_connection(("127.0.0.1", d.port))
    flood.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    flood.setblocking(False)
    sent, limit = 0, 32 * 1024 * 1024
    chunk = b"NOOP\r\n" * 10000
    blocked_since = None
    try:
        while sent < limit:
            try:
                sent += flood.send(chunk)
                blocked_since = None
            except BlockingIOError:
                now = time.time()
                if blocked_since is None:
                    blocked_since = now
                elif now - blocked_since > 0.5:
                    break
                time.sleep(0.01)
        # 32 MB of NOOPs would be ~70 MB of replies: the daemon stopped
        # reading long before that
        assert sent < limit, "daemon kept reading a peer that does not read"
        qid = d.send("bob@acme.example")
        assert queue_ids(d) == [qid]
    finally:
        flood.close()

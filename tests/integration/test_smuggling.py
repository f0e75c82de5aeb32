"""SMTP smuggling (CVE-2023-51764/-51765/-51766): only CR LF . CR LF ends DATA.
A bare CR or LF (or a NUL) refuses the whole transaction, so no probe can end
a message early and start a second, smuggled one."""
import pytest

from conftest import Raw, code, queue

PROBES = [
    b"\n.\n",
    b"\r.\r",
    b"\r.\n",
    b"\n.\r",
    b"\n.\r\n",
    b"\r\n.\n",
    b"\r.\r\n",
    b"\r\n.\r",
    b"\r\n\x00.\r\n",
]

SMUGGLED = (b"MAIL FROM:<evil@x.example>\r\nRCPT TO:<victim@acme.example>\r\n"
            b"DATA\r\n\r\nsmuggled\r\n.\r\n")

REFUSALS = ("550 5.5.2", "550 5.6.0", "521")


def _replies_after(c, timeout=10):
    """Every reply to what was sent, up to the close: reads the first reply;
    unless the server closed, sends QUIT and reads until the close (replies
    come in order, so anything extra shows up before the 221)."""
    first = c.reply(timeout=timeout)
    if first is None:
        return []
    if first.startswith("521") or first.startswith("421"):
        assert c.is_closed(), "no close after %r" % first
        return [first]
    c.send("QUIT\r\n")
    rest = c.replies_until_close(timeout=timeout)
    assert rest and rest[-1].startswith("221"), [first] + rest
    return [first] + rest[:-1]


def _open_transaction(d):
    c = Raw(d.port)
    c.greet()
    assert code(c.cmd("MAIL FROM:<alice@sender.example>")) == 250
    assert code(c.cmd("RCPT TO:<bob@acme.example>")) == 250
    assert code(c.cmd("DATA")) == 354
    return c


def _check_nothing_smuggled(d, replies):
    queued = [r for r in replies if "queued as" in r]
    assert len(queued) <= 1, replies
    assert replies, "no reply to the data at all"
    assert replies[0].startswith(REFUSALS), replies
    msgs = queue(d)
    for m in msgs:
        for r in m["recipients"]:
            assert r["address"] != "victim@acme.example", msgs
    assert msgs == [], msgs      # the first message was refused too


@pytest.mark.parametrize("probe", PROBES, ids=[repr(p)[2:-1] for p in PROBES])
def test_smuggling_probe(daemon, probe):
    c = _open_transaction(daemon)
    try:
        c.send(b"Subject: x\r\n\r\nbody" + probe + SMUGGLED)
        replies = _replies_after(c)
    finally:
        c.close()
    _check_nothing_smuggled(daemon, replies)
    # the daemon still serves afterwards
    qid = daemon.send("bob@acme.example")
    assert [m["queue_id"] for m in queue(daemon)] == [qid]


@pytest.mark.parametrize("probe", PROBES, ids=[repr(p)[2:-1] for p in PROBES])
def test_smuggling_probe_split_in_bytes(daemon, probe):
    """The same, written one byte at a time around the probe (decoder state
    across reads)."""
    c = _open_transaction(daemon)
    try:
        c.send(b"Subject: x\r\n\r\nbody")
        for b in probe + SMUGGLED[:40]:
            c.send(bytes([b]))
        c.send(SMUGGLED[40:])
        replies = _replies_after(c)
    finally:
        c.close()
    _check_nothing_smuggled(daemon, replies)


def test_smuggling_probe_in_a_later_transaction(daemon):
    """A first, clean message is queued; the smuggling attempt in the second
    transaction of the same session is refused and smuggles nothing."""
    c = _open_transaction(daemon)
    try:
        c.send(b"Subject: clean\r\n\r\nok\r\n.\r\n")
        first = c.reply()
        assert "queued as" in first, first
        assert code(c.cmd("MAIL FROM:<alice@sender.example>")) == 250
        assert code(c.cmd("RCPT TO:<bob@acme.example>")) == 250
        assert code(c.cmd("DATA")) == 354
        c.send(b"Subject: x\r\n\r\nbody\n.\n" + SMUGGLED)
        replies = _replies_after(c)
    finally:
        c.close()
    assert replies and replies[0].startswith(REFUSALS), replies
    assert not any("queued as" in r for r in replies), replies
    msgs = queue(daemon)
    assert len(msgs) == 1
    assert [r["address"] for r in msgs[0]["recipients"]] == ["bob@acme.example"]


def test_bare_lf_lines_are_refused_not_rewritten(daemon):
    """A message using bare LF line ends is refused as a whole (550 5.5.2)
    once the real end marker arrives; the session goes on."""
    c = _open_transaction(daemon)
    try:
        c.send(b"Subject: lf\n\nline one\nline two\r\n.\r\n")
        r = c.reply()
        if r is not None and not r.startswith("521"):
            assert r.startswith("550 5.5.2"), r
            assert code(c.cmd("NOOP")) == 250
        else:
            assert c.is_closed()
    finally:
        c.close()
    assert queue(daemon) == []


def test_dot_in_middle_of_line_is_plain_text(daemon):
    """'.\\r\\n' only ends the data at the start of a line."""
    c = _open_transaction(daemon)
    try:
        c.send(b"Subject: dots\r\n\r\nend.\r\nx.\r\n.\r\n")
        r = c.reply()
        assert "queued as" in r, r
    finally:
        c.close()
    msgs = queue(daemon)
    assert len(msgs) == 1
    body = daemon.kickq("show", msgs[0]["queue_id"], "--body").stdout
    assert "end." in body and "x." in body

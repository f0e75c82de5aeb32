"""Open relay: only customer domains (and <postmaster>) are accepted, decided
after normalisation; every trick that routes mail elsewhere gets a 5xx at RCPT."""
import pytest

from conftest import Daemon, Raw, code, queue, queued_id


@pytest.fixture(scope="module")
def mx(tmp_path_factory):
    d = Daemon(tmp_path_factory.mktemp("relay"))
    d.start()
    yield d
    d.stop()


RELAY_PATTERNS = [
    "u%victim.test@acme.example",
    "u%victim@acme.example",
    '"u@victim.test"@acme.example',
    '"u@victim"@acme.example',
    '"u%victim.test"@acme.example',
    "@acme.example:u@victim.test",
    "@acme.example,@relay.example:u@victim.test",
    "victim.test!u@acme.example",
    "victim!u@acme.example",
    "u@victim.test@acme.example",
    "u@[192.0.2.1]",
    "u@[127.0.0.1]",
    "u@[IPv6:::1]",
    "u@acme.example.victim.test",
    "u@sub.acme.example",
    "u@other.example",
    "u@victim.test",
    "U%VICTIM.TEST@ACME.EXAMPLE",
    "u@acme.example@victim.test",
    "u@localhost",
]


@pytest.mark.parametrize("rcpt", RELAY_PATTERNS)
def test_relay_attempt_refused(mx, rcpt):
    with Raw(mx.port) as c:
        c.greet()
        assert code(c.cmd("MAIL FROM:<alice@sender.example>")) == 250
        r = c.cmd("RCPT TO:<%s>" % rcpt)
        assert r[:1] == "5", (rcpt, r)
        assert r.startswith("550 5.7.1") or r.startswith("501"), (rcpt, r)
        # with no accepted recipient there is no transaction to send
        r = c.cmd("DATA")
        assert r[:1] == "5", r
        assert code(c.cmd("QUIT")) == 221
    for m in queue(mx):
        for r in m["recipients"]:
            assert "victim" not in r["address"].lower(), m
            assert r["domain"].lower() in ("acme.example", "acme.co.uk", "beta.example",
                                           "isp.example"), m


def test_relay_attempt_next_to_a_good_recipient(mx):
    """A refused recipient is not delivered even if the message is accepted
    for another one in the same transaction."""
    with Raw(mx.port) as c:
        c.greet()
        assert code(c.cmd("MAIL FROM:<alice@sender.example>")) == 250
        bad = []
        for rcpt in RELAY_PATTERNS:
            r = c.cmd("RCPT TO:<%s>" % rcpt)
            bad.append((rcpt, r))
        assert all(r[:1] == "5" for _, r in bad), bad
        assert code(c.cmd("RCPT TO:<bob@acme.example>")) == 250
        assert code(c.cmd("DATA")) == 354
        c.send("Subject: mixed\r\n\r\nx\r\n.\r\n")
        qid = queued_id(c.reply())
    m = [m for m in queue(mx) if m["queue_id"] == qid][0]
    assert [r["address"] for r in m["recipients"]] == ["bob@acme.example"]


def test_domain_match_is_case_insensitive(mx):
    with Raw(mx.port) as c:
        c.greet()
        assert code(c.cmd("MAIL FROM:<alice@sender.example>")) == 250
        r = c.cmd("RCPT TO:<bob@ACME.Example>")
        assert r.startswith("250 2.1.5"), r
        r = c.cmd("RCPT TO:<sales@Acme.Co.UK>")
        assert r.startswith("250 2.1.5"), r
        assert code(c.cmd("DATA")) == 354
        c.send("Subject: case\r\n\r\nx\r\n.\r\n")
        qid = queued_id(c.reply())
    m = [m for m in queue(mx) if m["queue_id"] == qid][0]
    assert sorted((r["domain"].lower(), r["customer"]) for r in m["recipients"]) == \
        [("acme.co.uk", "acme"), ("acme.example", "acme")]


def test_source_route_to_customer_is_accepted_and_route_dropped(mx):
    """RFC 5321 4.1.1.3: a source route may be ignored; the mailbox decides."""
    with Raw(mx.port) as c:
        c.greet()
        assert code(c.cmd("MAIL FROM:<alice@sender.example>")) == 250
        r = c.cmd("RCPT TO:<@relay.example:bob@acme.example>")
        if r.startswith("250"):
            assert code(c.cmd("DATA")) == 354
            c.send("Subject: route\r\n\r\nx\r\n.\r\n")
            qid = queued_id(c.reply())
            m = [m for m in queue(mx) if m["queue_id"] == qid][0]
            assert [x["address"] for x in m["recipients"]] == ["bob@acme.example"]
        else:
            assert r[:1] == "5", r    # refusing is safe too


"""ETRN (RFC 1985) on the SMTP listener: every reply code through smtplib,
and end to end with fetchmail's ETRN mode (a real client)."""
import os
import re
import subprocess
import time

import pytest

from conftest import MTA_HOST, Raw, code, customer_conf, queue_ids, status_of, wait_for

ENHANCED = re.compile(r"^[245]\.\d{1,3}\.\d{1,3} ")
ACME = "bob@acme.example"


def etrn(d, arg=None, ehlo=True, s=None):
    """(code, text) of one ETRN; checks the enhanced status code."""
    own = s is None
    if own:
        s = d.smtp()
    try:
        if ehlo and own:
            s.ehlo("client.example")
        c, msg = (s.docmd("ETRN", arg) if arg is not None else s.docmd("ETRN"))
        text = msg.decode()
        assert ENHANCED.match(text), "no enhanced status code: %d %s" % (c, text)
        assert text[0] == str(c)[0], (c, text)          # 2.x.x with 2yz, and so on
        return c, text
    finally:
        if own:
            s.quit()


def fixed(name, domains, mta, **kw):
    """A customer with a fixed mail host at the MTA, online = "detect": its
    mail waits for a kick (or ETRN)."""
    return customer_conf(name, domains, deliver="%s:%d" % (MTA_HOST, mta.port), **kw)


def send(d, rcpt, subject="etrn"):
    return d.send(rcpt, body="From: <a@sender.example>\r\nTo: <%s>\r\nSubject: %s\r\n\r\n"
                  "hello\r\n" % (rcpt, subject))


def test_ehlo_lists_etrn(make_daemon, mta):
    d = make_daemon(customers=fixed("acme", ["acme.example"], mta)).start()
    with d.smtp() as s:
        s.ehlo("client.example")
        assert s.has_extn("etrn")


def test_253_pending_messages_started_and_delivered(make_daemon, mta):
    d = make_daemon(customers=fixed("acme", ["acme.example"], mta)).start()
    ids = [send(d, ACME, "one"), send(d, "sales@acme.example", "two")]
    assert mta.messages == []           # fixed host, online = "detect": waits
    c, text = etrn(d, "acme.example")
    assert c == 253, text
    assert "2 pending messages" in text and "acme.example" in text, text
    mta.wait_messages(2)
    wait_for(lambda: not queue_ids(d), what="the queue to empty")
    assert sorted(m.header("Subject") for m in mta.messages) == ["one", "two"]
    assert set(ids).isdisjoint(queue_ids(d))


def test_253_for_a_link_customer_with_deferred_mail(make_daemon, mta):
    mta.mail_reply = "451 4.3.0 try later"
    cust = customer_conf("acme", ["acme.example"], port=mta.port, retry_min="1h",
                         retry_max="2h")
    d = make_daemon(customers=cust).start()
    d.kickq("link", "up", "acme", MTA_HOST)
    qid = send(d, ACME)
    wait_for(lambda: (status_of(d, qid) or {}).get(ACME, ("",))[0] == "deferred",
             what="the first attempt to be deferred")
    wait_for(lambda: mta.open_connections == 0, what="the attempt's connection to close")
    mta.accept_all()
    c, text = etrn(d, "acme.example")
    assert c == 253 and "pending messages" in text, text
    mta.wait_messages(1, timeout=5)     # long before the 1 h backoff
    wait_for(lambda: not queue_ids(d), what="the queue to empty")
    assert d.kickq_json("links")[0]["state"] == "up"    # ETRN does not change the link


def test_251_nothing_waiting(make_daemon, mta):
    d = make_daemon(customers=fixed("acme", ["acme.example"], mta)).start()
    c, text = etrn(d, "acme.example")
    assert c == 251, text
    assert mta.connections == 0


def test_250_flush_already_running(make_daemon, mta):
    mta.data_delay = 0.3
    d = make_daemon(customers=fixed("acme", ["acme.example"], mta, connections=1)).start()
    for i in range(3):
        send(d, ACME, "slow %d" % i)
    with d.smtp() as s:
        s.ehlo("client.example")
        c1, t1 = etrn(d, "acme.example", s=s)
        c2, t2 = etrn(d, "acme.example", s=s)
    assert c1 == 253, t1
    assert c2 == 250, t2
    mta.wait_messages(3, timeout=10)
    assert mta.connections == 1         # no second flush started
    assert len(mta.messages) == 3


def test_458_link_down(make_daemon, mta):
    d = make_daemon(customers=customer_conf("acme", ["acme.example"], port=mta.port)).start()
    qid = send(d, ACME)
    c, text = etrn(d, "acme.example")
    assert c == 458, text
    assert qid in queue_ids(d)
    assert mta.connections == 0
    links = d.kickq_json("links")
    assert links == [] or links[0]["state"] == "down"     # ETRN never changes the link


def test_250_within_etrn_interval_and_one_flush_after_it(make_daemon, mta):
    # an ETRN sooner than etrn_interval after the last ETRN-started flush gets
    # 250 (a flush was started; fetchmail takes 458 for a protocol error) and
    # opens nothing now; the mail still waiting is flushed once when the
    # interval is over, for all such ETRNs together
    mta.mail_reply = "451 4.3.0 try later"
    d = make_daemon(customers=fixed("acme", ["acme.example"], mta, etrn_interval="3s")).start()
    qid = send(d, ACME)
    c, text = etrn(d, "acme.example")
    t0 = time.time()
    assert c == 253, text
    wait_for(lambda: (status_of(d, qid) or {}).get(ACME, ("",))[0] == "deferred",
             what="the flush to end with a deferral")
    wait_for(lambda: mta.open_connections == 0, what="the flush's connection to close")
    tries = mta.connections
    for _ in range(5):
        c, text = etrn(d, "acme.example")
        assert c == 250 and "already started" in text, text
    assert mta.connections == tries
    # a kick by the operator is not limited by etrn_interval
    d.kickq("kick", "acme")
    wait_for(lambda: mta.connections == tries + 1, what="the operator's kick")
    wait_for(lambda: mta.open_connections == 0, what="the kick's connection to close")
    mta.accept_all()
    mta.wait_messages(1, timeout=8)
    assert time.time() - t0 > 2.0, time.time() - t0     # not before the interval is over
    assert mta.connections == tries + 2                 # one flush for the five ETRNs
    time.sleep(1.0)
    assert mta.connections == tries + 2


def _etrn_burst(d, n=200):
    """n sessions, each after EHLO, send ETRN acme.example at once; returns
    the replies' codes (sorted) and the time the burst began."""
    sessions = [Raw(d.port) for _ in range(n)]
    try:
        for c in sessions:
            c.greet()
        t0 = time.time()
        for c in sessions:
            c.send("ETRN acme.example\r\n")
        replies = [c.reply() for c in sessions]
        assert time.time() - t0 < 1.0, "the burst took %.2f s" % (time.time() - t0)
    finally:
        for c in sessions:
            c.close()
    return sorted(code(r) for r in replies), t0


@pytest.mark.parametrize("interval", [None, "2s"])
def test_etrn_burst_opens_no_more_than_connections(make_daemon, mta, interval):
    # 200 sessions send ETRN for one customer at once; its server defers
    # everything, so no flush empties the queue: the burst gets one flush
    # (2 connections), not one per ETRN; with etrn_interval set, one more
    # flush follows when the interval is over
    mta.mail_reply = "451 4.3.0 try later"
    opts = dict(connections=2)
    if interval:
        opts["etrn_interval"] = interval
    d = make_daemon(customers=fixed("acme", ["acme.example"], mta, **opts),
                    smtp_opts="max_connections_per_client = 400").start()
    for i in range(3):
        send(d, ACME, "burst %d" % i)
    codes, t0 = _etrn_burst(d)
    assert codes == [250] * 199 + [253], codes
    wait_for(lambda: mta.connections >= 1, what="the flush")
    time.sleep(max(0.0, 1.0 - (time.time() - t0)))
    assert mta.connections <= 2, mta.connections
    assert mta.max_open <= 2, mta.max_open
    if interval:
        wait_for(lambda: mta.connections > 2, timeout=5, what="the flush after the interval")
        time.sleep(1.0)
        assert mta.connections <= 4, mta.connections
        assert mta.max_open <= 2, mta.max_open


def test_etrn_burst_to_a_server_refusing_connections(make_daemon, make_mta):
    # the same burst while the customer's server refuses connections: every
    # pass ends at once, and each ETRN after it used to start another one
    dead = make_mta(start=False)
    d = make_daemon(customers=fixed("acme", ["acme.example"], dead, connections=2),
                    smtp_opts="max_connections_per_client = 400").start()
    for i in range(3):
        send(d, ACME, "burst %d" % i)
    codes, t0 = _etrn_burst(d)
    assert codes == [250] * 199 + [253], codes
    failed = r"acme: delivery to %s:%d failed" % (re.escape(MTA_HOST), dead.port)
    d.wait_log(failed)
    time.sleep(max(0.0, 1.0 - (time.time() - t0)))
    attempts = re.findall(failed, d.log_text())
    assert 1 <= len(attempts) <= 2, len(attempts)


def test_459_unknown_domain(make_daemon, mta):
    d = make_daemon(customers=fixed("acme", ["acme.example"], mta)).start()
    c, text = etrn(d, "unknown.example")
    assert c == 459, text
    c, text = etrn(d, "@nowhere.example")
    assert c == 459, text


def test_459_maildrop_customer(make_daemon, mta):
    customers = (fixed("acme", ["acme.example"], mta)
                 + customer_conf("drop", ["drop.example"], deliver="maildrop", secret="x"))
    d = make_daemon(customers=customers).start()
    send(d, "bob@drop.example")
    c, text = etrn(d, "drop.example")
    assert c == 459, text
    assert mta.connections == 0


def _alike(replies):
    """The replies with each one's node replaced by NODE: equal when the
    replies tell nothing apart but the name asked for."""
    return {(c, t.replace(node, "NODE")) for node, (c, t) in replies.items()}


def test_hash_form_answers_every_name_alike(make_daemon, mta):
    # customer names are not public: ETRN #name must not tell which exist,
    # nor whether they have mail, an address or an SMTP server
    customers = (fixed("acme", ["acme.example"], mta)
                 + fixed("idle", ["idle.example"], mta)
                 + customer_conf("down", ["down.example"], port=mta.port)
                 + customer_conf("drop", ["drop.example"], deliver="maildrop", secret="x"))
    d = make_daemon(customers=customers).start()
    for rcpt in (ACME, "bob@down.example", "bob@drop.example"):
        send(d, rcpt)
    replies = {"#" + n: etrn(d, "#" + n)
               for n in ("acme", "idle", "down", "drop", "nonexist", "x")}
    assert len(_alike(replies)) == 1, replies
    assert replies["#nonexist"][0] == 250, replies
    mta.wait_messages(1)                # acme's flush was started all the same
    assert [m.rcpt_tos for m in mta.messages] == [[ACME]]


def test_unknown_domain_answers_like_a_domain_etrn_does_not_serve(make_daemon, mta):
    # domains are public (MX records, and RCPT TO takes them), but an unknown
    # one still gets the reply of a known one: the maildrop/pickup customers'
    customers = (fixed("acme", ["acme.example"], mta)
                 + customer_conf("drop", ["drop.example"], deliver="maildrop", secret="x")
                 + customer_conf("pick", ["pick.example"], deliver="pickup", secret="x"))
    d = make_daemon(customers=customers).start()
    send(d, "bob@drop.example")
    for form in ("", "@"):
        replies = {form + n: etrn(d, form + n)
                   for n in ("drop.example", "pick.example", "nonexist.example")}
        assert len(_alike(replies)) == 1, replies
        assert replies[form + "nonexist.example"][0] == 459, replies
    assert mta.connections == 0


@pytest.mark.parametrize("arg", [None, " ", "@", "#", "acme!.example", "acme..example",
                                 ".acme.example", "acme.example.", "acme example",
                                 "acme.example\x01", "@@acme.example", "#ac/me",
                                 "a" * 300 + ".example"])
def test_501_syntax(make_daemon, mta, arg):
    d = make_daemon(customers=fixed("acme", ["acme.example"], mta)).start()
    c, text = etrn(d, arg)
    assert c == 501, (arg, text)


def test_503_inside_a_mail_transaction(make_daemon, mta):
    d = make_daemon(customers=fixed("acme", ["acme.example"], mta)).start()
    send(d, ACME)
    with d.smtp() as s:
        s.ehlo("client.example")
        c, _ = s.mail("a@sender.example")
        assert c == 250
        c, text = etrn(d, "acme.example", s=s)
        assert c == 503, text
        s.rset()
        c, text = etrn(d, "acme.example", s=s)     # allowed again after RSET
        assert c == 253, text


def test_503_before_ehlo(make_daemon, mta):
    d = make_daemon(customers=fixed("acme", ["acme.example"], mta)).start()
    send(d, ACME)
    c, text = etrn(d, "acme.example", ehlo=False)
    assert c == 503, text
    assert mta.connections == 0


def test_252_at_domain_matching_two_customers(make_daemon, mta):
    customers = (fixed("pa", ["a.parent.example"], mta)
                 + fixed("pb", ["b.parent.example"], mta)
                 + fixed("other", ["parent-other.example"], mta))
    d = make_daemon(customers=customers).start()
    send(d, "x@a.parent.example", "to a")
    send(d, "y@b.parent.example", "to b")
    send(d, "z@parent-other.example", "other")
    c, text = etrn(d, "@parent.example")
    assert c == 252, text
    mta.wait_messages(2)
    wait_for(lambda: queue_ids(d) and len(queue_ids(d)) == 1, what="both flushed")
    assert sorted(m.header("Subject") for m in mta.messages) == ["to a", "to b"]
    # the other customer was not covered by @parent.example
    c, text = etrn(d, "@parent.example")
    assert c == 251, text


def test_hash_customer_form_and_case(make_daemon, mta):
    d = make_daemon(customers=fixed("acme", ["acme.example", "acme.co.uk"], mta,
                                    etrn_interval=0)).start()
    send(d, ACME)
    send(d, "bob@acme.co.uk")
    c, text = etrn(d, "#ACME")
    assert c == 250, text               # #name: the same reply for every name
    assert "#acme" in text, text
    mta.wait_messages(2)
    send(d, ACME)
    c, text = etrn(d, "ACME.Example")       # lower-cased before use
    assert c == 253, text
    mta.wait_messages(3)


def test_etrn_kicks_the_whole_customer(make_daemon, mta):
    d = make_daemon(customers=fixed("acme", ["acme.example", "acme.co.uk"], mta)).start()
    send(d, ACME)
    send(d, "bob@acme.co.uk")
    c, text = etrn(d, "acme.co.uk")
    assert c == 253 and "2 pending messages" in text, text
    mta.wait_messages(2)


# ---- fetchmail's ETRN mode, a real client ----

def _fetchmail(tmp_path, port, domain="acme.example"):
    rc = tmp_path / "fetchmailrc"
    rc.write_text("poll 127.0.0.1 proto ETRN service %d fetchdomains %s\n" % (port, domain))
    os.chmod(str(rc), 0o600)
    env = dict(os.environ, HOME=str(tmp_path))
    return subprocess.run(["fetchmail", "-f", str(rc), "-v", "-N",
                           "--pidfile", str(tmp_path / "fetchmail.pid"),
                           "-i", str(tmp_path / "fetchids")],
                          env=env, capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL)


def test_fetchmail_etrn_end_to_end(make_daemon, mta, tmp_path):
    cust = customer_conf("acme", ["acme.example"], port=mta.port, retry_min="1h",
                         retry_max="2h")
    d = make_daemon(customers=cust).start()
    mta.mail_reply = "451 4.3.0 not yet"
    d.kickq("link", "up", "acme", MTA_HOST)
    qid = send(d, ACME, "via fetchmail")
    wait_for(lambda: (status_of(d, qid) or {}).get(ACME, ("",))[0] == "deferred",
             what="the mail to wait (deferred)")
    wait_for(lambda: mta.open_connections == 0, what="the attempt's connection to close")
    mta.accept_all()
    r = _fetchmail(tmp_path, d.port)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out                   # 0: mail was waiting and started
    assert "ETRN acme.example" in out and "253" in out, out
    mta.wait_messages(1, timeout=5)
    assert mta.messages[0].header("Subject") == "via fetchmail"
    wait_for(lambda: not queue_ids(d), what="the queue to empty")
    # nothing waits any more: 251 (fetchmail 6.4 still exits 0 here; 1 = "no mail")
    r = _fetchmail(tmp_path, d.port)
    assert r.returncode in (0, 1), r.stdout + r.stderr
    assert "No messages waiting" in r.stdout + r.stderr


def test_at_domain_matching_one_customer_answers_like_plain_etrn(make_daemon, mta):
    customers = (fixed("acme", ["acme.example", "sub.acme.example"], mta)
                 + customer_conf("drop", ["drop.example"], deliver="maildrop", secret="x"))
    d = make_daemon(customers=customers).start()
    send(d, ACME)
    send(d, "bob@sub.acme.example")
    c, text = etrn(d, "@acme.example")
    assert c == 253 and "2 pending messages" in text, text
    mta.wait_messages(2)
    c, text = etrn(d, "@drop.example")          # every match is a maildrop customer
    assert c == 459, text


def test_250_while_running_even_within_etrn_interval(make_daemon, mta):
    mta.data_delay = 0.3
    d = make_daemon(customers=fixed("acme", ["acme.example"], mta, connections=1,
                                    etrn_interval="5s")).start()
    for i in range(3):
        send(d, ACME, "slow %d" % i)
    with d.smtp() as s:
        s.ehlo("client.example")
        c1, t1 = etrn(d, "acme.example", s=s)
        c2, t2 = etrn(d, "acme.example", s=s)
    assert (c1, c2) == (253, 250), (t1, t2)
    mta.wait_messages(3)


def test_fetchmail_etrn_link_down(make_daemon, mta, tmp_path):
    d = make_daemon(customers=customer_conf("acme", ["acme.example"], port=mta.port)).start()
    send(d, ACME)
    r = _fetchmail(tmp_path, d.port)
    out = r.stdout + r.stderr
    assert "458" in out, out
    assert r.returncode not in (0, 1), out          # 458: fetchmail reports an error
    assert mta.connections == 0


def test_fetchmail_etrn_within_etrn_interval_is_no_error(make_daemon, mta, tmp_path):
    # fetchmail takes 458 for a protocol error: a second poll soon after the
    # first gets 250 and succeeds
    mta.mail_reply = "451 4.3.0 not yet"
    d = make_daemon(customers=fixed("acme", ["acme.example"], mta)).start()
    qid = send(d, ACME, "twice")
    r = _fetchmail(tmp_path, d.port)
    assert r.returncode == 0 and "253" in r.stdout + r.stderr, r.stdout + r.stderr
    wait_for(lambda: (status_of(d, qid) or {}).get(ACME, ("",))[0] == "deferred",
             what="the flush to end with a deferral")
    r = _fetchmail(tmp_path, d.port)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "250" in out and "Queuing for acme.example started" in out, out

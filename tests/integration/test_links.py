"""The link table: kickq link up/down, links, TTL expiry, one address per
customer, summary link fields, persistence across restarts; kickq kick."""
import os
import time

from conftest import MTA_HOST, customer_conf, links_of, queue_ids, status_of, wait_for

ACME = "bob@acme.example"


def conf(mta, **acme):
    """acme and beta both deliver = "link" to the MTA's port; gamma is a
    leased line (fixed host at the MTA, online = "always") used as a
    barrier: mail to it shows that the daemon has been delivering."""
    a = dict(port=mta.port, retry_min="1s", retry_max="2s")
    a.update(acme)
    return (customer_conf("acme", ["acme.example"], **a)
            + customer_conf("beta", ["beta.example"], port=mta.port)
            + customer_conf("gamma", ["gamma.example"], deliver="%s:%d" % (MTA_HOST, mta.port),
                            online="always"))


def send(d, rcpt, subject="test"):
    return d.send(rcpt, body="From: <a@sender.example>\r\nTo: <%s>\r\nSubject: %s\r\n\r\n"
                  "hello\r\n" % (rcpt, subject))


def barrier(d, mta, tag):
    """Sends to the always-online customer and waits for it at the MTA: the
    daemon's delivery machinery has run since the call."""
    send(d, "x@gamma.example", "barrier %s" % tag)
    wait_for(lambda: any(m.header("Subject") == "barrier %s" % tag for m in mta.messages),
             what="barrier %s" % tag)


def test_link_up_down_and_links_json(make_daemon, mta):
    d = make_daemon(customers=conf(mta)).start()
    t0 = int(time.time())
    r = d.kickq("link", "up", "acme", MTA_HOST)
    assert "acme" in r.stdout and MTA_HOST in r.stdout, r.stdout
    l = links_of(d)["acme"]
    for k in ("customer", "state", "address", "since", "expires", "source", "session"):
        assert k in l, (k, l)
    assert l["state"] == "up" and l["address"] == MTA_HOST and l["source"] == "kickq"
    assert t0 - 1 <= l["since"] <= time.time() + 1
    assert l["expires"] is not None and abs(l["expires"] - (l["since"] + 12 * 3600)) <= 2
    text = d.kickq("links").stdout
    assert "acme" in text and "up" in text and MTA_HOST in text
    d.kickq("link", "down", "acme")
    l = links_of(d)["acme"]
    assert l["state"] == "down" and l["source"] == "kickq"
    assert l["expires"] is None
    assert l["address"] == MTA_HOST         # kept for display, never used for delivery
    qid = send(d, ACME, "link is down")
    barrier(d, mta, "down")
    assert status_of(d, qid)[ACME][0] == "queued" and mta.received_for(ACME) == []


def test_link_up_needs_an_address_for_deliver_link(make_daemon, mta):
    d = make_daemon(customers=conf(mta)).start()
    r = d.kickq("link", "up", "acme", check=False)
    assert r.returncode == 1 and r.stderr.strip(), (r.returncode, r.stderr)
    r = d.kickq("link", "up", "nosuch", MTA_HOST, check=False)
    assert r.returncode == 1 and r.stderr.strip()
    r = d.kickq("link", "up", "acme", "not-an-address", check=False)
    assert r.returncode != 0 and r.stderr.strip()
    assert "acme" not in links_of(d) or links_of(d)["acme"]["state"] == "down"


def test_link_ttl_expiry(make_daemon, mta):
    d = make_daemon(customers=conf(mta)).start()
    d.kickq("link", "up", "acme", MTA_HOST, "--ttl", "1s")
    l = links_of(d)["acme"]
    assert l["state"] == "up" and l["expires"] - l["since"] in (1, 2), l
    t0 = time.time()
    wait_for(lambda: links_of(d)["acme"]["state"] == "down", timeout=3.5,
             what="the link to expire")
    assert time.time() - t0 <= 3.5
    l = links_of(d)["acme"]
    assert l["source"] == "expiry", l
    assert l["expires"] is None
    # mail sent afterwards stays queued: nothing goes to the old address
    qid = send(d, ACME, "after expiry")
    barrier(d, mta, "expiry")
    assert status_of(d, qid)[ACME][0] == "queued"
    assert mta.received_for(ACME) == []
    r = d.kickq("kick", "acme", check=False)
    assert r.returncode == 1 and r.stderr.strip()


def test_link_ttl_from_config(make_daemon, mta):
    d = make_daemon(customers=conf(mta, link_ttl="2s")).start()
    d.kickq("link", "up", "acme", MTA_HOST)
    l = links_of(d)["acme"]
    assert l["expires"] - l["since"] in (2, 3), l
    wait_for(lambda: links_of(d)["acme"]["state"] == "down", timeout=4.5,
             what="the link to expire (link_ttl = 2s)")
    assert links_of(d)["acme"]["source"] == "expiry"


def test_refresh_extends_the_ttl(make_daemon, mta):
    d = make_daemon(customers=conf(mta)).start()
    d.kickq("link", "up", "acme", MTA_HOST, "--ttl", "1h")
    e1 = links_of(d)["acme"]["expires"]
    d.kickq("link", "up", "acme", MTA_HOST, "--ttl", "2h")
    e2 = links_of(d)["acme"]["expires"]
    assert e2 - e1 >= 3600 - 2


def test_address_moves_to_another_customer(make_daemon, mta):
    d = make_daemon(customers=conf(mta)).start()
    d.kickq("link", "up", "acme", MTA_HOST)
    d.kickq("link", "up", "beta", MTA_HOST)
    links = links_of(d)
    assert links["beta"]["state"] == "up" and links["beta"]["address"] == MTA_HOST
    assert links["acme"]["state"] == "down", links["acme"]
    # acme's mail no longer goes to the address that now belongs to beta
    qid = send(d, ACME, "not for beta")
    send(d, "bob@beta.example", "for beta")
    wait_for(lambda: mta.received_for("bob@beta.example"), what="beta's mail")
    barrier(d, mta, "moved")
    assert status_of(d, qid)[ACME][0] == "queued"
    assert mta.received_for(ACME) == []


def test_other_addresses_do_not_interfere(make_daemon, mta):
    d = make_daemon(customers=conf(mta)).start()
    d.kickq("link", "up", "acme", MTA_HOST)
    d.kickq("link", "up", "beta", "127.0.0.24")
    links = links_of(d)
    assert links["acme"]["state"] == "up" and links["beta"]["state"] == "up"


def test_summary_json_link_fields(make_daemon, mta):
    d = make_daemon(customers=conf(mta)).start()
    d.kickq("link", "up", "acme", MTA_HOST, "--ttl", "1h")
    s = {x["customer"]: x for x in d.kickq_json("summary")}
    link = s["acme"]["link"]
    assert link["state"] == "up"
    assert link["address"] == MTA_HOST
    assert link["source"] == "kickq"
    assert abs(link["since"] - time.time()) <= 5
    assert abs(link["expires"] - (link["since"] + 3600)) <= 2
    assert s["beta"]["link"]["state"] == "down"
    assert s["beta"]["link"]["address"] is None
    assert "up" in d.kickq("summary").stdout and MTA_HOST in d.kickq("summary").stdout


def test_links_survive_a_restart_with_the_same_expiry(make_daemon, mta):
    d = make_daemon(customers=conf(mta)).start()
    d.kickq("link", "up", "acme", MTA_HOST, "--ttl", "1h")
    d.kickq("link", "up", "beta", "127.0.0.24")
    d.kickq("link", "down", "beta")
    before = links_of(d)
    d.stop()
    d.start()
    after = links_of(d)
    for c in ("acme", "beta"):
        for k in ("state", "address", "since", "expires", "source"):
            assert after[c][k] == before[c][k], (c, k, before[c], after[c])
    assert after["acme"]["state"] == "up"
    # and mail still goes out over the restored link
    send(d, ACME, "after restart")
    wait_for(lambda: mta.received_for(ACME), what="delivery over the restored link")


def test_links_survive_a_crash_through_the_journal(make_daemon, mta):
    """Each change reported done is in state/links.journal: a SIGKILL keeps
    them all; a clean stop then leaves the whole table in state/links."""
    import os
    d = make_daemon(customers=conf(mta)).start()
    d.kickq("link", "up", "acme", MTA_HOST, "--ttl", "1h")
    d.kickq("link", "up", "beta", "127.0.0.24")
    d.kickq("link", "down", "beta")
    d.kickq("link", "up", "beta", "127.0.0.25", "--session", "s2")
    before = links_of(d)
    state = os.path.join(d.spool, "state")
    with open(os.path.join(state, "links.journal")) as f:
        assert "\tbeta\t1\t127.0.0.25\t" in f.read()
    d.kill9()
    d.start()
    after = links_of(d)
    for c in ("acme", "beta"):
        for k in ("state", "address", "since", "expires", "source", "session"):
            assert after[c][k] == before[c][k], (c, k, before[c], after[c])
    d.stop()
    with open(os.path.join(state, "links")) as f:
        snap = f.read()
    assert snap.startswith("# kickmail links 2 ")
    assert "\nbeta\t1\t127.0.0.25\t" in snap and "\nacme\t1\t%s\t" % MTA_HOST in snap
    d.start()
    assert links_of(d)["beta"]["address"] == "127.0.0.25"
    assert "links: 2 links loaded" in d.log_since_start()


def test_link_expired_while_stopped_is_down_after_restart(make_daemon, mta):
    d = make_daemon(customers=conf(mta)).start()
    d.kickq("link", "up", "acme", MTA_HOST, "--ttl", "1s")
    exp = links_of(d)["acme"]["expires"]
    d.stop()
    wait_for(lambda: time.time() > exp + 0.1, timeout=3, what="the expiry time to pass")
    d.start()
    l = links_of(d)["acme"]
    assert l["state"] == "down" and l["source"] == "expiry", l
    assert l["since"] == exp


# ---- kickq kick ----

def test_kick_output_and_json(make_daemon, mta):
    fixed = customer_conf("acme", ["acme.example"], deliver="%s:%d" % (MTA_HOST, mta.port),
                          retry_min="1h", retry_max="2h")
    d = make_daemon(customers=fixed).start()
    mta.mail_reply = "451 4.3.0 not now"
    send(d, ACME, "k1")
    send(d, ACME, "k2")
    r = d.kickq("kick", "acme")
    assert r.stdout.strip() == "kicked acme: 2 messages to %s:%d" % (MTA_HOST, mta.port), r.stdout
    wait_for(lambda: all(r["recipients"][0]["status"] == "deferred"
                         for r in d.kickq_json("list")), what="the kick to be over")
    wait_for(lambda: mta.open_connections == 0, what="the kick's connection to close")
    js = d.kickq_json("kick", "acme.example")       # a domain names its customer
    assert len(js) == 1, js
    assert {k: js[0].get(k) for k in ("customer", "messages", "address", "port")} == {
        "customer": "acme", "messages": 2, "address": MTA_HOST, "port": mta.port}, js
    wait_for(lambda: all(r["recipients"][0]["status"] == "deferred"
                         for r in d.kickq_json("list")), what="the kick to be over")
    mta.accept_all()
    wait_for(lambda: mta.open_connections == 0, what="the last attempt's connection to close")
    d.kickq("kick", "acme")
    mta.wait_messages(2)
    wait_for(lambda: not queue_ids(d), what="an empty queue")


def test_kick_with_the_link_down_fails(make_daemon, mta):
    d = make_daemon(customers=conf(mta)).start()
    qid = send(d, ACME)
    r = d.kickq("kick", "acme", check=False)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert r.stderr.strip() and r.stdout == ""
    assert "link" in r.stderr.lower() or "address" in r.stderr.lower(), r.stderr
    assert status_of(d, qid)[ACME][0] == "queued"
    r = d.kickq("kick", "nosuch", check=False)
    assert r.returncode == 1 and r.stderr.strip()
    barrier(d, mta, "kick-down")
    assert mta.received_for(ACME) == []


def test_kick_maildrop_customer_fails(make_daemon, mta):
    # a maildrop customer's mail goes into its maildrop at once (issue 12),
    # never by SMTP; a kick of it stays refused with the reason, exit 1, as
    # INTERFACE.md says
    customers = conf(mta) + customer_conf("drop", ["drop.example"], deliver="maildrop",
                                          secret="x")
    d = make_daemon(customers=customers).start()
    send(d, "bob@drop.example")
    new = os.path.join(d.maildirs, "drop", "new")
    wait_for(lambda: os.path.isdir(new) and len(os.listdir(new)) == 1,
             what="the message in drop's maildrop")
    r = d.kickq("kick", "drop", check=False)
    assert r.returncode == 1 and "maildrop" in r.stderr, (r.returncode, r.stderr)
    assert mta.connections == 0


def test_kick_pickup_customer_fails(make_daemon, mta):
    customers = conf(mta) + customer_conf("pick", ["pick.example"], deliver="pickup",
                                          secret="x")
    d = make_daemon(customers=customers).start()
    send(d, "bob@pick.example")
    r = d.kickq("kick", "pick", check=False)
    assert r.returncode == 1 and "ODMR" in r.stderr, (r.returncode, r.stderr)
    assert mta.connections == 0


def test_kick_with_the_link_up_delivers_and_keeps_the_link(make_daemon, mta):
    mta.mail_reply = "451 4.3.0 not now"
    d = make_daemon(customers=conf(mta, retry_min="1h", retry_max="2h")).start()
    d.kickq("link", "up", "acme", MTA_HOST)
    qid = send(d, ACME)
    wait_for(lambda: status_of(d, qid)[ACME][0] == "deferred", what="a deferral")
    mta.accept_all()
    wait_for(lambda: mta.open_connections == 0, what="the last attempt's connection to close")
    r = d.kickq("kick", "acme")
    assert r.stdout.startswith("kicked acme: 1 messages to %s:%d" % (MTA_HOST, mta.port))
    mta.wait_messages(1)
    l = links_of(d)["acme"]
    assert l["state"] == "up" and l["source"] == "kickq"


def test_restart_with_the_link_up_resumes_delivery(make_daemon, make_mta):
    mta = make_mta(start=False)             # not listening yet: the first try fails
    d = make_daemon(customers=conf(mta, retry_min="1h", retry_max="2h")).start()
    d.kickq("link", "up", "acme", MTA_HOST)
    qid = send(d, ACME, "across a restart")
    wait_for(lambda: status_of(d, qid)[ACME][0] == "deferred", what="the failed attempt")
    d.stop()
    mta.start()
    d.start()
    # the link is still up after the restart: waiting mail goes out by itself
    wait_for(lambda: mta.received_for(ACME), timeout=5, what="delivery after the restart")
    wait_for(lambda: qid not in queue_ids(d), what="the queue to empty")


def test_link_up_for_a_fixed_host_customer_needs_no_address(make_daemon, mta):
    fixed = customer_conf("acme", ["acme.example"], deliver="%s:%d" % (MTA_HOST, mta.port))
    d = make_daemon(customers=fixed).start()
    qid = send(d, ACME, "fixed host")
    assert status_of(d, qid)[ACME][0] == "queued"
    d.kickq("link", "up", "acme")
    l = links_of(d)["acme"]
    assert l["state"] == "up" and l["address"] is None, l
    wait_for(lambda: mta.received_for(ACME), what="delivery to the fixed host at link up")
    send(d, ACME, "while up")
    wait_for(lambda: len(mta.received_for(ACME)) == 2, what="new mail while up")


def test_link_addresses_are_normalised(make_daemon, mta):
    d = make_daemon(customers=conf(mta)).start()
    d.kickq("link", "up", "acme", "0:0:0:0:0:0:0:1")
    assert links_of(d)["acme"]["address"] == "::1"
    d.kickq("link", "up", "beta", "::0:1")      # the same address: acme loses it
    links = links_of(d)
    assert links["beta"]["state"] == "up" and links["acme"]["state"] == "down", links

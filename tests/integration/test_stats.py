"""kickq stats: the daemon's counters, as text and in Prometheus format."""
import smtplib

from conftest import customer_conf, wait_for


def stats(d, *args):
    out = d.kickq("stats", *args).stdout
    return dict(line.rsplit(" ", 1) for line in out.splitlines()
                if line and not line.startswith("#"))


def test_stats_count_what_happened(make_daemon, mta):
    d = make_daemon(customers=customer_conf("acme", ["acme.example"], port=mta.port)).start()
    before = stats(d)
    assert before["accepted"] == "0" and before["delivered"] == "0"
    d.send("bob@acme.example")
    with d.smtp() as s:
        s.ehlo("client.example")
        s.mail("a@sender.example")
        code, _ = s.rcpt("u@victim.example")
        assert code == 550
    d.kickq("link", "up", "acme", mta.host)
    mta.wait_messages(1)
    wait_for(lambda: stats(d)["delivered"] == "1", what="delivered counted")
    st = stats(d)
    assert st["accepted"] == "1"
    assert st["rejected"] == "1"
    assert st["link_events.kickq"] == "1"
    assert int(st["sessions.smtp"]) >= 2
    assert st["messages_queued"] == "0"
    d.kickq("kick", "acme")
    assert stats(d)["kicks.kickq"] == "1"
    prom = d.kickq("stats", "--prometheus").stdout
    assert "# TYPE kickmail_accepted_total counter" in prom
    assert "kickmail_accepted_total 1\n" in prom
    assert 'kickmail_link_events_total{source="kickq"} 1\n' in prom
    assert 'kickmail_kicks_total{source="kickq"} 1\n' in prom
    assert "kickmail_messages_queued 0\n" in prom


def test_stats_usage(daemon):
    r = daemon.kickq("stats", "--json", check=False)
    assert r.returncode == 2

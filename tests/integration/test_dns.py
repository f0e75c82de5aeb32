"""deliver = "NAME:PORT": the customer's host is looked up (c-ares, A and
AAAA) at each delivery attempt, here against a DNS stub on 127.0.0.1
(dnsstub.py) set with the `resolver` option: delivery to the looked-up
address, the next address when the first refuses, NXDOMAIN, SERVFAIL and a
server that never answers (deferred with the reason, mail kept), a reload
that changes the resolver, shutdown during a lookup, and the syntax checks
under kickmaild -n."""
import re
import subprocess
import time

import pytest

from conftest import (KICKMAILD, MTA_HOST, Daemon, customer_conf, status_of,
                      stopped_at_end, wait_for)
from dnsstub import QTYPE_A, QTYPE_AAAA, DNSStub
from test_delivery import send, simple, wait_gone, wait_status

ACME = "bob@acme.example"
NAME = "mx.test.example"


@pytest.fixture
def make_dns():
    yield from stopped_at_end(lambda n, **kw: DNSStub(**kw))


@pytest.fixture
def dns(make_dns):
    return make_dns(records={NAME: [MTA_HOST]})


def conf(host, port, **opts):
    o = dict(deliver="%s:%d" % (host, port), retry_min="1s", retry_max="2s")
    o.update(opts)
    return customer_conf("acme", ["acme.example"], **o)


def resolver(stub, timeout=1, tries=1):
    return 'resolver = "%s"\nresolver_timeout = %d\nresolver_tries = %d\n' % (
        stub.address, timeout, tries)


def test_name_is_looked_up_and_mail_delivered_there(make_daemon, mta, dns):
    d = make_daemon(customers=conf(NAME, mta.port, online="always"),
                    extra=resolver(dns)).start()
    qid = send(d, ACME, simple("by name"))
    mta.wait_messages(1)
    wait_gone(d, qid)
    assert mta.messages[0].header("Subject") == "by name"
    assert (NAME, QTYPE_A) in dns.queries and (NAME, QTYPE_AAAA) in dns.queries, dns.queries
    d.wait_log(r"acme: mx\.test\.example is 127\.0\.0\.23\b")
    d.wait_log(r"%s: to=<bob@acme\.example>, relay=127\.0\.0\.23:%d, .*status=sent"
               % (qid, mta.port))


def test_kick_names_the_host_and_looks_it_up_each_time(make_daemon, mta, dns):
    d = make_daemon(customers=conf(NAME, mta.port), extra=resolver(dns)).start()
    for i in range(2):
        qid = send(d, ACME, simple("kick %d" % i))
        assert status_of(d, qid)[ACME][0] == "queued"
        r = d.kickq("kick", "acme")
        assert r.stdout.strip() == "kicked acme: 1 messages to %s:%d" % (NAME, mta.port)
        mta.wait_messages(i + 1)
        wait_gone(d, qid)
    assert dns.queries.count((NAME, QTYPE_A)) == 2, dns.queries     # no cache


def test_mail_arriving_later_looks_the_name_up_again(make_daemon, mta, dns):
    d = make_daemon(customers=conf(NAME, mta.port, online="always"),
                    extra=resolver(dns)).start()
    for i in range(3):
        qid = send(d, ACME, simple("later %d" % i))
        mta.wait_messages(i + 1)
        wait_gone(d, qid)
        wait_for(lambda: not d.kickq_json("list") and mta.open_connections == 0,
                 what="the connection to end")
    assert dns.queries.count((NAME, QTYPE_A)) == 3, dns.queries


def test_next_address_when_the_first_refuses(make_daemon, mta, make_dns):
    # 127.0.0.24: nothing listens there at the MTA's port
    stub = make_dns(records={NAME: ["127.0.0.24", MTA_HOST]})
    d = make_daemon(customers=conf(NAME, mta.port), extra=resolver(stub)).start()
    qid = send(d, ACME, simple("second address"))
    d.kickq("kick", "acme")
    mta.wait_messages(1)
    wait_gone(d, qid)
    d.wait_log(r"acme: 127\.0\.0\.24:%d failed, trying the next address 127\.0\.0\.23"
               % mta.port)


def test_every_address_refusing_defers_with_the_last_failure(make_daemon, make_mta, make_dns):
    dead = make_mta(start=False)
    stub = make_dns(records={NAME: ["127.0.0.24", MTA_HOST]})
    d = make_daemon(customers=conf(NAME, dead.port), extra=resolver(stub)).start()
    qid = send(d, ACME, simple("nobody home"))
    d.kickq("kick", "acme")
    st = wait_status(d, qid, ACME, "deferred")
    assert re.search(r"127\.0\.0\.23.*refused", st[ACME][1], re.I), st


def test_unknown_name_defers_with_a_clear_reason(make_daemon, mta, dns):
    d = make_daemon(customers=conf("nosuch.test.example", mta.port, online="always"),
                    extra=resolver(dns)).start()
    qid = send(d, ACME, simple("nxdomain"))
    st = wait_status(d, qid, ACME, "deferred")
    assert st[ACME][1] == "host nosuch.test.example not found", st
    assert "(host nosuch.test.example not found)" in d.kickq("list").stdout
    d.wait_log(r"%s: to=<bob@acme\.example>, relay=none, .*status=deferred "
               r"\(host nosuch\.test\.example not found\)" % qid)
    # the normal retry schedule: online = "always" asks again
    d.wait_log(r"acme: mail deferred, next attempt in 1 s")
    wait_for(lambda: dns.queries.count(("nosuch.test.example", QTYPE_A)) >= 2,
             timeout=10, what="a second lookup")
    assert d.kickq("status").returncode == 0
    assert mta.messages == []


def test_servfail_defers(make_daemon, mta, dns):
    d = make_daemon(customers=conf("servfail.test.example", mta.port),
                    extra=resolver(dns, tries=2)).start()
    qid = send(d, ACME, simple("servfail"))
    d.kickq("kick", "acme")
    st = wait_status(d, qid, ACME, "deferred")
    assert st[ACME][1].startswith("DNS lookup of servfail.test.example failed: "), st
    assert "server failure" in st[ACME][1], st
    assert dns.queries.count(("servfail.test.example", QTYPE_A)) == 2, dns.queries


# one try of 1 s; or ten, whose doubling timeouts (c-ares) would take
# 1,023 s, cut by the lookup's deadline of 4 tries' worth (slack for a
# loaded machine in the upper bounds)
@pytest.mark.parametrize("tries,least,most,why", [
    (1, 0.8, 5, r"time"), (10, 3.8, 8, r"no answer within 4 s$")])
def test_dns_server_that_never_answers_fails_within_the_timeout(make_daemon, mta, make_dns,
                                                               tries, least, most, why):
    silent = make_dns(records={NAME: [MTA_HOST]}, silent=True)
    d = make_daemon(customers=conf(NAME, mta.port), extra=resolver(silent, timeout=1,
                                                                   tries=tries)).start()
    qid = send(d, ACME, simple("no answer"))
    t0 = time.monotonic()
    d.kickq("kick", "acme")
    st = wait_status(d, qid, ACME, "deferred", timeout=12)
    took = time.monotonic() - t0
    reason = st[ACME][1]
    assert reason.startswith("DNS lookup of mx.test.example failed: "), reason
    assert re.search(why, reason, re.I), reason
    assert least <= took <= most, took
    assert (NAME, QTYPE_A) in silent.queries
    assert qid in [m["queue_id"] for m in d.kickq_json("list")]
    assert mta.messages == []
    assert d.kickq("status").returncode == 0


def test_reload_changes_the_resolver(make_daemon, mta, make_dns):
    empty = make_dns(records={})
    good = make_dns(records={NAME: [MTA_HOST]})
    d = make_daemon(customers=conf(NAME, mta.port), extra=resolver(empty))
    d.start()
    qid = send(d, ACME, simple("after reload"))
    d.kickq("kick", "acme")
    wait_status(d, qid, ACME, "deferred")
    d.extra = resolver(good)
    d.write_conf()
    d.kickq("reload")
    d.kickq("kick", "acme")
    mta.wait_messages(1)
    wait_gone(d, qid)
    assert (NAME, QTYPE_A) in good.queries


def test_shutdown_during_a_lookup_keeps_the_mail(make_daemon, mta, make_dns):
    silent = make_dns(silent=True)
    d = make_daemon(customers=conf(NAME, mta.port),
                    extra=resolver(silent, timeout=30, tries=2)).start()
    qid = send(d, ACME, simple("stopping"))
    d.kickq("kick", "acme")
    wait_for(lambda: silent.queries, what="the lookup to start")
    t0 = time.monotonic()
    d.stop()                                # exit 0, promptly
    assert time.monotonic() - t0 < 10
    d.start()
    assert status_of(d, qid)[ACME][0] in ("queued", "deferred")


@pytest.mark.parametrize("value,why", [
    ("mx.test.example:25", None),
    ("MX-1.test.example:2525", None),
    ("mx..test.example:25", "bad host name: empty label"),
    ("mx.test.example-:25", "label starts or ends with '-'"),
    ("mx_1.test.example:25", "bad character"),
    ("mx.test.example", "want"),
    ("192.0.2.300:25", "not a numeric address"),
])
def test_check_deliver_host_names(tmp_path, value, why):
    d = Daemon(tmp_path, customers=customer_conf("acme", ["acme.example"], deliver=value),
               extra='resolver = "127.0.0.1:5353,[::1]"\nresolver_timeout = 5s\n'
                     'resolver_tries = 2\n')
    r = subprocess.run([KICKMAILD, "-n", "-c", d.conf], capture_output=True, text=True,
                       timeout=30)
    if why is None:
        assert r.returncode == 0 and "configuration OK" in r.stdout, r.stdout + r.stderr
    else:
        assert r.returncode == 1, r.stdout + r.stderr
        assert re.search(r"kickmail\.conf:\d+: bad deliver '%s'" % re.escape(value),
                         r.stdout + r.stderr), r.stdout + r.stderr
        assert why in r.stdout + r.stderr, r.stdout + r.stderr


def test_check_bad_resolver(tmp_path):
    d = Daemon(tmp_path, extra='resolver = "ns.example"\n')
    r = subprocess.run([KICKMAILD, "-n", "-c", d.conf], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "bad resolver 'ns.example'" in r.stdout + r.stderr


# ---- /etc/hosts: a table read with the configuration, not by c-ares ----

HOSTS_NAME = "mx.hosts.example"


def hosts_file(tmp_path, text):
    path = tmp_path / "hosts"
    path.write_text(text)
    return str(path)


def test_hosts_file_answers_before_the_dns_and_changes_at_reload(make_daemon, make_mta,
                                                                  tmp_path, dns):
    """A name in the hosts file is delivered to its address without asking
    the DNS; the file is read at start and at reload only: an edit takes
    effect at the next reload."""
    first = make_mta()
    second = make_mta(host="127.0.0.25", port=first.port)
    hosts = hosts_file(tmp_path, "# test\n127.0.0.1 localhost\n%s  %s other-alias  # first\n"
                       % (MTA_HOST, HOSTS_NAME.upper()))
    d = make_daemon(customers=conf(HOSTS_NAME, first.port, online="always"),
                    extra=resolver(dns), env={"KICKMAIL_TEST_HOSTS": hosts}).start()
    qid = send(d, ACME, simple("from the hosts file"))
    first.wait_messages(1)
    wait_gone(d, qid)
    d.wait_log(r"acme: mx\.hosts\.example is 127\.0\.0\.23\b")
    # the file changes: nothing until the reload
    hosts_file(tmp_path, "127.0.0.25 %s\n" % HOSTS_NAME)
    qid = send(d, ACME, simple("still the old table"))
    first.wait_messages(2)
    wait_gone(d, qid)
    mark = len(d.log_text())
    d.kickq("reload")
    wait_for(lambda: "configuration reloaded" in d.log_text()[mark:], what="the reload")
    qid = send(d, ACME, simple("the new table"))
    second.wait_messages(1)
    wait_gone(d, qid)
    assert [m.header("Subject") for m in second.messages] == ["the new table"]
    assert len(first.messages) == 2
    assert not [q for q in dns.queries if q[0].lower() == HOSTS_NAME], dns.queries


def _name_in_etc_hosts():
    """A name /etc/hosts gives an address (not localhost..., which Debian's
    c-ares never sends to the DNS), or None."""
    try:
        with open("/etc/hosts") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        words = line.split("#")[0].split()
        for name in words[1:]:
            if not name.lower().startswith("localhost") and \
                    re.match(r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$", name) and \
                    not re.search(r"(^|\.)\d+$", name):
                return name
    return None


def test_c_ares_does_not_read_etc_hosts_itself(make_daemon, mta, tmp_path, dns):
    """A name that /etc/hosts has but the hosts table (read with the
    configuration; here a test file) lacks goes to the DNS: c-ares no
    longer reads /etc/hosts on the event loop at each lookup."""
    name = _name_in_etc_hosts()
    if name is None:
        pytest.skip("/etc/hosts names no host but localhost")
    hosts = hosts_file(tmp_path, "%s %s\n" % (MTA_HOST, HOSTS_NAME))
    d = make_daemon(customers=conf(name, mta.port, online="always"),
                    extra=resolver(dns), env={"KICKMAIL_TEST_HOSTS": hosts}).start()
    qid = send(d, ACME, simple("a name of /etc/hosts"))
    st = wait_status(d, qid, ACME, "deferred")
    assert st[ACME][1] == "host %s not found" % name, (st, dns.queries)
    assert (name, QTYPE_A) in dns.queries, dns.queries
    assert mta.messages == []

"""Configuration: kickmaild -n on good and bad files, reloads (SIGHUP and
kickq reload), orphans, signals."""
import os
import re
import signal
import subprocess

import pytest

from conftest import (DEFAULT_CUSTOMERS, KICKMAILD, ROOT, Daemon, Raw, code, message,
                      queue, queue_ids, queued_id, wait_for)


def run_check(path):
    return subprocess.run([KICKMAILD, "-n", "-c", path], capture_output=True,
                          text=True, timeout=30)


def test_check_good_file(tmp_path):
    d = Daemon(tmp_path)
    r = run_check(d.conf)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "configuration OK" in r.stdout
    # nothing bound or written
    assert not os.path.exists(d.spool)
    assert not os.path.exists(d.control)


def test_check_good_file_with_units_and_ipv6(tmp_path):
    d = Daemon(tmp_path, smtp_opts='timeout = 5m\n  max_message_size = 10M\n'
                                   '  header_size_limit = 100k\n  line_length_limit = "64k"',
               customers=DEFAULT_CUSTOMERS + 'customer "gamma" {\n  domains = {"gamma.example"}\n'
                                             '  link_ttl = 12h\n  hold_time = "5d"\n'
                                             '  quota = 1G\n  deliver = "192.0.2.7:2525"\n}\n')
    d.write_conf(d.conf_text().replace('listen = {"127.0.0.1:%d"}' % d.port,
                                       'listen = {"127.0.0.1:%d", "[::1]:%d"}'
                                       % (d.port, d.port)))
    r = run_check(d.conf)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "configuration OK" in r.stdout


def test_check_shipped_configurations():
    for name in ("kickmail.conf", "dev.conf"):
        path = os.path.join(ROOT, "conf", name)
        if not os.path.exists(path):
            pytest.skip("conf/%s not there yet" % name)
        r = run_check(path)
        assert r.returncode == 0, (name, r.stdout + r.stderr)
        assert "configuration OK" in r.stdout


def test_check_unserved_sections(tmp_path):
    d = Daemon(tmp_path, extra='pop3 { listen = {"127.0.0.1:1110"} }\n'
                               'submission { listen = {"127.0.0.1:2587"} }\n'
                               'odmr { listen = {"127.0.0.1:3366"} }\n')
    r = run_check(d.conf)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "configuration OK" in r.stdout
    line = [ln for ln in r.stdout.splitlines() if "not served" in ln]
    assert line == [], r.stdout             # pop3 since issue 12; submission, odmr 13


def test_version():
    r = subprocess.run([KICKMAILD, "-V"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0
    v = open(os.path.join(ROOT, "VERSION")).read().strip()
    assert v in r.stdout


def test_bad_command_line():
    r = subprocess.run([KICKMAILD, "-Z"], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "usage" in r.stderr


def _line_of(text, needle):
    for i, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return i
    raise AssertionError("%r not in config" % needle)


BAD_CASES = {
    # name: (keyword arguments for Daemon, the text marking the bad line,
    #        a word the message must contain)
    "unknown-option": (dict(extra="frobnicate = 1\n"), "frobnicate", "frobnicate"),
    "unknown-smtp-option": (dict(smtp_opts="max_frobs = 3"), "max_frobs", "max_frobs"),
    "unknown-section": (dict(extra="gopher { listen = {\"127.0.0.1:70\"} }\n"), "gopher",
                        "gopher"),
    "bad-duration": (dict(smtp_opts="timeout = 5x"), "timeout = 5x", "timeout"),
    "negative-duration": (dict(smtp_opts="timeout = -5"), "timeout = -5", "timeout"),
    "bad-size": (dict(smtp_opts="max_message_size = 10Q"), "max_message_size", "max_message_size"),
    "bad-count": (dict(smtp_opts="max_recipients = lots"), "max_recipients", "max_recipients"),
    "bad-customer-name": (dict(customers='customer "Acme" {\n  domains = {"acme.example"}\n}\n'),
                          'customer "Acme"', "Acme"),
    "domain-without-dot": (dict(customers='customer "acme" {\n  domains = {"localhost"}\n}\n'),
                           '"localhost"', "localhost"),
    "bad-customer-option": (dict(customers='customer "acme" {\n  domains = {"acme.example"}\n'
                                           '  deliver = "carrier-pigeon"\n}\n'),
                            "carrier-pigeon", "deliver"),
    "bad-customer-duration": (dict(customers='customer "acme" {\n  domains = {"acme.example"}\n'
                                             '  link_ttl = "12 hours"\n}\n'),
                              "link_ttl", "link_ttl"),
}

DUP_CUSTOMERS = '''customer "acme" {
  domains = {"acme.example", "acme.co.uk"}
}
customer "beta" {
  domains = {"beta.example", "ACME.example"}
}
'''

BAD_LISTEN = ["127.0.0.1", "999.1.1.1:25", "127.0.0.1:99999", "127.0.0.1:http",
              "[::1:25", "localhost:25x", ":25"]


def _check_bad(tmp_path, kw):
    d = Daemon(tmp_path, **kw)
    r = run_check(d.conf)
    out = r.stdout + r.stderr
    assert r.returncode == 1, (kw, out)
    assert "configuration OK" not in out
    m = re.search(r"^%s:(\d+): (.+)$" % re.escape(d.conf), out, re.M)
    assert m, out
    # starting it fails the same way, with nothing bound
    s = subprocess.run([KICKMAILD, "-f", "-c", d.conf], capture_output=True, text=True,
                       timeout=30)
    assert s.returncode == 1, s.stdout + s.stderr
    assert d.conf + ":" in s.stderr
    return d, int(m.group(1)), m.group(2)


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_check_bad_file(tmp_path, case):
    kw, marker, word = BAD_CASES[case]
    d, line, msg = _check_bad(tmp_path, kw)
    assert line == _line_of(d.conf_text(), marker), (line, msg)
    assert word.lower() in msg.lower(), msg


@pytest.mark.parametrize("addr", BAD_LISTEN)
def test_check_bad_listen_address(tmp_path, addr):
    d = Daemon(tmp_path)
    text = d.conf_text().replace('listen = {"127.0.0.1:%d"}' % d.port,
                                 'listen = {"%s"}' % addr)
    assert addr in text
    d.write_conf(text)
    r = run_check(d.conf)
    out = r.stdout + r.stderr
    assert r.returncode == 1, (addr, out)
    m = re.search(r"^%s:(\d+): (.+)$" % re.escape(d.conf), out, re.M)
    assert m, out
    assert int(m.group(1)) == _line_of(text, addr), out
    assert "listen" in m.group(2) or addr in m.group(2), out


def test_check_domain_claimed_twice(tmp_path):
    d, line, msg = _check_bad(tmp_path, dict(customers=DUP_CUSTOMERS))
    assert "acme.example" in msg.lower(), msg
    text = d.conf_text()
    # the line of the second claim (its domains list or its section)
    assert line in (_line_of(text, '"ACME.example"'), _line_of(text, 'customer "beta"')), \
        (line, msg)


def test_check_missing_file(tmp_path):
    r = run_check(str(tmp_path / "nope.conf"))
    assert r.returncode == 1
    assert "nope.conf" in r.stderr


def test_check_syntax_error(tmp_path):
    d = Daemon(tmp_path, extra="customer \"gamma\" {\n  domains = {\"gamma.example\"\n")
    r = run_check(d.conf)
    assert r.returncode == 1
    assert re.search(r"^%s:\d+: " % re.escape(d.conf), r.stdout + r.stderr, re.M), \
        r.stdout + r.stderr


# ---- reloads ----

def _wait_log(d, pattern, start):
    wait_for(lambda: re.search(pattern, d.log_text()[start:]), what=pattern)


def test_sighup_with_bad_file_keeps_serving(daemon):
    good = daemon.conf_text()
    daemon.write_conf(good + "frobnicate = 1\n")
    mark = len(daemon.log_text())
    daemon.hup()
    _wait_log(daemon, r"reload failed", mark)
    assert daemon.proc.poll() is None
    assert "frobnicate" in daemon.log_text()[mark:]
    qid = daemon.send("bob@acme.example")
    assert queue_ids(daemon) == [qid]
    daemon.kickq("status")
    # the old configuration is still in force (beta's recipient list)
    with daemon.smtp() as s:
        s.ehlo("client.example")
        s.mail("alice@sender.example")
        assert s.rcpt("alice@beta.example")[0] == 550
    # fixing the file and reloading works
    daemon.write_conf(good)
    mark = len(daemon.log_text())
    daemon.hup()
    _wait_log(daemon, r"configuration reloaded", mark)


def test_kickq_reload(daemon):
    good = daemon.conf_text()
    daemon.write_conf(good + 'frobnicate = 1\n')
    r = daemon.kickq("reload", check=False)
    assert r.returncode == 1
    assert "frobnicate" in r.stderr
    daemon.write_conf(good + 'customer "gamma" {\n  domains = {"gamma.example"}\n}\n')
    daemon.kickq("reload")
    qid = daemon.send("joe@gamma.example")
    assert queue(daemon)[0]["recipients"][0]["customer"] == "gamma"
    assert queue_ids(daemon) == [qid]


def test_sighup_adding_a_customer(daemon):
    with daemon.smtp() as s:
        s.ehlo("client.example")
        s.mail("alice@sender.example")
        c, _ = s.rcpt("joe@gamma.example")
        assert c == 550
    daemon.customers = DEFAULT_CUSTOMERS + 'customer "gamma" {\n  domains = {"gamma.example"}\n}\n'
    daemon.write_conf()
    mark = len(daemon.log_text())
    daemon.hup()
    _wait_log(daemon, r"configuration reloaded", mark)
    qid = daemon.send("joe@gamma.example")
    m = queue(daemon)[0]
    assert m["queue_id"] == qid
    assert m["recipients"][0]["customer"] == "gamma"
    js = {s["customer"]: s for s in daemon.kickq_json("summary")}
    assert js["gamma"]["messages"] == 1


def test_sighup_removing_a_customer_keeps_its_mail_as_orphan(daemon):
    qid = daemon.send("bob@beta.example", body=message(subject="orphan to be"))
    other = daemon.send("bob@acme.example")
    daemon.customers = 'customer "acme" {\n  domains = {"acme.example", "acme.co.uk"}\n}\n'
    daemon.write_conf()
    mark = len(daemon.log_text())
    daemon.hup()
    _wait_log(daemon, r"configuration reloaded", mark)
    msgs = {m["queue_id"]: m for m in queue(daemon)}
    assert set(msgs) == {qid, other}
    r = msgs[qid]["recipients"][0]
    assert r["customer"] is None
    assert r["address"] == "bob@beta.example"
    assert r["status"] == "queued"
    assert msgs[other]["recipients"][0]["customer"] == "acme"
    summary = daemon.kickq("summary").stdout
    assert any(ln.startswith("(orphan)") for ln in summary.splitlines()), summary
    assert not any(ln.split()[0] == "beta" for ln in summary.splitlines()[1:]), summary
    js = {s["customer"]: s for s in daemon.kickq_json("summary")}
    assert js["(orphan)"]["messages"] == 1
    assert "beta.example" in js["(orphan)"]["domains"]
    # new mail for the domain is refused now
    with daemon.smtp() as s:
        s.ehlo("client.example")
        s.mail("alice@sender.example")
        c, msg = s.rcpt("bob@beta.example")
        assert c == 550, msg
    # the orphan survives a restart with the new configuration
    daemon.stop()
    daemon.start()
    msgs = {m["queue_id"]: m for m in queue(daemon)}
    assert msgs[qid]["recipients"][0]["customer"] is None
    assert "Subject: orphan to be" in daemon.kickq("show", qid).stdout
    # and finds its customer again when the domain returns
    daemon.customers = DEFAULT_CUSTOMERS
    daemon.write_conf()
    mark = len(daemon.log_text())
    daemon.hup()
    _wait_log(daemon, r"configuration reloaded", mark)
    msgs = {m["queue_id"]: m for m in queue(daemon)}
    assert msgs[qid]["recipients"][0]["customer"] == "beta"
    js = {s["customer"]: s for s in daemon.kickq_json("summary")}
    assert "(orphan)" not in js
    assert js["beta"]["messages"] == 1


def test_sighup_keeps_open_sessions_and_applies_new_limits(daemon):
    c = Raw(daemon.port)
    try:
        c.greet()
        assert code(c.cmd("MAIL FROM:<alice@sender.example>")) == 250
        assert code(c.cmd("RCPT TO:<bob@acme.example>")) == 250
        daemon.smtp_opts = "max_recipients = 1"
        daemon.write_conf()
        mark = len(daemon.log_text())
        daemon.hup()
        _wait_log(daemon, r"configuration reloaded", mark)
        # the open session goes on
        assert code(c.cmd("DATA")) == 354
        c.send(message() + ".\r\n")
        queued_id(c.reply())
    finally:
        c.close()
    with Raw(daemon.port) as c:
        c.greet()
        assert code(c.cmd("MAIL FROM:<alice@sender.example>")) == 250
        assert code(c.cmd("RCPT TO:<bob@acme.example>")) == 250
        r = c.cmd("RCPT TO:<sales@acme.example>")
        assert r.startswith("452 4.5.3"), r


def test_sigterm_exits_0(daemon):
    daemon.send("bob@acme.example")
    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.proc.wait(timeout=20) == 0
    assert "stopped" in daemon.log_text()
    daemon.proc = None
    daemon.logf.close()


def test_sigint_exits_0(daemon):
    daemon.proc.send_signal(signal.SIGINT)
    assert daemon.proc.wait(timeout=20) == 0
    daemon.proc = None
    daemon.logf.close()


def test_sigterm_with_idle_session_open(daemon):
    c = Raw(daemon.port)
    try:
        c.greet()
        daemon.proc.send_signal(signal.SIGTERM)
        r = c.reply(timeout=20)
        assert r is None or r.startswith("421"), r
        assert daemon.proc.wait(timeout=20) == 0
    finally:
        c.close()
    daemon.proc = None
    daemon.logf.close()


def test_second_daemon_on_same_spool_refused(make_daemon):
    a = make_daemon().start()
    b = make_daemon()
    # same spool, another port and control socket
    b.spool = a.spool
    b.write_conf()
    p = subprocess.run([KICKMAILD, "-f", "-c", b.conf], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode != 0, p.stdout + p.stderr
    qid = a.send("bob@acme.example")
    assert queue_ids(a) == [qid]


@pytest.mark.parametrize("value,spare", [("yes", True), ("no", False)])
def test_spool_spares_yes_and_no(tmp_path, value, spare):
    """spool_spares forces spare journal segments on or off; "auto" (the
    default) logs what it measured."""
    d = Daemon(tmp_path, extra='spool_spares = "%s"\n' % value)
    d.start()
    try:
        jdir = os.path.join(d.spool, "journal")
        assert os.path.exists(os.path.join(jdir, ".spare")) == spare
        assert "over written blocks" not in d.log_text()
        d.send("bob@acme.example")
        segs = [f for f in os.listdir(jdir) if f.endswith(".seg")]
        assert len(segs) == 1, segs
        size = os.path.getsize(os.path.join(jdir, segs[0]))
        assert (size == 1 << 20) == spare, size
    finally:
        d.stop()


def test_spool_spares_auto_logs_its_choice(daemon):
    daemon.wait_log(r"fdatasync after an append [0-9.]+ ms, over written blocks "
                    r"[0-9.]+ ms: spare segments (on|off)")


def test_spool_spares_bad_value(tmp_path):
    d = Daemon(tmp_path, extra='spool_spares = "maybe"\n')
    r = run_check(d.conf)
    assert r.returncode == 1, r.stdout + r.stderr
    assert re.search(r"%s:\d+: .*spool_spares" % re.escape(d.conf), r.stdout + r.stderr), \
        r.stdout + r.stderr

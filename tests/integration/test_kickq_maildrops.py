"""`kickq maildrops [ADDRESS] [--json]`: per maildrop its mode, quota and
the usage figures (messages, bytes, oldest, last POP3 login), from the
daemon's memory; the figures move with deliveries and POP3 sessions; an
unknown ADDRESS exits 1; kickq -h lists the command.
"""
import poplib
import re
import subprocess
import time

import pytest

from conftest import KICKQ, customer_conf, free_port, wait_for
from peers import drop_files, maildrop_conf, maildrops_missing, pop3_extra


@pytest.fixture
def need_maildrops(tmp_path):
    """Maildrop sections, local delivery and the POP3 server."""
    why = maildrops_missing(tmp_path)
    if why:
        pytest.skip(why)


@pytest.fixture
def need_config(tmp_path):
    """Maildrop sections (the registry's maildrops) only."""
    why = maildrops_missing(tmp_path, pop3=False)
    if why:
        pytest.skip(why)


def _daemon(tmp_path, make_daemon):
    root = tmp_path / "maildrops"
    pop3 = free_port()
    sections = (maildrop_conf("alice@isp.example", "alice-pw") +
                maildrop_conf("bob@isp.example", "bob-pw", mode="keep", keep_days=7,
                              quota="1M"))
    d = make_daemon(customers=customer_conf("acme", ["acme.example"], deliver="maildrop",
                                            secret="acme-s3cret"),
                    extra=pop3_extra(root, pop3, sections))
    d.start()
    d.pop3_port = pop3
    d.root = root
    return d


def _by_name(d, *args):
    return {o["maildrop"]: o for o in d.kickq_json("maildrops", *args)}


def _pop3_sizes(root, drop):
    """Sum of the W= sizes (CRLF bytes) in the names of drop's messages."""
    total = 0
    for f in drop_files(root, drop):
        m = re.search(r",W=(\d+)", f)
        assert m, f
        total += int(m.group(1))
    return total


def test_maildrops_listed_with_their_settings(tmp_path, make_daemon, need_config):
    d = _daemon(tmp_path, make_daemon)
    rows = d.kickq_json("maildrops")
    # address maildrops first, then the domain maildrop
    assert [r["maildrop"] for r in rows] == ["alice@isp.example", "bob@isp.example", "acme"]
    a, b, acme = rows
    assert (a["mode"], a["quota"], a["customer"]) == ("delete", None, None)
    assert (b["mode"], b["keep_days"], b["quota"]) == ("keep", 7, 1024 * 1024)
    # a domain maildrop has its customer's quota (default 500M)
    assert (acme["mode"], acme["customer"], acme["quota"]) == ("delete", "acme", 500 << 20)
    for r in rows:
        assert (r["messages"], r["bytes"], r["oldest"], r["last_login"]) == (0, 0, None, None)
    text = d.kickq("maildrops").stdout.splitlines()
    assert text[0].split() == ["MAILDROP", "MODE", "MESSAGES", "BYTES", "QUOTA", "OLDEST",
                               "LAST-LOGIN"]
    assert text[1].split() == ["alice@isp.example", "delete", "0", "0", "-", "-", "-"]
    assert text[2].split() == ["bob@isp.example", "keep", "7d", "0", "0", "1048576", "-", "-"]
    assert text[3].split() == ["acme", "delete", "0", "0", "524288000", "-", "-"]


def test_unknown_address_fails(tmp_path, make_daemon, need_config):
    d = _daemon(tmp_path, make_daemon)
    r = d.kickq("maildrops", "nobody@isp.example", check=False)
    assert r.returncode == 1
    assert "nobody@isp.example: no such maildrop" in r.stderr
    assert r.stdout == ""
    r = d.kickq("maildrops", "a", "b", check=False)
    assert r.returncode == 2
    # one maildrop, named in any case
    rows = d.kickq_json("maildrops", "ALICE@isp.EXAMPLE")
    assert [o["maildrop"] for o in rows] == ["alice@isp.example"]
    assert [o["maildrop"] for o in d.kickq_json("maildrops", "ACME")] == ["acme"]


def test_figures_move_with_delivery_and_pop3(tmp_path, make_daemon, need_maildrops):
    d = _daemon(tmp_path, make_daemon)
    t0 = int(time.time())
    d.send("alice@isp.example")
    d.send("alice@isp.example", body="Subject: two\r\n\r\n" + "x" * 500 + "\r\n")
    d.send(["bob@acme.example", "carol@acme.example"])      # two copies in acme
    wait_for(lambda: len(drop_files(d.root, "alice@isp.example")) == 2
             and len(drop_files(d.root, "acme")) == 2, what="deliveries")
    rows = wait_for(lambda: (lambda r: r if r["alice@isp.example"]["messages"] == 2
                             and r["acme"]["messages"] == 2 else None)(_by_name(d)),
                    what="usage figures after delivery")
    a = rows["alice@isp.example"]
    assert a["bytes"] == _pop3_sizes(d.root, "alice@isp.example")
    assert t0 - 2 <= a["oldest"] <= time.time() + 2
    assert a["last_login"] is None
    assert rows["acme"]["bytes"] == _pop3_sizes(d.root, "acme")
    assert rows["bob@isp.example"]["messages"] == 0

    # a POP3 session: login, DELE 1, QUIT (delete mode removes it)
    p = poplib.POP3("127.0.0.1", d.pop3_port, timeout=10)
    p.user("alice@isp.example")
    p.pass_("alice-pw")
    count, size = p.stat()
    assert (count, size) == (2, a["bytes"])
    p.dele(1)
    p.quit()
    wait_for(lambda: len(drop_files(d.root, "alice@isp.example")) == 1, what="DELE applied")
    a2 = wait_for(lambda: (lambda o: o if o["messages"] == 1 else None)(
        _by_name(d, "alice@isp.example")["alice@isp.example"]),
        what="usage after the POP3 session")
    assert a2["bytes"] == _pop3_sizes(d.root, "alice@isp.example")
    assert t0 - 2 <= a2["last_login"] <= time.time() + 2
    line = d.kickq("maildrops", "alice@isp.example").stdout.splitlines()[1]
    assert re.match(r"alice@isp\.example +delete +1 +%d +- +\d+s +\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$"
                    % a2["bytes"], line), line
    # the others did not move
    assert _by_name(d)["acme"]["last_login"] is None


def test_kickq_help_lists_maildrops():
    r = subprocess.run([KICKQ, "-h"], capture_output=True, text=True)
    assert r.returncode == 0
    assert "maildrops [ADDRESS] [--json]" in r.stdout


def test_probe_odd_addresses(tmp_path, make_daemon, need_config):
    """An address with every atext character is valid JSON with --json and
    the same in the table; ADDRESS in any case finds it; an unknown ADDRESS
    with quotes, a backslash and control bytes exits 1 with the bytes made
    safe on stderr; a domain maildrop is found by its customer's name."""
    import json
    odd = "o'hara+x{y}|~!#$%&*=?^_`-z@isp.example"
    root = tmp_path / "maildrops"
    d = make_daemon(customers=customer_conf("acme", ["acme.example"], deliver="maildrop",
                                            secret="acme-s3cret"),
                    extra=pop3_extra(root, free_port(),
                                     maildrop_conf(odd, "pw") +
                                     maildrop_conf("alice@isp.example", "pw")))
    d.start()
    out = d.kickq("maildrops", "--json").stdout
    objs = [json.loads(ln) for ln in out.splitlines() if ln.strip()]
    assert odd in {o["maildrop"] for o in objs}, objs
    assert odd in d.kickq("maildrops").stdout
    (o,) = d.kickq_json("maildrops", odd.upper())
    assert o["maildrop"] == odd
    (o,) = d.kickq_json("maildrops", "acme")
    assert o["maildrop"] == "acme"
    r = d.kickq("maildrops", 'a"b\\c\x01\x1b[2J@isp.example', check=False)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert "\x01" not in r.stderr and "\x1b" not in r.stderr, repr(r.stderr)
    assert "no such maildrop" in r.stderr

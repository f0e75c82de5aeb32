"""kickq link up/down --user NAME (resolved as a RADIUS User-Name) and
--session ID (a down with --session drops only its own session's link),
and KICKMAIL_CONF (kickq's configuration when -c is not given), for both
builds of kickq (the small front end and kickq-config)."""
import os
import subprocess

import pytest

from conftest import BUILD, KICKQ, MTA_HOST, customer_conf, links_of

BINARIES = [KICKQ] + ([os.path.join(BUILD, "kickq-config")]
                      if os.path.exists(os.path.join(BUILD, "kickq-config")) else [])


def conf(mta):
    return (customer_conf("acme", ["acme.example"], port=mta.port, radius_user="Acme-Dialin")
            + customer_conf("beta", ["beta.example"], port=mta.port))


def run(binary, *args, env=None):
    e = dict(os.environ)
    e.pop("KICKMAIL_CONF", None)
    e.update(env or {})
    return subprocess.run([binary] + list(args), capture_output=True, text=True,
                          timeout=30, env=e)


@pytest.mark.parametrize("binary", BINARIES)
def test_kickmail_conf_names_the_configuration(make_daemon, mta, tmp_path, binary):
    d = make_daemon(customers=conf(mta)).start()
    r = run(binary, "status", env={"KICKMAIL_CONF": d.conf})
    assert r.returncode == 0 and "running" in r.stdout, r.stderr
    # -c wins over it, and so does -s
    bogus = str(tmp_path / "nonexistent.conf")
    r = run(binary, "-c", d.conf, "status", env={"KICKMAIL_CONF": bogus})
    assert r.returncode == 0, r.stderr
    r = run(binary, "-s", d.control, "status", env={"KICKMAIL_CONF": bogus})
    assert r.returncode == 0, r.stderr
    # a file that cannot be read is named in the error
    r = run(binary, "status", env={"KICKMAIL_CONF": bogus})
    assert r.returncode == 1 and bogus in r.stderr, (r.returncode, r.stderr)
    # empty: the default file, as without it
    r1 = run(binary, "status", env={"KICKMAIL_CONF": ""})
    r2 = run(binary, "status")
    assert r1.returncode == r2.returncode and r1.stderr == r2.stderr
    assert "kickmail.conf" in r1.stderr and bogus not in r1.stderr


@pytest.mark.parametrize("binary", BINARIES)
def test_link_by_user_name(make_daemon, mta, binary):
    d = make_daemon(customers=conf(mta)).start()
    k = lambda *a: run(binary, "-s", d.control, *a)   # noqa: E731
    r = k("link", "up", "--user", "Acme-Dialin", MTA_HOST)
    assert r.returncode == 0 and r.stdout == "link up acme at %s\n" % MTA_HOST, r
    r = k("link", "up", "--user", "beta", "127.0.0.24")      # no radius_user: its name
    assert r.returncode == 0 and r.stdout == "link up beta at 127.0.0.24\n", r
    r = k("link", "up", "--user", "acme", "127.0.0.25")      # has one: not its name
    assert r.returncode == 1 and "RADIUS user acme: no such customer" in r.stderr, r
    r = k("link", "down", "--user", "Acme-Dialin")           # no --session: any
    assert r.returncode == 0 and r.stdout == "link down acme\n", r
    links = links_of(d)
    assert links["acme"]["state"] == "down" and links["beta"]["state"] == "up"
    # an option's value is a name, not an option
    r = k("link", "down", "--user", "--help")
    assert r.returncode == 1 and "RADIUS user --help: no such customer" in r.stderr, r


@pytest.mark.parametrize("binary", BINARIES)
def test_link_down_with_session_drops_only_its_own(make_daemon, mta, binary):
    d = make_daemon(customers=conf(mta)).start()
    k = lambda *a: run(binary, "-s", d.control, *a)   # noqa: E731
    r = k("link", "up", "acme", MTA_HOST, "--session", "ppp1", "--ttl", "1h")
    assert r.returncode == 0, r
    l = links_of(d)["acme"]
    assert (l["state"], l["session"], l["source"]) == ("up", "ppp1", "kickq"), l
    assert "ppp1" in k("links").stdout
    r = k("link", "down", "--user", "Acme-Dialin", "--session", "ppp0")
    assert r.returncode == 0, r
    assert r.stdout == ("link up acme at %s, left up (session ppp0 is not its session)\n"
                        % MTA_HOST), r.stdout
    assert links_of(d)["acme"]["state"] == "up"
    r = k("link", "down", "acme", "--session", "ppp1")
    assert r.returncode == 0 and r.stdout == "link down acme\n", r
    l = links_of(d)["acme"]
    assert (l["state"], l["session"]) == ("down", "ppp1"), l
    # a down with a session for a link already down changes nothing
    r = k("link", "down", "acme", "--session", "ppp1")
    assert r.returncode == 0 and r.stdout == "link down acme\n", r


def test_link_usage_errors(make_daemon, mta):
    d = make_daemon(customers=conf(mta)).start()
    for args, rc, text in [
        (("link", "up", "--user", "beta", MTA_HOST, "extra"), 2, "usage:"),
        (("link", "up", "--user", "beta", "acme", MTA_HOST), 2, "usage:"),
        (("link", "down", "--user", "beta", "acme"), 2, "usage:"),
        (("link", "down", "beta", "--ttl", "1h"), 2, "usage:"),
        (("link", "up"), 2, "usage:"),
        (("link", "down", "--user"), 2, "--user needs a name"),
        (("link", "down", "beta", "--session"), 2, "--session needs an id"),
        (("link", "down", "--user", "a", "--user", "b"), 2, "--user given twice"),
        (("link", "down", "beta", "--session", "s" * 64), 1, "bad session id"),
        (("link", "down", "beta", "--session", "a\x01b"), 1, "bad session id"),
        (("kick", "beta", "--user", "beta"), 2, "unknown option --user"),
    ]:
        r = d.kickq(*args, check=False)
        assert r.returncode == rc and text in r.stderr, (args, r.returncode, r.stderr)
    assert "beta" not in links_of(d)
    r = d.kickq("link", "up", "beta", MTA_HOST, "--session", "s" * 63)
    assert links_of(d)["beta"]["session"] == "s" * 63

"""The pppd and ipppd hooks (scripts/ppp): run with the arguments and
environment pppd (or Debian's run-parts, or ipppd) gives them, with
KICKMAIL_CONF naming the test daemon's configuration and kickq on PATH; a
fake `logger` earlier on PATH records what would go to syslog.  Also
`make install DESTDIR=...` / `make uninstall` for the hooks."""
import json
import os
import socket
import stat
import subprocess
import time

from conftest import BUILD, KICKQ, MTA_HOST, ROOT, customer_conf, links_of, queue_ids, wait_for

HOOKS = os.path.join(ROOT, "scripts", "ppp")
# a peer name with everything a shell would interpret
HOSTILE = 'Joe "Q" $(touch PWNED) `touch PWNED`; x'

FAKE_LOGGER = """#!/usr/bin/python3
import json, sys
with open(%r, "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
"""
# the hooks bound kickq with its own -w: a timeout(1) on PATH says if run
FAKE_TIMEOUT = """#!/bin/sh
echo "$*" >> %r
exit 125
"""


class Hooks:
    """Runs the hooks like pppd does, for one daemon."""

    def __init__(self, tmp, conf):
        self.tmp = str(tmp)
        self.conf = conf
        self.bin = os.path.join(self.tmp, "bin")
        self.state = os.path.join(self.tmp, "pppstate")
        self.logfile = os.path.join(self.tmp, "logger.log")
        os.makedirs(self.bin, exist_ok=True)
        os.symlink(KICKQ, os.path.join(self.bin, "kickq"))
        with open(os.path.join(self.bin, "logger"), "w") as f:
            f.write(FAKE_LOGGER % self.logfile)
        os.chmod(os.path.join(self.bin, "logger"), 0o755)
        self.timeout_log = os.path.join(self.tmp, "timeout.log")
        with open(os.path.join(self.bin, "timeout"), "w") as f:
            f.write(FAKE_TIMEOUT % self.timeout_log)
        os.chmod(os.path.join(self.bin, "timeout"), 0o755)

    def base_env(self):
        return {"PATH": self.bin + ":/usr/bin:/bin", "KICKMAIL_CONF": self.conf,
                "KICKMAIL_DEFAULTS": "/nonexistent", "KICKMAIL_PPP_STATE": self.state}

    def run(self, hook, args, env, timeout=30):
        e = self.base_env()
        e.update(env)
        t0 = time.monotonic()
        r = subprocess.run([os.path.join(HOOKS, hook)] + list(args), env=e, cwd=self.tmp,
                           capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
        r.elapsed = time.monotonic() - t0
        assert r.returncode == 0, (hook, r.returncode, r.stdout, r.stderr)
        assert not os.path.exists(self.timeout_log), "the hook started timeout(1)"
        return r

    def pppd(self, hook, iface, remote, peer, local="10.0.0.1"):
        """What pppd passes: the arguments and its script environment."""
        args = [iface, "/dev/ttyS0", "115200", local, remote, ""]
        env = {"IFNAME": iface, "IPLOCAL": local, "IPREMOTE": remote, "PEERNAME": peer,
               "DEVICE": "/dev/ttyS0", "SPEED": "115200", "ORIG_UID": "0",
               "PPPLOGNAME": "root", "PPPD_PID": "4242", "LINKNAME": ""}
        return self.run(hook, args, env)

    def run_parts(self, hook, iface, remote, peer, local="10.0.0.1"):
        """Debian's /etc/ppp/ip-up: run-parts with the same arguments and the
        PPP_* variables, pppd's environment inherited."""
        args = [iface, "/dev/ttyS1", "38400", local, remote, "isp"]
        env = {"PPP_IFACE": iface, "PPP_TTY": "/dev/ttyS1", "PPP_SPEED": "38400",
               "PPP_LOCAL": local, "PPP_REMOTE": remote, "PPP_IPPARAM": "isp",
               "PEERNAME": peer, "IFNAME": iface, "IPREMOTE": remote}
        return self.run(hook, args, env)

    def logged(self):
        if not os.path.exists(self.logfile):
            return []
        with open(self.logfile) as f:
            return [json.loads(line) for line in f if line.strip()]


def conf(mta, **acme):
    return (customer_conf("acme", ["acme.example"], port=mta.port, radius_user="acme-ppp",
                          **acme)
            + customer_conf("beta", ["beta.example"], port=mta.port)
            + "customer \"odd\" {\n  domains = {\"odd.example\"}\n  port = %d\n"
              "  radius_user = '%s'\n}\n" % (mta.port, HOSTILE))


def start_with_hooks(make_daemon, mta, tmp_path):
    d = make_daemon(customers=conf(mta)).start()
    return d, Hooks(tmp_path / "hooks", d.conf)


def send(d, rcpt, subject="test"):
    return d.send(rcpt, body="From: <a@sender.example>\r\nTo: <%s>\r\nSubject: %s\r\n\r\n"
                  "hello\r\n" % (rcpt, subject))


def test_ip_up_delivers_held_mail(make_daemon, mta, tmp_path):
    d, h = start_with_hooks(make_daemon, mta, tmp_path)
    qid = send(d, "bob@acme.example")
    h.pppd("ip-up", "ppp0", MTA_HOST, "acme-ppp")
    l = links_of(d)["acme"]
    assert (l["state"], l["address"], l["session"], l["source"]) == \
        ("up", MTA_HOST, "ppp0", "kickq"), l
    wait_for(lambda: mta.received_for("bob@acme.example"), what="held mail at the MTA")
    wait_for(lambda: qid not in queue_ids(d), what="queue empty")
    assert h.logged() == []


def test_debian_run_parts_variant(make_daemon, mta, tmp_path):
    d, h = start_with_hooks(make_daemon, mta, tmp_path)
    send(d, "bob@acme.example")
    h.run_parts("ip-up", "ppp3", MTA_HOST, "acme-ppp")
    l = links_of(d)["acme"]
    assert (l["state"], l["address"], l["session"]) == ("up", MTA_HOST, "ppp3"), l
    wait_for(lambda: mta.received_for("bob@acme.example"), what="held mail at the MTA")
    h.run_parts("ip-down", "ppp3", MTA_HOST, "acme-ppp")
    assert links_of(d)["acme"]["state"] == "down"
    assert h.logged() == []


def test_ip_down_drops_only_its_own_session(make_daemon, mta, tmp_path):
    d, h = start_with_hooks(make_daemon, mta, tmp_path)
    h.pppd("ip-up", "ppp1", MTA_HOST, "acme-ppp")
    h.pppd("ip-down", "ppp0", MTA_HOST, "acme-ppp")     # an old call's late ip-down
    l = links_of(d)["acme"]
    assert (l["state"], l["session"]) == ("up", "ppp1"), l
    h.pppd("ip-down", "ppp1", MTA_HOST, "acme-ppp")
    l = links_of(d)["acme"]
    assert (l["state"], l["session"]) == ("down", "ppp1"), l
    assert h.logged() == []
    qid = send(d, "bob@acme.example", "after ip-down")
    time.sleep(0.5)
    assert qid in queue_ids(d) and mta.received_for("bob@acme.example") == []


def test_daemon_down_exits_0_and_logs(make_daemon, mta, tmp_path):
    d, h = start_with_hooks(make_daemon, mta, tmp_path)
    d.stop()
    r = h.pppd("ip-up", "ppp0", MTA_HOST, "acme-ppp")
    assert r.elapsed < 5, r.elapsed
    r = h.pppd("ip-down", "ppp0", MTA_HOST, "acme-ppp")
    logged = h.logged()
    assert len(logged) == 2, logged
    for argv, what in zip(logged, ("ip-up ppp0", "ip-down ppp0")):
        assert argv[:5] == ["-p", "mail.warning", "-t", "kickmail-ppp", "--"], argv
        assert argv[5].startswith(what + ": kickq link "), argv
        assert "exit 1" in argv[5] and "cannot connect" in argv[5], argv


def test_daemon_that_does_not_answer_is_given_5_s(make_daemon, mta, tmp_path):
    """A control socket that accepts and never answers: kickq (-w 5) gives
    up after 5 s by itself, the hook exits 0 and logs kickq's reason; no
    timeout(1) is started (Hooks.run checks)."""
    d, h = start_with_hooks(make_daemon, mta, tmp_path)
    path = os.path.join(str(tmp_path), "silent.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(8)
    silent = os.path.join(str(tmp_path), "silent.conf")
    with open(d.conf) as f:
        text = f.read().replace('control = "%s"' % d.control, 'control = "%s"' % path)
    with open(silent, "w") as f:
        f.write(text)
    try:
        r = h.run("ip-up", ["ppp0", "/dev/ttyS0", "115200", "10.0.0.1", MTA_HOST, ""],
                  {"PEERNAME": "acme-ppp", "KICKMAIL_CONF": silent})
    finally:
        srv.close()
    assert 4.5 < r.elapsed < 8, r.elapsed
    logged = h.logged()
    assert len(logged) == 1, logged
    assert logged[0][-1] == ("ip-up ppp0: kickq link up failed (exit 1): kickq: no answer "
                             "from kickmaild within 5 s (-w)"), logged
    assert "acme" not in links_of(d)


def test_hostile_peer_names_are_passed_literally(make_daemon, mta, tmp_path):
    d, h = start_with_hooks(make_daemon, mta, tmp_path)
    for n, peer in enumerate(["acme ppp", "acme-ppp'; touch PWNED; '", "$(touch PWNED)",
                              "`touch PWNED`", "--help", "-s", "acme\tppp", "acme\nacme-ppp",
                              "acme\x01", "x" * 300]):
        h.pppd("ip-up", "ppp%d" % n, "127.0.0.%d" % (30 + n), peer)
        logged = h.logged()
        assert len(logged) == n + 1, (peer, logged)
        assert "ip-up ppp%d: kickq link up failed" % n in logged[-1][-1], (peer, logged)
    assert "acme" not in links_of(d) and "beta" not in links_of(d)
    assert not os.path.exists(os.path.join(h.tmp, "PWNED"))
    # the literal name is in the daemon's refusal, as given
    assert "$(touch PWNED)" in h.logged()[2][-1]
    # and a customer whose radius_user is such a name is found by it
    h.pppd("ip-up", "ppp20", MTA_HOST, HOSTILE)
    l = links_of(d)["odd"]
    assert (l["state"], l["session"]) == ("up", "ppp20"), l
    h.pppd("ip-down", "ppp20", MTA_HOST, HOSTILE)
    assert links_of(d)["odd"]["state"] == "down"
    assert not os.path.exists(os.path.join(h.tmp, "PWNED"))
    assert len(h.logged()) == 10


def test_customer_without_radius_user_is_found_by_its_name(make_daemon, mta, tmp_path):
    d, h = start_with_hooks(make_daemon, mta, tmp_path)
    h.pppd("ip-up", "ppp0", MTA_HOST, "beta")
    assert links_of(d)["beta"]["state"] == "up"
    h.pppd("ip-up", "ppp1", "127.0.0.24", "acme")     # acme has a radius_user
    assert "acme" not in links_of(d)
    assert "RADIUS user acme: no such customer" in h.logged()[-1][-1], h.logged()


def test_ipppd_auth_up_then_ip_up(make_daemon, mta, tmp_path):
    """ipppd: auth-up (interface user ipppd-user device speed remote-number)
    gives the user, ip-up (no PEERNAME) the address."""
    d, h = start_with_hooks(make_daemon, mta, tmp_path)
    qid = send(d, "bob@acme.example")
    auth = ["ippp0", "acme-ppp", "ipppd", "/dev/ippp0", "64000", "0301234567"]
    h.run("auth-up", auth, {})
    assert open(os.path.join(h.state, "ippp0")).read() == "acme-ppp\n"
    assert stat.S_IMODE(os.stat(h.state).st_mode) == 0o700
    h.run("ip-up", ["ippp0", "/dev/ippp0", "64000", "10.1.0.1", MTA_HOST, ""],
          {"IFNAME": "ippp0", "IPLOCAL": "10.1.0.1", "IPREMOTE": MTA_HOST})
    l = links_of(d)["acme"]
    assert (l["state"], l["address"], l["session"]) == ("up", MTA_HOST, "ippp0"), l
    wait_for(lambda: qid not in queue_ids(d), what="held mail delivered")
    h.run("ip-down", ["ippp0", "/dev/ippp0", "64000", "10.1.0.1", MTA_HOST, ""],
          {"IFNAME": "ippp0"})
    assert links_of(d)["acme"]["state"] == "down"
    h.run("auth-down", auth, {})
    assert not os.path.exists(os.path.join(h.state, "ippp0"))
    assert h.logged() == []


def test_ipppd_auth_down_first_takes_the_link_down(make_daemon, mta, tmp_path):
    d, h = start_with_hooks(make_daemon, mta, tmp_path)
    auth = ["ippp1", "acme-ppp", "ipppd", "/dev/ippp1", "64000", ""]
    h.run("auth-up", auth, {})
    h.run("ip-up", ["ippp1", "/dev/ippp1", "64000", "10.1.0.1", MTA_HOST, ""], {})
    assert links_of(d)["acme"]["state"] == "up"
    h.run("auth-down", auth, {})
    assert links_of(d)["acme"]["state"] == "down"
    assert not os.path.exists(os.path.join(h.state, "ippp1"))


def test_ipppd_auth_up_refuses_bad_names(make_daemon, mta, tmp_path):
    d, h = start_with_hooks(make_daemon, mta, tmp_path)
    h.run("auth-up", ["ippp0", "evil\nacme-ppp", "ipppd", "/dev/ippp0", "64000"], {})
    h.run("auth-up", ["../x", "acme-ppp", "ipppd", "/dev/ippp0", "64000"], {})
    assert not os.path.exists(h.state) or os.listdir(h.state) == []
    assert len(h.logged()) == 2, h.logged()
    h.run("ip-up", ["ippp0", "/dev/ippp0", "64000", "10.1.0.1", MTA_HOST, ""], {})
    assert "no peer name" in h.logged()[-1][-1]
    assert "acme" not in links_of(d)


def test_make_install_puts_the_hooks_and_uninstall_removes_them(tmp_path):
    dest = str(tmp_path / "dest")
    mk = ["make", "-s", "-C", ROOT, "BUILD=" + BUILD, "DESTDIR=" + dest, "PREFIX=/opt/km"]
    if not os.path.exists(os.path.join(BUILD, "kickq-config")):
        mk.append("SAN=1")          # the sanitizer build: kickq alone
    r = subprocess.run(mk + ["install"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    hooks = ["etc/ppp/ip-up.d/kickmail", "etc/ppp/ip-down.d/kickmail", "etc/ppp/auth-up",
             "etc/ppp/auth-down"] + ["opt/km/libexec/kickmail/ppp/" + h
                                     for h in ("ip-up", "ip-down", "auth-up", "auth-down")]
    for rel in hooks:
        p = os.path.join(dest, rel)
        assert stat.S_IMODE(os.stat(p).st_mode) == 0o755, rel
        with open(p) as f:
            text = f.read()
        assert "KICKQ_DEFAULT=/opt/km/sbin/kickq " in text or "auth-up" in rel, rel
    assert os.path.exists(os.path.join(dest, "opt/km/sbin/kickq"))
    # an operator's own auth-up is left alone by install and uninstall
    os.remove(os.path.join(dest, "etc/ppp/auth-up"))
    with open(os.path.join(dest, "etc/ppp/auth-up"), "w") as f:
        f.write("#!/bin/sh\n# mine\n")
    r = subprocess.run(mk + ["install"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "/etc/ppp/auth-up exists" in r.stdout, r.stdout + r.stderr
    r = subprocess.run(mk + ["uninstall"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    left = sorted(os.path.relpath(os.path.join(dp, f), dest)
                  for dp, _, fs in os.walk(dest) for f in fs)
    assert left == ["etc/ppp/auth-up"], left

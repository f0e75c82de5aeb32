"""conf/freeradius/ with Debian's FreeRADIUS 3.2: an ISP's FreeRADIUS copies
the accounting its NASes send to two kickmail nodes.

Each test starts its own FreeRADIUS (`freeradius -f -d CONFDIR`, never the
system one) on free loopback ports, with a configuration made the way
conf/freeradius/README.md tells an operator to: a copy of
/etc/freeradius/3.0 plus the snippets of conf/freeradius/, pointed at two
nodes.  radclient plays the NAS.

The nodes are RadiusStub responders (tests/integration/radiusstub.py: they
check the Request Authenticator with the node's secret and answer
Accounting-Response), so the FreeRADIUS side is tested on its own; the
end-to-end test uses two real kickmaild and is skipped, saying why, while
kickmaild does not serve `radius`.
"""
import os
import re
import shutil
import socket
import subprocess
import time

import pytest

from conftest import KICKMAILD, MTA_HOST, ROOT, customer_conf, free_port, wait_for
from radiusstub import RadiusStub

SNIPPETS = os.path.join(ROOT, "conf", "freeradius")
SYSTEM_RADDB = "/etc/freeradius/3.0"
NAS_SECRET = "nas-secret-for-tests"
NODE_SECRETS = ("node1-secret-for-tests", "node2-secret-for-tests")


from ports import free_udp_port  # noqa: E402


def _freeradius_missing():
    if not shutil.which("freeradius") or not shutil.which("radclient"):
        return "Debian's freeradius and freeradius-utils are not installed (scripts/install-deps)"
    if not os.access(os.path.join(SYSTEM_RADDB, "radiusd.conf"), os.R_OK):
        return "%s is not readable by this user (it is freerad's, mode 0640)" % SYSTEM_RADDB
    return None


pytestmark = pytest.mark.skipif(_freeradius_missing() is not None,
                                reason=str(_freeradius_missing()))


def _sub(text, pattern, repl, count=0, flags=re.M):
    """re.subn that insists on a match: a snippet or Debian file that no
    longer has the expected shape fails the test instead of passing it
    unpatched."""
    new, n = re.subn(pattern, repl, text, count=count, flags=flags)
    assert n > 0, "pattern %r not found" % pattern
    return new


def _edit(path, fn):
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(fn(text))


class FreeRadius:
    """A private FreeRADIUS: a copy of /etc/freeradius/3.0 under tmp,
    patched only where a test must be (paths, ports, run as this user),
    plus conf/freeradius/ installed as its README says, with variant
    "replicate" or "detail", pointed at nodes [(port, secret), ...]."""

    def __init__(self, tmp, variant, nodes):
        self.tmp = str(tmp)
        self.raddb = os.path.join(self.tmp, "raddb")
        self.logdir = os.path.join(self.tmp, "log")
        self.acct_port = free_port()
        self.log = os.path.join(self.tmp, "freeradius.log")
        self.proc = None
        shutil.copytree(SYSTEM_RADDB, self.raddb, symlinks=True)
        os.makedirs(self.logdir)
        os.makedirs(os.path.join(self.tmp, "run"))
        self._patch_base()
        self._install(variant, nodes)

    def _patch_base(self):
        r = self.raddb

        def radiusd(t):
            t = _sub(t, r"^raddbdir = .*$", "raddbdir = %s" % r)
            t = _sub(t, r"^logdir = .*$", "logdir = %s" % self.logdir)
            t = _sub(t, r"^run_dir = .*$", "run_dir = %s/run" % self.tmp)
            # run as the test's user, whoever that is
            t = _sub(t, r"^(\s*)(user|group) = freerad$", r"\1# \2 = freerad")
            return t
        _edit(os.path.join(r, "radiusd.conf"), radiusd)

        # The NAS (radclient) is 127.0.0.1.
        with open(os.path.join(r, "clients.conf"), "w") as f:
            f.write("client nas {\n\tipaddr = 127.0.0.1\n\tsecret = '%s'\n}\n" % NAS_SECRET)

        def default_site(t):
            # the stock site's four listen sections (auth/acct, v4/v6 on
            # every address) become one: accounting on 127.0.0.1:PORT
            t = _sub(t, r"^listen \{.*?^\}\n", "", flags=re.M | re.S)
            return _sub(t, r"^server default \{\n",
                        "server default {\nlisten {\n\ttype = acct\n\tipaddr = 127.0.0.1\n"
                        "\tport = %d\n}\n" % self.acct_port, count=1)
        _edit(os.path.join(r, "sites-available", "default"), default_site)
        _edit(os.path.join(r, "sites-available", "inner-tunnel"),
              lambda t: _sub(t, r"port = 18120", "port = %d" % free_port(), count=1))

    def _install(self, variant, nodes):
        r = self.raddb
        # kickmail-proxy.conf, pointed at the test's nodes, with short
        # timers so a dead node is noticed and revived within the test
        with open(os.path.join(SNIPPETS, "kickmail-proxy.conf")) as f:
            proxy = f.read()
        for i, (port, secret) in enumerate(nodes, 1):
            def node(m, port=port, secret=secret):
                b = m.group(0)
                b = _sub(b, r"ipaddr = \S+", "ipaddr = 127.0.0.1")
                b = _sub(b, r"port = \d+", "port = %d" % port)
                b = _sub(b, r"secret = '[^']*'", "secret = '%s'" % secret)
                b = _sub(b, r"response_window = \d+", "response_window = 1")
                b = _sub(b, r"check_interval = \d+", "check_interval = 1")
                b = _sub(b, r"check_timeout = \d+", "check_timeout = 1")
                b = _sub(b, r"zombie_period = \d+", "zombie_period = 2")
                return b
            proxy = _sub(proxy, r"^home_server kickmail%d \{.*?^\}" % i, node,
                         flags=re.M | re.S)
        with open(os.path.join(r, "kickmail-proxy.conf"), "w") as f:
            f.write(proxy)
        with open(os.path.join(r, "proxy.conf"), "a") as f:
            f.write("\n$INCLUDE kickmail-proxy.conf\n")
        shutil.copy(os.path.join(SNIPPETS, "policy.d", "kickmail"),
                    os.path.join(r, "policy.d", "kickmail"))

        policy = {"replicate": "kickmail_replicate", "detail": "kickmail_detail"}[variant]
        _edit(os.path.join(r, "sites-available", "default"),
              lambda t: _sub(t, r"^accounting \{\n", "accounting {\n\t%s\n" % policy, count=1))
        if variant == "detail":
            shutil.copy(os.path.join(SNIPPETS, "mods-available", "kickmail_detail"),
                        os.path.join(r, "mods-available", "kickmail_detail"))
            os.symlink("../mods-available/kickmail_detail",
                       os.path.join(r, "mods-enabled", "kickmail_detail"))
            for i in (1, 2):
                name = "kickmail%d" % i
                with open(os.path.join(SNIPPETS, "sites-available", name)) as f:
                    site = f.read()
                site = _sub(site, r"retry_interval = \d+", "retry_interval = 2")
                with open(os.path.join(r, "sites-available", name), "w") as f:
                    f.write(site)
                os.symlink("../sites-available/" + name, os.path.join(r, "sites-enabled", name))

    def check(self):
        """freeradius -C: the configuration parses and every module loads."""
        return subprocess.run(["freeradius", "-C", "-l", "stdout", "-d", self.raddb],
                              capture_output=True, text=True, timeout=60)

    def start(self):
        self.logf = open(self.log, "a")
        self.proc = subprocess.Popen(["freeradius", "-f", "-x", "-l", "stdout", "-d", self.raddb],
                                     stdout=self.logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        wait_for(lambda: self.proc.poll() is not None or "Ready to process requests"
                 in self.log_text(), timeout=30, what="freeradius ready")
        assert self.proc.poll() is None, "freeradius exited:\n" + self.log_text()[-6000:]
        return self

    def log_text(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if getattr(self, "logf", None):
            self.logf.close()

    def account(self, status, user, session, address=None, nas="192.0.2.1", timeout=10):
        """One Accounting-Request from the NAS (radclient); its output."""
        attrs = ['User-Name = "%s"' % user, "Acct-Status-Type = %s" % status,
                 'Acct-Session-Id = "%s"' % session, "NAS-IP-Address = %s" % nas]
        if address:
            attrs.append("Framed-IP-Address = %s" % address)
        r = subprocess.run(["radclient", "-x", "-r", "1", "-t", str(timeout),
                            "127.0.0.1:%d" % self.acct_port, "acct", NAS_SECRET],
                           input="\n".join(attrs) + "\n", capture_output=True, text=True,
                           timeout=timeout + 10)
        assert r.returncode == 0 and "Accounting-Response" in r.stdout, (
            "radclient: rc=%d\n%s%s\n--- freeradius log ---\n%s" % (
                r.returncode, r.stdout, r.stderr, self.log_text()[-6000:]))
        return r.stdout


@pytest.fixture
def make_freeradius(tmp_path):
    made = []

    def make(variant, nodes):
        fr = FreeRadius(tmp_path / ("freeradius%d" % len(made)), variant, nodes)
        made.append(fr)
        return fr
    yield make
    for fr in made:
        fr.stop()


@pytest.fixture
def nodes():
    stubs = [RadiusStub(s) for s in NODE_SECRETS]
    yield stubs
    for s in stubs:
        s.stop()


@pytest.mark.parametrize("variant", ["replicate", "detail"])
def test_snippets_load(make_freeradius, nodes, variant):
    """The snippets, installed as README.md says, pass `freeradius -C`."""
    fr = make_freeradius(variant, [(n.port, n.secret.decode()) for n in nodes])
    r = fr.check()
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout + r.stderr
    servers = ["default"] + (["kickmail1", "kickmail2"] if variant == "detail" else [])
    for s in servers:
        assert re.search(r"Loaded virtual server <?%s>?\n" % s, out), out


def _node_args(nodes):
    return [(n.port, n.secret.decode()) for n in nodes]


def _wait_starts(node, user, n=1, timeout=10):
    return wait_for(lambda: len(node.starts(user)) >= n and node.starts(user),
                    timeout=timeout, what="%d Start(s) for %s at node :%d" % (n, user, node.port))


def _assert_copied(start, session):
    """A node's copy is the NAS's packet: user, address, session and the
    NAS's own address (kickmail's session is NAS/Acct-Session-Id)."""
    assert start["Framed-IP-Address"] == "127.0.0.44"
    assert start["Acct-Session-Id"] == session
    assert start["NAS-IP-Address"] == "192.0.2.1"


@pytest.mark.parametrize("variant", ["replicate", "detail"])
def test_start_reaches_both_nodes(make_freeradius, nodes, variant):
    """One Accounting-Start from the NAS reaches both nodes, each signed
    with its own secret (the stubs drop a wrong authenticator)."""
    fr = make_freeradius(variant, _node_args(nodes)).start()
    fr.account("Start", "acme", "S-1", "127.0.0.44")
    for n in nodes:
        starts = _wait_starts(n, "acme")
        assert len(starts) == 1, starts
        _assert_copied(starts[0], "S-1")
    # Interim-Update and Stop follow the same way
    fr.account("Interim-Update", "acme", "S-1", "127.0.0.44")
    fr.account("Stop", "acme", "S-1", "127.0.0.44")
    for n in nodes:
        wait_for(lambda: [r["Acct-Status-Type"] for r in n.decoded()
                          if r.get("User-Name") == "acme"] == ["Start", "Interim-Update", "Stop"],
                 what="Start, Interim-Update, Stop at node :%d (log: %s)" % (n.port, fr.log))
        assert n.bad == 0


def test_replicate_does_not_wait_for_a_dead_node(make_freeradius, nodes):
    """(a) fire-and-forget: with node 2 silent the NAS is answered at once
    and node 1 has the Start; node 2's copy was sent once and is lost to
    it (nothing is resent when it is back)."""
    nodes[1].answering = False
    fr = make_freeradius("replicate", _node_args(nodes)).start()
    t0 = time.monotonic()
    fr.account("Start", "acme", "S-1", "127.0.0.44")
    assert time.monotonic() - t0 < 1.0
    _assert_copied(_wait_starts(nodes[0], "acme")[0], "S-1")
    wait_for(lambda: nodes[1].ignored == 1, what="node 2 sent one copy")
    nodes[1].answering = True
    time.sleep(3)
    assert nodes[1].starts("acme") == []


def test_detail_node_down_catches_up(make_freeradius, nodes):
    """(b) one reader per node: node 2 silent while node 1 gets Start then
    Stop; when node 2 answers again it gets both, in order, Acct-Delay-Time
    saying how late they are (kickmail ignores a Start older than the
    customer's link_ttl)."""
    nodes[1].answering = False
    fr = make_freeradius("detail", _node_args(nodes)).start()
    t0 = time.monotonic()
    fr.account("Start", "acme", "S-1", "127.0.0.44")
    fr.account("Stop", "acme", "S-1", "127.0.0.44")
    wait_for(lambda: [r["Acct-Status-Type"] for r in nodes[0].decoded()] == ["Start", "Stop"],
             what="node 1 has Start and Stop (log: %s)" % fr.log)
    wait_for(lambda: nodes[1].ignored >= 2, timeout=15,
             what="node 2 was sent the Start at least twice (a retry)")
    # on until FreeRADIUS has marked node 2 dead (no answer for
    # zombie_period): the reader keeps its records, it does not drop them
    wait_for(lambda: re.search(r"Marking home server \S+ port %d as dead" % nodes[1].port,
                               fr.log_text()), timeout=30, what="node 2 marked dead")
    assert [r for r in nodes[1].decoded() if r.get("User-Name") == "acme"] == []
    down = time.monotonic() - t0
    nodes[1].answering = True

    def acme():
        return [r for r in nodes[1].decoded() if r.get("User-Name") == "acme"]
    # revived by its answers to status checks (3 of them, check_interval apart)
    wait_for(lambda: len(acme()) >= 2, timeout=60,
             what="node 2 caught up (log: %s)" % fr.log)
    got = acme()
    assert [r["Acct-Status-Type"] for r in got] == ["Start", "Stop"], got
    _assert_copied(got[0], "S-1")
    assert got[0].get("Acct-Delay-Time", 0) >= int(down), (got[0], down)
    assert nodes[1].bad == 0
    # node 1 got each record once
    assert [r["Acct-Status-Type"] for r in nodes[0].decoded()] == ["Start", "Stop"]


def _kickmaild_not_serving_radius(tmp_path):
    """None when kickmaild serves `radius`, else why not (kickmaild -n
    reports sections it does not serve)."""
    conf = tmp_path / "radius-probe.conf"
    conf.write_text('hostname = "mx.test.example"\nspool = "%s/spool"\n'
                    'control = "%s/control.sock"\npostmaster = "noc@isp.example"\n'
                    'smtp { listen = {"127.0.0.1:%d"} }\n'
                    'radius {\n  listen = {"127.0.0.1:%d"}\n'
                    '  client "127.0.0.1" { secret = \'x\' }\n}\n'
                    % (tmp_path, tmp_path, free_port(), free_udp_port()))
    r = subprocess.run([KICKMAILD, "-n", "-c", str(conf)], capture_output=True, text=True,
                       timeout=30)
    out = r.stdout + r.stderr
    assert r.returncode == 0, "kickmaild -n refuses a radius section: " + out
    if re.search(r"not served.*radius", out):
        return "kickmaild does not serve radius yet (kickmaild -n: %s)" % out.strip()
    return None


@pytest.mark.parametrize("variant", ["replicate", "detail"])
def test_end_to_end_two_kickmail_nodes(make_freeradius, make_daemon, mta, tmp_path, variant):
    """Two real kickmaild behind FreeRADIUS: each holds mail for acme; one
    Accounting-Start from the NAS to FreeRADIUS raises acme's link on BOTH
    (source radius, at Framed-IP-Address, session NAS/Acct-Session-Id) and
    both deliver their held mail."""
    why = _kickmaild_not_serving_radius(tmp_path)
    if why:
        pytest.skip(why)
    daemons = []
    for i, secret in enumerate(NODE_SECRETS):
        port = free_udp_port()
        d = make_daemon(
            customers=customer_conf("acme", ["acme.example"], deliver="link",
                                    port=mta.port, radius_user="acme-ppp", link_ttl="1h"),
            extra='radius {\n  listen = {"127.0.0.1:%d"}\n'
                  '  client "127.0.0.1" { secret = \'%s\' }\n}\n' % (port, secret))
        d.radius_port = port
        d.start()
        d.send("bob@acme.example")
        daemons.append(d)
    for d in daemons:
        assert d.kickq_json("links") == [] or d.kickq_json("links")[0]["state"] == "down"
    fr = make_freeradius(variant, [(d.radius_port, s) for d, s in zip(daemons, NODE_SECRETS)])
    fr.start()
    fr.account("Start", "acme-ppp", "S-1", MTA_HOST)
    for d in daemons:
        links = wait_for(lambda: [l for l in d.kickq_json("links")
                                  if l["customer"] == "acme" and l["state"] == "up"],
                         timeout=15, what="acme up on node :%d" % d.radius_port)
        assert links[0]["address"] == MTA_HOST
        assert links[0]["source"] == "radius"
        assert links[0]["session"] == "192.0.2.1/S-1"
    msgs = mta.wait_messages(2, timeout=20)
    assert sorted(len(m.rcpt_tos) for m in msgs) == [1, 1]
    assert all(m.rcpt_tos == ["bob@acme.example"] for m in msgs)
    for d in daemons:
        wait_for(lambda: "Mail queue is empty" in d.kickq("list").stdout,
                 what="node :%d queue empty" % d.radius_port)

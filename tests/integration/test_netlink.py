"""The netlink watcher (netlink { enabled = true }) against the real kernel.

Each test runs one scenario of netlink_ns.py inside a network namespace made
for it (`unshare -n`): the daemon, the customer's mail server and dummy
interfaces named like customers' `interface` all live there, so nothing
touches the machine's own interfaces and no traffic leaves.  Needs root
(CI runs as root) and unshare(1); skipped otherwise, with the reason.
"""
import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import BUILD, HERE, KICKMAILD

SCRIPT = os.path.join(HERE, "netlink_ns.py")


def _skip_reason():
    if os.geteuid() != 0:
        return "needs root to make a network namespace (unshare -n)"
    if not shutil.which("unshare") or not shutil.which("ip"):
        return "needs unshare(1) and ip(8)"
    r = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True)
    if r.returncode != 0:
        return "unshare -n does not work here: %s" % r.stderr.strip()
    return None


_REASON = _skip_reason()
needs_ns = pytest.mark.skipif(_REASON is not None, reason=str(_REASON))


def run_scenario(name, tmp_path):
    env = dict(os.environ, KICKMAIL_BUILD=BUILD)
    r = subprocess.run(["unshare", "-n", sys.executable, SCRIPT, name, str(tmp_path)],
                       capture_output=True, text=True, timeout=120, env=env)
    lines = [l for l in r.stdout.splitlines() if l.startswith("{")]
    assert lines, "scenario %s printed no result (rc=%d):\n%s\n%s" % (
        name, r.returncode, r.stdout, r.stderr)
    out = json.loads(lines[-1])
    assert out["ok"], "%s\n--- kickmaild log ---\n%s" % (out.get("error"), out.get("log", ""))


@needs_ns
def test_address_up_down_link_del(tmp_path):
    """Address added: up at the peer (source netlink, session = interface),
    held mail delivered; address deleted, IFF_UP cleared, interface deleted:
    down; an IPv6 point-to-point peer too."""
    run_scenario("updown", tmp_path)


@needs_ns
def test_dump_at_start(tmp_path):
    """An interface up before kickmaild started is seen; a netlink link whose
    interface vanished while kickmaild was stopped goes down at start."""
    run_scenario("dump", tmp_path)


@needs_ns
def test_other_interfaces_ignored(tmp_path):
    """An interface no customer names, and an address without a peer, raise
    nothing and log nothing."""
    run_scenario("others", tmp_path)


@needs_ns
def test_other_session_not_dropped(tmp_path):
    """A link raised by another source is not dropped by the netlink down of
    an interface (own_session)."""
    run_scenario("session", tmp_path)


@needs_ns
def test_reload_enables_and_disables(tmp_path):
    run_scenario("reload", tmp_path)


@pytest.mark.parametrize("section, rc, out", [
    ("", 0, "netlink watcher: not running (not enabled)"),
    ("netlink { enabled = false }", 0, "netlink watcher: not running (not enabled)"),
    ("netlink { enabled = true }", 0, "netlink watcher: enabled"),
    ("netlink {\n  enabled = sometimes\n}", 1, "kickmail.conf:3: invalid boolean value"),
    ("netlink {\n  interval = 5\n}", 1, "kickmail.conf:3: unknown option 'interval'"),
])
def test_check_says_whether_it_runs(tmp_path, section, rc, out):
    """kickmaild -n checks the section (FILE:LINE errors) and says whether the
    watcher would run."""
    conf = tmp_path / "kickmail.conf"
    conf.write_text('hostname = "mx.test.example"\n%s\n' % section)
    r = subprocess.run([KICKMAILD, "-n", "-c", str(conf)], capture_output=True, text=True)
    assert r.returncode == rc, r.stdout + r.stderr
    assert out in r.stdout + r.stderr

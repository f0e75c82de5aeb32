"""The netlink watcher's scenarios, run inside a network namespace of their
own: test_netlink.py starts `unshare -n python3 netlink_ns.py SCENARIO
TMPDIR`.  Inside, the loopback is brought up, kickmaild and the customer's
mail server (aiosmtpd on 127.0.0.23, see conftest.MTA) run, and dummy
(or tun) interfaces stand for PPP links: `ip addr add 127.0.0.2/32 peer
127.0.0.23/32 dev ippp3` is what pppd does when a call comes up (IFA_LOCAL
ours, IFA_ADDRESS the customer's).  Every address is in 127.0.0.0/8 (or the
IPv6 documentation prefix, never reached): nothing leaves the namespace,
which has no other interface anyway.

Prints one JSON line: {"ok": true} or {"ok": false, "error": ..., "log": the
end of kickmaild's log}.  Not collected by pytest (no test_ prefix).
"""
import json
import os
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import conftest  # noqa: E402
from conftest import MTA, Daemon, customer_conf, links_of, wait_for  # noqa: E402

PEER = "127.0.0.23"     # conftest.MTA_HOST: where the customer's server listens


def ip(*args):
    subprocess.run(["ip"] + list(args), check=True, capture_output=True, timeout=10)


def setup_namespace():
    """The loopback up, with the peer addresses the tests use as /32s of
    its own: a point-to-point address adds a /32 route to its peer through
    the interface, which would otherwise win over lo's 127.0.0.0/8 and take
    the customer's server (listening on lo) out of reach."""
    ip("link", "set", "lo", "up")
    for last in (23, 24, 25, 26):
        ip("addr", "add", "127.0.0.%d/32" % last, "dev", "lo")


def make_iface(name):
    """A dummy interface, or where the kernel has no dummy driver a tun
    interface (point-to-point like PPP's; /dev/net/tun), up."""
    r = subprocess.run(["ip", "link", "add", name, "type", "dummy"],
                       capture_output=True, timeout=10)
    if r.returncode != 0:
        ip("tuntap", "add", "dev", name, "mode", "tun")
    ip("link", "set", name, "up")


def ppp_up(name, local="127.0.0.2", peer=PEER):
    """An interface that looks like a PPP link after IPCP: up, with a
    point-to-point address whose peer is the customer's."""
    make_iface(name)
    ip("addr", "add", "%s/32" % local, "peer", "%s/32" % peer, "dev", name)


def link(d, customer):
    return links_of(d).get(customer, {})


def wait_link(d, customer, state, address=None, source=None, session=None, timeout=10):
    def ok():
        l = link(d, customer)
        return (l.get("state") == state and
                (address is None or l.get("address") == address) and
                (source is None or l.get("source") == source) and
                (session is None or l.get("session") == session)) and l
    try:
        return wait_for(ok, timeout=timeout, what="link of %s %s" % (customer, state))
    except AssertionError:
        raise AssertionError("link of %s: want %s %s %s %s, have %r" % (
            customer, state, address, source, session, link(d, customer)))


def daemon(tmp, mta, extra_customers="", enabled=True):
    cust = customer_conf("acme", ["acme.example"], deliver="link", port=mta.port,
                         interface="ippp3", retry_min="1s", link_ttl="1h")
    cust += customer_conf("beta", ["beta.example"], deliver="link", port=mta.port,
                          interface="ippp4", retry_min="1s")
    cust += extra_customers
    extra = "netlink { enabled = %s }\n" % ("true" if enabled else "false")
    return Daemon(os.path.join(tmp, "d"), customers=cust, extra=extra)


# ---- scenarios ----

def sc_updown(tmp, d, mta):
    """Address added -> link up at the peer, held mail delivered; address
    deleted -> down; IFF_UP cleared -> down, set again -> up; link deleted ->
    down."""
    d.start()
    qid = d.send(["bob@acme.example"])
    assert link(d, "acme").get("state", "down") == "down"
    ppp_up("ippp3")
    l = wait_link(d, "acme", "up", PEER, "netlink", "ippp3")
    assert l["expires"] in (None, 0, "-", ""), l     # the kernel says when it ends
    mta.wait_messages(1)
    assert mta.messages[0].rcpt_tos == ["bob@acme.example"], qid
    ip("addr", "del", "127.0.0.2/32", "peer", "%s/32" % PEER, "dev", "ippp3")
    wait_link(d, "acme", "down")
    ip("addr", "add", "127.0.0.2/32", "peer", "%s/32" % PEER, "dev", "ippp3")
    wait_link(d, "acme", "up", PEER, "netlink", "ippp3")
    ip("link", "set", "ippp3", "down")
    wait_link(d, "acme", "down")
    ip("link", "set", "ippp3", "up")            # IPv4 addresses stay while down
    wait_link(d, "acme", "up", PEER, "netlink", "ippp3")
    ip("link", "del", "ippp3")
    wait_link(d, "acme", "down")
    # an IPv6 point-to-point address: the peer is the link's address
    make_iface("ippp3")
    ip("-6", "addr", "add", "2001:db8::1/128", "peer", "2001:db8::2/128", "dev", "ippp3")
    wait_link(d, "acme", "up", "2001:db8::2", "netlink", "ippp3")
    ip("link", "del", "ippp3")
    wait_link(d, "acme", "down")


def sc_dump(tmp, d, mta):
    """An interface up before kickmaild started is seen at start (the dump);
    a netlink link left up by an earlier run whose interface is gone goes
    down at start (the reconciliation)."""
    ppp_up("ippp3")
    d.start()
    wait_link(d, "acme", "up", PEER, "netlink", "ippp3")
    ppp_up("ippp4", local="127.0.0.3", peer="127.0.0.24")
    wait_link(d, "beta", "up", "127.0.0.24", "netlink", "ippp4")
    d.stop()
    ip("link", "del", "ippp4")                  # gone while kickmaild was stopped
    d.start()
    wait_link(d, "beta", "down")
    wait_link(d, "acme", "up", PEER, "netlink", "ippp3")
    qid = d.send(["bob@acme.example"])
    mta.wait_messages(1)
    assert qid


def sc_others(tmp, d, mta):
    """Interfaces no customer names, and an address without a peer on a
    customer's interface, raise nothing."""
    d.start()
    start = len(d.log_text())
    ppp_up("eth9", local="127.0.0.4", peer="127.0.0.25")
    make_iface("ippp4")
    ip("addr", "add", "127.0.0.5/8", "dev", "ippp4")      # ours, no peer
    # the barrier: a customer's link raised after those events were read
    ppp_up("ippp3")
    wait_link(d, "acme", "up", PEER, "netlink", "ippp3")
    links = links_of(d)
    assert set(links) == {"acme"}, links
    log = d.log_text()[start:]
    assert "eth9" not in log and "127.0.0.25" not in log, log


def sc_session(tmp, d, mta):
    """A link raised by another source (kickq, as a RADIUS Start or ip-up
    would) is not dropped by the netlink down of an interface: the down
    holds only for the session netlink raised."""
    d.start()
    ppp_up("ippp3")
    wait_link(d, "acme", "up", PEER, "netlink", "ippp3")
    d.kickq("link", "up", "acme", "127.0.0.26")         # a newer link, other source
    wait_link(d, "acme", "up", "127.0.0.26", "kickq")
    ip("link", "del", "ippp3")
    # the netlink down was applied (and did nothing): wait for its trace,
    # then check the link is still the kickq one
    ppp_up("ippp4", local="127.0.0.3", peer="127.0.0.24")
    wait_link(d, "beta", "up", "127.0.0.24", "netlink", "ippp4")
    l = link(d, "acme")
    assert l["state"] == "up" and l["source"] == "kickq" and l["address"] == "127.0.0.26", l


def sc_reload(tmp, d, mta):
    """Enabled by a reload: the dump raises what is up; disabled by a reload:
    netlink's links go down, a kickq link stays."""
    d.start()
    ppp_up("ippp3")
    time.sleep(0.3)
    assert link(d, "acme").get("state", "down") == "down"
    d.write_conf(d.conf_text().replace("enabled = false", "enabled = true"))
    d.kickq("reload")
    wait_link(d, "acme", "up", PEER, "netlink", "ippp3")
    d.kickq("link", "up", "beta", "127.0.0.24")
    d.write_conf(d.conf_text().replace("enabled = true", "enabled = false"))
    d.kickq("reload")
    wait_link(d, "acme", "down")
    assert link(d, "beta")["state"] == "up"
    ip("link", "del", "ippp3")


SCENARIOS = {"updown": sc_updown, "dump": sc_dump, "others": sc_others,
             "session": sc_session, "reload": sc_reload}


def main():
    name, tmp = sys.argv[1], sys.argv[2]
    setup_namespace()
    mta = MTA(os.path.join(tmp, "mta"))
    os.makedirs(mta.tmp, exist_ok=True)
    mta.start()
    os.makedirs(os.path.join(tmp, "d"), exist_ok=True)
    d = daemon(tmp, mta, enabled=name != "reload")
    out = {"ok": True}
    try:
        SCENARIOS[name](tmp, d, mta)
    except Exception:
        out = {"ok": False, "error": traceback.format_exc()}
    finally:
        try:
            d.stop(check=out["ok"])
        except Exception:
            out = {"ok": False, "error": traceback.format_exc()}
        mta.stop()
    if not out["ok"]:
        try:
            out["log"] = d.log_text()[-6000:]
        except OSError:
            pass
    print(json.dumps(out))


if __name__ == "__main__":
    assert conftest.MTA_HOST == PEER
    main()

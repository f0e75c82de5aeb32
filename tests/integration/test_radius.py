"""RADIUS accounting listener: the real radclient plays the access server
(Start, Interim, Stop, Accounting-Off, wrong secret), Python sockets for what
radclient cannot do (another source address, the same packet twice, broken
datagrams, an exact Acct-Delay-Time)."""
import hashlib
import os
import socket
import struct
import subprocess
import time

import pytest

from conftest import KICKMAILD, MTA_HOST, customer_conf, free_port, links_of, wait_for

SECRET = "testing123"
RADCLIENT = "/usr/bin/radclient"

pytestmark = pytest.mark.skipif(not os.path.exists(RADCLIENT),
                                reason="radclient (freeradius-utils) not installed")


from ports import free_udp_port  # noqa: E402


def conf(mta, acme_ttl="12h"):
    return (customer_conf("acme", ["acme.example"], port=mta.port, link_ttl=acme_ttl,
                          radius_user="acme-ppp", retry_min="1s", retry_max="2s")
            + customer_conf("beta", ["beta.example"], port=mta.port))


def start(make_daemon, mta, clients=('client "127.0.0.1" { secret = \'%s\' }' % SECRET,),
          **kw):
    port = free_udp_port()
    extra = 'radius {\n  listen = {"127.0.0.1:%d"}\n  %s\n}\n' % (port, "\n  ".join(clients))
    d = make_daemon(customers=conf(mta, **kw), extra=extra).start()
    d.radius_port = port
    return d


def radclient(d, attrs, secret=SECRET, kind="acct"):
    """Runs radclient once (no retry, 2 s); (exit code, output)."""
    text = "\n".join("%s = %s" % kv for kv in attrs.items()) + "\n"
    r = subprocess.run([RADCLIENT, "-x", "-r", "1", "-t", "2",
                        "127.0.0.1:%d" % d.radius_port, kind, secret],
                       input=text, capture_output=True, text=True, timeout=20)
    return r.returncode, r.stdout + r.stderr


def acct(status, user="acme-ppp", session="S1", address=None, nas="nas1", **more):
    a = {"Acct-Status-Type": status, "User-Name": '"%s"' % user,
         "Acct-Session-Id": '"%s"' % session, "NAS-Identifier": '"%s"' % nas}
    if address:
        a["Framed-IP-Address"] = address
    a.update(more)
    return a


def stats(d):
    out = d.kickq("stats").stdout
    return dict(line.split(None, 1) for line in out.splitlines() if line.strip())


def send_mail(d, rcpt, subject):
    return d.send(rcpt, body="From: <a@sender.example>\r\nTo: <%s>\r\nSubject: %s\r\n\r\n"
                  "hello\r\n" % (rcpt, subject))


# ---- raw packets (what radclient cannot do) ----

def attr(t, v):
    return bytes([t, len(v) + 2]) + v


def packet(attrs, ident=1, secret=SECRET, code=4):
    body = b"".join(attrs)
    hdr = bytes([code, ident]) + struct.pack(">H", 20 + len(body))
    auth = hashlib.md5(hdr + b"\0" * 16 + body + secret.encode()).digest()
    return hdr + auth + body


def raw_acct(status, user=b"acme-ppp", session=b"R1", address=None, delay=None, nas=b"nas1"):
    a = [attr(40, struct.pack(">I", status)), attr(1, user), attr(44, session),
         attr(32, nas)]
    if address:
        a.append(attr(8, socket.inet_aton(address)))
    if delay is not None:
        a.append(attr(41, struct.pack(">I", delay)))
    return a


def udp(source="127.0.0.1"):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((source, 0))
    s.settimeout(2)
    return s


def ask(s, d, pkt, timeout=2.0):
    """Sends pkt; the reply or None."""
    s.settimeout(timeout)
    s.sendto(pkt, ("127.0.0.1", d.radius_port))
    try:
        return s.recv(4096)
    except socket.timeout:
        return None


def response_ok(reply, pkt, secret=SECRET):
    want = hashlib.md5(bytes([5, pkt[1]]) + struct.pack(">H", 20) + pkt[4:20]
                       + secret.encode()).digest()
    return reply is not None and reply[:4] == bytes([5, pkt[1], 0, 20]) and reply[4:] == want


# ---- tests ----

def test_start_delivers_held_mail(make_daemon, mta):
    d = start(make_daemon, mta)
    send_mail(d, "bob@acme.example", "held")
    time.sleep(0.3)
    assert mta.received_for("bob@acme.example") == []
    rc, out = radclient(d, acct("Start", address=MTA_HOST))
    assert rc == 0 and "Accounting-Response" in out, out
    l = links_of(d)["acme"]
    # the answer comes after the change is durable: the link shows it at once
    assert l["state"] == "up" and l["address"] == MTA_HOST and l["source"] == "radius", l
    assert l["session"] == "nas1/S1", l
    wait_for(lambda: mta.received_for("bob@acme.example"), what="held mail delivered")
    assert "nas1/S1" in d.kickq("links").stdout
    st = stats(d)
    assert st["radius.requests.start"] == "1" and st["radius.answered"] == "1", st
    assert st["link_events.radius"] == "1"


def test_interim_refreshes_and_stop_drops(make_daemon, mta):
    d = start(make_daemon, mta, acme_ttl="1h")
    assert radclient(d, acct("Start", address=MTA_HOST))[0] == 0
    e1 = links_of(d)["acme"]["expires"]
    time.sleep(1.1)
    rc, out = radclient(d, acct("Interim-Update", address=MTA_HOST))
    assert rc == 0, out
    l = links_of(d)["acme"]
    assert l["state"] == "up" and l["expires"] >= e1 + 1, (e1, l)
    rc, out = radclient(d, acct("Stop"))
    assert rc == 0, out
    l = links_of(d)["acme"]
    assert l["state"] == "down" and l["source"] == "radius", l
    st = stats(d)
    assert st["radius.requests.interim"] == "1" and st["radius.requests.stop"] == "1"


def test_late_stop_of_an_old_session(make_daemon, mta):
    d = start(make_daemon, mta)
    assert radclient(d, acct("Start", session="OLD", address=MTA_HOST))[0] == 0
    assert radclient(d, acct("Start", session="NEW", address=MTA_HOST))[0] == 0
    assert links_of(d)["acme"]["session"] == "nas1/NEW"
    rc, out = radclient(d, acct("Stop", session="OLD"))
    assert rc == 0, out                                  # answered
    l = links_of(d)["acme"]
    assert l["state"] == "up" and l["session"] == "nas1/NEW", l
    # and a resent Start of the stopped session raises nothing
    rc, out = radclient(d, acct("Start", session="OLD", address=MTA_HOST))
    assert rc == 0, out
    assert links_of(d)["acme"]["session"] == "nas1/NEW"
    assert stats(d)["radius.ignored.stale"] == "1"


def test_wrong_secret_gets_no_answer(make_daemon, mta):
    d = start(make_daemon, mta)
    rc, out = radclient(d, acct("Start", address=MTA_HOST), secret="wrong")
    assert rc != 0 and "Accounting-Response" not in out, out
    assert "acme" not in links_of(d) or links_of(d)["acme"]["state"] == "down"
    st = stats(d)
    assert st["radius.dropped.bad_authenticator"] == "1" and st["radius.answered"] == "0"
    d.wait_log(r"radius: from 127\.0\.0\.1: wrong Request Authenticator")
    assert "wrong" not in d.log_text().split("Authenticator", 1)[1].split("\n")[0]
    # logged once a minute per source, however many come
    s = udp()
    for i in range(5):
        assert ask(s, d, packet(raw_acct(1), ident=i, secret="bad"), timeout=0.2) is None
    assert stats(d)["radius.dropped.bad_authenticator"] == "6"
    assert d.log_text().count("wrong Request Authenticator") == 1


def test_unknown_client_address(make_daemon, mta):
    d = start(make_daemon, mta)
    s = udp("127.0.0.2")
    assert ask(s, d, packet(raw_acct(1, address=MTA_HOST))) is None
    assert "acme" not in links_of(d) or links_of(d)["acme"]["state"] == "down"
    assert stats(d)["radius.dropped.unknown_client"] == "1"
    d.wait_log(r"radius: from 127\.0\.0\.2: no radius client entry")


def test_prefix_client_and_longest_prefix(make_daemon, mta):
    d = start(make_daemon, mta, clients=(
        'client "127.0.0.0/8" { secret = \'wide\' }',
        'client "127.0.0.2/31" { secret = \'narrow\' }'))
    s = udp("127.0.0.3")                    # in both: the /31 wins
    assert ask(s, d, packet(raw_acct(1, address=MTA_HOST), secret="wide")) is None
    pkt = packet(raw_acct(1, address=MTA_HOST), ident=2, secret="narrow")
    assert response_ok(ask(s, d, pkt), pkt, "narrow")
    s = udp("127.0.0.5")                    # only in the /8
    pkt = packet(raw_acct(3, address=MTA_HOST), ident=3, secret="wide")
    assert response_ok(ask(s, d, pkt), pkt, "wide")
    assert links_of(d)["acme"]["state"] == "up"


def test_retransmission_answered_once_acted(make_daemon, mta):
    d = start(make_daemon, mta)
    s = udp()
    pkt = packet(raw_acct(1, address=MTA_HOST), ident=9)
    r1 = ask(s, d, pkt)
    assert response_ok(r1, pkt)
    since = links_of(d)["acme"]["since"]
    n = stats(d)["link_events.radius"]
    time.sleep(1.1)
    r2 = ask(s, d, pkt)
    assert r2 == r1
    assert links_of(d)["acme"]["since"] == since          # not acted again
    st = stats(d)
    assert st["link_events.radius"] == n and st["radius.retransmissions"] == "1"
    assert st["radius.requests.start"] == "1" and st["radius.answered"] == "2"


def test_accounting_off_drops_the_nas_links(make_daemon, mta):
    d = start(make_daemon, mta)
    assert radclient(d, acct("Start", address=MTA_HOST, nas="nas1"))[0] == 0
    assert radclient(d, acct("Start", user="beta", session="B", address="127.0.0.24",
                             nas="nas2"))[0] == 0
    rc, out = radclient(d, {"Acct-Status-Type": "Accounting-Off",
                            "NAS-Identifier": '"nas1"'})
    assert rc == 0, out
    links = links_of(d)
    assert links["acme"]["state"] == "down", links
    assert links["beta"]["state"] == "up", links            # another NAS's
    assert stats(d)["radius.requests.off"] == "1"


def test_unknown_user_answered_no_change(make_daemon, mta):
    d = start(make_daemon, mta)
    for i in range(3):
        rc, out = radclient(d, acct("Start", user="nobody", session="U%d" % i,
                                    address=MTA_HOST))
        assert rc == 0, out
    assert all(l["state"] == "down" for l in links_of(d).values())
    assert stats(d)["radius.ignored.unknown_user"] == "3"
    d.wait_log(r"unknown User-Name nobody")
    assert d.log_text().count("unknown User-Name nobody") == 1     # once per hour
    # matched case-insensitively; a customer without radius_user by its name
    assert radclient(d, acct("Start", user="ACME-PPP", address=MTA_HOST))[0] == 0
    assert links_of(d)["acme"]["state"] == "up"
    assert radclient(d, acct("Start", user="Beta", session="B", address="127.0.0.24"))[0] == 0
    assert links_of(d)["beta"]["state"] == "up"


def test_start_without_address(make_daemon, mta):
    d = start(make_daemon, mta)
    rc, out = radclient(d, acct("Start"))
    assert rc == 0, out
    assert "acme" not in links_of(d) or links_of(d)["acme"]["state"] == "down"
    assert stats(d)["radius.ignored.no_address"] == "1"


def test_acct_delay_time(make_daemon, mta):
    d = start(make_daemon, mta, acme_ttl="1m")
    s = udp()
    pkt = packet(raw_acct(1, session=b"D1", address=MTA_HOST, delay=60), ident=1)
    assert response_ok(ask(s, d, pkt), pkt)               # answered,
    assert "acme" not in links_of(d) or links_of(d)["acme"]["state"] == "down"  # nothing raised
    pkt = packet(raw_acct(1, session=b"D2", address=MTA_HOST, delay=59), ident=2)
    assert response_ok(ask(s, d, pkt), pkt)
    assert links_of(d)["acme"]["state"] == "up"


def test_malformed_burst_leaves_it_answering(make_daemon, mta):
    d = start(make_daemon, mta)
    s = udp()
    good = packet(raw_acct(1, address=MTA_HOST))
    bad = [b"", b"\x04", good[:19], good[:-1], good + b"\0",
           good[:2] + b"\x10\x01" + good[4:],             # Length 4097
           good[:20] + b"\x28\x00" + good[22:],           # attribute length 0
           good[:20] + b"\x28\x01" + good[22:],           # attribute length 1
           good[:20] + b"\x28\xff" + good[22:],           # past the end
           packet(raw_acct(1) + [attr(1, b"twice")]),     # User-Name twice
           packet([attr(8, b"\x7f\0\0")]),               # 3-byte address
           bytes(range(256)) * 17]
    for i in range(300):
        s.sendto(bad[i % len(bad)], ("127.0.0.1", d.radius_port))
    pkt = packet(raw_acct(1, address=MTA_HOST), ident=77)
    # sent again as a NAS does: the kernel may have dropped the first copy
    # (or part of the burst) while the socket buffer was full
    reply = None
    for _ in range(3):
        reply = reply or ask(s, d, pkt)
    assert response_ok(reply, pkt)
    assert links_of(d)["acme"]["state"] == "up"
    st = stats(d)
    burst = int(st["radius.dropped.malformed"])
    assert 0 < burst <= 300, st
    assert st["radius.requests.start"] == "1", st          # acted on once
    # each kind counted exactly, one at a time
    for i, b in enumerate(bad):
        s.sendto(b, ("127.0.0.1", d.radius_port))
        wait_for(lambda: stats(d)["radius.dropped.malformed"] == str(burst + i + 1),
                 what="malformed datagram %d counted" % i)
    assert d.log_text().count("malformed packet") <= 2


def test_one_address_one_customer(make_daemon, mta):
    d = start(make_daemon, mta)
    assert radclient(d, acct("Start", address=MTA_HOST))[0] == 0
    assert radclient(d, acct("Start", user="beta", session="B", address=MTA_HOST))[0] == 0
    links = links_of(d)
    assert links["beta"]["state"] == "up" and links["beta"]["address"] == MTA_HOST
    assert links["acme"]["state"] == "down", links["acme"]


def test_reload_applies_new_secret(make_daemon, mta):
    d = start(make_daemon, mta)
    d.extra = d.extra.replace(SECRET, "newsecret")
    d.write_conf()
    d.kickq("reload")
    assert radclient(d, acct("Start", address=MTA_HOST))[0] != 0
    rc, out = radclient(d, acct("Start", address=MTA_HOST), secret="newsecret")
    assert rc == 0, out
    assert links_of(d)["acme"]["state"] == "up"


def test_config_check(make_daemon, tmp_path):
    d = make_daemon(extra='radius {\n  listen = {"127.0.0.1:%d"}\n'
                          '  client "10.0.0.0/8" { secret = \'a\' }\n'
                          '  client "10.1.2.3/8" { secret = \'b\' }\n}\n' % free_port())
    r = subprocess.run([KICKMAILD, "-n", "-c", d.conf], capture_output=True, text=True)
    assert r.returncode == 1
    assert "is the same as '10.0.0.0/8'" in r.stderr and d.conf + ":" in r.stderr, r.stderr


def test_ipv6_listener_and_client(make_daemon, mta):
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    port = s.getsockname()[1]
    s.close()
    extra = ('radius {\n  listen = {"[::1]:%d"}\n  client "::1/128" { secret = \'six\' }\n}\n'
             % port)
    d = make_daemon(customers=conf(mta), extra=extra).start()
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.settimeout(2)
    pkt = packet(raw_acct(1, session=b"V6", address=MTA_HOST, nas=b"nas6"), secret="six")
    s.sendto(pkt, ("::1", port))
    assert response_ok(s.recv(4096), pkt, "six")
    l = links_of(d)["acme"]
    assert l["state"] == "up" and l["session"] == "nas6/V6", l

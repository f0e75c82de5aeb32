"""AutoTURN: a customer with autoturn = true that authenticates (a POP3
login of its domain maildrop, SMTP AUTH on submission) has its link raised
at the session's peer address, source autoturn, and its held mail goes to
its server there (the MTA sink on 127.0.0.23, the customer's port).  A
customer without autoturn, a failed login and a maildrop user's login raise
nothing; a plain connection from inside autoturn_networks raises it, one
from outside does not; the same from a version 3 customer map, and a
version 2 map still loads."""
import os
import poplib
import re
import smtplib
import socket
import ssl
import subprocess
import time

import pytest

from conftest import MTA_HOST, ROOT, free_port, links_of, queue_ids, wait_for

OUTSIDE = "127.0.0.24"          # another loopback address: not the customer's
SQLITE3 = "/usr/bin/sqlite3"
# the dev.conf hash of the password "alice"
ALICE_HASH = ("$6$kickmaildev$jb4n5zLcivFHyqMpsGeAZDS7k7hYnUapJD68cVfLXdCWKCrPTW1bdoE6"
              "Usa0ZbchbLqYetzbwaeuib9UTTfHj0")


class POP3From(poplib.POP3):
    """poplib.POP3 whose socket is bound to a source address."""

    def __init__(self, host, port, source, timeout=10):
        self.source = source
        super().__init__(host, port, timeout=timeout)

    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout,
                                        source_address=(self.source, 0))


def customer(name, domain, port, autoturn=True, networks=None, secret="s3cret"):
    text = 'customer "%s" {\n  domains = {"%s"}\n  port = %d\n  secret = \'%s\'\n' % (
        name, domain, port, secret)
    text += "  autoturn = %s\n" % ("true" if autoturn else "false")
    if networks:
        text += "  autoturn_networks = {%s}\n" % ", ".join('"%s"' % n for n in networks)
    return text + "}\n"


MAILDROP = """
maildrop "alice@isp.example" {
  password = '%s'
}
""" % ALICE_HASH


def start(make_daemon, customers, extra=""):
    d = make_daemon(tls=True, customers=customers + MAILDROP)
    d.pop_port = free_port()
    d.sub_port = free_port()
    d.extra = """
pop3 { listen = {"127.0.0.1:%d"} cleartext = true }
submission { listen = {"127.0.0.1:%d"} }
auth { failure_delay = 1 failure_delay_max = 1 }
%s
""" % (d.pop_port, d.sub_port, extra)
    d.write_conf()
    return d.start()


def hold(d, rcpt="bob@acme.example"):
    qid = d.send(rcpt)
    assert qid in queue_ids(d)
    return qid


def pop_login(d, user, password, source=MTA_HOST):
    p = POP3From("127.0.0.1", d.pop_port, source)
    try:
        p.user(user)
        p.pass_(password)
        return p.stat()
    finally:
        p.quit()


def ssl_ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def sub_login(d, user, password, source=MTA_HOST):
    with smtplib.SMTP("127.0.0.1", d.sub_port, timeout=20,
                      source_address=(source, 0)) as s:
        s.ehlo("client.example")
        s.starttls(context=ssl_ctx())
        s.ehlo("client.example")
        s.login(user, password)


def assert_autoturned(d, mta, via, name="acme"):
    mta.wait_messages(1)
    wait_for(lambda: not queue_ids(d), what="the queue to empty")
    link = links_of(d)[name]
    assert link["state"] == "up", link
    assert link["address"] == MTA_HOST, link
    assert link["source"] == "autoturn", link
    assert link["session"] == "%s:[%s]" % (via, MTA_HOST), link
    d.wait_log(r"autoturn: customer=%s client=\[127\.0\.0\.23\] via=%s" % (name, via))
    out = d.kickq("links").stdout
    assert re.search(r"%s\s+up\s+127\.0\.0\.23\b.*autoturn" % name, out), out


def assert_nothing_moved(d, mta, qid, name="acme"):
    time.sleep(1.0)             # time enough for a link and a delivery
    assert mta.messages == []
    assert qid in queue_ids(d)
    link = links_of(d).get(name)
    assert link is None or link["state"] != "up", link
    assert "autoturn:" not in d.log_text()


def test_pop3_login_of_the_domain_maildrop(make_daemon, mta):
    d = start(make_daemon, customer("acme", "acme.example", mta.port))
    hold(d)
    assert mta.messages == []                   # held: the link is down
    count, size = pop_login(d, "acme", "s3cret")
    assert count == 0                           # its maildrop stays empty
    assert_autoturned(d, mta, "pop3")
    st = dict(ln.rsplit(" ", 1) for ln in d.kickq("stats").stdout.splitlines())
    assert st["link_events.autoturn"] == "1", st


def test_smtp_auth_on_submission(make_daemon, mta):
    d = start(make_daemon, customer("acme", "acme.example", mta.port))
    hold(d)
    sub_login(d, "acme", "s3cret")
    assert_autoturned(d, mta, "submission")


def test_autoturn_false_logs_in_but_moves_nothing(make_daemon, mta):
    d = start(make_daemon, customer("acme", "acme.example", mta.port, autoturn=False))
    qid = hold(d)
    sub_login(d, "acme", "s3cret")              # SMTP AUTH works
    d.wait_log(r"AUTH from 127\.0\.0\.23: sasl_method=[A-Z-0-9]+, sasl_username=acme")
    with pytest.raises(poplib.error_proto):     # no POP3 login without autoturn
        pop_login(d, "acme", "s3cret")
    assert_nothing_moved(d, mta, qid)


def test_failed_authentication_moves_nothing(make_daemon, mta):
    d = start(make_daemon, customer("acme", "acme.example", mta.port))
    qid = hold(d)
    with pytest.raises(poplib.error_proto, match="Authentication failed"):
        pop_login(d, "acme", "wrong")
    with pytest.raises(smtplib.SMTPAuthenticationError):
        sub_login(d, "acme", "wrong")
    d.wait_log(r"pop3: login failed user=<acme> client=127\.0\.0\.23")
    assert_nothing_moved(d, mta, qid)


def test_maildrop_user_login_moves_nothing(make_daemon, mta):
    d = start(make_daemon, customer("acme", "acme.example", mta.port))
    qid = hold(d)
    pop_login(d, "alice@isp.example", "alice")
    sub_login(d, "alice@isp.example", "alice")
    d.wait_log(r"pop3: login user=<alice@isp\.example> client=127\.0\.0\.23")
    d.wait_log(r"sasl_username=alice@isp\.example")
    assert_nothing_moved(d, mta, qid)


def plain_connection(d, source):
    with smtplib.SMTP("127.0.0.1", d.port, timeout=10, source_address=(source, 0)) as s:
        s.ehlo("client.example")


def test_autoturn_networks(make_daemon, mta):
    d = start(make_daemon, customer("acme", "acme.example", mta.port,
                                    networks=["127.0.0.16/29", "2001:db8::/48"]))
    qid = hold(d)                       # this connection came from 127.0.0.1: nothing
    plain_connection(d, OUTSIDE)        # 127.0.0.24: outside 127.0.0.16/29
    p = POP3From("127.0.0.1", d.pop_port, OUTSIDE)
    p.quit()
    assert_nothing_moved(d, mta, qid)
    plain_connection(d, MTA_HOST)       # 127.0.0.23: inside, no authentication
    mta.wait_messages(1)
    link = links_of(d)["acme"]
    assert link["source"] == "autoturn" and link["address"] == MTA_HOST, link
    assert link["session"] == "smtp:[%s]" % MTA_HOST, link
    d.wait_log(r"autoturn: customer=acme client=\[127\.0\.0\.23\] via=smtp auth=network")


def test_pop3_connection_from_the_network(make_daemon, mta):
    d = start(make_daemon, customer("acme", "acme.example", mta.port,
                                    networks=["127.0.0.23"]))
    hold(d)
    p = POP3From("127.0.0.1", d.pop_port, MTA_HOST)
    p.quit()
    mta.wait_messages(1)
    assert links_of(d)["acme"]["session"] == "pop3:[%s]" % MTA_HOST


def make_map(path, sql):
    with open(os.path.join(ROOT, "conf", "customers.sql")) as f:
        schema = f.read()
    r = subprocess.run([SQLITE3, path], input=schema + sql, capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr


def test_customer_map_v3(make_daemon, mta, tmp_path):
    path = os.path.join(str(tmp_path), "customers.sqlite")
    make_map(path, "INSERT INTO customers (name, port, secret, autoturn, autoturn_networks) "
             "VALUES ('mapco', %d, 's3cret', 1, '127.0.0.23/32');"
             "INSERT INTO domains VALUES ('mapco.example', 'mapco');"
             "INSERT INTO customers (name, port, secret) VALUES ('plain', %d, 'x');"
             "INSERT INTO domains VALUES ('plain.example', 'plain');"
             % (mta.port, mta.port))
    d = start(make_daemon, "", extra='customer_map = "%s"\n' % path)
    qid = hold(d, "bob@plain.example")
    pop_login(d, "mapco", "s3cret", source=OUTSIDE)     # authenticated: any address
    d.wait_log(r"autoturn: customer=mapco client=\[127\.0\.0\.24\] via=pop3")
    assert links_of(d)["mapco"]["address"] == OUTSIDE
    hold(d, "bob@mapco.example")
    plain_connection(d, MTA_HOST)                       # its network
    mta.wait_messages(1)
    assert mta.messages[0].rcpt_tos == ["bob@mapco.example"]
    assert links_of(d)["mapco"]["address"] == MTA_HOST
    assert "plain" not in links_of(d)                   # autoturn unset: false
    assert qid in queue_ids(d)


def test_customer_map_v2_still_loads(make_daemon, mta, tmp_path):
    path = os.path.join(str(tmp_path), "customers.sqlite")
    make_map(path, "ALTER TABLE customers DROP COLUMN autoturn_networks;"
             "ALTER TABLE customers DROP COLUMN autoturn;"
             "PRAGMA user_version = 2;"
             "INSERT INTO customers (name, port) VALUES ('old', %d);"
             "INSERT INTO domains VALUES ('old.example', 'old');" % mta.port)
    d = start(make_daemon, "", extra='customer_map = "%s"\n' % path)
    hold(d, "bob@old.example")
    d.kickq("link", "up", "old", MTA_HOST)
    mta.wait_messages(1)


def test_login_leaves_a_link_of_another_source_alone(make_daemon, mta):
    """A link up from RADIUS (or netlink, ODMR, kickq) says where the
    customer is: a login from elsewhere (a mail client on the road) does
    not move it, and logs so; a link raised by autoturn itself moves."""
    radius_port = free_port()
    d = start(make_daemon, customer("acme", "acme.example", mta.port, networks=[OUTSIDE])
              .replace("  autoturn =", '  radius_user = "acme-ppp"\n  autoturn ='),
        extra='radius {\n  listen = {"127.0.0.1:%d"}\n  client "127.0.0.1" { secret = '
              "'testing123' }\n}\n" % radius_port)
    r = subprocess.run(["/usr/bin/radclient", "-x", "-r", "1", "-t", "2",
                        "127.0.0.1:%d" % radius_port, "acct", "testing123"],
                       input='Acct-Status-Type = Start\nUser-Name = "acme-ppp"\n'
                             'Acct-Session-Id = "S1"\nFramed-IP-Address = %s\n' % MTA_HOST,
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stdout + r.stderr
    wait_for(lambda: links_of(d).get("acme", {}).get("source") == "radius",
             what="the RADIUS link")
    pop_login(d, "acme", "s3cret", source=OUTSIDE)
    d.wait_log(r"autoturn: customer=acme client=\[127\.0\.0\.24\] via=pop3: its link is up "
               r"by radius at 127\.0\.0\.23: left alone")
    sub_login(d, "acme", "s3cret", source=OUTSIDE)
    plain_connection(d, OUTSIDE)        # its autoturn_networks: skipped without a line
    link = links_of(d)["acme"]
    assert (link["source"], link["address"]) == ("radius", MTA_HOST), link
    wait_for(lambda: d.log_text().count(": left alone") >= 2, what="the second login's line")
    time.sleep(0.3)
    assert d.log_text().count(": left alone") == 2, d.log_text()   # the two logins only
    d.kickq("link", "down", "acme")
    pop_login(d, "acme", "s3cret", source=OUTSIDE)
    wait_for(lambda: links_of(d)["acme"]["state"] == "up", what="the autoturn link")
    pop_login(d, "acme", "s3cret", source=MTA_HOST)     # its own link: moves
    wait_for(lambda: links_of(d)["acme"]["address"] == MTA_HOST, what="the link moved")
    assert links_of(d)["acme"]["source"] == "autoturn"

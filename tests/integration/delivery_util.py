"""What the delivery tests share (test_delivery.py, test_delivery_client.py):
the two customers of their daemons (acme held for its link, beta delivered
at once so that DSNs reach the MTA), sending, waiting for a recipient's
status, and reading DSNs."""
import re

from conftest import (MTA_HOST, customer_conf, dsn_fields, dsn_parts, queue_ids,
                      status_of, wait_for)

ACME = "bob@acme.example"
SENDER = "a@beta.example"           # a sender at another customer: DSNs stay visible


def conf(mta_port, acme=None, beta=None, beta_port=None):
    """acme: deliver = "link" to the MTA's port, short retries; beta: the
    senders' customer, delivered at once to the same MTA (fixed host,
    online = "always") so that its DSNs reach the MTA."""
    a = dict(port=mta_port, retry_min="1s", retry_max="2s")
    a.update(acme or {})
    b = dict(deliver="%s:%d" % (MTA_HOST, beta_port or mta_port), online="always",
             retry_min="1s", retry_max="2s")
    b.update(beta or {})
    return (customer_conf("acme", ["acme.example", "acme.co.uk"], **a)
            + customer_conf("beta", ["beta.example"], **b))


def link_up(d, customer="acme", addr=MTA_HOST, *extra):
    r = d.kickq("link", "up", customer, addr, *extra)
    return r


def wait_status(d, qid, addr, status, timeout=10):
    def ok():
        st = status_of(d, qid)
        return st and st.get(addr, (None,))[0] == status and st
    return wait_for(ok, timeout=timeout, what="%s of %s to be %s (now %r)" % (
        addr, qid, status, status_of(d, qid)))


def wait_gone(d, qid, timeout=10):
    wait_for(lambda: qid not in queue_ids(d), timeout=timeout,
             what="%s to leave the queue (still %r)" % (qid, status_of(d, qid)))


def wait_empty(d, timeout=10):
    wait_for(lambda: "Mail queue is empty" in d.kickq("list").stdout, timeout=timeout,
             what="an empty queue (have %s)" % queue_ids(d))


def send(d, rcpts, body, sender=SENDER, mail_opts=()):
    if isinstance(rcpts, str):
        rcpts = [rcpts]
    with d.smtp() as s:
        s.ehlo("client.example")
        c, msg = s.mail(sender, list(mail_opts))
        assert c == 250, msg
        for r in rcpts:
            c, msg = s.rcpt(r)
            assert c == 250, (r, c, msg)
        c, msg = s.data(body)
        assert c == 250, (c, msg)
        return msg.decode().split("queued as ")[1].strip()


def simple(subject="test", to=ACME, sender=SENDER, extra=""):
    return ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\n%s\r\nhello\r\n"
            % (sender, to, subject, extra)).encode()


RECEIVED_RE = re.compile(rb"\AReceived: [^\r\n]*\r\n(?:[ \t][^\r\n]*\r\n)*")


def strip_received(content):
    m = RECEIVED_RE.match(content)
    assert m, "no Received header first: %r" % content[:300]
    return m.group(0), content[m.end():]


def _dsns(mta):
    out = []
    for m in mta.received_for(SENDER):
        msg, parts = dsn_parts(m.content)
        if "message/delivery-status" not in parts:
            continue
        blocks = dsn_fields(parts["message/delivery-status"])
        hdrs = parts.get("text/rfc822-headers")
        h = hdrs.get_payload() if hdrs is not None else ""
        if isinstance(h, list):
            h = h[0].as_string()
        out.append((blocks, h, msg))
    return out

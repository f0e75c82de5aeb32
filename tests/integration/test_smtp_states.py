"""The SMTP server's command table, pinned from outside: for every command
refused in a state (or for a session condition) the exact reply, whether it
counts as a bad command, and which refusal wins when several apply (the
order Postfix uses: e.g. STARTTLS's syntax before its state, DATA's state
before its syntax).  Also what every state allows: NOOP, VRFY, HELP, RSET,
QUIT and HELO/EHLO anywhere.

Bad-command counting is seen through max_bad_commands = 1: after the
refusal under test, one unknown command (500, bad) either ends the session
with 421 (the refusal counted) or leaves it open (it did not)."""
import pytest

from conftest import Raw, code

SENDER = "MAIL FROM:<a@sender.example>"
RCPT = "RCPT TO:<bob@acme.example>"

HELO_FIRST = "503 5.5.1 Error: send HELO/EHLO first"
NEED_MAIL = "503 5.5.1 Error: need MAIL command"
NEED_RCPT = "503 5.5.1 Error: need RCPT command"
NESTED = "503 5.5.1 Error: nested MAIL command"
IN_TXN = "503 5.5.1 Error: MAIL transaction in progress"
NO_RCPTS = "554 5.5.1 Error: no valid recipients"
DATA_SYNTAX = "501 5.5.4 Syntax: DATA"
NOT_IMPL = "502 5.5.1 Error: command not implemented"
TLS_SYNTAX = "501 5.5.4 Syntax: STARTTLS"
TLS_ACTIVE = "554 5.5.1 Error: TLS already active"

# the commands that bring a session into a state (after the greeting)
STATES = {
    "init": [],
    "helo": ["EHLO client.example"],
    "mail": ["EHLO client.example", SENDER],
    "rcpt": ["EHLO client.example", SENDER, RCPT],
}

# (state, command, exact reply, counts as a bad command)
PLAIN_REFUSALS = [
    ("init", SENDER, HELO_FIRST, True),
    ("init", "MAIL FROM:<a@sender.example> FROB=1", HELO_FIRST, True),
    ("init", RCPT, NEED_MAIL, True),
    ("init", "DATA", NEED_RCPT, True),
    ("init", "DATA x", NEED_RCPT, True),
    ("init", "ETRN acme.example", HELO_FIRST, True),
    ("init", "ETRN", HELO_FIRST, True),
    ("init", "STARTTLS", NOT_IMPL, True),
    ("helo", RCPT, NEED_MAIL, True),
    ("helo", "DATA", NEED_RCPT, True),
    ("helo", "DATA x", NEED_RCPT, True),
    ("helo", "STARTTLS", NOT_IMPL, True),
    ("helo", "STARTTLS x", NOT_IMPL, True),
    ("helo", "HELO", "501 Syntax: HELO hostname", True),
    ("helo", "EHLO", "501 Syntax: EHLO hostname", True),
    ("mail", SENDER, NESTED, True),
    ("mail", "MAIL FROM:<a@sender.example> FROB=1", NESTED, True),
    ("mail", "DATA", NO_RCPTS, False),
    ("mail", "DATA x", NO_RCPTS, False),
    ("mail", "ETRN acme.example", IN_TXN, True),
    ("mail", "STARTTLS", NOT_IMPL, True),
    ("rcpt", SENDER, NESTED, True),
    ("rcpt", "DATA x", DATA_SYNTAX, True),
    ("rcpt", "ETRN acme.example", IN_TXN, True),
    ("rcpt", "STARTTLS x", NOT_IMPL, True),
    ("rcpt", "EXPN staff", NOT_IMPL, True),
    ("helo", "AUTH PLAIN AGJvYgBwdw==", "503 5.5.1 Error: authentication not enabled", True),
    ("helo", "BDAT 10 LAST", NOT_IMPL, True),
    ("helo", "ATRN acme.example", NOT_IMPL, True),
]

# on a daemon with a tls section, before any STARTTLS
TLS_REFUSALS = [
    ("init", "STARTTLS x", TLS_SYNTAX, False),
    ("helo", "STARTTLS x", TLS_SYNTAX, False),
    ("mail", "STARTTLS x", TLS_SYNTAX, False),     # syntax before state
    ("mail", "STARTTLS", IN_TXN, True),
    ("rcpt", "STARTTLS", IN_TXN, True),
    ("rcpt", "STARTTLS x", TLS_SYNTAX, False),
]


def _open(port, state):
    c = Raw(port)
    assert code(c.reply()) == 220
    for line in STATES[state]:
        r = c.cmd(line)
        assert code(r) == 250, (state, line, r)
    return c


def _counted(c):
    """After one refusal under max_bad_commands = 1: did it count?  An
    unknown command and a NOOP, pipelined: the unknown one's 500 is then
    either the last straw (421, the NOOP is never read) or not (250)."""
    c.send("FROB\r\nNOOP\r\n")
    assert c.reply() == "500 5.5.2 Error: command not recognized"
    r = c.reply()
    if r == "250 2.0.0 Ok":
        return False
    assert r == "421 4.7.0 mx.test.example Error: too many errors", r
    assert c.is_closed()
    return True


def _check(port, cases):
    for state, line, want, bad in cases:
        c = _open(port, state)
        try:
            r = c.cmd(line)
            assert r == want, (state, line, r)
            assert _counted(c) == bad, (state, line, "bad" if bad else "not bad")
        finally:
            c.close()


def test_refusals_without_tls(make_daemon):
    d = make_daemon(smtp_opts="max_bad_commands = 1").start()
    _check(d.port, PLAIN_REFUSALS)


def test_refusals_with_tls(make_daemon):
    d = make_daemon(tls=True, smtp_opts="max_bad_commands = 1").start()
    _check(d.port, TLS_REFUSALS)


def test_starttls_under_tls_is_refused_first(make_daemon):
    """Under TLS, STARTTLS gets 554 (not a bad command) before its syntax
    and its state are looked at."""
    import ssl
    d = make_daemon(tls=True, smtp_opts="max_bad_commands = 1").start()
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    for extra, line in ([], "STARTTLS"), ([SENDER], "STARTTLS x"), ([SENDER, RCPT], "STARTTLS"):
        c = _open(d.port, "helo")
        try:
            assert c.cmd("STARTTLS").startswith("220 2.0.0")
            c.sock, c.buf = ctx.wrap_socket(c.sock, server_hostname="localhost"), b""
            assert code(c.cmd("EHLO client.example")) == 250
            for x in extra:
                assert code(c.cmd(x)) == 250, x
            r = c.cmd(line)
            assert r == TLS_ACTIVE, (extra, line, r)
            assert _counted(c) is False, (extra, line)
        finally:
            c.close()


@pytest.mark.parametrize("state", sorted(STATES))
def test_commands_allowed_in_every_state(make_daemon, state):
    d = make_daemon().start()
    c = _open(d.port, state)
    try:
        assert c.cmd("NOOP") == "250 2.0.0 Ok"
        assert c.cmd("VRFY bob") == \
            "252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery"
        assert c.cmd("HELP") == \
            "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP ETRN"
        assert c.cmd("RSET") == "250 2.0.0 Ok"
        # RSET ends a transaction, but never stands in for HELO/EHLO
        want = HELO_FIRST if state == "init" else "250 2.1.0 Ok"
        assert c.cmd(SENDER) == want, state
        assert c.cmd("HELO other.example") == "250 mx.test.example"
        assert c.cmd(RCPT) == NEED_MAIL         # HELO ended the transaction
        assert c.cmd("QUIT") == "221 2.0.0 Bye"
        assert c.is_closed()
    finally:
        c.close()

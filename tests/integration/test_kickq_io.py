"""kickq's own I/O, against a fake control server (no kickmaild): the request
line it sends, how it relays answers (split status lines, long bodies,
failures, garbage, a daemon that closes early), its errors and exit codes,
-c, which the small front end hands to the full build (kickq-config), and
-w / --timeout, its bound on the whole command."""
import os
import shutil
import socket
import subprocess
import threading
import time

import pytest

from conftest import BUILD, KICKQ

HELPER = os.path.join(BUILD, "kickq-config")


class FakeCtl:
    """A control socket that records each request line and answers with the
    chunks given (each sent with its own send(), with a pause between)."""

    def __init__(self, path, chunks=(b"0\nok\n",), pause=0.02, read_request=True):
        self.path = path
        self.chunks = list(chunks)
        self.pause = pause
        self.read_request = read_request
        self.requests = []
        self.ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.ls.bind(path)
        self.ls.listen(8)
        self.stop_ev = threading.Event()
        self.t = threading.Thread(target=self._serve, daemon=True)
        self.t.start()

    def _serve(self):
        self.ls.settimeout(0.2)
        while not self.stop_ev.is_set():
            try:
                c, _ = self.ls.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with c:
                c.settimeout(10)
                if self.read_request:
                    data = b""
                    while not data.endswith(b"\n"):
                        got = c.recv(65536)
                        if not got:
                            break
                        data += got
                    self.requests.append(data)
                try:
                    for i, ch in enumerate(self.chunks):
                        if i:
                            self.stop_ev.wait(self.pause)
                        c.sendall(ch)
                except OSError:         # kickq gave up (a status line too long)
                    pass

    def close(self):
        self.stop_ev.set()
        self.ls.close()
        self.t.join(5)


@pytest.fixture
def sockpath(tmp_path):
    return str(tmp_path / "ctl.sock")


def run(*args, timeout=30, **kw):
    return subprocess.run([KICKQ] + list(args), capture_output=True, timeout=timeout, **kw)


def run_against(sockpath, chunks, *args, pause=0.02):
    """Runs kickq ARGS while a FakeCtl at sockpath answers with chunks; returns
    kickq's result and the request lines the server saw.  The socket file is
    removed afterwards, so that another server can take its place."""
    srv = FakeCtl(sockpath, chunks, pause=pause)
    try:
        r = run(*args)
    finally:
        srv.close()
        os.unlink(sockpath)
    return r, srv.requests


def write_conf(tmp_path, sockpath):
    """A configuration file whose control socket is sockpath; returns its path."""
    conf = tmp_path / "k.conf"
    conf.write_text('hostname = "mx.test.example"\nspool = "%s"\ncontrol = "%s"\n'
                    % (tmp_path / "spool", sockpath))
    return conf


def test_request_line_and_body(sockpath):
    r, requests = run_against(sockpath, [b"0\nkicked acme: 3 messages to 192.0.2.1:25\n"],
                              "-s", sockpath, "kick", "acme", "--json")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"kicked acme: 3 messages to 192.0.2.1:25\n"
    assert r.stderr == b""
    assert requests == [b"kick\tacme\t--json\n"]


def test_status_line_in_pieces_and_body_streamed(sockpath):
    body = b"".join(b"%06d %s\n" % (i, b"x" * 90) for i in range(20000))     # ~2 MB
    chunks = [b"0", b"\n" + body[:1000]] + [body[i:i + 65536] for i in range(1000, len(body), 65536)]
    r, _ = run_against(sockpath, chunks, "-s", sockpath, "list", pause=0.001)
    assert r.returncode == 0, r.stderr
    assert r.stdout == body


CLOSED = b"kickq: connection closed before an answer\n"


@pytest.mark.parametrize("chunks, command, code, stderr", [
    pytest.param([b"1 acme: link is down, no usable address\n"], ["kick", "acme"],
                 1, b"kickq: acme: link is down, no usable address\n", id="failure"),
    pytest.param([b"2 bad thing\r\n"], ["status"], 2, b"kickq: bad thing\n", id="usage"),
    pytest.param([b"HTTP/1.0 200 OK\n"], ["status"],
                 1, b"kickq: unexpected answer from kickmaild: HTTP/1.0 200 OK\n",
                 id="unexpected"),
    pytest.param([], ["status"], 1, CLOSED, id="closed-without-answer"),      # reads, closes
    pytest.param([b"0"], ["status"], 1, CLOSED, id="closed-in-status-line"),  # half a line
    pytest.param([b"1 " + b"x" * 70000], ["status"],
                 1, b"kickq: status line from kickmaild too long\n", id="status-too-long"),
])
def test_failed_answers(sockpath, chunks, command, code, stderr):
    """Failure and usage answers, garbage, a daemon that closes early, a
    status line too long: kickq's exit code and message, nothing on stdout."""
    r, _ = run_against(sockpath, chunks, "-s", sockpath, *command, pause=0)
    assert (r.returncode, r.stderr) == (code, stderr)
    assert r.stdout == b""


def test_many_words_request(sockpath):
    ids = ["A%011d" % i for i in range(300)]        # more words than kickq keeps on its stack
    r, requests = run_against(sockpath, [b"0\ndeleted 300 messages\n"],
                              "-s", sockpath, "delete", *ids)
    assert r.returncode == 0, r.stderr
    assert requests == [("\t".join(["delete"] + ids) + "\n").encode()]


def test_connect_errors(tmp_path):
    missing = str(tmp_path / "nothing.sock")
    r = run("-s", missing, "status")
    assert (r.returncode, r.stderr.decode()) == (
        1, "kickq: cannot connect to %s: No such file or directory\n" % missing)
    long_path = "/tmp/" + "x" * 200
    r = run("-s", long_path, "status")
    assert (r.returncode, r.stderr.decode()) == (
        1, "kickq: cannot connect to %s: File name too long\n" % long_path)
    plain = tmp_path / "plain"
    plain.write_text("")
    r = run("-s", str(plain), "status")
    assert (r.returncode, r.stderr.decode()) == (
        1, "kickq: cannot connect to %s: Connection refused\n" % plain)


def test_usage_errors_never_connect(sockpath):
    srv = FakeCtl(sockpath)
    try:
        cases = [
            (["-s", sockpath, "frobnicate"], b"kickq: unknown command: frobnicate\n"),
            (["-s", sockpath, "kick"], b"kickq: usage: kick CUSTOMER|DOMAIN [--json]\n"),
            (["-s", sockpath, "status", "--body"], b"kickq: status: unknown option --body\n"),
            (["-s", sockpath, "kick", "a\tb"],
             b"kickq: arguments may not contain tabs or line breaks\n"),
            (["-s", sockpath, "-c", "/dev/null", "status"],
             b"kickq: -c and -s exclude each other\n"),
            (["-s"], b"kickq: option -s needs an argument\n"),
            (["-x", "status"], b"kickq: unknown option -x\n"),
            (["--frob", "status"], b"kickq: unknown option --frob\n"),
            (["-s", sockpath], b"kickq: no command given\n"),
            (["-w"], b"kickq: option -w needs an argument\n"),
            (["--timeout"], b"kickq: option -w needs an argument\n"),
        ] + [(["-w", v, "-s", sockpath, "status"],
              b"kickq: -w: a number of seconds above 0, at most 86400, is needed, not \"%s\"\n"
              % v.encode()) for v in ("0", "0.0", "-1", "abc", "1e3", "5s", "", "86401", ".")]
        for args, first in cases:
            r = run(*args)
            assert r.returncode == 2, (args, r.returncode, r.stderr)
            assert r.stderr.startswith(first + b"usage: kickq"), (args, r.stderr)
            assert r.stdout == b""
        assert srv.requests == []
    finally:
        srv.close()
    r = run("-h")
    assert r.returncode == 0 and r.stdout.startswith(b"usage: kickq [-c FILE | -s SOCKET]")
    assert b"  kick CUSTOMER|DOMAIN [--json]\n" in r.stdout


@pytest.mark.parametrize("prog", [
    pytest.param(KICKQ, id="kickq"),
    pytest.param(HELPER, id="kickq-config", marks=pytest.mark.skipif(
        not os.path.exists(HELPER), reason="kickq is one program in this build"))])
def test_help_on_stdout_exit_0(sockpath, prog):
    """-h and --help (alone, after -s or -c, or after a command) print the
    usage on standard output and exit 0, without connecting or reading a
    configuration."""
    srv = FakeCtl(sockpath)
    try:
        for args in (["-h"], ["--help"], ["-s", sockpath, "--help"],
                     ["-c", "/nonexistent/kickmail.conf", "--help"],
                     ["-s", sockpath, "list", "--help"], ["kick", "acme", "--help"]):
            r = subprocess.run([prog] + args, capture_output=True, timeout=30)
            assert r.returncode == 0, (args, r.returncode, r.stderr)
            assert r.stdout.startswith(b"usage: kickq [-c FILE | -s SOCKET]"), (args, r.stdout)
            assert b"  kick CUSTOMER|DOMAIN [--json]\n" in r.stdout
            assert r.stderr == b"", (args, r.stderr)
        assert srv.requests == []
    finally:
        srv.close()


def test_config_file_names_the_socket(tmp_path, sockpath):
    conf = write_conf(tmp_path, sockpath)
    r, requests = run_against(sockpath, [b"0\nfrom the config\n"],
                              "-c", str(conf), "summary", "--json")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"from the config\n"
    assert requests == [b"summary\t--json\n"]


def test_bad_config_file(tmp_path):
    bad = tmp_path / "bad.conf"
    bad.write_text('hostname = "mx.test.example"\nfrobnicate = 1\n')
    r = run("-c", str(bad), "status")
    assert r.returncode == 1
    assert r.stderr.startswith(b"kickq: " + str(bad).encode() + b":"), r.stderr
    r = run("-c", str(tmp_path / "none.conf"), "status")
    assert r.returncode == 1
    assert r.stderr == ("kickq: %s: cannot open: No such file or directory\n"
                        % (tmp_path / "none.conf")).encode()


@pytest.mark.skipif(not os.path.exists(HELPER), reason="kickq is one program in this build")
def test_front_end_without_the_full_build(tmp_path, sockpath):
    """The small kickq needs kickq-config (beside it, else in LIBEXECDIR)
    only when it has to read the configuration."""
    alone = tmp_path / "bin"
    alone.mkdir()
    shutil.copy2(KICKQ, alone / "kickq")
    srv = FakeCtl(sockpath, [b"0\nok\n"])
    try:
        r = subprocess.run([str(alone / "kickq"), "-s", sockpath, "status"],
                           capture_output=True, timeout=30)
        assert (r.returncode, r.stdout) == (0, b"ok\n"), r.stderr
        r = subprocess.run([str(alone / "kickq"), "-c", "/dev/null", "status"],
                           capture_output=True, timeout=30)
        libexec_helper = [l for l in r.stderr.decode().split() if l.endswith("/kickq-config:")]
        if libexec_helper and os.path.exists(libexec_helper[0].rstrip(":")):
            pytest.skip("an installed kickq-config exists")
        assert r.returncode == 1
        assert r.stderr.startswith(b"kickq: cannot run /") and \
            r.stderr.endswith(b"/kickq-config: No such file or directory\n"), r.stderr
        shutil.copy2(HELPER, alone / "kickq-config")
        conf = write_conf(tmp_path, sockpath)
        r = subprocess.run([str(alone / "kickq"), "-c", str(conf), "status"],
                           capture_output=True, timeout=30)
        assert (r.returncode, r.stdout) == (0, b"ok\n"), r.stderr
    finally:
        srv.close()


def silent_server(path, backlog=8):
    """A control socket that accepts (in the kernel's backlog) and never answers."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(backlog)
    return srv


@pytest.mark.parametrize("how", ["-s", "-c"])
@pytest.mark.parametrize("opt, value", [("-w", "0.5"), ("--timeout", "0.5")])
def test_timeout_gives_up(tmp_path, sockpath, how, opt, value):
    """-w / --timeout: against a daemon that accepts and never answers, kickq
    gives up after the bound, exit 1, with the reason on stderr; through the
    front end (-s) and through kickq-config (-c, the configuration read)."""
    srv = silent_server(sockpath)
    target = [how, sockpath if how == "-s" else str(write_conf(tmp_path, sockpath))]
    try:
        t0 = time.monotonic()
        r = run(opt, value, *target, "link", "up", "acme", "192.0.2.1", timeout=10)
        elapsed = time.monotonic() - t0
    finally:
        srv.close()
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert r.stderr == b"kickq: no answer from kickmaild within 0.5 s (-w)\n"
    assert r.stdout == b""
    assert 0.5 <= elapsed < 2.5, elapsed


def test_timeout_bounds_a_connect_that_blocks(sockpath):
    """A socket whose backlog is full: connect() itself blocks; -w ends it."""
    srv = silent_server(sockpath, backlog=0)
    fill = []
    try:
        while True:             # fill the backlog until a connect would block
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.setblocking(False)
            try:
                c.connect(sockpath)
            except (BlockingIOError, InterruptedError):
                c.close()
                break
            fill.append(c)
            assert len(fill) < 100
        t0 = time.monotonic()
        r = run("-w", "0.3", "-s", sockpath, "status", timeout=10)
        elapsed = time.monotonic() - t0
    finally:
        for c in fill:
            c.close()
        srv.close()
    assert (r.returncode, r.stderr) == (1, b"kickq: no answer from kickmaild within 0.3 s (-w)\n")
    assert 0.3 <= elapsed < 2.3, elapsed


def test_timeout_not_reached(sockpath):
    """An answer within the bound: relayed as ever, and nothing fires later."""
    r, requests = run_against(sockpath, [b"0\nok\n"], "--timeout", "2", "-s", sockpath, "status")
    assert (r.returncode, r.stdout, r.stderr) == (0, b"ok\n", b"")
    assert requests == [b"status\n"]

"""kickq's own I/O, against a fake control server (no kickmaild): the request
line it sends, how it relays answers (split status lines, long bodies,
failures, garbage, a daemon that closes early), its errors and exit codes,
and -c, which the small front end hands to the full build (kickq-config)."""
import os
import shutil
import socket
import subprocess
import threading

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


def test_request_line_and_body(sockpath):
    srv = FakeCtl(sockpath, [b"0\nkicked acme: 3 messages to 192.0.2.1:25\n"])
    try:
        r = run("-s", sockpath, "kick", "acme", "--json")
    finally:
        srv.close()
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"kicked acme: 3 messages to 192.0.2.1:25\n"
    assert r.stderr == b""
    assert srv.requests == [b"kick\tacme\t--json\n"]


def test_status_line_in_pieces_and_body_streamed(sockpath):
    body = b"".join(b"%06d %s\n" % (i, b"x" * 90) for i in range(20000))     # ~2 MB
    chunks = [b"0", b"\n" + body[:1000]] + [body[i:i + 65536] for i in range(1000, len(body), 65536)]
    srv = FakeCtl(sockpath, chunks, pause=0.001)
    try:
        r = run("-s", sockpath, "list")
    finally:
        srv.close()
    assert r.returncode == 0, r.stderr
    assert r.stdout == body


def test_failure_and_usage_answers(sockpath):
    srv = FakeCtl(sockpath, [b"1 acme: link is down, no usable address\n"])
    try:
        r = run("-s", sockpath, "kick", "acme")
    finally:
        srv.close()
    assert r.returncode == 1
    assert r.stdout == b""
    assert r.stderr == b"kickq: acme: link is down, no usable address\n"
    os.unlink(sockpath)
    srv = FakeCtl(sockpath, [b"2 bad thing\r\n"])
    try:
        r = run("-s", sockpath, "status")
    finally:
        srv.close()
    assert (r.returncode, r.stderr) == (2, b"kickq: bad thing\n")


def test_unexpected_answer(sockpath):
    srv = FakeCtl(sockpath, [b"HTTP/1.0 200 OK\n"])
    try:
        r = run("-s", sockpath, "status")
    finally:
        srv.close()
    assert r.returncode == 1
    assert r.stderr == b"kickq: unexpected answer from kickmaild: HTTP/1.0 200 OK\n"


def test_daemon_closes_before_answering(sockpath):
    srv = FakeCtl(sockpath, [])             # reads the request, closes
    try:
        r = run("-s", sockpath, "status")
    finally:
        srv.close()
    assert r.returncode == 1
    assert r.stderr == b"kickq: connection closed before an answer\n"
    os.unlink(sockpath)
    srv = FakeCtl(sockpath, [b"0"])         # half a status line, then closes
    try:
        r = run("-s", sockpath, "status")
    finally:
        srv.close()
    assert r.returncode == 1
    assert r.stderr == b"kickq: connection closed before an answer\n"


def test_status_line_too_long(sockpath):
    srv = FakeCtl(sockpath, [b"1 " + b"x" * 70000], pause=0)
    try:
        r = run("-s", sockpath, "status")
    finally:
        srv.close()
    assert r.returncode == 1
    assert r.stderr == b"kickq: status line from kickmaild too long\n"


def test_many_words_request(sockpath):
    ids = ["A%011d" % i for i in range(300)]        # more words than kickq keeps on its stack
    srv = FakeCtl(sockpath, [b"0\ndeleted 300 messages\n"])
    try:
        r = run("-s", sockpath, "delete", *ids)
    finally:
        srv.close()
    assert r.returncode == 0, r.stderr
    assert srv.requests == [("\t".join(["delete"] + ids) + "\n").encode()]


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
            (["-s", sockpath], b"kickq: no command given\n"),
        ]
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


def test_config_file_names_the_socket(tmp_path, sockpath):
    conf = tmp_path / "k.conf"
    conf.write_text('hostname = "mx.test.example"\nspool = "%s"\ncontrol = "%s"\n'
                    % (tmp_path / "spool", sockpath))
    srv = FakeCtl(sockpath, [b"0\nfrom the config\n"])
    try:
        r = run("-c", str(conf), "summary", "--json")
    finally:
        srv.close()
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"from the config\n"
    assert srv.requests == [b"summary\t--json\n"]


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
        conf = tmp_path / "k.conf"
        conf.write_text('hostname = "mx.test.example"\nspool = "%s"\ncontrol = "%s"\n'
                        % (tmp_path / "spool", sockpath))
        r = subprocess.run([str(alone / "kickq"), "-c", str(conf), "status"],
                           capture_output=True, timeout=30)
        assert (r.returncode, r.stdout) == (0, b"ok\n"), r.stderr
    finally:
        srv.close()

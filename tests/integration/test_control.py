"""The control socket spoken raw (what kickq does, byte by byte): requests
that arrive whole with the connection (taken at accept), in pieces, with
bytes after them, too long, or never; many clients at once; idle clients;
a kick that makes its delivery connection before it logs and answers; and
how the socket file is made (its mode from the start, links never followed)."""
import os
import socket
import stat
import subprocess
import threading
import time

import pytest

from conftest import (KICKMAILD, KICKQ, MTA_HOST, Daemon, build_shim, customer_conf, free_port,
                      shim_env, wait_for)


def ctl(d, *chunks, pause=0.05, timeout=10):
    """Sends chunks on a new control connection (pausing between them) and
    returns everything the daemon answers until it closes."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(d.control)
    try:
        for i, ch in enumerate(chunks):
            if i:
                time.sleep(pause)
            s.sendall(ch)
        out = b""
        while True:
            got = s.recv(65536)
            if not got:
                return out
            out += got
    finally:
        s.close()


def is_status(answer, d):
    return answer.startswith(b"0\nkickmaild ") and \
        (" pid %d," % d.proc.pid).encode() in answer and answer.endswith(b"\n")


def test_request_whole_with_the_connection(daemon):
    assert is_status(ctl(daemon, b"status\n"), daemon)
    assert ctl(daemon, b"kick\tnosuch\n") == b"1 nosuch: no such customer\n"
    assert ctl(daemon, b"frobnicate\n").startswith(b"2 unknown command: frobnicate")


def test_request_in_pieces(daemon):
    assert is_status(ctl(daemon, b"sta", b"tus", b"\n"), daemon)
    assert is_status(ctl(daemon, b"status\r", b"\n"), daemon)


def test_bytes_after_the_request_are_ignored(daemon):
    assert is_status(ctl(daemon, b"status\nstatus\ngarbage"), daemon)
    assert is_status(ctl(daemon, b"status\n" + b"y" * 2000), daemon)


def test_request_too_long_or_bad(daemon):
    assert ctl(daemon, b"x" * 5000) == b"2 request longer than 4096 bytes\n"
    assert ctl(daemon, b"kick" + b"\tx" * 1001 + b"\n") == b"2 request has more than 1000 words\n"
    assert ctl(daemon, b"status\x00\n") == b"2 bad request: NUL byte\n"


def test_client_that_goes_away(daemon):
    for _ in range(5):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(daemon.control)
        s.close()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(daemon.control)
    s.sendall(b"sta")
    s.close()
    assert is_status(ctl(daemon, b"status\n"), daemon)


def test_many_clients_at_once(daemon):
    answers = []

    def one():
        answers.append(ctl(daemon, b"status\n"))
    ts = [threading.Thread(target=one) for _ in range(40)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    assert len(answers) == 40 and all(is_status(a, daemon) for a in answers)
    procs = [subprocess.Popen([KICKQ, "-s", daemon.control, "status", "--json"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(20)]
    for p in procs:
        out, err = p.communicate(timeout=30)
        assert p.returncode == 0 and b'"status":"running"' in out, (out, err)


def test_kick_connects_before_it_logs_and_answers(make_daemon):
    """Nothing listens at the customer's host: the connect fails at once, and
    the log still says kick, who asked, then the result, in that order."""
    port = free_port(MTA_HOST)
    d = make_daemon(customers=customer_conf("acme", ["acme.example"],
                                            deliver="%s:%d" % (MTA_HOST, port),
                                            retry_min="1h", retry_max="2h")).start()
    qid = d.send("bob@acme.example")
    r = d.kickq("kick", "acme")
    assert r.stdout == "kicked acme: 1 messages to %s:%d\n" % (MTA_HOST, port)
    wait_for(lambda: "status=deferred" in d.log_since_start(), what="the deferral")
    log = d.log_since_start()
    kick = log.index("acme: kick: 1 messages to %s:%d" % (MTA_HOST, port))
    who = log.index("control: uid=")
    result = log.index("%s: to=<bob@acme.example>" % qid)
    assert kick < who < result, log
    assert ctl(d, b"kick\tacme\n") == ("0\nkicked acme: 1 messages to %s:%d\n"
                                       % (MTA_HOST, port)).encode()


def test_idle_connections_do_not_lock_kickq_out(daemon):
    """More idle connections than the limit (64), which any member of the
    socket's group can open: kickq still gets in at once, and the idle
    connections waiting longest are the ones closed to make room."""
    idle = []
    try:
        for _ in range(70):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(daemon.control)
            idle.append(s)
        t0 = time.monotonic()
        r = daemon.kickq("status", check=False)
        took = time.monotonic() - t0
        assert r.returncode == 0 and "running" in r.stdout, (r.stdout, r.stderr)
        assert took < 3, took
        idle[0].settimeout(3)
        assert idle[0].recv(100) == b""         # the oldest: closed, no answer
    finally:
        for s in idle:
            s.close()


def test_idle_connection_dropped_soon(daemon):
    """A client that sends nothing is dropped after a few seconds (a real
    kickq sends its request at once), not after 30."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(15)
    s.connect(daemon.control)
    t0 = time.monotonic()
    try:
        assert s.recv(100) == b""
    finally:
        s.close()
    assert time.monotonic() - t0 < 8



# bind() wrapped: right after the real bind() of the path in KM_TEST_BIND_PATH
# it records the mode of what is there (KM_TEST_BIND_MODE_FILE) and, with
# KM_TEST_BIND_SWAP_TO, puts a symlink to that file in its place, as someone
# who may write to the socket's directory could between bind and chmod.
BIND_SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

int bind(int fd, const struct sockaddr *sa, socklen_t len)
{
    int (*real)(int, const struct sockaddr *, socklen_t) =
        (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "bind");
    int rc = real(fd, sa, len);
    const char *path = getenv("KM_TEST_BIND_PATH");
    const char *rec = getenv("KM_TEST_BIND_MODE_FILE");
    const char *to = getenv("KM_TEST_BIND_SWAP_TO");
    struct stat st;
    if (rc != 0 || !path || sa->sa_family != AF_UNIX ||
        strcmp(((const struct sockaddr_un *)sa)->sun_path, path) != 0)
        return rc;
    if (rec && lstat(path, &st) == 0) {
        FILE *f = fopen(rec, "w");
        if (f) {
            fprintf(f, "%o\n", (unsigned)st.st_mode);
            fclose(f);
        }
    }
    if (to) {
        char tmp[4200];
        snprintf(tmp, sizeof tmp, "%s.swap", path);
        if (symlink(to, tmp) == 0)
            rename(tmp, path);
    }
    return rc;
}
"""


@pytest.fixture
def bind_shim(tmp_path):
    return build_shim(tmp_path, "bindshim", BIND_SHIM)


def start_with_umask(d, mask, env):
    old = os.umask(mask)
    try:
        d.start(env=env)
    finally:
        os.umask(old)


@pytest.mark.parametrize("mask", [0o000, 0o022, 0o077])
def test_socket_mode_0660_from_bind_whatever_the_umask(tmp_path, bind_shim, mask):
    d = Daemon(tmp_path)
    rec = str(tmp_path / "mode-at-bind")
    start_with_umask(d, mask, shim_env(bind_shim, KM_TEST_BIND_PATH=d.control,
                                       KM_TEST_BIND_MODE_FILE=rec))
    try:
        at_bind = int(open(rec).read(), 8)
        assert stat.S_ISSOCK(at_bind) and stat.S_IMODE(at_bind) == 0o660, oct(at_bind)
        st = os.lstat(d.control)
        assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660
        assert d.kickq("status").returncode == 0
    finally:
        d.stop()


def test_link_swapped_in_after_bind_is_not_followed(tmp_path, bind_shim):
    """Someone puts a symlink where the socket was just bound: nothing the
    daemon does afterwards (mode, owner) reaches the file it points at."""
    d = Daemon(tmp_path)
    target = tmp_path / "precious"
    target.write_text("keep\n")
    os.chmod(str(target), 0o600)
    start_with_umask(d, 0o022, shim_env(bind_shim, KM_TEST_BIND_PATH=d.control,
                                        KM_TEST_BIND_SWAP_TO=str(target)))
    try:
        assert os.path.islink(d.control)
        assert stat.S_IMODE(os.stat(str(target)).st_mode) == 0o600
    finally:
        d.stop()
    assert target.read_text() == "keep\n"
    assert stat.S_IMODE(os.stat(str(target)).st_mode) == 0o600


def test_symlink_at_the_control_path_is_refused(tmp_path):
    """A symlink already at the control path: kickmaild does not start, and
    neither the link nor the file it points at is touched."""
    d = Daemon(tmp_path)
    target = tmp_path / "precious"
    target.write_text("keep\n")
    os.chmod(str(target), 0o600)
    os.symlink(str(target), d.control)
    with open(d.log, "a") as logf:
        r = subprocess.run([KICKMAILD, "-f", "-c", d.conf], stdout=logf,
                           stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=30)
    assert r.returncode != 0
    assert "symbolic link" in d.log_text(), d.log_text()
    assert os.path.islink(d.control) and os.readlink(d.control) == str(target)
    assert target.read_text() == "keep\n"
    assert stat.S_IMODE(os.stat(str(target)).st_mode) == 0o600

"""kickq hash-password: one password line on stdin, a yescrypt hash on stdout
that libcrypt verifies (python3's crypt module, present in Debian 12's 3.11),
no daemon needed; the trailing LF (and a CR before it) stripped, the rest of
the input ignored; empty, over-long and NUL-carrying passwords refused with
exit 1; extra arguments a usage error (exit 2); on a terminal a prompt on
stderr, echo off while reading and restored after.  Both builds: the small
front end (which hands the command to the full build) and kickq-config."""
import os
import pty
import select
import subprocess
import termios
import time
import warnings

import pytest

from conftest import BUILD, KICKQ

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt                        # deprecated, still in Python 3.11

HELPER = os.path.join(BUILD, "kickq-config")
PROGS = [pytest.param(KICKQ, id="kickq"),
         pytest.param(HELPER, id="kickq-config", marks=pytest.mark.skipif(
             not os.path.exists(HELPER), reason="kickq is one program in this build"))]


def hash_password(prog, data, *args, env=None):
    e = dict(os.environ, KICKMAIL_CONF="/nonexistent/kickmail.conf")
    e.update(env or {})
    return subprocess.run([prog, *args, "hash-password"], input=data,
                          capture_output=True, timeout=30, env=e)


def verifies(h, password):
    return crypt.crypt(password, h) == h


@pytest.mark.parametrize("prog", PROGS)
@pytest.mark.parametrize("data,password", [
    (b"correct horse\n", "correct horse"),
    (b"correct horse", "correct horse"),            # no LF at the end
    (b"correct horse\r\n", "correct horse"),
    (b"first line\nsecond line\n", "first line"),
    (b" spaces  kept \n", " spaces  kept "),
    ("p\u00e4ssw\u00f6rd\n".encode(), "p\u00e4ssw\u00f6rd"),
    (b"x" * 511 + b"\n", "x" * 511),                 # the longest libcrypt takes
])
def test_hash_verifies(prog, data, password):
    r = hash_password(prog, data)
    assert r.returncode == 0, r.stderr
    assert r.stderr == b""
    out = r.stdout.decode()
    assert out.endswith("\n") and out.count("\n") == 1
    h = out.strip()
    assert h.startswith("$y$"), h
    assert verifies(h, password)
    assert not verifies(h, password + "x")
    assert not verifies(h, password[:-1])


@pytest.mark.parametrize("prog", PROGS)
def test_fresh_salt_and_no_daemon(prog, tmp_path):
    """Two hashes of one password differ; -s naming no socket and -c naming
    no file do not matter (nothing is read, nothing connected)."""
    a = hash_password(prog, b"pw\n", "-s", str(tmp_path / "no-socket"))
    b = hash_password(prog, b"pw\n", "-c", str(tmp_path / "no.conf"))
    assert a.returncode == 0 and b.returncode == 0, (a.stderr, b.stderr)
    ha, hb = a.stdout.decode().strip(), b.stdout.decode().strip()
    assert ha != hb
    assert verifies(ha, "pw") and verifies(hb, "pw")


@pytest.mark.parametrize("prog", PROGS)
@pytest.mark.parametrize("data,err", [
    (b"", b"kickq: hash-password: empty password\n"),
    (b"\n", b"kickq: hash-password: empty password\n"),
    (b"\r\n", b"kickq: hash-password: empty password\n"),
    (b"\nsecond\n", b"kickq: hash-password: empty password\n"),
    (b"x" * 512 + b"\n", b"kickq: hash-password: password longer than 511 bytes\n"),
    (b"x" * 100000, b"kickq: hash-password: password longer than 511 bytes\n"),
    (b"a\0b\n", b"kickq: hash-password: the password contains a NUL byte\n"),
])
def test_refused(prog, data, err):
    r = hash_password(prog, data)
    assert (r.returncode, r.stdout, r.stderr) == (1, b"", err)


@pytest.mark.parametrize("prog", PROGS)
def test_usage(prog):
    r = subprocess.run([prog, "hash-password", "extra"], input=b"pw\n",
                       capture_output=True, timeout=30)
    assert r.returncode == 2
    assert r.stdout == b""
    assert r.stderr.startswith(b"kickq: usage: hash-password\nusage: kickq")
    r = subprocess.run([prog, "-h"], capture_output=True, timeout=30)
    assert r.returncode == 0
    assert b"\n  hash-password " in r.stdout


def test_write_error():
    with open("/dev/full", "wb") as full:
        r = subprocess.run([KICKQ, "hash-password"], input=b"pw\n", stdout=full,
                           stderr=subprocess.PIPE, timeout=30)
    assert r.returncode == 1
    assert r.stderr.startswith(b"kickq: write to stdout: ")


def read_until(fd, want, timeout=10):
    got = b""
    end = time.monotonic() + timeout
    while want not in got and time.monotonic() < end:
        if select.select([fd], [], [], 0.05)[0]:
            try:
                got += os.read(fd, 4096)
            except OSError:
                break
    return got


@pytest.mark.parametrize("prog", PROGS)
def test_terminal_prompt_without_echo(prog):
    """On a terminal: "Password: " on stderr, the typed password not echoed,
    the terminal's echo back on afterwards."""
    master, slave = pty.openpty()
    try:
        p = subprocess.Popen([prog, "hash-password"], stdin=slave, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        try:
            # the prompt comes once echo is off: type only then
            prompt = p.stderr.read(len(b"Password: "))
            assert prompt == b"Password: "
            assert not termios.tcgetattr(slave)[3] & termios.ECHO
            os.write(master, b"tty secret\n")
            out, err = p.communicate(timeout=30)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        assert p.returncode == 0, err
        assert err == b"\n"
        assert verifies(out.decode().strip(), "tty secret")
        echoed = read_until(master, b"tty secret", timeout=0.5)
        assert b"tty secret" not in echoed
        assert termios.tcgetattr(slave)[3] & termios.ECHO      # restored
    finally:
        os.close(master)
        os.close(slave)

"""A private Dovecot (Debian's dovecot-imapd / dovecot-pop3d, 2.3) for tests
and make bench.

Dovecot serves a kickmail maildir tree unchanged with the one line

    mail_location = maildir:ROOT/%d/%n

(ROOT/isp.example/alice for alice@isp.example; ROOT/acme for the domain
maildrop of customer acme, whose login has no domain).  PrivateDovecot starts
`dovecot -F -c FILE` (not a daemon: it stays our child) with everything under
its own directory: base_dir (sockets, pid), state_dir, the log file (no
syslog), a passwd-file of users with plaintext passwords, listeners on free
loopback ports, no TLS.  It never touches the system Dovecot's directories.

Users: Dovecot never accesses mail as root ("userdb returned 0 as uid") and
runs its login and internal processes as unprivileged users.  As root those
are the users the package creates (dovenull, dovecot) and mail is accessed as
nobody: kickmail (root in CI) makes its maildirs 0700, so a test hands the
tree to nobody with own_tree() before Dovecot reads it, and the directories
above base_dir and the maildir root must be searchable by others: tests put
both under traversable_tmpdir(), never under pytest's tmp_path.  As an
ordinary user everything runs as that user and own_tree() does nothing.
"""
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"


from ports import free_port as _free_port  # noqa: E402


def traversable_tmpdir(prefix="kickmail-dovecot-"):
    """A new directory under /tmp, mode 0711, for a Dovecot run and the
    maildirs it serves.  Not under pytest's tmp_path: /tmp/pytest-of-root
    is 0700, and every pytest session running meanwhile sets it back to
    0700, so Dovecot's unprivileged processes could not reach anything
    below it.  The caller removes it (shutil.rmtree)."""
    d = tempfile.mkdtemp(prefix=prefix)
    os.chmod(d, 0o711)
    return d


def available():
    """True when Debian's dovecot binary is installed."""
    return os.access(DOVECOT, os.X_OK)


class PrivateDovecot:
    """Dovecot over maildir root `root`, IMAP and/or POP3 on loopback.
    users: {login: password} (plaintext, or "{SCHEME}hash" such as
    "{CRYPT}$6$..." checked with libcrypt as kickmail does).  After start(): .imap_port, .pop3_port."""

    def __init__(self, where, root, users, imap=True, pop3=False, extra=""):
        self.where = os.path.abspath(str(where))
        self.root = os.path.abspath(str(root))
        self.users = dict(users)
        self.imap_port = _free_port() if imap else 0
        self.pop3_port = _free_port() if pop3 else 0
        self.extra = extra
        self.conf = os.path.join(self.where, "dovecot.conf")
        self.log = os.path.join(self.where, "dovecot.log")
        self.passwd = os.path.join(self.where, "passwd")
        self.base_dir = os.path.join(self.where, "run")
        self.state_dir = os.path.join(self.where, "state")
        self.proc = None

    def _ids(self):
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            return "dovenull", "dovecot", nobody.pw_uid, nobody.pw_gid
        me = pwd.getpwuid(os.geteuid()).pw_name
        return me, me, os.geteuid(), os.getegid()

    def own_tree(self, path=None):
        """Gives the maildir tree (or path under it) to the user Dovecot
        reads mail as (root: nobody), so files kickmail wrote as root are
        readable by it."""
        _, _, uid, gid = self._ids()
        if os.geteuid() != 0:
            return
        top = path or self.root
        os.chown(top, uid, gid)
        for dirpath, dirs, files in os.walk(top):
            for n in dirs + files:
                os.chown(os.path.join(dirpath, n), uid, gid)

    def conf_text(self):
        login_user, internal_user, uid, gid = self._ids()
        protocols = " ".join(p for p, on in (("imap", self.imap_port),
                                             ("pop3", self.pop3_port)) if on)
        return """# written by tests/integration/dovecot.py
protocols = %(protocols)s
listen = 127.0.0.1
base_dir = %(base_dir)s
state_dir = %(state_dir)s
instance_name = kickmail-test-%(pid)d
log_path = %(log)s
info_log_path = %(log)s
debug_log_path = %(log)s
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_login_user = %(login_user)s
default_internal_user = %(internal_user)s
first_valid_uid = 1
first_valid_gid = 1
mail_location = maildir:%(root)s/%%d/%%n
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%%u %(passwd)s
}
userdb {
  driver = static
  args = uid=%(uid)d gid=%(gid)d home=%(root)s/%%d/%%n
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = %(imap_port)d
  }
  inet_listener imaps {
    port = 0
  }
}
service pop3-login {
  inet_listener pop3 {
    address = 127.0.0.1
    port = %(pop3_port)d
  }
  inet_listener pop3s {
    port = 0
  }
}
service anvil {
  chroot =
}
service imap-login {
  chroot =
}
service pop3-login {
  chroot =
}
%(extra)s
""" % dict(protocols=protocols, base_dir=self.base_dir, state_dir=self.state_dir,
           pid=os.getpid(), log=self.log, login_user=login_user,
           internal_user=internal_user, root=self.root, passwd=self.passwd,
           uid=uid, gid=gid, imap_port=self.imap_port, pop3_port=self.pop3_port,
           extra=self.extra)

    def write(self):
        for d in (self.where, self.base_dir, self.state_dir):
            os.makedirs(d, exist_ok=True)
        # the login and internal processes (dovenull, dovecot) reach
        # base_dir's sockets and nobody reads the maildirs: every directory
        # above them must be searchable by others
        os.chmod(self.base_dir, 0o755)
        if os.geteuid() == 0:
            # (the maildir root itself is nobody's after own_tree())
            for top in (self.base_dir, os.path.dirname(self.root)):
                path = top
                while path not in ("/", ""):
                    if os.path.exists(path) and not os.stat(path).st_mode & 0o001:
                        raise AssertionError(
                            "%s is not searchable by others, as Dovecot's unprivileged "
                            "processes need: put the run under traversable_tmpdir()" % path)
                    path = os.path.dirname(path)
        with open(self.passwd, "w") as f:
            for user, password in self.users.items():
                # "{SCHEME}..." as given (e.g. "{CRYPT}$6$..."), else plaintext
                if not password.startswith("{"):
                    password = "{PLAIN}" + password
                f.write("%s:%s::::::\n" % (user, password))
        with open(self.conf, "w") as f:
            f.write(self.conf_text())

    def start(self, timeout=15):
        self.write()
        self.logf = open(os.path.join(self.where, "dovecot.stderr"), "a")
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", self.conf],
                                     stdout=self.logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        end = time.time() + timeout
        ports = [p for p in (self.imap_port, self.pop3_port) if p]
        while time.time() < end:
            if self.proc.poll() is not None:
                raise AssertionError("dovecot exited %d:\n%s" % (
                    self.proc.returncode, self.log_text()))
            if all(self._listening(p) for p in ports):
                return self
            time.sleep(0.05)
        raise AssertionError("dovecot not listening:\n" + self.log_text())

    @staticmethod
    def _listening(port):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    def log_text(self):
        out = ""
        for name in (self.log, os.path.join(self.where, "dovecot.stderr")):
            try:
                with open(name, errors="replace") as f:
                    out += f.read()
            except OSError:
                pass
        return out

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if getattr(self, "logf", None):
            self.logf.close()
            self.logf = None

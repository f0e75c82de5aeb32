"""Helpers for the tests that drive kickmail's maildrops with real POP3
clients (fetchmail, mpop) and for `kickq maildrops`: a probe that says
whether this kickmaild serves POP3 and delivers into maildrops, crypt(3)
hashes for maildrop passwords, the configuration text, and a fetchmail run
with its own rc file, id file and home under the test's tmp dir.
"""
import os
import shutil
import subprocess
import warnings

from conftest import KICKMAILD, free_port


def maildrops_missing(tmp_path, pop3=True):
    """None when kickmaild knows maildir_root and maildrop sections and (with
    pop3) serves pop3, else why not (issue 12's branches i12-local and
    i12-pop3)."""
    conf = os.path.join(str(tmp_path), "probe.conf")
    with open(conf, "w") as f:
        f.write('hostname = "mx.test.example"\nspool = "%s/ps"\ncontrol = "%s/pc"\n'
                'maildir_root = "%s/pm"\npop3 {\n  listen = {"127.0.0.1:%d"}\n}\n'
                'maildrop "a@isp.example" {\n  password = \'x\'\n}\n'
                % (tmp_path, tmp_path, tmp_path, free_port()))
    r = subprocess.run([KICKMAILD, "-n", "-c", conf], capture_output=True, text=True)
    out = (r.stdout + r.stderr).strip()
    if r.returncode != 0:
        return "kickmaild does not deliver into maildrops: " + out
    if pop3 and "not served" in out and \
            "pop3" in out.split("not served", 1)[1].split("\n", 1)[0]:
        return "kickmaild does not serve pop3 yet: " + out
    return None


def hash_password(password):
    """A crypt(3) hash of password (SHA-512 crypt, by libcrypt), as a
    maildrop's `password` holds."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt
    return crypt.crypt(password, crypt.mksalt(crypt.METHOD_SHA512))


def maildrop_conf(address, password, mode="delete", **opts):
    lines = ['maildrop "%s" {' % address, "  password = '%s'" % hash_password(password),
             '  mode = "%s"' % mode]
    for k, v in opts.items():
        lines.append("  %s = %s" % (k, v))
    lines.append("}")
    return "\n".join(lines) + "\n"


def pop3_extra(root, pop3_port, sections=""):
    """The configuration lines for maildrops under root and a loopback pop3
    listener (cleartext logins are allowed from loopback)."""
    return 'maildir_root = "%s"\npop3 {\n  listen = {"127.0.0.1:%d"}\n}\n%s' % (
        root, pop3_port, sections)


def drop_files(root, drop):
    """Names of the messages in maildrop drop's new/ and cur/ (a domain
    maildrop: drop is the customer name)."""
    if "@" in drop:
        local, domain = drop.split("@", 1)
        d = os.path.join(str(root), domain, local)
    else:
        d = os.path.join(str(root), drop)
    out = []
    for sub in ("new", "cur"):
        try:
            out += [sub + "/" + n for n in os.listdir(os.path.join(d, sub))]
        except FileNotFoundError:
            pass
    return sorted(out)


FETCHMAIL = shutil.which("fetchmail") or "/usr/bin/fetchmail"


class Fetchmail:
    """fetchmail with its own home (FETCHMAILHOME), rc file (mode 0600, as
    fetchmail insists), id file (UIDs seen, for `uidl`) and no syslog."""

    def __init__(self, tmp, poll):
        self.home = os.path.join(str(tmp), "fetchmail")
        os.makedirs(self.home, exist_ok=True)
        os.chmod(self.home, 0o700)
        self.rc = os.path.join(self.home, "fetchmailrc")
        self.ids = os.path.join(self.home, "fetchids")
        with open(self.rc, "w") as f:
            f.write("set no syslog\nset no bouncemail\n" + poll + "\n")
        os.chmod(self.rc, 0o600)

    def run(self, timeout=60):
        """One poll; (exit code, output).  fetchmail exits 0 when it
        retrieved mail, 1 when there was none."""
        env = dict(os.environ, FETCHMAILHOME=self.home, HOME=self.home)
        r = subprocess.run([FETCHMAIL, "-f", self.rc, "-i", self.ids, "--nosyslog",
                            "--pidfile", os.path.join(self.home, "pid"), "-v"],
                           capture_output=True, text=True, timeout=timeout, env=env)
        return r.returncode, r.stdout + r.stderr

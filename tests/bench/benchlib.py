"""The bench's machinery (bench.py and its phase modules use it through
bench.py, which imports all of it): the knobs and the tools' paths, the
log, the processes started (Procs: every one written to WORK_DIR/pids),
free ports, percentiles, a process's memory and CPU, a small SMTP client,
smtp-source, the Postfix and kickmail instances, and the latency sink.
The results (rows, the table, the goals, RESULTS.md with the machine's
description) and the helper programs built (genspool, acceptstamp).
Split out of bench.py as it was."""
import datetime
import os
import platform
import pwd
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))

N_MSG = int(os.environ.get("BENCH_MESSAGES", "10000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
N_KICKS = int(os.environ.get("BENCH_KICKS", "200"))
KICK_BUDGET = float(os.environ.get("BENCH_KICK_BUDGET", "25"))
MIN_KICKS = 5
N_SESSIONS = int(os.environ.get("BENCH_SESSIONS", "10000"))
PROFILE = os.environ.get("BENCH_PROFILE", "1") != "0"
RESULTS = os.environ.get("BENCH_RESULTS", os.path.join(HERE, "RESULTS.md"))
ONLY = os.environ.get("BENCH_ONLY", "accept,flush,sessions,latency,scale,profile,radius,"
                      "ppphook,storm,pop3,local,odmr").split(",")
PROFILE_SYSCALLS = ["epoll_ctl", "epoll_wait", "readv", "writev", "read", "write", "ioctl",
                    "accept4", "close", "socket", "connect", "getpid", "fcntl", "getpeername",
                    "futex", "pwritev", "fdatasync", "sendto"]     # counted by the profile
SINK_IDLE_MS = 100          # the latency sink closes connections idle this long

SMTP_SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
POSTQUEUE = shutil.which("postqueue") or "/usr/sbin/postqueue"
POSTSUPER = shutil.which("postsuper") or "/usr/sbin/postsuper"
POSTCONF = shutil.which("postconf") or "/usr/sbin/postconf"

COMMANDS = []               # (what, command line) as run, for RESULTS.md
ROWS = []                   # result rows for the final table
NOTES = []                  # findings worth printing under the table
T_START = time.monotonic()
PHASE_TIMES = []            # (phase, seconds)


def log(msg):
    sys.stderr.write("[%7.1fs] %s\n" % (time.monotonic() - T_START, msg))
    sys.stderr.flush()


def note_cmd(what, argv):
    line = " ".join(argv) if isinstance(argv, (list, tuple)) else argv
    if (what, line) not in COMMANDS:
        COMMANDS.append((what, line))


# ---------------------------------------------------------------- processes

class Procs:
    """Everything this script starts, so that it can all be stopped.  The
    pids of those still running are kept in WORK/pids for the EXIT trap of
    tests/bench/run (a backstop, should this script die)."""

    def __init__(self, work):
        self.pidfile = os.path.join(work, "pids")
        self.procs = []
        self.pids = set()

    def _write(self):
        with open(self.pidfile + ".tmp", "w") as f:
            f.write("".join("%d\n" % p for p in sorted(self.pids)))
        os.rename(self.pidfile + ".tmp", self.pidfile)

    def record(self, pid):
        self.pids.add(pid)
        self._write()

    def forget(self, pid):
        self.pids.discard(pid)
        self._write()

    def spawn(self, argv, **kw):
        kw.setdefault("stdin", subprocess.DEVNULL)
        p = subprocess.Popen(argv, start_new_session=True, **kw)
        self.procs.append(p)
        self.record(p.pid)
        return p

    def stop(self, p, sig=signal.SIGTERM, timeout=10):
        if p.poll() is None:
            try:
                p.send_signal(sig)
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if p in self.procs:
            self.procs.remove(p)
        self.forget(p.pid)

    def stop_all(self):
        for p in list(self.procs):
            self.stop(p)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_listening(port, timeout=10, proc=None):
    """Waits until something listens on 127.0.0.1:port (read from
    /proc/net/tcp, so that no connection is made)."""
    want = ":%04X" % port
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with open("/proc/net/tcp") as f:
            for line in f.readlines()[1:]:
                fld = line.split()
                if fld[1].endswith(want) and fld[3] == "0A":
                    return True
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("%s exited with %s" % (proc.args, proc.returncode))
        time.sleep(0.01)
    raise RuntimeError("nothing listens on port %d after %ds" % (port, timeout))


def pctl(values, p):
    """The p-th percentile (nearest rank) of values."""
    v = sorted(values)
    if not v:
        return float("nan")
    k = max(0, min(len(v) - 1, int(round(p / 100.0 * len(v) + 0.5)) - 1))
    return v[k]


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def smaps_kb(pid, field):
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


# ---------------------------------------------------------------- SMTP helpers

class Smtp:
    """A minimal blocking SMTP client over a socket."""

    def __init__(self, port, timeout=30, source=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def reply(self):
        while True:
            start = 0
            while True:
                nl = self.buf.find(b"\r\n", start)
                if nl < 0:
                    break
                line = self.buf[start:nl]
                if len(line) < 4 or line[3:4] != b"-":
                    out = self.buf[:nl].decode("latin-1")
                    self.buf = self.buf[nl + 2:]
                    return out
                start = nl + 2
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed; got %r" % self.buf)
            self.buf += chunk

    def cmd(self, line):
        self.sock.sendall(line.encode() + b"\r\n")
        return self.reply()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def transaction(port, rcpt, body):
    """One complete SMTP transaction on a new connection; returns seconds
    from connect to the reply to the final dot."""
    t0 = time.monotonic()
    c = Smtp(port)
    try:
        r = c.reply()
        assert r.startswith("220"), r
        r = c.cmd("EHLO client.bench.example")
        assert r.startswith("250"), r
        r = c.cmd("MAIL FROM:<from@x.example>")
        assert r.startswith("250"), r
        r = c.cmd("RCPT TO:<%s>" % rcpt)
        assert r.startswith("250"), r
        r = c.cmd("DATA")
        assert r.startswith("354"), r
        c.sock.sendall(body + b".\r\n")
        r = c.reply()
        assert r.startswith("250"), r
        t1 = time.monotonic()
        c.sock.sendall(b"QUIT\r\n")
        return t1 - t0
    finally:
        c.close()


def smtp_source(port, n, rcpt, what):
    argv = [SMTP_SOURCE, "-s", "20", "-l", "4096", "-m", str(n), "-f", "from@x.example",
            "-t", rcpt, "127.0.0.1:%d" % port]
    note_cmd(what, argv)
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    r = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    dt = time.monotonic() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    LAST_SOURCE_CPU[0] = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    if r.returncode != 0 or r.stderr.strip():
        raise RuntimeError("smtp-source failed (%d): %s%s" % (r.returncode, r.stdout, r.stderr[-2000:]))
    return dt


LAST_SOURCE_CPU = [0.0]     # CPU seconds of the last smtp-source run


def proc_cpu(pid):
    """CPU seconds (user + system, all threads) a process has used."""
    with open("/proc/%d/stat" % pid) as f:
        st = f.read()
    fld = st[st.rindex(")") + 2:].split()
    return (int(fld[11]) + int(fld[12])) / float(os.sysconf("SC_CLK_TCK"))


# ---------------------------------------------------------------- Postfix

class Postfix:
    """A private Postfix instance: its own config, queue and data directories,
    one smtpd on a loopback port, the dial-up hold queue of PROTOCOL-NOTES."""

    def __init__(self, work, procs, smtpd_port, dests):
        self.dir = os.path.join(work, "postfix")
        self.conf = os.path.join(self.dir, "conf")
        self.queue = os.path.join(self.dir, "queue")
        self.data = os.path.join(self.dir, "data")
        self.maillog = os.path.join(self.dir, "maillog")
        self.port = smtpd_port
        self.procs = procs
        self.master = None
        for d in (self.dir, self.conf, self.queue, self.data):
            os.makedirs(d, exist_ok=True)
            os.chmod(d, 0o755)
        pw = pwd.getpwnam("postfix")
        os.chown(self.data, pw.pw_uid, pw.pw_gid)
        domains = sorted(dests)
        transport = ", ".join("%s=dialup:[127.0.0.1]:%d" % (d, dests[d]) for d in domains)
        with open(os.path.join(self.conf, "main.cf"), "w") as f:
            f.write("""# private Postfix for kickmail's benchmarks (tests/bench)
compatibility_level = 3.6
queue_directory = {q}
data_directory = {d}
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = pf.bench.example
mydomain = bench.example
myorigin = $myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
local_recipient_maps =
biff = no
maillog_file = {log}
maillog_file_prefixes = {dir}
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
# the dial-up hold queue (ETRN_README; ../shared/PROTOCOL-NOTES.md)
relay_domains = {rd}
fast_flush_domains = $relay_domains
transport_maps = inline:{{ {tr} }}
defer_transports = dialup
smtpd_client_connection_count_limit = 0
smtpd_client_message_rate_limit = 0
in_flow_delay = 0
""".format(q=self.queue, d=self.data, log=self.maillog, dir=self.dir,
           rd=", ".join(domains), tr=transport))
        with open(os.path.join(self.conf, "master.cf"), "w") as f:
            f.write("""# private Postfix for kickmail's benchmarks: loopback smtpd, no chroot
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
dialup    unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
""".format(port=self.port))

    def ctl(self, *args, check=True):
        argv = [POSTFIX, "-c", self.conf] + list(args)
        # postfix(1) reports to syslog, and to stderr only on a terminal:
        # its own log goes to maillog_file, shown on failure.
        r = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        if check and r.returncode != 0:
            raise RuntimeError("%s failed (%d): %s%s\n%s" % (" ".join(argv), r.returncode,
                               r.stdout, r.stderr, self.log_tail()))
        return r

    def log_tail(self, n=15):
        try:
            with open(self.maillog, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return "(no maillog)"

    def master_pid(self):
        try:
            with open(os.path.join(self.queue, "pid", "master.pid")) as f:
                pid = int(f.read().split()[0])
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError, IndexError):
            return None

    def children(self):
        """PIDs of the processes of this instance (master and its children)."""
        m = self.master_pid()
        if not m:
            return []
        out = [m]
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open("/proc/%s/stat" % d) as f:
                        st = f.read()
                    ppid = int(st[st.rindex(")") + 2:].split()[1])
                except (OSError, ValueError):
                    continue
                if ppid == m:
                    out.append(int(d))
        return out

    def start(self):
        note_cmd("Postfix start", [POSTFIX, "-c", self.conf, "start"])
        self.ctl("check")
        self.ctl("start")
        self.master = self.master_pid()
        if not self.master:
            raise RuntimeError("postfix did not start:\n" + self.log_tail())
        self.procs.record(self.master)
        wait_listening(self.port)
        log("postfix %s started (master pid %d), smtpd on 127.0.0.1:%d" % (
            self.version(), self.master, self.port))

    def stop(self):
        if not self.master_pid():
            return
        kids = self.children()
        self.ctl("stop", check=False)
        end = time.monotonic() + 15
        while time.monotonic() < end and self.master_pid():
            time.sleep(0.1)
        if self.master_pid():
            self.ctl("abort", check=False)
            time.sleep(0.5)
            for pid in kids:             # the instance's processes, by pid
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        if self.master:
            self.procs.forget(self.master)

    def version(self):
        r = subprocess.run([POSTCONF, "-c", self.conf, "-h", "mail_version"],
                           capture_output=True, text=True)
        return r.stdout.strip()

    def count(self, *queues):
        n = 0
        for q in queues:
            for _dp, _dn, files in os.walk(os.path.join(self.queue, q)):
                n += len(files)
        return n

    def busy(self):
        return self.count("incoming", "active", "maildrop")

    def wait_settled(self, expect=None, timeout=300):
        """Waits until nothing is incoming or active (all held mail is in
        deferred) and, with expect, that deferred holds that many."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.busy() == 0 and (expect is None or self.count("deferred") >= expect):
                return self.count("deferred")
            time.sleep(0.05)
        raise RuntimeError("postfix queue not settled: incoming+active=%d deferred=%d\n%s" % (
            self.busy(), self.count("deferred"), self.log_tail()))

    def flush_cmd(self, domain):
        return [POSTQUEUE, "-c", self.conf, "-s", domain]


# ---------------------------------------------------------------- kickmail

class Kickmail:
    def __init__(self, build, work, procs, port, customers):
        self.dir = os.path.join(work, "kickmail")
        os.makedirs(self.dir, exist_ok=True)
        self.kickmaild = os.path.join(build, "kickmaild")
        self.kickq_bin = os.path.join(build, "kickq")
        self.spool = os.path.join(self.dir, "spool")
        self.sock = os.path.join(self.dir, "control.sock")
        self.conf = os.path.join(self.dir, "kickmail.conf")
        self.logf = os.path.join(self.dir, "kickmaild.log")
        self.port = port
        self.procs = procs
        self.proc = None
        cust = ""
        for name, (domain, dport) in sorted(customers.items()):
            cust += """customer "%s" {
  domains = {"%s"}
  deliver = "127.0.0.1:%d"     # the customer's fixed mail host
  online  = "detect"           # held until a kick (or link up)
  etrn_interval = 0            # every timed ETRN starts a flush
}
""" % (name, domain, dport)
        with open(self.conf, "w") as f:
            f.write("""# kickmail for the benchmarks (tests/bench)
hostname = "km.bench.example"
spool    = "%s"
control  = "%s"
smtp {
  listen = {"127.0.0.1:%d"}
  max_connections = 30000
  max_connections_per_client = 30000
}
%s""" % (self.spool, self.sock, port, cust))

    def start(self):
        argv = [self.kickmaild, "-f", "-c", self.conf]
        note_cmd("kickmail start", argv)
        self.out = open(self.logf, "a")
        self.proc = self.procs.spawn(argv, stdout=self.out, stderr=subprocess.STDOUT)
        end = time.monotonic() + 30
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError("kickmaild exited:\n" + self.log_tail())
            with open(self.logf, errors="replace") as f:
                if " ready" in f.read():
                    break
            time.sleep(0.02)
        else:
            raise RuntimeError("kickmaild not ready:\n" + self.log_tail())
        log("kickmaild started (pid %d), smtp on 127.0.0.1:%d" % (self.proc.pid, self.port))

    def stop(self):
        if self.proc:
            self.procs.stop(self.proc, timeout=30)
            self.proc = None

    def log_tail(self, n=15):
        with open(self.logf, errors="replace") as f:
            return "".join(f.readlines()[-n:])

    def kickq_argv(self, *args):
        return [self.kickq_bin, "-s", self.sock] + list(args)

    def kickq(self, *args, check=True):
        r = subprocess.run(self.kickq_argv(*args), capture_output=True, text=True, timeout=120)
        if check and r.returncode != 0:
            raise RuntimeError("kickq %s: %s%s" % (" ".join(args), r.stdout, r.stderr))
        return r

    def held(self, customer):
        import json
        for line in self.kickq("summary", "--json").stdout.splitlines():
            if line.strip():
                o = json.loads(line)
                if o.get("customer") == customer:
                    return o.get("messages", 0)
        return 0

    def pid(self):
        return self.proc.pid


# ---------------------------------------------------------------- sinks

class LatencySink:
    """tests/bench/sink.py in its own process, its events read by a thread."""

    def __init__(self, procs, port, accept=False, rt=False, stamp=False):
        argv = [sys.executable, os.path.join(HERE, "sink.py"), "127.0.0.1", str(port),
                "--idle-ms", str(SINK_IDLE_MS)]
        if accept:
            argv.append("--accept")
        if rt:
            argv.append("--rt")
        if stamp:       # accept timestamps from C (sink.py --stamper)
            argv += ["--stamper", build_acceptstamp(os.path.dirname(procs.pidfile))]
        self.port = port
        self.procs = procs
        self.proc = procs.spawn(argv, stdout=subprocess.PIPE, bufsize=0)
        self.cv = threading.Condition()
        self.accepts = []       # (ns, conn)
        self.open = set()
        self.last_event = 0
        self.mails = 0
        self.ready = False
        threading.Thread(target=self._read, daemon=True).start()
        with self.cv:
            if not self.cv.wait_for(lambda: self.ready, timeout=10):
                raise RuntimeError("latency sink did not start")

    def _read(self):
        f = self.proc.stdout
        for raw in iter(f.readline, b""):
            fld = raw.split()
            if not fld:
                continue
            with self.cv:
                kind, ns = fld[0], int(fld[1])
                if kind == b"R":
                    self.ready = True
                elif kind == b"A":
                    self.accepts.append((ns, int(fld[2])))
                    self.open.add(int(fld[2]))
                elif kind == b"C":
                    self.open.discard(int(fld[2]))
                elif kind == b"M":
                    self.mails += 1
                self.last_event = time.monotonic_ns()
                self.cv.notify_all()

    def first_accept_after(self, t0, timeout=30):
        with self.cv:
            ok = self.cv.wait_for(lambda: any(a[0] >= t0 for a in self.accepts[-64:]),
                                  timeout=timeout)
            if not ok:
                return None
            return min(a[0] for a in self.accepts if a[0] >= t0)

    def wait_quiet(self, quiet_ms=20, timeout=120, extra=None):
        """Until no connection is open and nothing happened for quiet_ms
        (and extra() is true, when given)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.cv:
                idle = not self.open and \
                    time.monotonic_ns() - self.last_event >= quiet_ms * 1000000
            if idle and (extra is None or extra()):
                return
            time.sleep(0.005)
        raise RuntimeError("customer server sink never went quiet (open=%d)" % len(self.open))

    def stop(self):
        self.procs.stop(self.proc)


def start_smtp_sink(procs, port, count=None):
    argv = [SMTP_SINK, "-u", "nobody"]
    if count:
        argv += ["-M", str(count)]
    argv += ["127.0.0.1:%d" % port, "256"]
    p = procs.spawn(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_listening(port, proc=p)
    return p, argv


# ---------------------------------------------------------------- results

def row(bench, what, km, pf, unit, goal, met, ratio=None):
    if ratio is None and isinstance(km, (int, float)) and isinstance(pf, (int, float)) and pf:
        ratio = km / pf
    ROWS.append(dict(bench=bench, what=what, km=km, pf=pf, unit=unit, goal=goal,
                     met=met, ratio=ratio))


def fmt(v, unit=""):
    if v is None:
        return "—"
    if isinstance(v, str):
        return v
    if unit == "ms":
        return "%.2f ms" % v if v < 100 else "%.0f ms" % v
    if unit == "msg/s":
        return "%.0f msg/s" % v
    if unit == "KB":
        return "%.1f KB" % v
    if unit == "%":
        return "%.0f %%" % v
    return "%.3g %s" % (v, unit)


def table_lines():
    head = ["#", "measure", "kickmail", "Postfix", "kickmail/Postfix", "goal", "met"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in sorted(ROWS, key=lambda r: r["bench"]):
        ratio = r["ratio"]
        if isinstance(ratio, (int, float)):
            ratio = "%.2f×" % ratio if ratio >= 0.1 else "1/%.0f" % (1.0 / ratio)
        lines.append("| " + " | ".join([
            str(r["bench"]), r["what"], fmt(r["km"], r["unit"]), fmt(r["pf"], r["unit"]),
            ratio or "—", r["goal"], {True: "yes", False: "**NO**", None: "—"}[r["met"]]
        ]) + " |")
    return lines


def goal_lines(load=None):
    """Every measure that has a goal, one line each: met or not, plainly."""
    out = []
    for r in ROWS:
        if r["met"] is None:
            continue
        out.append("  %-3s %s: %s (goal %s)" % ("yes" if r["met"] else "NO", r["what"],
                                                fmt(r["km"], r["unit"]), r["goal"]))
    if out:
        out.insert(0, "Goals%s:" % (" (load average at the start %s; a busy machine misses "
                                    "them more often)" % load if load else ""))
    return out


def print_table(load=None):
    print()
    print("\n".join(table_lines()))
    print()
    for n in NOTES:
        print("- " + n)
    goals = goal_lines(load)
    if goals:
        print()
        print("\n".join(goals))
    sys.stdout.flush()


# ---------------------------------------------------------------- helpers built

def build_genspool(build, work):
    out = os.path.join(work, "genspool")
    libs = subprocess.run(["pkg-config", "--libs", "libevent", "libevent_openssl",
                           "libevent_pthreads", "libconfuse", "openssl", "sqlite3", "zlib"],
                          capture_output=True, text=True).stdout.split()
    argv = ["cc", "-O2", "-std=c11", "-D_GNU_SOURCE", "-I" + os.path.join(ROOT, "include"),
            os.path.join(HERE, "genspool.c"), os.path.join(build, "libkm.a")] + libs + \
        ["-lcrypt", "-lpthread", "-o", out]
    r = subprocess.run(argv, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("cannot build genspool: %s" % r.stderr[-2000:])
    return out


def build_tool(work, name):
    """tests/bench/NAME.c (a standalone helper program), built once into WORK."""
    out = os.path.join(work, name)
    if not os.path.exists(out):
        r = subprocess.run(["cc", "-O2", "-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra",
                            "-Werror", os.path.join(HERE, name + ".c"), "-o", out],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("cannot build %s: %s" % (name, r.stderr[-2000:]))
    return out


def build_acceptstamp(work):
    """tests/bench/acceptstamp (the sink's accept()s), built once into WORK."""
    return build_tool(work, "acceptstamp")


# ---------------------------------------------------------------- report

def machine():
    mem = "?"
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = "%.1f GiB" % (int(line.split()[1]) / 1024.0 / 1024)
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return dict(nproc=os.cpu_count(), mem=mem, cpu=cpu, kernel=platform.release())


def fs_of(path):
    r = subprocess.run(["df", "-T", "-P", path], capture_output=True, text=True)
    lines = r.stdout.splitlines()
    if len(lines) >= 2:
        f = lines[1].split()
        kind = f[1]
        if kind in ("ext3", "ext4"):
            # a journaled ext4 has a jbd2 entry named after its device
            dev = os.path.basename(f[0])
            jbd = os.listdir("/proc/fs/jbd2") if os.path.isdir("/proc/fs/jbd2") else []
            kind += " (with a journal)" if any(j.startswith(dev + "-") for j in jbd) \
                else " (without a journal)"
        return "%s (%s, mounted on %s)" % (kind, f[0], f[6])
    return "?"


def git_rev():
    r = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"],
                       capture_output=True, text=True)
    return r.stdout.strip() or "?"


def write_results(info, prof):
    if RESULTS == "-":
        return
    now = datetime.datetime.now().astimezone()
    m = machine()
    out = []
    out.append("<!-- bench:begin — generated by `make bench` (tests/bench/run); "
               "everything up to bench:end is rewritten on each run -->")
    out.append("## Latest run: %s" % now.strftime("%Y-%m-%d %H:%M %Z"))
    out.append("")
    out.append("- machine: %d cores (%s), %s memory, kernel %s" % (
        m["nproc"], m["cpu"], m["mem"], m["kernel"]))
    out.append("- spool and Postfix queue file system: %s" % info["fs"])
    if info.get("spares"):
        out.append("- kickmaild's choice at start: %s" % info["spares"])
    with open("/proc/loadavg") as f:
        load_end = " ".join(f.read().split()[:3])
    out.append("- load average (1, 5, 15 min) when the run started: %s; at its end: %s "
               "(the benchmark's own processes count in it too)" % (info["load"], load_end))
    out.append("- kickmail %s (git %s); Postfix %s (Debian package), private instance" % (
        info["km_version"], git_rev(), info["pf_version"]))
    out.append("- whole run: %.0f s (%s)" % (time.monotonic() - T_START,
               ", ".join("%s %.0f s" % p for p in PHASE_TIMES)))
    out.append("")
    out += table_lines()
    out.append("")
    for n in NOTES:
        out.append("- " + n)
    if prof:
        out.append("")
        out.append("### Profile of kickmaild during accept (perf, this run)")
        out.append("")
        out.append("Another %d messages into kickmail with `perf record -g -F 2000 -p PID` and "
                   "`perf stat -e raw_syscalls:sys_enter,task-clock,context-switches -p PID` "
                   "attached (plus one syscalls:sys_enter_NAME counter per system call below): %.0f msg/s "
                   "under perf; %.1f syscalls per message; %.3f ms CPU "
                   "per message (%.0f %% of one core); %.1f context switches per message." % (
                       N_MSG, prof["rate"], prof.get("raw_syscalls:sys_enter", 0) / N_MSG,
                       prof.get("task-clock", 0) / N_MSG,
                       100.0 * prof.get("task-clock", 0) / (prof["seconds"] * 1000),
                       prof.get("context-switches", 0) / N_MSG))
        out.append("")
        out.append("System calls per accepted message (all threads of kickmaild):")
        out.append("")
        out.append("| " + " | ".join(PROFILE_SYSCALLS) + " |")
        out.append("|" + "---|" * len(PROFILE_SYSCALLS))
        out.append("| " + " | ".join("%.1f" % (prof.get("syscalls:sys_enter_" + c, 0) / N_MSG)
                                     for c in PROFILE_SYSCALLS) + " |")
        out.append("")
        out.append("CPU samples by object: " + ", ".join(
            "%s %.1f %%" % (d, pct) for pct, d in prof.get("dso", [])))
        out.append("")
        if prof.get("user"):
            out.append("User space is %.0f %% of the samples; its symbols, as %% of the user-space "
                       "samples: " % prof["user_share"] +
                       ", ".join("`%s` %.1f" % (sym, pct) for pct, sym in prof["user"][:20]))
            out.append("")
        out.append("Where the CPU time goes (perf report --no-children, symbols over 1.5 %):")
        out.append("")
        out.append("| self % | symbol |")
        out.append("|---|---|")
        for pct, kind, sym in prof["top"]:
            out.append("| %.1f | `%s`%s |" % (pct, sym, " (kernel)" if kind == "k" else ""))
    out.append("")
    out.append("### Command lines of this run")
    out.append("")
    for what, line in COMMANDS:
        out.append("- %s: `%s`" % (what, line))
    out.append("")
    out.append("<!-- bench:end -->")
    gen = "\n".join(out)

    old = ""
    if os.path.exists(RESULTS):
        with open(RESULTS) as f:
            old = f.read()
    if "<!-- bench:begin" in old and "<!-- bench:end -->" in old:
        a = old.index("<!-- bench:begin")
        b = old.index("<!-- bench:end -->") + len("<!-- bench:end -->")
        text = old[:a] + gen + old[b:]
    else:
        text = "# kickmail benchmarks against Postfix\n\n" + gen + "\n" + old
    with open(RESULTS, "w") as f:
        f.write(text)
    log("results written to %s" % os.path.relpath(RESULTS, ROOT))

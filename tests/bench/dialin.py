"""Link detection benchmarks of issue 11, phases of bench.py (`make bench`):

  6. radius:  RADIUS Start → first SMTP connection at the customer's server,
              with 1, 1,000 and 10,000 messages held (a Stop between samples)
  7. ppphook: the same through the pppd ip-up hook (scripts/ppp/ip-up, run
              with pppd's arguments and environment; ip-down between), side
              by side with Postfix's equivalent (an ip-up hook running
              `postqueue -s DOMAIN`)
  8. storm:   20,000 Start/Stop packets for 10,000 customers from several
              senders (tests/bench/radsend.py) into a kickmaild of its own:
              answers/s, answer time, lost packets; and the SMTP accept rate
              (smtp-source) during a storm vs without one

Uses bench.py's helpers and its ROWS/NOTES (imported as the module `bench`;
bench.py registers itself under that name before importing this file).
Knobs: BENCH_DIAL_BUDGET seconds per latency cell [8], BENCH_STORM_CUSTOMERS
[10000], BENCH_STORM_SENDERS [4], BENCH_STORM_WINDOW requests outstanding
per sender [32], BENCH_STORM_ACCEPT messages per accept run [3000],
BENCH_CTL_FIRST=1 runs the control-socket reference cell before the RADIUS
cell (the first cell after each fill gets the first link up after the fill,
which is the slow sample of either path; the log line names the slowest
sample's number).
"""
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

import bench
import radsend
from bench import log, note_cmd, pctl, row, NOTES

DIAL_BUDGET = float(os.environ.get("BENCH_DIAL_BUDGET", "8"))
PF_MIN_10K = 3              # Postfix re-defers 10,000 messages per sample: ~10-30 s each
STORM_CUST = int(os.environ.get("BENCH_STORM_CUSTOMERS", "10000"))
STORM_SENDERS = int(os.environ.get("BENCH_STORM_SENDERS", "4"))
STORM_WINDOW = int(os.environ.get("BENCH_STORM_WINDOW", "32"))
STORM_ACCEPT = int(os.environ.get("BENCH_STORM_ACCEPT", "3000"))

SECRET = b"bench-secret"
DIAL = "dial"                   # the dial-up customer of phases 6 and 7
DIAL_DOMAIN = "dial.example"
DIAL_USER = "dial-user"         # its radius_user, the RADIUS User-Name and PEERNAME
IFACE = "ppp0"


def free_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def radius_section(port):
    return """radius {
  listen = {"127.0.0.1:%d"}
  client "127.0.0.1" { secret = '%s' }
}
""" % (port, SECRET.decode())


def dial_conf(radius_port, sink_port):
    """What phases 6 and 7 add to the main kickmaild's configuration."""
    return radius_section(radius_port) + """customer "%s" {
  domains     = {"%s"}
  deliver     = "link"          # to the address RADIUS or the ip-up hook gives
  port        = %d
  online      = "detect"
  radius_user = "%s"
  etrn_interval = 0
}
""" % (DIAL, DIAL_DOMAIN, sink_port, DIAL_USER)


def udp_rcvbuf_errors():
    """The kernel's count of UDP datagrams dropped for a full receive buffer
    (this network namespace)."""
    with open("/proc/net/snmp") as f:
        rows = [line.split() for line in f if line.startswith("Udp:")]
    return int(rows[1][rows[0].index("RcvbufErrors")])


# ---------------------------------------------------------------- kickers

class RadiusKicker:
    """Start (kick) and Stop (between) of one call each sample, a new
    Acct-Session-Id every time, from a UDP socket of this process; the send
    is timestamped on the sink's clock (CLOCK_MONOTONIC) just before it."""

    def __init__(self, port):
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.bind(("127.0.0.1", 0))
        self.s.connect(("127.0.0.1", port))
        self.s.settimeout(5)
        self.n = 0
        self.ident = 0
        self.req = None
        self.t0 = 0
        self.answers = []           # Start → Accounting-Response, ms

    def _ask(self, status, address):
        self.ident = (self.ident + 1) % 256
        self.req = radsend.acct(self.ident, status, DIAL_USER.encode(),
                                b"lat-%d" % self.n, SECRET, address)

    def _answer(self, what):
        try:
            reply = self.s.recv(4096)
        except socket.timeout:
            raise RuntimeError("RADIUS %s: no Accounting-Response within 5 s" % what)
        if not radsend.response_ok(reply, self.req, SECRET):
            raise RuntimeError("RADIUS %s: a wrong answer %r" % (what, reply[:40]))
        return time.monotonic_ns()

    def kick(self):
        self.n += 1
        self._ask(radsend.START, "127.0.0.1")
        self.t0 = time.monotonic_ns()
        self.s.send(self.req)
        return self.t0

    def reap(self):
        self.answers.append((self._answer("Start") - self.t0) / 1e6)

    def stop(self):
        self._ask(radsend.STOP, None)
        self.s.send(self.req)
        self._answer("Stop")


class PppHooks:
    """The hooks as pppd runs them: interface tty speed local remote ipparam
    as arguments, pppd's script environment (IFNAME, IPLOCAL, IPREMOTE,
    PEERNAME, ...), nothing else but PATH; spawned with posix_spawn, timed
    from just before the spawn."""

    def __init__(self, work, km, pf):
        self.dir = os.path.join(work, "ppp")
        fake = os.path.join(self.dir, "bin")
        os.makedirs(fake)
        for h in ("ip-up", "ip-down"):          # copies: the tree may change meanwhile
            shutil.copy2(os.path.join(bench.ROOT, "scripts", "ppp", h), self.dir)
        # what the kickmail hooks would send to syslog lands here
        self.logged = os.path.join(self.dir, "logger.out")
        with open(os.path.join(fake, "logger"), "w") as f:
            f.write('#!/bin/sh\necho "$*" >> %s\n' % self.logged)
        os.chmod(os.path.join(fake, "logger"), 0o755)
        self.pf_hook = os.path.join(self.dir, "postfix-ip-up")
        with open(self.pf_hook, "w") as f:
            f.write("""#!/bin/sh
# Postfix's ip-up hook for this benchmark: what Debian's
# /etc/ppp/ip-up.d/postfix does (a queue run: sendmail -q), for the peer's
# site only (fast flush), with the private instance's configuration.
case $PEERNAME in
%s) %s -c %s -s %s >/dev/null 2>&1 ;;
esac
exit 0
""" % (DIAL_USER, bench.POSTQUEUE, pf.conf, DIAL_DOMAIN))
        os.chmod(self.pf_hook, 0o755)
        self.args = [IFACE, "/dev/ttyS0", "115200", "10.0.0.1", "127.0.0.1", ""]
        self.env = {"PATH": fake + ":/usr/bin:/bin", "IFNAME": IFACE, "IPLOCAL": "10.0.0.1",
                    "IPREMOTE": "127.0.0.1", "PEERNAME": DIAL_USER, "DEVICE": "/dev/ttyS0",
                    "SPEED": "115200", "ORIG_UID": "0", "PPPLOGNAME": "root",
                    "PPPD_PID": "4242", "LINKNAME": "",
                    # where the kickmail hooks find kickq and its configuration
                    "KICKMAIL_CONF": km.conf, "KICKQ": km.kickq_bin,
                    "KICKMAIL_DEFAULTS": "/nonexistent",
                    "KICKMAIL_PPP_STATE": os.path.join(self.dir, "state")}
        self.devnull = os.open(os.devnull, os.O_RDWR)
        self.pid = None
        note_cmd("7. kickmail ip-up hook (pppd's arguments; env IFNAME, IPLOCAL, IPREMOTE, "
                 "PEERNAME=%s, ..., KICKMAIL_CONF, KICKQ)" % DIAL_USER,
                 ["scripts/ppp/ip-up"] + self.args)
        note_cmd("7. kickmail ip-down hook (between samples)", ["scripts/ppp/ip-down"] + self.args)
        note_cmd("7. Postfix ip-up hook", "sh: %s -c CONF -s %s" % (bench.POSTQUEUE, DIAL_DOMAIN))

    def _spawn(self, path):
        fa = [(os.POSIX_SPAWN_DUP2, self.devnull, 0), (os.POSIX_SPAWN_DUP2, self.devnull, 1),
              (os.POSIX_SPAWN_DUP2, self.devnull, 2)]
        t0 = time.monotonic_ns()
        self.pid = os.posix_spawn(path, [path] + self.args, self.env, file_actions=fa)
        return t0

    def km_up(self):
        return self._spawn(os.path.join(self.dir, "ip-up"))

    def pf_up(self):
        return self._spawn(self.pf_hook)

    def reap(self):
        _, st = os.waitpid(self.pid, 0)
        if os.waitstatus_to_exitcode(st) != 0:
            raise RuntimeError("a ppp hook exited with %d" % os.waitstatus_to_exitcode(st))

    def km_down(self):
        self._spawn(os.path.join(self.dir, "ip-down"))
        self.reap()

    def costs(self, km, n=30):
        """What the kickmail hook's parts cost by themselves: ms, medians of
        n posix_spawn → exit."""
        def wall(argv, env):
            out = []
            for _ in range(n):
                t0 = time.monotonic_ns()
                pid = os.posix_spawn(argv[0], argv, env, file_actions=[
                    (os.POSIX_SPAWN_DUP2, self.devnull, 1), (os.POSIX_SPAWN_DUP2, self.devnull, 2)])
                _, st = os.waitpid(pid, 0)
                out.append((time.monotonic_ns() - t0) / 1e6)
                if os.waitstatus_to_exitcode(st) != 0:
                    raise RuntimeError("%s failed" % " ".join(argv))
            return statistics.median(out)
        return [("/bin/sh -c :", wall(["/bin/sh", "-c", ":"], self.env)),
                ("kickq -s SOCKET status", wall(km.kickq_argv("status"), self.env)),
                ("kickq status (KICKMAIL_CONF: execs kickq-config, which reads the file)",
                 wall([km.kickq_bin, "status"], self.env))]

    def failures(self):
        if not os.path.exists(self.logged):
            return []
        with open(self.logged) as f:
            return f.read().splitlines()


# ---------------------------------------------------------------- 6 and 7

def bench_dialin(procs, km, pf, ports, work, do_radius, do_hook):
    log("== 6/7. dial-in: %s → first connection at the customer's server (%.0f s per cell)"
        % (" and ".join(w for w, on in (("RADIUS Start", do_radius), ("ppp ip-up hook", do_hook))
                        if on), DIAL_BUDGET))
    # the customers' servers under SCHED_FIFO (sink.py --rt), their accepts
    # timestamped in C (--stamper): the timestamps then say when the
    # connection came, not when a busy 2-core machine next ran the sink, nor
    # how long a cold Python interpreter took after accept() (both sides alike)
    km_sink = bench.LatencySink(procs, ports["km_dial"], rt=True, stamp=True)
    pf_sink = bench.LatencySink(procs, ports["pf_dial"], rt=True, stamp=True) if do_hook else None
    note_cmd("6/7. customer's server (SCHED_FIFO 10: timestamps each accept at once, in C)",
             "tests/bench/sink.py 127.0.0.1 PORT --idle-ms %d --rt --stamper acceptstamp"
             % bench.SINK_IDLE_MS)
    rad = RadiusKicker(ports["radius"])
    hooks = PppHooks(work, km, pf) if do_hook else None
    if do_radius:
        note_cmd("6. reference: control socket (kickq link down between)",
                 "connect(%s); send 'link\\tup\\t%s\\t127.0.0.1\\n'" % (km.sock, DIAL))
        note_cmd("6. RADIUS Start (Stop between samples)", "Accounting-Request from a Python "
                 "socket: Acct-Status-Type Start, User-Name %s, Acct-Session-Id lat-N, "
                 "NAS-Identifier bench-nas, Framed-IP-Address 127.0.0.1 → 127.0.0.1:%d"
                 % (DIAL_USER, ports["radius"]))
    sizes = [1, 1000, 10000]
    have = 0
    res = {}
    for size in sizes:
        bench.smtp_source(km.port, size - have, "user@" + DIAL_DOMAIN, "6/7. fill kickmail")
        if do_hook:
            bench.smtp_source(pf.port, size - have, "user@" + DIAL_DOMAIN, "7. fill Postfix")
            pf.wait_settled()
        have = size
        cells = []
        if do_radius:
            cells.append(("kickmail RADIUS Start", km_sink, rad.kick, rad.reap, rad.stop, None))
            # the same link change without RADIUS, as a reference under the same load
            ctl_kick, ctl_reap = bench.ctl_kicker(km.sock, b"link\tup\t%s\t127.0.0.1\n"
                                                  % DIAL.encode())
            cells.append(("kickmail control link up", km_sink, ctl_kick, ctl_reap,
                          lambda: km.kickq("link", "down", DIAL), None))
        if do_radius and os.environ.get("BENCH_CTL_FIRST"):
            cells.insert(0, cells.pop())
        if do_hook:
            cells.append(("kickmail ip-up hook", km_sink, hooks.km_up, hooks.reap,
                          hooks.km_down, None))
            cells.append(("Postfix ip-up hook", pf_sink, hooks.pf_up, hooks.reap, None,
                          lambda: pf.busy() == 0))
        for label, sink, kick, reap, between, extra in cells:
            t0 = time.monotonic()
            n_ans = len(rad.answers)
            least = PF_MIN_10K if label.startswith("Postfix") and size >= 10000 else bench.MIN_KICKS
            lats = bench.latency_cell(label, sink, kick, reap, between, extra, budget=DIAL_BUDGET,
                                      min_kicks=least)
            res[(label, size)] = lats
            log("   %-24s %6d held: n=%3d p50 %7.2f ms  p99 %7.2f ms  max %7.2f ms "
                "(sample %d)  sample 1 %.2f ms  (%.0f s)" % (
                    label, size, len(lats), pctl(lats, 50), pctl(lats, 99), max(lats),
                    lats.index(max(lats)) + 1, lats[0], time.monotonic() - t0))
            if label.endswith("RADIUS Start"):
                res[("answer", size)] = rad.answers[n_ans:]
        held = km.held(DIAL)
        if held != size:
            NOTES.append("dial-in: kickmail held %d for %s instead of %d" % (held, DIAL, size))
    km_sink.stop()
    if pf_sink:
        pf_sink.stop()
    if hooks and hooks.failures():
        raise RuntimeError("the kickmail ppp hooks logged failures: %s" % hooks.failures()[:3])
    for size in sizes:
        held = format(size, ",")
        if do_radius:
            lats, ans = res[("kickmail RADIUS Start", size)], res[("answer", size)]
            row(6, "RADIUS Start→connect, %s held, p50/p99 (n=%d)" % (held, len(lats)),
                "%.2f / %.2f ms" % (pctl(lats, 50), pctl(lats, 99)), None, "ms", "p99 ≤ 2 ms",
                pctl(lats, 99) <= 2.0, ratio="")
            row(6, "RADIUS Start→Accounting-Response (link change durable), %s held, p50/p99"
                % held, "%.2f / %.2f ms" % (pctl(ans, 50), pctl(ans, 99)), None, "ms", "—",
                None, ratio="")
            ref = res[("kickmail control link up", size)]
            row(6, "reference: control-socket link up→connect, %s held, p50/p99 (n=%d)"
                % (held, len(ref)), "%.2f / %.2f ms" % (pctl(ref, 50), pctl(ref, 99)), None,
                "ms", "—", None, ratio="")
        if do_hook:
            k, p = res[("kickmail ip-up hook", size)], res[("Postfix ip-up hook", size)]
            n = "n=%d/%d" % (len(k), len(p))
            row(7, "ppp ip-up hook→connect, %s held, p50 (%s)" % (held, n),
                pctl(k, 50), pctl(p, 50), "ms", "—", None)
            row(7, "ppp ip-up hook→connect, %s held, p99 (%s)" % (held, n),
                pctl(k, 99), pctl(p, 99), "ms", "side by side: below Postfix's",
                pctl(k, 99) < pctl(p, 99))
    if do_hook:
        costs = hooks.costs(km)
        log("   the kickmail hook's parts alone: " + "; ".join("%s %.2f ms" % c for c in costs))
        NOTES.append("ppp hooks (7): the kickmail ip-up hook is /bin/sh running `kickq -w 5 "
                     "link up --user ... --session ...` (kickq's own 5 s bound, no timeout(1)), "
                     "kickq reading KICKMAIL_CONF; "
                     "each part alone (median of 30 spawns): " +
                     "; ".join("%s %.2f ms" % c for c in costs) +
                     ". The Postfix hook is /bin/sh running postqueue -s")
    return res


# ---------------------------------------------------------------- 8. storm

def storm_daemon(procs, build, work):
    d = os.path.join(work, "storm")
    os.makedirs(d, exist_ok=True)
    rport = free_udp_port()
    km = bench.Kickmail(build, d, procs, bench.free_port(),
                        {"held": ("held.example", bench.free_port())})
    with open(km.conf, "a") as f:
        f.write(radius_section(rport))
        for k in range(STORM_CUST):
            f.write('customer "s%05d" { domains = {"s%05d.example"} deliver = "link" }\n'
                    % (k, k))
    km.radius_port = rport
    return km


def run_senders(procs, port, rounds, during=None):
    """STORM_SENDERS radsend.py processes over the customers, started
    together; during(): run while they send (then they are told to stop, with
    rounds = 0).  Returns their results merged."""
    per = STORM_CUST // STORM_SENDERS
    ps = []
    for i in range(STORM_SENDERS):
        cnt = per if i < STORM_SENDERS - 1 else STORM_CUST - per * i
        argv = [sys.executable, os.path.join(bench.HERE, "radsend.py"), str(port),
                SECRET.decode(), str(i * per), str(cnt), "--window", str(STORM_WINDOW),
                "--rounds", str(rounds)]
        note_cmd("8. storm sender %d" % (i + 1), argv)
        ps.append(procs.spawn(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE))
    for p in ps:
        if p.stdout.readline().strip() != b"ready":
            raise RuntimeError("a storm sender did not start")
    for p in ps:
        p.stdin.write(b"go\n")
        p.stdin.flush()
    extra = during() if during else None
    if rounds == 0:
        for p in ps:
            p.send_signal(signal.SIGUSR1)
    out = []
    for p in ps:
        line = p.stdout.readline()
        p.wait(timeout=60)
        procs.stop(p)
        if not line:
            raise RuntimeError("a storm sender ended without results")
        out.append(json.loads(line))
    m = dict(sent=sum(o["sent"] for o in out), answered=sum(o["answered"] for o in out),
             lost=sum(o["lost"] for o in out), bad=sum(o["bad"] for o in out),
             lat_ms=[u / 1000.0 for o in out for u in o["lat_us"]])
    m["seconds"] = (max(o["last"] or 0 for o in out) - min(o["first"] for o in out)) / 1e9
    m["rate"] = m["answered"] / m["seconds"] if m["seconds"] > 0 else 0
    return m, extra


def bench_storm(procs, build, work):
    log("== 8. accounting storm: %d Start/Stop for %d customers, %d senders × window %d" % (
        2 * STORM_CUST, STORM_CUST, STORM_SENDERS, STORM_WINDOW))
    km = storm_daemon(procs, build, work)
    t0 = time.monotonic()
    km.start()
    log("   kickmaild with %d customers ready in %.2f s" % (STORM_CUST, time.monotonic() - t0))
    rcpt = "user@held.example"
    try:
        e0 = udp_rcvbuf_errors()
        c0 = bench.proc_cpu(km.pid())
        st, _ = run_senders(procs, km.radius_port, 1)
        cpu = bench.proc_cpu(km.pid()) - c0
        lost_kernel = udp_rcvbuf_errors() - e0
        log("   storm: %d sent, %d answered in %.2f s = %.0f answers/s; answer time p50 %.2f "
            "p99 %.2f ms; %d lost (kernel receive-buffer drops %d), %d bad; kickmaild %.0f %% "
            "of a core" % (st["sent"], st["answered"], st["seconds"], st["rate"],
                           pctl(st["lat_ms"], 50), pctl(st["lat_ms"], 99), st["lost"],
                           lost_kernel, st["bad"], 100 * cpu / max(st["seconds"], 1e-9)))
        stats = dict(line.split(None, 1) for line in km.kickq("stats").stdout.splitlines()
                     if line.strip())
        up = sum(1 for line in km.kickq("links", "--json").stdout.splitlines()
                 if line.strip() and json.loads(line).get("state") == "up")
        # SMTP accept without and during a storm, alternated
        alone, loaded, during_rate, during_lost = [], [], [], 0
        note_cmd("8. accept without / during a storm", "smtp-source -s 20 -l 4096 -m %d -t %s"
                 % (STORM_ACCEPT, rcpt))
        for _ in range(2):
            alone.append(STORM_ACCEPT / bench.smtp_source(km.port, STORM_ACCEPT, rcpt,
                                                          "8. accept without a storm"))

            def accept():
                time.sleep(0.2)         # the storm under way
                return STORM_ACCEPT / bench.smtp_source(km.port, STORM_ACCEPT, rcpt,
                                                        "8. accept during a storm")
            m, r = run_senders(procs, km.radius_port, 0, during=accept)
            loaded.append(r)
            during_rate.append(m["rate"])
            during_lost += m["lost"]
        log("   SMTP accept without a storm %s msg/s, during one %s msg/s (storm meanwhile %s "
            "answers/s, %d lost)" % (
                " ".join("%.0f" % x for x in alone), " ".join("%.0f" % x for x in loaded),
                " ".join("%.0f" % x for x in during_rate), during_lost))
    finally:
        km.stop()
    row(8, "storm: %s Start/Stop for %s customers, %d senders × %d outstanding: answers/s"
        % (format(2 * STORM_CUST, ","), format(STORM_CUST, ","), STORM_SENDERS, STORM_WINDOW),
        "%.0f /s" % st["rate"], None, "", "≥ 20,000/s", st["rate"] >= 20000, ratio="")
    row(8, "storm: packets lost (no answer within 1 s; kernel receive-buffer drops %d)"
        % lost_kernel, "%d of %d" % (st["lost"], st["sent"]), None, "", "0",
        st["lost"] == 0 and st["sent"] == 2 * STORM_CUST, ratio="")
    row(8, "storm: answer time (send → verified Accounting-Response) p50/p99",
        "%.2f / %.2f ms" % (pctl(st["lat_ms"], 50), pctl(st["lat_ms"], 99)), None, "", "—",
        None, ratio="")
    a, b = statistics.median(alone), statistics.median(loaded)
    row(8, "SMTP accept (smtp-source -m %d), without → during a storm (medians of 2)"
        % STORM_ACCEPT, "%.0f → %.0f msg/s (%.2f×)" % (a, b, b / a), None, "", "—", None,
        ratio="")
    NOTES.append("storm (8): kickmaild used %.0f %% of one core while answering; its counters "
                 "after it: radius.requests.start %s, .stop %s, radius.answered %s; %d links "
                 "up after (every Stop is its Start's session: 0 expected); during the accept "
                 "runs the storm went on at %s answers/s (%d lost)" % (
                     100 * cpu / max(st["seconds"], 1e-9),
                     stats.get("radius.requests.start", "?"), stats.get("radius.requests.stop", "?"),
                     stats.get("radius.answered", "?"), up,
                     "/".join("%.0f" % x for x in during_rate), during_lost))
    return st

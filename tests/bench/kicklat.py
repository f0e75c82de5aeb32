#!/usr/bin/python3
"""Kick latency of kickmail alone, by hand (not part of make check or make bench).

    tests/bench/kicklat.py [BUILD_DIR] [--sizes 1,1000,10000] [--kicks 200]
                           [--spawns 200] [--budget SECONDS]

Starts a private kickmaild (copies of BUILD_DIR's kickmaild and kickq in a
temporary directory; default build/) with one customer, cust2, whose fixed
mail host is tests/bench/sink.py (answers MAIL with 450, so held mail stays
held and every kick can be repeated), and measures:

  - `kickq -s SOCK status`: wall time of posix_spawn → exit, --spawns times
    (and /bin/true the same way, for what starting any process costs here);
  - with 1, 1,000 and 10,000 messages held for cust2 (filled with Postfix's
    smtp-source when installed, else Python's smtplib), the time from the
    kick to the sink's accept() of the delivery connection, for:
      ETRN on an open SMTP session (the daemon's best case),
      "kick\\tcust2\\n" written on a fresh control-socket connection,
      `kickq -s SOCK kick cust2` (posix_spawn included).

Prints p50/p99/max per cell.  The same method as the kick-latency part of
bench.py (whose classes it reuses), without Postfix, in about a minute or
two.  Timings on a shared 2-core VM are noisy: compare runs made back to back.
"""
import argparse
import os
import shutil
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402  (classes and kickers of the full benchmark)


def spawn_wall(argv, n):
    """Wall time (ms) of posix_spawn → waitpid of argv, n times."""
    devnull = os.open(os.devnull, os.O_RDWR)
    fa = [(os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, devnull, 1)]
    out = []
    for _ in range(n):
        t0 = time.monotonic_ns()
        pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=fa)
        _, st = os.waitpid(pid, 0)
        out.append((time.monotonic_ns() - t0) / 1e6)
        if os.waitstatus_to_exitcode(st) != 0:
            raise RuntimeError("%s failed" % " ".join(argv))
    os.close(devnull)
    return out


def fill(port, n, rcpt):
    if n <= 0:
        return
    if os.path.exists(bench.SMTP_SOURCE):
        bench.smtp_source(port, n, rcpt, "fill")
        return
    s = smtplib.SMTP("127.0.0.1", port)
    body = "Subject: kicklat\r\n\r\n" + "x" * 4000 + "\r\n"
    for _ in range(n):
        s.sendmail("from@x.example", [rcpt], body)
    s.quit()


def show(label, lats):
    print("  %-36s n=%3d  p50 %6.3f  p90 %6.3f  p99 %6.3f  max %6.3f ms  >2 ms: %d" % (
        label, len(lats), bench.pctl(lats, 50), bench.pctl(lats, 90), bench.pctl(lats, 99),
        max(lats), sum(1 for x in lats if x > 2.0)), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build", nargs="?", default=os.path.join(bench.ROOT, "build"))
    ap.add_argument("--sizes", default="1,1000,10000")
    ap.add_argument("--kicks", type=int, default=200)
    ap.add_argument("--spawns", type=int, default=200)
    ap.add_argument("--budget", type=float, default=20.0, help="seconds per kick cell")
    a = ap.parse_args()
    bench.N_KICKS = a.kicks
    bench.KICK_BUDGET = a.budget
    work = tempfile.mkdtemp(prefix="kicklat.")
    bindir = os.path.join(work, "bin")
    os.makedirs(bindir)
    for name in ("kickmaild", "kickq", "kickq-config"):
        if os.path.exists(os.path.join(a.build, name)):
            shutil.copy2(os.path.join(a.build, name), bindir)
    procs = bench.Procs(work)
    sink_port, smtp_port = bench.free_port(), bench.free_port()
    km = bench.Kickmail(bindir, work, procs, smtp_port, {"cust2": ("cust2.example", sink_port)})
    with open("/proc/loadavg") as f:
        print("load average: %s; build %s (git %s)" % (
            " ".join(f.read().split()[:3]), a.build,
            subprocess.run(["git", "-C", bench.ROOT, "describe", "--always", "--dirty"],
                           capture_output=True, text=True).stdout.strip()), flush=True)
    try:
        km.start()
        sink = bench.LatencySink(procs, sink_port)
        show("/bin/true (process start alone)", spawn_wall(["/bin/true"], a.spawns))
        show("kickq status (start-up + round trip)", spawn_wall(km.kickq_argv("status"), a.spawns))
        have = 0
        for size in [int(x) for x in a.sizes.split(",")]:
            fill(smtp_port, size - have, "user@cust2.example")
            have = size
            held = km.held("cust2")
            print("%d held (summary says %d):" % (size, held), flush=True)
            kq_kick, kq_reap = bench.spawn_kicker(km.kickq_argv("kick", "cust2"))
            ctl_kick, ctl_reap = bench.ctl_kicker(km.sock, b"kick\tcust2\n")
            for label, kick, reap in (
                    ("ETRN → connect", bench.etrn_kicker(smtp_port, "cust2.example"), None),
                    ("control socket kick → connect", ctl_kick, ctl_reap),
                    ("kickq kick → connect", kq_kick, kq_reap)):
                show(label, bench.latency_cell(label, sink, kick, reap))
    finally:
        km.stop()
        procs.stop_all()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""kickmail against Postfix, side by side, on this machine (`make bench`).

    bench.py BUILD_DIR WORK_DIR

tests/bench/run installs Postfix when missing, creates WORK_DIR and cleans up
after us (a backstop: this script stops everything it started itself).  Every
process we start is written to WORK_DIR/pids, so that the shell's EXIT trap
can end it even if this script dies.

Benchmarks (numbers as in issue 4; RESULTS.md describes the method):
  1. accept:  smtp-source -s 20 -l 4096 -m 10000 into smtp-sink (the load
              tool's ceiling), kickmail and Postfix in turn, 3 rounds -> msg/s
  2. flush:   each round's 10,000 held messages to smtp-sink -M 10000 after a
              kick (`kickq kick` / `postqueue -s`) -> msg/s
  3. kick latency: kick -> first TCP connection at the customer's server with
              1, 1,000 and 10,000 messages held, p50/p99
  4. scale:   1,000,000 held messages for 100,000 customers of the SQLite
              customer map, written by tests/bench/genspool: restart to serving,
              index memory per message, a kick among them
  5. connections: 10,000 idle SMTP sessions to a fresh kickmaild: memory per
              session, transaction latency with and without them
  6. radius:  RADIUS Start -> first connection at the customer's server, with
              1, 1,000 and 10,000 held (tests/bench/dialin.py)
  7. ppphook: the same through the pppd ip-up hook, beside Postfix's ip-up
              hook running postqueue -s (dialin.py)
  8. storm:   20,000 RADIUS Start/Stop for 10,000 customers from 4 senders:
              answers/s, answer time, lost; SMTP accept during it (dialin.py)
  9. pop3:    POP3 side by side with a private Dovecot over the same maildir
              files (pop3bench.py, pop3load.py)
  10. local:  10,000 messages into 100 maildrops, kickmail vs Postfix
              virtual(8), from one tests/bench/smtpload process with 20
              sessions (pop3bench.py); run before 9 (see main())
  11. odmr:   ATRN → first message at the customer's side (a Python ODMR
              client), 1 and 1,000 held, p50/p99 (odmrbench.py)
  and a perf profile of kickmaild's accept path.

Environment knobs (defaults in brackets): BENCH_MESSAGES [10000], BENCH_ROUNDS
[3] (accept and flush are run that many times, the table shows the median),
BENCH_KICKS [200], BENCH_KICK_BUDGET seconds per latency cell [25],
BENCH_SESSIONS [10000], BENCH_PROFILE [1] (perf profile of the accept path),
BENCH_RESULTS [tests/bench/RESULTS.md; "-" = do not write], BENCH_ONLY
[accept,flush,sessions,latency,scale,profile,radius,ppphook,storm,pop3,local,odmr:
the phases to run; flush implies accept], BENCH_SCALE_MESSAGES [1000000],
BENCH_SCALE_CUSTOMERS [100000]; dialin.py's knobs for phases 6-8,
pop3bench.py's for 9-10.
"""
import os
import re
import resource
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

from benchlib import *  # noqa: F401,F403 (the machinery; phase modules use bench.X)
from benchlib import NOTES, PHASE_TIMES, PROFILE_SYSCALLS, log  # noqa: F401


# ---------------------------------------------------------------- benchmarks

def accept_customers():
    """The held customers of the accept rounds: round i fills ACCEPT_CUST[i]
    (cust1 first), and the flush benchmark empties each of them again."""
    return ["cust1"] + ["acc%d" % i for i in range(2, ROUNDS + 1)]


def spread(values, unit):
    return "%s (min %.0f, max %.0f %s over %d rounds)" % (
        "%.0f %s" % (statistics.median(values), unit), min(values), max(values), unit,
        len(values))


def bench_accept(procs, km, pf, ports):
    log("== 1. accept: %d rounds of %d messages, smtp-source -s 20 -l 4096 (ceiling, kickmail, "
        "Postfix in turn)" % (ROUNDS, N_MSG))
    ceil, kmr, pfr = [], [], []
    cpu = []
    for i, cust in enumerate(accept_customers()):
        rcpt = "user@%s.example" % cust
        sink, argv = start_smtp_sink(procs, ports["ceiling"])
        note_cmd("1. ceiling sink", argv)
        c0 = proc_cpu(sink.pid)
        t_ceil = smtp_source(ports["ceiling"], N_MSG, rcpt, "1. ceiling (round %d)" % (i + 1))
        src_ceil = LAST_SOURCE_CPU[0]
        sink_cpu = proc_cpu(sink.pid) - c0
        procs.stop(sink)
        ceil.append(N_MSG / t_ceil)

        c0 = proc_cpu(km.pid())
        t_km = smtp_source(km.port, N_MSG, rcpt, "1. accept kickmail (round %d)" % (i + 1))
        src_km = LAST_SOURCE_CPU[0]
        km_cpu = proc_cpu(km.pid()) - c0
        kmr.append(N_MSG / t_km)
        held = km.held(cust)
        if held != N_MSG:
            raise RuntimeError("kickmail holds %d messages for %s, expected %d" % (held, cust, N_MSG))

        t_pf = smtp_source(pf.port, N_MSG, rcpt, "1. accept Postfix (round %d)" % (i + 1))
        pfr.append(N_MSG / t_pf)
        t0 = time.monotonic()
        pf.wait_settled()
        log("   round %d: ceiling %.0f msg/s (smtp-source %.0f %% CPU, smtp-sink %.0f %%); "
            "kickmail %.0f msg/s (smtp-source %.0f %%, kickmaild %.0f %% = %.0f µs/msg); "
            "Postfix %.0f msg/s (settled %.1f s later)" % (
                i + 1, ceil[-1], 100 * src_ceil / t_ceil, 100 * sink_cpu / t_ceil, kmr[-1],
                100 * src_km / t_km, 100 * km_cpu / t_km, 1e6 * km_cpu / N_MSG, pfr[-1],
                time.monotonic() - t0))
        cpu.append((100 * src_ceil / t_ceil, 100 * sink_cpu / t_ceil, 1e6 * sink_cpu / N_MSG,
                    100 * src_km / t_km, 100 * km_cpu / t_km, 1e6 * km_cpu / N_MSG))
    # each round's figures were taken within seconds of each other: the
    # ratios are per round (the machine's load drifts between rounds), then
    # the median of those
    c, k, p = statistics.median(ceil), statistics.median(kmr), statistics.median(pfr)
    r_pf = statistics.median(a / b for a, b in zip(kmr, pfr))
    r_km_ceil = statistics.median(a / b for a, b in zip(kmr, ceil))
    r_pf_ceil = statistics.median(a / b for a, b in zip(pfr, ceil))
    row(1, "accept, %d × 4 KB, 20 sessions (medians of %d rounds)" % (N_MSG, ROUNDS), k, p,
        "msg/s", "≥ 5× Postfix", r_pf >= 5, ratio=r_pf)
    row(1, "accept as %% of the load tool's ceiling (median ceiling %.0f msg/s)" % c,
        100.0 * r_km_ceil, 100.0 * r_pf_ceil, "%", "≥ 70 %", r_km_ceil >= 0.7, ratio="")
    NOTES.append("accept rounds: ceiling %s; kickmail %s; Postfix %s" % (
        spread(ceil, "msg/s"), spread(kmr, "msg/s"), spread(pfr, "msg/s")))
    m = [statistics.median(x[j] for x in cpu) for j in range(6)]
    NOTES.append("accept CPU, medians (100 %% = one core): ceiling runs smtp-source %.0f %%, "
                 "smtp-sink %.0f %% (%.0f µs/msg); kickmail runs smtp-source %.0f %%, kickmaild "
                 "%.0f %% (%.0f µs/msg, all threads)" % tuple(m))
    return dict(ceiling=c, km=k, pf=p)


def bench_flush(procs, km, pf, ports):
    log("== 2. flush: %d × %d held messages -> smtp-sink -M %d" % (ROUNDS, N_MSG, N_MSG))
    res = {"kickmail": [], "Postfix": []}
    for i, cust in enumerate(accept_customers()):
        for name in ("kickmail", "Postfix"):
            port = ports[("km_" if name == "kickmail" else "pf_") + cust]
            sink, argv = start_smtp_sink(procs, port, count=N_MSG)
            note_cmd("2. customer server (%s)" % name, argv)
            if name == "kickmail":
                cmd = km.kickq_argv("kick", cust)
            else:
                cmd = pf.flush_cmd(cust + ".example")
            note_cmd("2. flush %s (round %d)" % (name, i + 1), cmd)
            t0 = time.monotonic()
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
            if r.returncode != 0:
                raise RuntimeError("%s: %s%s" % (" ".join(cmd), r.stdout, r.stderr))
            try:
                sink.wait(timeout=600)
            except subprocess.TimeoutExpired:
                raise RuntimeError("%s: the sink did not get %d messages" % (name, N_MSG))
            dt = time.monotonic() - t0
            procs.stop(sink)
            res[name].append(N_MSG / dt)
            if name == "Postfix":
                pf.wait_settled()
            else:
                time.sleep(0.5)
        log("   round %d: kickmail %.0f msg/s, Postfix %.0f msg/s" % (
            i + 1, res["kickmail"][-1], res["Postfix"][-1]))
    k, p = statistics.median(res["kickmail"]), statistics.median(res["Postfix"])
    r = statistics.median(a / b for a, b in zip(res["kickmail"], res["Postfix"]))
    row(2, "flush %d held → smtp-sink (medians of %d rounds)" % (N_MSG, ROUNDS), k, p, "msg/s",
        "≥ 5× Postfix", r >= 5, ratio=r)
    NOTES.append("flush rounds: kickmail %s; Postfix %s" % (
        spread(res["kickmail"], "msg/s"), spread(res["Postfix"], "msg/s")))
    return res


def fill(km, pf, n, domain):
    """Adds n held messages for domain to both servers."""
    if n <= 0:
        return
    smtp_source(km.port, n, "user@" + domain, "3. fill kickmail")
    smtp_source(pf.port, n, "user@" + domain, "3. fill Postfix")
    pf.wait_settled()


def etrn_kicker(port, domain):
    def kick():
        c = Smtp(port)
        try:
            r = c.reply()
            assert r.startswith("220"), r
            r = c.cmd("EHLO client.bench.example")
            assert r.startswith("250"), r
            t0 = time.monotonic_ns()
            c.sock.sendall(b"ETRN " + domain.encode() + b"\r\n")
            r = c.reply()
            if not r[:3] in ("250", "251", "252", "253"):
                raise RuntimeError("ETRN %s: %s" % (domain, r))
            c.sock.sendall(b"QUIT\r\n")
            return t0
        finally:
            c.close()
    return kick


def spawn_kicker(argv):
    """Runs a command with posix_spawn (no fork of this big process), without
    waiting: the time is taken just before the spawn."""
    devnull = os.open(os.devnull, os.O_RDWR)
    fa = [(os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, devnull, 1)]
    state = {}

    def kick():
        t0 = time.monotonic_ns()
        state["pid"] = os.posix_spawn(argv[0], argv, os.environ, file_actions=fa)
        return t0

    def reap():
        if "pid" in state:
            _, st = os.waitpid(state.pop("pid"), 0)
            if os.waitstatus_to_exitcode(st) != 0:
                raise RuntimeError("%s failed" % " ".join(argv))
    return kick, reap


def ctl_kicker(sockpath, line):
    state = {}

    def kick():
        t0 = time.monotonic_ns()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(sockpath)
        s.sendall(line)
        state["s"] = s
        return t0

    def reap():
        s = state.pop("s", None)
        if s:
            s.settimeout(30)
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            s.close()
            if not data.startswith(b"0"):
                raise RuntimeError("control kick: %r" % data[:200])
    return kick, reap


def latency_cell(label, sink, kick, reap=None, between=None, extra_idle=None, budget=None,
                 min_kicks=MIN_KICKS):
    lats = []
    t_end = time.monotonic() + (KICK_BUDGET if budget is None else budget)
    for i in range(N_KICKS):
        if i >= min_kicks and time.monotonic() > t_end:
            break
        sink.wait_quiet(extra=extra_idle)
        t0 = kick()
        ta = sink.first_accept_after(t0, timeout=60)
        if ta is None:
            raise RuntimeError("%s: no connection at the customer's server within 60 s" % label)
        lats.append((ta - t0) / 1e6)
        if reap:
            reap()
        sink.wait_quiet(extra=extra_idle)
        if between:
            between()
    return lats


def bench_kick_latency(procs, km, pf, ports):
    log("== 3. kick latency (kick -> first connection at the customer's server)")
    domain = "cust2.example"
    # as phases 6/7: the sink at SCHED_FIFO, its accepts timestamped in C
    # (a Python timestamp lagged the kernel's accept by 1-2 ms at times)
    km_sink = LatencySink(procs, ports["km_cust2"], rt=True, stamp=True)
    pf_sink = LatencySink(procs, ports["pf_cust2"], rt=True, stamp=True)
    note_cmd("3. customer server (answers MAIL with 450; closes connections idle %d ms)"
             % SINK_IDLE_MS, "tests/bench/sink.py 127.0.0.1 PORT --idle-ms %d --rt --stamper "
             "acceptstamp" % SINK_IDLE_MS)
    note_cmd("3. kick: ETRN (both)", "EHLO client.bench.example, then: ETRN cust2.example")
    note_cmd("3. kick: kickq kick", km.kickq_argv("kick", "cust2"))
    note_cmd("3. kick: kickq link up (link down between kicks)", km.kickq_argv("link", "up", "cust2"))
    note_cmd("3. kick: control socket", "connect(%s); send 'kick\\tcust2\\n'" % km.sock)
    sizes = [1, 1000, 10000]
    have = 0
    res = {}
    spawn_cost = []
    st_kick, st_reap = spawn_kicker(km.kickq_argv("status"))
    for _ in range(50):     # what starting kickq costs by itself (status round trip),
        t0 = st_kick()      # spawned the way the kicks are
        st_reap()
        spawn_cost.append((time.monotonic_ns() - t0) / 1e6)
    res["kickq_status_ms"] = statistics.median(spawn_cost)
    for size in sizes:
        fill(km, pf, size - have, domain)
        have = size
        kq_kick, kq_reap = spawn_kicker(km.kickq_argv("kick", "cust2"))
        lu_kick, lu_reap = spawn_kicker(km.kickq_argv("link", "up", "cust2"))
        ctl_kick, ctl_reap = ctl_kicker(km.sock, b"kick\tcust2\n")
        cells = [
            ("kickmail ETRN", km_sink, etrn_kicker(km.port, domain), None, None, None),
            ("kickmail kickq kick", km_sink, kq_kick, kq_reap, None, None),
            ("kickmail kickq link up", km_sink, lu_kick, lu_reap,
             lambda: km.kickq("link", "down", "cust2"), None),
            ("kickmail control socket kick", km_sink, ctl_kick, ctl_reap, None, None),
            ("Postfix ETRN", pf_sink, etrn_kicker(pf.port, domain), None, None,
             lambda: pf.busy() == 0),
        ]
        for label, sink, kick, reap, between, extra in cells:
            t0 = time.monotonic()
            lats = latency_cell(label, sink, kick, reap, between, extra)
            res[(label, size)] = lats
            log("   %-30s %6d held: n=%3d p50 %7.2f ms  p99 %7.2f ms  max %7.2f ms  (%.0f s)" % (
                label, size, len(lats), pctl(lats, 50), pctl(lats, 99), max(lats),
                time.monotonic() - t0))
        hk, hp = km.held("cust2"), pf.count("deferred", "incoming", "active")
        if hk != size:
            NOTES.append("kick latency: kickmail held %d for cust2 instead of %d" % (hk, size))
    km_sink.stop()
    pf_sink.stop()
    for size in sizes:
        pfl = res[("Postfix ETRN", size)]
        for label in ("kickmail ETRN", "kickmail kickq kick", "kickmail kickq link up",
                      "kickmail control socket kick"):
            lats = res[(label, size)]
            km99, km50 = pctl(lats, 99), pctl(lats, 50)
            pf99, pf50 = pctl(pfl, 99), pctl(pfl, 50)
            how = label.replace("kickmail ", "")
            n = "n=%d" % len(lats)
            if label == "kickmail ETRN":
                n += "/%d" % len(pfl)
                row(3, "kick→connect, %s held, %s p50 (%s)" % (format(size, ","), how, n),
                    km50, pf50, "ms", "—", None)
                row(3, "kick→connect, %s held, %s p99 (%s)" % (format(size, ","), how, n),
                    km99, pf99, "ms", "p99 ≤ 2 ms", km99 <= 2.0)
            else:
                row(3, "kick→connect, %s held, %s p50/p99 (%s)" % (format(size, ","), how, n),
                    "%.2f / %.2f ms" % (km50, km99), None, "ms",
                    "p99 ≤ 2 ms", km99 <= 2.0, ratio="")
    NOTES.append("kick latency via kickq includes starting the kickq process: "
                 "`kickq status` alone takes %.2f ms (median; posix_spawn to exit) here; "
                 "the control-socket row is the same kick without it" % res["kickq_status_ms"])
    return res


def open_sessions(port, n, timeout=180):
    """n idle SMTP sessions (greeted, EHLO answered), opened 200 at a time
    from several source addresses (so that ports never run short).  A
    connection that sees no greeting within 3 s is dropped and made again:
    when the listen queue overflows, the kernel drops the handshake's last
    ACK and such a client, which waits for the greeting, would wait forever.
    Returns (sockets, retries)."""
    socks = []
    sources = ["127.0.0.%d" % i for i in range(2, 12)]
    pending = {}            # fd -> [sock, state (0 greeting, 1 EHLO reply), buf, deadline]
    ep = select.epoll()
    inflight = 200
    retries = 0
    made = 0
    end = time.monotonic() + timeout
    while len(socks) < n:
        now = time.monotonic()
        if now > end:
            raise RuntimeError("could open only %d of %d idle sessions in %d s"
                               % (len(socks), n, timeout))
        while made < n and len(pending) < inflight:
            s = socket.socket()
            s.setblocking(False)
            s.bind((sources[made % len(sources)], 0))
            try:
                s.connect(("127.0.0.1", port))
            except BlockingIOError:
                pass
            pending[s.fileno()] = [s, 0, b"", now + 3.0]
            ep.register(s.fileno(), select.EPOLLIN)
            made += 1
        for fd, _ev in ep.poll(0.2):
            ent = pending[fd]
            s, st, buf = ent[0], ent[1], ent[2]
            try:
                data = s.recv(4096)
            except BlockingIOError:
                continue
            if not data:
                raise RuntimeError("kickmail closed an idle session (after %d open): %r"
                                   % (len(socks), buf))
            buf += data
            if st == 0 and buf.endswith(b"\r\n"):
                if not buf.startswith(b"220"):
                    raise RuntimeError("greeting: %r" % buf)
                s.send(b"EHLO idle.bench.example\r\n")
                pending[fd] = [s, 1, b"", time.monotonic() + 10.0]
            elif st == 1 and re.search(rb"(^|\r\n)250 [^\r\n]*\r\n$", buf):
                ep.unregister(fd)
                del pending[fd]
                socks.append(s)
            else:
                ent[2] = buf
        now = time.monotonic()
        for fd, ent in list(pending.items()):
            if now > ent[3]:
                if ent[1] == 1:
                    raise RuntimeError("no EHLO reply on an idle session")
                ep.unregister(fd)
                ent[0].close()
                del pending[fd]
                made -= 1
                retries += 1
    ep.close()
    return socks, retries


def bench_connections(procs, build, work, pf):
    log("== 5. %d idle SMTP sessions to a fresh kickmaild" % N_SESSIONS)
    # a daemon of its own: empty spool, no memory freed by earlier phases
    # for the sessions to reuse
    km = Kickmail(build, os.path.join(work, "sessions"), procs, free_port(),
                  {"cust3": ("cust3.example", free_port())})
    km.start()
    body = (b"From: <from@x.example>\r\nTo: <user@cust3.example>\r\nSubject: latency\r\n\r\n"
            + b"x" * 70 + b"\r\n") * 1
    body += (b"y" * 70 + b"\r\n") * 13     # about 1 KB
    rcpt = "user@cust3.example"
    n_tx = 400          # per block; blocks alternate without / with the sessions

    def latencies():
        out = []
        for _ in range(n_tx):
            out.append(transaction(km.port, rcpt, body) * 1000)
        return out

    latencies()                                     # warm up
    base, loaded = [], []
    rss0 = rss1 = per = None
    for cycle in range(2):
        base += latencies()
        time.sleep(0.3)
        r0 = rss_kb(km.pid())
        t0 = time.monotonic()
        socks, retries = open_sessions(km.port, N_SESSIONS)
        t_open = time.monotonic() - t0
        if retries:
            NOTES.append("idle sessions: %d connections saw no greeting within 3 s and were "
                         "made again (listen queue overflow: kickmaild listens with a backlog "
                         "of 1024)" % retries)
        time.sleep(1.0)
        r1 = rss_kb(km.pid())
        if cycle == 0:
            rss0, rss1 = r0, r1
            per = (rss1 - rss0) / float(N_SESSIONS)
            log("   opened %d sessions in %.1f s; RSS %d KB -> %d KB: %.2f KB per session" % (
                len(socks), t_open, rss0, rss1, per))
        loaded += latencies()
        for so in socks:
            so.close()
        time.sleep(0.5)
    base += latencies()
    km.stop()
    log("   transaction latency without / with: p50 %.2f / %.2f ms, p99 %.2f / %.2f ms" % (
        pctl(base, 50), pctl(loaded, 50), pctl(base, 99), pctl(loaded, 99)))

    # Postfix's cost of one session: one smtpd process (reference only)
    pf_kb = None
    c = Smtp(pf.port)
    try:
        c.reply()
        c.cmd("EHLO idle.bench.example")
        time.sleep(0.3)
        best = None
        for pid in pf.children():
            try:
                with open("/proc/%d/comm" % pid) as f:
                    if f.read().strip() != "smtpd":
                        continue
            except OSError:
                continue
            pss = smaps_kb(pid, "Pss")
            if pss and (best is None or pss < best[0]):
                best = (pss, rss_kb(pid))
        if best:
            pf_kb = best[0]
            NOTES.append("Postfix runs one smtpd process per session: PSS %d KB, RSS %d KB each "
                         "(and default_process_limit = 100 sessions)" % best)
    finally:
        c.close()
    note_cmd("5. idle sessions", "%d × (connect from 127.0.0.2-11, read 220, EHLO, read 250), "
             "then idle" % N_SESSIONS)
    note_cmd("5. transaction latency", "blocks of %d × (connect, EHLO, MAIL, RCPT, DATA 1 KB, "
             ". → 250) to %s, sequential: without, with, without, with, without the idle "
             "sessions" % (n_tx, rcpt))
    row(5, "memory per idle session (%d sessions, kickmaild RSS %d → %d KB)" % (
        N_SESSIONS, rss0, rss1), per, pf_kb, "KB", "≤ 16 KB", per <= 16)
    r50 = pctl(loaded, 50) / pctl(base, 50)
    r99 = pctl(loaded, 99) / pctl(base, 99)
    row(5, "transaction latency p50, without → with %d idle (n=%d / %d)" % (
        N_SESSIONS, len(base), len(loaded)),
        "%.2f → %.2f ms (%.2f×)" % (pctl(base, 50), pctl(loaded, 50), r50), None, "ms",
        "≤ 2×", r50 <= 2.0, ratio="")
    row(5, "transaction latency p99, without → with %d idle (n=%d / %d)" % (
        N_SESSIONS, len(base), len(loaded)),
        "%.2f → %.2f ms (%.2f×)" % (pctl(base, 99), pctl(loaded, 99), r99), None, "ms",
        "≤ 2×", r99 <= 2.0, ratio="")
    return dict(rss0=rss0, rss1=rss1, per=per)


# ---------------------------------------------------------------- scale

SCALE_MSGS = int(os.environ.get("BENCH_SCALE_MESSAGES", "1000000"))
SCALE_CUST = int(os.environ.get("BENCH_SCALE_CUSTOMERS", "100000"))


def make_map(path, n_cust, deliver, prefix="c"):
    """The customer map of conf/customers.sql with n_cust customers named as
    genspool names them (PREFIX%07u, domain PREFIX%07u.example)."""
    import sqlite3
    with open(os.path.join(ROOT, "conf", "customers.sql")) as f:
        schema = f.read()
    db = sqlite3.connect(path)
    db.executescript(schema)
    names = ["%s%07d" % (prefix, k) for k in range(n_cust)]
    db.execute("BEGIN")
    db.executemany("INSERT INTO customers (name, deliver, etrn_interval) VALUES (?, ?, 0)",
                   ((nm, deliver) for nm in names))
    db.executemany("INSERT INTO domains (domain, customer) VALUES (?, ?)",
                   ((nm + ".example", nm) for nm in names))
    db.execute("COMMIT")
    db.close()


def scale_daemon(procs, build, d, port, customers):
    """A kickmaild for the scale test: spool under d, the generated customers
    (("map", PATH): the SQLite customer map; ("conf", PATH): inline sections)."""
    os.makedirs(d, exist_ok=True)
    km = Kickmail(build, d, procs, port, {})
    with open(km.conf, "a") as f:
        if customers[0] == "map":
            f.write('customer_map = "%s"\n' % customers[1])
        else:
            with open(customers[1]) as c:
                f.write(c.read())
    return km


def timed_start(km):
    """Starts kickmaild; returns (seconds to the `ready` line, seconds to the
    first SMTP greeting), both from the exec."""
    t0 = time.monotonic()
    km.start()
    t_ready = time.monotonic() - t0
    while True:
        try:
            c = Smtp(km.port, timeout=5)
            r = c.reply()
            c.close()
            if r.startswith("220"):
                break
        except OSError:
            pass
        time.sleep(0.005)
    return t_ready, time.monotonic() - t0


def bench_scale(procs, build, work):
    n, m = SCALE_MSGS, SCALE_CUST
    per = max(1, n // m)
    log("== 4. scale: %d held messages across %d customers (%d each)" % (n, m, per))
    gen = build_genspool(build, work)
    sink_port = free_port()
    sink = LatencySink(procs, sink_port)
    base = os.path.join(work, "scale")
    full = os.path.join(base, "full")
    os.makedirs(os.path.join(full, "kickmail"), exist_ok=True)
    use_map = os.path.exists(os.path.join(ROOT, "conf", "customers.sql"))
    deliver = "127.0.0.1:%d" % sink_port
    if use_map:
        customers = ("map", os.path.join(base, "customers.sqlite"))
        t0 = time.monotonic()
        make_map(customers[1], m, deliver)
        log("   customer map with %d customers written in %.1f s" % (m, time.monotonic() - t0))
        note_cmd("4. customer map", "conf/customers.sql + %d rows in customers and domains "
                 "(Python sqlite3), customer_map = \"PATH\"" % m)
        argv = [gen]
    else:
        customers = ("conf", os.path.join(base, "customers.conf"))
        argv = [gen, "-c", customers[1], "-d", deliver]
    argv += [os.path.join(full, "kickmail", "spool"), str(n), str(m)]
    note_cmd("4. generate the spool", argv)
    t0 = time.monotonic()
    r = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        raise RuntimeError("genspool: %s%s" % (r.stdout, r.stderr))
    t_gen = time.monotonic() - t0
    log("   %s (%.1f s)" % (r.stdout.strip(), t_gen))
    target = "c%07d" % 0
    domain = target + ".example"

    def kicks(km, label):
        lats = []
        kick = etrn_kicker(km.port, domain)
        for _ in range(50):
            sink.wait_quiet()
            t = kick()
            ta = sink.first_accept_after(t, timeout=60)
            if ta is None:
                raise RuntimeError("%s: no connection after ETRN" % label)
            lats.append((ta - t) / 1e6)
            sink.wait_quiet()
        return lats

    # the same customers over an empty spool, with the target's share of mail
    empty = scale_daemon(procs, build, os.path.join(base, "empty"), free_port(), customers)
    e_ready, e_serve = timed_start(empty)
    e_rss = rss_kb(empty.pid())
    smtp_source(empty.port, per, "user@" + domain, "4. the target customer's mail (empty spool)")
    e_lat = kicks(empty, "empty spool")
    empty.stop()
    log("   empty spool, %d customers: ready in %.2f s, RSS %d KB; ETRN→connect with %d held: "
        "p50 %.2f p99 %.2f ms" % (m, e_ready, e_rss, per, pctl(e_lat, 50), pctl(e_lat, 99)))

    # a cold start: drop the segments (and only them) from the page cache
    jdir = os.path.join(full, "kickmail", "spool", "journal")
    for name in os.listdir(jdir):
        fd = os.open(os.path.join(jdir, name), os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    km = scale_daemon(procs, build, full, free_port(), customers)
    note_cmd("4. restart over the full spool", [km.kickmaild, "-f", "-c", km.conf])
    f_ready, f_serve = timed_start(km)
    f_rss = rss_kb(km.pid())
    held = km.held(target)
    f_lat = kicks(km, "full spool")
    t0 = time.monotonic()
    km.stop()
    t_stop = time.monotonic() - t0
    sink.stop()
    per_msg = (f_rss - e_rss) * 1024.0 / n
    log("   full spool: ready in %.2f s (first greeting %.2f s), RSS %d KB: %.0f B per held "
        "message; %s holds %d; ETRN→connect p50 %.2f p99 %.2f ms; stop %.1f s" % (
            f_ready, f_serve, f_rss, per_msg, target, held, pctl(f_lat, 50), pctl(f_lat, 99),
            t_stop))
    what = "%s held across %s customers (%s)" % (
        format(n, ","), format(m, ","), "customer map" if use_map else "inline")
    row(4, "restart to serving, %s, segments not in the page cache (exec→first 220)" % what,
        "%.2f s" % f_serve, None, "", "≤ 10 s", f_serve <= 10, ratio="")
    row(4, "index memory per held message (RSS %d → %d KB)" % (e_rss, f_rss),
        "%.0f B" % per_msg, None, "", "≤ 300 B", per_msg <= 300, ratio="")
    row(4, "ETRN→connect for one customer holding %d, p50/p99: empty spool → full (n=50)" % per,
        "%.2f / %.2f → %.2f / %.2f ms" % (pctl(e_lat, 50), pctl(e_lat, 99),
                                          pctl(f_lat, 50), pctl(f_lat, 99)),
        None, "", "the same as empty", pctl(f_lat, 99) <= max(2.0, 1.5 * pctl(e_lat, 99)),
        ratio="")
    if use_map:
        NOTES.append("scale (4): %s customers from the SQLite customer map, %d messages each, "
                     "written by tests/bench/genspool in %.1f s; the daemon with the same map "
                     "and an empty spool served after %.2f s, so %.2f s of the restart is the "
                     "spool" % (format(m, ","), per, t_gen, e_serve, f_serve - e_serve))
    else:
        NOTES.append("scale (4) is a stand-in without the customer map: %s customers inline "
                     "(libconfuse: 100,000 sections take ~84 s to parse), %d messages each; "
                     "spool from tests/bench/genspool (%.1f s); an empty-spool daemon with the "
                     "same customers served after %.2f s, so %.2f s of the restart is the "
                     "spool" % (format(m, ","), per, t_gen, e_serve, f_serve - e_serve))
    if held != per:
        NOTES.append("scale: %s held %d messages after the restart, expected %d" % (
            target, held, per))
    shutil.rmtree(base, ignore_errors=True)


# ---------------------------------------------------------------- profile



def profile_accept(procs, km, ports, work):
    """perf on kickmaild during another accept run: where the time goes,
    syscalls per message.  Diagnostic only (perf slows things down)."""
    perf = shutil.which("perf")
    if not perf:
        NOTES.append("profile skipped: perf not installed (apt-get install linux-perf)")
        return None
    log("== profile: perf on kickmaild during %d more accepts" % N_MSG)
    pid = km.pid()
    data = os.path.join(work, "perf.data")
    stat_out = os.path.join(work, "perf-stat.txt")
    rec = procs.spawn([perf, "record", "-g", "-F", "2000", "-o", data, "-p", str(pid)],
                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    events = ["raw_syscalls:sys_enter", "task-clock", "context-switches"] + \
        ["syscalls:sys_enter_" + c for c in PROFILE_SYSCALLS]
    st = procs.spawn([perf, "stat", "-x,", "-o", stat_out, "-e", ",".join(events),
                      "-p", str(pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    t0 = time.monotonic()
    smtp_source(km.port, N_MSG, "user@cust4.example", "profile")
    dt = time.monotonic() - t0
    for p in (st, rec):
        procs.stop(p, sig=signal.SIGINT, timeout=60)
    out = {"rate": N_MSG / dt}
    try:
        with open(stat_out) as f:
            for line in f:
                fld = line.strip().split(",")
                if len(fld) > 2 and fld[2] in events:
                    try:
                        out[fld[2]] = float(fld[0])
                    except ValueError:
                        pass
    except OSError:
        pass
    r = subprocess.run([perf, "report", "-i", data, "--stdio", "--no-children",
                        "--sort", "symbol", "-g", "none", "--percent-limit", "1.5"],
                       capture_output=True, text=True, timeout=300)
    top = []
    for line in r.stdout.splitlines():
        m = re.match(r"\s+([\d.]+)%\s+\[(.)\]\s+(\S+)", line)
        if m:
            top.append((float(m.group(1)), m.group(2), m.group(3)))
    out["top"] = top[:15]
    r = subprocess.run([perf, "report", "-i", data, "--stdio", "--no-children",
                        "--sort", "dso", "-g", "none", "--percent-limit", "1"],
                       capture_output=True, text=True, timeout=300)
    out["dso"] = []
    for line in r.stdout.splitlines():
        m = re.match(r"\s+([\d.]+)%\s+(\S+)", line)
        if m:
            out["dso"].append((float(m.group(1)), m.group(2)))
    r = subprocess.run([perf, "report", "-i", data, "--stdio", "--no-children",
                        "--sort", "symbol", "-g", "none", "--percent-limit", "0.2"],
                       capture_output=True, text=True, timeout=300)
    user = []
    for line in r.stdout.splitlines():
        m = re.match(r"\s+([\d.]+)%\s+\[(.)\]\s+(\S+)", line)
        if m and m.group(2) == ".":
            user.append((float(m.group(1)), m.group(3)))
    ktotal = sum(pct for pct, d in out["dso"] if d.startswith("[kernel"))
    utotal = max(1e-9, 100.0 - ktotal)
    out["user_share"] = utotal
    out["user"] = [(100.0 * pct / utotal, sym) for pct, sym in user]
    out["seconds"] = dt
    log("   under perf: %.0f msg/s; syscalls/msg %.1f; CPU ms/msg %.3f" % (
        out["rate"], out.get("raw_syscalls:sys_enter", 0) / N_MSG,
        out.get("task-clock", 0) / N_MSG))
    return out


# ---------------------------------------------------------------- main

def main():
    if len(sys.argv) != 3:
        sys.stderr.write("usage: bench.py BUILD_DIR WORK_DIR\n")
        return 2
    build, work = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    os.chmod(work, 0o755)           # Postfix's processes run as the postfix user
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < N_SESSIONS + 1000:
        sys.stderr.write("bench: open files limit %d is too low for %d sessions\n" % (hard, N_SESSIONS))
        return 1
    # run copies: others may rebuild build/ meanwhile, and perf needs the
    # binary that runs to name its functions
    bindir = os.path.join(work, "bin")
    os.makedirs(bindir)
    sys.modules["bench"] = sys.modules[__name__]   # dialin.py imports us as `bench`
    import dialin
    import pop3bench
    import odmrbench
    for name in ("kickmaild", "kickq", "kickq-config", "libkm.a"):
        if name != "kickq-config" or os.path.exists(os.path.join(build, name)):
            shutil.copy2(os.path.join(build, name), bindir)
    build = bindir
    procs = Procs(work)
    custs = accept_customers() + ["cust2", "cust3", "cust4"]
    ports = {"km_smtp": free_port(), "pf_smtp": free_port(), "ceiling": free_port(),
             "km_dial": free_port(), "pf_dial": free_port(), "radius": dialin.free_udp_port()}
    for c in custs:
        ports["km_" + c] = free_port()
        ports["pf_" + c] = free_port()
    km = Kickmail(build, work, procs, ports["km_smtp"],
                  {c: (c + ".example", ports["km_" + c]) for c in custs})
    dial = "radius" in ONLY or "ppphook" in ONLY
    if dial:
        with open(km.conf, "a") as f:
            f.write(dialin.dial_conf(ports["radius"], ports["km_dial"]))
    pf_dests = {c + ".example": ports["pf_" + c] for c in custs}
    pf_dests[dialin.DIAL_DOMAIN] = ports["pf_dial"]
    pf = Postfix(work, procs, ports["pf_smtp"], pf_dests)
    if "local" in ONLY:
        pop3bench.postfix_virtual(pf, work)
    info = {"fs": fs_of(work)}
    with open("/proc/loadavg") as f:
        info["load"] = " ".join(f.read().split()[:3])
    log("load average at start: %s (other work on the machine skews every figure)" % info["load"])
    with open(os.path.join(ROOT, "VERSION")) as f:
        info["km_version"] = f.read().strip()
    prof = None

    def phase(name, fn, *a):
        t0 = time.monotonic()
        r = fn(*a)
        PHASE_TIMES.append((name, time.monotonic() - t0))
        return r

    try:
        pf.start()
        info["pf_version"] = pf.version()
        km.start()
        if "accept" in ONLY or "flush" in ONLY:
            phase("accept", bench_accept, procs, km, pf, ports)
        if "flush" in ONLY:
            phase("flush", bench_flush, procs, km, pf, ports)
        if "sessions" in ONLY:
            phase("sessions", bench_connections, procs, build, work, pf)
        if "latency" in ONLY:
            phase("kick latency", bench_kick_latency, procs, km, pf, ports)
        if "scale" in ONLY:
            phase("scale", bench_scale, procs, build, work)
        if dial:
            phase("dial-in", dialin.bench_dialin, procs, km, pf, ports, work,
                  "radius" in ONLY, "ppphook" in ONLY)
        if "storm" in ONLY:
            phase("storm", dialin.bench_storm, procs, build, work)
        # 10 before 9: phase 9 deletes 40,000 maildir files (DELE of all on
        # both servers), and ext4 without a journal (this machine's root)
        # passes over inodes freed in the last 60 s (6 min while their
        # inode-table block is dirty) at every file creation (recently_deleted()
        # in fs/ext4/ialloc.c): right after phase 9, 40 % of kickmail's
        # delivery CPU went there (perf, 2026-12-07), a cost of the phase
        # before, not of either MTA
        if "local" in ONLY:
            phase("local", pop3bench.bench_local, procs, build, work, pf)
        if "pop3" in ONLY:
            phase("pop3", pop3bench.bench_pop3, procs, build, work)
        if "odmr" in ONLY:
            phase("odmr", odmrbench.bench_odmr, procs, build, work)
        if PROFILE and "profile" in ONLY:
            prof = phase("profile", profile_accept, procs, km, ports, work)
    finally:
        try:
            with open(km.logf, errors="replace") as f:
                m = re.search(r"spool: (fdatasync after an append .*)", f.read())
            if m:
                info["spares"] = m.group(1)
        except OSError:
            pass
        km.stop()
        pf.stop()
        procs.stop_all()
    print_table(info.get("load"))
    write_results(info, prof)
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
    sys.exit(main())

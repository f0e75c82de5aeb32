"""Maildrop benchmarks of issue 12, phases of bench.py (`make bench`):

  9. pop3:  the same maildir contents served by kickmail and by a private
            Dovecot 2.3 POP3 (Debian's dovecot-pop3d; tests/integration/
            dovecot.py), driven by the same client (tests/bench/pop3load.py):
            (a) login + STAT + UIDL on a 20,000-message maildrop,
            (b) RETR of 2,000 × 4 KB in one session,
            (c) 200 concurrent sessions on 200 maildrops (login, STAT, RETR
                of their 20 messages each, QUIT),
            (d) DELE of all 20,000 + QUIT;
            figures and the ratio kickmail/Dovecot (goal ≥ 1.5× on each)
  10. local: 10,000 messages over SMTP into 100 maildrops × 100, kickmail's
            local delivery vs Postfix virtual(8) into maildirs (the private
            Postfix of bench.py), the same smtp-source load; from the first
            connection until the last file is in new/ (goal ≥ 5× Postfix)

Fairness (RESULTS.md says it again): both POP3 servers serve hard links of one
generated tree (genmaildir.py: names with ,S= and ,W= as kickmail writes
them), so the very same files, from the page cache; both check the same
crypt(3) hash (SHA-512 crypt, rounds=1000: the hash is libcrypt's work for
both, not the server's, and a costly one would only add the same
milliseconds to both sides); every workload runs once untimed on each server
first (Dovecot builds its index and uidlist; its processes start), then the
timed rounds alternate kickmail, Dovecot.  Dovecot is tuned the way its
performance notes suggest: login processes in high-performance mode
(service_count = 0) and pop3 processes reused (service_count = 0,
process_limit 1024), which only helps it.

Uses bench.py's helpers and ROWS/NOTES (imported as `bench`).  Knobs:
BENCH_POP3_BIG [20000], BENCH_POP3_RETR [2000], BENCH_POP3_SESSIONS [200],
BENCH_POP3_PER_SESSION [20], BENCH_POP3_ROUNDS [3], BENCH_LOCAL_MESSAGES
[10000], BENCH_LOCAL_DROPS [100], BENCH_LOCAL_SOURCES [20] (sessions at a
time), BENCH_LOCAL_LOAD [smtpload] (smtpload: one process of
tests/bench/smtpload.c, recipients round robin; processes: the method of
2026-11/12, one smtp-source process per maildrop, one session each).
"""
import json
import os
import pwd
import resource
import shutil
import statistics
import subprocess
import sys
import time
import warnings

import bench
import genmaildir
from bench import log, note_cmd, row, NOTES

sys.path.insert(0, os.path.join(bench.ROOT, "tests", "integration"))
import dovecot  # noqa: E402

POP_BIG = int(os.environ.get("BENCH_POP3_BIG", "20000"))
POP_RETR = int(os.environ.get("BENCH_POP3_RETR", "2000"))
POP_SESSIONS = int(os.environ.get("BENCH_POP3_SESSIONS", "200"))
POP_PER_SESSION = int(os.environ.get("BENCH_POP3_PER_SESSION", "20"))
POP_ROUNDS = int(os.environ.get("BENCH_POP3_ROUNDS", "3"))
LOCAL_MSGS = int(os.environ.get("BENCH_LOCAL_MESSAGES", "10000"))
LOCAL_DROPS = int(os.environ.get("BENCH_LOCAL_DROPS", "100"))
LOCAL_SOURCES = int(os.environ.get("BENCH_LOCAL_SOURCES", "20"))
LOCAL_LOAD = os.environ.get("BENCH_LOCAL_LOAD", "smtpload")

POP_DOMAIN = "pop.example"
LOCAL_DOMAIN = "local.example"
PASSWORD = "bench-pop3-password"
POP3LOAD = os.path.join(bench.HERE, "pop3load.py")

DOVECOT_TUNING = """service pop3-login {
  service_count = 0
  process_min_avail = 2
}
service pop3 {
  service_count = 0
  client_limit = 1
  process_limit = 1024
}
default_client_limit = 4096
"""


def crypt_hash(password):
    """A SHA-512 crypt hash (rounds=1000) of password, by libcrypt."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt
    return crypt.crypt(password, "$6$rounds=1000$kmbench1")


def maildrop_sections(names, domain, hashed):
    return "".join("maildrop \"%s@%s\" {\n  password = '%s'\n  mode = \"delete\"\n}\n"
                   % (n, domain, hashed) for n in names)


def pop3_daemon(procs, build, d, port, pop_port, root, names, hashed):
    km = bench.Kickmail(build, d, procs, port, {})
    with open(km.conf, "a") as f:
        f.write('maildir_root = "%s"\npop3 {\n  listen = {"127.0.0.1:%d"}\n'
                '  max_connections = 30000\n  max_connections_per_client = 30000\n}\n%s' % (
            root, pop_port, maildrop_sections(names, POP_DOMAIN, hashed)))
    km.pop3_port = pop_port
    return km


def pop3load(port, script, user, sessions=1):
    argv = [sys.executable, POP3LOAD, str(port), script, user, PASSWORD]
    if sessions > 1:
        argv += ["--sessions", str(sessions)]
    note_cmd("9. pop3 load (%s)" % script, " ".join(argv[1:2] + ["PORT"] + argv[3:]))
    r = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError("pop3load %s %s on port %d: %s" % (script, user, port, r.stderr))
    return json.loads(r.stdout)


def generate_tree(top):
    t0 = time.monotonic()
    names = ["big", "retr"] + ["s%03d" % i for i in range(POP_SESSIONS)]
    genmaildir.generate(os.path.join(top, POP_DOMAIN, "big"), POP_BIG)
    genmaildir.generate(os.path.join(top, POP_DOMAIN, "retr"), POP_RETR)
    for n in names[2:]:
        genmaildir.generate(os.path.join(top, POP_DOMAIN, n), POP_PER_SESSION)
    log("   generated %d maildrops (%d + %d + %d × %d messages of 4 KB) in %.1f s" % (
        len(names), POP_BIG, POP_RETR, POP_SESSIONS, POP_PER_SESSION, time.monotonic() - t0))
    return names


def bench_pop3(procs, build, work):
    log("== 9. POP3: kickmail vs a private Dovecot over the same maildir files")
    top = os.path.join(work, "pop3")
    gen = os.path.join(top, "gen")
    names = generate_tree(gen)
    km_root, dv_root = os.path.join(top, "km"), os.path.join(top, "dv")
    # hard links: both servers serve the very same files
    subprocess.run(["cp", "-al", gen, km_root], check=True)
    subprocess.run(["cp", "-al", gen, dv_root], check=True)
    hashed = crypt_hash(PASSWORD)
    km = pop3_daemon(procs, build, os.path.join(top, "kickmail"), bench.free_port(),
                     bench.free_port(), km_root, names, hashed)
    dv = dovecot.PrivateDovecot(os.path.join(top, "dovecot"), dv_root,
                                {"%s@%s" % (n, POP_DOMAIN): "{CRYPT}" + hashed for n in names},
                                imap=False, pop3=True, extra=DOVECOT_TUNING)
    dv.own_tree()
    note_cmd("9. Dovecot start", [dovecot.DOVECOT, "-F", "-c", dv.conf])
    km.start()
    dv.start()
    procs.record(dv.proc.pid)
    log("   kickmaild pop3 on 127.0.0.1:%d, Dovecot %s pop3 on 127.0.0.1:%d" % (
        km.pop3_port, dovecot_version(), dv.pop3_port))
    ports = {"kickmail": km.pop3_port, "Dovecot": dv.pop3_port}
    res = {}
    cpu = {"kickmail": [], "Dovecot": []}

    def rounds(label, script, user, sessions=1, n=POP_ROUNDS, warm=True):
        out = {"kickmail": [], "Dovecot": []}
        if warm:
            for who in ("kickmail", "Dovecot"):
                pop3load(ports[who], script, user, sessions)
        for _ in range(n):
            for who in ("kickmail", "Dovecot"):
                r = pop3load(ports[who], script, user, sessions)
                out[who].append(r)
                cpu[who].append(r["cpu"] / max(r["seconds"], 1e-9))
        res[label] = out
        log("   %s: kickmail %s ms; Dovecot %s ms" % (label, ", ".join(
            "%.0f" % (1000 * r["seconds"]) for r in out["kickmail"]), ", ".join(
            "%.0f" % (1000 * r["seconds"]) for r in out["Dovecot"])))
        return out

    dv_pid = dv.proc.pid
    try:
        big = "big@" + POP_DOMAIN
        a = rounds("stat-uidl", "stat-uidl", big, n=max(5, POP_ROUNDS))
        for r in a["kickmail"] + a["Dovecot"]:
            if r["messages"] != POP_BIG:
                raise RuntimeError("STAT listed %d messages, expected %d" % (r["messages"], POP_BIG))
        b = rounds("retr", "retr", "retr@" + POP_DOMAIN, n=max(5, POP_ROUNDS))
        c = rounds("sessions", "retr", "s%03d@" + POP_DOMAIN, sessions=POP_SESSIONS)
        # (d) destroys the big maildrop: once each, no warm-up (it was
        # warmed by (a))
        d = rounds("dele", "dele", big, n=1, warm=False)
        left = {who: pop3load(ports[who], "stat-uidl", big)["messages"]
                for who in ("kickmail", "Dovecot")}
        if any(left.values()):
            raise RuntimeError("messages left after DELE of all + QUIT: %s" % left)
    finally:
        km.stop()
        dv.stop()
        procs.forget(dv_pid)

    def med(rs, key):
        return statistics.median(r[key] for r in rs)

    def per_round(rs_km, rs_dv, f):
        return statistics.median(f(x) / f(y) for x, y in zip(rs_dv, rs_km))

    ms = lambda r: 1000 * r["seconds"]                      # noqa: E731
    k, p = med(a["kickmail"], "seconds") * 1000, med(a["Dovecot"], "seconds") * 1000
    ratio = per_round(a["kickmail"], a["Dovecot"], ms)
    row(9, "vs Dovecot: login + STAT + UIDL, %d messages (median of %d)" % (
        POP_BIG, len(a["kickmail"])), k, p, "ms", "≥ 1.5× Dovecot", ratio >= 1.5, ratio=ratio)
    for label, rs, what, count in (
            ("retr", b, "RETR %d × 4 KB, one session, pipelined" % POP_RETR, "retrieved"),
            ("sessions", c, "%d concurrent sessions × %d RETR (login, STAT, RETR all, QUIT)"
             % (POP_SESSIONS, POP_PER_SESSION), "retrieved"),
            ("dele", d, "DELE of all %d + QUIT (one run)" % POP_BIG, "messages")):
        rate = lambda r, c=count: r[c] / r["seconds"]       # noqa: E731
        kr = statistics.median(rate(r) for r in rs["kickmail"])
        pr = statistics.median(rate(r) for r in rs["Dovecot"])
        ratio = statistics.median(rate(x) / rate(y) for x, y in zip(rs["kickmail"], rs["Dovecot"]))
        row(9, "vs Dovecot: " + what, kr, pr, "msg/s", "≥ 1.5× Dovecot", ratio >= 1.5, ratio=ratio)
    lat = {who: statistics.median(statistics.median(r["login"]) for r in c[who])
           for who in ("kickmail", "Dovecot")}
    NOTES.append("POP3 (9): Dovecot column = Dovecot %s (Debian), not Postfix; login+STAT+UIDL "
                 "rounds kickmail %s ms, Dovecot %s ms; %d concurrent sessions: median login "
                 "time kickmail %.1f ms, Dovecot %.1f ms; the load client used %.0f %% (kickmail "
                 "runs) and %.0f %% (Dovecot runs) of a core (medians)" % (
                     dovecot_version(), ", ".join("%.0f" % ms(r) for r in a["kickmail"]),
                     ", ".join("%.0f" % ms(r) for r in a["Dovecot"]), POP_SESSIONS,
                     lat["kickmail"], lat["Dovecot"], 100 * statistics.median(cpu["kickmail"]),
                     100 * statistics.median(cpu["Dovecot"])))
    shutil.rmtree(top, ignore_errors=True)
    return res


def dovecot_version():
    r = subprocess.run([dovecot.DOVECOT, "--version"], capture_output=True, text=True)
    return r.stdout.split()[0] if r.stdout else "?"


# ---------------------------------------------------------------- 10. local

def local_names():
    return ["l%03d" % i for i in range(LOCAL_DROPS)]


def postfix_virtual(pf, work):
    """Adds virtual(8) delivery into maildirs for LOCAL_DOMAIN to the private
    Postfix (before it starts): virtual_mailbox_domains/maps, the maildirs
    under WORK/local/pf owned by nobody."""
    base = os.path.join(work, "local", "pf")
    os.makedirs(base, exist_ok=True)
    nobody = pwd.getpwnam("nobody")
    os.chown(base, nobody.pw_uid, nobody.pw_gid)
    maps = os.path.join(pf.conf, "vmailbox")
    with open(maps, "w") as f:
        for n in local_names():
            f.write("%s@%s %s/%s/\n" % (n, LOCAL_DOMAIN, LOCAL_DOMAIN, n))
    with open(os.path.join(pf.conf, "main.cf"), "a") as f:
        f.write("""# issue 12, phase 10: virtual(8) delivery into maildirs
virtual_mailbox_domains = {d}
virtual_mailbox_base = {base}
virtual_mailbox_maps = texthash:{maps}
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
virtual_minimum_uid = 1
""".format(d=LOCAL_DOMAIN, base=base, maps=maps, uid=nobody.pw_uid, gid=nobody.pw_gid))
    with open(os.path.join(pf.conf, "master.cf"), "a") as f:
        f.write("virtual   unix  -       n       n       -       -       virtual\n")
    pf.local_base = base


def count_delivered(base, names):
    n = 0
    for name in names:
        for sub in ("new", "cur"):
            try:
                n += len(os.listdir(os.path.join(base, LOCAL_DOMAIN, name, sub)))
            except FileNotFoundError:
                pass
    return n


def local_load_smtpload(port, names, what, work):
    """The load of phase 10: LOCAL_MSGS messages from one smtpload process,
    LOCAL_SOURCES sessions at a time, recipient k = names[k % len(names)]."""
    per = LOCAL_MSGS // len(names)
    argv = [os.path.join(work, "smtpload"), "-s", str(LOCAL_SOURCES), "-l", "4096",
            "-m", str(per * len(names)), "-f", "from@x.example",
            "-t", ",".join("%s@%s" % (n, LOCAL_DOMAIN) for n in names), "127.0.0.1:%d" % port]
    note_cmd("10. %s" % what, " ".join(argv[:9] + ["-t", "l000@%s,...,l%03d@%s" % (
        LOCAL_DOMAIN, len(names) - 1, LOCAL_DOMAIN), "127.0.0.1:PORT"]))
    r = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if r.returncode != 0 or r.stderr.strip():
        raise RuntimeError("smtpload failed (%d): %s%s" % (r.returncode, r.stdout, r.stderr[-2000:]))


def local_load_processes(port, names, what):
    """The load of phase 10 until 2026-12-07: one smtp-source process per
    maildrop (one session, N/drops messages), LOCAL_SOURCES at a time."""
    per = LOCAL_MSGS // len(names)
    argv0 = [bench.SMTP_SOURCE, "-s", "1", "-l", "4096", "-m", str(per), "-f", "from@x.example"]
    note_cmd("10. %s" % what, " ".join(argv0 + ["-t", "lNNN@%s" % LOCAL_DOMAIN,
                                                "127.0.0.1:PORT"]) +
             " (%d of them, %d at a time)" % (len(names), LOCAL_SOURCES))
    pending = list(names)
    running = []
    while pending or running:
        while pending and len(running) < LOCAL_SOURCES:
            n = pending.pop(0)
            running.append(subprocess.Popen(argv0 + ["-t", "%s@%s" % (n, LOCAL_DOMAIN),
                                                     "127.0.0.1:%d" % port],
                                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        for p in list(running):
            if p.poll() is not None:
                err = p.stderr.read().decode(errors="replace")
                if p.returncode != 0 or err.strip():
                    raise RuntimeError("smtp-source failed (%d): %s" % (p.returncode, err))
                running.remove(p)
        time.sleep(0.002)


LOCAL_LOAD_CPU = [0.0]          # CPU seconds of the last run's load generator


def local_run(port, base, names, what, work):
    """The load (BENCH_LOCAL_LOAD) into port; returns (seconds to the last
    250, seconds to the last file in new/), both from the first connection."""
    per = LOCAL_MSGS // len(names)
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    if LOCAL_LOAD == "processes":
        local_load_processes(port, names, what)
    else:
        local_load_smtpload(port, names, what, work)
    t_accept = time.monotonic() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    LOCAL_LOAD_CPU[0] = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    want = per * len(names)
    end = time.monotonic() + 600
    while True:
        got = count_delivered(base, names)
        if got > want:
            raise RuntimeError("%s: %d files in maildirs for %d messages" % (what, got, want))
        if got == want:
            break
        if time.monotonic() > end:
            raise RuntimeError("%s: only %d of %d messages in maildirs" % (what, got, want))
        time.sleep(0.01)
    return t_accept, time.monotonic() - t0


def bench_local(procs, build, work, pf):
    names = local_names()
    n = (LOCAL_MSGS // len(names)) * len(names)
    log("== 10. local delivery: %d messages into %d maildrops, kickmail vs Postfix virtual(8)"
        % (n, len(names)))
    d = os.path.join(work, "local", "kickmail")
    root = os.path.join(work, "local", "km")
    km = bench.Kickmail(build, d, procs, bench.free_port(), {})
    with open(km.conf, "a") as f:
        f.write('maildir_root = "%s"\n%s' % (
            root, "".join("maildrop \"%s@%s\" {\n  password = '%s'\n}\n"
                          % (x, LOCAL_DOMAIN, crypt_hash(PASSWORD)) for x in names)))
    bench.build_tool(work, "smtpload")
    km.start()
    try:
        c0 = bench.proc_cpu(km.pid())
        ka, kt = local_run(km.port, root, names, "local delivery, kickmail", work)
        kcpu = bench.proc_cpu(km.pid()) - c0
        kgen = LOCAL_LOAD_CPU[0]
    finally:
        km.stop()
    pa, pt = local_run(pf.port, pf.local_base, names, "virtual(8) delivery, Postfix", work)
    pgen = LOCAL_LOAD_CPU[0]
    kr, pr = n / kt, n / pt
    log("   kickmail: all accepted in %.2f s, all in new/ after %.2f s = %.0f msg/s "
        "(kickmaild %.0f %% of a core, the load %.0f %%); Postfix: accepted in %.2f s, "
        "delivered after %.2f s = %.0f msg/s (the load %.0f %%)"
        % (ka, kt, kr, 100 * kcpu / kt, 100 * kgen / ka, pa, pt, pr, 100 * pgen / pa))
    row(10, "local delivery, %d × 4 KB into %d maildirs (SMTP in → file in new/)" % (
        n, len(names)), kr, pr, "msg/s", "≥ 5× Postfix", kr / pr >= 5)
    if LOCAL_LOAD == "processes":
        how = ("%d smtp-source processes, %d at a time, one session and %d messages each"
               % (len(names), LOCAL_SOURCES, n // len(names)))
    else:
        how = ("one smtpload process, %d sessions, recipients round robin over the %d "
               "maildrops" % (LOCAL_SOURCES, len(names)))
    NOTES.append("local (10): accepted/delivered after kickmail %.2f/%.2f s, Postfix "
                 "virtual(8) %.2f/%.2f s; %s; the load's CPU: %.2f s with kickmail, %.2f s "
                 "with Postfix" % (ka, kt, pa, pt, how, kgen, pgen))
    shutil.rmtree(os.path.join(work, "local"), ignore_errors=True)

#!/usr/bin/python3
"""A timestamping SMTP sink for the kick-latency benchmark.

    sink.py HOST PORT [--accept] [--idle-ms MS] [--rt] [--stamper PROGRAM]

Stands in for the customer's mail server.  By default it answers MAIL with
"450 4.3.0" (like `smtp-sink -r MAIL`: no PIPELINING offered) so held mail
stays held and every kick can be repeated; with --accept it takes messages.
With --idle-ms it closes a connection on which the client sent nothing for
that long (so that a client's connection cache cannot keep it open for the
next kick: Postfix keeps idle connections for smtp_connection_cache_time_limit).
With --rt it runs under SCHED_FIFO (priority 10; root only, else a note on
stderr and the normal policy), so that on a busy machine its accept timestamp
is taken when the connection arrives, not when the scheduler next gets round
to this process: measured with perf on a 2-core machine at load 2-4, the
sink's own wake-up added up to 2-3.6 ms to a connection kickmaild had made
within 0.3 ms.
With --stamper (tests/bench/acceptstamp, IPv4 only) a small C program does the
accept()s and takes the accept timestamps, handing each connection over to
this process: after a few seconds of idleness the Python interpreter took
1.2-1.9 ms between accept() returning and its timestamp (perf, 2026-12-07),
which the kick latency cells then counted as kickmaild's.

It reports on stdout, one line per event, with CLOCK_MONOTONIC nanoseconds
(the same clock as time.monotonic_ns() in any other process on the machine):
    R <ns>                  listening
    A <ns> <conn>           a connection was accepted (timestamp right after accept())
    M <ns> <conn>           a MAIL command arrived
    C <ns> <conn>           the connection closed
The accept loop blocks in accept() (which releases the GIL); the accept
timestamp is taken as soon as the interpreter runs again (see --stamper).
"""
import os
import socket
import sys
import threading
import time

OUT_LOCK = threading.Lock()


def emit(line):
    with OUT_LOCK:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def session(conn, cid, accept_mail, idle):
    if idle:
        conn.settimeout(idle)
    f = conn.makefile("rb", buffering=65536)
    w = conn.sendall
    try:
        w(b"220 sink.bench.example ESMTP\r\n")
        while True:
            line = f.readline(4096)
            if not line:
                break
            verb = line[:4].upper()
            if verb in (b"EHLO", b"LHLO"):
                w(b"250-sink.bench.example\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n")
            elif verb == b"HELO":
                w(b"250 sink.bench.example\r\n")
            elif verb == b"MAIL":
                emit("M %d %d" % (time.monotonic_ns(), cid))
                if accept_mail:
                    w(b"250 2.1.0 Ok\r\n")
                else:
                    w(b"450 4.3.0 Error: try again later (benchmark sink)\r\n")
            elif verb == b"RCPT":
                w(b"250 2.1.5 Ok\r\n" if accept_mail else b"503 5.5.1 Error: need MAIL command\r\n")
            elif verb == b"DATA":
                if not accept_mail:
                    w(b"503 5.5.1 Error: need RCPT command\r\n")
                    continue
                w(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                while True:
                    dl = f.readline(1 << 20)
                    if not dl or dl == b".\r\n":
                        break
                if not dl:
                    break
                w(b"250 2.0.0 Ok: queued\r\n")
            elif verb == b"QUIT":
                w(b"221 2.0.0 Bye\r\n")
                break
            else:                       # RSET, NOOP, anything else
                w(b"250 2.0.0 Ok\r\n")
    except OSError:                     # timeouts included: close when idle
        pass
    finally:
        try:
            conn.close()
        except OSError:
            pass
        emit("C %d %d" % (time.monotonic_ns(), cid))


def python_accepts(host, port):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, port))
    ls.listen(512)
    emit("R %d" % time.monotonic_ns())
    while True:
        conn, _ = ls.accept()
        yield conn, time.monotonic_ns()


def stamped_accepts(program, host, port):
    """Connections and their accept timestamps from acceptstamp (fd 3 of
    the child: 8 bytes of CLOCK_MONOTONIC ns and the connection's fd)."""
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    os.posix_spawn(program, [program, host, str(port)], os.environ,
                   file_actions=[(os.POSIX_SPAWN_DUP2, theirs.fileno(), 3)])
    theirs.close()
    first = True
    while True:
        msg, fds, _, _ = socket.recv_fds(mine, 8, 1)
        if len(msg) != 8:
            raise SystemExit("sink.py: acceptstamp ended")
        if first:
            emit("R %d" % time.monotonic_ns())
            first = False
            continue
        yield socket.socket(fileno=fds[0]), int.from_bytes(msg, sys.byteorder)


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    accept_mail = "--accept" in sys.argv[3:]
    idle = None
    if "--idle-ms" in sys.argv[3:]:
        idle = int(sys.argv[sys.argv.index("--idle-ms") + 1]) / 1000.0 or None
    if "--rt" in sys.argv[3:]:
        try:        # before any thread: the session threads inherit it
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
        except OSError as e:
            sys.stderr.write("sink.py: --rt: %s (normal scheduling)\n" % e)
    if "--stamper" in sys.argv[3:]:
        accept = stamped_accepts(sys.argv[sys.argv.index("--stamper") + 1], host, port)
    else:
        accept = python_accepts(host, port)
    cid = 0
    for conn, t in accept:
        cid += 1
        emit("A %d %d" % (t, cid))
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=session, args=(conn, cid, accept_mail, idle), daemon=True).start()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass

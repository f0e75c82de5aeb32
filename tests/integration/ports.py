"""Free loopback ports for the integration tests.

By default the kernel picks a free port (a bind to port 0).  make check
runs the normal and the sanitizer suites side by side; then each suite
gets its own range in KICKMAIL_TEST_PORTS ("LOW-HIGH", below the kernel's
ephemeral range) and takes its ports from it in turn, so a port one suite
has just found free is never handed to the other before its daemon binds
it, and a suite never hands out one port twice.
"""
import os
import socket

_RANGE = os.environ.get("KICKMAIL_TEST_PORTS", "")
_next = None


def _range():
    low, high = (int(x) for x in _RANGE.split("-"))
    if not 1024 <= low < high <= 65535:
        raise ValueError("KICKMAIL_TEST_PORTS=%r: want LOW-HIGH" % _RANGE)
    return low, high


def _bindable(host, port, kind):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, kind)
    try:
        s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_port(host="127.0.0.1", kind=socket.SOCK_STREAM):
    """A port nothing on host is bound to now (TCP, or UDP with
    kind=socket.SOCK_DGRAM)."""
    global _next
    if not _RANGE:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        s = socket.socket(family, kind)
        s.bind((host, 0))
        port = s.getsockname()[1]
        s.close()
        return port
    low, high = _range()
    if _next is None:
        _next = low
    for _ in range(high - low + 1):
        port = _next
        _next = low if _next >= high else _next + 1
        if _bindable(host, port, kind):
            return port
    raise RuntimeError("no free port in KICKMAIL_TEST_PORTS=%s" % _RANGE)


def free_udp_port(host="127.0.0.1"):
    return free_port(host, socket.SOCK_DGRAM)

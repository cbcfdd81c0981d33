"""Helpers shared by the end-to-end tests in tests/control (stdlib only)."""
import socket
import time


_given = set()  # (kind, port) already handed out by this process


def free_port(kind=socket.SOCK_STREAM):
    """A port the kernel says is free, never one this process was given before (the
    kernel may offer a just-closed port again, and two services would then share it)."""
    for _ in range(100):
        s = socket.socket(socket.AF_INET, kind)
        s.bind(("127.0.0.1", 0))
        p = s.getsockname()[1]
        s.close()
        if (kind, p) not in _given:
            _given.add((kind, p))
            return p
    raise AssertionError("no fresh free port in 100 tries")


def wait_for(pred, timeout, what):
    """Polls pred (errors count as not yet) until it returns something true; bounded."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            v = pred()
            if v:
                return v
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.02)
    raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))

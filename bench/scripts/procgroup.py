"""Helpers for benchmark processes: stopping one started in its own session
(start_new_session=True), and waiting for one's unix socket to listen."""
import os
import signal
import subprocess
import time


def stop_group(proc, timeout=10.0):
    """SIGTERM the process group of proc if it still runs; SIGKILL it after timeout seconds."""
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def unix_listening(path):
    """Whether a unix socket listens at path: memif's (abstract by default: "@path" in
    /proc/net/unix) or a file socket's (an unconnected socket, state 01)."""
    with open("/proc/net/unix") as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 8 and fields[7] in (path, "@" + path) and fields[5] == "01":
                return True
    return False


def wait_listening(path, proc, timeout):
    """Waits until a unix socket listens at path (unix_listening), proc (the process that
    opens it) exits, or timeout seconds pass; returns whether it listens."""
    deadline = time.time() + timeout
    while not unix_listening(path) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    return unix_listening(path)

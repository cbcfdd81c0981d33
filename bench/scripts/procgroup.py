"""Stopping a benchmark process that was started in its own session (start_new_session=True)."""
import os
import signal
import subprocess


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

"""Test harness for the corewire integration tests (python3 stdlib only).

Starts the real `corewire` binary (path in $COREWIRE) with a temporary config, learns the
endpoints it bound from its "serving <name> <udp|tcp> <addr>:<port>" log lines (configs use
port 0), and always stops it at the end. Every wait is bounded.
"""

import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

# free_port: the one picker of tests/control, which never hands out a port twice.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../control"))
from cwtest import free_port  # noqa: E402,F401

COREWIRE = os.environ.get("COREWIRE", "build/app/server/corewire")
START_TIMEOUT = float(os.environ.get("CW_START_TIMEOUT", "20"))  # s; sanitizer builds are slow
STOP_TIMEOUT = 15.0  # s

SERVING_RE = re.compile(r"serving (\S+) (udp|tcp) (\d+\.\d+\.\d+\.\d+):(\d+)")

# Every service on every transport, on ports the kernel picks.
ALL_SERVICES = """
[[service]]
name = "sockperf-echo"
udp = 0
tcp = 0

[[service]]
name = "echo"
udp = 0
tcp = 0
"""


def config(runtime="", services=ALL_SERVICES, backend=None):
    backend = backend or os.environ.get("CW_TEST_BACKEND", "auto")
    return f'[runtime]\nbackend = "{backend}"\n{runtime}\n[log]\nlevel = "info"\n{services}'


class ServerError(Exception):
    pass


class Server:
    """A running corewire process. Use as a context manager; stop() is idempotent."""

    def __init__(self, toml_text, args=(), expect_start=True, prefix=()):
        self.cfg = tempfile.NamedTemporaryFile("w", suffix=".toml", prefix="cw-it-", delete=False)
        self.cfg.write(toml_text)
        self.cfg.close()
        self.lines = []
        self.endpoints = {}  # (service name, "udp"|"tcp") -> (host, port)
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self.proc = subprocess.Popen(
            [*prefix, COREWIRE, "-c", self.cfg.name, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.exit_code = None
        if expect_start:
            self.wait_ready()

    def _read(self):
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            with self._lock:
                self.lines.append(line)
            m = SERVING_RE.search(line)
            if m:
                self.endpoints[(m.group(1), m.group(2))] = (m.group(3), int(m.group(4)))
            if "corewire: ready" in line:
                self._ready.set()
        self._ready.set()  # EOF: the process is gone

    def log(self):
        with self._lock:
            return "\n".join(self.lines)

    def wait_ready(self):
        if not self._ready.wait(START_TIMEOUT) or self.proc.poll() is not None:
            self.stop()
            raise ServerError(f"corewire did not start (exit {self.exit_code}):\n{self.log()}")

    def ep(self, service, transport):
        return self.endpoints[(service, transport)]

    def alive(self):
        return self.proc.poll() is None

    def wait_exit(self, timeout=STOP_TIMEOUT):
        try:
            self.exit_code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self._reader.join(5)
        return self.exit_code

    def stop(self, sig=signal.SIGTERM):
        """Sends sig, waits (bounded), kills if needed; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            if self.wait_exit() is None:
                self.proc.kill()
                self.proc.wait(5)
                self.exit_code = "killed (did not stop within %ss)" % STOP_TIMEOUT
        else:
            self.wait_exit()
        self._reader.join(5)
        if self.proc.stdout and not self._reader.is_alive():
            self.proc.stdout.close()
        try:
            os.unlink(self.cfg.name)
        except FileNotFoundError:
            pass
        return self.exit_code

    def stats(self):
        """Counters from the exit log: {'io': {...}, 'sockperf-echo': {...}, 'echo': {...}}."""
        out = {}
        for line in self.log().splitlines():
            m = re.search(r"stats (?:service\[\d+\] )?(\S+?): (.*)", line)
            if m:
                d = out.setdefault(m.group(1), {})
                for k, v in re.findall(r"(\w+)=(\d+)", m.group(2)):
                    d[k] = d.get(k, 0) + int(v)
        return out

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def ctl_stats(ctl, cfg_path):
    """`corewirectl stats --json`: the snapshot object."""
    r = subprocess.run([ctl, "-c", cfg_path, "stats", "--json"], capture_output=True, text=True,
                       timeout=10)
    if r.returncode != 0:
        raise AssertionError(r.stdout + r.stderr)
    return json.loads(r.stdout)


def service_counters(ctl, cfg_path, service):
    """A service's declared counters through `corewirectl stats --json`, summed over workers."""
    out = {}
    for w in ctl_stats(ctl, cfg_path)["workers"]:
        for k, v in w["services"][service]["counters"].items():
            out[k] = out.get(k, 0) + v
    return out


def run_corewire(args, timeout=20):
    """Runs corewire to completion (for --check-config, bad configs); returns CompletedProcess."""
    return subprocess.run([COREWIRE, *args], stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout)


def write_temp(text, suffix=".toml"):
    f = tempfile.NamedTemporaryFile("w", suffix=suffix, prefix="cw-it-", delete=False)
    f.write(text)
    f.close()
    return f.name


# --- the two wire formats (docs/protocol.md) ---------------------------------------------

SP_CLIENT, SP_PONG, SP_WARMUP = 0x1, 0x2, 0x4
SP_HEADER = 14


def sockperf_msg(seq, size=64, flags=SP_CLIENT | SP_PONG, fill=None):
    payload = fill if fill is not None else bytes((seq + i) & 0xFF for i in range(size - SP_HEADER))
    return struct.pack(">QHI", seq, flags, SP_HEADER + len(payload)) + payload


def sockperf_reply_of(msg):
    seq, flags, n = struct.unpack(">QHI", msg[:SP_HEADER])
    return struct.pack(">QHI", seq, flags & ~SP_CLIENT, n) + msg[SP_HEADER:]


NT_MAGIC, NT_HEADER, NT_ECHO = 0x4357, 24, 1
NT_REQUEST, NT_RESPONSE, NT_ONEWAY, NT_ERROR = 0, 1, 2, 3


def native_msg(req_id, payload=b"", kind=NT_REQUEST, service=NT_ECHO, version=1, flags=0,
               length=None, reserved=0, magic=NT_MAGIC):
    n = len(payload) if length is None else length
    return struct.pack(">HBBHHQII", magic, version, kind, service, flags, req_id, n,
                       reserved) + payload


def native_parse(b):
    magic, ver, kind, svc, flags, rid, n, res = struct.unpack(">HBBHHQII", b[:NT_HEADER])
    return dict(magic=magic, version=ver, kind=kind, service=svc, flags=flags, req_id=rid,
                len=n, reserved=res, payload=b[NT_HEADER:NT_HEADER + n])


# --- sockets ------------------------------------------------------------------------------

IO_TIMEOUT = 5.0  # s: longest wait for one expected reply


def udp_socket():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(IO_TIMEOUT)
    s.bind(("127.0.0.1", 0))
    return s


def udp_call(ep, data, tries=3):
    """Sends one datagram and returns the reply (retries: UDP may drop under load)."""
    with udp_socket() as s:
        s.settimeout(IO_TIMEOUT / tries)
        for _ in range(tries):
            s.sendto(data, ep)
            try:
                return s.recv(65535)
            except socket.timeout:
                continue
    raise AssertionError(f"no UDP reply from {ep} to {len(data)} bytes")


def udp_no_reply(ep, data, wait=0.3):
    """True when the server sends nothing back within `wait` seconds."""
    with udp_socket() as s:
        s.sendto(data, ep)
        s.settimeout(wait)
        try:
            s.recv(65535)
            return False
        except socket.timeout:
            return True


def tcp_connect(ep):
    s = socket.create_connection(ep, timeout=IO_TIMEOUT)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise AssertionError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def wait_closed(s, timeout=IO_TIMEOUT):
    """True when the peer closes (EOF or reset) within timeout; discards data read first."""
    s.settimeout(timeout)
    end = time.monotonic() + timeout
    try:
        while time.monotonic() < end:
            if not s.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False
    return False

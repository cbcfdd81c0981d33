"""The rtp service at scale (docs/rtp.md, "Scale test"): two corewire processes, one worker
each, hold N symmetric sessions with each other (default 10,000) at 50 packets/s each way,
all on one port pair over loopback. The sessions are opened through the control socket (one
connection, one `rtp open` request per session); the streams of one address pair are told
apart by SSRC (session i: A sends SSRC 0x10000000+i and expects 0x20000000+i from B, and
B the reverse), as RTP bundles do on one 5-tuple.

After a warm-up, both sides are measured for DURATION seconds, and the test asserts:
- every session on both sides sent at least 90% of its 50 packets/s, and its loss over the
  window (A.3: expected - received) is at most LOSS_BOUND of what it expected;
- the sender ticks come from the timer wheel, not a scan: over the window, each worker's
  timers_fired equals the rtp service's rtp_out + rtcp_out + tx_full + injected_loss (each
  tick sends exactly one packet or counts why not), within 1% for the counters' snapshot
  skew; and no timer was refused (timers_full).

The default suite runs it small (500 sessions for 4 s, ~10 s in all). The full run, 10,000
sessions for 10 s (about 30 s in all, a core per process):
    CW_RTP_SCALE=1 meson test -C build --print-errorlogs integration-rtp-scale
Environment: CW_RTP_SCALE_SESSIONS, CW_RTP_SCALE_SECONDS, CW_RTP_SCALE_LOSS (0.01),
CW_TEST_BACKEND (auto).
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import unittest

import harness as h

CTL = os.environ.get("COREWIRECTL", "build/control/corewirectl")
FULL = os.environ.get("CW_RTP_SCALE") == "1"
N = int(os.environ.get("CW_RTP_SCALE_SESSIONS", "10000" if FULL else "500"))
DURATION = float(os.environ.get("CW_RTP_SCALE_SECONDS", "10" if FULL else "4"))
LOSS_BOUND = float(os.environ.get("CW_RTP_SCALE_LOSS", "0.01"))
WARMUP = 3.0


class Control:
    """One connection to a dataplane's control socket: a JSON line each way per request."""

    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(20)
        end = time.monotonic() + 10  # the socket appears just after corewire says ready
        while True:
            try:
                self.s.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > end:
                    raise
                time.sleep(0.05)
        self.buf = b""

    def request(self, obj):
        self.s.sendall(json.dumps(obj).encode() + b"\n")
        while b"\n" not in self.buf:
            chunk = self.s.recv(1 << 20)
            if not chunk:
                raise AssertionError("control socket closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def close(self):
        self.s.close()


class Side:
    def __init__(self, port):
        self.dir = tempfile.mkdtemp(prefix="cw-rtp-scale-")
        self.port = port
        backend = os.environ.get("CW_TEST_BACKEND", "auto")
        cfg = (f'[runtime]\nbackend = "{backend}"\nworkers = 1\n'
               f'max_timers = {2 * N + 1024}\n'
               f'[log]\nlevel = "info"\n'
               f'[control]\nrun_dir = "{self.dir}"\n'
               f'[[service]]\nname = "rtp"\nudp = "127.0.0.1:{port}"\n'
               f'max_sessions = {N}\n')
        self.server = h.Server(cfg)
        self.cfg_path = self.server.cfg.name
        self.ctl = Control(os.path.join(self.dir, "control.sock"))

    def open(self, peer_port, ssrc, peer_ssrc):
        r = self.ctl.request({"cmd": "rtp", "op": "open", "peer": f"127.0.0.1:{peer_port}",
                              "ssrc": ssrc, "peer_ssrc": peer_ssrc})
        if not r.get("ok"):
            raise AssertionError(r)

    def sessions(self):
        r = self.ctl.request({"cmd": "rtp", "op": "list"})
        if not r.get("ok"):
            raise AssertionError(r)
        return {s["ssrc"]: s for s in r["tables"][0]["sessions"]}

    def stats(self):
        """(worker 0's runtime counters, the rtp service's declared counters)."""
        r = subprocess.run([CTL, "-c", self.cfg_path, "stats", "--json"], capture_output=True,
                           text=True, timeout=20)
        if r.returncode != 0:
            raise AssertionError(r.stdout + r.stderr)
        w = json.loads(r.stdout)["workers"][0]
        return w["runtime"], w["services"]["rtp"]["counters"]

    def stop(self):
        self.ctl.close()
        self.server.stop()


class ScaleTest(unittest.TestCase):
    def test_sessions_hold_rate_and_loss_on_one_worker(self):
        pa, pb = h.free_port(socket.SOCK_DGRAM), h.free_port(socket.SOCK_DGRAM)
        a = Side(pa)
        try:
            b = Side(pb)
            try:
                self._run(a, b, pa, pb)
            finally:
                b.stop()
        finally:
            a.stop()

    def _run(self, a, b, pa, pb):
        t0 = time.monotonic()
        for i in range(N):
            a.open(pb, 0x10000000 + i, 0x20000000 + i)
            b.open(pa, 0x20000000 + i, 0x10000000 + i)
        print(f"opened {N} sessions on each side in {time.monotonic() - t0:.1f} s",
              file=sys.stderr)
        time.sleep(WARMUP)
        before = {}
        for name, side in (("A", a), ("B", b)):
            before[name] = (side.sessions(), side.stats())
        time.sleep(DURATION)
        for name, side, base in (("A", a, 0x10000000), ("B", b, 0x20000000)):
            s0, (w0, c0) = before[name]
            s1 = side.sessions()
            w1, c1 = side.stats()
            self.assertEqual(len(s1), N, name)
            elapsed_pkts = 50 * DURATION
            loss_max, short = 0.0, []
            for i in range(N):
                x0, x1 = s0[base + i], s1[base + i]
                sent = x1["rtp_out"] - x0["rtp_out"]
                expected = x1["expected"] - x0["expected"]
                received = x1["received"] - x0["received"]
                if sent < 0.9 * elapsed_pkts or expected < 0.9 * elapsed_pkts:
                    short.append((i, sent, expected))
                loss_max = max(loss_max, (expected - received) / max(expected, 1))
            self.assertEqual(short[:10], [], f"{name}: sessions below 90% of 50 packets/s")
            self.assertLessEqual(loss_max, LOSS_BOUND, f"{name}: worst session loss")
            fired = w1["timers_fired"] - w0["timers_fired"]
            ticks = sum(c1[k] - c0[k] for k in ("rtp_out", "rtcp_out", "tx_full",
                                                "injected_loss"))
            print(f"{name}: worst loss {loss_max:.4%}, timers fired {fired}, packets and "
                  f"reports {ticks}, tx_full {c1['tx_full'] - c0['tx_full']}, busy "
                  f"{(w1['busy_ns'] - w0['busy_ns']) / 1e9 / DURATION:.0%} of the window",
                  file=sys.stderr)
            self.assertLessEqual(abs(fired - ticks), 0.01 * ticks, name)
            self.assertEqual(w1["timers_full"], 0, name)
        self.assertTrue(a.server.alive() and b.server.alive())


if __name__ == "__main__":
    unittest.main()

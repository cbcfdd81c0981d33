#!/usr/bin/env python3
"""Management operations on the real corewire under `corewirectl run` (stdlib only).

usage: management_ops_test.py CTL COREWIRE BENCH [BACKEND]

Drain under load: runs `corewirectl run` on a default-like config (both echo services, UDP and TCP, on free
ports), puts corewire-bench TCP load on the native echo (several connections, a couple of
seconds), and drains mid-run. Checks: new connects are refused on every TCP port while the
open connections keep being served; UDP is still answered; every request the generator
sent got its reply (sent == received, nothing lost) and the server's counters (/metrics)
match the generator's exactly; the latency histogram holds one sample per request, in
finite buckets; an idle connection held open does not keep the dataplane past its drain
deadline, and both processes exit 0.

Service disable/enable: `corewirectl service disable` makes the native echo answer with
an error (counted in errors) and the sockperf echo drop (counted in dropped); `enable`
serves again. A service configured `enabled = false` starts disabled; SIGHUP and `reload`
apply a changed `enabled` live.
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
import time
import unittest
import urllib.error
import urllib.request

from cwtest import free_port, wait_for

CTL = COREWIRE = BENCH = None
BACKEND = "auto"
DRAIN_TIMEOUT_MS = 4000   # longer than the load left after the drain
BENCH_SECONDS = 2.0
SUPERVISOR_GRACE_S = 2.0  # corewirectl escalates to SIGKILL after deadline + 2 s


def refused(port):
    s = socket.socket()
    s.settimeout(1.0)
    try:
        s.connect(("127.0.0.1", port))
        return False
    except ConnectionRefusedError:
        return True
    finally:
        s.close()


class ManagementOps(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="cw-drain-")
        self.admin = free_port()
        self.sp_udp, self.sp_tcp = free_port(socket.SOCK_DGRAM), free_port()
        self.nt_udp, self.nt_tcp = free_port(socket.SOCK_DGRAM), free_port()
        self.cfg = os.path.join(self.dir, "corewire.toml")
        with open(self.cfg, "w") as f:
            f.write('[runtime]\nworkers = 1\nbackend = "%s"\n\n' % BACKEND +
                    '[[service]]\nname = "sockperf-echo"\nudp = %d\ntcp = %d\n\n'
                    '[[service]]\nname = "echo"\nudp = %d\ntcp = %d\n\n'
                    '[control]\nrun_dir = "%s/run"\nadmin = "127.0.0.1:%d"\npublish_ms = 5\n'
                    'drain_timeout_ms = %d\n'
                    % (self.sp_udp, self.sp_tcp, self.nt_udp, self.nt_tcp, self.dir, self.admin,
                       DRAIN_TIMEOUT_MS))
        self.log_path = os.path.join(self.dir, "corewirectl.log")
        self.ctl = self.bench = None

    def tearDown(self):
        for p in (self.bench, self.ctl):
            if p and p.poll() is None:
                p.kill()
                p.wait()
        subprocess.run([CTL, "-c", self.cfg, "shutdown"], capture_output=True, timeout=10)
        if os.path.exists(self.log_path):
            with open(self.log_path) as f:
                sys.stderr.write("--- corewirectl + corewire log\n" + f.read())
        subprocess.run(["rm", "-rf", self.dir])

    def http(self, path):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.admin, path), timeout=2) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def metrics(self, name, service="echo"):
        """{labels-without-service/worker: summed value} of one family for one service."""
        _, text = self.http("/metrics")
        out = {}
        for line in text.splitlines():
            m = re.match(r'^%s\{([^}]*)\} (\S+)$' % re.escape(name), line)
            if not m or 'service="%s"' % service not in m.group(1):
                continue
            le = re.search(r'le="([^"]*)"', m.group(1))
            key = le.group(1) if le else ""
            out[key] = out.get(key, 0) + float(m.group(2))
        return out

    def metric(self, name, service="echo"):
        return self.metrics(name, service).get("")

    def sockperf_udp_echo(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(1.0)
        try:
            s.sendto(struct.pack(">QHI", 1, 0x3, 14), ("127.0.0.1", self.sp_udp))
            return len(s.recvfrom(2048)[0]) == 14
        finally:
            s.close()

    def start(self):
        with open(self.log_path, "w") as log:
            self.ctl = subprocess.Popen([CTL, "-c", self.cfg, "run", "--corewire", COREWIRE],
                                        stderr=log)
        wait_for(lambda: self.http("/ready")[0] == 200, 10, "/ready")

    def ctl_cmd(self, *args):
        out = subprocess.run([CTL, "-c", self.cfg] + list(args), capture_output=True, text=True,
                             timeout=10)
        self.assertEqual(out.returncode, 0, out.stderr)
        return out.stdout

    def native_udp(self, req_id):
        """Sends a native echo request; returns (kind, payload) of the reply."""
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(1.0)
        try:
            payload = b"abcd"
            s.sendto(struct.pack(">HBBHHQII", 0x4357, 1, 0, 1, 0, req_id, len(payload), 0) +
                     payload, ("127.0.0.1", self.nt_udp))
            data = s.recvfrom(2048)[0]
        finally:
            s.close()
        _, _, kind, _, _, rid, _, _ = struct.unpack(">HBBHHQII", data[:24])
        self.assertEqual(rid, req_id)
        return kind, data[24:]

    def test_service_disable_enable(self):
        self.start()
        self.assertEqual(self.native_udp(1), (1, b"abcd"))  # response
        self.assertTrue(self.sockperf_udp_echo())
        self.ctl_cmd("service", "disable", "echo")
        self.ctl_cmd("service", "disable", "sockperf-echo")
        listed = json.loads(self.ctl_cmd("--json", "services"))
        self.assertEqual([x["enabled"] for x in listed["services"]], [False, False], listed)
        kind, payload = self.native_udp(2)
        self.assertEqual((kind, payload), (3, struct.pack(">H", 7)), "error unavailable")
        with self.assertRaises(socket.timeout):
            self.sockperf_udp_echo()
        wait_for(lambda: self.metric("corewire_service_errors_total") == 1, 2, "errors counted")
        wait_for(lambda: self.metric("corewire_service_dropped_total", "sockperf-echo") == 1, 2,
                 "sockperf drop counted")
        self.ctl_cmd("service", "enable", "echo")
        self.ctl_cmd("service", "enable", "sockperf-echo")
        self.assertEqual(self.native_udp(3), (1, b"abcd"))
        self.assertTrue(self.sockperf_udp_echo())
        wait_for(lambda: self.metric("corewire_service_responses_total") == 2, 2, "served again")
        self.assertEqual(self.metric("corewire_service_requests_total"), 3)
        self.ctl_cmd("shutdown")
        self.assertEqual(self.ctl.wait(timeout=10), 0)

    def test_service_enabled_in_config_and_reload(self):
        with open(self.cfg) as f:
            text = f.read()
        marker = '[[service]]\nname = "echo"\n'
        self.assertIn(marker, text)
        with open(self.cfg, "w") as f:
            f.write(text.replace(marker, marker + "enabled = false\n"))
        self.start()
        # Disabled from the start (mailed within the workers' first loop iterations).
        wait_for(lambda: self.native_udp(1)[0] == 3, 2, "echo starts disabled")
        self.assertTrue(self.sockperf_udp_echo(), "the other service serves")
        # SIGHUP with enabled = true: applied live, no restart needed.
        with open(self.cfg, "w") as f:
            f.write(text)
        pid = json.loads(self.http("/status")[1])["dataplane"]["pid"]
        os.kill(pid, signal.SIGHUP)
        wait_for(lambda: self.native_udp(2)[0] == 1, 2, "echo enabled by SIGHUP")
        # POST /reload with enabled = false names what it applied.
        with open(self.cfg, "w") as f:
            f.write(text.replace(marker, marker + "enabled = false\n"))
        req = urllib.request.Request("http://127.0.0.1:%d/reload" % self.admin, method="POST")
        with urllib.request.urlopen(req, timeout=2) as r:
            reply = json.loads(r.read().decode())
        self.assertEqual(reply["applied"], ["service[1] echo.enabled = false"], reply)
        self.assertEqual(reply["restart_needed"], [], reply)
        wait_for(lambda: self.native_udp(3)[0] == 3, 2, "echo disabled by reload")
        listed = json.loads(self.ctl_cmd("--json", "services"))
        self.assertEqual([x["enabled"] for x in listed["services"]], [True, False], listed)
        self.ctl_cmd("shutdown")
        self.assertEqual(self.ctl.wait(timeout=10), 0)

    def test_drain_under_load(self):
        self.start()
        pid = json.loads(self.http("/status")[1])["dataplane"]["pid"]
        # An idle client that never closes: the drain must not wait for it past its deadline.
        idle = socket.create_connection(("127.0.0.1", self.sp_tcp), timeout=2)

        report = os.path.join(self.dir, "bench.json")
        self.bench = subprocess.Popen(
            [BENCH, "--proto", "native", "--tcp", "--target", "127.0.0.1:%d" % self.nt_tcp,
             "--flows", "8", "--duration", str(BENCH_SECONDS), "--timeout", "5",
             "--json", report, "-q"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        # Drain once the load is flowing.
        wait_for(lambda: (self.metric("corewire_service_requests_total") or 0) > 1000, 5,
                 "load under way")
        self.assertIsNone(self.bench.poll(), "the load still runs when the drain starts")
        self.ctl_cmd("drain")
        t_drain = time.monotonic()

        # New connections are refused on every TCP port; UDP is still answered.
        wait_for(lambda: refused(self.nt_tcp) and refused(self.sp_tcp), 2, "connects refused")
        draining = '\ncorewire_dataplane_state{state="draining"} 1\n'
        wait_for(lambda: draining in self.http("/metrics")[1], 2, "state draining")
        self.assertTrue(self.sockperf_udp_echo(), "UDP is answered during the drain")
        before = self.metric("corewire_service_requests_total")

        # The load runs to its end over the connections it had: nothing lost.
        _, err = self.bench.communicate(timeout=BENCH_SECONDS + 10)
        self.assertEqual(self.bench.returncode, 0, err)
        with open(report) as f:
            r = json.load(f)
        self.assertGreater(r["sent"], 0)
        self.assertEqual(r["received"], r["sent"], r)
        self.assertEqual(r["lost"], 0, r)
        self.assertEqual(r["errors"], 0, r)
        self.assertEqual(r["conns"]["failed"], 0, r)
        self.assertEqual(r["conns"]["closed"], 0, "no connection was cut by the drain")

        # The server's counters match the generator's exactly, and it kept serving after the
        # drain started.
        sent = r["sent"] + r.get("warmup_sent", 0)
        wait_for(lambda: self.metric("corewire_service_requests_total") == sent, 2,
                 "server requests == generator sent (%d)" % sent)
        self.assertGreater(sent, before)
        self.assertEqual(self.metric("corewire_service_responses_total"), sent)
        self.assertEqual(self.metric("corewire_service_dropped_total"), 0)
        # Latency: one sample per request, all in finite buckets.
        self.assertEqual(self.metric("corewire_service_latency_seconds_count"), sent)
        buckets = self.metrics("corewire_service_latency_seconds_bucket")
        finite = [v for le, v in buckets.items() if le != "+Inf"]
        self.assertEqual(max(finite), sent, buckets)
        self.assertGreater(self.metric("corewire_service_latency_seconds_sum"), 0)

        # The idle connection holds the drain until its deadline; then both exit 0.
        self.assertEqual(self.ctl.wait(timeout=DRAIN_TIMEOUT_MS / 1000 + SUPERVISOR_GRACE_S + 5), 0)
        self.assertLess(time.monotonic() - t_drain, DRAIN_TIMEOUT_MS / 1000 + SUPERVISOR_GRACE_S)
        wait_for(lambda: subprocess.run(["kill", "-0", str(pid)], capture_output=True).returncode
                 != 0, 2, "dataplane exit")
        with open(self.log_path) as f:
            log = f.read()
        self.assertIn("drain deadline passed with connections open", log)
        self.assertNotIn("SIGKILL", log)
        idle.settimeout(2)
        try:
            self.assertEqual(idle.recv(1), b"", "the idle connection is closed at exit")
        except ConnectionResetError:
            pass
        idle.close()


if __name__ == "__main__":
    CTL, COREWIRE, BENCH = (os.path.abspath(a) for a in sys.argv[1:4])
    if len(sys.argv) > 4:
        BACKEND = sys.argv[4]
    unittest.main(argv=[sys.argv[0]], verbosity=2)

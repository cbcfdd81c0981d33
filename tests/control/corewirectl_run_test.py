#!/usr/bin/env python3
"""End-to-end test of `corewirectl run` (stdlib only).

usage: corewirectl_run_test.py CTL DATAPLANE [--config-base FILE] [--udp-port-arg] [-- extra dataplane args]

Starts `corewirectl run` on a config whose [control] section points at a temporary run dir,
sends UDP datagrams to the dataplane and checks /metrics, kills the dataplane with SIGKILL
(served again within 2 s, restart counted), kills corewirectl with SIGKILL (the dataplane keeps
serving; a new corewirectl re-attaches), and finally drains with SIGTERM.
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

CTL = DATAPLANE = None
CONFIG_BASE = None   # the dataplane's own config text ([control] is appended)
REAL = False         # the real corewire (not tests/control/fake_dataplane)
UDP_PORT = None      # the port the dataplane echoes on
EXTRA = []


class CorewirectlRun(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="cw-run-")
        self.admin = free_port()
        self.cfg = os.path.join(self.dir, "corewire.toml")
        with open(self.cfg, "w") as f:
            f.write(CONFIG_BASE or "")
            f.write('\n[control]\nrun_dir = "%s/run"\nadmin = "127.0.0.1:%d"\npublish = \"5ms\"\n'
                    'drain_timeout = "1s"\n' % (self.dir, self.admin))
        self.procs = []
        # Stands in for systemd's notify socket (Type=notify).
        self.notify_path = os.path.join(self.dir, "notify.sock")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(self.notify_path)
        self.notify.settimeout(0.1)

    def tearDown(self):
        if True:  # corewirectl logs, shown by meson on failure
            for i in range(len(self.procs)):
                path = os.path.join(self.dir, "corewirectl-%d.log" % i)
                if os.path.exists(path):
                    with open(path) as f:
                        sys.stderr.write("--- %s\n%s" % (path, f.read()))
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        # A dataplane left running (re-attach case) is found through the socket.
        subprocess.run([CTL, "-c", self.cfg, "shutdown"], capture_output=True, timeout=10)
        self.notify.close()
        subprocess.run(["rm", "-rf", self.dir])

    def start_ctl(self):
        args = [CTL, "-c", self.cfg, "run", "--corewire", DATAPLANE, "--backoff-ms", "50",
                "--backoff-max-ms", "200"]
        if EXTRA:
            args += ["--"] + EXTRA
        log = open(os.path.join(self.dir, "corewirectl-%d.log" % len(self.procs)), "w")
        env = dict(os.environ, NOTIFY_SOCKET=self.notify_path)
        p = subprocess.Popen(args, stderr=log, env=env)
        log.close()
        self.procs.append(p)
        return p

    def http(self, path, method="GET"):
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.admin, path), method=method)
        try:
            with urllib.request.urlopen(req, timeout=2) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def metric(self, name):
        _, text = self.http("/metrics")
        total, found = 0.0, False
        for line in text.splitlines():
            m = re.match(r"^%s(\{[^}]*\})? (\S+)$" % re.escape(name), line)
            if m:
                total += float(m.group(2))
                found = True
        return total if found else None

    def status(self):
        code, body = self.http("/status")
        return json.loads(body)

    def echo(self, n):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(1.0)
        got = 0
        try:
            for i in range(n):
                # A sockperf ping (client + pong-request): the real corewire answers it on
                # its sockperf-echo port and the fake dataplane echoes anything.
                payload = b"ping %d" % i
                s.sendto(struct.pack(">QHI", i, 0x3, 14 + len(payload)) + payload,
                         ("127.0.0.1", UDP_PORT))
                try:
                    data, _ = s.recvfrom(2048)
                    got += bool(data)
                except socket.timeout:
                    pass
        finally:
            s.close()
        return got

    def no_reply(self, n):
        """Sends n sockperf messages that ask for no reply (client bit only)."""
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            for i in range(n):
                s.sendto(struct.pack(">QHI", 1000 + i, 0x1, 14), ("127.0.0.1", UDP_PORT))
        finally:
            s.close()

    def check_declared_counters(self):
        """Counters a service declares reach the segment, `corewirectl stats` and /metrics.
        The fake dataplane's "echo" declares echoed (counter) and last_datagram_bytes (gauge);
        the real corewire's sockperf-echo declares no_reply and echo declares oneway."""
        if REAL:
            self.no_reply(2)
            service, name, family, want = "sockperf-echo", "no_reply", "corewire_service_no_reply_total", 2
            wait_for(lambda: self.metric(family) == want, 5, "%s == %d in /metrics" % (family, want))
            self.assertEqual(self.metric("corewire_service_oneway_total"), 0, "echo's, declared too")
        else:
            service, name, family, want = "echo", "echoed", "corewire_service_echoed_total", 10
            wait_for(lambda: self.metric(family) == want, 5, "%s == %d in /metrics" % (family, want))
            self.assertEqual(self.metric("corewire_service_last_datagram_bytes"), 14 + len(b"ping 9"))
        _, text = self.http("/metrics")
        self.assertIn('# TYPE %s counter' % family, text)
        self.assertRegex(text, r'%s\{service="%s",worker="0"\} %d\n' % (family, re.escape(service), want))
        out = subprocess.run([CTL, "-c", self.cfg, "stats"], capture_output=True, text=True, timeout=10)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertRegex(out.stdout, r"(?m)^%s +%s +counter +%d$" % (re.escape(service), name, want),
                         out.stdout)
        out = subprocess.run([CTL, "-c", self.cfg, "--json", "stats"], capture_output=True, text=True,
                             timeout=10)
        self.assertEqual(out.returncode, 0, out.stderr)
        j = json.loads(out.stdout)
        self.assertEqual(j["workers"][0]["services"][service]["counters"][name], want)
        self.assertIn({"service": service, "name": name, "kind": "counter"},
                      [{k: d[k] for k in ("service", "name", "kind")} for d in j["service_counters"]])

    def test_supervise_metrics_restart_reattach_drain(self):
        ctl = self.start_ctl()
        wait_for(lambda: self.http("/ready")[0] == 200, 10, "/ready")
        pid1 = self.status()["dataplane"]["pid"]
        notes = wait_for(lambda: self.notify.recv(4096).decode(), 5, "sd_notify message")
        self.assertIn("READY=1", notes)

        # Counters: what the client sent is what /metrics shows.
        self.assertEqual(self.echo(10), 10)
        # The dataplane counts a reply after sending it, so the client may hold the tenth
        # reply before tx reads 10: wait for all three.
        def counts():
            return [self.metric(m) for m in ("corewire_io_rx_datagrams_total",
                                             "corewire_io_tx_datagrams_total",
                                             "corewire_service_requests_total")]
        wait_for(lambda: counts() == [10, 10, 10], 5, "rx, tx, requests == 10 in /metrics")
        self.check_declared_counters()
        self.assertEqual(self.metric("corewire_restarts_total"), 0)
        self.assertEqual(self.http("/drain")[0], 405, "mutations are POST only")
        code, body = self.http("/log-level?level=debug", "POST")  # no body, no Content-Length
        self.assertEqual(code, 200, body)
        self.assertEqual(json.loads(body)["level"], "debug")
        self.assertEqual(self.http("/service/nope/disable", "POST")[0], 400)
        code, body = self.http("/reload", "POST")
        self.assertEqual(code, 200, body)
        self.assertIn("restart_needed", json.loads(body))

        # kill -9 the dataplane: serving again within 2 s, restart counted.
        t0 = time.monotonic()
        os.kill(pid1, signal.SIGKILL)
        wait_for(lambda: self.metric("corewire_restarts_total") == 1, 2, "restart counted")
        wait_for(lambda: self.echo(1) == 1, 2 - (time.monotonic() - t0) + 0.5, "echo after restart")
        self.assertLess(time.monotonic() - t0, 2.5)
        st = self.status()
        pid2 = st["dataplane"]["pid"]
        self.assertNotEqual(pid1, pid2)
        self.assertIn("signal 9", st["supervisor"]["last_exit"])
        wait_for(lambda: self.metric("corewire_io_rx_datagrams_total") is not None and
                 self.metric("corewire_io_rx_datagrams_total") >= 1, 2, "new segment in /metrics")

        # kill -9 corewirectl: the dataplane keeps serving; a new corewirectl re-attaches.
        ctl.kill()
        ctl.wait()
        self.assertEqual(self.echo(3), 3)
        os.kill(pid2, 0)  # still alive
        ctl2 = self.start_ctl()
        wait_for(lambda: self.status()["supervisor"]["adopted"], 5, "re-attach")
        self.assertEqual(self.status()["dataplane"]["pid"], pid2)
        # A second supervisor for the same run dir is refused and leaves the dataplane alone.
        third = self.start_ctl()
        self.assertEqual(third.wait(timeout=10), 1)
        self.assertEqual(self.echo(1), 1)
        self.assertEqual(self.status()["dataplane"]["pid"], pid2)

        # CLI over the socket and the segment.
        out = subprocess.run([CTL, "-c", self.cfg, "--json", "status"], capture_output=True, text=True, timeout=10)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(json.loads(out.stdout)["pid"], pid2)
        out = subprocess.run([CTL, "-c", self.cfg, "stats", "--json"], capture_output=True, text=True, timeout=10)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(json.loads(out.stdout)["pid"], pid2)
        out = subprocess.run([CTL, "-c", self.cfg, "service", "disable", "nope"], capture_output=True, text=True, timeout=10)
        self.assertEqual(out.returncode, 1)
        self.assertIn("no service named", out.stderr)

        if REAL:
            # SIGHUP-style reload: the log level applies live, a worker count needs a restart.
            with open(self.cfg) as f:
                text = f.read()
            with open(self.cfg, "w") as f:
                f.write(text.replace("workers = 1", "workers = 2") + '\n[log]\nlevel = "warn"\n')
            code, body = self.http("/reload", "POST")
            self.assertEqual(code, 200, body)
            reply = json.loads(body)
            self.assertEqual(reply["applied"], ["log.level = warn"])
            self.assertTrue(any("2 worker" in l for l in reply["restart_needed"]), reply)

        # SIGTERM: graceful drain, both exit cleanly.
        ctl2.send_signal(signal.SIGTERM)
        self.assertEqual(ctl2.wait(timeout=10), 0)
        wait_for(lambda: subprocess.run(["kill", "-0", str(pid2)], capture_output=True).returncode != 0,
                 5, "dataplane exit")


if __name__ == "__main__":
    argv = sys.argv[1:]
    if "--" in argv:
        i = argv.index("--")
        argv, EXTRA = argv[:i], argv[i + 1:]
    CTL, DATAPLANE = os.path.abspath(argv[0]), os.path.abspath(argv[1])
    rest = argv[2:]
    if "--config-base" in rest:
        with open(rest[rest.index("--config-base") + 1]) as f:
            CONFIG_BASE = f.read()
    if "--real" in rest:
        REAL = True
        # The real corewire: its default config with the services on free ports.
        UDP_PORT = free_port(socket.SOCK_DGRAM)
        CONFIG_BASE = ('[runtime]\nworkers = 1\n\n[[service]]\nname = "sockperf-echo"\nudp = %d\n'
                       'tcp = %d\n\n[[service]]\nname = "echo"\nudp = %d\ntcp = %d\n'
                       % (UDP_PORT, free_port(), free_port(socket.SOCK_DGRAM), free_port()))
    else:
        UDP_PORT = free_port(socket.SOCK_DGRAM)
        EXTRA = EXTRA + ["--udp-port", str(UDP_PORT)]
    unittest.main(argv=[sys.argv[0]], verbosity=2)

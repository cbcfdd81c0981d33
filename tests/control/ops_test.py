"""Operator-facing behaviour of the three binaries (issue 21): --version, the command line's
edges, the log line format on a terminal and under journald, `corewirectl run` without a
config file. Usage: ops_test.py CTL COREWIRE BENCH VERSION"""
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cwtest import free_port, wait_for  # noqa: E402

CTL = COREWIRE = BENCH = VERSION = None
TS_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (\w+) +(corewire|corewirectl): ")


def config(tmp, udp_port):
    """A config on free ports (udp_port for the first service) with its own run dir."""
    return ('[runtime]\nworkers = 1\n\n[control]\nrun_dir = "%s/run"\nadmin = ""\n\n'
            '[[service]]\nname = "echo"\nudp = %d\ntcp = %d\n' % (tmp, udp_port, free_port()))


class Ops(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="cw-ops-")

    def promtool_accepts(self, metrics):
        """`promtool check metrics` (Debian package prometheus) passes, when installed."""
        promtool = shutil.which("promtool")
        if promtool:
            p = subprocess.run([promtool, "check", "metrics"], input=metrics,
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    @contextlib.contextmanager
    def supervised(self, path, timeout=20):
        """`corewirectl -c path run` on a free admin port: yields that port once it serves,
        always stops corewirectl (SIGTERM) after; its exit code lands in self.ctl_rc."""
        log = open(os.path.join(self.tmp, "run.log"), "w")
        ctl = subprocess.Popen([CTL, "-c", path, "run", "--admin-port", str(free_port()),
                                "--corewire", COREWIRE], stderr=log)
        try:
            def admin_port():
                with open(log.name) as f:
                    m = re.search(r"admin HTTP on http://127\.0\.0\.1:(\d+)/", f.read())
                return m and int(m.group(1))
            yield wait_for(admin_port, timeout, "admin HTTP")
        finally:
            ctl.send_signal(signal.SIGTERM)
            try:
                ctl.wait(timeout=30)
            finally:
                log.close()
                if ctl.poll() is None:
                    ctl.kill()
                    ctl.wait()
            self.ctl_rc = ctl.returncode

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_version_everywhere(self):
        # One version from meson's generated header, the same commit in all three.
        lines = []
        for prog, name in ((COREWIRE, "corewire"), (CTL, "corewirectl"), (BENCH, "corewire-bench")):
            p = subprocess.run([prog, "--version"], capture_output=True, text=True, timeout=10)
            self.assertEqual(p.returncode, 0, p.stderr)
            m = re.match(r"^%s (\S+) \(commit (\S+); backends: ([a-z_ ]+)\)$" % re.escape(name),
                         p.stdout.strip())
            self.assertTrue(m, p.stdout)
            self.assertEqual(m.group(1), VERSION)
            self.assertIn("epoll", m.group(3).split())
            lines.append(m.groups())
        self.assertEqual(len(set(lines)), 1, lines)

    def test_stray_word_is_a_usage_error(self):
        p = subprocess.run([COREWIRE, "--check-config", "--workers", "1", "stray"],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
        self.assertIn("corewire: usage error:", p.stderr)
        self.assertIn("stray", p.stderr)
        # After "--" the same word is an EAL argument, which the config check accepts.
        p = subprocess.run([COREWIRE, "--check-config", "--workers", "1", "--", "stray"],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_help_names_every_backend_and_level(self):
        p = subprocess.run([COREWIRE, "--help"], capture_output=True, text=True, timeout=10)
        self.assertIn("auto | io_uring | epoll | dpdk", p.stdout)
        levels = "trace|debug|info|warn|error|critical|off"
        self.assertIn(levels, p.stdout)
        p = subprocess.run([CTL, "log-level", "--help"], capture_output=True, text=True, timeout=10)
        self.assertIn(levels, p.stdout)
        # The config file takes the same names (critical included).
        path = os.path.join(self.tmp, "c.toml")
        with open(path, "w") as f:
            f.write("[log]\nlevel = \"critical\"\n")
        p = subprocess.run([COREWIRE, "--check-config", "-c", path], capture_output=True,
                           text=True, timeout=10)
        self.assertEqual(p.returncode, 0, p.stderr)

    def start_failure(self, env_journal):
        """corewire on a UDP port another socket holds: it must log its start-up error."""
        held = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        held.bind(("127.0.0.1", 0))
        path = os.path.join(self.tmp, "c.toml")
        with open(path, "w") as f:
            f.write(config(self.tmp, held.getsockname()[1]))
        log = os.path.join(self.tmp, "stderr")
        with open(log, "w") as err:
            env = dict(os.environ)
            env.pop("JOURNAL_STREAM", None)
            if env_journal:
                st = os.fstat(err.fileno())
                env["JOURNAL_STREAM"] = "%d:%d" % (st.st_dev, st.st_ino)
            p = subprocess.run([COREWIRE, "-c", path], stderr=err, stdout=subprocess.DEVNULL,
                               env=env, timeout=30)
        held.close()
        self.assertEqual(p.returncode, 1)
        with open(log) as f:
            return f.read().splitlines()

    def test_terminal_lines_have_time_and_level(self):
        lines = self.start_failure(False)
        parsed = [TS_LINE.match(l) for l in lines]
        self.assertTrue(all(parsed), lines)
        self.assertIn("info", [m.group(1) for m in parsed])
        errors = [l for l, m in zip(lines, parsed) if m.group(1) == "error"]
        self.assertTrue(errors and "cannot start" in errors[-1], lines)

    def test_journal_priorities(self):
        # Under journald (JOURNAL_STREAM names stderr) every line carries its syslog priority,
        # so `journalctl -p err` finds the start-up error.
        lines = self.start_failure(True)
        self.assertTrue(all(re.match(r"^<[0-7]>corewire: ", l) for l in lines), lines)
        self.assertTrue(any(l.startswith("<6>corewire: config ") for l in lines), lines)
        errs = [l for l in lines if l.startswith("<3>")]
        self.assertTrue(errs and "cannot start" in errs[-1], lines)
        # A config error, before the logger exists, too.
        env = dict(os.environ)
        log = os.path.join(self.tmp, "stderr2")
        with open(log, "w") as err:
            st = os.fstat(err.fileno())
            env["JOURNAL_STREAM"] = "%d:%d" % (st.st_dev, st.st_ino)
            p = subprocess.run([COREWIRE, "-c", "/nonexistent/cw.toml"], stderr=err, env=env,
                               timeout=10)
        self.assertEqual(p.returncode, 2)
        with open(log) as f:
            self.assertTrue(f.read().startswith("<3>corewire: config error: "))

    def test_corewirectl_logs_with_levels(self):
        p = subprocess.run([CTL, "--run-dir", os.path.join(self.tmp, "none"), "status"],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 1)
        m = TS_LINE.match(p.stderr)
        self.assertTrue(m and m.group(1) == "error" and m.group(2) == "corewirectl", p.stderr)

    def test_percentiles_metrics_and_reset_under_load(self):
        port = free_port(socket.SOCK_DGRAM)
        path = os.path.join(self.tmp, "c.toml")
        with open(path, "w") as f:
            f.write(config(self.tmp, port))
        with self.supervised(path) as http:
            ctl_json = lambda *a: json.loads(subprocess.run(  # noqa: E731
                [CTL, "-c", path, "--json"] + list(a), capture_output=True, text=True,
                timeout=10).stdout)
            wait_for(lambda: ctl_json("status")["state"] == "serving", 20, "serving")
            bench = subprocess.Popen([BENCH, "--proto", "native", "--udp", "--target",
                                      "127.0.0.1:%d" % port, "-m", "64", "--duration", "4",
                                      "-q"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
            self.addCleanup(lambda: bench.poll() is None and (bench.kill(), bench.wait()))
            # Under load: percentiles per service, ordered, from the histograms.
            svc = wait_for(lambda: [s for s in ctl_json("services")["services"]
                                    if s["latency"]["count"] > 100], 20, "latency samples")[0]
            lat = svc["latency"]
            self.assertEqual(svc["name"], "echo")
            self.assertGreater(lat["p50_us"], 0)
            self.assertTrue(lat["p50_us"] <= lat["p90_us"] <= lat["p99_us"] <= lat["p99_9_us"],
                            lat)
            self.assertLessEqual(lat["p99_9_us"], 10e6)
            self.assertGreater(ctl_json("stats")["latency"]["echo"]["count"], 0)
            human = subprocess.run([CTL, "-c", path, "stats"], capture_output=True, text=True,
                                   timeout=10).stdout
            self.assertIn("p99_us", human)
            self.assertRegex(human, r"mean burst \d+\.\d\d items")

            def get(url):
                with urllib.request.urlopen("http://127.0.0.1:%d%s" % (http, url),
                                            timeout=5) as r:
                    return r.status, r.read().decode()
            self.assertEqual(get("/healthz"), (200, "ok\n"))
            # No pubsub service here: nats-server's monitoring paths say so.
            with self.assertRaises(urllib.error.HTTPError) as e:
                get("/varz")
            self.assertEqual(e.exception.code, 404)
            code, body = get("/stats")
            self.assertEqual(code, 200)
            self.assertGreater(json.loads(body)["latency"]["echo"]["count"], 0)
            code, metrics = get("/metrics")
            self.assertIn('corewire_build_info{version="%s",commit="' % VERSION, metrics)
            self.assertIn('corewire_dataplane_state{state="serving"} 1\n', metrics)
            self.assertRegex(metrics, r"\nprocess_open_fds \d+\n")
            self.assertRegex(metrics, r"\ncorewire_dataplane_process_resident_memory_bytes \d+")
            self.assertNotIn('pid="', metrics)
            self.promtool_accepts(metrics)
            bench.wait(timeout=30)
            # stats reset: the CLI counts from now; /metrics keeps its monotonic counters.
            before = ctl_json("services")["services"][0]["requests"]
            self.assertGreater(before, 0)
            r = subprocess.run([CTL, "-c", path, "stats", "reset"], capture_output=True,
                               text=True, timeout=10)
            self.assertEqual(r.returncode, 0, r.stderr)
            after = ctl_json("services")["services"][0]
            self.assertEqual(after["requests"], 0)
            self.assertEqual(after["latency"]["count"], 0)
            self.assertIn("corewire_service_requests_total{service=\"echo\",worker=\"0\"} %d"
                          % before, get("/metrics")[1])
            subprocess.run([CTL, "-c", path, "stats", "reset", "--clear"], check=True,
                           capture_output=True, timeout=10)
            self.assertEqual(ctl_json("services")["services"][0]["requests"], before)

    def test_systemd_notify_ready_and_watchdog(self):
        # What corewire.service relies on (Type=notify, WatchdogSec=): READY=1 once serving,
        # WATCHDOG=1 at half the period, STOPPING=1 on SIGTERM. A socket stands in for systemd.
        path = os.path.join(self.tmp, "c.toml")
        with open(path, "w") as f:
            f.write(config(self.tmp, free_port(socket.SOCK_DGRAM)))
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(os.path.join(self.tmp, "notify"))
        sock.settimeout(0.2)
        env = dict(os.environ, NOTIFY_SOCKET=os.path.join(self.tmp, "notify"),
                   WATCHDOG_USEC="200000")
        env.pop("WATCHDOG_PID", None)
        with open(os.path.join(self.tmp, "run.log"), "w") as log:
            ctl = subprocess.Popen([CTL, "-c", path, "run", "--corewire", COREWIRE], stderr=log,
                                   env=env)
        msgs = []
        try:
            end = time.monotonic() + 20
            while time.monotonic() < end and (
                    not any("READY=1" in m for m in msgs)
                    or sum("WATCHDOG=1" in m for m in msgs) < 5):
                try:
                    msgs.append(sock.recv(4096).decode())
                except socket.timeout:
                    pass
        finally:
            ctl.send_signal(signal.SIGTERM)
            ctl.wait(timeout=30)
        try:
            while True:
                msgs.append(sock.recv(4096).decode())
        except socket.timeout:
            pass
        sock.close()
        self.assertTrue(any("READY=1" in m for m in msgs), msgs)
        self.assertGreaterEqual(sum("WATCHDOG=1" in m for m in msgs), 5, msgs)
        self.assertTrue(any("STOPPING=1" in m for m in msgs), msgs)
        self.assertEqual(ctl.returncode, 0)

    @unittest.skipUnless(os.geteuid() == 0, "needs root (DPDK EAL)")
    def test_dpdk_port_and_link_state(self):
        # The DPDK backend on a net_ring vdev (no NIC, no hugepages): the port's link state
        # reaches `corewirectl status`, `stats` (and --json) and /metrics as labelled gauges.
        path = os.path.join(self.tmp, "c.toml")
        with open(path, "w") as f:
            f.write('[runtime]\nbackend = "dpdk"\nworkers = 1\nburst = 32\n\n'
                    '[dpdk]\neal = ["--no-huge", "-m", "512", "--no-pci"]\n'
                    'port = "net_ring_cwops"\naddresses = ["10.98.0.2/24"]\n\n'
                    '[control]\nrun_dir = "%s/run"\nadmin = ""\n\n'
                    '[[service]]\nname = "echo"\nudp = 11112\n' % self.tmp)
        check = subprocess.run([COREWIRE, "-c", path, "--check-config"], capture_output=True,
                               text=True, timeout=20)
        if "has no DPDK" in check.stdout + check.stderr:
            self.skipTest("this corewire build has no DPDK backend")
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)

        def ctl_run(*a):
            return subprocess.run([CTL, "-c", path] + list(a), capture_output=True, text=True,
                                  timeout=10)
        with self.supervised(path, timeout=30) as http:
            # Link gauges are published every 100 ms, after the first publish round.
            st = wait_for(lambda: (lambda j: j.get("state") == "serving" and j.get("ports")
                                   and j)(json.loads(ctl_run("--json", "status").stdout)),
                          30, "serving with a port")
            port = st["ports"][0]
            self.assertEqual(port["link"], "up", st)
            self.assertGreater(port["speed_mbps"], 0, st)  # net_ring: 10G
            self.assertEqual(port["duplex"], "full", st)
            human = ctl_run("status").stdout
            self.assertRegex(human, r"\nport +link +speed +duplex +autoneg\n\S+ +up +\d+G +full ",
                             human)
            self.assertRegex(human, r"mean burst +\d+\.\d\d items")
            stats = json.loads(ctl_run("--json", "stats").stdout)
            self.assertEqual(stats["ports"][0]["link"], "up")
            self.assertIn("mean_burst", stats["workers"][0])
            human = ctl_run("stats").stdout
            self.assertRegex(human, r"\n\S+ +up +\d+G +full +\w+ +\d+ +\d+ ", human)
            self.assertRegex(human, r"burst\n0 ", human)
            # `stats reset` leaves the link (a level) alone.
            self.assertEqual(ctl_run("stats", "reset").returncode, 0)
            self.assertEqual(json.loads(ctl_run("--json", "stats").stdout)["ports"][0]["link"],
                             "up")
            with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % http, timeout=5) as r:
                metrics = r.read().decode()
            self.assertRegex(metrics, r'\ncorewire_port_link_up\{port="\d+"\} 1\n')
            self.assertRegex(metrics, r'\ncorewire_port_link_speed_mbps\{port="\d+"\} [1-9]')
            self.assertIn("# TYPE corewire_port_link_up gauge", metrics)
            self.assertNotIn('name="link.', metrics)
            self.promtool_accepts(metrics)
        self.assertEqual(self.ctl_rc, 0)

    @unittest.skipUnless(os.geteuid() == 0 and shutil.which("unshare"),
                         "needs root and unshare (private /run and network namespace)")
    def test_run_without_config(self):
        # The built-in default (fixed ports 11111/11112, /run/corewire as root) in private
        # mount and network namespaces, so it collides with nothing on this machine.
        script = """
set -e
ip link set lo up
mount -t tmpfs tmpfs /run
"$1" run --admin-port 0 --corewire "$2" 2>"$3/run.log" &
pid=$!
for i in $(seq 1 200); do
  if "$1" status >/dev/null 2>&1; then break; fi
  sleep 0.05
done
"$1" status
kill -TERM $pid
wait $pid
"""
        p = subprocess.run(["unshare", "--mount", "--net", "--propagation", "private", "sh",
                            "-c", script, "sh", CTL, COREWIRE, self.tmp],
                           capture_output=True, text=True, timeout=60)
        with open(os.path.join(self.tmp, "run.log")) as f:
            log = f.read()
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr + log)
        self.assertIn("state       serving", p.stdout)
        self.assertIn("/run/corewire/control.sock", p.stdout)


if __name__ == "__main__":
    CTL, COREWIRE, BENCH, VERSION = [os.path.abspath(a) for a in sys.argv[1:4]] + [sys.argv[4]]
    unittest.main(argv=[sys.argv[0]], verbosity=2)

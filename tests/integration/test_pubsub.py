"""The pubsub service end to end: raw NATS sessions over two workers (exactly once, in
order per publisher), a slow consumer cut by a real kernel socket, the start-up refusal
without auth, the npm `nats` client (nats.js 2.x, installed from npm into the build dir)
and Debian's libnats (a C client meson builds when libnats is found), and a differential
session against Debian's nats-server 2.9 (replies compared, INFO masked).

Each part skips with its reason when its tool is missing: node/npm (or no registry),
$CW_CNATS, nats-server.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.environ.get("CW_BUILD_ROOT", "build")
SERVICES = """
[[service]]
name = "pubsub"
tcp = 0

[[service]]
name = "pubsub"
tcp = 0
token = "s3cret"

[[service]]
name = "pubsub"
tcp = 0
max_pending = "64KiB"
"""
SERVING = re.compile(r"serving pubsub tcp 127\.0\.0\.1:(\d+)")


def session(port, steps, wait=0.25):
    """One connection: sends each step, collects what arrives within `wait` after it;
    returns the replies as one string, INFO masked, '<EOF>' when the server closed."""
    s = socket.create_connection(("127.0.0.1", port), timeout=h.IO_TIMEOUT)
    out = b""
    closed = False

    def drain(until):
        nonlocal out, closed
        s.settimeout(0.05)
        while time.monotonic() < until and not closed:
            try:
                b = s.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                b = b""
            if not b:
                closed = True
            out += b

    drain(time.monotonic() + wait)
    for st in steps:
        if closed:
            break
        try:
            s.sendall(st)
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
        drain(time.monotonic() + wait)
    s.close()
    text = re.sub(r"INFO \{[^\r]*\} \r\n", "INFO\r\n", out.decode("latin-1"))
    return text + ("<EOF>" if closed else "")


class Client:
    """A raw NATS connection (CONNECT non-verbose) with bounded reads."""

    def __init__(self, port, connect="{\"verbose\":false,\"pedantic\":false}"):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=h.IO_TIMEOUT)
        self.buf = b""
        self.read_line()  # INFO
        self.s.sendall(b"CONNECT " + connect.encode() + b"\r\n")

    def send(self, b):
        self.s.sendall(b)

    def read_line(self):
        while b"\r\n" not in self.buf:
            b = self.s.recv(65536)
            if not b:
                raise EOFError("closed")
            self.buf += b
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read_exact(self, n):
        while len(self.buf) < n:
            b = self.s.recv(65536)
            if not b:
                raise EOFError("closed")
            self.buf += b
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def flush(self):
        self.send(b"PING\r\n")
        while True:
            line = self.read_line()
            if line == b"PONG":
                return
            assert line.startswith(b"MSG") is False, "flush() on a connection with messages"

    def msg(self):
        """(subject, sid, payload) of the next MSG."""
        line = self.read_line().split()
        assert line[0] == b"MSG", line
        payload = self.read_exact(int(line[-1]) + 2)[:-2]
        return line[1].decode(), line[2].decode(), payload

    def close(self):
        self.s.close()


class PubsubTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = h.Server(h.config("workers = 2", SERVICES))
        ports = [int(m.group(1)) for m in map(SERVING.search, cls.srv.log().splitlines()) if m]
        assert len(ports) == 3, cls.srv.log()
        cls.port, cls.auth_port, cls.slow_port = ports

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def test_info_and_session(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=h.IO_TIMEOUT)
        info = b""
        while not info.endswith(b"\r\n"):
            info += s.recv(4096)
        self.assertTrue(info.startswith(b"INFO "), info)
        d = json.loads(info[5:])
        self.assertEqual(d["proto"], 1)
        self.assertTrue(d["headers"])
        self.assertEqual(d["max_payload"], 1048576)
        self.assertEqual(d["port"], self.port)
        self.assertNotIn("auth_required", d)
        s.close()
        c = Client(self.port)
        c.send(b"SUB x.> 7\r\nPUB x.y r 3\r\nabc\r\n")
        self.assertEqual(c.msg(), ("x.y", "7", b"abc"))
        c.flush()
        c.close()

    def test_two_workers_exactly_once_in_order(self):
        """Subscribers and publishers over both workers (the kernel spreads connections):
        every subscriber gets every publisher's messages once, in its publish order."""
        subs = [Client(self.port) for _ in range(4)]
        for i, c in enumerate(subs):
            c.send(b"SUB ord.%d 1\r\nSUB ord.* 2\r\n" % i)
            c.flush()
        pubs = [Client(self.port) for _ in range(3)]
        n = 500
        for k in range(n):
            for p, c in enumerate(pubs):
                body = b"%d:%d" % (p, k)
                c.send(b"PUB ord.%d %d\r\n%s\r\n" % (k % 4, len(body), body))
        for c in pubs:
            c.flush()
        for i, c in enumerate(subs):
            want_own = sum(1 for k in range(n) if k % 4 == i) * len(pubs)
            nxt = [0] * len(pubs)
            own = 0
            for _ in range(n * len(pubs) + want_own):
                subject, sid, body = c.msg()
                p, k = map(int, body.split(b":"))
                if sid == "1":
                    own += 1
                    self.assertEqual(subject, "ord.%d" % i)
                    continue
                self.assertEqual(k, nxt[p], "publisher %d out of order" % p)
                nxt[p] += 1
            self.assertEqual(nxt, [n] * len(pubs))
            self.assertEqual(own, want_own)
            c.flush()  # nothing more than that
        for c in subs + pubs:
            c.close()

    def test_slow_consumer_is_cut(self):
        slow = socket.create_connection(("127.0.0.1", self.slow_port), timeout=h.IO_TIMEOUT)
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.sendall(b"CONNECT {\"verbose\":false}\r\nSUB big 1\r\nPING\r\n")
        pub = Client(self.slow_port)
        pub.flush()
        time.sleep(0.1)
        body = b"x" * 4096
        for _ in range(2000):  # 8 MiB at most; the cut comes far earlier
            pub.send(b"PUB big 4096\r\n" + body + b"\r\n")
        pub.flush()  # the publisher is unaffected
        got = b""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                b = slow.recv(1 << 20)
            except ConnectionResetError:
                break
            if not b:
                break
            got += b
        self.assertTrue(got.endswith(b"-ERR 'Slow Consumer'\r\n"), got[-80:])
        self.assertLess(len(got), 2000 * 4096)
        pub.flush()
        pub.close()
        slow.close()

    def test_auth(self):
        self.assertEqual(session(self.auth_port, [b"PING\r\n"]),
                         "INFO\r\n-ERR 'Authorization Violation'\r\n<EOF>")
        self.assertEqual(
            session(self.auth_port, [b"CONNECT {\"auth_token\":\"s3cret\",\"verbose\":false}\r\n"
                                     b"PING\r\n"]), "INFO\r\nPONG\r\n")

    def test_refuses_public_address_without_auth(self):
        path = h.write_temp(h.config("", '[[service]]\nname = "pubsub"\ntcp = "0.0.0.0:0"\n'))
        try:
            p = h.run_corewire(["-c", path, "--check-config"])
        finally:
            os.unlink(path)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("service[0].tcp: pubsub on 0.0.0.0:0: serves an address that is not "
                      "loopback without auth", p.stderr)

    # --- real clients ---

    def natsjs(self):
        node, npm = shutil.which("node") or shutil.which("nodejs"), shutil.which("npm")
        if not node or not npm:
            self.skipTest("node or npm not installed")
        prefix = os.path.join(BUILD, "npm")
        if not os.path.isfile(os.path.join(prefix, "node_modules", "nats", "package.json")):
            os.makedirs(prefix, exist_ok=True)
            r = subprocess.run([npm, "install", "--prefix", prefix, "--no-audit", "--no-fund",
                                "--no-save", "nats@2"], capture_output=True, text=True,
                               timeout=180)
            if r.returncode != 0:
                self.skipTest("npm install nats@2 failed: " + r.stderr[-300:])
        return node, os.path.join(prefix, "node_modules")

    def run_client(self, cmd, env=None):
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return r.stdout

    def test_natsjs(self):
        node, modules = self.natsjs()
        env = dict(os.environ, NODE_PATH=modules)
        script = os.path.join(HERE, "pubsub_natsjs.js")
        self.assertIn("ok main", self.run_client([node, script, str(self.port), "main"], env))
        self.assertIn("ok token:s3cret",
                      self.run_client([node, script, str(self.auth_port), "token:s3cret"], env))

    def test_cnats(self):
        exe = os.environ.get("CW_CNATS")
        if not exe:
            self.skipTest("libnats not found at build time ($CW_CNATS unset)")
        self.assertIn("ok main", self.run_client([exe, str(self.port), "main"]))
        self.assertIn("ok token:s3cret",
                      self.run_client([exe, str(self.auth_port), "token:s3cret"]))

    # --- differential ---

    DIFF = [
        [b"PING\r\n", b"ping\r\n", b"PING\n"],
        [b"CONNECT {\"verbose\":true}\r\nPING\r\nSUB x 1\r\nUNSUB 1\r\nPUB x 0\r\n\r\n"],
        [b"SUB foo.*.> 1\r\nPUB foo.a.b 2\r\nhi\r\n"],
        [b"SUB foo.>.a 1\r\n", b"SUB foo..a 1\r\n", b"SUB a* 1\r\nPUB a* 0\r\n\r\n"],
        [b"PUB foo\r\n"], [b"PUB foo -1\r\n"], [b"FOO\r\n"], [b"SUB 1\r\n"], [b"UNSUB\r\n"],
        [b"UNSUB 9 x\r\n"], [b"CONNECT {bad\r\n"], [b"CONNECT\r\n"], [b"MSG a 1 1\r\nx\r\n"],
        [b"CONNECT {\"pedantic\":true,\"verbose\":true}\r\nPUB a.* 0\r\n\r\nSUB a.. 1\r\n"],
        [b"PUB a 3\r\nabcd\r\n"], [b"PUB a 2000000\r\n"], [b"HPUB a 2 4\r\nab\r\n"],
        [b"CONNECT {\"headers\":true}\r\nSUB a 1\r\nHPUB a 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"],
        [b"CONNECT {\"headers\":true,\"no_responders\":true}\r\nSUB _INBOX.* 1\r\n"
         b"PUB req _INBOX.x 0\r\n\r\n"],
        [b"CONNECT {\"no_responders\":true}\r\n"],
        [b"SUB a 1\r\nSUB a 1\r\nUNSUB 1 2\r\nPUB a 1\r\nx\r\nPUB a 1\r\ny\r\nPUB a 1\r\nz\r\n"],
        [b"CONNECT {\"echo\":false}\r\nSUB a 1\r\nPUB a 1\r\nx\r\nPING\r\n"],
        [b"PUB a 1\r\nxy\r\n"], [b"PUB  a   1 \r\nx\r\n", b"PUB\ta\t1\r\nx\r\n"],
        [b"+OK\r\nPING\r\n"], [b"-ERR 'x'\r\nPING\r\n"], [b"INFO {}\r\nPING\r\n"],
        [b"SUB a " + b"x" * 5000 + b"\r\n"], [b"CONNECT {}   \r\nPING\r\n"],
        [b"CONNECT {\"verbose\":false}\r\nSUB a.* 1\r\nPUB a.* 0\r\n\r\nPUB a 0\r\n\r\n"],
        [b"PUB a 1\r\nx", b"\r\nPING\r\n"],
    ]

    def test_differential_against_nats_server(self):
        ns = shutil.which("nats-server")
        if not ns:
            self.skipTest("nats-server not installed")
        port = h.free_port()
        p = subprocess.Popen([ns, "-a", "127.0.0.1", "-p", str(port)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    self.assertLess(time.monotonic(), deadline, "nats-server did not start")
                    time.sleep(0.05)
            for steps in self.DIFF:
                theirs = session(port, steps)
                ours = session(self.port, steps)
                self.assertEqual(ours, theirs, steps)
        finally:
            p.terminate()
            p.wait(timeout=10)


CTL = os.environ.get("COREWIRECTL")


@unittest.skipUnless(CTL, "$COREWIRECTL not set")
class PubsubCounters(unittest.TestCase):
    """The counters (nats-server's varz names) in `corewirectl stats` and /metrics."""

    def test_counters_reach_stats_and_metrics(self):
        d = tempfile.mkdtemp(prefix="cw-pubsub-")
        port, admin = h.free_port(), h.free_port()
        cfg = os.path.join(d, "corewire.toml")
        with open(cfg, "w") as f:
            f.write(h.config("workers = 2", f'[[service]]\nname = "pubsub"\ntcp = {port}\n') +
                    f'[control]\nrun_dir = "{d}/run"\nadmin = "127.0.0.1:{admin}"\n')
        log = open(os.path.join(d, "ctl.log"), "w")
        p = subprocess.Popen([CTL, "-c", cfg, "run", "--corewire", h.COREWIRE],
                             stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        try:
            end = time.monotonic() + 20
            while True:
                try:
                    sub = Client(port)
                    break
                except OSError:
                    self.assertLess(time.monotonic(), end, "pubsub did not come up")
                    time.sleep(0.05)
            sub.send(b"SUB m 1\r\n")
            sub.flush()
            pub = Client(port)
            for _ in range(100):
                pub.send(b"PUB m 3\r\nabc\r\n")
            pub.flush()
            for _ in range(100):
                sub.msg()
            want = {"corewire_service_in_msgs_total": 100, "corewire_service_out_msgs_total": 100,
                    "corewire_service_in_bytes_total": 300, "corewire_service_out_bytes_total": 300,
                    "corewire_service_subscriptions": 1, "corewire_service_connections": 2,
                    "corewire_service_slow_consumers_total": 0}
            end, got = time.monotonic() + 10, {}
            while time.monotonic() < end and got != want:
                with urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=2) as r:
                    text = r.read().decode()
                got = {n: sum(float(v) for v in re.findall(
                    r'(?m)^%s\{[^}]*service="pubsub"[^}]*\} (\S+)$' % n, text)) for n in want}
                time.sleep(0.2)
            self.assertEqual(got, want)
            # The same totals under nats-server's monitoring names (/varz, /subsz).
            with urllib.request.urlopen(f"http://127.0.0.1:{admin}/varz", timeout=2) as r:
                varz = json.load(r)
            self.assertEqual({k: varz[k] for k in ("in_msgs", "out_msgs", "in_bytes",
                                                   "out_bytes", "subscriptions", "connections",
                                                   "total_connections", "slow_consumers")},
                             {"in_msgs": 100, "out_msgs": 100, "in_bytes": 300,
                              "out_bytes": 300, "subscriptions": 1, "connections": 2,
                              "total_connections": 2, "slow_consumers": 0})
            self.assertEqual((varz["server_name"], varz["workers"]), ("corewire", 2))
            self.assertGreater(varz["mem"], 0)
            self.assertRegex(varz["now"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")
            with urllib.request.urlopen(f"http://127.0.0.1:{admin}/subsz", timeout=2) as r:
                self.assertEqual(json.load(r), {"num_subscriptions": 1})
            st = subprocess.run([CTL, "-c", cfg, "stats"], capture_output=True, text=True,
                                timeout=10)
            self.assertEqual(st.returncode, 0, st.stderr)
            for name in ("in_msgs", "out_msgs", "slow_consumers", "subscriptions"):
                self.assertIn(name, st.stdout)
            sub.close()
            pub.close()
        finally:
            subprocess.run([CTL, "-c", cfg, "shutdown"], capture_output=True, timeout=10)
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            log.close()
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)

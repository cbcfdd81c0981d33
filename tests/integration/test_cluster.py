"""Cluster membership through a real etcd (docs/cluster.md#membership-through-etcd).

The test starts etcd itself (Debian's etcd-server: one member on loopback ports, data in a
temporary directory) and corewire nodes whose peer service registers in it:

- Three nodes (one of two workers) join: each sees three members and has sessions up with
  the other two (its probe's echoes come back on both). `kill -9` one: the others drop it
  (membership and its sessions, dialed and accepted) within the lease TTL plus a read;
  restarted, it rejoins under a new lease and every session comes back.
- A node whose etcd does not answer starts and serves, says so (log, etcd_up = 0,
  etcd_errors), and registers once etcd is there. While etcd is gone the nodes keep their
  view and sessions past the lease TTL; etcd back, they are members still.
- A node with a certificate from another CA registers (etcd does not check certificates)
  but is refused by the cluster's node, both ways; a malformed member entry is counted,
  not fatal.
- Bad etcd keys stop corewire at start with an error naming the key.
Every process is stopped at the end (etcd with its data directory removed); waits are
bounded. Skips without etcd or certtool.
"""

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

import harness as h
from test_peer import CERTTOOL, Node, make_cas, make_node

ETCD = shutil.which("etcd") or ("/usr/bin/etcd" if os.access("/usr/bin/etcd", os.X_OK) else None)
TTL_S = 3        # lease_ttl of the nodes
POLL = "200ms"   # etcd_poll of the nodes
WAIT_S = 20.0


class Etcd:
    """One etcd member on loopback; stop() kills it and, unless keep, removes its data."""

    def __init__(self, client_port=None, data_dir=None, peer_port=None):
        self.client = client_port or h.free_port()
        self.peer = peer_port or h.free_port()
        self.dir = data_dir or tempfile.mkdtemp(prefix="cw-etcd-cluster-")
        self.url = f"http://127.0.0.1:{self.client}"
        peer_url = f"http://127.0.0.1:{self.peer}"
        self.log_path = os.path.join(self.dir, "etcd.log")
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [ETCD, "--name", "cw-test", "--data-dir", os.path.join(self.dir, "data"),
             "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
             "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
             "--initial-cluster", f"cw-test={peer_url}", "--logger", "zap",
             "--log-outputs", "stderr"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=1) as r:
                    if json.load(r).get("health") == "true":
                        return
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        self.stop()
        raise AssertionError("etcd did not start:\n" + open(self.log_path).read()[-3000:])

    def post(self, path, body):
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.load(r)

    def put(self, key, value):
        b64 = lambda s: base64.b64encode(s.encode()).decode()  # noqa: E731
        return self.post("/v3/kv/put", {"key": b64(key), "value": b64(value)})

    def stop(self, keep=False):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)


def etcd_keys(etcd_url, node_id, prefix, extra=""):
    return (f'etcd = ["{etcd_url}"]\nnode_id = "{node_id}"\nprefix = "{prefix}"\n'
            f'lease_ttl = "{TTL_S}s"\netcd_poll = "{POLL}"\n{extra}')


@unittest.skipUnless(ETCD and CERTTOOL, "etcd (etcd-server) or certtool (gnutls-bin) missing")
class ClusterTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp, cls.ca, cls.rogue_ca = make_cas("cw-cluster-certs-")
        cls.certs = {n: make_node(cls.tmp, n, cls.ca) for n in ("node-a", "node-b", "node-c")}
        cls.rogue = make_node(cls.tmp, "node-r", cls.rogue_ca)
        cls.etcd = Etcd()

    @classmethod
    def tearDownClass(cls):
        cls.etcd.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.nodes = []
        self.extra_etcd = []
        # Each test its own prefix: members of one never meet another's.
        self.prefix = f"/cw-test/{self.id().rsplit('.', 1)[-1]}/{os.getpid()}/"

    def tearDown(self):
        for n in self.nodes:
            n.stop()
        for e in reversed(self.extra_etcd):  # a restarted etcd shares its first's data
            e.stop()

    def node(self, name, port, etcd_url=None, cert=None, **kw):
        cert = cert or self.certs[name]
        n = Node(port, *cert, self.ca[1],
                 extra=etcd_keys(etcd_url or self.etcd.url, name, self.prefix), **kw)
        n.name = name
        self.nodes.append(n)
        return n

    def wait_all(self, nodes, pred, what, timeout=WAIT_S):
        return [n.wait(pred, f"{n.name}: {what}", timeout) for n in nodes]

    def test_join_kill_and_rejoin(self):
        ports = {n: h.free_port(socket.SOCK_DGRAM) for n in ("node-a", "node-b", "node-c")}
        a = self.node("node-a", ports["node-a"], probe=50)
        b = self.node("node-b", ports["node-b"], probe=50, workers=2)
        c = self.node("node-c", ports["node-c"], probe=50)
        joined = lambda x: (x["members"] == 3 and x["members_up"] == 2  # noqa: E731
                            and x["probe_done"] >= 2 and x["sessions_open"] == 4)
        for x in self.wait_all([a, b, c], joined, "three members, sessions with both others"):
            self.assertEqual(x["etcd_up"], 1)
            self.assertEqual(x["lease_grants"], 1)
            self.assertEqual(x["member_dials"], 2)
            self.assertEqual(x["probe_bad"], 0)
            self.assertEqual(x["peer_refused"], 0)
            self.assertEqual(x["etcd_bad_replies"] + x["etcd_bad_members"], 0)

        # kill -9: no revoke; the others drop C when etcd expires its lease.
        c.server.stop(signal.SIGKILL)
        c.stop()  # its run directory
        self.nodes.remove(c)
        t0 = time.monotonic()
        dropped = lambda x: (x["members"] == 2 and x["members_up"] == 1  # noqa: E731
                             and x["sessions_open"] == 2)
        for x in self.wait_all([a, b], dropped, "node-c dropped", timeout=TTL_S + 10):
            self.assertGreaterEqual(x["member_leaves"], 1)
            self.assertEqual(x["member_drops"], 1)
        took = time.monotonic() - t0
        print(f"kill -9 to dropped on both: {took:.1f}s (lease TTL {TTL_S}s, poll {POLL})",
              file=sys.stderr)
        # The lease TTL, etcd's expiry sweep (500 ms), a read and a counter refresh.
        self.assertLess(took, TTL_S + 2.5)

        # Restarted on the same port: a new lease, so a new member; every session returns.
        c = self.node("node-c", ports["node-c"], probe=50)
        for x in self.wait_all([a, b, c], joined, "node-c rejoined"):
            self.assertEqual(x["etcd_up"], 1)
        self.assertEqual(a.counters()["member_dials"], 3)

        # A clean stop revokes the lease: the others drop C at their next read.
        c.stop()
        self.nodes.remove(c)
        t0 = time.monotonic()
        self.wait_all([a, b], dropped, "node-c gone after its stop", timeout=TTL_S + 10)
        print(f"clean stop to dropped: {time.monotonic() - t0:.1f}s", file=sys.stderr)
        self.assertIn("left the cluster (lease revoked)", c.server.log())

    def test_etcd_unreachable_at_start_and_gone_for_a_while(self):
        port = h.free_port()  # nothing listens there yet
        url = f"http://127.0.0.1:{port}"
        pa, pb = h.free_port(socket.SOCK_DGRAM), h.free_port(socket.SOCK_DGRAM)
        a = self.node("node-a", pa, etcd_url=url)
        x = a.wait(lambda x: x["etcd_errors"] >= 2, "etcd errors counted")
        self.assertEqual(x["etcd_up"], 0)
        self.assertEqual(x["members"], 0)
        self.assertTrue(a.server.alive())
        self.assertIn("etcd does not answer", a.server.log())

        # etcd comes up on that port: A registers and sees itself.
        e = Etcd(client_port=port)
        self.extra_etcd.append(e)
        a.wait(lambda x: x["etcd_up"] == 1 and x["members"] == 1, "A registered")
        b = self.node("node-b", pb, etcd_url=url)
        together = lambda x: x["members"] == 2 and x["members_up"] == 1  # noqa: E731
        self.wait_all([a, b], together, "A and B see each other")

        # etcd gone for longer than the lease TTL: both keep the last view and sessions.
        e.stop(keep=True)
        self.wait_all([a, b], lambda x: x["etcd_up"] == 0, "etcd seen gone")
        time.sleep(TTL_S + 1)
        for n in (a, b):
            x = n.counters()
            self.assertEqual((x["members"], x["members_up"], x["sessions_open"]), (2, 1, 2),
                             f"{n.name} after etcd left: {x}")
            self.assertEqual(x["member_leaves"], 0)
        self.assertIn("keeping the last view of 2 member(s)", a.server.log())

        # etcd back with its data: both are members again (the lease kept or granted anew).
        e2 = Etcd(client_port=port, data_dir=e.dir, peer_port=e.peer)
        self.extra_etcd.append(e2)
        self.wait_all([a, b], lambda x: x["etcd_up"] == 1, "etcd seen back")
        time.sleep(1)  # a few reads and keep-alives
        for n in (a, b):
            x = n.counters()
            self.assertEqual((x["members"], x["members_up"]), (2, 1), f"{n.name}: {x}")
        self.assertIn("etcd answers again", a.server.log())

    def test_certificate_from_another_ca_is_refused_and_bad_entries_counted(self):
        pa, pr = h.free_port(socket.SOCK_DGRAM), h.free_port(socket.SOCK_DGRAM)
        a = self.node("node-a", pa)
        # R trusts the cluster's CA but holds the rogue CA's certificate; etcd lists it.
        r = self.node("node-r", pr, cert=self.rogue)
        xa, xr = self.wait_all([a, r], lambda x: x["members"] == 2 and x["member_dials"] == 1,
                               "both registered, each dialing the other")
        xa = a.wait(lambda x: x["peer_refused"] >= 2, "A refusing R both ways")
        self.assertEqual(xa["members_up"], 0)
        self.assertEqual(xa["sessions_up"], 0)
        self.assertEqual(xa["peer_mismatch"], 0)  # refused for its CA, before any pin
        self.assertEqual(r.counters()["members_up"], 0)

        # Garbage under the prefix: counted, skipped; the view stays.
        self.etcd.put(self.prefix + "node-z", "not a member")
        self.etcd.put(self.prefix + "bad id!", "{}")
        x = a.wait(lambda x: x["etcd_bad_members"] == 2, "bad entries counted")
        self.assertEqual(x["members"], 2)
        self.assertTrue(a.server.alive())

    def test_bad_etcd_keys_stop_start_up(self):
        cert, key = self.certs["node-a"]
        base = (f'[[service]]\nname = "peer"\nudp = "{{udp}}"\ncert = "{cert}"\nkey = "{key}"\n'
                f'ca = "{self.ca[1]}"\n')
        cases = [
            ('etcd = ["https://127.0.0.1:2379"]\nnode_id = "a"\n', "127.0.0.1:0",
             "https is not supported"),
            ('etcd = ["127.0.0.1:2379"]\nnode_id = "a"\n', "127.0.0.1:0", "http://host[:port]"),
            ('etcd = ["http://127.0.0.1:2379"]\n', "127.0.0.1:0", "node_id"),
            ('etcd = ["http://127.0.0.1:2379"]\nnode_id = "a b"\n', "127.0.0.1:0", "node_id"),
            ('node_id = "a"\n', "127.0.0.1:0", "needs etcd"),
            ('etcd = ["http://127.0.0.1:2379"]\nnode_id = "a"\nlease_ttl = "100ms"\n',
             "127.0.0.1:0", "lease_ttl"),
            ('etcd = ["http://127.0.0.1:2379"]\nnode_id = "a"\n', "0.0.0.0:0",
             "set advertise"),
        ]
        for keys, udp, want in cases:
            path = h.write_temp(base.format(udp=udp) + keys)
            try:
                r = h.run_corewire(["-c", path, "--check-config"])
            finally:
                os.unlink(path)
            self.assertEqual(r.returncode, 2, f"{keys}: {r.stdout}{r.stderr}")
            self.assertIn(want, r.stderr, keys)
        # With an advertise address, 0.0.0.0 is fine.
        path = h.write_temp(base.format(udp="0.0.0.0:0") +
                            'etcd = ["http://127.0.0.1:2379"]\nnode_id = "a"\n'
                            'advertise = "127.0.0.1:7400"\n')
        try:
            r = h.run_corewire(["-c", path, "--check-config"])
        finally:
            os.unlink(path)
        self.assertEqual(r.returncode, 0, r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)

"""Key-value across nodes (docs/cluster.md#key-value-across-nodes): three corewire nodes on
loopback, each a kv (`cluster = true`) and a peer service with the other two as static peers
and certificates from `corewirectl cluster init-ca` / `issue-cert`.

- pymemcache sets keys through node A and reads them through B and C: every key is found,
  whichever node owns it; incr, delete and a multi-get spanning nodes work too; every node
  owns some keys (cluster_forwarded on A, cluster_served on B and C).
- kill -9 of C: once A and B see C's sessions down, they keep serving: C's keys miss (cache
  semantics, no error; the same through A and B, as many as C's store held), the others'
  keys are still found, and sets and gets of C's old keys work through their new owners.
- A malformed request from a peer is answered SERVER_ERROR and counted, never a crash: not
  reachable from a memcached client (the peer protocol takes only what kv forwards), so the
  unit test of the API covers malformed frames (tests/services/peer/api_test.cc).
Runs with Debian's python (python3-pymemcache); skips without it. Every wait is bounded;
every process is stopped.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import test_peer  # noqa: E402

try:
    from pymemcache.client.base import Client
except ImportError:
    Client = None

CTL = os.environ.get("COREWIRECTL", "build/control/corewirectl")
KEYS = 300


class Node(test_peer.Node):
    """test_peer's node (a peer table, counters through corewirectl), with a kv table
    (cluster = true) and a memcached client for it; fast failure detection."""

    def __init__(self, name, d, udp, peers):
        self.name = name
        super().__init__(udp, f"{d}/{name}/{name}.pem", f"{d}/{name}/{name}.key",
                         f"{d}/ca/ca.pem", peers=peers,
                         extra='idle_timeout = "1s"\nkeepalive = "200ms"\n'
                               'request_timeout = "500ms"\n'
                               '[[service]]\nname = "kv"\ntcp = "127.0.0.1:0"\ncluster = true\n')
        host, port = self.server.ep("kv", "tcp")
        self.client = Client((host, port), connect_timeout=5, timeout=5)

    def kv(self):
        return h.service_counters(CTL, self.server.cfg.name, "kv")

    def stop(self, sig=signal.SIGTERM):
        self.client.close()
        self.server.stop(sig)
        shutil.rmtree(self.dir, ignore_errors=True)


@unittest.skipUnless(Client, "pymemcache (python3-pymemcache) is not installed")
class ClusterKvTest(unittest.TestCase):
    def test_three_nodes_share_the_keys_and_survive_a_kill(self):
        d = tempfile.mkdtemp(prefix="cw-clkv-ca-")
        nodes = {}
        try:
            def ctl(*a):
                r = subprocess.run([CTL, "cluster", *a], capture_output=True, text=True,
                                   timeout=30)
                self.assertEqual(r.returncode, 0, r.stderr)

            ctl("init-ca", f"{d}/ca")
            for n in "abc":
                ctl("issue-cert", "--ca", f"{d}/ca", "--name", n, "--out", f"{d}/{n}")
            ports = {n: h.free_port(socket.SOCK_DGRAM) for n in "abc"}
            for n in "abc":
                nodes[n] = Node(n, d, ports[n], [ports[m] for m in "abc" if m != n])
            a, b, c = nodes["a"], nodes["b"], nodes["c"]
            for n in nodes.values():  # two dialed, two accepted
                n.wait(lambda x: x["sessions_open"] == 4, "every session up")

            # Set through A, read through B and C: every key found.
            values = {f"key-{i}": f"value-{i}-".encode() * (1 + i % 7) for i in range(KEYS)}
            for k, v in values.items():
                self.assertTrue(a.client.set(k, v, noreply=False), k)
            for n in (b, c):
                for k, v in values.items():
                    self.assertEqual(n.client.get(k), v, f"{k} through {n.name}")
            # A multi-get across the owners, in key order, through B.
            some = list(values)[:40]
            self.assertEqual(b.client.get_many(some), {k: values[k] for k in some})
            # incr and delete through C reach the owner.
            self.assertTrue(a.client.set("counter", b"10", noreply=False))
            self.assertEqual(c.client.incr("counter", 5, noreply=False), 15)
            self.assertEqual(b.client.get("counter"), b"15")
            self.assertTrue(c.client.delete("key-0", noreply=False))
            self.assertIsNone(a.client.get("key-0"))
            del values["key-0"]
            fwd = a.kv()["cluster_forwarded"]
            self.assertGreater(fwd, 0)
            served = {n.name: n.kv()["cluster_served"] for n in (b, c)}
            self.assertGreater(served["b"], 0, served)
            self.assertGreater(served["c"], 0, served)
            # What C's store holds: its own keys (the counters are mirrored every second).
            time.sleep(1.5)
            c_items = c.kv()["curr_items"]
            self.assertGreater(c_items, KEYS // 10)
            self.assertLess(c_items, KEYS * 2 // 3)

            # kill -9 C: A and B see its sessions end, and keep serving: C's keys miss, the
            # same ones through A and B, as many as C held; every other key is found.
            c.stop(signal.SIGKILL)
            del nodes["c"]
            for n in (a, b):
                n.wait(lambda x: x["sessions_open"] == 2, "C's sessions down")
            missed = {}
            for n in (a, b):
                missed[n.name] = set()
                for k, v in values.items():
                    got = n.client.get(k)
                    if got is None:
                        missed[n.name].add(k)
                    else:
                        self.assertEqual(got, v, f"{k} through {n.name} after the kill")
            on_c = missed["a"]
            self.assertEqual(missed["b"], on_c)
            counter_on_c = a.client.get("counter") is None
            self.assertEqual(len(on_c) + counter_on_c, c_items)
            # C's keys have new owners: sets and gets work through either node.
            for k in on_c:
                self.assertTrue(b.client.set(k, b"again", noreply=False))
            for k in on_c:
                self.assertEqual(a.client.get(k), b"again")
            for n in (a, b):
                kv = n.kv()
                self.assertEqual(kv["cluster_bad"], 0)
                self.assertEqual(kv["cluster_too_large"], 0)
        finally:
            for n in nodes.values():
                n.stop()
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)

"""The peer service end to end (docs/cluster.md): QUIC sessions with mutual TLS 1.3 between
corewire processes on loopback.

- Nodes A (the default backend: io_uring where available) and B (epoll), certificates from
  one CA, dial each other: both sessions come up and each node's probe gets N echo
  responses back whole and in order.
- Node C holds a certificate from another CA: with the cluster's CA as its trust anchor it
  accepts A's certificate and presents its own, which A refuses (counted peer_refused on A,
  handshake_failed on C, no session); with only its own CA it refuses A's certificate itself.
- Three nodes of two workers each dial each other: six sessions, every probe in order.
- Garbage datagrams on A's peer port are counted drops; A keeps serving.
- Certificates from `corewirectl cluster init-ca` / `issue-cert` carry a session too.
CA and certificates come from certtool (gnutls-bin) in a temporary directory; those tests skip
without it. Every wait is bounded; every process is stopped.
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

import harness as h

CTL = os.environ.get("COREWIRECTL", "build/control/corewirectl")
CERTTOOL = shutil.which("certtool")
PROBE_N = 2000
DGRAM_N = 300
WAIT_S = 20.0


def certtool(*args):
    subprocess.run([CERTTOOL, *args], check=True, capture_output=True, timeout=30)


def make_ca(d, name):
    key, pem, tmpl = (os.path.join(d, f"{name}.{x}") for x in ("key", "pem", "tmpl"))
    with open(tmpl, "w") as f:
        f.write(f'cn = "{name}"\nca\ncert_signing_key\nexpiration_days = 2\n')
    certtool("--generate-privkey", "--key-type=ecdsa", "--outfile", key)
    certtool("--generate-self-signed", "--load-privkey", key, "--template", tmpl,
             "--outfile", pem)
    return key, pem


def make_node(d, name, ca):
    key, pem, tmpl = (os.path.join(d, f"{name}.{x}") for x in ("key", "pem", "tmpl"))
    with open(tmpl, "w") as f:
        f.write(f'cn = "{name}"\ntls_www_server\ntls_www_client\nsigning_key\n'
                'expiration_days = 2\n')
    certtool("--generate-privkey", "--key-type=ecdsa", "--outfile", key)
    certtool("--generate-certificate", "--load-privkey", key, "--load-ca-certificate", ca[1],
             "--load-ca-privkey", ca[0], "--template", tmpl, "--outfile", pem)
    return pem, key


def make_cas(prefix):
    """A temporary directory holding the cluster's CA and a rogue CA: (dir, ca, rogue_ca)."""
    d = tempfile.mkdtemp(prefix=prefix)
    return d, make_ca(d, "cluster-ca"), make_ca(d, "rogue-ca")


class Node:
    """One corewire process with one peer table; stats through corewirectl."""

    def __init__(self, port, cert, key, ca, peers=(), backend=None, probe=0, workers=1,
                 datagrams=0, extra=""):
        self.dir = tempfile.mkdtemp(prefix="cw-peer-")
        backend = backend or os.environ.get("CW_TEST_BACKEND", "auto")
        peer_list = ", ".join(f'"127.0.0.1:{p}"' for p in peers)
        cfg = (f'[runtime]\nbackend = "{backend}"\nworkers = {workers}\n'
               f'[log]\nlevel = "info"\n'
               f'[control]\nrun_dir = "{self.dir}"\n'
               f'[[service]]\nname = "peer"\nudp = "127.0.0.1:{port}"\n'
               f'cert = "{cert}"\nkey = "{key}"\nca = "{ca}"\npeers = [{peer_list}]\n'
               f'probe_requests = {probe}\nprobe_bytes = 100\nretry = "200ms"\n'
               f'probe_datagrams = {datagrams}\n'
               f'handshake_timeout = "3s"\n{extra}')
        self.port = port
        self.server = h.Server(cfg)

    def counters(self):
        return h.service_counters(CTL, self.server.cfg.name, "peer")

    def wait(self, pred, what, timeout=WAIT_S):
        deadline = time.monotonic() + timeout
        c = {}
        while time.monotonic() < deadline:
            c = self.counters()
            if pred(c):
                return c
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}: {c}\n{self.server.log()}")

    def stop(self):
        self.server.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class CtlCertsTest(unittest.TestCase):
    """corewirectl cluster init-ca / issue-cert make what two nodes need (no certtool)."""

    def test_sessions_with_corewirectl_certificates(self):
        d = tempfile.mkdtemp(prefix="cw-peer-ctl-")
        nodes = []
        try:
            def ctl(*a):
                return subprocess.run([CTL, "cluster", *a], capture_output=True, text=True,
                                      timeout=30)

            self.assertEqual(ctl("init-ca", f"{d}/ca").returncode, 0)
            for n in ("x", "y"):
                r = ctl("issue-cert", "--ca", f"{d}/ca", "--name", f"node-{n}", "--out", f"{d}/{n}")
                self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(os.stat(f"{d}/x/node-x.key").st_mode & 0o777, 0o600)
            # Refuses to overwrite a CA, and a name that is no file or DNS name.
            self.assertNotEqual(ctl("init-ca", f"{d}/ca").returncode, 0)
            r = ctl("issue-cert", "--ca", f"{d}/ca", "--name", "../evil", "--out", d)
            self.assertNotEqual(r.returncode, 0)
            px, py = h.free_port(socket.SOCK_DGRAM), h.free_port(socket.SOCK_DGRAM)
            x = Node(px, f"{d}/x/node-x.pem", f"{d}/x/node-x.key", f"{d}/ca/ca.pem",
                     peers=[py], probe=100)
            nodes.append(x)
            y = Node(py, f"{d}/y/node-y.pem", f"{d}/y/node-y.key", f"{d}/ca/ca.pem")
            nodes.append(y)
            c = x.wait(lambda c: c["probe_done"] >= 1, "the probe")
            self.assertEqual(c["probe_ok"], 100)
            self.assertEqual(y.counters()["sessions_open"], 1)
        finally:
            for n in nodes:
                n.stop()
            shutil.rmtree(d, ignore_errors=True)


@unittest.skipUnless(CERTTOOL, "certtool (gnutls-bin) is not installed")
class PeerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp, cls.ca, cls.rogue_ca = make_cas("cw-peer-certs-")
        cls.a = make_node(cls.tmp, "node-a", cls.ca)
        cls.b = make_node(cls.tmp, "node-b", cls.ca)
        cls.c = make_node(cls.tmp, "node-c", cls.rogue_ca)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.nodes = []

    def tearDown(self):
        for n in self.nodes:
            n.stop()

    def node(self, *args, **kw):
        n = Node(*args, **kw)
        self.nodes.append(n)
        return n

    def test_mutual_tls_sessions_and_ordered_echo(self):
        pa, pb = h.free_port(socket.SOCK_DGRAM), h.free_port(socket.SOCK_DGRAM)
        a = self.node(pa, *self.a, self.ca[1], peers=[pb], probe=PROBE_N, datagrams=DGRAM_N)
        b = self.node(pb, *self.b, self.ca[1], peers=[pa], backend="epoll", probe=PROBE_N,
                      datagrams=DGRAM_N)
        for n in (a, b):
            c = n.wait(lambda c: c["probe_done"] >= 1 and c["dgram_probe_sent"] >= DGRAM_N,
                       "the probes")
            # RFC 9221 datagrams are best effort; on loopback nearly all come back.
            c = n.wait(lambda c: c["dgram_probe_back"] >= DGRAM_N * 9 // 10, "datagram echoes",
                       timeout=5)
            self.assertLessEqual(c["dgram_probe_back"], DGRAM_N)
            self.assertEqual(c["bad_datagrams"], 0)
            self.assertEqual(c["probe_ok"], PROBE_N)
            self.assertEqual(c["probe_bad"], 0)
            self.assertEqual(c["handshake_failed"], 0)
            self.assertEqual(c["peer_refused"], 0)
            # Its own dialed session and the one the other node dialed.
            self.assertEqual(c["sessions_open"], 2)
            self.assertGreaterEqual(c["echoed"], PROBE_N)
            print(f"node :{n.port}: {PROBE_N} requests in order in {c['probe_us']} us",
                  file=sys.stderr)

        # Garbage on A's peer port: counted drops, nothing else moves, A keeps serving.
        before = a.counters()
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            for i in range(200):
                junk = bytes((i * 37 + k) & 0xFF for k in range(1 + i * 7 % 1400))
                s.sendto(junk, ("127.0.0.1", pa))
            s.sendto(b"\xc0" + b"\x00" * 1199, ("127.0.0.1", pa))  # long header, version 0
        finally:
            s.close()
        drops = ("drop_garbage", "drop_unknown", "drop_version", "drop_wrong_worker")
        c = a.wait(lambda c: sum(c[k] - before[k] for k in drops) >= 195, "garbage drops")
        self.assertEqual(c["sessions_open"], 2)
        self.assertEqual(c["handshake_failed"], 0)
        self.assertTrue(a.server.alive())

    def test_rtt_and_bulk_probes(self):
        # probe_rtt: one request outstanding, each round trip in the histogram after the
        # warm-up tenth; probe_bulk: sink frames (the last one shorter) the other node consumes
        # and times, answering none of them.
        n, bulk = 1000, 1 << 20
        pa, pb = h.free_port(socket.SOCK_DGRAM), h.free_port(socket.SOCK_DGRAM)
        b = self.node(pb, *self.b, self.ca[1])
        a = self.node(pa, *self.a, self.ca[1], peers=[pb], probe=n,
                      extra=f"probe_rtt = true\nprobe_bulk = {bulk}\n")
        ca = a.wait(lambda c: c["probe_done"] >= 1 and c["bulk_sent_bytes"] >= bulk, "the probes")
        cb = b.wait(lambda c: c["sink_bytes"] >= bulk, "the sink")
        self.assertEqual(ca["probe_ok"], n)
        self.assertEqual(ca["probe_bad"], 0)
        self.assertEqual(ca["probe_rtt_samples"], n - n // 10)
        self.assertGreater(ca["probe_rtt_p50_ns"], 0)
        self.assertLessEqual(ca["probe_rtt_p50_ns"], ca["probe_rtt_p99_ns"])
        # One at a time: the round trips cannot add up to more than the whole probe took.
        self.assertLessEqual(ca["probe_rtt_p50_ns"] * ca["probe_rtt_samples"] // 2 // 1000,
                             ca["probe_us"])
        self.assertEqual(ca["bulk_sent_bytes"], bulk)
        self.assertEqual(cb["sink_bytes"], bulk)
        self.assertEqual(cb["sink_frames"], -(-bulk // 100))  # probe_bytes = 100
        self.assertGreater(cb["sink_us"], 0)
        self.assertEqual(cb["echoed"], n)
        for c in (ca, cb):
            self.assertEqual(c["unknown_channel"], 0)
            self.assertEqual(c["unexpected_frames"], 0)
            self.assertEqual(c["bad_frames"], 0)
        self.assertEqual(ca["sink_bytes"], 0)

    def test_three_nodes_two_workers_full_mesh(self):
        # Each node dials the other two, one from each of its workers; the sessions others
        # open land on whichever worker the kernel hashes them to and stay there.
        certs = [self.a, self.b, make_node(self.tmp, "node-d", self.ca)]
        ports = [h.free_port(socket.SOCK_DGRAM) for _ in certs]
        nodes = [self.node(ports[i], *certs[i], self.ca[1], workers=2, probe=500,
                           peers=[p for p in ports if p != ports[i]]) for i in range(3)]
        for n in nodes:
            c = n.wait(lambda c: c["probe_done"] >= 2, "both probes")
            self.assertEqual(c["probe_ok"], 1000)
            self.assertEqual(c["probe_bad"], 0)
            self.assertEqual(c["sessions_open"], 4)
            self.assertEqual(c["drop_wrong_worker"], 0)

    def test_certificate_from_another_ca_is_refused(self):
        pa, pc = h.free_port(socket.SOCK_DGRAM), h.free_port(socket.SOCK_DGRAM)
        a = self.node(pa, *self.a, self.ca[1])
        # C trusts the cluster's CA but its own certificate is the rogue CA's: A refuses it.
        c = self.node(pc, *self.c, self.ca[1], peers=[pa], probe=10)
        ca = a.wait(lambda x: x["peer_refused"] >= 1, "A refusing C")
        self.assertEqual(ca["sessions_up"], 0)
        self.assertEqual(ca["sessions_open"], 0)
        cc = c.wait(lambda x: x["handshake_failed"] >= 1, "C's handshake failing")
        self.assertEqual(cc["sessions_up"], 0)
        self.assertEqual(cc["probe_ok"], 0)
        c.stop()
        self.nodes.remove(c)
        # C trusting only its own CA refuses A's certificate itself.
        c2 = self.node(pc, *self.c, self.rogue_ca[1], peers=[pa], probe=10)
        cc = c2.wait(lambda x: x["peer_refused"] >= 1, "C refusing A")
        self.assertEqual(cc["sessions_up"], 0)
        self.assertEqual(a.counters()["sessions_up"], 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)

"""The pubsub service (NATS) on the DPDK backend, end to end without a NIC (issue 20: "a NATS
client reaches the service on DPDK"): tools/dpdk-setup.sh creates a namespace with a
persistent TAP; corewire runs inside it on the net_tap PMD, one worker (TCP is served by
worker 0, docs/dpdk.md "TCP on the datapath"), and NATS clients in the namespace reach
pubsub over the DPDK stack's TCP: a raw NATS session from the kernel's TCP (this file run as
`client`: INFO, CONNECT, SUB with a wildcard, PUB from a second connection, MSG, PING/PONG,
and a 200 KB payload that spans many segments), then Debian's libnats (pubsub_cnats, built
when libnats is found: $CW_CNATS) with its pub/sub, queue group, request/reply and headers
checks. Needs root, iproute2, a DPDK build. Skipped (exit 77) otherwise."""

import os
import socket
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
NS = f"cw-ps-{os.getpid()}"
TAP = f"cwps{os.getpid() % 100000}"
OUR, PEER, PEER_MAC = "10.97.0.2", "10.97.0.1", "02:00:00:00:97:01"


# --- the client, run inside the namespace: `test_dpdk_pubsub.py client ADDR PORT` ---

class Session:
    """One NATS connection: reads whole lines and payloads, every wait bounded."""

    def __init__(self, host, port):
        self.s = socket.create_connection((host, port), timeout=10)
        self.buf = b""

    def line(self):
        while b"\r\n" not in self.buf:
            d = self.s.recv(65536)
            assert d, "connection closed"
            self.buf += d
        ln, self.buf = self.buf.split(b"\r\n", 1)
        return ln

    def payload(self, n):
        while len(self.buf) < n + 2:
            d = self.s.recv(65536)
            assert d, "connection closed in a payload"
            self.buf += d
        p, self.buf = self.buf[:n], self.buf[n + 2:]
        return p

    def send(self, data):
        self.s.sendall(data)

    def pong(self):
        self.send(b"PING\r\n")
        ln = self.line()
        assert ln == b"PONG", ln


def client(host, port):
    port = int(port)
    sub, pub = Session(host, port), Session(host, port)
    for c in (sub, pub):
        info = c.line()
        assert info.startswith(b"INFO {"), info
        c.send(b'CONNECT {"verbose":false,"pedantic":false}\r\n')
        c.pong()
    sub.send(b"SUB dpdk.* 7\r\n")
    sub.pong()  # the subscription is in place before anything is published
    big = bytes((i * 13) % 251 for i in range(200_000))
    for subject, data in ((b"dpdk.a", b"hello"), (b"dpdk.b", big)):
        pub.send(b"PUB %s %d\r\n%s\r\n" % (subject, len(data), data))
        ln = sub.line()
        assert ln == b"MSG %s 7 %d" % (subject, len(data)), ln
        got = sub.payload(len(data))
        assert got == data, (subject, len(got))
    pub.send(b"PUB other 1\r\nx\r\n")
    sub.pong()  # no MSG for a subject not subscribed: the next line is the PONG
    print("client: ok")


# --- the test ---

sys.path.insert(0, HERE)
import dpdk_env as env  # noqa: E402


class DpdkPubsubTest(unittest.TestCase):
    def test_nats_clients_over_tap(self):
        env.topology_up(self, NS, TAP, f"{PEER}/24", PEER_MAC)
        cfg = env.tap_config(TAP, OUR, """[[service]]
name = "pubsub"
tcp = 0
allow_anonymous = true  # not loopback: the test has no credentials
""", runtime="workers = 1\n")
        srv = env.start_server(self, cfg, prefix=("ip", "netns", "exec", NS))
        env.restore_peer_mac(NS, PEER_MAC)
        self.assertIn(("pubsub", "tcp"), srv.endpoints, srv.log()[-3000:])
        host, port = srv.ep("pubsub", "tcp")
        self.assertEqual(host, OUR)
        r = env.in_ns(NS, sys.executable, os.path.abspath(__file__), "client", OUR, str(port),
                      check=False, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr + srv.log()[-3000:])
        self.assertIn("client: ok", r.stdout)
        cnats = os.environ.get("CW_CNATS")
        if cnats:  # Debian's libnats: a real NATS client library
            r = env.in_ns(NS, cnats, f"{OUR}:{port}", "main", check=False, timeout=60)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr + srv.log()[-3000:])
            self.assertIn("ok main", r.stdout)
        self.assertEqual(srv.stop(), 0, srv.log())
        env.assert_tcp_clean(self, srv.log())


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "client":
        client(sys.argv[2], sys.argv[3])
    else:
        env.main(lambda: env.why_not(OUR), "DPDK pubsub integration test")

"""The kv service on the DPDK backend, end to end without a NIC: tools/dpdk-setup.sh creates a
namespace with a persistent TAP; corewire runs inside it on the net_tap PMD with kv's UDP
on (udp_public, the kernel side's address in udp_trusted) and is driven from the kernel side
by Debian's memcaslap --udp and by a client writing memcached's 8-byte UDP frame header
(this file run as `client`): sets and gets, a multi-get, meta commands, and values larger
than one datagram (the request IP-fragmented, the reply in many numbered datagrams) that
must arrive whole. Then the kernel's TCP client speaks memcached's text protocol to kv's TCP
port on the DPDK stack's TCP (worker 0, docs/dpdk.md "TCP on the datapath"): a set over
TCP read back over TCP, and version. Needs root, iproute2, a DPDK build;
memcaslap's part skips without it. Skipped (exit 77) otherwise."""

import os
import shutil
import socket
import struct
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
NS = f"cw-kv-{os.getpid()}"
TAP = f"cwkv{os.getpid() % 100000}"
OUR, PEER, PEER_MAC = "10.98.0.2", "10.98.0.1", "02:00:00:00:98:01"
MEMCASLAP = shutil.which("memcaslap")


# --- the client, run inside the namespace: `test_dpdk_kv.py client ADDR PORT` ---

def udp_request(s, addr, rid, payload, tries=5):
    """Sends one request datagram and returns the reply's payload, reassembled from its
    numbered datagrams (all carry the request id and the total); retried on loss."""
    for _ in range(tries):
        s.sendto(struct.pack(">HHHH", rid, 0, 1, 0) + payload, addr)
        parts, total = {}, None
        try:
            while total is None or len(parts) < total:
                d = s.recv(65535)
                r_id, seq, tot, zero = struct.unpack(">HHHH", d[:8])
                assert len(d) <= 1400, f"datagram of {len(d)} bytes"
                if r_id != rid:
                    continue  # a late reply to an earlier try
                assert zero == 0 and seq < tot and total in (None, tot), (seq, tot, total)
                total, parts[seq] = tot, d[8:]
        except socket.timeout:
            continue
        return b"".join(parts[i] for i in range(total)), total
    raise AssertionError(f"no whole reply to request {rid} in {tries} tries")


def client(host, port):
    addr = (host, int(port))
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1.0)
    rid = iter(range(1, 65536))

    def call(payload):
        return udp_request(s, addr, next(rid), payload)

    def expect(payload, want, datagrams=None):
        got, total = call(payload)
        assert got == want, f"{payload[:60]!r}: got {got[:200]!r}... ({len(got)} bytes)"
        assert datagrams is None or total == datagrams, (payload[:60], total, datagrams)

    expect(b"version\r\n", b"VERSION 1.6.18-corewire\r\n")
    expect(b"set small 5 0 3\r\nabc\r\n", b"STORED\r\n")
    expect(b"get small\r\n", b"VALUE small 5 3\r\nabc\r\nEND\r\n", 1)
    # Values past one datagram: 1392 reply bytes per datagram, every byte checked. A request
    # is one datagram, reassembled from at most 8 IP fragments (Debian's DPDK build,
    # docs/dpdk.md), so the 60000-byte value is sent in appends of 5000.
    for size in (1500, 5000, 60000):
        val = bytes((i * 7 + size) % 251 for i in range(size))
        expect(b"set big%d 0 0 5000\r\n%s\r\n" % (size, val[:min(size, 5000)]) if size > 5000
               else b"set big%d 0 0 %d\r\n%s\r\n" % (size, size, val), b"STORED\r\n")
        for off in range(5000, size, 5000):
            expect(b"append big%d 0 0 5000\r\n%s\r\n" % (size, val[off:off + 5000]),
                   b"STORED\r\n")
        want = b"VALUE big%d 0 %d\r\n%s\r\nEND\r\n" % (size, size, val)
        expect(b"get big%d\r\n" % size, want, -(-len(want) // 1392))
    val = bytes(range(256)) * 8
    expect(b"get small big1500 nothing\r\n",
           b"VALUE small 5 3\r\nabc\r\nVALUE big1500 0 1500\r\n" +
           bytes((i * 7 + 1500) % 251 for i in range(1500)) + b"\r\nEND\r\n")
    expect(b"ms meta 2048 T0 F9\r\n" + val + b"\r\nmg meta v f s k\r\nmn\r\n",
           b"HD\r\nVA 2048 f9 s2048 kmeta\r\n" + val + b"\r\nMN\r\n", 2)
    expect(b"incr nothing 1\r\ndelete small\r\nget small\r\n", b"NOT_FOUND\r\nDELETED\r\nEND\r\n")
    expect(b"stats\r\n", b"ERROR\r\n")  # stats is TCP only
    print("client: ok")


# --- the test ---

sys.path.insert(0, HERE)
import dpdk_env as env  # noqa: E402


def ns(*cmd, check=True, timeout=30):
    return env.in_ns(NS, *cmd, check=check, timeout=timeout)


def why_not():
    return env.why_not(OUR)


class DpdkKvTest(unittest.TestCase):
    def setUp(self):
        env.topology_up(self, NS, TAP, f"{PEER}/24", PEER_MAC)

    def test_memcached_udp_over_tap(self):
        cfg = env.tap_config(TAP, OUR, f"""[[service]]
name = "kv"
tcp = 0
udp = 0
memory_limit = "64MiB"
udp_public = true
udp_trusted = ["{PEER}/32"]
""")
        srv = env.start_server(self, cfg, prefix=("ip", "netns", "exec", NS))
        env.restore_peer_mac(NS, PEER_MAC)
        host, port = srv.ep("kv", "udp")
        self.assertEqual(host, OUR)
        r = ns(sys.executable, os.path.abspath(__file__), "client", OUR, str(port), check=False,
               timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr + srv.log()[-3000:])
        self.assertIn("client: ok", r.stdout)
        if MEMCASLAP:
            # Debian's memcaslap over UDP: gets and sets for 2 s, no error, sets made.
            r = ns(MEMCASLAP, "-s", f"{OUR}:{port}", "--udp", "-t", "2s", "-T", "1", "-c", "4",
                   "-X", "100", check=False, timeout=60)
            out = r.stdout + r.stderr
            self.assertEqual(r.returncode, 0, out[-2000:])
            self.assertIn("Run time:", out, out[-2000:])
            bad = [ln for ln in out.splitlines() if "error" in ln.lower() or "fail" in ln.lower()]
            self.assertEqual(bad, [], out[-2000:])
        # TCP on the DPDK stack: memcached text commands from the kernel's TCP client.
        tport = srv.ep("kv", "tcp")[1]
        code = ("import socket,sys\n"
                f"s=socket.create_connection(('{OUR}',{tport}),timeout=5)\n"
                "def call(req, end):\n"
                "    s.sendall(req); d=b''\n"
                "    while not d.endswith(end):\n"
                "        c=s.recv(65536)\n"
                "        if not c: break\n"
                "        d+=c\n"
                "    return d\n"
                "assert call(b'set tcpkey 0 0 3\\r\\nxyz\\r\\n', b'\\r\\n') == b'STORED\\r\\n'\n"
                "g=call(b'get tcpkey\\r\\n', b'END\\r\\n')\n"
                "assert g == b'VALUE tcpkey 0 3\\r\\nxyz\\r\\nEND\\r\\n', g\n"
                "v=call(b'version\\r\\n', b'\\r\\n')\n"
                "assert v == b'VERSION 1.6.18-corewire\\r\\n', v\n"
                "s.close(); print('tcp: ok')")
        r = ns(sys.executable, "-c", code, check=False, timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr + srv.log()[-3000:])
        self.assertIn("tcp: ok", r.stdout)
        self.assertEqual(srv.stop(), 0, srv.log())
        self.assertGreaterEqual(srv.stats()["kv"]["responses"], 13, srv.log())
        env.assert_tcp_clean(self, srv.log())


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "client":
        client(sys.argv[2], sys.argv[3])
    else:
        env.main(why_not, "DPDK kv integration test")

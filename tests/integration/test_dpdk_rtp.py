"""The rtp service (docs/rtp.md) on the DPDK backend, end to end without a NIC (issue 19: "runs
on the kernel backends and on DPDK (UDP)"): tools/dpdk-setup.sh creates a namespace with a
persistent TAP; corewire runs inside it on the net_tap PMD, two workers, with one rtp table
owned by worker 1 (its timers on that worker's wheel; what worker 0 receives is mailed to it
or forwarded by worker 0). UDP sockets in the namespace (this file run as `exchange` or
`endpoint`, which do the I/O and print what they saw as JSON; the test asserts) talk to
corewire's own IP stack:
- relay: the configured pair and a pair opened with `corewirectl rtp open --peer-b` exchange
  RTP both ways and an SR + SDES compound (RTCP through the relay too): every packet arrives
  unchanged from the relay's port; after `rtp close` the pair's packets are strangers;
- endpoint: a session opened with `corewirectl rtp open` sends its PCMU stream (the sine,
  contiguous sequence numbers, timestamps at 8 kHz against the arrival clock, SR + SDES
  CNAME), and what the kernel side sends (100 RTP packets, an SR) is counted in
  `corewirectl rtp list`.
Needs root, iproute2, a DPDK build; skipped (exit 77) otherwise."""

import json
import os
import shutil
import socket
import struct
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness as h  # noqa: E402
import test_rtp as rt  # noqa: E402  (the rtp tests' packet builders and corewirectl helpers)

NS = f"cw-rtpdpdk-{os.getpid()}"
TAP = f"cwrtp{os.getpid() % 100000}"
OUR, PEER, PEER_MAC = "10.89.0.2", "10.89.0.1", "02:00:00:00:89:01"
RELAY_PORT, ENDPOINT_PORT = 5004, 5006
# Kernel-side ports (the namespace is the test's own, so any port is free): the relay's
# configured sides A and B, a run-time pair C and D, the endpoint's peer E.
A, B, C, D, E = 40001, 40002, 40003, 40004, 40010
SSRC, CNAME = 305419896, "cw-dpdk-rtp"


# --- the kernel side, run inside the namespace: `test_dpdk_rtp.py exchange|endpoint` with a
# JSON request on stdin; prints a JSON answer ---

def bound(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((PEER, port))
    return s


def exchange(req):
    """Steps [src, dst, packet hex, wait s]: sends the packet from port src to corewire and
    reads one datagram on port dst (waiting up to `wait`). Answers [[hex or None, [host,
    port] or None], ...]."""
    to = tuple(req["to"])
    socks = {p: bound(p) for p in {p for st in req["steps"] for p in st[:2]}}
    out = []
    for src, dst, pkt, wait in req["steps"]:
        socks[src].sendto(bytes.fromhex(pkt), to)
        socks[dst].settimeout(wait)
        try:
            got, frm = socks[dst].recvfrom(2048)
            out.append([got.hex(), list(frm)])
        except socket.timeout:
            out.append([None, None])
    return out


def endpoint(req):
    """On port E: collects corewire's stream (arrival time and packet) until `rtp` RTP and
    one RTCP packet came or `timeout` passed, then sends `send` (hex packets) `gap` s
    apart."""
    s = bound(req["port"])
    s.settimeout(1)
    rtps, rtcps = [], []
    end = time.monotonic() + req["timeout"]
    while time.monotonic() < end and (len(rtps) < req["rtp"] or not rtcps):
        try:
            b, _ = s.recvfrom(2048)
        except socket.timeout:
            continue
        if 192 <= b[1] <= 223:
            rtcps.append(b.hex())
        else:
            rtps.append([time.monotonic(), b.hex()])
    for pkt in req["send"]:
        s.sendto(bytes.fromhex(pkt), tuple(req["to"]))
        time.sleep(req["gap"])
    return {"rtp": rtps, "rtcp": rtcps}


# --- the test ---

import dpdk_env as env  # noqa: E402


def config(run_dir, table):
    return env.tap_config(TAP, OUR, f"""[control]
run_dir = "{run_dir}"
[[service]]
name = "rtp"
{table}worker = 1
""", runtime="workers = 2\n")


class DpdkRtpTest(unittest.TestCase):
    def setUp(self):
        env.topology_up(self, NS, TAP, f"{PEER}/24", PEER_MAC)

    def start(self, table):
        """corewire in the namespace with this one rtp table, owned by worker 1 of 2."""
        run_dir = tempfile.mkdtemp(prefix="cw-rtpdpdk-")
        self.addCleanup(shutil.rmtree, run_dir, ignore_errors=True)
        self.srv = env.start_server(self, config(run_dir, table),
                                    prefix=("ip", "netns", "exec", NS))
        env.restore_peer_mac(NS, PEER_MAC)
        self.cfg = self.srv.cfg.name

    def counters(self):
        return h.service_counters(rt.CTL, self.cfg, "rtp")

    def kernel_side(self, mode, req, timeout=60):
        r = env.in_ns(NS, sys.executable, os.path.abspath(__file__), mode, check=False,
                      timeout=timeout, input=json.dumps(req))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr + self.srv.log()[-3000:])
        return json.loads(r.stdout)

    def relay_steps(self, pairs, n):
        """n RTP packets each way on each pair, then an SR + SDES compound each way."""
        steps = []
        for a, b in pairs:
            for i in range(n):
                steps.append([a, b, rt.rtp(i, 160 * i, ssrc=a).hex(), 2])
                steps.append([b, a, rt.rtp(700 + i, 80 * i, ssrc=b, pt=96,
                                           payload=bytes(range(i, i + 80))).hex(), 2])
            steps.append([a, b, rt.rtcp_sr_sdes(a, b"side-a", packets=n).hex(), 2])
            steps.append([b, a, rt.rtcp_sr_sdes(b, b"side-b", packets=n).hex(), 2])
        return steps

    def assert_relayed(self, steps, got):
        for (src, dst, pkt, _), (data, frm) in zip(steps, got):
            self.assertEqual((data, frm), (pkt, [OUR, RELAY_PORT]), (src, dst))

    def test_relay_configured_and_opened_pairs(self):
        self.start(f'udp = "{OUR}:{RELAY_PORT}"\nmode = "relay"\npeer = "{PEER}:{A}"\n'
                   f'peer_b = "{PEER}:{B}"\nmax_sessions = 2\n')
        code, r = rt.ctl(self.cfg, "rtp", "open", f"{PEER}:{C}", "--peer-b", f"{PEER}:{D}")
        self.assertEqual((code, r["ok"], r["worker"]), (0, True, 1), r)
        pairs = sorted((s["peer"], s["peer_b"]) for s in rt.sessions(self.cfg))
        self.assertEqual(pairs, [(f"{PEER}:{A}", f"{PEER}:{B}"), (f"{PEER}:{C}", f"{PEER}:{D}")])
        time.sleep(0.2)  # the routes reach worker 0 by mail
        steps = self.relay_steps([(A, B), (C, D)], 25)
        got = self.kernel_side("exchange", {"to": [OUR, RELAY_PORT], "steps": steps})
        self.assertEqual(len(got), len(steps))
        self.assert_relayed(steps, got)
        # Closed: C's packets are from a stranger now, D hears nothing; A and B still relay.
        code, r = rt.ctl(self.cfg, "rtp", "close", f"{PEER}:{D}")
        self.assertEqual(code, 0, r)
        time.sleep(0.2)
        after = [[C, D, rt.rtp(1, 1, ssrc=C).hex(), 0.5]] + self.relay_steps([(A, B)], 1)
        got = self.kernel_side("exchange", {"to": [OUR, RELAY_PORT], "steps": after})
        self.assertEqual(got[0], [None, None])
        self.assert_relayed(after[1:], got[1:])
        c = self.counters()
        self.assertEqual((c["relayed"], c["rtcp_in"], c["unknown_source"], c["bad_rtp"],
                          c["bad_rtcp"], c["tx_full"]),
                         (len(steps) + len(after) - 1, 6, 1, 0, 0, 0), c)
        self.assertEqual(self.srv.stop(), 0, self.srv.log()[-3000:])

    def test_endpoint_stream_and_reception(self):
        # Opened once the kernel side has its own MAC back (restore_peer_mac): a session
        # sending from start-up would resolve the peer to the MAC the tap PMD had copied.
        self.start(f'udp = "{OUR}:{ENDPOINT_PORT}"\nmax_sessions = 2\n'
                   f'rtcp_min_interval = "300ms"\ncname = "{CNAME}"\n')
        code, r = rt.ctl(self.cfg, "rtp", "open", f"{PEER}:{E}", "--ssrc", str(SSRC),
                         "--pt", "0")
        self.assertEqual((code, r["ok"], r["worker"]), (0, True, 1), r)
        peer_ssrc = 0x5EED0001
        send = [rt.rtp(1000 + q, 160 * q, ssrc=peer_ssrc).hex() for q in range(100)]
        send.append(rt.rtcp_sr_sdes(peer_ssrc, b"kernel-side", packets=100).hex())
        seen = self.kernel_side("endpoint", {"to": [OUR, ENDPOINT_PORT], "port": E, "rtp": 60,
                                             "timeout": 5, "send": send, "gap": 0.002})
        rtps = [bytes.fromhex(p) for _, p in seen["rtp"]]
        self.assertGreaterEqual(len(rtps), 60, self.srv.log()[-3000:])
        rt.assert_tone(self, rtps, SSRC)
        # Timestamps at the clock rate: their span is the arrival span (8 kHz), give or take
        # the scheduling of a loaded machine.
        (t0, first), (t1, last) = seen["rtp"][0], seen["rtp"][-1]
        ts_span = ((struct.unpack(">I", bytes.fromhex(last)[4:8])[0] -
                    struct.unpack(">I", bytes.fromhex(first)[4:8])[0]) & 0xFFFFFFFF) / 8000
        self.assertGreater(t1 - t0, 1.0)
        self.assertLess(abs(ts_span - (t1 - t0)), 0.1, (ts_span, t1 - t0))
        # SR (PT 200) with our SSRC, then SDES (202) with the table's CNAME.
        self.assertTrue(seen["rtcp"], "no RTCP")
        sr = bytes.fromhex(seen["rtcp"][0])
        self.assertEqual((sr[1], struct.unpack(">I", sr[4:8])[0]), (200, SSRC))
        n = (struct.unpack(">H", sr[2:4])[0] + 1) * 4
        self.assertEqual(sr[n + 1], 202)
        self.assertIn(CNAME.encode(), sr[n:])
        # What the kernel side sent, counted by the session (A.1's probation takes the first
        # packet: 99 expected, none lost), whichever worker it arrived on.
        end = time.monotonic() + 5
        while True:
            s = [x for x in rt.sessions(self.cfg) if x["peer"] == f"{PEER}:{E}"]
            if (s and s[0]["rtp_in"] >= 100 and s[0]["rtcp_in"] >= 1) or time.monotonic() > end:
                break
            time.sleep(0.1)
        self.assertEqual(len(s), 1, s)
        s = s[0]
        self.assertEqual((s["ssrc"], s["peer_ssrc"], s["pt"]), (SSRC, peer_ssrc, 0), s)
        self.assertEqual((s["rtp_in"], s["expected"], s["received"], s["lost"]),
                         (100, 99, 99, 0), s)
        self.assertEqual(s["rtcp_in"], 1, s)
        self.assertGreaterEqual(s["rtp_out"], 60, s)
        c = self.counters()
        self.assertEqual((c["unknown_source"], c["bad_rtp"], c["bad_rtcp"], c["tx_full"]),
                         (0, 0, 0, 0), c)
        # The stream goes out from the owner's timers on worker 1's queue; worker 0 (where
        # net_tap here delivers every packet: it has no multiq qdisc) only mails what it gets.
        io = [w["io"] for w in h.ctl_stats(rt.CTL, self.cfg)["workers"]]
        self.assertEqual(io[0]["tx_datagrams"], 0, io)
        self.assertGreaterEqual(io[1]["tx_datagrams"], s["rtp_out"] + s["rtcp_out"], io)
        self.assertEqual(sum(w["rx_datagrams"] for w in io), 101, io)
        # Close: the last compound (SR + SDES + BYE) goes out, the session is gone.
        code, r = rt.ctl(self.cfg, "rtp", "close", f"{PEER}:{E}")
        self.assertEqual((code, r["bye"]), (0, True), r)
        self.assertEqual(rt.sessions(self.cfg), [])
        self.assertEqual(self.srv.stop(), 0, self.srv.log()[-3000:])


if __name__ == "__main__":
    if len(sys.argv) == 2 and sys.argv[1] in ("exchange", "endpoint"):
        print(json.dumps((exchange if sys.argv[1] == "exchange" else endpoint)(
            json.load(sys.stdin))))
    else:
        env.main(lambda: env.why_not(OUR), "DPDK rtp integration test")

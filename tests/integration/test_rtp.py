"""The rtp service end to end (docs/rtp.md), on the real binary over loopback.

- An endpoint's stream: PCMU every 20 ms whose decoded samples are the configured sine, SR +
  SDES CNAME at the configured minimum interval, SR + SDES + BYE at shutdown; what Python
  sends it is counted as RFC 3550 A.3 says; malformed RTP/RTCP and strangers are dropped
  and counted.
- Relay mode forwards each side's packets to the other unchanged.
- Fault injection: one corewire sends with injected loss, jitter and reorder to another,
  whose receiver statistics must match what was injected (tolerances in the test).
Every socket has a timeout, every process is stopped; ports are free ones the kernel gave.
"""

import json
import math
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest

import harness as h

CTL = os.environ.get("COREWIRECTL", "build/control/corewirectl")


def bound_udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(2)
    return s


def ulaw_decode(u):
    u = ~u & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u >> 4) & 7)
    return (0x84 - t) if u & 0x80 else (t - 0x84)


def rtp(seq, ts, ssrc=0xABCDEF01, pt=0, payload=b"\xff" * 160):
    return struct.pack(">BBHII", 0x80, pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload


def rtcp_sr_sdes(ssrc, cname, ntp=0x0123456789ABCDEF, ts=0, packets=0, octets=0):
    """A compound RTCP packet: an SR without report blocks, then SDES with one CNAME."""
    sr = struct.pack(">BBHIQIII", 0x80, 200, 6, ssrc, ntp, ts, packets, octets)
    item = bytes([1, len(cname)]) + cname
    chunk = struct.pack(">I", ssrc) + item + b"\0" * (4 - len(item) % 4)
    return sr + struct.pack(">BBH", 0x81, 202, len(chunk) // 4) + chunk


def ctl(cfg_path, *args):
    """corewirectl -c <config> --json ARGS: (exit code, reply object or None)."""
    r = subprocess.run([CTL, "-c", cfg_path, "--json", *args], capture_output=True, text=True,
                       timeout=20)
    try:
        return r.returncode, json.loads(r.stdout)
    except ValueError:
        return r.returncode, None


def sessions(cfg_path):
    """The sessions of every rtp table (corewirectl rtp list)."""
    code, j = ctl(cfg_path, "rtp", "list")
    if code != 0:
        raise AssertionError(j)
    return [s for t in j["tables"] for s in t["sessions"]]


def assert_tone(test, rtps, ssrc):
    """rtps (in arrival order) are one endpoint's PCMU tone: SSRC ssrc, 160 bytes every
    20 ms whose decoded samples are the 440 Hz sine, sequence numbers contiguous, timestamps
    160 apart (or a multiple of 160 from 960 up: the slots a sender tick stalled for more
    than 5 packet times skips, docs/rtp.md)."""
    seqs, steps = [], set()
    for i, b in enumerate(rtps):
        v, pt, seq, ts, got_ssrc = struct.unpack(">BBHII", b[:12])
        test.assertEqual((v, pt, got_ssrc, len(b)), (0x80, 0, ssrc, 12 + 160))
        seqs.append(seq)
        if i:
            steps.add((ts - struct.unpack(">I", rtps[i - 1][4:8])[0]) & 0xFFFFFFFF)
        for k, u in enumerate(b[12:]):
            want = 8000 * math.sin(2 * math.pi * 440 * ((ts + k) % 8000) / 8000)
            test.assertLess(abs(ulaw_decode(u) - want), 300, (seq, k))
    test.assertEqual([(s - seqs[0]) & 0xFFFF for s in seqs], list(range(len(seqs))))
    test.assertTrue(all(d == 160 or (d >= 960 and d % 160 == 0) for d in steps), steps)


class Session:
    """One corewire process with one rtp table, its own run dir, stats through corewirectl."""

    def __init__(self, keys, port=None, workers=1):
        self.dir = tempfile.mkdtemp(prefix="cw-rtp-")
        self.port = port or h.free_port(socket.SOCK_DGRAM)
        backend = os.environ.get("CW_TEST_BACKEND", "auto")
        self.cfg = (f'[runtime]\nbackend = "{backend}"\nworkers = {workers}\n'
                    f'[log]\nlevel = "info"\n'
                    f'[control]\nrun_dir = "{self.dir}"\n'
                    f'[[service]]\nname = "rtp"\nudp = "127.0.0.1:{self.port}"\n{keys}\n')
        self.server = h.Server(self.cfg)
        self.cfg_path = self.server.cfg.name

    def counters(self):
        """Declared counters of the rtp table, summed over workers (gauges: the owner's)."""
        return h.service_counters(CTL, self.cfg_path, "rtp")

    def ctl(self, *args):
        return ctl(self.cfg_path, *args)

    def sessions(self):
        return sessions(self.cfg_path)

    def stop(self):
        self.server.stop()


class EndpointTest(unittest.TestCase):
    def setUp(self):
        self.peer = bound_udp()
        pp = self.peer.getsockname()[1]
        self.s = Session(f'peer = "127.0.0.1:{pp}"\nrtcp_min_interval = "300ms"\n'
                         f'ssrc = 305419896\ncname = "cw-test"\nworker = 1', workers=2)
        self.addr = ("127.0.0.1", self.s.port)

    def tearDown(self):
        self.s.stop()
        self.peer.close()

    def test_tone_is_the_sine_and_sr_arrives(self):
        rtps, srs = [], []
        end = time.monotonic() + 3
        while time.monotonic() < end and (len(rtps) < 50 or not srs):
            b, _ = self.peer.recvfrom(2048)
            if 192 <= b[1] <= 223:
                srs.append(b)
            else:
                rtps.append(b)
        self.assertGreaterEqual(len(rtps), 50)
        self.assertTrue(srs, "no RTCP within 3 s")
        assert_tone(self, rtps, 305419896)
        # SR (PT 200), sender SSRC, then SDES (202) with our CNAME.
        sr = srs[0]
        self.assertEqual(sr[1], 200)
        self.assertEqual(struct.unpack(">I", sr[4:8])[0], 305419896)
        n = (struct.unpack(">H", sr[2:4])[0] + 1) * 4
        self.assertEqual(sr[n + 1], 202)
        self.assertIn(b"cw-test", sr[n:])

    def test_bye_at_shutdown(self):
        # RFC 3550 6.3.7: the last RTCP packet is a compound SR + SDES + BYE with our SSRC.
        self.assertGreaterEqual(self._wait(lambda c: c["rtcp_out"] >= 1)["rtcp_out"], 1)
        self.s.stop()
        last = None
        try:
            while True:
                b, _ = self.peer.recvfrom(2048)
                if 192 <= b[1] <= 223:
                    last = b
        except socket.timeout:
            pass
        self.assertIsNotNone(last)
        types, off = [], 0
        while off + 4 <= len(last):
            types.append(last[off + 1])
            off += (struct.unpack(">H", last[off + 2:off + 4])[0] + 1) * 4
        self.assertEqual(off, len(last))
        self.assertEqual(types, [200, 202, 203])
        bye = last[-8:]
        self.assertEqual((bye[0] & 0x1F, struct.unpack(">I", bye[4:8])[0]), (1, 305419896))

    def test_reception_statistics_of_what_we_send(self):
        # 0..99 with 10 lost, 3 duplicates and a reorder: A.1 counts from seq 1 (probation).
        seqs = [q for q in range(100) if q % 10 != 5]
        seqs[20], seqs[21] = seqs[21], seqs[20]
        seqs += [40, 41, 42]
        for q in seqs:
            self.peer.sendto(rtp(1000 + q, 160 * q), self.addr)
            time.sleep(0.001)
        c = self._wait(lambda c: c["rtp_in"] >= len(seqs))
        self.assertEqual(c["rtp_in"], len(seqs), c)
        # Probation takes 1000; 1001..1099 are expected (99), 89 of them arrived (5, 15, ...,
        # 95 never did) plus 3 duplicates: received 92, cumulative lost 99 - 92 = 7.
        self.assertEqual(c["expected"], 99)
        self.assertEqual(c["lost"], 7)
        self.assertEqual(c["seq_not_counted"], 1)

    def _wait(self, ok, timeout=5):
        end = time.monotonic() + timeout
        c = self.s.counters()
        while time.monotonic() < end and not ok(c):
            time.sleep(0.1)
            c = self.s.counters()
        return c

    def test_malformed_and_strangers_are_counted_drops(self):
        stranger = bound_udp()
        try:
            stranger.sendto(rtp(1, 160), self.addr)
        finally:
            stranger.close()
        self.peer.sendto(b"\x40" + rtp(1, 160)[1:], self.addr)  # version 1
        self.peer.sendto(rtp(1, 160)[:11], self.addr)  # short
        bad_csrc = bytearray(rtp(2, 320, payload=b"\0" * 8))
        bad_csrc[0] |= 0x0F
        self.peer.sendto(bytes(bad_csrc), self.addr)
        lying = struct.pack(">BBHI", 0x80, 201, 9, 1)  # RR claiming 40 bytes in 8
        self.peer.sendto(lying, self.addr)
        self.peer.sendto(struct.pack(">BBHI", 0x81, 202, 1, 1), self.addr)  # SDES first
        c = self._wait(lambda c: c["bad_rtp"] >= 3 and c["bad_rtcp"] >= 2 and c["unknown_source"])
        self.assertEqual((c["unknown_source"], c["bad_rtp"], c["bad_rtcp"]), (1, 3, 2))
        self.assertTrue(self.s.server.alive())


class RelayTest(unittest.TestCase):
    def test_each_side_reaches_the_other_unchanged(self):
        a, b, stranger = bound_udp(), bound_udp(), bound_udp()
        s = Session(f'mode = "relay"\npeer = "127.0.0.1:{a.getsockname()[1]}"\n'
                    f'peer_b = "127.0.0.1:{b.getsockname()[1]}"', workers=2)
        try:
            addr = ("127.0.0.1", s.port)
            for i in range(20):
                pa, pb = rtp(i, 160 * i, ssrc=1), rtp(500 + i, 80 * i, ssrc=2, pt=96)
                a.sendto(pa, addr)
                self.assertEqual(b.recvfrom(2048), (pa, ("127.0.0.1", s.port)))
                b.sendto(pb, addr)
                self.assertEqual(a.recvfrom(2048), (pb, ("127.0.0.1", s.port)))
            stranger.sendto(rtp(1, 1), addr)
            a.sendto(rtp(1, 1)[:5], addr)
            c = s.counters()
            end = time.monotonic() + 5
            while time.monotonic() < end and c["unknown_source"] + c["bad_rtp"] < 2:
                time.sleep(0.1)
                c = s.counters()
            self.assertEqual((c["relayed"], c["unknown_source"], c["bad_rtp"]), (40, 1, 1))
        finally:
            s.stop()
            for x in (a, b, stranger):
                x.close()


class RelaySessionsTest(unittest.TestCase):
    """Relay sessions opened at run time (corewirectl rtp open A --peer-b B) on a relay table
    with no configured pair, two workers: each side reaches the other unchanged whichever
    worker the packet lands on; list shows the pairs; after close the sides are strangers."""

    def test_open_relays_both_ways_and_close_stops(self):
        socks = [bound_udp() for _ in range(5)]
        a, b, c, d, stranger = socks
        name = lambda x: f"127.0.0.1:{x.getsockname()[1]}"  # noqa: E731
        s = Session('mode = "relay"\nmax_sessions = 2\nworker = 1', workers=2)
        try:
            addr = ("127.0.0.1", s.port)
            code, r = s.ctl("rtp", "open", name(a), "--peer-b", name(b))
            self.assertEqual((code, r["ok"], r["peer_b"]), (0, True, name(b)), r)
            code, r = s.ctl("rtp", "open", name(c), "--peer-b", name(d))
            self.assertEqual(code, 0, r)
            code, r = s.ctl("rtp", "open", name(stranger), "--peer-b", name(a))
            self.assertEqual((code, r["ok"]), (1, False), r)  # a is taken (and the table full)
            time.sleep(0.2)  # the routes reach worker 0 by mail
            for i in range(20):
                pa, pb = rtp(i, 160 * i, ssrc=1), rtp(500 + i, 80 * i, ssrc=2, pt=96)
                a.sendto(pa, addr)
                self.assertEqual(b.recvfrom(2048), (pa, addr))
                b.sendto(pb, addr)
                self.assertEqual(a.recvfrom(2048), (pb, addr))
                d.sendto(pb, addr)
                self.assertEqual(c.recvfrom(2048), (pb, addr))
            pairs = sorted((x["peer"], x["peer_b"]) for x in s.sessions())
            self.assertEqual(pairs, sorted([(name(a), name(b)), (name(c), name(d))]))
            code, r = s.ctl("rtp", "close", name(b))
            self.assertEqual(code, 0, r)
            time.sleep(0.2)
            a.sendto(rtp(1, 1), addr)
            stranger.sendto(rtp(1, 1), addr)
            b.settimeout(0.3)
            with self.assertRaises(socket.timeout):
                b.recvfrom(2048)
            cn = s.counters()
            end = time.monotonic() + 5
            while time.monotonic() < end and cn["unknown_source"] < 2:
                time.sleep(0.1)
                cn = s.counters()
            self.assertEqual((cn["relayed"], cn["unknown_source"], cn["sessions"]), (60, 2, 1))
        finally:
            s.stop()
            for x in socks:
                x.close()


class FaultInjectionTest(unittest.TestCase):
    """Sender A injects 10% loss, 0..20 ms uniform delay and 5% reorder; receiver B measures.

    Loss: B's cumulative lost equals A's injected_loss (reorder is not loss), give or take
    the packets in flight (3), between A's snapshots before and after B's. Jitter: with delays d uniform on
    [0, D], RFC 3550's J estimates E|d_i - d_(i-1)| = D/3; a reorder (the held packet goes
    out right after its successor) turns about two differences into about 20 ms each, so
    J ~ D/3 + 2p(20 ms - D/3) = 8.0 ms = 64 samples at 8 kHz for p = 5% (at 5% a run of ~340
    chances without any reorder is out of reach, at 2% it is not). J is a 1/16
    moving average (a 1-sigma noise of about 13% here), so the test averages 8 readings
    over 4 s and accepts +-25%; the timer's 262 us tick and scheduling add a little."""

    def test_reported_loss_and_jitter_match_the_injection(self):
        pa, pb = h.free_port(socket.SOCK_DGRAM), h.free_port(socket.SOCK_DGRAM)
        common = 'rtcp_min_interval = "500ms"\n'
        b = Session(f'peer = "127.0.0.1:{pa}"\n' + common, port=pb)
        try:
            a = Session(f'peer = "127.0.0.1:{pb}"\ninject_loss = 100\ninject_jitter = "20ms"\n'
                        f'inject_reorder = 50\n' + common, port=pa)
            try:
                time.sleep(4)
                jb, ja = [], []
                for _ in range(8):  # 8 readings over the next 4 s (400 packets in all)
                    time.sleep(0.5)
                    jb.append(b.counters()["jitter"])
                    ja.append(a.counters()["peer_jitter"])
                # B's count is bracketed by A's before and after (packets keep flowing
                # while the snapshots are read).
                ca, cb, ca2 = a.counters(), b.counters(), a.counters()
            finally:
                a.stop()
        finally:
            b.stop()
        sent = ca["rtp_out"] + ca["injected_loss"]
        self.assertGreater(sent, 300)
        frac = ca["injected_loss"] / sent
        self.assertTrue(0.05 < frac < 0.15, frac)  # the injection itself (binomial, 10%)
        self.assertLessEqual(ca["injected_loss"] - 3, cb["lost"], (ca, cb))
        self.assertLessEqual(cb["lost"], ca2["injected_loss"] + 3, (ca2, cb))
        self.assertGreater(ca["injected_reorder"], 0)
        want = 64.0
        print(f"jitter readings: receiver {jb}, reported back {ja}; lost {cb['lost']} "
              f"injected {ca['injected_loss']} of {sent}", file=sys.stderr)
        self.assertTrue(0.75 * want <= sum(jb) / len(jb) <= 1.25 * want, jb)
        # A hears the same through B's receiver reports (the peer_* gauges), which lag by
        # up to one report interval.
        self.assertTrue(0.75 * want <= sum(ja) / len(ja) <= 1.25 * want, ja)
        self.assertGreater(ca["peer_lost"], 0)
        self.assertGreater(ca["rtt_us"], 0)


class RunTimeSessionsTest(unittest.TestCase):
    """corewirectl rtp open|close|list between two corewire processes whose tables have no
    configured session; on A the sessions live on worker 1 of 2 (commands reach worker 0
    first and are forwarded; packets arriving on worker 0 are mailed to the owner)."""

    def test_open_flow_list_close(self):
        pa, pb = h.free_port(socket.SOCK_DGRAM), h.free_port(socket.SOCK_DGRAM)
        common = 'rtcp_min_interval = "300ms"\nmax_sessions = 2\n'
        a = Session(common + "worker = 1", port=pa, workers=2)
        try:
            b = Session(common, port=pb)
            try:
                self._run(a, b, pa, pb)
            finally:
                b.stop()
        finally:
            a.stop()

    def _run(self, a, b, pa, pb):
        self.assertEqual(a.sessions(), [])
        code, r = a.ctl("rtp", "open", f"127.0.0.1:{pb}", "--ssrc", "1111", "--pt", "0")
        self.assertEqual(code, 0, r)
        self.assertEqual((r["ok"], r["ssrc"], r["worker"]), (True, 1111, 1))
        code, r = b.ctl("rtp", "open", f"127.0.0.1:{pa}", "--ssrc", "2222")
        self.assertEqual(code, 0, r)
        # Bad input: an error reply and exit 1, never a crash.
        for args in (["open", f"127.0.0.1:{pb}"],            # duplicate
                     ["open", "127.0.0.1:0"],                  # bad address
                     ["open", "localhost:5"],
                     ["open", f"127.0.0.1:{pb}", "--pt", "72"],  # RTCP's range
                     ["close", "127.0.0.1:9"],                 # no such session
                     ["open", "127.0.0.1:9", "--table", "3"]):  # no such table
            code, r = a.ctl("rtp", *args)
            self.assertEqual(code, 1, (args, r))
            self.assertFalse(r["ok"], (args, r))
        # Table full: A holds 2; a second session toward 127.0.0.1:9 fills it.
        self.assertEqual(a.ctl("rtp", "open", "127.0.0.1:9")[0], 0)
        code, r = a.ctl("rtp", "open", "127.0.0.1:10")
        self.assertEqual(code, 1, r)
        self.assertIn("table full", r["error"])
        self.assertEqual(a.ctl("rtp", "close", "127.0.0.1:9")[0], 0)
        # Both directions flow: 50 packets/s each way, stats in list (RTT once B's receiver
        # report carries the LSR of A's SR).
        end = time.monotonic() + 8
        while time.monotonic() < end:
            time.sleep(0.25)
            sa, sb = a.sessions(), b.sessions()
            if sa and sb and sa[0]["rtp_in"] > 100 and sb[0]["rtp_in"] > 100 and sa[0]["rtt_us"]:
                break
        self.assertEqual(len(sa), 1, sa)
        s = sa[0]
        self.assertEqual((s["peer"], s["ssrc"], s["peer_ssrc"], s["pt"]),
                         (f"127.0.0.1:{pb}", 1111, 2222, 0))
        self.assertGreater(s["rtp_in"], 100, s)
        self.assertGreater(s["rtp_out"], 100, s)
        self.assertEqual(s["lost"], 0, s)
        # Loopback: nothing duplicated; late only if a loaded machine stalls a sender tick by
        # more than the playout delay (20 ms or more).
        self.assertEqual(s["jb_duplicates"], 0, s)
        self.assertLessEqual(s["jb_late"], s["rtp_in"] // 20, s)
        self.assertLess(s["jitter"], 400, s)  # 50 ms at 8 kHz, generous for a loaded machine
        self.assertGreater(s["rtt_us"], 0, s)
        self.assertGreater(s["rtcp_in"], 0, s)
        self.assertGreaterEqual(s["playout_delay"], 160, s)
        self.assertEqual(sb[0]["peer_ssrc"], 1111)
        self.assertGreater(sb[0]["rtp_in"], 100)
        ca = a.counters()
        self.assertEqual((ca["sessions"], ca["unknown_source"], ca["bad_rtp"]), (1, 0, 0))
        # Close: BYE goes out, the session is gone, B stops hearing A.
        rtcp_before = s["rtcp_out"]
        code, r = a.ctl("rtp", "close", f"127.0.0.1:{pb}")
        self.assertEqual(code, 0, r)
        self.assertTrue(r["bye"])
        self.assertGreaterEqual(r["rtp_out"], s["rtp_out"])
        self.assertEqual(a.sessions(), [])
        self.assertGreater(a.counters()["rtcp_out"], rtcp_before)
        time.sleep(0.3)
        n1 = b.sessions()[0]["rtp_in"]
        time.sleep(0.5)
        self.assertEqual(b.sessions()[0]["rtp_in"], n1)
        # B's packets to A now come from a stranger (no session): dropped and counted.
        self.assertGreater(a.counters()["unknown_source"], 0)
        self.assertEqual(a.counters()["sessions"], 0)
        self.assertTrue(a.server.alive() and b.server.alive())


if __name__ == "__main__":
    unittest.main()

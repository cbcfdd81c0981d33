"""Malformed frames against the running corewire on DPDK (issue 3, test 5c).

The topology is tools/dpdk-setup.sh's (a namespace with a persistent TAP, no hugepages);
corewire (backend dpdk, one worker, net_tap on that TAP) runs inside the namespace. Frames
built with scapy are injected through the kernel side of the TAP: truncated Ethernet/IP/UDP
and ARP, IHL < 5, IHL beyond the frame, bad total lengths, bad IP and UDP checksums, bad,
overlapping and never-completed fragments, a fragment flood larger than the reassembly
table, gratuitous ARP, ARP claiming our address, and unsolicited ARP replies (one of them
spoofing the peer's MAC). Then the echo service must still answer the peer (so nothing
crashed and the spoofed reply was not learned), and after the stop every drop reason must
have moved by exactly the number of frames sent for it (the exit log's `stats dpdk:` line).

A frame shorter than the 14-byte Ethernet header cannot be sent through a TAP (the kernel
pads packet-socket frames to the header length); eth_too_short is covered by dpdk_frame.

Needs root, iproute2, a DPDK build and python3-scapy (tools/install-deps.sh); skipped (exit
77) with the reason otherwise. Bounded: a few hundred frames, every wait has a deadline.
"""

import json
import os
import re
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import dpdk_env as env  # noqa: E402
import harness as h  # noqa: E402

NS = f"cw-mf-{os.getpid()}"
TAP = f"cwmf{os.getpid() % 100000}"
OUR, PEER = "10.91.0.2", "10.91.0.1"
PEER_MAC = "02:00:00:00:91:01"
OTHER = "10.91.0.50"  # a neighbour that never asked anything
FRAG_TIMEOUT_MS = 300
FLOOD = 200  # first fragments of distinct datagrams: more than the table's 64 entries
REPEAT = 5  # frames per malformed kind


def scapy_python():
    """A python3 that can import scapy (Debian's python3-scapy is for /usr/bin/python3)."""
    for py in (sys.executable, "/usr/bin/python3"):
        if py and os.access(py, os.X_OK) and subprocess.run(
                [py, "-c", "import scapy.all"], capture_output=True, timeout=60).returncode == 0:
            return py
    return None


def why_not():
    if not scapy_python():
        return "needs python3-scapy (apt-get install python3-scapy; tools/install-deps.sh)"
    return env.why_not(OUR)


# ---- the injector (runs inside the namespace, under a python3 that has scapy) -------------

def inject(tap, our_mac, port):
    """Sends every malformed kind; prints {drop reason: frames sent for it} as JSON."""
    from scapy.all import ARP, IP, UDP, Ether, Raw, conf, sendp  # noqa: PLC0415
    conf.verb = 0
    eth = Ether(dst=our_mac, src=PEER_MAC)
    ip = IP(src=PEER, dst=OUR)
    good = ip / UDP(sport=40000, dport=port) / Raw(b"x" * 16)

    def with_field(pkt, layer, field, delta):
        # The packet as scapy computes it, then one field off by delta (wrong checksum).
        built = Ether(bytes(eth / pkt))
        value = (getattr(built[layer], field) + delta) & 0xFFFF
        setattr(built[layer], field, value or delta + 1)  # a UDP checksum of 0 means none
        return built

    def frag(ident, off8, data, more):
        return eth / IP(src=PEER, dst=OUR, id=ident, proto=17, flags="MF" if more else 0,
                        frag=off8) / Raw(data)

    kinds = {
        "ip_too_short": [Ether(dst=our_mac, type=0x0800),                 # Ethernet header only
                         Ether(dst=our_mac, type=0x0800) / Raw(b"\x45" + bytes(9))],  # 10 B of IP
        "udp_too_short": [eth / IP(src=PEER, dst=OUR, proto=17) / Raw(b"\x9c\x40\x2b")],
        "ip_bad_ihl": [eth / IP(src=PEER, dst=OUR, ihl=4) / UDP(dport=port),  # IHL < 5
                       eth / IP(src=PEER, dst=OUR, ihl=15) / UDP(dport=port)],  # beyond frame
        "ip_bad_total_length": [eth / IP(src=PEER, dst=OUR, len=1000) / UDP(dport=port),
                                eth / IP(src=PEER, dst=OUR, len=12) / UDP(dport=port)],
        "ip_bad_checksum": [with_field(good, IP, "chksum", 1)],
        "udp_bad_checksum": [with_field(good, UDP, "chksum", 1)],
        "ip_bad_fragment": [frag(0x0F00, 0, b"y" * 12, True)],  # not a multiple of 8
        "arp_malformed": [Ether(dst=our_mac, type=0x0806) / Raw(b"\x00\x01\x08\x00\x06")],
        # Gratuitous ARP (request and reply) for another host: not for us, never learned.
        "arp_not_for_us": [
            Ether(dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc="02:77:00:00:00:50", psrc=OTHER,
                                                 pdst=OTHER),
            Ether(dst="ff:ff:ff:ff:ff:ff") / ARP(op=2, hwsrc="02:77:00:00:00:50", psrc=OTHER,
                                                 pdst=OTHER, hwdst="ff:ff:ff:ff:ff:ff")],
        # Someone claiming our own address.
        "arp_bad_sender": [Ether(dst="ff:ff:ff:ff:ff:ff") / ARP(op=2, hwsrc="02:66:00:00:00:02",
                                                                psrc=OUR, pdst=OUR)],
        # Replies we never asked for: from a stranger, and one spoofing the peer's MAC.
        "arp_unsolicited_reply": [
            Ether(dst=our_mac) / ARP(op=2, hwsrc="02:77:00:00:00:50", psrc=OTHER, pdst=OUR,
                                     hwdst=our_mac),
            Ether(dst=our_mac) / ARP(op=2, hwsrc="02:66:66:66:66:66", psrc=PEER, pdst=OUR,
                                     hwdst=our_mac)],
    }
    frames, sent = [], {}
    for reason, pkts in kinds.items():
        for _ in range(REPEAT):
            frames += pkts
        sent[reason] = REPEAT * len(pkts)
    # Fragments the reassembly gives up on, each counted once as ip_frag_dropped:
    # overlapping (16 + 16 + 8 bytes claiming a 32-byte datagram) ...
    overlap = [frag(0x1000 + k, off, b"o" * n, more)
               for k in range(REPEAT) for off, n, more in ((0, 16, True), (1, 16, True),
                                                           (3, 8, False))]
    # ... never completed (a first fragment alone; times out) and a flood of them.
    lonely = [frag(0x2000 + k, 0, b"l" * 16, True) for k in range(REPEAT + FLOOD)]
    frames += overlap + lonely
    sent["ip_frag_dropped"] = len(overlap) + len(lonely)
    sendp(frames, iface=tap)
    print(json.dumps(sent))


# ---- the test -----------------------------------------------------------------------------

ECHO = ("import socket,struct,sys;s=socket.socket(2,2);s.settimeout(2);"
        "m=struct.pack('>QHI',7,3,64)+bytes(50);ok=0\n"
        "for i in range(5):\n"
        "  s.sendto(m,('{ip}',{port}))\n"
        "  try:\n"
        "    r=s.recv(2048);ok=r[:8]==m[:8] and r[9]&1==0;break\n"
        "  except OSError: pass\n"
        "sys.exit(0 if ok else 1)")


class DpdkMalformedTest(unittest.TestCase):
    def setUp(self):
        env.topology_up(self, NS, TAP, f"{PEER}/24", PEER_MAC)

    def echo(self, port):
        code = ECHO.format(ip=OUR, port=port)
        return env.in_ns(NS, sys.executable, "-c", code, check=False).returncode

    def test_malformed_frames_are_counted_and_service_goes_on(self):
        cfg = f"""[runtime]
backend = "dpdk"
workers = 1
[dpdk]
eal = ["--no-huge", "-m", "256", "--no-pci"]
port = "net_tap0,iface={TAP}"
addresses = ["{OUR}/24"]
frag_flows = 16
frag_timeout = "{FRAG_TIMEOUT_MS}ms"
{h.ALL_SERVICES}"""
        self.srv = env.start_server(self, cfg, prefix=("ip", "netns", "exec", NS))
        env.restore_peer_mac(NS, PEER_MAC)
        m = re.search(r"dpdk: port \d+ \(net_tap\) mac ([0-9a-f:]{17})", self.srv.log())
        self.assertIsNotNone(m, self.srv.log())
        port = self.srv.ep("sockperf-echo", "udp")[1]
        # The peer resolves us by ARP and is learned from its request.
        self.assertEqual(self.echo(port), 0, self.srv.log())

        p = env.in_ns(NS, scapy_python(), os.path.abspath(__file__), "--inject", TAP,
                      m.group(1), str(port), check=False, timeout=120)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        sent = json.loads(p.stdout.strip().splitlines()[-1])
        # Incomplete reassemblies time out (checked every 100 ms), then the service answers
        # the peer at the MAC it learned, not the spoofed one.
        time.sleep(FRAG_TIMEOUT_MS / 1000 + 0.5)
        self.assertEqual(self.echo(port), 0, "echo after malformed frames:\n" + self.srv.log())
        self.assertTrue(self.srv.alive(), self.srv.log())

        self.assertEqual(self.srv.stop(), 0, self.srv.log())
        drops = env.backend_counters(self.srv.log())
        for reason, n in sent.items():
            self.assertEqual(drops.get("drop." + reason, 0), n,
                             f"drop.{reason}: sent {n}\n" + self.srv.log())
        self.assertGreaterEqual(self.srv.stats()["sockperf-echo"]["responses"], 2)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--inject":
        inject(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        sys.exit(0)
    env.main(why_not, "DPDK malformed-frame test")

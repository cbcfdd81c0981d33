"""corewire on the DPDK backend, end to end without a NIC: tools/dpdk-setup.sh creates a
network namespace with a persistent TAP (the kernel side has the peer's address); the server
runs inside the namespace and attaches to the TAP (net_tap PMD, --no-huge); the real sockperf
client plus plain sockets talk to corewire's own IP stack. Needs root, iproute2, a DPDK build
and sockperf; skipped (exit 77) otherwise."""

import os
import shutil
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dpdk_env as env  # noqa: E402
import harness as h  # noqa: E402

NS = f"cw-it-{os.getpid()}"
TAP = f"cwit{os.getpid() % 100000}"
OUR, PEER, PEER_MAC = "10.97.0.2", "10.97.0.1", "02:00:00:00:97:01"
SOCKPERF = os.environ.get("SOCKPERF") or shutil.which("sockperf")


def ns(*cmd, check=True, timeout=30):
    return env.in_ns(NS, *cmd, check=check, timeout=timeout)


def why_not():
    return "needs sockperf" if not SOCKPERF else env.why_not(OUR)


class DpdkTest(unittest.TestCase):
    def setUp(self):
        # The namespace and a persistent TAP with the peer's address, as an operator would
        # set them up (tools/dpdk-setup.sh; no hugepages: EAL runs with --no-huge).
        env.topology_up(self, NS, TAP, f"{PEER}/24", PEER_MAC)

    def test_udp_echo_over_tap(self):
        cfg = f"""[runtime]
backend = "dpdk"
[dpdk]
eal = ["--no-huge", "-m", "512", "--no-pci"]
port = "net_tap0,iface={TAP}"
addresses = ["{OUR}/24"]
{h.ALL_SERVICES}"""
        self.srv = env.start_server(self, cfg, prefix=("ip", "netns", "exec", NS))
        env.restore_peer_mac(NS, PEER_MAC)
        self.assertEqual(self.srv.ep("sockperf-echo", "udp"), (OUR, self.srv.ep("sockperf-echo", "udp")[1]))
        port = self.srv.ep("sockperf-echo", "udp")[1]
        out = ns(SOCKPERF, "ping-pong", "-i", OUR, "-p", str(port), "-m", "64", "-t", "2",
                 "--data-integrity", check=False).stdout
        self.assertRegex(out, r"ReceivedMessages=[1-9]", out)
        self.assertIn("# dropped messages = 0;", out)
        self.assertNotIn("ERROR", out)
        # A large datagram (IP fragments both ways) through the native echo.
        nport = self.srv.ep("echo", "udp")[1]
        code = ("import socket,struct,sys;s=socket.socket(2,2);s.settimeout(3);"
                "p=bytes(range(256))*20;"
                "m=struct.pack('>HBBHHQII',0x4357,1,0,1,0,42,len(p),0)+p;"
                f"s.sendto(m,('{OUR}',{nport}));r=s.recv(65535);"
                "sys.exit(0 if r[24:]==p and r[3]==1 else 1)")
        self.assertEqual(ns(sys.executable, "-c", code, check=False).returncode, 0, self.srv.log())
        self.assertEqual(self.srv.stop(), 0, self.srv.log())
        st = self.srv.stats()
        self.assertGreater(st["sockperf-echo"]["responses"], 0)
        self.assertEqual(st["echo"]["responses"], 1, self.srv.log())


if __name__ == "__main__":
    env.main(why_not, "DPDK integration test")

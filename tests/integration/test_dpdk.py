"""corewire on the DPDK backend, end to end without a NIC: tools/dpdk-setup.sh creates a
network namespace with a persistent TAP (the kernel side has the peer's address); the server
runs inside the namespace and attaches to the TAP (net_tap PMD, --no-huge); the real sockperf
client plus plain sockets talk to corewire's own IP stack. Needs root, iproute2, a DPDK build and sockperf; skipped (exit 77) otherwise."""

import os
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

NS = f"cw-it-{os.getpid()}"
TAP = f"cwit{os.getpid() % 100000}"
OUR, PEER, PEER_MAC = "10.97.0.2", "10.97.0.1", "02:00:00:00:97:01"
SETUP = os.path.join(os.environ.get("CW_SOURCE_ROOT", os.path.join(os.path.dirname(
    os.path.abspath(__file__)), "../..")), "tools/dpdk-setup.sh")
SOCKPERF = os.environ.get("SOCKPERF") or shutil.which("sockperf")


def ns(*cmd, check=True, timeout=30):
    return subprocess.run(["ip", "netns", "exec", NS, *cmd], capture_output=True, text=True,
                          check=check, timeout=timeout)


def why_not():
    if os.geteuid() != 0:
        return "needs root (network namespace, TAP device)"
    if not shutil.which("ip"):
        return "needs iproute2 (ip)"
    if not SOCKPERF:
        return "needs sockperf"
    if not os.access(SETUP, os.X_OK):
        return f"no {SETUP}"
    cfg = h.write_temp(f'[dpdk]\nport = "x"\naddresses = ["{OUR}/24"]\n')
    try:
        p = h.run_corewire(["--backend", "dpdk", "--check-config", "-c", cfg])
    finally:
        os.unlink(cfg)
    if p.returncode != 0:
        return "corewire rejects backend dpdk: " + p.stderr.strip()
    return None


class DpdkTest(unittest.TestCase):
    def setUp(self):
        # The namespace and a persistent TAP with the peer's address, as an operator would
        # set them up (tools/dpdk-setup.sh; no hugepages: EAL runs with --no-huge).
        self.srv = None
        self.addCleanup(subprocess.run, [SETUP, "down", "--ns", NS], capture_output=True,
                        timeout=60)
        subprocess.run([SETUP, "up", "--ns", NS, "--tap", TAP, "--peer", f"{PEER}/24",
                        "--peer-mac", PEER_MAC, "--pages", "0"],
                       check=True, capture_output=True, timeout=60)

    def tearDown(self):
        if self.srv:
            self.srv.stop()

    def test_udp_echo_over_tap(self):
        cfg = f"""[runtime]
backend = "dpdk"
[dpdk]
eal = ["--no-huge", "-m", "512", "--no-pci"]
port = "net_tap0,iface={TAP}"
addresses = ["{OUR}/24"]
{h.ALL_SERVICES}"""
        self.srv = h.Server(cfg, expect_start=False, prefix=("ip", "netns", "exec", NS))
        try:
            self.srv.wait_ready()
        except h.ServerError:
            if "has no DPDK" in self.srv.log():
                self.skipTest("this corewire build has no DPDK backend")
            raise
        # The tap PMD copied its MAC onto the kernel side when it attached; restore the peer's.
        subprocess.run([SETUP, "peer-mac", "--ns", NS, "--peer-mac", PEER_MAC], check=True,
                       capture_output=True, timeout=30)
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
    reason = why_not()
    if reason:
        print("SKIP: DPDK integration test: " + reason, file=sys.stderr)
        sys.exit(77)
    unittest.main(verbosity=2)

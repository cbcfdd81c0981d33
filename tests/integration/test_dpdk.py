"""corewire on the DPDK backend, end to end without a NIC: the server runs inside a network
namespace it shares with a TAP device it creates (net_tap PMD, --no-huge); the kernel side of
the TAP gets an address and the real sockperf client plus plain sockets talk to corewire's
own IP stack. Needs root, iproute2, a DPDK build and sockperf; skipped (exit 77) otherwise."""

import os
import shutil
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

NS = f"cw-it-{os.getpid()}"
TAP = f"cwit{os.getpid() % 100000}"
OUR, PEER = "10.97.0.2", "10.97.0.1"
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
        subprocess.run(["ip", "netns", "add", NS], check=True, timeout=10)
        self.srv = None

    def tearDown(self):
        if self.srv:
            self.srv.stop()
        subprocess.run(["ip", "netns", "del", NS], timeout=10)

    def test_udp_echo_over_tap(self):
        cfg = f"""[runtime]
backend = "dpdk"
[dpdk]
eal = ["--no-huge", "-m", "512", "--no-pci"]
port = "net_tap0,iface={TAP}"
addresses = ["{OUR}/24"]
{h.ALL_SERVICES}"""
        self.srv = h.Server(cfg, expect_start=False, prefix=("ip", "netns", "exec", NS))
        # The PMD creates the TAP inside the namespace; give its kernel side an address.
        deadline = time.monotonic() + h.START_TIMEOUT
        while ns("ip", "link", "show", TAP, check=False).returncode != 0:
            if not self.srv.alive() and "has no DPDK" in self.srv.log():
                self.skipTest("this corewire build has no DPDK backend")
            if not self.srv.alive() or time.monotonic() > deadline:
                self.fail("TAP device never appeared:\n" + self.srv.log())
            time.sleep(0.1)
        ns("ip", "link", "set", TAP, "address", "02:00:00:00:97:01")
        ns("ip", "addr", "add", f"{PEER}/24", "dev", TAP)
        ns("ip", "link", "set", TAP, "up")
        self.srv.wait_ready()
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

"""corewire against the real sockperf client (Debian package `sockperf`). sockperf exits 0
even when nothing answered, so its report is parsed: replies > 0, nothing dropped, no
errors, data intact. Skipped (with a message) only when the sockperf binary is absent."""

import os
import re
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

SOCKPERF = os.environ.get("SOCKPERF") or shutil.which("sockperf")
SP = "sockperf-echo"
RUN_SECONDS = 1  # per sockperf run (-t): enough for hundreds of replies


def run_sockperf(args):
    p = subprocess.run([SOCKPERF, *args], stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, errors="replace", timeout=RUN_SECONDS + 30)
    out = re.sub(r"\x1b\[[0-9;]*m", "", p.stdout + p.stderr)  # drop colour codes
    return p.returncode, out


@unittest.skipUnless(SOCKPERF, "sockperf not installed (apt-get install sockperf; "
                     "tools/install-deps.sh does it) - the real-client tests were not run")
class SockperfTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = h.Server(h.config("workers = 1"))

    @classmethod
    def tearDownClass(cls):
        code = cls.srv.stop()
        if code != 0:
            raise AssertionError(f"corewire exit {code}:\n{cls.srv.log()}")

    def target(self, transport):
        host, port = self.srv.ep(SP, transport)
        return ["-i", host, "-p", str(port)] + (["--tcp"] if transport == "tcp" else [])

    def assert_clean(self, rc, out):
        self.assertEqual(rc, 0, out)
        for bad in ("ERROR", "integrity test failed", "program exits because of an error",
                    "No messages were received", "Is the server down"):
            self.assertNotIn(bad, out)

    def ping_pong(self, transport, size):
        rc, out = run_sockperf(["ping-pong", *self.target(transport), "-m", str(size),
                                "-t", str(RUN_SECONDS), "--data-integrity"])
        self.assert_clean(rc, out)
        m = re.search(r"\[Total Run\].*SentMessages=(\d+); ReceivedMessages=(\d+)", out)
        self.assertTrue(m, "no [Total Run] line:\n" + out)
        sent, received = int(m.group(1)), int(m.group(2))
        self.assertGreater(received, 0, out)
        m = re.search(r"# dropped messages = (\d+); # duplicated messages = (\d+); "
                      r"# out-of-order messages = (\d+)", out)
        self.assertTrue(m, "no dropped/duplicated line:\n" + out)
        self.assertEqual(m.groups(), ("0", "0", "0"), out)
        self.assertRegex(out, r"Summary: Latency is [0-9.]+ usec")
        # The client stops on a timer, so at most the last request is still in flight.
        self.assertLessEqual(sent - received, 1, out)
        self.assertTrue(self.srv.alive(), self.srv.log())

    def test_udp_ping_pong_64(self):
        self.ping_pong("udp", 64)

    def test_tcp_ping_pong_64(self):
        self.ping_pong("tcp", 64)

    def test_udp_ping_pong_1472(self):
        self.ping_pong("udp", 1472)

    def test_tcp_ping_pong_1472(self):
        self.ping_pong("tcp", 1472)

    def test_udp_under_load(self):
        rc, out = run_sockperf(["under-load", *self.target("udp"), "-m", "64", "-t",
                                str(RUN_SECONDS), "--mps", "2000", "--reply-every", "10"])
        self.assert_clean(rc, out)
        m = re.search(r"\[Total Run\].*SentMessages=(\d+); ReceivedMessages=(\d+)", out)
        self.assertTrue(m, out)
        self.assertGreater(int(m.group(2)), 0, out)
        self.assertNotIn("No valid observations", out)

    def test_tcp_under_load(self):
        rc, out = run_sockperf(["under-load", *self.target("tcp"), "-m", "64", "-t",
                                str(RUN_SECONDS), "--mps", "2000", "--reply-every", "10"])
        self.assert_clean(rc, out)
        m = re.search(r"\[Total Run\].*SentMessages=(\d+); ReceivedMessages=(\d+)", out)
        self.assertTrue(m, out)
        self.assertGreater(int(m.group(2)), 0, out)

    def throughput(self, transport):
        rc, out = run_sockperf(["throughput", *self.target(transport), "-m", "1472", "-t",
                                str(RUN_SECONDS), "--mps", "20000"])
        self.assert_clean(rc, out)
        m = re.search(r"Total of (\d+) messages sent", out)
        self.assertTrue(m, out)
        self.assertGreater(int(m.group(1)), 0, out)
        # Throughput messages ask for no reply; the server must still be answering.
        msg = h.sockperf_msg(1, 64)
        self.assertEqual(h.udp_call(self.srv.ep(SP, "udp"), msg), h.sockperf_reply_of(msg))

    def test_udp_throughput(self):
        self.throughput("udp")

    def test_tcp_throughput(self):
        self.throughput("tcp")


if __name__ == "__main__":
    if not SOCKPERF:
        # 77 = skipped, for meson; CI installs sockperf, so there it always runs.
        print("SKIP: sockperf not installed (tools/install-deps.sh installs it)", file=sys.stderr)
        sys.exit(77)
    unittest.main(verbosity=2)

"""Smoke runs of the benchmark-table scripts (docs/BENCHMARKS.md), so CI keeps them
working without paying for the real tables: one short interleaved run each, and the JSON
they write must hold a positive figure for every server and every ratio (no timing is
asserted). The DPDK table needs root and a DPDK build; the kernel table needs sockperf."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import dpdk_env as env

ROOT = os.environ.get("CW_SOURCE_ROOT",
                      os.path.join(os.path.dirname(os.path.abspath(__file__)), "../.."))
# COREWIRE is <build>/app/server/corewire.
BUILD = os.path.dirname(os.path.dirname(os.path.dirname(os.environ.get("COREWIRE", ""))))


def run_script(name, *args, timeout=240):
    out = tempfile.NamedTemporaryFile(suffix=".json", delete=False)
    out.close()
    try:
        p = subprocess.run([sys.executable, os.path.join(ROOT, "bench/scripts", name),
                            "--build", BUILD, "--json", out.name, *args],
                           capture_output=True, text=True, timeout=timeout)
        if p.returncode != 0:
            raise AssertionError(f"{name} exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
        with open(out.name) as f:
            return json.load(f), p.stdout
    finally:
        os.unlink(out.name)


class BenchTables(unittest.TestCase):
    def test_dpdk_table(self):
        why = env.why_not("10.94.0.1", topology=False)
        if why:
            self.skipTest(why)
        raw, text = run_script("dpdk_table.py", "--runs", "1", "--duration", "0.5",
                               "--warmup", "0.5")
        for server in ("reflector", "corewire-dpdk", "io_uring"):
            m = raw["results"][server]
            self.assertGreater(m["msg_per_s"][0], 0, server)
            self.assertGreater(m["p50_us"][0], 0, server)
            self.assertEqual(m["lost"][0], 0, server)
            if server != "io_uring":
                self.assertGreater(m["bare_msg_per_s"][0], 0, server)
        # Each ratio is per round (one here), every run kept: no after-the-fact filter.
        for k, v in raw["ratios"].items():
            self.assertEqual(len(v["per_round"]), 1, k)
            self.assertGreater(v["median"], 0, k)
        self.assertNotIn("fast_state", raw)
        self.assertTrue(raw["probes"], "the VM-state probe ran before the round")
        self.assertIn("cw-dpdk-blaster", text)
        self.assertIn("median of per-round ratios", text)

    def test_dpdk_table_zero_copy(self):
        # The other memif mode: the servers are zero-copy memif clients and every generator,
        # the memif server, starts first (run_generator's other order).
        why = env.why_not("10.94.0.1", topology=False)
        if why:
            self.skipTest(why)
        raw, text = run_script("dpdk_table.py", "--runs", "1", "--duration", "0.5",
                               "--warmup", "0.5", "--link", "zero-copy")
        for server in ("reflector", "corewire-dpdk"):
            m = raw["results"][server]
            self.assertGreater(m["msg_per_s"][0], 0, server)
            self.assertGreater(m["p50_us"][0], 0, server)
            self.assertEqual(m["lost"][0], 0, server)
            self.assertGreater(m["bare_msg_per_s"][0], 0, server)
        self.assertGreater(raw["results"]["io_uring"]["msg_per_s"][0], 0)
        self.assertIn("memif link zero-copy", text)

    def test_kv_dpdk_table(self):
        # Issue 15's DPDK row: kv over memcached UDP on DPDK and io_uring, the reflector
        # through the blaster; every get must hit (the warm-up's sets filled the keys).
        why = env.why_not("10.94.0.1", topology=False)
        if why:
            self.skipTest(why)
        raw, text = run_script("kv_dpdk_table.py", "--runs", "1", "--duration", "0.5",
                               "--warmup", "1", "--kv-keys", "200")
        for server in ("corewire-dpdk", "io_uring"):
            m = raw["results"][server]
            self.assertGreater(m["msg_per_s"][0], 0, server)
            self.assertGreater(m["p50_us"][0], 0, server)
            self.assertEqual(m["lost"][0], 0, server)
            self.assertEqual(m["hit_ratio"][0], 1.0, server)
        self.assertGreater(raw["results"]["reflector"]["bare_msg_per_s"][0], 0)
        for k, v in raw["ratios"].items():
            self.assertEqual(len(v["per_round"]), 1, k)
            self.assertGreater(v["median"], 0, k)
        self.assertIn("161-byte UDP payloads", text)

    def test_dpdk_tcp_table(self):
        # Issue 20's table: TCP echo on DPDK (corewire-bench on the DPDK stack's TCP) vs TCP
        # on io_uring vs UDP on DPDK, one short round with a small bulk run. Every system
        # answers, nothing is lost, both DPDK servers report their core's busy time per
        # message, and every ratio (the goals' and the others) has its one round.
        why = env.why_not("10.94.0.1", topology=False)
        if why:
            self.skipTest(why)
        raw, text = run_script("dpdk_tcp_table.py", "--runs", "1", "--duration", "0.5",
                               "--warmup", "0.5", "--bulk-msg", "4096", "--bulk-window", "4")
        for system in ("tcp-dpdk", "tcp-io_uring", "udp-dpdk"):
            m = raw["results"][system]
            self.assertGreater(m["msg_per_s"][0], 0, system)
            self.assertGreater(m["p50_us"][0], 0, system)
            self.assertEqual(m["lost"][0], 0, system)
            if system.endswith("dpdk"):
                for k in ("cpu_ns", "cpu_ns_pp", "gen_cpu_ns"):
                    self.assertGreater(m[k][0], 0, f"{system} {k}")
            if system.startswith("tcp"):
                self.assertGreater(m["bulk_mb_per_s"][0], 0, system)
        self.assertNotIn("bulk_mb_per_s", raw["results"]["udp-dpdk"])
        self.assertNotIn("cpu_ns", raw["results"]["tcp-io_uring"])
        self.assertEqual(len(raw["ratios"]), 7)
        for k, v in raw["ratios"].items():
            self.assertEqual(len(v["per_round"]), 1, k)
            self.assertGreater(v["median"], 0, k)
        self.assertTrue(raw["probes"], "the VM-state probe ran before the round")
        self.assertIn("server CPU / msg tcp-dpdk / udp-dpdk", text)
        self.assertRegex(text, r"\| <= 1\.5 \| (yes|no) \|")

    def test_kernel_table(self):
        if not shutil.which(os.environ.get("SOCKPERF", "sockperf")):
            self.skipTest("needs sockperf")
        raw, text = run_script("kernel_table.py", "--runs", "1", "--duration", "1",
                               "--coalesce-us", "", "--transports", "udp")
        self.assertIn("udp", raw)
        self.assertIn("| corewire", text)


if __name__ == "__main__":
    # Every test skipped (e.g. one DPDK table asked for, no root): exit 77, meson's SKIP.
    prog = unittest.main(verbosity=2, exit=False)
    r = prog.result
    if r.testsRun and len(r.skipped) == r.testsRun:
        sys.exit(77)
    sys.exit(0 if r.wasSuccessful() else 1)

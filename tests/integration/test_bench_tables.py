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

    def test_kernel_table(self):
        if not shutil.which(os.environ.get("SOCKPERF", "sockperf")):
            self.skipTest("needs sockperf")
        raw, text = run_script("kernel_table.py", "--runs", "1", "--duration", "1",
                               "--coalesce-us", "", "--transports", "udp")
        self.assertIn("udp", raw)
        self.assertIn("| corewire", text)


if __name__ == "__main__":
    unittest.main(verbosity=2)

"""The benchmark harness (bench/scripts/cwbench): its statistics and summaries on made-up
runs, and a smoke run of the CI spec (specs/smoke.json: corewire and cw-kernel-echo,
paired rounds and an open-loop curve, a fraction of a second each) that must write every
run to raw.json, a table and PNG plots, and re-render the same table from the JSON.
No timing is asserted.
  harness_test.py  (env CW_BUILD_ROOT = the meson build directory)"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))
SCRIPTS = os.path.join(ROOT, "bench/scripts")
sys.path.insert(0, SCRIPTS)

from cwbench import cli, runner, servers, stats  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def have_matplotlib():
    try:
        import matplotlib  # noqa: F401
        return True
    except ImportError:
        return False


class Stats(unittest.TestCase):
    def test_bootstrap_interval_holds_the_median_and_is_repeatable(self):
        xs = [0.9, 1.1, 1.0, 1.3, 0.95, 1.05, 1.2]
        ci = stats.bootstrap_ci(xs)
        self.assertLessEqual(ci[0], stats.median(xs))
        self.assertGreaterEqual(ci[1], stats.median(xs))
        self.assertLess(ci[0], ci[1])
        self.assertEqual(ci, stats.bootstrap_ci(xs))  # seeded: same JSON, same table
        self.assertIsNone(stats.bootstrap_ci([1.0]))
        self.assertIsNone(stats.bootstrap_ci([None, 2.0]))

    def test_ratio_summary_keeps_every_round(self):
        s = stats.ratio_summary([2.0, None, 1.0, 3.0])
        self.assertEqual(s["per_round"], [2.0, None, 1.0, 3.0])
        self.assertEqual(s["median"], 2.0)


class Supports(unittest.TestCase):
    def test_each_server_runs_the_protocols_it_speaks(self):
        cw, mc = {"type": "corewire"}, {"type": "memcached"}
        self.assertTrue(servers.supports(cw, "tcp", "memcached"))  # the kv service
        self.assertTrue(servers.supports(cw, "udp", "memcached"))
        self.assertTrue(servers.supports(mc, "udp", "memcached"))
        self.assertFalse(servers.supports(mc, "udp", "sockperf"))
        self.assertFalse(servers.supports({"type": "kernel-echo"}, "udp", "memcached"))
        self.assertFalse(servers.supports({"type": "uring-echo"}, "tcp", "sockperf"))
        self.assertTrue(servers.supports(cw, "tcp", "nats"))
        self.assertFalse(servers.supports(cw, "udp", "nats"))


class Summaries(unittest.TestCase):
    SPEC = {"name": "t", "kind": "pair", "transport": "udp",
            "servers": [{"name": "a", "type": "corewire"}, {"name": "b", "type": "kernel-echo"},
                        {"name": "u", "type": "uring-echo"}],
            "client": {"type": "corewire-bench"}}

    def test_pair_ratios_are_per_round(self):
        # Round 1 is slow for both servers: its ratio is still 2, and nothing is dropped.
        runs = [{"server": "a", "round": 0, "msg_per_s": 200.0},
                {"server": "b", "round": 0, "msg_per_s": 100.0},
                {"server": "b", "round": 1, "msg_per_s": 10.0},
                {"server": "a", "round": 1, "msg_per_s": 20.0},
                {"server": "a", "round": 2, "msg_per_s": 90.0},
                {"server": "b", "round": 2, "error": "failed"}]
        spec = dict(self.SPEC, servers=self.SPEC["servers"][:2])
        sm = runner.summarize_pair(spec, runs)
        r = sm["ratios"]["msg_per_s a/b"]
        self.assertEqual(r["per_round"], [2.0, 2.0, None])
        self.assertEqual(r["median"], 2.0)
        self.assertEqual(sm["per_server"]["a"]["msg_per_s"], [200.0, 20.0, 90.0])

    def test_udp_only_reference_leaves_tcp_tables(self):
        self.assertEqual([s["name"] for s in runner.table_servers(dict(self.SPEC, transport="tcp"))],
                         ["a", "b"])
        self.assertEqual(len(runner.table_servers(self.SPEC)), 3)

    def test_expand_names_every_combination(self):
        specs = cli.expand({"name": "c", "kind": "curve", "expand": {"transport": ["udp", "tcp"],
                                                                     "msg": [64, 1024]}})
        self.assertEqual([s["name"] for s in specs],
                         ["c-udp-64b", "c-udp-1024b", "c-tcp-64b", "c-tcp-1024b"])
        self.assertEqual(specs[3]["msg"], 1024)

    def test_geometric_loads(self):
        self.assertEqual(runner.loads_of({"start": 100, "factor": 2, "max": 1000}),
                         [100, 200, 400, 800])


class Smoke(unittest.TestCase):
    def test_smoke_spec_writes_json_tables_and_plots(self):
        build = os.environ.get("CW_BUILD_ROOT")
        if not build:
            self.skipTest("CW_BUILD_ROOT not set (run through meson test)")
        out = tempfile.mkdtemp(prefix="cwbench-smoke-")
        p = subprocess.run([sys.executable, os.path.join(SCRIPTS, "cwbench.py"), "run",
                            os.path.join(SCRIPTS, "cwbench/specs/smoke.json"), "--build", build,
                            "--out", out], capture_output=True, text=True, timeout=240)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        for name, kind in (("smoke-pair", "pair"), ("smoke-curve", "curve")):
            d = os.path.join(out, name)
            with open(os.path.join(d, "raw.json")) as f:
                res = json.load(f)
            self.assertEqual(res["spec"]["kind"], kind)
            self.assertTrue(res["machine"]["commit"])
            self.assertTrue(res["probes"], "the VM-state probe ran")
            runs = res["runs"]
            self.assertEqual({r["server"] for r in runs}, {"corewire", "kernel-echo"})
            for r in runs:
                self.assertNotIn("error", r, r.get("error"))
                self.assertGreater(r["msg_per_s"], 0, r)
                self.assertGreater(r["p50_us"], 0, r)
                self.assertGreater(r["server_cpu_s"], 0, r)
                self.assertGreater(r["machine"]["busy_s"], 0, r)
                self.assertIn("cpu1", r["machine"]["cores"])
            if kind == "pair":
                self.assertEqual(len(runs), 4)  # 2 rounds x 2 servers, all kept
                self.assertEqual([r["server"] for r in runs],
                                 ["corewire", "kernel-echo", "kernel-echo", "corewire"])
                ratio = res["summary"]["ratios"]["msg_per_s corewire/kernel-echo"]
                self.assertEqual(len(ratio["per_round"]), 2)
                self.assertIsNotNone(ratio["ci95"])
            else:
                self.assertEqual(sorted({r["offered"] for r in runs}), [2000, 4000])
            with open(os.path.join(d, "table.md")) as f:
                md = f.read()
            self.assertIn("| corewire |", md)
            self.assertIn("**Command:**", md)
            if have_matplotlib():
                pngs = [f for f in os.listdir(d) if f.endswith(".png")]
                self.assertIn("percentiles.png", pngs)
                self.assertIn("ratios.png" if kind == "pair" else "curve.png", pngs)
                for png in pngs:
                    with open(os.path.join(d, png), "rb") as f:
                        self.assertEqual(f.read(8), PNG_MAGIC, png)
            # The table comes from the JSON alone.
            os.unlink(os.path.join(d, "table.md"))
            r = subprocess.run([sys.executable, os.path.join(SCRIPTS, "cwbench.py"), "render", d],
                               capture_output=True, text=True, timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(os.path.join(d, "table.md")) as f:
                self.assertEqual(f.read(), md)
        if not have_matplotlib():
            self.skipTest("JSON and tables checked; plots need python3-matplotlib")


if __name__ == "__main__":
    unittest.main(verbosity=2)
